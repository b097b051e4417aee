/* KV cache capacity and block accounting. */
#include <check.h>
#include <signal.h>
#include <string.h>

#include "serve/kv.h"
#include "tests/suites.h"

#define GIB (1024.0 * 1024.0 * 1024.0)

static void load(const char *model, const char *gpu, llm_model *m, gpu_spec *g)
{
    sim_err err = {{0}};
    if (llm_model_load(models_dir(), model, m, &err) ||
        gpu_spec_load(models_dir(), gpu, g, &err))
        ck_abort_msg("%s", err.msg);
}

START_TEST(test_kv_capacity_is_memory_left_after_weights)
{
    llm_model m;
    gpu_spec g;
    load("Llama-3-8B", "H100-SXM-80GB", &m, &g);
    int64_t blocks;
    sim_err err = {{0}};
    ck_assert_int_eq(kv_capacity_blocks(&m, &g, 1, 0.9, 2 * GIB, 16, &blocks, &err), 0);
    double expect = (g.hbm_bytes * 0.9 - llm_weight_bytes_per_gpu(&m, &PAR_TP(1)) - 2 * GIB) /
                    (llm_kv_bytes_per_token_per_gpu(&m, &PAR_TP(1)) * 16);
    ck_assert_int_eq(blocks, (int64_t)expect);
    /* Llama-3-8B keeps 128 KiB of KV per token: ~52 GiB left holds ~400k tokens. */
    ck_assert_int_gt(blocks * 16, 350000);
    ck_assert_int_lt(blocks * 16, 500000);

    int64_t blocks_tp2;
    ck_assert_int_eq(kv_capacity_blocks(&m, &g, 2, 0.9, 2 * GIB, 16, &blocks_tp2, &err), 0);
    ck_assert_int_gt(blocks_tp2, 2 * blocks);   /* half the weights and half the KV per GPU */
}
END_TEST

START_TEST(test_kv_model_that_does_not_fit_is_an_error)
{
    llm_model m;
    gpu_spec g;
    load("Llama-2-70B", "A100-SXM-80GB", &m, &g);
    int64_t blocks;
    sim_err err = {{0}};
    ck_assert_int_eq(kv_capacity_blocks(&m, &g, 1, 0.9, 2 * GIB, 16, &blocks, &err), -1);
    ck_assert_msg(strstr(err.msg, "does not fit"), "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "tp=1"), "%s", err.msg);
}
END_TEST

START_TEST(test_kv_tracks_use_peak_and_time_weighted_mean)
{
    kv_cache kv;
    kv_init(&kv, 100, 16, 0);
    kv_alloc(&kv, 40, 0);
    kv_alloc(&kv, 20, 10);
    ck_assert_int_eq(kv_free_blocks(&kv), 40);
    kv_free(&kv, 60, 20);
    ck_assert_int_eq(kv.used_blocks, 0);
    ck_assert_int_eq(kv.peak_blocks, 60);
    /* 40 blocks for 10 ns, 60 for 10 ns, 0 for 20 ns, of 100, over 40 ns. */
    ck_assert_double_eq_tol(kv_mean_fraction(&kv, 0, 40), (400.0 + 600.0) / (100 * 40), 1e-12);
}
END_TEST

START_TEST(test_kv_alloc_beyond_capacity_aborts)
{
    kv_cache kv;
    kv_init(&kv, 10, 16, 0);
    kv_alloc(&kv, 11, 0);
}
END_TEST

Suite *kv_suite(void)
{
    Suite *s = suite_create("kv");
    TCase *tc = tcase_create("kv");
    tcase_add_test(tc, test_kv_capacity_is_memory_left_after_weights);
    tcase_add_test(tc, test_kv_model_that_does_not_fit_is_an_error);
    tcase_add_test(tc, test_kv_tracks_use_peak_and_time_weighted_mean);
    tcase_add_test_raise_signal(tc, test_kv_alloc_beyond_capacity_aborts, SIGABRT);
    suite_add_tcase(s, tc);
    return s;
}
