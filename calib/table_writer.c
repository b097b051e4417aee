/* Cost tables and layer measurements as JSON (see table_writer.h; the
 * schema is documented in calib/README.md).
 *
 * Design. JSON is written by hand with fprintf: numbers with %.9g (latency,
 * power) or %.17g (FLOPs, bytes, grid values: the loader recomputes the
 * roofline from them), NAN as null, strings escaped. Arrays are one line
 * each so that a table diffs well. Key order is fixed, so the same results
 * give the same bytes.
 *
 * Files are replaced atomically (write PATH.partial, close, rename): the
 * CUDA program rewrites its table every few seconds while it runs, and a
 * kill at any moment must leave a table the loader accepts. No fsync: the
 * threat is the process being killed, after which the kernel still writes
 * what it was given; a machine that loses power loses the session's output
 * folder anyway, and a sync per rewrite would cost more than the points. */
#include "calib/table_writer.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void calib_run_info_init(calib_run_info *info)
{
    memset(info, 0, sizeof *info);
    calib_gpu_state unknown = {NAN, NAN, NAN, NAN, NAN, NAN, NAN, -1};
    info->before = info->after = unknown;
    info->idle_w = info->idle_w_after = NAN;
    info->counter_period_ms = info->window_ms = NAN;
    info->ceil_gemm_flops_per_s = info->ceil_d2d_bytes_per_s = NAN;
    info->ceil_d2d_bytes = NAN;
    info->l2_bytes = info->memory_bytes = NAN;
    info->graph_min_ns = info->rotate_bytes = NAN;
    info->resume_entry = -1;
}

static void put_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void put_num(FILE *f, double v, int digits)
{
    if (!isfinite(v))
        fputs("null", f);
    else
        fprintf(f, "%.*g", digits, v);
}

static void kv_str(FILE *f, const char *ind, const char *key, const char *v, int last)
{
    fprintf(f, "%s\"%s\": ", ind, key);
    put_str(f, v);
    fputs(last ? "\n" : ",\n", f);
}

static void kv_num(FILE *f, const char *ind, const char *key, double v, int last)
{
    fprintf(f, "%s\"%s\": ", ind, key);
    put_num(f, v, 9);
    fputs(last ? "\n" : ",\n", f);
}

static void put_state(FILE *f, const char *key, const calib_gpu_state *s)
{
    const char *in = "    ";
    fprintf(f, "  \"%s\": {\n", key);
    kv_num(f, in, "sm_clock_mhz", s->sm_clock_mhz, 0);
    kv_num(f, in, "sm_clock_max_mhz", s->sm_clock_max_mhz, 0);
    kv_num(f, in, "mem_clock_mhz", s->mem_clock_mhz, 0);
    kv_num(f, in, "temperature_c", s->temperature_c, 0);
    kv_num(f, in, "power_w", s->power_w, 0);
    kv_num(f, in, "power_limit_w", s->power_limit_w, 0);
    kv_num(f, in, "enforced_power_limit_w", s->enforced_power_limit_w, 0);
    kv_num(f, in, "clocks_event_reasons",
           s->clocks_event_reasons < 0 ? NAN : (double)s->clocks_event_reasons, 1);
    fputs("  },\n", f);
}

/* The header shared by tables and layer files: identity, software, run,
 * state, ceilings, energy. */
