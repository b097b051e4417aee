/* Speculative decoding (serve/spec.c, policies/spec_*.c): acceptance draws,
 * token accounting, costs, KV reservation, determinism, configuration
 * errors. Runs use the shared base config (tests/testutil.c). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "policies/registry.h"
#include "serve/spec.h"
#include "tests/suites.h"
#include "tests/testutil.h"

#define N_METHODS 5
static const char *const methods[N_METHODS] = {"eagle", "mtp", "medusa", "ngram",
                                               "draft_model"};

/* The `instance.speculative` assignment for a method, K and acceptance. */
static void spec_set(char *buf, size_t size, const char *method, int k, const char *accept)
{
    snprintf(buf, size,
             "instance.speculative={\"method\": \"%s\", \"k\": %d, \"acceptance\": %s%s}",
             method, k, accept,
             strcmp(method, "draft_model") ? "" : ", \"draft_model\": \"Llama-3-8B\"");
}

static void run_spec(const char *method, int k, const char *accept, const char *extra,
                     tu_run *r)
{
    char set[512];
    spec_set(set, sizeof set, method, k, accept);
    const char *sets[] = {set, extra, NULL};
    tu_run_sets(sets, r);
}

/* Every request finished once, with exactly the output it asked for. */
static void check_conserved(const tu_run *r)
{
    ck_assert_uint_eq(r->summary.completed, 200);
    ck_assert_uint_eq(r->n_records, 200);
    ck_assert_uint_eq(r->output_mismatches, 0);
    ck_assert_uint_eq(r->workload_requests, 200);
    ck_assert_int_eq(r->kv_over_capacity, 0);
    ck_assert_int_eq(r->time_went_back, 0);
}

/* ---- a standalone runtime, for the draws ------------------------------------------ */

typedef struct fixture {
    run_config cfg;
    cost_model *cm;
    cost_setup cs;
    spec_setup s;
    spec *sp;
    cJSON *params;
} fixture;

static void fixture_init(fixture *f, spec_accept accept, double alpha, int32_t k)
{
    cJSON *root = tu_base_config();
    tu_parse(root, &f->cfg);
    pool_setup *p = &f->cfg.sys.pools[0];
    f->cs = (cost_setup){.model = &p->model, .gpu = &p->gpu, .par = p->par};
    sim_err err = {{0}};
    f->cm = cost_model_create("roofline", &f->cs, NULL, "$.cost", &err);
    ck_assert_msg(f->cm, "%s", err.msg);
    f->params = cJSON_CreateObject();
    f->s = (spec_setup){.method = SPEC_NGRAM, .k = k, .accept = accept, .alpha = alpha,
                        .match_rate = 1, .beta_a = 2, .beta_b = 2,
                        .policy = spec_policy_find("fixed", "$", &err),
                        .policy_params = f->params};
    for (int i = 0; i < k; i++)   /* P(a >= i+1): 0.9, 0.72, 0.504, ... */
        f->s.per_position[i] = (i ? f->s.per_position[i - 1] : 1) * (0.9 - 0.1 * i);
    f->sp = spec_create(&f->s, &f->cs, f->cm, NULL, 7, &err);
    ck_assert_msg(f->sp, "%s", err.msg);
}

static void fixture_fini(fixture *f)
{
    spec_destroy(f->sp);
    cost_model_destroy(f->cm);
    cJSON_Delete(f->params);
    run_config_fini(&f->cfg);
}

START_TEST(test_spec_draws_all_accepted_at_rate_one)
{
    fixture f;
    fixture_init(&f, SPEC_ACCEPT_BERNOULLI, 1.0, 5);
    for (uint64_t id = 0; id < 1000; id++)
        for (int32_t d = 0; d <= 5; d++)
            ck_assert_int_eq(spec_draw(f.sp, id, (int32_t)(id % 50), d), d);
    fixture_fini(&f);
}
END_TEST

START_TEST(test_spec_draws_none_accepted_at_rate_zero)
{
    fixture f;
    fixture_init(&f, SPEC_ACCEPT_BERNOULLI, 0.0, 5);
    for (uint64_t id = 0; id < 1000; id++)
        ck_assert_int_eq(spec_draw(f.sp, id, 3, 5), 0);
    fixture_fini(&f);
}
END_TEST

