/* `servesim cost [CONFIG.json] [--model M] [--gpu G] [--tp N] [--precision
 * W,A,KV] [--cost MODEL] [--table PATH] [--set path=value ...]
 * [--prefill Q[@CTX] ...] [--decode N[@CTX] ...] [--sampled N]`: prices one
 * iteration and prints every operator with its time, FLOPs, bytes, achieved
 * rates, power and source, then the iteration's totals.
 *
 * Design. The model, GPU, layout, precision and cost model come from a run
 * config read exactly as `servesim run` reads it (run_config_parse), so
 * what this prints is what a run with that config charges; the flags are
 * shorthands for --set. Without CONFIG a minimal config (model and GPU
 * required) is used. The batch flags build one batch_shape; the operators
 * are ops_decompose's and their prices cost_price_each's, the same
 * functions cost_iteration calls, whose totals are printed alongside as a
 * check. Nothing is simulated. */
#include "tool/cmd_cost.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool/config.h"
#include "sim/jsoncfg.h"

#define MAX_SETS 64
#define MAX_CHUNKS 256

static const char cost_usage[] =
    "usage: servesim cost [CONFIG.json] [--model M] [--gpu G] [--tp N]\n"
    "                     [--precision WEIGHTS,ACTIVATIONS,KV] [--cost MODEL] [--table PATH]\n"
    "                     [--set path=value ...] [--prefill Q[@CTX] ...] [--decode N[@CTX] ...]\n"
    "                     [--sampled N]\n"
    "\n"
    "  CONFIG.json   a run config (default: a minimal one; then --model and --gpu are needed)\n"
    "  --model M     a model name (models/llm/) or the path of a model file\n"
    "  --gpu G       a GPU name (models/gpu/) or the path of a GPU file\n"
    "  --tp N        tensor-parallel degree (cluster.tp)\n"
    "  --precision   dtypes of weights, activations and KV cache, e.g. fp8,fp8,fp8\n"
    "  --cost MODEL  cost model: table (default) or roofline\n"
    "  --table PATH  the table of the table cost model (cost.params.table)\n"
    "  --prefill Q@CTX  a prefill chunk of Q new tokens after CTX cached ones (repeatable)\n"
    "  --decode N@CTX   N decoding sequences with CTX tokens of context each (repeatable)\n"
    "  --sampled N   sequences that emit a token (default: every chunk and decode)\n"
    "The batch defaults to one 512-token prefill and 32 decodes at 1024 tokens of context.\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "servesim cost: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", cost_usage);
    return 2;
}

/* "N" or "N@M" into two integers (M defaults to 0). */
static int parse_pair(const char *s, long max_a, long *a, long *b)
{
    char *end;
    *a = strtol(s, &end, 10);
    *b = 0;
    if (end == s || *a < 0 || *a > max_a)
        return -1;
    if (*end == '@') {
        const char *m = end + 1;
        *b = strtol(m, &end, 10);
        if (end == m || *b < 0 || *b > 100000000)
            return -1;
    }
    return *end ? -1 : 0;
}

typedef struct cost_args {
    const char *config;
    char *sets[MAX_SETS];
    int n_sets;
    batch_seq chunk[MAX_CHUNKS];
    int n_chunks;
    long n_decode, decode_ctx_sum, sampled;
    int batch_given;
} cost_args;

static int add_set(cost_args *a, const char *fmt, const char *value)
{
    if (a->n_sets >= MAX_SETS)
        return usage_error("more than %s assignments", "64");
    size_t n = strlen(fmt) + strlen(value) + 1;
    a->sets[a->n_sets] = sim_xmalloc(n);
    snprintf(a->sets[a->n_sets++], n, fmt, value);
    return 0;
}

