/* Capacity search (tool/capacity.c): the bracketing probes sit on either
 * side of the SLO, the bracket is narrow, --slo parsing is strict, and the
 * command prints the answer and the bracketing runs. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tool/capacity.h"
#include "tests/suites.h"
#include "tests/testutil.h"

START_TEST(test_capacity_brackets_the_slo_threshold)
{
    cJSON *root = tu_base_config();   /* 200 requests at 10/s, one H100 */
    cap_spec spec;
    cap_spec_init(&spec);
    sim_err err = {{0}};
    ck_assert_int_eq(cap_parse_slo("ttft_p90=300ms,tpot_p90=40", &spec, &err), 0);
    spec.jobs = 2;
    spec.tolerance = 0.05;
    cap_result r;
    if (cap_search(root, "base", &spec, &r, &err))
        ck_abort_msg("%s", err.msg);
    ck_assert_int_ge(r.lo, 0);
    ck_assert_int_ge(r.hi, 0);
    const cap_probe *lo = &r.probes[r.lo], *hi = &r.probes[r.hi];
    ck_assert(lo->pass);
    ck_assert(!hi->pass);
    ck_assert_double_lt(lo->rate, hi->rate);
    ck_assert_double_le((hi->rate - lo->rate) / hi->rate, spec.tolerance + 1e-12);
    /* The passing run meets every bound and the attainment; the failing
     * one misses at least one of them. */
    ck_assert_double_le(lo->mean.ttft_s.p90, 0.3);
    ck_assert_double_le(lo->mean.tpot_s.p90, 0.04);
    ck_assert_double_ge(lo->mean.slo_attain, 0.9);
    ck_assert(hi->mean.ttft_s.p90 > 0.3 || hi->mean.tpot_s.p90 > 0.04 ||
              hi->mean.slo_attain < 0.9);
    ck_assert(r.rate == lo->rate);
    ck_assert(r.per_gpu == r.rate && r.per_instance == r.rate);   /* 1 instance, tp 1 */
    cap_result_fini(&r);
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_capacity_per_gpu_divides_by_gpus)
{
    cJSON *root = tu_base_config();
    const char *sets[] = {"cluster.instances=2", "cluster.tp=2", NULL};
    tu_set(root, sets);
    cap_spec spec;
    cap_spec_init(&spec);
    sim_err err = {{0}};
    ck_assert_int_eq(cap_parse_slo("ttft_p99=0.5s", &spec, &err), 0);
    spec.tolerance = 0.2;
    spec.jobs = 2;
    cap_result r;
    if (cap_search(root, "base", &spec, &r, &err))
        ck_abort_msg("%s", err.msg);
    ck_assert_int_ge(r.lo, 0);
    ck_assert(r.per_instance == r.rate / 2);
    ck_assert(r.per_gpu == r.rate / 4);
    cap_result_fini(&r);
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_capacity_slo_parsing)
{
    static const struct { const char *text; int ok; const char *expect; } cases[] = {
        {"ttft_p90=500", 1, NULL},
        {"ttft_p90=500ms,tpot_p99=0.05s,queue_p50=2s,e2e_mean=10000,tbt_p99=80", 1, NULL},
        {"ttft=500", 0, "METRIC_STAT"},
        {"ttft_p95=500", 0, "p99"},
        {"latency_p90=5", 0, "ttft"},
        {"ttft_p90=-1", 0, "time > 0"},
        {"ttft_p90=5min", 0, "time > 0"},
        {"", 0, "at least one"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cap_spec spec;
        cap_spec_init(&spec);
        sim_err err = {{0}};
        int rc = cap_parse_slo(cases[i].text, &spec, &err);
        ck_assert_msg((rc == 0) == cases[i].ok, "'%s': %s", cases[i].text, err.msg);
        if (cases[i].expect)
            ck_assert_msg(strstr(err.msg, cases[i].expect), "'%s': %s", cases[i].text, err.msg);
    }
    cap_spec spec;
    cap_spec_init(&spec);
    sim_err err = {{0}};
    cap_parse_slo("tpot_p99=0.05s", &spec, &err);
    ck_assert_int_eq(spec.bounds[0].metric, CAP_TPOT);
    ck_assert_int_eq(spec.bounds[0].stat, CAP_P99);
    ck_assert(spec.bounds[0].limit_s == 0.05);
}
END_TEST

START_TEST(test_capacity_cli)
{
    char errbuf[4096];
    tu_cli_call no_slo = {{"servesim", "capacity", "experiments/quickstart.json", NULL}};
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &no_slo, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "--slo"), "%s", errbuf);
    tu_cli_call bad = {{"servesim", "capacity", "experiments/quickstart.json", "--slo",
                     "ttft_p90=abc", NULL}};
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &bad, errbuf, sizeof errbuf), 2);
    /* A real search, output to a file. */
    char *dir = tu_tempdir();
    char path[512];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    fflush(stdout);
    FILE *saved = stdout;
    FILE *f = fopen(path, "w+");
    stdout = f;
    tu_cli_call ok = {{"servesim", "capacity", "experiments/quickstart.json", "--slo",
                    "ttft_p90=500ms,tpot_p90=50ms", "--set", "workload.requests=300",
                    "--tolerance", "0.1", "-j", "2", NULL}};
    int rc = tu_capture_stderr(tu_call_cli, &ok, errbuf, sizeof errbuf);
    fflush(f);
    stdout = saved;
    ck_assert_msg(rc == 0, "exit %d: %s", rc, errbuf);
    char text[16384];
    rewind(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    ck_assert_msg(strstr(text, "per GPU"), "%s", text);
    ck_assert_msg(strstr(text, "bracketing runs"), "%s", text);
    ck_assert_msg(strstr(text, "pass") && strstr(text, "fail"), "%s", text);
    unlink(path);
    rmdir(dir);
    free(dir);
}
END_TEST

