/* SLO-aware chunked prefill: chunked prefill whose prefill budget goes to
 * the most urgent prompts first (earliest TTFT deadline), in the spirit of
 * SLOs-Serve and JITServe's deadline-driven token allocation
 * ([assume]: neither paper's exact allocation rule is reproduced here).
 *
 * Chunked prefill (batch_chunked.c) gives the budget left after the
 * decodes to the partly prefilled prompts, oldest first, then to waiting
 * requests in queue order: a long, loosely targeted prompt admitted first
 * takes the whole budget for many iterations while an interactive prompt
 * behind it misses its TTFT target. Here the partly prefilled prompts and
 * the first `lookahead` waiting requests are considered together, earliest
 * TTFT deadline first (then running before waiting, then the order they
 * had), so an urgent prompt takes its chunk from the next iteration on and
 * the long prompt keeps its progress (its KV stays; it only gets fewer
 * tokens): chunk-level preemption without recompute. A request's deadline
 * is its arrival plus its TTFT target (the run's slo.ttft_ms, 2 s by
 * default, when it has none of its own), so with no per-request targets the
 * order is arrival order: chunked prefill's, except that a request
 * preempted back to the queue ranks by its arrival among the partly
 * prefilled prompts, and late_last (below) once requests are late (the
 * tests find the same plans as chunked_prefill, late_last off, on busy and
 * KV-pressed runs).
 * With `late_last` (the default), prompts whose deadline has already passed
 * rank after every prompt still on time (SLOs-Serve-style: a request that
 * has missed its TTFT target gains nothing from going first and would make
 * the on-time ones miss too, EDF's domino effect under overload); they are
 * still served, by deadline, with what is left.
 * Decodes first, the engine's victim rule, reservation, watermark and
 * vLLM V1's no-admission-after-preemption rule as in chunked prefill.
 *
 * Params: {"token_budget": <engine's>, "max_seqs": <instance.max_seqs>,
 *          "watermark_fraction": <engine's>, "lookahead": 32, "late_last": true}. Cost per
 * plan: O((p + k) log(p + k)) for p partly prefilled prompts and k =
 * lookahead. */
#include <stdlib.h>

#include "policies/common.h"
#include "sim/jsoncfg.h"

typedef struct cand {
    batch_ranked at;    /* the request, and its index in v->running or -1 */
    int32_t rank;       /* running first (their order), then the queue's */
    int32_t late;       /* its deadline has passed (late_last) */
} cand;

typedef struct slo_chunked_state {
    int32_t budget, max_seqs, lookahead;
    bool late_last;
    int64_t watermark_blocks;
    cand *cands;
    int32_t cap;
} slo_chunked_state;

static int slo_chunked_init(const batch_setup *setup, cJSON *params, const char *path,
                            void **state, sim_err *err)
{
    static const char *const keys[] = {"token_budget", "max_seqs", "watermark_fraction",
                                       "lookahead", "late_last", NULL};
    int64_t budget, max_seqs, lookahead;
    double watermark;
    bool late_last;
    int32_t def_budget = setup->rules.token_budget;
    if (def_budget > setup->max_batched_tokens)
        def_budget = setup->max_batched_tokens;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_int(params, path, "token_budget", def_budget, 1, setup->max_batched_tokens,
                 &budget, err) ||
        jcfg_int(params, path, "max_seqs", setup->max_seqs < budget ? setup->max_seqs
                 : budget, 1, setup->max_seqs, &max_seqs, err) ||
        jcfg_num(params, path, "watermark_fraction", setup->rules.watermark_fraction, 0, 0.5,
                 &watermark, err) ||
        jcfg_int(params, path, "lookahead", 32, 1, 1 << 16, &lookahead, err) ||
        jcfg_bool(params, path, "late_last", true, &late_last, err))
        return -1;
    if (max_seqs > budget)
        return sim_errf(err, "%s.max_seqs: expected at most token_budget (%lld) so that "
                        "every decode fits the budget, got %lld", path,
                        (long long)budget, (long long)max_seqs);
    slo_chunked_state *s = sim_xmalloc(sizeof *s);
    *s = (slo_chunked_state){(int32_t)budget, (int32_t)max_seqs, (int32_t)lookahead,
                             late_last, batch_watermark_blocks(setup, watermark), NULL, 0};
    s->cap = setup->max_seqs + (int32_t)lookahead;
    s->cands = sim_xmalloc((size_t)s->cap * sizeof *s->cands);
    *state = s;
    return 0;
}

static int cand_cmp(const void *ap, const void *bp)
{
    const cand *a = ap, *b = bp;
    if (a->late != b->late)
        return a->late - b->late;
    if (a->at.r->ttft_deadline_ns != b->at.r->ttft_deadline_ns)
        return a->at.r->ttft_deadline_ns < b->at.r->ttft_deadline_ns ? -1 : 1;
    return (a->rank > b->rank) - (a->rank < b->rank);
}

static void slo_chunked_form(void *state, const batch_view *v, batch_plan *plan)
{
    slo_chunked_state *s = state;
    int64_t budget = s->budget;
    int32_t kept = batch_plan_decodes(v, plan, &budget);
    int32_t n = 0;
    for (int32_t i = 0; i < v->n_running && n < s->cap; i++) {
        const serve_req *r = v->running[i];
        if (!req_is_decode(r) && !batch_is_preempted(plan, r)) {
            s->cands[n] = (cand){{r, i}, n, s->late_last && r->ttft_deadline_ns <= v->now};
            n++;
        }
    }
    const serve_req *rest = batch_first_waiting(v);
    for (int32_t seen = 0; rest && seen < s->lookahead && n < s->cap;
         rest = req_next_waiting(rest), seen++) {
        s->cands[n] = (cand){{rest, -1}, n, s->late_last && rest->ttft_deadline_ns <= v->now};
        n++;
    }
    qsort(s->cands, (size_t)n, sizeof *s->cands, cand_cmp);
    /* Beyond the lookahead, the queue's order, as chunked prefill. */
    batch_fill_ranked(v, plan, s->cands, sizeof *s->cands, n, rest, kept, budget, s->max_seqs,
                      s->watermark_blocks);
}

static void slo_chunked_destroy(void *state)
{
    slo_chunked_state *s = state;
    if (s)
        free(s->cands);
    free(s);
}

const batch_policy_ops batch_slo_chunked = {
    .name = "slo_chunked",
    .init = slo_chunked_init,
    .form = slo_chunked_form,
    .destroy = slo_chunked_destroy,
};