/* Tokens per step, 1 + accepted, average (1 - a^(K+1)) / (1 - a) within
 * four standard errors, for several rates and K. */
START_TEST(test_spec_accepted_length_matches_bernoulli_mean)
{
    const double rates[] = {0.3, 0.6, 0.8, 0.95};
    const int32_t ks[] = {1, 3, 5, 8};
    for (size_t ri = 0; ri < 4; ri++) {
        for (size_t ki = 0; ki < 4; ki++) {
            fixture f;
            fixture_init(&f, SPEC_ACCEPT_BERNOULLI, rates[ri], ks[ki]);
            const int n = 40000;
            double sum = 0, sq = 0;
            for (int i = 0; i < n; i++) {
                double t = 1 + spec_draw(f.sp, (uint64_t)i, 1 + i % 7, ks[ki]);
                sum += t, sq += t * t;
            }
            double mean = sum / n, var = sq / n - mean * mean;
            double want = spec_expected_tokens(rates[ri], ks[ki]);
            double closed = (1 - pow(rates[ri], ks[ki] + 1)) / (1 - rates[ri]);
            ck_assert_double_eq_tol(want, closed, 1e-12);
            ck_assert_msg(fabs(mean - want) <= 4 * sqrt(var / n) + 1e-9,
                          "alpha %g K %d: mean %g, expected %g", rates[ri], ks[ki], mean,
                          want);
            fixture_fini(&f);
        }
    }
}
END_TEST

/* A per-position table gives P(a >= i) as the table says. */
START_TEST(test_spec_per_position_table_rates)
{
    fixture f;
    fixture_init(&f, SPEC_ACCEPT_PER_POSITION, 0, 4);
    const int n = 40000;
    int reached[5] = {0};
    for (int i = 0; i < n; i++) {
        int a = spec_draw(f.sp, (uint64_t)i, 2, 4);
        for (int j = 1; j <= a; j++)
            reached[j]++;
    }
    for (int j = 1; j <= 4; j++) {
        double p = f.s.per_position[j - 1], got = (double)reached[j] / n;
        ck_assert_msg(fabs(got - p) <= 4 * sqrt(p * (1 - p) / n),
                      "position %d: rate %g, table %g", j, got, p);
    }
    fixture_fini(&f);
}
END_TEST

/* A draw is a function of (seed, request, step, drafts) only: asking in any
 * order, with any other draws in between, gives the same answer; and the
 * Beta model gives requests different rates. */
START_TEST(test_spec_draws_deterministic_and_batch_independent)
{
    fixture f;
    fixture_init(&f, SPEC_ACCEPT_BETA, 0, 6);
    int32_t first[200];
    for (int i = 0; i < 200; i++)
        first[i] = spec_draw(f.sp, (uint64_t)i, 10, 6);
    for (int i = 199; i >= 0; i--) {
        spec_draw(f.sp, (uint64_t)i * 7 + 1, 3, 2);   /* another request's draw */
        ck_assert_int_eq(spec_draw(f.sp, (uint64_t)i, 10, 6), first[i]);
    }
    /* Beta(2, 2) rates: some requests accept everything far more often. */
    int full = 0, none = 0;
    for (int i = 0; i < 200; i++)
        full += first[i] == 6, none += first[i] == 0;
    ck_assert_int_gt(full, 0);
    ck_assert_int_gt(none, 0);
    fixture_fini(&f);
}
END_TEST

/* ---- runs ----------------------------------------------------------------------------- */

