/* End-to-end runs of the serving cluster: conservation, determinism,
 * metric sanity, energy accounting. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/suites.h"
#include "tests/testutil.h"

START_TEST(test_every_request_finishes_exactly_once)
{
    tu_run r;
    tu_run_sets(NULL, &r);
    ck_assert_uint_eq(r.summary.completed, 200);
    ck_assert_uint_eq(r.n_records, 200);
    for (int id = 0; id < 200; id++)
        ck_assert_int_eq(r.seen[id], 1);
    tu_run_fini(&r);
}
END_TEST

START_TEST(test_same_seed_is_bit_identical_other_seed_differs)
{
    tu_run a, b, c;
    const char *const other[] = {"seed=8", NULL};
    tu_run_sets(NULL, &a);
    tu_run_sets(NULL, &b);
    tu_run_sets(other, &c);
    ck_assert_uint_eq(a.record_hash, b.record_hash);
    ck_assert(memcmp(&a.summary, &b.summary, sizeof a.summary) == 0);
    ck_assert_uint_ne(a.record_hash, c.record_hash);
    tu_run_fini(&a);
    tu_run_fini(&b);
    tu_run_fini(&c);
}
END_TEST

START_TEST(test_latency_metrics_are_ordered_and_positive)
{
    tu_run r;
    tu_run_sets(NULL, &r);
    const run_summary *s = &r.summary;
    ck_assert_double_gt(s->ttft_s.p50, 0);
    ck_assert_double_le(s->ttft_s.p50, s->ttft_s.p90 * (1 + 1e-3));
    ck_assert_double_le(s->ttft_s.p90, s->ttft_s.p99 * (1 + 1e-3));
    ck_assert_double_gt(s->tbt_s.mean, 0);
    ck_assert_double_ge(s->e2e_s.mean, s->ttft_s.mean);
    ck_assert_double_ge(s->slo_attain, 0);
    ck_assert_double_le(s->slo_attain, s->slo_attain_ttft);
    ck_assert_double_le(s->slo_attain, s->slo_attain_tpot);
    ck_assert_double_gt(s->throughput_tok_s, 0);
    ck_assert_double_gt(s->gpu_busy_fraction, 0);
    ck_assert_double_le(s->gpu_busy_fraction, 1);
    ck_assert_double_gt(s->kv_mean_fraction, 0);
    ck_assert_double_le(s->kv_mean_fraction, s->kv_peak_fraction);
    tu_run_fini(&r);
}
END_TEST

START_TEST(test_energy_lies_between_idle_and_max_power)
{
    tu_run r;
    tu_run_sets(NULL, &r);
    const run_summary *s = &r.summary;
    /* One H100 over the run: idle 70 W floor, 700 W ceiling (models/gpu). */
    ck_assert_double_gt(s->energy_j, 70 * s->duration_s * 0.99);
    ck_assert_double_lt(s->energy_j, 700 * s->duration_s);
    ck_assert_double_gt(s->energy_per_out_token_j, 0);
    tu_run_fini(&r);
}
END_TEST

START_TEST(test_more_load_means_higher_latency)
{
    tu_run light, heavy;
    const char *const slow[] = {"workload.arrival.rate_per_s=2", NULL};
    const char *const fast[] = {"workload.arrival.rate_per_s=60", NULL};
    tu_run_sets(slow, &light);
    tu_run_sets(fast, &heavy);
    ck_assert_double_gt(heavy.summary.e2e_s.mean, light.summary.e2e_s.mean);
    ck_assert_double_gt(heavy.summary.gpu_busy_fraction, light.summary.gpu_busy_fraction);
    tu_run_fini(&light);
    tu_run_fini(&heavy);
}
END_TEST

