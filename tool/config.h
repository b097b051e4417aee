/* The run config: one JSON file (see experiments/README.md for every key),
 * optionally edited by --set path=value assignments. Parsing checks types,
 * ranges and unknown keys and fills in defaults, so that after a cluster is
 * created from it, `root` is the exact effective config of the run. */
#ifndef TOOL_CONFIG_H
#define TOOL_CONFIG_H

#include "serve/cluster.h"

typedef struct run_config {
    cJSON *root;                 /* owned; the effective config */
    cluster_setup sys;           /* what the simulated system is built from */
    pool_setup *pools;           /* owned; sys.pools points here */
} run_config;

/* Reads `path`, applies the assignments, parses. Messages start with the
 * file name, or "--set ..." for a bad assignment or a value it set
 * (jcfg_err_source). */
int run_config_load(const char *path, char *const *sets, int n_sets,
                    run_config *out, sim_err *err);
/* Parses a tree (takes ownership of root, also on failure). */
int run_config_parse(cJSON *root, run_config *out, sim_err *err);
void run_config_fini(run_config *cfg);

#endif
