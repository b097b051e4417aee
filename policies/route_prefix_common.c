/* Shared parts of the prefix-aware routers (route_prefix_common.h).
 *
 * The approximate index of one instance is a hash set of block hashes (open
 * addressing, linear probing, deletion by backward shift) with its entries
 * in a least-recently-routed list; inserting a prompt touches its blocks
 * and trims the oldest beyond index_blocks. A prefix match walks the
 * prompt's hashes from the first until one is missing: O(matched blocks);
 * an insertion is O(prompt blocks). */
#include "policies/route_prefix_common.h"

#include <stdlib.h>
#include <string.h>
#include "sim/jsoncfg.h"

#define NIL (-1)

struct rp_index {
    uint64_t *keys;       /* 0: empty slot */
    int32_t *slot_node;   /* node of each slot */
    uint64_t *node_key;
    int32_t *prev, *next; /* LRU list over nodes, head = oldest */
    int32_t head, tail, n, cap, free_top;
    int32_t *free_nodes;
    size_t mask;
};

static rp_index *index_create(int64_t cap)
{
    rp_index *x = sim_xcalloc(1, sizeof *x);
    x->cap = (int32_t)cap;
    size_t slots = 16;
    while (slots < 2 * (size_t)cap)
        slots *= 2;
    x->keys = sim_xcalloc(slots, sizeof *x->keys);
    x->slot_node = sim_xmalloc(slots * sizeof *x->slot_node);
    x->mask = slots - 1;
    x->node_key = sim_xmalloc((size_t)cap * sizeof *x->node_key);
    x->prev = sim_xmalloc((size_t)cap * sizeof *x->prev);
    x->next = sim_xmalloc((size_t)cap * sizeof *x->next);
    x->free_nodes = sim_xmalloc((size_t)cap * sizeof *x->free_nodes);
    for (int32_t i = 0; i < x->cap; i++)
        x->free_nodes[i] = x->cap - 1 - i;
    x->free_top = x->cap;
    x->head = x->tail = NIL;
    return x;
}

static void index_destroy(rp_index *x)
{
    if (!x)
        return;
    free(x->keys);
    free(x->slot_node);
    free(x->node_key);
    free(x->prev);
    free(x->next);
    free(x->free_nodes);
    free(x);
}

static size_t home(const rp_index *x, uint64_t h) { return (size_t)(h ^ (h >> 31)) & x->mask; }

static int32_t find(const rp_index *x, uint64_t h)
{
    for (size_t i = home(x, h);; i = (i + 1) & x->mask) {
        if (x->keys[i] == h)
            return x->slot_node[i];
        if (!x->keys[i])
            return NIL;
    }
}

static void lru_unlink(rp_index *x, int32_t n)
{
    if (x->prev[n] != NIL)
        x->next[x->prev[n]] = x->next[n];
    else
        x->head = x->next[n];
    if (x->next[n] != NIL)
        x->prev[x->next[n]] = x->prev[n];
    else
        x->tail = x->prev[n];
}

static void lru_push(rp_index *x, int32_t n)
{
    x->prev[n] = x->tail;
    x->next[n] = NIL;
    if (x->tail != NIL)
        x->next[x->tail] = n;
    else
        x->head = n;
    x->tail = n;
}

static void slot_remove(rp_index *x, uint64_t h)
{
    size_t i = home(x, h);
    while (x->keys[i] != h)
        i = (i + 1) & x->mask;
    for (size_t j = (i + 1) & x->mask; x->keys[j]; j = (j + 1) & x->mask) {
        size_t hj = home(x, x->keys[j]);
        if (((j - hj) & x->mask) >= ((j - i) & x->mask)) {
            x->keys[i] = x->keys[j];
            x->slot_node[i] = x->slot_node[j];
            i = j;
        }
    }
    x->keys[i] = 0;
}

static void index_touch(rp_index *x, uint64_t h)
{
    int32_t n = find(x, h);
    if (n != NIL) {
        lru_unlink(x, n);
        lru_push(x, n);
        return;
    }
    if (x->free_top == 0) {   /* full: forget the least recently routed */
        int32_t old = x->head;
        lru_unlink(x, old);
        slot_remove(x, x->node_key[old]);
        x->free_nodes[x->free_top++] = old;
        x->n--;
    }
    n = x->free_nodes[--x->free_top];
    x->node_key[n] = h;
    size_t i = home(x, h);
    while (x->keys[i])
        i = (i + 1) & x->mask;
    x->keys[i] = h;
    x->slot_node[i] = n;
    lru_push(x, n);
    x->n++;
}

