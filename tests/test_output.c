/* Results file (tool/output.c): round trip through the HDF5 C API, the
 * atomic rename, cleanup on abandon, on errors, on a failed write and on
 * SIGINT/SIGTERM. Each test works in its own mkdtemp folder under /tmp and
 * removes it. Reading back uses types built here from the C structs, not
 * the writer's tables, so a renamed or missing column fails the test. */
#include <check.h>
#include <errno.h>
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "models/cost.h"
#include "models/ops.h"
#include "tool/output.h"
#include "tests/suites.h"
#include "version.h"

/* ---- Helpers ------------------------------------------------------------ */

typedef struct tmp_dir {
    char dir[64];
    char path[128];      /* <dir>/run.h5 */
    char partial[160];   /* <dir>/run.h5.partial */
} tmp_dir;

static void tmp_make(tmp_dir *t)
{
    strcpy(t->dir, "/tmp/servesim_test_output_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(t->dir));
    snprintf(t->path, sizeof t->path, "%s/run.h5", t->dir);
    snprintf(t->partial, sizeof t->partial, "%s.partial", t->path);
}

static void tmp_remove(tmp_dir *t)
{
    char p[192];
    unlink(t->path);
    unlink(t->partial);
    snprintf(p, sizeof p, "%s/stderr.txt", t->dir);
    unlink(p);
    rmdir(t->dir);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Deterministic, varied values so that a swapped column or row shows. */
static req_record make_record(uint64_t i)
{
    req_record r;
    memset(&r, 0, sizeof r);
    r.id = i;
    r.instance = (int32_t)(i % 8);
    r.input_tokens = (int32_t)(100 + (i * 37) % 4000);
    r.output_tokens = (int32_t)(1 + (i * 13) % 700);
    r.preemptions = (int32_t)(i % 5 == 0);
    r.priority = (int32_t)(i % 3);
    r.slo_class = (int32_t)(i % 4);
    r.ttft_slo_ns = 500000000 + (int64_t)(i % 7);
    r.arrival_ns = (int64_t)i * 1234567;
    r.queue_ns = (int64_t)(i % 97) * 1000;
    r.ttft_ns = 20000000 + (int64_t)(i % 1000) * 5000;
    r.first_token_ns = r.arrival_ns + r.ttft_ns;
    r.tbt_mean_ns = 15e6 + (double)(i % 333) * 0.5;
    r.tbt_max_ns = 40000000 + (int64_t)(i % 71);
    r.e2e_ns = r.ttft_ns + (int64_t)(r.output_tokens - 1) * 15000000;
    r.finish_ns = r.arrival_ns + r.e2e_ns;
    r.tpot_ns = r.output_tokens > 1 ? 15e6 : 0.0;
    r.energy_j = 0.25 * (double)r.output_tokens + 1e-3 * (double)i;
    return r;
}

static run_summary make_summary(void)
{
    run_summary s;
    memset(&s, 0, sizeof s);
    s.seed = 0xfedcba9876543210ULL;   /* above INT64_MAX: checks unsignedness */
    s.arrived = 20001;
    s.completed = 20000;
    s.clamped = 3;
    s.preemptions = 4000;
    s.iterations = 123456;
    s.events = 7654321;
    s.output_tokens = 7000000;
    s.duration_s = 1234.5;
    s.throughput_req_s = 16.2;
    s.throughput_tok_s = 5670.25;
    s.ttft_s = (pctl){ 0.05, 0.04, 0.09, 0.2 };
    s.tbt_s = (pctl){ 0.015, 0.014, 0.02, 0.031 };
    s.tpot_s = (pctl){ 0.016, 0.015, 0.021, 0.03 };
    s.e2e_s = (pctl){ 5.0, 4.5, 9.0, 12.5 };
    s.queue_s = (pctl){ 0.001, 0.0, 0.002, 0.01 };
    s.slo_ttft_s = 0.5;
    s.slo_tpot_s = 0.05;
    s.slo_attain_ttft = 0.99;
    s.slo_attain_tpot = 0.98;
    s.slo_attain = 0.975;
    s.energy_j = 3.5e6;
    s.energy_per_out_token_j = 0.5;
    s.gpu_busy_fraction = 0.8;
    s.kv_peak_fraction = 0.95;
    s.kv_mean_fraction = 0.6;
    for (int k = 0; k < OP_KIND_COUNT; k++)
        s.term_s[k] = 10.0 * k + 0.5;
    for (int k = 0; k < COST_SRC_COUNT; k++)
        s.source_terms[k] = 1000u * (uint64_t)k + 7u;
    s.wall_s = 2.5;
    s.peak_rss_mb = 42.0;
    return s;
}

/* req_record as the test expects it in the file, built independently of the
 * writer's field table. */
static hid_t req_type(void)
{
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(req_record));
#define M(f, ty) H5Tinsert(t, #f, HOFFSET(req_record, f), ty)
    M(id, H5T_NATIVE_UINT64);
    M(instance, H5T_NATIVE_INT32);
    M(input_tokens, H5T_NATIVE_INT32);
    M(output_tokens, H5T_NATIVE_INT32);
    M(preemptions, H5T_NATIVE_INT32);
    M(priority, H5T_NATIVE_INT32);
    M(slo_class, H5T_NATIVE_INT32);
    M(ttft_slo_ns, H5T_NATIVE_INT64);
    M(arrival_ns, H5T_NATIVE_INT64);
    M(first_token_ns, H5T_NATIVE_INT64);
    M(finish_ns, H5T_NATIVE_INT64);
    M(ttft_ns, H5T_NATIVE_INT64);
    M(queue_ns, H5T_NATIVE_INT64);
    M(e2e_ns, H5T_NATIVE_INT64);
    M(tbt_mean_ns, H5T_NATIVE_DOUBLE);
    M(tbt_max_ns, H5T_NATIVE_INT64);
    M(tpot_ns, H5T_NATIVE_DOUBLE);
    M(energy_j, H5T_NATIVE_DOUBLE);
#undef M
    return t;
}

static void assert_record_eq(const req_record *got, const req_record *want)
{
    ck_assert_uint_eq(got->id, want->id);
    ck_assert_int_eq(got->instance, want->instance);
    ck_assert_int_eq(got->input_tokens, want->input_tokens);
    ck_assert_int_eq(got->output_tokens, want->output_tokens);
    ck_assert_int_eq(got->preemptions, want->preemptions);
    ck_assert_int_eq(got->arrival_ns, want->arrival_ns);
    ck_assert_int_eq(got->first_token_ns, want->first_token_ns);
    ck_assert_int_eq(got->finish_ns, want->finish_ns);
    ck_assert_int_eq(got->ttft_ns, want->ttft_ns);
    ck_assert_int_eq(got->queue_ns, want->queue_ns);
    ck_assert_int_eq(got->e2e_ns, want->e2e_ns);
    ck_assert(got->tbt_mean_ns == want->tbt_mean_ns);
    ck_assert_int_eq(got->tbt_max_ns, want->tbt_max_ns);
    ck_assert(got->tpot_ns == want->tpot_ns);
    ck_assert(got->energy_j == want->energy_j);
}

/* Reads a scalar variable-length string attribute; the caller frees. */
static char *read_str_attr(hid_t loc, const char *name)
{
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "attribute %s missing", name);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    char *v = NULL;
    ck_assert_int_ge(H5Aread(a, t, &v), 0);
    char *copy = strdup(v);
    H5free_memory(v);
    H5Tclose(t);
    H5Aclose(a);
    return copy;
}

