/* What the simulated cluster is built from: the run config after parsing
 * (tool/config.c fills it), with policies resolved to their ops. A cluster
 * is one or more pools; each pool has its own instances, role, model, GPU,
 * parallel layout, engine settings and policies. Borrowed by the cluster:
 * the setup must outlive it. */
#ifndef SERVE_SETUP_H
#define SERVE_SETUP_H

#include <stdbool.h>
#include "api/batch.h"
#include "api/control.h"
#include "api/evict.h"
#include "api/retain.h"
#include "api/order.h"
#include "api/placement.h"
#include "api/route.h"
#include "api/scale.h"
#include "models/cost.h"
#include "models/moe.h"
#include "serve/kv_tier.h"
#include "serve/lora.h"
#include "serve/spec.h"

/* What happens to a preempted request's KV. */
typedef enum preempt_mode { PREEMPT_RECOMPUTE, PREEMPT_SWAP } preempt_mode;

typedef struct swap_setup {
    preempt_mode mode;
    int overlap;                  /* copies overlap compute instead of blocking */
    int64_t host_blocks;          /* KV blocks host memory holds; beyond, recompute */
    double block_bytes_per_gpu;   /* one KV block's bytes on each GPU */
} swap_setup;

/* How an instance starts when a pool grows: each phase's duration, and the
 * bytes of weights each GPU loads (over its pool's load link). */
/* Where a starting instance reads its weights from: its node's storage
 * link (the default: local NVMe or network storage, at topology
 * storage_gbps), host memory over its own PCIe links (a page-cached
 * checkpoint), or a live instance of its pool over NVLink or the NICs
 * (peer-to-peer; from storage when the pool has no active instance). */
typedef enum load_source { LOAD_STORAGE, LOAD_HOST, LOAD_PEER } load_source;

typedef struct lifecycle_setup {
    sim_time_ns provision_ns;     /* node allocation and boot */
    sim_time_ns init_ns;          /* engine start, CUDA graphs, warm-up */
    double weight_bytes_per_gpu;
    load_source source;
    double price_per_gpu_hour;    /* what one GPU of the pool costs held */
    sim_time_ns provision_jitter_ns;   /* provisioning is uniform in provision_ns +- this */
    bool drain_migrate;           /* a draining instance also moves its running
                                   * requests, with their KV, instead of finishing them */
} lifecycle_setup;

/* A policy named in the config: its ops, its params object and that
 * object's JSON path (for messages). */
#define SETUP_PATH_MAX 128
typedef struct batch_choice {
    const batch_policy_ops *ops;
    cJSON *params;
    char path[SETUP_PATH_MAX];
} batch_choice;
typedef struct order_choice {
    const order_policy_ops *ops;
    cJSON *params;
    char path[SETUP_PATH_MAX];
} order_choice;
typedef struct route_choice {
    const route_policy_ops *ops;
    cJSON *params;
    char path[SETUP_PATH_MAX];
} route_choice;
typedef struct evict_choice {
    const evict_policy_ops *ops;     /* NULL: the cache's built-in queue */
    cJSON *params;
    char path[SETUP_PATH_MAX];
} evict_choice;
typedef struct retain_choice {
    const retain_policy_ops *ops;    /* NULL: release (as "release") */
    cJSON *params;
    char path[SETUP_PATH_MAX];
} retain_choice;
typedef struct control_choice {
    const control_policy_ops *ops;   /* NULL: no controller */
    cJSON *params;
    char path[SETUP_PATH_MAX];
    sim_time_ns period_ns;
} control_choice;

/* Expert parallelism (par.ep > 1): the routing model and the placement
 * policy (api/placement.h), whose ops NULL means contiguous and static. */
typedef struct place_choice {
    const place_policy_ops *ops;
    cJSON *params;
    char path[SETUP_PATH_MAX];
} place_choice;
/* Expert offloading (par.gpu_experts > 0; serve/offload.h). */
typedef enum offload_replace { OFFLOAD_LRU, OFFLOAD_LFU, OFFLOAD_HOBBIT } offload_replace;
typedef struct offload_setup {
    double prefetch_accuracy;     /* a miss was prefetched with this probability */
    double low_precision_gate;    /* gate weight below which an expert loads in int4 */
    offload_replace replace;
} offload_setup;

