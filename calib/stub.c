/* servesim-calib-stub: a stand-in for servesim-calib without a GPU, for
 * dry runs of calib/h200_run.sh (make test's calib run check).
 *
 * It takes servesim-calib's options and runs the same plan through the
 * same runner (calib/runner.c), so the tables and status files it writes,
 * the time limit, the stop on SIGTERM and the resume entry are the real
 * program's. Only the GPU is simulated: each point "takes" what
 * calib/budget.c estimates for it on the GPU file's roofline (and a power
 * window at power points, for a counter updating every
 * CALIB_COUNTER_PERIOD_ASSUMED_S), and start-up takes what the real program
 * spends on its context, ceilings, counter period and idle power. The
 * numbers it writes are those estimates, in a table marked mode "stub" and
 * energy method "none": never a measurement, never committed.
 *
 * Time runs SERVESIM_STUB_SCALE times faster than simulated (0.02: a 510 s
 * session in about 10 s); every duration the program sees (its clock, the
 * time limit, its start-up) is in simulated seconds. Faults, to test the
 * script's handling of them:
 *   SERVESIM_STUB_SLOW=fam:factor,...  that family's points take factor times longer
 *   SERVESIM_STUB_HANG=fam:fraction    the "GPU" hangs in the middle of the family's
 *                                      entry at that fraction of its points (counted
 *                                      over the whole plan, so that a run resumed past
 *                                      that entry does not meet it): the program stops
 *                                      answering and ignores SIGTERM's flag, as a
 *                                      process stuck in a kernel would (only SIGKILL
 *                                      ends it)
 *   SERVESIM_STUB_FATAL=fam:fraction   a sticky device error there instead (the run
 *                                      fails, its table written)
 *   SERVESIM_STUB_SKIP_EVERY=N         every Nth point cannot be measured (skipped)
 *   SERVESIM_STUB_CHECK_FAIL=1         --check reports a failure */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "calib/budget.h"
#include "calib/runner.h"
#include "models/model.h"

typedef struct stub {
    double scale;             /* real seconds per simulated second */
    double real_t0;
    gpu_spec g;
    double slow[CTAB_FAMILY_COUNT];
    double hang_at[CTAB_FAMILY_COUNT], fatal_at[CTAB_FAMILY_COUNT];   /* fractions; <0 none */
    int hang_entry[CTAB_FAMILY_COUNT], fatal_entry[CTAB_FAMILY_COUNT];  /* plan index; -1 */
    int skip_every, n_points;
    double target_s;          /* simulated time the work so far ends at */
} stub;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static double real_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double sim_now(stub *s)
{
    return (real_now() - s->real_t0) / s->scale;
}

/* The simulated GPU works for `secs`: the program's clock reaches the end
 * of all work so far before it goes on (sleeping only when more than a
 * millisecond of real time is due, so that short points add up exactly). */
static void work(stub *s, double secs)
{
    s->target_s += secs;
    double due = (s->target_s - sim_now(s)) * s->scale;
    if (due > 0.001) {
        struct timespec ts = {(time_t)due, (long)((due - (time_t)due) * 1e9)};
        nanosleep(&ts, NULL);
    }
    if (s->target_s < sim_now(s))
        s->target_s = sim_now(s);
}

static void hang(void)
{
    for (;;) {   /* a process stuck in a kernel: the stop flag is never read */
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
}

/* "fam:x,fam:y" into v[family] (unlisted families keep their value). */
static int parse_fam_list(const char *env, double *v)
{
    const char *text = getenv(env);
    if (!text || !*text)
        return 0;
    char buf[512], *save = NULL;
    snprintf(buf, sizeof buf, "%s", text);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(t, ':');
        int f = -1;
        if (colon) {
            *colon = 0;
            f = ctab_family_find(t);
        }
        char *end = NULL;
        double x = colon ? strtod(colon + 1, &end) : NAN;
        if (f < 0 || !end || *end || !(x >= 0)) {
            fprintf(stderr, "servesim-calib-stub: %s: expected FAMILY:NUMBER,..., got \"%s\"\n",
                    env, text);
            return -1;
        }
        v[f] = x;
    }
    return 0;
}

