/* The KV cache (see kv.h).
 *
 * Counting mode keeps three numbers and a time integral. Identity mode adds,
 * per block, its hash and reference count, the free queue, and a hash table
 * from content hash to block (open addressing, linear probing; hashes are
 * never 0, so 0 marks an empty slot; an evicted block's slot is left void
 * rather than deleted, see table_find: Mooncake replay, 16 instances, 50k
 * requests, 4.0-5.0 -> 3.8 s user). Allocation
 * pops the free queue's head: if that block holds a cached prefix, it is
 * evicted (unhashed) first.
 *
 * The built-in free queue (vLLM's LRU) is a ring of (block, stamp) entries
 * in the order blocks were freed. Taking a block out of the middle (a hit)
 * only bumps the block's stamp, which voids its entry; pops skip void
 * entries, and the ring is compacted when half of it is void. Against a
 * linked list this saves two scattered reads per block freed or reused, and
 * the ring shows the next victims in advance, so their blocks are fetched
 * ahead. With the lazy registration below: 64 instances, 200k requests,
 * 9.4 -> 4.5 s user side by side on a loaded machine (2.8 s with caching
 * off); tests/test_prefix_cache.c checks the order against
 * policies/evict_lru.c's list on a random run.
 *
 * The plan ledger answers a batch policy's questions without changing the
 * cache: preemptions and admissions the plan has already made are kept in a
 * per-block scratch count (plan_ref, valid where plan_mark equals the
 * ledger's epoch, so resetting it is O(1)). A block's effective reference
 * count is ref + plan_ref. Applying the plan in the order kv.h gives
 * (preemptions, then every admission's cached blocks, then allocations)
 * needs no more blocks than the ledger counted, so a plan the ledger passed
 * always fits.
 *
 * A waiting request's prefix match is remembered with the cache's eviction
 * epoch: while no cached block has been evicted, every block it matched is
 * still there, and a new match only has to continue from where it stopped.
 *
 * Blocks past a request's prefix ids hold contents only that request can
 * make again (after a preemption); they stay out of the hash table and are
 * found through the request's own record (kv_req.held), which saves the
 * table insert and removal that dominated runs without shared prefixes
 * (64 instances, 100k requests: 3.40 -> 1.97 s). A request that moved away
 * loses its record of the blocks it left behind: moving back, it does not
 * find them (a table would). Under the built-in queue with no tiers (when
 * nothing looks at a held block's hash before it is freed), such blocks are
 * registered when the request frees them rather than as they fill, in one
 * pass over blocks that are being touched anyway; a finished request's are
 * only marked cached (PRIVATE_DONE), since nobody can ever match them.
 *
 * Cost: counting mode O(1) per call. Identity mode O(1) per block allocated
 * or freed, O(blocks) per preemption in the ledger, and O(matched blocks)
 * per admission check of a waiting request with a cached prefix. */
#include "serve/kv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sim/jsoncfg.h"

#define GIB (1024.0 * 1024.0 * 1024.0)
#define NIL (-1)

/* A slot of the hash table (key 0: empty). */
typedef struct kv_slot {
    uint64_t key;
    int64_t val;
} kv_slot;

/* An entry of the built-in free queue: valid while stamp equals the
 * block's queue_stamp. */
typedef struct kv_qent {
    int32_t b;
    uint32_t stamp;
} kv_qent;

typedef struct kv_ledger {
    batch_kv pub;        /* first: the view holds a batch_kv pointer */
    kv_cache *kv;
} kv_ledger;

struct kv_cache {
    int64_t total, used, peak;
    int32_t block_tokens;
    bool identity;
    double used_block_ns;       /* integral of used over time */
    sim_time_ns last_change_ns;
    uint64_t evictions, hit_tokens, lookup_tokens, hit_blocks, lookup_blocks, tier_hit_tokens;
    /* identity mode */
    evict_block *blk;           /* what eviction policies see */
    kv_qent *ring;              /* the built-in queue (ev == NULL) */
    uint64_t ring_head, ring_tail;   /* entries head .. tail-1, in LRU order */
    size_t ring_mask;
    int64_t ring_live;          /* valid entries: the free blocks */
    uint64_t *parent_hash;      /* hash blk[b].parent held when b was cached */
    const evict_policy_ops *ev; /* NULL: the built-in queue (vLLM's LRU) */
    bool tree;                  /* keep parents and children (ev->update given) */
    void *ev_state;
    evict_view ev_view;
    double (*cost_fn)(void *ctx, int32_t q_tokens, int32_t ctx_tokens);
    void *cost_ctx;
    double *cost_memo;          /* recompute_ns by depth; 0: not priced yet */
    int32_t cost_cap;
    /* lower tiers (inclusive copies, kv_tier.h) */
    kv_tier *tier[KV_TIERS_MAX];
    kv_tier_setup tier_setup[KV_TIERS_MAX];
    int32_t n_tiers;
    bool tier_cost_aware;
    double block_bytes;         /* one block, all GPUs (for load estimates) */
    uint64_t tier_epoch;        /* tier evictions so far */
    double pending_load[KV_TIERS_MAX], pending_write[KV_TIERS_MAX];   /* blocks */
    uint64_t tier_hit_blocks[KV_TIERS_MAX], tier_write_blocks[KV_TIERS_MAX];
    /* token-level compression (counting mode): a request keeps
     * min(seq, max(keep_min, ceil(keep_frac x seq))) tokens */
    bool budget;
    int64_t keep_min;
    double keep_frac;
    int64_t cached;             /* free blocks with a hash */
    uint64_t evict_epoch;
    kv_slot *slots;             /* hash table: key and value in one cache line */
    size_t mask;
    size_t table_used;          /* slots with a key, live or void */
    int64_t table_live;         /* slots whose block still holds their key */
    /* the plan ledger */
    kv_ledger led;
    int32_t *plan_ref;
    uint32_t *plan_mark;
    uint32_t plan_epoch;
};

