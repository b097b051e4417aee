/* Prefill/decode disaggregation (serve/disagg.c) and live migration
 * (serve/migrate.c, policies/control_llumnix.c): transfer times on
 * hand-built links, when the KV arrives, what waiting for decode room does,
 * migration downtime, aborts, conservation and determinism. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serve/disagg.h"
#include "serve/migrate.h"
#include "tests/suites.h"
#include "tests/testutil.h"

/* Llama-3-8B: 128 KiB of KV per token (32 layers x 8 KV heads x 128 x 2 x
 * bf16), 16-token blocks of 2 MiB. */
#define KV_TOKEN_BYTES 131072.0
#define LAYERS 32

/* A P/D pair on two nodes (the KV crosses both NICs): 100 Gb/s per GPU =
 * 12.5 GB/s, 10 us latency per NIC. */
#define PD_POOLS                                                                      \
    "cluster={\"topology\": {\"gpus_per_node\": 1, \"nic_gbps\": 100, "               \
    "\"nic_latency_us\": 10}, \"pools\": [{\"name\": \"P\", \"role\": \"prefill\"}, " \
    "{\"name\": \"D\", \"role\": \"decode\"}], \"disagg\": {}}"
#define NIC_BPS 12.5e9
#define NIC_PATH_LATENCY_NS 20000

static const char *const one_request[] = {
    "workload.requests=1",
    "workload.input_tokens={\"dist\": \"fixed\", \"value\": 1000}",
    "workload.output_tokens={\"dist\": \"fixed\", \"value\": 50}", NULL};

/* One finished run, the cluster kept for its stats. */
typedef struct pd_run {
    run_config cfg;
    cluster *c;
    run_summary s;
    cluster_counts counts;
    disagg_stats pd;
    migrate_stats mig;
    uint8_t seen[4096];
    uint64_t records, hash;
    int64_t tbt_max0_ns;        /* request 0's largest token gap */
    uint64_t moved_by_priority[4];   /* requests moved at least once */
} pd_run;

static int count_record(void *ctx, const req_record *rec)
{
    pd_run *p = ctx;
    ck_assert_uint_lt(rec->id, sizeof p->seen);
    p->seen[rec->id]++;
    p->records++;
    if (rec->id == 0)
        p->tbt_max0_ns = rec->tbt_max_ns;
    if (rec->moves > 0 && rec->priority >= 0 && rec->priority < 4)
        p->moved_by_priority[rec->priority]++;
    const unsigned char *b = (const unsigned char *)rec;
    for (size_t i = 0; i < sizeof *rec; i++)
        p->hash = (p->hash ^ b[i]) * 1099511628211ULL;
    return 0;
}

static void pd_start(pd_run *p, const char *const *a, const char *const *b,
                     const control_policy_ops *ctl, iter_observer_fn obs)
{
    memset(p, 0, sizeof *p);
    cJSON *root = tu_base_config();
    tu_set(root, a);
    tu_set(root, b);
    tu_parse(root, &p->cfg);
    if (ctl) {
        p->cfg.sys.control.ops = ctl;
        p->cfg.sys.control.params = NULL;
        p->cfg.sys.control.period_ns = 5 * SIM_NS_PER_MS;
    }
    cluster_hooks hooks = {.on_record = count_record, .record_ctx = p, .on_iteration = obs};
    sim_err err = {{0}};
    p->c = cluster_create(&p->cfg.sys, &hooks, &err);
    ck_assert_msg(p->c, "%s", err.msg);
    ck_assert_msg(cluster_run(p->c, &err) == 0, "%s", err.msg);
    cluster_summarize(p->c, &p->s);
    cluster_get_counts(p->c, &p->counts);
    if (cluster_disagg(p->c))
        disagg_get_stats(cluster_disagg(p->c), &p->pd);
    migrate_get_stats(cluster_migrate(p->c), &p->mig);
}

static void pd_fini(pd_run *p)
{
    cluster_destroy(p->c);
    run_config_fini(&p->cfg);
}

/* Every request that arrived was recorded exactly once. */
static void assert_each_once(const pd_run *p)
{
    ck_assert_uint_eq(p->records, p->s.arrived);
    ck_assert_uint_eq(p->s.completed, p->s.arrived);
    for (uint64_t id = 0; id < p->s.arrived; id++)
        ck_assert_int_eq(p->seen[id], 1);
}