/* Runs the CLI with stdout in `text`; returns its exit status. */
static int run_capacity_cli(tu_cli_call *c, char *text, size_t size, char *errbuf, size_t errsize)
{
    char path[] = "/tmp/servesim-capacity-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w+");
    ck_assert_ptr_nonnull(f);
    fflush(stdout);
    FILE *saved = stdout;
    stdout = f;
    int rc = tu_capture_stderr(tu_call_cli, c, errbuf, errsize);
    fflush(f);
    stdout = saved;
    rewind(f);
    size_t n = fread(text, 1, size - 1, f);
    text[n] = 0;
    fclose(f);
    unlink(path);
    return rc;
}

START_TEST(test_capacity_without_a_failing_rate_is_a_lower_bound)
{
    char text[16384], errbuf[4096];
    tu_cli_call c = {{"servesim", "capacity", "experiments/quickstart.json", "--slo",
                   "ttft_p90=100000s", "--attain", "0", "--set", "workload.requests=20",
                   "-j", "2", NULL}};
    int rc = run_capacity_cli(&c, text, sizeof text, errbuf, sizeof errbuf);
    ck_assert_msg(rc == 1, "exit %d: %s", rc, errbuf);
    ck_assert_msg(strstr(text, "capacity  >= "), "%s", text);
    ck_assert_msg(strstr(text, "no failing rate found"), "%s", text);
    ck_assert_msg(strstr(text, "no probed rate misses the SLO"), "%s", text);
}
END_TEST

START_TEST(test_capacity_counts_must_be_integers)
{
    char text[4096], errbuf[4096];
    tu_cli_call seeds = {{"servesim", "capacity", "experiments/quickstart.json", "--slo",
                       "ttft_p90=500ms", "--seeds", "1.5", NULL}};
    ck_assert_int_eq(run_capacity_cli(&seeds, text, sizeof text, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "--seeds: expected an integer in [1, 1000], got '1.5'"), "%s",
                  errbuf);
    tu_cli_call jobs = {{"servesim", "capacity", "experiments/quickstart.json", "--slo",
                      "ttft_p90=500ms", "-j", "1.5", NULL}};
    ck_assert_int_eq(run_capacity_cli(&jobs, text, sizeof text, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "-j: expected an integer"), "%s", errbuf);
}
END_TEST

/* The status says what went wrong, whatever the message's words: a run
 * that fails on a malformed trace row ("expected an integer") is a failed
 * run, not bad input. */
