/* Engine features of 2026 serving, second slice (issue 18): speculative
 * decoding's acceptance from the trace (native columns spec_alpha and
 * spec_accepted; acceptance models "request" and "trace" in serve/spec.c),
 * multi-LoRA adapter loads over the link model (serve/lora.h
 * load_over_links), tier metrics, and POLAR adapter selection
 * (serve/polar.h). Runs use the shared base config (tests/testutil.c),
 * some over small native traces written here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/cost.h"
#include "models/model.h"
#include "serve/cluster.h"
#include "serve/polar.h"
#include "tests/suites.h"
#include "tests/testutil.h"
#include "traces/trace_read.h"

/* A native trace of n requests, 0.5 s apart (light load: nothing clamps a
 * request's drafts but its own output), input 200 + 10 i, output
 * out[i % n_out], and per request the cell `col` (may be empty), written
 * under a fresh folder; caller frees. */
static char *write_trace(int n, const int *out, int n_out, const char *header,
                         const char *(*cell)(int i))
{
    char *dir = tu_tempdir();
    char *path = sim_xmalloc(strlen(dir) + 16);
    sprintf(path, "%s/t.csv", dir);
    free(dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "arrival_s,input_tokens,output_tokens%s%s\n", header ? "," : "",
            header ? header : "");
    for (int i = 0; i < n; i++) {
        fprintf(f, "%d.5,%d,%d", i / 2, 200 + 10 * i, out[i % n_out]);
        if (header)
            fprintf(f, ",%s", cell(i));
        fputc('\n', f);
    }
    fclose(f);
    return path;
}

/* Runs the base config over trace `path` with `spec` as
 * instance.speculative (NULL: off). */
static void run_trace(const char *path, const char *spec, tu_run *r)
{
    char wl[1024], sp[1024];
    snprintf(wl, sizeof wl, "workload={\"source\": \"native\", \"path\": \"%s\"}", path);
    snprintf(sp, sizeof sp, "instance.speculative=%s", spec ? spec : "{\"method\": \"off\"}");
    const char *sets[] = {wl, sp, NULL};
    tu_run_sets(sets, r);
    ck_assert_int_eq(r->kv_over_capacity, 0);
    ck_assert_uint_eq(r->output_mismatches, 0);
}

static void remove_trace(char *path)
{
    remove(path);
    char *slash = strrchr(path, '/');
    *slash = 0;
    remove(path);
    free(path);
}

/* ---- recorded accepted lengths ("trace") ------------------------------------------ */

#define N_REQ 24
static const int outs[] = {40, 7, 1, 64, 23};
#define N_OUTS 5
/* Request i's recorded steps: a pattern of its own, some past K = 3
 * (cut to the step's drafts), request 5 with none (the rate applies). */
static const char *const patterns[] = {"3 0 2 1", "0", "3", "1 1 4 0 2", "2 3"};
static const char *accepted_cell(int i) { return i == 5 ? "" : patterns[i % 5]; }

/* What the steps of a request of `out` output tokens accept under the
 * recorded list (cycled, cut to d = min(K, left - 1)): adds its drafts
 * and accepted drafts. */
static void expect_steps(int out, const int *list, int n, int k, uint64_t *drafts,
                         uint64_t *accepted, uint64_t *steps)
{
    int generated = 1, step = 0;   /* the prefill emits the first token */
    while (generated < out) {
        int d = out - generated - 1 < k ? out - generated - 1 : k;
        if (d <= 0) {   /* a plain decode step */
            generated++;
            continue;
        }
        int a = list[step % n] < d ? list[step % n] : d;
        step++;
        *drafts += (uint64_t)d;
        *accepted += (uint64_t)a;
        *steps += 1;
        generated += a + 1;
    }
}

static int parse_list(const char *s, int *out)
{
    int n = 0;
    for (char *end; *s; s = end) {
        long v = strtol(s, &end, 10);
        if (end == s)
            break;
        out[n++] = (int)v;
    }
    return n;
}

/* Each request's recorded accepted drafts are used one per verification
 * step, in order, cut to the step's drafts and cycled: the run's drafts,
 * accepted tokens and steps equal those the lists give, step for step. A
 * request without the column draws at the rate (0 here: accepts none). */
