/* The host half of a measurement: statistics of timed replays, and the
 * loops that read power while the GPU works (a power window, the energy
 * counter's update period, idle power). The GPU and NVML are reached
 * through a table of callbacks, so that the loops run unchanged against a
 * simulated GPU in the tests: they must never spin forever on a device
 * error, never queue all the work before they start polling, and never
 * guess a counter period they did not see. Plain C. */
#ifndef CALIB_MEASURE_H
#define CALIB_MEASURE_H

#include <stddef.h>
#include "calib/nvml.h"

/* Sorts per[0..n-1] and sets the median and the 10th and 90th percentiles,
 * linearly interpolated between order statistics (R's type 7): with 21
 * replays the 10th percentile is the third smallest. n >= 1. */
void calib_replay_stats(double *per, int n, double *median, double *p10, double *p90);
/* The q-quantile (0..1) of sorted v[0..n-1], interpolated as above. */
double calib_quantile_sorted(const double *v, int n, double q);

/* What the loops need from the GPU and NVML. Every callback gets `self`. */
typedef struct calib_gpu_io {
    void *self;
    double (*now_s)(void *self);             /* monotonic */
    void (*sleep_s)(void *self, double s);
    /* total energy counter, millijoules; 0 or -1 */
    int (*energy_mj)(void *self, unsigned long long *mj);
    /* power by an instantaneous or averaging method, watts; 0 or -1 */
    int (*power_w)(void *self, calib_power_method m, double *w);
    long long (*reasons)(void *self);        /* throttle reasons; -1 unknown */
    /* Enqueues one replay of the work being measured; 0, or -1 with why
     * (a device error). */
    int (*launch)(void *self, char *why, size_t why_n);
    /* Replays enqueued and not finished; -1 with why on a device error
     * (a sticky one: the context is lost). */
    int (*in_flight)(void *self, char *why, size_t why_n);
} calib_gpu_io;

typedef struct calib_power_opts {
    calib_power_method method;
    double replay_s;   /* one replay's duration (from the timed replays) */
    double period_s;   /* the counter's update period (ENERGY_COUNTER) */
    double window_s;   /* the span: between counter updates, or of the samples */
    double ramp_s;     /* busy time before the window opens */
    double ahead_s;    /* queue at most this much work ahead of the host */
} calib_power_opts;

typedef struct calib_power_result {
    double power_w;    /* NAN when not measured; note says why */
    double span_s;     /* time between the counter updates used, or sampled */
    double busy_s;     /* wall time the measurement took, drain included */
    int updates;       /* counter updates (or samples) inside the window */
    int throttled;     /* clocks held back (power or thermal) in the window */
    char note[160];
} calib_power_result;

/* Keeps the GPU busy with replays queued at most ahead_s (and two
 * replays) ahead of the host while it polls the counter every 0.5 ms (the
 * power fields every 2 ms), from the first launch on: power is the energy
 * between the first update after the ramp and the first one at least
 * window_s later, over the time between them. Gives up on power (NAN and a
 * note) when the counter does not update in time or the queue ran dry;
 * returns -1 with why when the device reports an error or the replays do
 * not drain within a bound (a hung GPU), never waiting forever. */
int calib_power_measure(const calib_gpu_io *io, const calib_power_opts *o,
                        calib_power_result *r, char *why, size_t why_n);

/* The energy counter's update period: the median interval between
 * updates, polled until 6 updates or max_s. Fewer than 3 updates is an
 * error (why says how many in how long): the caller must not make up a
 * period. *updates gets the count either way. */
int calib_counter_period(const calib_gpu_io *io, double max_s, double *period_s,
                         int *updates, char *why, size_t why_n);

/* The power method to measure with, given what was seen at start-up: the
 * energy counter when it was timed and updates at least every
 * CALIB_COUNTER_PERIOD_MAX_S (a slower one would make the 625 windows of a
 * plan take tens of minutes), else the instant-power field, else the
 * average-power field, else the counter if it was timed at all, else none.
 * note says why when the counter is passed over ("" otherwise). */
#define CALIB_COUNTER_PERIOD_MAX_S 0.25
calib_power_method calib_power_choice(int counter_timed, double period_s, int instant_ok,
                                      int average_ok, char *note, size_t note_n);

/* Average power over `seconds` with nothing queued: between the first and
 * last counter update, or the mean of samples every ms. NAN if
 * unmeasurable. */
double calib_idle_power(const calib_gpu_io *io, calib_power_method m, double seconds);

#endif
