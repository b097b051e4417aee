/* Tests for calib/merge.c (`calib-tool merge`) on tables written by the
 * table writer from synthetic results: a family split across runs (the
 * first cut short inside an entry, the second resumed there) is joined
 * point by point into a complete one; families from different runs sit
 * side by side; tables of another GPU or another plan are refused with the
 * file and JSON path named. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calib/merge.h"
#include "calib/synth.h"
#include "models/cost_table.h"
#include "tests/suites.h"
#include "tests/testutil.h"

typedef struct fixture {
    char *dir;
    calib_plan plan;
    gpu_spec g;
} fixture;

static void fx_init(fixture *fx)
{
    sim_err err = {{0}};
    fx->dir = tu_tempdir();
    ck_assert_int_eq(calib_plan_load("calib/plans/quick.plan", &fx->plan, &err), 0);
    ck_assert_int_eq(gpu_spec_load(models_dir(), "H200-141GB", &fx->g, &err), 0);
}

static void fx_fini(fixture *fx)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    ck_assert_int_eq(system(cmd), 0);
    free(fx->dir);
    calib_plan_fini(&fx->plan);
}

/* Writes a table of family `fam` holding plan points [from, to) in plan
 * order (entry i, point j as i * 1000 + j), latencies scaled by `scale`. */
static void write_part(fixture *fx, const char *name, const char *gpu, ctab_family fam,
                       long from, long to, double scale, char *path, size_t n)
{
    snprintf(path, n, "%s/%s", fx->dir, name);
    calib_point_result **res = calib_results_alloc(&fx->plan);
    calib_synth_results(&fx->plan, &fx->g, res);
    for (int i = 0; i < fx->plan.n_entries; i++)
        for (int j = 0; j < fx->plan.entry[i].n_points; j++) {
            long at = i * 1000L + j;
            calib_point_result *r = &res[i][j];
            if (at < from || at >= to) {
                r->median_ns = r->p10_ns = r->p90_ns = r->power_w = r->energy_j = NAN;
            } else {
                r->median_ns *= scale;
                r->p10_ns *= scale;
                r->p90_ns *= scale;
            }
        }
    calib_run_info info;
    calib_synth_info(&fx->plan, &fx->g, &info);
    snprintf(info.gpu_name, sizeof info.gpu_name, "%s", gpu);
    snprintf(info.families, sizeof info.families, "%s", ctab_family_get(fam)->name);
    snprintf(info.state, sizeof info.state, "%s", to < 1000000 ? "cut_short" : "complete");
    sim_err err = {{0}};
    ck_assert_msg(calib_table_save(path, &fx->plan, res, 1u << fam, &info, &err) == 0, "%s",
                  err.msg);
    calib_results_free(res, fx->plan.n_entries);
}

/* The gemm entries of the quick plan, and one of them with >= 4 points. */
static int gemm_entry_to_cut(const calib_plan *plan)
{
    for (int i = 1; i < plan->n_entries; i++)
        if (plan->entry[i].family == CTAB_GEMM && plan->entry[i].n_points >= 4)
            return i;
    ck_abort_msg("no gemm entry to cut");
    return -1;
}

static cJSON *load_json(const char *path)
{
    cJSON *root;
    sim_err err = {{0}};
    ck_assert_msg(jcfg_load_file(path, &root, &err) == 0, "%s", err.msg);
    return root;
}

static cJSON *gemm_entries(cJSON *root)
{
    return cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "families"),
                                         "gemm"), "entries");
}

/* The median at point 0 of entry i of an entries array. */
static double median0(cJSON *entries, int i)
{
    cJSON *e = cJSON_GetArrayItem(entries, i);
    cJSON *v = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(
                                      cJSON_GetObjectItemCaseSensitive(e, "latency_ns"), "median"),
                                  0);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

