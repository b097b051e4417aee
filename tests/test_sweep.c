/* Sweeps (tool/sweep.c, workers.c, sweep_file.c): parallel equals serial,
 * resuming after --limit and after a kill -9 redoes nothing finished (the
 * kill made deterministic by a point that blocks on a FIFO), the
 * index table's contents, failed points, a changed experiment, the lock.
 * Every test works in its own folder under /tmp. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tool/cli.h"
#include "tool/output_h5.h"
#include "tool/outpath.h"
#include "tool/workers.h"
#include "tool/sweep.h"
#include "tests/suites.h"
#include "tests/testutil.h"

/* 8 points: 2 rates x 2 routing policies x 2 seeds, two instances. */
static const char small_exp[] =
    "{\"base\": {\"seed\": 11, \"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\","
    "  \"cluster\": {\"instances\": 2},"
    "  \"metrics\": {\"timeseries_interval_ms\": 200},"
    "  \"workload\": {\"requests\": 300, \"arrival\": {\"rate_per_s\": 8},"
    "    \"input_tokens\": {\"dist\": \"lognormal\", \"mean\": 600, \"sigma\": 0.5},"
    "    \"output_tokens\": {\"dist\": \"lognormal\", \"mean\": 100, \"sigma\": 0.7}}},"
    " \"sweep\": {\"grid\": {\"workload.arrival.rate_per_s\": [6, 40],"
    "   \"policies.routing.name\": [\"round_robin\", \"least_outstanding_tokens\"]},"
    "   \"seeds\": 2}}";

typedef struct tdir {
    char *dir;
    char exp[512];
} tdir;

static void tdir_make(tdir *t, const char *exp_text)
{
    t->dir = tu_tempdir();
    snprintf(t->exp, sizeof t->exp, "%s/exp.json", t->dir);
    FILE *f = fopen(t->exp, "w");
    ck_assert_ptr_nonnull(f);
    fputs(exp_text, f);
    fclose(f);
}

static void tdir_remove(tdir *t)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
    ck_assert_int_eq(system(cmd), 0);
    free(t->dir);
}

static void load(const char *file, experiment *e)
{
    sim_err err = {{0}};
    if (exp_load(file, 0, e, &err))
        ck_abort_msg("%s", err.msg);
}

static void sweep(experiment *e, const char *out, int jobs, int64_t limit, sweep_stats *st)
{
    sweep_opts o = {.out = out, .jobs = jobs, .limit = limit, .quiet = 1};
    sim_err err = {{0}};
    if (sweep_run(e, &o, st, &err))
        ck_abort_msg("sweep: %s", err.msg);
}

/* The point's summary, with the wall-clock columns zeroed. */
static void read_summary(hid_t f, const char *id, run_summary *s)
{
    char path[128];
    snprintf(path, sizeof path, "/points/%s/summary", id);
    hid_t mem, file_t;
    ck_assert_int_eq(out_summary_types(&mem, &file_t), 0);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "%s missing", path);
    memset(s, 0, sizeof *s);
    ck_assert_int_ge(H5Dread(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, s), 0);
    s->wall_s = s->peak_rss_mb = 0;
    H5Dclose(d);
    H5Tclose(mem);
    H5Tclose(file_t);
}

/* A dataset's raw bytes in its own type; *n rows. Caller frees. */
static unsigned char *read_raw(hid_t f, const char *path, hsize_t *n, size_t *row)
{
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "%s missing", path);
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    H5Sget_simple_extent_dims(sp, n, NULL);
    *row = H5Tget_size(t);
    unsigned char *buf = calloc(*n ? *n : 1, *row);
    ck_assert_int_ge(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), 0);
    H5Sclose(sp);
    H5Tclose(t);
    H5Dclose(d);
    return buf;
}

static void assert_same_dataset(hid_t a, hid_t b, const char *path)
{
    hsize_t na, nb;
    size_t ra, rb;
    unsigned char *x = read_raw(a, path, &na, &ra), *y = read_raw(b, path, &nb, &rb);
    ck_assert_uint_eq(na, nb);
    ck_assert_uint_eq(ra, rb);
    ck_assert_msg(memcmp(x, y, na * ra) == 0, "%s differs", path);
    free(x);
    free(y);
}

