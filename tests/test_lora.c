/* Multi-LoRA serving, first slice (serve/lora.c): the adapter limit per
 * batch, slots and host cache, adapter sizes, popularity draws,
 * determinism, configuration errors. */
#include <math.h>
#include <string.h>

#include "serve/lora.h"
#include "tests/suites.h"
#include "tests/testutil.h"

#define LORA_SET(slots, cpu) \
    "instance.lora={\"adapters\": 40, \"max_loras\": " #slots ", \"max_cpu_loras\": " #cpu "}"

/* Distinct adapters of every iteration's items, checked against the limit. */
typedef struct batch_check {
    lora *l;
    int32_t limit, max_seen;
    uint64_t iterations;
    int32_t seen[64];
} batch_check;

static void on_iteration(void *ctx, const iter_info *it)
{
    batch_check *b = ctx;
    int32_t n = 0;
    for (int32_t i = 0; i < it->n_items; i++) {
        int32_t a = lora_adapter(b->l, it->items[i].req->id), j;
        for (j = 0; j < n && b->seen[j] != a; j++)
            ;
        if (j == n) {
            ck_assert_int_lt(n, 64);
            b->seen[n++] = a;
        }
    }
    if (n > b->max_seen)
        b->max_seen = n;
    b->iterations++;
}

static void run_checked(const char *const *sets, batch_check *b, run_summary *sum)
{
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    pool_setup *p = &cfg.sys.pools[0];
    cost_setup cs = {.model = &p->model, .gpu = &p->gpu, .par = p->par};
    sim_err err = {{0}};
    cost_model *cm = cost_model_create("roofline", &cs, NULL, "$.cost", &err);
    ck_assert_msg(cm, "%s", err.msg);
    *b = (batch_check){.l = lora_create(&p->lora, &p->gpu, cm, cfg.sys.seed),
                       .limit = p->lora.max_loras};
    cluster_hooks hooks = {.on_iteration = on_iteration, .iteration_ctx = b};
    cluster *c = cluster_create(&cfg.sys, &hooks, &err);
    ck_assert_msg(c, "%s", err.msg);
    ck_assert_msg(!cluster_run(c, &err), "%s", err.msg);
    cluster_summarize(c, sum);
    cluster_destroy(c);
    lora_destroy(b->l);
    cost_model_destroy(cm);
    run_config_fini(&cfg);
}

/* A batch never holds more adapters than max_loras, under chunked prefill
 * (the engine's default) and prefill-first; the limit is reached, waiting
 * requests are held back, every request completes. */
START_TEST(test_lora_batch_within_max_loras)
{
    const char *policies[] = {"policies.batch.name=chunked_prefill",
                              "policies.batch.name=vllm_prefill_first"};
    for (int k = 0; k < 2; k++) {
        const char *sets[] = {LORA_SET(3, 8), policies[k], "workload.arrival.rate_per_s=20",
                              NULL};
        batch_check b;
        run_summary s;
        run_checked(sets, &b, &s);
        ck_assert_int_le(b.max_seen, 3);
        ck_assert_int_eq(b.max_seen, 3);
        ck_assert_uint_eq(s.completed, 200);
        ck_assert_uint_gt(s.lora_skipped, 0);
        ck_assert_double_le(s.lora_adapters_per_batch, 3.0);
        ck_assert_uint_gt(s.lora_evictions, 0);   /* slots were reused, never one in use */
    }
}
END_TEST

/* More GPU slots: fewer loads and evictions, a higher hit ratio, no lower
 * throughput. A host cache holding every adapter loads each from storage
 * once. */
START_TEST(test_lora_slots_and_host_cache)
{
    tu_run few, many;
    const char *a[] = {LORA_SET(2, 40), "workload.arrival.rate_per_s=20", NULL};
    const char *b[] = {LORA_SET(16, 40), "workload.arrival.rate_per_s=20", NULL};
    tu_run_sets(a, &few);
    tu_run_sets(b, &many);
    ck_assert_uint_eq(few.output_mismatches, 0);
    ck_assert_uint_eq(many.output_mismatches, 0);
    ck_assert_uint_gt(few.summary.lora_loads, many.summary.lora_loads);
    ck_assert_double_lt(few.summary.lora_gpu_hit_ratio, many.summary.lora_gpu_hit_ratio);
    ck_assert_double_le(few.summary.throughput_tok_s, many.summary.throughput_tok_s);
    ck_assert_uint_le(many.summary.lora_storage_loads, 40);
    ck_assert_uint_eq(few.summary.lora_storage_loads, many.summary.lora_storage_loads);
    ck_assert_double_gt(many.summary.lora_op_time_s, 0);
    tu_run_fini(&few);
    tu_run_fini(&many);
}
END_TEST

