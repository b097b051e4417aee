/* Chunked prefill (Sarathi-Serve; DeepSpeed-FastGen's Dynamic SplitFuse;
 * vLLM V1 and SGLang by default).
 *
 * Every iteration has a token budget. Ongoing decodes go in first (one token
 * each; when one needs a KV block and none is free, the engine's victim rule
 * picks a running request to preempt). The rest of the budget goes to
 * prefill chunks: first to running requests whose prompt is partly
 * prefilled, oldest first, then to waiting requests in queue order, so a
 * long prompt is spread over several iterations and decodes never stall
 * behind it. What admitting a waiting request reserves is the engine's rule
 * (api/batch.h, batch_rules): vLLM and Sarathi-Serve reserve the whole
 * prompt (vLLM V1 checks that it fits), so that a prompt admitted in chunks
 * is not starved of KV by later admissions; servesim's original rule, the
 * first chunk only, over-admits under KV pressure and preempts far more.
 * Admission keeps the KV watermark free, and under vLLM V1's rule an
 * iteration that preempted admits nothing.
 *
 * Params: {"token_budget": <engine's>, "max_seqs": <instance.max_seqs>,
 *          "watermark_fraction": <engine's>}; max_seqs <= token_budget so
 * that the decodes always fit the budget. */
#include <stdlib.h>

#include "policies/common.h"
#include "sim/jsoncfg.h"

typedef struct chunked_state {
    int32_t budget, max_seqs;
    int64_t watermark_blocks;
} chunked_state;

static int chunked_init(const batch_setup *setup, cJSON *params, const char *path,
                        void **state, sim_err *err)
{
    static const char *const keys[] = {"token_budget", "max_seqs", "watermark_fraction",
                                       NULL};
    int64_t budget, max_seqs;
    double watermark;
    int32_t def_budget = setup->rules.token_budget;
    if (def_budget > setup->max_batched_tokens)
        def_budget = setup->max_batched_tokens;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_int(params, path, "token_budget", def_budget, 1, setup->max_batched_tokens,
                 &budget, err) ||
        jcfg_int(params, path, "max_seqs", setup->max_seqs < budget ? setup->max_seqs
                 : budget, 1, setup->max_seqs, &max_seqs, err) ||
        jcfg_num(params, path, "watermark_fraction", setup->rules.watermark_fraction, 0, 0.5,
                 &watermark, err))
        return -1;
    if (max_seqs > budget)
        return sim_errf(err, "%s.max_seqs: expected at most token_budget (%lld) so that "
                        "every decode fits the budget, got %lld", path,
                        (long long)budget, (long long)max_seqs);
    chunked_state *s = sim_xmalloc(sizeof *s);
    *s = (chunked_state){(int32_t)budget, (int32_t)max_seqs,
                         batch_watermark_blocks(setup, watermark)};
    *state = s;
    return 0;
}

/* Tokens r still has to compute, at most `budget`, that fit the free
 * blocks. */
static int32_t chunk_that_fits(const batch_view *v, const serve_req *r, int64_t budget)
{
    int64_t chunk = batch_todo_tokens(v, r), room = kv_room(v, r);
    if (chunk > budget)
        chunk = budget;
    if (chunk > room)
        chunk = room;
    return chunk > 0 ? (int32_t)chunk : 0;
}

static void chunked_form(void *state, const batch_view *v, batch_plan *plan)
{
    const chunked_state *s = state;
    int64_t budget = s->budget;
    int32_t kept = batch_plan_decodes(v, plan, &budget);
    /* Then the partly prefilled prompts, oldest first. With nothing else
     * to run, make room by preempting (the victim rule, among the others),
     * so the instance never stalls with KV held by half-prefilled prompts. */
    for (int32_t i = 0; i < v->n_running && budget > 0; i++) {
        const serve_req *r = v->running[i];
        if (req_is_decode(r) || batch_is_preempted(plan, r))
            continue;
        int32_t chunk = chunk_that_fits(v, r, budget);
        while (chunk == 0 && plan->n_items == 0) {
            int32_t j = batch_pick_victim(v, plan, i + 1);
            if (j < 0)
                break;
            batch_add_preempt(v, plan, v->running[j]);
            kept--;
            chunk = chunk_that_fits(v, r, budget);
        }
        if (chunk == 0)
            continue;
        plan->items[plan->n_items++] = (batch_item){r, chunk, 0, 0};
        kv_take(v, r, chunk);
        budget -= chunk;
    }
    /* Under vLLM V1's rule an iteration that preempted admits nothing (with
     * nothing else to run, vLLM would run an empty step and admit in the
     * next: admitting now is the same). */
    if (plan->n_preempt && !v->setup->rules.admit_after_preempt && plan->n_items)
        return;
    /* Then new requests, in queue order, while the budget, the sequence
     * limit and the KV (the engine's reservation and watermark) allow. */
    int32_t seqs = kept;
    for (const serve_req *r = batch_first_waiting(v); r && budget > 0 && seqs < s->max_seqs;
         r = req_next_waiting(r)) {
        int32_t todo = batch_todo_tokens(v, r);
        int32_t chunk = todo < budget ? todo : (int32_t)budget;
        if (!batch_try_admit(v, plan, kept, r, chunk, 0, s->watermark_blocks))
            break;
        budget -= chunk;
        seqs++;
    }
}

static void chunked_destroy(void *state) { free(state); }

const batch_policy_ops batch_chunked_prefill = {
    .name = "chunked_prefill",
    .init = chunked_init,
    .form = chunked_form,
    .destroy = chunked_destroy,
};
