/* vLLM's default scheduler (v0, no chunked prefill): prefill first.
 *
 * Each iteration either prefills or decodes, never both. If waiting requests
 * can be admitted (their whole pending prompt fits the token budget, the
 * sequence limit and the free KV blocks less a small watermark), the
 * iteration prefills as many of them as fit, in queue order, stopping at the
 * first that does not. Otherwise every running request decodes one token;
 * when a decode needs a new KV block and none is free, the most recently
 * admitted running request is preempted (its KV recomputed or swapped, as
 * instance.preemption says), repeatedly, until
 * the block fits or the request itself was the one preempted.
 *
 * What admission reserves is the engine's rule (api/batch.h): the whole
 * prompt is computed at once, so only TensorRT-LLM's rule, which reserves
 * the output too, differs.
 *
 * Params: {"watermark_fraction": <engine's>} (share of KV blocks kept free
 * at admission, as vLLM does, so that running requests can grow). */
#include <stdlib.h>

#include "policies/common.h"
#include "sim/jsoncfg.h"

typedef struct vllm_state {
    int64_t watermark_blocks;
} vllm_state;

static int vllm_init(const batch_setup *setup, cJSON *params, const char *path,
                     void **state, sim_err *err)
{
    static const char *const keys[] = {"watermark_fraction", NULL};
    double watermark;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_num(params, path, "watermark_fraction", setup->rules.watermark_fraction, 0, 0.5,
                 &watermark, err))
        return -1;
    /* Without chunking a prompt must fit in one iteration's token budget. */
    if (setup->max_batched_tokens < setup->max_context_tokens)
        return sim_errf(err, "%s: prefill-first needs max_batched_tokens (%d) >= "
                        "max_context_tokens (%d), since prompts are not split",
                        path, setup->max_batched_tokens, setup->max_context_tokens);
    vllm_state *s = sim_xmalloc(sizeof *s);
    s->watermark_blocks = batch_watermark_blocks(setup, watermark);
    *state = s;
    return 0;
}

static int32_t admit_prefills(const vllm_state *s, const batch_view *v, batch_plan *plan)
{
    const batch_setup *setup = v->setup;
    int64_t budget = setup->max_batched_tokens;
    int32_t seqs = v->n_running;
    for (const serve_req *r = batch_first_waiting(v); r; r = req_next_waiting(r)) {
        int32_t tokens = batch_todo_tokens(v, r);
        if (tokens > budget || seqs >= setup->max_seqs ||
            !batch_try_admit(v, plan, v->n_running, r, tokens, 0, s->watermark_blocks))
            break;
        budget -= tokens;
        seqs++;
    }
    return plan->n_items;
}

static void vllm_form(void *state, const batch_view *v, batch_plan *plan)
{
    if (v->n_waiting && admit_prefills(state, v, plan))
        return;
    int64_t budget = v->setup->max_batched_tokens;
    batch_plan_decodes(v, plan, &budget);
}

static void vllm_destroy(void *state) { free(state); }

const batch_policy_ops batch_vllm_prefill_first = {
    .name = "vllm_prefill_first",
    .init = vllm_init,
    .form = vllm_form,
    .destroy = vllm_destroy,
};
