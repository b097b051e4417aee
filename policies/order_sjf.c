/* Shortest job first on the true output length (an oracle: the simulator
 * knows it, a real server does not): by output tokens still to generate. */
#include "policies/common.h"

static double sjf_key(void *state, const serve_req *r)
{
    (void)state;
    return r->output_tokens - r->generated_tokens;
}

const order_policy_ops order_sjf = {
    .name = "sjf",
    .init = order_no_params,
    .key = sjf_key,
};
