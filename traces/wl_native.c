/* servesim's native trace format (source "native"; formats "native_csv" and
 * "native_jsonl"), the one every other trace converts to. Each row is a
 * request: arrival_s (seconds, decimal, exact to the ns), input_tokens and
 * output_tokens, and optionally priority, slo_class, tenant, ttft_slo_ms
 * (this request's TTFT target), prefix_block_tokens and prefix_blocks
 * (chained prefix block ids; space-separated in CSV, an array in JSONL),
 * group (a multi-call request group's id, 0: none) and deadline_ms (its
 * end-to-end deadline after its arrival, 0: none; JITServe), and chunks (a
 * streamed prompt, Stream2LLM: "offset_ms:tokens" appends or
 * "offset_ms:tokens@keep" updates (the context becomes its first keep
 * tokens and tokens new ones) separated by spaces, a string in JSONL; the
 * prompt they leave should be input_tokens long: the serving side cuts or
 * extends the last chunk to match), spec_alpha (the request's
 * speculative-decoding acceptance rate) and spec_accepted (its recorded
 * accepted drafts per verification step, a list like prefix_blocks;
 * serve/spec.h's acceptance models "request" and "trace"). Conversion to
 * native (trace convert) writes none of these: other formats have none.
 * CSV: a header naming the columns, in any order; an empty optional cell is
 * the default. JSONL: one object per line with those keys. Unknown columns
 * and keys are errors: the format is ours, so a typo should not pass. The
 * source picks CSV or JSONL from the first character of the file's first
 * line as the reader sees it (after a byte order mark; stdin too). */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traces/native.h"
#include "traces/trace_source.h"

#define NATIVE_DEFAULT_BLOCK_TOKENS 512

enum {
    NV_ARRIVAL,
    NV_INPUT,
    NV_OUTPUT,
    NV_PRIORITY,
    NV_SLO_CLASS,
    NV_TENANT,
    NV_TTFT,
    NV_BLOCK_TOKENS,
    NV_GROUP,
    NV_DEADLINE,
    NV_CHUNKS,
    NV_BLOCKS,
    NV_SPEC_ALPHA,
    NV_SPEC_ACCEPTED,
    NV_COLUMNS
};
static const char *const native_names[] = {
    "arrival_s", "input_tokens", "output_tokens", "priority", "slo_class", "tenant",
    "ttft_slo_ms", "prefix_block_tokens", "group", "deadline_ms", "chunks", "prefix_blocks",
    "spec_alpha", "spec_accepted", NULL};

#define NATIVE_MAX_CHUNKS 256
/* The most drafts one recorded step may accept, and the most steps a row
 * records (the reader's state holds them: formats have no destructor). */
#define NATIVE_MAX_ACCEPTED 255
#define NATIVE_MAX_STEPS 65536

typedef struct native_state {
    int col[NV_COLUMNS];
    int n_columns;
    int32_t chunk_tokens[NATIVE_MAX_CHUNKS];   /* the current row's chunks */
    int32_t chunk_keep[NATIVE_MAX_CHUNKS];
    sim_time_ns chunk_ns[NATIVE_MAX_CHUNKS];
    uint8_t accepted[NATIVE_MAX_STEPS];   /* the row's spec_accepted */
} native_state;

/* spec_accepted: at most NATIVE_MAX_STEPS integers in [0, 255], separated
 * by white space (CSV) or a JSON array; into st->accepted. */
static int parse_accepted(native_state *st, trace_span s, bool json, const uint8_t **out,
                          int32_t *n)
{
    size_t i = 0, end = s.len;
    while (i < end && isspace((unsigned char)s.p[i]))
        i++;
    while (end > i && isspace((unsigned char)s.p[end - 1]))
        end--;
    if (json) {
        if (end - i < 2 || s.p[i] != '[' || s.p[end - 1] != ']')
            return -1;
        i++, end--;
    }
    int32_t count = 0;
    bool need_value = false;   /* after a comma */
    for (;;) {
        while (i < end && isspace((unsigned char)s.p[i]))
            i++;
        if (i == end) {
            if (need_value)
                return -1;
            break;
        }
        unsigned v = 0;
        size_t first = i;
        for (; i < end && (unsigned)(s.p[i] - '0') <= 9; i++)
            if ((v = v * 10 + (unsigned)(s.p[i] - '0')) > NATIVE_MAX_ACCEPTED)
                return -1;
        if (i == first)
            return -1;
        if (count == NATIVE_MAX_STEPS)
            return -1;
        st->accepted[count++] = (uint8_t)v;
        while (i < end && isspace((unsigned char)s.p[i]))
            i++;
        need_value = false;
        if (json && i < end) {
            if (s.p[i] != ',')
                return -1;
            i++;
            need_value = true;
        }
    }
    *out = count ? st->accepted : NULL;
    *n = count;
    return 0;
}


