/* The command line: a run writes a complete results file; bad input exits
 * non-zero with a message naming the file, JSON path and what was expected,
 * and leaves no results file behind. */
#include <check.h>
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tool/outpath.h"
#include "tests/suites.h"
#include "tests/testutil.h"

/* Writes `json` to dir/name and returns the path (static buffer). */
static const char *write_config(const char *dir, const char *name, const char *json)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(json, f);
    fclose(f);
    return path;
}

static const char small_run[] =
    "{\"seed\": 3, \"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\",\n"
    " \"workload\": {\"requests\": 100, \"arrival\": {\"rate_per_s\": 8},\n"
    "   \"input_tokens\": {\"dist\": \"fixed\", \"value\": 500},\n"
    "   \"output_tokens\": {\"dist\": \"fixed\", \"value\": 50}}}\n";

START_TEST(test_run_writes_complete_results_file)
{
    char *dir = tu_tempdir();
    char config[512], out[512], partial[520];
    snprintf(config, sizeof config, "%s", write_config(dir, "small.json", small_run));
    snprintf(out, sizeof out, "%s/r.h5", dir);
    snprintf(partial, sizeof partial, "%s.partial", out);
    tu_cli_call c = {{"servesim", "run", config, "--out", out, "--quiet", NULL}};
    char errbuf[4096];
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &c, errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(access(out, F_OK), 0);
    ck_assert_int_ne(access(partial, F_OK), 0);

    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    hid_t d = H5Dopen2(f, "/requests", H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    hsize_t rows;
    H5Sget_simple_extent_dims(sp, &rows, NULL);
    ck_assert_uint_eq(rows, 100);
    H5Sclose(sp);
    H5Dclose(d);
    ck_assert_int_gt(H5Aexists(f, "config"), 0);
    ck_assert_int_gt(H5Aexists(f, "seed"), 0);
    ck_assert_int_gt(H5Lexists(f, "/summary", H5P_DEFAULT), 0);
    H5Fclose(f);
    unlink(out);
    unlink(config);
    rmdir(dir);
    free(dir);
}
END_TEST

/* Each bad input: a config edit, and what the message must contain. */
typedef struct bad_case {
    const char *json;
    const char *set;          /* extra --set, or NULL */
    const char *expect[3];
} bad_case;

static const bad_case bad_cases[] = {
    {"{\"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\", \"clster\": {}}", NULL,
     {"$.clster", "unknown key", "cluster"}},
    {"{\"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\", \"cluster\": {\"tp\": \"two\"}}",
     NULL, {"$.cluster.tp", "integer", NULL}},
    {"{\"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\", \"cluster\": {\"instances\": 0}}",
     NULL, {"$.cluster.instances", "[1,", NULL}},
    {"{\"model\": \"Llama-9-1T\", \"gpu\": \"H100-SXM-80GB\"}", NULL,
     {"$.model", "Llama-3-8B", NULL}},
    {"{\"model\": \"Llama-3-8B\", \"gpu\": \"TPU\"}", NULL, {"$.gpu", "H100-SXM-80GB", NULL}},
    {"{\"model\": \"Llama-3-70B\", \"gpu\": \"H100-SXM-80GB\"}", NULL,
     {"does not fit", "tp=1", NULL}},
    {"{\"model\": \"Llama-3-8B\",\n \"gpu\": \"H100-SXM-80GB\",,}", NULL, {":2:", "JSON", NULL}},
    {"{\"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\", \"workload\": {\"requests\": 5,"
     " \"arrival\": {\"rate_per_s\": -1}, \"input_tokens\": {\"dist\": \"fixed\", \"value\": 1},"
     " \"output_tokens\": {\"dist\": \"fixed\", \"value\": 1}}}", NULL,
     {"$.workload.arrival.rate_per_s", NULL, NULL}},
    {"{\"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\"}", "cluster.tp=3",
     {"$.cluster.tp", NULL, NULL}},
};
#define N_BAD (int)(sizeof bad_cases / sizeof bad_cases[0])

START_TEST(test_bad_input_names_path_and_leaves_no_file)
{
    const bad_case *bc = &bad_cases[_i];
    char *dir = tu_tempdir();
    char config[512], out[512];
    snprintf(config, sizeof config, "%s", write_config(dir, "bad.json", bc->json));
    snprintf(out, sizeof out, "%s/r.h5", dir);
    tu_cli_call c = {{"servesim", "run", config, "--out", out, "--quiet", NULL}};
    if (bc->set) {
        c.argv[6] = "--set";
        c.argv[7] = bc->set;
    }
    char errbuf[4096];
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &c, errbuf, sizeof errbuf), 2);
    /* A value set on the command line is blamed on the command line. */
    const char *source = bc->set ? "command line --set" : config;
    ck_assert_msg(strstr(errbuf, source), "message lacks '%s': %s", source, errbuf);
    for (int k = 0; k < 3 && bc->expect[k]; k++)
        ck_assert_msg(strstr(errbuf, bc->expect[k]), "expected '%s' in: %s",
                      bc->expect[k], errbuf);
    ck_assert_int_ne(access(out, F_OK), 0);
    char partial[600];
    snprintf(partial, sizeof partial, "%s.partial", out);
    ck_assert_int_ne(access(partial, F_OK), 0);
    unlink(config);
    rmdir(dir);
    free(dir);
}
END_TEST