START_TEST(test_every_cost_term_is_tagged_with_its_source)
{
    /* The default cost model is the table: the imported H100 table prices
     * the shapes it has, the roofline the rest. */
    tu_run r;
    tu_run_sets(NULL, &r);
    ck_assert_uint_gt(r.summary.source_terms[COST_SRC_ROOFLINE], 0);
    ck_assert_uint_gt(r.summary.source_terms[COST_SRC_TABLE], 0);
    char buf[64];
    cluster_cost_sources(&r.summary, buf, sizeof buf);
    ck_assert_str_eq(buf, "roofline+table");
    tu_run_fini(&r);
    /* A fixed overhead given in the config replaces the engine's CPU time. */
    const char *const roof[] = {"cost.model=roofline", "cost.iteration_overhead_us=200", NULL};
    tu_run_sets(roof, &r);
    ck_assert_uint_eq(r.summary.source_terms[COST_SRC_TABLE], 0);
    cluster_cost_sources(&r.summary, buf, sizeof buf);
    ck_assert_str_eq(buf, "roofline");
    double total = 0;
    for (int k = 0; k < OP_KIND_COUNT; k++)
        total += r.summary.term_s[k];
    /* The busy time is the operators plus the fixed overhead per iteration. */
    double busy = r.summary.gpu_busy_fraction * r.summary.duration_s;
    ck_assert_double_eq_tol(total + r.summary.iterations * 200e-6, busy, busy * 1e-3);
    tu_run_fini(&r);
}
END_TEST


/* ---- pools, moves, lifecycle, controllers ------------------------------------- */

/* A run with hooks of the test's and an optional controller given as ops
 * (not from the registry); the cluster is handed back for inspection. */
typedef struct probe_run {
    run_config cfg;
    cluster *c;
    run_summary summary;
    cluster_counts counts;
} probe_run;

static void probe_start(probe_run *p, const char *const *sets, const control_policy_ops *ctl,
                        double period_ms, const cluster_hooks *hooks)
{
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    tu_parse(root, &p->cfg);
    if (ctl) {
        p->cfg.sys.control.ops = ctl;
        p->cfg.sys.control.params = NULL;
        p->cfg.sys.control.period_ns = (sim_time_ns)(period_ms * 1e6);
    }
    sim_err err = {{0}};
    p->c = cluster_create(&p->cfg.sys, hooks, &err);
    ck_assert_msg(p->c, "%s", err.msg);
    ck_assert_msg(cluster_run(p->c, &err) == 0, "%s", err.msg);
    cluster_summarize(p->c, &p->summary);
    cluster_get_counts(p->c, &p->counts);
}

static void probe_fini(probe_run *p)
{
    cluster_destroy(p->c);
    run_config_fini(&p->cfg);
}

/* Controllers for the tests: state in statics is fine here (one run at a
 * time), a real policy keeps it in its state. */
static int ctl_init(const control_setup *s, cJSON *params, const char *path, void **state,
                    sim_err *err)
{
    (void)s, (void)params, (void)path, (void)err;
    *state = NULL;
    return 0;
}

/* Moves request 0 to the other instance, with its KV, once it has produced
 * a few tokens; remembers what it saw. */
static struct {
    int moved;
    int32_t from, computed, generated;
} mover;

static void mover_tick(void *state, const control_view *v, control_plan *plan)
{
    (void)state;
    if (mover.moved)
        return;
    for (int32_t i = 0; i < v->n_instances; i++) {
        int32_t n;
        const serve_req *const *run = v->running(v, i, &n);
        for (int32_t k = 0; k < n; k++)
            if (run[k]->id == 0 && run[k]->generated_tokens >= 5 &&
                run[k]->generated_tokens < run[k]->output_tokens - 5) {
                mover.moved = 1, mover.from = i, mover.computed = run[k]->computed_tokens;
                mover.generated = run[k]->generated_tokens;
                control_add(plan, (control_action){.kind = CTRL_MOVE, .req = run[k],
                                                   .to = 1 - i, .mode = MOVE_WITH_KV});
            }
    }
}

static const control_policy_ops ctl_mover = {"test_mover", ctl_init, mover_tick, NULL};

/* Iterations of request 0 after the move: where, and how many tokens. */
static struct {
    int32_t instance, first_tokens, prefills;
} after;

static void watch_req0(void *ctx, const iter_info *it)
{
    (void)ctx;
    for (int32_t k = 0; k < it->n_items; k++)
        if (it->items[k].req->id == 0 && mover.moved && it->instance != mover.from) {
            if (after.instance < 0)
                after.first_tokens = it->items[k].tokens;
            after.instance = it->instance;
            after.prefills += it->items[k].tokens > 1;
        }
}