START_TEST(test_merge_completes_a_cut_short_family)
{
    fixture fx;
    fx_init(&fx);
    int k = gemm_entry_to_cut(&fx.plan);
    char a[600], b[600], out[600];
    /* run 1: up to the middle of entry k; run 2 (resumed at entry k, at
     * 1.1x so that the source of each point shows) from there on */
    write_part(&fx, "a.json", "H200-141GB", CTAB_GEMM, 0, k * 1000L + 2, 1.0, a, sizeof a);
    write_part(&fx, "b.json", "H200-141GB", CTAB_GEMM, k * 1000L, 1000000000L, 1.1, b, sizeof b);
    snprintf(out, sizeof out, "%s/merged.json", fx.dir);
    const char *paths[] = {a, b};
    calib_merge_stats st;
    sim_err err = {{0}};
    ck_assert_msg(calib_merge_files(paths, 2, out, &st, &err) == 0, "%s", err.msg);
    int gemm = 0, after = 0;   /* after: entry k's points, which b fills in */
    for (int i = 0; i < fx.plan.n_entries; i++) {
        gemm += fx.plan.entry[i].family == CTAB_GEMM;
        if (i == k)
            for (int j = 0; j < fx.plan.entry[i].n_points; j++)
                after += !fx.plan.entry[i].skip[j];
    }
    ck_assert_int_eq(st.tables, 2);
    ck_assert_int_eq(st.families, 1);
    ck_assert_int_eq(st.entries, gemm);
    ck_assert_int_eq(st.entries_joined, 1);
    ck_assert_int_eq(st.points_added, after);
    ck_assert_int_eq(st.points_replaced, 2);
    /* every point measured; entry k's first two from the later table */
    ctab *t = ctab_load(out, "H200-141GB", &err);
    ck_assert_msg(t != NULL, "%s", err.msg);
    ctab_destroy(t);
    cJSON *root = load_json(out), *ref = load_json(a), *later = load_json(b);
    cJSON *es = gemm_entries(root);
    int i = 0;
    for (cJSON *e = es->child; e; e = e->next, i++) {
        cJSON *med = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(e, "latency_ns"), "median");
        for (cJSON *v = med->child; v; v = v->next)
            ck_assert_msg(cJSON_IsNumber(v), "entry %d: a point left unmeasured", i);
    }
    /* entry k: the last of a's gemm entries, the first of b's */
    int idx_k = 0;
    for (int j = 0; j < k; j++)
        idx_k += fx.plan.entry[j].family == CTAB_GEMM;
    double v_merged = median0(es, idx_k), v_a = median0(gemm_entries(ref), idx_k),
           v_b = median0(gemm_entries(later), 0);
    ck_assert(v_merged == v_b && v_merged != v_a);
    cJSON *run = cJSON_GetObjectItemCaseSensitive(root, "run");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(run, "state")->valuestring, "merged");
    const char *notes = cJSON_GetObjectItemCaseSensitive(run, "notes")->valuestring;
    ck_assert_msg(strstr(notes, "merged from") && strstr(notes, "a.json (gemm: cut_short") &&
                  strstr(notes, "b.json (gemm: complete"), "%s", notes);
    cJSON_Delete(root);
    cJSON_Delete(ref);
    cJSON_Delete(later);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_merge_joins_families_side_by_side)
{
    fixture fx;
    fx_init(&fx);
    char a[600], b[600], out[600];
    write_part(&fx, "a.json", "H200-141GB", CTAB_GEMM, 0, 1000000000L, 1.0, a, sizeof a);
    write_part(&fx, "b.json", "H200-141GB", CTAB_NORM, 0, 1000000000L, 1.0, b, sizeof b);
    snprintf(out, sizeof out, "%s/merged.json", fx.dir);
    const char *paths[] = {a, b};
    calib_merge_stats st;
    sim_err err = {{0}};
    ck_assert_msg(calib_merge_files(paths, 2, out, &st, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(st.families, 2);
    ck_assert_int_eq(st.entries_joined, 0);
    ck_assert_int_eq(st.points_added, 0);
    cJSON *root = load_json(out);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetObjectItemCaseSensitive(root, "run"), "families")->valuestring,
                     "gemm,norm");
    cJSON_Delete(root);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_merge_refuses_another_gpu)
{
    fixture fx;
    fx_init(&fx);
    char a[600], b[600], out[600];
    write_part(&fx, "a.json", "H200-141GB", CTAB_GEMM, 0, 1000000000L, 1.0, a, sizeof a);
    write_part(&fx, "b.json", "H100-SXM-80GB", CTAB_NORM, 0, 1000000000L, 1.0, b, sizeof b);
    snprintf(out, sizeof out, "%s/merged.json", fx.dir);
    const char *paths[] = {a, b};
    calib_merge_stats st;
    sim_err err = {{0}};
    ck_assert_int_ne(calib_merge_files(paths, 2, out, &st, &err), 0);
    char want[700];
    snprintf(want, sizeof want, "%s: $.gpu.name: \"H100-SXM-80GB\" is not the first table's "
             "GPU \"H200-141GB\"", b);
    ck_assert_msg(strstr(err.msg, want) != NULL, "%s", err.msg);
    ck_assert_int_ne(access(out, F_OK), 0);   /* nothing written */
    fx_fini(&fx);
}
END_TEST

