/* Tests for models/cost.c and models/fallback.c: the registry and the
 * roofline cost model (the fitted fallback), checked against
 * back-of-the-envelope bounds, its quantisation and precision rules, and
 * the power model. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "models/cost.h"
#include "models/fallback.h"
#include "sim/jsoncfg.h"
#include "tests/suites.h"

#define ck_assert_has(haystack, needle)                                         \
    ck_assert_msg(strstr((haystack), (needle)) != NULL,                         \
                  "expected '%s' in '%s'", (needle), (haystack))

#define ck_assert_rel(value, want, tol)                                         \
    ck_assert_msg(fabs((value) / (want) - 1.0) <= (tol),                        \
                  "%s = %.6g, expected %.6g within %g", #value, (double)(value), \
                  (double)(want), (double)(tol))

/* A model, a GPU and a roofline cost model over them. */
typedef struct fixture {
    llm_model model;
    gpu_spec gpu;
    cost_model *cm;
} fixture;

static void fixture_init(fixture *f, const char *model, const char *gpu, int tp,
                         sim_time_ns overhead_ns)
{
    sim_err err = {{0}};
    ck_assert_msg(llm_model_load(models_dir(), model, &f->model, &err) == 0, "%s",
                  err.msg);
    ck_assert_msg(gpu_spec_load(models_dir(), gpu, &f->gpu, &err) == 0, "%s",
                  err.msg);
    cost_setup setup = {.model = &f->model, .gpu = &f->gpu, .par = PAR_TP(tp),
                        .iteration_overhead_ns = overhead_ns};
    f->cm = cost_model_create("roofline", &setup, NULL, "$.cost", &err);
    ck_assert_msg(f->cm != NULL, "%s", err.msg);
}

static cost_result run_decode(fixture *f, int32_t n, int64_t ctx_each)
{
    batch_shape b = {.n_decode = n, .decode_ctx_sum = n * ctx_each, .n_sampled = n};
    cost_result r;
    cost_iteration(f->cm, &b, &r);
    return r;
}

static cost_result run_prefill(fixture *f, int32_t tokens)
{
    batch_seq seq = {.q_tokens = tokens, .ctx_tokens = 0};
    batch_shape b = {.prefill = &seq, .n_prefill = 1, .n_sampled = 1};
    cost_result r;
    cost_iteration(f->cm, &b, &r);
    return r;
}

START_TEST(test_cost_decode_batch1_is_memory_bound)
{
    fixture f;
    fixture_init(&f, "Llama-3-8B", "H100-SXM-80GB", 1, 0);
    fb_params p;
    fb_params_for_gpu(&f.gpu, &p);
    cost_result r = run_decode(&f, 1, 1000);
    double bw = f.gpu.hbm_bw_bytes_per_s * p.gemm_memory_eff;
    double weights_ns = llm_weight_bytes_per_gpu(&f.model, &PAR_TP(1)) / bw * 1e9;
    /* weight streaming plus about 300 kernel launches */
    ck_assert(r.latency_ns > weights_ns);
    ck_assert_rel((double)r.latency_ns, weights_ns, 0.25);
    /* Nearly all bytes read are weights. */
    ck_assert_rel(r.weight_bytes, llm_params(&f.model) * 2 -
                  (double)f.model.vocab * f.model.hidden * 2, 0.01);
    /* A GEMM term is its weight bytes at the achievable bandwidth plus a
     * launch, no less. */
    double up_ns = 32 * (2.0 * 4096 * 14336 * 2 / bw * 1e9);
    ck_assert(r.term_ns[OP_GEMM_FFN_UP] >= up_ns);
    ck_assert(r.term_ns[OP_GEMM_FFN_UP] <=
              up_ns * 1.01 + 32 * p.gemm_t0_cycles / f.gpu.sm_clock_hz * 1e9);
    cost_model_destroy(f.cm);
}
END_TEST

