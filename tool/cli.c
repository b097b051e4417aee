/* `servesim` subcommands (see cli.h). A run goes: load and validate the
 * config, create the cluster (which validates policies, cost model and
 * workload), open the results file as <out>.partial, simulate, write the
 * summary and commit the file into place, print the summary table. */
#include "tool/cli.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/cluster.h"
#include "tool/cmd_capacity.h"
#include "tool/cmd_cost.h"
#include "tool/cmd_plugin.h"
#include "tool/cmd_sweep.h"
#include "tool/cmd_trace.h"
#include "tool/config_doc.h"
#include "tool/outpath.h"
#include "tool/runinfo.h"
#include "tool/runner.h"
#include "version.h"

static const char usage[] =
    "usage: servesim COMMAND [ARGS]   (servesim COMMAND --help for its options)\n"
    "\n"
    "  run CONFIG.json [--set path=value ...] [--out results.h5] [--quiet]\n"
    "                  simulate one config into one results file\n"
    "  sweep EXP.json [-j N] [--set path=value ...] [--out results.h5] ...\n"
    "                  run every point of an experiment into one results file\n"
    "  capacity CONFIG.json --slo ttft_p90=MS,tpot_p90=MS [--over PATH] ...\n"
    "                  the highest load that meets an SLO\n"
    "  trace stats|convert FILE ...\n"
    "                  statistics of a trace; conversion to the native format\n"
    "  cost [CONFIG.json] [--model M] [--gpu G] [--tp N] ...\n"
    "                  one iteration's cost, operator by operator\n"
    "  plugin build POLICY.c | info LIB | check LIB [--params JSON] ...\n"
    "                  build, inspect or check a policy plugin (plugins/README.md)\n"
    "  help config [--markdown]\n"
    "                  every run-config key: default, accepted values, meaning\n"
    "                  (the same as docs/config.md)\n"
    "  --version       the version and the commit it was built from\n";

static const char run_usage[] =
    "usage: servesim run CONFIG.json [--set path=value ...] [--out results.h5] [--quiet]\n"
    "\n"
    "  CONFIG.json       a run config (keys: servesim help config, docs/config.md)\n"
    "  --set path=value  override a config value, e.g. --set workload.arrival.rate_per_s=8;\n"
    "                    the value is JSON if it parses as JSON, else a string; one that\n"
    "                    starts with {, [ or \" must be valid JSON (repeatable)\n"
    "  --out FILE        results file (HDF5, tool/OUTPUT.md); default results/<config name>.h5\n"
    "  --quiet           print nothing but errors\n";

static void print_pctl(const char *name, const pctl *p, double scale, const char *unit)
{
    printf("  %-22s %10.2f %10.2f %10.2f %10.2f  %s\n", name, p->mean * scale,
           p->p50 * scale, p->p90 * scale, p->p99 * scale, unit);
}

/* "Llama-3-70B on 8 x H100-SXM-80GB: 2 instances of 4 GPUs (tp=4)", one
 * clause per pool, with its name and role when there are several: the
 * GPU count first, so that it reads as the GPUs in all. */
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
        char layout[64] = "";
        if (p->par.pp > 1 || p->par.ep > 1 || p->par.dp > 1)
            snprintf(layout, sizeof layout, ", pp=%d, ep=%d, dp=%d", p->par.pp, p->par.ep,
                     p->par.dp);
        used += (size_t)snprintf(buf + used, size - used,
                                 "%s%s%s on %d x %s: %d instance%s of %d GPU%s (tp=%d%s)",
                                 k ? "; " : "", pool_name, p->model.name, p->instances * g,
                                 p->gpu.name, p->instances, p->instances == 1 ? "" : "s", g,
                                 g == 1 ? "" : "s", p->par.tp, layout);
    }
}

