/* Batch formation: the policy family that decides, before every iteration
 * of one serving instance, which requests run and how many of their pending
 * tokens, and which running requests to preempt for KV space.
 *
 * The core owns all state. A policy reads a batch_view and fills a
 * batch_plan; the core checks and applies it (frees the preempted requests'
 * KV and puts them back in the waiting queue at their ordering key's place
 * (under FCFS, ahead of every later arrival), admits waiting
 * requests that the plan schedules, allocates KV, runs the iteration).
 * A plan must fit: its tokens within max_batched_tokens, its sequences within
 * max_seqs, and its KV growth within the free blocks (after preemptions).
 * A plan that does not fit is a policy bug and aborts the run.
 *
 * Adding a policy: one file policies/batch_<name>.c defining a
 * `const batch_policy_ops batch_<name>` and one line in policies/list.def. */
#ifndef API_BATCH_H
#define API_BATCH_H

#include <math.h>
#include <stdbool.h>
#include <cjson/cJSON.h>
#include "api/request.h"

/* The serving engine's scheduling rules (its profile, models/engines/):
 * what admitting a waiting request reserves, the KV watermark, which
 * running request a KV shortage preempts, whether an iteration that
 * preempted may admit, and the defaults of policy parameters. A policy
 * reads them from its setup; parameters given in the config win. */
typedef enum batch_reserve {
    BATCH_RESERVE_CHUNK,     /* the KV of the tokens it computes now */
    BATCH_RESERVE_PROMPT,    /* the KV of its whole pending prompt (vLLM,
                              * Sarathi-Serve), whatever it computes now */
    BATCH_RESERVE_REQUEST,   /* its prompt and output_reserve_fraction of the
                              * output it has left (TensorRT-LLM, SGLang) */
} batch_reserve;

typedef enum batch_victim {
    BATCH_VICTIM_NEWEST,           /* the most recently admitted (vLLM) */
    BATCH_VICTIM_FEWEST_OUTPUTS,   /* the fewest output tokens, then the longest
                                    * prompt, then the newest (SGLang) */
} batch_victim;

typedef struct batch_rules {
    batch_reserve reserve;
    /* Only check that the reservation fits (the free blocks less the
     * watermark) and take the KV of the tokens computed now (vLLM V1's
     * full-prompt admission check); otherwise the reservation is taken. */
    bool reserve_check_only;
    double output_reserve_fraction;   /* BATCH_RESERVE_REQUEST, in [0, 1] */
    double watermark_fraction;        /* default of the policies' watermark */
    batch_victim victim;
    bool admit_after_preempt;         /* vLLM V1: false */
    int32_t token_budget;             /* default budget of chunking policies */
} batch_rules;

/* Fixed for the instance's lifetime. */
typedef struct batch_setup {
    int32_t max_batched_tokens;
    int32_t max_seqs;
    int32_t block_size_tokens;
    int64_t kv_total_blocks;
    int32_t max_context_tokens;   /* the model's */
    int32_t model_layers;         /* for policies that split the layers */
    batch_rules rules;            /* the engine's */
    /* The run's seed (appended in ABI 1.1), for policies that draw random
     * numbers: keyed by (seed, request id), a draw is the same wherever the
     * request runs. */
    uint64_t seed;
} batch_setup;

/* The instance as the policy sees it, read-only. */
typedef struct batch_view {
    sim_time_ns now;
    const batch_setup *setup;
    const sim_rb_tree *waiting;       /* the queue: batch_first_waiting, then
                                       * req_next_waiting, front first */
    int32_t n_waiting;
    const serve_req *const *running;  /* admission order, oldest first */
    int32_t n_running;
    struct batch_kv *kv;              /* the plan's KV ledger (below) */
    /* Appended in ABI 1.1, for policies that choose how each victim gives
     * up its KV (batch_plan.preempt_how): the time to prefill q tokens after
     * c computed ones in one iteration (the cost model's; NULL in a cut
     * call), and the time to copy one token's KV to host memory and back
     * over the instance's PCIe links (0: no host memory for swapping). */
    double (*prefill_ns)(void *ctx, int32_t q_tokens, int32_t ctx_tokens);
    void *prefill_ctx;
    double swap_ns_per_token;
} batch_view;

typedef struct batch_item {
    const serve_req *req;   /* from waiting or running */
    /* Tokens to compute, 1..batch_todo_tokens(view, req): its pending
     * tokens less, for a waiting request, what the prefix cache holds. */
    int32_t tokens;
    /* Layers to run the tokens through this iteration; 0 means all. With
     * fewer (layered prefill), the tokens count as computed only once their
     * layers add up to the model's (req->layers_done tracks the progress),
     * and `tokens` must be all the tokens left to compute every time. Every
     * partial item of one plan runs through the same number of layers. */
    int32_t layers;
    /* KV to hold from now, in tokens counted like `tokens` (from its
     * computed ones, after its cached ones for a waiting request): 0 means
     * `tokens`; more reserves room for later chunks or for its output (the
     * engine's admission rule, see batch_admit_tokens). At most its pending
     * tokens plus the output tokens it has left. The ledger must have taken
     * it (kv_take with this many tokens). */
    int32_t reserve;
} batch_item;

