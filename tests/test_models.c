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
#include "serve/kv.h"
#include "tests/suites.h"

static const char *const bundled_llms[] = {
    "Llama-2-7B", "Llama-2-13B", "Llama-2-70B", "Llama-3-8B", "Llama-3-70B",
    "Mixtral-8x7B", "Qwen3-30B-A3B", "OPT-13B", "OPT-66B", "Mistral-7B",
    "Llama-3.1-8B", "Llama-3.1-70B", "Llama-3.1-405B", "DeepSeek-V3", "Qwen2.5-72B",
    NULL,
};
static const char *const bundled_gpus[] = {
    "A100-SXM-80GB", "A40-48GB", "B200-180GB", "H100-SXM-80GB", "H200-141GB", NULL,
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
        ck_assert_double_eq(m.bytes_per_param, llm_dtype_bytes(m.prec.weights));
        ck_assert_double_eq(m.kv_bytes_per_elem, llm_dtype_bytes(m.prec.kv));
        ck_assert_int_eq(llm_check_precision(&m.prec, NULL), 0);
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
        ck_assert(g.compute_w >= g.memory_w && g.memory_w > g.idle_w);
        ck_assert(g.sm_count > 0 && g.sm_clock_hz > 0);
        ck_assert(g.fp16_flops == g.bf16_flops);
        /* no override: the fitted fallback's GEMM constants */
        ck_assert_uint_eq(g.overrides, 0);
        ck_assert(g.gemm_efficiency > 0 && g.gemm_efficiency <= 1);
    }
    gpu_spec h100;
    sim_err err = {{0}};
    ck_assert_int_eq(gpu_spec_load(models_dir(), "H100-SXM-80GB", &h100, &err), 0);
    ck_assert_double_eq(h100.bf16_flops, 989.4e12);
    ck_assert_double_eq(h100.hbm_bw_bytes_per_s, 3.35e12);
    /* FP8 on Hopper and Blackwell, none on Ampere */
    ck_assert_rel(gpu_peak_flops(&h100, LLM_FP8), 2 * h100.bf16_flops, 1e-4);
    ck_assert_double_eq(gpu_peak_flops(&h100, LLM_INT4), h100.bf16_flops);
    gpu_spec g;
    ck_assert_int_eq(gpu_spec_load(models_dir(), "H200-141GB", &g, &err), 0);
    ck_assert_double_eq(gpu_peak_flops(&g, LLM_FP8), 1978.9e12);
    ck_assert_int_eq(gpu_spec_load(models_dir(), "B200-180GB", &g, &err), 0);
    ck_assert_double_eq(gpu_peak_flops(&g, LLM_FP8), 4.5e15);
    ck_assert_double_eq(gpu_peak_flops(&g, LLM_BF16), 2.25e15);
    ck_assert_int_eq(gpu_spec_load(models_dir(), "A100-SXM-80GB", &g, &err), 0);
    ck_assert_double_eq(gpu_peak_flops(&g, LLM_FP8), 0);
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

/* The models added with the architecture keys, against their published
 * totals (sources in each file). */
