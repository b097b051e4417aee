/* Arrival processes and length distributions (see gen.h). The samplers are
 * GSL's where GSL has one (exponential, gamma, lognormal, uniform); this
 * file parses their parameters and turns samples into integer tokens and
 * nanoseconds. Two are written out here:
 *
 *  - Zipf over a bounded range: GSL has none. Rejection-inversion (Hörmann
 *    and Derflinger, 1996): O(1) per sample for any exponent s > 0 and any
 *    range, no table; each round costs one uniform and accepts with
 *    probability above 0.8.
 *  - Time-varying Poisson rates. Piecewise-constant rates are inverted
 *    exactly: one exponential draw is spent segment by segment (rate times
 *    time). The diurnal rate is thinned (Lewis and Shedler): candidates at
 *    the peak rate, each kept with probability rate(t) / peak rate.
 *
 * A closed loop keeps each waiting client's ready time in a min-heap of at
 * most N entries; a ready time becomes an arrival when the core asks at or
 * after it, which the WL_WAIT protocol (workload.h) guarantees. */
#include "traces/gen.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_randist.h>

#include "sim/jsoncfg.h"
#include "traces/trace_read.h"

#define LEN_MAX 10000000
#define GEN_TWO_PI 6.28318530717958647692

/* ---- Zipf by rejection-inversion ------------------------------------------ */

/* log1p(x) / x and expm1(x) / x, continuous at 0. */
static double helper1(double x) { return fabs(x) > 1e-8 ? log1p(x) / x : 1 - x / 2; }
static double helper2(double x) { return fabs(x) > 1e-8 ? expm1(x) / x : 1 + x / 2; }

/* H(x) = (x^(1-s) - 1) / (1 - s), an integral of h(x) = x^-s, and its
 * inverse. */
static double zipf_H(double s, double x)
{
    double lx = log(x);
    return helper2((1 - s) * lx) * lx;
}
static double zipf_h(double s, double x) { return exp(-s * log(x)); }
static double zipf_Hinv(double s, double x)
{
    double t = x * (1 - s);
    if (t < -1)
        t = -1;
    return exp(helper1(t) * x);
}

static void zipf_setup(len_dist *d)
{
    double s = d->zipf_s, n = (double)d->max - d->min + 1;
    d->zipf_hx1 = zipf_H(s, 1.5) - 1;
    d->zipf_hn = zipf_H(s, n + 0.5);
    d->zipf_t = 2 - zipf_Hinv(s, zipf_H(s, 2.5) - zipf_h(s, 2));
}

static int32_t zipf_sample(const len_dist *d, gsl_rng *r)
{
    double s = d->zipf_s;
    int64_t n = (int64_t)d->max - d->min + 1;
    for (;;) {
        double u = d->zipf_hn + gsl_rng_uniform(r) * (d->zipf_hx1 - d->zipf_hn);
        double x = zipf_Hinv(s, u);
        int64_t k = (int64_t)(x + 0.5);
        if (k < 1)
            k = 1;
        else if (k > n)
            k = n;
        if (k - x <= d->zipf_t || u >= zipf_H(s, k + 0.5) - zipf_h(s, (double)k))
            return (int32_t)(d->min - 1 + k);
    }
}

/* ---- empirical lengths ---------------------------------------------------- */

static int empirical_from_trace(cJSON *obj, const char *path, tok_hist *h, sim_err *err)
{
    static const char *const keys[] = {"dist", "path", "format", "field", "skip_bad", NULL};
    const char *file, *format, *field;
    bool skip_bad;
    if (jcfg_check_keys(obj, path, keys, err) ||
        jcfg_str(obj, path, "path", JCFG_REQUIRED_STR, &file, err) ||
        jcfg_str(obj, path, "format", "auto", &format, err) ||
        jcfg_str(obj, path, "field", "input", &field, err) ||
        jcfg_bool(obj, path, "skip_bad", 0, &skip_bad, err))
        return -1;
    bool input = !strcmp(field, "input");
    if (!input && strcmp(field, "output"))
        return sim_errf(err, "%s.field: expected \"input\" or \"output\", got \"%s\"", path,
                        field);
    trace_reader *rd = trace_reader_open(file, format, skip_bad, err);
    if (!rd)
        return sim_err_prefix(err, "%s.path", path);
    trace_row row;
    int rc;
    while ((rc = trace_reader_next(rd, &row, err)) == 1) {
        int32_t v = input ? row.input_tokens : row.output_tokens;
        if (!row.failed && v > 0)
            tokh_add(h, v);
    }
    trace_reader_close(rd);
    if (rc < 0)
        return sim_err_prefix(err, "%s.path", path);
    if (!h->n)
        return sim_errf(err, "%s.path: no %s lengths in %s", path, field, file);
    return 0;
}

