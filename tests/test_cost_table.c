/* Tests for measured cost tables (models/cost_table.c) and calib/'s host
 * side (plans, synthetic tables, leave-one-out, layer comparison). Tables
 * are synthetic: a plan priced by the roofline of a GPU file (each point
 * by its FLOPs and bytes alone, as calib-tool synth prices it), so a table
 * that works must give that back. Imported tables: test_import.c. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calib/layercmp.h"
#include "calib/nvml.h"
#include "calib/planner.h"
#include "calib/synth.h"
#include "models/cost_table.h"
#include "sim/jsoncfg.h"
#include "tests/suites.h"
#include "tests/testutil.h"

#define TEST_TABLE "tests/data/cost_table_synthetic.json"

#define ck_assert_has(haystack, needle)                                         \
    ck_assert_msg(strstr((haystack), (needle)) != NULL,                         \
                  "expected '%s' in '%s'", (needle), (haystack))

/* ---- fixtures -------------------------------------------------------------- */

static void load_model_gpu(const char *model, const char *gpu, llm_model *m, gpu_spec *g)
{
    sim_err err = {{0}};
    ck_assert_msg(llm_model_load(models_dir(), model, m, &err) == 0, "%s", err.msg);
    ck_assert_msg(gpu_spec_load(models_dir(), gpu, g, &err) == 0, "%s", err.msg);
}

/* Scales the latencies of a synthetic table's entries of `family` whose
 * param `param` is `value` (param < 0: every entry of the family). */
typedef struct synth_scale {
    ctab_family family;
    int param;
    int64_t value;
    double factor;
} synth_scale;

static const synth_scale gemm_x2 = {CTAB_GEMM, -1, 0, 2};

/* Writes the synthetic table of `models` (full grids) for GPU `gpu` into a
 * file in a fresh temporary folder: latencies scaled by `scale` (NULL:
 * none), idle power idle_w (0: the GPU file's). Returns the path; the
 * caller removes it with drop_table. */
static char *synth_table(const char *models, const char *gpu, const synth_scale *scale,
                         double idle_w, int layers, calib_plan *plan_out)
{
    sim_err err = {{0}};
    calib_plan plan;
    calib_plan_opts o = {.models = models, .layers = layers};
    ck_assert_msg(calib_plan_build(models_dir(), &o, &plan, &err) == 0, "%s", err.msg);
    gpu_spec g;
    ck_assert_int_eq(gpu_spec_load(models_dir(), gpu, &g, &err), 0);
    calib_point_result **res = calib_results_alloc(&plan);
    calib_synth_results(&plan, &g, res);
    for (int i = 0; scale && i < plan.n_entries; i++) {
        const calib_entry *e = &plan.entry[i];
        if (e->family != scale->family ||
            (scale->param >= 0 && e->p[scale->param] != scale->value))
            continue;
        for (int j = 0; j < e->n_points; j++) {
            res[i][j].median_ns *= scale->factor;
            res[i][j].p10_ns *= scale->factor;
            res[i][j].p90_ns *= scale->factor;
        }
    }
    calib_run_info info;
    calib_synth_info(&plan, &g, &info);
    if (idle_w > 0)
        info.idle_w = idle_w;
    char *dir = tu_tempdir();
    char *path = sim_xmalloc(strlen(dir) + 16);
    sprintf(path, "%s/t.json", dir);
    free(dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(calib_table_write(f, &plan, res, ~0u, &info), 0);
    fclose(f);
    calib_results_free(res, plan.n_entries);
    if (plan_out)
        *plan_out = plan;
    else
        calib_plan_fini(&plan);
    return path;
}

/* A cost model of `name` for model/gpu/tp; params as JSON text (or NULL). */
static cost_model *make_cm(const char *name, const llm_model *m, const gpu_spec *g, int tp,
                           const char *params_json, sim_err *err)
{
    cJSON *params = NULL;
    if (params_json)
        ck_assert_int_eq(jcfg_parse(params_json, "params", &params, err), 0);
    cost_setup setup = {.model = m, .gpu = g, .par = PAR_TP(tp), .iteration_overhead_ns = 0};
    cost_model *cm = cost_model_create(name, &setup, params, "$.cost.params", err);
    cJSON_Delete(params);
    return cm;
}

static cost_model *table_cm(const char *path, const llm_model *m, const gpu_spec *g, int tp)
{
    char params[1200];
    snprintf(params, sizeof params, "{\"table\": \"%s\"}", path);
    sim_err err = {{0}};
    cost_model *cm = make_cm("table", m, g, tp, params, &err);
    ck_assert_msg(cm != NULL, "%s", err.msg);
    return cm;
}

static batch_shape decode_batch(int32_t n, int64_t kv_tokens_each)
{
    return (batch_shape){.n_decode = n, .decode_ctx_sum = n * (kv_tokens_each - 1),
                         .n_sampled = n};
}

/* Removes a table written by synth_table or mutated_table and its folder
 * (which must hold nothing else by now); frees path. */
static void drop_table(char *path)
{
    ck_assert_int_eq(unlink(path), 0);
    *strrchr(path, '/') = 0;
    ck_assert_msg(rmdir(path) == 0, "cannot remove %s", path);
    free(path);
}

/* Mutates the test table with `edit` and writes it to a temp file (remove
 * it with drop_table). */
static char *mutated_table(void (*edit)(cJSON *root))
{
    sim_err err = {{0}};
    cJSON *root;
    ck_assert_msg(jcfg_load_file(TEST_TABLE, &root, &err) == 0, "%s", err.msg);
    edit(root);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    char *dir = tu_tempdir();
    char *path = sim_xmalloc(strlen(dir) + 16);
    sprintf(path, "%s/bad.json", dir);
    free(dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    cJSON_free(text);
    return path;
}

static cJSON *gemm_entry0(cJSON *root)
{
    cJSON *fam = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "families"), "gemm");
    return cJSON_GetArrayItem(cJSON_GetObjectItem(fam, "entries"), 0);
}

