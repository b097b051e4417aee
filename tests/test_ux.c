/* What a new user meets first (issue 14): sweep and capacity take --set
 * (named as the command line in errors), an empty grid is an error,
 * capacity searches any numeric path and saves its probes, a trace's
 * timestamps replaced by --set are warned about, warm-up and cool-down
 * trimming, infeasible sweep points recorded and skipped. */
#include <check.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve/cluster.h"
#include "tool/capacity.h"
#include "tests/suites.h"
#include "tests/testutil.h"

static char *tmp_dir;

static const char *tmp_file(const char *name, const char *text)
{
    static char path[8][512];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 512, "%s/%s", tmp_dir, name);
    if (text) {
        FILE *f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        fclose(f);
    }
    return p;
}

static void setup(void) { tmp_dir = tu_tempdir(); }
static void teardown(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    ck_assert_int_eq(system(cmd), 0);
    free(tmp_dir);
}

static const char small_config[] =
    "{\"seed\": 3, \"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\",\n"
    " \"workload\": {\"requests\": 60, \"arrival\": {\"rate_per_s\": 8},\n"
    "   \"input_tokens\": {\"dist\": \"fixed\", \"value\": 300},\n"
    "   \"output_tokens\": {\"dist\": \"fixed\", \"value\": 20}}}\n";

static char exp_text[2048];
static const char *small_experiment(const char *sweep)
{
    tmp_file("base.json", small_config);
    snprintf(exp_text, sizeof exp_text, "{\"base_config\": \"base.json\", \"sweep\": %s}", sweep);
    return tmp_file("exp.json", exp_text);
}

/* The requests of a results file's first point (or the run itself). */
static long long point_requests(const char *h5)
{
    hid_t f = H5Fopen(h5, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    hid_t g = H5Gopen2(f, "/points", H5P_DEFAULT);
    ck_assert_int_ge(g, 0);
    char name[64];
    ck_assert_int_gt(H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, 0, name,
                                        sizeof name, H5P_DEFAULT), 0);
    hid_t d = H5Dopen2(g, strcat(name, "/requests"), H5P_DEFAULT);
    ck_assert_int_ge(d, 0);
    hid_t sp = H5Dget_space(d);
    hsize_t rows;
    H5Sget_simple_extent_dims(sp, &rows, NULL);
    H5Sclose(sp);
    H5Dclose(d);
    H5Gclose(g);
    H5Fclose(f);
    return (long long)rows;
}

START_TEST(test_sweep_set_overrides_the_base)
{
    const char *exp = small_experiment("{\"grid\": {\"cluster.instances\": [1, 2]}}");
    const char *out = tmp_file("s.h5", NULL);
    tu_cli_call c = {{"servesim", "sweep", exp, "--set", "workload.requests=25", "-j", "1",
                      "--out", out, "--quiet", NULL}};
    char errbuf[4096];
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &c, errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(point_requests(out), 25);
}
END_TEST

START_TEST(test_sweep_set_errors_name_the_command_line)
{
    const char *exp = small_experiment("{\"grid\": {\"cluster.instances\": [1, 2]}}");
    const char *out = tmp_file("s.h5", NULL);
    char errbuf[4096];
    /* A bad value: the command line, not the experiment file, is named. */
    tu_cli_call bad = {{"servesim", "sweep", exp, "--set", "cluster.tp=0", "--out", out,
                        "--quiet", NULL}};
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &bad, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "command line --set cluster.tp=0: $.cluster.tp"), "%s", errbuf);
    /* Malformed JSON is an error, not a string. */
    tu_cli_call json = {{"servesim", "sweep", exp, "--set", "workload.arrival={\"rate\": ",
                         "--out", out, "--quiet", NULL}};
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &json, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "command line --set") && strstr(errbuf, "JSON"), "%s", errbuf);
    /* A swept path. */
    tu_cli_call swept = {{"servesim", "sweep", exp, "--set", "cluster.instances=3", "--out", out,
                          "--quiet", NULL}};
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &swept, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "also swept"), "%s", errbuf);
    ck_assert_int_ne(access(out, F_OK), 0);
}
END_TEST

