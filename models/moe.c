/* Expert routing and expert-parallel load (see moe.h).
 *
 * Design. Everything per iteration is O(groups * experts) and allocates
 * nothing: the routing's inclusion probabilities are computed once, an
 * iteration draws one binomial count per (group, expert), and a group's load
 * under a placement is one pass over its slots. The permutations and
 * exponents come from the caller's random stream, so a run's routing is a
 * function of its seed. */
#include "models/moe.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_randist.h>

/* q[e] = k w[e] / sum(w), water-filled so that no q exceeds 1. */
static void inclusion(const double *w, int32_t E, int32_t k, double *q)
{
    double z = 0;
    for (int32_t e = 0; e < E; e++)
        z += w[e];
    for (int32_t e = 0; e < E; e++)
        q[e] = z > 0 ? k * w[e] / z : (double)k / E;
    for (int32_t round = 0; round < E; round++) {
        double excess = 0, free_mass = 0;
        for (int32_t e = 0; e < E; e++) {
            if (q[e] > 1) {
                excess += q[e] - 1;
                q[e] = 1;
            } else if (q[e] < 1) {
                free_mass += q[e];
            }
        }
        if (excess <= 1e-12 || free_mass <= 0)
            break;
        for (int32_t e = 0; e < E; e++)
            if (q[e] < 1)
                q[e] += excess * q[e] / free_mass;
    }
}

int moe_routing_init(moe_routing *r, const llm_model *m, const moe_routing_cfg *cfg,
                     gsl_rng *rng, sim_err *err)
{
    const int32_t E = m->experts, moe_layers = m->layers - llm_dense_layers(m);
    if (E < 2 || E > LLM_MAX_EXPERTS || moe_layers < 1)
        return sim_errf(err, "%s: expert routing needs an MoE model with 2 to %d experts",
                        m->name, LLM_MAX_EXPERTS);
    if (cfg->groups < 1 || cfg->groups > MOE_GROUPS_MAX)
        return sim_errf(err, "routing groups %d: expected 1 to %d", cfg->groups,
                        MOE_GROUPS_MAX);
    if (!(cfg->skew >= 0) || !(cfg->spread >= 0 && cfg->spread < 1))
        return sim_errf(err, "routing: expected skew >= 0 and spread in [0, 1)");
    memset(r, 0, sizeof *r);
    r->experts = E;
    r->k = m->experts_per_token;
    r->groups = cfg->groups < moe_layers ? cfg->groups : moe_layers;
    for (int32_t g = 0; g < r->groups; g++)
        r->layers[g] = (g + 1) * moe_layers / r->groups - g * moe_layers / r->groups;
    for (int32_t g = 0; g < r->groups; g++) {
        double w[LLM_MAX_EXPERTS];
        if (cfg->has_trace) {
            memcpy(w, cfg->trace[g], sizeof(double) * (size_t)E);
        } else {
            /* A seeded permutation: expert e has popularity rank pi[e]. */
            int32_t pi[LLM_MAX_EXPERTS];
            for (int32_t e = 0; e < E; e++)
                pi[e] = e;
            gsl_ran_shuffle(rng, pi, (size_t)E, sizeof pi[0]);
            double s = cfg->skew * (1 - cfg->spread + 2 * cfg->spread * gsl_rng_uniform(rng));
            for (int32_t e = 0; e < E; e++)
                w[e] = pow(pi[e] + 1.0, -s);
        }
        inclusion(w, E, r->k, r->q[g]);
        for (int32_t e = 0; e < E; e++)
            r->log_miss[g][e] = r->q[g][e] < 1 ? log1p(-r->q[g][e]) : -INFINITY;
    }
    return 0;
}

/* Binomial(n, q): for variances below 4 exact, by inversion from
 * P(0) = (1 - q)^n (log_miss = log(1 - q) precomputed; about mean + 1
 * steps); else its rounded normal approximation, one ziggurat draw. GSL's
 * general sampler dominated a run's profile, and exact inversion still
 * took 3x the run's time without routing. The approximation keeps each
 * count's mean and variance; it loses the binomial's small skew (below
 * 0.5 at variance 4), which the sums over a GPU's experts that set the
 * layer time average out, and it is used only where P(count = 0), which
 * sets the distinct experts, is under 2%. */