/* What calib-tool synth priced an op's point at: the roofline of its FLOPs
 * and bytes alone (no shape), as its family's op kind (calib/synth.c);
 * collectives, which no synthetic table has, at the plain roofline. */
static double synth_ns(const gpu_spec *g, const llm_model *m, int tp, const op_desc *op)
{
    ctab_key key;
    if (ctab_key_of_op(m, tp, op, &key) < 0)
        return roofline_op_ns(g, op);
    static const op_kind kind_of[CTAB_FAMILY_COUNT] = {
        [CTAB_GEMM] = OP_GEMM_QKV, [CTAB_MOE_ROUTER] = OP_MOE_ROUTER,
        [CTAB_MOE_EXPERTS] = OP_MOE_EXPERTS, [CTAB_ATTN_PREFILL] = OP_ATTN_PREFILL,
        [CTAB_ATTN_DECODE] = OP_ATTN_DECODE, [CTAB_EMBED] = OP_EMBED, [CTAB_NORM] = OP_NORM,
        [CTAB_ROPE] = OP_ROPE, [CTAB_ACT] = OP_ACT, [CTAB_SAMPLE] = OP_SAMPLE,
        [CTAB_COPY] = OP_NORM, [CTAB_ALLREDUCE] = OP_ALLREDUCE};
    op_desc bare = {.kind = kind_of[key.family], .repeat = 1, .flops = op->flops,
                    .bytes = op->bytes};
    return roofline_op_ns(g, &bare);
}

/* The synthetic prices of a batch's ops, summed per kind. */
static void synth_terms(const gpu_spec *g, const llm_model *m, int tp, const batch_shape *b,
                        double term[OP_KIND_COUNT], double *total)
{
    op_list ops;
    ops_decompose(m, &PAR_TP(tp), b, &ops);
    memset(term, 0, OP_KIND_COUNT * sizeof *term);
    *total = 0;
    for (int i = 0; i < ops.n; i++) {
        op_desc op = ops.op[i];
        /* several prefill chunks: a table prices the mean chunk, once per
         * chunk (its launch time included each time) */
        double chunks = op.kind == OP_ATTN_PREFILL && op.n > 1 ? (double)op.n : 1;
        op.flops /= chunks;
        op.bytes /= chunks;
        double ns = chunks * synth_ns(g, m, tp, &op) * op.repeat;
        term[op.kind] += ns;
        *total += ns;
    }
}

/* ---- exactness and interpolation -------------------------------------------- */

START_TEST(test_ctab_grid_points_reproduce_roofline)
{
    llm_model m;
    gpu_spec g;
    load_model_gpu("Llama-3-8B", "H100-SXM-80GB", &m, &g);
    char *path = synth_table("Llama-3-8B", "H100-SXM-80GB", NULL, 0, 0, NULL);
    for (int tp = 1; tp <= 2; tp++) {
        cost_model *tab = table_cm(path, &m, &g, tp);
        batch_shape shapes[16];
        batch_seq chunks[6];
        int n = 0;
        const int32_t ns[] = {1, 4, 64};
        const int64_t ctxs[] = {64, 1024, 8192};
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
                shapes[n++] = decode_batch(ns[i], ctxs[j]);
        shapes[n++] = decode_batch(512, 1024);
        const int32_t qs[] = {16, 1024, 4096};
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 2; j++) {
                chunks[i * 2 + j] = (batch_seq){.q_tokens = qs[i], .ctx_tokens = j ? 2048 : 0};
                shapes[n++] = (batch_shape){.prefill = &chunks[i * 2 + j], .n_prefill = 1,
                                            .n_sampled = 1};
            }
        for (int s = 0; s < n; s++) {
            cost_result a;
            double want[OP_KIND_COUNT], total;
            cost_iteration(tab, &shapes[s], &a);
            synth_terms(&g, &m, tp, &shapes[s], want, &total);
            for (int k = 0; k < OP_KIND_COUNT; k++) {
                if (want[k] == 0) {
                    ck_assert_int_eq(a.term_source[k], COST_SRC_NONE);
                    continue;
                }
                ck_assert_msg(fabs(a.term_ns[k] / want[k] - 1) < 1e-6,
                              "tp %d shape %d %s: table %.6g ns, synthetic %.6g ns", tp, s,
                              op_kind_name(k), a.term_ns[k], want[k]);
                ck_assert_int_eq(a.term_source[k],
                                 k == OP_ALLREDUCE ? COST_SRC_ROOFLINE : COST_SRC_TABLE);
            }
        }
        cost_model_destroy(tab);
    }
    drop_table(path);
}
END_TEST

