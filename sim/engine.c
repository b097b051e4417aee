/* The discrete-event engine: clock + event queue + handler table + RNG
 * streams, all hanging off one sim_engine (no globals, no static counters).
 *
 * Clock. `now` only moves forward: sim_schedule refuses a time before now
 * (a bug, so it asserts with the simulated time), and sim_run sets now to each
 * popped event's time before calling its handler. When sim_run returns
 * because the queue ran dry or the next event lies after `until` (and until
 * is not SIM_TIME_NEVER), now advances to `until`: the model has been
 * simulated up to that instant, so events scheduled between runs are
 * relative to it (the convention of SimPy's run(until) and ns-3's Stop).
 * After sim_stop, now stays at the time of the handler that stopped.
 *
 * Dispatch. A kind is an index into the handler table, so dispatch is one
 * bounds check and an indirect call. Kinds are checked at sim_schedule, where
 * a bad kind is a bug in the caller that we can point at, and again at pop.
 *
 * RNG streams. sim_stream_seed(master, id) = mix(mix(master) ^ id) where mix
 * is the splitmix64 step (add the golden-ratio increment, then the
 * xor-shift-multiply finaliser). mix is a bijection on 64-bit integers, so
 * for a fixed master distinct ids give distinct seeds, and for a fixed id
 * distinct masters do too. GSL's mt19937 keeps only 32 bits of its seed, so
 * sim_rng folds the 64-bit seed to 32 bits (hi ^ lo) before seeding; two
 * streams of one run collide only with probability ~k^2/2^33 for k streams.
 * Streams are looked up by a linear scan: components ask for them once at
 * set-up, never in the hot loop. */
#include "sim/engine.h"

#include <stdlib.h>

typedef struct engine_handler {
    sim_handler_fn fn;
    void *ctx;
    char *name;          /* owned copy, for messages */
} engine_handler;

typedef struct engine_stream {
    uint64_t id;
    gsl_rng *rng;
} engine_stream;

struct sim_engine {
    sim_evq *q;
    sim_time_ns now;
    uint64_t master_seed;
    uint64_t events_run;
    bool stop;           /* set by sim_stop, read after each handler */
    bool running;        /* inside sim_run: catches re-entrant calls */
    engine_handler *handlers;
    size_t nhandlers, handler_cap;
    engine_stream *streams;
    size_t nstreams, stream_cap;
};

sim_engine *sim_engine_create(uint64_t master_seed)
{
    sim_engine *eng = sim_xcalloc(1, sizeof *eng);
    eng->q = sim_evq_create();
    eng->master_seed = master_seed;
    return eng;
}

void sim_engine_destroy(sim_engine *eng)
{
    if (!eng)
        return;
    for (size_t i = 0; i < eng->nhandlers; i++)
        free(eng->handlers[i].name);
    free(eng->handlers);
    for (size_t i = 0; i < eng->nstreams; i++)
        gsl_rng_free(eng->streams[i].rng);
    free(eng->streams);
    sim_evq_destroy(eng->q);
    free(eng);
}

uint32_t sim_engine_register(sim_engine *eng, const char *name,
                             sim_handler_fn fn, void *ctx)
{
    SIM_ASSERT(fn != NULL && name != NULL);
    SIM_ASSERT(eng->nhandlers < UINT32_MAX);
    sim_grow((void **)&eng->handlers, &eng->handler_cap, eng->nhandlers + 1,
             sizeof *eng->handlers);
    eng->handlers[eng->nhandlers] =
        (engine_handler){.fn = fn, .ctx = ctx, .name = sim_xstrdup(name)};
    return (uint32_t)eng->nhandlers++;
}

sim_time_ns sim_now(const sim_engine *eng) { return eng->now; }
uint64_t sim_engine_seed(const sim_engine *eng) { return eng->master_seed; }

sim_event_handle sim_schedule(sim_engine *eng, sim_time_ns at, uint32_t phase,
                              uint32_t kind, void *data, int64_t arg)
{
    SIM_ASSERT_AT(eng->now, at >= eng->now);
    SIM_ASSERT_AT(eng->now, kind < eng->nhandlers);
    sim_event ev = {.time = at, .phase = phase, .kind = kind,
                    .data = data, .arg = arg};
    return sim_evq_push(eng->q, &ev);
}

bool sim_cancel(sim_engine *eng, sim_event_handle h)
{
    return sim_evq_cancel(eng->q, h);
}

uint64_t sim_run(sim_engine *eng, sim_time_ns until)
{
    SIM_ASSERT_AT(eng->now, !eng->running);
    eng->running = true;
    eng->stop = false;
    uint64_t ran = 0;
    sim_event ev;
    for (;;) {
        const sim_event *next = sim_evq_peek(eng->q);
        if (!next || next->time > until) {
            if (until != SIM_TIME_NEVER && until > eng->now)
                eng->now = until;
            break;
        }
        sim_evq_pop(eng->q, &ev);
        SIM_ASSERT_AT(eng->now, ev.time >= eng->now);
        SIM_ASSERT_AT(eng->now, ev.kind < eng->nhandlers);
        eng->now = ev.time;
        eng->events_run++;
        ran++;
        const engine_handler *h = &eng->handlers[ev.kind];
        h->fn(eng, h->ctx, &ev);
        if (eng->stop)
            break;
    }
    eng->running = false;
    return ran;
}

void sim_stop(sim_engine *eng)
{
    /* Only meaningful inside sim_run, which clears it on entry. */
    eng->stop = true;
}

uint64_t sim_events_run(const sim_engine *eng) { return eng->events_run; }
size_t sim_events_pending(const sim_engine *eng) { return sim_evq_size(eng->q); }

sim_time_ns sim_next_event_time(const sim_engine *eng)
{
    const sim_event *ev = sim_evq_peek(eng->q);
    return ev ? ev->time : SIM_TIME_NEVER;
}

/* One splitmix64 step: a bijection on 64-bit integers with good avalanche. */
static uint64_t splitmix64(uint64_t x)
{
    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

uint64_t sim_stream_seed(uint64_t master_seed, uint64_t stream_id)
{
    return splitmix64(splitmix64(master_seed) ^ stream_id);
}

gsl_rng *sim_rng(sim_engine *eng, uint64_t stream_id)
{
    for (size_t i = 0; i < eng->nstreams; i++)
        SIM_ASSERT_AT(eng->now, eng->streams[i].id != stream_id);
    sim_grow((void **)&eng->streams, &eng->stream_cap, eng->nstreams + 1,
             sizeof *eng->streams);
    /* GSL's default error handler aborts on allocation failure; this
     * catches a caller that turned it off. */
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    SIM_ASSERT(r != NULL);
    uint64_t s = sim_stream_seed(eng->master_seed, stream_id);
    gsl_rng_set(r, (unsigned long)((s ^ (s >> 32)) & 0xffffffffu));
    eng->streams[eng->nstreams++] = (engine_stream){stream_id, r};
    return r;
}
