/* Engine profiles (models/engine.c) and their wiring (tool/config.c,
 * serve/): the bundled files load and say what their sources say; bad files
 * and bad overrides are errors naming the file or the config path;
 * overrides apply key by key and the effective profile reproduces itself;
 * the CPU model blocks or overlaps; the request path delays what the client
 * sees; an overlapping engine plans one iteration ahead; the legacy profile
 * reproduces the fixed-overhead engine; and under KV pressure chunked
 * prefill preempts no more than prefill-first under the same engine. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/engine.h"
#include "sim/jsoncfg.h"
#include "tests/suites.h"
#include "tests/testutil.h"

static void resolve_ok(const char *name, const char *over_json, engine_profile *e)
{
    sim_err err = {{0}};
    cJSON *over = over_json ? cJSON_Parse(over_json) : NULL;
    ck_assert_msg(!over_json || over, "bad test JSON");
    ck_assert_msg(engine_profile_resolve(models_dir(), name, over, "$.engine", e, NULL,
                                         &err) == 0, "%s", err.msg);
    cJSON_Delete(over);
}

/* The message of resolving name with overrides, which must fail. */
static void resolve_fails(const char *name, const char *over_json, char *msg, size_t n)
{
    sim_err err = {{0}};
    engine_profile e;
    cJSON *over = over_json ? cJSON_Parse(over_json) : NULL;
    ck_assert_int_eq(engine_profile_resolve(models_dir(), name, over, "$.engine", &e, NULL,
                                            &err), -1);
    snprintf(msg, n, "%s", err.msg);
    cJSON_Delete(over);
}

/* A profile file written from vllm-v1.json with `from` replaced by `to`. */
static char *profile_variant(const char *dir, const char *stem, const char *from,
                             const char *to)
{
    char src[512], *path = malloc(600);
    snprintf(src, sizeof src, "%s/engines/vllm-v1.json", models_dir());
    FILE *f = fopen(src, "rb");
    ck_assert_ptr_nonnull(f);
    static char text[1 << 16];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = 0;
    char *at = strstr(text, from);
    ck_assert_msg(at, "'%s' not in vllm-v1.json", from);
    snprintf(path, 600, "%s/%s.json", dir, stem);
    f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(text, 1, (size_t)(at - text), f);
    fputs(to, f);
    fputs(at + strlen(from), f);
    fclose(f);
    return path;
}

START_TEST(test_engine_bundled_profiles_load_with_their_rules)
{
    const char *names[] = {"vllm-v1", "vllm-v0", "sglang", "trtllm", "legacy"};
    engine_profile e;
    for (int i = 0; i < 5; i++) {
        resolve_ok(names[i], NULL, &e);
        ck_assert_str_eq(e.name, names[i]);
    }
    resolve_ok("vllm-v1", NULL, &e);
    ck_assert_int_eq(e.reserve, ENGINE_RESERVE_PROMPT);
    ck_assert(e.reserve_check_only);
    ck_assert_int_eq(e.victim, ENGINE_VICTIM_NEWEST);
    ck_assert(!e.admit_after_preempt && e.prefix_caching && e.cpu_overlap);
    ck_assert_str_eq(e.batch_policy, "chunked_prefill");
    resolve_ok("vllm-v0", NULL, &e);
    ck_assert(e.reserve == ENGINE_RESERVE_PROMPT && !e.reserve_check_only);
    ck_assert(e.admit_after_preempt && !e.prefix_caching && !e.cpu_overlap);
    ck_assert_double_eq(e.watermark_fraction, 0.01);
    ck_assert_str_eq(e.batch_policy, "vllm_prefill_first");
    resolve_ok("sglang", NULL, &e);
    ck_assert_int_eq(e.victim, ENGINE_VICTIM_FEWEST_OUTPUTS);
    ck_assert(e.reserve == ENGINE_RESERVE_REQUEST && e.reserve_check_only);
    resolve_ok("trtllm", NULL, &e);
    ck_assert(e.reserve == ENGINE_RESERVE_REQUEST && !e.reserve_check_only);
    ck_assert_double_eq(e.output_reserve_fraction, 1);
}
END_TEST