START_TEST(test_spec2_trace_accepted_lengths_consumed_in_order)
{
    char *path = write_trace(N_REQ, outs, N_OUTS, "spec_accepted", accepted_cell);
    tu_run r;
    run_trace(path,
              "{\"method\": \"eagle\", \"k\": 3, \"acceptance\": "
              "{\"model\": \"trace\", \"rate\": 0}}",
              &r);
    uint64_t drafts = 0, accepted = 0, steps = 0;
    for (int i = 0; i < N_REQ; i++) {
        int list[16], n = 1;
        list[0] = 0;   /* the rate-0 fallback accepts nothing */
        if (i != 5)
            n = parse_list(patterns[i % 5], list);
        expect_steps(outs[i % N_OUTS], list, n, 3, &drafts, &accepted, &steps);
    }
    ck_assert_uint_eq(r.summary.completed, N_REQ);
    ck_assert_uint_eq(r.summary.spec_drafts, steps);
    ck_assert_uint_eq(r.summary.spec_draft_tokens, drafts);
    ck_assert_uint_eq(r.summary.spec_accepted_tokens, accepted);
    tu_run_fini(&r);
    remove_trace(path);
}
END_TEST

/* A list of K's throughout accepts everything: K + 1 tokens a full step,
 * the same run as a Bernoulli rate of 1. */
static const char *all_cell(int i) { (void)i; return "3"; }

START_TEST(test_spec2_trace_all_accepted_matches_rate_one)
{
    char *path = write_trace(N_REQ, outs, N_OUTS, "spec_accepted", all_cell);
    tu_run a, b;
    run_trace(path, "{\"method\": \"eagle\", \"k\": 3, \"acceptance\": {\"model\": \"trace\"}}",
              &a);
    run_trace(path, "{\"method\": \"eagle\", \"k\": 3, \"acceptance\": 1}", &b);
    ck_assert_uint_eq(a.record_hash, b.record_hash);
    ck_assert_uint_eq(a.summary.spec_accepted_tokens, a.summary.spec_draft_tokens);
    ck_assert_uint_eq(a.summary.spec_accepted_tokens, b.summary.spec_accepted_tokens);
    tu_run_fini(&a);
    tu_run_fini(&b);
    remove_trace(path);
}
END_TEST

/* ---- per-request rates ("request") ------------------------------------------------ */

static const char *alpha_08(int i) { (void)i; return "0.8"; }
static const char *alpha_mixed(int i) { return i % 2 ? "1" : "0"; }
static const char *alpha_some(int i) { return i % 3 ? "0.25" : ""; }

/* Every request at the configured rate draws what "bernoulli" draws: the
 * same run, bit for bit. */
START_TEST(test_spec2_request_rate_equal_to_bernoulli_is_identical)
{
    char *path = write_trace(N_REQ, outs, N_OUTS, "spec_alpha", alpha_08);
    tu_run a, b;
    run_trace(path,
              "{\"method\": \"eagle\", \"k\": 4, \"acceptance\": "
              "{\"model\": \"request\", \"rate\": 0.3}}",
              &a);
    run_trace(path, "{\"method\": \"eagle\", \"k\": 4, \"acceptance\": 0.8}", &b);
    ck_assert_uint_eq(a.record_hash, b.record_hash);
    ck_assert_uint_eq(a.summary.spec_accepted_tokens, b.summary.spec_accepted_tokens);
    ck_assert_uint_gt(a.summary.spec_accepted_tokens, 0);
    tu_run_fini(&a);
    tu_run_fini(&b);
    remove_trace(path);
}
END_TEST

/* Rates 1 and 0 alternating by request: the rate-1 requests accept every
 * draft, the rate-0 ones none, so the run accepts exactly the drafts of
 * the odd requests (each request's steps follow from its output alone). */
START_TEST(test_spec2_request_rates_per_request)
{
    char *path = write_trace(N_REQ, outs, N_OUTS, "spec_alpha", alpha_mixed);
    tu_run r;
    run_trace(path, "{\"method\": \"eagle\", \"k\": 3, \"acceptance\": {\"model\": \"request\"}}",
              &r);
    uint64_t drafts = 0, accepted = 0, steps = 0;
    for (int i = 0; i < N_REQ; i++) {
        int list[1] = {i % 2 ? 3 : 0};
        expect_steps(outs[i % N_OUTS], list, 1, 3, &drafts, &accepted, &steps);
    }
    ck_assert_uint_eq(r.summary.spec_drafts, steps);
    ck_assert_uint_eq(r.summary.spec_draft_tokens, drafts);
    ck_assert_uint_eq(r.summary.spec_accepted_tokens, accepted);
    tu_run_fini(&r);
    remove_trace(path);
}
END_TEST

/* Requests without the column use `rate`: with rate 1, those accept all,
 * the others (0.25) fewer; the run lies strictly between all-0.25 and
 * all-1. */
