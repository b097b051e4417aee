/* Routing: the policy family that picks the serving instance for each
 * arriving request. It sees one load summary per instance, maintained by the
 * core, and returns an instance index.
 *
 * Adding a policy: one file policies/route_<name>.c defining a
 * `const route_policy_ops route_<name>` and one line in policies/list.def. */
#ifndef API_ROUTE_H
#define API_ROUTE_H

#include <cjson/cJSON.h>
#include "api/request.h"

typedef struct inst_load {
    int32_t n_waiting;
    int32_t n_running;
    /* Tokens assigned and not yet processed: pending prompt tokens plus
     * output tokens still to generate (the simulator knows output lengths;
     * a real router would estimate them). */
    int64_t outstanding_tokens;
    int64_t kv_free_blocks;
} inst_load;

typedef struct route_view {
    sim_time_ns now;
    const inst_load *load;
    int32_t n_instances;
} route_view;

typedef struct route_policy_ops {
    const char *name;
    int (*init)(int32_t n_instances, cJSON *params, const char *path,
                void **state, sim_err *err);
    int32_t (*route)(void *state, const route_view *view, const serve_req *req);
    void (*destroy)(void *state);   /* optional */
} route_policy_ops;

#endif
