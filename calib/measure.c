/* Replay statistics and the power loops (see measure.h).
 *
 * Design. The loops are written against calib_gpu_io so that the CUDA
 * program (real events, NVML) and the tests (a simulated clock, counter and
 * queue) run the same code. Three failures of the first version shaped
 * them:
 *  - it queued every replay of a window before polling, so on a slow host
 *    the polling started late and the counter updates it needed were gone;
 *    now replays are topped up from inside the polling loop, never more
 *    than ahead_s (and two replays) ahead;
 *  - it waited for the work with a loop that only left on success, so a
 *    sticky device error spun forever; now every wait checks the device's
 *    answer and has a bound, past which the GPU is declared hung;
 *  - it silently assumed a 0.1 s counter period when it saw too few
 *    updates; now the period is an error to report, and the window is
 *    closed by the updates actually seen.
 * No allocation; nothing here exits. */
#include "calib/measure.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_QUEUE 256          /* replays in flight, at most */
#define COUNTER_POLL_S 0.0005
#define SAMPLE_POLL_S 0.002

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double calib_quantile_sorted(const double *v, int n, double q)
{
    double h = (n - 1) * q;
    int lo = (int)floor(h);
    if (lo >= n - 1)
        return v[n - 1];
    return v[lo] + (h - lo) * (v[lo + 1] - v[lo]);
}

void calib_replay_stats(double *per, int n, double *median, double *p10, double *p90)
{
    qsort(per, (size_t)n, sizeof *per, cmp_dbl);
    *median = calib_quantile_sorted(per, n, 0.5);
    *p10 = calib_quantile_sorted(per, n, 0.1);
    *p90 = calib_quantile_sorted(per, n, 0.9);
}

/* Waits until nothing is in flight; -1 with why on a device error or when
 * limit_s passes first. */
static int drain(const calib_gpu_io *io, double limit_s, char *why, size_t why_n)
{
    double t_end = io->now_s(io->self) + limit_s;
    for (;;) {
        int q = io->in_flight(io->self, why, why_n);
        if (q < 0)
            return -1;
        if (q == 0)
            return 0;
        if (io->now_s(io->self) > t_end) {
            snprintf(why, why_n, "%d replays still running %.1f s after the power window "
                     "closed: the GPU appears hung", q, limit_s);
            return -1;
        }
        io->sleep_s(io->self, 0.001);
    }
}

int calib_power_measure(const calib_gpu_io *io, const calib_power_opts *o,
                        calib_power_result *r, char *why, size_t why_n)
{
    memset(r, 0, sizeof *r);
    r->power_w = NAN;
    r->span_s = NAN;
    if (o->method == CALIB_POWER_NONE) {
        snprintf(r->note, sizeof r->note, "no power reading on this GPU");
        return 0;
    }
    const int counter = o->method == CALIB_POWER_ENERGY_COUNTER;
    const double replay_s = fmax(o->replay_s, 1e-6);
    const double t0 = io->now_s(io->self), t_open = t0 + o->ramp_s;
    /* past this, the counter has failed to update as its period promised */
    const double give_up =
        t_open + o->window_s + (counter ? 3 * fmax(o->period_s, 0.05) + 0.5 : 0);
    unsigned long long e_prev = 0, e = 0, ea = 0, eb = 0;
    int have_prev = 0, asked = 0, dry = 0, closed = 0, launched = 0;
    double ta = -1, tb = -1, sum_w = 0;
    long long reasons = -1;
    for (;;) {
        int q = io->in_flight(io->self, why, why_n);
        if (q < 0)
            return -1;
        double t = io->now_s(io->self);
        if (q == 0 && launched && t >= t_open)
            dry++;
        while (q < 2 || (q < MAX_QUEUE && q * replay_s < o->ahead_s)) {
            if (io->launch(io->self, why, why_n))
                return -1;
            q++;
            launched++;
        }
        t = io->now_s(io->self);
        if (counter) {
            if (io->energy_mj(io->self, &e) == 0) {
                if (have_prev && e != e_prev && t >= t_open) {
                    if (ta < 0) {
                        ta = t;
                        ea = e;
                    } else {
                        tb = t;
                        eb = e;
                    }
                    r->updates++;
                }
                e_prev = e;
                have_prev = 1;
            }
            closed = tb >= 0 && tb - ta >= o->window_s * (1 - 1e-9);
        } else if (t >= t_open) {
            double w;
            if (io->power_w(io->self, o->method, &w) == 0) {
                sum_w += w;
                r->updates++;
            }
            closed = t >= t_open + o->window_s;
        }
        if (!asked && t >= t_open) {   /* once, inside the window */
            reasons = io->reasons(io->self);
            asked = 1;
        }
        if (closed || t >= give_up)
            break;
        io->sleep_s(io->self, counter ? COUNTER_POLL_S : SAMPLE_POLL_S);
    }
    /* The queue holds at most max(ahead_s, 3 replays) of work; a healthy
     * GPU finishes it in that time, so ten times it (and 2 s) means hung. */
    if (drain(io, 2.0 + 10 * fmax(o->ahead_s, 3 * replay_s), why, why_n))
        return -1;
    r->busy_s = io->now_s(io->self) - t0;
    r->throttled = reasons > 0 && (reasons & CALIB_THROTTLE_MASK);
    if (!closed) {
        snprintf(r->note, sizeof r->note, "%d %s in %.2f s after the ramp (window %.0f ms): "
                 "no power", r->updates, counter ? "counter updates" : "power samples",
                 give_up - t_open, o->window_s * 1e3);
        return 0;
    }
    if (dry) {
        snprintf(r->note, sizeof r->note, "the GPU ran out of queued work %d times in the "
                 "window (the host fell behind): no power", dry);
        return 0;
    }
    if (counter) {
        r->span_s = tb - ta;
        r->power_w = (double)(eb - ea) * 1e-3 / r->span_s;
    } else {
        r->span_s = o->window_s;
        r->power_w = r->updates ? sum_w / r->updates : NAN;
    }
    return 0;
}

