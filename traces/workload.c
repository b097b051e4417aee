/* The workload source registry and the wrapper every source goes through.
 * The wrapper enforces what all sources must guarantee to the serving core:
 * arrivals never go back in time, and every request fits the model's context
 * (lengths that do not are cut, and counted, rather than dropped). */
#include "traces/workload.h"

#include <stdio.h>
#include <stdlib.h>

#include "sim/jsoncfg.h"

extern const wl_source_ops wl_synthetic;

const wl_source_ops *const wl_sources[] = {
    &wl_synthetic,
    NULL,
};

struct wl_source {
    const wl_source_ops *ops;
    void *state;
    int32_t max_context_tokens;
    sim_time_ns last_arrival_ns;
    uint64_t clamped;
};

wl_source *wl_source_create(const wl_setup *setup, cJSON *cfg, const char *path,
                            sim_err *err)
{
    const char *name;
    if (jcfg_str(cfg, path, "source", "synthetic", &name, err))
        return NULL;
    char key_path[300];
    snprintf(key_path, sizeof key_path, "%s.source", path);
    const wl_source_ops *ops = SIM_REGISTRY_FIND(wl_sources, name, "workload source",
                                                 key_path, err);
    if (!ops)
        return NULL;
    wl_source *s = sim_xcalloc(1, sizeof *s);
    s->ops = ops;
    s->max_context_tokens = setup->max_context_tokens;
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

int wl_source_next(wl_source *s, wl_request *out, sim_err *err)
{
    *out = (wl_request){0};   /* optional attributes default to none */
    int rc = s->ops->next(s->state, out, err);
    if (rc <= 0)
        return rc;
    if (out->arrival_ns < s->last_arrival_ns)
        return sim_errf(err, "workload source %s: arrival at %lld ns is before the "
                        "previous one at %lld ns", s->ops->name,
                        (long long)out->arrival_ns, (long long)s->last_arrival_ns);
    if (out->input_tokens < 1 || out->output_tokens < 1)
        return sim_errf(err, "workload source %s: request with %d input and %d output "
                        "tokens; expected at least 1 of each", s->ops->name,
                        out->input_tokens, out->output_tokens);
    s->last_arrival_ns = out->arrival_ns;
    int32_t ctx = s->max_context_tokens;
    if (out->input_tokens + (int64_t)out->output_tokens > ctx) {
        if (out->input_tokens > ctx - 1)
            out->input_tokens = ctx - 1;
        if (out->input_tokens + out->output_tokens > ctx)
            out->output_tokens = ctx - out->input_tokens;
        s->clamped++;
    }
    return 1;
}

uint64_t wl_source_clamped(const wl_source *s) { return s->clamped; }
