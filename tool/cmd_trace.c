/* `servesim trace stats FILE` and `servesim trace convert FILE OUT` (see
 * cmd_trace.h). Both stream the file through the trace reader, so they run
 * in memory independent of the trace's length, except the prefix-hit share,
 * which needs the set of every prefix block seen (an unbounded cache).
 *
 * Statistics are of the file as it is: every row the reader returns, times
 * from the first row, no window or spreading. Failed requests (BurstGPT's
 * zero-response rows) count as arrivals but not in the token statistics.
 * Percentiles are exact, interpolated between ranks as numpy's are, so
 * they match the figures traces are published with (tokhist.h).
 *
 * A file with no replayable row (a header alone, or every row skipped) is an
 * error for both, as it is for a run.
 *
 * Convert refuses a format without arrival times (length-only CSV): its rows
 * would all arrive at 0 and replay as one burst; such files are replayed by
 * the "lengths" source with an arrival process instead. OUT must end in
 * .csv or .jsonl (the format written). The output goes through outpath.h:
 * checked before the input is read (not the input file, same device and
 * inode, nor a device, link or folder), locked, written as OUT.partial and
 * renamed to OUT only on success, so an error never touches an existing
 * OUT. */
#include "tool/cmd_trace.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tool/outpath.h"
#include "traces/native.h"
#include "traces/tokhist.h"
#include "traces/trace_read.h"
#include "traces/weka.h"

static const char trace_usage[] =
    "usage: servesim trace stats FILE [--format F] [--skip-bad]\n"
    "       servesim trace convert FILE OUT.csv|OUT.jsonl [--format F] [--skip-bad]\n"
    "\n"
    "  --format F   azure, mooncake, burstgpt, lengths, native_csv, native_jsonl,\n"
    "               weka (agentic sessions; stats only; a file or a folder)\n"
    "               (default: recognised from the first line)\n"
    "  --skip-bad   skip malformed rows and count them, instead of stopping\n";

typedef struct trace_args {
    const char *files[2];
    int n_files;
    const char *format;
    bool skip_bad;
} trace_args;

static int parse_args(int argc, char **argv, int want_files, trace_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--format") && i + 1 < argc)
            a->format = argv[++i];
        else if (!strcmp(argv[i], "--skip-bad"))
            a->skip_bad = true;
        else if ((argv[i][0] == '-' && argv[i][1]) || a->n_files == want_files) {
            fprintf(stderr, "servesim trace: unexpected argument '%s'\n%s", argv[i],
                    trace_usage);
            return -1;
        } else
            a->files[a->n_files++] = argv[i];
    }
    if (a->n_files != want_files) {
        fprintf(stderr, "servesim trace: missing %s\n%s", a->n_files ? "OUT" : "FILE",
                trace_usage);
        return -1;
    }
    return 0;
}

/* ---- a set of prefix block ids (open addressing) ------------------------ */

typedef struct id_set {
    uint64_t *key;
    uint8_t *used;
    size_t cap, n;
} id_set;

static size_t id_slot(uint64_t k, size_t cap)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k & (cap - 1);
}

/* Adds k; returns whether it was there already. */
static bool id_set_add(id_set *s, uint64_t k)
{
    if (2 * (s->n + 1) > s->cap) {
        id_set old = *s;
        s->cap = old.cap ? 2 * old.cap : 1024;
        s->key = sim_xmalloc(s->cap * sizeof *s->key);
        s->used = sim_xcalloc(s->cap, 1);
        s->n = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.used[i])
                id_set_add(s, old.key[i]);
        free(old.key);
        free(old.used);
    }
    size_t i = id_slot(k, s->cap);
    for (; s->used[i]; i = (i + 1) & (s->cap - 1))
        if (s->key[i] == k)
            return true;
    s->used[i] = 1;
    s->key[i] = k;
    s->n++;
    return false;
}

/* ---- stats ---------------------------------------------------------------- */

typedef struct trace_stats {
    uint64_t rows, failed;
    sim_time_ns first_ns, last_ns;
    double gap_mean_s, gap_m2;   /* Welford over inter-arrival gaps */
    uint64_t gaps;
    tok_hist in, out;
    id_set blocks;
    bool any_prefix;
    int32_t block_tokens;
    double prefix_hit_tokens, input_tokens;
} trace_stats;

