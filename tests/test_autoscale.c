/* Elastic scaling: the autoscaler family (api/scale.h) and the core that
 * applies it (bounds, cooldowns, draining), cold starts by load source, and
 * GPU-time and cost accounting. */
#include <check.h>
#include <math.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "policies/registry.h"
#include "traces/gen.h"
#include "serve/cluster.h"
#include "tests/suites.h"
#include "tests/testutil.h"

/* ---- a run with a test autoscaler ------------------------------------------ */

typedef struct as_run {
    run_config cfg;
    cluster *c;
    run_summary summary;
    cluster_counts counts;
    uint64_t records;
    uint8_t seen[20000];
} as_run;

static int count_record(void *ctx, const req_record *rec)
{
    as_run *r = ctx;
    r->records++;
    if (rec->id < sizeof r->seen)
        r->seen[rec->id]++;
    return 0;
}

/* Runs the base config with `sets`; `ops` (may be NULL) replaces the
 * config's autoscaler, ticking every period_ms. */
static void as_start(as_run *r, const char *const *sets, const scale_policy_ops *ops,
                     double period_ms, sim_time_ns up_cooldown_ns, sim_time_ns down_cooldown_ns)
{
    memset(r, 0, sizeof *r);
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    tu_parse(root, &r->cfg);
    if (ops) {
        r->cfg.sys.scale = (scale_choice){.ops = ops, .period_ns = (sim_time_ns)(period_ms * 1e6),
                                          .up_cooldown_ns = up_cooldown_ns,
                                          .down_cooldown_ns = down_cooldown_ns};
    }
    cluster_hooks hooks = {.on_record = count_record, .record_ctx = r};
    sim_err err = {{0}};
    r->c = cluster_create(&r->cfg.sys, &hooks, &err);
    ck_assert_msg(r->c, "%s", err.msg);
    ck_assert_msg(cluster_run(r->c, &err) == 0, "%s", err.msg);
    cluster_summarize(r->c, &r->summary);
    cluster_get_counts(r->c, &r->counts);
}

static void as_fini(as_run *r)
{
    cluster_destroy(r->c);
    run_config_fini(&r->cfg);
}

static int t_init(const scale_setup *s, cJSON *params, const char *path, void **state,
                  sim_err *err)
{
    (void)s, (void)params, (void)path, (void)err;
    *state = NULL;
    return 0;
}

/* Test policies keep what they saw in statics (one run at a time). */
static struct {
    int ticks;
    int32_t want;            /* what `fixed` asks for */
    sim_time_ns after_ns;    /* ... from this time on */
    int32_t max_live, min_current, bad;
    sim_time_ns up_at[64];
    int32_t n_up, last_current;
} probe;

static void probe_reset(int32_t want, sim_time_ns after_ns)
{
    memset(&probe, 0, sizeof probe);
    probe.want = want, probe.after_ns = after_ns;
    probe.min_current = INT32_MAX, probe.last_current = -1;
}

/* Asks for probe.want instances in pool 0 from after_ns on; records the
 * pool's counts and when it grew. */
static void fixed_decide(void *state, const scale_view *v, int32_t *desired)
{
    (void)state;
    const scale_pool_view *p = &v->pools[0];
    probe.ticks++;
    int32_t live = 0;
    for (int s = 0; s < INST_STOPPED; s++)
        live += p->n_state[s];
    int32_t listed = 0;
    for (int s = 0; s < INST_STATE_COUNT; s++)
        listed += p->n_state[s];
    probe.bad += listed != v->n_instances || p->current != live - p->n_state[INST_DRAINING];
    if (live > probe.max_live)
        probe.max_live = live;
    if (p->current < probe.min_current)
        probe.min_current = p->current;
    if (probe.last_current >= 0 && p->current > probe.last_current && probe.n_up < 64)
        probe.up_at[probe.n_up++] = v->now;
    probe.last_current = p->current;
    if (v->now >= probe.after_ns)
        desired[0] = probe.want;
}

static const scale_policy_ops t_fixed = {"test_fixed", t_init, fixed_decide, NULL};

/* Always one more than the pool has. */
static void more_decide(void *state, const scale_view *v, int32_t *desired)
{
    fixed_decide(state, v, desired);
    desired[0] = v->pools[0].current + 1;
}

static const scale_policy_ops t_more = {"test_more", t_init, more_decide, NULL};

/* Always one fewer. */
static void less_decide(void *state, const scale_view *v, int32_t *desired)
{
    fixed_decide(state, v, desired);
    desired[0] = v->pools[0].current - 1;
}

