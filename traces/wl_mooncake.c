/* Mooncake (Kimi) traces (source "mooncake", format "mooncake"): JSONL, one
 * object per line with "timestamp" (ms from the start), "input_length",
 * "output_length" and "hash_ids", the chained ids of the prompt's 512-token
 * blocks (equal ids at position i mean equal prompts up to the end of block
 * i). The ids are kept as the request's prefix blocks. Other keys are
 * ignored. The conversation trace's timestamps are rounded to about 3 s:
 * replay it with "spread_ms": 3000 (trace_source.h) or arrivals come in
 * bursts that were never there. */
#include <string.h>

#include "traces/trace_source.h"

#define MOONCAKE_BLOCK_TOKENS 512

static bool mooncake_sniff(const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    return i < len && line[i] == '{' && trace_line_has(line, len, "\"input_length\"");
}

static int mooncake_header(trace_reader *r, char *line, size_t len, sim_err *err)
{
    (void)r, (void)line, (void)len, (void)err;
    return 0;   /* no header: the first line is data */
}

/* The member `key` as a number, or the message. */
static const trace_json_member *number(const trace_json_member *m, int n, const char *key,
                                       const char *expected, sim_err *err)
{
    const trace_json_member *v = trace_json_find(m, n, key);
    if (!v)
        sim_errf(err, "column %s: missing", key);
    else if (v->type != 'n') {
        trace_field_error(err, key, expected, v->value);
        return NULL;
    }
    return v;
}

static int mooncake_row(trace_reader *r, char *line, size_t len, trace_row *out,
                        sim_err *err)
{
    trace_json_member m[TRACE_MAX_FIELDS];
    int n = trace_json_object(line, len, m, err);
    if (n < 0)
        return -1;
    const trace_json_member *t = number(m, n, "timestamp", "milliseconds >= 0", err);
    if (!t)
        return -1;
    if (trace_parse_scaled(t->value, SIM_NS_PER_MS, 0, INT64_MAX / 4, &out->t_ns))
        return trace_field_error(err, "timestamp", "milliseconds >= 0", t->value);
    const trace_json_member *in = number(m, n, "input_length", "an integer", err);
    if (!in || trace_parse_tokens(in->value, "input_length", &out->input_tokens, err))
        return -1;
    const trace_json_member *o = number(m, n, "output_length", "an integer", err);
    if (!o || trace_parse_tokens(o->value, "output_length", &out->output_tokens, err))
        return -1;
    const trace_json_member *h = trace_json_find(m, n, "hash_ids");
    if (h) {
        if (h->type != '[' ||
            trace_parse_ids(r, h->value, true, &out->prefix_blocks, &out->n_prefix_blocks))
            return trace_field_error(err, "hash_ids", "an array of integers >= 0", h->value);
        int64_t most = ((int64_t)out->input_tokens + MOONCAKE_BLOCK_TOKENS - 1) /
                       MOONCAKE_BLOCK_TOKENS;
        if (out->n_prefix_blocks > most)
            return sim_errf(err, "column hash_ids: expected at most %lld ids (one per %d "
                            "input tokens), got %d", (long long)most, MOONCAKE_BLOCK_TOKENS,
                            out->n_prefix_blocks);
        out->prefix_block_tokens = out->n_prefix_blocks ? MOONCAKE_BLOCK_TOKENS : 0;
    }
    return 1;
}

const trace_format trace_fmt_mooncake = {
    .name = "mooncake",
    .what = "Mooncake JSONL: timestamp (ms), input_length, output_length, hash_ids",
    .timed = true,
    .time_column = "timestamp",
    .sniff = mooncake_sniff,
    .header = mooncake_header,
    .row = mooncake_row,
};

static int mooncake_init(const wl_setup *setup, cJSON *params, const char *path,
                         void **state, sim_err *err)
{
    return trace_src_init(setup, params, path, "mooncake", NULL, state, err);
}

const wl_source_ops wl_mooncake = {
    .name = "mooncake",
    .init = mooncake_init,
    .next = trace_src_next,
    .destroy = trace_src_destroy,
    .on_complete = trace_src_complete,
    .counts = trace_src_counts,
};
