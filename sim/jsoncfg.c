/* Strict JSON config reading (see jsoncfg.h).
 *
 * Design. cJSON parses; this module adds what a config reader needs on top:
 * syntax errors placed at file:line:column, duplicate keys rejected (cJSON
 * would keep both and silently read the first), typed getters that check the
 * type and the range and name the JSON path of the offending value, and
 * defaults written back into the tree so that the tree, once read, is the
 * effective config a run records.
 *
 * Conventions every getter follows:
 *   - Paths are written "$.a.b"; a key that is not a plain identifier is
 *     written in brackets ($.a["odd key"]). A NULL or empty path means "$".
 *   - Range bounds are inclusive. For numbers, +-INFINITY (or +-DBL_MAX) means
 *     unbounded; a lower bound in (0, DBL_MIN] reads as "> 0" (pass DBL_MIN to
 *     ask for a strictly positive number). For integers INT64_MIN / INT64_MAX
 *     mean unbounded.
 *   - A default that is itself outside the range is a bug in the caller and
 *     trips an assertion, not an error.
 *   - Messages read "<path>: expected <what>, got <value as JSON>".
 *
 * Nothing here is on a hot path: configs are read once per run. */
#include "sim/jsoncfg.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define JCFG_PATH_MAX 256

/* ---- paths and value descriptions ---------------------------------------- */

static const char *path_or_root(const char *path)
{
    return (path && *path) ? path : "$";
}

