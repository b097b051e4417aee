/* The streaming trace reader and the parsing helpers formats share (see
 * trace_read.h).
 *
 * Buffering. The file is read in chunks into one buffer (64 KiB, doubled
 * only when a single line does not fit, up to TRACE_MAX_LINE_BYTES); lines
 * are found with memchr and handed to the format in place, NUL-terminated,
 * so a row costs no allocation and no copy. When the buffer ends inside a
 * line, the partial line is moved to the front before the next read. A
 * byte is always kept free after the data so that a last line without a
 * newline can be terminated too.
 *
 * Times. A format returns a row's time in any origin (epoch ns for wall-
 * clock timestamps, ms scaled to ns for Mooncake); the reader subtracts the
 * first row's time, so every trace starts at 0, and rejects a row whose time
 * is before the previous row's (a malformed row, skippable). Rows a format's
 * filter leaves out count here too: the origin is the file's first row.
 *
 * Field parsers take spans and never read past them; they accept spaces
 * around the text. Numbers are parsed by hand (no strtol on the hot path:
 * it needs a NUL-terminated string and honours the locale). */
#include "traces/trace_read.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The read buffer's starting size. The fuzz build makes it tiny, so that
 * lines span refills and the buffer grows all the time. */
#ifndef TRACE_BUF_BYTES
#define TRACE_BUF_BYTES (64u << 10)
#endif

extern const trace_format trace_fmt_azure, trace_fmt_mooncake, trace_fmt_burstgpt,
    trace_fmt_lengths, trace_fmt_native_csv, trace_fmt_native_jsonl;

/* Recognition tries these in order. */
const trace_format *const trace_formats[] = {
    &trace_fmt_azure,
    &trace_fmt_mooncake,
    &trace_fmt_burstgpt,
    &trace_fmt_lengths,
    &trace_fmt_native_csv,
    &trace_fmt_native_jsonl,
    NULL,
};

struct trace_reader {
    FILE *f;
    bool close_f;
    char *name;
    const trace_format *fmt;
    trace_format_pick *pick;   /* chooses fmt from the first line, or NULL */
    void *state;
    bool skip_bad;

    char *buf;
    size_t cap, start, end;    /* unread data is buf[start, end) */
    bool eof;
    uint64_t line;             /* number of the last line read */

    char *pending;             /* the first line, when it is data */
    size_t pending_len;
    uint64_t pending_line;

    bool have_base;
    sim_time_ns base_ns, prev_ns;

    uint64_t *ids;             /* prefix block ids of the current row */
    size_t ids_cap;

    trace_read_counts counts;
    char first_bad[sizeof(sim_err)];
};

const trace_format *trace_format_find(const char *name, const char *path, sim_err *err)
{
    return SIM_REGISTRY_FIND(trace_formats, name, "trace format", path, err);
}

/* ---- lines ---------------------------------------------------------------- */

static bool is_blank(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!isspace((unsigned char)p[i]))
            return false;
    return true;
}

/* 1: *line is the next line (NUL-terminated, '\r\n' stripped); 0: end of
 * file; -1: error (binary data, a line too long, a read error). */
static int read_line(trace_reader *r, char **line, size_t *len, sim_err *err)
{
    for (;;) {
        char *p = r->buf + r->start;
        size_t avail = r->end - r->start;
        char *nl = avail ? memchr(p, '\n', avail) : NULL;
        if (nl || (r->eof && avail)) {
            size_t n = nl ? (size_t)(nl - p) : avail;
            r->start += nl ? n + 1 : n;
            p[n] = 0;
            r->line++;
            if (n && p[n - 1] == '\r')
                p[--n] = 0;
            if (memchr(p, 0, n))
                return sim_errf(err, "%s:%llu: binary data (a NUL byte); expected a text "
                                "trace", r->name, (unsigned long long)r->line);
            *line = p;
            *len = n;
            return 1;
        }
        if (r->eof)
            return 0;
        if (r->start) {
            memmove(r->buf, p, avail);
            r->start = 0;
            r->end = avail;
        }
        if (r->end + 1 >= r->cap) {
            if (r->cap >= TRACE_MAX_LINE_BYTES)
                return sim_errf(err, "%s:%llu: line longer than %u MiB; expected a text "
                                "trace with one row per line", r->name,
                                (unsigned long long)r->line + 1, TRACE_MAX_LINE_BYTES >> 20);
            r->cap *= 2;
            r->buf = sim_xrealloc(r->buf, r->cap);
        }
        errno = 0;
        size_t got = fread(r->buf + r->end, 1, r->cap - 1 - r->end, r->f);
        r->end += got;
        if (got == 0) {
            if (ferror(r->f))
                return sim_errf(err, "%s: read error after line %llu: %s", r->name,
                                (unsigned long long)r->line,
                                errno ? strerror(errno) : "unknown error");
            r->eof = true;
        }
    }
}