static const scale_policy_ops t_less = {"test_less", t_init, less_decide, NULL};

/* ---- cold starts ------------------------------------------------------------ */

/* One instance joins at the first tick; returns its time in each state. */
static void cold_start(const char *lifecycle, instance_summary *s, as_run *r)
{
    char pools[400];
    snprintf(pools, sizeof pools,
             "cluster.pools=[{\"name\": \"p\", \"instances\": 1, \"max_instances\": 2, "
             "\"lifecycle\": %s}]", lifecycle);
    const char *const sets[] = {pools,
                                "cluster.topology={\"storage_gbps\": 16, "
                                "\"storage_latency_ms\": 1}",
                                "workload.requests=400", NULL};
    probe_reset(2, 0);
    as_start(r, sets, &t_fixed, 1000, 0, 0);
    ck_assert_int_eq(cluster_n_instances(r->c), 2);
    ck_assert_uint_eq(r->summary.completed, 400);
    cluster_instance_summary(r->c, 1, s);
}

START_TEST(test_cold_start_takes_the_sum_of_its_terms)
{
    as_run r;
    instance_summary s;
    /* From storage: 2 GB/s per node and 1 ms; the engine's two terms. */
    cold_start("{\"provision_s\": 3, \"engine_start_s\": 4, \"graph_capture_s\": 1.5}", &s, &r);
    double bytes = r.cfg.sys.pools[0].lifecycle.weight_bytes_per_gpu;
    ck_assert_double_gt(bytes, 16e9);   /* Llama-3-8B in BF16 */
    ck_assert_double_eq_tol(s.state_s[INST_PROVISIONING], 3, 1e-9);
    ck_assert_double_eq_tol(s.state_s[INST_LOADING], 1e-3 + bytes / 2e9, 1e-8);
    ck_assert_double_eq_tol(s.state_s[INST_WARMING], 5.5, 1e-9);
    as_fini(&r);
    /* From host memory: its own PCIe link, at the GPU's rate. */
    cold_start("{\"provision_s\": 3, \"init_s\": 5, \"source\": \"host\"}", &s, &r);
    const pool_setup *ps = &r.cfg.sys.pools[0];
    double pcie = bytes / ps->gpu.pcie_bw_bytes_per_s +
                  r.cfg.sys.topology.pcie_latency_ns / 1e9;
    ck_assert_double_eq_tol(s.state_s[INST_LOADING], pcie, 1e-8);
    ck_assert_double_eq_tol(s.state_s[INST_WARMING], 5, 1e-9);
    as_fini(&r);
    /* From the live instance on its node, over NVLink (two ports). */
    cold_start("{\"provision_s\": 3, \"init_s\": 5, \"source\": \"peer\"}", &s, &r);
    ps = &r.cfg.sys.pools[0];
    double nv = bytes / ps->gpu.nvlink_bw_bytes_per_s +
                2 * r.cfg.sys.topology.nvlink_latency_ns / 1e9;
    ck_assert_double_eq_tol(s.state_s[INST_LOADING], nv, 1e-8);
    ck_assert_double_lt(s.state_s[INST_LOADING], 1e-3 + bytes / 2e9);
    as_fini(&r);
}
END_TEST

START_TEST(test_lifecycle_keys_are_checked)
{
    const char *const both[] = {
        "cluster.pools=[{\"lifecycle\": {\"init_s\": 5, \"graph_capture_s\": 2}}]", NULL};
    const char *const source[] = {"cluster.pools=[{\"lifecycle\": {\"source\": \"tape\"}}]",
                                  NULL};
    const char *const scale[] = {"policies.scale={\"name\": \"nope\"}", NULL};
    const char *const sched[] = {"policies.scale={\"name\": \"schedule\", \"params\": "
                                 "{\"schedule\": [[5, 1]]}}", NULL};
    const char *const drain[] = {"cluster.pools=[{\"lifecycle\": {\"drain\": \"kill\"}}]",
                                 NULL};
    const char *const *bad[] = {both, source, scale, drain};
    const char *want[] = {"not both", "$.cluster.pools[0].lifecycle.source: expected one of",
                          "$.policies.scale.name", "$.cluster.pools[0].lifecycle.drain: expected"};
    for (int k = 0; k < 4; k++) {
        cJSON *root = tu_base_config();
        tu_set(root, bad[k]);
        run_config cfg;
        sim_err err = {{0}};
        ck_assert_int_ne(run_config_parse(root, &cfg, &err), 0);
        ck_assert_msg(strstr(err.msg, want[k]), "%s", err.msg);   /* root freed */
    }
    /* A policy's params are checked when the cluster is made. */
    cJSON *root = tu_base_config();
    tu_set(root, sched);
    run_config cfg;
    tu_parse(root, &cfg);
    sim_err err = {{0}};
    ck_assert_ptr_null(cluster_create(&cfg.sys, NULL, &err));
    ck_assert_msg(strstr(err.msg, "$.policies.scale.params.schedule[0]: starts must begin at 0"),
                  "%s", err.msg);
    run_config_fini(&cfg);
}
END_TEST

