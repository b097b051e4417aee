/* Experiment files (see experiment.h and experiments/README.md).
 *
 * Design. The sweep is a list of dimensions: one per grid path, one per zip
 * group (its paths move together) and, innermost, the seeds. A point is a
 * mixed-radix number over those dimensions, so expanding is arithmetic and
 * a point's values are pointers into the experiment's own tree. A point's
 * config is the base with the point's assignments applied through jcfg_set
 * (the same code as --set), then parsed and its cluster built once, which is
 * what validates it; the effective config (defaults filled in) is kept as
 * JSON text, which is what a worker runs and what the results file records.
 * That is done per point, on demand (exp_point_prepare), because it is what
 * costs: about half a millisecond and 2 KB a point.
 *
 * Cost of exp_parse: O(points x params) time and a few hundred bytes a
 * point, which is why EXP_MAX_POINTS exists (and EXP_MAX_POINTS_FORCED
 * above it). */
#include "tool/experiment.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool/config.h"
#include "sim/jsoncfg.h"

/* ---- small growable string ------------------------------------------------ */

typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    SIM_ASSERT(n >= 0);
    sim_grow((void **)&b->s, &b->cap, b->len + (size_t)n + 1, 1);
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* ---- canonical JSON ----------------------------------------------------------- */

static int cmp_child_key(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(x->string, y->string);
}

/* Sorts every object's members by key, recursively (cJSON keeps members in
 * a list whose head's prev points at the tail). */
static void sort_keys(cJSON *v)
{
    size_t n = 0;
    for (cJSON *c = v->child; c; c = c->next) {
        sort_keys(c);
        n++;
    }
    if (!cJSON_IsObject(v) || n < 2)
        return;
    cJSON **a = sim_xmalloc(n * sizeof *a);
    n = 0;
    for (cJSON *c = v->child; c; c = c->next)
        a[n++] = c;
    qsort(a, n, sizeof *a, cmp_child_key);
    for (size_t i = 0; i < n; i++) {
        a[i]->next = i + 1 < n ? a[i + 1] : NULL;
        a[i]->prev = i ? a[i - 1] : a[n - 1];
    }
    v->child = a[0];
    free(a);
}

char *exp_canonical_json(const cJSON *v)
{
    cJSON *copy = cJSON_Duplicate(v, 1);
    if (!copy)
        abort();
    sort_keys(copy);
    char *text = cJSON_PrintUnformatted(copy);
    cJSON_Delete(copy);
    if (!text)
        abort();
    return text;
}

/* ---- the sweep's dimensions ------------------------------------------------ */

typedef struct exp_dim {
    int32_t first_param, n_params;   /* the params that move with it */
    int64_t size;
} exp_dim;

typedef struct exp_build {
    experiment *e;
    cJSON *base;                  /* the base config, owned */
    const cJSON ***vals;          /* vals[param][k]: the param's k-th value */
    exp_dim *dims;
    int32_t n_dims;
    const cJSON *seed_list;       /* or NULL: base seed + 0, 1, ... */
    uint64_t base_seed;
} exp_build;

/* "$.sweep.grid" + key -> $.sweep.grid["a.b"] (swept paths always contain
 * dots, so always bracketed). */
static void key_path(char *out, size_t n, const char *obj_path, const char *key)
{
    snprintf(out, n, "%s[\"%s\"]", obj_path, key);
}

static int check_path_text(const char *jpath, const char *p, sim_err *err)
{
    if (!*p || strchr(p, '=') || p[0] == '.' || p[strlen(p) - 1] == '.' || strstr(p, ".."))
        return sim_errf(err, "%s: expected a config path like \"workload.arrival.rate_per_s\"",
                        jpath);
    if (!strcmp(p, "seed"))
        return sim_errf(err, "%s: the seed is swept with $.sweep.seeds, not as a path", jpath);
    return 0;
}

