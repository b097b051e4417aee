/* Tests for parallel layouts and expert parallelism: layout checks
 * (models/model.c, tool/config.c), pipeline micro-batches (models/cost.c),
 * expert routing and the busiest GPU's load (models/moe.c, models/ops.c),
 * the placement policies (policies/place_*.c) and the instance's EP state
 * (serve/ep.c), end to end through a run. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/cost.h"
#include "models/moe.h"
#include "policies/registry.h"
#include "serve/ep.h"
#include "sim/jsoncfg.h"
#include "tests/suites.h"
#include "tests/testutil.h"

#define ck_assert_has(haystack, needle)                                         \
    ck_assert_msg(strstr((haystack), (needle)) != NULL,                         \
                  "expected '%s' in '%s'", (needle), (haystack))

static void load(const char *model, const char *gpu, llm_model *m, gpu_spec *g)
{
    sim_err err = {{0}};
    ck_assert_msg(llm_model_load(models_dir(), model, m, &err) == 0, "%s", err.msg);
    ck_assert_msg(gpu_spec_load(models_dir(), gpu, g, &err) == 0, "%s", err.msg);
}

static cost_model *roofline(const llm_model *m, const gpu_spec *g, par_layout par)
{
    sim_err err = {{0}};
    cost_setup setup = {.model = m, .gpu = g, .par = par};
    cost_model *cm = cost_model_create("roofline", &setup, NULL, "$.cost", &err);
    ck_assert_msg(cm != NULL, "%s", err.msg);
    return cm;
}

/* ---- layouts ---------------------------------------------------------------------- */

START_TEST(test_moe_layout_checks_degrees)
{
    llm_model q, l;
    gpu_spec g;
    load("Qwen3-30B-A3B", "H100-SXM-80GB", &q, &g);
    load("Llama-3-8B", "H100-SXM-80GB", &l, &g);
    sim_err err = {{0}};
    par_layout ok = {.tp = 1, .pp = 1, .ep = 8, .dp = 8};
    ck_assert_msg(llm_check_layout(&q, &ok, &err) == 0, "%s", err.msg);
    par_layout ok2 = {.tp = 2, .pp = 2, .ep = 8, .dp = 4, .micro_batches = 4,
                      .redundant_experts = 8};
    ck_assert_msg(llm_check_layout(&q, &ok2, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(par_gpus(&ok2), 16);

    par_layout wrong = {.tp = 2, .pp = 1, .ep = 8, .dp = 2};   /* 2 * 2 != 8 */
    ck_assert_int_lt(llm_check_layout(&q, &wrong, &err), 0);
    ck_assert_has(err.msg, "expected tp * dp = 2 * 2 = 4");
    par_layout dense_ep = {.tp = 1, .pp = 1, .ep = 2, .dp = 2};
    ck_assert_int_lt(llm_check_layout(&l, &dense_ep, &err), 0);
    ck_assert_has(err.msg, "has no experts");
    par_layout dp_only = {.tp = 1, .pp = 1, .ep = 1, .dp = 2};
    ck_assert_int_lt(llm_check_layout(&q, &dp_only, &err), 0);
    ck_assert_has(err.msg, "data-parallel attention");
    par_layout slots = {.tp = 1, .pp = 1, .ep = 8, .dp = 8, .redundant_experts = 3};
    ck_assert_int_lt(llm_check_layout(&q, &slots, &err), 0);
    ck_assert_has(err.msg, "does not divide");
    par_layout deep = {.tp = 1, .pp = 49, .ep = 1, .dp = 1};
    ck_assert_int_lt(llm_check_layout(&q, &deep, &err), 0);
    ck_assert_has(err.msg, "pp=49");
    par_layout mb = {.tp = 1, .pp = 1, .ep = 1, .dp = 1, .micro_batches = 4};
    ck_assert_int_lt(llm_check_layout(&l, &mb, &err), 0);
    ck_assert_has(err.msg, "micro_batches");
    par_layout red = {.tp = 1, .pp = 1, .ep = 1, .dp = 1, .redundant_experts = 8};
    ck_assert_int_lt(llm_check_layout(&q, &red, &err), 0);
    ck_assert_has(err.msg, "redundant_experts");
}
END_TEST

/* A pool of Qwen3-30B-A3B on 8 H100s with `parallel` and `moe` objects
 * (JSON text) and the model `model`. */
static int parse_pool(const char *model, const char *parallel, const char *moe,
                      run_config *cfg, sim_err *err)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"seed\": 7, \"model\": \"Qwen3-30B-A3B\", \"gpu\": \"H100-SXM-80GB\","
             " \"cluster\": {\"pools\": [{\"name\": \"ep\", \"instances\": 1, \"model\": \"%s\","
             "   \"parallel\": %s, \"moe\": %s}]},"
             " \"cost\": {\"model\": \"roofline\"},"
             " \"workload\": {\"source\": \"synthetic\", \"requests\": 300,"
             "   \"arrival\": {\"process\": \"poisson\", \"rate_per_s\": 30},"
             "   \"input_tokens\": {\"dist\": \"lognormal\", \"mean\": 600, \"sigma\": 0.5},"
             "   \"output_tokens\": {\"dist\": \"lognormal\", \"mean\": 100, \"sigma\": 0.5}}}",
             model, parallel, moe);
    cJSON *root = cJSON_Parse(text);
    ck_assert_ptr_nonnull(root);
    return run_config_parse(root, cfg, err);
}

