/* The run-config reference, generated from the parser (see config_doc.h).
 *
 * Paths here are dotted, without the "$." the parser's messages put in
 * front ("instance.max_seqs"; "cluster.pools[0].name" inside an array).
 * Every probe parses a copy of a config and builds its cluster (without
 * running it), then reads the parser's message. */
#include "tool/config_doc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "serve/cluster.h"
#include "sim/jsoncfg.h"
#include "tool/config.h"

#define PROBE_KEY "zz_probe_key"

/* ---- the hand-written part: one line per key ---------------------------------- */

typedef struct cfgdoc_text {
    const char *path;   /* a key, or "a.b.*" for every key under a.b */
    const char *text;
} cfgdoc_text;

static const cfgdoc_text texts[] = {
    {"description", "free text about the config, kept in the results file"},
    {"seed", "master seed: every random stream is seeded from (seed, stream id)"},
    {"model", "model name (a file in models/llm/) or the path of a model file"},
    {"gpu", "GPU name (a file in models/gpu/) or the path of a GPU file"},
    {"precision", "dtypes of weights, activations and KV cache"},
    {"precision.weights", "weight dtype (bf16, fp16, fp8, int8, int4, ...)"},
    {"precision.activations", "activation dtype (compute precision)"},
    {"precision.kv_cache", "KV-cache dtype"},
    {"engine", "serving-engine profile (models/engines/README.md): a name, a file, or "
               "{\"name\": ..., overrides}; gives the defaults of the scheduler and the CPU model"},
    {"engine.*", "the engine profile's value (models/engines/README.md explains each)"},
    {"cluster", "how many instances and GPUs, and the network between them"},
    {"cluster.instances", "instances (replicas) of the model"},
    {"cluster.tp", "tensor-parallel degree: GPUs per instance"},
    {"cluster.pool_choice", "which pool takes an arrival when several can: least_loaded or first"},
    {"cluster.pools", "several pools (disaggregated prefill/decode, mixed fleets); "
                      "without it the cluster is one pool of the top-level sections"},
    {"cluster.pools[].name", "the pool's name (unique)"},
    {"cluster.pools[].role", "mixed, prefill (hands requests to a decode pool) or decode"},
    {"cluster.pools[].instances", "instances at the start"},
    {"cluster.pools[].min_instances", "fewest instances a control policy may scale to"},
    {"cluster.pools[].max_instances", "most instances a control policy may scale to"},
    {"cluster.pools[].model", "the pool's model (default: the top-level model)"},
    {"cluster.pools[].gpu", "the pool's GPU (default: the top-level GPU)"},
    {"cluster.pools[].precision", "overrides of the top-level precision, key by key"},
    {"cluster.pools[].instance", "overrides of the top-level instance section, key by key"},
    {"cluster.pools[].cost", "overrides of the top-level cost section, key by key"},
    {"cluster.pools[].policies", "overrides of the top-level policies, key by key"},
    {"cluster.pools[].engine", "the pool's engine profile (default: the top-level engine)"},
    {"cluster.pools[].parallel", "the pool's parallel layout"},
    {"cluster.pools[].parallel.tp", "tensor-parallel degree"},
    {"cluster.pools[].parallel.pp", "pipeline-parallel degree"},
    {"cluster.pools[].parallel.ep", "expert-parallel degree (MoE models)"},
    {"cluster.pools[].parallel.dp", "data-parallel degree within an instance"},
    {"cluster.pools[].parallel.micro_batches",
     "micro-batches an iteration is cut into on pipeline stages (default pp)"},
    {"cluster.pools[].parallel.redundant_experts",
     "extra expert slots per MoE layer for copies of hot experts (expert parallelism)"},
    {"cluster.pools[].parallel.gpu_experts",
     "expert offloading: routed experts per MoE layer cached on the GPUs (0: all)"},
    {"cluster.pools[].moe", "expert routing, placement and offloading (MoE models)"},
    {"cluster.pools[].moe.routing", "the routing model of the expert-parallel load"},
    {"cluster.pools[].moe.routing.sample",
     "draw the routed load each iteration (false: the expected load)"},
    {"cluster.pools[].moe.routing.skew", "Zipf exponent of expert popularity (0: uniform)"},
    {"cluster.pools[].moe.routing.spread", "per-layer-group spread of the Zipf exponent"},
    {"cluster.pools[].moe.routing.layer_groups",
     "groups of MoE layers with their own popularity (1 to 4)"},
    {"cluster.pools[].moe.routing.trace",
     "a CSV routing trace (layer,expert,tokens) replacing the Zipf popularity"},
    {"cluster.pools[].moe.routing.locality",
     "offloading: probability an expert's load repeats the last iteration's"},
    {"cluster.pools[].moe.routing.replica_select",
     "an expert with copies: split its tokens evenly, or janus (one copy per iteration)"},
    {"cluster.pools[].moe.placement", "the expert-placement policy"},
    {"cluster.pools[].moe.placement.name", "expert-placement policy: static or eplb"},
    {"cluster.pools[].moe.placement.params", "the placement policy's parameters"},
    {"cluster.pools[].moe.offload", "expert offloading's prefetch, precision and cache"},
    {"cluster.pools[].moe.offload.prefetch_accuracy",
     "probability a missed expert was prefetched during the layer before"},
    {"cluster.pools[].moe.offload.low_precision_gate",
     "gate weight below which a missed expert loads in int4"},
    {"cluster.pools[].moe.offload.replacement", "the expert cache's eviction: lru, lfu or hobbit"},
    {"cluster.pools[].lifecycle", "cold-start times of instances a control policy adds"},
    {"cluster.pools[].lifecycle.provision_s", "seconds to obtain a machine"},
    {"cluster.pools[].lifecycle.init_s", "seconds to start the engine, besides loading weights"},
    {"cluster.pools[].lifecycle.engine_start_s", "seconds to start the engine process (instead of init_s)"},
    {"cluster.pools[].lifecycle.graph_capture_s", "seconds of CUDA-graph capture and warm-up"},
    {"cluster.pools[].lifecycle.source", "where weights load from: storage, host or peer"},
    {"cluster.pools[].lifecycle.price_per_gpu_hour", "dollars per GPU-hour held, for cost_usd"},
    {"cluster.pools[].lifecycle.provision_jitter_s", "uniform extra provisioning time, up to this, s"},
    {"cluster.pools[].lifecycle.drain", "scale-down: finish running requests or migrate them"},
    {"cluster.topology", "nodes and links between GPUs and instances"},
    {"cluster.topology.gpus_per_node", "GPUs per node (NVLink domain)"},
    {"cluster.topology.nic_gbps", "network bandwidth between nodes, Gbit/s"},
    {"cluster.topology.nvlink_latency_us", "latency of an NVLink transfer, us"},
    {"cluster.topology.nic_latency_us", "latency of a transfer between nodes, us"},
    {"cluster.topology.pcie_latency_us", "latency of a host-device transfer, us"},
    {"cluster.topology.storage_gbps", "storage read bandwidth for weight loads, Gbit/s"},
    {"cluster.topology.storage_latency_ms", "storage latency, ms"},
    {"cluster.disagg", "prefill/decode disaggregation and semi-PD (serve/README.md)"},
    {"cluster.migration", "live migration of running requests (Llumnix)"},
    {"cluster.migration.last_stage_max_blocks", "blocks left when the stop-and-copy stage starts"},
    {"cluster.migration.max_stages", "pre-copy stages before a migration is abandoned"},
    {"instance", "one instance's limits, KV cache and preemption"},
    {"instance.max_batched_tokens", "most tokens computed in one iteration"},
    {"instance.max_seqs", "most sequences in one batch (default from the engine profile)"},
    {"instance.block_size_tokens", "KV-cache block size, tokens"},
    {"instance.gpu_memory_utilization", "share of GPU memory the engine may use"},
    {"instance.activation_reserve_gib", "memory kept for activations, GiB per GPU"},
    {"instance.max_context_tokens", "longest context; longer requests are handled by "
                                    "workload.context_policy (default: the model's context)"},
    {"instance.preemption", "what preemption does to a victim's KV: recompute or swap"},
    {"instance.swap_overlap", "swaps overlap with compute"},
    {"instance.host_swap_gib", "host memory for swapped KV per instance, GiB"},
    {"instance.prefix_caching", "reuse KV blocks of shared prompt prefixes"},
    {"instance.kv_tiers", "KV tiers below HBM: host DRAM, SSD, remote pool (serve/README.md)"},
    {"instance.kv_load", "when a tier hit is loaded: always or when cheaper than recomputing"},
    {"instance.kv_budget", "token-level KV compression: tokens kept per request (quality not modelled)"},
    {"instance.speculative", "speculative decoding (serve/spec.h): off when absent"},
    {"instance.speculative.method", "the drafter: draft_model, eagle, mtp, medusa, ngram or off"},
    {"instance.speculative.k", "draft tokens per step (the most; the policy may pick fewer)"},
    {"instance.speculative.acceptance", "accepted drafts: a Bernoulli rate, or {\"model\": "
                                        "bernoulli | per_position | beta | request | trace, "
                                        "...} (request, trace: the trace's spec_alpha, "
                                        "spec_accepted columns)"},
    {"instance.speculative.draft_model", "draft_model: the draft LLM (a name in models/llm/ or a file)"},
    {"instance.speculative.draft_layers", "eagle, mtp: the drafter's decoder layers"},
    {"instance.speculative.lookahead", "reserve k lookahead KV slots per drafting sequence "
                                       "(default: vLLM's split by method)"},
    {"instance.speculative.draft_step_us", "CPU/launch time per draft pass"},
    {"instance.speculative.match_rate", "ngram: chance that a step finds a proposal"},
    {"instance.speculative.topk", "tree drafting: branches per draft step (SGLang's eagle_topk)"},
    {"instance.speculative.verify_tokens", "tree drafting: nodes verified per sequence "
                                           "(SGLang's num_draft_tokens; 0: a chain of k + 1)"},
    {"instance.speculative.policy", "how K is picked each iteration (policies/README.md)"},
    {"instance.speculative.policy.name", "fixed or smartspec"},
    {"instance.speculative.policy.params", "the policy's parameters"},
    {"instance.lora", "multi-LoRA serving (serve/lora.h): off when absent"},
    {"instance.lora.adapters", "number of adapters; each request uses one, by Zipf popularity"},
    {"instance.lora.popularity_zipf", "Zipf exponent of adapter popularity (0: uniform)"},
    {"instance.lora.rank", "every adapter's rank"},
    {"instance.lora.ranks", "instead of rank: adapter i has rank ranks[i % n]"},
    {"instance.lora.padded", "LoRA kernels run at the largest rank (vLLM) or each adapter's own"},
    {"instance.lora.modules", "adapted modules: all or attention"},
    {"instance.lora.max_loras", "GPU adapter slots, and the most distinct adapters per batch"},
    {"instance.lora.max_cpu_loras", "adapters the host cache holds"},
    {"instance.lora.storage_gbps", "loads from storage into the host cache, Gbit/s"},
    {"instance.lora.storage_latency_ms", "latency of a load from storage"},
    {"instance.lora.select", "adapter selection: {\"policy\": \"polar\", ...} (serve/polar.h): a cache-aware contextual bandit picks each request's adapter"},
    {"instance.lora.select.policy", "polar (the only one)"},
    {"instance.lora.select.dim", "context features d (the constant one included)"},
    {"instance.lora.select.beta", "LinUCB exploration bonus weight"},
    {"instance.lora.select.lambda", "penalty per second of load time for an adapter not in a GPU slot"},
    {"instance.lora.select.noise", "reward noise standard deviation"},
    {"instance.lora.select.epoch", "the first epoch's selections (controller: forced exploration, kept set)"},
    {"instance.lora.select.doubling", "POLAR+: each epoch twice as long as the last"},
    {"instance.lora.load_over_links", "loads are transfers over the link model (PCIe shared, max-min fair; storage link per instance)"},
    {"policies", "the scheduling policies (policies/README.md)"},
    {"policies.batch", "batch formation: which requests run in the next iteration"},
    {"policies.batch.name", "the batch policy (default from the engine profile)"},
    {"policies.batch.params", "the batch policy's parameters"},
    {"policies.batch.params.token_budget", "most tokens per iteration (default from the engine)"},
    {"policies.batch.params.max_seqs", "most sequences per iteration (default from the engine)"},
    {"policies.batch.params.watermark_fraction",
     "share of KV blocks kept free when admitting (default from the engine)"},
    {"policies.batch.params.*", "the batch policy's parameter (policies/README.md)"},
    {"policies.order", "queue order: which waiting request is admitted first"},
    {"policies.order.name", "the order policy"},
    {"policies.order.params", "the order policy's parameters"},
    {"policies.order.params.*", "the order policy's parameter (policies/README.md)"},
    {"policies.routing", "routing: which instance of a pool takes an arrival"},
    {"policies.routing.name", "the routing policy"},
    {"policies.routing.params", "the routing policy's parameters"},
    {"policies.routing.params.*", "the routing policy's parameter (policies/README.md)"},
    {"policies.control", "an optional control policy run every period (scaling, balancing)"},
    {"policies.control.name", "the control policy"},
    {"policies.control.period_ms", "how often it runs, ms"},
    {"policies.control.params", "the control policy's parameters"},
    {"policies.control.params.*", "the control policy's parameter (policies/README.md)"},
    {"policies.eviction", "which cached KV block is evicted first (api/evict.h)"},
    {"policies.eviction.name", "the eviction policy (default lru, vLLM's)"},
    {"policies.eviction.params", "the eviction policy's parameters"},
    {"policies.retention", "what a finished session turn's KV does: released or pinned (api/retain.h)"},
    {"policies.retention.name", "the KV retention policy (default release, vLLM's)"},
    {"policies.retention.params", "the retention policy's parameters"},
    {"policies.scale", "an autoscaler: desired instances per pool (api/scale.h)"},
    {"policies.scale.name", "the autoscaling policy"},
    {"policies.scale.params", "the autoscaling policy's parameters"},
    {"policies.scale.params.*", "the autoscaling policy's parameter (policies/README.md)"},
    {"policies.scale.period_ms", "how often the autoscaler decides, ms"},
    {"policies.scale.up_cooldown_s", "least time between two scale-ups, s"},
    {"policies.scale.down_cooldown_s", "least time between two scale-downs, s"},
    {"cost", "how long an iteration takes (models/README.md)"},
    {"cost.model", "cost model: table (calibrated operator tables, roofline where they "
                   "have no entry) or roofline"},
    {"cost.iteration_overhead_us", "a fixed CPU time per iteration, us, replacing the "
                                   "engine's CPU model (no default: the engine's model)"},
    {"cost.moe_routing_skew", "load imbalance among experts (0: uniform)"},
    {"cost.params", "the cost model's parameters"},
    {"cost.params.*", "the cost model's parameter (models/README.md)"},
    {"workload", "the requests (traces/README.md)"},
    {"workload.source", "where requests come from: synthetic, or a trace format"},
    {"workload.context_policy", "a request longer than the context: truncate (clamp, "
                                "counted) or drop"},
    {"workload.requests", "how many requests"},
    {"workload.arrival", "the arrival process"},
    {"workload.arrival.process", "the arrival process's kind"},
    {"workload.arrival.rate_per_s", "mean arrival rate, requests per second"},
    {"workload.arrival.cv", "coefficient of variation of inter-arrival times"},
    {"workload.arrival.amplitude", "relative amplitude of the rate's oscillation"},
    {"workload.arrival.period_s", "period of the oscillation, s"},
    {"workload.arrival.peak_s", "time of the first peak, s"},
    {"workload.arrival.clients", "closed loop: concurrent clients"},
    {"workload.arrival.think_s", "closed loop: mean think time between a reply and the next "
                                 "request, s"},
    {"workload.arrival.think", "closed loop: distribution of think times"},
    {"workload.arrival.path", "a file of arrival times or rate segments"},
    {"workload.arrival.segments", "piecewise-constant rate: [[duration_s, rate_per_s], ...]"},
    {"workload.arrival.repeat_s", "repeat the segments with this period, s"},
    {"workload.input_tokens", "distribution of prompt lengths"},
    {"workload.output_tokens", "distribution of output lengths"},
    {"workload.input_tokens.*", "parameter of the length distribution (traces/README.md)"},
    {"workload.output_tokens.*", "parameter of the length distribution (traces/README.md)"},
    {"workload.ttft_slo_ms", "per-request TTFT deadline given to order policies (edf)"},
    {"workload.priority_classes", "number of priority classes requests are drawn from"},
    {"workload.stream", "stream every prompt in chunks (Stream2LLM; needs policies.batch stream2llm)"},
    {"workload.stream.chunk_tokens", "prompt tokens per chunk"},
    {"workload.stream.gap_ms", "gap between a prompt's chunks, ms (a length-style distribution)"},
    {"workload.call_groups", "multi-call (agentic) request groups sharing one deadline (JITServe)"},
    {"workload.call_groups.fraction", "share of arrivals that start a group"},
    {"workload.call_groups.calls", "calls per group, the first included"},
    {"workload.call_groups.gap_ms", "gap between a group's calls, ms (a length-style distribution)"},
    {"workload.call_groups.deadline_ms", "the group's end-to-end deadline after its first call"},
    {"workload.*", "the trace source's key (traces/README.md)"},
    {"slo", "service-level objective counted in the summary's attainment"},
    {"slo.ttft_ms", "time-to-first-token target, ms"},
    {"slo.tpot_ms", "time-per-output-token target, ms"},
    {"metrics", "what the results file records"},
    {"metrics.timeseries_interval_ms", "time-series sampling interval, ms (0: off)"},
    {"metrics.warmup_s", "leave requests arriving before this time out of the summary's "
                         "latency, SLO and throughput statistics (the per-request table "
                         "keeps them); see tool/OUTPUT.md on run length"},
    {"metrics.cooldown_s", "leave requests arriving in the last cooldown_s of arrivals out "
                           "of the summary's statistics, as warmup_s"},
    {"metrics.router_oracle", "count each routed request's prefix hit on the instance chosen "
                              "and on the best candidate (an oracle); costs a lookup per "
                              "instance per request (serve/route_oracle.h)"},
    {NULL, NULL},
};