/* ---- the core: draining, bounds, cooldowns ---------------------------------- */

START_TEST(test_scale_down_drains_and_loses_no_request)
{
    /* Three busy instances shrink to one mid-run: the two newest drain, their
     * queues move, their running requests finish where they are. */
    const char *const sets[] = {
        "cluster.pools=[{\"name\": \"p\", \"instances\": 3, \"min_instances\": 1}]",
        "instance.max_seqs=8", "workload.requests=1500", "workload.arrival.rate_per_s=40",
        NULL};
    probe_reset(1, 15 * SIM_NS_PER_S);
    as_run r;
    as_start(&r, sets, &t_fixed, 1000, 0, 0);
    ck_assert_uint_eq(r.counts.scale_downs, 2);
    ck_assert_uint_eq(r.counts.scale_ups, 0);
    ck_assert_uint_eq(r.summary.completed, 1500);
    ck_assert_uint_eq(r.records, 1500);
    for (int id = 0; id < 1500; id++)
        ck_assert_int_eq(r.seen[id], 1);
    /* The drained instances had waiting requests to hand over, and stopped. */
    ck_assert_uint_gt(r.counts.moves_done, 0);
    for (int32_t i = 1; i < 3; i++) {
        instance_summary s;
        cluster_instance_summary(r.c, i, &s);
        ck_assert_double_gt(s.state_s[INST_STOPPED], 1);
        ck_assert_double_gt(s.state_s[INST_DRAINING], 0);
        ck_assert_uint_gt(s.completed, 0);
    }
    ck_assert_int_eq(probe.bad, 0);
    as_fini(&r);
}
END_TEST

START_TEST(test_drain_by_migration_moves_running_requests_with_their_kv)
{
    /* As above, draining with "migrate": the running requests move with
     * their KV, so the drained instances stop sooner; none is lost. */
    double drain_s[2];
    for (int migrate = 0; migrate < 2; migrate++) {
        char pools[300];
        snprintf(pools, sizeof pools,
                 "cluster.pools=[{\"name\": \"p\", \"instances\": 3, \"min_instances\": 1, "
                 "\"lifecycle\": {\"drain\": \"%s\"}}]", migrate ? "migrate" : "finish");
        const char *const sets[] = {pools, "instance.max_seqs=8", "workload.requests=1500",
                                    "workload.arrival.rate_per_s=40", NULL};
        probe_reset(1, 15 * SIM_NS_PER_S);
        as_run r;
        as_start(&r, sets, &t_fixed, 1000, 0, 0);
        ck_assert_uint_eq(r.summary.completed, 1500);
        for (int id = 0; id < 1500; id++)
            ck_assert_int_eq(r.seen[id], 1);
        drain_s[migrate] = 0;
        for (int32_t i = 1; i < 3; i++) {
            instance_summary s;
            cluster_instance_summary(r.c, i, &s);
            drain_s[migrate] += s.state_s[INST_DRAINING];
        }
        if (migrate)
            ck_assert_uint_gt(r.counts.move_bytes, 0);   /* KV travelled */
        else
            ck_assert_uint_eq(r.counts.move_bytes, 0);
        as_fini(&r);
    }
    ck_assert_double_lt(drain_s[1], drain_s[0] / 2);
}
END_TEST

START_TEST(test_provisioning_jitter_stays_within_its_bounds)
{
    /* 10 +- 4 s; drawn from the lifecycle's own stream. */
    const char *const sets[] = {
        "cluster.pools=[{\"name\": \"p\", \"instances\": 1, \"max_instances\": 6, "
        "\"lifecycle\": {\"provision_s\": 10, \"provision_jitter_s\": 4, \"init_s\": 1}}]",
        "workload.requests=600", NULL};
    probe_reset(6, 0);
    as_run r;
    as_start(&r, sets, &t_fixed, 1000, 0, 0);
    ck_assert_uint_eq(r.counts.scale_ups, 5);
    double lo = 1e9, hi = 0;
    for (int32_t i = 1; i < 6; i++) {
        instance_summary s;
        cluster_instance_summary(r.c, i, &s);
        double p = s.state_s[INST_PROVISIONING];
        ck_assert_double_ge(p, 6 - 1e-9);
        ck_assert_double_le(p, 14 + 1e-9);
        lo = p < lo ? p : lo, hi = p > hi ? p : hi;
    }
    ck_assert_double_gt(hi - lo, 0.1);   /* they differ */
    as_fini(&r);
}
END_TEST

