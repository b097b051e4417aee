/* Streaming trace readers: one row at a time from a text file, in memory
 * that does not grow with the file (a fixed read buffer that grows only for
 * a longer line, up to TRACE_MAX_LINE_BYTES, and per-row scratch for prefix
 * block ids).
 *
 * A trace format is an ops struct (trace_format) that recognises its first
 * line, reads its header and parses one data line; one format per
 * traces/wl_<name>.c file, next to the workload source that replays it, and
 * one line in the table in trace_read.c. The reader does everything the
 * formats share: buffering, line numbers, binary-data detection, turning
 * times into nanoseconds from the first row, rejecting time that goes back,
 * and the error convention:
 *
 *     trace.csv:1042: column GeneratedTokens: expected an integer in
 *     [0, 10000000], got "-3"
 *
 * With skip_bad a malformed row is counted and skipped instead (the first
 * such message is kept for the report). Binary data and a bad header stop
 * the reader either way. */
#ifndef TRACES_TRACE_READ_H
#define TRACES_TRACE_READ_H

#include <stdbool.h>
#include <stdio.h>
#include "sim/base.h"

#define TRACE_MAX_TOKENS 10000000           /* larger token counts are errors */
#define TRACE_MAX_LINE_BYTES (64u << 20)    /* longer lines are errors */
#define TRACE_MAX_FIELDS 32                 /* CSV columns, JSON keys per row */

/* One row as read. Times are ns after the first row of the file (0 for
 * formats without times); lengths are as in the file (>= 0). */
typedef struct trace_row {
    sim_time_ns t_ns;
    int32_t input_tokens;
    int32_t output_tokens;
    int32_t priority, slo_class, tenant;
    sim_time_ns ttft_slo_ns;            /* 0: none */
    const uint64_t *prefix_blocks;      /* reader-owned, valid until the next row */
    int32_t n_prefix_blocks;
    int32_t prefix_block_tokens;
    /* Speculative decoding (native columns spec_alpha, spec_accepted): the
     * request's acceptance rate, and its recorded accepted drafts per
     * verification step (reader-owned, valid until the next row). */
    bool spec_alpha_set;
    double spec_alpha;
    const uint8_t *spec_accepted;
    int32_t n_spec_accepted;
    bool failed;                        /* a failed request (BurstGPT: no response) */
    uint64_t call_group;                /* multi-call group (0: none) */
    /* A streamed prompt (Stream2LLM): n_chunks parts of the prompt, the k-th
     * arriving chunk_offset_ns[k] after the request (the first at 0), of
     * chunk_tokens[k] tokens; reader-owned, valid until the next row. 0:
     * the prompt arrives whole. */
    const int32_t *chunk_tokens;
    const sim_time_ns *chunk_offset_ns;
    const int32_t *chunk_keep;          /* -1: an append; k: an update keeping k */
    int32_t n_chunks;
    sim_time_ns deadline_ns;            /* end-to-end deadline after arrival; 0: none */
    uint64_t line;                      /* line number in the file, from 1 */
} trace_row;

typedef struct trace_reader trace_reader;

/* A piece of a line (not NUL-terminated). */
typedef struct trace_span {
    const char *p;
    size_t len;
} trace_span;

typedef struct trace_format {
    const char *name;
    const char *what;            /* one line for listings */
    bool timed;                  /* rows carry arrival times */
    const char *time_column;     /* named when time goes back */
    size_t state_size;           /* private state, zeroed; trace_reader_state */
    /* Whether the first line of a file looks like this format. */
    bool (*sniff)(const char *line, size_t len);
    /* Gets the first non-blank line. 1: it was a header (consumed); 0: it is
     * data (passed to row next); -1: error (message without file:line). */
    int (*header)(trace_reader *r, char *line, size_t len, sim_err *err);
    /* One data line, NUL-terminated at len, which the parser may modify.
     * 1: *out filled, t_ns absolute in any origin; 0: the row is left out by
     * a filter (counted), with t_ns still set in a timed format, since times
     * count from the file's first row, kept or not; -1: malformed (message
     * without file:line). */
    int (*row)(trace_reader *r, char *line, size_t len, trace_row *out, sim_err *err);
} trace_format;

extern const trace_format *const trace_formats[];   /* NULL-terminated */

/* The format called `name`; the message lists the valid names. */
const trace_format *trace_format_find(const char *name, const char *path, sim_err *err);

/* ---- reading ---------------------------------------------------------- */

/* Opens `path` ("-": standard input) and reads its header. format: a format
 * name, or NULL or "auto" to recognise it from the first line. */
trace_reader *trace_reader_open(const char *path, const char *format, bool skip_bad,
                                sim_err *err);
/* The same on an open stream, which the reader takes (and closes); `name`
 * is what messages call it. */
