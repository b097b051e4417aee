/* KV block accounting (see kv.h). Invariant: 0 <= used_blocks <=
 * total_blocks at every instant, checked on every change; the time integral
 * is advanced before every change so the mean is exact. */
#include "serve/kv.h"

#define GIB (1024.0 * 1024.0 * 1024.0)

int kv_capacity_blocks(const llm_model *m, const gpu_spec *g, int tp,
                       double gpu_memory_utilization, double activation_reserve_bytes,
                       int32_t block_size_tokens, int64_t *out, sim_err *err)
{
    double usable = g->hbm_bytes * gpu_memory_utilization;
    double weights = llm_weight_bytes_per_gpu(m, &PAR_TP(tp));
    double free_bytes = usable - weights - activation_reserve_bytes;
    if (free_bytes <= 0)
        return sim_errf(err, "%s does not fit on %s at tp=%d: each GPU holds %.1f GiB "
                        "of weights plus a %.1f GiB activation reserve, but only "
                        "%.1f GiB (%.0f%% of %.1f GiB) is usable; raise tp or "
                        "gpu_memory_utilization", m->name, g->name, tp, weights / GIB,
                        activation_reserve_bytes / GIB, usable / GIB,
                        gpu_memory_utilization * 100, g->hbm_bytes / GIB);
    double block_bytes = llm_kv_bytes_per_token_per_gpu(m, &PAR_TP(tp)) * block_size_tokens;
    *out = (int64_t)(free_bytes / block_bytes);
    return 0;
}

void kv_init(kv_cache *kv, int64_t total_blocks, int32_t block_size_tokens,
             sim_time_ns now)
{
    *kv = (kv_cache){.total_blocks = total_blocks,
                     .block_size_tokens = block_size_tokens,
                     .last_change_ns = now};
}

static void advance(kv_cache *kv, sim_time_ns now)
{
    SIM_ASSERT_AT(now, now >= kv->last_change_ns);
    kv->used_block_ns += (double)kv->used_blocks * (double)(now - kv->last_change_ns);
    kv->last_change_ns = now;
}

void kv_alloc(kv_cache *kv, int64_t blocks, sim_time_ns now)
{
    SIM_ASSERT_AT(now, blocks >= 0 && blocks <= kv_free_blocks(kv));
    if (!blocks)
        return;
    advance(kv, now);
    kv->used_blocks += blocks;
    if (kv->used_blocks > kv->peak_blocks)
        kv->peak_blocks = kv->used_blocks;
}

void kv_free(kv_cache *kv, int64_t blocks, sim_time_ns now)
{
    SIM_ASSERT_AT(now, blocks >= 0 && blocks <= kv->used_blocks);
    if (!blocks)
        return;
    advance(kv, now);
    kv->used_blocks -= blocks;
}

double kv_mean_fraction(const kv_cache *kv, sim_time_ns start, sim_time_ns now)
{
    if (now <= start || kv->total_blocks == 0)
        return 0;
    double integral = kv->used_block_ns +
                      (double)kv->used_blocks * (double)(now - kv->last_change_ns);
    return integral / ((double)(now - start) * (double)kv->total_blocks);
}
