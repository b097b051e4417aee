/* Capacity search (see capacity.h).
 *
 * Each round is one batch of runs on the local pool: the rates of the
 * round times the seeds. While bracketing, a round is one rate (doubling
 * or halving); while narrowing, it is as many evenly spaced rates inside
 * the bracket as the workers can run at once (workers / seeds, at least
 * one), so two cores halve the rounds of a one-seed search. */
#include "tool/capacity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "serve/cluster.h"
#include "sim/jsoncfg.h"
#include "tool/config.h"
#include "tool/workers.h"

void cap_spec_init(cap_spec *s)
{
    memset(s, 0, sizeof *s);
    s->attain = 0.9;
    s->seeds = 1;
    s->tolerance = 0.02;
    s->max_probes = 40;
}

static const char *const cap_metric_names[] = {"ttft", "tbt", "tpot", "e2e", "queue"};
static const char *const cap_stat_names[] = {"mean", "p50", "p90", "p99"};

const char *cap_bound_name(const cap_bound *b, char *buf, size_t size)
{
    snprintf(buf, size, "%s_%s", cap_metric_names[b->metric], cap_stat_names[b->stat]);
    return buf;
}

double cap_bound_value(const cap_bound *b, const run_summary *s)
{
    const pctl *p = b->metric == CAP_TTFT ? &s->ttft_s : b->metric == CAP_TBT ? &s->tbt_s
                  : b->metric == CAP_TPOT ? &s->tpot_s : b->metric == CAP_E2E ? &s->e2e_s
                  : &s->queue_s;
    return b->stat == CAP_MEAN ? p->mean : b->stat == CAP_P50 ? p->p50
         : b->stat == CAP_P90 ? p->p90 : p->p99;
}

static int cap_parse_one(const char *item, cap_bound *b, sim_err *err)
{
    const char *eq = strchr(item, '=');
    const char *us = strchr(item, '_');
    if (!eq || !us || us > eq)
        return sim_errf(err, "--slo: '%s': expected METRIC_STAT=VALUE, e.g. ttft_p90=500ms",
                        item);
    int m = -1, st = -1;
    for (int i = 0; i < 5; i++)
        if ((size_t)(us - item) == strlen(cap_metric_names[i]) &&
            !strncmp(item, cap_metric_names[i], (size_t)(us - item)))
            m = i;
    for (int i = 0; i < 4; i++)
        if ((size_t)(eq - us - 1) == strlen(cap_stat_names[i]) &&
            !strncmp(us + 1, cap_stat_names[i], (size_t)(eq - us - 1)))
            st = i;
    if (m < 0 || st < 0)
        return sim_errf(err, "--slo: '%.*s': expected one of ttft, tbt, tpot, e2e, queue, then "
                        "_ and one of mean, p50, p90, p99", (int)(eq - item), item);
    char *end;
    double v = strtod(eq + 1, &end);
    double scale = 1e-3;   /* milliseconds by default */
    if (!strcasecmp(end, "ms"))
        scale = 1e-3;
    else if (!strcasecmp(end, "s"))
        scale = 1;
    else if (*end)
        end = NULL;
    if (!end || end == eq + 1 || !(v > 0) || !isfinite(v))
        return sim_errf(err, "--slo: '%s': expected a time > 0 in ms (500, 500ms or 0.5s)",
                        item);
    *b = (cap_bound){(cap_metric)m, (cap_stat)st, v * scale};
    return 0;
}

int cap_parse_slo(const char *text, cap_spec *spec, sim_err *err)
{
    char *copy = sim_xstrdup(text), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        if (spec->n_bounds == CAP_MAX_BOUNDS) {
            rc = sim_errf(err, "--slo: more than %d bounds", CAP_MAX_BOUNDS);
            break;
        }
        cap_bound *b = &spec->bounds[spec->n_bounds];
        if ((rc = cap_parse_one(tok, b, err)))
            break;
        for (int i = 0; i < spec->n_bounds; i++)
            if (spec->bounds[i].metric == b->metric && spec->bounds[i].stat == b->stat) {
                char name[CAP_NAME_SIZE];
                rc = sim_errf(err, "--slo: %s given twice (%g ms and %g ms); give each bound "
                              "once", cap_bound_name(b, name, sizeof name),
                              spec->bounds[i].limit_s * 1e3, b->limit_s * 1e3);
            }
        if (!rc)
            spec->n_bounds++;
    }
    free(copy);
    if (!rc && spec->n_bounds == 0)
        rc = sim_errf(err, "--slo: expected at least one bound, e.g. ttft_p90=500ms");
    return rc;
}