/* Adds one swept path whose values are the array `list`. */
static int add_param(exp_build *b, const char *jpath, const char *path, const cJSON *list,
                     int64_t want_len, sim_err *err)
{
    experiment *e = b->e;
    if (check_path_text(jpath, path, err))
        return -1;
    for (int32_t i = 0; i < e->n_params; i++)
        if (!strcmp(e->params[i].path, path))
            return sim_errf(err, "%s: path swept twice (also in an earlier grid or zip entry)",
                            jpath);
    int64_t len = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : 0;
    if (!cJSON_IsArray(list) || len == 0)
        return sim_errf(err, "%s: expected a non-empty array of values", jpath);
    if (want_len > 0 && len != want_len)
        return sim_errf(err, "%s: expected %lld values like the group's first list, got %lld",
                        jpath, (long long)want_len, (long long)len);
    size_t cap = (size_t)e->n_params;
    sim_grow((void **)&e->params, &cap, (size_t)e->n_params + 1, sizeof *e->params);
    cap = (size_t)e->n_params;
    sim_grow((void **)&b->vals, &cap, (size_t)e->n_params + 1, sizeof *b->vals);
    exp_param *p = &e->params[e->n_params];
    const cJSON **vals = sim_xcalloc((size_t)len, sizeof *vals);
    b->vals[e->n_params++] = vals;
    *p = (exp_param){.path = sim_xstrdup(path)};

    int all_int = 1, all_num = 1, all_bool = 1, all_str = 1;
    int64_t k = 0;
    for (const cJSON *v = list->child; v; v = v->next, k++) {
        vals[k] = v;
        all_num &= cJSON_IsNumber(v);
        all_int &= cJSON_IsNumber(v) && v->valuedouble == (double)(int64_t)v->valuedouble &&
                   v->valuedouble > -9007199254740992.0 && v->valuedouble < 9007199254740992.0;
        all_bool &= cJSON_IsBool(v);
        all_str &= cJSON_IsString(v);
        size_t len_text;
        if (cJSON_IsString(v)) {
            len_text = strlen(v->valuestring);
        } else {
            char *t = exp_canonical_json(v);
            len_text = strlen(t);
            free(t);
        }
        if (len_text > p->text_len)
            p->text_len = len_text;
    }
    p->kind = all_int ? EXP_INT : all_num ? EXP_NUM : all_bool ? EXP_BOOL
            : all_str ? EXP_STR : EXP_JSON;
    return 0;
}

static void add_dim(exp_build *b, int32_t first, int32_t n, int64_t size)
{
    size_t cap = (size_t)b->n_dims;
    sim_grow((void **)&b->dims, &cap, (size_t)b->n_dims + 1, sizeof *b->dims);
    b->dims[b->n_dims++] = (exp_dim){first, n, size};
}

static int parse_grid(exp_build *b, cJSON *grid, sim_err *err)
{
    if (!grid)
        return 0;
    if (!cJSON_IsObject(grid))
        return sim_errf(err, "$.sweep.grid: expected an object of path: [values]");
    if (!grid->child)
        return sim_errf(err, "$.sweep.grid: empty; expected at least one path: [values] "
                        "(leave \"grid\" out to sweep seeds alone)");
    for (const cJSON *c = grid->child; c; c = c->next) {
        char jp[512];
        key_path(jp, sizeof jp, "$.sweep.grid", c->string);
        if (add_param(b, jp, c->string, c, 0, err))
            return -1;
        add_dim(b, b->e->n_params - 1, 1, cJSON_GetArraySize(c));
    }
    return 0;
}

static int parse_zip(exp_build *b, cJSON *zip, sim_err *err)
{
    if (!zip)
        return 0;
    if (!cJSON_IsArray(zip))
        return sim_errf(err, "$.sweep.zip: expected an array of groups "
                        "({path: [values], ...} with lists of equal length)");
    if (!zip->child)
        return sim_errf(err, "$.sweep.zip: empty; expected at least one group (leave \"zip\" "
                        "out for none)");
    int g = 0;
    for (const cJSON *grp = zip->child; grp; grp = grp->next, g++) {
        char gp[64];
        snprintf(gp, sizeof gp, "$.sweep.zip[%d]", g);
        if (!cJSON_IsObject(grp) || !grp->child)
            return sim_errf(err, "%s: expected a non-empty object of path: [values]", gp);
        int32_t first = b->e->n_params;
        int64_t len = cJSON_GetArraySize(grp->child);
        for (const cJSON *c = grp->child; c; c = c->next) {
            char jp[512];
            key_path(jp, sizeof jp, gp, c->string);
            if (add_param(b, jp, c->string, c, c == grp->child ? 0 : len, err))
                return -1;
        }
        add_dim(b, first, b->e->n_params - first, len);
    }
    return 0;
}