static int32_t binomial(gsl_rng *rng, double q, double log_miss, double *p0, int32_t *p0_n,
                       int64_t n)
{
    if (q <= 0 || n == 0)
        return 0;
    if (q >= 1)
        return (int32_t)n;
    double mean = q * (double)n, var = mean * (1 - q);
    if (var >= 4) {
        double x = floor(mean + sqrt(var) * gsl_ran_gaussian_ziggurat(rng, 1.0) + 0.5);
        return (int32_t)(x < 0 ? 0 : x > (double)n ? (double)n : x);
    }
    if (*p0_n != n) {
        *p0 = exp((double)n * log_miss);
        *p0_n = (int32_t)n;
    }
    double u = gsl_rng_uniform(rng), p = *p0, odds = q / (1 - q);
    int64_t k = 0;
    while (u > p && k < n) {
        u -= p;
        p *= odds * (double)(n - k) / (double)(k + 1);
        k++;
    }
    return (int32_t)k;
}

void moe_routing_sample(moe_routing *r, gsl_rng *rng, int64_t tokens, int32_t *counts)
{
    SIM_ASSERT(tokens >= 0 && tokens <= INT32_MAX);
    for (int32_t g = 0; g < r->groups; g++)
        for (int32_t e = 0; e < r->experts; e++)
            counts[g * r->experts + e] = binomial(rng, r->q[g][e], r->log_miss[g][e],
                                                  &r->p0[g][e], &r->p0_n[g][e], tokens);
}

int moe_trace_load(const char *path, const llm_model *m, moe_routing_cfg *cfg, sim_err *err)
{
    const int32_t E = m->experts, moe_layers = m->layers - llm_dense_layers(m);
    FILE *f = fopen(path, "r");
    if (!f)
        return sim_errf(err, "%s: cannot open routing trace: %s", path, strerror(errno));
    memset(cfg->trace, 0, sizeof cfg->trace);
    char line[256];
    int rc = 0;
    long lineno = 0, rows = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (lineno == 1) {
            if (strncmp(line, "layer,expert,tokens", 19))
                rc = sim_errf(err, "%s:1: expected the header layer,expert,tokens", path);
            if (rc)
                break;
            continue;
        }
        if (line[0] == '\n' || line[0] == '\r' || line[0] == 0)
            continue;
        long layer, expert;
        double tokens;
        char tail;
        int n = sscanf(line, "%ld,%ld,%lf %c", &layer, &expert, &tokens, &tail);
        if (n != 3 || layer < 0 || layer >= moe_layers || expert < 0 || expert >= E ||
            !(tokens >= 0) || !isfinite(tokens)) {
            rc = sim_errf(err, "%s:%ld: expected layer in [0, %d), expert in [0, %d), "
                          "tokens >= 0", path, lineno, moe_layers, E);
            break;
        }
        int32_t g = (int32_t)(layer * cfg->groups / moe_layers);
        cfg->trace[g][expert] += tokens;
        rows++;
    }
    fclose(f);
    if (rc)
        return rc;
    if (rows == 0)
        return sim_errf(err, "%s: no rows after the header", path);
    cfg->has_trace = true;
    return 0;
}

/* The all-to-all bytes of the busiest GPU, and out's fields. */
static void finish_load(const llm_model *m, const par_layout *par, double tokens,
                        double max_pairs, double max_distinct, moe_group_load *out)
{
    const int32_t ep = par->ep;
    const double remote = (double)(ep - 1) / ep, H = m->hidden;
    const double bd = m->act_bytes < 2 ? m->act_bytes + 4.0 / 128 : 2.0;
    double sent = tokens / ep * m->experts_per_token * remote;
    double recv = max_pairs * remote;
    double most = sent > recv ? sent : recv;
    *out = (moe_group_load){.tokens = tokens, .max_pairs = max_pairs,
                            .max_distinct = max_distinct,
                            .dispatch_bytes = most * H * bd, .combine_bytes = most * H * 2.0};
}

void moe_placement_index(const int32_t *phy2log, int32_t slots, int32_t experts,
                         int32_t *rep, int32_t *cnt)
{
    memset(cnt, 0, sizeof *cnt * (size_t)experts);
    for (int32_t s = 0; s < slots; s++) {
        SIM_ASSERT(phy2log[s] >= 0 && phy2log[s] < experts);
        rep[s] = cnt[phy2log[s]]++;
    }
}

void moe_group_load_of(const llm_model *m, const par_layout *par, const int32_t *phy2log,
                       const int32_t *rep, const int32_t *cnt, int32_t slots,
                       const int32_t *counts, double tokens, moe_rank_load *rank,
                       moe_group_load *out)
{
    const int32_t ep = par->ep, per = slots / ep;
    SIM_ASSERT(ep >= 1 && per * ep == slots);
    double max_pairs = 0, max_distinct = 0;
    for (int32_t r = 0; r < ep; r++) {
        double pairs = 0, distinct = 0;
        for (int32_t s = r * per; s < (r + 1) * per; s++) {
            int32_t e = phy2log[s], c = counts[e], n = cnt[e];
            int32_t mine = n == 1 ? c : c / n + (rep[s] < c % n);
            pairs += mine;
            distinct += mine > 0;
        }
        rank[r] = (moe_rank_load){.pairs = pairs, .distinct = distinct};
        max_pairs = pairs > max_pairs ? pairs : max_pairs;
        max_distinct = distinct > max_distinct ? distinct : max_distinct;
    }
    finish_load(m, par, tokens, max_pairs, max_distinct, out);
}

