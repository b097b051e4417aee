/* Serving-engine profiles (see engine.h; the schema and every bundled
 * profile's sources are in models/README.md, "Engine profiles").
 *
 * Design. A profile file is read strictly, like the model and GPU files:
 * every section and every key is required (a profile is complete, so each
 * constant is stated with its source), unknown keys and values out of range
 * are errors naming the file and the JSON path. A run's overrides are an
 * object shaped like the file: it is laid over the file's tree (objects
 * merged key by key, anything else replaced) and the result is read again
 * under the overrides' own JSON path, so that a bad override is reported
 * where the user wrote it. The effective profile written back into the run
 * config is that merged tree less its "source" keys.
 *
 * The CPU model is deliberately small: a linear function of the batch's
 * sequences, prefills and tokens, blocking or overlapped, plus launches
 * outside CUDA graphs and a never-overlapped part. Nothing here runs per
 * request; engine_iteration_ns runs once per iteration and allocates
 * nothing. */
#include "models/engine.h"

#include <dirent.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/jsoncfg.h"

#define GIB (1024.0 * 1024.0 * 1024.0)

static const char *const reserve_names[] = {"chunk", "prompt", "request", NULL};
static const char *const mode_names[] = {"allocate", "check", NULL};
static const char *const victim_names[] = {"newest", "fewest_outputs", NULL};

const char *engine_reserve_name(engine_reserve r)
{
    SIM_ASSERT(r >= 0 && r <= ENGINE_RESERVE_REQUEST);
    return reserve_names[r];
}

const char *engine_victim_name(engine_victim v)
{
    SIM_ASSERT(v >= 0 && v <= ENGINE_VICTIM_FEWEST_OUTPUTS);
    return victim_names[v];
}

/* ---- reading ---------------------------------------------------------------- */

