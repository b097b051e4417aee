/* The synthetic workload source: a fixed number of requests with arrivals
 * from an arrival process and input/output lengths from two length
 * distributions. Arrival gaps and lengths use separate random streams, so
 * changing the length distribution leaves the arrival times unchanged.
 *
 * Optional mixes for SLO-aware and priority scheduling: "ttft_slo_ms", a
 * length-style distribution of per-request TTFT targets in ms, and
 * "priority_classes": N, a priority drawn uniformly from 0..N-1. Both draw
 * from the length stream after the lengths, so leaving them out reproduces
 * the plain workload exactly. "stream": {"chunk_tokens": 512, "gap_ms":
 * <length-style distribution>} streams every prompt (Stream2LLM): it
 * arrives in ceil(input / chunk_tokens) chunks (at most 256), the first
 * with the request, each next one a gap_ms draw later (drawn last from the
 * length stream, so the rest of the workload is unchanged). "call_groups":
 * {"fraction": 0.2, "calls": 3, "gap_ms": <length-style distribution>,
 * "deadline_ms": 10000} makes a fraction of the arrivals the first call
 * of a multi-call (agentic) group: `calls` calls in all, each next one a
 * gap_ms draw after the one before (an open-loop stand-in for the tool
 * time between calls), all sharing the first call's deadline (JITServe);
 * the group calls count towards `requests`. Open-loop arrival processes
 * only; O(calls pending) per request.
 *
 * With a closed-loop arrival process the source answers WL_WAIT while no
 * client is ready and hears of completions through on_complete (with the
 * session, for prefix kind "session": traces/prefix_gen.h). */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "sim/jsoncfg.h"
#include "traces/gen.h"
#include "traces/prefix_gen.h"
#include "traces/workload.h"

typedef struct synthetic {
    arrival_proc arrival;
    len_dist input, output, ttft_slo_ms;
    int has_ttft_slo;
    int64_t priority_classes;
    int64_t requests, emitted;
    arrival_gen gen;
    gsl_rng *arrival_rng, *length_rng;
    prefix_gen *prefix;   /* NULL: no shared prefixes */
    /* Streamed prompts ("stream"): chunk size, gaps, the current request's chunks. */
    int64_t chunk_tokens;   /* 0: prompts arrive whole */
    len_dist gap_ms;
    int32_t chunk_tok[256];
    sim_time_ns chunk_at[256];
    /* Multi-call groups ("call_groups"): their settings, the calls still to
     * come (arrival, group, shared deadline, calls left after it), and the
     * process's next arrival held while calls come first (held 1; -1: the
     * process has ended). */
    double group_fraction;   /* 0: no groups */
    int64_t group_calls;
    len_dist group_gap_ms;
    sim_time_ns group_deadline_ns;
    uint64_t groups;
    struct pending_call {
        sim_time_ns at_ns, deadline_ns;
        uint64_t group;
        int32_t left;
    } *calls;
    size_t n_calls, calls_cap;
    sim_time_ns held_ns;
    int held;
} synthetic;

static void synthetic_destroy(void *state)
{
    synthetic *s = state;
    arrival_gen_fini(&s->gen);
    prefix_gen_destroy(s->prefix);
    arrival_fini(&s->arrival);
    len_dist_fini(&s->input);
    len_dist_fini(&s->output);
    len_dist_fini(&s->ttft_slo_ms);
    len_dist_fini(&s->gap_ms);
    len_dist_fini(&s->group_gap_ms);
    free(s->calls);
    free(s);
}

