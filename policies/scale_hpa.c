/* hpa: Kubernetes' Horizontal Pod Autoscaler rule on a per-instance metric
 * (as KServe's concurrency target does with Knative, or an HPA on a custom
 * metric). Per pool, every tick:
 *
 *   ratio   = mean metric per instance / target
 *   desired = ceil(current x ratio), unless |ratio - 1| <= tolerance
 *             (then: no change)
 *
 * Instances still starting report no metric; as Kubernetes treats pods that
 * are not ready, they count as 0 when the ready ones ask for more (so a
 * scale-up already on its way is not asked for again) and as exactly at the
 * target when the ready ones ask for less; if that flips the direction or
 * lands within the tolerance, nothing changes. Then stabilisation: the
 * recommendations of the last scale-down window (default 300 s) and
 * scale-up window (default 0) are kept, and the result is the current count
 * raised to the lowest recommendation of the up window and lowered to the
 * highest of the down window (kube-controller-manager's
 * stabilizeRecommendationWithBehaviors). Last, the scale-up rate limit of
 * HPA's default behaviour: at most the larger of `up_max_pods` more and
 * `up_max_percent` % more than the count `up_rate_period_s` ago. The
 * defaults (tolerance 0.1, scale-down window 300 s, no scale-up window,
 * 15 s sync period as policies.scale.period_ms; 4 pods or 100 % per 15 s)
 * are Kubernetes' documented ones (kubernetes.io, "Horizontal Pod
 * Autoscaling"; its API reference words the rate limit as per 60 s).
 *
 * Metrics: "concurrency" (requests waiting or running), "queue" (waiting),
 * "kv" (fraction of KV blocks in use), "busy" (fraction of the window spent
 * in iterations).
 *
 * Params: {"metric": "concurrency", "target": 32, "tolerance": 0.1,
 *          "down_window_s": 300, "up_window_s": 0, "up_max_pods": 4,
 *          "up_max_percent": 100, "up_rate_period_s": 15}. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/scale.h"
#include "sim/jsoncfg.h"

enum hpa_metric { HPA_CONCURRENCY, HPA_QUEUE, HPA_KV, HPA_BUSY };

typedef struct hpa_rec {
    sim_time_ns at;
    int32_t desired;
    int32_t current;   /* the pool's count then, for the rate limit */
} hpa_rec;

typedef struct hpa_state {
    enum hpa_metric metric;
    double target, tolerance;
    sim_time_ns down_window_ns, up_window_ns, rate_period_ns;
    int32_t up_pods;
    double up_percent;
    int32_t n_pools, cap;       /* recommendations kept per pool */
    hpa_rec *recs;              /* n_pools rings of cap */
    int32_t *head, *count;
} hpa_state;

static int hpa_init(const scale_setup *setup, cJSON *params, const char *path, void **state,
                    sim_err *err)
{
    static const char *const keys[] = {"metric", "target", "tolerance", "down_window_s",
                                       "up_window_s", "up_max_pods", "up_max_percent",
                                       "up_rate_period_s", NULL};
    static const char *const names[] = {"concurrency", "queue", "kv", "busy"};
    const char *metric;
    double target, tol, down_s, up_s, pct, rate_s;
    int64_t pods;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_str(params, path, "metric", "concurrency", &metric, err))
        return -1;
    int m = 0;
    while (m < 4 && strcmp(metric, names[m]))
        m++;
    if (m == 4)
        return sim_errf(err, "%s.metric: expected one of: concurrency, queue, kv, busy; got "
                        "\"%s\"", path, metric);
    double def = m == HPA_CONCURRENCY ? 32 : m == HPA_QUEUE ? 4 : 0.7;
    double hi = m >= HPA_KV ? 1 : 1e9;
    if (jcfg_num(params, path, "target", def, 1e-6, hi, &target, err) ||
        jcfg_num(params, path, "tolerance", 0.1, 0, 10, &tol, err) ||
        jcfg_num(params, path, "down_window_s", 300, 0, 1e7, &down_s, err) ||
        jcfg_num(params, path, "up_window_s", 0, 0, 1e7, &up_s, err) ||
        jcfg_int(params, path, "up_max_pods", 4, 0, 1 << 20, &pods, err) ||
        jcfg_num(params, path, "up_max_percent", 100, 0, 1e6, &pct, err) ||
        jcfg_num(params, path, "up_rate_period_s", 15, 0, 1e7, &rate_s, err))
        return -1;
    hpa_state *s = sim_xcalloc(1, sizeof *s);
    s->metric = (enum hpa_metric)m;
    s->target = target;
    s->tolerance = tol;
    s->down_window_ns = (sim_time_ns)(down_s * 1e9);
    s->up_window_ns = (sim_time_ns)(up_s * 1e9);
    s->rate_period_ns = (sim_time_ns)(rate_s * 1e9);
    s->up_pods = (int32_t)pods;
    s->up_percent = pct;
    sim_time_ns window = s->down_window_ns > s->up_window_ns ? s->down_window_ns
                                                             : s->up_window_ns;
    if (s->rate_period_ns > window)
        window = s->rate_period_ns;
    s->cap = (int32_t)(window / setup->period_ns) + 2;
    s->n_pools = setup->n_pools;
    s->recs = sim_xcalloc((size_t)s->n_pools * (size_t)s->cap, sizeof *s->recs);
    s->head = sim_xcalloc((size_t)s->n_pools, sizeof *s->head);
    s->count = sim_xcalloc((size_t)s->n_pools, sizeof *s->count);
    *state = s;
    return 0;
}

