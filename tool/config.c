/* Run config parsing (see config.h). The parts that belong to a plug-in
 * (policy params, cost model params, the workload) are only located here;
 * each plug-in validates its own object when the cluster creates it. */
#include "tool/config.h"
#include "policies/registry.h"

#include <stdlib.h>
#include <string.h>

#include "serve/kv.h"
#include "sim/jsoncfg.h"

#define GIB (1024.0 * 1024.0 * 1024.0)

static int parse_named(cJSON *parent, const char *parent_path, const char *key,
                       const char *def_name, const char **name, cJSON **params,
                       sim_err *err)
{
    static const char *const keys[] = {"name", "params", NULL};
    char path[256], params_path[256];
    cJSON *obj;
    if (jcfg_obj(parent, parent_path, key, &obj, path, err) ||
        jcfg_check_keys(obj, path, keys, err) ||
        jcfg_str(obj, path, "name", def_name, name, err) ||
        jcfg_obj(obj, path, "params", params, params_path, err))
        return -1;
    return 0;
}

static int parse_cluster(run_config *rc, sim_err *err)
{
    cluster_setup *c = &rc->sys;
    static const char *const keys[] = {"instances", "tp", NULL};
    char path[256];
    cJSON *o;
    int64_t n, tp;
    if (jcfg_obj(rc->root, "$", "cluster", &o, path, err) ||
        jcfg_check_keys(o, path, keys, err) ||
        jcfg_int(o, path, "instances", 1, 1, 4096, &n, err) ||
        jcfg_int(o, path, "tp", 1, 1, LLM_TP_MAX, &tp, err))
        return -1;
    c->n_instances = (int32_t)n;
    c->tp = (int32_t)tp;
    if (llm_check_tp(&c->model, c->tp, err))
        return sim_err_prefix(err, "$.cluster.tp");
    return 0;
}

static int parse_instance(run_config *rc, sim_err *err)
{
    cluster_setup *c = &rc->sys;
    static const char *const keys[] = {
        "max_batched_tokens", "max_seqs", "block_size_tokens", "gpu_memory_utilization",
        "activation_reserve_gib", "max_context_tokens", "preemption", "swap_overlap",
        "host_swap_gib", NULL};
    char path[256];
    cJSON *o;
    int64_t tokens, seqs, block, ctx;
    double util, reserve_gib, host_gib;
    const char *preemption;
    bool overlap;
    const llm_model *m = &c->model;
    if (jcfg_obj(rc->root, "$", "instance", &o, path, err) ||
        jcfg_check_keys(o, path, keys, err) ||
        jcfg_int(o, path, "max_context_tokens", m->max_context_tokens, 2,
                 m->max_context_tokens, &ctx, err) ||
        jcfg_int(o, path, "max_batched_tokens", ctx, 1, INT32_MAX, &tokens, err) ||
        jcfg_int(o, path, "max_seqs", 256, 1, 1 << 20, &seqs, err) ||
        jcfg_int(o, path, "block_size_tokens", 16, 1, 4096, &block, err) ||
        jcfg_num(o, path, "gpu_memory_utilization", 0.9, 0.05, 1.0, &util, err) ||
        jcfg_num(o, path, "activation_reserve_gib", 2.0, 0, 1024, &reserve_gib, err) ||
        jcfg_str(o, path, "preemption", "recompute", &preemption, err) ||
        jcfg_bool(o, path, "swap_overlap", 0, &overlap, err) ||
        jcfg_num(o, path, "host_swap_gib", 256, 0, 1 << 20, &host_gib, err))
        return -1;
    if (strcmp(preemption, "recompute") && strcmp(preemption, "swap"))
        return sim_errf(err, "%s.preemption: expected one of: recompute, swap; got \"%s\"",
                        path, preemption);
    /* Defaults derive from the model; every range above contains them. */
    if (seqs > tokens)
        return sim_errf(err, "%s.max_seqs: expected at most max_batched_tokens (%lld), "
                        "got %lld", path, (long long)tokens, (long long)seqs);
    c->batch = (batch_setup){
        .max_batched_tokens = (int32_t)tokens,
        .max_seqs = (int32_t)seqs,
        .block_size_tokens = (int32_t)block,
        .max_context_tokens = (int32_t)ctx,
        .model_layers = m->layers,
    };
    /* Host memory for swapped KV is per instance; each GPU holds its shard. */
    double block_bytes = llm_kv_bytes_per_token_per_gpu(m, &PAR_TP(c->tp)) * (double)block;
    c->swap = (swap_setup){
        .mode = strcmp(preemption, "swap") ? PREEMPT_RECOMPUTE : PREEMPT_SWAP,
        .overlap = overlap,
        .host_blocks = (int64_t)(host_gib * GIB / (block_bytes * c->tp)),
        .block_bytes_per_gpu = block_bytes,
        .pcie_bytes_per_s = c->gpu.pcie_bw_bytes_per_s,
    };
    c->gpu_memory_utilization = util;
    c->activation_reserve_bytes = reserve_gib * GIB;
    if (kv_capacity_blocks(m, &c->gpu, c->tp, util, c->activation_reserve_bytes,
                           (int32_t)block, &c->batch.kv_total_blocks, err))
        return sim_err_prefix(err, "$.model, $.gpu, $.cluster.tp");
    int64_t kv_tokens = c->batch.kv_total_blocks * block;
    if (kv_tokens < ctx)
        return sim_errf(err, "%s.max_context_tokens: the KV cache holds %lld tokens per "
                        "instance, fewer than one request of max_context_tokens (%lld); "
                        "lower max_context_tokens or raise tp or gpu_memory_utilization",
                        path, (long long)kv_tokens, (long long)ctx);
    return 0;
}

