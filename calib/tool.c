/* calib-tool: the host side of calibration (no GPU needed).
 *
 *   calib-tool plan [--quick] [--models A,B] [--layer | --plan PLAN] [--gpu NAME]
 *                   [--skip-covered TABLE] [--counter-period-ms P] [--out PLAN]
 *                   [--schedule FILE --session PLAN [--later PLAN] [--deadline S]]
 *       builds the measurement plan (or reads --plan), leaves out what TABLE
 *       has measured (--skip-covered), writes the result to --out and prints
 *       an estimate of its GPU time per family on GPU NAME (default
 *       H100-SXM-80GB) for an energy counter updating every P ms (default
 *       100); --schedule takes from it what one session measures within a
 *       deadline of S seconds (default 510), in priority order
 *       (calib/session.h), and writes that plan to --session, the schedule
 *       calib/h200_run.sh follows to FILE and the rest to --later
 *   calib-tool synth --gpu NAME [--quick] [--models A,B] [--plan PLAN] --out TABLE
 *       writes a synthetic table: the plan priced by the roofline of NAME
 *   calib-tool synth-layers --gpu NAME [--scale S] --plan PLAN --out FILE
 *       writes a layer file "measured" by the roofline (times S), for tests
 *   calib-tool loo TABLE
 *       leave-one-out interpolation error per operator family
 *   calib-tool layer --table TABLE --measured LAYERS
 *       predicted (from the table) against measured whole-layer time and energy
 *   calib-tool merge --out TABLE A.json B.json ...
 *       one table from the tables of several runs (--only, --start) on the
 *       same GPU; a later table completes a family an earlier one cut short
 *
 * Design. Each subcommand is a function over its own argv; everything it
 * prints goes to stdout, errors to stderr with exit status 1 (2 for usage).
 * The work is done by calib/planner.c, synth.c, layercmp.c and
 * models/cost_table.c, which the tests call directly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib/import_vidur.h"
#include "calib/layercmp.h"
#include "calib/merge.h"
#include "calib/planner.h"
#include "calib/session.h"
#include "calib/synth.h"
#include "models/cost_table.h"
#include "sim/jsoncfg.h"

typedef struct args {
    const char *out, *gpu, *models, *plan, *table, *measured, *schedule;
    const char *session, *later, *covered;
    int quick, layer;
    double scale, counter_period_ms, deadline_s;
    const char *pos[64];
    int n_pos;
} args;

static int usage(void)
{
    fputs("usage: calib-tool plan [--quick] [--models A,B] [--layer | --plan PLAN] [--gpu NAME]\n"
          "                       [--skip-covered TABLE] [--counter-period-ms P] [--out PLAN]\n"
          "                       [--schedule FILE --session PLAN [--later PLAN] [--deadline S]]\n"
          "       calib-tool synth --gpu NAME [--quick] [--models A,B] [--plan PLAN] --out TABLE\n"
          "       calib-tool synth-layers --gpu NAME [--scale S] --plan PLAN --out FILE\n"
          "       calib-tool loo TABLE\n"
          "       calib-tool layer --table TABLE --measured LAYERS\n"
          "       calib-tool merge --out TABLE A.json B.json ...\n"
          "       calib-tool import-vidur [--src DIR] [--out DIR] [--fit FILE|-]\n"
          "see calib/README.md\n", stderr);
    return 2;
}

static int parse_args(int argc, char **argv, args *a)
{
    memset(a, 0, sizeof *a);
    a->scale = 1;
    a->counter_period_ms = CALIB_COUNTER_PERIOD_ASSUMED_S * 1e3;
    a->deadline_s = CALIB_SCHED_DEADLINE_S;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        const char **slot = !strcmp(s, "--out") ? &a->out
                          : !strcmp(s, "--gpu") ? &a->gpu
                          : !strcmp(s, "--models") ? &a->models
                          : !strcmp(s, "--plan") ? &a->plan
                          : !strcmp(s, "--table") ? &a->table
                          : !strcmp(s, "--measured") ? &a->measured
                          : !strcmp(s, "--schedule") ? &a->schedule
                          : !strcmp(s, "--session") ? &a->session
                          : !strcmp(s, "--later") ? &a->later
                          : !strcmp(s, "--skip-covered") ? &a->covered : NULL;
        double *num = !strcmp(s, "--scale") ? &a->scale
                    : !strcmp(s, "--counter-period-ms") ? &a->counter_period_ms
                    : !strcmp(s, "--deadline") ? &a->deadline_s : NULL;
        if (slot) {
            if (i + 1 >= argc) {
                fprintf(stderr, "calib-tool: %s needs a value\n", s);
                return -1;
            }
            *slot = argv[++i];
        } else if (num) {
            char *end = NULL;
            if (i + 1 < argc)
                *num = strtod(argv[i + 1], &end);
            if (i + 1 >= argc || *end || !(*num > 0)) {
                fprintf(stderr, "calib-tool: %s: expected a number > 0, got \"%s\"\n", s,
                        i + 1 < argc ? argv[i + 1] : "");
                return -1;
            }
            i++;
        } else if (!strcmp(s, "--quick")) {
            a->quick = 1;
        } else if (!strcmp(s, "--layer")) {
            a->layer = 1;
        } else if (s[0] == '-' && s[1]) {
            fprintf(stderr, "calib-tool: unknown option %s\n", s);
            return -1;
        } else if (a->n_pos < 64) {
            a->pos[a->n_pos++] = s;
        }
    }
    return 0;
}

static int fail(const sim_err *err)
{
    fprintf(stderr, "calib-tool: error: %s\n", err->msg);
    return 1;
}

static int get_plan(const args *a, calib_plan *plan, sim_err *err)
{
    if (a->plan)
        return calib_plan_load(a->plan, plan, err);
    calib_plan_opts o = {.quick = a->quick, .models = a->models, .layers = a->layer};
    return calib_plan_build(models_dir(), &o, plan, err);
}

static void print_estimate(const calib_plan *plan, const gpu_spec *g,
                           const calib_estimate *est)
{
    printf("estimated GPU time on %s (%s plan, energy counter every %.0f ms):\n", g->name,
           plan->name, est->counter_period_s * 1e3);
    printf("  %-14s %7s %8s %10s %10s\n", "family", "points", "energy", "latency s",
           "energy s");
    for (int f = 0; f < CTAB_FAMILY_COUNT; f++)
        if (est->points[f])
            printf("  %-14s %7d %8d %10.1f %10.1f\n", ctab_family_get((ctab_family)f)->name,
                   est->points[f], est->energy_points[f], est->latency_s[f], est->energy_s[f]);
    if (plan->n_layers)
        printf("  %-14s %7d %8s %10.1f\n", "layers", plan->n_layers, "", est->layer_s);
    printf("  total %.0f s (%.1f min)\n", est->total_s, est->total_s / 60);
}

static void print_split(const calib_session *s, const calib_estimate *all)
{
    const calib_schedule *sc = &s->schedule;
    printf("one session of %.0f s (estimates; %.0f s reserved, %.0f s spare):\n",
           sc->deadline_s, sc->reserve_total_s, sc->deadline_s - sc->reserve_total_s);
    printf("  %-14s %9s %8s %8s %8s | %8s %8s\n", "step", "entries", "points", "est s",
           "cap s", "later", "est s");
    for (int i = 0; i < sc->n_steps; i++) {
        const calib_sched_step *st = &sc->step[i];
        int f = ctab_family_find(st->name);
        printf("  %-14s %4d/%-4d %8d %8.1f %8.1f", st->name, st->entries,
               f >= 0 ? all->entries[f] : st->entries, st->points, st->est_s, st->cap_s);
        if (f >= 0)
            printf(" | %8d %8.1f", s->est_later.entries[f],
                   s->est_later.latency_s[f] + s->est_later.energy_s[f]);
        printf("\n");
    }
    for (int f = 0; f < CTAB_FAMILY_COUNT; f++)   /* families left out altogether */
        if (all->entries[f] && !s->est_session.entries[f])
            printf("  %-14s %4d/%-4d %8s %8s %8s | %8d %8.1f\n",
                   ctab_family_get((ctab_family)f)->name, 0, all->entries[f], "-", "-", "-",
                   s->est_later.entries[f], s->est_later.latency_s[f] + s->est_later.energy_s[f]);
    int tier_s[CALIB_TIER_COUNT] = {0}, tier_l[CALIB_TIER_COUNT] = {0};
    for (int i = 0; i < s->session.n_entries; i++)
        tier_s[s->session_rank[i].tier]++;
    for (int i = 0; i < s->later.n_entries; i++)
        tier_l[s->later_rank[i].tier]++;
    printf("  entries by priority tier, session/later:");
    for (int t = 0; t < CALIB_TIER_COUNT; t++)
        printf(" %s %d/%d", calib_tier_name((calib_tier)t), tier_s[t], tier_l[t]);
    printf("\n  left for later: %d entries, %d points, %.0f s: %d more session%s\n",
           sc->later_entries, sc->later_points, sc->later_est_s, sc->later_sessions,
           sc->later_sessions == 1 ? "" : "s");
}

