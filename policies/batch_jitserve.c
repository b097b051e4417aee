/* JITServe (SLO-aware scheduling with imprecise output-length predictions;
 * design reference shared/specs/cluster-policies.md section F, read from
 * jitserve/scheduler/policy.py and request_analyzer/prediction.py).
 *
 * Each request's output length is predicted as a quantile (`quantile`,
 * 0.95 by default, JITServe's QRF) of a predictive distribution: lognormal,
 * its median the true length x exp(`error` x z), z a standard normal drawn
 * from (the run's seed, the request's id), so a request keeps its draw
 * wherever it runs and runs are deterministic ([assume]: the predictor's
 * error modelled as sjf_predicted's log-normal noise plus the quantile's
 * bias, as the design reference says). As tokens come out the prediction
 * is refined: the quantile of the length given that it exceeds the tokens
 * generated, and never below generated + 1.
 *
 * Priority = reward / remain, remain = t_iter x (L-hat - generated), with
 * the reward of its class (policies/jitserve.h, jit_reward): latency class
 * (the default) or deadline class (slo_class listed in `deadline_classes`).
 * A request's end-to-end budget D is its trace deadline (deadline_ms) or,
 * with none, its TTFT target + `tpot_ms` x L-hat ([assume]: JITServe's
 * latency class has a TTFT and a TPOT target). served = now - arrival
 * ([assume]: "t_served" read as time in the system). t_iter is measured:
 * the time between plans of a busy instance, smoothed (0.8 old, 0.2 new,
 * starting from `t_iter_ms`). The calls of a multi-call group (its
 * call_group) share one priority: the sum of their rewards over the largest
 * remain among them (JITServe's multi-call rule). Priorities are computed
 * every `every` iterations (50, JITServe's) for the running requests and the
 * first `lookahead` waiting ones; a request seen in between gets its own
 * then (its group's share at the next recomputation).
 *
 * Batch formation is chunked prefill's (token budget, decodes first, the
 * engine's victim rule, reservation and watermark): the prefill budget goes
 * to the running partial prefills and the first `lookahead` waiting
 * requests in priority order, highest first (ties: running first, then
 * their order); beyond the lookahead, queue order. JITServe's preemption of
 * running requests for priority is not modelled (only for KV, by the
 * engine's rule).
 *
 * Params: {"token_budget": <engine's>, "max_seqs": <instance.max_seqs>,
 *          "watermark_fraction": <engine's>, "lookahead": 64, "quantile": 0.95,
 *          "error": 0.5, "every": 50, "t_iter_ms": 20, "tpot_ms": 100, "p": 1,
 *          "output_weight": 8, "deadline_weight": 1, "deadline_classes": []}.
 * Cost per plan: O((r + k) log(r + k)) for r running and k = lookahead. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_cdf.h>

#include "policies/common.h"
#include "policies/jitserve.h"
#include "sim/engine.h"
#include "sim/jsoncfg.h"

#define JIT_MAX_DEADLINE_CLASSES 64

double jit_predict_tokens(int32_t true_tokens, double z, double error, double quantile,
                          int32_t generated)
{
    double floor_tokens = (double)generated + 1;
    if (error <= 0)
        return true_tokens > floor_tokens ? true_tokens : floor_tokens;
    double median = true_tokens * exp(error * z);
    double lo = 0;   /* F(generated): the predictive CDF below what is out */
    if (generated > 0)
        lo = gsl_cdf_ugaussian_P(log((double)generated / median) / error);
    double u = lo + quantile * (1 - lo);
    if (u >= 1 - 1e-12)
        return floor_tokens;
    double x = median * exp(error * gsl_cdf_ugaussian_Pinv(u));
    return x > floor_tokens ? x : floor_tokens;
}

static double capped_pow(double ratio, double p)
{
    return pow(ratio < 1 ? ratio : 1, p);
}

double jit_reward(const jit_req_terms *t, double p, double output_weight,
                  double deadline_weight)
{
    double on_time = capped_pow(t->deadline_ns / (t->served_ns + t->remain_ns), p);
    if (t->kind == JIT_DEADLINE)
        return (t->input_tokens + deadline_weight * t->predicted_tokens) * on_time;
    return t->input_tokens * capped_pow(t->ttft_slo_ns / (t->served_ns + t->iter_ns), p) +
           output_weight * t->predicted_tokens * on_time;
}

