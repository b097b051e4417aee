/* An example plugin of two ABI 1.1 families: an autoscaler (api/scale.h)
 * and a KV retention policy (api/retain.h). Build it with
 *
 *   make plugin SRC=examples/plugins/scale_retain.c
 *
 * (`make` itself builds it into build/plugins/) and name its policies as
 *
 *   "policies": {"scale": {"name": "scale_retain:queue_copy", "period_ms": 5000},
 *                "retention": {"name": "scale_retain:pin_ttl_copy",
 *                              "params": {"ttl_s": 5}}}
 *
 * Both are copies of built-ins, which reproduce their results bit for bit
 * (tests/test_plugin.c):
 *   queue_copy     autoscaler: policies/scale_queue.c (step scaling on the
 *                  waiting requests per instance)
 *   pin_ttl_copy   retention: policies/retain_pin_ttl.c (pin a finished
 *                  turn's blocks for ttl_s while the learned mean gap
 *                  between turns is at most ttl_s) */
#include <stdlib.h>

#include "api/plugin.h"

SERVESIM_PLUGIN_ABI;

static const servesim_host_api *host;   /* set once by the entry point */

/* ---- queue_copy ---------------------------------------------------------------- */

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
    if (host->check_keys(params, path, keys, err) ||
        host->num(params, path, "up_per_instance", 4, 0, 1e9, &up, err) ||
        host->num(params, path, "down_per_instance", 0.5, 0, 1e9, &down, err) ||
        host->integer(params, path, "step", 1, 1, 4096, &step, err) ||
        host->num(params, path, "down_kv_below", 0.5, 0, 1, &kv, err))
        return -1;
    if (down >= up)
        return host->errf(err, "%s.down_per_instance: expected less than up_per_instance "
                          "(%g), got %g", path, up, down);
    sq_state *s = malloc(sizeof *s);
    if (!s)
        return host->errf(err, "%s: out of memory", path);
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

static void free_state(void *state) { free(state); }

/* ---- pin_ttl_copy -------------------------------------------------------------- */

typedef struct pin_ttl {
    sim_time_ns ttl_ns;
    double max_fraction;
    double gap_sum_ns;
    uint64_t gaps;
} pin_ttl;

static int pin_init(cJSON *params, const char *path, void **state, sim_err *err)
{
    static const char *const keys[] = {"ttl_s", "max_pinned_fraction", NULL};
    double ttl_s, frac;
    *state = NULL;
    if (host->check_keys(params, path, keys, err) ||
        host->num(params, path, "ttl_s", 2, 0.001, 1e6, &ttl_s, err) ||
        host->num(params, path, "max_pinned_fraction", 1, 0, 1, &frac, err))
        return -1;
    pin_ttl *p = calloc(1, sizeof *p);
    if (!p)
        return host->errf(err, "%s: out of memory", path);
    p->ttl_ns = sim_time_add(0, ttl_s * 1e9);
    p->max_fraction = frac;
    *state = p;
    return 0;
}

static sim_time_ns pin_turn_end(void *state, const retain_view *v, const serve_req *r)
{
    pin_ttl *p = state;
    if (p->gaps && p->gap_sum_ns / (double)p->gaps > (double)p->ttl_ns)
        return 0;   /* this workload's tools take longer than the TTL */
    if ((double)(v->pinned_blocks + r->kv_blocks) > p->max_fraction * (double)v->kv_total_blocks)
        return 0;
    return p->ttl_ns;
}

static void pin_turn_arrival(void *state, const retain_view *v, const serve_req *r)
{
    (void)v;
    pin_ttl *p = state;
    p->gap_sum_ns += (double)r->session_gap_ns;
    p->gaps++;
}

/* ---- the entry point ----------------------------------------------------------- */

static const scale_policy_ops queue_copy = {
    .name = "queue_copy",
    .init = sq_init,
    .decide = sq_decide,
    .destroy = free_state,
};

static const retain_policy_ops pin_ttl_copy = {
    .name = "pin_ttl_copy",
    .init = pin_init,
    .on_turn_end = pin_turn_end,
    .on_turn_arrival = pin_turn_arrival,
    .destroy = free_state,
};

static const scale_policy_ops *const scales[] = {&queue_copy, NULL};
static const retain_policy_ops *const retains[] = {&pin_ttl_copy, NULL};

SERVESIM_EXPORT const servesim_plugin *servesim_plugin_entry(const servesim_host_api *h)
{
    static const servesim_plugin plugin = {
        SERVESIM_PLUGIN_HEADER,
        .name = "scale_retain",
        .version = "1.0",
        .scale = scales,
        .retain = retains,
    };
    host = h;
    return &plugin;
}