static bool key_is_plain(const char *key)
{
    if (!*key)
        return false;
    for (const char *p = key; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            return false;
    return true;
}

/* Writes path.key (or path["key"]) into out. */
static void path_join(char *out, size_t n, const char *path, const char *key)
{
    if (key_is_plain(key))
        snprintf(out, n, "%s.%s", path_or_root(path), key);
    else
        snprintf(out, n, "%s[\"%s\"]", path_or_root(path), key);
}

/* The value as the user wrote it, for "got ..." (strings quoted, containers
 * named rather than printed, long text cut). */
static void describe_value(const cJSON *v, char *out, size_t n)
{
    if (!v) {
        snprintf(out, n, "nothing");
    } else if (cJSON_IsObject(v)) {
        snprintf(out, n, "an object");
    } else if (cJSON_IsArray(v)) {
        snprintf(out, n, "an array");
    } else if (cJSON_IsNull(v)) {
        snprintf(out, n, "null");
    } else if (cJSON_IsBool(v)) {
        snprintf(out, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
    } else if (cJSON_IsNumber(v)) {
        snprintf(out, n, "%.15g", v->valuedouble);
    } else if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        if (strlen(s) > 60)
            snprintf(out, n, "\"%.57s...\"", s);
        else
            snprintf(out, n, "\"%s\"", s);
    } else {
        snprintf(out, n, "an invalid value");
    }
}

static int type_error(sim_err *err, const char *path, const char *expected,
                      const cJSON *got)
{
    char desc[96];
    describe_value(got, desc, sizeof desc);
    return sim_errf(err, "%s: expected %s, got %s", path, expected, desc);
}

static bool unbounded_below(double min) { return min == -INFINITY || min <= -DBL_MAX; }
static bool unbounded_above(double max) { return max == INFINITY || max >= DBL_MAX; }

static void describe_num_range(double min, double max, char *out, size_t n)
{
    bool lo = !unbounded_below(min), hi = !unbounded_above(max);
    if (lo && hi)
        snprintf(out, n, "a number in [%.15g, %.15g]", min, max);
    else if (lo && min > 0 && min <= DBL_MIN)
        snprintf(out, n, "a number > 0");
    else if (lo)
        snprintf(out, n, "a number >= %.15g", min);
    else if (hi)
        snprintf(out, n, "a number <= %.15g", max);
    else
        snprintf(out, n, "a number");
}

static void describe_int_range(int64_t min, int64_t max, char *out, size_t n)
{
    bool lo = min != INT64_MIN, hi = max != INT64_MAX;
    if (lo && hi)
        snprintf(out, n, "an integer in [%lld, %lld]", (long long)min, (long long)max);
    else if (lo)
        snprintf(out, n, "an integer >= %lld", (long long)min);
    else if (hi)
        snprintf(out, n, "an integer <= %lld", (long long)max);
    else
        snprintf(out, n, "an integer");
}

/* Looks up key in obj; fails if obj is not an object. */
static int lookup(cJSON *obj, const char *path, const char *key, cJSON **item,
                  char *key_path, sim_err *err)
{
    *item = NULL;
    path_join(key_path, JCFG_PATH_MAX, path, key);
    if (!cJSON_IsObject(obj))
        return type_error(err, path_or_root(path), "an object", obj);
    *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return 0;
}

/* ---- parsing -------------------------------------------------------------- */

/* cJSON keeps duplicate keys and lookups return the first; a config with a
 * duplicate is almost always an editing mistake, so reject it. Quadratic per
 * object, which is fine for configs. */
static int check_duplicates(const cJSON *node, const char *path, sim_err *err)
{
    char child_path[JCFG_PATH_MAX];
    int index = 0;
    for (const cJSON *c = node->child; c; c = c->next, index++) {
        if (cJSON_IsObject(node)) {
            for (const cJSON *d = node->child; d != c; d = d->next)
                if (strcmp(d->string, c->string) == 0) {
                    path_join(child_path, sizeof child_path, path, c->string);
                    return sim_errf(err, "%s: duplicate key", child_path);
                }
            path_join(child_path, sizeof child_path, path, c->string);
        } else {
            snprintf(child_path, sizeof child_path, "%s[%d]", path, index);
        }
        if ((cJSON_IsObject(c) || cJSON_IsArray(c)) &&
            check_duplicates(c, child_path, err) < 0)
            return -1;
    }
    return 0;
}

int jcfg_parse(const char *text, const char *file, cJSON **out, sim_err *err)
{
    *out = NULL;
    const char *where = file ? file : "<config>";
    /* ParseWithOpts hands back the error position itself, so this does not
     * depend on cJSON_GetErrorPtr's global state. */
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        if (!end || end < text)
            end = text;
        /* cJSON's error offset is at or just past the offending character,
         * and past the end for a truncated text or a trailing comma before
         * the closing brace. Point at the last real character then, and
         * quote some text before the position too, so the quote shows the
         * problem either way. */
        const char *q = text;
        while (isspace((unsigned char)*q))
            q++;
        if (!*q)
            return sim_errf(err, "%s:1:1: invalid JSON: no value", where);
        const char *rest = end;
        while (isspace((unsigned char)*rest))
            rest++;
        bool at_end = !*rest;
        if (!*end || isspace((unsigned char)*end)) {
            while (end > text && isspace((unsigned char)end[-1]))
                end--;
            if (end > text)
                end--;
        }
        int line = 1, col = 1;
        const char *line_start = text;
        for (const char *p = text; p < end; p++) {
            if (*p == '\n') {
                line++;
                col = 1;
                line_start = p + 1;
            } else {
                col++;
            }
        }
        const char *from = end - line_start > 12 ? end - 12 : line_start;
        while (from < end && isspace((unsigned char)*from))
            from++;
        size_t n = 0, limit = (size_t)(end - from) + 12;
        while (n < limit && from[n] && from[n] != '\n' && from[n] != '\r')
            n++;
        return sim_errf(err, "%s:%d:%d: invalid JSON near '%.*s'%s", where, line,
                        col, (int)n, from, at_end ? " (at end of input)" : "");
    }
    if (check_duplicates(root, "$", err) < 0) {
        cJSON_Delete(root);
        return sim_err_prefix(err, "%s", where);
    }
    *out = root;
    return 0;
}

int jcfg_load_file(const char *path, cJSON **out, sim_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return sim_errf(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return sim_errf(err, "%s: is a directory; expected a JSON file", path);
    }
    size_t cap = 4096, len = 0;
    char *buf = sim_xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = sim_xrealloc(buf, cap);
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0)
            break;
    }
    int read_failed = ferror(f), read_errno = errno;
    fclose(f);
    if (read_failed) {
        free(buf);
        return sim_errf(err, "%s: read error: %s", path, strerror(read_errno));
    }
    buf[len] = '\0';
    if (strlen(buf) != len) {
        free(buf);
        return sim_errf(err, "%s: contains a NUL byte; not a JSON text file", path);
    }
    int rc = jcfg_parse(buf, path, out, err);
    free(buf);
    return rc;
}

