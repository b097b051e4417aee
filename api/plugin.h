/* Plugins: policies built outside servesim, as shared objects it loads at
 * run time (tool/plugin.c). A plugin is one C file that includes this header
 * (and through it the family headers: api/batch.h, order.h, route.h,
 * control.h, and since ABI 1.1 evict.h, scale.h, retain.h) and nothing else of servesim; it links nothing of servesim
 * either. What it needs of the host (the strict config readers, error
 * messages, random streams, logging) arrives in a table, servesim_host_api,
 * as SQLite's extensions get sqlite3_api_routines.
 *
 * A plugin exports two symbols (SERVESIM_PLUGIN_ABI and an entry point):
 *
 *   #include "api/plugin.h"
 *   SERVESIM_PLUGIN_ABI;
 *   static const servesim_host_api *host;   // set by the entry point
 *   static const order_policy_ops my_sjf = {.name = "my_sjf", ...};
 *   static const order_policy_ops *const orders[] = {&my_sjf, NULL};
 *   SERVESIM_EXPORT const servesim_plugin *servesim_plugin_entry(const servesim_host_api *h)
 *   {
 *       static const servesim_plugin p = {SERVESIM_PLUGIN_HEADER, .name = "mylib",
 *                                         .version = "1.0", .order = orders};
 *       host = h;
 *       return &p;
 *   }
 *
 * built with `make plugin SRC=my.c` or `cc -O2 -fPIC -shared
 * -fvisibility=hidden $(pkg-config --cflags servesim-plugin) -o libmylib.so my.c`
 * and named in a config as "policies.order.name": "mylib:my_sjf"
 * (api/README.md).
 *
 * Versions. SERVESIM_ABI_MAJOR changes when a layout a plugin sees changes
 * incompatibly; the host refuses another major. SERVESIM_ABI_MINOR grows when
 * something is appended: fields at the end of an ops struct, a view, the
 * request (after wait_node) or the host table, or a new family. The host
 * loads a plugin of its own major and an older or equal minor: the plugin
 * says how large each family's ops struct was when it was built (the
 * *_ops_size fields, which SERVESIM_PLUGIN_HEADER fills in), and the host
 * reads only that much, the rest left NULL. A plugin that wants a field added
 * in minor n checks host->abi_minor >= n first (views and the host table only
 * ever grow at the end). Structs passed as arrays (inst_view, batch_item)
 * cannot grow without a new major: a plugin indexes them with its own
 * stride. tests/test_plugin.c freezes the version-1 layouts; a change it
 * catches is either moved to the end of its struct or made a new major.
 *
 * ABI 1.1 appended the SLO-scheduling fields (batch_policy_ops.cut and
 * .streams, batch_setup.seed, batch_view's prefill and swap prices,
 * batch_plan.preempt_how, serve_req.call_group .. last_chunk_ns) and three
 * families to the descriptor: eviction (api/evict.h),
 * autoscaling (api/scale.h) and KV retention (api/retain.h), with their
 * *_ops_size fields. A 1.0 plugin's descriptor ends at `control` (its size
 * says so): the host reads the new families as NULL. A plugin that provides
 * them says ABI 1.1 (SERVESIM_PLUGIN_ABI does) and is refused by a 1.0 host.
 * tests/test_plugin.c freezes their layouts as of 1.1. */
#ifndef API_PLUGIN_H
#define API_PLUGIN_H

#include <stdint.h>
#include "api/batch.h"
#include "api/control.h"
#include "api/evict.h"
#include "api/order.h"
#include "api/retain.h"
#include "api/route.h"
#include "api/scale.h"

#define SERVESIM_ABI_MAJOR 1
#define SERVESIM_ABI_MINOR 1   /* 1: SLO scheduling fields, three more families */
/* Major in the high 16 bits, minor in the low 16. */
#define SERVESIM_ABI_VERSION ((uint32_t)SERVESIM_ABI_MAJOR << 16 | SERVESIM_ABI_MINOR)

