/* LRU eviction, vLLM's (v1 KVCacheManager's free block queue): one queue of
 * every free block, cached or not, least recently freed first; a request's
 * blocks are freed tail first (the core's order), so its last blocks go
 * before its first. The victim is the queue's head whatever it holds: no
 * preference for uncached blocks, no regard for the block tree. The same
 * order as the core's built-in queue (serve/kv.c), so runs are bit for bit
 * those without a policy. O(1) per call: a doubly linked list through block
 * ids. No params.
 *
 * The core keeps this order itself (.builtin: a ring in serve/kv.c that knows
 * its next victims in advance and fetches them ahead), so a run never calls
 * these functions; they are the reference its queue is tested against. */
#include "api/evict.h"

#include <stdlib.h>
#include "sim/jsoncfg.h"

typedef struct lru_link {
    int32_t prev, next;   /* together: one cache line per block touched */
} lru_link;

typedef struct lru_state {
    lru_link *l;
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
    s->l = sim_xmalloc(n * sizeof *s->l);
    s->head = s->tail = EVICT_NONE;
    *state = s;
    return 0;
}

static void lru_insert(void *state, const evict_view *v, int32_t b)
{
    (void)v;
    lru_state *s = state;
    s->l[b] = (lru_link){s->tail, EVICT_NONE};
    if (s->tail != EVICT_NONE)
        s->l[s->tail].next = b;
    else
        s->head = b;
    s->tail = b;
}

static void lru_remove(void *state, const evict_view *v, int32_t b)
{
    (void)v;
    lru_state *s = state;
    lru_link x = s->l[b];
    if (x.prev != EVICT_NONE)
        s->l[x.prev].next = x.next;
    else
        s->head = x.next;
    if (x.next != EVICT_NONE)
        s->l[x.next].prev = x.prev;
    else
        s->tail = x.prev;
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
    free(s->l);
    free(s);
}

const evict_policy_ops evict_lru = {
    .name = "lru",
    .builtin = true,
    .init = lru_init,
    .insert = lru_insert,
    .remove = lru_remove,
    .victim = lru_victim,
    .destroy = lru_destroy,
};
