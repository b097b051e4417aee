/* Speculative decoding (see spec.h).
 *
 * Design. The batch policies never see speculation: they plan as before,
 * and spec_plan then turns each decoding item of the plan into a
 * verification item, with its drafts clamped to what the plan leaves (the
 * token budget, the ledger's free blocks). Drafts therefore come after
 * prefill chunks in the token budget, where vLLM schedules running
 * requests' drafts first; and a sequence whose lookahead does not fit
 * drafts less instead of preempting another (vLLM would preempt). Both are
 * deliberate: a plan that fits without speculation still fits with it.
 *
 * Costs. The target's verification is a prefill-like chunk of 1 + d query
 * tokens over the sequence's context (models/ops.c prices it: weights once,
 * attention over its KV once, logits at every position through
 * batch_shape.spec_sampled). The drafter's cost by method:
 *  - draft_model, eagle, mtp: the drafter as a model (its own file, or the
 *    target cut to draft_layers layers; MTP shares the target's LM head),
 *    one pass over every chunk of the iteration (it keeps its own KV of
 *    the prompts and of the verified tokens) sampling one draft per
 *    drafting sequence, then d - 1 single-token steps of the sequences
 *    that draft more [assume: vLLM v1's EAGLE proposer runs the first pass
 *    over the step's scheduled tokens, then one token per step];
 *  - medusa: one pass of K heads (a residual block and an LM head each)
 *    over the drafting sequences' last hidden states;
 *  - ngram: no GPU work (prompt lookup runs on the CPU).
 * Each draft pass also costs draft_step_us of CPU/launch time (0 unless
 * configured), with the GPUs idle.
 *
 * Draws. Every draw is keyed by (run seed, request id, tokens generated,
 * purpose): a step's uniform is a hash of that key (a counter-based stream,
 * like order_sjf_predicted's) and gives the accepted count by inversion
 * (one uniform a step, whatever K), and a Beta model's
 * per-request rate comes from a GSL taus2 generator seeded from (run seed,
 * request id). O(1), no per-request state, and independent of everything
 * the batch does. */
#include "serve/spec.h"
#include "serve/metrics.h"
#include "serve/req.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/engine.h"
#include "sim/jsoncfg.h"

#define GIB (1024.0 * 1024.0 * 1024.0)
#define HALF_BYTES 2.0
#define ACT_BYTES 2.0

/* vLLM's MTP per-position acceptance (DeepSeek MTP, K = 8, gsm8k,
 * temperature 0; vllm#48892, quoted in shared/specs/next-features.md G(4)):
 * the default table of method "mtp". */
static const double mtp_default_table[] = {.762, .616, .513, .424, .364, .309, .272, .237};
#define MTP_DEFAULT_N 8
/* Bernoulli rate when none is given [assume]. */
#define DEFAULT_ALPHA 0.7

static const char *const method_names[SPEC_METHOD_COUNT] = {
    [SPEC_OFF] = "off",       [SPEC_DRAFT_MODEL] = "draft_model", [SPEC_EAGLE] = "eagle",
    [SPEC_MTP] = "mtp",       [SPEC_MEDUSA] = "medusa",           [SPEC_NGRAM] = "ngram",
};

const char *spec_method_name(spec_method m)
{
    SIM_ASSERT(m >= 0 && m < SPEC_METHOD_COUNT);
    return method_names[m];
}

/* ---- configuration ----------------------------------------------------------- */

static bool model_based(spec_method m)
{
    return m == SPEC_DRAFT_MODEL || m == SPEC_EAGLE || m == SPEC_MTP;
}

