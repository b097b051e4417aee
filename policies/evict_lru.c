/* LRU eviction, vLLM's (v1 KVCacheManager's free block queue): one queue of
 * every free block, cached or not, least recently freed first; a request's
 * blocks are freed tail first (the core's order), so its last blocks go
 * before its first. The victim is the queue's head whatever it holds: no
 * preference for uncached blocks, no regard for the block tree. The same
 * order as the core's built-in queue (serve/kv.c), so runs are bit for bit
 * those without a policy. O(1) per call: a doubly linked list through block
 * ids. No params. */
#include "api/evict.h"

#include <stdlib.h>
#include "sim/jsoncfg.h"

typedef struct lru_state {
    int32_t *prev, *next;
    int32_t head, tail;
} lru_state;

static int lru_init(const evict_setup *setup, cJSON *params, const char *path, void **state,
                    sim_err *err)
{
    static const char *const keys[] = {NULL};
    if (jcfg_check_keys(params, path, keys, err))
        return -1;
    lru_state *s = sim_xcalloc(1, sizeof *s);
    size_t n = (size_t)(setup->n_blocks > 0 ? setup->n_blocks : 1);
    s->prev = sim_xmalloc(n * sizeof *s->prev);
    s->next = sim_xmalloc(n * sizeof *s->next);
    s->head = s->tail = EVICT_NONE;
    *state = s;
    return 0;
}

static void lru_insert(void *state, const evict_view *v, int32_t b)
{
    (void)v;
    lru_state *s = state;
    s->prev[b] = s->tail;
    s->next[b] = EVICT_NONE;
    if (s->tail != EVICT_NONE)
        s->next[s->tail] = b;
    else
        s->head = b;
    s->tail = b;
}

static void lru_remove(void *state, const evict_view *v, int32_t b)
{
    (void)v;
    lru_state *s = state;
    if (s->prev[b] != EVICT_NONE)
        s->next[s->prev[b]] = s->next[b];
    else
        s->head = s->next[b];
    if (s->next[b] != EVICT_NONE)
        s->prev[s->next[b]] = s->prev[b];
    else
        s->tail = s->prev[b];
}

static int32_t lru_victim(void *state, const evict_view *v)
{
    lru_state *s = state;
    int32_t b = s->head;
    SIM_ASSERT(b != EVICT_NONE);
    lru_remove(s, v, b);
    return b;
}

static void lru_destroy(void *state)
{
    lru_state *s = state;
    free(s->prev);
    free(s->next);
    free(s);
}

const evict_policy_ops evict_lru = {
    .name = "lru",
    .init = lru_init,
    .insert = lru_insert,
    .remove = lru_remove,
    .victim = lru_victim,
    .destroy = lru_destroy,
};
