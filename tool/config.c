/* Run config parsing (see config.h). The parts that belong to a plug-in
 * (policy params, cost model params, the workload) are only located here;
 * each plug-in validates its own object when the cluster creates it.
 *
 * Pools. Without `cluster.pools` the cluster is one pool read from the
 * top-level sections, exactly as before pools existed. With it, each pool
 * starts from the top-level `model`, `gpu`, `instance`, `cost`, `policies`,
 * `precision` and `engine` (as the user wrote them, before defaults are
 * filled in) and overrides them key by key with its own; the merged
 * sections are written back into the pool, so the effective config shows
 * each pool whole. The top-level sections are still read on their own
 * first, so that a mistake there is reported at its own path.
 *
 * Engines. `engine` names a serving-engine profile (models/engines/, or a
 * file by path; vllm-v1 by default) or is an object {"name": ...,
 * <overrides shaped like the file>}. It is read before the instance and
 * the policies, whose defaults it gives (max_seqs, prefix caching, the
 * batch policy, the policies' token budget and watermark), and written
 * back whole (every value, without sources). Its scheduling rules go into
 * batch_setup.rules for the batch policies; its CPU model into the cost
 * setup, unless cost.iteration_overhead_us is given, which then replaces
 * it. */
#include "tool/config.h"
#include "tool/config_moe.h"
#include "policies/registry.h"
#include "tool/plugin.h"

#include <stdlib.h>
#include <string.h>

#include "serve/kv.h"
#include "sim/jsoncfg.h"

#define GIB (1024.0 * 1024.0 * 1024.0)
/* The profile a run without `engine` models: current vLLM. */
#define ENGINE_DEFAULT "vllm-v1"

static int parse_named(cJSON *parent, const char *parent_path, const char *key,
                       const char *def_name, const char **name, cJSON **params,
                       char *params_path, sim_err *err)
{
    static const char *const keys[] = {"name", "params", NULL};
    char path[256];
    cJSON *obj;
    if (jcfg_obj(parent, parent_path, key, &obj, path, err) ||
        jcfg_check_keys(obj, path, keys, err) ||
        jcfg_str(obj, path, "name", def_name, name, err) ||
        jcfg_obj(obj, path, "params", params, params_path, err))
        return -1;
    return 0;
}

/* ---- one pool's sections ----------------------------------------------------- */

/* The engine's scheduling rules, for the batch policies. */
static void set_rules(pool_setup *p, int32_t token_budget)
{
    const engine_profile *e = &p->engine;
    static const batch_reserve reserve[] = {
        [ENGINE_RESERVE_CHUNK] = BATCH_RESERVE_CHUNK,
        [ENGINE_RESERVE_PROMPT] = BATCH_RESERVE_PROMPT,
        [ENGINE_RESERVE_REQUEST] = BATCH_RESERVE_REQUEST,
    };
    static const batch_victim victim[] = {
        [ENGINE_VICTIM_NEWEST] = BATCH_VICTIM_NEWEST,
        [ENGINE_VICTIM_FEWEST_OUTPUTS] = BATCH_VICTIM_FEWEST_OUTPUTS,
    };
    p->batch.rules = (batch_rules){
        .reserve = reserve[e->reserve],
        .reserve_check_only = e->reserve_check_only,
        .output_reserve_fraction = e->output_reserve_fraction,
        .watermark_fraction = e->watermark_fraction,
        .victim = victim[e->victim],
        .admit_after_preempt = e->admit_after_preempt,
        .token_budget = token_budget,
    };
}

/* `engine` of object `o` at `path` (the root or a pool): a bundled name, a
 * profile's path, or {"name": ..., <overrides>}; resolved into p->engine
 * and written back whole. Needs the pool's GPU (for its limits). */
static int parse_engine(cJSON *o, const char *path, pool_setup *p, sim_err *err)
{
    char epath[256], name[4096];
    snprintf(epath, sizeof epath, "%s.engine", path);
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "engine");
    const cJSON *over = NULL;
    snprintf(name, sizeof name, "%s", ENGINE_DEFAULT);
    if (v && cJSON_IsString(v)) {
        snprintf(name, sizeof name, "%s", v->valuestring);
    } else if (v && cJSON_IsObject(v)) {
        const char *n;
        if (jcfg_str(v, epath, "name", ENGINE_DEFAULT, &n, err))
            return -1;
        snprintf(name, sizeof name, "%s", n);
        over = v;
    } else if (v) {
        return sim_errf(err, "%s: expected an engine's name (models/engines/), a profile's "
                        "path, or an object {\"name\": ..., <overrides>}", epath);
    }
    cJSON *eff;
    if (engine_profile_resolve(models_dir(), name, over, epath, &p->engine, &eff, err)) {
        if (err && strncmp(err->msg, epath, strlen(epath)))
            sim_err_prefix(err, "%s", epath);
        return -1;
    }
    /* In place, so that reading an effective config gives it back unchanged. */
    if (v)
        cJSON_ReplaceItemInObjectCaseSensitive(o, "engine", eff);
    else
        cJSON_AddItemToObject(o, "engine", eff);
    return 0;
}

/* `instance.speculative` (absent: off, and nothing is written back). The
 * drafter's weights and KV come out of the KV budget. */