/* Between grid points log-log interpolation of a convex curve (the
 * roofline: a max of power laws) overestimates it by at most a few tens of
 * percent where a kink falls between two points, and not at all elsewhere. */
START_TEST(test_ctab_between_points_within_interpolation_error)
{
    llm_model m;
    gpu_spec g;
    load_model_gpu("Llama-3-8B", "H100-SXM-80GB", &m, &g);
    char *path = synth_table("Llama-3-8B", "H100-SXM-80GB", NULL, 0, 0, NULL);
    cost_model *tab = table_cm(path, &m, &g, 1);
    uint64_t s = 12345;
    double worst = 0, sum = 0;
    int count = 0;
    for (int it = 0; it < 300; it++) {
        batch_seq chunks[4];
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int n_prefill = (int)(s >> 62);   /* 0..3 */
        for (int i = 0; i < n_prefill; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            chunks[i] = (batch_seq){.q_tokens = 1 + (int32_t)((s >> 33) % 3000),
                                    .ctx_tokens = (int32_t)((s >> 20) % 4000)};
        }
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int32_t n_dec = (int32_t)((s >> 33) % 300);
        int64_t ctx = 40 + (int64_t)((s >> 10) % 7000);
        if (n_prefill + n_dec == 0)
            n_dec = 1;
        batch_shape b = {.prefill = chunks, .n_prefill = n_prefill, .n_decode = n_dec,
                         .decode_ctx_sum = n_dec * ctx, .n_sampled = n_prefill + n_dec};
        cost_result a;
        double want[OP_KIND_COUNT], total;
        cost_iteration(tab, &b, &a);
        synth_terms(&g, &m, 1, &b, want, &total);
        for (int k = 0; k < OP_KIND_COUNT; k++) {
            if (want[k] == 0)
                continue;
            double e = a.term_ns[k] / want[k] - 1;
            /* several chunks of different lengths are priced at their mean
             * chunk, whose FLOPs are not the mean of theirs (causal pairs
             * grow as q^2): a few percent more either way */
            double lo = k == OP_ATTN_PREFILL && n_prefill > 1 ? -0.10 : -0.05;
            ck_assert_msg(e > lo && e < 0.5, "%s: table %.6g ns vs synthetic %.6g ns",
                          op_kind_name(k), a.term_ns[k], want[k]);
        }
        double e = (double)a.latency_ns / total - 1;
        ck_assert_msg(fabs(e) < 0.15, "iteration: table %lld ns vs synthetic %.0f ns",
                      (long long)a.latency_ns, total);
        worst = fmax(worst, fabs(e));
        sum += fabs(e);
        count++;
    }
    ck_assert_msg(sum / count < 0.05, "mean |error| %.3f", sum / count);
    cost_model_destroy(tab);
    drop_table(path);
}
END_TEST

/* A table twice as slow as the roofline for GEMMs: beyond the grid (and for
 * shapes it lacks) the measured fraction, one half, is held (within the
 * launch time, which does not scale with the work). */
START_TEST(test_ctab_out_of_grid_holds_measured_fraction)
{
    llm_model m;
    gpu_spec g;
    load_model_gpu("Llama-3-8B", "H100-SXM-80GB", &m, &g);
    char *path = synth_table("Llama-3-8B", "H100-SXM-80GB", &gemm_x2, 0, 0, NULL);
    cost_model *tab = table_cm(path, &m, &g, 1);
    batch_seq big = {.q_tokens = 20000, .ctx_tokens = 0};   /* m beyond 16384 */
    batch_shape b = {.prefill = &big, .n_prefill = 1, .n_sampled = 1};
    cost_result a;
    double r[OP_KIND_COUNT], total;
    cost_iteration(tab, &b, &a);
    synth_terms(&g, &m, 1, &b, r, &total);
    const op_kind gemms[] = {OP_GEMM_QKV, OP_GEMM_ATTN_OUT, OP_GEMM_FFN_UP, OP_GEMM_FFN_DOWN};
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(fabs(a.term_ns[gemms[i]] / r[gemms[i]] - 2) < 0.02, "%s: %.4f",
                      op_kind_name(gemms[i]), a.term_ns[gemms[i]] / r[gemms[i]]);
        ck_assert_int_eq(a.term_source[gemms[i]], COST_SRC_ROOFLINE);
    }
    /* the LM head (m = 1) is on the grid: twice the roofline, from the table */
    ck_assert_double_eq_tol(a.term_ns[OP_GEMM_LM_HEAD] / r[OP_GEMM_LM_HEAD], 2, 1e-6);
    ck_assert_int_eq(a.term_source[OP_GEMM_LM_HEAD], COST_SRC_TABLE);
    /* the prefill is also beyond the attention grid's q axis */
    ck_assert_int_eq(a.term_source[OP_ATTN_PREFILL], COST_SRC_ROOFLINE);
    ck_assert(a.term_ns[OP_ATTN_PREFILL] > 0);
    /* decode context shorter than the grid's first point */
    batch_shape d = decode_batch(8, 16);
    cost_iteration(tab, &d, &a);
    ck_assert_int_eq(a.term_source[OP_ATTN_DECODE], COST_SRC_ROOFLINE);
    ck_assert(a.term_ns[OP_ATTN_DECODE] > 0 && isfinite(a.term_ns[OP_ATTN_DECODE]));
    ck_assert_int_eq(a.term_source[OP_GEMM_QKV], COST_SRC_TABLE);
    cost_model_destroy(tab);
    drop_table(path);
}
END_TEST

