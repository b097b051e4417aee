/* Plugins (tool/plugin.c, api/plugin.h): the example plugin
 * (examples/plugins/example.c, built into build/plugins/) loads by name, its
 * copies of built-ins reproduce their results bit for bit and its own policy
 * changes them the expected way; broken plugins (tests/plugin_variants.c) are
 * refused with messages naming the file and what was expected; one built
 * against an older layout loads; sweeps over forked workers use plugins; the
 * results file records them; the version-1 layouts are frozen. */
#include <check.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sim/jsoncfg.h"
#include "tool/experiment.h"
#include "tool/output_h5.h"
#include "tool/plugin.h"
#include "tool/runner.h"
#include "tool/sweep.h"
#include "tests/suites.h"
#include "tests/testutil.h"

#define TEST_PLUGINS SERVESIM_PLUGIN_DIR "/test/"

/* LeakSanitizer (make test-san): the Python bridge keeps the interpreter,
 * and what it and its extension modules allocated (numpy, hashlib's
 * libcrypto), until the process exits, by design (finalizing CPython does
 * not free everything either); allocations made inside those libraries are
 * exempt, nothing else. LSan calls this hook if it is defined. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libpython3\nleak:/dist-packages/\nleak:/lib-dynload/\nleak:libcrypto.so\n";
}
const char *__lsan_default_options(void);
const char *__lsan_default_options(void) { return "print_suppressions=0"; }

#define PY_PLUGIN SERVESIM_PLUGIN_DIR "/libservesim_py.so"
#define PY_PARAMS(cls) "{\"module\": \"policies\", \"class\": \"" cls "\"," \
                       " \"path\": \"examples/python\"}"

/* Whether the bridge was built (mk/deps.sh found python3-dev); the tests
 * say so when it was not. */
static int have_py(void)
{
    if (access(PY_PLUGIN, R_OK) == 0)
        return 1;
    fprintf(stderr, "test_plugin: %s not built (no python3-dev): Python tests skipped\n",
            PY_PLUGIN);
    return 0;
}

/* A config's parse error ("" when it parses), with `sets` applied. */
static void parse_error(const char *const *sets, char *msg, size_t size)
{
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    sim_err err = {{0}};
    if (run_config_parse(root, &cfg, &err) == 0) {
        run_config_fini(&cfg);
        msg[0] = '\0';
        return;
    }
    snprintf(msg, size, "%s", err.msg);
}

static void assert_same_run(const tu_run *a, const tu_run *b)
{
    ck_assert_uint_eq(a->n_records, b->n_records);
    ck_assert_msg(a->record_hash == b->record_hash, "request records differ");
    run_summary x = a->summary, y = b->summary;
    x.wall_s = y.wall_s = x.peak_rss_mb = y.peak_rss_mb = 0;
    ck_assert_msg(memcmp(&x, &y, sizeof x) == 0, "summaries differ");
}

/* The two points' summaries, wall-clock columns zeroed. */
static void read_point_summaries(const char *file, const experiment *e, run_summary s[2])
{
    hid_t h = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(h >= 0);
    for (int i = 0; i < 2; i++) {
        char path[128];
        snprintf(path, sizeof path, "/points/%s/summary", e->points[i].id_hex);
        hid_t mem, file_t;
        ck_assert_int_eq(out_summary_types(&mem, &file_t), 0);
        hid_t d = H5Dopen2(h, path, H5P_DEFAULT);
        ck_assert_msg(d >= 0, "%s missing", path);
        memset(&s[i], 0, sizeof s[i]);
        ck_assert_int_ge(H5Dread(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, &s[i]), 0);
        s[i].wall_s = s[i].peak_rss_mb = 0;
        H5Dclose(d);
        H5Tclose(mem);
        H5Tclose(file_t);
    }
    H5Fclose(h);
}

/* ---- loading and results ---------------------------------------------------- */

START_TEST(test_plugin_copy_of_sjf_reproduces_builtin_bit_for_bit)
{
    static const char *const builtin[] = {"policies.order.name=sjf",
                                          "workload.arrival.rate_per_s=40", NULL};
    static const char *const plugin[] = {"policies.order.name=example:sjf_copy",
                                         "workload.arrival.rate_per_s=40", NULL};
    tu_run a, b;
    tu_run_sets(builtin, &a);
    tu_run_sets(plugin, &b);
    ck_assert_uint_eq(a.n_records, 200);
    assert_same_run(&a, &b);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

START_TEST(test_plugin_copy_of_lot_routing_reproduces_builtin_bit_for_bit)
{
    static const char *const builtin[] = {
        "cluster.instances=3", "policies.routing.name=least_outstanding_tokens",
        "workload.arrival.rate_per_s=60", NULL};
    static const char *const plugin[] = {"cluster.instances=3",
                                         "policies.routing.name=example:lot_copy",
                                         "workload.arrival.rate_per_s=60", NULL};
    static const char *const rr[] = {"cluster.instances=3", "workload.arrival.rate_per_s=60",
                                     NULL};
    tu_run a, b, c;
    tu_run_sets(builtin, &a);
    tu_run_sets(plugin, &b);
    tu_run_sets(rr, &c);
    assert_same_run(&a, &b);
    /* And the routing matters here: round robin gives other results. */
    ck_assert(a.record_hash != c.record_hash);
    tu_run_fini(&a);
    tu_run_fini(&b);
    tu_run_fini(&c);
}
END_TEST

/* 1,000 requests with quickstart's lengths at 100/s: a queue of seconds. */
#define LJF_LOAD "workload.requests=1000", "workload.arrival.rate_per_s=100", \
    "workload.input_tokens.mean=1155", "workload.output_tokens.mean=211", \
    "workload.output_tokens.sigma=1.0"

START_TEST(test_plugin_longest_first_takes_effect_the_expected_way)
{
    /* Under overload the queue is long, so its order decides: longest job
     * first makes the mean request wait and finish later than shortest job
     * first, and serves short requests last. */
    static const char *const sjf[] = {"policies.order.name=sjf",
                                      LJF_LOAD, NULL};
    static const char *const ljf[] = {"policies.order.name=example:longest_first",
                                      "policies.order.params={\"scale\": 2}",
                                      LJF_LOAD, NULL};
    tu_run a, b;
    tu_run_sets(sjf, &a);
    tu_run_sets(ljf, &b);
    ck_assert_uint_eq(b.n_records, 1000);
    ck_assert(a.record_hash != b.record_hash);
    ck_assert_double_gt(b.summary.queue_s.mean, 1.3 * a.summary.queue_s.mean);
    ck_assert_double_gt(b.summary.e2e_s.mean, a.summary.e2e_s.mean);
    ck_assert_uint_eq(a.summary.output_tokens, b.summary.output_tokens);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

/* KV pressure: preemptions every few iterations. */
#define KV_PRESSURE "instance.gpu_memory_utilization=0.245", "instance.max_context_tokens=4096", \
    "workload.arrival.rate_per_s=60", "workload.output_tokens.mean=600"

START_TEST(test_plugin_batch_copy_reproduces_prefill_first_under_every_engine)
{
    /* Each engine's rules reach the plugin through the setup (what admission
     * reserves, the victim rule), as they reach the built-in. */
    static const char *const engines[] = {"engine=legacy", "engine=vllm-v0", "engine=sglang",
                                          "engine=trtllm"};
    for (size_t e = 0; e < sizeof engines / sizeof engines[0]; e++) {
        const char *builtin[] = {engines[e], "policies.batch.name=vllm_prefill_first",
                                 KV_PRESSURE, NULL};
        const char *plugin[] = {engines[e],
                                "policies.batch.name=prefill_first:prefill_first_copy",
                                KV_PRESSURE, NULL};
        tu_run a, b;
        tu_run_sets(builtin, &a);
        tu_run_sets(plugin, &b);
        /* TensorRT-LLM reserves the whole output at admission: no preemptions. */
        if (e < 2)
            ck_assert_msg(a.summary.preemptions > 0, "%s: no preemptions", engines[e]);
        assert_same_run(&a, &b);
        tu_run_fini(&a);
        tu_run_fini(&b);
    }
}
END_TEST

START_TEST(test_plugin_controller_copy_reproduces_balance_queues)
{
    /* test_cluster.c's case: round robin on skewed prompts, queues evened
     * out every 100 ms. */
    static const char *const builtin[] = {
        "engine=legacy", "cluster.instances=4", "workload.arrival.rate_per_s=90",
        "workload.requests=600",
        "workload.input_tokens={\"dist\": \"lognormal\", \"mean\": 1500, \"sigma\": 1.5, "
        "\"max\": 6000}",
        "policies.control={\"name\": \"balance_queues\", \"period_ms\": 100, "
        "\"params\": {\"threshold\": 2}}", NULL};
    static const char *const plugin[] = {
        "engine=legacy", "cluster.instances=4", "workload.arrival.rate_per_s=90",
        "workload.requests=600",
        "workload.input_tokens={\"dist\": \"lognormal\", \"mean\": 1500, \"sigma\": 1.5, "
        "\"max\": 6000}",
        "policies.control={\"name\": \"prefill_first:balance_copy\", \"period_ms\": 100, "
        "\"params\": {\"threshold\": 2}}", NULL};
    static const char *const none[] = {
        "engine=legacy", "cluster.instances=4", "workload.arrival.rate_per_s=90",
        "workload.requests=600",
        "workload.input_tokens={\"dist\": \"lognormal\", \"mean\": 1500, \"sigma\": 1.5, "
        "\"max\": 6000}", NULL};
    tu_run a, b, c;
    tu_run_sets(builtin, &a);
    tu_run_sets(plugin, &b);
    tu_run_sets(none, &c);
    assert_same_run(&a, &b);
    ck_assert(a.record_hash != c.record_hash);   /* the controller acted */
    tu_run_fini(&a);
    tu_run_fini(&b);
    tu_run_fini(&c);
}
END_TEST

START_TEST(test_plugin_random_route_is_deterministic_and_seeded)
{
    static const char *const s1[] = {"cluster.instances=4",
                                     "policies.routing.name=example:random_pick", NULL};
    static const char *const s2[] = {"cluster.instances=4",
                                     "policies.routing.name=example:random_pick",
                                     "policies.routing.params={\"seed\": 2}", NULL};
    tu_run a, b, c;
    tu_run_sets(s1, &a);
    tu_run_sets(s1, &b);
    tu_run_sets(s2, &c);
    assert_same_run(&a, &b);
    ck_assert(a.record_hash != c.record_hash);
    tu_run_fini(&a);
    tu_run_fini(&b);
    tu_run_fini(&c);
}
END_TEST

START_TEST(test_plugin_params_are_read_strictly_through_the_host)
{
    static const char *const unknown[] = {"policies.order.name=example:longest_first",
                                          "policies.order.params={\"scal\": 2}", NULL};
    static const char *const range[] = {"policies.order.name=example:longest_first",
                                        "policies.order.params={\"scale\": -1}", NULL};
    /* Params are read when the cluster is made: run through the CLI path. */
    cJSON *root = tu_base_config();
    tu_set(root, unknown);
    run_config cfg;
    sim_err err = {{0}};
    ck_assert_int_eq(run_config_parse(root, &cfg, &err), 0);
    cluster *c = cluster_create(&cfg.sys, NULL, &err);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err.msg, "$.policies.order.params") && strstr(err.msg, "scal"),
                  "%s", err.msg);
    run_config_fini(&cfg);
    root = tu_base_config();
    tu_set(root, range);
    ck_assert_int_eq(run_config_parse(root, &cfg, &err), 0);
    ck_assert_ptr_null(cluster_create(&cfg.sys, NULL, &err));
    ck_assert_msg(strstr(err.msg, "$.policies.order.params.scale"), "%s", err.msg);
    run_config_fini(&cfg);
}
END_TEST

