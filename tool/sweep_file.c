/* The sweep's results file (see sweep_file.h).
 *
 * Design. The index row type is built at run time: fixed columns (point,
 * id, seed_index, status), one column per swept path (its type from the
 * path's values, experiment.h), then every column of /summary taken from
 * the results writer's own summary type (out_summary_types), so a field
 * added to run_summary appears in the index with no change here. Points'
 * data are copied with H5Ocopy, which moves compressed chunks as they are.
 *
 * The file is built into the partial file sweep.c holds (locked, see
 * outpath.h), which it then syncs and renames; a kill -9 leaves only the
 * partial file, which the next sweep takes over. Rows are written 4096 at a
 * time into a chunked table, so memory does not grow with the number of
 * points. */
#include "tool/sweep_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve/metrics.h"
#include "tool/output_h5.h"
#include "version.h"

#define SWF_SCHEMA_VERSION 1
#define SWF_BLOCK_ROWS 4096

static hid_t swf_open_ro(const char *path)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (access(path, R_OK) != 0)
        return H5I_INVALID_HID;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    H5Eclear2(H5E_DEFAULT);
    return f;
}

/* A scalar string attribute of loc, or NULL; the caller frees. */
static char *swf_read_str_attr(hid_t loc, const char *name)
{
    if (H5Aexists(loc, name) <= 0)
        return NULL;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = out_vlen_str_type();
    char *v = NULL, *copy = NULL;
    if (a >= 0 && t >= 0 && H5Aread(a, t, &v) >= 0 && v) {
        copy = sim_xstrdup(v);
        H5free_memory(v);
    }
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
    H5Eclear2(H5E_DEFAULT);
    return copy;
}

struct sweep_reader {
    hid_t f;
};

sweep_reader *sweep_reader_open(const char *path)
{
    hid_t f = swf_open_ro(path);
    if (f < 0)
        return NULL;
    sweep_reader *r = sim_xmalloc(sizeof *r);
    r->f = f;
    return r;
}

char *sweep_reader_config(sweep_reader *r, const char *group)
{
    char *config = NULL;
    if (H5Lexists(r->f, group, H5P_DEFAULT) > 0 || !strcmp(group, "/")) {
        hid_t g = H5Gopen2(r->f, group, H5P_DEFAULT);
        config = g >= 0 ? swf_read_str_attr(g, "config") : NULL;
        if (config && H5Lexists(g, "summary", H5P_DEFAULT) <= 0) {
            free(config);   /* a failed point: config and error only */
            config = NULL;
        }
        if (g >= 0)
            H5Gclose(g);
    }
    H5Eclear2(H5E_DEFAULT);
    return config;
}

void sweep_reader_close(sweep_reader *r)
{
    if (!r)
        return;
    H5Fclose(r->f);
    H5Eclear2(H5E_DEFAULT);
    free(r);
}

/* ---- index row type ---------------------------------------------------------- */

typedef struct swf_index {
    hid_t mem, file;
    size_t row_size;
    size_t *param_off;     /* in the memory row */
    size_t sum_off;        /* the run_summary in the memory row */
    hid_t sum_mem;         /* run_summary's type, for reading /summary */
} swf_index;

enum { SWF_ID_LEN = 16, SWF_REASON_LEN = 240 };

typedef struct swf_row_head {
    int64_t point;
    char id[SWF_ID_LEN];
    int32_t seed_index;
    int8_t status;
    char reason[SWF_REASON_LEN];   /* failed or infeasible: why, cut to fit */
} swf_row_head;

static size_t swf_align8(size_t x) { return (x + 7) & ~(size_t)7; }

static hid_t swf_str_type(size_t len)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, len ? len : 1);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    return t;
}

static hid_t swf_status_type(hid_t base)
{
    hid_t t = H5Tenum_create(base);
    static const char *const names[] = {"pending", "complete", "failed", "infeasible"};
    for (int8_t v = 0; v < 4; v++)
        H5Tenum_insert(t, names[v], &v);
    return t;
}

/* Inserts a member into both types: mem at *mo (aligned for native
 * numbers), file packed at *fo. Consumes mem_t and file_t. */
