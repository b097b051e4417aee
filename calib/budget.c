/* GPU-time budget of calibration runs (see budget.h).
 *
 * Design. One set of constants and formulas serves three readers: the CUDA
 * program (how long a power window must be for the counter period it
 * measured), calib-tool plan (what a plan will cost) and the schedule that
 * calib/h200_run.sh follows (how a fixed deadline is shared by separate
 * per-family runs). The power part dominates: 625 windows in the full
 * plan, each a ramp, a span of at least CALIB_WINDOW_PERIODS counter
 * periods, and on average one more period of waiting for the updates that
 * open and close it. The estimates used to assume a fast counter (0.25 s a
 * window in all); at the ~100 ms period of an H100 or H200 a window costs
 * about 0.37 s, which calib_energy_point_s now says. The schedule is
 * static (estimates, reserves, caps, written to a text file that the shell
 * script reads); the script applies it against the clock. */
#include "calib/budget.h"

#include <math.h>
#include <string.h>

double calib_window_s(double period_s, int quick)
{
    double min_s = quick ? CALIB_WINDOW_S_QUICK : CALIB_WINDOW_S_FULL;
    return fmax(min_s, CALIB_WINDOW_PERIODS * fmax(period_s, 0));
}

double calib_energy_point_s(double period_s, int quick)
{
    return CALIB_RAMP_S + calib_window_s(period_s, quick) + fmax(period_s, 0) + CALIB_AHEAD_S;
}

double calib_est_run_s(const gpu_spec *g, ctab_family f, const int64_t *p, double flops,
                       double bytes)
{
    if (f == CTAB_COPY)
        return 10e-6 + bytes / (p[1] ? 20e9 : 8e9);
    return fmax(fmax(flops / (0.6 * g->bf16_flops), bytes / (0.7 * g->hbm_bw_bytes_per_s)),
                4e-6);
}

double calib_est_point_s(double run_s, int quick)
{
    double graph_s =
        fmax(run_s, (quick ? CALIB_GRAPH_MIN_NS_QUICK : CALIB_GRAPH_MIN_NS_FULL) * 1e-9);
    int replays = quick ? CALIB_REPLAYS_QUICK : CALIB_REPLAYS_FULL;
    /* set-up and random fill, two warm-up runs, the three-run estimate,
     * the warm-up replays and the timed ones */
    return 2e-3 + 5 * run_s + (replays + CALIB_WARMUP_REPLAYS) * graph_s;
}

void calib_entry_estimate(const calib_entry *e, const gpu_spec *g, int quick,
                          double counter_period_s, double *latency_s, double *energy_s)
{
    double window_s = calib_energy_point_s(counter_period_s, quick);
    *latency_s = *energy_s = 0;
    for (int pt = 0; pt < e->n_points; pt++) {
        if (e->skip[pt])
            continue;
        double run = calib_est_run_s(g, e->family, e->p, e->flops[pt], e->bytes[pt]);
        *latency_s += calib_est_point_s(run, quick);
        if (e->energy[pt])
            *energy_s += window_s;
    }
}

void calib_plan_estimate(const calib_plan *plan, const gpu_spec *g, int quick,
                         double counter_period_s, calib_estimate *out)
{
    memset(out, 0, sizeof *out);
    out->counter_period_s = counter_period_s;
    double window_s = calib_energy_point_s(counter_period_s, quick);
    for (int i = 0; i < plan->n_entries; i++) {
        const calib_entry *e = &plan->entry[i];
        int points = 0, energy_points = 0;
        for (int pt = 0; pt < e->n_points; pt++) {
            points += !e->skip[pt];
            energy_points += !e->skip[pt] && e->energy[pt];
        }
        if (!points)
            continue;
        double lat, en;
        calib_entry_estimate(e, g, quick, counter_period_s, &lat, &en);
        out->entries[e->family]++;
        out->points[e->family] += points;
        out->energy_points[e->family] += energy_points;
        out->latency_s[e->family] += lat;
        out->energy_s[e->family] += en;
    }
    for (int i = 0; i < plan->n_layers; i++) {
        const calib_layer *l = &plan->layer[i];
        double run = 0;
        for (int j = 0; j < l->n_ops; j++)
            run += l->op[j].count * calib_est_run_s(g, l->op[j].family, l->op[j].p,
                                                    l->op[j].flops, l->op[j].bytes);
        /* every layer measures power; 50 ms to set up its benches */
        out->layer_s += calib_est_point_s(run, quick) + window_s + 0.05;
    }
    out->layers = plan->n_layers;
    out->total_s = out->layer_s;
    for (int f = 0; f < CTAB_FAMILY_COUNT; f++)
        out->total_s += out->latency_s[f] + out->energy_s[f];
}

/* ---- schedule ------------------------------------------------------------------ */

/* Sized by its initialiser: the header's [CTAB_FAMILY_COUNT] makes a family
 * left out a compile error (a missing slot used to be 0, CTAB_GEMM, and
 * scheduled the GEMMs twice once the all-reduce family was added). */