/* ---- disaggregation ------------------------------------------------------------ */

/* Iterations of request 0: where and when. */
static struct {
    sim_time_ns prefill_start, prefill_end, first_decode;
    int32_t decode_instance, decode_first_tokens;
} it0;

static void watch0(void *ctx, const iter_info *it)
{
    (void)ctx;
    for (int32_t k = 0; k < it->n_items; k++) {
        if (it->items[k].req->id != 0)
            continue;
        if (it->instance == 0) {
            it0.prefill_start = it->start_ns;
            it0.prefill_end = it->start_ns + it->cost->latency_ns;
        } else if (it0.first_decode < 0) {
            it0.first_decode = it->start_ns;
            it0.decode_instance = it->instance;
            it0.decode_first_tokens = it->items[k].tokens;
        }
    }
}

START_TEST(test_transfer_time_is_latency_plus_bytes_over_bandwidth)
{
    const char *const sets[] = {PD_POOLS, NULL};
    it0.first_decode = -1;
    pd_run p;
    pd_start(&p, one_request, sets, NULL, watch0);
    assert_each_once(&p);
    ck_assert_uint_eq(p.pd.handoffs, 1);
    ck_assert_uint_eq(p.counts.handoffs, 1);
    /* The prompt's KV: 1000 tokens x 128 KiB over 12.5 GB/s after 2 x 10 us. */
    double bytes = 1000 * KV_TOKEN_BYTES;
    ck_assert_double_eq_tol(p.pd.bytes, bytes, 1e-6);
    double expect_s = (NIC_PATH_LATENCY_NS + ceil(bytes / NIC_BPS * 1e9)) / 1e9;
    ck_assert_double_eq_tol(p.pd.xfer_s.mean, expect_s, 1.5e-9);
    /* Nothing else in the way: what the request sees is the transfer. */
    ck_assert_double_eq_tol(p.pd.visible_s.mean, expect_s, 1.5e-9);
    ck_assert_double_eq(p.pd.wait_s.mean, 0);
    pd_fini(&p);
}
END_TEST

START_TEST(test_concurrent_transfers_share_the_decode_nic_fairly)
{
    /* Two prefill instances finish identical prompts at the same instant
     * and send to one decode instance: the two transfers cross its one NIC
     * at half its rate each, so each takes latency + 2 x bytes / bandwidth. */
    const char *const sets[] = {
        "cluster={\"topology\": {\"gpus_per_node\": 1, \"nic_gbps\": 100, "
        "\"nic_latency_us\": 10}, \"pools\": [{\"name\": \"P\", \"role\": \"prefill\", "
        "\"instances\": 2}, {\"name\": \"D\", \"role\": \"decode\"}], \"disagg\": {}}",
        "workload.requests=2",
        "workload.arrival={\"process\": \"closed_loop\", \"clients\": 2, \"think_s\": 0}",
        NULL};
    pd_run p;
    pd_start(&p, one_request, sets, NULL, NULL);
    assert_each_once(&p);
    ck_assert_uint_eq(p.pd.handoffs, 2);
    double bytes = 1000 * KV_TOKEN_BYTES;
    double shared = (NIC_PATH_LATENCY_NS + ceil(2 * bytes / NIC_BPS * 1e9)) / 1e9;
    ck_assert_double_eq_tol(p.pd.xfer_s.mean, shared, 1.5e-9);
    ck_assert_double_eq_tol(p.pd.xfer_s.p99, shared, shared * 1e-3);
    pd_fini(&p);
}
END_TEST

START_TEST(test_kv_arrives_before_the_first_decode_and_ttft_is_prefill_only)
{
    const char *const sets[] = {PD_POOLS, NULL};
    it0.first_decode = -1;
    pd_run p;
    pd_start(&p, one_request, sets, NULL, watch0);
    /* Decoding starts on the decode instance once the KV is there, not
     * before, with one token (the prompt is never computed again). */
    ck_assert_int_eq(it0.decode_instance, 1);
    ck_assert_int_eq(it0.decode_first_tokens, 1);
    sim_time_ns xfer = (sim_time_ns)llround(p.pd.xfer_s.mean * 1e9);
    ck_assert_int_eq(it0.first_decode, it0.prefill_end + xfer);
    ck_assert_uint_eq(p.s.recomputed_tokens, 0);
    /* The largest token gap is the second token's: it waited for the KV. */
    ck_assert_double_ge(p.s.tbt_s.p99 * 1e9 * 1.002, (double)xfer);
    /* TTFT is queueing + prefill (+ the engine's request path), nothing
     * else: a colocated instance alone gives the same first token. */
    pd_run colo;
    pd_start(&colo, one_request, NULL, NULL, NULL);
    ck_assert_double_eq(p.s.ttft_s.mean, colo.s.ttft_s.mean);
    ck_assert_double_gt(p.s.e2e_s.mean, colo.s.e2e_s.mean);
    pd_fini(&colo);
    pd_fini(&p);
}
END_TEST

