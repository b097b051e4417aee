/* A lower KV tier (host DRAM, local SSD, a remote pool) as the prefix cache
 * sees it: a set of block contents (hashes) of bounded size, least recently
 * used out first, or in the order of the tier's own eviction policy
 * (api/evict.h, `kv_tiers[i].eviction`). It holds copies: blocks written through from HBM when
 * they are cached (inclusive), read back into HBM on a prefix hit. Where
 * the bytes travel and what that costs is the instance's (serve/instance.c
 * starts the transfers); this is only what is where.
 *
 * Cost: O(1) expected per lookup, insert or touch (open-addressing hash
 * table, linear probing, deletion by backward shift; an LRU list through
 * node indices). Memory: about 40 bytes per block of capacity. */
#ifndef SERVE_KV_TIER_H
#define SERVE_KV_TIER_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "sim/base.h"
#include "api/evict.h"

#define KV_TIERS_MAX 3

/* One tier as configured: `instance.kv_tiers`, a list from the fastest
 * (host DRAM) down. Rates are per GPU and per direction (each GPU moves its
 * shard), like the PCIe link. */
typedef struct kv_tier_setup {
    char name[16];
    int64_t capacity_blocks;      /* per instance */
    double read_bytes_per_s, write_bytes_per_s;
    sim_time_ns latency_ns;       /* per chunk */
    int32_t chunk_tokens;         /* transfer granularity (LMCache 256, Mooncake 512) */
    /* `eviction`: a policy of the eviction family (api/evict.h) choosing
     * which of the tier's blocks goes; evict_name "" (absent): the built-in
     * LRU list. kv_tiers_parse reads the name and params; whoever reads the
     * config resolves the name to evict (serve never includes policies/). */
    char evict_name[256];   /* a built-in name or "lib:policy" (a plugin) */
    const evict_policy_ops *evict;
    cJSON *evict_params;          /* borrowed from the config tree; may be NULL */
    char evict_path[192];
    /* `load_mode`: "blocking" (the iteration waits for the whole load) or
     * "layerwise" (layer l+1 loads while layer l computes: LMCache,
     * Mooncake; serve/instance.c). */
    bool layerwise;
} kv_tier_setup;

typedef struct kv_tiers_setup {
    kv_tier_setup tier[KV_TIERS_MAX];
    int32_t n;
    bool cost_aware;   /* load only when loading beats recomputing */
} kv_tiers_setup;

/* Parses `instance.kv_tiers` (arr, a list; NULL: none) and `kv_load`
 * (load: "blocking" or "cost_aware"); block_bytes is one KV block of the
 * whole instance (all GPUs), to turn capacity_gib into blocks. A tier's
 * `eviction` (a name, or {"name": ..., "params": {...}}) is left in
 * evict_name / evict_params for the caller to resolve. */
int kv_tiers_parse(cJSON *arr, const char *path, const char *load, double block_bytes,
                   kv_tiers_setup *out, sim_err *err);

typedef struct kv_tier kv_tier;

kv_tier *kv_tier_create(int64_t capacity_blocks);   /* capacity >= 1 */
/* A tier as configured: its capacity and eviction policy (setup->evict,
 * whose params were checked when the config was read: an init that fails
 * here is a bug). block_size_tokens: of the HBM cache, for the policy. */
kv_tier *kv_tier_create_for(const kv_tier_setup *setup, int32_t block_size_tokens);
void kv_tier_destroy(kv_tier *t);                    /* NULL is a no-op */
bool kv_tier_has(const kv_tier *t, uint64_t hash);
/* Inserts hash (most recently used) or touches it; returns true if it was
 * not there (a write). Evicts the least recently used beyond capacity. */
bool kv_tier_put(kv_tier *t, uint64_t hash);
/* kv_tier_put for a block written through at `now` (depth: its index in
 * its sequence, for the policy's view): evicts the policy's victim when
 * full. */
bool kv_tier_write(kv_tier *t, uint64_t hash, int32_t depth, sim_time_ns now);
/* A prefix hit on hash (it is there) read at `now`: touched, and its hit
 * count (what lfu keys on) goes up. */
void kv_tier_use(kv_tier *t, uint64_t hash, int32_t depth, sim_time_ns now);
int64_t kv_tier_size(const kv_tier *t);
uint64_t kv_tier_evictions(const kv_tier *t);

#endif