static int empirical_from_values(cJSON *obj, const char *path, tok_hist *h, sim_err *err)
{
    static const char *const keys[] = {"dist", "values", NULL};
    if (jcfg_check_keys(obj, path, keys, err))
        return -1;
    cJSON *values = cJSON_GetObjectItemCaseSensitive(obj, "values");
    if (!cJSON_IsArray(values) || !cJSON_GetArraySize(values))
        return sim_errf(err, "%s.values: expected a non-empty array of integers", path);
    int i = 0;
    for (cJSON *v = values->child; v; v = v->next, i++) {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
            v->valuedouble < 1 || v->valuedouble > LEN_MAX)
            return sim_errf(err, "%s.values[%d]: expected an integer in [1, %d]", path, i,
                            LEN_MAX);
        tokh_add(h, (int32_t)v->valuedouble);
    }
    return 0;
}

static int parse_empirical(cJSON *obj, const char *path, len_dist *out, sim_err *err)
{
    tok_hist h;
    tokh_init(&h);
    int rc = cJSON_GetObjectItemCaseSensitive(obj, "values")
                 ? empirical_from_values(obj, path, &h, err)
                 : empirical_from_trace(obj, path, &h, err);
    if (!rc) {
        out->kind = LEN_EMPIRICAL;
        out->empirical = sim_xmalloc(sizeof *out->empirical);
        tok_sampler_init(out->empirical, &h);
        out->min = h.min;
        out->max = h.max;
    }
    tokh_fini(&h);
    return rc;
}

/* ---- length distributions ----------------------------------------------- */

static int parse_range(cJSON *obj, const char *path, int64_t def_min, int64_t def_max,
                       len_dist *out, sim_err *err)
{
    int64_t lo, hi;
    if (jcfg_int(obj, path, "min", def_min, 1, LEN_MAX, &lo, err) ||
        jcfg_int(obj, path, "max", def_max, 1, LEN_MAX, &hi, err))
        return -1;
    if (hi < lo)
        return sim_errf(err, "%s.max: expected an integer >= min (%lld), got %lld", path,
                        (long long)lo, (long long)hi);
    out->min = (int32_t)lo;
    out->max = (int32_t)hi;
    return 0;
}

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
            jcfg_int(obj, path, "value", JCFG_REQUIRED_INT, 1, LEN_MAX, &v, err))
            return -1;
        out->kind = LEN_FIXED;
        out->value = (double)v;
        out->min = out->max = (int32_t)v;
        return 0;
    }
    if (!strcmp(dist, "uniform")) {
        static const char *const keys[] = {"dist", "min", "max", NULL};
        out->kind = LEN_UNIFORM;
        return jcfg_check_keys(obj, path, keys, err) ||
                       parse_range(obj, path, JCFG_REQUIRED_INT, JCFG_REQUIRED_INT, out, err)
                   ? -1
                   : 0;
    }
    if (!strcmp(dist, "lognormal")) {
        static const char *const keys[] = {"dist", "mean", "sigma", "min", "max", NULL};
        double mean, sigma;
        if (jcfg_check_keys(obj, path, keys, err) ||
            jcfg_num(obj, path, "mean", JCFG_REQUIRED_NUM, 1, 1e7, &mean, err) ||
            jcfg_num(obj, path, "sigma", JCFG_REQUIRED_NUM, 0, 5, &sigma, err) ||
            parse_range(obj, path, 1, LEN_MAX, out, err))
            return -1;
        out->kind = LEN_LOGNORMAL;
        out->sigma = sigma;
        /* E[X] = exp(mu + sigma^2 / 2) for a lognormal. */
        out->mu = log(mean) - sigma * sigma / 2;
        return 0;
    }
    if (!strcmp(dist, "zipf")) {
        static const char *const keys[] = {"dist", "s", "min", "max", NULL};
        if (jcfg_check_keys(obj, path, keys, err) ||
            jcfg_num(obj, path, "s", JCFG_REQUIRED_NUM, 0.01, 10, &out->zipf_s, err) ||
            parse_range(obj, path, 1, JCFG_REQUIRED_INT, out, err))
            return -1;
        out->kind = LEN_ZIPF;
        zipf_setup(out);
        return 0;
    }
    if (!strcmp(dist, "empirical"))
        return parse_empirical(obj, path, out, err);
    return sim_errf(err, "%s.dist: expected one of: fixed, uniform, lognormal, zipf, "
                    "empirical; got \"%s\"", path, dist);
}

