/* Results file writer (HDF5), see output.h.
 *
 * Design. Everything is written to "<path>.partial"; out_commit closes it,
 * fsyncs it and renames it to <path>, which POSIX makes atomic, so a file
 * at <path> is always complete. Requests are buffered OUT_CHUNK_ROWS at a
 * time and each full buffer is appended as exactly one HDF5 chunk
 * (H5Dset_extent plus a hyperslab write): memory is constant in the number of
 * requests, and since every chunk is written once, whole, the chunk cache is
 * useless and is turned off; that also makes a failed write show up in the
 * out_record call that caused it rather than at some later eviction. The
 * time-series tables are appended the same way (out_table), created at the
 * first sample.
 *
 * Invariants. The rows already in each appendable table are a multiple of
 * OUT_CHUNK_ROWS until the final flush in out_commit, which may write one
 * partial chunk.
 * Compound types are built from the field tables below, in the same order
 * and with the same names as the C structs; memory types use native types
 * at the structs' offsets, file types are packed little-endian standard
 * types, so files are the same on every host. A table that misses a struct
 * field fails an assertion when the types are built.
 *
 * Errors. HDF5's automatic error printing is turned off (it would print a
 * stack of internal function names to stderr); instead the innermost HDF5
 * error description becomes the sim_err message, prefixed with the file.
 * Every failure path removes the partial file.
 *
 * Safety. The path checks, the lock on the partial file, the rename and
 * the removal of the partial file on a terminating signal are outpath.h's:
 * an output that is a device, a link, a folder or one of the run's inputs
 * is refused before anything is written, and a second writer of the same
 * file stops at once. */
#include "tool/output.h"
#include "tool/output_h5.h"
#include "tool/chunkz.h"
#include "tool/outpath.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "models/cost.h"
#include "models/ops.h"
#include "version.h"
#include "tool/plugin.h"

/* Rows per buffer and per chunk (104 bytes a row: 416 KiB). Measured on
 * 100,000 synthetic rows: 16384-row chunks are only 1.6% smaller and no
 * faster, so the buffer stays small. */
#define OUT_CHUNK_ROWS 4096
/* Measured likewise: shuffle + deflate 1 halves the file (52 bytes a row)
 * for about 1 us a row; level 6 is 1.4x slower for 1.4% less, and deflate
 * without shuffle is both slower and 30% larger. */
#define OUT_DEFLATE_LEVEL 1
#define OUT_SCHEMA_VERSION 1

/* An appendable table: a 1-D dataset of compound rows, chunked and
 * compressed, filled OUT_CHUNK_ROWS rows (one chunk) at a time. */
/* An appendable table: rows are buffered a chunk at a time in two
 * buffers; a full one is shuffled and deflated on the file's worker thread
 * (chunkz.h) while the other fills, and written as a chunk with
 * H5Dwrite_chunk once done. At most one chunk is in flight. */
typedef struct out_table {
    hid_t ds;              /* H5I_INVALID_HID until created */
    hid_t mem_type;        /* the row struct in memory */
    size_t row_size;
    const char *name;      /* its path in the file, for messages */
    hsize_t rows;          /* rows already in the dataset */
    size_t nbuf;           /* rows waiting in buf[cur] */
    unsigned char *buf[2]; /* OUT_CHUNK_ROWS rows each */
    int cur;
    chunkz_job job[2];
    bool in_flight[2];     /* buf[k] is being compressed */
    hsize_t job_rows[2];
    chunkz *z;             /* the file's worker; NULL: compress inline */
} out_table;

struct out_file {
    hid_t file;
    chunkz *z;             /* compresses the tables' chunks */
    bool failed;           /* a write failed: err says why, nothing more is written */
    sim_err err;
    outpath *op;           /* the partial file, its lock and the rename */
    const char *path;      /* final name (owned by op) */
    out_table requests;    /* /requests */
    out_table ts_inst;     /* /timeseries/instances, created at the first sample */
    out_table ts_cluster;  /* /timeseries/cluster */
};

/* ---- HDF5 errors ---------------------------------------------------------- */

#define OUT_H5_DESC_MAX 512

/* Keeps the innermost (most specific) description. For a failed system call
 * HDF5 writes a long line with the time, descriptor, buffer address and
 * sizes; only its "error message = '...'" part (strerror) is kept. */
static herr_t out_h5_innermost(unsigned n, const H5E_error2_t *e, void *data)
{
    static const char key[] = "error message = '";
    if (n != 0 || !e->desc)
        return 0;
    const char *msg = strstr(e->desc, key);
    const char *end = msg ? strchr(msg + strlen(key), '\'') : NULL;
    if (end) {
        msg += strlen(key);
        snprintf(data, OUT_H5_DESC_MAX, "%.*s", (int)(end - msg), msg);
    } else {
        snprintf(data, OUT_H5_DESC_MAX, "%s", e->desc);
    }
    return 0;
}

int out_h5_err(sim_err *err, const char *path, const char *what)
{
    char desc[OUT_H5_DESC_MAX] = "";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, out_h5_innermost, desc);
    H5Eclear2(H5E_DEFAULT);
    if (desc[0])
        return sim_errf(err, "%s: %s: %s", path, what, desc);
    return sim_errf(err, "%s: %s (HDF5 error)", path, what);
}

/* ---- Compound types from field tables --------------------------------- */

/* OUT_STR: a fixed-length, NUL-padded string of `count` bytes. */
typedef enum out_kind { OUT_U64, OUT_I32, OUT_I64, OUT_F64, OUT_STR } out_kind;

/* Rows of the time-series tables (see OUTPUT.md). */
typedef struct out_ts_inst_row {
    int64_t time_ns;
    int32_t instance;
    int32_t waiting;
    int32_t running;
    int32_t active;
    double kv_used_fraction;
    double power_w;
    double kv_cached_fraction;
    int32_t pool;
    int32_t state;             /* inst_state */
} out_ts_inst_row;

typedef struct out_ts_cluster_row {
    int64_t time_ns;
    int32_t instances;
    int32_t active_instances;
    int32_t waiting;
    int32_t running;
    double kv_used_fraction;   /* mean over instances */
    double power_w;            /* sum over instances */
    double kv_cached_fraction; /* mean over instances */
    int32_t state_instances[INST_STATE_COUNT];   /* instances in each state */
} out_ts_cluster_row;

typedef struct out_field {
    const char *name;
    size_t offset;
    out_kind kind;
    hsize_t count;   /* > 1: an array member of that many elements */
} out_field;

