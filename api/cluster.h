/* What cluster-level policies (routing, controllers) see of the cluster:
 * pools of instances, each instance's lifecycle state and load. */
#ifndef API_CLUSTER_H
#define API_CLUSTER_H

#include "api/request.h"

/* What a pool's instances do with requests. MIXED: prefill and decode (the
 * default); PREFILL: prefill only, then the request moves on to a DECODE
 * pool with its KV. Arrivals go to MIXED and PREFILL pools. */
typedef enum pool_role { POOL_MIXED, POOL_PREFILL, POOL_DECODE, POOL_ROLE_COUNT } pool_role;

/* An instance's lifecycle: allocated and provisioning (a node coming up),
 * loading its weights, warming up (engine start, CUDA graphs), active
 * (taking work), draining (finishing its work, taking no new), stopped. Only
 * ACTIVE instances take arrivals; DRAINING ones still run what they hold. */
typedef enum inst_state {
    INST_PROVISIONING,
    INST_LOADING,
    INST_WARMING,
    INST_ACTIVE,
    INST_DRAINING,
    INST_STOPPED,
    INST_STATE_COUNT
} inst_state;

/* One instance as policies see it; the core keeps it current. */
typedef struct inst_view {
    int32_t pool;
    inst_state state;
    int32_t n_waiting;
    int32_t n_running;
    /* Tokens assigned and not yet processed: pending prompt tokens plus
     * output tokens still to generate (the simulator knows output lengths;
     * a real router would estimate them). */
    int64_t outstanding_tokens;
    int64_t kv_free_blocks;
    int64_t kv_total_blocks;
    int64_t kv_cached_blocks;   /* free blocks holding a cached prefix */
} inst_view;

/* One pool. */
typedef struct pool_view {
    const char *name;
    pool_role role;
    int32_t n_instances;        /* every instance it has had, any state */
    const int32_t *instances;   /* their global indices, in creation order */
    int32_t n_active;
    int32_t gpus_per_instance;
    int32_t block_size_tokens;  /* of its instances' KV caches */
} pool_view;

#endif