/* Values for required keys the empty config lacks, where the parser's
 * expectation does not pick one (names of files). */
static const struct { const char *key, *json; } examples[] = {
    {"model", "\"Llama-3-8B\""},
    {"gpu", "\"H100-SXM-80GB\""},
    {"requests", "8"},
    {NULL, NULL},
};

/* Keys whose value picks a plug-in: each of its names is walked. */
static const char *const selectors[] = {
    "policies.batch.name", "policies.order.name", "policies.routing.name",
    "policies.control.name", "cost.model", "workload.source", "workload.arrival.process",
    "workload.input_tokens.dist", "workload.output_tokens.dist", NULL,
};

/* Pool sections: merged copies of the top-level ones, not walked again. */
static const char *const pool_sections[] = {
    "cluster.pools[].instance", "cluster.pools[].cost", "cluster.pools[].policies",
    "cluster.pools[].precision", "cluster.pools[].engine", NULL,
};

static bool in_list(const char *const *list, const char *s)
{
    for (int i = 0; list[i]; i++)
        if (!strcmp(list[i], s))
            return true;
    return false;
}

/* ---- trees -------------------------------------------------------------------------- */

/* The node at `path` ("a.b[0].c"; "" is the root), or NULL. With `put`,
 * missing objects on the way are created and the last key is set to it
 * (taking it). */