START_TEST(test_capacity_status_is_bad_input_or_failed_run)
{
    char *dir = tu_tempdir();
    char trace[512], json[1024];
    snprintf(trace, sizeof trace, "%s/len.csv", dir);
    FILE *f = fopen(trace, "w");
    ck_assert_ptr_nonnull(f);
    fputs("num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n"
          "300,50,350,6\n200,x,260,3.3\n", f);
    fclose(f);
    snprintf(json, sizeof json,
             "{\"seed\": 1, \"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\","
             " \"workload\": {\"source\": \"lengths\", \"path\": \"%s\","
             " \"arrival\": {\"process\": \"poisson\", \"rate_per_s\": 5}}}", trace);
    cJSON *root = cJSON_Parse(json);
    ck_assert_ptr_nonnull(root);
    cap_spec spec;
    cap_spec_init(&spec);
    sim_err err = {{0}};
    ck_assert_int_eq(cap_parse_slo("ttft_p90=500ms", &spec, &err), 0);
    spec.jobs = 1;
    cap_result r;
    ck_assert_int_eq(cap_search(root, "len", &spec, &r, &err), CAP_FAILED);
    ck_assert_msg(strstr(err.msg, "a run failed") && strstr(err.msg, "expected"), "%s",
                  err.msg);
    cJSON_Delete(root);

    root = tu_base_config();
    const char *sets[] = {"workload.arrival.rate_per_s=0", NULL};
    tu_set(root, sets);
    ck_assert_int_eq(cap_search(root, "base", &spec, &r, &err), CAP_BAD_INPUT);
    ck_assert_msg(strstr(err.msg, "rate_per_s"), "%s", err.msg);
    cJSON_Delete(root);
    unlink(trace);
    rmdir(dir);
    free(dir);
}
END_TEST

START_TEST(test_capacity_bound_names_go_to_the_callers_buffer)
{
    cap_bound a = {CAP_TTFT, CAP_P90, 0.5}, b = {CAP_TPOT, CAP_MEAN, 0.05};
    char na[CAP_NAME_SIZE], nb[CAP_NAME_SIZE];
    const char *pa = cap_bound_name(&a, na, sizeof na), *pb = cap_bound_name(&b, nb, sizeof nb);
    ck_assert_ptr_eq(pa, na);
    ck_assert_str_eq(pa, "ttft_p90");
    ck_assert_str_eq(pb, "tpot_mean");
    cap_bound longest = {CAP_QUEUE, CAP_MEAN, 1};
    ck_assert_str_eq(cap_bound_name(&longest, na, sizeof na), "queue_mean");
}
END_TEST

/* ---- issue 15 ---------------------------------------------------------------- */

/* Item 13: a config that cannot run (a policy's name) is bad input, exit 2,
 * found before any probe runs; and named as the command line's when --set
 * gave the value. */
START_TEST(test_capacity_bad_config_is_bad_input)
{
    cJSON *root = tu_base_config();
    const char *sets[] = {"policies.routing.name=\"bogus\"", NULL};
    tu_set(root, sets);
    cap_spec spec;
    cap_spec_init(&spec);
    sim_err err = {{0}};
    ck_assert_int_eq(cap_parse_slo("ttft_p90=500ms", &spec, &err), 0);
    spec.jobs = 1;
    cap_result r;
    ck_assert_int_eq(cap_search(root, "base", &spec, &r, &err), CAP_BAD_INPUT);
    ck_assert_msg(strstr(err.msg, "base: $.policies.routing.name: unknown routing policy"),
                  "%s", err.msg);
    cJSON_Delete(root);
    char text[16384], errbuf[4096];
    tu_cli_call c = {{"servesim", "capacity", "experiments/quickstart.json", "--slo",
                      "ttft_p90=500ms", "--set", "policies.routing.name=bogus", NULL}};
    ck_assert_int_eq(run_capacity_cli(&c, text, sizeof text, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "command line --set policies.routing.name=bogus: "
                          "$.policies.routing.name"), "%s", errbuf);
    ck_assert_msg(!strstr(text, "probe"), "a probe ran: %s", text);
}
END_TEST

