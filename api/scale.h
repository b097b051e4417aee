/* Autoscalers: the policy family that sizes each pool. Every tick
 * (policies.scale.period_ms of simulated time) the core hands the policy a
 * read-only view of the cluster (each pool's instances by lifecycle state,
 * its queues and KV use, and what happened since the previous tick:
 * arrivals, completions, SLO attainment) and an array of desired instance
 * counts, one per pool, filled with each pool's current count. The policy
 * writes the counts it wants; the core then, per pool:
 *   - clamps the count to [min_instances, max_instances];
 *   - starts instances (cold starts through the lifecycle: provisioning,
 *     loading weights over a link, warming) or drains the newest active ones
 *     (they take no arrivals, their waiting requests move to the pool's other
 *     instances, they stop once their running requests finish: no request is
 *     lost), at most once per up_cooldown_s / down_cooldown_s;
 *   - starts one instance in an arrival pool that has none live while
 *     requests wait for one (scale from zero), whatever the policy says.
 *
 * A family of its own rather than a controller (api/control.h): a cluster has
 * one controller, and autoscaling must combine with one (balance_queues and
 * an autoscaler); its view carries windowed rates the controller view has no
 * use for; and its decision is a count per pool, so bounds, cooldowns and
 * draining are enforced once by the core instead of by every policy.
 *
 * The view is consistent: taken at one instant, in the CONTROL phase
 * (serve/events.h), and nothing changes while the policy runs.
 *
 * Adding a policy: one file policies/scale_<name>.c defining a
 * `const scale_policy_ops scale_<name>` and one line SCALE(<name>) in
 * policies/list.def. */
#ifndef API_SCALE_H
#define API_SCALE_H

#include <cjson/cJSON.h>
#include "api/cluster.h"

typedef struct scale_setup {
    int32_t n_pools;
    sim_time_ns period_ns;
} scale_setup;

/* One pool. "Current" is what a policy sizes: its live instances that are
 * not draining (starting or active). */
typedef struct scale_pool_view {
    const char *name;
    pool_role role;
    int32_t min_instances, max_instances;
    int32_t gpus_per_instance;
    int32_t block_size_tokens;           /* tokens per KV block */
    int32_t current;
    int32_t n_state[INST_STATE_COUNT];   /* its instances by state */
    /* Over its live instances, now. */
    int64_t waiting, running;            /* requests */
    int64_t outstanding_tokens;
    int64_t kv_used_blocks, kv_total_blocks;   /* active instances only */
    /* Since the previous tick. */
    uint64_t arrivals;                   /* requests routed to it */
    uint64_t completed;                  /* requests that finished in it */
    uint64_t busy_ns;                    /* iteration time, its instances summed */
} scale_pool_view;

typedef struct scale_view {
    sim_time_ns now;
    sim_time_ns window_ns;      /* since the previous tick (the period, but
                                 * at the first tick: since the run began) */
    const scale_pool_view *pools;
    int32_t n_pools;
    const inst_view *inst;      /* every instance, by index */
    int32_t n_instances;
    int32_t parked;             /* arrivals waiting for any active instance */
    /* Since the previous tick, cluster-wide. */
    uint64_t arrivals;          /* every arrival, parked or routed */
    uint64_t arrival_input_tokens, arrival_output_tokens;
    double arrival_rate_per_s;  /* arrivals / window */
    uint64_t completed;         /* requests finished */
    uint64_t met_ttft, met_slo; /* of those, meeting the TTFT target, and both */
    sim_time_ns slo_ttft_ns, slo_tpot_ns;   /* the run's targets */
} scale_view;

typedef struct scale_policy_ops {
    const char *name;
    int (*init)(const scale_setup *setup, cJSON *params, const char *path, void **state,
                sim_err *err);
    /* desired[k] holds pool k's current count; the policy overwrites the
     * counts it wants changed. */
    void (*decide)(void *state, const scale_view *view, int32_t *desired);
    void (*destroy)(void *state);   /* optional */
} scale_policy_ops;

#endif
