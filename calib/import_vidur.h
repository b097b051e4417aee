/* Importing Vidur's public measured profiles (../shared/profiles/vidur/,
 * MIT licence) into servesim cost tables, checking them, and fitting the
 * fallback model on them. `calib-tool import-vidur` is the command line;
 * the tests call these functions directly. See calib/README.md, "Imported
 * tables". */
#ifndef CALIB_IMPORT_VIDUR_H
#define CALIB_IMPORT_VIDUR_H

#include <stdio.h>

#include "models/fallback.h"
#include "models/model.h"

typedef struct vidur_opts {
    const char *src;          /* the profiles folder (compute/, network/) */
    const char *out_dir;      /* where <GPU name>.json tables go; NULL: none */
    const char *models_dir;   /* servesim's models/ (GPU files) */
} vidur_opts;

/* Reads every profile under opts->src, writes one table per GPU to
 * opts->out_dir, and prints what it did, the leave-one-out error per family
 * and the error of the tables on every raw measurement to `log`. The tables
 * written are listed (paths) in tables[0..*n_tables). */
#define VIDUR_MAX_TABLES 8
int vidur_import(const vidur_opts *opts, FILE *log, char tables[][1024], int *n_tables,
                 sim_err *err);

/* Writes the table JSON of one GPU directory ("a100", "h100", "a40") into
 * a string (for the up-to-date test); caller frees it. NULL with err set on
 * failure, or with err->msg empty when the folder has no profile of that
 * GPU. */
char *vidur_table_text(const vidur_opts *opts, const char *gpu_dir, sim_err *err);

/* Fitting the fallback model (models/fallback.h) on tables: every measured
 * point of the GEMM, elementwise and attention families becomes one
 * operator; constants minimise the mean |log(predicted / measured)|. */
typedef struct fit_set fit_set;
fit_set *fit_set_load(const char *const *tables, int n, const char *models_dir,
                      sim_err *err);
void fit_set_destroy(fit_set *s);

/* Which points a fit or an evaluation uses: the GPUs (table GPU names;
 * NULL: all) and the models (Vidur model names in the entries' used_by;
 * NULL: all). A point is in a model selection when one of the models using
 * its entry is selected, and out of it (held out) when none is. */
typedef struct fit_sel {
    const char *gpus;         /* comma-separated */
    const char *models;       /* comma-separated */
    int exclude_models;       /* 1: the points whose models are all outside `models` */
} fit_sel;

/* The constants every fit of the importer starts from. */
extern const fb_params vidur_fit_start;

/* Fits p (starting from and defaulting to *p) on the selected points. */
void fit_run(const fit_set *s, const fit_sel *sel, fb_params *p);

/* Median |error| and median signed error of p on the selected points, per
 * class (0 GEMM, 1 elementwise, 2 attention, 3 all); n points each. */
typedef struct fit_err {
    double median_abs[4], median[4];
    int n[4];
} fit_err;
void fit_eval(const fit_set *s, const fit_sel *sel, const fb_params *p, fit_err *out);

/* Collective constants of one GPU from its allreduce entries: latency (ns),
 * per extra rank (ns) and link efficiency. Returns the points used. */
int fit_collectives(const fit_set *s, const char *gpu, double *latency_ns,
                    double *rank_ns, double *link_eff, double *median_abs);

/* Writes models/fallback_fit.h for p. */
int fit_write_header(const char *path, const fb_params *p, const char *provenance,
                     sim_err *err);

/* The command: calib-tool import-vidur [--src DIR] [--out DIR] [--fit FILE]. */
int vidur_main(int argc, char **argv);

#endif