static int swf_insert(swf_index *x, const char *name, hid_t mem_t, hid_t file_t,
                      size_t *mo, size_t *fo, size_t *at)
{
    size_t ms = H5Tget_size(mem_t);
    if (H5Tget_class(mem_t) != H5T_STRING && H5Tget_class(mem_t) != H5T_ENUM)
        *mo = (*mo + ms - 1) / ms * ms;
    if (at)
        *at = *mo;
    int rc = H5Tinsert(x->mem, name, *mo, mem_t) < 0 || H5Tinsert(x->file, name, *fo, file_t) < 0
           ? -1 : 0;
    *mo += ms;
    *fo += H5Tget_size(file_t);
    H5Tclose(mem_t);
    H5Tclose(file_t);
    return rc;
}

static hid_t swf_copy(hid_t t) { return H5Tcopy(t); }

static int swf_index_types(const experiment *e, swf_index *x)
{
    memset(x, 0, sizeof *x);
    hid_t sum_file = H5I_INVALID_HID;
    if (out_summary_types(&x->sum_mem, &sum_file) < 0)
        return -1;
    /* Sizes first: the types are created at their final size. */
    size_t mo = 0, fo = 0;
    mo = swf_align8(sizeof(swf_row_head));
    fo = 8 + SWF_ID_LEN + 4 + 1 + SWF_REASON_LEN;
    for (int32_t p = 0; p < e->n_params; p++) {
        const exp_param *pa = &e->params[p];
        int number = pa->kind == EXP_INT || pa->kind == EXP_NUM;
        size_t s = pa->kind == EXP_BOOL ? 1 : number ? 8 : (pa->text_len ? pa->text_len : 1);
        if (number)   /* as swf_insert aligns them */
            mo = swf_align8(mo);
        mo += s;
        fo += s;
    }
    x->sum_off = swf_align8(mo);
    x->row_size = x->sum_off + sizeof(run_summary);
    size_t file_size = fo + H5Tget_size(sum_file);
    x->mem = H5Tcreate(H5T_COMPOUND, x->row_size);
    x->file = H5Tcreate(H5T_COMPOUND, file_size);
    x->param_off = sim_xcalloc((size_t)e->n_params + 1, sizeof *x->param_off);

    int rc = 0;
    mo = fo = 0;
    rc |= swf_insert(x, "point", swf_copy(H5T_NATIVE_INT64), swf_copy(H5T_STD_I64LE), &mo, &fo, NULL);
    rc |= swf_insert(x, "id", swf_str_type(SWF_ID_LEN), swf_str_type(SWF_ID_LEN), &mo, &fo, NULL);
    rc |= swf_insert(x, "seed_index", swf_copy(H5T_NATIVE_INT32), swf_copy(H5T_STD_I32LE), &mo,
                     &fo, NULL);
    rc |= swf_insert(x, "status", swf_status_type(H5T_NATIVE_INT8),
                     swf_status_type(H5T_STD_I8LE), &mo, &fo, NULL);
    SIM_ASSERT(mo == offsetof(swf_row_head, status) + 1);
    rc |= swf_insert(x, "reason", swf_str_type(SWF_REASON_LEN), swf_str_type(SWF_REASON_LEN),
                     &mo, &fo, NULL);
    SIM_ASSERT(mo == offsetof(swf_row_head, reason) + SWF_REASON_LEN);
    mo = swf_align8(sizeof(swf_row_head));
    for (int32_t p = 0; p < e->n_params && rc == 0; p++) {
        const exp_param *pa = &e->params[p];
        hid_t mt, ft;
        switch (pa->kind) {
        case EXP_INT: mt = swf_copy(H5T_NATIVE_INT64); ft = swf_copy(H5T_STD_I64LE); break;
        case EXP_NUM: mt = swf_copy(H5T_NATIVE_DOUBLE); ft = swf_copy(H5T_IEEE_F64LE); break;
        case EXP_BOOL: mt = swf_copy(H5T_NATIVE_INT8); ft = swf_copy(H5T_STD_I8LE); break;
        default: mt = swf_str_type(pa->text_len); ft = swf_str_type(pa->text_len); break;
        }
        if (swf_insert(x, pa->path, mt, ft, &mo, &fo, &x->param_off[p]) < 0)
            rc = -1;
    }
    SIM_ASSERT(rc || swf_align8(mo) == x->sum_off);
    int n = H5Tget_nmembers(x->sum_mem);
    for (int i = 0; i < n && rc == 0; i++) {
        char *name = H5Tget_member_name(x->sum_mem, (unsigned)i);
        hid_t mt = H5Tget_member_type(x->sum_mem, (unsigned)i);
        hid_t ft = H5Tget_member_type(sum_file, (unsigned)i);
        if (H5Tinsert(x->mem, name, x->sum_off + H5Tget_member_offset(x->sum_mem, (unsigned)i),
                      mt) < 0 ||
            H5Tinsert(x->file, name, fo + H5Tget_member_offset(sum_file, (unsigned)i), ft) < 0)
            rc = -1;
        H5Tclose(mt);
        H5Tclose(ft);
        H5free_memory(name);
    }
    H5Tclose(sum_file);
    return rc;
}

