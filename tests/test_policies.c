/* Every policy against the same invariants, on several configs: every
 * request finishes exactly once, output tokens are conserved, iterations
 * respect the token and sequence limits, KV use never exceeds capacity,
 * simulated time never goes back, and runs are deterministic. Then the
 * behaviour specific to each policy. */
#include <check.h>
#include <string.h>

#include "tests/suites.h"
#include "policies/registry.h"
#include "tests/testutil.h"

/* Config variants every policy must survive: light load, overload, KV
 * pressure (forcing preemptions), several instances, tensor parallelism. */
static const char *const variants[][7] = {
    {"workload.requests=150", NULL},
    {"workload.arrival.rate_per_s=200", "workload.requests=300", NULL},
    {"instance.gpu_memory_utilization=0.245", "instance.max_context_tokens=4096",
     "workload.arrival.rate_per_s=60", "workload.output_tokens.mean=600", NULL},
    {"cluster.instances=3", "workload.arrival.rate_per_s=40", NULL},
    {"model=\"Llama-2-70B\"", "gpu=\"A100-SXM-80GB\"", "cluster.tp=2",
     "workload.requests=80", NULL},
    {"instance.preemption=\"swap\"", "instance.gpu_memory_utilization=0.245",
     "instance.max_context_tokens=4096", "workload.arrival.rate_per_s=60",
     "workload.output_tokens.mean=600", NULL},
    {"workload.priority_classes=3", "workload.arrival.rate_per_s=80",
     "workload.ttft_slo_ms={\"dist\": \"lognormal\", \"mean\": 400, \"sigma\": 1}", NULL},
    {"model=\"Qwen3-30B-A3B\"", "cluster.tp=2", "instance.max_context_tokens=16384",
     "cost.moe_routing_skew=0.8", "workload.requests=120", NULL},
    /* A cache that holds one long prompt but not that prompt plus the KV
     * watermark: admission must not wait for room that never comes. */
    {"instance.activation_reserve_gib=55.72", "workload.requests=12",
     "workload.input_tokens={\"dist\": \"fixed\", \"value\": 8150}",
     "workload.output_tokens={\"dist\": \"fixed\", \"value\": 40}", NULL},
    /* Fewer sequences than the policies' default cohort or chunk limits. */
    {"instance.max_seqs=2", "workload.requests=60", NULL},
    /* Prefix caching on prompts that share prefixes (system prompts, turns
     * extending earlier ones), then the same under KV pressure, where
     * preempted requests find their own blocks again. */
    {"instance.prefix_caching=true",
     "workload={\"source\": \"native\", \"path\": \"tests/data/prefix_trace.csv\"}", NULL},
    {"instance.prefix_caching=true", "instance.gpu_memory_utilization=0.245",
     "instance.max_context_tokens=4096",
     "workload={\"source\": \"native\", \"path\": \"tests/data/prefix_trace.csv\", "
     "\"rate_scale\": 6}", NULL},
    /* KV pressure under the other engines' rules: whole-prompt reservation
     * with a watermark (vLLM V0), prompt-and-output checks with SGLang's
     * victim rule, and TensorRT-LLM's reservation of the whole request. */
    {"engine=\"vllm-v0\"", "instance.gpu_memory_utilization=0.245",
     "instance.max_context_tokens=4096", "workload.arrival.rate_per_s=60",
     "workload.output_tokens.mean=600", NULL},
    {"engine=\"sglang\"", "instance.gpu_memory_utilization=0.245",
     "instance.max_context_tokens=4096", "workload.arrival.rate_per_s=60",
     "workload.output_tokens.mean=600", NULL},
    {"engine=\"trtllm\"", "instance.gpu_memory_utilization=0.245",
     "instance.max_context_tokens=4096", "workload.arrival.rate_per_s=60",
     "workload.output_tokens.mean=600", NULL},
};
#define N_VARIANTS (int)(sizeof variants / sizeof variants[0])

/* Runs the base config with `sets` applied, calling fn on every iteration. */
static void run_observed(const char *const *sets, iter_observer_fn fn, void *ctx,
                         run_summary *out)
{
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    sim_err err = {{0}};
    cluster_hooks hooks = {.on_iteration = fn, .iteration_ctx = ctx};
    cluster *c = cluster_create(&cfg.sys, &hooks, &err);
    ck_assert_msg(c, "%s", err.msg);
    ck_assert_int_eq(cluster_run(c, &err), 0);
    cluster_summarize(c, out);
    cluster_destroy(c);
    run_config_fini(&cfg);
}

