/* Experiments: a base run config plus a sweep over config paths (see
 * experiments/README.md, "Experiment files").
 *
 * exp_load reads the experiment file, expands the sweep into its points
 * (the cartesian product of every grid list and every zip group, times the
 * seeds) and gives each point a stable id. A point's effective config is
 * built and checked (parsed, its cluster built) by exp_point_prepare, on
 * demand: a sweep prepares the points it is about to run (or finds already
 * run) before it starts any of them, so `--limit 1` checks one point, not
 * the whole grid, and memory holds the configs of one batch of points, not
 * of every point. Points are numbered in expansion order: the first grid
 * path varies slowest, the seed fastest.
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
    char *config_json;   /* the effective config (defaults filled in), once
                          * exp_point_prepare has built it; else NULL */
} exp_point;

typedef struct experiment {
    char *file;          /* as given; messages start with it */
    char *base_file;     /* "base_config" resolved against file's folder, or NULL */
    cJSON *root;         /* the experiment file, owned */
    cJSON *base;         /* the base config after "set", owned */
    char *base_json;     /* the same as text */
    exp_param *params;
    int32_t n_params;
    int32_t n_seeds;
    exp_point *points;
    int64_t n_points;
    char *const *sets;   /* the command line's --set (borrowed), after "set" */
    int n_sets;
} experiment;

/* Largest sweep exp_load accepts by default, and at most (a sweep's
 * --force). Expanding costs about 0.5 KB and a few microseconds a point. */
#define EXP_MAX_POINTS 100000
#define EXP_MAX_POINTS_FORCED 1000000

/* Reads and expands. max_points: the most points accepted (<= 0:
 * EXP_MAX_POINTS; at most EXP_MAX_POINTS_FORCED). Messages start with the
 * file name and give the JSON path ($.sweep.grid["cluster.tp"][2]). */
int exp_load(const char *path, int64_t max_points, experiment *out, sim_err *err);
/* The same for a tree already read (takes root, also on failure); `file`
 * names it in messages and its folder anchors "base_config". */
int exp_parse(cJSON *root, const char *file, int64_t max_points, experiment *out,
              sim_err *err);
/* The same with the command line's --set assignments (borrowed: they must
 * outlive the experiment), applied to the base config after the file's
 * "set"; a bad one, or one of a swept path, is named "command line --set
 * ...". */
int exp_load_sets(const char *path, char *const *sets, int n_sets, int64_t max_points,
                  experiment *out, sim_err *err);
int exp_parse_sets(cJSON *root, const char *file, char *const *sets, int n_sets,
                   int64_t max_points, experiment *out, sim_err *err);
void exp_fini(experiment *e);

/* Builds point i's effective config (points[i].config_json) and checks it
 * by building its cluster, unless that is done already. Messages start with
 * the file and the point's assignments: "exp.json: point 1
 * (policies.routing.name=\"bogus\", seed=5): $.policies.routing.name: ...". */
int exp_point_prepare(experiment *e, int64_t i, sim_err *err);
/* Frees point i's config (exp_point_prepare builds it again). */
void exp_point_release(experiment *e, int64_t i);
/* exp_point_prepare for every point, in order (small sweeps, tests). */
int exp_prepare_all(experiment *e, sim_err *err);

/* Canonical JSON of v (object keys sorted, no spaces); caller frees. */
char *exp_canonical_json(const cJSON *v);

#endif
