/* A bounded LRU set of block hashes (kv_tier.h). Hashes are never 0 (the
 * cache's rule), so 0 marks an empty slot.
 *
 * With an eviction policy (api/evict.h) the tier keeps, per node, the block
 * as policies see it (hash, last access, hits, depth; never a parent or
 * children: a tier keeps no prefix tree, so every block is a leaf) and the
 * policy keeps the order: every node holding a block is in its free set (a
 * tier's blocks are all evictable), a touch is a remove and an insert, and
 * a full tier asks it for a victim. GDSF's recompute cost is a shape
 * (block tokens x (1 + depth / 2), the HBM cache's own fallback): the tier
 * has no cost model, and only the ratio between depths matters to it. The
 * policy's seed is fixed (the tier's name hashed): runs are deterministic.
 * Times: a write is stamped with the HBM cache's last allocation or release
 * (close to the iteration that filled the block), a hit with its
 * admission. */
#include "serve/kv_tier.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sim/jsoncfg.h"

#define NIL (-1)

struct kv_tier {
    uint64_t *keys;
    int32_t *slot_node;
    uint64_t *node_key;
    int32_t *prev, *next;   /* LRU list, head = least recent */
    int32_t head, tail;
    int64_t n, cap;
    uint64_t evictions;
    size_t mask;
    /* eviction policy (NULL: the LRU list above) */
    const evict_policy_ops *ev;
    void *ev_state;
    evict_block *blk;   /* by node */
    evict_view view;
};

kv_tier *kv_tier_create(int64_t capacity_blocks)
{
    SIM_ASSERT(capacity_blocks >= 1 && capacity_blocks < INT32_MAX);
    kv_tier *t = sim_xcalloc(1, sizeof *t);
    t->cap = capacity_blocks;
    size_t slots = 16;
    while (slots < 2 * (size_t)capacity_blocks)
        slots *= 2;
    t->keys = sim_xcalloc(slots, sizeof *t->keys);
    t->slot_node = sim_xmalloc(slots * sizeof *t->slot_node);
    t->mask = slots - 1;
    t->node_key = sim_xmalloc((size_t)capacity_blocks * sizeof *t->node_key);
    t->prev = sim_xmalloc((size_t)capacity_blocks * sizeof *t->prev);
    t->next = sim_xmalloc((size_t)capacity_blocks * sizeof *t->next);
    t->head = t->tail = NIL;
    return t;
}

static double tier_recompute_ns(const evict_view *v, int32_t depth)
{
    return (double)v->block_size_tokens * (1.0 + (double)(depth > 0 ? depth : 0) / 2);
}

kv_tier *kv_tier_create_for(const kv_tier_setup *setup, int32_t block_size_tokens)
{
    kv_tier *t = kv_tier_create(setup->capacity_blocks);
    if (!setup->evict)
        return t;
    uint64_t seed = UINT64_C(0x74696572);
    for (const char *c = setup->name; *c; c++)
        seed = sim_hash_mix(seed, (uint64_t)(unsigned char)*c);
    evict_setup es = {.n_blocks = (int32_t)t->cap, .block_size_tokens = block_size_tokens,
                      .seed = seed};
    sim_err err = {{0}};
    /* Policies read an object: an empty one when the config gave none. */
    cJSON *none = setup->evict_params ? NULL : cJSON_CreateObject();
    int rc = setup->evict->init(&es, none ? none : setup->evict_params, setup->evict_path,
                                &t->ev_state, &err);
    cJSON_Delete(none);
    SIM_ASSERT(rc == 0);   /* the params were checked when the config was read */
    t->ev = setup->evict;
    t->blk = sim_xcalloc((size_t)t->cap, sizeof *t->blk);
    t->view = (evict_view){.blocks = t->blk, .n_blocks = (int32_t)t->cap,
                           .block_size_tokens = block_size_tokens,
                           .recompute_ns = tier_recompute_ns, .core = t};
    return t;
}

void kv_tier_destroy(kv_tier *t)
{
    if (!t)
        return;
    if (t->ev_state && t->ev->destroy)
        t->ev->destroy(t->ev_state);
    free(t->blk);
    free(t->keys);
    free(t->slot_node);
    free(t->node_key);
    free(t->prev);
    free(t->next);
    free(t);
}

static size_t home(const kv_tier *t, uint64_t h) { return (size_t)(h ^ (h >> 27)) & t->mask; }

static int32_t find(const kv_tier *t, uint64_t h)
{
    for (size_t i = home(t, h);; i = (i + 1) & t->mask) {
        if (t->keys[i] == h)
            return t->slot_node[i];
        if (!t->keys[i])
            return NIL;
    }
}

bool kv_tier_has(const kv_tier *t, uint64_t hash) { return find(t, hash) != NIL; }

static void unlink_node(kv_tier *t, int32_t n)
{
    if (t->prev[n] != NIL)
        t->next[t->prev[n]] = t->next[n];
    else
        t->head = t->next[n];
    if (t->next[n] != NIL)
        t->prev[t->next[n]] = t->prev[n];
    else
        t->tail = t->prev[n];
}