static void check_invariants(const char *batch, const char *order, const char *route,
                             int variant)
{
    char set_batch[128], set_order[128], set_route[128];
    snprintf(set_batch, sizeof set_batch, "policies.batch.name=\"%s\"", batch);
    snprintf(set_order, sizeof set_order, "policies.order.name=\"%s\"", order);
    snprintf(set_route, sizeof set_route, "policies.routing.name=\"%s\"", route);
    const char *const policy_sets[] = {set_batch, set_order, set_route, NULL};

    tu_run runs[2];
    for (int k = 0; k < 2; k++) {
        cJSON *root = tu_base_config();
        tu_set(root, policy_sets);
        tu_set(root, variants[variant]);
        run_config cfg;
        tu_parse(root, &cfg);
        tu_run_config(&cfg, &runs[k]);
        const tu_run *r = &runs[k];
        /* A trace's request count is what the independent replay yields. */
        const cJSON *want = cJSON_GetObjectItem(cJSON_GetObjectItem(cfg.root, "workload"),
                                                "requests");
        uint64_t n = want ? (uint64_t)want->valuedouble : r->workload_requests;
        ck_assert_uint_gt(n, 0);
        ck_assert_uint_eq(r->summary.arrived, n);
        ck_assert_uint_eq(r->summary.completed, n);
        ck_assert_uint_eq(r->n_records, n);
        for (uint64_t id = 0; id < n; id++)
            ck_assert_msg(r->seen[id] == 1, "request %llu finished %d times",
                          (unsigned long long)id, r->seen[id]);
        ck_assert_uint_eq(r->output_tokens, r->summary.output_tokens);
        /* Each request got the output length the workload asked for. */
        ck_assert_uint_eq(r->workload_requests, n);
        ck_assert_uint_eq(r->output_mismatches, 0);
        ck_assert_int_le(r->max_batch_tokens, cfg.sys.pools[0].batch.max_batched_tokens);
        ck_assert_int_le(r->max_batch_seqs, cfg.sys.pools[0].batch.max_seqs);
        ck_assert(!r->kv_over_capacity);
        ck_assert(!r->time_went_back);
        ck_assert_double_le(r->summary.kv_peak_fraction, 1.0);
        run_config_fini(&cfg);
    }
    ck_assert_uint_eq(runs[0].record_hash, runs[1].record_hash);
    ck_assert_uint_eq(runs[0].summary.iterations, runs[1].summary.iterations);
    ck_assert(runs[0].summary.energy_j == runs[1].summary.energy_j);
    tu_run_fini(&runs[0]);
    tu_run_fini(&runs[1]);
}

START_TEST(test_every_batch_policy_keeps_the_invariants)
{
    for (int b = 0; batch_policies[b]; b++)
        check_invariants(batch_policies[b]->name, "fcfs", "round_robin", _i);
}
END_TEST

START_TEST(test_every_routing_policy_keeps_the_invariants)
{
    for (int p = 0; route_policies[p]; p++)
        check_invariants("vllm_prefill_first", "fcfs", route_policies[p]->name, _i);
}
END_TEST

START_TEST(test_every_ordering_policy_keeps_the_invariants)
{
    /* With chunked prefill too, which reads the queue past its head. */
    for (int p = 0; order_policies[p]; p++) {
        check_invariants("vllm_prefill_first", order_policies[p]->name, "round_robin", _i);
        check_invariants("chunked_prefill", order_policies[p]->name, "round_robin", _i);
    }
}
END_TEST

/* ---- vllm_prefill_first ----------------------------------------------- */

typedef struct mix_count {
    int mixed, prefill_only, decode_only;
} mix_count;

static void count_mix(void *ctx, const iter_info *it)
{
    mix_count *m = ctx;
    int pre = 0, dec = 0;
    for (int32_t i = 0; i < it->n_items; i++) {
        if (req_is_decode(it->items[i].req))
            dec++;
        else
            pre++;
    }
    m->mixed += pre && dec;
    m->prefill_only += pre && !dec;
    m->decode_only += dec && !pre;
}

START_TEST(test_prefill_first_never_mixes_prefill_and_decode)
{
    mix_count m = {0};
    run_summary s;
    const char *const sets[] = {"policies.batch.name=\"vllm_prefill_first\"", NULL};
    run_observed(sets, count_mix, &m, &s);
    ck_assert_int_eq(m.mixed, 0);
    ck_assert_int_gt(m.prefill_only, 0);
    ck_assert_int_gt(m.decode_only, 0);
}
END_TEST

START_TEST(test_prefill_first_preempts_under_kv_pressure_and_still_completes)
{
    tu_run r;
    tu_run_sets(variants[2], &r);
    ck_assert_uint_gt(r.summary.preemptions, 0);
    ck_assert_uint_eq(r.summary.completed, r.summary.arrived);
    tu_run_fini(&r);
}
END_TEST