static cJSON *tree_at(cJSON *root, const char *path, cJSON *put)
{
    cJSON *node = root;
    char seg[160];
    const char *p = path;
    while (*p && node) {
        size_t n = strcspn(p, ".");
        snprintf(seg, sizeof seg, "%.*s", (int)n, p);
        p += n + (p[n] == '.');
        int index = -1;
        char *br = strchr(seg, '[');
        if (br) {
            index = atoi(br + 1);
            *br = 0;
        }
        cJSON *next = cJSON_GetObjectItemCaseSensitive(node, seg);
        bool last = !*p && index < 0;
        if (put && last) {
            cJSON_DeleteItemFromObjectCaseSensitive(node, seg);
            cJSON_AddItemToObject(node, seg, put);
            return put;
        }
        if (!next && put && cJSON_IsObject(node)) {
            next = cJSON_AddObjectToObject(node, seg);
        }
        if (next && index >= 0)
            next = cJSON_GetArrayItem(next, index);
        node = next;
    }
    if (put)
        cJSON_Delete(put);
    return put ? NULL : node;
}

static void tree_set(cJSON *root, const char *path, const char *json)
{
    cJSON *v = cJSON_Parse(json);
    SIM_ASSERT(v != NULL);
    tree_at(root, path, v);
}

/* Parses a copy of cfg and builds its cluster. 0: valid, and *eff (when
 * not NULL) is the effective config (caller owns it). */
