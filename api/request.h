/* A request as policies see it. Policies receive const pointers to these:
 * they read, the core writes. (The core keeps private state of its own,
 * such as the block table, in a larger struct that begins with this one.)
 *
 * Token accounting (one rule covers prefill, chunked prefill, decode and
 * recompute after preemption): the sequence is input_tokens + generated
 * tokens long; computed_tokens of them have their KV in the cache. An
 * iteration that runs q of the pending tokens adds q to computed_tokens; when
 * that makes computed_tokens equal the sequence length, the iteration samples
 * one new output token. So a request is in prefill while more than one token
 * is pending (or none has been generated), and decoding while exactly one is.
 * Recompute preemption sets computed_tokens to 0: the whole sequence is
 * prefilled again and no output token is lost or repeated. Swap preemption
 * keeps computed_tokens and moves their KV blocks to host memory
 * (swapped_blocks) until the request is admitted again. A prefix-cache hit
 * at admission sets computed_tokens to the cached tokens at once: those are
 * never computed, only attended to.
 *
 * KV: kv_blocks blocks on the GPU hold up to kv_cap_tokens tokens
 * (kv_blocks x the block size), so "does one more token fit" needs no
 * division. Policies never do block arithmetic themselves: they ask the
 * plan's KV ledger (api/batch.h). */
#ifndef API_REQUEST_H
#define API_REQUEST_H

#include "sim/base.h"
#include "sim/rbtree.h"

/* WAITING: in an instance's waiting queue; RUNNING: in its running set;
 * MOVING: between instances (its KV in transit); FINISHED: done. */
typedef enum req_state { REQ_WAITING, REQ_RUNNING, REQ_FINISHED, REQ_MOVING } req_state;

typedef struct serve_req {
    /* What every iteration touches, first, in one cache line. */
    req_state state;
    int32_t computed_tokens;    /* KV-resident tokens */
    int32_t generated_tokens;   /* output tokens emitted so far */
    int32_t input_tokens;
    int32_t output_tokens;      /* to generate (known to the simulator) */
    int32_t kv_blocks;          /* KV blocks held on the GPU */
    int32_t kv_cap_tokens;      /* tokens those blocks hold: kv_blocks x block size */
    int32_t layers_done;        /* layered prefill: layers run of the pending tokens */
    int32_t instance;           /* where it is (or, while MOVING, is going) */
    int32_t swapped_blocks;     /* KV blocks held in host memory (swap preemption) */
    sim_time_ns last_token_ns;
    sim_time_ns tbt_max_ns;
    double energy_j;            /* share of the iterations it took part in */

    uint64_t id;                /* order of arrival in the workload, from 0 */
    sim_time_ns arrival_ns;
    int32_t priority;           /* lower runs first under priority ordering */
    int32_t slo_class;
    int32_t tenant;
    int32_t preemptions;
    int32_t pool;               /* its instance's pool */
    int32_t reserved_;          /* 0; keeps what follows 8-byte aligned */
    sim_time_ns ttft_deadline_ns;     /* arrival + its TTFT target */
    double order_key;           /* waiting-queue key from the ordering policy */
    uint64_t admit_seq;         /* order of admission to the running set */
    sim_time_ns first_scheduled_ns;   /* -1 until first scheduled */
    sim_time_ns first_token_ns;       /* -1 until the first token */
    int32_t cached_tokens;      /* prompt tokens served from the prefix cache, all admissions */
    int32_t moves;              /* times moved between instances */
    uint64_t prefix_group;      /* identity of its first prefix block (0: none), for
                                 * policies that group requests sharing a prefix */
    /* Its prompt's chained prefix ids (equal id at position j: equal prompts
     * up to the end of block j), n_prefix_ids of prefix_id_block_tokens
     * tokens each (0: none); read-only, valid while the request lives. */
    const uint64_t *prefix_ids;
    int32_t n_prefix_ids, prefix_id_block_tokens;
    sim_rb_node wait_node;      /* its place in the waiting queue (the core's) */
    /* Sessions (agents, chat): the session's id (0: none), this call's turn
     * (from 0), 1 on its last turn, when its first turn arrived, and the gap
     * (tool or think time) between the previous turn's last token at the
     * client and this turn's arrival (0 on the first turn). Appended after
     * the plugin ABI 1 layout (api/plugin.h). */
    uint64_t session_id;
    int32_t turn, session_last;
    sim_time_ns session_start_ns;
    sim_time_ns session_gap_ns;
    /* The session tree's root session (traces/session_play.h: a subagent's
     * top-level session; its own id for a top-level session; 0 without
     * sessions), for routing a tree together. */
    uint64_t session_root;
    /* SLO scheduling (appended in ABI 1.1): its multi-call request group
     * (0: none; JITServe ranks a group's calls together) and its absolute
     * end-to-end deadline (arrival + the trace's deadline_ms; 0: none). */
    uint64_t call_group;
    sim_time_ns deadline_ns;
    /* A streamed prompt (Stream2LLM, appended in ABI 1.1): prompt tokens
     * that have not arrived yet (0: all have; only batch policies that
     * stream, batch_policy_ops.streams, see requests with some), and when
     * its latest chunk arrived (its arrival for a whole prompt). Its prefill
     * may compute only the tokens that have arrived (batch_todo_tokens). */
    int32_t unarrived_tokens;
    int32_t reserved2_;         /* 0 */
    sim_time_ns last_chunk_ns;
} serve_req;

/* The request after r in its instance's waiting queue, or NULL. */
static inline const serve_req *req_next_waiting(const serve_req *r)
{
    const sim_rb_node *n = sim_rb_next(&r->wait_node);
    return n ? SIM_RB_ENTRY(n, const serve_req, wait_node) : NULL;
}

static inline int32_t req_seq_tokens(const serve_req *r)
{
    return r->input_tokens + r->generated_tokens;
}
static inline int32_t req_pending_tokens(const serve_req *r)
{
    return req_seq_tokens(r) - r->computed_tokens;
}
static inline int req_is_decode(const serve_req *r)
{
    return r->generated_tokens > 0 && req_pending_tokens(r) == 1;
}

#endif
