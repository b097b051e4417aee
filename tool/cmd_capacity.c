/* `servesim capacity CONFIG.json --slo ttft_p90=500ms,tpot_p90=50ms
 * [--attain 0.9] [--seeds N] [--start RATE] [--tolerance F] [--max-probes N]
 * [-j N] [--set path=value ...] [--quiet]`: the highest request rate at which
 * the config meets the SLO (capacity.h), per instance and per GPU, with every
 * probe and the two runs that bracket the answer. When the search stops at a
 * cap (CAP_BRACKET_STEPS doublings or halvings, or --max-probes), it says
 * which, and what to change.
 *
 * Exit status: 0 found (also when narrowing stopped at --max-probes: the
 * bracket printed is then wider than the tolerance, and the output says
 * so); 1 no bracket: no rate met the SLO, or none failed it (the rate
 * printed is then a lower bound), within the bracketing cap, or a run
 * failed; 2 bad usage or bad config (checked, cluster built, before any
 * run). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/jsoncfg.h"
#include "tool/args.h"
#include "tool/capacity.h"
#include "tool/cmd_capacity.h"
#include "tool/config.h"
#include "tool/outpath.h"
#include "tool/runinfo.h"

static const char capacity_usage[] =
    "usage: servesim capacity CONFIG.json --slo METRIC_STAT=MS[,...] [--attain F] [--seeds N]\n"
    "                [--over PATH] [--start VALUE] [--tolerance F] [--max-probes N] [-j N]\n"
    "                [--set path=value ...] [--out probes.h5] [--quiet]\n"
    "\n"
    "  --slo          bounds on the run's statistics, e.g. ttft_p90=500ms,tpot_p90=50ms\n"
    "                 (ttft, tbt, tpot, e2e, queue x mean, p50, p90, p99; ms, or 0.5s;\n"
    "                 each bound once)\n"
    "  --attain F     least share of requests meeting the ttft and tpot targets (default 0.9;\n"
    "                 0 checks the bounds alone)\n"
    "  --seeds N      runs per probed rate, averaged (default 1)\n"
    "  --over PATH    the numeric config path searched (default workload.arrival.rate_per_s;\n"
    "                 for a trace replayed on its own timestamps, workload.rate_scale, which\n"
    "                 keeps the trace's arrival pattern); the search finds the highest\n"
    "                 value that meets the SLO, so higher values must be harder (a load);\n"
    "                 integer paths (workload.arrival.clients) go in whole numbers\n"
    "  --start VALUE  first value probed (default the config's); the search doubles or\n"
    "                 halves it at most 24 times to find a passing and a failing value\n"
    "  --tolerance F  stop when the bracket is within F of its top (default 0.02)\n"
    "  --max-probes N stop narrowing after N probes in all (default 40)\n"
    "  -j N           worker processes (default one per core)\n"
    "  --set path=value  override a config value (repeatable; as in servesim run)\n"
    "  --out FILE     save every probe (value, pass, reason, mean summary) to an HDF5 file\n"
    "                 (tool/OUTPUT.md, \"Capacity probes\")\n";

static int cap_number(const char *flag, const char *v, double min, double max, double *out)
{
    sim_err err;
    if (args_num(flag, v, min, max, out, &err)) {
        fprintf(stderr, "servesim capacity: %s\n%s", err.msg, capacity_usage);
        return -1;
    }
    return 0;
}

static int cap_integer(const char *flag, const char *v, int64_t min, int64_t max, int *out)
{
    sim_err err;
    int64_t n;
    if (args_int(flag, v, min, max, &n, &err)) {
        fprintf(stderr, "servesim capacity: %s\n%s", err.msg, capacity_usage);
        return -1;
    }
    *out = (int)n;
    return 0;
}

static void cap_print_probe(const cap_spec *spec, int i, const cap_probe *p)
{
    printf("  %5d %10.4g %10.3f %7.1f%%", i + 1, p->rate, p->mean.throughput_req_s,
           100 * p->mean.slo_attain);
    for (int b = 0; b < spec->n_bounds; b++)
        printf(" %12.2f", cap_bound_value(&spec->bounds[b], &p->mean) * 1e3);
    printf("  %s%s%s\n", p->pass ? "pass" : "fail", p->pass ? "" : ": ", p->why);
}

static void cap_print(const char *config, const cap_spec *spec, const cap_result *r)
{
    char name[CAP_NAME_SIZE];
    printf("capacity of %s: SLO", config);
    for (int b = 0; b < spec->n_bounds; b++)
        printf("%s %s <= %g ms", b ? "," : "",
               cap_bound_name(&spec->bounds[b], name, sizeof name),
               spec->bounds[b].limit_s * 1e3);
    if (spec->attain > 0)
        printf(", attainment >= %g%%", 100 * spec->attain);
    printf("; %d seed%s per probe\n", spec->seeds, spec->seeds == 1 ? "" : "s");
    const char *shown = strrchr(r->over, '.') ? strrchr(r->over, '.') + 1 : r->over;
    printf("  searching %s%s\n", r->over, r->integer ? " (whole numbers)" : "");
    printf("  %5s %10.10s %10s %8s", "probe", shown, "req/s", "attain");
    for (int b = 0; b < spec->n_bounds; b++) {
        char h[40];
        snprintf(h, sizeof h, "%s ms", cap_bound_name(&spec->bounds[b], name, sizeof name));
        printf(" %12s", h);
    }
    printf("\n");
    for (int i = 0; i < r->n_probes; i++)
        cap_print_probe(spec, i, &r->probes[i]);
    if (r->lo >= 0 && r->hi >= 0 && !r->is_rate) {
        printf("capacity  %s = %.6g: %.3f req/s measured", r->over, r->rate, r->throughput);
        if (r->per_instance > 0)
            printf(", %.3f per instance, %.3f per GPU", r->per_instance, r->per_gpu);
        printf("\n");
    } else if (r->lo >= 0 && !r->is_rate) {
        printf("capacity  %s >= %.6g: no failing value found up to that, the highest probed "
               "(%.3f req/s measured)\n", r->over, r->rate, r->throughput);
    } else if (r->lo >= 0 && r->hi >= 0) {
        printf("capacity  %.3f req/s: %.3f per instance, %.3f per GPU\n", r->rate,
               r->per_instance, r->per_gpu);
    } else if (r->lo >= 0) {
        /* Every probe passed: lo is the highest rate probed. */
        printf("capacity  >= %.3f req/s: no failing rate found up to that rate, the highest "
               "probed (>= %.3f per instance, >= %.3f per GPU)\n", r->rate, r->per_instance,
               r->per_gpu);
    }
    if (r->capped == CAP_CAPPED_BRACKET && r->lo < 0 && r->integer) {
        printf("stopped: halving %s from %.6g down to 1 found no passing value (whole "
               "numbers: none below 1); the search assumes higher values are harder\n",
               r->over, r->probes[0].rate);
    } else if (r->capped == CAP_CAPPED_BRACKET && r->lo < 0 && r->is_rate) {
        printf("stopped at the probe cap: %d halvings from %.6g req/s found no passing rate "
               "(the lowest probed is %.6g req/s); start lower with --start\n",
               CAP_BRACKET_STEPS, r->probes[0].rate, r->probes[r->n_probes - 1].rate);
    } else if (r->capped == CAP_CAPPED_BRACKET && r->is_rate && r->lo >= 0) {
        printf("stopped at the probe cap: %d doublings from %.6g req/s found no failing rate; "
               "start higher with --start\n", CAP_BRACKET_STEPS, r->probes[0].rate);
    } else if (r->capped == CAP_CAPPED_BRACKET && r->lo < 0) {
        printf("stopped at the probe cap: %d halvings from %.6g found no passing value of %s "
               "(the lowest probed is %.6g); start lower with --start\n",
               r->n_probes - 1, r->probes[0].rate, r->over, r->probes[r->n_probes - 1].rate);
    } else if (r->capped == CAP_CAPPED_BRACKET) {
        printf("stopped at the probe cap: %d doublings from %.6g found no failing value of %s; "
               "start higher with --start\n", r->n_probes - 1, r->probes[0].rate, r->over);
    } else if (r->capped == CAP_CAPPED_PROBES) {
        printf("stopped at the probe cap (--max-probes %d) with the bracket %.3f to %.3f "
               "req/s, wider than --tolerance %g; raise --max-probes\n", spec->max_probes,
               r->probes[r->lo].rate, r->probes[r->hi].rate, spec->tolerance);
    }
    printf("bracketing runs:\n");
    if (r->lo >= 0)
        cap_print_probe(spec, r->lo, &r->probes[r->lo]);
    else
        printf("  no probed rate meets the SLO\n");
    if (r->hi >= 0)
        cap_print_probe(spec, r->hi, &r->probes[r->hi]);
    else
        printf("  no probed rate misses the SLO\n");
}

