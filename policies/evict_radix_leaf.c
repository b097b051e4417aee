/* SGLang's radix-cache eviction (RadixCache.evict, policy "lru"): free
 * blocks with nothing cached go first (SGLang's free pool); then among
 * evictable leaves of the prefix tree the least recently used (its last
 * hit or release), so a parent becomes evictable only once its children
 * are gone. Blocks with cached children go only when no leaf is free (the
 * block tree here is built from hashes and can miss a parent, where
 * SGLang's tree cannot). O(log n) per call. No params. */
#include "policies/evict_common.h"

#include <stdlib.h>
#include "sim/jsoncfg.h"

static int rl_init(const evict_setup *setup, cJSON *params, const char *path, void **state,
                   sim_err *err)
{
    static const char *const keys[] = {NULL};
    if (jcfg_check_keys(params, path, keys, err))
        return -1;
    evs_set *s = sim_xcalloc(1, sizeof *s);
    evs_init(s, setup->n_blocks, true);
    *state = s;
    return 0;
}

static void rl_insert(void *state, const evict_view *v, int32_t b)
{
    evs_insert(state, v, b, (double)v->blocks[b].last_access_ns);
}

static void rl_remove(void *state, const evict_view *v, int32_t b)
{
    (void)v;
    evs_remove(state, b);
}

static void rl_update(void *state, const evict_view *v, int32_t b) { evs_update(state, v, b); }

static int32_t rl_victim(void *state, const evict_view *v)
{
    (void)v;
    return evs_pop(state);
}

static void rl_destroy(void *state)
{
    evs_fini(state);
    free(state);
}

const evict_policy_ops evict_radix_leaf = {
    .name = "radix_leaf",
    .init = rl_init,
    .insert = rl_insert,
    .remove = rl_remove,
    .update = rl_update,
    .victim = rl_victim,
    .destroy = rl_destroy,
};
