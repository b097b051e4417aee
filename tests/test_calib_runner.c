/* Tests for calib/runner.c (and the atomic writes of table_writer.c) with a
 * fake backend: a clock the points advance, latencies made from the entry
 * and point, and points that fail, are fatal, or raise the stop flag. The
 * run's table must load with the simulator's loader whatever ended the
 * run, including a SIGKILL in the middle of a family (a forked child), and
 * a run cut short must be completable from its resume entry. */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "calib/merge.h"
#include "calib/planner.h"
#include "calib/runner.h"
#include "models/cost_table.h"
#include "tests/suites.h"
#include "tests/testutil.h"

typedef struct fake_be {
    double t, point_s;
    int real_time;              /* sleep point_s of real time per point */
    int skip_mod;               /* points with point % skip_mod == 1 are skipped */
    int fatal_entry, fatal_point;
    int stop_after;             /* raise *stop after this many points */
    volatile sig_atomic_t *stop;
    int calls;
} fake_be;

static double fb_now(void *self)
{
    fake_be *f = self;
    if (f->real_time) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec * 1e-9;
    }
    return f->t;
}

/* The latency a point is given: distinct per entry and point. */
static double latency_of(int entry, int point)
{
    return 1000.0 * (entry + 1) + point + 0.5;
}

static int fb_measure(void *self, const calib_plan *plan, int entry, int point, const double *x,
                      int want_power, calib_point_result *r, char *why, size_t why_n)
{
    (void)plan;
    (void)x;
    fake_be *f = self;
    f->calls++;
    if (f->real_time) {
        struct timespec ts = {0, (long)(f->point_s * 1e9)};
        nanosleep(&ts, NULL);
    } else {
        f->t += f->point_s;
    }
    if (f->stop && f->stop_after && f->calls >= f->stop_after)
        *f->stop = 1;
    if (entry == f->fatal_entry && point == f->fatal_point) {
        snprintf(why, why_n, "fake: device lost");
        return CALIB_POINT_FATAL;
    }
    if (f->skip_mod && point % f->skip_mod == 1) {
        snprintf(why, why_n, "fake: no algorithm");
        return CALIB_POINT_SKIPPED;
    }
    r->median_ns = latency_of(entry, point);
    r->p10_ns = r->median_ns * 0.99;
    r->p90_ns = r->median_ns * 1.02;
    r->power_w = want_power ? 300 : NAN;
    r->energy_j = r->power_w * r->median_ns * 1e-9;
    r->throttled = 0;
    return CALIB_POINT_OK;
}

static void quick_plan(calib_plan *plan)
{
    sim_err err = {{0}};
    ck_assert_msg(calib_plan_load("calib/plans/quick.plan", plan, &err) == 0, "%s", err.msg);
}

static void stub_info(calib_run_info *info)
{
    calib_run_info_init(info);
    snprintf(info->gpu_name, sizeof info->gpu_name, "H200-141GB");
    snprintf(info->energy_method, sizeof info->energy_method, "total_energy_counter");
    info->ceil_gemm_flops_per_s = 6e14;
    info->ceil_d2d_bytes_per_s = 3e12;
    info->idle_w = 75;
}

typedef struct run_files {
    char *dir;
    char table[512], status[512];
} run_files;

static void files_init(run_files *rf)
{
    rf->dir = tu_tempdir();
    snprintf(rf->table, sizeof rf->table, "%s/sub/t.json", rf->dir);   /* sub/: created */
    snprintf(rf->status, sizeof rf->status, "%s/t.status", rf->dir);
}

static void files_fini(run_files *rf)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", rf->dir);
    ck_assert_int_eq(system(cmd), 0);
    free(rf->dir);
}

static calib_runner_opts ropts(const run_files *rf)
{
    calib_runner_opts o = {.families = 0, .flush_every_s = 2.0, .out = rf->table,
                           .status = rf->status};
    return o;
}

/* key=value from a status file, or "" */
static void status_get(const char *path, const char *key, char *out, size_t n)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[1024];
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, klen) && line[klen] == '=') {
            snprintf(out, n, "%s", line + klen + 1);
            out[strcspn(out, "\n")] = 0;
        }
    fclose(f);
}