static int parse_speculative(cJSON *o, const char *path, pool_setup *p, double util,
                             int32_t block, sim_err *err)
{
    cJSON *so = cJSON_GetObjectItemCaseSensitive(o, "speculative");
    char spath[256];
    const char *policy;
    p->spec = (spec_setup){.method = SPEC_OFF};
    if (!so)
        return 0;
    snprintf(spath, sizeof spath, "%s.speculative", path);
    if (spec_setup_parse(so, spath, models_dir(), &p->model, &p->par, &p->spec, &policy,
                         err))
        return -1;
    if (p->spec.method == SPEC_OFF)
        return 0;
    char name_path[300];
    snprintf(name_path, sizeof name_path, "%s.policy.name", spath);
    if (!(p->spec.policy = spec_policy_find(policy, name_path, err)))
        return -1;
    if (spec_kv_blocks(&p->spec, &p->model, &p->gpu, &p->par, util,
                       p->activation_reserve_bytes, block, &p->batch.kv_total_blocks, err))
        return sim_err_prefix(err, "%s", spath);
    return 0;
}

/* Each KV tier's `eviction` name to its policy (api/evict.h), its params
 * checked by a trial init. */
static int resolve_tier_evictions(kv_tiers_setup *tiers, const char *path, int32_t block,
                                  sim_err *err)
{
    for (int32_t i = 0; i < tiers->n; i++) {
        kv_tier_setup *t = &tiers->tier[i];
        if (!t->evict_name[0])
            continue;
        char np[300];
        snprintf(np, sizeof np, "%s.kv_tiers[%d].eviction", path, (int)i);
        if (!(t->evict = plugin_evict_find(t->evict_name, np, err)))
            return -1;
        evict_setup es = {.n_blocks = 1, .block_size_tokens = block};
        void *st = NULL;
        cJSON *none = t->evict_params ? NULL : cJSON_CreateObject();
        int rc = t->evict->init(&es, none ? none : t->evict_params, t->evict_path, &st, err);
        cJSON_Delete(none);
        if (rc)
            return -1;
        if (t->evict->destroy)
            t->evict->destroy(st);
    }
    return 0;
}

/* `instance`: limits, KV and preemption. Needs the pool's model, GPU and
 * layout. */
static int parse_instance(cJSON *o, const char *path, pool_setup *p, sim_err *err)
{
    static const char *const keys[] = {
        "max_batched_tokens", "max_seqs", "block_size_tokens", "gpu_memory_utilization",
        "activation_reserve_gib", "max_context_tokens", "preemption", "swap_overlap",
        "host_swap_gib", "prefix_caching", "kv_tiers", "kv_load", "kv_budget", "speculative",
        "lora", NULL};
    int64_t tokens, seqs, block, ctx;
    double util, reserve_gib, host_gib;
    const char *preemption;
    bool overlap, caching;
    const llm_model *m = &p->model;
    int32_t budget, def_seqs;
    engine_limits(&p->engine, p->gpu.name, p->gpu.hbm_bytes, &budget, &def_seqs);
    if (jcfg_check_keys(o, path, keys, err) ||
        jcfg_int(o, path, "max_context_tokens", m->max_context_tokens, 2,
                 m->max_context_tokens, &ctx, err) ||
        jcfg_int(o, path, "max_batched_tokens", ctx, 1, INT32_MAX, &tokens, err) ||
        jcfg_int(o, path, "max_seqs", def_seqs < tokens ? def_seqs : tokens, 1, 1 << 20, &seqs,
                 err) ||
        jcfg_int(o, path, "block_size_tokens", 16, 1, 4096, &block, err) ||
        jcfg_num(o, path, "gpu_memory_utilization", 0.9, 0.05, 1.0, &util, err) ||
        jcfg_num(o, path, "activation_reserve_gib", 2.0, 0, 1024, &reserve_gib, err) ||
        jcfg_str(o, path, "preemption", "recompute", &preemption, err) ||
        jcfg_bool(o, path, "swap_overlap", 0, &overlap, err) ||
        jcfg_num(o, path, "host_swap_gib", 256, 0, 1 << 20, &host_gib, err) ||
        jcfg_bool(o, path, "prefix_caching", p->engine.prefix_caching, &caching, err))
        return -1;
    if (strcmp(preemption, "recompute") && strcmp(preemption, "swap"))
        return sim_errf(err, "%s.preemption: expected one of: recompute, swap; got \"%s\"",
                        path, preemption);
    /* Defaults derive from the model; every range above contains them. */
    if (seqs > tokens)
        return sim_errf(err, "%s.max_seqs: expected at most max_batched_tokens (%lld), "
                        "got %lld", path, (long long)tokens, (long long)seqs);
    p->batch = (batch_setup){
        .max_batched_tokens = (int32_t)tokens,
        .max_seqs = (int32_t)seqs,
        .block_size_tokens = (int32_t)block,
        .max_context_tokens = (int32_t)ctx,
        .model_layers = m->layers,
    };
    set_rules(p, budget);
    p->prefix_caching = caching;
    const char *load;
    if (jcfg_str(o, path, "kv_load", "blocking", &load, err) ||
        kv_tiers_parse(cJSON_GetObjectItemCaseSensitive(o, "kv_tiers"), path, load,
                       llm_kv_bytes_per_token_per_gpu(m, &p->par) * (double)block *
                           par_gpus(&p->par), &p->kv_tiers, err) ||
        resolve_tier_evictions(&p->kv_tiers, path, (int32_t)block, err))
        return -1;
    cJSON *kvb = cJSON_GetObjectItemCaseSensitive(o, "kv_budget");
    if (kvb) {   /* token-level KV compression (serve/kv.h, kv_set_budget) */
        static const char *const bkeys[] = {"sink_tokens", "window_tokens", "fraction", NULL};
        char bpath[300];
        int64_t sink, window;
        double frac;
        snprintf(bpath, sizeof bpath, "%s.kv_budget", path);
        if (!cJSON_IsObject(kvb))
            return sim_errf(err, "%s: expected an object {\"sink_tokens\", "
                            "\"window_tokens\", \"fraction\"}", bpath);
        if (jcfg_check_keys(kvb, bpath, bkeys, err) ||
            jcfg_int(kvb, bpath, "sink_tokens", 4, 0, INT32_MAX / 4, &sink, err) ||
            jcfg_int(kvb, bpath, "window_tokens", 1024, 0, INT32_MAX / 4, &window, err) ||
            jcfg_num(kvb, bpath, "fraction", 0, 0, 1, &frac, err))
            return -1;
        if (sink + window < 1)
            return sim_errf(err, "%s: expected sink_tokens + window_tokens >= 1", bpath);
        if (caching)
            return sim_errf(err, "%s: needs %s.prefix_caching false (a compressed cache "
                            "drops tokens, so prompts no longer share exact prefixes)",
                            bpath, path);
        p->kv_keep_tokens = sink + window;
        p->kv_keep_fraction = frac;
    }
    /* Host memory for swapped KV is per instance; each GPU holds its shard. */
    double block_bytes = llm_kv_bytes_per_token_per_gpu(m, &p->par) * (double)block;
    p->swap = (swap_setup){
        .mode = strcmp(preemption, "swap") ? PREEMPT_RECOMPUTE : PREEMPT_SWAP,
        .overlap = overlap,
        .host_blocks = (int64_t)(host_gib * GIB / (block_bytes * par_gpus(&p->par))),
        .block_bytes_per_gpu = block_bytes,
    };
    p->gpu_memory_utilization = util;
    p->activation_reserve_bytes = reserve_gib * GIB;
    if (kv_capacity_blocks(m, &p->gpu, &p->par, util, p->activation_reserve_bytes,
                           (int32_t)block, &p->batch.kv_total_blocks, err))
        return sim_err_prefix(err, "%s", path);
    if (parse_speculative(o, path, p, util, (int32_t)block, err))
        return -1;
    cJSON *lo = cJSON_GetObjectItemCaseSensitive(o, "lora");
    char lpath[300];
    snprintf(lpath, sizeof lpath, "%s.lora", path);
    p->lora = (lora_setup){.on = false};
    if (lo && lora_setup_parse(lo, lpath, m, &p->par, &p->lora, err))
        return -1;
    int64_t kv_tokens = p->batch.kv_total_blocks * block;
    if (kv_tokens < ctx)
        return sim_errf(err, "%s.max_context_tokens: the KV cache holds %lld tokens per "
                        "instance, fewer than one request of max_context_tokens (%lld); "
                        "lower max_context_tokens or raise tp or gpu_memory_utilization",
                        path, (long long)kv_tokens, (long long)ctx);
    return 0;
}