static void push_node(kv_tier *t, int32_t n)
{
    t->prev[n] = t->tail;
    t->next[n] = NIL;
    if (t->tail != NIL)
        t->next[t->tail] = n;
    else
        t->head = n;
    t->tail = n;
}

static void slot_remove(kv_tier *t, uint64_t h)
{
    size_t i = home(t, h);
    while (t->keys[i] != h)
        i = (i + 1) & t->mask;
    for (size_t j = (i + 1) & t->mask; t->keys[j]; j = (j + 1) & t->mask) {
        size_t hj = home(t, t->keys[j]);
        if (((j - hj) & t->mask) >= ((j - i) & t->mask)) {
            t->keys[i] = t->keys[j];
            t->slot_node[i] = t->slot_node[j];
            i = j;
        }
    }
    t->keys[i] = 0;
}

static void slot_insert(kv_tier *t, uint64_t hash, int32_t n);
static bool policy_put(kv_tier *t, uint64_t hash, int32_t depth, sim_time_ns now, bool use);

bool kv_tier_put(kv_tier *t, uint64_t hash)
{
    SIM_ASSERT(hash != 0);
    if (t->ev)
        return policy_put(t, hash, 0, t->view.now, false);
    int32_t n = find(t, hash);
    if (n != NIL) {
        unlink_node(t, n);
        push_node(t, n);
        return false;
    }
    if (t->n == t->cap) {   /* reuse the least recent node */
        n = t->head;
        unlink_node(t, n);
        slot_remove(t, t->node_key[n]);
        t->evictions++;
    } else {
        n = (int32_t)t->n++;
    }
    slot_insert(t, hash, n);
    push_node(t, n);
    return true;
}

static void slot_insert(kv_tier *t, uint64_t hash, int32_t n)
{
    t->node_key[n] = hash;
    size_t i = home(t, hash);
    while (t->keys[i])
        i = (i + 1) & t->mask;
    t->keys[i] = hash;
    t->slot_node[i] = n;
}

/* The policy's path: touch (remove, refresh, insert) or write. */
static bool policy_put(kv_tier *t, uint64_t hash, int32_t depth, sim_time_ns now, bool use)
{
    t->view.now = now;
    int32_t n = find(t, hash);
    if (n != NIL) {
        t->ev->remove(t->ev_state, &t->view, n);
        t->blk[n].last_access_ns = now;
        t->blk[n].hits += use;
        t->ev->insert(t->ev_state, &t->view, n);
        return false;
    }
    SIM_ASSERT_AT(now, !use);
    if (t->n == t->cap) {
        n = t->ev->victim(t->ev_state, &t->view);
        SIM_ASSERT_AT(now, n >= 0 && n < t->cap && t->blk[n].hash == t->node_key[n]);
        slot_remove(t, t->node_key[n]);
        t->evictions++;
    } else {
        n = (int32_t)t->n++;
    }
    slot_insert(t, hash, n);
    t->blk[n] = (evict_block){.hash = hash, .last_access_ns = now, .depth = depth,
                              .parent = EVICT_NONE};
    t->ev->insert(t->ev_state, &t->view, n);
    return true;
}

bool kv_tier_write(kv_tier *t, uint64_t hash, int32_t depth, sim_time_ns now)
{
    SIM_ASSERT(hash != 0);
    return t->ev ? policy_put(t, hash, depth, now, false) : kv_tier_put(t, hash);
}

void kv_tier_use(kv_tier *t, uint64_t hash, int32_t depth, sim_time_ns now)
{
    if (t->ev)
        policy_put(t, hash, depth, now, true);
    else
        kv_tier_put(t, hash);
}

int64_t kv_tier_size(const kv_tier *t) { return t->n; }
uint64_t kv_tier_evictions(const kv_tier *t) { return t->evictions; }

/* ---- configuration ------------------------------------------------------------- */

/* Defaults by name. dram: host memory over PCIe 5 x16 at 80% of 64 GB/s
 * (servesim's PCIe figure) and 10 us a chunk [assume]; ssd: one NVMe gen4
 * drive, 7 GB/s read, 5 GB/s write, 80 us (BLIS defaults.yaml); remote: a
 * pool over one 200 Gb/s RDMA NIC per GPU, 25 GB/s, 50 us [assume]. */
static const struct {
    const char *name;
    double read_gbs, write_gbs, latency_us;
} tier_defaults[] = {
    {"dram", 51.2, 51.2, 10},
    {"ssd", 7, 5, 80},
    {"remote", 25, 25, 50},
};

/* A tier's `eviction`: a policy name, or {"name": ..., "params": {...}}
 * (as policies.eviction); absent: the built-in LRU. */
