/* Tests for calib/measure.c against a simulated GPU: a clock that sleeping
 * advances, a queue of replays that run back to back, an energy counter
 * that integrates the power of a busy or idle GPU and updates every
 * period, and faults (a sticky error, a hang, a counter slower than
 * believed). The power loop must measure the busy power, keep the queue
 * short from the first launch on, finish within the time budget.c charges
 * for it, and return (never spin) on every fault. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib/budget.h"
#include "calib/measure.h"
#include "tests/suites.h"

#define MAX_REPLAYS 200000
#define MAX_BUSY 4096

typedef struct fake_gpu {
    double t;                   /* the clock */
    double replay_s, busy_w, idle_w;
    double period_s;            /* counter updates; 0: never */
    double fail_at;             /* a sticky error from then on; 0: none */
    double hang_at;             /* replays launched after this never finish; 0: none */
    double end[MAX_REPLAYS];    /* replay i finishes at end[i] */
    int launched, done;
    double busy[MAX_BUSY][2];   /* busy intervals, merged when contiguous */
    int n_busy;
    /* observations */
    double max_ahead_s;         /* queued work ahead of the clock, at a launch */
    int max_in_flight;
    int counter_reads, counter_reads_before_last_launch;
} fake_gpu;

static double f_now(void *self)
{
    return ((fake_gpu *)self)->t;
}

static void f_sleep(void *self, double s)
{
    ((fake_gpu *)self)->t += s;
}

static double busy_until(const fake_gpu *g, double t)
{
    double b = 0;
    for (int i = 0; i < g->n_busy; i++)
        if (g->busy[i][0] < t)
            b += fmin(g->busy[i][1], t) - g->busy[i][0];
    return b;
}

static int f_energy(void *self, unsigned long long *mj)
{
    fake_gpu *g = self;
    g->counter_reads++;
    double u = g->period_s > 0 ? floor(g->t / g->period_s) * g->period_s : 0;
    double j = g->idle_w * u + (g->busy_w - g->idle_w) * busy_until(g, u);
    *mj = 1000000 + (unsigned long long)(j * 1000);
    return 0;
}

static int is_busy(const fake_gpu *g)
{
    for (int i = 0; i < g->n_busy; i++)
        if (g->busy[i][0] <= g->t && g->t < g->busy[i][1])
            return 1;
    return 0;
}

static int f_power(void *self, calib_power_method m, double *w)
{
    (void)m;
    fake_gpu *g = self;
    *w = is_busy(g) ? g->busy_w : g->idle_w;
    return 0;
}

static long long f_reasons(void *self)
{
    (void)self;
    return 0;
}

static int f_launch(void *self, char *why, size_t n)
{
    fake_gpu *g = self;
    if (g->launched == MAX_REPLAYS) {
        snprintf(why, n, "fake: too many replays");
        return -1;
    }
    double start = g->launched ? fmax(g->t, g->end[g->launched - 1]) : g->t;
    double end = g->hang_at > 0 && g->t >= g->hang_at ? INFINITY : start + g->replay_s;
    g->end[g->launched++] = end;
    if (isfinite(end)) {
        if (g->n_busy && g->busy[g->n_busy - 1][1] == start)
            g->busy[g->n_busy - 1][1] = end;
        else if (g->n_busy < MAX_BUSY) {
            g->busy[g->n_busy][0] = start;
            g->busy[g->n_busy++][1] = end;
        }
        g->max_ahead_s = fmax(g->max_ahead_s, end - g->t);
    }
    g->counter_reads_before_last_launch = g->counter_reads;
    g->t += 5e-6;   /* the host's cost of a launch */
    return 0;
}

static int f_in_flight(void *self, char *why, size_t n)
{
    fake_gpu *g = self;
    if (g->fail_at > 0 && g->t >= g->fail_at) {
        snprintf(why, n, "fake: an illegal memory access was encountered");
        return -1;
    }
    while (g->done < g->launched && g->end[g->done] <= g->t)
        g->done++;
    int q = g->launched - g->done;
    if (q > g->max_in_flight)
        g->max_in_flight = q;
    return q;
}

