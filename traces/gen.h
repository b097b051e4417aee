/* Random generators for synthetic load: arrival processes and token-length
 * distributions, each parsed from a small JSON object and sampled with a
 * caller-owned GSL generator (so streams stay per component). */
#ifndef TRACES_GEN_H
#define TRACES_GEN_H

#include <gsl/gsl_rng.h>
#include <cjson/cJSON.h>
#include "sim/base.h"

typedef enum len_kind { LEN_FIXED, LEN_LOGNORMAL } len_kind;

/* {"dist": "fixed", "value": N}
 * {"dist": "lognormal", "mean": M, "sigma": S, "min": 1, "max": X}
 *   mean is the distribution's mean (not its median) and sigma the standard
 *   deviation of log(length); samples are rounded and clamped to [min, max]. */
typedef struct len_dist {
    len_kind kind;
    double value;       /* fixed */
    double mu, sigma;   /* lognormal, of log(length) */
    int32_t min, max;
} len_dist;

int len_dist_parse(cJSON *obj, const char *path, len_dist *out, sim_err *err);
int32_t len_dist_sample(const len_dist *d, gsl_rng *r);

typedef enum arrival_kind { ARRIVAL_POISSON } arrival_kind;

/* {"process": "poisson", "rate_per_s": R} */
typedef struct arrival_proc {
    arrival_kind kind;
    double rate_per_s;
} arrival_proc;

int arrival_parse(cJSON *obj, const char *path, arrival_proc *out, sim_err *err);
/* Time from one arrival to the next. */
sim_time_ns arrival_gap_ns(const arrival_proc *a, gsl_rng *r);

#endif
