/* EPLB: DeepSeek's expert-parallelism load balancer (github:deepseek-ai/EPLB,
 * eplb.py), run every period_iterations on the load of the last
 * window_iterations.
 *
 * Per layer group, on the window's token counts (in float32, as eplb.py):
 *  1. replicate: each redundant slot goes to the expert with the highest
 *     load per copy (ties: the lowest expert);
 *  2. balanced packing: copies sorted by load per copy (descending, ties
 *     in index order), each to the least-loaded GPU with a free slot (ties:
 *     the lowest GPU).
 * Hierarchical (expert_groups divisible by the nodes the group spans): the
 * expert groups are first packed onto nodes, replication and packing then
 * run within each node; otherwise the global policy (one group, one node).
 * Reproduces the README's printed phy2log for its worked example
 * (tests/test_moe.c).
 *
 * params: period_iterations (3000), window_iterations (1000, at most the
 * period) - vLLM's EPLB defaults (vllm-project/vllm#18343); expert_groups
 * (1; DeepSeek-V3 routes within 8). With no load yet (the start) the core's
 * placement is kept. */
#include <stdlib.h>
#include <string.h>

#include "api/placement.h"
#include "sim/jsoncfg.h"

typedef struct eplb_state {
    int32_t groups;   /* expert groups */
    /* scratch, sized at init */
    float *w, *tmp;
    int32_t *i0, *i1, *i2, *i3, *i4, *i5, *i6;
} eplb_state;

