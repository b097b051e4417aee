/* Every event the serving model schedules, and the order of events that
 * fall at the same instant. The event core orders events by (time, phase,
 * sequence number); this file is the one place that says which phase each
 * kind of event runs in, and why.
 *
 * At one instant, in this order:
 *   ITER_END   iterations end: their tokens are credited, finished requests
 *              free their KV, and the next iteration is planned at once;
 *   TRANSFER   link transfers finish (KV arriving, weights loaded), so what
 *              they bring is usable by everything after them; session KV
 *              pins run out (serve/retain.h), freeing their blocks alike;
 *   LIFECYCLE  instances change state (active, draining, stopped), so that
 *              arrivals see the instances that can take work now;
 *   ARRIVAL    arrivals are routed (after the engine's front end, if it
 *              delays them), seeing all of the above; a streamed prompt's
 *              later chunks arrive (serve/stream.h);
 *   CONTROL    cluster controllers tick, seeing that instant's arrivals, then
 *              the autoscaler (scheduled after them);
 *   WAKE       idle instances wake and plan, seeing every request that came
 *              to them at that instant (arrivals and moves);
 *   SAMPLE     time-series samples read the state after all of it.
 * Within a phase, events run in the order they were scheduled (FIFO). */
#ifndef SERVE_EVENTS_H
#define SERVE_EVENTS_H

enum {
    PHASE_ITER_END = 0,
    PHASE_TRANSFER,
    PHASE_LIFECYCLE,
    PHASE_ARRIVAL,
    PHASE_CONTROL,
    PHASE_WAKE,
    PHASE_SAMPLE,
};

/* The event kinds, registered with the engine in this order by
 * cluster_create, so that their ids are these constants. Each entry: kind,
 * name (for messages), handler. Every handler receives the cluster as ctx
 * and the object the event concerns as the event's data. */
#define SERVE_EVENT_KINDS(X)                                   \
    X(EV_ARRIVAL, "arrival", cluster_on_arrival)               \
    X(EV_WORKLOAD_POLL, "workload_poll", cluster_on_poll)      \
    X(EV_ITER_END, "iteration_end", instance_on_iter_end)      \
    X(EV_WAKE, "wake", instance_on_wake)                       \
    X(EV_TRANSFER, "transfer", net_on_event)                   \
    X(EV_LIFECYCLE, "lifecycle", cluster_on_lifecycle)         \
    X(EV_CONTROL, "control", cluster_on_control)               \
    X(EV_SAMPLE, "sample", cluster_on_sample)                  \
    X(EV_FRONTEND, "frontend", cluster_on_frontend)            \
    X(EV_SCALE, "scale", cluster_on_scale)                     \
    X(EV_PIN_EXPIRY, "pin_expiry", instance_on_pin_expiry)     \
    X(EV_CHUNK, "prompt_chunk", stream_on_chunk)

#define SERVE_EVENT_ENUM(kind, name, handler) kind,
enum { SERVE_EVENT_KINDS(SERVE_EVENT_ENUM) EV_KIND_COUNT };
#undef SERVE_EVENT_ENUM

#endif