/* ---- validation and getters ----------------------------------------------- */

int jcfg_check_keys(const cJSON *obj, const char *path,
                    const char *const *allowed, sim_err *err)
{
    if (!cJSON_IsObject(obj))
        return type_error(err, path_or_root(path), "an object", obj);
    for (const cJSON *c = obj->child; c; c = c->next) {
        bool ok = false;
        for (int i = 0; allowed[i] && !ok; i++)
            ok = strcmp(allowed[i], c->string) == 0;
        if (ok)
            continue;
        char key_path[JCFG_PATH_MAX];
        path_join(key_path, sizeof key_path, path, c->string);
        if (!allowed[0])
            return sim_errf(err, "%s: unknown key; this object takes no keys",
                            key_path);
        char list[700] = "";
        size_t used = 0;
        for (int i = 0; allowed[i]; i++) {
            int w = snprintf(list + used, sizeof list - used, "%s%s",
                             i ? ", " : "", allowed[i]);
            if (w < 0 || (size_t)w >= sizeof list - used)
                break;
            used += (size_t)w;
        }
        return sim_errf(err, "%s: unknown key; expected one of: %s", key_path, list);
    }
    return 0;
}

int jcfg_num(cJSON *obj, const char *path, const char *key, double def,
             double min, double max, double *out, sim_err *err)
{
    SIM_ASSERT(min <= max);
    SIM_ASSERT(isnan(def) || (def >= min && def <= max));
    char key_path[JCFG_PATH_MAX], what[96];
    cJSON *item;
    if (lookup(obj, path, key, &item, key_path, err) < 0)
        return -1;
    describe_num_range(min, max, what, sizeof what);
    if (!item) {
        if (isnan(def))
            return sim_errf(err, "%s: missing required key; expected %s",
                            key_path, what);
        cJSON_AddNumberToObject(obj, key, def);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(item))
        return type_error(err, key_path, what, item);
    double v = item->valuedouble;
    if (!isfinite(v) || v < min || v > max)
        return type_error(err, key_path, what, item);
    *out = v;
    return 0;
}

int jcfg_int(cJSON *obj, const char *path, const char *key, int64_t def,
             int64_t min, int64_t max, int64_t *out, sim_err *err)
{
    SIM_ASSERT(min <= max);
    SIM_ASSERT(def == JCFG_REQUIRED_INT || (def >= min && def <= max));
    char key_path[JCFG_PATH_MAX], what[96];
    cJSON *item;
    if (lookup(obj, path, key, &item, key_path, err) < 0)
        return -1;
    describe_int_range(min, max, what, sizeof what);
    if (!item) {
        if (def == JCFG_REQUIRED_INT)
            return sim_errf(err, "%s: missing required key; expected %s",
                            key_path, what);
        cJSON_AddNumberToObject(obj, key, (double)def);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(item))
        return type_error(err, key_path, what, item);
    double v = item->valuedouble;
    /* 2^63 is exactly representable; anything at or beyond it is out of
     * int64_t's range, so compare before converting. */
    if (!isfinite(v) || v != floor(v) || v < -9223372036854775808.0 ||
        v >= 9223372036854775808.0)
        return type_error(err, key_path, what, item);
    int64_t iv = (int64_t)v;
    if (iv < min || iv > max)
        return type_error(err, key_path, what, item);
    *out = iv;
    return 0;
}

int jcfg_bool(cJSON *obj, const char *path, const char *key, int def,
              bool *out, sim_err *err)
{
    SIM_ASSERT(def >= -1 && def <= 1);
    char key_path[JCFG_PATH_MAX];
    cJSON *item;
    if (lookup(obj, path, key, &item, key_path, err) < 0)
        return -1;
    if (!item) {
        if (def < 0)
            return sim_errf(err, "%s: missing required key; expected true or false",
                            key_path);
        cJSON_AddBoolToObject(obj, key, def);
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(item))
        return type_error(err, key_path, "true or false", item);
    *out = cJSON_IsTrue(item);
    return 0;
}