START_TEST(test_cost_large_prefill_is_compute_bound)
{
    fixture f;
    fixture_init(&f, "Llama-3-8B", "H100-SXM-80GB", 1, 0);
    fb_params p;
    fb_params_for_gpu(&f.gpu, &p);
    cost_result r = run_prefill(&f, 8192);
    batch_seq seq = {.q_tokens = 8192};
    batch_shape b = {.prefill = &seq, .n_prefill = 1, .n_sampled = 1};
    op_list l;
    ops_decompose(&f.model, &PAR_TP(1), &b, &l);
    double gemm_flops = 0, gemm_bytes = 0;
    for (int i = 0; i < l.n; i++)
        if (op_kind_class(l.op[i].kind) == OP_CLASS_GEMM) {
            gemm_flops += l.op[i].flops * l.op[i].repeat;
            gemm_bytes += l.op[i].bytes * l.op[i].repeat;
        }
    double compute_ns = gemm_flops / (f.gpu.bf16_flops * p.gemm_compute_eff) * 1e9;
    double memory_ns = gemm_bytes / (f.gpu.hbm_bw_bytes_per_s * p.gemm_memory_eff) * 1e9;
    ck_assert(compute_ns > 3 * memory_ns);
    double gemm_ns = r.term_ns[OP_GEMM_QKV] + r.term_ns[OP_GEMM_ATTN_OUT] +
                     r.term_ns[OP_GEMM_FFN_UP] + r.term_ns[OP_GEMM_FFN_DOWN] +
                     r.term_ns[OP_GEMM_LM_HEAD];
    /* 8192 rows fill whole 128-row tiles: at most the last wave is partial */
    ck_assert(gemm_ns >= compute_ns);
    ck_assert_rel(gemm_ns, compute_ns, 0.15);
    /* attention, norms and activations add the rest, compute still dominates */
    ck_assert(r.latency_ns > gemm_ns && r.latency_ns < 1.6 * gemm_ns);
    cost_model_destroy(f.cm);
}
END_TEST

START_TEST(test_cost_latency_monotonic_in_tokens)
{
    fixture f;
    fixture_init(&f, "Mixtral-8x7B", "A100-SXM-80GB", 2, 30000);
    sim_time_ns prev = 0;
    for (int32_t t = 1; t <= 16384; t = t * 3 / 2 + 1) {
        cost_result r = run_prefill(&f, t);
        ck_assert_int_ge(r.latency_ns, prev);
        prev = r.latency_ns;
    }
    prev = 0;
    for (int32_t n = 1; n <= 1024; n = n * 3 / 2 + 1) {
        cost_result r = run_decode(&f, n, 800);
        ck_assert_int_ge(r.latency_ns, prev);
        prev = r.latency_ns;
    }
    cost_model_destroy(f.cm);
}
END_TEST

START_TEST(test_cost_energy_between_idle_and_max)
{
    const int tps[] = {1, 2, 4};
    for (int i = 0; i < 3; i++) {
        fixture f;
        fixture_init(&f, "Llama-2-70B", "H200-141GB", tps[i], 50000);
        cost_result rs[3] = {run_decode(&f, 1, 100), run_decode(&f, 128, 2000),
                             run_prefill(&f, 4096)};
        for (int j = 0; j < 3; j++) {
            double s = rs[j].latency_ns * 1e-9;
            double lo = f.gpu.idle_w * s * tps[i], hi = f.gpu.max_w * s * tps[i];
            ck_assert_msg(rs[j].energy_j >= lo * (1 - 1e-9) &&
                          rs[j].energy_j <= hi * (1 + 1e-9),
                          "energy %g J outside [%g, %g]", rs[j].energy_j, lo, hi);
            ck_assert(rs[j].energy_j > lo * 1.05);   /* work draws above idle */
        }
        ck_assert_double_eq(cost_idle_power_w(f.cm), f.gpu.idle_w * tps[i]);
        cost_model_destroy(f.cm);
    }
}
END_TEST

/* Compute-bound work draws near the GEMM power, memory-bound work near the
 * streaming power, and neither above the board limit. */
START_TEST(test_cost_power_separates_compute_and_memory)
{
    fixture f;
    fixture_init(&f, "Llama-3-8B", "H100-SXM-80GB", 1, 0);
    cost_result pre = run_prefill(&f, 8192), dec = run_decode(&f, 1, 500);
    double w_pre = pre.energy_j / (pre.latency_ns * 1e-9);
    double w_dec = dec.energy_j / (dec.latency_ns * 1e-9);
    ck_assert_msg(w_pre > 0.7 * f.gpu.compute_w && w_pre <= f.gpu.max_w,
                  "prefill draws %.0f W", w_pre);
    ck_assert_msg(w_dec > f.gpu.idle_w + 0.6 * (f.gpu.memory_w - f.gpu.idle_w) &&
                  w_dec < f.gpu.memory_w * 1.1, "decode draws %.0f W", w_dec);
    ck_assert(w_dec < w_pre);
    cost_model_destroy(f.cm);
}
END_TEST

