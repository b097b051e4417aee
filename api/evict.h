/* Eviction: the policy family that picks which free KV block an instance's
 * prefix cache gives up when it needs a block for new contents.
 *
 * The core (serve/kv.c, identity mode) owns the blocks. A block is free
 * when no request holds it (ref 0); a free block may still hold a cached
 * prefix (hash != 0), which a later request can hit. The policy keeps the
 * set of free blocks in whatever order it likes: the core tells it when a
 * block joins the set (insert: its last holder left) and when one leaves it
 * other than by eviction (remove: a request hit it), and asks it for a
 * victim when it needs a block. A victim holding a hash is evicted (its
 * hash forgotten). The policy never changes a block: it reads blocks
 * through the view.
 *
 * Block tree: block b's parent is the cached block holding the prefix just
 * before it (the cache's block for the previous hash of the chain when b
 * was cached), so cached blocks form a radix tree of prefixes. n_children
 * counts b's cached children; a leaf has none. Evicting a non-leaf orphans
 * its children (no later request can reach them: a prefix is matched from
 * its first block), so tree-aware policies evict leaves first. When a free
 * block's n_children changes the core calls update.
 *
 * Order and cost: calls come in simulation order and a policy must be
 * deterministic (ties broken by something fixed, such as an insertion
 * counter). Each call runs once per block allocated or freed, on the
 * serving hot path: O(1) or O(log n) per call, never a scan of the blocks.
 *
 * Adding a policy: one file policies/evict_<name>.c defining a
 * `const evict_policy_ops evict_<name>` and one line in policies/list.def. */
#ifndef API_EVICT_H
#define API_EVICT_H

#include <stdbool.h>
#include <cjson/cJSON.h>
#include "sim/base.h"

#define EVICT_NONE (-1)

/* One block as policies see it; the core keeps it current. */
typedef struct evict_block {
    uint64_t hash;              /* content hash; 0: holds nothing cached */
    sim_time_ns last_access_ns; /* last allocation, hit or release */
    int32_t ref;                /* requests holding it (0 in the free set) */
    int32_t depth;              /* its index in its sequence (0: first block) */
    int32_t n_children;         /* cached blocks whose parent it is */
    int32_t parent;             /* EVICT_NONE for a first block or when unknown */
    uint32_t hits;              /* times a later request matched it since cached */
    uint32_t queue_stamp;       /* the core's (its built-in queue); policies ignore it */
} evict_block;

typedef struct evict_view evict_view;
struct evict_view {
    sim_time_ns now;
    const evict_block *blocks;  /* by block id, 0 .. n_blocks-1 */
    int32_t n_blocks;
    int32_t block_size_tokens;
    /* Time to compute one block again at this depth: a prefill of
     * block_size_tokens tokens after depth x block_size_tokens cached ones,
     * priced by the instance's cost model (memoised; deeper blocks cost
     * more). */
    double (*recompute_ns)(const evict_view *v, int32_t depth);
    void *core;                 /* the core's, for recompute_ns */
};

/* Fixed for the policy's lifetime. */
typedef struct evict_setup {
    int32_t n_blocks;
    int32_t block_size_tokens;
    uint64_t seed;              /* for policies that draw random numbers */
} evict_setup;

typedef struct evict_policy_ops {
    const char *name;
    /* True for the policy the core's built-in free queue implements (LRU):
     * the core then keeps the order itself, on its hot path, and does not
     * call the policy. tests/test_prefix_cache.c checks that both orders
     * agree. */
    bool builtin;
    /* params: the policy's JSON object (may be NULL), at `path`. Every
     * block starts free: the core inserts blocks 0 .. n_blocks-1 in order
     * right after init. */
    int (*init)(const evict_setup *setup, cJSON *params, const char *path, void **state,
                sim_err *err);
    /* Block b's last holder left: b joins the free set. */
    void (*insert)(void *state, const evict_view *v, int32_t b);
    /* Free block b was hit (a request holds it again): it leaves the set. */
    void (*remove)(void *state, const evict_view *v, int32_t b);
    /* Free block b's n_children changed. Optional. */
    void (*update)(void *state, const evict_view *v, int32_t b);
    /* A free block to reuse, which leaves the set. The set is not empty. */
    int32_t (*victim)(void *state, const evict_view *v);
    void (*destroy)(void *state);   /* optional */
} evict_policy_ops;

#endif
