/* `servesim` subcommands (see cli.h). A run goes: load and validate the
 * config, create the cluster (which validates policies, cost model and
 * workload), open the results file as <out>.partial, simulate, write the
 * summary and commit the file into place, print the summary table. */
#include "tool/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/cluster.h"
#include "tool/cmd_capacity.h"
#include "tool/cmd_cost.h"
#include "tool/cmd_sweep.h"
#include "tool/cmd_trace.h"
#include "tool/outpath.h"
#include "tool/runner.h"
#include "version.h"

static const char usage[] =
    "usage: servesim run CONFIG.json [--set path=value ...] [--out results.h5] [--quiet]\n"
    "       servesim sweep EXP.json [-j N] [--out results.h5] [--limit N] [--quiet]\n"
    "       servesim capacity CONFIG.json --slo ttft_p90=MS,tpot_p90=MS [--attain 0.9] ...\n"
    "       servesim trace stats FILE [--format F] [--skip-bad]\n"
    "       servesim trace convert FILE OUT.csv|OUT.jsonl [--format F] [--skip-bad]\n"
    "       servesim cost [CONFIG.json] [--model M] [--gpu G] [--tp N] [--prefill Q@CTX ...]\n"
    "                     [--decode N@CTX ...] [--precision W,A,KV] ...   (cost --help)\n"
    "       servesim --version\n"
    "\n"
    "  --set path=value  override a config value, e.g. --set workload.arrival.rate_per_s=8\n"
    "                    (value is JSON if it parses as JSON, else a string)\n"
    "  --out FILE        results file (HDF5); default results/<config name>.h5\n"
    "  --quiet           print nothing but errors\n";

static void print_pctl(const char *name, const pctl *p, double scale, const char *unit)
{
    printf("  %-22s %10.2f %10.2f %10.2f %10.2f  %s\n", name, p->mean * scale,
           p->p50 * scale, p->p90 * scale, p->p99 * scale, unit);
}

/* "Llama-3-70B: 2 instances x 4 H100-SXM-80GB (tp=4)", one clause per
 * pool, with its name and role when there are several. */
static void describe_cluster(const run_config *cfg, char *buf, size_t size)
{
    static const char *const roles[POOL_ROLE_COUNT] = {"mixed", "prefill", "decode"};
    size_t used = 0;
    buf[0] = 0;
    for (int32_t k = 0; k < cfg->sys.n_pools && used < size; k++) {
        const pool_setup *p = &cfg->sys.pools[k];
        int g = par_gpus(&p->par);
        char pool_name[64] = "";
        if (cfg->sys.n_pools > 1)
            snprintf(pool_name, sizeof pool_name, "pool %s (%s): ", p->name, roles[p->role]);
        used += (size_t)snprintf(buf + used, size - used,
                                 "%s%s%s: %d instance%s x %d %s (tp=%d)", k ? "; " : "",
                                 pool_name, p->model.name, p->instances,
                                 p->instances == 1 ? "" : "s", g, p->gpu.name, p->par.tp);
    }
}