/* energy_scope "node" adds the GPU file's node power for every GPU, busy or
 * idle; anything else is an error naming the path. */
START_TEST(test_cost_node_energy_scope)
{
    llm_model m;
    gpu_spec g;
    sim_err err = {{0}};
    ck_assert_int_eq(llm_model_load(models_dir(), "Llama-2-70B", &m, &err), 0);
    ck_assert_int_eq(gpu_spec_load(models_dir(), "H100-SXM-80GB", &g, &err), 0);
    ck_assert(g.node_w_per_gpu > 0);
    cost_setup setup = {.model = &m, .gpu = &g, .par = PAR_TP(4),
                        .iteration_overhead_ns = 1000};
    cJSON *node = NULL, *bad = NULL;
    ck_assert_int_eq(jcfg_parse("{\"energy_scope\": \"node\"}", "t", &node, &err), 0);
    ck_assert_int_eq(jcfg_parse("{\"energy_scope\": \"rack\"}", "t", &bad, &err), 0);
    cost_model *gpu = cost_model_create("roofline", &setup, NULL, "$.cost.params", &err);
    cost_model *all = cost_model_create("roofline", &setup, node, "$.cost.params", &err);
    ck_assert_ptr_nonnull(gpu);
    ck_assert_ptr_nonnull(all);
    ck_assert_ptr_null(cost_model_create("table", &setup, bad, "$.cost.params", &err));
    ck_assert_has(err.msg, "$.cost.params.energy_scope: expected \"gpu\"");
    batch_shape b = {.n_decode = 16, .decode_ctx_sum = 16 * 900, .n_sampled = 16};
    cost_result a, c;
    cost_iteration(gpu, &b, &a);
    cost_iteration(all, &b, &c);
    ck_assert_int_eq(a.latency_ns, c.latency_ns);
    ck_assert_double_eq_tol(c.energy_j - a.energy_j,
                            g.node_w_per_gpu * 4 * a.latency_ns * 1e-9, 1e-9);
    ck_assert_double_eq_tol(cost_idle_power_w(all) - cost_idle_power_w(gpu),
                            g.node_w_per_gpu * 4, 1e-9);
    cost_model_destroy(gpu);
    cost_model_destroy(all);
    cJSON_Delete(node);
    cJSON_Delete(bad);
}
END_TEST

/* GEMMs compute in the activations' dtype: FP8 halves a compute-bound
 * prefill's GEMM time on an H100; weight-only FP8 halves the weights a
 * memory-bound decode streams; a GPU without FP8 tensor cores refuses FP8
 * activations. */
START_TEST(test_cost_precision_sets_rates_and_bytes)
{
    llm_model m;
    gpu_spec h100, a100;
    sim_err err = {{0}};
    ck_assert_int_eq(llm_model_load(models_dir(), "Llama-3-70B", &m, &err), 0);
    ck_assert_int_eq(gpu_spec_load(models_dir(), "H100-SXM-80GB", &h100, &err), 0);
    ck_assert_int_eq(gpu_spec_load(models_dir(), "A100-SXM-80GB", &a100, &err), 0);
    llm_model fp8 = m, w8 = m;
    llm_precision p8 = {LLM_FP8, LLM_FP8, LLM_FP8}, pw = {LLM_FP8, LLM_BF16, LLM_BF16};
    ck_assert_int_eq(llm_set_precision(&fp8, &p8, &err), 0);
    ck_assert_int_eq(llm_set_precision(&w8, &pw, &err), 0);
    cost_setup s16 = {.model = &m, .gpu = &h100, .par = PAR_TP(4)};
    cost_setup s8 = {.model = &fp8, .gpu = &h100, .par = PAR_TP(4)};
    cost_model *c16 = cost_model_create("roofline", &s16, NULL, "$", &err);
    cost_model *c8 = cost_model_create("roofline", &s8, NULL, "$", &err);
    batch_seq seq = {.q_tokens = 8192};
    batch_shape pre = {.prefill = &seq, .n_prefill = 1, .n_sampled = 1};
    cost_result r16, r8;
    cost_iteration(c16, &pre, &r16);
    cost_iteration(c8, &pre, &r8);
    ck_assert_rel(r8.term_ns[OP_GEMM_FFN_UP] / r16.term_ns[OP_GEMM_FFN_UP], 0.5, 0.05);
    /* the FP8 KV cache halves decode attention's KV bytes */
    batch_shape dec = {.n_decode = 64, .decode_ctx_sum = 64 * 4000, .n_sampled = 64};
    cost_iteration(c16, &dec, &r16);
    cost_iteration(c8, &dec, &r8);
    ck_assert_rel(r8.kv_bytes / r16.kv_bytes, 0.5, 1e-9);
    cost_model_destroy(c16);
    cost_model_destroy(c8);

    cost_setup a8 = {.model = &fp8, .gpu = &a100, .par = PAR_TP(4)};
    ck_assert_ptr_null(cost_model_create("roofline", &a8, NULL, "$", &err));
    ck_assert_has(err.msg, "A100-SXM-80GB has no fp8 tensor-core rate");
    cost_setup aw = {.model = &w8, .gpu = &a100, .par = PAR_TP(4)},
               a16 = {.model = &m, .gpu = &a100, .par = PAR_TP(4)};
    cost_model *cw = cost_model_create("roofline", &aw, NULL, "$", &err);
    ck_assert_msg(cw != NULL, "%s", err.msg);
    cost_model *cb = cost_model_create("roofline", &a16, NULL, "$", &err);
    batch_shape one = {.n_decode = 1, .decode_ctx_sum = 100, .n_sampled = 1};
    cost_iteration(cw, &one, &r8);
    cost_iteration(cb, &one, &r16);
    ck_assert(r8.weight_bytes < 0.56 * r16.weight_bytes);
    ck_assert(r8.latency_ns < 0.8 * r16.latency_ns);
    cost_model_destroy(cw);
    cost_model_destroy(cb);
}
END_TEST

