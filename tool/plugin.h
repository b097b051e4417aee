/* Policies by their config names: a built-in ("sjf", policies/registry.h) or
 * a plugin's ("mylib:my_sjf", a shared object loaded at run time; the ABI is
 * api/plugin.h). The tool's config reader resolves every policy name here.
 *
 * "lib:policy" loads lib once per process: lib is a path when it contains a
 * '/' or ends in ".so", else the file lib<lib>.so found on the search path
 * ($SERVESIM_PLUGIN_PATH, colon-separated; ./plugins; the build's plugin
 * folder, build/plugins; the installed lib/servesim/plugins). Loading checks
 * the ABI version symbol before calling anything of the plugin (only its ELF
 * constructors, if any, run at dlopen), then the descriptor its entry point
 * returns, and
 * refuses another major version, a newer minor, a missing symbol, or ops
 * without their hooks, with a message naming the file and what was expected.
 *
 * Loaded libraries are process state, as dlopen's own table is: they stay
 * loaded until the process exits, so the sweep's forked workers inherit what
 * the parent loaded while it checked the configs, and ops pointers never
 * dangle. The list is kept here (the only mutable file-scope state of the
 * tool besides signal handling) and reported in results files. */
#ifndef TOOL_PLUGIN_H
#define TOOL_PLUGIN_H

#include "api/plugin.h"

/* The policy named `name` (a built-in or "lib:policy"), or NULL with a
 * message that starts with `path` (the name's JSON path). */
const batch_policy_ops *plugin_batch_find(const char *name, const char *path, sim_err *err);
const order_policy_ops *plugin_order_find(const char *name, const char *path, sim_err *err);
const route_policy_ops *plugin_route_find(const char *name, const char *path, sim_err *err);
const control_policy_ops *plugin_control_find(const char *name, const char *path,
                                              sim_err *err);
/* ABI 1.1's families: eviction (policies.eviction.name and a KV tier's
 * `eviction`), autoscaling (policies.scale.name), KV retention
 * (policies.retention.name). */
const evict_policy_ops *plugin_evict_find(const char *name, const char *path, sim_err *err);
const scale_policy_ops *plugin_scale_find(const char *name, const char *path, sim_err *err);
const retain_policy_ops *plugin_retain_find(const char *name, const char *path,
                                            sim_err *err);

/* One loaded library. */
typedef struct plugin_lib {
    char *path;                 /* resolved (realpath) */
    char sha256[65];            /* of the file, hex */
    servesim_plugin desc;       /* the plugin's descriptor, host-sized */
    /* Host-sized copies of the plugin's ops (what the host hands on). */
    batch_policy_ops *batch;
    order_policy_ops *order;
    route_policy_ops *route;
    control_policy_ops *control;
    int32_t n_batch, n_order, n_route, n_control;
    /* ABI 1.1 (none for a 1.0 plugin). */
    evict_policy_ops *evict;
    scale_policy_ops *scale;
    retain_policy_ops *retain;
    int32_t n_evict, n_scale, n_retain;
} plugin_lib;

/* Loads `lib` (a name or path, as above) or returns the one already loaded;
 * *out is valid while the process runs. */
int plugin_load(const char *lib, const plugin_lib **out, sim_err *err);

/* The libraries loaded so far, in load order (for results files). */
int32_t plugin_count(void);
const plugin_lib *plugin_get(int32_t i);
/* The loaded libraries as JSON text: [{"path", "name", "version", "abi",
 * "sha256"}, ...] ("[]" when none); caller frees. */
char *plugin_loaded_json(void);
/* The same for the loaded libraries that the config (JSON text) names in a
 * "name": "lib:policy", or NULL when it names none: what a results file
 * records. Caller frees. */
char *plugin_used_json(const char *config_json);

/* The host table every plugin receives. */
const servesim_host_api *plugin_host_api(void);

#endif
