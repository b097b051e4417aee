/* Agentic session traces, kv-cache-tester / Weka format (see weka.h), and
 * the workload source "weka" that replays them through the session player
 * (session_play.h).
 *
 * Each line is one session, parsed whole with cJSON (a session of a
 * thousand calls with long contexts is a few MB of text); the program keeps
 * only each call's new ids (session_play.h), so memory is the live
 * sessions' new ids, not the file. */
#include "traces/weka.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sim/jsoncfg.h"
#include "traces/trace_read.h"

struct weka_reader {
    char **files;
    size_t n_files, at;
    FILE *f;
    uint64_t line;
    char *buf;
    size_t buf_cap;
    bool skip_bad, output_ids;
    uint64_t bad, zero;
    char first_bad[1024];
    uint64_t *ids, *next_ids;
    size_t ids_cap, next_cap;
    /* warm prefix: the session's first warm_n blocks, as its first call has them */
    double warm_frac;
    int32_t warm_n, n_first;
    bool have_first;
    uint64_t *first;
    size_t first_cap;
};

void weka_set_warm_prefix(weka_reader *r, double fraction) { r->warm_frac = fraction; }

/* The call's leading blocks that are the session's warm prefix (the same
 * as its first call's, up to warm_n) become ids shared by every session. */
static void apply_warm(weka_reader *r, int32_t n)
{
    int32_t k = n < r->warm_n ? n : r->warm_n;
    if (!r->have_first) {
        sim_grow((void **)&r->first, &r->first_cap, (size_t)k + 1, sizeof *r->first);
        if (k > 0)
            memcpy(r->first, r->ids, (size_t)k * sizeof *r->first);
        r->n_first = k;
        r->have_first = true;
    }
    for (int32_t j = 0; j < k && j < r->n_first && r->ids[j] == r->first[j]; j++)
        r->ids[j] = SP_SHARED_ID | (uint64_t)j;
}

/* ---- files ---------------------------------------------------------------------- */

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_files(weka_reader *r, const char *path, sim_err *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        char where[512];
        return sim_errf(err, "%s: cannot open: %s%s", path, strerror(errno),
                        sim_path_where(path, where, sizeof where));
    }
    if (!S_ISDIR(sb.st_mode)) {
        r->files = sim_xmalloc(sizeof *r->files);
        r->files[0] = sim_xstrdup(path);
        r->n_files = 1;
        return 0;
    }
    DIR *d = opendir(path);
    if (!d)
        return sim_errf(err, "%s: cannot read the folder: %s", path, strerror(errno));
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !(has_suffix(e->d_name, ".json") ||
                                     has_suffix(e->d_name, ".jsonl")))
            continue;
        size_t n = strlen(path) + strlen(e->d_name) + 2;
        char *full = sim_xmalloc(n);
        snprintf(full, n, "%s/%s", path, e->d_name);
        sim_grow((void **)&r->files, &cap, r->n_files + 1, sizeof *r->files);
        r->files[r->n_files++] = full;
    }
    closedir(d);
    if (!r->n_files)
        return sim_errf(err, "%s: no *.json or *.jsonl files in the folder", path);
    qsort(r->files, r->n_files, sizeof *r->files, cmp_str);
    return 0;
}

weka_reader *weka_open(const char *path, bool skip_bad, bool output_ids, sim_err *err)
{
    weka_reader *r = sim_xcalloc(1, sizeof *r);
    r->skip_bad = skip_bad;
    r->output_ids = output_ids;
    if (list_files(r, path, err)) {
        weka_close(r);
        return NULL;
    }
    return r;
}

void weka_close(weka_reader *r)
{
    if (!r)
        return;
    if (r->f)
        fclose(r->f);
    for (size_t i = 0; i < r->n_files; i++)
        free(r->files[i]);
    free(r->files);
    free(r->buf);
    free(r->ids);
    free(r->next_ids);
    free(r->first);
    free(r);
}

int weka_rewind(weka_reader *r, sim_err *err)
{
    (void)err;
    if (r->f)
        fclose(r->f);
    r->f = NULL;
    r->at = 0;
    r->line = 0;
    return 0;
}

uint64_t weka_bad_skipped(const weka_reader *r, const char **first_bad)
{
    if (first_bad)
        *first_bad = r->first_bad;
    return r->bad;
}

uint64_t weka_zero_raised(const weka_reader *r) { return r->zero; }

/* The next non-blank line into r->buf: its length, 0 at the end of every
 * file, -1 on error. */
