/* KV cache as content, second part (issue 16): TTFT split into queueing,
 * loading and compute; router hit ratio against an oracle; an eviction
 * policy per lower tier; layer-by-layer tier loads. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/testutil.h"
#include "serve/cluster.h"
#include "serve/kv_tier.h"
#include "api/control.h"
#include "policies/registry.h"

/* ---- a run that keeps its records ------------------------------------------------- */

#define MAX_RECS 512

typedef struct recs {
    req_record rec[MAX_RECS];
    int n;
} recs;

static int keep_record(void *ctx, const req_record *rec)
{
    recs *r = ctx;
    ck_assert_int_lt(r->n, MAX_RECS);
    r->rec[r->n++] = *rec;
    return 0;
}

static const req_record *rec_by_id(const recs *r, uint64_t id)
{
    for (int i = 0; i < r->n; i++)
        if (r->rec[i].id == id)
            return &r->rec[i];
    ck_abort_msg("no record of request %llu", (unsigned long long)id);
    return NULL;
}

static void run_keep(const char *const *sets, recs *out, run_summary *sum)
{
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    memset(out, 0, sizeof *out);
    sim_err err = {{0}};
    cluster_hooks hooks = {.on_record = keep_record, .record_ctx = out};
    cluster *c = cluster_create(&cfg.sys, &hooks, &err);
    if (!c)
        ck_abort_msg("cluster_create: %s", err.msg);
    if (cluster_run(c, &err))
        ck_abort_msg("cluster_run: %s", err.msg);
    cluster_summarize(c, sum);
    cluster_destroy(c);
    run_config_fini(&cfg);
}

/* Every record's TTFT is its three parts, exactly, none negative. */
static void check_split(const recs *r)
{
    for (int i = 0; i < r->n; i++) {
        const req_record *x = &r->rec[i];
        ck_assert_int_ge(x->queue_ns, 0);
        ck_assert_int_ge(x->ttft_load_ns, 0);
        ck_assert_int_gt(x->ttft_compute_ns, 0);
        ck_assert_int_eq(x->queue_ns + x->ttft_load_ns + x->ttft_compute_ns, x->ttft_ns);
    }
}

/* A trace (written to a temporary file; path in `wl`, a workload setting):
 * A's 4096-token prompt is cached, pushed out of HBM by two long strangers
 * (it stays in the tiers, written through), then B (id 3) repeats it. */
/* b_extra: tokens B adds after A's prompt (its own, computed). */
static void tier_trace_b(char *wl, size_t size, char *file, size_t fsize, int b_extra)
{
    char *dir = tu_tempdir();
    snprintf(file, fsize, "%s/tier.csv", dir);
    free(dir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "arrival_s,input_tokens,output_tokens,prefix_block_tokens,prefix_blocks\n");
    const struct { double t; int input, first_id, n_ids; } rows[] = {
        {0, 4096, 1, 64}, {10, 12000, 1001, 188}, {20, 12000, 2001, 188}, {30, 4096, 1, 64}};
    for (int i = 0; i < 4; i++) {
        int extra = i == 3 ? b_extra : 0;
        fprintf(f, "%g,%d,1,64,", rows[i].t, rows[i].input + extra);
        for (int j = 0; j < rows[i].n_ids; j++)
            fprintf(f, "%s%d", j ? " " : "", rows[i].first_id + j);
        for (int j = 0; j < extra / 64; j++)
            fprintf(f, " %d", 3001 + j);
        fprintf(f, "\n");
    }
    fclose(f);
    snprintf(wl, size, "workload={\"source\": \"native\", \"path\": \"%s\"}", file);
}

static void tier_run_b(const char *tier_json, int b_extra, recs *out, run_summary *sum);

static void tier_run(const char *tier_json, recs *out, run_summary *sum)
{
    tier_run_b(tier_json, 0, out, sum);
}

