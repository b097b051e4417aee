/* Least-outstanding-tokens routing: the instance with the fewest tokens
 * assigned and not yet processed (see inst_load); ties go to the lowest
 * index, so the choice is deterministic. No params, no state. */
#include "api/route.h"
#include "sim/jsoncfg.h"

static int lot_init(int32_t n_instances, cJSON *params, const char *path,
                    void **state, sim_err *err)
{
    (void)n_instances;
    static const char *const keys[] = {NULL};
    *state = NULL;
    return jcfg_check_keys(params, path, keys, err);
}

static int32_t lot_route(void *state, const route_view *v, const serve_req *req)
{
    (void)state;
    (void)req;
    int32_t best = 0;
    for (int32_t i = 1; i < v->n_instances; i++)
        if (v->load[i].outstanding_tokens < v->load[best].outstanding_tokens)
            best = i;
    return best;
}

const route_policy_ops route_least_outstanding_tokens = {
    .name = "least_outstanding_tokens",
    .init = lot_init,
    .route = lot_route,
};