START_TEST(test_sweep_empty_grid_is_an_error)
{
    const char *exp = small_experiment("{\"grid\": {}}");
    const char *out = tmp_file("s.h5", NULL);
    tu_cli_call c = {{"servesim", "sweep", exp, "--out", out, "--quiet", NULL}};
    char errbuf[4096];
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &c, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "$.sweep.grid: empty"), "%s", errbuf);
    exp = small_experiment("{\"zip\": []}");
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &c, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "$.sweep.zip: empty"), "%s", errbuf);
    ck_assert_int_ne(access(out, F_OK), 0);
}
END_TEST

/* "cannot open" on a relative path says where it looked. */
START_TEST(test_cannot_open_says_where_it_looked)
{
    tu_cli_call c = {{"servesim", "run", "no/such/config.json", "--quiet", NULL}};
    char errbuf[4096];
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &c, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "no/such/config.json: cannot open") &&
                  strstr(errbuf, "the working directory"), "%s", errbuf);
    /* A trace path inside a config: the same. */
    const char *cfg = tmp_file("t.json",
        "{\"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\",\n"
        " \"workload\": {\"source\": \"azure\", \"path\": \"no/such/trace.csv\"}}\n");
    tu_cli_call t = {{"servesim", "run", cfg, "--quiet", "--out", tmp_file("t.h5", NULL), NULL}};
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &t, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "$.workload.path") && strstr(errbuf, "the working directory"),
                  "%s", errbuf);
}
END_TEST

/* Runs c with stdout in out and stderr in errbuf; returns the exit status. */
typedef struct both_call {
    tu_cli_call *c;
    char *err;
    size_t err_size;
} both_call;

static int call_with_stderr(void *arg)
{
    both_call *b = arg;
    return tu_capture_stderr(tu_call_cli, b->c, b->err, b->err_size);
}

static int cli_both(tu_cli_call *c, char *out, size_t out_size, char *err, size_t err_size)
{
    both_call b = {c, err, err_size};
    return tu_capture(STDOUT_FILENO, call_with_stderr, &b, out, out_size);
}

/* A native trace of n requests, 0.1 s apart, 200 tokens in, 20 out. */
static const char *small_trace(int n)
{
    static char text[1 << 16];
    size_t used = (size_t)snprintf(text, sizeof text, "arrival_s,input_tokens,output_tokens\n");
    for (int i = 0; i < n && used < sizeof text; i++)
        used += (size_t)snprintf(text + used, sizeof text - used, "%.1f,200,20\n", 0.1 * i);
    return tmp_file("trace.csv", text);
}

static const char *trace_config(void)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\",\n"
             " \"workload\": {\"source\": \"native\", \"path\": \"%s\"}}\n", small_trace(80));
    return tmp_file("trace.json", text);
}

