/* Agentic sessions, part two: the kv-cache-tester / Weka trace reader
 * (traces/weka.h), the session player's timing rules and subagent trees
 * (traces/session_play.h), and replays through the serving core. The
 * fixture tests/data/weka_sessions.jsonl is hand-written in the real
 * format (block_size 4 to keep the arithmetic small). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/registry.h"
#include "sim/engine.h"
#include "tests/suites.h"
#include "tests/testutil.h"
#include "traces/session_play.h"
#include "traces/weka.h"

#define FIXTURE "tests/data/weka_sessions.jsonl"

static const sp_item *item_of(const sp_program *p, int32_t thread, int32_t k)
{
    return &p->items[p->threads[thread].first_item + k];
}

/* ---- the reader ---------------------------------------------------------------- */

START_TEST(test_weka_reads_calls_gaps_and_subagent_spawns)
{
    sim_err err = {{0}};
    weka_reader *r = weka_open(FIXTURE, false, false, &err);
    ck_assert_msg(r != NULL, "%s", err.msg);
    sp_program p;
    sp_program_init(&p);
    ck_assert_int_eq(weka_next(r, &p, &err), 1);
    ck_assert_int_eq(p.block_tokens, 4);
    ck_assert_uint_eq(p.n_threads, 1);
    ck_assert_int_eq(p.threads[0].n_items, 3);
    const sp_item *c1 = item_of(&p, 0, 1), *c2 = item_of(&p, 0, 2);
    ck_assert_int_eq(c1->input_tokens, 16);
    ck_assert_int_eq(c1->lcp, 2);            /* [1 2] shared, [3 4] new */
    ck_assert_int_eq(c1->n_new, 2);
    ck_assert_int_eq(c1->gap_ns, 2500000000LL);   /* think_time */
    ck_assert_int_eq(c1->t_ns, 5000000000LL);
    ck_assert(!c1->last_call && c2->last_call);
    ck_assert(!p.global_ids);

    ck_assert_int_eq(weka_next(r, &p, &err), 1);   /* the blank line is skipped */
    ck_assert_uint_eq(p.n_threads, 3);             /* two subagents */
    ck_assert_int_eq(p.threads[0].n_items, 3);     /* call, spawn, call */
    const sp_item *sp = item_of(&p, 0, 1);
    ck_assert(sp->spawn);
    ck_assert_int_eq(sp->n_children, 2);
    ck_assert_int_eq(sp->child, 1);
    ck_assert_int_eq(p.threads[1].n_items, 2);
    ck_assert_int_eq(item_of(&p, 1, 0)->t_ns, 2500000000LL);   /* 0.5 s after its entry */
    ck_assert_int_eq(item_of(&p, 1, 1)->t_ns, 3000000000LL);   /* already absolute */
    ck_assert_int_eq(item_of(&p, 1, 1)->lcp, 3);
    /* No think_time: the gap is t less the previous call's t and api_time. */
    ck_assert_int_eq(item_of(&p, 0, 0)->gap_ns, 0);
    ck_assert_int_eq(item_of(&p, 0, 2)->gap_ns, 500000000LL);

    ck_assert_int_eq(weka_next(r, &p, &err), 1);
    ck_assert_int_eq(item_of(&p, 0, 1)->input_tokens, 1);   /* 0 replayed as 1 */
    ck_assert_uint_eq(weka_zero_raised(r), 1);
    ck_assert_int_eq(weka_next(r, &p, &err), 0);
    ck_assert_int_eq(weka_rewind(r, &err), 0);
    ck_assert_int_eq(weka_next(r, &p, &err), 1);
    ck_assert_uint_eq(p.n_threads, 1);
    sp_program_fini(&p);
    weka_close(r);
}
END_TEST

/* output_ids: a call's ids reach into its answer as far as the next call's
 * prompt shows them (whole blocks of prompt + answer). */
START_TEST(test_weka_output_ids_cover_the_answer_the_next_call_holds)
{
    sim_err err = {{0}};
    weka_reader *r = weka_open(FIXTURE, false, true, &err);
    ck_assert_msg(r != NULL, "%s", err.msg);
    sp_program p;
    sp_program_init(&p);
    ck_assert_int_eq(weka_next(r, &p, &err), 1);
    const sp_item *c0 = item_of(&p, 0, 0);
    /* 10 + 3 tokens: 3 whole blocks; the next prompt has [1 2 3 4] */
    ck_assert_int_eq(c0->n_new, 3);
    ck_assert_int_eq(c0->id_tokens, 12);
    ck_assert_int_eq(item_of(&p, 0, 2)->id_tokens, 0);   /* no next call */
    sp_program_fini(&p);
    weka_close(r);
}
END_TEST

/* trace stats: the trace's own hits, each call's leading blocks seen
 * earlier in its session (subagents included, in play order). */
