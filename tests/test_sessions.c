/* Agentic and multi-turn sessions: the session generator (traces/
 * prefix_gen.h kind "session"), session-affinity routing
 * (policies/route_session_affinity.c) and the session metrics
 * (serve/session_metrics.h). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "policies/registry.h"
#include "serve/cluster.h"
#include "sim/engine.h"
#include "tests/suites.h"
#include "tests/testutil.h"
#include "traces/prefix_gen.h"

/* ---- the generator -------------------------------------------------------------- */

static prefix_gen *gen_make(const char *json, gsl_rng **rng, int32_t lanes, int32_t ctx)
{
    *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(*rng, 5);
    cJSON *o = cJSON_Parse(json);
    ck_assert_ptr_nonnull(o);
    prefix_gen *g;
    sim_err err = {{0}};
    ck_assert_msg(prefix_gen_create(o, "$.workload.prefix", NULL, ctx, *rng, &g, &err) == 0,
                  "%s", err.msg);
    cJSON_Delete(o);
    ck_assert(prefix_gen_sessions(g));
    prefix_gen_set_lanes(g, lanes);
    return g;
}

/* Each turn's prompt is the previous turn's prompt and answer, then its new
 * tokens, with the same ids for the shared whole blocks; a fixed-length
 * session ends after its turns and the lane starts another. */
START_TEST(test_sessions_turn_prompt_contains_previous_context_and_output)
{
    gsl_rng *rng;
    prefix_gen *g = gen_make("{\"kind\": \"session\", \"turns\": 5, \"turn_dist\": \"fixed\"}",
                             &rng, 2, 1 << 20);
    uint64_t prev[2048];
    int32_t prev_ctx = 0;
    uint64_t sid = 0;
    for (int i = 0; i < 10; i++) {
        wl_request w = {.input_tokens = 100 + i, .output_tokens = 37};
        prefix_gen_next_lane(g, 1, i * 1000, &w, rng);
        int turn = i % 5;
        ck_assert_int_eq(w.turn, turn);
        ck_assert_int_eq(w.session_last, turn == 4);
        ck_assert_int_eq(prefix_gen_lane_of(g, w.session_id), 1);
        if (turn == 0) {
            ck_assert_uint_ne(w.session_id, sid);   /* a new session */
            sid = w.session_id;
            prev_ctx = 0;
            ck_assert_int_eq(w.session_start_ns, i * 1000);
        }
        ck_assert_uint_eq(w.session_id, sid);
        ck_assert_int_eq(w.input_tokens, prev_ctx + 100 + i);   /* context + new tokens */
        ck_assert_int_eq(w.prefix_id_tokens, w.input_tokens + 37);   /* ids cover the answer */
        for (int32_t j = 0; j < prev_ctx / 16; j++)
            ck_assert_uint_eq(w.prefix_blocks[j], prev[j]);
        if (turn == 0 && i > 0)
            ck_assert_uint_ne(w.prefix_blocks[0], prev[0]);   /* nothing shared across sessions */
        memcpy(prev, w.prefix_blocks, (size_t)w.n_prefix_blocks * sizeof *prev);
        prev_ctx = w.prefix_id_tokens;
    }
    /* A turn that would overflow the context is the session's last. */
    prefix_gen_destroy(g);
    gsl_rng_free(rng);
    g = gen_make("{\"kind\": \"session\", \"turns\": 50, \"turn_dist\": \"fixed\"}", &rng, 1,
                 1000);
    int turns = 0, last = 0;
    while (!last) {
        wl_request w = {.input_tokens = 200, .output_tokens = 100};
        prefix_gen_next_lane(g, 0, 0, &w, rng);
        last = w.session_last;
        turns++;
    }
    ck_assert_int_eq(turns, 4);   /* 300, 600, 900 fit; the 4th (1200) does not */
    prefix_gen_destroy(g);
    gsl_rng_free(rng);
}
END_TEST