START_TEST(test_bounds_and_cooldowns_are_respected)
{
    /* Asked for one more at every 1 s tick: the pool grows at most every
     * 10 s (up_cooldown) and never past max_instances. */
    const char *const sets[] = {
        "cluster.pools=[{\"name\": \"p\", \"instances\": 1, \"max_instances\": 4, "
        "\"lifecycle\": {\"provision_s\": 1, \"init_s\": 1}}]",
        "workload.requests=1200", "workload.arrival.rate_per_s=20", NULL};
    probe_reset(0, 0);
    as_run r;
    as_start(&r, sets, &t_more, 1000, 10 * SIM_NS_PER_S, 0);
    ck_assert_int_eq(probe.bad, 0);
    ck_assert_int_eq(probe.max_live, 4);
    ck_assert_uint_eq(r.counts.scale_ups, 3);
    ck_assert_int_eq(probe.n_up, 3);
    for (int k = 1; k < probe.n_up; k++)
        ck_assert_int_ge(probe.up_at[k] - probe.up_at[k - 1], 10 * SIM_NS_PER_S);
    ck_assert_uint_eq(r.summary.completed, 1200);
    as_fini(&r);
    /* Asked for one fewer at every tick: it stops at min_instances (2), and
     * shrinks only once down_cooldown (30 s) has passed since the last
     * action. */
    const char *const down[] = {
        "cluster.pools=[{\"name\": \"p\", \"instances\": 4, \"min_instances\": 2}]",
        "workload.requests=1200", "workload.arrival.rate_per_s=20", NULL};
    probe_reset(0, 0);
    as_start(&r, down, &t_less, 1000, 0, 30 * SIM_NS_PER_S);
    ck_assert_int_eq(probe.min_current, 2);
    ck_assert_uint_eq(r.counts.scale_downs, 2);
    ck_assert_uint_eq(r.summary.completed, 1200);
    /* The first drain at the first tick (t = 0), the second 30 s later. */
    instance_summary s3, s2;
    cluster_instance_summary(r.c, 3, &s3);
    cluster_instance_summary(r.c, 2, &s2);
    ck_assert_double_lt(s3.state_s[INST_ACTIVE], 1e-9);
    /* (active from the first arrival, a few ms in) */
    ck_assert_double_gt(s2.state_s[INST_ACTIVE], 29.9);
    ck_assert_double_le(s2.state_s[INST_ACTIVE], 30);
    as_fini(&r);
}
END_TEST

START_TEST(test_an_empty_pool_starts_an_instance_for_waiting_requests)
{
    /* Scale from zero: the policy asks for none, but requests wait for an
     * instance, so the core starts one; they wait out its cold start. */
    const char *const sets[] = {
        "cluster.pools=[{\"name\": \"p\", \"instances\": 0, \"min_instances\": 0, "
        "\"max_instances\": 2, \"lifecycle\": {\"provision_s\": 2, \"init_s\": 3}}]",
        "workload.requests=300", NULL};
    probe_reset(0, 0);
    as_run r;
    as_start(&r, sets, &t_fixed, 1000, 0, 0);
    ck_assert_uint_eq(r.summary.completed, 300);
    ck_assert_uint_ge(r.counts.scale_ups, 1);
    /* The first request waited at least the cold start (5 s + loading). */
    ck_assert_double_gt(r.summary.ttft_s.p99, 5);
    as_fini(&r);
}
END_TEST

/* 1 from 10 s, 3 from 40 s. */
static void two_step_decide(void *state, const scale_view *v, int32_t *desired)
{
    fixed_decide(state, v, desired);
    if (v->now >= 40 * SIM_NS_PER_S)
        desired[0] = 3;
    else if (v->now >= 10 * SIM_NS_PER_S)
        desired[0] = 1;
}

static const scale_policy_ops t_two_step = {"test_two_step", t_init, two_step_decide, NULL};