START_TEST(test_ctab_unknown_shape_uses_nearest_entry)
{
    llm_model m;
    gpu_spec g;
    load_model_gpu("Llama-2-7B", "H100-SXM-80GB", &m, &g);
    char *path = synth_table("Llama-3-8B", "H100-SXM-80GB", &gemm_x2, 0, 0, NULL);
    cost_model *tab = table_cm(path, &m, &g, 1);
    batch_seq chunk = {.q_tokens = 4096, .ctx_tokens = 0};
    batch_shape b = {.prefill = &chunk, .n_prefill = 1, .n_sampled = 1};
    cost_result a;
    double r[OP_KIND_COUNT], total;
    cost_iteration(tab, &b, &a);
    synth_terms(&g, &m, 1, &b, r, &total);
    /* Llama-2-7B's QKV and FFN shapes are not Llama-3-8B's: nearest entry,
     * its fraction (one half) held, source roofline */
    const op_kind other[] = {OP_GEMM_QKV, OP_GEMM_FFN_UP, OP_GEMM_FFN_DOWN};
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(fabs(a.term_ns[other[i]] / r[other[i]] - 2) < 0.02, "%s: %.4f",
                      op_kind_name(other[i]), a.term_ns[other[i]] / r[other[i]]);
        ck_assert_int_eq(a.term_source[other[i]], COST_SRC_ROOFLINE);
    }
    /* the attention output projection (4096 x 4096) is the same shape */
    ck_assert_int_eq(a.term_source[OP_GEMM_ATTN_OUT], COST_SRC_TABLE);
    ck_assert_double_eq_tol(a.term_ns[OP_GEMM_ATTN_OUT] / r[OP_GEMM_ATTN_OUT], 2, 1e-6);
    /* MHA heads (32 KV heads) are not in a GQA model's table */
    ck_assert_int_eq(a.term_source[OP_ATTN_PREFILL], COST_SRC_ROOFLINE);
    cost_model_destroy(tab);
    drop_table(path);
}
END_TEST

/* MoE experts are measured at skews 0 and 1.2 (here the skew-1.2 entry is
 * made three times the roofline): any other skew is priced from the
 * nearest of the two, 0.05 and 0.5 from uniform routing, 1.0 and 2.0 from
 * 1.2. */
START_TEST(test_ctab_moe_skew_priced_from_nearest_measured)
{
    llm_model m;
    gpu_spec g;
    load_model_gpu("Mixtral-8x7B", "H100-SXM-80GB", &m, &g);
    const synth_scale skewed_x3 = {CTAB_MOE_EXPERTS, CTAB_SKEW_PARAM, 1200, 3};
    char *path = synth_table("Mixtral-8x7B", "H100-SXM-80GB", &skewed_x3, 0, 0, NULL);
    const struct {
        double skew, ratio;
        cost_source source;
    } cases[] = {{0, 1, COST_SRC_TABLE},      {0.05, 1, COST_SRC_ROOFLINE},
                 {0.5, 1, COST_SRC_ROOFLINE}, {1.0, 3, COST_SRC_ROOFLINE},
                 {1.2, 3, COST_SRC_TABLE},    {2.0, 3, COST_SRC_ROOFLINE}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        llm_set_moe_skew(&m, cases[i].skew);
        cost_model *tab = table_cm(path, &m, &g, 1);
        batch_shape b = decode_batch(16, 1024);   /* 16 tokens: a grid point */
        cost_result a;
        double r[OP_KIND_COUNT], total;
        cost_iteration(tab, &b, &a);
        synth_terms(&g, &m, 1, &b, r, &total);
        double ratio = a.term_ns[OP_MOE_EXPERTS] / r[OP_MOE_EXPERTS];
        /* exact on a measured skew; through the held fraction elsewhere
         * (within the launch time, which does not scale with the bytes) */
        double tol = cases[i].source == COST_SRC_TABLE ? 1e-6 : 0.03;
        ck_assert_msg(fabs(ratio - cases[i].ratio) < tol, "skew %g: table/roofline %.6g, "
                      "expected %g", cases[i].skew, ratio, cases[i].ratio);
        ck_assert_int_eq(a.term_source[OP_MOE_EXPERTS], cases[i].source);
        cost_model_destroy(tab);
    }
    drop_table(path);
}
END_TEST

START_TEST(test_ctab_energy_and_idle_power_from_table)
{
    llm_model m;
    gpu_spec g;
    load_model_gpu("Llama-3-8B", "H100-SXM-80GB", &m, &g);
    char *path = synth_table("Llama-3-8B", "H100-SXM-80GB", NULL, 55, 0, NULL);
    for (int tp = 1; tp <= 4; tp *= 2) {
        cost_model *tab = table_cm(path, &m, &g, tp);
        ck_assert_double_eq_tol(cost_idle_power_w(tab), 55.0 * tp, 1e-9);
        batch_shape shapes[2] = {decode_batch(32, 2000), decode_batch(1, 100)};
        for (int i = 0; i < 2; i++) {
            cost_result r;
            cost_iteration(tab, &shapes[i], &r);
            double s = r.latency_ns * 1e-9;
            ck_assert_msg(r.energy_j >= g.idle_w * s * tp * (1 - 1e-9) &&
                          r.energy_j <= g.max_w * s * tp * (1 + 1e-9),
                          "energy %g J outside the roofline power range", r.energy_j);
        }
        cost_model_destroy(tab);
    }
    drop_table(path);
}
END_TEST