START_TEST(test_sessions_geometric_turns_have_the_mean_asked)
{
    gsl_rng *rng;
    prefix_gen *g = gen_make("{\"kind\": \"session\", \"turns\": 6}", &rng, 1, 1 << 30);
    int sessions = 0, turns = 0;
    while (sessions < 4000) {
        wl_request w = {.input_tokens = 1, .output_tokens = 1};
        prefix_gen_next_lane(g, 0, 0, &w, rng);
        turns++;
        sessions += w.session_last;
    }
    double mean = (double)turns / sessions;
    ck_assert_msg(mean > 5.7 && mean < 6.3, "mean turns %.3f", mean);
    prefix_gen_destroy(g);
    gsl_rng_free(rng);
}
END_TEST

START_TEST(test_sessions_need_a_closed_loop)
{
    sim_engine *eng = sim_engine_create(1);
    wl_setup setup = {sim_rng(eng, 1), sim_rng(eng, 2), 8192};
    cJSON *cfg = cJSON_Parse(
        "{\"source\": \"synthetic\", \"requests\": 10, \"arrival\": {\"rate_per_s\": 5},"
        " \"input_tokens\": {\"dist\": \"fixed\", \"value\": 10},"
        " \"output_tokens\": {\"dist\": \"fixed\", \"value\": 10},"
        " \"prefix\": {\"kind\": \"session\"}}");
    sim_err err = {{0}};
    ck_assert_ptr_null(wl_source_create(&setup, cfg, "$.workload", &err));
    ck_assert_msg(strstr(err.msg, "$.workload.prefix") && strstr(err.msg, "closed_loop"), "%s",
                  err.msg);
    cJSON_Delete(cfg);
    cfg = cJSON_Parse("{\"kind\": \"session\", \"turn_dist\": \"zipf\"}");
    prefix_gen *g = NULL;
    ck_assert_int_eq(prefix_gen_create(cfg, "$.w.prefix", NULL, 100, NULL, &g, &err), -1);
    ck_assert_msg(strstr(err.msg, "$.w.prefix.turn_dist"), "%s", err.msg);
    cJSON_Delete(cfg);
    sim_engine_destroy(eng);
}
END_TEST

/* ---- runs --------------------------------------------------------------------- */

typedef struct turn_log {
    int32_t ctx[4096];   /* by session id: the previous turn's prompt + answer */
    uint64_t turns, first, later, over;   /* later turns prefilling more than new + a block */
    uint64_t hash, with_session;
} turn_log;

static int log_record(void *ctx, const req_record *rec)
{
    turn_log *l = ctx;
    l->turns++;
    l->hash = (l->hash ^ (uint64_t)rec->finish_ns ^ ((uint64_t)rec->cached_tokens << 32)) *
              1099511628211ULL;
    if (!rec->session_id)
        return 0;
    l->with_session++;
    ck_assert_uint_lt(rec->session_id, 4096);
    l->first += rec->turn == 0;
    if (rec->turn > 0) {
        int32_t fresh = rec->input_tokens - l->ctx[rec->session_id];
        int32_t prefilled = rec->input_tokens - rec->cached_tokens;
        ck_assert_int_gt(fresh, 0);
        l->later++;
        l->over += prefilled > fresh + 16;
    }
    l->ctx[rec->session_id] = rec->input_tokens + rec->output_tokens;
    return 0;
}

static const char *const session_sets[] = {
    "cluster.instances=4", "instance.prefix_caching=true", "workload.requests=240",
    "workload.arrival={\"process\": \"closed_loop\", \"clients\": 8, \"think_s\": 0.5}",
    "workload.input_tokens={\"dist\": \"uniform\", \"min\": 50, \"max\": 300}",
    "workload.output_tokens={\"dist\": \"uniform\", \"min\": 10, \"max\": 80}",
    "workload.prefix={\"kind\": \"session\", \"turns\": 6, \"turn_dist\": \"fixed\"}", NULL};