static int parse_seeds(exp_build *b, cJSON *sweep, sim_err *err)
{
    cJSON *seeds = cJSON_GetObjectItemCaseSensitive(sweep, "seeds");
    if (cJSON_IsArray(seeds)) {
        int k = 0;
        for (const cJSON *s = seeds->child; s; s = s->next, k++) {
            if (!cJSON_IsNumber(s) || s->valuedouble < 0 || s->valuedouble >= 9007199254740992.0 ||
                s->valuedouble != (double)(int64_t)s->valuedouble)
                return sim_errf(err, "$.sweep.seeds[%d]: expected an integer in [0, 2^53)", k);
            for (const cJSON *t = seeds->child; t != s; t = t->next)
                if (t->valuedouble == s->valuedouble)
                    return sim_errf(err, "$.sweep.seeds[%d]: seed listed twice", k);
        }
        if (k == 0)
            return sim_errf(err, "$.sweep.seeds: expected a count or a non-empty list of seeds");
        b->seed_list = seeds;
        b->e->n_seeds = k;
        return 0;
    }
    int64_t n;
    if (jcfg_int(sweep, "$.sweep", "seeds", 1, 1, 100000, &n, err))
        return -1;
    b->e->n_seeds = (int32_t)n;
    return 0;
}

/* Reads the base config: "base" inline or "base_config" relative to the
 * experiment file's folder, then the "set" assignments. */
static int parse_base(exp_build *b, cJSON *root, const char *file, sim_err *err)
{
    cJSON *inline_base = cJSON_GetObjectItemCaseSensitive(root, "base");
    cJSON *base_file = cJSON_GetObjectItemCaseSensitive(root, "base_config");
    if (!!inline_base == !!base_file)
        return sim_errf(err, "$: expected exactly one of \"base\" (a run config) and "
                        "\"base_config\" (a config file's path)");
    if (inline_base) {
        if (!cJSON_IsObject(inline_base))
            return sim_errf(err, "$.base: expected an object (a run config)");
        b->base = cJSON_Duplicate(inline_base, 1);
    } else {
        if (!cJSON_IsString(base_file) || !base_file->valuestring[0])
            return sim_errf(err, "$.base_config: expected a config file's path");
        const char *name = base_file->valuestring, *slash = strrchr(file, '/');
        char path[4096];
        int n = name[0] == '/' || !slash
              ? snprintf(path, sizeof path, "%s", name)
              : snprintf(path, sizeof path, "%.*s/%s", (int)(slash - file), file, name);
        if (n < 0 || (size_t)n >= sizeof path)
            return sim_errf(err, "$.base_config: path longer than %zu bytes", sizeof path - 1);
        b->e->base_file = sim_xstrdup(path);
        if (jcfg_load_file(path, &b->base, err))
            return sim_err_prefix(err, "$.base_config");
    }
    cJSON *set = cJSON_GetObjectItemCaseSensitive(root, "set");
    if (set && !cJSON_IsObject(set))
        return sim_errf(err, "$.set: expected an object of path: value");
    for (const cJSON *c = set ? set->child : NULL; c; c = c->next) {
        char jp[512];
        key_path(jp, sizeof jp, "$.set", c->string);
        if (strcmp(c->string, "seed") && check_path_text(jp, c->string, err))
            return -1;   /* "seed" may be set here: it is the base seed */
        char *value = exp_canonical_json(c);
        sbuf a = {0};
        sb_printf(&a, "%s=%s", c->string, value);
        int rc = jcfg_set(b->base, a.s, err);
        free(value);
        free(a.s);
        if (rc)
            return sim_err_prefix(err, "%s", jp);
    }
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(b->base, "seed");
    b->base_seed = 1;   /* the run config's default */
    if (seed) {
        if (!cJSON_IsNumber(seed) || seed->valuedouble < 0 ||
            seed->valuedouble >= 9007199254740992.0 ||
            seed->valuedouble != (double)(int64_t)seed->valuedouble)
            return sim_errf(err, "base config: $.seed: expected an integer in [0, 2^53)");
        b->base_seed = (uint64_t)seed->valuedouble;
    }
    /* The command line's --set, after the file's "set": it wins. */
    for (int i = 0; i < b->e->n_sets; i++)
        if (jcfg_set(b->base, b->e->sets[i], err))
            return sim_err_prefix(err, "command line --set %.200s", b->e->sets[i]);
    b->e->base_json = cJSON_Print(b->base);
    return 0;
}