static int get_enum(cJSON *o, const char *path, const char *key, const char *const *names,
                    int *out, sim_err *err)
{
    const char *s;
    if (jcfg_str(o, path, key, JCFG_REQUIRED_STR, &s, err))
        return -1;
    for (int i = 0; names[i]; i++)
        if (!strcmp(s, names[i])) {
            *out = i;
            return 0;
        }
    char list[160] = "";
    for (int i = 0; names[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 names[i]);
    return sim_errf(err, "%s.%s: expected one of: %s; got \"%s\"", path, key, list, s);
}

/* The section `key` of the profile: an object with the keys `keys` (plus
 * "source"); `need_source` for a file (an override may leave it out). */
static int section(cJSON *root, const char *path, const char *key, const char *const *keys,
                   bool need_source, cJSON **out, char *spath, sim_err *err)
{
    cJSON *o = cJSON_GetObjectItemCaseSensitive(root, key);
    snprintf(spath, 256, "%s.%s", path, key);
    if (!o)
        return sim_errf(err, "%s: missing; a profile states every section", spath);
    if (!cJSON_IsObject(o))
        return sim_errf(err, "%s: expected an object", spath);
    if (jcfg_check_keys(o, spath, keys, err))
        return -1;
    const char *source;
    if (jcfg_str(o, spath, "source", need_source ? JCFG_REQUIRED_STR : "", &source, err))
        return -1;
    if (need_source && !*source)
        return sim_errf(err, "%s.source: expected a non-empty string saying where the "
                        "numbers come from", spath);
    *out = o;
    return 0;
}

static int num(cJSON *o, const char *path, const char *key, double lo, double hi,
               double *out, sim_err *err)
{
    return jcfg_num(o, path, key, JCFG_REQUIRED_NUM, lo, hi, out, err);
}

static int i32(cJSON *o, const char *path, const char *key, int64_t lo, int64_t hi,
               int32_t *out, sim_err *err)
{
    int64_t v;
    if (jcfg_int(o, path, key, JCFG_REQUIRED_INT, lo, hi, &v, err))
        return -1;
    *out = (int32_t)v;
    return 0;
}

static int flag(cJSON *o, const char *path, const char *key, bool *out, sim_err *err)
{
    return jcfg_bool(o, path, key, -1, out, err);
}

static int read_large_gpu(cJSON *s, const char *spath, engine_profile *e, sim_err *err)
{
    static const char *const keys[] = {"min_memory_gib", "except", "token_budget",
                                       "max_seqs", NULL};
    cJSON *o = cJSON_GetObjectItemCaseSensitive(s, "large_gpu");
    e->has_large_gpu = false;
    if (!o || cJSON_IsNull(o))
        return 0;
    char path[300];
    snprintf(path, sizeof path, "%s.large_gpu", spath);
    if (!cJSON_IsObject(o))
        return sim_errf(err, "%s: expected an object or null", path);
    if (jcfg_check_keys(o, path, keys, err) ||
        num(o, path, "min_memory_gib", 0, 1e6, &e->large_min_memory_gib, err) ||
        i32(o, path, "token_budget", 1, INT32_MAX, &e->large_token_budget, err) ||
        i32(o, path, "max_seqs", 1, 1 << 20, &e->large_max_seqs, err))
        return -1;
    cJSON *ex = cJSON_GetObjectItemCaseSensitive(o, "except");
    e->n_large_except = 0;
    if (!ex || !cJSON_IsArray(ex) || cJSON_GetArraySize(ex) > ENGINE_MAX_EXCEPT)
        return sim_errf(err, "%s.except: expected an array of at most %d GPU name parts",
                        path, ENGINE_MAX_EXCEPT);
    for (cJSON *it = ex->child; it; it = it->next) {
        if (!cJSON_IsString(it) || !*it->valuestring ||
            strlen(it->valuestring) >= sizeof e->large_except[0])
            return sim_errf(err, "%s.except[%d]: expected a non-empty string of at most "
                            "%zu characters", path, e->n_large_except,
                            sizeof e->large_except[0] - 1);
        snprintf(e->large_except[e->n_large_except++], sizeof e->large_except[0], "%s",
                 it->valuestring);
    }
    e->has_large_gpu = true;
    return 0;
}

static int read_scheduler(cJSON *root, const char *path, bool need_source,
                          engine_profile *e, sim_err *err)
{
    static const char *const keys[] = {
        "source", "token_budget", "max_seqs", "large_gpu", "batch_policy", "reserve",
        "reserve_mode", "output_reserve_fraction", "watermark_fraction", "victim",
        "admit_after_preempt", "prefix_caching", NULL};
    char spath[256];
    cJSON *s;
    const char *policy;
    int reserve, mode, victim;
    if (section(root, path, "scheduler", keys, need_source, &s, spath, err) ||
        i32(s, spath, "token_budget", 1, INT32_MAX, &e->token_budget, err) ||
        i32(s, spath, "max_seqs", 1, 1 << 20, &e->max_seqs, err) ||
        read_large_gpu(s, spath, e, err) ||
        jcfg_str(s, spath, "batch_policy", JCFG_REQUIRED_STR, &policy, err) ||
        get_enum(s, spath, "reserve", reserve_names, &reserve, err) ||
        get_enum(s, spath, "reserve_mode", mode_names, &mode, err) ||
        num(s, spath, "output_reserve_fraction", 0, 1, &e->output_reserve_fraction, err) ||
        num(s, spath, "watermark_fraction", 0, 0.5, &e->watermark_fraction, err) ||
        get_enum(s, spath, "victim", victim_names, &victim, err) ||
        flag(s, spath, "admit_after_preempt", &e->admit_after_preempt, err) ||
        flag(s, spath, "prefix_caching", &e->prefix_caching, err))
        return -1;
    if (!*policy || strlen(policy) >= sizeof e->batch_policy)
        return sim_errf(err, "%s.batch_policy: expected a batch policy's name, got \"%s\"",
                        spath, policy);
    snprintf(e->batch_policy, sizeof e->batch_policy, "%s", policy);
    e->reserve = (engine_reserve)reserve;
    e->reserve_check_only = mode == 1;
    e->victim = (engine_victim)victim;
    return 0;
}

static int read_graphs(cJSON *root, const char *path, bool need_source, engine_profile *e,
                       sim_err *err)
{
    static const char *const keys[] = {"source", "decode_max_batch", "mixed_max_tokens",
                                       "eager_us_per_layer", NULL};
    char spath[256];
    cJSON *s;
    return section(root, path, "cuda_graphs", keys, need_source, &s, spath, err) ||
           i32(s, spath, "decode_max_batch", 0, 1 << 20, &e->graph_decode_max_batch, err) ||
           i32(s, spath, "mixed_max_tokens", 0, INT32_MAX, &e->graph_mixed_max_tokens, err) ||
           num(s, spath, "eager_us_per_layer", 0, 1e6, &e->eager_us_per_layer, err) ? -1 : 0;
}

static int read_cpu(cJSON *root, const char *path, bool need_source, engine_profile *e,
                    sim_err *err)
{
    static const char *const keys[] = {"source", "base_us", "per_seq_us", "per_prefill_us",
                                       "per_token_us", "overlap", "exposed_us", NULL};
    char spath[256];
    cJSON *s;
    return section(root, path, "cpu_overhead", keys, need_source, &s, spath, err) ||
           num(s, spath, "base_us", 0, 1e7, &e->cpu_base_us, err) ||
           num(s, spath, "per_seq_us", 0, 1e6, &e->cpu_per_seq_us, err) ||
           num(s, spath, "per_prefill_us", 0, 1e6, &e->cpu_per_prefill_us, err) ||
           num(s, spath, "per_token_us", 0, 1e6, &e->cpu_per_token_us, err) ||
           flag(s, spath, "overlap", &e->cpu_overlap, err) ||
           num(s, spath, "exposed_us", 0, 1e7, &e->cpu_exposed_us, err) ? -1 : 0;
}

static int read_path(cJSON *root, const char *path, bool need_source, engine_profile *e,
                     sim_err *err)
{
    static const char *const keys[] = {"source", "frontend_us", "tokenize_us_per_token",
                                       "stream_us", NULL};
    char spath[256];
    cJSON *s;
    return section(root, path, "request_path", keys, need_source, &s, spath, err) ||
           num(s, spath, "frontend_us", 0, 1e9, &e->frontend_us, err) ||
           num(s, spath, "tokenize_us_per_token", 0, 1e6, &e->tokenize_us_per_token, err) ||
           num(s, spath, "stream_us", 0, 1e9, &e->stream_us, err) ? -1 : 0;
}

/* Reads a whole profile tree; `path` is the root's JSON path ("$" for a
 * file). */
static int read_profile(cJSON *root, const char *path, bool need_source, engine_profile *e,
                        sim_err *err)
{
    static const char *const keys[] = {"name", "source", "scheduler", "cuda_graphs",
                                       "cpu_overhead", "request_path", NULL};
    if (!cJSON_IsObject(root))
        return sim_errf(err, "%s: expected an object", path);
    if (jcfg_check_keys(root, path, keys, err) || read_scheduler(root, path, need_source, e, err) ||
        read_graphs(root, path, need_source, e, err) || read_cpu(root, path, need_source, e, err) ||
        read_path(root, path, need_source, e, err))
        return -1;
    return 0;
}

/* The file's stem: "a/b/vllm-v1.json" -> "vllm-v1". */
static void file_stem(const char *file, char *out, size_t n)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    snprintf(out, n, "%s", base);
    char *dot = strrchr(out, '.');
    if (dot && !strcmp(dot, ".json"))
        *dot = 0;
}

