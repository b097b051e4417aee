/* Trace readers, trace options, generators and `servesim trace`: every
 * reader on small files written to a temporary folder (good rows, malformed
 * rows, --skip-bad), the shared options (window, rate scaling, caps,
 * spreading), the generators' statistics, the closed loop in a cluster, and
 * the real traces in ../shared/traces against the figures their README
 * lists (skipped when absent). */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sim/engine.h"
#include "tests/suites.h"
#include "tests/testutil.h"
#include "traces/trace_read.h"
#include "traces/workload.h"

#define SHARED "../shared/traces/"
#define AZURE_CONV SHARED "azure2023/AzureLLMInferenceTrace_conv.csv"
#define MOONCAKE_CONV SHARED "mooncake/conversation_trace.jsonl"
#define MOONCAKE_SYNTH SHARED "mooncake/synthetic_trace.jsonl"
#define SHAREGPT SHARED "lengths/sharegpt_val_10k_llama2.csv"
#define ARXIV SHARED "lengths/arxiv_summarization_llama2.csv"

/* ---- helpers ---------------------------------------------------------------- */

static char *tmp_dir;

static void setup_dir(void) { tmp_dir = tu_tempdir(); }

static void remove_dir(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    ck_assert_int_eq(system(cmd), 0);
    free(tmp_dir);
}

