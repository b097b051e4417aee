/* Operator-level prefill preemption (FlowPrefill, arXiv 2025; design
 * reference: shared/specs/cluster-policies.md section F).
 *
 * FlowPrefill runs on a prefill-only instance, schedules on arrival and
 * completion events, and may stop a running prefill batch at any operator
 * boundary; the stopped requests keep the KV of their finished layers and
 * resume where they stopped, with no recompute. Here:
 *
 *  - Planning (every iteration end): prefill first. The candidates are the
 *    running prefills (stopped ones among them) and the first `lookahead`
 *    waiting requests; the one with the least TTFT slack goes first, with
 *    the requests at the same layer progress as its cohort (a plan's items
 *    all run the same layers: api/batch.h), most urgent first, up to
 *    `max_prompts` prompts and max_batched_tokens. Each prompt runs whole,
 *    through all the layers it has left, in one iteration (FlowPrefill does
 *    not chunk; it preempts on demand). With no prefill to run, the decodes
 *    run (vLLM's prefill-first rule: on a colocated instance decodes wait
 *    for prefills, as under vllm_prefill_first).
 *  - Cutting (every arrival while an iteration runs, the `cut` hook): the
 *    arrival cuts the iteration at the next operator (`granularity` "op",
 *    the default, FlowPrefill's) or layer ("layer") boundary when it is
 *    more urgent than every request in flight and would be late waiting
 *    for the iteration's end (rule "slack", the default), or whenever its
 *    deadline is earlier than every in-flight one (rule "deadline").
 *    Granularity "none" never cuts (the same planning without preemption:
 *    an ablation).
 *
 * Slack ([assume]: the design reference's reading, FlowPrefill's exact rule
 * not read): slack(r) = deadline(r) - now - predicted remaining prefill(r);
 * the prediction is r's pending tokens x the layers it has left / the
 * model's layers x the time per prompt token, measured from the instance's
 * own prefill iterations (the latest iteration's time over its tokens, per
 * full pass; [assume] linear in tokens, which leaves out attention's
 * quadratic part). Until one is measured the prediction is 0 (slack is the
 * time to the deadline). A request in flight finishes at the iteration's
 * end, so its slack there is deadline - end - its layers left after it.
 * With `late_last` (default true, SLOs-Serve's rule as in slo_chunked,
 * [assume] for FlowPrefill) requests whose slack is already negative rank
 * after the others and never cut an iteration: going first would not save
 * them and would make others late.
 *
 * Params: {"granularity": "op", "rule": "slack", "max_prompts": 8,
 *          "lookahead": 64, "margin_ms": 0, "late_last": true,
 *          "watermark_fraction": <engine's>}. As in layered prefill,
 *          instance.max_batched_tokens must hold the longest prompt. Cost per
 *          plan: O((running + lookahead) log); per arrival while busy:
 *          O(in-flight items). */
#include <stdio.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/common.h"
#include "sim/jsoncfg.h"

typedef struct opp_cand {
    const serve_req *r;
    double slack;
    int32_t late;       /* late_last: its slack is negative */
    int32_t running;    /* 1: running (first among equals) */
    uint64_t tie;       /* admission order or queue position */
} opp_cand;

typedef struct opp_state {
    batch_cut granularity;
    bool rule_slack, late_last;
    int32_t max_prompts, lookahead, layers;
    int64_t watermark_blocks;
    sim_time_ns margin_ns;
    double ns_per_token;    /* one prompt token through every layer */
    /* The latest plan, to measure its time at the next one. */
    sim_time_ns plan_ns;
    double plan_token_passes;   /* tokens x layers / model layers; 0: not prefill */
    double plan_work_ns;        /* the plan's predicted prefill time */
    bool was_cut;               /* the latest plan's iteration was cut */
    opp_cand *cands;
    int32_t cap;
} opp_state;