START_TEST(test_stopped_instances_restart_in_their_slots)
{
    /* Down to 1 at 10 s, back to 3 at 40 s: the stopped slots start again
     * cold (provisioning, loading, warming), the pool never has more slots
     * than max_instances, and no request is lost. */
    const char *const sets[] = {
        "cluster.pools=[{\"name\": \"p\", \"instances\": 3, \"min_instances\": 1, "
        "\"lifecycle\": {\"provision_s\": 2, \"init_s\": 3}}]",
        "workload.requests=2000", "workload.arrival.rate_per_s=25", NULL};
    probe_reset(0, SIM_TIME_NEVER);
    as_run r;
    as_start(&r, sets, &t_two_step, 1000, 0, 0);
    ck_assert_int_eq(cluster_n_instances(r.c), 3);
    ck_assert_uint_eq(r.counts.scale_downs, 2);
    ck_assert_uint_eq(r.counts.scale_ups, 2);
    ck_assert_uint_eq(r.summary.completed, 2000);
    for (int id = 0; id < 2000; id++)
        ck_assert_int_eq(r.seen[id], 1);
    for (int32_t i = 1; i < 3; i++) {
        instance_summary s;
        cluster_instance_summary(r.c, i, &s);
        ck_assert_double_eq_tol(s.state_s[INST_PROVISIONING], 2, 1e-9);
        ck_assert_double_eq_tol(s.state_s[INST_WARMING], 3, 1e-9);
        ck_assert_double_gt(s.state_s[INST_LOADING], 1);
        /* Stopped from its drain's end to 40 s. */
        ck_assert_double_gt(s.state_s[INST_STOPPED], 20);
    }
    ck_assert_int_eq(probe.max_live, 3);
    as_fini(&r);
}
END_TEST

/* ---- the HPA rule on a hand-built series ------------------------------------ */

static void hpa_tick(const scale_policy_ops *ops, void *st, sim_time_ns now_s, int32_t current,
                     int32_t ready, int64_t in_flight, int32_t expect)
{
    scale_pool_view p = {.name = "p", .current = current, .min_instances = 0,
                         .max_instances = 100, .running = in_flight};
    p.n_state[INST_ACTIVE] = ready;
    p.n_state[INST_LOADING] = current - ready;
    scale_view v = {.now = now_s * SIM_NS_PER_S, .window_ns = 15 * SIM_NS_PER_S, .pools = &p,
                    .n_pools = 1};
    int32_t desired = current;
    ops->decide(st, &v, &desired);
    ck_assert_msg(desired == expect, "t=%llds current %d ready %d in flight %lld: got %d, "
                  "expected %d", (long long)now_s, current, ready, (long long)in_flight,
                  desired, expect);
}

START_TEST(test_hpa_reproduces_kubernetes_arithmetic)
{
    sim_err err = {{0}};
    const scale_policy_ops *ops = scale_policy_find("hpa", "$", &err);
    ck_assert_ptr_nonnull(ops);
    cJSON *params = cJSON_Parse("{\"metric\": \"concurrency\", \"target\": 10}");
    scale_setup setup = {.n_pools = 1, .period_ns = 15 * SIM_NS_PER_S};
    void *st;
    ck_assert_int_eq(ops->init(&setup, params, "$.p", &st, &err), 0);
    /* ceil(4 x 60 / (4 x 10)) = 6, at once (no scale-up window). */
    hpa_tick(ops, st, 0, 4, 4, 60, 6);
    /* 2 of 6 not ready: counted at 0 when growing, 60 / 60 = 1: no change. */
    hpa_tick(ops, st, 15, 6, 4, 60, 6);
    /* Within the 10% tolerance (ratio 1.05 and 0.95): no change. */
    hpa_tick(ops, st, 30, 6, 6, 63, 6);
    hpa_tick(ops, st, 45, 6, 6, 57, 6);
    /* Half the target: 3 recommended, but the 300 s window still holds
     * the 6 of t = 0 .. 45: stays 6. */
    hpa_tick(ops, st, 60, 6, 6, 30, 6);
    hpa_tick(ops, st, 200, 6, 6, 36, 6);
    /* At 346 s the window (after 46 s) holds 3 (t=60), 4 (t=200): the
     * highest, 4. */
    hpa_tick(ops, st, 346, 6, 6, 36, 4);
    /* Shrinking with unready instances: they count at the target; 4
     * current, 2 ready with 2 in flight: (2 + 20) / 40 = 0.55 -> 3, and
     * the window's highest since t = 200 is 4: stays 4. */
    hpa_tick(ops, st, 360, 4, 2, 2, 4);
    ops->destroy(st);
    cJSON_Delete(params);
    /* The scale-up rate limit (4 pods or 100 % per 15 s): from 2, asked
     * for 20, it gets 6; 15 s later, from 6, 12. */
    params = cJSON_CreateObject();
    ck_assert_msg(ops->init(&setup, params, "$.p", &st, &err) == 0, "%s", err.msg);
    cJSON_Delete(params);
    hpa_tick(ops, st, 0, 2, 2, 200, 6);
    hpa_tick(ops, st, 15, 6, 6, 600, 12);
    ops->destroy(st);
    /* Bad params name their path. */
    params = cJSON_Parse("{\"metric\": \"cpu\"}");
    ck_assert_int_ne(ops->init(&setup, params, "$.policies.scale.params", &st, &err), 0);
    ck_assert_msg(strstr(err.msg, "$.policies.scale.params.metric"), "%s", err.msg);
    cJSON_Delete(params);
}
END_TEST