static void print_summary(const run_config *cfg, const run_summary *s,
                          const char *sources, const char *out)
{
    char cluster_text[1024];
    describe_cluster(cfg, cluster_text, sizeof cluster_text);
    char workload[512];
    runinfo_workload(cfg->root, workload, sizeof workload);
    printf("servesim %s (%s): %s, seed %llu\n", SERVESIM_SEMVER, SERVESIM_VERSION,
           cluster_text, (unsigned long long)s->seed);
    printf("  workload               %s\n", workload);
    printf("  requests               %llu completed of %llu (%llu lengths clamped to context)\n",
           (unsigned long long)s->completed, (unsigned long long)s->arrived,
           (unsigned long long)s->clamped);
    if (s->measured != s->completed || s->window_start_s > 0)
        printf("  measured               %llu requests, arriving in [%.1f, %.1f] s "
               "(metrics.warmup_s, metrics.cooldown_s): the statistics below\n",
               (unsigned long long)s->measured, s->window_start_s, s->window_end_s);
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
    if (s->prefix_caching)
        printf("  prefix cache           %.1f%% of prompt tokens hit (%llu prefill tokens "
               "saved), %.1f%% of blocks; %llu evictions\n",
               s->kv_lookup_tokens ? 100.0 * s->kv_hit_tokens / s->kv_lookup_tokens : 0,
               (unsigned long long)s->kv_hit_tokens,
               s->kv_lookup_blocks ? 100.0 * s->kv_hit_blocks / s->kv_lookup_blocks : 0,
               (unsigned long long)s->kv_evictions);
    if (s->sessions.session_turns) {
        const sess_summary *x = &s->sessions;
        printf("  sessions               %llu completed (%llu turns); time mean %.2f s, p50 "
               "%.2f, p99 %.2f; resume delay mean %.1f ms, p99 %.1f\n",
               (unsigned long long)x->sessions_completed, (unsigned long long)x->session_turns,
               x->session_s_mean, x->session_s_p50, x->session_s_p99, x->resume_s_mean * 1e3,
               x->resume_s_p99 * 1e3);
        if (x->context_recomputed_tokens)
            printf("  session context        %llu tokens of earlier turns computed again\n",
                   (unsigned long long)x->context_recomputed_tokens);
        printf("  session KV hits        %.1f%% per later turn, %.1f%% first turns, %.1f%% per "
               "session (median %.1f%%); %llu affinity breaks\n", 100 * x->turn_hit_ratio,
               100 * x->first_turn_hit_ratio, 100 * x->session_hit_ratio,
               100 * x->session_hit_p50,
               (unsigned long long)x->affinity_breaks);
        if (x->pins)
            printf("  KV retention           %llu pins: %llu taken by the next turn, %llu "
                   "expired; %.0f block-seconds (%.1f GiB-s) pinned\n",
                   (unsigned long long)x->pins, (unsigned long long)x->pin_reuses,
                   (unsigned long long)x->pin_expiries, x->pinned_block_s, x->pinned_gib_s);
        if (x->offloads)
            printf("  KV retention           %llu turns offloaded to the host tier, %llu HBM "
                   "blocks dropped\n", (unsigned long long)x->offloads,
                   (unsigned long long)x->offload_blocks);
    }
    if (s->kv_tier_load_bytes > 0 || s->kv_tier_write_bytes > 0)
        printf("  KV tiers               %.1f%% of prompt tokens loaded from tiers; %.2f GB "
               "loaded, %.2f GB written; loads stalled iterations %.3f s\n",
               s->kv_lookup_tokens ? 100.0 * s->kv_tier_hit_tokens / s->kv_lookup_tokens : 0,
               s->kv_tier_load_bytes / 1e9, s->kv_tier_write_bytes / 1e9, s->kv_load_stall_s);
    if (s->router_oracle_requests)
        printf("  router vs oracle       prefix hit %.1f%% of prompt tokens at routing, an "
               "oracle %.1f%% (ratio %.3f)\n", 100 * s->router_hit_ratio,
               100 * s->oracle_hit_ratio, s->router_oracle_ratio);
    if (s->kv_tier_load_bytes > 0)
        printf("  TTFT split             p50 queue %.1f ms, load %.1f ms, compute %.1f ms; "
               "p99 %.1f / %.1f / %.1f ms\n", s->queue_s.p50 * 1e3, s->ttft_load_s.p50 * 1e3,
               s->ttft_compute_s.p50 * 1e3, s->queue_s.p99 * 1e3, s->ttft_load_s.p99 * 1e3,
               s->ttft_compute_s.p99 * 1e3);
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
    if (s->lora_polar_selections)
        printf("  LoRA adapter selection %llu picks by POLAR, %.1f%% of them a best adapter, "
               "regret %.3f\n", (unsigned long long)s->lora_polar_selections,
               100 * s->lora_polar_optimal_ratio, s->lora_polar_regret);
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
    if (s->ep_imbalance > 0) {
        double total = 0;
        for (int k = 0; k < OP_KIND_COUNT; k++)
            total += s->term_s[k];
        double a2a = s->term_s[OP_A2A_DISPATCH] + s->term_s[OP_A2A_COMBINE];
        printf("  expert parallel        imbalance %.3f mean, %.3f max (distinct experts "
               "%.3f); all-to-all %.1f%% of GPU time, %.1f GB; %llu rebalances, %.2f GB "
               "moved\n", s->ep_imbalance, s->ep_imbalance_max, s->ep_distinct_imbalance,
               total > 0 ? 100 * a2a / total : 0, s->ep_a2a_bytes / 1e9,
               (unsigned long long)s->ep_rebalances, s->ep_moved_bytes / 1e9);
    }
    if (s->offload_hits + s->offload_misses) {
        double total = 0;
        for (int k = 0; k < OP_KIND_COUNT; k++)
            total += s->term_s[k];
        printf("  expert offloading      hit rate %.1f%%, %llu misses (%llu low precision), "
               "%.1f GB full + %.1f GB low loaded; loads %.1f%% of GPU time\n",
               100.0 * (double)s->offload_hits / (double)(s->offload_hits + s->offload_misses),
               (unsigned long long)s->offload_misses, (unsigned long long)s->offload_low_loads,
               s->offload_bytes_high / 1e9, s->offload_bytes_low / 1e9,
               total > 0 ? 100 * s->term_s[OP_EXPERT_LOAD] / total : 0);
    }
    bool priced = cfg->sys.scale.ops != NULL;
    for (int32_t k = 0; k < cfg->sys.n_pools; k++)
        priced |= cfg->sys.pools[k].lifecycle.price_per_gpu_hour > 0;
    if (priced)
        printf("  GPU time               %.3f GPU-h held, %.3f busy; $%.2f\n",
               s->gpu_held_s / 3600, s->gpu_busy_s / 3600, s->cost_usd);
    printf("  cost source            %s\n", sources);
    printf("  wall                   %.3f s, %.0f iterations/s, %.0f requests/s, "
           "peak RSS %.1f MB\n", s->wall_s, s->iterations / s->wall_s,
           s->completed / s->wall_s, s->peak_rss_mb);
    if (out)
        printf("  results                %s\n", out);
}

