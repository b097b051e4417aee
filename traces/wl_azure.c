/* Azure LLM inference traces, 2023 and 2024 editions (source "azure",
 * format "azure"): CSV with the header TIMESTAMP,ContextTokens,
 * GeneratedTokens (columns found by name, in any order). Timestamps are
 * wall-clock strings, with 7 fractional digits in 2023
 * ("2023-11-16 18:15:46.6805900") and with a "+00:00" suffix and an
 * optional fraction in 2024 ("2024-05-12 00:00:00.001163+00:00"); both are
 * parsed by hand into ns (trace_parse_datetime), since the 27-million-row
 * week-long traces make the parser the bottleneck. */
#include <string.h>

#include "traces/trace_source.h"

enum { AZ_TIME, AZ_CONTEXT, AZ_GENERATED, AZ_COLUMNS };
static const char *const azure_names[] = {"TIMESTAMP", "ContextTokens", "GeneratedTokens",
                                          NULL};

typedef struct azure_state {
    int col[AZ_COLUMNS];
    int n_columns;
} azure_state;

static bool azure_sniff(const char *line, size_t len)
{
    return trace_line_has(line, len, "ContextTokens") &&
           trace_line_has(line, len, "GeneratedTokens");
}

static int azure_header(trace_reader *r, char *line, size_t len, sim_err *err)
{
    azure_state *st = trace_reader_state(r);
    st->n_columns = trace_csv_header(line, len, azure_names, st->col, false, err);
    if (st->n_columns < 0)
        return -1;
    for (int k = 0; k < AZ_COLUMNS; k++)
        if (st->col[k] < 0)
            return sim_errf(err, "header: expected the columns TIMESTAMP, ContextTokens, "
                            "GeneratedTokens; %s is missing", azure_names[k]);
    return 1;
}

static int azure_row(trace_reader *r, char *line, size_t len, trace_row *out, sim_err *err)
{
    const azure_state *st = trace_reader_state(r);
    trace_span f[TRACE_MAX_FIELDS + 1];
    int n = trace_csv_split(line, len, f);
    if (n != st->n_columns)
        return sim_errf(err, "expected %d columns, got %d", st->n_columns, n);
    if (trace_parse_datetime(f[st->col[AZ_TIME]], &out->t_ns))
        return trace_field_error(err, "TIMESTAMP", "a time like 2023-11-16 18:15:46.6805900",
                                 f[st->col[AZ_TIME]]);
    if (trace_parse_tokens(f[st->col[AZ_CONTEXT]], "ContextTokens", &out->input_tokens, err) ||
        trace_parse_tokens(f[st->col[AZ_GENERATED]], "GeneratedTokens", &out->output_tokens,
                           err))
        return -1;
    return 1;
}

const trace_format trace_fmt_azure = {
    .name = "azure",
    .what = "Azure LLM inference CSV (2023, 2024): TIMESTAMP,ContextTokens,GeneratedTokens",
    .timed = true,
    .time_column = "TIMESTAMP",
    .state_size = sizeof(azure_state),
    .sniff = azure_sniff,
    .header = azure_header,
    .row = azure_row,
};

static int azure_init(const wl_setup *setup, cJSON *params, const char *path, void **state,
                      sim_err *err)
{
    return trace_src_init(setup, params, path, "azure", NULL, state, err);
}

const wl_source_ops wl_azure = {
    .name = "azure",
    .init = azure_init,
    .next = trace_src_next,
    .destroy = trace_src_destroy,
    .on_complete = trace_src_complete,
    .counts = trace_src_counts,
};
