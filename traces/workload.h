/* Workload sources: where requests come from. A source yields requests in
 * arrival order, one at a time, so that memory does not grow with the trace.
 * Generators (synthetic) and trace readers (azure, mooncake, burstgpt,
 * lengths, native, trace) are members of one table: one file each plus a
 * line in traces/sources.def.
 *
 * Config: {"source": "<name>", "context_policy": "truncate", ...the
 * source's own keys...}. Every source lists WL_COMMON_KEYS among its keys.
 *
 * Closed loops. A source whose arrivals depend on completions (N clients,
 * each sending its next request a think time after its previous one
 * finished) answers WL_WAIT when no request is due yet, and hears of every
 * completion through on_complete. The core calls next again at the time the
 * WL_WAIT named, after a completion the source reacted to, and after every
 * arrival, always passing the current simulated time. */
#ifndef TRACES_WORKLOAD_H
#define TRACES_WORKLOAD_H

#include <stdbool.h>
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
    /* Tokens the ids describe; 0: min(n_prefix_blocks x prefix_block_tokens,
     * input_tokens). May reach into the output (a conversation's next turn
     * holds this turn's answer: traces/prefix_gen.h). */
    int32_t prefix_id_tokens;
    /* Sessions (traces/prefix_gen.h, kind "session"): the session's id
     * (0: none), this call's turn (from 0), whether it is the session's last,
     * when the session's first turn arrived, and the gap before this turn
     * (its arrival less the previous turn's completion at the client). */
    uint64_t session_id;
    int32_t turn;
    int32_t session_last;
    sim_time_ns session_start_ns;
    sim_time_ns session_gap_ns;
    uint64_t session_root;    /* session trees: the root's session id (0: none) */
    /* SLO scheduling (JITServe): the multi-call request group it belongs to
     * (0: none; the calls of one group share one deadline) and its
     * end-to-end deadline after its arrival (0: none). */
    uint64_t call_group;
    sim_time_ns deadline_ns;
    /* A streamed prompt (Stream2LLM; 0 chunks: it arrives whole): its parts
     * in order, the k-th arriving chunk_offset_ns[k] after the request (the
     * first at 0) with chunk_tokens[k] tokens, summing to input_tokens.
     * Owned by the source, valid until its next `next`. */
    const int32_t *chunk_tokens;
    const sim_time_ns *chunk_offset_ns;
    /* Per chunk: -1 for an append (Stream2LLM's append mode); k >= 0 for an
     * update that replaces the context by its first k tokens followed by
     * the chunk's tokens (update mode). NULL: all appends. */
    const int32_t *chunk_keep;
    int32_t n_chunks;
    /* Speculative decoding (serve/spec.h acceptance models "request" and
     * "trace"): this request's acceptance rate in [0, 1] when
     * spec_alpha_set, and the accepted drafts of its successive
     * verification steps (owned by the source, valid until its next
     * `next`; NULL: none). */
    bool spec_alpha_set;
    double spec_alpha;
    const uint8_t *spec_accepted;
    int32_t n_spec_accepted;
} wl_request;

/* What a source may use. The generators are owned by the caller. */
typedef struct wl_setup {
    gsl_rng *arrival_rng;
    gsl_rng *length_rng;
    int32_t max_context_tokens;   /* input + output must fit */
} wl_setup;

/* What next returns. */
enum {
    WL_ERROR = -1,     /* message in err */
    WL_END = 0,        /* no more requests */
    WL_REQUEST = 1,    /* *out is the next request, out->arrival_ns >= now */
    WL_WAIT = 2,       /* none due before out->arrival_ns (SIM_TIME_NEVER: none
                        * until a completion); ask again then */
};

/* What a source did besides yielding requests. Sources fill their part in
 * `counts`; the wrapper adds the context policy's. */
typedef struct wl_counts {
    uint64_t requests;         /* yielded to the core */
    uint64_t ctx_truncated;    /* cut to fit the context (context_policy truncate) */
    uint64_t ctx_dropped;      /* did not fit the context (context_policy drop) */
    uint64_t cap_truncated;    /* cut to a trace's token caps */
    uint64_t cap_dropped;      /* over a trace's token caps, dropped */
    uint64_t bad_rows;         /* malformed rows skipped (skip_bad) */
    const char *first_bad;     /* the first one's message, or NULL; the
                                * source's, valid while it lives */
    uint64_t failures;         /* failed requests in the trace, skipped */
    uint64_t filtered;         /* rows outside the window or a filter */
    uint64_t zero_raised;      /* zero token counts replayed as 1 */
} wl_counts;

/* Keys the wrapper reads; every source accepts them. */
#define WL_COMMON_KEYS "source", "context_policy"

typedef struct wl_source_ops {
    const char *name;
    int (*init)(const wl_setup *setup, cJSON *params, const char *path,
                void **state, sim_err *err);
    /* A WL_* code; `now` is the current simulated time. */
    int (*next)(void *state, sim_time_ns now, wl_request *out, sim_err *err);
    void (*destroy)(void *state);
    /* Optional: a request this source yielded finished (or was dropped) at
     * `now`. Returns 1 if the source may now have a request due (the core
     * then calls next if it was waiting), else 0. */
    int (*on_complete)(void *state, sim_time_ns now);
    /* Optional, for sources with sessions: as on_complete, naming the
     * finished request's session (0: none); called instead of on_complete
     * when set. */
    int (*on_complete_session)(void *state, sim_time_ns now, uint64_t session_id);
    /* Optional: adds the source's counts. */
    void (*counts)(const void *state, wl_counts *out);
} wl_source_ops;

extern const wl_source_ops *const wl_sources[];   /* NULL-terminated */

typedef struct wl_source wl_source;

/* Reads {"source": ...} at `path` and creates the source. */
wl_source *wl_source_create(const wl_setup *setup, cJSON *cfg, const char *path,
                            sim_err *err);
void wl_source_destroy(wl_source *s);   /* NULL is a no-op */
/* The next request, checked (arrivals never go back; at least one input and
 * one output token) and fitted to the context by the context policy. */
int wl_source_next(wl_source *s, sim_time_ns now, wl_request *out, sim_err *err);
/* A request from this source finished at `now`. Returns 1 if the core should
 * call wl_source_next again when it is waiting on a WL_WAIT. */
int wl_source_complete(wl_source *s, sim_time_ns now);
/* The same, naming the finished request's session (wl_request.session_id). */
int wl_source_complete_session(wl_source *s, sim_time_ns now, uint64_t session_id);
/* Requests whose lengths were cut to fit the model's context. */
uint64_t wl_source_clamped(const wl_source *s);
void wl_source_counts(const wl_source *s, wl_counts *out);
/* The non-zero counts other than requests and ctx_truncated as one phrase
 * ("3 malformed rows skipped (first: t.csv:7: ...), 2 longer than the context
 * dropped"); "" when none. */
void wl_counts_describe(const wl_counts *c, char *buf, size_t size);

#endif
