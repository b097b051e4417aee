/* Exact histograms of token counts, for trace statistics and empirical
 * length distributions.
 *
 * Token counts are small integers (at most TRACE_MAX_TOKENS), so a dense
 * array of counts indexed by value gives exact means and percentiles in
 * memory proportional to the largest value seen, not to the number of rows
 * (a 27-million-row trace whose prompts stay under 100k tokens costs 800 KB).
 * sim_hist would do at 0.1% resolution; trace statistics are compared with
 * published figures, so these are exact. */
#ifndef TRACES_TOKHIST_H
#define TRACES_TOKHIST_H

#include <gsl/gsl_rng.h>
#include "sim/base.h"

typedef struct tok_hist {
    uint64_t *count;   /* count[v] for v < cap */
    size_t cap;
    uint64_t n;
    double sum;
    int32_t min, max;
} tok_hist;

void tokh_init(tok_hist *h);
void tokh_fini(tok_hist *h);
void tokh_add(tok_hist *h, int32_t tokens);   /* tokens >= 0 */
double tokh_mean(const tok_hist *h);          /* 0 when empty */
/* The p-quantile (p in [0, 1]) by linear interpolation between the sorted
 * samples at ranks floor((n - 1) p) and the next, as numpy's default
 * percentile does (so figures match published ones); 0 when empty.
 * O(max value). */
double tokh_quantile(const tok_hist *h, double p);

/* Draws values with the histogram's frequencies: distinct values with their
 * cumulative counts, sampled by binary search. */
typedef struct tok_sampler {
    int32_t *value;
    uint64_t *cum;     /* cum[i]: samples with value <= value[i] */
    size_t n;
} tok_sampler;

/* h must not be empty. */
void tok_sampler_init(tok_sampler *s, const tok_hist *h);
void tok_sampler_fini(tok_sampler *s);
int32_t tok_sampler_draw(const tok_sampler *s, gsl_rng *r);

#endif
