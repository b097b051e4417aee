/* Speculative decoding with a fixed draft length: every decoding sequence
 * proposes the configured K (less where its cap says so), every iteration,
 * as vLLM's `num_speculative_tokens` does. No params. */
#include <stdlib.h>

#include "api/spec.h"
#include "sim/jsoncfg.h"

static int fixed_init(int32_t k_max, cJSON *params, const char *path, void **state,
                      sim_err *err)
{
    static const char *const keys[] = {NULL};
    (void)k_max;
    *state = NULL;
    return jcfg_check_keys(params, path, keys, err);
}

static int32_t fixed_choose_k(void *state, const spec_view *v)
{
    (void)state;
    return v->k_max;
}

const spec_policy_ops spec_fixed = {
    .name = "fixed",
    .init = fixed_init,
    .choose_k = fixed_choose_k,
};