/* Writes n records and commits; fails the test on error. */
static void write_file(const char *path, uint64_t n, const char *config)
{
    sim_err err;
    out_file *f = out_open(path, NULL, &err);
    ck_assert_msg(f != NULL, "out_open: %s", err.msg);
    for (uint64_t i = 0; i < n; i++) {
        req_record r = make_record(i);
        out_record(f, &r);
    }
    run_summary s = make_summary();
    ck_assert_msg(out_commit(f, &s, config, "roofline", &err) == 0,
                  "out_commit: %s", err.msg);
}

/* ---- Round trip -------------------------------------------------------------- */

#define N_RECORDS 20000   /* not a multiple of the chunk: a partial last one */
static const char config_text[] =
    "{\n  \"model\": \"llama-3-8b\",\n  \"note\": \"quotes \\\" and \xc2\xb5s\"\n}";

START_TEST(test_output_round_trip_requests)
{
    tmp_dir t;
    tmp_make(&t);
    write_file(t.path, N_RECORDS, config_text);

    hid_t file = H5Fopen(t.path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(file, 0);
    hid_t ds = H5Dopen2(file, "requests", H5P_DEFAULT);
    ck_assert_int_ge(ds, 0);
    hid_t space = H5Dget_space(ds);
    hsize_t dims = 0;
    ck_assert_int_eq(H5Sget_simple_extent_ndims(space), 1);
    H5Sget_simple_extent_dims(space, &dims, NULL);
    ck_assert_uint_eq(dims, N_RECORDS);

    req_record *rows = calloc(N_RECORDS, sizeof *rows);   /* padding reads as zero, as in make_record */
    hid_t mt = req_type();
    ck_assert_int_ge(H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows), 0);
    const uint64_t probe[] = { 0, 4095, 4096, 10007, N_RECORDS - 1 };
    for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++) {
        req_record want = make_record(probe[i]);
        assert_record_eq(&rows[probe[i]], &want);
    }
    for (uint64_t i = 0; i < N_RECORDS; i++) {
        req_record want = make_record(i);
        ck_assert_msg(memcmp(&rows[i], &want, sizeof want) == 0,
                      "row %llu differs", (unsigned long long)i);
    }
    free(rows);

    /* The columns carry the struct's field names (output.c checks that its
     * table covers the whole struct; the row comparison above, every byte). */
    hid_t ft = H5Dget_type(ds);
    const char *columns[] = {"id", "arrival_ns", "ttft_ns", "tpot_ns", "priority",
                             "ttft_slo_ns", "energy_j", NULL};
    for (int i = 0; columns[i]; i++)
        ck_assert_msg(H5Tget_member_index(ft, columns[i]) >= 0, "no column %s", columns[i]);
    H5Tclose(ft);
    H5Tclose(mt);
    H5Sclose(space);
    H5Dclose(ds);
    H5Fclose(file);
    tmp_remove(&t);
}
END_TEST