START_TEST(test_plugin_found_by_path_and_by_search_path)
{
    char msg[1024];
    const char *by_path[] = {"policies.order.name=" TEST_PLUGINS "libold_minor.so:fifo", NULL};
    parse_error(by_path, msg, sizeof msg);
    ck_assert_msg(msg[0] == '\0', "%s", msg);
    ck_assert_int_eq(setenv("SERVESIM_PLUGIN_PATH", "/nonexistent:" TEST_PLUGINS, 1), 0);
    const char *by_name[] = {"policies.order.name=old_minor:fifo", NULL};
    parse_error(by_name, msg, sizeof msg);
    ck_assert_msg(msg[0] == '\0', "%s", msg);
    unsetenv("SERVESIM_PLUGIN_PATH");
    const char *missing[] = {"policies.order.name=no_such_lib:x", NULL};
    parse_error(missing, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "$.policies.order.name") && strstr(msg, "libno_such_lib.so") &&
                  strstr(msg, "searched"), "%s", msg);
}
END_TEST

START_TEST(test_plugin_wrong_family_or_name_lists_what_it_has)
{
    char msg[1024];
    const char *sets[] = {"policies.routing.name=example:sjf_copy", NULL};
    parse_error(sets, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "$.policies.routing.name") && strstr(msg, "libexample.so") &&
                  strstr(msg, "no routing policy \"sjf_copy\"") &&
                  strstr(msg, "ordering sjf_copy, longest_first") &&
                  strstr(msg, "routing lot_copy, random_pick"), "%s", msg);
}
END_TEST

START_TEST(test_plugin_may_not_take_a_builtin_name)
{
    char msg[1024];
    const char *sets[] = {"policies.order.name=example:fcfs", NULL};
    parse_error(sets, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "built-in ordering policy's name \"fcfs\""), "%s", msg);
}
END_TEST

/* Each broken variant, and what its message must say. */
static const struct {
    const char *lib;
    const char *expect[3];
} refusals[] = {
    {"bad_major", {"libbad_major.so", "plugin built for ABI 2.0", "loads ABI 1.0 to 1."}},
    {"bad_minor", {"libbad_minor.so", "plugin built for ABI 1.", "rebuild it"}},
    {"no_abi", {"libno_abi.so", "not a servesim plugin: no symbol servesim_plugin_abi",
                "SERVESIM_PLUGIN_ABI"}},
    {"no_entry", {"libno_entry.so", "no symbol servesim_plugin_entry", "SERVESIM_EXPORT"}},
    {"no_hook", {"libno_hook.so", "ordering policy 0 (\"fifo\")", "lacks its decision hook"}},
    {"evict_builtin", {"libevict_builtin.so", "eviction policy 0 (\"ev\") sets builtin",
                       "leave builtin false"}},
    {"evict_no_victim", {"libevict_no_victim.so", "eviction policy 0 (\"ev\")",
                         "lacks its decision hook (victim)"}},
};

START_TEST(test_plugin_broken_plugins_are_refused_with_a_message)
{
    char set[512], msg[1024];
    snprintf(set, sizeof set, "policies.order.name=%slib%s.so:fifo", TEST_PLUGINS,
             refusals[_i].lib);
    const char *sets[] = {set, NULL};
    parse_error(sets, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "$.policies.order.name: "), "%s", msg);
    for (int k = 0; k < 3; k++)
        ck_assert_msg(strstr(msg, refusals[_i].expect[k]), "expected \"%s\" in: %s",
                      refusals[_i].expect[k], msg);
    ck_assert_int_eq(plugin_count(), 0);
}
END_TEST

