/* Earliest deadline first on each request's TTFT deadline (arrival plus its
 * TTFT target: the request's own, or the run's slo.ttft_ms), the SLO-aware
 * order. Requests past their deadline keep their place at the front. */
#include "policies/common.h"

static double edf_key(void *state, const serve_req *r)
{
    (void)state;
    return (double)r->ttft_deadline_ns;
}

const order_policy_ops order_edf = {
    .name = "edf",
    .init = order_no_params,
    .key = edf_key,
};
