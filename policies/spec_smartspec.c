/* SmartSpec's goodput rule (Liu et al., "Optimizing Speculative Decoding
 * for Serving Large Language Models Using Goodput", 2024): before every
 * iteration pick the draft length K in {0, .., k_max} that maximises the
 * expected tokens emitted per unit of time,
 *
 *     goodput(K) = sum_r E(alpha, min(K, cap_r)) / T_iter(K),
 *
 * with E(alpha, k) = (1 - alpha^(k+1)) / (1 - alpha) (api/spec.h) and
 * T_iter from the instance's cost model (verification plus drafting).
 * alpha is estimated online from what the instance has seen (accepted over
 * reached draft positions), starting from a prior worth `prior_weight`
 * positions. Ties go to the smaller K. Cost: k_max + 1 what-if pricings per
 * iteration.
 *
 * Params: {"prior_alpha": 0.7, "prior_weight": 16}. */
#include <stdlib.h>

#include "api/spec.h"
#include "sim/jsoncfg.h"

typedef struct smartspec {
    double prior_alpha, prior_weight;
} smartspec;

static int ss_init(int32_t k_max, cJSON *params, const char *path, void **state,
                   sim_err *err)
{
    static const char *const keys[] = {"prior_alpha", "prior_weight", NULL};
    (void)k_max;
    smartspec s;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_num(params, path, "prior_alpha", 0.7, 0, 1, &s.prior_alpha, err) ||
        jcfg_num(params, path, "prior_weight", 16, 0, 1e12, &s.prior_weight, err))
        return -1;
    smartspec *p = sim_xmalloc(sizeof *p);
    *p = s;
    *state = p;
    return 0;
}

/* The acceptance rate the policy believes. */
static double ss_alpha(const smartspec *s, const spec_view *v)
{
    double w = s->prior_weight, n = (double)v->positions_reached;
    if (w + n <= 0)
        return s->prior_alpha;
    return (s->prior_alpha * w + (double)v->positions_accepted) / (w + n);
}

static int32_t ss_choose_k(void *state, const spec_view *v)
{
    const smartspec *s = state;
    double alpha = ss_alpha(s, v);
    int32_t best = 0;
    double best_goodput = -1;
    for (int32_t k = 0; k <= v->k_max; k++) {
        double tokens = 0;
        for (int32_t c = 0; c < v->n_cand; c++)
            tokens += spec_expected_tokens(alpha, k < v->cap[c] ? k : v->cap[c]);
        double goodput = tokens / v->iter_ns(v->ctx, k);
        if (goodput > best_goodput)
            best_goodput = goodput, best = k;
    }
    return best;
}

static void ss_destroy(void *state) { free(state); }

const spec_policy_ops spec_smartspec = {
    .name = "smartspec",
    .init = ss_init,
    .choose_k = ss_choose_k,
    .destroy = ss_destroy,
};
