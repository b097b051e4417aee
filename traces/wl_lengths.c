/* Length-only CSVs (source "lengths", format "lengths"): the request
 * lengths of a dataset without arrival times, as in the ShareGPT and arXiv
 * files of Vidur's traces (header num_prefill_tokens,num_decode_tokens,
 * num_total_tokens,pd_ratio; only the first two are read). Rows are
 * replayed in file order with arrivals from the "arrival" process (any of
 * gen.h's, closed loop included); "cycle": true reads the file again at its
 * end, up to max_requests. */
#include "traces/trace_source.h"

static const char *const lengths_names[] = {"num_prefill_tokens", "num_decode_tokens", NULL};

typedef struct lengths_state {
    int col[2];
    int n_columns;
} lengths_state;

static bool lengths_sniff(const char *line, size_t len)
{
    return trace_line_has(line, len, "num_prefill_tokens");
}

static int lengths_header(trace_reader *r, char *line, size_t len, sim_err *err)
{
    lengths_state *st = trace_reader_state(r);
    st->n_columns = trace_csv_header(line, len, lengths_names, st->col, false, err);
    if (st->n_columns < 0)
        return -1;
    if (st->col[0] < 0 || st->col[1] < 0)
        return sim_errf(err, "header: expected the columns num_prefill_tokens, "
                        "num_decode_tokens");
    return 1;
}

static int lengths_row(trace_reader *r, char *line, size_t len, trace_row *out, sim_err *err)
{
    const lengths_state *st = trace_reader_state(r);
    trace_span f[TRACE_MAX_FIELDS + 1];
    int n = trace_csv_split(line, len, f);
    if (n != st->n_columns)
        return sim_errf(err, "expected %d columns, got %d", st->n_columns, n);
    if (trace_parse_tokens(f[st->col[0]], "num_prefill_tokens", &out->input_tokens, err) ||
        trace_parse_tokens(f[st->col[1]], "num_decode_tokens", &out->output_tokens, err))
        return -1;
    return 1;
}

const trace_format trace_fmt_lengths = {
    .name = "lengths",
    .what = "length CSV without times: num_prefill_tokens,num_decode_tokens,...",
    .timed = false,
    .time_column = "",
    .state_size = sizeof(lengths_state),
    .sniff = lengths_sniff,
    .header = lengths_header,
    .row = lengths_row,
};

static int lengths_init(const wl_setup *setup, cJSON *params, const char *path, void **state,
                        sim_err *err)
{
    return trace_src_init(setup, params, path, "lengths", NULL, state, err);
}

const wl_source_ops wl_lengths = {
    .name = "lengths",
    .init = lengths_init,
    .next = trace_src_next,
    .destroy = trace_src_destroy,
    .on_complete = trace_src_complete,
    .counts = trace_src_counts,
};
