/* Dynamo's KV router (NVIDIA Dynamo docs, "KV cache routing"): the cost of
 * sending the request to instance i is
 *     overlap_weight x prefill_blocks_i + decode_blocks_i,
 * prefill_blocks_i = (the instance's outstanding tokens + this prompt's
 * tokens - the prompt tokens i holds) / block size, decode_blocks_i = the KV
 * blocks i uses now. Dynamo counts only tokens still to prefill; servesim's
 * inst_view offers outstanding tokens (prefill and output still to come),
 * used here in their place. temperature 0 picks the lowest cost (ties: the
 * lowest index); above 0 it draws from softmax(-cost / (temperature x the
 * largest cost)), a draw fixed by the request id, so runs stay
 * deterministic. Params: overlap_weight (1), temperature (0), and index,
 * index_blocks, staleness_ms (route_prefix_common.h; index precise). */
#include <math.h>
#include <stdlib.h>

#include "policies/route_prefix_common.h"
#include "sim/jsoncfg.h"

typedef struct dyn_state {
    rp_common c;
    double overlap_weight, temperature;
    double *cost;
    int32_t cost_cap;
} dyn_state;

static int dyn_init(const route_setup *setup, cJSON *params, const char *path, void **state,
                    sim_err *err)
{
    static const char *const own[] = {"overlap_weight", "temperature", NULL};
    dyn_state *s = sim_xcalloc(1, sizeof *s);
    if (rp_check_keys(params, path, own, err) ||
        rp_common_init(&s->c, setup, params, path, "precise", err) ||
        jcfg_num(params, path, "overlap_weight", 1, 0, 1e6, &s->overlap_weight, err) ||
        jcfg_num(params, path, "temperature", 0, 0, 1e6, &s->temperature, err)) {
        rp_common_fini(&s->c);
        free(s);
        return -1;
    }
    *state = s;
    return 0;
}

static int32_t dyn_route(void *state, const route_view *v, const serve_req *req)
{
    dyn_state *s = state;
    const inst_view *load = rp_begin(&s->c, v, req);
    if (v->n_candidates > s->cost_cap) {
        s->cost_cap = v->n_candidates * 2;
        s->cost = sim_xrealloc(s->cost, (size_t)s->cost_cap * sizeof *s->cost);
    }
    double b = s->c.block, worst = 0;
    int32_t best = 0;
    for (int32_t k = 0; k < v->n_candidates; k++) {
        int32_t i = v->candidates[k];
        double cached = (double)rp_matched_blocks(&s->c, v, i, req) * b;
        double prefill = ((double)load[i].outstanding_tokens + req->input_tokens - cached) / b;
        double decode = (double)(load[i].kv_total_blocks - load[i].kv_free_blocks);
        s->cost[k] = s->overlap_weight * (prefill > 0 ? prefill : 0) + decode;
        if (s->cost[k] < s->cost[best])
            best = k;
        if (s->cost[k] > worst)
            worst = s->cost[k];
    }
    if (s->temperature > 0 && worst > 0) {
        double sum = 0;
        for (int32_t k = 0; k < v->n_candidates; k++)
            sum += exp(-s->cost[k] / (s->temperature * worst));
        double u = rp_uniform(req, 0x64796e616d6fULL) * sum, acc = 0;
        for (best = 0; best < v->n_candidates - 1; best++) {
            acc += exp(-s->cost[best] / (s->temperature * worst));
            if (u < acc)
                break;
        }
    }
    int32_t pick = v->candidates[best];
    rp_routed(&s->c, v, pick);
    return pick;
}

static void dyn_destroy(void *state)
{
    dyn_state *s = state;
    rp_common_fini(&s->c);
    free(s->cost);
    free(s);
}

const route_policy_ops route_prefix_dynamo = {
    .name = "prefix_dynamo",
    .init = dyn_init,
    .route = dyn_route,
    .destroy = dyn_destroy,
};
