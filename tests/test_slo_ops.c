/* Issue 13, finer scheduling: operator-level prefill preemption inside an
 * iteration (policies/batch_op_preempt.c, serve/opcut.c). The hand-built
 * case of test_slo_sched.c: a long prompt (8,000 tokens, TTFT target 10 s)
 * at t = 0 and an urgent one (100 tokens, 60 ms) at t = 10 ms
 * (tests/data/slo_preempt.csv), Llama-3-8B (32 layers) on one H100. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve/cluster.h"
#include "policies/jitserve.h"
#include "serve/opcut.h"
#include "tests/suites.h"
#include "tests/testutil.h"

#define LAYERS 32
#define URGENT_AT_NS 10000000

/* ---- the cut points, on a hand-made cost ------------------------------------ */

START_TEST(test_cut_points_follow_the_layer_and_operator_timeline)
{
    /* 100 ns of CPU time, 10 ns embedding, 4 layers of 60 ns (qkv 20,
     * attention 10, ffn up 30 each), 40 ns of logits: the layers run from
     * 110 to 350. */
    cost_result c = {.latency_ns = 0};
    c.term_ns[OP_EMBED] = 10;
    c.term_ns[OP_GEMM_QKV] = 80;
    c.term_ns[OP_ATTN_PREFILL] = 40;
    c.term_ns[OP_GEMM_FFN_UP] = 120;
    c.term_ns[OP_GEMM_LM_HEAD] = 40;
    c.latency_ns = 100 + 10 + 240 + 40;
    batch_cut_point layer, op;
    /* At 1000 + 50 (in the CPU time): the first layer boundary, nothing
     * done; the first operator boundary is the start of the layers. */
    opcut_points(&c, 1000, 4, 1050, &layer, &op);
    ck_assert(layer.possible && op.possible);
    ck_assert_int_eq(layer.at_ns, 1110);
    ck_assert_int_eq(layer.layers_kept, 0);
    ck_assert_int_eq(op.at_ns, 1110);
    /* 1000 + 110 + 60 + 25: layer 2, 25 ns in, inside the attention
     * (20..30): next operator boundary at +30 (credit 30), next layer
     * boundary at the end of layer 2. */
    opcut_points(&c, 1000, 4, 1195, &layer, &op);
    ck_assert_int_eq(op.at_ns, 1200);
    ck_assert_int_eq(op.layers_kept, 1);
    ck_assert_int_eq(op.credit_ns, 30);
    ck_assert_int_eq(layer.at_ns, 1230);
    ck_assert_int_eq(layer.layers_kept, 2);
    ck_assert_int_eq(layer.credit_ns, 0);
    /* Inside the last operator of a layer: the operator boundary is the
     * layer boundary, with no credit. */
    opcut_points(&c, 1000, 4, 1110 + 60 + 35, &layer, &op);
    ck_assert_int_eq(op.at_ns, 1230);
    ck_assert_int_eq(op.layers_kept, 2);
    ck_assert_int_eq(op.credit_ns, 0);
    /* In the last layer: no boundary is left before the logits. */
    opcut_points(&c, 1000, 4, 1110 + 3 * 60 + 35, &layer, &op);
    ck_assert(!layer.possible);
    ck_assert(!op.possible);
    /* Scaling keeps the proportions. */
    opcut_scale(&c, c.latency_ns / 2);
    ck_assert_int_eq(c.latency_ns, 195);
    ck_assert(c.term_ns[OP_GEMM_QKV] == 40);
}
END_TEST

/* ---- the hand-built case ----------------------------------------------------- */

typedef struct ops_trace {
    sim_time_ns urgent_start_ns;
    double max_op_ns;            /* longest per-layer operator of the long prompt's first iteration */
    double layer_ns;             /* its layer time */
    int32_t long_iters;          /* iterations with the long prompt's prefill */
    int32_t long_bad;            /* its items: not its whole prompt, or not up to the last layer */
    int32_t long_resumed_at;     /* layers_done when it resumed (0: never stopped) */
    sim_time_ns long_start_ns[2], long_latency_ns[2];   /* its first two iterations, as planned */
    double long_fixed_ns;        /* its first iteration's CPU time and embedding */
    double norm_ns;              /* one norm of it (2 per layer and a final one) */
} ops_trace;

typedef struct ops_records {
    int64_t ttft_ns[2];
    int32_t preemptions[2];
    int n;
} ops_records;