/* Every point of e has the same results in both files. */
static void assert_same_results(const experiment *e, const char *fa, const char *fb)
{
    hid_t a = H5Fopen(fa, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t b = H5Fopen(fb, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(a >= 0 && b >= 0);
    for (int64_t i = 0; i < e->n_points; i++) {
        const char *id = e->points[i].id_hex;
        run_summary sa, sb;
        read_summary(a, id, &sa);
        read_summary(b, id, &sb);
        ck_assert_msg(memcmp(&sa, &sb, sizeof sa) == 0, "point %s: summaries differ", id);
        char path[128];
        snprintf(path, sizeof path, "/points/%s/requests", id);
        assert_same_dataset(a, b, path);
        snprintf(path, sizeof path, "/points/%s/timeseries/instances", id);
        assert_same_dataset(a, b, path);
    }
    H5Fclose(a);
    H5Fclose(b);
}

START_TEST(test_sweep_parallel_equals_serial)
{
    tdir t;
    tdir_make(&t, small_exp);
    experiment e;
    load(t.exp, &e);
    char one[600], two[600];
    snprintf(one, sizeof one, "%s/j1.h5", t.dir);
    snprintf(two, sizeof two, "%s/j2.h5", t.dir);
    sweep_stats st;
    sweep(&e, one, 1, 0, &st);
    ck_assert_int_eq(st.ran, 8);
    sweep(&e, two, 2, 0, &st);
    ck_assert_int_eq(st.ran, 8);
    ck_assert_int_eq(st.failed, 0);
    assert_same_results(&e, one, two);
    /* Finished: the store folder is gone. */
    char store[700];
    snprintf(store, sizeof store, "%s.d", two);
    ck_assert_int_ne(access(store, F_OK), 0);
    exp_fini(&e);
    tdir_remove(&t);
}
END_TEST

START_TEST(test_sweep_resume_after_limit_redoes_nothing)
{
    tdir t;
    tdir_make(&t, small_exp);
    experiment e;
    load(t.exp, &e);
    char ref[600], out[600];
    snprintf(ref, sizeof ref, "%s/ref.h5", t.dir);
    snprintf(out, sizeof out, "%s/out.h5", t.dir);
    sweep_stats st;
    sweep(&e, ref, 2, 0, &st);
    sweep(&e, out, 2, 3, &st);
    ck_assert_int_eq(st.ran, 3);
    ck_assert_int_eq(st.pending, 5);
    sweep(&e, out, 2, 0, &st);
    ck_assert_int_eq(st.skipped, 3);
    ck_assert_int_eq(st.ran, 5);
    sweep(&e, out, 2, 0, &st);   /* all there: from the results file alone */
    ck_assert_int_eq(st.skipped, 8);
    ck_assert_int_eq(st.ran, 0);
    assert_same_results(&e, ref, out);
    exp_fini(&e);
    tdir_remove(&t);
}
END_TEST

static int count_points(const char *store)
{
    DIR *d = opendir(store);
    if (!d)
        return 0;
    int n = 0;
    for (struct dirent *de; (de = readdir(d));) {
        size_t len = strlen(de->d_name);
        n += len == 19 && !strcmp(de->d_name + 16, ".h5");
    }
    closedir(d);
    return n;
}

/* Files in the store whose names end in `suffix`. */
static int count_files(const char *store, const char *suffix)
{
    DIR *d = opendir(store);
    if (!d)
        return 0;
    int n = 0;
    size_t sl = strlen(suffix);
    for (struct dirent *de; (de = readdir(d));) {
        size_t len = strlen(de->d_name);
        n += len > sl && !strcmp(de->d_name + len - sl, suffix);
    }
    closedir(d);
    return n;
}

/* Kills the coordinator and fails the test (no stray processes either way:
 * its workers die with it). */
#define KILL_FAIL(pid, ...)          \
    do {                             \
        kill((pid), SIGKILL);        \
        waitpid((pid), NULL, 0);     \
        ck_abort_msg(__VA_ARGS__);   \
    } while (0)

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Writes `text` into the FIFO once a reader opens it; fails if the
 * coordinator `pid` exits first or nobody opens it within 60 s. */
static void feed_fifo(const char *fifo, const char *text, pid_t pid)
{
    for (int i = 0; i < 60000; i++) {
        int fd = open(fifo, O_WRONLY | O_NONBLOCK);
        if (fd >= 0) {
            size_t n = strlen(text);   /* fits the pipe's buffer: one write */
            ssize_t put = write(fd, text, n);
            close(fd);
            if (put != (ssize_t)n)
                KILL_FAIL(pid, "fifo: wrote %zd of %zu bytes", put, n);
            return;
        }
        if (errno != ENXIO)
            KILL_FAIL(pid, "fifo: %s", strerror(errno));
        if (waitpid(pid, NULL, WNOHANG) == pid)
            ck_abort_msg("the sweep exited before reading its trace");
        sleep_ms(1);
    }
    KILL_FAIL(pid, "the sweep never opened its trace");
}

START_TEST(test_sweep_resume_after_kill_redoes_nothing)
{
    /* Deterministic, whatever the load: 8 points whose traces are 7 files
     * and, last, a FIFO. The coordinator reads the FIFO once when it checks
     * the points' configs (the test feeds it then); the worker that runs the
     * last point then blocks opening it, with its results file half made,
     * so the sweep stops with exactly the other 7 points stored and cannot
     * finish. Then kill -9: its workers die with it (parent-death signal),
     * and this process, their subreaper, waits for them, so nothing is
     * stored after the count. */
    enum { FILES = 7, POINTS = FILES + 1 };
    char trace[8192], text[4096], grid[2048], fifo[700], out[700], store[800];
    size_t used = (size_t)snprintf(trace, sizeof trace, "arrival_s,input_tokens,output_tokens\n");
    for (int i = 0; i < 150; i++)
        used += (size_t)snprintf(trace + used, sizeof trace - used, "%d.%d,%d,%d\n", i / 10,
                                 i % 10, 200 + 37 * (i % 11), 20 + 13 * (i % 7));
    ck_assert_uint_lt(used, 4096);
    tdir t;
    tdir_make(&t, "{}");
    used = 0;
    for (int i = 0; i < FILES; i++) {
        char path[700];
        snprintf(path, sizeof path, "%s/t%d.csv", t.dir, i);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(trace, f);
        fclose(f);
        used += (size_t)snprintf(grid + used, sizeof grid - used, "\"%s\", ", path);
    }
    snprintf(fifo, sizeof fifo, "%s/fifo.csv", t.dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    snprintf(text, sizeof text,
             "{\"base\": {\"seed\": 11, \"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\","
             "  \"workload\": {\"source\": \"native\", \"path\": \"%s/t0.csv\"}},"
             " \"sweep\": {\"grid\": {\"workload.path\": [%s\"%s\"]}}}",
             t.dir, grid, fifo);
    FILE *f = fopen(t.exp, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    snprintf(out, sizeof out, "%s/out.h5", t.dir);
    snprintf(store, sizeof store, "%s.d", out);

    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        const char *argv[] = {"servesim", "sweep", t.exp, "--out", out, "-j", "2", "--quiet", NULL};
        int rc = cli_main(8, (char **)argv);
        fflush(NULL);
        _exit(rc);
    }
    feed_fifo(fifo, trace, pid);
    /* Every other point stored, the last one's results file begun. */
    for (int i = 0; count_points(store) < FILES || count_files(store, ".partial") < 1; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            ck_abort_msg("the sweep exited; %d points stored", count_points(store));
        if (i == 60000)
            KILL_FAIL(pid, "after 60 s: %d points stored", count_points(store));
        sleep_ms(1);
    }
    kill(pid, SIGKILL);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* Its workers are now this process's children: wait for every one. */
    int workers = 0;
    for (;;) {
        pid_t w = waitpid(-1, &status, 0);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            break;
        workers++;
    }
    ck_assert_int_eq(errno, ECHILD);
    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0), 0);
    ck_assert_int_eq(workers, 2);
    ck_assert_int_eq(count_points(store), FILES);
    ck_assert_int_eq(count_files(store, ".partial"), 0);   /* removed as the worker died */
    ck_assert_int_ne(access(out, F_OK), 0);                  /* never written */

    /* The last point's trace as a plain file, under the same name. */
    ck_assert_int_eq(unlink(fifo), 0);
    f = fopen(fifo, "w");
    ck_assert_ptr_nonnull(f);
    fputs(trace, f);
    fclose(f);
    experiment e;
    load(t.exp, &e);
    ck_assert_int_eq(e.n_points, POINTS);
    sweep_stats st;
    sweep(&e, out, 2, 0, &st);
    ck_assert_int_eq(st.skipped, FILES);
    ck_assert_int_eq(st.ran, 1);
    ck_assert_int_eq(st.failed, 0);
    char ref[700];
    snprintf(ref, sizeof ref, "%s/ref.h5", t.dir);
    sweep(&e, ref, 2, 0, &st);
    ck_assert_int_eq(st.ran, POINTS);
    assert_same_results(&e, ref, out);
    exp_fini(&e);
    tdir_remove(&t);
}
END_TEST

/* SIGTERM, and (issue 15 item 6) any other terminating signal, to the
 * coordinator. */
static const int coordinator_signals[] = {SIGTERM, SIGHUP, SIGINT, SIGUSR1};

START_TEST(test_sweep_sigterm_to_the_coordinator_exits_130)
{
    int sig = coordinator_signals[_i];
    /* One point whose trace is a FIFO: the coordinator reads it once when
     * it checks the config (fed here), then the worker blocks opening it,
     * with its results file begun, until the coordinator, sent SIGTERM on
     * its own, stops it. The exit status comes from the pool's status, not
     * from the message's words. */
    char trace[] = "arrival_s,input_tokens,output_tokens\n0.1,200,20\n0.2,300,30\n";
    char text[2048], fifo[700], out[700], store[800], errfile[700];
    tdir t;
    tdir_make(&t, "{}");
    snprintf(fifo, sizeof fifo, "%s/fifo.csv", t.dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    snprintf(text, sizeof text,
             "{\"base\": {\"seed\": 11, \"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\","
             "  \"workload\": {\"source\": \"native\", \"path\": \"%s\"}},"
             " \"sweep\": {\"grid\": {\"workload.path\": [\"%s\"]}}}", fifo, fifo);
    FILE *f = fopen(t.exp, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    snprintf(out, sizeof out, "%s/out.h5", t.dir);
    snprintf(store, sizeof store, "%s.d", out);
    snprintf(errfile, sizeof errfile, "%s/stderr.txt", t.dir);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (!freopen(errfile, "w", stderr))
            _exit(97);
        const char *argv[] = {"servesim", "sweep", t.exp, "--out", out, "-j", "1", "--quiet", NULL};
        int rc = cli_main(8, (char **)argv);
        fflush(NULL);
        _exit(rc);
    }
    feed_fifo(fifo, trace, pid);
    for (int i = 0; count_files(store, ".partial") < 1; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            ck_abort_msg("the sweep exited before its point began");
        if (i == 60000)
            KILL_FAIL(pid, "after 60 s the point has not begun");
        sleep_ms(1);
    }
    kill(pid, sig);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 130, "status %#x", status);
    ck_assert_int_eq(count_files(store, ".partial"), 0);
    /* Nothing was complete: nothing is kept, and the message says so. */
    ck_assert_int_ne(access(store, F_OK), 0);
    char partial[800];
    snprintf(partial, sizeof partial, "%s.partial", out);
    ck_assert_int_ne(access(partial, F_OK), 0);
    char msg[4096] = "";
    FILE *ef = fopen(errfile, "r");
    ck_assert_ptr_nonnull(ef);
    msg[fread(msg, 1, sizeof msg - 1, ef)] = 0;
    fclose(ef);
    char want[128];
    snprintf(want, sizeof want, "interrupted by %s before any point was complete; nothing "
             "was kept", outpath_signal_name(sig));
    ck_assert_msg(strstr(msg, want), "expected '%s' in: %s", want, msg);
    tdir_remove(&t);
}
END_TEST

/* Reads one column of /index into `out` as type `t` (count rows). */
static void read_column(hid_t ds, const char *name, hid_t t, void *out)
{
    hid_t c = H5Tcreate(H5T_COMPOUND, H5Tget_size(t));
    H5Tinsert(c, name, 0, t);
    ck_assert_msg(H5Dread(ds, c, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0, "column %s", name);
    H5Tclose(c);
}

START_TEST(test_sweep_index_has_params_status_and_metrics)
{
    tdir t;
    tdir_make(&t, small_exp);
    experiment e;
    load(t.exp, &e);
    char out[600];
    snprintf(out, sizeof out, "%s/out.h5", t.dir);
    sweep_stats st;
    sweep(&e, out, 2, 0, &st);
    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "/index", H5P_DEFAULT);
    hid_t sp = H5Dget_space(ds);
    hsize_t n;
    H5Sget_simple_extent_dims(sp, &n, NULL);
    ck_assert_uint_eq(n, 8);
    int64_t point[8], rate[8];
    uint64_t seed[8];
    int8_t status[8];
    double ttft[8], attain[8], jpt[8], tput[8];
    char ids[8][16], policy[8][24];
    hid_t s16 = H5Tcopy(H5T_C_S1), s24 = H5Tcopy(H5T_C_S1);
    H5Tset_size(s16, 16);
    H5Tset_size(s24, 24);
    H5Tset_strpad(s16, H5T_STR_NULLPAD);
    H5Tset_strpad(s24, H5T_STR_NULLPAD);
    read_column(ds, "point", H5T_NATIVE_INT64, point);
    read_column(ds, "id", s16, ids);
    read_column(ds, "workload.arrival.rate_per_s", H5T_NATIVE_INT64, rate);
    read_column(ds, "policies.routing.name", s24, policy);
    read_column(ds, "seed", H5T_NATIVE_UINT64, seed);
    read_column(ds, "status", H5T_NATIVE_INT8, status);
    read_column(ds, "ttft_s_p90", H5T_NATIVE_DOUBLE, ttft);
    read_column(ds, "slo_attain", H5T_NATIVE_DOUBLE, attain);
    read_column(ds, "energy_per_out_token_j", H5T_NATIVE_DOUBLE, jpt);
    read_column(ds, "throughput_tok_s", H5T_NATIVE_DOUBLE, tput);
    for (int i = 0; i < 8; i++) {
        const exp_point *p = &e.points[i];
        ck_assert_int_eq(point[i], i);
        ck_assert(memcmp(ids[i], p->id_hex, 16) == 0);
        ck_assert_int_eq(rate[i], (int64_t)p->values[0]->valuedouble);
        ck_assert_msg(!strncmp(policy[i], p->values[1]->valuestring, 24), "row %d", i);
        ck_assert_uint_eq(seed[i], 11 + (uint64_t)(i % 2));
        ck_assert_int_eq(status[i], 1);
        ck_assert_double_gt(ttft[i], 0);
        ck_assert(attain[i] >= 0 && attain[i] <= 1);
        ck_assert_double_gt(jpt[i], 0);
        ck_assert_double_gt(tput[i], 0);
        run_summary s;
        read_summary(f, p->id_hex, &s);
        ck_assert(s.ttft_s.p90 == ttft[i]);
        ck_assert_uint_eq(s.seed, seed[i]);
    }
    /* Higher load: worse TTFT, for the same policy and seed. */
    ck_assert_double_gt(ttft[4], ttft[0]);
    ck_assert_int_gt(H5Aexists(f, "servesim_version"), 0);
    ck_assert_int_gt(H5Aexists(f, "experiment"), 0);
    ck_assert_int_gt(H5Aexists(f, "cost_sources"), 0);
    ck_assert_int_gt(H5Aexists(ds, "params"), 0);
    char grp[64];
    snprintf(grp, sizeof grp, "/points/%s", e.points[3].id_hex);
    hid_t g = H5Gopen2(f, grp, H5P_DEFAULT);
    ck_assert_int_gt(H5Aexists(g, "config"), 0);
    ck_assert_int_gt(H5Aexists(g, "seed"), 0);
    ck_assert_int_gt(H5Lexists(g, "timeseries", H5P_DEFAULT), 0);
    H5Gclose(g);
    H5Tclose(s16);
    H5Tclose(s24);
    H5Sclose(sp);
    H5Dclose(ds);
    H5Fclose(f);
    exp_fini(&e);
    tdir_remove(&t);
}
END_TEST

START_TEST(test_sweep_failed_point_is_marked_and_retried)
{
    tdir t;
    tdir_make(&t, small_exp);
    experiment e;
    load(t.exp, &e);
    char out[600], blocker[800];
    snprintf(out, sizeof out, "%s/out.h5", t.dir);
    /* A folder where point 2's file must go makes that point fail. */
    snprintf(blocker, sizeof blocker, "%s.d", out);
    ck_assert_int_eq(mkdir(blocker, 0777), 0);
    snprintf(blocker, sizeof blocker, "%s.d/%s.h5", out, e.points[2].id_hex);
    ck_assert_int_eq(mkdir(blocker, 0777), 0);
    sweep_stats st;
    sweep(&e, out, 2, 0, &st);
    ck_assert_int_eq(st.failed, 1);
    ck_assert_int_eq(st.ran, 7);
    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "/index", H5P_DEFAULT);
    int8_t status[8];
    double ttft[8];
    read_column(ds, "status", H5T_NATIVE_INT8, status);
    read_column(ds, "ttft_s_p90", H5T_NATIVE_DOUBLE, ttft);
    ck_assert_int_eq(status[2], 2);
    ck_assert(ttft[2] != ttft[2]);   /* NaN: not measured */
    ck_assert_int_eq(status[3], 1);
    char grp[64];
    snprintf(grp, sizeof grp, "/points/%s", e.points[2].id_hex);
    hid_t g = H5Gopen2(f, grp, H5P_DEFAULT);
    ck_assert_int_gt(H5Aexists(g, "error"), 0);
    H5Gclose(g);
    H5Dclose(ds);
    H5Fclose(f);
    rmdir(blocker);
    sweep(&e, out, 2, 0, &st);
    ck_assert_int_eq(st.skipped, 7);
    ck_assert_int_eq(st.ran, 1);
    ck_assert_int_eq(st.failed, 0);
    exp_fini(&e);
    tdir_remove(&t);
}
END_TEST

