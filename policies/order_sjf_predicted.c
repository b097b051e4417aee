/* Shortest job first on a noisy prediction of the output length, as a
 * length predictor would give: predicted = true x exp(error x N(0,1)), where
 * the normal draw is a function of (seed, request id) alone, so a request
 * keeps its prediction when it re-enters the queue and runs are
 * deterministic. Keyed on the predicted tokens still to generate.
 *
 * Params: {"error": 0.5} (standard deviation of the log-ratio between the
 * predicted and the true length; 0 is the oracle). */
#include <math.h>
#include <stdlib.h>
#include <gsl/gsl_cdf.h>

#include "api/order.h"
#include "sim/engine.h"
#include "sim/jsoncfg.h"

typedef struct sjfp_state {
    uint64_t seed;
    double error;
} sjfp_state;

static int sjfp_init(uint64_t seed, cJSON *params, const char *path, void **state,
                     sim_err *err)
{
    static const char *const keys[] = {"error", NULL};
    double error;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_num(params, path, "error", 0.5, 0, 5, &error, err))
        return -1;
    sjfp_state *s = sim_xmalloc(sizeof *s);
    *s = (sjfp_state){seed, error};
    *state = s;
    return 0;
}

static double sjfp_key(void *state, const serve_req *r)
{
    const sjfp_state *s = state;
    /* A uniform in (0, 1) from the hash of (seed, id), then the normal
     * quantile: a counter-based draw with no stream to keep in step. */
    uint64_t h = sim_stream_seed(s->seed, r->id);
    double u = ((double)(h >> 11) + 0.5) / 9007199254740992.0;
    double predicted = r->output_tokens * exp(s->error * gsl_cdf_ugaussian_Pinv(u));
    return predicted - r->generated_tokens;
}

static void sjfp_destroy(void *state) { free(state); }

const order_policy_ops order_sjf_predicted = {
    .name = "sjf_predicted",
    .init = sjfp_init,
    .key = sjfp_key,
    .destroy = sjfp_destroy,
};
