/* Least-outstanding-tokens routing: the candidate with the fewest tokens
 * assigned and not yet processed (see inst_view); ties go to the lowest
 * index, so the choice is deterministic. No params, no state. */
#include "api/route.h"
#include "sim/jsoncfg.h"

static int lot_init(const route_setup *setup, cJSON *params, const char *path,
                    void **state, sim_err *err)
{
    (void)setup;
    static const char *const keys[] = {NULL};
    *state = NULL;
    return jcfg_check_keys(params, path, keys, err);
}

static int32_t lot_route(void *state, const route_view *v, const serve_req *req)
{
    (void)state;
    (void)req;
    int32_t best = v->candidates[0];
    for (int32_t k = 1; k < v->n_candidates; k++) {
        int32_t i = v->candidates[k];
        if (v->inst[i].outstanding_tokens < v->inst[best].outstanding_tokens)
            best = i;
    }
    return best;
}

const route_policy_ops route_least_outstanding_tokens = {
    .name = "least_outstanding_tokens",
    .init = lot_init,
    .route = lot_route,
};
