/* balance_queues: a cluster controller that evens out waiting queues within
 * each pool. Every tick, in each pool, when the longest waiting queue among
 * its active instances exceeds the shortest by more than `threshold`
 * requests, it moves requests from the back of the longest queue (the ones
 * that would wait longest) to the shortest, enough to meet halfway, at most
 * `max_moves` a tick. Only requests that have computed nothing move, so a
 * move is metadata and costs no KV transfer (as Llumnix moves its waiting
 * requests). Routing at arrival can go wrong later (a long prompt ahead,
 * output lengths nobody knew); this corrects the queues afterwards.
 *
 * Params: {"threshold": 4, "max_moves": 16}. */
#include <stdlib.h>

#include "api/control.h"
#include "sim/jsoncfg.h"

typedef struct bq_state {
    int32_t threshold, max_moves;
} bq_state;

static int bq_init(const control_setup *setup, cJSON *params, const char *path, void **state,
                   sim_err *err)
{
    (void)setup;
    static const char *const keys[] = {"threshold", "max_moves", NULL};
    int64_t threshold, max_moves;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_int(params, path, "threshold", 4, 1, 1 << 30, &threshold, err) ||
        jcfg_int(params, path, "max_moves", 16, 1, 4096, &max_moves, err))
        return -1;
    bq_state *s = sim_xmalloc(sizeof *s);
    *s = (bq_state){(int32_t)threshold, (int32_t)max_moves};
    *state = s;
    return 0;
}

static void bq_tick(void *state, const control_view *v, control_plan *plan)
{
    const bq_state *s = state;
    for (int32_t k = 0; k < v->n_pools; k++) {
        const pool_view *p = &v->pools[k];
        int32_t longest = -1, shortest = -1;
        for (int32_t m = 0; m < p->n_instances; m++) {
            int32_t i = p->instances[m];
            if (v->inst[i].state != INST_ACTIVE)
                continue;
            if (longest < 0 || v->inst[i].n_waiting > v->inst[longest].n_waiting)
                longest = i;
            if (shortest < 0 || v->inst[i].n_waiting < v->inst[shortest].n_waiting)
                shortest = i;
        }
        if (longest < 0 || longest == shortest)
            continue;
        int32_t len = v->inst[longest].n_waiting, gap = len - v->inst[shortest].n_waiting;
        if (gap <= s->threshold)
            continue;
        int32_t moves = gap / 2 < s->max_moves ? gap / 2 : s->max_moves;
        /* The back `moves` of the queue: skip the first len - moves. */
        int32_t pos = 0;
        for (const serve_req *r = v->waiting_first(v, longest); r; r = req_next_waiting(r)) {
            if (pos++ < len - moves || r->computed_tokens > 0)
                continue;
            if (!control_add(plan, (control_action){.kind = CTRL_MOVE, .req = r,
                                                    .to = shortest,
                                                    .mode = MOVE_RECOMPUTE}))
                return;
        }
    }
}

static void bq_destroy(void *state) { free(state); }

const control_policy_ops control_balance_queues = {
    .name = "balance_queues",
    .init = bq_init,
    .tick = bq_tick,
    .destroy = bq_destroy,
};