/* A command-line --set of a swept path (or one inside a swept object)
 * would be replaced at every point. */
static int check_cli_set_not_swept(const experiment *e, sim_err *err)
{
    for (int i = 0; i < e->n_sets; i++) {
        const char *s = e->sets[i];
        size_t klen = strcspn(s, "=");
        for (int32_t p = 0; p < e->n_params; p++) {
            const char *sp = e->params[p].path;
            size_t n = strlen(sp);
            if (klen >= n && !strncmp(s, sp, n) && (klen == n || s[n] == '.')) {
                sim_errf(err, "command line --set %.200s: also swept (\"%s\" in $.sweep), "
                         "whose values would replace it at every point", s, sp);
                return -1;
            }
        }
    }
    return 0;
}

/* A "set" path that a swept path replaces (the same path, or one inside a
 * swept object) would be silently overridden at every point. */
static int check_set_not_swept(const experiment *e, const cJSON *root, sim_err *err)
{
    const cJSON *set = cJSON_GetObjectItemCaseSensitive(root, "set");
    for (const cJSON *c = set ? set->child : NULL; c; c = c->next)
        for (int32_t p = 0; p < e->n_params; p++) {
            const char *sp = e->params[p].path;
            size_t n = strlen(sp);
            if (!strncmp(c->string, sp, n) && (!c->string[n] || c->string[n] == '.'))
                return sim_errf(err, "$.set[\"%s\"]: also swept (\"%s\" in $.sweep), whose "
                                "values would replace it at every point; set it in one "
                                "place only", c->string, sp);
        }
    return 0;
}

/* ---- points ------------------------------------------------------------------ */

typedef struct exp_assign {
    const char *path;
    char *value;   /* canonical JSON */
} exp_assign;