typedef struct jit_ent {
    batch_ranked at;    /* the request, and its index in v->running or -1 */
    double reward, remain, prio;
    int32_t rank;       /* candidates: running first (their order), then the queue's */
} jit_ent;

typedef struct jit_slot {
    uint64_t key;       /* request id + 1; 0: empty */
    double prio;
} jit_slot;

typedef struct jit_state {
    int32_t budget, max_seqs, lookahead, every;
    int64_t watermark_blocks;
    double quantile, error, tpot_ns, p, output_weight, deadline_weight;
    int32_t deadline_classes[JIT_MAX_DEADLINE_CLASSES];
    int32_t n_deadline_classes;
    uint64_t seed;
    double iter_ns;
    sim_time_ns last_plan_ns;
    bool last_busy;
    uint64_t plans;
    jit_ent *ents;      /* all requests ranked this plan */
    int32_t ent_cap;
    jit_slot *map;      /* priorities computed since the last recomputation */
    size_t map_cap, map_n;
} jit_state;

static int jit_init(const batch_setup *setup, cJSON *params, const char *path, void **state,
                    sim_err *err)
{
    static const char *const keys[] = {"token_budget", "max_seqs", "watermark_fraction",
                                       "lookahead", "quantile", "error", "every", "t_iter_ms",
                                       "tpot_ms", "p", "output_weight", "deadline_weight",
                                       "deadline_classes", NULL};
    int64_t budget, max_seqs, lookahead, every;
    double watermark, quantile, error, t_iter_ms, tpot_ms, p, ow, dw;
    int32_t def_budget = setup->rules.token_budget;
    if (def_budget > setup->max_batched_tokens)
        def_budget = setup->max_batched_tokens;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_int(params, path, "token_budget", def_budget, 1, setup->max_batched_tokens,
                 &budget, err) ||
        jcfg_int(params, path, "max_seqs", setup->max_seqs < budget ? setup->max_seqs : budget,
                 1, setup->max_seqs, &max_seqs, err) ||
        jcfg_num(params, path, "watermark_fraction", setup->rules.watermark_fraction, 0, 0.5,
                 &watermark, err) ||
        jcfg_int(params, path, "lookahead", 64, 1, 1 << 16, &lookahead, err) ||
        jcfg_num(params, path, "quantile", 0.95, 0.01, 0.999, &quantile, err) ||
        jcfg_num(params, path, "error", 0.5, 0, 5, &error, err) ||
        jcfg_int(params, path, "every", 50, 1, 1 << 20, &every, err) ||
        jcfg_num(params, path, "t_iter_ms", 20, 0.001, 1e5, &t_iter_ms, err) ||
        jcfg_num(params, path, "tpot_ms", 100, 0, 1e6, &tpot_ms, err) ||
        jcfg_num(params, path, "p", 1, 0, 16, &p, err) ||
        jcfg_num(params, path, "output_weight", 8, 0, 1e6, &ow, err) ||
        jcfg_num(params, path, "deadline_weight", 1, 0, 1e6, &dw, err))
        return -1;
    if (max_seqs > budget)
        return sim_errf(err, "%s.max_seqs: expected at most token_budget (%lld) so that "
                        "every decode fits the budget, got %lld", path,
                        (long long)budget, (long long)max_seqs);
    jit_state *s = sim_xcalloc(1, sizeof *s);
    cJSON *dc = cJSON_GetObjectItemCaseSensitive(params, "deadline_classes");
    if (dc) {
        const cJSON *e;
        if (!cJSON_IsArray(dc) || cJSON_GetArraySize(dc) > JIT_MAX_DEADLINE_CLASSES) {
            free(s);
            return sim_errf(err, "%s.deadline_classes: expected an array of at most %d "
                            "slo_class numbers", path, JIT_MAX_DEADLINE_CLASSES);
        }
        cJSON_ArrayForEach(e, dc) {
            if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 65535 ||
                e->valuedouble != floor(e->valuedouble)) {
                int32_t at = s->n_deadline_classes;
                free(s);
                return sim_errf(err, "%s.deadline_classes[%d]: expected an slo_class in "
                                "[0, 65535]", path, at);
            }
            s->deadline_classes[s->n_deadline_classes++] = (int32_t)e->valuedouble;
        }
    }
    s->budget = (int32_t)budget;
    s->max_seqs = (int32_t)max_seqs;
    s->lookahead = (int32_t)lookahead;
    s->every = (int32_t)every;
    s->watermark_blocks = batch_watermark_blocks(setup, watermark);
    s->quantile = quantile;
    s->error = error;
    s->tpot_ns = tpot_ms * 1e6;
    s->p = p;
    s->output_weight = ow;
    s->deadline_weight = dw;
    s->seed = setup->seed;
    s->iter_ns = t_iter_ms * 1e6;
    s->last_plan_ns = -1;
    s->ent_cap = setup->max_seqs + (int32_t)lookahead;
    s->ents = sim_xmalloc((size_t)s->ent_cap * sizeof *s->ents);
    *state = s;
    return 0;
}

