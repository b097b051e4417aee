/* Agentic and multi-turn sessions: the session generator (traces/
 * prefix_gen.h kind "session"), session-affinity routing
 * (policies/route_session_affinity.c) and the session metrics
 * (serve/session_metrics.h). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "policies/registry.h"
#include "serve/cluster.h"
#include "serve/req.h"
#include "serve/retain.h"
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

/* ---- KV retention (serve/retain.c, policies/retain_*.c) ------------------------ */

typedef struct rharness {
    kv_cache *kv;
    req r[6];
    uint64_t ids[6][8];
    sess_metrics m;
    retain_store *st;
    cJSON *params;
} rharness;

static void rh_init(rharness *h, const char *policy, const char *params)
{
    memset(h, 0, sizeof *h);
    h->kv = kv_create(16, 4, true, 0);   /* 16 blocks of 4 tokens */
    sess_metrics_init(&h->m);
    sim_err err = {{0}};
    retain_choice c = {.ops = retain_policy_find(policy, "$.r.name", &err)};
    ck_assert_msg(c.ops, "%s", err.msg);
    h->params = cJSON_Parse(params);
    c.params = h->params;
    snprintf(c.path, sizeof c.path, "$.r.params");
    ck_assert_msg(retain_create(&c, 0, &h->m, &h->st, &err) == 0, "%s", err.msg);
}

static void rh_fini(rharness *h)
{
    retain_destroy(h->st);
    for (int i = 0; i < 6; i++)
        kv_req_fini(&h->r[i].kv);
    kv_destroy(h->kv);
    sess_metrics_fini(&h->m);
    cJSON_Delete(h->params);
}

/* Request i: `input` tokens, the first 32 with ids base.., of session sid. */
static serve_req *rh_req(rharness *h, int i, int32_t input, uint64_t base, uint64_t sid,
                         int32_t turn)
{
    req *q = &h->r[i];
    for (int j = 0; j < 4; j++)
        h->ids[i][j] = base + (uint64_t)j;
    q->pub = (serve_req){.id = (uint64_t)i, .input_tokens = input, .output_tokens = 8,
                         .state = REQ_WAITING, .session_id = sid, .turn = turn,
                         .session_gap_ns = SIM_NS_PER_S};
    kv_req_init(&q->kv, h->ids[i], 32 < input ? 32 : input, 8, 1000 + (uint64_t)i);
    return &q->pub;
}

static int32_t rh_prefill(rharness *h, serve_req *r, sim_time_ns now)
{
    kv_req *k = &req_of(r)->kv;
    kv_admit(h->kv, r, k, now);
    if (r->session_id)
        retain_turn_admitted(h->st, h->kv, r, now);
    r->state = REQ_RUNNING;
    int32_t todo = req_pending_tokens(r);
    kv_grow(h->kv, r, k, todo, now);
    r->computed_tokens += todo;
    kv_commit(h->kv, r, k);
    return todo;
}

static int32_t rh_cached(rharness *h, uint64_t base)
{
    serve_req *probe = rh_req(h, 5, 40, base, 0, 0);
    return kv_peek_cached_tokens(h->kv, probe, &req_of(probe)->kv);
}

/* A pinned turn's blocks stay (unevictable, counted used) however much the
 * cache is asked for, until the TTL; then they fall to eviction. */
