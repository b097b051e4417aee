/* Measured cost tables (written by calib/) and the `table` cost model.
 *
 * A table holds, per operator family and entry (models/cost_key.h), the
 * median latency measured on one GPU at the points of a grid, with power
 * at some of them, and the GPU's measured ceilings (peak GEMM FLOP/s and
 * device-to-device bandwidth). The schema is in calib/README.md.
 *
 * Pricing an operator (ctab_price_op):
 *  - inside the grid of its own entry: log-log multilinear interpolation of
 *    the measured latency (linear along linear axes such as the cached
 *    prefix); source `table`;
 *  - otherwise, the operator's roofline bound at the measured ceilings
 *    divided by the fraction of that bound measured at the nearest grid
 *    points (coordinates clamped to the grid; for a shape the table lacks,
 *    the nearest entry of its family); source `roofline`. Prefill attention
 *    over several chunks is priced this way too, from its per-chunk point,
 *    and keeps the source `table` when that point is inside the grid;
 *  - collectives: the table's allreduce entry of their ranks (imported NCCL
 *    measurements) by buffer size, held at the smallest size measured
 *    below it and scaled by bytes above it; without one, the roofline;
 *  - families the table lacks, and linear layers in a precision other
 *    than 16 bits (tables are measured in bf16/fp16): the fallback
 *    roofline of cost.c (models/fallback.h); source `roofline`.
 * Power is interpolated the same way from the measured points (values held
 * from the nearest measured point in between); a table without power falls
 * back to the roofline's power model. */
#ifndef MODELS_COST_TABLE_H
#define MODELS_COST_TABLE_H

#include "models/cost.h"
#include "models/cost_key.h"

typedef struct ctab ctab;

/* The folder of default tables: $SERVESIM_TABLES_DIR if set, else
 * calib/tables/ of the source tree this binary was built from. */
const char *ctab_default_dir(void);

/* The default table of a GPU: <dir>/<gpu>.json (measured with calib/) if
 * present, else <dir>/vidur/<gpu>.json (imported public profiles). Writes
 * the path found (or the first candidate) to out; returns 0 if one exists,
 * -1 if neither does. */
int ctab_default_path(const char *gpu, char *out, size_t n);

/* Loads and validates a table. expect_gpu: the run's GPU name, which must
 * equal the table's $.gpu.name (NULL: any). Errors name the file and the
 * JSON path: "t.json: $.families.gemm.entries[2].latency_ns.median[4]: ...". */
ctab *ctab_load(const char *path, const char *expect_gpu, sim_err *err);
void ctab_destroy(ctab *t);

const char *ctab_gpu_name(const ctab *t);
const char *ctab_path(const ctab *t);
/* Where an imported table's numbers come from ($.provenance.source); "" for
 * a table measured by calib/. */
const char *ctab_source(const ctab *t);
/* Measured idle power of one GPU, watts; NAN if the table has none. */
double ctab_idle_w(const ctab *t);
int ctab_n_entries(const ctab *t, ctab_family f);

/* Remembers, per op kind, which entry priced it last (the shapes of one
 * run never change), so that pricing does no search. Zero-initialise. */
typedef struct ctab_hint {
    int valid;
    int idx;            /* entry index in its family */
    int exact;          /* the entry's params are the op's own */
    ctab_key key;       /* the params it was found for */
} ctab_hint;

typedef struct ctab_price {
    double ns;          /* one run */
    double power_w;     /* one GPU while it runs */
    cost_source source;
} ctab_price;

/* The table address of op, or -1 when the table has nothing for it (no
 * key, no entry of its family, or a precision the table was not measured
 * in). */
int ctab_key_for(const ctab *t, const llm_model *m, int tp, const op_desc *op,
                 ctab_key *key);

/* Prices one run of `op` from ops_decompose(m, &PAR_TP(tp), ...) on GPU g (the
 * run's GPU file, for the roofline fallback). t may be NULL (everything on
 * the roofline); hint may be NULL. Allocates nothing. */
void ctab_price_op(const ctab *t, const llm_model *m, int tp, const gpu_spec *g,
                   const op_desc *op, ctab_hint *hint, ctab_price *out);

/* Leave-one-out interpolation error of a family: every measured point
 * with measured neighbours on both sides along an axis is predicted from
 * them alone (as the table would interpolate) and compared. err =
 * predicted / measured - 1. */
typedef struct ctab_loo_stats {
    int n;
    double median_abs, p90_abs, max_abs, mean;
} ctab_loo_stats;
void ctab_loo(const ctab *t, ctab_family f, ctab_loo_stats *latency,
              ctab_loo_stats *power);

/* The `table` cost model, `cost_table` (listed in cost_models.def; the
 * default cost model of a run). Params: "table", the path of the table
 * (default: ctab_default_path; when the GPU has none, every term is priced
 * by the roofline and tagged so). */
extern const cost_model_ops cost_table;

#endif