static int parse_acceptance(cJSON *o, const char *path, spec_setup *s, sim_err *err)
{
    static const char *const keys[] = {"model", "rate", "per_position", "beta_a", "beta_b",
                                       NULL};
    char apath[256];
    snprintf(apath, sizeof apath, "%s.acceptance", path);
    cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "acceptance");
    const char *def = s->method == SPEC_MTP ? "per_position" : "bernoulli";
    if (a && cJSON_IsNumber(a)) {   /* shorthand: a Bernoulli rate */
        if (!(a->valuedouble >= 0 && a->valuedouble <= 1))
            return sim_errf(err, "%s: expected a rate in [0, 1], got %g", apath,
                            a->valuedouble);
        s->accept = SPEC_ACCEPT_BERNOULLI;
        s->alpha = a->valuedouble;
        return 0;
    }
    if (a && !cJSON_IsObject(a))
        return sim_errf(err, "%s: expected a rate in [0, 1] or an object {\"model\": "
                        "\"bernoulli\" | \"per_position\" | \"beta\" | \"request\" | "
                        "\"trace\", ...}", apath);
    cJSON *empty = NULL;
    if (!a)
        a = empty = cJSON_CreateObject();
    const char *model;
    int rc = -1;
    if (jcfg_check_keys(a, apath, keys, err) ||
        jcfg_str(a, apath, "model", def, &model, err) ||
        jcfg_num(a, apath, "rate", DEFAULT_ALPHA, 0, 1, &s->alpha, err) ||
        jcfg_num(a, apath, "beta_a", 7, 1e-3, 1e6, &s->beta_a, err) ||
        jcfg_num(a, apath, "beta_b", 3, 1e-3, 1e6, &s->beta_b, err))
        goto out;
    if (!strcmp(model, "bernoulli")) {
        s->accept = SPEC_ACCEPT_BERNOULLI;
    } else if (!strcmp(model, "beta")) {
        s->accept = SPEC_ACCEPT_BETA;
    } else if (!strcmp(model, "request")) {
        s->accept = SPEC_ACCEPT_REQUEST;
    } else if (!strcmp(model, "trace")) {
        s->accept = SPEC_ACCEPT_TRACE;
    } else if (!strcmp(model, "per_position")) {
        s->accept = SPEC_ACCEPT_PER_POSITION;
        cJSON *t = cJSON_GetObjectItemCaseSensitive(a, "per_position");
        int n = t ? cJSON_GetArraySize(t) : MTP_DEFAULT_N;
        if (t && (!cJSON_IsArray(t) || n < s->k)) {
            sim_errf(err, "%s.per_position: expected an array of at least k (%d) rates "
                     "P(accepted >= i), i = 1..k", apath, s->k);
            goto out;
        }
        if (!t && s->k > MTP_DEFAULT_N) {
            sim_errf(err, "%s.per_position: the default table has %d positions; give "
                     "one of at least k (%d) rates", apath, MTP_DEFAULT_N, s->k);
            goto out;
        }
        double prev = 1;
        for (int i = 0; i < s->k; i++) {
            cJSON *e = t ? cJSON_GetArrayItem(t, i) : NULL;
            double p = t ? (cJSON_IsNumber(e) ? e->valuedouble : -1) : mtp_default_table[i];
            if (!(p >= 0 && p <= prev)) {
                sim_errf(err, "%s.per_position[%d]: expected a rate in [0, %g] (rates "
                         "P(accepted >= i) do not increase), got %s", apath, i, prev,
                         cJSON_IsNumber(e) ? "a larger number" : "a non-number");
                goto out;
            }
            s->per_position[i] = prev = p;
        }
    } else {
        sim_errf(err, "%s.model: expected one of: bernoulli, per_position, beta, request, "
                 "trace; got \"%s\"", apath, model);
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(empty);
    return rc;
}

/* The drafter of eagle/mtp: the target's layers, draft_layers of them (an
 * MoE target's draft layer is an MoE layer, as DeepSeek-V3's MTP module). */
static void cut_model(const llm_model *target, int32_t layers, llm_model *out)
{
    *out = *target;
    out->layers = layers;
    if (out->experts)
        out->dense_layers = 0;
}