START_TEST(test_retain_pinned_blocks_are_never_evicted_before_the_ttl)
{
    rharness h;
    rh_init(&h, "pin_ttl", "{\"ttl_s\": 10}");
    serve_req *a = rh_req(&h, 0, 32, 7, 9, 0);
    ck_assert_int_eq(rh_prefill(&h, a, 0), 32);
    sim_time_ns until = retain_turn_end(h.st, h.kv, a, &req_of(a)->kv, SIM_NS_PER_S);
    ck_assert_int_eq(until, 11 * SIM_NS_PER_S);
    ck_assert_int_eq(a->kv_blocks, 0);   /* the pin holds them now */
    ck_assert_int_eq(kv_used_blocks(h.kv), 8);
    for (int k = 0; k < 3; k++) {   /* other prompts fill the rest, again and again */
        serve_req *b = rh_req(&h, 1 + k, 32, 100 + 10 * (uint64_t)k, 0, 0);
        ck_assert_int_eq(rh_prefill(&h, b, (2 + k) * SIM_NS_PER_S), 32);
        kv_release(h.kv, b, &req_of(b)->kv, (2 + k) * SIM_NS_PER_S);
        ck_assert_int_eq(rh_cached(&h, 7), 32);   /* the pinned prompt is all there */
    }
    retain_expire(h.st, h.kv, 10 * SIM_NS_PER_S);   /* not yet */
    ck_assert_int_eq(kv_used_blocks(h.kv), 8);
    retain_expire(h.st, h.kv, 11 * SIM_NS_PER_S);
    ck_assert_int_eq(kv_used_blocks(h.kv), 0);
    ck_assert_int_eq(rh_cached(&h, 7), 32);   /* released, still cached ... */
    serve_req *d = rh_req(&h, 4, 64, 500, 0, 0);
    ck_assert_int_eq(rh_prefill(&h, d, 12 * SIM_NS_PER_S), 64);
    ck_assert_int_eq(rh_cached(&h, 7), 0);   /* ... until evicted */
    kv_release(h.kv, d, &req_of(d)->kv, 13 * SIM_NS_PER_S);
    ck_assert_uint_eq(h.m.pins, 1);
    ck_assert_uint_eq(h.m.pin_expiries, 1);
    ck_assert_double_eq_tol(h.m.pinned_block_ns, 8.0 * 10 * SIM_NS_PER_S, 1);
    rh_fini(&h);
}
END_TEST

/* The next turn takes the pinned blocks over: it prefills only its new
 * tokens and the pin ends. */
START_TEST(test_retain_next_turn_takes_the_pin)
{
    rharness h;
    rh_init(&h, "pin_ttl", "{\"ttl_s\": 10}");
    serve_req *a = rh_req(&h, 0, 32, 7, 9, 0);
    rh_prefill(&h, a, 0);
    ck_assert_int_gt(retain_turn_end(h.st, h.kv, a, &req_of(a)->kv, 0), 0);
    serve_req *a2 = rh_req(&h, 1, 40, 7, 9, 1);   /* the same 32, then 8 new */
    ck_assert_int_eq(rh_prefill(&h, a2, SIM_NS_PER_S), 8);
    ck_assert_uint_eq(h.m.pin_reuses, 1);
    ck_assert_int_eq(kv_used_blocks(h.kv), a2->kv_blocks);   /* the pin's are a2's now */
    kv_release(h.kv, a2, &req_of(a2)->kv, 2 * SIM_NS_PER_S);
    ck_assert_int_eq(kv_used_blocks(h.kv), 0);
    /* A session's last turn, and requests without a session, are never pinned. */
    serve_req *l = rh_req(&h, 2, 32, 300, 11, 1);
    l->session_last = 1;
    rh_prefill(&h, l, 3 * SIM_NS_PER_S);
    ck_assert_int_eq(retain_turn_end(h.st, h.kv, l, &req_of(l)->kv, 3 * SIM_NS_PER_S), 0);
    serve_req *n = rh_req(&h, 3, 32, 400, 0, 0);
    ck_assert_int_eq(retain_turn_end(h.st, h.kv, n, &req_of(n)->kv, 3 * SIM_NS_PER_S), 0);
    kv_release(h.kv, l, &req_of(l)->kv, 4 * SIM_NS_PER_S);
    /* An instance that drains lets every pin go. */
    serve_req *b = rh_req(&h, 4, 32, 600, 12, 0);
    rh_prefill(&h, b, 5 * SIM_NS_PER_S);
    ck_assert_int_gt(retain_turn_end(h.st, h.kv, b, &req_of(b)->kv, 5 * SIM_NS_PER_S), 0);
    ck_assert_int_eq(kv_used_blocks(h.kv), 8);
    retain_release_all(h.st, h.kv, 6 * SIM_NS_PER_S);
    ck_assert_int_eq(kv_used_blocks(h.kv), 0);
    rh_fini(&h);
}
END_TEST

