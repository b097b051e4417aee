/* The cluster (see cluster.h): wires the engine to the workload, the router
 * and the instances, and owns the requests.
 *
 * Only one arrival is pending at a time: the arrival handler routes the
 * request and then reads the next one from the source, so memory holds the
 * requests in flight, not the trace. Requests come from slabs through a free
 * list and go back when they finish. */
#include "serve/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/req.h"
#include "traces/workload.h"

#define SLAB_REQS 1024

struct cluster {
    const cluster_setup *cs;
    sim_engine *eng;
    wl_source *wl;
    metrics metrics;
    cost_setup cost;
    instance **inst;
    inst_load *load;
    int32_t n;
    const route_policy_ops *route;
    void *route_state;
    uint32_t kind_arrival;
    uint32_t kind_workload_poll;

    wl_request next;
    uint64_t arrived;
    uint64_t identity_salt;  /* makes content ids unique to the run */
    sim_err run_err;
    int failed;
    int wl_waiting;        /* the source answered WL_WAIT (closed loop) */

    req **slabs;
    size_t n_slabs, slab_cap;
    req **free_reqs;
    size_t n_free, free_cap;

    /* Time series (see "Time series" below); on_sample NULL when off. */
    ts_sample_fn on_sample;
    void *sample_ctx;
    iter_observer_fn observer;     /* the caller's, called after ours */
    void *observer_ctx;
    uint32_t kind_sample;
    uint64_t sample_events;
    ts_instance *ts;
    sim_time_ns *iter_end_ns;      /* end of each instance's last iteration */
    double *iter_power_w;          /* and its mean power */
};

static req *req_alloc(cluster *c)
{
    if (!c->n_free) {
        sim_grow((void **)&c->slabs, &c->slab_cap, c->n_slabs + 1, sizeof *c->slabs);
        req *slab = sim_xcalloc(SLAB_REQS, sizeof *slab);
        c->slabs[c->n_slabs++] = slab;
        sim_grow((void **)&c->free_reqs, &c->free_cap, SLAB_REQS, sizeof *c->free_reqs);
        for (int i = SLAB_REQS - 1; i >= 0; i--)
            c->free_reqs[c->n_free++] = &slab[i];
    }
    return c->free_reqs[--c->n_free];
}

static void schedule_next_arrival(cluster *c);

static void req_release(void *ctx, serve_req *r)
{
    cluster *c = ctx;
    sim_grow((void **)&c->free_reqs, &c->free_cap, c->n_free + 1, sizeof *c->free_reqs);
    c->free_reqs[c->n_free++] = req_of(r);
    if (wl_source_complete(c->wl, sim_now(c->eng)) && c->wl_waiting)
        schedule_next_arrival(c);
}

/* Reads the next request and schedules its arrival; stops the run on a
 * workload error. A closed-loop source may answer WL_WAIT: nothing is due
 * until the time it names (polled then) or until a request finishes. */
static void schedule_next_arrival(cluster *c)
{
    int rc = wl_source_next(c->wl, sim_now(c->eng), &c->next, &c->run_err);
    c->wl_waiting = rc == WL_WAIT;
    if (rc < 0) {
        c->failed = 1;
        sim_stop(c->eng);
    } else if (rc == WL_REQUEST) {
        sim_schedule(c->eng, c->next.arrival_ns, PHASE_ARRIVAL, c->kind_arrival, c, 0);
    } else if (rc == WL_WAIT && c->next.arrival_ns != SIM_TIME_NEVER) {
        sim_schedule(c->eng, c->next.arrival_ns, PHASE_ARRIVAL, c->kind_workload_poll, c, 0);
    }
}

static void on_workload_poll(sim_engine *eng, void *ctx, const sim_event *ev)
{
    (void)eng, (void)ev;
    cluster *c = ctx;
    if (c->wl_waiting)
        schedule_next_arrival(c);
}

/* The request's content identity for the prefix cache (serve/kv.h): its
 * chained prefix ids, copied (the source's are valid only until its next
 * request), and an id for the rest of its tokens, unique in the run. */
static void set_identity(cluster *c, req *q)
{
    const wl_request *w = &c->next;
    int32_t n = w->n_prefix_blocks, id_tokens = 0;
    if (n > 0) {
        if (n > q->ids_cap) {
            q->ids = sim_xrealloc(q->ids, (size_t)n * sizeof *q->ids);
            q->ids_cap = n;
        }
        memcpy(q->ids, w->prefix_blocks, (size_t)n * sizeof *q->ids);
        int64_t covered = (int64_t)n * w->prefix_block_tokens;
        id_tokens = covered < q->pub.input_tokens ? (int32_t)covered : q->pub.input_tokens;
    }
    kv_req_init(&q->kv, n > 0 ? q->ids : NULL, id_tokens, w->prefix_block_tokens,
                sim_hash_mix(c->identity_salt, q->pub.id));
}

