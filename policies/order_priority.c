/* Strict priority classes: by the request's priority (lower first, from the
 * workload), first come, first served within a class. */
#include "policies/common.h"

static double priority_key(void *state, const serve_req *r)
{
    (void)state;
    return r->priority;
}

const order_policy_ops order_priority = {
    .name = "priority",
    .init = order_no_params,
    .key = priority_key,
};