/* A streamed prompt's chunks: "offset_ms:tokens" (an append) or
 * "offset_ms:tokens@keep" (an update: the context becomes its first keep
 * tokens and tokens new ones) separated by white space, offsets from 0 and
 * never going back, tokens >= 1; the first an append. */
static int native_chunks(trace_reader *r, trace_span v, trace_row *out)
{
    native_state *st = trace_reader_state(r);
    int32_t n = 0;
    size_t i = 0;
    for (;;) {
        while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t'))
            i++;
        if (i == v.len)
            break;
        size_t start = i, colon = 0, atsign = 0;
        while (i < v.len && v.p[i] != ' ' && v.p[i] != '\t') {
            if (v.p[i] == ':' && !colon)
                colon = i;
            if (v.p[i] == '@' && colon && !atsign)
                atsign = i;
            i++;
        }
        size_t tok_end = atsign ? atsign : i;
        int64_t at, tokens, keep = -1;
        if (!colon || n == NATIVE_MAX_CHUNKS ||
            trace_parse_scaled((trace_span){v.p + start, colon - start}, SIM_NS_PER_MS, 0,
                               (int64_t)1e9 * SIM_NS_PER_MS, &at) ||
            trace_parse_int((trace_span){v.p + colon + 1, tok_end - colon - 1}, 1,
                            TRACE_MAX_TOKENS, &tokens) ||
            (atsign && trace_parse_int((trace_span){v.p + atsign + 1, i - atsign - 1}, 0,
                                       TRACE_MAX_TOKENS, &keep)) ||
            (n == 0 && (at != 0 || keep >= 0)) || (n > 0 && at < st->chunk_ns[n - 1]))
            return -1;
        st->chunk_ns[n] = at;
        st->chunk_keep[n] = (int32_t)keep;
        st->chunk_tokens[n++] = (int32_t)tokens;
    }
    if (n == 0)
        return -1;
    out->chunk_tokens = st->chunk_tokens;
    out->chunk_offset_ns = st->chunk_ns;
    out->chunk_keep = st->chunk_keep;
    out->n_chunks = n;
    return 0;
}

/* Parses column k's value into out; json: the value's JSON type, or 0 for
 * a CSV cell. */
static int native_field(trace_reader *r, int k, trace_span v, char json, trace_row *out,
                        sim_err *err)
{
    const char *name = native_names[k];
    int64_t x;
    if (json && k != NV_BLOCKS && k != NV_CHUNKS && k != NV_SPEC_ACCEPTED && json != 'n')
        return trace_field_error(err, name, "a number", v);
    switch (k) {
    case NV_ARRIVAL:
        if (trace_parse_scaled(v, SIM_NS_PER_S, 0, INT64_MAX / 4, &out->t_ns))
            return trace_field_error(err, name, "seconds >= 0", v);
        return 0;
    case NV_INPUT:
        return trace_parse_tokens(v, name, &out->input_tokens, err);
    case NV_OUTPUT:
        return trace_parse_tokens(v, name, &out->output_tokens, err);
    case NV_PRIORITY:
        if (trace_parse_int(v, INT32_MIN, INT32_MAX, &x))
            return trace_field_error(err, name, "a 32-bit integer", v);
        out->priority = (int32_t)x;
        return 0;
    case NV_SLO_CLASS:
        if (trace_parse_int(v, 0, 65535, &x))
            return trace_field_error(err, name, "an integer in [0, 65535]", v);
        out->slo_class = (int32_t)x;
        return 0;
    case NV_TENANT:
        if (trace_parse_int(v, 0, INT32_MAX, &x))
            return trace_field_error(err, name, "an integer >= 0", v);
        out->tenant = (int32_t)x;
        return 0;
    case NV_TTFT:
        if (trace_parse_scaled(v, SIM_NS_PER_MS, 0, (int64_t)1e9 * SIM_NS_PER_MS, &x))
            return trace_field_error(err, name, "milliseconds >= 0", v);
        out->ttft_slo_ns = x;
        return 0;
    case NV_BLOCK_TOKENS:
        if (trace_parse_int(v, 1, 1 << 20, &x))
            return trace_field_error(err, name, "an integer in [1, 1048576]", v);
        out->prefix_block_tokens = (int32_t)x;
        return 0;
    case NV_GROUP:
        if (trace_parse_int(v, 0, INT64_MAX, &x))
            return trace_field_error(err, name, "an integer >= 0", v);
        out->call_group = (uint64_t)x;
        return 0;
    case NV_CHUNKS:
        if ((json && json != 's') || native_chunks(r, v, out))
            return trace_field_error(err, name,
                                     "\"offset_ms:tokens[@keep] ...\" (offsets from 0, never "
                                     "going back; tokens >= 1; at most 256 chunks; the first "
                                     "no update)", v);
        return 0;
    case NV_DEADLINE:
        if (trace_parse_scaled(v, SIM_NS_PER_MS, 0, (int64_t)1e9 * SIM_NS_PER_MS, &x))
            return trace_field_error(err, name, "milliseconds >= 0", v);
        out->deadline_ns = x;
        return 0;
    case NV_SPEC_ALPHA:   /* exact to 9 decimals, like arrival_s */
        if (trace_parse_scaled(v, 1000000000, 0, 1000000000, &x))
            return trace_field_error(err, name, "a rate in [0, 1]", v);
        out->spec_alpha = (double)x / 1e9;
        out->spec_alpha_set = true;
        return 0;
    case NV_SPEC_ACCEPTED:
        if ((json && json != '[') ||
            parse_accepted(trace_reader_state(r), v, json != 0, &out->spec_accepted,
                           &out->n_spec_accepted))
            return trace_field_error(err, name,
                                     json ? "an array of at most 65536 integers in [0, 255]"
                                          : "at most 65536 integers in [0, 255] separated "
                                            "by spaces",
                                     v);
        return 0;
    default:
        if ((json && json != '[') ||
            trace_parse_ids(r, v, json != 0, &out->prefix_blocks, &out->n_prefix_blocks))
            return trace_field_error(err, name,
                                     json ? "an array of integers >= 0"
                                          : "integers >= 0 separated by spaces",
                                     v);
        return 0;
    }
}