int spec_setup_parse(cJSON *o, const char *path, const char *models_dir,
                     const llm_model *target, const par_layout *par, spec_setup *s,
                     const char **policy_name, sim_err *err)
{
    static const char *const keys[] = {"method", "k", "acceptance", "draft_model",
                                       "draft_layers", "lookahead", "draft_step_us",
                                       "match_rate", "policy", "verify_tokens", "topk", NULL};
    static const char *const pol_keys[] = {"name", "params", NULL};
    const char *method, *draft_name;
    int64_t k, layers, verify, topk;
    double step_us;
    char ppath[256];
    cJSON *pol;
    memset(s, 0, sizeof *s);
    if (!cJSON_IsObject(o))
        return sim_errf(err, "%s: expected an object {\"method\": ..., \"k\": ...}", path);
    if (jcfg_check_keys(o, path, keys, err) ||
        jcfg_str(o, path, "method", NULL, &method, err))
        return -1;
    for (int m = SPEC_OFF; m < SPEC_METHOD_COUNT; m++)
        if (!strcmp(method, method_names[m]))
            s->method = (spec_method)m;
    if (s->method == SPEC_OFF && strcmp(method, "off"))
        return sim_errf(err, "%s.method: expected one of: off, draft_model, eagle, mtp, "
                        "medusa, ngram; got \"%s\"", path, method);
    bool la_default = model_based(s->method);   /* vLLM's lookahead split */
    if (jcfg_int(o, path, "k", 4, 1, SPEC_MAX_K, &k, err) ||
        jcfg_int(o, path, "draft_layers", 1, 1, target->layers, &layers, err) ||
        jcfg_bool(o, path, "lookahead", la_default, &s->lookahead, err) ||
        jcfg_num(o, path, "draft_step_us", 0, 0, 1e6, &step_us, err) ||
        jcfg_num(o, path, "match_rate", 1, 0, 1, &s->match_rate, err) ||
        jcfg_str(o, path, "draft_model", "", &draft_name, err))
        return -1;
    s->k = (int32_t)k;
    if (jcfg_int(o, path, "topk", 1, 1, 64, &topk, err) ||
        jcfg_int(o, path, "verify_tokens", 0, 0, 1 + k * topk, &verify, err))
        return -1;
    if (verify && verify < k + 1)
        return sim_errf(err, "%s.verify_tokens: expected 0 (a chain of k + 1) or at least k + 1 "
                        "(%lld) tree nodes, got %lld", path, (long long)(k + 1), (long long)verify);
    s->verify_tokens = (int32_t)verify;
    s->topk = (int32_t)topk;
    s->draft_layers = (int32_t)layers;
    s->draft_step_ns = step_us * 1e3;
    if (parse_acceptance(o, path, s, err))
        return -1;
    if (jcfg_obj(o, path, "policy", &pol, ppath, err) ||
        jcfg_check_keys(pol, ppath, pol_keys, err) ||
        jcfg_str(pol, ppath, "name", "fixed", policy_name, err) ||
        jcfg_obj(pol, ppath, "params", &s->policy_params, s->policy_path, err))
        return -1;
    if (s->method == SPEC_DRAFT_MODEL) {
        if (!draft_name[0])
            return sim_errf(err, "%s.draft_model: method draft_model needs the draft "
                            "LLM's model (a name in models/llm/ or a file)", path);
        if (llm_model_resolve(models_dir, draft_name, &s->draft, err) ||
            llm_set_precision(&s->draft, &target->prec, err))
            return sim_err_prefix(err, "%s.draft_model", path);
        if (s->draft.vocab != target->vocab)
            return sim_errf(err, "%s.draft_model: %s has a vocabulary of %d tokens, the "
                            "target %s one of %d: a draft model must share the target's "
                            "tokenizer", path, s->draft.name, s->draft.vocab, target->name,
                            target->vocab);
        if (llm_check_layout(&s->draft, par, err))
            return sim_err_prefix(err, "%s.draft_model", path);
        s->draft_weight_bytes_per_gpu = llm_weight_bytes_per_gpu(&s->draft, par);
        s->draft_kv_bytes_per_token_per_gpu = llm_kv_bytes_per_token_per_gpu(&s->draft, par);
    } else if (draft_name[0]) {
        return sim_errf(err, "%s.draft_model: only method draft_model takes a draft "
                        "model (method is \"%s\")", path, method);
    } else if (s->method == SPEC_EAGLE || s->method == SPEC_MTP) {
        llm_model none;
        cut_model(target, s->draft_layers, &s->draft);
        cut_model(target, 0, &none);
        double head = (double)target->vocab * target->hidden * HALF_BYTES / par->tp;
        /* Its layers; EAGLE brings its own LM head, MTP shares the target's
         * (and both share the embedding). */
        s->draft_weight_bytes_per_gpu = llm_weight_bytes_per_gpu(&s->draft, par) -
                                        llm_weight_bytes_per_gpu(&none, par) +
                                        (s->method == SPEC_EAGLE ? head : 0);
        s->draft_kv_bytes_per_token_per_gpu = llm_kv_bytes_per_token_per_gpu(target, par) *
                                              s->draft_layers / target->layers;
    } else if (s->method == SPEC_MEDUSA) {
        double h = target->hidden;
        s->draft_weight_bytes_per_gpu =
            s->k * (h * h * target->bytes_per_param + (double)target->vocab * h * HALF_BYTES) /
            par->tp;
    }
    return 0;
}

int spec_kv_blocks(const spec_setup *s, const llm_model *target, const gpu_spec *g,
                   const par_layout *par, double utilization, double reserve_bytes,
                   int32_t block_size_tokens, int64_t *out, sim_err *err)
{
    double usable = g->hbm_bytes * utilization;
    double weights = llm_weight_bytes_per_gpu(target, par) + s->draft_weight_bytes_per_gpu;
    double free_bytes = usable - weights - reserve_bytes;
    if (free_bytes <= 0)
        return sim_errf(err, "%s with its %s drafter does not fit on %s at tp=%d: each "
                        "GPU holds %.1f GiB of weights (%.2f GiB of them the drafter's) "
                        "plus a %.1f GiB activation reserve, but only %.1f GiB is usable",
                        target->name, spec_method_name(s->method), g->name, par->tp,
                        weights / GIB, s->draft_weight_bytes_per_gpu / GIB,
                        reserve_bytes / GIB, usable / GIB);
    double per_token = llm_kv_bytes_per_token_per_gpu(target, par) +
                       s->draft_kv_bytes_per_token_per_gpu;
    *out = (int64_t)(free_bytes / (per_token * block_size_tokens));
    return 0;
}

void spec_stats_add(spec_stats *sum, const spec_stats *s)
{
    sum->drafts += s->drafts;
    sum->draft_tokens += s->draft_tokens;
    sum->verified_tokens += s->verified_tokens;
    sum->accepted_tokens += s->accepted_tokens;
    sum->emitted_tokens += s->emitted_tokens;
    sum->positions_reached += s->positions_reached;
    for (int i = 0; i < SPEC_POS_METRICS; i++)
        sum->pos_accepted[i] += s->pos_accepted[i];
    sum->lookahead_blocks += s->lookahead_blocks;
    sum->draft_ns += s->draft_ns;
    sum->verify_ns += s->verify_ns;
}