START_TEST(test_missing_config_file_is_named)
{
    tu_cli_call c = {{"servesim", "run", "/nonexistent/x.json", "--quiet", NULL}};
    char errbuf[4096];
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &c, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "/nonexistent/x.json"), "%s", errbuf);
}
END_TEST

START_TEST(test_usage_errors_exit_2)
{
    tu_cli_call none = {{"servesim", NULL}};
    tu_cli_call bad = {{"servesim", "run", "--bogus", NULL}};
    char errbuf[4096];
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &none, errbuf, sizeof errbuf), 2);
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &bad, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "--bogus"), "%s", errbuf);
}
END_TEST

START_TEST(test_bundled_experiments_are_valid)
{
    /* Every shipped config parses and builds (not run: that is make run). */
    const char *files[] = {"experiments/quickstart.json", "experiments/bench_10k.json",
                           "experiments/bench_100k.json", NULL};
    for (int i = 0; files[i]; i++) {
        run_config cfg;
        sim_err err = {{0}};
        if (run_config_load(files[i], NULL, 0, &cfg, &err))
            ck_abort_msg("%s", err.msg);
        cluster *c = cluster_create(&cfg.sys, NULL, &err);
        ck_assert_msg(c, "%s: %s", files[i], err.msg);
        cluster_destroy(c);
        run_config_fini(&cfg);
    }
}
END_TEST

/* ---- never clobber (issue 15) ---------------------------------------------- */

/* Reads a whole small file into buf (NUL-terminated). */
static void read_text(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = 0;
    fclose(f);
}

static int run_to(const char *config, const char *out, char *errbuf, size_t size)
{
    tu_cli_call c = {{"servesim", "run", config, "--out", out, "--quiet", NULL}};
    return tu_capture_stderr(tu_call_cli, &c, errbuf, size);
}

/* Item 1: an output that is a device, a FIFO, a symbolic link or a folder
 * is refused before the run, and left as it was. */