static int parse_cost(cJSON *o, const char *path, pool_setup *p, sim_err *err)
{
    static const char *const keys[] = {"model", "iteration_overhead_us",
                                       "moe_routing_skew", "params", NULL};
    double overhead_us = 0, skew;
    /* A fixed time per iteration replaces the engine's CPU model only when
     * given (no default is written: the effective config keeps the engine). */
    p->fixed_overhead = cJSON_GetObjectItemCaseSensitive(o, "iteration_overhead_us") != NULL;
    if (jcfg_check_keys(o, path, keys, err) ||
        jcfg_str(o, path, "model", "table", &p->cost_name, err) ||
        (p->fixed_overhead &&
         jcfg_num(o, path, "iteration_overhead_us", 200, 0, 1e7, &overhead_us, err)) ||
        jcfg_num(o, path, "moe_routing_skew", 0, 0, 10, &skew, err) ||
        jcfg_obj(o, path, "params", &p->cost_params, p->cost_path, err))
        return -1;
    p->iteration_overhead_ns = (sim_time_ns)(overhead_us * 1e3);
    llm_set_moe_skew(&p->model, skew);
    if (!cost_model_find(p->cost_name, err))
        return sim_err_prefix(err, "%s.model", path);
    return 0;
}

/* A pool's policies: batch formation, queue order, routing among its
 * instances. */
static int parse_pool_policies(cJSON *o, const char *path, pool_setup *p, sim_err *err)
{
    const char *batch, *order, *route, *evict, *retain;
    char name_path[256];
    if (parse_named(o, path, "batch", p->engine.batch_policy, &batch, &p->batch_policy.params,
                    p->batch_policy.path, err) ||
        parse_named(o, path, "order", "fcfs", &order, &p->order_policy.params,
                    p->order_policy.path, err) ||
        parse_named(o, path, "routing", "round_robin", &route, &p->route_policy.params,
                    p->route_policy.path, err) ||
        parse_named(o, path, "eviction", "lru", &evict, &p->evict_policy.params,
                    p->evict_policy.path, err) ||
        parse_named(o, path, "retention", "release", &retain, &p->retain_policy.params,
                    p->retain_policy.path, err))
        return -1;
    snprintf(name_path, sizeof name_path, "%s.retention.name", path);
    if (!(p->retain_policy.ops = plugin_retain_find(retain, name_path, err)))
        return -1;
    if (p->retain_policy.ops->needs_tier && (!p->kv_tiers.n || !p->prefix_caching))
        return sim_errf(err, "%s: \"%s\" offloads to a lower KV tier; give "
                        "instance.kv_tiers (e.g. [{\"name\": \"dram\", \"capacity_gib\": 512}]) "
                        "and instance.prefix_caching true", name_path, retain);
    snprintf(name_path, sizeof name_path, "%s.eviction.name", path);
    if (!(p->evict_policy.ops = plugin_evict_find(evict, name_path, err)))
        return -1;
    snprintf(name_path, sizeof name_path, "%s.batch.name", path);
    if (!(p->batch_policy.ops = plugin_batch_find(batch, name_path, err)))
        return -1;
    snprintf(name_path, sizeof name_path, "%s.order.name", path);
    if (!(p->order_policy.ops = plugin_order_find(order, name_path, err)))
        return -1;
    snprintf(name_path, sizeof name_path, "%s.routing.name", path);
    if (!(p->route_policy.ops = plugin_route_find(route, name_path, err)))
        return -1;
    return 0;
}

