/* libFuzzer target for one trace reader: FUZZ_FORMAT is a format name, or
 * "auto" to go through format recognition. Each input is read twice, once
 * stopping at the first malformed row and once skipping malformed rows,
 * then once more after a rewind. Built and run by `make fuzz`. */
#include <stdio.h>
#include <string.h>

#include "traces/trace_read.h"

#ifndef FUZZ_FORMAT
#define FUZZ_FORMAT "auto"
#endif

static void read_all(const uint8_t *data, size_t size, bool skip_bad)
{
    FILE *f = fmemopen((void *)data, size, "rb");
    if (!f)
        return;
    sim_err err;
    trace_reader *r = trace_reader_open_stream(f, "fuzz", FUZZ_FORMAT, skip_bad, &err);
    if (!r)
        return;
    for (int pass = 0; pass < 2; pass++) {
        trace_row row;
        uint64_t sum = 0;
        sim_time_ns last = 0;
        while (trace_reader_next(r, &row, &err) == 1) {
            /* What the reader promises about every row. */
            if (row.t_ns < last || row.input_tokens < 0 || row.output_tokens < 0 ||
                row.input_tokens > TRACE_MAX_TOKENS || row.n_prefix_blocks < 0)
                __builtin_trap();
            last = row.t_ns;
            for (int32_t i = 0; i < row.n_prefix_blocks; i++)
                sum += row.prefix_blocks[i];
        }
        (void)sum;
        if (trace_reader_rewind(r, &err))
            break;
    }
    trace_reader_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size)
        return 0;
    read_all(data, size, false);
    read_all(data, size, true);
    return 0;
}