START_TEST(test_request_moved_mid_decode_finishes_with_the_same_tokens)
{
    memset(&mover, 0, sizeof mover);
    after.instance = -1, after.first_tokens = 0, after.prefills = 0;
    const char *const sets[] = {"cluster.instances=2", "workload.requests=40",
                                "workload.output_tokens={\"dist\": \"fixed\", \"value\": 200}",
                                NULL};
    cluster_hooks hooks = {.on_iteration = watch_req0};
    probe_run p;
    probe_start(&p, sets, &ctl_mover, 50, &hooks);
    ck_assert_int_eq(mover.moved, 1);
    ck_assert_uint_eq(p.counts.moves_started, 1);
    ck_assert_uint_eq(p.counts.moves_done, 1);
    ck_assert_uint_eq(p.counts.moves_aborted, 0);
    /* It went on decoding on the other instance: one token at a time, its
     * prompt never computed again. */
    ck_assert_int_eq(after.instance, 1 - mover.from);
    ck_assert_int_eq(after.first_tokens, 1);
    ck_assert_int_eq(after.prefills, 0);
    /* Its KV travelled: computed tokens x 128 KiB (Llama-3-8B, tp 1), as
     * many as it had when the tick saw it, or one more if the iteration it
     * was in had to end first. */
    ck_assert(p.counts.move_bytes == (uint64_t)mover.computed * 131072 ||
              p.counts.move_bytes == (uint64_t)(mover.computed + 1) * 131072);
    /* Every request finished with its own output length; nothing recomputed. */
    ck_assert_uint_eq(p.summary.completed, 40);
    ck_assert_uint_eq(p.summary.output_tokens, 40 * 200);
    ck_assert_uint_eq(p.summary.recomputed_tokens, 0);
    instance_summary a, b;
    cluster_instance_summary(p.c, mover.from, &a);
    cluster_instance_summary(p.c, 1 - mover.from, &b);
    ck_assert_uint_eq(a.moved_out, 1);
    ck_assert_uint_eq(b.moved_in, 1);
    probe_fini(&p);
}
END_TEST

/* Checks, at every tick, that what the view says agrees with itself: the
 * queues it lists have the lengths it reports, every request it shows is
 * where it says and in the state it says, KV within bounds, pools list
 * their instances. */
static struct {
    int ticks, bad;
} seen;

static void checker_tick(void *state, const control_view *v, control_plan *plan)
{
    (void)state, (void)plan;
    seen.ticks++;
    int32_t listed = 0;
    for (int32_t k = 0; k < v->n_pools; k++)
        listed += v->pools[k].n_instances;
    seen.bad += listed != v->n_instances;
    for (int32_t i = 0; i < v->n_instances; i++) {
        const inst_view *iv = &v->inst[i];
        int32_t n = 0, nr;
        for (const serve_req *r = v->waiting_first(v, i); r; r = req_next_waiting(r), n++)
            seen.bad += r->instance != i || r->state != REQ_WAITING;
        seen.bad += n != iv->n_waiting;
        const serve_req *const *run = v->running(v, i, &nr);
        seen.bad += nr != iv->n_running;
        for (int32_t k = 0; k < nr; k++)
            seen.bad += run[k]->instance != i || run[k]->state != REQ_RUNNING;
        seen.bad += iv->kv_free_blocks < 0 || iv->kv_free_blocks > iv->kv_total_blocks;
        seen.bad += iv->outstanding_tokens < 0;
    }
}

static const control_policy_ops ctl_checker = {"test_checker", ctl_init, checker_tick, NULL};

START_TEST(test_controller_tick_sees_a_consistent_view)
{
    memset(&seen, 0, sizeof seen);
    const char *const sets[] = {"cluster.instances=3", "workload.arrival.rate_per_s=80",
                                "workload.requests=300", NULL};
    probe_run p;
    probe_start(&p, sets, &ctl_checker, 7, NULL);
    ck_assert_int_gt(seen.ticks, 50);
    ck_assert_int_eq(seen.bad, 0);
    ck_assert_uint_eq(p.counts.control_ticks, (uint64_t)seen.ticks);
    /* Ticking only reads: the run is the one without a controller. */
    tu_run plain;
    tu_run_sets(sets, &plain);
    ck_assert_double_eq(plain.summary.ttft_s.mean, p.summary.ttft_s.mean);
    ck_assert_uint_eq(plain.summary.events, p.summary.events);
    tu_run_fini(&plain);
    probe_fini(&p);
}
END_TEST

