/* saturation: sizes each pool by its KV demand, as BLIS's saturation
 * analyser and llm-d's workload variant autoscaler do. Demand is the KV in
 * use on its active instances plus what its waiting requests will need
 * (their count x the window's mean prompt length, in blocks); supply is its
 * active instances' KV. The pool grows to ceil(demand / (up_util x KV per
 * instance)) when that is above its current count (instances still
 * starting count as supply on their way), and shrinks by one when the
 * demand would still fit in one instance fewer at down_util.
 *
 * Params: {"up_util": 0.8, "down_util": 0.4}. */
#include <math.h>
#include <stdlib.h>

#include "api/scale.h"
#include "sim/jsoncfg.h"

typedef struct sat_state {
    double up, down;
    double mean_input;   /* tokens, the last window with arrivals */
} sat_state;

static int sat_init(const scale_setup *setup, cJSON *params, const char *path, void **state,
                    sim_err *err)
{
    (void)setup;
    static const char *const keys[] = {"up_util", "down_util", NULL};
    double up, down;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_num(params, path, "up_util", 0.8, 0.01, 1, &up, err) ||
        jcfg_num(params, path, "down_util", 0.4, 0, 1, &down, err))
        return -1;
    if (down >= up)
        return sim_errf(err, "%s.down_util: expected less than up_util (%g), got %g", path, up,
                        down);
    sat_state *s = sim_xmalloc(sizeof *s);
    *s = (sat_state){up, down, 0};
    *state = s;
    return 0;
}

static void sat_decide(void *state, const scale_view *v, int32_t *desired)
{
    sat_state *s = state;
    if (v->arrivals)
        s->mean_input = (double)v->arrival_input_tokens / (double)v->arrivals;
    for (int32_t k = 0; k < v->n_pools; k++) {
        const scale_pool_view *p = &v->pools[k];
        int32_t active = p->n_state[INST_ACTIVE], cur = p->current;
        if (active == 0 || p->kv_total_blocks == 0)
            continue;   /* nothing measured (the core starts one from zero) */
        double per = (double)p->kv_total_blocks / active;
        double waiting = (double)p->waiting + (p->role != POOL_DECODE ? v->parked : 0);
        double demand = (double)p->kv_used_blocks +
                        waiting * ceil(s->mean_input / p->block_size_tokens);
        int32_t need = (int32_t)ceil(demand / (s->up * per) - 1e-9);
        if (need > cur)
            desired[k] = need;
        else if (cur > 1 && demand <= s->down * per * (cur - 1))
            desired[k] = cur - 1;
    }
}

static void sat_destroy(void *state) { free(state); }

const scale_policy_ops scale_saturation = {
    .name = "saturation",
    .init = sat_init,
    .decide = sat_decide,
    .destroy = sat_destroy,
};
