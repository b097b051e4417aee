/* slo: feedback on SLO attainment. Every tick it looks at the requests that
 * finished since the previous one: when the fraction that met both targets
 * (TTFT and TPOT) falls below `target`, each pool that takes arrivals grows
 * by `step`, and by `step` more for every further `per_miss` of the
 * shortfall (a bad window adds more); when attainment has stayed at or above
 * `down_above` for `down_after_s` and the pool's KV use is below
 * `down_kv_below`, it shrinks by one. Finished requests lag a spike by their
 * latency, so a leading signal is added: requests waiting more than
 * `queue_per_instance` per current instance count as a miss. Decode pools
 * follow the TPOT part only (their TTFT was decided upstream).
 *
 * Params: {"target": 0.9, "down_above": 0.99, "down_after_s": 120,
 *          "down_kv_below": 0.5, "step": 1, "per_miss": 0.1,
 *          "queue_per_instance": 16}. */
#include <math.h>
#include <stdlib.h>

#include "api/scale.h"
#include "sim/jsoncfg.h"

typedef struct slo_state {
    double target, down_above, down_kv, per_miss, queue_per;
    sim_time_ns down_after_ns;
    int32_t step;
    sim_time_ns good_since;   /* -1: the last window missed */
} slo_state;

static int slo_init(const scale_setup *setup, cJSON *params, const char *path, void **state,
                    sim_err *err)
{
    (void)setup;
    static const char *const keys[] = {"target", "down_above", "down_after_s",
                                       "down_kv_below", "step", "per_miss",
                                       "queue_per_instance", NULL};
    double target, above, after, kv, per_miss, queue;
    int64_t step;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_num(params, path, "target", 0.9, 0, 1, &target, err) ||
        jcfg_num(params, path, "down_above", 0.99, 0, 1, &above, err) ||
        jcfg_num(params, path, "down_after_s", 120, 0, 1e7, &after, err) ||
        jcfg_num(params, path, "down_kv_below", 0.5, 0, 1, &kv, err) ||
        jcfg_int(params, path, "step", 1, 1, 4096, &step, err) ||
        jcfg_num(params, path, "per_miss", 0.1, 1e-6, 1, &per_miss, err) ||
        jcfg_num(params, path, "queue_per_instance", 16, 0, 1e9, &queue, err))
        return -1;
    if (above < target)
        return sim_errf(err, "%s.down_above: expected at least target (%g), got %g", path,
                        target, above);
    slo_state *s = sim_xmalloc(sizeof *s);
    *s = (slo_state){target, above, kv, per_miss, queue, (sim_time_ns)(after * 1e9),
                     (int32_t)step, 0};
    *state = s;
    return 0;
}

static void slo_decide(void *state, const scale_view *v, int32_t *desired)
{
    slo_state *s = state;
    /* Attainment over the window; no completions: no evidence either way. */
    double attain = v->completed ? (double)v->met_slo / (double)v->completed : 1;
    bool miss = attain < s->target;
    if (!miss && s->good_since < 0)
        s->good_since = v->now;
    if (miss)
        s->good_since = -1;
    for (int32_t k = 0; k < v->n_pools; k++) {
        const scale_pool_view *p = &v->pools[k];
        int32_t n = p->current;
        double waiting = (double)p->waiting + (p->role != POOL_DECODE ? v->parked : 0);
        bool queued = waiting > s->queue_per * (n > 0 ? n : 1);
        if (miss || queued) {
            double shortfall = miss ? s->target - attain : 0;
            desired[k] = n + s->step * (1 + (int32_t)floor(shortfall / s->per_miss));
            if (queued)
                s->good_since = -1;
            continue;
        }
        double kv = p->kv_total_blocks ? (double)p->kv_used_blocks / p->kv_total_blocks : 0;
        if (attain >= s->down_above && s->good_since >= 0 &&
            v->now - s->good_since >= s->down_after_ns && kv < s->down_kv && n > 0)
            desired[k] = n - 1;
    }
}

static void slo_destroy(void *state) { free(state); }

const scale_policy_ops scale_slo = {
    .name = "slo",
    .init = slo_init,
    .decide = slo_decide,
    .destroy = slo_destroy,
};
