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
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* What the tree must satisfy beyond JSON syntax. cJSON keeps duplicate keys
 * and lookups return the first; a config with a duplicate is almost always
 * an editing mistake, so it is rejected. A number too large for a double
 * (1e999) parses as infinity, which no config value means, so it is
 * rejected here with its path rather than later as "got inf". Quadratic per
 * object, which is fine for configs; recursion is bounded by JCFG_MAX_DEPTH,
 * checked on the text before cJSON parses it. */
static int check_tree(const cJSON *node, const char *path, sim_err *err)
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
        if (cJSON_IsNumber(c) && !isfinite(c->valuedouble))
            return sim_errf(err, "%s: number out of range (beyond +-%.6g, the largest "
                            "a double holds)", child_path, DBL_MAX);
        if ((cJSON_IsObject(c) || cJSON_IsArray(c)) &&
            check_tree(c, child_path, err) < 0)
            return -1;
    }
    return 0;
}

/* Line and column (from 1) of `at` in text. */
static void text_position(const char *text, const char *at, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (const char *p = text; p < at; p++) {
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* The first place where arrays and objects nest deeper than JCFG_MAX_DEPTH
 * (outside strings), or NULL. cJSON's own limit (1000) gives only "invalid
 * JSON" and every walk over the tree recurses, so the limit is checked, and
 * named, before parsing. */
static const char *too_deep(const char *text)
{
    int depth = 0;
    bool in_string = false;
    for (const char *p = text; *p; p++) {
        if (in_string) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                in_string = false;
        } else if (*p == '"') {
            in_string = true;
        } else if (*p == '{' || *p == '[') {
            if (++depth > JCFG_MAX_DEPTH)
                return p;
        } else if (*p == '}' || *p == ']') {
            depth--;
        }
    }
    return NULL;
}

/* The first \u0000 escape in text, or NULL. cJSON decodes it to a NUL byte,
 * which silently cuts the string there ("Llama-3-8B\u0000x" would read as
 * Llama-3-8B). In valid JSON a backslash outside an escape appears only
 * inside strings, so every escape found here is in a string (or a key). */
static const char *nul_escape(const char *text)
{
    for (const char *p = text; *p; p++) {
        if (*p != '\\')
            continue;
        if (p[1] == 'u' && !strncmp(p + 2, "0000", 4))
            return p;
        if (p[1])
            p++;   /* an escaped character, possibly a backslash */
    }
    return NULL;
}

/* Formats a syntax error at cJSON's error position `end`. */
static int syntax_error(const char *text, const char *end, const char *where, sim_err *err)
{
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
    int line, col;
    text_position(text, end, &line, &col);
    const char *line_start = end - (col - 1);
    const char *from = end - line_start > 12 ? end - 12 : line_start;
    while (from < end && isspace((unsigned char)*from))
        from++;
    size_t n = 0, limit = (size_t)(end - from) + 12;
    while (n < limit && from[n] && from[n] != '\n' && from[n] != '\r')
        n++;
    return sim_errf(err, "%s:%d:%d: invalid JSON near '%.*s'%s", where, line,
                    col, (int)n, from, at_end ? " (at end of input)" : "");
}

/* Parses text strictly. *syntax is set when the text is not JSON at all
 * (so that jcfg_set can take it as a plain string); every other failure
 * (depth, NUL, duplicates, range) leaves it false. */
static int parse_strict(const char *text, const char *where, const char *root_path,
                        cJSON **out, bool *syntax, sim_err *err)
{
    *out = NULL;
    *syntax = false;
    const char *deep = too_deep(text);
    if (deep) {
        int line, col;
        text_position(text, deep, &line, &col);
        return sim_errf(err, "%s:%d:%d: arrays and objects nested deeper than %d levels",
                        where, line, col, JCFG_MAX_DEPTH);
    }
    /* ParseWithOpts hands back the error position itself, so this does not
     * depend on cJSON_GetErrorPtr's global state. */
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        *syntax = true;
        return syntax_error(text, end, where, err);
    }
    const char *nul = nul_escape(text);
    if (nul) {
        int line, col;
        text_position(text, nul, &line, &col);
        cJSON_Delete(root);
        return sim_errf(err, "%s:%d:%d: \\u0000 (a NUL character) in a string; strings "
                        "cannot hold one", where, line, col);
    }
    if (cJSON_IsNumber(root) && !isfinite(root->valuedouble)) {
        cJSON_Delete(root);
        return sim_errf(err, "%s: %s: number out of range (beyond +-%.6g, the largest a "
                        "double holds)", where, root_path, DBL_MAX);
    }
    if (check_tree(root, root_path, err) < 0) {
        cJSON_Delete(root);
        return sim_err_prefix(err, "%s", where);
    }
    *out = root;
    return 0;
}

int jcfg_parse(const char *text, const char *file, cJSON **out, sim_err *err)
{
    bool syntax;
    return parse_strict(text, file ? file : "<config>", "$", out, &syntax, err);
}

/* Reads at most JCFG_MAX_FILE_BYTES of fd into a NUL-terminated buffer;
 * fails on a NUL byte at once (binary data, /dev/zero) rather than at the
 * end. A regular file's size is checked before anything is read; a pipe or
 * device is read until the limit. */