static int parse_args(int argc, char **argv, cost_args *a)
{
    memset(a, 0, sizeof *a);
    a->sampled = -1;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        static const struct {
            const char *flag, *fmt;
        } shorthand[] = {{"--model", "model=%s"}, {"--gpu", "gpu=%s"}, {"--tp", "cluster.tp=%s"},
                         {"--cost", "cost.model=%s"}, {"--table", "cost.params.table=%s"},
                         {"--set", "%s"}};
        int done = 0;
        for (size_t k = 0; k < sizeof shorthand / sizeof *shorthand && !done; k++)
            if (!strcmp(f, shorthand[k].flag)) {
                if (!v)
                    return usage_error("%s needs a value", f);
                if (add_set(a, shorthand[k].fmt, v))
                    return 2;
                i++;
                done = 1;
            }
        if (done)
            continue;
        long x, y;
        if (!strcmp(f, "--precision")) {
            char w[32], ac[32], kv[32];
            if (!v || sscanf(v, "%31[^,],%31[^,],%31s", w, ac, kv) != 3)
                return usage_error("--precision: expected WEIGHTS,ACTIVATIONS,KV, got '%s'",
                                   v ? v : "");
            if (add_set(a, "precision.weights=%s", w) || add_set(a, "precision.activations=%s", ac) ||
                add_set(a, "precision.kv_cache=%s", kv))
                return 2;
            i++;
        } else if (!strcmp(f, "--prefill")) {
            if (!v || parse_pair(v, 10000000, &x, &y) < 0 || x < 1)
                return usage_error("--prefill: expected Q or Q@CTX (Q >= 1), got '%s'",
                                   v ? v : "");
            if (a->n_chunks >= MAX_CHUNKS)
                return usage_error("more than %s prefill chunks", "256");
            a->chunk[a->n_chunks++] = (batch_seq){.q_tokens = (int32_t)x, .ctx_tokens = (int32_t)y};
            a->batch_given = 1;
            i++;
        } else if (!strcmp(f, "--decode")) {
            if (!v || parse_pair(v, 1000000, &x, &y) < 0)
                return usage_error("--decode: expected N or N@CTX, got '%s'", v ? v : "");
            a->n_decode += x;
            a->decode_ctx_sum += x * y;
            a->batch_given = 1;
            i++;
        } else if (!strcmp(f, "--sampled")) {
            if (!v || parse_pair(v, 100000000, &x, &y) < 0 || y)
                return usage_error("--sampled: expected an integer >= 0, got '%s'", v ? v : "");
            a->sampled = x;
            i++;
        } else if (f[0] == '-' || a->config) {
            return usage_error("unexpected argument '%s'", f);
        } else {
            a->config = f;
        }
    }
    if (!a->batch_given) {
        a->chunk[a->n_chunks++] = (batch_seq){.q_tokens = 512};
        a->n_decode = 32;
        a->decode_ctx_sum = 32 * 1024;
    }
    if (a->sampled < 0)
        a->sampled = a->n_chunks + a->n_decode;
    if (a->sampled > a->n_chunks + a->n_decode)
        return usage_error("--sampled: at most the chunks plus decodes, got %s", "more");
    return 0;
}

static int load_config(const cost_args *a, run_config *cfg, sim_err *err)
{
    if (a->config)
        return run_config_load(a->config, (char *const *)a->sets, a->n_sets, cfg, err);
    cJSON *root = cJSON_CreateObject();
    for (int i = 0; i < a->n_sets; i++)
        if (jcfg_set(root, a->sets[i], err)) {
            cJSON_Delete(root);
            return sim_err_prefix(err, "--set %s", a->sets[i]);
        }
    return run_config_parse(root, cfg, err);
}

/* Prints a quantity with an SI prefix in a field of 8. */
static void si(double v, const char *unit)
{
    static const char *const p[] = {"", "k", "M", "G", "T", "P", "E"};
    int k = 0;
    while (fabs(v) >= 1000 && k < 6) {
        v /= 1000;
        k++;
    }
    printf(" %7.3g %s%-2s", v, p[k], unit);
}

