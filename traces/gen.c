/* Arrival processes and length distributions (see gen.h). The samplers are
 * GSL's; this file only parses their parameters and turns samples into
 * integer tokens and nanoseconds. */
#include "traces/gen.h"

#include <math.h>
#include <string.h>
#include <gsl/gsl_randist.h>

#include "sim/jsoncfg.h"

int len_dist_parse(cJSON *obj, const char *path, len_dist *out, sim_err *err)
{
    const char *dist;
    memset(out, 0, sizeof *out);
    if (jcfg_str(obj, path, "dist", JCFG_REQUIRED_STR, &dist, err))
        return -1;
    if (!strcmp(dist, "fixed")) {
        static const char *const keys[] = {"dist", "value", NULL};
        int64_t v;
        if (jcfg_check_keys(obj, path, keys, err) ||
            jcfg_int(obj, path, "value", JCFG_REQUIRED_INT, 1, 10000000, &v, err))
            return -1;
        out->kind = LEN_FIXED;
        out->value = (double)v;
        out->min = out->max = (int32_t)v;
        return 0;
    }
    if (!strcmp(dist, "lognormal")) {
        static const char *const keys[] = {"dist", "mean", "sigma", "min", "max", NULL};
        double mean, sigma;
        int64_t lo, hi;
        if (jcfg_check_keys(obj, path, keys, err) ||
            jcfg_num(obj, path, "mean", JCFG_REQUIRED_NUM, 1, 1e7, &mean, err) ||
            jcfg_num(obj, path, "sigma", JCFG_REQUIRED_NUM, 0, 5, &sigma, err) ||
            jcfg_int(obj, path, "min", 1, 1, 10000000, &lo, err) ||
            jcfg_int(obj, path, "max", 10000000, 1, 10000000, &hi, err))
            return -1;
        if (hi < lo)
            return sim_errf(err, "%s.max: expected an integer >= min (%lld), got %lld",
                            path, (long long)lo, (long long)hi);
        out->kind = LEN_LOGNORMAL;
        out->sigma = sigma;
        /* E[X] = exp(mu + sigma^2 / 2) for a lognormal. */
        out->mu = log(mean) - sigma * sigma / 2;
        out->min = (int32_t)lo;
        out->max = (int32_t)hi;
        return 0;
    }
    return sim_errf(err, "%s.dist: expected one of: fixed, lognormal; got \"%s\"",
                    path, dist);
}

int32_t len_dist_sample(const len_dist *d, gsl_rng *r)
{
    if (d->kind == LEN_FIXED)
        return (int32_t)d->value;
    double x = nearbyint(gsl_ran_lognormal(r, d->mu, d->sigma));
    if (x < d->min)
        return d->min;
    if (x > d->max)
        return d->max;
    return (int32_t)x;
}

int arrival_parse(cJSON *obj, const char *path, arrival_proc *out, sim_err *err)
{
    static const char *const keys[] = {"process", "rate_per_s", NULL};
    const char *process;
    memset(out, 0, sizeof *out);
    if (jcfg_check_keys(obj, path, keys, err) ||
        jcfg_str(obj, path, "process", "poisson", &process, err))
        return -1;
    if (strcmp(process, "poisson"))
        return sim_errf(err, "%s.process: expected one of: poisson; got \"%s\"",
                        path, process);
    out->kind = ARRIVAL_POISSON;
    return jcfg_num(obj, path, "rate_per_s", JCFG_REQUIRED_NUM, 1e-9, 1e9,
                    &out->rate_per_s, err);
}

sim_time_ns arrival_gap_ns(const arrival_proc *a, gsl_rng *r)
{
    double gap_s = gsl_ran_exponential(r, 1.0 / a->rate_per_s);
    return (sim_time_ns)llround(gap_s * 1e9);
}