START_TEST(test_lora_deterministic_and_off_by_default)
{
    tu_run a, b, off;
    const char *sets[] = {LORA_SET(4, 8), NULL};
    tu_run_sets(sets, &a);
    tu_run_sets(sets, &b);
    tu_run_sets(NULL, &off);
    ck_assert_uint_eq(a.record_hash, b.record_hash);
    ck_assert_uint_ne(a.record_hash, off.record_hash);
    ck_assert_uint_eq(off.summary.lora_loads, 0);
    ck_assert_double_eq(off.summary.lora_adapters_per_batch, 0);
    tu_run_fini(&a);
    tu_run_fini(&b);
    tu_run_fini(&off);
}
END_TEST

/* Adapter popularity is Zipf(s): frequencies match i^-s / H within
 * sampling error; sizes follow r x sum(d_in + d_out) x layers x 2 bytes. */
START_TEST(test_lora_popularity_and_sizes)
{
    cJSON *root = tu_base_config();
    const char *sets[] = {"instance.lora={\"adapters\": 8, \"popularity_zipf\": 1.2, "
                          "\"rank\": 16}", NULL};
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    pool_setup *p = &cfg.sys.pools[0];
    /* Llama-3-8B, every linear module: 5.24 MB per unit of rank. */
    ck_assert_double_eq_tol(p->lora.bytes_per_gpu, 16 * 81920.0 * 32 * 2, 1);
    cost_setup cs = {.model = &p->model, .gpu = &p->gpu, .par = p->par};
    sim_err err = {{0}};
    cost_model *cm = cost_model_create("roofline", &cs, NULL, "$.cost", &err);
    lora *l = lora_create(&p->lora, &p->gpu, cm, 11);
    const int n = 50000;
    int count[8] = {0};
    for (int i = 0; i < n; i++)
        count[lora_adapter(l, (uint64_t)i)]++;
    double h = 0;
    for (int i = 1; i <= 8; i++)
        h += pow(i, -1.2);
    for (int i = 0; i < 8; i++) {
        double pr = pow(i + 1, -1.2) / h, got = (double)count[i] / n;
        ck_assert_msg(fabs(got - pr) <= 4 * sqrt(pr * (1 - pr) / n), "adapter %d: %g vs %g", i,
                      got, pr);
    }
    ck_assert_int_eq(lora_adapter(l, 123), lora_adapter(l, 123));
    lora_destroy(l);
    cost_model_destroy(cm);
    run_config_fini(&cfg);
}
END_TEST

/* LoRA-affinity routing sends requests where their adapter is resident:
 * on four instances it loads fewer adapters and hits the GPU slots more
 * often than round robin; without LoRA it routes by load alone. */
START_TEST(test_lora_affinity_routing_loads_less)
{
    tu_run rr, aff;
    const char *a[] = {LORA_SET(4, 40), "cluster.instances=4", "workload.arrival.rate_per_s=40",
                       "policies.routing.name=round_robin", NULL};
    const char *b[] = {LORA_SET(4, 40), "cluster.instances=4", "workload.arrival.rate_per_s=40",
                       "policies.routing.name=lora_affinity", NULL};
    tu_run_sets(a, &rr);
    tu_run_sets(b, &aff);
    ck_assert_uint_eq(aff.output_mismatches, 0);
    ck_assert_uint_eq(aff.summary.completed, 200);
    ck_assert_uint_lt(aff.summary.lora_loads, rr.summary.lora_loads);
    ck_assert_double_gt(aff.summary.lora_gpu_hit_ratio, rr.summary.lora_gpu_hit_ratio);
    tu_run_fini(&rr);
    tu_run_fini(&aff);
}
END_TEST

/* Mixed ranks: kernels padded to the largest rank cost more than unpadded
 * ones; with one rank the two are the same. */