void len_dist_fini(len_dist *d)
{
    if (d->empirical) {
        tok_sampler_fini(d->empirical);
        free(d->empirical);
        d->empirical = NULL;
    }
}

int32_t len_dist_sample(const len_dist *d, gsl_rng *r)
{
    switch (d->kind) {
    case LEN_FIXED:
        return (int32_t)d->value;
    case LEN_UNIFORM:
        return d->min + (int32_t)gsl_rng_uniform_int(r, (unsigned long)(d->max - d->min) + 1);
    case LEN_ZIPF:
        return zipf_sample(d, r);
    case LEN_EMPIRICAL:
        return tok_sampler_draw(d->empirical, r);
    case LEN_LOGNORMAL:
        break;
    }
    double x = nearbyint(gsl_ran_lognormal(r, d->mu, d->sigma));
    if (x < d->min)
        return d->min;
    if (x > d->max)
        return d->max;
    return (int32_t)x;
}

/* ---- piecewise rate schedules --------------------------------------------- */

static void add_segment(arrival_proc *a, size_t *cap, sim_time_ns start_ns, double rate)
{
    if ((size_t)a->n_segs == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        a->seg_start_ns = sim_xrealloc(a->seg_start_ns, *cap * sizeof *a->seg_start_ns);
        a->seg_rate = sim_xrealloc(a->seg_rate, *cap * sizeof *a->seg_rate);
    }
    a->seg_start_ns[a->n_segs] = start_ns;
    a->seg_rate[a->n_segs++] = rate;
}

static int check_segment(const arrival_proc *a, sim_time_ns start_ns, double rate,
                         const char *where, sim_err *err)
{
    if (!a->n_segs && start_ns != 0)
        return sim_errf(err, "%s: the first segment must start at 0 s", where);
    if (a->n_segs && start_ns <= a->seg_start_ns[a->n_segs - 1])
        return sim_errf(err, "%s: segment starts must increase", where);
    if (!(rate >= 0 && rate <= 1e9))
        return sim_errf(err, "%s: expected a rate in [0, 1e9] per second, got %g", where, rate);
    return 0;
}

/* One data row of a rates CSV; messages without file:line. */
static int rate_row(char *line, size_t len, const int *idx, arrival_proc *a, size_t *cap,
                    sim_err *err)
{
    trace_span fld[TRACE_MAX_FIELDS + 1];
    int nf = trace_csv_split(line, len, fld);
    int64_t start_ns, rate_micro;
    if (nf != 2)
        return sim_errf(err, "expected 2 columns (start_s,rate_per_s), got %d", nf);
    if (trace_parse_scaled(fld[idx[0]], SIM_NS_PER_S, 0, INT64_MAX / 4, &start_ns))
        return trace_field_error(err, "start_s", "seconds >= 0", fld[idx[0]]);
    if (trace_parse_scaled(fld[idx[1]], 1000000, 0, (int64_t)1e15, &rate_micro))
        return trace_field_error(err, "rate_per_s", "a rate >= 0 per second", fld[idx[1]]);
    double rate = (double)rate_micro / 1e6;
    if (check_segment(a, start_ns, rate, "column start_s", err))
        return -1;
    add_segment(a, cap, start_ns, rate);
    return 0;
}