int kv_capacity_blocks(const llm_model *m, const gpu_spec *g, const par_layout *par,
                       double gpu_memory_utilization, double activation_reserve_bytes,
                       int32_t block_size_tokens, int64_t *out, sim_err *err)
{
    double usable = g->hbm_bytes * gpu_memory_utilization;
    double weights = llm_weight_bytes_per_gpu(m, par);
    double free_bytes = usable - weights - activation_reserve_bytes;
    if (free_bytes <= 0)
        return sim_errf(err, "%s does not fit on %s at tp=%d: each GPU holds %.1f GiB "
                        "of weights plus a %.1f GiB activation reserve, but only "
                        "%.1f GiB (%.0f%% of %.1f GiB) is usable; raise tp or "
                        "gpu_memory_utilization", m->name, g->name, par->tp, weights / GIB,
                        activation_reserve_bytes / GIB, usable / GIB,
                        gpu_memory_utilization * 100, g->hbm_bytes / GIB);
    double block_bytes = llm_kv_bytes_per_token_per_gpu(m, par) * block_size_tokens;
    *out = (int64_t)(free_bytes / block_bytes);
    return 0;
}

/* ---- time integral ------------------------------------------------------------- */

static void advance(kv_cache *kv, sim_time_ns now)
{
    SIM_ASSERT_AT(now, now >= kv->last_change_ns);
    kv->used_block_ns += (double)kv->used * (double)(now - kv->last_change_ns);
    kv->last_change_ns = now;
}

static void add_used(kv_cache *kv, int64_t blocks, sim_time_ns now)
{
    if (!blocks)
        return;
    advance(kv, now);
    kv->used += blocks;
    SIM_ASSERT_AT(now, kv->used >= 0 && kv->used <= kv->total);
    if (kv->used > kv->peak)
        kv->peak = kv->used;
}

/* ---- hash table ---------------------------------------------------------------- */

/* A private block's hash (see kv_req.held): kept out of the table. */
static bool is_private(uint64_t h) { return h & 1; }

static size_t slot_of(const kv_cache *kv, uint64_t h) { return (size_t)(h ^ (h >> 29)) & kv->mask; }

/* Slots are never emptied one by one: an evicted block's slot stays, void,
 * until its key is registered again or the table is rebuilt (a slot is live
 * while its block still holds its key), so an eviction touches only the
 * block, not a slot far away in memory. Each key has at most one slot. */
static bool slot_live(const kv_cache *kv, const kv_slot *s)
{
    return kv->blk[s->val].hash == s->key;
}

static int32_t table_find(const kv_cache *kv, uint64_t h)
{
    for (size_t i = slot_of(kv, h);; i = (i + 1) & kv->mask) {
        if (kv->slots[i].key == h)
            return slot_live(kv, &kv->slots[i]) ? (int32_t)kv->slots[i].val : NIL;
        if (kv->slots[i].key == 0)
            return NIL;
    }
}

/* Rebuilds the table without its void slots, twice as large when live keys
 * fill more than a quarter of it. It is then at most half full, and it is
 * rebuilt only after a quarter of its slots more were used: O(1) amortised
 * per registration (the liveness checks are independent reads, fetched
 * ahead, unlike an eviction's). */
static void table_rebuild(kv_cache *kv)
{
    size_t old_n = kv->mask + 1, n = old_n;
    if ((size_t)kv->table_live * 4 > n)
        n *= 2;
    kv_slot *old = kv->slots;
    kv->slots = sim_xcalloc_huge(n, sizeof *kv->slots);
    kv->mask = n - 1;
    kv->table_used = 0;
    for (size_t j = 0; j < old_n; j++) {
        if (j + 16 < old_n && old[j + 16].key)
            __builtin_prefetch(&kv->blk[old[j + 16].val]);
        if (!old[j].key || !slot_live(kv, &old[j]))
            continue;
        size_t i = slot_of(kv, old[j].key);
        while (kv->slots[i].key)
            i = (i + 1) & kv->mask;
        kv->slots[i] = old[j];
        kv->table_used++;
    }
    free(old);
}

/* Inserts h -> b unless a live block holds h already (then the older block
 * keeps it). */
static bool table_insert(kv_cache *kv, uint64_t h, int32_t b)
{
    size_t i = slot_of(kv, h);
    for (; kv->slots[i].key; i = (i + 1) & kv->mask)
        if (kv->slots[i].key == h) {
            if (slot_live(kv, &kv->slots[i]))
                return false;
            kv->slots[i].val = b;   /* a void slot of the same key */
            kv->table_live++;
            return true;
        }
    if (2 * (kv->table_used + 1) > kv->mask + 1) {
        table_rebuild(kv);
        return table_insert(kv, h, b);
    }
    kv->slots[i] = (kv_slot){h, b};
    kv->table_used++;
    kv->table_live++;
    return true;
}

/* ---- free queue ---------------------------------------------------------------- */

/* ---- the built-in queue ---------------------------------------------------------- */

static bool entry_valid(const kv_cache *kv, kv_qent e)
{
    return kv->blk[e.b].queue_stamp == e.stamp;
}

/* Makes room for one more entry: drops the void ones when at least half
 * are void (amortised O(1): the ring filled since the last time), else
 * doubles the ring. */
static void ring_make_room(kv_cache *kv)
{
    size_t cap = kv->ring_mask + 1;
    if (kv->ring_tail - kv->ring_head < cap)
        return;
    if ((size_t)kv->ring_live <= cap / 2) {
        uint64_t w = kv->ring_head;
        for (uint64_t i = kv->ring_head; i < kv->ring_tail; i++) {
            kv_qent e = kv->ring[i & kv->ring_mask];
            if (entry_valid(kv, e))
                kv->ring[w++ & kv->ring_mask] = e;
        }
        kv->ring_tail = w;
        return;
    }
    kv_qent *bigger = sim_xcalloc_huge(2 * cap, sizeof *bigger);
    size_t n = 0;
    for (uint64_t i = kv->ring_head; i < kv->ring_tail; i++)
        bigger[n++] = kv->ring[i & kv->ring_mask];
    free(kv->ring);
    kv->ring = bigger;
    kv->ring_mask = 2 * cap - 1;
    kv->ring_head = 0;
    kv->ring_tail = n;
}