static void tier_run_b(const char *tier_json, int b_extra, recs *out, run_summary *sum)
{
    char wl[512], file[300], tiers[512];
    tier_trace_b(wl, sizeof wl, file, sizeof file, b_extra);
    snprintf(tiers, sizeof tiers, "instance.kv_tiers=[%s]", tier_json);
    const char *const sets[] = {"model=\"Llama-3.1-8B\"", "instance.gpu_memory_utilization=0.245",
                                "instance.max_context_tokens=16384",
                                "instance.prefix_caching=true", "cost.model=\"roofline\"",
                                tiers, wl, NULL};
    run_keep(sets, out, sum);
    unlink(file);
}

/* ---- 1. TTFT split ---------------------------------------------------------------- */

/* B waits for its 255 blocks from DRAM: 16 chunks x 100 us + bytes / 10
 * GB/s, all of it TTFT's loading part; nobody else loads. */
START_TEST(test_ttft_split_charges_the_tier_load_to_the_loading_request)
{
    recs r;
    run_summary s;
    tier_run("{\"name\": \"dram\", \"capacity_gib\": 64, \"read_gb_per_s\": 10, "
             "\"latency_us\": 100, \"chunk_tokens\": 256}", &r, &s);
    ck_assert_int_eq(r.n, 4);
    check_split(&r);
    double bytes = 255 * 16 * 131072.0;   /* Llama-3.1-8B: 128 KiB a token */
    double expect_ns = 16 * 100e3 + bytes / 10e9 * 1e9;
    const req_record *b = rec_by_id(&r, 3);
    ck_assert_msg(fabs((double)b->ttft_load_ns - expect_ns) <= 2, "load %lld ns, expected %.0f",
                  (long long)b->ttft_load_ns, expect_ns);
    ck_assert_int_eq(b->ttft_load_ns, (int64_t)llround(s.kv_load_stall_s * 1e9));
    for (uint64_t id = 0; id < 3; id++)
        ck_assert_int_eq(rec_by_id(&r, id)->ttft_load_ns, 0);
    /* The summary: 1 of 4 requests loaded, so the p50 is 0 and the max
     * (p99) is B's. */
    ck_assert_double_eq(s.ttft_load_s.p50, 0);
    ck_assert_double_gt(s.ttft_load_s.p99, 0.9 * expect_ns / 1e9);
    ck_assert_double_gt(s.ttft_compute_s.p50, 0);
}
END_TEST

/* Without tiers nothing is loaded: TTFT is queueing plus compute, on a
 * busy run with preemptions and prefix hits. */
START_TEST(test_ttft_split_sums_exactly_without_tiers)
{
    recs r;
    run_summary s;
    const char *const sets[] = {
        "instance.prefix_caching=true", "cluster.instances=2",
        "workload={\"source\": \"native\", \"path\": \"tests/data/prefix_trace.csv\"}", NULL};
    run_keep(sets, &r, &s);
    ck_assert_int_eq(r.n, 200);
    check_split(&r);
    for (int i = 0; i < r.n; i++)
        ck_assert_int_eq(r.rec[i].ttft_load_ns, 0);
    ck_assert_double_eq(s.ttft_load_s.p99, 0);
    ck_assert_double_gt(s.ttft_compute_s.mean, 0);
}
END_TEST

/* A request moved with its KV halfway through its prefill waits for the
 * KV to travel: that is loading too. */
static int ctl_init(const control_setup *s, cJSON *params, const char *path, void **state,
                    sim_err *err)
{
    (void)s, (void)params, (void)path, (void)err;
    *state = NULL;
    return 0;
}

static int mid_prefill_moved;   /* one run at a time */

static void mover_tick(void *state, const control_view *v, control_plan *plan)
{
    (void)state;
    for (int32_t i = 0; i < v->n_instances && !mid_prefill_moved; i++) {
        int32_t n;
        const serve_req *const *run = v->running(v, i, &n);
        for (int32_t k = 0; k < n; k++)
            if (run[k]->id == 0 && run[k]->computed_tokens > 0 && run[k]->generated_tokens == 0) {
                mid_prefill_moved = 1;
                control_add(plan, (control_action){.kind = CTRL_MOVE, .req = run[k],
                                                   .to = 1 - i, .mode = MOVE_WITH_KV});
                break;
            }
    }
}

static const control_policy_ops ctl_mid_prefill = {"test_mid_prefill", ctl_init, mover_tick,
                                                   NULL};