/* pin_ttl (Continuum): pins while the learned mean gap is at most the TTL
 * (or none is known) and the pinned share stays under its cap; release never. */
START_TEST(test_retain_pin_ttl_decides_by_learned_gap)
{
    sim_err err = {{0}};
    const retain_policy_ops *ops = retain_policy_find("pin_ttl", "$.r", &err);
    cJSON *p = cJSON_Parse("{\"ttl_s\": 2, \"max_pinned_fraction\": 0.5}");
    void *st;
    ck_assert_int_eq(ops->init(p, "$.r.params", &st, &err), 0);
    cJSON_Delete(p);
    retain_view v = {.kv_total_blocks = 100};
    serve_req r = {.session_id = 1, .kv_blocks = 10};
    ck_assert_int_eq(ops->on_turn_end(st, &v, &r), 2 * SIM_NS_PER_S);   /* unseen: pin */
    v.pinned_blocks = 45;
    ck_assert_int_eq(ops->on_turn_end(st, &v, &r), 0);   /* 55 > half the cache */
    v.pinned_blocks = 0;
    r.session_gap_ns = 1 * SIM_NS_PER_S;
    ops->on_turn_arrival(st, &v, &r);
    ck_assert_int_eq(ops->on_turn_end(st, &v, &r), 2 * SIM_NS_PER_S);   /* mean 1 s */
    r.session_gap_ns = 5 * SIM_NS_PER_S;
    ops->on_turn_arrival(st, &v, &r);
    ck_assert_int_eq(ops->on_turn_end(st, &v, &r), 0);   /* mean 3 s > 2 s */
    ops->destroy(st);
    const retain_policy_ops *rel = retain_policy_find("release", "$.r", &err);
    ck_assert_int_eq(rel->on_turn_end(NULL, &v, &r), 0);
    ck_assert_ptr_null(retain_policy_find("keep", "$.r.name", &err));
    ck_assert_msg(strstr(err.msg, "$.r.name") && strstr(err.msg, "pin_ttl"), "%s", err.msg);
}
END_TEST

/* min_waste (InferCept): preserve waste C x T against discard waste
 * T_fwd(X) x M, on hand-built numbers. */
START_TEST(test_retain_min_waste_picks_the_smaller_waste)
{
    sim_err err = {{0}};
    const retain_policy_ops *ops = retain_policy_find("min_waste", "$.r", &err);
    ck_assert_msg(ops, "%s", err.msg);
    cJSON *p = cJSON_Parse("{\"fwd_ms_per_token\": 0.05, \"fwd_ms\": 20, \"gap_s\": 2, "
                           "\"ttl_factor\": 1.5}");
    void *st;
    ck_assert_int_eq(ops->init(p, "$.r.params", &st, &err), 0);
    cJSON_Delete(p);
    /* C = 100 blocks, X = 1600 tokens: T_fwd = 0.05 x 1600 + 20 = 100 ms; M = 1000
     * blocks in use: discard 0.1 x 1000 = 100 block-s; preserve 100 x 2 s = 200. */
    retain_view v = {.kv_total_blocks = 4000, .kv_free_blocks = 3000};
    serve_req r = {.session_id = 1, .kv_blocks = 100, .input_tokens = 1500,
                   .output_tokens = 100};
    ck_assert_int_eq(ops->on_turn_end(st, &v, &r), 0);   /* 200 > 100: discard */
    v.kv_free_blocks = 1000;   /* M = 3000: discard 300 > preserve 200: pin 1.5 x 2 s */
    ck_assert_int_eq(ops->on_turn_end(st, &v, &r), 3 * SIM_NS_PER_S);
    v.kv_free_blocks = 3000;   /* M = 1000 again, but the gaps seen are 0.5 s: */
    r.session_gap_ns = SIM_NS_PER_S / 2;   /* preserve 50 < discard 100: pin 0.75 s */
    ops->on_turn_arrival(st, &v, &r);
    ck_assert_int_eq(ops->on_turn_end(st, &v, &r), 3 * SIM_NS_PER_S / 4);
    ops->destroy(st);
}
END_TEST

