/* Prefix caching as content (issue 16): what a hit saves, reference counts
 * under every eviction policy, each eviction policy's rule on a hand-built
 * case (api/evict.h, policies/evict_*.c), the policies against the same
 * run invariants, and an unbounded cache reaching the hit ratio `trace
 * stats` reports for a trace. */
#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policies/registry.h"
#include "serve/req.h"
#include "tests/suites.h"
#include "tests/testutil.h"
#include "traces/prefix_gen.h"

extern const evict_policy_ops evict_lru, evict_sampled;

/* ---- a harness: requests outside any instance, block size 4 ------------------- */

typedef struct harness {
    kv_cache *kv;
    req r[8];
    uint64_t ids[8][8];
} harness;

static void h_init(harness *h, int64_t blocks, const evict_policy_ops *ops)
{
    memset(h, 0, sizeof *h);
    h->kv = kv_create(blocks, 4, true, 0);
    sim_err err = {{0}};
    cJSON *params = cJSON_CreateObject();
    ck_assert_msg(kv_set_eviction(h->kv, ops, params, "$.eviction", 1, &err) == 0, "%s",
                  err.msg);
    cJSON_Delete(params);
}

static void h_fini(harness *h)
{
    for (int i = 0; i < 8; i++)
        kv_req_fini(&h->r[i].kv);
    kv_destroy(h->kv);
}

/* Request i of `input` tokens whose first n_ids x 8 tokens carry chained ids
 * base + j. */
static serve_req *h_req(harness *h, int i, int32_t input, int32_t n_ids, uint64_t base)
{
    req *q = &h->r[i];
    for (int j = 0; j < n_ids; j++)
        h->ids[i][j] = base + (uint64_t)j;
    q->pub = (serve_req){.id = (uint64_t)i, .input_tokens = input, .output_tokens = 8,
                         .state = REQ_WAITING};
    int32_t covered = n_ids * 8 < input ? n_ids * 8 : input;
    kv_req_init(&q->kv, n_ids ? h->ids[i] : NULL, covered, 8, 1000 + (uint64_t)i);
    return &q->pub;
}

/* Admits r and computes the rest of its prompt; returns the tokens computed. */
static int32_t h_prefill(harness *h, serve_req *r, sim_time_ns now)
{
    kv_req *k = &req_of(r)->kv;
    kv_admit(h->kv, r, k, now);
    r->state = REQ_RUNNING;
    int32_t todo = req_pending_tokens(r);
    kv_grow(h->kv, r, k, todo, now);
    r->computed_tokens += todo;
    kv_commit(h->kv, r, k);
    return todo;
}

START_TEST(test_prefix_cached_prefix_computes_only_the_rest)
{
    harness h;
    h_init(&h, 64, &evict_lru);
    serve_req *a = h_req(&h, 0, 40, 4, 7);   /* 32 tokens of shared ids, 8 of its own */
    ck_assert_int_eq(h_prefill(&h, a, 0), 40);
    kv_release(h.kv, a, &req_of(a)->kv, 1);
    serve_req *b = h_req(&h, 1, 44, 4, 7);   /* the same 32, then 12 of its own */
    ck_assert_int_eq(h_prefill(&h, b, 2), 12);
    ck_assert_int_eq(b->cached_tokens, 32);
    /* The whole prompt cached: one token is still computed (it samples). */
    kv_release(h.kv, b, &req_of(b)->kv, 3);
    serve_req *c = h_req(&h, 2, 32, 4, 7);
    ck_assert_int_eq(h_prefill(&h, c, 4), 4);   /* one block short: 28 hit, 4 computed */
    kv_stats s;
    kv_get_stats(h.kv, &s);
    ck_assert_int_eq(s.hit_tokens, 32 + 28);
    ck_assert_int_eq(s.lookup_tokens, 40 + 44 + 32);
    ck_assert_int_eq(s.hit_blocks, 8 + 7);
    ck_assert_int_eq(s.lookup_blocks, 10 + 11 + 8);
    h_fini(&h);
}
END_TEST

/* Under every policy: a block that a running request shares is never
 * evicted, however much the cache is asked for; freed ones are. */
START_TEST(test_prefix_shared_running_blocks_are_never_evicted)
{
    const evict_policy_ops *ops = evict_policies[_i];
    harness h;
    h_init(&h, 16, ops);
    serve_req *a = h_req(&h, 0, 33, 4, 50);   /* 9 blocks: 8 shared-id blocks, 1 own */
    h_prefill(&h, a, 0);
    serve_req *b = h_req(&h, 1, 33, 4, 50);
    h_prefill(&h, b, 1);                      /* hits a's 8 blocks, holds them too */
    ck_assert_int_eq(b->cached_tokens, 32);
    kv_release(h.kv, a, &req_of(a)->kv, 2);   /* a leaves: its 9th block is free */
    int32_t held[9];
    memcpy(held, req_of(b)->kv.table, sizeof held);
    /* Fill every free block with a stranger, twice over. */
    for (int round = 0; round < 2; round++) {
        serve_req *c = h_req(&h, 2 + round, (int32_t)kv_free_blocks_of(h.kv) * 4, 0, 0);
        h_prefill(&h, c, 3 + round);
        ck_assert_int_eq(kv_free_blocks_of(h.kv), 0);
        for (int i = 0; i < 9; i++)
            ck_assert_int_eq(req_of(b)->kv.table[i], held[i]);
        kv_release(h.kv, c, &req_of(c)->kv, 4 + round);
    }
    /* b's prefix is still cached: a newcomer finds all of it. */
    serve_req *d = h_req(&h, 5, 40, 4, 50);
    ck_assert_int_eq(kv_peek_cached_tokens(h.kv, d, &req_of(d)->kv), 32);
    kv_stats s;
    kv_get_stats(h.kv, &s);
    ck_assert_int_gt(s.evictions, 0);   /* a's own block went */
    kv_release(h.kv, b, &req_of(b)->kv, 9);
    h_fini(&h);
}
END_TEST

/* ---- each policy's rule on a hand-built view ------------------------------------ */

typedef struct hand {
    evict_block blk[8];
    evict_view view;
    void *state;
    const evict_policy_ops *ops;
} hand;

static double hand_recompute_ns(const evict_view *v, int32_t depth)
{
    (void)v;
    return 100.0 * (1 + depth);
}

