/* Tests for the imported public profiles (calib/import_vidur.c) and the
 * fallback model fitted on them: the committed tables are what the
 * importer makes of ../shared/profiles/vidur/, they interpolate within the
 * reported leave-one-out error, the simulator prices Vidur's own
 * configurations from them (collectives included), and the committed
 * fallback constants are the fit's. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "calib/import_vidur.h"
#include "models/cost_table.h"
#include "sim/jsoncfg.h"
#include "tests/suites.h"
#include "tests/testutil.h"

#define VIDUR_SRC "../shared/profiles/vidur"
#define TABLES "calib/tables/vidur/"

#define ck_assert_has(haystack, needle)                                         \
    ck_assert_msg(strstr((haystack), (needle)) != NULL,                         \
                  "expected '%s' in '%s'", (needle), (haystack))

static const struct {
    const char *dir, *gpu;
} gpus[] = {{"a100", "A100-SXM-80GB"}, {"h100", "H100-SXM-80GB"}, {"a40", "A40-48GB"}};

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = sim_xmalloc((size_t)n + 1);
    ck_assert_int_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

static int have_profiles(void)
{
    struct stat st;
    if (stat(VIDUR_SRC "/compute", &st) == 0)
        return 1;
    fprintf(stderr, "test_import: skipped: %s is absent\n", VIDUR_SRC);
    return 0;
}

static ctab *load(const char *gpu)
{
    char path[256];
    snprintf(path, sizeof path, TABLES "%s.json", gpu);
    sim_err err = {{0}};
    ctab *t = ctab_load(path, gpu, &err);
    ck_assert_msg(t != NULL, "%s", err.msg);
    return t;
}

static void load_model_gpu(const char *model, const char *gpu, llm_model *m, gpu_spec *g)
{
    sim_err err = {{0}};
    ck_assert_msg(llm_model_load(models_dir(), model, m, &err) == 0, "%s", err.msg);
    ck_assert_msg(gpu_spec_load(models_dir(), gpu, g, &err) == 0, "%s", err.msg);
}

/* The committed tables are exactly what `calib-tool import-vidur` writes. */
START_TEST(test_import_tables_up_to_date)
{
    if (!have_profiles())
        return;
    vidur_opts o = {.src = VIDUR_SRC, .models_dir = models_dir()};
    for (size_t i = 0; i < sizeof gpus / sizeof *gpus; i++) {
        sim_err err = {{0}};
        char *want = vidur_table_text(&o, gpus[i].dir, &err);
        ck_assert_msg(want != NULL, "%s", err.msg);
        char path[256];
        snprintf(path, sizeof path, TABLES "%s.json", gpus[i].gpu);
        char *have = slurp(path);
        size_t n = strlen(want);
        ck_assert_msg(strncmp(want, have, n) == 0 && !strcmp(have + n, "\n"),
                      "%s is out of date: run build/calib-tool import-vidur", path);
        cJSON_free(want);
        free(have);
    }
}
END_TEST

/* Every imported table says where it comes from, measured no power, and
 * interpolates its own points within the leave-one-out figures of
 * calib/README.md (operators 5%, the noisier NCCL bins 10%). */
