/* Speculative decoding: the policy family that picks, before every
 * iteration of one serving instance, how many draft tokens K each decoding
 * sequence proposes (0 turns speculation off for the iteration).
 *
 * The core owns everything: it lists the decoding sequences that may draft
 * (each with its cap: the configured K, its output left less one, the
 * token budget and the KV it can reserve clamp it further after the
 * policy), prices what-if iterations with the instance's cost model, and
 * applies the policy's K to every candidate (min(K, cap)). The policy
 * reads a spec_view and returns K in [0, k_max].
 *
 * Adding a policy: one file policies/spec_<name>.c defining a
 * `const spec_policy_ops spec_<name>` and one line SPEC(<name>) in
 * policies/list.def. */
#ifndef API_SPEC_H
#define API_SPEC_H

#include <cjson/cJSON.h>
#include "api/request.h"

/* The most draft tokens per step servesim models (per-position metrics and
 * acceptance tables have this many entries). */
#define SPEC_MAX_K 16

typedef struct spec_view {
    sim_time_ns now;
    int32_t k_max;              /* the configured K */
    int32_t n_cand;             /* decoding sequences that may draft */
    const serve_req *const *cand;
    const int32_t *cap;         /* cap[i]: the most drafts cand[i] may take */
    /* What the instance has seen so far: draft positions reached (a
     * position is reached when every one before it was accepted) and
     * accepted. accepted / reached estimates the per-position acceptance
     * rate of a Bernoulli model. */
    uint64_t positions_reached, positions_accepted;
    /* The iteration's time in ns if every candidate drafts min(k, cap[i])
     * tokens: the target model's verification (with the iteration's other
     * items) plus the drafting, from the instance's cost model. Costs one
     * or a few cost-model evaluations per call. */
    double (*iter_ns)(void *ctx, int32_t k);
    void *ctx;
} spec_view;

typedef struct spec_policy_ops {
    const char *name;
    /* Reads the policy's params (may be an empty object; unknown keys are
     * errors naming `path`). */
    int (*init)(int32_t k_max, cJSON *params, const char *path, void **state, sim_err *err);
    int32_t (*choose_k)(void *state, const spec_view *v);
    void (*destroy)(void *state);   /* optional */
} spec_policy_ops;

/* Expected tokens one verification step emits with k drafts when each
 * position is accepted with probability alpha independently (Bernoulli):
 * (1 - alpha^(k+1)) / (1 - alpha), k + 1 at alpha 1. */
static inline double spec_expected_tokens(double alpha, int32_t k)
{
    if (alpha >= 1)
        return k + 1;
    double p = 1;
    for (int32_t i = 0; i <= k; i++)
        p *= alpha;
    return (1 - p) / (1 - alpha);
}

#endif