/* ---- probes --------------------------------------------------------------- */

typedef struct cap_run {
    const cJSON *config;
    const char *name;
    const cap_spec *spec;
    uint64_t base_seed;
    double ttft_ms, tpot_ms;      /* per-request targets */
    int workers;
    const char *over;             /* the path searched */
    bool integer;                 /* whole numbers only */
    cap_result *res;
    run_summary *summaries;       /* the round's runs */
    int *ok;
    char *first_error;
} cap_run;

static void cap_on_done(void *ctx, int64_t job, const workers_result *r)
{
    cap_run *c = ctx;
    c->ok[job] = r->status == 0;
    c->summaries[job] = r->summary;
    if (r->status && !c->first_error)
        c->first_error = sim_xstrdup(r->msg);
}

/* The effective config of one run, as JSON text; caller frees. */
static char *cap_config(cap_run *c, double rate, int seed_index, sim_err *err)
{
    cJSON *root = cJSON_Duplicate(c->config, 1);
    char set[3][256];
    if (c->integer)
        snprintf(set[0], sizeof set[0], "%s=%.0f", c->over, rate);
    else
        snprintf(set[0], sizeof set[0], "%s=%.17g", c->over, rate);
    snprintf(set[1], sizeof set[1], "slo.ttft_ms=%.17g", c->ttft_ms);
    snprintf(set[2], sizeof set[2], "slo.tpot_ms=%.17g", c->tpot_ms);
    for (int i = 0; i < 3; i++)
        if (jcfg_set(root, set[i], err)) {
            cJSON_Delete(root);
            return NULL;
        }
    cJSON_DeleteItemFromObjectCaseSensitive(root, "seed");
    cJSON_AddNumberToObject(root, "seed", (double)(c->base_seed + (uint64_t)seed_index));
    run_config cfg;
    if (run_config_parse(root, &cfg, err))
        return NULL;
    char *json = cJSON_Print(cfg.root);
    run_config_fini(&cfg);
    return json;
}

static void cap_mean(const run_summary *s, int n, run_summary *m)
{
    memset(m, 0, sizeof *m);
    *m = s[0];
#define CAP_AVG(f)                                    \
    do {                                              \
        double sum = 0;                               \
        for (int i = 0; i < n; i++)                   \
            sum += s[i].f;                            \
        m->f = sum / n;                               \
    } while (0)
#define CAP_AVG_PCTL(p) CAP_AVG(p.mean); CAP_AVG(p.p50); CAP_AVG(p.p90); CAP_AVG(p.p99)
    CAP_AVG_PCTL(ttft_s);
    CAP_AVG_PCTL(tbt_s);
    CAP_AVG_PCTL(tpot_s);
    CAP_AVG_PCTL(e2e_s);
    CAP_AVG_PCTL(queue_s);
    CAP_AVG(slo_attain);
    CAP_AVG(slo_attain_ttft);
    CAP_AVG(slo_attain_tpot);
    CAP_AVG(throughput_req_s);
    CAP_AVG(throughput_tok_s);
    CAP_AVG(energy_per_out_token_j);
    CAP_AVG(gpu_busy_fraction);
    CAP_AVG(kv_peak_fraction);
#undef CAP_AVG_PCTL
#undef CAP_AVG
}

