/* A capacity search's probes as an HDF5 file (capacity.h,
 * cap_write_probes; layout in tool/OUTPUT.md, "Capacity probes"). Written
 * through outpath like every results file: checked, locked, as a partial
 * file renamed into place once whole. The probe table reuses the results
 * writer's summary type (output_h5.h), so its columns are /summary's, plus
 * the value probed, the verdict and its reason. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool/capacity.h"
#include "tool/outpath.h"
#include "tool/output_h5.h"
#include "version.h"

typedef struct cap_row {
    run_summary s;        /* averaged over the probe's seeds */
    double value;         /* the searched path's value */
    int8_t pass;
    char why[200];
} cap_row;

#define CAP_EXTRA_FILE_BYTES (8 + 1 + 200)

/* The row types: the summary's with the three columns added at its end. */
static int cap_row_types(hid_t *mem, hid_t *file)
{
    hid_t sum_mem, sum_file, why = H5Tcopy(H5T_C_S1);
    *mem = *file = H5I_INVALID_HID;
    if (why < 0 || H5Tset_size(why, sizeof ((cap_row *)0)->why) < 0 ||
        H5Tset_strpad(why, H5T_STR_NULLTERM) < 0 || out_summary_types(&sum_mem, &sum_file) < 0)
        return -1;
    size_t base = H5Tget_size(sum_file);
    *mem = H5Tcopy(sum_mem);
    *file = H5Tcopy(sum_file);
    H5Tclose(sum_mem);
    H5Tclose(sum_file);
    int rc = *mem < 0 || *file < 0 || H5Tset_size(*mem, sizeof(cap_row)) < 0 ||
             H5Tinsert(*mem, "value", offsetof(cap_row, value), H5T_NATIVE_DOUBLE) < 0 ||
             H5Tinsert(*mem, "pass", offsetof(cap_row, pass), H5T_NATIVE_INT8) < 0 ||
             H5Tinsert(*mem, "why", offsetof(cap_row, why), why) < 0 ||
             H5Tset_size(*file, base + CAP_EXTRA_FILE_BYTES) < 0 ||
             H5Tinsert(*file, "value", base, H5T_IEEE_F64LE) < 0 ||
             H5Tinsert(*file, "pass", base + 8, H5T_STD_I8LE) < 0 ||
             H5Tinsert(*file, "why", base + 9, why) < 0 ? -1 : 0;
    H5Tclose(why);
    return rc;
}

static int write_table(hid_t f, const cap_result *r, const char *path, sim_err *err)
{
    hid_t mem, file_type, space = H5I_INVALID_HID, ds = H5I_INVALID_HID;
    hsize_t n = (hsize_t)r->n_probes;
    cap_row *rows = sim_xcalloc(n ? n : 1, sizeof *rows);
    for (int i = 0; i < r->n_probes; i++) {
        rows[i].s = r->probes[i].mean;
        rows[i].value = r->probes[i].rate;
        rows[i].pass = (int8_t)r->probes[i].pass;
        snprintf(rows[i].why, sizeof rows[i].why, "%s", r->probes[i].why);
    }
    int rc = -1;
    if (cap_row_types(&mem, &file_type) < 0 || (space = H5Screate_simple(1, &n, NULL)) < 0 ||
        (ds = H5Dcreate2(f, "probes", file_type, space, H5P_DEFAULT, H5P_DEFAULT,
                         H5P_DEFAULT)) < 0 ||
        (n && H5Dwrite(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) < 0))
        out_h5_err(err, path, "cannot write /probes");
    else
        rc = 0;
    if (ds >= 0)
        H5Dclose(ds);
    if (space >= 0)
        H5Sclose(space);
    if (mem >= 0)
        H5Tclose(mem);
    if (file_type >= 0)
        H5Tclose(file_type);
    free(rows);
    return rc;
}

int cap_write_probes(const char *path, const char *config_name, const cJSON *config,
                     const cap_spec *spec, const cap_result *r, sim_err *err)
{
    outpath_inputs in = {0};
    outpath_inputs_add(&in, config_name);
    outpath_inputs_add_json(&in, config);
    outpath *op = outpath_begin(path, &in, err);
    outpath_inputs_fini(&in);
    if (!op)
        return -1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fcreate(outpath_partial(op), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        out_h5_err(err, path, "cannot create the probes file");
        outpath_abandon(op);
        return -1;
    }
    char slo[512] = "", name[CAP_NAME_SIZE];
    size_t used = 0;
    for (int b = 0; b < spec->n_bounds && used < sizeof slo; b++)
        used += (size_t)snprintf(slo + used, sizeof slo - used, "%s%s=%gms", b ? "," : "",
                                 cap_bound_name(&spec->bounds[b], name, sizeof name),
                                 spec->bounds[b].limit_s * 1e3);
    char *json = cJSON_Print(config);
    int32_t lo = r->lo, hi = r->hi, seeds = spec->seeds, integer = r->integer;
    double cap = r->lo >= 0 ? r->rate : NAN;
    int rc = write_table(f, r, path, err);
    if (!rc && (out_attr_str(f, "servesim_version", SERVESIM_VERSION) < 0 ||
                out_attr_str(f, "over", r->over) < 0 || out_attr_str(f, "slo", slo) < 0 ||
                out_attr_str(f, "config", json) < 0 ||
                out_attr(f, "attain", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, &spec->attain) < 0 ||
                out_attr(f, "seeds", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, &seeds) < 0 ||
                out_attr(f, "integer", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, &integer) < 0 ||
                out_attr(f, "capacity", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, &cap) < 0 ||
                out_attr(f, "lo", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, &lo) < 0 ||
                out_attr(f, "hi", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, &hi) < 0))
        rc = out_h5_err(err, path, "cannot write the attributes");
    cJSON_free(json);
    if (H5Fclose(f) < 0 && !rc)
        rc = out_h5_err(err, path, "cannot finish the probes file");
    if (rc) {
        outpath_abandon(op);
        return -1;
    }
    return outpath_commit(op, err);
}