#define EP8 "{\"tp\": 1, \"dp\": 8, \"ep\": 8}"
#define EP8R "{\"tp\": 1, \"dp\": 8, \"ep\": 8, \"redundant_experts\": 16}"

START_TEST(test_moe_config_rejects_bad_layouts_with_path)
{
    run_config cfg;
    sim_err err = {{0}};
    const char *Q = "Qwen3-30B-A3B";
    ck_assert_int_lt(parse_pool(Q, "{\"tp\": 1, \"dp\": 8, \"ep\": 4}", "{}", &cfg, &err), 0);
    ck_assert_has(err.msg, "$.cluster.pools[0].parallel");
    ck_assert_has(err.msg, "ep=4: expected tp * dp");
    /* DeepSeek-V3 (671e9 parameters) does not fit on 8 H100s */
    ck_assert_int_lt(parse_pool("DeepSeek-V3", EP8, "{}", &cfg, &err), 0);
    ck_assert_has(err.msg, "$.cluster.pools[0].instance");
    ck_assert_has(err.msg, "does not fit");
    ck_assert_int_lt(parse_pool(Q, EP8, "{\"routing\": {\"zipf\": 1}}", &cfg, &err), 0);
    ck_assert_has(err.msg, "$.cluster.pools[0].moe.routing");
    ck_assert_int_lt(parse_pool(Q, EP8, "{\"placement\": {\"name\": \"nope\"}}", &cfg, &err),
                     0);
    ck_assert_has(err.msg, "$.cluster.pools[0].moe.placement.name");
    ck_assert_has(err.msg, "eplb");
    ck_assert_int_lt(parse_pool("Llama-3-8B", "{}", "{\"routing\": {\"skew\": 1}}", &cfg, &err),
                     0);
    ck_assert_has(err.msg, "has no experts");
    /* a section of defaults only (what the effective config carries) is no request */
    ck_assert_msg(parse_pool("Llama-3-8B", "{}", "{\"routing\": {}}", &cfg, &err) == 0, "%s",
                  err.msg);
    run_config_fini(&cfg);
    /* across nodes: the all-to-all takes the NIC */
    ck_assert_msg(parse_pool(Q, "{\"dp\": 16, \"ep\": 16}", "{}", &cfg, &err) == 0, "%s",
                  err.msg);
    ck_assert(fabs(cfg.pools[0].par.ep_link_bytes_per_s -
                   cfg.sys.topology.nic_bytes_per_s * 15 / 8) < 1e-3);
    ck_assert_int_eq(cfg.pools[0].moe.nodes, 2);
    run_config_fini(&cfg);
}
END_TEST

START_TEST(test_moe_layout_shares_weights_and_kv)
{
    llm_model q;
    gpu_spec g;
    load("Qwen3-30B-A3B", "H100-SXM-80GB", &q, &g);
    par_layout one = PAR_TP(1);
    par_layout ep8 = {.tp = 1, .pp = 1, .ep = 8, .dp = 8};
    par_layout pp4 = {.tp = 1, .pp = 4, .ep = 1, .dp = 1};
    double w1 = llm_weight_bytes_per_gpu(&q, &one), w8 = llm_weight_bytes_per_gpu(&q, &ep8);
    double expert = 3.0 * q.hidden * q.expert_ffn * 2 * q.layers;   /* one expert, every layer */
    ck_assert(fabs((w1 - w8) - expert * (q.experts - q.experts / 8)) < 1e-6 * w1);
    ck_assert(llm_weight_bytes_per_gpu(&q, &pp4) < 0.3 * w1);
    ck_assert(llm_kv_bytes_per_token_per_gpu(&q, &pp4) ==
              llm_kv_bytes_per_token_per_gpu(&q, &one) / 4);
    ck_assert(llm_kv_bytes_per_token_per_gpu(&q, &ep8) ==
              llm_kv_bytes_per_token_per_gpu(&q, &one) / 8);
}
END_TEST

/* ---- pipeline ------------------------------------------------------------------------ */

/* One stage-to-stage send of `tokens` tokens, as cost.c prices it. */
static double send_ns(const llm_model *m, const gpu_spec *g, double tokens)
{
    op_desc op = {.kind = OP_PP_SEND, .repeat = 1, .m = (int64_t)tokens, .n = m->hidden,
                  .ranks = 2, .bytes = tokens * m->hidden * 2.0};
    return roofline_op_ns(g, &op);
}