/* A double column of a compound table, n rows at most. */
static int read_column(const char *h5, const char *table, const char *field, double *v, int n)
{
    hid_t f = H5Fopen(h5, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    hid_t d = H5Dopen2(f, table, H5P_DEFAULT);
    ck_assert_int_ge(d, 0);
    hid_t sp = H5Dget_space(d);
    hsize_t rows;
    H5Sget_simple_extent_dims(sp, &rows, NULL);
    ck_assert_int_le((int)rows, n);
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(double));
    H5Tinsert(t, field, 0, H5T_NATIVE_DOUBLE);
    ck_assert_int_ge(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
    H5Tclose(t);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    return (int)rows;
}

static void read_str_attr(const char *h5, const char *name, char *out, size_t size)
{
    hid_t f = H5Fopen(h5, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    ck_assert_int_ge(a, 0);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    char *s = NULL;
    ck_assert_int_ge(H5Aread(a, t, &s), 0);
    snprintf(out, size, "%s", s);
    H5free_memory(s);
    H5Tclose(t);
    H5Aclose(a);
    H5Fclose(f);
}

/* On a trace, capacity searches rate_scale by default (the trace's own
 * arrival pattern, no warning), and --out keeps every probe. */
START_TEST(test_capacity_on_a_trace_searches_rate_scale_and_saves_probes)
{
    static char out[65536], err[8192];
    const char *cfg = trace_config(), *h5 = tmp_file("probes.h5", NULL);
    tu_cli_call c = {{"servesim", "capacity", cfg, "--slo", "ttft_p90=200ms,tpot_p90=30ms",
                      "--tolerance", "0.1", "-j", "2", "--out", h5, NULL}};
    int rc = cli_both(&c, out, sizeof out, err, sizeof err);
    ck_assert_msg(rc == 0, "exit %d: %s%s", rc, err, out);
    ck_assert_msg(strstr(out, "searching workload.rate_scale"), "%s", out);
    ck_assert_msg(strstr(out, "on its own timestamps"), "%s", out);
    ck_assert_msg(strstr(out, "capacity  workload.rate_scale = "), "%s", out);
    ck_assert_msg(!strstr(err, "WARNING"), "%s", err);
    double value[64], pass[64];
    int n = read_column(h5, "/probes", "value", value, 64);
    ck_assert_int_ge(n, 3);
    ck_assert_int_eq(read_column(h5, "/probes", "pass", pass, 64), n);
    ck_assert(value[0] == 1);   /* the trace's own rate first */
    int passes = 0, fails = 0;
    for (int i = 0; i < n; i++)
        passes += pass[i] == 1, fails += pass[i] == 0;
    ck_assert_int_gt(passes, 0);
    ck_assert_int_gt(fails, 0);
    char over[128];
    read_str_attr(h5, "over", over, sizeof over);
    ck_assert_str_eq(over, "workload.rate_scale");
    /* Searching the arrival rate on a trace replaces its timestamps: said. */
    tu_cli_call rate = {{"servesim", "capacity", cfg, "--slo", "ttft_p90=200ms", "--over",
                         "workload.arrival.rate_per_s", "--start", "5", "--tolerance", "0.3",
                         "-j", "2", NULL}};
    cli_both(&rate, out, sizeof out, err, sizeof err);
    ck_assert_msg(strstr(err, "WARNING: varying workload.arrival.rate_per_s replaces the "
                         "timestamps"), "%s", err);
}
END_TEST

/* A path the parser takes only integers at is searched in whole numbers,
 * down to a bracket one apart. */
START_TEST(test_capacity_over_an_integer_path)
{
    cJSON *root = cJSON_Parse(small_config);
    const char *sets[] = {"workload.arrival={\"process\": \"closed_loop\", \"clients\": 2, "
                          "\"think_s\": 0}", NULL};
    tu_set(root, sets);
    cap_spec spec;
    cap_spec_init(&spec);
    sim_err err = {{0}};
    ck_assert_int_eq(cap_parse_slo("ttft_p90=60ms", &spec, &err), 0);
    spec.over = "workload.arrival.clients";
    spec.jobs = 2;
    cap_result r;
    if (cap_search(root, "closed", &spec, &r, &err))
        ck_abort_msg("%s", err.msg);
    ck_assert(r.integer);
    ck_assert_str_eq(r.over, "workload.arrival.clients");
    for (int i = 0; i < r.n_probes; i++)
        ck_assert_msg(r.probes[i].rate == (double)(int64_t)r.probes[i].rate, "%g",
                      r.probes[i].rate);
    ck_assert_int_ge(r.lo, 0);
    ck_assert_int_ge(r.hi, 0);
    ck_assert(r.probes[r.hi].rate - r.probes[r.lo].rate == 1);
    cap_result_fini(&r);
    cJSON_Delete(root);
}
END_TEST

/* A --set of the arrival process on a trace warns loudly, and the header
 * states the workload and the GPUs in all. */
START_TEST(test_run_header_and_trace_arrival_warning)
{
    static char out[65536], err[8192];
    const char *cfg = trace_config(), *h5 = tmp_file("r.h5", NULL);
    tu_cli_call plain = {{"servesim", "run", cfg, "--set", "cluster.instances=2", "--out", h5,
                          NULL}};
    ck_assert_int_eq(cli_both(&plain, out, sizeof out, err, sizeof err), 0);
    ck_assert_msg(!strstr(err, "WARNING"), "%s", err);
    ck_assert_msg(strstr(out, "Llama-3-8B on 2 x H100-SXM-80GB: 2 instances of 1 GPU (tp=1)"),
                  "%s", out);
    ck_assert_msg(strstr(out, "workload               native trace") &&
                  strstr(out, "on its own timestamps"), "%s", out);
    unlink(h5);
    tu_cli_call set = {{"servesim", "run", cfg, "--set", "workload.arrival.rate_per_s=3",
                        "--out", h5, NULL}};
    ck_assert_int_eq(cli_both(&set, out, sizeof out, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "WARNING: command line --set workload.arrival.rate_per_s=3 "
                         "replaces the timestamps") && strstr(err, "workload.rate_scale"),
                  "%s", err);
    ck_assert_msg(strstr(out, "its timestamps REPLACED by poisson arrivals at 3 req/s"), "%s",
                  out);
}
END_TEST

/* Every record of a run, and its summary. */
typedef struct recs {
    req_record *v;
    size_t n, cap;
} recs;

static int keep_record(void *ctx, const req_record *rec)
{
    recs *r = ctx;
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 256;
        r->v = realloc(r->v, r->cap * sizeof *r->v);
    }
    r->v[r->n++] = *rec;
    return 0;
}

static void run_with_records(const char *const *sets, recs *out, run_summary *s)
{
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    cluster_hooks hooks = {.on_record = keep_record, .record_ctx = out};
    sim_err err = {{0}};
    cluster *c = cluster_create(&cfg.sys, &hooks, &err);
    ck_assert_msg(c != NULL, "%s", err.msg);
    ck_assert_msg(cluster_run(c, &err) == 0, "%s", err.msg);
    cluster_summarize(c, s);
    cluster_destroy(c);
    run_config_fini(&cfg);
}

/* The summary counts exactly the requests arriving in [warmup, last
 * arrival - cooldown]; every request is still recorded. */
START_TEST(test_warmup_and_cooldown_trim_the_summary)
{
    const char *sets[] = {"workload.requests=400", "workload.arrival.rate_per_s=20",
                          "metrics.warmup_s=4", "metrics.cooldown_s=5", NULL};
    recs r = {0};
    run_summary s;
    run_with_records(sets, &r, &s);
    ck_assert_uint_eq(r.n, 400);
    ck_assert_uint_eq(s.completed, 400);
    int64_t last = 0;
    for (size_t i = 0; i < r.n; i++)
        last = r.v[i].arrival_ns > last ? r.v[i].arrival_ns : last;
    int64_t lo = 4000000000LL, hi = last - 5000000000LL;
    uint64_t n = 0;
    double ttft_sum = 0, e2e_sum = 0;
    for (size_t i = 0; i < r.n; i++)
        if (r.v[i].arrival_ns >= lo && r.v[i].arrival_ns <= hi) {
            n++;
            ttft_sum += (double)r.v[i].ttft_ns;
            e2e_sum += (double)r.v[i].e2e_ns;
        }
    ck_assert_uint_gt(n, 100);
    ck_assert_uint_lt(n, 400);
    ck_assert_uint_eq(s.measured, n);
    ck_assert_double_eq_tol(s.ttft_s.mean, ttft_sum / n / 1e9, 1e-12);
    ck_assert_double_eq_tol(s.e2e_s.mean, e2e_sum / n / 1e9, 1e-12);
    ck_assert_double_eq_tol(s.window_start_s, 4, 1e-12);
    ck_assert_double_eq_tol(s.window_end_s, hi / 1e9, 1e-12);
    ck_assert_double_eq_tol(s.throughput_req_s, n / ((hi - lo) / 1e9), 1e-9);
    free(r.v);
    /* Off by default: every request counts, as before. */
    const char *plain[] = {"workload.requests=400", "workload.arrival.rate_per_s=20", NULL};
    recs all = {0};
    run_with_records(plain, &all, &s);
    ck_assert_uint_eq(s.measured, 400);
    double sum = 0;
    for (size_t i = 0; i < all.n; i++)
        sum += (double)all.v[i].ttft_ns;
    ck_assert_double_eq_tol(s.ttft_s.mean, sum / 400 / 1e9, 1e-12);
    free(all.v);
}
END_TEST

/* A request of one output token has no TPOT: it is held to its TTFT alone,
 * not counted as meeting a TPOT target with a TPOT of 0. */
START_TEST(test_one_token_outputs_have_no_tpot)
{
    const char *sets[] = {"workload.requests=200",
                          "workload.output_tokens={\"dist\": \"uniform\", \"min\": 1, "
                          "\"max\": 3}", "slo.tpot_ms=0.000001", "slo.ttft_ms=100000", NULL};
    recs r = {0};
    run_summary s;
    run_with_records(sets, &r, &s);
    uint64_t one = 0;
    for (size_t i = 0; i < r.n; i++)
        one += r.v[i].output_tokens == 1;
    ck_assert_uint_gt(one, 10);
    ck_assert_uint_lt(one, r.n);
    ck_assert_double_eq(s.slo_attain_tpot, 0);   /* every TPOT misses 1 ns */
    ck_assert_double_eq_tol(s.slo_attain, (double)one / r.n, 1e-12);
    free(r.v);
}
END_TEST

/* Many lengths cut to the context: a loud warning. */
START_TEST(test_clamped_lengths_warn_loudly)
{
    static char out[65536], err[8192];
    const char *cfg = tmp_file("c.json", small_config), *h5 = tmp_file("c.h5", NULL);
    tu_cli_call c = {{"servesim", "run", cfg, "--set", "instance.max_context_tokens=256",
                      "--out", h5, NULL}};
    ck_assert_int_eq(cli_both(&c, out, sizeof out, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "WARNING: 60 of 60 requests (100.0%) did not fit the context of "
                         "256 tokens"), "%s", err);
    unlink(h5);
    /* A window that holds no request: said, too. */
    tu_cli_call empty = {{"servesim", "run", cfg, "--set", "metrics.warmup_s=1000", "--out", h5,
                          NULL}};
    ck_assert_int_eq(cli_both(&empty, out, sizeof out, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "WARNING: no request arrived in the summary's window"), "%s", err);
    unlink(h5);
    tu_cli_call fine = {{"servesim", "run", cfg, "--out", h5, NULL}};
    ck_assert_int_eq(cli_both(&fine, out, sizeof out, err, sizeof err), 0);
    ck_assert_msg(!strstr(err, "WARNING"), "%s", err);
}
END_TEST

/* sweep --skip-infeasible: a point whose config cannot be built is recorded
 * with its reason in /index and the sweep goes on. */
START_TEST(test_sweep_skip_infeasible_records_the_reason)
{
    static char out[65536], err[8192];
    const char *exp = small_experiment(
        "{\"grid\": {\"model\": [\"Llama-3-8B\", \"Llama-3-70B\"], \"cluster.tp\": [1, 4]}}");
    const char *h5 = tmp_file("inf.h5", NULL);
    tu_cli_call stop = {{"servesim", "sweep", exp, "-j", "2", "--out", h5, NULL}};
    ck_assert_int_eq(cli_both(&stop, out, sizeof out, err, sizeof err), 2);
    ck_assert_msg(strstr(err, "does not fit"), "%s", err);
    tu_cli_call skip = {{"servesim", "sweep", exp, "-j", "2", "--out", h5, "--skip-infeasible",
                         NULL}};
    ck_assert_int_eq(cli_both(&skip, out, sizeof out, err, sizeof err), 0);
    ck_assert_msg(strstr(out, "3 run now") && strstr(out, "1 infeasible"), "%s", out);
    hid_t f = H5Fopen(h5, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    hid_t d = H5Dopen2(f, "/index", H5P_DEFAULT);
    typedef struct { char reason[240]; } row;
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, 240);
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(row));
    H5Tinsert(t, "reason", 0, str);
    row rows[4];
    ck_assert_int_ge(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows), 0);
    /* Points in grid order: 8B tp1, 8B tp4, 70B tp1 (does not fit), 70B tp4. */
    ck_assert_str_eq(rows[0].reason, "");
    ck_assert_str_eq(rows[1].reason, "");
    ck_assert_msg(strstr(rows[2].reason, "$.instance: Llama-3-70B does not fit"), "%s",
                  rows[2].reason);
    ck_assert_str_eq(rows[3].reason, "");
    H5Tclose(t);
    H5Tclose(str);
    H5Dclose(d);
    H5Fclose(f);
}
END_TEST

Suite *ux_suite(void)
{
    Suite *s = suite_create("ux");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_sweep_set_overrides_the_base);
    tcase_add_test(tc, test_sweep_set_errors_name_the_command_line);
    tcase_add_test(tc, test_sweep_empty_grid_is_an_error);
    tcase_add_test(tc, test_cannot_open_says_where_it_looked);
    tcase_add_test(tc, test_capacity_on_a_trace_searches_rate_scale_and_saves_probes);
    tcase_add_test(tc, test_capacity_over_an_integer_path);
    tcase_add_test(tc, test_run_header_and_trace_arrival_warning);
    tcase_add_test(tc, test_warmup_and_cooldown_trim_the_summary);
    tcase_add_test(tc, test_one_token_outputs_have_no_tpot);
    tcase_add_test(tc, test_clamped_lengths_warn_loudly);
    tcase_add_test(tc, test_sweep_skip_infeasible_records_the_reason);
    suite_add_tcase(s, tc);
    return s;
}