/* Off (absent, or method "off") is today's simulator, bit for bit. */
START_TEST(test_spec_off_unchanged)
{
    tu_run a, b;
    tu_run_sets(NULL, &a);
    const char *sets[] = {"instance.speculative={\"method\": \"off\"}", NULL};
    tu_run_sets(sets, &b);
    ck_assert_uint_eq(a.record_hash, b.record_hash);
    ck_assert_uint_eq(a.iterations, b.iterations);
    ck_assert_double_eq(a.summary.energy_j, b.summary.energy_j);
    ck_assert_uint_eq(b.summary.spec_drafts, 0);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

/* Acceptance 0: every method emits one token per step (mean acceptance
 * length 1) and a request's tokens come no faster than without
 * speculation: the mean time per output token is at least the baseline's. */
START_TEST(test_spec_acceptance_zero_costs_at_least_baseline)
{
    tu_run base;
    const char *light[] = {"workload.arrival.rate_per_s=2", NULL};
    tu_run_sets(light, &base);
    for (int m = 0; m < N_METHODS; m++) {
        tu_run r;
        run_spec(methods[m], 3, "0", "workload.arrival.rate_per_s=2", &r);
        check_conserved(&r);
        ck_assert_uint_gt(r.summary.spec_drafts, 0);
        ck_assert_uint_eq(r.summary.spec_accepted_tokens, 0);
        ck_assert_double_eq(r.summary.spec_mean_acceptance_length, 1.0);
        ck_assert_uint_eq(r.summary.spec_wasted_tokens, r.summary.spec_draft_tokens);
        ck_assert_msg(r.summary.tpot_s.mean >= base.summary.tpot_s.mean,
                      "%s: TPOT %g ms below the baseline's %g ms", methods[m],
                      r.summary.tpot_s.mean * 1e3, base.summary.tpot_s.mean * 1e3);
        if (strcmp(methods[m], "ngram"))
            ck_assert_double_gt(r.summary.spec_draft_time_s, 0);
        tu_run_fini(&r);
    }
    tu_run_fini(&base);
}
END_TEST

/* Acceptance 1: a step that drafts d tokens emits d + 1; with every
 * request's output long enough, steps that draft the full K dominate and
 * the mean acceptance length approaches K + 1 (short tails clamp K). */
START_TEST(test_spec_acceptance_one_emits_k_plus_one)
{
    for (int m = 0; m < N_METHODS; m++) {
        tu_run r;
        run_spec(methods[m], 3, "1", NULL, &r);
        check_conserved(&r);
        const run_summary *s = &r.summary;
        ck_assert_uint_eq(s->spec_accepted_tokens, s->spec_draft_tokens);
        ck_assert_uint_eq(s->spec_wasted_tokens, 0);
        ck_assert_double_eq_tol(s->spec_acceptance_rate, 1.0, 1e-12);
        /* Each step emits its drafts + 1: mean length = 1 + drafts per step. */
        ck_assert_double_eq_tol(s->spec_mean_acceptance_length,
                                1 + (double)s->spec_draft_tokens / s->spec_drafts, 1e-9);
        ck_assert_double_gt(s->spec_mean_acceptance_length, 3.5);
        ck_assert_double_le(s->spec_mean_acceptance_length, 4.0);
        ck_assert_double_eq_tol(s->spec_position_rate[0], 1.0, 1e-12);
        tu_run_fini(&r);
    }
}
END_TEST

/* In a run, the mean acceptance length matches the Bernoulli model's
 * expectation for the steps that drafted the full K (most of them), and
 * vLLM's acceptance rate A = (a - a^(K+1)) / (K (1 - a)). */
START_TEST(test_spec_run_acceptance_matches_model)
{
    tu_run r;
    run_spec("eagle", 3, "0.8", NULL, &r);
    check_conserved(&r);
    const run_summary *s = &r.summary;
    double a = 0.8, k = 3;
    double want_rate = (a - pow(a, k + 1)) / (k * (1 - a));   /* 0.6507 */
    ck_assert_msg(fabs(s->spec_acceptance_rate - want_rate) < 0.03,
                  "acceptance rate %g, model %g", s->spec_acceptance_rate, want_rate);
    ck_assert_double_gt(s->spec_position_rate[0], s->spec_position_rate[1]);
    ck_assert_double_gt(s->spec_position_rate[1], s->spec_position_rate[2]);
    ck_assert_msg(fabs(s->spec_position_rate[0] - a) < 0.02, "position 1: %g",
                  s->spec_position_rate[0]);
    ck_assert_double_gt(s->spec_verify_share, 0);
    ck_assert_double_gt(s->spec_draft_share, 0);
    ck_assert_double_le(s->spec_draft_share + s->spec_verify_share, 1.0 + 1e-9);
    tu_run_fini(&r);
}
END_TEST

/* A tight KV cache under load with long lookahead: the lookahead is
 * reserved through the ledger (the run reserves some), the cache is never
 * over capacity, every request completes. */
START_TEST(test_spec_lookahead_within_kv_capacity)
{
    tu_run r;
    const char *sets[] = {
        "instance.speculative={\"method\": \"eagle\", \"k\": 8, \"acceptance\": 0.7}",
        "instance.gpu_memory_utilization=0.25", "instance.max_context_tokens=4096",
        "workload.arrival.rate_per_s=40", NULL};
    tu_run_sets(sets, &r);
    check_conserved(&r);
    ck_assert_uint_gt(r.summary.spec_lookahead_blocks, 0);
    ck_assert_double_le(r.summary.kv_peak_fraction, 1.0);
    ck_assert_uint_gt(r.summary.preemptions, 0);   /* the cache was tight */
    tu_run_fini(&r);
}
END_TEST

START_TEST(test_spec_runs_deterministic)
{
    tu_run a, b;
    run_spec("draft_model", 4, "{\"model\": \"beta\", \"beta_a\": 4, \"beta_b\": 2}", NULL,
             &a);
    run_spec("draft_model", 4, "{\"model\": \"beta\", \"beta_a\": 4, \"beta_b\": 2}", NULL,
             &b);
    ck_assert_uint_eq(a.record_hash, b.record_hash);
    ck_assert_uint_eq(a.summary.spec_accepted_tokens, b.summary.spec_accepted_tokens);
    ck_assert_double_eq(a.summary.energy_j, b.summary.energy_j);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

/* The verification of a drafting sequence costs more than its plain
 * decode, and speculation at a high acceptance rate shortens TPOT at a
 * light load. */
START_TEST(test_spec_speeds_up_light_load)
{
    tu_run base, r;
    const char *light[] = {"workload.arrival.rate_per_s=2", NULL};
    tu_run_sets(light, &base);
    run_spec("eagle", 3, "0.8", "workload.arrival.rate_per_s=2", &r);
    check_conserved(&r);
    ck_assert_double_lt(r.summary.tpot_s.mean, base.summary.tpot_s.mean / 1.5);
    tu_run_fini(&r);
    tu_run_fini(&base);
}
END_TEST

/* SmartSpec turns drafting off when nothing is accepted and keeps it on
 * when most drafts are. */
START_TEST(test_spec_smartspec_adapts_k)
{
    tu_run none, fixed, good;
    const char *p0[] = {"instance.speculative={\"method\": \"eagle\", \"k\": 4, "
                        "\"acceptance\": 0, \"policy\": {\"name\": \"smartspec\"}}",
                        NULL};
    tu_run_sets(p0, &none);
    run_spec("eagle", 4, "0", NULL, &fixed);
    check_conserved(&none);
    ck_assert_uint_lt(none.summary.spec_draft_tokens * 20, fixed.summary.spec_draft_tokens);
    ck_assert_double_le(none.summary.tpot_s.mean, fixed.summary.tpot_s.mean);
    const char *p9[] = {"instance.speculative={\"method\": \"eagle\", \"k\": 4, "
                        "\"acceptance\": 0.9, \"policy\": {\"name\": \"smartspec\"}}",
                        NULL};
    tu_run_sets(p9, &good);
    check_conserved(&good);
    ck_assert_double_gt(good.summary.spec_mean_acceptance_length, 2.5);
    tu_run_fini(&none);
    tu_run_fini(&fixed);
    tu_run_fini(&good);
}
END_TEST

/* A tree (SGLang's EAGLE: topk branches a step, verify_tokens nodes) at
 * the same acceptance verifies more tokens for the same accepted ones: more
 * wasted verification, no faster. */
START_TEST(test_spec_tree_verifies_more_for_the_same_acceptance)
{
    tu_run chain, tree;
    run_spec("eagle", 5, "0.8", "workload.arrival.rate_per_s=2", &chain);
    const char *sets[] = {"instance.speculative={\"method\": \"eagle\", \"k\": 5, "
                          "\"topk\": 4, \"verify_tokens\": 12, \"acceptance\": 0.8}",
                          "workload.arrival.rate_per_s=2", NULL};
    tu_run_sets(sets, &tree);
    check_conserved(&tree);
    ck_assert_uint_eq(tree.summary.spec_accepted_tokens, chain.summary.spec_accepted_tokens);
    ck_assert_uint_gt(tree.summary.spec_wasted_tokens, chain.summary.spec_wasted_tokens * 2);
    ck_assert_double_ge(tree.summary.tpot_s.mean, chain.summary.tpot_s.mean);
    tu_run_fini(&chain);
    tu_run_fini(&tree);
}
END_TEST

static void expect_error(const char *set, const char *needle)
{
    cJSON *root = tu_base_config();
    const char *sets[] = {set, NULL};
    tu_set(root, sets);
    run_config cfg;
    sim_err err = {{0}};
    int rc = run_config_parse(root, &cfg, &err);
    ck_assert_msg(rc != 0, "%s: accepted", set);
    ck_assert_msg(strstr(err.msg, needle), "message \"%s\" lacks \"%s\"", err.msg, needle);
}

START_TEST(test_spec_config_errors)
{
    expect_error("instance.speculative={\"method\": \"lookup\"}",
                 "$.instance.speculative.method: expected one of");
    expect_error("instance.speculative={\"method\": \"eagle\", \"k\": 0}",
                 "$.instance.speculative.k");
    expect_error("instance.speculative={\"method\": \"eagle\", \"depth\": 3}",
                 "$.instance.speculative");
    expect_error("instance.speculative={\"method\": \"draft_model\"}",
                 "$.instance.speculative.draft_model: method draft_model needs");
    expect_error("instance.speculative={\"method\": \"eagle\", \"draft_model\": \"Llama-3-8B\"}",
                 "only method draft_model");
    expect_error("instance.speculative={\"method\": \"draft_model\", "
                 "\"draft_model\": \"Mistral-7B\"}", "tokenizer");
    expect_error("instance.speculative={\"method\": \"eagle\", \"acceptance\": 1.5}",
                 "$.instance.speculative.acceptance: expected a rate in [0, 1]");
    expect_error("instance.speculative={\"method\": \"eagle\", \"k\": 3, \"acceptance\": "
                 "{\"model\": \"per_position\", \"per_position\": [0.9, 0.8]}}",
                 "per_position: expected an array of at least k");
    expect_error("instance.speculative={\"method\": \"eagle\", \"k\": 2, \"acceptance\": "
                 "{\"model\": \"per_position\", \"per_position\": [0.5, 0.8]}}",
                 "per_position[1]");
    expect_error("instance.speculative={\"method\": \"eagle\", \"k\": 4, \"verify_tokens\": 3}",
                 "verify_tokens: expected 0 (a chain of k + 1) or at least k + 1");
    expect_error("instance.speculative={\"method\": \"eagle\", \"k\": 4, \"topk\": 2, "
                 "\"verify_tokens\": 10}", "$.instance.speculative.verify_tokens");
    expect_error("instance.speculative={\"method\": \"mtp\", \"k\": 10}",
                 "the default table has 8 positions");
    expect_error("instance.speculative={\"method\": \"eagle\", \"policy\": "
                 "{\"name\": \"greedy\"}}", "$.instance.speculative.policy.name");
    expect_error("instance.speculative={\"method\": \"eagle\", \"acceptance\": "
                 "{\"model\": \"zipf\"}}", "acceptance.model: expected one of");
}
END_TEST

/* DeepSeek-V3's MTP drafter is one MoE layer sharing the target's
 * embedding and LM head: 11.5B unique parameters (README_WEIGHTS.md of
 * deepseek-ai/DeepSeek-V3, quoted), within 3%. */
START_TEST(test_spec_mtp_drafter_size_deepseek_v3)
{
    cJSON *root = tu_base_config();
    const char *sets[] = {"model=DeepSeek-V3", "gpu=H200-141GB", "cluster.tp=8",
                          "instance.speculative={\"method\": \"mtp\", \"k\": 1}", NULL};
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    const pool_setup *p = &cfg.sys.pools[0];
    double params = p->spec.draft_weight_bytes_per_gpu * 8 / p->model.bytes_per_param;
    ck_assert_msg(fabs(params / 11.5e9 - 1) < 0.03, "MTP drafter: %.3gB parameters",
                  params / 1e9);
    run_config_fini(&cfg);
}
END_TEST

/* A policy checks its params when the cluster creates it, as every
 * plug-in does. */
START_TEST(test_spec_policy_params_checked)
{
    cJSON *root = tu_base_config();
    const char *sets[] = {"instance.speculative={\"method\": \"eagle\", \"policy\": "
                          "{\"name\": \"smartspec\", \"params\": {\"prior\": 1}}}",
                          NULL};
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    sim_err err = {{0}};
    cluster_hooks hooks = {0};
    cluster *c = cluster_create(&cfg.sys, &hooks, &err);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err.msg, "$.instance.speculative.policy.params"), "%s", err.msg);
    run_config_fini(&cfg);
}
END_TEST

