/* Paged KV cache of one serving instance: capacity in fixed-size blocks,
 * per TP shard, and block accounting with peak and time-weighted use.
 *
 * Blocks are counted, not named: a request holds kv_blocks of them. Prefix
 * caching, which needs block identity and eviction, will extend this module
 * behind the same alloc/free calls. */
#ifndef SERVE_KV_H
#define SERVE_KV_H

#include "models/model.h"

typedef struct kv_cache {
    int64_t total_blocks;
    int64_t used_blocks;
    int64_t peak_blocks;
    int32_t block_size_tokens;
    double used_block_ns;       /* integral of used_blocks over time */
    sim_time_ns last_change_ns;
} kv_cache;

/* Blocks that fit on each GPU of a TP group: (HBM x utilization - weights per
 * GPU - activation reserve) / bytes of one block per GPU. Fails, naming the
 * numbers, when the weights alone do not fit. */
int kv_capacity_blocks(const llm_model *m, const gpu_spec *g, int tp,
                       double gpu_memory_utilization, double activation_reserve_bytes,
                       int32_t block_size_tokens, int64_t *out, sim_err *err);

void kv_init(kv_cache *kv, int64_t total_blocks, int32_t block_size_tokens,
             sim_time_ns now);
void kv_alloc(kv_cache *kv, int64_t blocks, sim_time_ns now);   /* asserts room */
void kv_free(kv_cache *kv, int64_t blocks, sim_time_ns now);
static inline int64_t kv_free_blocks(const kv_cache *kv)
{
    return kv->total_blocks - kv->used_blocks;
}
/* Mean fraction used over [start, now]. */
double kv_mean_fraction(const kv_cache *kv, sim_time_ns start, sim_time_ns now);

#endif
