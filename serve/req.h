/* The core's request: what policies see (serve_req, first, so that the
 * pointers policies hand back convert to it) and the core's private state
 * beside it. Requests are recycled through the cluster's free list; their
 * arrays (block table, hashes, prefix ids) are kept for reuse. */
#ifndef SERVE_REQ_H
#define SERVE_REQ_H

#include "api/request.h"
#include "serve/kv.h"

typedef struct req {
    serve_req pub;
    kv_req kv;
    uint64_t *ids;              /* its chained prefix ids (owned copy) */
    int32_t ids_cap;
    int32_t move_to;            /* a move's destination while it is under way; -1 */
    int8_t move_mode;           /* that move's move_mode, or MOVE_PD_HANDOFF */
    void *pd;                   /* its hand-off under way (serve/disagg.c); NULL */
    void *mig;                  /* its live migration under way (serve/migrate.c); NULL */
    int8_t lora_cold;           /* multi-LoRA: its adapter was loaded for its first iteration */
    /* Operator-level preemption: operator time it finished inside its
     * unfinished layer when its iteration was cut (serve/opcut.h); 0. */
    sim_time_ns op_credit_ns;
    /* A streamed prompt (serve/stream.h): its chunks (tokens, offsets after
     * its arrival), how many, and the next to arrive; kept for reuse. */
    int32_t *chunk_tokens, *chunk_keep;   /* keep: -1 an append, else an update */
    sim_time_ns *chunk_ns;
    int32_t chunk_cap, n_chunks, next_chunk;
    int32_t arrived_tokens;     /* its context now (an update may shorten it) */
    int32_t rewind_to;          /* an update during its iteration: KV kept; -1 */
    /* Time the iterations it was in waited for lower-tier KV loads before
     * its first token, and its KV's transfers when it moved with it before
     * then (TTFT's loading part, serve/metrics.h). */
    sim_time_ns load_stall_ns;
    int32_t lora_adapter;       /* multi-LoRA with adapter selection (polar): its pick; -1: none yet */
    /* Speculative decoding's acceptance from the trace (serve/spec.h models
     * "request" and "trace"): its rate when spec_alpha_set; its recorded
     * accepted drafts per step (owned copy, kept for reuse like ids), and
     * the verification steps it has completed. */
    int8_t spec_alpha_set;
    double spec_alpha;
    uint8_t *spec_acc;
    int32_t n_spec_acc, spec_acc_cap;
    int32_t spec_steps;
} req;

/* A prefill-to-decode hand-off by serve/disagg.c (not a controller's mode). */
enum { MOVE_PD_HANDOFF = 16 };

static inline req *req_of(const serve_req *r) { return (req *)(uintptr_t)r; }

#endif
