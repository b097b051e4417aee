/* Cluster controllers: the policy family that looks at the whole cluster
 * every tick (policies.control.period_ms of simulated time) and asks for
 * actions: move requests between instances, grow or shrink pools. The core
 * checks and applies the actions after the tick returns, in order; an action
 * that no longer applies (the request finished, the destination cannot take
 * it) is skipped and counted, never an error.
 *
 * The view is consistent: taken at one instant, after every event of that
 * instant but the wakes and samples (serve/events.h), and nothing changes
 * while the tick runs.
 *
 * Adding a policy: one file policies/control_<name>.c defining a
 * `const control_policy_ops control_<name>` and one line in
 * policies/list.def. */
#ifndef API_CONTROL_H
#define API_CONTROL_H

#include <cjson/cJSON.h>
#include "api/cluster.h"

typedef struct control_setup {
    int32_t n_pools;
    sim_time_ns period_ns;
} control_setup;

typedef struct control_view control_view;
struct control_view {
    sim_time_ns now;
    const inst_view *inst;       /* every instance, by index */
    int32_t n_instances;
    const pool_view *pools;
    int32_t n_pools;
    /* Instance i's waiting queue, front first (then req_next_waiting), and
     * its running set in admission order. */
    const serve_req *(*waiting_first)(const control_view *v, int32_t i);
    const serve_req *const *(*running)(const control_view *v, int32_t i, int32_t *n);
    void *core;                  /* the core's, for the two functions */
};

typedef enum control_kind {
    CTRL_MOVE,    /* req to instance `to` */
    CTRL_SCALE,   /* pool `pool` by `delta` instances (> 0 start, < 0 drain) */
    CTRL_SPLIT,   /* semi-PD: every GPU's prefill and decode workers get
                   * `prefill_share` and `decode_share` of its SMs (serve/disagg.h) */
} control_kind;

/* How a moved request's KV gets to its new instance. RECOMPUTE: it is
 * dropped and the new instance prefills the sequence again; WITH_KV: the
 * destination reserves the blocks, the KV travels over the links (the
 * request pauses meanwhile), and the request goes on where it was. A
 * waiting request that has computed nothing moves as metadata at once.
 * LIVE (Llumnix, serve/migrate.h): a decoding request keeps running while
 * its KV is copied in stages; only the last, short stage stops it. A
 * request not decoding moves as WITH_KV. */
typedef enum move_mode { MOVE_RECOMPUTE, MOVE_WITH_KV, MOVE_LIVE } move_mode;

typedef struct control_action {
    control_kind kind;
    const serve_req *req;   /* CTRL_MOVE */
    int32_t to;             /* CTRL_MOVE: destination instance */
    move_mode mode;         /* CTRL_MOVE */
    int32_t pool;           /* CTRL_SCALE */
    int32_t delta;          /* CTRL_SCALE */
    double prefill_share, decode_share;   /* CTRL_SPLIT, each in [0.05, 1] */
} control_action;

/* The core owns the array; a policy adds with control_add, which refuses
 * (returns 0) once it is full. */
typedef struct control_plan {
    control_action *actions;
    int32_t n, cap;
} control_plan;

static inline int control_add(control_plan *p, control_action a)
{
    if (p->n >= p->cap)
        return 0;
    p->actions[p->n++] = a;
    return 1;
}

typedef struct control_policy_ops {
    const char *name;
    int (*init)(const control_setup *setup, cJSON *params, const char *path,
                void **state, sim_err *err);
    void (*tick)(void *state, const control_view *view, control_plan *plan);
    void (*destroy)(void *state);   /* optional */
} control_policy_ops;

#endif