int jcfg_str(cJSON *obj, const char *path, const char *key, const char *def,
             const char **out, sim_err *err)
{
    char key_path[JCFG_PATH_MAX];
    cJSON *item;
    if (lookup(obj, path, key, &item, key_path, err) < 0)
        return -1;
    if (!item) {
        if (!def)
            return sim_errf(err, "%s: missing required key; expected a string",
                            key_path);
        item = cJSON_AddStringToObject(obj, key, def);
        *out = item->valuestring;
        return 0;
    }
    if (!cJSON_IsString(item))
        return type_error(err, key_path, "a string", item);
    *out = item->valuestring;
    return 0;
}

int jcfg_obj(cJSON *obj, const char *path, const char *key, cJSON **out,
             char *child_path, sim_err *err)
{
    cJSON *item;
    if (lookup(obj, path, key, &item, child_path, err) < 0)
        return -1;
    if (!item) {
        item = cJSON_AddObjectToObject(obj, key);
    } else if (!cJSON_IsObject(item)) {
        return type_error(err, child_path, "an object", item);
    }
    *out = item;
    return 0;
}

/* ---- command-line overrides ----------------------------------------------- */

/* Parses "17" as an array index into arr; -1 if it is not one. */
static int array_index(const cJSON *arr, const char *comp)
{
    if (!*comp || strlen(comp) > 9)
        return -1;
    for (const char *p = comp; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    int i = atoi(comp);
    return i < cJSON_GetArraySize(arr) ? i : -1;
}

int jcfg_set(cJSON *root, const char *assignment, sim_err *err)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return sim_errf(err, "override '%s': expected key.path=value", assignment);
    if (!cJSON_IsObject(root))
        return sim_errf(err, "override '%s': the config is not a JSON object",
                        assignment);
    size_t klen = (size_t)(eq - assignment);
    char *keys = sim_xmalloc(klen + 1);
    memcpy(keys, assignment, klen);
    keys[klen] = '\0';

    /* A value that is valid JSON is taken as JSON (numbers, true, objects),
     * anything else as a string, so `policy=fcfs` needs no quotes. */
    const char *text = eq + 1;
    cJSON *value = cJSON_ParseWithOpts(text, NULL, 1);
    if (!value)
        value = cJSON_CreateString(text);
    SIM_ASSERT(value);

    /* Checked before walking so that a failed override leaves the tree
     * as it was: the walk below can only fail at nodes that already
     * existed, never after it has created one. */
    if (keys[0] == '.' || keys[klen - 1] == '.' || strstr(keys, "..")) {
        sim_errf(err, "override '%s': empty key in '%s'", assignment, keys);
        goto fail;
    }

    char path[JCFG_PATH_MAX] = "$";
    cJSON *node = root;
    char *comp = keys;
    for (;;) {
        char *dot = strchr(comp, '.');
        if (dot)
            *dot = '\0';
        char next_path[JCFG_PATH_MAX];
        int idx = -1;
        if (cJSON_IsArray(node)) {
            idx = array_index(node, comp);
            if (idx < 0) {
                sim_errf(err, "override '%s': %s is an array of %d; '%s' is not "
                         "an index in it", assignment, path,
                         cJSON_GetArraySize(node), comp);
                goto fail;
            }
            if (snprintf(next_path, sizeof next_path, "%s[%d]", path, idx) < 0)
                next_path[0] = '\0';
        } else {
            path_join(next_path, sizeof next_path, path, comp);
        }
        if (!dot) {   /* the final key: add or replace */
            if (idx >= 0)
                cJSON_ReplaceItemInArray(node, idx, value);
            else if (cJSON_GetObjectItemCaseSensitive(node, comp))
                cJSON_ReplaceItemInObjectCaseSensitive(node, comp, value);
            else
                cJSON_AddItemToObject(node, comp, value);
            free(keys);
            return 0;
        }
        cJSON *child = idx >= 0 ? cJSON_GetArrayItem(node, idx)
                                : cJSON_GetObjectItemCaseSensitive(node, comp);
        if (!child) {
            child = cJSON_AddObjectToObject(node, comp);
        } else if (!cJSON_IsObject(child) && !cJSON_IsArray(child)) {
            char desc[96];
            describe_value(child, desc, sizeof desc);
            sim_errf(err, "override '%s': %s is %s, not an object", assignment,
                     next_path, desc);
            goto fail;
        }
        node = child;
        memcpy(path, next_path, sizeof path);
        comp = dot + 1;
    }
fail:
    cJSON_Delete(value);
    free(keys);
    return -1;
}