typedef struct sum_probe {
    uint64_t seed, completed;
    double ttft_s_p99, e2e_s_mean, queue_s_p90, slo_attain, peak_rss_mb;
    double term_s[OP_KIND_COUNT];
    uint64_t source_terms[COST_SRC_COUNT];
} sum_probe;

START_TEST(test_output_round_trip_summary)
{
    tmp_dir t;
    tmp_make(&t);
    write_file(t.path, 10, config_text);
    run_summary want = make_summary();

    hid_t file = H5Fopen(t.path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(file, "summary", H5P_DEFAULT);
    ck_assert_int_ge(ds, 0);
    hid_t space = H5Dget_space(ds);
    ck_assert_int_eq(H5Sget_simple_extent_npoints(space), 1);

    /* HDF5 matches compound members by name, so a subset can be read. */
    hsize_t nt = OP_KIND_COUNT, ns = COST_SRC_COUNT;
    hid_t at = H5Tarray_create2(H5T_NATIVE_DOUBLE, 1, &nt);
    hid_t as = H5Tarray_create2(H5T_NATIVE_UINT64, 1, &ns);
    hid_t mt = H5Tcreate(H5T_COMPOUND, sizeof(sum_probe));
    H5Tinsert(mt, "seed", HOFFSET(sum_probe, seed), H5T_NATIVE_UINT64);
    H5Tinsert(mt, "completed", HOFFSET(sum_probe, completed), H5T_NATIVE_UINT64);
    H5Tinsert(mt, "ttft_s_p99", HOFFSET(sum_probe, ttft_s_p99), H5T_NATIVE_DOUBLE);
    H5Tinsert(mt, "e2e_s_mean", HOFFSET(sum_probe, e2e_s_mean), H5T_NATIVE_DOUBLE);
    H5Tinsert(mt, "queue_s_p90", HOFFSET(sum_probe, queue_s_p90), H5T_NATIVE_DOUBLE);
    H5Tinsert(mt, "slo_attain", HOFFSET(sum_probe, slo_attain), H5T_NATIVE_DOUBLE);
    H5Tinsert(mt, "peak_rss_mb", HOFFSET(sum_probe, peak_rss_mb), H5T_NATIVE_DOUBLE);
    H5Tinsert(mt, "term_s", HOFFSET(sum_probe, term_s), at);
    H5Tinsert(mt, "source_terms", HOFFSET(sum_probe, source_terms), as);
    sum_probe got;
    memset(&got, 0, sizeof got);
    ck_assert_int_ge(H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, &got), 0);
    ck_assert_uint_eq(got.seed, want.seed);
    ck_assert_uint_eq(got.completed, want.completed);
    ck_assert(got.ttft_s_p99 == want.ttft_s.p99);
    ck_assert(got.e2e_s_mean == want.e2e_s.mean);
    ck_assert(got.queue_s_p90 == want.queue_s.p90);
    ck_assert(got.slo_attain == want.slo_attain);
    ck_assert(got.peak_rss_mb == want.peak_rss_mb);
    for (int k = 0; k < OP_KIND_COUNT; k++)
        ck_assert(got.term_s[k] == want.term_s[k]);
    for (int k = 0; k < COST_SRC_COUNT; k++)
        ck_assert_uint_eq(got.source_terms[k], want.source_terms[k]);

    /* Columns are named after the run_summary fields (output.c checks that
     * its table covers the whole struct), percentiles flattened. */
    hid_t ft = H5Dget_type(ds);
    const char *columns[] = {"seed", "ttft_s_mean", "tpot_s_p99", "energy_per_out_token_j",
                             "recomputed_tokens", "weight_bytes", "wall_s", NULL};
    for (int i = 0; columns[i]; i++)
        ck_assert_msg(H5Tget_member_index(ft, columns[i]) >= 0, "no column %s", columns[i]);
    ck_assert_int_ge(H5Tget_member_index(ft, "tbt_s_p50"), 0);
    ck_assert_int_ge(H5Tget_member_index(ft, "kv_mean_fraction"), 0);

    /* term_s columns are labelled. */
    hid_t a = H5Aopen(ds, "term_names", H5P_DEFAULT);
    ck_assert_int_ge(a, 0);
    hid_t aspace = H5Aget_space(a);
    ck_assert_int_eq(H5Sget_simple_extent_npoints(aspace), OP_KIND_COUNT);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, H5T_VARIABLE);
    H5Tset_cset(st, H5T_CSET_UTF8);
    char *names[OP_KIND_COUNT];
    ck_assert_int_ge(H5Aread(a, st, names), 0);
    for (int k = 0; k < OP_KIND_COUNT; k++) {
        ck_assert_str_eq(names[k], op_kind_name((op_kind)k));
        H5free_memory(names[k]);
    }
    ck_assert_int_ge(H5Aexists(ds, "source_names"), 1);

    H5Tclose(st);
    H5Sclose(aspace);
    H5Aclose(a);
    H5Tclose(ft);
    H5Tclose(mt);
    H5Tclose(at);
    H5Tclose(as);
    H5Sclose(space);
    H5Dclose(ds);
    H5Fclose(file);
    tmp_remove(&t);
}
END_TEST