START_TEST(test_moe_pp_one_micro_batch_shows_the_bubble)
{
    llm_model m;
    gpu_spec g;
    load("Llama-3-8B", "H100-SXM-80GB", &m, &g);
    cost_model *flat = roofline(&m, &g, PAR_TP(1));
    cost_model *pp = roofline(&m, &g, (par_layout){.tp = 1, .pp = 4, .ep = 1, .dp = 1,
                                                   .micro_batches = 1});
    batch_shape b = {.n_decode = 64, .decode_ctx_sum = 64 * 500, .n_sampled = 64};
    cost_result r1, r4;
    cost_iteration(flat, &b, &r1);
    cost_iteration(pp, &b, &r4);
    /* S stages of a quarter of the layers each, one after the other: the
     * whole model's time plus the sends, the GPUs busy 1 / S of the time */
    double stage = (double)r1.latency_ns / 4 + send_ns(&m, &g, 64);
    ck_assert_msg(fabs((double)r4.latency_ns - 4 * stage) <= 1, "%lld vs %.1f",
                  (long long)r4.latency_ns, 4 * stage);
    double busy = (double)r1.latency_ns / ((double)r4.latency_ns * 4);
    ck_assert(busy > 0.24 && busy <= 0.25);   /* bubble (S - 1) / S = 0.75 */
    double sum = 0;
    for (int k = 0; k < OP_KIND_COUNT; k++)
        sum += r4.term_ns[k];
    ck_assert(fabs(sum - (double)r4.latency_ns) <= 1);
    ck_assert(r4.term_ns[OP_PP_SEND] > 0);
    /* four GPUs, between idle and the board limit; idle power counts them all */
    double secs = (double)r4.latency_ns * 1e-9;
    ck_assert(r4.energy_j >= g.idle_w * 4 * secs * 0.999);
    ck_assert(r4.energy_j <= g.max_w * 4 * secs);
    ck_assert(fabs(cost_idle_power_w(pp) - 4 * g.idle_w) < 1e-9);
    cost_model_destroy(flat);
    cost_model_destroy(pp);
}
END_TEST

START_TEST(test_moe_pp_micro_batches_fill_the_pipeline)
{
    llm_model m;
    gpu_spec g;
    load("Llama-3-8B", "H100-SXM-80GB", &m, &g);
    const int S = 4, M = 16;
    cost_model *flat = roofline(&m, &g, PAR_TP(1));
    cost_model *pp = roofline(&m, &g, (par_layout){.tp = 1, .pp = S, .ep = 1, .dp = 1,
                                                   .micro_batches = M});
    /* 64 equal prefill chunks: M equal micro-batches of 4 */
    batch_seq chunks[64];
    for (int i = 0; i < 64; i++)
        chunks[i] = (batch_seq){.q_tokens = 512, .ctx_tokens = 0};
    batch_shape b = {.prefill = chunks, .n_prefill = 64, .n_sampled = 64};
    batch_seq four[4];
    memcpy(four, chunks, sizeof four);
    batch_shape mb = {.prefill = four, .n_prefill = 4, .n_sampled = 4};
    cost_result whole, one_mb, piped;
    cost_iteration(flat, &b, &whole);
    cost_iteration(flat, &mb, &one_mb);
    cost_iteration(pp, &b, &piped);
    /* a full pipeline: every stage busy with all M micro-batches, no bubble */
    double s = (double)one_mb.latency_ns / S + send_ns(&m, &g, 4 * 512);
    ck_assert_msg(fabs((double)piped.latency_ns - M * s) <= 2, "%lld vs %.1f",
                  (long long)piped.latency_ns, M * s);
    /* compute-bound prefill: S stages give nearly S times the throughput */
    double speedup = (double)whole.latency_ns / (double)piped.latency_ns;
    ck_assert_msg(speedup > 3.3 && speedup < S * 1.02, "speedup %.3f", speedup);
    /* fewer micro-batches than stages: a round is S stage times */
    cost_model *two = roofline(&m, &g, (par_layout){.tp = 1, .pp = S, .ep = 1, .dp = 1,
                                                    .micro_batches = 2});
    cost_result r2, half;
    batch_shape hb = {.prefill = chunks, .n_prefill = 32, .n_sampled = 32};
    cost_iteration(two, &b, &r2);
    cost_iteration(flat, &hb, &half);
    double s2 = (double)half.latency_ns / S + send_ns(&m, &g, 32 * 512);
    ck_assert_msg(fabs((double)r2.latency_ns - S * s2) <= 2, "%lld vs %.1f",
                  (long long)r2.latency_ns, S * s2);
    cost_model_destroy(two);
    cost_model_destroy(flat);
    cost_model_destroy(pp);
}
END_TEST

/* ---- expert parallelism ------------------------------------------------------------ */

