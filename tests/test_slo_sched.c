/* SLO-aware scheduling (issue 13): layered prefill with layer-boundary
 * preemption (policies/batch_layered_preempt.c) on a hand-built case, a
 * long batch prompt (8,000 tokens, TTFT target 10 s) at t = 0 and an urgent
 * one (100 tokens, TTFT target 60 ms) at t = 10 ms (tests/data/slo_preempt.csv),
 * on Llama-3-8B (32 layers) on one H100. */
#include <string.h>

#include "serve/cluster.h"
#include "tests/suites.h"
#include "tests/testutil.h"

#define LAYERS 32

typedef struct slo_trace {
    /* Request 0 (the long prompt): iterations it ran in, layers it ran
     * through in all, whether it was ever given other than its whole
     * prompt; iterations that ran without it while it was unfinished. */
    int32_t long_iters, long_layers, long_parked, long_bad_tokens;
    int32_t long_last_done;    /* layers_done before its latest iteration */
    int long_regressed;        /* layers_done went back: recompute */
    sim_time_ns urgent_start_ns;   /* first iteration with request 1 */
    sim_time_ns iter_before_ns, iter_len_before_ns;   /* the one in flight at 10 ms */
    sim_time_ns prev_start_ns;
    int long_done;
} slo_trace;

typedef struct slo_records {
    int64_t ttft_ns[3], e2e_ns[3];
    int32_t preemptions[3];
} slo_records;

static void observe(void *ctx, const iter_info *it)
{
    slo_trace *t = ctx;
    int long_in = 0;
    for (int32_t i = 0; i < it->n_items; i++) {
        const batch_item *item = &it->items[i];
        const serve_req *r = item->req;
        if (r->id == 0 && r->generated_tokens == 0) {
            long_in = 1;
            t->long_iters++;
            t->long_layers += item->layers ? item->layers : LAYERS;
            t->long_bad_tokens += item->tokens != r->input_tokens;
            if (r->layers_done < t->long_last_done)
                t->long_regressed = 1;
            t->long_last_done = r->layers_done;
            if (r->layers_done + (item->layers ? item->layers : LAYERS) == LAYERS)
                t->long_done = 1;
        }
        if (r->id == 1 && t->urgent_start_ns < 0)
            t->urgent_start_ns = it->start_ns;
    }
    if (!long_in && !t->long_done && t->long_iters > 0)
        t->long_parked++;
    /* The iteration in flight when the urgent request arrived (10 ms). */
    if (it->start_ns <= 10000000)
        t->iter_before_ns = it->start_ns;
    else if (t->iter_len_before_ns == 0)
        t->iter_len_before_ns = it->start_ns - t->iter_before_ns;
    t->prev_start_ns = it->start_ns;
}

static int record(void *ctx, const req_record *rec)
{
    slo_records *s = ctx;
    if (rec->id < 3) {
        s->ttft_ns[rec->id] = rec->ttft_ns;
        s->e2e_ns[rec->id] = rec->e2e_ns;
        s->preemptions[rec->id] = rec->preemptions;
    }
    return 0;
}

static const char *hand_trace = "tests/data/slo_preempt.csv";

static void run_hand_on(const char *engine, const char *batch, const char *params,
                        slo_trace *t, slo_records *recs, run_summary *sum)
{
    char set_batch[128], set_params[256], set_engine[128], set_trace[256];
    snprintf(set_trace, sizeof set_trace,
             "workload={\"source\": \"native\", \"path\": \"%s\"}", hand_trace);
    snprintf(set_engine, sizeof set_engine, "engine.name=\"%s\"", engine);
    snprintf(set_batch, sizeof set_batch, "policies.batch.name=\"%s\"", batch);
    snprintf(set_params, sizeof set_params, "policies.batch.params=%s", params);
    const char *const sets[] = {
        set_trace, "instance.max_context_tokens=8192", set_batch, set_params, set_engine, NULL};
    memset(t, 0, sizeof *t);
    t->urgent_start_ns = -1;
    memset(recs, 0, sizeof *recs);
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    sim_err err = {{0}};
    cluster_hooks hooks = {.on_record = record, .record_ctx = recs,
                           .on_iteration = observe, .iteration_ctx = t};
    cluster *c = cluster_create(&cfg.sys, &hooks, &err);
    ck_assert_msg(c, "%s", err.msg);
    ck_assert_int_eq(cluster_run(c, &err), 0);
    cluster_summarize(c, sum);
    cluster_destroy(c);
    run_config_fini(&cfg);
}