static int parse_eviction(cJSON *o, const char *tp, kv_tier_setup *t, sim_err *err)
{
    cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "eviction");
    const char *name = NULL;
    snprintf(t->evict_path, sizeof t->evict_path, "%s.eviction.params", tp);
    if (!e)
        return 0;
    if (cJSON_IsString(e)) {
        name = e->valuestring;
    } else if (cJSON_IsObject(e)) {
        static const char *const ekeys[] = {"name", "params", NULL};
        char ep[200];
        snprintf(ep, sizeof ep, "%s.eviction", tp);
        if (jcfg_check_keys(e, ep, ekeys, err) ||
            jcfg_str(e, ep, "name", JCFG_REQUIRED_STR, &name, err))
            return -1;
        t->evict_params = cJSON_GetObjectItemCaseSensitive(e, "params");
        if (t->evict_params && !cJSON_IsObject(t->evict_params))
            return sim_errf(err, "%s.params: expected an object", ep);
    } else {
        return sim_errf(err, "%s.eviction: expected a policy name (e.g. \"lfu\") or "
                        "{\"name\": ..., \"params\": {...}}", tp);
    }
    if (!*name || strlen(name) >= sizeof t->evict_name)
        return sim_errf(err, "%s.eviction: expected an eviction policy name, got \"%s\"", tp,
                        name);
    snprintf(t->evict_name, sizeof t->evict_name, "%s", name);
    return 0;
}

int kv_tiers_parse(cJSON *arr, const char *path, const char *load, double block_bytes,
                   kv_tiers_setup *out, sim_err *err)
{
    static const char *const keys[] = {"name", "capacity_gib", "read_gb_per_s",
                                       "write_gb_per_s", "latency_us", "chunk_tokens",
                                       "eviction", "load_mode", NULL};
    memset(out, 0, sizeof *out);
    if (strcmp(load, "blocking") && strcmp(load, "cost_aware"))
        return sim_errf(err, "%s.kv_load: expected one of: blocking, cost_aware; got \"%s\"",
                        path, load);
    out->cost_aware = !strcmp(load, "cost_aware");
    if (!arr)
        return 0;
    if (!cJSON_IsArray(arr))
        return sim_errf(err, "%s.kv_tiers: expected a list of tiers, e.g. [{\"name\": "
                        "\"dram\", \"capacity_gib\": 512}]", path);
    int n = cJSON_GetArraySize(arr);
    if (n > KV_TIERS_MAX)
        return sim_errf(err, "%s.kv_tiers: expected at most %d tiers, got %d", path,
                        KV_TIERS_MAX, n);
    for (int i = 0; i < n; i++) {
        char tp[160];
        snprintf(tp, sizeof tp, "%s.kv_tiers[%d]", path, i);
        cJSON *o = cJSON_GetArrayItem(arr, i);
        const char *name;
        double cap_gib, rd, wr, lat_us;
        int64_t chunk;
        if (!cJSON_IsObject(o))
            return sim_errf(err, "%s: expected an object", tp);
        if (jcfg_check_keys(o, tp, keys, err) ||
            jcfg_str(o, tp, "name", JCFG_REQUIRED_STR, &name, err) ||
            jcfg_num(o, tp, "capacity_gib", JCFG_REQUIRED_NUM, 1e-6, 1e9, &cap_gib, err))
            return -1;
        size_t d = 0;
        while (d < sizeof tier_defaults / sizeof tier_defaults[0] &&
               strcmp(tier_defaults[d].name, name))
            d++;
        if (d == sizeof tier_defaults / sizeof tier_defaults[0])
            return sim_errf(err, "%s.name: expected one of: dram, ssd, remote; got \"%s\"",
                            tp, name);
        if (jcfg_num(o, tp, "read_gb_per_s", tier_defaults[d].read_gbs, 1e-6, 1e6, &rd, err) ||
            jcfg_num(o, tp, "write_gb_per_s", tier_defaults[d].write_gbs, 1e-6, 1e6, &wr,
                     err) ||
            jcfg_num(o, tp, "latency_us", tier_defaults[d].latency_us, 0, 1e9, &lat_us, err) ||
            jcfg_int(o, tp, "chunk_tokens", 256, 1, 1 << 20, &chunk, err))
            return -1;
        double blocks = cap_gib * 1024.0 * 1024.0 * 1024.0 / block_bytes;
        if (blocks < 1 || blocks >= INT32_MAX)
            return sim_errf(err, "%s.capacity_gib: holds %.0f KV blocks of %.0f bytes; "
                            "expected 1 to %d", tp, blocks, block_bytes, INT32_MAX - 1);
        kv_tier_setup *t = &out->tier[i];
        const char *mode;
        if (jcfg_str(o, tp, "load_mode", "blocking", &mode, err) ||
            parse_eviction(o, tp, t, err))
            return -1;
        if (strcmp(mode, "blocking") && strcmp(mode, "layerwise"))
            return sim_errf(err, "%s.load_mode: expected one of: blocking, layerwise; got \"%s\"",
                            tp, mode);
        t->layerwise = !strcmp(mode, "layerwise");
        snprintf(t->name, sizeof t->name, "%s", name);
        t->capacity_blocks = (int64_t)blocks;
        t->read_bytes_per_s = rd * 1e9;
        t->write_bytes_per_s = wr * 1e9;
        t->latency_ns = (sim_time_ns)(lat_us * 1e3);
        t->chunk_tokens = (int32_t)chunk;
    }
    out->n = n;
    return 0;
}
