/* GDSF eviction (Greedy-Dual-Size-Frequency, Cherkasova 1998), cost-aware:
 * a free cached block's priority is H = L + (1 + hits) x cost / size,
 * where cost is the time to compute the block again at its depth (the
 * instance's cost model, evict_view.recompute_ns: a block deep in a long
 * prompt attends over more context, so it costs more), size is one block,
 * and L is the priority of the last cached block evicted (the "inflation"
 * that lets blocks no longer hit age out). Lowest H goes first; free blocks
 * with nothing cached go before any; leaves before parents with
 * "leaf_only". O(log n) per call. */
#include "policies/evict_common.h"

#include <stdlib.h>

typedef struct gdsf_state {
    evs_set set;
    double clock;   /* L */
} gdsf_state;

static int gdsf_init(const evict_setup *setup, cJSON *params, const char *path, void **state,
                     sim_err *err)
{
    bool leaf;
    if (evs_params(params, path, NULL, &leaf, err))
        return -1;
    gdsf_state *s = sim_xcalloc(1, sizeof *s);
    evs_init(&s->set, setup->n_blocks, leaf);
    *state = s;
    return 0;
}

static void gdsf_insert(void *state, const evict_view *v, int32_t b)
{
    gdsf_state *s = state;
    const evict_block *x = &v->blocks[b];
    double h = x->hash ? s->clock + (1.0 + x->hits) * v->recompute_ns(v, x->depth) : 0;
    evs_insert(&s->set, v, b, h);
}

static void gdsf_remove(void *state, const evict_view *v, int32_t b)
{
    (void)v;
    evs_remove(&((gdsf_state *)state)->set, b);
}

static void gdsf_update(void *state, const evict_view *v, int32_t b)
{
    evs_update(&((gdsf_state *)state)->set, v, b);
}

static int32_t gdsf_victim(void *state, const evict_view *v)
{
    gdsf_state *s = state;
    double h = evs_first_key(&s->set);
    int32_t b = evs_pop(&s->set);
    if (v->blocks[b].hash && h > s->clock)
        s->clock = h;
    return b;
}

static void gdsf_destroy(void *state)
{
    gdsf_state *s = state;
    evs_fini(&s->set);
    free(s);
}

const evict_policy_ops evict_gdsf = {
    .name = "gdsf",
    .init = gdsf_init,
    .insert = gdsf_insert,
    .remove = gdsf_remove,
    .update = gdsf_update,
    .victim = gdsf_victim,
    .destroy = gdsf_destroy,
};
