/* Every ordering policy: one line each. */
#include "policies/order.h"
#include "sim/jsoncfg.h"

extern const order_policy_ops order_fcfs;
extern const order_policy_ops order_shortest_prompt;
extern const order_policy_ops order_sjf;
extern const order_policy_ops order_sjf_predicted;
extern const order_policy_ops order_priority;
extern const order_policy_ops order_edf;

const order_policy_ops *const order_policies[] = {
    &order_fcfs,
    &order_shortest_prompt,
    &order_sjf,
    &order_sjf_predicted,
    &order_priority,
    &order_edf,
    NULL,
};

const order_policy_ops *order_policy_find(const char *name, const char *path,
                                          sim_err *err)
{
    return SIM_REGISTRY_FIND(order_policies, name, "ordering policy", path, err);
}

int order_no_params(uint64_t seed, cJSON *params, const char *path, void **state,
                    sim_err *err)
{
    (void)seed;
    static const char *const keys[] = {NULL};
    *state = NULL;
    return jcfg_check_keys(params, path, keys, err);
}
