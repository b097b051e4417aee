/* Histogram: exactness below 2^SUB_BITS, quantile error against an exact
 * sorted-array reference on lognormal latencies, exact mean/min/max, empty
 * behaviour and fraction_le.
 *
 * The reference quantile uses the rank the header defines: the smallest
 * sample with at least ceil(p*n) samples at or below it (at least rank 1). */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "sim/hist.h"
#include "tests/suites.h"

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t exact_quantile(const int64_t *sorted, size_t n, double p)
{
    uint64_t rank = (uint64_t)ceil(p * (double)n);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

START_TEST(test_hist_exact_for_small_values)
{
    sim_hist h;
    sim_hist_init(&h);
    /* 0..1999 once each: below 2^(SUB_BITS+1) every value has its bucket. */
    for (int64_t v = 0; v < 2000; v++)
        sim_hist_add(&h, v);
    for (int i = 1; i <= 2000; i++) {
        /* Mid-way between ranks, so rounding in p*n cannot shift the rank. */
        double p = ((double)i - 0.5) / 2000.0;
        ck_assert_double_eq(sim_hist_quantile(&h, p), (double)(i - 1));
    }
    ck_assert_double_eq(sim_hist_quantile(&h, 0.0), 0.0);
    ck_assert_double_eq(sim_hist_fraction_le(&h, 999), 0.5);
    sim_hist_fini(&h);
}
END_TEST

START_TEST(test_hist_quantiles_within_0_1_percent_on_lognormal)
{
    enum { N = 200000 };
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 31337);
    int64_t *x = malloc(N * sizeof *x);
    sim_hist h;
    sim_hist_init(&h);
    for (size_t i = 0; i < N; i++) {
        /* Median 1 ms, sigma 1.5: spans microseconds to seconds. */
        x[i] = llround(gsl_ran_lognormal(r, log(1e6), 1.5));
        sim_hist_add(&h, x[i]);
    }
    qsort(x, N, sizeof *x, cmp_i64);
    const double ps[] = {0.0, 1e-4, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5,
                         0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        double want = (double)exact_quantile(x, N, ps[i]);
        double got = sim_hist_quantile(&h, ps[i]);
        ck_assert_msg(fabs(got - want) <= 1e-3 * want,
                      "p=%g: got %.1f, exact %.1f", ps[i], got, want);
    }
    free(x);
    sim_hist_fini(&h);
    gsl_rng_free(r);
}
END_TEST

START_TEST(test_hist_mean_min_max_exact)
{
    sim_hist h;
    sim_hist_init(&h);
    const int64_t v[] = {123456789, 5, 987654321012, 77, 5, 1 << 20};
    double sum = 0;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        sim_hist_add(&h, v[i]);
        sum += (double)v[i];
    }
    ck_assert_uint_eq(h.n, 6);
    ck_assert_int_eq(h.min, 5);
    ck_assert_int_eq(h.max, 987654321012);
    ck_assert_double_eq(sim_hist_mean(&h), sum / 6.0);
    /* Quantiles are bucket midpoints clamped to [min, max]: p=0 hits the
     * exact bucket of 5; p=1 is within bucket precision below the max. */
    ck_assert_double_eq(sim_hist_quantile(&h, 0.0), 5.0);
    double top = sim_hist_quantile(&h, 1.0);
    ck_assert(top <= 987654321012.0);
    ck_assert(top >= 987654321012.0 * (1 - 1.0 / 1024));
    sim_hist_fini(&h);
}
END_TEST

START_TEST(test_hist_empty_returns_zero)
{
    sim_hist h;
    sim_hist_init(&h);
    ck_assert_uint_eq(h.n, 0);
    ck_assert_double_eq(sim_hist_quantile(&h, 0.5), 0.0);
    ck_assert_double_eq(sim_hist_quantile(&h, 1.0), 0.0);
    ck_assert_double_eq(sim_hist_mean(&h), 0.0);
    ck_assert_double_eq(sim_hist_fraction_le(&h, 100), 0.0);
    sim_hist_fini(&h);
}
END_TEST

START_TEST(test_hist_fraction_le_counts_samples_at_or_below)
{
    sim_hist h;
    sim_hist_init(&h);
    for (int64_t v = 1; v <= 100; v++)
        sim_hist_add(&h, v * 1000);   /* 1,000 .. 100,000 */
    ck_assert_double_eq(sim_hist_fraction_le(&h, 0), 0.0);
    ck_assert_double_eq(sim_hist_fraction_le(&h, 999), 0.0);
    ck_assert_double_eq(sim_hist_fraction_le(&h, 1000), 0.01);
    ck_assert_double_eq(sim_hist_fraction_le(&h, 50000), 0.5);
    ck_assert_double_eq(sim_hist_fraction_le(&h, 100000), 1.0);
    ck_assert_double_eq(sim_hist_fraction_le(&h, INT64_MAX), 1.0);
    /* Between samples, far from bucket edges: the count between. */
    ck_assert_double_eq(sim_hist_fraction_le(&h, 25500), 0.25);
    ck_assert_double_eq(sim_hist_fraction_le(&h, -1), 0.0);
    sim_hist_fini(&h);
}
END_TEST

START_TEST(test_hist_handles_values_up_to_int64_max)
{
    sim_hist h;
    sim_hist_init(&h);
    sim_hist_add(&h, INT64_MAX);
    sim_hist_add(&h, INT64_MAX - 1);
    sim_hist_add(&h, (int64_t)1 << 62);
    sim_hist_add(&h, 0);
    /* Both top values share the last bucket, [2^63 - 2^52, 2^63). */
    double top = sim_hist_quantile(&h, 1.0);
    ck_assert(top <= 0x1p63 && top >= 0x1p63 - 0x1p52);
    ck_assert_double_eq(sim_hist_quantile(&h, 0.25), 0.0);
    double q = sim_hist_quantile(&h, 0.5);
    ck_assert(fabs(q - 0x1p62) <= 0x1p62 / 1024);
    ck_assert_double_eq(sim_hist_fraction_le(&h, INT64_MAX), 1.0);
    ck_assert_double_eq(sim_hist_fraction_le(&h, 0), 0.25);
    sim_hist_fini(&h);
}
END_TEST

START_TEST(test_hist_negative_value_aborts)
{
    sim_hist h;
    sim_hist_init(&h);
    sim_hist_add(&h, -1);
}
END_TEST

/* One TCase per behaviour, named for it, so a failure names the behaviour. */
#define ADD_TEST(s, fn) ADD_TEST_SIGNAL(s, fn, 0)
#define ADD_TEST_SIGNAL(s, fn, sig)                                           \
    do {                                                                      \
        TCase *tc_ = tcase_create(#fn);                                       \
        tcase_set_timeout(tc_, 60);                                           \
        tcase_add_test_raise_signal(tc_, fn, sig);                            \
        suite_add_tcase(s, tc_);                                              \
    } while (0)

Suite *sim_hist_suite(void)
{
    Suite *s = suite_create("sim_hist");
    ADD_TEST(s, test_hist_exact_for_small_values);
    ADD_TEST(s, test_hist_quantiles_within_0_1_percent_on_lognormal);
    ADD_TEST(s, test_hist_mean_min_max_exact);
    ADD_TEST(s, test_hist_empty_returns_zero);
    ADD_TEST(s, test_hist_fraction_le_counts_samples_at_or_below);
    ADD_TEST(s, test_hist_handles_values_up_to_int64_max);
    ADD_TEST_SIGNAL(s, test_hist_negative_value_aborts, SIGABRT);
    return s;
}
