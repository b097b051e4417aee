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
 * Each provides one ordering policy, "fifo" (arrival order, as fcfs). */
#include "api/plugin.h"

#pragma GCC diagnostic ignored "-Woverride-init"
#define UNUSED __attribute__((unused))

#if defined(VARIANT_bad_major)
#define ABI_WORD ((uint32_t)2 << 16)
#elif defined(VARIANT_bad_minor)
#define ABI_WORD (SERVESIM_ABI_VERSION + 1)
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
    };
    host = h;
    return &plugin;
}
#endif
