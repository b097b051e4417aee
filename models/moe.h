/* Expert routing and expert-parallel load (the mechanism under api/placement.h).
 *
 * Routing: the MoE layers are cut into `groups` consecutive groups of layers
 * (at most MOE_GROUPS_MAX, ops.h), each with its own expert popularity:
 * Zipf, p_g(e) proportional to (pi_g(e) + 1)^-s_g with pi_g a seeded
 * permutation and s_g = skew * U(1 - spread, 1 + spread), or weights read
 * from a routing trace. A token picks experts_per_token distinct experts;
 * expert e is among them with probability q_g(e) = k p_g(e), capped at 1
 * (the excess spread over the rest, in proportion). An iteration of T tokens
 * draws each expert's token count as Binomial(T, q_g(e)): O(experts) per
 * group, not O(tokens), with the exact per-expert mean and variance (the
 * counts are drawn independently, so their sum is T k only on average).
 *
 * Expert-parallel load: a placement (phy2log: the logical expert in each
 * physical slot, slots / ep per GPU) turns the counts into each GPU's
 * routed (token, expert) pairs and distinct experts with work (an expert's
 * tokens split evenly over its copies, the first copies taking the
 * remainder); the layer waits for its busiest GPU. All-to-all bytes per GPU
 * (DeepEP's accounting, spec D(2)): a GPU sends its T / ep tokens' k copies
 * to remote GPUs, (ep - 1) / ep of them, and receives its pairs' remote
 * share; dispatch in the activations' dtype (FP8 with a 4-byte scale per
 * 128), combine in 16 bits; the busiest GPU's max(sent, received) counts. */
#ifndef MODELS_MOE_H
#define MODELS_MOE_H

#include <gsl/gsl_rng.h>
#include "models/ops.h"

typedef struct moe_routing_cfg {
    double skew;        /* Zipf exponent of the popularity; 0: uniform */
    double spread;      /* per-group exponent skew * U(1 - spread, 1 + spread) */
    int32_t groups;     /* layer groups, 1 .. MOE_GROUPS_MAX (capped at the MoE layers) */
    double locality;    /* offloading: an expert's activation repeats the last
                         * iteration's with this probability (0: independent) */
    bool has_trace;     /* popularity from trace[][] instead of Zipf */
    double trace[MOE_GROUPS_MAX][LLM_MAX_EXPERTS];   /* weights, >= 0 */
} moe_routing_cfg;

typedef struct moe_routing {
    int32_t experts, k, groups;
    int32_t layers[MOE_GROUPS_MAX];               /* MoE layers per group */
    double q[MOE_GROUPS_MAX][LLM_MAX_EXPERTS];     /* P(a token picks e) */
    double log_miss[MOE_GROUPS_MAX][LLM_MAX_EXPERTS];   /* log(1 - q) */
    /* (1 - q)^n for the n last drawn with (a decode batch's size often
     * repeats; 0: none yet) */
    int32_t p0_n[MOE_GROUPS_MAX][LLM_MAX_EXPERTS];
    double p0[MOE_GROUPS_MAX][LLM_MAX_EXPERTS];
} moe_routing;

/* Builds the routing of model m (an MoE model) from cfg; the permutations
 * and exponents are drawn from rng. */
int moe_routing_init(moe_routing *r, const llm_model *m, const moe_routing_cfg *cfg,
                     gsl_rng *rng, sim_err *err);
/* counts[g * experts + e]: tokens of `tokens` that group g sends to e. */
void moe_routing_sample(moe_routing *r, gsl_rng *rng, int64_t tokens, int32_t *counts);

/* Reads a routing trace: CSV with the header `layer,expert,tokens`, one row
 * per (MoE layer counted from 0, expert) with the tokens it received; MoE
 * layer l adds to group l * groups / moe_layers. Fills cfg->trace and sets
 * has_trace. Errors name the file and line. */
int moe_trace_load(const char *path, const llm_model *m, moe_routing_cfg *cfg, sim_err *err);

/* Work of one GPU of the expert-parallel group in one layer. */
typedef struct moe_rank_load {
    double pairs;      /* routed (token, expert) pairs */
    double distinct;   /* slots with at least one token */
    double mu, var;    /* moe_sample_group_load's near-normal part before its draw */
} moe_rank_load;

/* A placement's index for moe_group_load_of: cnt[e], the copies of expert
 * e, and rep[s], which copy of its expert slot s holds (0, 1, ... in slot
 * order). O(slots + experts); recompute when the placement changes. */
void moe_placement_index(const int32_t *phy2log, int32_t slots, int32_t experts,
                         int32_t *rep, int32_t *cnt);

/* One group's load under a placement: phy2log[slots] with its index (rep,
 * cnt), counts[experts] of `tokens` tokens; rank[ep] receives every GPU's
 * load. An expert's tokens split evenly over its copies, the first copies
 * taking the remainder. Fills out (layers left to the caller).
 * O(slots). */
void moe_group_load_of(const llm_model *m, const par_layout *par, const int32_t *phy2log,
                       const int32_t *rep, const int32_t *cnt, int32_t slots,
                       const int32_t *counts, double tokens, moe_rank_load *rank,
                       moe_group_load *out);

/* One iteration's load of layer group g of `tokens` tokens under a
 * placement (phy2log with its index rep, cnt), drawn per GPU rather than per
 * expert: an expert whose count has variance below 4 is drawn exactly (once,
 * shared by its copies, split as in moe_group_load_of); the others, whose
 * counts are near-normal and almost surely positive, count as active, and
 * their copies' shares on a GPU are summed into one normal draw with the
 * summed mean and variance (copies on different GPUs drawn independently).
 * One draw per GPU instead of one per expert once batches are large.
 * janus: an active expert with copies runs whole on one of them, chosen per
 * iteration to keep the busiest GPU's active experts few (Janus's replica
 * selection: greedily, the copy on the GPU with the fewest active experts so
 * far); otherwise its tokens split evenly over its copies. scratch holds
 * `experts` ints. Fills rank[ep] and out (layers left to the caller). */
void moe_sample_group_load(moe_routing *r, int32_t g, gsl_rng *rng, int64_t tokens,
                           const llm_model *m, const par_layout *par, const int32_t *phy2log,
                           const int32_t *rep, const int32_t *cnt, int32_t slots, bool janus,
                           int32_t *scratch, moe_rank_load *rank, moe_group_load *out);

/* Contiguous placement (vLLM's "linear"): slot s holds expert s mod
 * experts, so GPU r holds a run of consecutive experts, and the redundant
 * slots copy experts 0, 1, ... The core's placement before a policy's. */
void moe_place_contiguous(int32_t experts, int32_t slots, int32_t *phy2log);

#endif