trace_reader *trace_reader_open_stream(FILE *f, const char *name, const char *format,
                                       bool skip_bad, sim_err *err);
/* For a source that reads a family of formats: returns the name of the
 * format of a file whose first non-blank line (byte order mark removed) is
 * line[0, len). */
typedef const char *trace_format_pick(const char *line, size_t len);
/* trace_reader_open with the format chosen by `pick`. */
trace_reader *trace_reader_open_pick(const char *path, trace_format_pick *pick,
                                     bool skip_bad, sim_err *err);
/* 1: *out is the next row; 0: end of file; -1: error in err. */
int trace_reader_next(trace_reader *r, trace_row *out, sim_err *err);
/* Back to the first data row (times restart from 0). Not for pipes. */
int trace_reader_rewind(trace_reader *r, sim_err *err);
void trace_reader_close(trace_reader *r);   /* NULL is a no-op */

const trace_format *trace_reader_format(const trace_reader *r);
const char *trace_reader_name(const trace_reader *r);
void *trace_reader_state(trace_reader *r);  /* the format's private state */

typedef struct trace_read_counts {
    uint64_t rows;           /* rows returned */
    uint64_t bad_skipped;    /* malformed rows skipped (skip_bad) */
    uint64_t filtered;       /* rows a format's filter left out */
    const char *first_bad;   /* message of the first skipped row, or "" */
} trace_read_counts;
void trace_reader_counts(const trace_reader *r, trace_read_counts *out);

/* ---- helpers for formats ---------------------------------------------- */

/* Splits a CSV line in place into fields (quoted fields unquoted, "" is a
 * quote). Returns the number of fields, or TRACE_MAX_FIELDS + 1 if more. */
int trace_csv_split(char *line, size_t len, trace_span *fields);
/* Maps a CSV header to column indexes: index[i] is the column whose name is
 * names[i] (case-insensitive, spaces trimmed), or -1. Returns the number of
 * columns, -1 when over TRACE_MAX_FIELDS (message in err). If `strict`, a
 * column not in names is an error. */
int trace_csv_header(char *line, size_t len, const char *const *names, int *index,
                     bool strict, sim_err *err);
/* The column name list "a, b, c" for messages. */
void trace_names_list(const char *const *names, char *buf, size_t size);

/* s without the white space around it. */
trace_span trace_trim(trace_span s);

/* Parsers: 0 on success, -1 if the text is not what is asked. */
int trace_parse_int(trace_span s, int64_t min, int64_t max, int64_t *out);
/* A decimal number times `scale` as an integer, exactly for up to 9
 * fractional digits ("1.5" with scale 1e9 is 1500000000); an exponent is
 * accepted (through strtod). */
int trace_parse_scaled(trace_span s, int64_t scale, int64_t min, int64_t max,
                       int64_t *out);
/* "YYYY-MM-DD HH:MM:SS[.fffffffff][Z|+HH:MM|-HH:MM]" (or 'T' between date
 * and time) as ns since 1970-01-01 UTC. */
int trace_parse_datetime(trace_span s, int64_t *out_ns);
/* Ids separated by `sep` (JSON arrays: "[1, 2]" with sep ','; CSV: "1 2"
 * with sep ' '), into the reader's scratch. */
int trace_parse_ids(trace_reader *r, trace_span s, bool json_array,
                    const uint64_t **ids, int32_t *n);

/* A token count in [0, TRACE_MAX_TOKENS]; else the message for `column`. */
int trace_parse_tokens(trace_span s, const char *column, int32_t *out, sim_err *err);
/* Whether `text` occurs in the line (for sniffing). */
bool trace_line_has(const char *line, size_t len, const char *text);

/* Writes "column NAME: expected WHAT, got "TEXT"" and returns -1. */
int trace_field_error(sim_err *err, const char *column, const char *expected,
                      trace_span got);
/* Text for messages: escaped (non-printable bytes as \xNN), cut at 48. */
void trace_quote(trace_span s, char *buf, size_t size);

/* One member of a one-line JSON object. type: 'n' number, 's' string (span
 * without the quotes, escapes left as written), '[' array, '{' object,
 * 'l' true/false/null. */
typedef struct trace_json_member {
    trace_span key;
    trace_span value;
    char type;
} trace_json_member;
/* Parses a one-line JSON object's members (nested values are skipped over,
 * not parsed). Returns the count or -1 (message in err). Duplicate keys are
 * errors. */
int trace_json_object(const char *line, size_t len, trace_json_member *m, sim_err *err);
bool trace_span_eq(trace_span s, const char *text);
/* The member called key, or NULL. */
const trace_json_member *trace_json_find(const trace_json_member *m, int n, const char *key);

#endif