static void run_hand(const char *batch, const char *params, slo_trace *t, slo_records *recs,
                     run_summary *sum)
{
    run_hand_on("vllm-v1", batch, params, t, recs, sum);
}

START_TEST(test_urgent_request_preempts_long_prefill_at_a_layer_boundary)
{
    /* The urgent cohort runs whole (the default) or one group at a time. */
    const char *params = _i ? "{\"groups\": 32, \"urgent_whole\": false}" : "{\"groups\": 32}";
    slo_trace t;
    slo_records recs;
    run_summary s;
    run_hand("layered_preempt", params, &t, &recs, &s);
    ck_assert_uint_eq(s.completed, 2);
    /* vLLM V1 plans one iteration ahead (overlap): an arrival is seen by
     * the plan after the next boundary, so the urgent request starts within
     * two iterations (layers of the long prompt) of arriving. */
    ck_assert_int_ge(t.urgent_start_ns, 10000000);
    ck_assert_int_gt(t.iter_len_before_ns, 0);
    ck_assert_int_le(t.urgent_start_ns - 10000000, 2 * t.iter_len_before_ns);
    ck_assert_msg(recs.ttft_ns[1] <= 60000000, "urgent TTFT %lld ns",
                  (long long)recs.ttft_ns[1]);
    /* The long prompt was parked while the urgent one ran, then resumed
     * where it stopped: exactly its 32 layers, its whole prompt each time,
     * progress never going back, no KV preemption. */
    ck_assert_int_gt(t.long_parked, 0);
    ck_assert_int_eq(t.long_layers, LAYERS);
    ck_assert_int_eq(t.long_iters, LAYERS);
    ck_assert_int_eq(t.long_bad_tokens, 0);
    ck_assert(!t.long_regressed);
    ck_assert_uint_eq(s.preemptions, 0);
    ck_assert_int_eq(recs.preemptions[0], 0);
    ck_assert(recs.ttft_ns[0] <= 10000000000LL);
}
END_TEST

START_TEST(test_without_overlap_the_urgent_request_starts_within_one_layer)
{
    /* An engine that plans at each boundary (legacy: no overlap): the
     * urgent request starts at the first layer boundary after it arrives. */
    slo_trace t;
    slo_records recs;
    run_summary s;
    run_hand_on("legacy", "layered_preempt", "{\"groups\": 32}", &t, &recs, &s);
    ck_assert_uint_eq(s.completed, 2);
    ck_assert_int_ge(t.urgent_start_ns, 10000000);
    ck_assert_int_gt(t.iter_len_before_ns, 0);
    ck_assert_int_le(t.urgent_start_ns - 10000000, t.iter_len_before_ns);
    ck_assert_int_eq(t.long_layers, LAYERS);
    ck_assert(!t.long_regressed);
    ck_assert_int_le(recs.ttft_ns[1], 60000000);
}
END_TEST

START_TEST(test_no_preemption_when_waiting_still_meets_the_deadline)
{
    /* The same case with a 2 s target for the short request: its deadline
     * is still earlier than the long prompt's, but the long prompt's 32
     * layers (about 0.3 s) end well before it, so the slack rule does not
     * preempt: the plans are layered prefill's. */
    slo_trace t[2];
    slo_records recs[2];
    run_summary s[2];
    hand_trace = "tests/data/slo_preempt_loose.csv";
    run_hand("layered_preempt", "{\"groups\": 32}", &t[0], &recs[0], &s[0]);
    run_hand("layered_prefill", "{\"groups\": 32}", &t[1], &recs[1], &s[1]);
    hand_trace = "tests/data/slo_preempt.csv";
    ck_assert_int_eq(t[0].long_parked, 0);
    ck_assert_int_eq(t[0].urgent_start_ns, t[1].urgent_start_ns);
    ck_assert_int_eq(recs[0].ttft_ns[1], recs[1].ttft_ns[1]);
    ck_assert_int_eq(recs[0].ttft_ns[0], recs[1].ttft_ns[0]);
    ck_assert_int_le(recs[0].ttft_ns[1], 2000000000LL);
}
END_TEST