static int status_int(const char *path, const char *key)
{
    char v[64];
    status_get(path, key, v, sizeof v);
    return atoi(v);
}

/* The table loads; returns its measured latency at (family, entry params of
 * plan entry i, point j), or NAN. */
static double table_latency(const char *path, const calib_plan *plan, int i, int j)
{
    sim_err err = {{0}};
    cJSON *root;
    ck_assert_msg(jcfg_load_file(path, &root, &err) == 0, "%s", err.msg);
    const calib_entry *e = &plan->entry[i];
    const ctab_family_info *fi = ctab_family_get(e->family);
    cJSON *fam = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "families"), fi->name);
    double v = NAN;
    for (cJSON *x = fam ? cJSON_GetObjectItemCaseSensitive(fam, "entries")->child : NULL; x;
         x = x->next) {
        cJSON *p = cJSON_GetObjectItemCaseSensitive(x, "params");
        int same = 1;
        for (int k = 0; k < fi->n_params; k++)
            same &= cJSON_GetObjectItemCaseSensitive(p, fi->param[k])->valuedouble ==
                    (double)e->p[k];
        if (!same)
            continue;
        cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(
                                          cJSON_GetObjectItemCaseSensitive(x, "latency_ns"),
                                          "median"), j);
        v = cJSON_IsNumber(m) ? m->valuedouble : NAN;
    }
    cJSON_Delete(root);
    return v;
}

static void assert_loads(const char *path)
{
    sim_err err = {{0}};
    ctab *t = ctab_load(path, "H200-141GB", &err);
    ck_assert_msg(t != NULL, "%s", err.msg);
    ctab_destroy(t);
}

static int plan_points(const calib_plan *plan, int from)
{
    int n = 0;
    for (int i = from; i < plan->n_entries; i++)
        for (int j = 0; j < plan->entry[i].n_points; j++)
            n += !plan->entry[i].skip[j];
    return n;
}

START_TEST(test_runner_complete_run_writes_valid_table)
{
    calib_plan plan;
    quick_plan(&plan);
    run_files rf;
    files_init(&rf);
    calib_run_info info;
    stub_info(&info);
    fake_be f = {.point_s = 0.01, .fatal_entry = -1};
    calib_backend be = {&f, fb_now, fb_measure, NULL};
    calib_runner_opts o = ropts(&rf);
    calib_runner r;
    calib_runner_init(&r, &plan, &o, &info);
    sim_err err = {{0}};
    ck_assert_msg(calib_runner_run(&r, &be, &err) == 0, "%s", err.msg);
    assert_loads(rf.table);
    char state[32];
    status_get(rf.status, "state", state, sizeof state);
    ck_assert_str_eq(state, "complete");
    ck_assert_int_eq(status_int(rf.status, "points_measured"), plan_points(&plan, 0));
    ck_assert_int_eq(status_int(rf.status, "resume_entry"), -1);
    ck_assert_int_eq(status_int(rf.status, "entries_done"), plan.n_entries);
    for (int i = 0; i < plan.n_entries; i += 5)
        ck_assert(table_latency(rf.table, &plan, i, 0) == latency_of(i, 0));
    /* no partial file is left behind */
    char partial[600];
    snprintf(partial, sizeof partial, "%s.partial", rf.table);
    ck_assert_int_ne(access(partial, F_OK), 0);
    calib_runner_fini(&r);
    files_fini(&rf);
    calib_plan_fini(&plan);
}
END_TEST

/* A time limit cuts the run inside an entry; the table holds what was
 * measured and says where to resume; a second run from there, merged
 * after the first, completes every point. */
