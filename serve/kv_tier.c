/* A bounded LRU set of block hashes (kv_tier.h). Hashes are never 0 (the
 * cache's rule), so 0 marks an empty slot. */
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

void kv_tier_destroy(kv_tier *t)
{
    if (!t)
        return;
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

bool kv_tier_put(kv_tier *t, uint64_t hash)
{
    SIM_ASSERT(hash != 0);
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
    t->node_key[n] = hash;
    size_t i = home(t, hash);
    while (t->keys[i])
        i = (i + 1) & t->mask;
    t->keys[i] = hash;
    t->slot_node[i] = n;
    push_node(t, n);
    return true;
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

int kv_tiers_parse(cJSON *arr, const char *path, const char *load, double block_bytes,
                   kv_tiers_setup *out, sim_err *err)
{
    static const char *const keys[] = {"name", "capacity_gib", "read_gb_per_s",
                                       "write_gb_per_s", "latency_us", "chunk_tokens", NULL};
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
