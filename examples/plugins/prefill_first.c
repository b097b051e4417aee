/* A second example plugin, for the two families with richer views: a batch
 * formation policy and a cluster controller, each a copy of a built-in
 * (they reproduce its results bit for bit: tests/test_plugin.c). Built by
 * `make` into build/plugins/libprefill_first.so; name them as
 *
 *   "policies": {"batch":   {"name": "prefill_first:prefill_first_copy"},
 *                "control": {"name": "prefill_first:balance_copy", "period_ms": 100}}
 *
 *   prefill_first_copy  batch: policies/batch_vllm.c (vLLM V0's prefill first),
 *                       with the shared helpers of policies/common.c it uses
 *                       copied in, since a plugin includes api/ only
 *   balance_copy        controller: policies/control_balance_queues.c
 *
 * A batch policy never computes KV blocks itself: it asks the plan's ledger
 * (kv_need, kv_take, kv_preempt in api/batch.h) and follows the engine's
 * rules the setup carries (what admission reserves, the victim rule). */
#include <stdlib.h>

#include "api/plugin.h"

SERVESIM_PLUGIN_ABI;

static const servesim_host_api *host;

/* ---- the helpers (policies/common.c) --------------------------------------------- */

static bool is_preempted(const batch_plan *plan, const serve_req *r)
{
    for (int32_t i = 0; i < plan->n_preempt; i++)
        if (plan->preempt[i] == r)
            return true;
    return false;
}

static bool fewer_outputs(const serve_req *a, const serve_req *b)
{
    if (a->generated_tokens != b->generated_tokens)
        return a->generated_tokens < b->generated_tokens;
    if (a->input_tokens != b->input_tokens)
        return a->input_tokens > b->input_tokens;
    return a->admit_seq > b->admit_seq;
}

/* The engine's victim among running[from..] not yet preempted, or -1. */
static int32_t pick_victim(const batch_view *v, const batch_plan *plan, int32_t from)
{
    int32_t best = -1;
    for (int32_t j = v->n_running - 1; j >= from; j--) {
        const serve_req *r = v->running[j];
        if (is_preempted(plan, r))
            continue;
        if (v->setup->rules.victim == BATCH_VICTIM_NEWEST)
            return j;
        if (best < 0 || fewer_outputs(r, v->running[best]))
            best = j;
    }
    return best;
}

/* One token for every decoding request, preempting by the victim rule when
 * a decode finds no KV block. */
static void plan_decodes(const batch_view *v, batch_plan *plan, int64_t budget)
{
    for (int32_t i = 0; i < v->n_running && budget > 0; i++) {
        const serve_req *r = v->running[i];
        if (!req_is_decode(r) || is_preempted(plan, r))
            continue;
        bool self = false;
        while (kv_need(v, r, 1) > kv_free(v) && !self) {
            int32_t j = pick_victim(v, plan, i);
            plan->preempt[plan->n_preempt++] = v->running[j];
            kv_preempt(v, v->running[j]);
            self = j == i;
        }
        if (self)
            break;
        plan->items[plan->n_items++] = (batch_item){r, 1, 0, 0};
        kv_take(v, r, 1);
        budget--;
    }
}

/* Admits waiting r if what the engine's rule reserves fits. */
static bool try_admit(const batch_view *v, batch_plan *plan, const serve_req *r,
                      int32_t tokens, int64_t watermark_blocks)
{
    int32_t want = batch_admit_tokens(v, r, tokens);
    if (!batch_admit_fits(v, plan, v->n_running, kv_need(v, r, want), watermark_blocks))
        return false;
    int32_t take = v->setup->rules.reserve_check_only ? tokens : want;
    plan->items[plan->n_items++] = (batch_item){r, tokens, 0, take > tokens ? take : 0};
    kv_take(v, r, take);
    return true;
}

/* ---- prefill_first_copy ---------------------------------------------------------- */

typedef struct pf_state {
    int64_t watermark_blocks;
} pf_state;

static int pf_init(const batch_setup *setup, cJSON *params, const char *path, void **state,
                   sim_err *err)
{
    static const char *const keys[] = {"watermark_fraction", NULL};
    double watermark;
    if (host->check_keys(params, path, keys, err) ||
        host->num(params, path, "watermark_fraction", setup->rules.watermark_fraction, 0, 0.5,
                  &watermark, err))
        return -1;
    if (setup->max_batched_tokens < setup->max_context_tokens)
        return host->errf(err, "%s: prefill-first needs max_batched_tokens (%d) >= "
                          "max_context_tokens (%d), since prompts are not split",
                          path, setup->max_batched_tokens, setup->max_context_tokens);
    pf_state *s = malloc(sizeof *s);
    if (!s)
        return host->errf(err, "%s: out of memory", path);
    s->watermark_blocks = (int64_t)(watermark * (double)setup->kv_total_blocks);
    *state = s;
    return 0;
}