void spec_summarize(const spec_stats *st, double busy_ns, run_summary *out)
{
    out->spec_drafts = st->drafts;
    out->spec_draft_tokens = st->draft_tokens;
    out->spec_accepted_tokens = st->accepted_tokens;
    out->spec_wasted_tokens = st->verified_tokens - st->accepted_tokens;
    out->spec_lookahead_blocks = st->lookahead_blocks;
    if (st->draft_tokens)
        out->spec_acceptance_rate = (double)st->accepted_tokens / (double)st->draft_tokens;
    if (st->drafts) {
        out->spec_mean_acceptance_length = 1 + (double)st->accepted_tokens / (double)st->drafts;
        for (int i = 0; i < SPEC_POS_METRICS; i++)
            out->spec_position_rate[i] = (double)st->pos_accepted[i] / (double)st->drafts;
    }
    out->spec_draft_time_s = st->draft_ns / 1e9;
    out->spec_verify_time_s = st->verify_ns / 1e9;
    if (busy_ns > 0) {
        out->spec_draft_share = st->draft_ns / busy_ns;
        out->spec_verify_share = st->verify_ns / busy_ns;
    }
}

/* ---- the runtime -------------------------------------------------------------- */

struct spec {
    const spec_setup *s;
    cost_model *target;        /* borrowed */
    cost_model *draft;         /* borrowed (the pool's); NULL for ngram */
    par_layout par;
    double idle_w;
    uint64_t seed;
    gsl_rng *rng;
    double reach[SPEC_MAX_K];  /* P(a >= i + 1): the table's, or alpha^(i+1) */
    void *policy_state;
    spec_stats st;             /* pos_accepted: from acc_hist, by spec_get_stats */
    uint64_t acc_hist[SPEC_MAX_K + 1];   /* verification steps by accepted drafts */

    /* The plan of the iteration being formed, then in flight. */
    size_t cap;                /* of every array below */
    int32_t *drafts;           /* per item */
    int32_t *extra;            /* per item: verify_extra(drafts) */
    /* Per item: the accepted drafts, drawn when the drafts are chosen (the
     * draw's key is known then), and the generated count they were drawn
     * at (spec_accept_item draws again if it has changed). */
    int32_t *acc, *acc_gen;
    const serve_req **cand;    /* candidates: request, item, cap */
    int32_t *cand_item, *cand_cap;
    int32_t n_cand, n_items;
    int32_t cnt[SPEC_MAX_K + 1];   /* drafting sequences by drafts */
    double ctx[SPEC_MAX_K + 1];    /* and their context sums */
    /* What-if pricing: the plan's other items. */
    batch_seq *chunks;
    int32_t n_base_chunks, base_decode, base_sampled;
    int64_t base_ctx;
    const batch_view *view;    /* the plan being formed, for base_shape */
    const batch_plan *plan;
    bool base_ready;
};

int spec_draft_cost_create(const spec_setup *s, const cost_model *target,
                           const cJSON *cost_params,
                           const char *cost_path, const cost_setup *target_cost,
                           cost_setup *draft_setup, cost_model **out, sim_err *err)
{
    *out = NULL;
    if (s->method == SPEC_OFF || s->method == SPEC_NGRAM)
        return 0;
    *draft_setup = *target_cost;
    if (model_based(s->method))
        draft_setup->model = &s->draft;
    draft_setup->engine = NULL;   /* drafts run in the engine's step: no CPU model of their own */
    draft_setup->iteration_overhead_ns = 0;
    /* EAGLE and MTP drafters are the target cut to fewer layers, medusa's
     * is the target: they price every op as the target does (the table's
     * keys never read the layer count), so they share its memo of prices. */
    *out = cost_model_create_like(target, draft_setup, cost_params, cost_path,
                                  s->method != SPEC_DRAFT_MODEL, err);
    return *out ? 0 : -1;
}

spec *spec_create(const spec_setup *s, const cost_setup *target_cost, cost_model *target,
                  cost_model *draft, uint64_t seed, sim_err *err)
{
    SIM_ASSERT(s->method != SPEC_OFF && s->policy);
    spec *sp = sim_xcalloc(1, sizeof *sp);
    sp->s = s;
    sp->target = target;
    sp->par = target_cost->par;
    sp->idle_w = cost_idle_power_w(target);
    sp->seed = sim_stream_seed(seed, SPEC_STREAM);
    sp->rng = gsl_rng_alloc(gsl_rng_taus2);
    SIM_ASSERT(sp->rng);   /* out of memory */
    for (int i = 0; i < s->k; i++)
        sp->reach[i] = s->accept == SPEC_ACCEPT_PER_POSITION
                           ? s->per_position[i] : (i ? sp->reach[i - 1] : 1) * s->alpha;
    sp->draft = draft;
    SIM_ASSERT(draft || s->method == SPEC_NGRAM);
    if (s->policy->init(s->k, s->policy_params, s->policy_path, &sp->policy_state, err))
        goto fail;
    return sp;
fail:
    spec_destroy(sp);
    return NULL;
}

void spec_destroy(spec *sp)
{
    if (!sp)
        return;
    if (sp->policy_state && sp->s->policy->destroy)
        sp->s->policy->destroy(sp->policy_state);
    gsl_rng_free(sp->rng);
    free(sp->drafts);
    free(sp->extra);
    free(sp->acc);
    free(sp->acc_gen);
    free(sp->cand);
    free(sp->cand_item);
    free(sp->cand_cap);
    free(sp->chunks);
    free(sp);
}

/* Draft tokens the verification of d drafts adds: d for a chain; for a
 * tree of verify_tokens nodes, its share for a sequence drafting d <= k. */