START_TEST(test_engine_limits_follow_the_gpu)
{
    engine_profile e;
    resolve_ok("vllm-v1", NULL, &e);
    int32_t budget, seqs;
    /* vLLM's get_batch_defaults: >= 70 GiB and not an A100. */
    engine_limits(&e, "H100-SXM-80GB", 81559.0 * 1024 * 1024, &budget, &seqs);
    ck_assert_int_eq(budget, 8192);
    ck_assert_int_eq(seqs, 1024);
    engine_limits(&e, "A100-SXM-80GB", 81920.0 * 1024 * 1024, &budget, &seqs);
    ck_assert_int_eq(budget, 2048);
    ck_assert_int_eq(seqs, 256);
    engine_limits(&e, "A40-48GB", 48.0 * 1024 * 1024 * 1024, &budget, &seqs);
    ck_assert_int_eq(budget, 2048);
}
END_TEST

START_TEST(test_engine_file_errors_name_the_file_and_path)
{
    char *dir = tu_tempdir(), msg[1024];
    char *p = profile_variant(dir, "unknown", "\"batch_policy\"", "\"bogus\": 1, \"batch_policy\"");
    resolve_fails(p, NULL, msg, sizeof msg);
    ck_assert_msg(strstr(msg, p) && strstr(msg, "$.scheduler.bogus: unknown key"), "%s", msg);
    free(p);
    p = profile_variant(dir, "badenum", "\"reserve\": \"prompt\"", "\"reserve\": \"all\"");
    resolve_fails(p, NULL, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "$.scheduler.reserve: expected one of: chunk, prompt, request"),
                  "%s", msg);
    free(p);
    p = profile_variant(dir, "range", "\"watermark_fraction\": 0", "\"watermark_fraction\": 0.9");
    resolve_fails(p, NULL, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "$.scheduler.watermark_fraction"), "%s", msg);
    free(p);
    p = profile_variant(dir, "nosource", "{\n  \"source\"", "{\n  \"about\"");
    resolve_fails(p, NULL, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "$.source"), "%s", msg);
    free(p);
    p = profile_variant(dir, "missing", "\"per_prefill_us\": 0,", "");
    resolve_fails(p, NULL, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "$.cpu_overhead.per_prefill_us"), "%s", msg);
    free(p);
    p = profile_variant(dir, "misnamed", "{\n", "{\"name\": \"other\",\n");
    resolve_fails(p, NULL, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "$.name: expected \"misnamed\""), "%s", msg);
    free(p);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
    resolve_fails("vllm-v9", NULL, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "unknown engine 'vllm-v9'") &&
                  strstr(msg, "vllm-v0, vllm-v0.5, vllm-v0.6, vllm-v1"),
                  "%s", msg);
}
END_TEST

START_TEST(test_engine_overrides_apply_key_by_key_and_errors_name_their_path)
{
    engine_profile base, e;
    resolve_ok("vllm-v0", NULL, &base);
    resolve_ok("vllm-v0", "{\"name\": \"vllm-v0\", \"cpu_overhead\": {\"per_seq_us\": 5}}", &e);
    ck_assert_double_eq(e.cpu_per_seq_us, 5);
    ck_assert_double_eq(e.cpu_base_us, base.cpu_base_us);
    ck_assert_int_eq(e.max_seqs, base.max_seqs);
    ck_assert_str_eq(e.name, "vllm-v0");
    char msg[1024];
    resolve_fails("vllm-v0", "{\"cpu_overhead\": {\"per_sequence_us\": 5}}", msg, sizeof msg);
    ck_assert_msg(strstr(msg, "$.engine.cpu_overhead.per_sequence_us: unknown key"), "%s", msg);
    resolve_fails("vllm-v0", "{\"scheduler\": {\"victim\": \"oldest\"}}", msg, sizeof msg);
    ck_assert_msg(strstr(msg, "$.engine.scheduler.victim: expected one of: newest, "
                             "fewest_outputs"), "%s", msg);
    resolve_fails("vllm-v0", "{\"graphs\": {}}", msg, sizeof msg);
    ck_assert_msg(strstr(msg, "$.engine.graphs: unknown key"), "%s", msg);
}
END_TEST

