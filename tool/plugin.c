/* Plugin loading (see plugin.h; the ABI is api/plugin.h).
 *
 * Design. A name without ':' goes to the built-in registry unchanged, so
 * configs that name no plugin read exactly as before. "lib:policy" resolves
 * lib to a file, loads it once (dlopen RTLD_NOW | RTLD_LOCAL: every symbol
 * resolved now, none leaked into other plugins), and checks, in this order,
 * before trusting anything the library says: the exported ABI version word
 * (read, not called), then the entry point, then the descriptor it returns
 * (same version as the word, a size at least version 1's), then every ops
 * struct (its size per family at least the family's first and at most this
 * host's, a name, init and the family's required hooks: fam_descs; an
 * eviction policy's `builtin` false). The descriptor and the ops are copied
 * into host-sized structs, zero-filled past what the plugin was built with,
 * so that a plugin built against an older minor reads as NULL whatever it
 * did not know: a 1.0 plugin has no eviction, autoscaling or retention
 * families (ABI 1.1).
 *
 * A plugin policy may not take a built-in's name within its family: results
 * files and messages name policies by their ops name, which would then be
 * ambiguous. Cost: loading is a dlopen, a few dlsym and a SHA-256 of the
 * file, once per library per process; a lookup is a scan of the loaded
 * libraries and their policies (a handful). Nothing here is on the
 * simulation's path: the core calls the ops pointers as it calls the
 * built-ins'. */
#define _GNU_SOURCE   /* realpath */
#include "tool/plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policies/registry.h"
#include "sim/engine.h"
#include "sim/jsoncfg.h"
#include "version.h"

#ifndef SERVESIM_PLUGIN_DIR
#define SERVESIM_PLUGIN_DIR "build/plugins"
#endif

/* ---- the host table ------------------------------------------------------------ */

static char *host_json_text(const cJSON *item)
{
    char *s = cJSON_PrintUnformatted(item);
    SIM_ASSERT(s != NULL);
    return s;
}

static void host_free_text(char *text) { cJSON_free(text); }

static double host_uniform(uint64_t seed, uint64_t counter)
{
    uint64_t h = sim_stream_seed(seed, counter);
    return ((double)(h >> 11) + 0.5) / 9007199254740992.0;
}

static void host_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("servesim: plugin: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static const servesim_host_api plugin_host = {
    .abi_major = SERVESIM_ABI_MAJOR,
    .abi_minor = SERVESIM_ABI_MINOR,
    .size = sizeof(servesim_host_api),
    .host_version = SERVESIM_VERSION,
    .errf = sim_errf,
    .check_keys = jcfg_check_keys,
    .num = jcfg_num,
    .integer = jcfg_int,
    .boolean = jcfg_bool,
    .str = jcfg_str,
    .obj = jcfg_obj,
    .json_text = host_json_text,
    .free_text = host_free_text,
    .stream_seed = sim_stream_seed,
    .uniform = host_uniform,
    .log = host_log,
};

const servesim_host_api *plugin_host_api(void) { return &plugin_host; }

/* ---- SHA-256 (FIPS 180-4), for the results file's record of each plugin -------- */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROR(x, n) ((x) >> (n) | (x) << (32 - (n)))

static void sha_block(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64], a[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(a, h, sizeof a);
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = a[7] + (ROR(a[4], 6) ^ ROR(a[4], 11) ^ ROR(a[4], 25)) +
                      ((a[4] & a[5]) ^ (~a[4] & a[6])) + sha_k[i] + w[i];
        uint32_t t2 = (ROR(a[0], 2) ^ ROR(a[0], 13) ^ ROR(a[0], 22)) +
                      ((a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]));
        memmove(a + 1, a, 7 * sizeof a[0]);
        a[4] += t1;
        a[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++)
        h[i] += a[i];
}