/* Item 13: the caps are said: bracketing from far above the capacity stops
 * after CAP_BRACKET_STEPS halvings and says to start lower; narrowing that
 * reaches --max-probes says so. */
START_TEST(test_capacity_probe_caps_are_reported)
{
    char text[16384], errbuf[4096];
    tu_cli_call high = {{"servesim", "capacity", "experiments/quickstart.json", "--slo",
                         "ttft_p90=500ms,tpot_p90=50ms", "--start", "1e9", "--set",
                         "workload.requests=200", "-j", "2", NULL}};
    int rc = run_capacity_cli(&high, text, sizeof text, errbuf, sizeof errbuf);
    ck_assert_msg(rc == 1, "exit %d: %s", rc, errbuf);
    ck_assert_msg(strstr(text, "stopped at the probe cap: 24 halvings from 1e+09 req/s found "
                          "no passing rate") && strstr(text, "start lower with --start"),
                  "%s", text);
    tu_cli_call narrow = {{"servesim", "capacity", "experiments/quickstart.json", "--slo",
                           "ttft_p90=500ms,tpot_p90=50ms", "--set", "workload.requests=200",
                           "--tolerance", "0.000001", "--max-probes", "6", "-j", "1", NULL}};
    rc = run_capacity_cli(&narrow, text, sizeof text, errbuf, sizeof errbuf);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, errbuf);
    ck_assert_msg(strstr(text, "stopped at the probe cap (--max-probes 6)") &&
                  strstr(text, "raise --max-probes"), "%s", text);
    ck_assert_msg(strstr(text, "      6 ") && !strstr(text, "      7 "), "%s", text);
}
END_TEST

/* Items 12 and 16: counts are range-checked, not cast, and a bound given
 * twice is an error, not the last one silently. */
START_TEST(test_capacity_arguments_are_strict)
{
    char text[4096], errbuf[4096];
    tu_cli_call j = {{"servesim", "capacity", "experiments/quickstart.json", "--slo",
                      "ttft_p90=500ms", "-j", "4294967297", NULL}};
    ck_assert_int_eq(run_capacity_cli(&j, text, sizeof text, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "-j: expected an integer in [1, 4096], got '4294967297'"), "%s",
                  errbuf);
    tu_cli_call twice = {{"servesim", "capacity", "experiments/quickstart.json", "--slo",
                          "ttft_p90=500ms,tpot_p90=50", "--slo", "ttft_p90=300", NULL}};
    ck_assert_int_eq(run_capacity_cli(&twice, text, sizeof text, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "--slo: ttft_p90 given twice (500 ms and 300 ms)"), "%s",
                  errbuf);
    cap_spec spec;
    cap_spec_init(&spec);
    sim_err err = {{0}};
    ck_assert_int_eq(cap_parse_slo("tpot_p90=40,tpot_p99=80,tpot_p90=40", &spec, &err), -1);
    ck_assert_msg(strstr(err.msg, "tpot_p90 given twice"), "%s", err.msg);
    ck_assert_int_eq(spec.n_bounds, 2);
}
END_TEST

Suite *capacity_suite(void)
{
    Suite *s = suite_create("capacity");
    TCase *tc = tcase_create("capacity");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_capacity_brackets_the_slo_threshold);
    tcase_add_test(tc, test_capacity_per_gpu_divides_by_gpus);
    tcase_add_test(tc, test_capacity_slo_parsing);
    tcase_add_test(tc, test_capacity_cli);
    tcase_add_test(tc, test_capacity_without_a_failing_rate_is_a_lower_bound);
    tcase_add_test(tc, test_capacity_counts_must_be_integers);
    tcase_add_test(tc, test_capacity_status_is_bad_input_or_failed_run);
    tcase_add_test(tc, test_capacity_bound_names_go_to_the_callers_buffer);
    tcase_add_test(tc, test_capacity_bad_config_is_bad_input);
    tcase_add_test(tc, test_capacity_probe_caps_are_reported);
    tcase_add_test(tc, test_capacity_arguments_are_strict);
    suite_add_tcase(s, tc);
    return s;
}