/* The pool's model and GPU (names of files in models/, or paths to a
 * user's own files) and the precision of its weights, activations and KV
 * (the object `prec` at `prec_path`). */
static int load_model_gpu(const char *model, const char *gpu, cJSON *prec,
                          const char *prec_path, const char *path, pool_setup *p,
                          sim_err *err)
{
    if (llm_model_resolve(models_dir(), model, &p->model, err))
        return sim_err_prefix(err, "%s.model", path);
    if (gpu_spec_resolve(models_dir(), gpu, &p->gpu, err))
        return sim_err_prefix(err, "%s.gpu", path);
    return llm_precision_parse(prec, prec_path, &p->model, &p->gpu, err);
}

static int check_layout(const char *path, pool_setup *p, sim_err *err)
{
    if (llm_check_layout(&p->model, &p->par, err))
        return sim_err_prefix(err, "%s", path);
    /* Weights loaded at a cold start: what each GPU holds. */
    p->lifecycle.weight_bytes_per_gpu = llm_weight_bytes_per_gpu(&p->model, &p->par);
    return 0;
}

/* ---- pools ------------------------------------------------------------------------- */

/* The one pool of a config without cluster.pools: everything from the
 * top-level sections, at their own paths. */
static int parse_single_pool(run_config *rc, int64_t instances, int64_t tp,
                             const char *model, const char *gpu, sim_err *err)
{
    pool_setup *p = &rc->pools[0];
    char path[256];
    cJSON *o;
    snprintf(p->name, sizeof p->name, "default");
    p->role = POOL_MIXED;
    p->instances = p->min_instances = p->max_instances = (int32_t)instances;
    p->par = PAR_TP((int32_t)tp);
    cJSON *prec;
    if (jcfg_obj(rc->root, "$", "precision", &prec, path, err) ||
        load_model_gpu(model, gpu, prec, path, "$", p, err))
        return -1;
    if (check_layout("$.cluster.tp", p, err) || parse_engine(rc->root, "$", p, err))
        return -1;
    if (jcfg_obj(rc->root, "$", "instance", &o, path, err) ||
        parse_instance(o, path, p, err) ||
        jcfg_obj(rc->root, "$", "cost", &o, path, err) || parse_cost(o, path, p, err))
        return -1;
    cJSON *pol;
    static const char *const pol_keys[] = {"batch", "order", "routing", "control",
                                           "eviction", "scale", "retention", NULL};
    if (jcfg_obj(rc->root, "$", "policies", &pol, path, err) ||
        jcfg_check_keys(pol, path, pol_keys, err) ||
        parse_pool_policies(pol, path, p, err))
        return -1;
    return 0;
}

/* A copy of `base` (may be NULL) with `over`'s keys (may be NULL) laid on
 * top: one level deep, and one more for objects in both (so that a pool's
 * policies.batch.params replaces the batch's params whole). */
static cJSON *merged(const cJSON *base, const cJSON *over)
{
    cJSON *out = base ? cJSON_Duplicate(base, 1) : cJSON_CreateObject();
    SIM_ASSERT(out != NULL);
    for (const cJSON *it = over ? over->child : NULL; it; it = it->next) {
        cJSON *mine = cJSON_GetObjectItemCaseSensitive(out, it->string);
        cJSON *copy;
        if (mine && cJSON_IsObject(mine) && cJSON_IsObject(it) &&
            strcmp(it->string, "params") != 0) {
            copy = merged(mine, it);
        } else {
            copy = cJSON_Duplicate(it, 1);
        }
        SIM_ASSERT(copy != NULL);
        cJSON_DeleteItemFromObjectCaseSensitive(out, it->string);
        cJSON_AddItemToObject(out, it->string, copy);
    }
    return out;
}

/* Replaces section `key` of pool object `pj` with `with` (taking it), and
 * returns it. */
static cJSON *put_section(cJSON *pj, const char *key, cJSON *with)
{
    cJSON_DeleteItemFromObjectCaseSensitive(pj, key);
    cJSON_AddItemToObject(pj, key, with);
    return with;
}

static int parse_role(const char *s, const char *path, pool_role *out, sim_err *err)
{
    static const char *const names[POOL_ROLE_COUNT] = {"mixed", "prefill", "decode"};
    for (int k = 0; k < POOL_ROLE_COUNT; k++)
        if (!strcmp(s, names[k])) {
            *out = (pool_role)k;
            return 0;
        }
    return sim_errf(err, "%s.role: expected one of: mixed, prefill, decode; got \"%s\"", path, s);
}