static void cap_judge(const cap_spec *spec, cap_probe *p)
{
    p->pass = 1;
    for (int b = 0; b < spec->n_bounds && p->pass; b++) {
        double v = cap_bound_value(&spec->bounds[b], &p->mean);
        if (!(v <= spec->bounds[b].limit_s)) {
            char name[CAP_NAME_SIZE];
            p->pass = 0;
            snprintf(p->why, sizeof p->why, "%s %.2f ms > %.2f ms",
                     cap_bound_name(&spec->bounds[b], name, sizeof name), v * 1e3,
                     spec->bounds[b].limit_s * 1e3);
        }
    }
    if (p->pass && spec->attain > 0 && !(p->mean.slo_attain >= spec->attain)) {
        p->pass = 0;
        snprintf(p->why, sizeof p->why, "attainment %.1f%% < %.1f%%", 100 * p->mean.slo_attain,
                 100 * spec->attain);
    }
}

/* Runs the rates of one round (every seed of each) and appends their
 * probes in rate order. */
static cap_status cap_round(cap_run *c, const double *rates, int n_rates, sim_err *err)
{
    int seeds = c->spec->seeds, n = n_rates * seeds;
    cap_status rc = CAP_BAD_INPUT;
    char **json = sim_xcalloc((size_t)n, sizeof *json);
    workers_job *jobs = sim_xcalloc((size_t)n, sizeof *jobs);
    c->summaries = sim_xcalloc((size_t)n, sizeof *c->summaries);
    c->ok = sim_xcalloc((size_t)n, sizeof *c->ok);
    for (int i = 0; i < n; i++) {
        if (!(json[i] = cap_config(c, rates[i / seeds], i % seeds, err))) {
            jcfg_err_source(err, c->name, c->spec->sets, c->spec->n_sets);
            goto done;
        }
        jobs[i] = (workers_job){json[i], NULL};
    }
    rc = CAP_FAILED;
    if (workers_run(jobs, n, c->workers, cap_on_done, c, err))
        goto done;
    if (c->first_error) {
        sim_errf(err, "%s: a run failed: %s", c->name, c->first_error);
        goto done;
    }
    for (int i = 0; i < n; i++)
        if (c->summaries[i].measured == 0) {
            rc = CAP_BAD_INPUT;
            sim_errf(err, "%s: the probe at %s = %.6g has no request in the summary's window "
                     "(arrivals in [%.1f, %.1f] s): shorten metrics.warmup_s or "
                     "metrics.cooldown_s, or run more requests", c->name, c->over,
                     rates[i / seeds], c->summaries[i].window_start_s,
                     c->summaries[i].window_end_s);
            goto done;
        }
    cap_result *res = c->res;
    res->probes = sim_xrealloc(res->probes, (size_t)(res->n_probes + n_rates) * sizeof *res->probes);
    for (int r = 0; r < n_rates; r++) {
        cap_probe *p = &res->probes[res->n_probes++];
        memset(p, 0, sizeof *p);
        p->rate = rates[r];
        cap_mean(&c->summaries[r * seeds], seeds, &p->mean);
        cap_judge(c->spec, p);
    }
    rc = CAP_OK;
done:
    for (int i = 0; i < n; i++)
        free(json[i]);
    free(json);
    free(jobs);
    free(c->summaries);
    free(c->ok);
    free(c->first_error);
    c->first_error = NULL;
    return rc;
}

/* Re-derives the bracket from every probe so far: lo is the highest pass
 * below the lowest fail that is above some pass (or the lowest fail). */
static void cap_bracket(cap_result *r)
{
    r->lo = r->hi = -1;
    for (int i = 0; i < r->n_probes; i++)
        if (!r->probes[i].pass && (r->hi < 0 || r->probes[i].rate < r->probes[r->hi].rate))
            r->hi = i;
    for (int i = 0; i < r->n_probes; i++)
        if (r->probes[i].pass && (r->hi < 0 || r->probes[i].rate < r->probes[r->hi].rate) &&
            (r->lo < 0 || r->probes[i].rate > r->probes[r->lo].rate))
            r->lo = i;
}

/* The node at a dotted path ("workload.arrival.rate_per_s"), or NULL. */
static const cJSON *cap_tree_get(const cJSON *root, const char *path)
{
    char key[256];
    const cJSON *node = root;
    while (node && *path) {
        size_t n = strcspn(path, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, path);
        node = cJSON_GetObjectItemCaseSensitive(node, key);
        path += n + (path[n] == '.');
    }
    return node;
}

