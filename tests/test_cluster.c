/* End-to-end runs of the serving cluster: conservation, determinism,
 * metric sanity, energy accounting. */
#include <check.h>
#include <string.h>

#include "tests/suites.h"
#include "tests/testutil.h"

START_TEST(test_every_request_finishes_exactly_once)
{
    tu_run r;
    tu_run_sets(NULL, &r);
    ck_assert_uint_eq(r.summary.completed, 200);
    ck_assert_uint_eq(r.n_records, 200);
    for (int id = 0; id < 200; id++)
        ck_assert_int_eq(r.seen[id], 1);
    tu_run_fini(&r);
}
END_TEST

START_TEST(test_same_seed_is_bit_identical_other_seed_differs)
{
    tu_run a, b, c;
    const char *const other[] = {"seed=8", NULL};
    tu_run_sets(NULL, &a);
    tu_run_sets(NULL, &b);
    tu_run_sets(other, &c);
    ck_assert_uint_eq(a.record_hash, b.record_hash);
    ck_assert(memcmp(&a.summary, &b.summary, sizeof a.summary) == 0);
    ck_assert_uint_ne(a.record_hash, c.record_hash);
    tu_run_fini(&a);
    tu_run_fini(&b);
    tu_run_fini(&c);
}
END_TEST

START_TEST(test_latency_metrics_are_ordered_and_positive)
{
    tu_run r;
    tu_run_sets(NULL, &r);
    const run_summary *s = &r.summary;
    ck_assert_double_gt(s->ttft_s.p50, 0);
    ck_assert_double_le(s->ttft_s.p50, s->ttft_s.p90 * (1 + 1e-3));
    ck_assert_double_le(s->ttft_s.p90, s->ttft_s.p99 * (1 + 1e-3));
    ck_assert_double_gt(s->tbt_s.mean, 0);
    ck_assert_double_ge(s->e2e_s.mean, s->ttft_s.mean);
    ck_assert_double_ge(s->slo_attain, 0);
    ck_assert_double_le(s->slo_attain, s->slo_attain_ttft);
    ck_assert_double_le(s->slo_attain, s->slo_attain_tpot);
    ck_assert_double_gt(s->throughput_tok_s, 0);
    ck_assert_double_gt(s->gpu_busy_fraction, 0);
    ck_assert_double_le(s->gpu_busy_fraction, 1);
    ck_assert_double_gt(s->kv_mean_fraction, 0);
    ck_assert_double_le(s->kv_mean_fraction, s->kv_peak_fraction);
    tu_run_fini(&r);
}
END_TEST

START_TEST(test_energy_lies_between_idle_and_max_power)
{
    tu_run r;
    tu_run_sets(NULL, &r);
    const run_summary *s = &r.summary;
    /* One H100 over the run: idle 70 W floor, 700 W ceiling (models/gpu). */
    ck_assert_double_gt(s->energy_j, 70 * s->duration_s * 0.99);
    ck_assert_double_lt(s->energy_j, 700 * s->duration_s);
    ck_assert_double_gt(s->energy_per_out_token_j, 0);
    tu_run_fini(&r);
}
END_TEST

START_TEST(test_more_load_means_higher_latency)
{
    tu_run light, heavy;
    const char *const slow[] = {"workload.arrival.rate_per_s=2", NULL};
    const char *const fast[] = {"workload.arrival.rate_per_s=60", NULL};
    tu_run_sets(slow, &light);
    tu_run_sets(fast, &heavy);
    ck_assert_double_gt(heavy.summary.e2e_s.mean, light.summary.e2e_s.mean);
    ck_assert_double_gt(heavy.summary.gpu_busy_fraction, light.summary.gpu_busy_fraction);
    tu_run_fini(&light);
    tu_run_fini(&heavy);
}
END_TEST

START_TEST(test_every_cost_term_is_tagged_with_its_source)
{
    /* The default cost model is the table: the imported H100 table prices
     * the shapes it has, the roofline the rest. */
    tu_run r;
    tu_run_sets(NULL, &r);
    ck_assert_uint_gt(r.summary.source_terms[COST_SRC_ROOFLINE], 0);
    ck_assert_uint_gt(r.summary.source_terms[COST_SRC_TABLE], 0);
    char buf[64];
    cluster_cost_sources(&r.summary, buf, sizeof buf);
    ck_assert_str_eq(buf, "roofline+table");
    tu_run_fini(&r);
    const char *const roof[] = {"cost.model=roofline", NULL};
    tu_run_sets(roof, &r);
    ck_assert_uint_eq(r.summary.source_terms[COST_SRC_TABLE], 0);
    cluster_cost_sources(&r.summary, buf, sizeof buf);
    ck_assert_str_eq(buf, "roofline");
    double total = 0;
    for (int k = 0; k < OP_KIND_COUNT; k++)
        total += r.summary.term_s[k];
    /* The busy time is the operators plus the fixed overhead per iteration. */
    double busy = r.summary.gpu_busy_fraction * r.summary.duration_s;
    ck_assert_double_eq_tol(total + r.summary.iterations * 200e-6, busy, busy * 1e-3);
    tu_run_fini(&r);
}
END_TEST

Suite *cluster_suite(void)
{
    Suite *s = suite_create("cluster");
    TCase *tc = tcase_create("end_to_end");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_every_request_finishes_exactly_once);
    tcase_add_test(tc, test_same_seed_is_bit_identical_other_seed_differs);
    tcase_add_test(tc, test_latency_metrics_are_ordered_and_positive);
    tcase_add_test(tc, test_energy_lies_between_idle_and_max_power);
    tcase_add_test(tc, test_more_load_means_higher_latency);
    tcase_add_test(tc, test_every_cost_term_is_tagged_with_its_source);
    suite_add_tcase(s, tc);
    return s;
}
