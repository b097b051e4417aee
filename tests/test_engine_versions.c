/* Engine profiles of older engine versions (models/engines/vllm-v0.5.json,
 * vllm-v0.6.json, trtllm-v0.6.json): they load, reproduce themselves, and
 * price what their sources say: vLLM 0.5.4 blocks on all of Vidur's four CPU
 * components (the API server in its own process), vLLM 0.6 only on
 * scheduling, sampling and input preparation (output processing overlaps),
 * with decode graphs up to 1024 sequences; TensorRT-LLM's 2023 C++ session
 * has no Python launches, no CPU model and no request path. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "models/engine.h"
#include "tests/suites.h"
#include "tests/testutil.h"

static void load(const char *name, engine_profile *e)
{
    sim_err err = {{0}};
    ck_assert_msg(engine_profile_resolve(models_dir(), name, NULL, "$.engine", e, NULL,
                                         &err) == 0, "%s: %s", name, err.msg);
    ck_assert_str_eq(e->name, name);
}

START_TEST(test_engine_versions_load_and_reproduce_themselves)
{
    const char *names[] = {"vllm-v0.5", "vllm-v0.6", "trtllm-v0.6"};
    for (int i = 0; i < 3; i++) {
        engine_profile a, b;
        cJSON *eff = NULL;
        sim_err err = {{0}};
        ck_assert_int_eq(engine_profile_resolve(models_dir(), names[i], NULL, "$.engine", &a,
                                                &eff, &err), 0);
        ck_assert_int_eq(engine_profile_resolve(models_dir(), names[i], eff, "$.engine", &b,
                                                NULL, &err), 0);
        ck_assert(memcmp(&a, &b, sizeof a) == 0);
        cJSON_Delete(eff);
    }
}
END_TEST

/* vLLM 0.5.4 and 0.6 share V0's scheduler rules; their CPU time per step is
 * Vidur's line, all of it (0.5.4) or without output processing (0.6). */
START_TEST(test_engine_versions_vllm_cpu_follows_the_version)
{
    engine_profile v0, v05, v06;
    load("vllm-v0", &v0);
    load("vllm-v0.5", &v05);
    load("vllm-v0.6", &v06);
    ck_assert(v05.reserve == v0.reserve && v06.reserve == v0.reserve);
    ck_assert(v05.victim == v0.victim && v05.watermark_fraction == v0.watermark_fraction);
    ck_assert_str_eq(v05.batch_policy, "vllm_prefill_first");
    ck_assert(!v05.cpu_overlap && !v06.cpu_overlap);
    batch_shape b256 = {.n_decode = 256, .n_sampled = 256};
    /* 0.5.4: 1202 + 100 x 256 us, without vllm-v0's API-server share */
    ck_assert_double_eq_tol(engine_cpu_ns(&v05, &b256), (1202 + 100.0 * 256) * 1e3, 1e-3);
    ck_assert(engine_cpu_ns(&v05, &b256) < engine_cpu_ns(&v0, &b256));
    /* 0.6: 1044.7 + 37.56 x 256 us */
    ck_assert_double_eq_tol(engine_cpu_ns(&v06, &b256), (1044.7 + 37.56 * 256) * 1e3, 1e-3);
    /* Decode graphs: up to 256 sequences before PR #7894, 1024 after. */
    batch_shape b512 = {.n_decode = 512, .n_sampled = 512};
    ck_assert(engine_batch_in_graph(&v05, &b256) && !engine_batch_in_graph(&v05, &b512));
    ck_assert(engine_batch_in_graph(&v06, &b512));
}
END_TEST

START_TEST(test_engine_versions_trtllm_session_has_no_cpu_or_request_path)
{
    engine_profile e;
    load("trtllm-v0.6", &e);
    batch_seq chunk = {128, 0};
    batch_shape mixed = {.prefill = &chunk, .n_prefill = 1, .n_decode = 300, .n_sampled = 301};
    ck_assert(!engine_batch_in_graph(&e, &mixed));
    /* Outside graphs, yet no launch time: the engine is enqueued from C++. */
    ck_assert_double_eq_tol(engine_iteration_ns(&e, &mixed, 32, 5e6), 5e6, 1e-6);
    ck_assert_double_eq(engine_frontend_ns(&e, 2048), 0);
    ck_assert_double_eq(engine_stream_ns(&e), 0);
    ck_assert(!e.prefix_caching);
    ck_assert_int_eq(e.reserve, ENGINE_RESERVE_REQUEST);
}
END_TEST

Suite *engine_versions_suite(void)
{
    Suite *s = suite_create("engine_versions");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_engine_versions_load_and_reproduce_themselves);
    tcase_add_test(tc, test_engine_versions_vllm_cpu_follows_the_version);
    tcase_add_test(tc, test_engine_versions_trtllm_session_has_no_cpu_or_request_path);
    suite_add_tcase(s, tc);
    return s;
}
