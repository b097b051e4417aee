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
    suite_add_tcase(s, tc);
    return s;
}
