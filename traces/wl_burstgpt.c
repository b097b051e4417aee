/* BurstGPT traces (source "burstgpt", format "burstgpt"): CSV with the
 * header Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type
 * (columns found by name; Model and Log Type optional). Timestamp is in
 * seconds from the start. A row with zero response tokens is a failed
 * request: skipped and counted by default ("failures": "keep" replays it
 * with one output token). The source's own keys "model" and "log_type"
 * keep only the rows whose Model (e.g. "ChatGPT", "GPT-4") or Log Type
 * (e.g. "Conversation log", "API log") match exactly, spaces around the
 * cell aside; "" keeps all. A row left out still gives its Timestamp to the
 * reader (times count from the file's first row), but its token counts are
 * not read, so a malformed row of another model does not stop the run. */
#include <string.h>

#include "sim/jsoncfg.h"
#include "traces/trace_source.h"

enum { BG_TIME, BG_REQUEST, BG_RESPONSE, BG_MODEL, BG_LOG_TYPE, BG_COLUMNS };
static const char *const burstgpt_names[] = {"Timestamp", "Request tokens", "Response tokens",
                                             "Model", "Log Type", NULL};

typedef struct burstgpt_state {
    int col[BG_COLUMNS];
    int n_columns;
    char model[128], log_type[128];   /* filters; "" keeps all */
} burstgpt_state;

static bool burstgpt_sniff(const char *line, size_t len)
{
    return trace_line_has(line, len, "Request tokens") &&
           trace_line_has(line, len, "Response tokens");
}

static int burstgpt_header(trace_reader *r, char *line, size_t len, sim_err *err)
{
    burstgpt_state *st = trace_reader_state(r);
    st->n_columns = trace_csv_header(line, len, burstgpt_names, st->col, false, err);
    if (st->n_columns < 0)
        return -1;
    for (int k = BG_TIME; k <= BG_RESPONSE; k++)
        if (st->col[k] < 0)
            return sim_errf(err, "header: expected the columns Timestamp, Request tokens, "
                            "Response tokens; %s is missing", burstgpt_names[k]);
    return 1;
}

static bool keeps(const char *filter, int col, const trace_span *f)
{
    return !filter[0] || (col >= 0 && trace_span_eq(trace_trim(f[col]), filter));
}

static int burstgpt_row(trace_reader *r, char *line, size_t len, trace_row *out,
                        sim_err *err)
{
    const burstgpt_state *st = trace_reader_state(r);
    trace_span f[TRACE_MAX_FIELDS + 1];
    int n = trace_csv_split(line, len, f);
    if (n != st->n_columns)
        return sim_errf(err, "expected %d columns, got %d", st->n_columns, n);
    if (trace_parse_scaled(f[st->col[BG_TIME]], SIM_NS_PER_S, 0, INT64_MAX / 4, &out->t_ns))
        return trace_field_error(err, "Timestamp", "seconds >= 0", f[st->col[BG_TIME]]);
    if (!keeps(st->model, st->col[BG_MODEL], f) || !keeps(st->log_type, st->col[BG_LOG_TYPE], f))
        return 0;
    if (trace_parse_tokens(f[st->col[BG_REQUEST]], "Request tokens", &out->input_tokens,
                           err) ||
        trace_parse_tokens(f[st->col[BG_RESPONSE]], "Response tokens", &out->output_tokens,
                           err))
        return -1;
    out->failed = out->output_tokens == 0;
    return 1;
}

const trace_format trace_fmt_burstgpt = {
    .name = "burstgpt",
    .what = "BurstGPT CSV: Timestamp (s), Model, Request tokens, Response tokens, ...",
    .timed = true,
    .time_column = "Timestamp",
    .state_size = sizeof(burstgpt_state),
    .sniff = burstgpt_sniff,
    .header = burstgpt_header,
    .row = burstgpt_row,
};

static int set_filter(cJSON *params, const char *path, const char *key, char *dst,
                      size_t size, int col, sim_err *err)
{
    const char *v;
    if (jcfg_str(params, path, key, "", &v, err))
        return -1;
    if (strlen(v) >= size)
        return sim_errf(err, "%s.%s: expected at most %zu characters", path, key, size - 1);
    if (v[0] && col < 0)
        return sim_errf(err, "%s.%s: the trace has no such column", path, key);
    strcpy(dst, v);
    return 0;
}

static int burstgpt_init(const wl_setup *setup, cJSON *params, const char *path,
                         void **state, sim_err *err)
{
    static const char *const keys[] = {"model", "log_type", NULL};
    if (trace_src_init(setup, params, path, "burstgpt", keys, state, err))
        return -1;
    burstgpt_state *st = trace_reader_state(trace_src_reader(*state));
    if (set_filter(params, path, "model", st->model, sizeof st->model, st->col[BG_MODEL],
                   err) ||
        set_filter(params, path, "log_type", st->log_type, sizeof st->log_type,
                   st->col[BG_LOG_TYPE], err)) {
        trace_src_destroy(*state);
        return -1;
    }
    return 0;
}

const wl_source_ops wl_burstgpt = {
    .name = "burstgpt",
    .init = burstgpt_init,
    .next = trace_src_next,
    .destroy = trace_src_destroy,
    .on_complete = trace_src_complete,
    .counts = trace_src_counts,
};