static void session_run(const char *routing, turn_log *l, run_summary *s)
{
    cJSON *root = tu_base_config();
    tu_set(root, session_sets);
    char r[128];
    snprintf(r, sizeof r, "policies.routing={\"name\": \"%s\"}", routing);
    const char *const more[] = {r, NULL};
    tu_set(root, more);
    run_config cfg;
    tu_parse(root, &cfg);
    memset(l, 0, sizeof *l);
    l->hash = 1469598103934665603ULL;
    sim_err err = {{0}};
    cluster_hooks hooks = {.on_record = log_record, .record_ctx = l};
    cluster *c = cluster_create(&cfg.sys, &hooks, &err);
    ck_assert_msg(c, "%s", err.msg);
    ck_assert_msg(cluster_run(c, &err) == 0, "%s", err.msg);
    cluster_summarize(c, s);
    cluster_destroy(c);
    run_config_fini(&cfg);
}

/* With a cache that never evicts and affinity routing, every later turn
 * finds its whole context cached: it prefills its new tokens (and at most
 * the block its context ends in). Round robin scatters the turns. */
START_TEST(test_sessions_affinity_with_unbounded_cache_prefills_only_new_tokens)
{
    turn_log *l = calloc(1, sizeof *l);
    run_summary s;
    session_run("session_affinity", l, &s);
    ck_assert_uint_eq(l->turns, 240);
    ck_assert_uint_eq(l->with_session, 240);
    ck_assert_uint_eq(s.kv_evictions, 0);
    ck_assert_uint_eq(l->later + l->first, 240);
    ck_assert_uint_ge(l->first, 40);   /* sessions of 6 turns, the last ones cut short */
    ck_assert_uint_le(l->first, 48);
    ck_assert_uint_eq(l->over, 0);
    ck_assert_uint_ge(s.sessions.sessions_completed, 32);
    ck_assert_uint_le(s.sessions.sessions_completed, 40);
    ck_assert_uint_eq(s.sessions.session_turns, 240);
    ck_assert_uint_eq(s.sessions.affinity_breaks, 0);
    ck_assert_double_gt(s.sessions.turn_hit_ratio, 0.5);
    ck_assert_double_eq(s.sessions.first_turn_hit_ratio, 0);
    ck_assert_double_gt(s.sessions.resume_s_mean, 0);
    ck_assert_double_ge(s.sessions.session_s_p50, 5 * 0.0);
    ck_assert_double_gt(s.sessions.session_s_mean, s.sessions.resume_s_mean);
    double affinity_hit = s.sessions.turn_hit_ratio;

    session_run("round_robin", l, &s);
    ck_assert_uint_gt(s.sessions.affinity_breaks, 100);
    ck_assert_uint_gt(l->over, 100);
    ck_assert_double_lt(s.sessions.turn_hit_ratio, affinity_hit);
    free(l);
}
END_TEST

START_TEST(test_sessions_runs_are_deterministic)
{
    turn_log *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    run_summary sa, sb;
    session_run("session_affinity", a, &sa);
    session_run("session_affinity", b, &sb);
    ck_assert_uint_eq(a->hash, b->hash);
    ck_assert_uint_eq(sa.sessions.affinity_breaks, sb.sessions.affinity_breaks);
    ck_assert_double_eq(sa.sessions.session_s_mean, sb.sessions.session_s_mean);
    ck_assert_double_eq(sa.sessions.resume_s_p99, sb.sessions.resume_s_p99);
    free(a);
    free(b);
}
END_TEST

/* Without sessions nothing changes: no session fields, no session metrics,
 * and an anonymous closed loop still works as before. */
