/* Every policy against the same invariants, on several configs: every
 * request finishes exactly once, output tokens are conserved, iterations
 * respect the token and sequence limits, KV use never exceeds capacity,
 * simulated time never goes back, and runs are deterministic. Then the
 * behaviour specific to each policy. */
#include <check.h>
#include <string.h>

#include "tests/suites.h"
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
};
#define N_VARIANTS (int)(sizeof variants / sizeof variants[0])

static void check_invariants(const char *batch, const char *route, int variant)
{
    char set_batch[128], set_route[128];
    snprintf(set_batch, sizeof set_batch, "policies.batch.name=\"%s\"", batch);
    snprintf(set_route, sizeof set_route, "policies.routing.name=\"%s\"", route);
    const char *const policy_sets[] = {set_batch, set_route, NULL};

    tu_run runs[2];
    for (int k = 0; k < 2; k++) {
        cJSON *root = tu_base_config();
        tu_set(root, policy_sets);
        tu_set(root, variants[variant]);
        run_config cfg;
        tu_parse(root, &cfg);
        tu_run_config(&cfg, &runs[k]);
        const tu_run *r = &runs[k];
        uint64_t n = (uint64_t)cJSON_GetObjectItem(cJSON_GetObjectItem(cfg.root, "workload"),
                                                    "requests")->valuedouble;
        ck_assert_uint_eq(r->summary.arrived, n);
        ck_assert_uint_eq(r->summary.completed, n);
        ck_assert_uint_eq(r->n_records, n);
        for (uint64_t id = 0; id < n; id++)
            ck_assert_msg(r->seen[id] == 1, "request %llu finished %d times",
                          (unsigned long long)id, r->seen[id]);
        ck_assert_uint_eq(r->output_tokens, r->summary.output_tokens);
        ck_assert_int_le(r->max_batch_tokens, cfg.batch.max_batched_tokens);
        ck_assert_int_le(r->max_batch_seqs, cfg.batch.max_seqs);
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
        check_invariants(batch_policies[b]->name, "round_robin", _i);
}
END_TEST

START_TEST(test_every_routing_policy_keeps_the_invariants)
{
    for (int p = 0; route_policies[p]; p++)
        check_invariants("vllm_prefill_first", route_policies[p]->name, _i);
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
    run_config cfg;
    tu_parse(tu_base_config(), &cfg);
    mix_count m = {0};
    sim_err err = {{0}};
    cluster_hooks hooks = {.on_iteration = count_mix, .iteration_ctx = &m};
    cluster *c = cluster_create(&cfg, &hooks, &err);
    ck_assert_msg(c, "%s", err.msg);
    ck_assert_int_eq(cluster_run(c, &err), 0);
    ck_assert_int_eq(m.mixed, 0);
    ck_assert_int_gt(m.prefill_only, 0);
    ck_assert_int_gt(m.decode_only, 0);
    cluster_destroy(c);
    run_config_fini(&cfg);
}
END_TEST

START_TEST(test_prefill_first_preempts_under_kv_pressure_and_still_completes)
{
    cJSON *root = tu_base_config();
    tu_set(root, variants[2]);
    run_config cfg;
    tu_parse(root, &cfg);
    tu_run r;
    tu_run_config(&cfg, &r);
    ck_assert_uint_gt(r.summary.preemptions, 0);
    ck_assert_uint_eq(r.summary.completed, r.summary.arrived);
    tu_run_fini(&r);
    run_config_fini(&cfg);
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
    ck_assert_ptr_null(cluster_create(&cfg, NULL, &err));
    ck_assert_msg(strstr(err.msg, "$.policies.batch.params"), "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "max_batched_tokens"), "%s", err.msg);
    run_config_fini(&cfg);
}
END_TEST

/* ---- routing ------------------------------------------------------------ */

START_TEST(test_round_robin_cycles_through_instances)
{
    void *state;
    sim_err err = {{0}};
    cJSON *params = cJSON_CreateObject();
    ck_assert_int_eq(route_policy_find("round_robin", "$", &err)->init(3, params, "$", &state, &err), 0);
    inst_load load[3] = {{0}};
    route_view v = {0, load, 3};
    serve_req r = {0};
    const route_policy_ops *rr = route_policy_find("round_robin", "$", &err);
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(rr->route(state, &v, &r), i % 3);
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
    ck_assert_int_eq(lot->init(4, params, "$", &state, &err), 0);
    inst_load load[4] = {{.outstanding_tokens = 500}, {.outstanding_tokens = 20},
                         {.outstanding_tokens = 900}, {.outstanding_tokens = 20}};
    route_view v = {0, load, 4};
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
        cJSON *root = tu_base_config();
        char set_route[128];
        snprintf(set_route, sizeof set_route, "policies.routing.name=\"%s\"", names[k]);
        const char *const sets[] = {set_route, "cluster.instances=4", "workload.requests=1500",
                                    "workload.arrival.rate_per_s=45",
                                    "workload.input_tokens.sigma=1.2",
                                    "workload.output_tokens.sigma=1.5", NULL};
        tu_set(root, sets);
        run_config cfg;
        tu_parse(root, &cfg);
        tu_run r;
        tu_run_config(&cfg, &r);
        p99[k] = r.summary.queue_s.p99;
        tu_run_fini(&r);
        run_config_fini(&cfg);
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
    tcase_set_timeout(inv, 120);
    tcase_add_loop_test(inv, test_every_batch_policy_keeps_the_invariants, 0, N_VARIANTS);
    tcase_add_loop_test(inv, test_every_routing_policy_keeps_the_invariants, 0, N_VARIANTS);
    suite_add_tcase(s, inv);
    TCase *batch = tcase_create("batch");
    tcase_set_timeout(batch, 60);
    tcase_add_test(batch, test_prefill_first_never_mixes_prefill_and_decode);
    tcase_add_test(batch, test_prefill_first_preempts_under_kv_pressure_and_still_completes);
    tcase_add_test(batch, test_prefill_first_rejects_budget_below_context);
    suite_add_tcase(s, batch);
    TCase *route = tcase_create("routing");
    tcase_set_timeout(route, 60);
    tcase_add_test(route, test_round_robin_cycles_through_instances);
    tcase_add_test(route, test_least_outstanding_tokens_picks_the_least_loaded_lowest_index);
    tcase_add_test(route, test_least_outstanding_tokens_queues_less_than_round_robin);
    tcase_add_test(route, test_unknown_policy_name_lists_valid_ones);
    suite_add_tcase(s, route);
    return s;
}