START_TEST(test_output_root_attributes)
{
    tmp_dir t;
    tmp_make(&t);
    write_file(t.path, 1, config_text);

    hid_t file = H5Fopen(t.path, H5F_ACC_RDONLY, H5P_DEFAULT);
    char *v = read_str_attr(file, "config");
    ck_assert_str_eq(v, config_text);
    free(v);
    v = read_str_attr(file, "servesim_version");
    ck_assert_str_eq(v, SERVESIM_VERSION);
    free(v);
    v = read_str_attr(file, "cost_sources");
    ck_assert_str_eq(v, "roofline");
    free(v);

    int32_t schema = 0;
    uint64_t seed = 0;
    hid_t a = H5Aopen(file, "schema_version", H5P_DEFAULT);
    ck_assert_int_ge(H5Aread(a, H5T_NATIVE_INT32, &schema), 0);
    H5Aclose(a);
    ck_assert_int_eq(schema, 1);
    a = H5Aopen(file, "seed", H5P_DEFAULT);
    hid_t at = H5Aget_type(a);
    ck_assert_int_eq(H5Tget_sign(at), H5T_SGN_NONE);
    H5Tclose(at);
    ck_assert_int_ge(H5Aread(a, H5T_NATIVE_UINT64, &seed), 0);
    H5Aclose(a);
    ck_assert_uint_eq(seed, make_summary().seed);
    H5Fclose(file);
    tmp_remove(&t);
}
END_TEST

