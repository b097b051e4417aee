/* POLAR-style adapter selection (see polar.h).
 *
 * State per adapter: A_a^-1 (d x d, from the identity: ridge 1) and b_a
 * (d), kept by Sherman-Morrison updates, and the synthetic theta*_a. A
 * selection prices every adapter's UCB (O(adapters d^2)) and every true
 * value (O(adapters d), for the regret); ties go to the lowest index.
 * Epochs count selections; the kept set is recomputed at each epoch's end
 * from the epoch's mean context. */
#include "serve/polar.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/engine.h"
#include "sim/jsoncfg.h"

enum { DRAW_CONTEXT = 1, DRAW_THETA = 2, DRAW_NOISE = 3 };

struct polar {
    polar_setup s;
    int32_t n, d, keep;
    uint64_t seed;
    double *ainv, *b, *truth;   /* n d^2, n d, n d */
    bool *kept;                 /* n */
    int64_t epoch_len, epoch_left;
    int32_t explore_left, explore_next;
    double ctx_sum[POLAR_MAX_DIM];
    uint64_t ctx_n;
    polar_stats st;
};

int polar_setup_parse(cJSON *o, const char *path, int32_t adapters, polar_setup *out,
                      sim_err *err)
{
    static const char *const keys[] = {"policy", "dim", "beta", "lambda", "noise", "epoch",
                                       "doubling", NULL};
    const char *policy;
    int64_t dim, epoch;
    memset(out, 0, sizeof *out);
    if (!cJSON_IsObject(o))
        return sim_errf(err, "%s: expected an object {\"policy\": \"polar\", ...}", path);
    if (jcfg_check_keys(o, path, keys, err) ||
        jcfg_str(o, path, "policy", NULL, &policy, err) ||
        jcfg_int(o, path, "dim", 8, 2, POLAR_MAX_DIM, &dim, err) ||
        jcfg_num(o, path, "beta", 1.0, 0, 1e6, &out->beta, err) ||
        jcfg_num(o, path, "lambda", 0.0, 0, 1e12, &out->lambda, err) ||
        jcfg_num(o, path, "noise", 0.1, 0, 1e6, &out->noise, err) ||
        jcfg_int(o, path, "epoch", 256, 1, INT32_MAX, &epoch, err) ||
        jcfg_bool(o, path, "doubling", 1, &out->doubling, err))
        return -1;
    if (strcmp(policy, "polar"))
        return sim_errf(err, "%s.policy: expected one of: polar; got \"%s\"", path, policy);
    if (adapters > POLAR_MAX_ADAPTERS)
        return sim_errf(err, "%s: polar selects among at most %d adapters (got %d)", path,
                        POLAR_MAX_ADAPTERS, adapters);
    out->on = true;
    out->dim = (int32_t)dim;
    out->epoch = (int32_t)epoch;
    return 0;
}

/* ---- synthetic draws ---------------------------------------------------------- */

static double uniform_of(uint64_t key)
{
    return ((double)(sim_hash_mix(key, 0x51u) >> 11) + 0.5) * 0x1.0p-53;   /* (0, 1) */
}