START_TEST(test_balance_queues_moves_waiting_requests_to_the_shortest_queue)
{
    /* Round robin on skewed prompts piles queues up unevenly; the
     * controller evens them out, and shortens queueing. Queues form under
     * prefill-first with 256 sequences (the legacy engine); vLLM V1's
     * defaults admit nearly everything at once, leaving little to move. */
    const char *const base[] = {"engine=legacy", "cluster.instances=4",
                                "workload.arrival.rate_per_s=90",
                                "workload.requests=600",
                                "workload.input_tokens={\"dist\": \"lognormal\", \"mean\": "
                                "1500, \"sigma\": 1.5, \"max\": 6000}", NULL};
    const char *const ctl[] = {"policies.control={\"name\": \"balance_queues\", "
                               "\"period_ms\": 100, \"params\": {\"threshold\": 2}}", NULL};
    probe_run plain, balanced;
    probe_start(&plain, base, NULL, 0, NULL);
    cJSON *root = tu_base_config();
    tu_set(root, base);
    tu_set(root, ctl);
    tu_parse(root, &balanced.cfg);
    sim_err err = {{0}};
    balanced.c = cluster_create(&balanced.cfg.sys, NULL, &err);
    ck_assert_msg(balanced.c, "%s", err.msg);
    ck_assert_int_eq(cluster_run(balanced.c, &err), 0);
    cluster_summarize(balanced.c, &balanced.summary);
    cluster_get_counts(balanced.c, &balanced.counts);
    ck_assert_uint_eq(balanced.summary.completed, 600);
    ck_assert_uint_gt(balanced.counts.moves_done, 0);
    ck_assert_uint_eq(balanced.counts.moves_done, balanced.counts.actions_applied);
    ck_assert_double_lt(balanced.summary.queue_s.p99, plain.summary.queue_s.p99);
    probe_fini(&plain);
    probe_fini(&balanced);
}
END_TEST

/* Scales pool 0 up by one at the first tick, and down by one at a later
 * tick; records when. */
static struct {
    int ticks;
    sim_time_ns up_at, down_at;
    sim_time_ns down_after;
} scaler;

static void scaler_tick(void *state, const control_view *v, control_plan *plan)
{
    (void)state;
    if (scaler.ticks++ == 0) {
        scaler.up_at = v->now;
        control_add(plan, (control_action){.kind = CTRL_SCALE, .pool = 0, .delta = 1});
    } else if (!scaler.down_at && v->now >= scaler.down_after) {
        scaler.down_at = v->now;
        control_add(plan, (control_action){.kind = CTRL_SCALE, .pool = 0, .delta = -1});
    }
}

static const control_policy_ops ctl_scaler = {"test_scaler", ctl_init, scaler_tick, NULL};