START_TEST(test_engine_effective_profile_reproduces_itself)
{
    const char *names[] = {"vllm-v1", "vllm-v0", "sglang", "trtllm", "legacy"};
    for (int i = 0; i < 5; i++) {
        engine_profile a, b;
        cJSON *eff;
        sim_err err = {{0}};
        cJSON *over = cJSON_Parse("{\"request_path\": {\"stream_us\": 7}}");
        ck_assert_int_eq(engine_profile_resolve(models_dir(), names[i], over, "$.engine", &a,
                                                &eff, &err), 0);
        char *text = cJSON_PrintUnformatted(eff);
        ck_assert_ptr_null(strstr(text, "source"));
        free(text);
        ck_assert_int_eq(engine_profile_resolve(models_dir(), names[i], eff, "$.engine", &b,
                                                NULL, &err), 0);
        ck_assert(memcmp(&a, &b, sizeof a) == 0);
        ck_assert_double_eq(b.stream_us, 7);
        cJSON_Delete(over);
        cJSON_Delete(eff);
    }
}
END_TEST

START_TEST(test_engine_cpu_blocks_or_overlaps_the_gpu)
{
    engine_profile e = {.cpu_base_us = 1000, .cpu_per_seq_us = 100, .cpu_per_prefill_us = 10,
                        .cpu_per_token_us = 1, .graph_decode_max_batch = 8,
                        .graph_mixed_max_tokens = 0, .eager_us_per_layer = 50};
    batch_seq chunk = {200, 0};
    batch_shape decodes = {.n_decode = 4};
    batch_shape mixed = {.prefill = &chunk, .n_prefill = 1, .n_decode = 4};
    /* 1000 + 4 * 100 + 4 * 1 us */
    ck_assert_double_eq_tol(engine_cpu_ns(&e, &decodes), 1404e3, 1e-6);
    /* 1000 + 5 * 100 + 10 + 204 * 1 us */
    ck_assert_double_eq_tol(engine_cpu_ns(&e, &mixed), 1714e3, 1e-6);
    /* Blocking: added to the GPU time; a decode batch in graphs pays no launches. */
    ck_assert_double_eq_tol(engine_iteration_ns(&e, &decodes, 32, 5e6), 5e6 + 1404e3, 1e-3);
    /* Outside graphs (a prefill, or more decodes than captured): 32 layers x 50 us. */
    ck_assert_double_eq_tol(engine_iteration_ns(&e, &mixed, 32, 5e6), 5e6 + 1714e3 + 1600e3,
                            1e-3);
    batch_shape big = {.n_decode = 9};
    ck_assert(!engine_batch_in_graph(&e, &big));
    /* Overlapping: the longer of the two, plus the exposed part. */
    e.cpu_overlap = true;
    e.cpu_exposed_us = 160;
    ck_assert_double_eq_tol(engine_iteration_ns(&e, &decodes, 32, 5e6), 5e6 + 160e3, 1e-3);
    ck_assert_double_eq_tol(engine_iteration_ns(&e, &decodes, 32, 1e6), 1404e3 + 160e3, 1e-3);
    /* The request path. */
    e.frontend_us = 500;
    e.tokenize_us_per_token = 2;
    e.stream_us = 650;
    ck_assert_double_eq_tol(engine_frontend_ns(&e, 1000), 2500e3, 1e-6);
    ck_assert_double_eq_tol(engine_stream_ns(&e), 650e3, 1e-6);
}
END_TEST

/* ---- wiring ------------------------------------------------------------------ */

START_TEST(test_config_defaults_come_from_the_engine)
{
    run_config cfg;
    tu_parse(tu_base_config(), &cfg);   /* no engine: vllm-v1 */
    const pool_setup *p = &cfg.sys.pools[0];
    ck_assert_str_eq(p->engine.name, "vllm-v1");
    ck_assert_str_eq(p->batch_policy.ops->name, "chunked_prefill");
    ck_assert(p->prefix_caching);
    ck_assert_int_eq(p->batch.max_seqs, 1024);   /* an H100 */
    ck_assert_int_eq(p->batch.rules.token_budget, 8192);
    ck_assert_int_eq(p->batch.rules.reserve, BATCH_RESERVE_PROMPT);
    ck_assert(p->batch.rules.reserve_check_only && !p->batch.rules.admit_after_preempt);
    ck_assert(!p->fixed_overhead);
    /* The effective config holds the profile whole, without sources. */
    cJSON *eng = cJSON_GetObjectItem(cfg.root, "engine");
    ck_assert(cJSON_IsObject(eng));
    ck_assert_str_eq(cJSON_GetObjectItem(eng, "name")->valuestring, "vllm-v1");
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(eng, "cpu_overhead"));
    /* No fixed overhead is written when none was given. */
    ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetObjectItem(cfg.root, "cost"),
                                           "iteration_overhead_us"));
    run_config_fini(&cfg);
    /* Given values win over the engine's defaults; a fixed overhead
     * replaces its CPU model. */
    cJSON *root = tu_base_config();
    const char *const sets[] = {"engine=\"vllm-v0\"", "instance.max_seqs=64",
                                "cost.iteration_overhead_us=300",
                                "policies.batch.name=\"chunked_prefill\"", NULL};
    tu_set(root, sets);
    tu_parse(root, &cfg);
    p = &cfg.sys.pools[0];
    ck_assert_int_eq(p->batch.max_seqs, 64);
    ck_assert(!p->prefix_caching);
    ck_assert(p->fixed_overhead);
    ck_assert_int_eq(p->iteration_overhead_ns, 300000);
    ck_assert_int_eq(p->batch.rules.token_budget, 512);
    ck_assert_double_eq(p->batch.rules.watermark_fraction, 0.01);
    run_config_fini(&cfg);
}
END_TEST

