/* The run config: one JSON file (see experiments/README.md for every key),
 * optionally edited by --set path=value assignments. Parsing checks types,
 * ranges and unknown keys and fills in defaults, so that after a cluster is
 * created from it, `root` is the exact effective config of the run. */
#ifndef SERVE_CONFIG_H
#define SERVE_CONFIG_H

#include "models/cost.h"
#include "policies/batch.h"
#include "policies/order.h"
#include "policies/route.h"
#include "serve/instance.h"

typedef struct run_config {
    cJSON *root;                 /* owned; the effective config */
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
    cJSON *workload;
    sim_time_ns slo_ttft_ns, slo_tpot_ns;
    sim_time_ns timeseries_interval_ns;   /* 0: no time series */
} run_config;

/* JSON paths of the sub-objects handed to policies, cost model, workload. */
#define CFG_PATH_BATCH_PARAMS "$.policies.batch.params"
#define CFG_PATH_ROUTE_PARAMS "$.policies.routing.params"
#define CFG_PATH_ORDER_PARAMS "$.policies.order.params"
#define CFG_PATH_COST_PARAMS "$.cost.params"
#define CFG_PATH_WORKLOAD "$.workload"

/* Reads `path`, applies the assignments, parses. Messages start with the
 * file name (and "--set ..." for a bad assignment). */
int run_config_load(const char *path, char *const *sets, int n_sets,
                    run_config *out, sim_err *err);
/* Parses a tree (takes ownership of root, also on failure). */
int run_config_parse(cJSON *root, run_config *out, sim_err *err);
void run_config_fini(run_config *cfg);

#endif
