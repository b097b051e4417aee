/* Workload sources: where requests come from. A source yields requests in
 * arrival order, one at a time, so that memory does not grow with the trace.
 * Synthetic generators are the first members; trace readers plug in as more
 * members of the same table (one file each plus a registry line).
 *
 * Config: {"source": "<name>", ...the source's own keys...}. */
#ifndef TRACES_WORKLOAD_H
#define TRACES_WORKLOAD_H

#include <gsl/gsl_rng.h>
#include <cjson/cJSON.h>
#include "sim/base.h"

/* One request as a source yields it. Optional attributes are 0 (or NULL)
 * when the source has none. */
typedef struct wl_request {
    sim_time_ns arrival_ns;
    int32_t input_tokens;
    int32_t output_tokens;
    int32_t priority;          /* lower runs first under priority ordering */
    int32_t slo_class;         /* index of an SLO class, for per-class reports */
    int32_t tenant;
    sim_time_ns ttft_slo_ns;   /* this request's TTFT target; 0: the run's */
    /* Prefix identity: one id per prefix block of prefix_block_tokens prompt
     * tokens, chained (equal ids at position i mean equal prompts up to the
     * end of block i). Owned by the source, valid until its next `next`. */
    const uint64_t *prefix_blocks;
    int32_t n_prefix_blocks;
    int32_t prefix_block_tokens;
} wl_request;

/* What a source may use. The generators are owned by the caller. */
typedef struct wl_setup {
    gsl_rng *arrival_rng;
    gsl_rng *length_rng;
    int32_t max_context_tokens;   /* input + output must fit */
} wl_setup;

typedef struct wl_source_ops {
    const char *name;
    int (*init)(const wl_setup *setup, cJSON *params, const char *path,
                void **state, sim_err *err);
    /* 1: *out is the next request; 0: no more; -1: error in err. */
    int (*next)(void *state, wl_request *out, sim_err *err);
    void (*destroy)(void *state);
} wl_source_ops;

extern const wl_source_ops *const wl_sources[];   /* NULL-terminated */

typedef struct wl_source wl_source;

/* Reads {"source": ...} at `path` and creates the source. */
wl_source *wl_source_create(const wl_setup *setup, cJSON *cfg, const char *path,
                            sim_err *err);
void wl_source_destroy(wl_source *s);
int wl_source_next(wl_source *s, wl_request *out, sim_err *err);
/* Requests whose lengths were cut to fit the model's context. */
uint64_t wl_source_clamped(const wl_source *s);

#endif