static int native_finish(trace_row *out)
{
    if (out->n_prefix_blocks && !out->prefix_block_tokens)
        out->prefix_block_tokens = NATIVE_DEFAULT_BLOCK_TOKENS;
    if (!out->n_prefix_blocks)
        out->prefix_block_tokens = 0;
    return 1;
}

/* ---- CSV ---------------------------------------------------------------- */

static bool native_csv_sniff(const char *line, size_t len)
{
    return len >= 9 && !memcmp(line, "arrival_s", 9);
}

static int native_csv_header(trace_reader *r, char *line, size_t len, sim_err *err)
{
    native_state *st = trace_reader_state(r);
    st->n_columns = trace_csv_header(line, len, native_names, st->col, true, err);
    if (st->n_columns < 0)
        return -1;
    for (int k = NV_ARRIVAL; k <= NV_OUTPUT; k++)
        if (st->col[k] < 0)
            return sim_errf(err, "header: expected the columns arrival_s, input_tokens, "
                            "output_tokens (then any of priority, slo_class, tenant, "
                            "ttft_slo_ms, prefix_block_tokens, group, deadline_ms, "
                            "chunks, prefix_blocks, spec_alpha, spec_accepted); %s is missing",
                            native_names[k]);
    return 1;
}

static int native_csv_row(trace_reader *r, char *line, size_t len, trace_row *out,
                          sim_err *err)
{
    const native_state *st = trace_reader_state(r);
    trace_span f[TRACE_MAX_FIELDS + 1];
    int n = trace_csv_split(line, len, f);
    if (n != st->n_columns)
        return sim_errf(err, "expected %d columns, got %d", st->n_columns, n);
    for (int k = 0; k < NV_COLUMNS; k++) {
        int c = st->col[k];
        if (c < 0 || (k > NV_OUTPUT && !f[c].len))
            continue;
        if (native_field(r, k, f[c], 0, out, err))
            return -1;
    }
    return native_finish(out);
}

const trace_format trace_fmt_native_csv = {
    .name = "native_csv",
    .what = "servesim native CSV: arrival_s,input_tokens,output_tokens[,...]",
    .timed = true,
    .time_column = "arrival_s",
    .state_size = sizeof(native_state),
    .sniff = native_csv_sniff,
    .header = native_csv_header,
    .row = native_csv_row,
};

/* ---- JSONL -------------------------------------------------------------- */

static bool native_jsonl_sniff(const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    return i < len && line[i] == '{' && trace_line_has(line, len, "\"input_tokens\"");
}

static int native_jsonl_header(trace_reader *r, char *line, size_t len, sim_err *err)
{
    (void)r, (void)line, (void)len, (void)err;
    return 0;
}