static int be_measure(void *self, const calib_plan *plan, int entry, int point, const double *x,
                      int want_power, calib_point_result *r, char *why, size_t why_n)
{
    (void)x;
    stub *s = self;
    const calib_entry *e = &plan->entry[entry];
    int f = e->family, middle = point >= e->n_points / 2;
    if (entry == s->hang_entry[f] && middle)
        hang();
    if (entry == s->fatal_entry[f] && middle) {
        snprintf(why, why_n, "stub: a simulated sticky device error");
        return CALIB_POINT_FATAL;
    }
    double run = calib_est_run_s(&s->g, e->family, e->p, e->flops[point], e->bytes[point]);
    double secs = calib_est_point_s(run, 0);
    if (want_power)
        secs += calib_energy_point_s(CALIB_COUNTER_PERIOD_ASSUMED_S, 0);
    work(s, secs * s->slow[f]);
    if (s->skip_every > 0 && ++s->n_points % s->skip_every == 0) {
        snprintf(why, why_n, "stub: a simulated cuBLASLt failure");
        return CALIB_POINT_SKIPPED;
    }
    r->median_ns = run * 1e9;
    r->p10_ns = run * 0.98e9;
    r->p90_ns = run * 1.03e9;
    r->power_w = r->energy_j = NAN;
    r->throttled = 0;
    return CALIB_POINT_OK;
}

/* The entry of each family holding the fraction hang_at (fatal_at) of the
 * family's points, over the whole plan. */
static void find_fault_entries(stub *s, const calib_plan *plan, unsigned mask,
                               const char *models)
{
    int total[CTAB_FAMILY_COUNT] = {0}, seen[CTAB_FAMILY_COUNT] = {0};
    for (int i = 0; i < plan->n_entries; i++)
        if (calib_entry_selected(&plan->entry[i], mask, models))
            for (int j = 0; j < plan->entry[i].n_points; j++)
                total[plan->entry[i].family] += !plan->entry[i].skip[j];
    for (int i = 0; i < plan->n_entries; i++) {
        const calib_entry *e = &plan->entry[i];
        if (!calib_entry_selected(e, mask, models))
            continue;
        int f = e->family;
        for (int j = 0; j < e->n_points; j++)
            seen[f] += !e->skip[j];
        double at = total[f] ? (double)seen[f] / total[f] : 0;
        if (s->hang_at[f] >= 0 && s->hang_entry[f] < 0 && at >= s->hang_at[f])
            s->hang_entry[f] = i;
        if (s->fatal_at[f] >= 0 && s->fatal_entry[f] < 0 && at >= s->fatal_at[f])
            s->fatal_entry[f] = i;
    }
}

static double be_now(void *self)
{
    return sim_now(self);
}

typedef struct options {
    const char *plan, *out, *gpu, *only, *models, *status;
    int quick, layer, check, dry_run, start_entry;
    double time_limit_s, idle_s, idle_after_s;
} options;

static int usage(void)
{
    fputs("usage: servesim-calib-stub [servesim-calib's options]; see calib/stub.c\n", stderr);
    return 2;
}

static int parse_options(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->time_limit_s = 570;
    o->idle_s = 1.5;
    o->idle_after_s = 1.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = !strcmp(a, "--plan") ? &o->plan
                          : !strcmp(a, "--out") ? &o->out
                          : !strcmp(a, "--gpu") ? &o->gpu
                          : !strcmp(a, "--only") ? &o->only
                          : !strcmp(a, "--status") ? &o->status
                          : !strcmp(a, "--models") ? &o->models : NULL;
        double *num = !strcmp(a, "--time-limit") ? &o->time_limit_s
                    : !strcmp(a, "--idle-s") ? &o->idle_s
                    : !strcmp(a, "--idle-after-s") ? &o->idle_after_s : NULL;
        if (slot && i + 1 < argc)
            *slot = argv[++i];
        else if (num && i + 1 < argc)
            *num = atof(argv[++i]);
        else if (!strcmp(a, "--start") && i + 1 < argc)
            o->start_entry = atoi(argv[++i]);
        else if (!strcmp(a, "--quick"))
            o->quick = 1;
        else if (!strcmp(a, "--layer"))
            o->layer = 1;
        else if (!strcmp(a, "--check"))
            o->check = 1;
        else if (!strcmp(a, "--dry-run"))
            o->dry_run = 1;
        else
            return -1;
    }
    if (!o->plan)
        o->plan = o->quick ? "calib/plans/quick.plan" : "calib/plans/full.plan";
    return 0;
}

