/* Broken and old plugins for tests/test_plugin.c's refusal and compatibility
 * cases, one shared object per VARIANT_* macro (Makefile: TEST_PLUGINS):
 *   bad_major   ABI 2.0                  refused: another major
 *   bad_minor   ABI 1.<host's + 1>       refused: newer than the host
 *   no_abi      no servesim_plugin_abi   refused before any of its code runs
 *   no_entry    no servesim_plugin_entry refused
 *   no_hook     an ordering policy without its key hook: refused
 *   old_minor   ops structs as an older minor built them (without the
 *               optional destroy): loads, runs, destroy read as NULL
 *   nondet      loads, and adds a routing policy "spread" that counts calls
 *               in a global: a second run in the same process differs
 *               (`servesim plugin check` fails it)
 *   v1_desc     ABI 1.0 with a descriptor of version 1's size (it ends at
 *               `control`), as a plugin built before 1.1 has: loads; its
 *               eviction policy "ev", past that size, is not seen
 *   evict_builtin    an eviction policy "ev" that sets builtin: refused
 *   evict_no_victim  an eviction policy "ev" without its victim hook: refused
 * Each provides one ordering policy, "fifo" (arrival order, as fcfs). */
#include "api/plugin.h"

#pragma GCC diagnostic ignored "-Woverride-init"
#define UNUSED __attribute__((unused))

#if defined(VARIANT_bad_major)
#define ABI_WORD ((uint32_t)2 << 16)
#elif defined(VARIANT_bad_minor)
#define ABI_WORD (SERVESIM_ABI_VERSION + 1)
#elif defined(VARIANT_v1_desc)
#define ABI_WORD ((uint32_t)1 << 16)
#else
#define ABI_WORD SERVESIM_ABI_VERSION
#endif

#ifndef VARIANT_no_abi
SERVESIM_EXPORT extern const uint32_t servesim_plugin_abi;
const uint32_t servesim_plugin_abi = ABI_WORD;
#endif

static UNUSED const servesim_host_api *host;

static int fifo_init(uint64_t seed, cJSON *params, const char *path, void **state,
                     sim_err *err)
{
    (void)seed;
    static const char *const keys[] = {NULL};
    *state = NULL;
    return host->check_keys(params, path, keys, err);
}

#ifdef VARIANT_nondet
static uint64_t calls;   /* what a plugin must not do: state across runs */
#endif

static UNUSED double fifo_key(void *state, const serve_req *r)
{
    (void)state;
    (void)r;
    return 0;   /* the core breaks ties by arrival time, then id */
}

static const order_policy_ops fifo = {
    .name = "fifo",
    .init = fifo_init,
#ifndef VARIANT_no_hook
    .key = fifo_key,
#endif
};

static UNUSED const order_policy_ops *const orders[] = {&fifo, NULL};

#ifdef VARIANT_nondet
static int spread_init(const route_setup *setup, cJSON *params, const char *path,
                       void **state, sim_err *err)
{
    (void)setup;
    static const char *const keys[] = {NULL};
    *state = NULL;
    return host->check_keys(params, path, keys, err);
}

static int32_t spread_route(void *state, const route_view *v, const serve_req *r)
{
    (void)state;
    (void)r;
    return v->candidates[(calls++ / 7) % (uint64_t)v->n_candidates];
}

static const route_policy_ops spread = {.name = "spread", .init = spread_init,
                                        .route = spread_route};
static const route_policy_ops *const routes[] = {&spread, NULL};
#endif

#if defined(VARIANT_v1_desc) || defined(VARIANT_evict_builtin) || \
    defined(VARIANT_evict_no_victim)
#define HAS_EVICT
static int ev_init(const evict_setup *setup, cJSON *params, const char *path, void **state,
                   sim_err *err)
{
    (void)setup;
    static const char *const keys[] = {NULL};
    *state = NULL;
    return host->check_keys(params, path, keys, err);
}
static void ev_insert(void *state, const evict_view *v, int32_t b)
{
    (void)state, (void)v, (void)b;
}
static UNUSED int32_t ev_victim(void *state, const evict_view *v)
{
    (void)state, (void)v;
    return 0;
}
static const evict_policy_ops ev = {
    .name = "ev",
#ifdef VARIANT_evict_builtin
    .builtin = true,
#endif
    .init = ev_init,
    .insert = ev_insert,
    .remove = ev_insert,
#ifndef VARIANT_evict_no_victim
    .victim = ev_victim,
#endif
};
static const evict_policy_ops *const evicts[] = {&ev, NULL};
#endif

#ifndef VARIANT_no_entry
SERVESIM_EXPORT const servesim_plugin *servesim_plugin_entry(const servesim_host_api *h)
{
    static const servesim_plugin plugin = {
        SERVESIM_PLUGIN_HEADER,
#if defined(VARIANT_bad_major) || defined(VARIANT_bad_minor)
        .abi_major = ABI_WORD >> 16,
        .abi_minor = ABI_WORD & 0xffff,
#endif
#ifdef VARIANT_old_minor
        /* Built before `destroy` was appended (a stand-in for an older minor:
         * version 1 is the first, so none exists yet). */
        .order_ops_size = offsetof(order_policy_ops, destroy),
#endif
        .name = "variant",
        .version = "0",
        .order = orders,
#ifdef VARIANT_nondet
        .route = routes,
#endif
#ifdef VARIANT_v1_desc
        /* Built against ABI 1.0: the descriptor ended at `control`. */
        .abi_minor = 0,
        .size = offsetof(servesim_plugin, control) + sizeof(void *),
#endif
#ifdef HAS_EVICT
        .evict = evicts,
#endif
    };
    host = h;
    return &plugin;
}
#endif