/* Reads a file's tree into e (checked) and returns the tree (the caller
 * owns it). */
static int load_tree(const char *file, engine_profile *e, cJSON **tree, sim_err *err)
{
    cJSON *root;
    if (jcfg_load_file(file, &root, err))
        return -1;
    memset(e, 0, sizeof *e);
    char stem[256];
    file_stem(file, stem, sizeof stem);
    const char *name, *source;
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        sim_errf(err, "$: expected an object");
    } else if (strlen(stem) >= sizeof e->name) {
        sim_errf(err, "file name '%s' is too long (at most %zu characters)", stem,
                 sizeof e->name - 1);
    } else if (!jcfg_str(root, "$", "name", stem, &name, err) &&
               !jcfg_str(root, "$", "source", JCFG_REQUIRED_STR, &source, err)) {
        if (strcmp(name, stem))
            sim_errf(err, "$.name: expected \"%s\" (the file's name), got \"%s\"", stem, name);
        else if (!*source)
            sim_errf(err, "$.source: expected a non-empty string: the engine and version "
                     "this profile describes");
        else
            rc = read_profile(root, "$", true, e, err);
    }
    if (rc) {
        cJSON_Delete(root);
        return sim_err_prefix(err, "%s", file);
    }
    snprintf(e->name, sizeof e->name, "%.63s", stem);
    *tree = root;
    return 0;
}