/* Fixed-size attributes are capped at 64 KiB; a config may be larger. */
START_TEST(test_output_large_config_round_trips)
{
    tmp_dir t;
    tmp_make(&t);
    size_t n = 300 * 1024;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    write_file(t.path, 0, big);

    hid_t file = H5Fopen(t.path, H5F_ACC_RDONLY, H5P_DEFAULT);
    char *v = read_str_attr(file, "config");
    ck_assert_uint_eq(strlen(v), n);
    ck_assert(strcmp(v, big) == 0);
    free(v);
    free(big);
    H5Fclose(file);
    tmp_remove(&t);
}
END_TEST

START_TEST(test_output_zero_records_gives_empty_table)
{
    tmp_dir t;
    tmp_make(&t);
    write_file(t.path, 0, "{}");
    hid_t file = H5Fopen(t.path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(file, "requests", H5P_DEFAULT);
    ck_assert_int_ge(ds, 0);
    hid_t space = H5Dget_space(ds);
    ck_assert_int_eq(H5Sget_simple_extent_npoints(space), 0);
    H5Sclose(space);
    H5Dclose(ds);
    H5Fclose(file);
    tmp_remove(&t);
}
END_TEST

/* ---- Atomic rename and cleanup ------------------------------------------ */

START_TEST(test_output_final_name_appears_only_at_commit)
{
    tmp_dir t;
    tmp_make(&t);
    sim_err err;
    out_file *f = out_open(t.path, NULL, &err);
    ck_assert_ptr_nonnull(f);
    for (uint64_t i = 0; i < 10000; i++) {
        req_record r = make_record(i);
        out_record(f, &r);
    }
    ck_assert(exists(t.partial));
    ck_assert(!exists(t.path));
    run_summary s = make_summary();
    ck_assert_int_eq(out_commit(f, &s, "{}", "roofline", &err), 0);
    ck_assert(exists(t.path));
    ck_assert(!exists(t.partial));
    tmp_remove(&t);
}
END_TEST

START_TEST(test_output_abandon_leaves_nothing)
{
    tmp_dir t;
    tmp_make(&t);
    sim_err err;
    out_file *f = out_open(t.path, NULL, &err);
    ck_assert_ptr_nonnull(f);
    for (uint64_t i = 0; i < 9000; i++) {
        req_record r = make_record(i);
        out_record(f, &r);
    }
    out_abandon(f);
    ck_assert(!exists(t.partial));
    ck_assert(!exists(t.path));
    out_abandon(NULL);
    /* The next file can be opened: the signal state was released. */
    f = out_open(t.path, NULL, &err);
    ck_assert_ptr_nonnull(f);
    out_abandon(f);
    tmp_remove(&t);
}
END_TEST

START_TEST(test_output_restores_signal_dispositions)
{
    tmp_dir t;
    tmp_make(&t);
    struct sigaction sa;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_IGN);   /* an ignored signal stays ignored */
    sim_err err;
    out_file *f = out_open(t.path, NULL, &err);
    ck_assert_ptr_nonnull(f);
    sigaction(SIGINT, NULL, &sa);
    ck_assert(sa.sa_handler != SIG_DFL);
    sigaction(SIGTERM, NULL, &sa);
    ck_assert(sa.sa_handler == SIG_IGN);
    run_summary s = make_summary();
    ck_assert_int_eq(out_commit(f, &s, "{}", "roofline", &err), 0);
    sigaction(SIGINT, NULL, &sa);
    ck_assert(sa.sa_handler == SIG_DFL);
    sigaction(SIGTERM, NULL, &sa);
    ck_assert(sa.sa_handler == SIG_IGN);
    signal(SIGTERM, SIG_DFL);
    tmp_remove(&t);
}
END_TEST

/* While a file is open SIGXFSZ is ignored (a write past a size limit then
 * fails with EFBIG and takes the error path); the disposition comes back
 * at commit. */
START_TEST(test_output_ignores_sigxfsz_while_open)
{
    tmp_dir t;
    tmp_make(&t);
    struct sigaction sa;
    signal(SIGXFSZ, SIG_DFL);
    sim_err err;
    out_file *f = out_open(t.path, NULL, &err);
    ck_assert_ptr_nonnull(f);
    sigaction(SIGXFSZ, NULL, &sa);
    ck_assert(sa.sa_handler == SIG_IGN);
    run_summary s = make_summary();
    ck_assert_int_eq(out_commit(f, &s, "{}", "roofline", &err), 0);
    sigaction(SIGXFSZ, NULL, &sa);
    ck_assert(sa.sa_handler == SIG_DFL);
    tmp_remove(&t);
}
END_TEST

