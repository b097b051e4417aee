/* Sweeps over MPI ranks (see sweep_mpi.h).
 *
 * Protocol (all messages are bytes on MPI_COMM_WORLD):
 *   rank 0 -> worker  SMPI_TAG_JOB     int64 job number, then the config JSON (with NUL)
 *   rank 0 -> worker  SMPI_TAG_STOP    empty: leave the loop
 *   worker -> rank 0  SMPI_TAG_RESULT  smpi_head, then the point's results file
 * Messages between two ranks are not overtaken by later ones, so a worker
 * sees its jobs, then STOP, in the order sent. Both sides wait with
 * MPI_Iprobe and a 1 ms sleep rather than a blocking probe, because Open
 * MPI's blocking calls spin a core, which would take one from the points.
 *
 * A results file is large enough to go by rendezvous, which moves data
 * only while both sides are inside MPI calls; a worker therefore sends
 * its result with a blocking send, and rank 0's main thread never runs a
 * point: it only polls, receives and hands out jobs, and runs its own
 * points on a second thread (MPI_THREAD_FUNNELED: only the main thread
 * calls MPI; only the point thread uses HDF5). So a finished result is
 * taken within a millisecond, and rank 0 still adds a core's worth of
 * points.
 *
 * MPI is used only when the process was started by an MPI launcher (its
 * environment says so); servesim-mpi started alone behaves as servesim.
 * An interruption needs no handler: the store is durable (sweep.h), so
 * the default action of SIGINT/SIGTERM, which mpirun forwards, is safe. */
#include "tool/sweep_mpi.h"

#ifdef SERVESIM_MPI

#include <errno.h>
#include <fcntl.h>
#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tool/output_h5.h"
#include "tool/outpath.h"

enum { SMPI_TAG_JOB = 1, SMPI_TAG_STOP = 2, SMPI_TAG_RESULT = 3 };
/* Jobs queued at each worker: the one it runs and the next. */
#define SMPI_DEPTH 2
/* Largest results file one message carries. */
#define SMPI_MAX_FILE_BYTES ((size_t)1 << 30)

typedef struct smpi_head {
    int64_t job;
    int32_t status;
    int32_t pad;
    uint64_t file_bytes;
    run_summary summary;
    char msg[1024];
} smpi_head;

static struct {
    int on, rank, size, stopped;
} smpi;

int sweep_mpi_init(int *argc, char ***argv)
{
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK")) {
        smpi.size = 1;
        return 0;
    }
    int provided;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &smpi.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &smpi.size);
    smpi.on = 1;
    return smpi.rank;
}

int sweep_mpi_size(void) { return smpi.size ? smpi.size : 1; }
int sweep_mpi_enabled(void) { return smpi.on && smpi.size > 1; }

void sweep_mpi_finish(void)
{
    if (!smpi.on)
        return;
    if (smpi.rank == 0 && !smpi.stopped)
        for (int w = 1; w < smpi.size; w++)
            MPI_Send(NULL, 0, MPI_BYTE, w, SMPI_TAG_STOP, MPI_COMM_WORLD);
    smpi.stopped = 1;
    MPI_Finalize();
    smpi.on = 0;
}

static void smpi_nap(void)
{
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

/* Waits for a message with `tag` (MPI_ANY_TAG) from `src` without spinning. */
static void smpi_wait_probe(int src, int tag, MPI_Status *st)
{
    int flag = 0;
    for (;;) {
        MPI_Iprobe(src, tag, MPI_COMM_WORLD, &flag, st);
        if (flag)
            return;
        smpi_nap();
    }
}

static char *smpi_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long len = ftell(f);
        if (len >= 0 && (size_t)len <= SMPI_MAX_FILE_BYTES && fseek(f, 0, SEEK_SET) == 0) {
            buf = sim_xmalloc((size_t)len + 1);
            if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
                free(buf);
                buf = NULL;
            }
            *n = (size_t)len;
        }
    }
    fclose(f);
    return buf;
}

