/* Layered prefill with layer-boundary preemption (in the spirit of
 * FlowPrefill, arXiv 2025: a running prefill yields to an urgent request at
 * an operator boundary and resumes later without recompute).
 *
 * Built on layered prefill (batch_layered.c): a prompt runs one group of
 * layers per iteration, so every iteration end is a layer-group boundary.
 * At each boundary the policy may park the cohort in flight (its requests
 * stay running, keep the KV of the layers they finished and their
 * layers_done progress, and simply take no tokens) and admit an urgent
 * cohort instead. The parked cohort resumes at the layer where it stopped
 * once the urgent one has produced its first tokens. The urgent cohort runs
 * its prompts whole, through every layer in one iteration (`urgent_whole`,
 * the default: FlowPrefill runs the urgent request's prefill at once), or
 * like any cohort, one group per iteration. Granularity is one
 * group: with groups = the model's layers, one layer (FlowPrefill stops at
 * any operator; servesim's granularity is the group, the reading of the
 * issue's "operator or layer boundary" that needs no new core machinery).
 *
 * Urgency (slack rule, [assume]: FlowPrefill's exact rule not read): a
 * waiting request w among the first `lookahead` of the queue preempts the
 * cohort in flight when (a) its TTFT deadline is earlier than every
 * deadline in the cohort, (b) it is not already late, and (c) waiting for
 * the cohort would make it late: now + (the cohort's groups left) x (the
 * last iteration's duration) > its deadline - `margin_ms`. The last
 * iteration's duration is measured: the time between the two latest plans
 * of a busy instance (0 before the first, which disables (c) once: a cohort
 * always runs its first group). Preemptions nest: an urgent cohort can be
 * preempted by a more urgent one, up to MAX_DEPTH levels; cohorts are told
 * apart by admission order (a cohort admitted after the preemption point is
 * the newer). Decodes run every iteration, as in layered prefill.
 *
 * Params: {"groups": 4, "max_prompts": 4, "watermark_fraction": <engine's>,
 *          "lookahead": 32, "margin_ms": 0, "urgent_whole": true}. As in layered prefill,
 * instance.max_batched_tokens must hold the longest prompt. Cost per plan:
 * O(running + lookahead). */
#include <stdlib.h>

#include "policies/common.h"
#include "sim/jsoncfg.h"

#define MAX_DEPTH 8

typedef struct preempt_state {
    int32_t groups, max_prompts, layers, lookahead;
    int64_t watermark_blocks;
    sim_time_ns margin_ns;
    bool urgent_whole;
    sim_time_ns last_plan_ns, last_iter_ns;   /* measured iteration length */
    /* Preemption points: the cohort in flight is the running prefills
     * admitted after the top point (admit_seq > it); when none are, the
     * point is popped and the cohort it parked resumes. */
    uint64_t points[MAX_DEPTH];
    int32_t depth;
} preempt_state;

static int preempt_init(const batch_setup *setup, cJSON *params, const char *path,
                        void **state, sim_err *err)
{
    static const char *const keys[] = {"groups", "max_prompts", "watermark_fraction",
                                       "lookahead", "margin_ms", "urgent_whole", NULL};
    int64_t groups, max_prompts, lookahead;
    double watermark, margin_ms;
    bool urgent_whole;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_int(params, path, "groups", 4 < setup->model_layers ? 4 : setup->model_layers,
                 1, setup->model_layers, &groups, err) ||
        jcfg_int(params, path, "max_prompts", 4 < setup->max_seqs ? 4 : setup->max_seqs, 1,
                 setup->max_seqs, &max_prompts, err) ||
        jcfg_num(params, path, "watermark_fraction", setup->rules.watermark_fraction, 0, 0.5,
                 &watermark, err) ||
        jcfg_int(params, path, "lookahead", 32, 1, 1 << 16, &lookahead, err) ||
        jcfg_num(params, path, "margin_ms", 0, 0, 1e6, &margin_ms, err) ||
        jcfg_bool(params, path, "urgent_whole", true, &urgent_whole, err))
        return -1;
    if (setup->max_batched_tokens < setup->max_context_tokens)
        return sim_errf(err, "%s: layered_preempt needs max_batched_tokens (%d) >= "
                        "max_context_tokens (%d), since a prompt runs whole",
                        path, setup->max_batched_tokens, setup->max_context_tokens);
    preempt_state *s = sim_xmalloc(sizeof *s);
    *s = (preempt_state){.groups = (int32_t)groups, .max_prompts = (int32_t)max_prompts,
                         .layers = setup->model_layers, .lookahead = (int32_t)lookahead,
                         .watermark_blocks = batch_watermark_blocks(setup, watermark),
                         .margin_ns = (sim_time_ns)(margin_ms * 1e6), .last_plan_ns = -1,
                         .urgent_whole = urgent_whole};
    *state = s;
    return 0;
}

/* The group index that starts after `done` layers (groups are the ranges
 * [k L / G, (k+1) L / G)), and its size. */
static int32_t group_index(const preempt_state *s, int32_t done)
{
    for (int32_t k = 0; k < s->groups; k++)
        if ((int64_t)k * s->layers / s->groups == done)
            return k;
    SIM_ASSERT(!"layered prefill progress off the group boundaries");
    return 0;
}