static void ring_push(kv_cache *kv, int32_t b)
{
    ring_make_room(kv);
    kv->ring[kv->ring_tail++ & kv->ring_mask] = (kv_qent){b, ++kv->blk[b].queue_stamp};
    kv->ring_live++;
}

/* How far ahead the next victims' blocks are fetched. */
enum { RING_AHEAD = 8 };

static int32_t ring_pop(kv_cache *kv)
{
    for (;;) {
        SIM_ASSERT(kv->ring_head < kv->ring_tail);
        kv_qent e = kv->ring[kv->ring_head++ & kv->ring_mask];
        if (kv->ring_head + RING_AHEAD < kv->ring_tail)
            __builtin_prefetch(&kv->blk[kv->ring[(kv->ring_head + RING_AHEAD) & kv->ring_mask].b], 1);
        if (!entry_valid(kv, e))
            continue;
        kv->blk[e.b].queue_stamp++;
        kv->ring_live--;
        return e.b;
    }
}

/* The free set: the built-in queue, or the eviction policy's. */
static void queue_push_tail(kv_cache *kv, int32_t b)
{
    kv->cached += kv->blk[b].hash != 0;
    if (kv->ev)
        kv->ev->insert(kv->ev_state, &kv->ev_view, b);
    else
        ring_push(kv, b);
}

static void queue_remove(kv_cache *kv, int32_t b)
{
    kv->cached -= kv->blk[b].hash != 0;
    if (kv->ev) {
        kv->ev->remove(kv->ev_state, &kv->ev_view, b);
        return;
    }
    kv->blk[b].queue_stamp++;   /* voids its entry */
    kv->ring_live--;
}

/* Free block b's n_children changed by d. */
static void child_count(kv_cache *kv, int32_t p, int32_t d)
{
    evict_block *x = &kv->blk[p];
    if (d < 0 && x->n_children == 0)
        return;   /* an orphan's parent cached again: its count restarted */
    x->n_children += d;
    if (x->ref == 0 && kv->ev && kv->ev->update)
        kv->ev->update(kv->ev_state, &kv->ev_view, p);
}

/* A free block for new contents, evicted if cached: the queue's head, or
 * the policy's victim. */
static int32_t take_free_block(kv_cache *kv, sim_time_ns now)
{
    int32_t b;
    if (kv->ev) {
        kv->ev_view.now = now;
        b = kv->ev->victim(kv->ev_state, &kv->ev_view);
        SIM_ASSERT_AT(now, b >= 0 && b < kv->total && kv->blk[b].ref == 0);
        kv->cached -= kv->blk[b].hash != 0;
    } else {
        b = ring_pop(kv);
        kv->cached -= kv->blk[b].hash != 0;
    }
    evict_block *x = &kv->blk[b];
    if (x->hash) {
        kv->table_live -= !is_private(x->hash);   /* its slot is void now */
        if (kv->tree && x->parent != NIL && kv->blk[x->parent].hash == kv->parent_hash[b])
            child_count(kv, x->parent, -1);
        x->hash = 0;
        kv->evictions++;
        kv->evict_epoch++;
    }
    *x = (evict_block){.ref = 1, .last_access_ns = now, .parent = NIL,
                       .queue_stamp = x->queue_stamp};
    return b;
}

/* ---- content hashes -------------------------------------------------------------- */

static uint64_t hash_at(int32_t block_tokens, kv_req *k, int32_t i)
{
    if (k->hash_block_tokens != block_tokens) {   /* another pool's block size */
        k->n_hash = 0;
        k->hash_block_tokens = block_tokens;
    }
    if (i < k->n_hash)
        return k->hash[i];
    if (i >= k->hash_cap) {
        int32_t cap = k->hash_cap ? k->hash_cap : 16;
        while (cap <= i)
            cap *= 2;
        k->hash = sim_xrealloc(k->hash, (size_t)cap * sizeof *k->hash);
        k->hash_cap = cap;
    }
    for (int32_t j = k->n_hash; j <= i; j++) {
        int64_t last = (int64_t)(j + 1) * block_tokens - 1;   /* its last token */
        uint64_t id = last < k->id_tokens ? k->ids[last / k->id_block_tokens] : k->unique;
        uint64_t parent = j ? k->hash[j - 1] : UINT64_C(0x736572766573696d);
        uint64_t h = sim_hash_mix(sim_hash_mix(parent, id), (uint64_t)j + 1);
        /* The low bit tags private blocks (see kv_req.held); never 0. */
        k->hash[j] = last < k->id_tokens ? ((h & ~(uint64_t)1) ? h & ~(uint64_t)1 : 2) : h | 1;
    }
    k->n_hash = i + 1;
    return k->hash[i];
}

static uint64_t block_hash(const kv_cache *kv, kv_req *k, int32_t i)
{
    return hash_at(kv->block_tokens, k, i);
}


/* The block of kv holding block i of k's sequence, or NIL: shared blocks
 * through the hash table, private ones through k's own record (only k can
 * have made them). */
static inline int32_t lookup_hash(const kv_cache *kv, const kv_req *k, int32_t i, uint64_t h)
{
    if (!is_private(h))
        return table_find(kv, h);
    if (k->held_kv != kv || i >= k->n_held)
        return NIL;
    int32_t b = k->held[i];
    return b != NIL && kv->blk[b].hash == h ? b : NIL;
}

static int32_t lookup(const kv_cache *kv, kv_req *k, int32_t i)
{
    return lookup_hash(kv, k, i, block_hash(kv, k, i));
}

/* Records that private block i of k is now held by block b of kv. */
static void hold(const kv_cache *kv, kv_req *k, int32_t i, int32_t b)
{
    if (k->held_kv != kv) {   /* moved: its blocks elsewhere are out of reach */
        k->held_kv = kv;
        k->n_held = 0;
    }
    if (i >= k->held_cap) {
        int32_t cap = k->held_cap ? 2 * k->held_cap : 64;
        while (cap <= i)
            cap *= 2;
        k->held = sim_xrealloc(k->held, (size_t)cap * sizeof *k->held);
        k->held_cap = cap;
    }
    for (int32_t j = k->n_held; j < i; j++)
        k->held[j] = NIL;
    k->held[i] = b;
    if (i >= k->n_held)
        k->n_held = i + 1;
}