START_TEST(test_spec2_request_rate_falls_back_to_rate)
{
    char *path = write_trace(N_REQ, outs, N_OUTS, "spec_alpha", alpha_some);
    tu_run mixed, low, high;
    run_trace(path,
              "{\"method\": \"eagle\", \"k\": 3, \"acceptance\": "
              "{\"model\": \"request\", \"rate\": 1}}",
              &mixed);
    run_trace(path, "{\"method\": \"eagle\", \"k\": 3, \"acceptance\": 0.25}", &low);
    run_trace(path, "{\"method\": \"eagle\", \"k\": 3, \"acceptance\": 1}", &high);
    double m = mixed.summary.spec_mean_acceptance_length;
    ck_assert_double_gt(m, low.summary.spec_mean_acceptance_length);
    ck_assert_double_lt(m, high.summary.spec_mean_acceptance_length);
    tu_run_fini(&mixed);
    tu_run_fini(&low);
    tu_run_fini(&high);
    remove_trace(path);
}
END_TEST

/* ---- the columns ------------------------------------------------------------------- */

/* Both columns read from CSV and JSONL, with their values. */
START_TEST(test_spec2_native_columns_read)
{
    char *dir = tu_tempdir();
    char csv[512], jsonl[512];
    snprintf(csv, sizeof csv, "%s/a.csv", dir);
    snprintf(jsonl, sizeof jsonl, "%s/a.jsonl", dir);
    FILE *f = fopen(csv, "w");
    fputs("arrival_s,input_tokens,output_tokens,spec_alpha,spec_accepted\n"
          "0,10,5,0.625,3 0  2\n1,10,5,,\n", f);
    fclose(f);
    f = fopen(jsonl, "w");
    fputs("{\"arrival_s\": 0, \"input_tokens\": 10, \"output_tokens\": 5, "
          "\"spec_alpha\": 0.625, \"spec_accepted\": [3, 0, 2]}\n"
          "{\"arrival_s\": 1, \"input_tokens\": 10, \"output_tokens\": 5}\n", f);
    fclose(f);
    const char *files[] = {csv, jsonl};
    for (int k = 0; k < 2; k++) {
        sim_err err = {{0}};
        trace_reader *rd = trace_reader_open(files[k], NULL, false, &err);
        ck_assert_msg(rd, "%s", err.msg);
        trace_row row;
        ck_assert_int_eq(trace_reader_next(rd, &row, &err), 1);
        ck_assert(row.spec_alpha_set);
        ck_assert_double_eq(row.spec_alpha, 0.625);
        ck_assert_int_eq(row.n_spec_accepted, 3);
        ck_assert_int_eq(row.spec_accepted[0], 3);
        ck_assert_int_eq(row.spec_accepted[1], 0);
        ck_assert_int_eq(row.spec_accepted[2], 2);
        ck_assert_int_eq(trace_reader_next(rd, &row, &err), 1);
        ck_assert(!row.spec_alpha_set);
        ck_assert_int_eq(row.n_spec_accepted, 0);
        ck_assert_int_eq(trace_reader_next(rd, &row, &err), 0);
        trace_reader_close(rd);
    }
    remove(csv);
    remove(jsonl);
    remove(dir);
    free(dir);
}
END_TEST

/* Bad cells name the file, line, column and text. */
START_TEST(test_spec2_native_columns_errors)
{
    static const struct {
        const char *text, *expect[2];
    } cases[] = {
        {"arrival_s,input_tokens,output_tokens,spec_alpha\n0,10,5,1.5\n",
         {"column spec_alpha", "a rate in [0, 1]"}},
        {"arrival_s,input_tokens,output_tokens,spec_alpha\n0,10,5,-0.1\n",
         {"column spec_alpha", "\"-0.1\""}},
        {"arrival_s,input_tokens,output_tokens,spec_accepted\n0,10,5,1 x 3\n",
         {"column spec_accepted", "integers in [0, 255]"}},
        {"arrival_s,input_tokens,output_tokens,spec_accepted\n0,10,5,300\n",
         {"column spec_accepted", "\"300\""}},
        {"{\"arrival_s\": 0, \"input_tokens\": 5, \"output_tokens\": 5, "
         "\"spec_accepted\": [1, 2,]}\n",
         {"column spec_accepted", "an array of"}},
        {"{\"arrival_s\": 0, \"input_tokens\": 5, \"output_tokens\": 5, "
         "\"spec_accepted\": 3}\n",
         {"column spec_accepted", "an array of"}},
    };
    char *dir = tu_tempdir();
    char path[512];
    snprintf(path, sizeof path, "%s/bad.txt", dir);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        FILE *f = fopen(path, "w");
        fputs(cases[c].text, f);
        fclose(f);
        sim_err err = {{0}};
        trace_reader *rd = trace_reader_open(path, NULL, false, &err);
        ck_assert_msg(rd, "%s", err.msg);
        trace_row row;
        int rc;
        while ((rc = trace_reader_next(rd, &row, &err)) == 1)
            ;
        ck_assert_int_eq(rc, -1);
        ck_assert_msg(strstr(err.msg, "bad.txt:"), "%s", err.msg);
        for (int k = 0; k < 2; k++)
            ck_assert_msg(strstr(err.msg, cases[c].expect[k]), "case %zu: \"%s\" lacks \"%s\"",
                          c, err.msg, cases[c].expect[k]);
        trace_reader_close(rd);
    }
    remove(path);
    remove(dir);
    free(dir);
}
END_TEST

