/* predictive: sizes each pool that takes arrivals for the arrival rate it
 * forecasts `lead_s` ahead (set it near the cold start, so that capacity is
 * ready when the load arrives), as NVIDIA Dynamo's planner sizes pools from
 * a load predictor and per-engine throughput. Every tick it observes the
 * cluster's arrival rate over the window and updates its forecaster:
 *   "constant": the last window's rate;
 *   "ewma":     level += alpha (rate - level);
 *   "holt":     Holt's linear trend: level and trend per tick (alpha, beta),
 *               forecast = level + trend x lead / period.
 * The pool needs ceil(headroom x forecast / rps_per_instance) instances,
 * divided among the arrival pools by their share of the window's arrivals
 * (evenly when none arrived). Scaling down follows the forecast too; the
 * core's down_cooldown_s damps it. rps_per_instance is what one instance
 * serves within the SLO: measure it first (servesim capacity).
 *
 * Params: {"rps_per_instance": required, "method": "holt", "alpha": 0.5,
 *          "beta": 0.3, "lead_s": 60, "headroom": 1.1}. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/scale.h"
#include "sim/jsoncfg.h"

enum { PRED_CONSTANT, PRED_EWMA, PRED_HOLT };

typedef struct pred_state {
    int method;
    double rps, alpha, beta, headroom;
    sim_time_ns lead_ns, period_ns;
    double level, trend;
    int seen;
} pred_state;

static int pred_init(const scale_setup *setup, cJSON *params, const char *path,
                     void **state, sim_err *err)
{
    static const char *const keys[] = {"rps_per_instance", "method", "alpha", "beta",
                                       "lead_s", "headroom", NULL};
    static const char *const names[] = {"constant", "ewma", "holt"};
    const char *method;
    double rps, alpha, beta, lead, headroom;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_num(params, path, "rps_per_instance", -1, -1, 1e9, &rps, err) ||
        jcfg_str(params, path, "method", "holt", &method, err) ||
        jcfg_num(params, path, "alpha", 0.5, 1e-6, 1, &alpha, err) ||
        jcfg_num(params, path, "beta", 0.3, 0, 1, &beta, err) ||
        jcfg_num(params, path, "lead_s", 60, 0, 1e7, &lead, err) ||
        jcfg_num(params, path, "headroom", 1.1, 0.1, 100, &headroom, err))
        return -1;
    if (rps <= 0)
        return sim_errf(err, "%s.rps_per_instance: expected a rate > 0 (requests/s one "
                        "instance serves within the SLO)", path);
    int m = 0;
    while (m < 3 && strcmp(method, names[m]))
        m++;
    if (m == 3)
        return sim_errf(err, "%s.method: expected one of: constant, ewma, holt; got \"%s\"",
                        path, method);
    pred_state *s = sim_xcalloc(1, sizeof *s);
    *s = (pred_state){.method = m, .rps = rps, .alpha = alpha, .beta = beta,
                      .headroom = headroom, .lead_ns = (sim_time_ns)(lead * 1e9),
                      .period_ns = setup->period_ns};
    *state = s;
    return 0;
}

/* The rate forecast lead_ns ahead, after observing `rate`. */
static double pred_observe(pred_state *s, double rate)
{
    if (!s->seen++) {
        s->level = rate;
        s->trend = 0;
        return rate;
    }
    switch (s->method) {
    case PRED_CONSTANT:
        s->level = rate;
        return rate;
    case PRED_EWMA:
        s->level += s->alpha * (rate - s->level);
        return s->level;
    default: {
        double prev = s->level;
        s->level = s->alpha * rate + (1 - s->alpha) * (s->level + s->trend);
        s->trend = s->beta * (s->level - prev) + (1 - s->beta) * s->trend;
        double f = s->level + s->trend * (double)s->lead_ns / (double)s->period_ns;
        return f > 0 ? f : 0;
    }
    }
}

static void pred_decide(void *state, const scale_view *v, int32_t *desired)
{
    pred_state *s = state;
    if (v->window_ns <= 0)
        return;   /* the first tick, at time 0: nothing observed */
    double forecast = pred_observe(s, v->arrival_rate_per_s);
    uint64_t routed = 0;
    int32_t takers = 0;
    for (int32_t k = 0; k < v->n_pools; k++)
        if (v->pools[k].role != POOL_DECODE) {
            routed += v->pools[k].arrivals;
            takers++;
        }
    for (int32_t k = 0; k < v->n_pools; k++) {
        const scale_pool_view *p = &v->pools[k];
        if (p->role == POOL_DECODE)
            continue;
        double share = routed ? (double)p->arrivals / (double)routed : 1.0 / takers;
        desired[k] = (int32_t)ceil(s->headroom * forecast * share / s->rps - 1e-9);
    }
}

static void pred_destroy(void *state) { free(state); }

const scale_policy_ops scale_predictive = {
    .name = "predictive",
    .init = pred_init,
    .decide = pred_decide,
    .destroy = pred_destroy,
};