START_TEST(test_import_tables_provenance_and_loo)
{
    for (size_t i = 0; i < sizeof gpus / sizeof *gpus; i++) {
        ctab *t = load(gpus[i].gpu);
        ck_assert_has(ctab_source(t), "Vidur");
        ck_assert_has(ctab_source(t), "MIT");
        ck_assert(isnan(ctab_idle_w(t)));
        ck_assert_int_gt(ctab_n_entries(t, CTAB_GEMM), 50);
        for (int f = 0; f < CTAB_FAMILY_COUNT; f++) {
            if (!ctab_n_entries(t, (ctab_family)f))
                continue;
            ctab_loo_stats lat, pw;
            ctab_loo(t, (ctab_family)f, &lat, &pw);
            double bound = f == CTAB_ALLREDUCE ? 0.10 : 0.05;
            ck_assert_msg(lat.n > 0 && lat.median_abs <= bound, "%s %s: LOO median %.3f",
                          gpus[i].gpu, ctab_family_get((ctab_family)f)->name, lat.median_abs);
            ck_assert_int_eq(pw.n, 0);
        }
        ctab_destroy(t);
    }
    ctab *t = load("A100-SXM-80GB");   /* the one attention profile */
    ck_assert_int_eq(ctab_n_entries(t, CTAB_ATTN_PREFILL), 1);
    ck_assert_int_eq(ctab_n_entries(t, CTAB_ATTN_DECODE), 1);
    ck_assert_int_eq(ctab_n_entries(t, CTAB_ALLREDUCE), 3);   /* 2, 4, 8 GPUs */
    ctab_destroy(t);
    t = load("A40-48GB");   /* no all-reduce profile */
    ck_assert_int_eq(ctab_n_entries(t, CTAB_ALLREDUCE), 0);
    ctab_destroy(t);
}
END_TEST

/* A configuration Vidur profiled (Llama-2-70B, TP2, A100) is priced from the
 * table for every term it measured: GEMMs, norms, RoPE, activation, both
 * attentions and the all-reduce; the LM head and sampler, which Vidur did
 * not profile, and the embedding, which it profiled with a vocabulary
 * padded to 32768 rows (servesim's file has 32000), from the roofline. */
START_TEST(test_import_prices_a_profiled_configuration)
{
    llm_model m;
    gpu_spec g;
    load_model_gpu("Llama-2-70B", "A100-SXM-80GB", &m, &g);
    cost_setup setup = {.model = &m, .gpu = &g, .par = PAR_TP(2)};
    sim_err err = {{0}};
    cost_model *cm = cost_model_create("table", &setup, NULL, "$.cost.params", &err);
    ck_assert_msg(cm != NULL, "%s", err.msg);
    batch_seq chunk = {.q_tokens = 512, .ctx_tokens = 1024};
    batch_shape b = {.prefill = &chunk, .n_prefill = 1, .n_decode = 8,
                     .decode_ctx_sum = 8 * 1024, .n_sampled = 9};
    cost_result r;
    cost_iteration(cm, &b, &r);
    const op_kind table_kinds[] = {OP_NORM, OP_GEMM_QKV, OP_ROPE, OP_ATTN_PREFILL,
                                   OP_ATTN_DECODE, OP_GEMM_ATTN_OUT, OP_ALLREDUCE,
                                   OP_GEMM_FFN_UP, OP_ACT, OP_GEMM_FFN_DOWN};
    for (size_t i = 0; i < sizeof table_kinds / sizeof *table_kinds; i++)
        ck_assert_msg(r.term_source[table_kinds[i]] == COST_SRC_TABLE, "%s: %s",
                      op_kind_name(table_kinds[i]), cost_source_name(r.term_source[table_kinds[i]]));
    ck_assert_int_eq(r.term_source[OP_GEMM_LM_HEAD], COST_SRC_ROOFLINE);
    ck_assert_int_eq(r.term_source[OP_SAMPLE], COST_SRC_ROOFLINE);
    ck_assert_int_eq(r.term_source[OP_EMBED], COST_SRC_ROOFLINE);
    /* no power in the table: the roofline's power model, so energy lies
     * between idle and the board limit */
    double s = r.latency_ns * 1e-9;
    ck_assert(r.energy_j > g.idle_w * s * 2 && r.energy_j < g.max_w * s * 2);
    cost_model_destroy(cm);
}
END_TEST

/* The TP all-reduce from Vidur's NCCL measurements on a DGX H100: the bin
 * of its buffer size for 2, 4 and 8 GPUs; below the smallest size measured
 * the smallest's time (latency-bound), beyond the largest scaled by bytes. */
