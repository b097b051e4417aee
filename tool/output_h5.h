/* HDF5 helpers that the results writer (output.c) shares with the sweep's
 * results file (sweep_file.c). Internal to serve/: other modules go through
 * output.h. Every function leaves HDF5's error stack for out_h5_err. */
#ifndef SERVE_OUTPUT_H5_H
#define SERVE_OUTPUT_H5_H

#include <hdf5.h>
#include "sim/base.h"

/* Formats "<path>: <what>: <HDF5's innermost error>" into err, clears the
 * HDF5 error stack and returns -1. */
int out_h5_err(sim_err *err, const char *path, const char *what);

/* A variable-length UTF-8 string type (h5py reads it as str); close it. */
hid_t out_vlen_str_type(void);
/* Attribute `name` on loc: n values (n == 0: a scalar) of mem_type, stored
 * as file_type. */
herr_t out_attr(hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
                hsize_t n, const void *value);
/* A scalar variable-length UTF-8 string attribute (NULL writes ""). */
herr_t out_attr_str(hid_t loc, const char *name, const char *value);

/* The /summary row types, from the one field table of run_summary: *mem at
 * the struct's native layout, *file packed little-endian. Close both. */
int out_summary_types(hid_t *mem, hid_t *file);

#endif