START_TEST(test_runner_time_limit_then_resume_completes)
{
    calib_plan plan;
    quick_plan(&plan);
    run_files rf;
    files_init(&rf);
    calib_run_info info;
    stub_info(&info);
    int total = plan_points(&plan, 0);
    /* a limit that falls after the third point of an entry past the middle */
    int k = plan.n_entries / 2;
    while (plan_points(&plan, k) - plan_points(&plan, k + 1) < 5)
        k++;
    int before = total - plan_points(&plan, k);
    fake_be f = {.point_s = 0.01, .fatal_entry = -1};
    calib_backend be = {&f, fb_now, fb_measure, NULL};
    calib_runner_opts o = ropts(&rf);
    o.time_limit_s = 0.01 * (before + 2) + 0.005;
    calib_runner r;
    calib_runner_init(&r, &plan, &o, &info);
    sim_err err = {{0}};
    ck_assert_int_eq(calib_runner_run(&r, &be, &err), 1);
    assert_loads(rf.table);
    char state[32], why[256];
    status_get(rf.status, "state", state, sizeof state);
    status_get(rf.status, "error", why, sizeof why);
    ck_assert_str_eq(state, "cut_short");
    ck_assert_msg(strstr(why, "time limit") != NULL, "%s", why);
    int resume = status_int(rf.status, "resume_entry");
    ck_assert_int_eq(resume, r.resume);
    ck_assert_int_eq(resume, k);
    ck_assert_int_eq(r.points_measured, before + 3);
    /* the resume entry was begun, not finished; the one before it is done */
    ck_assert(isnan(table_latency(rf.table, &plan, resume, plan.entry[resume].n_points - 1)));
    ck_assert(table_latency(rf.table, &plan, resume - 1, 0) == latency_of(resume - 1, 0));
    int first = r.points_measured;
    calib_runner_fini(&r);

    char second[600];
    snprintf(second, sizeof second, "%s/resumed.json", rf.dir);
    calib_run_info info2;
    stub_info(&info2);
    o.time_limit_s = 0;
    o.start_entry = resume;
    o.out = second;
    calib_runner_init(&r, &plan, &o, &info2);
    ck_assert_msg(calib_runner_run(&r, &be, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(r.points_measured, plan_points(&plan, resume));
    calib_runner_fini(&r);

    char merged[600];
    snprintf(merged, sizeof merged, "%s/merged.json", rf.dir);
    const char *paths[] = {rf.table, second};
    calib_merge_stats st;
    ck_assert_msg(calib_merge_files(paths, 2, merged, &st, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(st.entries, plan.n_entries);
    ck_assert_int_eq(st.entries_joined, 1);   /* the entry cut in the middle */
    ck_assert_int_eq(st.points_added, plan_points(&plan, k) - plan_points(&plan, k + 1));
    ck_assert_int_eq(st.points_replaced, 3);
    ck_assert_int_eq(first + plan_points(&plan, k) - 3, total);
    for (int i = 0; i < plan.n_entries; i++)
        for (int j = 0; j < plan.entry[i].n_points; j++)
            if (!plan.entry[i].skip[j])
                ck_assert(table_latency(merged, &plan, i, j) == latency_of(i, j));
    files_fini(&rf);
    calib_plan_fini(&plan);
}
END_TEST

START_TEST(test_runner_skips_failed_points_and_goes_on)
{
    calib_plan plan;
    quick_plan(&plan);
    run_files rf;
    files_init(&rf);
    calib_run_info info;
    stub_info(&info);
    fake_be f = {.point_s = 0.01, .fatal_entry = -1, .skip_mod = 3};
    calib_backend be = {&f, fb_now, fb_measure, NULL};
    calib_runner_opts o = ropts(&rf);
    calib_runner r;
    calib_runner_init(&r, &plan, &o, &info);
    sim_err err = {{0}};
    ck_assert_msg(calib_runner_run(&r, &be, &err) == 0, "%s", err.msg);
    assert_loads(rf.table);
    int skipped = 0;
    for (int i = 0; i < plan.n_entries; i++)
        for (int j = 0; j < plan.entry[i].n_points; j++)
            skipped += !plan.entry[i].skip[j] && j % 3 == 1;
    ck_assert_int_gt(skipped, 0);
    ck_assert_int_eq(status_int(rf.status, "points_skipped"), skipped);
    ck_assert_int_eq(status_int(rf.status, "points_measured"), plan_points(&plan, 0) - skipped);
    for (int i = 0; i < plan.n_entries; i++)
        if (plan.entry[i].n_points > 2 && !plan.entry[i].skip[1] && !plan.entry[i].skip[2]) {
            ck_assert(isnan(table_latency(rf.table, &plan, i, 1)));
            ck_assert(table_latency(rf.table, &plan, i, 2) == latency_of(i, 2));
        }
    calib_runner_fini(&r);
    files_fini(&rf);
    calib_plan_fini(&plan);
}
END_TEST

START_TEST(test_runner_fatal_point_writes_failed_table)
{
    calib_plan plan;
    quick_plan(&plan);
    run_files rf;
    files_init(&rf);
    calib_run_info info;
    stub_info(&info);
    fake_be f = {.point_s = 0.01, .fatal_entry = 3, .fatal_point = 1};
    calib_backend be = {&f, fb_now, fb_measure, NULL};
    calib_runner_opts o = ropts(&rf);
    calib_runner r;
    calib_runner_init(&r, &plan, &o, &info);
    sim_err err = {{0}};
    ck_assert_int_eq(calib_runner_run(&r, &be, &err), -1);
    ck_assert_msg(strstr(err.msg, "entry 3, point 1: fake: device lost") != NULL, "%s", err.msg);
    assert_loads(rf.table);
    char state[32];
    status_get(rf.status, "state", state, sizeof state);
    ck_assert_str_eq(state, "failed");
    ck_assert_int_eq(status_int(rf.status, "resume_entry"), 3);
    ck_assert(table_latency(rf.table, &plan, 2, 0) == latency_of(2, 0));
    ck_assert(table_latency(rf.table, &plan, 3, 0) == latency_of(3, 0));   /* before the fault */
    ck_assert(isnan(table_latency(rf.table, &plan, 4, 0)));
    calib_runner_fini(&r);
    files_fini(&rf);
    calib_plan_fini(&plan);
}
END_TEST

START_TEST(test_runner_stops_on_the_stop_flag)
{
    calib_plan plan;
    quick_plan(&plan);
    run_files rf;
    files_init(&rf);
    calib_run_info info;
    stub_info(&info);
    volatile sig_atomic_t stop = 0;
    fake_be f = {.point_s = 0.01, .fatal_entry = -1, .stop_after = 7, .stop = &stop};
    calib_backend be = {&f, fb_now, fb_measure, NULL};
    calib_runner_opts o = ropts(&rf);
    o.stop = &stop;
    calib_runner r;
    calib_runner_init(&r, &plan, &o, &info);
    sim_err err = {{0}};
    ck_assert_int_eq(calib_runner_run(&r, &be, &err), 1);
    ck_assert_int_eq(f.calls, 7);   /* no point after the flag */
    char why[256];
    status_get(rf.status, "error", why, sizeof why);
    ck_assert_str_eq(why, "stopped by a signal");
    assert_loads(rf.table);
    calib_runner_fini(&r);
    files_fini(&rf);
    calib_plan_fini(&plan);
}
END_TEST

/* SIGKILL in the middle of a family (a forked child running the full
 * plan's GEMMs in real time): the table on disk loads, holds measured
 * entries, and says the run was still going. */
START_TEST(test_runner_killed_run_leaves_valid_table)
{
    calib_plan plan;
    sim_err err = {{0}};
    ck_assert_int_eq(calib_plan_load("calib/plans/full.plan", &plan, &err), 0);
    run_files rf;
    files_init(&rf);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        calib_run_info info;
        stub_info(&info);
        fake_be f = {.point_s = 0.002, .real_time = 1, .fatal_entry = -1};
        calib_backend be = {&f, fb_now, fb_measure, NULL};
        calib_runner_opts o = ropts(&rf);
        o.families = 1u << CTAB_GEMM;
        o.flush_every_s = 0.05;
        calib_runner r;
        calib_runner_init(&r, &plan, &o, &info);
        calib_runner_run(&r, &be, &err);
        _exit(0);   /* the whole family takes several seconds: never reached */
    }
    struct timespec ts = {0, 400000000};
    nanosleep(&ts, NULL);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status));
    assert_loads(rf.table);
    int last_gemm = 0;
    for (int i = 0; i < plan.n_entries; i++)
        if (plan.entry[i].family == CTAB_GEMM)
            last_gemm = i;
    ck_assert(table_latency(rf.table, &plan, 0, 0) == latency_of(0, 0));
    ck_assert(isnan(table_latency(rf.table, &plan, last_gemm, 0)));
    cJSON *root;
    ck_assert_int_eq(jcfg_load_file(rf.table, &root, &err), 0);
    cJSON *run = cJSON_GetObjectItemCaseSensitive(root, "run");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(run, "state")->valuestring, "running");
    ck_assert(cJSON_GetObjectItemCaseSensitive(run, "resume_entry")->valuedouble > 0);
    cJSON_Delete(root);
    char state[32];
    status_get(rf.status, "state", state, sizeof state);
    ck_assert_str_eq(state, "running");
    files_fini(&rf);
    calib_plan_fini(&plan);
}
END_TEST