/* Writes text to <tmp_dir>/name; returns the path (caller frees). */
static char *write_file(const char *name, const char *text)
{
    char *path = sim_xmalloc(600);
    snprintf(path, 600, "%s/%s", tmp_dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

typedef struct wl_fixture {
    sim_engine *eng;
    wl_setup setup;
    cJSON *cfg;
    wl_source *src;
    sim_err err;
} wl_fixture;

/* Creates a source from JSON in which every "%s" is `path`. */
static void open_wl(wl_fixture *f, const char *json_fmt, const char *path, int32_t ctx)
{
    char json[4096];
    snprintf(json, sizeof json, json_fmt, path, path, path);
    memset(f, 0, sizeof *f);
    f->eng = sim_engine_create(5);
    f->setup = (wl_setup){sim_rng(f->eng, 1), sim_rng(f->eng, 2), ctx};
    f->cfg = cJSON_Parse(json);
    ck_assert_msg(f->cfg != NULL, "bad test JSON: %s", json);
    f->src = wl_source_create(&f->setup, f->cfg, "$.workload", &f->err);
}

static void close_wl(wl_fixture *f)
{
    wl_source_destroy(f->src);
    cJSON_Delete(f->cfg);
    sim_engine_destroy(f->eng);
}

/* Reads every request (up to max) into out; returns the count; fails the
 * test on an error unless want_error (then returns -1). */
static int drain(wl_fixture *f, wl_request *out, int max, bool want_error)
{
    ck_assert_msg(f->src != NULL, "%s", f->err.msg);
    int n = 0, rc;
    wl_request r;
    while ((rc = wl_source_next(f->src, n ? r.arrival_ns : 0, &r, &f->err)) == WL_REQUEST) {
        if (out && n < max)
            out[n] = r;
        n++;
    }
    if (want_error) {
        ck_assert_int_eq(rc, WL_ERROR);
        return -1;
    }
    ck_assert_msg(rc == WL_END, "rc %d: %s", rc, f->err.msg);
    return n;
}

static bool have(const char *path)
{
    if (access(path, R_OK) == 0)
        return true;
    fprintf(stderr, "test_traces: %s not found; skipping its checks\n", path);
    return false;
}

#define CK_CONTAINS(hay, needle) \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "expected \"%s\" in: %s", (needle), (hay))

/* ---- Azure ---------------------------------------------------------------------- */

static const char azure_2023[] =
    "TIMESTAMP,ContextTokens,GeneratedTokens\n"
    "2023-11-16 18:15:46.6805900,374,44\n"
    "2023-11-16 18:15:50.9951690,396,109\n"
    "2023-11-16 18:15:51.2224670,879,55\n"
    "2023-11-16 18:15:51.3910170,91,16\n";

START_TEST(test_azure_2023_times_are_ns_from_the_first_row)
{
    char *p = write_file("az.csv", azure_2023);
    wl_fixture f;
    wl_request r[8];
    open_wl(&f, "{\"source\": \"azure\", \"path\": \"%s\"}", p, 100000);
    ck_assert_int_eq(drain(&f, r, 8, false), 4);
    ck_assert_int_eq(r[0].arrival_ns, 0);
    ck_assert_int_eq(r[1].arrival_ns, 4314579000LL);
    ck_assert_int_eq(r[3].arrival_ns, 4710427000LL);
    ck_assert_int_eq(r[2].input_tokens, 879);
    ck_assert_int_eq(r[2].output_tokens, 55);
    close_wl(&f);
    free(p);
}
END_TEST

START_TEST(test_azure_2024_timestamps_with_zone_and_optional_fraction)
{
    char *p = write_file("az24.csv",
                         "TIMESTAMP,ContextTokens,GeneratedTokens\r\n"
                         "2024-05-12 00:00:00+00:00,100,10\r\n"
                         "2024-05-12 00:00:00.001163+00:00,200,20\r\n"
                         "2024-05-12 23:59:59.5+00:00,300,30\r\n"
                         "2024-05-13 00:00:01+00:00,400,40\r\n");
    wl_fixture f;
    wl_request r[8];
    open_wl(&f, "{\"source\": \"trace\", \"path\": \"%s\"}", p, 100000);
    ck_assert_int_eq(drain(&f, r, 8, false), 4);
    ck_assert_int_eq(r[1].arrival_ns, 1163000);
    ck_assert_int_eq(r[2].arrival_ns, 86399500000000LL);
    ck_assert_int_eq(r[3].arrival_ns, 86401000000000LL);
    close_wl(&f);
    free(p);
}
END_TEST

/* ---- bad input ---------------------------------------------------------------------- */

typedef struct bad_row_case {
    const char *text;
    const char *format;
    const char *expect[3];
} bad_row_case;

static const bad_row_case bad_rows[] = {
    {"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n"
     "2023-11-16 18:15:47.00,12,-3\n",
     "azure", {"bad.txt:3: column GeneratedTokens: expected an integer in [0, 10000000], "
               "got \"-3\"", NULL, NULL}},
    {"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n"
     "2023-11-16 25:15:47.00,12,3\n",
     "azure", {"bad.txt:3:", "column TIMESTAMP", "\"2023-11-16 25:15:47.00\""}},
    {"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n"
     "2023-11-16 18:15:45.00,12,3\n",
     "azure", {"bad.txt:3:", "time goes back", NULL}},
    {"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-02-28 18:15:46.68,374,44\n"
     "2023-02-30 18:15:47.00,12,3\n",
     "azure", {"bad.txt:3:", "column TIMESTAMP", "\"2023-02-30 18:15:47.00\""}},
    {"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,99999999,44\n",
     "azure", {"bad.txt:2:", "ContextTokens", "99999999"}},
    {"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374\n", "azure",
     {"bad.txt:2:", "expected 3 columns, got 2", NULL}},
    {"{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 5}\n"
     "{\"timestamp\": 5, \"input_length\": \"ten\", \"output_length\": 5}\n",
     "mooncake", {"bad.txt:2:", "column input_length", "\"ten\""}},
    {"{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 5}\n"
     "{\"timestamp\": 5, \"input_length\": 10, \"output_length\": 5\n",
     "mooncake", {"bad.txt:2:", "JSON", NULL}},
    {"{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 5, \"hash_ids\": [1, 2, 3]}\n",
     "mooncake", {"bad.txt:1:", "hash_ids", "at most 1"}},
    {"{\"timestamp\": 0, \"input_length\": 10}\n", "mooncake",
     {"bad.txt:1:", "column output_length: missing", NULL}},
    {"Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
     "5,ChatGPT,abc,10,10,Conversation log\n",
     "burstgpt", {"bad.txt:2:", "column Request tokens", "\"abc\""}},
    {"num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n10,x,10,1\n", "lengths",
     {"bad.txt:2:", "column num_decode_tokens", "\"x\""}},
    {"arrival_s,input_tokens,output_tokens,priority\n0.5,10,5,high\n", "native_csv",
     {"bad.txt:2:", "column priority", "\"high\""}},
    {"arrival_s,input_tokens,output_tokens,prefix_blocks\n0.5,10,5,1 x 3\n", "native_csv",
     {"bad.txt:2:", "column prefix_blocks", NULL}},
    {"{\"arrival_s\": 1, \"input_tokens\": 5, \"output_tokens\": 5, \"tenat\": 1}\n",
     "native_jsonl", {"bad.txt:1:", "unknown key \"tenat\"", "tenant"}},
};
#define N_BAD_ROWS (int)(sizeof bad_rows / sizeof bad_rows[0])

START_TEST(test_malformed_row_names_file_line_column_and_text)
{
    const bad_row_case *bc = &bad_rows[_i];
    char *p = write_file("bad.txt", bc->text);
    sim_err err = {{0}};
    trace_reader *rd = trace_reader_open(p, bc->format, false, &err);
    int rc = -1;
    if (rd) {
        trace_row row;
        while ((rc = trace_reader_next(rd, &row, &err)) == 1)
            ;
    }
    ck_assert_int_eq(rc, -1);
    for (int k = 0; k < 3 && bc->expect[k]; k++)
        CK_CONTAINS(err.msg, bc->expect[k]);
    trace_reader_close(rd);
    free(p);
}
END_TEST

START_TEST(test_datetime_checks_the_days_of_each_month)
{
    static const struct {
        const char *text;
        int ok;
        int64_t days;   /* since 1970-01-01, when ok */
    } cases[] = {
        {"2023-01-31 00:00:00", 1, 19388}, {"2023-02-28 00:00:00", 1, 19416},
        {"2023-02-29 00:00:00", 0, 0},     {"2023-02-30 00:00:00", 0, 0},
        {"2024-02-29 00:00:00", 1, 19782}, {"2024-02-30 00:00:00", 0, 0},
        {"2000-02-29 00:00:00", 1, 11016}, {"2100-02-29 00:00:00", 0, 0},
        {"2023-04-30 00:00:00", 1, 19477}, {"2023-04-31 00:00:00", 0, 0},
        {"2023-06-31 00:00:00", 0, 0},     {"2023-09-31 00:00:00", 0, 0},
        {"2023-11-31 00:00:00", 0, 0},     {"2023-12-31 00:00:00", 1, 19722},
        {"2023-12-32 00:00:00", 0, 0},     {"2023-12-00 00:00:00", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *t = cases[i].text;
        int64_t ns = -1;
        int rc = trace_parse_datetime((trace_span){t, strlen(t)}, &ns);
        ck_assert_msg(rc == (cases[i].ok ? 0 : -1), "%s: rc %d", t, rc);
        if (cases[i].ok)
            ck_assert_msg(ns == cases[i].days * 86400 * SIM_NS_PER_S, "%s: %lld", t,
                          (long long)ns);
    }
}
END_TEST

START_TEST(test_skip_bad_skips_and_counts_malformed_rows)
{
    char *p = write_file("skip.csv",
                         "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                         "2023-11-16 18:15:46.68,374,44\n"
                         "2023-11-16 18:15:47.00,12,-3\n"
                         "garbage\n"
                         "2023-11-16 18:15:45.00,12,3\n"
                         "2023-11-16 18:15:48.00,12,3\n");
    wl_fixture f;
    wl_request r[8];
    open_wl(&f, "{\"source\": \"azure\", \"path\": \"%s\", \"skip_bad\": true}", p, 100000);
    ck_assert_int_eq(drain(&f, r, 8, false), 2);
    ck_assert_int_eq(r[1].arrival_ns, 1320000000);
    wl_counts c;
    wl_source_counts(f.src, &c);
    ck_assert_uint_eq(c.bad_rows, 3);
    ck_assert_uint_eq(c.requests, 2);
    char note[256];
    wl_counts_describe(&c, note, sizeof note);
    CK_CONTAINS(note, "3 malformed rows skipped (first: ");
    CK_CONTAINS(note, "skip.csv:3: column GeneratedTokens");
    close_wl(&f);

    sim_err err = {{0}};
    trace_reader *rd = trace_reader_open(p, NULL, true, &err);
    trace_row row;
    while (trace_reader_next(rd, &row, &err) == 1)
        ;
    trace_read_counts rc;
    trace_reader_counts(rd, &rc);
    CK_CONTAINS(rc.first_bad, "skip.csv:3: column GeneratedTokens");
    trace_reader_close(rd);
    free(p);
}
END_TEST

START_TEST(test_empty_binary_unknown_and_missing_files_have_clear_messages)
{
    static const struct {
        const char *text;
        size_t len;
        const char *expect;
    } cases[] = {
        {"", 0, "empty file"},
        {"\n  \n", 4, "empty file"},
        {"TIMESTAMP,Cont\0extTokens\n", 25, "binary data"},
        {"\x7f" "ELF\x02\x01\x01\0\0\0", 10, "binary data"},
        {"a,b,c\n1,2,3\n", 12, "cannot tell the trace format"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/odd%zu", tmp_dir, i);
        FILE *fp = fopen(path, "wb");
        fwrite(cases[i].text, 1, cases[i].len, fp);
        fclose(fp);
        sim_err err = {{0}};
        trace_reader *rd = trace_reader_open(path, NULL, true, &err);
        ck_assert_ptr_null(rd);
        CK_CONTAINS(err.msg, cases[i].expect);
        CK_CONTAINS(err.msg, path);
    }
    sim_err err = {{0}};
    ck_assert_ptr_null(trace_reader_open("/nonexistent/t.csv", NULL, false, &err));
    CK_CONTAINS(err.msg, "/nonexistent/t.csv: cannot open");
    /* Through a workload config: the JSON path comes first. */
    wl_fixture f;
    open_wl(&f, "{\"source\": \"azure\", \"path\": \"%s\"}", "/nonexistent/t.csv", 4096);
    ck_assert_ptr_null(f.src);
    CK_CONTAINS(f.err.msg, "$.workload.path: /nonexistent/t.csv");
    close_wl(&f);
    /* A header with no rows is not a workload. */
    char *p = write_file("header.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n");
    open_wl(&f, "{\"source\": \"azure\", \"path\": \"%s\"}", p, 4096);
    ck_assert_int_eq(drain(&f, NULL, 0, true), -1);
    CK_CONTAINS(f.err.msg, "no requests");
    close_wl(&f);
    free(p);
}
END_TEST

START_TEST(test_trace_config_keys_are_checked)
{
    char *p = write_file("az.csv", azure_2023);
    static const struct {
        const char *json;
        const char *expect;
    } cases[] = {
        {"{\"source\": \"azure\", \"path\": \"%s\", \"rate\": 2}", "$.workload.rate"},
        {"{\"source\": \"azure\", \"path\": \"%s\", \"format\": \"azure\"}", "$.workload.format"},
        {"{\"source\": \"azure\", \"path\": \"%s\", \"cap_policy\": \"cut\"}",
         "$.workload.cap_policy"},
        {"{\"source\": \"azure\", \"path\": \"%s\", \"window\": {\"start_s\": 5, \"end_s\": 2}}",
         "$.workload.window.end_s"},
        {"{\"source\": \"azure\", \"path\": \"%s\", \"rate_scale\": 0}", "$.workload.rate_scale"},
        {"{\"source\": \"azure\", \"path\": \"%s\", \"context_policy\": \"cut\"}",
         "$.workload.context_policy"},
        {"{\"source\": \"trace\", \"path\": \"%s\", \"format\": \"csv\"}", "mooncake"},
        {"{\"source\": \"azure\", \"path\": \"%s\", \"cycle\": true}", "$.workload.cycle"},
        {"{\"source\": \"lengths\", \"path\": \"%s\"}", "header"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wl_fixture f;
        open_wl(&f, cases[i].json, p, 4096);
        ck_assert_msg(f.src == NULL, "case %zu accepted", i);
        CK_CONTAINS(f.err.msg, cases[i].expect);
        close_wl(&f);
    }
    free(p);
}
END_TEST

/* ---- shared options ------------------------------------------------------------------ */

START_TEST(test_rate_scale_divides_gaps)
{
    char *p = write_file("az.csv", azure_2023);
    wl_fixture f;
    wl_request r[8];
    open_wl(&f, "{\"source\": \"azure\", \"path\": \"%s\", \"rate_scale\": 2}", p, 100000);
    ck_assert_int_eq(drain(&f, r, 8, false), 4);
    ck_assert_int_eq(r[1].arrival_ns, 4314579000LL / 2);
    ck_assert_int_eq(r[3].arrival_ns, 4710427000LL / 2);
    close_wl(&f);
    open_wl(&f, "{\"source\": \"azure\", \"path\": \"%s\", \"rate_scale\": 0.5}", p, 100000);
    ck_assert_int_eq(drain(&f, r, 8, false), 4);
    ck_assert_int_eq(r[3].arrival_ns, 4710427000LL * 2);
    close_wl(&f);
    free(p);
}
END_TEST

START_TEST(test_window_selects_rows_and_restarts_the_clock)
{
    char *p = write_file("az.csv", azure_2023);
    wl_fixture f;
    wl_request r[8];
    open_wl(&f,
            "{\"source\": \"azure\", \"path\": \"%s\", \"window\": {\"start_s\": 4.5, "
            "\"end_s\": 4.7}}",
            p, 100000);
    ck_assert_int_eq(drain(&f, r, 8, false), 1);
    ck_assert_int_eq(r[0].arrival_ns, 4541877000LL - 4500000000LL);
    ck_assert_int_eq(r[0].input_tokens, 879);
    wl_counts c;
    wl_source_counts(f.src, &c);
    ck_assert_uint_eq(c.filtered, 2);
    close_wl(&f);
    free(p);
}
END_TEST

START_TEST(test_max_requests_and_token_caps_truncate_or_drop)
{
    char *p = write_file("az.csv", azure_2023);
    wl_fixture f;
    wl_request r[8];
    open_wl(&f, "{\"source\": \"azure\", \"path\": \"%s\", \"max_requests\": 2}", p, 100000);
    ck_assert_int_eq(drain(&f, r, 8, false), 2);
    close_wl(&f);

    open_wl(&f,
            "{\"source\": \"azure\", \"path\": \"%s\", \"max_input_tokens\": 400, "
            "\"max_output_tokens\": 100}",
            p, 100000);
    ck_assert_int_eq(drain(&f, r, 8, false), 4);
    ck_assert_int_eq(r[1].output_tokens, 100);
    ck_assert_int_eq(r[2].input_tokens, 400);
    wl_counts c;
    wl_source_counts(f.src, &c);
    ck_assert_uint_eq(c.cap_truncated, 2);
    close_wl(&f);

    open_wl(&f,
            "{\"source\": \"azure\", \"path\": \"%s\", \"max_input_tokens\": 400, "
            "\"max_output_tokens\": 100, \"cap_policy\": \"drop\"}",
            p, 100000);
    ck_assert_int_eq(drain(&f, r, 8, false), 2);
    ck_assert_int_eq(r[1].input_tokens, 91);
    wl_source_counts(f.src, &c);
    ck_assert_uint_eq(c.cap_dropped, 2);
    close_wl(&f);
    free(p);
}
END_TEST

START_TEST(test_context_policy_truncates_or_drops_and_counts)
{
    char *p = write_file("az.csv", azure_2023);
    wl_fixture f;
    wl_request r[8];
    open_wl(&f, "{\"source\": \"azure\", \"path\": \"%s\"}", p, 400);
    ck_assert_int_eq(drain(&f, r, 8, false), 4);
    ck_assert_int_eq(r[0].input_tokens + r[0].output_tokens, 400);
    ck_assert_int_eq(r[2].input_tokens, 399);
    ck_assert_uint_eq(wl_source_clamped(f.src), 3);
    close_wl(&f);

    open_wl(&f, "{\"source\": \"azure\", \"path\": \"%s\", \"context_policy\": \"drop\"}", p,
            400);
    ck_assert_int_eq(drain(&f, r, 8, false), 1);
    ck_assert_int_eq(r[0].input_tokens, 91);
    wl_counts c;
    wl_source_counts(f.src, &c);
    ck_assert_uint_eq(c.ctx_dropped, 3);
    ck_assert_uint_eq(wl_source_clamped(f.src), 0);
    close_wl(&f);
    free(p);
}
END_TEST

/* ---- Mooncake -------------------------------------------------------------------------- */

static const char mooncake_rows[] =
    "{\"timestamp\": 0, \"input_length\": 1000, \"output_length\": 10, \"hash_ids\": [0, 1]}\n"
    "{\"timestamp\": 0, \"input_length\": 600, \"output_length\": 20, \"hash_ids\": [0, 2]}\n"
    "{\"timestamp\": 0, \"input_length\": 100, \"output_length\": 30, \"hash_ids\": [3]}\n"
    "{\"hash_ids\": [0, 1, 4], \"output_length\": 40, \"input_length\": 1500, "
    "\"timestamp\": 3000, \"extra\": {\"a\": [1, \"]\"]}}\n"
    "{\"timestamp\": 3500, \"input_length\": 50, \"output_length\": 50, \"hash_ids\": []}\n";

START_TEST(test_mooncake_keeps_the_block_hash_chain)
{
    char *p = write_file("mc.jsonl", mooncake_rows);
    wl_fixture f;
    wl_request r[8];
    open_wl(&f, "{\"source\": \"mooncake\", \"path\": \"%s\"}", p, 100000);
    ck_assert_msg(f.src != NULL, "%s", f.err.msg);
    wl_request q;
    ck_assert_int_eq(wl_source_next(f.src, 0, &q, &f.err), WL_REQUEST);
    ck_assert_int_eq(q.n_prefix_blocks, 2);
    ck_assert_int_eq(q.prefix_block_tokens, 512);
    ck_assert_uint_eq(q.prefix_blocks[1], 1);
    /* The ids belong to the source until its next call: read them at once. */
    uint64_t third_block_of_r2 = 0;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(wl_source_next(f.src, 0, &r[i], &f.err), WL_REQUEST);
        if (i == 2 && r[i].n_prefix_blocks == 3)
            third_block_of_r2 = r[i].prefix_blocks[2];
    }
    ck_assert_int_eq(wl_source_next(f.src, 0, &q, &f.err), WL_END);
    ck_assert_int_eq(r[2].arrival_ns, 3 * SIM_NS_PER_S);
    ck_assert_int_eq(r[2].n_prefix_blocks, 3);
    ck_assert_uint_eq(third_block_of_r2, 4);
    ck_assert_int_eq(r[3].n_prefix_blocks, 0);
    close_wl(&f);
    free(p);
}
END_TEST

START_TEST(test_lines_longer_than_the_read_buffer)
{
    enum { IDS = 19000 };   /* a 110 KB line; the buffer starts at 64 KiB */
    size_t cap = IDS * 8 + 4096, used = 0;
    char *text = sim_xmalloc(cap);
    for (int row = 0; row < 3; row++) {
        used += (size_t)snprintf(text + used, cap - used,
                                 "{\"timestamp\": %d, \"input_length\": %d, "
                                 "\"output_length\": 7, \"hash_ids\": [",
                                 row, IDS * 512);
        int n = row == 1 ? IDS : 3;
        for (int i = 0; i < n; i++)
            used += (size_t)snprintf(text + used, cap - used, "%s%d", i ? ", " : "", i);
        used += (size_t)snprintf(text + used, cap - used, "]}\n");
    }
    ck_assert_uint_lt(used, cap - 1);
    char *p = write_file("long.jsonl", text);
    sim_err err = {{0}};
    trace_reader *rd = trace_reader_open(p, NULL, false, &err);
    ck_assert_msg(rd != NULL, "%s", err.msg);
    trace_row row;
    int n[3] = {0}, k = 0;
    while (trace_reader_next(rd, &row, &err) == 1) {
        ck_assert_int_lt(k, 3);
        n[k++] = row.n_prefix_blocks;
        if (row.n_prefix_blocks == IDS)
            ck_assert_uint_eq(row.prefix_blocks[IDS - 1], IDS - 1);
    }
    ck_assert_int_eq(k, 3);
    ck_assert_int_eq(n[1], IDS);
    ck_assert_int_eq(n[2], 3);
    trace_reader_close(rd);
    free(text);
    free(p);
}
END_TEST

START_TEST(test_spread_evens_out_rounded_timestamps)
{
    char *p = write_file("mc.jsonl", mooncake_rows);
    wl_fixture f;
    wl_request r[8];
    open_wl(&f, "{\"source\": \"mooncake\", \"path\": \"%s\", \"spread_ms\": 3000}", p, 100000);
    /* The ids belong to the source until its next call: read them at once. */
    ck_assert_int_eq(wl_source_next(f.src, 0, &r[0], &f.err), WL_REQUEST);
    ck_assert_int_eq(wl_source_next(f.src, 0, &r[1], &f.err), WL_REQUEST);
    ck_assert_int_eq(r[1].n_prefix_blocks, 2);
    ck_assert_uint_eq(r[1].prefix_blocks[1], 2);
    for (int i = 2; i < 5; i++)
        ck_assert_int_eq(wl_source_next(f.src, 0, &r[i], &f.err), WL_REQUEST);
    ck_assert_int_eq(wl_source_next(f.src, 0, &r[5], &f.err), WL_END);
    ck_assert_int_eq(r[0].arrival_ns, 0);
    ck_assert_int_eq(r[1].arrival_ns, 1 * SIM_NS_PER_S);
    ck_assert_int_eq(r[2].arrival_ns, 2 * SIM_NS_PER_S);
    /* A group spreads at most up to the next timestamp. */
    ck_assert_int_eq(r[3].arrival_ns, 3 * SIM_NS_PER_S);
    ck_assert_int_eq(r[4].arrival_ns, 3500 * SIM_NS_PER_MS);
    close_wl(&f);

    open_wl(&f,
            "{\"source\": \"mooncake\", \"path\": \"%s\", \"spread_ms\": 3000, "
            "\"spread\": \"random\"}",
            p, 100000);
    ck_assert_int_eq(drain(&f, r, 8, false), 5);
    for (int i = 0; i < 3; i++)
        ck_assert(r[i].arrival_ns >= 0 && r[i].arrival_ns < 3 * SIM_NS_PER_S);
    close_wl(&f);
    free(p);
}
END_TEST

/* ---- BurstGPT, lengths, native ---------------------------------------------------------- */

static const char burstgpt_rows[] =
    "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
    "5,ChatGPT,472,18,490,Conversation log\n"
    "45,ChatGPT,1087,0,1087,Conversation log\n"
    "118,GPT-4,417,276,693,API log\n"
    "130.5,ChatGPT,100,\"20\",120,\"API log\"\n";

START_TEST(test_burstgpt_skips_failures_and_filters)
{
    char *p = write_file("bg.csv", burstgpt_rows);
    wl_fixture f;
    wl_request r[8];
    open_wl(&f, "{\"source\": \"burstgpt\", \"path\": \"%s\"}", p, 100000);
    ck_assert_int_eq(drain(&f, r, 8, false), 3);
    ck_assert_int_eq(r[1].arrival_ns, 113 * SIM_NS_PER_S);
    ck_assert_int_eq(r[2].arrival_ns, 125500 * SIM_NS_PER_MS);
    ck_assert_int_eq(r[2].output_tokens, 20);
    wl_counts c;
    wl_source_counts(f.src, &c);
    ck_assert_uint_eq(c.failures, 1);
    close_wl(&f);

    open_wl(&f, "{\"source\": \"burstgpt\", \"path\": \"%s\", \"failures\": \"keep\"}", p,
            100000);
    ck_assert_int_eq(drain(&f, r, 8, false), 4);
    ck_assert_int_eq(r[1].output_tokens, 1);
    close_wl(&f);

    open_wl(&f,
            "{\"source\": \"burstgpt\", \"path\": \"%s\", \"model\": \"ChatGPT\", "
            "\"log_type\": \"API log\"}",
            p, 100000);
    ck_assert_int_eq(drain(&f, r, 8, false), 1);
    ck_assert_int_eq(r[0].input_tokens, 100);
    wl_source_counts(f.src, &c);
    ck_assert_uint_eq(c.filtered, 3);
    close_wl(&f);
    free(p);
}
END_TEST

START_TEST(test_burstgpt_filters_keep_the_file_time_origin)
{
    /* The kept rows count from the file's first row, which the filter leaves
     * out; a malformed row of another model is left out unread. */
    char *p = write_file("bg.csv",
                         "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                         "0,ChatGPT,472,18,490,Conversation log\n"
                         "100,GPT-4,417,276,693,API log\n"
                         "102,ChatGPT,abc,-1,?,Conversation log\n"
                         "105,GPT-4,100,20,120,API log\n");
    wl_fixture f;
    wl_request r[8];
    open_wl(&f, "{\"source\": \"burstgpt\", \"path\": \"%s\", \"model\": \"GPT-4\"}", p,
            100000);
    ck_assert_int_eq(drain(&f, r, 8, false), 2);
    ck_assert_int_eq(r[0].arrival_ns, 100 * SIM_NS_PER_S);
    ck_assert_int_eq(r[1].arrival_ns, 105 * SIM_NS_PER_S);
    ck_assert_int_eq(r[1].input_tokens, 100);
    wl_counts c;
    wl_source_counts(f.src, &c);
    ck_assert_uint_eq(c.filtered, 2);
    ck_assert_uint_eq(c.bad_rows, 0);
    close_wl(&f);

    /* A window starting at 50 s keeps both rows (file times 100 s and
     * 105 s); arrivals count from the window's start. */
    open_wl(&f,
            "{\"source\": \"burstgpt\", \"path\": \"%s\", \"model\": \"GPT-4\", "
            "\"window\": {\"start_s\": 50}}",
            p, 100000);
    ck_assert_int_eq(drain(&f, r, 8, false), 2);
    ck_assert_int_eq(r[0].arrival_ns, 50 * SIM_NS_PER_S);
    ck_assert_int_eq(r[1].arrival_ns, 55 * SIM_NS_PER_S);
    close_wl(&f);

    /* Without the filter the malformed row is read, and stops the run. */
    open_wl(&f, "{\"source\": \"burstgpt\", \"path\": \"%s\"}", p, 100000);
    ck_assert_int_eq(drain(&f, NULL, 0, true), -1);
    CK_CONTAINS(f.err.msg, "bg.csv:4: column Request tokens");
    close_wl(&f);
    free(p);
}
END_TEST

START_TEST(test_burstgpt_filters_ignore_spaces_around_the_cell)
{
    char *p = write_file("bg.csv",
                         "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                         "1,ChatGPT ,10,5,15,Conversation log\n"
                         "2,\" ChatGPT \",20,5,25, API log \n"
                         "3,chatgpt,30,5,35,API log\n"
                         "4,GPT-4,40,5,45,API log\n");
    wl_fixture f;
    wl_request r[8];
    open_wl(&f, "{\"source\": \"burstgpt\", \"path\": \"%s\", \"model\": \"ChatGPT\"}", p,
            100000);
    ck_assert_int_eq(drain(&f, r, 8, false), 2);   /* the value is case-sensitive */
    ck_assert_int_eq(r[0].input_tokens, 10);
    ck_assert_int_eq(r[1].input_tokens, 20);
    close_wl(&f);
    open_wl(&f, "{\"source\": \"burstgpt\", \"path\": \"%s\", \"log_type\": \"API log\"}", p,
            100000);
    ck_assert_int_eq(drain(&f, r, 8, false), 3);
    ck_assert_int_eq(r[0].input_tokens, 20);
    close_wl(&f);
    free(p);
}
END_TEST

static const char length_rows[] =
    "num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n"
    "3772,54,3826,69.85\n"
    "18,243,261,13.5\n"
    "2015,156,2171,12.91\n";

START_TEST(test_lengths_take_an_arrival_process)
{
    char *p = write_file("len.csv", length_rows);
    wl_fixture f;
    wl_request r[16];
    open_wl(&f,
            "{\"source\": \"lengths\", \"path\": \"%s\", \"arrival\": {\"process\": "
            "\"poisson\", \"rate_per_s\": 2}}",
            p, 100000);
    ck_assert_int_eq(drain(&f, r, 16, false), 3);
    ck_assert_int_eq(r[0].input_tokens, 3772);
    ck_assert_int_eq(r[1].output_tokens, 243);
    ck_assert_int_gt(r[2].arrival_ns, r[0].arrival_ns);
    close_wl(&f);

    open_wl(&f,
            "{\"source\": \"lengths\", \"path\": \"%s\", \"cycle\": true, \"max_requests\": 10,"
            " \"arrival\": {\"process\": \"gamma\", \"rate_per_s\": 2, \"cv\": 2}}",
            p, 100000);
    ck_assert_int_eq(drain(&f, r, 16, false), 10);
    ck_assert_int_eq(r[9].input_tokens, 3772);
    close_wl(&f);

    open_wl(&f, "{\"source\": \"lengths\", \"path\": \"%s\"}", p, 100000);
    ck_assert_ptr_null(f.src);
    CK_CONTAINS(f.err.msg, "$.workload.arrival");
    CK_CONTAINS(f.err.msg, "no arrival times");
    close_wl(&f);
    free(p);
}
END_TEST

START_TEST(test_native_csv_and_jsonl_carry_every_attribute)
{
    char *csv = write_file("n.csv",
                           "arrival_s,input_tokens,output_tokens,priority,slo_class,tenant,"
                           "ttft_slo_ms,prefix_block_tokens,prefix_blocks\n"
                           "0.25,100,10,2,1,7,150.5,16,5 6 7\n"
                           "1.000000001,200,20,,,,,,\n");
    char *jsonl = write_file("n.jsonl",
                             "{\"arrival_s\": 0.25, \"input_tokens\": 100, \"output_tokens\": "
                             "10, \"priority\": 2, \"slo_class\": 1, \"tenant\": 7, "
                             "\"ttft_slo_ms\": 150.5, \"prefix_block_tokens\": 16, "
                             "\"prefix_blocks\": [5, 6, 7]}\n"
                             "{\"arrival_s\": 1.000000001, \"input_tokens\": 200, "
                             "\"output_tokens\": 20}\n");
    const char *files[] = {csv, jsonl};
    for (int i = 0; i < 2; i++) {
        wl_fixture f;
        open_wl(&f, "{\"source\": \"native\", \"path\": \"%s\"}", files[i], 100000);
        ck_assert_msg(f.src != NULL, "%s", f.err.msg);
        wl_request a, b;
        ck_assert_int_eq(wl_source_next(f.src, 0, &a, &f.err), WL_REQUEST);
        ck_assert_int_eq(a.arrival_ns, 0);
        ck_assert_int_eq(a.priority, 2);
        ck_assert_int_eq(a.slo_class, 1);
        ck_assert_int_eq(a.tenant, 7);
        ck_assert_int_eq(a.ttft_slo_ns, 150500000);
        ck_assert_int_eq(a.prefix_block_tokens, 16);
        ck_assert_int_eq(a.n_prefix_blocks, 3);
        ck_assert_uint_eq(a.prefix_blocks[2], 7);
        ck_assert_int_eq(wl_source_next(f.src, 0, &b, &f.err), WL_REQUEST);
        ck_assert_int_eq(b.arrival_ns, 750000001);
        ck_assert_int_eq(b.n_prefix_blocks, 0);
        ck_assert_int_eq(b.priority, 0);
        close_wl(&f);
    }
    free(csv);
    free(jsonl);
}
END_TEST

START_TEST(test_native_source_reads_a_byte_order_mark_and_stdin)
{
    static const char jsonl[] =
        "\xEF\xBB\xBF{\"arrival_s\": 0.5, \"input_tokens\": 100, \"output_tokens\": 10}\r\n"
        "{\"arrival_s\": 1.5, \"input_tokens\": 200, \"output_tokens\": 20}\r\n";
    static const char csv[] = "\xEF\xBB\xBFinput_tokens,arrival_s,output_tokens\n"
                              "100,0.5,10\n200,1.5,20\n";
    char *files[] = {write_file("bom.jsonl", jsonl), write_file("bom.csv", csv)};
    for (int i = 0; i < 3; i++) {
        /* Case 2: the JSONL file as standard input. */
        int saved = -1;
        if (i == 2) {
            saved = dup(STDIN_FILENO);
            FILE *in = fopen(files[0], "rb");
            ck_assert_ptr_nonnull(in);
            dup2(fileno(in), STDIN_FILENO);
            fclose(in);
            clearerr(stdin);
        }
        wl_fixture f;
        wl_request r[4];
        open_wl(&f, "{\"source\": \"native\", \"path\": \"%s\"}", i == 2 ? "-" : files[i],
                100000);
        ck_assert_msg(f.src != NULL, "case %d: %s", i, f.err.msg);
        ck_assert_int_eq(drain(&f, r, 4, false), 2);
        ck_assert_int_eq(r[1].arrival_ns, SIM_NS_PER_S);
        ck_assert_int_eq(r[1].input_tokens, 200);
        ck_assert_int_eq(r[1].output_tokens, 20);
        close_wl(&f);
        if (saved >= 0) {
            dup2(saved, STDIN_FILENO);
            close(saved);
            clearerr(stdin);
        }
    }
    free(files[0]);
    free(files[1]);
}
END_TEST

START_TEST(test_trace_rows_reach_the_serving_core)
{
    char *p = write_file("n.csv",
                         "arrival_s,input_tokens,output_tokens,priority,tenant\n"
                         "0,100,10,1,3\n0.1,200,20,0,4\n0.2,300,30,2,5\n");
    cJSON *root = tu_base_config();
    cJSON_ReplaceItemInObject(root, "workload", cJSON_CreateObject());
    cJSON *w = cJSON_GetObjectItem(root, "workload");
    cJSON_AddStringToObject(w, "source", "native");
    cJSON_AddStringToObject(w, "path", p);
    run_config cfg;
    tu_parse(root, &cfg);
    tu_run r;
    tu_run_config(&cfg, &r);
    ck_assert_uint_eq(r.n_records, 3);
    ck_assert_uint_eq(r.output_tokens, 60);
    tu_run_fini(&r);
    run_config_fini(&cfg);
    free(p);
}
END_TEST

/* ---- generators ------------------------------------------------------------------------- */

/* Gap mean and CV of a synthetic source's arrivals. */
static void gap_stats(const char *arrival_json, int n, double *rate, double *cv)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"requests\": %d, \"arrival\": %s, \"input_tokens\": {\"dist\": \"fixed\", "
             "\"value\": 10}, \"output_tokens\": {\"dist\": \"fixed\", \"value\": 10}}",
             n, arrival_json);
    wl_fixture f;
    open_wl(&f, json, "", 100000);
    ck_assert_msg(f.src != NULL, "%s", f.err.msg);
    wl_request r;
    double sum = 0, sum2 = 0, last = 0;
    int k = 0;
    while (wl_source_next(f.src, 0, &r, &f.err) == WL_REQUEST) {
        double gap = (double)(r.arrival_ns - last) / 1e9;
        last = (double)r.arrival_ns;
        sum += gap;
        sum2 += gap * gap;
        k++;
    }
    double mean = sum / k;
    *rate = 1 / mean;
    *cv = sqrt(sum2 / k - mean * mean) / mean;
    close_wl(&f);
}

START_TEST(test_gamma_arrivals_have_the_asked_cv)
{
    double rate, cv;
    gap_stats("{\"process\": \"gamma\", \"rate_per_s\": 10, \"cv\": 3}", 40000, &rate, &cv);
    ck_assert_double_eq_tol(rate, 10, 0.5);
    ck_assert_double_eq_tol(cv, 3, 0.25);
    gap_stats("{\"process\": \"gamma\", \"rate_per_s\": 10, \"cv\": 0.5}", 40000, &rate, &cv);
    ck_assert_double_eq_tol(cv, 0.5, 0.03);
    gap_stats("{\"process\": \"poisson\", \"rate_per_s\": 4}", 40000, &rate, &cv);
    ck_assert_double_eq_tol(cv, 1, 0.05);
}
END_TEST

/* Samples a length distribution n times into counts[0..max]. */
static void sample_lengths(const char *dist_json, int n, int *counts, int max)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"requests\": %d, \"arrival\": {\"rate_per_s\": 1}, \"input_tokens\": %s, "
             "\"output_tokens\": {\"dist\": \"fixed\", \"value\": 1}}",
             n, dist_json);
    wl_fixture f;
    open_wl(&f, json, "", 100000000);
    ck_assert_msg(f.src != NULL, "%s", f.err.msg);
    wl_request r;
    memset(counts, 0, (size_t)(max + 1) * sizeof *counts);
    while (wl_source_next(f.src, 0, &r, &f.err) == WL_REQUEST) {
        ck_assert_int_ge(r.input_tokens, 1);
        ck_assert_int_le(r.input_tokens, max);
        counts[r.input_tokens]++;
    }
    close_wl(&f);
}

