/* Running a plan against a backend (see runner.h).
 *
 * Design. The first version rewrote its table only after a family's last
 * entry, so a fatal CUDA error or a kill lost the whole family in progress
 * (minutes of GEMMs). Here the table is rewritten atomically
 * (calib_table_save) at least every flush_every_s seconds of points, and
 * after an entry once a quarter of that has passed (not after every short
 * entry: a family's table takes milliseconds to write, which at hundreds
 * of entries adds up); the state it records says how far the run got:
 * "running" while it goes (a killed run's table says so), "cut_short" with
 * the entry to resume from (servesim-calib --start, then calib-tool merge
 * completes the family), "failed" with the error, "complete". A point the
 * backend cannot measure (no cuBLASLt algorithm for its alignment, a
 * failed launch) stays null and the run goes on; only a device that is
 * gone stops it. */
#include "calib/runner.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int calib_family_mask(const char *list, unsigned *mask, sim_err *err)
{
    *mask = 0;
    if (!list || !*list) {
        *mask = (1u << CTAB_FAMILY_COUNT) - 1;
        return 0;
    }
    char buf[512], *save = NULL;
    snprintf(buf, sizeof buf, "%s", list);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int f = ctab_family_find(t);
        if (f < 0) {
            char names[512] = "";
            for (int i = 0; i < CTAB_FAMILY_COUNT; i++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                         i ? ", " : "", ctab_family_get((ctab_family)i)->name);
            return sim_errf(err, "unknown family '%s'; expected some of: %s", t, names);
        }
        *mask |= 1u << f;
    }
    return 0;
}

int calib_entry_selected(const calib_entry *e, unsigned families, const char *models)
{
    if (!(families & (1u << e->family)))
        return 0;
    if (!models || !*models)
        return 1;
    char buf[512], *save = NULL;
    snprintf(buf, sizeof buf, "%s", models);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char needle[96];
        snprintf(needle, sizeof needle, "%s/tp", t);
        if (strstr(e->used_by, needle))
            return 1;
    }
    return 0;
}

static int selected(const calib_runner *r, int i)
{
    return i >= r->o.start_entry &&
           calib_entry_selected(&r->plan->entry[i], r->o.families, r->o.models);
}

/* The first selected entry at or after i, or -1. */
static int next_selected(const calib_runner *r, int i)
{
    for (; i < r->plan->n_entries; i++)
        if (selected(r, i))
            return i;
    return -1;
}

void calib_runner_init(calib_runner *r, const calib_plan *plan, const calib_runner_opts *o,
                       calib_run_info *info)
{
    memset(r, 0, sizeof *r);
    r->plan = plan;
    r->o = *o;
    if (!r->o.families)
        r->o.families = (1u << CTAB_FAMILY_COUNT) - 1;
    r->info = info;
    r->res = sim_xcalloc((size_t)plan->n_entries + 1, sizeof *r->res);
    for (int i = 0; i < plan->n_entries; i++) {
        r->res[i] = sim_xcalloc((size_t)plan->entry[i].n_points, sizeof **r->res);
        for (int j = 0; j < plan->entry[i].n_points; j++) {
            calib_point_result *p = &r->res[i][j];
            p->median_ns = p->p10_ns = p->p90_ns = p->power_w = p->energy_j = NAN;
        }
        r->entries_selected += selected(r, i);
    }
    r->resume = next_selected(r, 0);
    snprintf(r->state, sizeof r->state, "running");
    info->resume_entry = -1;
}

void calib_runner_fini(calib_runner *r)
{
    if (!r->res)
        return;
    for (int i = 0; i < r->plan->n_entries; i++)
        free(r->res[i]);
    free(r->res);
    memset(r, 0, sizeof *r);
}

void calib_runner_status_text(const calib_runner *r, double now_s, char *out, size_t size)
{
    char err[512];
    snprintf(err, sizeof err, "%s", r->error);
    for (char *p = err; *p; p++)   /* one line */
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    snprintf(out, size,
             "state=%s\nfamilies=%s\nentries_selected=%d\nentries_done=%d\n"
             "resume_entry=%d\npoints_measured=%d\npoints_skipped=%d\nelapsed_s=%.1f\n"
             "error=%s\n",
             r->state, r->info->families, r->entries_selected, r->entries_done,
             r->info->resume_entry, r->points_measured, r->points_skipped,
             now_s - r->o.t_start_s, err);
}