static int parse_lifecycle(cJSON *pj, const char *path, pool_setup *p, sim_err *err)
{
    static const char *const keys[] = {"provision_s", "init_s", "engine_start_s",
                                       "graph_capture_s", "source", "price_per_gpu_hour",
                                       "provision_jitter_s", "drain", NULL};
    static const char *const sources[] = {"storage", "host", "peer"};
    char lpath[256];
    cJSON *o;
    const char *source, *drain;
    double provision, init, start, capture, price, jitter;
    if (jcfg_obj(pj, path, "lifecycle", &o, lpath, err) ||
        jcfg_check_keys(o, lpath, keys, err))
        return -1;
    /* The engine's initialisation given as its two terms replaces init_s
     * (asked before reading: reading records the defaults). */
    bool split = cJSON_GetObjectItemCaseSensitive(o, "engine_start_s") ||
                 cJSON_GetObjectItemCaseSensitive(o, "graph_capture_s");
    if (split && cJSON_GetObjectItemCaseSensitive(o, "init_s"))
        return sim_errf(err, "%s: give init_s or its terms (engine_start_s, graph_capture_s), "
                        "not both", lpath);
    if (jcfg_num(o, lpath, "provision_s", 30, 0, 1e7, &provision, err) ||
        (!split && jcfg_num(o, lpath, "init_s", 20, 0, 1e7, &init, err)) ||
        (split && (jcfg_num(o, lpath, "engine_start_s", 0, 0, 1e7, &start, err) ||
                   jcfg_num(o, lpath, "graph_capture_s", 0, 0, 1e7, &capture, err))) ||
        jcfg_str(o, lpath, "source", "storage", &source, err) ||
        jcfg_num(o, lpath, "price_per_gpu_hour", 0, 0, 1e6, &price, err) ||
        jcfg_num(o, lpath, "provision_jitter_s", 0, 0, 1e7, &jitter, err) ||
        jcfg_str(o, lpath, "drain", "finish", &drain, err))
        return -1;
    if (jitter > provision)
        return sim_errf(err, "%s.provision_jitter_s: expected at most provision_s (%g), got %g",
                        lpath, provision, jitter);
    if (strcmp(drain, "finish") && strcmp(drain, "migrate"))
        return sim_errf(err, "%s.drain: expected \"finish\" or \"migrate\", got \"%s\"",
                        lpath, drain);
    if (split)
        init = start + capture;
    int k = 0;
    while (k < 3 && strcmp(source, sources[k]))
        k++;
    if (k == 3)
        return sim_errf(err, "%s.source: expected one of: storage, host, peer; got \"%s\"",
                        lpath, source);
    p->lifecycle.provision_ns = (sim_time_ns)(provision * 1e9);
    p->lifecycle.init_ns = (sim_time_ns)(init * 1e9);
    p->lifecycle.source = (load_source)k;
    p->lifecycle.price_per_gpu_hour = price;
    p->lifecycle.provision_jitter_ns = (sim_time_ns)(jitter * 1e9);
    p->lifecycle.drain_migrate = !strcmp(drain, "migrate");
    return 0;
}

static int parse_parallel(cJSON *pj, const char *path, int64_t tp_default, pool_setup *p,
                          const topology_setup *topo, sim_err *err)
{
    static const char *const keys[] = {"tp", "pp", "ep", "dp", "micro_batches",
                                       "redundant_experts", "gpu_experts", NULL};
    char ppath[256];
    cJSON *o;
    int64_t tp, pp, ep, dp, mb, red, cached;
    if (jcfg_obj(pj, path, "parallel", &o, ppath, err) ||
        jcfg_check_keys(o, ppath, keys, err) ||
        jcfg_int(o, ppath, "tp", tp_default, 1, LLM_TP_MAX, &tp, err) ||
        jcfg_int(o, ppath, "pp", 1, 1, 64, &pp, err) ||
        jcfg_int(o, ppath, "ep", 1, 1, 1024, &ep, err) ||
        jcfg_int(o, ppath, "dp", 1, 1, 1024, &dp, err) ||
        jcfg_int(o, ppath, "micro_batches", pp, 1, 1024, &mb, err) ||
        jcfg_int(o, ppath, "redundant_experts", 0, 0, 1024, &red, err) ||
        jcfg_int(o, ppath, "gpu_experts", 0, 0, LLM_MAX_EXPERTS, &cached, err))
        return -1;
    p->par = (par_layout){(int32_t)tp, (int32_t)pp, (int32_t)ep, (int32_t)dp, (int32_t)mb,
                          (int32_t)red, 0, 0, (int32_t)cached};
    /* Groups wider than a node talk over the NICs (serve/net.h). An
     * all-to-all's remote bytes go to the other nodes in the share
     * (ep - per_node) / (ep - 1), the rest over NVLink alongside: the NIC
     * bounds it at nic / share per GPU (EP 8 x 2 over 400 Gb/s NICs: about
     * 94 GB/s before link efficiency; DeepEP's README measures 90 GB/s of
     * such logical bandwidth, its 8 x 4 61 GB/s against 65 here). */
    if (tp * dp > topo->gpus_per_node && ep > 1)
        p->par.ep_link_bytes_per_s = topo->nic_bytes_per_s * (double)(ep - 1) /
                                     (double)(ep - topo->gpus_per_node);
    if (tp * dp * pp > topo->gpus_per_node)
        p->par.pp_link_bytes_per_s = topo->nic_bytes_per_s;
    p->moe.nodes = (int32_t)((tp * dp + topo->gpus_per_node - 1) / topo->gpus_per_node);
    return check_layout(ppath, p, err);
}

/* The sections a pool merges over the top-level ones. */
#define N_SECTIONS 5
#define SECTION_ENGINE 4

/* An engine given by name, as the object {"name": ...} to merge. */
static cJSON *engine_object(const cJSON *name)
{
    cJSON *o = cJSON_CreateObject();
    SIM_ASSERT(o && cJSON_AddStringToObject(o, "name", name->valuestring));
    return o;
}

