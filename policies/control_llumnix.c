/* llumnix: Llumnix's migration controller (OSDI'24). Every tick, within each
 * pool, it computes every instance's freeness, the decode steps it can run
 * before its memory runs out (llumnix/load_computation.py,
 * RemainingStepsLoad, read from the code):
 *
 *   defrag (default):  F = (free blocks - blocks of the first waiting
 *                       request) / (running + [any waiting])
 *   balance:           F = (free blocks - blocks of every waiting request)
 *                       / (running + waiting)
 *
 * and F = +inf with no request. A DRAINING instance is a source whatever
 * its F (Llumnix gives it infinite usage). Sources are the instances with
 * F < `source_below`, least free first; destinations the other active ones,
 * most free first; the i-th source sends one running decode request to the
 * i-th destination, the one with the fewest tokens (Llumnix's default
 * "SR", cheapest to move; "pick": "longest" for LR, most memory freed), provided the destination is freer by more than
 * `min_gap` (and, in balance mode, stays freer after taking it). The move is
 * live (serve/migrate.h) or, with "recompute": true, drops the KV and
 * prefills again at the destination (the baseline Llumnix compares with).
 *
 * Priority headroom (Llumnix's virtual usage): with `high_priority` P and
 * `headroom_blocks` H, an instance holding a request of priority <= P
 * counts H fewer free blocks, so it sheds normal requests (never the
 * high-priority ones) to keep room for them to grow.
 *
 * Params: {"mode": "defrag", "source_below": -3, "min_gap": 0,
 *          "max_per_tick": 8, "recompute": false, "pick": "shortest",
 *          "high_priority": -1, "headroom_blocks": 0}. Period: the controller's
 * period_ms (Llumnix polls every 50 ms). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/control.h"
#include "sim/jsoncfg.h"

typedef struct ll_state {
    bool defrag, recompute, longest;
    double source_below, min_gap;
    int32_t max_per_tick;
    int32_t high_priority;      /* requests with priority <= this are high; -1: none */
    int64_t headroom_blocks;
    /* scratch, grown as needed */
    int32_t *src, *dst;
    double *f;
    size_t cap;
} ll_state;

static int ll_init(const control_setup *setup, cJSON *params, const char *path, void **state,
                   sim_err *err)
{
    (void)setup;
    static const char *const keys[] = {"mode", "source_below", "min_gap", "max_per_tick",
                                       "recompute", "pick", "high_priority",
                                       "headroom_blocks", NULL};
    const char *mode, *pick;
    double below, gap;
    int64_t max, high, headroom;
    bool recompute;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_str(params, path, "mode", "defrag", &mode, err) ||
        jcfg_num(params, path, "source_below", -3, -1e12, 1e12, &below, err) ||
        jcfg_num(params, path, "min_gap", 0, 0, 1e12, &gap, err) ||
        jcfg_int(params, path, "max_per_tick", 8, 1, 4096, &max, err) ||
        jcfg_bool(params, path, "recompute", 0, &recompute, err) ||
        jcfg_str(params, path, "pick", "shortest", &pick, err) ||
        jcfg_int(params, path, "high_priority", -1, -1, INT32_MAX, &high, err) ||
        jcfg_int(params, path, "headroom_blocks", 0, 0, INT32_MAX, &headroom, err))
        return -1;
    if (strcmp(pick, "shortest") && strcmp(pick, "longest"))
        return sim_errf(err, "%s.pick: expected \"shortest\" or \"longest\", got \"%s\"",
                        path, pick);
    if (strcmp(mode, "defrag") && strcmp(mode, "balance"))
        return sim_errf(err, "%s.mode: expected \"defrag\" or \"balance\", got \"%s\"", path,
                        mode);
    ll_state *s = sim_xcalloc(1, sizeof *s);
    *s = (ll_state){.defrag = !strcmp(mode, "defrag"), .recompute = recompute != 0,
                    .longest = !strcmp(pick, "longest"), .source_below = below,
                    .min_gap = gap, .max_per_tick = (int32_t)max,
                    .high_priority = (int32_t)high, .headroom_blocks = headroom};
    *state = s;
    return 0;
}

static bool is_high(const ll_state *s, const serve_req *r)
{
    return s->high_priority >= 0 && r->priority <= s->high_priority;
}

/* Whether instance i runs or queues a high-priority request. O(requests). */
static bool holds_high(const ll_state *s, const control_view *v, int32_t i)
{
    if (s->high_priority < 0 || s->headroom_blocks == 0)
        return false;
    int32_t n;
    const serve_req *const *run = v->running(v, i, &n);
    for (int32_t k = 0; k < n; k++)
        if (is_high(s, run[k]))
            return true;
    for (const serve_req *r = v->waiting_first(v, i); r; r = req_next_waiting(r))
        if (is_high(s, r))
            return true;
    return false;
}