START_TEST(test_sweep_changed_experiment_is_refused)
{
    tdir t;
    tdir_make(&t, small_exp);
    experiment e;
    load(t.exp, &e);
    char out[600];
    snprintf(out, sizeof out, "%s/out.h5", t.dir);
    sweep_stats st;
    sweep(&e, out, 2, 2, &st);
    exp_fini(&e);
    /* Same swept values (so the same ids), another base. */
    char *changed = strdup(small_exp);
    char *at = strstr(changed, "\"requests\": 300");
    memcpy(at, "\"requests\": 301", 15);
    FILE *fp = fopen(t.exp, "w");
    fputs(changed, fp);
    fclose(fp);
    free(changed);
    load(t.exp, &e);
    sweep_opts o = {.out = out, .jobs = 2, .quiet = 1};
    sim_err err = {{0}};
    ck_assert_int_eq(sweep_run(&e, &o, &st, &err), -1);
    ck_assert_msg(strstr(err.msg, "another config"), "%s", err.msg);
    exp_fini(&e);
    tdir_remove(&t);
}
END_TEST

START_TEST(test_sweep_second_sweep_on_same_file_is_refused)
{
    /* A writer holds the results file's lock (here a child that opened it
     * with outpath_begin and waits); a sweep on the same file stops at once,
     * names the holder's pid, and leaves its partial file alone. */
    tdir t;
    tdir_make(&t, small_exp);
    experiment e;
    load(t.exp, &e);
    char out[600], partial[700], store[700];
    snprintf(out, sizeof out, "%s/out.h5", t.dir);
    snprintf(partial, sizeof partial, "%s.partial", out);
    snprintf(store, sizeof store, "%s.d", out);
    int ready[2], go[2];
    ck_assert_int_eq(pipe(ready), 0);
    ck_assert_int_eq(pipe(go), 0);
    fflush(NULL);
    pid_t holder = fork();
    ck_assert_int_ge(holder, 0);
    if (holder == 0) {
        sim_err err;
        outpath *op = outpath_begin(out, NULL, &err);
        char c = op ? 'y' : 'n';
        if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
            _exit(1);
        outpath_abandon(op);
        _exit(0);
    }
    char c;
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    ck_assert_int_eq(c, 'y');
    sweep_opts o = {.out = out, .jobs = 1, .quiet = 1};
    sweep_stats st;
    sim_err err = {{0}};
    ck_assert_int_eq(sweep_run(&e, &o, &st, &err), SWEEP_BAD_INPUT);
    char want[800];
    snprintf(want, sizeof want, "another run is writing %s (pid %d)", out, (int)holder);
    ck_assert_msg(strstr(err.msg, want), "expected '%s' in: %s", want, err.msg);
    ck_assert_int_eq(access(partial, F_OK), 0);   /* the holder's, untouched */
    ck_assert_int_ne(access(store, F_OK), 0);     /* nothing of the second sweep's */
    ck_assert_int_eq(write(go[1], "x", 1), 1);
    int status;
    ck_assert_int_eq(waitpid(holder, &status, 0), holder);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_ne(access(partial, F_OK), 0);
    exp_fini(&e);
    tdir_remove(&t);
}
END_TEST