static void on_arrival(sim_engine *eng, void *ctx, const sim_event *ev)
{
    (void)ev;
    cluster *c = ctx;
    sim_time_ns now = sim_now(eng);
    if (c->arrived == 0)
        for (int32_t i = 0; i < c->n; i++)
            instance_open(c->inst[i], now);
    req *q = req_alloc(c);
    serve_req *r = &q->pub;
    *r = (serve_req){
        .id = c->arrived++,
        .arrival_ns = now,
        .input_tokens = c->next.input_tokens,
        .output_tokens = c->next.output_tokens,
        .priority = c->next.priority,
        .slo_class = c->next.slo_class,
        .tenant = c->next.tenant,
        .ttft_deadline_ns = now + (c->next.ttft_slo_ns ? c->next.ttft_slo_ns
                                                       : c->cs->slo_ttft_ns),
        .state = REQ_WAITING,
        .first_scheduled_ns = -1,
        .first_token_ns = -1,
        .prefix_group = c->next.n_prefix_blocks ? c->next.prefix_blocks[0] : 0,
    };
    set_identity(c, q);
    metrics_arrival(&c->metrics, r);
    route_view view = {.now = now, .load = c->load, .n_instances = c->n};
    int32_t pick = c->route->route(c->route_state, &view, r);
    SIM_ASSERT_AT(now, pick >= 0 && pick < c->n);
    r->instance = pick;
    c->load[pick].outstanding_tokens += r->input_tokens + r->output_tokens;
    instance_enqueue(c->inst[pick], r);
    schedule_next_arrival(c);
}

/* ---- Time series ---------------------------------------------------------
 * A sample event every timeseries_interval_ns from time 0, in the last phase
 * of its instant, reads each instance's queue lengths and KV use and the
 * power of its current iteration (an iteration observer keeps the end and
 * mean power of each instance's latest one). Sampling only reads state, and
 * its events keep their own phase, so the other events run in the same
 * order as without it; its events are left out of the summary's count, so a
 * sampled run reports exactly what an unsampled one does. The sampler
 * reschedules itself only while other events are pending, so it never keeps
 * the engine running once the run itself is over. */

/* Idle stretches longer than this many intervals are not sampled. */
#define TS_MAX_IDLE_SAMPLES 10000

static void ts_on_iteration(void *ctx, const iter_info *it)
{
    cluster *c = ctx;
    c->iter_end_ns[it->instance] = it->start_ns + it->cost->latency_ns;
    c->iter_power_w[it->instance] = it->cost->energy_j * 1e9 / (double)it->cost->latency_ns;
    if (c->observer)
        c->observer(c->observer_ctx, it);
}

static void ts_on_sample(sim_engine *eng, void *ctx, const sim_event *ev)
{
    (void)ev;
    cluster *c = ctx;
    sim_time_ns now = sim_now(eng);
    int32_t active = 0;
    c->sample_events++;
    for (int32_t i = 0; i < c->n; i++) {
        const kv_cache *kv = instance_kv(c->inst[i]);
        int64_t total = kv_total_blocks(kv);
        ts_instance *t = &c->ts[i];
        t->waiting = c->load[i].n_waiting;
        t->running = c->load[i].n_running;
        t->active = t->waiting + t->running > 0;
        t->kv_used_fraction = total ? (double)kv_used_blocks(kv) / total : 0;
        t->power_w = now < c->iter_end_ns[i] ? c->iter_power_w[i]
                                              : instance_idle_power_w(c->inst[i]);
        active += t->active;
    }
    ts_sample s = {now, c->cs->timeseries_interval_ns, c->n, active, c->ts};
    c->on_sample(c->sample_ctx, &s);
    if (sim_events_pending(eng) == 0)
        return;
    /* A long idle stretch (sparse load, or a trace with a gap of days) would
     * only repeat this sample: skip to the last interval before the next
     * event, so the number of samples stays bounded by the busy time. */
    sim_time_ns interval = c->cs->timeseries_interval_ns, next = now + interval;
    sim_time_ns next_event = sim_next_event_time(eng);
    if (active == 0 && next_event - now > TS_MAX_IDLE_SAMPLES * interval)
        next = next_event - (next_event - now) % interval;
    sim_schedule(eng, next, PHASE_SAMPLE, c->kind_sample, c, 0);
}

