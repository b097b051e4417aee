/* First come, first served: by arrival time (the core breaks ties by id).
 * A preempted request re-enters ahead of every later arrival. */
#include "policies/common.h"

static double fcfs_key(void *state, const serve_req *r)
{
    (void)state;
    return (double)r->arrival_ns;
}

const order_policy_ops order_fcfs = {
    .name = "fcfs",
    .init = order_no_params,
    .key = fcfs_key,
};
