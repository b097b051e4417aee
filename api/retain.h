/* KV retention: the policy family that decides, when a session's turn
 * finishes, whether its KV blocks stay pinned on the GPU (unevictable,
 * counted as used) until the session's next turn is admitted there or a TTL
 * runs out, or are released at once to the prefix cache's eviction (vLLM's
 * default). Each instance has its own policy state. Spec I (InferCept,
 * Continuum, AgentServeSim's kv_retain hooks).
 *
 * Only turns of sessions (serve_req.session_id != 0) that are not their
 * session's last reach on_turn_end, and only with prefix caching on (without
 * it nothing can find the pinned blocks again).
 *
 * Adding a policy: one file policies/retain_<name>.c defining a
 * `const retain_policy_ops retain_<name>` and one line in policies/list.def. */
#ifndef API_RETAIN_H
#define API_RETAIN_H

#include <cjson/cJSON.h>
#include "api/request.h"

typedef struct retain_view {
    sim_time_ns now;
    int32_t instance;
    int64_t kv_free_blocks, kv_total_blocks;
    int64_t pinned_blocks;   /* held by pins on this instance now */
    int32_t pins;            /* sessions pinned on this instance now */
} retain_view;

/* on_turn_end's answer "offload": the turn's blocks leave HBM now (freed,
 * no longer cached there); their contents stay in the instance's lower KV
 * tiers, which hold every cached block (written through over the host link
 * as the blocks were cached, serve/kv_tier.h), and the session's next turn
 * loads them back from there at the tier's cost. Only for policies with
 * needs_tier (the config requires instance.kv_tiers). */
#define RETAIN_OFFLOAD ((sim_time_ns)-1)

typedef struct retain_policy_ops {
    const char *name;
    int (*init)(cJSON *params, const char *path, void **state, sim_err *err);
    /* Turn r finished on v->instance holding r->kv_blocks blocks: how long
     * to pin them (> 0), 0 to release them now, or RETAIN_OFFLOAD. */
    sim_time_ns (*on_turn_end)(void *state, const retain_view *v, const serve_req *r);
    /* A later turn r of a session was admitted on this instance;
     * r->session_gap_ns is the gap (tool or think time) before it. For
     * policies that learn gaps; optional. */
    void (*on_turn_arrival)(void *state, const retain_view *v, const serve_req *r);
    void (*destroy)(void *state);   /* optional */
    bool needs_tier;                /* may answer RETAIN_OFFLOAD */
} retain_policy_ops;

#endif