static int rates_from_csv(const char *file, arrival_proc *a, size_t *cap, sim_err *err)
{
    static const char *const names[] = {"start_s", "rate_per_s", NULL};
    FILE *f = fopen(file, "r");
    char where[4200];
    if (!f)
        return sim_errf(err, "%s: cannot open: %s%s", file, strerror(errno),
                        sim_path_where(file, where, sizeof where));
    char *line = NULL;
    size_t linecap = 0;
    ssize_t n;
    int idx[2] = {-1, -1}, lineno = 0, rc = 0;
    while (!rc && (n = getline(&line, &linecap, f)) >= 0) {
        lineno++;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (lineno == 1) {
            rc = trace_csv_header(line, (size_t)n, names, idx, true, err) < 0 ? -1 : 0;
            if (!rc && (idx[0] < 0 || idx[1] < 0))
                rc = sim_errf(err, "expected the header start_s,rate_per_s");
        } else if (n) {
            rc = rate_row(line, (size_t)n, idx, a, cap, err);
        }
        if (rc)
            sim_err_prefix(err, "%s:%d", file, lineno);
    }
    free(line);
    fclose(f);
    if (!rc && !a->n_segs)
        rc = sim_errf(err, "%s: no rates", file);
    return rc;
}

static int rates_from_json(cJSON *segs, const char *path, arrival_proc *a, size_t *cap,
                           sim_err *err)
{
    char where[300];
    int i = 0;
    if (!cJSON_IsArray(segs) || !cJSON_GetArraySize(segs))
        return sim_errf(err, "%s.segments: expected a non-empty array of [start_s, "
                        "rate_per_s] pairs", path);
    for (cJSON *s = segs->child; s; s = s->next, i++) {
        snprintf(where, sizeof where, "%s.segments[%d]", path, i);
        cJSON *t = cJSON_GetArrayItem(s, 0), *r = cJSON_GetArrayItem(s, 1);
        if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) != 2 || !cJSON_IsNumber(t) ||
            !cJSON_IsNumber(r) || t->valuedouble < 0 || t->valuedouble > 1e9)
            return sim_errf(err, "%s: expected [start_s, rate_per_s]", where);
        sim_time_ns start_ns = llround(t->valuedouble * 1e9);
        if (check_segment(a, start_ns, r->valuedouble, where, err))
            return -1;
        add_segment(a, cap, start_ns, r->valuedouble);
    }
    return 0;
}

static int parse_piecewise(cJSON *obj, const char *path, arrival_proc *out, sim_err *err)
{
    static const char *const keys[] = {"process", "path", "segments", "repeat_s", NULL};
    double repeat_s;
    size_t cap = 0;
    cJSON *segs = cJSON_GetObjectItemCaseSensitive(obj, "segments");
    int rc;
    if (jcfg_check_keys(obj, path, keys, err) ||
        jcfg_num(obj, path, "repeat_s", 0, 0, 1e9, &repeat_s, err))
        return -1;
    out->kind = ARRIVAL_PIECEWISE;
    if (segs) {
        rc = rates_from_json(segs, path, out, &cap, err);
    } else {
        const char *file;
        rc = jcfg_str(obj, path, "path", JCFG_REQUIRED_STR, &file, err) ||
             rates_from_csv(file, out, &cap, err);
        if (rc && !strstr(err->msg, path))
            sim_err_prefix(err, "%s.path", path);
    }
    if (rc)
        return -1;
    out->period_ns = llround(repeat_s * 1e9);
    if (out->period_ns && out->period_ns <= out->seg_start_ns[out->n_segs - 1])
        return sim_errf(err, "%s.repeat_s: expected more than the last segment's start", path);
    bool any = false;
    for (int32_t i = 0; i < out->n_segs; i++)
        any |= out->seg_rate[i] > 0;
    if (!any)
        return sim_errf(err, "%s: every rate is 0; expected some arrivals", path);
    return 0;
}

/* ---- arrival processes ---------------------------------------------------- */