static fake_gpu *fake_new(double replay_s, double period_s)
{
    fake_gpu *g = calloc(1, sizeof *g);
    g->replay_s = replay_s;
    g->period_s = period_s;
    g->busy_w = 612.5;
    g->idle_w = 78;
    g->t = 10.0;   /* not at a counter update */
    return g;
}

static calib_gpu_io fake_io(fake_gpu *g)
{
    calib_gpu_io io = {g, f_now, f_sleep, f_energy, f_power, f_reasons, f_launch, f_in_flight};
    return io;
}

static calib_power_opts opts(double replay_s, double period_s)
{
    calib_power_opts o = {CALIB_POWER_ENERGY_COUNTER, replay_s, period_s,
                          calib_window_s(period_s, 0), CALIB_RAMP_S, CALIB_AHEAD_S};
    return o;
}

START_TEST(test_measure_power_is_the_busy_power)
{
    const double periods[] = {0.02, 0.1};
    const double replays[] = {250e-6, 3e-3};
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++) {
            fake_gpu *g = fake_new(replays[k], periods[i]);
            calib_gpu_io io = fake_io(g);
            calib_power_opts o = opts(replays[k], periods[i]);
            calib_power_result r;
            char why[256] = "";
            ck_assert_msg(calib_power_measure(&io, &o, &r, why, sizeof why) == 0, "%s", why);
            ck_assert_msg(fabs(r.power_w / g->busy_w - 1) < 0.005,
                          "period %g, replay %g: %.2f W for %.2f W (%s)", periods[i], replays[k],
                          r.power_w, g->busy_w, r.note);
            ck_assert(r.span_s >= o.window_s - 1e-9);
            ck_assert(r.updates >= 2);
            /* the loop takes no longer than the budget charges a power point
             * (the ramp, the span, waiting for updates, the drain) plus a
             * counter poll's granularity */
            ck_assert_msg(r.busy_s <= calib_energy_point_s(periods[i], 0) + 2 * replays[k] +
                                          periods[i] / 2,
                          "%.3f s, budget %.3f s", r.busy_s, calib_energy_point_s(periods[i], 0));
            ck_assert_int_eq(f_in_flight(g, why, sizeof why), 0);   /* drained */
            free(g);
        }
}
END_TEST

/* Replays are topped up while polling, never queued all at once: the
 * queue stays within ahead_s (or three replays) of the clock, and the
 * counter is read from the first milliseconds on. */
START_TEST(test_measure_power_keeps_the_queue_short)
{
    const double replays[] = {250e-6, 30e-3};
    for (int k = 0; k < 2; k++) {
        fake_gpu *g = fake_new(replays[k], 0.1);
        calib_gpu_io io = fake_io(g);
        calib_power_opts o = opts(replays[k], 0.1);
        calib_power_result r;
        char why[256] = "";
        ck_assert_msg(calib_power_measure(&io, &o, &r, why, sizeof why) == 0, "%s", why);
        ck_assert_msg(g->max_ahead_s <= fmax(CALIB_AHEAD_S, 2 * replays[k]) + replays[k] + 1e-6,
                      "%.4f s of work queued ahead", g->max_ahead_s);
        ck_assert(g->max_in_flight <= 256);
        /* the last launch came after many counter reads: polling ran
         * throughout, not after everything was queued */
        ck_assert_int_gt(g->counter_reads_before_last_launch, 100);
        ck_assert(fabs(r.power_w / g->busy_w - 1) < 0.005);
        free(g);
    }
}
END_TEST

START_TEST(test_measure_power_returns_on_sticky_error)
{
    fake_gpu *g = fake_new(250e-6, 0.1);
    g->fail_at = g->t + 0.12;
    calib_gpu_io io = fake_io(g);
    calib_power_opts o = opts(250e-6, 0.1);
    calib_power_result r;
    char why[256] = "";
    double t0 = g->t;
    ck_assert_int_eq(calib_power_measure(&io, &o, &r, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "illegal memory access") != NULL, "%s", why);
    ck_assert(g->t - t0 < 0.2);   /* at the error, not at a timeout */
    free(g);
}
END_TEST