static int cmp_assign(const void *a, const void *b)
{
    return strcmp(((const exp_assign *)a)->path, ((const exp_assign *)b)->path);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Fills the point's values, seed, label and id. */
static void make_point(exp_build *b, int64_t index, exp_point *pt)
{
    experiment *e = b->e;
    pt->index = index;
    pt->values = sim_xcalloc((size_t)e->n_params + 1, sizeof *pt->values);
    int64_t r = index;
    pt->seed_index = (int32_t)(r % e->n_seeds);
    r /= e->n_seeds;
    for (int32_t d = b->n_dims - 1; d >= 0; d--) {
        int64_t k = r % b->dims[d].size;
        r /= b->dims[d].size;
        for (int32_t j = 0; j < b->dims[d].n_params; j++) {
            int32_t p = b->dims[d].first_param + j;
            pt->values[p] = b->vals[p][k];
        }
    }
    pt->seed = b->seed_list
             ? (uint64_t)cJSON_GetArrayItem(b->seed_list, pt->seed_index)->valuedouble
             : b->base_seed + (uint64_t)pt->seed_index;

    exp_assign *as = sim_xcalloc((size_t)e->n_params + 1, sizeof *as);
    sbuf label = {0}, canon = {0};
    for (int32_t p = 0; p < e->n_params; p++) {
        as[p] = (exp_assign){e->params[p].path, exp_canonical_json(pt->values[p])};
        sb_printf(&label, "%s=%s, ", e->params[p].path, as[p].value);
    }
    sb_printf(&label, "seed=%llu", (unsigned long long)pt->seed);
    qsort(as, (size_t)e->n_params, sizeof *as, cmp_assign);
    for (int32_t p = 0; p < e->n_params; p++) {
        sb_printf(&canon, "%s=%s\n", as[p].path, as[p].value);
        free(as[p].value);
    }
    sb_printf(&canon, "seed=%llu\n", (unsigned long long)pt->seed);
    free(as);
    /* splitmix64's finaliser spreads FNV's low-entropy top bits, so that ids of
     * neighbouring points do not share their leading digits. */
    uint64_t z = fnv1a(canon.s);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    pt->id = z ^ (z >> 31);
    snprintf(pt->id_hex, sizeof pt->id_hex, "%016llx", (unsigned long long)pt->id);
    pt->label = label.s;
    free(canon.s);
}

int exp_point_prepare(experiment *e, int64_t i, sim_err *err)
{
    SIM_ASSERT(i >= 0 && i < e->n_points);
    exp_point *pt = &e->points[i];
    if (pt->config_json)
        return 0;
    cJSON *root = cJSON_Duplicate(e->base, 1);
    if (!root)
        abort();
    int rc = -1;
    for (int32_t p = 0; p < e->n_params; p++) {
        char *value = exp_canonical_json(pt->values[p]);
        sbuf a = {0};
        sb_printf(&a, "%s=%s", e->params[p].path, value);
        rc = jcfg_set(root, a.s, err);
        free(value);
        free(a.s);
        if (rc) {
            cJSON_Delete(root);
            goto fail;
        }
    }
    cJSON_DeleteItemFromObjectCaseSensitive(root, "seed");
    cJSON_AddNumberToObject(root, "seed", (double)pt->seed);
    run_config cfg;
    if (run_config_parse(root, &cfg, err))
        goto fail;
    cluster *c = cluster_create(&cfg.sys, NULL, err);
    if (c)
        pt->config_json = cJSON_Print(cfg.root);
    cluster_destroy(c);
    run_config_fini(&cfg);
    if (c)
        return 0;
fail:;
    /* A value from the command line's --set is named as such. */
    sim_err src = *err;
    if (e->n_sets && jcfg_err_source(&src, NULL, e->sets, e->n_sets) &&
        !strncmp(src.msg, "command line", 12))
        *err = src;
    return sim_err_prefix(err, "%s: point %lld (%s)", e->file, (long long)i, pt->label);
}

void exp_point_release(experiment *e, int64_t i)
{
    free(e->points[i].config_json);
    e->points[i].config_json = NULL;
}

int exp_prepare_all(experiment *e, sim_err *err)
{
    for (int64_t i = 0; i < e->n_points; i++)
        if (exp_point_prepare(e, i, err))
            return -1;
    return 0;
}

static int cmp_point_id(const void *a, const void *b)
{
    const exp_point *x = *(const exp_point *const *)a, *y = *(const exp_point *const *)b;
    return x->id < y->id ? -1 : x->id > y->id ? 1 : (x->index > y->index) - (x->index < y->index);
}

/* Two points with equal assignments (a list that repeats a value) would
 * share an id and a results group. */
static int check_unique_ids(const experiment *e, sim_err *err)
{
    const exp_point **by_id = sim_xmalloc((size_t)e->n_points * sizeof *by_id);
    for (int64_t i = 0; i < e->n_points; i++)
        by_id[i] = &e->points[i];
    qsort(by_id, (size_t)e->n_points, sizeof *by_id, cmp_point_id);
    int rc = 0;
    for (int64_t i = 1; i < e->n_points && !rc; i++)
        if (by_id[i]->id == by_id[i - 1]->id)
            rc = sim_errf(err, "points %lld and %lld have the same id %s (%s): does a list "
                          "repeat a value?", (long long)by_id[i - 1]->index,
                          (long long)by_id[i]->index, by_id[i]->id_hex, by_id[i]->label);
    free(by_id);
    return rc;
}

static int expand(exp_build *b, int64_t max_points, sim_err *err)
{
    experiment *e = b->e;
    int64_t n = e->n_seeds;
    for (int32_t d = 0; d < b->n_dims; d++) {
        if (b->dims[d].size > max_points || n * b->dims[d].size > max_points) {
            /* n * size cannot overflow: both are at most 10^7 here. */
            if (max_points < EXP_MAX_POINTS_FORCED)
                return sim_errf(err, "$.sweep: more than %lld points; a sweep that large "
                                "needs --force (which allows up to %d)",
                                (long long)max_points, EXP_MAX_POINTS_FORCED);
            return sim_errf(err, "$.sweep: more than %lld points, the most a sweep may have",
                            (long long)max_points);
        }
        n *= b->dims[d].size;
    }
    e->points = sim_xcalloc((size_t)n, sizeof *e->points);
    e->n_points = n;
    for (int64_t i = 0; i < n; i++)
        make_point(b, i, &e->points[i]);
    return check_unique_ids(e, err);
}

int exp_parse(cJSON *root, const char *file, int64_t max_points, experiment *e,
              sim_err *err)
{
    return exp_parse_sets(root, file, NULL, 0, max_points, e, err);
}

int exp_parse_sets(cJSON *root, const char *file, char *const *sets, int n_sets,
                   int64_t max_points, experiment *e, sim_err *err)
{
    if (max_points <= 0)
        max_points = EXP_MAX_POINTS;
    if (max_points > EXP_MAX_POINTS_FORCED)
        max_points = EXP_MAX_POINTS_FORCED;
    static const char *const keys[] = {"description", "base", "base_config", "set",
                                       "sweep", NULL};
    static const char *const sweep_keys[] = {"grid", "zip", "seeds", NULL};
    memset(e, 0, sizeof *e);
    e->file = sim_xstrdup(file);
    e->root = root;
    e->sets = sets;
    e->n_sets = n_sets;
    exp_build b = {.e = e};
    cJSON *sweep = cJSON_GetObjectItemCaseSensitive(root, "sweep");
    const char *description;
    int rc = -1;
    if (jcfg_check_keys(root, "$", keys, err) ||
        jcfg_str(root, "$", "description", "", &description, err) ||
        parse_base(&b, root, file, err))
        goto done;
    if (!cJSON_IsObject(sweep)) {
        sim_errf(err, "$.sweep: expected an object with \"grid\", \"zip\" and/or \"seeds\"");
        goto done;
    }
    if (jcfg_check_keys(sweep, "$.sweep", sweep_keys, err) ||
        parse_grid(&b, cJSON_GetObjectItemCaseSensitive(sweep, "grid"), err) ||
        parse_zip(&b, cJSON_GetObjectItemCaseSensitive(sweep, "zip"), err) ||
        check_set_not_swept(e, root, err) || check_cli_set_not_swept(e, err) ||
        parse_seeds(&b, sweep, err) ||
        expand(&b, max_points, err))
        goto done;
    rc = 0;
done:
    for (int32_t p = 0; p < e->n_params; p++)
        free(b.vals[p]);
    free(b.vals);
    free(b.dims);
    e->base = b.base;
    if (rc) {
        if (strncmp(err->msg, "command line --set", 18))
            sim_err_prefix(err, "%s", file);
        exp_fini(e);
    }
    return rc;
}

int exp_load(const char *path, int64_t max_points, experiment *out, sim_err *err)
{
    return exp_load_sets(path, NULL, 0, max_points, out, err);
}

int exp_load_sets(const char *path, char *const *sets, int n_sets, int64_t max_points,
                  experiment *out, sim_err *err)
{
    cJSON *root;
    memset(out, 0, sizeof *out);
    if (jcfg_load_file(path, &root, err))
        return -1;
    return exp_parse_sets(root, path, sets, n_sets, max_points, out, err);
}

void exp_fini(experiment *e)
{
    for (int64_t i = 0; i < e->n_points; i++) {
        free(e->points[i].values);
        free(e->points[i].label);
        free(e->points[i].config_json);
    }
    free(e->points);
    for (int32_t p = 0; p < e->n_params; p++)
        free(e->params[p].path);
    free(e->params);
    free(e->base_json);
    cJSON_Delete(e->base);
    cJSON_Delete(e->root);
    free(e->file);
    free(e->base_file);
    memset(e, 0, sizeof *e);
}
