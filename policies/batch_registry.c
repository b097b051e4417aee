/* Every batch formation policy: one line each. */
#include "policies/batch.h"

extern const batch_policy_ops batch_vllm_prefill_first;
extern const batch_policy_ops batch_chunked_prefill;
extern const batch_policy_ops batch_layered_prefill;

const batch_policy_ops *const batch_policies[] = {
    &batch_vllm_prefill_first,
    &batch_chunked_prefill,
    &batch_layered_prefill,
    NULL,
};

const batch_policy_ops *batch_policy_find(const char *name, const char *path,
                                          sim_err *err)
{
    return SIM_REGISTRY_FIND(batch_policies, name, "batch policy", path, err);
}
