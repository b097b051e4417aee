/* Engine: dispatch, clock, run/stop, cancel and RNG streams, tested with a
 * toy M/M/1 queue (two event kinds, one RNG stream) that links no LLM code.
 *
 * The M/M/1 model keeps a running FNV-1a hash of every (time, kind) it
 * handles, so "two runs with the same seed are identical" is checked over the
 * whole event sequence, not just its end state. */
#include <check.h>
#include <signal.h>
#include <string.h>
#include <gsl/gsl_randist.h>

#include "sim/engine.h"
#include "tests/suites.h"

/* --- the toy model ------------------------------------------------------ */

enum { MM1_STREAM = 1 };

typedef struct mm1 {
    gsl_rng *rng;
    uint32_t k_arrive, k_depart;
    double mean_gap_ns, mean_service_ns;
    uint64_t arrivals, departures, in_system;
    sim_time_ns last_seen;
    bool time_went_back, time_mismatch;
    uint64_t hash;
} mm1;

static void mm1_note(mm1 *m, sim_engine *eng, const sim_event *ev)
{
    if (sim_now(eng) < m->last_seen)
        m->time_went_back = true;
    if (ev->time != sim_now(eng))
        m->time_mismatch = true;
    m->last_seen = sim_now(eng);
    uint64_t words[2] = {(uint64_t)ev->time, ev->kind};
    const unsigned char *b = (const unsigned char *)words;
    for (size_t i = 0; i < sizeof words; i++)
        m->hash = (m->hash ^ b[i]) * UINT64_C(0x100000001b3);
}

static sim_time_ns mm1_draw(mm1 *m, double mean_ns)
{
    return 1 + (sim_time_ns)gsl_ran_exponential(m->rng, mean_ns);
}

static void mm1_start_service(sim_engine *eng, mm1 *m)
{
    sim_schedule(eng, sim_now(eng) + mm1_draw(m, m->mean_service_ns), 0,
                 m->k_depart, m, 0);
}

static void mm1_arrive(sim_engine *eng, void *ctx, const sim_event *ev)
{
    mm1 *m = ctx;
    mm1_note(m, eng, ev);
    m->arrivals++;
    if (++m->in_system == 1)
        mm1_start_service(eng, m);
    /* Departures at the same instant run first (phase 0 < 1). */
    sim_schedule(eng, sim_now(eng) + mm1_draw(m, m->mean_gap_ns), 1,
                 m->k_arrive, m, 0);
}

static void mm1_depart(sim_engine *eng, void *ctx, const sim_event *ev)
{
    mm1 *m = ctx;
    mm1_note(m, eng, ev);
    ck_assert_uint_gt(m->in_system, 0);
    m->departures++;
    if (--m->in_system > 0)
        mm1_start_service(eng, m);
}

static void mm1_setup(sim_engine *eng, mm1 *m)
{
    memset(m, 0, sizeof *m);
    m->rng = sim_rng(eng, MM1_STREAM);
    m->mean_gap_ns = 1000.0;
    m->mean_service_ns = 800.0;   /* utilisation 0.8 */
    m->hash = UINT64_C(0xcbf29ce484222325);
    m->k_arrive = sim_engine_register(eng, "arrive", mm1_arrive, m);
    m->k_depart = sim_engine_register(eng, "depart", mm1_depart, m);
    sim_schedule(eng, 0, 1, m->k_arrive, m, 0);
}

/* Runs the model to `until` and returns its trace hash. */
static uint64_t mm1_run(uint64_t seed, sim_time_ns until, uint64_t *events)
{
    sim_engine *eng = sim_engine_create(seed);
    mm1 m;
    mm1_setup(eng, &m);
    sim_run(eng, until);
    *events = sim_events_run(eng);
    sim_engine_destroy(eng);
    return m.hash;
}

