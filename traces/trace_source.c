/* Replaying a trace (see trace_source.h). One call to next reads rows until
 * one passes the filters, in this order: spreading of equal timestamps, the
 * time window, failed requests, zero lengths, token caps; then the row gets
 * its arrival, from the file (shifted to the window's start and divided by
 * rate_scale) or from the arrival process. The arrival is taken before the
 * row is read, so a closed loop that has no client ready reads nothing.
 *
 * Spreading keeps one group of rows with equal timestamps (and their prefix
 * block ids, in one pool) plus the first row of the next group; the group's
 * rows get times evenly or uniformly at random across min(spread, gap to the
 * next group), so order and monotonicity hold. */
#include "traces/trace_source.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/jsoncfg.h"
#include "traces/gen.h"

typedef struct held_row {
    trace_row row;
    size_t blocks_at;     /* offset of its prefix ids in the pool */
    size_t accepted_at;   /* and of its spec_accepted in acc_pool */
} held_row;

typedef struct trace_src {
    char *file;
    trace_reader *rd;
    bool timed;           /* the file's times are the arrivals */

    sim_time_ns window_start_ns, window_end_ns;
    double rate_scale;
    int64_t max_requests;
    int64_t max_input, max_output;
    bool cap_drop, keep_failures, cycle;
    sim_time_ns spread_ns;
    bool spread_random;

    bool has_arrival;
    arrival_proc arrival;
    arrival_gen gen;
    gsl_rng *rng;

    int64_t yielded, yielded_at_rewind;
    wl_counts counts;

    held_row *group;      /* spreading */
    size_t n_group, group_at, group_cap;
    uint64_t *pool;
    size_t pool_len, pool_cap;
    bool have_ahead;
    trace_row ahead;
    uint64_t *ahead_ids;
    size_t ahead_cap;
    uint8_t *acc_pool, *ahead_acc;   /* spec_accepted lists, as pool and ahead_ids */
    size_t acc_len, acc_cap, ahead_acc_cap;
} trace_src;

/* ---- configuration ------------------------------------------------------------ */

static int pick(const char *path, const char *key, const char *value, const char *a,
                const char *b, bool *is_b, sim_err *err)
{
    if (strcmp(value, a) && strcmp(value, b))
        return sim_errf(err, "%s.%s: expected \"%s\" or \"%s\", got \"%s\"", path, key, a, b,
                        value);
    *is_b = !strcmp(value, b);
    return 0;
}

static int check_all_keys(cJSON *params, const char *path, bool format_key,
                          const char *const *extra, sim_err *err)
{
    static const char *const shared[] = {
        WL_COMMON_KEYS, "path", "window", "rate_scale", "max_requests", "max_input_tokens",
        "max_output_tokens", "cap_policy", "skip_bad", "spread_ms", "spread", "failures",
        "arrival", "cycle", NULL};
    const char *keys[64];
    int n = 0;
    for (int i = 0; shared[i]; i++)
        keys[n++] = shared[i];
    if (format_key)
        keys[n++] = "format";
    for (int i = 0; extra && extra[i] && n < 63; i++)
        keys[n++] = extra[i];
    keys[n] = NULL;
    return jcfg_check_keys(params, path, keys, err);
}

static int parse_opts(trace_src *s, cJSON *params, const char *path, const char **file,
                      const char **format, bool format_key, bool *skip_bad, sim_err *err)
{
    char wpath[256], apath[256];
    cJSON *w;
    double start_s, end_s, spread_ms;
    const char *cap_policy, *spread, *failures;
    if (jcfg_str(params, path, "path", JCFG_REQUIRED_STR, file, err) ||
        (format_key && jcfg_str(params, path, "format", "auto", format, err)) ||
        jcfg_obj(params, path, "window", &w, wpath, err) ||
        jcfg_check_keys(w, wpath, (const char *const[]){"start_s", "end_s", NULL}, err) ||
        jcfg_num(w, wpath, "start_s", 0, 0, 1e9, &start_s, err) ||
        jcfg_num(w, wpath, "end_s", 0, 0, 1e9, &end_s, err) ||
        jcfg_num(params, path, "rate_scale", 1, 1e-6, 1e6, &s->rate_scale, err) ||
        jcfg_int(params, path, "max_requests", 0, 0, INT64_MAX / 2, &s->max_requests, err) ||
        jcfg_int(params, path, "max_input_tokens", 0, 0, TRACE_MAX_TOKENS, &s->max_input,
                 err) ||
        jcfg_int(params, path, "max_output_tokens", 0, 0, TRACE_MAX_TOKENS, &s->max_output,
                 err) ||
        jcfg_str(params, path, "cap_policy", "truncate", &cap_policy, err) ||
        pick(path, "cap_policy", cap_policy, "truncate", "drop", &s->cap_drop, err) ||
        jcfg_bool(params, path, "skip_bad", 0, skip_bad, err) ||
        jcfg_num(params, path, "spread_ms", 0, 0, 1e9, &spread_ms, err) ||
        jcfg_str(params, path, "spread", "even", &spread, err) ||
        pick(path, "spread", spread, "even", "random", &s->spread_random, err) ||
        jcfg_str(params, path, "failures", "skip", &failures, err) ||
        pick(path, "failures", failures, "skip", "keep", &s->keep_failures, err) ||
        jcfg_bool(params, path, "cycle", 0, &s->cycle, err))
        return -1;
    if (end_s && end_s <= start_s)
        return sim_errf(err, "%s.end_s: expected 0 (to the end) or more than start_s (%g), "
                        "got %g", wpath, start_s, end_s);
    s->window_start_ns = llround(start_s * 1e9);
    s->window_end_ns = llround(end_s * 1e9);
    s->spread_ns = llround(spread_ms * 1e6);
    if (cJSON_GetObjectItemCaseSensitive(params, "arrival")) {
        cJSON *a;
        if (jcfg_obj(params, path, "arrival", &a, apath, err) ||
            arrival_parse(a, apath, &s->arrival, err))
            return -1;
        s->has_arrival = true;
    }
    return 0;
}