#define OUT_REQ(f, k) { #f, offsetof(req_record, f), k, 1 }
static const out_field out_req_fields[] = {
    OUT_REQ(id, OUT_U64),
    OUT_REQ(instance, OUT_I32),
    OUT_REQ(input_tokens, OUT_I32),
    OUT_REQ(output_tokens, OUT_I32),
    OUT_REQ(preemptions, OUT_I32),
    OUT_REQ(priority, OUT_I32),
    OUT_REQ(slo_class, OUT_I32),
    OUT_REQ(tenant, OUT_I32),
    OUT_REQ(pool, OUT_I32),
    OUT_REQ(moves, OUT_I32),
    OUT_REQ(cached_tokens, OUT_I32),
    OUT_REQ(ttft_slo_ns, OUT_I64),
    OUT_REQ(arrival_ns, OUT_I64),
    OUT_REQ(first_token_ns, OUT_I64),
    OUT_REQ(finish_ns, OUT_I64),
    OUT_REQ(ttft_ns, OUT_I64),
    OUT_REQ(queue_ns, OUT_I64),
    OUT_REQ(e2e_ns, OUT_I64),
    OUT_REQ(tbt_mean_ns, OUT_F64),
    OUT_REQ(tbt_max_ns, OUT_I64),
    OUT_REQ(tpot_ns, OUT_F64),
    OUT_REQ(energy_j, OUT_F64),
    OUT_REQ(session_id, OUT_U64),
    OUT_REQ(turn, OUT_I32),
    OUT_REQ(session_last, OUT_I32),
    OUT_REQ(ttft_load_ns, OUT_I64),
    OUT_REQ(ttft_compute_ns, OUT_I64),
    OUT_REQ(session_root, OUT_U64),
    OUT_REQ(adapter, OUT_I32),
    OUT_REQ(spec_steps, OUT_I32),
};

/* Percentile groups are flattened to <name>_mean, <name>_p50, ... : plain
 * column names are easier to use from h5py and pandas than nested types. */