/* Lengths cut to the context: loud when they are more than 1% of the
 * requests (a trace of long requests on a short-context model). */
static void warn_clamped(const run_config *cfg, const run_summary *s)
{
    if (!s->arrived || s->clamped * 100 < s->arrived)
        return;
    fprintf(stderr, "servesim: WARNING: %llu of %llu requests (%.1f%%) did not fit the context "
            "of %d tokens and were cut to fit it (input to the context less one token, output "
            "to what is left): the lengths simulated are not the workload's.\n"
            "servesim: WARNING: use a longer-context model, raise instance.max_context_tokens, "
            "or set workload.context_policy to \"drop\" to leave such requests out.\n",
            (unsigned long long)s->clamped, (unsigned long long)s->arrived,
            100.0 * (double)s->clamped / (double)s->arrived, cluster_setup_max_context(&cfg->sys));
}

/* A window (metrics.warmup_s, cooldown_s) that holds no request. */
static void warn_empty_window(const run_summary *s)
{
    if (s->completed && !s->measured)
        fprintf(stderr, "servesim: WARNING: no request arrived in the summary's window [%.1f, "
                "%.1f] s: its latency, SLO and throughput statistics are empty; shorten "
                "metrics.warmup_s or metrics.cooldown_s, or run more requests.\n",
                s->window_start_s, s->window_end_s);
}