static void ts_init(cluster *c, const cluster_hooks *hooks)
{
    if (c->cs->timeseries_interval_ns <= 0 || !hooks->on_sample)
        return;
    c->on_sample = hooks->on_sample;
    c->sample_ctx = hooks->sample_ctx;
    c->observer = hooks->on_iteration;
    c->observer_ctx = hooks->iteration_ctx;
    c->kind_sample = sim_engine_register(c->eng, "sample", ts_on_sample, c);
    c->ts = sim_xcalloc((size_t)c->n, sizeof *c->ts);
    c->iter_end_ns = sim_xcalloc((size_t)c->n, sizeof *c->iter_end_ns);
    c->iter_power_w = sim_xcalloc((size_t)c->n, sizeof *c->iter_power_w);
}

cluster *cluster_create(const cluster_setup *cs, const cluster_hooks *hooks, sim_err *err)
{
    static const cluster_hooks no_hooks;
    if (!hooks)
        hooks = &no_hooks;
    cluster *c = sim_xcalloc(1, sizeof *c);
    c->cs = cs;
    c->n = cs->n_instances;
    c->eng = sim_engine_create(cs->seed);
    c->identity_salt = sim_stream_seed(cs->seed, STREAM_IDENTITY);
    c->kind_arrival = sim_engine_register(c->eng, "arrival", on_arrival, c);
    uint32_t kind_iter_end = sim_engine_register(c->eng, "iteration_end",
                                                 instance_on_iter_end, c);
    uint32_t kind_wake = sim_engine_register(c->eng, "wake", instance_on_wake, c);
    c->kind_workload_poll = sim_engine_register(c->eng, "workload_poll", on_workload_poll, c);
    metrics_init(&c->metrics, cs->slo_ttft_ns, cs->slo_tpot_ns, hooks->on_record,
                 hooks->record_ctx);
    ts_init(c, hooks);

    wl_setup wl = {
        .arrival_rng = sim_rng(c->eng, STREAM_ARRIVALS),
        .length_rng = sim_rng(c->eng, STREAM_LENGTHS),
        .max_context_tokens = cs->batch.max_context_tokens,
    };
    c->wl = wl_source_create(&wl, cs->workload, CFG_PATH_WORKLOAD, err);
    if (!c->wl)
        goto fail;
    if (cs->route_policy->init(c->n, cs->route_params, CFG_PATH_ROUTE_PARAMS,
                                &c->route_state, err))
        goto fail;
    c->route = cs->route_policy;

    c->cost = (cost_setup){&cs->model, &cs->gpu, PAR_TP(cs->tp), cs->iteration_overhead_ns};
    c->inst = sim_xcalloc((size_t)c->n, sizeof *c->inst);
    c->load = sim_xcalloc((size_t)c->n, sizeof *c->load);
    for (int32_t i = 0; i < c->n; i++) {
        instance_setup s = {
            .index = i,
            .batch = cs->batch,
            .policy = cs->batch_policy,
            .policy_params = cs->batch_params,
            .policy_path = CFG_PATH_BATCH_PARAMS,
            .order = cs->order_policy,
            .order_params = cs->order_params,
            .order_path = CFG_PATH_ORDER_PARAMS,
            .order_seed = sim_stream_seed(cs->seed, STREAM_ORDER_BASE + (uint64_t)i),
            .swap = cs->swap,
            .prefix_caching = cs->prefix_caching,
            .cost = &c->cost,
            .cost_name = cs->cost_name,
            .cost_params = cs->cost_params,
            .cost_path = CFG_PATH_COST_PARAMS,
            .kind_iter_end = kind_iter_end,
            .kind_wake = kind_wake,
            .metrics = &c->metrics,
            .load = &c->load[i],
            .release = req_release,
            .release_ctx = c,
            .observer = hooks->on_iteration,
            .observer_ctx = hooks->iteration_ctx,
        };
        if (c->on_sample) {   /* the sampler's observer calls the caller's */
            s.observer = ts_on_iteration;
            s.observer_ctx = c;
        }
        c->inst[i] = instance_create(c->eng, &s, err);
        if (!c->inst[i])
            goto fail;
    }
    return c;
fail:
    cluster_destroy(c);
    return NULL;
}