void sweep_mpi_worker(void)
{
    char tmp[512];
    const char *dir = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/servesim-rank%d-%ld.h5", dir && *dir ? dir : "/tmp",
             smpi.rank, (long)getpid());
    for (;;) {
        MPI_Status st;
        smpi_wait_probe(0, MPI_ANY_TAG, &st);
        if (st.MPI_TAG == SMPI_TAG_STOP) {
            MPI_Recv(NULL, 0, MPI_BYTE, 0, SMPI_TAG_STOP, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            break;
        }
        int len = 0;
        MPI_Get_count(&st, MPI_BYTE, &len);
        char *in = sim_xmalloc((size_t)len + 1);
        MPI_Recv(in, len, MPI_BYTE, 0, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        in[len] = 0;
        smpi_head h;
        memset(&h, 0, sizeof h);
        memcpy(&h.job, in, sizeof h.job);
        sim_err err = {{0}};
        h.status = workers_run_point(in + sizeof h.job, tmp, &h.summary, &err);
        free(in);
        size_t bytes = 0;
        char *file = NULL;
        if (h.status == 0 && !(file = smpi_read_file(tmp, &bytes))) {
            h.status = -1;
            snprintf(err.msg, sizeof err.msg, "rank %d: cannot read back '%s' (larger than "
                     "1 GiB?)", smpi.rank, tmp);
        }
        unlink(tmp);
        if (h.status)
            snprintf(h.msg, sizeof h.msg, "%s", err.msg);
        h.file_bytes = bytes;
        char *out = sim_xmalloc(sizeof h + bytes);
        memcpy(out, &h, sizeof h);
        if (bytes)
            memcpy(out + sizeof h, file, bytes);
        free(file);
        MPI_Send(out, (int)(sizeof h + bytes), MPI_BYTE, 0, SMPI_TAG_RESULT, MPI_COMM_WORLD);
        free(out);
    }
}

/* Writes bytes to `path` the way the results writer does: a locked partial
 * file, synced, then renamed (outpath.h). */
static int smpi_store(const char *path, const char *bytes, size_t n, sim_err *err)
{
    outpath *op = outpath_begin(path, NULL, err);
    if (!op)
        return -1;
    int fd = outpath_fd(op);
    size_t put = 0;
    while (put < n) {
        ssize_t w = write(fd, bytes + put, n - put);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            sim_errf(err, "%s: cannot write: %s", outpath_partial(op), strerror(e));
            outpath_abandon(op);
            return -1;
        }
        put += (size_t)w;
    }
    return outpath_commit(op, err);
}

/* Job messages in flight. A config can exceed the eager limit (4 KiB on
 * shared memory), and a rendezvous send completes only once the worker,
 * busy with its current job, asks for the next; so jobs go by MPI_Isend
 * and are reaped here, never waited for. */
typedef struct smpi_sends {
    MPI_Request *req;
    char **buf;
    size_t n, cap;
} smpi_sends;

static void smpi_send_job(smpi_sends *s, const workers_job *jobs, int64_t j, int w)
{
    size_t len = strlen(jobs[j].config_json) + 1;
    char *msg = sim_xmalloc(sizeof j + len);
    memcpy(msg, &j, sizeof j);
    memcpy(msg + sizeof j, jobs[j].config_json, len);
    size_t cap = s->cap;
    sim_grow((void **)&s->req, &cap, s->n + 1, sizeof *s->req);
    sim_grow((void **)&s->buf, &s->cap, s->n + 1, sizeof *s->buf);
    s->buf[s->n] = msg;
    MPI_Isend(msg, (int)(sizeof j + len), MPI_BYTE, w, SMPI_TAG_JOB, MPI_COMM_WORLD,
              &s->req[s->n++]);
}

/* Frees the sends that have completed (all of them if `wait`). */
static void smpi_reap_sends(smpi_sends *s, int wait)
{
    size_t kept = 0;
    for (size_t i = 0; i < s->n; i++) {
        int flag = 0;
        if (wait)
            MPI_Wait(&s->req[i], MPI_STATUS_IGNORE), flag = 1;
        else
            MPI_Test(&s->req[i], &flag, MPI_STATUS_IGNORE);
        if (flag) {
            free(s->buf[i]);
        } else {
            s->req[kept] = s->req[i];
            s->buf[kept++] = s->buf[i];
        }
    }
    s->n = kept;
}

/* Receives one result, stores its file and reports it; returns the sender. */
static int smpi_receive(const workers_job *jobs, const MPI_Status *st, workers_done_fn done,
                        void *ctx)
{
    int len = 0;
    MPI_Get_count(st, MPI_BYTE, &len);
    char *in = sim_xmalloc((size_t)len);
    MPI_Recv(in, len, MPI_BYTE, st->MPI_SOURCE, SMPI_TAG_RESULT, MPI_COMM_WORLD,
             MPI_STATUS_IGNORE);
    smpi_head h;
    memcpy(&h, in, sizeof h);
    workers_result r;
    memset(&r, 0, sizeof r);
    r.status = h.status;
    r.summary = h.summary;
    snprintf(r.msg, sizeof r.msg, "%s", h.msg);
    sim_err err = {{0}};
    if (r.status == 0 && jobs[h.job].out_path &&
        smpi_store(jobs[h.job].out_path, in + sizeof h, (size_t)h.file_bytes, &err)) {
        r.status = -1;
        snprintf(r.msg, sizeof r.msg, "%s", err.msg);
    }
    free(in);
    done(ctx, h.job, &r);
    return st->MPI_SOURCE;
}

