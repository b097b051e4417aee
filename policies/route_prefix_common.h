/* Helpers the prefix-aware routing policies share (route_prefix_common.c):
 * how many of a request's prompt blocks an instance holds, asked of the
 * instance itself ("precise": route_view.cached_tokens) or of the router's
 * own index of the prompts it sent there ("approximate": a set of block
 * hashes per instance, trimmed least recently routed first to
 * `index_blocks`, by default as many as the instance's KV holds); and the instances' load as the router last refreshed it
 * (`staleness_ms`: the router's copy of every inst_view is refreshed when
 * that much time has passed since the last refresh; 0: always current).
 * Prefix matches in precise mode are always current (the lag of KV events
 * is not modelled). Not part of the API. */
#ifndef POLICIES_ROUTE_PREFIX_COMMON_H
#define POLICIES_ROUTE_PREFIX_COMMON_H

#include "api/route.h"

typedef struct rp_index rp_index;   /* one instance's approximate index */

typedef struct rp_common {
    int32_t block;                  /* the pool's block size */
    bool approximate;
    int64_t index_blocks;           /* per instance, approximate mode */
    rp_index **index;               /* by instance, created on first use */
    int32_t n_index;
    sim_time_ns staleness_ns, refreshed_ns;
    inst_view *snap;                /* the router's copy, staleness > 0 */
    int32_t n_snap;
    /* the current request's hashes (approximate mode) */
    const uint64_t *hashes;
    int32_t n_hashes;
} rp_common;

/* Reads "index" ("precise" or "approximate", default def_index),
 * "index_blocks" (default 0: each instance's KV blocks) and "staleness_ms"
 * (default 0) from params. */
int rp_common_init(rp_common *c, const route_setup *setup, cJSON *params, const char *path,
                   const char *def_index, sim_err *err);
void rp_common_fini(rp_common *c);

/* Call once per request before the queries below: refreshes the load copy
 * if due, computes the request's hashes if approximate. Returns the loads to
 * use (v->inst or the router's copy). */
const inst_view *rp_begin(rp_common *c, const route_view *v, const serve_req *req);
/* Prompt blocks of req that instance i holds (matched from the first). */
int32_t rp_matched_blocks(rp_common *c, const route_view *v, int32_t i, const serve_req *req);
/* Blocks of req's prompt a cache could hold (at least 1). */
int32_t rp_request_blocks(const rp_common *c, const serve_req *req);
/* Tells the index that req went to i (approximate mode: inserts its blocks). */
void rp_routed(rp_common *c, const route_view *v, int32_t i);
/* Blocks in i's approximate index (0 when precise). */
int64_t rp_index_size(const rp_common *c, int32_t i);
/* Words of a deterministic uniform draw in [0, 1) for req. */
double rp_uniform(const serve_req *req, uint64_t salt);

/* Reads the common keys plus `own` (NULL-terminated) and checks params. */
int rp_check_keys(cJSON *params, const char *path, const char *const *own, sim_err *err);

#endif