START_TEST(test_models_new_architectures_match_published)
{
    const struct {
        const char *name;
        double total, tol;
    } cases[] = {
        {"OPT-13B", 12.85e9, 0.005},        {"OPT-66B", 65.7e9, 0.005},
        {"Mistral-7B", 7.24e9, 0.005},      {"Llama-3.1-8B", 8.03e9, 0.005},
        {"Llama-3.1-70B", 70.6e9, 0.005},   {"Llama-3.1-405B", 405.9e9, 0.005},
        {"Qwen2.5-72B", 72.7e9, 0.005},     {"DeepSeek-V3", 671e9, 0.005},
        {"GPT-J-6B", 6.053e9, 0.005},       /* model card: 6,053,381,344 */
        {"Falcon-180B", 180e9, 0.01},       /* "180B"; these shapes give 178.6e9 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        llm_model m = load_llm(cases[i].name);
        ck_assert_msg(fabs(llm_params(&m) / cases[i].total - 1) <= cases[i].tol,
                      "%s: %.5g parameters, published %.5g", cases[i].name, llm_params(&m),
                      cases[i].total);
    }
    llm_model m = load_llm("DeepSeek-V3");   /* 37B activated */
    ck_assert_rel(llm_params_active(&m), 37e9, 0.02);
    ck_assert_int_eq(llm_dense_layers(&m), 3);
    ck_assert_int_eq(m.attention, LLM_ATTN_MLA);
    m = load_llm("Llama-3.1-405B");
    ck_assert_int_eq(m.max_context_tokens, 131072);
    m = load_llm("OPT-13B");
    ck_assert(m.norm == LLM_NORM_LAYER && !m.gated_ffn && m.activation == LLM_ACT_RELU &&
              m.bias == LLM_BIAS_ALL && m.position == LLM_POS_LEARNED && m.tied_embeddings);
    m = load_llm("Qwen2.5-72B");
    ck_assert_int_eq(m.bias, LLM_BIAS_QKV);
}
END_TEST

/* dtypes: names, bytes, and the rules on combinations. */
START_TEST(test_models_precision_rules)
{
    ck_assert_int_eq(llm_dtype_find("fp8"), LLM_FP8);
    ck_assert_int_eq(llm_dtype_find("fp4"), -1);
    ck_assert_double_eq(llm_dtype_bytes(LLM_BF16), 2);
    ck_assert_double_eq(llm_dtype_bytes(LLM_INT8), 1);
    ck_assert_double_eq(llm_dtype_bytes(LLM_INT4), 0.515625);
    sim_err err = {{0}};
    const llm_precision ok[] = {{LLM_INT4, LLM_BF16, LLM_FP8}, {LLM_FP8, LLM_FP8, LLM_FP8},
                                {LLM_INT8, LLM_INT8, LLM_INT8}, {LLM_FP8, LLM_FP16, LLM_INT8}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        ck_assert_msg(llm_check_precision(&ok[i], &err) == 0, "%s", err.msg);
    llm_precision bad = {LLM_BF16, LLM_BF16, LLM_INT4};
    ck_assert_int_eq(llm_check_precision(&bad, &err), -1);
    ck_assert_has(err.msg, "kv_cache dtype int4");
    bad = (llm_precision){LLM_BF16, LLM_FP8, LLM_BF16};
    ck_assert_int_eq(llm_check_precision(&bad, &err), -1);
    ck_assert_has(err.msg, "activations fp8 need weights fp8 too (W8A8)");
    /* weights: linear layers shrink, embeddings and norms stay 16-bit */
    llm_model m = load_llm("Llama-3-70B");
    double w16 = llm_weight_bytes_per_gpu(&m, &PAR_TP(1));
    llm_precision p = {LLM_FP8, LLM_BF16, LLM_BF16};
    ck_assert_int_eq(llm_set_precision(&m, &p, &err), 0);
    double embed = 2.0 * m.vocab * m.hidden * 2;   /* embedding and LM head, bf16 */
    ck_assert_rel(llm_weight_bytes_per_gpu(&m, &PAR_TP(1)), (w16 - embed) / 2 + embed, 1e-4);
}
END_TEST

/* An 8-bit KV cache halves KV bytes per token and so about doubles the
 * blocks an instance holds; MLA caches one latent per layer on every GPU. */
START_TEST(test_models_kv_quantisation_and_mla_latent)
{
    llm_model m = load_llm("Llama-3.1-70B");
    gpu_spec g;
    sim_err err = {{0}};
    ck_assert_int_eq(gpu_spec_load(models_dir(), "H100-SXM-80GB", &g, &err), 0);
    double kv16 = llm_kv_bytes_per_token_per_gpu(&m, &PAR_TP(4));
    int64_t blocks16, blocks8;
    ck_assert_int_eq(kv_capacity_blocks(&m, &g, &PAR_TP(4), 0.9, 2.0 * (1 << 30), 16, &blocks16, &err),
                     0);
    llm_precision p = {LLM_BF16, LLM_BF16, LLM_FP8};
    ck_assert_int_eq(llm_set_precision(&m, &p, &err), 0);
    ck_assert_double_eq(llm_kv_bytes_per_token_per_gpu(&m, &PAR_TP(4)), kv16 / 2);
    ck_assert_int_eq(kv_capacity_blocks(&m, &g, &PAR_TP(4), 0.9, 2.0 * (1 << 30), 16, &blocks8, &err),
                     0);
    ck_assert_int_ge(blocks8, 2 * blocks16 - 1);
    ck_assert_int_le(blocks8, 2 * blocks16 + 1);

    m = load_llm("DeepSeek-V3");   /* kv_lora_rank 512 + rope 64, 61 layers, bf16 */
    for (int tp = 1; tp <= 8; tp *= 2)
        ck_assert_double_eq(llm_kv_bytes_per_token_per_gpu(&m, &PAR_TP(tp)),
                            61.0 * 576 * 2);
}
END_TEST

/* Architecture keys are checked against each other. */
START_TEST(test_models_architecture_rules)
{
    char dir[64], text[900];
    make_tree(dir);
    const struct {
        const char *extra, *want;
    } cases[] = {
        {", \"attention\": \"mha\"", "$.attention: \"mha\" needs kv_heads = heads (4), got 2"},
        {", \"attention\": \"mqa\"", "$.attention: \"mqa\" needs kv_heads = 1, got 2"},
        {", \"kv_lora_rank\": 64", "are for \"mla\" only"},
        {", \"attention\": \"mla\"", "$.kv_lora_rank: missing required key"},
        {", \"norm\": \"batchnorm\"", "$.norm: expected one of: rmsnorm, layernorm; got "
                                          "\"batchnorm\""},
        {", \"dense_layers\": 1", "need experts >= 2"},
        {", \"weight_dtype\": \"fp4\"", "$.weight_dtype: expected one of: bf16, fp16, fp8, "
                                            "int8, int4"},
        {", \"kv_dtype\": \"int4\"", "kv_cache dtype int4"},
        {", \"bytes_per_param\": 1", "$.bytes_per_param: replaced by weight_dtype"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(text, sizeof text, small_llm, cases[i].extra);
        write_file(dir, "llm/Bad.json", text);
        llm_model m;
        sim_err err = {{0}};
        ck_assert_int_eq(llm_model_load(dir, "Bad", &m, &err), -1);
        ck_assert_has(err.msg, cases[i].want);
        ck_assert_has(err.msg, "llm/Bad.json: ");
    }
    /* a dense-then-MoE stack needs the dense width, and fewer dense layers
     * than layers */
    snprintf(text, sizeof text, small_llm,
             ", \"experts\": 4, \"experts_per_token\": 2, \"expert_ffn\": 32, "
             "\"dense_layers\": 2");
    write_file(dir, "llm/Moe.json", text);
    llm_model m;
    sim_err err = {{0}};
    ck_assert_int_eq(llm_model_load(dir, "Moe", &m, &err), -1);
    ck_assert_has(err.msg, "$.dense_layers: expected fewer than layers (2), got 2");
    rm_tree(dir);
}
END_TEST

/* A run config may name a file by path: the same loader, the same errors. */
START_TEST(test_models_resolve_name_or_path)
{
    char dir[64], text[600], path[200];
    make_tree(dir);
    snprintf(text, sizeof text, small_llm, ", \"norm\": \"layernorm\"");
    write_file(dir, "llm/Mine.json", text);
    snprintf(path, sizeof path, "%s/llm/Mine.json", dir);
    llm_model m;
    sim_err err = {{0}};
    ck_assert_msg(llm_model_resolve(models_dir(), path, &m, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(m.name, "Mine");
    ck_assert_int_eq(m.norm, LLM_NORM_LAYER);
    ck_assert_int_eq(llm_model_resolve(models_dir(), "Llama-3-8B", &m, &err), 0);
    ck_assert_str_eq(m.name, "Llama-3-8B");
    snprintf(path, sizeof path, "%s/llm/Nope.json", dir);
    ck_assert_int_eq(llm_model_resolve(models_dir(), path, &m, &err), -1);
    ck_assert_has(err.msg, "Nope.json: cannot open");
    gpu_spec g;
    ck_assert_int_eq(gpu_spec_resolve(models_dir(), "models/gpu/H200-141GB.json", &g, &err), 0);
    ck_assert_str_eq(g.name, "H200-141GB");
    rm_tree(dir);
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
    snprintf(text, sizeof text, small_llm, ", \"shared_experts\": 1.5");
    write_file(dir, "llm/Bad.json", text);
    llm_model m;
    sim_err err = {{0}};
    ck_assert_int_eq(llm_model_load(dir, "Bad", &m, &err), -1);
    snprintf(path, sizeof path, "%s/llm/Bad.json: $.shared_experts: expected an "
             "integer in [0, 64], got 1.5", dir);
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
    ck_assert_double_eq(m.bytes_per_param, 2);
    ck_assert_int_eq(m.prec.kv, LLM_BF16);
    ck_assert(m.gated_ffn && m.norm == LLM_NORM_RMS && m.attention == LLM_ATTN_GQA);
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
    ck_assert_has(err.msg, "available: DeepSeek-V3, Falcon-180B, GPT-J-6B, Llama-2-13B, "
                  "Llama-2-70B, Llama-2-7B, Llama-3-70B, Llama-3-8B, Llama-3.1-405B, "
                  "Llama-3.1-70B, Llama-3.1-8B, "
                  "Mistral-7B, Mixtral-8x7B, OPT-13B, OPT-66B, Qwen2.5-72B, Qwen3-30B-A3B");
    gpu_spec g;
    ck_assert_int_eq(gpu_spec_load(models_dir(), "B200", &g, &err), -1);
    ck_assert_has(err.msg, "available: A100-SXM-80GB, A40-48GB, B200-180GB, H100-SXM-80GB, "
                  "H200-141GB");
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
    ADD(test_models_new_architectures_match_published);
    ADD(test_models_precision_rules);
    ADD(test_models_kv_quantisation_and_mla_latent);
    ADD(test_models_architecture_rules);
    ADD(test_models_resolve_name_or_path);
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