/* cluster.pools[k]: its own keys, then its sections merged over the
 * top-level ones (`top` holds copies of those as the user wrote them). */
static int parse_pool(run_config *rc, cJSON *pj, int32_t k, cJSON *const top[N_SECTIONS],
                      int64_t tp_default, const char *model_default,
                      const char *gpu_default, sim_err *err)
{
    static const char *const keys[] = {"name", "role", "instances", "min_instances",
                                       "max_instances", "model", "gpu", "precision",
                                       "parallel", "instance", "cost", "policies",
                                       "lifecycle", "engine", "moe", NULL};
    static const char *const section[N_SECTIONS] = {"instance", "cost", "policies",
                                                    "precision", "engine"};
    pool_setup *p = &rc->pools[k];
    char path[96], spath[256], def_name[32];
    const char *name, *role, *model, *gpu;
    int64_t n, lo, hi;
    snprintf(path, sizeof path, "$.cluster.pools[%d]", k);
    snprintf(def_name, sizeof def_name, "pool%d", k);
    if (!cJSON_IsObject(pj))
        return sim_errf(err, "%s: expected an object", path);
    if (jcfg_check_keys(pj, path, keys, err) ||
        jcfg_str(pj, path, "name", def_name, &name, err) ||
        jcfg_str(pj, path, "role", "mixed", &role, err) ||
        parse_role(role, path, &p->role, err) ||
        jcfg_int(pj, path, "instances", 1, 0, 4096, &n, err) ||
        jcfg_int(pj, path, "min_instances", n, 0, n, &lo, err) ||
        jcfg_int(pj, path, "max_instances", n, n, 4096, &hi, err) ||
        jcfg_str(pj, path, "model", model_default, &model, err) ||
        jcfg_str(pj, path, "gpu", gpu_default, &gpu, err))
        return -1;
    if (strlen(name) >= sizeof p->name || !name[0])
        return sim_errf(err, "%s.name: expected 1 to %zu characters, got \"%s\"", path,
                        sizeof p->name - 1, name);
    for (int32_t j = 0; j < k; j++)
        if (!strcmp(rc->pools[j].name, name))
            return sim_errf(err, "%s.name: \"%s\" is also the name of pool %d", path, name, j);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->instances = (int32_t)n;
    p->min_instances = (int32_t)lo;
    p->max_instances = (int32_t)hi;
    cJSON *sec[N_SECTIONS];
    for (int s = 0; s < N_SECTIONS; s++) {
        cJSON *own = cJSON_GetObjectItemCaseSensitive(pj, section[s]);
        cJSON *named = NULL;
        if (own && cJSON_IsString(own) && s == SECTION_ENGINE)
            own = named = engine_object(own);
        if (own && !cJSON_IsObject(own)) {
            return sim_errf(err, "%s.%s: expected an object%s", path, section[s],
                            s == SECTION_ENGINE ? " or an engine's name" : "");
        }
        sec[s] = put_section(pj, section[s], merged(top[s], own));
        cJSON_Delete(named);
    }
    snprintf(spath, sizeof spath, "%s.precision", path);
    if (load_model_gpu(model, gpu, sec[3], spath, path, p, err) ||
        parse_parallel(pj, path, tp_default, p, &rc->sys.topology, err) ||
        config_parse_moe(pj, path, p, err) ||
        parse_lifecycle(pj, path, p, err) || parse_engine(pj, path, p, err))
        return -1;
    snprintf(spath, sizeof spath, "%s.instance", path);
    if (parse_instance(sec[0], spath, p, err))
        return -1;
    snprintf(spath, sizeof spath, "%s.cost", path);
    if (parse_cost(sec[1], spath, p, err))
        return -1;
    snprintf(spath, sizeof spath, "%s.policies", path);
    static const char *const pol_keys[] = {"batch", "order", "routing", "eviction",
                                           "retention", NULL};
    if (jcfg_check_keys(sec[2], spath, pol_keys, err) ||
        parse_pool_policies(sec[2], spath, p, err))
        return -1;
    return 0;
}

static int parse_topology(cJSON *cl, const char *cpath, topology_setup *t, sim_err *err)
{
    static const char *const keys[] = {"gpus_per_node", "nic_gbps", "nvlink_latency_us",
                                       "nic_latency_us", "pcie_latency_us", "storage_gbps",
                                       "storage_latency_ms", NULL};
    char path[256];
    cJSON *o;
    int64_t per_node;
    double nic_gbps, nv_us, nic_us, pcie_us, st_gbps, st_ms;
    if (jcfg_obj(cl, cpath, "topology", &o, path, err) ||
        jcfg_check_keys(o, path, keys, err) ||
        jcfg_int(o, path, "gpus_per_node", 8, 1, 1024, &per_node, err) ||
        jcfg_num(o, path, "nic_gbps", 400, 1e-3, 1e6, &nic_gbps, err) ||
        jcfg_num(o, path, "nvlink_latency_us", 3, 0, 1e6, &nv_us, err) ||
        jcfg_num(o, path, "nic_latency_us", 10, 0, 1e6, &nic_us, err) ||
        jcfg_num(o, path, "pcie_latency_us", 0, 0, 1e6, &pcie_us, err) ||
        jcfg_num(o, path, "storage_gbps", 28, 1e-3, 1e6, &st_gbps, err) ||
        jcfg_num(o, path, "storage_latency_ms", 0.1, 0, 1e6, &st_ms, err))
        return -1;
    *t = (topology_setup){
        .gpus_per_node = (int32_t)per_node,
        .nic_bytes_per_s = nic_gbps * 1e9 / 8,
        .nvlink_latency_ns = (sim_time_ns)(nv_us * 1e3),
        .nic_latency_ns = (sim_time_ns)(nic_us * 1e3),
        .pcie_latency_ns = (sim_time_ns)(pcie_us * 1e3),
        .storage_bytes_per_s = st_gbps * 1e9 / 8,
        .storage_latency_ns = (sim_time_ns)(st_ms * 1e6),
    };
    return 0;
}

