/* Routing: the policy family that picks the serving instance for each
 * arriving request. Routing has two stages: the core picks a pool among
 * those that take arrivals (cluster.pool_choice), then that pool's routing
 * policy picks one of the pool's active instances. Each pool has its own
 * routing policy (and state). The view shows every instance's load (a
 * policy may look beyond its candidates) and lists the candidates.
 *
 * Adding a policy: one file policies/route_<name>.c defining a
 * `const route_policy_ops route_<name>` and one line in policies/list.def. */
#ifndef API_ROUTE_H
#define API_ROUTE_H

#include <cjson/cJSON.h>
#include "api/cluster.h"

/* Fixed for the policy's lifetime. */
typedef struct route_setup {
    int32_t pool;                /* the pool it routes for */
    int32_t block_size_tokens;   /* of the pool's KV cache */
} route_setup;

typedef struct route_view route_view;
struct route_view {
    sim_time_ns now;
    const inst_view *inst;       /* every instance of the cluster, by index */
    int32_t n_instances;
    const int32_t *candidates;   /* the pool's active instances, in index order */
    int32_t n_candidates;
    /* Tokens of req's prompt that instance i holds in its prefix cache now
     * (0 without prefix caching). What the instance really holds: a
     * "precise" scorer. */
    int32_t (*cached_tokens)(const route_view *v, int32_t i, const serve_req *req);
    /* The content hashes of req's prompt in blocks of block_size_tokens,
     * the chain prefix caches key on (equal hash: equal tokens up to the
     * block's end), whole blocks only, at most one token short of the
     * prompt; returns their number and points *out at them (valid until the
     * next call for req). For a router's own index ("approximate"). */
    int32_t (*prompt_hashes)(const route_view *v, const serve_req *req,
                             int32_t block_size_tokens, const uint64_t **out);
    void *core;                  /* the core's, for cached_tokens and prompt_hashes */
    /* Multi-LoRA: how ready instance i is to serve req's adapter, as
     * llm-d's LoRA-affinity scorer grades it: 1 the adapter is in a GPU
     * slot, 0.8 a slot is free (it loads without evicting), 0 it would
     * evict another; 0 for every instance without LoRA. */
    double (*lora_affinity)(const route_view *v, int32_t i, const serve_req *req);
};

typedef struct route_policy_ops {
    const char *name;
    int (*init)(const route_setup *setup, cJSON *params, const char *path,
                void **state, sim_err *err);
    /* Returns one of v->candidates (n_candidates >= 1). */
    int32_t (*route)(void *state, const route_view *view, const serve_req *req);
    void (*destroy)(void *state);   /* optional */
} route_policy_ops;

#endif
