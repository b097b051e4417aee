/* Sweeps: run every point of an experiment, in parallel, resumably, into
 * one results file (schema: experiments/README.md).
 *
 * Durability. Each point is first written whole to its own file,
 * "<out>.d/<id>.h5", by the results writer (partial file, then rename), so
 * a point exists there only once all its data is on disk. That folder is
 * the sweep's durable store: a crash, Ctrl-C or kill -9 at any moment loses
 * at most the points being run. Resuming means skipping every point whose
 * file is there (or, after a finished sweep has removed the folder, whose
 * group is complete in the results file), after checking that it was run
 * from the same effective config. The results file is then rebuilt from
 * those copies, atomically; once every point is complete the folder is
 * removed.
 *
 * Safety. The results file is checked and locked before anything else
 * (outpath.h): a second sweep or run on the same file stops at once.
 *
 * Parallelism. On one machine, forked worker processes (workers.h); built
 * with MPI (servesim-mpi), MPI ranks (sweep_mpi.h): the coordinator (rank
 * 0) alone touches the store and the results file, so the ranks need no
 * shared file system. Both give the same file as one process would: runs
 * are deterministic and the file is assembled in point order. */
#ifndef SERVE_SWEEP_H
#define SERVE_SWEEP_H

#include "tool/experiment.h"

typedef struct sweep_opts {
    const char *out;       /* the results file */
    int jobs;              /* local worker processes; <= 0: one per core */
    int64_t limit;         /* run at most this many points now; 0: all */
    int quiet;             /* no progress line and no notes on stderr (failed
                            * points are reported all the same) */
    int mpi;               /* distribute over MPI ranks (servesim-mpi) */
    int skip_infeasible;   /* a point whose config cannot be built (70B at
                            * tp=1) is recorded infeasible, with the reason
                            * in /index, and the sweep goes on; else the
                            * sweep stops there as bad input */
    /* Tuning and test seams; 0 or NULL: the defaults. */
    int64_t batch_points;  /* configs built and held at once (SWEEP_BATCH_POINTS) */
    int64_t progress_points;   /* checking this many configs shows progress
                                * (SWEEP_PROGRESS_POINTS) */
    /* Called once every point has run, with the terminating signals held
     * back, just before the results file is written (tests send a signal
     * there). */
    void (*before_finish)(void *ctx);
    void *before_finish_ctx;
} sweep_opts;

/* The defaults of batch_points and progress_points. */
#define SWEEP_BATCH_POINTS 10000
#define SWEEP_PROGRESS_POINTS 1000

typedef struct sweep_stats {
    int64_t points;        /* in the experiment */
    int64_t skipped;       /* already complete when the sweep started */
    int64_t ran;           /* run now, complete */
    int64_t failed;        /* run now, failed */
    int64_t pending;       /* not run: past --limit */
    int64_t infeasible;    /* skipped: their configs cannot be built */
    int signal;            /* a terminating signal that came while the results
                            * file was being written (it was finished first) */
    double wall_s;
} sweep_stats;

/* sweep_run's results other than 0. */
enum { SWEEP_ERROR = -1, SWEEP_INTERRUPTED = -2, SWEEP_BAD_INPUT = -3 };

/* Runs the points not complete yet and writes the results file. Returns 0
 * once the file is written (stats say whether every point is complete and
 * whether a signal came during the last step); SWEEP_BAD_INPUT with err when
 * the results file cannot be written there (a folder, a device, an input,
 * another sweep's) or a point's config is not valid; SWEEP_INTERRUPTED with
 * err when a terminating signal stopped it (then nothing is written but the
 * points that completed, which the next run keeps); SWEEP_ERROR otherwise.
 * Points' configs are built in e as they are needed (exp_point_prepare). */
int sweep_run(experiment *e, const sweep_opts *o, sweep_stats *st, sim_err *err);

/* The store folder of a results file: "<out>.d"; caller frees. */
char *sweep_store_path(const char *out);

#endif