static int native_jsonl_row(trace_reader *r, char *line, size_t len, trace_row *out,
                            sim_err *err)
{
    trace_json_member m[TRACE_MAX_FIELDS];
    int n = trace_json_object(line, len, m, err);
    if (n < 0)
        return -1;
    bool seen[NV_COLUMNS] = {false};
    for (int i = 0; i < n; i++) {
        int k = 0;
        while (native_names[k] && !trace_span_eq(m[i].key, native_names[k]))
            k++;
        if (!native_names[k]) {
            char q[128], list[512];
            trace_quote(m[i].key, q, sizeof q);
            trace_names_list(native_names, list, sizeof list);
            return sim_errf(err, "unknown key \"%s\"; expected keys among: %s", q, list);
        }
        if (native_field(r, k, m[i].value, m[i].type, out, err))
            return -1;
        seen[k] = true;
    }
    for (int k = NV_ARRIVAL; k <= NV_OUTPUT; k++)
        if (!seen[k])
            return sim_errf(err, "column %s: missing", native_names[k]);
    return native_finish(out);
}

const trace_format trace_fmt_native_jsonl = {
    .name = "native_jsonl",
    .what = "servesim native JSONL: {\"arrival_s\", \"input_tokens\", \"output_tokens\", ...}",
    .timed = true,
    .time_column = "arrival_s",
    .state_size = sizeof(native_state),   /* its chunk and accepted-length buffers */
    .sniff = native_jsonl_sniff,
    .header = native_jsonl_header,
    .row = native_jsonl_row,
};

/* ---- writing ------------------------------------------------------------ */

void trace_native_write_header(FILE *f, bool jsonl)
{
    if (!jsonl)
        fputs("arrival_s,input_tokens,output_tokens,priority,slo_class,tenant,ttft_slo_ms,"
              "prefix_block_tokens,prefix_blocks\n", f);
}

void trace_native_write_row(FILE *f, bool jsonl, const trace_row *r)
{
    long long s = (long long)(r->t_ns / SIM_NS_PER_S), ns = (long long)(r->t_ns % SIM_NS_PER_S);
    long long ttft_ms = (long long)(r->ttft_slo_ns / SIM_NS_PER_MS);
    long long ttft_frac = (long long)(r->ttft_slo_ns % SIM_NS_PER_MS);
    if (!jsonl) {
        fprintf(f, "%lld.%09lld,%d,%d,%d,%d,%d,", s, ns, r->input_tokens, r->output_tokens,
                r->priority, r->slo_class, r->tenant);
        if (r->ttft_slo_ns)
            fprintf(f, "%lld.%06lld", ttft_ms, ttft_frac);
        fputc(',', f);
        if (r->n_prefix_blocks)
            fprintf(f, "%d", r->prefix_block_tokens);
        fputc(',', f);
        for (int32_t i = 0; i < r->n_prefix_blocks; i++)
            fprintf(f, "%s%" PRIu64, i ? " " : "", r->prefix_blocks[i]);
        fputc('\n', f);
        return;
    }
    fprintf(f, "{\"arrival_s\": %lld.%09lld, \"input_tokens\": %d, \"output_tokens\": %d", s,
            ns, r->input_tokens, r->output_tokens);
    if (r->priority)
        fprintf(f, ", \"priority\": %d", r->priority);
    if (r->slo_class)
        fprintf(f, ", \"slo_class\": %d", r->slo_class);
    if (r->tenant)
        fprintf(f, ", \"tenant\": %d", r->tenant);
    if (r->ttft_slo_ns)
        fprintf(f, ", \"ttft_slo_ms\": %lld.%06lld", ttft_ms, ttft_frac);
    if (r->n_prefix_blocks) {
        fprintf(f, ", \"prefix_block_tokens\": %d, \"prefix_blocks\": [", r->prefix_block_tokens);
        for (int32_t i = 0; i < r->n_prefix_blocks; i++)
            fprintf(f, "%s%" PRIu64, i ? ", " : "", r->prefix_blocks[i]);
        fputc(']', f);
    }
    fputs("}\n", f);
}

/* ---- the source ------------------------------------------------------------ */

/* "native_jsonl" if the first line's first non-blank character is '{'. */
static const char *native_pick(const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    return i < len && line[i] == '{' ? "native_jsonl" : "native_csv";
}

static int native_init(const wl_setup *setup, cJSON *params, const char *path, void **state,
                       sim_err *err)
{
    return trace_src_init_pick(setup, params, path, native_pick, NULL, state, err);
}

const wl_source_ops wl_native = {
    .name = "native",
    .init = native_init,
    .next = trace_src_next,
    .destroy = trace_src_destroy,
    .on_complete = trace_src_complete,
    .counts = trace_src_counts,
};