static int parse_cluster(run_config *rc, const char *model, const char *gpu, sim_err *err)
{
    cluster_setup *c = &rc->sys;
    static const char *const keys[] = {"instances", "tp", "pools", "pool_choice", "topology",
                                       "disagg", "migration", NULL};
    char path[256];
    cJSON *o;
    int64_t n, tp;
    const char *choice;
    if (jcfg_obj(rc->root, "$", "cluster", &o, path, err) ||
        jcfg_check_keys(o, path, keys, err) ||
        jcfg_int(o, path, "instances", 1, 1, 4096, &n, err) ||
        jcfg_int(o, path, "tp", 1, 1, LLM_TP_MAX, &tp, err) ||
        jcfg_str(o, path, "pool_choice", "least_loaded", &choice, err) ||
        parse_topology(o, path, &c->topology, err))
        return -1;
    /* Read by serve/disagg.c and serve/migrate.c when the cluster is made. */
    if ((c->disagg = cJSON_GetObjectItemCaseSensitive(o, "disagg")) &&
        jcfg_obj(o, path, "disagg", &c->disagg, c->disagg_path, err))
        return -1;
    if ((c->migration = cJSON_GetObjectItemCaseSensitive(o, "migration")) &&
        jcfg_obj(o, path, "migration", &c->migration, c->migration_path, err))
        return -1;
    if (!strcmp(choice, "least_loaded"))
        c->pool_choice = POOL_CHOICE_LEAST_LOADED;
    else if (!strcmp(choice, "first"))
        c->pool_choice = POOL_CHOICE_FIRST;
    else
        return sim_errf(err, "%s.pool_choice: expected \"least_loaded\" or \"first\", got "
                        "\"%s\"", path, choice);
    cJSON *pools = cJSON_GetObjectItemCaseSensitive(o, "pools");
    if (!pools) {
        rc->pools = sim_xcalloc(1, sizeof *rc->pools);
        c->pools = rc->pools;
        c->n_pools = 1;
        if (parse_single_pool(rc, n, tp, model, gpu, err))
            return -1;
        c->frontend = rc->pools[0].engine;
        return 0;
    }
    int np = cJSON_GetArraySize(pools);
    if (!cJSON_IsArray(pools) || np < 1 || np > 64)
        return sim_errf(err, "%s.pools: expected an array of 1 to 64 pool objects", path);
    /* The top-level sections as written, then read on their own (with the
     * top-level model) so that their mistakes name their own paths. */
    static const char *const section[N_SECTIONS] = {"instance", "cost", "policies",
                                                    "precision", "engine"};
    cJSON *top[N_SECTIONS];
    for (int s = 0; s < N_SECTIONS; s++) {
        cJSON *t = cJSON_GetObjectItemCaseSensitive(rc->root, section[s]);
        top[s] = !t ? NULL : s == SECTION_ENGINE && cJSON_IsString(t) ? engine_object(t)
                                                                       : cJSON_Duplicate(t, 1);
    }
    /* The cluster-wide policies (parse_control, parse_scale) are no pool's. */
    if (top[2] && cJSON_IsObject(top[2])) {
        cJSON_DeleteItemFromObjectCaseSensitive(top[2], "control");
        cJSON_DeleteItemFromObjectCaseSensitive(top[2], "scale");
    }
    rc->pools = sim_xcalloc((size_t)np + 1, sizeof *rc->pools);
    int rcode = parse_single_pool(rc, 1, tp, model, gpu, err);
    c->frontend = rc->pools[0].engine;
    memset(&rc->pools[0], 0, sizeof rc->pools[0]);
    for (int k = 0; !rcode && k < np; k++)
        rcode = parse_pool(rc, cJSON_GetArrayItem(pools, k), k, top, tp, model, gpu, err);
    for (int s = 0; s < N_SECTIONS; s++)
        cJSON_Delete(top[s]);
    c->pools = rc->pools;
    c->n_pools = np;
    if (rcode)
        return -1;
    bool arrivals = false, prefill = false, decode = false;
    for (int k = 0; k < np; k++) {
        pool_role r = rc->pools[k].role;
        arrivals |= r != POOL_DECODE && (rc->pools[k].instances > 0 ||
                                         rc->pools[k].max_instances > 0);
        prefill |= r == POOL_PREFILL;
        decode |= r == POOL_DECODE;
    }
    if (!arrivals)
        return sim_errf(err, "%s.pools: no pool takes arrivals (role mixed or prefill, with "
                        "instances)", path);
    if (prefill && !decode)
        return sim_errf(err, "%s.pools: a prefill pool needs a decode pool to hand its "
                        "requests to", path);
    return 0;
}

/* ---- cluster-wide sections ------------------------------------------------------------ */