/* A run with pins: sessions resume on their pins, and every pin ends. */
START_TEST(test_retain_pin_ttl_run_reuses_pins)
{
    cJSON *root = tu_base_config();
    tu_set(root, session_sets);
    const char *const more[] = {"policies.routing={\"name\": \"session_affinity\"}",
                                "policies.retention={\"name\": \"pin_ttl\", \"params\": "
                                "{\"ttl_s\": 5}}", NULL};
    tu_set(root, more);
    run_config cfg;
    tu_parse(root, &cfg);
    tu_run r;
    tu_run_config(&cfg, &r);
    run_config_fini(&cfg);
    ck_assert_uint_eq(r.n_records, 240);
    ck_assert_int_eq(r.kv_over_capacity, 0);
    const sess_summary *x = &r.summary.sessions;
    ck_assert_uint_gt(x->pins, 150);   /* every later turn's predecessor, think 0.5 s < 5 s */
    ck_assert_uint_le(x->pins - x->pin_reuses - x->pin_expiries, 8);   /* alive at the end */
    ck_assert_uint_gt(x->pin_reuses, 150);
    ck_assert_double_gt(x->pinned_block_s, 0);
    tu_run_fini(&r);
}
END_TEST

/* Under HBM pressure, long pins fill the cache: they give way when the
 * instance could run nothing else, and every request still completes. */
START_TEST(test_retain_pins_give_way_under_pressure)
{
    const char *const sets[] = {
        "cluster.instances=1", "instance.prefix_caching=true", "workload.requests=300",
        "instance.gpu_memory_utilization=0.25", "instance.max_context_tokens=4096",
        "workload.arrival={\"process\": \"closed_loop\", \"clients\": 48, \"think_s\": 0.5}",
        "workload.input_tokens={\"dist\": \"uniform\", \"min\": 400, \"max\": 800}",
        "workload.output_tokens={\"dist\": \"uniform\", \"min\": 50, \"max\": 150}",
        "workload.prefix={\"kind\": \"session\", \"turns\": 4, \"turn_dist\": \"fixed\"}",
        "policies.retention={\"name\": \"pin_ttl\", \"params\": {\"ttl_s\": 600}}", NULL};
    tu_run r;
    tu_run_sets(sets, &r);
    ck_assert_uint_eq(r.n_records, 300);
    ck_assert_int_eq(r.kv_over_capacity, 0);
    const sess_summary *x = &r.summary.sessions;
    ck_assert_uint_gt(x->pins, 0);
    ck_assert_uint_gt(x->pin_expiries, 0);   /* none could run out its 600 s */
    ck_assert_double_lt(r.summary.duration_s, 600);
    tu_run_fini(&r);
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
    tcase_add_test(t, test_retain_pinned_blocks_are_never_evicted_before_the_ttl);
    tcase_add_test(t, test_retain_next_turn_takes_the_pin);
    tcase_add_test(t, test_retain_pin_ttl_decides_by_learned_gap);
    tcase_add_test(t, test_retain_min_waste_picks_the_smaller_waste);
    tcase_add_test(t, test_retain_pin_ttl_run_reuses_pins);
    tcase_add_test(t, test_retain_pins_give_way_under_pressure);
    suite_add_tcase(s, t);
    return s;
}