/* Takes one session from `plan`: writes its plan, its schedule and what
 * it leaves. */
static int write_session(const args *a, const calib_plan *plan, const gpu_spec *g,
                         const calib_estimate *all, sim_err *err)
{
    double period_s = a->counter_period_ms * 1e-3;
    calib_rank *rank = sim_xcalloc((size_t)plan->n_entries + 1, sizeof *rank);
    calib_session s;
    memset(&s, 0, sizeof s);
    int rc = calib_plan_rank(plan, models_dir(), g, period_s, rank, err);
    if (rc == 0)
        rc = calib_session_build(plan, rank, g, a->deadline_s, period_s, &s, err);
    free(rank);
    if (rc) {
        calib_session_fini(&s);
        return sim_err_prefix(err, "%s", a->schedule);
    }
    calib_schedule *sc = &s.schedule;
    snprintf(sc->plan_file, sizeof sc->plan_file, "%s", a->session);
    snprintf(sc->later_file, sizeof sc->later_file, "%s", a->later ? a->later : "");
    rc = calib_sessions_needed(&s.later, models_dir(), g, a->deadline_s, period_s,
                               &sc->later_sessions, err);
    if (rc == 0)
        rc = calib_plan_save(&s.session, a->session, err);
    if (rc == 0 && a->later)
        rc = calib_plan_save(&s.later, a->later, err);
    if (rc == 0) {
        FILE *f = fopen(a->schedule, "w");
        int wrc = f ? calib_session_write(&s, f) : -1;
        if (!f || fclose(f) || wrc)
            rc = sim_errf(err, "%s: cannot write", a->schedule);
    }
    if (rc == 0) {
        printf("wrote %s: %d entries, %d layers; %s: %d steps\n", a->session,
               s.session.n_entries, s.session.n_layers, a->schedule, sc->n_steps);
        if (a->later)
            printf("wrote %s: %d entries\n", a->later, s.later.n_entries);
        print_split(&s, all);
        int n_fit, n_complete;
        char names[4096];
        rc = calib_configs_complete(plan, &s.session, models_dir(), g, &n_fit, &n_complete,
                                    names, sizeof names, err);
        if (rc == 0)
            printf("  configurations (model/TP) that fit %s and that a table of the session "
                   "prices entirely: %d of %d: %s\n", g->name, n_complete, n_fit, names);
    }
    calib_session_fini(&s);
    return rc;
}