/* ---- the priorities computed since the last recomputation ----------------- */

static size_t map_home(const jit_state *s, uint64_t key)
{
    return (size_t)(sim_stream_seed(0, key) & (s->map_cap - 1));
}

static bool map_get(const jit_state *s, uint64_t id, double *prio)
{
    if (!s->map_cap)
        return false;
    for (size_t i = map_home(s, id + 1);; i = (i + 1) & (s->map_cap - 1)) {
        if (s->map[i].key == id + 1) {
            *prio = s->map[i].prio;
            return true;
        }
        if (!s->map[i].key)
            return false;
    }
}

static void map_put(jit_state *s, uint64_t id, double prio);

static void map_grow(jit_state *s)
{
    jit_slot *old = s->map;
    size_t cap = s->map_cap;
    s->map_cap = cap ? 2 * cap : 256;
    s->map = sim_xcalloc(s->map_cap, sizeof *s->map);
    s->map_n = 0;
    for (size_t i = 0; i < cap; i++)
        if (old[i].key)
            map_put(s, old[i].key - 1, old[i].prio);
    free(old);
}

static void map_put(jit_state *s, uint64_t id, double prio)
{
    if (2 * (s->map_n + 1) > s->map_cap)
        map_grow(s);
    size_t i = map_home(s, id + 1);
    while (s->map[i].key && s->map[i].key != id + 1)
        i = (i + 1) & (s->map_cap - 1);
    s->map_n += !s->map[i].key;
    s->map[i] = (jit_slot){id + 1, prio};
}

static void map_clear(jit_state *s)
{
    if (s->map_n)
        memset(s->map, 0, s->map_cap * sizeof *s->map);
    s->map_n = 0;
}

/* ---- one request's terms ------------------------------------------------------ */

static bool deadline_class(const jit_state *s, int32_t slo_class)
{
    for (int32_t i = 0; i < s->n_deadline_classes; i++)
        if (s->deadline_classes[i] == slo_class)
            return true;
    return false;
}

/* The request's standard normal draw, a function of (seed, id) alone. */
static double draw_z(const jit_state *s, uint64_t id)
{
    uint64_t h = sim_stream_seed(s->seed ^ UINT64_C(0x4A49545345525645), id);
    double u = ((double)(h >> 11) + 0.5) / 9007199254740992.0;
    return gsl_cdf_ugaussian_Pinv(u);
}

static void rank_one(const jit_state *s, sim_time_ns now, jit_ent *e)
{
    const serve_req *r = e->at.r;
    double lhat = jit_predict_tokens(r->output_tokens, draw_z(s, r->id), s->error, s->quantile,
                                     r->generated_tokens);
    double ttft = (double)(r->ttft_deadline_ns - r->arrival_ns);
    jit_req_terms t = {
        .kind = deadline_class(s, r->slo_class) ? JIT_DEADLINE : JIT_LATENCY,
        .input_tokens = r->input_tokens,
        .predicted_tokens = lhat,
        .served_ns = (double)(now - r->arrival_ns),
        .iter_ns = s->iter_ns,
        .remain_ns = s->iter_ns * (lhat - r->generated_tokens),
        .ttft_slo_ns = ttft,
        .deadline_ns = r->deadline_ns ? (double)(r->deadline_ns - r->arrival_ns)
                                      : ttft + s->tpot_ns * lhat,
    };
    e->reward = jit_reward(&t, s->p, s->output_weight, s->deadline_weight);
    e->remain = t.remain_ns;
    e->prio = e->reward / e->remain;
}

static int group_cmp(const void *ap, const void *bp)
{
    const jit_ent *a = ap, *b = bp;
    if (a->at.r->call_group != b->at.r->call_group)
        return a->at.r->call_group < b->at.r->call_group ? -1 : 1;
    return a->at.r->id < b->at.r->id ? -1 : a->at.r->id > b->at.r->id;
}