/* The drafter's weights and KV come out of the KV budget. */
START_TEST(test_spec_drafter_takes_kv_budget)
{
    cJSON *root = tu_base_config();
    run_config plain, eagle, draft;
    tu_parse(root, &plain);
    root = tu_base_config();
    const char *e[] = {"instance.speculative={\"method\": \"eagle\"}", NULL};
    tu_set(root, e);
    tu_parse(root, &eagle);
    root = tu_base_config();
    const char *d[] = {"instance.speculative={\"method\": \"draft_model\", \"draft_model\": "
                       "\"Llama-3-8B\"}", NULL};
    tu_set(root, d);
    tu_parse(root, &draft);
    int64_t b0 = plain.sys.pools[0].batch.kv_total_blocks;
    int64_t b1 = eagle.sys.pools[0].batch.kv_total_blocks;
    int64_t b2 = draft.sys.pools[0].batch.kv_total_blocks;
    ck_assert_int_lt(b1, b0);
    ck_assert_int_lt(b2, b1);
    /* One EAGLE layer of 32 adds 1/32 to every token's KV, and its weights. */
    ck_assert_int_lt(b1, (int64_t)(b0 / (1 + 1.0 / 32)) + 1);
    run_config_fini(&plain);
    run_config_fini(&eagle);
    run_config_fini(&draft);
}
END_TEST