static int try_config(const cJSON *cfg, cJSON **eff, sim_err *err)
{
    run_config rc;
    cJSON *copy = cJSON_Duplicate(cfg, 1);
    SIM_ASSERT(copy != NULL);
    if (run_config_parse(copy, &rc, err))
        return -1;
    cluster *c = cluster_create(&rc.sys, NULL, err);
    if (c && eff)
        *eff = cJSON_Duplicate(rc.root, 1);
    cluster_destroy(c);
    run_config_fini(&rc);
    return c ? 0 : -1;
}

/* What the parser said it expects of `path` in message msg ("a number in
 * [0, 1]", "one of: a, b"), into out; false if msg is not about path. */
static bool expected_of(const char *msg, const char *path, char *out, size_t size)
{
    char at[200];
    snprintf(at, sizeof at, "$.%s", path);
    const char *p = strstr(msg, at);
    if (!p || (p[strlen(at)] != ':' && p[strlen(at)] != ' '))
        return false;
    const char *e = strstr(p, "expected ");
    if (!e)
        return false;
    e += strlen("expected ");
    const char *end = NULL;
    for (const char *q = e; (q = strstr(q, "got ")) != NULL; q++)
        if (q - 2 >= e && (q[-2] == ',' || q[-2] == ';'))
            end = q - 2;
    size_t n = end ? (size_t)(end - e) : strlen(e);
    snprintf(out, size, "%.*s", (int)n, e);
    return true;
}

