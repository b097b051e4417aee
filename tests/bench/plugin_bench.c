/* Micro-benchmark of a policy decision through each way of providing a
 * policy (make bench, tests/bench.sh): nanoseconds per call of
 *   route  least-outstanding-tokens over 16 and 256 candidates, and
 *   key    shortest job first,
 * compiled in (the built-in), from a dlopen'd C plugin (build/plugins/
 * libexample.so: lot_copy, sjf_copy), and through the Python bridge
 * (libservesim_py.so: examples/python/policies.py's LeastOutstandingTokens
 * and SJF, plus First and Zero, which do nothing, so they time the bridge
 * alone), and through the subprocess bridge (libservesim_pipe.so: one
 * JSON-lines round trip to a Python child per call). Also the one-off costs: loading a C plugin, and starting Python
 * with the first policy. The loads change between calls so that nothing is
 * hoisted out of the loop. Run from the repository root. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "policies/registry.h"
#include "tool/plugin.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static const route_policy_ops *route_ops(const char *name)
{
    sim_err err = {{0}};
    const route_policy_ops *o = plugin_route_find(name, "bench", &err);
    if (!o) {
        fprintf(stderr, "plugin_bench: %s\n", err.msg);
        exit(1);
    }
    return o;
}

static const order_policy_ops *order_ops(const char *name)
{
    sim_err err = {{0}};
    const order_policy_ops *o = plugin_order_find(name, "bench", &err);
    if (!o) {
        fprintf(stderr, "plugin_bench: %s\n", err.msg);
        exit(1);
    }
    return o;
}

static cJSON *params(const char *cls)
{
    char text[256];
    if (!cls)
        return cJSON_CreateObject();
    snprintf(text, sizeof text,
             "{\"module\": \"policies\", \"class\": \"%s\", \"path\": \"examples/python\"}",
             cls);
    return cJSON_Parse(text);
}

/* ns per route call over n instances. */
static double bench_route(const char *name, const char *cls, int32_t n, long calls,
                          double *init_s)
{
    const route_policy_ops *o = route_ops(name);
    cJSON *p = params(cls);
    void *state;
    sim_err err = {{0}};
    route_setup setup = {.pool = 0, .block_size_tokens = 16};
    double t0 = now_s();
    if (o->init(&setup, p, "$.bench.params", &state, &err)) {
        fprintf(stderr, "plugin_bench: %s\n", err.msg);
        exit(1);
    }
    if (init_s)
        *init_s = now_s() - t0;
    inst_view *inst = calloc((size_t)n, sizeof *inst);
    int32_t *cand = calloc((size_t)n, sizeof *cand);
    for (int32_t i = 0; i < n; i++) {
        cand[i] = i;
        inst[i] = (inst_view){.state = INST_ACTIVE, .outstanding_tokens = 1000 + (i * 7919) % 997};
    }
    route_view v = {.inst = inst, .n_instances = n, .candidates = cand, .n_candidates = n};
    serve_req r = {.input_tokens = 600, .output_tokens = 100};
    int64_t sum = 0;
    t0 = now_s();
    for (long k = 0; k < calls; k++) {
        r.id = (uint64_t)k;
        int32_t i = o->route(state, &v, &r);
        inst[i].outstanding_tokens += 700;   /* as the core would */
        sum += i;
    }
    double ns = (now_s() - t0) / (double)calls * 1e9;
    if (o->destroy)
        o->destroy(state);
    cJSON_Delete(p);
    free(inst);
    free(cand);
    if (sum < 0)
        puts("");
    return ns;
}

/* ns per key call. */
static double bench_key(const char *name, const char *cls, long calls)
{
    const order_policy_ops *o = order_ops(name);
    cJSON *p = params(cls);
    void *state;
    sim_err err = {{0}};
    if (o->init(7, p, "$.bench.params", &state, &err)) {
        fprintf(stderr, "plugin_bench: %s\n", err.msg);
        exit(1);
    }
    serve_req r = {.input_tokens = 600};
    double sum = 0, t0 = now_s();
    for (long k = 0; k < calls; k++) {
        r.id = (uint64_t)k;
        r.output_tokens = (int32_t)(k % 1000);
        sum += o->key(state, &r);
    }
    double ns = (now_s() - t0) / (double)calls * 1e9;
    if (o->destroy)
        o->destroy(state);
    cJSON_Delete(p);
    if (sum < 0)
        puts("");
    return ns;
}

