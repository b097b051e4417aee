/* Prefix-match routing: the candidate holding the longest prefix of the
 * request's prompt; among equal matches the fewest outstanding tokens, then
 * the lowest index. With "index": "precise" (default) the match is what
 * each instance's cache holds now; with "approximate" it is the router's
 * own index of the prompts it sent (route_prefix_common.h). Params: index,
 * index_blocks, staleness_ms (of the load used to break ties). */
#include <stdlib.h>

#include "policies/route_prefix_common.h"

static int pm_init(const route_setup *setup, cJSON *params, const char *path, void **state,
                   sim_err *err)
{
    rp_common *c = sim_xcalloc(1, sizeof *c);
    if (rp_check_keys(params, path, NULL, err) ||
        rp_common_init(c, setup, params, path, "precise", err)) {
        free(c);
        return -1;
    }
    *state = c;
    return 0;
}

static int32_t pm_route(void *state, const route_view *v, const serve_req *req)
{
    rp_common *c = state;
    const inst_view *load = rp_begin(c, v, req);
    int32_t best = -1, best_m = -1;
    for (int32_t k = 0; k < v->n_candidates; k++) {
        int32_t i = v->candidates[k];
        int32_t m = rp_matched_blocks(c, v, i, req);
        if (m > best_m ||
            (m == best_m && load[i].outstanding_tokens < load[best].outstanding_tokens)) {
            best = i;
            best_m = m;
        }
    }
    rp_routed(c, v, best);
    return best;
}

static void pm_destroy(void *state)
{
    rp_common_fini(state);
    free(state);
}

const route_policy_ops route_prefix_match = {
    .name = "prefix_match",
    .init = pm_init,
    .route = pm_route,
    .destroy = pm_destroy,
};