/* ---- the collection ------------------------------------------------------------------- */

typedef struct walker {
    cfgdoc *d;
    char required[64][360];  /* "when|key" of the keys the parser said are required */
    int n_required;
    const char *fixed[16];   /* selectors already set in this variant */
    int n_fixed;
    int probes;
} walker;

static cfgdoc_key *add_row(walker *w, const char *path, const char *when, const char *def,
                           const char *expected, bool object)
{
    cfgdoc *d = w->d;
    char tag[400];
    snprintf(tag, sizeof tag, "%.200s|%.150s", when, path);
    for (int i = 0; i < w->n_required; i++)
        if (!strcmp(w->required[i], tag))
            def = "(required)";
    for (int i = 0; i < d->n; i++) {
        cfgdoc_key *k = &d->keys[i];
        if (strcmp(k->path, path) || strcmp(k->def, def) || strcmp(k->expected, expected))
            continue;
        /* The same key in another variant: name both variants. */
        if (!k->when[0] || !strcmp(k->when, when) || strstr(k->when, when))
            return k;
        if (!when[0]) {
            k->when[0] = 0;
            return k;
        }
        const char *eq = strchr(when, '=');
        size_t pre = eq ? (size_t)(eq - when + 1) : 0;
        size_t used = strlen(k->when);
        if (pre && !strncmp(k->when, when, pre) && !strchr(k->when, ';'))
            snprintf(k->when + used, sizeof k->when - used, ", %s", when + pre);
        else
            snprintf(k->when + used, sizeof k->when - used, "; %s", when);
        return k;
    }
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 64;
        d->keys = sim_xrealloc(d->keys, (size_t)d->cap * sizeof *d->keys);
    }
    cfgdoc_key *k = &d->keys[d->n++];
    memset(k, 0, sizeof *k);
    snprintf(k->path, sizeof k->path, "%s", path);
    snprintf(k->when, sizeof k->when, "%s", when);
    snprintf(k->def, sizeof k->def, "%s", def);
    snprintf(k->expected, sizeof k->expected, "%s", expected);
    k->object = object;
    return k;
}

/* "a.b[0].c" as shown: "a.b[].c". */
static void display_path(const char *path, char *out, size_t size)
{
    size_t o = 0;
    for (const char *p = path; *p && o + 1 < size; p++) {
        if (*p == '[') {
            out[o++] = '[';
            while (*p && *p != ']')
                p++;
            if (!*p)
                break;
        }
        out[o++] = *p;
    }
    out[o] = 0;
}

static void join(char *out, size_t size, const char *path, const char *key)
{
    snprintf(out, size, "%s%s%s", path, *path ? "." : "", key);
}

/* What the parser expects of the key at `path` in the valid config cfg:
 * a value of the wrong type (null), then an unknown name ("?"). */
static void probe_expected(walker *w, const cJSON *cfg, const char *path, char *out,
                           size_t size)
{
    static const char *const wrong[] = {"null", "\"" PROBE_KEY "\"", NULL};
    out[0] = 0;
    for (int i = 0; wrong[i]; i++) {
        cJSON *v = cJSON_Duplicate(cfg, 1);
        tree_set(v, path, wrong[i]);
        sim_err err = {{0}};
        w->probes++;
        char got[400];
        if (try_config(v, NULL, &err) && expected_of(err.msg, path, got, sizeof got)) {
            /* A string's list of names says more than "a string". */
            if (!out[0] || strstr(got, "one of"))
                snprintf(out, size, "%s", got);
        }
        cJSON_Delete(v);
    }
    if (!out[0])
        snprintf(out, size, "(any value)");
}

/* The keys the parser takes in the object at `path`, comma-separated, into
 * out; false when it takes any key (or said nothing about one). */
