/* Every batch formation policy: one line each. */
#include "policies/batch.h"

extern const batch_policy_ops batch_vllm_prefill_first;

const batch_policy_ops *const batch_policies[] = {
    &batch_vllm_prefill_first,
    NULL,
};

const batch_policy_ops *batch_policy_find(const char *name, const char *path,
                                          sim_err *err)
{
    return SIM_REGISTRY_FIND(batch_policies, name, "batch policy", path, err);
}