int calib_runner_flush(calib_runner *r, const calib_backend *be, const char *state,
                       sim_err *err)
{
    if (state)
        snprintf(r->state, sizeof r->state, "%s", state);
    calib_run_info *info = r->info;
    info->families[0] = 0;
    for (int f = 0; f < CTAB_FAMILY_COUNT; f++)
        if (r->started & (1u << f))
            snprintf(info->families + strlen(info->families),
                     sizeof info->families - strlen(info->families), "%s%s",
                     info->families[0] ? "," : "", ctab_family_get((ctab_family)f)->name);
    snprintf(info->state, sizeof info->state, "%s", r->state);
    info->resume_entry = strcmp(r->state, "complete") ? r->resume : -1;
    if (be && be->gpu_state)
        be->gpu_state(be->self, &info->after);
    double now = be ? be->now_s(be->self) : r->o.t_start_s;
    r->last_flush_s = now;
    if (calib_table_save(r->o.out, r->plan, r->res, r->started, info, err))
        return -1;
    if (r->o.status) {
        char text[1536];
        calib_runner_status_text(r, now, text, sizeof text);
        if (calib_text_save(r->o.status, text, err))
            return -1;
    }
    return 0;
}

static void log_entry(const calib_runner *r, int i, double secs, int points, int skipped,
                      const char *why)
{
    if (!r->o.log)
        return;
    const calib_entry *e = &r->plan->entry[i];
    const ctab_family_info *fi = ctab_family_get(e->family);
    fprintf(r->o.log, "[%3d/%d] %-12s", i + 1, r->plan->n_entries, fi->name);
    for (int j = 0; j < fi->n_params; j++)
        fprintf(r->o.log, " %s=%lld", fi->param[j], (long long)e->p[j]);
    fprintf(r->o.log, ": %d points in %.1f s", points, secs);
    if (skipped)
        fprintf(r->o.log, "; %d skipped (first: %s)", skipped, why);
    fputc('\n', r->o.log);
    fflush(r->o.log);
}

/* Stops the run for `reason`: writes it as `state`; returns rc. */
static int stop_run(calib_runner *r, const calib_backend *be, const char *state,
                    const char *reason, int rc, sim_err *err)
{
    snprintf(r->error, sizeof r->error, "%s", reason);
    if (r->o.log)
        fprintf(r->o.log, "%s: %s; the table holds what was measured\n", state, reason);
    sim_err werr = {{0}};
    if (calib_runner_flush(r, be, state, &werr)) {
        sim_errf(err, "%s", werr.msg);
        return -1;
    }
    if (rc < 0)
        sim_errf(err, "%s", reason);
    return rc;
}

int calib_runner_run(calib_runner *r, const calib_backend *be, sim_err *err)
{
    const calib_plan *plan = r->plan;
    if (calib_runner_flush(r, be, "running", err))
        return -1;
    for (int i = 0; i < plan->n_entries; i++) {
        if (!selected(r, i))
            continue;
        const calib_entry *e = &plan->entry[i];
        r->started |= 1u << e->family;
        r->resume = i;
        double t0 = be->now_s(be->self);
        int points = 0, skipped = 0;
        char first_why[256] = "";
        for (int j = 0; j < e->n_points; j++) {
            if (e->skip[j])
                continue;
            double now = be->now_s(be->self);
            if (r->o.stop && *r->o.stop)
                return stop_run(r, be, "cut_short", "stopped by a signal", 1, err);
            if (r->o.time_limit_s > 0 && now - r->o.t_start_s > r->o.time_limit_s) {
                char why[96];
                snprintf(why, sizeof why, "time limit of %.0f s reached", r->o.time_limit_s);
                return stop_run(r, be, "cut_short", why, 1, err);
            }
            double x[CTAB_MAX_X] = {0, 0, 1};   /* x[2]: one prefill chunk */
            calib_entry_point_x(e, j, x);
            char why[256] = "";
            int st = be->measure(be->self, plan, i, j, x, e->energy[j], &r->res[i][j], why,
                                 sizeof why);
            if (st == CALIB_POINT_FATAL) {
                char msg[300];
                snprintf(msg, sizeof msg, "entry %d, point %d: %s", i, j, why);
                return stop_run(r, be, "failed", msg, -1, err);
            }
            if (st == CALIB_POINT_SKIPPED) {
                calib_point_result *p = &r->res[i][j];
                p->median_ns = p->p10_ns = p->p90_ns = p->power_w = p->energy_j = NAN;
                p->throttled = 0;
                if (!skipped++)
                    snprintf(first_why, sizeof first_why, "%s", why);
                r->points_skipped++;
            } else {
                points++;
                r->points_measured++;
            }
            if (be->now_s(be->self) - r->last_flush_s >= r->o.flush_every_s &&
                calib_runner_flush(r, be, NULL, err))
                return -1;
        }
        r->entries_done++;
        r->resume = next_selected(r, i + 1);
        log_entry(r, i, be->now_s(be->self) - t0, points, skipped, first_why);
        /* after an entry sooner than mid-entry, but not after every short
         * one: a large table takes milliseconds to write */
        if (be->now_s(be->self) - r->last_flush_s >= r->o.flush_every_s / 4 &&
            calib_runner_flush(r, be, NULL, err))
            return -1;
    }
    return calib_runner_flush(r, be, "complete", err);
}