/* ---- the pool on its own ---------------------------------------------- */

typedef struct pool_count {
    int reports[4];
    int ok[4];
    int killed;
} pool_count;

/* This process's only child (the pool's one worker), or 0. */
static pid_t only_child(void)
{
    char path[64], line[512];
    pid_t found = 0;
    DIR *d = opendir("/proc");
    ck_assert_ptr_nonnull(d);
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%d/stat", atoi(de->d_name));
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        char *rp = fgets(line, sizeof line, f) ? strrchr(line, ')') : NULL;
        fclose(f);
        char state;
        int ppid;
        if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == getpid())
            found = (pid_t)atoi(de->d_name);
    }
    closedir(d);
    return found;
}

/* A zombie: dead, its pipes closed, not yet reaped. */
static int is_zombie(pid_t pid)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char *rp = fgets(line, sizeof line, f) ? strrchr(line, ')') : NULL;
    fclose(f);
    char state = 0;
    return rp && sscanf(rp + 1, " %c", &state) == 1 && state == 'Z';
}

/* After the first report, kills the worker before it is sent the next job
 * number, so the parent's write of that number fails. */
static void pool_count_done(void *ctx, int64_t job, const workers_result *r)
{
    pool_count *c = ctx;
    c->reports[job]++;
    c->ok[job] += r->status == 0;
    if (c->killed++)
        return;
    pid_t w = only_child();
    ck_assert_int_gt(w, 0);
    kill(w, SIGKILL);
    for (int i = 0; !is_zombie(w); i++) {
        ck_assert_int_lt(i, 10000);
        sleep_ms(1);
    }
}