START_TEST(test_cost_terms_tagged_roofline)
{
    fixture f;
    fixture_init(&f, "Llama-3-8B", "H100-SXM-80GB", 2, 20000);
    cost_result r = run_decode(&f, 8, 300);
    double sum = 0;
    for (int k = 0; k < OP_KIND_COUNT; k++) {
        bool present = k != OP_ATTN_PREFILL && k != OP_MOE_ROUTER &&
                       k != OP_MOE_EXPERTS && k != OP_GEMM_Q_UP && k != OP_GEMM_KV_UP &&
                       k != OP_A2A_DISPATCH && k != OP_A2A_COMBINE && k != OP_PP_SEND &&
                       k != OP_EXPERT_MOVE && k != OP_EXPERT_LOAD;
        ck_assert_msg(r.term_source[k] ==
                          (present ? COST_SRC_ROOFLINE : COST_SRC_NONE),
                      "term %s", op_kind_name(k));
        ck_assert(present ? r.term_ns[k] > 0 : r.term_ns[k] == 0);
        sum += r.term_ns[k];
    }
    ck_assert_int_eq(r.latency_ns, llround(sum) + 20000);
    ck_assert_str_eq(cost_source_name(COST_SRC_ROOFLINE), "roofline");
    ck_assert_str_eq(cost_source_name(COST_SRC_NONE), "none");
    cost_model_destroy(f.cm);
}
END_TEST

START_TEST(test_cost_empty_batch_costs_overhead)
{
    fixture f;
    fixture_init(&f, "Llama-3-8B", "H100-SXM-80GB", 1, 40000);
    batch_shape b = {0};
    cost_result r;
    cost_iteration(f.cm, &b, &r);
    ck_assert_int_eq(r.latency_ns, 40000);
    ck_assert_double_eq_tol(r.energy_j, 40000e-9 * f.gpu.idle_w, 1e-12);
    cost_model_destroy(f.cm);
}
END_TEST

START_TEST(test_cost_unknown_model_name_lists_valid)
{
    sim_err err = {{0}};
    ck_assert_ptr_null(cost_model_find("vidur", &err));
    ck_assert_str_eq(err.msg, "unknown cost model 'vidur'; expected one of: roofline, table");
    ck_assert_ptr_nonnull(cost_model_find("roofline", &err));
    ck_assert_ptr_eq(cost_models[0], cost_model_find("roofline", NULL));

    llm_model m;
    gpu_spec g;
    ck_assert_int_eq(llm_model_load(models_dir(), "Llama-3-8B", &m, &err), 0);
    ck_assert_int_eq(gpu_spec_load(models_dir(), "H100-SXM-80GB", &g, &err), 0);
    cost_setup setup = {.model = &m, .gpu = &g, .par = PAR_TP(1)};
    ck_assert_ptr_null(cost_model_create("tables", &setup, NULL, "$.cost", &err));
    ck_assert_has(err.msg, "expected one of: roofline");
}
END_TEST