/* The same entry measured from another plan (another grid): refused. */
START_TEST(test_merge_refuses_another_plan)
{
    fixture fx;
    fx_init(&fx);
    char a[600], b[600], out[600];
    write_part(&fx, "a.json", "H200-141GB", CTAB_GEMM, 0, 1000000000L, 1.0, a, sizeof a);
    write_part(&fx, "b.json", "H200-141GB", CTAB_GEMM, 0, 1000000000L, 1.0, b, sizeof b);
    cJSON *root = load_json(b);
    cJSON *e0 = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "families"),
                                         "gemm"), "entries")->child;
    cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e0, "axes"), "m");
    cJSON_ReplaceItemInArray(m, 0, cJSON_CreateNumber(0.5));   /* still increasing */
    char *text = cJSON_Print(root);
    FILE *f = fopen(b, "w");
    fputs(text, f);
    fclose(f);
    cJSON_free(text);
    cJSON_Delete(root);
    snprintf(out, sizeof out, "%s/merged.json", fx.dir);
    const char *paths[] = {a, b};
    calib_merge_stats st;
    sim_err err = {{0}};
    ck_assert_int_ne(calib_merge_files(paths, 2, out, &st, &err), 0);
    char want[700];
    snprintf(want, sizeof want, "%s: $.families.gemm.entries[0].axes: differs", b);
    ck_assert_msg(strstr(err.msg, want) && strstr(err.msg, "different plans"), "%s", err.msg);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_merge_refuses_an_invalid_table)
{
    fixture fx;
    fx_init(&fx);
    char a[600], bad[600], out[600];
    write_part(&fx, "a.json", "H200-141GB", CTAB_GEMM, 0, 1000000000L, 1.0, a, sizeof a);
    snprintf(bad, sizeof bad, "%s/bad.json", fx.dir);
    FILE *f = fopen(bad, "w");
    fputs("{\"schema\": \"servesim-cost-table\", \"schema_version\": 1", f);   /* cut off */
    fclose(f);
    snprintf(out, sizeof out, "%s/merged.json", fx.dir);
    const char *paths[] = {a, bad};
    calib_merge_stats st;
    sim_err err = {{0}};
    ck_assert_int_ne(calib_merge_files(paths, 2, out, &st, &err), 0);
    ck_assert_msg(strstr(err.msg, bad) != NULL, "%s", err.msg);
    fx_fini(&fx);
}
END_TEST

Suite *calib_merge_suite(void)
{
    Suite *s = suite_create("calib_merge");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_merge_completes_a_cut_short_family);
    tcase_add_test(tc, test_merge_joins_families_side_by_side);
    tcase_add_test(tc, test_merge_refuses_another_gpu);
    tcase_add_test(tc, test_merge_refuses_another_plan);
    tcase_add_test(tc, test_merge_refuses_an_invalid_table);
    suite_add_tcase(s, tc);
    return s;
}
