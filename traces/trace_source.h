/* The options and the replay every trace source shares. A trace source
 * (traces/wl_<format>.c) is a trace format plus these functions in its
 * wl_source_ops; only the format differs.
 *
 * Keys (besides WL_COMMON_KEYS; see traces/README.md for the full table):
 *   path              the trace file, relative to the working directory
 *   format            "auto" or a format name (source "trace" only)
 *   window            {"start_s": 0, "end_s": 0}: rows with start <= t < end
 *                     (end 0: to the end), t from the first row; arrivals
 *                     then count from start_s
 *   rate_scale        1: replay at this multiple of the load (2: gaps halved)
 *   max_requests      0: all
 *   max_input_tokens, max_output_tokens, cap_policy ("truncate" | "drop")
 *   skip_bad          false: a malformed row stops the run
 *   spread_ms, spread ("even" | "random"): rows sharing one timestamp are
 *                     spread over the next spread_ms (at most up to the next
 *                     timestamp), for traces rounded to seconds
 *   failures          "skip" | "keep" (replayed with one output token)
 *   arrival           an arrival process (gen.h) that replaces the file's
 *                     times; required for formats without times
 *   cycle             false: with an arrival process, start the file again
 *                     at its end (needs max_requests)
 *
 * Memory is constant in the trace length: one row at a time, or one group
 * of equal timestamps when spreading. */
#ifndef TRACES_TRACE_SOURCE_H
#define TRACES_TRACE_SOURCE_H

#include "traces/trace_read.h"
#include "traces/workload.h"

/* Reads the shared keys and opens the trace. format: the format's name, or
 * NULL to read the "format" key (default "auto"). extra_keys: the calling
 * source's own keys (NULL-terminated; NULL for none), which it reads itself
 * after this returns. */
int trace_src_init(const wl_setup *setup, cJSON *params, const char *path,
                   const char *format, const char *const *extra_keys, void **state,
                   sim_err *err);
/* The same for a source whose format `pick` chooses from the file's first
 * line (no "format" key). */
int trace_src_init_pick(const wl_setup *setup, cJSON *params, const char *path,
                        trace_format_pick *pick, const char *const *extra_keys,
                        void **state, sim_err *err);
int trace_src_next(void *state, sim_time_ns now, wl_request *out, sim_err *err);
int trace_src_complete(void *state, sim_time_ns now);
void trace_src_counts(const void *state, wl_counts *out);
void trace_src_destroy(void *state);
/* The reader, for a source that sets its format's filters. */
trace_reader *trace_src_reader(void *state);

#endif
