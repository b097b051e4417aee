/* Output files that never clobber (see outpath.h).
 *
 * The lock. An open file description lock (F_OFD_SETLK) on the partial
 * file: it belongs to the descriptor outpath_begin opened, so it survives
 * HDF5 opening and closing the same file through its own descriptors (a
 * classic POSIX record lock would be dropped by the first close), and it
 * does not interact with the flock() HDF5 takes. It stays on the inode
 * through the rename and goes when the descriptor is closed, after the
 * rename, so there is no moment when a second writer could take over a
 * partial file that is still about to be renamed. An OFD lock reports no
 * pid, so the holder's pid is the lock's position: each writer holds one
 * byte at OUTPATH_LOCK_BASE + pid. To take the lock a writer write-locks
 * the whole pid range (which fails while anyone holds a byte of it), then
 * lets go of all but its own byte; one that fails asks who holds a byte and
 * reads the pid from its offset. The bytes lie far past any data, which
 * locks do not need.
 *
 * After locking, the partial path must still name the locked file: a
 * writer that finished or gave up may have renamed or removed it between
 * our open and our lock. Otherwise the attempt starts again.
 *
 * Signals. A handler gets no context pointer, so the partial paths it
 * removes live in a small static table (a slot per open output; a sweep
 * holds two at most: its results file and, on MPI rank 0's point thread,
 * one point's). A slot's path is written before its flag is set; the
 * handler only reads flagged slots and calls unlink, write and raise, all
 * async-signal-safe. Dispositions are installed when the first slot is
 * taken and put back when the last is released (under a mutex: MPI rank 0
 * opens outputs from two threads). A signal ignored when the first slot was
 * taken (nohup, a background job) stays ignored. */
#define _GNU_SOURCE   /* F_OFD_SETLK */
#include "tool/outpath.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define OUTPATH_SUFFIX ".partial"
#define OUTPATH_LOCK_BASE ((off_t)1 << 40)
#define OUTPATH_LOCK_SPAN ((off_t)1 << 32)   /* pids are below 2^22 on Linux */
#define OUTPATH_SLOTS 8

struct outpath {
    char *final;
    char *partial;
    int fd;
    int slot;
};

/* ---- inputs ------------------------------------------------------------------- */

void outpath_inputs_add(outpath_inputs *in, const char *path)
{
    struct stat st;
    if (strcmp(path, "-") ? stat(path, &st) != 0 : fstat(STDIN_FILENO, &st) != 0)
        return;
    for (size_t i = 0; i < in->n; i++)
        if (in->v[i].dev == st.st_dev && in->v[i].ino == st.st_ino)
            return;
    sim_grow((void **)&in->v, &in->cap, in->n + 1, sizeof *in->v);
    in->v[in->n++] = (outpath_input){st.st_dev, st.st_ino, sim_xstrdup(path)};
}

void outpath_inputs_add_json(outpath_inputs *in, const cJSON *tree)
{
    for (const cJSON *c = tree ? tree->child : NULL; c; c = c->next) {
        struct stat st;
        if (cJSON_IsString(c) && c->valuestring[0] && stat(c->valuestring, &st) == 0 &&
            S_ISREG(st.st_mode))
            outpath_inputs_add(in, c->valuestring);
        else if (cJSON_IsObject(c) || cJSON_IsArray(c))
            outpath_inputs_add_json(in, c);
    }
}

void outpath_inputs_fini(outpath_inputs *in)
{
    for (size_t i = 0; i < in->n; i++)
        free(in->v[i].name);
    free(in->v);
    memset(in, 0, sizeof *in);
}

static const outpath_input *find_input(const outpath_inputs *in, const struct stat *st)
{
    for (size_t i = 0; in && i < in->n; i++)
        if (in->v[i].dev == st->st_dev && in->v[i].ino == st->st_ino)
            return &in->v[i];
    return NULL;
}

/* ---- checks ------------------------------------------------------------------- */

static const char *kind_of(mode_t m)
{
    return S_ISDIR(m) ? "a folder" : S_ISLNK(m) ? "a symbolic link"
         : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device"
         : S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket"
         : S_ISREG(m) ? "a file" : "not a regular file";
}

static void dirname_of(const char *path, char dir[OUTPATH_MAX])
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == path)
        strcpy(dir, "/");
    else
        snprintf(dir, OUTPATH_MAX, "%.*s", (int)(slash - path), path);
}

