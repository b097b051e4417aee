/* `servesim capacity CONFIG.json --slo ttft_p90=500ms,tpot_p90=50ms
 * [--attain 0.9] [--seeds N] [--start RATE] [--tolerance F] [-j N]
 * [--set path=value ...] [--quiet]`: the highest request rate at which the
 * config meets the SLO (capacity.h), per instance and per GPU, with every
 * probe and the two runs that bracket the answer.
 *
 * Exit status: 0 found; 1 no rate met the SLO, none failed it (the rate
 * printed is then a lower bound), or a run failed; 2 bad usage or bad
 * config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool/capacity.h"
#include "tool/cmd_capacity.h"
#include "tool/config.h"
#include "sim/jsoncfg.h"

static const char capacity_usage[] =
    "usage: servesim capacity CONFIG.json --slo METRIC_STAT=MS[,...] [--attain F] [--seeds N]\n"
    "                [--start RATE] [--tolerance F] [-j N] [--set path=value ...] [--quiet]\n"
    "\n"
    "  --slo          bounds on the run's statistics, e.g. ttft_p90=500ms,tpot_p90=50ms\n"
    "                 (ttft, tbt, tpot, e2e, queue x mean, p50, p90, p99; ms, or 0.5s)\n"
    "  --attain F     least share of requests meeting the ttft and tpot targets (default 0.9;\n"
    "                 0 checks the bounds alone)\n"
    "  --seeds N      runs per probed rate, averaged (default 1)\n"
    "  --start RATE   first rate probed, req/s (default the config's)\n"
    "  --tolerance F  stop when the bracket is within F of its top (default 0.02)\n"
    "  -j N           worker processes (default one per core)\n";

static int cap_number(const char *flag, const char *v, double min, double max, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (!*v || *end || !(d >= min && d <= max)) {
        fprintf(stderr, "servesim capacity: %s: expected a number in [%g, %g], got '%s'\n%s",
                flag, min, max, v, capacity_usage);
        return -1;
    }
    *out = d;
    return 0;
}

static int cap_integer(const char *flag, const char *v, long min, long max, int *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < min || n > max) {
        fprintf(stderr, "servesim capacity: %s: expected an integer in [%ld, %ld], got '%s'\n%s",
                flag, min, max, v, capacity_usage);
        return -1;
    }
    *out = (int)n;
    return 0;
}

static void cap_print_probe(const cap_spec *spec, int i, const cap_probe *p)
{
    printf("  %5d %10.3f %7.1f%%", i + 1, p->rate, 100 * p->mean.slo_attain);
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
    printf("  %5s %10s %8s", "probe", "rate/s", "attain");
    for (int b = 0; b < spec->n_bounds; b++) {
        char h[40];
        snprintf(h, sizeof h, "%s ms", cap_bound_name(&spec->bounds[b], name, sizeof name));
        printf(" %12s", h);
    }
    printf("\n");
    for (int i = 0; i < r->n_probes; i++)
        cap_print_probe(spec, i, &r->probes[i]);
    if (r->lo >= 0 && r->hi >= 0) {
        printf("capacity  %.3f req/s: %.3f per instance, %.3f per GPU\n", r->rate,
               r->per_instance, r->per_gpu);
    } else if (r->lo >= 0) {
        /* Every probe passed: lo is the highest rate probed. */
        printf("capacity  >= %.3f req/s: no failing rate found up to that rate, the highest "
               "probed (>= %.3f per instance, >= %.3f per GPU)\n", r->rate, r->per_instance,
               r->per_gpu);
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
    const char *config = NULL;
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
        } else if (!strcmp(a, "-j") && v) {
            if (cap_integer(a, argv[++i], 1, 4096, &spec.jobs))
                goto out;
        } else if (!strcmp(a, "--set") && v) {
            sets[n_sets++] = argv[++i];
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
            fprintf(stderr, "servesim: error: --set %s: %s\n", sets[i], err.msg);
            cJSON_Delete(root);
            goto out;
        }
    cap_result r;
    cap_status rc = cap_search(root, config, &spec, &r, &err);
    cJSON_Delete(root);
    if (rc != CAP_OK) {
        fprintf(stderr, "servesim: error: %s\n", err.msg);
        status = rc;   /* CAP_FAILED 1, CAP_BAD_INPUT 2 */
        goto out;
    }
    if (!quiet)
        cap_print(config, &spec, &r);
    status = r.lo >= 0 && r.hi >= 0 ? 0 : 1;
    cap_result_fini(&r);
out:
    free(sets);
    return status;
}
