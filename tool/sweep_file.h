/* The sweep's results file (schema in experiments/README.md): one HDF5
 * file holding the index table (one row per point: id, swept values, seed,
 * status and every /summary column) and, per complete point, the group
 * /points/<id> with that point's run file inside (requests, summary, time
 * series, config). Written whole as "<out>.partial", which sweep.c then
 * renames into place like a run's file, from the points' durable copies. */
#ifndef SERVE_SWEEP_FILE_H
#define SERVE_SWEEP_FILE_H

#include "tool/experiment.h"

typedef enum sweep_status {
    SWEEP_PENDING = 0,    /* not run yet (or interrupted) */
    SWEEP_COMPLETE = 1,
    SWEEP_FAILED = 2,
    SWEEP_INFEASIBLE = 3, /* its config cannot be built (sweep --skip-infeasible) */
} sweep_status;

/* Where a point stands and where its data is. */
typedef struct sweep_point_state {
    sweep_status status;
    const char *src_file;    /* complete: the file holding its data */
    char src_group[64];      /* and the group: "/" in a point's own file,
                              * "/points/<id>" in an earlier results file */
    char *error;             /* failed or infeasible: why (owned) */
} sweep_point_state;

/* An earlier results file or a point's stored file, open for reading. */
typedef struct sweep_reader sweep_reader;

/* NULL when there is no readable HDF5 file at path. */
sweep_reader *sweep_reader_open(const char *path);
/* The effective config of the complete point in `group` ("/" in a point's
 * own file, "/points/<id>" in a results file), or NULL if the group holds
 * no complete point. Caller frees. */
char *sweep_reader_config(sweep_reader *r, const char *group);
void sweep_reader_close(sweep_reader *r);

/* Writes the results file for every point of e into `partial` (created or
 * truncated); `out`, the final name, is what messages name. The caller
 * renames it into place (outpath_commit). */
int sweep_file_write(const experiment *e, const char *out, const char *partial,
                     const sweep_point_state *st, sim_err *err);

#endif
