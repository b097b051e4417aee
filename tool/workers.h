/* Running points (run configs) in parallel worker processes on this
 * machine: what `servesim sweep` and `servesim capacity` use on one host,
 * and what an MPI rank uses for the points it runs itself.
 *
 * Workers are forked once and each runs one job at a time, asking for the
 * next as soon as it is done (dynamic distribution, so a slow point does not
 * hold up the rest). A job's results file is written by the worker through
 * the results writer, so it appears under its final name only when whole.
 * A worker that dies (a crash, a signal) fails its job and is replaced.
 * Workers die with the parent (Linux parent-death signal), so a killed sweep
 * leaves no stray processes. Runs are deterministic, so which worker runs a
 * job never changes its results. */
#ifndef TOOL_WORKERS_H
#define TOOL_WORKERS_H

#include "serve/metrics.h"

typedef struct workers_job {
    const char *config_json;   /* an effective run config */
    const char *out_path;      /* its results file, or NULL for none */
} workers_job;

typedef struct workers_result {
    int status;                /* 0 ok, -1 failed (msg says why) */
    run_summary summary;       /* when status is 0 */
    char msg[1024];
} workers_result;

/* Called in the parent as each job finishes, in completion order. */
typedef void (*workers_done_fn)(void *ctx, int64_t job, const workers_result *r);

/* Runs one config in this process: parses it, simulates it and, if
 * out_path is not NULL, writes its results file (run's layout). */
int workers_run_point(const char *config_json, const char *out_path, run_summary *s,
                   sim_err *err);

/* workers_run's results other than 0. */
enum { WORKERS_ERROR = -1, WORKERS_INTERRUPTED = -2 };

/* Runs jobs[0..n) on `workers` processes (capped at n) and calls done
 * exactly once for each. Returns 0 once every job has reported;
 * WORKERS_INTERRUPTED when a terminating signal (SIGINT, SIGTERM, SIGHUP,
 * ...: outpath.h's list) arrived meanwhile: the workers are then stopped
 * (their partial files removed), the jobs not reported are not run, and err
 * says "interrupted by SIGHUP"; WORKERS_ERROR (with err) when a worker
 * cannot be started. */
int workers_run(const workers_job *jobs, int64_t n, int workers, workers_done_fn done, void *ctx,
             sim_err *err);

/* One worker per online core. */
int workers_default_workers(void);

#endif