static ssize_t next_line(weka_reader *r, sim_err *err)
{
    for (;;) {
        if (!r->f) {
            if (r->at == r->n_files)
                return 0;
            r->f = fopen(r->files[r->at], "r");
            r->line = 0;
            if (!r->f)
                return sim_errf(err, "%s: cannot open: %s", r->files[r->at], strerror(errno));
        }
        errno = 0;
        ssize_t n = getline(&r->buf, &r->buf_cap, r->f);
        if (n < 0) {
            if (ferror(r->f))
                return sim_errf(err, "%s: cannot read: %s", r->files[r->at], strerror(errno));
            fclose(r->f);
            r->f = NULL;
            r->at++;
            continue;
        }
        r->line++;
        if (memchr(r->buf, 0, (size_t)n))
            return sim_errf(err, "%s:%llu: binary data (a NUL byte); expected one JSON "
                            "object per line", r->files[r->at], (unsigned long long)r->line);
        size_t i = 0;
        while (i < (size_t)n && strchr(" \t\r\n", r->buf[i]))
            i++;
        if (i < (size_t)n)
            return n;
    }
}

/* ---- one session ----------------------------------------------------------------- */

/* Text of a value for messages, cut to 48 bytes. */
static void got(const cJSON *v, char *buf, size_t size)
{
    char *s = v ? cJSON_PrintUnformatted(v) : NULL;
    trace_quote((trace_span){s ? s : "(nothing)", s ? strlen(s) : 9}, buf, size);
    free(s);
}

static int bad(sim_err *err, const char *where, const char *key, const char *expected,
               const cJSON *v)
{
    char q[256];
    got(v, q, sizeof q);
    return sim_errf(err, "%s%s%s: expected %s, got \"%s\"", where, *where ? "." : "", key,
                    expected, q);
}

/* A number at obj.key in [min, max]; def when absent (NAN: required). */
static int num(const cJSON *obj, const char *where, const char *key, double def, double min,
               double max, const char *expected, double *out, sim_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        if (isnan(def))
            return sim_errf(err, "%s%s%s: missing; expected %s", where, *where ? "." : "", key,
                            expected);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= min && v->valuedouble <= max))
        return bad(err, where, key, expected, v);
    *out = v->valuedouble;
    return 0;
}

static int tokens(const cJSON *obj, const char *where, const char *key, int32_t *out,
                  sim_err *err)
{
    double x = 0;
    if (num(obj, where, key, NAN, 0, TRACE_MAX_TOKENS, "an integer in [0, 10000000]", &x, err))
        return -1;
    if (x != floor(x))
        return bad(err, where, key, "an integer in [0, 10000000]",
                   cJSON_GetObjectItemCaseSensitive(obj, key));
    *out = (int32_t)x;
    return 0;
}

/* obj.hash_ids into *ids (grown): their count, or -1. */
static int32_t hash_ids(const cJSON *obj, const char *where, uint64_t **ids, size_t *cap,
                        sim_err *err)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, "hash_ids");
    if (!a || cJSON_IsNull(a))
        return 0;
    if (!cJSON_IsArray(a))
        return bad(err, where, "hash_ids", "an array of integers >= 0", a);
    int32_t n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= 9007199254740992.0 ||
            v->valuedouble != floor(v->valuedouble)) {
            char key[64];
            snprintf(key, sizeof key, "hash_ids[%d]", n);
            return bad(err, where, key, "an integer in [0, 2^53)", v);
        }
        sim_grow((void **)ids, cap, (size_t)n + 1, sizeof **ids);
        (*ids)[n++] = (uint64_t)v->valuedouble;
    }
    return n;
}

typedef struct call_info {
    int32_t in, out, n_ids;
    double t_s, api_s, think_s;   /* think_s < 0: absent */
} call_info;

/* A call's fields (ids into r->ids). */
static int read_call(weka_reader *r, const cJSON *q, const char *where, int32_t block,
                     double t_base_s, call_info *c, sim_err *err)
{
    if (tokens(q, where, "in", &c->in, err) || tokens(q, where, "out", &c->out, err) ||
        num(q, where, "t", NAN, 0, 1e12, "seconds >= 0", &c->t_s, err) ||
        num(q, where, "api_time", 0, 0, 1e12, "seconds >= 0", &c->api_s, err) ||
        num(q, where, "think_time", -1, 0, 1e12, "seconds >= 0", &c->think_s, err))
        return -1;
    if (c->t_s < t_base_s)   /* a subagent's request timed from its entry */
        c->t_s += t_base_s;
    c->n_ids = hash_ids(q, where, &r->ids, &r->ids_cap, err);
    if (c->n_ids < 0)
        return -1;
    int64_t most = ((int64_t)c->in + block - 1) / block;
    if (c->n_ids > most)
        return sim_errf(err, "%s.hash_ids: expected at most %lld ids (one per %d input "
                        "tokens), got %d", where, (long long)most, block, c->n_ids);
    return 0;
}