int arrival_parse(cJSON *obj, const char *path, arrival_proc *out, sim_err *err)
{
    const char *process;
    memset(out, 0, sizeof *out);
    if (jcfg_str(obj, path, "process", "poisson", &process, err))
        return -1;
    if (!strcmp(process, "poisson")) {
        static const char *const keys[] = {"process", "rate_per_s", NULL};
        out->kind = ARRIVAL_POISSON;
        return jcfg_check_keys(obj, path, keys, err) ||
                       jcfg_num(obj, path, "rate_per_s", JCFG_REQUIRED_NUM, 1e-9, 1e9,
                                &out->rate_per_s, err)
                   ? -1
                   : 0;
    }
    if (!strcmp(process, "gamma")) {
        static const char *const keys[] = {"process", "rate_per_s", "cv", NULL};
        double cv;
        if (jcfg_check_keys(obj, path, keys, err) ||
            jcfg_num(obj, path, "rate_per_s", JCFG_REQUIRED_NUM, 1e-9, 1e9, &out->rate_per_s,
                     err) ||
            jcfg_num(obj, path, "cv", JCFG_REQUIRED_NUM, 0.01, 100, &cv, err))
            return -1;
        out->kind = ARRIVAL_GAMMA;
        /* Gamma(k, theta): mean k theta, CV 1 / sqrt(k). */
        out->gamma_shape = 1 / (cv * cv);
        out->gamma_scale_s = 1 / (out->rate_per_s * out->gamma_shape);
        return 0;
    }
    if (!strcmp(process, "piecewise")) {
        if (parse_piecewise(obj, path, out, err)) {
            arrival_fini(out);
            return -1;
        }
        return 0;
    }
    if (!strcmp(process, "diurnal")) {
        static const char *const keys[] = {"process", "rate_per_s", "amplitude", "period_s",
                                           "peak_s", NULL};
        double period_s, peak_s;
        if (jcfg_check_keys(obj, path, keys, err) ||
            jcfg_num(obj, path, "rate_per_s", JCFG_REQUIRED_NUM, 1e-9, 1e9, &out->rate_per_s,
                     err) ||
            jcfg_num(obj, path, "amplitude", 0.5, 0, 1, &out->amplitude, err) ||
            jcfg_num(obj, path, "period_s", 86400, 1e-3, 1e9, &period_s, err) ||
            jcfg_num(obj, path, "peak_s", 0, 0, 1e9, &peak_s, err))
            return -1;
        out->kind = ARRIVAL_DIURNAL;
        out->period_ns = llround(period_s * 1e9);
        out->peak_ns = llround(peak_s * 1e9);
        return 0;
    }
    if (!strcmp(process, "closed_loop")) {
        static const char *const keys[] = {"process", "clients", "think_s", "think", NULL};
        int64_t clients;
        const char *think;
        if (jcfg_check_keys(obj, path, keys, err) ||
            jcfg_int(obj, path, "clients", JCFG_REQUIRED_INT, 1, 1 << 24, &clients, err) ||
            jcfg_num(obj, path, "think_s", 0, 0, 1e7, &out->think_s, err) ||
            jcfg_str(obj, path, "think", "exponential", &think, err))
            return -1;
        if (strcmp(think, "exponential") && strcmp(think, "fixed"))
            return sim_errf(err, "%s.think: expected \"exponential\" or \"fixed\", got \"%s\"",
                            path, think);
        out->kind = ARRIVAL_CLOSED_LOOP;
        out->clients = (int32_t)clients;
        out->think_fixed = !strcmp(think, "fixed");
        return 0;
    }
    if (!strcmp(process, "bursty")) {
        static const char *const keys[] = {"process", "rate_per_s", "burst_rate_per_s",
                                           "burst_s", "calm_s", NULL};
        if (jcfg_check_keys(obj, path, keys, err) ||
            jcfg_num(obj, path, "rate_per_s", JCFG_REQUIRED_NUM, 0, 1e9, &out->rate_per_s,
                     err) ||
            jcfg_num(obj, path, "burst_rate_per_s", JCFG_REQUIRED_NUM, 1e-9, 1e9,
                     &out->burst_rate_per_s, err) ||
            jcfg_num(obj, path, "burst_s", 30, 1e-3, 1e9, &out->burst_s, err) ||
            jcfg_num(obj, path, "calm_s", 300, 1e-3, 1e9, &out->calm_s, err))
            return -1;
        out->kind = ARRIVAL_BURSTY;
        return 0;
    }
    return sim_errf(err, "%s.process: expected one of: poisson, gamma, piecewise, diurnal, "
                    "closed_loop, bursty; got \"%s\"", path, process);
}