static int32_t verify_extra(const spec_setup *s, int32_t d)
{
    if (!s->verify_tokens || d == 0)
        return d;
    return (int32_t)(((int64_t)(s->verify_tokens - 1) * d + s->k - 1) / s->k);
}

/* ---- draws ------------------------------------------------------------------------ */

static inline uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Reseeds the generator for one purpose of request id at step `generated`. */
static void reseed(spec *sp, uint64_t id, int64_t generated, uint64_t purpose)
{
    uint64_t h = mix64(sp->seed ^ mix64(id ^ mix64((uint64_t)generated ^ (purpose << 56))));
    gsl_rng_set(sp->rng, (unsigned long)h);
}

enum { DRAW_ACCEPT = 1, DRAW_ALPHA = 2, DRAW_MATCH = 3 };

/* The key of a counter-based stream (hashed like reseed's seed), and its
 * i-th uniform in [0, 1): the per-position draws of the common models need
 * no generator state. */
static inline uint64_t stream_key(const spec *sp, uint64_t id, int64_t generated,
                                  uint64_t purpose)
{
    return mix64(sp->seed ^ mix64(id ^ mix64((uint64_t)generated ^ (purpose << 56))));
}

static inline double uniform_at(uint64_t key, uint64_t i)
{
    return (double)(mix64(key + i) >> 11) * 0x1.0p-53;
}

int32_t spec_draw(spec *sp, uint64_t id, int32_t generated, int32_t d)
{
    const spec_setup *s = sp->s;
    SIM_ASSERT(d >= 0 && d <= s->k);
    double alpha = s->alpha;
    if (s->accept == SPEC_ACCEPT_BETA) {   /* the request's own rate, from a GSL Beta draw */
        reseed(sp, id, -1, DRAW_ALPHA);
        alpha = gsl_ran_beta(sp->rng, s->beta_a, s->beta_b);
    }
    /* One uniform u per step: a = the positions i <= d with P(a >= i) > u
     * (P(a >= i) = alpha^i, or the table's), which has the model's
     * distribution, and drafting fewer only truncates it. */
    double u = uniform_at(stream_key(sp, id, generated, DRAW_ACCEPT), 0);
    int32_t a = 0;
    if (s->accept == SPEC_ACCEPT_BETA) {
        double p = alpha;
        while (a < d && p > u)
            a++, p *= alpha;
    } else {
        /* reach is non-increasing, so the positions above u are a prefix:
         * counting them needs no data-dependent branch (a mispredicted
         * one per draw was most of this function's time). */
        for (int32_t i = 0; i < d; i++)
            a += sp->reach[i] > u;
    }
    return a;
}

/* The accepted drafts of request r's next verification step with d
 * drafts: spec_draw's, or from r's trace columns (serve/req.h) under the
 * models "request" (r's spec_alpha as a Bernoulli rate, on the same
 * uniform as spec_draw: a request whose rate is the configured one draws
 * what "bernoulli" draws) and "trace" (r's recorded accepted drafts, one
 * per step in order, cut to d, cycling when they run out) [assume: a
 * recorded request usually takes as many steps as it recorded; at another
 * K or length it may take more]. A request without the column uses rate. */
static int32_t draw_req(spec *sp, const serve_req *r, int32_t d)
{
    const req *q = req_of(r);
    spec_accept m = sp->s->accept;
    if (m == SPEC_ACCEPT_BERNOULLI || m == SPEC_ACCEPT_PER_POSITION) {   /* spec_draw's, inline */
        double u = uniform_at(stream_key(sp, r->id, r->generated_tokens, DRAW_ACCEPT), 0);
        int32_t a = 0;
        for (int32_t i = 0; i < d; i++)
            a += sp->reach[i] > u;
        return a;
    }
    if (sp->s->accept == SPEC_ACCEPT_TRACE && q->n_spec_acc > 0) {
        int32_t a = q->spec_acc[q->spec_steps % q->n_spec_acc];
        return a < d ? a : d;
    }
    if (sp->s->accept == SPEC_ACCEPT_REQUEST && q->spec_alpha_set) {
        double u = uniform_at(stream_key(sp, r->id, r->generated_tokens, DRAW_ACCEPT), 0);
        double alpha = q->spec_alpha, p = alpha;
        int32_t a = 0;
        while (a < d && p > u)
            a++, p *= alpha;
        return a;
    }
    return spec_draw(sp, r->id, r->generated_tokens, d);
}

/* ngram: whether the prompt lookup finds a proposal this step. */
static bool ngram_match(spec *sp, const serve_req *r)
{
    if (sp->s->match_rate >= 1)
        return true;
    return uniform_at(stream_key(sp, r->id, r->generated_tokens, DRAW_MATCH), 0) <
           sp->s->match_rate;
}

static int32_t account(spec *sp, int32_t d, int32_t e, int32_t a);

int32_t spec_accept_drafts(spec *sp, const serve_req *r, int32_t d)
{
    int32_t a = draw_req(sp, r, d);
    req_of(r)->spec_steps++;
    return account(sp, d, verify_extra(sp->s, d), a);
}

