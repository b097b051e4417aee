/* Event queue: ordering, cancel through handles, and slot reuse.
 *
 * The randomized test drives tens of thousands of push/pop/cancel operations
 * against a plain sorted array whose order is written out field by field
 * (not through sim_event_before), so the heap and the comparator are each
 * checked against an independent statement of the rule. */
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_rng.h>

#include "sim/evq.h"
#include "tests/suites.h"

static sim_event mk(sim_time_ns t, uint32_t phase, int64_t arg)
{
    return (sim_event){.time = t, .phase = phase, .kind = 0, .arg = arg};
}

START_TEST(test_evq_comparator_orders_time_then_phase_then_seq)
{
    sim_event a = {.time = 10, .phase = 5, .seq = 9};
    sim_event b = {.time = 11, .phase = 0, .seq = 0};
    ck_assert(sim_event_before(&a, &b));     /* time decides first */
    ck_assert(!sim_event_before(&b, &a));

    sim_event c = {.time = 10, .phase = 1, .seq = 100};
    sim_event d = {.time = 10, .phase = 2, .seq = 0};
    ck_assert(sim_event_before(&c, &d));     /* then phase */
    ck_assert(!sim_event_before(&d, &c));

    sim_event e = {.time = 10, .phase = 2, .seq = 3};
    sim_event f = {.time = 10, .phase = 2, .seq = 4};
    ck_assert(sim_event_before(&e, &f));     /* then seq */
    ck_assert(!sim_event_before(&f, &e));
    ck_assert(!sim_event_before(&e, &e));    /* strict */

    /* Extremes of the ranges the queue supports. */
    sim_event g = {.time = INT64_MAX, .phase = 0xffff, .seq = 0};
    sim_event h = {.time = INT64_MAX - 1, .phase = 0xffff,
                   .seq = (UINT64_C(1) << 48) - 1};
    ck_assert(sim_event_before(&h, &g));
    sim_event i = {.time = -5, .phase = 0, .seq = 0};
    ck_assert(sim_event_before(&i, &h));
}
END_TEST

START_TEST(test_evq_fifo_on_equal_time)
{
    sim_evq *q = sim_evq_create();
    for (int i = 0; i < 1000; i++) {
        sim_event ev = mk(42, 3, i);
        sim_evq_push(q, &ev);
    }
    sim_event out;
    for (int i = 0; i < 1000; i++) {
        ck_assert(sim_evq_pop(q, &out));
        ck_assert_int_eq(out.arg, i);
        ck_assert_uint_eq(out.seq, (uint64_t)i);
    }
    ck_assert(!sim_evq_pop(q, &out));
    sim_evq_destroy(q);
}
END_TEST

START_TEST(test_evq_lower_phase_first_on_equal_time)
{
    sim_evq *q = sim_evq_create();
    uint32_t phases[] = {2, 0, 1, 0, 2, 1};
    for (int i = 0; i < 6; i++) {
        sim_event ev = mk(7, phases[i], i);
        sim_evq_push(q, &ev);
    }
    sim_event early = mk(6, 9, 100);
    sim_evq_push(q, &early);
    int64_t want[] = {100, 1, 3, 2, 5, 0, 4};
    sim_event out;
    for (int i = 0; i < 7; i++) {
        ck_assert(sim_evq_pop(q, &out));
        ck_assert_int_eq(out.arg, want[i]);
    }
    sim_evq_destroy(q);
}
END_TEST

START_TEST(test_evq_pop_empty_returns_false)
{
    sim_evq *q = sim_evq_create();
    sim_event out;
    ck_assert(!sim_evq_pop(q, &out));
    ck_assert_ptr_null(sim_evq_peek(q));
    ck_assert_uint_eq(sim_evq_size(q), 0);
    sim_evq_destroy(q);
    sim_evq_destroy(NULL);
}
END_TEST

/* --- randomized check against a sorted reference ------------------------ */

typedef struct ref_ev {
    sim_time_ns time;
    uint32_t phase;
    uint64_t seq;
    int64_t arg;
    sim_event_handle h;
} ref_ev;

/* The rule, written out: time, then phase, then seq. */
static int ref_cmp(const ref_ev *a, const ref_ev *b)
{
    if (a->time != b->time)
        return a->time < b->time ? -1 : 1;
    if (a->phase != b->phase)
        return a->phase < b->phase ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return 0;
}

/* ref[] is kept sorted latest-first, so the next event is ref[n-1]. */
static void ref_insert(ref_ev *ref, size_t *n, ref_ev x)
{
    size_t i = *n;
    while (i > 0 && ref_cmp(&ref[i - 1], &x) < 0) {
        ref[i] = ref[i - 1];
        i--;
    }
    ref[i] = x;
    (*n)++;
}