START_TEST(test_zipf_and_uniform_lengths_follow_their_laws)
{
    enum { N = 60000, MAX = 50 };
    int counts[MAX + 1];
    sample_lengths("{\"dist\": \"zipf\", \"s\": 1.2, \"max\": 50}", N, counts, MAX);
    double norm = 0;
    for (int k = 1; k <= MAX; k++)
        norm += pow(k, -1.2);
    for (int k = 1; k <= 4; k++)
        ck_assert_double_eq_tol(counts[k] / (double)N, pow(k, -1.2) / norm, 0.01);
    sample_lengths("{\"dist\": \"zipf\", \"s\": 0.8, \"min\": 11, \"max\": 50}", N, counts, MAX);
    ck_assert_int_eq(counts[10], 0);
    ck_assert_double_eq_tol((double)counts[11] / counts[12], pow(2, 0.8), 0.1);
    sample_lengths("{\"dist\": \"uniform\", \"min\": 10, \"max\": 19}", N, counts, MAX);
    for (int k = 10; k <= 19; k++)
        ck_assert_double_eq_tol(counts[k] / (double)N, 0.1, 0.01);
    ck_assert_int_eq(counts[9] + counts[20], 0);
}
END_TEST

START_TEST(test_empirical_lengths_draw_with_file_frequencies)
{
    enum { N = 40000, MAX = 50 };
    int counts[MAX + 1];
    sample_lengths("{\"dist\": \"empirical\", \"values\": [10, 20, 20, 30]}", N, counts, MAX);
    ck_assert_double_eq_tol(counts[10] / (double)N, 0.25, 0.01);
    ck_assert_double_eq_tol(counts[20] / (double)N, 0.5, 0.01);
    ck_assert_int_eq(counts[10] + counts[20] + counts[30], N);

    char *p = write_file("len.csv", "num_prefill_tokens,num_decode_tokens\n5,7\n5,8\n9,7\n1,0\n");
    char json[256];
    snprintf(json, sizeof json, "{\"dist\": \"empirical\", \"path\": \"%s\", \"field\": \"output\"}",
             p);
    sample_lengths(json, N, counts, MAX);
    ck_assert_double_eq_tol(counts[7] / (double)N, 2.0 / 3, 0.015);
    ck_assert_int_eq(counts[7] + counts[8], N);   /* the zero is left out */
    free(p);
}
END_TEST