/* The columns survive spreading equal timestamps (the source's buffers):
 * a trace whose rows share times, spread, gives the same accepted tokens
 * as the lists predict. */
static const char *accepted_all_equal_time(int i) { return patterns[i % 5]; }

START_TEST(test_spec2_columns_survive_spreading)
{
    char *path = write_trace(N_REQ, outs, N_OUTS, "spec_accepted", accepted_all_equal_time);
    char wl[1024];
    snprintf(wl, sizeof wl,
             "workload={\"source\": \"native\", \"path\": \"%s\", \"spread_ms\": 400}", path);
    const char *sets[] = {wl,
                          "instance.speculative={\"method\": \"eagle\", \"k\": 3, "
                          "\"acceptance\": {\"model\": \"trace\"}}",
                          NULL};
    tu_run r;
    tu_run_sets(sets, &r);
    uint64_t drafts = 0, accepted = 0, steps = 0;
    for (int i = 0; i < N_REQ; i++) {
        int list[16];
        int n = parse_list(patterns[i % 5], list);
        expect_steps(outs[i % N_OUTS], list, n, 3, &drafts, &accepted, &steps);
    }
    ck_assert_uint_eq(r.summary.spec_accepted_tokens, accepted);
    ck_assert_uint_eq(r.summary.spec_drafts, steps);
    tu_run_fini(&r);
    remove_trace(path);
}
END_TEST

START_TEST(test_spec2_config_errors)
{
    cJSON *root = tu_base_config();
    const char *sets[] = {"instance.speculative={\"method\": \"eagle\", \"acceptance\": "
                          "{\"model\": \"recorded\"}}",
                          NULL};
    tu_set(root, sets);
    run_config cfg;
    sim_err err = {{0}};
    ck_assert_int_ne(run_config_parse(root, &cfg, &err), 0);
    ck_assert_msg(strstr(err.msg, "acceptance.model: expected one of: bernoulli, "
                                  "per_position, beta, request, trace"),
                  "%s", err.msg);   /* run_config_parse took root */
}
END_TEST

/* ---- LoRA loads over the link model ----------------------------------------------- */

/* The constants a load's time is made of, from the parsed config. */
typedef struct load_consts {
    double pcie_lat_ns, pcie_bps, storage_lat_ns, storage_bps, pcie_bytes, storage_bytes;
} load_consts;

static void load_consts_of(const char *const *sets, load_consts *k)
{
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    const pool_setup *p = &cfg.sys.pools[0];
    ck_assert_int_eq(p->par.tp, 1);
    k->pcie_lat_ns = (double)cfg.sys.topology.pcie_latency_ns;
    k->pcie_bps = p->gpu.pcie_bw_bytes_per_s;
    k->storage_lat_ns = p->lora.storage_latency_ns;
    k->storage_bps = p->lora.storage_bytes_per_s;
    k->pcie_bytes = p->lora.bytes_per_gpu;   /* one rank: every adapter the same */
    k->storage_bytes = p->lora.bytes_per_gpu;
    run_config_fini(&cfg);
}

#define LORA_LINKS(slots, adapters, links)                                                \
    "instance.lora={\"adapters\": " #adapters ", \"max_loras\": " #slots                  \
    ", \"max_cpu_loras\": 64, \"storage_latency_ms\": 20, \"load_over_links\": " #links "}"

/* One GPU slot: an iteration loads at most one adapter, alone on its
 * links, so every load takes its links' latency plus bytes / bandwidth:
 * from storage, the storage leg then the PCIe leg. The run's stall time is
 * the sum of those, to a ns per leg; the same run without the links
 * model, which leaves out PCIe's latency, waits less per load. */