START_TEST(test_cost_unknown_param_key_rejected)
{
    llm_model m;
    gpu_spec g;
    sim_err err = {{0}};
    ck_assert_int_eq(llm_model_load(models_dir(), "Llama-3-8B", &m, &err), 0);
    ck_assert_int_eq(gpu_spec_load(models_dir(), "H100-SXM-80GB", &g, &err), 0);
    cost_setup setup = {.model = &m, .gpu = &g, .par = PAR_TP(1)};
    cJSON *params = NULL;
    ck_assert_int_eq(jcfg_parse("{\"overhead_ns\": 5}", "t", &params, &err), 0);
    ck_assert_ptr_null(cost_model_create("roofline", &setup, params, "$.cost.params",
                                         &err));
    ck_assert_str_eq(err.msg,
                     "$.cost.params.overhead_ns: unknown key; expected one of: energy_scope");
    cJSON_Delete(params);

    ck_assert_int_eq(jcfg_parse("{}", "t", &params, &err), 0);
    cost_model *cm = cost_model_create("roofline", &setup, params, "$.cost.params",
                                       &err);
    ck_assert_ptr_nonnull(cm);
    ck_assert_ptr_eq(cost_model_setup(cm)->model, &m);
    ck_assert_int_eq(cost_model_setup(cm)->par.tp, 1);
    cost_model_destroy(cm);
    cost_model_destroy(NULL);
    cJSON_Delete(params);
}
END_TEST

START_TEST(test_cost_invalid_tp_rejected)
{
    llm_model m;
    gpu_spec g;
    sim_err err = {{0}};
    ck_assert_int_eq(llm_model_load(models_dir(), "Llama-2-13B", &m, &err), 0);
    ck_assert_int_eq(gpu_spec_load(models_dir(), "A100-SXM-80GB", &g, &err), 0);
    cost_setup setup = {.model = &m, .gpu = &g, .par = PAR_TP(3)};
    ck_assert_ptr_null(cost_model_create("roofline", &setup, NULL, "$", &err));
    ck_assert_has(err.msg, "does not divide");
}
END_TEST

START_TEST(test_cost_roofline_helpers)
{
    /* the GPU file's overrides replace the fitted efficiencies and launch */
    gpu_spec g = {.bf16_flops = 1e15, .hbm_bw_bytes_per_s = 1e12,
                  .nvlink_bw_bytes_per_s = 1e11, .pcie_bw_bytes_per_s = 1e10,
                  .sm_count = 100, .sm_clock_hz = 1e9, .idle_w = 100, .max_w = 500,
                  .compute_w = 450, .memory_w = 250, .gemm_efficiency = 0.5,
                  .bw_efficiency = 0.5, .link_efficiency = 0.5, .kernel_floor_ns = 1000,
                  .collective_latency_ns = 5000, .collective_rank_ns = 100,
                  .overrides = GPU_OVR_GEMM_EFF | GPU_OVR_BW_EFF | GPU_OVR_FLOOR};
    op_desc gemm = {.kind = OP_GEMM_QKV, .repeat = 1, .flops = 1e12, .bytes = 1e6};
    /* a shapeless GEMM: launch plus the smooth maximum of 2e6 and 2e3 ns */
    ck_assert_double_eq_tol(roofline_op_ns(&g, &gemm), 2e6 + 1000, 1e-3);
    /* compute bound at the achievable rate: the compute power */
    ck_assert_double_eq_tol(roofline_op_power_w(&g, &gemm, 2e6), 450, 0.5);
    op_desc stream = {.kind = OP_NORM, .repeat = 1, .bytes = 1e9};
    double t = roofline_op_ns(&g, &stream);
    ck_assert_double_eq_tol(t, 2e6 + 1000, 1e-3);
    ck_assert_double_eq_tol(roofline_op_power_w(&g, &stream, t), 250, 0.5);
    ck_assert(roofline_op_power_w(&g, &stream, 1) <= g.max_w);
    op_desc tiny = {.kind = OP_NORM, .repeat = 1, .flops = 1, .bytes = 1};
    ck_assert_double_eq_tol(roofline_op_ns(&g, &tiny), 1000, 0.01);
    op_desc ar = {.kind = OP_ALLREDUCE, .repeat = 1, .bytes = 1e6, .ranks = 4};
    ck_assert_double_eq_tol(roofline_op_ns(&g, &ar), 1e6 / 5e10 * 1e9 + 5000 + 200, 1e-6);
    g.nvlink_bw_bytes_per_s = 0;   /* no NVLink: PCIe */
    ck_assert_double_eq_tol(roofline_op_ns(&g, &ar), 1e6 / 5e9 * 1e9 + 5000 + 200, 1e-6);
    /* compute and memory time equal: the transition is slower than either */
    op_desc both = {.kind = OP_GEMM_QKV, .repeat = 1, .flops = 1e12, .bytes = 1e9};
    ck_assert_double_eq_tol(roofline_op_ns(&g, &both), 1000 + 2e6 * pow(2, 0.25), 1);
}
END_TEST

