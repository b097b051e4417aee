/* Any trace (source "trace"): the format is recognised from the file's
 * first line, or named with "format". Otherwise the same as the source
 * named after the format. */
#include "traces/trace_source.h"

static int trace_init(const wl_setup *setup, cJSON *params, const char *path, void **state,
                      sim_err *err)
{
    return trace_src_init(setup, params, path, NULL, NULL, state, err);
}

const wl_source_ops wl_trace = {
    .name = "trace",
    .init = trace_init,
    .next = trace_src_next,
    .destroy = trace_src_destroy,
    .on_complete = trace_src_complete,
    .counts = trace_src_counts,
};
