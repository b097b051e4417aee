/* Shortest prompt first: by the tokens still to prefill, so a short prompt
 * overtakes a long one (and a preempted request's recompute counts). */
#include "policies/common.h"

static double spf_key(void *state, const serve_req *r)
{
    (void)state;
    return req_pending_tokens(r);
}

const order_policy_ops order_shortest_prompt = {
    .name = "shortest_prompt",
    .init = order_no_params,
    .key = spf_key,
};