int32_t kv_req_prompt_hashes(kv_req *k, int32_t block_tokens, int32_t seq_tokens,
                             const uint64_t **out)
{
    int32_t most = block_tokens > 0 ? (seq_tokens - 1) / block_tokens : 0;
    if (most > 0)
        hash_at(block_tokens, k, most - 1);
    *out = k->hash;
    return most > 0 ? most : 0;
}

/* Blocks of waiting r's sequence that the cache holds, from its first, at
 * most one token short of the sequence. */
static void table_append(kv_req *k, int32_t n, int32_t b);

static int32_t match(kv_cache *kv, const serve_req *r, kv_req *k)
{
    int32_t most = (req_seq_tokens(r) - 1) / kv->block_tokens;
    int32_t m = k->match_kv == kv && k->match_epoch == kv->evict_epoch ? k->match_blocks : 0;
    if (m > most)
        m = most;
    for (int32_t b; m < most && (b = lookup(kv, k, m)) != NIL; m++)
        table_append(k, m, b);   /* k waits: its table is free to remember them */
    k->match_blocks = m;
    k->match_epoch = kv->evict_epoch;
    k->match_kv = kv;
    return m;
}

/* Block i < k->match_blocks of kv's cache: the one match remembered in k's
 * table, looked up again should the table have been reused since. */
static int32_t matched_block(const kv_cache *kv, const kv_req *k, int32_t i)
{
    if (i < k->table_cap) {
        int32_t b = k->table[i];
        if (b >= 0 && b < kv->total && kv->blk[b].hash == k->hash[i])
            return b;
    }
    return lookup_hash(kv, k, i, k->hash[i]);
}

/* ---- lower tiers ---------------------------------------------------------------- */

static int32_t tier_of(const kv_cache *kv, uint64_t h)
{
    for (int32_t t = 0; t < kv->n_tiers; t++)
        if (kv_tier_has(kv->tier[t], h))
            return t;
    return -1;
}

static double recompute_at(kv_cache *kv, int32_t depth);

/* Whether loading blocks m .. m+n-1 of k from the tiers beats computing
 * them (cost_aware). O(n). */
static bool load_pays(kv_cache *kv, kv_req *k, int32_t m, int32_t n)
{
    double blocks[KV_TIERS_MAX] = {0}, load_ns = 0, compute_ns = 0;
    for (int32_t i = m; i < m + n; i++) {
        blocks[tier_of(kv, k->hash[i])]++;
        compute_ns += recompute_at(kv, i);
    }
    for (int32_t t = 0; t < kv->n_tiers; t++) {
        if (!blocks[t])
            continue;
        const kv_tier_setup *ts = &kv->tier_setup[t];
        double chunks = ceil(blocks[t] * kv->block_tokens / ts->chunk_tokens);
        load_ns += chunks * (double)ts->latency_ns +
                   blocks[t] * kv->block_bytes / ts->read_bytes_per_s * 1e9;
    }
    return load_ns < compute_ns;
}

/* Blocks of waiting r's sequence past its HBM match of m blocks that the
 * tiers hold (from block m on, at most one token short of the sequence)
 * and that are to be loaded. Remembered while no tier evicted anything:
 * then only a longer run has to be looked for. */
static int32_t tier_match(kv_cache *kv, const serve_req *r, kv_req *k, int32_t m)
{
    if (!kv->n_tiers)
        return 0;
    int32_t most = (req_seq_tokens(r) - 1) / kv->block_tokens;
    bool memo = k->tier_kv == kv && k->tier_from == m && k->tier_epoch == kv->tier_epoch;
    int32_t raw = memo ? k->tier_raw : 0;
    while (m + raw < most && tier_of(kv, block_hash(kv, k, m + raw)) >= 0)
        raw++;
    if (!memo || raw != k->tier_raw)
        k->tier_use = raw && kv->tier_cost_aware && !load_pays(kv, k, m, raw) ? 0 : raw;
    k->tier_kv = kv;
    k->tier_from = m;
    k->tier_raw = raw;
    k->tier_epoch = kv->tier_epoch;
    return k->tier_use;
}

void kv_set_tiers(kv_cache *kv, const kv_tiers_setup *tiers, double block_bytes_per_gpu)
{
    SIM_ASSERT(kv->n_tiers == 0 && tiers->n <= KV_TIERS_MAX);
    if (!kv->identity)
        return;
    for (int32_t t = 0; t < tiers->n; t++) {
        kv->tier_setup[t] = tiers->tier[t];
        kv->tier[t] = kv_tier_create_for(&tiers->tier[t], kv->block_tokens);
    }
    kv->n_tiers = tiers->n;
    kv->tier_cost_aware = tiers->cost_aware;
    kv->block_bytes = block_bytes_per_gpu;
}

int32_t kv_take_tier_io(kv_cache *kv, double load_blocks[KV_TIERS_MAX],
                        double write_blocks[KV_TIERS_MAX])
{
    for (int32_t t = 0; t < kv->n_tiers; t++) {
        load_blocks[t] = kv->pending_load[t];
        write_blocks[t] = kv->pending_write[t];
        kv->pending_load[t] = kv->pending_write[t] = 0;
    }
    return kv->n_tiers;
}

/* Block i of k, just cached in HBM, is written through to every tier that
 * lacks it. */
static void write_through(kv_cache *kv, uint64_t h, int32_t depth)
{
    for (int32_t t = 0; t < kv->n_tiers; t++) {
        uint64_t ev = kv_tier_evictions(kv->tier[t]);
        if (kv_tier_write(kv->tier[t], h, depth, kv->last_change_ns)) {
            kv->pending_write[t]++;
            kv->tier_write_blocks[t]++;
        }
        if (kv_tier_evictions(kv->tier[t]) != ev)
            kv->tier_epoch++;
    }
}

