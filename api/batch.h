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

#include <cjson/cJSON.h>
#include "api/request.h"

/* Fixed for the instance's lifetime. */
typedef struct batch_setup {
    int32_t max_batched_tokens;
    int32_t max_seqs;
    int32_t block_size_tokens;
    int64_t kv_total_blocks;
    int32_t max_context_tokens;   /* the model's */
    int32_t model_layers;         /* for policies that split the layers */
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
} batch_item;

/* Arrays are owned by the core and sized for n_waiting + n_running. */
typedef struct batch_plan {
    batch_item *items;
    int32_t n_items;
    const serve_req **preempt;  /* running requests, in preemption order */
    int32_t n_preempt;
} batch_plan;

typedef struct batch_policy_ops {
    const char *name;
    /* Reads the policy's parameters (params may be an empty object; the
     * policy rejects keys it does not know) and checks the setup. */
    int (*init)(const batch_setup *setup, cJSON *params, const char *path,
                void **state, sim_err *err);
    void (*form)(void *state, const batch_view *view, batch_plan *plan);
    void (*destroy)(void *state);   /* optional */
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
 * its pending tokens less what the cache already holds. */
static inline int32_t batch_todo_tokens(const batch_view *v, const serve_req *r)
{
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

#endif