/* Items n, packs m (n % m == 0): pack[] and rank[] per item. */
static void balanced_packing(const float *w, int32_t n, int32_t m, int32_t *pack,
                             int32_t *rank, int32_t *order, float *pw, int32_t *items)
{
    const int32_t per = n / m;
    if (per == 1) {
        for (int32_t i = 0; i < n; i++)
            pack[i] = i, rank[i] = 0;
        return;
    }
    /* stable sort by weight, descending (insertion: n is small) */
    for (int32_t i = 0; i < n; i++) {
        int32_t j = i;
        while (j > 0 && w[order[j - 1]] < w[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    for (int32_t p = 0; p < m; p++)
        pw[p] = 0, items[p] = 0;
    for (int32_t t = 0; t < n; t++) {
        int32_t it = order[t], best = -1;
        for (int32_t p = 0; p < m; p++)
            if (items[p] < per && (best < 0 || pw[p] < pw[best]))
                best = p;
        pack[it] = best;
        rank[it] = items[best]++;
        pw[best] += w[it];
    }
}

/* num_log experts to num_phy copies: phy2log, and cnt per expert. */
static void replicate(const float *w, int32_t num_log, int32_t num_phy, int32_t *phy2log,
                      int32_t *cnt)
{
    for (int32_t e = 0; e < num_log; e++)
        phy2log[e] = e, cnt[e] = 1;
    for (int32_t i = num_log; i < num_phy; i++) {
        int32_t best = 0;
        float bv = w[0] / (float)cnt[0];
        for (int32_t e = 1; e < num_log; e++) {
            float v = w[e] / (float)cnt[e];
            if (v > bv)
                bv = v, best = e;
        }
        phy2log[i] = best;
        cnt[best]++;
    }
}

/* eplb.py's rebalance_experts_hierarchical for one layer. */
static void rebalance_layer(eplb_state *st, const float *weight, int32_t num_log,
                            int32_t num_phy, int32_t num_groups, int32_t num_nodes,
                            int32_t num_gpus, int32_t *out)
{
    const int32_t gsize = num_log / num_groups, gpn = num_groups / num_nodes;
    const int32_t per_gpu = num_phy / num_gpus, log_pn = num_log / num_nodes;
    const int32_t phy_pn = num_phy / num_nodes;
    int32_t *gpack = st->i0, *grank = st->i1, *mlog2log = st->i2, *phy2mlog = st->i3;
    int32_t *mlogcnt = st->i4, *pack = st->i5, *rank = st->i6;
    float *tpg = st->tmp, *tmlog = st->w + num_log, *tphy = tmlog + num_log;
    int32_t order[1024], items[1024];
    float pw[1024];
    /* 1: expert groups to nodes */
    for (int32_t g = 0; g < num_groups; g++) {
        tpg[g] = 0;
        for (int32_t j = 0; j < gsize; j++)
            tpg[g] += weight[g * gsize + j];
    }
    balanced_packing(tpg, num_groups, num_nodes, gpack, grank, order, pw, items);
    for (int32_t g = 0; g < num_groups; g++)
        for (int32_t j = 0; j < gsize; j++)
            mlog2log[(gpack[g] * gpn + grank[g]) * gsize + j] = g * gsize + j;
    for (int32_t x = 0; x < num_log; x++)
        tmlog[x] = weight[mlog2log[x]];
    /* 2 and 3, per node: replicate, then pack the copies onto its GPUs */
    for (int32_t n = 0; n < num_nodes; n++) {
        const float *tw = tmlog + n * log_pn;
        int32_t *p2m = phy2mlog + n * phy_pn, *cnt = mlogcnt + n * log_pn;
        replicate(tw, log_pn, phy_pn, p2m, cnt);
        for (int32_t p = 0; p < phy_pn; p++)
            tphy[p] = tw[p2m[p]] / (float)cnt[p2m[p]];
        balanced_packing(tphy, phy_pn, num_gpus / num_nodes, pack, rank, order, pw, items);
        for (int32_t p = 0; p < phy_pn; p++) {
            int32_t q = pack[p] * per_gpu + rank[p];   /* phy2pphy */
            out[n * phy_pn + q] = mlog2log[p2m[p] + n * log_pn];
        }
    }
}

static int eplb_init(const place_setup *setup, cJSON *params, const char *path, void **state,
                     place_schedule *sched, sim_err *err)
{
    static const char *const keys[] = {"period_iterations", "window_iterations",
                                       "expert_groups", NULL};
    int64_t period = 3000, window = 1000, groups = 1;
    if (params && (jcfg_check_keys(params, path, keys, err) ||
                   jcfg_int(params, path, "period_iterations", 3000, 1, INT64_MAX / 2,
                            &period, err) ||
                   jcfg_int(params, path, "window_iterations", period < 1000 ? period : 1000,
                            1, period, &window, err) ||
                   jcfg_int(params, path, "expert_groups", 1, 1, setup->experts, &groups,
                            err)))
        return -1;
    if (setup->experts % groups)
        return sim_errf(err, "%s.expert_groups: %lld does not divide the %d experts", path,
                        (long long)groups, setup->experts);
    if (setup->slots > 1024 || setup->slots % setup->ranks)
        return sim_errf(err, "%s: eplb needs at most 1024 expert slots, a multiple of the "
                        "%d GPUs; got %d", path, setup->ranks, setup->slots);
    int32_t nodes = setup->nodes;
    if (groups % nodes == 0 && (setup->ranks % nodes || setup->slots % nodes))
        return sim_errf(err, "%s: the %d GPUs over %d nodes: expected a multiple of the "
                        "nodes", path, setup->ranks, nodes);
    eplb_state *s = sim_xcalloc(1, sizeof *s);
    s->groups = (int32_t)groups;
    size_t n = (size_t)setup->slots + (size_t)setup->experts + 1;
    s->w = sim_xcalloc(3 * n, sizeof *s->w);
    s->tmp = sim_xcalloc(n, sizeof *s->tmp);
    int32_t **ints[] = {&s->i0, &s->i1, &s->i2, &s->i3, &s->i4, &s->i5, &s->i6};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        *ints[i] = sim_xcalloc(n, sizeof(int32_t));
    *state = s;
    *sched = (place_schedule){period, window};
    return 0;
}

static void eplb_place(void *state, const place_view *v, int32_t *phy2log)
{
    eplb_state *st = state;
    const place_setup *p = v->setup;
    for (int32_t g = 0; g < p->layers; g++) {
        const double *load = v->load + (size_t)g * p->experts;
        double total = 0;
        for (int32_t e = 0; e < p->experts; e++)
            total += load[e];
        if (!(total > 0))
            continue;   /* nothing observed: keep the placement */
        for (int32_t e = 0; e < p->experts; e++)
            st->w[e] = (float)load[e];
        int32_t *row = phy2log + (size_t)g * p->slots;
        if (st->groups % p->nodes == 0)
            rebalance_layer(st, st->w, p->experts, p->slots, st->groups, p->nodes, p->ranks,
                            row);
        else
            rebalance_layer(st, st->w, p->experts, p->slots, 1, 1, p->ranks, row);
    }
}

static void eplb_destroy(void *state)
{
    eplb_state *s = state;
    if (!s)
        return;
    free(s->w);
    free(s->tmp);
    int32_t *ints[] = {s->i0, s->i1, s->i2, s->i3, s->i4, s->i5, s->i6};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        free(ints[i]);
    free(s);
}

const place_policy_ops place_eplb = {
    .name = "eplb",
    .init = eplb_init,
    .place = eplb_place,
    .destroy = eplb_destroy,
};
