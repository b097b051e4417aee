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
static const char *const variants[][6] = {
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
    run_observed(NULL, count_mix, &m, &s);
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
    const char *const sets[] = {"instance.max_batched_tokens=2048", NULL};
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
    const char *const sets[] = {set_order, "workload.priority_classes=3",
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
    TCase *route = tcase_create("routing");
    tcase_set_timeout(route, 60);
    tcase_add_test(route, test_round_robin_cycles_through_instances);
    tcase_add_test(route, test_least_outstanding_tokens_picks_the_least_loaded_lowest_index);
    tcase_add_test(route, test_least_outstanding_tokens_queues_less_than_round_robin);
    tcase_add_test(route, test_unknown_policy_name_lists_valid_ones);
    suite_add_tcase(s, route);
    return s;
}
