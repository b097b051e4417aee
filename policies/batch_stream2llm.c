/* Stream2LLM's scheduler (streamed prompts; design reference
 * shared/specs/cluster-policies.md section F, read from the Stream2LLM
 * vLLM 0.8.1 fork, stream2llm/vllm/core/scheduler.py, per its CLAUDE.md).
 *
 * Each step orders every unfinished request of the instance (the running
 * ones and the first `lookahead` waiting ones), then grants the token
 * budget and KV blocks greedily in that order: a decode takes one token, a
 * prompt the tokens of it that have arrived and are not computed yet
 * (batch_todo_tokens: a streamed prompt never runs ahead of its context),
 * up to the budget. A request whose prompt waits for its next chunk takes
 * nothing and keeps its KV. When a granted request needs blocks that are
 * not free, running requests are preempted from the low end of the order.
 * Orders (`order`):
 *   "fcfs": complete prompts first, by arrival; then partial ones (still
 *           streaming) by arrival (Stream2LLM's FCFS serves partial prompts
 *           opportunistically);
 *   "lcas": complete then partial, each by its last chunk's arrival
 *           (last-chunk-arrival scheduling);
 *   "mcps": the most computed tokens first (then arrival).
 * Each victim recomputes if that is cheaper than swapping its KV to host
 * memory and back (`victim` "cost", Stream2LLM's rule; s2l_victim), or
 * follows the engine's preemption mode ("engine").
 * [assume]: decodes rank as complete requests in every order.
 *
 * With `whole` (the baseline Stream2LLM compares with) a streamed prompt
 * is not started until all of it has arrived, as if the client sent it
 * whole after its last chunk; its TTFT still counts from its first chunk.
 *
 * The one built-in policy with `streams` (api/batch.h): a run with
 * streamed prompts needs it. Params: {"order": "fcfs", "token_budget":
 * <engine's; Stream2LLM's 8192>, "max_seqs": <instance.max_seqs>,
 * "lookahead": 256, "watermark_fraction": <engine's>, "whole": false,
 * "victim": "cost"}. Cost per plan:
 * O((r + k) log(r + k)) for r running and k = lookahead. */
#include <stdlib.h>
#include <string.h>

#include "policies/common.h"
#include "sim/jsoncfg.h"

enum { S2L_FCFS, S2L_LCAS, S2L_MCPS };

typedef struct s2l_cand {
    const serve_req *r;
    int32_t running;    /* index in v->running, or -1 */
    int32_t rank;
    int64_t k1, k2;     /* the order's keys, lowest first */
} s2l_cand;

typedef struct s2l_state {
    int order;
    bool whole;         /* the baseline: a prompt starts once all of it is in */
    bool victim_cost;   /* victims recompute or swap, whichever costs less */
    int32_t budget, max_seqs, lookahead;
    int64_t watermark_blocks;
    s2l_cand *cands;
    int32_t cap;
} s2l_state;

static int s2l_init(const batch_setup *setup, cJSON *params, const char *path, void **state,
                    sim_err *err)
{
    static const char *const keys[] = {"order", "token_budget", "max_seqs", "lookahead",
                                       "watermark_fraction", "whole", "victim", NULL};
    static const char *const orders[] = {"fcfs", "lcas", "mcps", NULL};
    const char *order, *victim;
    int64_t budget, max_seqs, lookahead;
    double watermark;
    bool whole;
    int32_t def_budget = setup->rules.token_budget;
    if (def_budget > setup->max_batched_tokens)
        def_budget = setup->max_batched_tokens;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_str(params, path, "order", "fcfs", &order, err) ||
        jcfg_int(params, path, "token_budget", def_budget, 1, setup->max_batched_tokens,
                 &budget, err) ||
        jcfg_int(params, path, "max_seqs", setup->max_seqs < budget ? setup->max_seqs : budget,
                 1, setup->max_seqs, &max_seqs, err) ||
        jcfg_int(params, path, "lookahead", 256, 1, 1 << 16, &lookahead, err) ||
        jcfg_num(params, path, "watermark_fraction", setup->rules.watermark_fraction, 0, 0.5,
                 &watermark, err) ||
        jcfg_bool(params, path, "whole", false, &whole, err) ||
        jcfg_str(params, path, "victim", "cost", &victim, err))
        return -1;
    if (strcmp(victim, "cost") && strcmp(victim, "engine"))
        return sim_errf(err, "%s.victim: expected \"cost\" or \"engine\", got \"%s\"", path,
                        victim);
    int k = 0;
    while (orders[k] && strcmp(orders[k], order))
        k++;
    if (!orders[k])
        return sim_errf(err, "%s.order: expected \"fcfs\", \"lcas\" or \"mcps\", got \"%s\"",
                        path, order);
    s2l_state *s = sim_xcalloc(1, sizeof *s);
    s->order = k;
    s->whole = whole;
    s->victim_cost = !strcmp(victim, "cost");
    s->budget = (int32_t)budget;
    s->max_seqs = (int32_t)max_seqs;
    s->lookahead = (int32_t)lookahead;
    s->watermark_blocks = batch_watermark_blocks(setup, watermark);
    s->cap = setup->max_seqs + (int32_t)lookahead;
    s->cands = sim_xmalloc((size_t)s->cap * sizeof *s->cands);
    *state = s;
    return 0;
}