static void stub_info(const stub *s, const calib_plan *plan, const options *o,
                      calib_run_info *info)
{
    calib_run_info_init(info);
    snprintf(info->gpu_name, sizeof info->gpu_name, "%s", s->g.name);
    snprintf(info->device_name, sizeof info->device_name, "stub (no GPU)");
    snprintf(info->mode, sizeof info->mode, "stub");
    snprintf(info->plan_name, sizeof info->plan_name, "%s", plan->name);
    snprintf(info->notes, sizeof info->notes, "not a measurement: servesim-calib-stub, for "
             "dry runs of calib/h200_run.sh; latencies are calib/budget.c's estimates");
    snprintf(info->energy_method, sizeof info->energy_method, "none");
    info->ceil_gemm_flops_per_s = 0.6 * s->g.bf16_flops;
    info->ceil_d2d_bytes_per_s = 0.7 * s->g.hbm_bw_bytes_per_s;
    info->ceil_d2d_bytes = 4.0 * (1 << 30);
    info->replays = o->quick ? CALIB_REPLAYS_QUICK : CALIB_REPLAYS_FULL;
    info->warmup_replays = CALIB_WARMUP_REPLAYS;
}

static int run_layers(stub *s, const calib_plan *plan, const options *o, calib_run_info *info)
{
    calib_point_result *res = sim_xcalloc((size_t)plan->n_layers + 1, sizeof *res);
    for (int i = 0; i < plan->n_layers; i++)
        res[i].median_ns = res[i].p10_ns = res[i].p90_ns = res[i].power_w = res[i].energy_j = NAN;
    const char *path = o->out;
    sim_err err;
    int rc = 0, measured = 0;
    snprintf(info->state, sizeof info->state, "running");
    for (int i = 0; i < plan->n_layers && rc == 0; i++) {
        if (g_stop || sim_now(s) > o->time_limit_s) {
            rc = 1;
            break;
        }
        const calib_layer *l = &plan->layer[i];
        double run = 0;
        for (int j = 0; j < l->n_ops; j++)
            run += l->op[j].count * calib_est_run_s(&s->g, l->op[j].family, l->op[j].p,
                                                    l->op[j].flops, l->op[j].bytes);
        work(s, calib_est_point_s(run, 0) +
                    calib_energy_point_s(CALIB_COUNTER_PERIOD_ASSUMED_S, 0) + 0.05);
        res[i].median_ns = run * 1e9;
        res[i].p10_ns = res[i].p90_ns = run * 1e9;
        measured++;
        if (calib_layers_save(path, plan, res, info, &err))
            rc = -1;
    }
    snprintf(info->state, sizeof info->state, "%s", rc == 0 ? "complete" : "cut_short");
    if (rc >= 0 && calib_layers_save(path, plan, res, info, &err))
        rc = -1;
    if (rc < 0)
        fprintf(stderr, "servesim-calib-stub: error: %s\n", err.msg);
    if (o->status) {
        char text[512];
        snprintf(text, sizeof text, "state=%s\nlayers=%d\nlayers_measured=%d\nerror=\n",
                 info->state, plan->n_layers, measured);
        calib_text_save(o->status, text, &err);
    }
    printf("wrote %s (%s, %d layers)\n", path, info->state, measured);
    free(res);
    return rc < 0 ? 1 : rc > 0 ? 3 : 0;
}

