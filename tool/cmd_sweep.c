/* `servesim sweep EXP.json [-j N] [--out results.h5] [--limit N] [--force]
 * [--quiet]`: runs every point of an experiment (sweep.h). Under mpirun
 * (servesim-mpi) rank 0 runs this command and the other ranks serve it
 * points.
 *
 * Exit status: 0 the results file is written and no point failed; 1 some
 * point failed (the results file is written, with those points marked
 * failed) or the sweep could not run; 2 bad usage, a bad experiment or a
 * results file that cannot be written there; 130 interrupted (rerun the
 * same command to finish), also when the signal came while the results
 * file was being finished (it is then complete, and the message says so). */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool/args.h"
#include "tool/cmd_sweep.h"
#include "tool/outpath.h"
#include "tool/runinfo.h"
#include "tool/runner.h"
#include "tool/sweep.h"
#include "tool/sweep_mpi.h"

static const char sweep_usage[] =
    "usage: servesim sweep EXP.json [-j N] [--set path=value ...] [--out results.h5] [--limit N]\n"
    "                [--skip-infeasible] [--force] [--quiet]\n"
    "\n"
    "  --set path=value  override a value of the base config at every point, after the\n"
    "                file's \"set\" (e.g. --set workload.requests=500 for a quick run);\n"
    "                a swept path cannot be set (repeatable)\n"
    "  -j N          worker processes, 1 to 4096 (default: one per core; under mpirun,\n"
    "                one per rank)\n"
    "  --out FILE    results file (HDF5); default results/<experiment name>.h5.\n"
    "                Points are kept in FILE.d/ until all are complete; rerunning\n"
    "                the same command skips the points already complete\n"
    "  --limit N     run at most N of the points still to run, then write the file\n"
    "  --force       accept a sweep of more than 100000 points (up to 1000000)\n"
    "  --skip-infeasible  a point whose config cannot be built (a model that does not\n"
    "                fit at that tp) is recorded as infeasible, with the reason in /index,\n"
    "                and the sweep goes on (default: the sweep stops at it)\n"
    "  --quiet       print nothing but errors (failed points included)\n";

static int sweep_parse_count(const char *flag, const char *v, int64_t max, int64_t *out)
{
    sim_err err;
    if (args_int(flag, v, 1, max, out, &err)) {
        fprintf(stderr, "servesim sweep: %s\n%s", err.msg, sweep_usage);
        return -1;
    }
    return 0;
}

typedef struct sweep_args {
    const char *file, *out;
    int64_t jobs, limit;
    int quiet, force, skip_infeasible;
    char **sets;          /* argc + 1 slots */
    int n_sets;
} sweep_args;

/* The arguments into *a; -1 when they are fine, else the exit status. */
static int sweep_parse(int argc, char **argv, sweep_args *a)
{
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-j") && i + 1 < argc) {
            if (sweep_parse_count("-j", argv[++i], 4096, &a->jobs))
                return 2;
        } else if (!strncmp(argv[i], "-j", 2) && argv[i][2]) {
            if (sweep_parse_count("-j", argv[i] + 2, 4096, &a->jobs))
                return 2;
        } else if (!strcmp(argv[i], "--limit") && i + 1 < argc) {
            if (sweep_parse_count("--limit", argv[++i], INT64_MAX, &a->limit))
                return 2;
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            a->out = argv[++i];
        } else if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            a->sets[a->n_sets++] = argv[++i];
        } else if (!strcmp(argv[i], "--force")) {
            a->force = 1;
        } else if (!strcmp(argv[i], "--quiet")) {
            a->quiet = 1;
        } else if (!strcmp(argv[i], "--skip-infeasible")) {
            a->skip_infeasible = 1;
        } else if (argv[i][0] == '-' || a->file) {
            fprintf(stderr, "servesim sweep: unexpected argument '%s'\n%s", argv[i], sweep_usage);
            return 2;
        } else {
            a->file = argv[i];
        }
    }
    if (!a->file) {
        fprintf(stderr, "servesim sweep: missing EXP.json\n%s", sweep_usage);
        return 2;
    }
    return -1;
}

static int sweep_main(const sweep_args *a)
{
    if (sweep_mpi_init(NULL, NULL) > 0) {
        sweep_mpi_worker();
        sweep_mpi_finish();
        return 0;
    }

    char out_buf[4096];
    const char *out = a->out;
    if (!out) {
        run_default_out(a->file, out_buf, sizeof out_buf);
        out = out_buf;
    }
    sim_err err = {{0}};
    experiment e;
    /* sweep_run checks the results file's path before any point is checked
     * or run: a folder or a device there is known at once. */
    if (exp_load_sets(a->file, a->sets, a->n_sets,
                      a->force ? EXP_MAX_POINTS_FORCED : EXP_MAX_POINTS, &e, &err)) {
        fprintf(stderr, "servesim: error: %s\n", err.msg);
        sweep_mpi_finish();
        return 2;
    }
    /* Arrival times that replace a trace's own: said before the runs. */
    char warning[1024];
    bool warned = runinfo_trace_arrival_warning(e.base, a->sets, a->n_sets, NULL, warning,
                                                sizeof warning);
    for (int32_t p = 0; !warned && p < e.n_params; p++)
        warned = runinfo_trace_arrival_warning(e.base, NULL, 0, e.params[p].path, warning,
                                               sizeof warning);
    if (warned)
        fputs(warning, stderr);
    sweep_opts o = {.out = out, .jobs = (int)a->jobs, .limit = a->limit, .quiet = a->quiet,
                    .mpi = sweep_mpi_enabled(), .skip_infeasible = a->skip_infeasible};
    sweep_stats st;
    int rc = sweep_run(&e, &o, &st, &err);
    exp_fini(&e);
    sweep_mpi_finish();
    if (rc) {
        fprintf(stderr, "servesim: error: %s\n", err.msg);
        return rc == SWEEP_INTERRUPTED ? 130 : rc == SWEEP_BAD_INPUT ? 2 : 1;
    }
    if (!a->quiet) {
        printf("sweep: %lld points: %lld run now, %lld already complete, %lld failed, "
               "%lld left to run", (long long)st.points, (long long)st.ran,
               (long long)st.skipped, (long long)st.failed, (long long)st.pending);
        if (a->skip_infeasible)
            printf(", %lld infeasible (skipped; reasons in /index)", (long long)st.infeasible);
        printf("; %.2f s\n", st.wall_s);
        printf("  results  %s\n", out);
    }
    if (st.signal) {
        fprintf(stderr, "servesim: sweep: %s came while the results file was being "
                "finished; it was finished first: %s is complete%s\n",
                outpath_signal_name(st.signal), out,
                st.failed || st.pending ? " (with the points that ran; the store is kept "
                "for the rest: run the same command again)" : " and the store removed");
        return 130;
    }
    return st.failed ? 1 : 0;
}

int cmd_sweep(int argc, char **argv)
{
    if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        fputs(sweep_usage, stdout);
        return 0;
    }
    sweep_args a = {.sets = sim_xcalloc((size_t)argc + 1, sizeof(char *))};
    int status = sweep_parse(argc, argv, &a);
    if (status < 0)
        status = sweep_main(&a);
    free(a.sets);
    return status;
}
