/* Workload sources: the synthetic generator and the wrapper's guarantees. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "sim/engine.h"
#include "tests/suites.h"
#include "traces/workload.h"

typedef struct wl_fixture {
    sim_engine *eng;
    wl_setup setup;
    cJSON *cfg;
    wl_source *src;
    sim_err err;
} wl_fixture;

static void open_source(wl_fixture *f, const char *json, uint64_t seed, int32_t ctx)
{
    memset(f, 0, sizeof *f);
    f->eng = sim_engine_create(seed);
    f->setup = (wl_setup){sim_rng(f->eng, 1), sim_rng(f->eng, 2), ctx};
    f->cfg = cJSON_Parse(json);
    ck_assert_ptr_nonnull(f->cfg);
    f->src = wl_source_create(&f->setup, f->cfg, "$.workload", &f->err);
}

static void close_source(wl_fixture *f)
{
    wl_source_destroy(f->src);
    cJSON_Delete(f->cfg);
    sim_engine_destroy(f->eng);
}

static const char poisson_json[] =
    "{\"requests\": 20000, \"arrival\": {\"rate_per_s\": 5},"
    " \"input_tokens\": {\"dist\": \"lognormal\", \"mean\": 1155, \"sigma\": 0.5},"
    " \"output_tokens\": {\"dist\": \"fixed\", \"value\": 211}}";

START_TEST(test_synthetic_yields_exactly_n_in_time_order)
{
    wl_fixture f;
    open_source(&f, poisson_json, 1, 100000);
    ck_assert_msg(f.src, "%s", f.err.msg);
    wl_request r;
    sim_time_ns last = 0;
    int n = 0, rc;
    while ((rc = wl_source_next(f.src, 0, &r, &f.err)) == 1) {
        ck_assert_int_ge(r.arrival_ns, last);
        last = r.arrival_ns;
        n++;
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(n, 20000);
    close_source(&f);
}
END_TEST

START_TEST(test_synthetic_rate_and_means_match_parameters)
{
    wl_fixture f;
    open_source(&f, poisson_json, 3, 100000);
    wl_request r;
    double in_sum = 0;
    int n = 0;
    sim_time_ns last = 0;
    while (wl_source_next(f.src, 0, &r, &f.err) == 1) {
        in_sum += r.input_tokens;
        ck_assert_int_eq(r.output_tokens, 211);
        last = r.arrival_ns;
        n++;
    }
    double rate = n / (last / 1e9);
    ck_assert_double_eq_tol(rate, 5.0, 0.15);
    ck_assert_double_eq_tol(in_sum / n, 1155, 1155 * 0.02);
    close_source(&f);
}
END_TEST

START_TEST(test_same_seed_same_requests_other_seed_differs)
{
    wl_fixture a, b, c;
    open_source(&a, poisson_json, 9, 100000);
    open_source(&b, poisson_json, 9, 100000);
    open_source(&c, poisson_json, 10, 100000);
    wl_request ra, rb, rc;
    int differs = 0;
    for (int i = 0; i < 100; i++) {
        wl_source_next(a.src, 0, &ra, &a.err);
        wl_source_next(b.src, 0, &rb, &b.err);
        wl_source_next(c.src, 0, &rc, &c.err);
        ck_assert_int_eq(ra.arrival_ns, rb.arrival_ns);
        ck_assert_int_eq(ra.input_tokens, rb.input_tokens);
        differs |= ra.arrival_ns != rc.arrival_ns;
    }
    ck_assert(differs);
    close_source(&a);
    close_source(&b);
    close_source(&c);
}
END_TEST

START_TEST(test_lengths_are_clamped_to_context_and_counted)
{
    wl_fixture f;
    open_source(&f,
                "{\"requests\": 10, \"arrival\": {\"rate_per_s\": 1},"
                " \"input_tokens\": {\"dist\": \"fixed\", \"value\": 5000},"
                " \"output_tokens\": {\"dist\": \"fixed\", \"value\": 300}}",
                1, 4096);
    ck_assert_msg(f.src, "%s", f.err.msg);
    wl_request r;
    while (wl_source_next(f.src, 0, &r, &f.err) == 1) {
        ck_assert_int_eq(r.input_tokens, 4095);
        ck_assert_int_eq(r.output_tokens, 1);
    }
    ck_assert_uint_eq(wl_source_clamped(f.src), 10);
    close_source(&f);
}
END_TEST

START_TEST(test_unknown_source_lists_valid_names)
{
    wl_fixture f;
    open_source(&f, "{\"source\": \"nope\", \"requests\": 1}", 1, 4096);
    ck_assert_ptr_null(f.src);
    ck_assert_ptr_nonnull(strstr(f.err.msg, "$.workload.source"));
    ck_assert_ptr_nonnull(strstr(f.err.msg, "synthetic"));
    close_source(&f);
}
END_TEST

START_TEST(test_bad_distribution_names_its_path)
{
    wl_fixture f;
    open_source(&f,
                "{\"requests\": 10, \"arrival\": {\"rate_per_s\": 1},"
                " \"input_tokens\": {\"dist\": \"lognormal\", \"mean\": 100, \"sigma\": -1},"
                " \"output_tokens\": {\"dist\": \"fixed\", \"value\": 3}}",
                1, 4096);
    ck_assert_ptr_null(f.src);
    ck_assert_msg(strstr(f.err.msg, "$.workload.input_tokens.sigma"), "%s", f.err.msg);
    close_source(&f);

    open_source(&f,
                "{\"requests\": 10, \"arrival\": {\"rate_per_s\": 1, \"burst\": 2},"
                " \"input_tokens\": {\"dist\": \"fixed\", \"value\": 3},"
                " \"output_tokens\": {\"dist\": \"fixed\", \"value\": 3}}",
                1, 4096);
    ck_assert_ptr_null(f.src);
    ck_assert_msg(strstr(f.err.msg, "$.workload.arrival.burst"), "%s", f.err.msg);
    close_source(&f);
}
END_TEST

Suite *workload_suite(void)
{
    Suite *s = suite_create("workload");
    TCase *tc = tcase_create("synthetic");
    tcase_add_test(tc, test_synthetic_yields_exactly_n_in_time_order);
    tcase_add_test(tc, test_synthetic_rate_and_means_match_parameters);
    tcase_add_test(tc, test_same_seed_same_requests_other_seed_differs);
    tcase_add_test(tc, test_lengths_are_clamped_to_context_and_counted);
    tcase_add_test(tc, test_unknown_source_lists_valid_names);
    tcase_add_test(tc, test_bad_distribution_names_its_path);
    suite_add_tcase(s, tc);
    return s;
}
