/* One serving instance: a model replica on tp GPUs doing iteration-level
 * continuous batching (vLLM-style) with a paged KV cache.
 *
 * Life of an iteration: instance_step asks the batch policy for a plan,
 * applies it (preemptions, admissions, KV growth), costs the batch with the
 * cost model and schedules the iteration's end; at the end the tokens are
 * credited (prefill progress, sampled tokens, finished requests) and the
 * next iteration starts at once. With nothing to do the instance goes idle
 * and a new request wakes it. */
#ifndef SERVE_INSTANCE_H
#define SERVE_INSTANCE_H

#include "models/cost.h"
#include "api/batch.h"
#include "api/order.h"
#include "api/route.h"
#include "serve/kv.h"
#include "serve/metrics.h"
#include "sim/engine.h"

/* Equal-time order of the serving model's events: completions free KV and
 * emit tokens first, then arrivals are routed (seeing that load), then idle
 * instances wake (seeing every request that arrived at that instant). */
enum { PHASE_ITER_END = 0, PHASE_ARRIVAL = 1, PHASE_WAKE = 2 };

typedef struct instance instance;

/* Called once per iteration, after it is costed and before it runs. */
typedef struct iter_info {
    int32_t instance;
    sim_time_ns start_ns;
    const batch_item *items;
    int32_t n_items;
    const cost_result *cost;
    const kv_cache *kv;    /* after this iteration's allocations */
    const serve_req *const *waiting;   /* the queue left waiting, in order */
    int32_t n_waiting;
} iter_info;
typedef void (*iter_observer_fn)(void *ctx, const iter_info *it);

/* What happens to a preempted request's KV. */
typedef enum preempt_mode { PREEMPT_RECOMPUTE, PREEMPT_SWAP } preempt_mode;

typedef struct swap_setup {
    preempt_mode mode;
    int overlap;                  /* copies overlap compute instead of blocking */
    int64_t host_blocks;          /* KV blocks host memory holds; beyond, recompute */
    double block_bytes_per_gpu;   /* one KV block's bytes on each GPU */
    double pcie_bytes_per_s;      /* each GPU's own link, per direction */
} swap_setup;

typedef struct instance_setup {
    int32_t index;
    batch_setup batch;
    const batch_policy_ops *policy;
    cJSON *policy_params;
    const char *policy_path;
    const order_policy_ops *order;
    cJSON *order_params;
    const char *order_path;
    uint64_t order_seed;
    swap_setup swap;
    bool prefix_caching;                 /* KV blocks with identity, cached prefixes */
    const cost_setup *cost;
    const char *cost_name;
    cJSON *cost_params;
    const char *cost_path;
    uint32_t kind_iter_end, kind_wake;   /* the engine's event kinds */
    metrics *metrics;
    inst_load *load;                     /* kept current for routing */
    void (*release)(void *ctx, serve_req *r);   /* finished requests */
    void *release_ctx;
    iter_observer_fn observer;           /* may be NULL */
    void *observer_ctx;
} instance_setup;

instance *instance_create(sim_engine *eng, const instance_setup *setup, sim_err *err);
void instance_destroy(instance *inst);   /* NULL is a no-op */

/* Queues an arriving request; wakes the instance if idle. */
void instance_enqueue(instance *inst, serve_req *r);
/* Event handlers (ctx unused; the event's data is the instance). */
void instance_on_iter_end(sim_engine *eng, void *ctx, const sim_event *ev);
void instance_on_wake(sim_engine *eng, void *ctx, const sim_event *ev);

/* Starts the energy and busy clocks at `now` (the run's first arrival). */
void instance_open(instance *inst, sim_time_ns now);
/* Accrues idle energy up to `end`; call once, at the end of the run. */
void instance_close(instance *inst, sim_time_ns end);

typedef struct instance_stats {
    uint64_t iterations;
    uint64_t tokens;                 /* computed: prompt, recomputed and decode */
    sim_time_ns busy_ns;
    double energy_j;
    double term_ns[OP_KIND_COUNT];
    uint64_t source_terms[COST_SRC_COUNT];
    double weight_bytes, kv_bytes;   /* moved to or from HBM, per GPU */
    uint64_t preemptions;
    uint64_t recomputed_tokens;      /* KV dropped by recompute preemption */
    double swap_out_bytes, swap_in_bytes;   /* per GPU */
    sim_time_ns swap_ns;             /* iteration time added by swapping */
    int32_t n_waiting, n_running;
} instance_stats;

void instance_get_stats(const instance *inst, instance_stats *out);
const kv_cache *instance_kv(const instance *inst);
/* Power of the instance's GPUs with no work, from its cost model. */
double instance_idle_power_w(const instance *inst);

#endif
