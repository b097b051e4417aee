/* Expert placement: the policy family that decides which GPU of an
 * expert-parallel group holds which experts of each MoE layer, and how many
 * copies of each.
 *
 * The core owns the placement and the statistics. Each MoE layer group (a
 * run of layers that share a routing profile, see models/moe.h) has `slots`
 * physical expert slots, `slots / ranks` on each GPU: slot s lives on GPU
 * s / (slots / ranks). A placement is the logical expert in every slot
 * (phy2log, as DeepSeek's EPLB prints it); every logical expert must have
 * at least one slot. Tokens routed to an expert are split evenly over its
 * copies. The core asks for a placement once at the start (the view's load
 * all zero) and then every `period_iterations` iterations, showing the
 * tokens each expert received over the last `window_iterations`
 * iterations; slots whose expert changed are copied over the group's links
 * (the iteration pays for the copy).
 *
 * Adding a policy: one file policies/place_<name>.c defining a
 * `const place_policy_ops place_<name>` and one line in policies/list.def. */
#ifndef API_PLACEMENT_H
#define API_PLACEMENT_H

#include <cjson/cJSON.h>
#include "sim/base.h"

/* Fixed for the policy's lifetime. */
typedef struct place_setup {
    int32_t layers;    /* layer groups, each with its own placement (rows) */
    int32_t experts;   /* logical experts per layer */
    int32_t ranks;     /* GPUs of the expert-parallel group */
    int32_t nodes;     /* nodes they span (ranks divisible by it) */
    int32_t slots;     /* physical experts per layer: experts + redundant */
} place_setup;

/* When the core calls `place` again: every period_iterations iterations
 * (0: never after the start), with the load of the last window_iterations
 * (at most the period). */
typedef struct place_schedule {
    int64_t period_iterations;
    int64_t window_iterations;
} place_schedule;

typedef struct place_view {
    const place_setup *setup;
    int64_t iteration;        /* iterations the instance has run */
    /* [layers][experts]: tokens routed to each logical expert in the
     * window (all zero at the start). */
    const double *load;
    /* [layers][slots]: the placement now (at the start: round-robin). */
    const int32_t *phy2log;
} place_view;

typedef struct place_policy_ops {
    const char *name;
    int (*init)(const place_setup *setup, cJSON *params, const char *path, void **state,
                place_schedule *sched, sim_err *err);
    /* Writes phy2log[layers][slots]: every entry in [0, experts), every
     * expert at least once. */
    void (*place)(void *state, const place_view *view, int32_t *phy2log);
    void (*destroy)(void *state);   /* optional */
} place_policy_ops;

#endif
