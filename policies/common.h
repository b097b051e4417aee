/* Helpers that several built-in policies share (common.c). Not part of the
 * policy API in api/: a policy may use them or not. They apply the engine's
 * rules of the setup (api/batch.h, batch_rules): the victim rule and what
 * admission reserves. */
#ifndef POLICIES_COMMON_H
#define POLICIES_COMMON_H

#include "api/batch.h"
#include "api/order.h"

/* One decode token for every running request that is decoding, oldest
 * first; when one needs a KV block and none is free, running requests are
 * preempted by the engine's victim rule (batch_pick_victim, among those not
 * yet given tokens in this plan) until it fits or it was itself preempted,
 * which ends the decodes. Stops when *budget tokens are used. Takes the KV
 * from the view's ledger, updates *budget and returns how many running
 * requests are kept (not in plan->preempt). */
int32_t batch_plan_decodes(const batch_view *v, batch_plan *plan, int64_t *budget);

/* A prompt in a policy's own ranking: the request and its index in
 * v->running (-1: waiting). A policy's ranking entries begin with one. */
typedef struct batch_ranked {
    const serve_req *r;
    int32_t running;
} batch_ranked;

/* Chunked prefill over prompts in the caller's order (slo_chunked,
 * jitserve): `ranked` holds n entries of `stride` bytes, each beginning
 * with a batch_ranked. A running prompt gets its next chunk within the
 * budget and the KV room; with nothing else in the plan, room is made by
 * preempting later-admitted requests (the victim rule), as chunked prefill
 * does. A waiting prompt is admitted with a chunk while the KV lets it; the
 * first that does not fit ends admissions (no overtaking for KV). Then the
 * queue from `rest` on is admitted in its own order. `kept` running
 * requests are in the plan so far (batch_plan_decodes). */
void batch_fill_ranked(const batch_view *v, batch_plan *plan, const void *ranked, size_t stride,
                       int32_t n, const serve_req *rest, int32_t kept, int64_t budget,
                       int32_t max_seqs, int64_t watermark_blocks);

/* Whether running r is among the plan's preemptions (a scan: preemptions
 * are few). */
bool batch_is_preempted(const batch_plan *plan, const serve_req *r);

/* The index in v->running of the request the engine's victim rule preempts
 * next among running[from..] not yet preempted, or -1 if none: the newest
 * (the highest index), or the one with the fewest output tokens (then the
 * longest prompt, then the newest). */
int32_t batch_pick_victim(const batch_view *v, const batch_plan *plan, int32_t from);

/* Adds running r to the plan's preemptions and to the ledger. */
void batch_add_preempt(const batch_view *v, batch_plan *plan, const serve_req *r);

/* Admits waiting r to compute `tokens` now (through `layers`, 0 for all)
 * if what the engine's rule reserves (batch_admit_tokens) fits the free KV
 * less `watermark_blocks` (batch_admit_fits, with running_kept requests
 * kept): adds the item, reserving or only checking as the rule says, and
 * returns true; otherwise changes nothing and returns false. */
bool batch_try_admit(const batch_view *v, batch_plan *plan, int32_t running_kept,
                     const serve_req *r, int32_t tokens, int32_t layers,
                     int64_t watermark_blocks);

/* The watermark in blocks of a fraction of the cache. */
int64_t batch_watermark_blocks(const batch_setup *setup, double fraction);

/* For ordering policies without parameters: accepts only an empty params
 * object. */
int order_no_params(uint64_t seed, cJSON *params, const char *path, void **state,
                    sim_err *err);

#endif