const ctab_family calib_schedule_order[] = {
    /* own elementwise kernels, seconds each */
    CTAB_NORM, CTAB_ACT, CTAB_ROPE, CTAB_EMBED, CTAB_SAMPLE,
    /* plain cudaMemcpyAsync */
    CTAB_COPY,
    /* cuBLASLt at ordinary shapes: the bulk of the table */
    CTAB_GEMM, CTAB_MOE_ROUTER,
    /* own paged decode kernel */
    CTAB_ATTN_DECODE,
    /* cuBLASLt on expert slices at 64- and 128-byte offsets */
    CTAB_MOE_EXPERTS,
    /* own prefill kernel with the split-KV path no GPU has run yet */
    CTAB_ATTN_PREFILL,
    /* NCCL across GPUs: imported, never measured by servesim-calib (no step) */
    CTAB_ALLREDUCE,
};

double calib_schedule_fixed_s(void)
{
    return CALIB_SCHED_BUILD_EST_S + CALIB_SCHED_CHECK_EST_S + CALIB_SCHED_KILL_S;
}

double calib_schedule_step_overhead_s(void)
{
    return CALIB_STARTUP_S + CALIB_SCHED_MARGIN_S;
}

double calib_schedule_budget_s(double deadline_s)
{
    return deadline_s * (1 - CALIB_SCHED_SPARE);
}

static void add_step(calib_schedule *s, const char *name, int entries, int points,
                     double est_s)
{
    calib_sched_step *st = &s->step[s->n_steps++];
    snprintf(st->name, sizeof st->name, "%s", name);
    st->entries = entries;
    st->points = points;
    st->est_s = est_s;
    st->reserve_s = est_s + s->startup_s + s->margin_s;
    st->cap_s = est_s * CALIB_SCHED_SLACK + s->startup_s + s->margin_s;
    s->reserve_total_s += st->reserve_s;
}

int calib_schedule_build(const calib_estimate *est, const char *gpu, const char *plan_name,
                         double deadline_s, calib_schedule *out, sim_err *err)
{
    memset(out, 0, sizeof *out);
    snprintf(out->gpu, sizeof out->gpu, "%s", gpu);
    snprintf(out->plan, sizeof out->plan, "%s", plan_name);
    out->deadline_s = deadline_s;
    out->counter_period_s = est->counter_period_s;
    out->startup_s = CALIB_STARTUP_S;
    out->build_s = CALIB_SCHED_BUILD_S;
    out->check_s = CALIB_SCHED_CHECK_S;
    out->kill_s = CALIB_SCHED_KILL_S;
    out->margin_s = CALIB_SCHED_MARGIN_S;
    /* the kill grace too: the last step may be killed that long after its cap */
    out->reserve_total_s = calib_schedule_fixed_s();
    for (int i = 0; i < CTAB_FAMILY_COUNT; i++) {
        ctab_family f = calib_schedule_order[i];
        double s = est->latency_s[f] + est->energy_s[f];
        if (est->points[f] > 0)
            add_step(out, ctab_family_get(f)->name, est->entries[f], est->points[f], s);
    }
    if (est->layer_s > 0)
        add_step(out, "layer", est->layers, est->layers, est->layer_s);
    if (out->reserve_total_s > deadline_s)
        return sim_errf(err, "the estimates alone (%.0f s: build %.0f, check %.0f, %d steps "
                        "with %.0f s of startup and margin each, %.0f s to kill the last) "
                        "exceed the deadline of %.0f s", out->reserve_total_s,
                        CALIB_SCHED_BUILD_EST_S, CALIB_SCHED_CHECK_EST_S, out->n_steps,
                        out->startup_s + out->margin_s, out->kill_s, deadline_s);
    return 0;
}

int calib_schedule_write(const calib_schedule *s, FILE *f)
{
    fprintf(f, "servesim-calib-schedule 1\n");
    fprintf(f, "# generated by calib-tool plan --schedule; read by calib/h200_run.sh\n");
    fprintf(f, "# a step may take cap_s, less what the later steps reserve (calib/budget.h)\n");
    fprintf(f, "gpu %s\nplan %s\n", s->gpu, s->plan);
    if (s->plan_file[0])
        fprintf(f, "plan_file %s\n", s->plan_file);
    fprintf(f, "counter_period_ms %.0f\n", s->counter_period_s * 1e3);
    fprintf(f, "deadline_s %.0f\nstartup_s %.1f\nmargin_s %.1f\nbuild_s %.0f\ncheck_s %.0f\n"
            "kill_s %.0f\n", s->deadline_s, s->startup_s, s->margin_s, s->build_s, s->check_s,
            s->kill_s);
    fprintf(f, "build_est_s %.0f\ncheck_est_s %.0f\n", CALIB_SCHED_BUILD_EST_S,
            CALIB_SCHED_CHECK_EST_S);
    fprintf(f, "#    name            est_s  reserve_s     cap_s  entries   points\n");
    for (int i = 0; i < s->n_steps; i++)
        fprintf(f, "step %-14s %7.1f %10.1f %9.1f %8d %8d\n", s->step[i].name,
                s->step[i].est_s, s->step[i].reserve_s, s->step[i].cap_s, s->step[i].entries,
                s->step[i].points);
    fprintf(f, "reserve_total_s %.1f\n", s->reserve_total_s);
    fprintf(f, "spare_s %.1f\n", s->deadline_s - s->reserve_total_s);
    fprintf(f, "# left for later sessions (calib-tool plan --skip-covered TABLE); estimates\n");
    fprintf(f, "later_entries %d\nlater_points %d\nlater_est_s %.1f\nlater_sessions %d\n",
            s->later_entries, s->later_points, s->later_est_s, s->later_sessions);
    if (s->later_file[0])
        fprintf(f, "later_file %s\n", s->later_file);
    return ferror(f) ? -1 : 0;
}