START_TEST(test_pool_reports_every_job_once_when_a_worker_dies_between_jobs)
{
    cJSON *root = tu_base_config();
    const char *sets[] = {"workload.requests=20", NULL};
    tu_set(root, sets);
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    workers_job jobs[3] = {{json, NULL}, {json, NULL}, {json, NULL}};
    pool_count c = {{0}, {0}, 0};
    sim_err err = {{0}};
    ck_assert_msg(workers_run(jobs, 3, 1, pool_count_done, &c, &err) == 0, "%s", err.msg);
    for (int j = 0; j < 3; j++) {
        ck_assert_msg(c.reports[j] == 1, "job %d reported %d times", j, c.reports[j]);
        ck_assert_msg(c.ok[j] == 1, "job %d failed", j);
    }
    cJSON_free(json);
}
END_TEST

typedef struct cli_args {
    const char *argv[12];
} cli_args;

static int call_cli(void *arg)
{
    cli_args *c = arg;
    int argc = 0;
    while (c->argv[argc])
        argc++;
    return cli_main(argc, (char **)c->argv);
}

START_TEST(test_sweep_cli_exit_codes)
{
    char errbuf[4096];
    cli_args missing = {{"servesim", "sweep", "/nonexistent/e.json", "--quiet", NULL}};
    ck_assert_int_eq(tu_capture_stderr(call_cli, &missing, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "/nonexistent/e.json"), "%s", errbuf);
    cli_args bad_j = {{"servesim", "sweep", "x.json", "-j", "0", NULL}};
    ck_assert_int_eq(tu_capture_stderr(call_cli, &bad_j, errbuf, sizeof errbuf), 2);
    tdir t;
    tdir_make(&t, small_exp);
    char out[600];
    snprintf(out, sizeof out, "%s/cli.h5", t.dir);
    cli_args ok = {{"servesim", "sweep", t.exp, "--out", out, "-j", "2", "--quiet", NULL}};
    ck_assert_int_eq(tu_capture_stderr(call_cli, &ok, errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(access(out, F_OK), 0);
    tdir_remove(&t);
}
END_TEST

/* ---- never clobber, never hang (issue 15) --------------------------------- */

static int cli_status(cli_args *c, char *errbuf, size_t size)
{
    return tu_capture_stderr(call_cli, c, errbuf, size);
}

/* Item 2: the results file is never the experiment or its base config. */
START_TEST(test_sweep_out_never_overwrites_its_inputs)
{
    tdir t;
    tdir_make(&t, "{}");
    char base[700], exp_text[1024], errbuf[4096];
    snprintf(base, sizeof base, "%s/base.json", t.dir);
    FILE *f = fopen(base, "w");
    fputs("{\"seed\": 3, \"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\","
          " \"workload\": {\"requests\": 20, \"arrival\": {\"rate_per_s\": 8},"
          " \"input_tokens\": {\"dist\": \"fixed\", \"value\": 100},"
          " \"output_tokens\": {\"dist\": \"fixed\", \"value\": 10}}}", f);
    fclose(f);
    snprintf(exp_text, sizeof exp_text,
             "{\"base_config\": \"base.json\", \"sweep\": {\"seeds\": 2}}");
    f = fopen(t.exp, "w");
    fputs(exp_text, f);
    fclose(f);
    cli_args onto_exp = {{"servesim", "sweep", t.exp, "--out", t.exp, "--quiet", NULL}};
    ck_assert_int_eq(cli_status(&onto_exp, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "is the input"), "%s", errbuf);
    cli_args onto_base = {{"servesim", "sweep", t.exp, "--out", base, "--quiet", NULL}};
    ck_assert_int_eq(cli_status(&onto_base, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "is the input"), "%s", errbuf);
    char text[1024] = "";
    f = fopen(t.exp, "r");
    text[fread(text, 1, sizeof text - 1, f)] = 0;
    fclose(f);
    ck_assert_str_eq(text, exp_text);
    f = fopen(base, "r");
    text[fread(text, 1, sizeof text - 1, f)] = 0;
    fclose(f);
    ck_assert_msg(!strncmp(text, "{\"seed\": 3", 10), "base.json now holds: %.40s", text);
    tdir_remove(&t);
}
END_TEST

/* Item 10: an output that is a folder is refused before any point runs. */
START_TEST(test_sweep_out_folder_is_refused_before_running)
{
    tdir t;
    tdir_make(&t, small_exp);
    char out[600], store[700], errbuf[4096];
    snprintf(out, sizeof out, "%s/out.h5", t.dir);
    snprintf(store, sizeof store, "%s.d", out);
    ck_assert_int_eq(mkdir(out, 0777), 0);
    cli_args c = {{"servesim", "sweep", t.exp, "--out", out, "-j", "2", "--quiet", NULL}};
    double t0 = (double)time(NULL);
    ck_assert_int_eq(cli_status(&c, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, out) && strstr(errbuf, "is a folder"), "%s", errbuf);
    ck_assert_int_ne(access(store, F_OK), 0);   /* no point was run or stored */
    ck_assert_double_lt((double)time(NULL) - t0, 5);
    tdir_remove(&t);
}
END_TEST

/* Item 11: --quiet does not hide a failed point. */
START_TEST(test_sweep_quiet_still_reports_a_failed_point)
{
    tdir t;
    tdir_make(&t, small_exp);
    experiment e;
    load(t.exp, &e);
    char out[600], blocker[800], errbuf[8192];
    snprintf(out, sizeof out, "%s/out.h5", t.dir);
    snprintf(blocker, sizeof blocker, "%s.d", out);
    ck_assert_int_eq(mkdir(blocker, 0777), 0);
    snprintf(blocker, sizeof blocker, "%s.d/%s.h5", out, e.points[2].id_hex);
    ck_assert_int_eq(mkdir(blocker, 0777), 0);
    cli_args c = {{"servesim", "sweep", t.exp, "--out", out, "-j", "2", "--quiet", NULL}};
    ck_assert_int_eq(cli_status(&c, errbuf, sizeof errbuf), 1);
    ck_assert_msg(strstr(errbuf, "sweep: point 2 (") && strstr(errbuf, "failed: ") &&
                  strstr(errbuf, "is a folder"), "%s", errbuf);
    exp_fini(&e);
    tdir_remove(&t);
}
END_TEST

/* Item 12: counts are range-checked, not cast: 2^32 + 1 is not 1 worker. */
START_TEST(test_sweep_counts_are_range_checked)
{
    char errbuf[4096];
    static const char *const bad[][2] = {
        {"-j", "4294967297"}, {"-j", "2147483648"}, {"-j", "-1"}, {"-j", " 2"},
        {"--limit", "99999999999999999999"}, {"--limit", "0"}, {"--limit", "1x"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cli_args c = {{"servesim", "sweep", "experiments/sweep_rate_policy.json", bad[i][0],
                       bad[i][1], "--out", "/nonexistent/x.h5", NULL}};
        ck_assert_int_eq(cli_status(&c, errbuf, sizeof errbuf), 2);
        char want[128];
        snprintf(want, sizeof want, "%s: expected an integer in [1, ", bad[i][0]);
        ck_assert_msg(strstr(errbuf, want), "%s %s: %s", bad[i][0], bad[i][1], errbuf);
    }
    cli_args j = {{"servesim", "sweep", "x.json", "-j4294967297", NULL}};
    ck_assert_int_eq(cli_status(&j, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "[1, 4096]"), "%s", errbuf);
}
END_TEST

/* Writes an experiment whose grid has n rates 1, 2, ... on a 2-request
 * base, the n-th value replaced by `last` when it is not NULL. */
static void write_rate_grid(tdir *t, int n, const char *last)
{
    FILE *f = fopen(t->exp, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"base\": {\"seed\": 3, \"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\","
          " \"metrics\": {\"timeseries_interval_ms\": 0},"
          " \"workload\": {\"requests\": 2, \"arrival\": {\"rate_per_s\": 8},"
          " \"input_tokens\": {\"dist\": \"fixed\", \"value\": 100},"
          " \"output_tokens\": {\"dist\": \"fixed\", \"value\": 5}}},"
          " \"sweep\": {\"grid\": {\"workload.arrival.rate_per_s\": [", f);
    for (int i = 1; i <= n; i++) {
        if (i == n && last)
            fprintf(f, "%s%s", i > 1 ? ", " : "", last);
        else
            fprintf(f, "%s%d", i > 1 ? ", " : "", i);
    }
    fputs("]}}}", f);
    fclose(f);
}

/* Item 5: a grid past EXP_MAX_POINTS is refused at once unless forced;
 * --limit 1 checks one point's config, not the grid's (the bad value at
 * the end of this one is never reached). */
START_TEST(test_sweep_huge_grid_is_refused_or_checked_lazily)
{
    tdir t;
    tdir_make(&t, "{}");
    char out[600], errbuf[8192];
    snprintf(out, sizeof out, "%s/out.h5", t.dir);
    write_rate_grid(&t, EXP_MAX_POINTS + 1, NULL);
    cli_args big = {{"servesim", "sweep", t.exp, "--out", out, "--limit", "1", "-j", "1",
                     "--quiet", NULL}};
    ck_assert_int_eq(cli_status(&big, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "more than 100000 points") && strstr(errbuf, "--force"), "%s",
                  errbuf);
    ck_assert_int_ne(access(out, F_OK), 0);
    write_rate_grid(&t, 20000, "\"not a rate\"");
    cli_args lazy = {{"servesim", "sweep", t.exp, "--out", out, "--limit", "1", "-j", "1",
                      "--quiet", NULL}};
    ck_assert_msg(cli_status(&lazy, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    experiment e;
    load(t.exp, &e);
    ck_assert_int_eq(e.n_points, 20000);
    for (int64_t i = 0; i < e.n_points; i++)   /* exp_load builds no config */
        ck_assert_ptr_null(e.points[i].config_json);
    exp_fini(&e);
    tdir_remove(&t);
}
END_TEST

/* Item 5: configs are checked a batch at a time, with progress; a bad point
 * in a later batch stops the sweep there as bad input, keeping what ran. */
typedef struct sweep_call {
    experiment *e;
    sweep_opts *o;
    sweep_stats *st;
    sim_err *err;
} sweep_call;

static int call_sweep(void *arg)
{
    sweep_call *c = arg;
    return sweep_run(c->e, c->o, c->st, c->err);
}

START_TEST(test_sweep_checks_a_batch_at_a_time_with_progress)
{
    tdir t;
    tdir_make(&t, "{}");
    write_rate_grid(&t, 6, "\"not a rate\"");
    experiment e;
    load(t.exp, &e);
    char out[600], store[700], errbuf[8192];
    snprintf(out, sizeof out, "%s/out.h5", t.dir);
    snprintf(store, sizeof store, "%s.d", out);
    sweep_opts o = {.out = out, .jobs = 2, .batch_points = 2, .progress_points = 2};
    sweep_stats st;
    sim_err err = {{0}};
    sweep_call c = {&e, &o, &st, &err};
    ck_assert_int_eq(tu_capture_stderr(call_sweep, &c, errbuf, sizeof errbuf),
                     SWEEP_BAD_INPUT);
    ck_assert_msg(strstr(errbuf, "sweep: checking the configs of 6 points to run"), "%s",
                  errbuf);
    ck_assert_msg(strstr(err.msg, "point 5 (workload.arrival.rate_per_s=\"not a rate\"") &&
                  strstr(err.msg, "4 of 6 points complete and kept"), "%s", err.msg);
    ck_assert_int_eq(count_points(store), 4);
    /* Fixed, the same command runs the rest only. */
    exp_fini(&e);
    write_rate_grid(&t, 6, "6");
    load(t.exp, &e);
    o.quiet = 1;
    ck_assert_msg(sweep_run(&e, &o, &st, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(st.skipped, 4);
    ck_assert_int_eq(st.ran, 2);
    ck_assert_int_ne(access(store, F_OK), 0);
    exp_fini(&e);
    tdir_remove(&t);
}
END_TEST

static void raise_sigterm(void *unused)
{
    (void)unused;
    raise(SIGTERM);
}

/* Item 7: a signal during the final assembly takes effect once the results
 * file is complete and the store removed; the sweep reports it. */
START_TEST(test_sweep_signal_during_final_assembly_finishes_first)
{
    tdir t;
    tdir_make(&t, small_exp);
    experiment e;
    load(t.exp, &e);
    char out[600], store[700], partial[700];
    snprintf(out, sizeof out, "%s/out.h5", t.dir);
    snprintf(store, sizeof store, "%s.d", out);
    snprintf(partial, sizeof partial, "%s.partial", out);
    fflush(NULL);
    pid_t pid = fork();   /* if the signal got through, only the child dies */
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        sweep_opts o = {.out = out, .jobs = 2, .quiet = 1, .before_finish = raise_sigterm};
        sweep_stats st;
        sim_err err = {{0}};
        int rc = sweep_run(&e, &o, &st, &err);
        _exit(rc != 0 ? 10 : st.signal != SIGTERM ? 11 : st.ran != 8 ? 12 : 0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
    ck_assert_int_eq(access(out, F_OK), 0);
    ck_assert_int_ne(access(partial, F_OK), 0);
    ck_assert_int_ne(access(store, F_OK), 0);   /* every point complete: removed */
    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    for (int64_t i = 0; i < e.n_points; i++) {
        char grp[64];
        snprintf(grp, sizeof grp, "/points/%s/summary", e.points[i].id_hex);
        ck_assert_int_gt(H5Lexists(f, grp, H5P_DEFAULT), 0);
    }
    H5Fclose(f);
    exp_fini(&e);
    tdir_remove(&t);
}
END_TEST

static void limit_file_size(void *bytes)
{
    struct rlimit lim = {*(rlim_t *)bytes, *(rlim_t *)bytes};
    signal(SIGXFSZ, SIG_DFL);
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
        _exit(99);
}

/* Item 6: under a file-size limit the points fail with the cause (the
 * sweep is not killed by SIGXFSZ) and no partial file stays anywhere. */
START_TEST(test_sweep_past_a_file_size_limit_fails_cleanly)
{
    tdir t;
    tdir_make(&t, small_exp);
    char out[600], store[700], errbuf[8192];
    snprintf(out, sizeof out, "%s/out.h5", t.dir);
    snprintf(store, sizeof store, "%s.d", out);
    tu_cli_call c = {{"servesim", "sweep", t.exp, "--out", out, "-j", "2", "--quiet", NULL}};
    rlim_t limit = 16 * 1024;
    int status = tu_cli_child(&c, limit_file_size, &limit, errbuf, sizeof errbuf);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %#x: %s", status,
                  errbuf);
    ck_assert_msg(strstr(errbuf, "File too large"), "%s", errbuf);
    ck_assert_int_eq(count_files(store, ".partial"), 0);
    ck_assert_int_eq(count_files(t.dir, ".partial"), 0);
    tdir_remove(&t);
}
END_TEST

Suite *sweep_suite(void)
{
    Suite *s = suite_create("sweep");
    TCase *tc = tcase_create("sweep");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sweep_parallel_equals_serial);
    tcase_add_test(tc, test_sweep_resume_after_limit_redoes_nothing);
    tcase_add_test(tc, test_sweep_resume_after_kill_redoes_nothing);
    tcase_add_loop_test(tc, test_sweep_sigterm_to_the_coordinator_exits_130, 0,
                        (int)(sizeof coordinator_signals / sizeof coordinator_signals[0]));
    tcase_add_test(tc, test_sweep_index_has_params_status_and_metrics);
    tcase_add_test(tc, test_sweep_failed_point_is_marked_and_retried);
    tcase_add_test(tc, test_sweep_changed_experiment_is_refused);
    tcase_add_test(tc, test_sweep_second_sweep_on_same_file_is_refused);
    tcase_add_test(tc, test_sweep_cli_exit_codes);
    tcase_add_test(tc, test_pool_reports_every_job_once_when_a_worker_dies_between_jobs);
    tcase_add_test(tc, test_sweep_out_never_overwrites_its_inputs);
    tcase_add_test(tc, test_sweep_out_folder_is_refused_before_running);
    tcase_add_test(tc, test_sweep_quiet_still_reports_a_failed_point);
    tcase_add_test(tc, test_sweep_counts_are_range_checked);
    tcase_add_test(tc, test_sweep_huge_grid_is_refused_or_checked_lazily);
    tcase_add_test(tc, test_sweep_checks_a_batch_at_a_time_with_progress);
    tcase_add_test(tc, test_sweep_signal_during_final_assembly_finishes_first);
    tcase_add_test(tc, test_sweep_past_a_file_size_limit_fails_cleanly);
    suite_add_tcase(s, tc);
    return s;
}