START_TEST(test_ctab_hint_gives_the_same_price)
{
    /* the same op priced with and without a hint, and twice with one */
    llm_model m;
    gpu_spec g;
    load_model_gpu("Llama-3-8B", "H100-SXM-80GB", &m, &g);
    sim_err err = {{0}};
    ctab *t = ctab_load(TEST_TABLE, "H100-SXM-80GB", &err);
    ck_assert_msg(t != NULL, "%s", err.msg);
    ck_assert_str_eq(ctab_gpu_name(t), "H100-SXM-80GB");
    ck_assert_int_gt(ctab_n_entries(t, CTAB_GEMM), 0);
    ck_assert_int_eq(ctab_n_entries(t, CTAB_MOE_EXPERTS), 0);
    op_list ops;
    batch_shape b = decode_batch(24, 700);
    ops_decompose(&m, &PAR_TP(1), &b, &ops);
    ctab_hint hint = {0};
    for (int i = 0; i < ops.n; i++) {
        ctab_price p1, p2, p3;
        ctab_price_op(t, &m, 1, &g, &ops.op[i], NULL, &p1);
        ctab_price_op(t, &m, 1, &g, &ops.op[i], &hint, &p2);
        ctab_price_op(t, &m, 1, &g, &ops.op[i], &hint, &p3);
        ck_assert_double_eq(p1.ns, p2.ns);
        ck_assert_double_eq(p2.ns, p3.ns);
        ck_assert(p1.ns > 0 && p1.power_w > 0);
        ck_assert_int_eq(p1.source, p3.source);
    }
    ctab_destroy(t);
    ctab_destroy(NULL);
}
END_TEST

/* ---- errors ---------------------------------------------------------------------- */

static void cut_in_half(cJSON *root)
{
    (void)root;
}

START_TEST(test_ctab_rejects_corrupt_json)
{
    char *path = mutated_table(cut_in_half);
    FILE *f = fopen(path, "r+");
    ck_assert_int_eq(ftruncate(fileno(f), 300), 0);
    fclose(f);
    sim_err err = {{0}};
    ck_assert_ptr_null(ctab_load(path, NULL, &err));
    ck_assert_has(err.msg, path);
    ck_assert_has(err.msg, ":1:");   /* file:line:column of the syntax error */
    drop_table(path);
}
END_TEST

static void bump_version(cJSON *root)
{
    cJSON_ReplaceItemInObject(root, "schema_version", cJSON_CreateNumber(2));
}

START_TEST(test_ctab_rejects_wrong_schema_version)
{
    char *path = mutated_table(bump_version);
    sim_err err = {{0}};
    ck_assert_ptr_null(ctab_load(path, NULL, &err));
    ck_assert_has(err.msg, path);
    ck_assert_has(err.msg, "$.schema_version: expected 1 (the version this build reads), got 2");
    drop_table(path);
}
END_TEST

/* A family whose params or axes fill every slot had no NULL at the end of its
 * key list: an unexpected key there read past it (found by fuzz_cost_table). */
START_TEST(test_ctab_unknown_key_in_a_full_family_is_an_error)
{
    sim_err err = {{0}};
    const char *path = "tests/data/cost_table_all_axes_unknown_key.json";
    ck_assert_ptr_null(ctab_load(path, NULL, &err));
    ck_assert_has(err.msg, path);
    ck_assert_has(err.msg, "unknown key");
}
END_TEST

START_TEST(test_ctab_rejects_gpu_mismatch)
{
    sim_err err = {{0}};
    ck_assert_ptr_null(ctab_load(TEST_TABLE, "A100-SXM-80GB", &err));
    ck_assert_str_eq(err.msg, TEST_TABLE ": $.gpu.name: the table was measured on "
                     "'H100-SXM-80GB', but the run's GPU is 'A100-SXM-80GB'");
    /* through the cost model: the run's GPU is the one the table must match */
    llm_model m;
    gpu_spec g;
    load_model_gpu("Llama-3-8B", "A100-SXM-80GB", &m, &g);
    ck_assert_ptr_null(make_cm("table", &m, &g, 1, "{\"table\": \"" TEST_TABLE "\"}", &err));
    ck_assert_has(err.msg, "measured on 'H100-SXM-80GB', but the run's GPU is 'A100-SXM-80GB'");
}
END_TEST

static void negative_latency(cJSON *root)
{
    cJSON *med = cJSON_GetObjectItem(cJSON_GetObjectItem(gemm_entry0(root), "latency_ns"),
                                     "median");
    cJSON_ReplaceItemInArray(med, 2, cJSON_CreateNumber(-5));
}

START_TEST(test_ctab_rejects_negative_latency)
{
    char *path = mutated_table(negative_latency);
    sim_err err = {{0}};
    ck_assert_ptr_null(ctab_load(path, NULL, &err));
    char want[1200];
    snprintf(want, sizeof want, "%s: $.families.gemm.entries[0].latency_ns.median[2]: "
             "expected a number > 0 or null, got -5", path);
    ck_assert_str_eq(err.msg, want);
    drop_table(path);
}
END_TEST

