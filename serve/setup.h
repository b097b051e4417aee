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
#include "api/order.h"
#include "api/route.h"
#include "models/cost.h"
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
typedef struct lifecycle_setup {
    sim_time_ns provision_ns;     /* node allocation and boot */
    sim_time_ns init_ns;          /* engine start, CUDA graphs, warm-up */
    double weight_bytes_per_gpu;
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
typedef struct control_choice {
    const control_policy_ops *ops;   /* NULL: no controller */
    cJSON *params;
    char path[SETUP_PATH_MAX];
    sim_time_ns period_ns;
} control_choice;

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
    lifecycle_setup lifecycle;
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
    cJSON *workload;
    char workload_path[SETUP_PATH_MAX];
    sim_time_ns slo_ttft_ns, slo_tpot_ns;
    sim_time_ns timeseries_interval_ns;   /* 0: no time series */
} cluster_setup;

/* The longest request every arrival pool can take (the workload's clamp). */
int32_t cluster_setup_max_context(const cluster_setup *cs);

#endif