/* Reads the first non-blank line and lets the format take its header. */
static int read_header(trace_reader *r, const char *format, sim_err *err)
{
    char *line;
    size_t len;
    int rc;
    while ((rc = read_line(r, &line, &len, err)) == 1 && is_blank(line, len))
        ;
    if (rc < 0)
        return -1;
    if (rc == 0)
        return sim_errf(err, "%s: empty file; expected a trace", r->name);
    if (r->line == 1 && len >= 3 && !memcmp(line, "\xEF\xBB\xBF", 3)) {
        line += 3;   /* a UTF-8 byte order mark */
        len -= 3;
    }
    if (!r->fmt && r->pick)
        format = r->pick(line, len);
    if (!r->fmt && format && *format && strcmp(format, "auto")) {
        r->fmt = trace_format_find(format, "format", err);
        if (!r->fmt)
            return sim_err_prefix(err, "%s", r->name);
    }
    if (!r->fmt) {
        for (int i = 0; trace_formats[i] && !r->fmt; i++)
            if (trace_formats[i]->sniff(line, len))
                r->fmt = trace_formats[i];
        if (!r->fmt) {
            char q[128], names[256] = "";
            size_t used = 0;
            for (int i = 0; trace_formats[i]; i++)
                used += (size_t)snprintf(names + used, sizeof names - used, "%s%s",
                                         i ? ", " : "", trace_formats[i]->name);
            trace_quote((trace_span){line, len}, q, sizeof q);
            return sim_errf(err, "%s:%llu: cannot tell the trace format from the first "
                            "line \"%s\"; give the format (one of: %s)", r->name,
                            (unsigned long long)r->line, q, names);
        }
    }
    if (!r->state)
        r->state = sim_xcalloc(1, r->fmt->state_size ? r->fmt->state_size : 1);
    rc = r->fmt->header(r, line, len, err);
    if (rc < 0)
        return sim_err_prefix(err, "%s:%llu", r->name, (unsigned long long)r->line);
    if (rc == 0) {
        r->pending = line;
        r->pending_len = len;
        r->pending_line = r->line;
    }
    return 0;
}

static trace_reader *reader_open(FILE *f, const char *name, const char *format,
                                trace_format_pick *pick, bool skip_bad, sim_err *err)
{
    trace_reader *r = sim_xcalloc(1, sizeof *r);
    r->f = f;
    r->close_f = f != stdin;
    r->name = sim_xstrdup(name);
    r->pick = pick;
    r->skip_bad = skip_bad;
    r->cap = TRACE_BUF_BYTES;
    r->buf = sim_xmalloc(r->cap);
    r->first_bad[0] = 0;
    r->counts.first_bad = r->first_bad;
    if (read_header(r, format, err)) {
        trace_reader_close(r);
        return NULL;
    }
    return r;
}

trace_reader *trace_reader_open_stream(FILE *f, const char *name, const char *format,
                                       bool skip_bad, sim_err *err)
{
    return reader_open(f, name, format, NULL, skip_bad, err);
}

static trace_reader *open_path(const char *path, const char *format, trace_format_pick *pick,
                               bool skip_bad, sim_err *err)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        char where[4200];
        sim_errf(err, "%s: cannot open: %s%s", path, strerror(errno),
                 sim_path_where(path, where, sizeof where));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        sim_errf(err, "%s: is a directory; expected a trace file", path);
        if (f != stdin)
            fclose(f);
        return NULL;
    }
    return reader_open(f, path, format, pick, skip_bad, err);
}

trace_reader *trace_reader_open(const char *path, const char *format, bool skip_bad,
                                sim_err *err)
{
    return open_path(path, format, NULL, skip_bad, err);
}

trace_reader *trace_reader_open_pick(const char *path, trace_format_pick *pick,
                                     bool skip_bad, sim_err *err)
{
    return open_path(path, NULL, pick, skip_bad, err);
}

void trace_reader_close(trace_reader *r)
{
    if (!r)
        return;
    if (r->f && r->close_f)
        fclose(r->f);
    free(r->name);
    free(r->state);
    free(r->buf);
    free(r->ids);
    free(r);
}