/* ---- every policy on a step --------------------------------------------------- */

/* Load steps from 2/s to 40/s at 60 s, more than one instance serves
 * within the SLO; the pool starts with one instance. */
static const char *const step_sets[] = {
    "workload.input_tokens.mean=2000", "workload.output_tokens.mean=300",
    "cluster.pools=[{\"name\": \"p\", \"instances\": 1, \"max_instances\": 6, "
    "\"lifecycle\": {\"provision_s\": 2, \"init_s\": 3, \"price_per_gpu_hour\": 2.5}}]",
    "workload.requests=4000",
    "workload.arrival={\"process\": \"piecewise\", \"segments\": [[0, 2], [60, 40]]}",
    "slo={\"ttft_ms\": 1000, \"tpot_ms\": 100}", NULL};

static struct {
    sim_time_ns first_growth_ns;
    int32_t max_instances;
} growth;

static int watch_states(void *ctx, const ts_sample *s)
{
    (void)ctx;
    int32_t live = 0;
    for (int32_t i = 0; i < s->n_instances; i++)
        live += s->inst[i].state != INST_STOPPED;
    if (live > 1 && growth.first_growth_ns < 0)
        growth.first_growth_ns = s->time_ns;
    if (live > growth.max_instances)
        growth.max_instances = live;
    return 0;
}

static void step_run(const char *scale, run_summary *out, cluster_counts *counts)
{
    cJSON *root = tu_base_config();
    tu_set(root, step_sets);
    const char *const more[] = {scale, "metrics.timeseries_interval_ms=1000", NULL};
    tu_set(root, scale ? more : more + 1);
    run_config cfg;
    tu_parse(root, &cfg);
    growth.first_growth_ns = -1;
    growth.max_instances = 0;
    cluster_hooks hooks = {.on_sample = watch_states};
    sim_err err = {{0}};
    cluster *c = cluster_create(&cfg.sys, &hooks, &err);
    ck_assert_msg(c, "%s", err.msg);
    ck_assert_msg(cluster_run(c, &err) == 0, "%s", err.msg);
    cluster_summarize(c, out);
    cluster_get_counts(c, counts);
    cluster_destroy(c);
    run_config_fini(&cfg);
}

START_TEST(test_each_policy_scales_up_on_a_step_increase)
{
    static const char *const policies[] = {
        "policies.scale={\"name\": \"hpa\", \"period_ms\": 5000, "
        "\"params\": {\"metric\": \"concurrency\", \"target\": 16}}",
        "policies.scale={\"name\": \"hpa\", \"period_ms\": 5000, "
        "\"params\": {\"metric\": \"kv\", \"target\": 0.5}}",
        "policies.scale={\"name\": \"queue\", \"period_ms\": 5000}",
        "policies.scale={\"name\": \"slo\", \"period_ms\": 5000}",
        "policies.scale={\"name\": \"predictive\", \"period_ms\": 5000, "
        "\"params\": {\"rps_per_instance\": 10, \"lead_s\": 10}}",
        "policies.scale={\"name\": \"saturation\", \"period_ms\": 5000}",
        "policies.scale={\"name\": \"schedule\", \"period_ms\": 5000, "
        "\"params\": {\"schedule\": [[0, 1], [60, 4]]}}",
    };
    run_summary fixed, s;
    cluster_counts counts;
    step_run(NULL, &fixed, &counts);
    ck_assert_uint_eq(counts.scale_ups, 0);
    for (size_t k = 0; k < sizeof policies / sizeof *policies; k++) {
        step_run(policies[k], &s, &counts);
        ck_assert_msg(counts.scale_ups >= 1, "%s: no scale-up", policies[k]);
        /* Not before the step (no load to speak of), within 30 s after. */
        ck_assert_msg(growth.first_growth_ns >= 60 * SIM_NS_PER_S &&
                      growth.first_growth_ns <= 90 * SIM_NS_PER_S,
                      "%s: first grew at %lld ns", policies[k],
                      (long long)growth.first_growth_ns);
        ck_assert_int_le(growth.max_instances, 6);
        ck_assert_uint_eq(s.completed, 4000);
        /* More capacity: more requests meet the SLO than on one instance. */
        ck_assert_msg(s.slo_attain > fixed.slo_attain, "%s: %g vs %g", policies[k],
                      s.slo_attain, fixed.slo_attain);
        ck_assert_double_gt(s.gpu_held_s, fixed.gpu_held_s);
    }
}
END_TEST