static int parse_cost(run_config *rc, sim_err *err)
{
    cluster_setup *c = &rc->sys;
    static const char *const keys[] = {"model", "iteration_overhead_us",
                                       "moe_routing_skew", "params", NULL};
    char path[256], params_path[256];
    cJSON *o;
    double overhead_us, skew;
    if (jcfg_obj(rc->root, "$", "cost", &o, path, err) ||
        jcfg_check_keys(o, path, keys, err) ||
        jcfg_str(o, path, "model", "roofline", &c->cost_name, err) ||
        jcfg_num(o, path, "iteration_overhead_us", 200, 0, 1e7, &overhead_us, err) ||
        jcfg_num(o, path, "moe_routing_skew", 0, 0, 10, &skew, err) ||
        jcfg_obj(o, path, "params", &c->cost_params, params_path, err))
        return -1;
    c->iteration_overhead_ns = (sim_time_ns)(overhead_us * 1e3);
    llm_set_moe_skew(&c->model, skew);
    return cost_model_find(c->cost_name, err) ? 0 : sim_err_prefix(err, "$.cost.model");
}

static int parse_policies(run_config *rc, sim_err *err)
{
    cluster_setup *c = &rc->sys;
    static const char *const keys[] = {"batch", "order", "routing", NULL};
    char path[256];
    cJSON *o;
    const char *batch, *order, *route;
    if (jcfg_obj(rc->root, "$", "policies", &o, path, err) ||
        jcfg_check_keys(o, path, keys, err) ||
        parse_named(o, path, "batch", "vllm_prefill_first", &batch, &c->batch_params, err) ||
        parse_named(o, path, "order", "fcfs", &order, &c->order_params, err) ||
        parse_named(o, path, "routing", "round_robin", &route, &c->route_params, err))
        return -1;
    if (!(c->batch_policy = batch_policy_find(batch, "$.policies.batch.name", err)) ||
        !(c->order_policy = order_policy_find(order, "$.policies.order.name", err)) ||
        !(c->route_policy = route_policy_find(route, "$.policies.routing.name", err)))
        return -1;
    return 0;
}

