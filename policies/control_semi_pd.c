/* semi_pd: a controller for semi-PD (serve/disagg.h) that moves the split
 * of every GPU's SMs between its prefill and decode workers at run time,
 * as semi-PD's SLO-aware controller does, on queue lengths as the signal
 * (the view shows queues, not latencies): a prefill worker's requests
 * (waiting or running: all are before their first token) and a decode
 * worker's waiting ones (handed over, not yet running). It keeps the shares it set,
 * starting from `prefill_sm` and `decode_sm` (give the config's). Every
 * tick: with the prefill workers' mean requests above `queue_high`
 * (first tokens late) and the decode workers' at most `queue_low`, `step`
 * more goes to prefill, taken from decode down to `decode_min` (half the
 * SMs saturate HBM bandwidth in the model; shares may sum above 1); the
 * other way round (requests handed over wait for a decode slot), `step`
 * more to decode, taken from prefill down to `prefill_min`.
 *
 * Params: {"prefill_sm": 0.8, "decode_sm": 1.0, "step": 0.05,
 *          "queue_high": 4, "queue_low": 0, "prefill_min": 0.2,
 *          "decode_min": 0.5}. */
#include <math.h>
#include <stdlib.h>

#include "api/control.h"
#include "sim/jsoncfg.h"

typedef struct sp_state {
    double p, d, step, high, low, p_min, d_min;
} sp_state;

static int sp_init(const control_setup *setup, cJSON *params, const char *path, void **state,
                   sim_err *err)
{
    (void)setup;
    static const char *const keys[] = {"prefill_sm", "decode_sm", "step", "queue_high",
                                       "queue_low", "prefill_min", "decode_min", NULL};
    sp_state s;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_num(params, path, "prefill_sm", 0.8, 0.05, 1, &s.p, err) ||
        jcfg_num(params, path, "decode_sm", 1.0, 0.05, 1, &s.d, err) ||
        jcfg_num(params, path, "step", 0.05, 0.001, 0.5, &s.step, err) ||
        jcfg_num(params, path, "queue_high", 4, 0, 1e9, &s.high, err) ||
        jcfg_num(params, path, "queue_low", 0, 0, 1e9, &s.low, err) ||
        jcfg_num(params, path, "prefill_min", 0.2, 0.05, 1, &s.p_min, err) ||
        jcfg_num(params, path, "decode_min", 0.5, 0.05, 1, &s.d_min, err))
        return -1;
    sp_state *st = sim_xmalloc(sizeof *st);
    *st = s;
    *state = st;
    return 0;
}

/* Mean requests waiting (and, with `running`, running) over the active
 * instances of pools with this role. */
static double mean_queue(const control_view *v, pool_role role, bool running)
{
    double sum = 0;
    int32_t n = 0;
    for (int32_t k = 0; k < v->n_pools; k++) {
        const pool_view *p = &v->pools[k];
        if (p->role != role)
            continue;
        for (int32_t m = 0; m < p->n_instances; m++) {
            const inst_view *iv = &v->inst[p->instances[m]];
            if (iv->state == INST_ACTIVE)
                sum += iv->n_waiting + (running ? iv->n_running : 0), n++;
        }
    }
    return n ? sum / n : 0;
}

static void sp_tick(void *state, const control_view *v, control_plan *plan)
{
    sp_state *s = state;
    double pq = mean_queue(v, POOL_PREFILL, true), dq = mean_queue(v, POOL_DECODE, false);
    double p = s->p, d = s->d;
    if (pq > s->high && dq <= s->low && p < 1) {
        double give = fmin(s->step, 1 - p);
        p += give;
        d = fmax(s->d_min, d - give);
    } else if (dq > s->high && pq <= s->low && d < 1) {
        double give = fmin(s->step, 1 - d);
        d += give;
        p = fmax(s->p_min, p - give);
    }
    if (p == s->p && d == s->d)
        return;
    if (control_add(plan, (control_action){.kind = CTRL_SPLIT, .prefill_share = p,
                                           .decode_share = d}))
        s->p = p, s->d = d;
}

const control_policy_ops control_semi_pd = {
    .name = "semi_pd",
    .init = sp_init,
    .tick = sp_tick,
    .destroy = free,
};