START_TEST(test_config_engine_errors_name_the_config_path)
{
    const char *bad[][2] = {
        {"engine=\"vllm-v9\"", "$.engine: unknown engine 'vllm-v9'"},
        {"engine=3", "$.engine: expected an engine's name"},
        {"engine.scheduler.reserve=\"all\"", "$.engine.scheduler.reserve: expected one of"},
        {"engine.request_path.stream=5", "$.engine.request_path.stream: unknown key"},
    };
    for (int i = 0; i < 4; i++) {
        cJSON *root = tu_base_config();
        const char *const sets[] = {bad[i][0], NULL};
        tu_set(root, sets);
        run_config cfg;
        sim_err err = {{0}};
        ck_assert_int_eq(run_config_parse(root, &cfg, &err), -1);
        ck_assert_msg(strstr(err.msg, bad[i][1]), "%s: %s", bad[i][0], err.msg);
    }
}
END_TEST

START_TEST(test_pools_override_the_engine_key_by_key)
{
    cJSON *root = tu_base_config();
    const char *const sets[] = {
        "engine={\"name\": \"vllm-v0\", \"request_path\": {\"stream_us\": 5}}",
        "cluster.pools=[{\"name\": \"a\"}, {\"name\": \"b\", \"engine\": \"sglang\"}, "
        "{\"name\": \"c\", \"engine\": {\"cpu_overhead\": {\"per_seq_us\": 1}}}]", NULL};
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    const pool_setup *p = cfg.sys.pools;
    ck_assert_str_eq(p[0].engine.name, "vllm-v0");
    ck_assert_str_eq(p[1].engine.name, "sglang");
    ck_assert_str_eq(p[2].engine.name, "vllm-v0");
    /* The top-level overrides reach every pool; a pool's own win. */
    for (int k = 0; k < 3; k++)
        ck_assert_double_eq(p[k].engine.stream_us, 5);
    ck_assert_double_eq(p[2].engine.cpu_per_seq_us, 1);
    ck_assert_double_eq(p[0].engine.cpu_per_seq_us, 213.8);
    ck_assert_str_eq(p[1].batch_policy.ops->name, "chunked_prefill");
    ck_assert_str_eq(p[2].batch_policy.ops->name, "vllm_prefill_first");
    /* The front end is the top-level engine's. */
    ck_assert_double_eq(cfg.sys.frontend.stream_us, 5);
    ck_assert_str_eq(cfg.sys.frontend.name, "vllm-v0");
    run_config_fini(&cfg);
}
END_TEST

/* One request alone: the client sees it front_end + tokenize later at the
 * engine and every token stream_us later. */
