/* Event queue: a priority queue of timed events behind a five-function API
 * (push, pop, peek, cancel, size), so that its implementation can be swapped.
 *
 * Order: events are ordered by (time, phase, sequence number). The sequence
 * number is assigned by the queue at push and grows by one per push, so
 * events with equal time and phase come out in the order they were pushed
 * (FIFO). A lower phase runs first at equal time: models use phases to say,
 * for example, "completions before arrivals" at the same instant.
 *
 * Implementation: an array-backed 4-ary min-heap of small keys that index a
 * slot pool. Slots come from a free list (no allocation per event once the
 * pool has grown to the peak number of pending events). Each slot knows its
 * heap position, so cancel is O(log n). A handle names a slot plus the
 * slot's generation; reusing a slot bumps the generation, so cancelling with
 * a stale handle is detected and does nothing. */
#ifndef SIM_EVQ_H
#define SIM_EVQ_H

#include <stdbool.h>
#include "sim/base.h"

/* What an event carries: its kind (selects the handler), a pointer and an
 * integer for the handler. The queue never looks at them. */
typedef struct sim_event {
    sim_time_ns time;
    uint32_t phase;      /* lower runs first at equal time; < 2^16 */
    uint32_t kind;       /* handler index; see sim_engine_register */
    uint64_t seq;        /* assigned by the queue */
    void *data;
    int64_t arg;
} sim_event;

/* Opaque cancel handle; 0 is never a valid handle. */
typedef uint64_t sim_event_handle;

typedef struct sim_evq sim_evq;

sim_evq *sim_evq_create(void);
void sim_evq_destroy(sim_evq *q);   /* NULL is a no-op */

/* O(log n). ev->seq is ignored and assigned. Returns the cancel handle. */
sim_event_handle sim_evq_push(sim_evq *q, const sim_event *ev);
/* O(log n). Removes the first event into *out; false when empty. */
bool sim_evq_pop(sim_evq *q, sim_event *out);
/* O(1). The first event without removing it; NULL when empty. */
const sim_event *sim_evq_peek(const sim_evq *q);
/* O(log n). true if the event was pending and is now removed; false for an
 * event already popped or cancelled (stale handle). */
bool sim_evq_cancel(sim_evq *q, sim_event_handle h);
size_t sim_evq_size(const sim_evq *q);

/* The one comparator: true when a runs before b. */
bool sim_event_before(const sim_event *a, const sim_event *b);

#endif