/* ---- cost, determinism, the default --------------------------------------------- */

START_TEST(test_cost_accounting_sums_to_the_runs_gpu_seconds)
{
    const char *const sets[] = {
        "cluster.pools=[{\"name\": \"p\", \"instances\": 2, \"min_instances\": 1, "
        "\"max_instances\": 4, \"parallel\": {\"tp\": 2}, "
        "\"lifecycle\": {\"provision_s\": 2, \"init_s\": 3, \"price_per_gpu_hour\": 3.6}}]",
        "workload.requests=1500",
        "workload.arrival={\"process\": \"piecewise\", \"segments\": [[0, 5], [20, 40], "
        "[50, 3]]}", NULL};
    probe_reset(0, 0);
    as_run r;
    as_start(&r, sets, &t_more, 2000, 0, 0);   /* grows to 4 */
    ck_assert_uint_eq(r.summary.completed, 1500);
    ck_assert_uint_eq(r.counts.scale_ups, 2);
    pool_summary ps;
    cluster_pool_summary(r.c, 0, &ps);
    double inst_held = 0, inst_busy = 0;
    for (int32_t i = 0; i < cluster_n_instances(r.c); i++) {
        instance_summary s;
        cluster_instance_summary(r.c, i, &s);
        double lived = 0;
        for (int st = 0; st < INST_STOPPED; st++)
            lived += s.state_s[st];
        inst_held += lived * s.gpus;
        inst_busy += s.busy_s * s.gpus;
        /* The static instances live the whole run, state by state. */
        if (i < 2)
            ck_assert_double_eq_tol(lived + s.state_s[INST_STOPPED], r.summary.duration_s,
                                    1e-6);
    }
    double states = 0;
    for (int st = 0; st < INST_STATE_COUNT; st++)
        states += ps.gpu_s[st];
    ck_assert_double_eq_tol(ps.held_gpu_s, states, 1e-6);
    ck_assert_double_eq_tol(ps.held_gpu_s, inst_held, 1e-6);
    ck_assert_double_eq_tol(r.summary.gpu_held_s, inst_held, 1e-6);
    ck_assert_double_eq_tol(r.summary.gpu_busy_s, inst_busy, 1e-6);
    ck_assert_double_eq_tol(ps.busy_gpu_s, inst_busy, 1e-6);
    ck_assert_double_le(ps.busy_gpu_s, ps.gpu_s[INST_ACTIVE] + ps.gpu_s[INST_DRAINING] + 1e-6);
    /* $3.60 per GPU-hour is $0.001 per GPU-second. */
    ck_assert_double_eq_tol(r.summary.cost_usd, inst_held * 0.001, 1e-9);
    ck_assert_double_eq_tol(ps.cost_usd, inst_held * 0.001, 1e-9);
    /* Cold starts are held time: the two new instances' provisioning. */
    ck_assert_double_eq_tol(ps.gpu_s[INST_PROVISIONING], 2 * 2 * 2, 1e-9);
    as_fini(&r);
}
END_TEST

