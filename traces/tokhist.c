/* Exact token-count histograms and samplers (see tokhist.h). The count
 * array grows by doubling to the largest value seen. */
#include "traces/tokhist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void tokh_init(tok_hist *h) { memset(h, 0, sizeof *h); }

void tokh_fini(tok_hist *h)
{
    free(h->count);
    memset(h, 0, sizeof *h);
}

void tokh_add(tok_hist *h, int32_t tokens)
{
    SIM_ASSERT(tokens >= 0);
    size_t v = (size_t)tokens;
    if (v >= h->cap) {
        size_t cap = h->cap ? h->cap : 1024;
        while (cap <= v)
            cap *= 2;
        h->count = sim_xrealloc(h->count, cap * sizeof *h->count);
        memset(h->count + h->cap, 0, (cap - h->cap) * sizeof *h->count);
        h->cap = cap;
    }
    h->count[v]++;
    if (h->n == 0 || tokens < h->min)
        h->min = tokens;
    if (h->n == 0 || tokens > h->max)
        h->max = tokens;
    h->n++;
    h->sum += tokens;
}

double tokh_mean(const tok_hist *h) { return h->n ? h->sum / (double)h->n : 0; }

double tokh_quantile(const tok_hist *h, double p)
{
    if (!h->n)
        return 0;
    double k = (double)(h->n - 1) * p;
    uint64_t lo_rank = (uint64_t)floor(k);
    uint64_t hi_rank = lo_rank + 1 < h->n ? lo_rank + 1 : lo_rank;
    int32_t lo = h->max, hi = h->max;
    uint64_t seen = 0;   /* samples below v */
    for (int32_t v = h->min; v <= h->max; v++) {
        uint64_t c = h->count[v];
        if (!c)
            continue;
        if (lo_rank >= seen && lo_rank < seen + c)
            lo = v;
        if (hi_rank >= seen && hi_rank < seen + c) {
            hi = v;
            break;
        }
        seen += c;
    }
    return lo + (hi - lo) * (k - (double)lo_rank);
}

void tok_sampler_init(tok_sampler *s, const tok_hist *h)
{
    SIM_ASSERT(h->n > 0);
    size_t distinct = 0;
    for (int32_t v = h->min; v <= h->max; v++)
        distinct += h->count[v] != 0;
    s->value = sim_xmalloc(distinct * sizeof *s->value);
    s->cum = sim_xmalloc(distinct * sizeof *s->cum);
    s->n = 0;
    uint64_t cum = 0;
    for (int32_t v = h->min; v <= h->max; v++) {
        if (!h->count[v])
            continue;
        cum += h->count[v];
        s->value[s->n] = v;
        s->cum[s->n++] = cum;
    }
}

void tok_sampler_fini(tok_sampler *s)
{
    free(s->value);
    free(s->cum);
    memset(s, 0, sizeof *s);
}

int32_t tok_sampler_draw(const tok_sampler *s, gsl_rng *r)
{
    uint64_t total = s->cum[s->n - 1];
    /* A uniform in [0, total): gsl_rng_uniform_int is limited to the
     * generator's range (2^32 for MT19937), traces may hold more rows. */
    uint64_t u = (uint64_t)(gsl_rng_uniform(r) * (double)total);
    if (u >= total)
        u = total - 1;
    size_t lo = 0, hi = s->n - 1;   /* first i with cum[i] > u */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->cum[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return s->value[lo];
}
