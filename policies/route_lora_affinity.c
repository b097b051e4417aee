/* LoRA-affinity routing (llm-d's LoRA-affinity scorer weighed with load,
 * as llm-d and BLIS combine scorers): each candidate scores
 *
 *     affinity_weight x lora_affinity + load_weight x (1 - load / max load)
 *
 * where lora_affinity is 1 when the request's adapter is in one of the
 * instance's GPU slots, 0.8 when a slot is free, 0 when a load would evict
 * (route_view.lora_affinity), and load is the outstanding tokens (the
 * largest among the candidates normalises it; all 0 gives 1). The highest
 * score wins; ties go to the lowest index. Without LoRA every affinity is
 * 0 and this is least-outstanding-tokens.
 *
 * Params: {"affinity_weight": 1, "load_weight": 1}. */
#include <stdlib.h>

#include "api/route.h"
#include "sim/jsoncfg.h"

typedef struct lora_aff {
    double affinity_weight, load_weight;
} lora_aff;

static int aff_init(const route_setup *setup, cJSON *params, const char *path, void **state,
                    sim_err *err)
{
    (void)setup;
    static const char *const keys[] = {"affinity_weight", "load_weight", NULL};
    lora_aff s;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_num(params, path, "affinity_weight", 1, 0, 1e6, &s.affinity_weight, err) ||
        jcfg_num(params, path, "load_weight", 1, 0, 1e6, &s.load_weight, err))
        return -1;
    lora_aff *p = sim_xmalloc(sizeof *p);
    *p = s;
    *state = p;
    return 0;
}

static int32_t aff_route(void *state, const route_view *v, const serve_req *req)
{
    const lora_aff *s = state;
    int64_t most = 0;
    for (int32_t k = 0; k < v->n_candidates; k++)
        if (v->inst[v->candidates[k]].outstanding_tokens > most)
            most = v->inst[v->candidates[k]].outstanding_tokens;
    int32_t best = v->candidates[0];
    double best_score = -1;
    for (int32_t k = 0; k < v->n_candidates; k++) {
        int32_t i = v->candidates[k];
        double load = most > 0 ? (double)v->inst[i].outstanding_tokens / (double)most : 0;
        double score = s->affinity_weight * v->lora_affinity(v, i, req) +
                       s->load_weight * (1 - load);
        if (score > best_score)
            best_score = score, best = i;
    }
    return best;
}

static void aff_destroy(void *state) { free(state); }

const route_policy_ops route_lora_affinity = {
    .name = "lora_affinity",
    .init = aff_init,
    .route = aff_route,
    .destroy = aff_destroy,
};