START_TEST(test_moe_slowest_rank_sets_the_layer_time)
{
    llm_model q;
    gpu_spec g;
    load("Qwen3-30B-A3B", "H100-SXM-80GB", &q, &g);
    par_layout par = {.tp = 1, .pp = 1, .ep = 8, .dp = 8};
    const int32_t E = q.experts, slots = E;
    int32_t phy2log[LLM_MAX_EXPERTS], rep[LLM_MAX_EXPERTS], cnt[LLM_MAX_EXPERTS];
    int32_t even[LLM_MAX_EXPERTS] = {0}, hot[LLM_MAX_EXPERTS] = {0};
    moe_place_contiguous(E, slots, phy2log);
    moe_placement_index(phy2log, slots, E, rep, cnt);
    const int T = 1024;   /* 8192 pairs */
    for (int e = 0; e < E; e++)
        even[e] = 64;
    /* the same pairs, GPU 0's experts (0..15) taking four times their share */
    for (int e = 0; e < E; e++)
        hot[e] = e < 16 ? 256 : (8192 - 16 * 256) / 112;
    moe_rank_load rank[8];
    moe_group_load lev, lhot;
    moe_group_load_of(&q, &par, phy2log, rep, cnt, slots, even, T, rank, &lev);
    ck_assert(lev.max_pairs == 1024 && lev.max_distinct == 16);
    moe_group_load_of(&q, &par, phy2log, rep, cnt, slots, hot, T, rank, &lhot);
    ck_assert(lhot.max_pairs == 16 * 256);
    ck_assert(rank[0].pairs == 4096 && rank[1].pairs < 1024);
    /* all-to-all: the busiest GPU receives its pairs' remote share, H wide,
     * 2 bytes each (bf16), and sends T / ep tokens' k copies */
    double remote = 7.0 / 8;
    ck_assert(fabs(lev.dispatch_bytes - 1024 * remote * q.hidden * 2.0) < 1e-6);
    ck_assert(fabs(lhot.dispatch_bytes - 4096 * remote * q.hidden * 2.0) < 1e-6);
    ck_assert(lhot.combine_bytes == lhot.dispatch_bytes);

    cost_model *cm = roofline(&q, &g, par);
    moe_iter a = {.n_groups = 1}, b = {.n_groups = 1};
    a.g[0] = lev, b.g[0] = lhot;
    a.g[0].layers = b.g[0].layers = q.layers;
    batch_shape be = {.n_decode = T, .decode_ctx_sum = T * 100, .n_sampled = T, .moe = &a};
    batch_shape bh = be;
    bh.moe = &b;
    cost_result re, rh;
    cost_iteration(cm, &be, &re);
    cost_iteration(cm, &bh, &rh);
    ck_assert_msg(rh.term_ns[OP_MOE_EXPERTS] > 1.2 * re.term_ns[OP_MOE_EXPERTS], "%g %g",
                  rh.term_ns[OP_MOE_EXPERTS], re.term_ns[OP_MOE_EXPERTS]);
    ck_assert(rh.term_ns[OP_A2A_DISPATCH] > 1.2 * re.term_ns[OP_A2A_DISPATCH]);
    ck_assert(rh.latency_ns > re.latency_ns);
    ck_assert_int_eq(re.term_source[OP_A2A_COMBINE], COST_SRC_ROOFLINE);
    /* the op list: the experts entry carries the busiest GPU's pairs */
    op_list ops;
    ops_decompose(&q, &par, &bh, &ops);
    bool found = false;
    for (int i = 0; i < ops.n; i++)
        if (ops.op[i].kind == OP_MOE_EXPERTS) {
            ck_assert_int_eq(ops.op[i].m, 4096);
            ck_assert(ops.op[i].groups == 16);
            found = true;
        }
    ck_assert(found);
    cost_model_destroy(cm);
}
END_TEST

/* max over mean pairs per GPU of one sampled iteration. */
static double imbalance_of(const llm_model *m, const par_layout *par, const int32_t *phy2log,
                           int32_t slots, const int32_t *counts, double tokens)
{
    moe_rank_load rank[64];
    int32_t rep[LLM_MAX_EXPERTS + 64], cnt[LLM_MAX_EXPERTS];
    moe_group_load gl;
    moe_placement_index(phy2log, slots, m->experts, rep, cnt);
    moe_group_load_of(m, par, phy2log, rep, cnt, slots, counts, tokens, rank, &gl);
    double sum = 0;
    for (int r = 0; r < par->ep; r++)
        sum += rank[r].pairs;
    return gl.max_pairs * par->ep / sum;
}