static bool probe_keys(walker *w, const cJSON *cfg, const char *path, char *out, size_t size)
{
    char key[200];
    join(key, sizeof key, path, PROBE_KEY);
    cJSON *v = cJSON_Duplicate(cfg, 1);
    tree_set(v, key, "0");
    sim_err err = {{0}};
    w->probes++;
    bool known = false;
    if (try_config(v, NULL, &err)) {
        char at[220];
        snprintf(at, sizeof at, "$.%s: unknown key", key);
        const char *p = strstr(err.msg, at);
        if (p && strstr(p, "takes no keys")) {
            out[0] = 0;
            known = true;
        } else if (p && (p = strstr(p, "expected one of: "))) {
            snprintf(out, size, "%s", p + strlen("expected one of: "));
            known = true;
        }
    }
    cJSON_Delete(v);
    return known;
}

/* A value for a required key, from what the parser expects of it. */
static void value_for(walker *w, const cJSON *cfg, const char *path, const char *expected,
                      char *out, size_t size)
{
    const char *key = strrchr(path, '.');
    key = key ? key + 1 : path;
    for (int i = 0; examples[i].key; i++)
        if (!strcmp(examples[i].key, key)) {
            snprintf(out, size, "%s", examples[i].json);
            return;
        }
    double lo = 0, hi = 0;
    if (sscanf(expected, "a number in [%lf, %lf]", &lo, &hi) == 2 ||
        sscanf(expected, "an integer in [%lf, %lf]", &lo, &hi) == 2) {
        double v = lo <= 1 && 1 <= hi ? 1 : lo;
        snprintf(out, size, "%.17g", v);
    } else if (sscanf(expected, "a number >= %lf", &lo) == 1 ||
               sscanf(expected, "an integer >= %lf", &lo) == 1) {
        snprintf(out, size, "%.17g", lo < 1 ? 1 : lo);
    } else if (strstr(expected, "a number") || strstr(expected, "an integer")) {
        snprintf(out, size, "1");
    } else if (strstr(expected, "true or false")) {
        snprintf(out, size, "false");
    } else if (!strncmp(expected, "an object", 9)) {
        snprintf(out, size, "{}");
    } else {
        char names[400];
        probe_expected(w, cfg, path, names, sizeof names);
        const char *one = strstr(names, "one of: ");
        if (one) {
            one += strlen("one of: ");
            snprintf(out, size, "\"%.*s\"", (int)strcspn(one, ",;"), one);
        } else {
            snprintf(out, size, "\"x\"");
        }
    }
}

/* Fills in cfg's missing required keys, recording each, until it is valid;
 * 0 and the effective config in *eff, or -1. */
static int fill_required(walker *w, cJSON *cfg, const char *when, cJSON **eff)
{
    for (int tries = 0; tries < 40; tries++) {
        sim_err err = {{0}};
        w->probes++;
        if (!try_config(cfg, eff, &err))
            return 0;
        const char *m = strstr(err.msg, ": missing required key; expected ");
        const char *start = m;
        while (start && start > err.msg && !(start[0] == '$' && start[1] == '.'))
            start--;
        if (!m || !start || start[0] != '$')
            return -1;
        char path[200], expected[400], value[300], shown[200];
        snprintf(path, sizeof path, "%.*s", (int)(m - start - 2), start + 2);
        snprintf(expected, sizeof expected, "%s", m + strlen(": missing required key; expected "));
        value_for(w, cfg, path, expected, value, sizeof value);
        display_path(path, shown, sizeof shown);
        /* The names of a selector are listed on the selector's own row. */
        if (w->n_required < 64)
            snprintf(w->required[w->n_required++], sizeof w->required[0], "%.200s|%.150s",
                     when, shown);
        cJSON *v = cJSON_Parse(value);
        if (!v)
            return -1;
        tree_at(cfg, path, v);
    }
    return -1;
}

static void walk(walker *w, const cJSON *cfg, const cJSON *eff, const char *path,
                 const char *when);

/* A variant that cannot be completed here (a trace source needs its file):
 * the keys its object takes, without defaults. */
static void keys_only(walker *w, const cJSON *cfg, const char *obj_path, const char *selector,
                      const char *when)
{
    char keys[800];
    if (!probe_keys(w, cfg, obj_path, keys, sizeof keys))
        return;
    for (char *save = NULL, *k = strtok_r(keys, ", ", &save); k; k = strtok_r(NULL, ", ", &save)) {
        char full[200], shown[200];
        join(full, sizeof full, obj_path, k);
        if (!strcmp(full, selector))
            continue;
        display_path(full, shown, sizeof shown);
        add_row(w, shown, when, "(none)", "(not probed: the source needs its file; "
                "traces/README.md)", false);
    }
}

/* One variant per name of the selector at `path` (its names in `names`),
 * each walking the selector's object. */