/* What the host offers every plugin. Borrowed; valid while the process runs. */
typedef struct servesim_host_api {
    uint32_t abi_major, abi_minor;   /* the host's */
    uint32_t size;                   /* sizeof as the host built it */
    const char *host_version;        /* servesim's version string */
    /* Error messages: formats into err (may be NULL), returns -1. */
    int (*errf)(sim_err *err, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
    /* The strict config readers of sim/jsoncfg.h: unknown keys and values
     * out of range are errors naming their JSON path; a missing optional key
     * is added with its default, so the results file records it. */
    int (*check_keys)(const cJSON *obj, const char *path, const char *const *allowed,
                      sim_err *err);
    int (*num)(cJSON *obj, const char *path, const char *key, double def, double min,
               double max, double *out, sim_err *err);
    int (*integer)(cJSON *obj, const char *path, const char *key, int64_t def,
                   int64_t min, int64_t max, int64_t *out, sim_err *err);
    int (*boolean)(cJSON *obj, const char *path, const char *key, int def, bool *out,
                   sim_err *err);
    int (*str)(cJSON *obj, const char *path, const char *key, const char *def,
               const char **out, sim_err *err);
    int (*obj)(cJSON *obj, const char *path, const char *key, cJSON **out,
               char *child_path, sim_err *err);
    /* The value of a config subtree as compact JSON text; free with
     * free_text. For plugins that hand their params on (the Python bridge). */
    char *(*json_text)(const cJSON *item);
    void (*free_text)(char *text);
    /* Randomness only from here: a 64-bit seed for stream `stream` of the
     * seed a policy's init received (sim_stream_seed), and a uniform draw in
     * (0, 1) that is a function of (seed, counter) alone. No wall clock. */
    uint64_t (*stream_seed)(uint64_t seed, uint64_t stream);
    double (*uniform)(uint64_t seed, uint64_t counter);
    /* A line on stderr, prefixed "servesim: plugin: ". */
    void (*log)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
    /* Fields appended in later minors go here. */
} servesim_host_api;

/* What a plugin's entry point returns. Every policy array is
 * NULL-terminated; a family the plugin does not provide is NULL. The
 * descriptor and everything it points to stay valid while the process runs
 * (plugins are never unloaded). */
typedef struct servesim_plugin {
    uint32_t abi_major, abi_minor;   /* the plugin's: SERVESIM_PLUGIN_HEADER */
    uint32_t size;                   /* sizeof(servesim_plugin) as built */
    uint32_t batch_ops_size, order_ops_size, route_ops_size, control_ops_size;
    const char *name;                /* the library's name, for messages */
    const char *version;             /* the plugin's own version, recorded */
    const batch_policy_ops *const *batch;
    const order_policy_ops *const *order;
    const route_policy_ops *const *route;
    const control_policy_ops *const *control;
    /* ABI 1.1. An eviction policy's `builtin` must be false (only the core's
     * own LRU sets it): the host refuses the plugin otherwise. */
    uint32_t evict_ops_size, scale_ops_size, retain_ops_size;
    const evict_policy_ops *const *evict;
    const scale_policy_ops *const *scale;
    const retain_policy_ops *const *retain;
} servesim_plugin;

#define SERVESIM_PLUGIN_HEADER                                                      \
    .abi_major = SERVESIM_ABI_MAJOR, .abi_minor = SERVESIM_ABI_MINOR,               \
    .size = sizeof(servesim_plugin), .batch_ops_size = sizeof(batch_policy_ops),    \
    .order_ops_size = sizeof(order_policy_ops),                                     \
    .route_ops_size = sizeof(route_policy_ops),                                     \
    .control_ops_size = sizeof(control_policy_ops),                                 \
    .evict_ops_size = sizeof(evict_policy_ops),                                     \
    .scale_ops_size = sizeof(scale_policy_ops),                                     \
    .retain_ops_size = sizeof(retain_policy_ops)

/* Build plugins with -fvisibility=hidden: only these two are exported. */
#define SERVESIM_EXPORT __attribute__((visibility("default")))

/* The ABI version symbol the host reads before it runs any plugin code. */
#define SERVESIM_PLUGIN_ABI_SYMBOL "servesim_plugin_abi"
#define SERVESIM_PLUGIN_ABI \
    SERVESIM_EXPORT extern const uint32_t servesim_plugin_abi; \
    const uint32_t servesim_plugin_abi = SERVESIM_ABI_VERSION

/* The entry point: called once, when the host first loads the library. */
#define SERVESIM_PLUGIN_ENTRY_SYMBOL "servesim_plugin_entry"
typedef const servesim_plugin *(*servesim_plugin_entry_fn)(const servesim_host_api *host);
SERVESIM_EXPORT const servesim_plugin *servesim_plugin_entry(const servesim_host_api *host);

#endif
