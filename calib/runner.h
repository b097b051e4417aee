/* Running a plan: which entries to measure, point by point, against a
 * time limit, writing the table as it goes. The GPU is a backend (a table
 * of callbacks): the CUDA program's real one, the stub program's simulated
 * one (calib/stub.c, for dry runs of calib/h200_run.sh), or a test's.
 *
 * Contract: the table at `out` is valid (the loader accepts it) from the
 * first write on, whatever stops the run: the end of the plan, the time
 * limit, a signal, a fatal device error (the run writes it and returns),
 * or a kill (the table written last, at most flush_every_s old, stays). A
 * point the backend cannot measure is skipped (null in the table) and the
 * run goes on. Plain C. */
#ifndef CALIB_RUNNER_H
#define CALIB_RUNNER_H

#include <signal.h>
#include <stdio.h>
#include "calib/table_writer.h"

typedef enum calib_point_status {
    CALIB_POINT_OK = 0,
    CALIB_POINT_SKIPPED = 1,   /* this point cannot be measured (why); go on */
    CALIB_POINT_FATAL = -1     /* the device is unusable (why); stop */
} calib_point_status;

typedef struct calib_backend {
    void *self;
    double (*now_s)(void *self);
    /* Measures point `point` (coordinates x) of plan entry `entry`, with
     * power when want_power; returns a calib_point_status. */
    int (*measure)(void *self, const calib_plan *plan, int entry, int point, const double *x,
                   int want_power, calib_point_result *r, char *why, size_t why_n);
    /* Clocks, temperature and limits now (info->after); NULL: not read. */
    void (*gpu_state)(void *self, calib_gpu_state *out);
} calib_backend;

typedef struct calib_runner_opts {
    unsigned families;        /* bit mask over ctab_family; 0: every family */
    const char *models;       /* comma-separated; entries one of them uses; NULL: all */
    int start_entry;          /* resume: entries before this plan index are left out */
    double t_start_s;         /* the backend's clock when the program started */
    double time_limit_s;      /* no point starts after t_start_s + this; <= 0: none */
    double flush_every_s;     /* rewrite the table at least this often (and after an
                               * entry when a quarter of it has passed) */
    const char *out;          /* table path */
    const char *status;       /* status file path, or NULL */
    const volatile sig_atomic_t *stop;   /* set (by a signal): stop before the next point */
    FILE *log;                /* one line per entry; NULL: quiet */
} calib_runner_opts;

typedef struct calib_runner {
    const calib_plan *plan;
    calib_runner_opts o;
    calib_run_info *info;          /* borrowed: families, state, resume_entry kept current */
    calib_point_result **res;      /* res[i][point] for plan entry i */
    unsigned started;              /* families with an entry begun (written to the table) */
    int entries_selected, entries_done;
    int points_measured, points_skipped;
    char state[16];                /* as info->state */
    char error[512];               /* why a run failed or stopped */
    int resume;                    /* the entry in progress, or the next one; -1 none */
    double last_flush_s;
} calib_runner;

/* Sets up a run (allocates the results, all NAN); `info` must outlive it. */
void calib_runner_init(calib_runner *r, const calib_plan *plan, const calib_runner_opts *o,
                       calib_run_info *info);
void calib_runner_fini(calib_runner *r);

/* Measures the selected entries. Returns 0 when all were measured, 1 when
 * the time limit or the stop flag cut the run short, -1 after a fatal
 * point or a failed write (err says which). The table and status were
 * written before it returns. */
int calib_runner_run(calib_runner *r, const calib_backend *be, sim_err *err);

/* Writes the table and the status file now, as `state` (NULL: the run's
 * current one). The CUDA program calls it after its last idle-power
 * reading, and from its error exit with "failed". */
int calib_runner_flush(calib_runner *r, const calib_backend *be, const char *state,
                       sim_err *err);

/* The status file's text: key=value lines (state, families, counts,
 * resume_entry, error), read by calib/h200_run.sh. */
void calib_runner_status_text(const calib_runner *r, double now_s, char *out, size_t size);

/* "gemm,norm" as a bit mask over ctab_family; NULL or "" is every family.
 * An unknown name is an error that lists the valid ones. */
int calib_family_mask(const char *list, unsigned *mask, sim_err *err);
/* Whether entry e is measured under the family mask and model list. */
int calib_entry_selected(const calib_entry *e, unsigned families, const char *models);

#endif
