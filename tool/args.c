/* Command-line numbers (see args.h). */
#include "tool/args.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

int args_int(const char *flag, const char *text, int64_t min, int64_t max, int64_t *out,
             sim_err *err)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    bool bad = !*text || isspace((unsigned char)*text) || *end || errno == ERANGE ||
               v < min || v > max;
    if (bad)
        return sim_errf(err, "%s: expected an integer in [%lld, %lld], got '%.64s'", flag,
                        (long long)min, (long long)max, text);
    *out = v;
    return 0;
}

int args_num(const char *flag, const char *text, double min, double max, double *out,
             sim_err *err)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (!*text || isspace((unsigned char)*text) || *end || !isfinite(v) || !(v >= min) ||
        !(v <= max))
        return sim_errf(err, "%s: expected a number in [%g, %g], got '%.64s'", flag, min, max,
                        text);
    *out = v;
    return 0;
}
