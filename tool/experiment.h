/* Experiments: a base run config plus a sweep over config paths (see
 * experiments/README.md, "Experiment files").
 *
 * exp_load reads the experiment file, expands the sweep into its points
 * (the cartesian product of every grid list and every zip group, times the
 * seeds), gives each point a stable id and validates every point's config
 * (parsing it and building its cluster), so that a sweep never starts with
 * a point that cannot run. Points are numbered in expansion order: the
 * first grid path varies slowest, the seed fastest.
 *
 * A point's id is a 64-bit hash (FNV-1a, then splitmix64's finaliser) of
 * its canonical assignments (the swept paths sorted, values as canonical
 * JSON: object keys sorted, 8 and 8.0 the same) and its seed, written as 16
 * hex digits. It depends on nothing else: not on the order of the keys in the file, nor on whether a
 * path is in the grid or in a zip group, nor on the other points. */
#ifndef SERVE_EXPERIMENT_H
#define SERVE_EXPERIMENT_H

#include <cjson/cJSON.h>
#include "sim/base.h"

/* What a swept path's values are, which sets its column type in the index. */
typedef enum exp_kind {
    EXP_INT,     /* every value an integer (|v| < 2^53): int64 */
    EXP_NUM,     /* every value a number: float64 */
    EXP_BOOL,    /* every value true or false: int8 */
    EXP_STR,     /* every value a string: fixed-length string */
    EXP_JSON,    /* anything else: its canonical JSON text, fixed-length */
} exp_kind;

typedef struct exp_param {
    char *path;          /* config path, e.g. "workload.arrival.rate_per_s" */
    exp_kind kind;
    size_t text_len;     /* EXP_STR, EXP_JSON: longest value's text */
} exp_param;

typedef struct exp_point {
    int64_t index;       /* position in expansion order, from 0 */
    uint64_t id;
    char id_hex[17];
    uint64_t seed;
    int32_t seed_index;
    const cJSON **values;   /* n_params values, borrowed from the file's tree */
    char *label;         /* "path=value, ..., seed=N", for messages */
    char *config_json;   /* the effective config (defaults filled in) */
} exp_point;

typedef struct experiment {
    char *file;          /* as given; messages start with it */
    cJSON *root;         /* the experiment file, owned */
    char *base_json;     /* the base config after "set", before the sweep */
    exp_param *params;
    int32_t n_params;
    int32_t n_seeds;
    exp_point *points;
    int64_t n_points;
} experiment;

/* Largest sweep exp_load accepts. */
#define EXP_MAX_POINTS 1000000

/* Reads, expands and validates. Messages start with the file name and give
 * the JSON path ($.sweep.grid["cluster.tp"][2]) or, for a point that does
 * not validate, the point's assignments. */
int exp_load(const char *path, experiment *out, sim_err *err);
/* The same for a tree already read (takes root, also on failure); `file`
 * names it in messages and its folder anchors "base_config". */
int exp_parse(cJSON *root, const char *file, experiment *out, sim_err *err);
void exp_fini(experiment *e);

/* Canonical JSON of v (object keys sorted, no spaces); caller frees. */
char *exp_canonical_json(const cJSON *v);

#endif