static void walk_variants(walker *w, const cJSON *cfg, const char *obj_path, const char *path,
                          const char *names, const char *when)
{
    char list[400], shown[200];
    snprintf(list, sizeof list, "%s", names);
    display_path(path, shown, sizeof shown);
    for (char *save = NULL, *name = strtok_r(list, ", ", &save); name;
         name = strtok_r(NULL, ", ", &save)) {
        char val[200], sub_when[400];
        snprintf(val, sizeof val, "\"%s\"", name);
        snprintf(sub_when, sizeof sub_when, "%.100s=%.100s", shown, name);
        (void)when;
        cJSON *v = cJSON_Duplicate(cfg, 1), *veff = NULL;
        /* A new name: its object starts from just that name. */
        char obj_json[256];
        snprintf(obj_json, sizeof obj_json, "{\"%s\": %s}", strrchr(path, '.') + 1, val);
        tree_set(v, obj_path, obj_json);
        if (!fill_required(w, v, sub_when, &veff)) {
            w->fixed[w->n_fixed++] = path;
            walk(w, v, veff, obj_path, sub_when);
            w->n_fixed--;
        } else {
            keys_only(w, v, obj_path, path, sub_when);
        }
        cJSON_Delete(veff);
        cJSON_Delete(v);
    }
    /* A key every name takes needs no "when". */
    char all[400];
    snprintf(all, sizeof all, "%.100s=%.290s", shown, names);
    for (int i = 0; i < w->d->n; i++)
        if (!strcmp(w->d->keys[i].when, all))
            w->d->keys[i].when[0] = 0;
}

static bool is_fixed(const walker *w, const char *path)
{
    for (int i = 0; i < w->n_fixed; i++)
        if (!strcmp(w->fixed[i], path))
            return true;
    return false;
}

/* An optional object or array of objects the effective config lacks: walked
 * in a variant that has one. */
static void walk_absent(walker *w, const cJSON *cfg, const char *path, const char *expected,
                        const char *when)
{
    bool array = strstr(expected, "array") && strstr(expected, "object");
    if (strncmp(expected, "an object", 9) && !array)
        return;
    cJSON *v = cJSON_Duplicate(cfg, 1), *veff = NULL;
    tree_set(v, path, array ? "[{}]" : "{}");
    char inner[220];
    snprintf(inner, sizeof inner, "%.200s%s", path, array ? "[0]" : "");
    if (!fill_required(w, v, when, &veff))
        walk(w, v, veff, inner, when);
    cJSON_Delete(veff);
    cJSON_Delete(v);
}

static void walk(walker *w, const cJSON *cfg, const cJSON *eff, const char *path,
                 const char *when)
{
    const cJSON *node = *path ? tree_at((cJSON *)eff, path, NULL) : eff;
    if (!cJSON_IsObject(node))
        return;
    char keys[800];
    if (!probe_keys(w, cfg, path, keys, sizeof keys)) {
        /* Any key: the ones it has. */
        size_t used = 0;
        keys[0] = 0;
        for (const cJSON *c = node->child; c; c = c->next)
            used += (size_t)snprintf(keys + used, sizeof keys - used, "%s%s",
                                     used ? ", " : "", c->string);
    }
    /* A selector here that is not set yet: one variant per name. */
    char list[800];
    snprintf(list, sizeof list, "%s", keys);
    for (char *save = NULL, *k = strtok_r(list, ", ", &save); k; k = strtok_r(NULL, ", ", &save)) {
        char full[200], shown[200], names[400];
        join(full, sizeof full, path, k);
        display_path(full, shown, sizeof shown);
        if (!in_list(selectors, shown) || is_fixed(w, full))
            continue;
        probe_expected(w, cfg, full, names, sizeof names);
        const cJSON *cur = cJSON_GetObjectItemCaseSensitive(node, k);
        char *def = cur ? cJSON_PrintUnformatted(cur) : NULL;
        add_row(w, shown, when, def ? def : "(none)", names, false);
        cJSON_free(def);
        const char *one = strstr(names, "one of: ");
        if (one) {
            walk_variants(w, cfg, path, full, one + strlen("one of: "), when);
            return;
        }
    }
    snprintf(list, sizeof list, "%s", keys);
    for (char *save = NULL, *k = strtok_r(list, ", ", &save); k; k = strtok_r(NULL, ", ", &save)) {
        char full[200], shown[200], expected[400];
        join(full, sizeof full, path, k);
        display_path(full, shown, sizeof shown);
        const cJSON *child = cJSON_GetObjectItemCaseSensitive(node, k);
        if (is_fixed(w, full))
            continue;   /* its row lists its names */
        probe_expected(w, cfg, full, expected, sizeof expected);
        if (in_list(pool_sections, shown)) {
            add_row(w, shown, when, "(the top-level section)", expected, true);
            continue;
        }
        if (child && cJSON_IsObject(child)) {
            add_row(w, shown, when, "", expected, true);
            walk(w, cfg, eff, full, when);
            continue;
        }
        char *def = child ? cJSON_PrintUnformatted(child) : NULL;
        if (def && strlen(def) > 120)
            snprintf(def + 110, strlen(def) - 109, " ...");
        bool absent_obj = !child && (!strncmp(expected, "an object", 9) ||
                                     (strstr(expected, "array") && strstr(expected, "object")));
        add_row(w, shown, when, def ? def : "(none)", expected, absent_obj);
        cJSON_free(def);
        if (absent_obj)
            walk_absent(w, cfg, full, expected, when);
    }
}

