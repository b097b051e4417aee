/* most_free_kv: the candidate with the most free KV blocks (ties: the
 * lowest index). Meant for choosing the decode instance of a disaggregated
 * hand-off (serve/disagg.h), where memory, not compute, bounds a decode
 * instance; as an arrival router it spreads KV use. No params. */
#include "api/route.h"
#include "sim/jsoncfg.h"

static int mf_init(const route_setup *setup, cJSON *params, const char *path, void **state,
                   sim_err *err)
{
    (void)setup;
    static const char *const keys[] = {NULL};
    *state = NULL;
    return jcfg_check_keys(params, path, keys, err);
}

static int32_t mf_route(void *state, const route_view *v, const serve_req *req)
{
    (void)state, (void)req;
    int32_t best = v->candidates[0];
    for (int32_t k = 1; k < v->n_candidates; k++) {
        int32_t i = v->candidates[k];
        if (v->inst[i].kv_free_blocks > v->inst[best].kv_free_blocks)
            best = i;
    }
    return best;
}

const route_policy_ops route_most_free_kv = {
    .name = "most_free_kv",
    .init = mf_init,
    .route = mf_route,
};