int32_t spec_accept_item(spec *sp, int32_t i, const serve_req *r)
{
    SIM_ASSERT(i >= 0 && i < sp->n_items);
    int32_t d = sp->drafts[i], a = sp->acc[i];
    SIM_ASSERT(d > 0);
    if (r->generated_tokens != sp->acc_gen[i])   /* not what it was drawn at */
        a = draw_req(sp, r, d);
    req_of(r)->spec_steps++;
    return account(sp, d, sp->extra[i], a);
}

/* Adds a verification step of d drafts (e verified), a accepted, to the
 * stats. */
static int32_t account(spec *sp, int32_t d, int32_t e, int32_t a)
{
    spec_stats *st = &sp->st;
    st->drafts++;
    st->draft_tokens += (uint64_t)d;
    st->verified_tokens += (uint64_t)e;
    st->accepted_tokens += (uint64_t)a;
    st->emitted_tokens += (uint64_t)a + 1;
    st->positions_reached += (uint64_t)(a < d ? a + 1 : d);
    sp->acc_hist[a]++;
    return a;
}

/* ---- costs ------------------------------------------------------------------------ */

static void add_result(cost_result *sum, const cost_result *c)
{
    sum->latency_ns += c->latency_ns;
    sum->energy_j += c->energy_j;
    sum->weight_bytes += c->weight_bytes;
    sum->kv_bytes += c->kv_bytes;
}

/* A GEMM of m x k by k x n (medusa's heads). */
static void medusa_gemm(op_list *l, op_kind kind, int32_t repeat, double m, double n,
                        double k, double wbytes)
{
    op_desc *op = &l->op[l->n++];
    *op = (op_desc){.kind = kind, .repeat = repeat, .m = (int64_t)m, .n = (int64_t)n,
                    .k = (int64_t)k, .dtype = LLM_BF16};
    op->flops = 2 * m * n * k;
    op->weight_bytes = k * n * wbytes;
    op->bytes = m * k * ACT_BYTES + m * n * ACT_BYTES + op->weight_bytes;
}

/* The drafting cost of an iteration with `chunks` (prefill and verify
 * chunks) and drafting sequences sp->cnt / sp->ctx by drafts. */
static void draft_cost(spec *sp, const batch_seq *chunks, int32_t n_chunks, cost_result *out)
{
    const spec_setup *s = sp->s;
    *out = (cost_result){0};
    int32_t n_seq = 0, dmax = 0;
    for (int32_t d = 1; d <= s->k; d++)
        if (sp->cnt[d])
            n_seq += sp->cnt[d], dmax = d;
    int32_t passes = 0;
    cost_result c;
    if (model_based(s->method) && (n_chunks || n_seq)) {
        batch_shape b = {.prefill = chunks, .n_prefill = n_chunks, .n_sampled = n_seq};
        if (b.n_sampled > n_chunks)   /* verify chunks are among the chunks */
            b.n_sampled = n_chunks;
        cost_iteration(sp->draft, &b, &c);
        add_result(out, &c);
        passes++;
        /* Steps j = 1 .. dmax-1 run the sequences drafting more than j.
         * Between two distinct draft counts that set is the same, and its
         * steps differ only in their context (j more tokens each); a step's
         * cost is affine in the context (weights read once, KV bytes and
         * attention FLOPs per context token), so the run of steps is
         * priced once at its mean context, times its length: one pricing
         * per distinct draft count rather than one per step. */
        int32_t j = 1;
        while (j < dmax) {
            int32_t next = j + 1;   /* the run ends where the next count drops out */
            while (next < dmax && !sp->cnt[next])
                next++;
            int32_t steps = next - j;
            b = (batch_shape){0};
            double ctx = 0;
            for (int32_t d = next; d <= dmax; d++)
                b.n_decode += sp->cnt[d], ctx += sp->ctx[d];
            ctx += (double)b.n_decode * (j + next - 1) / 2.0;   /* mean step's extra */
            /* A tree step extends topk branches per sequence. */
            b.n_decode *= s->topk;
            b.decode_ctx_sum = (int64_t)llround(ctx * s->topk);
            b.n_sampled = b.n_decode;
            cost_iteration(sp->draft, &b, &c);
            c.latency_ns *= steps, c.energy_j *= steps;
            c.weight_bytes *= steps, c.kv_bytes *= steps;
            add_result(out, &c);
            passes += steps;
            j = next;
        }
    } else if (s->method == SPEC_MEDUSA && n_seq) {
        const llm_model *m = cost_model_setup(sp->draft)->model;
        op_list ops = {.n = 0};
        double h = m->hidden, v = (double)(m->vocab + sp->par.tp - 1) / sp->par.tp;
        medusa_gemm(&ops, OP_GEMM_FFN_DOWN, s->k, n_seq, h / sp->par.tp, h, m->bytes_per_param);
        medusa_gemm(&ops, OP_GEMM_LM_HEAD, s->k, n_seq, v, h, HALF_BYTES);
        cost_op_price price[2];
        cost_price_each(sp->draft, &ops, price);
        double ns = 0, j = 0;
        for (int i = 0; i < ops.n; i++) {
            ns += price[i].ns * ops.op[i].repeat;
            j += price[i].power_w * price[i].ns * ops.op[i].repeat * 1e-9;
            out->weight_bytes += ops.op[i].weight_bytes * ops.op[i].repeat;
        }
        out->latency_ns = (sim_time_ns)llround(ns);
        out->energy_j = j * par_gpus(&sp->par);
        passes = 1;
    } else if (s->method == SPEC_NGRAM && n_seq) {
        passes = 1;
    }
    sim_time_ns cpu = (sim_time_ns)llround(s->draft_step_ns * passes);
    out->latency_ns += cpu;
    out->energy_j += sp->idle_w * (double)cpu * 1e-9;
}