/* Options that make no sense for this format or this arrival source. */
static int check_opts(const trace_src *s, const char *path, sim_err *err)
{
    const trace_format *f = trace_reader_format(s->rd);
    if (!f->timed && !s->has_arrival)
        return sim_errf(err, "%s.arrival: the %s format has no arrival times; give an "
                        "arrival process (e.g. {\"process\": \"poisson\", \"rate_per_s\": 5})",
                        path, f->name);
    if (!f->timed && (s->window_start_ns || s->window_end_ns))
        return sim_errf(err, "%s.window: the %s format has no times to window", path, f->name);
    if (s->has_arrival && s->rate_scale != 1)
        return sim_errf(err, "%s.rate_scale: scales the trace's own times; with an arrival "
                        "process, set its rate instead", path);
    if (s->has_arrival && s->spread_ns)
        return sim_errf(err, "%s.spread_ms: spreads the trace's own times; the arrival "
                        "process replaces them", path);
    if (s->cycle && (!s->has_arrival || !s->max_requests))
        return sim_errf(err, "%s.cycle: needs an arrival process and max_requests", path);
    return 0;
}

static int src_init(const wl_setup *setup, cJSON *params, const char *path,
                    const char *format, trace_format_pick *pick,
                    const char *const *extra_keys, void **state, sim_err *err)
{
    trace_src *s = sim_xcalloc(1, sizeof *s);
    const char *file, *fmt = format;
    bool skip_bad, format_key = !format && !pick;
    char ppath[300];
    if (check_all_keys(params, path, format_key, extra_keys, err) ||
        parse_opts(s, params, path, &file, &fmt, format_key, &skip_bad, err))
        goto fail;
    s->file = sim_xstrdup(file);
    s->rd = pick ? trace_reader_open_pick(file, pick, skip_bad, err)
                 : trace_reader_open(file, fmt, skip_bad, err);
    if (!s->rd) {
        snprintf(ppath, sizeof ppath, "%s.path", path);
        sim_err_prefix(err, "%s", ppath);
        goto fail;
    }
    if (check_opts(s, path, err))
        goto fail;
    s->timed = !s->has_arrival;
    s->rng = setup->arrival_rng;
    if (s->has_arrival)
        arrival_gen_init(&s->gen, &s->arrival, setup->arrival_rng);
    *state = s;
    return 0;
fail:
    trace_src_destroy(s);
    return -1;
}

int trace_src_init(const wl_setup *setup, cJSON *params, const char *path,
                   const char *format, const char *const *extra_keys, void **state,
                   sim_err *err)
{
    return src_init(setup, params, path, format, NULL, extra_keys, state, err);
}

int trace_src_init_pick(const wl_setup *setup, cJSON *params, const char *path,
                        trace_format_pick *pick, const char *const *extra_keys,
                        void **state, sim_err *err)
{
    return src_init(setup, params, path, NULL, pick, extra_keys, state, err);
}

void trace_src_destroy(void *state)
{
    trace_src *s = state;
    if (!s)
        return;
    trace_reader_close(s->rd);
    if (s->has_arrival) {
        arrival_gen_fini(&s->gen);
        arrival_fini(&s->arrival);
    }
    free(s->file);
    free(s->group);
    free(s->pool);
    free(s->ahead_ids);
    free(s->acc_pool);
    free(s->ahead_acc);
    free(s);
}

trace_reader *trace_src_reader(void *state) { return ((trace_src *)state)->rd; }