static void put_header(FILE *f, const char *schema, const calib_run_info *in)
{
    const char *i2 = "    ";
    char cc[16];
    snprintf(cc, sizeof cc, "%d.%d", in->cc_major, in->cc_minor);
    fprintf(f, "{\n  \"schema\": \"%s\",\n  \"schema_version\": %d,\n", schema,
            CALIB_SCHEMA_VERSION);
    fputs("  \"gpu\": {\n", f);
    kv_str(f, i2, "name", in->gpu_name, 0);
    kv_str(f, i2, "device_name", in->device_name, 0);
    kv_str(f, i2, "uuid", in->uuid, 0);
    kv_str(f, i2, "pci_bus_id", in->pci_bus_id, 0);
    kv_str(f, i2, "compute_capability", in->cc_major ? cc : "", 0);
    kv_num(f, i2, "sm_count", in->sm_count ? in->sm_count : NAN, 0);
    kv_num(f, i2, "l2_bytes", in->l2_bytes, 0);
    kv_num(f, i2, "memory_bytes", in->memory_bytes, 1);
    fputs("  },\n  \"software\": {\n", f);
    kv_str(f, i2, "driver_version", in->driver_version, 0);
    kv_num(f, i2, "cuda_driver_version",
           in->cuda_driver_version ? in->cuda_driver_version : NAN, 0);
    kv_num(f, i2, "cuda_runtime_version",
           in->cuda_runtime_version ? in->cuda_runtime_version : NAN, 0);
    kv_num(f, i2, "cublaslt_version", in->cublaslt_version ? in->cublaslt_version : NAN, 0);
    kv_str(f, i2, "nvcc_version", in->nvcc_version, 0);
    kv_str(f, i2, "servesim_version", in->servesim_version, 1);
    fputs("  },\n  \"run\": {\n", f);
    kv_str(f, i2, "mode", in->mode, 0);
    kv_str(f, i2, "plan", in->plan_name, 0);
    kv_str(f, i2, "date", in->date, 0);
    kv_str(f, i2, "families", in->families, 0);
    kv_str(f, i2, "state", in->state, 0);
    kv_num(f, i2, "resume_entry", in->resume_entry >= 0 ? in->resume_entry : NAN, 0);
    kv_num(f, i2, "replays", in->replays, 0);
    kv_num(f, i2, "warmup_replays", in->warmup_replays, 0);
    kv_num(f, i2, "graph_min_ns", in->graph_min_ns, 0);
    kv_num(f, i2, "rotate_bytes", in->rotate_bytes, 0);
    kv_str(f, i2, "moe_gemm", in->moe_gemm, 0);
    kv_str(f, i2, "notes", in->notes, 1);
    fputs("  },\n", f);
    put_state(f, "state_before", &in->before);
    put_state(f, "state_after", &in->after);
    fputs("  \"ceilings\": {\n", f);
    kv_num(f, i2, "gemm_flops_per_s", in->ceil_gemm_flops_per_s, 0);
    fprintf(f, "%s\"gemm_mnk\": [%lld, %lld, %lld],\n", i2, (long long)in->ceil_gemm_mnk[0],
            (long long)in->ceil_gemm_mnk[1], (long long)in->ceil_gemm_mnk[2]);
    kv_num(f, i2, "d2d_bytes_per_s", in->ceil_d2d_bytes_per_s, 0);
    kv_num(f, i2, "d2d_bytes", in->ceil_d2d_bytes, 1);
    fputs("  },\n  \"energy\": {\n", f);
    kv_str(f, i2, "method", in->energy_method, 0);
    kv_num(f, i2, "idle_w", in->idle_w, 0);
    kv_num(f, i2, "idle_w_after", in->idle_w_after, 0);
    kv_num(f, i2, "counter_period_ms", in->counter_period_ms, 0);
    kv_num(f, i2, "window_ms", in->window_ms, 1);
    fputs("  },\n", f);
}

typedef double (*field_fn)(const calib_point_result *r);
static double f_median(const calib_point_result *r) { return r->median_ns; }
static double f_p10(const calib_point_result *r) { return r->p10_ns; }
static double f_p90(const calib_point_result *r) { return r->p90_ns; }
static double f_power(const calib_point_result *r) { return r->power_w; }
static double f_energy(const calib_point_result *r) { return r->energy_j; }
static double f_throttled(const calib_point_result *r)
{
    return isfinite(r->median_ns) ? r->throttled : NAN;
}

static void put_field(FILE *f, const char *ind, const char *key,
                      const calib_point_result *r, int n, field_fn fn, int last)
{
    fprintf(f, "%s\"%s\": [", ind, key);
    for (int i = 0; i < n; i++) {
        if (i)
            fputs(", ", f);
        put_num(f, fn(&r[i]), 9);
    }
    fputs(last ? "]\n" : "],\n", f);
}

static void put_doubles(FILE *f, const char *ind, const char *key, const double *v,
                        int n, int last)
{
    fprintf(f, "%s\"%s\": [", ind, key);
    for (int i = 0; i < n; i++) {
        if (i)
            fputs(", ", f);
        put_num(f, v[i], 17);
    }
    fputs(last ? "]\n" : "],\n", f);
}