int cmd_capacity(int argc, char **argv)
{
    if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        fputs(capacity_usage, stdout);
        return 0;
    }
    const char *config = NULL, *out_path = NULL;
    char **sets = sim_xcalloc((size_t)argc + 1, sizeof *sets);
    int n_sets = 0, quiet = 0, status = 2, have_slo = 0;
    cap_spec spec;
    cap_spec_init(&spec);
    sim_err err = {{0}};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--slo") && v) {
            if (cap_parse_slo(argv[++i], &spec, &err)) {
                fprintf(stderr, "servesim capacity: %s\n", err.msg);
                goto out;
            }
            have_slo = 1;
        } else if (!strcmp(a, "--attain") && v) {
            if (cap_number(a, argv[++i], 0, 1, &spec.attain))
                goto out;
        } else if (!strcmp(a, "--seeds") && v) {
            if (cap_integer(a, argv[++i], 1, 1000, &spec.seeds))
                goto out;
        } else if (!strcmp(a, "--start") && v) {
            if (cap_number(a, argv[++i], 1e-9, 1e9, &spec.start_rate))
                goto out;
        } else if (!strcmp(a, "--tolerance") && v) {
            if (cap_number(a, argv[++i], 1e-6, 0.5, &spec.tolerance))
                goto out;
        } else if (!strcmp(a, "--max-probes") && v) {
            if (cap_integer(a, argv[++i], 2, 10000, &spec.max_probes))
                goto out;
        } else if (!strcmp(a, "-j") && v) {
            if (cap_integer(a, argv[++i], 1, 4096, &spec.jobs))
                goto out;
        } else if (!strcmp(a, "--set") && v) {
            sets[n_sets++] = argv[++i];
        } else if (!strcmp(a, "--over") && v) {
            spec.over = argv[++i];
        } else if (!strcmp(a, "--out") && v) {
            out_path = argv[++i];
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-' || config) {
            fprintf(stderr, "servesim capacity: unexpected argument '%s'\n%s", a, capacity_usage);
            goto out;
        } else {
            config = a;
        }
    }
    if (!config || !have_slo) {
        fprintf(stderr, "servesim capacity: missing %s\n%s", config ? "--slo" : "CONFIG.json",
                capacity_usage);
        goto out;
    }
    cJSON *root;
    if (jcfg_load_file(config, &root, &err)) {
        fprintf(stderr, "servesim: error: %s\n", err.msg);
        goto out;
    }
    for (int i = 0; i < n_sets; i++)
        if (jcfg_set(root, sets[i], &err)) {
            fprintf(stderr, "servesim: error: command line --set %s: %s\n", sets[i], err.msg);
            cJSON_Delete(root);
            goto out;
        }
    spec.sets = sets;
    spec.n_sets = n_sets;
    /* The probes' file is checked before any run: a folder or an input
     * there is known at once. */
    if (out_path) {
        outpath_inputs in = {0};
        outpath_inputs_add(&in, config);
        outpath_inputs_add_json(&in, root);
        int bad = outpath_make_parents(out_path, &err) || outpath_check(out_path, &in, &err);
        outpath_inputs_fini(&in);
        if (bad) {
            fprintf(stderr, "servesim: error: %s\n", err.msg);
            cJSON_Delete(root);
            goto out;
        }
    }
    /* Arrival times that replace a trace's own, said before the runs. */
    char warning[1024];
    const char *over = spec.over ? spec.over : cap_default_over(root);
    if (!quiet && runinfo_trace_arrival_warning(root, sets, n_sets, over, warning,
                                                sizeof warning))
        fprintf(stderr, "%s", warning);
    cap_result r;
    cap_status rc = cap_search(root, config, &spec, &r, &err);
    if (rc != CAP_OK) {
        fprintf(stderr, "servesim: error: %s\n", err.msg);
        status = rc;   /* CAP_FAILED 1, CAP_BAD_INPUT 2 */
        cJSON_Delete(root);
        goto out;
    }
    if (!quiet) {
        char wl[512];
        runinfo_workload(root, wl, sizeof wl);
        printf("workload: %s\n", wl);
        cap_print(config, &spec, &r);
    }
    status = r.lo >= 0 && r.hi >= 0 ? 0 : 1;
    if (out_path && cap_write_probes(out_path, config, root, &spec, &r, &err)) {
        fprintf(stderr, "servesim: error: %s\n", err.msg);
        status = CAP_FAILED;
    } else if (out_path && !quiet) {
        printf("probes    %s\n", out_path);
    }
    cJSON_Delete(root);
    cap_result_fini(&r);
out:
    free(sets);
    return status;
}