START_TEST(test_sessions_defaults_have_none)
{
    const char *const sets[] = {
        "workload.arrival={\"process\": \"closed_loop\", \"clients\": 4, \"think_s\": 0.2}",
        "workload.prefix={\"kind\": \"multiturn\", \"turns\": 4}", NULL};
    tu_run r;
    tu_run_sets(sets, &r);
    ck_assert_uint_eq(r.n_records, 200);
    ck_assert_uint_eq(r.summary.sessions.session_turns, 0);
    ck_assert_uint_eq(r.summary.sessions.sessions_completed, 0);
    ck_assert_uint_eq(r.summary.sessions.affinity_breaks, 0);
    tu_run_fini(&r);
}
END_TEST

/* ---- session-affinity routing on hand-built views -------------------------------- */

START_TEST(test_route_session_affinity_ttl_and_load_threshold)
{
    sim_err err = {{0}};
    const route_policy_ops *ops = route_policy_find("session_affinity", "$.r", &err);
    ck_assert_msg(ops, "%s", err.msg);
    cJSON *p = cJSON_Parse("{\"ttl_s\": 10, \"max_extra_tokens\": 1000}");
    void *st;
    route_setup setup = {.pool = 0, .block_size_tokens = 16};
    ck_assert_int_eq(ops->init(&setup, p, "$.r.params", &st, &err), 0);
    cJSON_Delete(p);
    inst_view inst[3] = {{.state = INST_ACTIVE}, {.state = INST_ACTIVE}, {.state = INST_ACTIVE}};
    int32_t cand[3] = {0, 1, 2};
    route_view v = {.inst = inst, .n_instances = 3, .candidates = cand, .n_candidates = 3};
    serve_req q = {.session_id = 7};
    inst[0].outstanding_tokens = 50;
    inst[2].outstanding_tokens = 50;
    ck_assert_int_eq(ops->route(st, &v, &q), 1);   /* new: the least loaded */
    inst[1].outstanding_tokens = 900;   /* within the threshold: stays */
    v.now = 5 * SIM_NS_PER_S;
    ck_assert_int_eq(ops->route(st, &v, &q), 1);
    inst[1].outstanding_tokens = 1100;   /* 1050 over the least loaded: breaks */
    v.now = 6 * SIM_NS_PER_S;
    ck_assert_int_eq(ops->route(st, &v, &q), 0);
    inst[1].outstanding_tokens = 0;   /* bound to 0 now, not to the lighter 1 */
    v.now = 7 * SIM_NS_PER_S;
    ck_assert_int_eq(ops->route(st, &v, &q), 0);
    v.now = 18 * SIM_NS_PER_S;   /* 11 s after the last turn: expired */
    ck_assert_int_eq(ops->route(st, &v, &q), 1);
    serve_req none = {0};
    inst[0].outstanding_tokens = 60;
    inst[1].outstanding_tokens = 5000;
    ck_assert_int_eq(ops->route(st, &v, &none), 2);   /* no session: least loaded */
    v.n_candidates = 1;   /* the bound instance is gone: the only candidate */
    ck_assert_int_eq(ops->route(st, &v, &q), 0);
    /* Many sessions: the table grows and drops expired bindings. */
    for (uint64_t k = 1; k <= 5000; k++) {
        serve_req x = {.session_id = 100 + k};
        v.now = (sim_time_ns)k * SIM_NS_PER_S;
        ck_assert_int_eq(ops->route(st, &v, &x), 0);
    }
    ops->destroy(st);
}
END_TEST

Suite *sessions_suite(void)
{
    Suite *s = suite_create("sessions");
    TCase *t = tcase_create("core");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_sessions_turn_prompt_contains_previous_context_and_output);
    tcase_add_test(t, test_sessions_geometric_turns_have_the_mean_asked);
    tcase_add_test(t, test_sessions_need_a_closed_loop);
    tcase_add_test(t, test_sessions_affinity_with_unbounded_cache_prefills_only_new_tokens);
    tcase_add_test(t, test_sessions_runs_are_deterministic);
    tcase_add_test(t, test_sessions_defaults_have_none);
    tcase_add_test(t, test_route_session_affinity_ttl_and_load_threshold);
    suite_add_tcase(s, t);
    return s;
}
