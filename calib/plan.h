/* A calibration plan: what calib/ measures, entry by entry, point by point.
 *
 * The host tool (calib/tool.c, `calib-tool plan`) builds a plan from the
 * bundled models with ops_decompose (calib/planner.c) and writes it as a
 * small line-oriented text file; the CUDA program (servesim-calib) reads it
 * and measures exactly those points, so it needs no JSON library and no
 * model files on the GPU machine. The same plan, priced by the roofline
 * instead of a GPU, gives the synthetic tables the tests use.
 *
 * An entry is one table entry (models/cost_key.h): a family, its params,
 * one or two axes and, per grid point (row-major, last axis fastest), the
 * FLOPs and bytes the simulator counts for that point, whether to measure
 * power there, and whether to skip it (out of every model's reach or over
 * the memory cap). Layers are whole decoder layers measured in one CUDA
 * graph (`--layer`) to check the table's predictions.
 *
 * Text format (one record per line, '#' starts a comment):
 *   servesim-calib-plan 1
 *   name NAME
 *   page_tokens N
 *   entry FAMILY P0 P1 ...            (the family's params, in order)
 *   used_by MODEL/tpT,MODEL/tpT
 *   axis NAME N V0 V1 ...             (one line per axis, in order)
 *   flops F0 F1 ...                   (one number per point)
 *   bytes B0 B1 ...
 *   energy E0 E1 ...                  (0 or 1)
 *   skip S0 S1 ...                    (0 or 1)
 *   end
 *   layer NAME MODEL TP N_PREFILL Q PREFIX N_DECODE DECODE_CTX
 *   lop FAMILY KIND COUNT FLOPS BYTES P0 .. P5 X0 X1 X2
 *   endlayer */
#ifndef CALIB_PLAN_H
#define CALIB_PLAN_H

#include <stdio.h>
#include "models/cost_key.h"

#define CALIB_PLAN_VERSION 1
#define CALIB_AXIS_MAX 32
#define CALIB_USED_BY_BYTES 512

typedef struct calib_axis {
    int n;
    double v[CALIB_AXIS_MAX];   /* strictly increasing */
} calib_axis;

typedef struct calib_entry {
    ctab_family family;
    int64_t p[CTAB_MAX_PARAMS];
    calib_axis axis[CTAB_MAX_AXES];   /* the family's n_axes are used */
    int n_points;
    double *flops;     /* per point, per run, as ops_decompose counts them */
    double *bytes;
    uint8_t *energy;   /* measure power at this point */
    uint8_t *skip;     /* not measured */
    char used_by[CALIB_USED_BY_BYTES]; /* "Llama-3-8B/tp1,Mixtral-8x7B/tp2": who needs it
                                        * (calib/session.c ranks entries by it) */
} calib_entry;

/* One operator of a measured layer, run `count` times in a row. */
typedef struct calib_layer_op {
    ctab_family family;
    char kind[24];           /* op_kind_name, informative */
    int count;
    double flops, bytes;     /* per run */
    int64_t p[CTAB_MAX_PARAMS];
    double x[CTAB_MAX_X];
} calib_layer_op;

/* One decoder layer at one batch composition: n_prefill chunks of q new
 * tokens after `prefix` cached ones, and n_decode sequences with
 * decode_ctx tokens of context each. */
typedef struct calib_layer {
    char name[32];
    char model[64];
    int tp;
    int32_t n_prefill, q, prefix, n_decode, decode_ctx;
    int n_ops;
    calib_layer_op op[OPS_MAX];
} calib_layer;

typedef struct calib_plan {
    char name[32];
    int page_tokens;          /* paged KV block size for decode attention */
    int n_entries;
    size_t cap_entries;
    calib_entry *entry;
    int n_layers;
    size_t cap_layers;
    calib_layer *layer;
} calib_plan;

void calib_plan_init(calib_plan *plan);
void calib_plan_fini(calib_plan *plan);

/* Appends an entry with the given axes; allocates its per-point arrays
 * (zeroed). Returns it (valid until the next append). */
calib_entry *calib_plan_add_entry(calib_plan *plan, ctab_family family,
                                  const int64_t *p, const calib_axis *axes);
calib_layer *calib_plan_add_layer(calib_plan *plan);
/* Appends a copy of src (its per-point arrays too), e.g. from another plan. */
calib_entry *calib_plan_copy_entry(calib_plan *plan, const calib_entry *src);

/* The index of an entry with this family and params, or -1. */
int calib_plan_find(const calib_plan *plan, ctab_family family, const int64_t *p);

/* Coordinates of a point (x[0..n_axes-1]). */
void calib_entry_point_x(const calib_entry *e, int point, double *x);

int calib_plan_write(const calib_plan *plan, FILE *f);
int calib_plan_save(const calib_plan *plan, const char *path, sim_err *err);
/* Reads a plan; errors name the file and line. */
int calib_plan_load(const char *path, calib_plan *out, sim_err *err);

#endif