/* The metric summed over the pool's active instances. */
static double hpa_sum(const hpa_state *s, const scale_view *v, int32_t k)
{
    const scale_pool_view *p = &v->pools[k];
    int32_t active = p->n_state[INST_ACTIVE];
    switch (s->metric) {
    case HPA_CONCURRENCY:
        return (double)(p->waiting + p->running);
    case HPA_QUEUE:
        return (double)p->waiting;
    case HPA_KV:
        return p->kv_total_blocks
                   ? active * (double)p->kv_used_blocks / (double)p->kv_total_blocks : 0;
    case HPA_BUSY:
        return v->window_ns > 0 ? (double)p->busy_ns / (double)v->window_ns : 0;
    }
    return 0;
}

/* Kubernetes' replica count for one pool, before stabilisation. */
static int32_t hpa_recommend(const hpa_state *s, const scale_view *v, int32_t k)
{
    const scale_pool_view *p = &v->pools[k];
    int32_t cur = p->current, ready = p->n_state[INST_ACTIVE];
    double sum = hpa_sum(s, v, k);
    if (p->role != POOL_DECODE && s->metric <= HPA_QUEUE)
        sum += v->parked;
    if (cur == 0)
        return sum > 0 ? 1 : 0;
    if (ready == 0)
        return cur;   /* nothing measured yet */
    double ratio = sum / (ready * s->target);
    if (fabs(ratio - 1) <= s->tolerance)
        return cur;
    /* The instances not ready yet: 0 when growing, at the target when
     * shrinking; no change if that flips the direction or lands within the
     * tolerance. */
    int32_t unready = cur - ready;
    if (unready > 0) {
        double again = ratio > 1 ? sum / (cur * s->target)
                                 : (sum + unready * s->target) / (cur * s->target);
        if (fabs(again - 1) <= s->tolerance || (ratio > 1) != (again > 1))
            return cur;
        ratio = again;
    }
    /* A tiny slack keeps exact multiples from rounding up by one. */
    return (int32_t)ceil(cur * ratio - 1e-9);
}

static void hpa_decide(void *state, const scale_view *v, int32_t *desired)
{
    hpa_state *s = state;
    for (int32_t k = 0; k < v->n_pools && k < s->n_pools; k++) {
        int32_t rec = hpa_recommend(s, v, k), cur = v->pools[k].current;
        hpa_rec *ring = &s->recs[(size_t)k * (size_t)s->cap];
        int32_t up = rec, down = rec, start = cur;
        for (int32_t j = 0; j < s->count[k]; j++) {
            const hpa_rec *r = &ring[(s->head[k] + j) % s->cap];
            if (v->now - r->at < s->up_window_ns && r->desired < up)
                up = r->desired;
            if (v->now - r->at < s->down_window_ns && r->desired > down)
                down = r->desired;
            if (v->now - r->at < s->rate_period_ns && r->current < start)
                start = r->current;   /* the count at the period's start */
        }
        /* Remember this one (the oldest goes when the ring is full). */
        if (s->count[k] == s->cap) {
            s->head[k] = (s->head[k] + 1) % s->cap;
            s->count[k]--;
        }
        ring[(s->head[k] + s->count[k]++) % s->cap] = (hpa_rec){v->now, rec, cur};
        int32_t out = cur;
        if (out < up)
            out = up;
        if (out > down)
            out = down;
        double by_pct = ceil(start * (1 + s->up_percent / 100) - 1e-9);
        double limit = start + s->up_pods > by_pct ? start + s->up_pods : by_pct;
        if (out > cur && out > limit)
            out = limit > cur ? (int32_t)limit : cur;
        desired[k] = out;
    }
}

static void hpa_destroy(void *state)
{
    hpa_state *s = state;
    free(s->recs);
    free(s->head);
    free(s->count);
    free(s);
}

const scale_policy_ops scale_hpa = {
    .name = "hpa",
    .init = hpa_init,
    .decide = hpa_decide,
    .destroy = hpa_destroy,
};