static int parse_slo(run_config *rc, sim_err *err)
{
    cluster_setup *c = &rc->sys;
    static const char *const keys[] = {"ttft_ms", "tpot_ms", NULL};
    char path[256];
    cJSON *o;
    double ttft, tpot;
    if (jcfg_obj(rc->root, "$", "slo", &o, path, err) ||
        jcfg_check_keys(o, path, keys, err) ||
        jcfg_num(o, path, "ttft_ms", 2000, 0, 1e9, &ttft, err) ||
        jcfg_num(o, path, "tpot_ms", 100, 0, 1e9, &tpot, err))
        return -1;
    c->slo_ttft_ns = (sim_time_ns)(ttft * 1e6);
    c->slo_tpot_ns = (sim_time_ns)(tpot * 1e6);
    return 0;
}

static int parse_metrics(run_config *rc, sim_err *err)
{
    cluster_setup *c = &rc->sys;
    static const char *const keys[] = {"timeseries_interval_ms", NULL};
    char path[256];
    cJSON *o;
    double interval_ms;
    if (jcfg_obj(rc->root, "$", "metrics", &o, path, err) ||
        jcfg_check_keys(o, path, keys, err) ||
        jcfg_num(o, path, "timeseries_interval_ms", 1000, 0, 1e12, &interval_ms, err))
        return -1;
    c->timeseries_interval_ns = (sim_time_ns)(interval_ms * 1e6);
    if (interval_ms > 0 && c->timeseries_interval_ns < SIM_NS_PER_US)
        return sim_errf(err, "%s.timeseries_interval_ms: expected 0 (off) or at least "
                        "0.001, got %.15g", path, interval_ms);
    return 0;
}

int run_config_parse(cJSON *root, run_config *rc, sim_err *err)
{
    cluster_setup *c = &rc->sys;
    static const char *const keys[] = {"description", "seed", "model", "gpu", "cluster",
                                       "instance", "policies", "cost", "workload",
                                       "slo", "metrics", NULL};
    memset(rc, 0, sizeof *rc);
    rc->root = root;
    const char *model, *gpu, *description;
    int64_t seed;
    char path[256];
    if (jcfg_check_keys(root, "$", keys, err) ||
        jcfg_str(root, "$", "description", "", &description, err) ||
        /* JSON numbers are doubles: integers above 2^53 would not survive. */
        jcfg_int(root, "$", "seed", 1, 0, (int64_t)1 << 53, &seed, err) ||
        jcfg_str(root, "$", "model", JCFG_REQUIRED_STR, &model, err) ||
        jcfg_str(root, "$", "gpu", JCFG_REQUIRED_STR, &gpu, err))
        goto fail;
    c->seed = (uint64_t)seed;
    if (llm_model_load(models_dir(), model, &c->model, err)) {
        sim_err_prefix(err, "$.model");
        goto fail;
    }
    if (gpu_spec_load(models_dir(), gpu, &c->gpu, err)) {
        sim_err_prefix(err, "$.gpu");
        goto fail;
    }
    if (parse_cluster(rc, err) || parse_instance(rc, err) || parse_cost(rc, err) ||
        parse_policies(rc, err) || parse_slo(rc, err) || parse_metrics(rc, err) ||
        jcfg_obj(root, "$", "workload", &c->workload, path, err))
        goto fail;
    return 0;
fail:
    run_config_fini(rc);
    return -1;
}

int run_config_load(const char *path, char *const *sets, int n_sets, run_config *out,
                    sim_err *err)
{
    cJSON *root;
    memset(out, 0, sizeof *out);
    if (jcfg_load_file(path, &root, err))
        return -1;
    for (int i = 0; i < n_sets; i++) {
        if (jcfg_set(root, sets[i], err)) {
            cJSON_Delete(root);
            return sim_err_prefix(err, "--set %s", sets[i]);
        }
    }
    if (run_config_parse(root, out, err))
        return jcfg_err_source(err, path, sets, n_sets);
    return 0;
}

void run_config_fini(run_config *rc)
{
    cJSON_Delete(rc->root);
    memset(rc, 0, sizeof *rc);
}