static int parse_control(run_config *rc, sim_err *err)
{
    cluster_setup *c = &rc->sys;
    static const char *const keys[] = {"name", "params", "period_ms", NULL};
    char path[256];
    cJSON *pol, *o;
    if (jcfg_obj(rc->root, "$", "policies", &pol, path, err))
        return -1;
    o = cJSON_GetObjectItemCaseSensitive(pol, "control");
    if (!o)
        return 0;
    const char *name;
    double period_ms;
    char cpath[300], name_path[320];
    snprintf(cpath, sizeof cpath, "%s.control", path);
    if (!cJSON_IsObject(o))
        return sim_errf(err, "%s: expected an object", cpath);
    if (jcfg_check_keys(o, cpath, keys, err) ||
        jcfg_str(o, cpath, "name", JCFG_REQUIRED_STR, &name, err) ||
        jcfg_num(o, cpath, "period_ms", 1000, 0.001, 1e9, &period_ms, err) ||
        jcfg_obj(o, cpath, "params", &c->control.params, c->control.path, err))
        return -1;
    snprintf(name_path, sizeof name_path, "%s.name", cpath);
    if (!(c->control.ops = plugin_control_find(name, name_path, err)))
        return -1;
    c->control.period_ns = (sim_time_ns)(period_ms * 1e6);
    return 0;
}

/* policies.scale: the autoscaler (api/scale.h). */
static int parse_scale(run_config *rc, sim_err *err)
{
    cluster_setup *c = &rc->sys;
    static const char *const keys[] = {"name", "params", "period_ms", "up_cooldown_s",
                                       "down_cooldown_s", NULL};
    char path[256];
    cJSON *pol, *o;
    if (jcfg_obj(rc->root, "$", "policies", &pol, path, err))
        return -1;
    o = cJSON_GetObjectItemCaseSensitive(pol, "scale");
    if (!o)
        return 0;
    const char *name;
    double period_ms, up_s, down_s;
    char cpath[300], name_path[320];
    snprintf(cpath, sizeof cpath, "%s.scale", path);
    if (!cJSON_IsObject(o))
        return sim_errf(err, "%s: expected an object", cpath);
    if (jcfg_check_keys(o, cpath, keys, err) ||
        jcfg_str(o, cpath, "name", JCFG_REQUIRED_STR, &name, err) ||
        jcfg_num(o, cpath, "period_ms", 15000, 1, 1e9, &period_ms, err) ||
        jcfg_num(o, cpath, "up_cooldown_s", 0, 0, 1e7, &up_s, err) ||
        jcfg_num(o, cpath, "down_cooldown_s", 60, 0, 1e7, &down_s, err) ||
        jcfg_obj(o, cpath, "params", &c->scale.params, c->scale.path, err))
        return -1;
    snprintf(name_path, sizeof name_path, "%s.name", cpath);
    if (!(c->scale.ops = plugin_scale_find(name, name_path, err)))
        return -1;
    c->scale.period_ns = (sim_time_ns)(period_ms * 1e6);
    c->scale.up_cooldown_ns = (sim_time_ns)(up_s * 1e9);
    c->scale.down_cooldown_ns = (sim_time_ns)(down_s * 1e9);
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
    static const char *const keys[] = {"timeseries_interval_ms", "warmup_s", "cooldown_s",
                                       "router_oracle", NULL};
    char path[256];
    cJSON *o;
    double interval_ms, warmup_s, cooldown_s;
    if (jcfg_obj(rc->root, "$", "metrics", &o, path, err) ||
        jcfg_check_keys(o, path, keys, err) ||
        jcfg_num(o, path, "timeseries_interval_ms", 1000, 0, 1e12, &interval_ms, err) ||
        jcfg_num(o, path, "warmup_s", 0, 0, 1e9, &warmup_s, err) ||
        jcfg_num(o, path, "cooldown_s", 0, 0, 1e9, &cooldown_s, err) ||
        jcfg_bool(o, path, "router_oracle", 0, &c->router_oracle, err))
        return -1;
    c->warmup_ns = (sim_time_ns)(warmup_s * 1e9);
    c->cooldown_ns = (sim_time_ns)(cooldown_s * 1e9);
    c->timeseries_interval_ns = (sim_time_ns)(interval_ms * 1e6);
    if (interval_ms > 0 && c->timeseries_interval_ns < SIM_NS_PER_US)
        return sim_errf(err, "%s.timeseries_interval_ms: expected 0 (off) or at least "
                        "0.001, got %.15g", path, interval_ms);
    return 0;
}

int run_config_parse(cJSON *root, run_config *rc, sim_err *err)
{
    cluster_setup *c = &rc->sys;
    static const char *const keys[] = {"description", "seed", "model", "gpu", "precision",
                                       "engine", "cluster", "instance", "policies", "cost",
                                       "workload", "slo", "metrics", NULL};
    memset(rc, 0, sizeof *rc);
    rc->root = root;
    const char *model, *gpu, *description;
    int64_t seed;
    if (jcfg_check_keys(root, "$", keys, err) ||
        jcfg_str(root, "$", "description", "", &description, err) ||
        /* JSON numbers are doubles: integers above 2^53 would not survive. */
        jcfg_int(root, "$", "seed", 1, 0, (int64_t)1 << 53, &seed, err) ||
        jcfg_str(root, "$", "model", JCFG_REQUIRED_STR, &model, err) ||
        jcfg_str(root, "$", "gpu", JCFG_REQUIRED_STR, &gpu, err))
        goto fail;
    c->seed = (uint64_t)seed;
    snprintf(c->workload_path, sizeof c->workload_path, "$.workload");
    if (parse_cluster(rc, model, gpu, err) || parse_control(rc, err) || parse_scale(rc, err) ||
        parse_slo(rc, err) || parse_metrics(rc, err) ||
        jcfg_obj(root, "$", "workload", &c->workload, c->workload_path, err))
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
    free(rc->pools);
    memset(rc, 0, sizeof *rc);
}