/* ---- spreading equal timestamps ------------------------------------------------- */

static void hold_ahead(trace_src *s, const trace_row *r)
{
    s->ahead = *r;
    if (r->n_prefix_blocks) {
        sim_grow((void **)&s->ahead_ids, &s->ahead_cap, (size_t)r->n_prefix_blocks,
                 sizeof *s->ahead_ids);
        memcpy(s->ahead_ids, r->prefix_blocks, (size_t)r->n_prefix_blocks * sizeof *s->ahead_ids);
        s->ahead.prefix_blocks = s->ahead_ids;
    }
    if (r->n_spec_accepted) {
        sim_grow((void **)&s->ahead_acc, &s->ahead_acc_cap, (size_t)r->n_spec_accepted, 1);
        memcpy(s->ahead_acc, r->spec_accepted, (size_t)r->n_spec_accepted);
        s->ahead.spec_accepted = s->ahead_acc;
    }
    s->have_ahead = true;
}

static void hold_in_group(trace_src *s, const trace_row *r)
{
    sim_grow((void **)&s->group, &s->group_cap, s->n_group + 1, sizeof *s->group);
    held_row *h = &s->group[s->n_group++];
    h->row = *r;
    h->blocks_at = s->pool_len;
    size_t n = (size_t)r->n_prefix_blocks;
    if (n) {
        sim_grow((void **)&s->pool, &s->pool_cap, s->pool_len + n, sizeof *s->pool);
        memcpy(s->pool + s->pool_len, r->prefix_blocks, n * sizeof *s->pool);
        s->pool_len += n;
    }
    h->accepted_at = s->acc_len;
    if (r->n_spec_accepted) {
        sim_grow((void **)&s->acc_pool, &s->acc_cap, s->acc_len + (size_t)r->n_spec_accepted, 1);
        memcpy(s->acc_pool + s->acc_len, r->spec_accepted, (size_t)r->n_spec_accepted);
        s->acc_len += (size_t)r->n_spec_accepted;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Reads the next group of rows with equal times and spreads them. */
static int fill_group(trace_src *s, sim_err *err)
{
    trace_row r;
    int rc;
    s->n_group = s->group_at = s->pool_len = s->acc_len = 0;
    if (!s->have_ahead) {
        rc = trace_reader_next(s->rd, &r, err);
        if (rc <= 0)
            return rc;
        hold_ahead(s, &r);
    }
    sim_time_ns t0 = s->ahead.t_ns;
    hold_in_group(s, &s->ahead);
    s->have_ahead = false;
    while ((rc = trace_reader_next(s->rd, &r, err)) == 1) {
        if (r.t_ns != t0) {
            hold_ahead(s, &r);
            break;
        }
        hold_in_group(s, &r);
    }
    if (rc < 0)
        return -1;
    sim_time_ns span = s->spread_ns;
    if (s->have_ahead && s->ahead.t_ns - t0 < span)
        span = s->ahead.t_ns - t0;
    size_t k = s->n_group;
    if (s->spread_random) {
        double *u = sim_xmalloc(k * sizeof *u);
        for (size_t i = 0; i < k; i++)
            u[i] = gsl_rng_uniform(s->rng);
        qsort(u, k, sizeof *u, cmp_double);
        for (size_t i = 0; i < k; i++)
            s->group[i].row.t_ns = t0 + (sim_time_ns)(u[i] * (double)span);
        free(u);
    } else {
        for (size_t i = 0; i < k; i++)
            s->group[i].row.t_ns = t0 + (sim_time_ns)((double)span * (double)i / (double)k);
    }
    return 1;
}

static int raw_next(trace_src *s, trace_row *out, sim_err *err)
{
    if (!s->spread_ns)
        return trace_reader_next(s->rd, out, err);
    if (s->group_at == s->n_group) {
        int rc = fill_group(s, err);
        if (rc <= 0)
            return rc;
    }
    held_row *h = &s->group[s->group_at++];
    *out = h->row;
    out->prefix_blocks = h->row.n_prefix_blocks ? s->pool + h->blocks_at : NULL;
    out->spec_accepted = h->row.n_spec_accepted ? s->acc_pool + h->accepted_at : NULL;
    return 1;
}

/* ---- replay ----------------------------------------------------------------- */

static int at_end(trace_src *s, sim_err *err)
{
    if (s->yielded)
        return WL_END;
    wl_counts c = {0};
    trace_src_counts(s, &c);
    char why[512];
    wl_counts_describe(&c, why, sizeof why);
    return sim_errf(err, "%s: no requests to replay%s%s", s->file, why[0] ? ": " : "", why);
}

/* At the end of the file (or of the window): 0, or start over when cycling. */
static int file_end(trace_src *s, sim_err *err)
{
    if (!s->cycle)
        return 0;
    if (s->yielded == s->yielded_at_rewind)
        return sim_errf(err, "%s: cycle: no row of the file passes the filters", s->file);
    s->yielded_at_rewind = s->yielded;
    s->n_group = s->group_at = 0;
    s->have_ahead = false;
    return trace_reader_rewind(s->rd, err) ? -1 : 1;
}

/* Reads until a row passes the filters: 1, 0 at the end, -1 on error. */
static int next_row(trace_src *s, trace_row *row, sim_err *err)
{
    bool timed = trace_reader_format(s->rd)->timed;
    for (;;) {
        int rc = raw_next(s, row, err);
        if (rc < 0)
            return -1;
        if (rc == 0 || (timed && s->window_end_ns && row->t_ns >= s->window_end_ns)) {
            rc = file_end(s, err);   /* rows past the window's end are not read */
            if (rc <= 0)
                return rc;
            continue;
        }
        if (timed && row->t_ns < s->window_start_ns) {
            s->counts.filtered++;
            continue;
        }
        if (row->failed && !s->keep_failures) {
            s->counts.failures++;
            continue;
        }
        if (row->input_tokens < 1 || row->output_tokens < 1) {
            if (!row->failed)
                s->counts.zero_raised++;
            row->input_tokens = row->input_tokens < 1 ? 1 : row->input_tokens;
            row->output_tokens = row->output_tokens < 1 ? 1 : row->output_tokens;
        }
        bool over = (s->max_input && row->input_tokens > s->max_input) ||
                    (s->max_output && row->output_tokens > s->max_output);
        if (over && s->cap_drop) {
            s->counts.cap_dropped++;
            continue;
        }
        if (over) {
            s->counts.cap_truncated++;
            if (s->max_input && row->input_tokens > s->max_input)
                row->input_tokens = (int32_t)s->max_input;
            if (s->max_output && row->output_tokens > s->max_output)
                row->output_tokens = (int32_t)s->max_output;
        }
        return 1;
    }
}

int trace_src_next(void *state, sim_time_ns now, wl_request *out, sim_err *err)
{
    trace_src *s = state;
    if (s->max_requests && s->yielded >= s->max_requests)
        return WL_END;
    sim_time_ns t = 0;
    if (s->has_arrival) {
        int a = arrival_gen_next(&s->gen, now, &t);
        if (a == ARRIVAL_END)
            return at_end(s, err);
        if (a == ARRIVAL_WAIT) {
            out->arrival_ns = t;
            return WL_WAIT;
        }
    }
    trace_row row;
    int rc = next_row(s, &row, err);
    if (rc < 0)
        return WL_ERROR;
    if (rc == 0)
        return at_end(s, err);
    if (s->timed) {
        t = row.t_ns - s->window_start_ns;
        if (s->rate_scale != 1)
            t = llround((double)t / s->rate_scale);
    }
    out->arrival_ns = t;
    out->input_tokens = row.input_tokens;
    out->output_tokens = row.output_tokens;
    out->priority = row.priority;
    out->slo_class = row.slo_class;
    out->tenant = row.tenant;
    out->ttft_slo_ns = row.ttft_slo_ns;
    out->call_group = row.call_group;
    out->deadline_ns = row.deadline_ns;
    out->chunk_tokens = row.chunk_tokens;
    out->chunk_offset_ns = row.chunk_offset_ns;
    out->chunk_keep = row.chunk_keep;
    out->n_chunks = row.n_chunks;
    out->prefix_blocks = row.prefix_blocks;
    out->n_prefix_blocks = row.n_prefix_blocks;
    out->prefix_block_tokens = row.prefix_block_tokens;
    out->spec_alpha_set = row.spec_alpha_set;
    out->spec_alpha = row.spec_alpha;
    out->spec_accepted = row.spec_accepted;
    out->n_spec_accepted = row.n_spec_accepted;
    s->yielded++;
    return WL_REQUEST;
}

int trace_src_complete(void *state, sim_time_ns now)
{
    trace_src *s = state;
    return s->has_arrival ? arrival_gen_complete(&s->gen, now) : 0;
}

void trace_src_counts(const void *state, wl_counts *out)
{
    const trace_src *s = state;
    trace_read_counts rc;
    trace_reader_counts(s->rd, &rc);
    out->bad_rows += rc.bad_skipped;
    if (rc.bad_skipped && !out->first_bad)
        out->first_bad = rc.first_bad;
    out->filtered += rc.filtered + s->counts.filtered;
    out->failures += s->counts.failures;
    out->zero_raised += s->counts.zero_raised;
    out->cap_truncated += s->counts.cap_truncated;
    out->cap_dropped += s->counts.cap_dropped;
}