/* A string parameter that must be one of names[]: its index in *out. */
static int opp_enum(cJSON *params, const char *path, const char *key,
                    const char *const *names, int def, int *out, sim_err *err)
{
    const char *v;
    if (jcfg_str(params, path, key, names[def], &v, err))
        return -1;
    for (int i = 0; names[i]; i++)
        if (!strcmp(v, names[i])) {
            *out = i;
            return 0;
        }
    char list[128] = "";
    for (int i = 0; names[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"", i ? ", " : "",
                 names[i]);
    return sim_errf(err, "%s.%s: expected one of %s, got \"%s\"", path, key, list, v);
}

static int opp_init(const batch_setup *setup, cJSON *params, const char *path, void **state,
                    sim_err *err)
{
    static const char *const keys[] = {"granularity", "rule", "max_prompts", "lookahead",
                                       "margin_ms", "late_last", "watermark_fraction", NULL};
    static const char *const grans[] = {"none", "layer", "op", NULL};
    static const char *const rules[] = {"slack", "deadline", NULL};
    int gran, rule;
    int64_t max_prompts, lookahead;
    double margin_ms, watermark;
    bool late_last;
    if (jcfg_check_keys(params, path, keys, err) ||
        opp_enum(params, path, "granularity", grans, 2, &gran, err) ||
        opp_enum(params, path, "rule", rules, 0, &rule, err) ||
        jcfg_int(params, path, "max_prompts", 8 < setup->max_seqs ? 8 : setup->max_seqs, 1,
                 setup->max_seqs, &max_prompts, err) ||
        jcfg_int(params, path, "lookahead", 64, 1, 1 << 16, &lookahead, err) ||
        jcfg_num(params, path, "margin_ms", 0, 0, 1e6, &margin_ms, err) ||
        jcfg_bool(params, path, "late_last", true, &late_last, err) ||
        jcfg_num(params, path, "watermark_fraction", setup->rules.watermark_fraction, 0, 0.5,
                 &watermark, err))
        return -1;
    if (setup->max_batched_tokens < setup->max_context_tokens)
        return sim_errf(err, "%s: op_preempt needs max_batched_tokens (%d) >= "
                        "max_context_tokens (%d), since a prompt runs whole",
                        path, setup->max_batched_tokens, setup->max_context_tokens);
    opp_state *s = sim_xcalloc(1, sizeof *s);
    s->granularity = gran == 2 ? BATCH_CUT_OP : gran == 1 ? BATCH_CUT_LAYER : BATCH_CUT_NONE;
    s->rule_slack = rule == 0;
    s->late_last = late_last;
    s->max_prompts = (int32_t)max_prompts;
    s->lookahead = (int32_t)lookahead;
    s->layers = setup->model_layers;
    s->watermark_blocks = batch_watermark_blocks(setup, watermark);
    s->margin_ns = (sim_time_ns)(margin_ms * 1e6);
    s->plan_ns = -1;
    *state = s;
    return 0;
}

/* Predicted time to finish r's prefill from now, run alone. */
static double predict_ns(const opp_state *s, const serve_req *r, int32_t tokens)
{
    return s->ns_per_token * tokens * (double)(s->layers - r->layers_done) / s->layers;
}

static int cand_cmp(const void *a, const void *b)
{
    const opp_cand *x = a, *y = b;
    if (x->late != y->late)
        return x->late - y->late;
    if (x->slack != y->slack)
        return x->slack < y->slack ? -1 : 1;
    if (x->running != y->running)
        return y->running - x->running;
    return x->tie < y->tie ? -1 : x->tie > y->tie;
}

static void add_cand(opp_state *s, int32_t *n, const serve_req *r, double slack, int running,
                     uint64_t tie)
{
    if (*n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->cands = sim_xrealloc(s->cands, (size_t)s->cap * sizeof *s->cands);
    }
    s->cands[(*n)++] = (opp_cand){r, slack, s->late_last && slack < 0, running, tie};
}

static void opp_form(void *state, const batch_view *v, batch_plan *plan)
{
    opp_state *s = state;
    const batch_setup *setup = v->setup;
    /* Measure the latest prefill iteration (the time between two plans of a
     * busy instance: an idle gap shows as a longer one, so only the shorter
     * of old and new is kept when both exist). */
    if (s->plan_token_passes > 0 && s->plan_ns >= 0 && v->now > s->plan_ns && !s->was_cut) {
        double per = (double)(v->now - s->plan_ns) / s->plan_token_passes;
        s->ns_per_token = s->ns_per_token > 0 && per > s->ns_per_token * 4 ? s->ns_per_token
                                                                           : per;
    }
    s->plan_ns = v->now;
    s->was_cut = false;
    s->plan_token_passes = 0;
    s->plan_work_ns = 0;

    /* The candidates: running prefills, then the front of the queue. */
    int32_t n = 0;
    for (int32_t i = 0; i < v->n_running; i++) {
        const serve_req *r = v->running[i];
        if (req_is_decode(r))
            continue;
        double slack = (double)(r->ttft_deadline_ns - v->now) -
                       predict_ns(s, r, req_pending_tokens(r));
        add_cand(s, &n, r, slack, 1, r->admit_seq);
    }
    int32_t seen = 0;
    for (const serve_req *w = batch_first_waiting(v); w && seen < s->lookahead;
         w = req_next_waiting(w), seen++) {
        if (req_is_decode(w))
            continue;
        double slack = (double)(w->ttft_deadline_ns - v->now) -
                       predict_ns(s, w, batch_todo_tokens(v, w));
        add_cand(s, &n, w, slack, 0, (uint64_t)seen);
    }
    if (n > 1)
        qsort(s->cands, (size_t)n, sizeof *s->cands, cand_cmp);

    /* The most urgent candidate that can run sets the cohort's progress. */
    int64_t budget = setup->max_batched_tokens;
    int32_t cohort_done = -1, prompts = 0, seqs = v->n_running;
    double room_ns = INFINITY;   /* the leader's time to its deadline, once chosen */
    for (int32_t i = 0; i < n && prompts < s->max_prompts; i++) {
        const serve_req *r = s->cands[i].r;
        if (cohort_done >= 0 && r->layers_done != cohort_done)
            continue;
        /* Others join the leader only while the batch still ends before
         * the leader's deadline (as predicted): a long prompt, stopped for
         * an urgent one, must not ride along with it ([assume]: FlowPrefill
         * sizes batches by the most urgent request's slack). */
        int32_t want = r->state == REQ_RUNNING ? req_pending_tokens(r) : batch_todo_tokens(v, r);
        double work = predict_ns(s, r, want);
        if (cohort_done >= 0 && s->plan_work_ns + work > room_ns)
            continue;
        if (r->state == REQ_RUNNING) {
            int32_t tokens = req_pending_tokens(r);
            if (tokens > budget || kv_need(v, r, tokens) > kv_free(v))
                continue;
            plan->items[plan->n_items++] =
                (batch_item){r, tokens, s->layers - r->layers_done, 0};
            kv_take(v, r, tokens);
            budget -= tokens;
        } else {
            int32_t tokens = batch_todo_tokens(v, r);
            if (seqs >= setup->max_seqs || tokens > budget ||
                !batch_try_admit(v, plan, v->n_running, r, tokens, s->layers,
                                 s->watermark_blocks))
                continue;
            budget -= tokens;
            seqs++;
        }
        if (cohort_done < 0 && !s->cands[i].late)
            room_ns = (double)(r->ttft_deadline_ns - v->now);
        s->plan_work_ns += work;
        cohort_done = r->layers_done;
        prompts++;
        s->plan_token_passes += (double)plan->items[plan->n_items - 1].tokens *
                                plan->items[plan->n_items - 1].layers / s->layers;
    }
    if (plan->n_items)
        return;
    /* No prefill can run: the decodes, then waiting ones (moved in, handed
     * off or swapped out) in queue order (vLLM V1's rule: not in an
     * iteration that preempted). */
    budget = setup->max_batched_tokens;
    int32_t last = batch_plan_decodes(v, plan, &budget);
    if (plan->n_preempt && !setup->rules.admit_after_preempt)
        return;
    seqs = last;
    for (const serve_req *w = batch_first_waiting(v); w && seqs < setup->max_seqs && budget > 0;
         w = req_next_waiting(w)) {
        if (!req_is_decode(w))
            continue;
        if (!batch_try_admit(v, plan, last, w, 1, 0, s->watermark_blocks))
            break;
        budget--;
        seqs++;
    }
}

static batch_cut opp_cut(void *state, const batch_view *v, const batch_flight *f,
                         const serve_req *arrived)
{
    opp_state *s = state;
    if (f->tokens > 0 && f->end_ns > f->start_ns)
        s->ns_per_token = (double)(f->end_ns - f->start_ns) / (double)f->tokens *
                          s->layers / f->layers_run;
    if (req_is_decode(arrived) || s->granularity == BATCH_CUT_NONE)
        return BATCH_CUT_NONE;
    const batch_cut_point *p = s->granularity == BATCH_CUT_OP ? &f->op : &f->layer;
    if (!p->possible)
        return BATCH_CUT_NONE;
    double need = predict_ns(s, arrived, req_pending_tokens(arrived));
    double slack = (double)(arrived->ttft_deadline_ns - v->now) - need;
    if (s->late_last && slack < 0)
        return BATCH_CUT_NONE;
    /* Waiting for the end must make it late (rule slack) ... */
    if (s->rule_slack &&
        (double)f->end_ns + need <= (double)(arrived->ttft_deadline_ns - s->margin_ns))
        return BATCH_CUT_NONE;
    /* ... and it must be more urgent than every request in flight that is
     * not already late. */
    for (int32_t i = 0; i < f->n_items; i++) {
        const serve_req *r = f->items[i].req;
        double left = predict_ns(s, r, f->items[i].tokens) *
                      (double)(s->layers - r->layers_done - f->layers_run) /
                      (double)(s->layers - r->layers_done);
        double their = (double)(r->ttft_deadline_ns - f->end_ns) - left;
        if (s->late_last && their < 0)
            continue;
        if (s->rule_slack ? their <= slack : r->ttft_deadline_ns <= arrived->ttft_deadline_ns)
            return BATCH_CUT_NONE;
    }
    s->was_cut = true;
    return s->granularity;
}

static void opp_destroy(void *state)
{
    opp_state *s = state;
    free(s->cands);
    free(s);
}

const batch_policy_ops batch_op_preempt = {
    .name = "op_preempt",
    .init = opp_init,
    .form = opp_form,
    .destroy = opp_destroy,
    .cut = opp_cut,
};