START_TEST(test_layerwise_streaming_hides_most_of_the_transfer)
{
    const char *const after[] = {PD_POOLS, NULL};
    const char *const layer[] = {PD_POOLS, "cluster.disagg.transfer=layerwise", NULL};
    it0.first_decode = -1;
    pd_run a, l;
    pd_start(&a, one_request, after, NULL, NULL);
    it0.first_decode = -1;
    pd_start(&l, one_request, layer, NULL, watch0);
    ck_assert_uint_eq(l.pd.layerwise, 1);
    ck_assert_double_eq_tol(l.pd.bytes, a.pd.bytes, 1e-6);
    /* It streamed during the prefill iteration: what shows after it is at
     * least the last layer's share (with the path's latency), and less than
     * the whole transfer. */
    double t = a.pd.xfer_s.mean, lat = NIC_PATH_LATENCY_NS / 1e9;
    double iter = (double)(it0.prefill_end - it0.prefill_start) / 1e9;
    ck_assert_double_ge(l.pd.visible_s.mean + 1e-9, lat + (t - lat) / LAYERS);
    ck_assert_double_lt(l.pd.visible_s.mean, t);
    /* Part 1 ((L-1)/L of the bytes) flows from the iteration's start, the
     * last layer's share after both it and the prefill are done. */
    double bw_s = t - lat;
    double expect = lat + bw_s / LAYERS + fmax(0, lat + bw_s * (LAYERS - 1) / LAYERS - iter);
    ck_assert_double_eq_tol(l.pd.visible_s.mean, expect, 1e-8);
    pd_fini(&a);
    pd_fini(&l);
}
END_TEST

START_TEST(test_full_decode_memory_backs_up_prefill_or_decodes_locally)
{
    /* A decode instance with a quarter of the GPU holds ~1,500 blocks. */
    const char *const load[] = {
        "workload.requests=600", "workload.arrival.rate_per_s=25",
        "workload.output_tokens={\"dist\": \"lognormal\", \"mean\": 400, \"sigma\": 0.8}",
        NULL};
    const char *const wait[] = {
        "cluster={\"pools\": [{\"name\": \"P\", \"role\": \"prefill\"}, {\"name\": \"D\", "
        "\"role\": \"decode\", \"instance\": {\"gpu_memory_utilization\": 0.25}}], "
        "\"disagg\": {\"when_full\": \"wait\"}}", NULL};
    const char *const local[] = {
        "cluster={\"pools\": [{\"name\": \"P\", \"role\": \"prefill\"}, {\"name\": \"D\", "
        "\"role\": \"decode\", \"instance\": {\"gpu_memory_utilization\": 0.25}}], "
        "\"disagg\": {\"when_full\": \"local\"}}", NULL};
    pd_run w, l;
    pd_start(&w, load, wait, NULL, NULL);
    assert_each_once(&w);
    ck_assert_uint_gt(w.pd.waited, 0);
    ck_assert_uint_eq(w.pd.local, 0);
    ck_assert_uint_eq(w.pd.handoffs, 600);
    ck_assert_double_gt(w.pd.wait_s.p99, 0);
    ck_assert_int_gt(w.pd.backlog_peak_blocks, 0);
    pd_start(&l, load, local, NULL, NULL);
    assert_each_once(&l);
    ck_assert_uint_eq(l.pd.waited, 0);
    ck_assert_uint_gt(l.pd.local, 0);
    ck_assert_uint_eq(l.pd.handoffs + l.pd.local, 600);
    /* Waiting for decode room delays the second token (TPOT suffers);
     * decoding locally instead takes the prefill instance's time, so first
     * tokens come later. */
    ck_assert_double_gt(w.s.tpot_s.p90, l.s.tpot_s.p90);
    ck_assert_double_gt(l.s.ttft_s.p90, w.s.ttft_s.p90);
    pd_fini(&w);
    pd_fini(&l);
}
END_TEST