/* Recomputation: every request ranked, a group's calls sharing sum(reward)
 * / max(remain). */
static void recompute(jit_state *s, const batch_view *v, const batch_plan *plan)
{
    map_clear(s);
    int32_t n = 0;
    for (int32_t i = 0; i < v->n_running && n < s->ent_cap; i++)
        if (!batch_is_preempted(plan, v->running[i]))
            s->ents[n++] = (jit_ent){.at = {v->running[i], i}};
    const serve_req *w = batch_first_waiting(v);
    for (int32_t seen = 0; w && seen < s->lookahead && n < s->ent_cap;
         w = req_next_waiting(w), seen++)
        s->ents[n++] = (jit_ent){.at = {w, -1}};
    for (int32_t i = 0; i < n; i++)
        rank_one(s, v->now, &s->ents[i]);
    qsort(s->ents, (size_t)n, sizeof *s->ents, group_cmp);
    for (int32_t i = 0; i < n;) {
        int32_t j = i + 1;
        double reward = s->ents[i].reward, remain = s->ents[i].remain;
        while (s->ents[i].at.r->call_group && j < n &&
               s->ents[j].at.r->call_group == s->ents[i].at.r->call_group) {
            reward += s->ents[j].reward;
            if (s->ents[j].remain > remain)
                remain = s->ents[j].remain;
            j++;
        }
        for (int32_t k = i; k < j; k++)
            map_put(s, s->ents[k].at.r->id, j - i > 1 ? reward / remain : s->ents[k].prio);
        i = j;
    }
}

static double priority_of(jit_state *s, sim_time_ns now, const serve_req *r)
{
    double prio;
    if (map_get(s, r->id, &prio))
        return prio;
    jit_ent e = {.at = {r, -1}};
    rank_one(s, now, &e);
    map_put(s, r->id, e.prio);
    return e.prio;
}

/* ---- batch formation (slo_chunked's, ranked by priority) --------------------------- */

static int prio_cmp(const void *ap, const void *bp)
{
    const jit_ent *a = ap, *b = bp;
    if (a->prio != b->prio)
        return a->prio > b->prio ? -1 : 1;
    return (a->rank > b->rank) - (a->rank < b->rank);
}

static void jit_form(void *state, const batch_view *v, batch_plan *plan)
{
    jit_state *s = state;
    if (s->last_busy && s->last_plan_ns >= 0 && v->now > s->last_plan_ns) {
        double dt = (double)(v->now - s->last_plan_ns);
        if (dt < 10 * s->iter_ns)   /* not an idle gap */
            s->iter_ns = 0.8 * s->iter_ns + 0.2 * dt;
    }
    s->last_plan_ns = v->now;
    int64_t budget = s->budget;
    int32_t kept = batch_plan_decodes(v, plan, &budget);
    if (s->plans++ % (uint64_t)s->every == 0)
        recompute(s, v, plan);

    int32_t n = 0;
    for (int32_t i = 0; i < v->n_running && n < s->ent_cap; i++) {
        const serve_req *r = v->running[i];
        if (!req_is_decode(r) && !batch_is_preempted(plan, r)) {
            s->ents[n] = (jit_ent){.at = {r, i}, .rank = n,
                                   .prio = priority_of(s, v->now, r)};
            n++;
        }
    }
    const serve_req *rest = batch_first_waiting(v);
    for (int32_t seen = 0; rest && seen < s->lookahead && n < s->ent_cap;
         rest = req_next_waiting(rest), seen++) {
        s->ents[n] = (jit_ent){.at = {rest, -1}, .rank = n,
                               .prio = priority_of(s, v->now, rest)};
        n++;
    }
    qsort(s->ents, (size_t)n, sizeof *s->ents, prio_cmp);
    batch_fill_ranked(v, plan, s->ents, sizeof *s->ents, n, rest, kept, budget, s->max_seqs,
                      s->watermark_blocks);
    s->last_busy = plan->n_items > 0;
}

static void jit_destroy(void *state)
{
    jit_state *s = state;
    if (!s)
        return;
    free(s->ents);
    free(s->map);
    free(s);
}

const batch_policy_ops batch_jitserve = {
    .name = "jitserve",
    .init = jit_init,
    .form = jit_form,
    .destroy = jit_destroy,
};
