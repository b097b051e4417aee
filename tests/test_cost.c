/* Tests for models/cost.c: the registry and the roofline cost model,
 * checked against back-of-the-envelope bounds. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "models/cost.h"
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
    cost_result r = run_decode(&f, 1, 1000);
    double bw = f.gpu.hbm_bw_bytes_per_s * f.gpu.bw_efficiency;
    double weights_ns = llm_weight_bytes_per_gpu(&f.model, &PAR_TP(1)) / bw * 1e9;
    ck_assert_rel((double)r.latency_ns, weights_ns, 0.15);
    /* Nearly all bytes read are weights; the GEMM terms are set by bytes. */
    ck_assert_rel(r.weight_bytes, llm_params(&f.model) * 2 -
                  (double)f.model.vocab * f.model.hidden * 2, 0.01);
    ck_assert_rel(r.term_ns[OP_GEMM_FFN_UP],
                  2.0 * 4096 * 14336 * 2 / bw * 1e9 * 32, 0.01);
    cost_model_destroy(f.cm);
}
END_TEST

START_TEST(test_cost_large_prefill_is_compute_bound)
{
    fixture f;
    fixture_init(&f, "Llama-3-8B", "H100-SXM-80GB", 1, 0);
    cost_result r = run_prefill(&f, 8192);
    batch_seq seq = {.q_tokens = 8192};
    batch_shape b = {.prefill = &seq, .n_prefill = 1, .n_sampled = 1};
    op_list l;
    ops_decompose(&f.model, &PAR_TP(1), &b, &l);
    double flops = 0, bytes = 0;
    for (int i = 0; i < l.n; i++) {
        flops += l.op[i].flops * l.op[i].repeat;
        bytes += l.op[i].bytes * l.op[i].repeat;
    }
    double compute_ns = flops / (f.gpu.bf16_flops * f.gpu.gemm_efficiency) * 1e9;
    double memory_ns = bytes / (f.gpu.hbm_bw_bytes_per_s * f.gpu.bw_efficiency) * 1e9;
    /* The GEMMs and attention are compute bound; the memory-bound
     * elementwise ops add about a tenth. */
    ck_assert(compute_ns > 3 * memory_ns);
    ck_assert_rel((double)r.latency_ns, compute_ns, 0.15);
    ck_assert_rel(r.term_ns[OP_GEMM_FFN_UP],
                  32 * 2.0 * 8192 * 28672 * 4096 /
                  (f.gpu.bf16_flops * f.gpu.gemm_efficiency) * 1e9, 1e-9);
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

START_TEST(test_cost_terms_tagged_roofline)
{
    fixture f;
    fixture_init(&f, "Llama-3-8B", "H100-SXM-80GB", 2, 20000);
    cost_result r = run_decode(&f, 8, 300);
    double sum = 0;
    for (int k = 0; k < OP_KIND_COUNT; k++) {
        bool present = k != OP_ATTN_PREFILL && k != OP_MOE_ROUTER &&
                       k != OP_MOE_EXPERTS;
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
                     "$.cost.params.overhead_ns: unknown key; this object takes no keys");
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
    gpu_spec g = {.bf16_flops = 1e15, .hbm_bw_bytes_per_s = 1e12,
                  .nvlink_bw_bytes_per_s = 1e11, .pcie_bw_bytes_per_s = 1e10,
                  .idle_w = 100, .max_w = 500, .gemm_efficiency = 0.5,
                  .bw_efficiency = 0.5, .link_efficiency = 0.5,
                  .kernel_floor_ns = 1000, .collective_latency_ns = 5000};
    op_desc gemm = {.kind = OP_GEMM_QKV, .repeat = 1, .flops = 1e12, .bytes = 1e6};
    ck_assert_double_eq_tol(roofline_op_ns(&g, &gemm), 2e6, 1e-6);
    /* Compute bound at 50% efficiency: half of peak FLOP/s. */
    ck_assert_double_eq_tol(roofline_op_power_w(&g, &gemm, 2e6), 300, 1e-9);
    op_desc tiny = {.kind = OP_NORM, .repeat = 1, .flops = 1, .bytes = 1};
    ck_assert_double_eq(roofline_op_ns(&g, &tiny), 1000);
    op_desc ar = {.kind = OP_ALLREDUCE, .repeat = 1, .bytes = 1e6};
    ck_assert_double_eq_tol(roofline_op_ns(&g, &ar), 1e6 / 5e10 * 1e9 + 5000, 1e-6);
    g.nvlink_bw_bytes_per_s = 0;   /* no NVLink: PCIe */
    ck_assert_double_eq_tol(roofline_op_ns(&g, &ar), 1e6 / 5e9 * 1e9 + 5000, 1e-6);
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
    ADD(test_cost_terms_tagged_roofline);
    ADD(test_cost_empty_batch_costs_overhead);
    ADD(test_cost_unknown_model_name_lists_valid);
    ADD(test_cost_unknown_param_key_rejected);
    ADD(test_cost_invalid_tp_rejected);
    ADD(test_cost_roofline_helpers);
#undef ADD
    return s;
}
