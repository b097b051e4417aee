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
#ifndef POLICIES_BATCH_H
#define POLICIES_BATCH_H

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
    const serve_req *const *waiting;  /* queue order, front first */
    int32_t n_waiting;
    const serve_req *const *running;  /* admission order, oldest first */
    int32_t n_running;
    int64_t kv_free_blocks;
} batch_view;

typedef struct batch_item {
    const serve_req *req;   /* from waiting or running */
    int32_t tokens;         /* pending tokens to run, 1..pending */
    /* Layers to run the tokens through this iteration; 0 means all. With
     * fewer (layered prefill), the tokens count as computed only once their
     * layers add up to the model's (req->layers_done tracks the progress),
     * and `tokens` must be all the pending tokens every time. Every partial
     * item of one plan runs through the same number of layers. */
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

/* Whether admitting a waiting request that needs `blocks` more KV blocks
 * keeps `watermark_blocks` free (vLLM's rule, so running requests can grow).
 * With nothing running (`running_kept` 0) and nothing planned yet, the
 * watermark is waived: otherwise a request that fits the cache but not the
 * cache less the watermark would wait forever. */
static inline int batch_admit_fits(const batch_plan *plan, int32_t running_kept,
                                   int64_t free_blocks, int64_t blocks,
                                   int64_t watermark_blocks)
{
    if (blocks > free_blocks)
        return 0;
    return free_blocks - blocks >= watermark_blocks ||
           (running_kept == 0 && plan->n_items == 0);
}

/* Blocks a request must add to hold `tokens` more tokens of KV. */
static inline int64_t batch_blocks_needed(const batch_setup *s,
                                          const serve_req *r, int32_t tokens)
{
    int64_t have = r->kv_blocks;
    int64_t need = ((int64_t)r->computed_tokens + tokens + s->block_size_tokens - 1)
                   / s->block_size_tokens;
    return need > have ? need - have : 0;
}

#endif