static void swf_index_fini(swf_index *x)
{
    if (x->mem > 0)
        H5Tclose(x->mem);
    if (x->file > 0)
        H5Tclose(x->file);
    if (x->sum_mem > 0)
        H5Tclose(x->sum_mem);
    free(x->param_off);
}

/* A summary with every floating-point column NaN (not measured). */
static void swf_nan_summary(hid_t sum_mem, run_summary *s)
{
    memset(s, 0, sizeof *s);
    int n = H5Tget_nmembers(sum_mem);
    for (int i = 0; i < n; i++) {
        hid_t mt = H5Tget_member_type(sum_mem, (unsigned)i);
        size_t off = H5Tget_member_offset(sum_mem, (unsigned)i), count = 1;
        hid_t base = mt;
        if (H5Tget_class(mt) == H5T_ARRAY) {
            base = H5Tget_super(mt);
            count = H5Tget_size(mt) / H5Tget_size(base);
        }
        if (H5Tget_class(base) == H5T_FLOAT)
            for (size_t k = 0; k < count; k++) {
                double nan = NAN;
                memcpy((char *)s + off + k * sizeof nan, &nan, sizeof nan);
            }
        if (base != mt)
            H5Tclose(base);
        H5Tclose(mt);
    }
}

static void swf_fill_params(const experiment *e, const swf_index *x, const exp_point *pt,
                            char *row)
{
    for (int32_t p = 0; p < e->n_params; p++) {
        const cJSON *v = pt->values[p];
        char *at = row + x->param_off[p];
        switch (e->params[p].kind) {
        case EXP_INT: {
            int64_t i = (int64_t)v->valuedouble;
            memcpy(at, &i, sizeof i);
            break;
        }
        case EXP_NUM: memcpy(at, &v->valuedouble, sizeof(double)); break;
        case EXP_BOOL: *(int8_t *)at = (int8_t)cJSON_IsTrue(v); break;
        case EXP_STR: memcpy(at, v->valuestring, strlen(v->valuestring)); break;
        case EXP_JSON: {
            char *t = exp_canonical_json(v);
            memcpy(at, t, strlen(t));
            free(t);
            break;
        }
        }
    }
}

/* ---- writing ------------------------------------------------------------------- */

typedef struct swf_writer {
    const char *out;
    hid_t f, points;
    hid_t src;               /* the source file open now, and its name */
    const char *src_name;
    char **sources;          /* distinct cost_sources of the points */
    int n_sources;
    sim_err *err;
} swf_writer;

static hid_t swf_source(swf_writer *w, const char *name)
{
    if (w->src >= 0 && w->src_name && !strcmp(w->src_name, name))
        return w->src;
    if (w->src >= 0)
        H5Fclose(w->src);
    w->src_name = name;
    w->src = swf_open_ro(name);
    return w->src;
}

static void swf_note_source(swf_writer *w, hid_t g)
{
    char *s = swf_read_str_attr(g, "cost_sources");
    if (!s)
        return;
    for (int i = 0; i < w->n_sources; i++)
        if (!strcmp(w->sources[i], s)) {
            free(s);
            return;
        }
    w->sources = sim_xrealloc(w->sources, (size_t)(w->n_sources + 1) * sizeof *w->sources);
    w->sources[w->n_sources++] = s;
}

