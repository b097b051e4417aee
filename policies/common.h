/* Helpers that several built-in policies share (common.c). Not part of the
 * policy API in api/: a policy may use them or not. */
#ifndef POLICIES_COMMON_H
#define POLICIES_COMMON_H

#include "api/batch.h"
#include "api/order.h"

/* One decode token for every running request that is decoding, oldest
 * first; when one needs a KV block and none is free, the most recently
 * admitted running requests are preempted (vLLM's rule) until it fits or it
 * was itself preempted. Stops when *budget tokens are used. Takes the KV
 * from the view's ledger, updates *budget and returns how many running
 * requests remain (running[0..n)); the rest are in plan->preempt. */
int32_t batch_plan_decodes(const batch_view *v, batch_plan *plan, int64_t *budget);

/* For ordering policies without parameters: accepts only an empty params
 * object. */
int order_no_params(uint64_t seed, cJSON *params, const char *path, void **state,
                    sim_err *err);

#endif