START_TEST(test_plugin_built_for_an_older_layout_loads_and_runs)
{
    const plugin_lib *l;
    sim_err err = {{0}};
    ck_assert_msg(plugin_load(TEST_PLUGINS "libold_minor.so", &l, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(l->n_order, 1);
    ck_assert_ptr_null(l->order[0].destroy);   /* beyond what it was built with */
    ck_assert_ptr_nonnull(l->order[0].key);
    /* Its fifo (key 0: arrival order) equals the built-in fcfs. */
    static const char *const fcfs[] = {"workload.arrival.rate_per_s=40", NULL};
    static const char *const fifo[] = {
        "policies.order.name=" TEST_PLUGINS "libold_minor.so:fifo",
        "workload.arrival.rate_per_s=40", NULL};
    tu_run a, b;
    tu_run_sets(fcfs, &a);
    tu_run_sets(fifo, &b);
    assert_same_run(&a, &b);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

START_TEST(test_plugin_loaded_once_and_recorded_with_checksum)
{
    const plugin_lib *a, *b;
    sim_err err = {{0}};
    ck_assert_msg(plugin_load("example", &a, &err) == 0, "%s", err.msg);
    ck_assert_msg(plugin_load(SERVESIM_PLUGIN_DIR "/libexample.so", &b, &err) == 0, "%s",
                  err.msg);
    ck_assert_ptr_eq(a, b);
    ck_assert_int_eq(plugin_count(), 1);
    ck_assert_str_eq(a->desc.name, "example");
    ck_assert_str_eq(a->desc.version, "1.0");
    /* The checksum is the file's SHA-256, as sha256sum computes it. */
    char cmd[600], want[65] = "";
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", a->path);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(fscanf(p, "%64s", want), 1);
    pclose(p);
    ck_assert_str_eq(a->sha256, want);
    char *json = plugin_loaded_json();
    ck_assert_msg(strstr(json, "\"name\":\"example\"") && strstr(json, want) &&
                  strstr(json, "\"abi\":\"1.1\"") && strstr(json, "\"version\":\"1.0\""),
                  "%s", json);
    free(json);
    /* A results file records the plugins its config names, and only those. */
    json = plugin_used_json("{\"policies\": {\"order\": {\"name\": \"example:sjf_copy\"}}}");
    ck_assert_ptr_nonnull(json);
    ck_assert_msg(strstr(json, want) && strstr(json, a->path), "%s", json);
    free(json);
    ck_assert_ptr_null(plugin_used_json("{\"policies\": {\"order\": {\"name\": \"sjf\"}}}"));
}
END_TEST

/* Whether the results file of a run with `sets` has a plugins attribute
 * naming `want` (NULL: no attribute). */
static void assert_results_plugins(const char *const *sets, const char *want)
{
    char *dir = tu_tempdir(), out[600];
    snprintf(out, sizeof out, "%s/r.h5", dir);
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    run_result r;
    sim_err err = {{0}};
    ck_assert_msg(run_to_file(&cfg, NULL, out, &r, &err) == RUN_OK, "%s", err.msg);
    run_config_fini(&cfg);
    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(f >= 0);
    htri_t has = H5Aexists(f, "plugins");
    ck_assert_int_eq(has > 0, want != NULL);
    if (want) {
        /* output.c writes variable-length UTF-8 strings: read in the file's type */
        hid_t a = H5Aopen(f, "plugins", H5P_DEFAULT), mt = H5Aget_type(a);
        ck_assert_int_gt(H5Tis_variable_str(mt), 0);
        char *text = NULL;
        ck_assert_int_ge(H5Aread(a, mt, &text), 0);
        ck_assert_msg(text && strstr(text, want), "%s", text ? text : "(null)");
        H5free_memory(text);
        H5Tclose(mt);
        H5Aclose(a);
    }
    H5Fclose(f);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}

START_TEST(test_plugin_results_file_records_the_plugins_it_used)
{
    static const char *const with[] = {"policies.order.name=example:sjf_copy", NULL};
    static const char *const without[] = {"policies.order.name=sjf", NULL};
    assert_results_plugins(with, "\"name\":\"example\"");
    /* The library stays loaded in this process, but this run does not use it. */
    assert_results_plugins(without, NULL);
}
END_TEST

START_TEST(test_plugin_sweep_in_forked_workers_equals_builtin)
{
    /* Two points, the built-in and its plugin copy, run by two workers. */
    char *dir = tu_tempdir(), exp_path[600], out[600];
    snprintf(exp_path, sizeof exp_path, "%s/exp.json", dir);
    snprintf(out, sizeof out, "%s/out.h5", dir);
    FILE *f = fopen(exp_path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"base\": {\"seed\": 3, \"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\","
          "  \"cluster\": {\"instances\": 2},"
          "  \"workload\": {\"requests\": 150, \"arrival\": {\"rate_per_s\": 30},"
          "    \"input_tokens\": {\"dist\": \"lognormal\", \"mean\": 600, \"sigma\": 0.5},"
          "    \"output_tokens\": {\"dist\": \"lognormal\", \"mean\": 100, \"sigma\": 0.7}}},"
          " \"sweep\": {\"grid\": {\"policies.routing.name\":"
          "   [\"least_outstanding_tokens\", \"example:lot_copy\"]}}}", f);
    fclose(f);
    experiment e;
    sim_err err = {{0}};
    ck_assert_msg(exp_load(exp_path, 0, &e, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(e.n_points, 2);
    ck_assert_int_eq(plugin_count(), 0);
    sweep_opts o = {.out = out, .jobs = 2, .quiet = 1};
    sweep_stats st;
    ck_assert_msg(sweep_run(&e, &o, &st, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(st.ran, 2);
    ck_assert_int_eq(st.failed, 0);
    /* The parent loaded it, checking the points before it forked the workers
     * (sweep.c prepares a batch of points before running any). */
    ck_assert_int_eq(plugin_count(), 1);
    run_summary s[2];
    read_point_summaries(out, &e, s);
    ck_assert_uint_eq(s[0].completed, 150);
    ck_assert_msg(memcmp(&s[0], &s[1], sizeof s[0]) == 0, "summaries differ");
    exp_fini(&e);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}
END_TEST

START_TEST(test_plugin_check_command_runs_the_invariants)
{
    char out[8192];
    tu_cli_call ok = {{"servesim", "plugin", "check", "example", NULL}};
    ck_assert_int_eq(tu_capture(STDOUT_FILENO, tu_call_cli, &ok, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "ok   ordering   sjf_copy: 400 requests") &&
                  strstr(out, "ok   routing    random_pick") &&
                  strstr(out, "4 of 4 policies passed"), "%s", out);
    /* A policy with state across runs fails the determinism check. */
    tu_cli_call nd = {{"servesim", "plugin", "check", TEST_PLUGINS "libnondet.so", NULL}};
    ck_assert_int_eq(tu_capture(STDOUT_FILENO, tu_call_cli, &nd, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "ok   ordering   fifo") &&
                  strstr(out, "FAIL routing    spread: two runs differ (not deterministic)") &&
                  strstr(out, "1 of 2 policies passed"), "%s", out);
    /* The Python bridge, one family at a time with its class. */
    if (have_py()) {
        tu_cli_call py = {{"servesim", "plugin", "check", "servesim_py", "--family", "routing",
                           "--params", PY_PARAMS("LeastOutstandingTokens"), NULL}};
        ck_assert_int_eq(tu_capture(STDOUT_FILENO, tu_call_cli, &py, out, sizeof out), 0);
        ck_assert_msg(strstr(out, "ok   routing    python") &&
                      strstr(out, "1 of 1 policies passed"), "%s", out);
    }
    /* One that does not load: exit 2, the loader's message. */
    tu_cli_call bad = {{"servesim", "plugin", "info", TEST_PLUGINS "libbad_major.so", NULL}};
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &bad, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "plugin built for ABI 2.0"), "%s", out);
    tu_cli_call usage = {{"servesim", "plugin", "frobnicate", "x", NULL}};
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &usage, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "usage: servesim plugin build") &&
                  strstr(out, "servesim plugin info LIB"), "%s", out);
}
END_TEST

/* The C block of api/README.md's walkthrough (after "1. **Write**"),
 * unindented, into path. */
static void write_walkthrough(const char *path)
{
    FILE *f = fopen("api/README.md", "r");
    ck_assert_ptr_nonnull(f);
    FILE *o = fopen(path, "w");
    ck_assert_ptr_nonnull(o);
    char line[512];
    int state = 0, lines = 0;   /* 0 before "1. **Write**", 1 before ```c, 2 inside */
    while (fgets(line, sizeof line, f) && state < 3) {
        if (state == 0 && strstr(line, "1. **Write**"))
            state = 1;
        else if (state == 1 && strstr(line, "```c"))
            state = 2;
        else if (state == 2 && strstr(line, "```"))
            state = 3;
        else if (state == 2) {
            fputs(strncmp(line, "   ", 3) == 0 ? line + 3 : line, o);
            lines++;
        }
    }
    fclose(f);
    fclose(o);
    ck_assert_msg(state == 3 && lines > 10, "no walkthrough code in api/README.md");
}

START_TEST(test_plugin_build_command_builds_the_readme_walkthrough)
{
    char *dir = tu_tempdir(), src[600], lib[600], set[700], out[8192];
    snprintf(src, sizeof src, "%s/my_sjf.c", dir);
    snprintf(lib, sizeof lib, "%s/libmy_sjf.so", dir);
    write_walkthrough(src);
    tu_cli_call b = {{"servesim", "plugin", "build", src, NULL}};
    ck_assert_int_eq(tu_capture(STDOUT_FILENO, tu_call_cli, &b, out, sizeof out), 0);
    ck_assert_msg(strstr(out, lib), "%s", out);
    ck_assert_int_eq(access(lib, R_OK), 0);
    /* It is the walkthrough's SJF: the built-in's results, bit for bit. */
    snprintf(set, sizeof set, "policies.order.name=%s:my_sjf", lib);
    const char *plugin[] = {set, "workload.arrival.rate_per_s=40", NULL};
    static const char *const builtin[] = {"policies.order.name=sjf",
                                          "workload.arrival.rate_per_s=40", NULL};
    tu_run x, y;
    tu_run_sets(builtin, &x);
    tu_run_sets(plugin, &y);
    assert_same_run(&x, &y);
    tu_run_fini(&x);
    tu_run_fini(&y);
    /* A file the compiler rejects: exit 1, the compiler's own message. */
    snprintf(src, sizeof src, "%s/bad.c", dir);
    FILE *f = fopen(src, "w");
    ck_assert_ptr_nonnull(f);
    fputs("int x = ;\n", f);
    fclose(f);
    tu_cli_call bad = {{"servesim", "plugin", "build", src, NULL}};
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &bad, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "error") && strstr(out, "plugin build: cc failed on"), "%s", out);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}
END_TEST

/* ---- the Python bridge (plugins/servesim_py.c) ----------------------------------- */

START_TEST(test_python_sjf_reproduces_builtin_bit_for_bit)
{
    if (!have_py())
        return;
    static const char *const builtin[] = {"policies.order.name=sjf",
                                          "workload.arrival.rate_per_s=40", NULL};
    static const char *const py[] = {"policies.order.name=servesim_py:python",
                                     "policies.order.params=" PY_PARAMS("SJF"),
                                     "workload.arrival.rate_per_s=40", NULL};
    tu_run a, b;
    tu_run_sets(builtin, &a);
    tu_run_sets(py, &b);
    assert_same_run(&a, &b);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

START_TEST(test_python_lot_routing_reproduces_builtin_bit_for_bit)
{
    if (!have_py())
        return;
    static const char *const builtin[] = {
        "cluster.instances=3", "policies.routing.name=least_outstanding_tokens",
        "workload.arrival.rate_per_s=60", NULL};
    /* path with two folders, the first one missing (as a venv could be). */
    static const char *const py[] = {
        "cluster.instances=3", "policies.routing.name=servesim_py:python",
        "policies.routing.params={\"module\": \"policies\", \"class\": "
        "\"LeastOutstandingTokens\", \"path\": \"/nonexistent:examples/python\"}",
        "workload.arrival.rate_per_s=60", NULL};
    tu_run a, b;
    tu_run_sets(builtin, &a);
    tu_run_sets(py, &b);
    assert_same_run(&a, &b);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

START_TEST(test_python_numpy_reads_the_views_in_place)
{
    if (!have_py())
        return;
    if (system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) {
        fprintf(stderr, "test_plugin: no numpy for /usr/bin/python3: numpy test skipped\n");
        return;
    }
    static const char *const builtin[] = {
        "cluster.instances=4", "policies.routing.name=least_outstanding_tokens",
        "workload.arrival.rate_per_s=60", NULL};
    static const char *const py[] = {
        "cluster.instances=4", "policies.routing.name=servesim_py:python",
        "policies.routing.params={\"module\": \"numpy_policies\", \"class\": "
        "\"LeastOutstandingTokens\", \"path\": \"examples/python\"}",
        "workload.arrival.rate_per_s=60", NULL};
    tu_run a, b;
    tu_run_sets(builtin, &a);
    tu_run_sets(py, &b);
    assert_same_run(&a, &b);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

START_TEST(test_python_batch_copy_reproduces_prefill_first)
{
    if (!have_py())
        return;
    /* Under KV pressure (preemptions), with both victim rules. */
    static const char *const engines[] = {"engine=legacy", "engine=sglang"};
    for (size_t e = 0; e < 2; e++) {
        const char *builtin[] = {engines[e], "policies.batch.name=vllm_prefill_first",
                                 KV_PRESSURE, NULL};
        const char *py[] = {engines[e], "policies.batch.name=servesim_py:python",
                            "policies.batch.params=" PY_PARAMS("PrefillFirst"), KV_PRESSURE,
                            NULL};
        tu_run a, b;
        tu_run_sets(builtin, &a);
        tu_run_sets(py, &b);
        ck_assert_msg(a.summary.preemptions > 0, "%s: no preemptions", engines[e]);
        assert_same_run(&a, &b);
        tu_run_fini(&a);
        tu_run_fini(&b);
    }
    /* What form gets cannot be used after the call (the class checks). */
    static const char *const keeps[] = {
        "workload.requests=40", "policies.batch.name=servesim_py:python",
        "policies.batch.params={\"module\": \"plugin_policies\", \"class\": "
        "\"KeepsBatchView\", \"path\": \"tests/data\"}", NULL};
    tu_run k;
    tu_run_sets(keeps, &k);
    ck_assert_uint_eq(k.n_records, 40);
    tu_run_fini(&k);
}
END_TEST

START_TEST(test_python_random_policy_is_deterministic)
{
    if (!have_py())
        return;
    static const char *const s1[] = {"cluster.instances=4",
                                     "policies.routing.name=servesim_py:python",
                                     "policies.routing.params=" PY_PARAMS("PowerOfTwo"), NULL};
    static const char *const s2[] = {
        "cluster.instances=4", "policies.routing.name=servesim_py:python",
        "policies.routing.params={\"module\": \"policies\", \"class\": \"PowerOfTwo\","
        " \"path\": \"examples/python\", \"seed\": 5}", NULL};
    tu_run a, b, c;
    tu_run_sets(s1, &a);
    tu_run_sets(s1, &b);
    tu_run_sets(s2, &c);
    assert_same_run(&a, &b);
    ck_assert(a.record_hash != c.record_hash);
    tu_run_fini(&a);
    tu_run_fini(&b);
    tu_run_fini(&c);
}
END_TEST

START_TEST(test_python_views_cannot_be_used_after_their_call)
{
    if (!have_py())
        return;
    /* The class raises (and the run aborts) if a kept view is still readable. */
    static const char *const sets[] = {
        "cluster.instances=3", "policies.routing.name=servesim_py:python",
        "policies.routing.params={\"module\": \"plugin_policies\", \"class\": \"KeepsViews\","
        " \"path\": \"tests/data\"}", NULL};
    tu_run r;
    tu_run_sets(sets, &r);
    ck_assert_uint_eq(r.n_records, 200);
    tu_run_fini(&r);
}
END_TEST

/* The message cluster_create gives for an ordering policy's params. */
static void py_init_error(const char *params, char *msg, size_t size)
{
    char set[512];
    snprintf(set, sizeof set, "policies.order.params=%s", params);
    const char *sets[] = {"policies.order.name=servesim_py:python", set, NULL};
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    sim_err err = {{0}};
    tu_parse(root, &cfg);
    cluster *c = cluster_create(&cfg.sys, NULL, &err);
    cluster_destroy(c);
    snprintf(msg, size, "%s", c ? "" : err.msg);
    run_config_fini(&cfg);
}

START_TEST(test_python_init_errors_name_the_params_and_the_exception)
{
    if (!have_py())
        return;
    char msg[1024];
    py_init_error("{\"module\": \"no_such_module\", \"class\": \"X\"}", msg, sizeof msg);
    ck_assert_msg(strstr(msg, "$.policies.order.params: cannot import the module") &&
                  strstr(msg, "No module named 'no_such_module'"), "%s", msg);
    py_init_error("{\"module\": \"policies\", \"class\": \"Nope\", \"path\": "
                  "\"examples/python\"}", msg, sizeof msg);
    ck_assert_msg(strstr(msg, "no such class") && strstr(msg, "Nope"), "%s", msg);
    py_init_error("{\"module\": \"policies\", \"class\": \"Broken\", \"path\": "
                  "\"examples/python\", \"args\": {\"fail_in_init\": true}}", msg, sizeof msg);
    ck_assert_msg(strstr(msg, "__init__ failed") && strstr(msg, "RuntimeError: asked to fail"),
                  "%s", msg);
    py_init_error("{\"module\": \"policies\", \"class\": \"SJF\", \"modul\": 1}", msg,
                  sizeof msg);
    ck_assert_msg(strstr(msg, "$.policies.order.params") && strstr(msg, "modul"), "%s", msg);
    py_init_error("{\"class\": \"SJF\"}", msg, sizeof msg);
    ck_assert_msg(strstr(msg, "$.policies.order.params.module"), "%s", msg);
}
END_TEST

START_TEST(test_python_exception_in_a_decision_aborts_with_the_traceback)
{
    if (!have_py())
        return;
    char *dir = tu_tempdir(), out[600], errbuf[8192];
    snprintf(out, sizeof out, "%s/out.h5", dir);
    tu_cli_call c = {{"servesim", "run", "experiments/quickstart.json", "--set",
                      "policies.order.name=servesim_py:python", "--set",
                      "policies.order.params=" PY_PARAMS("Broken"), "--out", out, NULL}};
    int status = tu_cli_child(&c, NULL, NULL, errbuf, sizeof errbuf);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %d: %s", status,
                  errbuf);
    ck_assert_msg(strstr(errbuf, "Traceback") && strstr(errbuf, "asked to fail") &&
                  strstr(errbuf, "Python policy policies.Broken.key: raised an exception"),
                  "%s", errbuf);
    ck_assert_int_ne(access(out, F_OK), 0);   /* no results file left behind */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}
END_TEST

START_TEST(test_python_sweep_in_forked_workers)
{
    if (!have_py())
        return;
    char *dir = tu_tempdir(), exp_path[600], out[600];
    snprintf(exp_path, sizeof exp_path, "%s/exp.json", dir);
    snprintf(out, sizeof out, "%s/out.h5", dir);
    FILE *f = fopen(exp_path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"base\": {\"seed\": 3, \"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\","
          "  \"cluster\": {\"instances\": 2},"
          "  \"workload\": {\"requests\": 150, \"arrival\": {\"rate_per_s\": 30},"
          "    \"input_tokens\": {\"dist\": \"lognormal\", \"mean\": 600, \"sigma\": 0.5},"
          "    \"output_tokens\": {\"dist\": \"lognormal\", \"mean\": 100, \"sigma\": 0.7}}},"
          " \"sweep\": {\"grid\": {\"policies.routing\": ["
          "   {\"name\": \"least_outstanding_tokens\"},"
          "   {\"name\": \"servesim_py:python\", \"params\": {\"module\": \"policies\","
          "    \"class\": \"LeastOutstandingTokens\", \"path\": \"examples/python\"}}]}}}", f);
    fclose(f);
    experiment e;
    sim_err err = {{0}};
    ck_assert_msg(exp_load(exp_path, 0, &e, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(e.n_points, 2);
    sweep_opts o = {.out = out, .jobs = 2, .quiet = 1};
    sweep_stats st;
    ck_assert_msg(sweep_run(&e, &o, &st, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(st.ran, 2);
    ck_assert_int_eq(st.failed, 0);
    run_summary s[2];
    read_point_summaries(out, &e, s);
    ck_assert_uint_eq(s[0].completed, 150);
    ck_assert_msg(memcmp(&s[0], &s[1], sizeof s[0]) == 0, "summaries differ");
    exp_fini(&e);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}
END_TEST

/* ---- the Python bridge as a subprocess (plugins/servesim_pipe.c) --------------------- */

#define PIPE_PARAMS(cls) "{\"module\": \"policies\", \"class\": \"" cls "\"," \
                         " \"path\": \"examples/python\", \"python\": \"/usr/bin/python3\"}"

START_TEST(test_pipe_copies_reproduce_builtins_bit_for_bit)
{
    static const char *const sjf[] = {"policies.order.name=sjf",
                                      "workload.arrival.rate_per_s=40", NULL};
    static const char *const pipe_sjf[] = {"policies.order.name=servesim_pipe:python",
                                           "policies.order.params=" PIPE_PARAMS("SJF"),
                                           "workload.arrival.rate_per_s=40", NULL};
    static const char *const lot[] = {"cluster.instances=3",
                                      "policies.routing.name=least_outstanding_tokens",
                                      "workload.arrival.rate_per_s=60", NULL};
    static const char *const pipe_lot[] = {
        "cluster.instances=3", "policies.routing.name=servesim_pipe:python",
        "policies.routing.params=" PIPE_PARAMS("LeastOutstandingTokens"),
        "workload.arrival.rate_per_s=60", NULL};
    tu_run a, b;
    tu_run_sets(sjf, &a);
    tu_run_sets(pipe_sjf, &b);
    assert_same_run(&a, &b);
    tu_run_fini(&a);
    tu_run_fini(&b);
    tu_run_sets(lot, &a);
    tu_run_sets(pipe_lot, &b);
    assert_same_run(&a, &b);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

/* The message cluster_create gives for a subprocess ordering policy. */
static void pipe_init_error(const char *params, char *msg, size_t size)
{
    char set[512];
    snprintf(set, sizeof set, "policies.order.params=%s", params);
    const char *sets[] = {"policies.order.name=servesim_pipe:python", set, NULL};
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    sim_err err = {{0}};
    tu_parse(root, &cfg);
    cluster *c = cluster_create(&cfg.sys, NULL, &err);
    cluster_destroy(c);
    snprintf(msg, size, "%s", c ? "" : err.msg);
    run_config_fini(&cfg);
}

START_TEST(test_pipe_errors_are_reported)
{
    char msg[1024];
    pipe_init_error("{\"module\": \"policies\", \"class\": \"Broken\", \"path\": "
                    "\"examples/python\", \"args\": {\"fail_in_init\": true}}", msg, sizeof msg);
    ck_assert_msg(strstr(msg, "$.policies.order.params: the policy could not be made") &&
                  strstr(msg, "RuntimeError: asked to fail"), "%s", msg);
    pipe_init_error("{\"module\": \"policies\", \"class\": \"SJF\", \"path\": "
                    "\"examples/python\", \"python\": \"/nonexistent/python3\"}", msg,
                    sizeof msg);
    ck_assert_msg(strstr(msg, "exited before it answered"), "%s", msg);
    /* An exception in a decision aborts the run with the child's traceback. */
    char *dir = tu_tempdir(), out[600], errbuf[8192];
    snprintf(out, sizeof out, "%s/out.h5", dir);
    tu_cli_call c = {{"servesim", "run", "experiments/quickstart.json", "--set",
                      "policies.order.name=servesim_pipe:python", "--set",
                      "policies.order.params=" PIPE_PARAMS("Broken"), "--out", out, NULL}};
    int status = tu_cli_child(&c, NULL, NULL, errbuf, sizeof errbuf);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %d: %s", status,
                  errbuf);
    ck_assert_msg(strstr(errbuf, "Traceback") && strstr(errbuf, "asked to fail") &&
                  strstr(errbuf, "Python policy policies.Broken (subprocess): raised"),
                  "%s", errbuf);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}
END_TEST

/* ---- ABI 1.1's families: eviction, autoscaling, KV retention --------------------- */

#define EVICT_LIB SERVESIM_PLUGIN_DIR "/libevict_example.so"

/* A hand-built cache of 6 blocks, driven as serve/kv.c drives a policy. */
START_TEST(test_plugin_evict_deepest_first_picks_its_victims_on_a_hand_built_case)
{
    sim_err err = {{0}};
    const evict_policy_ops *ops =
        plugin_evict_find("evict_example:deepest_first", "$.policies.eviction.name", &err);
    ck_assert_msg(ops, "%s", err.msg);
    ck_assert(!ops->builtin);
    evict_block blk[6] = {{0}};
    evict_view v = {.blocks = blk, .n_blocks = 6, .block_size_tokens = 16};
    evict_setup setup = {.n_blocks = 6, .block_size_tokens = 16};
    cJSON *params = cJSON_CreateObject();
    void *st = NULL;
    ck_assert_msg(ops->init(&setup, params, "$.policies.eviction.params", &st, &err) == 0,
                  "%s", err.msg);
    for (int32_t b = 0; b < 6; b++)   /* the core inserts every block after init */
        ops->insert(st, &v, b);
    /* Nothing cached: oldest first. Blocks 0-3 become one request's chain
     * (depths 0..3) and block 4 another's first block. */
    for (int32_t b = 0; b < 5; b++) {
        ck_assert_int_eq(ops->victim(st, &v), b);
        blk[b].ref = 1;
        blk[b].hash = 0x100 + (uint64_t)b;
        blk[b].depth = b < 4 ? b : 0;
    }
    /* Released tail first, as the core frees a request's blocks. */
    for (int32_t b = 4; b >= 0; b--) {
        blk[b].ref = 0;
        ops->insert(st, &v, b);
    }
    /* A later request hits block 1 (it leaves the free set). */
    ops->remove(st, &v, 1);
    /* Uncached block 5 first; then deepest first (3, 2); then the depth-0
     * blocks 4 and 0 in the order they were freed (4 first). */
    static const int32_t want[] = {5, 3, 2, 4, 0};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
        ck_assert_int_eq(ops->victim(st, &v), want[k]);
    /* Block 1 back: the only free block. */
    ops->insert(st, &v, 1);
    ck_assert_int_eq(ops->victim(st, &v), 1);
    ops->destroy(st);
    /* Its params are read strictly through the host. */
    cJSON_AddNumberToObject(params, "depth", 1);
    ck_assert_int_ne(ops->init(&setup, params, "$.policies.eviction.params", &st, &err), 0);
    ck_assert_msg(strstr(err.msg, "$.policies.eviction.params") && strstr(err.msg, "depth"),
                  "%s", err.msg);
    cJSON_Delete(params);
}
END_TEST

/* The prefix trace under KV pressure (tests/test_prefix_cache.c's case). */
#define EVICT_LOAD "instance.prefix_caching=true", "instance.gpu_memory_utilization=0.245", \
    "instance.max_context_tokens=4096",                                                     \
    "workload={\"source\": \"native\", \"path\": \"tests/data/prefix_trace.csv\", "         \
    "\"rate_scale\": 6}"

START_TEST(test_plugin_eviction_runs_through_the_core_by_lib_name)
{
    static const char *const lru[] = {EVICT_LOAD, NULL};
    static const char *const list[] = {EVICT_LOAD,
                                       "policies.eviction.name=evict_example:lru_list", NULL};
    static const char *const deep[] = {
        EVICT_LOAD, "policies.eviction={\"name\": \"evict_example:deepest_first\"}", NULL};
    tu_run a, b, c, d;
    tu_run_sets(lru, &a);
    tu_run_sets(list, &b);
    tu_run_sets(deep, &c);
    tu_run_sets(deep, &d);
    /* The plugin's linked list is the core's own LRU queue: bit for bit. */
    ck_assert_uint_eq(a.n_records, 200);
    ck_assert_uint_gt(a.summary.kv_evictions, 100);
    assert_same_run(&a, &b);
    /* deepest_first: its own victims, every request completes, deterministic. */
    ck_assert_uint_eq(c.n_records, 200);
    ck_assert_int_eq(c.kv_over_capacity, 0);
    ck_assert(c.summary.kv_hit_tokens != a.summary.kv_hit_tokens);
    ck_assert_uint_eq(c.summary.output_tokens, a.summary.output_tokens);
    assert_same_run(&c, &d);
    tu_run_fini(&a);
    tu_run_fini(&b);
    tu_run_fini(&c);
    tu_run_fini(&d);
    /* A lower KV tier's eviction takes "lib:policy" too. */
    cJSON *root = tu_base_config();
    static const char *const tier[] = {
        "instance.prefix_caching=true",
        "instance.kv_tiers=[{\"name\": \"dram\", \"capacity_gib\": 1, "
        "\"eviction\": \"evict_example:deepest_first\"}]", NULL};
    tu_set(root, tier);
    run_config cfg;
    tu_parse(root, &cfg);
    ck_assert_str_eq(cfg.sys.pools[0].kv_tiers.tier[0].evict->name, "deepest_first");
    run_config_fini(&cfg);
    char *json = plugin_used_json("{\"instance\": {\"kv_tiers\": [{\"name\": \"dram\", "
                                  "\"eviction\": \"evict_example:deepest_first\"}]}}");
    ck_assert_msg(json && strstr(json, "\"name\":\"evict_example\""), "%s",
                  json ? json : "(null)");
    free(json);
}
END_TEST

/* One pool of 1 to 4 instances, a step from 2 to 30 requests/s at 20 s. */
#define SCALE_LOAD "workload.input_tokens.mean=2000", "workload.output_tokens.mean=300", \
    "cluster.pools=[{\"name\": \"p\", \"instances\": 1, \"max_instances\": 4, "           \
    "\"lifecycle\": {\"provision_s\": 2, \"init_s\": 3}}]",                               \
    "workload.requests=900",                                                              \
    "workload.arrival={\"process\": \"piecewise\", \"segments\": [[0, 2], [20, 30]]}"

START_TEST(test_plugin_autoscaler_copy_reproduces_queue_and_decides_on_a_hand_built_view)
{
    static const char *const none[] = {SCALE_LOAD, NULL};
    static const char *const builtin[] = {
        SCALE_LOAD, "policies.scale={\"name\": \"queue\", \"period_ms\": 2000}", NULL};
    static const char *const plugin[] = {
        SCALE_LOAD, "policies.scale={\"name\": \"scale_retain:queue_copy\", \"period_ms\": 2000}",
        NULL};
    tu_run a, b, c;
    tu_run_sets(none, &a);
    tu_run_sets(builtin, &b);
    tu_run_sets(plugin, &c);
    ck_assert_uint_eq(b.n_records, 900);
    ck_assert(a.record_hash != b.record_hash);   /* it scaled */
    assert_same_run(&b, &c);
    tu_run_fini(&a);
    tu_run_fini(&b);
    tu_run_fini(&c);
    /* Its decision on a hand-built view: 2 instances, 10 waiting (5 each,
     * over 4): one more; an idle pool with little KV in use: one fewer. */
    sim_err err = {{0}};
    const scale_policy_ops *ops =
        plugin_scale_find("scale_retain:queue_copy", "$.policies.scale.name", &err);
    ck_assert_msg(ops, "%s", err.msg);
    scale_setup setup = {.n_pools = 2, .period_ns = SIM_NS_PER_S};
    cJSON *params = cJSON_CreateObject();
    void *st = NULL;
    ck_assert_msg(ops->init(&setup, params, "$.policies.scale.params", &st, &err) == 0, "%s",
                  err.msg);
    scale_pool_view pools[2] = {
        {.name = "busy", .role = POOL_MIXED, .current = 2, .waiting = 10,
         .kv_used_blocks = 90, .kv_total_blocks = 100},
        {.name = "idle", .role = POOL_MIXED, .current = 3, .waiting = 0,
         .kv_used_blocks = 10, .kv_total_blocks = 100}};
    scale_view v = {.now = 10 * SIM_NS_PER_S, .pools = pools, .n_pools = 2};
    int32_t desired[2] = {2, 3};
    ops->decide(st, &v, desired);
    ck_assert_int_eq(desired[0], 3);
    ck_assert_int_eq(desired[1], 2);
    ops->destroy(st);
    cJSON_Delete(params);
}
END_TEST

/* The closed-loop sessions of tests/test_sessions.c, affinity routed. */
#define RETAIN_LOAD "cluster.instances=4", "instance.prefix_caching=true",                 \
    "workload.requests=240",                                                              \
    "workload.arrival={\"process\": \"closed_loop\", \"clients\": 8, \"think_s\": 0.5}",  \
    "workload.input_tokens={\"dist\": \"uniform\", \"min\": 50, \"max\": 300}",           \
    "workload.output_tokens={\"dist\": \"uniform\", \"min\": 10, \"max\": 80}",           \
    "workload.prefix={\"kind\": \"session\", \"turns\": 6, \"turn_dist\": \"fixed\"}",    \
    "policies.routing={\"name\": \"session_affinity\"}"

START_TEST(test_plugin_retention_copy_reproduces_pin_ttl_and_decides_on_a_hand_built_turn)
{
    static const char *const builtin[] = {
        RETAIN_LOAD, "policies.retention={\"name\": \"pin_ttl\", \"params\": {\"ttl_s\": 5}}",
        NULL};
    static const char *const plugin[] = {
        RETAIN_LOAD,
        "policies.retention={\"name\": \"scale_retain:pin_ttl_copy\", \"params\": "
        "{\"ttl_s\": 5}}", NULL};
    tu_run a, b;
    tu_run_sets(builtin, &a);
    tu_run_sets(plugin, &b);
    ck_assert_uint_eq(a.n_records, 240);
    ck_assert_uint_gt(b.summary.sessions.pins, 150);   /* it pinned */
    ck_assert_uint_gt(b.summary.sessions.pin_reuses, 150);
    assert_same_run(&a, &b);
    tu_run_fini(&a);
    tu_run_fini(&b);
    /* A hand-built turn: pinned for the TTL; released once the learned
     * mean gap (10 s) exceeds it; released when the pin would pass the
     * share of the KV allowed. */
    sim_err err = {{0}};
    const retain_policy_ops *ops =
        plugin_retain_find("scale_retain:pin_ttl_copy", "$.policies.retention.name", &err);
    ck_assert_msg(ops, "%s", err.msg);
    cJSON *params = cJSON_Parse("{\"ttl_s\": 5, \"max_pinned_fraction\": 0.5}");
    void *st = NULL;
    ck_assert_msg(ops->init(params, "$.policies.retention.params", &st, &err) == 0, "%s",
                  err.msg);
    retain_view v = {.now = SIM_NS_PER_S, .kv_free_blocks = 60, .kv_total_blocks = 100,
                     .pinned_blocks = 30, .pins = 2};
    serve_req r = {.kv_blocks = 10, .session_id = 7, .turn = 1};
    ck_assert_int_eq(ops->on_turn_end(st, &v, &r), 5 * SIM_NS_PER_S);
    r.kv_blocks = 30;   /* 30 + 30 > 50 */
    ck_assert_int_eq(ops->on_turn_end(st, &v, &r), 0);
    r.kv_blocks = 10;
    r.session_gap_ns = 10 * SIM_NS_PER_S;
    ops->on_turn_arrival(st, &v, &r);
    ck_assert_int_eq(ops->on_turn_end(st, &v, &r), 0);
    ops->destroy(st);
    cJSON_Delete(params);
}
END_TEST

START_TEST(test_plugin_new_families_errors_name_the_json_path)
{
    static const struct {
        const char *set;
        const char *want[3];
    } cases[] = {
        /* A policy the library does not have: the list of what it has. */
        {"policies.eviction.name=evict_example:nope",
         {"$.policies.eviction.name: ", "no eviction policy \"nope\"",
          "eviction lru_list, deepest_first"}},
        /* A family the library does not provide. */
        {"policies.scale={\"name\": \"evict_example:queue_copy\"}",
         {"$.policies.scale.name: ", "no autoscaler policy \"queue_copy\"",
          "it provides no policy of this family"}},
        {"policies.retention.name=example:pin", {"$.policies.retention.name: ",
          "no retention policy \"pin\"", "ordering sjf_copy"}},
        {"instance.kv_tiers=[{\"name\": \"dram\", \"capacity_gib\": 1, \"eviction\": "
         "\"scale_retain:lru_list\"}]",
         {"$.instance.kv_tiers[0].eviction: ", "no eviction policy \"lru_list\"",
          "autoscaler queue_copy; retention pin_ttl_copy"}},
        /* A built-in's name. */
        {"policies.eviction.name=evict_example:lfu",
         {"$.policies.eviction.name: ", "built-in eviction policy's name \"lfu\"", "rename"}},
        /* A library that is not there. */
        {"policies.retention.name=no_such_lib:x",
         {"$.policies.retention.name: ", "libno_such_lib.so", "searched"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char msg[1024];
        const char *sets[] = {"instance.prefix_caching=true", cases[i].set, NULL};
        parse_error(sets, msg, sizeof msg);
        for (int k = 0; k < 3; k++)
            ck_assert_msg(strstr(msg, cases[i].want[k]), "%s: expected \"%s\" in: %s",
                          cases[i].set, cases[i].want[k], msg);
    }
}
END_TEST

START_TEST(test_plugin_minor_0_descriptor_loads_without_the_new_families)
{
    /* Its descriptor is version 1's size: what lies past it (an eviction
     * array, here) is never read; the new families read as NULL. */
    const plugin_lib *l;
    sim_err err = {{0}};
    ck_assert_msg(plugin_load(TEST_PLUGINS "libv1_desc.so", &l, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(l->desc.abi_minor, 0);
    ck_assert_uint_eq(l->desc.size, offsetof(servesim_plugin, control) + sizeof(void *));
    ck_assert_int_eq(l->n_order, 1);
    ck_assert_int_eq(l->n_evict + l->n_scale + l->n_retain, 0);
    ck_assert_ptr_null(l->desc.evict);
    ck_assert_ptr_null(l->evict);
    ck_assert_ptr_null(plugin_evict_find(TEST_PLUGINS "libv1_desc.so:ev",
                                         "$.policies.eviction.name", &err));
    ck_assert_msg(strstr(err.msg, "$.policies.eviction.name") &&
                  strstr(err.msg, "no eviction policy \"ev\"") &&
                  strstr(err.msg, "built for ABI 1.0, before this family") &&
                  strstr(err.msg, "ordering fifo"), "%s", err.msg);
    /* Its ordering policy runs: arrival order, as fcfs. */
    static const char *const fcfs[] = {"workload.arrival.rate_per_s=40", NULL};
    static const char *const fifo[] = {"policies.order.name=" TEST_PLUGINS "libv1_desc.so:fifo",
                                       "workload.arrival.rate_per_s=40", NULL};
    tu_run a, b;
    tu_run_sets(fcfs, &a);
    tu_run_sets(fifo, &b);
    assert_same_run(&a, &b);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

START_TEST(test_plugin_check_command_runs_the_new_families)
{
    char out[8192];
    tu_cli_call ev = {{"servesim", "plugin", "check", "evict_example", NULL}};
    ck_assert_int_eq(tu_capture(STDOUT_FILENO, tu_call_cli, &ev, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "ABI 1.1") && strstr(out, "ok   eviction   lru_list") &&
                  strstr(out, "ok   eviction   deepest_first") &&
                  strstr(out, "2 of 2 policies passed"), "%s", out);
    tu_cli_call sr = {{"servesim", "plugin", "check", "scale_retain", "--family", "retention",
                       NULL}};
    ck_assert_int_eq(tu_capture(STDOUT_FILENO, tu_call_cli, &sr, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "autoscaler queue_copy") &&
                  strstr(out, "ok   retention  pin_ttl_copy") &&
                  strstr(out, "1 of 1 policies passed"), "%s", out);
}
END_TEST

/* ---- the frozen version-1 layouts -------------------------------------------- */

/* Every mismatch is listed at once, with the value found, so that a change
 * is seen whole: move the new field to the end of its struct, or, before
 * the ABI is released (or with a new major), update the numbers here. */
static char abi_bad[4096];
static size_t abi_bad_len;
static void abi_mismatch(const char *what, size_t want, size_t got)
{
    if (abi_bad_len < sizeof abi_bad)
        abi_bad_len += (size_t)snprintf(abi_bad + abi_bad_len, sizeof abi_bad - abi_bad_len,
                                        "\n  %s: frozen %zu, now %zu", what, want, got);
}
#define AT(type, field, off) (offsetof(type, field) == (size_t)(off) ? (void)0 : \
    abi_mismatch("offsetof(" #type ", " #field ")", (off), offsetof(type, field)))
#define MIN_SIZE(type, size) (sizeof(type) >= (size_t)(size) ? (void)0 : \
    abi_mismatch("sizeof(" #type ") (may only grow)", (size), sizeof(type)))
#define SIZE(type, size) (sizeof(type) == (size_t)(size) ? (void)0 : \
    abi_mismatch("sizeof(" #type ") (passed as an array)", (size), sizeof(type)))

START_TEST(test_plugin_abi_v1_layouts_are_frozen)
{
    ck_assert_int_eq(SERVESIM_ABI_MAJOR, 1);   /* a new major: freeze its layouts here */
    /* The plugin's side. */
    AT(servesim_plugin, abi_major, 0);
    AT(servesim_plugin, size, 8);
    AT(servesim_plugin, control_ops_size, 24);
    AT(servesim_plugin, name, 32);
    AT(servesim_plugin, version, 40);
    AT(servesim_plugin, batch, 48);
    AT(servesim_plugin, control, 72);
    MIN_SIZE(servesim_plugin, 80);
    AT(servesim_host_api, size, 8);
    AT(servesim_host_api, host_version, 16);
    AT(servesim_host_api, errf, 24);
    AT(servesim_host_api, check_keys, 32);
    AT(servesim_host_api, obj, 72);
    AT(servesim_host_api, json_text, 80);
    AT(servesim_host_api, stream_seed, 96);
    AT(servesim_host_api, log, 112);
    MIN_SIZE(servesim_host_api, 120);
    /* Ops structs: name, init, hook(s), destroy. */
    AT(order_policy_ops, key, 16);
    AT(order_policy_ops, destroy, 24);
    AT(route_policy_ops, route, 16);
    AT(route_policy_ops, destroy, 24);
    AT(batch_policy_ops, form, 16);
    AT(batch_policy_ops, destroy, 24);
    AT(control_policy_ops, tick, 16);
    AT(control_policy_ops, destroy, 24);
    /* The request (grows only after wait_node). */
    AT(serve_req, state, 0);
    AT(serve_req, computed_tokens, 4);
    AT(serve_req, generated_tokens, 8);
    AT(serve_req, input_tokens, 12);
    AT(serve_req, output_tokens, 16);
    AT(serve_req, kv_blocks, 20);
    AT(serve_req, kv_cap_tokens, 24);
    AT(serve_req, instance, 32);
    AT(serve_req, last_token_ns, 40);
    AT(serve_req, energy_j, 56);
    AT(serve_req, id, 64);
    AT(serve_req, arrival_ns, 72);
    AT(serve_req, priority, 80);
    AT(serve_req, slo_class, 84);
    AT(serve_req, tenant, 88);
    AT(serve_req, pool, 96);
    AT(serve_req, ttft_deadline_ns, 104);
    AT(serve_req, order_key, 112);
    AT(serve_req, admit_seq, 120);
    AT(serve_req, first_scheduled_ns, 128);
    AT(serve_req, first_token_ns, 136);
    AT(serve_req, cached_tokens, 144);
    AT(serve_req, prefix_group, 152);
    AT(serve_req, wait_node, 176);
    /* The views. */
    AT(inst_view, pool, 0);
    AT(inst_view, n_waiting, 8);
    AT(inst_view, outstanding_tokens, 16);
    AT(inst_view, kv_free_blocks, 24);
    AT(inst_view, kv_cached_blocks, 40);
    SIZE(inst_view, 48);   /* an array: its stride is frozen */
    AT(pool_view, name, 0);
    AT(pool_view, n_instances, 12);
    AT(pool_view, instances, 16);
    AT(pool_view, n_active, 24);
    SIZE(pool_view, 40);   /* control_view.pools is an array */
    AT(route_setup, block_size_tokens, 4);
    AT(route_view, now, 0);
    AT(route_view, inst, 8);
    AT(route_view, candidates, 24);
    AT(route_view, n_candidates, 32);
    AT(route_view, cached_tokens, 40);
    AT(route_view, core, 56);
    AT(control_setup, period_ns, 8);
    AT(control_view, inst, 8);
    AT(control_view, pools, 24);
    AT(control_view, waiting_first, 40);
    AT(control_view, running, 48);
    AT(control_view, core, 56);
    AT(control_action, req, 8);
    AT(control_action, to, 16);
    AT(control_action, delta, 28);
    SIZE(control_action, 48);   /* control_plan.actions is an array */
    AT(control_plan, n, 8);
    AT(batch_setup, max_batched_tokens, 0);
    AT(batch_setup, kv_total_blocks, 16);
    AT(batch_setup, model_layers, 28);
    AT(batch_setup, rules, 32);
    AT(batch_rules, output_reserve_fraction, 8);
    AT(batch_rules, token_budget, 32);
    AT(batch_view, now, 0);
    AT(batch_view, setup, 8);
    AT(batch_view, waiting, 16);
    AT(batch_view, running, 32);
    AT(batch_view, kv, 48);
    AT(batch_item, req, 0);
    AT(batch_item, tokens, 8);
    AT(batch_item, reserve, 16);
    SIZE(batch_item, 24);
    AT(batch_plan, n_items, 8);
    AT(batch_plan, preempt, 16);
    AT(batch_kv, free_blocks, 8);
    AT(batch_kv_ops, room, 32);
    SIZE(sim_err, 1024);
    ck_assert_msg(abi_bad_len == 0, "ABI %d layouts changed:%s", SERVESIM_ABI_MAJOR, abi_bad);
}
END_TEST

/* What ABI 1.1 appended (the eviction, autoscaling and retention families)
 * and the structs it exposed, frozen as of 1.1. */
START_TEST(test_plugin_abi_v1_1_layouts_are_frozen)
{
    ck_assert_int_ge(SERVESIM_ABI_MINOR, 1);
    AT(servesim_plugin, evict_ops_size, 80);
    AT(servesim_plugin, scale_ops_size, 84);
    AT(servesim_plugin, retain_ops_size, 88);
    AT(servesim_plugin, evict, 96);
    AT(servesim_plugin, scale, 104);
    AT(servesim_plugin, retain, 112);
    MIN_SIZE(servesim_plugin, 120);
    /* Eviction. */
    AT(evict_policy_ops, name, 0);
    AT(evict_policy_ops, builtin, 8);
    AT(evict_policy_ops, init, 16);
    AT(evict_policy_ops, insert, 24);
    AT(evict_policy_ops, remove, 32);
    AT(evict_policy_ops, update, 40);
    AT(evict_policy_ops, victim, 48);
    AT(evict_policy_ops, destroy, 56);
    MIN_SIZE(evict_policy_ops, 64);
    AT(evict_block, hash, 0);
    AT(evict_block, last_access_ns, 8);
    AT(evict_block, ref, 16);
    AT(evict_block, depth, 20);
    AT(evict_block, n_children, 24);
    AT(evict_block, parent, 28);
    AT(evict_block, hits, 32);
    AT(evict_block, queue_stamp, 36);
    SIZE(evict_block, 40);   /* evict_view.blocks is an array */
    AT(evict_view, now, 0);
    AT(evict_view, blocks, 8);
    AT(evict_view, n_blocks, 16);
    AT(evict_view, block_size_tokens, 20);
    AT(evict_view, recompute_ns, 24);
    AT(evict_view, core, 32);
    AT(evict_setup, n_blocks, 0);
    AT(evict_setup, block_size_tokens, 4);
    AT(evict_setup, seed, 8);
    /* Autoscaling. */
    AT(scale_policy_ops, init, 8);
    AT(scale_policy_ops, decide, 16);
    AT(scale_policy_ops, destroy, 24);
    MIN_SIZE(scale_policy_ops, 32);
    AT(scale_setup, n_pools, 0);
    AT(scale_setup, period_ns, 8);
    AT(scale_pool_view, name, 0);
    AT(scale_pool_view, role, 8);
    AT(scale_pool_view, min_instances, 12);
    AT(scale_pool_view, max_instances, 16);
    AT(scale_pool_view, gpus_per_instance, 20);
    AT(scale_pool_view, block_size_tokens, 24);
    AT(scale_pool_view, current, 28);
    AT(scale_pool_view, n_state, 32);
    AT(scale_pool_view, waiting, 56);   /* n_state[INST_STATE_COUNT]: 6 states */
    AT(scale_pool_view, running, 64);
    AT(scale_pool_view, outstanding_tokens, 72);
    AT(scale_pool_view, kv_used_blocks, 80);
    AT(scale_pool_view, kv_total_blocks, 88);
    AT(scale_pool_view, arrivals, 96);
    AT(scale_pool_view, completed, 104);
    AT(scale_pool_view, busy_ns, 112);
    SIZE(scale_pool_view, 120);   /* scale_view.pools is an array */
    AT(scale_view, now, 0);
    AT(scale_view, window_ns, 8);
    AT(scale_view, pools, 16);
    AT(scale_view, n_pools, 24);
    AT(scale_view, inst, 32);
    AT(scale_view, n_instances, 40);
    AT(scale_view, parked, 44);
    AT(scale_view, arrivals, 48);
    AT(scale_view, arrival_input_tokens, 56);
    AT(scale_view, arrival_output_tokens, 64);
    AT(scale_view, arrival_rate_per_s, 72);
    AT(scale_view, completed, 80);
    AT(scale_view, met_ttft, 88);
    AT(scale_view, met_slo, 96);
    AT(scale_view, slo_ttft_ns, 104);
    AT(scale_view, slo_tpot_ns, 112);
    /* KV retention, and the session fields of the request it reads. */
    AT(retain_policy_ops, init, 8);
    AT(retain_policy_ops, on_turn_end, 16);
    AT(retain_policy_ops, on_turn_arrival, 24);
    AT(retain_policy_ops, destroy, 32);
    AT(retain_policy_ops, needs_tier, 40);
    MIN_SIZE(retain_policy_ops, 48);
    AT(retain_view, now, 0);
    AT(retain_view, instance, 8);
    AT(retain_view, kv_free_blocks, 16);
    AT(retain_view, kv_total_blocks, 24);
    AT(retain_view, pinned_blocks, 32);
    AT(retain_view, pins, 40);
    AT(serve_req, session_id, 208);
    AT(serve_req, turn, 216);
    AT(serve_req, session_gap_ns, 232);
    ck_assert_msg(abi_bad_len == 0, "ABI 1.1 layouts changed:%s", abi_bad);
}
END_TEST

Suite *plugin_suite(void)
{
    Suite *s = suite_create("plugin");
    TCase *tc = tcase_create("plugin");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_plugin_copy_of_sjf_reproduces_builtin_bit_for_bit);
    tcase_add_test(tc, test_plugin_copy_of_lot_routing_reproduces_builtin_bit_for_bit);
    tcase_add_test(tc, test_plugin_longest_first_takes_effect_the_expected_way);
    tcase_add_test(tc, test_plugin_batch_copy_reproduces_prefill_first_under_every_engine);
    tcase_add_test(tc, test_plugin_controller_copy_reproduces_balance_queues);
    tcase_add_test(tc, test_plugin_random_route_is_deterministic_and_seeded);
    tcase_add_test(tc, test_plugin_params_are_read_strictly_through_the_host);
    tcase_add_test(tc, test_plugin_found_by_path_and_by_search_path);
    tcase_add_test(tc, test_plugin_wrong_family_or_name_lists_what_it_has);
    tcase_add_test(tc, test_plugin_may_not_take_a_builtin_name);
    tcase_add_loop_test(tc, test_plugin_broken_plugins_are_refused_with_a_message, 0,
                        (int)(sizeof refusals / sizeof refusals[0]));
    tcase_add_test(tc, test_plugin_built_for_an_older_layout_loads_and_runs);
    tcase_add_test(tc, test_plugin_loaded_once_and_recorded_with_checksum);
    tcase_add_test(tc, test_plugin_results_file_records_the_plugins_it_used);
    tcase_add_test(tc, test_plugin_sweep_in_forked_workers_equals_builtin);
    tcase_add_test(tc, test_plugin_abi_v1_layouts_are_frozen);
    tcase_add_test(tc, test_plugin_abi_v1_1_layouts_are_frozen);
    tcase_add_test(tc, test_plugin_evict_deepest_first_picks_its_victims_on_a_hand_built_case);
    tcase_add_test(tc, test_plugin_eviction_runs_through_the_core_by_lib_name);
    tcase_add_test(tc, test_plugin_autoscaler_copy_reproduces_queue_and_decides_on_a_hand_built_view);
    tcase_add_test(tc, test_plugin_retention_copy_reproduces_pin_ttl_and_decides_on_a_hand_built_turn);
    tcase_add_test(tc, test_plugin_new_families_errors_name_the_json_path);
    tcase_add_test(tc, test_plugin_minor_0_descriptor_loads_without_the_new_families);
    tcase_add_test(tc, test_plugin_check_command_runs_the_new_families);
    tcase_add_test(tc, test_plugin_check_command_runs_the_invariants);
    tcase_add_test(tc, test_plugin_build_command_builds_the_readme_walkthrough);
    tcase_add_test(tc, test_python_sjf_reproduces_builtin_bit_for_bit);
    tcase_add_test(tc, test_python_lot_routing_reproduces_builtin_bit_for_bit);
    tcase_add_test(tc, test_python_numpy_reads_the_views_in_place);
    tcase_add_test(tc, test_python_batch_copy_reproduces_prefill_first);
    tcase_add_test(tc, test_python_random_policy_is_deterministic);
    tcase_add_test(tc, test_python_views_cannot_be_used_after_their_call);
    tcase_add_test(tc, test_python_init_errors_name_the_params_and_the_exception);
    tcase_add_test(tc, test_python_exception_in_a_decision_aborts_with_the_traceback);
    tcase_add_test(tc, test_python_sweep_in_forked_workers);
    tcase_add_test(tc, test_pipe_copies_reproduce_builtins_bit_for_bit);
    tcase_add_test(tc, test_pipe_errors_are_reported);
    suite_add_tcase(s, tc);
    return s;
}