START_TEST(test_measure_power_gives_up_on_a_hung_gpu)
{
    fake_gpu *g = fake_new(250e-6, 0.1);
    g->hang_at = g->t + 0.1;
    calib_gpu_io io = fake_io(g);
    calib_power_opts o = opts(250e-6, 0.1);
    calib_power_result r;
    char why[256] = "";
    double t0 = g->t;
    ck_assert_int_eq(calib_power_measure(&io, &o, &r, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "hung") != NULL, "%s", why);
    /* bounded: the window's give-up time and the drain's limit */
    double bound = CALIB_RAMP_S + o.window_s + 3 * 0.1 + 0.5 + 2.0 + 10 * CALIB_AHEAD_S + 0.1;
    ck_assert_msg(g->t - t0 <= bound, "returned after %.2f s (bound %.2f s)", g->t - t0, bound);
    free(g);
}
END_TEST

/* A counter slower than the period measured for it: no power and a note
 * saying so, in bounded time; never a made-up number. */
START_TEST(test_measure_power_slow_counter_gives_no_power)
{
    fake_gpu *g = fake_new(250e-6, 5.0);
    calib_gpu_io io = fake_io(g);
    calib_power_opts o = opts(250e-6, 0.1);
    calib_power_result r;
    char why[256] = "";
    ck_assert_int_eq(calib_power_measure(&io, &o, &r, why, sizeof why), 0);
    ck_assert(isnan(r.power_w));
    ck_assert_msg(strstr(r.note, "counter updates") != NULL, "%s", r.note);
    ck_assert(r.busy_s < CALIB_RAMP_S + o.window_s + 3 * 0.1 + 0.5 + 0.1);
    free(g);
}
END_TEST

START_TEST(test_measure_power_sampling_methods)
{
    const calib_power_method methods[] = {CALIB_POWER_INSTANT, CALIB_POWER_AVERAGE};
    for (int i = 0; i < 2; i++) {
        fake_gpu *g = fake_new(250e-6, 0);
        calib_gpu_io io = fake_io(g);
        calib_power_opts o = opts(250e-6, 0);
        o.method = methods[i];
        calib_power_result r;
        char why[256] = "";
        ck_assert_int_eq(calib_power_measure(&io, &o, &r, why, sizeof why), 0);
        ck_assert(fabs(r.power_w / g->busy_w - 1) < 1e-9);   /* every sample was busy */
        ck_assert_int_gt(r.updates, 10);
        free(g);
    }
    fake_gpu *g = fake_new(250e-6, 0.1);
    calib_gpu_io io = fake_io(g);
    calib_power_opts o = opts(250e-6, 0.1);
    o.method = CALIB_POWER_NONE;
    calib_power_result r;
    char why[256] = "";
    ck_assert_int_eq(calib_power_measure(&io, &o, &r, why, sizeof why), 0);
    ck_assert(isnan(r.power_w));
    ck_assert_int_eq(g->launched, 0);
    free(g);
}
END_TEST

START_TEST(test_measure_counter_period)
{
    const double periods[] = {0.02, 0.1, 0.25};
    for (int i = 0; i < 3; i++) {
        fake_gpu *g = fake_new(0, periods[i]);
        calib_gpu_io io = fake_io(g);
        double p;
        int updates;
        char why[256] = "";
        ck_assert_msg(calib_counter_period(&io, 2.5, &p, &updates, why, sizeof why) == 0, "%s",
                      why);
        ck_assert_msg(fabs(p - periods[i]) < 0.001, "%.4f s for %.4f s", p, periods[i]);
        ck_assert_int_ge(updates, 3);
        free(g);
    }
    /* too slow to time in 2.5 s, and a counter that never moves: errors
     * that say what was seen, and no period */
    const double slow[] = {2.0, 0};
    for (int i = 0; i < 2; i++) {
        fake_gpu *g = fake_new(0, slow[i]);
        g->busy_w = g->idle_w = 80;
        calib_gpu_io io = fake_io(g);
        double p = 1;
        int updates = -1;
        char why[256] = "";
        ck_assert_int_eq(calib_counter_period(&io, 2.5, &p, &updates, why, sizeof why), -1);
        ck_assert(isnan(p));
        ck_assert_int_lt(updates, 3);
        char want[64];
        snprintf(want, sizeof want, "updated %d times in 2.5 s", updates);
        ck_assert_msg(strstr(why, want) != NULL, "%s", why);
        free(g);
    }
}
END_TEST

