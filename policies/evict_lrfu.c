/* LRFU eviction (Lee et al., IEEE ToC 2001; the family Crystal-KV builds
 * on): each block has a combined recency-frequency value, CRF <- 1 +
 * 2^(-dt/tau) CRF at every reference, decaying as 2^(-t/tau) between them;
 * the free cached block with the lowest CRF now goes first (nothing-cached
 * blocks before, leaves before parents with "leaf_only"). tau -> infinity
 * is LFU, tau -> 0 is LRU. References: the request that filled the block
 * and each later hit, counted when the block is freed (at its last access
 * time). Since all CRFs decay at one rate, the order at any time is that of
 * log2(CRF) + t_ref / tau, a key that never changes while the block is
 * free: O(log n) per call. Params: "tau_s" (default 60). */
#include "policies/evict_common.h"

#include <math.h>
#include <stdlib.h>
#include "sim/jsoncfg.h"

typedef struct lrfu_state {
    evs_set set;
    double tau_ns;
    double *crf;          /* at t_ref */
    sim_time_ns *t_ref;
    uint64_t *hash;       /* the contents crf is for */
    uint32_t *hits;       /* hits already counted */
} lrfu_state;

static int lrfu_init(const evict_setup *setup, cJSON *params, const char *path, void **state,
                     sim_err *err)
{
    static const char *const keys[] = {"tau_s", NULL};
    bool leaf;
    double tau_s;
    if (evs_params(params, path, keys, &leaf, err) ||
        jcfg_num(params, path, "tau_s", 60, 1e-6, 1e9, &tau_s, err))
        return -1;
    lrfu_state *s = sim_xcalloc(1, sizeof *s);
    size_t n = (size_t)(setup->n_blocks > 0 ? setup->n_blocks : 1);
    evs_init(&s->set, setup->n_blocks, leaf);
    s->tau_ns = tau_s * 1e9;
    s->crf = sim_xcalloc(n, sizeof *s->crf);
    s->t_ref = sim_xcalloc(n, sizeof *s->t_ref);
    s->hash = sim_xcalloc(n, sizeof *s->hash);
    s->hits = sim_xcalloc(n, sizeof *s->hits);
    *state = s;
    return 0;
}

static void lrfu_insert(void *state, const evict_view *v, int32_t b)
{
    lrfu_state *s = state;
    const evict_block *x = &v->blocks[b];
    sim_time_ns t = x->last_access_ns;
    if (x->hash != s->hash[b]) {   /* new contents: the filling request's reference */
        s->hash[b] = x->hash;
        s->crf[b] = 1.0 + x->hits;
        s->hits[b] = x->hits;
        s->t_ref[b] = t;
    } else if (x->hits != s->hits[b]) {
        double decay = exp2(-(double)(t - s->t_ref[b]) / s->tau_ns);
        s->crf[b] = (double)(x->hits - s->hits[b]) + decay * s->crf[b];
        s->hits[b] = x->hits;
        s->t_ref[b] = t;
    }
    evs_insert(&s->set, v, b, log2(s->crf[b]) + (double)s->t_ref[b] / s->tau_ns);
}

static void lrfu_remove(void *state, const evict_view *v, int32_t b)
{
    (void)v;
    evs_remove(&((lrfu_state *)state)->set, b);
}

static void lrfu_update(void *state, const evict_view *v, int32_t b)
{
    evs_update(&((lrfu_state *)state)->set, v, b);
}

static int32_t lrfu_victim(void *state, const evict_view *v)
{
    (void)v;
    return evs_pop(&((lrfu_state *)state)->set);
}

static void lrfu_destroy(void *state)
{
    lrfu_state *s = state;
    evs_fini(&s->set);
    free(s->crf);
    free(s->t_ref);
    free(s->hash);
    free(s->hits);
    free(s);
}

const evict_policy_ops evict_lrfu = {
    .name = "lrfu",
    .init = lrfu_init,
    .insert = lrfu_insert,
    .remove = lrfu_remove,
    .update = lrfu_update,
    .victim = lrfu_victim,
    .destroy = lrfu_destroy,
};