/* Rank 0's point thread: runs one job at a time, handed over by the main
 * thread, and leaves the result for it. */
typedef struct smpi_local {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const workers_job *jobs;
    int64_t job;            /* to run next, or -1 */
    int busy;               /* a job is handed over and not yet collected */
    int ready;              /* `result` holds job `done_job` */
    int quit;
    int64_t done_job;
    workers_result result;
} smpi_local;

static void *smpi_local_main(void *arg)
{
    smpi_local *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (l->job < 0 && !l->quit)
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->quit)
            break;
        int64_t j = l->job;
        l->job = -1;
        pthread_mutex_unlock(&l->mu);
        workers_result r;
        memset(&r, 0, sizeof r);
        sim_err err = {{0}};
        r.status = workers_run_point(l->jobs[j].config_json, l->jobs[j].out_path, &r.summary, &err);
        if (r.status)
            snprintf(r.msg, sizeof r.msg, "%s", err.msg);
        pthread_mutex_lock(&l->mu);
        l->result = r;
        l->done_job = j;
        l->ready = 1;
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int sweep_mpi_run(const workers_job *jobs, int64_t n, workers_done_fn done, void *ctx,
                  sim_err *err)
{
    SIM_ASSERT(smpi.on && smpi.rank == 0);
    smpi_local l = {.jobs = jobs, .job = -1};
    pthread_mutex_init(&l.mu, NULL);
    pthread_cond_init(&l.cv, NULL);
    pthread_t thread;
    if (pthread_create(&thread, NULL, smpi_local_main, &l) != 0)
        return sim_errf(err, "cannot start rank 0's point thread");
    int64_t next = 0, reported = 0;
    smpi_sends sends = {0};
    for (int d = 0; d < SMPI_DEPTH; d++)
        for (int w = 1; w < smpi.size && next < n; w++)
            smpi_send_job(&sends, jobs, next++, w);
    while (reported < n) {
        int flag = 0, moved = 0;
        smpi_reap_sends(&sends, 0);
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, SMPI_TAG_RESULT, MPI_COMM_WORLD, &flag, &st);
        if (flag) {
            int w = smpi_receive(jobs, &st, done, ctx);
            reported++;
            if (next < n)
                smpi_send_job(&sends, jobs, next++, w);
            moved = 1;
        }
        pthread_mutex_lock(&l.mu);
        int ready = l.ready;
        workers_result r = l.result;
        int64_t j = l.done_job;
        if (ready)
            l.ready = l.busy = 0;
        if (!l.busy && next < n) {
            l.job = next++;
            l.busy = 1;
            pthread_cond_signal(&l.cv);
            moved = 1;
        }
        pthread_mutex_unlock(&l.mu);
        if (ready) {
            reported++;
            done(ctx, j, &r);
            moved = 1;
        }
        if (!moved)
            smpi_nap();
    }
    smpi_reap_sends(&sends, 1);   /* every job was received: none is pending */
    free(sends.req);
    free(sends.buf);
    pthread_mutex_lock(&l.mu);
    l.quit = 1;
    pthread_cond_signal(&l.cv);
    pthread_mutex_unlock(&l.mu);
    pthread_join(thread, NULL);
    pthread_cond_destroy(&l.cv);
    pthread_mutex_destroy(&l.mu);
    return 0;
}

#else /* no MPI: stubs */

int sweep_mpi_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}
int sweep_mpi_size(void) { return 1; }
int sweep_mpi_enabled(void) { return 0; }
void sweep_mpi_finish(void) {}
void sweep_mpi_worker(void) {}
int sweep_mpi_run(const workers_job *jobs, int64_t n, workers_done_fn done, void *ctx,
                  sim_err *err)
{
    (void)jobs;
    (void)n;
    (void)done;
    (void)ctx;
    return sim_errf(err, "this servesim was built without MPI (make mpi builds servesim-mpi)");
}

#endif
