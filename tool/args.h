/* Numbers on the command line, checked like config values: the whole text
 * must be the number (no leading spaces, no trailing text), within the
 * flag's range, with no silent overflow or truncation (`-j 4294967297` is an
 * error, not one worker). */
#ifndef TOOL_ARGS_H
#define TOOL_ARGS_H

#include "sim/base.h"

/* A decimal integer in [min, max]. On error: "FLAG: expected an integer in
 * [MIN, MAX], got 'TEXT'". */
int args_int(const char *flag, const char *text, int64_t min, int64_t max, int64_t *out,
             sim_err *err);
/* A finite number in [min, max] (strtod syntax). */
int args_num(const char *flag, const char *text, double min, double max, double *out,
             sim_err *err);

#endif