START_TEST(test_ttft_split_counts_a_kv_move_before_the_first_token)
{
    mid_prefill_moved = 0;
    const char *const sets[] = {"cluster.instances=2", "workload.requests=4",
                                "workload.input_tokens={\"dist\": \"fixed\", \"value\": 6000}",
                                "workload.output_tokens={\"dist\": \"fixed\", \"value\": 4}",
                                "instance.max_batched_tokens=512", NULL};
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    cfg.sys.control.ops = &ctl_mid_prefill;
    cfg.sys.control.params = NULL;
    cfg.sys.control.period_ns = 1000000;
    recs r;
    memset(&r, 0, sizeof r);
    sim_err err = {{0}};
    cluster_hooks hooks = {.on_record = keep_record, .record_ctx = &r};
    cluster *c = cluster_create(&cfg.sys, &hooks, &err);
    ck_assert_msg(c, "%s", err.msg);
    ck_assert_msg(cluster_run(c, &err) == 0, "%s", err.msg);
    cluster_counts counts;
    cluster_get_counts(c, &counts);
    ck_assert_int_eq(mid_prefill_moved, 1);
    ck_assert_uint_eq(counts.moves_done, 1);
    ck_assert_uint_gt(counts.move_bytes, 512 * 131072);   /* at least a chunk's KV */
    ck_assert_int_eq(r.n, 4);
    check_split(&r);
    /* Its KV (computed tokens x 128 KiB) over NVLink: at least the bytes
     * at the link's rate, plus its latency. */
    const req_record *x = rec_by_id(&r, 0);
    double bw = cfg.sys.pools[0].gpu.nvlink_bw_bytes_per_s;
    double min_ns = (double)counts.move_bytes / bw * 1e9;
    ck_assert_msg(x->ttft_load_ns >= (int64_t)min_ns && x->ttft_load_ns < min_ns + 1e5,
                  "load %lld ns for %llu bytes", (long long)x->ttft_load_ns,
                  (unsigned long long)counts.move_bytes);
    for (uint64_t id = 1; id < 4; id++)
        ck_assert_int_eq(rec_by_id(&r, id)->ttft_load_ns, 0);
    cluster_destroy(c);
    run_config_fini(&cfg);
}
END_TEST

/* ---- 2. router against an oracle -------------------------------------------------- */

/* Four requests 10 s apart on two instances: P, P, Q, P (P a 1024-token
 * prompt of 16 chained ids, Q a stranger). Round robin sends the second P
 * to instance 1, whose cache is empty while instance 0 holds P (an oracle
 * hit of 63 blocks, 1008 tokens); the last P goes to instance 1 again,
 * which now holds it: router 1008 tokens, oracle 2016. */
static void oracle_run(const char *route, bool oracle, tu_run *out)
{
    char *dir = tu_tempdir();
    char file[300], wl[400], rt[96];
    snprintf(file, sizeof file, "%s/oracle.csv", dir);
    free(dir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "arrival_s,input_tokens,output_tokens,prefix_block_tokens,prefix_blocks\n");
    const int first[4] = {1, 1, 101, 1};
    for (int i = 0; i < 4; i++) {
        fprintf(f, "%d,1024,1,64,", 10 * i);
        for (int j = 0; j < 16; j++)
            fprintf(f, "%s%d", j ? " " : "", first[i] + j);
        fprintf(f, "\n");
    }
    fclose(f);
    snprintf(wl, sizeof wl, "workload={\"source\": \"native\", \"path\": \"%s\"}", file);
    snprintf(rt, sizeof rt, "policies.routing.name=\"%s\"", route);
    const char *const sets[] = {"instance.prefix_caching=true", "cluster.instances=2", rt, wl,
                                oracle ? "metrics.router_oracle=true" : NULL, NULL};
    tu_run_sets(sets, out);
    unlink(file);
}