START_TEST(test_import_collectives_by_size_and_group)
{
    llm_model m;
    gpu_spec g;
    load_model_gpu("Llama-3-70B", "H100-SXM-80GB", &m, &g);
    ctab *t = load("H100-SXM-80GB");
    for (int tp = 2; tp <= 8; tp *= 2) {
        ctab_price at[5];
        const double tokens[] = {1, 64, 2048, 1 << 16, 1 << 17};
        for (int i = 0; i < 5; i++) {
            op_desc op = {.kind = OP_ALLREDUCE, .repeat = 1, .m = (int64_t)tokens[i],
                          .n = m.hidden, .ranks = tp,
                          .bytes = 2.0 * (tp - 1) / tp * tokens[i] * m.hidden * 2};
            ctab_price_op(t, &m, tp, &g, &op, NULL, &at[i]);
        }
        /* 16 KB and 1 MB and 32 MB messages are measured; 1 and 2 GB are
         * not: the largest bin's time, scaled by bytes */
        ck_assert_int_eq(at[0].source, COST_SRC_TABLE);
        ck_assert_int_eq(at[1].source, COST_SRC_TABLE);
        ck_assert_int_eq(at[2].source, COST_SRC_TABLE);
        ck_assert_int_eq(at[3].source, COST_SRC_ROOFLINE);
        ck_assert(at[2].ns > at[1].ns && at[3].ns > 16 * at[2].ns);
        ck_assert_double_eq_tol(at[4].ns / at[3].ns, 2, 1e-9);
        /* a 2-byte message costs what the smallest measured one does */
        op_desc tiny = {.kind = OP_ALLREDUCE, .repeat = 1, .m = 1, .n = 1, .ranks = tp,
                        .bytes = 2.0 * (tp - 1) / tp * 2};
        ctab_price p;
        ctab_price_op(t, &m, tp, &g, &tiny, NULL, &p);
        ck_assert_int_eq(p.source, COST_SRC_TABLE);
        ck_assert(p.ns > 5000 && p.ns < 100000);
    }
    ctab_destroy(t);
}
END_TEST

/* Tables hold 16-bit linear layers: an FP8 model's GEMMs fall back to the
 * roofline (term by term), its norms still come from the table. */
START_TEST(test_import_other_precisions_fall_back)
{
    llm_model m;
    gpu_spec g;
    load_model_gpu("Llama-2-70B", "H100-SXM-80GB", &m, &g);
    sim_err err = {{0}};
    llm_precision p = {LLM_FP8, LLM_FP8, LLM_BF16};
    ck_assert_int_eq(llm_set_precision(&m, &p, &err), 0);
    cost_setup setup = {.model = &m, .gpu = &g, .par = PAR_TP(4)};
    cost_model *cm = cost_model_create("table", &setup, NULL, "$", &err);
    ck_assert_msg(cm != NULL, "%s", err.msg);
    batch_shape b = {.n_decode = 32, .decode_ctx_sum = 32 * 500, .n_sampled = 32};
    cost_result r;
    cost_iteration(cm, &b, &r);
    ck_assert_int_eq(r.term_source[OP_GEMM_QKV], COST_SRC_ROOFLINE);
    ck_assert_int_eq(r.term_source[OP_GEMM_FFN_UP], COST_SRC_ROOFLINE);
    ck_assert_int_eq(r.term_source[OP_NORM], COST_SRC_TABLE);
    ck_assert_int_eq(r.term_source[OP_ALLREDUCE], COST_SRC_TABLE);
    cost_model_destroy(cm);
}
END_TEST

/* The committed fallback constants are the importer's fit (a refit from
 * the same start gives them back), and fit the tables as calib/README.md
 * says: median |error| 10% or less in sample. */