int rp_check_keys(cJSON *params, const char *path, const char *const *own, sim_err *err)
{
    const char *all[24] = {"index", "index_blocks", "staleness_ms"};
    int n = 3;
    for (int i = 0; own && own[i] && n < 23; i++)
        all[n++] = own[i];
    all[n] = NULL;
    return jcfg_check_keys(params, path, all, err);
}

int rp_common_init(rp_common *c, const route_setup *setup, cJSON *params, const char *path,
                   const char *def_index, sim_err *err)
{
    const char *index;
    int64_t blocks;
    double stale_ms;
    memset(c, 0, sizeof *c);
    if (jcfg_str(params, path, "index", def_index, &index, err) ||
        jcfg_int(params, path, "index_blocks", 0, 0, 1 << 28, &blocks, err) ||
        jcfg_num(params, path, "staleness_ms", 0, 0, 1e9, &stale_ms, err))
        return -1;
    if (strcmp(index, "precise") && strcmp(index, "approximate"))
        return sim_errf(err, "%s.index: expected one of: precise, approximate; got \"%s\"",
                        path, index);
    c->block = setup->block_size_tokens;
    c->approximate = !strcmp(index, "approximate");
    c->index_blocks = blocks;
    c->staleness_ns = (sim_time_ns)(stale_ms * 1e6);
    c->refreshed_ns = -1;
    return 0;
}

void rp_common_fini(rp_common *c)
{
    for (int32_t i = 0; i < c->n_index; i++)
        index_destroy(c->index[i]);
    free(c->index);
    free(c->snap);
}

const inst_view *rp_begin(rp_common *c, const route_view *v, const serve_req *req)
{
    if (c->approximate)
        c->n_hashes = v->prompt_hashes(v, req, c->block, &c->hashes);
    if (c->staleness_ns <= 0)
        return v->inst;
    if (v->n_instances > c->n_snap || c->refreshed_ns < 0 ||
        v->now - c->refreshed_ns >= c->staleness_ns) {
        if (v->n_instances > c->n_snap) {
            c->snap = sim_xrealloc(c->snap, (size_t)v->n_instances * sizeof *c->snap);
            c->n_snap = v->n_instances;
        }
        memcpy(c->snap, v->inst, (size_t)v->n_instances * sizeof *c->snap);
        /* Refreshes happen on a fixed grid of staleness_ns. */
        c->refreshed_ns = v->now - v->now % c->staleness_ns;
    }
    return c->snap;
}

int32_t rp_matched_blocks(rp_common *c, const route_view *v, int32_t i, const serve_req *req)
{
    if (!c->approximate)
        return v->cached_tokens(v, i, req) / c->block;
    if (i >= c->n_index || !c->index[i])
        return 0;
    int32_t m = 0;
    while (m < c->n_hashes && find(c->index[i], c->hashes[m]) != NIL)
        m++;
    return m;
}

int32_t rp_request_blocks(const rp_common *c, const serve_req *req)
{
    int32_t n = req_seq_tokens(req) / c->block;
    return n > 0 ? n : 1;
}

void rp_routed(rp_common *c, const route_view *v, int32_t i)
{
    if (!c->approximate)
        return;
    if (i >= c->n_index) {
        int32_t n = c->n_index ? c->n_index : 4;
        while (n <= i)
            n *= 2;
        c->index = sim_xrealloc(c->index, (size_t)n * sizeof *c->index);
        memset(c->index + c->n_index, 0, (size_t)(n - c->n_index) * sizeof *c->index);
        c->n_index = n;
    }
    if (!c->index[i]) {
        int64_t cap = c->index_blocks ? c->index_blocks : v->inst[i].kv_total_blocks;
        c->index[i] = index_create(cap > 0 ? cap : 1);
    }
    for (int32_t m = 0; m < c->n_hashes; m++)
        index_touch(c->index[i], c->hashes[m]);
}

int64_t rp_index_size(const rp_common *c, int32_t i)
{
    return i < c->n_index && c->index[i] ? c->index[i]->n : 0;
}

double rp_uniform(const serve_req *req, uint64_t salt)
{
    return (double)(sim_hash_mix(salt, req->id) >> 11) * 0x1.0p-53;
}
