/* KV retention "release" (the default): a finished turn's blocks go back at
 * once and fall to the prefix cache's eviction, as in vLLM; runs are bit for
 * bit those without a retention policy. No params, no state. */
#include "api/retain.h"
#include "sim/jsoncfg.h"

static int release_init(cJSON *params, const char *path, void **state, sim_err *err)
{
    static const char *const keys[] = {NULL};
    *state = NULL;
    return jcfg_check_keys(params, path, keys, err);
}

static sim_time_ns release_turn_end(void *state, const retain_view *v, const serve_req *r)
{
    (void)state, (void)v, (void)r;
    return 0;
}

const retain_policy_ops retain_release = {
    .name = "release",
    .init = release_init,
    .on_turn_end = release_turn_end,
};