START_TEST(test_instance_lifecycle_times_and_gpu_hours_add_up)
{
    memset(&scaler, 0, sizeof scaler);
    scaler.down_after = 50 * SIM_NS_PER_S;
    /* 2 GB/s of storage per node: Llama-3-8B's 16.06 GB at tp 1 loads in
     * about 8 s, plus 1 ms of latency. */
    const char *const sets[] = {
        "cluster.pools=[{\"name\": \"p\", \"instances\": 1, \"max_instances\": 2, "
        "\"lifecycle\": {\"provision_s\": 3, \"init_s\": 5}}]",
        "cluster.topology={\"storage_gbps\": 16, \"storage_latency_ms\": 1}",
        "workload.requests=900", "workload.arrival.rate_per_s=12", NULL};
    probe_run p;
    probe_start(&p, sets, &ctl_scaler, 1000, NULL);
    ck_assert_int_eq(cluster_n_instances(p.c), 2);
    ck_assert_uint_eq(p.counts.scale_ups, 1);
    ck_assert_uint_eq(p.counts.scale_downs, 1);
    ck_assert_uint_eq(p.summary.completed, 900);
    instance_summary s;
    cluster_instance_summary(p.c, 1, &s);
    double weights = llm_weight_bytes_per_gpu(&p.cfg.sys.pools[0].model, &PAR_TP(1));
    double loading = 1e-3 + weights / 2e9;
    ck_assert_double_eq_tol(s.state_s[INST_PROVISIONING], 3, 1e-9);
    ck_assert_double_eq_tol(s.state_s[INST_LOADING], loading, 1e-8);
    ck_assert_double_eq_tol(s.state_s[INST_WARMING], 5, 1e-9);
    /* It was the newest, so it drained and stopped; its time from creation
     * to stop is the sum of its states, and GPU-seconds follow. */
    ck_assert_double_gt(s.state_s[INST_ACTIVE], 30);
    ck_assert_double_gt(s.state_s[INST_STOPPED], 1);
    double total = 0;
    for (int st = 0; st < INST_STOPPED; st++)
        total += s.state_s[st];
    pool_summary ps;
    cluster_pool_summary(p.c, 0, &ps);
    instance_summary first;
    cluster_instance_summary(p.c, 0, &first);
    double first_total = 0;
    for (int st = 0; st < INST_STOPPED; st++)
        first_total += first.state_s[st];
    double gpu_s = 0;
    for (int st = 0; st < INST_STOPPED; st++)
        gpu_s += ps.gpu_s[st];
    ck_assert_double_eq_tol(gpu_s, total + first_total, 1e-6);
    /* The first instance lived the whole run. */
    ck_assert_double_eq_tol(first_total, p.summary.duration_s, 1e-6);
    ck_assert_double_lt(total, p.summary.duration_s);
    probe_fini(&p);
}
END_TEST

START_TEST(test_prefill_pool_hands_requests_to_the_decode_pool)
{
    const char *const sets[] = {
        "cluster.pools=[{\"name\": \"P\", \"role\": \"prefill\"}, "
        "{\"name\": \"D\", \"role\": \"decode\"}]", NULL};
    probe_run p;
    probe_start(&p, sets, NULL, 0, NULL);
    ck_assert_uint_eq(p.summary.completed, 200);
    pool_summary pre, dec;
    cluster_pool_summary(p.c, 0, &pre);
    cluster_pool_summary(p.c, 1, &dec);
    /* Every request with more than one output token decodes in D. */
    ck_assert_uint_eq(p.counts.handoffs, p.counts.moves_done);
    ck_assert_uint_gt(p.counts.handoffs, 190);
    ck_assert_uint_eq(pre.moved_out, p.counts.handoffs);
    ck_assert_uint_eq(dec.moved_in, p.counts.handoffs);
    ck_assert_uint_eq(pre.completed + dec.completed, 200);
    ck_assert_uint_eq(dec.completed, p.counts.handoffs);
    probe_fini(&p);
}
END_TEST