START_TEST(test_engine_mm1_conserves_customers)
{
    sim_engine *eng = sim_engine_create(42);
    mm1 m;
    mm1_setup(eng, &m);
    uint64_t ran = sim_run(eng, 50 * SIM_NS_PER_MS);
    ck_assert_uint_eq(ran, m.arrivals + m.departures);
    ck_assert_uint_eq(m.arrivals, m.departures + m.in_system);
    ck_assert_uint_gt(m.arrivals, 40000);   /* ~50,000 expected */
    ck_assert(!m.time_went_back);
    ck_assert(!m.time_mismatch);
    ck_assert_int_eq(sim_now(eng), 50 * SIM_NS_PER_MS);
    /* Pending: the next arrival, plus a departure if anyone is in service. */
    ck_assert_uint_eq(sim_events_pending(eng), 1 + (m.in_system > 0));
    sim_engine_destroy(eng);
}
END_TEST

START_TEST(test_engine_same_seed_same_run_different_seed_differs)
{
    uint64_t e1, e2, e3;
    uint64_t h1 = mm1_run(7, 10 * SIM_NS_PER_MS, &e1);
    uint64_t h2 = mm1_run(7, 10 * SIM_NS_PER_MS, &e2);
    uint64_t h3 = mm1_run(8, 10 * SIM_NS_PER_MS, &e3);
    ck_assert_uint_eq(h1, h2);
    ck_assert_uint_eq(e1, e2);
    ck_assert_uint_ne(h1, h3);
}
END_TEST

/* --- ordering, run and stop -------------------------------------------- */

typedef struct recorder {
    int64_t args[64];
    sim_time_ns times[64];
    int n;
    int stop_after;      /* calls sim_stop when n reaches it; 0: never */
} recorder;

static void record(sim_engine *eng, void *ctx, const sim_event *ev)
{
    recorder *r = ctx;
    ck_assert_int_lt(r->n, 64);
    r->args[r->n] = ev->arg;
    r->times[r->n] = sim_now(eng);
    if (++r->n == r->stop_after)
        sim_stop(eng);
}

START_TEST(test_engine_lower_phase_runs_first_at_equal_time)
{
    sim_engine *eng = sim_engine_create(1);
    recorder r = {0};
    uint32_t k = sim_engine_register(eng, "rec", record, &r);
    sim_schedule(eng, 100, 2, k, NULL, 20);
    sim_schedule(eng, 100, 0, k, NULL, 0);
    sim_schedule(eng, 100, 1, k, NULL, 10);
    sim_schedule(eng, 100, 0, k, NULL, 1);   /* FIFO within phase 0 */
    sim_schedule(eng, 99, 5, k, NULL, -1);
    ck_assert_uint_eq(sim_run(eng, SIM_TIME_NEVER), 5);
    int64_t want[] = {-1, 0, 1, 10, 20};
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(r.args[i], want[i]);
    sim_engine_destroy(eng);
}
END_TEST

START_TEST(test_engine_run_until_stops_before_later_events_and_resumes)
{
    sim_engine *eng = sim_engine_create(1);
    recorder r = {0};
    uint32_t k = sim_engine_register(eng, "rec", record, &r);
    sim_schedule(eng, 10, 0, k, NULL, 1);
    sim_schedule(eng, 20, 0, k, NULL, 2);
    sim_schedule(eng, 30, 0, k, NULL, 3);

    ck_assert_uint_eq(sim_run(eng, 20), 2);   /* `until` is inclusive */
    ck_assert_int_eq(sim_now(eng), 20);
    ck_assert_uint_eq(sim_events_pending(eng), 1);

    ck_assert_uint_eq(sim_run(eng, 25), 0);
    ck_assert_int_eq(sim_now(eng), 25);       /* advanced to the horizon */

    ck_assert_uint_eq(sim_run(eng, SIM_TIME_NEVER), 1);
    ck_assert_int_eq(sim_now(eng), 30);       /* NEVER leaves the clock */
    ck_assert_uint_eq(sim_events_run(eng), 3);
    ck_assert_uint_eq(sim_events_pending(eng), 0);
    ck_assert_int_eq(r.times[0], 10);
    ck_assert_int_eq(r.times[2], 30);
    sim_engine_destroy(eng);
}
END_TEST