/* Copies a complete point's group and reads its summary into s. */
static int swf_copy_point(swf_writer *w, const swf_index *x, const exp_point *pt,
                          const sweep_point_state *st, run_summary *s)
{
    hid_t src = swf_source(w, st->src_file);
    char what[600];
    snprintf(what, sizeof what, "cannot copy point %s from '%s'", pt->id_hex, st->src_file);
    if (src < 0)
        return sim_errf(w->err, "%s: %s: cannot open it", w->out, what);
    hid_t g = H5Gopen2(src, st->src_group, H5P_DEFAULT);
    hid_t ds = g >= 0 ? H5Dopen2(g, "summary", H5P_DEFAULT) : H5I_INVALID_HID;
    int rc = -1;
    if (ds >= 0 && H5Dread(ds, x->sum_mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, s) >= 0 &&
        H5Ocopy(src, st->src_group, w->points, pt->id_hex, H5P_DEFAULT, H5P_DEFAULT) >= 0)
        rc = 0;
    if (rc == 0)
        swf_note_source(w, g);
    else
        out_h5_err(w->err, w->out, what);
    if (ds >= 0)
        H5Dclose(ds);
    if (g >= 0)
        H5Gclose(g);
    return rc;
}

static int swf_failed_point(swf_writer *w, const exp_point *pt, const sweep_point_state *st)
{
    hid_t g = H5Gcreate2(w->points, pt->id_hex, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = g >= 0 && out_attr_str(g, "error", st->error) >= 0 &&
             out_attr_str(g, "config", pt->config_json) >= 0 ? 0 : -1;
    if (g >= 0 && H5Gclose(g) < 0)
        rc = -1;
    return rc ? out_h5_err(w->err, w->out, "cannot write a failed point's group") : 0;
}

static int swf_write_index(swf_writer *w, const experiment *e, const sweep_point_state *st)
{
    swf_index x;
    hid_t space = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, ds = H5I_INVALID_HID;
    hsize_t n = (hsize_t)e->n_points, chunk = n < SWF_BLOCK_ROWS ? (n ? n : 1) : SWF_BLOCK_ROWS;
    char *rows = NULL;
    int rc = -1;
    if (swf_index_types(e, &x) < 0 ||
        (space = H5Screate_simple(1, &n, NULL)) < 0 ||
        (dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 || H5Pset_chunk(dcpl, 1, &chunk) < 0 ||
        H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, 1) < 0 ||
        (ds = H5Dcreate2(w->f, "index", x.file, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0) {
        out_h5_err(w->err, w->out, "cannot create /index");
        goto done;
    }
    rows = sim_xmalloc(SWF_BLOCK_ROWS * x.row_size);
    run_summary nan_summary;   /* built once: it takes an HDF5 call per column */
    swf_nan_summary(x.sum_mem, &nan_summary);
    for (hsize_t start = 0; start < n; start += SWF_BLOCK_ROWS) {
        hsize_t count = n - start < SWF_BLOCK_ROWS ? n - start : SWF_BLOCK_ROWS;
        memset(rows, 0, count * x.row_size);
        for (hsize_t k = 0; k < count; k++) {
            const exp_point *pt = &e->points[start + k];
            const sweep_point_state *ps = &st[start + k];
            char *row = rows + k * x.row_size;
            swf_row_head head = {.point = pt->index, .seed_index = pt->seed_index,
                                 .status = (int8_t)ps->status};
            memcpy(head.id, pt->id_hex, SWF_ID_LEN);
            if (ps->error)
                memcpy(head.reason, ps->error, strnlen(ps->error, SWF_REASON_LEN));
            memcpy(row, &head, sizeof head);
            swf_fill_params(e, &x, pt, row);
            run_summary s = nan_summary;
            s.seed = pt->seed;
            if (ps->status == SWEEP_COMPLETE && swf_copy_point(w, &x, pt, ps, &s) < 0)
                goto done;
            if ((ps->status == SWEEP_FAILED || ps->status == SWEEP_INFEASIBLE) &&
                swf_failed_point(w, pt, ps) < 0)
                goto done;
            memcpy(row + x.sum_off, &s, sizeof s);
        }
        hid_t fspace = H5Dget_space(ds), mspace = H5Screate_simple(1, &count, NULL);
        herr_t wr = H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &count, NULL);
        if (wr >= 0)
            wr = H5Dwrite(ds, x.mem, mspace, fspace, H5P_DEFAULT, rows);
        H5Sclose(fspace);
        H5Sclose(mspace);
        if (wr < 0) {
            out_h5_err(w->err, w->out, "cannot write /index");
            goto done;
        }
    }
    const char **paths = sim_xcalloc((size_t)e->n_params + 1, sizeof *paths);
    for (int32_t p = 0; p < e->n_params; p++)
        paths[p] = e->params[p].path;
    hid_t str = out_vlen_str_type();
    herr_t ar = e->n_params ? out_attr(ds, "params", str, str, (hsize_t)e->n_params, paths) : 0;
    H5Tclose(str);
    free(paths);
    if (ar < 0) {
        out_h5_err(w->err, w->out, "cannot write /index attributes");
        goto done;
    }
    rc = 0;
done:
    free(rows);
    if (ds >= 0 && H5Dclose(ds) < 0 && rc == 0)
        rc = out_h5_err(w->err, w->out, "cannot write /index");
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (space >= 0)
        H5Sclose(space);
    swf_index_fini(&x);
    return rc;
}

static int swf_root_attrs(swf_writer *w, const experiment *e)
{
    int32_t schema = SWF_SCHEMA_VERSION;
    int64_t n_points = e->n_points;
    int32_t seeds = e->n_seeds;
    char *exp_text = cJSON_Print(e->root);
    size_t len = 1;
    for (int i = 0; i < w->n_sources; i++)
        len += strlen(w->sources[i]) + 2;
    char *sources = sim_xcalloc(1, len);
    for (int i = 0; i < w->n_sources; i++)
        strcat(strcat(sources, i ? ", " : ""), w->sources[i]);
    int rc = 0;
    if (out_attr_str(w->f, "servesim_version", SERVESIM_VERSION) < 0 ||
        out_attr(w->f, "schema_version", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, &schema) < 0 ||
        out_attr_str(w->f, "kind", "sweep") < 0 ||
        out_attr_str(w->f, "experiment_file", e->file) < 0 ||
        out_attr_str(w->f, "experiment", exp_text) < 0 ||
        out_attr_str(w->f, "base_config", e->base_json) < 0 ||
        out_attr(w->f, "points", H5T_STD_I64LE, H5T_NATIVE_INT64, 0, &n_points) < 0 ||
        out_attr(w->f, "seeds", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, &seeds) < 0 ||
        out_attr_str(w->f, "cost_sources", sources) < 0)
        rc = out_h5_err(w->err, w->out, "cannot write the file attributes");
    free(exp_text);
    free(sources);
    return rc;
}

int sweep_file_write(const experiment *e, const char *out, const char *partial,
                     const sweep_point_state *st, sim_err *err)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    swf_writer w = {.out = out, .f = H5I_INVALID_HID, .points = H5I_INVALID_HID,
                    .src = H5I_INVALID_HID, .err = err};
    int rc = -1;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_SEMI);
    w.f = H5Fcreate(partial, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (w.f < 0) {
        out_h5_err(err, out, "cannot create the results file");
        goto done;
    }
    w.points = H5Gcreate2(w.f, "points", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (w.points < 0) {
        out_h5_err(err, out, "cannot create /points");
        goto done;
    }
    if (swf_write_index(&w, e, st) < 0 || swf_root_attrs(&w, e) < 0)
        goto done;
    rc = 0;
done:
    if (w.src >= 0)
        H5Fclose(w.src);
    if (w.points >= 0 && H5Gclose(w.points) < 0)
        rc = -1;
    if (w.f >= 0 && H5Fclose(w.f) < 0 && rc == 0)
        rc = out_h5_err(err, out, "cannot finish writing the results file");
    H5Eclear2(H5E_DEFAULT);
    for (int i = 0; i < w.n_sources; i++)
        free(w.sources[i]);
    free(w.sources);
    return rc;
}
