/* An example servesim plugin: one C file that includes api/plugin.h only and
 * links nothing of servesim. Build it with
 *
 *   make plugin SRC=examples/plugins/example.c       (-> examples/plugins/libexample.so)
 *
 * or, after `make install`, with
 *
 *   cc -O2 -fPIC -shared -fvisibility=hidden $(pkg-config --cflags servesim-plugin) \
 *      -o libexample.so example.c
 *
 * (`make` itself builds it into build/plugins/, on servesim's search path),
 * and name its policies in a config as "example:<policy>":
 *
 *   "policies": {"order": {"name": "example:sjf_copy"},
 *                "routing": {"name": "example:lot_copy"}}
 *
 * It holds copies of two built-ins, which reproduce their results bit for
 * bit (tests/test_plugin.c), and one policy of its own:
 *   sjf_copy          ordering: policies/order_sjf.c (fewest output tokens left first)
 *   longest_first     ordering: the opposite (most output tokens left first);
 *                     params {"scale": 1.0} to show the host's config readers
 *   lot_copy          routing: policies/route_least_tokens.c
 *   random_pick       routing: a uniform candidate per request, from the host's
 *                     random draw keyed on (seed, request id): deterministic */
#include <stdlib.h>

#include "api/plugin.h"

SERVESIM_PLUGIN_ABI;

static const servesim_host_api *host;   /* set once by the entry point */

/* ---- ordering ------------------------------------------------------------------ */

static int no_params(uint64_t seed, cJSON *params, const char *path, void **state,
                     sim_err *err)
{
    (void)seed;
    static const char *const keys[] = {NULL};
    *state = NULL;
    return host->check_keys(params, path, keys, err);
}

static double sjf_key(void *state, const serve_req *r)
{
    (void)state;
    return r->output_tokens - r->generated_tokens;
}

typedef struct lf_state {
    double scale;
} lf_state;

static int lf_init(uint64_t seed, cJSON *params, const char *path, void **state,
                   sim_err *err)
{
    (void)seed;
    static const char *const keys[] = {"scale", NULL};
    double scale;
    if (host->check_keys(params, path, keys, err) ||
        host->num(params, path, "scale", 1.0, 1e-9, 1e9, &scale, err))
        return -1;
    lf_state *s = malloc(sizeof *s);
    if (!s)
        return host->errf(err, "%s: out of memory", path);
    s->scale = scale;
    *state = s;
    return 0;
}

static double lf_key(void *state, const serve_req *r)
{
    const lf_state *s = state;
    return -s->scale * (r->output_tokens - r->generated_tokens);
}

static void lf_destroy(void *state) { free(state); }

static const order_policy_ops sjf_copy = {
    .name = "sjf_copy",
    .init = no_params,
    .key = sjf_key,
};

static const order_policy_ops longest_first = {
    .name = "longest_first",
    .init = lf_init,
    .key = lf_key,
    .destroy = lf_destroy,
};

/* ---- routing ------------------------------------------------------------------- */

static int route_init(const route_setup *setup, cJSON *params, const char *path,
                      void **state, sim_err *err)
{
    (void)setup;
    static const char *const keys[] = {NULL};
    *state = NULL;
    return host->check_keys(params, path, keys, err);
}

static int32_t lot_route(void *state, const route_view *v, const serve_req *req)
{
    (void)state;
    (void)req;
    int32_t best = v->candidates[0];
    for (int32_t k = 1; k < v->n_candidates; k++) {
        int32_t i = v->candidates[k];
        if (v->inst[i].outstanding_tokens < v->inst[best].outstanding_tokens)
            best = i;
    }
    return best;
}

typedef struct rp_state {
    uint64_t seed;
} rp_state;

static int rp_init(const route_setup *setup, cJSON *params, const char *path, void **state,
                   sim_err *err)
{
    static const char *const keys[] = {"seed", NULL};
    int64_t seed;
    if (host->check_keys(params, path, keys, err) ||
        host->integer(params, path, "seed", 1, 0, INT64_MAX, &seed, err))
        return -1;
    rp_state *s = malloc(sizeof *s);
    if (!s)
        return host->errf(err, "%s: out of memory", path);
    s->seed = host->stream_seed((uint64_t)seed, (uint64_t)setup->pool);
    *state = s;
    return 0;
}

static int32_t rp_route(void *state, const route_view *v, const serve_req *req)
{
    const rp_state *s = state;
    int32_t k = (int32_t)(host->uniform(s->seed, req->id) * v->n_candidates);
    return v->candidates[k < v->n_candidates ? k : v->n_candidates - 1];
}

static void rp_destroy(void *state) { free(state); }

static const route_policy_ops lot_copy = {
    .name = "lot_copy",
    .init = route_init,
    .route = lot_route,
};

static const route_policy_ops random_pick = {
    .name = "random_pick",
    .init = rp_init,
    .route = rp_route,
    .destroy = rp_destroy,
};

/* ---- the entry point ----------------------------------------------------------- */

static const order_policy_ops *const orders[] = {&sjf_copy, &longest_first, NULL};
static const route_policy_ops *const routes[] = {&lot_copy, &random_pick, NULL};

SERVESIM_EXPORT const servesim_plugin *servesim_plugin_entry(const servesim_host_api *h)
{
    static const servesim_plugin plugin = {
        SERVESIM_PLUGIN_HEADER,
        .name = "example",
        .version = "1.0",
        .order = orders,
        .route = routes,
    };
    host = h;
    return &plugin;
}
