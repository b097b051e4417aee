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
#define PLACE(name) extern const place_policy_ops place_##name;
#define EVICT(name) extern const evict_policy_ops evict_##name;
#define SCALE(name) extern const scale_policy_ops scale_##name;
#define RETAIN(name) extern const retain_policy_ops retain_##name;
#define SPEC(name) extern const spec_policy_ops spec_##name;
#include "policies/list.def"
#undef BATCH
#undef ORDER
#undef ROUTE
#undef CONTROL
#undef PLACE
#undef EVICT
#undef SCALE
#undef RETAIN
#undef SPEC

/* One table per family: its own entries, the others' lines expand to
 * nothing (every family starts as NONE; each table switches its own on). */
#define BATCH NONE
#define ORDER NONE
#define ROUTE NONE
#define CONTROL NONE
#define PLACE NONE
#define EVICT NONE
#define SCALE NONE
#define RETAIN NONE
#define SPEC NONE

#undef BATCH
#define BATCH(name) &batch_##name,
const batch_policy_ops *const batch_policies[] = {
#include "policies/list.def"
    NULL};
#undef BATCH
#define BATCH NONE

#undef ORDER
#define ORDER(name) &order_##name,
const order_policy_ops *const order_policies[] = {
#include "policies/list.def"
    NULL};
#undef ORDER
#define ORDER NONE

#undef ROUTE
#define ROUTE(name) &route_##name,
const route_policy_ops *const route_policies[] = {
#include "policies/list.def"
    NULL};
#undef ROUTE
#define ROUTE NONE

#undef CONTROL
#define CONTROL(name) &control_##name,
const control_policy_ops *const control_policies[] = {
#include "policies/list.def"
    NULL};
#undef CONTROL
#define CONTROL NONE

#undef PLACE
#define PLACE(name) &place_##name,
const place_policy_ops *const place_policies[] = {
#include "policies/list.def"
    NULL};
#undef PLACE
#define PLACE NONE

#undef EVICT
#define EVICT(name) &evict_##name,
const evict_policy_ops *const evict_policies[] = {
#include "policies/list.def"
    NULL};
#undef EVICT
#define EVICT NONE

#undef SCALE
#define SCALE(name) &scale_##name,
const scale_policy_ops *const scale_policies[] = {
#include "policies/list.def"
    NULL};
#undef SCALE
#define SCALE NONE

#undef RETAIN
#define RETAIN(name) &retain_##name,
const retain_policy_ops *const retain_policies[] = {
#include "policies/list.def"
    NULL};
#undef RETAIN
#define RETAIN NONE
#undef SPEC
#define SPEC(name) &spec_##name,
const spec_policy_ops *const spec_policies[] = {
#include "policies/list.def"
    NULL};
#undef SPEC
#define SPEC NONE

#undef BATCH
#undef ORDER
#undef ROUTE
#undef CONTROL
#undef PLACE
#undef EVICT
#undef SCALE
#undef RETAIN
#undef SPEC

const batch_policy_ops *batch_policy_find(const char *name, const char *path, sim_err *err)
{
    return SIM_REGISTRY_FIND(batch_policies, name, "batch policy", path, err);
}

const order_policy_ops *order_policy_find(const char *name, const char *path, sim_err *err)
{
    return SIM_REGISTRY_FIND(order_policies, name, "ordering policy", path, err);
}

const route_policy_ops *route_policy_find(const char *name, const char *path, sim_err *err)
{
    return SIM_REGISTRY_FIND(route_policies, name, "routing policy", path, err);
}

const control_policy_ops *control_policy_find(const char *name, const char *path, sim_err *err)
{
    return SIM_REGISTRY_FIND(control_policies, name, "controller", path, err);
}

const place_policy_ops *place_policy_find(const char *name, const char *path, sim_err *err)
{
    return SIM_REGISTRY_FIND(place_policies, name, "placement policy", path, err);
}

const evict_policy_ops *evict_policy_find(const char *name, const char *path, sim_err *err)
{
    return SIM_REGISTRY_FIND(evict_policies, name, "eviction policy", path, err);
}

const scale_policy_ops *scale_policy_find(const char *name, const char *path, sim_err *err)
{
    return SIM_REGISTRY_FIND(scale_policies, name, "autoscaler", path, err);
}

const retain_policy_ops *retain_policy_find(const char *name, const char *path, sim_err *err)
{
    return SIM_REGISTRY_FIND(retain_policies, name, "retention policy", path, err);
}

const spec_policy_ops *spec_policy_find(const char *name, const char *path, sim_err *err)
{
    return SIM_REGISTRY_FIND(spec_policies, name, "speculative-decoding policy", path, err);
}