const char *cap_default_over(const cJSON *config)
{
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(config, "workload");
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(w, "source");
    bool trace = cJSON_IsString(src) && strcmp(src->valuestring, "synthetic") != 0;
    return trace && !cJSON_GetObjectItemCaseSensitive(w, "arrival") ? "workload.rate_scale"
                                                                    : "workload.arrival.rate_per_s";
}

/* Parses a copy of `config` with over=value (NULL: as it is) and builds its
 * cluster; the effective config in *eff when not NULL. */
static int cap_try(const cJSON *config, const char *over, const char *value, cJSON **eff,
                   sim_err *err)
{
    cJSON *root = cJSON_Duplicate(config, 1);
    SIM_ASSERT(root != NULL);
    if (over) {
        char set[512];
        snprintf(set, sizeof set, "%s=%s", over, value);
        if (jcfg_set(root, set, err)) {
            cJSON_Delete(root);
            return -1;
        }
    }
    run_config cfg;
    if (run_config_parse(root, &cfg, err))
        return -1;
    cluster *check = cluster_create(&cfg.sys, NULL, err);
    if (check && eff)
        *eff = cJSON_Duplicate(cfg.root, 1);
    cluster_destroy(check);
    run_config_fini(&cfg);
    return check ? 0 : -1;
}

/* The searched path's starting value and whether it takes whole numbers
 * only (the parser says "an integer" for a half). */
static cap_status cap_start(cap_run *c, const char *name, double *start, sim_err *err)
{
    cJSON *eff = NULL;
    if (cap_try(c->config, NULL, NULL, &eff, err)) {
        jcfg_err_source(err, name, c->spec->sets, c->spec->n_sets);
        return CAP_BAD_INPUT;
    }
    const cJSON *v = cap_tree_get(eff, c->over);
    double value = cJSON_IsNumber(v) ? v->valuedouble : 0;
    size_t n = strlen(c->over);
    if (!v && n >= 10 && !strcmp(c->over + n - 10, "rate_scale"))
        value = 1;   /* a trace's default scale */
    cJSON_Delete(eff);
    *start = c->spec->start_rate > 0 ? c->spec->start_rate : value;
    if (!(*start > 0)) {
        sim_errf(err, "%s: $.%s: expected a number > 0 to start from (or pass --start)", name,
                 c->over);
        return CAP_BAD_INPUT;
    }
    char half[64], at[300];
    snprintf(half, sizeof half, "%.17g", floor(*start) + 0.5);
    snprintf(at, sizeof at, "$.%s", c->over);
    sim_err perr = {{0}};
    if (cap_try(c->config, c->over, half, NULL, &perr) && strstr(perr.msg, at) &&
        strstr(perr.msg, "an integer")) {
        c->integer = true;
        *start = floor(*start) >= 1 ? floor(*start) : 1;
    }
    return CAP_OK;
}