static void unsorted_grid(cJSON *root)
{
    cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(gemm_entry0(root), "axes"), "m");
    cJSON_ReplaceItemInArray(m, 3, cJSON_CreateNumber(1.5));
}

START_TEST(test_ctab_rejects_non_monotone_grid)
{
    char *path = mutated_table(unsorted_grid);
    sim_err err = {{0}};
    ck_assert_ptr_null(ctab_load(path, NULL, &err));
    ck_assert_has(err.msg, "$.families.gemm.entries[0].axes.m[3]: grid values must be "
                  "strictly increasing (1.5 after 4)");
    drop_table(path);
}
END_TEST

static void unknown_family(cJSON *root)
{
    cJSON *fams = cJSON_GetObjectItem(root, "families");
    cJSON_AddItemToObject(fams, "conv2d", cJSON_CreateObject());
}

static void wrong_point_count(cJSON *root)
{
    cJSON_DeleteItemFromArray(cJSON_GetObjectItem(gemm_entry0(root), "flops"), 0);
}

static void stray_key(cJSON *root)
{
    cJSON_AddNumberToObject(gemm_entry0(root), "latency_us", 3);
}

static void no_ceilings(cJSON *root)
{
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(root, "ceilings"), "gemm_flops_per_s",
                              cJSON_CreateNull());
}

START_TEST(test_ctab_rejects_malformed_tables)
{
    struct {
        void (*edit)(cJSON *);
        const char *want;
    } cases[] = {
        {unknown_family, "$.families.conv2d: unknown operator family; expected one of: "
                         "gemm, moe_router, moe_experts, attn_prefill"},
        {wrong_point_count, "$.families.gemm.entries[0].flops: expected 15 values (one per "
                            "grid point), got 14"},
        {stray_key, "$.families.gemm.entries[0].latency_us: unknown key"},
        {no_ceilings, "$.ceilings: gemm_flops_per_s: expected a number > 0, got null"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *path = mutated_table(cases[i].edit);
        sim_err err = {{0}};
        ck_assert_ptr_null(ctab_load(path, NULL, &err));
        ck_assert_has(err.msg, path);
        ck_assert_has(err.msg, cases[i].want);
        drop_table(path);
    }
}
END_TEST

START_TEST(test_ctab_missing_default_table_and_bad_params)
{
    llm_model m;
    gpu_spec g;
    load_model_gpu("Llama-3-8B", "H100-SXM-80GB", &m, &g);
    setenv("SERVESIM_TABLES_DIR", "/nonexistent/tables", 1);
    ck_assert_str_eq(ctab_default_dir(), "/nonexistent/tables");
    sim_err err = {{0}};
    /* no table for the GPU and none named: every term on the roofline */
    cost_model *cm = make_cm("table", &m, &g, 1, "{}", &err);
    ck_assert_msg(cm != NULL, "%s", err.msg);
    cost_result r;
    batch_shape b = decode_batch(4, 100);
    cost_iteration(cm, &b, &r);
    for (int k = 0; k < OP_KIND_COUNT; k++)
        ck_assert(r.term_source[k] == COST_SRC_NONE || r.term_source[k] == COST_SRC_ROOFLINE);
    ck_assert_double_eq(cost_idle_power_w(cm), g.idle_w);
    cost_model_destroy(cm);
    /* a table named but missing is an error */
    ck_assert_ptr_null(make_cm("table", &m, &g, 1,
                               "{\"table\": \"/nonexistent/tables/H100-SXM-80GB.json\"}",
                               &err));
    ck_assert_str_eq(err.msg, "$.cost.params.table: no measured cost table "
                     "/nonexistent/tables/H100-SXM-80GB.json for GPU 'H100-SXM-80GB' "
                     "(measure one with calib/, see calib/README.md, or name one here)");
    unsetenv("SERVESIM_TABLES_DIR");
    ck_assert_ptr_null(make_cm("table", &m, &g, 1, "{\"tables\": \"x\"}", &err));
    ck_assert_has(err.msg, "$.cost.params.tables: unknown key");
    ck_assert_ptr_null(make_cm("tables", &m, &g, 1, NULL, &err));
    ck_assert_has(err.msg, "expected one of: roofline, table");
}
END_TEST

/* ---- end to end ---------------------------------------------------------------------- */

START_TEST(test_ctab_end_to_end_run_reports_table_source)
{
    const char *const sets[] = {"cost.model=table", "cost.params.table=" TEST_TABLE, NULL};
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    tu_run r;
    tu_run_config(&cfg, &r);
    ck_assert_uint_eq(r.summary.completed, 200);
    ck_assert_uint_eq(r.n_records, 200);
    char sources[64];
    cluster_cost_sources(&r.summary, sources, sizeof sources);
    ck_assert_msg(!strcmp(sources, "table") || !strcmp(sources, "roofline+table"),
                  "cost sources: %s", sources);
    ck_assert(r.summary.energy_j > 0);
    tu_run_fini(&r);
    run_config_fini(&cfg);
}
END_TEST

/* ---- calib host side -------------------------------------------------------------- */

START_TEST(test_ctab_loo_on_synthetic_table)
{
    sim_err err = {{0}};
    ctab *t = ctab_load(TEST_TABLE, NULL, &err);
    ck_assert_msg(t != NULL, "%s", err.msg);
    ctab_loo_stats lat, pw;
    ctab_loo(t, CTAB_GEMM, &lat, &pw);
    ck_assert_int_gt(lat.n, 100);
    /* most GEMM points sit on a straight stretch of the roofline; a convex
     * curve is never underestimated */
    ck_assert_double_lt(lat.median_abs, 0.01);
    ck_assert_double_lt(lat.max_abs, 0.5);
    ck_assert_double_ge(lat.mean, 0);
    ck_assert_int_gt(pw.n, 0);
    ctab_loo(t, CTAB_MOE_EXPERTS, &lat, &pw);
    ck_assert_int_eq(lat.n, 0);
    ctab_destroy(t);
}
END_TEST

START_TEST(test_calib_layer_compare_synthetic)
{
    calib_plan plan;
    char *table = synth_table("Llama-3-8B,Mixtral-8x7B", "H100-SXM-80GB", NULL, 0, 1, &plan);
    ck_assert_int_eq(plan.n_layers, 12);
    gpu_spec g;
    sim_err err = {{0}};
    ck_assert_int_eq(gpu_spec_load(models_dir(), "H100-SXM-80GB", &g, &err), 0);
    char layers[1100];
    snprintf(layers, sizeof layers, "%s.layers", table);
    FILE *f = fopen(layers, "w");
    ck_assert_int_eq(calib_synth_layers(&plan, &g, 1.1, f), 0);
    fclose(f);
    calib_layer_cmp *c;
    int n;
    ck_assert_msg(calib_layer_compare(table, layers, models_dir(), &c, &n, &err) == 0, "%s",
                  err.msg);
    ck_assert_int_eq(n, 12);
    for (int i = 0; i < n; i++) {
        double ratio = c[i].predicted_ns / c[i].measured_ns;
        ck_assert_msg(fabs(ratio * 1.1 - 1) < 0.03, "%s %s: predicted/measured %.4f",
                      c[i].model, c[i].name, ratio);
        ck_assert_int_gt(c[i].ops_table, 0);
        ck_assert(c[i].predicted_j > 0 && c[i].measured_j > 0);
    }
    ck_assert_str_eq(c[0].name, "prefill");
    ck_assert_str_eq(c[6].model, "Mixtral-8x7B");
    free(c);
    calib_plan_fini(&plan);
    unlink(layers);
    drop_table(table);
}
END_TEST

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = sim_xmalloc((size_t)n + 1);
    ck_assert_int_eq(fread(buf, 1, (size_t)n, f), n);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static char *plan_text(const calib_plan *plan)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_int_eq(calib_plan_write(plan, f), 0);
    fclose(f);
    return buf;
}

