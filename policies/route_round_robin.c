/* Round-robin routing: instance 0, 1, ..., n-1, 0, ... in arrival order,
 * blind to load. No params. */
#include <stdlib.h>

#include "api/route.h"
#include "sim/jsoncfg.h"

typedef struct rr_state {
    int32_t n, next;
} rr_state;

static int rr_init(int32_t n_instances, cJSON *params, const char *path,
                   void **state, sim_err *err)
{
    static const char *const keys[] = {NULL};
    if (jcfg_check_keys(params, path, keys, err))
        return -1;
    rr_state *s = sim_xmalloc(sizeof *s);
    *s = (rr_state){.n = n_instances, .next = 0};
    *state = s;
    return 0;
}

static int32_t rr_route(void *state, const route_view *v, const serve_req *req)
{
    (void)v;
    (void)req;
    rr_state *s = state;
    int32_t pick = s->next;
    s->next = (s->next + 1) % s->n;
    return pick;
}

static void rr_destroy(void *state) { free(state); }

const route_policy_ops route_round_robin = {
    .name = "round_robin",
    .init = rr_init,
    .route = rr_route,
    .destroy = rr_destroy,
};
