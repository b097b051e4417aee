/* The workload source registry and the wrapper every source goes through.
 * The wrapper enforces what all sources must guarantee to the serving core:
 * arrivals never go back in time, every request has at least one input and
 * one output token, and every request fits the model's context. The context
 * policy lives here and only here: "truncate" (the default) cuts the input
 * to context - 1 and the output to what is left; "drop" leaves the request
 * out. Both are counted. A dropped request of a closed-loop source counts as
 * finished at its arrival, so its client goes on to its next request. */
#include "traces/workload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/jsoncfg.h"

/* traces/sources.def lists every source, one line each. */
#define WL_SOURCE(name) extern const wl_source_ops wl_##name;
#include "traces/sources.def"
#undef WL_SOURCE
#define WL_SOURCE(name) &wl_##name,
const wl_source_ops *const wl_sources[] = {
#include "traces/sources.def"
    NULL,
};
#undef WL_SOURCE

struct wl_source {
    const wl_source_ops *ops;
    void *state;
    int32_t max_context_tokens;
    int drop_over_context;
    int ended;
    sim_time_ns last_arrival_ns;
    wl_counts counts;   /* the wrapper's part */
};

wl_source *wl_source_create(const wl_setup *setup, cJSON *cfg, const char *path,
                            sim_err *err)
{
    const char *name, *policy;
    if (jcfg_str(cfg, path, "source", "synthetic", &name, err) ||
        jcfg_str(cfg, path, "context_policy", "truncate", &policy, err))
        return NULL;
    char key_path[300];
    if (strcmp(policy, "truncate") && strcmp(policy, "drop")) {
        sim_errf(err, "%s.context_policy: expected \"truncate\" or \"drop\", got \"%s\"",
                 path, policy);
        return NULL;
    }
    snprintf(key_path, sizeof key_path, "%s.source", path);
    const wl_source_ops *ops = SIM_REGISTRY_FIND(wl_sources, name, "workload source",
                                                 key_path, err);
    if (!ops)
        return NULL;
    wl_source *s = sim_xcalloc(1, sizeof *s);
    s->ops = ops;
    s->max_context_tokens = setup->max_context_tokens;
    s->drop_over_context = !strcmp(policy, "drop");
    if (ops->init(setup, cfg, path, &s->state, err)) {
        free(s);
        return NULL;
    }
    return s;
}

void wl_source_destroy(wl_source *s)
{
    if (!s)
        return;
    if (s->ops->destroy)
        s->ops->destroy(s->state);
    free(s);
}

int wl_source_next(wl_source *s, sim_time_ns now, wl_request *out, sim_err *err)
{
    if (s->ended)
        return WL_END;
    for (;;) {
        *out = (wl_request){0};   /* optional attributes default to none */
        int rc = s->ops->next(s->state, now, out, err);
        if (rc == WL_END)
            s->ended = 1;
        if (rc != WL_REQUEST)
            return rc;
        if (out->arrival_ns < s->last_arrival_ns)
            return sim_errf(err, "workload source %s: arrival at %lld ns is before the "
                            "previous one at %lld ns", s->ops->name,
                            (long long)out->arrival_ns, (long long)s->last_arrival_ns);
        if (out->arrival_ns >= SIM_TIME_HORIZON)
            return sim_errf(err, "workload source %s: arrival beyond %.0f years of simulated "
                            "time; is the request rate far too low?", s->ops->name,
                            (double)SIM_TIME_HORIZON / SIM_NS_PER_S / (365.25 * 86400));
        if (out->input_tokens < 1 || out->output_tokens < 1)
            return sim_errf(err, "workload source %s: request with %d input and %d output "
                            "tokens; expected at least 1 of each", s->ops->name,
                            out->input_tokens, out->output_tokens);
        s->last_arrival_ns = out->arrival_ns;
        int32_t ctx = s->max_context_tokens;
        if (out->input_tokens + (int64_t)out->output_tokens <= ctx) {
            s->counts.requests++;
            return WL_REQUEST;
        }
        if (!s->drop_over_context) {
            if (out->input_tokens > ctx - 1)
                out->input_tokens = ctx - 1;
            if (out->input_tokens + out->output_tokens > ctx)
                out->output_tokens = ctx - out->input_tokens;
            s->counts.ctx_truncated++;
            s->counts.requests++;
            return WL_REQUEST;
        }
        s->counts.ctx_dropped++;
        if (s->ops->on_complete_session)
            s->ops->on_complete_session(s->state, out->arrival_ns, out->session_id);
        else if (s->ops->on_complete)
            s->ops->on_complete(s->state, out->arrival_ns);
    }
}

int wl_source_complete_session(wl_source *s, sim_time_ns now, uint64_t session_id)
{
    if (s->ended)
        return 0;
    if (s->ops->on_complete_session)
        return s->ops->on_complete_session(s->state, now, session_id);
    return wl_source_complete(s, now);
}

int wl_source_complete(wl_source *s, sim_time_ns now)
{
    if (s->ended || !s->ops->on_complete)
        return 0;
    return s->ops->on_complete(s->state, now);
}

uint64_t wl_source_clamped(const wl_source *s) { return s->counts.ctx_truncated; }

void wl_source_counts(const wl_source *s, wl_counts *out)
{
    *out = s->counts;
    if (s->ops->counts)
        s->ops->counts(s->state, out);
}

void wl_counts_describe(const wl_counts *c, char *buf, size_t size)
{
    const struct {
        uint64_t n;
        const char *what;
        const char *first;   /* the first one's message, or NULL */
    } items[] = {
        {c->bad_rows, "malformed rows skipped", c->first_bad},
        {c->failures, "failed requests skipped", NULL},
        {c->filtered, "rows outside the window or filters", NULL},
        {c->zero_raised, "zero lengths replayed as 1", NULL},
        {c->cap_truncated, "cut to the token caps", NULL},
        {c->cap_dropped, "over the token caps dropped", NULL},
        {c->ctx_dropped, "longer than the context dropped", NULL},
    };
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
        if (!items[i].n || used >= size)
            continue;
        used += (size_t)snprintf(buf + used, size - used, "%s%llu %s", used ? ", " : "",
                                 (unsigned long long)items[i].n, items[i].what);
        if (items[i].first && items[i].first[0] && used < size)
            used += (size_t)snprintf(buf + used, size - used, " (first: %s)", items[i].first);
    }
}