static int synthetic_init(const wl_setup *setup, cJSON *params, const char *path,
                          void **state, sim_err *err)
{
    static const char *const keys[] = {WL_COMMON_KEYS, "requests", "arrival", "input_tokens",
                                       "output_tokens", "ttft_slo_ms", "priority_classes",
                                       "prefix", "stream", "call_groups", NULL};
    synthetic *s = sim_xcalloc(1, sizeof *s);
    char sub[256];
    cJSON *o;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_int(params, path, "requests", JCFG_REQUIRED_INT, 1, INT64_MAX / 2,
                 &s->requests, err) ||
        jcfg_obj(params, path, "arrival", &o, sub, err) ||
        arrival_parse(o, sub, &s->arrival, err) ||
        jcfg_obj(params, path, "input_tokens", &o, sub, err) ||
        len_dist_parse(o, sub, &s->input, err) ||
        jcfg_obj(params, path, "output_tokens", &o, sub, err) ||
        len_dist_parse(o, sub, &s->output, err) ||
        jcfg_int(params, path, "priority_classes", 1, 1, 1 << 20, &s->priority_classes,
                 err)) {
        synthetic_destroy(s);
        return -1;
    }
    if (cJSON_GetObjectItemCaseSensitive(params, "ttft_slo_ms")) {
        s->has_ttft_slo = 1;
        if (jcfg_obj(params, path, "ttft_slo_ms", &o, sub, err) ||
            len_dist_parse(o, sub, &s->ttft_slo_ms, err)) {
            synthetic_destroy(s);
            return -1;
        }
    }
    if (cJSON_GetObjectItemCaseSensitive(params, "stream")) {
        static const char *const skeys[] = {"chunk_tokens", "gap_ms", NULL};
        cJSON *so, *g;
        char gpath[256];
        if (jcfg_obj(params, path, "stream", &so, sub, err) ||
            jcfg_check_keys(so, sub, skeys, err) ||
            jcfg_int(so, sub, "chunk_tokens", 512, 1, 1 << 24, &s->chunk_tokens, err) ||
            jcfg_obj(so, sub, "gap_ms", &g, gpath, err) ||
            len_dist_parse(g, gpath, &s->gap_ms, err)) {
            synthetic_destroy(s);
            return -1;
        }
    }
    if (cJSON_GetObjectItemCaseSensitive(params, "call_groups")) {
        static const char *const gkeys[] = {"fraction", "calls", "gap_ms", "deadline_ms", NULL};
        cJSON *go, *g;
        char gpath[256];
        double deadline_ms;
        if (jcfg_obj(params, path, "call_groups", &go, sub, err) ||
            jcfg_check_keys(go, sub, gkeys, err) ||
            jcfg_num(go, sub, "fraction", JCFG_REQUIRED_NUM, 0, 1, &s->group_fraction, err) ||
            jcfg_int(go, sub, "calls", 3, 1, 1 << 16, &s->group_calls, err) ||
            jcfg_num(go, sub, "deadline_ms", JCFG_REQUIRED_NUM, 0.001, 1e9, &deadline_ms, err) ||
            jcfg_obj(go, sub, "gap_ms", &g, gpath, err) ||
            len_dist_parse(g, gpath, &s->group_gap_ms, err)) {
            synthetic_destroy(s);
            return -1;
        }
        s->group_deadline_ns = (sim_time_ns)llround(deadline_ms * 1e6);
        if (s->arrival.kind == ARRIVAL_CLOSED_LOOP) {
            sim_errf(err, "%s.call_groups: needs an open-loop arrival process", path);
            synthetic_destroy(s);
            return -1;
        }
    }
    if (cJSON_GetObjectItemCaseSensitive(params, "prefix")) {
        if (jcfg_obj(params, path, "prefix", &o, sub, err) ||
            prefix_gen_create(o, sub, &s->input, setup->max_context_tokens, setup->length_rng,
                              &s->prefix, err)) {
            synthetic_destroy(s);
            return -1;
        }
    }
    if (s->prefix && prefix_gen_sessions(s->prefix)) {
        if (s->arrival.kind != ARRIVAL_CLOSED_LOOP) {
            sim_errf(err, "%s.prefix.kind: \"session\" needs a closed_loop arrival process "
                     "(its clients are the session lanes)", path);
            synthetic_destroy(s);
            return -1;
        }
        prefix_gen_set_lanes(s->prefix, s->arrival.clients);
    }
    arrival_gen_init(&s->gen, &s->arrival, setup->arrival_rng);
    s->arrival_rng = setup->arrival_rng;
    s->length_rng = setup->length_rng;
    *state = s;
    return 0;
}

/* Call groups: the next arrival is the earlier of the process's next one
 * (held until taken) and the earliest call still to come (ties: the call).
 * Sets *call to that call's index, or -1 for the process's arrival. */
static int next_with_calls(synthetic *s, sim_time_ns now, sim_time_ns *at, ptrdiff_t *call)
{
    if (!s->held) {
        int rc = arrival_gen_next(&s->gen, now, &s->held_ns);
        s->held = rc == ARRIVAL_AT ? 1 : -1;
    }
    *call = -1;
    for (size_t i = 0; i < s->n_calls; i++)
        if (*call < 0 || s->calls[i].at_ns < s->calls[*call].at_ns)
            *call = (ptrdiff_t)i;
    if (*call >= 0 && (s->held < 0 || s->calls[*call].at_ns <= s->held_ns)) {
        *at = s->calls[*call].at_ns;
        return ARRIVAL_AT;
    }
    *call = -1;
    if (s->held < 0)
        return ARRIVAL_END;
    *at = s->held_ns;
    s->held = 0;
    return ARRIVAL_AT;
}

