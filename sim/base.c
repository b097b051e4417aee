/* Error formatting, assertion failure and aborting allocators (see base.h). */
#define _DEFAULT_SOURCE   /* madvise (sim_xcalloc_huge) */
#include "sim/base.h"

#include <sys/mman.h>
#include <unistd.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sim_errf(sim_err *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int sim_err_prefix(sim_err *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* Truncating an over-long message is fine; using the result tells GCC
     * (-Wformat-truncation at -O2) that we looked. */
    if (snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old) < 0)
        err->msg[0] = '\0';
    return -1;
}

void sim_assert_fail(const char *expr, const char *file, int line,
                     sim_time_ns now)
{
    if (now >= 0)
        fprintf(stderr, "servesim: internal error: %s:%d: assertion '%s' failed "
                "at simulated time %lld ns\n", file, line, expr, (long long)now);
    else
        fprintf(stderr, "servesim: internal error: %s:%d: assertion '%s' failed\n",
                file, line, expr);
    abort();
}

static void *check_alloc(void *p, size_t n)
{
    if (!p && n) {
        fprintf(stderr, "servesim: out of memory allocating %zu bytes\n", n);
        abort();
    }
    return p;
}

void *sim_xmalloc(size_t n) { return check_alloc(malloc(n), n); }
void *sim_xcalloc(size_t count, size_t size)
{
    return check_alloc(calloc(count, size), count * size);
}
void *sim_xrealloc(void *p, size_t n) { return check_alloc(realloc(p, n), n); }
char *sim_xstrdup(const char *s) { return strcpy(sim_xmalloc(strlen(s) + 1), s); }

void sim_grow(void **buf, size_t *cap, size_t need, size_t elem_size)
{
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    *buf = sim_xrealloc(*buf, c * elem_size);
    *cap = c;
}

const void *sim_registry_lookup(const void *const *table, size_t name_offset,
                                const char *key, const char *what,
                                const char *path, sim_err *err)
{
    for (int i = 0; table[i]; i++) {
        const char *name = *(const char *const *)((const char *)table[i] + name_offset);
        if (!strcmp(name, key))
            return table[i];
    }
    char names[512] = "";
    size_t used = 0;
    for (int i = 0; table[i] && used < sizeof names; i++) {
        const char *name = *(const char *const *)((const char *)table[i] + name_offset);
        used += (size_t)snprintf(names + used, sizeof names - used, "%s%s",
                                 i ? ", " : "", name);
    }
    sim_errf(err, "%s: unknown %s \"%s\"; expected one of: %s", path, what, key, names);
    return NULL;
}

const char *sim_path_where(const char *path, char *buf, size_t size)
{
    char cwd[4096];
    buf[0] = 0;
    if (!path || path[0] == '/' || !strcmp(path, "-") || !getcwd(cwd, sizeof cwd))
        return buf;
    snprintf(buf, size, " (a relative path: looked for it in %s, the working directory)", cwd);
    return buf;
}

/* Large arrays read at random on the hot path (a KV cache's blocks and
 * hash table) on huge pages where the kernel offers them (madvise mode of
 * transparent huge pages): one TLB entry covers 2 MiB instead of 4 KiB. */
void *sim_xcalloc_huge(size_t count, size_t size)
{
    size_t n = count * size;
    const size_t huge = (size_t)2 << 20;
    if (n < huge / 2)
        return sim_xcalloc(count, size);
    size_t rounded = (n + huge - 1) / huge * huge;
    void *p = NULL;
    if (posix_memalign(&p, huge, rounded) != 0)
        return sim_xcalloc(count, size);
    madvise(p, rounded, MADV_HUGEPAGE);
    memset(p, 0, n);
    return p;
}