int cfgdoc_collect(cfgdoc *d, sim_err *err)
{
    memset(d, 0, sizeof *d);
    walker w = {.d = d};
    cJSON *cfg = cJSON_CreateObject(), *eff = NULL;
    SIM_ASSERT(cfg != NULL);
    int rc = fill_required(&w, cfg, "", &eff);
    if (rc) {
        sim_err e2 = {{0}};
        try_config(cfg, NULL, &e2);
        sim_errf(err, "config reference: the empty config cannot be completed: %s", e2.msg);
    } else {
        walk(&w, cfg, eff, "", "");
    }
    cJSON_Delete(eff);
    cJSON_Delete(cfg);
    return rc;
}

void cfgdoc_fini(cfgdoc *d)
{
    free(d->keys);
    memset(d, 0, sizeof *d);
}

/* ---- descriptions and output ------------------------------------------------------------ */

/* The description of a key: its own, else the nearest "prefix.*". */
static const char *text_of(const char *path)
{
    for (int i = 0; texts[i].path; i++)
        if (!strcmp(texts[i].path, path))
            return texts[i].text;
    const char *best = NULL;
    size_t best_len = 0;
    for (int i = 0; texts[i].path; i++) {
        size_t n = strlen(texts[i].path);
        if (n < 2 || strcmp(texts[i].path + n - 2, ".*"))
            continue;
        if (!strncmp(path, texts[i].path, n - 1) && n > best_len) {
            best = texts[i].text;
            best_len = n;
        }
    }
    return best;
}

static bool text_used(const cfgdoc *d, const char *tpath)
{
    size_t n = strlen(tpath);
    bool star = n >= 2 && !strcmp(tpath + n - 2, ".*");
    for (int i = 0; i < d->n; i++) {
        if (!strcmp(d->keys[i].path, tpath))
            return true;
        if (star && !strncmp(d->keys[i].path, tpath, n - 1) &&
            text_of(d->keys[i].path) == text_of(tpath))
            return true;
    }
    return false;
}

int cfgdoc_check(const cfgdoc *d, char *msg, size_t size)
{
    size_t used = 0;
    int bad = 0;
    msg[0] = 0;
    for (int i = 0; i < d->n; i++)
        if (!text_of(d->keys[i].path) && bad++ < 8 && used < size)
            used += (size_t)snprintf(msg + used, size - used, "%s: no description in "
                                     "tool/config_doc.c; ", d->keys[i].path);
    for (int i = 0; texts[i].path; i++) {
        /* A "prefix.*" line must cover a key with no line of its own. */
        if (!text_used(d, texts[i].path) && bad++ < 8 && used < size)
            used += (size_t)snprintf(msg + used, size - used, "%s: described in "
                                     "tool/config_doc.c but the parser has no such key; ",
                                     texts[i].path);
    }
    return bad ? -1 : 0;
}

/* Markdown table cells: no bars, no newlines. */
static void md_cell(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", f);
        else if (*s == '\n')
            fputc(' ', f);
        else
            fputc(*s, f);
    }
}

void cfgdoc_write(FILE *f, const cfgdoc *d, bool markdown)
{
    if (markdown) {
        fputs("# servesim run-config reference\n\n"
              "Generated by `servesim help config --markdown` (`make docs/config.md`) from the "
              "config parser itself: every key the parser takes, its default (as filled into "
              "the effective config of a run of Llama-3-8B on H100-SXM-80GB; defaults marked "
              "as from the model, GPU or engine change with them) and what it accepts, in the "
              "parser's own words. Do not edit by hand: a test fails when this file differs "
              "from the parser. \"when\" names the plug-in (policy, cost model, workload "
              "source, distribution) a key belongs to.\n\n", f);
    } else {
        fputs("servesim run-config keys (every key the parser takes; docs/config.md has the "
              "same as a table).\nDefaults are those of Llama-3-8B on H100-SXM-80GB with the "
              "default engine; \"when\" names the plug-in a key belongs to.\n\n", f);
    }
    char section[64] = "";
    for (int i = 0; i < d->n; i++) {
        const cfgdoc_key *k = &d->keys[i];
        const char *text = text_of(k->path);
        if (markdown) {
            /* One table per section; the top level's scalars in one. */
            char top[64];
            size_t n = strcspn(k->path, ".[");
            bool scalar = !k->path[n] && !k->object;
            snprintf(top, sizeof top, "%.*s", scalar ? 9 : (int)n, scalar ? "top level" : k->path);
            if (strcmp(top, section)) {
                snprintf(section, sizeof section, "%s", top);
                fprintf(f, "%s## %s\n\n| key | default | accepts | meaning |\n"
                           "|---|---|---|---|\n", i ? "\n" : "", top);
            }
            fputs("| `", f);
            md_cell(f, k->path);
            fputs("` | ", f);
            if (k->def[0] && k->def[0] != '(') {
                fputc('`', f);
                md_cell(f, k->def);
                fputc('`', f);
            } else {
                md_cell(f, k->def);
            }
            fputs(" | ", f);
            md_cell(f, k->expected);
            fputs(" | ", f);
            md_cell(f, text ? text : "");
            if (k->when[0]) {
                fputs(" (when ", f);
                md_cell(f, k->when);
                fputc(')', f);
            }
            fputs(" |\n", f);
        } else {
            fprintf(f, "%s", k->path);
            if (k->def[0])
                fprintf(f, " = %s", k->def);
            if (k->when[0])
                fprintf(f, "   [when %s]", k->when);
            fprintf(f, "\n      %s\n", k->expected);
            if (text)
                fprintf(f, "      %s\n", text);
        }
    }
}