static void stats_add(trace_stats *st, const trace_row *r)
{
    if (st->rows) {
        double gap = (double)(r->t_ns - st->last_ns) / 1e9;
        st->gaps++;
        double d = gap - st->gap_mean_s;
        st->gap_mean_s += d / (double)st->gaps;
        st->gap_m2 += d * (gap - st->gap_mean_s);
    } else {
        st->first_ns = r->t_ns;
    }
    st->last_ns = r->t_ns;
    st->rows++;
    if (r->failed) {
        st->failed++;
        return;
    }
    tokh_add(&st->in, r->input_tokens);
    tokh_add(&st->out, r->output_tokens);
    st->input_tokens += r->input_tokens;
    int32_t hits = 0;
    bool chain = true;
    for (int32_t i = 0; i < r->n_prefix_blocks; i++) {
        bool seen = id_set_add(&st->blocks, r->prefix_blocks[i]);
        if (chain && seen)
            hits++;
        else
            chain = false;
    }
    if (r->n_prefix_blocks) {
        st->any_prefix = true;
        st->block_tokens = r->prefix_block_tokens;
        double hit = (double)hits * r->prefix_block_tokens;
        st->prefix_hit_tokens += hit < r->input_tokens ? hit : r->input_tokens;
    }
}

static void print_tokens(const char *name, const tok_hist *h)
{
    printf("  %-22s mean %.1f, p50 %.0f, p99 %.0f, max %d\n", name, tokh_mean(h),
           tokh_quantile(h, 0.5), tokh_quantile(h, 0.99), h->max);
}

static void print_stats(const trace_reader *rd, const trace_stats *st)
{
    const trace_format *f = trace_reader_format(rd);
    trace_read_counts c;
    trace_reader_counts(rd, &c);
    printf("trace %s\n", trace_reader_name(rd));
    printf("  %-22s %s (%s)\n", "format", f->name, f->what);
    printf("  %-22s %llu\n", "rows", (unsigned long long)st->rows);
    double span_s = (double)(st->last_ns - st->first_ns) / 1e9;
    if (!f->timed) {
        printf("  %-22s - (no arrival times in this format)\n", "time span");
    } else {
        printf("  %-22s %.1f s (%.2f h)\n", "time span", span_s, span_s / 3600);
        if (st->gaps && span_s > 0) {
            double sd = sqrt(st->gap_m2 / (double)st->gaps);
            printf("  %-22s %.2f req/s mean, inter-arrival CV %.2f\n", "request rate",
                   (double)st->gaps / span_s, st->gap_mean_s > 0 ? sd / st->gap_mean_s : 0);
        }
    }
    print_tokens("input tokens", &st->in);
    print_tokens("output tokens", &st->out);
    if (st->any_prefix)
        printf("  %-22s %.1f%% of input tokens (unbounded cache, %d-token blocks)\n",
               "prefix hits",
               st->input_tokens > 0 ? 100 * st->prefix_hit_tokens / st->input_tokens : 0,
               st->block_tokens);
    if (st->failed)
        printf("  %-22s %llu (no output; left out of the token statistics)\n",
               "failed requests", (unsigned long long)st->failed);
    if (c.filtered)
        printf("  %-22s %llu\n", "rows left out", (unsigned long long)c.filtered);
    if (c.bad_skipped)
        printf("  %-22s %llu malformed rows (first: %s)\n", "skipped",
               (unsigned long long)c.bad_skipped, c.first_bad);
}

/* Agentic session traces (traces/weka.h): sessions, calls, and the
 * trace's own cache hits (an unbounded prefix cache per session). */