int engine_profile_load_file(const char *file, engine_profile *out, sim_err *err)
{
    cJSON *tree;
    if (load_tree(file, out, &tree, err))
        return -1;
    cJSON_Delete(tree);
    return 0;
}

static bool is_path(const char *s)
{
    size_t n = strlen(s);
    return strchr(s, '/') || (n > 5 && !strcmp(s + n - 5, ".json"));
}

/* "a, b, c": the bundled profiles, sorted. */
static void list_available(const char *folder, char *out, size_t n)
{
    char names[32][64];
    int k = 0;
    DIR *d = opendir(folder);
    out[0] = 0;
    for (struct dirent *ent; d && k < 32 && (ent = readdir(d));) {
        size_t len = strlen(ent->d_name);
        if (len > 5 && len < 64 && !strcmp(ent->d_name + len - 5, ".json")) {
            snprintf(names[k], sizeof names[k], "%.*s", (int)(len - 5), ent->d_name);
            k++;
        }
    }
    if (d)
        closedir(d);
    qsort(names, (size_t)k, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    for (int i = 0; i < k; i++)
        snprintf(out + strlen(out), n - strlen(out), "%s%s", i ? ", " : "", names[i]);
    if (!k)
        snprintf(out, n, "none");
}

/* Lays `over` onto `base` (both objects): objects in both merge, anything
 * else is replaced. */
static void merge_into(cJSON *base, const cJSON *over)
{
    for (const cJSON *it = over->child; it; it = it->next) {
        cJSON *mine = cJSON_GetObjectItemCaseSensitive(base, it->string);
        if (mine && cJSON_IsObject(mine) && cJSON_IsObject(it)) {
            merge_into(mine, it);
            continue;
        }
        cJSON *copy = cJSON_Duplicate(it, 1);
        SIM_ASSERT(copy != NULL);
        /* In place: the merged tree keeps the file's key order. */
        if (mine)
            cJSON_ReplaceItemInObjectCaseSensitive(base, it->string, copy);
        else
            cJSON_AddItemToObject(base, it->string, copy);
    }
}

static void strip_sources(cJSON *o)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, "source");
    for (cJSON *it = o->child; it; it = it->next)
        if (cJSON_IsObject(it))
            strip_sources(it);
}