START_TEST(test_measure_idle_power)
{
    fake_gpu *g = fake_new(0, 0.1);
    calib_gpu_io io = fake_io(g);
    double w = calib_idle_power(&io, CALIB_POWER_ENERGY_COUNTER, 1.0);
    ck_assert(fabs(w / g->idle_w - 1) < 2e-3);   /* updates seen up to a poll (1 ms) late */
    ck_assert(isnan(calib_idle_power(&io, CALIB_POWER_NONE, 1.0)));
    ck_assert(fabs(calib_idle_power(&io, CALIB_POWER_INSTANT, 0.2) - g->idle_w) < 1e-9);
    free(g);
}
END_TEST

START_TEST(test_measure_replay_stats_interpolate)
{
    /* 21 replays 1..21 in a scrambled order: the 10th and 90th percentiles
     * are order statistics 3 and 19, strictly inside the sample */
    double per[21];
    for (int i = 0; i < 21; i++)
        per[i] = (double)((i * 8) % 21 + 1);
    double med, p10, p90;
    calib_replay_stats(per, 21, &med, &p10, &p90);
    ck_assert(med == 11 && p10 == 3 && p90 == 19);
    for (int i = 1; i < 21; i++)
        ck_assert(per[i] > per[i - 1]);   /* sorted */
    /* with nine, the old count, they are no longer the minimum and maximum */
    double nine[9] = {9, 1, 8, 2, 7, 3, 6, 4, 5};
    calib_replay_stats(nine, 9, &med, &p10, &p90);
    ck_assert(med == 5);
    ck_assert(p10 > 1 && p10 < 2);
    ck_assert(p90 > 8 && p90 < 9);
    double one = 4;
    calib_replay_stats(&one, 1, &med, &p10, &p90);
    ck_assert(med == 4 && p10 == 4 && p90 == 4);
    double two[2] = {10, 20};
    calib_replay_stats(two, 2, &med, &p10, &p90);
    ck_assert(med == 15 && p10 == 11 && p90 == 19);
}
END_TEST

START_TEST(test_measure_power_choice_never_assumes_a_period)
{
    char note[256];
    ck_assert_int_eq(calib_power_choice(1, 0.1, 1, 1, note, sizeof note),
                     CALIB_POWER_ENERGY_COUNTER);
    ck_assert_str_eq(note, "");
    /* too slow for short windows: a power field when one answers */
    ck_assert_int_eq(calib_power_choice(1, 1.0, 1, 1, note, sizeof note), CALIB_POWER_INSTANT);
    ck_assert_msg(strstr(note, "every 1000 ms") && strstr(note, "instant_power"), "%s", note);
    ck_assert_int_eq(calib_power_choice(1, 1.0, 0, 1, note, sizeof note), CALIB_POWER_AVERAGE);
    ck_assert_int_eq(calib_power_choice(1, 1.0, 0, 0, note, sizeof note),
                     CALIB_POWER_ENERGY_COUNTER);
    ck_assert_msg(strstr(note, "windows that long") != NULL, "%s", note);
    /* not timed at all: never the counter with a guessed period */
    ck_assert_int_eq(calib_power_choice(0, NAN, 1, 0, note, sizeof note), CALIB_POWER_INSTANT);
    ck_assert_int_eq(calib_power_choice(0, NAN, 0, 0, note, sizeof note), CALIB_POWER_NONE);
    ck_assert_msg(strstr(note, "could not be timed; power by none") != NULL, "%s", note);
}
END_TEST

Suite *calib_measure_suite(void)
{
    Suite *s = suite_create("calib_measure");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_measure_power_is_the_busy_power);
    tcase_add_test(tc, test_measure_power_keeps_the_queue_short);
    tcase_add_test(tc, test_measure_power_returns_on_sticky_error);
    tcase_add_test(tc, test_measure_power_gives_up_on_a_hung_gpu);
    tcase_add_test(tc, test_measure_power_slow_counter_gives_no_power);
    tcase_add_test(tc, test_measure_power_sampling_methods);
    tcase_add_test(tc, test_measure_counter_period);
    tcase_add_test(tc, test_measure_idle_power);
    tcase_add_test(tc, test_measure_replay_stats_interpolate);
    tcase_add_test(tc, test_measure_power_choice_never_assumes_a_period);
    suite_add_tcase(s, tc);
    return s;
}