static void pf_form(void *state, const batch_view *v, batch_plan *plan)
{
    const pf_state *s = state;
    int64_t budget = v->setup->max_batched_tokens;
    int32_t seqs = v->n_running;
    for (const serve_req *r = v->n_waiting ? batch_first_waiting(v) : NULL; r;
         r = req_next_waiting(r)) {
        int32_t tokens = batch_todo_tokens(v, r);
        if (tokens > budget || seqs >= v->setup->max_seqs ||
            !try_admit(v, plan, r, tokens, s->watermark_blocks))
            break;
        budget -= tokens;
        seqs++;
    }
    if (plan->n_items)
        return;
    plan_decodes(v, plan, v->setup->max_batched_tokens);
}

static void pf_destroy(void *state) { free(state); }

static const batch_policy_ops prefill_first_copy = {
    .name = "prefill_first_copy",
    .init = pf_init,
    .form = pf_form,
    .destroy = pf_destroy,
};

/* ---- balance_copy ---------------------------------------------------------------- */

typedef struct bq_state {
    int32_t threshold, max_moves;
} bq_state;

static int bq_init(const control_setup *setup, cJSON *params, const char *path, void **state,
                   sim_err *err)
{
    (void)setup;
    static const char *const keys[] = {"threshold", "max_moves", NULL};
    int64_t threshold, max_moves;
    if (host->check_keys(params, path, keys, err) ||
        host->integer(params, path, "threshold", 4, 1, 1 << 30, &threshold, err) ||
        host->integer(params, path, "max_moves", 16, 1, 4096, &max_moves, err))
        return -1;
    bq_state *s = malloc(sizeof *s);
    if (!s)
        return host->errf(err, "%s: out of memory", path);
    *s = (bq_state){(int32_t)threshold, (int32_t)max_moves};
    *state = s;
    return 0;
}

static void bq_tick(void *state, const control_view *v, control_plan *plan)
{
    const bq_state *s = state;
    for (int32_t k = 0; k < v->n_pools; k++) {
        const pool_view *p = &v->pools[k];
        int32_t longest = -1, shortest = -1;
        for (int32_t m = 0; m < p->n_instances; m++) {
            int32_t i = p->instances[m];
            if (v->inst[i].state != INST_ACTIVE)
                continue;
            if (longest < 0 || v->inst[i].n_waiting > v->inst[longest].n_waiting)
                longest = i;
            if (shortest < 0 || v->inst[i].n_waiting < v->inst[shortest].n_waiting)
                shortest = i;
        }
        if (longest < 0 || longest == shortest)
            continue;
        int32_t len = v->inst[longest].n_waiting, gap = len - v->inst[shortest].n_waiting;
        if (gap <= s->threshold)
            continue;
        int32_t moves = gap / 2 < s->max_moves ? gap / 2 : s->max_moves;
        int32_t pos = 0;
        for (const serve_req *r = v->waiting_first(v, longest); r; r = req_next_waiting(r)) {
            if (pos++ < len - moves || r->computed_tokens > 0)
                continue;
            if (!control_add(plan, (control_action){.kind = CTRL_MOVE, .req = r,
                                                    .to = shortest,
                                                    .mode = MOVE_RECOMPUTE}))
                return;
        }
    }
}

static void bq_destroy(void *state) { free(state); }

static const control_policy_ops balance_copy = {
    .name = "balance_copy",
    .init = bq_init,
    .tick = bq_tick,
    .destroy = bq_destroy,
};

/* ---- the entry point ------------------------------------------------------------- */

static const batch_policy_ops *const batches[] = {&prefill_first_copy, NULL};
static const control_policy_ops *const controls[] = {&balance_copy, NULL};

SERVESIM_EXPORT const servesim_plugin *servesim_plugin_entry(const servesim_host_api *h)
{
    static const servesim_plugin plugin = {
        SERVESIM_PLUGIN_HEADER,
        .name = "prefill_first",
        .version = "1.0",
        .batch = batches,
        .control = controls,
    };
    host = h;
    return &plugin;
}