START_TEST(test_output_missing_folder_is_named)
{
    sim_err err;
    err.msg[0] = '\0';
    out_file *f = out_open("/tmp/servesim_no_such_folder_xyz/sub/run.h5", NULL, &err);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(err.msg, "'/tmp/servesim_no_such_folder_xyz/sub'") &&
                  strstr(err.msg, "does not exist"), "message: %s", err.msg);
    ck_assert(!exists("/tmp/servesim_no_such_folder_xyz"));
}
END_TEST

START_TEST(test_output_path_that_is_a_folder_fails)
{
    tmp_dir t;
    tmp_make(&t);
    sim_err err;
    out_file *f = out_open(t.dir, NULL, &err);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(err.msg, t.dir) && strstr(err.msg, "folder"),
                  "message: %s", err.msg);
    tmp_remove(&t);
}
END_TEST

/* The final path turns into a folder during the run: the commit refuses to
 * replace it, the message names the file and the partial file is removed. */
START_TEST(test_output_commit_failure_removes_partial)
{
    tmp_dir t;
    tmp_make(&t);
    sim_err err;
    out_file *f = out_open(t.path, NULL, &err);
    ck_assert_ptr_nonnull(f);
    req_record r = make_record(1);
    out_record(f, &r);
    char inner[192];
    snprintf(inner, sizeof inner, "%s/x", t.path);
    ck_assert_int_eq(mkdir(t.path, 0700), 0);
    ck_assert_int_eq(mkdir(inner, 0700), 0);
    run_summary s = make_summary();
    ck_assert_int_eq(out_commit(f, &s, "{}", "roofline", &err), -1);
    ck_assert_msg(strstr(err.msg, t.path) && strstr(err.msg, "is a folder"),
                  "message: %s", err.msg);
    ck_assert(!exists(t.partial));
    rmdir(inner);
    rmdir(t.path);
    tmp_remove(&t);
}
END_TEST

/* A write failure mid-run (here a file size limit, as a full disk would
 * be) is returned to the caller, not an exit: out_record fails, out_failed
 * names the file, nothing more is written, and abandoning the file removes
 * the partial file. (In a child: the size limit is the process's.) */
START_TEST(test_output_write_failure_is_returned_and_removes_partial)
{
    tmp_dir t;
    tmp_make(&t);
    char errfile[192];
    snprintf(errfile, sizeof errfile, "%s/stderr.txt", t.dir);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (!freopen(errfile, "w", stderr))
            _exit(10);
        struct rlimit lim = { 256 * 1024, 256 * 1024 };
        signal(SIGXFSZ, SIG_IGN);   /* writes past the limit fail with EFBIG */
        sim_err err;
        out_file *f = out_open(t.path, NULL, &err);
        if (!f)
            _exit(11);
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
            _exit(12);
        for (uint64_t i = 0; i < 2000000; i++) {
            req_record r = make_record(i);
            if (out_record(f, &r) == 0)
                continue;
            req_record again = make_record(i + 1);
            if (out_record(f, &again) != -1 || !out_failed(f, &err))
                _exit(14);   /* a failed file must stay failed */
            fprintf(stderr, "%s\n", err.msg);
            fflush(stderr);
            out_abandon(f);
            _exit(1);
        }
        _exit(13);   /* the limit was never hit */
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1,
                  "child status %d", status);
    ck_assert(!exists(t.partial));
    ck_assert(!exists(t.path));
    FILE *fp = fopen(errfile, "r");
    ck_assert_ptr_nonnull(fp);
    char msg[2048] = "";
    size_t len = fread(msg, 1, sizeof msg - 1, fp);
    msg[len] = '\0';
    fclose(fp);
    ck_assert_msg(strstr(msg, t.path) != NULL, "stderr: %s", msg);
    tmp_remove(&t);
}
END_TEST

/* The disk fills up during out_commit (here: a large config under a file
 * size limit): out_commit returns an error naming the file, removes the
 * partial file, and the process can still exit normally afterwards (HDF5
 * 1.10's exit handler would crash after the failed close). */