static int session_stats_cmd(const trace_args *a)
{
    sim_err err = {{0}};
    weka_stats st;
    if (weka_stats_read(a->files[0], a->skip_bad, &st, &err)) {
        fprintf(stderr, "servesim: error: %s\n", err.msg);
        weka_stats_fini(&st);
        return 1;
    }
    uint64_t n = st.sessions;
    printf("trace %s\n", a->files[0]);
    printf("  %-22s weka (agentic sessions: kv-cache-tester / cc-traces-weka JSON)\n", "format");
    printf("  %-22s %llu (%llu subagents)\n", "sessions", (unsigned long long)n,
           (unsigned long long)st.subagents);
    printf("  %-22s %llu (subagents' included)\n", "calls", (unsigned long long)st.calls);
    double per = 0;
    for (uint64_t i = 0; i < n; i++)
        per += st.calls_per_session[i];
    printf("  %-22s mean %.1f, p50 %.0f, p99 %.0f, max %.0f (the session's own, not its "
           "subagents')\n", "calls per session", per / (double)n,
           weka_quantile(st.calls_per_session, n, 0.5),
           weka_quantile(st.calls_per_session, n, 0.99),
           weka_quantile(st.calls_per_session, n, 1));
    double minutes = 0;
    for (uint64_t i = 0; i < n; i++)
        minutes += st.session_minutes[i];
    printf("  %-22s mean %.1f, p50 %.1f, max %.1f (first call to last, recorded)\n",
           "session minutes", minutes / (double)n, weka_quantile(st.session_minutes, n, 0.5),
           weka_quantile(st.session_minutes, n, 1));
    printf("  %-22s first call mean %.0f, last call mean %.0f; all calls mean %.0f\n",
           "input tokens", st.first_in_sum / (double)n, st.last_in_sum / (double)n,
           st.input_tokens / (double)st.calls);
    printf("  %-22s mean %.1f\n", "output tokens", st.output_tokens / (double)st.calls);
    double turn_mean = 0;
    for (uint64_t i = 0; i < st.calls; i++)
        turn_mean += st.turn_hit[i];
    printf("  %-22s %.1f%% of input tokens; per call mean %.1f%% (unbounded cache per "
           "session, %d-token blocks)\n", "prefix hits",
           st.input_tokens > 0 ? 100 * st.hit_tokens / st.input_tokens : 0,
           100 * turn_mean / (double)st.calls, st.block_tokens);
    double mean = 0;
    for (uint64_t i = 0; i < n; i++)
        mean += st.session_hit[i];
    printf("  %-22s min %.1f%%, p25 %.1f%%, p50 %.1f%%, p75 %.1f%%, max %.1f%%, mean %.1f%%\n",
           "hit ratio per session", 100 * weka_quantile(st.session_hit, n, 0),
           100 * weka_quantile(st.session_hit, n, 0.25),
           100 * weka_quantile(st.session_hit, n, 0.5),
           100 * weka_quantile(st.session_hit, n, 0.75),
           100 * weka_quantile(st.session_hit, n, 1), 100 * mean / (double)n);
    if (st.bad_skipped)
        printf("  %-22s %llu malformed sessions (first: %s)\n", "skipped",
               (unsigned long long)st.bad_skipped, st.first_bad);
    weka_stats_fini(&st);
    return 0;
}

static int trace_stats_cmd(int argc, char **argv)
{
    trace_args a;
    if (parse_args(argc, argv, 1, &a))
        return 2;
    if (a.format ? !strcmp(a.format, "weka") : weka_sniff(a.files[0]))
        return session_stats_cmd(&a);
    sim_err err = {{0}};
    trace_reader *rd = trace_reader_open(a.files[0], a.format, a.skip_bad, &err);
    if (!rd) {
        fprintf(stderr, "servesim: error: %s\n", err.msg);
        return 1;
    }
    trace_stats st;
    memset(&st, 0, sizeof st);
    tokh_init(&st.in);
    tokh_init(&st.out);
    trace_row row;
    int rc;
    while ((rc = trace_reader_next(rd, &row, &err)) == 1)
        stats_add(&st, &row);
    if (rc == 0 && st.rows == 0)
        rc = sim_errf(&err, "%s: no replayable row (a header alone%s); expected a trace "
                      "with at least one request", a.files[0],
                      a.skip_bad ? ", or every row malformed and skipped" : "");
    if (rc == 0)
        print_stats(rd, &st);
    else
        fprintf(stderr, "servesim: error: %s\n", err.msg);
    tokh_fini(&st.in);
    tokh_fini(&st.out);
    free(st.blocks.key);
    free(st.blocks.used);
    trace_reader_close(rd);
    return rc == 0 ? 0 : 1;
}