static int cmd_plan(const args *a)
{
    sim_err err = {{0}};
    calib_plan plan;
    gpu_spec g;
    if ((!a->out && !a->schedule) || (a->schedule && !a->session) ||
        ((a->session || a->later) && !a->schedule))
        return usage();
    if (gpu_spec_load(models_dir(), a->gpu ? a->gpu : "H100-SXM-80GB", &g, &err) ||
        get_plan(a, &plan, &err))
        return fail(&err);
    int rc = 0;
    if (a->covered) {
        calib_cover_stats st;
        rc = calib_plan_skip_covered(&plan, a->covered, g.name, &st, &err);
        if (rc == 0) {
            snprintf(plan.name, sizeof plan.name, "remaining");
            printf("%s covers %d entries (%d points); left: %d entries partly measured, %d "
                   "not at all (%d points)\n", a->covered, st.entries_covered,
                   st.points_covered, st.entries_partial, st.entries_missing, st.points_left);
        }
    }
    if (rc == 0 && a->out)
        rc = calib_plan_save(&plan, a->out, &err);
    if (rc == 0) {
        calib_estimate est;
        calib_plan_estimate(&plan, &g, a->quick, a->counter_period_ms * 1e-3, &est);
        if (a->out)
            printf("wrote %s: %d entries, %d layers\n", a->out, plan.n_entries, plan.n_layers);
        print_estimate(&plan, &g, &est);
        if (a->schedule)
            rc = write_session(a, &plan, &g, &est, &err);
    }
    calib_plan_fini(&plan);
    return rc ? fail(&err) : 0;
}

static int cmd_synth(const args *a, int layers)
{
    sim_err err = {{0}};
    calib_plan plan;
    gpu_spec g;
    if (!a->out || !a->gpu || (layers && !a->plan))
        return usage();
    if (gpu_spec_load(models_dir(), a->gpu, &g, &err) || get_plan(a, &plan, &err))
        return fail(&err);
    FILE *f = fopen(a->out, "w");
    int rc = -1;
    if (f) {
        rc = layers ? calib_synth_layers(&plan, &g, a->scale, f) : calib_synth_table(&plan, &g, f);
        rc |= fclose(f);
    }
    calib_plan_fini(&plan);
    if (rc) {
        sim_errf(&err, "%s: cannot write", a->out);
        return fail(&err);
    }
    printf("wrote %s\n", a->out);
    return 0;
}