static int32_t group_layers(const preempt_state *s, int32_t done)
{
    int32_t k = group_index(s, done);
    return (int32_t)((int64_t)(k + 1) * s->layers / s->groups - done);
}

static bool is_prefill(const batch_plan *plan, const serve_req *r)
{
    return !req_is_decode(r) && !batch_is_preempted(plan, r);
}

/* Whether running prefill r belongs to the cohort in flight. */
static bool in_cohort(const preempt_state *s, const serve_req *r)
{
    return s->depth == 0 || r->admit_seq > s->points[s->depth - 1];
}

/* Whether waiting w should preempt a cohort with the given earliest
 * deadline and `left` groups to go. */
static bool urgent(const preempt_state *s, const batch_view *v, const serve_req *w,
                   sim_time_ns cohort_deadline, int32_t left)
{
    if (req_is_decode(w) || w->ttft_deadline_ns >= cohort_deadline ||
        w->ttft_deadline_ns <= v->now || s->last_iter_ns <= 0)
        return false;
    return v->now + (sim_time_ns)left * s->last_iter_ns > w->ttft_deadline_ns - s->margin_ns;
}

static void preempt_form(void *state, const batch_view *v, batch_plan *plan)
{
    preempt_state *s = state;
    const batch_setup *setup = v->setup;
    if (s->last_plan_ns >= 0 && v->n_running > 0)
        s->last_iter_ns = v->now - s->last_plan_ns;
    s->last_plan_ns = v->now;
    int64_t budget = setup->max_batched_tokens;
    int32_t last = batch_plan_decodes(v, plan, &budget);

    /* The cohort in flight: pop the points whose cohorts are done. */
    int32_t cohort = 0, left = 0;
    sim_time_ns deadline = INT64_MAX;
    uint64_t newest = 0;
    for (;;) {
        for (int32_t i = 0; i < v->n_running; i++) {
            const serve_req *r = v->running[i];
            if (r->admit_seq > newest)
                newest = r->admit_seq;
            if (!is_prefill(plan, r) || !in_cohort(s, r))
                continue;
            cohort++;
            if (r->ttft_deadline_ns < deadline)
                deadline = r->ttft_deadline_ns;
            int32_t l = s->groups - group_index(s, r->layers_done);
            if (l > left)
                left = l;
        }
        if (cohort || s->depth == 0)
            break;
        s->depth--;
    }
    /* Preempt at this boundary for the urgent requests near the front
     * (not in an iteration that preempted for KV under vLLM V1's rule). */
    int32_t urgent_n = 0;
    if (cohort && s->depth < MAX_DEPTH &&
        !(plan->n_preempt && !setup->rules.admit_after_preempt)) {
        int32_t seqs = last, seen = 0;
        for (const serve_req *w = batch_first_waiting(v);
             w && seen < s->lookahead && urgent_n < s->max_prompts && seqs < setup->max_seqs;
             w = req_next_waiting(w), seen++) {
            if (!urgent(s, v, w, deadline, left))
                continue;
            int32_t tokens = batch_todo_tokens(v, w);
            if (tokens > budget ||
                !batch_try_admit(v, plan, last, w, tokens,
                                 s->urgent_whole ? 0 : group_layers(s, 0),
                                 s->watermark_blocks))
                continue;
            budget -= tokens;
            urgent_n++;
            seqs++;
        }
        if (urgent_n) {   /* the cohort in flight is parked */
            s->points[s->depth++] = newest;
            return;
        }
    }
    /* Otherwise the cohort in flight moves on by one group. */
    for (int32_t i = 0; i < v->n_running; i++) {
        const serve_req *r = v->running[i];
        if (!is_prefill(plan, r) || !in_cohort(s, r))
            continue;
        int32_t tokens = req_pending_tokens(r);
        plan->items[plan->n_items++] =
            (batch_item){r, tokens, group_layers(s, r->layers_done), 0};
        kv_take(v, r, tokens);
        budget -= tokens;
    }
    if (cohort || (plan->n_preempt && !setup->rules.admit_after_preempt && plan->n_items))
        return;
    /* No cohort: admit the next one from the queue, whole prompts, through
     * the first group. A swapped-out decode re-enters as a decode. */
    int32_t seqs = last;
    for (const serve_req *r = batch_first_waiting(v);
         r && cohort < s->max_prompts && seqs < setup->max_seqs; r = req_next_waiting(r)) {
        int32_t tokens = batch_todo_tokens(v, r);
        int decode = req_is_decode(r);
        if (tokens > budget ||
            !batch_try_admit(v, plan, last, r, tokens, decode ? 0 : group_layers(s, 0),
                             s->watermark_blocks))
            break;
        budget -= tokens;
        cohort += !decode;
        seqs++;
    }
}

static void preempt_destroy(void *state) { free(state); }

const batch_policy_ops batch_layered_preempt = {
    .name = "layered_preempt",
    .init = preempt_init,
    .form = preempt_form,
    .destroy = preempt_destroy,
};