START_TEST(test_output_commit_write_failure_reports_and_removes_partial)
{
    tmp_dir t;
    tmp_make(&t);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        size_t n = 1024 * 1024;
        char *big = malloc(n + 1);
        memset(big, 'x', n);
        big[n] = '\0';
        struct rlimit lim = { 256 * 1024, 256 * 1024 };
        signal(SIGXFSZ, SIG_IGN);
        sim_err err;
        out_file *f = out_open(t.path, NULL, &err);
        if (!f)
            _exit(11);
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
            _exit(12);
        req_record r = make_record(0);
        out_record(f, &r);
        run_summary s = make_summary();
        int rc = out_commit(f, &s, big, "roofline", &err);
        free(big);
        if (rc != -1)
            _exit(13);
        if (!strstr(err.msg, t.path))
            _exit(14);
        if (exists(t.partial) || exists(t.path))
            _exit(15);
        exit(0);   /* through the exit handlers on purpose */
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child status %d", status);
    tmp_remove(&t);
}
END_TEST

/* A child writing records gets a terminating signal mid-write (SIGINT,
 * SIGTERM, and, issue 15 item 6, every other one a shell or a scheduler
 * sends): it dies of that signal and leaves neither the partial nor the
 * final file. */
static const int stop_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM,
                                    SIGXCPU, SIGVTALRM, SIGPROF, SIGPIPE };

START_TEST(test_output_signal_mid_write_removes_partial)
{
    int sig = stop_signals[_i];
    tmp_dir t;
    tmp_make(&t);
    char errfile[192];
    snprintf(errfile, sizeof errfile, "%s/stderr.txt", t.dir);
    int pipefd[2];
    ck_assert_int_eq(pipe(pipefd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(pipefd[0]);
        if (!freopen(errfile, "w", stderr))
            _exit(10);
        signal(sig, SIG_DFL);   /* as a fresh process would have it */
        sim_err err;
        out_file *f = out_open(t.path, NULL, &err);
        if (!f)
            _exit(11);
        /* Tell the parent once a few chunks are on disk, then keep going. */
        for (uint64_t i = 0; i < 100000000; i++) {
            req_record r = make_record(i);
            out_record(f, &r);
            if (i == 20000 && write(pipefd[1], "x", 1) != 1)
                _exit(12);
        }
        _exit(13);
    }
    close(pipefd[1]);
    char c;
    ck_assert_int_eq(read(pipefd[0], &c, 1), 1);
    close(pipefd[0]);
    ck_assert(exists(t.partial));
    ck_assert_int_eq(kill(pid, sig), 0);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == sig,
                  "child status %d", status);
    ck_assert(!exists(t.partial));
    ck_assert(!exists(t.path));
    /* And it says so. */
    FILE *fp = fopen(errfile, "r");
    ck_assert_ptr_nonnull(fp);
    char msg[1024] = "", want[256];
    size_t len = fread(msg, 1, sizeof msg - 1, fp);
    msg[len] = '\0';
    fclose(fp);
    snprintf(want, sizeof want, "stopped by %s; removed the partial file %s",
             outpath_signal_name(sig), t.partial);
    ck_assert_msg(strstr(msg, want), "stderr: %s", msg);
    tmp_remove(&t);
}
END_TEST

Suite *output_suite(void)
{
    Suite *s = suite_create("output");
    TCase *tc;
#define ADD(fn)                                                              \
    tc = tcase_create(#fn);                                                  \
    tcase_set_timeout(tc, 30);                                               \
    tcase_add_test(tc, fn);                                                  \
    suite_add_tcase(s, tc)
    ADD(test_output_round_trip_requests);
    ADD(test_output_round_trip_summary);
    ADD(test_output_root_attributes);
    ADD(test_output_large_config_round_trips);
    ADD(test_output_zero_records_gives_empty_table);
    ADD(test_output_final_name_appears_only_at_commit);
    ADD(test_output_abandon_leaves_nothing);
    ADD(test_output_restores_signal_dispositions);
    ADD(test_output_ignores_sigxfsz_while_open);
    ADD(test_output_missing_folder_is_named);
    ADD(test_output_path_that_is_a_folder_fails);
    ADD(test_output_commit_failure_removes_partial);
    ADD(test_output_write_failure_is_returned_and_removes_partial);
    ADD(test_output_commit_write_failure_reports_and_removes_partial);
#undef ADD
    tc = tcase_create("test_output_signal_mid_write_removes_partial");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_output_signal_mid_write_removes_partial, 0,
                        (int)(sizeof stop_signals / sizeof stop_signals[0]));
    suite_add_tcase(s, tc);
    return s;
}