/* How a preempted request gives up its KV: the engine's mode (instance
 * .preemption), recompute, or swap to host memory (recompute when the
 * host has no room). */
typedef enum batch_preempt_how {
    BATCH_PREEMPT_DEFAULT = 0,
    BATCH_PREEMPT_RECOMPUTE,
    BATCH_PREEMPT_SWAP,
} batch_preempt_how;

/* Arrays are owned by the core and sized for n_waiting + n_running. */
typedef struct batch_plan {
    batch_item *items;
    int32_t n_items;
    const serve_req **preempt;  /* running requests, in preemption order */
    int32_t n_preempt;
    /* Appended in ABI 1.1: beside preempt, how each victim gives up its KV
     * (batch_preempt_how); every entry is BATCH_PREEMPT_DEFAULT when form
     * is called, and a policy may set those of its victims. */
    int8_t *preempt_how;
} batch_plan;

/* ---- Cutting the iteration in flight (operator-level preemption) -----------
 * A policy with a `cut` hook is also asked when a request joins the waiting
 * queue while an iteration runs (an arrival, a move or a hand-off: the
 * scheduler runs on arrival events, not only between iterations). Only an
 * iteration whose every item is a prefill tracked by layers (item.layers >
 * 0, all its items through the same layers) with no swap copies or tier
 * loads in progress can be cut, once. The core gives the earliest points
 * where it could stop: the next boundary between two layers, and the next
 * between two operators (inside a layer). Cut at a point, the iteration ends
 * there: its items keep the KV of the layers they finished (layers_done
 * grows by those layers; nothing is recomputed), an item that finished no
 * layer is dropped from it (it stays running, with nothing lost), and the
 * next plan is made at the point. At an operator boundary the operators the
 * stopped items finished inside their unfinished layer are kept too: the
 * core takes their time (as the cut iteration ran them) off the iteration
 * that resumes them ([assume]: FlowPrefill keeps the boundary hidden state
 * and resumes at the operator; servesim keeps the time, not the state).
 * The operators of a layer run in the order of enum op_kind, each taking
 * its per-layer share of the iteration's term; the engine's CPU time and the
 * embedding come first, the logits last ([assume]: a uniform per-layer
 * split of the cost model's per-kind terms, models/cost.h). */
typedef enum batch_cut {
    BATCH_CUT_NONE = 0,
    BATCH_CUT_LAYER,     /* at the next layer boundary */
    BATCH_CUT_OP,        /* at the next operator boundary */
} batch_cut;

typedef struct batch_cut_point {
    sim_time_ns at_ns;        /* when the iteration would end (>= now) */
    int32_t layers_kept;      /* layers the items finish by then (of this run) */
    sim_time_ns credit_ns;    /* operator time kept inside the next layer */
    bool possible;            /* false: no boundary before the layers end */
} batch_cut_point;

typedef struct batch_flight {
    sim_time_ns start_ns, end_ns;   /* the iteration in flight */
    const batch_item *items;        /* its plan */
    int32_t n_items;
    int32_t layers_run;             /* layers each item runs in it */
    int64_t tokens;                 /* its tokens */
    batch_cut_point layer, op;      /* the next boundaries of each kind */
} batch_flight;

typedef struct batch_policy_ops {
    const char *name;
    /* Reads the policy's parameters (params may be an empty object; the
     * policy rejects keys it does not know) and checks the setup. */
    int (*init)(const batch_setup *setup, cJSON *params, const char *path,
                void **state, sim_err *err);
    void (*form)(void *state, const batch_view *view, batch_plan *plan);
    void (*destroy)(void *state);   /* optional */
    /* Optional (appended in ABI 1.1): whether to cut the iteration in
     * flight now that `arrived` joined the queue (see above). The view's
     * KV ledger is NULL: a cut decides nothing about KV. */
    batch_cut (*cut)(void *state, const batch_view *view, const batch_flight *flight,
                     const serve_req *arrived);
    /* Appended in ABI 1.1: the policy handles streamed prompts (requests
     * with unarrived_tokens > 0: it computes at most batch_todo_tokens of
     * them, skips those with none, and may leave the plan empty while
     * every request waits for its next chunk, which idles the instance). A
     * run with streamed prompts refuses a policy without it. */
    bool streams;
} batch_policy_ops;

/* The front of the waiting queue, or NULL. */
static inline const serve_req *batch_first_waiting(const batch_view *v)
{
    const sim_rb_node *n = sim_rb_first(v->waiting);
    return n ? SIM_RB_ENTRY(n, const serve_req, wait_node) : NULL;
}