/* Adds expert e's load (its share on one copy) to GPU k: near-normal
 * shares to k's mean and variance, small ones drawn exactly (once per
 * expert, in scratch). Returns whether it has work. */
static bool add_share(moe_routing *r, int32_t g, gsl_rng *rng, int64_t tokens, int32_t e,
                      int32_t copies, int32_t copy, int32_t *scratch, moe_rank_load *k)
{
    const double q = r->q[g][e], mean = q * (double)tokens, v = mean * (1 - q);
    if (v >= 4) {
        k->mu += mean / copies;
        k->var += v / ((double)copies * copies);
        k->distinct += 1;
        return true;
    }
    if (scratch[e] < 0)
        scratch[e] = binomial(rng, q, r->log_miss[g][e], &r->p0[g][e], &r->p0_n[g][e], tokens);
    int32_t c = scratch[e];
    int32_t mine = copies == 1 ? c : c / copies + (copy < c % copies);
    k->pairs += mine;
    k->distinct += mine > 0;
    return mine > 0;
}

void moe_sample_group_load(moe_routing *r, int32_t g, gsl_rng *rng, int64_t tokens,
                           const llm_model *m, const par_layout *par, const int32_t *phy2log,
                           const int32_t *rep, const int32_t *cnt, int32_t slots, bool janus,
                           int32_t *scratch, moe_rank_load *rank, moe_group_load *out)
{
    const int32_t ep = par->ep, per = slots / ep, E = r->experts;
    SIM_ASSERT(g >= 0 && g < r->groups && ep >= 1 && per * ep == slots);
    SIM_ASSERT(tokens >= 0 && tokens <= INT32_MAX);
    for (int32_t e = 0; e < E; e++)
        scratch[e] = -1;
    for (int32_t k = 0; k < ep; k++)
        rank[k] = (moe_rank_load){0};
    /* every copy's share; under Janus the lightly loaded replicated
     * experts wait (a heavy one, near-normal, splits as usual: one copy
     * could not take all its tokens without becoming the busiest) */
    const double n = (double)tokens;
    for (int32_t s = 0; s < slots; s++) {
        int32_t e = phy2log[s];
        double q = r->q[g][e];
        if (!janus || cnt[e] == 1 || q * n * (1 - q) >= 4)
            add_share(r, g, rng, tokens, e, cnt[e], rep[s], scratch, &rank[s / per]);
    }
    /* Janus: an active light replicated expert runs on one copy, the one
     * whose GPU has the fewest active experts so far (then the fewest
     * tokens, then the lowest GPU), greedily in slot order of first copies */
    for (int32_t s = 0; janus && s < slots; s++) {
        int32_t e = phy2log[s];
        double q = r->q[g][e];
        if (cnt[e] == 1 || rep[s] != 0 || q * n * (1 - q) >= 4)
            continue;
        int32_t best = -1;
        for (int32_t t = s; t < slots; t++) {
            if (phy2log[t] != e)
                continue;
            const moe_rank_load *a = &rank[t / per], *b = best < 0 ? NULL : &rank[best];
            if (!b || a->distinct < b->distinct ||
                (a->distinct == b->distinct && a->pairs + a->mu < b->pairs + b->mu))
                best = t / per;
        }
        add_share(r, g, rng, tokens, e, 1, 0, scratch, &rank[best]);
    }
    double max_pairs = 0, max_distinct = 0;
    for (int32_t k = 0; k < ep; k++) {
        moe_rank_load *x = &rank[k];
        if (x->var > 0) {
            double d = floor(x->mu + sqrt(x->var) * gsl_ran_gaussian_ziggurat(rng, 1.0) + 0.5);
            x->pairs += d > 0 ? d : 0;
        } else {
            x->pairs += x->mu;
        }
        max_pairs = x->pairs > max_pairs ? x->pairs : max_pairs;
        max_distinct = x->distinct > max_distinct ? x->distinct : max_distinct;
    }
    finish_load(m, par, (double)tokens, max_pairs, max_distinct, out);
}

void moe_place_contiguous(int32_t experts, int32_t slots, int32_t *phy2log)
{
    for (int32_t s = 0; s < slots; s++)
        phy2log[s] = s % experts;
}