START_TEST(test_request_path_delays_what_the_client_sees)
{
    const char *const base[] = {"engine=legacy", "workload.requests=1",
                                "workload.input_tokens={\"dist\": \"fixed\", \"value\": 1000}",
                                "workload.output_tokens={\"dist\": \"fixed\", \"value\": 20}",
                                NULL};
    const char *const delayed[] = {
        "engine={\"name\": \"legacy\", \"request_path\": {\"frontend_us\": 500, "
        "\"tokenize_us_per_token\": 2, \"stream_us\": 650}}", NULL};
    tu_run a, b;
    tu_run_sets(base, &a);
    cJSON *root = tu_base_config();
    tu_set(root, base);
    tu_set(root, delayed);
    run_config cfg;
    tu_parse(root, &cfg);
    tu_run_config(&cfg, &b);
    /* 500 + 2 x 1000 us in front, 650 us behind. */
    ck_assert_double_eq_tol(b.summary.ttft_s.mean - a.summary.ttft_s.mean, 3.15e-3, 1e-9);
    ck_assert_double_eq_tol(b.summary.e2e_s.mean - a.summary.e2e_s.mean, 3.15e-3, 1e-9);
    ck_assert_double_eq_tol(b.summary.tpot_s.mean, a.summary.tpot_s.mean, 1e-12);
    ck_assert_uint_eq(b.summary.iterations, a.summary.iterations);
    run_config_fini(&cfg);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

/* Iterations of the one instance: when each ran, and in which one each
 * request was first scheduled. */
typedef struct lookahead_log {
    sim_time_ns start[20000], end[20000];
    int32_t items[20000], fresh[20000];   /* items, and first-scheduled ones */
    int n;
    int first_iter[400];
    sim_time_ns arrival[400];
} lookahead_log;
static lookahead_log la;

static void log_iteration(void *ctx, const iter_info *it)
{
    (void)ctx;
    ck_assert_int_lt(la.n, 20000);
    la.start[la.n] = it->start_ns;
    la.end[la.n] = it->start_ns + it->cost->latency_ns;
    la.items[la.n] = it->n_items;
    for (int32_t i = 0; i < it->n_items; i++) {
        const serve_req *r = it->items[i].req;
        if (r->first_scheduled_ns == it->start_ns && r->id < 400) {
            la.first_iter[r->id] = la.n;
            la.fresh[la.n]++;
        }
    }
    la.n++;
}

static int log_record(void *ctx, const req_record *rec)
{
    (void)ctx;
    ck_assert_uint_lt(rec->id, 400);
    la.arrival[rec->id] = rec->arrival_ns;
    return 0;
}

/* Requests first scheduled in the iteration right after the one during
 * which they reached the instance, where that next iteration also ran
 * requests that were there before (its plan was not made from nothing). */
static int scheduled_right_after_arrival(bool overlap)
{
    char set[160];
    snprintf(set, sizeof set, "engine={\"name\": \"legacy\", \"cpu_overhead\": "
             "{\"overlap\": %s}}", overlap ? "true" : "false");
    const char *const sets[] = {set, "policies.batch.name=\"chunked_prefill\"",
                                "workload.requests=300", "workload.arrival.rate_per_s=30", NULL};
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    memset(&la, 0, sizeof la);
    sim_err err = {{0}};
    cluster_hooks hooks = {.on_iteration = log_iteration, .on_record = log_record};
    cluster *c = cluster_create(&cfg.sys, &hooks, &err);
    ck_assert_msg(c, "%s", err.msg);
    ck_assert_int_eq(cluster_run(c, &err), 0);
    int right_after = 0, k = 0;
    for (int id = 0; id < 300; id++) {
        /* The iteration in flight when it arrived (no front end here). */
        while (k + 1 < la.n && la.start[k + 1] <= la.arrival[id])
            k++;
        if (!(la.start[k] < la.arrival[id] && la.arrival[id] < la.end[k]))
            continue;
        ck_assert_int_gt(la.first_iter[id], k);
        int next = k + 1;
        right_after += la.first_iter[id] == next && la.start[next] == la.end[k] &&
                       la.fresh[next] < la.items[next];
    }
    cluster_destroy(c);
    run_config_fini(&cfg);
    return right_after;
}

START_TEST(test_overlapping_engine_plans_one_iteration_ahead)
{
    /* A blocking engine plans at each iteration's end: an arrival during
     * it can be in the next one. An overlapping engine made that plan when
     * the iteration started: the arrival waits one more. */
    ck_assert_int_gt(scheduled_right_after_arrival(false), 0);
    ck_assert_int_eq(scheduled_right_after_arrival(true), 0);
}
END_TEST

START_TEST(test_legacy_engine_equals_the_fixed_overhead)
{
    /* The legacy profile's CPU model (200 us, blocking) through the engine
     * path gives exactly what the fixed overhead gives, under every batch
     * policy: the engine's blocking time goes where the fixed one went. */
    const char *policies[] = {"vllm_prefill_first", "chunked_prefill", "layered_prefill"};
    for (int i = 0; i < 3; i++) {
        char set[96];
        snprintf(set, sizeof set, "policies.batch.name=\"%s\"", policies[i]);
        const char *const a_sets[] = {"engine=legacy", set, NULL};
        const char *const b_sets[] = {"engine=legacy", set, "cost.iteration_overhead_us=200",
                                      NULL};
        tu_run a, b;
        tu_run_sets(a_sets, &a);
        tu_run_sets(b_sets, &b);
        ck_assert_uint_eq(a.record_hash, b.record_hash);
        ck_assert(a.summary.energy_j == b.summary.energy_j);
        ck_assert_uint_eq(a.summary.iterations, b.summary.iterations);
        tu_run_fini(&a);
        tu_run_fini(&b);
    }
}
END_TEST

/* The KV-pressure configuration of experiments/kv_pressure.json (the
 * quickstart with a quarter of the GPU's memory and 20 requests/s), fewer
 * requests. */
static uint64_t kv_pressure_preemptions(const char *engine, const char *policy)
{
    run_config cfg;
    char set_engine[64], set_policy[96];
    snprintf(set_engine, sizeof set_engine, "engine=\"%s\"", engine);
    snprintf(set_policy, sizeof set_policy, "policies.batch.name=\"%s\"", policy);
    char *sets[] = {set_engine, set_policy, "workload.requests=800"};
    sim_err err = {{0}};
    if (run_config_load("experiments/kv_pressure.json", sets, 3, &cfg, &err))
        ck_abort_msg("%s", err.msg);
    tu_run r;
    tu_run_config(&cfg, &r);
    uint64_t n = r.summary.preemptions;
    ck_assert_uint_eq(r.summary.completed, 800);
    tu_run_fini(&r);
    run_config_fini(&cfg);
    return n;
}

START_TEST(test_chunked_preempts_no_more_than_prefill_first_under_kv_pressure)
{
    const char *engines[] = {"vllm-v1", "vllm-v0", "sglang", "trtllm"};
    for (int i = 0; i < 4; i++) {
        uint64_t first = kv_pressure_preemptions(engines[i], "vllm_prefill_first");
        uint64_t chunked = kv_pressure_preemptions(engines[i], "chunked_prefill");
        ck_assert_msg(chunked <= first, "%s: chunked %llu, prefill-first %llu", engines[i],
                      (unsigned long long)chunked, (unsigned long long)first);
    }
    /* Reserving only the first chunk (servesim's old rule, the legacy
     * profile) over-admits and preempts far more. */
    uint64_t first = kv_pressure_preemptions("legacy", "vllm_prefill_first");
    uint64_t chunked = kv_pressure_preemptions("legacy", "chunked_prefill");
    ck_assert_uint_gt(chunked, 5 * first);
    /* TensorRT-LLM's guarantee: a started request is never paused. */
    ck_assert_uint_eq(kv_pressure_preemptions("trtllm", "chunked_prefill"), 0);
}
END_TEST

Suite *engine_suite(void)
{
    Suite *s = suite_create("engine");
    TCase *tc = tcase_create("profiles");
    tcase_add_test(tc, test_engine_bundled_profiles_load_with_their_rules);
    tcase_add_test(tc, test_engine_limits_follow_the_gpu);
    tcase_add_test(tc, test_engine_file_errors_name_the_file_and_path);
    tcase_add_test(tc, test_engine_overrides_apply_key_by_key_and_errors_name_their_path);
    tcase_add_test(tc, test_engine_effective_profile_reproduces_itself);
    tcase_add_test(tc, test_engine_cpu_blocks_or_overlaps_the_gpu);
    suite_add_tcase(s, tc);
    TCase *w = tcase_create("wiring");
    tcase_set_timeout(w, 300);
    tcase_add_test(w, test_config_defaults_come_from_the_engine);
    tcase_add_test(w, test_config_engine_errors_name_the_config_path);
    tcase_add_test(w, test_pools_override_the_engine_key_by_key);
    tcase_add_test(w, test_request_path_delays_what_the_client_sees);
    tcase_add_test(w, test_overlapping_engine_plans_one_iteration_ahead);
    tcase_add_test(w, test_legacy_engine_equals_the_fixed_overhead);
    tcase_add_test(w, test_chunked_preempts_no_more_than_prefill_first_under_kv_pressure);
    suite_add_tcase(s, w);
    return s;
}
