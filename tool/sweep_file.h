/* The sweep's results file (schema in experiments/README.md): one HDF5
 * file holding the index table (one row per point: id, swept values, seed,
 * status and every /summary column) and, per complete point, the group
 * /points/<id> with that point's run file inside (requests, summary, time
 * series, config). Written whole as "<out>.partial" and renamed into place,
 * like a run's file, from the points' durable copies (sweep.c). */
#ifndef SERVE_SWEEP_FILE_H
#define SERVE_SWEEP_FILE_H

#include "tool/experiment.h"

typedef enum sweep_status {
    SWEEP_PENDING = 0,    /* not run yet (or interrupted) */
    SWEEP_COMPLETE = 1,
    SWEEP_FAILED = 2,
} sweep_status;

/* Where a point stands and where its data is. */
typedef struct sweep_point_state {
    sweep_status status;
    const char *src_file;    /* complete: the file holding its data */
    char src_group[64];      /* and the group: "/" in a point's own file,
                              * "/points/<id>" in an earlier results file */
    char *error;             /* failed: why (owned) */
} sweep_point_state;

/* Whether `group` of the HDF5 file at `file` holds a complete point whose
 * effective config is config_json: 1 yes, 0 no such complete point (or no
 * readable file), -1 a point made from another config (err says so: the
 * experiment changed under the same results file). */
int sweep_file_has_point(const char *file, const char *group, const char *config_json,
                         sim_err *err);

/* Writes the results file for every point of e. */
int sweep_file_write(const experiment *e, const char *out, const sweep_point_state *st,
                     sim_err *err);

#endif
