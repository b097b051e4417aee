/* Time series (serve/cluster.c's sampler, output.c's /timeseries): sampling
 * does not change a run, covers it and then stops, reports sane values,
 * and lands in the results file. */
#include <check.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/suites.h"
#include "tests/testutil.h"

typedef struct ts_log {
    int64_t n;
    sim_time_ns first_ns, last_ns, interval_ns;
    int bad_value, bad_active, bad_spacing;
    int32_t max_running, n_instances;
    double idle_w, max_w;
} ts_log;

static int on_sample(void *ctx, const ts_sample *s)
{
    ts_log *l = ctx;
    if (l->n == 0)
        l->first_ns = s->time_ns;
    else if (s->time_ns != l->last_ns + s->interval_ns)
        l->bad_spacing = 1;
    l->last_ns = s->time_ns;
    l->interval_ns = s->interval_ns;
    l->n_instances = s->n_instances;
    l->n++;
    int32_t active = 0;
    for (int32_t i = 0; i < s->n_instances; i++) {
        const ts_instance *t = &s->inst[i];
        if (t->waiting < 0 || t->running < 0 || t->kv_used_fraction < 0 ||
            t->kv_used_fraction > 1 || t->power_w < l->idle_w - 1e-9 ||
            t->power_w > l->max_w + 1e-9)
            l->bad_value = 1;
        if (t->active != (t->waiting + t->running > 0))
            l->bad_active = 1;
        active += t->active;
        if (t->running > l->max_running)
            l->max_running = t->running;
    }
    if (active != s->active_instances)
        l->bad_active = 1;
    return 0;
}

typedef struct rec_hash {
    uint64_t h, n;
    sim_time_ns last_finish_ns;
} rec_hash;

static int on_record(void *ctx, const req_record *r)
{
    rec_hash *x = ctx;
    const unsigned char *p = (const unsigned char *)r;
    for (size_t i = 0; i < sizeof *r; i++)
        x->h = (x->h ^ p[i]) * 1099511628211ULL;
    x->n++;
    if (r->finish_ns > x->last_finish_ns)
        x->last_finish_ns = r->finish_ns;
    return 0;
}

/* Runs the base config (two instances) with the given interval. */
static void run(const char *interval, ts_log *log, rec_hash *rh, run_summary *s)
{
    cJSON *root = tu_base_config();
    const char *sets[] = {"cluster.instances=2", interval, NULL};
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    memset(log, 0, sizeof *log);
    memset(rh, 0, sizeof *rh);
    rh->h = 1469598103934665603ULL;
    log->idle_w = cfg.sys.pools[0].gpu.idle_w * cfg.sys.pools[0].par.tp;
    log->max_w = cfg.sys.pools[0].gpu.max_w * cfg.sys.pools[0].par.tp;
    cluster_hooks hooks = {.on_record = on_record, .record_ctx = rh,
                           .on_sample = on_sample, .sample_ctx = log};
    sim_err err = {{0}};
    cluster *c = cluster_create(&cfg.sys, &hooks, &err);
    ck_assert_msg(c, "%s", err.msg);
    ck_assert_int_eq(cluster_run(c, &err), 0);
    cluster_summarize(c, s);
    cluster_destroy(c);
    run_config_fini(&cfg);
}

START_TEST(test_ts_sampling_does_not_change_the_run)
{
    ts_log l0, l1;
    rec_hash h0, h1;
    run_summary s0, s1;
    run("metrics.timeseries_interval_ms=0", &l0, &h0, &s0);
    run("metrics.timeseries_interval_ms=50", &l1, &h1, &s1);
    ck_assert_int_eq(l0.n, 0);
    ck_assert_int_gt(l1.n, 10);
    ck_assert_uint_eq(h0.n, 200);
    ck_assert_uint_eq(h0.h, h1.h);
    ck_assert(memcmp(&s0, &s1, sizeof s0) == 0);   /* events included */
}
END_TEST

