/* The KV cache of one serving instance: a pool of fixed-size blocks (per TP
 * shard), the block tables of its requests, and the plan ledger its batch
 * policy asks (api/batch.h).
 *
 * Two modes, fixed at creation:
 *  - counting (prefix caching off): blocks are interchangeable, so a request
 *    holds a count of them and nothing per block is kept. O(1) per request.
 *  - identity (prefix caching on, vLLM's automatic prefix caching): every
 *    block has a reference count and, once full, a content hash chained over
 *    the sequence before it; a request has a block table; a hash table maps
 *    hashes to cached blocks. A block whose last user left stays cached in
 *    a free queue (least recently freed first, a request's blocks freed tail
 *    first, as vLLM does) until allocation takes it, which evicts it. A
 *    waiting request's prompt is matched against the cache at admission, up
 *    to one token short of its sequence, at block granularity.
 *
 * Content identity (identity mode): a request's first id_tokens tokens are
 * described by chained ids of id_block_tokens tokens each (equal id at
 * position j means equal tokens up to the end of block j: Mooncake's
 * hash_ids, the native format's prefix_blocks); its other tokens are unique
 * to it. Block i (tokens [i b, (i+1) b)) hashes to mix(hash of block i-1, id
 * of the chained block holding its last token, or the request's own unique
 * id past the chained ones, i). Equal hashes thus mean equal contents up to
 * the block's end, whatever the block size.
 *
 * Invariants: 0 <= used_blocks <= total_blocks; in identity mode
 * used_blocks = blocks with ref > 0 = total - free queue length, every
 * hashed block is in the hash table, and only blocks with ref 0 are in the
 * free queue; each request's kv_blocks equals its table length. */
#ifndef SERVE_KV_H
#define SERVE_KV_H

#include <stdbool.h>
#include "api/batch.h"
#include "api/evict.h"
#include "serve/kv_tier.h"
#include "models/model.h"

typedef struct kv_cache kv_cache;

/* A request's private KV state, kept by the core beside its serve_req. */
typedef struct kv_req {
    int32_t *table;            /* block ids in sequence order (identity mode) */
    int32_t table_cap;
    uint64_t *hash;            /* hashes of blocks 0..n_hash-1, computed lazily */
    int32_t n_hash, hash_cap;
    int32_t hash_block_tokens; /* the block size the hashes are for */
    int32_t n_registered;      /* full blocks already offered to the cache */
    const uint64_t *ids;       /* chained ids of its first id_tokens tokens */
    int32_t id_tokens, id_block_tokens;
    uint64_t unique;           /* identity of its other tokens */
    int32_t match_blocks;      /* last prefix match, valid while match_kv's */
    uint64_t match_epoch;      /* eviction epoch equals match_epoch */
    const kv_cache *match_kv;
    /* lower tiers: blocks past the HBM match of tier_from blocks found there
     * (tier_raw) and worth loading (tier_use), valid while tier_kv's tier
     * eviction epoch equals tier_epoch */
    int32_t tier_from, tier_raw, tier_use;
    uint64_t tier_epoch;
    const kv_cache *tier_kv;
    /* Private blocks (past its prefix ids: hashes only this request can make,
     * tagged by their low bit) stay out of the cache's hash table; held[i]
     * is the block of held_kv that block i was registered in (or -1), which
     * still holds it while that block's hash is unchanged. */
    int32_t *held;
    int32_t n_held, held_cap;
    const kv_cache *held_kv;
    /* Full private blocks lazy_from .. n_registered-1 are registered when
     * the request frees them (see serve/kv.c) */
    bool lazy;
    int32_t lazy_from;
} kv_req;

/* What the cache did, for the run's results. */
typedef struct kv_stats {
    int64_t total_blocks;
    int64_t used_blocks;       /* held by requests now */
    int64_t peak_blocks;
    int64_t cached_blocks;     /* free but holding a cached prefix (evictable) */
    uint64_t evictions;        /* cached blocks reused for other contents */
    uint64_t hit_tokens;       /* prompt tokens served from the cache at admission */
    uint64_t lookup_tokens;    /* prompt tokens of the requests admitted, looked up */
    uint64_t hit_blocks;       /* blocks of them served from the cache */
    uint64_t lookup_blocks;    /* blocks those prompts fill (the last one partly) */
    uint64_t tier_hit_tokens;  /* prompt tokens loaded from lower tiers instead */
    uint64_t tier_hit_blocks[KV_TIERS_MAX];   /* blocks loaded, per tier */
    uint64_t tier_write_blocks[KV_TIERS_MAX]; /* blocks written through, per tier */
    int32_t n_tiers;
} kv_stats;

/* Blocks that fit on each GPU: (HBM x utilization - weights per GPU -
 * activation reserve) / bytes of one block per GPU. Fails, naming the
 * numbers, when the weights alone do not fit. */
int kv_capacity_blocks(const llm_model *m, const gpu_spec *g, const par_layout *par,
                       double gpu_memory_utilization, double activation_reserve_bytes,
                       int32_t block_size_tokens, int64_t *out, sim_err *err);

kv_cache *kv_create(int64_t total_blocks, int32_t block_size_tokens, bool prefix_caching,
                    sim_time_ns now);
void kv_destroy(kv_cache *kv);   /* NULL is a no-op */
/* Identity mode: hands the free set to an eviction policy (api/evict.h;
 * params borrowed, at `path`). Call right after kv_create. Without one (and
 * in counting mode, where this does nothing) the cache keeps its built-in
 * queue, vLLM's order, which policies/evict_lru reproduces. */
int kv_set_eviction(kv_cache *kv, const evict_policy_ops *ops, cJSON *params,
                    const char *path, uint64_t seed, sim_err *err);
