/* LFU eviction: free blocks with nothing cached go first; then the cached
 * block with the fewest hits (times a later request matched it since it was
 * cached), leaves before blocks with cached children ("leaf_only", default
 * true), least recently freed first among equals. Hits are counted from
 * caching, not aged: an old, once-popular prefix stays (see lrfu for
 * ageing). O(log n) per call (evict_common.h). */
#include "policies/evict_common.h"

#include <stdlib.h>

static int lfu_init(const evict_setup *setup, cJSON *params, const char *path, void **state,
                    sim_err *err)
{
    bool leaf;
    if (evs_params(params, path, NULL, &leaf, err))
        return -1;
    evs_set *s = sim_xcalloc(1, sizeof *s);
    evs_init(s, setup->n_blocks, leaf);
    *state = s;
    return 0;
}

static void lfu_insert(void *state, const evict_view *v, int32_t b)
{
    evs_insert(state, v, b, (double)v->blocks[b].hits);
}

static void lfu_remove(void *state, const evict_view *v, int32_t b)
{
    (void)v;
    evs_remove(state, b);
}

static void lfu_update(void *state, const evict_view *v, int32_t b) { evs_update(state, v, b); }

static int32_t lfu_victim(void *state, const evict_view *v)
{
    (void)v;
    return evs_pop(state);
}

static void lfu_destroy(void *state)
{
    evs_fini(state);
    free(state);
}

const evict_policy_ops evict_lfu = {
    .name = "lfu",
    .init = lfu_init,
    .insert = lfu_insert,
    .remove = lfu_remove,
    .update = lfu_update,
    .victim = lfu_victim,
    .destroy = lfu_destroy,
};
