/* The sweep scheduler (see sweep.h).
 *
 * A sweep goes: check the results file's path and take its lock (outpath.h:
 * one writer per results file, and never an input or a device), find the
 * points already complete (in the store, or in the previous results file),
 * then, one batch of at most SWEEP_BATCH_POINTS (sweep.h) at a time, build and check
 * the configs of the batch's points and hand them to the local pool or the
 * MPI ranks, noting each result as it comes (a complete point's data is then
 * already in its file in the store). At the end it rebuilds the results file
 * from the store and the previous results file, renames it into place and
 * removes the store once nothing is missing.
 *
 * Memory and time before the first point runs are those of one batch, not
 * of the whole grid: a sweep with --limit 1 checks one config. A bad point
 * in a later batch stops the sweep there (bad input), with the points of
 * the earlier batches kept.
 *
 * Signals. While points run, the pool stops on any terminating signal
 * (workers.h). The final assembly holds those signals back, so one that
 * arrives then takes effect once the results file and the store are in
 * their final state: the results file complete, the store removed if every
 * point is complete; the sweep then reports the signal (status 130) and
 * says so. An interrupted sweep keeps its store only when it holds a
 * complete point to resume from. Progress: a one-line counter on stderr
 * when it is a terminal; failed points are always reported. */
#include "tool/sweep.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sim/jsoncfg.h"
#include "tool/outpath.h"
#include "tool/sweep_file.h"
#include "tool/sweep_mpi.h"
#include "tool/workers.h"

typedef struct sweep_ctx {
    experiment *e;
    const sweep_opts *o;
    sweep_point_state *st;
    char **store_files;       /* per point: <store>/<id>.h5 */
    const int64_t *todo;      /* the batch's job -> point */
    int64_t n_todo, done, failed, infeasible;
    int64_t batch, progress;  /* sweep_opts' batch_points, progress_points */
    double t0, last_note;
    int tty;
} sweep_ctx;