static bool is_call(const cJSON *q)
{
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(q, "type");
    return !ty || !cJSON_IsString(ty) || strcmp(ty->valuestring, "subagent");
}

static int check_type(const cJSON *q, const char *where, bool sub, sim_err *err)
{
    if (!cJSON_IsObject(q))
        return sim_errf(err, "%s: expected an object", where);
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(q, "type");
    if (!ty)
        return 0;   /* a call */
    if (cJSON_IsString(ty) && (!strcmp(ty->valuestring, "n") || !strcmp(ty->valuestring, "s") ||
                               (!sub && !strcmp(ty->valuestring, "subagent"))))
        return 0;
    return bad(err, where, "type", sub ? "\"n\" or \"s\" (subagents do not nest)"
                                       : "\"n\", \"s\" or \"subagent\"", ty);
}

/* The calls of one request array as a thread of p (the last one added).
 * Subagent entries are left for the caller (spawns[] gets their indexes in
 * the array, for the top level). */
static int read_thread(weka_reader *r, const cJSON *reqs, const char *where, bool sub,
                       int32_t block, double t_base_s, sp_program *p, sim_err *err)
{
    int n = cJSON_GetArraySize(reqs);
    double prev_end_s = t_base_s;
    char w[160], wn[200];
    for (int i = 0; i < n; i++) {
        const cJSON *q = cJSON_GetArrayItem(reqs, i);
        snprintf(w, sizeof w, "%srequests[%d]", where, i);
        if (check_type(q, w, sub, err))
            return -1;
        if (!is_call(q)) {   /* a run of subagent entries: one spawn */
            int k = i;
            double t_s;
            if (num(q, w, "t", NAN, 0, 1e12, "seconds >= 0", &t_s, err))
                return -1;
            while (k < n && !is_call(cJSON_GetArrayItem(reqs, k)))
                k++;
            sp_add_spawn(p, k - i, llround(t_s * 1e9));
            i = k - 1;
            continue;
        }
        call_info c;
        if (read_call(r, q, w, block, t_base_s, &c, err))
            return -1;
        if (c.in == 0 || c.out == 0)
            r->zero++;
        double gap_s = c.think_s >= 0 ? c.think_s : c.t_s - prev_end_s;
        prev_end_s = c.t_s + c.api_s;
        int32_t id_tokens = 0;
        if (r->output_ids && c.n_ids) {
            /* the next call's prompt shows this call's answer's blocks */
            const cJSON *nq = NULL;
            for (int j = i + 1; j < n && !nq; j++)
                if (is_call(cJSON_GetArrayItem(reqs, j)))
                    nq = cJSON_GetArrayItem(reqs, j);
            snprintf(wn, sizeof wn, "%s (next)", w);
            int32_t m = nq ? hash_ids(nq, wn, &r->next_ids, &r->next_cap, err) : 0;
            if (m < 0)
                return -1;
            int64_t whole = ((int64_t)c.in + c.out) / block;
            if (m > c.n_ids && !memcmp(r->next_ids, r->ids, (size_t)c.n_ids * sizeof *r->ids)) {
                int32_t k = (int32_t)(whole < m ? whole : m);
                if (k > c.n_ids) {
                    sim_grow((void **)&r->ids, &r->ids_cap, (size_t)k, sizeof *r->ids);
                    memcpy(r->ids + c.n_ids, r->next_ids + c.n_ids,
                           (size_t)(k - c.n_ids) * sizeof *r->ids);
                    c.n_ids = k;
                    id_tokens = k * block;
                }
            }
        }
        if (r->warm_n)
            apply_warm(r, c.n_ids);
        sp_add_call(p, c.in ? c.in : 1, c.out ? c.out : 1, llround(c.t_s * 1e9),
                    llround((gap_s > 0 ? gap_s : 0) * 1e9), r->ids, c.n_ids, id_tokens);
    }
    return 0;
}

