/* Shared basics for every module: simulated time, error reports, always-on
 * assertions and aborting allocation.
 *
 * Errors are input problems the user can fix: a function returns an int
 * status (0 ok, -1 failed) and writes a message into a caller-owned sim_err.
 * Bugs are not errors: SIM_ASSERT prints the expression, file:line and the
 * simulated time, then aborts. Out of memory aborts with a message. */
#ifndef SIM_BASE_H
#define SIM_BASE_H

#include <stddef.h>
#include <stdint.h>

/* Simulated time: nanoseconds as an integer, never a double. */
typedef int64_t sim_time_ns;
#define SIM_TIME_NEVER INT64_MAX
#define SIM_NS_PER_US 1000LL
#define SIM_NS_PER_MS 1000000LL
#define SIM_NS_PER_S 1000000000LL
/* The latest time a model should reach (2^62 ns, about 146 years), far
 * enough below INT64_MAX that adding to it cannot overflow. */
#define SIM_TIME_HORIZON ((sim_time_ns)1 << 62)

/* t + ns, saturating at SIM_TIME_HORIZON (ns >= 0, as a double so that an
 * absurd random gap cannot overflow the conversion either). */
static inline sim_time_ns sim_time_add(sim_time_ns t, double ns)
{
    if (ns >= (double)(SIM_TIME_HORIZON - t))
        return SIM_TIME_HORIZON;
    return t + (sim_time_ns)(ns + 0.5);
}

/* Mixes x into the 64-bit hash h (the splitmix64 finaliser over h ^ x with
 * a golden-ratio step): a cheap way to chain identities, such as KV block
 * contents, into one well-spread 64-bit value. Not cryptographic. */
static inline uint64_t sim_hash_mix(uint64_t h, uint64_t x)
{
    uint64_t z = (h ^ x) + UINT64_C(0x9e3779b97f4a7c15) + (h << 6) + (h >> 2);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Caller-owned error message. */
typedef struct sim_err {
    char msg[1024];
} sim_err;

/* Formats the message into err (if err is not NULL) and returns -1, so that
 * callers can write `return sim_errf(err, "...")`. */
int sim_errf(sim_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Where a relative path was looked for, for "cannot open" messages:
 * " (looked in /cwd/dir/, the working directory)" into buf; "" for an
 * absolute path. Returns buf. */
const char *sim_path_where(const char *path, char *buf, size_t size);

/* Prefixes the existing message: "<prefix>: <old message>". Returns -1. */
int sim_err_prefix(sim_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

_Noreturn void sim_assert_fail(const char *expr, const char *file, int line,
                               sim_time_ns now);

/* Always on, also in optimised builds. `now` is the simulated time to print
 * (pass -1 where no clock is at hand). */
#define SIM_ASSERT_AT(now, expr)                                              \
    ((expr) ? (void)0 : sim_assert_fail(#expr, __FILE__, __LINE__, (now)))
#define SIM_ASSERT(expr) SIM_ASSERT_AT(-1, expr)

/* Allocation that aborts with a message on failure. */
void *sim_xmalloc(size_t n);
void *sim_xcalloc(size_t count, size_t size);
void *sim_xcalloc_huge(size_t count, size_t size);   /* free() it; see base.c */
void *sim_xrealloc(void *p, size_t n);
char *sim_xstrdup(const char *s);

/* Grows *buf (of *cap elements of elem_size) to hold at least need elements,
 * doubling. */
void sim_grow(void **buf, size_t *cap, size_t need, size_t elem_size);

/* Registries: NULL-terminated tables of pointers to ops structs that have a
 * `const char *name` member (policies, cost models, workload sources).
 * SIM_REGISTRY_FIND returns the entry named `key`, or NULL with the message
 * "<path>: unknown <what> "<key>"; expected one of: a, b, c". */
const void *sim_registry_lookup(const void *const *table, size_t name_offset,
                                const char *key, const char *what,
                                const char *path, sim_err *err);
#define SIM_REGISTRY_FIND(table, key, what, path, err)                        \
    ((__typeof__((table)[0]))sim_registry_lookup(                             \
        (const void *const *)(table), offsetof(__typeof__(*(table)[0]), name), \
        (key), (what), (path), (err)))

#endif