int calib_counter_period(const calib_gpu_io *io, double max_s, double *period_s,
                         int *updates, char *why, size_t why_n)
{
    double t_end = io->now_s(io->self) + max_s, last = -1, iv[8];
    int n_iv = 0, count = 0, have_prev = 0;
    unsigned long long prev = 0, e;
    while (io->now_s(io->self) < t_end && count < 6) {
        if (io->energy_mj(io->self, &e) == 0) {
            if (have_prev && e != prev) {
                double t = io->now_s(io->self);
                count++;
                if (last >= 0)
                    iv[n_iv++] = t - last;
                last = t;
            }
            prev = e;
            have_prev = 1;
        }
        io->sleep_s(io->self, 0.0002);
    }
    *updates = count;
    *period_s = NAN;
    if (count < 3) {
        snprintf(why, why_n, "the energy counter updated %d times in %.1f s (3 are needed to "
                 "time it)", count, max_s);
        return -1;
    }
    qsort(iv, (size_t)n_iv, sizeof *iv, cmp_dbl);
    *period_s = n_iv % 2 ? iv[n_iv / 2] : 0.5 * (iv[n_iv / 2 - 1] + iv[n_iv / 2]);
    return 0;
}

calib_power_method calib_power_choice(int counter_timed, double period_s, int instant_ok,
                                      int average_ok, char *note, size_t note_n)
{
    note[0] = 0;
    if (counter_timed && period_s <= CALIB_COUNTER_PERIOD_MAX_S)
        return CALIB_POWER_ENERGY_COUNTER;
    calib_power_method m = instant_ok   ? CALIB_POWER_INSTANT
                           : average_ok ? CALIB_POWER_AVERAGE
                           : counter_timed ? CALIB_POWER_ENERGY_COUNTER
                                           : CALIB_POWER_NONE;
    if (counter_timed)
        snprintf(note, note_n, "the energy counter updates every %.0f ms (over %.0f ms)%s%s",
                 period_s * 1e3, CALIB_COUNTER_PERIOD_MAX_S * 1e3,
                 m == CALIB_POWER_ENERGY_COUNTER ? "; no power field answers, so it is used "
                                                   "with windows that long"
                                                 : "; power by ",
                 m == CALIB_POWER_ENERGY_COUNTER ? "" : calib_power_method_name(m));
    else
        snprintf(note, note_n, "the energy counter could not be timed; power by %s",
                 calib_power_method_name(m));
    return m;
}

double calib_idle_power(const calib_gpu_io *io, calib_power_method m, double seconds)
{
    if (m == CALIB_POWER_NONE || seconds <= 0)
        return NAN;
    double t_end = io->now_s(io->self) + seconds, sum = 0, ta = -1, tb = -1;
    unsigned long long prev = 0, ea = 0, eb = 0, e;
    int samples = 0, have_prev = 0;
    while (io->now_s(io->self) < t_end) {
        double t = io->now_s(io->self), w;
        if (m == CALIB_POWER_ENERGY_COUNTER) {
            if (io->energy_mj(io->self, &e) == 0) {
                if (have_prev && e != prev) {
                    if (ta < 0) {
                        ta = t;
                        ea = e;
                    } else {
                        tb = t;
                        eb = e;
                    }
                }
                prev = e;
                have_prev = 1;
            }
        } else if (io->power_w(io->self, m, &w) == 0) {
            sum += w;
            samples++;
        }
        io->sleep_s(io->self, 0.001);
    }
    if (m == CALIB_POWER_ENERGY_COUNTER)
        return tb > ta && ta >= 0 ? (double)(eb - ea) * 1e-3 / (tb - ta) : NAN;
    return samples ? sum / samples : NAN;
}
