/* The registries: every built-in policy of every family, by name. Used by
 * whoever reads a run config (tool/) to turn names into ops structs; the
 * serving system never includes this header, it is handed the ops. */
#ifndef POLICIES_REGISTRY_H
#define POLICIES_REGISTRY_H

#include "api/batch.h"
#include "api/order.h"
#include "api/control.h"
#include "api/placement.h"
#include "api/route.h"
#include "api/evict.h"
#include "api/retain.h"
#include "api/scale.h"
#include "api/spec.h"

/* NULL-terminated tables, in policies/list.def order. */
extern const batch_policy_ops *const batch_policies[];
extern const order_policy_ops *const order_policies[];
extern const route_policy_ops *const route_policies[];
extern const control_policy_ops *const control_policies[];
extern const place_policy_ops *const place_policies[];
extern const evict_policy_ops *const evict_policies[];
extern const scale_policy_ops *const scale_policies[];
extern const retain_policy_ops *const retain_policies[];
extern const spec_policy_ops *const spec_policies[];

/* The policy named `name`, or NULL with "<path>: unknown <family> policy
 * "<name>"; expected one of: ..." in err. */
const batch_policy_ops *batch_policy_find(const char *name, const char *path,
                                          sim_err *err);
const order_policy_ops *order_policy_find(const char *name, const char *path,
                                          sim_err *err);
const route_policy_ops *route_policy_find(const char *name, const char *path,
                                          sim_err *err);
const control_policy_ops *control_policy_find(const char *name, const char *path,
                                              sim_err *err);
const place_policy_ops *place_policy_find(const char *name, const char *path,
                                          sim_err *err);

const evict_policy_ops *evict_policy_find(const char *name, const char *path, sim_err *err);

const scale_policy_ops *scale_policy_find(const char *name, const char *path,
                                          sim_err *err);
const retain_policy_ops *retain_policy_find(const char *name, const char *path, sim_err *err);
const spec_policy_ops *spec_policy_find(const char *name, const char *path, sim_err *err);

#endif