static int read_session(weka_reader *r, const cJSON *root, sp_program *p, sim_err *err)
{
    if (!cJSON_IsObject(root))
        return sim_errf(err, "expected a JSON object (a session) per line");
    double block;
    if (num(root, "", "block_size", 64, 1, 1 << 20, "an integer in [1, 1048576]", &block, err))
        return -1;
    if (block != floor(block))
        return bad(err, "", "block_size", "an integer in [1, 1048576]",
                   cJSON_GetObjectItemCaseSensitive(root, "block_size"));
    const cJSON *scope = cJSON_GetObjectItemCaseSensitive(root, "hash_id_scope");
    if (scope && !(cJSON_IsString(scope) && (!strcmp(scope->valuestring, "local") ||
                                             !strcmp(scope->valuestring, "global"))))
        return bad(err, "", "hash_id_scope", "\"local\" or \"global\"", scope);
    const cJSON *reqs = cJSON_GetObjectItemCaseSensitive(root, "requests");
    if (!cJSON_IsArray(reqs))
        return bad(err, "", "requests", "an array of requests", reqs);
    p->block_tokens = (int32_t)block;
    p->global_ids = scope && !strcmp(scope->valuestring, "global");
    double tool, sys;
    if (num(root, "", "tool_tokens", 0, 0, 1e9, "tokens >= 0", &tool, err) ||
        num(root, "", "system_tokens", 0, 0, 1e9, "tokens >= 0", &sys, err))
        return -1;
    r->warm_n = (int32_t)floor(r->warm_frac * (tool + sys) / block);
    r->have_first = false;
    sp_add_thread(p);
    if (read_thread(r, reqs, "", false, p->block_tokens, 0, p, err))
        return -1;
    /* the subagents, spawn after spawn, each entry a thread */
    int n = cJSON_GetArraySize(reqs);
    int32_t item = p->threads[0].first_item;
    for (int i = 0; i < n; i++) {
        const cJSON *q = cJSON_GetArrayItem(reqs, i);
        if (is_call(q)) {
            item++;
            continue;
        }
        while (!p->items[item].spawn)
            item++;
        sp_set_children(p, item, (int32_t)p->n_threads);
        int k = i;
        for (; k < n && !is_call(cJSON_GetArrayItem(reqs, k)); k++) {
            const cJSON *e = cJSON_GetArrayItem(reqs, k);
            char w[64];
            double t_s;
            snprintf(w, sizeof w, "requests[%d]", k);
            const cJSON *sub = cJSON_GetObjectItemCaseSensitive(e, "requests");
            if (num(e, w, "t", NAN, 0, 1e12, "seconds >= 0", &t_s, err))
                return -1;
            if (sub && !cJSON_IsArray(sub))
                return bad(err, w, "requests", "an array of requests", sub);
            sp_add_thread(p);
            snprintf(w, sizeof w, "requests[%d].", k);
            if (sub && read_thread(r, sub, w, true, p->block_tokens, t_s, p, err))
                return -1;
        }
        item++;
        i = k - 1;
    }
    sp_program_finish(p);
    return 0;
}

int weka_next(weka_reader *r, sp_program *p, sim_err *err)
{
    for (;;) {
        sp_program_clear(p);
        ssize_t n = next_line(r, err);
        if (n <= 0)
            return (int)n;
        const char *file = r->files[r->at];
        cJSON *root = cJSON_ParseWithLength(r->buf, (size_t)n);
        int rc = 0;
        if (!root) {
            const char *at = cJSON_GetErrorPtr();
            size_t off = at && at >= r->buf && at <= r->buf + n ? (size_t)(at - r->buf) : 0;
            rc = sim_errf(err, "JSON syntax error at byte %zu; expected one JSON object (a "
                          "session) per line", off + 1);
        } else {
            rc = read_session(r, root, p, err);
            cJSON_Delete(root);
        }
        if (rc == 0)
            return 1;
        sim_err_prefix(err, "%s:%llu", file, (unsigned long long)r->line);
        if (!r->skip_bad)
            return -1;
        if (!r->bad++)
            snprintf(r->first_bad, sizeof r->first_bad, "%s", err->msg);
    }
}