static void put_entry(FILE *f, const calib_entry *e, const calib_point_result *r,
                      int last)
{
    const ctab_family_info *fi = ctab_family_get(e->family);
    const char *in = "          ";
    fputs("        {\n          \"params\": {", f);
    for (int j = 0; j < fi->n_params; j++)
        fprintf(f, "%s\"%s\": %lld", j ? ", " : "", fi->param[j], (long long)e->p[j]);
    fputs("},\n", f);
    kv_str(f, in, "used_by", e->used_by, 0);
    fprintf(f, "%s\"axes\": {\n", in);
    for (int a = 0; a < fi->n_axes; a++)
        put_doubles(f, "            ", fi->axis[a], e->axis[a].v, e->axis[a].n,
                    a == fi->n_axes - 1);
    fprintf(f, "%s},\n", in);
    put_doubles(f, in, "flops", e->flops, e->n_points, 0);
    put_doubles(f, in, "bytes", e->bytes, e->n_points, 0);
    fprintf(f, "%s\"latency_ns\": {\n", in);
    put_field(f, "            ", "median", r, e->n_points, f_median, 0);
    put_field(f, "            ", "p10", r, e->n_points, f_p10, 0);
    put_field(f, "            ", "p90", r, e->n_points, f_p90, 1);
    fprintf(f, "%s},\n", in);
    put_field(f, in, "power_w", r, e->n_points, f_power, 0);
    put_field(f, in, "energy_j", r, e->n_points, f_energy, 0);
    put_field(f, in, "throttled", r, e->n_points, f_throttled, 1);
    fprintf(f, "        }%s\n", last ? "" : ",");
}

/* An entry is written when at least one of its points was measured (a
 * run cut short leaves the rest out; the loader wants a measurement in
 * every entry). */
static int entry_measured(const calib_entry *e, const calib_point_result *r)
{
    for (int i = 0; i < e->n_points; i++)
        if (isfinite(r[i].median_ns))
            return 1;
    return 0;
}

int calib_table_write(FILE *f, const calib_plan *plan,
                      calib_point_result *const *res, unsigned families,
                      const calib_run_info *info)
{
    put_header(f, CALIB_TABLE_SCHEMA, info);
    fprintf(f, "  \"page_tokens\": %d,\n  \"families\": {", plan->page_tokens);
    int first_family = 1;
    for (int fam = 0; fam < CTAB_FAMILY_COUNT; fam++) {
        if (!(families & (1u << fam)))
            continue;
        int n = 0, seen = 0;
        for (int i = 0; i < plan->n_entries; i++)
            n += plan->entry[i].family == (ctab_family)fam &&
                 entry_measured(&plan->entry[i], res[i]);
        if (!n)
            continue;
        const ctab_family_info *fi = ctab_family_get((ctab_family)fam);
        fprintf(f, "%s\n    \"%s\": {\n      \"params\": [", first_family ? "" : ",",
                fi->name);
        first_family = 0;
        for (int j = 0; j < fi->n_params; j++)
            fprintf(f, "%s\"%s\"", j ? ", " : "", fi->param[j]);
        fputs("],\n      \"axes\": [", f);
        for (int a = 0; a < fi->n_axes; a++)
            fprintf(f, "%s{\"name\": \"%s\", \"scale\": \"%s\"}", a ? ", " : "",
                    fi->axis[a], fi->scale[a] == CTAB_SCALE_LOG ? "log" : "linear");
        fputs("],\n      \"entries\": [\n", f);
        for (int i = 0; i < plan->n_entries; i++)
            if (plan->entry[i].family == (ctab_family)fam &&
                entry_measured(&plan->entry[i], res[i]))
                put_entry(f, &plan->entry[i], res[i], ++seen == n);
        fputs("      ]\n    }", f);
    }
    fputs("\n  }\n}\n", f);
    return ferror(f) ? -1 : 0;
}

