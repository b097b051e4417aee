/* Log-bucketed histogram of non-negative integers (latencies in ns) for
 * percentiles over millions of samples in constant memory.
 *
 * Buckets are HdrHistogram-style: values below 2^SUB_BITS are exact; above,
 * each power of two is split into 2^SUB_BITS linear buckets, so a bucket's
 * width is at most 1/2^SUB_BITS (0.1% at 10 bits) of its value. Adding is
 * O(1) (a leading-zero count, no log or search), which matters because the
 * simulator adds one sample per generated token. GSL's gsl_histogram finds a
 * bin by binary search over arbitrary ranges, hence this small type. Mean,
 * min and max are exact. */
#ifndef SIM_HIST_H
#define SIM_HIST_H

#include "sim/base.h"

#define SIM_HIST_SUB_BITS 10

typedef struct sim_hist {
    uint64_t *count;    /* per bucket */
    uint64_t n;
    int64_t min, max;
    double sum;
} sim_hist;

void sim_hist_init(sim_hist *h);
void sim_hist_fini(sim_hist *h);
void sim_hist_add(sim_hist *h, int64_t value);   /* value >= 0 */
/* Adds `count` samples of one value at once (the same as count adds). */
void sim_hist_add_n(sim_hist *h, int64_t value, uint64_t count);
/* p in [0, 1]; the smallest bucket value v with at least p*n samples <= v,
 * reported as the bucket's midpoint clamped to [min, max]; 0 when empty. */
double sim_hist_quantile(const sim_hist *h, double p);
double sim_hist_mean(const sim_hist *h);
/* Fraction of samples <= v (v falls in a bucket: counts the whole bucket). */
double sim_hist_fraction_le(const sim_hist *h, int64_t v);

#endif
