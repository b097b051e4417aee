/* `servesim sweep EXP.json [-j N] [--out results.h5] [--limit N] [--quiet]`:
 * runs every point of an experiment (sweep.h). Under mpirun (servesim-mpi)
 * rank 0 runs this command and the other ranks serve it points.
 *
 * Exit status: 0 the results file is written and no point failed; 1 some
 * point failed (the results file is written, with those points marked
 * failed) or the sweep could not run; 2 bad usage or bad experiment; 130
 * interrupted (rerun the same command to finish). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool/cmd_sweep.h"
#include "tool/runner.h"
#include "tool/sweep.h"
#include "tool/sweep_mpi.h"

static const char sweep_usage[] =
    "usage: servesim sweep EXP.json [-j N] [--out results.h5] [--limit N] [--quiet]\n"
    "\n"
    "  -j N          worker processes (default: one per core; under mpirun, one per rank)\n"
    "  --out FILE    results file (HDF5); default results/<experiment name>.h5.\n"
    "                Points are kept in FILE.d/ until all are complete; rerunning\n"
    "                the same command skips the points already complete\n"
    "  --limit N     run at most N of the points still to run, then write the file\n"
    "  --quiet       print nothing but errors\n";

static int sweep_parse_count(const char *flag, const char *v, int64_t *out)
{
    char *end;
    long long n = strtoll(v, &end, 10);
    if (*v == 0 || *end || n < 1) {
        fprintf(stderr, "servesim sweep: %s: expected a positive integer, got '%s'\n%s", flag,
                v, sweep_usage);
        return -1;
    }
    *out = n;
    return 0;
}

int cmd_sweep(int argc, char **argv)
{
    const char *file = NULL, *out = NULL;
    int64_t jobs = 0, limit = 0;
    int quiet = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-j") && i + 1 < argc) {
            if (sweep_parse_count("-j", argv[++i], &jobs))
                return 2;
        } else if (!strncmp(argv[i], "-j", 2) && argv[i][2]) {
            if (sweep_parse_count("-j", argv[i] + 2, &jobs))
                return 2;
        } else if (!strcmp(argv[i], "--limit") && i + 1 < argc) {
            if (sweep_parse_count("--limit", argv[++i], &limit))
                return 2;
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = 1;
        } else if (argv[i][0] == '-' || file) {
            fprintf(stderr, "servesim sweep: unexpected argument '%s'\n%s", argv[i], sweep_usage);
            return 2;
        } else {
            file = argv[i];
        }
    }
    if (!file) {
        fprintf(stderr, "servesim sweep: missing EXP.json\n%s", sweep_usage);
        return 2;
    }
    if (sweep_mpi_init(NULL, NULL) > 0) {
        sweep_mpi_worker();
        sweep_mpi_finish();
        return 0;
    }

    char out_buf[4096];
    if (!out) {
        run_default_out(file, out_buf, sizeof out_buf);
        out = out_buf;
    }
    sim_err err = {{0}};
    experiment e;
    if (exp_load(file, &e, &err)) {
        fprintf(stderr, "servesim: error: %s\n", err.msg);
        sweep_mpi_finish();
        return 2;
    }
    sweep_opts o = {.out = out, .jobs = (int)jobs, .limit = limit, .quiet = quiet,
                    .mpi = sweep_mpi_enabled()};
    sweep_stats st;
    int rc = sweep_run(&e, &o, &st, &err);
    exp_fini(&e);
    sweep_mpi_finish();
    if (rc) {
        fprintf(stderr, "servesim: error: %s\n", err.msg);
        return rc == SWEEP_INTERRUPTED ? 130 : 1;
    }
    if (!quiet) {
        printf("sweep: %lld points: %lld run now, %lld already complete, %lld failed, "
               "%lld left to run; %.2f s\n", (long long)st.points, (long long)st.ran,
               (long long)st.skipped, (long long)st.failed, (long long)st.pending, st.wall_s);
        printf("  results  %s\n", out);
    }
    return st.failed ? 1 : 0;
}
