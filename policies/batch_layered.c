/* Layered prefill (arXiv 2510.08055, "From Tokens to Layers").
 *
 * The model's layers are split into G contiguous groups. Every iteration
 * runs the decodes through all layers and the prompts being prefilled (a
 * cohort of up to max_prompts, admitted together) through one group, so a
 * prompt's first token comes after exactly G iterations, decodes never stall
 * behind a whole prefill, and, unlike chunked prefill, each prompt passes
 * through every layer's weights once: a MoE model loads each expert once per
 * prompt rather than once per chunk. A new cohort is admitted when the
 * previous one has finished its G groups. KV for a whole prompt is reserved
 * when it is admitted. When a decode needs a KV block and none is free, the
 * newest running request is preempted, as in vLLM.
 *
 * Params: {"groups": 4, "max_prompts": 4, "watermark_fraction": <engine's>}. The
 * iteration's tokens (decodes plus whole prompts) stay within
 * instance.max_batched_tokens, which must hold the longest prompt. */
#include <stdlib.h>

#include "policies/common.h"
#include "sim/jsoncfg.h"

typedef struct layered_state {
    int32_t groups, max_prompts, layers;
    int64_t watermark_blocks;
} layered_state;

static int layered_init(const batch_setup *setup, cJSON *params, const char *path,
                        void **state, sim_err *err)
{
    static const char *const keys[] = {"groups", "max_prompts", "watermark_fraction",
                                       NULL};
    int64_t groups, max_prompts;
    double watermark;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_int(params, path, "groups", 4 < setup->model_layers ? 4 : setup->model_layers,
                 1, setup->model_layers, &groups, err) ||
        jcfg_int(params, path, "max_prompts", 4 < setup->max_seqs ? 4 : setup->max_seqs, 1,
                 setup->max_seqs, &max_prompts, err) ||
        jcfg_num(params, path, "watermark_fraction", setup->rules.watermark_fraction, 0, 0.5,
                 &watermark, err))
        return -1;
    if (setup->max_batched_tokens < setup->max_context_tokens)
        return sim_errf(err, "%s: layered prefill needs max_batched_tokens (%d) >= "
                        "max_context_tokens (%d), since a prompt runs whole",
                        path, setup->max_batched_tokens, setup->max_context_tokens);
    layered_state *s = sim_xmalloc(sizeof *s);
    *s = (layered_state){(int32_t)groups, (int32_t)max_prompts, setup->model_layers,
                         batch_watermark_blocks(setup, watermark)};
    *state = s;
    return 0;
}

/* Layers in the group that starts after `done` layers: groups are the
 * ranges [k L / G, (k+1) L / G), so they differ in size by at most one. */
static int32_t next_group_layers(const layered_state *s, int32_t done)
{
    for (int32_t k = 0; k < s->groups; k++)
        if ((int64_t)k * s->layers / s->groups == done)
            return (int32_t)((int64_t)(k + 1) * s->layers / s->groups - done);
    SIM_ASSERT(!"layered prefill progress off the group boundaries");
    return 0;
}

static void layered_form(void *state, const batch_view *v, batch_plan *plan)
{
    const layered_state *s = state;
    const batch_setup *setup = v->setup;
    int64_t budget = setup->max_batched_tokens;
    int32_t last = batch_plan_decodes(v, plan, &budget);
    /* The cohort in flight moves on by one group; its KV is reserved. */
    int32_t cohort = 0;
    for (int32_t i = 0; i < v->n_running; i++) {
        const serve_req *r = v->running[i];
        if (req_is_decode(r) || batch_is_preempted(plan, r))
            continue;
        int32_t tokens = req_pending_tokens(r);
        plan->items[plan->n_items++] =
            (batch_item){r, tokens, next_group_layers(s, r->layers_done), 0};
        kv_take(v, r, tokens);
        budget -= tokens;
        cohort++;
    }
    /* Under vLLM V1's rule an iteration that preempted admits nothing (with
     * nothing else to run, vLLM would run an empty step and admit in the
     * next: admitting now is the same). */
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
            !batch_try_admit(v, plan, last, r, tokens, decode ? 0 : next_group_layers(s, 0),
                             s->watermark_blocks))
            break;
        budget -= tokens;
        cohort += !decode;
        seqs++;
    }
}

static void layered_destroy(void *state) { free(state); }

const batch_policy_ops batch_layered_prefill = {
    .name = "layered_prefill",
    .init = layered_init,
    .form = layered_form,
    .destroy = layered_destroy,
};
