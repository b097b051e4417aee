/* An example eviction plugin (api/evict.h, ABI 1.1): which free KV block
 * an instance's prefix cache gives up. Build it with
 *
 *   make plugin SRC=examples/plugins/evict_example.c
 *
 * (`make` itself builds it into build/plugins/) and name a policy in a
 * config as "evict_example:<policy>", for the instances' cache or for a
 * lower KV tier:
 *
 *   "instance": {"prefix_caching": true},
 *   "policies": {"eviction": {"name": "evict_example:deepest_first"}}
 *   "instance": {"kv_tiers": [{"name": "dram", "capacity_gib": 64,
 *                              "eviction": "evict_example:deepest_first"}]}
 *
 * Policies:
 *   lru_list       the built-in LRU's order (least recently freed first,
 *                  policies/evict_lru.c) kept by the plugin, as a linked list
 *                  through block ids: runs equal the default's bit for bit
 *                  (tests/test_plugin.c), which shows the core calls a
 *                  plugin's hooks exactly where it keeps its own queue
 *   deepest_first  blocks holding nothing cached first; then the cached
 *                  block deepest in its sequence (the end of the longest
 *                  prefix), least recently freed first among equals: long
 *                  private tails go before the shared heads of prompts.
 *                  An indexed binary heap: O(log n) per call.
 *
 * A plugin's eviction policy leaves `builtin` false (the host refuses one
 * that sets it): only the core's own LRU may. */
#include <stdlib.h>

#include "api/plugin.h"

SERVESIM_PLUGIN_ABI;

static const servesim_host_api *host;   /* set once by the entry point */

/* ---- lru_list ------------------------------------------------------------------ */

typedef struct lru_state {
    int32_t *prev, *next;
    int32_t head, tail;
} lru_state;

static int lru_init(const evict_setup *setup, cJSON *params, const char *path, void **state,
                    sim_err *err)
{
    static const char *const keys[] = {NULL};
    if (host->check_keys(params, path, keys, err))
        return -1;
    size_t n = (size_t)(setup->n_blocks > 0 ? setup->n_blocks : 1);
    lru_state *s = malloc(sizeof *s);
    if (!s)
        return host->errf(err, "%s: out of memory", path);
    s->prev = malloc(n * sizeof *s->prev);
    s->next = malloc(n * sizeof *s->next);
    if (!s->prev || !s->next) {
        free(s->prev);
        free(s->next);
        free(s);
        return host->errf(err, "%s: out of memory", path);
    }
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

/* ---- deepest_first ------------------------------------------------------------- */

/* A min-heap of free blocks on (class, -depth, seq): class 0 holds nothing
 * cached, 1 a cached block; seq counts insertions (ties: freed first). */
typedef struct df_state {
    int32_t *heap;      /* block ids, heap-ordered */
    int32_t *pos;       /* pos[b]: b's index in heap, -1 when not free */
    int64_t *key;       /* key[b]: class and depth, packed; then seq */
    uint64_t *seq;
    uint64_t next_seq;
    int32_t n;
} df_state;

static int df_less(const df_state *s, int32_t a, int32_t b)
{
    if (s->key[a] != s->key[b])
        return s->key[a] < s->key[b];
    return s->seq[a] < s->seq[b];
}

static void df_place(df_state *s, int32_t i, int32_t b)
{
    s->heap[i] = b;
    s->pos[b] = i;
}

static void df_up(df_state *s, int32_t i)
{
    int32_t b = s->heap[i];
    while (i > 0) {
        int32_t p = (i - 1) / 2;
        if (!df_less(s, b, s->heap[p]))
            break;
        df_place(s, i, s->heap[p]);
        i = p;
    }
    df_place(s, i, b);
}

static void df_down(df_state *s, int32_t i)
{
    int32_t b = s->heap[i];
    for (;;) {
        int32_t c = 2 * i + 1;
        if (c >= s->n)
            break;
        if (c + 1 < s->n && df_less(s, s->heap[c + 1], s->heap[c]))
            c++;
        if (!df_less(s, s->heap[c], b))
            break;
        df_place(s, i, s->heap[c]);
        i = c;
    }
    df_place(s, i, b);
}

static int df_init(const evict_setup *setup, cJSON *params, const char *path, void **state,
                   sim_err *err)
{
    static const char *const keys[] = {NULL};
    if (host->check_keys(params, path, keys, err))
        return -1;
    size_t n = (size_t)(setup->n_blocks > 0 ? setup->n_blocks : 1);
    df_state *s = calloc(1, sizeof *s);
    if (!s)
        return host->errf(err, "%s: out of memory", path);
    s->heap = malloc(n * sizeof *s->heap);
    s->pos = malloc(n * sizeof *s->pos);
    s->key = malloc(n * sizeof *s->key);
    s->seq = malloc(n * sizeof *s->seq);
    if (!s->heap || !s->pos || !s->key || !s->seq) {
        free(s->heap);
        free(s->pos);
        free(s->key);
        free(s->seq);
        free(s);
        return host->errf(err, "%s: out of memory", path);
    }
    for (size_t b = 0; b < n; b++)
        s->pos[b] = -1;
    *state = s;
    return 0;
}

static void df_insert(void *state, const evict_view *v, int32_t b)
{
    df_state *s = state;
    const evict_block *x = &v->blocks[b];
    /* Class in the high bits; deeper blocks get smaller keys. */
    s->key[b] = x->hash ? ((int64_t)1 << 40) - x->depth : 0;
    s->seq[b] = s->next_seq++;
    s->heap[s->n] = b;
    df_up(s, s->n++);
}

static void df_remove(void *state, const evict_view *v, int32_t b)
{
    (void)v;
    df_state *s = state;
    int32_t i = s->pos[b];
    s->pos[b] = -1;
    if (i == --s->n)
        return;
    int32_t m = s->heap[s->n];   /* the last one fills the hole, then moves */
    df_place(s, i, m);
    df_up(s, i);
    if (s->pos[m] == i)
        df_down(s, i);
}

static int32_t df_victim(void *state, const evict_view *v)
{
    df_state *s = state;
    int32_t b = s->heap[0];
    df_remove(s, v, b);
    return b;
}

static void df_destroy(void *state)
{
    df_state *s = state;
    free(s->heap);
    free(s->pos);
    free(s->key);
    free(s->seq);
    free(s);
}

/* ---- the entry point ----------------------------------------------------------- */

static const evict_policy_ops lru_list = {
    .name = "lru_list",
    .init = lru_init,
    .insert = lru_insert,
    .remove = lru_remove,
    .victim = lru_victim,
    .destroy = lru_destroy,
};

static const evict_policy_ops deepest_first = {
    .name = "deepest_first",
    .init = df_init,
    .insert = df_insert,
    .remove = df_remove,
    .victim = df_victim,
    .destroy = df_destroy,
};

static const evict_policy_ops *const evicts[] = {&lru_list, &deepest_first, NULL};

SERVESIM_EXPORT const servesim_plugin *servesim_plugin_entry(const servesim_host_api *h)
{
    static const servesim_plugin plugin = {
        SERVESIM_PLUGIN_HEADER,
        .name = "evict_example",
        .version = "1.0",
        .evict = evicts,
    };
    host = h;
    return &plugin;
}