static void observe(void *ctx, const iter_info *it)
{
    ops_trace *t = ctx;
    for (int32_t i = 0; i < it->n_items; i++) {
        const batch_item *item = &it->items[i];
        const serve_req *r = item->req;
        if (r->id == 0 && r->generated_tokens == 0) {
            if (t->long_iters < 2) {
                t->long_start_ns[t->long_iters] = it->start_ns;
                t->long_latency_ns[t->long_iters] = it->cost->latency_ns;
            }
            if (t->long_iters++ == 0) {
                t->layer_ns = 0;
                t->max_op_ns = 0;
                double terms = 0;
                for (int k = 0; k < OP_KIND_COUNT; k++)
                    terms += it->cost->term_ns[k];
                t->norm_ns = it->cost->term_ns[OP_NORM] / (2 * LAYERS + 1);
                t->long_fixed_ns = (double)it->cost->latency_ns - terms +
                                   it->cost->term_ns[OP_EMBED];
                for (int k = 0; k < OP_KIND_COUNT; k++) {
                    if (k == OP_EMBED || k == OP_GEMM_LM_HEAD || k == OP_SAMPLE)
                        continue;
                    double op = it->cost->term_ns[k] / LAYERS;
                    t->layer_ns += op;
                    if (op > t->max_op_ns)
                        t->max_op_ns = op;
                }
            } else {
                t->long_resumed_at = r->layers_done;
            }
            t->long_bad += item->tokens != r->input_tokens ||
                           r->layers_done + item->layers != LAYERS;
        }
        if (r->id == 1 && t->urgent_start_ns < 0)
            t->urgent_start_ns = it->start_ns;
    }
}

static int record(void *ctx, const req_record *rec)
{
    ops_records *s = ctx;
    if (rec->id < 2) {
        s->ttft_ns[rec->id] = rec->ttft_ns;
        s->preemptions[rec->id] = rec->preemptions;
    }
    s->n++;
    return 0;
}