/* Per request (ids 0..2): layers run in all, iterations, and the first and
 * last iteration start with it in a prefill. */
typedef struct nest_trace {
    int32_t layers[3], iters[3];
    sim_time_ns first_ns[3], last_ns[3];
} nest_trace;

static void observe_nest(void *ctx, const iter_info *it)
{
    nest_trace *t = ctx;
    for (int32_t i = 0; i < it->n_items; i++) {
        const serve_req *r = it->items[i].req;
        if (r->id > 2 || r->generated_tokens > 0)
            continue;
        t->layers[r->id] += it->items[i].layers ? it->items[i].layers : LAYERS;
        t->iters[r->id]++;
        if (t->first_ns[r->id] < 0)
            t->first_ns[r->id] = it->start_ns;
        t->last_ns[r->id] = it->start_ns;
    }
}

START_TEST(test_preemptions_nest_and_every_prompt_runs_its_layers_once)
{
    /* A long prompt (10 s target), a 3,000-token one (250 ms) at 10 ms and
     * a 100-token one (60 ms) at 50 ms, urgent cohorts one group at a time:
     * the second parks the first, the third parks the second, then each
     * resumes in turn; every prompt runs exactly its 32 layers. */
    const char *const sets[] = {
        "workload={\"source\": \"native\", \"path\": \"tests/data/slo_preempt_nested.csv\"}",
        "instance.max_context_tokens=8192", "policies.batch.name=\"layered_preempt\"",
        "policies.batch.params={\"groups\": 32, \"urgent_whole\": false}", NULL};
    nest_trace t;
    memset(&t, 0, sizeof t);
    for (int k = 0; k < 3; k++)
        t.first_ns[k] = -1;
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    sim_err err = {{0}};
    cluster_hooks hooks = {.on_iteration = observe_nest, .iteration_ctx = &t};
    cluster *c = cluster_create(&cfg.sys, &hooks, &err);
    ck_assert_msg(c, "%s", err.msg);
    ck_assert_int_eq(cluster_run(c, &err), 0);
    run_summary s;
    cluster_summarize(c, &s);
    cluster_destroy(c);
    run_config_fini(&cfg);
    ck_assert_uint_eq(s.completed, 3);
    ck_assert_uint_eq(s.preemptions, 0);
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(t.layers[k], LAYERS);
        ck_assert_int_eq(t.iters[k], LAYERS);
    }
    /* Nested: 2 starts inside 1's prefill and finishes before it; 1 starts
     * inside 0's and finishes before it. */
    ck_assert_int_gt(t.first_ns[1], t.first_ns[0]);
    ck_assert_int_gt(t.first_ns[2], t.first_ns[1]);
    ck_assert_int_lt(t.first_ns[2], t.last_ns[1]);
    ck_assert_int_lt(t.last_ns[2], t.last_ns[1]);
    ck_assert_int_lt(t.last_ns[1], t.last_ns[0]);
}
END_TEST

START_TEST(test_without_preemption_the_urgent_request_misses)
{
    /* The same case under layered prefill (no preemption), vLLM's
     * prefill-first and chunked prefill, all FCFS: the urgent request
     * waits for the long prompt and misses its 60 ms. */
    const char *const policies[][2] = {{"layered_prefill", "{\"groups\": 32}"},
                                       {"vllm_prefill_first", "{}"},
                                       {"chunked_prefill", "{}"}};
    slo_records preempt_recs;
    slo_trace t;
    run_summary s;
    run_hand("layered_preempt", "{\"groups\": 32}", &t, &preempt_recs, &s);
    for (int k = 0; k < 3; k++) {
        slo_records recs;
        run_hand(policies[k][0], policies[k][1], &t, &recs, &s);
        ck_assert_uint_eq(s.completed, 2);
        ck_assert_msg(recs.ttft_ns[1] > 60000000, "%s: urgent TTFT %lld ns", policies[k][0],
                      (long long)recs.ttft_ns[1]);
        ck_assert_int_lt(preempt_recs.ttft_ns[1], recs.ttft_ns[1]);
    }
}
END_TEST