int32_t kv_peek_cached_tokens(const kv_cache *kv, const serve_req *r, kv_req *k)
{
    if (!kv->identity)
        return 0;
    int32_t most = (req_seq_tokens(r) - 1) / kv->block_tokens, m = 0;
    while (m < most && lookup(kv, k, m) != NIL)
        m++;
    return m * kv->block_tokens;
}

/* ---- creation ------------------------------------------------------------------ */

kv_cache *kv_create(int64_t total_blocks, int32_t block_size_tokens, bool prefix_caching,
                    sim_time_ns now)
{
    SIM_ASSERT(total_blocks >= 0 && total_blocks < INT32_MAX && block_size_tokens >= 1);
    kv_cache *kv = sim_xcalloc(1, sizeof *kv);
    kv->total = total_blocks;
    kv->block_tokens = block_size_tokens;
    kv->identity = prefix_caching;
    kv->last_change_ns = now;
    kv->led.kv = kv;
    if (!prefix_caching)
        return kv;
    kv->blk = sim_xcalloc_huge((size_t)total_blocks, sizeof *kv->blk);
    size_t ring = 16;
    while (ring < 2 * (size_t)total_blocks)
        ring *= 2;
    kv->ring = sim_xcalloc_huge(ring, sizeof *kv->ring);
    kv->ring_mask = ring - 1;
    for (int32_t b = 0; b < (int32_t)total_blocks; b++) {
        kv->blk[b] = (evict_block){.parent = NIL, .last_access_ns = now};
        queue_push_tail(kv, b);
    }
    kv->slots = sim_xcalloc(1024, sizeof *kv->slots);   /* grows with the live keys */
    kv->mask = 1024 - 1;
    kv->plan_ref = sim_xmalloc((size_t)total_blocks * sizeof *kv->plan_ref);
    kv->plan_mark = sim_xcalloc((size_t)total_blocks, sizeof *kv->plan_mark);
    return kv;
}

void kv_destroy(kv_cache *kv)
{
    if (!kv)
        return;
    if (kv->ev_state && kv->ev->destroy)
        kv->ev->destroy(kv->ev_state);
    free(kv->blk);
    free(kv->ring);
    free(kv->parent_hash);
    free(kv->cost_memo);
    for (int32_t t = 0; t < kv->n_tiers; t++)
        kv_tier_destroy(kv->tier[t]);
    free(kv->slots);
    free(kv->plan_ref);
    free(kv->plan_mark);
    free(kv);
}

static double recompute_at(kv_cache *kv, int32_t depth)
{
    if (depth < 0)
        depth = 0;
    if (depth >= kv->cost_cap) {
        int32_t cap = kv->cost_cap ? kv->cost_cap : 64;
        while (cap <= depth)
            cap *= 2;
        kv->cost_memo = sim_xrealloc(kv->cost_memo, (size_t)cap * sizeof *kv->cost_memo);
        memset(kv->cost_memo + kv->cost_cap, 0,
               (size_t)(cap - kv->cost_cap) * sizeof *kv->cost_memo);
        kv->cost_cap = cap;
    }
    double *c = &kv->cost_memo[depth];
    if (*c == 0) {
        int64_t ctx = (int64_t)depth * kv->block_tokens;
        if (ctx > INT32_MAX)
            ctx = INT32_MAX;
        /* Without a cost model: the block's tokens plus the attention over
         * its context, in token units (a shape, not a time). */
        *c = kv->cost_fn ? kv->cost_fn(kv->cost_ctx, kv->block_tokens, (int32_t)ctx)
                         : (double)kv->block_tokens * (1.0 + (double)depth / 2);
        if (*c <= 0)
            *c = 1e-9;
    }
    return *c;
}

static double view_recompute_ns(const evict_view *v, int32_t depth)
{
    return recompute_at(v->core, depth);
}

int kv_set_eviction(kv_cache *kv, const evict_policy_ops *ops, cJSON *params,
                    const char *path, uint64_t seed, sim_err *err)
{
    SIM_ASSERT(!kv->ev && kv->used == 0 && kv->cached == 0);
    if (!kv->identity || !ops)
        return 0;
    if (ops->builtin) {   /* the built-in queue is this policy */
        static const char *const keys[] = {NULL};
        return jcfg_check_keys(params, path, keys, err);
    }
    evict_setup setup = {.n_blocks = (int32_t)kv->total, .block_size_tokens = kv->block_tokens,
                         .seed = seed};
    if (ops->init(&setup, params, path, &kv->ev_state, err))
        return -1;
    kv->ev = ops;
    free(kv->ring);   /* the policy keeps the free set */
    kv->ring = NULL;
    if (ops->update) {   /* only tree-aware policies pay for the tree */
        kv->tree = true;
        kv->parent_hash = sim_xcalloc((size_t)kv->total, sizeof *kv->parent_hash);
    }
    kv->ev_view = (evict_view){.now = kv->last_change_ns, .blocks = kv->blk,
                               .n_blocks = (int32_t)kv->total,
                               .block_size_tokens = kv->block_tokens,
                               .recompute_ns = view_recompute_ns, .core = kv};
    for (int32_t b = 0; b < (int32_t)kv->total; b++)
        ops->insert(kv->ev_state, &kv->ev_view, b);
    return 0;
}

void kv_set_recompute(kv_cache *kv, double (*fn)(void *ctx, int32_t q_tokens, int32_t ctx_tokens),
                      void *ctx)
{
    kv->cost_fn = fn;
    kv->cost_ctx = ctx;
    if (kv->cost_memo)
        memset(kv->cost_memo, 0, (size_t)kv->cost_cap * sizeof *kv->cost_memo);
}

const char *kv_eviction_name(const kv_cache *kv)
{
    return kv->ev ? kv->ev->name : "lru";
}

int64_t kv_total_blocks(const kv_cache *kv) { return kv->total; }
int64_t kv_used_blocks(const kv_cache *kv) { return kv->used; }
bool kv_prefix_caching(const kv_cache *kv) { return kv->identity; }