START_TEST(test_spec2_lora_load_alone_takes_latency_plus_bytes_over_bandwidth)
{
    const char *sets[] = {LORA_LINKS(1, 6, true), "workload.arrival.rate_per_s=4", NULL};
    load_consts k;
    load_consts_of(sets, &k);
    tu_run r, plain;
    tu_run_sets(sets, &r);
    const char *psets[] = {LORA_LINKS(1, 6, false), "workload.arrival.rate_per_s=4", NULL};
    tu_run_sets(psets, &plain);
    const run_summary *s = &r.summary;
    ck_assert_uint_eq(s->completed, 200);
    ck_assert_uint_gt(s->lora_loads, 10);
    ck_assert_uint_gt(s->lora_storage_loads, 0);
    double pcie = k.pcie_lat_ns + k.pcie_bytes / k.pcie_bps * 1e9;
    double storage = k.storage_lat_ns + k.storage_bytes / k.storage_bps * 1e9;
    double want = (double)s->lora_loads * pcie + (double)s->lora_storage_loads * storage;
    double got = s->lora_load_time_s * 1e9;
    ck_assert_msg(fabs(got - want) <= 2.0 * (double)(s->lora_loads + s->lora_storage_loads),
                  "stall %.0f ns, want %.0f ns", got, want);
    double per_load = got / (double)s->lora_loads;
    double plain_per_load = plain.summary.lora_load_time_s * 1e9 /
                            (double)plain.summary.lora_loads;
    ck_assert_double_lt(plain_per_load, per_load);
    tu_run_fini(&r);
    tu_run_fini(&plain);
}
END_TEST

/* Eight slots, a burst of arrivals: iterations load several adapters at
 * once; they share the storage and PCIe links (max-min fair), so the
 * iteration pays each link's latency once, not once per load: the stall is
 * below the serial sum by at least one storage latency, and at least the
 * longest single load. */
START_TEST(test_spec2_lora_concurrent_loads_share_the_links)
{
    const char *sets[] = {LORA_LINKS(8, 8, true), "workload.arrival.rate_per_s=400", NULL};
    load_consts k;
    load_consts_of(sets, &k);
    tu_run r;
    tu_run_sets(sets, &r);
    const run_summary *s = &r.summary;
    ck_assert_uint_eq(s->completed, 200);
    ck_assert_uint_eq(s->lora_storage_loads, 8);   /* the host cache holds all eight */
    double pcie = k.pcie_lat_ns + k.pcie_bytes / k.pcie_bps * 1e9;
    double storage = k.storage_lat_ns + k.storage_bytes / k.storage_bps * 1e9;
    double serial = (double)s->lora_loads * pcie + (double)s->lora_storage_loads * storage;
    double got = s->lora_load_time_s * 1e9;
    ck_assert_msg(got <= serial - k.storage_lat_ns, "stall %.0f ns, serial %.0f ns", got,
                  serial);
    ck_assert_double_ge(got, storage + pcie - 2);
    ck_assert_double_gt(s->lora_adapters_per_batch, 1.5);
    tu_run_fini(&r);
}
END_TEST

/* The tiers' hit ratios and the batch's adapters: the host tier's ratio
 * is the loads the host cache served; no batch held more than max_loras
 * adapters, the busiest held more than the mean. */
START_TEST(test_spec2_lora_tier_metrics)
{
    const char *sets[] = {"instance.lora={\"adapters\": 40, \"max_loras\": 3, "
                          "\"max_cpu_loras\": 40}",
                          "workload.arrival.rate_per_s=20", NULL};
    tu_run r;
    tu_run_sets(sets, &r);
    const run_summary *s = &r.summary;
    ck_assert_uint_gt(s->lora_loads, s->lora_storage_loads);
    ck_assert_uint_le(s->lora_storage_loads, 40);
    ck_assert_double_eq_tol(s->lora_host_hit_ratio,
                            (double)(s->lora_loads - s->lora_storage_loads) / (double)s->lora_loads,
                            1e-12);
    ck_assert_double_gt(s->lora_host_hit_ratio, 0);
    ck_assert_double_lt(s->lora_gpu_hit_ratio, 1);
    ck_assert_uint_eq(s->lora_max_adapters_per_batch, 3);
    ck_assert_double_lt(s->lora_adapters_per_batch, 3);
    tu_run_fini(&r);
    tu_run off;
    tu_run_sets(NULL, &off);
    ck_assert_uint_eq(off.summary.lora_max_adapters_per_batch, 0);
    ck_assert_double_eq(off.summary.lora_host_hit_ratio, 0);
    tu_run_fini(&off);
}
END_TEST

