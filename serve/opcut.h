/* Where an iteration in flight can be cut (operator-level preemption,
 * api/batch.h "Cutting the iteration in flight"): the timeline of one
 * iteration rebuilt from its cost (models/cost.h), and the next layer and
 * operator boundaries after a given instant. Pure functions of their
 * arguments, so that tests can check them against a hand-made cost. */
#ifndef SERVE_OPCUT_H
#define SERVE_OPCUT_H

#include "api/batch.h"
#include "models/cost.h"

/* The iteration started at start_ns with cost *c (latency and per-kind
 * terms) and runs its items through layers_run layers. The timeline, in
 * order: the engine's CPU time (latency less the terms' sum), the
 * embedding, layers_run equal layers whose operators run in op_kind order
 * (each kind taking term / layers_run), then the LM head and sampling.
 * Fills the next layer boundary and the next operator boundary at or after
 * `now`; a boundary at or past the end of the last layer is not possible
 * (cutting there would save only the logits). O(OP_KIND_COUNT). */
void opcut_points(const cost_result *c, sim_time_ns start_ns, int32_t layers_run,
                  sim_time_ns now, batch_cut_point *layer, batch_cut_point *op);

/* The iteration's time inside one of its layers (for bounding the operator
 * time a resumed iteration takes off: at most one layer of it). */
double opcut_layer_ns(const cost_result *c, int32_t layers_run);

/* Scales *c to a new latency (a cut iteration or one that resumes with
 * operators already done): every term and the energy by the same factor. */
void opcut_scale(cost_result *c, sim_time_ns latency_ns);

#endif