int outpath_make_parents(const char *path, sim_err *err)
{
    char buf[OUTPATH_MAX];
    if (strlen(path) >= sizeof buf)
        return sim_errf(err, "%.64s...: path longer than %d bytes", path, OUTPATH_MAX - 1);
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/' || p[-1] == '/')
            continue;
        *p = 0;
        struct stat st;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return sim_errf(err, "%s: cannot create the folder '%s': %s", path, buf,
                            strerror(errno));
        if (stat(buf, &st) != 0)
            return sim_errf(err, "%s: cannot reach the folder '%s': %s", path, buf,
                            strerror(errno));
        if (!S_ISDIR(st.st_mode))
            return sim_errf(err, "%s: '%s' is %s, not a folder", path, buf,
                            kind_of(st.st_mode));
        *p = '/';
    }
    return 0;
}

/* The checks on one existing path that the output would replace. */
static int check_target(const char *out, const char *path, const char *what,
                        const outpath_inputs *in, sim_err *err)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        return sim_errf(err, "%s: cannot check '%s': %s", out, path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode))
        return sim_errf(err, "%s: %s '%s' is %s; it is never replaced, so name a regular "
                        "file", out, what, path, kind_of(st.st_mode));
    const outpath_input *same = find_input(in, &st);
    if (same)
        return sim_errf(err, "%s: %s '%s' is the input '%s' (the same file); writing there "
                        "would destroy it, so name another output", out, what, path,
                        same->name);
    return 0;
}

int outpath_check(const char *out, const outpath_inputs *in, sim_err *err)
{
    if (!*out)
        return sim_errf(err, "an empty output path; expected a file name");
    if (strlen(out) + sizeof OUTPATH_SUFFIX > OUTPATH_MAX)
        return sim_errf(err, "%.64s...: output path longer than %d bytes", out,
                        OUTPATH_MAX - (int)sizeof OUTPATH_SUFFIX);
    char dir[OUTPATH_MAX], partial[OUTPATH_MAX];
    dirname_of(out, dir);
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (errno == ENOENT)
            return sim_errf(err, "%s: cannot create the output: folder '%s' does not exist",
                            out, dir);
        return sim_errf(err, "%s: cannot create the output: folder '%s': %s", out, dir,
                        strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return sim_errf(err, "%s: cannot create the output: '%s' is %s, not a folder", out,
                        dir, kind_of(st.st_mode));
    snprintf(partial, sizeof partial, "%s" OUTPATH_SUFFIX, out);
    if (check_target(out, out, "the output", in, err) ||
        check_target(out, partial, "its partial file", in, err))
        return -1;
    return 0;
}

/* ---- signals ---------------------------------------------------------------- */

const int outpath_signals[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGALRM,
                               SIGUSR1, SIGUSR2, SIGXCPU, SIGVTALRM, SIGPROF};
#define OUTPATH_NSIG ((int)(sizeof outpath_signals / sizeof outpath_signals[0]))
const int outpath_n_signals = OUTPATH_NSIG;
static const char *const outpath_signal_names[OUTPATH_NSIG] = {
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGPIPE", "SIGALRM",
    "SIGUSR1", "SIGUSR2", "SIGXCPU", "SIGVTALRM", "SIGPROF"};

const char *outpath_signal_name(int sig)
{
    for (int i = 0; i < OUTPATH_NSIG; i++)
        if (outpath_signals[i] == sig)
            return outpath_signal_names[i];
    return sig == SIGXFSZ ? "SIGXFSZ" : "a signal";
}

static struct {
    pthread_mutex_t mu;               /* slots' claims and the dispositions */
    int n_armed;
    bool installed[OUTPATH_NSIG];
    struct sigaction old[OUTPATH_NSIG];
    bool xfsz_set;
    struct sigaction old_xfsz;
    struct {
        volatile sig_atomic_t armed;
        char path[OUTPATH_MAX];
    } slot[OUTPATH_SLOTS];
} reg = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void say(const char *s)
{
    ssize_t w = write(STDERR_FILENO, s, strlen(s));
    (void)w;
}

static void on_signal(int sig)
{
    int saved = errno;
    for (int i = 0; i < OUTPATH_SLOTS; i++) {
        if (!reg.slot[i].armed)
            continue;
        unlink(reg.slot[i].path);
        say("servesim: stopped by ");
        say(outpath_signal_name(sig));
        say("; removed the partial file ");
        say(reg.slot[i].path);
        say("\n");
    }
    errno = saved;
    /* SA_RESETHAND has put back the default action: once the handler
     * returns, this kills the process with the status a shell expects. */
    raise(sig);
}

static int arm(const char *partial)
{
    pthread_mutex_lock(&reg.mu);
    int s = 0;
    while (s < OUTPATH_SLOTS && reg.slot[s].armed)
        s++;
    SIM_ASSERT(s < OUTPATH_SLOTS);   /* more outputs open at once than any command has */
    snprintf(reg.slot[s].path, sizeof reg.slot[s].path, "%s", partial);
    atomic_signal_fence(memory_order_seq_cst);
    reg.slot[s].armed = 1;
    if (reg.n_armed++ == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sa.sa_flags = SA_RESETHAND;
        sigemptyset(&sa.sa_mask);
        for (int i = 0; i < OUTPATH_NSIG; i++)
            sigaddset(&sa.sa_mask, outpath_signals[i]);
        for (int i = 0; i < OUTPATH_NSIG; i++) {
            struct sigaction cur;
            sigaction(outpath_signals[i], NULL, &cur);
            reg.installed[i] = cur.sa_handler != SIG_IGN;
            if (reg.installed[i])
                sigaction(outpath_signals[i], &sa, &reg.old[i]);
        }
        struct sigaction ign;
        memset(&ign, 0, sizeof ign);
        ign.sa_handler = SIG_IGN;
        sigemptyset(&ign.sa_mask);
        reg.xfsz_set = sigaction(SIGXFSZ, &ign, &reg.old_xfsz) == 0;
    }
    pthread_mutex_unlock(&reg.mu);
    return s;
}

static void disarm(int s)
{
    pthread_mutex_lock(&reg.mu);
    SIM_ASSERT(reg.slot[s].armed && reg.n_armed > 0);
    reg.slot[s].armed = 0;
    atomic_signal_fence(memory_order_seq_cst);
    if (--reg.n_armed == 0) {
        for (int i = 0; i < OUTPATH_NSIG; i++)
            if (reg.installed[i])
                sigaction(outpath_signals[i], &reg.old[i], NULL);
        if (reg.xfsz_set)
            sigaction(SIGXFSZ, &reg.old_xfsz, NULL);
        memset(reg.installed, 0, sizeof reg.installed);
        reg.xfsz_set = false;
    }
    pthread_mutex_unlock(&reg.mu);
}

void outpath_after_fork(void)
{
    /* The child has one thread; the mutex may have been held by another
     * thread of the parent at the fork, so it is made anew. */
    pthread_mutex_init(&reg.mu, NULL);
    for (int i = 0; i < OUTPATH_SLOTS; i++)
        reg.slot[i].armed = 0;
    reg.n_armed = 0;
    memset(reg.installed, 0, sizeof reg.installed);
    reg.xfsz_set = false;
}

/* ---- the lock ---------------------------------------------------------------- */

static int lock_range(int fd, short type, off_t start, off_t len)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = start;
    fl.l_len = len;
    return fcntl(fd, F_OFD_SETLK, &fl);
}