#define OUT_SUM(f, k) { #f, offsetof(run_summary, f), k, 1 }
#define OUT_SESS(f, k) { #f, offsetof(run_summary, sessions.f), k, 1 }
#define OUT_SUM_ARRAY(f, k, n) { #f, offsetof(run_summary, f), k, n }
#define OUT_SUM_PCTL(p)                                                  \
    { #p "_mean", offsetof(run_summary, p.mean), OUT_F64, 1 },           \
    { #p "_p50", offsetof(run_summary, p.p50), OUT_F64, 1 },             \
    { #p "_p90", offsetof(run_summary, p.p90), OUT_F64, 1 },             \
    { #p "_p99", offsetof(run_summary, p.p99), OUT_F64, 1 }
static const out_field out_sum_fields[] = {
    OUT_SUM(seed, OUT_U64),
    OUT_SUM(arrived, OUT_U64),
    OUT_SUM(completed, OUT_U64),
    OUT_SUM(measured, OUT_U64),
    OUT_SUM(window_start_s, OUT_F64),
    OUT_SUM(window_end_s, OUT_F64),
    OUT_SUM(clamped, OUT_U64),
    OUT_SUM(preemptions, OUT_U64),
    OUT_SUM(recomputed_tokens, OUT_U64),
    OUT_SUM(swap_out_bytes, OUT_F64),
    OUT_SUM(swap_in_bytes, OUT_F64),
    OUT_SUM(swap_time_s, OUT_F64),
    OUT_SUM(iterations, OUT_U64),
    OUT_SUM(events, OUT_U64),
    OUT_SUM(output_tokens, OUT_U64),
    OUT_SUM(duration_s, OUT_F64),
    OUT_SUM(throughput_req_s, OUT_F64),
    OUT_SUM(throughput_tok_s, OUT_F64),
    OUT_SUM_PCTL(ttft_s),
    OUT_SUM_PCTL(tbt_s),
    OUT_SUM_PCTL(tpot_s),
    OUT_SUM_PCTL(e2e_s),
    OUT_SUM_PCTL(queue_s),
    OUT_SUM(slo_ttft_s, OUT_F64),
    OUT_SUM(slo_tpot_s, OUT_F64),
    OUT_SUM(slo_attain_ttft, OUT_F64),
    OUT_SUM(slo_attain_tpot, OUT_F64),
    OUT_SUM(slo_attain, OUT_F64),
    OUT_SUM(energy_j, OUT_F64),
    OUT_SUM(energy_per_out_token_j, OUT_F64),
    OUT_SUM(energy_per_token_j, OUT_F64),
    OUT_SUM(weight_bytes, OUT_F64),
    OUT_SUM(kv_bytes, OUT_F64),
    OUT_SUM(gpu_busy_fraction, OUT_F64),
    OUT_SUM(gpu_held_s, OUT_F64),
    OUT_SUM(gpu_busy_s, OUT_F64),
    OUT_SUM(cost_usd, OUT_F64),
    OUT_SUM(kv_peak_fraction, OUT_F64),
    OUT_SUM(kv_mean_fraction, OUT_F64),
    OUT_SUM(prefix_caching, OUT_U64),
    OUT_SUM(kv_lookup_tokens, OUT_U64),
    OUT_SUM(kv_hit_tokens, OUT_U64),
    OUT_SUM(kv_lookup_blocks, OUT_U64),
    OUT_SUM(kv_hit_blocks, OUT_U64),
    OUT_SUM(kv_evictions, OUT_U64),
    OUT_SUM(kv_tier_hit_tokens, OUT_U64),
    OUT_SUM(kv_tier_load_bytes, OUT_F64),
    OUT_SUM(kv_tier_write_bytes, OUT_F64),
    OUT_SUM(kv_load_stall_s, OUT_F64),
    OUT_SUM_PCTL(ttft_load_s),
    OUT_SUM_PCTL(ttft_compute_s),
    OUT_SUM(router_oracle_requests, OUT_U64),
    OUT_SUM(router_hit_tokens, OUT_U64),
    OUT_SUM(oracle_hit_tokens, OUT_U64),
    OUT_SUM(router_hit_ratio, OUT_F64),
    OUT_SUM(oracle_hit_ratio, OUT_F64),
    OUT_SUM(router_oracle_ratio, OUT_F64),
    OUT_SUM_ARRAY(term_s, OUT_F64, OP_KIND_COUNT),
    OUT_SUM_ARRAY(source_terms, OUT_U64, COST_SRC_COUNT),
    OUT_SUM(ep_imbalance, OUT_F64),
    OUT_SUM(ep_imbalance_max, OUT_F64),
    OUT_SUM(ep_distinct_imbalance, OUT_F64),
    OUT_SUM(ep_a2a_bytes, OUT_F64),
    OUT_SUM(ep_rebalances, OUT_U64),
    OUT_SUM(ep_moved_bytes, OUT_F64),
    OUT_SUM(offload_hits, OUT_U64),
    OUT_SUM(offload_misses, OUT_U64),
    OUT_SUM(offload_low_loads, OUT_U64),
    OUT_SUM(offload_bytes_high, OUT_F64),
    OUT_SUM(offload_bytes_low, OUT_F64),
    OUT_SESS(session_turns, OUT_U64),
    OUT_SESS(sessions_completed, OUT_U64),
    OUT_SESS(session_s_mean, OUT_F64),
    OUT_SESS(session_s_p50, OUT_F64),
    OUT_SESS(session_s_p90, OUT_F64),
    OUT_SESS(session_s_p99, OUT_F64),
    OUT_SESS(resume_s_mean, OUT_F64),
    OUT_SESS(resume_s_p50, OUT_F64),
    OUT_SESS(resume_s_p90, OUT_F64),
    OUT_SESS(resume_s_p99, OUT_F64),
    OUT_SESS(turn_hit_ratio, OUT_F64),
    OUT_SESS(first_turn_hit_ratio, OUT_F64),
    OUT_SESS(session_hit_ratio, OUT_F64),
    OUT_SESS(affinity_breaks, OUT_U64),
    OUT_SESS(pins, OUT_U64),
    OUT_SESS(pin_reuses, OUT_U64),
    OUT_SESS(pin_expiries, OUT_U64),
    OUT_SESS(pinned_block_s, OUT_F64),
    OUT_SESS(session_hit_p50, OUT_F64),
    OUT_SESS(offloads, OUT_U64),
    OUT_SESS(offload_blocks, OUT_U64),
    OUT_SESS(pinned_gib_s, OUT_F64),
    OUT_SESS(context_recomputed_tokens, OUT_U64),
    OUT_SUM(spec_drafts, OUT_U64),
    OUT_SUM(spec_draft_tokens, OUT_U64),
    OUT_SUM(spec_accepted_tokens, OUT_U64),
    OUT_SUM(spec_wasted_tokens, OUT_U64),
    OUT_SUM(spec_acceptance_rate, OUT_F64),
    OUT_SUM(spec_mean_acceptance_length, OUT_F64),
    OUT_SUM_ARRAY(spec_position_rate, OUT_F64, SPEC_POS_METRICS),
    OUT_SUM(spec_draft_time_s, OUT_F64),
    OUT_SUM(spec_verify_time_s, OUT_F64),
    OUT_SUM(spec_draft_share, OUT_F64),
    OUT_SUM(spec_verify_share, OUT_F64),
    OUT_SUM(spec_lookahead_blocks, OUT_U64),
    OUT_SUM(lora_loads, OUT_U64),
    OUT_SUM(lora_storage_loads, OUT_U64),
    OUT_SUM(lora_evictions, OUT_U64),
    OUT_SUM(lora_skipped, OUT_U64),
    OUT_SUM(lora_gpu_hit_ratio, OUT_F64),
    OUT_SUM(lora_adapters_per_batch, OUT_F64),
    OUT_SUM(lora_load_time_s, OUT_F64),
    OUT_SUM(lora_op_time_s, OUT_F64),
    OUT_SUM(lora_cold_requests, OUT_U64),
    OUT_SUM(lora_ttft_cold_s, OUT_F64),
    OUT_SUM(lora_ttft_warm_s, OUT_F64),
    OUT_SUM(cuts_layer, OUT_U64),
    OUT_SUM(cuts_op, OUT_U64),
    OUT_SUM(cut_saved_s, OUT_F64),
    OUT_SUM(hol_arrivals, OUT_U64),
    OUT_SUM(hol_block_s_mean, OUT_F64),
    OUT_SUM(stream_requests, OUT_U64),
    OUT_SUM_PCTL(stream_ttft_first_s),
    OUT_SUM_PCTL(stream_ttft_last_s),
    OUT_SUM(stream_invalidated_tokens, OUT_U64),
    OUT_SUM(preemptions_swap, OUT_U64),
    OUT_SUM(lora_host_hit_ratio, OUT_F64),
    OUT_SUM(lora_max_adapters_per_batch, OUT_U64),
    OUT_SUM(lora_polar_selections, OUT_U64),
    OUT_SUM(lora_polar_regret, OUT_F64),
    OUT_SUM(lora_polar_optimal_ratio, OUT_F64),
    OUT_SUM(wall_s, OUT_F64),
    OUT_SUM(peak_rss_mb, OUT_F64),
};

#define OUT_TS_INST(f, k) { #f, offsetof(out_ts_inst_row, f), k, 1 }
static const out_field out_ts_inst_fields[] = {
    OUT_TS_INST(time_ns, OUT_I64),
    OUT_TS_INST(instance, OUT_I32),
    OUT_TS_INST(waiting, OUT_I32),
    OUT_TS_INST(running, OUT_I32),
    OUT_TS_INST(active, OUT_I32),
    OUT_TS_INST(kv_used_fraction, OUT_F64),
    OUT_TS_INST(power_w, OUT_F64),
    OUT_TS_INST(kv_cached_fraction, OUT_F64),
    OUT_TS_INST(pool, OUT_I32),
    OUT_TS_INST(state, OUT_I32),
};

#define OUT_TS_CLUSTER(f, k) { #f, offsetof(out_ts_cluster_row, f), k, 1 }
static const out_field out_ts_cluster_fields[] = {
    OUT_TS_CLUSTER(time_ns, OUT_I64),
    OUT_TS_CLUSTER(instances, OUT_I32),
    OUT_TS_CLUSTER(active_instances, OUT_I32),
    OUT_TS_CLUSTER(waiting, OUT_I32),
    OUT_TS_CLUSTER(running, OUT_I32),
    OUT_TS_CLUSTER(kv_used_fraction, OUT_F64),
    OUT_TS_CLUSTER(power_w, OUT_F64),
    OUT_TS_CLUSTER(kv_cached_fraction, OUT_F64),
    {"state_instances", offsetof(out_ts_cluster_row, state_instances), OUT_I32,
     INST_STATE_COUNT},
};

#define OUT_NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

static hid_t out_native(out_kind k)
{
    switch (k) {
    case OUT_U64: return H5T_NATIVE_UINT64;
    case OUT_I32: return H5T_NATIVE_INT32;
    case OUT_I64: return H5T_NATIVE_INT64;
    case OUT_F64: return H5T_NATIVE_DOUBLE;
    case OUT_STR: return H5T_NATIVE_CHAR;   /* per byte; see out_insert */
    }
    SIM_ASSERT(!"unknown field kind");
    return -1;
}

static hid_t out_standard(out_kind k)
{
    switch (k) {
    case OUT_U64: return H5T_STD_U64LE;
    case OUT_I32: return H5T_STD_I32LE;
    case OUT_I64: return H5T_STD_I64LE;
    case OUT_F64: return H5T_IEEE_F64LE;
    case OUT_STR: return H5T_NATIVE_CHAR;
    }
    SIM_ASSERT(!"unknown field kind");
    return -1;
}

/* Inserts one member, as an array type when count > 1 (a string type for
 * OUT_STR). */
static herr_t out_insert(hid_t compound, const out_field *fl, size_t offset,
                         hid_t base)
{
    if (fl->kind == OUT_STR) {
        hid_t str = H5Tcopy(H5T_C_S1);
        if (str < 0 || H5Tset_size(str, fl->count) < 0 ||
            H5Tset_strpad(str, H5T_STR_NULLPAD) < 0) {
            if (str >= 0)
                H5Tclose(str);
            return -1;
        }
        herr_t rc = H5Tinsert(compound, fl->name, offset, str);
        H5Tclose(str);
        return rc;
    }
    if (fl->count == 1)
        return H5Tinsert(compound, fl->name, offset, base);
    hid_t arr = H5Tarray_create2(base, 1, &fl->count);
    if (arr < 0)
        return -1;
    herr_t rc = H5Tinsert(compound, fl->name, offset, arr);
    H5Tclose(arr);
    return rc;
}

/* Builds the memory type (native, at the struct's offsets, struct_size
 * bytes) and the file type (little-endian, packed). */
static int out_make_types(const out_field *fields, size_t n, size_t struct_size,
                          hid_t *mem, hid_t *file)
{
    size_t packed = 0;
    for (size_t i = 0; i < n; i++)
        packed += H5Tget_size(out_native(fields[i].kind)) * fields[i].count;
    /* Every struct field is in the table: the structs have no padding, so
     * the members must add up to the struct. (If a struct ever gains
     * padding, make this check account for it.) */
    SIM_ASSERT(packed == struct_size);

    *mem = H5Tcreate(H5T_COMPOUND, struct_size);
    *file = H5Tcreate(H5T_COMPOUND, packed);
    if (*mem < 0 || *file < 0)
        goto fail;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const out_field *fl = &fields[i];
        if (out_insert(*mem, fl, fl->offset, out_native(fl->kind)) < 0 ||
            out_insert(*file, fl, at, out_standard(fl->kind)) < 0)
            goto fail;
        at += H5Tget_size(out_standard(fl->kind)) * fl->count;
    }
    return 0;
fail:
    if (*mem >= 0)
        H5Tclose(*mem);
    if (*file >= 0)
        H5Tclose(*file);
    *mem = *file = H5I_INVALID_HID;
    return -1;
}

int out_summary_types(hid_t *mem, hid_t *file)
{
    return out_make_types(out_sum_fields, OUT_NFIELDS(out_sum_fields),
                          sizeof(run_summary), mem, file);
}

/* HDF5 1.10 crashes in its exit handler when an H5Fclose has failed
 * (HDFFV-11052, fixed in 1.14.1), and a full disk makes H5Fclose fail; the
 * process then dies of SIGSEGV instead of exiting with our message and
 * status. The handler only closes files left open, and every file here is
 * closed by out_commit or out_abandon, so it is switched off. This must
 * happen before the library's first use anywhere in the process, hence a
 * constructor rather than a call in out_open. */
__attribute__((constructor)) static void out_no_hdf5_atexit(void)
{
    H5dont_atexit();
}

/* ---- Open ------------------------------------------------------------------ */

/* ---- Appendable tables -------------------------------------------------- */

static void out_table_init(out_table *t, const char *name, size_t row_size, chunkz *z)
{
    memset(t, 0, sizeof *t);
    t->ds = t->mem_type = H5I_INVALID_HID;
    t->row_size = row_size;
    t->name = name;
    t->z = z;
}

/* Creates the dataset `name` under loc: empty, extensible, chunked,
 * compressed, with rows described by `fields`. */
static int out_table_create(out_table *t, hid_t loc, const char *name,
                            const out_field *fields, size_t n_fields,
                            const char *path, sim_err *err)
{
    hid_t file_type = H5I_INVALID_HID, space = H5I_INVALID_HID;
    hid_t dcpl = H5I_INVALID_HID, dapl = H5I_INVALID_HID;
    int rc = -1;
    hsize_t dims = 0, maxdims = H5S_UNLIMITED, chunk = OUT_CHUNK_ROWS;

    t->buf[0] = sim_xmalloc(OUT_CHUNK_ROWS * t->row_size);
    t->buf[1] = sim_xmalloc(OUT_CHUNK_ROWS * t->row_size);
    if (out_make_types(fields, n_fields, t->row_size, &t->mem_type, &file_type) < 0 ||
        (space = H5Screate_simple(1, &dims, &maxdims)) < 0 ||
        (dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 ||
        H5Pset_chunk(dcpl, 1, &chunk) < 0 ||
        H5Pset_shuffle(dcpl) < 0 ||
        H5Pset_deflate(dcpl, OUT_DEFLATE_LEVEL) < 0 ||
        H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0 ||
        (dapl = H5Pcreate(H5P_DATASET_ACCESS)) < 0 ||
        /* No chunk cache: every chunk is written once, whole (see top). */
        H5Pset_chunk_cache(dapl, H5D_CHUNK_CACHE_NSLOTS_DEFAULT, 0,
                           H5D_CHUNK_CACHE_W0_DEFAULT) < 0 ||
        (t->ds = H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, dcpl,
                            dapl)) < 0) {
        char what[128];
        snprintf(what, sizeof what, "cannot create the %s dataset", t->name);
        out_h5_err(err, path, what);
        goto done;
    }
    rc = 0;
done:
    if (file_type >= 0)
        H5Tclose(file_type);
    if (space >= 0)
        H5Sclose(space);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (dapl >= 0)
        H5Pclose(dapl);
    return rc;
}

/* Writes the compressed chunk of buffer k: rows [t->rows, + job_rows). The
 * memory and file types have the same bytes (packed, little-endian, no
 * padding: see out_make_types), so the filtered bytes are the file's. */
static int out_write_job(out_table *t, int k, const char *path, sim_err *err)
{
    chunkz_wait(t->z, &t->job[k]);
    t->in_flight[k] = false;
    hsize_t start = t->rows, total = t->rows + t->job_rows[k];
    char what[128];
    snprintf(what, sizeof what, "cannot write to %s", t->name);
    if (t->job[k].status)
        return sim_errf(err, "%s: %s: compressing a chunk failed", path, what);
    if (H5Dset_extent(t->ds, &total) < 0 ||
        H5Dwrite_chunk(t->ds, H5P_DEFAULT, 0, &start, t->job[k].out_len, t->job[k].out) < 0)
        return out_h5_err(err, path, what);
    t->rows = total;
    return 0;
}

/* Hands the buffer being filled (full, or the last partial one padded with
 * zeros: an edge chunk is stored whole) to the compressor. */
static void out_submit(out_table *t)
{
    int k = t->cur;
    size_t full = OUT_CHUNK_ROWS * t->row_size, used = t->nbuf * t->row_size;
    if (used < full)
        memset(t->buf[k] + used, 0, full - used);
    t->job[k].in = t->buf[k];
    t->job[k].elem_size = t->row_size;
    t->job[k].n_elem = OUT_CHUNK_ROWS;
    t->job[k].level = OUT_DEFLATE_LEVEL;
    t->job_rows[k] = t->nbuf;
    t->in_flight[k] = true;
    chunkz_submit(t->z, &t->job[k]);
    t->cur = 1 - k;
    t->nbuf = 0;
}

/* A full buffer: write the chunk still in flight, then send this one. */
static int out_table_full(out_table *t, const char *path, sim_err *err)
{
    int other = 1 - t->cur;
    if (t->in_flight[other] && out_write_job(t, other, path, err) < 0)
        return -1;
    out_submit(t);
    return 0;
}

/* Writes everything buffered: the chunk in flight, then the partial one. */
static int out_table_flush(out_table *t, const char *path, sim_err *err)
{
    int other = 1 - t->cur;
    if (t->in_flight[other] && out_write_job(t, other, path, err) < 0)
        return -1;
    if (t->nbuf == 0)
        return 0;
    int k = t->cur;
    out_submit(t);
    return out_write_job(t, k, path, err);
}

/* Buffers one row and hands the buffer on when it is full. A failure is
 * kept in f (and reported by out_failed); nothing more is written. */
static int out_table_push(out_file *f, out_table *t, const void *row)
{
    if (f->failed)
        return -1;
    memcpy(t->buf[t->cur] + t->nbuf++ * t->row_size, row, t->row_size);
    if (t->nbuf < OUT_CHUNK_ROWS)
        return 0;
    if (out_table_full(t, f->path, &f->err) < 0) {
        f->failed = true;
        return -1;
    }
    return 0;
}

/* Closes the dataset and frees the buffers; -1 if closing failed. */
static int out_table_close(out_table *t)
{
    int rc = 0;
    for (int k = 0; k < 2; k++) {   /* a job may still be running on them */
        if (t->in_flight[k])
            chunkz_wait(t->z, &t->job[k]);
        t->in_flight[k] = false;
        chunkz_job_fini(&t->job[k]);
        free(t->buf[k]);
        t->buf[k] = NULL;
    }
    if (t->ds >= 0 && H5Dclose(t->ds) < 0)
        rc = -1;
    if (t->mem_type >= 0)
        H5Tclose(t->mem_type);
    t->ds = t->mem_type = H5I_INVALID_HID;
    return rc;
}

out_file *out_open(const char *path, const outpath_inputs *inputs, sim_err *err)
{
    SIM_ASSERT(path);
    outpath *op = outpath_begin(path, inputs, err);
    if (!op)
        return NULL;
    /* Process-wide, but this module is the only HDF5 user and it reports
     * errors itself. Cheap to repeat. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);

    out_file *f = sim_xcalloc(1, sizeof *f);
    f->file = H5I_INVALID_HID;
    /* Without a second thread (none could be started) chunks are
     * compressed inline: the same file, only slower. */
    f->z = chunkz_create();
    out_table_init(&f->requests, "/requests", sizeof(req_record), f->z);
    out_table_init(&f->ts_inst, "/timeseries/instances", sizeof(out_ts_inst_row), f->z);
    out_table_init(&f->ts_cluster, "/timeseries/cluster", sizeof(out_ts_cluster_row), f->z);
    f->op = op;
    f->path = outpath_final(op);

    /* SEMI: H5Fclose fails if an object is still open, instead of silently
     * leaving the file open (and unflushed) as the default WEAK does. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_SEMI) < 0) {
        out_h5_err(err, path, "cannot set up the HDF5 file access");
        if (fapl >= 0)
            H5Pclose(fapl);
        out_abandon(f);
        return NULL;
    }
    /* The partial file exists (outpath_begin made it, empty, and holds its
     * lock); HDF5 opens it again by name and truncates it. */
    f->file = H5Fcreate(outpath_partial(op), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f->file < 0) {
        char what[OUTPATH_MAX + 32];
        snprintf(what, sizeof what, "cannot create '%s'", outpath_partial(op));
        out_h5_err(err, path, what);
        out_abandon(f);
        return NULL;
    }
    if (out_table_create(&f->requests, f->file, "requests", out_req_fields,
                         OUT_NFIELDS(out_req_fields), f->path, err) < 0) {
        out_abandon(f);
        return NULL;
    }
    return f;
}

/* ---- Appending requests and samples ------------------------------------ */

int out_record(void *out_file_ptr, const req_record *rec)
{
    out_file *f = out_file_ptr;
    return out_table_push(f, &f->requests, rec);
}

/* Creates /timeseries and its two tables (at the first sample). */
static int out_ts_create(out_file *f, const ts_sample *s, sim_err *err)
{
    hid_t g = H5Gcreate2(f->file, "timeseries", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int64_t interval = s->interval_ns;
    int32_t n = s->n_instances;
    int rc = -1;
    if (g < 0 ||
        out_attr(g, "interval_ns", H5T_STD_I64LE, H5T_NATIVE_INT64, 0, &interval) < 0 ||
        out_attr(g, "instances", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, &n) < 0) {
        out_h5_err(err, f->path, "cannot create /timeseries");
    } else if (out_table_create(&f->ts_inst, g, "instances", out_ts_inst_fields,
                                OUT_NFIELDS(out_ts_inst_fields), f->path, err) == 0 &&
               out_table_create(&f->ts_cluster, g, "cluster", out_ts_cluster_fields,
                                OUT_NFIELDS(out_ts_cluster_fields), f->path, err) == 0) {
        rc = 0;
    }
    if (g >= 0 && H5Gclose(g) < 0 && rc == 0)
        rc = out_h5_err(err, f->path, "cannot create /timeseries");
    return rc;
}

int out_sample(void *out_file_ptr, const ts_sample *s)
{
    out_file *f = out_file_ptr;
    if (f->failed)
        return -1;
    if (f->ts_inst.ds < 0 && out_ts_create(f, s, &f->err) < 0) {
        f->failed = true;
        return -1;
    }
    out_ts_cluster_row sum = {.time_ns = s->time_ns, .instances = s->n_instances,
                              .active_instances = s->active_instances};
    for (int32_t i = 0; i < s->n_instances; i++) {
        const ts_instance *t = &s->inst[i];
        out_ts_inst_row row = {s->time_ns, i, t->waiting, t->running, t->active,
                               t->kv_used_fraction, t->power_w, t->kv_cached_fraction,
                               t->pool, (int32_t)t->state};
        sum.state_instances[t->state]++;
        if (out_table_push(f, &f->ts_inst, &row))
            return -1;
        sum.waiting += t->waiting;
        sum.running += t->running;
        sum.kv_used_fraction += t->kv_used_fraction;
        sum.power_w += t->power_w;
        sum.kv_cached_fraction += t->kv_cached_fraction;
    }
    if (s->n_instances) {
        sum.kv_used_fraction /= s->n_instances;
        sum.kv_cached_fraction /= s->n_instances;
    }
    return out_table_push(f, &f->ts_cluster, &sum);
}

bool out_failed(const out_file *f, sim_err *err)
{
    if (f && f->failed && err)
        *err = f->err;
    return f && f->failed;
}

/* ---- Commit ------------------------------------------------------------------ */

/* Variable-length UTF-8 strings: no size limit (object headers cap fixed
 * attributes at 64 KiB, and a config can be larger), and h5py reads them
 * as str rather than bytes. */
hid_t out_vlen_str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0)
        return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* Writes attribute `name` on loc: n values (n == 0: a scalar) of mem_type,
 * stored as file_type. */
herr_t out_attr(hid_t loc, const char *name, hid_t file_type,
                hid_t mem_type, hsize_t n, const void *value)
{
    hid_t space = n ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR);
    if (space < 0)
        return -1;
    herr_t rc = -1;
    hid_t attr = H5Acreate2(loc, name, file_type, space, H5P_DEFAULT,
                            H5P_DEFAULT);
    if (attr >= 0) {
        rc = H5Awrite(attr, mem_type, value);
        if (H5Aclose(attr) < 0)
            rc = -1;
    }
    H5Sclose(space);
    return rc;
}

herr_t out_attr_str(hid_t loc, const char *name, const char *value)
{
    hid_t t = out_vlen_str_type();
    if (t < 0)
        return -1;
    const char *v = value ? value : "";
    herr_t rc = out_attr(loc, name, t, t, 0, &v);
    H5Tclose(t);
    return rc;
}

static herr_t out_attr_strs(hid_t loc, const char *name, const char *const *v,
                            hsize_t n)
{
    hid_t t = out_vlen_str_type();
    if (t < 0)
        return -1;
    herr_t rc = out_attr(loc, name, t, t, n, v);
    H5Tclose(t);
    return rc;
}

/* /summary: one row, with the names of the term_s and source_terms columns
 * as attributes so that the arrays are labelled. */
static int out_write_summary(out_file *f, const run_summary *s, sim_err *err)
{
    hid_t mem = H5I_INVALID_HID, file_type = H5I_INVALID_HID;
    hid_t space = H5I_INVALID_HID, ds = H5I_INVALID_HID;
    hsize_t one = 1;
    const char *term_names[OP_KIND_COUNT], *source_names[COST_SRC_COUNT];
    for (int k = 0; k < OP_KIND_COUNT; k++) {
        term_names[k] = op_kind_name((op_kind)k);
        SIM_ASSERT(term_names[k]);
    }
    for (int k = 0; k < COST_SRC_COUNT; k++) {
        source_names[k] = cost_source_name((cost_source)k);
        SIM_ASSERT(source_names[k]);
    }

    int rc = -1;
    if (out_summary_types(&mem, &file_type) < 0 ||
        (space = H5Screate_simple(1, &one, NULL)) < 0 ||
        (ds = H5Dcreate2(f->file, "summary", file_type, space, H5P_DEFAULT,
                         H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Dwrite(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, s) < 0 ||
        out_attr_strs(ds, "term_names", term_names, OP_KIND_COUNT) < 0 ||
        out_attr_strs(ds, "source_names", source_names, COST_SRC_COUNT) < 0) {
        out_h5_err(err, f->path, "cannot write /summary");
        goto done;
    }
    rc = 0;
done:
    if (ds >= 0 && H5Dclose(ds) < 0 && rc == 0)
        rc = out_h5_err(err, f->path, "cannot write /summary");
    if (mem >= 0)
        H5Tclose(mem);
    if (file_type >= 0)
        H5Tclose(file_type);
    if (space >= 0)
        H5Sclose(space);
    return rc;
}

/* ---- Per pool, per instance, per SLO class and tenant ---------------------------- */

typedef struct out_pool_row {
    char name[32];
    int32_t role;              /* 0 mixed, 1 prefill, 2 decode */
    int32_t gpus_per_instance;
    int64_t instances;
    uint64_t completed, iterations, tokens, preemptions, moved_in, moved_out;
    double busy_fraction, energy_j;
    double gpu_s[INST_STATE_COUNT];
    double kv_peak_fraction, kv_hit_fraction;
    double busy_gpu_s, held_gpu_s, cost_usd;
} out_pool_row;

#define OUT_POOL(f, k) { #f, offsetof(out_pool_row, f), k, 1 }
static const out_field out_pool_fields[] = {
    {"name", offsetof(out_pool_row, name), OUT_STR, 32},
    OUT_POOL(role, OUT_I32), OUT_POOL(gpus_per_instance, OUT_I32),
    OUT_POOL(instances, OUT_I64), OUT_POOL(completed, OUT_U64),
    OUT_POOL(iterations, OUT_U64), OUT_POOL(tokens, OUT_U64),
    OUT_POOL(preemptions, OUT_U64), OUT_POOL(moved_in, OUT_U64),
    OUT_POOL(moved_out, OUT_U64), OUT_POOL(busy_fraction, OUT_F64),
    OUT_POOL(energy_j, OUT_F64),
    {"gpu_s", offsetof(out_pool_row, gpu_s), OUT_F64, INST_STATE_COUNT},
    OUT_POOL(kv_peak_fraction, OUT_F64), OUT_POOL(kv_hit_fraction, OUT_F64),
    OUT_POOL(busy_gpu_s, OUT_F64), OUT_POOL(held_gpu_s, OUT_F64), OUT_POOL(cost_usd, OUT_F64),
};

typedef struct out_inst_row {
    int32_t instance, pool;
    int64_t gpus;
    uint64_t completed, iterations, tokens, preemptions, moved_in, moved_out;
    double busy_s, energy_j;
    double state_s[INST_STATE_COUNT];
    double kv_peak_fraction, kv_mean_fraction;
    uint64_t kv_hit_tokens, kv_lookup_tokens, kv_evictions;
} out_inst_row;

#define OUT_INST(f, k) { #f, offsetof(out_inst_row, f), k, 1 }
static const out_field out_inst_fields[] = {
    OUT_INST(instance, OUT_I32), OUT_INST(pool, OUT_I32), OUT_INST(gpus, OUT_I64),
    OUT_INST(completed, OUT_U64), OUT_INST(iterations, OUT_U64), OUT_INST(tokens, OUT_U64),
    OUT_INST(preemptions, OUT_U64), OUT_INST(moved_in, OUT_U64),
    OUT_INST(moved_out, OUT_U64), OUT_INST(busy_s, OUT_F64), OUT_INST(energy_j, OUT_F64),
    {"state_s", offsetof(out_inst_row, state_s), OUT_F64, INST_STATE_COUNT},
    OUT_INST(kv_peak_fraction, OUT_F64), OUT_INST(kv_mean_fraction, OUT_F64),
    OUT_INST(kv_hit_tokens, OUT_U64), OUT_INST(kv_lookup_tokens, OUT_U64),
    OUT_INST(kv_evictions, OUT_U64),
};

typedef struct out_group_row {
    int64_t id;
    uint64_t completed, output_tokens, good_tokens;
    double slo_attain_ttft, slo_attain_tpot, slo_attain;
    double ttft_s_mean, ttft_s_p50, ttft_s_p90, ttft_s_p99;
    double tpot_s_mean, tpot_s_p50, tpot_s_p90, tpot_s_p99;
    double e2e_s_mean, e2e_s_p50, e2e_s_p90, e2e_s_p99;
} out_group_row;

#define OUT_GROUP(f, k) { #f, offsetof(out_group_row, f), k, 1 }
static const out_field out_group_fields[] = {
    OUT_GROUP(id, OUT_I64), OUT_GROUP(completed, OUT_U64), OUT_GROUP(output_tokens, OUT_U64),
    OUT_GROUP(good_tokens, OUT_U64), OUT_GROUP(slo_attain_ttft, OUT_F64),
    OUT_GROUP(slo_attain_tpot, OUT_F64), OUT_GROUP(slo_attain, OUT_F64),
    OUT_GROUP(ttft_s_mean, OUT_F64), OUT_GROUP(ttft_s_p50, OUT_F64),
    OUT_GROUP(ttft_s_p90, OUT_F64), OUT_GROUP(ttft_s_p99, OUT_F64),
    OUT_GROUP(tpot_s_mean, OUT_F64), OUT_GROUP(tpot_s_p50, OUT_F64),
    OUT_GROUP(tpot_s_p90, OUT_F64), OUT_GROUP(tpot_s_p99, OUT_F64),
    OUT_GROUP(e2e_s_mean, OUT_F64), OUT_GROUP(e2e_s_p50, OUT_F64),
    OUT_GROUP(e2e_s_p90, OUT_F64), OUT_GROUP(e2e_s_p99, OUT_F64),
};

/* Writes rows[0..n) as the one-shot table `name` (n may be 0). */
static int out_write_rows(out_file *f, const char *name, const out_field *fields,
                          size_t n_fields, size_t row_size, const void *rows, hsize_t n,
                          sim_err *err)
{
    hid_t mem = H5I_INVALID_HID, file_type = H5I_INVALID_HID;
    hid_t space = H5I_INVALID_HID, ds = H5I_INVALID_HID;
    int rc = -1;
    char what[96];
    snprintf(what, sizeof what, "cannot write /%s", name);
    if (out_make_types(fields, n_fields, row_size, &mem, &file_type) < 0 ||
        (space = H5Screate_simple(1, &n, NULL)) < 0 ||
        (ds = H5Dcreate2(f->file, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT,
                         H5P_DEFAULT)) < 0 ||
        (n > 0 && H5Dwrite(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) < 0)) {
        out_h5_err(err, f->path, what);
        goto done;
    }
    rc = 0;
done:
    if (ds >= 0 && H5Dclose(ds) < 0 && rc == 0)
        rc = out_h5_err(err, f->path, what);
    if (mem >= 0)
        H5Tclose(mem);
    if (file_type >= 0)
        H5Tclose(file_type);
    if (space >= 0)
        H5Sclose(space);
    return rc;
}

static void pctl_into(double *dst, const pctl *p)
{
    dst[0] = p->mean, dst[1] = p->p50, dst[2] = p->p90, dst[3] = p->p99;
}

static int out_write_groups(out_file *f, const cluster *c, metrics_group_kind kind,
                            const char *name, sim_err *err)
{
    int32_t n = cluster_n_groups(c, kind);
    out_group_row *rows = sim_xcalloc(n ? (size_t)n : 1, sizeof *rows);
    for (int32_t k = 0; k < n; k++) {
        group_summary g;
        cluster_group_summary(c, kind, k, &g);
        out_group_row *r = &rows[k];
        *r = (out_group_row){.id = g.id, .completed = g.completed,
                             .output_tokens = g.output_tokens, .good_tokens = g.good_tokens,
                             .slo_attain_ttft = g.slo_attain_ttft,
                             .slo_attain_tpot = g.slo_attain_tpot,
                             .slo_attain = g.slo_attain};
        pctl_into(&r->ttft_s_mean, &g.ttft_s);
        pctl_into(&r->tpot_s_mean, &g.tpot_s);
        pctl_into(&r->e2e_s_mean, &g.e2e_s);
    }
    int rc = out_write_rows(f, name, out_group_fields, OUT_NFIELDS(out_group_fields),
                            sizeof *rows, rows, (hsize_t)n, err);
    free(rows);
    return rc;
}

int out_cluster_tables(out_file *f, const cluster *c, sim_err *err)
{
    int32_t np = cluster_n_pools(c), ni = cluster_n_instances(c);
    out_pool_row *pools = sim_xcalloc((size_t)np, sizeof *pools);
    out_inst_row *insts = sim_xcalloc(ni ? (size_t)ni : 1, sizeof *insts);
    for (int32_t k = 0; k < np; k++) {
        pool_summary p;
        cluster_pool_summary(c, k, &p);
        out_pool_row *r = &pools[k];
        memcpy(r->name, p.name, sizeof r->name);
        r->role = p.role;
        r->gpus_per_instance = p.gpus_per_instance;
        r->instances = p.instances;
        r->completed = p.completed, r->iterations = p.iterations, r->tokens = p.tokens;
        r->preemptions = p.preemptions, r->moved_in = p.moved_in, r->moved_out = p.moved_out;
        r->busy_fraction = p.busy_fraction, r->energy_j = p.energy_j;
        memcpy(r->gpu_s, p.gpu_s, sizeof r->gpu_s);
        r->kv_peak_fraction = p.kv_peak_fraction, r->kv_hit_fraction = p.kv_hit_fraction;
        r->busy_gpu_s = p.busy_gpu_s, r->held_gpu_s = p.held_gpu_s, r->cost_usd = p.cost_usd;
    }
    for (int32_t i = 0; i < ni; i++) {
        instance_summary s;
        cluster_instance_summary(c, i, &s);
        out_inst_row *r = &insts[i];
        *r = (out_inst_row){.instance = i, .pool = s.pool, .gpus = s.gpus,
                            .completed = s.completed, .iterations = s.iterations,
                            .tokens = s.tokens, .preemptions = s.preemptions,
                            .moved_in = s.moved_in, .moved_out = s.moved_out,
                            .busy_s = s.busy_s, .energy_j = s.energy_j,
                            .kv_peak_fraction = s.kv_peak_fraction,
                            .kv_mean_fraction = s.kv_mean_fraction,
                            .kv_hit_tokens = s.kv_hit_tokens,
                            .kv_lookup_tokens = s.kv_lookup_tokens,
                            .kv_evictions = s.kv_evictions};
        memcpy(r->state_s, s.state_s, sizeof r->state_s);
    }
    int rc = out_write_rows(f, "pools", out_pool_fields, OUT_NFIELDS(out_pool_fields),
                            sizeof *pools, pools, (hsize_t)np, err);
    if (!rc)
        rc = out_write_rows(f, "instances", out_inst_fields, OUT_NFIELDS(out_inst_fields),
                            sizeof *insts, insts, (hsize_t)ni, err);
    if (!rc)
        rc = out_write_groups(f, c, METRICS_BY_CLASS, "classes", err);
    if (!rc)
        rc = out_write_groups(f, c, METRICS_BY_TENANT, "tenants", err);
    if (!rc && cluster_n_groups(c, METRICS_BY_ADAPTER) > 0)   /* multi-LoRA runs only */
        rc = out_write_groups(f, c, METRICS_BY_ADAPTER, "adapters", err);
    free(pools);
    free(insts);
    return rc;
}

static int out_write_root_attrs(out_file *f, const run_summary *s,
                                const char *config_json,
                                const char *cost_sources, sim_err *err)
{
    int32_t schema = OUT_SCHEMA_VERSION;
    if (out_attr_str(f->file, "servesim_version", SERVESIM_VERSION) < 0 ||
        out_attr(f->file, "schema_version", H5T_STD_I32LE, H5T_NATIVE_INT32, 0,
                 &schema) < 0 ||
        out_attr(f->file, "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, 0,
                 &s->seed) < 0 ||
        out_attr_str(f->file, "config", config_json) < 0 ||
        out_attr_str(f->file, "cost_sources", cost_sources) < 0)
        return out_h5_err(err, f->path, "cannot write the file attributes");
    char *plugins = plugin_used_json(config_json);   /* only when it names a plugin */
    int bad = plugins && out_attr_str(f->file, "plugins", plugins) < 0;
    free(plugins);
    if (bad)
        return out_h5_err(err, f->path, "cannot write the plugins attribute");
    return 0;
}

/* Closes the HDF5 objects; returns -1 if closing the file failed (its last
 * metadata is written then, so that is a real write error). */
static int out_close_h5(out_file *f)
{
    int rc = 0;
    out_table *tables[] = {&f->requests, &f->ts_inst, &f->ts_cluster};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
        if (out_table_close(tables[i]) < 0)
            rc = -1;
    chunkz_destroy(f->z);
    f->z = NULL;
    if (f->file >= 0 && H5Fclose(f->file) < 0)
        rc = -1;
    f->file = H5I_INVALID_HID;
    return rc;
}


int out_commit(out_file *f, const run_summary *s, const char *config_json,
               const char *cost_sources, sim_err *err)
{
    SIM_ASSERT(f && s);
    if (out_table_flush(&f->requests, f->path, err) < 0 ||
        (f->ts_inst.ds >= 0 && (out_table_flush(&f->ts_inst, f->path, err) < 0 ||
                                out_table_flush(&f->ts_cluster, f->path, err) < 0)) ||
        out_write_summary(f, s, err) < 0 ||
        out_write_root_attrs(f, s, config_json, cost_sources, err) < 0)
        goto fail;
    /* H5Fclose flushes everything; no separate H5Fflush needed. */
    if (out_close_h5(f) < 0) {
        out_h5_err(err, f->path, "cannot finish writing the results file");
        goto fail;
    }
    /* Synced, renamed into place, lock released. */
    outpath *op = f->op;
    free(f);
    return outpath_commit(op, err);
fail:
    out_abandon(f);
    return -1;
}

void out_abandon(out_file *f)
{
    if (!f)
        return;
    out_close_h5(f);
    H5Eclear2(H5E_DEFAULT);
    outpath_abandon(f->op);
    free(f);
}