int trace_reader_rewind(trace_reader *r, sim_err *err)
{
    if (fseek(r->f, 0, SEEK_SET))
        return sim_errf(err, "%s: cannot go back to the start: %s", r->name,
                        strerror(errno));
    clearerr(r->f);
    r->start = r->end = 0;
    r->eof = false;
    r->line = 0;
    r->pending = NULL;
    r->have_base = false;
    return read_header(r, r->fmt->name, err);
}

const trace_format *trace_reader_format(const trace_reader *r) { return r->fmt; }
const char *trace_reader_name(const trace_reader *r) { return r->name; }
void *trace_reader_state(trace_reader *r) { return r->state; }

void trace_reader_counts(const trace_reader *r, trace_read_counts *out) { *out = r->counts; }

/* Times from the first row, in order; -1 if time goes back. */
static int place_in_time(trace_reader *r, trace_row *row, sim_err *err)
{
    if (!r->have_base) {
        r->have_base = true;
        r->base_ns = r->prev_ns = row->t_ns;
    }
    if (row->t_ns < r->prev_ns)
        return sim_errf(err, "column %s: time goes back %.6f s before the previous row's; "
                        "expected rows in time order", r->fmt->time_column,
                        (double)(r->prev_ns - row->t_ns) / 1e9);
    r->prev_ns = row->t_ns;
    row->t_ns -= r->base_ns;
    return 1;
}

int trace_reader_next(trace_reader *r, trace_row *out, sim_err *err)
{
    for (;;) {
        char *line;
        size_t len;
        uint64_t lineno;
        if (r->pending) {
            line = r->pending;
            len = r->pending_len;
            lineno = r->pending_line;
            r->pending = NULL;
        } else {
            int rc = read_line(r, &line, &len, err);
            if (rc <= 0)
                return rc;
            if (!len || is_blank(line, len))
                continue;
            lineno = r->line;
        }
        memset(out, 0, sizeof *out);
        out->line = lineno;
        int rc = r->fmt->row(r, line, len, out, err);
        /* A row a filter leaves out still has its place in time: times count
         * from the file's first row, whichever rows are kept. */
        if (rc >= 0 && r->fmt->timed && place_in_time(r, out, err) < 0)
            rc = -1;
        if (rc == 0) {
            r->counts.filtered++;
            continue;
        }
        if (rc > 0) {
            r->counts.rows++;
            return 1;
        }
        sim_err_prefix(err, "%s:%llu", r->name, (unsigned long long)lineno);
        if (!r->skip_bad)
            return -1;
        if (!r->counts.bad_skipped++)
            snprintf(r->first_bad, sizeof r->first_bad, "%s", err->msg);
    }
}

/* ---- CSV ------------------------------------------------------------------ */

int trace_csv_split(char *line, size_t len, trace_span *f)
{
    int n = 0;
    size_t i = 0;
    for (;;) {
        if (n == TRACE_MAX_FIELDS)
            return TRACE_MAX_FIELDS + 1;
        if (i < len && line[i] == '"') {
            char *dst = line + i + 1;
            size_t dl = 0;
            i++;
            while (i < len) {
                if (line[i] == '"') {
                    if (i + 1 < len && line[i + 1] == '"') {
                        dst[dl++] = '"';
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                dst[dl++] = line[i++];
            }
            f[n++] = (trace_span){dst, dl};
            char *c = i < len ? memchr(line + i, ',', len - i) : NULL;
            if (!c)
                return n;
            i = (size_t)(c - line) + 1;
            continue;
        }
        char *c = i < len ? memchr(line + i, ',', len - i) : NULL;
        size_t e = c ? (size_t)(c - line) : len;
        f[n++] = (trace_span){line + i, e - i};
        if (!c)
            return n;
        i = e + 1;
    }
}

static trace_span trim(trace_span s)
{
    while (s.len && isspace((unsigned char)s.p[0])) {
        s.p++;
        s.len--;
    }
    while (s.len && isspace((unsigned char)s.p[s.len - 1]))
        s.len--;
    return s;
}

trace_span trace_trim(trace_span s) { return trim(s); }

static bool span_ieq(trace_span s, const char *text)
{
    size_t n = strlen(text);
    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)s.p[i]) != tolower((unsigned char)text[i]))
            return false;
    return true;
}

bool trace_span_eq(trace_span s, const char *text)
{
    return s.len == strlen(text) && !memcmp(s.p, text, s.len);
}

void trace_names_list(const char *const *names, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; names[i] && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", names[i]);
}