static double sweep_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sweep_hms(double s, char *buf, size_t n)
{
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

static void sweep_progress(const sweep_ctx *c)
{
    if (!c->tty || c->o->quiet)
        return;
    double el = sweep_now_s() - c->t0;
    char e1[32], e2[32] = "?";
    sweep_hms(el, e1, sizeof e1);
    if (c->done)
        sweep_hms(el / (double)c->done * (double)(c->n_todo - c->done), e2, sizeof e2);
    fprintf(stderr, "\rsweep: %lld/%lld points done", (long long)c->done, (long long)c->n_todo);
    if (c->failed)
        fprintf(stderr, ", %lld failed", (long long)c->failed);
    fprintf(stderr, ", elapsed %s, ETA %s   ", e1, e2);
    if (c->done == c->n_todo)
        fputc('\n', stderr);
    fflush(stderr);
}

/* Progress of a long check of configs (`k` of `n` done): a first line at
 * once, then on a terminal a counter, elsewhere a line every 10 s. */
static void sweep_check_note(sweep_ctx *c, const char *what, int64_t k, int64_t n)
{
    if (c->o->quiet || n < c->progress)
        return;
    double now = sweep_now_s();
    if (k == 0) {
        fprintf(stderr, "sweep: checking the configs of %lld points %s\n", (long long)n, what);
        c->last_note = now;
    } else if (k == n) {
        if (c->tty)
            fprintf(stderr, "\rsweep: checked %lld/%lld configs   \n", (long long)k,
                    (long long)n);
    } else if (now - c->last_note >= (c->tty ? 0.5 : 10)) {
        fprintf(stderr, c->tty ? "\rsweep: checked %lld/%lld configs   "
                               : "sweep: checked %lld/%lld configs\n", (long long)k,
                (long long)n);
        c->last_note = now;
    } else {
        return;
    }
    fflush(stderr);
}

static void sweep_on_done(void *ctx, int64_t job, const workers_result *r)
{
    sweep_ctx *c = ctx;
    int64_t p = c->todo[job];
    sweep_point_state *ps = &c->st[p];
    c->done++;
    if (r->status == 0) {
        ps->status = SWEEP_COMPLETE;
        ps->src_file = c->store_files[p];
        snprintf(ps->src_group, sizeof ps->src_group, "/");
    } else {
        c->failed++;
        ps->status = SWEEP_FAILED;
        free(ps->error);
        ps->error = sim_xstrdup(r->msg);
        /* Also under --quiet: a failure is an error message. */
        fprintf(stderr, "%ssweep: point %lld (%s) failed: %s\n",
                c->tty && !c->o->quiet ? "\r" : "", (long long)p, c->e->points[p].label,
                r->msg);
    }
    sweep_progress(c);
}

char *sweep_store_path(const char *out)
{
    size_t n = strlen(out) + 3;
    char *s = sim_xmalloc(n);
    snprintf(s, n, "%s.d", out);
    return s;
}

/* Marks every point already complete, in the store or the old results
 * file; the store's copy wins (it is the newer one). Only points found
 * there have their configs built, to compare. */
static int sweep_find_complete(sweep_ctx *c, int64_t *n_complete, sim_err *err)
{
    experiment *e = c->e;
    *n_complete = 0;
    sweep_reader *old = sweep_reader_open(c->o->out);
    int64_t found = 0;
    int rc = 0;
    for (int64_t i = 0; i < e->n_points && rc == 0; i++) {
        exp_point *pt = &e->points[i];
        sweep_point_state *ps = &c->st[i];
        char *stored = NULL, group[64] = "/";
        const char *src = c->store_files[i];
        sweep_reader *r = sweep_reader_open(c->store_files[i]);
        if (r) {
            stored = sweep_reader_config(r, "/");
            sweep_reader_close(r);
        }
        if (!stored && old) {
            snprintf(group, sizeof group, "/points/%s", pt->id_hex);
            stored = sweep_reader_config(old, group);
            src = c->o->out;
        }
        if (!stored)
            continue;
        if (found++ == 0)
            sweep_check_note(c, "already run", 0, e->n_points);
        if (exp_point_prepare(e, i, err)) {
            rc = SWEEP_BAD_INPUT;
        } else if (strcmp(stored, pt->config_json)) {
            rc = sim_errf(err, "%s: %s holds a point with the same id run from another "
                          "config (did the experiment change?); remove it or use another "
                          "--out", src, group);
            sim_err_prefix(err, "point %lld (%s)", (long long)i, pt->label);
        } else {
            ps->status = SWEEP_COMPLETE;
            ps->src_file = src;
            snprintf(ps->src_group, sizeof ps->src_group, "%s", group);
            (*n_complete)++;
        }
        exp_point_release(e, i);
        free(stored);
        if (found % 100 == 0)
            sweep_check_note(c, "already run", i, e->n_points);
    }
    if (found)
        sweep_check_note(c, "already run", e->n_points, e->n_points);
    sweep_reader_close(old);
    return rc;
}

/* Removes the store once the results file holds every point. */
static void sweep_remove_store(const sweep_ctx *c, const char *store)
{
    for (int64_t i = 0; i < c->e->n_points; i++) {
        char partial[OUTPATH_MAX + 16];
        snprintf(partial, sizeof partial, "%s.partial", c->store_files[i]);
        unlink(c->store_files[i]);
        unlink(partial);
    }
    rmdir(store);   /* fails, harmlessly, if someone left other files there */
}

/* The files a sweep reads: its results file must be none of them. */
static void sweep_inputs(const experiment *e, outpath_inputs *in)
{
    outpath_inputs_add(in, e->file);
    if (e->base_file)
        outpath_inputs_add(in, e->base_file);
    outpath_inputs_add_json(in, e->root);
    outpath_inputs_add_json(in, e->base);
}

/* Runs one batch of points: builds and checks their configs, then runs
 * them. SWEEP_BAD_INPUT when a config does not check out (nothing of the
 * batch ran then). */
static int sweep_batch(sweep_ctx *c, const int64_t *all, int64_t n_all, workers_job *jobs,
                       int64_t checked_before, const char *store, sim_err *err)
{
    experiment *e = c->e;
    /* With --skip-infeasible a point whose config cannot be built is
     * recorded as such, with the reason, and left out of the batch. */
    int64_t *todo = sim_xcalloc((size_t)n_all + 1, sizeof *todo), n = 0;
    for (int64_t k = 0; k < n_all; k++) {
        sweep_check_note(c, "to run", checked_before + k, c->n_todo);
        if (exp_point_prepare(e, all[k], err)) {
            if (!c->o->skip_infeasible) {
                free(todo);
                return SWEEP_BAD_INPUT;
            }
            sweep_point_state *ps = &c->st[all[k]];
            const exp_point *pt = &e->points[all[k]];
            /* The reason without "<file>: point N (<label>): ". */
            char prefix[4096];
            snprintf(prefix, sizeof prefix, "%s: point %lld (%s): ", e->file, (long long)all[k],
                     pt->label);
            const char *why = strncmp(err->msg, prefix, strlen(prefix)) ? err->msg
                                                                       : err->msg + strlen(prefix);
            ps->status = SWEEP_INFEASIBLE;
            free(ps->error);
            ps->error = sim_xstrdup(why);
            c->infeasible++;
            c->done++;
            fprintf(stderr, "%ssweep: point %lld (%s) infeasible, skipped: %s\n",
                    c->tty && !c->o->quiet ? "\r" : "", (long long)all[k], pt->label, why);
            continue;
        }
        jobs[n] = (workers_job){e->points[all[k]].config_json, c->store_files[all[k]]};
        todo[n++] = all[k];
    }
    sweep_check_note(c, "to run", checked_before + n_all, c->n_todo);
    /* Made only now, so that a sweep stopped while checking leaves none. */
    if (mkdir(store, 0777) != 0 && errno != EEXIST) {
        free(todo);
        return sim_errf(err, "%s: cannot create the folder '%s': %s", c->o->out, store,
                        strerror(errno));
    }
    c->todo = todo;
    int workers = c->o->jobs > 0 ? c->o->jobs : workers_default_workers();
    int run = c->o->mpi ? sweep_mpi_run(jobs, n, sweep_on_done, c, err)
                        : workers_run(jobs, n, workers, sweep_on_done, c, err);
    /* A complete point's config is in its file; a failed one's goes into
     * the results file. */
    for (int64_t k = 0; k < n; k++)
        if (c->st[todo[k]].status == SWEEP_COMPLETE)
            exp_point_release(e, todo[k]);
    c->todo = NULL;
    free(todo);
    return run == WORKERS_INTERRUPTED ? SWEEP_INTERRUPTED : run ? SWEEP_ERROR : 0;
}

/* Writes the results file and renames it into place, then removes the
 * store if nothing is missing, with the terminating signals held back
 * meanwhile; *sig: the first that came (0: none), consumed. Releases op. */
static int sweep_finish(sweep_ctx *c, outpath *op, const char *store, const sweep_stats *st,
                        int *sig, sim_err *err)
{
    sigset_t hold, old;
    sigemptyset(&hold);
    for (int i = 0; i < outpath_n_signals; i++)
        sigaddset(&hold, outpath_signals[i]);
    sigprocmask(SIG_BLOCK, &hold, &old);
    if (c->o->before_finish)
        c->o->before_finish(c->o->before_finish_ctx);
    int rc = sweep_file_write(c->e, c->o->out, outpath_partial(op), c->st, err);
    if (rc == 0)
        rc = outpath_commit(op, err);
    else
        outpath_abandon(op);
    if (rc == 0 && st->failed == 0 && st->pending == 0)
        sweep_remove_store(c, store);
    *sig = 0;
    sigset_t pending;
    sigpending(&pending);
    for (int i = 0; i < outpath_n_signals; i++) {
        int s = outpath_signals[i];
        if (!sigismember(&old, s) && sigismember(&pending, s)) {
            sigset_t one;
            sigemptyset(&one);
            sigaddset(&one, s);
            struct timespec zero = {0, 0};
            while (sigtimedwait(&one, NULL, &zero) == s)
                ;
            if (!*sig)
                *sig = s;
        }
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int sweep_run(experiment *e, const sweep_opts *o, sweep_stats *stats, sim_err *err)
{
    memset(stats, 0, sizeof *stats);
    stats->points = e->n_points;
    sweep_ctx c = {.e = e, .o = o, .t0 = sweep_now_s(), .tty = isatty(STDERR_FILENO),
                   .batch = o->batch_points > 0 ? o->batch_points : SWEEP_BATCH_POINTS,
                   .progress = o->progress_points > 0 ? o->progress_points
                                                      : SWEEP_PROGRESS_POINTS};
    c.st = sim_xcalloc((size_t)e->n_points + 1, sizeof *c.st);
    c.store_files = sim_xcalloc((size_t)e->n_points + 1, sizeof *c.store_files);
    int64_t *todo = sim_xcalloc((size_t)e->n_points + 1, sizeof *todo);
    int64_t batch_max = e->n_points < c.batch ? e->n_points : c.batch;
    workers_job *jobs = sim_xcalloc((size_t)batch_max + 1, sizeof *jobs);
    char *store = sweep_store_path(o->out);
    int rc = SWEEP_BAD_INPUT, running = 0;   /* running: points may have run */
    outpath *op = NULL;

    /* The results file first: refused or locked, nothing else is touched. */
    outpath_inputs in = {0};
    sweep_inputs(e, &in);
    if (outpath_make_parents(o->out, err) == 0)
        op = outpath_begin(o->out, &in, err);
    outpath_inputs_fini(&in);
    if (!op)
        goto done;
    for (int64_t i = 0; i < e->n_points; i++) {
        size_t n = strlen(store) + 32;
        c.store_files[i] = sim_xmalloc(n);
        snprintf(c.store_files[i], n, "%s/%s.h5", store, e->points[i].id_hex);
    }
    if ((rc = sweep_find_complete(&c, &stats->skipped, err)) != 0) {
        if (rc != SWEEP_BAD_INPUT)
            rc = SWEEP_ERROR;
        goto done;
    }
    for (int64_t i = 0; i < e->n_points; i++)
        if (c.st[i].status != SWEEP_COMPLETE) {
            if (o->limit > 0 && c.n_todo == o->limit) {
                stats->pending++;
                continue;
            }
            todo[c.n_todo++] = i;
        }
    if (!o->quiet) {
        int workers = o->jobs > 0 ? o->jobs : workers_default_workers();
        fprintf(stderr, "sweep: %lld points, %lld already complete, %lld to run",
                (long long)e->n_points, (long long)stats->skipped, (long long)c.n_todo);
        if (o->mpi)
            fprintf(stderr, " on %d MPI ranks\n", sweep_mpi_size());
        else
            fprintf(stderr, " on %d worker%s\n", workers, workers == 1 ? "" : "s");
    }
    running = 1;
    for (int64_t b = 0; b < c.n_todo; b += c.batch) {
        int64_t n = c.n_todo - b < c.batch ? c.n_todo - b : c.batch;
        if ((rc = sweep_batch(&c, todo + b, n, jobs, b, store, err)) != 0)
            goto done;
    }
    stats->ran = c.done - c.failed - c.infeasible;
    stats->failed = c.failed;
    stats->infeasible = c.infeasible;
    rc = sweep_finish(&c, op, store, stats, &stats->signal, err) ? SWEEP_ERROR : 0;
    op = NULL;
done:
    if (rc) {
        int64_t complete = stats->skipped + c.done - c.failed - c.infeasible;
        if (c.tty && !o->quiet && c.done && c.done < c.n_todo)
            fputc('\n', stderr);
        outpath_abandon(op);
        rmdir(store);   /* only if empty: then there is nothing to resume from */
        if (running) {
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err->msg);
            if (complete)
                sim_errf(err, "%.850s; %lld of %lld points complete and kept: %s", why,
                         (long long)complete, (long long)e->n_points,
                         rc == SWEEP_BAD_INPUT ? "fix the experiment, then run it again to "
                         "finish" : "run the same command again to finish");
            else if (rc == SWEEP_INTERRUPTED)
                sim_errf(err, "%.900s before any point was complete; nothing was kept", why);
        }
    }
    stats->wall_s = sweep_now_s() - c.t0;
    for (int64_t i = 0; i < e->n_points; i++) {
        free(c.store_files[i]);
        free(c.st[i].error);
    }
    free(c.store_files);
    free(c.st);
    free(todo);
    free(jobs);
    free(store);
    return rc;
}
