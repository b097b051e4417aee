/* Writing servesim's native trace format (traces/README.md has the spec),
 * the format other traces convert to (`servesim trace convert`). Reading it
 * is the formats "native_csv" and "native_jsonl" in wl_native.c. */
#ifndef TRACES_NATIVE_H
#define TRACES_NATIVE_H

#include <stdbool.h>
#include <stdio.h>
#include "traces/trace_read.h"

/* The CSV header (nothing for JSONL). */
void trace_native_write_header(FILE *f, bool jsonl);
/* One row; its time is written as arrival_s with 9 decimals (exact). */
void trace_native_write_row(FILE *f, bool jsonl, const trace_row *r);

#endif