START_TEST(test_ts_samples_cover_the_run_then_stop)
{
    ts_log l;
    rec_hash h;
    run_summary s;
    run("metrics.timeseries_interval_ms=100", &l, &h, &s);
    ck_assert_int_eq(l.first_ns, 0);
    ck_assert_int_eq(l.interval_ns, 100 * SIM_NS_PER_MS);
    ck_assert(!l.bad_spacing);
    /* The last sample is the first one at or after the last completion. */
    ck_assert_int_ge(l.last_ns, h.last_finish_ns);
    ck_assert_int_lt(l.last_ns, h.last_finish_ns + l.interval_ns);
    ck_assert_int_eq(l.n, l.last_ns / l.interval_ns + 1);
}
END_TEST

START_TEST(test_ts_sample_values_are_sane)
{
    ts_log l;
    rec_hash h;
    run_summary s;
    run("metrics.timeseries_interval_ms=20", &l, &h, &s);
    ck_assert_int_eq(l.n_instances, 2);
    ck_assert(!l.bad_value);
    ck_assert(!l.bad_active);
    ck_assert_int_gt(l.max_running, 0);
}
END_TEST

START_TEST(test_ts_bad_interval_is_named)
{
    cJSON *root = tu_base_config();
    const char *sets[] = {"metrics.timeseries_interval_ms=-1", NULL};
    tu_set(root, sets);
    run_config cfg;
    sim_err err = {{0}};
    ck_assert_int_eq(run_config_parse(root, &cfg, &err), -1);
    ck_assert_msg(strstr(err.msg, "$.metrics.timeseries_interval_ms"), "%s", err.msg);
}
END_TEST

static const char ts_run[] =
    "{\"seed\": 3, \"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\",\n"
    " \"cluster\": {\"instances\": 3}, \"metrics\": {\"timeseries_interval_ms\": 250},\n"
    " \"workload\": {\"requests\": 100, \"arrival\": {\"rate_per_s\": 8},\n"
    "   \"input_tokens\": {\"dist\": \"fixed\", \"value\": 500},\n"
    "   \"output_tokens\": {\"dist\": \"fixed\", \"value\": 50}}}\n";

static hsize_t rows(hid_t f, const char *path)
{
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "%s missing", path);
    hid_t sp = H5Dget_space(d);
    hsize_t n;
    H5Sget_simple_extent_dims(sp, &n, NULL);
    H5Sclose(sp);
    H5Dclose(d);
    return n;
}

START_TEST(test_ts_run_writes_timeseries)
{
    char *dir = tu_tempdir();
    char config[512], out[512];
    snprintf(config, sizeof config, "%s/ts.json", dir);
    snprintf(out, sizeof out, "%s/ts.h5", dir);
    FILE *fp = fopen(config, "w");
    fputs(ts_run, fp);
    fclose(fp);
    tu_cli_call c = {{"servesim", "run", config, "--out", out, "--quiet", NULL}};
    char errbuf[4096];
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &c, errbuf, sizeof errbuf), 0);
    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    hsize_t n_cluster = rows(f, "/timeseries/cluster");
    ck_assert_uint_gt(n_cluster, 10);
    ck_assert_uint_eq(rows(f, "/timeseries/instances"), 3 * n_cluster);
    hid_t g = H5Gopen2(f, "/timeseries", H5P_DEFAULT);
    int64_t interval = 0;
    hid_t a = H5Aopen(g, "interval_ns", H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_INT64, &interval);
    ck_assert_int_eq(interval, 250 * SIM_NS_PER_MS);
    H5Aclose(a);
    H5Gclose(g);
    ck_assert_uint_eq(rows(f, "/requests"), 100);
    H5Fclose(f);
    unlink(out);
    unlink(config);
    rmdir(dir);
    free(dir);
}
END_TEST

Suite *timeseries_suite(void)
{
    Suite *s = suite_create("timeseries");
    TCase *tc = tcase_create("timeseries");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_ts_sampling_does_not_change_the_run);
    tcase_add_test(tc, test_ts_samples_cover_the_run_then_stop);
    tcase_add_test(tc, test_ts_sample_values_are_sane);
    tcase_add_test(tc, test_ts_bad_interval_is_named);
    tcase_add_test(tc, test_ts_run_writes_timeseries);
    suite_add_tcase(s, tc);
    return s;
}
