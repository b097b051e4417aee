/* The "moe" section of a pool (see config_moe.h and experiments/README.md).
 *
 *   "moe": {"routing": {"sample": true, "skew": 1.0, "spread": 0.2, "layer_groups": 4,
 *                       "trace": "routing.csv"},
 *           "placement": {"name": "eplb", "params": {...}},
 *           "offload": {"prefetch_accuracy": 0.85, "low_precision_gate": 0.2,
 *                       "replacement": "hobbit"}}
 *
 * Every key is optional; unknown keys are errors naming their path. */
#include "tool/config_moe.h"

#include <stdio.h>
#include <string.h>

#include "policies/registry.h"
#include "sim/jsoncfg.h"

int config_parse_moe(cJSON *pj, const char *path, pool_setup *p, sim_err *err)
{
    static const char *const keys[] = {"routing", "placement", "offload", NULL};
    static const char *const okeys[] = {"prefetch_accuracy", "low_precision_gate",
                                        "replacement", NULL};
    char opath[256];
    cJSON *off;
    const char *repl;
    double acc, gate;
    static const char *const rkeys[] = {"sample", "skew", "spread", "layer_groups", "trace",
                                        "locality", "replica_select", NULL};
    static const char *const pkeys[] = {"name", "params", NULL};
    char mpath[256], rpath[256], ppath[256];
    cJSON *o, *r, *pl;
    double skew, spread, locality;
    int64_t groups;
    const char *trace, *name, *select;
    bool given = cJSON_GetObjectItemCaseSensitive(pj, "moe") != NULL, sample;
    if (jcfg_obj(pj, path, "moe", &o, mpath, err) || jcfg_check_keys(o, mpath, keys, err) ||
        jcfg_obj(o, mpath, "routing", &r, rpath, err) ||
        jcfg_check_keys(r, rpath, rkeys, err) ||
        jcfg_bool(r, rpath, "sample", 1, &sample, err) ||
        jcfg_num(r, rpath, "skew", 0, 0, 10, &skew, err) ||
        jcfg_num(r, rpath, "spread", 0.2, 0, 0.99, &spread, err) ||
        jcfg_num(r, rpath, "locality", 0, 0, 1, &locality, err) ||
        jcfg_int(r, rpath, "layer_groups", MOE_GROUPS_MAX, 1, MOE_GROUPS_MAX, &groups, err) ||
        jcfg_str(r, rpath, "trace", "", &trace, err) ||
        jcfg_str(r, rpath, "replica_select", "split", &select, err) ||
        jcfg_obj(o, mpath, "placement", &pl, ppath, err) ||
        jcfg_check_keys(pl, ppath, pkeys, err) ||
        jcfg_str(pl, ppath, "name", "static", &name, err) ||
        jcfg_obj(pl, ppath, "params", &p->moe.placement.params, p->moe.placement.path, err) ||
        jcfg_obj(o, mpath, "offload", &off, opath, err) ||
        jcfg_check_keys(off, opath, okeys, err) ||
        jcfg_num(off, opath, "prefetch_accuracy", 0.85, 0, 1, &acc, err) ||
        jcfg_num(off, opath, "low_precision_gate", 0.2, 0, 1, &gate, err) ||
        jcfg_str(off, opath, "replacement", "hobbit", &repl, err))
        return -1;
    if (!strcmp(repl, "lru"))
        p->moe.offload.replace = OFFLOAD_LRU;
    else if (!strcmp(repl, "lfu"))
        p->moe.offload.replace = OFFLOAD_LFU;
    else if (!strcmp(repl, "hobbit"))
        p->moe.offload.replace = OFFLOAD_HOBBIT;
    else
        return sim_errf(err, "%s.replacement: expected one of: lru, lfu, hobbit; got \"%s\"",
                        opath, repl);
    p->moe.offload.prefetch_accuracy = acc;
    p->moe.offload.low_precision_gate = gate;
    /* A dense model refuses a moe section that asks for anything; one that
     * holds only the defaults is what the parser itself writes into the
     * effective config (which sweeps and results files read back). */
    bool asks = sample != true || skew != 0 || spread != 0.2 || locality != 0 ||
                groups != MOE_GROUPS_MAX || trace[0] || strcmp(select, "split") ||
                strcmp(name, "static") || cJSON_GetArraySize(p->moe.placement.params) > 0 ||
                acc != 0.85 || gate != 0.2 || strcmp(repl, "hobbit");
    if (given && asks && !p->model.experts)
        return sim_errf(err, "%s: %s has no experts; the moe section needs an MoE model",
                        mpath, p->model.name);
    if (strcmp(select, "split") && strcmp(select, "janus"))
        return sim_errf(err, "%s.replica_select: expected one of: split, janus; got \"%s\"",
                        rpath, select);
    p->moe.janus = !strcmp(select, "janus");
    p->moe.sample = sample;
    p->moe.routing.skew = skew;
    p->moe.routing.spread = spread;
    p->moe.routing.locality = locality;
    p->moe.routing.groups = (int32_t)groups;
    p->moe.routing.has_trace = false;
    if (trace[0] && moe_trace_load(trace, &p->model, &p->moe.routing, err))
        return sim_err_prefix(err, "%s.trace", rpath);
    char name_path[300];
    snprintf(name_path, sizeof name_path, "%s.name", ppath);
    if (!(p->moe.placement.ops = place_policy_find(name, name_path, err)))
        return -1;
    return 0;
}