static void run_case(const char *const *extra, ops_trace *t, ops_records *recs,
                     run_summary *sum)
{
    const char *sets[16] = {
        "workload={\"source\": \"native\", \"path\": \"tests/data/slo_preempt.csv\"}",
        "instance.max_context_tokens=8192", "policies.batch.name=\"op_preempt\"",
        /* no front-end delay: the urgent request reaches the instance at 10 ms */
        "engine.request_path={\"frontend_us\": 0, \"tokenize_us_per_token\": 0}", NULL};
    int n = 4;
    for (int i = 0; extra && extra[i]; i++)
        sets[n++] = extra[i];
    sets[n] = NULL;
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

/* The long prompt was stopped once and finished with exactly its tokens:
 * its whole prompt in each of its two iterations, the second through the
 * layers it had left, nothing recomputed, no KV preemption. */
static void check_resumed_without_recompute(const ops_trace *t, const ops_records *recs,
                                            const run_summary *s)
{
    ck_assert_uint_eq(s->completed, 2);
    ck_assert_int_eq(t->long_iters, 2);
    ck_assert_int_eq(t->long_bad, 0);
    /* No work lost or redone: the part of its first iteration that ran
     * (to the urgent one's start) and its second iteration add up to its
     * uncut iteration plus a second CPU time and embedding, to a few ns. */
    double ran = (double)(t->urgent_start_ns - t->long_start_ns[0]) +
                 (double)t->long_latency_ns[1];
    double whole = (double)t->long_latency_ns[0] + t->long_fixed_ns;
    /* (The timeline spreads the final norm over the layers, serve/opcut.c:
     * off by at most one norm, 0.2 ms here; one layer redone would be 7.) */
    ck_assert_msg(fabs(ran - whole) <= t->norm_ns + 4,
                  "cut + resumed %.0f ns, whole + fixed %.0f ns", ran, whole);
    ck_assert_uint_eq(s->recomputed_tokens, 0);
    ck_assert_uint_eq(s->preemptions, 0);
    ck_assert_int_eq(recs->preemptions[0], 0);
    /* Every token computed once: both prompts and the decodes (4 outputs,
     * the last never fed back). */
    ck_assert_uint_eq(s->output_tokens, 8);
}

START_TEST(test_urgent_arrival_starts_within_one_operator)
{
    /* _i: the engine plans ahead (vLLM V1) or not (legacy); the policy
     * schedules on the arrival either way. */
    const char *engine = _i ? "engine.name=\"legacy\"" : "engine.name=\"vllm-v1\"";
    const char *const extra[] = {engine, NULL};
    ops_trace t;
    ops_records recs;
    run_summary s;
    run_case(extra, &t, &recs, &s);
    ck_assert_uint_eq(s.cuts_op, 1);
    ck_assert_uint_eq(s.cuts_layer, 0);
    ck_assert_int_ge(t.urgent_start_ns, URGENT_AT_NS);
    ck_assert(t.max_op_ns > 0);
    ck_assert_msg(t.urgent_start_ns - URGENT_AT_NS <= (sim_time_ns)t.max_op_ns + 1,
                  "urgent started %lld ns after arriving; longest operator %.0f ns",
                  (long long)(t.urgent_start_ns - URGENT_AT_NS), t.max_op_ns);
    ck_assert(s.cut_saved_s > 0);
    ck_assert_msg(recs.ttft_ns[1] <= 60000000, "urgent TTFT %lld ns",
                  (long long)recs.ttft_ns[1]);
    check_resumed_without_recompute(&t, &recs, &s);
}
END_TEST

START_TEST(test_layer_granularity_starts_within_one_layer)
{
    const char *const extra[] = {"policies.batch.params={\"granularity\": \"layer\"}", NULL};
    ops_trace t;
    ops_records recs;
    run_summary s;
    run_case(extra, &t, &recs, &s);
    ck_assert_uint_eq(s.cuts_layer, 1);
    ck_assert_uint_eq(s.cuts_op, 0);
    ck_assert_int_ge(t.urgent_start_ns, URGENT_AT_NS);
    ck_assert(t.urgent_start_ns - URGENT_AT_NS <= (sim_time_ns)t.layer_ns + 1);
    check_resumed_without_recompute(&t, &recs, &s);
}
END_TEST

START_TEST(test_no_cut_when_waiting_still_meets_the_deadline)
{
    /* The urgent request's 2 s target is met after the long prompt's
     * iteration: no cut, the long prompt runs in one iteration. */
    const char *const extra[] = {
        "workload={\"source\": \"native\", \"path\": \"tests/data/slo_preempt_loose.csv\"}",
        NULL};
    ops_trace t;
    ops_records recs;
    run_summary s;
    run_case(extra, &t, &recs, &s);
    ck_assert_uint_eq(s.completed, 2);
    ck_assert_uint_eq(s.cuts_op + s.cuts_layer, 0);
    ck_assert_int_eq(t.long_iters, 1);
    ck_assert_int_le(recs.ttft_ns[1], 2000000000LL);
}
END_TEST

START_TEST(test_cut_on_a_prefill_pool)
{
    /* Disaggregated: the prefill pool runs op_preempt; the urgent request
     * still starts within one operator and both are handed off. */
    const char *const extra[] = {
        "cluster={\"topology\": {\"gpus_per_node\": 1}, \"pools\": [{\"name\": \"P\", "
        "\"role\": \"prefill\"}, {\"name\": \"D\", \"role\": \"decode\"}], \"disagg\": {}}",
        NULL};
    ops_trace t;
    ops_records recs;
    run_summary s;
    run_case(extra, &t, &recs, &s);
    ck_assert_uint_eq(s.cuts_op, 1);
    ck_assert(t.urgent_start_ns - URGENT_AT_NS <= (sim_time_ns)t.max_op_ns + 1);
    check_resumed_without_recompute(&t, &recs, &s);
}
END_TEST

START_TEST(test_op_preempt_runs_are_deterministic)
{
    const char *const extra[] = {
        "workload={\"source\": \"synthetic\", \"requests\": 300, "
        "\"arrival\": {\"process\": \"poisson\", \"rate_per_s\": 20}, "
        "\"input_tokens\": {\"dist\": \"lognormal\", \"mean\": 1500, \"sigma\": 1.0}, "
        "\"output_tokens\": {\"dist\": \"lognormal\", \"mean\": 32, \"sigma\": 0.5}}",
        "slo.ttft_ms=300",
        NULL};
    ops_trace t;
    ops_records recs[2];
    run_summary s[2];
    run_case(extra, &t, &recs[0], &s[0]);
    run_case(extra, &t, &recs[1], &s[1]);
    ck_assert_uint_eq(s[0].completed, 300);
    ck_assert_uint_eq(s[0].cuts_op, s[1].cuts_op);
    ck_assert(s[0].ttft_s.p99 == s[1].ttft_s.p99);
    ck_assert(s[0].energy_j == s[1].energy_j);
    ck_assert_uint_eq(s[0].recomputed_tokens, 0);
}
END_TEST

START_TEST(test_bad_op_preempt_params_are_errors)
{
    cJSON *root = tu_base_config();
    const char *const sets[] = {"policies.batch.name=\"op_preempt\"",
                                "instance.max_context_tokens=4096",
                                "policies.batch.params={\"granularity\": \"token\"}", NULL};
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    sim_err err = {{0}};
    ck_assert_ptr_null(cluster_create(&cfg.sys, NULL, &err));
    ck_assert_msg(strstr(err.msg, "granularity") && strstr(err.msg, "\"op\""), "%s", err.msg);
    run_config_fini(&cfg);
}
END_TEST

/* ---- JITServe -------------------------------------------------------------------- */

START_TEST(test_jitserve_prediction_is_a_refined_quantile)
{
    /* Median 100 x e^(0.4 x 0.5) = 122.14; its 0.95 quantile with log sd
     * 0.4: x e^(0.4 x 1.6449) = 235.83. */
    ck_assert_double_eq_tol(jit_predict_tokens(100, 0.5, 0.4, 0.95, 0), 235.8301, 1e-3);
    /* 300 tokens out: F(300) = 0.98766; the quantile 0.95 of what is left,
     * u = 0.99938: 444.78. */
    ck_assert_double_eq_tol(jit_predict_tokens(100, 0.5, 0.4, 0.95, 300), 444.7789, 1e-3);
    /* Never below generated + 1; error 0 is the oracle. */
    ck_assert(jit_predict_tokens(100, -3, 0.4, 0.5, 90) >= 91);
    ck_assert_double_eq(jit_predict_tokens(100, 2, 0, 0.95, 10), 100);
    ck_assert_double_eq(jit_predict_tokens(100, 2, 0, 0.95, 100), 101);
}
END_TEST

START_TEST(test_jitserve_priority_matches_a_hand_computed_case)
{
    /* Latency class: 1,000 prompt tokens, L-hat 200, 50 generated, in the
     * system 1 s, t_iter 20 ms: remain = 20 ms x 150 = 3 s; TTFT target
     * 0.5 s, budget D 10 s, p = 1, output weight 8:
     * 1000 x 0.5 / 1.02 + 8 x 200 x min(1, 10 / 4) = 490.196 + 1600. */
    jit_req_terms t = {.kind = JIT_LATENCY, .input_tokens = 1000, .predicted_tokens = 200,
                       .served_ns = 1e9, .iter_ns = 20e6, .remain_ns = 20e6 * 150,
                       .ttft_slo_ns = 0.5e9, .deadline_ns = 10e9};
    double reward = jit_reward(&t, 1, 8, 1);
    ck_assert_double_eq_tol(reward, 2090.19608, 1e-4);
    ck_assert_double_eq_tol(reward / t.remain_ns, 6.9673203e-07, 1e-12);
    /* Deadline class, budget 3 s: (1000 + 200) x 3 / (1 + 3). */
    t.kind = JIT_DEADLINE;
    t.deadline_ns = 3e9;
    ck_assert_double_eq_tol(jit_reward(&t, 1, 8, 1), 900, 1e-9);
    /* p = 2 squares the on-time factor: 1200 x 0.5625. */
    ck_assert_double_eq_tol(jit_reward(&t, 2, 8, 1), 675, 1e-9);
}
END_TEST

typedef struct first_tokens {
    int64_t first_ns[3];
} first_tokens;

static int record_first(void *ctx, const req_record *rec)
{
    first_tokens *f = ctx;
    if (rec->id < 3)
        f->first_ns[rec->id] = rec->first_token_ns;
    return 0;
}

static void run_order_on(const char *trace, const char *batch, const char *params,
                         first_tokens *f)
{
    char set_batch[96], set_params[256];
    snprintf(set_batch, sizeof set_batch, "policies.batch.name=\"%s\"", batch);
    snprintf(set_params, sizeof set_params, "policies.batch.params=%s", params);
    char set_trace[160];
    snprintf(set_trace, sizeof set_trace,
             "workload={\"source\": \"native\", \"path\": \"%s\"}", trace);
    const char *const sets[] = {
        set_trace, "engine.request_path={\"frontend_us\": 0, \"tokenize_us_per_token\": 0}",
        set_batch, set_params, NULL};
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    sim_err err = {{0}};
    cluster_hooks hooks = {.on_record = record_first, .record_ctx = f};
    cluster *c = cluster_create(&cfg.sys, &hooks, &err);
    ck_assert_msg(c, "%s", err.msg);
    ck_assert_int_eq(cluster_run(c, &err), 0);
    cluster_destroy(c);
    run_config_fini(&cfg);
}

static void run_order(const char *batch, const char *params, first_tokens *f)
{
    run_order_on("tests/data/jit_order.csv", batch, params, f);
}

START_TEST(test_jitserve_runs_the_higher_reward_per_remaining_time_first)
{
    /* Two requests at t = 0, one sequence at a time: a long one (2,000
     * prompt tokens, 400 outputs) first in the queue, a short one (100, 8)
     * behind it. Chunked prefill (FCFS) runs the long one first; JITServe
     * (oracle lengths) the short one, whose reward over its remaining time
     * (0.2 s vs 8 s at 20 ms per iteration) is far higher. */
    first_tokens fcfs = {{0}}, jit = {{0}};
    run_order("chunked_prefill", "{\"max_seqs\": 1}", &fcfs);
    run_order("jitserve", "{\"max_seqs\": 1, \"error\": 0}", &jit);
    ck_assert_int_lt(fcfs.first_ns[0], fcfs.first_ns[1]);
    ck_assert_int_lt(jit.first_ns[1], jit.first_ns[0]);
}
END_TEST

/* ---- streamed prompts (Stream2LLM) ------------------------------------------------- */

typedef struct stream_trace {
    int32_t ahead;              /* items that ran past the arrived context */
    int32_t while_streaming;    /* iterations of request 0 before its last chunk */
    int32_t iters;
    int64_t computed_at_last;   /* request 0's tokens planned before its last chunk */
} stream_trace;

static void observe_stream(void *ctx, const iter_info *it)
{
    stream_trace *t = ctx;
    for (int32_t i = 0; i < it->n_items; i++) {
        const serve_req *r = it->items[i].req;
        if (r->id != 0 || r->generated_tokens)
            continue;
        t->iters++;
        int32_t arrived = r->input_tokens - r->unarrived_tokens;
        t->ahead += r->computed_tokens + it->items[i].tokens > arrived;
        if (r->unarrived_tokens) {
            t->while_streaming++;
            t->computed_at_last = r->computed_tokens + it->items[i].tokens;
        }
    }
}

static int run_stream(const char *batch, const char *params, stream_trace *t, run_summary *sum,
                      sim_err *err)
{
    char set_batch[96], set_params[256];
    snprintf(set_batch, sizeof set_batch, "policies.batch.name=\"%s\"", batch);
    snprintf(set_params, sizeof set_params, "policies.batch.params=%s", params);
    const char *const sets[] = {
        "workload={\"source\": \"native\", \"path\": \"tests/data/stream_prompt.csv\"}",
        "engine.request_path={\"frontend_us\": 0, \"tokenize_us_per_token\": 0}",
        set_batch, set_params, NULL};
    memset(t, 0, sizeof *t);
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    cluster_hooks hooks = {.on_iteration = observe_stream, .iteration_ctx = t};
    cluster *c = cluster_create(&cfg.sys, &hooks, err);
    ck_assert_msg(c, "%s", err->msg);
    int rc = cluster_run(c, err);
    if (rc == 0)
        cluster_summarize(c, sum);
    cluster_destroy(c);
    run_config_fini(&cfg);
    return rc;
}

START_TEST(test_streamed_prefill_never_runs_ahead_of_its_context)
{
    /* Request 0: 3,000 prompt tokens in three chunks of 1,000 at 0, 200
     * and 400 ms (tests/data/stream_prompt.csv); request 1, whole, at
     * 100 ms. Every order prefills what has arrived as it arrives, never
     * more, and the first token comes after the last chunk. */
    static const char *const orders[] = {"{\"order\": \"fcfs\"}", "{\"order\": \"lcas\"}",
                                         "{\"order\": \"mcps\"}"};
    stream_trace t;
    run_summary s;
    sim_err err = {{0}};
    ck_assert_int_eq(run_stream("stream2llm", orders[_i], &t, &s, &err), 0);
    ck_assert_uint_eq(s.completed, 2);
    ck_assert_int_eq(t.ahead, 0);
    /* It started before its context was complete: the first two chunks
     * (2,000 tokens) were computed while the third was on its way. */
    ck_assert_int_gt(t.while_streaming, 0);
    ck_assert_int_eq(t.computed_at_last, 2000);
    ck_assert_uint_eq(s.recomputed_tokens, 0);
    /* TTFT from the first chunk is 400 ms later than from the last. */
    ck_assert_uint_eq(s.stream_requests, 1);
    ck_assert_double_eq_tol(s.stream_ttft_first_s.mean - s.stream_ttft_last_s.mean, 0.4, 1e-6);
    ck_assert(s.stream_ttft_last_s.mean > 0 && s.stream_ttft_last_s.mean < 0.1);
}
END_TEST

START_TEST(test_streamed_prompts_need_a_streaming_policy)
{
    stream_trace t;
    run_summary s;
    sim_err err = {{0}};
    ck_assert_int_ne(run_stream("chunked_prefill", "{}", &t, &s, &err), 0);
    ck_assert_msg(strstr(err.msg, "chunked_prefill") && strstr(err.msg, "stream2llm"), "%s",
                  err.msg);
}
END_TEST

START_TEST(test_bad_chunks_are_errors_naming_the_column)
{
    /* The first chunk must arrive with the request (offset 0). */
    char *dir = tu_tempdir(), path[512], set_trace[600];
    snprintf(path, sizeof path, "%s/bad.csv", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("arrival_s,input_tokens,output_tokens,chunks\n0,300,4,5:100 10:200\n", f);
    fclose(f);
    snprintf(set_trace, sizeof set_trace,
             "workload={\"source\": \"native\", \"path\": \"%s\"}", path);
    const char *const sets[] = {set_trace, "policies.batch.name=\"stream2llm\"", NULL};
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    sim_err err = {{0}};
    cluster *c = cluster_create(&cfg.sys, NULL, &err);
    int rc = c ? cluster_run(c, &err) : -1;
    ck_assert_int_ne(rc, 0);
    ck_assert_msg(strstr(err.msg, "chunks") && strstr(err.msg, "offset_ms:tokens"), "%s",
                  err.msg);
    cluster_destroy(c);
    run_config_fini(&cfg);
    remove(path);
    rmdir(dir);
    free(dir);
}
END_TEST

START_TEST(test_stream2llm_victims_take_the_cheaper_of_recompute_and_swap)
{
    /* KV pressure (a quarter of the GPU's memory) under streamed prompts:
     * victims preempted for KV. Copying a victim's KV over PCIe and back
     * costs less than prefilling it again on an H100 (Llama-3-8B: 128 KiB
     * per token), so Stream2LLM's rule swaps every victim though the
     * engine's mode is recompute; with victim "engine" they recompute. */
    run_summary s[2];
    for (int k = 0; k < 2; k++) {
        char set_params[128];
        snprintf(set_params, sizeof set_params, "policies.batch.params={\"victim\": \"%s\"}",
                 k ? "engine" : "cost");
        const char *const sets[] = {
            "workload={\"source\": \"native\", \"path\": \"experiments/data/slo_streamed.csv\", "
            "\"max_requests\": 150, \"rate_scale\": 20}",
            "instance.gpu_memory_utilization=0.25", "instance.max_context_tokens=8192",
            "policies.batch.name=\"stream2llm\"", set_params, NULL};
        cJSON *root = tu_base_config();
        tu_set(root, sets);
        run_config cfg;
        tu_parse(root, &cfg);
        sim_err err = {{0}};
        cluster *c = cluster_create(&cfg.sys, NULL, &err);
        ck_assert_msg(c, "%s", err.msg);
        ck_assert_int_eq(cluster_run(c, &err), 0);
        cluster_summarize(c, &s[k]);
        cluster_destroy(c);
        run_config_fini(&cfg);
        ck_assert_uint_eq(s[k].completed, 150);
        ck_assert_uint_gt(s[k].preemptions, 0);
    }
    ck_assert_uint_eq(s[0].recomputed_tokens, 0);
    ck_assert(s[0].swap_out_bytes > 0 && s[0].swap_in_bytes > 0);
    ck_assert_uint_eq(s[0].preemptions_swap, s[0].preemptions);
    ck_assert_uint_eq(s[1].preemptions_swap, 0);
    ck_assert_uint_gt(s[1].recomputed_tokens, 0);
    ck_assert(s[1].swap_out_bytes == 0);
}
END_TEST

START_TEST(test_a_context_update_keeps_kv_only_up_to_the_common_prefix)
{
    /* 1,000 tokens at 0, 900 more at 100 ms (all computed by about 130 ms),
     * then at 300 ms an update: the context becomes its first 500 tokens
     * and 1,500 new ones (tests/data/stream_update.csv). The KV of the
     * 1,400 computed tokens past the common prefix is dropped and those
     * positions are computed again from the new context; the first token
     * comes after the update, never from the old context. */
    const char *const sets[] = {
        "workload={\"source\": \"native\", \"path\": \"tests/data/stream_update.csv\"}",
        "engine.request_path={\"frontend_us\": 0, \"tokenize_us_per_token\": 0}",
        "policies.batch.name=\"stream2llm\"", NULL};
    stream_trace t = {0};
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    sim_err err = {{0}};
    cluster_hooks hooks = {.on_iteration = observe_stream, .iteration_ctx = &t};
    cluster *c = cluster_create(&cfg.sys, &hooks, &err);
    ck_assert_msg(c, "%s", err.msg);
    ck_assert_int_eq(cluster_run(c, &err), 0);
    run_summary s;
    cluster_summarize(c, &s);
    cluster_destroy(c);
    run_config_fini(&cfg);
    ck_assert_uint_eq(s.completed, 1);
    ck_assert_int_eq(t.ahead, 0);
    ck_assert_uint_eq(s.stream_invalidated_tokens, 1400);
    ck_assert_int_eq(t.computed_at_last, 1900);
    /* TTFT from the first chunk: after the update at 300 ms. */
    ck_assert(s.stream_ttft_first_s.mean > 0.3);
    ck_assert_double_eq_tol(s.stream_ttft_first_s.mean - s.stream_ttft_last_s.mean, 0.3, 1e-6);
}
END_TEST

START_TEST(test_jitserve_ranks_a_call_group_together)
{
    /* Three requests at t = 0, one sequence at a time, oracle lengths,
     * t_iter 20 ms, TTFT 500 ms, TPOT 100 ms: X (100 prompt tokens, 20
     * outputs), Y (100, 400), Z (100, 20). Alone, X and Z have reward
     * 100 + 8 x 20 = 260 over 0.4 s (650/s), Y 100 + 8 x 400 = 3,300 over
     * 8 s (412.5/s). With X and Y one group (tests/data/jit_group.csv)
     * both rank at (260 + 3,300) / 8 s = 445/s, below Z: Z goes first.
     * With X and Y in different groups (jit_nogroup.csv) X ties Z and goes
     * first (queue order). */
    const char *params = "{\"max_seqs\": 1, \"error\": 0, \"every\": 1}";
    first_tokens grouped = {{0}}, apart = {{0}};
    run_order_on("tests/data/jit_group.csv", "jitserve", params, &grouped);
    run_order_on("tests/data/jit_nogroup.csv", "jitserve", params, &apart);
    ck_assert_int_lt(grouped.first_ns[2], grouped.first_ns[0]);
    ck_assert_int_lt(apart.first_ns[0], apart.first_ns[2]);
}
END_TEST

START_TEST(test_chunks_read_from_jsonl_too)
{
    /* JSONL carries the chunks as a string; group and deadline_ms as
     * numbers. Two chunks 150 ms apart: TTFT from the first chunk is 150 ms
     * more than from the last. */
    char *dir = tu_tempdir(), path[512], set_trace[600];
    snprintf(path, sizeof path, "%s/s.jsonl", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"arrival_s\": 0, \"input_tokens\": 600, \"output_tokens\": 3, \"group\": 4, "
          "\"deadline_ms\": 5000, \"chunks\": \"0:300 150:300\"}\n", f);
    fclose(f);
    snprintf(set_trace, sizeof set_trace,
             "workload={\"source\": \"native\", \"path\": \"%s\"}", path);
    const char *const sets[] = {set_trace, "policies.batch.name=\"stream2llm\"", NULL};
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    sim_err err = {{0}};
    cluster *c = cluster_create(&cfg.sys, NULL, &err);
    ck_assert_msg(c, "%s", err.msg);
    ck_assert_msg(cluster_run(c, &err) == 0, "%s", err.msg);
    run_summary s;
    cluster_summarize(c, &s);
    cluster_destroy(c);
    run_config_fini(&cfg);
    remove(path);
    rmdir(dir);
    free(dir);
    ck_assert_uint_eq(s.stream_requests, 1);
    ck_assert_double_eq_tol(s.stream_ttft_first_s.mean - s.stream_ttft_last_s.mean, 0.15, 1e-6);
}
END_TEST

static void observe_ahead(void *ctx, const iter_info *it)
{
    int64_t *ahead = ctx;
    for (int32_t i = 0; i < it->n_items; i++) {
        const serve_req *r = it->items[i].req;
        *ahead += r->computed_tokens + it->items[i].tokens >
                  r->input_tokens - r->unarrived_tokens + r->generated_tokens;
    }
}

START_TEST(test_the_synthetic_source_streams_prompts)
{
    /* workload.stream: 300 prompts (lognormal, mean 1,500 tokens) in
     * 512-token chunks 50-150 ms apart, at 8 requests/s: every prompt of
     * more than one chunk is streamed, none ever computed ahead of what
     * has arrived. */
    const char *const sets[] = {
        "workload={\"source\": \"synthetic\", \"requests\": 300, \"arrival\": {\"process\": "
        "\"poisson\", \"rate_per_s\": 8}, \"input_tokens\": {\"dist\": \"lognormal\", "
        "\"mean\": 1500, \"sigma\": 0.5}, \"output_tokens\": {\"dist\": \"fixed\", "
        "\"value\": 40}, \"stream\": {\"chunk_tokens\": 512, \"gap_ms\": {\"dist\": "
        "\"uniform\", \"min\": 50, \"max\": 150}}}",
        "policies.batch.name=\"stream2llm\"", NULL};
    int64_t ahead = 0;
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    sim_err err = {{0}};
    cluster_hooks hooks = {.on_iteration = observe_ahead, .iteration_ctx = &ahead};
    cluster *c = cluster_create(&cfg.sys, &hooks, &err);
    ck_assert_msg(c, "%s", err.msg);
    ck_assert_int_eq(cluster_run(c, &err), 0);
    run_summary s;
    cluster_summarize(c, &s);
    cluster_destroy(c);
    run_config_fini(&cfg);
    ck_assert_uint_eq(s.completed, 300);
    ck_assert_uint_gt(s.stream_requests, 250);
    ck_assert_int_eq(ahead, 0);
    ck_assert(s.stream_ttft_first_s.mean > s.stream_ttft_last_s.mean + 0.05);
}
END_TEST

typedef struct group_seen {
    uint64_t group[400];
    sim_time_ns deadline[400], arrival[400];
} group_seen;

static void observe_groups(void *ctx, const iter_info *it)
{
    group_seen *g = ctx;
    for (int32_t i = 0; i < it->n_items; i++) {
        const serve_req *r = it->items[i].req;
        if (r->id < 400) {
            g->group[r->id] = r->call_group;
            g->deadline[r->id] = r->deadline_ns;
            g->arrival[r->id] = r->arrival_ns;
        }
    }
}

START_TEST(test_the_synthetic_source_makes_call_groups_sharing_a_deadline)
{
    /* 300 requests, a fifth of arrivals starting a 3-call group (calls 1-2 s
     * apart) with a 10 s deadline: every group has at most 3 calls, all
     * with one absolute deadline 10 s after the first call's arrival. */
    const char *const sets[] = {
        "workload.requests=300",
        "workload.call_groups={\"fraction\": 0.2, \"calls\": 3, \"deadline_ms\": 10000, "
        "\"gap_ms\": {\"dist\": \"uniform\", \"min\": 1000, \"max\": 2000}}",
        "policies.batch.name=\"jitserve\"", NULL};
    static group_seen g;
    memset(&g, 0, sizeof g);
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    sim_err err = {{0}};
    cluster_hooks hooks = {.on_iteration = observe_groups, .iteration_ctx = &g};
    cluster *c = cluster_create(&cfg.sys, &hooks, &err);
    ck_assert_msg(c, "%s", err.msg);
    ck_assert_int_eq(cluster_run(c, &err), 0);
    run_summary s;
    cluster_summarize(c, &s);
    cluster_destroy(c);
    run_config_fini(&cfg);
    ck_assert_uint_eq(s.completed, 300);
    int grouped = 0, groups = 0;
    for (int i = 0; i < 300; i++) {
        if (!g.group[i])
            continue;
        grouped++;
        int members = 0;
        sim_time_ns first = -1;
        for (int j = 0; j < 300; j++)
            if (g.group[j] == g.group[i]) {
                members++;
                if (first < 0)
                    first = g.arrival[j];
                ck_assert_int_eq(g.deadline[j], g.deadline[i]);
            }
        ck_assert_int_le(members, 3);
        groups += g.arrival[i] == first;
        ck_assert_int_eq(g.deadline[i], first + 10 * SIM_NS_PER_S);
    }
    ck_assert_int_gt(groups, 20);
    ck_assert_int_gt(grouped, 2 * groups);
}
END_TEST

Suite *slo_ops_suite(void)
{
    Suite *s = suite_create("slo_ops");
    TCase *tc = tcase_create("op_preempt");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cut_points_follow_the_layer_and_operator_timeline);
    tcase_add_loop_test(tc, test_urgent_arrival_starts_within_one_operator, 0, 2);
    tcase_add_test(tc, test_layer_granularity_starts_within_one_layer);
    tcase_add_test(tc, test_no_cut_when_waiting_still_meets_the_deadline);
    tcase_add_test(tc, test_cut_on_a_prefill_pool);
    tcase_add_test(tc, test_op_preempt_runs_are_deterministic);
    tcase_add_test(tc, test_bad_op_preempt_params_are_errors);
    suite_add_tcase(s, tc);
    TCase *jit = tcase_create("jitserve");
    tcase_set_timeout(jit, 60);
    tcase_add_test(jit, test_jitserve_prediction_is_a_refined_quantile);
    tcase_add_test(jit, test_jitserve_priority_matches_a_hand_computed_case);
    tcase_add_test(jit, test_jitserve_runs_the_higher_reward_per_remaining_time_first);
    tcase_add_test(jit, test_jitserve_ranks_a_call_group_together);
    tcase_add_test(jit, test_the_synthetic_source_makes_call_groups_sharing_a_deadline);
    suite_add_tcase(s, jit);
    TCase *st = tcase_create("stream");
    tcase_set_timeout(st, 60);
    tcase_add_loop_test(st, test_streamed_prefill_never_runs_ahead_of_its_context, 0, 3);
    tcase_add_test(st, test_streamed_prompts_need_a_streaming_policy);
    tcase_add_test(st, test_bad_chunks_are_errors_naming_the_column);
    tcase_add_test(st, test_chunks_read_from_jsonl_too);
    tcase_add_test(st, test_the_synthetic_source_streams_prompts);
    tcase_add_test(st, test_a_context_update_keeps_kv_only_up_to_the_common_prefix);
    tcase_add_test(st, test_stream2llm_victims_take_the_cheaper_of_recompute_and_swap);
    suite_add_tcase(s, st);
    return s;
}
