/* Local worker processes (see workers.h).
 *
 * Design. Each worker has two pipes: the parent writes job numbers into
 * its command pipe (-1: quit) and reads one fixed-size message per job from
 * its result pipe. The parent waits in poll() on the result pipes; a pipe
 * that reaches end of file without the message means the worker died, which
 * fails the job it was running. The jobs array is in memory before the
 * fork, so only job numbers travel.
 *
 * Signals. While workers_run runs, every terminating signal (outpath.h's
 * list: SIGINT, SIGTERM, SIGHUP, ...; SIGPIPE is ignored meanwhile) in the
 * parent only records which signal came; the poll loop then stops the
 * workers with SIGTERM (the results writer's handler in a worker removes its
 * partial file), reaps them and returns. Those signals are blocked except
 * inside ppoll(), which unblocks them atomically, so one that arrives
 * between the flag's check and the wait is acted on at once rather than
 * when a point next finishes. Workers put the default dispositions and the
 * caller's signal mask back first thing, and forget the parent's partial
 * files (outpath_after_fork), so the same Ctrl-C that reaches the whole
 * process group stops them too.
 *
 * Every job is reported exactly once: a worker's slot names a job only
 * once its number has been written to the worker, so a worker that dies
 * before reading it fails no job, and the job goes to its replacement. */
#define _GNU_SOURCE   /* prctl's PR_SET_PDEATHSIG */
#include "tool/workers.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "sim/jsoncfg.h"
#include "tool/outpath.h"
#include "tool/runner.h"

/* ---- one point -------------------------------------------------------------- */

int workers_run_point(const char *config_json, const char *out_path, run_summary *s,
                   sim_err *err)
{
    cJSON *root;
    run_config cfg;
    memset(&cfg, 0, sizeof cfg);
    if (jcfg_parse(config_json, "point config", &root, err) ||
        run_config_parse(root, &cfg, err))
        return -1;
    run_result r;
    int status = run_to_file(&cfg, NULL, out_path, &r, err);
    *s = r.summary;
    run_config_fini(&cfg);
    return status == RUN_OK ? 0 : -1;
}

/* ---- workers ------------------------------------------------------------------ */

typedef struct workers_msg {
    int64_t job;
    workers_result r;
} workers_msg;

typedef struct workers_worker {
    pid_t pid;          /* 0: slot empty */
    int cmd_fd;         /* parent writes job numbers */
    int res_fd;         /* parent reads workers_msg */
    int64_t job;        /* running, or -1 */
} workers_worker;

static volatile sig_atomic_t workers_stop;   /* the signal that came, or 0 */

static void workers_on_signal(int sig)
{
    if (!workers_stop)
        workers_stop = sig;
}

/* The signals workers_run handles: the terminating ones but SIGPIPE. */
static bool workers_handles(int sig) { return sig != SIGPIPE; }

static int workers_read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static int workers_write_full(int fd, const void *buf, size_t n)
{
    size_t put = 0;
    while (put < n) {
        ssize_t w = write(fd, (const char *)buf + put, n - put);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        put += (size_t)w;
    }
    return 0;
}

static _Noreturn void workers_worker_main(int cmd_fd, int res_fd, const workers_job *jobs)
{
    int64_t j;
    while (workers_read_full(cmd_fd, &j, sizeof j) == 0 && j >= 0) {
        workers_msg m;
        memset(&m, 0, sizeof m);
        m.job = j;
        sim_err err = {{0}};
        m.r.status = workers_run_point(jobs[j].config_json, jobs[j].out_path, &m.r.summary, &err);
        if (m.r.status)
            snprintf(m.r.msg, sizeof m.r.msg, "%s", err.msg);
        if (workers_write_full(res_fd, &m, sizeof m) < 0)
            break;
    }
    _exit(0);   /* no atexit handlers: they belong to the parent */
}

/* Forks a worker into ws[slot]; the child runs with signal mask `mask`. */
static int workers_spawn(workers_worker *ws, int n_ws, int slot, const workers_job *jobs,
                      const sigset_t *mask, sim_err *err)
{
    int cmd[2], res[2];
    if (pipe(cmd) != 0)
        return sim_errf(err, "cannot create a pipe: %s", strerror(errno));
    if (pipe(res) != 0) {
        close(cmd[0]);
        close(cmd[1]);
        return sim_errf(err, "cannot create a pipe: %s", strerror(errno));
    }
    fflush(NULL);
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        int e = errno;
        close(cmd[0]), close(cmd[1]), close(res[0]), close(res[1]);
        return sim_errf(err, "cannot start a worker process: %s", strerror(e));
    }
    if (pid == 0) {
        outpath_after_fork();
        for (int i = 0; i < outpath_n_signals; i++)
            signal(outpath_signals[i], SIG_DFL);
        sigprocmask(SIG_SETMASK, mask, NULL);
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
        if (getppid() != parent)   /* the parent died before prctl */
            _exit(1);
        for (int i = 0; i < n_ws; i++)
            if (ws[i].pid > 0) {
                close(ws[i].cmd_fd);
                close(ws[i].res_fd);
            }
        close(cmd[1]);
        close(res[0]);
        workers_worker_main(cmd[0], res[1], jobs);
    }
    close(cmd[0]);
    close(res[1]);
    ws[slot] = (workers_worker){pid, cmd[1], res[0], -1};
    return 0;
}