START_TEST(test_engine_stop_ends_run_after_current_handler)
{
    sim_engine *eng = sim_engine_create(1);
    recorder r = {.stop_after = 2};
    uint32_t k = sim_engine_register(eng, "rec", record, &r);
    for (int i = 0; i < 5; i++)
        sim_schedule(eng, 10 * (i + 1), 0, k, NULL, i);
    ck_assert_uint_eq(sim_run(eng, SIM_TIME_NEVER), 2);
    ck_assert_int_eq(sim_now(eng), 20);       /* not advanced after stop */
    ck_assert_uint_eq(sim_events_pending(eng), 3);
    /* A new run starts afresh and runs the rest. */
    ck_assert_uint_eq(sim_run(eng, SIM_TIME_NEVER), 3);
    ck_assert_int_eq(r.n, 5);
    sim_engine_destroy(eng);
}
END_TEST

START_TEST(test_engine_cancel_removes_pending_event)
{
    sim_engine *eng = sim_engine_create(1);
    recorder r = {0};
    uint32_t k = sim_engine_register(eng, "rec", record, &r);
    sim_event_handle a = sim_schedule(eng, 5, 0, k, NULL, 1);
    sim_event_handle b = sim_schedule(eng, 6, 0, k, NULL, 2);
    ck_assert(sim_cancel(eng, a));
    ck_assert(!sim_cancel(eng, a));
    ck_assert_uint_eq(sim_run(eng, SIM_TIME_NEVER), 1);
    ck_assert_int_eq(r.args[0], 2);
    ck_assert(!sim_cancel(eng, b));           /* already ran */
    sim_engine_destroy(eng);
}
END_TEST

/* A handler that schedules at the current instant: runs in the same sim_run
 * call, after events already pending at that instant and phase. */
typedef struct chain {
    recorder rec;
    uint32_t kind;
} chain;

static void chain_fn(sim_engine *eng, void *ctx, const sim_event *ev)
{
    chain *c = ctx;
    record(eng, &c->rec, ev);
    if (ev->arg < 3)
        sim_schedule(eng, sim_now(eng), 0, c->kind, NULL, ev->arg + 10);
}

START_TEST(test_engine_event_scheduled_now_runs_after_pending_peers)
{
    sim_engine *eng = sim_engine_create(1);
    chain c = {0};
    c.kind = sim_engine_register(eng, "chain", chain_fn, &c);
    sim_schedule(eng, 50, 0, c.kind, NULL, 1);
    sim_schedule(eng, 50, 0, c.kind, NULL, 2);
    ck_assert_uint_eq(sim_run(eng, 50), 4);
    int64_t want[] = {1, 2, 11, 12};
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(c.rec.args[i], want[i]);
    sim_engine_destroy(eng);
}
END_TEST

START_TEST(test_engine_register_returns_consecutive_kinds)
{
    sim_engine *eng = sim_engine_create(1);
    recorder r = {0};
    for (uint32_t i = 0; i < 100; i++)
        ck_assert_uint_eq(sim_engine_register(eng, "k", record, &r), i);
    ck_assert_uint_eq(sim_engine_seed(eng), 1);
    sim_engine_destroy(eng);
    sim_engine_destroy(NULL);
}
END_TEST

START_TEST(test_engine_schedule_in_past_aborts)
{
    sim_engine *eng = sim_engine_create(1);
    recorder r = {0};
    uint32_t k = sim_engine_register(eng, "rec", record, &r);
    sim_schedule(eng, 10, 0, k, NULL, 0);
    sim_run(eng, SIM_TIME_NEVER);
    sim_schedule(eng, 9, 0, k, NULL, 0);
}
END_TEST

START_TEST(test_engine_unknown_kind_aborts)
{
    sim_engine *eng = sim_engine_create(1);
    sim_schedule(eng, 0, 0, 0, NULL, 0);
}
END_TEST

/* --- RNG streams -------------------------------------------------------- */

