/* Expert offloading (HOBBIT-like): an instance whose GPUs cache
 * par.gpu_experts routed experts per MoE layer, the rest in host memory.
 *
 * Every iteration draws, per MoE layer, which experts its tokens activate
 * (each expert's token count from the pool's routing model, models/moe.h);
 * an activated expert not in the layer's cache is loaded over PCIe, in low
 * precision (int4) when every token it serves gives it a normalised gate
 * weight below the threshold, and enters the cache, evicting by the
 * replacement rule. A miss was prefetched during the previous layer's
 * compute with probability prefetch_accuracy (the next layer's experts
 * predicted from the current hidden state), else the layer waits for it
 * (on demand). The loads reach the cost model in batch_shape.offload. */
#ifndef SERVE_OFFLOAD_H
#define SERVE_OFFLOAD_H

#include "serve/setup.h"

typedef struct offload_state offload_state;

typedef struct offload_stats {
    uint64_t hits, misses;          /* activated experts, all MoE layers */
    uint64_t low_precision_loads;
    double bytes_high, bytes_low;   /* loaded, per GPU */
    double demand_bytes, prefetch_bytes;
} offload_stats;

offload_state *offload_create(const pool_setup *ps, uint64_t seed, sim_err *err);
void offload_destroy(offload_state *o);   /* NULL is a no-op */
/* The loads of an iteration of `tokens` tokens (valid until the next call). */
const offload_iter *offload_step(offload_state *o, int64_t tokens);
const offload_stats *offload_get_stats(const offload_state *o);

#endif
