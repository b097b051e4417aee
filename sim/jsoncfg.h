/* Reading JSON configs strictly: every value is checked for type and range,
 * every object for unknown keys, and every message names the JSON path
 * ("$.workload.arrival.rate_per_s: expected a number > 0, got -3").
 *
 * Missing optional keys are added to the object with their default, so the
 * tree, once read, is the exact effective config that a run records. */
#ifndef SIM_JSONCFG_H
#define SIM_JSONCFG_H

#include <math.h>
#include <stdbool.h>
#include <cjson/cJSON.h>
#include "sim/base.h"

/* Pass as default for a key that must be present. */
#define JCFG_REQUIRED_NUM NAN
#define JCFG_REQUIRED_INT INT64_MIN
#define JCFG_REQUIRED_STR NULL

/* Largest JSON file jcfg_load_file reads (configs, experiments, model and
 * GPU files, cost tables), and deepest nesting of arrays and objects. */
#define JCFG_MAX_FILE_BYTES (64 << 20)
#define JCFG_MAX_DEPTH 64

/* Parses text; a syntax error names file:line:column. Also rejected, with
 * their place: nesting deeper than JCFG_MAX_DEPTH, a \u0000 escape in a
 * string (it would cut the string), duplicate keys, numbers beyond a
 * double's range (1e999). Caller owns *out. */
int jcfg_parse(const char *text, const char *file, cJSON **out, sim_err *err);
/* Reads and parses a file of at most JCFG_MAX_FILE_BYTES without a NUL
 * byte (a pipe or device is read only up to the limit). */
int jcfg_load_file(const char *path, cJSON **out, sim_err *err);

/* Fails unless obj is an object whose keys are all in `allowed` (a
 * NULL-terminated list); the message lists the allowed keys. */
int jcfg_check_keys(const cJSON *obj, const char *path,
                    const char *const *allowed, sim_err *err);

/* Typed getters. `path` is obj's own path; messages name path.key. */
int jcfg_num(cJSON *obj, const char *path, const char *key, double def,
             double min, double max, double *out, sim_err *err);
int jcfg_int(cJSON *obj, const char *path, const char *key, int64_t def,
             int64_t min, int64_t max, int64_t *out, sim_err *err);
int jcfg_bool(cJSON *obj, const char *path, const char *key, int def,
              bool *out, sim_err *err);   /* def: 0, 1, or -1 = required */
/* *out points into the tree. */
int jcfg_str(cJSON *obj, const char *path, const char *key, const char *def,
             const char **out, sim_err *err);
/* The child object at key, created empty if missing; fails if not an
 * object. The child's path is written to child_path (size >= 256). */
int jcfg_obj(cJSON *obj, const char *path, const char *key, cJSON **out,
             char *child_path, sim_err *err);

/* Applies "a.b.c=value" to the tree: value is parsed as JSON when it is valid
 * JSON, else taken as a string; a JSON value gets jcfg_parse's checks, and a
 * value starting with {, [ or " must be valid JSON. Intermediate objects
 * must exist or are created; the final key may be new (validation then
 * rejects unknown keys). */
int jcfg_set(cJSON *root, const char *assignment, sim_err *err);

/* Names the source of a message about a config read from `file` and edited
 * by the assignments sets[0..n_sets): when the message starts with a JSON
 * path at or under an assignment's key path ("$.cluster.tp: ..." after
 * cluster.tp=...), the last such assignment ("command line --set
 * cluster.tp=0: $.cluster.tp: ..."), else the file (if not NULL). Returns
 * -1. */
int jcfg_err_source(sim_err *err, const char *file, char *const *sets, int n_sets);

#endif