/* Tile and wave quantisation: one row past a 128-row tile doubles the tiles;
 * one more wave of tiles than the SMs hold costs a whole wave; grouped MoE
 * GEMMs pad every expert's rows. */
START_TEST(test_cost_fallback_quantises_tiles_and_waves)
{
    gpu_spec g = {.bf16_flops = 1e15, .hbm_bw_bytes_per_s = 1e15, .sm_count = 8,
                  .sm_clock_hz = 1e9, .idle_w = 1, .max_w = 2, .compute_w = 2,
                  .memory_w = 2, .gemm_efficiency = 1, .bw_efficiency = 1,
                  .kernel_floor_ns = 0, .link_efficiency = 1, .collective_latency_ns = 0,
                  .overrides = GPU_OVR_GEMM_EFF | GPU_OVR_BW_EFF | GPU_OVR_FLOOR};
    /* n = 8 tiles of 128: one wave at m = 128 */
    op_desc a = {.kind = OP_GEMM_QKV, .repeat = 1, .m = 128, .n = 1024, .k = 4096};
    a.flops = 2.0 * a.m * a.n * a.k;
    op_desc b = a;
    b.m = 129;
    b.flops = 2.0 * b.m * b.n * b.k;
    double ta = roofline_op_ns(&g, &a), tb = roofline_op_ns(&g, &b);
    ck_assert_double_eq_tol(ta, a.flops / 1e15 * 1e9, 1e-6);
    ck_assert_double_eq_tol(tb / ta, 2, 1e-6);   /* two waves, second nearly empty */
    /* 9 tiles on 8 SMs: two waves */
    op_desc c = a;
    c.n = 1152;
    c.flops = 2.0 * c.m * c.n * c.k;
    ck_assert_double_eq_tol(roofline_op_ns(&g, &c) / ta, 2, 1e-6);
    /* grouped: 64 experts of 4 rows each execute 64 row blocks of 64, 16
     * times the FLOPs; a plain GEMM is counted at most 4 times its own */
    op_desc e = {.kind = OP_MOE_EXPERTS, .repeat = 1, .m = 32, .n = 512, .k = 1024,
                 .groups = 64};
    e.flops = 2.0 * 256 * 3 * 1024 * 512;   /* 256 (token, expert) pairs */
    op_desc dense = e;
    dense.groups = 0;
    ck_assert_double_eq_tol(roofline_op_ns(&g, &e) / roofline_op_ns(&g, &dense), 4, 1e-6);
}
END_TEST

Suite *cost_suite(void)
{
    Suite *s = suite_create("cost");
    TCase *tc;
#define ADD(fn)                         \
    tc = tcase_create(#fn);             \
    tcase_add_test(tc, fn);             \
    suite_add_tcase(s, tc)
    ADD(test_cost_decode_batch1_is_memory_bound);
    ADD(test_cost_large_prefill_is_compute_bound);
    ADD(test_cost_latency_monotonic_in_tokens);
    ADD(test_cost_energy_between_idle_and_max);
    ADD(test_cost_power_separates_compute_and_memory);
    ADD(test_cost_node_energy_scope);
    ADD(test_cost_precision_sets_rates_and_bytes);
    ADD(test_cost_terms_tagged_roofline);
    ADD(test_cost_empty_batch_costs_overhead);
    ADD(test_cost_unknown_model_name_lists_valid);
    ADD(test_cost_unknown_param_key_rejected);
    ADD(test_cost_invalid_tp_rejected);
    ADD(test_cost_roofline_helpers);
    ADD(test_cost_fallback_quantises_tiles_and_waves);
#undef ADD
    return s;
}
