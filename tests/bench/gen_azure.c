/* Writes an Azure-LLM-inference-format CSV of N rows to standard output
 * for `make bench` (trace ingestion speed): a week-long trace's shape,
 * timestamps with 7 fractional digits from 2024-05-12, exponential gaps of
 * mean 60 ms, lognormal-ish lengths. Deterministic; needs only libc.
 * usage: gen_azure ROWS > file.csv */
#include <stdint.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>

static uint64_t rng_state = 88172645463325252ULL;

static double uniform(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* y-m-d from days since 1970-01-01 (H. Hinnant's civil_from_days). */
static void civil(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_azure ROWS > file.csv\n");
        return 2;
    }
    long long rows = atoll(argv[1]);
    int64_t t_100ns = (int64_t)19855 * 86400 * 10000000;   /* 2024-05-12 */
    static char buf[1 << 16];
    setvbuf(stdout, buf, _IOFBF, sizeof buf);
    puts("TIMESTAMP,ContextTokens,GeneratedTokens");
    for (long long i = 0; i < rows; i++) {
        double u = uniform();
        t_100ns += (int64_t)(-0.06 * 1e7 * log(1 - u));
        int64_t s = t_100ns / 10000000, frac = t_100ns % 10000000;
        int y, m, d;
        civil(s / 86400, &y, &m, &d);
        int sod = (int)(s % 86400);
        int in = 20 + (int)(2000 * uniform() * uniform());
        int out = 1 + (int)(400 * uniform() * uniform());
        printf("%04d-%02d-%02d %02d:%02d:%02d.%07lld,%d,%d\n", y, m, d, sod / 3600,
               sod / 60 % 60, sod % 60, (long long)frac, in, out);
    }
    return 0;
}
