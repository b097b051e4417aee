/* An instance's expert parallelism: its routing draws, its expert placement
 * (asked of the pool's placement policy, api/placement.h), the window of
 * observed expert load, rebalances, and what they cost and show.
 *
 * Once per iteration ep_step draws the routed token counts of every layer
 * group, turns them into the busiest GPU's load under the placement now
 * (models/moe.h), adds them to the window, and every period_iterations asks
 * the policy for a new placement; the slots that change are copied (their
 * experts' bytes, the busiest GPU's share) during the next iteration. */
#ifndef SERVE_EP_H
#define SERVE_EP_H

#include "serve/setup.h"

typedef struct ep_state ep_state;

typedef struct ep_stats {
    uint64_t iterations;
    /* Over iterations and layer groups, weighted by tokens times layers:
     * max / mean routed pairs per GPU, and the same of distinct experts;
     * weight is the weights' sum. imbalance_max is unweighted. */
    double imbalance_sum;
    double distinct_imbalance_sum;
    double weight;
    double imbalance_max;
    double a2a_bytes;           /* busiest GPU, dispatch + combine, all MoE layers */
    uint64_t rebalances;
    uint64_t experts_moved;     /* slots whose expert changed, all groups */
    double moved_bytes;         /* per GPU (busiest), all rebalances */
    int32_t groups;             /* layer groups counted per iteration */
} ep_stats;

/* seed: the instance's own stream. NULL with err on a policy's bad params. */
ep_state *ep_create(const pool_setup *ps, uint64_t seed, sim_err *err);
void ep_destroy(ep_state *ep);   /* NULL is a no-op */
/* The routed load of an iteration of `tokens` tokens (valid until the next
 * call). */
const moe_iter *ep_step(ep_state *ep, int64_t tokens);
const ep_stats *ep_get_stats(const ep_state *ep);
/* Placement now: phy2log[group * slots + s] (for tests and reports). */
const int32_t *ep_placement(const ep_state *ep, int32_t *groups, int32_t *slots);

#endif