START_TEST(test_calib_plan_round_trips)
{
    sim_err err = {{0}};
    calib_plan plan, back;
    calib_plan_opts o = {.quick = 1, .layers = 1};
    ck_assert_int_eq(calib_plan_build(models_dir(), &o, &plan, &err), 0);
    ck_assert_int_gt(plan.n_entries, 5);
    ck_assert_int_eq(plan.n_layers, 2);
    char *dir = tu_tempdir(), path[600];
    snprintf(path, sizeof path, "%s/p.plan", dir);
    ck_assert_int_eq(calib_plan_save(&plan, path, &err), 0);
    ck_assert_msg(calib_plan_load(path, &back, &err) == 0, "%s", err.msg);
    char *a = plan_text(&plan), *b = plan_text(&back);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    calib_plan_fini(&back);
    /* a broken record is reported by file and line */
    FILE *f = fopen(path, "w");
    fputs("servesim-calib-plan 1\nname x\nentry gemm 10\n", f);
    fclose(f);
    ck_assert_int_ne(calib_plan_load(path, &back, &err), 0);
    char want[700];
    snprintf(want, sizeof want, "%s:3: entry: expected 4 fields, got 3", path);
    ck_assert_str_eq(err.msg, want);
    f = fopen(path, "w");
    fputs("servesim-calib-plan 1\nentry attention 1 2\n", f);
    fclose(f);
    ck_assert_int_ne(calib_plan_load(path, &back, &err), 0);
    ck_assert_has(err.msg, ":2: unknown family \"attention\"");
    calib_plan_fini(&plan);
    unlink(path);
    rmdir(dir);
    free(dir);
}
END_TEST

/* The committed plans and test table are what the current models and
 * ops_decompose give; if not, `make calib-data` regenerates them. */