/* ---- convert ---------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static int trace_convert_cmd(int argc, char **argv)
{
    trace_args a;
    if (parse_args(argc, argv, 2, &a))
        return 2;
    const char *out_name = a.files[1];
    bool jsonl = ends_with(out_name, ".jsonl");
    if (!jsonl && !ends_with(out_name, ".csv")) {
        fprintf(stderr, "servesim trace: %s: expected a name ending in .csv or .jsonl (the "
                "format written: native_csv or native_jsonl)\n%s", out_name, trace_usage);
        return 2;
    }
    sim_err err = {{0}};
    outpath_inputs in = {0};
    outpath_inputs_add(&in, a.files[0]);
    if (outpath_check(out_name, &in, &err)) {
        fprintf(stderr, "servesim: error: %s\n", err.msg);
        outpath_inputs_fini(&in);
        return 1;
    }
    trace_reader *rd = trace_reader_open(a.files[0], a.format, a.skip_bad, &err);
    if (!rd) {
        fprintf(stderr, "servesim: error: %s\n", err.msg);
        outpath_inputs_fini(&in);
        return 1;
    }
    const trace_format *fmt = trace_reader_format(rd);
    if (!fmt->timed) {
        /* Every row would arrive at 0 and replay as one burst. */
        fprintf(stderr, "servesim: error: %s: the %s format has no arrival times, so there "
                "is nothing to convert; replay it with the \"lengths\" source and an "
                "arrival process instead (\"workload\": {\"source\": \"lengths\", "
                "\"path\": ..., \"arrival\": {\"process\": \"poisson\", "
                "\"rate_per_s\": 5}})\n", a.files[0], fmt->name);
        trace_reader_close(rd);
        outpath_inputs_fini(&in);
        return 1;
    }
    outpath *op = outpath_begin(out_name, &in, &err);
    outpath_inputs_fini(&in);
    int fd = op ? dup(outpath_fd(op)) : -1;   /* closing the copy keeps the lock */
    FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!out) {
        if (op) {
            sim_errf(&err, "%s: cannot write '%s': %s", out_name, outpath_partial(op),
                     strerror(errno));
            if (fd >= 0)
                close(fd);
            outpath_abandon(op);
        }
        fprintf(stderr, "servesim: error: %s\n", err.msg);
        trace_reader_close(rd);
        return 1;
    }
    uint64_t written = 0, failed = 0;
    trace_row row;
    int rc;
    trace_native_write_header(out, jsonl);
    while ((rc = trace_reader_next(rd, &row, &err)) == 1) {
        if (row.failed) {
            failed++;
            continue;
        }
        trace_native_write_row(out, jsonl, &row);
        written++;
    }
    errno = 0;
    int werr = fflush(out) != 0 || ferror(out) ? (errno ? errno : EIO) : 0;
    if (fclose(out) != 0 && !werr)
        werr = errno ? errno : EIO;
    if (werr && rc == 0)
        rc = sim_errf(&err, "%s: cannot write '%s': %s", out_name, outpath_partial(op),
                      strerror(werr));
    if (rc == 0 && written == 0)
        rc = sim_errf(&err, "%s: no replayable row (%s); nothing to convert", a.files[0],
                      failed ? "every request failed" : a.skip_bad
                      ? "a header alone, or every row malformed and skipped" : "a header alone");
    if (rc == 0)
        rc = outpath_commit(op, &err);
    else
        outpath_abandon(op);
    trace_read_counts c;
    trace_reader_counts(rd, &c);
    if (rc == 0)
        fprintf(stderr, "servesim: wrote %llu rows to %s (%s); %llu failed requests and "
                "%llu malformed rows left out\n", (unsigned long long)written, out_name,
                jsonl ? "native_jsonl" : "native_csv", (unsigned long long)failed,
                (unsigned long long)c.bad_skipped);
    else
        fprintf(stderr, "servesim: error: %s\n", err.msg);
    trace_reader_close(rd);
    return rc == 0 ? 0 : 1;
}

int cmd_trace(int argc, char **argv)
{
    if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        fputs(trace_usage, stdout);
        return 0;
    }
    if (argc >= 1 && !strcmp(argv[0], "stats"))
        return trace_stats_cmd(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "convert"))
        return trace_convert_cmd(argc - 1, argv + 1);
    fprintf(stderr, "servesim trace: expected 'stats' or 'convert'\n%s", trace_usage);
    return 2;
}
