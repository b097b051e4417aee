/* Multi-LoRA serving, a first slice (off unless `instance.lora` is given):
 * every request uses one of N adapters of one rank, drawn from a Zipf
 * popularity keyed by (run seed, request id); an instance has max_loras GPU
 * slots and a host cache of max_cpu_loras adapters (both LRU); a batch
 * holds at most max_loras distinct adapters (vLLM's scheduler rule); an
 * adapter not in a slot is loaded before the iteration runs (from the
 * host cache over PCIe, else from storage into the cache first), and the
 * load stalls the iteration, as vLLM's LRUCacheWorkerLoRAManager does; the
 * LoRA shrink and expand GEMMs (SGMV/BGMV: each distinct adapter's weights
 * read once per layer) are priced by the instance's cost model and added.
 *
 * Like speculative decoding, the batch policies never see adapters: after
 * the policy formed its plan, lora_plan drops the waiting requests whose
 * adapter would take the batch past max_loras (they keep their place in
 * the queue). Running requests always keep their adapters: an adapter in
 * use is never evicted (asserted).
 *
 * Loads: by default a load's time is bytes / bandwidth (+ the storage
 * latency from storage), loads added one after another, with no
 * contention. With `load_over_links` they are transfers over the link
 * model (serve/net.h): host -> GPU over the instance's PCIe link (shared,
 * max-min fair, with its swaps and KV tier loads, and between the
 * iteration's loads), from storage first over a storage link of the
 * instance's own (storage_gbps, storage_latency_ms), then over PCIe; the
 * iteration waits for all of them (lora_take_loads; the instance starts
 * them).
 *
 * Adapter selection (`select`, serve/polar.h): requests bring a context
 * instead of an adapter and a cache-aware contextual bandit picks one, the
 * first time a plan sees the request; eviction then spares the adapters
 * its epoch controller keeps.
 *
 * Not in this slice: trace columns. */
#ifndef SERVE_LORA_H
#define SERVE_LORA_H

#include <stdbool.h>
#include <cjson/cJSON.h>
#include "api/batch.h"
#include "models/cost.h"
#include "serve/polar.h"

#define LORA_STREAM 0x10a0001u
#define LORA_MAX_RANKS 8

typedef struct lora_setup {
    bool on;
    int32_t adapters;            /* N */
    double zipf_s;               /* popularity exponent: adapter i (from 1) ~ i^-s */
    int32_t rank;                /* the largest (max_lora_rank) */
    int32_t ranks[LORA_MAX_RANKS];   /* adapter i has rank ranks[i % n_ranks] */
    int32_t n_ranks;
    bool padded;                 /* kernels run every token at the largest rank (vLLM) */
    bool attention_only;         /* q, k, v, o only (else every linear layer) */
    int32_t max_loras;           /* GPU slots, and the most distinct adapters per batch */
    int32_t max_cpu_loras;       /* host cache */
    double storage_bytes_per_s;  /* loads into the host cache */
    double storage_latency_ns;
    bool over_links;             /* loads are transfers over serve/net.h links */
    polar_setup polar;           /* `select`: adapters picked by POLAR (serve/polar.h) */
    /* Derived from the model and layout. */
    double bytes_per_rank_gpu;   /* weights per unit of rank on one GPU */
    double bytes_per_gpu;        /* an adapter of the largest rank */
    double sum_in, sum_out;      /* per layer: sum of the adapted modules' in and out widths */
} lora_setup;

/* Reads `instance.lora` (object o at `path`) for a pool serving `m` at
 * layout `par`. */
int lora_setup_parse(cJSON *o, const char *path, const llm_model *m, const par_layout *par,
                     lora_setup *out, sim_err *err);

/* What multi-LoRA did on one instance (summed over instances for a run). */
typedef struct lora_stats {
    uint64_t batches;            /* iterations */
    uint64_t batch_adapters;     /* distinct adapters, summed over iterations */
    uint64_t lookups, gpu_hits;  /* batch adapters looked up in the GPU slots */
    uint64_t loads, storage_loads;   /* into a GPU slot; of those, from storage */
    uint64_t evictions;          /* GPU slots reused */
    uint64_t skipped;            /* waiting requests left out of a plan by max_loras */
    double load_ns;              /* iteration time added by loads */
    uint64_t cold, warm;         /* finished requests whose first iteration loaded their adapter, or not */
    int32_t max_batch;           /* the most distinct adapters one batch held (max over instances) */
    polar_stats polar;           /* adapter selection (summed) */
    double cold_ttft_ns, warm_ttft_ns;   /* their TTFTs at the engine, summed */
    double op_ns;                /* LoRA shrink/expand time */
} lora_stats;

void lora_stats_add(lora_stats *sum, const lora_stats *s);
struct run_summary;
void lora_summarize(const lora_stats *st, struct run_summary *out);

typedef struct lora lora;

/* The runtime of one instance; seed is the run's, the cost model the
 * instance's (borrowed). */
lora *lora_create(const lora_setup *s, const gpu_spec *g, cost_model *cost, uint64_t seed);
void lora_destroy(lora *l);   /* NULL is a no-op */

/* The adapter of request `id` (0 .. adapters-1): a Zipf draw keyed by
 * (run seed, id) alone. O(log adapters). */
int32_t lora_adapter(const lora *l, uint64_t id);
/* How ready the instance is for request id's adapter (llm-d's grades): 1
 * in a GPU slot, 0.8 a slot is free, 0 a load would evict. */
double lora_affinity(const lora *l, uint64_t id);
/* The most distinct adapters any batch of this instance held. */
int32_t lora_max_batch_adapters(const lora *l);

/* After the batch policy formed `plan`: drops waiting items over the
 * adapter limit, then brings the batch's adapters into the GPU slots.
 * Returns the load time (ns) the iteration waits for. */
sim_time_ns lora_plan(lora *l, const batch_view *v, batch_plan *plan);
/* With load_over_links: the loads lora_plan decided, which it did not
 * time (it returned 0); valid until the next lora_plan. storage_bytes:
 * the whole adapter from storage into the host cache first (0: it was
 * cached); pcie_bytes_per_gpu: each GPU's shard over PCIe. */
typedef struct lora_load {
    double storage_bytes;
    double pcie_bytes_per_gpu;
} lora_load;
int32_t lora_take_loads(const lora *l, const lora_load **out);
/* The time an iteration waited for its loads over the links (stats). */
void lora_add_stall(lora *l, sim_time_ns ns);

/* Adds the iteration's LoRA operators (tokens: all the batch's tokens) to c. */
void lora_add_cost(lora *l, int64_t tokens, cost_result *c);
void lora_get_stats(const lora *l, lora_stats *out);
/* r finished here: its TTFT (at the engine) counts as cold or warm. */
void lora_finish(lora *l, const serve_req *r);

#endif