START_TEST(test_lora_padding_to_max_rank_costs_more)
{
    tu_run pad, nopad, one_pad, one_nopad;
    const char *a[] = {"instance.lora={\"adapters\": 16, \"max_loras\": 16, "
                       "\"ranks\": [8, 64], \"padded\": true}", NULL};
    const char *b[] = {"instance.lora={\"adapters\": 16, \"max_loras\": 16, "
                       "\"ranks\": [8, 64], \"padded\": false}", NULL};
    const char *c[] = {"instance.lora={\"adapters\": 16, \"max_loras\": 16, "
                       "\"rank\": 32, \"padded\": true}", NULL};
    const char *d[] = {"instance.lora={\"adapters\": 16, \"max_loras\": 16, "
                       "\"rank\": 32, \"padded\": false}", NULL};
    tu_run_sets(a, &pad);
    tu_run_sets(b, &nopad);
    tu_run_sets(c, &one_pad);
    tu_run_sets(d, &one_nopad);
    ck_assert_double_gt(pad.summary.lora_op_time_s, nopad.summary.lora_op_time_s * 1.2);
    ck_assert_uint_eq(one_pad.record_hash, one_nopad.record_hash);
    tu_run_fini(&pad);
    tu_run_fini(&nopad);
    tu_run_fini(&one_pad);
    tu_run_fini(&one_nopad);
}
END_TEST

/* A request whose first iteration waits for its adapter's load is cold:
 * some are, not all, and they wait longer for their first token. */
START_TEST(test_lora_cold_requests_wait_longer)
{
    tu_run r;
    const char *sets[] = {"instance.lora={\"adapters\": 200, \"max_loras\": 16, "
                          "\"max_cpu_loras\": 16, \"storage_latency_ms\": 20}", NULL};
    tu_run_sets(sets, &r);
    const run_summary *s = &r.summary;
    ck_assert_uint_gt(s->lora_cold_requests, 0);
    ck_assert_uint_lt(s->lora_cold_requests, s->completed);
    ck_assert_double_gt(s->lora_ttft_cold_s, s->lora_ttft_warm_s);
    tu_run_fini(&r);
}
END_TEST

static void expect_error(const char *set, const char *needle)
{
    cJSON *root = tu_base_config();
    const char *sets[] = {set, NULL};
    tu_set(root, sets);
    run_config cfg;
    sim_err err = {{0}};
    ck_assert_msg(run_config_parse(root, &cfg, &err) != 0, "%s: accepted", set);
    ck_assert_msg(strstr(err.msg, needle), "message \"%s\" lacks \"%s\"", err.msg, needle);
}

START_TEST(test_lora_config_errors)
{
    expect_error("instance.lora={\"max_loras\": 2}", "$.instance.lora.adapters");
    expect_error("instance.lora={\"adapters\": 4, \"modules\": \"ffn\"}",
                 "$.instance.lora.modules: expected one of: all, attention");
    expect_error("instance.lora={\"adapters\": 4, \"max_loras\": 4, \"max_cpu_loras\": 2}",
                 "$.instance.lora.max_cpu_loras");
    expect_error("instance.lora={\"adapters\": 4, \"ranks\": 8}", "$.instance.lora");
    expect_error("instance.lora=4", "$.instance.lora: expected an object");
    expect_error("instance.lora={\"adapters\": 4, \"rank\": 8, \"ranks\": [8, 16]}",
                 "give \"rank\" or \"ranks\", not both");
    expect_error("instance.lora={\"adapters\": 4, \"ranks\": [8, 0]}",
                 "$.instance.lora.ranks[1]: expected an integer in [1, 1024]");
}
END_TEST

Suite *lora_suite(void)
{
    Suite *s = suite_create("lora");
    TCase *tc = tcase_create("lora");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_lora_batch_within_max_loras);
    tcase_add_test(tc, test_lora_slots_and_host_cache);
    tcase_add_test(tc, test_lora_deterministic_and_off_by_default);
    tcase_add_test(tc, test_lora_popularity_and_sizes);
    tcase_add_test(tc, test_lora_config_errors);
    tcase_add_test(tc, test_lora_affinity_routing_loads_less);
    tcase_add_test(tc, test_lora_padding_to_max_rank_costs_more);
    tcase_add_test(tc, test_lora_cold_requests_wait_longer);
    suite_add_tcase(s, tc);
    return s;
}
