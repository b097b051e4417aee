/* Log-linear histogram (HdrHistogram's bucket layout, one sub-bucket level).
 *
 * Layout. With S = 2^SIM_HIST_SUB_BITS, values v < 2S have a bucket each
 * (index v). A value with its top bit at k >= SUB_BITS lies in
 * [2^k, 2^(k+1)), which is cut into S buckets of width 2^(k-SUB_BITS):
 *     index(v) = ((k - SUB_BITS + 1) << SUB_BITS) + ((v >> (k - SUB_BITS)) & (S-1))
 * For k = SUB_BITS this gives index v, so the exact range and the first
 * logarithmic range join without a special case; only v < S (where k would
 * be below SUB_BITS, and clz(0) is undefined) is handled apart. The top bit
 * of a non-negative int64 is at most 62, so there are (64 - SUB_BITS) * S
 * buckets (54 Ki, 432 KiB at 10 bits). calloc hands out zero pages lazily, so
 * a histogram whose values span a few decades costs a few pages of memory.
 *
 * Precision. A bucket's width is at most 1/S of its lowest value, and the
 * quantile reports the bucket's midpoint, so a reported quantile is within
 * 1/(2S) (0.05% at 10 bits) of the sample it stands for. min, max, n and the
 * sum are kept exactly (the sum as a double: exact while the total stays
 * below 2^53 ns, 104 days). fraction_le is exact below min and from max up,
 * where whole-bucket counting would blur the ends of the distribution.
 *
 * Empty: n == 0, min == max == 0, and every query returns 0. */
#include "sim/hist.h"

#include <math.h>
#include <stdlib.h>

#define HIST_SUB ((int64_t)1 << SIM_HIST_SUB_BITS)
#define HIST_NBUCKETS ((size_t)(64 - SIM_HIST_SUB_BITS) << SIM_HIST_SUB_BITS)

static inline size_t bucket_of(int64_t v)
{
    if (v < HIST_SUB)
        return (size_t)v;
    int k = 63 - __builtin_clzll((unsigned long long)v);
    int shift = k - SIM_HIST_SUB_BITS;
    return ((size_t)(shift + 1) << SIM_HIST_SUB_BITS) +
           (size_t)((v >> shift) & (HIST_SUB - 1));
}

/* The lowest value in bucket i and the bucket's width. */
static void bucket_range(size_t i, int64_t *lo, int64_t *width)
{
    if (i < (size_t)HIST_SUB) {
        *lo = (int64_t)i;
        *width = 1;
        return;
    }
    int shift = (int)(i >> SIM_HIST_SUB_BITS) - 1;
    int64_t off = (int64_t)(i & (size_t)(HIST_SUB - 1));
    *lo = (HIST_SUB + off) << shift;
    *width = (int64_t)1 << shift;
}

void sim_hist_init(sim_hist *h)
{
    h->count = sim_xcalloc(HIST_NBUCKETS, sizeof *h->count);
    h->n = 0;
    h->min = h->max = 0;
    h->sum = 0;
}

void sim_hist_fini(sim_hist *h)
{
    free(h->count);
    h->count = NULL;
}

void sim_hist_add(sim_hist *h, int64_t value)
{
    sim_hist_add_n(h, value, 1);
}

/* The sum stays exact (integers below 2^53), so adding value x count at
 * once gives the same bits as count single adds. */
void sim_hist_add_n(sim_hist *h, int64_t value, uint64_t count)
{
    SIM_ASSERT(value >= 0);
    if (!count)
        return;
    h->count[bucket_of(value)] += count;
    if (h->n == 0) {
        h->min = h->max = value;
    } else {
        if (value < h->min)
            h->min = value;
        if (value > h->max)
            h->max = value;
    }
    h->n += count;
    h->sum += (double)value * (double)count;
}

double sim_hist_quantile(const sim_hist *h, double p)
{
    SIM_ASSERT(p >= 0.0 && p <= 1.0);
    if (h->n == 0)
        return 0;
    /* The rank of the sample that p names, 1-based: at least one sample. */
    uint64_t rank = (uint64_t)ceil(p * (double)h->n);
    if (rank < 1)
        rank = 1;
    if (rank > h->n)
        rank = h->n;
    size_t last = bucket_of(h->max);
    size_t i = bucket_of(h->min);
    uint64_t cum = 0;
    for (; i < last; i++) {
        cum += h->count[i];
        if (cum >= rank)
            break;
    }
    int64_t lo, width;
    bucket_range(i, &lo, &width);
    double mid = (double)lo + (double)(width - 1) / 2.0;
    if (mid < (double)h->min)
        mid = (double)h->min;
    if (mid > (double)h->max)
        mid = (double)h->max;
    return mid;
}

double sim_hist_mean(const sim_hist *h)
{
    return h->n ? h->sum / (double)h->n : 0;
}

double sim_hist_fraction_le(const sim_hist *h, int64_t v)
{
    if (h->n == 0 || v < h->min)
        return 0;
    if (v >= h->max)
        return 1;
    size_t last = bucket_of(v);
    uint64_t cum = 0;
    for (size_t i = bucket_of(h->min); i <= last; i++)
        cum += h->count[i];
    return (double)cum / (double)h->n;
}