/* 0: locked; 1: another process holds it (*holder its pid, 0 if unknown);
 * -1: locking failed (errno). */
static int take_lock(int fd, pid_t *holder)
{
    off_t me = (off_t)getpid();
    SIM_ASSERT(me > 0 && me < OUTPATH_LOCK_SPAN - 1);
    *holder = 0;
    for (int tries = 0;; tries++) {
        if (lock_range(fd, F_WRLCK, OUTPATH_LOCK_BASE, OUTPATH_LOCK_SPAN) == 0) {
            if (lock_range(fd, F_UNLCK, OUTPATH_LOCK_BASE, me) != 0 ||
                lock_range(fd, F_UNLCK, OUTPATH_LOCK_BASE + me + 1,
                           OUTPATH_LOCK_SPAN - me - 1) != 0)
                return -1;
            return 0;
        }
        if (errno != EAGAIN && errno != EACCES)
            return -1;
        struct flock fl;
        memset(&fl, 0, sizeof fl);
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        fl.l_start = OUTPATH_LOCK_BASE;
        fl.l_len = OUTPATH_LOCK_SPAN;
        if (fcntl(fd, F_OFD_GETLK, &fl) != 0)
            return -1;
        if (fl.l_type != F_UNLCK && fl.l_len == 1) {
            *holder = (pid_t)(fl.l_start - OUTPATH_LOCK_BASE);
            return 1;
        }
        /* Free again, or the holder is between its two steps: try again
         * shortly, and give up without a pid after 100 ms. */
        if (tries == 100)
            return 1;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* ---- writing ---------------------------------------------------------------- */

static void release(outpath *p)
{
    if (p->slot >= 0)
        disarm(p->slot);
    if (p->fd >= 0)
        close(p->fd);   /* releases the lock */
    free(p->final);
    free(p->partial);
    free(p);
}

static outpath *begin_locked(const char *out, const outpath_inputs *in, sim_err *err);

outpath *outpath_begin(const char *out, const outpath_inputs *in, sim_err *err)
{
    if (outpath_check(out, in, err))
        return NULL;
    /* The partial file is created before it is locked, and the lock taken
     * before the signal cleanup may name it (it may be another run's), so
     * the handled signals wait meanwhile: one that comes in between then
     * finds the cleanup armed and the file removed, rather than a file that
     * no handler knows of. */
    sigset_t hold, old;
    sigemptyset(&hold);
    for (int i = 0; i < OUTPATH_NSIG; i++)
        sigaddset(&hold, outpath_signals[i]);
    pthread_sigmask(SIG_BLOCK, &hold, &old);
    outpath *p = begin_locked(out, in, err);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return p;
}

static outpath *begin_locked(const char *out, const outpath_inputs *in, sim_err *err)
{
    outpath *p = sim_xcalloc(1, sizeof *p);
    p->fd = p->slot = -1;
    p->final = sim_xstrdup(out);
    size_t n = strlen(out) + sizeof OUTPATH_SUFFIX;
    p->partial = sim_xmalloc(n);
    snprintf(p->partial, n, "%s" OUTPATH_SUFFIX, out);
    for (int attempt = 0;; attempt++) {
        if (attempt == 100) {
            sim_errf(err, "%s: '%s' keeps being replaced by another process; is another "
                     "run writing the same output?", out, p->partial);
            goto fail;
        }
        bool created = true;
        int fd = open(p->partial, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0 && errno == EEXIST) {
            created = false;
            fd = open(p->partial, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
            if (fd < 0 && errno == ENOENT)
                continue;   /* removed meanwhile */
        }
        if (fd < 0) {
            if (errno == ELOOP)
                sim_errf(err, "%s: its partial file '%s' is a symbolic link; it is never "
                         "replaced, so remove it or name another output", out, p->partial);
            else
                sim_errf(err, "%s: cannot create '%s': %s", out, p->partial, strerror(errno));
            goto fail;
        }
        p->fd = fd;
        struct stat fst, pst;
        if (fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode)) {
            sim_errf(err, "%s: its partial file '%s' is not a regular file; it is never "
                     "replaced, so remove it or name another output", out, p->partial);
            goto fail;
        }
        pid_t holder;
        int locked = take_lock(fd, &holder);
        if (locked < 0) {
            sim_errf(err, "%s: cannot lock '%s': %s", out, p->partial, strerror(errno));
            goto fail_created;
        }
        if (locked > 0) {
            if (holder > 0)
                sim_errf(err, "another run is writing %s (pid %d); wait for it, stop it or "
                         "name another output", out, (int)holder);
            else
                sim_errf(err, "another run is writing %s; wait for it, stop it or name "
                         "another output", out);
            goto fail;   /* its partial file is the other run's: left alone */
        }
        if (lstat(p->partial, &pst) != 0 || pst.st_dev != fst.st_dev ||
            pst.st_ino != fst.st_ino) {
            close(fd);   /* the file we locked was renamed or removed meanwhile */
            p->fd = -1;
            continue;
        }
        const outpath_input *same = find_input(in, &fst);
        if (same) {
            sim_errf(err, "%s: its partial file '%s' is the input '%s' (the same file); "
                     "writing there would destroy it, so name another output", out,
                     p->partial, same->name);
            goto fail;
        }
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 ||
            ftruncate(fd, 0) != 0) {
            sim_errf(err, "%s: cannot empty '%s': %s", out, p->partial, strerror(errno));
            goto fail_created;
        }
        p->slot = arm(p->partial);
        return p;
    fail_created:
        if (created)
            unlink(p->partial);
        goto fail;
    }
fail:
    release(p);
    return NULL;
}

const char *outpath_final(const outpath *p) { return p->final; }
const char *outpath_partial(const outpath *p) { return p->partial; }
int outpath_fd(const outpath *p) { return p->fd; }

int outpath_fsync(const char *path, const char *final, sim_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return sim_errf(err, "%s: cannot sync '%s' to disk: %s", final, path, strerror(e));
    }
    close(fd);
    return 0;
}