void kv_get_stats(const kv_cache *kv, kv_stats *out)
{
    *out = (kv_stats){
        .total_blocks = kv->total, .used_blocks = kv->used, .peak_blocks = kv->peak,
        .cached_blocks = kv->cached, .evictions = kv->evictions,
        .hit_tokens = kv->hit_tokens, .lookup_tokens = kv->lookup_tokens,
        .hit_blocks = kv->hit_blocks, .lookup_blocks = kv->lookup_blocks,
        .tier_hit_tokens = kv->tier_hit_tokens, .n_tiers = kv->n_tiers,
    };
    for (int32_t t = 0; t < kv->n_tiers; t++) {
        out->tier_hit_blocks[t] = kv->tier_hit_blocks[t];
        out->tier_write_blocks[t] = kv->tier_write_blocks[t];
    }
}

double kv_mean_fraction(const kv_cache *kv, sim_time_ns start, sim_time_ns now)
{
    if (now <= start || kv->total == 0)
        return 0;
    double integral = kv->used_block_ns +
                      (double)kv->used * (double)(now - kv->last_change_ns);
    return integral / ((double)(now - start) * (double)kv->total);
}

static int64_t retained(const kv_cache *kv, int64_t tokens)
{
    if (!kv->budget)
        return tokens;
    int64_t keep = kv->keep_min, f = (int64_t)ceil(kv->keep_frac * (double)tokens);
    if (f > keep)
        keep = f;
    return keep < tokens ? keep : tokens;
}

int64_t kv_blocks_for(const kv_cache *kv, int64_t tokens)
{
    return (retained(kv, tokens) + kv->block_tokens - 1) / kv->block_tokens;
}

int64_t kv_attended_tokens(const kv_cache *kv, int64_t tokens) { return retained(kv, tokens); }

/* The longest sequence `blocks` blocks hold (kv_cap_tokens). */
static int64_t cap_of(const kv_cache *kv, int64_t blocks)
{
    int64_t c = blocks * kv->block_tokens;
    if (!kv->budget || c < kv->keep_min)
        return c;
    if (kv->keep_frac <= 0)
        return INT32_MAX;
    double most = floor((double)c / kv->keep_frac);
    int64_t cap = most > INT32_MAX ? INT32_MAX : (int64_t)most;
    while (cap > c && retained(kv, cap) > c)
        cap--;
    return cap;
}

void kv_set_budget(kv_cache *kv, int64_t keep_min_tokens, double keep_fraction)
{
    SIM_ASSERT(!kv->identity && kv->used == 0 && keep_min_tokens >= 1 &&
               keep_fraction >= 0 && keep_fraction <= 1);
    kv->budget = true;
    kv->keep_min = keep_min_tokens;
    kv->keep_frac = keep_fraction;
}

void kv_req_init(kv_req *k, const uint64_t *ids, int32_t id_tokens, int32_t id_block_tokens,
                 uint64_t unique)
{
    int32_t *table = k->table;   /* arrays are reused across requests */
    int32_t table_cap = k->table_cap;
    uint64_t *hash = k->hash;
    int32_t hash_cap = k->hash_cap;
    int32_t *held = k->held;
    int32_t held_cap = k->held_cap;
    *k = (kv_req){.table = table, .table_cap = table_cap, .hash = hash, .hash_cap = hash_cap,
                  .held = held, .held_cap = held_cap,
                  .ids = ids, .id_tokens = ids && id_block_tokens > 0 ? id_tokens : 0,
                  .id_block_tokens = id_block_tokens > 0 ? id_block_tokens : 1,
                  .unique = unique};
}

void kv_req_fini(kv_req *k)
{
    free(k->table);
    free(k->hash);
    free(k->held);
    *k = (kv_req){0};
}

/* ---- the ledger ------------------------------------------------------------------ */

static kv_req *kreq(const serve_req *r);

static int32_t eff_ref(const kv_cache *kv, int32_t b)
{
    return kv->blk[b].ref + (kv->plan_mark[b] == kv->plan_epoch ? kv->plan_ref[b] : 0);
}

static void plan_add_ref(kv_cache *kv, int32_t b, int32_t d)
{
    if (kv->plan_mark[b] != kv->plan_epoch) {
        kv->plan_mark[b] = kv->plan_epoch;
        kv->plan_ref[b] = 0;
    }
    kv->plan_ref[b] += d;
}

/* Waiting r with computed_tokens 0 and nothing swapped: a fresh admission,
 * the only kind that looks the cache up. */
static bool fresh(const serve_req *r)
{
    return r->state == REQ_WAITING && r->computed_tokens == 0 && r->swapped_blocks == 0;
}

static int64_t led_need(batch_kv *bk, const serve_req *r, int32_t tokens)
{
    kv_cache *kv = ((kv_ledger *)bk)->kv;
    if (kv->identity && fresh(r)) {
        kv_req *k = kreq(r);
        int32_t m = match(kv, r, k), touch = 0;
        int32_t t = tier_match(kv, r, k, m);   /* loaded into new blocks */
        for (int32_t i = 0; i < m; i++)
            touch += eff_ref(kv, matched_block(kv, k, i)) == 0;
        return kv_blocks_for(kv, (int64_t)(m + t) * kv->block_tokens + tokens) - m + touch;
    }
    int64_t need = kv_blocks_for(kv, (int64_t)r->computed_tokens + tokens) - r->kv_blocks;
    return need > 0 ? need : 0;
}

static void led_take(batch_kv *bk, const serve_req *r, int32_t tokens)
{
    kv_cache *kv = ((kv_ledger *)bk)->kv;
    bk->free_blocks -= led_need(bk, r, tokens);
    SIM_ASSERT(bk->free_blocks >= 0);
    if (kv->identity && fresh(r)) {
        kv_req *k = kreq(r);
        for (int32_t i = 0; i < k->match_blocks; i++)
            plan_add_ref(kv, matched_block(kv, k, i), 1);
    }
}