bool weka_sniff(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return false;
    if (S_ISDIR(sb.st_mode)) {   /* its first *.json or *.jsonl file is one */
        sim_err err;
        weka_reader *r = weka_open(path, false, false, &err);
        bool yes = r && weka_sniff(r->files[0]);
        weka_close(r);
        return yes;
    }
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char head[4096];
    size_t n = fread(head, 1, sizeof head - 1, f);
    fclose(f);
    head[n] = 0;
    const char *s = head;
    if (!strncmp(s, "\xef\xbb\xbf", 3))
        s += 3;
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    return *s == '{' && strstr(s, "\"requests\"") &&
           (strstr(s, "\"hash_ids\"") || strstr(s, "\"block_size\""));
}

/* ---- statistics ----------------------------------------------------------------------- */

typedef struct chain_set {
    uint64_t *key;
    size_t cap, n;
} chain_set;

/* Adds k (never 0); returns whether it was there. */
static bool chain_add(chain_set *s, uint64_t k)
{
    if (2 * (s->n + 1) > s->cap) {
        chain_set old = *s;
        s->cap = old.cap ? 2 * old.cap : 4096;
        s->key = sim_xcalloc(s->cap, sizeof *s->key);
        s->n = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.key[i])
                chain_add(s, old.key[i]);
        free(old.key);
    }
    size_t i = (size_t)sim_hash_mix(0, k) & (s->cap - 1);
    for (; s->key[i]; i = (i + 1) & (s->cap - 1))
        if (s->key[i] == k)
            return true;
    s->key[i] = k;
    s->n++;
    return false;
}

typedef struct stats_ctx {
    weka_stats *st;
    chain_set set;
    size_t turn_cap;
    double hit, in;
    double first_t, last_t;
    uint64_t main_calls;
} stats_ctx;

static void stats_call(void *ctx, const sp_program *p, int32_t thread, const sp_item *it,
                       const uint64_t *ids, int32_t n)
{
    stats_ctx *c = ctx;
    weka_stats *st = c->st;
    uint64_t h = UINT64_C(0x736572766573696d);
    int32_t hits = 0;
    bool chain = true;
    for (int32_t i = 0; i < n; i++) {
        h = sim_hash_mix(h, ids[i]) | 1;
        bool seen = chain_add(&c->set, h);
        if (chain && seen)
            hits++;
        else
            chain = false;
    }
    double hit = (double)hits * p->block_tokens;
    if (hit > it->input_tokens)
        hit = it->input_tokens;
    sim_grow((void **)&st->turn_hit, &c->turn_cap, st->calls + 1, sizeof *st->turn_hit);
    st->turn_hit[st->calls++] = hit / it->input_tokens;
    c->hit += hit;
    c->in += it->input_tokens;
    st->output_tokens += it->output_tokens;
    st->block_tokens = p->block_tokens;
    if (thread == 0) {
        double t = (double)it->t_ns / 1e9;
        if (!c->main_calls++) {
            c->first_t = t;
            st->first_in_sum += it->input_tokens;
        }
        c->last_t = t;
        if (it->last_call)
            st->last_in_sum += it->input_tokens;
    }
}

int weka_stats_read(const char *path, bool skip_bad, weka_stats *st, sim_err *err)
{
    memset(st, 0, sizeof *st);
    weka_reader *r = weka_open(path, skip_bad, false, err);
    if (!r)
        return -1;
    sp_program p;
    sp_program_init(&p);
    stats_ctx c = {.st = st};
    size_t cap = 0;
    int rc;
    while ((rc = weka_next(r, &p, err)) == 1) {
        c.hit = c.in = 0;
        c.main_calls = 0;
        if (c.set.key)
            memset(c.set.key, 0, c.set.cap * sizeof *c.set.key);
        c.set.n = 0;
        sp_program_visit(&p, stats_call, &c);
        size_t i = (size_t)st->sessions++;
        if (i == cap) {   /* the three per-session arrays share a capacity */
            cap = cap ? 2 * cap : 64;
            st->session_hit = sim_xrealloc(st->session_hit, cap * sizeof(double));
            st->calls_per_session = sim_xrealloc(st->calls_per_session, cap * sizeof(double));
            st->session_minutes = sim_xrealloc(st->session_minutes, cap * sizeof(double));
        }
        st->session_hit[i] = c.in > 0 ? c.hit / c.in : 0;
        st->calls_per_session[i] = (double)c.main_calls;
        st->session_minutes[i] = (c.last_t - c.first_t) / 60;
        st->subagents += p.n_threads - 1;
        st->hit_tokens += c.hit;
        st->input_tokens += c.in;
    }
    if (rc == 0 && st->sessions == 0)
        rc = sim_errf(err, "%s: no session to replay%s", path,
                      skip_bad ? " (every one malformed and skipped)" : "");
    st->bad_skipped = weka_bad_skipped(r, NULL);
    snprintf(st->first_bad, sizeof st->first_bad, "%s", r->first_bad);
    free(c.set.key);
    sp_program_fini(&p);
    weka_close(r);
    return rc < 0 ? -1 : 0;
}