START_TEST(test_single_pool_config_equals_the_legacy_one)
{
    /* The same cluster written as one explicit pool gives the same run. */
    const char *const legacy[] = {"cluster.instances=2", NULL};
    const char *const pooled[] = {"cluster.pools=[{\"instances\": 2}]", NULL};
    tu_run a, b;
    tu_run_sets(legacy, &a);
    tu_run_sets(pooled, &b);
    ck_assert_uint_eq(a.record_hash, b.record_hash);
    ck_assert(a.summary.energy_j == b.summary.energy_j);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

START_TEST(test_results_are_reported_per_slo_class_and_tenant)
{
    /* 60 requests: class 0 with a generous TTFT target, class 2 with one
     * nobody meets; tenants 0, 1, 2 in turn. */
    char *dir = tu_tempdir(), path[512];
    snprintf(path, sizeof path, "%s/classes.csv", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("arrival_s,input_tokens,output_tokens,slo_class,tenant,ttft_slo_ms\n", f);
    for (int i = 0; i < 60; i++)
        fprintf(f, "%.3f,%d,%d,%d,%d,%s\n", i * 0.05, 200 + 10 * i, 20 + i, i % 2 ? 2 : 0,
                i % 3, i % 2 ? "0.001" : "100000");
    fclose(f);
    char set[600];
    snprintf(set, sizeof set, "workload={\"source\": \"native\", \"path\": \"%s\"}", path);
    const char *const sets[] = {set, NULL};
    probe_run p;
    probe_start(&p, sets, NULL, 0, NULL);
    ck_assert_int_eq(cluster_n_groups(p.c, METRICS_BY_CLASS), 2);
    group_summary g0, g2;
    cluster_group_summary(p.c, METRICS_BY_CLASS, 0, &g0);
    cluster_group_summary(p.c, METRICS_BY_CLASS, 1, &g2);
    ck_assert_int_eq(g0.id, 0);
    ck_assert_int_eq(g2.id, 2);
    ck_assert_uint_eq(g0.completed, 30);
    ck_assert_uint_eq(g2.completed, 30);
    ck_assert_double_eq(g0.slo_attain_ttft, 1.0);
    ck_assert_double_eq(g2.slo_attain_ttft, 0.0);
    ck_assert_uint_eq(g2.good_tokens, 0);
    /* Goodput counts the tokens of requests that met both targets. */
    ck_assert_uint_le(g0.good_tokens, g0.output_tokens);
    ck_assert_uint_eq(g0.good_tokens == g0.output_tokens, g0.slo_attain == 1.0);
    uint64_t out0 = 0;
    for (int i = 0; i < 60; i += 2)
        out0 += (uint64_t)(20 + i);
    ck_assert_uint_eq(g0.output_tokens, out0);
    ck_assert_double_le(g0.ttft_s.p50, g0.ttft_s.p99);
    ck_assert_int_eq(cluster_n_groups(p.c, METRICS_BY_TENANT), 3);
    uint64_t total = 0;
    for (int k = 0; k < 3; k++) {
        group_summary t;
        cluster_group_summary(p.c, METRICS_BY_TENANT, k, &t);
        ck_assert_int_eq(t.id, k);
        ck_assert_uint_eq(t.completed, 20);
        total += t.output_tokens;
    }
    ck_assert_uint_eq(total, p.summary.output_tokens);
    probe_fini(&p);
    unlink(path);
    rmdir(dir);
    free(dir);
}
END_TEST

static int fail_after_10(void *ctx, const req_record *rec)
{
    (void)rec;
    int *n = ctx;
    return ++*n > 10 ? -1 : 0;
}

START_TEST(test_a_failing_record_sink_stops_the_run_with_an_error)
{
    cJSON *root = tu_base_config();
    run_config cfg;
    tu_parse(root, &cfg);
    int n = 0;
    cluster_hooks hooks = {.on_record = fail_after_10, .record_ctx = &n};
    sim_err err = {{0}};
    cluster *c = cluster_create(&cfg.sys, &hooks, &err);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(cluster_run(c, &err), -1);
    ck_assert_msg(strstr(err.msg, "sink failed"), "%s", err.msg);
    ck_assert_int_eq(n, 11);   /* nothing offered after the failure */
    run_summary s;
    cluster_summarize(c, &s);
    ck_assert_uint_lt(s.completed, 200);
    cluster_destroy(c);
    run_config_fini(&cfg);
}
END_TEST

Suite *cluster_suite(void)
{
    Suite *s = suite_create("cluster");
    TCase *tc = tcase_create("end_to_end");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_every_request_finishes_exactly_once);
    tcase_add_test(tc, test_same_seed_is_bit_identical_other_seed_differs);
    tcase_add_test(tc, test_latency_metrics_are_ordered_and_positive);
    tcase_add_test(tc, test_energy_lies_between_idle_and_max_power);
    tcase_add_test(tc, test_more_load_means_higher_latency);
    tcase_add_test(tc, test_every_cost_term_is_tagged_with_its_source);
    tcase_add_test(tc, test_request_moved_mid_decode_finishes_with_the_same_tokens);
    tcase_add_test(tc, test_controller_tick_sees_a_consistent_view);
    tcase_add_test(tc, test_balance_queues_moves_waiting_requests_to_the_shortest_queue);
    tcase_add_test(tc, test_instance_lifecycle_times_and_gpu_hours_add_up);
    tcase_add_test(tc, test_prefill_pool_hands_requests_to_the_decode_pool);
    tcase_add_test(tc, test_single_pool_config_equals_the_legacy_one);
    tcase_add_test(tc, test_results_are_reported_per_slo_class_and_tenant);
    tcase_add_test(tc, test_a_failing_record_sink_stops_the_run_with_an_error);
    suite_add_tcase(s, tc);
    return s;
}