int calib_layers_write(FILE *f, const calib_plan *plan, const calib_point_result *res,
                       const calib_run_info *info)
{
    put_header(f, CALIB_LAYER_SCHEMA, info);
    fputs("  \"layers\": [\n", f);
    const char *in = "      ";
    for (int i = 0; i < plan->n_layers; i++) {
        const calib_layer *l = &plan->layer[i];
        const calib_point_result *r = &res[i];
        fputs("    {\n", f);
        kv_str(f, in, "name", l->name, 0);
        kv_str(f, in, "model", l->model, 0);
        kv_num(f, in, "tp", l->tp, 0);
        kv_num(f, in, "n_prefill", l->n_prefill, 0);
        kv_num(f, in, "q", l->q, 0);
        kv_num(f, in, "prefix", l->prefix, 0);
        kv_num(f, in, "n_decode", l->n_decode, 0);
        kv_num(f, in, "decode_ctx", l->decode_ctx, 0);
        fprintf(f, "%s\"ops\": [", in);
        for (int j = 0; j < l->n_ops; j++)
            fprintf(f, "%s\"%s x%d\"", j ? ", " : "", l->op[j].kind, l->op[j].count);
        fputs("],\n", f);
        fprintf(f, "%s\"latency_ns\": {\"median\": ", in);
        put_num(f, r->median_ns, 9);
        fputs(", \"p10\": ", f);
        put_num(f, r->p10_ns, 9);
        fputs(", \"p90\": ", f);
        put_num(f, r->p90_ns, 9);
        fputs("},\n", f);
        kv_num(f, in, "power_w", r->power_w, 0);
        kv_num(f, in, "energy_j", r->energy_j, 0);
        kv_num(f, in, "throttled", r->throttled, 1);
        fprintf(f, "    }%s\n", i == plan->n_layers - 1 ? "" : ",");
    }
    fputs("  ]\n}\n", f);
    return ferror(f) ? -1 : 0;
}

/* ---- atomic replacement --------------------------------------------------------- */

/* mkdir -p of the folder holding path. */
static int make_parent_dir(const char *path, sim_err *err)
{
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
        return sim_errf(err, "%s: path too long", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = 0;
    for (char *p = dir + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(dir, 0755) != 0 && errno != EEXIST)
                return sim_errf(err, "%s: cannot create the folder: %s", dir, strerror(errno));
            *p = c;
            if (!c)
                return 0;
        }
    }
}

typedef int (*write_fn)(FILE *f, const void *arg);

static int save_atomic(const char *path, write_fn fn, const void *arg, sim_err *err)
{
    char tmp[4200];
    if (make_parent_dir(path, err))
        return -1;
    snprintf(tmp, sizeof tmp, "%s.partial", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return sim_errf(err, "%s: cannot write: %s", tmp, strerror(errno));
    int rc = fn(f, arg);
    rc |= fclose(f);
    if (rc) {
        unlink(tmp);
        return sim_errf(err, "%s: write failed", tmp);
    }
    if (rename(tmp, path)) {
        int e = errno;
        unlink(tmp);
        return sim_errf(err, "%s: cannot rename %s over it: %s", path, tmp, strerror(e));
    }
    return 0;
}

typedef struct table_args {
    const calib_plan *plan;
    calib_point_result *const *res;
    const calib_point_result *layer_res;
    unsigned families;
    const calib_run_info *info;
} table_args;

static int write_table_fn(FILE *f, const void *arg)
{
    const table_args *a = arg;
    return calib_table_write(f, a->plan, a->res, a->families, a->info);
}

static int write_layers_fn(FILE *f, const void *arg)
{
    const table_args *a = arg;
    return calib_layers_write(f, a->plan, a->layer_res, a->info);
}

static int write_text_fn(FILE *f, const void *arg)
{
    return fputs((const char *)arg, f) < 0 ? -1 : 0;
}

int calib_table_save(const char *path, const calib_plan *plan,
                     calib_point_result *const *res, unsigned families,
                     const calib_run_info *info, sim_err *err)
{
    table_args a = {.plan = plan, .res = res, .families = families, .info = info};
    return save_atomic(path, write_table_fn, &a, err);
}

int calib_layers_save(const char *path, const calib_plan *plan,
                      const calib_point_result *res, const calib_run_info *info,
                      sim_err *err)
{
    table_args a = {.plan = plan, .layer_res = res, .info = info};
    return save_atomic(path, write_layers_fn, &a, err);
}

int calib_text_save(const char *path, const char *text, sim_err *err)
{
    return save_atomic(path, write_text_fn, text, err);
}
