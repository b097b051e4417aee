/* Running one config to completion into a results file: what `servesim run`
 * does for its config and the sweep workers do for each point. */
#ifndef SERVE_RUNNER_H
#define SERVE_RUNNER_H

#include "tool/config.h"
#include "serve/metrics.h"

/* What run_to_file returns; also the command line's exit statuses. */
enum { RUN_OK = 0, RUN_FAILED = 1, RUN_BAD_INPUT = 2 };

typedef struct run_result {
    run_summary summary;        /* wall time and peak RSS included */
    char cost_sources[64];      /* see cluster_cost_sources */
    char workload_note[512];    /* see cluster_workload_note; may be empty */
    char moves_note[1024];      /* see disagg_moves_note; may be empty */
} run_result;

/* Where a config came from, for messages: a file edited by --set
 * assignments (jcfg_err_source). */
typedef struct run_source {
    const char *file;
    char *const *sets;
    int n_sets;
} run_source;

/* Simulates cfg and, when out_path is not NULL, writes its results file
 * (atomically, refusing to write over an input: see output.h). RUN_BAD_INPUT
 * when the cluster cannot be built from cfg or the file cannot be opened;
 * RUN_FAILED when the run itself fails. Messages about cfg name their source
 * when src is given. */
int run_to_file(const run_config *cfg, const run_source *src, const char *out_path,
                run_result *out, sim_err *err);

/* The default results file of a config: results/<stem>.h5 for a/b/<stem>.json. */
void run_default_out(const char *config_path, char *buf, size_t size);

#endif
