/* Measured cost tables: loading, interpolation, leave-one-out, and the
 * `table` cost model (see cost_table.h; the schema is in calib/README.md).
 *
 * Design. ctab_load reads the whole JSON once, checks everything a lookup
 * relies on (schema and version, the GPU's name, positive ceilings, every
 * family, entry, param and axis known and complete, grids strictly
 * increasing, latencies > 0 or null), and keeps per entry flat arrays: the
 * grid in interpolation coordinates (log or linear per axis), latency and
 * its logarithm, the fraction of the measured-ceiling roofline and its
 * logarithm, power filled in between the measured points, and for every
 * point the nearest measured one. Pricing then does no allocation and no
 * search once a run's hint has found each op kind's entry: a binary search
 * per axis, a few logarithms and one exponential.
 *
 * The measured-ceiling roofline of an op is max(flops / peak FLOP/s,
 * bytes / device bandwidth), both as measured by calib (no kernel floor:
 * the table measures that). Holding its measured fraction outside the grid
 * keeps an op's efficiency from its nearest measured shape while its work
 * follows the op.
 *
 * Invariants: entries of a family have distinct params; every entry has at
 * least one measured point; t[i] > 0 where have[i]; subst[i] is measured;
 * pw[] is all finite or all NAN per entry. */
#define _DEFAULT_SOURCE   /* madvise(MADV_HUGEPAGE) for the price memo */
#include "models/cost_table.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "sim/jsoncfg.h"

#define SCHEMA_NAME "servesim-cost-table"
#define SCHEMA_VERSION 1
#define AXIS_MAX 512
#define EPS_LOG 1e-9     /* on log axes: how far outside still counts as on the edge */
#define EPS_LIN 1e-6

typedef struct tab_entry {
    int64_t p[CTAB_MAX_PARAMS];
    int n[CTAB_MAX_AXES];       /* axis lengths; 1 for axes the family lacks */
    double *u[CTAB_MAX_AXES];   /* grid in interpolation coordinates */
    int n_points;
    double *t, *lt;             /* median latency, ns, and its log; NAN if missing */
    double *fr, *lfr;           /* measured-ceiling roofline / latency, and its log */
    double *pw;                 /* power, W, filled between measured points */
    uint8_t *have;              /* latency measured */
    uint8_t *have_pw;           /* power measured */
    int *subst;                 /* nearest measured point */
    double *flops, *bytes;
} tab_entry;

typedef struct tab_family {
    int n;
    tab_entry *e;
} tab_family;

struct ctab {
    char path[1024];
    char gpu[64];
    char source[512];           /* $.provenance.source of an imported table, or "" */
    double ceil_flops, ceil_bw;
    double idle_w;
    tab_family fam[CTAB_FAMILY_COUNT];
};

/* ---- small helpers -------------------------------------------------------- */

const char *ctab_default_dir(void)
{
    const char *env = getenv("SERVESIM_TABLES_DIR");
    if (env && *env)
        return env;
#ifdef SERVESIM_TABLES_DIR
    return SERVESIM_TABLES_DIR;
#else
    return "calib/tables";
#endif
}

static double rstar_ns(const ctab *t, double flops, double bytes)
{
    return fmax(fmax(flops / t->ceil_flops, bytes / t->ceil_bw) * 1e9, 1e-3);
}

static double to_u(ctab_scale s, double x)
{
    return s == CTAB_SCALE_LOG ? log(fmax(x, 1e-300)) : x;
}

/* Interpolates between a and b at weight w along an axis of scale s. */
static double mix(double a, double b, double w, ctab_scale s)
{
    if (w <= 0)
        return a;
    if (w >= 1)
        return b;
    if (s == CTAB_SCALE_LOG)
        return exp(log(a) + w * (log(b) - log(a)));
    return a + w * (b - a);
}

/* ---- loading: errors ------------------------------------------------------- */

typedef struct loader {
    const char *file;
    sim_err *err;
} loader;

