/* The registries (see registry.h): policies/list.def expanded once per
 * family. Each expansion defines its own family's macro and leaves the
 * others empty. */
#include "policies/registry.h"

#define NONE(name)

/* Declarations of every policy. */
#define BATCH(name) extern const batch_policy_ops batch_##name;
#define ORDER(name) extern const order_policy_ops order_##name;
#define ROUTE(name) extern const route_policy_ops route_##name;
#define CONTROL(name) extern const control_policy_ops control_##name;
#define SPEC(name) extern const spec_policy_ops spec_##name;
#include "policies/list.def"
#undef SPEC
#undef BATCH
#undef ORDER
#undef ROUTE
#undef CONTROL

/* One table per family: its own entries, the others' lines expand to
 * nothing. */
#define SPEC NONE
#define BATCH(name) &batch_##name,
#define ORDER NONE
#define ROUTE NONE
#define CONTROL NONE
const batch_policy_ops *const batch_policies[] = {
#include "policies/list.def"
    NULL};
#undef BATCH
#undef ORDER

#define BATCH NONE
#define ORDER(name) &order_##name,
const order_policy_ops *const order_policies[] = {
#include "policies/list.def"
    NULL};
#undef ORDER
#undef ROUTE

#define ORDER NONE
#define ROUTE(name) &route_##name,
const route_policy_ops *const route_policies[] = {
#include "policies/list.def"
    NULL};
#undef ROUTE
#undef CONTROL

#define ROUTE NONE
#define CONTROL(name) &control_##name,
const control_policy_ops *const control_policies[] = {
#include "policies/list.def"
    NULL};
#undef CONTROL
#undef SPEC

#define CONTROL NONE
#define SPEC(name) &spec_##name,
const spec_policy_ops *const spec_policies[] = {
#include "policies/list.def"
    NULL};
#undef SPEC
#undef BATCH
#undef ORDER
#undef ROUTE
#undef CONTROL

const batch_policy_ops *batch_policy_find(const char *name, const char *path,
                                          sim_err *err)
{
    return SIM_REGISTRY_FIND(batch_policies, name, "batch policy", path, err);
}

const order_policy_ops *order_policy_find(const char *name, const char *path,
                                          sim_err *err)
{
    return SIM_REGISTRY_FIND(order_policies, name, "ordering policy", path, err);
}

const route_policy_ops *route_policy_find(const char *name, const char *path,
                                          sim_err *err)
{
    return SIM_REGISTRY_FIND(route_policies, name, "routing policy", path, err);
}

const control_policy_ops *control_policy_find(const char *name, const char *path,
                                              sim_err *err)
{
    return SIM_REGISTRY_FIND(control_policies, name, "controller", path, err);
}

const spec_policy_ops *spec_policy_find(const char *name, const char *path, sim_err *err)
{
    return SIM_REGISTRY_FIND(spec_policies, name, "speculative-decoding policy", path, err);
}