START_TEST(test_piecewise_and_diurnal_rates)
{
    char *p = write_file("rates.csv", "start_s,rate_per_s\n0,20\n10,0\n20,5\n");
    char json[1024];
    snprintf(json, sizeof json,
             "{\"requests\": 300, \"arrival\": {\"process\": \"piecewise\", \"path\": \"%s\"},"
             " \"input_tokens\": {\"dist\": \"fixed\", \"value\": 1},"
             " \"output_tokens\": {\"dist\": \"fixed\", \"value\": 1}}",
             p);
    wl_fixture f;
    wl_request r;
    int in_first = 0, in_gap = 0;
    open_wl(&f, json, "", 1000);
    ck_assert_msg(f.src != NULL, "%s", f.err.msg);
    while (wl_source_next(f.src, 0, &r, &f.err) == WL_REQUEST) {
        in_first += r.arrival_ns < 10 * SIM_NS_PER_S;
        in_gap += r.arrival_ns >= 10 * SIM_NS_PER_S && r.arrival_ns < 20 * SIM_NS_PER_S;
    }
    ck_assert_int_eq(in_gap, 0);
    ck_assert_int_gt(in_first, 150);
    ck_assert_int_lt(in_first, 250);
    close_wl(&f);

    /* A rate of 0 that holds forever ends the workload. */
    open_wl(&f,
            "{\"requests\": 1000, \"arrival\": {\"process\": \"piecewise\", \"segments\": "
            "[[0, 10], [5, 0]]}, \"input_tokens\": {\"dist\": \"fixed\", \"value\": 1},"
            " \"output_tokens\": {\"dist\": \"fixed\", \"value\": 1}}",
            "", 1000);
    int n = drain(&f, NULL, 0, false);
    ck_assert_int_gt(n, 25);
    ck_assert_int_lt(n, 80);
    close_wl(&f);

    /* Diurnal: the peak quarter gets far more than the trough quarter. */
    open_wl(&f,
            "{\"requests\": 20000, \"arrival\": {\"process\": \"diurnal\", \"rate_per_s\": 10,"
            " \"amplitude\": 0.8, \"period_s\": 100}, \"input_tokens\": {\"dist\": \"fixed\","
            " \"value\": 1}, \"output_tokens\": {\"dist\": \"fixed\", \"value\": 1}}",
            "", 1000);
    int peak = 0, trough = 0;
    double last = 0;
    while (wl_source_next(f.src, 0, &r, &f.err) == WL_REQUEST) {
        double phase = fmod((double)r.arrival_ns / 1e9, 100);
        peak += phase < 12.5 || phase >= 87.5;
        trough += phase >= 37.5 && phase < 62.5;
        last = (double)r.arrival_ns / 1e9;
    }
    ck_assert_double_eq_tol(20000 / last, 10, 0.5);
    ck_assert_int_gt(peak, 4 * trough);
    close_wl(&f);
    free(p);
}
END_TEST