void spec_add_cost(spec *sp, const batch_shape *shape, cost_result *c)
{
    cost_result d;
    draft_cost(sp, shape->prefill, shape->n_prefill, &d);
    if (shape->spec_sampled > 0)
        sp->st.verify_ns += (double)c->latency_ns;
    sp->st.draft_ns += (double)d.latency_ns;
    add_result(c, &d);
}

/* ---- planning --------------------------------------------------------------------- */


/* Fills cnt/ctx with the candidates drafting min(k, cap). */
static void histogram(spec *sp, int32_t k)
{
    memset(sp->cnt, 0, sizeof sp->cnt);
    memset(sp->ctx, 0, sizeof sp->ctx);
    for (int32_t c = 0; c < sp->n_cand; c++) {
        int32_t d = k < sp->cand_cap[c] ? k : sp->cand_cap[c];
        sp->cnt[d]++;
        sp->ctx[d] += sp->cand[c]->computed_tokens;
    }
}

static void base_shape(spec *sp, const batch_view *v, const batch_plan *plan);

/* spec_view.iter_ns: the plan's iteration with every candidate drafting
 * min(k, cap), target and drafter. */
static double whatif_ns(void *ctx, int32_t k)
{
    spec *sp = ctx;
    SIM_ASSERT(k >= 0 && k <= sp->s->k);
    if (!sp->base_ready) {
        base_shape(sp, sp->view, sp->plan);
        sp->base_ready = true;
    }
    histogram(sp, k);
    batch_shape b = {.prefill = sp->chunks, .n_decode = sp->base_decode + sp->cnt[0],
                     .decode_ctx_sum = sp->base_ctx + (int64_t)sp->ctx[0],
                     .n_sampled = sp->base_sampled + sp->n_cand};
    int32_t n = sp->n_base_chunks;
    for (int32_t c = 0; c < sp->n_cand; c++) {
        int32_t d = k < sp->cand_cap[c] ? k : sp->cand_cap[c];
        if (d > 0) {
            int32_t e = verify_extra(sp->s, d);
            sp->chunks[n++] = (batch_seq){1 + e, sp->cand[c]->computed_tokens};
            b.spec_sampled += e;
        }
    }
    b.n_prefill = n;
    cost_result t, d;
    cost_iteration(sp->target, &b, &t);
    draft_cost(sp, sp->chunks, n, &d);
    return (double)(t.latency_ns + d.latency_ns);
}

static void plan_reserve(spec *sp, size_t n)
{
    if (n <= sp->cap)
        return;
    size_t c = sp->cap;
    sim_grow((void **)&sp->drafts, &c, n, sizeof *sp->drafts);
    c = sp->cap;
    sim_grow((void **)&sp->extra, &c, n, sizeof *sp->extra);
    c = sp->cap;
    sim_grow((void **)&sp->acc, &c, n, sizeof *sp->acc);
    c = sp->cap;
    sim_grow((void **)&sp->acc_gen, &c, n, sizeof *sp->acc_gen);
    c = sp->cap;
    sim_grow((void **)&sp->chunks, &c, n, sizeof *sp->chunks);
    c = sp->cap;
    sim_grow((void **)&sp->cand, &c, n, sizeof *sp->cand);
    c = sp->cap;
    sim_grow((void **)&sp->cand_item, &c, n, sizeof *sp->cand_item);
    c = sp->cap;
    sim_grow((void **)&sp->cand_cap, &c, n, sizeof *sp->cand_cap);
    sp->cap = c;
}

/* The plan's items that do not draft, for what-if pricing. */
static void base_shape(spec *sp, const batch_view *v, const batch_plan *plan)
{
    sp->n_base_chunks = sp->base_decode = sp->base_sampled = 0;
    sp->base_ctx = 0;
    int32_t c = 0;
    for (int32_t i = 0; i < plan->n_items; i++) {
        if (c < sp->n_cand && sp->cand_item[c] == i) {
            c++;
            continue;
        }
        const batch_item *it = &plan->items[i];
        const serve_req *r = it->req;
        int32_t ctx = r->computed_tokens + kv_cached_tokens(v, r);
        if (req_is_decode(r) && !it->layers) {
            sp->base_decode++;
            sp->base_ctx += ctx;
            sp->base_sampled++;
        } else {
            sp->chunks[sp->n_base_chunks++] = (batch_seq){it->tokens, ctx};
            sp->base_sampled += ctx + it->tokens == req_seq_tokens(r) && !it->layers;
        }
    }
}

/* Blocks of b tokens holding `tokens` tokens; shift: log2(b) when b is a
 * power of two (the usual case: a 64-bit division per drafting sequence
 * was a quarter of spec_plan's time), else -1. */