static int cmd_loo(const args *a)
{
    sim_err err = {{0}};
    if (a->n_pos != 1)
        return usage();
    ctab *t = ctab_load(a->pos[0], NULL, &err);
    if (!t)
        return fail(&err);
    printf("leave-one-out interpolation error, %s (%s)\n", a->pos[0], ctab_gpu_name(t));
    printf("  err = predicted from the two neighbours along an axis / measured - 1\n");
    printf("  %-14s %7s %8s %8s %8s %8s | %6s %8s %8s\n", "family", "points", "median",
           "p90", "max", "bias", "power", "median", "max");
    for (int f = 0; f < CTAB_FAMILY_COUNT; f++) {
        if (!ctab_n_entries(t, (ctab_family)f))
            continue;
        ctab_loo_stats lat, pw;
        ctab_loo(t, (ctab_family)f, &lat, &pw);
        printf("  %-14s %7d %7.2f%% %7.2f%% %7.2f%% %+7.2f%% | %6d %7.2f%% %7.2f%%\n",
               ctab_family_get((ctab_family)f)->name, lat.n, 100 * lat.median_abs,
               100 * lat.p90_abs, 100 * lat.max_abs, 100 * lat.mean, pw.n,
               100 * pw.median_abs, 100 * pw.max_abs);
    }
    ctab_destroy(t);
    return 0;
}

static int cmd_layer(const args *a)
{
    sim_err err = {{0}};
    if (!a->table || !a->measured)
        return usage();
    calib_layer_cmp *c;
    int n;
    if (calib_layer_compare(a->table, a->measured, models_dir(), &c, &n, &err))
        return fail(&err);
    printf("one decoder layer: measured (%s) against the table's prediction (%s)\n",
           a->measured, a->table);
    printf("  %-14s %-16s %10s %10s %7s %10s %10s %7s %9s\n", "composition", "model",
           "meas us", "pred us", "err", "meas mJ", "pred mJ", "err", "ops t/r");
    double sum_t = 0, sum_e = 0;
    int n_e = 0;
    for (int i = 0; i < n; i++) {
        double et = c[i].predicted_ns / c[i].measured_ns - 1;
        double ee = c[i].predicted_j / c[i].measured_j - 1;
        sum_t += fabs(et);
        if (isfinite(ee)) {
            sum_e += fabs(ee);
            n_e++;
        }
        printf("  %-14s %-16s %10.1f %10.1f %+6.1f%% %10.3f %10.3f %+6.1f%% %5d/%d\n",
               c[i].name, c[i].model, c[i].measured_ns / 1e3, c[i].predicted_ns / 1e3,
               100 * et, c[i].measured_j * 1e3, c[i].predicted_j * 1e3, 100 * ee,
               c[i].ops_table, c[i].ops_roofline);
    }
    if (n)
        printf("  mean |error|: time %.1f%%, energy %.1f%%\n", 100 * sum_t / n,
               n_e ? 100 * sum_e / n_e : NAN);
    free(c);
    return 0;
}

static int cmd_merge(const args *a)
{
    sim_err err = {{0}};
    if (!a->out || a->n_pos < 1)
        return usage();
    calib_merge_stats st;
    if (calib_merge_files(a->pos, a->n_pos, a->out, &st, &err))
        return fail(&err);
    printf("wrote %s: %d tables, %d families, %d entries", a->out, st.tables, st.families,
           st.entries);
    if (st.entries_joined)
        printf("; %d entries in several tables: %d points taken from later tables (%d "
               "measured in an earlier one too: the later kept)", st.entries_joined,
               st.points_added, st.points_replaced);
    printf("\n");
    return 0;
}

int main(int argc, char **argv)
{
    args a;
    if (argc >= 2 && !strcmp(argv[1], "import-vidur"))   /* parses its own options */
        return vidur_main(argc - 2, argv + 2);
    if (argc < 2 || parse_args(argc - 2, argv + 2, &a) < 0)
        return usage();
    const char *cmd = argv[1];
    if (!strcmp(cmd, "plan"))
        return cmd_plan(&a);
    if (!strcmp(cmd, "synth"))
        return cmd_synth(&a, 0);
    if (!strcmp(cmd, "synth-layers"))
        return cmd_synth(&a, 1);
    if (!strcmp(cmd, "loo"))
        return cmd_loo(&a);
    if (!strcmp(cmd, "layer"))
        return cmd_layer(&a);
    if (!strcmp(cmd, "merge"))
        return cmd_merge(&a);
    return usage();
}