int trace_csv_header(char *line, size_t len, const char *const *names, int *index,
                     bool strict, sim_err *err)
{
    trace_span f[TRACE_MAX_FIELDS + 1];
    int n = trace_csv_split(line, len, f);
    if (n > TRACE_MAX_FIELDS)
        return sim_errf(err, "header: more than %d columns", TRACE_MAX_FIELDS);
    for (int k = 0; names[k]; k++)
        index[k] = -1;
    for (int i = 0; i < n; i++) {
        trace_span name = trim(f[i]);
        int found = -1;
        for (int k = 0; names[k] && found < 0; k++)
            if (span_ieq(name, names[k]))
                found = k;
        if (found >= 0 && index[found] >= 0)
            return sim_errf(err, "header: column %s appears twice", names[found]);
        if (found >= 0)
            index[found] = i;
        else if (strict) {
            char q[128], list[512];
            trace_quote(name, q, sizeof q);
            trace_names_list(names, list, sizeof list);
            return sim_errf(err, "header: unknown column \"%s\"; expected columns among: %s",
                            q, list);
        }
    }
    return n;
}

/* ---- numbers and times ------------------------------------------------------ */

int trace_parse_int(trace_span s, int64_t min, int64_t max, int64_t *out)
{
    s = trim(s);
    size_t i = 0;
    bool neg = false;
    if (i < s.len && (s.p[i] == '-' || s.p[i] == '+'))
        neg = s.p[i++] == '-';
    if (i == s.len)
        return -1;
    uint64_t v = 0;
    for (; i < s.len; i++) {
        unsigned d = (unsigned)(s.p[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (v > (uint64_t)INT64_MAX)
        return -1;
    int64_t x = neg ? -(int64_t)v : (int64_t)v;
    if (x < min || x > max)
        return -1;
    *out = x;
    return 0;
}

static int parse_scaled_strtod(trace_span s, int64_t scale, int64_t min, int64_t max,
                               int64_t *out)
{
    char buf[64];
    if (s.len >= sizeof buf)
        return -1;
    memcpy(buf, s.p, s.len);
    buf[s.len] = 0;
    char *end;
    double v = strtod(buf, &end);
    if (*end || !isfinite(v))
        return -1;
    v *= (double)scale;
    if (!(v >= (double)min && v <= (double)max))
        return -1;
    *out = llround(v);
    return 0;
}

int trace_parse_scaled(trace_span s, int64_t scale, int64_t min, int64_t max,
                       int64_t *out)
{
    s = trim(s);
    size_t i = 0;
    bool neg = false;
    if (i < s.len && (s.p[i] == '-' || s.p[i] == '+'))
        neg = s.p[i++] == '-';
    uint64_t whole = 0;
    int digits = 0;
    for (; i < s.len && (unsigned)(s.p[i] - '0') <= 9; i++, digits++) {
        if (whole > (UINT64_MAX - 9) / 10)
            return -1;
        whole = whole * 10 + (uint64_t)(s.p[i] - '0');
    }
    int64_t frac = 0, unit = scale;
    if (i < s.len && s.p[i] == '.') {
        for (i++; i < s.len && (unsigned)(s.p[i] - '0') <= 9; i++, digits++) {
            unit /= 10;
            frac += (s.p[i] - '0') * unit;
        }
    }
    if (i < s.len && (s.p[i] == 'e' || s.p[i] == 'E') && digits)
        return parse_scaled_strtod(s, scale, min, max, out);
    if (i != s.len || !digits || whole > (uint64_t)(INT64_MAX / scale) ||
        (whole == (uint64_t)(INT64_MAX / scale) && frac > INT64_MAX % scale))
        return -1;
    int64_t v = (int64_t)whole * scale + frac;
    if (neg)
        v = -v;
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H.
 * Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* n digits at p as a number, or -1. */
static int digits_at(const char *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        unsigned d = (unsigned)(p[i] - '0');
        if (d > 9)
            return -1;
        v = v * 10 + (int)d;
    }
    return v;
}

int trace_parse_datetime(trace_span s, int64_t *out_ns)
{
    s = trim(s);
    const char *p = s.p;
    if (s.len < 19 || p[4] != '-' || p[7] != '-' || (p[10] != ' ' && p[10] != 'T') ||
        p[13] != ':' || p[16] != ':')
        return -1;
    int y = digits_at(p, 4), mo = digits_at(p + 5, 2), d = digits_at(p + 8, 2);
    int h = digits_at(p + 11, 2), mi = digits_at(p + 14, 2), sec = digits_at(p + 17, 2);
    static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || y > 2200 || mo < 1 || mo > 12 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        sec < 0 || sec > 60)
        return -1;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d < 1 || d > month_days[mo - 1] + (mo == 2 && leap))
        return -1;
    size_t i = 19;
    int64_t frac = 0, unit = SIM_NS_PER_S;
    if (i < s.len && p[i] == '.') {
        size_t first = ++i;
        for (; i < s.len && (unsigned)(p[i] - '0') <= 9; i++) {
            unit /= 10;
            frac += (p[i] - '0') * unit;
        }
        if (i == first)
            return -1;
    }
    int64_t offset_s = 0;
    if (i < s.len && p[i] == 'Z') {
        i++;
    } else if (i < s.len && (p[i] == '+' || p[i] == '-')) {
        int sign = p[i] == '-' ? -1 : 1;
        size_t rest = s.len - i - 1;
        const char *q = p + i + 1;
        int oh, om = 0;
        if (rest == 5 && q[2] == ':') {
            oh = digits_at(q, 2);
            om = digits_at(q + 3, 2);
        } else if (rest == 4) {
            oh = digits_at(q, 2);
            om = digits_at(q + 2, 2);
        } else if (rest == 2) {
            oh = digits_at(q, 2);
        } else {
            return -1;
        }
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -1;
        offset_s = sign * (oh * 3600 + om * 60);
        i = s.len;
    }
    if (i != s.len)
        return -1;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_s;
    *out_ns = secs * SIM_NS_PER_S + frac;
    return 0;
}

int trace_parse_ids(trace_reader *r, trace_span s, bool json_array, const uint64_t **ids,
                    int32_t *n)
{
    s = trim(s);
    size_t i = 0, end = s.len;
    int32_t count = 0;
    if (json_array) {
        if (end < 2 || s.p[0] != '[' || s.p[end - 1] != ']')
            return -1;
        i = 1;
        end--;
    }
    for (;;) {
        while (i < end && isspace((unsigned char)s.p[i]))
            i++;
        if (i == end) {
            if (json_array && count)
                return -1;   /* a trailing comma */
            break;
        }
        uint64_t v = 0;
        size_t first = i;
        for (; i < end && (unsigned)(s.p[i] - '0') <= 9; i++) {
            unsigned d = (unsigned)(s.p[i] - '0');
            if (v > (UINT64_MAX - d) / 10)
                return -1;
            v = v * 10 + d;
        }
        if (i == first)
            return -1;
        if ((size_t)count >= r->ids_cap)
            sim_grow((void **)&r->ids, &r->ids_cap, (size_t)count + 1, sizeof *r->ids);
        r->ids[count++] = v;
        /* JSON: ids separated by commas; CSV: by white space. */
        size_t after = i;
        while (i < end && isspace((unsigned char)s.p[i]))
            i++;
        if (i == end)
            break;
        if (json_array) {
            if (s.p[i] != ',')
                return -1;
            i++;
        } else if (i == after) {
            return -1;
        }
    }
    *ids = r->ids;
    *n = count;
    return 0;
}

int trace_parse_tokens(trace_span s, const char *column, int32_t *out, sim_err *err)
{
    int64_t v;
    if (trace_parse_int(s, 0, TRACE_MAX_TOKENS, &v))
        return trace_field_error(err, column, "an integer in [0, 10000000]", s);
    *out = (int32_t)v;
    return 0;
}

bool trace_line_has(const char *line, size_t len, const char *text)
{
    size_t n = strlen(text);
    for (size_t i = 0; i + n <= len; i++)
        if (line[i] == text[0] && !memcmp(line + i, text, n))
            return true;
    return false;
}

void trace_quote(trace_span s, char *buf, size_t size)
{
    size_t used = 0, i;
    for (i = 0; i < s.len && used + 5 < size && i < 48; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c == '"' || c == '\\')
            used += (size_t)snprintf(buf + used, size - used, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            used += (size_t)snprintf(buf + used, size - used, "\\x%02x", c);
        else
            buf[used++] = (char)c;
    }
    if (i < s.len && used + 4 < size)
        used += (size_t)snprintf(buf + used, size - used, "...");
    buf[used < size ? used : size - 1] = 0;
}

int trace_field_error(sim_err *err, const char *column, const char *expected,
                      trace_span got)
{
    char q[256];
    trace_quote(got, q, sizeof q);
    return sim_errf(err, "column %s: expected %s, got \"%s\"", column, expected, q);
}

/* ---- one-line JSON objects ---------------------------------------------------- */

const trace_json_member *trace_json_find(const trace_json_member *m, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (trace_span_eq(m[i].key, key))
            return &m[i];
    return NULL;
}

static size_t skip_ws(const char *p, size_t i, size_t len)
{
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    return i;
}

/* End of the string starting at the quote p[i], just past its closing
 * quote; 0 if unterminated. */
static size_t skip_string(const char *p, size_t i, size_t len)
{
    for (i++; i < len; i++) {
        if (p[i] == '\\')
            i++;
        else if (p[i] == '"')
            return i + 1;
    }
    return 0;
}

/* End of the value starting at p[i]; 0 if malformed. Nested arrays and
 * objects are matched bracket for bracket, not parsed. */
static size_t skip_value(const char *p, size_t i, size_t len, char *type)
{
    if (i >= len)
        return 0;
    char c = p[i];
    if (c == '"') {
        *type = 's';
        return skip_string(p, i, len);
    }
    if (c == '[' || c == '{') {
        *type = c;
        int depth = 0;
        for (; i < len; i++) {
            if (p[i] == '"') {
                size_t e = skip_string(p, i, len);
                if (!e)
                    return 0;
                i = e - 1;
            } else if (p[i] == '[' || p[i] == '{') {
                depth++;
            } else if (p[i] == ']' || p[i] == '}') {
                if (--depth == 0)
                    return i + 1;
            }
        }
        return 0;
    }
    static const char *const literals[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t n = strlen(literals[k]);
        if (len - i >= n && !memcmp(p + i, literals[k], n)) {
            *type = 'l';
            return i + n;
        }
    }
    size_t start = i;
    bool digit = false;
    for (; i < len && (strchr("+-.eE", p[i]) || (unsigned)(p[i] - '0') <= 9); i++)
        digit |= (unsigned)(p[i] - '0') <= 9;
    *type = 'n';
    return digit && i > start ? i : 0;
}

static int json_error(sim_err *err, const char *expected, const char *line, size_t len,
                      size_t at)
{
    char q[128];
    trace_quote((trace_span){line + at, at < len ? len - at : 0}, q, sizeof q);
    return sim_errf(err, "JSON: expected %s at byte %zu, got \"%s\"", expected, at + 1, q);
}

int trace_json_object(const char *line, size_t len, trace_json_member *m, sim_err *err)
{
    size_t i = skip_ws(line, 0, len);
    if (i >= len || line[i] != '{')
        return json_error(err, "a JSON object per line ('{')", line, len, i);
    i = skip_ws(line, i + 1, len);
    int n = 0;
    if (i < len && line[i] == '}') {
        i = skip_ws(line, i + 1, len);
        return i == len ? 0 : json_error(err, "the end of the line", line, len, i);
    }
    for (;;) {
        if (i >= len || line[i] != '"')
            return json_error(err, "a key in quotes", line, len, i);
        size_t e = skip_string(line, i, len);
        if (!e)
            return json_error(err, "a closing quote", line, len, len);
        if (n == TRACE_MAX_FIELDS)
            return sim_errf(err, "JSON: more than %d keys", TRACE_MAX_FIELDS);
        m[n].key = (trace_span){line + i + 1, e - i - 2};
        for (int k = 0; k < n; k++)
            if (m[k].key.len == m[n].key.len && !memcmp(m[k].key.p, m[n].key.p, m[n].key.len)) {
                char q[128];
                trace_quote(m[n].key, q, sizeof q);
                return sim_errf(err, "JSON: key \"%s\" appears twice", q);
            }
        i = skip_ws(line, e, len);
        if (i >= len || line[i] != ':')
            return json_error(err, "':'", line, len, i);
        i = skip_ws(line, i + 1, len);
        e = skip_value(line, i, len, &m[n].type);
        if (!e)
            return json_error(err, "a JSON value", line, len, i);
        m[n].value = (trace_span){line + i, e - i};
        if (m[n].type == 's')
            m[n].value = (trace_span){line + i + 1, e - i - 2};
        n++;
        i = skip_ws(line, e, len);
        if (i < len && line[i] == ',') {
            i = skip_ws(line, i + 1, len);
            continue;
        }
        if (i < len && line[i] == '}') {
            i = skip_ws(line, i + 1, len);
            return i == len ? n : json_error(err, "the end of the line", line, len, i);
        }
        return json_error(err, "',' or '}'", line, len, i);
    }
}
