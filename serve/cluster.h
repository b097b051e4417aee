/* A simulated serving cluster: the engine, N instances of one model at one
 * TP degree, a routing policy in front of them, a workload source, and the
 * run's metrics. cluster_create validates everything (policies, cost model
 * and workload read their own config objects here), cluster_run simulates
 * until every request has finished, cluster_summarize reports. */
#ifndef SERVE_CLUSTER_H
#define SERVE_CLUSTER_H

#include "serve/instance.h"
#include "serve/metrics.h"

/* Everything the simulated cluster is built from: the run config after
 * parsing (tool/config.c fills it), with policies already resolved to their
 * ops. Borrowed by the cluster: it must outlive it. */
typedef struct cluster_setup {
    uint64_t seed;
    llm_model model;
    gpu_spec gpu;
    int32_t n_instances;
    int32_t tp;
    batch_setup batch;           /* kv_total_blocks is derived */
    double gpu_memory_utilization;
    double activation_reserve_bytes;
    sim_time_ns iteration_overhead_ns;
    const char *cost_name;
    cJSON *cost_params;
    const batch_policy_ops *batch_policy;
    cJSON *batch_params;
    const route_policy_ops *route_policy;
    cJSON *route_params;
    const order_policy_ops *order_policy;
    cJSON *order_params;
    swap_setup swap;             /* host_blocks and the byte figures derived */
    bool prefix_caching;         /* automatic prefix caching (serve/kv.h) */
    cJSON *workload;
    sim_time_ns slo_ttft_ns, slo_tpot_ns;
    sim_time_ns timeseries_interval_ns;   /* 0: no time series */
} cluster_setup;

/* JSON paths (in the run config) of the setup's objects handed to policies, cost model, workload. */
#define CFG_PATH_BATCH_PARAMS "$.policies.batch.params"
#define CFG_PATH_ROUTE_PARAMS "$.policies.routing.params"
#define CFG_PATH_ORDER_PARAMS "$.policies.order.params"
#define CFG_PATH_COST_PARAMS "$.cost.params"
#define CFG_PATH_WORKLOAD "$.workload"

typedef struct cluster cluster;

/* Random stream ids: fixed per component so that adding one never changes
 * another's numbers. */
enum { STREAM_ARRIVALS = 1, STREAM_LENGTHS = 2, STREAM_IDENTITY = 3,
       STREAM_ORDER_BASE = 1000 /* + instance index */ };

/* Equal-time order: time-series samples come last in their instant, so a
 * sample sees the state after every completion, arrival and wake then. */
enum { PHASE_SAMPLE = PHASE_WAKE + 1 };

/* One instance in a time-series sample. */
typedef struct ts_instance {
    int32_t waiting;           /* requests queued */
    int32_t running;           /* requests in the running set */
    int32_t active;            /* 1 if it has requests (queued or running) */
    double kv_used_fraction;   /* KV blocks in use / blocks */
    double power_w;            /* all its GPUs: the current iteration's mean
                                * power, or idle power between iterations */
} ts_instance;

/* The state of the cluster at one instant, every timeseries_interval_ns of
 * simulated time from 0 until the last request finishes. */
typedef struct ts_sample {
    sim_time_ns time_ns;
    sim_time_ns interval_ns;
    int32_t n_instances;
    int32_t active_instances;  /* instances with requests */
    const ts_instance *inst;   /* n_instances entries, valid during the call */
} ts_sample;
typedef void (*ts_sample_fn)(void *ctx, const ts_sample *s);

typedef struct cluster_hooks {
    metrics_record_fn on_record;   /* finished requests; may be NULL */
    void *record_ctx;
    iter_observer_fn on_iteration; /* every iteration; may be NULL */
    void *iteration_ctx;
    ts_sample_fn on_sample;        /* time series; may be NULL */
    void *sample_ctx;
} cluster_hooks;

/* cs is borrowed and must outlive the cluster; hooks may be NULL. */
cluster *cluster_create(const cluster_setup *cs, const cluster_hooks *hooks, sim_err *err);
void cluster_destroy(cluster *c);   /* NULL is a no-op */
/* Runs to completion. Fails only on a workload error mid-run. */
int cluster_run(cluster *c, sim_err *err);
void cluster_summarize(const cluster *c, run_summary *out);
/* "roofline" or "table+roofline": which cost sources produced the terms. */
void cluster_cost_sources(const run_summary *s, char *buf, size_t size);
/* What the workload skipped, dropped or cut besides clamping ("3 malformed
 * rows skipped, ..."); "" when nothing. */
void cluster_workload_note(const cluster *c, char *buf, size_t size);

#endif
