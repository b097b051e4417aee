/* What several built-in policies share (see common.h). */
#include "policies/common.h"
#include "sim/jsoncfg.h"

bool batch_is_preempted(const batch_plan *plan, const serve_req *r)
{
    for (int32_t i = 0; i < plan->n_preempt; i++)
        if (plan->preempt[i] == r)
            return true;
    return false;
}

/* Whether a is a better victim than b under the fewest-outputs rule. */
static bool fewer_outputs(const serve_req *a, const serve_req *b)
{
    if (a->generated_tokens != b->generated_tokens)
        return a->generated_tokens < b->generated_tokens;
    if (a->input_tokens != b->input_tokens)
        return a->input_tokens > b->input_tokens;
    return a->admit_seq > b->admit_seq;
}

int32_t batch_pick_victim(const batch_view *v, const batch_plan *plan, int32_t from)
{
    int32_t best = -1;
    for (int32_t j = v->n_running - 1; j >= from; j--) {
        const serve_req *r = v->running[j];
        if (batch_is_preempted(plan, r))
            continue;
        if (v->setup->rules.victim == BATCH_VICTIM_NEWEST)
            return j;
        if (best < 0 || fewer_outputs(r, v->running[best]))
            best = j;
    }
    return best;
}

void batch_add_preempt(const batch_view *v, batch_plan *plan, const serve_req *r)
{
    plan->preempt[plan->n_preempt++] = r;
    kv_preempt(v, r);
}

int32_t batch_plan_decodes(const batch_view *v, batch_plan *plan, int64_t *budget)
{
    for (int32_t i = 0; i < v->n_running && *budget > 0; i++) {
        if (i + 4 < v->n_running)   /* running requests are scattered in memory */
            __builtin_prefetch(v->running[i + 4]);
        const serve_req *r = v->running[i];
        if (!req_is_decode(r) || batch_is_preempted(plan, r))
            continue;
        bool self = false;
        while (kv_need(v, r, 1) > kv_free(v) && !self) {
            int32_t j = batch_pick_victim(v, plan, i);
            SIM_ASSERT(j >= i);   /* r itself is a candidate */
            batch_add_preempt(v, plan, v->running[j]);
            self = j == i;
        }
        if (self)   /* r itself was preempted */
            break;
        plan->items[plan->n_items++] = (batch_item){r, 1, 0, 0};
        kv_take(v, r, 1);
        --*budget;
    }
    return v->n_running - plan->n_preempt;
}

bool batch_try_admit(const batch_view *v, batch_plan *plan, int32_t running_kept,
                     const serve_req *r, int32_t tokens, int32_t layers,
                     int64_t watermark_blocks)
{
    int32_t want = batch_admit_tokens(v, r, tokens);
    if (!batch_admit_fits(v, plan, running_kept, kv_need(v, r, want), watermark_blocks))
        return false;
    int32_t take = v->setup->rules.reserve_check_only ? tokens : want;
    plan->items[plan->n_items++] = (batch_item){r, tokens, layers, take > tokens ? take : 0};
    kv_take(v, r, take);
    return true;
}

int64_t batch_watermark_blocks(const batch_setup *setup, double fraction)
{
    return (int64_t)(fraction * (double)setup->kv_total_blocks);
}

int order_no_params(uint64_t seed, cJSON *params, const char *path, void **state,
                    sim_err *err)
{
    (void)seed;
    static const char *const keys[] = {NULL};
    *state = NULL;
    return jcfg_check_keys(params, path, keys, err);
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

/* Under vLLM V1's rule an iteration that preempted admits nothing (with
 * nothing else to run, admitting now is the same as vLLM's empty step). */
static bool may_admit(const batch_view *v, const batch_plan *plan)
{
    return !(plan->n_preempt && !v->setup->rules.admit_after_preempt && plan->n_items);
}

void batch_fill_ranked(const batch_view *v, batch_plan *plan, const void *ranked, size_t stride,
                       int32_t n, const serve_req *rest, int32_t kept, int64_t budget,
                       int32_t max_seqs, int64_t watermark_blocks)
{
    int32_t seqs = kept;
    bool admitting = true;
    for (int32_t c = 0; c < n && budget > 0; c++) {
        const batch_ranked *e = (const batch_ranked *)((const char *)ranked + (size_t)c * stride);
        const serve_req *r = e->r;
        if (e->running >= 0) {
            if (batch_is_preempted(plan, r))
                continue;
            int32_t chunk = chunk_that_fits(v, r, budget);
            while (chunk == 0 && plan->n_items == 0) {
                int32_t j = batch_pick_victim(v, plan, e->running + 1);
                if (j < 0)
                    break;
                batch_add_preempt(v, plan, v->running[j]);
                kept--, seqs--;
                chunk = chunk_that_fits(v, r, budget);
            }
            if (chunk == 0)
                continue;
            plan->items[plan->n_items++] = (batch_item){r, chunk, 0, 0};
            kv_take(v, r, chunk);
            budget -= chunk;
            continue;
        }
        if (!admitting || seqs >= max_seqs || !may_admit(v, plan))
            continue;
        int32_t todo = batch_todo_tokens(v, r);
        int32_t chunk = todo < budget ? todo : (int32_t)budget;
        if (!batch_try_admit(v, plan, kept, r, chunk, 0, watermark_blocks)) {
            admitting = false;
            continue;
        }
        budget -= chunk;
        seqs++;
    }
    for (; rest && admitting && budget > 0 && seqs < max_seqs && may_admit(v, plan);
         rest = req_next_waiting(rest)) {
        int32_t todo = batch_todo_tokens(v, rest);
        int32_t chunk = todo < budget ? todo : (int32_t)budget;
        if (!batch_try_admit(v, plan, kept, rest, chunk, 0, watermark_blocks))
            break;
        budget -= chunk;
        seqs++;
    }
}