START_TEST(test_closed_loop_source_waits_for_completions)
{
    wl_fixture f;
    open_wl(&f,
            "{\"requests\": 5, \"arrival\": {\"process\": \"closed_loop\", \"clients\": 2, "
            "\"think_s\": 1, \"think\": \"fixed\"}, \"input_tokens\": {\"dist\": \"fixed\", "
            "\"value\": 4}, \"output_tokens\": {\"dist\": \"fixed\", \"value\": 4}}",
            "", 1000);
    ck_assert_msg(f.src != NULL, "%s", f.err.msg);
    wl_request r;
    ck_assert_int_eq(wl_source_next(f.src, 0, &r, &f.err), WL_REQUEST);
    ck_assert_int_eq(wl_source_next(f.src, 0, &r, &f.err), WL_REQUEST);
    ck_assert_int_eq(wl_source_next(f.src, 0, &r, &f.err), WL_WAIT);
    ck_assert_int_eq(r.arrival_ns, SIM_TIME_NEVER);
    ck_assert_int_eq(wl_source_complete(f.src, 3 * SIM_NS_PER_S), 1);
    ck_assert_int_eq(wl_source_next(f.src, 3 * SIM_NS_PER_S, &r, &f.err), WL_WAIT);
    ck_assert_int_eq(r.arrival_ns, 4 * SIM_NS_PER_S);
    ck_assert_int_eq(wl_source_next(f.src, 4 * SIM_NS_PER_S, &r, &f.err), WL_REQUEST);
    ck_assert_int_eq(r.arrival_ns, 4 * SIM_NS_PER_S);
    close_wl(&f);
}
END_TEST