/* Per-adapter latency: the /adapters groups hold every finished request
 * once, under its adapter (Zipf: adapter 0 the most popular), with its
 * TTFT; a run without LoRA has none. */
START_TEST(test_spec2_lora_per_adapter_groups)
{
    const char *sets[] = {"instance.lora={\"adapters\": 5, \"max_loras\": 2}", NULL};
    for (int on = 0; on < 2; on++) {
        cJSON *root = tu_base_config();
        tu_set(root, on ? sets : NULL);
        run_config cfg;
        tu_parse(root, &cfg);
        sim_err err = {{0}};
        cluster *c = cluster_create(&cfg.sys, NULL, &err);
        ck_assert_msg(c, "%s", err.msg);
        ck_assert_msg(cluster_run(c, &err) == 0, "%s", err.msg);
        int32_t n = cluster_n_groups(c, METRICS_BY_ADAPTER);
        if (!on) {
            ck_assert_int_eq(n, 0);
        } else {
            ck_assert_int_eq(n, 5);
            uint64_t total = 0, first = 0, last = 0;
            for (int32_t k = 0; k < n; k++) {
                group_summary g;
                cluster_group_summary(c, METRICS_BY_ADAPTER, k, &g);
                ck_assert_int_eq(g.id, k);
                ck_assert_uint_gt(g.completed, 0);
                ck_assert_double_gt(g.ttft_s.mean, 0);
                ck_assert_double_le(g.ttft_s.p50, g.ttft_s.p99);
                total += g.completed;
                if (k == 0)
                    first = g.completed;
                last = g.completed;
            }
            ck_assert_uint_eq(total, 200);
            ck_assert_uint_gt(first, last);   /* Zipf: adapter 0 the most requested */
        }
        cluster_destroy(c);
        run_config_fini(&cfg);
    }
}
END_TEST

/* Off by default: the same results with load_over_links false as without
 * the key. */