START_TEST(test_runner_family_mask_and_models)
{
    unsigned mask;
    sim_err err = {{0}};
    ck_assert_int_eq(calib_family_mask("gemm,norm", &mask, &err), 0);
    ck_assert_uint_eq(mask, (1u << CTAB_GEMM) | (1u << CTAB_NORM));
    ck_assert_int_eq(calib_family_mask(NULL, &mask, &err), 0);
    ck_assert_uint_eq(mask, (1u << CTAB_FAMILY_COUNT) - 1);
    ck_assert_int_ne(calib_family_mask("gemm,attention", &mask, &err), 0);
    ck_assert_msg(strstr(err.msg, "unknown family 'attention'; expected some of: gemm, "
                                  "moe_router") != NULL, "%s", err.msg);
    calib_plan plan;
    ck_assert_int_eq(calib_plan_load("calib/plans/full.plan", &plan, &err), 0);
    int moe = 0, llama = 0;
    for (int i = 0; i < plan.n_entries; i++) {
        const calib_entry *e = &plan.entry[i];
        int sel = calib_entry_selected(e, ~0u, "Mixtral-8x7B");
        ck_assert_int_eq(sel, strstr(e->used_by, "Mixtral-8x7B/tp") != NULL);
        moe += sel && e->family == CTAB_MOE_EXPERTS;
        llama += calib_entry_selected(e, 1u << CTAB_MOE_EXPERTS, "Llama-3-8B");
        ck_assert(!calib_entry_selected(e, 1u << CTAB_NORM, NULL) || e->family == CTAB_NORM);
    }
    ck_assert_int_gt(moe, 0);
    ck_assert_int_eq(llama, 0);   /* a dense model has no experts */
    calib_plan_fini(&plan);
}
END_TEST