/* Records (arrival, finish) of every request of a run. */
typedef struct span_log {
    int64_t arrival[2000], finish[2000];
    int n;
} span_log;

static int log_span(void *ctx, const req_record *rec)
{
    span_log *l = ctx;
    ck_assert_int_lt(l->n, 2000);
    l->arrival[l->n] = rec->arrival_ns;
    l->finish[l->n++] = rec->finish_ns;
    return 0;
}

START_TEST(test_closed_loop_concurrency_never_exceeds_clients)
{
    static const char *const think[] = {"0", "0.05"};
    cJSON *root = tu_base_config();
    char set_think[64];
    snprintf(set_think, sizeof set_think, "workload.arrival.think_s=%s", think[_i]);
    const char *const sets[] = {"workload.requests=600",
                                "workload.arrival={\"process\": \"closed_loop\", "
                                "\"clients\": 8}",
                                set_think, NULL};
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    span_log *l = sim_xcalloc(1, sizeof *l);
    cluster_hooks hooks = {.on_record = log_span, .record_ctx = l};
    sim_err err = {{0}};
    cluster *c = cluster_create(&cfg.sys, &hooks, &err);
    ck_assert_msg(c != NULL, "%s", err.msg);
    ck_assert_msg(cluster_run(c, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(l->n, 600);
    int most = 0;
    for (int i = 0; i < l->n; i++) {
        int busy = 0;   /* in flight at request i's arrival */
        for (int j = 0; j < l->n; j++)
            busy += l->arrival[j] <= l->arrival[i] && l->finish[j] > l->arrival[i];
        if (busy > most)
            most = busy;
    }
    ck_assert_int_le(most, 8);
    ck_assert_int_ge(most, 8);   /* and the loop keeps every client busy */
    cluster_destroy(c);
    run_config_fini(&cfg);
    free(l);
}
END_TEST

/* ---- servesim trace -------------------------------------------------------------------- */

/* Runs the CLI with stdout in buf and stderr in errbuf. */
typedef struct captured_cli {
    tu_cli_call *call;
    char *errbuf;
    size_t errsize;
} captured_cli;

static int cli_with_stderr(void *arg)
{
    captured_cli *c = arg;
    return tu_capture_stderr(tu_call_cli, c->call, c->errbuf, c->errsize);
}

static int run_cli_captured(tu_cli_call *c, char *buf, size_t size, char *errbuf, size_t errsize)
{
    captured_cli cc = {c, errbuf, errsize};
    return tu_capture(STDOUT_FILENO, cli_with_stderr, &cc, buf, size);
}

START_TEST(test_trace_stats_prints_rows_rate_and_percentiles)
{
    char *p = write_file("mc.jsonl", mooncake_rows);
    char out[4096], errbuf[4096];
    tu_cli_call c = {{"servesim", "trace", "stats", p, NULL}};
    ck_assert_int_eq(run_cli_captured(&c, out, sizeof out, errbuf, sizeof errbuf), 0);
    CK_CONTAINS(out, "mooncake");
    CK_CONTAINS(out, "rows                   5");
    CK_CONTAINS(out, "time span              3.5 s");
    CK_CONTAINS(out, "request rate           1.14 req/s");
    CK_CONTAINS(out, "input tokens           mean 650.0, p50 600, p99 1480");
    /* 3250 input tokens; hits: row 2 block 0 (512), row 4 blocks 0-1 (1024). */
    CK_CONTAINS(out, "prefix hits            47.3% of input tokens");
    free(p);

    p = write_file("bad.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                              "2023-11-16 18:15:46.68,374,44\n2023-11-16 18:15:47,x,1\n");
    tu_cli_call bad = {{"servesim", "trace", "stats", p, NULL}};
    ck_assert_int_eq(run_cli_captured(&bad, out, sizeof out, errbuf, sizeof errbuf), 1);
    CK_CONTAINS(errbuf, "bad.csv:3: column ContextTokens");
    tu_cli_call skip = {{"servesim", "trace", "stats", "--skip-bad", p, NULL}};
    ck_assert_int_eq(run_cli_captured(&skip, out, sizeof out, errbuf, sizeof errbuf), 0);
    CK_CONTAINS(out, "rows                   1");
    CK_CONTAINS(out, "skipped                1 malformed rows");
    tu_cli_call fmt = {{"servesim", "trace", "stats", p, "--format", "mooncake", NULL}};
    ck_assert_int_eq(run_cli_captured(&fmt, out, sizeof out, errbuf, sizeof errbuf), 1);
    CK_CONTAINS(errbuf, "bad.csv:1:");
    tu_cli_call usage = {{"servesim", "trace", "stats", NULL}};
    ck_assert_int_eq(run_cli_captured(&usage, out, sizeof out, errbuf, sizeof errbuf), 2);
    CK_CONTAINS(errbuf, "usage");
    free(p);
}
END_TEST

START_TEST(test_trace_convert_round_trips_through_native)
{
    char *in = write_file("mc.jsonl", mooncake_rows);
    const char *outs[] = {"conv.jsonl", "conv.csv"};
    for (int k = 0; k < 2; k++) {
        char out_path[600], out[4096], errbuf[4096];
        snprintf(out_path, sizeof out_path, "%s/%s", tmp_dir, outs[k]);
        tu_cli_call c = {{"servesim", "trace", "convert", in, out_path, NULL}};
        ck_assert_int_eq(run_cli_captured(&c, out, sizeof out, errbuf, sizeof errbuf), 0);
        CK_CONTAINS(errbuf, "wrote 5 rows");
        sim_err e1 = {{0}}, e2 = {{0}};
        trace_reader *a = trace_reader_open(in, NULL, false, &e1);
        trace_reader *b = trace_reader_open(out_path, NULL, false, &e2);
        ck_assert_msg(b != NULL, "%s", e2.msg);
        ck_assert_str_eq(trace_reader_format(b)->name, k ? "native_csv" : "native_jsonl");
        trace_row ra, rb;
        int n = 0;
        while (trace_reader_next(a, &ra, &e1) == 1) {
            ck_assert_int_eq(trace_reader_next(b, &rb, &e2), 1);
            ck_assert_int_eq(ra.t_ns, rb.t_ns);
            ck_assert_int_eq(ra.input_tokens, rb.input_tokens);
            ck_assert_int_eq(ra.output_tokens, rb.output_tokens);
            ck_assert_int_eq(ra.n_prefix_blocks, rb.n_prefix_blocks);
            ck_assert_int_eq(ra.prefix_block_tokens, rb.prefix_block_tokens);
            for (int i = 0; i < ra.n_prefix_blocks; i++)
                ck_assert_uint_eq(ra.prefix_blocks[i], rb.prefix_blocks[i]);
            n++;
        }
        ck_assert_int_eq(n, 5);
        ck_assert_int_eq(trace_reader_next(b, &rb, &e2), 0);
        trace_reader_close(a);
        trace_reader_close(b);
    }
    free(in);
}
END_TEST

START_TEST(test_trace_convert_refuses_a_file_without_times)
{
    char *in = write_file("len.csv", length_rows);
    char out_path[600], out[4096], errbuf[4096];
    snprintf(out_path, sizeof out_path, "%s/len.jsonl", tmp_dir);
    tu_cli_call c = {{"servesim", "trace", "convert", in, out_path, NULL}};
    ck_assert_int_eq(run_cli_captured(&c, out, sizeof out, errbuf, sizeof errbuf), 1);
    CK_CONTAINS(errbuf, "len.csv: the lengths format has no arrival times");
    CK_CONTAINS(errbuf, "\"lengths\" source and an arrival process");
    ck_assert_int_ne(access(out_path, F_OK), 0);
    free(in);
}
END_TEST

/* Reads a whole file into a fresh string (caller frees). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    char *buf = sim_xmalloc(1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

START_TEST(test_trace_convert_refuses_to_overwrite_its_input)
{
    char *in = write_file("mc.jsonl", mooncake_rows);
    char out[4096], errbuf[4096], link_path[600];
    tu_cli_call c = {{"servesim", "trace", "convert", in, in, NULL}};
    ck_assert_int_eq(run_cli_captured(&c, out, sizeof out, errbuf, sizeof errbuf), 1);
    CK_CONTAINS(errbuf, "is the input");
    /* The same file under another name is caught too: a hard link by its
     * device and inode, a symbolic link as a link (never replaced). */
    snprintf(link_path, sizeof link_path, "%s/hard.jsonl", tmp_dir);
    ck_assert_int_eq(link(in, link_path), 0);
    tu_cli_call h = {{"servesim", "trace", "convert", in, link_path, NULL}};
    ck_assert_int_eq(run_cli_captured(&h, out, sizeof out, errbuf, sizeof errbuf), 1);
    CK_CONTAINS(errbuf, "is the input");
    unlink(link_path);
    snprintf(link_path, sizeof link_path, "%s/link.jsonl", tmp_dir);
    ck_assert_int_eq(symlink(in, link_path), 0);
    tu_cli_call l = {{"servesim", "trace", "convert", in, link_path, NULL}};
    ck_assert_int_eq(run_cli_captured(&l, out, sizeof out, errbuf, sizeof errbuf), 1);
    CK_CONTAINS(errbuf, "is a symbolic link");
    char *text = slurp(in);
    ck_assert_str_eq(text, mooncake_rows);
    free(text);
    free(in);
}
END_TEST

START_TEST(test_trace_convert_error_keeps_an_existing_output)
{
    char *in = write_file("bad.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                                     "2023-11-16 18:15:46.68,374,44\n2023-11-16 18:15:47,x,1\n");
    char *prev = write_file("old.csv", "keep me\n");
    char partial[700], out[4096], errbuf[4096];
    tu_cli_call c = {{"servesim", "trace", "convert", in, prev, NULL}};
    ck_assert_int_eq(run_cli_captured(&c, out, sizeof out, errbuf, sizeof errbuf), 1);
    CK_CONTAINS(errbuf, "bad.csv:3: column ContextTokens");
    char *text = slurp(prev);
    ck_assert_str_eq(text, "keep me\n");
    free(text);
    snprintf(partial, sizeof partial, "%s.partial", prev);
    ck_assert_int_ne(access(partial, F_OK), 0);
    free(prev);
    free(in);
}
END_TEST

/* ---- the real traces ---------------------------------------------------------------- */

typedef struct real_trace {
    const char *path;
    const char *expect[6];
} real_trace;

/* The figures ../shared/traces/README.md lists. */
static const real_trace real_traces[] = {
    {AZURE_CONV,
     {"format                 azure", "rows                   19366", "(0.97 h)",
      "5.53 req/s mean, inter-arrival CV 1.09", "mean 1154.7, p50 1020, p99 4142",
      "mean 211.1, p50 129, p99 601"}},
    {MOONCAKE_CONV,
     {"rows                   12031", "(0.98 h)", "3.40 req/s", "mean 12035.1, p50 6909, p99 85400",
      "mean 342.6, p50 350, p99 1119", "prefix hits            37.4%"}},
    {MOONCAKE_SYNTH,
     {"rows                   3993", "3.91 req/s", "mean 15325.5, p50 11587, p99 66456",
      "mean 149.1, p50 69, p99 768", "prefix hits            65.1%", NULL}},
    {SHAREGPT,
     {"format                 lengths", "rows                   10000",
      "mean 245.8, p50 35, p99 2862", "mean 325.6, p50 286, p99 1000", NULL, NULL}},
    {ARXIV,
     {"rows                   28257", "mean 2588.1, p50 2730, p99 3933",
      "mean 291.4, p50 167, p99 3271", NULL, NULL, NULL}},
};
#define N_REAL (int)(sizeof real_traces / sizeof real_traces[0])

START_TEST(test_real_trace_statistics_match_the_readme)
{
    const real_trace *t = &real_traces[_i];
    if (!have(t->path))
        return;
    char out[4096], errbuf[4096];
    tu_cli_call c = {{"servesim", "trace", "stats", t->path, NULL}};
    ck_assert_int_eq(run_cli_captured(&c, out, sizeof out, errbuf, sizeof errbuf), 0);
    for (int k = 0; k < 6 && t->expect[k]; k++)
        CK_CONTAINS(out, t->expect[k]);
}
END_TEST

START_TEST(test_real_traces_replay_through_their_sources)
{
    static const struct {
        const char *path, *json;
        int rows;
        double mean_in;
    } cases[] = {
        {AZURE_CONV, "{\"source\": \"azure\", \"path\": \"%s\"}", 19366, 1154.7},
        {MOONCAKE_CONV, "{\"source\": \"mooncake\", \"path\": \"%s\", \"spread_ms\": 3000}", 12031,
         12035.1},
        {SHAREGPT,
         "{\"source\": \"lengths\", \"path\": \"%s\", \"arrival\": {\"process\": \"poisson\","
         " \"rate_per_s\": 5}}",
         10000, 245.8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!have(cases[i].path))
            continue;
        wl_fixture f;
        open_wl(&f, cases[i].json, cases[i].path, 1 << 20);
        ck_assert_msg(f.src != NULL, "%s", f.err.msg);
        wl_request r;
        double sum = 0;
        int n = 0, blocks = 0;
        sim_time_ns last = 0;
        while (wl_source_next(f.src, last, &r, &f.err) == WL_REQUEST) {
            ck_assert_int_ge(r.arrival_ns, last);
            last = r.arrival_ns;
            sum += r.input_tokens;
            blocks += r.n_prefix_blocks > 0;
            n++;
        }
        ck_assert_int_eq(n, cases[i].rows);
        ck_assert_double_eq_tol(sum / n, cases[i].mean_in, 0.1);
        if (i == 1)
            ck_assert_int_eq(blocks, n);
        close_wl(&f);
    }
}
END_TEST

START_TEST(test_azure_conv_experiment_runs)
{
    if (!have(AZURE_CONV))
        return;
    run_config cfg;
    sim_err err = {{0}};
    const char *sets[] = {"workload.max_requests=1500"};
    ck_assert_msg(run_config_load("experiments/azure_conv.json", (char **)sets, 1, &cfg, &err) == 0,
                  "%s", err.msg);
    tu_run r;
    tu_run_config(&cfg, &r);
    ck_assert_uint_eq(r.n_records, 1500);
    ck_assert(!r.kv_over_capacity);
    tu_run_fini(&r);
    run_config_fini(&cfg);
}
END_TEST

/* ---- issue 15 ---------------------------------------------------------------- */

/* Item 14: a trace with no replayable row is fatal for stats and convert,
 * as it is for a run. */
START_TEST(test_trace_without_a_row_is_fatal_for_stats_and_convert)
{
    char *hdr = write_file("hdr.csv", "arrival_s,input_tokens,output_tokens\n");
    char out_path[700], out[4096], errbuf[4096];
    tu_cli_call st = {{"servesim", "trace", "stats", hdr, NULL}};
    ck_assert_int_eq(run_cli_captured(&st, out, sizeof out, errbuf, sizeof errbuf), 1);
    CK_CONTAINS(errbuf, "hdr.csv: no replayable row (a header alone)");
    ck_assert_msg(!strstr(out, "rows"), "%s", out);
    char *bad = write_file("bad.csv", "arrival_s,input_tokens,output_tokens\n0.1,x,1\n");
    tu_cli_call skip = {{"servesim", "trace", "stats", bad, "--skip-bad", NULL}};
    ck_assert_int_eq(run_cli_captured(&skip, out, sizeof out, errbuf, sizeof errbuf), 1);
    CK_CONTAINS(errbuf, "every row malformed and skipped");
    snprintf(out_path, sizeof out_path, "%s/conv.csv", tmp_dir);
    tu_cli_call cv = {{"servesim", "trace", "convert", hdr, out_path, NULL}};
    ck_assert_int_eq(run_cli_captured(&cv, out, sizeof out, errbuf, sizeof errbuf), 1);
    CK_CONTAINS(errbuf, "no replayable row");
    ck_assert_int_ne(access(out_path, F_OK), 0);
    free(hdr);
    free(bad);
}
END_TEST

/* Item 15: a folder given as a trace says so (not "read error after line
 * 0"). */
START_TEST(test_trace_that_is_a_folder_says_so)
{
    char out[4096], errbuf[4096];
    tu_cli_call st = {{"servesim", "trace", "stats", tmp_dir, NULL}};
    ck_assert_int_eq(run_cli_captured(&st, out, sizeof out, errbuf, sizeof errbuf), 1);
    CK_CONTAINS(errbuf, "is a directory; expected a trace file");
    sim_err err;
    ck_assert_ptr_null(trace_reader_open(tmp_dir, NULL, false, &err));
    CK_CONTAINS(err.msg, "is a directory");
}
END_TEST

/* Item 16: convert writes CSV or JSONL by the name: another name is an
 * error, not CSV in disguise. Item 1: a FIFO or a device is never
 * replaced. */
START_TEST(test_trace_convert_output_name_and_kind_are_checked)
{
    char *in = write_file("mc.jsonl", mooncake_rows);
    char out_path[700], out[4096], errbuf[4096];
    snprintf(out_path, sizeof out_path, "%s/x.txt", tmp_dir);
    tu_cli_call txt = {{"servesim", "trace", "convert", in, out_path, NULL}};
    ck_assert_int_eq(run_cli_captured(&txt, out, sizeof out, errbuf, sizeof errbuf), 2);
    CK_CONTAINS(errbuf, "x.txt: expected a name ending in .csv or .jsonl");
    ck_assert_int_ne(access(out_path, F_OK), 0);
    snprintf(out_path, sizeof out_path, "%s/fifo.csv", tmp_dir);
    ck_assert_int_eq(mkfifo(out_path, 0600), 0);
    tu_cli_call fifo = {{"servesim", "trace", "convert", in, out_path, NULL}};
    ck_assert_int_eq(run_cli_captured(&fifo, out, sizeof out, errbuf, sizeof errbuf), 1);
    CK_CONTAINS(errbuf, "is a FIFO");
    struct stat st;
    ck_assert_int_eq(lstat(out_path, &st), 0);
    ck_assert(S_ISFIFO(st.st_mode));
    free(in);
}
END_TEST

static void limit_file_size(void *bytes)
{
    struct rlimit lim = {*(rlim_t *)bytes, *(rlim_t *)bytes};
    signal(SIGXFSZ, SIG_DFL);
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
        _exit(99);
}

/* Item 6: convert past a file-size limit fails with the cause and removes
 * its partial file (it is not killed by SIGXFSZ). */
START_TEST(test_trace_convert_past_a_file_size_limit_fails_cleanly)
{
    size_t cap = 1 << 20, used = 0;
    char *text = sim_xmalloc(cap);
    used += (size_t)snprintf(text, cap, "arrival_s,input_tokens,output_tokens\n");
    for (int i = 0; i < 20000; i++)
        used += (size_t)snprintf(text + used, cap - used, "%d.5,%d,%d\n", i, 100 + i % 50, 7);
    char *in = write_file("big.csv", text);
    free(text);
    char out_path[700], partial[800], errbuf[4096];
    snprintf(out_path, sizeof out_path, "%s/conv.jsonl", tmp_dir);
    snprintf(partial, sizeof partial, "%s.partial", out_path);
    tu_cli_call c = {{"servesim", "trace", "convert", in, out_path, NULL}};
    rlim_t limit = 32 * 1024;
    int status = tu_cli_child(&c, limit_file_size, &limit, errbuf, sizeof errbuf);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %#x: %s", status,
                  errbuf);
    CK_CONTAINS(errbuf, "File too large");
    ck_assert_int_ne(access(partial, F_OK), 0);
    ck_assert_int_ne(access(out_path, F_OK), 0);
    free(in);
}
END_TEST

Suite *traces_suite(void)
{
    Suite *s = suite_create("traces");
    TCase *readers = tcase_create("readers");
    tcase_add_checked_fixture(readers, setup_dir, remove_dir);
    tcase_add_test(readers, test_azure_2023_times_are_ns_from_the_first_row);
    tcase_add_test(readers, test_azure_2024_timestamps_with_zone_and_optional_fraction);
    tcase_add_loop_test(readers, test_malformed_row_names_file_line_column_and_text, 0,
                        N_BAD_ROWS);
    tcase_add_test(readers, test_datetime_checks_the_days_of_each_month);
    tcase_add_test(readers, test_skip_bad_skips_and_counts_malformed_rows);
    tcase_add_test(readers, test_empty_binary_unknown_and_missing_files_have_clear_messages);
    tcase_add_test(readers, test_trace_config_keys_are_checked);
    tcase_add_test(readers, test_rate_scale_divides_gaps);
    tcase_add_test(readers, test_window_selects_rows_and_restarts_the_clock);
    tcase_add_test(readers, test_max_requests_and_token_caps_truncate_or_drop);
    tcase_add_test(readers, test_context_policy_truncates_or_drops_and_counts);
    tcase_add_test(readers, test_mooncake_keeps_the_block_hash_chain);
    tcase_add_test(readers, test_lines_longer_than_the_read_buffer);
    tcase_add_test(readers, test_spread_evens_out_rounded_timestamps);
    tcase_add_test(readers, test_burstgpt_skips_failures_and_filters);
    tcase_add_test(readers, test_burstgpt_filters_keep_the_file_time_origin);
    tcase_add_test(readers, test_burstgpt_filters_ignore_spaces_around_the_cell);
    tcase_add_test(readers, test_lengths_take_an_arrival_process);
    tcase_add_test(readers, test_native_csv_and_jsonl_carry_every_attribute);
    tcase_add_test(readers, test_native_source_reads_a_byte_order_mark_and_stdin);
    tcase_add_test(readers, test_trace_rows_reach_the_serving_core);
    tcase_add_test(readers, test_trace_stats_prints_rows_rate_and_percentiles);
    tcase_add_test(readers, test_trace_convert_round_trips_through_native);
    tcase_add_test(readers, test_trace_convert_refuses_a_file_without_times);
    tcase_add_test(readers, test_trace_convert_refuses_to_overwrite_its_input);
    tcase_add_test(readers, test_trace_convert_error_keeps_an_existing_output);
    tcase_add_test(readers, test_trace_without_a_row_is_fatal_for_stats_and_convert);
    tcase_add_test(readers, test_trace_that_is_a_folder_says_so);
    tcase_add_test(readers, test_trace_convert_output_name_and_kind_are_checked);
    tcase_add_test(readers, test_trace_convert_past_a_file_size_limit_fails_cleanly);
    suite_add_tcase(s, readers);

    TCase *gen = tcase_create("generators");
    tcase_add_checked_fixture(gen, setup_dir, remove_dir);
    tcase_set_timeout(gen, 60);
    tcase_add_test(gen, test_gamma_arrivals_have_the_asked_cv);
    tcase_add_test(gen, test_zipf_and_uniform_lengths_follow_their_laws);
    tcase_add_test(gen, test_empirical_lengths_draw_with_file_frequencies);
    tcase_add_test(gen, test_piecewise_and_diurnal_rates);
    tcase_add_test(gen, test_closed_loop_source_waits_for_completions);
    tcase_add_loop_test(gen, test_closed_loop_concurrency_never_exceeds_clients, 0, 2);
    suite_add_tcase(s, gen);

    TCase *real = tcase_create("real_traces");
    tcase_set_timeout(real, 120);
    tcase_add_loop_test(real, test_real_trace_statistics_match_the_readme, 0, N_REAL);
    tcase_add_test(real, test_real_traces_replay_through_their_sources);
    tcase_add_test(real, test_azure_conv_experiment_runs);
    suite_add_tcase(s, real);
    return s;
}
