/* The sweep scheduler (see sweep.h).
 *
 * A sweep goes: lock the store folder (one sweep per results file at a
 * time), find the points already complete, hand the others to the local
 * pool or the MPI ranks, note each result as it comes (a complete point's
 * data is then already in its file in the store), rebuild the results file
 * from the store and the previous results file, and remove the store once
 * nothing is missing. Progress: a one-line counter on stderr when it is a
 * terminal. */
#include "tool/sweep.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tool/workers.h"
#include "tool/runner.h"
#include "tool/sweep_file.h"
#include "tool/sweep_mpi.h"

typedef struct sweep_ctx {
    const experiment *e;
    const sweep_opts *o;
    sweep_point_state *st;
    char **store_files;       /* per point: <store>/<id>.h5 */
    const int64_t *todo;      /* job -> point */
    int64_t n_todo, done, failed;
    double t0;
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
        if (!c->o->quiet)
            fprintf(stderr, "%ssweep: point %lld (%s) failed: %s\n", c->tty ? "\r" : "",
                    (long long)p, c->e->points[p].label, r->msg);
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

/* Creates the store and takes its lock; returns the lock's descriptor. */
static int sweep_lock_store(const char *store, const char *out, sim_err *err)
{
    if (mkdir(store, 0777) != 0 && errno != EEXIST)
        return sim_errf(err, "%s: cannot create the folder '%s': %s", out, store,
                        strerror(errno));
    char lock[4200];
    snprintf(lock, sizeof lock, "%s/lock", store);
    int fd = open(lock, O_CREAT | O_RDWR, 0666);
    if (fd < 0)
        return sim_errf(err, "%s: cannot create '%s': %s", out, lock, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return sim_errf(err, "%s: another sweep is writing this results file (it holds "
                        "'%s')", out, lock);
    }
    return fd;
}

/* Marks every point already complete, in the store or the old results
 * file; the store's copy wins (it is the newer one). */
static int sweep_find_complete(sweep_ctx *c, int64_t *n_complete, sim_err *err)
{
    const experiment *e = c->e;
    *n_complete = 0;
    for (int64_t i = 0; i < e->n_points; i++) {
        const exp_point *pt = &e->points[i];
        sweep_point_state *ps = &c->st[i];
        int rc = sweep_file_has_point(c->store_files[i], "/", pt->config_json, err);
        if (rc == 1) {
            ps->src_file = c->store_files[i];
            snprintf(ps->src_group, sizeof ps->src_group, "/");
        } else if (rc == 0) {
            char group[64];
            snprintf(group, sizeof group, "/points/%s", pt->id_hex);
            rc = sweep_file_has_point(c->o->out, group, pt->config_json, err);
            if (rc == 1) {
                ps->src_file = c->o->out;
                snprintf(ps->src_group, sizeof ps->src_group, "%s", group);
            }
        }
        if (rc < 0)
            return sim_err_prefix(err, "point %lld (%s)", (long long)i, pt->label);
        if (rc == 1) {
            ps->status = SWEEP_COMPLETE;
            (*n_complete)++;
        }
    }
    return 0;
}

/* Removes the store once the results file holds every point. */
static void sweep_remove_store(const sweep_ctx *c, const char *store)
{
    for (int64_t i = 0; i < c->e->n_points; i++) {
        char partial[4200];
        snprintf(partial, sizeof partial, "%s.partial", c->store_files[i]);
        unlink(c->store_files[i]);
        unlink(partial);
    }
    char lock[4200];
    snprintf(lock, sizeof lock, "%s/lock", store);
    unlink(lock);
    rmdir(store);   /* fails, harmlessly, if someone left other files there */
}

int sweep_run(const experiment *e, const sweep_opts *o, sweep_stats *stats, sim_err *err)
{
    memset(stats, 0, sizeof *stats);
    stats->points = e->n_points;
    sweep_ctx c = {.e = e, .o = o, .t0 = sweep_now_s(), .tty = isatty(STDERR_FILENO)};
    c.st = sim_xcalloc((size_t)e->n_points + 1, sizeof *c.st);
    c.store_files = sim_xcalloc((size_t)e->n_points + 1, sizeof *c.store_files);
    int64_t *todo = sim_xcalloc((size_t)e->n_points + 1, sizeof *todo);
    workers_job *jobs = sim_xcalloc((size_t)e->n_points + 1, sizeof *jobs);
    char *store = sweep_store_path(o->out);
    int rc = SWEEP_ERROR, lock_fd = -1;

    run_make_parent_dirs(o->out);
    if ((lock_fd = sweep_lock_store(store, o->out, err)) < 0)
        goto done;
    for (int64_t i = 0; i < e->n_points; i++) {
        size_t n = strlen(store) + 32;
        c.store_files[i] = sim_xmalloc(n);
        snprintf(c.store_files[i], n, "%s/%s.h5", store, e->points[i].id_hex);
    }
    if (sweep_find_complete(&c, &stats->skipped, err))
        goto done;
    for (int64_t i = 0; i < e->n_points; i++)
        if (c.st[i].status != SWEEP_COMPLETE) {
            if (o->limit > 0 && c.n_todo == o->limit) {
                stats->pending++;
                continue;
            }
            jobs[c.n_todo] = (workers_job){e->points[i].config_json, c.store_files[i]};
            todo[c.n_todo++] = i;
        }
    c.todo = todo;
    int workers = o->jobs > 0 ? o->jobs : workers_default_workers();
    if (!o->quiet) {
        fprintf(stderr, "sweep: %lld points, %lld already complete, %lld to run",
                (long long)e->n_points, (long long)stats->skipped, (long long)c.n_todo);
        if (o->mpi)
            fprintf(stderr, " on %d MPI ranks\n", sweep_mpi_size());
        else
            fprintf(stderr, " on %d worker%s\n", workers, workers == 1 ? "" : "s");
    }
    int run = o->mpi ? sweep_mpi_run(jobs, c.n_todo, sweep_on_done, &c, err)
                     : workers_run(jobs, c.n_todo, workers, sweep_on_done, &c, err);
    if (run) {
        int64_t complete = stats->skipped + c.done - c.failed;
        if (c.tty && !o->quiet)
            fputc('\n', stderr);
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        sim_errf(err, "%.900s; %lld of %lld points complete: run the same command again to "
                 "finish", why, (long long)complete, (long long)e->n_points);
        if (run == WORKERS_INTERRUPTED)
            rc = SWEEP_INTERRUPTED;
        goto done;
    }
    stats->ran = c.done - c.failed;
    stats->failed = c.failed;
    if (sweep_file_write(e, o->out, c.st, err))
        goto done;
    if (stats->failed == 0 && stats->pending == 0)
        sweep_remove_store(&c, store);
    rc = 0;
done:
    stats->wall_s = sweep_now_s() - c.t0;
    if (lock_fd >= 0)
        close(lock_fd);
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