static int cmd_run(int argc, char **argv)
{
    const char *config = NULL, *out = NULL;
    if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        fputs(run_usage, stdout);
        return 0;
    }
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
            fprintf(stderr, "servesim run: unexpected argument '%s'\n%s", argv[i], run_usage);
            free(sets);
            return 2;
        } else
            config = argv[i];
    }
    if (!config) {
        fprintf(stderr, "servesim run: missing CONFIG.json\n%s", run_usage);
        free(sets);
        return 2;
    }

    sim_err err = {{0}};
    run_config cfg;
    char out_buf[4096];
    int status = RUN_BAD_INPUT;
    if (run_config_load(config, sets, n_sets, &cfg, &err) == 0) {
        char warning[1024];
        if (runinfo_trace_arrival_warning(cfg.root, sets, n_sets, NULL, warning,
                                          sizeof warning))
            fputs(warning, stderr);
        if (!out) {
            run_default_out(config, out_buf, sizeof out_buf);
            out = out_buf;
        }
        run_result r;
        run_source src = {config, sets, n_sets};
        if (outpath_make_parents(out, &err) == 0)
            status = run_to_file(&cfg, &src, out, &r, &err);
        if (status == RUN_OK) {
            warn_clamped(&cfg, &r.summary);
            warn_empty_window(&r.summary);
        }
        if (status == RUN_OK && !quiet) {
            print_summary(&cfg, &r.summary, r.cost_sources, out);
            if (r.workload_note[0])
                printf("  workload counts        %s\n", r.workload_note);
            fputs(r.moves_note, stdout);
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
    {"plugin", cmd_plugin},
    {NULL, NULL},
};

/* `servesim help config [--markdown]`: every config key (config_doc.h). */
static int help_config(int argc, char **argv)
{
    bool markdown = argc >= 1 && !strcmp(argv[0], "--markdown");
    if (argc > (markdown ? 1 : 0)) {
        fprintf(stderr, "usage: servesim help config [--markdown]\n");
        return 2;
    }
    cfgdoc d;
    sim_err err = {{0}};
    if (cfgdoc_collect(&d, &err)) {
        fprintf(stderr, "servesim: error: %s\n", err.msg);
        return 1;
    }
    cfgdoc_write(stdout, &d, markdown);
    cfgdoc_fini(&d);
    return 0;
}

static bool is_help(const char *a)
{
    return !strcmp(a, "-h") || !strcmp(a, "--help");
}

static const cli_command *find_command(const char *name)
{
    for (int i = 0; commands[i].name; i++)
        if (!strcmp(name, commands[i].name))
            return &commands[i];
    return NULL;
}

int cli_main(int argc, char **argv)
{
    static char help_arg[] = "--help";
    static char *help_argv[] = {help_arg, NULL};
    if (argc >= 2 && !strcmp(argv[1], "--version")) {
        printf("servesim %s (commit %s)\n", SERVESIM_SEMVER, SERVESIM_VERSION);
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "help") && !strcmp(argv[2], "config"))
        return help_config(argc - 3, argv + 3);
    /* `servesim help run` is `servesim run --help`. */
    if (argc >= 3 && !strcmp(argv[1], "help") && find_command(argv[2]))
        return find_command(argv[2])->run(1, help_argv);
    if (argc >= 2 && (is_help(argv[1]) || !strcmp(argv[1], "help"))) {
        fputs(usage, stdout);
        return 0;
    }
    const cli_command *c = argc >= 2 ? find_command(argv[1]) : NULL;
    if (c) {
        /* -h or --help anywhere after the command: its usage, exit 0. */
        for (int i = 2; i < argc; i++)
            if (is_help(argv[i]))
                return c->run(1, help_argv);
        return c->run(argc - 2, argv + 2);
    }
    if (argc >= 2)
        fprintf(stderr, "servesim: unknown command '%s'\n", argv[1]);
    fputs(usage, stderr);
    return 2;
}