START_TEST(test_moe_uniform_routing_is_balanced)
{
    llm_model q;
    gpu_spec g;
    load("Qwen3-30B-A3B", "H100-SXM-80GB", &q, &g);
    par_layout par = {.tp = 1, .pp = 1, .ep = 8, .dp = 8};
    moe_routing_cfg cfg = {.skew = 0, .spread = 0.2, .groups = 4};
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 11);
    moe_routing r;
    sim_err err = {{0}};
    ck_assert_msg(moe_routing_init(&r, &q, &cfg, rng, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(r.groups, 4);
    ck_assert_int_eq(r.layers[0] + r.layers[1] + r.layers[2] + r.layers[3], q.layers);
    int32_t counts[4 * LLM_MAX_EXPERTS], phy2log[LLM_MAX_EXPERTS];
    moe_place_contiguous(q.experts, q.experts, phy2log);
    const int64_t T = 200000;
    moe_routing_sample(&r, rng, T, counts);
    for (int gi = 0; gi < 4; gi++) {
        double pairs = 0;
        for (int e = 0; e < q.experts; e++)
            pairs += counts[gi * q.experts + e];
        /* T k pairs within sampling error (sd ~ sqrt(T k) ~ 1265) */
        ck_assert(fabs(pairs - (double)T * q.experts_per_token) < 6000);
        double imb = imbalance_of(&q, &par, phy2log, q.experts, counts + gi * q.experts, T);
        ck_assert_msg(imb >= 1 && imb < 1.01, "imbalance %.4f", imb);
        /* the per-GPU draws the simulator makes: the same within sampling error */
        int32_t rep[LLM_MAX_EXPERTS], cnt[LLM_MAX_EXPERTS], scratch[LLM_MAX_EXPERTS];
        moe_rank_load rank[8];
        moe_group_load gl;
        moe_placement_index(phy2log, q.experts, q.experts, rep, cnt);
        moe_sample_group_load(&r, gi, rng, T, &q, &par, phy2log, rep, cnt, q.experts, false,
                              scratch, rank, &gl);
        double sum = 0;
        for (int k = 0; k < 8; k++)
            sum += rank[k].pairs;
        ck_assert(fabs(sum - (double)T * q.experts_per_token) < 6000);
        ck_assert_msg(gl.max_pairs * 8 / sum < 1.01, "%.4f", gl.max_pairs * 8 / sum);
        ck_assert(gl.max_distinct == 16);
    }
    gsl_rng_free(rng);
}
END_TEST

START_TEST(test_moe_janus_activates_fewer_experts_per_gpu)
{
    llm_model q;
    gpu_spec g;
    load("Qwen3-30B-A3B", "H100-SXM-80GB", &q, &g);
    par_layout par = {.tp = 1, .pp = 1, .ep = 8, .dp = 8, .redundant_experts = 16};
    const int32_t E = q.experts, slots = E + 16;
    moe_routing_cfg cfg = {.skew = 0, .groups = 1};
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(rng, 9);
    moe_routing r;
    sim_err err = {{0}};
    ck_assert(moe_routing_init(&r, &q, &cfg, rng, &err) == 0);
    int32_t phy2log[LLM_MAX_EXPERTS + 16], rep[LLM_MAX_EXPERTS + 16], cnt[LLM_MAX_EXPERTS];
    int32_t scratch[LLM_MAX_EXPERTS];
    moe_place_contiguous(E, slots, phy2log);   /* experts 0..15 twice */
    moe_placement_index(phy2log, slots, E, rep, cnt);
    moe_rank_load rank[8];
    moe_group_load gl;
    /* small decode batches: every expert drawn exactly, few tokens each */
    double sum[2] = {0, 0}, pairs[2] = {0, 0};
    for (int mode = 0; mode < 2; mode++)
        for (int it = 0; it < 4000; it++) {
            moe_sample_group_load(&r, 0, rng, 16, &q, &par, phy2log, rep, cnt, slots, mode == 1,
                                  scratch, rank, &gl);
            sum[mode] += gl.max_distinct;
            for (int k = 0; k < 8; k++)
                pairs[mode] += rank[k].pairs;
        }
    /* one copy per active expert: the busiest GPU activates fewer experts */
    ck_assert_msg(sum[1] < 0.995 * sum[0], "janus %.0f, split %.0f", sum[1], sum[0]);
    /* the same tokens are routed either way (within sampling error) */
    ck_assert(fabs(pairs[1] / pairs[0] - 1) < 0.02);
    gsl_rng_free(rng);
}
END_TEST

START_TEST(test_moe_eplb_reproduces_readme_example)
{
    /* github:deepseek-ai/EPLB README: 2 layers x 12 experts, 16 replicas,
     * 4 expert groups, 2 nodes x 4 GPUs; its printed phy2log */
    const double weight[2][12] = {{90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86},
                                  {20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27}};
    const int32_t want[2][16] = {{5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1},
                                 {7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1}};
    sim_err err = {{0}};
    const place_policy_ops *ops = place_policy_find("eplb", "$.x", &err);
    ck_assert_ptr_nonnull(ops);
    place_setup setup = {.layers = 2, .experts = 12, .ranks = 8, .nodes = 2, .slots = 16};
    cJSON *params = cJSON_Parse("{\"expert_groups\": 4}");
    void *state;
    place_schedule sched;
    ck_assert_msg(ops->init(&setup, params, "$.p", &state, &sched, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(sched.period_iterations, 3000);
    ck_assert_int_eq(sched.window_iterations, 1000);
    int32_t now[32], out[32];
    for (int g = 0; g < 2; g++)
        moe_place_contiguous(12, 16, now + 16 * g);
    memcpy(out, now, sizeof out);
    place_view v = {.setup = &setup, .load = &weight[0][0], .phy2log = now};
    ops->place(state, &v, out);
    for (int g = 0; g < 2; g++)
        for (int s = 0; s < 16; s++)
            ck_assert_msg(out[16 * g + s] == want[g][s], "layer %d slot %d: %d, want %d", g,
                          s, out[16 * g + s], want[g][s]);
    ops->destroy(state);
    cJSON_Delete(params);
}
END_TEST

START_TEST(test_moe_eplb_lowers_imbalance_under_skew)
{
    llm_model q;
    gpu_spec g;
    load("Qwen3-30B-A3B", "H100-SXM-80GB", &q, &g);
    par_layout par = {.tp = 1, .pp = 1, .ep = 8, .dp = 8, .redundant_experts = 16};
    const int32_t E = q.experts, slots = E + 16;
    moe_routing_cfg cfg = {.skew = 1.2, .spread = 0, .groups = 1};
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 5);
    moe_routing r;
    sim_err err = {{0}};
    ck_assert(moe_routing_init(&r, &q, &cfg, rng, &err) == 0);
    int32_t window[LLM_MAX_EXPERTS], counts[LLM_MAX_EXPERTS];
    moe_routing_sample(&r, rng, 50000, window);   /* the observed window */
    moe_routing_sample(&r, rng, 50000, counts);   /* a later iteration */
    double load[LLM_MAX_EXPERTS];
    for (int e = 0; e < E; e++)
        load[e] = window[e];

    place_setup setup = {.layers = 1, .experts = E, .ranks = 8, .nodes = 1, .slots = slots};
    int32_t base[LLM_MAX_EXPERTS + 16], placed[LLM_MAX_EXPERTS + 16];
    const place_policy_ops *st = place_policy_find("static", "$", &err);
    const place_policy_ops *eplb = place_policy_find("eplb", "$", &err);
    void *s1, *s2;
    place_schedule sched;
    ck_assert(st->init(&setup, NULL, "$", &s1, &sched, &err) == 0);
    ck_assert_int_eq(sched.period_iterations, 0);
    ck_assert(eplb->init(&setup, NULL, "$", &s2, &sched, &err) == 0);
    place_view v = {.setup = &setup, .load = load, .phy2log = base};
    st->place(s1, &v, base);
    memcpy(placed, base, sizeof base);
    eplb->place(s2, &v, placed);
    double before = imbalance_of(&q, &par, base, slots, counts, 50000);
    double after = imbalance_of(&q, &par, placed, slots, counts, 50000);
    ck_assert_msg(before > 1.3 && after < 1.1 && after < before, "%.3f -> %.3f", before,
                  after);
    /* every expert placed */
    int32_t seen[LLM_MAX_EXPERTS] = {0};
    for (int s = 0; s < slots; s++)
        seen[placed[s]]++;
    for (int e = 0; e < E; e++)
        ck_assert_int_ge(seen[e], 1);
    st->destroy(s1);
    eplb->destroy(s2);
    gsl_rng_free(rng);
}
END_TEST

START_TEST(test_moe_routing_trace_file)
{
    llm_model q;
    gpu_spec g;
    load("Mixtral-8x7B", "H100-SXM-80GB", &q, &g);
    char *dir = tu_tempdir();
    char path[512];
    snprintf(path, sizeof path, "%s/routing.csv", dir);
    FILE *f = fopen(path, "w");
    fputs("layer,expert,tokens\n0,0,600\n0,1,200\n0,2,200\n31,7,10\n", f);
    fclose(f);
    moe_routing_cfg cfg = {.groups = 2, .spread = 0.2};
    sim_err err = {{0}};
    ck_assert_msg(moe_trace_load(path, &q, &cfg, &err) == 0, "%s", err.msg);
    ck_assert(cfg.has_trace && cfg.trace[0][0] == 600 && cfg.trace[1][7] == 10);
    moe_routing r;
    ck_assert(moe_routing_init(&r, &q, &cfg, NULL, &err) == 0);
    /* top-2 of 3 experts: 600 / 1000 * 2 = 1.2 capped at 1, the rest shared */
    ck_assert(r.q[0][0] == 1 && fabs(r.q[0][1] - 0.5) < 1e-12 && r.q[0][3] == 0);
    f = fopen(path, "w");
    fputs("layer,expert,tokens\n0,9,1\n", f);
    fclose(f);
    ck_assert_int_lt(moe_trace_load(path, &q, &cfg, &err), 0);
    ck_assert_has(err.msg, "routing.csv:2:");
    remove(path);
    remove(dir);
    free(dir);
}
END_TEST

/* ---- end to end ------------------------------------------------------------------------ */

static void run_pool(const char *parallel, const char *moe, tu_run *out)
{
    run_config cfg;
    sim_err err = {{0}};
    ck_assert_msg(parse_pool("Qwen3-30B-A3B", parallel, moe, &cfg, &err) == 0, "%s", err.msg);
    tu_run_config(&cfg, out);
    run_config_fini(&cfg);
}

#define EPLB_MOE(period, window)                                                          \
    "{\"routing\": {\"skew\": 1.2}, \"placement\": {\"name\": \"eplb\", \"params\": "     \
    "{\"period_iterations\": " #period ", \"window_iterations\": " #window "}}}"

START_TEST(test_moe_runs_are_deterministic)
{
    tu_run a, b;
    run_pool(EP8R, EPLB_MOE(50, 25), &a);
    run_pool(EP8R, EPLB_MOE(50, 25), &b);
    ck_assert_int_eq(a.summary.completed, 300);
    ck_assert(a.record_hash == b.record_hash);
    ck_assert(a.summary.ep_imbalance == b.summary.ep_imbalance);
    ck_assert(a.summary.ep_rebalances > 0 && a.summary.ep_rebalances == b.summary.ep_rebalances);
    ck_assert(a.summary.ep_imbalance >= 1);
    ck_assert(a.summary.term_s[OP_A2A_DISPATCH] > 0);
    ck_assert(a.summary.ep_moved_bytes > 0);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

START_TEST(test_moe_eplb_beats_static_in_a_run)
{
    tu_run a, b;
    run_pool(EP8R, "{\"routing\": {\"skew\": 1.2}}", &a);
    run_pool(EP8R, EPLB_MOE(100, 100), &b);
    ck_assert_msg(b.summary.ep_imbalance < a.summary.ep_imbalance, "%.3f vs %.3f",
                  b.summary.ep_imbalance, a.summary.ep_imbalance);
    ck_assert(a.summary.ep_rebalances == 0 && b.summary.ep_rebalances > 0);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

START_TEST(test_moe_dense_default_unchanged)
{
    /* an explicit default layout is the default, bit for bit */
    tu_run a, b;
    tu_run_sets(NULL, &a);
    cJSON *root = tu_base_config();
    cJSON *cl = cJSON_GetObjectItemCaseSensitive(root, "cluster");
    cJSON_AddItemToObject(cl, "pools", cJSON_Parse(
        "[{\"parallel\": {\"tp\": 1, \"pp\": 1, \"ep\": 1, \"dp\": 1, "
        "\"micro_batches\": 1, \"redundant_experts\": 0}}]"));
    run_config cfg;
    tu_parse(root, &cfg);
    tu_run_config(&cfg, &b);
    run_config_fini(&cfg);
    ck_assert(a.record_hash == b.record_hash);
    ck_assert(a.summary.energy_j == b.summary.energy_j);
    ck_assert(a.summary.ep_imbalance == 0 && a.summary.term_s[OP_A2A_DISPATCH] == 0 &&
              a.summary.term_s[OP_PP_SEND] == 0);
    tu_run_fini(&a);
    tu_run_fini(&b);
}
END_TEST

/* ---- expert offloading ---------------------------------------------------------------- */

/* Mixtral-8x7B on one H200, batch-1 decode, `cached` experts per layer on
 * the GPU and the given moe object. */
static void run_offload(int cached, const char *moe, tu_run *out)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"seed\": 3, \"model\": \"Llama-3-8B\", \"gpu\": \"H200-141GB\","
             " \"cluster\": {\"pools\": [{\"name\": \"off\", \"model\": \"Mixtral-8x7B\","
             "   \"parallel\": {\"tp\": 1, \"gpu_experts\": %d},"
             "   \"instance\": {\"max_seqs\": 1, \"max_context_tokens\": 4096},"
             "   \"moe\": %s}]},"
             " \"cost\": {\"model\": \"roofline\"},"
             " \"workload\": {\"source\": \"synthetic\", \"requests\": 20,"
             "   \"arrival\": {\"process\": \"poisson\", \"rate_per_s\": 0.05},"
             "   \"input_tokens\": {\"dist\": \"lognormal\", \"mean\": 128, \"sigma\": 0.3},"
             "   \"output_tokens\": {\"dist\": \"lognormal\", \"mean\": 64, \"sigma\": 0.3}}}",
             cached, moe);
    cJSON *root = cJSON_Parse(text);
    ck_assert_ptr_nonnull(root);
    run_config cfg;
    tu_parse(root, &cfg);
    tu_run_config(&cfg, out);
    run_config_fini(&cfg);
}

START_TEST(test_moe_offload_layout_holds_the_cache)
{
    llm_model x;
    gpu_spec g;
    load("Mixtral-8x7B", "H100-SXM-80GB", &x, &g);
    par_layout all = PAR_TP(1), two = PAR_TP(1);
    two.gpu_experts = 2;
    double expert = 3.0 * x.hidden * x.expert_ffn * 2;   /* bf16 */
    double saved = llm_weight_bytes_per_gpu(&x, &all) - llm_weight_bytes_per_gpu(&x, &two);
    ck_assert(fabs(saved - 6 * x.layers * expert) < 1e-6 * saved);
    sim_err err = {{0}};
    par_layout bad = {.tp = 1, .pp = 1, .ep = 1, .dp = 1, .gpu_experts = 9};
    ck_assert_int_lt(llm_check_layout(&x, &bad, &err), 0);
    ck_assert_has(err.msg, "gpu_experts=9");
    run_config cfg;
    ck_assert_int_lt(parse_pool("Qwen3-30B-A3B", "{\"dp\": 8, \"ep\": 8, \"gpu_experts\": 4}",
                                "{}", &cfg, &err), 0);
    ck_assert_has(err.msg, "$.cluster.pools[0].parallel");
    ck_assert_has(err.msg, "with ep=1");
    ck_assert_int_lt(parse_pool("Qwen3-30B-A3B", EP8,
                                "{\"offload\": {\"replacement\": \"fifo\"}}", &cfg, &err), 0);
    ck_assert_has(err.msg, "$.cluster.pools[0].moe.offload.replacement");
}
END_TEST

START_TEST(test_moe_offload_misses_cost_pcie_time)
{
    tu_run all, two, four;
    run_offload(8, "{}", &all);
    run_offload(2, "{}", &two);
    run_offload(4, "{}", &four);
    /* every expert resident: no miss, no load */
    ck_assert(all.summary.offload_hits > 0 && all.summary.offload_misses == 0);
    ck_assert(all.summary.term_s[OP_EXPERT_LOAD] == 0);
    /* a smaller cache misses more and decodes slower */
    double h2 = (double)two.summary.offload_hits /
                (double)(two.summary.offload_hits + two.summary.offload_misses);
    double h4 = (double)four.summary.offload_hits /
                (double)(four.summary.offload_hits + four.summary.offload_misses);
    ck_assert_msg(h2 < h4 && h4 < 1, "%.3f %.3f", h2, h4);
    /* uniform top-2 of 8 without locality: a hit is as likely as C / 8 */
    ck_assert_msg(fabs(h4 - 0.5) < 0.1, "%.3f", h4);
    ck_assert(two.summary.tpot_s.mean > four.summary.tpot_s.mean);
    ck_assert(four.summary.tpot_s.mean > 5 * all.summary.tpot_s.mean);
    ck_assert(two.summary.term_s[OP_EXPERT_LOAD] > 0);
    tu_run_fini(&all);
    tu_run_fini(&two);
    tu_run_fini(&four);
}
END_TEST

START_TEST(test_moe_offload_prefetch_precision_locality)
{
    tu_run none, full, high, low, near, lru;
    run_offload(2, "{\"offload\": {\"prefetch_accuracy\": 0}}", &none);
    run_offload(2, "{\"offload\": {\"prefetch_accuracy\": 1}}", &full);
    /* prefetching hides loads behind the layer before: never slower */
    ck_assert(full.summary.tpot_s.mean < none.summary.tpot_s.mean);
    /* the gate threshold: 0 loads nothing in low precision, 1 everything */
    run_offload(2, "{\"offload\": {\"low_precision_gate\": 0}}", &high);
    run_offload(2, "{\"offload\": {\"low_precision_gate\": 1}}", &low);
    ck_assert(high.summary.offload_low_loads == 0 && high.summary.offload_bytes_low == 0);
    ck_assert(low.summary.offload_bytes_high == 0 && low.summary.offload_bytes_low > 0);
    ck_assert(low.summary.tpot_s.mean < 0.5 * high.summary.tpot_s.mean);
    /* tokens that follow their predecessors' experts hit more */
    run_offload(2, "{\"routing\": {\"locality\": 0.8}}", &near);
    ck_assert(near.summary.offload_hits * (none.summary.offload_hits + none.summary.offload_misses) >
              none.summary.offload_hits * (near.summary.offload_hits + near.summary.offload_misses));
    /* a replacement rule is a choice: LRU runs too, deterministically */
    run_offload(2, "{\"offload\": {\"replacement\": \"lru\"}}", &lru);
    tu_run again;
    run_offload(2, "{\"offload\": {\"replacement\": \"lru\"}}", &again);
    ck_assert(lru.record_hash == again.record_hash);
    ck_assert(lru.summary.offload_misses == again.summary.offload_misses);
    tu_run *all[] = {&none, &full, &high, &low, &near, &lru, &again};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tu_run_fini(all[i]);
}
END_TEST

Suite *moe_suite(void)
{
    Suite *s = suite_create("moe");
    TCase *tc;
#define ADD(fn)                         \
    tc = tcase_create(#fn);             \
    tcase_set_timeout(tc, 60);          \
    tcase_add_test(tc, fn);             \
    suite_add_tcase(s, tc)
    ADD(test_moe_layout_checks_degrees);
    ADD(test_moe_config_rejects_bad_layouts_with_path);
    ADD(test_moe_layout_shares_weights_and_kv);
    ADD(test_moe_pp_one_micro_batch_shows_the_bubble);
    ADD(test_moe_pp_micro_batches_fill_the_pipeline);
    ADD(test_moe_slowest_rank_sets_the_layer_time);
    ADD(test_moe_uniform_routing_is_balanced);
    ADD(test_moe_janus_activates_fewer_experts_per_gpu);
    ADD(test_moe_eplb_reproduces_readme_example);
    ADD(test_moe_eplb_lowers_imbalance_under_skew);
    ADD(test_moe_routing_trace_file);
    ADD(test_moe_runs_are_deterministic);
    ADD(test_moe_eplb_beats_static_in_a_run);
    ADD(test_moe_dense_default_unchanged);
    ADD(test_moe_offload_layout_holds_the_cache);
    ADD(test_moe_offload_misses_cost_pcie_time);
    ADD(test_moe_offload_prefetch_precision_locality);
#undef ADD
    return s;
}