/* A standard normal keyed by (seed, purpose, who, i): Box-Muller. */
static double gauss(uint64_t seed, uint64_t purpose, uint64_t who, uint64_t i)
{
    uint64_t k = sim_hash_mix(sim_hash_mix(sim_hash_mix(seed, purpose), who), i);
    double u1 = uniform_of(k), u2 = uniform_of(k ^ 0xa5a5a5a5a5a5a5a5ull);
    return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

void polar_context(const polar *p, uint64_t id, double *x)
{
    x[0] = 1;   /* a constant feature: some adapters are better overall */
    double scale = 1 / sqrt((double)(p->d - 1));
    for (int32_t i = 1; i < p->d; i++)
        x[i] = gauss(p->seed, DRAW_CONTEXT, id, (uint64_t)i) * scale;
}

/* ---- the bandit ------------------------------------------------------------------- */

polar *polar_create(const polar_setup *s, int32_t adapters, int32_t keep, uint64_t seed)
{
    SIM_ASSERT(s->on && adapters >= 1 && adapters <= POLAR_MAX_ADAPTERS);
    SIM_ASSERT(s->dim >= 2 && s->dim <= POLAR_MAX_DIM && keep >= 1);
    polar *p = sim_xcalloc(1, sizeof *p);
    p->s = *s;
    p->n = adapters;
    p->d = s->dim;
    p->keep = keep < adapters ? keep : adapters;
    p->seed = seed;
    size_t n = (size_t)adapters, d = (size_t)s->dim;
    p->ainv = sim_xcalloc(n * d * d, sizeof *p->ainv);
    p->b = sim_xcalloc(n * d, sizeof *p->b);
    p->truth = sim_xmalloc(n * d * sizeof *p->truth);
    p->kept = sim_xcalloc(n, sizeof *p->kept);
    for (size_t a = 0; a < n; a++) {
        for (size_t i = 0; i < d; i++) {
            p->ainv[a * d * d + i * d + i] = 1;
            p->truth[a * d + i] = gauss(seed, DRAW_THETA, a, i);
        }
    }
    p->epoch_len = p->epoch_left = s->epoch;
    p->explore_left = adapters < s->epoch ? adapters : s->epoch;
    return p;
}

void polar_destroy(polar *p)
{
    if (!p)
        return;
    free(p->ainv);
    free(p->b);
    free(p->truth);
    free(p->kept);
    free(p);
}

static double dot(const double *u, const double *v, int32_t d)
{
    double s = 0;
    for (int32_t i = 0; i < d; i++)
        s += u[i] * v[i];
    return s;
}

/* y = A^-1_a x. */
static void ainv_times(const polar *p, int32_t a, const double *x, double *y)
{
    const double *m = p->ainv + (size_t)a * p->d * p->d;
    for (int32_t i = 0; i < p->d; i++)
        y[i] = dot(m + (size_t)i * p->d, x, p->d);
}

/* The controller: an epoch ended. Keeps the `keep` adapters of highest
 * estimated reward at the epoch's mean context; the next epoch is twice
 * as long (POLAR+) and starts with a round of forced exploration. */
static void end_epoch(polar *p)
{
    double xbar[POLAR_MAX_DIM], theta[POLAR_MAX_DIM];
    for (int32_t i = 0; i < p->d; i++)
        xbar[i] = p->ctx_n ? p->ctx_sum[i] / (double)p->ctx_n : 0;
    double *est = sim_xmalloc((size_t)p->n * sizeof *est);
    for (int32_t a = 0; a < p->n; a++) {
        ainv_times(p, a, p->b + (size_t)a * p->d, theta);
        est[a] = dot(theta, xbar, p->d);
        p->kept[a] = false;
    }
    for (int32_t k = 0; k < p->keep; k++) {   /* O(keep n): keep is max_loras */
        int32_t best = -1;
        for (int32_t a = 0; a < p->n; a++)
            if (!p->kept[a] && (best < 0 || est[a] > est[best]))
                best = a;
        p->kept[best] = true;
    }
    free(est);
    memset(p->ctx_sum, 0, sizeof p->ctx_sum);
    p->ctx_n = 0;
    p->st.epochs++;
    if (p->s.doubling && p->epoch_len < INT64_MAX / 2)
        p->epoch_len *= 2;
    p->epoch_left = p->epoch_len;
    p->explore_left = p->n < p->epoch_len / 4 ? p->n : (int32_t)(p->epoch_len / 4);
}

int32_t polar_select(polar *p, uint64_t id, polar_load_s_fn load_s, void *ctx)
{
    double x[POLAR_MAX_DIM], y[POLAR_MAX_DIM];
    polar_context(p, id, x);
    int32_t pick = 0;
    if (p->explore_left > 0) {   /* forced exploration, round robin */
        pick = p->explore_next;
        p->explore_next = (p->explore_next + 1) % p->n;
        p->explore_left--;
    } else {
        double best = -INFINITY;
        for (int32_t a = 0; a < p->n; a++) {
            ainv_times(p, a, x, y);
            double width = dot(x, y, p->d);
            ainv_times(p, a, p->b + (size_t)a * p->d, y);   /* theta_a */
            double ucb = dot(x, y, p->d) + p->s.beta * sqrt(width > 0 ? width : 0);
            if (p->s.lambda > 0 && load_s)
                ucb -= p->s.lambda * load_s(ctx, a);
            if (ucb > best)
                best = ucb, pick = a;
        }
    }
    /* Regret against the best adapter for this context. */
    double top = -INFINITY;
    for (int32_t a = 0; a < p->n; a++) {
        double v = dot(x, p->truth + (size_t)a * p->d, p->d);
        if (v > top)
            top = v;
    }
    double got = dot(x, p->truth + (size_t)pick * p->d, p->d);
    p->st.selections++;
    p->st.optimal += got >= top;
    p->st.regret += top - got;
    for (int32_t i = 0; i < p->d; i++)
        p->ctx_sum[i] += x[i];
    p->ctx_n++;
    if (--p->epoch_left == 0)
        end_epoch(p);
    return pick;
}

void polar_reward(polar *p, uint64_t id, int32_t a)
{
    SIM_ASSERT(a >= 0 && a < p->n);
    double x[POLAR_MAX_DIM], y[POLAR_MAX_DIM];
    polar_context(p, id, x);
    double r = dot(x, p->truth + (size_t)a * p->d, p->d) +
               p->s.noise * gauss(p->seed, DRAW_NOISE, id, 0);
    /* Sherman-Morrison: (A + x x')^-1 = A^-1 - A^-1 x x' A^-1 / (1 + x' A^-1 x). */
    ainv_times(p, a, x, y);
    double den = 1 + dot(x, y, p->d);
    double *m = p->ainv + (size_t)a * p->d * p->d;
    for (int32_t i = 0; i < p->d; i++)
        for (int32_t j = 0; j < p->d; j++)
            m[i * p->d + j] -= y[i] * y[j] / den;   /* A^-1 symmetric: x' A^-1 = y' */
    double *b = p->b + (size_t)a * p->d;
    for (int32_t i = 0; i < p->d; i++)
        b[i] += r * x[i];
}

bool polar_keep(const polar *p, int32_t a) { return p->kept[a]; }

void polar_get_stats(const polar *p, polar_stats *out) { *out = p->st; }