START_TEST(test_table_save_errors_name_the_file)
{
    calib_plan plan;
    quick_plan(&plan);
    calib_run_info info;
    stub_info(&info);
    sim_err err = {{0}};
    ck_assert_int_ne(calib_text_save("/proc/servesim-no/such/t.json", "x", &err), 0);
    ck_assert_msg(strstr(err.msg, "/proc/servesim-no") != NULL, "%s", err.msg);
    char *dir = tu_tempdir();
    char path[600];
    snprintf(path, sizeof path, "%s/a/b/c.txt", dir);
    ck_assert_msg(calib_text_save(path, "hello\n", &err) == 0, "%s", err.msg);
    FILE *f = fopen(path, "r");
    char buf[16] = "";
    ck_assert_ptr_nonnull(fgets(buf, sizeof buf, f));
    fclose(f);
    ck_assert_str_eq(buf, "hello\n");
    /* a folder in the way of the file: the error names it, the old file stays */
    snprintf(path, sizeof path, "%s/a", dir);
    ck_assert_int_ne(calib_text_save(path, "x", &err), 0);
    ck_assert_msg(strstr(err.msg, path) != NULL, "%s", err.msg);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
    calib_plan_fini(&plan);
}
END_TEST

Suite *calib_runner_suite(void)
{
    Suite *s = suite_create("calib_runner");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_runner_complete_run_writes_valid_table);
    tcase_add_test(tc, test_runner_time_limit_then_resume_completes);
    tcase_add_test(tc, test_runner_skips_failed_points_and_goes_on);
    tcase_add_test(tc, test_runner_fatal_point_writes_failed_table);
    tcase_add_test(tc, test_runner_stops_on_the_stop_flag);
    tcase_add_test(tc, test_runner_killed_run_leaves_valid_table);
    tcase_add_test(tc, test_runner_family_mask_and_models);
    tcase_add_test(tc, test_table_save_errors_name_the_file);
    suite_add_tcase(s, tc);
    return s;
}