static void hand_init(hand *h, const char *name, const char *params_json)
{
    memset(h, 0, sizeof *h);
    sim_err err = {{0}};
    h->ops = evict_policy_find(name, "$.eviction.name", &err);
    ck_assert_msg(h->ops, "%s", err.msg);
    cJSON *params = cJSON_Parse(params_json ? params_json : "{}");
    evict_setup setup = {.n_blocks = 8, .block_size_tokens = 16, .seed = 3};
    ck_assert_msg(h->ops->init(&setup, params, "$.eviction.params", &h->state, &err) == 0,
                  "%s", err.msg);
    cJSON_Delete(params);
    for (int b = 0; b < 8; b++)
        h->blk[b] = (evict_block){.parent = EVICT_NONE, .ref = 1};
    h->view = (evict_view){.blocks = h->blk, .n_blocks = 8, .block_size_tokens = 16,
                           .recompute_ns = hand_recompute_ns};
}

/* Block b, holding content `hash`, is freed at time t (seconds). */
static void hand_free(hand *h, int32_t b, uint64_t hash, double t_s, uint32_t hits,
                      int32_t depth)
{
    evict_block *x = &h->blk[b];
    x->hash = hash;
    x->hits = hits;
    x->depth = depth;
    x->ref = 0;
    x->last_access_ns = (sim_time_ns)(t_s * 1e9);
    h->view.now = x->last_access_ns;
    h->ops->insert(h->state, &h->view, b);
}

static int32_t hand_victim(hand *h)
{
    int32_t b = h->ops->victim(h->state, &h->view);
    h->blk[b].ref = 1;
    return b;
}

static void hand_fini(hand *h)
{
    if (h->ops->destroy)
        h->ops->destroy(h->state);
}

START_TEST(test_evict_lru_takes_the_least_recently_freed_cached_or_not)
{
    hand h;
    hand_init(&h, "lru", NULL);
    hand_free(&h, 3, 33, 1, 9, 0);   /* cached, popular, but freed first */
    hand_free(&h, 5, 0, 2, 0, 0);    /* nothing cached */
    hand_free(&h, 1, 11, 3, 0, 0);
    ck_assert_int_eq(hand_victim(&h), 3);   /* vLLM: the queue's head, whatever it holds */
    ck_assert_int_eq(hand_victim(&h), 5);
    ck_assert_int_eq(hand_victim(&h), 1);
    hand_fini(&h);
}
END_TEST

START_TEST(test_evict_lfu_takes_the_fewest_hits_after_empty_blocks)
{
    hand h;
    hand_init(&h, "lfu", NULL);
    hand_free(&h, 0, 10, 1, 5, 0);
    hand_free(&h, 1, 11, 2, 1, 0);   /* fewest hits, though recent */
    hand_free(&h, 2, 12, 3, 3, 0);
    hand_free(&h, 4, 0, 4, 0, 0);    /* nothing cached: first of all */
    ck_assert_int_eq(hand_victim(&h), 4);
    ck_assert_int_eq(hand_victim(&h), 1);
    ck_assert_int_eq(hand_victim(&h), 2);
    ck_assert_int_eq(hand_victim(&h), 0);
    hand_fini(&h);
}
END_TEST

/* Block 0: 4 hits long ago; block 1: 1 hit just now. LRU's choice is 0, LFU's 1;
 * LRFU's tau moves it from one to the other. */
static int32_t lrfu_choice(const char *params)
{
    hand h;
    hand_init(&h, "lrfu", params);
    hand_free(&h, 0, 10, 1, 4, 0);
    hand_free(&h, 1, 11, 100, 1, 0);
    int32_t b = hand_victim(&h);
    hand_fini(&h);
    return b;
}

START_TEST(test_evict_lrfu_runs_from_lru_to_lfu_with_tau)
{
    ck_assert_int_eq(lrfu_choice("{\"tau_s\": 1}"), 0);       /* recency rules */
    ck_assert_int_eq(lrfu_choice("{\"tau_s\": 100000}"), 1);  /* frequency rules */
}
END_TEST

START_TEST(test_evict_gdsf_keeps_deep_blocks_and_inflates_its_clock)
{
    hand h;
    hand_init(&h, "gdsf", NULL);
    hand_free(&h, 0, 10, 1, 0, 6);   /* deep: costly to recompute */
    hand_free(&h, 1, 11, 2, 0, 0);   /* shallow, more recent */
    hand_free(&h, 2, 12, 3, 1, 1);   /* shallow-ish but hit once: 2 x 200 */
    ck_assert_int_eq(hand_victim(&h), 1);   /* H = 100 */
    ck_assert_int_eq(hand_victim(&h), 2);   /* H = 400 */
    /* The clock is now 400: a block freed now with H = 400 + 100 goes before
     * the deep one (700) but only because it is cheaper. */
    hand_free(&h, 3, 13, 4, 0, 0);
    ck_assert_int_eq(hand_victim(&h), 3);
    ck_assert_int_eq(hand_victim(&h), 0);
    hand_fini(&h);
}
END_TEST

START_TEST(test_evict_radix_leaf_takes_leaves_before_their_parents)
{
    hand h;
    hand_init(&h, "radix_leaf", NULL);
    h.blk[0].n_children = 1;         /* a parent, freed long ago */
    hand_free(&h, 0, 10, 1, 0, 0);
    h.blk[1].parent = 0;
    hand_free(&h, 1, 11, 5, 0, 1);   /* its child, a leaf */
    hand_free(&h, 2, 0, 9, 0, 0);    /* nothing cached: first */
    ck_assert_int_eq(hand_victim(&h), 2);
    ck_assert_int_eq(hand_victim(&h), 1);   /* LRU would take 0, orphaning 1 */
    h.blk[0].n_children = 0;                /* the core tells it: 0 became a leaf */
    h.ops->update(h.state, &h.view, 0);
    ck_assert_int_eq(hand_victim(&h), 0);
    hand_fini(&h);
}
END_TEST