cap_status cap_search(const cJSON *config, const char *name, const cap_spec *spec,
                      cap_result *res, sim_err *err)
{
    memset(res, 0, sizeof *res);
    res->lo = res->hi = -1;
    cap_run c = {.config = config, .name = name, .spec = spec, .res = res,
                 .ttft_ms = 1e9, .tpot_ms = 1e9};
    int have_ttft = 0, have_tpot = 0;
    for (int b = 0; b < spec->n_bounds; b++) {
        const cap_bound *bd = &spec->bounds[b];
        if (bd->metric == CAP_TTFT && !have_ttft++)
            c.ttft_ms = bd->limit_s * 1e3;
        if (bd->metric == CAP_TPOT && !have_tpot++)
            c.tpot_ms = bd->limit_s * 1e3;
    }
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(config, "seed");
    c.base_seed = cJSON_IsNumber(seed) && seed->valuedouble >= 0 ? (uint64_t)seed->valuedouble : 1;
    c.workers = spec->jobs > 0 ? spec->jobs : workers_default_workers();
    c.over = spec->over ? spec->over : cap_default_over(config);
    snprintf(res->over, sizeof res->over, "%s", c.over);
    res->is_rate = !strcmp(c.over, "workload.arrival.rate_per_s");
    double rate;
    cap_status rc = cap_start(&c, name, &rate, err);
    if (rc)
        return rc;
    res->integer = c.integer;

    /* The configured size, for the per-instance and per-GPU rates; and the
     * cluster built once, so that a config that cannot run (a policy's
     * name, the workload) is bad input here rather than a failed run. */
    char *probe_json = cap_config(&c, rate, 0, err);
    if (!probe_json) {
        jcfg_err_source(err, name, spec->sets, spec->n_sets);
        return CAP_BAD_INPUT;
    }
    cJSON *probe_root = cJSON_Parse(probe_json);
    free(probe_json);
    run_config cfg;
    if (run_config_parse(probe_root, &cfg, err)) {
        jcfg_err_source(err, name, spec->sets, spec->n_sets);
        return CAP_BAD_INPUT;
    }
    cluster *check = cluster_create(&cfg.sys, NULL, err);
    cluster_destroy(check);
    int gpus = 0, instances = 0;
    for (int32_t k = 0; k < cfg.sys.n_pools; k++) {
        instances += cfg.sys.pools[k].instances;
        gpus += cfg.sys.pools[k].instances * par_gpus(&cfg.sys.pools[k].par);
    }
    run_config_fini(&cfg);
    if (!check) {
        jcfg_err_source(err, name, spec->sets, spec->n_sets);
        return CAP_BAD_INPUT;
    }

    /* Bracket: double or halve until the verdict flips. */
    if ((rc = cap_round(&c, &rate, 1, err)))
        goto fail;
    int up = res->probes[0].pass;
    for (int step = 0; step < CAP_BRACKET_STEPS; step++) {
        cap_bracket(res);
        if (res->lo >= 0 && res->hi >= 0)
            break;
        rate = up ? rate * 2 : c.integer ? floor(rate / 2) : rate / 2;
        if (c.integer && rate < 1)
            break;   /* nothing below 1 to try */
        if ((rc = cap_round(&c, &rate, 1, err)))
            goto fail;
    }
    cap_bracket(res);
    if (res->lo < 0 || res->hi < 0)
        res->capped = CAP_CAPPED_BRACKET;
    /* Narrow: several rates per round when there are workers to spare. */
    int per_round = c.workers / spec->seeds > 1 ? c.workers / spec->seeds : 1;
    while (res->lo >= 0 && res->hi >= 0) {
        double lo = res->probes[res->lo].rate, hi = res->probes[res->hi].rate;
        if (c.integer ? hi - lo <= 1 : (hi - lo) / hi <= spec->tolerance)
            break;
        if (res->n_probes >= spec->max_probes) {
            res->capped = CAP_CAPPED_PROBES;
            break;
        }
        double rates[64];
        int n = per_round < 64 ? per_round : 64;
        if (n > spec->max_probes - res->n_probes)
            n = spec->max_probes - res->n_probes;
        int m = 0;
        for (int k = 0; k < n; k++) {
            double v = lo + (hi - lo) * (k + 1) / (n + 1);
            if (c.integer) {
                v = floor(v + 0.5);
                if (v <= lo || v >= hi || (m && v == rates[m - 1]))
                    continue;
            }
            rates[m++] = v;
        }
        n = m;
        if (n == 0)
            break;
        if ((rc = cap_round(&c, rates, n, err)))
            goto fail;
        cap_bracket(res);
    }
    if (res->lo >= 0) {
        res->rate = res->probes[res->lo].rate;
        res->throughput = res->probes[res->lo].mean.throughput_req_s;
        size_t n = strlen(c.over);
        double req_s = res->is_rate ? res->rate
                     : n >= 10 && !strcmp(c.over + n - 10, "rate_scale") ? res->throughput : 0;
        res->per_instance = req_s / instances;
        res->per_gpu = req_s / gpus;
    }
    return CAP_OK;
fail:
    cap_result_fini(res);
    return rc;
}

void cap_result_fini(cap_result *r)
{
    free(r->probes);
    memset(r, 0, sizeof *r);
    r->lo = r->hi = -1;
}