static void print_summary(const run_config *cfg, const run_summary *s,
                          const char *sources, const char *out)
{
    char cluster_text[1024];
    describe_cluster(cfg, cluster_text, sizeof cluster_text);
    printf("servesim %s: %s, seed %llu\n", SERVESIM_VERSION, cluster_text,
           (unsigned long long)s->seed);
    printf("  requests               %llu completed of %llu (%llu lengths clamped to context)\n",
           (unsigned long long)s->completed, (unsigned long long)s->arrived,
           (unsigned long long)s->clamped);
    printf("  simulated time         %.1f s, %llu iterations, %llu preemptions\n",
           s->duration_s, (unsigned long long)s->iterations,
           (unsigned long long)s->preemptions);
    printf("  throughput             %.3f req/s, %.1f output tok/s\n",
           s->throughput_req_s, s->throughput_tok_s);
    printf("  %-22s %10s %10s %10s %10s\n", "latency", "mean", "p50", "p90", "p99");
    print_pctl("TTFT", &s->ttft_s, 1e3, "ms");
    print_pctl("TBT (every token gap)", &s->tbt_s, 1e3, "ms");
    print_pctl("TPOT", &s->tpot_s, 1e3, "ms");
    print_pctl("E2E", &s->e2e_s, 1, "s");
    print_pctl("queueing", &s->queue_s, 1e3, "ms");
    printf("  SLO attainment         %.1f%% (TTFT <= %.0f ms: %.1f%%, TPOT <= %.0f ms: %.1f%%)\n",
           100 * s->slo_attain, s->slo_ttft_s * 1e3, 100 * s->slo_attain_ttft,
           s->slo_tpot_s * 1e3, 100 * s->slo_attain_tpot);
    printf("  energy                 %.1f kJ, %.3f J per output token, %.3f J per token\n",
           s->energy_j / 1e3, s->energy_per_out_token_j, s->energy_per_token_j);
    printf("  HBM traffic            %.1f TB weights, %.1f TB KV\n", s->weight_bytes / 1e12,
           s->kv_bytes / 1e12);
    if (s->preemptions)
        printf("  preemption cost        %llu tokens recomputed, %.2f GB swapped out, "
               "%.2f GB in, %.3f s added\n", (unsigned long long)s->recomputed_tokens,
               s->swap_out_bytes / 1e9, s->swap_in_bytes / 1e9, s->swap_time_s);
    if (s->lora_adapters_per_batch > 0)
        printf("  multi-LoRA             %.2f adapters per batch, GPU hit ratio %.3f, %llu loads "
               "(%llu from storage), %.3f s of loads, %.3f s of LoRA operators, %llu "
               "requests held back by max_loras\n", s->lora_adapters_per_batch,
               s->lora_gpu_hit_ratio, (unsigned long long)s->lora_loads,
               (unsigned long long)s->lora_storage_loads, s->lora_load_time_s,
               s->lora_op_time_s, (unsigned long long)s->lora_skipped);
    if (s->lora_adapters_per_batch > 0)
        printf("  LoRA cold starts       %llu requests waited for their adapter: TTFT %.2f ms "
               "mean, warm %.2f ms (at the engine)\n",
               (unsigned long long)s->lora_cold_requests, s->lora_ttft_cold_s * 1e3,
               s->lora_ttft_warm_s * 1e3);
    if (s->spec_drafts)
        printf("  speculative decoding   %llu drafts, %llu draft tokens, acceptance rate "
               "%.3f, mean acceptance length %.2f; draft %.1f%%, verify %.1f%% of busy "
               "time\n", (unsigned long long)s->spec_drafts,
               (unsigned long long)s->spec_draft_tokens, s->spec_acceptance_rate,
               s->spec_mean_acceptance_length, 100 * s->spec_draft_share,
               100 * s->spec_verify_share);
    printf("  GPU busy               %.1f%%; KV use peak %.1f%%, mean %.1f%%\n",
           100 * s->gpu_busy_fraction, 100 * s->kv_peak_fraction,
           100 * s->kv_mean_fraction);
    printf("  cost source            %s\n", sources);
    printf("  wall                   %.3f s, %.0f iterations/s, %.0f requests/s, "
           "peak RSS %.1f MB\n", s->wall_s, s->iterations / s->wall_s,
           s->completed / s->wall_s, s->peak_rss_mb);
    if (out)
        printf("  results                %s\n", out);
}

static int cmd_run(int argc, char **argv)
{
    const char *config = NULL, *out = NULL;
    char **sets = sim_xcalloc((size_t)argc + 1, sizeof *sets);
    int n_sets = 0, quiet = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--set") && i + 1 < argc)
            sets[n_sets++] = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--quiet"))
            quiet = 1;
        else if (argv[i][0] == '-' || config) {
            fprintf(stderr, "servesim run: unexpected argument '%s'\n%s", argv[i], usage);
            free(sets);
            return 2;
        } else
            config = argv[i];
    }
    if (!config) {
        fprintf(stderr, "servesim run: missing CONFIG.json\n%s", usage);
        free(sets);
        return 2;
    }

    sim_err err = {{0}};
    run_config cfg;
    char out_buf[4096];
    int status = RUN_BAD_INPUT;
    if (run_config_load(config, sets, n_sets, &cfg, &err) == 0) {
        if (!out) {
            run_default_out(config, out_buf, sizeof out_buf);
            out = out_buf;
        }
        run_result r;
        run_source src = {config, sets, n_sets};
        if (outpath_make_parents(out, &err) == 0)
            status = run_to_file(&cfg, &src, out, &r, &err);
        if (status == RUN_OK && !quiet) {
            print_summary(&cfg, &r.summary, r.cost_sources, out);
            if (r.workload_note[0])
                printf("  workload               %s\n", r.workload_note);
        }
    }
    if (status != RUN_OK)
        fprintf(stderr, "servesim: error: %s\n", err.msg);
    run_config_fini(&cfg);
    free(sets);
    return status;
}

/* Subcommands: one line each. A subcommand gets the arguments after its
 * name and returns the exit status. */
typedef struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv);
} cli_command;

static const cli_command commands[] = {
    {"run", cmd_run},
    {"sweep", cmd_sweep},
    {"capacity", cmd_capacity},
    {"trace", cmd_trace},
    {"cost", cmd_cost},
    {NULL, NULL},
};

int cli_main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "--version")) {
        printf("servesim %s\n", SERVESIM_VERSION);
        return 0;
    }
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))) {
        fputs(usage, stdout);
        return 0;
    }
    for (int i = 0; argc >= 2 && commands[i].name; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 2, argv + 2);
    if (argc >= 2)
        fprintf(stderr, "servesim: unknown command '%s'\n", argv[1]);
    fputs(usage, stderr);
    return 2;
}