/* The file's SHA-256 as 64 hex digits into hex[65]. */
static int sha256_file(const char *path, char hex[65], sim_err *err)
{
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    unsigned char buf[64];
    uint64_t total = 0;
    size_t n;
    FILE *f = fopen(path, "rb");
    if (!f)
        return sim_errf(err, "%s: cannot read: %s", path, strerror(errno));
    while ((n = fread(buf, 1, sizeof buf, f)) == sizeof buf) {
        sha_block(h, buf);
        total += n;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return sim_errf(err, "%s: read error", path);
    total += n;
    buf[n++] = 0x80;
    if (n > 56) {
        memset(buf + n, 0, 64 - n);
        sha_block(h, buf);
        n = 0;
    }
    memset(buf + n, 0, 56 - n);
    for (int i = 0; i < 8; i++)
        buf[56 + i] = (unsigned char)((total * 8) >> (56 - 8 * i));
    sha_block(h, buf);
    for (int i = 0; i < 8; i++)
        snprintf(hex + 8 * i, 9, "%08x", h[i]);
    return 0;
}

/* ---- loading ------------------------------------------------------------------- */

static plugin_lib **plugin_libs;   /* process state: see plugin.h */
static size_t plugin_n, plugin_cap;

int32_t plugin_count(void) { return (int32_t)plugin_n; }
const plugin_lib *plugin_get(int32_t i)
{
    return i >= 0 && (size_t)i < plugin_n ? plugin_libs[i] : NULL;
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

/* The file `lib` names, into out (PATH_MAX). */
static int plugin_resolve(const char *lib, char *out, sim_err *err)
{
    char file[PATH_MAX], tried[1024] = "";
    if (strchr(lib, '/') || ends_with(lib, ".so")) {
        if (!realpath(lib, out))
            return sim_errf(err, "plugin \"%s\": cannot open: %s", lib, strerror(errno));
        return 0;
    }
    if (!*lib)
        return sim_errf(err, "expected \"lib:policy\" with a library name before the ':'");
    snprintf(file, sizeof file, "lib%s.so", lib);
    /* $SERVESIM_PLUGIN_PATH, ./plugins, the build's folder, then the
     * installed one (lib/servesim/plugins beside the program's bin/). */
    const char *env = getenv("SERVESIM_PLUGIN_PATH");
    char dirs[3 * PATH_MAX + 64], exe[PATH_MAX] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    snprintf(dirs, sizeof dirs, "%.*s%splugins:%.*s%s%s", PATH_MAX, env ? env : "",
             env && *env ? ":" : "", PATH_MAX, SERVESIM_PLUGIN_DIR, *exe ? ":" : "",
             *exe ? exe : "");
    if (*exe)
        snprintf(dirs + strlen(dirs), sizeof dirs - strlen(dirs), "/../lib/servesim/plugins");
    for (char *save, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char cand[sizeof dirs + sizeof file + 2];
        snprintf(cand, sizeof cand, "%s/%s", d, file);
        if (realpath(cand, out))
            return 0;
        size_t t = strlen(tried);
        snprintf(tried + t, sizeof tried - t, "%s%s", t ? ", " : "", d);
    }
    return sim_errf(err, "plugin \"%s\": no %s in the plugin search path ($SERVESIM_PLUGIN_PATH, "
                    "./plugins, the build's, the installed one): searched %s", lib, file, tried);
}

/* The families, in the descriptor's order. For each: its label in
 * messages, the host's ops size, the smallest size the host accepts (the
 * struct up to its last required field as it was when the family entered
 * the ABI), where init sits and the hooks a policy must provide. */
enum { FAM_BATCH, FAM_ORDER, FAM_ROUTE, FAM_CONTROL, FAM_EVICT, FAM_SCALE, FAM_RETAIN,
       FAM_COUNT };

typedef struct fam_desc {
    const char *label;
    size_t host_size, min, init_off;
    size_t hook_off[3];           /* required hooks (0: none) */
    const char *hook_name[3];
} fam_desc;

#define V1_FAM(fam, label, hook)                                                        \
    {label, sizeof(fam##_policy_ops), offsetof(fam##_policy_ops, hook) + sizeof(void *), \
     offsetof(fam##_policy_ops, init), {offsetof(fam##_policy_ops, hook)}, {#hook}}
static const fam_desc fam_descs[FAM_COUNT] = {
    V1_FAM(batch, "batch", form),
    V1_FAM(order, "ordering", key),
    V1_FAM(route, "routing", route),
    V1_FAM(control, "controller", tick),
    /* ABI 1.1: the whole struct as it was then. */
    {"eviction", sizeof(evict_policy_ops),
     offsetof(evict_policy_ops, destroy) + sizeof(void *), offsetof(evict_policy_ops, init),
     {offsetof(evict_policy_ops, insert), offsetof(evict_policy_ops, remove),
      offsetof(evict_policy_ops, victim)}, {"insert", "remove", "victim"}},
    {"autoscaler", sizeof(scale_policy_ops),
     offsetof(scale_policy_ops, destroy) + sizeof(void *), offsetof(scale_policy_ops, init),
     {offsetof(scale_policy_ops, decide)}, {"decide"}},
    {"retention", sizeof(retain_policy_ops),
     offsetof(retain_policy_ops, needs_tier) + sizeof(bool), offsetof(retain_policy_ops, init),
     {offsetof(retain_policy_ops, on_turn_end)}, {"on_turn_end"}},
};
#undef V1_FAM

/* Checks one family's ops array (`size`: each struct's size as the plugin
 * built it) and copies it into host-sized structs. */
static int copy_ops(const void *const *src, uint32_t size, const fam_desc *f, const char *path,
                    void **dst, int32_t *n, sim_err *err)
{
    *n = 0;
    *dst = NULL;
    if (!src)
        return 0;
    if (size < f->min || size > f->host_size)
        return sim_errf(err, "%s: its %s ops struct is %u bytes; this servesim expects %zu "
                        "to %zu (ABI %d.%d): rebuild it against this servesim's api/ headers",
                        path, f->label, size, f->min, f->host_size, SERVESIM_ABI_MAJOR,
                        SERVESIM_ABI_MINOR);
    int32_t count = 0;
    while (src[count])
        count++;
    char *out = sim_xcalloc(count ? (size_t)count : 1, f->host_size);
    for (int32_t i = 0; i < count; i++) {
        char *o = out + (size_t)i * f->host_size;
        memcpy(o, src[i], size);
        const char *name = *(const char *const *)o;   /* every ops struct starts with name */
        void *init = *(void *const *)(o + f->init_off);
        const char *lacks = !name || !*name ? "name" : !init ? "init" : NULL, *hook = NULL;
        for (int h = 0; !lacks && !hook && h < 3 && f->hook_off[h]; h++)
            if (!*(void *const *)(o + f->hook_off[h]))
                hook = f->hook_name[h];
        if (lacks || hook) {
            sim_errf(err, "%s: %s policy %d (\"%s\") lacks its %s%s%s", path, f->label, i,
                     name ? name : "(null)", lacks ? lacks : "decision hook (",
                     lacks ? "" : hook, lacks ? "" : ")");
            free(out);
            return -1;
        }
    }
    *dst = out;
    *n = count;
    return 0;
}

static void lib_free(plugin_lib *l)
{
    if (!l)
        return;
    free(l->batch);
    free(l->order);
    free(l->route);
    free(l->control);
    free(l->evict);
    free(l->scale);
    free(l->retain);
    free(l->path);
    free(l);
}

/* Checks and copies what the library's entry point returned. */
static int lib_adopt(plugin_lib *l, const servesim_plugin *d, uint32_t abi, sim_err *err)
{
    const char *p = l->path;
    if (!d)
        return sim_errf(err, "%s: %s returned NULL", p, SERVESIM_PLUGIN_ENTRY_SYMBOL);
    if (((uint32_t)d->abi_major << 16 | d->abi_minor) != abi)
        return sim_errf(err, "%s: its descriptor says ABI %u.%u but %s says %u.%u", p,
                        d->abi_major, d->abi_minor, SERVESIM_PLUGIN_ABI_SYMBOL, abi >> 16,
                        abi & 0xffff);
    /* Version 1's descriptor ends with `control`; later minors append. */
    size_t v1 = offsetof(servesim_plugin, control) + sizeof d->control;
    if (d->size < v1 || d->size > sizeof(servesim_plugin))
        return sim_errf(err, "%s: its descriptor is %u bytes; ABI %d.%d expects %zu to %zu",
                        p, d->size, SERVESIM_ABI_MAJOR, SERVESIM_ABI_MINOR, v1,
                        sizeof(servesim_plugin));
    memcpy(&l->desc, d, d->size);
    d = &l->desc;
    if (!d->name || !d->version)
        return sim_errf(err, "%s: its descriptor lacks a name or version", p);
#define COPY(fam, idx)                                                                     \
    copy_ops((const void *const *)d->fam, d->fam##_ops_size, &fam_descs[idx], p,          \
             (void **)&l->fam, &l->n_##fam, err)
    if (COPY(batch, FAM_BATCH) || COPY(order, FAM_ORDER) || COPY(route, FAM_ROUTE) ||
        COPY(control, FAM_CONTROL))
        return -1;
    /* ABI 1.1's families: NULL (zero-filled) past a 1.0 descriptor's end. */
    if (COPY(evict, FAM_EVICT) || COPY(scale, FAM_SCALE) || COPY(retain, FAM_RETAIN))
        return -1;
#undef COPY
    /* `builtin` tells the core to keep its own LRU order and never call the
     * policy: a plugin's policy would silently be LRU. */
    for (int32_t i = 0; i < l->n_evict; i++)
        if (l->evict[i].builtin)
            return sim_errf(err, "%s: eviction policy %d (\"%s\") sets builtin, which only "
                            "the core's own LRU may set (the core would then never call it): "
                            "leave builtin false", p, (int)i, l->evict[i].name);
    if (l->n_batch + l->n_order + l->n_route + l->n_control + l->n_evict + l->n_scale +
        l->n_retain == 0)
        return sim_errf(err, "%s: the plugin provides no policies", p);
    return 0;
}

int plugin_load(const char *lib, const plugin_lib **out, sim_err *err)
{
    char path[PATH_MAX];
    if (plugin_resolve(lib, path, err))
        return -1;
    for (size_t i = 0; i < plugin_n; i++) {
        if (strcmp(plugin_libs[i]->path, path) == 0) {
            *out = plugin_libs[i];
            return 0;
        }
    }
    /* The ABI word first: servesim calls nothing of the plugin before it
     * matches (dlopen runs only the ELF constructors a plugin may have). */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return sim_errf(err, "%s: cannot load the plugin: %s", path, dlerror());
    const uint32_t *abi = dlsym(h, SERVESIM_PLUGIN_ABI_SYMBOL);
    if (!abi) {
        dlclose(h);
        return sim_errf(err, "%s: not a servesim plugin: no symbol %s (expected "
                        "SERVESIM_PLUGIN_ABI; from api/plugin.h, ABI %d.%d)", path,
                        SERVESIM_PLUGIN_ABI_SYMBOL, SERVESIM_ABI_MAJOR, SERVESIM_ABI_MINOR);
    }
    uint32_t major = *abi >> 16, minor = *abi & 0xffff;
    if (major != SERVESIM_ABI_MAJOR || minor > SERVESIM_ABI_MINOR) {
        dlclose(h);
        return sim_errf(err, "%s: plugin built for ABI %u.%u; this servesim (%s) loads ABI "
                        "%d.0 to %d.%d: rebuild it against this servesim's api/ headers",
                        path, major, minor, SERVESIM_VERSION, SERVESIM_ABI_MAJOR,
                        SERVESIM_ABI_MAJOR, SERVESIM_ABI_MINOR);
    }
    servesim_plugin_entry_fn entry;
    *(void **)&entry = dlsym(h, SERVESIM_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        dlclose(h);
        return sim_errf(err, "%s: not a servesim plugin: no symbol %s (expected the entry "
                        "point of api/plugin.h, exported with SERVESIM_EXPORT)", path,
                        SERVESIM_PLUGIN_ENTRY_SYMBOL);
    }
    plugin_lib *l = sim_xcalloc(1, sizeof *l);
    l->path = sim_xstrdup(path);
    if (sha256_file(path, l->sha256, err) || lib_adopt(l, entry(&plugin_host), *abi, err)) {
        lib_free(l);
        /* Its code has run: keep it mapped (its destructors, if any, could
         * touch state the failed adoption left). */
        return -1;
    }
    sim_grow((void **)&plugin_libs, &plugin_cap, plugin_n + 1, sizeof *plugin_libs);
    plugin_libs[plugin_n++] = l;
    *out = l;
    return 0;
}

/* ---- lookup -------------------------------------------------------------------- */

/* Family `fam`'s host-sized ops of library l: base, stride and count. */
static const char *lib_family(const plugin_lib *l, int fam, size_t *stride, int32_t *n)
{
    *stride = fam_descs[fam].host_size;
    switch (fam) {
    case FAM_BATCH: *n = l->n_batch; return (const char *)l->batch;
    case FAM_ORDER: *n = l->n_order; return (const char *)l->order;
    case FAM_ROUTE: *n = l->n_route; return (const char *)l->route;
    case FAM_CONTROL: *n = l->n_control; return (const char *)l->control;
    case FAM_EVICT: *n = l->n_evict; return (const char *)l->evict;
    case FAM_SCALE: *n = l->n_scale; return (const char *)l->scale;
    default: *n = l->n_retain; return (const char *)l->retain;
    }
}

/* Writes "batch a, b; ordering c" for the families the library has. */
static void lib_contents(const plugin_lib *l, char *buf, size_t size)
{
    size_t t = 0;
    buf[0] = '\0';
    for (int f = 0; f < FAM_COUNT; f++) {
        size_t stride;
        int32_t n;
        const char *base = lib_family(l, f, &stride, &n);
        for (int32_t i = 0; i < n && t < size; i++) {
            const char *name = *(const char *const *)(base + (size_t)i * stride);
            if (i == 0)
                t += (size_t)snprintf(buf + t, size - t, "%s%s %s", t ? "; " : "",
                                      fam_descs[f].label, name);
            else
                t += (size_t)snprintf(buf + t, size - t, ", %s", name);
        }
    }
    if (!buf[0])
        snprintf(buf, size, "(no policies)");
}

/* The ops named by "lib:policy" in family `family` (FAM_*); `builtin` is the
 * built-in of the policy's name, if any (a clash). */
static const void *plugin_find(const char *name, const char *path, const void *builtin,
                               int family, sim_err *err)
{
    const char *label = fam_descs[family].label;
    const char *colon = strrchr(name, ':');
    char lib[PATH_MAX];
    size_t n = (size_t)(colon - name);
    if (n >= sizeof lib) {
        sim_errf(err, "%s: library name too long", path);
        return NULL;
    }
    memcpy(lib, name, n);
    lib[n] = '\0';
    const char *pol = colon + 1;
    if (builtin) {
        sim_errf(err, "%s: \"%s\": a plugin policy may not take the built-in %s policy's "
                 "name \"%s\"; rename it in the plugin", path, name, label, pol);
        return NULL;
    }
    const plugin_lib *l;
    if (plugin_load(lib, &l, err)) {
        sim_err_prefix(err, "%s", path);
        return NULL;
    }
    size_t stride;
    int32_t count;
    const char *base = lib_family(l, family, &stride, &count);
    for (int32_t i = 0; i < count; i++) {
        const void *ops = base + (size_t)i * stride;
        if (strcmp(*(const char *const *)ops, pol) == 0)
            return ops;
    }
    char has[512] = "";
    lib_contents(l, has, sizeof has);
    sim_errf(err, "%s: plugin %s (\"%s\" %s) has no %s policy \"%s\"%s; it has: %s", path,
             l->path, l->desc.name, l->desc.version, label, pol,
             count ? "" : family >= FAM_EVICT && l->desc.abi_minor < 1
                              ? " (it was built for ABI 1.0, before this family)"
                              : " (it provides no policy of this family)", has);
    return NULL;
}

/* Built-in lookup first: a name without ':' reads exactly as before. A name
 * with one checks the built-ins quietly for a clash. */
#define PLUGIN_FIND(fam, idx)                                                               \
    const fam##_policy_ops *plugin_##fam##_find(const char *name, const char *path,          \
                                                 sim_err *err)                               \
    {                                                                                       \
        if (!strchr(name, ':'))                                                             \
            return fam##_policy_find(name, path, err);                                      \
        const fam##_policy_ops *builtin = fam##_policy_find(strrchr(name, ':') + 1, path,   \
                                                            NULL);                          \
        return plugin_find(name, path, builtin, idx, err);                                  \
    }
PLUGIN_FIND(batch, FAM_BATCH)
PLUGIN_FIND(order, FAM_ORDER)
PLUGIN_FIND(route, FAM_ROUTE)
PLUGIN_FIND(control, FAM_CONTROL)
PLUGIN_FIND(evict, FAM_EVICT)
PLUGIN_FIND(scale, FAM_SCALE)
PLUGIN_FIND(retain, FAM_RETAIN)
#undef PLUGIN_FIND

static cJSON *lib_json(const plugin_lib *l)
{
    cJSON *o = cJSON_CreateObject();
    char abi[32];
    snprintf(abi, sizeof abi, "%u.%u", l->desc.abi_major, l->desc.abi_minor);
    SIM_ASSERT(o && cJSON_AddStringToObject(o, "path", l->path) &&
               cJSON_AddStringToObject(o, "name", l->desc.name) &&
               cJSON_AddStringToObject(o, "version", l->desc.version) &&
               cJSON_AddStringToObject(o, "abi", abi) &&
               cJSON_AddStringToObject(o, "sha256", l->sha256));
    return o;
}

/* Marks in used[] the loaded libraries that a "name": "lib:policy" anywhere
 * in the tree names (or a KV tier's "eviction": "lib:policy"). */
static void mark_used(const cJSON *item, bool *used)
{
    for (const cJSON *it = item ? item->child : NULL; it; it = it->next) {
        if (cJSON_IsString(it) && it->string &&
            (!strcmp(it->string, "name") || !strcmp(it->string, "eviction")) &&
            strchr(it->valuestring, ':')) {
            char lib[PATH_MAX], path[PATH_MAX];
            size_t n = (size_t)(strrchr(it->valuestring, ':') - it->valuestring);
            if (n >= sizeof lib)
                continue;
            memcpy(lib, it->valuestring, n);
            lib[n] = '\0';
            if (plugin_resolve(lib, path, NULL))
                continue;
            for (size_t i = 0; i < plugin_n; i++)
                if (!strcmp(plugin_libs[i]->path, path))
                    used[i] = true;
        }
        mark_used(it, used);
    }
}

char *plugin_used_json(const char *config_json)
{
    cJSON *root = cJSON_Parse(config_json);
    if (!root || !plugin_n) {
        cJSON_Delete(root);
        return NULL;
    }
    bool *used = sim_xcalloc(plugin_n, sizeof *used);
    mark_used(root, used);
    cJSON_Delete(root);
    cJSON *arr = cJSON_CreateArray();
    SIM_ASSERT(arr != NULL);
    for (size_t i = 0; i < plugin_n; i++)
        if (used[i])
            cJSON_AddItemToArray(arr, lib_json(plugin_libs[i]));
    free(used);
    char *out = NULL;
    if (cJSON_GetArraySize(arr) > 0) {
        char *s = cJSON_PrintUnformatted(arr);
        SIM_ASSERT(s != NULL);
        out = sim_xstrdup(s);
        cJSON_free(s);
    }
    cJSON_Delete(arr);
    return out;
}

char *plugin_loaded_json(void)
{
    cJSON *arr = cJSON_CreateArray();
    SIM_ASSERT(arr != NULL);
    for (size_t i = 0; i < plugin_n; i++)
        cJSON_AddItemToArray(arr, lib_json(plugin_libs[i]));
    char *s = cJSON_PrintUnformatted(arr);
    SIM_ASSERT(s != NULL);
    cJSON_Delete(arr);
    char *copy = sim_xstrdup(s);
    cJSON_free(s);
    return copy;
}