START_TEST(test_autoscaled_runs_are_deterministic)
{
    const char *const sets[] = {
        step_sets[0], step_sets[1], step_sets[2], step_sets[3], step_sets[4], step_sets[5],
        "policies.scale={\"name\": \"hpa\", \"period_ms\": 5000, \"params\": "
        "{\"target\": 16, \"down_window_s\": 20}}", NULL};
    tu_run a, b;
    tu_run_sets(sets, &a);
    tu_run_sets(sets, &b);
    ck_assert_uint_eq(a.record_hash, b.record_hash);
    ck_assert(memcmp(&a.summary, &b.summary, sizeof a.summary) == 0);
    ck_assert_uint_eq(a.summary.completed, 4000);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

START_TEST(test_an_autoscaler_that_changes_nothing_changes_no_result)
{
    /* Ticks only read: a pool held at its size by its bounds runs exactly
     * as without an autoscaler. */
    const char *const plain[] = {"cluster.pools=[{\"instances\": 2}]",
                                 "workload.arrival.rate_per_s=30", NULL};
    const char *const scaled[] = {"cluster.pools=[{\"instances\": 2}]",
                                  "workload.arrival.rate_per_s=30",
                                  "policies.scale={\"name\": \"queue\", \"period_ms\": 700}",
                                  NULL};
    const char *const legacy[] = {"cluster.instances=2", "workload.arrival.rate_per_s=30",
                                  NULL};
    tu_run a, b, c;
    tu_run_sets(plain, &a);
    tu_run_sets(scaled, &b);
    tu_run_sets(legacy, &c);
    ck_assert_uint_eq(a.record_hash, b.record_hash);
    ck_assert_uint_eq(a.record_hash, c.record_hash);
    ck_assert_uint_eq(a.summary.events, b.summary.events);
    ck_assert(a.summary.energy_j == b.summary.energy_j);
    ck_assert_double_eq(b.summary.cost_usd, 0);   /* unpriced */
    tu_run_fini(&a);
    tu_run_fini(&b);
    tu_run_fini(&c);
}
END_TEST

/* ---- the bursty arrival process ---------------------------------------------- */

START_TEST(test_bursty_arrivals_have_the_mean_rate_and_are_bursty)
{
    cJSON *o = cJSON_Parse("{\"process\": \"bursty\", \"rate_per_s\": 1, "
                           "\"burst_rate_per_s\": 20, \"burst_s\": 30, \"calm_s\": 300}");
    arrival_proc p;
    sim_err err = {{0}};
    ck_assert_int_eq(arrival_parse(o, "$.a", &p, &err), 0);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 11);
    arrival_gen g;
    arrival_gen_init(&g, &p, rng);
    /* Counts per 10 s window over 2e5 s. */
    enum { WINDOWS = 20000 };
    static int32_t count[WINDOWS];
    memset(count, 0, sizeof count);
    sim_time_ns t = 0, prev = 0;
    uint64_t n = 0;
    while (arrival_gen_next(&g, 0, &t) == ARRIVAL_AT && t < WINDOWS * 10 * SIM_NS_PER_S) {
        ck_assert_int_ge(t, prev);
        prev = t;
        count[t / (10 * SIM_NS_PER_S)]++;
        n++;
    }
    double mean_rate = (1.0 * 300 + 20.0 * 30) / 330, rate = n / (WINDOWS * 10.0);
    ck_assert_double_eq_tol(rate, mean_rate, 0.1 * mean_rate);
    /* Index of dispersion of the window counts: 1 for Poisson, far above
     * for bursts. */
    double m = (double)n / WINDOWS, var = 0;
    for (int k = 0; k < WINDOWS; k++)
        var += (count[k] - m) * (count[k] - m);
    var /= WINDOWS - 1;
    ck_assert_double_gt(var / m, 5);
    arrival_gen_fini(&g);
    gsl_rng_free(rng);
    arrival_fini(&p);
    cJSON_Delete(o);
    /* A missing burst rate is named. */
    o = cJSON_Parse("{\"process\": \"bursty\", \"rate_per_s\": 1}");
    ck_assert_int_ne(arrival_parse(o, "$.workload.arrival", &p, &err), 0);
    ck_assert_msg(strstr(err.msg, "$.workload.arrival.burst_rate_per_s"), "%s", err.msg);
    cJSON_Delete(o);
}
END_TEST

Suite *autoscale_suite(void)
{
    Suite *s = suite_create("autoscale");
    TCase *tc = tcase_create("autoscale");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cold_start_takes_the_sum_of_its_terms);
    tcase_add_test(tc, test_lifecycle_keys_are_checked);
    tcase_add_test(tc, test_scale_down_drains_and_loses_no_request);
    tcase_add_test(tc, test_drain_by_migration_moves_running_requests_with_their_kv);
    tcase_add_test(tc, test_provisioning_jitter_stays_within_its_bounds);
    tcase_add_test(tc, test_bounds_and_cooldowns_are_respected);
    tcase_add_test(tc, test_stopped_instances_restart_in_their_slots);
    tcase_add_test(tc, test_an_empty_pool_starts_an_instance_for_waiting_requests);
    tcase_add_test(tc, test_hpa_reproduces_kubernetes_arithmetic);
    tcase_add_test(tc, test_each_policy_scales_up_on_a_step_increase);
    tcase_add_test(tc, test_cost_accounting_sums_to_the_runs_gpu_seconds);
    tcase_add_test(tc, test_autoscaled_runs_are_deterministic);
    tcase_add_test(tc, test_an_autoscaler_that_changes_nothing_changes_no_result);
    tcase_add_test(tc, test_bursty_arrivals_have_the_mean_rate_and_are_bursty);
    suite_add_tcase(s, tc);
    return s;
}