/* What recomputing a block costs, for cost-aware eviction: fn(ctx, q, c) is
 * the time to prefill q tokens after c cached ones (ctx borrowed). */
void kv_set_recompute(kv_cache *kv, double (*fn)(void *ctx, int32_t q_tokens, int32_t ctx_tokens),
                      void *ctx);
const char *kv_eviction_name(const kv_cache *kv);
/* Identity mode: lower tiers below HBM (kv_tier.h), inclusive: every block
 * cached in HBM is written through to each tier; a prefix lookup continues
 * past the HBM match into the tiers (a block is read from the first tier
 * holding it), and the blocks found are loaded into newly allocated HBM
 * blocks at admission instead of being computed (with cost_aware, only
 * when the estimated load time, chunks x latency + bytes / read rate per
 * tier, is below the cost model's time to compute them). block_bytes_per_gpu
 * prices the estimate. Call right after kv_create. */
void kv_set_tiers(kv_cache *kv, const kv_tiers_setup *tiers, double block_bytes_per_gpu);
/* Blocks to load from and write to each tier since the last call (the
 * instance moves them); returns the number of tiers. */
int32_t kv_take_tier_io(kv_cache *kv, double load_blocks[KV_TIERS_MAX],
                        double write_blocks[KV_TIERS_MAX]);

int64_t kv_total_blocks(const kv_cache *kv);
int64_t kv_used_blocks(const kv_cache *kv);
static inline int64_t kv_free_blocks_of(const kv_cache *kv)
{
    return kv_total_blocks(kv) - kv_used_blocks(kv);
}
bool kv_prefix_caching(const kv_cache *kv);
void kv_get_stats(const kv_cache *kv, kv_stats *out);
/* Mean fraction used over [start, now]. */
double kv_mean_fraction(const kv_cache *kv, sim_time_ns start, sim_time_ns now);

/* Sets a new request's identity (ids borrowed: they must live as long as
 * the request); clears its KV state. */
void kv_req_init(kv_req *k, const uint64_t *ids, int32_t id_tokens,
                 int32_t id_block_tokens, uint64_t unique);
void kv_req_fini(kv_req *k);   /* frees its arrays */

/* ---- The plan ledger (see api/batch.h) --------------------------------------- */

/* Resets the ledger to the cache's free blocks and returns it for the view. */
batch_kv *kv_ledger_begin(kv_cache *kv);

/* ---- Applying a plan: in this order, after the preemptions ------------------- */

/* Admission of waiting r (its kv_req k): in identity mode, takes its cached
 * prefix (touching the blocks, so nothing evicts them) and sets
 * computed_tokens to it; returns the tokens served from the cache. */
int32_t kv_admit(kv_cache *kv, serve_req *r, kv_req *k, sim_time_ns now);
/* Allocates the blocks r needs to hold `tokens` more tokens. Asserts room.
 * Most calls need nothing (the tokens fit the last block): that check is
 * inline. */
void kv_grow_blocks(kv_cache *kv, serve_req *r, kv_req *k, int32_t tokens, sim_time_ns now);
static inline void kv_grow(kv_cache *kv, serve_req *r, kv_req *k, int32_t tokens,
                           sim_time_ns now)
{
    if (r->computed_tokens + tokens > r->kv_cap_tokens)
        kv_grow_blocks(kv, r, k, tokens, now);
}
/* Gives back all of r's blocks (finished, preempted, moved). */
void kv_release(kv_cache *kv, serve_req *r, kv_req *k, sim_time_ns now);
/* kv_release, then the request's blocks that nobody else holds leave HBM's
 * prefix cache (freed without contents; copies stay in the lower tiers):
 * KV retention "offload" (api/retain.h). Returns the blocks dropped. Not on
 * any hot path: once per offloaded session turn, O(its blocks). */
int64_t kv_release_offload(kv_cache *kv, serve_req *r, kv_req *k, sim_time_ns now);
/* After r's computed_tokens grew: offers its newly full blocks to the cache. */
void kv_commit(kv_cache *kv, const serve_req *r, kv_req *k);
/* Registers what kv_commit left for kv_release (k's private blocks; see
 * serve/kv.c). Call before k's block table is handed to another holder. */
void kv_settle(kv_cache *kv, kv_req *k);
/* Tokens of r's sequence this cache holds (for a router asking every
 * instance; changes nothing). */
int32_t kv_peek_cached_tokens(const kv_cache *kv, const serve_req *r, kv_req *k);
/* The content hashes of the first (seq_tokens - 1) / block_tokens blocks of
 * a request's sequence (the chain every cache of that block size keys on);
 * returns their number, *out valid until k's hashes change. */
int32_t kv_req_prompt_hashes(kv_req *k, int32_t block_tokens, int32_t seq_tokens,
                             const uint64_t **out);
/* Token-level KV compression (counting mode only; quality not modelled):
 * a request keeps min(seq, max(keep_min_tokens, ceil(keep_fraction x seq)))
 * of its tokens' KV (sink + window: keep_fraction 0; a share of the
 * sequence: keep_fraction > 0), which is what blocks it holds and what its
 * decode attends to. Call right after kv_create. */
void kv_set_budget(kv_cache *kv, int64_t keep_min_tokens, double keep_fraction);
/* Tokens of a sequence of `tokens` whose KV is kept and read (all of them
 * without a budget). */
int64_t kv_attended_tokens(const kv_cache *kv, int64_t tokens);
/* Blocks needed to hold `tokens` tokens: ceil(tokens / block size), of the
 * tokens kept under a budget. */
int64_t kv_blocks_for(const kv_cache *kv, int64_t tokens);

#endif