static inline int64_t blocks_of(int64_t tokens, int64_t b, int shift)
{
    return shift >= 0 ? (tokens + b - 1) >> shift : (tokens + b - 1) / b;
}

void spec_plan(spec *sp, const batch_view *v, batch_plan *plan)
{
    const spec_setup *s = sp->s;
    plan_reserve(sp, (size_t)plan->n_items + 1);
    sp->n_items = plan->n_items;
    sp->n_cand = 0;
    int64_t tokens = 0;
    for (int32_t i = 0; i < plan->n_items; i++) {
        const batch_item *it = &plan->items[i];
        const serve_req *r = it->req;
        sp->drafts[i] = sp->extra[i] = 0;
        tokens += it->tokens;
        if (r->state != REQ_RUNNING || !req_is_decode(r) || it->layers || it->tokens != 1)
            continue;
        int32_t cap = r->output_tokens - r->generated_tokens - 1;
        if (cap > s->k)
            cap = s->k;
        if (cap <= 0 || (s->method == SPEC_NGRAM && !ngram_match(sp, r)))
            continue;
        sp->cand[sp->n_cand] = r;
        sp->cand_item[sp->n_cand] = i;
        sp->cand_cap[sp->n_cand++] = cap;
    }
    memset(sp->cnt, 0, sizeof sp->cnt);
    memset(sp->ctx, 0, sizeof sp->ctx);
    if (!sp->n_cand)
        return;
    sp->view = v, sp->plan = plan, sp->base_ready = false;   /* base_shape on demand */
    spec_view sv = {.now = v->now, .k_max = s->k, .n_cand = sp->n_cand,
                    .cand = (const serve_req *const *)sp->cand, .cap = sp->cand_cap,
                    .positions_reached = sp->st.positions_reached,
                    .positions_accepted = sp->st.accepted_tokens,
                    .iter_ns = whatif_ns, .ctx = sp};
    int32_t k = s->policy->choose_k(sp->policy_state, &sv);
    SIM_ASSERT(k >= 0 && k <= s->k);
    memset(sp->cnt, 0, sizeof sp->cnt);
    memset(sp->ctx, 0, sizeof sp->ctx);
    int64_t budget = v->setup->max_batched_tokens - tokens;
    const int64_t block = v->setup->block_size_tokens;
    const int shift = block > 0 && (block & (block - 1)) == 0
                          ? __builtin_ctzll((unsigned long long)block) : -1;
    for (int32_t c = 0; c < sp->n_cand && k > 0 && budget > 0; c++) {
        batch_item *it = &plan->items[sp->cand_item[c]];
        const serve_req *r = it->req;
        int32_t d = k < sp->cand_cap[c] ? k : sp->cand_cap[c];
        while (d > 0 && verify_extra(s, d) > budget)
            d--;
        int32_t hold = it->reserve > it->tokens ? it->reserve : it->tokens;
        int32_t most = r->output_tokens - r->generated_tokens + 1;   /* pending + left */
        int64_t base = kv_need(v, r, hold), extra = 0;
        int32_t want = 0;
        for (; d > 0; d--) {
            want = 1 + verify_extra(s, d) + (s->lookahead ? d : 0);
            if (want > most)
                want = most;
            if (want <= hold) {
                extra = 0;
                break;
            }
            extra = kv_need(v, r, want) - base;
            if (extra <= kv_free(v))
                break;
        }
        if (d == 0)
            continue;
        v->kv->free_blocks -= extra;   /* the ledger's public count (api/batch.h) */
        if (want > hold)
            it->reserve = want;
        int32_t e = verify_extra(s, d);
        if (s->lookahead && want > 1 + e)   /* the blocks the lookahead adds */
            sp->st.lookahead_blocks +=
                (uint64_t)(blocks_of(r->computed_tokens + want, block, shift) -
                           blocks_of(r->computed_tokens + 1 + e, block, shift));
        budget -= e;
        int32_t i = sp->cand_item[c];
        sp->drafts[i] = d;
        sp->extra[i] = e;
        sp->acc[i] = draw_req(sp, r, d);
        sp->acc_gen[i] = r->generated_tokens;
        sp->cnt[d]++;
        sp->ctx[d] += r->computed_tokens;
    }
}

int32_t spec_item_drafts(const spec *sp, int32_t i)
{
    SIM_ASSERT(i >= 0 && i < sp->n_items);
    return sp->drafts[i];
}

int32_t spec_item_verify_extra(const spec *sp, int32_t i)
{
    SIM_ASSERT(i >= 0 && i < sp->n_items);
    return sp->extra[i];
}

const int32_t *spec_plan_extras(const spec *sp, int32_t n_items)
{
    SIM_ASSERT(n_items == sp->n_items);
    return sp->extra;
}

void spec_get_stats(const spec *sp, spec_stats *out)
{
    *out = sp->st;
    /* Steps that accepted position i + 1: those that accepted more than i. */
    uint64_t more = 0;
    for (int32_t a = SPEC_MAX_K; a >= 1; a--) {
        more += sp->acc_hist[a];
        if (a - 1 < SPEC_POS_METRICS)
            out->pos_accepted[a - 1] = more;
    }
}
