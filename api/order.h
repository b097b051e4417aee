/* Ordering: the policy family that decides the order of an instance's
 * waiting queue, which is the order in which batch formation considers
 * waiting requests. A policy gives each request a key when it enters the
 * queue (on arrival and again after a preemption); the core keeps the queue
 * sorted by (key, arrival time, id), lowest first, so equal keys are served
 * first come, first served and the order is deterministic.
 *
 * Adding a policy: one file policies/order_<name>.c defining a
 * `const order_policy_ops order_<name>` and one line in policies/list.def. */
#ifndef API_ORDER_H
#define API_ORDER_H

#include <cjson/cJSON.h>
#include "api/request.h"

typedef struct order_policy_ops {
    const char *name;
    /* seed: for policies that draw random numbers (a value derived from the
     * run's seed and the instance, so runs stay deterministic). */
    int (*init)(uint64_t seed, cJSON *params, const char *path, void **state,
                sim_err *err);
    double (*key)(void *state, const serve_req *r);
    void (*destroy)(void *state);   /* optional */
} order_policy_ops;

#endif