int main(int argc, char **argv)
{
    options o;
    if (parse_options(argc, argv, &o))
        return usage();
    if (!o.out && !o.check && !o.dry_run) {
        /* the real program's default is calib/tables/<gpu>.json: never a stub's */
        fprintf(stderr, "servesim-calib-stub: --out FILE is required\n");
        return 2;
    }
    stub s;
    memset(&s, 0, sizeof s);
    s.real_t0 = real_now();
    const char *scale = getenv("SERVESIM_STUB_SCALE");
    s.scale = scale ? atof(scale) : 1;
    if (!(s.scale > 0)) {
        fprintf(stderr, "servesim-calib-stub: SERVESIM_STUB_SCALE: expected a number > 0\n");
        return 2;
    }
    for (int f = 0; f < CTAB_FAMILY_COUNT; f++) {
        s.slow[f] = 1;
        s.hang_at[f] = s.fatal_at[f] = -1;
        s.hang_entry[f] = s.fatal_entry[f] = -1;
    }
    const char *skip = getenv("SERVESIM_STUB_SKIP_EVERY");
    s.skip_every = skip ? atoi(skip) : 0;
    if (parse_fam_list("SERVESIM_STUB_SLOW", s.slow) ||
        parse_fam_list("SERVESIM_STUB_HANG", s.hang_at) ||
        parse_fam_list("SERVESIM_STUB_FATAL", s.fatal_at))
        return 2;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sim_err err = {{0}};
    if (gpu_spec_load(models_dir(), o.gpu ? o.gpu : "H200-141GB", &s.g, &err)) {
        fprintf(stderr, "servesim-calib-stub: error: %s\n", err.msg);
        return 1;
    }
    printf("servesim-calib-stub on %s (no GPU; time x%g)\n", s.g.name, 1 / s.scale);
    fflush(stdout);
    if (!o.dry_run)
        work(&s, 2.5);   /* context, cuBLASLt, arena */
    if (o.check) {
        work(&s, 3);
        int fail = getenv("SERVESIM_STUB_CHECK_FAIL") != NULL;
        printf("self-check: stub, no kernel run%s\n", fail ? "; 1 FAILED (simulated)" : "");
        return fail;
    }
    unsigned mask;
    calib_plan plan;
    if (calib_family_mask(o.only, &mask, &err) || calib_plan_load(o.plan, &plan, &err)) {
        fprintf(stderr, "servesim-calib-stub: error: %s\n", err.msg);
        return 1;
    }
    if (o.dry_run) {
        printf("plan %s (%s): %d entries, %d layers\ndry run: no GPU used\n", o.plan,
               plan.name, plan.n_entries, plan.n_layers);
        calib_plan_fini(&plan);
        return 0;
    }
    calib_run_info info;
    stub_info(&s, &plan, &o, &info);
    work(&s, 1.0 + o.idle_s);   /* ceilings, counter period, idle power */
    if (o.layer) {
        int rc = run_layers(&s, &plan, &o, &info);
        calib_plan_fini(&plan);
        return rc;
    }
    find_fault_entries(&s, &plan, mask, o.models);
    calib_runner_opts ro = {.families = mask, .models = o.models, .start_entry = o.start_entry,
                            .t_start_s = 0, .time_limit_s = o.time_limit_s,
                            .flush_every_s = 2.0, .out = o.out,
                            .status = o.status, .stop = &g_stop, .log = stdout};
    calib_backend be = {&s, be_now, be_measure, NULL};
    calib_runner r;
    calib_runner_init(&r, &plan, &ro, &info);
    int rc = calib_runner_run(&r, &be, &err);
    if (rc < 0)
        fprintf(stderr, "servesim-calib-stub: error: %s\n", err.msg);
    if (rc >= 0 && !g_stop && o.idle_after_s > 0)
        work(&s, o.idle_after_s);
    printf("wrote %s (%s, %d points, %d skipped, %.0f s)\n", ro.out, r.state, r.points_measured,
           r.points_skipped, sim_now(&s));
    calib_runner_fini(&r);
    calib_plan_fini(&plan);
    return rc < 0 ? 1 : rc > 0 ? 3 : 0;
}
