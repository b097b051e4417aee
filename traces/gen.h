/* Random generators for synthetic load: arrival processes and token-length
 * distributions, each parsed from a small JSON object and sampled with a
 * caller-owned GSL generator (so streams stay per component). */
#ifndef TRACES_GEN_H
#define TRACES_GEN_H

#include <stdbool.h>
#include <gsl/gsl_rng.h>
#include <cjson/cJSON.h>
#include "sim/base.h"
#include "traces/tokhist.h"

/* ---- length distributions ----------------------------------------------- */

typedef enum len_kind { LEN_FIXED, LEN_UNIFORM, LEN_LOGNORMAL, LEN_ZIPF, LEN_EMPIRICAL } len_kind;

/* {"dist": "fixed", "value": N}
 * {"dist": "uniform", "min": A, "max": B}               integers in [A, B]
 * {"dist": "lognormal", "mean": M, "sigma": S, "min": 1, "max": X}
 *   mean is the distribution's mean (not its median) and sigma the standard
 *   deviation of log(length); samples are rounded and clamped to [min, max].
 * {"dist": "zipf", "s": S, "min": 1, "max": X}
 *   min - 1 + k with P(k) proportional to k^-s, k in 1 .. max - min + 1.
 * {"dist": "empirical", "path": F, "format": "auto", "field": "input",
 *  "skip_bad": false}   the lengths of a trace or length CSV, drawn with
 *   their frequencies (zero lengths and failed rows left out); or
 * {"dist": "empirical", "values": [N, ...]}.
 * An empirical distribution owns its table: len_dist_fini frees it. */
typedef struct len_dist {
    len_kind kind;
    double value;       /* fixed */
    double mu, sigma;   /* lognormal, of log(length) */
    int32_t min, max;
    double zipf_s;      /* zipf exponent and rejection-inversion constants */
    double zipf_hx1, zipf_hn, zipf_t;
    tok_sampler *empirical;
} len_dist;

int len_dist_parse(cJSON *obj, const char *path, len_dist *out, sim_err *err);
void len_dist_fini(len_dist *d);
int32_t len_dist_sample(const len_dist *d, gsl_rng *r);

/* ---- arrival processes ---------------------------------------------------- */

typedef enum arrival_kind {
    ARRIVAL_POISSON,
    ARRIVAL_GAMMA,
    ARRIVAL_PIECEWISE,
    ARRIVAL_DIURNAL,
    ARRIVAL_CLOSED_LOOP,
    ARRIVAL_BURSTY,
} arrival_kind;

/* {"process": "poisson", "rate_per_s": R}
 * {"process": "gamma", "rate_per_s": R, "cv": C}   gamma gaps with mean
 *   1/R and coefficient of variation C (C > 1: burstier than Poisson)
 * {"process": "piecewise", "path": "rates.csv" | "segments": [[start_s,
 *   rate_per_s], ...], "repeat_s": 0}   a Poisson process whose rate is
 *   constant between the listed starts (the first at 0); the last rate holds
 *   forever, or the schedule repeats every repeat_s. The CSV has the header
 *   start_s,rate_per_s. A rate of 0 that holds forever ends the arrivals.
 * {"process": "diurnal", "rate_per_s": R, "amplitude": A, "period_s": 86400,
 *   "peak_s": 0}   a Poisson process with rate R (1 + A cos(2 pi (t - peak)
 *   / period)), A in [0, 1]
 * {"process": "closed_loop", "clients": N, "think_s": T, "think":
 *   "exponential"}   N clients, each sending its first request at 0 and each
 *   next one a think time (exponential with mean T, or "fixed") after its
 *   previous request finished.
 * {"process": "bursty", "rate_per_s": R, "burst_rate_per_s": B, "burst_s": D,
 *   "calm_s": C}   a two-state Markov-modulated Poisson process: calm
 *   stretches (rate R) and bursts (rate B) alternate, each lasting an
 *   exponential time with mean C and D; it starts calm. */
typedef struct arrival_proc {
    arrival_kind kind;
    double rate_per_s;                 /* poisson, gamma, diurnal (mean) */
    double gamma_shape, gamma_scale_s; /* gamma, from rate and cv */
    sim_time_ns *seg_start_ns;         /* piecewise, owned */
    double *seg_rate;
    int32_t n_segs;
    sim_time_ns period_ns;             /* piecewise repeat (0: none); diurnal */
    double amplitude;                  /* diurnal */
    sim_time_ns peak_ns;
    int32_t clients;                   /* closed loop */
    double think_s;
    bool think_fixed;
    double burst_rate_per_s, burst_s, calm_s;   /* bursty */
} arrival_proc;

int arrival_parse(cJSON *obj, const char *path, arrival_proc *out, sim_err *err);
void arrival_fini(arrival_proc *a);
/* Renewal processes (poisson, gamma): the time from one arrival to the next. */
sim_time_ns arrival_gap_ns(const arrival_proc *a, gsl_rng *r);

/* The state of one run of an arrival process. */
typedef struct arrival_gen {
    const arrival_proc *p;   /* borrowed */
    gsl_rng *rng;
    sim_time_ns clock_ns;    /* last arrival */
    int32_t seg;             /* piecewise: current segment and period start; */
    sim_time_ns seg_base_ns; /* bursty: 1 in a burst, and when the state ends */
    sim_time_ns *ready_ns;   /* closed loop: a min-heap of client ready times */
    int32_t *ready_client;   /* and the client (0 .. clients - 1) of each */
    int32_t n_ready;
    int32_t client;          /* closed loop: the client of the last ARRIVAL_AT */
} arrival_gen;

enum { ARRIVAL_END = 0, ARRIVAL_AT = 1, ARRIVAL_WAIT = 2 };

void arrival_gen_init(arrival_gen *g, const arrival_proc *p, gsl_rng *r);
void arrival_gen_fini(arrival_gen *g);
/* The next arrival, at or after `now` for a closed loop. ARRIVAL_AT: at
 * *t_ns. ARRIVAL_WAIT (closed loop): none due now; *t_ns is when the next
 * is due, SIM_TIME_NEVER while every client waits for a completion.
 * ARRIVAL_END: the rate is 0 from here on. */
int arrival_gen_next(arrival_gen *g, sim_time_ns now, sim_time_ns *t_ns);
/* Closed loop: a request finished at `now`, its client thinks and sends
 * again. Returns 1 for a closed loop, 0 (and does nothing) otherwise. */
int arrival_gen_complete(arrival_gen *g, sim_time_ns now);
/* The same for a named client (a session's lane, traces/prefix_gen.h): it
 * is ready again a think time after `now`. arrival_gen_complete names none
 * (client 0); clients matter only to sources that track them. */
int arrival_gen_complete_client(arrival_gen *g, sim_time_ns now, int32_t client);

#endif
