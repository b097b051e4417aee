/* Sweeps over MPI ranks (servesim-mpi, built by `make mpi` with
 * -DSERVESIM_MPI). Rank 0 coordinates: it reads the experiment, hands out
 * points one by one (two queued per worker rank, so none waits for the
 * next), receives each finished point's results file as bytes and stores it
 * through the same partial-then-rename path as local workers, and runs
 * points itself on a second thread. Other ranks only run the points they are
 * sent (config as JSON text) in a private temporary file, so no file system
 * needs to be shared; they need the same models/ folder as rank 0.
 *
 * Without SERVESIM_MPI every function is a stub: size 1, rank 0, and
 * sweep_mpi_run fails. */
#ifndef SERVE_SWEEP_MPI_H
#define SERVE_SWEEP_MPI_H

#include "tool/workers.h"

/* Initialises MPI (a no-op without it); returns this process's rank. */
int sweep_mpi_init(int *argc, char ***argv);
int sweep_mpi_size(void);
/* Whether this build has MPI and more than one rank. */
int sweep_mpi_enabled(void);
/* Rank 0: tells every worker rank to stop; all ranks: finalises MPI. */
void sweep_mpi_finish(void);
/* Ranks > 0: runs points until rank 0 says stop. */
void sweep_mpi_worker(void);
/* Rank 0: runs jobs over the ranks (itself included), as workers_run does. */
int sweep_mpi_run(const workers_job *jobs, int64_t n, workers_done_fn done, void *ctx,
                  sim_err *err);

#endif