static void ref_remove(ref_ev *ref, size_t *n, size_t i)
{
    memmove(&ref[i], &ref[i + 1], (*n - i - 1) * sizeof *ref);
    (*n)--;
}

static sim_time_ns random_time(gsl_rng *r)
{
    /* Mostly a narrow range, so equal times (and phases) are common. */
    unsigned long u = gsl_rng_uniform_int(r, 100);
    if (u < 90)
        return (sim_time_ns)gsl_rng_uniform_int(r, 64);
    if (u < 98)
        return (sim_time_ns)gsl_rng_get(r) * 1000;
    return INT64_MAX - (sim_time_ns)gsl_rng_uniform_int(r, 3);
}

START_TEST(test_evq_random_ops_match_sorted_reference)
{
    enum { OPS = 60000, MAXLIVE = 2000, MAXDEAD = 4096 };
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 20240601);
    sim_evq *q = sim_evq_create();
    ref_ev *ref = malloc(MAXLIVE * sizeof *ref);
    sim_event_handle *dead = malloc(MAXDEAD * sizeof *dead);
    size_t n = 0, ndead = 0;
    uint64_t pushes = 0, pops = 0, cancels = 0;

    for (int op = 0; op < OPS; op++) {
        unsigned long u = gsl_rng_uniform_int(r, 100);
        if ((u < 50 && n < MAXLIVE) || n == 0) {
            ref_ev x = {.time = random_time(r),
                        .phase = (uint32_t)gsl_rng_uniform_int(r, 4),
                        .seq = pushes, .arg = op};
            sim_event ev = mk(x.time, x.phase, x.arg);
            ev.seq = 777;   /* ignored by the queue */
            x.h = sim_evq_push(q, &ev);
            ck_assert_uint_ne(x.h, 0);
            ref_insert(ref, &n, x);
            pushes++;
        } else if (u < 80) {
            const sim_event *top = sim_evq_peek(q);
            ck_assert_ptr_nonnull(top);
            sim_event out;
            ck_assert(sim_evq_pop(q, &out));
            const ref_ev *want = &ref[n - 1];
            ck_assert_int_eq(out.time, want->time);
            ck_assert_uint_eq(out.phase, want->phase);
            ck_assert_uint_eq(out.seq, want->seq);
            ck_assert_int_eq(out.arg, want->arg);
            if (ndead < MAXDEAD)
                dead[ndead++] = want->h;
            n--;
            pops++;
        } else if (u < 95) {
            size_t i = gsl_rng_uniform_int(r, n);
            ck_assert(sim_evq_cancel(q, ref[i].h));
            if (ndead < MAXDEAD)
                dead[ndead++] = ref[i].h;
            ref_remove(ref, &n, i);
            cancels++;
        } else if (ndead > 0) {
            ck_assert(!sim_evq_cancel(q, dead[gsl_rng_uniform_int(r, ndead)]));
        }
        ck_assert_uint_eq(sim_evq_size(q), n);
    }
    /* Drain: the rest comes out in reference order too. */
    sim_event out;
    while (n > 0) {
        ck_assert(sim_evq_pop(q, &out));
        ck_assert_uint_eq(out.seq, ref[--n].seq);
    }
    ck_assert(!sim_evq_pop(q, &out));
    ck_assert(pops > 10000 && cancels > 5000);

    free(dead);
    free(ref);
    sim_evq_destroy(q);
    gsl_rng_free(r);
}
END_TEST

/* --- handles ------------------------------------------------------------ */

START_TEST(test_evq_cancel_stale_handle_returns_false)
{
    sim_evq *q = sim_evq_create();
    sim_event a = mk(1, 0, 1), b = mk(2, 0, 2), c = mk(3, 0, 3);
    sim_event_handle ha = sim_evq_push(q, &a);
    sim_event_handle hb = sim_evq_push(q, &b);
    sim_event_handle hc = sim_evq_push(q, &c);

    sim_event out;
    ck_assert(sim_evq_pop(q, &out));
    ck_assert_int_eq(out.arg, 1);
    ck_assert(!sim_evq_cancel(q, ha));          /* already popped */

    ck_assert(sim_evq_cancel(q, hb));
    ck_assert(!sim_evq_cancel(q, hb));          /* already cancelled */

    ck_assert(!sim_evq_cancel(q, 0));           /* never valid */
    ck_assert(!sim_evq_cancel(q, UINT64_MAX));  /* out of range */
    ck_assert(!sim_evq_cancel(q, hc + 1000));   /* slot never used */

    ck_assert_uint_eq(sim_evq_size(q), 1);
    ck_assert(sim_evq_pop(q, &out));
    ck_assert_int_eq(out.arg, 3);
    ck_assert(!sim_evq_cancel(q, hc));
    sim_evq_destroy(q);
}
END_TEST

