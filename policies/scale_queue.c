/* queue: step scaling on the waiting queue. Every tick, in each pool, the
 * requests waiting per instance (over its current instances, starting ones
 * included, so that capacity already on its way counts) are compared with
 * two thresholds: above `up_per_instance` the pool grows by `step`, below
 * `down_per_instance` (and with its KV use under `down_kv_below`) it shrinks
 * by one. The rule of AWS step scaling and of KEDA's queue-length scalers.
 * Requests parked for want of any active instance count as waiting in every
 * pool that takes arrivals.
 *
 * Params: {"up_per_instance": 4, "down_per_instance": 0.5, "step": 1,
 *          "down_kv_below": 0.5}. */
#include <stdlib.h>

#include "api/scale.h"
#include "sim/jsoncfg.h"

typedef struct sq_state {
    double up, down, down_kv;
    int32_t step;
} sq_state;

static int sq_init(const scale_setup *setup, cJSON *params, const char *path, void **state,
                   sim_err *err)
{
    (void)setup;
    static const char *const keys[] = {"up_per_instance", "down_per_instance", "step",
                                       "down_kv_below", NULL};
    double up, down, kv;
    int64_t step;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_num(params, path, "up_per_instance", 4, 0, 1e9, &up, err) ||
        jcfg_num(params, path, "down_per_instance", 0.5, 0, 1e9, &down, err) ||
        jcfg_int(params, path, "step", 1, 1, 4096, &step, err) ||
        jcfg_num(params, path, "down_kv_below", 0.5, 0, 1, &kv, err))
        return -1;
    if (down >= up)
        return sim_errf(err, "%s.down_per_instance: expected less than up_per_instance (%g), "
                        "got %g", path, up, down);
    sq_state *s = sim_xmalloc(sizeof *s);
    *s = (sq_state){up, down, kv, (int32_t)step};
    *state = s;
    return 0;
}

static void sq_decide(void *state, const scale_view *v, int32_t *desired)
{
    const sq_state *s = state;
    for (int32_t k = 0; k < v->n_pools; k++) {
        const scale_pool_view *p = &v->pools[k];
        double waiting = (double)p->waiting;
        if (p->role != POOL_DECODE)
            waiting += v->parked;
        int32_t n = p->current;
        double per = n > 0 ? waiting / n : waiting > 0 ? 1e300 : 0;
        double kv = p->kv_total_blocks ? (double)p->kv_used_blocks / p->kv_total_blocks : 0;
        if (per > s->up)
            desired[k] = n + s->step;
        else if (per < s->down && kv < s->down_kv && n > 0)
            desired[k] = n - 1;
    }
}

static void sq_destroy(void *state) { free(state); }

const scale_policy_ops scale_queue = {
    .name = "queue",
    .init = sq_init,
    .decide = sq_decide,
    .destroy = sq_destroy,
};