static int64_t led_preempt(batch_kv *bk, const serve_req *r)
{
    kv_cache *kv = ((kv_ledger *)bk)->kv;
    SIM_ASSERT(r->state == REQ_RUNNING);
    int64_t freed = r->kv_blocks;
    if (kv->identity) {
        kv_req *k = kreq(r);
        freed = 0;
        for (int32_t i = 0; i < r->kv_blocks; i++) {
            plan_add_ref(kv, k->table[i], -1);
            freed += eff_ref(kv, k->table[i]) == 0;
        }
    }
    bk->free_blocks += freed;
    return freed;
}

static int32_t led_cached_tokens(batch_kv *bk, const serve_req *r)
{
    kv_cache *kv = ((kv_ledger *)bk)->kv;
    if (!kv->identity || !fresh(r))
        return 0;
    kv_req *k = kreq(r);
    int32_t m = match(kv, r, k);
    return (m + tier_match(kv, r, k, m)) * kv->block_tokens;
}

static int64_t led_room(batch_kv *bk, const serve_req *r)
{
    kv_cache *kv = ((kv_ledger *)bk)->kv;
    int64_t room;
    if (kv->identity && fresh(r)) {
        /* Touching its cached blocks uses some of the free ones. */
        room = (bk->free_blocks - (led_need(bk, r, 0))) * kv->block_tokens;
    } else {
        room = cap_of(kv, (int64_t)r->kv_blocks + bk->free_blocks) - r->computed_tokens;
    }
    return room > 0 ? room : 0;
}

static const batch_kv_ops ledger_ops = {
    .need = led_need,
    .take = led_take,
    .preempt = led_preempt,
    .cached_tokens = led_cached_tokens,
    .room = led_room,
};

batch_kv *kv_ledger_begin(kv_cache *kv)
{
    kv->led.pub = (batch_kv){.ops = &ledger_ops, .free_blocks = kv->total - kv->used};
    /* The blocks this iteration will take next: fetched while the policy
     * plans (by the time it is applied, other instances' iterations have
     * pushed anything fetched earlier out of the caches). */
    if (kv->ring)
        for (uint64_t i = kv->ring_head; i < kv->ring_head + RING_AHEAD && i < kv->ring_tail; i++)
            __builtin_prefetch(&kv->blk[kv->ring[i & kv->ring_mask].b], 1);
    if (++kv->plan_epoch == 0) {   /* wrapped: forget every mark */
        if (kv->plan_mark)
            memset(kv->plan_mark, 0, (size_t)kv->total * sizeof *kv->plan_mark);
        kv->plan_epoch = 1;
    }
    return &kv->led.pub;
}

/* ---- applying a plan ------------------------------------------------------------- */

/* The core keeps each request's kv_req right after its serve_req (see
 * serve/req.h); the ledger only receives the serve_req. */
#include "serve/req.h"
static kv_req *kreq(const serve_req *r) { return &req_of(r)->kv; }

static void table_append(kv_req *k, int32_t n, int32_t b)
{
    if (n >= k->table_cap) {
        int32_t cap = k->table_cap ? 2 * k->table_cap : 64;
        while (cap <= n)
            cap *= 2;
        k->table = sim_xrealloc(k->table, (size_t)cap * sizeof *k->table);
        k->table_cap = cap;
    }
    k->table[n] = b;
}

/* Offers block i of k, just filled, to the cache: registered unless another
 * block holds the same contents (then the older one keeps them and k's
 * block stays anonymous). */
static void register_block(kv_cache *kv, kv_req *k, int32_t i)
{
    int32_t b = k->table[i];
    if (kv->blk[b].hash)
        return;
    uint64_t h = k->hash[i];
    bool fresh_contents;
    if (is_private(h)) {
        fresh_contents = lookup_hash(kv, k, i, h) == NIL;
        if (fresh_contents)
            hold(kv, k, i, b);
    } else {
        fresh_contents = table_insert(kv, h, b);
    }
    if (fresh_contents) {
        evict_block *x = &kv->blk[b];
        x->hash = h;
        if (kv->n_tiers)
            write_through(kv, x->hash, i);
        x->depth = i;
        if (kv->tree && i > 0 && (x->parent = lookup_hash(kv, k, i - 1, k->hash[i - 1])) != NIL) {
            kv->parent_hash[b] = k->hash[i - 1];
            child_count(kv, x->parent, +1);
        }
    }
}

/* Whether k's private blocks may be registered when it frees them rather
 * than as they fill: nothing reads a held block's hash before it is freed
 * (no eviction policy or tier sees blocks), and k has no record of earlier
 * private blocks here that a filling block must be checked against. */
static bool lazy_allowed(const kv_cache *kv, const kv_req *k)
{
    return !kv->ev && !kv->n_tiers && (k->held_kv != kv || k->n_held == 0);
}

/* A finished request's private blocks: cached (they count as cached and
 * as evicted, as vLLM's would) but matchable by nobody. */
#define PRIVATE_DONE UINT64_C(1)

/* Registers k's private blocks lazy_from .. n_registered-1 as kv_commit
 * would have as they filled (lazy_allowed makes the two the same); a
 * finished request's are only marked, by kv_release. */
static void register_lazy(kv_cache *kv, kv_req *k)
{
    int32_t n = k->n_registered;
    if (n > k->lazy_from)
        block_hash(kv, k, n - 1);
    for (int32_t i = k->lazy_from; i < n; i++) {
        if (i + 8 < n)
            __builtin_prefetch(&kv->blk[k->table[i + 8]], 1);
        register_block(kv, k, i);
    }
    k->lazy = false;
}