START_TEST(test_calib_committed_data_up_to_date)
{
    sim_err err = {{0}};
    struct {
        const char *file;
        calib_plan_opts o;
    } plans[] = {{"calib/plans/full.plan", {.layers = 1}},
                 {"calib/plans/quick.plan", {.quick = 1, .layers = 1}}};
    for (int i = 0; i < 2; i++) {
        calib_plan plan;
        ck_assert_int_eq(calib_plan_build(models_dir(), &plans[i].o, &plan, &err), 0);
        char *want = plan_text(&plan), *have = slurp(plans[i].file);
        ck_assert_msg(strcmp(want, have) == 0, "%s is out of date: run make calib-data",
                      plans[i].file);
        free(want);
        free(have);
        calib_plan_fini(&plan);
    }
    calib_plan plan;
    calib_plan_opts o = {.models = "Llama-3-8B"};
    ck_assert_int_eq(calib_plan_build(models_dir(), &o, &plan, &err), 0);
    gpu_spec g;
    ck_assert_int_eq(gpu_spec_load(models_dir(), "H100-SXM-80GB", &g, &err), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_int_eq(calib_synth_table(&plan, &g, f), 0);
    fclose(f);
    char *have = slurp(TEST_TABLE);
    ck_assert_msg(strcmp(buf, have) == 0, TEST_TABLE " is out of date: run make calib-data");
    free(buf);
    free(have);
    calib_plan_fini(&plan);
}
END_TEST

/* Every op a bundled model emits (collectives aside) has an entry in the
 * full plan, at every valid TP degree. */
START_TEST(test_calib_full_plan_covers_every_op)
{
    sim_err err = {{0}};
    calib_plan plan;
    ck_assert_int_eq(calib_plan_load("calib/plans/full.plan", &plan, &err), 0);
    const char *models[] = {"Llama-2-7B", "Llama-2-13B", "Llama-2-70B", "Llama-3-8B",
                            "Llama-3-70B", "Mixtral-8x7B", "Qwen3-30B-A3B"};
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        llm_model m;
        ck_assert_int_eq(llm_model_load(models_dir(), models[i], &m, &err), 0);
        for (int tp = 1; tp <= 8; tp *= 2) {
            if (llm_check_tp(&m, tp, NULL))
                continue;
            batch_seq chunk = {.q_tokens = 100, .ctx_tokens = 50};
            batch_shape b = {.prefill = &chunk, .n_prefill = 1, .n_decode = 3,
                             .decode_ctx_sum = 300, .n_sampled = 4};
            op_list ops;
            ops_decompose(&m, &PAR_TP(tp), &b, &ops);
            for (int k = 0; k < ops.n; k++) {
                ctab_key key;
                if (ctab_key_of_op(&m, tp, &ops.op[k], &key) < 0) {
                    ck_assert_int_eq(ops.op[k].kind, OP_ALLREDUCE);
                    continue;
                }
                ck_assert_msg(calib_plan_find(&plan, key.family, key.p) >= 0,
                              "%s tp%d: no plan entry for %s", models[i], tp,
                              op_kind_name(ops.op[k].kind));
            }
        }
    }
    calib_plan_fini(&plan);
}
END_TEST

/* NVML is optional: without the driver's library the loader says why and
 * every reader degrades to "unknown"; with it, the method is a known one. */
START_TEST(test_calib_nvml_optional)
{
    char why[256] = "";
    calib_nvml *n = calib_nvml_open("0000:00:00.0", why, sizeof why);
    if (!n) {
        ck_assert_msg(why[0] != 0, "no reason given");
        calib_gpu_state s;
        calib_nvml_state(NULL, &s);
        ck_assert(isnan(s.sm_clock_mhz) && s.clocks_event_reasons == -1);
        ck_assert_int_eq(calib_nvml_method(NULL), CALIB_POWER_NONE);
        unsigned long long mj;
        ck_assert_int_ne(calib_nvml_energy_mj(NULL, &mj), 0);
    } else {
        ck_assert_int_le(calib_nvml_method(n), CALIB_POWER_NONE);
        calib_nvml_close(n);
    }
    ck_assert_str_eq(calib_power_method_name(CALIB_POWER_ENERGY_COUNTER),
                     "total_energy_counter");
    ck_assert_str_eq(calib_power_method_name(CALIB_POWER_NONE), "none");
    calib_nvml_close(NULL);
}
END_TEST

Suite *cost_table_suite(void)
{
    Suite *s = suite_create("cost_table");
    TCase *tc;
#define ADD(fn)                         \
    tc = tcase_create(#fn);             \
    tcase_set_timeout(tc, 60);          \
    tcase_add_test(tc, fn);             \
    suite_add_tcase(s, tc)
    ADD(test_ctab_grid_points_reproduce_roofline);
    ADD(test_ctab_between_points_within_interpolation_error);
    ADD(test_ctab_out_of_grid_holds_measured_fraction);
    ADD(test_ctab_unknown_shape_uses_nearest_entry);
    ADD(test_ctab_moe_skew_priced_from_nearest_measured);
    ADD(test_ctab_energy_and_idle_power_from_table);
    ADD(test_ctab_hint_gives_the_same_price);
    ADD(test_ctab_rejects_corrupt_json);
    ADD(test_ctab_rejects_wrong_schema_version);
    ADD(test_ctab_rejects_gpu_mismatch);
    ADD(test_ctab_unknown_key_in_a_full_family_is_an_error);
    ADD(test_ctab_rejects_negative_latency);
    ADD(test_ctab_rejects_non_monotone_grid);
    ADD(test_ctab_rejects_malformed_tables);
    ADD(test_ctab_missing_default_table_and_bad_params);
    ADD(test_ctab_end_to_end_run_reports_table_source);
    ADD(test_ctab_loo_on_synthetic_table);
    ADD(test_calib_layer_compare_synthetic);
    ADD(test_calib_plan_round_trips);
    ADD(test_calib_committed_data_up_to_date);
    ADD(test_calib_full_plan_covers_every_op);
    ADD(test_calib_nvml_optional);
#undef ADD
    return s;
}