START_TEST(test_deciders_choose_who_is_disaggregated)
{
    const char *const sets[] = {PD_POOLS, "workload.requests=300",
                                "cluster.disagg.decider=length",
                                "cluster.disagg.min_prompt_tokens=600", NULL};
    pd_run p;
    pd_start(&p, sets, NULL, NULL, NULL);
    assert_each_once(&p);
    ck_assert_uint_gt(p.pd.local, 0);
    ck_assert_uint_gt(p.pd.handoffs, 0);
    ck_assert_uint_eq(p.pd.local + p.pd.handoffs, 300);
    pool_summary pre;
    cluster_pool_summary(p.c, 0, &pre);
    ck_assert_uint_eq(pre.completed, p.pd.local);
    pd_fini(&p);
}
END_TEST

START_TEST(test_disaggregated_runs_are_deterministic)
{
    const char *const sets[] = {PD_POOLS, "workload.requests=300",
                                "cluster.disagg.transfer=layerwise", NULL};
    pd_run a, b;
    pd_start(&a, sets, NULL, NULL, NULL);
    pd_start(&b, sets, NULL, NULL, NULL);
    assert_each_once(&a);
    ck_assert_uint_eq(a.hash, b.hash);
    ck_assert(memcmp(&a.pd, &b.pd, sizeof a.pd) == 0);
    ck_assert_uint_eq(a.s.events, b.s.events);
    pd_fini(&a);
    pd_fini(&b);
}
END_TEST