START_TEST(test_evq_reused_slot_ignores_old_handle)
{
    sim_evq *q = sim_evq_create();
    sim_event a = mk(5, 0, 1);
    sim_event_handle old = sim_evq_push(q, &a);
    ck_assert(sim_evq_cancel(q, old));
    /* The freed slot is the only free one, so the next push reuses it. */
    sim_event b = mk(6, 0, 2);
    sim_event_handle fresh = sim_evq_push(q, &b);
    ck_assert_uint_ne(fresh, old);
    ck_assert(!sim_evq_cancel(q, old));
    ck_assert_uint_eq(sim_evq_size(q), 1);

    /* Same through pop. */
    sim_event out;
    ck_assert(sim_evq_pop(q, &out));
    sim_event c = mk(7, 0, 3);
    sim_event_handle third = sim_evq_push(q, &c);
    ck_assert(!sim_evq_cancel(q, fresh));
    ck_assert(!sim_evq_cancel(q, old));
    ck_assert(sim_evq_cancel(q, third));
    ck_assert_uint_eq(sim_evq_size(q), 0);
    sim_evq_destroy(q);
}
END_TEST

START_TEST(test_evq_peek_matches_pop)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 7);
    sim_evq *q = sim_evq_create();
    for (int i = 0; i < 5000; i++) {
        sim_event ev = mk((sim_time_ns)gsl_rng_uniform_int(r, 300),
                          (uint32_t)gsl_rng_uniform_int(r, 3), i);
        sim_evq_push(q, &ev);
    }
    sim_event prev = {0};
    bool first = true;
    while (sim_evq_size(q) > 0) {
        sim_event peeked = *sim_evq_peek(q), out;
        ck_assert(sim_evq_pop(q, &out));
        ck_assert(memcmp(&peeked, &out, sizeof out) == 0);
        if (!first)
            ck_assert(sim_event_before(&prev, &out));
        prev = out;
        first = false;
    }
    sim_evq_destroy(q);
    gsl_rng_free(r);
}
END_TEST

/* The pool stops growing: with a steady number of pending events, every
 * push reuses a freed slot. Observed through behaviour: peek points into the
 * pool, so if no slot beyond the first N is ever used and the pool is never
 * moved, peek can only ever return N distinct addresses. */
START_TEST(test_evq_steady_state_reuses_slots)
{
    enum { N = 64, ROUNDS = 100000 };
    sim_evq *q = sim_evq_create();
    for (int i = 0; i < N; i++) {
        sim_event ev = mk(i, 0, i);
        sim_evq_push(q, &ev);
    }
    const sim_event *seen[N + 1];
    size_t nseen = 0;
    sim_time_ns t = N;
    for (int i = 0; i < ROUNDS; i++) {
        const sim_event *p = sim_evq_peek(q);
        size_t k = 0;
        while (k < nseen && seen[k] != p)
            k++;
        if (k == nseen) {
            ck_assert_uint_lt(nseen, N);
            seen[nseen++] = p;
        }
        sim_event out;
        sim_evq_pop(q, &out);
        sim_event ev = mk(t++, 0, i);
        sim_evq_push(q, &ev);
    }
    ck_assert_uint_eq(sim_evq_size(q), N);
    sim_evq_destroy(q);
}
END_TEST

START_TEST(test_evq_phase_out_of_range_aborts)
{
    sim_evq *q = sim_evq_create();
    sim_event ev = mk(0, 1u << 16, 0);
    sim_evq_push(q, &ev);
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

Suite *sim_evq_suite(void)
{
    Suite *s = suite_create("sim_evq");
    ADD_TEST(s, test_evq_comparator_orders_time_then_phase_then_seq);
    ADD_TEST(s, test_evq_fifo_on_equal_time);
    ADD_TEST(s, test_evq_lower_phase_first_on_equal_time);
    ADD_TEST(s, test_evq_pop_empty_returns_false);
    ADD_TEST(s, test_evq_random_ops_match_sorted_reference);
    ADD_TEST(s, test_evq_cancel_stale_handle_returns_false);
    ADD_TEST(s, test_evq_reused_slot_ignores_old_handle);
    ADD_TEST(s, test_evq_peek_matches_pop);
    ADD_TEST(s, test_evq_steady_state_reuses_slots);
    ADD_TEST_SIGNAL(s, test_evq_phase_out_of_range_aborts, SIGABRT);
    return s;
}