int engine_profile_resolve(const char *dir, const char *name_or_path, const cJSON *overrides,
                           const char *path, engine_profile *out, cJSON **effective,
                           sim_err *err)
{
    char file[4200];
    if (is_path(name_or_path)) {
        snprintf(file, sizeof file, "%s", name_or_path);
    } else {
        char folder[4096];
        snprintf(folder, sizeof folder, "%s/engines", dir);
        if (!*name_or_path || name_or_path[0] == '.')
            return sim_errf(err, "invalid engine name '%s': a name is a file stem in %s",
                            name_or_path, folder);
        snprintf(file, sizeof file, "%s/%s.json", folder, name_or_path);
        FILE *f = fopen(file, "rb");
        if (!f) {
            char avail[700];
            list_available(folder, avail, sizeof avail);
            return sim_errf(err, "unknown engine '%s' (no file %s); available: %s",
                            name_or_path, file, avail);
        }
        fclose(f);
    }
    cJSON *tree;
    if (load_tree(file, out, &tree, err))
        return -1;
    if (overrides) {
        if (!cJSON_IsObject(overrides)) {
            cJSON_Delete(tree);
            return sim_errf(err, "%s: expected an object", path);
        }
        cJSON *over = cJSON_Duplicate(overrides, 1);
        SIM_ASSERT(over != NULL);
        cJSON_DeleteItemFromObjectCaseSensitive(over, "name");
        char name[sizeof out->name];
        snprintf(name, sizeof name, "%s", out->name);
        /* Check the overrides' own shape first, so that a misspelt key is
         * reported at its path even where the file has the section. */
        static const char *const keys[] = {"source", "scheduler", "cuda_graphs",
                                           "cpu_overhead", "request_path", NULL};
        int rc = jcfg_check_keys(over, path, keys, err);
        if (!rc) {
            merge_into(tree, over);
            rc = read_profile(tree, path, false, out, err);
        }
        cJSON_Delete(over);
        if (rc) {
            cJSON_Delete(tree);
            return -1;
        }
        snprintf(out->name, sizeof out->name, "%s", name);
    }
    if (effective) {
        strip_sources(tree);
        cJSON_DeleteItemFromObjectCaseSensitive(tree, "name");
        cJSON *eff = cJSON_CreateObject();
        SIM_ASSERT(eff != NULL);
        cJSON_AddStringToObject(eff, "name", name_or_path);
        for (cJSON *it = tree->child; it;) {
            cJSON *next = it->next;
            cJSON_AddItemToObject(eff, it->string, cJSON_DetachItemViaPointer(tree, it));
            it = next;
        }
        *effective = eff;
    }
    cJSON_Delete(tree);
    return 0;
}

/* ---- limits and time ------------------------------------------------------- */

void engine_limits(const engine_profile *e, const char *gpu_name, double memory_bytes,
                   int32_t *token_budget, int32_t *max_seqs)
{
    *token_budget = e->token_budget;
    *max_seqs = e->max_seqs;
    if (!e->has_large_gpu || memory_bytes < e->large_min_memory_gib * GIB)
        return;
    for (int32_t i = 0; i < e->n_large_except; i++)
        if (strstr(gpu_name, e->large_except[i]))
            return;
    *token_budget = e->large_token_budget;
    *max_seqs = e->large_max_seqs;
}

bool engine_batch_in_graph(const engine_profile *e, const batch_shape *b)
{
    if (b->n_prefill == 0)
        return b->n_decode <= e->graph_decode_max_batch;
    int64_t tokens = b->n_decode;
    for (int32_t i = 0; i < b->n_prefill; i++)
        tokens += b->prefill[i].q_tokens;
    return tokens <= e->graph_mixed_max_tokens;
}

double engine_cpu_ns(const engine_profile *e, const batch_shape *b)
{
    double tokens = b->n_decode;
    for (int32_t i = 0; i < b->n_prefill; i++)
        tokens += b->prefill[i].q_tokens;
    double us = e->cpu_base_us + e->cpu_per_seq_us * (b->n_prefill + b->n_decode) +
                e->cpu_per_prefill_us * b->n_prefill + e->cpu_per_token_us * tokens;
    return us * 1e3;
}

double engine_iteration_ns(const engine_profile *e, const batch_shape *b, int32_t layers,
                           double gpu_ns)
{
    double cpu = engine_cpu_ns(e, b);
    double t = e->cpu_overlap ? (cpu > gpu_ns ? cpu : gpu_ns) : gpu_ns + cpu;
    if (!engine_batch_in_graph(e, b))
        t += e->eager_us_per_layer * 1e3 * layers;
    return t + e->cpu_exposed_us * 1e3;
}

double engine_frontend_ns(const engine_profile *e, int32_t input_tokens)
{
    return (e->frontend_us + e->tokenize_us_per_token * input_tokens) * 1e3;
}

double engine_stream_ns(const engine_profile *e)
{
    return e->stream_us * 1e3;
}