int main(void)
{
    const plugin_lib *l;
    sim_err err = {{0}};
    double t0 = now_s();
    if (plugin_load("example", &l, &err)) {
        fprintf(stderr, "plugin_bench: %s\n", err.msg);
        return 1;
    }
    printf("C plugin load (dlopen, checks, SHA-256 of the file): %.0f us\n",
           (now_s() - t0) * 1e6);
    const long c_calls = 2000000, py_calls = 200000;
    printf("%-44s %10s %10s\n", "route (least outstanding tokens)", "16 inst", "256 inst");
    printf("%-44s %8.1f ns %8.1f ns\n", "built-in",
           bench_route("least_outstanding_tokens", NULL, 16, c_calls, NULL),
           bench_route("least_outstanding_tokens", NULL, 256, c_calls / 8, NULL));
    printf("%-44s %8.1f ns %8.1f ns\n", "C plugin (example:lot_copy)",
           bench_route("example:lot_copy", NULL, 16, c_calls, NULL),
           bench_route("example:lot_copy", NULL, 256, c_calls / 8, NULL));
    int py = access(SERVESIM_PLUGIN_DIR "/libservesim_py.so", R_OK) == 0;
    if (!py) {
        puts("Python bridge not built (no python3-dev): Python rows skipped");
        return 0;
    }
    double start_s;
    double first16 = bench_route("servesim_py:python", "First", 16, py_calls, &start_s);
    printf("Python start and first policy's init: %.1f ms\n", start_s * 1e3);
    printf("%-44s %8.1f ns %8.1f ns\n", "Python, no-op (First): the bridge alone", first16,
           bench_route("servesim_py:python", "First", 256, py_calls, NULL));
    printf("%-44s %8.1f ns %8.1f ns\n", "Python (LeastOutstandingTokens)",
           bench_route("servesim_py:python", "LeastOutstandingTokens", 16, py_calls, NULL),
           bench_route("servesim_py:python", "LeastOutstandingTokens", 256, py_calls / 8, NULL));
    printf("%-44s %8s\n", "key (shortest job first)", "per call");
    printf("%-44s %8.1f ns\n", "built-in (sjf)", bench_key("sjf", NULL, c_calls * 4));
    printf("%-44s %8.1f ns\n", "C plugin (example:sjf_copy)",
           bench_key("example:sjf_copy", NULL, c_calls * 4));
    printf("%-44s %8.1f ns\n", "Python, no-op (Zero): the bridge alone",
           bench_key("servesim_py:python", "Zero", py_calls * 4));
    printf("%-44s %8.1f ns\n", "Python (SJF)",
           bench_key("servesim_py:python", "SJF", py_calls * 4));
    /* The subprocess bridge: a round trip per call. */
    const long pipe_calls = 20000;
    printf("%-44s %8.1f ns\n", "Python subprocess, no-op (Zero)",
           bench_key("servesim_pipe:python", "Zero", pipe_calls));
    printf("%-44s %8.1f ns\n", "Python subprocess (SJF)",
           bench_key("servesim_pipe:python", "SJF", pipe_calls));
    printf("%-44s %8.1f ns %8.1f ns\n", "route: Python subprocess, no-op (First)",
           bench_route("servesim_pipe:python", "First", 16, pipe_calls, NULL),
           bench_route("servesim_pipe:python", "First", 256, pipe_calls / 4, NULL));
    printf("%-44s %8.1f ns %8.1f ns\n", "route: Python subprocess (LeastOutstandingTokens)",
           bench_route("servesim_pipe:python", "LeastOutstandingTokens", 16, pipe_calls, NULL),
           bench_route("servesim_pipe:python", "LeastOutstandingTokens", 256, pipe_calls / 4,
                       NULL));
    return 0;
}