/* ---- The plan's KV ledger --------------------------------------------------
 * Policies never compute KV blocks themselves: blocks can be shared between
 * requests (a cached prompt prefix), a cached prefix changes what a waiting
 * request costs, and only the core knows which blocks those are. The view
 * carries a ledger, reset before every form call to the instance's free
 * blocks, that answers exactly and records what the plan takes:
 *
 *   kv_cached_tokens(v, r)  tokens of waiting r's sequence already in the
 *                           cache: admitting r starts it there (0 for a
 *                           running or swapped-out request);
 *   kv_need(v, r, q)        blocks r must take to compute q more tokens
 *                           (after its cached ones, for a waiting r);
 *   kv_take(v, r, q)        adds that to the plan (call once per item,
 *                           after kv_need said it fits);
 *   kv_preempt(v, r)        adds running r's preemption to the plan and
 *                           returns the blocks that frees (its blocks no
 *                           other request holds);
 *   kv_room(v, r)           the most tokens r could compute with the free
 *                           blocks left (after its cached ones);
 *   kv_free(v)              free blocks left under the plan so far.
 *
 * A plan built this way always fits: the core applies preemptions first,
 * then touches every admitted request's cached blocks, then allocates. The
 * common case, a running request growing within its last block, is an
 * inline comparison with no call. */
typedef struct batch_kv batch_kv;
typedef struct batch_kv_ops {
    int64_t (*need)(batch_kv *kv, const serve_req *r, int32_t tokens);
    void (*take)(batch_kv *kv, const serve_req *r, int32_t tokens);
    int64_t (*preempt)(batch_kv *kv, const serve_req *r);
    int32_t (*cached_tokens)(batch_kv *kv, const serve_req *r);
    int64_t (*room)(batch_kv *kv, const serve_req *r);
} batch_kv_ops;
/* The ledger's public part; the core's ledger begins with it. */
struct batch_kv {
    const batch_kv_ops *ops;
    int64_t free_blocks;
};

static inline int64_t kv_free(const batch_view *v) { return v->kv->free_blocks; }

static inline int64_t kv_need(const batch_view *v, const serve_req *r, int32_t tokens)
{
    if (r->state == REQ_RUNNING && r->computed_tokens + tokens <= r->kv_cap_tokens)
        return 0;
    return v->kv->ops->need(v->kv, r, tokens);
}

static inline void kv_take(const batch_view *v, const serve_req *r, int32_t tokens)
{
    if (r->state == REQ_RUNNING && r->computed_tokens + tokens <= r->kv_cap_tokens)
        return;
    v->kv->ops->take(v->kv, r, tokens);
}

static inline int64_t kv_preempt(const batch_view *v, const serve_req *r)
{
    return v->kv->ops->preempt(v->kv, r);
}

static inline int32_t kv_cached_tokens(const batch_view *v, const serve_req *r)
{
    return r->state == REQ_WAITING && r->computed_tokens == 0
               ? v->kv->ops->cached_tokens(v->kv, r) : 0;
}

static inline int64_t kv_room(const batch_view *v, const serve_req *r)
{
    return v->kv->ops->room(v->kv, r);
}

/* Tokens a waiting or running request still has to compute if it runs now:
 * its pending tokens less what the cache already holds; for a streamed
 * prompt still arriving, only the tokens that have arrived (0 while it
 * waits for its next chunk). */
static inline int32_t batch_todo_tokens(const batch_view *v, const serve_req *r)
{
    if (r->unarrived_tokens) {   /* a streamed prompt: only what has arrived */
        int32_t t = r->input_tokens - r->unarrived_tokens - r->computed_tokens -
                    kv_cached_tokens(v, r);
        return t > 0 ? t : 0;
    }
    return req_pending_tokens(r) - kv_cached_tokens(v, r);
}

/* Whether admitting a waiting request that needs `blocks` more KV blocks
 * keeps `watermark_blocks` free (vLLM's rule, so running requests can grow).
 * With nothing running (`running_kept` 0) and nothing planned yet, the
 * watermark is waived: otherwise a request that fits the cache but not the
 * cache less the watermark would wait forever. */
static inline int batch_admit_fits(const batch_view *v, const batch_plan *plan,
                                   int32_t running_kept, int64_t blocks,
                                   int64_t watermark_blocks)
{
    int64_t free_blocks = kv_free(v);
    if (blocks > free_blocks)
        return 0;
    return free_blocks - blocks >= watermark_blocks ||
           (running_kept == 0 && plan->n_items == 0);
}

/* The KV tokens the engine's rule reserves when waiting r is admitted to
 * compute `tokens` now (counted like batch_item.tokens): the tokens
 * themselves, its whole pending prompt, or that plus a share of the output
 * it has left (its sequence grows to input + output - 1 tokens of KV: the
 * last token is never fed back). */
static inline int32_t batch_admit_tokens(const batch_view *v, const serve_req *r,
                                         int32_t tokens)
{
    const batch_rules *rules = &v->setup->rules;
    if (rules->reserve == BATCH_RESERVE_CHUNK)
        return tokens;
    int32_t want = batch_todo_tokens(v, r);
    if (rules->reserve == BATCH_RESERVE_REQUEST) {
        int32_t left = r->output_tokens - r->generated_tokens - 1;
        if (left > 0)
            want += (int32_t)ceil(rules->output_reserve_fraction * left);
    }
    return want > tokens ? want : tokens;
}

#endif