typedef struct moe_setup {
    bool sample;                  /* draw routing per iteration; false: the
                                   * expected load of uniform routing over a
                                   * balanced placement, no placement policy */
    moe_routing_cfg routing;
    bool janus;                   /* per-iteration replica selection (Janus) */
    place_choice placement;
    int32_t nodes;                /* nodes an EP group spans */
    offload_setup offload;
} moe_setup;
/* The autoscaler (api/scale.h); ops NULL: none. */
typedef struct scale_choice {
    const scale_policy_ops *ops;
    cJSON *params;
    char path[SETUP_PATH_MAX];
    sim_time_ns period_ns;
    sim_time_ns up_cooldown_ns, down_cooldown_ns;
} scale_choice;

typedef struct pool_setup {
    char name[32];
    pool_role role;
    int32_t instances;            /* at the start */
    int32_t min_instances, max_instances;   /* what scaling may reach */
    llm_model model;
    gpu_spec gpu;
    par_layout par;
    batch_setup batch;            /* kv_total_blocks is derived */
    double gpu_memory_utilization;
    double activation_reserve_bytes;
    /* The serving engine (models/engine.h): its CPU time per iteration, its
     * streaming delay, and whether it plans one iteration ahead (an
     * overlapping engine); its scheduling rules are in batch.rules. */
    engine_profile engine;
    /* cost.iteration_overhead_us given: this fixed time per iteration
     * replaces the engine's CPU time (cpu_overhead, launches outside CUDA
     * graphs). */
    bool fixed_overhead;
    sim_time_ns iteration_overhead_ns;
    const char *cost_name;
    cJSON *cost_params;
    char cost_path[SETUP_PATH_MAX];
    batch_choice batch_policy;
    order_choice order_policy;
    route_choice route_policy;
    swap_setup swap;              /* host_blocks and the byte figures derived */
    bool prefix_caching;          /* automatic prefix caching (serve/kv.h) */
    evict_choice evict_policy;    /* which cached block goes (api/evict.h) */
    retain_choice retain_policy;  /* a finished session turn's KV (api/retain.h) */
    kv_tiers_setup kv_tiers;      /* lower KV tiers (serve/kv_tier.h); n 0: none */
    /* Token-level KV compression (kv_set_budget): sink + window tokens kept
     * at least, and the share of the sequence kept; keep_tokens 0: none. */
    int64_t kv_keep_tokens;
    double kv_keep_fraction;
    lifecycle_setup lifecycle;
    moe_setup moe;                /* with par.ep > 1 */
    spec_setup spec;              /* speculative decoding (serve/spec.h); off: SPEC_OFF */
    lora_setup lora;              /* multi-LoRA (serve/lora.h); off: !lora.on */
} pool_setup;

/* Where instances sit and how they are linked (serve/net.h): instances fill
 * nodes of gpus_per_node GPUs in pool order. Within a node instances talk
 * over NVLink (the GPU file's rate), across nodes over each GPU's NIC; each
 * GPU reaches host memory over PCIe (the GPU file's rate). Rates are per
 * GPU and per direction; an instance's port carries its GPUs' sum. */
typedef struct topology_setup {
    int32_t gpus_per_node;
    double nic_bytes_per_s;       /* per GPU */
    sim_time_ns nvlink_latency_ns, nic_latency_ns, pcie_latency_ns;
    double storage_bytes_per_s;   /* per node, for weight loads */
    sim_time_ns storage_latency_ns;
} topology_setup;

/* How arrivals pick a pool among those that take them (MIXED, PREFILL). */
typedef enum pool_choice { POOL_CHOICE_LEAST_LOADED, POOL_CHOICE_FIRST } pool_choice;

typedef struct cluster_setup {
    uint64_t seed;
    /* The front end every arrival passes before the router: the top-level
     * engine's request path (API server and tokenisation). */
    engine_profile frontend;
    pool_setup *pools;
    int32_t n_pools;
    pool_choice pool_choice;
    topology_setup topology;
    control_choice control;
    scale_choice scale;
    cJSON *workload;
    char workload_path[SETUP_PATH_MAX];
    sim_time_ns slo_ttft_ns, slo_tpot_ns;
    sim_time_ns timeseries_interval_ns;   /* 0: no time series */
    sim_time_ns warmup_ns, cooldown_ns;   /* the summary's window (metrics.h) */
    bool router_oracle;   /* routers' hits against an oracle's (serve/route_oracle.h) */
    /* cluster.disagg (serve/disagg.h; NULL: off) and cluster.migration
     * (serve/migrate.h; NULL: defaults), read by those modules. */
    cJSON *disagg, *migration;
    char disagg_path[SETUP_PATH_MAX], migration_path[SETUP_PATH_MAX];
} cluster_setup;

/* The longest request every arrival pool can take (the workload's clamp). */
int32_t cluster_setup_max_context(const cluster_setup *cs);

#endif