START_TEST(test_layered_preempt_is_deterministic_and_completes_a_busy_run)
{
    const char *const sets[] = {"policies.batch.name=\"layered_preempt\"",
                                "policies.order.name=\"edf\"",
                                "workload.ttft_slo_ms={\"dist\": \"uniform\", \"min\": 50, "
                                "\"max\": 3000}",
                                "workload.arrival.rate_per_s=20", NULL};
    tu_run a, b;
    tu_run_sets(sets, &a);
    tu_run_sets(sets, &b);
    ck_assert_uint_eq(a.summary.completed, a.summary.arrived);
    ck_assert_uint_eq(a.record_hash, b.record_hash);
    ck_assert_uint_eq(a.iterations, b.iterations);
    ck_assert(!a.time_went_back && !a.kv_over_capacity);
    ck_assert_uint_eq(a.output_mismatches, 0);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

START_TEST(test_layered_preempt_without_urgency_is_layered_prefill)
{
    /* With no per-request TTFT targets every deadline is the arrival plus
     * the run's 2 s: cohorts are admitted in arrival order, and a waiting
     * request has an earlier deadline than the cohort only if it was
     * preempted back to the queue. On these runs, also under KV pressure,
     * the records are layered_prefill's. */
    const char *const pressure[] = {"instance.gpu_memory_utilization=0.245",
                                    "instance.max_context_tokens=4096",
                                    "workload.arrival.rate_per_s=60",
                                    "workload.output_tokens.mean=600", NULL};
    const char *const names[2] = {"policies.batch.name=\"layered_preempt\"",
                                  "policies.batch.name=\"layered_prefill\""};
    tu_run r[2];
    for (int k = 0; k < 2; k++) {
        const char *const sets[] = {names[k], "policies.batch.params.groups=4", NULL};
        cJSON *root = tu_base_config();
        tu_set(root, sets);
        if (_i)
            tu_set(root, pressure);
        run_config cfg;
        tu_parse(root, &cfg);
        tu_run_config(&cfg, &r[k]);
        run_config_fini(&cfg);
    }
    ck_assert_uint_eq(r[0].summary.completed, r[0].summary.arrived);
    if (_i)
        ck_assert_uint_gt(r[0].summary.preemptions, 0);
    ck_assert_uint_eq(r[0].record_hash, r[1].record_hash);
    ck_assert_uint_eq(r[0].iterations, r[1].iterations);
    tu_run_fini(&r[0]);
    tu_run_fini(&r[1]);
}
END_TEST

START_TEST(test_layered_preempt_rejects_bad_params)
{
    cJSON *root = tu_base_config();
    const char *const sets[] = {"policies.batch.name=\"layered_preempt\"",
                                "instance.max_context_tokens=4096",
                                "policies.batch.params.lookahead=0", NULL};
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    sim_err err = {{0}};
    ck_assert_ptr_null(cluster_create(&cfg.sys, NULL, &err));
    ck_assert_msg(strstr(err.msg, "lookahead"), "%s", err.msg);
    run_config_fini(&cfg);
}
END_TEST

START_TEST(test_slo_chunked_gives_the_urgent_prompt_its_chunk_first)
{
    /* Budget 512: the long prompt needs 16 chunks. Chunked prefill gives
     * the budget to the partly prefilled prompt first, so the urgent one
     * waits for all of them; slo_chunked gives it its 100 tokens at once
     * and the long prompt still gets exactly its tokens. */
    slo_trace t[2];
    slo_records recs[2];
    run_summary s[2];
    run_hand("slo_chunked", "{\"token_budget\": 512}", &t[0], &recs[0], &s[0]);
    run_hand("chunked_prefill", "{\"token_budget\": 512}", &t[1], &recs[1], &s[1]);
    ck_assert_uint_eq(s[0].completed, 2);
    ck_assert_msg(recs[0].ttft_ns[1] <= 60000000, "slo_chunked: urgent TTFT %lld ns",
                  (long long)recs[0].ttft_ns[1]);
    ck_assert_msg(recs[1].ttft_ns[1] > 60000000, "chunked: urgent TTFT %lld ns",
                  (long long)recs[1].ttft_ns[1]);
    ck_assert_uint_eq(s[0].preemptions, 0);
    ck_assert_uint_eq(s[0].output_tokens, s[1].output_tokens);
    ck_assert(recs[0].ttft_ns[0] <= 10000000000LL);
}
END_TEST

START_TEST(test_slo_chunked_serves_a_late_prompt_after_an_on_time_one)
{
    /* Two 100-token prompts at 10 ms during the long prefill: request 1
     * (60 ms target) and request 2 (1 us target: late when first planned,
     * with the earlier deadline). Budget 128: with late_last, request 1
     * takes its 100 tokens first and gets its first token an iteration
     * sooner than when EDF alone lets the late one go first. */
    slo_trace t;
    slo_records recs[2];
    run_summary s;
    hand_trace = "tests/data/slo_late.csv";
    run_hand("slo_chunked", "{\"token_budget\": 128}", &t, &recs[0], &s);
    ck_assert_uint_eq(s.completed, 3);
    run_hand("slo_chunked", "{\"token_budget\": 128, \"late_last\": false}", &t, &recs[1],
             &s);
    hand_trace = "tests/data/slo_preempt.csv";
    ck_assert_uint_eq(s.completed, 3);
    ck_assert_int_lt(recs[0].ttft_ns[1], recs[1].ttft_ns[1]);
    ck_assert_int_gt(recs[0].ttft_ns[2], recs[1].ttft_ns[2]);
    ck_assert_int_le(recs[0].ttft_ns[1], 60000000);
}
END_TEST

START_TEST(test_slo_chunked_without_targets_is_chunked_prefill)
{
    /* No per-request TTFT targets: every deadline is the arrival plus the
     * run's target (slo.ttft_ms, 2 s by default), the order is arrival
     * order, and without late_last (late requests last, which changes the
     * plans once requests miss 2 s under KV pressure) the plans on these
     * runs are chunked prefill's, including under KV pressure. */
    const char *const variants[][5] = {{"workload.arrival.rate_per_s=30", NULL},
                                       {"instance.gpu_memory_utilization=0.245",
                                        "instance.max_context_tokens=4096",
                                        "workload.arrival.rate_per_s=60",
                                        "workload.output_tokens.mean=600", NULL}};
    for (int v = 0; v < 2; v++) {
        tu_run r[2];
        const char *names[2][2] = {{"policies.batch.name=\"slo_chunked\"",
                                    "policies.batch.params.late_last=false"},
                                   {"policies.batch.name=\"chunked_prefill\"",
                                    "policies.batch.params.token_budget=256"}};
        for (int k = 0; k < 2; k++) {
            const char *const sets[] = {names[k][0], names[k][1],
                                        "policies.batch.params.token_budget=256",
                                        variants[v][0], variants[v][1], variants[v][2],
                                        variants[v][3], NULL};
            tu_run_sets(sets, &r[k]);
        }
        ck_assert_uint_eq(r[0].summary.completed, r[0].summary.arrived);
        ck_assert_uint_eq(r[0].record_hash, r[1].record_hash);
        ck_assert_uint_eq(r[0].iterations, r[1].iterations);
        ck_assert_uint_eq(r[0].summary.preemptions, r[1].summary.preemptions);
        if (v == 1)
            ck_assert_uint_gt(r[0].summary.preemptions, 0);
        tu_run_fini(&r[0]);
        tu_run_fini(&r[1]);
    }
}
END_TEST

START_TEST(test_slo_chunked_is_deterministic_under_mixed_targets)
{
    const char *const sets[] = {"policies.batch.name=\"slo_chunked\"",
                                "policies.batch.params.token_budget=512",
                                "workload.ttft_slo_ms={\"dist\": \"uniform\", \"min\": 50, "
                                "\"max\": 3000}",
                                "workload.arrival.rate_per_s=20", NULL};
    tu_run a, b;
    tu_run_sets(sets, &a);
    tu_run_sets(sets, &b);
    ck_assert_uint_eq(a.summary.completed, a.summary.arrived);
    ck_assert_uint_eq(a.record_hash, b.record_hash);
    ck_assert(!a.time_went_back && !a.kv_over_capacity);
    ck_assert_int_le(a.max_batch_tokens, 512);
    ck_assert_uint_eq(a.output_mismatches, 0);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

/* Busy runs with mixed TTFT targets under EDF: KV pressure (recompute and
 * swap), several instances, a prefill pool; every request completes with
 * its tokens, and the same config gives the same records. */
static const char *const busy_variants[][6] = {
    {"instance.gpu_memory_utilization=0.245", "instance.max_context_tokens=4096",
     "workload.arrival.rate_per_s=60", "workload.output_tokens.mean=600", NULL},
    {"instance.preemption=\"swap\"", "instance.gpu_memory_utilization=0.245",
     "instance.max_context_tokens=4096", "workload.arrival.rate_per_s=60",
     "workload.output_tokens.mean=600", NULL},
    {"cluster.instances=3", "workload.arrival.rate_per_s=40", NULL},
    {"cluster={\"pools\": [{\"name\": \"P\", \"role\": \"prefill\"}, "
     "{\"name\": \"D\", \"role\": \"decode\"}], \"disagg\": {\"transfer\": "
     "\"after_prefill\"}}", "workload.arrival.rate_per_s=20", NULL},
};

START_TEST(test_slo_policies_complete_busy_runs_deterministically)
{
    const char *const batch[] = {"policies.batch.name=\"layered_preempt\"",
                                 "policies.batch.name=\"slo_chunked\""};
    for (int b = 0; b < 2; b++) {
        tu_run r[2];
        for (int k = 0; k < 2; k++) {
            cJSON *root = tu_base_config();
            const char *const sets[] = {
                batch[b], "policies.order.name=\"edf\"",
                "workload.ttft_slo_ms={\"dist\": \"uniform\", \"min\": 50, \"max\": 3000}",
                NULL};
            tu_set(root, sets);
            tu_set(root, busy_variants[_i]);
            run_config cfg;
            tu_parse(root, &cfg);
            tu_run_config(&cfg, &r[k]);
            run_config_fini(&cfg);
        }
        ck_assert_msg(r[0].summary.completed == r[0].summary.arrived, "%s, variant %d",
                      batch[b], _i);
        ck_assert_uint_eq(r[0].output_mismatches, 0);
        ck_assert(!r[0].time_went_back && !r[0].kv_over_capacity);
        ck_assert_uint_eq(r[0].record_hash, r[1].record_hash);
        tu_run_fini(&r[0]);
        tu_run_fini(&r[1]);
    }
}
END_TEST

Suite *slo_sched_suite(void)
{
    Suite *s = suite_create("slo_sched");
    TCase *tc = tcase_create("preempt");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_urgent_request_preempts_long_prefill_at_a_layer_boundary, 0, 2);
    tcase_add_test(tc, test_without_overlap_the_urgent_request_starts_within_one_layer);
    tcase_add_test(tc, test_no_preemption_when_waiting_still_meets_the_deadline);
    tcase_add_test(tc, test_preemptions_nest_and_every_prompt_runs_its_layers_once);
    tcase_add_test(tc, test_without_preemption_the_urgent_request_misses);
    tcase_add_test(tc, test_layered_preempt_is_deterministic_and_completes_a_busy_run);
    tcase_add_loop_test(tc, test_layered_preempt_without_urgency_is_layered_prefill, 0, 2);
    tcase_add_test(tc, test_layered_preempt_rejects_bad_params);
    tcase_add_test(tc, test_slo_chunked_gives_the_urgent_prompt_its_chunk_first);
    tcase_add_test(tc, test_slo_chunked_serves_a_late_prompt_after_an_on_time_one);
    tcase_add_test(tc, test_slo_chunked_without_targets_is_chunked_prefill);
    tcase_add_test(tc, test_slo_chunked_is_deterministic_under_mixed_targets);
    tcase_add_loop_test(tc, test_slo_policies_complete_busy_runs_deterministically, 0,
                        (int)(sizeof busy_variants / sizeof busy_variants[0]));
    suite_add_tcase(s, tc);
    return s;
}