Suite *spec_suite(void)
{
    Suite *s = suite_create("spec");
    TCase *draws = tcase_create("draws");
    tcase_add_test(draws, test_spec_draws_all_accepted_at_rate_one);
    tcase_add_test(draws, test_spec_draws_none_accepted_at_rate_zero);
    tcase_add_test(draws, test_spec_accepted_length_matches_bernoulli_mean);
    tcase_add_test(draws, test_spec_per_position_table_rates);
    tcase_add_test(draws, test_spec_draws_deterministic_and_batch_independent);
    suite_add_tcase(s, draws);
    TCase *runs = tcase_create("runs");
    tcase_set_timeout(runs, 120);
    tcase_add_test(runs, test_spec_off_unchanged);
    tcase_add_test(runs, test_spec_acceptance_zero_costs_at_least_baseline);
    tcase_add_test(runs, test_spec_acceptance_one_emits_k_plus_one);
    tcase_add_test(runs, test_spec_run_acceptance_matches_model);
    tcase_add_test(runs, test_spec_lookahead_within_kv_capacity);
    tcase_add_test(runs, test_spec_runs_deterministic);
    tcase_add_test(runs, test_spec_speeds_up_light_load);
    tcase_add_test(runs, test_spec_smartspec_adapts_k);
    tcase_add_test(runs, test_spec_config_errors);
    tcase_add_test(runs, test_spec_drafter_takes_kv_budget);
    tcase_add_test(runs, test_spec_policy_params_checked);
    tcase_add_test(runs, test_spec_mtp_drafter_size_deepseek_v3);
    tcase_add_test(runs, test_spec_tree_verifies_more_for_the_same_acceptance);
    suite_add_tcase(s, runs);
    return s;
}
