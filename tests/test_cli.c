/* The command line: a run writes a complete results file; bad input exits
 * non-zero with a message naming the file, JSON path and what was expected,
 * and leaves no results file behind. */
#include <check.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/suites.h"
#include "tests/testutil.h"

/* Writes `json` to dir/name and returns the path (static buffer). */
static const char *write_config(const char *dir, const char *name, const char *json)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(json, f);
    fclose(f);
    return path;
}

static const char small_run[] =
    "{\"seed\": 3, \"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\",\n"
    " \"workload\": {\"requests\": 100, \"arrival\": {\"rate_per_s\": 8},\n"
    "   \"input_tokens\": {\"dist\": \"fixed\", \"value\": 500},\n"
    "   \"output_tokens\": {\"dist\": \"fixed\", \"value\": 50}}}\n";

START_TEST(test_run_writes_complete_results_file)
{
    char *dir = tu_tempdir();
    char config[512], out[512], partial[520];
    snprintf(config, sizeof config, "%s", write_config(dir, "small.json", small_run));
    snprintf(out, sizeof out, "%s/r.h5", dir);
    snprintf(partial, sizeof partial, "%s.partial", out);
    tu_cli_call c = {{"servesim", "run", config, "--out", out, "--quiet", NULL}};
    char errbuf[4096];
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &c, errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(access(out, F_OK), 0);
    ck_assert_int_ne(access(partial, F_OK), 0);

    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    hid_t d = H5Dopen2(f, "/requests", H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    hsize_t rows;
    H5Sget_simple_extent_dims(sp, &rows, NULL);
    ck_assert_uint_eq(rows, 100);
    H5Sclose(sp);
    H5Dclose(d);
    ck_assert_int_gt(H5Aexists(f, "config"), 0);
    ck_assert_int_gt(H5Aexists(f, "seed"), 0);
    ck_assert_int_gt(H5Lexists(f, "/summary", H5P_DEFAULT), 0);
    H5Fclose(f);
    unlink(out);
    unlink(config);
    rmdir(dir);
    free(dir);
}
END_TEST

/* Each bad input: a config edit, and what the message must contain. */
typedef struct bad_case {
    const char *json;
    const char *set;          /* extra --set, or NULL */
    const char *expect[3];
} bad_case;

static const bad_case bad_cases[] = {
    {"{\"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\", \"clster\": {}}", NULL,
     {"$.clster", "unknown key", "cluster"}},
    {"{\"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\", \"cluster\": {\"tp\": \"two\"}}",
     NULL, {"$.cluster.tp", "integer", NULL}},
    {"{\"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\", \"cluster\": {\"instances\": 0}}",
     NULL, {"$.cluster.instances", "[1,", NULL}},
    {"{\"model\": \"Llama-9-1T\", \"gpu\": \"H100-SXM-80GB\"}", NULL,
     {"$.model", "Llama-3-8B", NULL}},
    {"{\"model\": \"Llama-3-8B\", \"gpu\": \"TPU\"}", NULL, {"$.gpu", "H100-SXM-80GB", NULL}},
    {"{\"model\": \"Llama-3-70B\", \"gpu\": \"H100-SXM-80GB\"}", NULL,
     {"does not fit", "tp=1", NULL}},
    {"{\"model\": \"Llama-3-8B\",\n \"gpu\": \"H100-SXM-80GB\",,}", NULL, {":2:", "JSON", NULL}},
    {"{\"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\", \"workload\": {\"requests\": 5,"
     " \"arrival\": {\"rate_per_s\": -1}, \"input_tokens\": {\"dist\": \"fixed\", \"value\": 1},"
     " \"output_tokens\": {\"dist\": \"fixed\", \"value\": 1}}}", NULL,
     {"$.workload.arrival.rate_per_s", NULL, NULL}},
    {"{\"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\"}", "cluster.tp=3",
     {"$.cluster.tp", NULL, NULL}},
};
#define N_BAD (int)(sizeof bad_cases / sizeof bad_cases[0])

START_TEST(test_bad_input_names_path_and_leaves_no_file)
{
    const bad_case *bc = &bad_cases[_i];
    char *dir = tu_tempdir();
    char config[512], out[512];
    snprintf(config, sizeof config, "%s", write_config(dir, "bad.json", bc->json));
    snprintf(out, sizeof out, "%s/r.h5", dir);
    tu_cli_call c = {{"servesim", "run", config, "--out", out, "--quiet", NULL}};
    if (bc->set) {
        c.argv[6] = "--set";
        c.argv[7] = bc->set;
    }
    char errbuf[4096];
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &c, errbuf, sizeof errbuf), 2);
    /* A value set on the command line is blamed on the command line. */
    const char *source = bc->set ? "command line --set" : config;
    ck_assert_msg(strstr(errbuf, source), "message lacks '%s': %s", source, errbuf);
    for (int k = 0; k < 3 && bc->expect[k]; k++)
        ck_assert_msg(strstr(errbuf, bc->expect[k]), "expected '%s' in: %s",
                      bc->expect[k], errbuf);
    ck_assert_int_ne(access(out, F_OK), 0);
    char partial[600];
    snprintf(partial, sizeof partial, "%s.partial", out);
    ck_assert_int_ne(access(partial, F_OK), 0);
    unlink(config);
    rmdir(dir);
    free(dir);
}
END_TEST

START_TEST(test_missing_config_file_is_named)
{
    tu_cli_call c = {{"servesim", "run", "/nonexistent/x.json", "--quiet", NULL}};
    char errbuf[4096];
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &c, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "/nonexistent/x.json"), "%s", errbuf);
}
END_TEST

START_TEST(test_usage_errors_exit_2)
{
    tu_cli_call none = {{"servesim", NULL}};
    tu_cli_call bad = {{"servesim", "run", "--bogus", NULL}};
    char errbuf[4096];
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &none, errbuf, sizeof errbuf), 2);
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &bad, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "--bogus"), "%s", errbuf);
}
END_TEST

START_TEST(test_bundled_experiments_are_valid)
{
    /* Every shipped config parses and builds (not run: that is make run). */
    const char *files[] = {"experiments/quickstart.json", "experiments/bench_10k.json",
                           "experiments/bench_100k.json", NULL};
    for (int i = 0; files[i]; i++) {
        run_config cfg;
        sim_err err = {{0}};
        if (run_config_load(files[i], NULL, 0, &cfg, &err))
            ck_abort_msg("%s", err.msg);
        cluster *c = cluster_create(&cfg.sys, NULL, &err);
        ck_assert_msg(c, "%s: %s", files[i], err.msg);
        cluster_destroy(c);
        run_config_fini(&cfg);
    }
}
END_TEST

Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_run_writes_complete_results_file);
    tcase_add_loop_test(tc, test_bad_input_names_path_and_leaves_no_file, 0, N_BAD);
    tcase_add_test(tc, test_missing_config_file_is_named);
    tcase_add_test(tc, test_usage_errors_exit_2);
    tcase_add_test(tc, test_bundled_experiments_are_valid);
    suite_add_tcase(s, tc);
    return s;
}
