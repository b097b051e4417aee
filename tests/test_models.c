/* Tests for models/model.c: every bundled file loads, derived counts match
 * the published ones, and bad files or names give errors that say where. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "models/model.h"
#include "tests/suites.h"

static const char *const bundled_llms[] = {
    "Llama-2-7B", "Llama-2-13B", "Llama-2-70B", "Llama-3-8B", "Llama-3-70B",
    "Mixtral-8x7B", "Qwen3-30B-A3B", NULL,
};
static const char *const bundled_gpus[] = {
    "A100-SXM-80GB", "H100-SXM-80GB", "H200-141GB", NULL,
};

#define ck_assert_has(haystack, needle)                                         \
    ck_assert_msg(strstr((haystack), (needle)) != NULL,                         \
                  "expected '%s' in '%s'", (needle), (haystack))

#define ck_assert_rel(value, want, tol)                                         \
    ck_assert_msg(fabs((value) / (want) - 1.0) <= (tol),                        \
                  "%s = %.6g, expected %.6g within %g", #value, (double)(value), \
                  (double)(want), (double)(tol))

static llm_model load_llm(const char *name)
{
    llm_model m;
    sim_err err = {{0}};
    ck_assert_msg(llm_model_load(models_dir(), name, &m, &err) == 0, "%s", err.msg);
    return m;
}

/* A scratch models folder with llm/ and gpu/; removed by rm_tree. */
static void make_tree(char *dir)
{
    strcpy(dir, "/tmp/servesim_models_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char sub[300];
    snprintf(sub, sizeof sub, "%s/llm", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof sub, "%s/gpu", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
}

static void write_file(const char *dir, const char *rel, const char *text)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void rm_tree(const char *dir)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char small_llm[] =
    "{\"source\": \"test\", \"layers\": 2, \"hidden\": 64, \"heads\": 4,"
    " \"kv_heads\": 2, \"head_dim\": 16, \"ffn\": 128, \"vocab\": 100,"
    " \"max_context_tokens\": 512%s}";

START_TEST(test_models_every_bundled_llm_loads)
{
    for (int i = 0; bundled_llms[i]; i++) {
        llm_model m = load_llm(bundled_llms[i]);
        ck_assert_str_eq(m.name, bundled_llms[i]);
        ck_assert_int_gt(m.layers, 0);
        ck_assert_int_eq(m.bytes_per_param, 2);
    }
}
END_TEST

START_TEST(test_models_every_bundled_gpu_loads)
{
    for (int i = 0; bundled_gpus[i]; i++) {
        gpu_spec g;
        sim_err err = {{0}};
        ck_assert_msg(gpu_spec_load(models_dir(), bundled_gpus[i], &g, &err) == 0,
                      "%s", err.msg);
        ck_assert_str_eq(g.name, bundled_gpus[i]);
        ck_assert(g.max_w > g.idle_w);
    }
    gpu_spec h100;
    sim_err err = {{0}};
    ck_assert_int_eq(gpu_spec_load(models_dir(), "H100-SXM-80GB", &h100, &err), 0);
    ck_assert_double_eq(h100.bf16_flops, 989.4e12);
    ck_assert_double_eq(h100.hbm_bw_bytes_per_s, 3.35e12);
}
END_TEST

START_TEST(test_models_param_counts_match_published)
{
    llm_model m = load_llm("Llama-3-8B");
    ck_assert_rel(llm_params(&m), 8.03e9, 0.005);
    ck_assert_double_eq(llm_params_active(&m), llm_params(&m));
    m = load_llm("Llama-2-7B");
    ck_assert_rel(llm_params(&m), 6.74e9, 0.005);
    m = load_llm("Llama-2-13B");
    ck_assert_rel(llm_params(&m), 13.0e9, 0.01);
    m = load_llm("Llama-2-70B");
    ck_assert_rel(llm_params(&m), 69.0e9, 0.005);
    m = load_llm("Llama-3-70B");
    ck_assert_rel(llm_params(&m), 70.6e9, 0.005);
}
END_TEST

START_TEST(test_models_moe_param_counts_match_published)
{
    llm_model m = load_llm("Mixtral-8x7B");
    ck_assert_rel(llm_params(&m), 46.7e9, 0.005);
    ck_assert_rel(llm_params_active(&m), 12.9e9, 0.005);
    m = load_llm("Qwen3-30B-A3B");
    ck_assert_rel(llm_params(&m), 30.5e9, 0.005);
    ck_assert_rel(llm_params_active(&m), 3.3e9, 0.02);
}
END_TEST

START_TEST(test_models_kv_bytes_per_token)
{
    llm_model m = load_llm("Llama-3-8B");
    ck_assert_double_eq(llm_kv_bytes_per_token_per_gpu(&m, &PAR_TP(1)), 131072);
    ck_assert_double_eq(llm_kv_bytes_per_token_per_gpu(&m, &PAR_TP(2)), 65536);
    ck_assert_double_eq(llm_kv_bytes_per_token_per_gpu(&m, &PAR_TP(8)), 16384);
    /* Qwen3-30B-A3B has 4 KV heads: at tp 8 each GPU holds a replica of
     * one, so the per-GPU size stops shrinking at tp 4. */
    m = load_llm("Qwen3-30B-A3B");
    ck_assert_double_eq(llm_kv_bytes_per_token_per_gpu(&m, &PAR_TP(4)),
                        llm_kv_bytes_per_token_per_gpu(&m, &PAR_TP(8)));
    ck_assert_double_eq(llm_kv_bytes_per_token_per_gpu(&m, &PAR_TP(8)), 2.0 * 48 * 128 * 2);
}
END_TEST

START_TEST(test_models_weight_bytes_shard_with_tp)
{
    llm_model m = load_llm("Llama-2-70B");
    double w1 = llm_weight_bytes_per_gpu(&m, &PAR_TP(1));
    ck_assert_double_eq(w1, llm_params(&m) * 2);
    /* Only norms are replicated, so halving is almost exact. */
    ck_assert_rel(llm_weight_bytes_per_gpu(&m, &PAR_TP(2)), w1 / 2, 1e-4);
    ck_assert_rel(llm_weight_bytes_per_gpu(&m, &PAR_TP(8)), w1 / 8, 1e-3);
    /* Llama-3-8B's 8 KV heads are never replicated up to tp 8, Qwen3's 4 are
     * at tp 8, so its per-GPU weights are more than an eighth. */
    m = load_llm("Qwen3-30B-A3B");
    ck_assert(llm_weight_bytes_per_gpu(&m, &PAR_TP(8)) > llm_weight_bytes_per_gpu(&m, &PAR_TP(1)) / 8);
}
END_TEST

START_TEST(test_models_unknown_key_names_file_and_path)
{
    char dir[64], text[600], path[200];
    make_tree(dir);
    snprintf(text, sizeof text, small_llm, ", \"layer\": 3");
    write_file(dir, "llm/Bad.json", text);
    llm_model m;
    sim_err err = {{0}};
    ck_assert_int_eq(llm_model_load(dir, "Bad", &m, &err), -1);
    snprintf(path, sizeof path, "%s/llm/Bad.json: $.layer: unknown key; expected "
             "one of: name, source, layers", dir);
    ck_assert_has(err.msg, path);

    write_file(dir, "gpu/G.json", "{\"source\": \"x\", \"bf16_flop\": 1}");
    gpu_spec g;
    ck_assert_int_eq(gpu_spec_load(dir, "G", &g, &err), -1);
    snprintf(path, sizeof path, "%s/gpu/G.json: $.bf16_flop: unknown key", dir);
    ck_assert_has(err.msg, path);
    rm_tree(dir);
}
END_TEST

START_TEST(test_models_bad_value_names_path)
{
    char dir[64], text[600], path[200];
    make_tree(dir);
    snprintf(text, sizeof text, small_llm, ", \"bytes_per_param\": 1.5");
    write_file(dir, "llm/Bad.json", text);
    llm_model m;
    sim_err err = {{0}};
    ck_assert_int_eq(llm_model_load(dir, "Bad", &m, &err), -1);
    snprintf(path, sizeof path, "%s/llm/Bad.json: $.bytes_per_param: expected an "
             "integer in [1, 8], got 1.5", dir);
    ck_assert_str_eq(err.msg, path);

    snprintf(text, sizeof text, small_llm, ", \"experts\": 8");
    write_file(dir, "llm/Moe.json", text);
    ck_assert_int_eq(llm_model_load(dir, "Moe", &m, &err), -1);
    ck_assert_has(err.msg, "$.experts_per_token");
    rm_tree(dir);
}
END_TEST

START_TEST(test_models_valid_user_file_loads_with_defaults)
{
    char dir[64], text[600];
    make_tree(dir);
    snprintf(text, sizeof text, small_llm, "");
    write_file(dir, "llm/Tiny.json", text);
    llm_model m;
    sim_err err = {{0}};
    ck_assert_msg(llm_model_load(dir, "Tiny", &m, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(m.name, "Tiny");
    ck_assert_int_eq(m.bytes_per_param, 2);
    ck_assert_int_eq(m.experts, 0);
    ck_assert(!m.tied_embeddings);
    rm_tree(dir);
}
END_TEST

START_TEST(test_models_unknown_name_lists_available)
{
    llm_model m;
    sim_err err = {{0}};
    ck_assert_int_eq(llm_model_load(models_dir(), "Llama-4-1T", &m, &err), -1);
    ck_assert_has(err.msg, "unknown model 'Llama-4-1T'");
    ck_assert_has(err.msg, "available: Llama-2-13B, Llama-2-70B, Llama-2-7B, "
                  "Llama-3-70B, Llama-3-8B, Mixtral-8x7B, Qwen3-30B-A3B");
    gpu_spec g;
    ck_assert_int_eq(gpu_spec_load(models_dir(), "B200", &g, &err), -1);
    ck_assert_has(err.msg, "available: A100-SXM-80GB, H100-SXM-80GB, H200-141GB");
    ck_assert_int_eq(gpu_spec_load(models_dir(), "../llm/Llama-3-8B", &g, &err), -1);
    ck_assert_has(err.msg, "invalid GPU name");
}
END_TEST

START_TEST(test_models_missing_file_names_path)
{
    llm_model m;
    sim_err err = {{0}};
    ck_assert_int_eq(llm_model_load_file("/nonexistent/X.json", &m, &err), -1);
    ck_assert_has(err.msg, "/nonexistent/X.json: cannot open");
}
END_TEST

START_TEST(test_models_tp_not_dividing_heads_rejected)
{
    llm_model m = load_llm("Llama-2-13B");   /* 40 heads */
    sim_err err = {{0}};
    ck_assert_int_eq(llm_check_tp(&m, 1, &err), 0);
    ck_assert_int_eq(llm_check_tp(&m, 8, &err), 0);
    ck_assert_int_eq(llm_check_tp(&m, 3, &err), -1);
    ck_assert_has(err.msg, "does not divide Llama-2-13B's 40 attention heads");
    ck_assert_int_eq(llm_check_tp(&m, 0, &err), -1);
    ck_assert_int_eq(llm_check_tp(&m, 16, &err), -1);
}
END_TEST

START_TEST(test_models_dir_env_override)
{
    const char *old = getenv("SERVESIM_MODELS_DIR");
    char *saved = old ? strdup(old) : NULL;
    setenv("SERVESIM_MODELS_DIR", "/somewhere/else", 1);
    ck_assert_str_eq(models_dir(), "/somewhere/else");
    unsetenv("SERVESIM_MODELS_DIR");
    ck_assert_str_ne(models_dir(), "/somewhere/else");
    if (saved)
        setenv("SERVESIM_MODELS_DIR", saved, 1);
    free(saved);
}
END_TEST

START_TEST(test_models_moe_skew_keeps_top_k_and_fewer_experts)
{
    llm_model m = load_llm("Qwen3-30B-A3B");   /* 128 experts, top-8 */
    /* One token always touches exactly its top-k experts. */
    ck_assert_double_eq_tol(llm_moe_distinct_experts(&m, 1), 8, 1e-9);
    double uniform16 = llm_moe_distinct_experts(&m, 16);
    llm_set_moe_skew(&m, 1.2);
    /* Per-token choice probabilities stay in [0, 1] and sum to top-k. */
    double sum = 0;
    for (int i = 0; i < m.experts; i++) {
        double q = -expm1(m.moe_log_miss[i]);
        ck_assert(q >= 0 && q <= 1 + 1e-12);
        if (i)   /* popular experts first */
            ck_assert(q <= -expm1(m.moe_log_miss[i - 1]) + 1e-12);
        sum += q;
    }
    ck_assert_double_eq_tol(sum, 8, 1e-9);
    ck_assert_double_eq_tol(llm_moe_distinct_experts(&m, 1), 8, 1e-9);
    /* Skew concentrates the tokens on fewer experts... */
    double skew16 = llm_moe_distinct_experts(&m, 16);
    ck_assert_double_lt(skew16, uniform16);
    /* ...which still grow with the tokens and saturate at all of them. */
    double last = 0;
    for (double t = 1; t <= 1e6; t *= 4) {
        double d = llm_moe_distinct_experts(&m, t);
        ck_assert_double_ge(d, last);
        ck_assert_double_le(d, 128 + 1e-9);
        last = d;
    }
    ck_assert_double_gt(last, 127.9);
}
END_TEST

Suite *models_suite(void)
{
    Suite *s = suite_create("models");
    TCase *tc;
#define ADD(fn)                         \
    tc = tcase_create(#fn);             \
    tcase_add_test(tc, fn);             \
    suite_add_tcase(s, tc)
    ADD(test_models_every_bundled_llm_loads);
    ADD(test_models_every_bundled_gpu_loads);
    ADD(test_models_param_counts_match_published);
    ADD(test_models_moe_param_counts_match_published);
    ADD(test_models_kv_bytes_per_token);
    ADD(test_models_weight_bytes_shard_with_tp);
    ADD(test_models_unknown_key_names_file_and_path);
    ADD(test_models_bad_value_names_path);
    ADD(test_models_valid_user_file_loads_with_defaults);
    ADD(test_models_unknown_name_lists_available);
    ADD(test_models_missing_file_names_path);
    ADD(test_models_tp_not_dividing_heads_rejected);
    ADD(test_models_dir_env_override);
    ADD(test_models_moe_skew_keeps_top_k_and_fewer_experts);
#undef ADD
    return s;
}