static void print_report(const run_config *cfg, cost_model *cm, const batch_shape *b)
{
    const pool_setup *c = &cfg->sys.pools[0];   /* the first pool's instances */
    const llm_model *m = &c->model;
    const gpu_spec *g = &c->gpu;
    op_list ops;
    ops_decompose(m, &c->par, b, &ops);
    cost_op_price price[OPS_MAX];
    cost_price_each(cm, &ops, price);
    cost_result r;
    cost_iteration(cm, b, &r);
    char what[1200];
    cost_describe(cm, what, sizeof what);

    printf("%s on %s, tp=%d; weights %s, activations %s, KV %s\n", m->name, g->name, c->par.tp,
           llm_dtype_name(m->prec.weights), llm_dtype_name(m->prec.activations),
           llm_dtype_name(m->prec.kv));
    printf("batch: %d prefill chunk(s) (", b->n_prefill);
    for (int i = 0; i < b->n_prefill; i++)
        printf("%s%d@%d", i ? ", " : "", b->prefill[i].q_tokens, b->prefill[i].ctx_tokens);
    printf("), %d decode(s), context sum %lld, %d sampled\n", b->n_decode,
           (long long)b->decode_ctx_sum, b->n_sampled);
    printf("cost model: %s\n", what);
    printf("per operator, one GPU (every GPU of the group runs the same):\n");
    printf("  %-14s %5s %7s %7s %7s %10s %10s %11s %10s %10s %10s %6s %9s %s\n", "op", "rep",
           "m", "n", "k", "us/run", "us total", "FLOP/run", "bytes/run", "FLOP/s", "bytes/s",
           "W", "mJ", "source");
    double sum_ns = 0, sum_j = 0;
    for (int i = 0; i < ops.n; i++) {
        const op_desc *op = &ops.op[i];
        double all_ns = price[i].ns * op->repeat;
        double j = all_ns * 1e-9 * price[i].power_w;
        sum_ns += all_ns;
        sum_j += j;
        printf("  %-14s %5d %7lld %7lld %7lld %10.2f %10.1f", op_kind_name(op->kind),
               op->repeat, (long long)op->m, (long long)op->n, (long long)op->k,
               price[i].ns / 1e3, all_ns / 1e3);
        si(op->flops, "");
        si(op->bytes, "B");
        si(op->flops / (price[i].ns * 1e-9), "");
        si(op->bytes / (price[i].ns * 1e-9), "B");
        printf(" %6.0f %9.3f %s\n", price[i].power_w, j * 1e3, cost_source_name(price[i].source));
    }
    int tp = par_gpus(&c->par);
    /* The engine's CPU share of the iteration (or the run's fixed overhead). */
    double overhead_ns = c->fixed_overhead ? (double)c->iteration_overhead_ns
                                           : (double)r.latency_ns - sum_ns;
    if (c->par.pp > 1 && !c->fixed_overhead)
        overhead_ns = 0;   /* the cost model's time is a pipelined round (below) */
    double gpu_j = (sum_j + overhead_ns * 1e-9 * g->idle_w) * tp;
    double lat_s = (sum_ns + overhead_ns) * 1e-9;
    printf("iteration:\n");
    printf("  GPU time             %.1f us of operators + %.1f us CPU overhead = %.1f us"
           " (cost model: %.1f us)\n", sum_ns / 1e3, overhead_ns / 1e3, lat_s * 1e6,
           r.latency_ns / 1e3);
    if (c->par.pp > 1)
        printf("  pipeline             %d stages, %d micro-batches: the operators above are the "
               "whole batch through every stage; the cost model's round takes %.1f us\n",
               c->par.pp, par_micro_batches(&c->par), r.latency_ns / 1e3);
    if (c->par.ep > 1)
        printf("  expert parallel      ep=%d dp=%d: the expected load of uniform routing "
               "over a balanced placement\n", c->par.ep, c->par.dp);
    printf("  GPU energy           %.3f mJ on %d GPU(s), %.0f W each on average\n",
           gpu_j * 1e3, tp, gpu_j / lat_s / tp);
    printf("  node energy          %.3f mJ (the GPUs plus %.1f W per GPU for the rest of the "
           "node)%s\n", (gpu_j + g->node_w_per_gpu * tp * lat_s) * 1e3, g->node_w_per_gpu,
           cost_node_energy(cm) ? "; the cost model charges this one" : "");
    printf("  HBM traffic          %.3f GB weights, %.3f GB KV cache per GPU\n",
           r.weight_bytes / 1e9, r.kv_bytes / 1e9);
    double q = 0;
    for (int i = 0; i < b->n_prefill; i++)
        q += b->prefill[i].q_tokens;
    printf("  throughput           %.0f prefill and %.0f decode tokens per second at this "
           "batch\n", q / lat_s, b->n_decode / lat_s);
}

int cmd_cost(int argc, char **argv)
{
    if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        fputs(cost_usage, stdout);
        return 0;
    }
    cost_args a;
    int rc = parse_args(argc, argv, &a);
    sim_err err = {{0}};
    run_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cost_model *cm = NULL;
    if (rc == 0) {
        rc = 1;
        if (load_config(&a, &cfg, &err) == 0) {
            const pool_setup *p = &cfg.sys.pools[0];
            cost_setup setup = {.model = &p->model, .gpu = &p->gpu, .par = p->par,
                                .engine = p->fixed_overhead ? NULL : &p->engine,
                                .iteration_overhead_ns = p->iteration_overhead_ns};
            cm = cost_model_create(p->cost_name, &setup, p->cost_params, p->cost_path, &err);
            if (cm) {
                batch_shape b = {.prefill = a.chunk, .n_prefill = a.n_chunks,
                                 .n_decode = (int32_t)a.n_decode,
                                 .decode_ctx_sum = a.decode_ctx_sum,
                                 .n_sampled = (int32_t)a.sampled};
                print_report(&cfg, cm, &b);
                rc = 0;
            }
        }
        if (rc)
            fprintf(stderr, "servesim cost: error: %s\n", err.msg);
    }
    cost_model_destroy(cm);
    run_config_fini(&cfg);
    for (int i = 0; i < a.n_sets; i++)
        free(a.sets[i]);
    return rc;
}
