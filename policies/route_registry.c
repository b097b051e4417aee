/* Every routing policy: one line each. */
#include "policies/route.h"

extern const route_policy_ops route_round_robin;
extern const route_policy_ops route_least_outstanding_tokens;

const route_policy_ops *const route_policies[] = {
    &route_round_robin,
    &route_least_outstanding_tokens,
    NULL,
};

const route_policy_ops *route_policy_find(const char *name, const char *path,
                                          sim_err *err)
{
    return SIM_REGISTRY_FIND(route_policies, name, "routing policy", path, err);
}