START_TEST(test_import_fallback_fit_is_committed)
{
    const char *paths[] = {TABLES "A100-SXM-80GB.json", TABLES "H100-SXM-80GB.json",
                           TABLES "A40-48GB.json"};
    sim_err err = {{0}};
    fit_set *s = fit_set_load(paths, 3, models_dir(), &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    fit_err e;
    fit_eval(s, NULL, &fb_fitted, &e);
    ck_assert_msg(e.median_abs[3] <= 0.10, "all: %.3f", e.median_abs[3]);
    ck_assert_msg(e.median_abs[0] <= 0.09, "GEMM: %.3f", e.median_abs[0]);
    ck_assert_int_gt(e.n[2], 200);   /* attention points: A100 only */
    fb_params p = vidur_fit_start;
    fit_run(s, NULL, &p);
    const double pairs[][2] = {
        {p.gemm_t0_cycles, fb_fitted.gemm_t0_cycles}, {p.gemm_compute_eff, fb_fitted.gemm_compute_eff},
        {p.gemm_memory_eff, fb_fitted.gemm_memory_eff}, {p.ew_memory_eff, fb_fitted.ew_memory_eff},
        {p.ew_t0_cycles[FB_EW_NORM], fb_fitted.ew_t0_cycles[FB_EW_NORM]},
        {p.ew_cycles[FB_EW_ACT], fb_fitted.ew_cycles[FB_EW_ACT]},
        {p.attn_compute_eff[0], fb_fitted.attn_compute_eff[0]},
        {p.attn_memory_eff[1], fb_fitted.attn_memory_eff[1]}};
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++)
        ck_assert_msg(fabs(pairs[i][0] / pairs[i][1] - 1) < 1e-3,
                      "constant %zu: refit %.6g, committed %.6g: rerun calib-tool "
                      "import-vidur", i, pairs[i][0], pairs[i][1]);
    double lat, rank, eff, med;
    ck_assert_int_gt(fit_collectives(s, "H100-SXM-80GB", &lat, &rank, &eff, &med), 50);
    gpu_spec g;
    ck_assert_int_eq(gpu_spec_load(models_dir(), "H100-SXM-80GB", &g, &err), 0);
    ck_assert_double_eq_tol(g.collective_latency_ns, lat, lat * 1e-3);
    ck_assert_double_eq_tol(g.link_efficiency, eff, 1e-3);
    fit_set_destroy(s);
}
END_TEST

/* Malformed profiles stop the import with the file and the row. */
START_TEST(test_import_bad_input_names_file)
{
    char *dir = tu_tempdir();
    char path[512];
    snprintf(path, sizeof path, "%s/compute/h100/org/Model", dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/compute/h100/org/Model/mlp.csv", dir);
    FILE *f = fopen(path, "w");
    fputs("num_tokens,num_tensor_parallel_workers,n_embd\n1,1,64\n2,1\n", f);
    fclose(f);
    vidur_opts o = {.src = dir, .out_dir = dir, .models_dir = models_dir()};
    char tables[VIDUR_MAX_TABLES][1024];
    int n;
    sim_err err = {{0}};
    ck_assert_int_eq(vidur_import(&o, stderr, tables, &n, &err), -1);
    ck_assert_has(err.msg, "mlp.csv: data row 2: expected 3 columns, got 2");
    f = fopen(path, "w");
    fputs("tokens,tp\n1,1\n", f);
    fclose(f);
    ck_assert_int_eq(vidur_import(&o, stderr, tables, &n, &err), -1);
    ck_assert_has(err.msg, "mlp.csv: expected Vidur's mlp.csv columns");
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(vidur_import(&o, stderr, tables, &n, &err), -1);
    ck_assert_has(err.msg, "no Vidur profile found");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}
END_TEST

Suite *import_suite(void)
{
    Suite *s = suite_create("import");
    TCase *tc;
#define ADD(fn)                         \
    tc = tcase_create(#fn);             \
    tcase_set_timeout(tc, 300);         \
    tcase_add_test(tc, fn);             \
    suite_add_tcase(s, tc)
    ADD(test_import_tables_up_to_date);
    ADD(test_import_tables_provenance_and_loo);
    ADD(test_import_prices_a_profiled_configuration);
    ADD(test_import_collectives_by_size_and_group);
    ADD(test_import_other_precisions_fall_back);
    ADD(test_import_fallback_fit_is_committed);
    ADD(test_import_bad_input_names_file);
#undef ADD
    return s;
}