void weka_stats_fini(weka_stats *st)
{
    free(st->calls_per_session);
    free(st->session_hit);
    free(st->session_minutes);
    free(st->turn_hit);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double weka_quantile(double *v, uint64_t n, double p)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    double pos = p * (double)(n - 1);
    uint64_t lo = (uint64_t)pos;
    if (lo + 1 >= n)
        return v[n - 1];
    return v[lo] + (v[lo + 1] - v[lo]) * (pos - (double)lo);
}

/* ---- the source -------------------------------------------------------------------------- */

typedef struct weka_src {
    weka_reader *r;
    sp_player *pl;
    bool cycle;
    uint64_t plays;
} weka_src;

static int weka_program(void *ctx, sp_program *p, sim_err *err)
{
    weka_src *s = ctx;
    int rc = weka_next(s->r, p, err);
    if (rc == 0 && s->cycle && s->plays) {
        s->plays = 0;
        if (weka_rewind(s->r, err))
            return -1;
        rc = weka_next(s->r, p, err);
    }
    if (rc == 1)
        s->plays++;
    return rc;
}

static void weka_src_destroy(void *state)
{
    weka_src *s = state;
    if (!s)
        return;
    sp_player_destroy(s->pl);
    weka_close(s->r);
    free(s);
}

static int weka_init(const wl_setup *setup, cJSON *params, const char *path, void **state,
                     sim_err *err)
{
    static const char *const keys[] = {WL_COMMON_KEYS, "path", "skip_bad", "output_ids",
                                       "cycle", "warm_prefix", SP_OPT_KEYS, NULL};
    const char *file;
    bool skip_bad, output_ids, cycle;
    double warm;
    sp_opts o;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_num(params, path, "warm_prefix", 0, 0, 1, &warm, err) ||
        jcfg_str(params, path, "path", JCFG_REQUIRED_STR, &file, err) ||
        jcfg_bool(params, path, "skip_bad", 0, &skip_bad, err) ||
        jcfg_bool(params, path, "output_ids", 0, &output_ids, err) ||
        jcfg_bool(params, path, "cycle", 0, &cycle, err) ||
        sp_opts_parse(params, path, &o, err))
        return -1;
    if (cycle && !o.max_sessions) {
        sp_opts_fini(&o);
        return sim_errf(err, "%s.cycle: needs max_sessions (else the replay never ends)", path);
    }
    weka_src *s = sim_xcalloc(1, sizeof *s);
    s->cycle = cycle;
    s->r = weka_open(file, skip_bad, output_ids, err);
    if (!s->r) {
        sim_err_prefix(err, "%s.path", path);
        sp_opts_fini(&o);
        free(s);
        return -1;
    }
    weka_set_warm_prefix(s->r, warm);
    s->pl = sp_player_create(&o, setup->arrival_rng, weka_program, s);
    *state = s;
    return 0;
}

static int weka_src_next(void *state, sim_time_ns now, wl_request *out, sim_err *err)
{
    weka_src *s = state;
    int rc = sp_player_next(s->pl, now, out, err);
    if (rc == WL_END && sp_player_trees(s->pl) == 0)
        return sim_errf(err, "session trace: no session to replay");
    return rc;
}

static int weka_src_complete(void *state, sim_time_ns now, uint64_t session_id)
{
    weka_src *s = state;
    return sp_player_complete(s->pl, now, session_id);
}

static int weka_src_complete_any(void *state, sim_time_ns now)
{
    (void)state, (void)now;
    return 0;
}

static void weka_src_counts(const void *state, wl_counts *out)
{
    const weka_src *s = state;
    const char *first;
    uint64_t n = weka_bad_skipped(s->r, &first);
    out->bad_rows += n;
    if (n && !out->first_bad)
        out->first_bad = first;
    out->zero_raised += weka_zero_raised(s->r);
}

const wl_source_ops wl_weka = {
    .name = "weka",
    .init = weka_init,
    .next = weka_src_next,
    .destroy = weka_src_destroy,
    .on_complete = weka_src_complete_any,
    .on_complete_session = weka_src_complete,
    .counts = weka_src_counts,
};
