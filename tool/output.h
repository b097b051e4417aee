/* Results file (HDF5). Written atomically: everything goes to
 * "<path>.partial" and is renamed to <path> only once complete and closed,
 * so a crash or Ctrl-C never leaves a file at <path> that looks complete.
 * The path is checked, the partial file locked, and removed on a
 * terminating signal, by outpath.h.
 *
 * Layout (see README "Results file"):
 *   /requests   compound table, one row per finished request (req_record),
 *               chunked and compressed, appended as requests finish
 *   /summary    compound table with one row (run_summary)
 *   /pools, /instances, /classes, /tenants  one row per pool, instance,
 *               SLO class and tenant (the classes and tenants that had
 *               requests)
 *   /timeseries group of two tables, streamed like /requests: instances
 *               (one row per instance per sample) and cluster (one row per
 *               sample); only when the run samples (cluster.h ts_sample)
 *   attributes on /: servesim_version, schema_version, seed, config (the
 *               effective config as JSON text), cost_sources. */
#ifndef SERVE_OUTPUT_H
#define SERVE_OUTPUT_H

#include "serve/cluster.h"
#include "serve/metrics.h"
#include "tool/outpath.h"

typedef struct out_file out_file;

/* Checks path (outpath_check: not a device, link or folder, not one of
 * `inputs`, which may be NULL), locks and creates "<path>.partial". */
out_file *out_open(const char *path, const outpath_inputs *inputs, sim_err *err);
/* Buffers and appends; matches metrics_record_fn. Returns -1 on an I/O
 * failure (a full disk), which the file keeps (out_failed) and after which
 * it writes nothing more: the run stops and the caller abandons the file. */
int out_record(void *out_file_ptr, const req_record *rec);
/* Buffers and appends one time-series sample; matches ts_sample_fn. Fails
 * like out_record. */
int out_sample(void *out_file_ptr, const ts_sample *s);
/* Whether a write failed, and (into err, when not NULL) why. */
bool out_failed(const out_file *f, sim_err *err);
/* Writes the per-pool, per-instance, per-SLO-class and per-tenant tables
 * (/pools, /instances, /classes, /tenants) from a finished run. */
int out_cluster_tables(out_file *f, const cluster *c, sim_err *err);
/* Writes summary and attributes, closes, renames into place. */
int out_commit(out_file *f, const run_summary *s, const char *config_json,
               const char *cost_sources, sim_err *err);
/* Closes and removes the partial file (on error paths). NULL is a no-op. */
void out_abandon(out_file *f);

#endif
