/* Capacity search: the highest request rate at which a config still meets
 * its SLOs, as DistServe (goodput: the largest rate at which a given share
 * of requests meets both the TTFT and the TPOT target) and Sarathi-Serve
 * (capacity: the largest load under a latency bound such as P99 TBT) define
 * it.
 *
 * A probe runs the config at one value of the searched path (by default
 * the arrival rate, workload.arrival.rate_per_s; for a trace replayed on
 * its own timestamps, workload.rate_scale, which keeps the trace's arrival
 * pattern; any numeric config path with --over) with `seeds` seeds and
 * averages their summaries. A path the parser takes only integers at
 * (cluster.instances) is searched in whole numbers, down to a bracket one
 * apart. It passes when every
 * bound holds on that average (ttft_p90 <= 500 ms, ...) and the SLO
 * attainment (the share of requests meeting every per-request target, the
 * first ttft_* and tpot_* bounds) is at least `attain`. The search doubles
 * or halves the starting rate until one probe passes and a higher one
 * fails, then narrows that bracket (several rates at once when there are
 * more workers than seeds) until it is within `tolerance` of its top. It
 * assumes attainment falls as the rate grows; where noise breaks that, the
 * bracket is still a passing run below a failing one. */
#ifndef SERVE_CAPACITY_H
#define SERVE_CAPACITY_H

#include <stdbool.h>
#include <cjson/cJSON.h>
#include "serve/metrics.h"

typedef enum cap_metric { CAP_TTFT, CAP_TBT, CAP_TPOT, CAP_E2E, CAP_QUEUE } cap_metric;
typedef enum cap_stat { CAP_MEAN, CAP_P50, CAP_P90, CAP_P99 } cap_stat;

typedef struct cap_bound {
    cap_metric metric;
    cap_stat stat;
    double limit_s;
} cap_bound;

#define CAP_MAX_BOUNDS 20

typedef struct cap_spec {
    cap_bound bounds[CAP_MAX_BOUNDS];
    int n_bounds;
    double attain;        /* least SLO attainment, in [0, 1]; 0: not checked */
    int seeds;            /* runs per probe, seeds base, base + 1, ... */
    double start_rate;    /* first probe, req/s; 0: the config's rate */
    double tolerance;     /* stop once (fail - pass) / fail <= tolerance */
    int max_probes;       /* stop narrowing after this many probes in all */
    int jobs;             /* worker processes; <= 0: one per core */
    char *const *sets;    /* the config's --set assignments (may be NULL), so */
    int n_sets;           /* that messages name them as a value's source */
    const char *over;     /* the path searched ("workload.rate_scale"); NULL: the
                           * default (cap_default_over) */
} cap_spec;

/* Doublings or halvings of the starting rate before the search gives up
 * bracketing (a factor of 16 million either way). */
#define CAP_BRACKET_STEPS 24

/* Defaults: attain 0.9, 1 seed, tolerance 0.02, 40 probes. */
void cap_spec_init(cap_spec *spec);
/* Parses "ttft_p90=500ms,tpot_p90=50" (metric ttft, tbt, tpot, e2e or
 * queue; statistic mean, p50, p90 or p99; a number in ms, or with an ms or
 * s suffix) into spec's bounds. A bound given twice (also across calls) is
 * an error. */
int cap_parse_slo(const char *text, cap_spec *spec, sim_err *err);
/* Writes "ttft_p90" for a bound into buf (CAP_NAME_SIZE bytes are enough);
 * returns buf. */
#define CAP_NAME_SIZE 16
const char *cap_bound_name(const cap_bound *b, char *buf, size_t size);
/* A bound's statistic in a summary, in seconds. */
double cap_bound_value(const cap_bound *b, const run_summary *s);

typedef struct cap_probe {
    double rate;          /* the searched path's value: req/s, the whole cluster,
                           * when it is the arrival rate */
    int pass;
    run_summary mean;     /* averaged over the seeds */
    char why[200];        /* for a failing probe: the first condition missed */
} cap_probe;

/* Why a search ended without a bracket within the tolerance. */
typedef enum cap_capped {
    CAP_DONE = 0,         /* it did not: bracket found and narrowed */
    CAP_CAPPED_BRACKET,   /* CAP_BRACKET_STEPS doublings or halvings, all the same */
    CAP_CAPPED_PROBES,    /* max_probes reached while narrowing */
} cap_capped;

typedef struct cap_result {
    cap_probe *probes;    /* in the order run */
    int n_probes;
    int lo, hi;           /* the bracketing probes: highest pass, lowest fail above it; -1 none */
    double rate;          /* capacity: the passing bracket's rate (0: nothing passed);
                           * with no failing probe (hi -1), only a lower bound */
    double per_instance, per_gpu;   /* for a rate or a rate_scale: the request
                                     * rate (measured for a rate_scale) per
                                     * instance and per GPU; else 0 */
    cap_capped capped;    /* where the search stopped short of its answer */
    char over[128];       /* the path searched */
    bool integer;         /* searched in whole numbers */
    bool is_rate;         /* over is workload.arrival.rate_per_s */
    double throughput;    /* measured req/s of the passing bracket's probe */
} cap_result;

/* What cap_search returns; also the command line's exit statuses. */
typedef enum cap_status {
    CAP_OK = 0,
    CAP_FAILED = 1,       /* a run failed, or the search was interrupted */
    CAP_BAD_INPUT = 2     /* the config (or a probe's version of it) is not valid:
                           * it is parsed and its cluster built before any run */
} cap_status;

/* Searches from the config tree `config` (borrowed, not changed; named
 * `name` in messages). Whether a bracket was found is in *out, not in the
 * status. */
cap_status cap_search(const cJSON *config, const char *name, const cap_spec *spec,
                      cap_result *out, sim_err *err);
void cap_result_fini(cap_result *r);

/* Writes every probe of r to the HDF5 file at path (tool/OUTPUT.md,
 * "Capacity probes"): /probes, one row per probe in the order run (the
 * summary's columns averaged over the seeds, then value, pass, why), and
 * root attributes over, slo, attain, seeds, integer, capacity (NaN when
 * nothing passed), lo and hi (probe rows, -1 none), config (the searched
 * config as JSON) and servesim_version. `config_name` is the config's file
 * (an input the output must not be). */
int cap_write_probes(const char *path, const char *config_name, const cJSON *config,
                     const cap_spec *spec, const cap_result *r, sim_err *err);

/* The path capacity searches in config tree `config` when --over is not
 * given: workload.rate_scale for a trace replayed on its own timestamps
 * (a source other than synthetic, without an "arrival"), else
 * workload.arrival.rate_per_s. */
const char *cap_default_over(const cJSON *config);

#endif