START_TEST(test_weka_stats_count_unbounded_cache_hits_per_session)
{
    weka_stats st;
    sim_err err = {{0}};
    ck_assert_msg(weka_stats_read(FIXTURE, false, &st, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(st.sessions, 3);
    ck_assert_uint_eq(st.subagents, 2);
    ck_assert_uint_eq(st.calls, 10);
    /* a1: 0 + 8 + 16 of 10 + 16 + 20; b2: 0 + 4 + 12 + 4 + 8 of 56 */
    ck_assert_double_eq_tol(st.session_hit[0], 24.0 / 46, 1e-12);
    ck_assert_double_eq_tol(st.session_hit[1], 28.0 / 56, 1e-12);
    ck_assert_double_eq(st.session_hit[2], 0);
    ck_assert_double_eq(st.hit_tokens, 52);
    ck_assert_double_eq(st.calls_per_session[1], 2);   /* b2's own calls */
    ck_assert_double_eq_tol(weka_quantile(st.session_hit, 3, 0.5), 0.5, 1e-12);
    weka_stats_fini(&st);
}
END_TEST

static char *write_temp(const char *dir, const char *name, const char *text)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Malformed sessions name the file, the line and the field; skip_bad skips
 * and counts them. */
START_TEST(test_weka_bad_input_names_file_line_and_field)
{
    char *dir = tu_tempdir();
    const char *good = "{\"block_size\":4,\"requests\":[{\"t\":0,\"in\":8,\"out\":1}]}\n";
    char text[1024];
    snprintf(text, sizeof text, "%s%s", good,
             "{\"block_size\":4,\"requests\":[{\"t\":0,\"in\":-3,\"out\":1}]}\n");
    char *path = write_temp(dir, "bad.jsonl", text);
    sim_err err = {{0}};
    weka_reader *r = weka_open(path, false, false, &err);
    ck_assert_ptr_nonnull(r);
    sp_program p;
    sp_program_init(&p);
    ck_assert_int_eq(weka_next(r, &p, &err), 1);
    ck_assert_int_eq(weka_next(r, &p, &err), -1);
    char want[512];
    snprintf(want, sizeof want, "%s:2: requests[0].in: expected an integer in [0, 10000000], "
             "got \"-3\"", path);
    ck_assert_str_eq(err.msg, want);
    weka_close(r);

    r = weka_open(path, true, false, &err);
    ck_assert_int_eq(weka_next(r, &p, &err), 1);
    ck_assert_int_eq(weka_next(r, &p, &err), 0);
    const char *first;
    ck_assert_uint_eq(weka_bad_skipped(r, &first), 1);
    ck_assert_str_eq(first, want);
    weka_close(r);

    static const struct {
        const char *line, *want;
    } cases[] = {
        {"{\"requests\": [", ":1: JSON syntax error at byte"},
        {"[1, 2]", ":1: expected a JSON object (a session) per line"},
        {"{\"block_size\":4}", ":1: requests: expected an array of requests, got \"(nothing)\""},
        {"{\"requests\":[{\"t\":0,\"in\":8,\"out\":1,\"hash_ids\":[1,2,3]}],\"block_size\":4}",
         ":1: requests[0].hash_ids: expected at most 2 ids (one per 4 input tokens), got 3"},
        {"{\"requests\":[{\"t\":0,\"in\":8,\"out\":1,\"hash_ids\":[1,-2]}]}",
         ":1: requests[0].hash_ids[1]: expected an integer in [0, 2^53), got \"-2\""},
        {"{\"requests\":[{\"t\":0,\"type\":\"x\",\"in\":8,\"out\":1}]}",
         ":1: requests[0].type: expected \"n\", \"s\" or \"subagent\", got"},
        {"{\"requests\":[{\"t\":0,\"type\":\"subagent\",\"requests\":[{\"t\":0,\"in\":8}]}]}",
         ":1: requests[0].requests[0].out: missing"},
        {"{\"requests\":[{\"in\":8,\"out\":1}]}", ":1: requests[0].t: missing"},
        {"{\"hash_id_scope\":\"world\",\"requests\":[]}", ":1: hash_id_scope: expected"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *q = write_temp(dir, "case.jsonl", cases[i].line);
        r = weka_open(q, false, false, &err);
        ck_assert_ptr_nonnull(r);
        ck_assert_int_eq(weka_next(r, &p, &err), -1);
        ck_assert_msg(strstr(err.msg, cases[i].want) && !strncmp(err.msg, q, strlen(q)),
                      "case %zu: %s", i, err.msg);
        weka_close(r);
        free(q);
    }
    ck_assert_ptr_null(weka_open("tests/data/no_such_trace.jsonl", false, false, &err));
    ck_assert(strstr(err.msg, "no_such_trace.jsonl: cannot open") != NULL);
    sp_program_fini(&p);
    free(path);
    free(dir);
}
END_TEST

/* A folder is read file by file in name order. */
START_TEST(test_weka_folder_is_read_in_name_order)
{
    char *dir = tu_tempdir();
    char *b = write_temp(dir, "b.json", "{\"block_size\":4,\"requests\":[{\"t\":0,\"in\":9,\"out\":1}]}");
    char *a = write_temp(dir, "a.json", "{\"block_size\":4,\"requests\":[{\"t\":0,\"in\":7,\"out\":1}]}");
    char *x = write_temp(dir, "notes.txt", "not a trace");
    ck_assert(weka_sniff(dir));
    ck_assert(weka_sniff(FIXTURE));
    ck_assert(!weka_sniff(x));
    sim_err err = {{0}};
    weka_reader *r = weka_open(dir, false, false, &err);
    ck_assert_msg(r != NULL, "%s", err.msg);
    sp_program p;
    sp_program_init(&p);
    ck_assert_int_eq(weka_next(r, &p, &err), 1);
    ck_assert_int_eq(p.items[0].input_tokens, 7);
    ck_assert_int_eq(weka_next(r, &p, &err), 1);
    ck_assert_int_eq(p.items[0].input_tokens, 9);
    ck_assert_int_eq(weka_next(r, &p, &err), 0);
    sp_program_fini(&p);
    weka_close(r);
    free(a), free(b), free(x), free(dir);
}
END_TEST

/* ---- the player ---------------------------------------------------------------------- */

typedef struct prog_list {
    int n, at;
    void (*build)(sp_program *p, int k);
} prog_list;

static int list_next(void *ctx, sp_program *p, sim_err *err)
{
    (void)err;
    prog_list *l = ctx;
    if (l->at == l->n)
        return 0;
    l->build(p, l->at++);
    return 1;
}

/* Two calls: t 0 and 10 s, the second 2 s after the first's end. */
static void two_calls(sp_program *p, int k)
{
    (void)k;
    uint64_t ids[3] = {1, 2, 3};
    p->block_tokens = 4;
    sp_add_thread(p);
    sp_add_call(p, 10, 5, 0, 0, ids, 2, 0);
    sp_add_call(p, 14, 5, 10 * SIM_NS_PER_S, 2 * SIM_NS_PER_S, ids, 3, 0);
    sp_program_finish(p);
}

static sp_player *player(const char *opts, prog_list *l)
{
    cJSON *o = cJSON_Parse(opts);
    ck_assert_ptr_nonnull(o);
    sp_opts so;
    sim_err err = {{0}};
    ck_assert_msg(sp_opts_parse(o, "$.workload", &so, &err) == 0, "%s", err.msg);
    cJSON_Delete(o);
    return sp_player_create(&so, NULL, list_next, l);
}

/* think: a call comes its gap after the previous one finished; recorded:
 * max(session start + t, previous completion + gap). */
START_TEST(test_player_timing_think_and_recorded)
{
    static const struct {
        const char *opts;
        sim_time_ns done_ns, want_ns;
    } cases[] = {
        {"{\"clients\": 1}", 1 * SIM_NS_PER_S, 3 * SIM_NS_PER_S},
        {"{\"clients\": 1, \"timing\": \"recorded\"}", 1 * SIM_NS_PER_S, 10 * SIM_NS_PER_S},
        {"{\"clients\": 1, \"timing\": \"recorded\"}", 9 * SIM_NS_PER_S, 11 * SIM_NS_PER_S},
        {"{\"clients\": 1, \"time_scale\": 0.5}", 1 * SIM_NS_PER_S, 2 * SIM_NS_PER_S},
        {"{\"clients\": 1, \"max_gap_s\": 0.25}", 1 * SIM_NS_PER_S, 1250 * SIM_NS_PER_MS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        prog_list l = {.n = 1, .build = two_calls};
        sp_player *pl = player(cases[i].opts, &l);
        sim_err err = {{0}};
        wl_request w = {0};
        ck_assert_int_eq(sp_player_next(pl, 0, &w, &err), WL_REQUEST);
        ck_assert_int_eq(w.turn, 0);
        ck_assert_int_eq(w.n_prefix_blocks, 2);
        uint64_t sid = w.session_id;
        ck_assert_int_eq(sp_player_next(pl, 0, &w, &err), WL_WAIT);
        ck_assert_int_eq(w.arrival_ns, SIM_TIME_NEVER);   /* until the completion */
        ck_assert_int_eq(sp_player_complete(pl, cases[i].done_ns, sid + (1ULL << 32)), 0);
        ck_assert_int_eq(sp_player_complete(pl, cases[i].done_ns, sid), 1);
        ck_assert_int_eq(sp_player_next(pl, cases[i].done_ns, &w, &err), WL_WAIT);
        ck_assert_int_eq(w.arrival_ns, cases[i].want_ns);
        ck_assert_int_eq(sp_player_next(pl, cases[i].want_ns, &w, &err), WL_REQUEST);
        ck_assert_int_eq(w.turn, 1);
        ck_assert_int_eq(w.session_last, 1);
        ck_assert_int_eq(w.session_gap_ns, cases[i].want_ns - cases[i].done_ns);
        ck_assert_uint_eq(w.session_id, sid);
        ck_assert_int_eq(sp_player_complete(pl, cases[i].want_ns + 5, sid), 1);
        ck_assert_int_eq(sp_player_next(pl, cases[i].want_ns + 5, &w, &err), WL_END);
        sp_player_destroy(pl);
    }
}
END_TEST

/* Local ids differ between plays of one recorded session; global ids do
 * not. */
START_TEST(test_player_local_ids_are_per_play)
{
    prog_list l = {.n = 2, .build = two_calls};
    sp_player *pl = player("{\"clients\": 2}", &l);
    sim_err err = {{0}};
    wl_request a = {0}, b = {0};
    ck_assert_int_eq(sp_player_next(pl, 0, &a, &err), WL_REQUEST);
    uint64_t a0 = a.prefix_blocks[0];
    ck_assert_int_eq(sp_player_next(pl, 0, &b, &err), WL_REQUEST);
    ck_assert_uint_ne(a0, b.prefix_blocks[0]);
    ck_assert_uint_ne(a.session_id, b.session_id);
    sp_player_destroy(pl);
}
END_TEST

/* Parent: call, spawn of two children, call. Children start when the
 * parent's first call finished; the parent's next call waits for both. */
static void tree(sp_program *p, int k)
{
    (void)k;
    uint64_t ids[4] = {1, 2, 3, 4};
    p->block_tokens = 4;
    p->global_ids = true;
    sp_add_thread(p);
    sp_add_call(p, 8, 2, 0, 0, ids, 2, 0);
    int32_t s = sp_add_spawn(p, 2, 0);
    sp_add_call(p, 16, 2, 0, SIM_NS_PER_S, ids, 4, 0);
    sp_set_children(p, s, sp_add_thread(p));
    sp_add_call(p, 12, 1, 0, 0, ids, 3, 0);
    sp_add_thread(p);
    sp_add_call(p, 9, 1, 0, 0, ids, 2, 0);
    sp_add_call(p, 13, 1, 0, 0, ids, 3, 0);
    sp_program_finish(p);
}

START_TEST(test_player_subagents_share_prefix_and_parent_waits_for_them)
{
    prog_list l = {.n = 1, .build = tree};
    sp_player *pl = player("{\"clients\": 1}", &l);
    sim_err err = {{0}};
    wl_request w = {0};
    ck_assert_int_eq(sp_player_next(pl, 0, &w, &err), WL_REQUEST);
    uint64_t parent = w.session_id;
    ck_assert_int_eq(sp_player_complete(pl, 100, parent), 1);
    uint64_t kid[2];
    for (int c = 0; c < 2; c++) {
        ck_assert_int_eq(sp_player_next(pl, 100, &w, &err), WL_REQUEST);
        kid[c] = w.session_id;
        ck_assert_uint_ne(kid[c], parent);
        ck_assert_uint_eq(w.session_root, parent);   /* routed with the tree */
        ck_assert_int_eq(w.turn, 0);
        ck_assert_uint_eq(w.prefix_blocks[0], 1);   /* the parent's prefix (global ids) */
        ck_assert_uint_eq(w.prefix_blocks[1], 2);
        ck_assert_int_eq(w.session_start_ns, 100);
    }
    ck_assert_uint_ne(kid[0], kid[1]);
    ck_assert_int_eq(sp_player_next(pl, 100, &w, &err), WL_WAIT);
    ck_assert_int_eq(w.arrival_ns, SIM_TIME_NEVER);
    ck_assert_int_eq(sp_player_complete(pl, 200, kid[0]), 1);   /* child 1 is done */
    ck_assert_int_eq(sp_player_complete(pl, 300, kid[1]), 1);
    ck_assert_int_eq(sp_player_next(pl, 300, &w, &err), WL_REQUEST);   /* child 2's second */
    ck_assert_uint_eq(w.session_id, kid[1]);
    ck_assert_int_eq(w.session_last, 1);
    ck_assert_int_eq(sp_player_next(pl, 300, &w, &err), WL_WAIT);   /* the parent waits */
    ck_assert_int_eq(w.arrival_ns, SIM_TIME_NEVER);
    ck_assert_int_eq(sp_player_complete(pl, 500, kid[1]), 1);
    ck_assert_int_eq(sp_player_next(pl, 500, &w, &err), WL_WAIT);
    ck_assert_int_eq(w.arrival_ns, 500 + SIM_NS_PER_S);   /* its gap after the last child */
    ck_assert_int_eq(sp_player_next(pl, 500 + SIM_NS_PER_S, &w, &err), WL_REQUEST);
    ck_assert_uint_eq(w.session_id, parent);
    ck_assert_int_eq(w.turn, 1);
    ck_assert_int_eq(w.n_prefix_blocks, 4);
    ck_assert_uint_eq(sp_player_trees(pl), 1);
    ck_assert_uint_eq(sp_player_threads(pl), 3);
    sp_player_destroy(pl);
}
END_TEST

/* Bad player options name the key. */
START_TEST(test_player_options_are_checked)
{
    static const struct {
        const char *opts, *want;
    } cases[] = {
        {"{}", "$.workload: expected one of \"clients\""},
        {"{\"clients\": 2, \"session_arrival\": {\"process\": \"poisson\", \"rate_per_s\": 1}}",
         "$.workload: expected one of \"clients\""},
        {"{\"clients\": 1, \"timing\": \"fast\"}", "$.workload.timing: expected \"think\""},
        {"{\"session_arrival\": {\"process\": \"closed_loop\", \"clients\": 2}}",
         "$.workload.session_arrival: a closed loop of sessions is \"clients\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *o = cJSON_Parse(cases[i].opts);
        sp_opts so;
        sim_err err = {{0}};
        ck_assert_int_eq(sp_opts_parse(o, "$.workload", &so, &err), -1);
        ck_assert_msg(strstr(err.msg, cases[i].want) != NULL, "case %zu: %s", i, err.msg);
        cJSON_Delete(o);
    }
}
END_TEST

/* ---- replays through the serving core ------------------------------------------------- */

/* With an unbounded cache (one instance, prefix caching, room for all) each
 * call prefills only what the trace's own cache would miss: the run's cache
 * hits equal trace stats' (KV blocks of the trace's block size). */
START_TEST(test_weka_replay_unbounded_cache_hits_equal_trace_hits)
{
    static const char *const sets[] = {
        "workload={\"source\": \"weka\", \"path\": \"" FIXTURE "\", \"clients\": 1}",
        "instance.prefix_caching=true", "instance.block_size_tokens=4",
        "policies.routing.name=session_affinity", NULL};
    tu_run r;
    tu_run_sets(sets, &r);
    const run_summary *s = &r.summary;
    ck_assert_uint_eq(r.n_records, 10);
    ck_assert_uint_eq(s->sessions.session_turns, 10);
    ck_assert_uint_eq(s->sessions.sessions_completed, 5);   /* 3 sessions, 2 subagents */
    ck_assert_uint_eq(s->kv_hit_tokens + s->kv_tier_hit_tokens, 52);
    ck_assert_uint_eq(s->sessions.affinity_breaks, 0);
    tu_run_fini(&r);
}
END_TEST

/* Open-loop session starts: deterministic, and every call is replayed. */
START_TEST(test_weka_replay_open_session_arrivals_deterministic)
{
    static const char *const sets[] = {
        "workload={\"source\": \"weka\", \"path\": \"" FIXTURE "\", \"session_arrival\": "
        "{\"process\": \"poisson\", \"rate_per_s\": 2}, \"timing\": \"recorded\", "
        "\"cycle\": true, \"max_sessions\": 9}",
        "instance.prefix_caching=true", NULL};
    tu_run a, b;
    tu_run_sets(sets, &a);
    tu_run_sets(sets, &b);
    ck_assert_uint_eq(a.n_records, 30);   /* three plays of the file's 10 calls */
    ck_assert_uint_eq(a.record_hash, b.record_hash);
    ck_assert_int_eq(a.time_went_back, 0);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST


/* ---- the agentic generator (inference-perf conversation_replay + subagents) ------------- */

static wl_source *agentic_source(sim_engine **eng, const char *json)
{
    *eng = sim_engine_create(3);
    wl_setup setup = {sim_rng(*eng, 1), sim_rng(*eng, 2), 1 << 20};
    cJSON *cfg = cJSON_Parse(json);
    ck_assert_ptr_nonnull(cfg);
    sim_err err = {{0}};
    wl_source *src = wl_source_create(&setup, cfg, "$.workload", &err);
    ck_assert_msg(src != NULL, "%s", err.msg);
    cJSON_Delete(cfg);
    return src;
}

/* Turn k's prompt is the system prompt and every earlier prompt and answer,
 * then its new tokens, with the same ids; a subagent's first prompt shares
 * the parent's blocks up to the spawn; the parent's next turn waits for its
 * subagents and holds their answers. */
START_TEST(test_agentic_turns_accumulate_and_subagents_share_the_parent_prefix)
{
    sim_engine *eng;
    wl_source *src = agentic_source(&eng,
        "{\"source\": \"agentic\", \"clients\": 1, \"num_conversations\": 1,"
        " \"shared_system_prompt_len\": 64, \"block_tokens\": 16,"
        " \"turns_per_conversation\": {\"type\": \"fixed\", \"mean\": 3},"
        " \"input_tokens_per_turn\": {\"type\": \"fixed\", \"mean\": 100},"
        " \"output_tokens_per_turn\": {\"type\": \"fixed\", \"mean\": 20},"
        " \"tool_call_latency_sec\": {\"type\": \"fixed\", \"mean\": 2},"
        " \"subagents\": {\"probability\": 1, \"count\": {\"type\": \"fixed\", \"mean\": 2},"
        "   \"turns\": {\"type\": \"fixed\", \"mean\": 1},"
        "   \"task_tokens\": {\"type\": \"fixed\", \"mean\": 30},"
        "   \"output_tokens_per_turn\": {\"type\": \"fixed\", \"mean\": 7}}}");
    sim_err err = {{0}};
    wl_request w;
    uint64_t parent_ids[64];
    ck_assert_int_eq(wl_source_next(src, 0, &w, &err), WL_REQUEST);
    ck_assert_int_eq(w.input_tokens, 64 + 100);
    ck_assert_int_eq(w.prefix_id_tokens, 64 + 100 + 20);   /* ids cover the answer */
    uint64_t parent = w.session_id;
    memcpy(parent_ids, w.prefix_blocks, (size_t)w.n_prefix_blocks * sizeof *parent_ids);
    ck_assert_int_eq(wl_source_complete_session(src, 10, parent), 1);
    for (int c = 0; c < 2; c++) {   /* subagents start when the turn finished */
        ck_assert_int_eq(wl_source_next(src, 10, &w, &err), WL_REQUEST);
        ck_assert_uint_ne(w.session_id, parent);
        ck_assert_int_eq(w.input_tokens, 184 + 30);
        for (int j = 0; j < 184 / 16; j++)
            ck_assert_uint_eq(w.prefix_blocks[j], parent_ids[j]);
        ck_assert_uint_ne(w.prefix_blocks[184 / 16], parent_ids[184 / 16]);
        ck_assert_int_eq(w.session_last, 1);
        ck_assert_int_eq(wl_source_complete_session(src, 20 + c, w.session_id), 1);
    }
    ck_assert_int_eq(wl_source_next(src, 21, &w, &err), WL_WAIT);
    ck_assert_int_eq(w.arrival_ns, 21 + 2 * SIM_NS_PER_S);   /* the tool latency */
    ck_assert_int_eq(wl_source_next(src, w.arrival_ns, &w, &err), WL_REQUEST);
    ck_assert_uint_eq(w.session_id, parent);
    ck_assert_int_eq(w.turn, 1);
    ck_assert_int_eq(w.input_tokens, 184 + 100 + 2 * 7);   /* + the subagents' answers */
    for (int j = 0; j < 184 / 16; j++)
        ck_assert_uint_eq(w.prefix_blocks[j], parent_ids[j]);
    wl_source_destroy(src);
    sim_engine_destroy(eng);
}
END_TEST

/* A blueprint replays the same tokens and blocks every time it is played
 * (inference-perf's recycled slots); another blueprint shares only the
 * shared system prompt. */
START_TEST(test_agentic_blueprints_replay_the_same_conversation)
{
    sim_engine *eng;
    wl_source *src = agentic_source(&eng,
        "{\"source\": \"agentic\", \"clients\": 1, \"num_conversations\": 2, \"max_sessions\": 3,"
        " \"shared_system_prompt_len\": 32, \"block_tokens\": 16,"
        " \"dynamic_system_prompt_len\": {\"type\": \"uniform\", \"min\": 10, \"max\": 900},"
        " \"turns_per_conversation\": {\"type\": \"fixed\", \"mean\": 1},"
        " \"input_tokens_per_turn\": {\"type\": \"lognormal\", \"mean\": 300, \"std_dev\": 200,"
        "   \"min\": 10, \"max\": 5000}}");
    sim_err err = {{0}};
    wl_request w[3];
    uint64_t first[3], sys0 = 0;
    sim_time_ns t = 0;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(wl_source_next(src, t, &w[i], &err), WL_REQUEST);
        first[i] = w[i].prefix_blocks[2];
        if (!i)
            sys0 = w[i].prefix_blocks[0];
        ck_assert_uint_eq(w[i].prefix_blocks[0], sys0);   /* the shared system prompt */
        t += 100;
        ck_assert_int_eq(wl_source_complete_session(src, t, w[i].session_id), 1);
    }
    ck_assert_int_eq(w[2].input_tokens, w[0].input_tokens);
    ck_assert_uint_eq(first[2], first[0]);
    ck_assert_uint_ne(first[1], first[0]);
    ck_assert_uint_ne(w[2].session_id, w[0].session_id);
    ck_assert_int_eq(wl_source_next(src, t, &w[0], &err), WL_END);
    wl_source_destroy(src);
    sim_engine_destroy(eng);
}
END_TEST

START_TEST(test_agentic_bad_keys_are_named)
{
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"{\"source\": \"agentic\", \"clients\": 1}", "$.workload.turns_per_conversation: missing"},
        {"{\"source\": \"agentic\", \"clients\": 1, \"turns_per_conversation\": {\"type\": "
         "\"skew_normal\", \"mean\": 3}, \"input_tokens_per_turn\": {\"type\": \"fixed\", "
         "\"mean\": 5}}", "$.workload.turns_per_conversation.type: expected one of: fixed"},
        {"{\"source\": \"agentic\", \"clients\": 1, \"turns_per_conversation\": {\"type\": "
         "\"uniform\", \"min\": 5, \"max\": 2}, \"input_tokens_per_turn\": {\"type\": \"fixed\", "
         "\"mean\": 5}}", "$.workload.turns_per_conversation.max: expected at least min"},
        {"{\"source\": \"agentic\", \"clients\": 1, \"turns_per_conversation\": {\"type\": "
         "\"fixed\", \"mean\": 3}, \"input_tokens_per_turn\": {\"type\": \"fixed\", \"mean\": 5},"
         " \"subagents\": {\"probability\": 2}}", "$.workload.subagents.probability"},
        {"{\"source\": \"agentic\", \"turns_per_conversation\": {\"type\": \"fixed\", \"mean\": 3},"
         " \"input_tokens_per_turn\": {\"type\": \"fixed\", \"mean\": 5}}",
         "$.workload: expected one of \"clients\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sim_engine *eng = sim_engine_create(1);
        wl_setup setup = {sim_rng(eng, 1), sim_rng(eng, 2), 8192};
        cJSON *cfg = cJSON_Parse(cases[i].json);
        sim_err err = {{0}};
        ck_assert_ptr_null(wl_source_create(&setup, cfg, "$.workload", &err));
        ck_assert_msg(strstr(err.msg, cases[i].want) != NULL, "case %zu: %s", i, err.msg);
        cJSON_Delete(cfg);
        sim_engine_destroy(eng);
    }
}
END_TEST

/* Through the core: every turn runs, the run is deterministic, and a
 * session's later turns hit their context with affinity routing. */
START_TEST(test_agentic_replay_runs_every_turn_deterministically)
{
    static const char *const sets[] = {
        "workload={\"source\": \"agentic\", \"clients\": 4, \"num_conversations\": 4,"
        " \"turns_per_conversation\": {\"type\": \"fixed\", \"mean\": 5},"
        " \"input_tokens_per_turn\": {\"type\": \"fixed\", \"mean\": 200},"
        " \"output_tokens_per_turn\": {\"type\": \"fixed\", \"mean\": 30},"
        " \"tool_call_latency_sec\": {\"type\": \"fixed\", \"mean\": 0.5},"
        " \"subagents\": {\"probability\": 0.5}}",
        "instance.prefix_caching=true", "policies.routing.name=session_affinity", NULL};
    tu_run a, b;
    tu_run_sets(sets, &a);
    tu_run_sets(sets, &b);
    ck_assert_uint_eq(a.record_hash, b.record_hash);
    ck_assert_uint_ge(a.n_records, 20);
    ck_assert_uint_eq(a.summary.sessions.session_turns, a.n_records);
    ck_assert_double_gt(a.summary.sessions.turn_hit_ratio, 0.5);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

/* ---- KV retention "offload" ---------------------------------------------------------------- */

#define OFFLOAD_WORKLOAD \
    "workload={\"source\": \"agentic\", \"clients\": 1, \"num_conversations\": 1," \
    " \"turns_per_conversation\": {\"type\": \"fixed\", \"mean\": 2}," \
    " \"input_tokens_per_turn\": {\"type\": \"fixed\", \"mean\": 1024}," \
    " \"output_tokens_per_turn\": {\"type\": \"fixed\", \"mean\": 16}," \
    " \"tool_call_latency_sec\": {\"type\": \"fixed\", \"mean\": 1}}"
#define OFFLOAD_TIER \
    "instance.kv_tiers=[{\"name\": \"dram\", \"capacity_gib\": 64, \"read_gb_per_s\": 1," \
    " \"write_gb_per_s\": 1000, \"latency_us\": 500, \"chunk_tokens\": 256}]"

/* A session's second turn: under "release" its context is still in HBM
 * (plenty of room); under "offload" it left HBM at the turn end (freed, not
 * cached there) and comes back from the host tier, the iteration waiting
 * chunks x latency + bytes / read rate. */
START_TEST(test_offload_reload_time_is_latency_plus_bytes_over_bandwidth)
{
    static const char *const rel[] = {OFFLOAD_WORKLOAD, OFFLOAD_TIER,
                                      "instance.prefix_caching=true",
                                      "instance.block_size_tokens=16",
                                      "policies.retention.name=release", NULL};
    static const char *const off[] = {OFFLOAD_WORKLOAD, OFFLOAD_TIER,
                                      "instance.prefix_caching=true",
                                      "instance.block_size_tokens=16",
                                      "policies.retention.name=offload", NULL};
    tu_run a, b;
    tu_run_sets(rel, &a);
    tu_run_sets(off, &b);
    ck_assert_uint_eq(a.n_records, 2);
    ck_assert_uint_eq(b.n_records, 2);
    /* release: the second turn hits HBM */
    ck_assert_uint_ge(a.summary.kv_hit_tokens, 1024);
    ck_assert_uint_eq(a.summary.kv_tier_hit_tokens, 0);
    ck_assert_double_eq(a.summary.kv_load_stall_s, 0);
    /* offload: nothing left in HBM, all of it from the tier */
    ck_assert_uint_eq(b.summary.kv_hit_tokens, 0);
    ck_assert_uint_eq(b.summary.kv_tier_hit_tokens, a.summary.kv_hit_tokens);
    ck_assert_uint_eq(b.summary.sessions.offloads, 1);   /* the last turn is not offloaded */
    uint64_t n = b.summary.kv_tier_hit_tokens / 16;
    ck_assert_uint_ge(b.summary.sessions.offload_blocks, n);
    double chunks = ceil((double)n * 16 / 256);
    double bytes = (double)n * 16 * 131072;   /* Llama-3-8B bf16: 128 KiB a token */
    double want = chunks * 500e-6 + bytes / 1e9;
    ck_assert_msg(fabs(b.summary.kv_load_stall_s - want) < 1e-6, "load %.9f s, want %.9f s",
                  b.summary.kv_load_stall_s, want);
    /* the reload is on the second turn's time to first token */
    ck_assert_double_gt(b.summary.ttft_s.mean - a.summary.ttft_s.mean, want / 2 * 0.99);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

START_TEST(test_offload_needs_a_tier)
{
    cJSON *root = tu_base_config();
    static const char *const sets[] = {"instance.prefix_caching=true",
                                       "policies.retention.name=offload", NULL};
    tu_set(root, sets);
    run_config cfg;
    sim_err err = {{0}};
    ck_assert_int_ne(run_config_parse(root, &cfg, &err), 0);
    ck_assert_msg(strstr(err.msg, "$.policies.retention.name: \"offload\" offloads to a lower "
                                  "KV tier") != NULL, "%s", err.msg);
}
END_TEST

/* A later turn's recomputed context: without a prefix cache all of the
 * previous prompt and answer; with one, what its blocks did not cover (the
 * answer's partial last block). Pinned GiB x s are the pinned block-seconds
 * at the block's bytes. */
START_TEST(test_session_metrics_recomputed_context_and_pinned_gib_s)
{
    static const char *const off[] = {OFFLOAD_WORKLOAD, "instance.prefix_caching=false", NULL};
    static const char *const on[] = {OFFLOAD_WORKLOAD, "instance.prefix_caching=true",
                                     "instance.block_size_tokens=16", NULL};
    static const char *const pin[] = {OFFLOAD_WORKLOAD, "instance.prefix_caching=true",
                                      "instance.block_size_tokens=16",
                                      "policies.retention.name=pin_ttl",
                                      "policies.retention.params={\"ttl_s\": 10}", NULL};
    tu_run a, b, c;
    tu_run_sets(off, &a);
    tu_run_sets(on, &b);
    tu_run_sets(pin, &c);
    ck_assert_uint_eq(a.summary.sessions.session_turns, 2);
    ck_assert_uint_eq(a.summary.sessions.context_recomputed_tokens, 1024 + 16);
    ck_assert_uint_eq(b.summary.sessions.context_recomputed_tokens, 16);
    ck_assert_double_eq(b.summary.sessions.pinned_gib_s, 0);
    const sess_summary *x = &c.summary.sessions;
    ck_assert_uint_eq(x->pins, 1);
    ck_assert_uint_eq(x->pin_reuses, 1);
    ck_assert_double_gt(x->pinned_block_s, 1);   /* the 1 s gap, at least, per block */
    ck_assert_double_eq_tol(x->pinned_gib_s, x->pinned_block_s * 16 * 131072 / (1 << 30),
                            1e-9 * x->pinned_gib_s);
    tu_run_fini(&a);
    tu_run_fini(&b);
    tu_run_fini(&c);
}
END_TEST

/* session_affinity binds a session tree as one (by "tree", the default): a
 * subagent (its own session id, its root's session_root) goes where its
 * parent is bound, not to the least loaded; by "session" it does not. */
START_TEST(test_route_affinity_binds_subagents_with_their_parent)
{
    static const struct {
        const char *params;
        int32_t want;
    } cases[] = {{"{}", 1}, {"{\"by\": \"tree\"}", 1}, {"{\"by\": \"session\"}", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sim_err err = {{0}};
        const route_policy_ops *ops = route_policy_find("session_affinity", "$.r", &err);
        ck_assert_msg(ops, "%s", err.msg);
        cJSON *p = cJSON_Parse(cases[i].params);
        void *st;
        route_setup setup = {.pool = 0, .block_size_tokens = 16};
        ck_assert_int_eq(ops->init(&setup, p, "$.r.params", &st, &err), 0);
        cJSON_Delete(p);
        inst_view inst[2] = {{.state = INST_ACTIVE}, {.state = INST_ACTIVE}};
        int32_t cand[2] = {0, 1};
        route_view v = {.inst = inst, .n_instances = 2, .candidates = cand, .n_candidates = 2};
        inst[0].outstanding_tokens = 100;
        serve_req parent = {.session_id = 5, .session_root = 5};
        ck_assert_int_eq(ops->route(st, &v, &parent), 1);   /* the least loaded */
        inst[1].outstanding_tokens = 200;   /* now 1 is the busier */
        serve_req kid = {.session_id = 9, .session_root = 5};
        ck_assert_int_eq(ops->route(st, &v, &kid), cases[i].want);
        ops->destroy(st);
    }
    cJSON *p = cJSON_Parse("{\"by\": \"user\"}");
    sim_err err = {{0}};
    void *st;
    route_setup setup = {.pool = 0, .block_size_tokens = 16};
    const route_policy_ops *ops = route_policy_find("session_affinity", "$.r", &err);
    ck_assert_int_ne(ops->init(&setup, p, "$.r.params", &st, &err), 0);
    ck_assert(strstr(err.msg, "$.r.params.by: expected \"tree\" or \"session\"") != NULL);
    cJSON_Delete(p);
}
END_TEST

static int weka_fn(void *ctx, sp_program *p, sim_err *err) { return weka_next(ctx, p, err); }

/* warm_prefix: the first fraction x (tool + system tokens) of every session
 * is one prefix common to all sessions; the rest stays per session. */
START_TEST(test_weka_warm_prefix_is_shared_by_every_session)
{
    char *dir = tu_tempdir();
    const char *line = "{\"block_size\":4,\"tool_tokens\":6,\"system_tokens\":3,\"requests\":["
                       "{\"t\":0,\"in\":16,\"out\":1,\"hash_ids\":[1,2,3,4]},"
                       "{\"t\":1,\"in\":20,\"out\":1,\"hash_ids\":[1,2,3,4,5]}]}\n";
    char text[1024];
    snprintf(text, sizeof text, "%s%s", line, line);
    char *path = write_temp(dir, "two.jsonl", text);
    sim_err err = {{0}};
    weka_reader *r = weka_open(path, false, false, &err);
    ck_assert_ptr_nonnull(r);
    weka_set_warm_prefix(r, 0.5);   /* 0.5 x 9 tokens: 1 whole block */
    cJSON *o = cJSON_Parse("{\"clients\": 2}");
    sp_opts so;
    ck_assert_int_eq(sp_opts_parse(o, "$.workload", &so, &err), 0);
    cJSON_Delete(o);
    sp_player *pl = sp_player_create(&so, NULL, weka_fn, r);
    wl_request a, b;
    ck_assert_int_eq(sp_player_next(pl, 0, &a, &err), WL_REQUEST);
    uint64_t a0 = a.prefix_blocks[0], a1 = a.prefix_blocks[1];
    ck_assert_int_eq(sp_player_next(pl, 0, &b, &err), WL_REQUEST);
    ck_assert_uint_eq(b.prefix_blocks[0], a0);   /* the warm block: shared */
    ck_assert_uint_eq(a0, SP_SHARED_ID);
    ck_assert_uint_ne(b.prefix_blocks[1], a1);   /* the session's own */
    ck_assert_int_eq(sp_player_complete(pl, 10, a.session_id), 1);
    ck_assert_int_eq(sp_player_next(pl, 10 + SIM_NS_PER_S, &a, &err), WL_REQUEST);   /* a's turn 1, its 1 s gap after */
    ck_assert_uint_eq(a.prefix_blocks[0], SP_SHARED_ID);
    ck_assert_uint_eq(a.prefix_blocks[1], a1);
    sp_player_destroy(pl);
    weka_close(r);
    free(path);
    free(dir);
}
END_TEST

Suite *sessions2_suite(void)
{
    Suite *s = suite_create("sessions2");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_weka_reads_calls_gaps_and_subagent_spawns);
    tcase_add_test(tc, test_weka_output_ids_cover_the_answer_the_next_call_holds);
    tcase_add_test(tc, test_weka_stats_count_unbounded_cache_hits_per_session);
    tcase_add_test(tc, test_weka_bad_input_names_file_line_and_field);
    tcase_add_test(tc, test_weka_folder_is_read_in_name_order);
    tcase_add_test(tc, test_player_timing_think_and_recorded);
    tcase_add_test(tc, test_player_local_ids_are_per_play);
    tcase_add_test(tc, test_player_subagents_share_prefix_and_parent_waits_for_them);
    tcase_add_test(tc, test_player_options_are_checked);
    tcase_add_test(tc, test_weka_replay_unbounded_cache_hits_equal_trace_hits);
    tcase_add_test(tc, test_weka_replay_open_session_arrivals_deterministic);
    tcase_add_test(tc, test_agentic_turns_accumulate_and_subagents_share_the_parent_prefix);
    tcase_add_test(tc, test_agentic_blueprints_replay_the_same_conversation);
    tcase_add_test(tc, test_agentic_bad_keys_are_named);
    tcase_add_test(tc, test_agentic_replay_runs_every_turn_deterministically);
    tcase_add_test(tc, test_offload_reload_time_is_latency_plus_bytes_over_bandwidth);
    tcase_add_test(tc, test_offload_needs_a_tier);
    tcase_add_test(tc, test_session_metrics_recomputed_context_and_pinned_gib_s);
    tcase_add_test(tc, test_route_affinity_binds_subagents_with_their_parent);
    tcase_add_test(tc, test_weka_warm_prefix_is_shared_by_every_session);
    suite_add_tcase(s, tc);
    return s;
}
