/* Round-robin routing: the pool's active instances in turn, in arrival
 * order, blind to load. No params. */
#include <stdlib.h>

#include "api/route.h"
#include "sim/jsoncfg.h"

typedef struct rr_state {
    uint64_t next;
} rr_state;

static int rr_init(const route_setup *setup, cJSON *params, const char *path, void **state,
                   sim_err *err)
{
    (void)setup;
    static const char *const keys[] = {NULL};
    if (jcfg_check_keys(params, path, keys, err))
        return -1;
    rr_state *s = sim_xcalloc(1, sizeof *s);
    *state = s;
    return 0;
}

static int32_t rr_route(void *state, const route_view *v, const serve_req *req)
{
    (void)req;
    rr_state *s = state;
    return v->candidates[s->next++ % (uint64_t)v->n_candidates];
}

static void rr_destroy(void *state) { free(state); }

const route_policy_ops route_round_robin = {
    .name = "round_robin",
    .init = rr_init,
    .route = rr_route,
    .destroy = rr_destroy,
};