START_TEST(test_bad_disagg_settings_are_errors_naming_the_key)
{
    const char *const cases[][2] = {
        {"cluster.disagg.transfer=sideways", "$.cluster.disagg.transfer"},
        {"cluster.disagg.decider=coin", "$.cluster.disagg.decider"},
        {"cluster.disagg.when_full=drop", "$.cluster.disagg.when_full"},
        {"cluster.disagg.nope=1", "$.cluster.disagg"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const char *const sets[] = {PD_POOLS, cases[k][0], NULL};
        cJSON *root = tu_base_config();
        tu_set(root, sets);
        run_config cfg;
        tu_parse(root, &cfg);
        sim_err err = {{0}};
        cluster *c = cluster_create(&cfg.sys, NULL, &err);
        ck_assert_ptr_null(c);
        ck_assert_msg(strstr(err.msg, cases[k][1]), "%s", err.msg);
        run_config_fini(&cfg);
    }
    /* Disaggregation without a decode pool. */
    const char *const mixed[] = {"cluster={\"instances\": 2, \"disagg\": {}}", NULL};
    cJSON *root = tu_base_config();
    tu_set(root, mixed);
    run_config cfg;
    tu_parse(root, &cfg);
    sim_err err = {{0}};
    ck_assert_ptr_null(cluster_create(&cfg.sys, NULL, &err));
    ck_assert_msg(strstr(err.msg, "decode"), "%s", err.msg);
    run_config_fini(&cfg);
}
END_TEST

/* ---- semi-PD ------------------------------------------------------------------------ */

#define SEMI_POOLS                                                                     \
    "cluster={\"pools\": [{\"name\": \"P\", \"role\": \"prefill\"}, {\"name\": \"D\", " \
    "\"role\": \"decode\"}], \"disagg\": {\"semi_pd\": {\"prefill_sm\": 1, "              \
    "\"decode_sm\": 1}}}"

START_TEST(test_semi_pd_with_full_shares_equals_a_colocated_run)
{
    /* One request, both workers at 100% and no interference: prefill on one
     * worker, decode on the other with the same KV (nothing sent), at the
     * colocated instance's cost: the same first token, gaps and finish. */
    const char *const semi[] = {SEMI_POOLS, NULL};
    pd_run s, c;
    pd_start(&s, one_request, semi, NULL, NULL);
    pd_start(&c, one_request, NULL, NULL, NULL);
    assert_each_once(&s);
    ck_assert_uint_eq(s.pd.handoffs, 1);
    ck_assert_double_eq(s.pd.bytes, 0);
    ck_assert_double_eq(s.s.ttft_s.mean, c.s.ttft_s.mean);
    ck_assert_double_eq(s.s.e2e_s.mean, c.s.e2e_s.mean);
    ck_assert_double_eq(s.s.tbt_s.mean, c.s.tbt_s.mean);
    ck_assert_uint_eq(s.s.iterations, c.s.iterations);
    pool_summary d;
    cluster_pool_summary(s.c, 1, &d);
    ck_assert_uint_eq(d.completed, 1);
    pd_fini(&s);
    pd_fini(&c);
}
END_TEST

START_TEST(test_semi_pd_sm_shares_slow_each_worker)
{
    /* Half the SMs for prefill doubles the prefill's operator time (TTFT
     * grows); a quarter for decode halves its memory bandwidth (TPOT grows);
     * 0.5 for decode leaves it at full bandwidth. */
    const char *const full[] = {SEMI_POOLS, NULL};
    const char *const half_p[] = {SEMI_POOLS, "cluster.disagg.semi_pd.prefill_sm=0.5", NULL};
    const char *const quarter_d[] = {SEMI_POOLS, "cluster.disagg.semi_pd.decode_sm=0.25",
                                     NULL};
    const char *const half_d[] = {SEMI_POOLS, "cluster.disagg.semi_pd.decode_sm=0.5", NULL};
    pd_run f, hp, qd, hd;
    pd_start(&f, one_request, full, NULL, NULL);
    pd_start(&hp, one_request, half_p, NULL, NULL);
    pd_start(&qd, one_request, quarter_d, NULL, NULL);
    pd_start(&hd, one_request, half_d, NULL, NULL);
    ck_assert_double_gt(hp.s.ttft_s.mean, f.s.ttft_s.mean * 1.3);
    ck_assert_double_eq(hp.s.tbt_s.mean, f.s.tbt_s.mean);
    ck_assert_double_gt(qd.s.tbt_s.mean, f.s.tbt_s.mean * 1.3);
    ck_assert_double_eq(qd.s.ttft_s.mean, f.s.ttft_s.mean);
    ck_assert_double_eq(hd.s.tbt_s.mean, f.s.tbt_s.mean);
    pd_fini(&f);
    pd_fini(&hp);
    pd_fini(&qd);
    pd_fini(&hd);
}
END_TEST

START_TEST(test_semi_pd_contention_slows_both_workers_under_load)
{
    /* With both caps at 100%, an iteration that overlaps the other worker's
     * gets half the GPU: under load, first tokens and decode steps slow. */
    const char *const load[] = {"workload.requests=300", "workload.arrival.rate_per_s=10",
                                NULL};
    const char *const free_run[] = {SEMI_POOLS, NULL};
    const char *const shared[] = {SEMI_POOLS, "cluster.disagg.semi_pd.contention=true", NULL};
    pd_run a, b;
    pd_start(&a, load, free_run, NULL, NULL);
    pd_start(&b, load, shared, NULL, NULL);
    assert_each_once(&b);
    ck_assert_double_gt(b.s.ttft_s.mean, a.s.ttft_s.mean);
    ck_assert_double_gt(b.s.tpot_s.mean, a.s.tpot_s.mean * 1.2);
    pd_fini(&a);
    pd_fini(&b);
}
END_TEST

START_TEST(test_semi_pd_controller_moves_sms_to_a_backed_up_prefill)
{
    /* A split that starves prefill (0.3) backs up first tokens; the
     * controller moves SMs to prefill while its queue is long and first
     * tokens come sooner. */
    const char *const sets[] = {
        SEMI_POOLS, "cluster.disagg.semi_pd={\"prefill_sm\": 0.3, \"decode_sm\": 0.7}",
        "workload.requests=600", "workload.arrival.rate_per_s=20", NULL};
    const char *const ctl[] = {
        "policies.control={\"name\": \"semi_pd\", \"period_ms\": 100, \"params\": "
        "{\"prefill_sm\": 0.3, \"decode_sm\": 0.7}}", NULL};
    pd_run a, b;
    pd_start(&a, sets, NULL, NULL, NULL);
    pd_start(&b, sets, ctl, NULL, NULL);
    assert_each_once(&b);
    ck_assert_uint_eq(a.pd.splits, 0);
    ck_assert_uint_gt(b.pd.splits, 0);
    ck_assert_uint_eq(b.counts.actions_applied, b.pd.splits);
    ck_assert_double_lt(b.s.ttft_s.p90, a.s.ttft_s.p90 / 2);
    pd_fini(&a);
    pd_fini(&b);
}
END_TEST

START_TEST(test_semi_pd_under_load_conserves_requests_and_memory)
{
    const char *const sets[] = {
        SEMI_POOLS, "cluster.disagg.semi_pd={\"prefill_sm\": 0.8, \"decode_sm\": 1.0}",
        "instance.gpu_memory_utilization=0.3", "workload.requests=800",
        "workload.arrival.rate_per_s=25", NULL};
    pd_run a, b;
    pd_start(&a, sets, NULL, NULL, NULL);
    pd_start(&b, sets, NULL, NULL, NULL);
    assert_each_once(&a);
    ck_assert_uint_eq(a.pd.handoffs + a.pd.local, 800);
    ck_assert_double_eq(a.pd.bytes, 0);
    ck_assert_uint_eq(a.hash, b.hash);
    pd_fini(&a);
    pd_fini(&b);
}
END_TEST

/* ---- live migration ------------------------------------------------------------- */

/* Live-migrates request 0 to the other instance once it has generated 20
 * tokens; remembers its tokens then. */
static struct {
    int moved;
    int32_t from;
} lm;

static int lm_init(const control_setup *s, cJSON *params, const char *path, void **state,
                   sim_err *err)
{
    (void)s, (void)params, (void)path, (void)err;
    *state = NULL;
    return 0;
}

static void lm_tick(void *state, const control_view *v, control_plan *plan)
{
    (void)state;
    if (lm.moved)
        return;
    for (int32_t i = 0; i < v->n_instances; i++) {
        int32_t n;
        const serve_req *const *run = v->running(v, i, &n);
        for (int32_t k = 0; k < n; k++)
            if (run[k]->id == 0 && run[k]->generated_tokens >= 20) {
                lm.moved = 1, lm.from = i;
                control_add(plan, (control_action){.kind = CTRL_MOVE, .req = run[k],
                                                   .to = 1 - i, .mode = MOVE_LIVE});
            }
    }
}

static const control_policy_ops ctl_live = {"test_live", lm_init, lm_tick, NULL};

/* Two instances on two nodes, 12.5 GB/s NICs; one long request. */
static const char *const two_nodes[] = {
    "cluster={\"instances\": 2, \"topology\": {\"gpus_per_node\": 1, \"nic_gbps\": 100, "
    "\"nic_latency_us\": 10}}",
    "workload.requests=1",
    "workload.input_tokens={\"dist\": \"fixed\", \"value\": 4000}",
    "workload.output_tokens={\"dist\": \"fixed\", \"value\": 300}", NULL};

START_TEST(test_migration_downtime_is_the_final_stop_and_copy_only)
{
    memset(&lm, 0, sizeof lm);
    pd_run p;
    pd_start(&p, two_nodes, NULL, &ctl_live, NULL);
    assert_each_once(&p);
    ck_assert_int_eq(lm.moved, 1);
    ck_assert_uint_eq(p.mig.started, 1);
    ck_assert_uint_eq(p.mig.completed, 1);
    ck_assert_uint_eq(p.counts.moves_done, 1);
    /* It pre-copied while decoding (the prompt's 250 blocks, less the one
     * being written), then stopped for a short last stage. */
    ck_assert_uint_ge(p.mig.stages, 2);
    double block = 16 * KV_TOKEN_BYTES;
    ck_assert_double_gt(p.mig.bytes, 249 * block - 1);
    /* The downtime is the last stage's copy alone: its bytes (the total
     * less the pre-copies) over the link, after the path's latency; far
     * below a stop-and-copy of the whole KV. */
    double last_bytes = p.mig.last_stage_bytes;
    ck_assert_double_gt(last_bytes, 0);
    ck_assert_double_lt(last_bytes, 16 * block);
    double expect = (NIC_PATH_LATENCY_NS + ceil(last_bytes / NIC_BPS * 1e9)) / 1e9;
    ck_assert_double_eq_tol(p.mig.downtime_s.mean, expect, 1.5e-9);
    ck_assert_double_lt(p.mig.downtime_s.mean, p.mig.bytes / NIC_BPS / 5);
    /* Same tokens: all 300, nothing recomputed; the longest gap covers the
     * downtime. */
    ck_assert_uint_eq(p.s.output_tokens, 300);
    ck_assert_uint_eq(p.s.recomputed_tokens, 0);
    ck_assert_double_ge(p.s.tbt_s.p99 * 1.001, p.mig.downtime_s.mean);
    instance_summary a, b;
    cluster_instance_summary(p.c, lm.from, &a);
    cluster_instance_summary(p.c, 1 - lm.from, &b);
    ck_assert_uint_eq(a.moved_out, 1);
    ck_assert_uint_eq(b.moved_in, 1);
    ck_assert_uint_eq(b.completed, 1);
    pd_fini(&p);
}
END_TEST

/* Request 0's first iteration at the destination of its migration. */
static struct {
    sim_time_ns start, latency;
} at_dst;

static void watch_dst(void *ctx, const iter_info *it)
{
    (void)ctx;
    for (int32_t k = 0; k < it->n_items; k++)
        if (it->items[k].req->id == 0 && lm.moved && it->instance != lm.from &&
            at_dst.start < 0) {
            at_dst.start = it->start_ns;
            at_dst.latency = it->cost->latency_ns;
        }
}

START_TEST(test_stop_and_copy_gap_is_downtime_plus_the_destination_iteration)
{
    /* With a last-stage threshold above the request's blocks, the first
     * stage is the last: the whole KV is copied while the request stops.
     * Its largest token gap is that downtime plus the one iteration it then
     * joins at the (idle) destination, where it resumes running at once. */
    memset(&lm, 0, sizeof lm);
    at_dst.start = -1;
    const char *const sets[] = {"cluster.migration={\"last_stage_max_blocks\": 100000}", NULL};
    pd_run p;
    pd_start(&p, two_nodes, sets, &ctl_live, watch_dst);
    assert_each_once(&p);
    ck_assert_uint_eq(p.mig.completed, 1);
    ck_assert_uint_eq(p.mig.stages, 1);
    ck_assert_double_eq_tol(p.mig.last_stage_bytes, p.mig.bytes, 1e-6);
    double expect = (NIC_PATH_LATENCY_NS + ceil(p.mig.bytes / NIC_BPS * 1e9)) / 1e9;
    ck_assert_double_eq_tol(p.mig.downtime_s.mean, expect, 1.5e-9);
    ck_assert_int_ge(at_dst.start, 0);
    sim_time_ns down = (sim_time_ns)llround(p.mig.downtime_s.mean * 1e9);
    ck_assert_int_eq(p.tbt_max0_ns, down + at_dst.latency);
    ck_assert_uint_eq(p.s.output_tokens, 300);
    pd_fini(&p);
}
END_TEST

START_TEST(test_migration_aborts_when_the_destination_cannot_reserve)
{
    /* The destination (a pool that takes no arrivals) has room for fewer
     * blocks than the request holds: the first stage cannot reserve, the request stays and
     * finishes on its source, and both caches end empty (cluster_run
     * checks every instance's blocks). */
    memset(&lm, 0, sizeof lm);
    const char *const sets[] = {
        "cluster={\"pool_choice\": \"first\", \"topology\": {\"gpus_per_node\": 1}, "
        "\"pools\": [{\"name\": \"big\"}, {\"name\": \"small\", \"role\": \"decode\", "
        "\"instance\": {\"gpu_memory_utilization\": 0.214, \"max_context_tokens\": 600}}]}",
        NULL};
    pd_run p;
    pd_start(&p, two_nodes, sets, &ctl_live, NULL);
    assert_each_once(&p);
    ck_assert_int_eq(lm.from, 0);
    ck_assert_uint_eq(p.mig.started, 1);
    ck_assert_uint_eq(p.mig.completed, 0);
    ck_assert_uint_eq(p.mig.aborted_dst, 1);
    ck_assert_uint_eq(p.counts.moves_aborted, 1);
    instance_summary a;
    cluster_instance_summary(p.c, 0, &a);
    ck_assert_uint_eq(a.completed, 1);
    ck_assert_uint_eq(a.moved_out, 0);
    ck_assert_uint_eq(p.s.output_tokens, 300);
    pd_fini(&p);
}
END_TEST

START_TEST(test_llumnix_controller_migrates_and_conserves_requests)
{
    const char *const sets[] = {
        "cluster={\"instances\": 3, \"topology\": {\"gpus_per_node\": 1}}",
        "instance.gpu_memory_utilization=0.3", "workload.requests=900",
        "workload.arrival.rate_per_s=30",
        "workload.input_tokens={\"dist\": \"lognormal\", \"mean\": 1500, \"sigma\": 1.2, "
        "\"max\": 8000}",
        "workload.output_tokens={\"dist\": \"lognormal\", \"mean\": 300, \"sigma\": 1.2, "
        "\"max\": 3000}",
        "policies.control={\"name\": \"llumnix\", \"period_ms\": 50}", NULL};
    pd_run a, b;
    pd_start(&a, sets, NULL, NULL, NULL);
    pd_start(&b, sets, NULL, NULL, NULL);
    assert_each_once(&a);
    ck_assert_uint_gt(a.mig.started, 0);
    ck_assert_uint_gt(a.mig.completed, 0);
    ck_assert_uint_eq(a.mig.started, a.mig.completed + a.mig.aborted_dst + a.mig.aborted_src +
                                         a.mig.aborted_stages);
    ck_assert_uint_eq(a.counts.moves_started,
                      a.counts.moves_done + a.counts.moves_aborted);
    ck_assert_uint_eq(a.hash, b.hash);
    ck_assert(memcmp(&a.mig, &b.mig, sizeof a.mig) == 0);
    pd_fini(&a);
    pd_fini(&b);
}
END_TEST

START_TEST(test_priority_headroom_moves_only_normal_requests)
{
    /* Half the requests are high priority (0): instances holding one keep
     * 300 blocks of headroom, shedding normal requests, never those. */
    const char *const sets[] = {
        "cluster={\"instances\": 3, \"topology\": {\"gpus_per_node\": 1}}",
        "instance.gpu_memory_utilization=0.3", "workload.requests=900",
        "workload.arrival.rate_per_s=30", "workload.priority_classes=2",
        "workload.input_tokens={\"dist\": \"lognormal\", \"mean\": 1500, \"sigma\": 1.2, "
        "\"max\": 8000}",
        "workload.output_tokens={\"dist\": \"lognormal\", \"mean\": 300, \"sigma\": 1.2, "
        "\"max\": 3000}",
        "policies.control={\"name\": \"llumnix\", \"period_ms\": 50, \"params\": "
        "{\"source_below\": 0, \"high_priority\": 0, \"headroom_blocks\": 300}}", NULL};
    pd_run p;
    pd_start(&p, sets, NULL, NULL, NULL);
    assert_each_once(&p);
    ck_assert_uint_gt(p.mig.completed, 0);
    ck_assert_uint_eq(p.moved_by_priority[0], 0);
    ck_assert_uint_gt(p.moved_by_priority[1], 0);
    pd_fini(&p);
}
END_TEST

Suite *disagg_suite(void)
{
    Suite *s = suite_create("disagg");
    TCase *tc = tcase_create("disagg");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_transfer_time_is_latency_plus_bytes_over_bandwidth);
    tcase_add_test(tc, test_concurrent_transfers_share_the_decode_nic_fairly);
    tcase_add_test(tc, test_kv_arrives_before_the_first_decode_and_ttft_is_prefill_only);
    tcase_add_test(tc, test_layerwise_streaming_hides_most_of_the_transfer);
    tcase_add_test(tc, test_full_decode_memory_backs_up_prefill_or_decodes_locally);
    tcase_add_test(tc, test_deciders_choose_who_is_disaggregated);
    tcase_add_test(tc, test_disaggregated_runs_are_deterministic);
    tcase_add_test(tc, test_bad_disagg_settings_are_errors_naming_the_key);
    tcase_add_test(tc, test_semi_pd_with_full_shares_equals_a_colocated_run);
    tcase_add_test(tc, test_semi_pd_sm_shares_slow_each_worker);
    tcase_add_test(tc, test_semi_pd_contention_slows_both_workers_under_load);
    tcase_add_test(tc, test_semi_pd_controller_moves_sms_to_a_backed_up_prefill);
    tcase_add_test(tc, test_semi_pd_under_load_conserves_requests_and_memory);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("migration");
    tcase_set_timeout(tm, 60);
    tcase_add_test(tm, test_migration_downtime_is_the_final_stop_and_copy_only);
    tcase_add_test(tm, test_stop_and_copy_gap_is_downtime_plus_the_destination_iteration);
    tcase_add_test(tm, test_migration_aborts_when_the_destination_cannot_reserve);
    tcase_add_test(tm, test_llumnix_controller_migrates_and_conserves_requests);
    tcase_add_test(tm, test_priority_headroom_moves_only_normal_requests);
    suite_add_tcase(s, tm);
    return s;
}