static int read_bounded(int fd, const char *path, char **out, sim_err *err)
{
    *out = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return sim_errf(err, "%s: cannot read: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return sim_errf(err, "%s: is a directory; expected a JSON file", path);
    if (S_ISREG(st.st_mode) && st.st_size > JCFG_MAX_FILE_BYTES)
        return sim_errf(err, "%s: %lld bytes; a JSON input (config, experiment, model or "
                        "cost table) may have at most %d MiB", path, (long long)st.st_size,
                        JCFG_MAX_FILE_BYTES >> 20);
    size_t cap = 4096, len = 0;
    char *buf = sim_xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > JCFG_MAX_FILE_BYTES) {
                free(buf);
                return sim_errf(err, "%s: more than %d MiB; a JSON input (config, "
                                "experiment, model or cost table) may have at most %d MiB",
                                path, JCFG_MAX_FILE_BYTES >> 20, JCFG_MAX_FILE_BYTES >> 20);
            }
            cap *= 2;
            buf = sim_xrealloc(buf, cap);
        }
        ssize_t got = read(fd, buf + len, cap - len - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            free(buf);
            return sim_errf(err, "%s: read error: %s", path, strerror(e));
        }
        if (got == 0)
            break;
        if (memchr(buf + len, 0, (size_t)got)) {
            size_t at = len + (size_t)((char *)memchr(buf + len, 0, (size_t)got) - (buf + len));
            free(buf);
            return sim_errf(err, "%s: a NUL byte at offset %zu; not a JSON text file", path,
                            at);
        }
        len += (size_t)got;
    }
    buf[len] = '\0';
    *out = buf;
    return 0;
}

int jcfg_load_file(const char *path, cJSON **out, sim_err *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char where[4200];
    if (fd < 0)
        return sim_errf(err, "%s: cannot open: %s%s", path, strerror(errno),
                        sim_path_where(path, where, sizeof where));
    char *buf;
    int rc = read_bounded(fd, path, &buf, err);
    close(fd);
    if (rc)
        return -1;
    rc = jcfg_parse(buf, path, out, err);
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

    /* Checked before walking so that a failed override leaves the tree
     * as it was: the walk below can only fail at nodes that already
     * existed, never after it has created one. */
    if (keys[0] == '.' || keys[klen - 1] == '.' || strstr(keys, "..")) {
        sim_errf(err, "override '%s': empty key in '%s'", assignment, keys);
        free(keys);
        return -1;
    }

    /* A value that is valid JSON is taken as JSON (numbers, true, objects),
     * anything else as a string, so `policy=fcfs` needs no quotes. JSON
     * values get a file's checks (duplicate keys, depth, NUL, range), and a
     * value that starts like JSON ({, [ or ") must be JSON: a typo there
     * must not turn an object into a string. */
    const char *text = eq + 1;
    char value_path[JCFG_PATH_MAX];
    snprintf(value_path, sizeof value_path, "$.%s", keys);
    cJSON *value;
    bool syntax;
    sim_err perr;
    if (parse_strict(text, "value", value_path, &value, &syntax, &perr)) {
        const char *t = text;
        while (isspace((unsigned char)*t))
            t++;
        if (!syntax || *t == '{' || *t == '[' || *t == '"') {
            sim_errf(err, "override '%.200s%s': %s", assignment,
                     strlen(assignment) > 200 ? "..." : "", perr.msg);
            free(keys);
            return -1;
        }
        value = cJSON_CreateString(text);
    }
    SIM_ASSERT(value);

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

/* ---- where a message's value came from ------------------------------------ */

/* Whether the JSON path at the start of msg ("$.a.b[2].c: ...") is at or
 * under the path of the override keys "a.b" ("a.b.2" matches "$.a.b[2]"
 * too). */
static bool msg_under_keys(const char *msg, const char *keys, size_t klen)
{
    if (msg[0] != '$')
        return false;
    const char *m = msg + 1, *k = keys, *kend = keys + klen;
    while (k < kend) {
        const char *dot = memchr(k, '.', (size_t)(kend - k));
        size_t n = dot ? (size_t)(dot - k) : (size_t)(kend - k);
        if (m[0] == '.' && !strncmp(m + 1, k, n))
            m += 1 + n;
        else if (m[0] == '[' && m[1] == '"' && !strncmp(m + 2, k, n) && m[2 + n] == '"' &&
                 m[3 + n] == ']')
            m += 4 + n;
        else if (m[0] == '[' && !strncmp(m + 1, k, n) && m[1 + n] == ']')
            m += 2 + n;
        else
            return false;
        k += n + (dot ? 1 : 0);
        if (!dot)
            break;
    }
    return *m == ':' || *m == '.' || *m == '[' || *m == ',' || *m == ' ' || !*m;
}

int jcfg_err_source(sim_err *err, const char *file, char *const *sets, int n_sets)
{
    for (int i = n_sets - 1; i >= 0; i--) {
        const char *eq = strchr(sets[i], '=');
        if (eq && msg_under_keys(err->msg, sets[i], (size_t)(eq - sets[i])))
            return sim_err_prefix(err, "command line --set %.200s%s", sets[i],
                                  strlen(sets[i]) > 200 ? "..." : "");
    }
    return file ? sim_err_prefix(err, "%s", file) : -1;
}