int32_t kv_admit(kv_cache *kv, serve_req *r, kv_req *k, sim_time_ns now)
{
    if (!kv->identity || !fresh(r))
        return 0;
    int32_t m = match(kv, r, k);
    int32_t t = tier_match(kv, r, k, m);
    kv->lookup_tokens += (uint64_t)req_seq_tokens(r);
    kv->lookup_blocks += (uint64_t)kv_blocks_for(kv, req_seq_tokens(r));
    kv->hit_blocks += (uint64_t)m;
    if (!m && !t)
        return 0;
    SIM_ASSERT_AT(now, r->kv_blocks == 0);
    int64_t touched = 0;
    for (int32_t i = 0; i < m; i++) {
        int32_t b = matched_block(kv, k, i);
        SIM_ASSERT_AT(now, b != NIL);
        if (kv->blk[b].ref++ == 0) {
            queue_remove(kv, b);
            touched++;
        }
        kv->blk[b].hits++;
        kv->blk[b].last_access_ns = now;
        table_append(k, i, b);
    }
    add_used(kv, touched, now);
    /* Blocks from the tiers: loaded into blocks kv_grow allocates next (after
     * every admission of the plan has touched its prefix). */
    for (int32_t i = m; i < m + t; i++) {
        int32_t tr = tier_of(kv, k->hash[i]);
        SIM_ASSERT_AT(now, tr >= 0);
        kv_tier_use(kv->tier[tr], k->hash[i], i, now);   /* a use: most recent */
        kv->pending_load[tr]++;
        kv->tier_hit_blocks[tr]++;
    }
    int32_t tokens = (m + t) * kv->block_tokens;
    r->kv_blocks = m;
    r->kv_cap_tokens = m * kv->block_tokens;
    r->computed_tokens = tokens;
    r->cached_tokens += tokens;
    k->n_registered = m;   /* already in the cache */
    kv->hit_tokens += (uint64_t)m * kv->block_tokens;
    kv->tier_hit_tokens += (uint64_t)t * kv->block_tokens;
    return tokens;
}

void kv_grow_blocks(kv_cache *kv, serve_req *r, kv_req *k, int32_t tokens, sim_time_ns now)
{
    int64_t need = kv_blocks_for(kv, (int64_t)r->computed_tokens + tokens) - r->kv_blocks;
    if (need <= 0)
        return;
    SIM_ASSERT_AT(now, need <= kv->total - kv->used);
    if (kv->identity)
        for (int64_t i = 0; i < need; i++)
            table_append(k, r->kv_blocks + (int32_t)i, take_free_block(kv, now));
    add_used(kv, need, now);
    r->kv_blocks += (int32_t)need;
    r->kv_cap_tokens = (int32_t)cap_of(kv, r->kv_blocks);
}

void kv_release(kv_cache *kv, serve_req *r, kv_req *k, sim_time_ns now)
{
    int64_t freed = r->kv_blocks;
    if (kv->identity) {
        freed = 0;
        /* A finished request's lazy blocks are marked in the loop below,
         * which touches them anyway. */
        bool done = r->state == REQ_FINISHED;
        int32_t lazy_from = k->lazy ? k->lazy_from : INT32_MAX, lazy_to = k->n_registered;
        if (k->lazy && !done)
            register_lazy(kv, k);
        /* Tail first, so a request's last blocks are evicted before its
         * first ones (vLLM's order). */
        for (int32_t i = r->kv_blocks - 1; i >= 0; i--) {
            if (i >= 8)   /* scattered blocks: fetch ahead */
                __builtin_prefetch(&kv->blk[k->table[i - 8]], 1);
            int32_t b = k->table[i];
            if (done && i >= lazy_from && i < lazy_to && !kv->blk[b].hash) {
                kv->blk[b].hash = PRIVATE_DONE;
                kv->blk[b].depth = i;
            }
            SIM_ASSERT_AT(now, kv->blk[b].ref > 0);
            if (--kv->blk[b].ref == 0) {
                kv->blk[b].last_access_ns = now;
                queue_push_tail(kv, b);
                freed++;
            }
        }
        k->n_registered = 0;
    }
    add_used(kv, -freed, now);
    r->kv_blocks = 0;
    r->kv_cap_tokens = 0;
}

void kv_settle(kv_cache *kv, kv_req *k)
{
    if (kv->identity && k->lazy)
        register_lazy(kv, k);
}

void kv_commit(kv_cache *kv, const serve_req *r, kv_req *k)
{
    if (!kv->identity)
        return;
    int32_t full = r->computed_tokens / kv->block_tokens;
    if (full <= k->n_registered)
        return;
    int32_t eager = full;
    if (lazy_allowed(kv, k)) {   /* private blocks wait for kv_release */
        int32_t first_private = k->id_tokens / kv->block_tokens;
        if (first_private < k->n_registered)
            first_private = k->n_registered;
        if (first_private < full) {
            eager = first_private;
            if (!k->lazy) {
                k->lazy = true;
                k->lazy_from = first_private;
            }
        }
    }
    if (eager > k->n_registered)
        block_hash(kv, k, eager - 1);   /* every hash, then the lookups overlapped */
    for (int32_t i = k->n_registered; i < eager; i++) {
        if (i + 8 < eager) {   /* scattered blocks and slots: fetch ahead */
            __builtin_prefetch(&kv->blk[k->table[i + 8]], 1);
            if (!is_private(k->hash[i + 8]))
                __builtin_prefetch(&kv->slots[slot_of(kv, k->hash[i + 8])], 1);
        }
        register_block(kv, k, i);
    }
    k->n_registered = full;
}

int64_t kv_release_offload(kv_cache *kv, serve_req *r, kv_req *k, sim_time_ns now)
{
    int32_t n = r->kv_blocks;
    kv_release(kv, r, k, now);
    if (!kv->identity)
        return 0;
    int64_t dropped = 0;
    for (int32_t i = 0; i < n; i++) {
        int32_t b = k->table[i];
        evict_block *x = &kv->blk[b];
        if (x->ref || !x->hash)
            continue;   /* held by another request, or without contents */
        queue_remove(kv, b);
        kv->table_live -= !is_private(x->hash);   /* its slot is void now */
        if (kv->tree && x->parent != NIL && kv->blk[x->parent].hash == kv->parent_hash[b])
            child_count(kv, x->parent, -1);
        *x = (evict_block){.last_access_ns = now, .parent = NIL, .queue_stamp = x->queue_stamp};
        queue_push_tail(kv, b);   /* free, without contents */
        dropped++;
    }
    if (dropped)
        kv->evict_epoch++;   /* matches memoised since may have changed */
    return dropped;
}