/* Candidates sort by (k1, k2, rank): the order's keys, computed once. */
static int s2l_cmp(const void *ap, const void *bp)
{
    const s2l_cand *a = ap, *b = bp;
    if (a->k1 != b->k1)
        return a->k1 < b->k1 ? -1 : 1;
    if (a->k2 != b->k2)
        return a->k2 < b->k2 ? -1 : 1;
    return (a->rank > b->rank) - (a->rank < b->rank);
}

static s2l_cand s2l_make(const s2l_state *s, const serve_req *r, int32_t running,
                         int32_t rank)
{
    s2l_cand c = {r, running, rank, 0, 0};
    if (s->order == S2L_MCPS) {
        c.k1 = -(int64_t)r->computed_tokens;
        c.k2 = r->arrival_ns;
    } else {
        c.k1 = r->unarrived_tokens > 0;
        c.k2 = s->order == S2L_LCAS ? r->last_chunk_ns : r->arrival_ns;
    }
    return c;
}

/* Tokens r takes now: a decode one, a prompt what has arrived, at most
 * `budget`. */
static int32_t s2l_want(const batch_view *v, const serve_req *r, int64_t budget)
{
    int32_t t = req_is_decode(r) ? 1 : batch_todo_tokens(v, r);
    return t < budget ? t : (int32_t)budget;
}

/* Stream2LLM's victim rule: recompute if T_recomp(n) < T_swap(n) for its
 * n computed tokens ([assume]: its fitted polynomials replaced by the cost
 * model's prefill time and the PCIe links' copy time, out and back). */
static int s2l_victim(const batch_view *v, const serve_req *r)
{
    int32_t n = r->computed_tokens;
    if (!v->prefill_ns || v->swap_ns_per_token <= 0 || n <= 0)
        return BATCH_PREEMPT_DEFAULT;
    double recompute = v->prefill_ns(v->prefill_ctx, n, 0), swap = v->swap_ns_per_token * n;
    return recompute < swap ? BATCH_PREEMPT_RECOMPUTE : BATCH_PREEMPT_SWAP;
}

static void s2l_form(void *state, const batch_view *v, batch_plan *plan)
{
    s2l_state *s = state;
    int32_t n = 0;
    for (int32_t i = 0; i < v->n_running && n < s->cap; i++, n++)
        s->cands[n] = s2l_make(s, v->running[i], i, n);
    const serve_req *w = batch_first_waiting(v);
    for (int32_t seen = 0; w && seen < s->lookahead && n < s->cap;
         w = req_next_waiting(w), seen++, n++)
        s->cands[n] = s2l_make(s, w, -1, n);
    qsort(s->cands, (size_t)n, sizeof *s->cands, s2l_cmp);

    int64_t budget = s->budget;
    int32_t kept = v->n_running, seqs = v->n_running;
    for (int32_t c = 0; c < n && budget > 0; c++) {
        const serve_req *r = s->cands[c].r;
        if (s->cands[c].running >= 0 && batch_is_preempted(plan, r))
            continue;
        int32_t want = s->whole && r->unarrived_tokens ? 0 : s2l_want(v, r, budget);
        if (want <= 0)
            continue;   /* waiting for its next chunk */
        if (s->cands[c].running >= 0) {
            /* Room by preempting running requests from the low end. */
            for (int32_t j = n - 1; j > c && kv_need(v, r, want) > kv_free(v); j--)
                if (s->cands[j].running >= 0 && !batch_is_preempted(plan, s->cands[j].r)) {
                    batch_add_preempt(v, plan, s->cands[j].r);
                    if (s->victim_cost)
                        plan->preempt_how[plan->n_preempt - 1] = (int8_t)s2l_victim(v, s->cands[j].r);
                    kept--, seqs--;
                }
            if (kv_need(v, r, want) > kv_free(v)) {
                int64_t room = kv_room(v, r);
                if (req_is_decode(r) || room <= 0)
                    continue;
                want = (int32_t)room;
            }
            plan->items[plan->n_items++] = (batch_item){r, want, 0, 0};
            kv_take(v, r, want);
            budget -= want;
            continue;
        }
        if (seqs >= s->max_seqs)
            continue;
        if (plan->n_preempt && !v->setup->rules.admit_after_preempt && plan->n_items)
            continue;
        if (!batch_try_admit(v, plan, kept, r, want, 0, s->watermark_blocks))
            continue;
        budget -= want;
        seqs++;
    }
}

static void s2l_destroy(void *state)
{
    s2l_state *s = state;
    if (s)
        free(s->cands);
    free(s);
}

const batch_policy_ops batch_stream2llm = {
    .name = "stream2llm",
    .init = s2l_init,
    .form = s2l_form,
    .destroy = s2l_destroy,
    .streams = true,
};