START_TEST(test_prefill_first_rejects_budget_below_context)
{
    cJSON *root = tu_base_config();
    const char *const sets[] = {"instance.max_batched_tokens=2048",
                                "policies.batch.name=\"vllm_prefill_first\"", NULL};
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    sim_err err = {{0}};
    ck_assert_ptr_null(cluster_create(&cfg.sys, NULL, &err));
    ck_assert_msg(strstr(err.msg, "$.policies.batch.params"), "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "max_batched_tokens"), "%s", err.msg);
    run_config_fini(&cfg);
}
END_TEST

/* ---- chunked and layered prefill ------------------------------------------ */

/* Per request: iterations it took part in before its first token, and
 * whether any of them was a partial (chunked or layered) step. */
typedef struct prefill_trace {
    int32_t budget_seen;      /* most tokens in one iteration */
    int32_t steps[4096];      /* by request id */
    int32_t max_layers;
    int multi_chunk;          /* some prompt took several chunks */
} prefill_trace;

static void trace_prefill(void *ctx, const iter_info *it)
{
    prefill_trace *t = ctx;
    int32_t tokens = 0;
    for (int32_t i = 0; i < it->n_items; i++) {
        const batch_item *item = &it->items[i];
        tokens += item->tokens;
        if (item->req->generated_tokens == 0 && item->req->id < 4096) {
            t->steps[item->req->id]++;
            t->multi_chunk |= item->tokens < req_pending_tokens(item->req);
        }
        if (item->layers > t->max_layers)
            t->max_layers = item->layers;
    }
    if (tokens > t->budget_seen)
        t->budget_seen = tokens;
}

static void run_traced(const char *const *sets, prefill_trace *t, run_summary *out)
{
    memset(t, 0, sizeof *t);
    run_observed(sets, trace_prefill, t, out);
}

START_TEST(test_chunked_prefill_never_exceeds_its_budget)
{
    const char *const sets[] = {"policies.batch.name=\"chunked_prefill\"",
                                "policies.batch.params.token_budget=256",
                                "policies.batch.params.max_seqs=64",
                                "workload.arrival.rate_per_s=40", NULL};
    prefill_trace t;
    run_summary s;
    run_traced(sets, &t, &s);
    ck_assert_uint_eq(s.completed, 200);
    ck_assert_int_le(t.budget_seen, 256);
    ck_assert_int_eq(t.budget_seen, 256);   /* and the budget is used */
    ck_assert(t.multi_chunk);               /* long prompts were split */
}
END_TEST

START_TEST(test_layered_prefill_first_token_after_exactly_g_iterations)
{
    const int groups[] = {1, 3, 4, 8};
    for (int g = 0; g < 4; g++) {
        char set_groups[64];
        snprintf(set_groups, sizeof set_groups, "policies.batch.params.groups=%d", groups[g]);
        const char *const sets[] = {"policies.batch.name=\"layered_prefill\"", set_groups,
                                    NULL};
        prefill_trace t;
        run_summary s;
        run_traced(sets, &t, &s);
        ck_assert_uint_eq(s.preemptions, 0);
        for (int id = 0; id < 200; id++)
            ck_assert_msg(t.steps[id] == groups[g], "G=%d: request %d took %d iterations",
                          groups[g], id, t.steps[id]);
        /* Llama-3-8B has 32 layers: the biggest group is ceil(32 / G). */
        ck_assert_int_eq(t.max_layers, groups[g] == 1 ? 32 : (32 + groups[g] - 1) / groups[g]);
    }
}
END_TEST

START_TEST(test_moe_chunked_prefill_reads_more_weights_than_layered)
{
    /* The reason layered prefill exists: each chunk of a MoE prompt loads
     * the experts again. Same workload, same model, weights read per run. */
    double weights[2], energy[2];
    const char *policy[2][2] = {{"policies.batch.name=\"chunked_prefill\"",
                                 "policies.batch.params.token_budget=256"},
                                {"policies.batch.name=\"layered_prefill\"",
                                 "policies.batch.params.groups=4"}};
    for (int k = 0; k < 2; k++) {
        const char *const sets[] = {policy[k][0], policy[k][1], "model=\"Qwen3-30B-A3B\"",
                                    "cluster.tp=2", "instance.max_context_tokens=16384",
                                    "workload.arrival.rate_per_s=2",
                                    "workload.input_tokens.mean=1500", NULL};
        prefill_trace t;
        run_summary s;
        run_traced(sets, &t, &s);
        weights[k] = s.weight_bytes;
        energy[k] = s.energy_per_out_token_j;
    }
    ck_assert_double_gt(weights[0], weights[1] * 1.05);
    ck_assert_double_gt(energy[0], energy[1]);
}
END_TEST

/* ---- ordering -------------------------------------------------------------- */

/* Checks on every iteration that the requests admitted from the queue come
 * before every request left waiting, by the ordering key. */
typedef struct order_check {
    uint64_t max_admit_seq[8];
    int violations, admissions;
} order_check;

static void check_order(void *ctx, const iter_info *it)
{
    order_check *c = ctx;
    double admitted_max = -1e300, waiting_min = 1e300;
    uint64_t seen = c->max_admit_seq[it->instance];
    for (int32_t i = 0; i < it->n_items; i++) {
        const serve_req *r = it->items[i].req;
        if (r->admit_seq > seen) {   /* admitted in this iteration */
            if (r->order_key > admitted_max)
                admitted_max = r->order_key;
            if (r->admit_seq > c->max_admit_seq[it->instance])
                c->max_admit_seq[it->instance] = r->admit_seq;
            c->admissions++;
        }
    }
    for (const sim_rb_node *n = sim_rb_first(it->waiting); n; n = sim_rb_next(n)) {
        const serve_req *r = SIM_RB_ENTRY(n, const serve_req, wait_node);
        if (r->order_key < waiting_min)
            waiting_min = r->order_key;
    }
    c->violations += admitted_max > waiting_min;
}

START_TEST(test_ordering_policy_admits_in_key_order)
{
    const order_policy_ops *op = order_policies[_i];
    char set_order[128];
    snprintf(set_order, sizeof set_order, "policies.order.name=\"%s\"", op->name);
    /* An engine that plans one iteration ahead cannot see the requests that
     * arrived during the iteration in flight: the order is checked on an
     * engine that plans at each iteration's start. */
    const char *const sets[] = {set_order, "engine.cpu_overhead.overlap=false",
                                "workload.priority_classes=3",
                                "workload.arrival.rate_per_s=150", "workload.requests=400",
                                "workload.ttft_slo_ms={\"dist\": \"lognormal\", "
                                "\"mean\": 400, \"sigma\": 1}", NULL};
    order_check c;
    memset(&c, 0, sizeof c);
    run_summary s;
    run_observed(sets, check_order, &c, &s);
    ck_assert_int_gt(c.admissions, 0);
    ck_assert_int_eq(c.violations, 0);
}
END_TEST

START_TEST(test_ordering_keys_mean_what_they_say)
{
    serve_req early = {.id = 1, .arrival_ns = 10, .input_tokens = 900, .output_tokens = 50,
                       .priority = 2, .ttft_deadline_ns = 500};
    serve_req late = {.id = 2, .arrival_ns = 20, .input_tokens = 100, .output_tokens = 400,
                      .priority = 0, .ttft_deadline_ns = 300};
    sim_err err = {{0}};
    cJSON *params = cJSON_CreateObject();
    struct { const char *name; int early_first; } cases[] = {
        {"fcfs", 1}, {"shortest_prompt", 0}, {"sjf", 1}, {"priority", 0}, {"edf", 0},
    };
    for (int i = 0; i < 5; i++) {
        const order_policy_ops *op = order_policy_find(cases[i].name, "$", &err);
        ck_assert_ptr_nonnull(op);
        void *state;
        ck_assert_int_eq(op->init(1, params, "$", &state, &err), 0);
        int early_first = op->key(state, &early) < op->key(state, &late);
        ck_assert_msg(early_first == cases[i].early_first, "%s", cases[i].name);
        if (op->destroy)
            op->destroy(state);
    }
    /* A noisy predictor with no noise is the oracle, and its draw is a
     * function of the request alone. */
    const order_policy_ops *pred = order_policy_find("sjf_predicted", "$", &err);
    cJSON *noise = cJSON_Parse("{\"error\": 0}");
    void *state;
    ck_assert_int_eq(pred->init(1, noise, "$", &state, &err), 0);
    ck_assert_double_eq_tol(pred->key(state, &early), 50, 1e-9);
    pred->destroy(state);
    cJSON_Delete(noise);
    noise = cJSON_Parse("{\"error\": 1}");
    ck_assert_int_eq(pred->init(1, noise, "$", &state, &err), 0);
    double k1 = pred->key(state, &late);
    ck_assert(pred->key(state, &late) == k1);
    ck_assert_double_ne(k1, 400);
    pred->destroy(state);
    cJSON_Delete(noise);
    cJSON_Delete(params);
}
END_TEST

/* ---- preemption ------------------------------------------------------------ */

START_TEST(test_swap_preemption_restores_exactly_what_it_swapped)
{
    const char *const sets[] = {"instance.preemption=\"swap\"",
                                "instance.gpu_memory_utilization=0.245",
                                "instance.max_context_tokens=4096",
                                "workload.arrival.rate_per_s=60",
                                "workload.output_tokens.mean=600", NULL};
    tu_run r;
    tu_run_sets(sets, &r);
    ck_assert_uint_gt(r.summary.preemptions, 0);
    ck_assert_uint_eq(r.summary.recomputed_tokens, 0);
    ck_assert_double_gt(r.summary.swap_out_bytes, 0);
    ck_assert(r.summary.swap_out_bytes == r.summary.swap_in_bytes);
    ck_assert_double_gt(r.summary.swap_time_s, 0);
    ck_assert_uint_eq(r.summary.completed, 200);
    tu_run_fini(&r);
}
END_TEST

START_TEST(test_swap_falls_back_to_recompute_when_host_memory_is_full)
{
    const char *const sets[] = {"instance.preemption=\"swap\"", "instance.host_swap_gib=0",
                                "instance.gpu_memory_utilization=0.245",
                                "instance.max_context_tokens=4096",
                                "workload.arrival.rate_per_s=60",
                                "workload.output_tokens.mean=600", NULL};
    tu_run r;
    tu_run_sets(sets, &r);
    ck_assert_uint_gt(r.summary.preemptions, 0);
    ck_assert_uint_gt(r.summary.recomputed_tokens, 0);
    ck_assert(r.summary.swap_out_bytes == 0);
    tu_run_fini(&r);
}
END_TEST

START_TEST(test_overlapped_swap_costs_no_more_than_blocking)
{
    double added[2];
    for (int k = 0; k < 2; k++) {
        const char *const sets[] = {"instance.preemption=\"swap\"",
                                    k ? "instance.swap_overlap=true" : "instance.swap_overlap=false",
                                    "instance.gpu_memory_utilization=0.245",
                                    "instance.max_context_tokens=4096",
                                    "workload.arrival.rate_per_s=60",
                                    "workload.output_tokens.mean=600", NULL};
        tu_run r;
        tu_run_sets(sets, &r);
        added[k] = r.summary.swap_time_s;
        tu_run_fini(&r);
    }
    ck_assert_double_lt(added[1], added[0]);
}
END_TEST

/* ---- scheduler semantics on hand-built states ------------------------------
 * A batch policy run once on an instance built by hand: requests in the
 * running set and the waiting queue, a KV ledger that counts blocks of 16
 * tokens, the engine's rules in the setup. Each test states the rule it
 * checks and builds the smallest state that shows it. */

#define HB_BLOCK 16
#define HB_MAX 8

typedef struct hb_kv {
    batch_kv pub;
} hb_kv;

static int64_t hb_blocks(int64_t tokens) { return (tokens + HB_BLOCK - 1) / HB_BLOCK; }

static int64_t hb_need(batch_kv *kv, const serve_req *r, int32_t tokens)
{
    (void)kv;
    int64_t need = hb_blocks((int64_t)r->computed_tokens + tokens) - r->kv_blocks;
    return need > 0 ? need : 0;
}
static void hb_take(batch_kv *kv, const serve_req *r, int32_t tokens)
{
    kv->free_blocks -= hb_need(kv, r, tokens);
    ck_assert_int_ge(kv->free_blocks, 0);
}
static int64_t hb_preempt(batch_kv *kv, const serve_req *r)
{
    kv->free_blocks += r->kv_blocks;
    return r->kv_blocks;
}
static int32_t hb_cached(batch_kv *kv, const serve_req *r) { (void)kv, (void)r; return 0; }
static int64_t hb_room(batch_kv *kv, const serve_req *r)
{
    int64_t room = ((int64_t)r->kv_blocks + kv->free_blocks) * HB_BLOCK - r->computed_tokens;
    return room > 0 ? room : 0;
}
static const batch_kv_ops hb_kv_ops = {hb_need, hb_take, hb_preempt, hb_cached, hb_room};

typedef struct hb_state {
    serve_req run[HB_MAX], wait[HB_MAX];
    const serve_req *running[HB_MAX];
    int32_t n_run, n_wait;
    sim_rb_tree queue;
    batch_setup setup;
    hb_kv kv;
    batch_item items[2 * HB_MAX];
    const serve_req *preempt[2 * HB_MAX];
    batch_plan plan;
} hb_state;

static int hb_cmp(const sim_rb_node *a, const sim_rb_node *b)
{
    const serve_req *x = SIM_RB_ENTRY(a, const serve_req, wait_node);
    const serve_req *y = SIM_RB_ENTRY(b, const serve_req, wait_node);
    return x->id < y->id ? -1 : x->id > y->id;
}

/* vLLM V1's rules by default; the test changes what it checks. */
static void hb_init(hb_state *h, int64_t free_blocks)
{
    memset(h, 0, sizeof *h);
    h->setup = (batch_setup){.max_batched_tokens = 8192, .max_seqs = 64,
                             .block_size_tokens = HB_BLOCK, .kv_total_blocks = 1000,
                             .max_context_tokens = 4096, .model_layers = 32,
                             .rules = {.reserve = BATCH_RESERVE_PROMPT,
                                       .reserve_check_only = true,
                                       .output_reserve_fraction = 1,
                                       .victim = BATCH_VICTIM_NEWEST,
                                       .admit_after_preempt = false,
                                       .token_budget = 8192}};
    h->kv.pub = (batch_kv){.ops = &hb_kv_ops, .free_blocks = free_blocks};
    sim_rb_init(&h->queue, hb_cmp);
}

/* A running request (admitted in the order added) that has computed
 * `computed` of its `input` prompt tokens and generated `generated`
 * output tokens of `output`; it holds the blocks of its computed tokens. */
static const serve_req *hb_running(hb_state *h, int32_t input, int32_t computed,
                                   int32_t generated, int32_t output)
{
    serve_req *r = &h->run[h->n_run];
    *r = (serve_req){.state = REQ_RUNNING, .id = (uint64_t)h->n_run + 100,
                     .input_tokens = input, .computed_tokens = computed,
                     .generated_tokens = generated, .output_tokens = output,
                     .admit_seq = (uint64_t)h->n_run + 1};
    r->kv_blocks = (int32_t)hb_blocks(computed);
    r->kv_cap_tokens = r->kv_blocks * HB_BLOCK;
    h->running[h->n_run++] = r;
    return r;
}

static const serve_req *hb_waiting(hb_state *h, int32_t input, int32_t output)
{
    serve_req *r = &h->wait[h->n_wait];
    *r = (serve_req){.state = REQ_WAITING, .id = (uint64_t)h->n_wait, .input_tokens = input,
                     .output_tokens = output};
    sim_rb_insert(&h->queue, &r->wait_node);
    h->n_wait++;
    return r;
}

/* Runs the policy `name` once with `params` (JSON). */
static void hb_form(hb_state *h, const char *name, const char *params)
{
    sim_err err = {{0}};
    const batch_policy_ops *op = batch_policy_find(name, "$", &err);
    ck_assert_ptr_nonnull(op);
    cJSON *p = cJSON_Parse(params ? params : "{}");
    void *state;
    ck_assert_msg(op->init(&h->setup, p, "$", &state, &err) == 0, "%s", err.msg);
    batch_view v = {.setup = &h->setup, .waiting = &h->queue, .n_waiting = h->n_wait,
                    .running = h->running, .n_running = h->n_run, .kv = &h->kv.pub};
    h->plan = (batch_plan){.items = h->items, .preempt = h->preempt};
    op->form(state, &v, &h->plan);
    if (op->destroy)
        op->destroy(state);
    cJSON_Delete(p);
}

/* The plan's item for r, or NULL. */
static const batch_item *hb_item(const hb_state *h, const serve_req *r)
{
    for (int32_t i = 0; i < h->plan.n_items; i++)
        if (h->plan.items[i].req == r)
            return &h->plan.items[i];
    return NULL;
}

START_TEST(test_victim_rule_newest_preempts_the_last_admitted)
{
    /* Three decodes, each at a block boundary, no free block: the first
     * needs one, and vLLM preempts the most recently admitted. */
    hb_state h;
    hb_init(&h, 0);
    const serve_req *a = hb_running(&h, 32, 32, 1, 50);
    const serve_req *b = hb_running(&h, 32, 32, 1, 50);
    const serve_req *c = hb_running(&h, 32, 32, 1, 50);
    hb_form(&h, "chunked_prefill", NULL);
    ck_assert_int_eq(h.plan.n_preempt, 1);
    ck_assert_ptr_eq(h.plan.preempt[0], c);
    /* c's two blocks let a and b grow by one each. */
    ck_assert_ptr_nonnull(hb_item(&h, a));
    ck_assert_ptr_nonnull(hb_item(&h, b));
}
END_TEST

START_TEST(test_victim_rule_fewest_outputs_preempts_the_least_generated)
{
    /* SGLang's retraction: the fewest output tokens first, ties to the
     * longest prompt. b has generated least; it goes, even though c is
     * newer. */
    hb_state h;
    hb_init(&h, 0);
    h.setup.rules.victim = BATCH_VICTIM_FEWEST_OUTPUTS;
    const serve_req *a = hb_running(&h, 28, 32, 5, 50);
    const serve_req *b = hb_running(&h, 32, 32, 1, 50);
    const serve_req *c = hb_running(&h, 24, 32, 9, 50);
    hb_form(&h, "chunked_prefill", NULL);
    ck_assert_int_eq(h.plan.n_preempt, 1);
    ck_assert_ptr_eq(h.plan.preempt[0], b);
    ck_assert_ptr_nonnull(hb_item(&h, a));
    ck_assert_ptr_nonnull(hb_item(&h, c));
    /* Ties on outputs go to the longest prompt. */
    hb_init(&h, 0);
    h.setup.rules.victim = BATCH_VICTIM_FEWEST_OUTPUTS;
    hb_running(&h, 32, 32, 1, 50);
    const serve_req *longer = hb_running(&h, 48, 48, 1, 50);
    hb_running(&h, 32, 32, 1, 50);
    hb_form(&h, "chunked_prefill", NULL);
    ck_assert_ptr_eq(h.plan.preempt[0], longer);
}
END_TEST

START_TEST(test_decodes_go_before_prefill_chunks)
{
    /* A partly prefilled prompt admitted first and two decodes: with a
     * budget of 8 tokens, both decodes get their token first and the prompt
     * the 6 left. */
    hb_state h;
    hb_init(&h, 100);
    const serve_req *p = hb_running(&h, 100, 32, 0, 10);
    const serve_req *d1 = hb_running(&h, 20, 20, 1, 10);
    const serve_req *d2 = hb_running(&h, 20, 20, 1, 10);
    hb_form(&h, "chunked_prefill", "{\"token_budget\": 8}");
    ck_assert_int_eq(h.plan.n_items, 3);
    ck_assert_ptr_eq(h.plan.items[0].req, d1);
    ck_assert_ptr_eq(h.plan.items[1].req, d2);
    ck_assert_ptr_eq(h.plan.items[2].req, p);
    ck_assert_int_eq(h.plan.items[2].tokens, 6);
}
END_TEST

START_TEST(test_partial_prefills_continue_before_new_prompts)
{
    /* A prompt with 10 tokens left and a waiting prompt of 10: a budget of
     * 12 finishes the running one and gives the new one the 2 left. */
    hb_state h;
    hb_init(&h, 100);
    h.setup.rules.reserve = BATCH_RESERVE_CHUNK;
    const serve_req *p = hb_running(&h, 42, 32, 0, 10);
    const serve_req *w = hb_waiting(&h, 10, 10);
    hb_form(&h, "chunked_prefill", "{\"token_budget\": 12}");
    ck_assert_int_eq(h.plan.n_items, 2);
    ck_assert_ptr_eq(h.plan.items[0].req, p);
    ck_assert_int_eq(h.plan.items[0].tokens, 10);
    ck_assert_ptr_eq(h.plan.items[1].req, w);
    ck_assert_int_eq(h.plan.items[1].tokens, 2);
}
END_TEST

START_TEST(test_v1_iteration_that_preempted_admits_nothing)
{
    /* A decode needs a block, none is free: the newest running request is
     * preempted, which frees 3 blocks, enough for a small waiting prompt.
     * vLLM V1 admits nothing in that iteration; V0 does. */
    for (int after = 0; after <= 1; after++) {
        hb_state h;
        hb_init(&h, 0);
        h.setup.rules.admit_after_preempt = after;
        const serve_req *d = hb_running(&h, 32, 32, 1, 50);
        hb_running(&h, 40, 40, 1, 50);   /* 3 blocks, room for its next token */
        const serve_req *w = hb_waiting(&h, 10, 5);
        hb_form(&h, "chunked_prefill", NULL);
        ck_assert_int_eq(h.plan.n_preempt, 1);
        ck_assert_ptr_nonnull(hb_item(&h, d));
        if (after)
            ck_assert_ptr_nonnull(hb_item(&h, w));
        else
            ck_assert_ptr_null(hb_item(&h, w));
    }
}
END_TEST

START_TEST(test_admission_reserves_what_the_engine_reserves)
{
    /* A waiting prompt of 100 tokens (7 blocks) and a budget of 32: its
     * first chunk takes 2 blocks. */
    struct {
        batch_reserve reserve;
        bool check_only;
        int64_t free;       /* blocks free before */
        bool admitted;
        int32_t reserve0;   /* the item's reservation (0: its tokens) */
        int64_t free_after;
    } cases[] = {
        /* servesim's old rule: the first chunk only, even without room for
         * the rest of the prompt. */
        {BATCH_RESERVE_CHUNK, false, 7, true, 0, 5},
        {BATCH_RESERVE_CHUNK, false, 6, true, 0, 4},
        /* vLLM V0, Sarathi-Serve: the whole prompt is allocated. */
        {BATCH_RESERVE_PROMPT, false, 7, true, 100, 0},
        {BATCH_RESERVE_PROMPT, false, 6, false, 0, 6},
        /* vLLM V1: the whole prompt must fit; only the chunk is taken. */
        {BATCH_RESERVE_PROMPT, true, 7, true, 0, 5},
        {BATCH_RESERVE_PROMPT, true, 6, false, 0, 6},
    };
    for (int k = 0; k < 6; k++) {
        hb_state h;
        hb_init(&h, cases[k].free);
        h.setup.rules.reserve = cases[k].reserve;
        h.setup.rules.reserve_check_only = cases[k].check_only;
        const serve_req *w = hb_waiting(&h, 100, 20);
        hb_form(&h, "chunked_prefill", "{\"token_budget\": 32}");
        ck_assert_int_eq(h.plan.n_items, cases[k].admitted);
        if (cases[k].admitted) {
            ck_assert_ptr_eq(h.plan.items[0].req, w);
            ck_assert_int_eq(h.plan.items[0].tokens, 32);
            ck_assert_int_eq(h.plan.items[0].reserve, cases[k].reserve0);
        }
        ck_assert_int_eq(h.kv.pub.free_blocks, cases[k].free_after);
    }
}
END_TEST

START_TEST(test_request_reservation_holds_the_output_too)
{
    /* TensorRT-LLM's GUARANTEED_NO_EVICT: the prompt plus the output left
     * (the last token is never fed back): 30 + 19 = 49 tokens, 4 blocks. */
    hb_state h;
    hb_init(&h, 4);
    h.setup.rules.reserve = BATCH_RESERVE_REQUEST;
    h.setup.rules.reserve_check_only = false;
    const serve_req *w = hb_waiting(&h, 30, 20);
    hb_waiting(&h, 1, 2);
    hb_form(&h, "vllm_prefill_first", NULL);
    ck_assert_int_eq(h.plan.n_items, 1);
    ck_assert_ptr_eq(h.plan.items[0].req, w);
    ck_assert_int_eq(h.plan.items[0].tokens, 30);
    ck_assert_int_eq(h.plan.items[0].reserve, 49);
    ck_assert_int_eq(h.kv.pub.free_blocks, 0);
    /* With half of the output, 30 + 10 = 40 tokens: 3 blocks, and the
     * second request (1 + 1 tokens, 1 block) fits too. */
    hb_init(&h, 4);
    h.setup.rules.reserve = BATCH_RESERVE_REQUEST;
    h.setup.rules.reserve_check_only = false;
    h.setup.rules.output_reserve_fraction = 0.5;
    hb_waiting(&h, 30, 20);
    hb_waiting(&h, 1, 2);
    hb_form(&h, "vllm_prefill_first", NULL);
    ck_assert_int_eq(h.plan.n_items, 2);
    ck_assert_int_eq(h.plan.items[0].reserve, 40);
}
END_TEST

/* ---- routing ------------------------------------------------------------ */

START_TEST(test_round_robin_cycles_through_instances)
{
    void *state;
    sim_err err = {{0}};
    cJSON *params = cJSON_CreateObject();
    route_setup rs = {0};
    ck_assert_int_eq(route_policy_find("round_robin", "$", &err)->init(&rs, params, "$", &state,
                                                                        &err), 0);
    inst_view load[5] = {{0}};
    const int32_t candidates[3] = {0, 2, 4};   /* the pool's active instances */
    route_view v = {.inst = load, .n_instances = 5, .candidates = candidates,
                    .n_candidates = 3};
    serve_req r = {0};
    const route_policy_ops *rr = route_policy_find("round_robin", "$", &err);
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(rr->route(state, &v, &r), candidates[i % 3]);
    rr->destroy(state);
    cJSON_Delete(params);
}
END_TEST

START_TEST(test_least_outstanding_tokens_picks_the_least_loaded_lowest_index)
{
    sim_err err = {{0}};
    const route_policy_ops *lot = route_policy_find("least_outstanding_tokens", "$", &err);
    ck_assert_ptr_nonnull(lot);
    void *state;
    cJSON *params = cJSON_CreateObject();
    route_setup rs = {0};
    ck_assert_int_eq(lot->init(&rs, params, "$", &state, &err), 0);
    inst_view load[5] = {{.outstanding_tokens = 500}, {.outstanding_tokens = 20},
                         {.outstanding_tokens = 900}, {.outstanding_tokens = 20},
                         {.outstanding_tokens = 1}};
    const int32_t candidates[4] = {0, 1, 2, 3};   /* instance 4 is not in the pool */
    route_view v = {.inst = load, .n_instances = 5, .candidates = candidates,
                    .n_candidates = 4};
    serve_req r = {0};
    ck_assert_int_eq(lot->route(state, &v, &r), 1);
    load[1].outstanding_tokens = 21;
    ck_assert_int_eq(lot->route(state, &v, &r), 3);
    cJSON_Delete(params);
}
END_TEST

START_TEST(test_least_outstanding_tokens_queues_less_than_round_robin)
{
    /* Skewed lengths on 4 instances: load-aware routing should cut the tail of
     * the queueing delay, which is what it balances. */
    double p99[2];
    const char *names[2] = {"round_robin", "least_outstanding_tokens"};
    for (int k = 0; k < 2; k++) {
        char set_route[128];
        snprintf(set_route, sizeof set_route, "policies.routing.name=\"%s\"", names[k]);
        const char *const sets[] = {set_route, "cluster.instances=4", "workload.requests=1500",
                                    "workload.arrival.rate_per_s=45",
                                    "workload.input_tokens.sigma=1.2",
                                    "workload.output_tokens.sigma=1.5", NULL};
        tu_run r;
        tu_run_sets(sets, &r);
        p99[k] = r.summary.queue_s.p99;
        tu_run_fini(&r);
    }
    ck_assert_double_lt(p99[1], p99[0]);
}
END_TEST

START_TEST(test_unknown_policy_name_lists_valid_ones)
{
    cJSON *root = tu_base_config();
    const char *const sets[] = {"policies.routing.name=\"random\"", NULL};
    tu_set(root, sets);
    run_config cfg;
    sim_err err = {{0}};
    ck_assert_int_eq(run_config_parse(root, &cfg, &err), -1);
    ck_assert_msg(strstr(err.msg, "$.policies.routing.name"), "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "round_robin, least_outstanding_tokens"), "%s", err.msg);
}
END_TEST

Suite *policies_suite(void)
{
    Suite *s = suite_create("policies");
    TCase *inv = tcase_create("invariants");
    tcase_set_timeout(inv, 300);
    tcase_add_loop_test(inv, test_every_batch_policy_keeps_the_invariants, 0, N_VARIANTS);
    tcase_add_loop_test(inv, test_every_routing_policy_keeps_the_invariants, 0, N_VARIANTS);
    tcase_add_loop_test(inv, test_every_ordering_policy_keeps_the_invariants, 0, N_VARIANTS);
    suite_add_tcase(s, inv);
    TCase *batch = tcase_create("batch");
    tcase_set_timeout(batch, 60);
    tcase_add_test(batch, test_prefill_first_never_mixes_prefill_and_decode);
    tcase_add_test(batch, test_prefill_first_preempts_under_kv_pressure_and_still_completes);
    tcase_add_test(batch, test_prefill_first_rejects_budget_below_context);
    suite_add_tcase(s, batch);
    TCase *prefill = tcase_create("prefill");
    tcase_set_timeout(prefill, 120);
    tcase_add_test(prefill, test_chunked_prefill_never_exceeds_its_budget);
    tcase_add_test(prefill, test_layered_prefill_first_token_after_exactly_g_iterations);
    tcase_add_test(prefill, test_moe_chunked_prefill_reads_more_weights_than_layered);
    suite_add_tcase(s, prefill);
    TCase *order = tcase_create("ordering");
    tcase_set_timeout(order, 120);
    int n_order = 0;
    while (order_policies[n_order])
        n_order++;
    tcase_add_loop_test(order, test_ordering_policy_admits_in_key_order, 0, n_order);
    tcase_add_test(order, test_ordering_keys_mean_what_they_say);
    suite_add_tcase(s, order);
    TCase *preempt = tcase_create("preemption");
    tcase_set_timeout(preempt, 120);
    tcase_add_test(preempt, test_swap_preemption_restores_exactly_what_it_swapped);
    tcase_add_test(preempt, test_swap_falls_back_to_recompute_when_host_memory_is_full);
    tcase_add_test(preempt, test_overlapped_swap_costs_no_more_than_blocking);
    suite_add_tcase(s, preempt);
    TCase *sem = tcase_create("semantics");
    tcase_set_timeout(sem, 60);
    tcase_add_test(sem, test_victim_rule_newest_preempts_the_last_admitted);
    tcase_add_test(sem, test_victim_rule_fewest_outputs_preempts_the_least_generated);
    tcase_add_test(sem, test_decodes_go_before_prefill_chunks);
    tcase_add_test(sem, test_partial_prefills_continue_before_new_prompts);
    tcase_add_test(sem, test_v1_iteration_that_preempted_admits_nothing);
    tcase_add_test(sem, test_admission_reserves_what_the_engine_reserves);
    tcase_add_test(sem, test_request_reservation_holds_the_output_too);
    suite_add_tcase(s, sem);
    TCase *route = tcase_create("routing");
    tcase_set_timeout(route, 60);
    tcase_add_test(route, test_round_robin_cycles_through_instances);
    tcase_add_test(route, test_least_outstanding_tokens_picks_the_least_loaded_lowest_index);
    tcase_add_test(route, test_least_outstanding_tokens_queues_less_than_round_robin);
    tcase_add_test(route, test_unknown_policy_name_lists_valid_ones);
    suite_add_tcase(s, route);
    return s;
}