START_TEST(test_spec2_lora_links_off_by_default)
{
    tu_run a, b;
    const char *sa[] = {"instance.lora={\"adapters\": 6, \"max_loras\": 2}", NULL};
    const char *sb[] = {"instance.lora={\"adapters\": 6, \"max_loras\": 2, "
                        "\"load_over_links\": false}",
                        NULL};
    tu_run_sets(sa, &a);
    tu_run_sets(sb, &b);
    ck_assert_uint_eq(a.record_hash, b.record_hash);
    ck_assert_double_eq(a.summary.lora_load_time_s, b.summary.lora_load_time_s);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

/* ---- the drafter's cost model --------------------------------------------------------- */

/* A drafter made like the target (one loaded table; with same_prices, one
 * memo of prices shared with the target) prices every iteration exactly as
 * one made on its own, with the target's iterations interleaved (so shared
 * memo entries are hit both ways): decodes, prefill chunks and verify
 * chunks, on the measured A100 table. */
START_TEST(test_spec2_drafter_cost_model_shared_prices_identical)
{
    llm_model target, cut;
    gpu_spec g;
    sim_err err = {{0}};
    ck_assert_msg(llm_model_load(models_dir(), "Llama-2-70B", &target, &err) == 0, "%s", err.msg);
    ck_assert_msg(gpu_spec_load(models_dir(), "A100-SXM-80GB", &g, &err) == 0, "%s", err.msg);
    cut = target;
    cut.layers = 1;   /* an EAGLE drafter (serve/spec.c cut_model) */
    par_layout par = {.tp = 2, .pp = 1, .dp = 1, .ep = 1};
    cost_setup ts = {.model = &target, .gpu = &g, .par = par};
    cost_setup ds = ts;
    ds.model = &cut;
    cost_model *tm = cost_model_create("table", &ts, NULL, "$.cost", &err);
    ck_assert_msg(tm, "%s", err.msg);
    cost_model *alone = cost_model_create("table", &ds, NULL, "$.cost", &err);
    cost_model *like = cost_model_create_like(tm, &ds, NULL, "$.cost", false, &err);
    cost_model *same = cost_model_create_like(tm, &ds, NULL, "$.cost", true, &err);
    ck_assert(alone && like && same);
    batch_seq chunks[64];
    for (int it = 0; it < 400; it++) {
        int n = 1 + it % 40;
        for (int i = 0; i < n; i++)
            chunks[i] = (batch_seq){1 + (it + i) % 4, 300 + 37 * i + it};
        if (it % 7 == 0)
            chunks[0] = (batch_seq){256 + it, 0};   /* a prefill chunk */
        batch_shape shapes[2] = {
            {.prefill = chunks, .n_prefill = n, .n_sampled = n},
            {.n_decode = n, .decode_ctx_sum = 1000 * n + it, .n_sampled = n},
        };
        for (int k = 0; k < 2; k++) {
            cost_result t, a, b, c;
            cost_iteration(tm, &shapes[k], &t);
            cost_iteration(alone, &shapes[k], &a);
            cost_iteration(like, &shapes[k], &b);
            cost_iteration(same, &shapes[k], &c);
            ck_assert_int_eq(a.latency_ns, b.latency_ns);
            ck_assert_int_eq(a.latency_ns, c.latency_ns);
            ck_assert(a.energy_j == b.energy_j && a.energy_j == c.energy_j);
            ck_assert(a.weight_bytes == c.weight_bytes && a.kv_bytes == c.kv_bytes);
            ck_assert_int_lt(a.latency_ns, t.latency_ns);   /* 1 layer of 80 */
        }
    }
    cost_model_destroy(tm);   /* before its sharers: the table is reference-counted */
    cost_model_destroy(alone);
    cost_model_destroy(like);
    cost_model_destroy(same);
}
END_TEST

/* ---- POLAR adapter selection -------------------------------------------------------- */

static polar_setup polar_of(int32_t dim, double lambda, int32_t epoch, bool doubling)
{
    return (polar_setup){.on = true, .dim = dim, .beta = 0.5, .lambda = lambda, .noise = 0.05,
                         .epoch = epoch, .doubling = doubling};
}

/* A stationary instance, rewards right after each pick: after the forced
 * exploration the bandit settles on the best adapter for each context:
 * the mean regret of the last 1000 picks is under a fifth of the first
 * 1000's, and 90% of the late picks are a best adapter. */
START_TEST(test_spec2_polar_learns_the_best_adapter)
{
    polar_setup s = polar_of(4, 0, 64, true);
    polar *p = polar_create(&s, 5, 2, 11);
    polar_stats a, b, c;
    for (uint64_t id = 0; id < 6000; id++) {
        if (id == 1000)
            polar_get_stats(p, &a);
        if (id == 5000)
            polar_get_stats(p, &b);
        int32_t k = polar_select(p, id, NULL, NULL);
        ck_assert(k >= 0 && k < 5);
        polar_reward(p, id, k);
    }
    polar_get_stats(p, &c);
    ck_assert_uint_eq(c.selections, 6000);
    double early = a.regret / 1000, late = (c.regret - b.regret) / 1000;
    double late_opt = (double)(c.optimal - b.optimal) / 1000;
    ck_assert_msg(early > 0 && late < early / 5, "regret per pick: early %g, late %g", early,
                  late);
    ck_assert_msg(late_opt > 0.9, "late optimal share %g", late_opt);
    ck_assert_double_ge(c.regret, b.regret);   /* regret never decreases */
    polar_destroy(p);
}
END_TEST

/* Cache awareness: with a large penalty on loads, and only adapter 2
 * resident, the bandit picks adapter 2 once the exploration round is over. */
static double only_two_resident(void *ctx, int32_t a)
{
    (void)ctx;
    return a == 2 ? 0 : 10;
}

START_TEST(test_spec2_polar_penalty_prefers_resident)
{
    polar_setup s = polar_of(4, 100, 1000, false);
    polar *p = polar_create(&s, 6, 2, 5);
    int picks2 = 0;
    for (uint64_t id = 0; id < 500; id++) {
        int32_t k = polar_select(p, id, only_two_resident, NULL);
        if (id >= 6)
            picks2 += k == 2;
        polar_reward(p, id, k);
    }
    ck_assert_int_eq(picks2, 494);
    /* Without the penalty it does not stick to one adapter. */
    polar_setup s0 = polar_of(4, 0, 1000, false);
    polar *q = polar_create(&s0, 6, 2, 5);
    int other = 0;
    for (uint64_t id = 0; id < 500; id++) {
        int32_t k = polar_select(q, id, only_two_resident, NULL);
        other += k != 2;
        polar_reward(q, id, k);
    }
    ck_assert_int_gt(other, 50);
    polar_destroy(p);
    polar_destroy(q);
}
END_TEST

/* The epoch controller: epochs of E, 2E, 4E (POLAR+) or all E; each ends
 * with a kept set of `keep` adapters. */
START_TEST(test_spec2_polar_epochs_and_kept_set)
{
    for (int dbl = 0; dbl < 2; dbl++) {
        polar_setup s = polar_of(3, 0, 16, dbl);
        polar *p = polar_create(&s, 4, 2, 3);
        for (uint64_t id = 0; id < 112; id++)
            polar_reward(p, id, polar_select(p, id, NULL, NULL));
        polar_stats st;
        polar_get_stats(p, &st);
        ck_assert_uint_eq(st.epochs, dbl ? 3 : 7);   /* 16+32+64 = 112 = 7 x 16 */
        int kept = 0;
        for (int32_t a = 0; a < 4; a++)
            kept += polar_keep(p, a);
        ck_assert_int_eq(kept, 2);
        polar_destroy(p);
    }
}
END_TEST

/* In a run: every request's adapter is picked once, the regret is
 * counted, runs are deterministic, and the selection is off by default. */
START_TEST(test_spec2_polar_in_a_run)
{
    const char *sets[] = {"instance.lora={\"adapters\": 6, \"max_loras\": 3, \"select\": "
                          "{\"policy\": \"polar\", \"dim\": 4, \"lambda\": 1, "
                          "\"epoch\": 32}}",
                          NULL};
    tu_run a, b, off;
    tu_run_sets(sets, &a);
    tu_run_sets(sets, &b);
    const char *plain[] = {"instance.lora={\"adapters\": 6, \"max_loras\": 3}", NULL};
    tu_run_sets(plain, &off);
    ck_assert_uint_eq(a.summary.completed, 200);
    ck_assert_uint_eq(a.summary.lora_polar_selections, 200);
    ck_assert_double_gt(a.summary.lora_polar_regret, 0);
    ck_assert_double_gt(a.summary.lora_polar_optimal_ratio, 0.3);
    ck_assert_double_le(a.summary.lora_polar_optimal_ratio, 1);
    ck_assert_uint_eq(a.record_hash, b.record_hash);
    ck_assert_double_eq(a.summary.lora_polar_regret, b.summary.lora_polar_regret);
    ck_assert_uint_eq(off.summary.lora_polar_selections, 0);
    ck_assert_int_le(a.summary.lora_max_adapters_per_batch, 3);
    tu_run_fini(&a);
    tu_run_fini(&b);
    tu_run_fini(&off);
    cJSON *root = tu_base_config();
    const char *bad[] = {"instance.lora={\"adapters\": 6, \"select\": {\"policy\": \"greedy\"}}",
                         NULL};
    tu_set(root, bad);
    run_config cfg;
    sim_err err = {{0}};
    ck_assert_int_ne(run_config_parse(root, &cfg, &err), 0);
    ck_assert_msg(strstr(err.msg, "instance.lora.select.policy: expected one of: polar"), "%s",
                  err.msg);
}
END_TEST

Suite *spec2_suite(void)
{
    Suite *s = suite_create("spec2");
    TCase *t = tcase_create("trace_acceptance");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_spec2_trace_accepted_lengths_consumed_in_order);
    tcase_add_test(t, test_spec2_trace_all_accepted_matches_rate_one);
    tcase_add_test(t, test_spec2_request_rate_equal_to_bernoulli_is_identical);
    tcase_add_test(t, test_spec2_request_rates_per_request);
    tcase_add_test(t, test_spec2_request_rate_falls_back_to_rate);
    tcase_add_test(t, test_spec2_native_columns_read);
    tcase_add_test(t, test_spec2_native_columns_errors);
    tcase_add_test(t, test_spec2_columns_survive_spreading);
    tcase_add_test(t, test_spec2_config_errors);
    tcase_add_test(t, test_spec2_drafter_cost_model_shared_prices_identical);
    suite_add_tcase(s, t);
    TCase *l = tcase_create("lora_links");
    tcase_set_timeout(l, 120);
    tcase_add_test(l, test_spec2_lora_load_alone_takes_latency_plus_bytes_over_bandwidth);
    tcase_add_test(l, test_spec2_lora_concurrent_loads_share_the_links);
    tcase_add_test(l, test_spec2_lora_links_off_by_default);
    tcase_add_test(l, test_spec2_lora_tier_metrics);
    tcase_add_test(l, test_spec2_lora_per_adapter_groups);
    tcase_add_test(l, test_spec2_polar_learns_the_best_adapter);
    tcase_add_test(l, test_spec2_polar_penalty_prefers_resident);
    tcase_add_test(l, test_spec2_polar_epochs_and_kept_set);
    tcase_add_test(l, test_spec2_polar_in_a_run);
    suite_add_tcase(s, l);
    return s;
}