START_TEST(test_engine_stream_seed_is_deterministic_and_distinct)
{
    ck_assert_uint_eq(sim_stream_seed(1, 2), sim_stream_seed(1, 2));
    ck_assert_uint_ne(sim_stream_seed(1, 2), sim_stream_seed(1, 3));
    ck_assert_uint_ne(sim_stream_seed(1, 2), sim_stream_seed(2, 2));
    ck_assert_uint_ne(sim_stream_seed(1, 2), sim_stream_seed(2, 1));
    ck_assert_uint_ne(sim_stream_seed(0, 0), 0);
    /* Pairwise distinct over a grid, also in the 32 bits mt19937 keeps. */
    enum { M = 16, S = 64 };
    static uint64_t seen[M * S];
    size_t n = 0;
    for (uint64_t m = 0; m < M; m++)
        for (uint64_t s = 0; s < S; s++)
            seen[n++] = sim_stream_seed(m, s);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            ck_assert_uint_ne(seen[i], seen[j]);
            ck_assert_uint_ne((seen[i] ^ seen[i] >> 32) & 0xffffffffu,
                              (seen[j] ^ seen[j] >> 32) & 0xffffffffu);
        }
}
END_TEST

START_TEST(test_engine_rng_streams_differ_and_repeat_across_engines)
{
    sim_engine *e1 = sim_engine_create(99);
    sim_engine *e2 = sim_engine_create(99);
    sim_engine *e3 = sim_engine_create(100);
    gsl_rng *a = sim_rng(e1, 1), *b = sim_rng(e1, 2);
    gsl_rng *a2 = sim_rng(e2, 1), *a3 = sim_rng(e3, 1);
    int same_ab = 0, same_aa2 = 0, same_aa3 = 0;
    for (int i = 0; i < 100; i++) {
        unsigned long x = gsl_rng_get(a);
        same_ab += x == gsl_rng_get(b);
        same_aa2 += x == gsl_rng_get(a2);
        same_aa3 += x == gsl_rng_get(a3);
    }
    ck_assert_int_lt(same_ab, 3);
    ck_assert_int_eq(same_aa2, 100);
    ck_assert_int_lt(same_aa3, 3);
    sim_engine_destroy(e1);
    sim_engine_destroy(e2);
    sim_engine_destroy(e3);
}
END_TEST

START_TEST(test_engine_rng_same_stream_twice_aborts)
{
    sim_engine *eng = sim_engine_create(1);
    sim_rng(eng, 5);
    sim_rng(eng, 5);
}
END_TEST

/* One TCase per behaviour, named for it, so a failure names the behaviour. */
#define ADD_TEST(s, fn) ADD_TEST_SIGNAL(s, fn, 0)
#define ADD_TEST_SIGNAL(s, fn, sig)                                           \
    do {                                                                      \
        TCase *tc_ = tcase_create(#fn);                                       \
        tcase_set_timeout(tc_, 60);                                           \
        tcase_add_test_raise_signal(tc_, fn, sig);                            \
        suite_add_tcase(s, tc_);                                              \
    } while (0)

Suite *sim_engine_suite(void)
{
    Suite *s = suite_create("sim_engine");
    ADD_TEST(s, test_engine_mm1_conserves_customers);
    ADD_TEST(s, test_engine_same_seed_same_run_different_seed_differs);
    ADD_TEST(s, test_engine_lower_phase_runs_first_at_equal_time);
    ADD_TEST(s, test_engine_run_until_stops_before_later_events_and_resumes);
    ADD_TEST(s, test_engine_stop_ends_run_after_current_handler);
    ADD_TEST(s, test_engine_cancel_removes_pending_event);
    ADD_TEST(s, test_engine_event_scheduled_now_runs_after_pending_peers);
    ADD_TEST(s, test_engine_register_returns_consecutive_kinds);
    ADD_TEST_SIGNAL(s, test_engine_schedule_in_past_aborts, SIGABRT);
    ADD_TEST_SIGNAL(s, test_engine_unknown_kind_aborts, SIGABRT);
    ADD_TEST(s, test_engine_stream_seed_is_deterministic_and_distinct);
    ADD_TEST(s, test_engine_rng_streams_differ_and_repeat_across_engines);
    ADD_TEST_SIGNAL(s, test_engine_rng_same_stream_twice_aborts, SIGABRT);
    return s;
}
