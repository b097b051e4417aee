/* `servesim cost` (tool/cmd_cost.c): one iteration's cost per operator,
 * with every term's source, from the same functions a run uses; bad input
 * exits non-zero with a message. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tool/config.h"
#include "tests/suites.h"
#include "tests/testutil.h"

#define ck_assert_has(haystack, needle)                                         \
    ck_assert_msg(strstr((haystack), (needle)) != NULL,                         \
                  "expected '%s' in '%s'", (needle), (haystack))

static char out[1 << 16], errbuf[4096];

/* Runs the command line, stdout into out[], stderr into errbuf[]. */
static int run(tu_cli_call *c)
{
    return tu_capture(STDOUT_FILENO, tu_call_cli, c, out, sizeof out);
}

static int run_err(tu_cli_call *c)
{
    return tu_capture_stderr(tu_call_cli, c, errbuf, sizeof errbuf);
}

/* A configuration Vidur profiled: the table prices the GEMMs and the
 * all-reduce; the operators add up to the cost model's iteration. */
START_TEST(test_cmd_cost_prints_every_operator_and_source)
{
    tu_cli_call c = {{"servesim", "cost", "--model", "Llama-2-70B", "--gpu", "A100-SXM-80GB",
                      "--tp", "2", "--prefill", "1024@512", "--decode", "16@2000", NULL}};
    ck_assert_int_eq(run(&c), 0);
    ck_assert_has(out, "Llama-2-70B on A100-SXM-80GB, tp=2; weights bf16");
    ck_assert_has(out, "1 prefill chunk(s) (1024@512), 16 decode(s)");
    ck_assert_has(out, "table ");
    ck_assert_has(out, "Vidur");
    const char *kinds[] = {"gemm_qkv", "attn_prefill", "attn_decode", "allreduce",
                           "gemm_ffn_down", "gemm_lm_head", "sample"};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        ck_assert_has(out, kinds[i]);
    /* the GEMMs of a profiled shape come from the table, the LM head not */
    const char *qkv = strstr(out, "  gemm_qkv"), *lm = strstr(out, "  gemm_lm_head");
    ck_assert_ptr_nonnull(qkv);
    ck_assert(strstr(qkv, "\n") > strstr(qkv, " table"));
    ck_assert(strstr(lm, "\n") > strstr(lm, " roofline"));
    const char *tot = strstr(out, "= ");
    ck_assert_ptr_nonnull(tot);
    double a, b;
    ck_assert_int_eq(sscanf(tot, "= %lf us (cost model: %lf us)", &a, &b), 2);
    ck_assert_double_eq_tol(a, b, 0.2);
    ck_assert(a > 1000);
}
END_TEST

/* Precision and architectures: FP8 needs an FP8 GPU; MLA shows its own
 * projections; a model file is named by its path. */
START_TEST(test_cmd_cost_precision_architecture_and_paths)
{
    tu_cli_call fp8 = {{"servesim", "cost", "--model", "Llama-3-8B", "--gpu", "A100-SXM-80GB",
                        "--precision", "fp8,fp8,fp8", NULL}};
    ck_assert_int_eq(run_err(&fp8), 1);
    ck_assert_has(errbuf, "A100-SXM-80GB has no fp8 tensor-core rate");
    fp8.argv[5] = "H100-SXM-80GB";
    ck_assert_int_eq(run(&fp8), 0);
    ck_assert_has(out, "weights fp8, activations fp8, KV fp8");
    tu_cli_call mla = {{"servesim", "cost", "--model", "DeepSeek-V3", "--gpu", "H200-141GB",
                        "--tp", "8", "--decode", "64@4000", NULL}};
    ck_assert_int_eq(run(&mla), 0);
    ck_assert_has(out, "gemm_q_up");
    ck_assert_has(out, "gemm_kv_up");
    ck_assert_has(out, "moe_experts");
    ck_assert_has(out, "table: none for this GPU");
    tu_cli_call path = {{"servesim", "cost", "--model", "models/llm/OPT-13B.json", "--gpu",
                         "models/gpu/A40-48GB.json", "--tp", "2", NULL}};
    ck_assert_int_eq(run(&path), 0);
    ck_assert_has(out, "OPT-13B on A40-48GB, tp=2");
    path.argv[3] = "/nonexistent/Mine.json";
    ck_assert_int_eq(run_err(&path), 1);
    ck_assert_has(errbuf, "$.model: /nonexistent/Mine.json: cannot open");
}
END_TEST

/* A run config's "precision": an FP8 KV cache about doubles the blocks an
 * instance holds; a bad dtype names the JSON path. */
START_TEST(test_cmd_cost_config_precision)
{
    const char *const fp8[] = {"precision.kv_cache=fp8", NULL};
    cJSON *root = tu_base_config();
    run_config base, q;
    tu_parse(root, &base);
    root = tu_base_config();
    tu_set(root, fp8);
    tu_parse(root, &q);
    ck_assert_int_eq(q.sys.pools[0].model.prec.kv, LLM_FP8);
    ck_assert_int_ge(q.sys.pools[0].batch.kv_total_blocks,
                     2 * base.sys.pools[0].batch.kv_total_blocks - 1);
    run_config_fini(&base);
    run_config_fini(&q);
    tu_cli_call c = {{"servesim", "cost", "--model", "Llama-3-8B", "--gpu", "H100-SXM-80GB",
                      "--set", "precision.kv_cache=int4", NULL}};
    ck_assert_int_eq(run_err(&c), 1);
    ck_assert_has(errbuf, "$.precision: kv_cache dtype int4");
    c.argv[7] = "precision.weights=fp4";
    ck_assert_int_eq(run_err(&c), 1);
    ck_assert_has(errbuf, "$.precision.weights: expected one of: bf16, fp16, fp8, int8, int4");
}
END_TEST

START_TEST(test_cmd_cost_bad_usage)
{
    tu_cli_call c = {{"servesim", "cost", "--model", "Llama-3-8B", "--gpu", "H100-SXM-80GB",
                      "--prefill", "abc", NULL}};
    ck_assert_int_eq(run_err(&c), 2);
    ck_assert_has(errbuf, "--prefill: expected Q or Q@CTX");
    tu_cli_call none = {{"servesim", "cost", NULL}};
    ck_assert_int_eq(run_err(&none), 1);
    ck_assert_has(errbuf, "$.model: missing required key");
    tu_cli_call bad = {{"servesim", "cost", "--model", "Llama-3-8B", "--gpu", "H100-SXM-80GB",
                        "--cost", "vidur", NULL}};
    ck_assert_int_eq(run_err(&bad), 1);
    ck_assert_has(errbuf, "unknown cost model 'vidur'");
}
END_TEST

Suite *cmd_cost_suite(void)
{
    Suite *s = suite_create("cmd_cost");
    TCase *tc = tcase_create("cmd_cost");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cmd_cost_prints_every_operator_and_source);
    tcase_add_test(tc, test_cmd_cost_precision_architecture_and_paths);
    tcase_add_test(tc, test_cmd_cost_config_precision);
    tcase_add_test(tc, test_cmd_cost_bad_usage);
    suite_add_tcase(s, tc);
    return s;
}