static int64_t blocks_of(const serve_req *r, int32_t block)
{
    return ((int64_t)req_seq_tokens(r) + block - 1) / block;
}

/* Freeness of instance i with `extra` more running requests. */
static double freeness(const ll_state *s, const control_view *v, int32_t i, int32_t block,
                       int64_t extra_blocks, int32_t extra)
{
    const inst_view *iv = &v->inst[i];
    int64_t avail = iv->kv_free_blocks - extra_blocks;
    /* Priority headroom: kept free where high-priority requests run. */
    if (holds_high(s, v, i))
        avail -= s->headroom_blocks;
    int32_t n = iv->n_running + extra;
    const serve_req *head = v->waiting_first(v, i);
    if (s->defrag) {
        if (head) {
            avail -= blocks_of(head, block);
            n++;
        }
    } else {
        for (const serve_req *r = head; r; r = req_next_waiting(r)) {
            avail -= blocks_of(r, block);
            n++;
        }
    }
    return n == 0 ? INFINITY : (double)avail / n;
}

static void grow(ll_state *s, size_t n)
{
    if (n <= s->cap)
        return;
    s->src = sim_xrealloc(s->src, n * sizeof *s->src);
    s->dst = sim_xrealloc(s->dst, n * sizeof *s->dst);
    s->f = sim_xrealloc(s->f, n * sizeof *s->f);
    s->cap = n;
}

/* Insertion sorts (pools are small): ascending / descending F, then index. */
static void sort_by_f(int32_t *a, int32_t n, const double *f, bool ascending)
{
    for (int32_t i = 1; i < n; i++) {
        int32_t x = a[i], j = i - 1;
        while (j >= 0 && (ascending ? f[a[j]] > f[x] : f[a[j]] < f[x])) {
            a[j + 1] = a[j];
            j--;
        }
        a[j + 1] = x;
    }
}

/* The running decode request with the fewest tokens (or the most), or NULL. */
static const serve_req *pick_running(const ll_state *s, const control_view *v, int32_t i)
{
    bool longest = s->longest;
    int32_t n;
    const serve_req *const *run = v->running(v, i, &n);
    const serve_req *best = NULL;
    for (int32_t k = 0; k < n; k++)
        if (req_is_decode(run[k]) && !(s->headroom_blocks && is_high(s, run[k])) &&
            (!best || (longest ? req_seq_tokens(run[k]) > req_seq_tokens(best)
                               : req_seq_tokens(run[k]) < req_seq_tokens(best))))
            best = run[k];
    return best;
}

static void ll_tick(void *state, const control_view *v, control_plan *plan)
{
    ll_state *s = state;
    grow(s, (size_t)v->n_instances + 1);
    int32_t budget = s->max_per_tick;
    for (int32_t k = 0; k < v->n_pools && budget > 0; k++) {
        const pool_view *p = &v->pools[k];
        if (p->role == POOL_PREFILL)
            continue;   /* its requests leave at prefill end anyway */
        int32_t block = p->block_size_tokens > 0 ? p->block_size_tokens : 16;
        int32_t ns = 0, nd = 0;
        for (int32_t m = 0; m < p->n_instances; m++) {
            int32_t i = p->instances[m];
            inst_state st = v->inst[i].state;
            if (st != INST_ACTIVE && st != INST_DRAINING)
                continue;
            s->f[i] = st == INST_DRAINING ? -INFINITY : freeness(s, v, i, block, 0, 0);
            if (s->f[i] < s->source_below)
                s->src[ns++] = i;
            else if (st == INST_ACTIVE)
                s->dst[nd++] = i;
        }
        sort_by_f(s->src, ns, s->f, true);
        sort_by_f(s->dst, nd, s->f, false);
        for (int32_t j = 0; j < ns && j < nd && budget > 0; j++) {
            int32_t a = s->src[j], b = s->dst[j];
            if (!(s->f[b] - s->f[a] > s->min_gap))
                continue;
            const serve_req *r = pick_running(s, v, a);
            if (!r)
                continue;
            /* Balance: the destination must stay freer than the source. */
            if (!s->defrag && isfinite(s->f[a]) &&
                freeness(s, v, b, block, blocks_of(r, block), 1) <= s->f[a])
                continue;
            if (control_add(plan, (control_action){.kind = CTRL_MOVE, .req = r, .to = b,
                                                   .mode = s->recompute ? MOVE_RECOMPUTE
                                                                        : MOVE_LIVE}))
                budget--;
        }
    }
}

static void ll_destroy(void *state)
{
    ll_state *s = state;
    free(s->src);
    free(s->dst);
    free(s->f);
    free(s);
}

const control_policy_ops control_llumnix = {
    .name = "llumnix",
    .init = ll_init,
    .tick = ll_tick,
    .destroy = ll_destroy,
};