START_TEST(test_evict_sampled_scores_lru_candidates_with_a_model_file)
{
    char path[] = "/tmp/servesim_sampled_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char *model = "{\"features\": [\"hits\", \"age_s\"], \"weights\": [1.0, -0.001], "
                        "\"bias\": 0}";
    ck_assert_int_eq(write(fd, model, strlen(model)), (ssize_t)strlen(model));
    close(fd);
    char params[256];
    snprintf(params, sizeof params, "{\"candidates\": 3, \"model\": \"%s\"}", path);
    hand h;
    hand_init(&h, "sampled", params);
    hand_free(&h, 0, 10, 1, 5, 0);
    hand_free(&h, 1, 11, 2, 2, 0);   /* fewest hits among the 3 LRU-most */
    hand_free(&h, 2, 12, 3, 4, 0);
    hand_free(&h, 3, 13, 4, 0, 0);   /* fewer still, but not a candidate */
    ck_assert_int_eq(hand_victim(&h), 1);
    ck_assert_int_eq(hand_victim(&h), 3);   /* now among the 3: 0 (5), 2 (4), 3 (0) */
    hand_fini(&h);

    /* Without a model: LRU over cached blocks, empty blocks first. */
    hand_init(&h, "sampled", NULL);
    hand_free(&h, 0, 10, 1, 5, 0);
    hand_free(&h, 1, 0, 2, 0, 0);
    ck_assert_int_eq(hand_victim(&h), 1);
    ck_assert_int_eq(hand_victim(&h), 0);
    hand_fini(&h);

    /* A bad model file names the file and what was expected. */
    fd = open(path, O_WRONLY | O_TRUNC);
    ck_assert_int_ge(fd, 0);
    const char *bad = "{\"features\": [\"colour\"], \"weights\": [1], \"bias\": 0}";
    ck_assert_int_eq(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    sim_err err = {{0}};
    cJSON *p = cJSON_Parse(params);
    void *st = NULL;
    evict_setup setup = {.n_blocks = 8, .block_size_tokens = 16};
    ck_assert_int_eq(evict_sampled.init(&setup, p, "$.eviction.params", &st, &err), -1);
    ck_assert_msg(strstr(err.msg, path) && strstr(err.msg, "age_s"), "%s", err.msg);
    cJSON_Delete(p);
    unlink(path);
}
END_TEST

/* The core's built-in queue (a ring, with private blocks registered when
 * freed) against policies/evict_lru called as an ordinary policy (a linked
 * list, every block registered as it fills): the same random run of
 * admissions, growth, preemptions and completions on a small cache must
 * give the same block tables and statistics at every step. */
static uint64_t lru_run_digest(const evict_policy_ops *ops)
{
    enum { SLOTS = 6 };
    kv_cache *kv = kv_create(24, 4, true, 0);
    sim_err err = {{0}};
    cJSON *params = cJSON_CreateObject();
    ck_assert_msg(kv_set_eviction(kv, ops, params, "$.eviction", 1, &err) == 0, "%s", err.msg);
    cJSON_Delete(params);
    req q[SLOTS];
    uint64_t ids[SLOTS][8];
    memset(q, 0, sizeof q);
    uint64_t rng = 88172645463325252u, digest = 1469598103934665603u;
    int32_t next_id = 0;
#define RND() (rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17, rng)
#define MIX(v) (digest = (digest ^ (uint64_t)(v)) * 1099511628211u)
    for (int step = 0; step < 4000; step++) {
        sim_time_ns now = step;
        req *x = &q[RND() % SLOTS];
        serve_req *r = &x->pub;
        if (r->state == REQ_RUNNING) {
            uint64_t what = RND() % 10;
            if (what < 7) {   /* decode or a prefill chunk */
                int32_t t = 1 + (int32_t)(RND() % 6);
                if (kv_blocks_for(kv, r->computed_tokens + t) - r->kv_blocks >
                    kv_free_blocks_of(kv))
                    continue;
                kv_grow(kv, r, &x->kv, t, now);
                r->computed_tokens += t;
                r->input_tokens += t;   /* keeps the sequence covering what is computed */
                kv_commit(kv, r, &x->kv);
            } else if (what < 9) {   /* finished */
                r->state = REQ_FINISHED;
                kv_release(kv, r, &x->kv, now);
            } else {   /* preempted: recomputed later, finding its own blocks */
                kv_release(kv, r, &x->kv, now);
                r->computed_tokens = 0;
                r->state = REQ_WAITING;
            }
        } else {
            if (r->state != REQ_WAITING || r->input_tokens == 0) {   /* a new request */
                int32_t n_ids = (int32_t)(RND() % 5), input = 4 + (int32_t)(RND() % 36);
                uint64_t base = 100 * (RND() % 3);
                for (int j = 0; j < n_ids; j++)
                    ids[x - q][j] = base + (uint64_t)j;
                kv_req_fini(&x->kv);
                *r = (serve_req){.id = (uint64_t)next_id++, .input_tokens = input,
                                 .output_tokens = 1000, .state = REQ_WAITING};
                int32_t covered = n_ids * 8 < input ? n_ids * 8 : input;
                kv_req_init(&x->kv, n_ids ? ids[x - q] : NULL, covered, 8, 5000 + r->id);
            }
            batch_kv *led = kv_ledger_begin(kv);
            int64_t need = led->ops->need(led, r, req_pending_tokens(r) -
                                                  led->ops->cached_tokens(led, r));
            if (need > led->free_blocks)
                continue;
            kv_admit(kv, r, &x->kv, now);
            r->state = REQ_RUNNING;
            int32_t todo = req_pending_tokens(r);
            kv_grow(kv, r, &x->kv, todo, now);
            r->computed_tokens += todo;
            kv_commit(kv, r, &x->kv);
        }
        for (int i = 0; i < SLOTS; i++)
            for (int32_t b = 0; q[i].pub.state == REQ_RUNNING && b < q[i].pub.kv_blocks; b++)
                MIX(q[i].kv.table[b]);
        kv_stats s;
        kv_get_stats(kv, &s);
        MIX(s.evictions);
        MIX(s.hit_tokens);
        MIX(s.cached_blocks);
        MIX(s.used_blocks);
    }
#undef RND
#undef MIX
    kv_stats s;
    kv_get_stats(kv, &s);
    ck_assert_uint_gt(s.evictions, 100);   /* the run did exercise eviction */
    ck_assert_uint_gt(s.hit_tokens, 100);  /* and hits */
    for (int i = 0; i < SLOTS; i++)
        kv_req_fini(&q[i].kv);
    kv_destroy(kv);
    return digest;
}

START_TEST(test_evict_lru_builtin_queue_matches_the_policy)
{
    ck_assert(evict_lru.builtin);
    evict_policy_ops as_policy = evict_lru;
    as_policy.builtin = false;
    ck_assert_uint_eq(lru_run_digest(&evict_lru), lru_run_digest(&as_policy));
}
END_TEST

START_TEST(test_evict_unknown_policy_lists_the_names)
{
    sim_err err = {{0}};
    ck_assert_ptr_null(evict_policy_find("clock", "$.policies.eviction.name", &err));
    ck_assert_msg(strstr(err.msg, "$.policies.eviction.name") && strstr(err.msg, "gdsf") &&
                  strstr(err.msg, "radix_leaf"), "%s", err.msg);
    cJSON *root = tu_base_config();
    const char *const sets[] = {"policies.eviction={\"name\": \"lfu\", \"params\": "
                                "{\"tau_s\": 3}}", NULL};
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    cluster_hooks hooks = {0};
    ck_assert_ptr_null(cluster_create(&cfg.sys, &hooks, &err));
    ck_assert_msg(strstr(err.msg, "tau_s") && strstr(err.msg, "eviction"), "%s", err.msg);
    run_config_fini(&cfg);
}
END_TEST

/* ---- whole runs ---------------------------------------------------------------- */

/* Every policy on the prefix trace under KV pressure: every request
 * completes, KV never over capacity, runs deterministic; and the default
 * (lru) is the run without a policy's help, bit for bit. */
START_TEST(test_evict_every_policy_keeps_the_run_invariants)
{
    const evict_policy_ops *ops = evict_policies[_i];
    char name[96];
    snprintf(name, sizeof name, "policies.eviction.name=\"%s\"", ops->name);
    const char *const sets[] = {
        "instance.prefix_caching=true", "instance.gpu_memory_utilization=0.245",
        "instance.max_context_tokens=4096",
        "workload={\"source\": \"native\", \"path\": \"tests/data/prefix_trace.csv\", "
        "\"rate_scale\": 6}", name, NULL};
    tu_run a, b;
    tu_run_sets(sets, &a);
    tu_run_sets(sets, &b);
    ck_assert_int_eq(a.n_records, 200);
    ck_assert_int_eq(a.kv_over_capacity, 0);
    ck_assert_int_eq(a.record_hash, b.record_hash);
    ck_assert_int_gt(a.summary.kv_hit_tokens, 0);
    ck_assert_int_le(a.summary.kv_hit_tokens, a.summary.kv_lookup_tokens);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

/* The trace's own hit ratio, as `servesim trace stats` prints it. */
static double stats_hit_percent(const char *trace)
{
    tu_cli_call call = {{"servesim", "trace", "stats", trace, NULL}};
    char out[4096];
    ck_assert_int_eq(tu_capture(STDOUT_FILENO, tu_call_cli, &call, out, sizeof out), 0);
    const char *p = strstr(out, "prefix hits");
    ck_assert_msg(p, "%s", out);
    double pct = -1;
    ck_assert_int_eq(sscanf(p, "prefix hits %lf%%", &pct), 1);
    return pct;
}

START_TEST(test_prefix_unbounded_cache_reaches_the_trace_stats_hit_ratio)
{
    /* One request at a time (every prefix is cached before the next
     * arrives), a cache far larger than the trace. */
    const char *const sets[] = {
        "instance.prefix_caching=true", "gpu=\"B200-180GB\"",
        "workload={\"source\": \"native\", \"path\": \"tests/data/prefix_trace.csv\", "
        "\"arrival\": {\"process\": \"poisson\", \"rate_per_s\": 0.05}}", NULL};
    tu_run r;
    tu_run_sets(sets, &r);
    ck_assert_int_eq(r.n_records, 200);
    ck_assert_int_eq(r.summary.kv_evictions, 0);
    double sim_pct = 100.0 * (double)r.summary.kv_hit_tokens / (double)r.summary.kv_lookup_tokens;
    double stats_pct = stats_hit_percent("tests/data/prefix_trace.csv");
    ck_assert_double_gt(stats_pct, 10);
    ck_assert_msg(fabs(sim_pct - stats_pct) <= 0.051, "simulated %.3f%%, trace stats %.1f%%",
                  sim_pct, stats_pct);
    tu_run_fini(&r);
}
END_TEST


/* ---- generators with prefix identity (traces/prefix_gen.c) ---------------------- */

static prefix_gen *gen_make(const char *json, gsl_rng **rng, const len_dist *input)
{
    *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(*rng, 5);
    cJSON *o = cJSON_Parse(json);
    ck_assert_ptr_nonnull(o);
    prefix_gen *g;
    sim_err err = {{0}};
    ck_assert_msg(prefix_gen_create(o, "$.workload.prefix", input, 100000, *rng, &g, &err) == 0,
                  "%s", err.msg);
    cJSON_Delete(o);
    return g;
}

START_TEST(test_prefix_gen_multiturn_turns_extend_the_previous_context)
{
    gsl_rng *rng;
    prefix_gen *g = gen_make("{\"kind\": \"multiturn\", \"turns\": 1000000, "
                             "\"sessions\": 1}", &rng, NULL);
    uint64_t prev[4096];
    int32_t prev_n = 0, prev_ctx = 0;
    for (int i = 0; i < 20; i++) {
        wl_request w = {.input_tokens = 100 + i, .output_tokens = 37};
        prefix_gen_next(g, &w, rng);
        ck_assert_int_eq(w.prefix_block_tokens, 16);
        ck_assert_int_eq(w.input_tokens, prev_ctx + 100 + i);   /* context, then the new turn */
        ck_assert_int_eq(w.prefix_id_tokens, w.input_tokens + 37);   /* and its answer */
        ck_assert_int_eq(w.n_prefix_blocks, (w.prefix_id_tokens + 15) / 16);
        for (int32_t j = 0; j < prev_ctx / 16; j++)   /* the context's whole blocks */
            ck_assert_uint_eq(w.prefix_blocks[j], prev[j]);
        if (i > 0 && prev_ctx % 16)   /* the block it straddles is new */
            ck_assert_uint_ne(w.prefix_blocks[prev_ctx / 16], prev[prev_ctx / 16]);
        ck_assert_int_le(w.n_prefix_blocks, 4096);
        memcpy(prev, w.prefix_blocks, (size_t)w.n_prefix_blocks * sizeof *prev);
        prev_n = w.n_prefix_blocks;
        prev_ctx = w.prefix_id_tokens;
    }
    ck_assert_int_gt(prev_n, 20 * 137 / 16 - 1);
    prefix_gen_destroy(g);
    gsl_rng_free(rng);
}
END_TEST

START_TEST(test_prefix_gen_system_prompts_and_pool_share_what_they_say)
{
    gsl_rng *rng;
    /* One system prompt of 100 tokens: 6 whole blocks shared by everyone. */
    prefix_gen *g = gen_make("{\"kind\": \"system\", \"prompts\": 1, \"tokens\": "
                             "{\"dist\": \"fixed\", \"value\": 100}}", &rng, NULL);
    uint64_t first[6], seventh = 0;
    for (int i = 0; i < 10; i++) {
        wl_request w = {.input_tokens = 50, .output_tokens = 5};
        prefix_gen_next(g, &w, rng);
        ck_assert_int_eq(w.input_tokens, 150);
        ck_assert_int_eq(w.n_prefix_blocks, 10);
        if (i == 0)
            memcpy(first, w.prefix_blocks, sizeof first);
        for (int j = 0; j < 6; j++)
            ck_assert_uint_eq(w.prefix_blocks[j], first[j]);
        ck_assert_uint_ne(w.prefix_blocks[6], seventh);   /* own tokens: fresh every time */
        seventh = w.prefix_blocks[6];
    }
    prefix_gen_destroy(g);
    gsl_rng_free(rng);

    /* A pool of 3 prompts: 200 requests repeat exactly 3 prompts, whole. */
    len_dist in = {.kind = LEN_UNIFORM, .min = 10, .max = 400};
    g = gen_make("{\"kind\": \"pool\", \"prompts\": 3}", &rng, &in);
    uint64_t seen_first[8];
    int32_t seen_len[8], n_seen = 0;
    for (int i = 0; i < 200; i++) {
        wl_request w = {.input_tokens = 1, .output_tokens = 5};
        prefix_gen_next(g, &w, rng);
        ck_assert_int_eq(w.n_prefix_blocks, (w.input_tokens + 15) / 16);
        int k = 0;
        while (k < n_seen && seen_first[k] != w.prefix_blocks[0])
            k++;
        if (k == n_seen) {
            ck_assert_int_lt(n_seen, 3);
            seen_first[n_seen] = w.prefix_blocks[0];
            seen_len[n_seen++] = w.input_tokens;
        }
        ck_assert_int_eq(w.input_tokens, seen_len[k]);
    }
    ck_assert_int_eq(n_seen, 3);
    prefix_gen_destroy(g);
    gsl_rng_free(rng);

    cJSON *o = cJSON_Parse("{\"kind\": \"chat\"}");
    prefix_gen *bad = NULL;
    sim_err err = {{0}};
    ck_assert_int_eq(prefix_gen_create(o, "$.workload.prefix", NULL, 1000, NULL, &bad, &err), -1);
    ck_assert_msg(strstr(err.msg, "$.workload.prefix.kind") && strstr(err.msg, "multiturn"),
                  "%s", err.msg);
    cJSON_Delete(o);
}
END_TEST

/* A synthetic multi-turn run: caching saves prefill and TTFT. */
START_TEST(test_prefix_multiturn_run_hits_and_is_faster_than_without_caching)
{
    const char *const on[] = {
        "instance.prefix_caching=true", "workload.requests=300",
        "workload.prefix={\"kind\": \"multiturn\", \"turns\": 6, \"sessions\": 16}",
        NULL};
    const char *const off[] = {
        "instance.prefix_caching=false", "workload.requests=300",
        "workload.prefix={\"kind\": \"multiturn\", \"turns\": 6, \"sessions\": 16}",
        NULL};
    tu_run a, b;
    tu_run_sets(on, &a);
    tu_run_sets(off, &b);
    ck_assert_int_eq(a.n_records, 300);
    ck_assert_int_eq(b.n_records, 300);
    ck_assert_int_eq(a.output_tokens, b.output_tokens);
    double hit = (double)a.summary.kv_hit_tokens / (double)a.summary.kv_lookup_tokens;
    ck_assert_msg(hit > 0.4, "hit ratio %.3f", hit);
    ck_assert_double_lt(a.summary.ttft_s.mean, b.summary.ttft_s.mean);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

/* ---- cache-aware routing on hand-built views ------------------------------------- */

typedef struct rview {
    inst_view inst[4];
    int32_t cand[4];
    int32_t cached[4];          /* tokens each instance holds of any request */
    uint64_t hashes[2][8];      /* by request id: two prompts' block hashes */
    route_view v;
} rview;

static int32_t rv_cached(const route_view *v, int32_t i, const serve_req *req)
{
    (void)req;
    return ((const rview *)v->core)->cached[i];
}

static int32_t rv_hashes(const route_view *v, const serve_req *req, int32_t block,
                         const uint64_t **out)
{
    ck_assert_int_eq(block, 16);
    *out = ((const rview *)v->core)->hashes[req->id % 2];
    return req_seq_tokens(req) / 16 < 8 ? req_seq_tokens(req) / 16 : 8;
}

static void rv_init(rview *r)
{
    memset(r, 0, sizeof *r);
    for (int i = 0; i < 4; i++) {
        r->inst[i] = (inst_view){.state = INST_ACTIVE, .kv_total_blocks = 1000,
                                 .kv_free_blocks = 1000};
        r->cand[i] = i;
    }
    for (int j = 0; j < 8; j++) {
        r->hashes[0][j] = 100 + (uint64_t)j;
        r->hashes[1][j] = 200 + (uint64_t)j;
    }
    r->v = (route_view){.inst = r->inst, .n_instances = 4, .candidates = r->cand,
                        .n_candidates = 4, .cached_tokens = rv_cached,
                        .prompt_hashes = rv_hashes, .core = r};
}

static void *route_make(const char *name, const char *params_json, const route_policy_ops **ops)
{
    sim_err err = {{0}};
    *ops = route_policy_find(name, "$.policies.routing.name", &err);
    ck_assert_msg(*ops, "%s", err.msg);
    cJSON *p = cJSON_Parse(params_json ? params_json : "{}");
    void *st = NULL;
    route_setup setup = {.pool = 0, .block_size_tokens = 16};
    ck_assert_msg((*ops)->init(&setup, p, "$.policies.routing.params", &st, &err) == 0, "%s",
                  err.msg);
    cJSON_Delete(p);
    return st;
}

START_TEST(test_route_prefix_match_precise_and_approximate)
{
    rview r;
    rv_init(&r);
    const route_policy_ops *ops;
    void *st = route_make("prefix_match", NULL, &ops);
    serve_req q = {.id = 0, .input_tokens = 128};
    r.cached[2] = 64;
    r.cached[3] = 64;
    r.inst[2].outstanding_tokens = 500;
    ck_assert_int_eq(ops->route(st, &r.v, &q), 3);   /* longest; then fewer outstanding */
    ops->destroy(st);

    /* Approximate: the instances say nothing; the router remembers where
     * each prompt went. */
    memset(r.cached, 0, sizeof r.cached);
    st = route_make("prefix_match", "{\"index\": \"approximate\"}", &ops);
    r.inst[0].outstanding_tokens = 10;   /* the first request goes to the least loaded */
    serve_req a = {.id = 0, .input_tokens = 128}, b = {.id = 1, .input_tokens = 128};
    int32_t ia = ops->route(st, &r.v, &a);
    ck_assert_int_eq(ia, 1);
    r.inst[1].outstanding_tokens = 1000;   /* busy now, but it holds a's prefix */
    serve_req a2 = {.id = 2, .input_tokens = 128};   /* even id: a's prompt */
    ck_assert_int_eq(ops->route(st, &r.v, &a2), 1);
    ck_assert_int_ne(ops->route(st, &r.v, &b), 1);   /* another prompt: elsewhere */
    ops->destroy(st);
}
END_TEST

START_TEST(test_route_prefix_dynamo_trades_overlap_against_load)
{
    rview r;
    rv_init(&r);
    const route_policy_ops *ops;
    void *st = route_make("prefix_dynamo", NULL, &ops);
    serve_req q = {.id = 0, .input_tokens = 1600};   /* 100 blocks */
    /* cost = prefill blocks + active blocks: 0 holds 80 blocks of the
     * prompt but runs 50 blocks (cost 20 + 50); 1 holds nothing, idle
     * (cost 100); 2 holds 40, idle (cost 60); 3 holds 80, runs 30 (50). */
    r.cached[0] = 1280, r.inst[0].kv_free_blocks = 950;
    r.cached[2] = 640;
    r.cached[3] = 1280, r.inst[3].kv_free_blocks = 970;
    ck_assert_int_eq(ops->route(st, &r.v, &q), 3);
    r.inst[3].kv_free_blocks = 900;   /* 20 + 100 */
    ck_assert_int_eq(ops->route(st, &r.v, &q), 2);
    ops->destroy(st);
    /* A heavier overlap weight prefers the cache. */
    st = route_make("prefix_dynamo", "{\"overlap_weight\": 4}", &ops);
    ck_assert_int_eq(ops->route(st, &r.v, &q), 0);   /* 80 + 50 against 2's 240 */
    ops->destroy(st);
}
END_TEST

START_TEST(test_route_prefix_llmd_weighs_prefix_queue_and_kv)
{
    rview r;
    rv_init(&r);
    const route_policy_ops *ops;
    void *st = route_make("prefix_llmd", NULL, &ops);
    serve_req q = {.id = 0, .input_tokens = 160};   /* 10 blocks */
    /* 0: prefix 1.0, longest queue (queue 0), KV half used: 2 + 0 + 0.5;
     * 1: no prefix, empty queue, KV free: 0 + 1 + 1. */
    r.cached[0] = 160, r.inst[0].n_waiting = 8, r.inst[0].kv_free_blocks = 500;
    r.inst[2].n_waiting = 4, r.inst[3].n_waiting = 4;
    ck_assert_int_eq(ops->route(st, &r.v, &q), 0);
    r.cached[0] = 48;   /* 0.6 + 0 + 0.5 < 2 */
    ck_assert_int_eq(ops->route(st, &r.v, &q), 1);
    ops->destroy(st);

    /* Stale loads: refreshed every 100 ms, so a burst within one refresh
     * sees the same queues and herds onto one instance. */
    st = route_make("prefix_llmd", "{\"staleness_ms\": 100, \"prefix_weight\": 0, "
                    "\"kv_weight\": 0}", &ops);
    r.v.now = 0;
    int32_t first = ops->route(st, &r.v, &q);
    ck_assert_int_eq(first, 1);
    r.inst[1].n_waiting = 50;
    r.v.now = 99 * SIM_NS_PER_MS;
    ck_assert_int_eq(ops->route(st, &r.v, &q), 1);   /* still the old view */
    r.v.now = 100 * SIM_NS_PER_MS;
    ck_assert_int_ne(ops->route(st, &r.v, &q), 1);   /* refreshed */
    ops->destroy(st);
}
END_TEST

START_TEST(test_route_prefix_sglang_balances_then_follows_its_trees)
{
    rview r;
    rv_init(&r);
    const route_policy_ops *ops;
    void *st = route_make("prefix_sglang", NULL, &ops);
    serve_req a = {.id = 0, .input_tokens = 128}, b = {.id = 1, .input_tokens = 128};
    /* Balanced, empty trees: the smallest tree (the first), then a's prompt
     * sticks to it; b's goes to another empty tree. */
    ck_assert_int_eq(ops->route(st, &r.v, &a), 0);
    ck_assert_int_eq(ops->route(st, &r.v, &a), 0);
    ck_assert_int_eq(ops->route(st, &r.v, &b), 1);
    /* Imbalanced (40 requests against 0 > 32): the least loaded instead. */
    r.inst[0].n_running = 40;
    r.inst[1].n_running = 40;
    r.inst[2].n_running = 3;
    r.inst[3].n_running = 2;
    ck_assert_int_eq(ops->route(st, &r.v, &a), 3);
    r.inst[0].n_running = 30;   /* 30 - 2 <= 32: balanced again */
    r.inst[1].n_running = 30;
    ck_assert_int_eq(ops->route(st, &r.v, &a), 0);
    ops->destroy(st);
    /* Trees of equal size: the least loaded of them, not always the first
     * (once every tree is full, that would herd every new prompt there). */
    st = route_make("prefix_sglang", NULL, &ops);
    r.inst[0].n_running = 9, r.inst[1].n_running = 7, r.inst[2].n_running = 5;
    r.inst[3].n_running = 6;
    ck_assert_int_eq(ops->route(st, &r.v, &b), 2);
    ops->destroy(st);
}
END_TEST

/* Every routing policy on a two-instance prefix run: every request
 * completes, deterministic. */
START_TEST(test_route_prefix_policies_complete_every_request)
{
    static const char *const names[] = {"prefix_match", "prefix_dynamo", "prefix_llmd",
                                        "prefix_sglang"};
    char set[96];
    snprintf(set, sizeof set, "policies.routing.name=\"%s\"", names[_i]);
    const char *const sets[] = {
        "instance.prefix_caching=true", "cluster.instances=2", set,
        "workload={\"source\": \"native\", \"path\": \"tests/data/prefix_trace.csv\"}",
        NULL};
    tu_run a, b;
    tu_run_sets(sets, &a);
    tu_run_sets(sets, &b);
    ck_assert_int_eq(a.n_records, 200);
    ck_assert_int_eq(a.record_hash, b.record_hash);
    ck_assert_int_gt(a.summary.kv_hit_tokens, 0);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

/* ---- lower KV tiers ---------------------------------------------------------------- */

/* A's 4096-token prompt is cached, pushed out of HBM by two long strangers
 * (it stays in DRAM, written through), then B repeats it: B loads 255
 * blocks from DRAM, and its iteration waits n_chunks x latency + bytes /
 * rate for them. */
static void tier_run(const char *tier_json, const char *load, tu_run *r)
{
    static char dir_trace[256];
    char *dir = tu_tempdir();
    snprintf(dir_trace, sizeof dir_trace, "%s/tier.csv", dir);
    free(dir);
    FILE *f = fopen(dir_trace, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "arrival_s,input_tokens,output_tokens,prefix_block_tokens,prefix_blocks\n");
    const struct { double t; int input, first_id, n_ids; } rows[] = {
        {0, 4096, 1, 64}, {10, 12000, 1001, 188}, {20, 12000, 2001, 188}, {30, 4096, 1, 64}};
    for (int i = 0; i < 4; i++) {
        fprintf(f, "%g,%d,1,64,", rows[i].t, rows[i].input);
        for (int j = 0; j < rows[i].n_ids; j++)
            fprintf(f, "%s%d", j ? " " : "", rows[i].first_id + j);
        fprintf(f, "\n");
    }
    fclose(f);
    char wl[512], tiers[256], kvload[64];
    snprintf(wl, sizeof wl, "workload={\"source\": \"native\", \"path\": \"%s\"}", dir_trace);
    snprintf(tiers, sizeof tiers, "instance.kv_tiers=[%s]", tier_json);
    snprintf(kvload, sizeof kvload, "instance.kv_load=\"%s\"", load);
    const char *const sets[] = {"model=\"Llama-3.1-8B\"", "instance.gpu_memory_utilization=0.245",
                                "instance.max_context_tokens=16384",
                                "instance.prefix_caching=true", "cost.model=\"roofline\"",
                                tiers, kvload, wl, NULL};
    tu_run_sets(sets, r);
    unlink(dir_trace);
}

START_TEST(test_tier_load_takes_latency_plus_bytes_over_bandwidth)
{
    tu_run r;
    tier_run("{\"name\": \"dram\", \"capacity_gib\": 64, \"read_gb_per_s\": 10, "
             "\"latency_us\": 100, \"chunk_tokens\": 256}", "blocking", &r);
    ck_assert_int_eq(r.n_records, 4);
    ck_assert_int_eq(r.summary.kv_hit_tokens, 0);            /* HBM lost A's blocks */
    ck_assert_int_eq(r.summary.kv_tier_hit_tokens, 255 * 16); /* DRAM had them */
    double block_bytes = 16 * 131072.0;   /* Llama-3.1-8B: 128 KiB a token */
    double bytes = 255 * block_bytes;
    ck_assert_double_eq_tol(r.summary.kv_tier_load_bytes, bytes, 1e-3);
    /* 4080 tokens in 256-token chunks: 16 chunks of 100 us, then the bytes
     * at 10 GB/s (the bottleneck of DRAM and PCIe's 64 GB/s). */
    double expect_s = 16 * 100e-6 + bytes / 10e9;
    ck_assert_msg(fabs(r.summary.kv_load_stall_s - expect_s) < 2e-9, "stall %.9f s, expected %.9f",
                  r.summary.kv_load_stall_s, expect_s);
    /* Everything cached was written through once. */
    ck_assert_double_gt(r.summary.kv_tier_write_bytes, (256 + 749) * block_bytes);
    tu_run_fini(&r);

    /* Cost-aware: at 1 MB/s the load would take minutes; B computes instead. */
    tier_run("{\"name\": \"dram\", \"capacity_gib\": 64, \"read_gb_per_s\": 0.001}",
             "cost_aware", &r);
    ck_assert_int_eq(r.n_records, 4);
    ck_assert_int_eq(r.summary.kv_tier_hit_tokens, 0);
    ck_assert_double_eq(r.summary.kv_load_stall_s, 0);
    tu_run_fini(&r);
    /* ... and blocking loads it anyway, waiting. */
    tier_run("{\"name\": \"dram\", \"capacity_gib\": 64, \"read_gb_per_s\": 0.001}",
             "blocking", &r);
    ck_assert_int_eq(r.summary.kv_tier_hit_tokens, 255 * 16);
    ck_assert_double_gt(r.summary.kv_load_stall_s, 500);
    tu_run_fini(&r);
}
END_TEST

START_TEST(test_tier_config_errors_name_the_path)
{
    static const char *const bad[][2] = {
        {"instance.kv_tiers=[{\"name\": \"tape\", \"capacity_gib\": 1}]", "$.instance.kv_tiers[0].name"},
        {"instance.kv_tiers=[{\"name\": \"dram\"}]", "$.instance.kv_tiers[0].capacity_gib"},
        {"instance.kv_tiers={\"name\": \"dram\"}", "expected a list"},
        {"instance.kv_load=\"lazy\"", "cost_aware"},
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

/* ---- token-level KV compression ------------------------------------------------- */

START_TEST(test_kv_budget_shrinks_blocks_and_decode_attention)
{
    kv_cache *kv = kv_create(1000, 4, false, 0);
    kv_set_budget(kv, 100, 0);   /* sink + window: 100 tokens */
    req q = {0};
    q.pub = (serve_req){.input_tokens = 1000, .output_tokens = 8, .state = REQ_RUNNING};
    serve_req *r = &q.pub;
    kv_grow(kv, r, &q.kv, 1000, 0);
    ck_assert_int_eq(r->kv_blocks, 25);          /* 100 tokens, not 1000 */
    ck_assert_int_eq(kv_attended_tokens(kv, 1000), 100);
    ck_assert_int_eq(kv_attended_tokens(kv, 60), 60);
    ck_assert_int_ge(r->kv_cap_tokens, 1 << 30);   /* the window never grows */
    r->computed_tokens = 1000;
    kv_grow(kv, r, &q.kv, 5000, 1);
    ck_assert_int_eq(kv_used_blocks(kv), 25);
    kv_release(kv, r, &q.kv, 2);
    kv_destroy(kv);

    kv = kv_create(1000, 4, false, 0);
    kv_set_budget(kv, 8, 0.25);   /* a quarter of the sequence, at least 8 */
    q.pub = (serve_req){.input_tokens = 1000, .output_tokens = 8, .state = REQ_RUNNING};
    kv_grow(kv, r, &q.kv, 1000, 0);
    ck_assert_int_eq(r->kv_blocks, 63);   /* ceil(250 / 4) */
    ck_assert_int_eq(r->kv_cap_tokens, 1008);   /* 252 kept of 1008 */
    ck_assert_int_eq(kv_blocks_for(kv, 1008), 63);
    ck_assert_int_eq(kv_blocks_for(kv, 1009), 64);
    ck_assert_int_eq(kv_attended_tokens(kv, 20), 8);
    kv_release(kv, r, &q.kv, 1);
    kv_destroy(kv);
    kv_req_fini(&q.kv);

    /* A whole run: the same work with fewer bytes of decode attention. */
    const char *const base[] = {"instance.prefix_caching=false", "workload.requests=150", NULL};
    const char *const comp[] = {"instance.prefix_caching=false", "workload.requests=150",
                                "instance.kv_budget={\"window_tokens\": 252}", NULL};
    tu_run a, b;
    tu_run_sets(base, &a);
    tu_run_sets(comp, &b);
    ck_assert_int_eq(b.n_records, 150);
    ck_assert_int_eq(a.output_tokens, b.output_tokens);
    ck_assert_int_eq(b.kv_over_capacity, 0);
    ck_assert_double_lt(b.summary.kv_bytes, a.summary.kv_bytes);
    ck_assert_double_lt(b.summary.kv_peak_fraction, a.summary.kv_peak_fraction);
    tu_run_fini(&a);
    tu_run_fini(&b);

    cJSON *root = tu_base_config();
    const char *const sets[] = {"instance.prefix_caching=true", "instance.kv_budget={}", NULL};
    tu_set(root, sets);
    run_config cfg;
    sim_err err = {{0}};
    ck_assert_int_eq(run_config_parse(root, &cfg, &err), -1);
    ck_assert_msg(strstr(err.msg, "$.instance.kv_budget") && strstr(err.msg, "prefix_caching"),
                  "%s", err.msg);
}
END_TEST

/* ---- BatchLLM's prefix grouping -------------------------------------------------- */

START_TEST(test_order_prefix_group_runs_a_group_back_to_back)
{
    sim_err err = {{0}};
    const order_policy_ops *ops = order_policy_find("prefix_group", "$.policies.order.name", &err);
    ck_assert_msg(ops, "%s", err.msg);
    cJSON *p = cJSON_Parse("{\"group_tokens\": 128, \"window_s\": 10}");
    void *st;
    ck_assert_int_eq(ops->init(1, p, "$.policies.order.params", &st, &err), 0);
    cJSON_Delete(p);
    static const uint64_t x[] = {7, 8, 9}, x2[] = {7, 8, 10}, y[] = {7, 11, 12};
    /* 64-token ids: the group is the id holding token 127, the second. */
    serve_req a = {.arrival_ns = 1000, .prefix_ids = x, .n_prefix_ids = 3,
                   .prefix_id_block_tokens = 64};
    serve_req b = {.arrival_ns = 2000, .prefix_ids = y, .n_prefix_ids = 3,
                   .prefix_id_block_tokens = 64};
    serve_req c = {.arrival_ns = 3000, .prefix_ids = x2, .n_prefix_ids = 3,
                   .prefix_id_block_tokens = 64};
    serve_req d = {.arrival_ns = 4000, .prefix_ids = x, .n_prefix_ids = 1,
                   .prefix_id_block_tokens = 64};   /* too short to group */
    serve_req e = {.arrival_ns = 20 * SIM_NS_PER_S, .prefix_ids = x, .n_prefix_ids = 3,
                   .prefix_id_block_tokens = 64};   /* after the window */
    ck_assert_double_eq(ops->key(st, &a), 1000);
    ck_assert_double_eq(ops->key(st, &b), 2000);
    ck_assert_double_eq(ops->key(st, &c), 1000);   /* joins a's group, ahead of b */
    ck_assert_double_eq(ops->key(st, &d), 4000);
    ck_assert_double_eq(ops->key(st, &e), (double)(20 * SIM_NS_PER_S));
    ops->destroy(st);

    const char *const sets[] = {
        "instance.prefix_caching=true", "policies.order.name=\"prefix_group\"",
        "instance.gpu_memory_utilization=0.245", "instance.max_context_tokens=4096",
        "workload={\"source\": \"native\", \"path\": \"tests/data/prefix_trace.csv\", "
        "\"rate_scale\": 6}", NULL};
    tu_run r;
    tu_run_sets(sets, &r);
    ck_assert_int_eq(r.n_records, 200);
    ck_assert_int_eq(r.kv_over_capacity, 0);
    tu_run_fini(&r);
}
END_TEST

Suite *prefix_cache_suite(void)
{
    Suite *s = suite_create("prefix_cache");
    TCase *t = tcase_create("core");
    tcase_set_timeout(t, 120);
    int n = 0;
    while (evict_policies[n])
        n++;
    tcase_add_test(t, test_prefix_cached_prefix_computes_only_the_rest);
    tcase_add_loop_test(t, test_prefix_shared_running_blocks_are_never_evicted, 0, n);
    tcase_add_test(t, test_evict_lru_takes_the_least_recently_freed_cached_or_not);
    tcase_add_test(t, test_evict_lfu_takes_the_fewest_hits_after_empty_blocks);
    tcase_add_test(t, test_evict_lrfu_runs_from_lru_to_lfu_with_tau);
    tcase_add_test(t, test_evict_gdsf_keeps_deep_blocks_and_inflates_its_clock);
    tcase_add_test(t, test_evict_radix_leaf_takes_leaves_before_their_parents);
    tcase_add_test(t, test_evict_sampled_scores_lru_candidates_with_a_model_file);
    tcase_add_test(t, test_evict_lru_builtin_queue_matches_the_policy);
    tcase_add_test(t, test_evict_unknown_policy_lists_the_names);
    tcase_add_loop_test(t, test_evict_every_policy_keeps_the_run_invariants, 0, n);
    tcase_add_test(t, test_prefix_unbounded_cache_reaches_the_trace_stats_hit_ratio);
    tcase_add_test(t, test_prefix_gen_multiturn_turns_extend_the_previous_context);
    tcase_add_test(t, test_prefix_gen_system_prompts_and_pool_share_what_they_say);
    tcase_add_test(t, test_prefix_multiturn_run_hits_and_is_faster_than_without_caching);
    tcase_add_test(t, test_route_prefix_match_precise_and_approximate);
    tcase_add_test(t, test_route_prefix_dynamo_trades_overlap_against_load);
    tcase_add_test(t, test_route_prefix_llmd_weighs_prefix_queue_and_kv);
    tcase_add_test(t, test_route_prefix_sglang_balances_then_follows_its_trees);
    tcase_add_loop_test(t, test_route_prefix_policies_complete_every_request, 0, 4);
    tcase_add_test(t, test_tier_load_takes_latency_plus_bytes_over_bandwidth);
    tcase_add_test(t, test_tier_config_errors_name_the_path);
    tcase_add_test(t, test_kv_budget_shrinks_blocks_and_decode_attention);
    tcase_add_test(t, test_order_prefix_group_runs_a_group_back_to_back);
    suite_add_tcase(s, t);
    return s;
}