START_TEST(test_router_oracle_round_robin_misses_half_the_best_hits)
{
    tu_run r, off;
    oracle_run("round_robin", true, &r);
    ck_assert_int_eq(r.n_records, 4);
    ck_assert_uint_eq(r.summary.router_oracle_requests, 4);
    ck_assert_uint_eq(r.summary.router_hit_tokens, 1008);
    ck_assert_uint_eq(r.summary.oracle_hit_tokens, 2016);
    ck_assert_double_eq_tol(r.summary.router_hit_ratio, 1008.0 / 4096, 1e-12);
    ck_assert_double_eq_tol(r.summary.oracle_hit_ratio, 2016.0 / 4096, 1e-12);
    ck_assert_double_eq_tol(r.summary.router_oracle_ratio, 0.5, 1e-12);
    /* The router's hits at routing time are the caches' hits at admission
     * here (nothing changes in between). */
    ck_assert_uint_eq(r.summary.kv_hit_tokens, r.summary.router_hit_tokens);
    /* Off (the default): nothing counted, the run itself unchanged. */
    oracle_run("round_robin", false, &off);
    ck_assert_uint_eq(off.summary.router_oracle_requests, 0);
    ck_assert_double_eq(off.summary.router_oracle_ratio, 0);
    ck_assert_uint_eq(off.record_hash, r.record_hash);
    tu_run_fini(&r);
    tu_run_fini(&off);
}
END_TEST

/* A precise prefix router finds the best cache every time. */
START_TEST(test_router_oracle_prefix_match_equals_the_oracle)
{
    tu_run r;
    oracle_run("prefix_match", true, &r);
    ck_assert_uint_eq(r.summary.router_hit_tokens, 2 * 1008);   /* both repeats of P */
    ck_assert_uint_eq(r.summary.oracle_hit_tokens, 2 * 1008);
    ck_assert_double_eq(r.summary.router_oracle_ratio, 1);
    tu_run_fini(&r);
}
END_TEST

/* ---- 3. an eviction policy per tier ------------------------------------------------ */

/* Three blocks in a tier of three: A, B, C written; A hit twice, then B,
 * then C. A fourth block D comes: LRU evicts A (touched longest ago), LFU
 * B (fewest hits, 1, tied with C, and B less recently used). */
static uint64_t tier_victim_of(const char *policy)
{
    kv_tier_setup ts = {.name = "dram", .capacity_blocks = 3};
    sim_err err = {{0}};
    if (policy) {
        ts.evict = evict_policy_find(policy, "test", &err);
        ck_assert_msg(ts.evict != NULL, "%s", err.msg);
    }
    kv_tier *t = kv_tier_create_for(&ts, 16);
    const uint64_t a = 0x10, b = 0x20, c = 0x30, d = 0x40;
    ck_assert(kv_tier_write(t, a, 0, 1));
    ck_assert(kv_tier_write(t, b, 1, 2));
    ck_assert(kv_tier_write(t, c, 2, 3));
    ck_assert(!kv_tier_write(t, c, 2, 4));   /* already there: a touch */
    kv_tier_use(t, a, 0, 5);
    kv_tier_use(t, a, 0, 6);
    kv_tier_use(t, b, 1, 7);
    kv_tier_use(t, c, 2, 8);
    ck_assert(kv_tier_write(t, d, 0, 9));
    ck_assert_int_eq(kv_tier_size(t), 3);
    ck_assert_uint_eq(kv_tier_evictions(t), 1);
    ck_assert(kv_tier_has(t, d));
    uint64_t gone = 0;
    for (uint64_t h = a; h <= c; h += 0x10)
        if (!kv_tier_has(t, h)) {
            ck_assert_uint_eq(gone, 0);
            gone = h;
        }
    kv_tier_destroy(t);
    return gone;
}

START_TEST(test_tier_lfu_evicts_the_least_hit_block)
{
    ck_assert_uint_eq(tier_victim_of(NULL), 0x10);    /* built-in LRU: A */
    ck_assert_uint_eq(tier_victim_of("lru"), 0x10);   /* the policy: the same */
    ck_assert_uint_eq(tier_victim_of("lfu"), 0x20);   /* B */
}
END_TEST

/* Every policy of the family runs a tier: a stream of writes and hits
 * over a tier of 8 keeps 8 blocks, and the most recent write is there. */