START_TEST(test_run_out_never_replaces_a_device_fifo_or_link)
{
    char *dir = tu_tempdir();
    char config[512], fifo[512], target[512], link_path[512], errbuf[4096], text[64];
    struct stat st;
    snprintf(config, sizeof config, "%s", write_config(dir, "small.json", small_run));
    ck_assert_int_eq(run_to(config, "/dev/null", errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "/dev/null") && strstr(errbuf, "a character device"), "%s",
                  errbuf);
    ck_assert_int_eq(stat("/dev/null", &st), 0);
    ck_assert(S_ISCHR(st.st_mode));
    ck_assert_int_ne(access("/dev/null.partial", F_OK), 0);

    snprintf(fifo, sizeof fifo, "%s/fifo.h5", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    ck_assert_int_eq(run_to(config, fifo, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "a FIFO"), "%s", errbuf);
    ck_assert_int_eq(lstat(fifo, &st), 0);
    ck_assert(S_ISFIFO(st.st_mode));

    snprintf(target, sizeof target, "%s", write_config(dir, "target.txt", "keep\n"));
    snprintf(link_path, sizeof link_path, "%s/link.h5", dir);
    ck_assert_int_eq(symlink(target, link_path), 0);
    ck_assert_int_eq(run_to(config, link_path, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "a symbolic link"), "%s", errbuf);
    ck_assert_int_eq(lstat(link_path, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    read_text(target, text, sizeof text);
    ck_assert_str_eq(text, "keep\n");

    /* The partial file's name is checked too: a link there is not followed. */
    char out[512], partial[600];
    snprintf(out, sizeof out, "%s/r.h5", dir);
    snprintf(partial, sizeof partial, "%s.partial", out);
    ck_assert_int_eq(symlink(target, partial), 0);
    ck_assert_int_eq(run_to(config, out, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "partial file") && strstr(errbuf, "a symbolic link"), "%s",
                  errbuf);
    read_text(target, text, sizeof text);
    ck_assert_str_eq(text, "keep\n");
    ck_assert_int_ne(access(out, F_OK), 0);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}
END_TEST

/* Item 2: the output is never one of the run's inputs, whatever its name:
 * the config itself, a hard link to it, or a file the config reads. */
START_TEST(test_run_out_never_overwrites_an_input)
{
    char *dir = tu_tempdir();
    char config[512], hard[512], trace[512], cfg2[512], json[1024], errbuf[4096];
    char before[2048], after[2048];
    snprintf(config, sizeof config, "%s", write_config(dir, "small.json", small_run));
    ck_assert_int_eq(run_to(config, config, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "is the input"), "%s", errbuf);
    read_text(config, after, sizeof after);
    ck_assert_str_eq(after, small_run);

    snprintf(hard, sizeof hard, "%s/hard.h5", dir);
    ck_assert_int_eq(link(config, hard), 0);
    ck_assert_int_eq(run_to(config, hard, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "is the input"), "%s", errbuf);
    read_text(config, after, sizeof after);
    ck_assert_str_eq(after, small_run);

    snprintf(trace, sizeof trace, "%s",
             write_config(dir, "t.csv", "arrival_s,input_tokens,output_tokens\n0.1,200,20\n"));
    read_text(trace, before, sizeof before);
    snprintf(json, sizeof json,
             "{\"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\","
             " \"workload\": {\"source\": \"native\", \"path\": \"%s\"}}", trace);
    snprintf(cfg2, sizeof cfg2, "%s", write_config(dir, "trace.json", json));
    ck_assert_int_eq(run_to(cfg2, trace, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "is the input"), "%s", errbuf);
    read_text(trace, after, sizeof after);
    ck_assert_str_eq(after, before);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}
END_TEST

/* Item 3: a second writer of the same output stops at once, names the
 * first one's pid and leaves its partial file alone. */
START_TEST(test_second_run_on_the_same_out_stops_and_names_the_writer)
{
    char *dir = tu_tempdir();
    char config[512], out[512], partial[600], errbuf[4096], text[64];
    snprintf(config, sizeof config, "%s", write_config(dir, "small.json", small_run));
    snprintf(out, sizeof out, "%s/r.h5", dir);
    snprintf(partial, sizeof partial, "%s.partial", out);
    int ready[2], go[2];
    ck_assert_int_eq(pipe(ready), 0);
    ck_assert_int_eq(pipe(go), 0);
    fflush(NULL);
    pid_t holder = fork();
    ck_assert_int_ge(holder, 0);
    if (holder == 0) {   /* the first run, mid-write */
        sim_err err;
        outpath *op = outpath_begin(out, NULL, &err);
        char c = op && write(outpath_fd(op), "first", 5) == 5 ? 'y' : 'n';
        if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
            _exit(1);
        _exit(op && outpath_commit(op, &err) == 0 ? 0 : 2);
    }
    char c;
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    ck_assert_int_eq(c, 'y');
    ck_assert_int_eq(run_to(config, out, errbuf, sizeof errbuf), 2);
    char want[700];
    snprintf(want, sizeof want, "another run is writing %s (pid %d)", out, (int)holder);
    ck_assert_msg(strstr(errbuf, want), "expected '%s' in: %s", want, errbuf);
    read_text(partial, text, sizeof text);
    ck_assert_str_eq(text, "first");
    ck_assert_int_eq(write(go[1], "x", 1), 1);
    int status;
    ck_assert_int_eq(waitpid(holder, &status, 0), holder);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    read_text(out, text, sizeof text);
    ck_assert_str_eq(text, "first");   /* the first run's file, whole */
    /* Once it is done, the same output can be written again. */
    ck_assert_int_eq(run_to(config, out, errbuf, sizeof errbuf), 0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}
END_TEST

static void limit_file_size(void *bytes)
{
    struct rlimit lim = {*(rlim_t *)bytes, *(rlim_t *)bytes};
    signal(SIGXFSZ, SIG_DFL);   /* as a fresh process has it */
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
        _exit(99);
}

/* Item 6: a file-size limit makes the write fail (the run does not die of
 * SIGXFSZ): the error names the file and the cause, no partial file stays. */
START_TEST(test_run_past_a_file_size_limit_fails_cleanly)
{
    char *dir = tu_tempdir();
    char config[512], out[512], partial[600], errbuf[4096];
    snprintf(config, sizeof config, "%s", write_config(dir, "small.json", small_run));
    snprintf(out, sizeof out, "%s/r.h5", dir);
    snprintf(partial, sizeof partial, "%s.partial", out);
    tu_cli_call c = {{"servesim", "run", config, "--out", out, "--quiet",
                      "--set", "workload.requests=20000", NULL}};
    rlim_t limit = 64 * 1024;
    int status = tu_cli_child(&c, limit_file_size, &limit, errbuf, sizeof errbuf);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1,
                  "status %#x (signal %d): %s", status,
                  WIFSIGNALED(status) ? WTERMSIG(status) : 0, errbuf);
    ck_assert_msg(strstr(errbuf, out) && strstr(errbuf, "File too large"), "%s", errbuf);
    ck_assert_int_ne(access(partial, F_OK), 0);
    ck_assert_int_ne(access(out, F_OK), 0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}
END_TEST

static void drop_privileges(void *unused)
{
    (void)unused;
    if (getuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
        _exit(98);
}

/* Item 15: errors give the system's reason: a folder that cannot be made,
 * a file that cannot be created (permission denied, not "does not exist"
 * nor a bare "HDF5 error"), a path through a file. */
START_TEST(test_output_errors_give_the_cause)
{
    char *dir = tu_tempdir();
    char config[512], out[1100], errbuf[4096], locked[512];
    snprintf(config, sizeof config, "%s", write_config(dir, "small.json", small_run));
    ck_assert_int_eq(chmod(dir, 0755), 0);
    ck_assert_int_eq(chmod(config, 0644), 0);
    snprintf(locked, sizeof locked, "%s/ro", dir);
    ck_assert_int_eq(mkdir(locked, 0555), 0);

    snprintf(out, sizeof out, "%s/sub/r.h5", locked);
    tu_cli_call mk = {{"servesim", "run", config, "--out", out, "--quiet", NULL}};
    int status = tu_cli_child(&mk, drop_privileges, NULL, errbuf, sizeof errbuf);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 2, "status %#x", status);
    ck_assert_msg(strstr(errbuf, "cannot create the folder") &&
                  strstr(errbuf, "Permission denied"), "%s", errbuf);

    snprintf(out, sizeof out, "%s/r.h5", locked);
    tu_cli_call cr = {{"servesim", "run", config, "--out", out, "--quiet", NULL}};
    status = tu_cli_child(&cr, drop_privileges, NULL, errbuf, sizeof errbuf);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 2, "status %#x", status);
    ck_assert_msg(strstr(errbuf, "r.h5.partial") && strstr(errbuf, "Permission denied"), "%s",
                  errbuf);

    snprintf(out, sizeof out, "%s/sub/r.h5", config);   /* through a file */
    ck_assert_int_eq(run_to(config, out, errbuf, sizeof errbuf), 2);
    ck_assert_msg(strstr(errbuf, "is a file, not a folder"), "%s", errbuf);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}
END_TEST

/* Item 8: a bad --set value is blamed on the command line, not on the
 * config file, and is checked as strictly as a file's. */
START_TEST(test_set_errors_name_the_command_line)
{
    char *dir = tu_tempdir();
    char config[512], out[512], errbuf[4096];
    snprintf(config, sizeof config, "%s", write_config(dir, "small.json", small_run));
    snprintf(out, sizeof out, "%s/r.h5", dir);
    static const struct { const char *set, *want; } cases[] = {
        {"cluster.tp=1e999", "number out of range"},
        {"cluster={\"tp\":1,\"tp\":2}", "duplicate key"},
        {"cluster.tp=0", "command line --set cluster.tp=0: $.cluster.tp"},
        {"policies.routing.name=bogus", "command line --set policies.routing.name=bogus"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tu_cli_call c = {{"servesim", "run", config, "--out", out, "--quiet", "--set",
                          cases[i].set, NULL}};
        ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &c, errbuf, sizeof errbuf), 2);
        ck_assert_msg(strstr(errbuf, cases[i].want), "case %zu: %s", i, errbuf);
        ck_assert_msg(!strstr(errbuf, "small.json"), "case %zu blames the file: %s", i, errbuf);
        ck_assert_int_ne(access(out, F_OK), 0);
    }
    unlink(config);
    rmdir(dir);
    free(dir);
}
END_TEST

Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_run_writes_complete_results_file);
    tcase_add_loop_test(tc, test_bad_input_names_path_and_leaves_no_file, 0, N_BAD);
    tcase_add_test(tc, test_missing_config_file_is_named);
    tcase_add_test(tc, test_usage_errors_exit_2);
    tcase_add_test(tc, test_bundled_experiments_are_valid);
    tcase_add_test(tc, test_run_out_never_replaces_a_device_fifo_or_link);
    tcase_add_test(tc, test_run_out_never_overwrites_an_input);
    tcase_add_test(tc, test_second_run_on_the_same_out_stops_and_names_the_writer);
    tcase_add_test(tc, test_run_past_a_file_size_limit_fails_cleanly);
    tcase_add_test(tc, test_output_errors_give_the_cause);
    tcase_add_test(tc, test_set_errors_name_the_command_line);
    suite_add_tcase(s, tc);
    return s;
}
