/* llm-d's scoring router (its endpoint picker with the precise prefix-cache
 * scorer, deploy/config/epp-precise-prefix-cache-config.yaml): each
 * candidate scores sum of weight x scorer, the highest wins (ties: the
 * lowest index). Scorers, each in [0, 1]: prefix = blocks of the prompt
 * the instance holds / blocks of the prompt; queue = (maxQ - Q_i) / (maxQ -
 * minQ) over the candidates' waiting queues (1 when all are equal); kv = 1 -
 * the instance's KV use. Weights prefix_weight 2, queue_weight 1, kv_weight
 * 1. llm-d's load signals are scraped every 50 ms: set staleness_ms to 50
 * to model that (default 0). Params: those, and index, index_blocks. */
#include <stdlib.h>

#include "policies/route_prefix_common.h"
#include "sim/jsoncfg.h"

typedef struct llmd_state {
    rp_common c;
    double w_prefix, w_queue, w_kv;
} llmd_state;

static int llmd_init(const route_setup *setup, cJSON *params, const char *path, void **state,
                     sim_err *err)
{
    static const char *const own[] = {"prefix_weight", "queue_weight", "kv_weight", NULL};
    llmd_state *s = sim_xcalloc(1, sizeof *s);
    if (rp_check_keys(params, path, own, err) ||
        rp_common_init(&s->c, setup, params, path, "precise", err) ||
        jcfg_num(params, path, "prefix_weight", 2, 0, 1e6, &s->w_prefix, err) ||
        jcfg_num(params, path, "queue_weight", 1, 0, 1e6, &s->w_queue, err) ||
        jcfg_num(params, path, "kv_weight", 1, 0, 1e6, &s->w_kv, err)) {
        rp_common_fini(&s->c);
        free(s);
        return -1;
    }
    *state = s;
    return 0;
}

static int32_t llmd_route(void *state, const route_view *v, const serve_req *req)
{
    llmd_state *s = state;
    const inst_view *load = rp_begin(&s->c, v, req);
    int32_t min_q = INT32_MAX, max_q = 0;
    for (int32_t k = 0; k < v->n_candidates; k++) {
        int32_t q = load[v->candidates[k]].n_waiting;
        min_q = q < min_q ? q : min_q;
        max_q = q > max_q ? q : max_q;
    }
    double blocks = rp_request_blocks(&s->c, req), best_score = -1;
    int32_t best = v->candidates[0];
    for (int32_t k = 0; k < v->n_candidates; k++) {
        int32_t i = v->candidates[k];
        const inst_view *x = &load[i];
        double prefix = rp_matched_blocks(&s->c, v, i, req) / blocks;
        double queue = max_q == min_q ? 1 : (double)(max_q - x->n_waiting) / (max_q - min_q);
        double kv = x->kv_total_blocks ? (double)x->kv_free_blocks / x->kv_total_blocks : 1;
        double score = s->w_prefix * prefix + s->w_queue * queue + s->w_kv * kv;
        if (score > best_score) {
            best_score = score;
            best = i;
        }
    }
    rp_routed(&s->c, v, best);
    return best;
}

static void llmd_destroy(void *state)
{
    llmd_state *s = state;
    rp_common_fini(&s->c);
    free(s);
}

const route_policy_ops route_prefix_llmd = {
    .name = "prefix_llmd",
    .init = llmd_init,
    .route = llmd_route,
    .destroy = llmd_destroy,
};