void cluster_destroy(cluster *c)
{
    if (!c)
        return;
    for (int32_t i = 0; c->inst && i < c->n; i++)
        instance_destroy(c->inst[i]);
    free(c->inst);
    free(c->load);
    if (c->route_state && c->route->destroy)
        c->route->destroy(c->route_state);
    wl_source_destroy(c->wl);
    metrics_fini(&c->metrics);
    sim_engine_destroy(c->eng);
    for (size_t i = 0; i < c->n_slabs; i++) {
        for (int j = 0; j < SLAB_REQS; j++) {
            kv_req_fini(&c->slabs[i][j].kv);
            free(c->slabs[i][j].ids);
        }
        free(c->slabs[i]);
    }
    free(c->slabs);
    free(c->free_reqs);
    free(c->ts);
    free(c->iter_end_ns);
    free(c->iter_power_w);
    free(c);
}

int cluster_run(cluster *c, sim_err *err)
{
    schedule_next_arrival(c);
    if (c->on_sample)
        sim_schedule(c->eng, 0, PHASE_SAMPLE, c->kind_sample, c, 0);
    if (!c->failed)
        sim_run(c->eng, SIM_TIME_NEVER);
    if (c->failed) {
        if (err)
            *err = c->run_err;
        return -1;
    }
    /* Everything that arrived has finished and given its KV back. */
    SIM_ASSERT(c->metrics.completed == c->arrived);
    sim_time_ns end = c->metrics.last_finish_ns;
    for (int32_t i = 0; i < c->n; i++) {
        SIM_ASSERT(kv_used_blocks(instance_kv(c->inst[i])) == 0);
        instance_close(c->inst[i], end);
    }
    return 0;
}

void cluster_summarize(const cluster *c, run_summary *s)
{
    memset(s, 0, sizeof *s);
    metrics_summarize(&c->metrics, s);
    s->seed = c->cs->seed;
    s->arrived = c->arrived;
    s->clamped = wl_source_clamped(c->wl);
    s->events = sim_events_run(c->eng) - c->sample_events;   /* the run's own */
    sim_time_ns window = c->metrics.last_finish_ns - c->metrics.first_arrival_ns;
    double busy_ns = 0, kv_mean = 0, processed_tokens = 0;
    for (int32_t i = 0; i < c->n; i++) {
        instance_stats st;
        instance_get_stats(c->inst[i], &st);
        const kv_cache *kv = instance_kv(c->inst[i]);
        s->iterations += st.iterations;
        s->energy_j += st.energy_j;
        s->recomputed_tokens += st.recomputed_tokens;
        s->swap_out_bytes += st.swap_out_bytes * c->cs->tp;
        s->swap_in_bytes += st.swap_in_bytes * c->cs->tp;
        s->swap_time_s += st.swap_ns / 1e9;
        s->weight_bytes += st.weight_bytes * c->cs->tp;
        s->kv_bytes += st.kv_bytes * c->cs->tp;
        processed_tokens += st.tokens;
        busy_ns += (double)st.busy_ns;
        for (int k = 0; k < OP_KIND_COUNT; k++)
            s->term_s[k] += st.term_ns[k] / 1e9;
        for (int k = 0; k < COST_SRC_COUNT; k++)
            s->source_terms[k] += st.source_terms[k];
        kv_stats ks;
        kv_get_stats(kv, &ks);
        double peak = ks.total_blocks ? (double)ks.peak_blocks / ks.total_blocks : 0;
        if (peak > s->kv_peak_fraction)
            s->kv_peak_fraction = peak;
        kv_mean += kv_mean_fraction(kv, c->metrics.first_arrival_ns,
                                    c->metrics.last_finish_ns);
    }
    s->kv_mean_fraction = kv_mean / c->n;
    if (window > 0)
        s->gpu_busy_fraction = busy_ns / ((double)window * c->n);
    if (s->output_tokens)
        s->energy_per_out_token_j = s->energy_j / (double)s->output_tokens;
    if (processed_tokens > 0)
        s->energy_per_token_j = s->energy_j / processed_tokens;
}

void cluster_workload_note(const cluster *c, char *buf, size_t size)
{
    wl_counts wc;
    wl_source_counts(c->wl, &wc);
    wl_counts_describe(&wc, buf, size);
}

void cluster_cost_sources(const run_summary *s, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = 0;
    for (int k = COST_SRC_NONE + 1; k < COST_SRC_COUNT; k++)
        if (s->source_terms[k] && used < size)
            used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? "+" : "",
                                     cost_source_name(k));
    if (!buf[0])
        snprintf(buf, size, "none");
}
