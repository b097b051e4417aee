/* The discrete-event engine: a clock, an event queue and a table of handlers
 * by event kind. It knows nothing about what it simulates: models register
 * handlers for their event kinds and schedule events; the engine pops them in
 * (time, phase, sequence) order and calls the handler.
 *
 * Random numbers: every component draws from its own GSL stream, created from
 * (master seed, stream id), so adding a component or drawing more in one does
 * not change another's numbers. The engine owns the streams it hands out. */
#ifndef SIM_ENGINE_H
#define SIM_ENGINE_H

#include <gsl/gsl_rng.h>
#include "sim/evq.h"

typedef struct sim_engine sim_engine;

/* A handler: ctx is what was registered for the kind, ev the popped event. */
typedef void (*sim_handler_fn)(sim_engine *eng, void *ctx, const sim_event *ev);

sim_engine *sim_engine_create(uint64_t master_seed);
void sim_engine_destroy(sim_engine *eng);   /* NULL is a no-op */

/* Returns the new kind id (0, 1, 2, ... in registration order). */
uint32_t sim_engine_register(sim_engine *eng, const char *name,
                             sim_handler_fn fn, void *ctx);

sim_time_ns sim_now(const sim_engine *eng);
uint64_t sim_engine_seed(const sim_engine *eng);

/* Schedules an event at absolute time `at` (>= now). */
sim_event_handle sim_schedule(sim_engine *eng, sim_time_ns at, uint32_t phase,
                              uint32_t kind, void *data, int64_t arg);
bool sim_cancel(sim_engine *eng, sim_event_handle h);

/* Runs events until the queue is empty, the next event is later than
 * `until`, or sim_stop was called. Returns the number of events run. */
uint64_t sim_run(sim_engine *eng, sim_time_ns until);
void sim_stop(sim_engine *eng);

uint64_t sim_events_run(const sim_engine *eng);
size_t sim_events_pending(const sim_engine *eng);
/* Time of the earliest pending event; SIM_TIME_NEVER when none. */
sim_time_ns sim_next_event_time(const sim_engine *eng);

/* A GSL generator for component `stream_id`, seeded from (master seed,
 * stream_id) through a mixing hash; owned by the engine. Asking twice for the
 * same id is a bug. */
gsl_rng *sim_rng(sim_engine *eng, uint64_t stream_id);

/* The seed derived for (master, stream_id): splitmix64 of both. Exposed for
 * tests and for components that own their generator. */
uint64_t sim_stream_seed(uint64_t master_seed, uint64_t stream_id);

#endif