void arrival_fini(arrival_proc *a)
{
    free(a->seg_start_ns);
    free(a->seg_rate);
    a->seg_start_ns = NULL;
    a->seg_rate = NULL;
    a->n_segs = 0;
}

sim_time_ns arrival_gap_ns(const arrival_proc *a, gsl_rng *r)
{
    double gap_s = a->kind == ARRIVAL_GAMMA
                       ? gsl_ran_gamma(r, a->gamma_shape, a->gamma_scale_s)
                       : gsl_ran_exponential(r, 1.0 / a->rate_per_s);
    return sim_time_add(0, gap_s * 1e9);
}

/* ---- running a process ---------------------------------------------------- */

/* Each ready time carries its client (ready_client[i] goes with
 * ready_ns[i]); the times popped do not depend on the clients. */
static void heap_push(arrival_gen *g, sim_time_ns t, int32_t client)
{
    SIM_ASSERT(g->n_ready < g->p->clients);
    int32_t i = g->n_ready++;
    while (i > 0 && g->ready_ns[(i - 1) / 2] > t) {
        g->ready_ns[i] = g->ready_ns[(i - 1) / 2];
        g->ready_client[i] = g->ready_client[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    g->ready_ns[i] = t;
    g->ready_client[i] = client;
}

static void heap_pop(arrival_gen *g)
{
    g->client = g->ready_client[0];
    sim_time_ns last = g->ready_ns[--g->n_ready];
    int32_t last_client = g->ready_client[g->n_ready];
    int32_t i = 0, n = g->n_ready;
    for (;;) {
        int32_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && g->ready_ns[c + 1] < g->ready_ns[c])
            c++;
        if (g->ready_ns[c] >= last)
            break;
        g->ready_ns[i] = g->ready_ns[c];
        g->ready_client[i] = g->ready_client[c];
        i = c;
    }
    if (n) {
        g->ready_ns[i] = last;
        g->ready_client[i] = last_client;
    }
}

void arrival_gen_init(arrival_gen *g, const arrival_proc *p, gsl_rng *r)
{
    memset(g, 0, sizeof *g);
    g->p = p;
    g->rng = r;
    if (p->kind == ARRIVAL_CLOSED_LOOP) {
        g->ready_ns = sim_xmalloc((size_t)p->clients * sizeof *g->ready_ns);
        g->ready_client = sim_xmalloc((size_t)p->clients * sizeof *g->ready_client);
        for (int32_t i = 0; i < p->clients; i++)
            heap_push(g, 0, i);
    }
}

void arrival_gen_fini(arrival_gen *g)
{
    free(g->ready_ns);
    free(g->ready_client);
    g->ready_ns = NULL;
    g->ready_client = NULL;
}

/* Spends one exponential draw across the rate segments. */
static int piecewise_next(arrival_gen *g, sim_time_ns *t_ns)
{
    const arrival_proc *p = g->p;
    double work = gsl_ran_exponential(g->rng, 1.0);   /* in expected arrivals */
    for (;;) {
        int32_t i = g->seg;
        sim_time_ns end = i + 1 < p->n_segs ? g->seg_base_ns + p->seg_start_ns[i + 1]
                          : p->period_ns    ? g->seg_base_ns + p->period_ns
                                            : SIM_TIME_NEVER;
        double rate = p->seg_rate[i];
        if (rate > 0) {
            double need_ns = work / rate * 1e9;
            if (end == SIM_TIME_NEVER || (double)g->clock_ns + need_ns < (double)end) {
                g->clock_ns = sim_time_add(g->clock_ns, need_ns);
                *t_ns = g->clock_ns;
                return ARRIVAL_AT;
            }
            work -= rate * (double)(end - g->clock_ns) / 1e9;
        } else if (end == SIM_TIME_NEVER) {
            return ARRIVAL_END;
        }
        g->clock_ns = end;
        if (++g->seg == p->n_segs) {
            g->seg = 0;
            g->seg_base_ns += p->period_ns;
        }
    }
}

static int diurnal_next(arrival_gen *g, sim_time_ns *t_ns)
{
    const arrival_proc *p = g->p;
    double peak = p->rate_per_s * (1 + p->amplitude);
    for (;;) {
        g->clock_ns = sim_time_add(g->clock_ns, gsl_ran_exponential(g->rng, 1.0 / peak) * 1e9);
        double phase = GEN_TWO_PI * (double)(g->clock_ns - p->peak_ns) / (double)p->period_ns;
        double rate = p->rate_per_s * (1 + p->amplitude * cos(phase));
        if (gsl_rng_uniform(g->rng) * peak < rate) {
            *t_ns = g->clock_ns;
            return ARRIVAL_AT;
        }
    }
}

/* Exact for a Markov-modulated Poisson process: a gap is drawn at the
 * current state's rate; if it ends after the state does, the clock moves to
 * the switch and, the process being memoryless, a fresh gap is drawn in the
 * next state. */
static int bursty_next(arrival_gen *g, sim_time_ns *t_ns)
{
    const arrival_proc *p = g->p;
    if (g->seg_base_ns == 0)
        g->seg_base_ns = sim_time_add(0, gsl_ran_exponential(g->rng, p->calm_s) * 1e9);
    for (;;) {
        double rate = g->seg ? p->burst_rate_per_s : p->rate_per_s;
        double gap_ns = rate > 0 ? gsl_ran_exponential(g->rng, 1.0 / rate) * 1e9 : INFINITY;
        if ((double)g->clock_ns + gap_ns < (double)g->seg_base_ns) {
            g->clock_ns = sim_time_add(g->clock_ns, gap_ns);
            *t_ns = g->clock_ns;
            return ARRIVAL_AT;
        }
        g->clock_ns = g->seg_base_ns;
        g->seg = !g->seg;
        double mean_s = g->seg ? p->burst_s : p->calm_s;
        g->seg_base_ns = sim_time_add(g->clock_ns, gsl_ran_exponential(g->rng, mean_s) * 1e9);
    }
}

int arrival_gen_next(arrival_gen *g, sim_time_ns now, sim_time_ns *t_ns)
{
    switch (g->p->kind) {
    case ARRIVAL_POISSON:
    case ARRIVAL_GAMMA:
        g->clock_ns = sim_time_add(g->clock_ns, (double)arrival_gap_ns(g->p, g->rng));
        *t_ns = g->clock_ns;
        return ARRIVAL_AT;
    case ARRIVAL_PIECEWISE:
        return piecewise_next(g, t_ns);
    case ARRIVAL_DIURNAL:
        return diurnal_next(g, t_ns);
    case ARRIVAL_BURSTY:
        return bursty_next(g, t_ns);
    case ARRIVAL_CLOSED_LOOP:
        break;
    }
    if (!g->n_ready) {
        *t_ns = SIM_TIME_NEVER;
        return ARRIVAL_WAIT;
    }
    if (g->ready_ns[0] > now) {
        *t_ns = g->ready_ns[0];
        return ARRIVAL_WAIT;
    }
    heap_pop(g);
    *t_ns = now;
    return ARRIVAL_AT;
}

int arrival_gen_complete(arrival_gen *g, sim_time_ns now)
{
    return arrival_gen_complete_client(g, now, 0);
}

int arrival_gen_complete_client(arrival_gen *g, sim_time_ns now, int32_t client)
{
    const arrival_proc *p = g->p;
    if (p->kind != ARRIVAL_CLOSED_LOOP)
        return 0;
    double think_s = p->think_fixed || p->think_s == 0
                         ? p->think_s
                         : gsl_ran_exponential(g->rng, p->think_s);
    heap_push(g, sim_time_add(now, think_s * 1e9), client);
    return 1;
}