static int lfail(loader *L, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int lfail(loader *L, const char *path, const char *fmt, ...)
{
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* "[3]: ..." continues the path: $.a.b[3]: ... */
    return sim_errf(L->err, "%s: %s%s%s", L->file, path, msg[0] == '[' ? "" : ": ", msg);
}

static void describe(const cJSON *v, char *out, size_t n)
{
    if (!v)
        snprintf(out, n, "nothing");
    else if (cJSON_IsNumber(v))
        snprintf(out, n, "%.15g", v->valuedouble);
    else if (cJSON_IsString(v))
        snprintf(out, n, "\"%.40s\"", v->valuestring);
    else if (cJSON_IsNull(v))
        snprintf(out, n, "null");
    else if (cJSON_IsBool(v))
        snprintf(out, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else
        snprintf(out, n, "%s", cJSON_IsArray(v) ? "an array" : "an object");
}

static cJSON *child(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* out = "<path><fmt...>", cut to n bytes (JSON paths in messages only). Not
 * inlined, so that the compiler does not prove truncation of nested paths. */
static void __attribute__((noinline, format(printf, 3, 4)))
path_fmt(char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, n, fmt, ap);
    va_end(ap);
}

static int need_obj(loader *L, const cJSON *obj, const char *path, const char *key,
                    cJSON **out, char *child_path)
{
    path_fmt(child_path, 256, "%s.%s", path, key);
    *out = child(obj, key);
    if (!cJSON_IsObject(*out)) {
        char got[64];
        describe(*out, got, sizeof got);
        return lfail(L, child_path, "expected an object, got %s", got);
    }
    return 0;
}

static int need_num(loader *L, const cJSON *obj, const char *path, const char *key,
                    double lo, double *out)
{
    cJSON *v = child(obj, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || !(v->valuedouble > lo)) {
        char got[64];
        describe(v, got, sizeof got);
        return lfail(L, path, "%s: expected a number > %g, got %s", key, lo, got);
    }
    *out = v->valuedouble;
    return 0;
}

/* Fills out[0..n) from the array obj[key]: numbers >= lo (> lo when
 * strict), or null (NAN) when nulls are allowed. */
static int read_array(loader *L, const cJSON *obj, const char *path, const char *key,
                      int n, int allow_null, double lo, int strict, double *out)
{
    char p[256];
    path_fmt(p, sizeof p, "%s.%s", path, key);
    cJSON *arr = child(obj, key);
    if (!cJSON_IsArray(arr))
        return lfail(L, p, "expected an array of %d numbers", n);
    int len = cJSON_GetArraySize(arr);
    if (len != n)
        return lfail(L, p, "expected %d values (one per grid point), got %d", n, len);
    int i = 0;
    for (cJSON *v = arr->child; v; v = v->next, i++) {
        if (allow_null && cJSON_IsNull(v)) {
            out[i] = NAN;
            continue;
        }
        int ok = cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
                 (strict ? v->valuedouble > lo : v->valuedouble >= lo);
        if (!ok) {
            char got[64];
            describe(v, got, sizeof got);
            return lfail(L, p, "[%d]: expected a number %s %g%s, got %s", i,
                         strict ? ">" : ">=", lo, allow_null ? " or null" : "", got);
        }
        out[i] = v->valuedouble;
    }
    return 0;
}

static int check_keys(loader *L, const cJSON *obj, const char *path,
                      const char *const *allowed)
{
    sim_err e = {{0}};
    if (jcfg_check_keys(obj, path, allowed, &e) < 0)
        return sim_errf(L->err, "%s: %s", L->file, e.msg);
    return 0;
}

/* ---- loading: entries ------------------------------------------------------- */

static void entry_free(tab_entry *e)
{
    for (int a = 0; a < CTAB_MAX_AXES; a++)
        free(e->u[a]);
    free(e->t);
    free(e->lt);
    free(e->fr);
    free(e->lfr);
    free(e->pw);
    free(e->have);
    free(e->have_pw);
    free(e->subst);
    free(e->flops);
    free(e->bytes);
}

/* Grid index distance between two points (L1 over axes). */
static int grid_dist(const tab_entry *e, int a, int b)
{
    int d = 0;
    for (int ax = CTAB_MAX_AXES - 1; ax >= 0; ax--) {
        int ia = a % e->n[ax], ib = b % e->n[ax];
        d += ia > ib ? ia - ib : ib - ia;
        a /= e->n[ax];
        b /= e->n[ax];
    }
    return d;
}

/* Fills unknown values along one line of the grid (start, stride, count)
 * by linear interpolation in grid coordinates between the nearest known
 * ones, held constant beyond the ends. known[] is updated. */
static void fill_line(double *v, uint8_t *known, const double *u, int start, int stride,
                      int count)
{
    int prev = -1;
    for (int i = 0; i < count; i++) {
        int idx = start + i * stride;
        if (!known[idx])
            continue;
        for (int j = prev + 1; j < i; j++) {
            int jdx = start + j * stride;
            if (prev < 0) {
                v[jdx] = v[idx];
            } else {
                int pdx = start + prev * stride;
                double w = (u[j] - u[prev]) / (u[i] - u[prev]);
                v[jdx] = v[pdx] + w * (v[idx] - v[pdx]);
            }
            known[jdx] = 1;
        }
        prev = i;
    }
    if (prev >= 0)
        for (int j = prev + 1; j < count; j++) {
            v[start + j * stride] = v[start + prev * stride];
            known[start + j * stride] = 1;
        }
}

/* Power at every point from the measured ones: along the last axis first,
 * then the first. */
static void fill_power(tab_entry *e)
{
    uint8_t *known = sim_xmalloc((size_t)e->n_points);
    memcpy(known, e->have_pw, (size_t)e->n_points);
    int any = 0;
    for (int i = 0; i < e->n_points; i++)
        any |= known[i];
    if (!any) {
        for (int i = 0; i < e->n_points; i++)
            e->pw[i] = NAN;
        free(known);
        return;
    }
    for (int r = 0; r < e->n[0]; r++)
        fill_line(e->pw, known, e->u[1], r * e->n[1], 1, e->n[1]);
    for (int c = 0; c < e->n[1]; c++)
        fill_line(e->pw, known, e->u[0], c, e->n[1], e->n[0]);
    free(known);
}

static int load_entry(loader *L, ctab *t, const ctab_family_info *fi, const cJSON *jo,
                      const char *path, tab_entry *e)
{
    static const char *const keys[] = {"params", "used_by", "axes", "flops", "bytes",
                                       "latency_ns", "power_w", "energy_j", "throttled",
                                       NULL};
    char p[256];
    if (!cJSON_IsObject(jo))
        return lfail(L, path, "expected an object");
    if (check_keys(L, jo, path, keys))
        return -1;
    cJSON *params, *axes, *lat;
    if (need_obj(L, jo, path, "params", &params, p))
        return -1;
    int count = 0;
    for (cJSON *c = params->child; c; c = c->next)
        count++;
    /* fi->param is not NULL-terminated when a family uses every slot. */
    const char *param_keys[CTAB_MAX_PARAMS + 1] = {NULL};
    for (int j = 0; j < fi->n_params; j++)
        param_keys[j] = fi->param[j];
    if (count != fi->n_params || check_keys(L, params, p, param_keys)) {
        if (count != fi->n_params)
            return lfail(L, p, "expected exactly the params of %s (%d), got %d", fi->name,
                         fi->n_params, count);
        return -1;
    }
    for (int j = 0; j < fi->n_params; j++) {
        cJSON *v = child(params, fi->param[j]);
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e15 ||
            v->valuedouble != floor(v->valuedouble)) {
            char got[64];
            describe(v, got, sizeof got);
            return lfail(L, p, "%s: expected an integer >= 0, got %s", fi->param[j], got);
        }
        e->p[j] = (int64_t)v->valuedouble;
    }
    if (need_obj(L, jo, path, "axes", &axes, p))
        return -1;
    /* fi->axis is not NULL-terminated when a family uses every axis. */
    const char *axis_keys[CTAB_MAX_AXES + 1] = {NULL};
    for (int a = 0; a < fi->n_axes; a++)
        axis_keys[a] = fi->axis[a];
    if (check_keys(L, axes, p, axis_keys))
        return -1;
    e->n_points = 1;
    for (int a = 0; a < CTAB_MAX_AXES; a++) {
        e->n[a] = 1;
        if (a >= fi->n_axes) {
            e->u[a] = sim_xcalloc(1, sizeof(double));
            continue;
        }
        char ap[300];
        path_fmt(ap, sizeof ap, "%s.%s", p, fi->axis[a]);
        cJSON *arr = child(axes, fi->axis[a]);
        int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
        if (n < 1 || n > AXIS_MAX)
            return lfail(L, ap, "expected an array of 1 to %d grid values", AXIS_MAX);
        e->n[a] = n;
        e->u[a] = sim_xcalloc((size_t)n, sizeof(double));
        double *x = sim_xcalloc((size_t)n, sizeof *x);
        int rc = read_array(L, axes, p, fi->axis[a], n, 0, 0,
                            fi->scale[a] == CTAB_SCALE_LOG, x);
        for (int i = 0; rc == 0 && i < n; i++) {
            if (i && !(x[i] > x[i - 1]))
                rc = lfail(L, ap, "[%d]: grid values must be strictly increasing "
                           "(%.15g after %.15g)", i, x[i], x[i - 1]);
            e->u[a][i] = to_u(fi->scale[a], x[i]);
        }
        free(x);
        if (rc)
            return -1;
        e->n_points *= n;
    }
    size_t np = (size_t)e->n_points;
    e->t = sim_xcalloc(np, sizeof(double));
    e->lt = sim_xcalloc(np, sizeof(double));
    e->fr = sim_xcalloc(np, sizeof(double));
    e->lfr = sim_xcalloc(np, sizeof(double));
    e->pw = sim_xcalloc(np, sizeof(double));
    e->flops = sim_xcalloc(np, sizeof(double));
    e->bytes = sim_xcalloc(np, sizeof(double));
    e->have = sim_xcalloc(np, 1);
    e->have_pw = sim_xcalloc(np, 1);
    e->subst = sim_xcalloc(np, sizeof(int));
    double *tmp = sim_xcalloc(np, sizeof(double));
    int rc = -1;
    if (read_array(L, jo, path, "flops", e->n_points, 0, 0, 0, e->flops) ||
        read_array(L, jo, path, "bytes", e->n_points, 0, 0, 0, e->bytes) ||
        need_obj(L, jo, path, "latency_ns", &lat, p) ||
        read_array(L, lat, p, "median", e->n_points, 1, 0, 1, e->t))
        goto done;
    static const char *const lat_keys[] = {"median", "p10", "p90", NULL};
    if (check_keys(L, lat, p, lat_keys))
        goto done;
    for (int q = 0; q < 2; q++) {
        const char *key = q ? "p90" : "p10";
        if (!child(lat, key))
            continue;
        if (read_array(L, lat, p, key, e->n_points, 1, 0, 1, tmp))
            goto done;
        for (int i = 0; i < e->n_points; i++)
            if (isfinite(tmp[i]) && isfinite(e->t[i]) &&
                (q ? tmp[i] < e->t[i] * (1 - 1e-9) : tmp[i] > e->t[i] * (1 + 1e-9))) {
                lfail(L, p, "%s[%d]: %.9g is on the wrong side of the median %.9g", key, i,
                      tmp[i], e->t[i]);
                goto done;
            }
    }
    if (child(jo, "power_w") &&
        read_array(L, jo, path, "power_w", e->n_points, 1, 0, 1, e->pw))
        goto done;
    if (child(jo, "energy_j") &&
        read_array(L, jo, path, "energy_j", e->n_points, 1, 0, 0, tmp))
        goto done;
    if (child(jo, "throttled") &&
        read_array(L, jo, path, "throttled", e->n_points, 1, 0, 0, tmp))
        goto done;
    int measured = 0;
    for (int i = 0; i < e->n_points; i++) {
        e->have[i] = isfinite(e->t[i]);
        e->have_pw[i] = child(jo, "power_w") && isfinite(e->pw[i]);
        measured += e->have[i];
        if (e->have_pw[i] && !e->have[i]) {
            lfail(L, path, "power_w[%d]: power without a latency", i);
            goto done;
        }
        if (e->have[i]) {
            e->lt[i] = log(e->t[i]);
            e->fr[i] = rstar_ns(t, e->flops[i], e->bytes[i]) / e->t[i];
            e->lfr[i] = log(e->fr[i]);
        } else {
            e->lt[i] = e->fr[i] = e->lfr[i] = NAN;
        }
    }
    if (!measured) {
        lfail(L, path, "no measured point (every median is null)");
        goto done;
    }
    for (int i = 0; i < e->n_points; i++) {
        int best = -1, best_d = 1 << 30;
        for (int j = 0; j < e->n_points; j++)
            if (e->have[j] && grid_dist(e, i, j) < best_d) {
                best = j;
                best_d = grid_dist(e, i, j);
            }
        e->subst[i] = best;
    }
    fill_power(e);
    rc = 0;
done:
    free(tmp);
    return rc;
}

static int load_family(loader *L, ctab *t, const cJSON *jf, const char *name,
                       const char *path)
{
    int f = ctab_family_find(name);
    if (f < 0) {
        char list[512] = "";
        size_t used = 0;
        for (int i = 0; i < CTAB_FAMILY_COUNT && used < sizeof list; i++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                     ctab_family_get((ctab_family)i)->name);
        return lfail(L, path, "unknown operator family; expected one of: %s", list);
    }
    const ctab_family_info *fi = ctab_family_get((ctab_family)f);
    static const char *const keys[] = {"params", "axes", "entries", NULL};
    if (!cJSON_IsObject(jf))
        return lfail(L, path, "expected an object");
    if (check_keys(L, jf, path, keys))
        return -1;
    char p[256];
    /* The declared layout must be this build's. */
    cJSON *params = child(jf, "params"), *axes = child(jf, "axes");
    int ok = cJSON_IsArray(params) && cJSON_GetArraySize(params) == fi->n_params;
    for (int j = 0; ok && j < fi->n_params; j++) {
        cJSON *v = cJSON_GetArrayItem(params, j);
        ok = cJSON_IsString(v) && strcmp(v->valuestring, fi->param[j]) == 0;
    }
    if (!ok)
        return lfail(L, path, "params: expected the params of %s in this build's order",
                     fi->name);
    ok = cJSON_IsArray(axes) && cJSON_GetArraySize(axes) == fi->n_axes;
    for (int a = 0; ok && a < fi->n_axes; a++) {
        cJSON *v = cJSON_GetArrayItem(axes, a);
        cJSON *nm = child(v, "name"), *sc = child(v, "scale");
        const char *want = fi->scale[a] == CTAB_SCALE_LOG ? "log" : "linear";
        ok = cJSON_IsString(nm) && strcmp(nm->valuestring, fi->axis[a]) == 0 &&
             cJSON_IsString(sc) && strcmp(sc->valuestring, want) == 0;
    }
    if (!ok)
        return lfail(L, path, "axes: expected the axes of %s (names and scales) of this "
                     "build", fi->name);
    cJSON *entries = child(jf, "entries");
    path_fmt(p, sizeof p, "%s.entries", path);
    if (!cJSON_IsArray(entries))
        return lfail(L, p, "expected an array");
    tab_family *tf = &t->fam[f];
    int n = cJSON_GetArraySize(entries);
    tf->e = sim_xcalloc((size_t)(n ? n : 1), sizeof *tf->e);
    int i = 0;
    for (cJSON *je = entries->child; je; je = je->next, i++) {
        char ep[256];
        path_fmt(ep, sizeof ep, "%s[%d]", p, i);
        tab_entry *e = &tf->e[tf->n++];
        if (load_entry(L, t, fi, je, ep, e))
            return -1;
        for (int k = 0; k < i; k++) {
            if (memcmp(tf->e[k].p, e->p, sizeof e->p) == 0)
                return lfail(L, ep, "params: the same as entries[%d]", k);
        }
    }
    return 0;
}

static int load_root(loader *L, ctab *t, const cJSON *root, const char *expect_gpu)
{
    static const char *const keys[] = {"schema", "schema_version", "gpu", "software", "run",
                                       "state_before", "state_after", "ceilings", "energy",
                                       "page_tokens", "provenance", "families", NULL};
    char p[256];
    if (!cJSON_IsObject(root))
        return lfail(L, "$", "expected an object");
    cJSON *schema = child(root, "schema"), *ver = child(root, "schema_version");
    if (!cJSON_IsString(schema) || strcmp(schema->valuestring, SCHEMA_NAME)) {
        char got[64];
        describe(schema, got, sizeof got);
        return lfail(L, "$.schema", "expected \"%s\", got %s", SCHEMA_NAME, got);
    }
    if (!cJSON_IsNumber(ver) || ver->valuedouble != SCHEMA_VERSION) {
        char got[64];
        describe(ver, got, sizeof got);
        return lfail(L, "$.schema_version", "expected %d (the version this build reads), "
                     "got %s", SCHEMA_VERSION, got);
    }
    if (check_keys(L, root, "$", keys))
        return -1;
    /* Imported tables say where their numbers come from. */
    cJSON *prov = child(root, "provenance");
    if (prov) {
        cJSON *src = child(prov, "source");
        if (!cJSON_IsObject(prov) || !cJSON_IsString(src) || !*src->valuestring)
            return lfail(L, "$.provenance.source", "expected a non-empty string saying "
                         "where the measurements come from");
        snprintf(t->source, sizeof t->source, "%s", src->valuestring);
    }
    cJSON *gpu, *ceil, *energy, *families;
    if (need_obj(L, root, "$", "gpu", &gpu, p))
        return -1;
    cJSON *name = child(gpu, "name");
    if (!cJSON_IsString(name) || !*name->valuestring ||
        strlen(name->valuestring) >= sizeof t->gpu)
        return lfail(L, "$.gpu.name", "expected the servesim GPU name (a file in "
                     "models/gpu/)");
    snprintf(t->gpu, sizeof t->gpu, "%s", name->valuestring);
    if (expect_gpu && strcmp(expect_gpu, t->gpu))
        return lfail(L, "$.gpu.name", "the table was measured on '%s', but the run's GPU "
                     "is '%s'", t->gpu, expect_gpu);
    if (need_obj(L, root, "$", "ceilings", &ceil, p) ||
        need_num(L, ceil, p, "gemm_flops_per_s", 0, &t->ceil_flops) ||
        need_num(L, ceil, p, "d2d_bytes_per_s", 0, &t->ceil_bw) ||
        need_obj(L, root, "$", "energy", &energy, p))
        return -1;
    cJSON *method = child(energy, "method"), *idle = child(energy, "idle_w");
    static const char *const methods[] = {"total_energy_counter", "instant_power",
                                          "average_power", "none", "roofline", NULL};
    int known = 0;
    for (int i = 0; cJSON_IsString(method) && methods[i]; i++)
        known |= strcmp(method->valuestring, methods[i]) == 0;
    if (!known)
        return lfail(L, "$.energy.method", "expected one of total_energy_counter, "
                     "instant_power, average_power, none, roofline");
    t->idle_w = NAN;
    if (cJSON_IsNumber(idle)) {
        if (!(idle->valuedouble > 0))
            return lfail(L, "$.energy.idle_w", "expected a number > 0 or null, got %.15g",
                         idle->valuedouble);
        t->idle_w = idle->valuedouble;
    } else if (idle && !cJSON_IsNull(idle)) {
        return lfail(L, "$.energy.idle_w", "expected a number > 0 or null");
    }
    if (need_obj(L, root, "$", "families", &families, p))
        return -1;
    for (cJSON *jf = families->child; jf; jf = jf->next) {
        char fp[256];
        path_fmt(fp, sizeof fp, "$.families.%s", jf->string);
        if (load_family(L, t, jf, jf->string, fp))
            return -1;
    }
    return 0;
}

ctab *ctab_load(const char *path, const char *expect_gpu, sim_err *err)
{
    cJSON *root;
    if (jcfg_load_file(path, &root, err) < 0)
        return NULL;
    ctab *t = sim_xcalloc(1, sizeof *t);
    snprintf(t->path, sizeof t->path, "%s", path);
    loader L = {.file = path, .err = err};
    int rc = load_root(&L, t, root, expect_gpu);
    cJSON_Delete(root);
    if (rc) {
        ctab_destroy(t);
        return NULL;
    }
    return t;
}

void ctab_destroy(ctab *t)
{
    if (!t)
        return;
    for (int f = 0; f < CTAB_FAMILY_COUNT; f++) {
        for (int i = 0; i < t->fam[f].n; i++)
            entry_free(&t->fam[f].e[i]);
        free(t->fam[f].e);
    }
    free(t);
}

const char *ctab_gpu_name(const ctab *t)
{
    return t->gpu;
}

const char *ctab_path(const ctab *t)
{
    return t->path;
}

const char *ctab_source(const ctab *t)
{
    return t->source;
}

double ctab_idle_w(const ctab *t)
{
    return t->idle_w;
}

int ctab_n_entries(const ctab *t, ctab_family f)
{
    SIM_ASSERT(f >= 0 && f < CTAB_FAMILY_COUNT);
    return t->fam[f].n;
}

/* ---- lookup ----------------------------------------------------------------- */

/* The cell of the grid holding x: corners i0/i1 and weights per axis;
 * coordinates outside are clamped to the edge and `inside` cleared. */
typedef struct cell {
    int i0[CTAB_MAX_AXES], i1[CTAB_MAX_AXES];
    double w[CTAB_MAX_AXES];
    int inside;
} cell;

static void locate(const tab_entry *e, const ctab_family_info *fi, const double *x,
                   cell *c)
{
    c->inside = 1;
    for (int a = 0; a < CTAB_MAX_AXES; a++) {
        c->i0[a] = c->i1[a] = 0;
        c->w[a] = 0;
        if (a >= fi->n_axes)
            continue;
        const double *g = e->u[a];
        int n = e->n[a];
        double u = to_u(fi->scale[a], x[a]);
        double eps = fi->scale[a] == CTAB_SCALE_LOG ? EPS_LOG : EPS_LIN;
        if (n == 1) {
            c->inside &= fabs(u - g[0]) <= eps;
        } else if (u <= g[0]) {
            c->i1[a] = 1;
            c->inside &= u >= g[0] - eps;
        } else if (u >= g[n - 1]) {
            c->i0[a] = n - 2;
            c->i1[a] = n - 1;
            c->w[a] = 1;
            c->inside &= u <= g[n - 1] + eps;
        } else {
            int lo = 0, hi = n - 1;
            while (hi - lo > 1) {
                int mid = (lo + hi) / 2;
                if (g[mid] <= u)
                    lo = mid;
                else
                    hi = mid;
            }
            c->i0[a] = lo;
            c->i1[a] = hi;
            c->w[a] = (u - g[lo]) / (g[hi] - g[lo]);
        }
    }
}

/* Flat index of a corner: bit a of `corner` picks i1 on axis a. */
static int corner_idx(const tab_entry *e, const cell *c, int corner)
{
    int i = (corner & 1) ? c->i1[0] : c->i0[0];
    int j = (corner & 2) ? c->i1[1] : c->i0[1];
    return i * e->n[1] + j;
}

/* Every corner with a nonzero weight is measured. */
static int cell_complete(const tab_entry *e, const cell *c)
{
    for (int corner = 0; corner < 4; corner++) {
        if (((corner & 1) && c->w[0] <= 0) || ((corner & 2) && c->w[1] <= 0))
            continue;
        if (!e->have[corner_idx(e, c, corner)])
            return 0;
    }
    return 1;
}

/* Multilinear interpolation of v (lv: its logs) over the cell, along the
 * last axis first; map[] replaces missing corners (NULL: none missing).
 * Along log axes values are interpolated in log space, along linear axes
 * as they are; with linear = 1 every axis is linear (power). */
static double interp(const tab_entry *e, const ctab_family_info *fi, const cell *c,
                     const double *v, const double *lv, const int *map, int linear)
{
    int idx[4];
    for (int k = 0; k < 4; k++) {
        idx[k] = corner_idx(e, c, k);
        if (map)
            idx[k] = map[idx[k]];
    }
    ctab_scale s0 = linear ? CTAB_SCALE_LIN : fi->scale[0];
    ctab_scale s1 = fi->n_axes > 1 && !linear ? fi->scale[1] : CTAB_SCALE_LIN;
    if (s0 == CTAB_SCALE_LOG && (fi->n_axes == 1 || s1 == CTAB_SCALE_LOG)) {
        /* all axes log: one exponential of a multilinear blend of logs */
        double w0 = c->w[0], w1 = c->w[1];
        double a = lv[idx[0]] + (w1 > 0 ? w1 * (lv[idx[2]] - lv[idx[0]]) : 0);
        double b = w0 > 0 ? lv[idx[1]] + (w1 > 0 ? w1 * (lv[idx[3]] - lv[idx[1]]) : 0) : a;
        return exp(a + w0 * (b - a));
    }
    double a = mix(v[idx[0]], v[idx[2]], c->w[1], s1);
    double b = c->w[0] > 0 ? mix(v[idx[1]], v[idx[3]], c->w[1], s1) : a;
    return mix(a, b, c->w[0], s0);
}

/* Distance between params for the nearest-entry fallback: log ratios of
 * sizes; the MoE routing skew linearly (|a - b| in units of skew, so the
 * nearest measured skew wins, 0 included); a different value of a small
 * categorical param costs 100. */
static double param_dist(ctab_family fam, const ctab_family_info *fi, const int64_t *a,
                         const int64_t *b)
{
    double d = 0;
    for (int j = 0; j < fi->n_params; j++) {
        if (a[j] == b[j])
            continue;
        if (fam == CTAB_MOE_EXPERTS && j == CTAB_SKEW_PARAM)
            d += fabs((double)(a[j] - b[j])) / 1000.0;
        else if (a[j] <= 0 || b[j] <= 0 || (a[j] < 4 && b[j] < 4))
            d += 100;
        else
            d += fabs(log((double)a[j] / (double)b[j]));
    }
    return d;
}

/* The entry of the key's family with its params (exact), else the nearest. */
static void find_entry(const ctab *t, const ctab_key *key, ctab_hint *h)
{
    const tab_family *tf = &t->fam[key->family];
    const ctab_family_info *fi = ctab_family_get(key->family);
    h->valid = 1;
    h->key = *key;
    h->idx = -1;
    h->exact = 0;
    double best = INFINITY;
    for (int i = 0; i < tf->n; i++) {
        double d = param_dist(key->family, fi, tf->e[i].p, key->p);
        if (d < best) {
            best = d;
            h->idx = i;
            h->exact = d == 0;
        }
    }
}

static void roofline_price(const gpu_spec *g, const op_desc *op, ctab_price *out)
{
    out->ns = roofline_op_ns(g, op);
    out->power_w = roofline_op_power_w(g, op, out->ns);
    out->source = COST_SRC_ROOFLINE;
}

/* Tables are measured with 16-bit weights and activations (calib/ uses bf16,
 * Vidur fp16): a linear layer in another precision is not in them. The LM
 * head and the router stay 16-bit in every precision. */
static int precision_measured(const llm_model *m, const op_desc *op, ctab_family f)
{
    bool linear = f == CTAB_MOE_EXPERTS ||
                  (f == CTAB_GEMM && op->kind != OP_GEMM_LM_HEAD);
    if (!linear)
        return 1;
    llm_dtype w = m->prec.weights, a = m->prec.activations;
    return (w == LLM_BF16 || w == LLM_FP16) && (a == LLM_BF16 || a == LLM_FP16);
}

int ctab_key_for(const ctab *t, const llm_model *m, int tp, const op_desc *op,
                 ctab_key *key)
{
    int rc = op_kind_class(op->kind) == OP_CLASS_COLLECTIVE
                 ? ctab_key_of_collective(tp, op, key)
                 : ctab_key_of_op(m, tp, op, key);
    if (rc < 0 || t->fam[key->family].n == 0 || !precision_measured(m, op, key->family))
        return -1;
    return 0;
}

void ctab_price_op(const ctab *t, const llm_model *m, int tp, const gpu_spec *g,
                   const op_desc *op, ctab_hint *hint, ctab_price *out)
{
    ctab_key key;
    if (!t || ctab_key_for(t, m, tp, op, &key) < 0) {
        roofline_price(g, op, out);
        return;
    }
    ctab_hint local = {0};
    if (!hint)
        hint = &local;
    if (!hint->valid || !ctab_key_same_entry(&hint->key, &key))
        find_entry(t, &key, hint);
    const tab_entry *e = &t->fam[key.family].e[hint->idx];
    const ctab_family_info *fi = ctab_family_get(key.family);
    /* A message smaller than any measured costs the smallest one's time:
     * collectives are latency-bound there. */
    double x0 = exp(e->u[0][0]);
    if (key.family == CTAB_ALLREDUCE && key.x[0] < x0)
        key.x[0] = x0;
    cell c;
    locate(e, fi, key.x, &c);
    int in_table = hint->exact && c.inside && cell_complete(e, &c);
    int single = key.family != CTAB_ATTN_PREFILL || key.x[2] == 1;
    if (in_table && single) {
        out->ns = interp(e, fi, &c, e->t, e->lt, NULL, 0);
    } else {
        const int *map = cell_complete(e, &c) ? NULL : e->subst;
        double frac = interp(e, fi, &c, e->fr, e->lfr, map, 0);
        double work = rstar_ns(t, op->flops, op->bytes);
        if (key.family == CTAB_ALLREDUCE)   /* the table's own point, scaled by bytes */
            work = rstar_ns(t, 0, op->bytes);
        out->ns = work / frac;
    }
    out->source = in_table ? COST_SRC_TABLE : COST_SRC_ROOFLINE;
    out->power_w = isfinite(e->pw[0]) ? interp(e, fi, &c, e->pw, NULL, NULL, 1)
                                      : roofline_op_power_w(g, op, out->ns);
}

/* ---- leave-one-out ------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void stats_of(double *err, int n, ctab_loo_stats *out)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    if (!n)
        return;
    double *abs_err = sim_xmalloc((size_t)n * sizeof *abs_err);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        abs_err[i] = fabs(err[i]);
        sum += err[i];
    }
    qsort(abs_err, (size_t)n, sizeof *abs_err, cmp_double);
    out->median_abs = n % 2 ? abs_err[n / 2] : 0.5 * (abs_err[n / 2 - 1] + abs_err[n / 2]);
    out->p90_abs = abs_err[(int)ceil(0.9 * n) - 1];
    out->max_abs = abs_err[n - 1];
    out->mean = sum / n;
    free(abs_err);
}

/* Index along axis a of flat point i, and the stride of that axis. */
static int axis_pos(const tab_entry *e, int i, int a, int *stride)
{
    *stride = a == 0 ? e->n[1] : 1;
    return a == 0 ? i / e->n[1] : i % e->n[1];
}

void ctab_loo(const ctab *t, ctab_family f, ctab_loo_stats *latency,
              ctab_loo_stats *power)
{
    const tab_family *tf = &t->fam[f];
    const ctab_family_info *fi = ctab_family_get(f);
    size_t cap = 0, cap_pw = 0;
    int n = 0, n_pw = 0;
    double *err = NULL, *err_pw = NULL;
    for (int k = 0; k < tf->n; k++) {
        const tab_entry *e = &tf->e[k];
        for (int i = 0; i < e->n_points; i++) {
            for (int a = 0; a < fi->n_axes; a++) {
                int stride, pos = axis_pos(e, i, a, &stride);
                if (e->have[i] && pos > 0 && pos < e->n[a] - 1 && e->have[i - stride] &&
                    e->have[i + stride]) {
                    const double *u = e->u[a];
                    double w = (u[pos] - u[pos - 1]) / (u[pos + 1] - u[pos - 1]);
                    double pred = mix(e->t[i - stride], e->t[i + stride], w, fi->scale[a]);
                    sim_grow((void **)&err, &cap, (size_t)n + 1, sizeof *err);
                    err[n++] = pred / e->t[i] - 1;
                }
                if (!e->have_pw[i])
                    continue;
                /* power: from the nearest measured power on each side */
                int lo = pos - 1, hi = pos + 1;
                while (lo >= 0 && !e->have_pw[i - (pos - lo) * stride])
                    lo--;
                while (hi < e->n[a] && !e->have_pw[i + (hi - pos) * stride])
                    hi++;
                if (lo < 0 || hi >= e->n[a])
                    continue;
                const double *u = e->u[a];
                double w = (u[pos] - u[lo]) / (u[hi] - u[lo]);
                double a_pw = e->pw[i - (pos - lo) * stride];
                double b_pw = e->pw[i + (hi - pos) * stride];
                sim_grow((void **)&err_pw, &cap_pw, (size_t)n_pw + 1, sizeof *err_pw);
                err_pw[n_pw++] = (a_pw + w * (b_pw - a_pw)) / e->pw[i] - 1;
            }
        }
    }
    stats_of(err, n, latency);
    stats_of(err_pw, n_pw, power);
    free(err);
    free(err_pw);
}

/* ---- the cost model ---------------------------------------------------------------- */

/* A remembered price: an op is priced from its kind, its shape keys and
 * its FLOPs and bytes alone, so equal ones have equal prices. Most
 * iterations repeat the shapes of earlier ones (a decode batch's GEMMs and
 * norms depend only on its size), so a small direct-mapped memo answers most
 * ops without interpolating. */
#define PRICE_MEMO 16384   /* 512 groups of 32 slots, 2 MB */
typedef struct price_memo {
    op_desc op;         /* repeat 0; kind OP_KIND_COUNT: empty */
    ctab_price price;
} price_memo;

typedef struct table_state {
    ctab *t;            /* NULL: no table for the GPU, every term on the roofline */
    int32_t *refs;      /* states sharing t (table_share), t freed by the last */
    int32_t *memo_refs; /* and those sharing memo (same prices) */
    double idle_w;
    ctab_hint hint[OP_KIND_COUNT];
    price_memo *memo;
} table_state;

/* A cheap slot: within one pool an op's shape follows from its kind and
 * token count (m) for every op but attention (whose k, the context, varies);
 * same_op decides. The slot is m's group of 32 with the kind inside it, so
 * one iteration's ops (mostly one m) sit in a few adjacent cache lines:
 * hashing kind and k as well scattered them over the whole memo, and the
 * cache misses made this lookup the simulator's hottest line (17% of a
 * speculative run's time, whose drafter has a memo of its own). An
 * attention op shares its group's slot with the same-kind ops of other
 * contexts, which rarely repeat anyway. */
static size_t memo_slot(const op_desc *op)
{
    uint64_t h = (uint64_t)op->m * 0x85ebca6bu;
    return (size_t)((((h ^ (h >> 15)) << 5) | (uint64_t)op->kind) & (PRICE_MEMO - 1));
}
_Static_assert(OP_KIND_COUNT <= 32, "memo_slot keeps the kind in 5 bits");

/* Every field a price is made from (all but repeat: a price is per run). */
static bool same_op(const op_desc *a, const op_desc *b)
{
    return a->kind == b->kind && a->m == b->m && a->n == b->n && a->k == b->k &&
           a->flops == b->flops && a->bytes == b->bytes &&
           a->weight_bytes == b->weight_bytes && a->kv_bytes == b->kv_bytes &&
           a->dtype == b->dtype && a->ranks == b->ranks && a->groups == b->groups &&
           a->link_bytes_per_s == b->link_bytes_per_s;
}

/* ctab_price_op through the memo: the same answer, bit for bit. */
static void price_op(table_state *st, const cost_setup *setup, const op_desc *op,
                     price_memo *e, ctab_price *out)
{
    if (same_op(&e->op, op)) {
        *out = e->price;
        return;
    }
    ctab_price_op(st->t, setup->model, setup->par.tp, setup->gpu, op, &st->hint[op->kind],
                  out);
    e->op = *op;
    e->op.repeat = 0;
    e->price = *out;
}

/* A memo of empty slots. Its lookups land anywhere in its 2 MB, so on 4 KiB
 * pages most of them also missed the TLB: it asks for a huge page (Linux's
 * transparent huge pages in madvise mode; elsewhere plain pages). */
#define MEMO_ALIGN ((size_t)2 << 20)
static price_memo *memo_create(void)
{
    size_t size = (PRICE_MEMO * sizeof(price_memo) + MEMO_ALIGN - 1) / MEMO_ALIGN * MEMO_ALIGN;
    void *p = NULL;
    if (posix_memalign(&p, MEMO_ALIGN, size))
        SIM_ASSERT(!"out of memory for the price memo");
#ifdef MADV_HUGEPAGE
    madvise(p, size, MADV_HUGEPAGE);   /* a hint: failure leaves small pages */
#endif
    price_memo *m = p;
    for (int i = 0; i < PRICE_MEMO; i++)
        m[i].op.kind = OP_KIND_COUNT;   /* matches no op */
    return m;
}

int ctab_default_path(const char *gpu, char *out, size_t n)
{
    const char *where[] = {"%s/%s.json", "%s/vidur/%s.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(out, n, where[i], ctab_default_dir(), gpu);
        FILE *f = fopen(out, "rb");
        if (f) {
            fclose(f);
            return 0;
        }
    }
    snprintf(out, n, where[0], ctab_default_dir(), gpu);
    return -1;
}

static int table_init(const cost_setup *setup, const cJSON *params, const char *path,
                      void **state, sim_err *err)
{
    static const char *const keys[] = {"table", COST_ENERGY_SCOPE_KEY, NULL};
    *state = NULL;
    char def[4096];
    int have_default = ctab_default_path(setup->gpu->name, def, sizeof def) == 0;
    const cJSON *named = params ? cJSON_GetObjectItemCaseSensitive(params, "table") : NULL;
    const char *file = def;
    if (params && jcfg_check_keys(params, path, keys, err) < 0)
        return -1;
    if (named) {
        if (jcfg_str((cJSON *)params, path, "table", NULL, &file, err) < 0)
            return -1;
        FILE *f = fopen(file, "rb");
        if (!f)
            return sim_errf(err, "%s.table: no measured cost table %s for GPU '%s' "
                            "(measure one with calib/, see calib/README.md, or name one "
                            "here)", path, file, setup->gpu->name);
        fclose(f);
    }
    table_state *st = sim_xcalloc(1, sizeof *st);
    st->memo = memo_create();
    st->idle_w = setup->gpu->idle_w;
    st->refs = sim_xmalloc(sizeof *st->refs);
    *st->refs = 1;
    st->memo_refs = sim_xmalloc(sizeof *st->memo_refs);
    *st->memo_refs = 1;
    if (named || have_default) {
        st->t = ctab_load(file, setup->gpu->name, err);
        if (!st->t) {
            free(st->refs);
            free(st->memo_refs);
            free(st->memo);
            free(st);
            return -1;
        }
        if (isfinite(st->t->idle_w))
            st->idle_w = st->t->idle_w;
    }
    *state = st;
    return 0;
}

static void table_iteration(void *state, const cost_setup *setup, const op_list *ops,
                            cost_result *out)
{
    table_state *st = state;
    memset(out, 0, sizeof *out);
    /* The memo's entries are mostly out of cache by the next iteration of
     * the same size: fetch them all at once rather than one miss at a time. */
    price_memo *slot[OPS_MAX];
    for (int i = 0; i < ops->n; i++) {
        slot[i] = &st->memo[memo_slot(&ops->op[i])];
        __builtin_prefetch(slot[i]);
        __builtin_prefetch((const char *)slot[i] + sizeof(price_memo) - 1);
    }
    double busy_ns = 0, busy_j = 0;
    for (int i = 0; i < ops->n; i++) {
        const op_desc *op = &ops->op[i];
        ctab_price pr;
        price_op(st, setup, op, slot[i], &pr);
        double all_ns = pr.ns * op->repeat;
        busy_ns += all_ns;
        busy_j += all_ns * 1e-9 * pr.power_w;
        out->term_ns[op->kind] += all_ns;
        /* A kind priced partly by the roofline says so. */
        if (out->term_source[op->kind] != COST_SRC_ROOFLINE)
            out->term_source[op->kind] = (uint8_t)pr.source;
        out->weight_bytes += op->weight_bytes * op->repeat;
        out->kv_bytes += op->kv_bytes * op->repeat;
    }
    sim_time_ns overhead = setup->iteration_overhead_ns;
    out->latency_ns = (sim_time_ns)llround(busy_ns) + overhead;
    out->energy_j = (busy_j + overhead * 1e-9 * st->idle_w) * setup->par.tp;
}

static double table_idle_power_w(void *state, const cost_setup *setup)
{
    const table_state *st = state;
    return st->idle_w * setup->par.tp;
}

static void table_destroy(void *state)
{
    table_state *st = state;
    if (!st)
        return;
    if (--*st->refs == 0) {
        ctab_destroy(st->t);
        free(st->refs);
    }
    if (--*st->memo_refs == 0) {
        free(st->memo);
        free(st->memo_refs);
    }
    free(st);
}

/* Another model on the same GPU: the same table (read-only once loaded),
 * its own search hints (a hint only speeds up finding an entry: prices
 * do not depend on it), and its own memo unless it prices alike. */
static void *table_share(void *state, bool same_prices)
{
    const table_state *like = state;
    table_state *st = sim_xcalloc(1, sizeof *st);
    st->t = like->t;
    st->refs = like->refs;
    ++*st->refs;
    st->idle_w = like->idle_w;
    if (same_prices) {
        st->memo = like->memo;
        st->memo_refs = like->memo_refs;
        ++*st->memo_refs;
    } else {
        st->memo = memo_create();
        st->memo_refs = sim_xmalloc(sizeof *st->memo_refs);
        *st->memo_refs = 1;
    }
    return st;
}

static void table_price_each(void *state, const cost_setup *setup, const op_list *ops,
                             cost_op_price *out)
{
    table_state *st = state;
    for (int i = 0; i < ops->n; i++) {
        ctab_price pr;
        ctab_price_op(st->t, setup->model, setup->par.tp, setup->gpu, &ops->op[i],
                      &st->hint[ops->op[i].kind], &pr);
        out[i] = (cost_op_price){.ns = pr.ns, .power_w = pr.power_w, .source = pr.source};
    }
}

static void table_describe(void *state, char *buf, size_t size)
{
    const table_state *st = state;
    if (!st->t)
        snprintf(buf, size, "table: none for this GPU, every term on the roofline");
    else
        snprintf(buf, size, "table %s%s%s", st->t->path, st->t->source[0] ? ": " : "",
                 st->t->source);
}

const cost_model_ops cost_table = {
    .name = "table",
    .init = table_init,
    .iteration = table_iteration,
    .idle_power_w = table_idle_power_w,
    .destroy = table_destroy,
    .price_each = table_price_each,
    .describe = table_describe,
    .share = table_share,
};