int outpath_commit(outpath *p, sim_err *err)
{
    SIM_ASSERT(p);
    /* Data on disk before the rename makes it visible under its final name,
     * or a crash could leave a complete-looking but empty file. fsync
     * flushes the file, whichever descriptor wrote it. */
    if (fsync(p->fd) != 0) {
        sim_errf(err, "%s: cannot sync '%s' to disk: %s", p->final, p->partial,
                 strerror(errno));
        goto fail;
    }
    /* The final path may have become something else while the data were
     * written; the rename would replace it. */
    if (check_target(p->final, p->final, "the output", NULL, err))
        goto fail;
    if (rename(p->partial, p->final) != 0) {
        sim_errf(err, "%s: cannot rename '%s' into place: %s", p->final, p->partial,
                 strerror(errno));
        goto fail;
    }
    /* Best effort: makes the rename itself durable. The file is complete
     * and in place either way, so a failure here is not reported. */
    char dir[OUTPATH_MAX];
    dirname_of(p->final, dir);
    outpath_fsync(dir, p->final, NULL);
    release(p);
    return 0;
fail:
    outpath_abandon(p);
    return -1;
}

void outpath_abandon(outpath *p)
{
    if (!p)
        return;
    unlink(p->partial);   /* ours: we hold its lock */
    release(p);
}
