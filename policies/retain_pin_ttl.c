/* KV retention "pin_ttl" (Continuum, as released: policies/continuum.py in
 * AgentServeSim): a finished turn's blocks are pinned for `ttl_s` (default 2)
 * if the mean tool/think gap learned so far is at most ttl_s, or no gap has
 * been seen yet; else released at once. A pin ends when the session's next
 * turn is admitted on the instance (its blocks then belong to that turn) or
 * when the TTL runs out (the blocks fall to the prefix cache). Sessions have
 * no tool names here, so one mean covers every gap seen on the instance.
 * `max_pinned_fraction` (default 1) pins only while pinned blocks stay
 * under that share of the instance's KV. State: the running mean. */
#include <stdlib.h>

#include "api/retain.h"
#include "sim/jsoncfg.h"

typedef struct pin_ttl {
    sim_time_ns ttl_ns;
    double max_fraction;
    double gap_sum_ns;
    uint64_t gaps;
} pin_ttl;

static int pin_ttl_init(cJSON *params, const char *path, void **state, sim_err *err)
{
    static const char *const keys[] = {"ttl_s", "max_pinned_fraction", NULL};
    double ttl_s, frac;
    *state = NULL;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_num(params, path, "ttl_s", 2, 0.001, 1e6, &ttl_s, err) ||
        jcfg_num(params, path, "max_pinned_fraction", 1, 0, 1, &frac, err))
        return -1;
    pin_ttl *p = sim_xcalloc(1, sizeof *p);
    p->ttl_ns = sim_time_add(0, ttl_s * 1e9);
    p->max_fraction = frac;
    *state = p;
    return 0;
}

static sim_time_ns pin_ttl_turn_end(void *state, const retain_view *v, const serve_req *r)
{
    pin_ttl *p = state;
    if (p->gaps && p->gap_sum_ns / (double)p->gaps > (double)p->ttl_ns)
        return 0;   /* this workload's tools take longer than the TTL */
    if ((double)(v->pinned_blocks + r->kv_blocks) > p->max_fraction * (double)v->kv_total_blocks)
        return 0;
    return p->ttl_ns;
}

static void pin_ttl_turn_arrival(void *state, const retain_view *v, const serve_req *r)
{
    (void)v;
    pin_ttl *p = state;
    p->gap_sum_ns += (double)r->session_gap_ns;
    p->gaps++;
}

static void pin_ttl_destroy(void *state) { free(state); }

const retain_policy_ops retain_pin_ttl = {
    .name = "pin_ttl",
    .init = pin_ttl_init,
    .on_turn_end = pin_ttl_turn_end,
    .on_turn_arrival = pin_ttl_turn_arrival,
    .destroy = pin_ttl_destroy,
};