/* Closes the slot's pipes and reaps its process; describes how it ended. */
static void workers_reap(workers_worker *w, char *how, size_t n)
{
    close(w->cmd_fd);
    close(w->res_fd);
    int st = 0;
    while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(st))
        snprintf(how, n, "worker process killed by signal %d (%s)", WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    else
        snprintf(how, n, "worker process exited with status %d", WEXITSTATUS(st));
    w->pid = 0;
}

/* Sends the worker job *next and advances *next, or, when the write fails
 * (the worker has just died; its death is noticed by the poll loop), leaves
 * both the slot and *next as they were, so the job goes to its replacement. */
static void workers_assign(workers_worker *w, int64_t *next)
{
    int64_t job = *next;
    if (workers_write_full(w->cmd_fd, &job, sizeof job) == 0) {
        w->job = job;
        (*next)++;
    }
}

int workers_run(const workers_job *jobs, int64_t n, int workers, workers_done_fn done, void *ctx,
             sim_err *err)
{
    if (n <= 0)
        return 0;
    if (workers < 1)
        workers = 1;
    if (workers > n)
        workers = (int)n;
    /* workers_run runs on the only thread: sigprocmask is the process's mask. */
    sigset_t block, old_mask;
    sigemptyset(&block);
    for (int i = 0; i < outpath_n_signals; i++)
        if (workers_handles(outpath_signals[i]))
            sigaddset(&block, outpath_signals[i]);
    sigprocmask(SIG_BLOCK, &block, &old_mask);
    sigset_t wait_mask = old_mask;   /* what ppoll waits under */
    for (int i = 0; i < outpath_n_signals; i++)
        if (workers_handles(outpath_signals[i]))
            sigdelset(&wait_mask, outpath_signals[i]);
    struct sigaction sa, old_sa[32], old_pipe;
    SIM_ASSERT(outpath_n_signals <= 32);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = workers_on_signal;
    sigemptyset(&sa.sa_mask);
    workers_stop = 0;
    for (int i = 0; i < outpath_n_signals; i++)
        if (workers_handles(outpath_signals[i]))
            sigaction(outpath_signals[i], &sa, &old_sa[i]);
    sa.sa_handler = SIG_IGN;   /* a dead worker's pipe fails the write instead */
    sigaction(SIGPIPE, &sa, &old_pipe);

    workers_worker *ws = sim_xcalloc((size_t)workers, sizeof *ws);
    struct pollfd *fds = sim_xcalloc((size_t)workers, sizeof *fds);
    int64_t next = 0, reported = 0;
    int rc = 0;
    for (int i = 0; i < workers && rc == 0; i++)
        if ((rc = workers_spawn(ws, workers, i, jobs, &old_mask, err)) == 0)
            workers_assign(&ws[i], &next);

    while (rc == 0 && reported < n && !workers_stop) {
        for (int i = 0; i < workers; i++)
            fds[i] = (struct pollfd){.fd = ws[i].pid > 0 ? ws[i].res_fd : -1, .events = POLLIN};
        if (ppoll(fds, (nfds_t)workers, NULL, &wait_mask) < 0) {
            if (errno == EINTR)
                continue;
            rc = sim_errf(err, "ppoll: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < workers && rc == 0 && !workers_stop; i++) {
            if (ws[i].pid <= 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            workers_msg m;
            if (workers_read_full(ws[i].res_fd, &m, sizeof m) == 0 && m.job == ws[i].job) {
                ws[i].job = -1;
                reported++;
                done(ctx, m.job, &m.r);
                if (next < n)
                    workers_assign(&ws[i], &next);
                continue;
            }
            /* The worker died: its job failed; a new worker takes its place. */
            workers_result r;
            memset(&r, 0, sizeof r);
            r.status = -1;
            int64_t job = ws[i].job;
            workers_reap(&ws[i], r.msg, sizeof r.msg);
            if (job >= 0) {
                reported++;
                done(ctx, job, &r);
            }
            if (next < n && !workers_stop &&
                (rc = workers_spawn(ws, workers, i, jobs, &old_mask, err)) == 0)
                workers_assign(&ws[i], &next);
        }
    }
    if (workers_stop && rc == 0) {
        sim_errf(err, "interrupted by %s", outpath_signal_name(workers_stop));
        rc = WORKERS_INTERRUPTED;
    }
    for (int i = 0; i < workers; i++) {
        if (ws[i].pid <= 0)
            continue;
        if (rc == 0) {
            int64_t quit = -1;
            workers_write_full(ws[i].cmd_fd, &quit, sizeof quit);
        } else {
            kill(ws[i].pid, SIGTERM);
        }
        char how[256];
        workers_reap(&ws[i], how, sizeof how);
    }
    free(ws);
    free(fds);
    for (int i = 0; i < outpath_n_signals; i++)
        if (workers_handles(outpath_signals[i]))
            sigaction(outpath_signals[i], &old_sa[i], NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    /* After the handlers: a signal that came while the workers were reaped
     * meets the caller's disposition, as if it came just after the return. */
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    return rc;
}

int workers_default_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