/* A request's call group: the next call of a pending group, or, with
 * probability `fraction`, the first call of a new group. Draws last. */
static void assign_group(synthetic *s, ptrdiff_t call, wl_request *out)
{
    if (call >= 0) {
        struct pending_call *p = &s->calls[call];
        out->call_group = p->group;
        out->deadline_ns = p->deadline_ns > out->arrival_ns ? p->deadline_ns - out->arrival_ns : 1;
        if (--p->left > 0)
            p->at_ns += (sim_time_ns)len_dist_sample(&s->group_gap_ms, s->length_rng) *
                        SIM_NS_PER_MS;
        else
            s->calls[call] = s->calls[--s->n_calls];
        return;
    }
    if (gsl_rng_uniform(s->length_rng) >= s->group_fraction)
        return;
    out->call_group = ++s->groups;
    out->deadline_ns = s->group_deadline_ns;
    if (s->group_calls < 2)
        return;
    sim_grow((void **)&s->calls, &s->calls_cap, s->n_calls + 1, sizeof *s->calls);
    s->calls[s->n_calls++] = (struct pending_call){
        out->arrival_ns +
            (sim_time_ns)len_dist_sample(&s->group_gap_ms, s->length_rng) * SIM_NS_PER_MS,
        out->arrival_ns + s->group_deadline_ns, out->call_group, (int32_t)s->group_calls - 1};
}

static int synthetic_next(void *state, sim_time_ns now, wl_request *out, sim_err *err)
{
    (void)err;
    synthetic *s = state;
    if (s->emitted == s->requests)
        return WL_END;
    ptrdiff_t call = -1;
    int rc = s->group_fraction > 0 ? next_with_calls(s, now, &out->arrival_ns, &call)
                                   : arrival_gen_next(&s->gen, now, &out->arrival_ns);
    if (rc != ARRIVAL_AT)
        return rc == ARRIVAL_WAIT ? WL_WAIT : WL_END;
    out->input_tokens = len_dist_sample(&s->input, s->length_rng);
    out->output_tokens = len_dist_sample(&s->output, s->length_rng);
    if (s->has_ttft_slo)
        out->ttft_slo_ns = len_dist_sample(&s->ttft_slo_ms, s->length_rng) * SIM_NS_PER_MS;
    if (s->priority_classes > 1)
        out->priority = (int32_t)gsl_rng_uniform_int(s->length_rng,
                                                     (unsigned long)s->priority_classes);
    if (s->prefix && prefix_gen_sessions(s->prefix))
        prefix_gen_next_lane(s->prefix, s->gen.client, out->arrival_ns, out, s->length_rng);
    else if (s->prefix)
        prefix_gen_next(s->prefix, out, s->length_rng);
    if (s->chunk_tokens > 0) {
        int64_t k = (out->input_tokens + s->chunk_tokens - 1) / s->chunk_tokens;
        if (k > 256)
            k = 256;
        sim_time_ns at = 0;
        for (int32_t i = 0; i < (int32_t)k; i++) {
            s->chunk_tok[i] = (int32_t)(out->input_tokens / k + (i < out->input_tokens % k));
            if (i > 0)
                at += (sim_time_ns)len_dist_sample(&s->gap_ms, s->length_rng) * SIM_NS_PER_MS;
            s->chunk_at[i] = at;
        }
        out->chunk_tokens = s->chunk_tok;
        out->chunk_offset_ns = s->chunk_at;
        out->n_chunks = (int32_t)k;
    }
    if (s->group_fraction > 0)
        assign_group(s, call, out);
    s->emitted++;
    return WL_REQUEST;
}

static int synthetic_complete(void *state, sim_time_ns now)
{
    synthetic *s = state;
    return arrival_gen_complete(&s->gen, now);
}

/* Sessions: the finished turn's lane is ready again after a gap. */
static int synthetic_complete_session(void *state, sim_time_ns now, uint64_t session_id)
{
    synthetic *s = state;
    int32_t lane = s->prefix ? prefix_gen_lane_of(s->prefix, session_id) : -1;
    if (lane < 0)
        return arrival_gen_complete(&s->gen, now);
    prefix_gen_lane_done(s->prefix, lane, now);
    return arrival_gen_complete_client(&s->gen, now, lane);
}

const wl_source_ops wl_synthetic = {
    .name = "synthetic",
    .init = synthetic_init,
    .next = synthetic_next,
    .destroy = synthetic_destroy,
    .on_complete = synthetic_complete,
    .on_complete_session = synthetic_complete_session,
};