START_TEST(test_tier_every_eviction_policy_keeps_capacity)
{
    for (int p = 0; evict_policies[p]; p++) {
        kv_tier_setup ts = {.name = "ssd", .capacity_blocks = 8, .evict = evict_policies[p]};
        kv_tier *t = kv_tier_create_for(&ts, 16);
        uint64_t x = 7;
        for (int i = 0; i < 500; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            uint64_t h = ((x >> 33) % 24) + 1;
            if (kv_tier_has(t, h) && (x & 1))
                kv_tier_use(t, h, (int32_t)(h % 5), i);
            else
                kv_tier_write(t, h, (int32_t)(h % 5), i);
            ck_assert(kv_tier_has(t, h));
            ck_assert_int_le(kv_tier_size(t), 8);
        }
        ck_assert_int_eq(kv_tier_size(t), 8);
        ck_assert_uint_gt(kv_tier_evictions(t), 0);
        kv_tier_destroy(t);
    }
}
END_TEST

/* In a run: "eviction": "lru" on the tier is the default, bit for bit;
 * unknown names and bad params are errors naming the path. */
START_TEST(test_tier_eviction_config)
{
    recs a, b;
    run_summary sa, sb;
    const char *dram = "{\"name\": \"dram\", \"capacity_gib\": 64, \"read_gb_per_s\": 10";
    char t1[256], t2[256];
    snprintf(t1, sizeof t1, "%s}", dram);
    snprintf(t2, sizeof t2, "%s, \"eviction\": \"lru\"}", dram);
    tier_run(t1, &a, &sa);
    tier_run(t2, &b, &sb);
    ck_assert_int_eq(a.n, b.n);
    ck_assert(memcmp(a.rec, b.rec, (size_t)a.n * sizeof a.rec[0]) == 0);
    ck_assert_uint_eq(sa.kv_tier_hit_tokens, sb.kv_tier_hit_tokens);
    ck_assert_uint_gt(sb.kv_tier_hit_tokens, 0);

    static const struct { const char *tier, *want; } bad[] = {
        {"{\"name\": \"dram\", \"capacity_gib\": 1, \"eviction\": \"mru\"}",
         "$.instance.kv_tiers[0].eviction"},
        {"{\"name\": \"dram\", \"capacity_gib\": 1, \"eviction\": 3}",
         "$.instance.kv_tiers[0].eviction: expected a policy name"},
        {"{\"name\": \"dram\", \"capacity_gib\": 1, \"eviction\": {\"name\": \"lfu\", "
         "\"params\": {\"leaf_onl\": true}}}", "leaf_onl"},
        {"{\"name\": \"dram\", \"capacity_gib\": 1, \"load_mode\": \"async\"}",
         "$.instance.kv_tiers[0].load_mode: expected one of: blocking, layerwise"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char set[400];
        snprintf(set, sizeof set, "instance.kv_tiers=[%s]", bad[i].tier);
        const char *const sets[] = {"instance.prefix_caching=true", set, NULL};
        cJSON *root = tu_base_config();
        tu_set(root, sets);
        run_config cfg;
        sim_err err = {{0}};
        ck_assert_int_ne(run_config_parse(root, &cfg, &err), 0);
        ck_assert_msg(strstr(err.msg, bad[i].want), "got: %s", err.msg);
    }
    /* And a good one parses to the policy. */
    const char *const ok[] = {"instance.prefix_caching=true",
                              "instance.kv_tiers=[{\"name\": \"ssd\", \"capacity_gib\": 1, "
                              "\"eviction\": {\"name\": \"lfu\", \"params\": "
                              "{\"leaf_only\": false}}, \"load_mode\": \"layerwise\"}]", NULL};
    cJSON *root = tu_base_config();
    tu_set(root, ok);
    run_config cfg;
    tu_parse(root, &cfg);
    const kv_tier_setup *ts = &cfg.sys.pools[0].kv_tiers.tier[0];
    ck_assert_str_eq(ts->evict->name, "lfu");
    ck_assert(ts->layerwise);
    run_config_fini(&cfg);
}
END_TEST

/* ---- 4. layer-by-layer loads ------------------------------------------------------ */

#define DRAM10 "{\"name\": \"dram\", \"capacity_gib\": 64, \"read_gb_per_s\": 10, " \
               "\"latency_us\": 100, \"chunk_tokens\": 256, \"load_mode\": "

/* B adds 7,904 tokens of its own to A's prompt: its iteration computes
 * them (well over 100 ms) while loading A's 256 blocks (about 55 ms):
 * layer by layer, it waits only for the first of the 32 layers' loads;
 * blocking, for all of it. */
START_TEST(test_layerwise_load_under_compute_stalls_one_layer)
{
    recs blk, lay;
    run_summary sb, sl;
    tier_run_b(DRAM10 "\"blocking\"}", 7904, &blk, &sb);
    tier_run_b(DRAM10 "\"layerwise\"}", 7904, &lay, &sl);
    check_split(&blk);
    check_split(&lay);
    ck_assert_uint_eq(sb.kv_tier_hit_tokens, 4096);   /* all of A's 256 blocks */
    ck_assert_uint_eq(sl.kv_tier_hit_tokens, 4096);
    const req_record *b = rec_by_id(&blk, 3), *l = rec_by_id(&lay, 3);
    double bytes = 256 * 16 * 131072.0;
    double load_ns = 16 * 100e3 + bytes / 10e9 * 1e9;
    ck_assert_msg(fabs((double)b->ttft_load_ns - load_ns) <= 2, "blocking stall %lld ns",
                  (long long)b->ttft_load_ns);
    /* Compute is longer than the load: the stall is the first layer's. */
    ck_assert_int_gt(b->ttft_compute_ns, b->ttft_load_ns);
    ck_assert_int_eq(l->ttft_load_ns, (b->ttft_load_ns + 31) / 32);   /* Llama-3.1-8B: 32 layers */
    ck_assert_int_eq(l->ttft_load_ns, (int64_t)llround(sl.kv_load_stall_s * 1e9));
    /* The rest of B's TTFT is the same computation. */
    ck_assert_int_eq(l->ttft_compute_ns, b->ttft_compute_ns);
    ck_assert_int_eq(b->ttft_ns - l->ttft_ns, b->ttft_load_ns - l->ttft_load_ns);
}
END_TEST

/* B repeats A's prompt alone: 16 tokens to compute, the load is longer.
 * Layer by layer, the stall is the load less what compute hid: less than
 * blocking's by under one iteration's compute. */
START_TEST(test_layerwise_load_over_compute_stalls_the_difference)
{
    recs blk, lay;
    run_summary sb, sl;
    tier_run(DRAM10 "\"blocking\"}", &blk, &sb);
    tier_run(DRAM10 "\"layerwise\"}", &lay, &sl);
    const req_record *b = rec_by_id(&blk, 3), *l = rec_by_id(&lay, 3);
    int64_t hidden = b->ttft_load_ns - l->ttft_load_ns;
    ck_assert_int_gt(hidden, 0);
    ck_assert_int_lt(hidden, b->ttft_compute_ns);
    ck_assert_int_gt(l->ttft_load_ns, b->ttft_load_ns / 2);
    ck_assert_int_eq(l->ttft_compute_ns, b->ttft_compute_ns);
}
END_TEST

Suite *kv_tiers2_suite(void)
{
    Suite *s = suite_create("kv_tiers2");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_ttft_split_charges_the_tier_load_to_the_loading_request);
    tcase_add_test(tc, test_ttft_split_sums_exactly_without_tiers);
    tcase_add_test(tc, test_ttft_split_counts_a_kv_move_before_the_first_token);
    tcase_add_test(tc, test_router_oracle_round_robin_misses_half_the_best_hits);
    tcase_add_test(tc, test_router_oracle_prefix_match_equals_the_oracle);
    tcase_add_test(tc, test_tier_lfu_evicts_the_least_hit_block);
    tcase_add_test(tc, test_tier_every_eviction_policy_keeps_capacity);
    tcase_add_test(tc, test_tier_eviction_config);
    tcase_add_test(tc, test_layerwise_load_under_compute_stalls_one_layer);
    tcase_add_test(tc, test_layerwise_load_over_compute_stalls_the_difference);
    suite_add_tcase(s, tc);
    return s;
}
