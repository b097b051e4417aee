/* Streamed prompts (see stream.h). A request's chunks are copied into its
 * own arrays (kept for reuse when the request is recycled); one chunk event
 * is pending per streamed request at a time, so the event queue grows by at
 * most the number of requests still streaming. */
#include "serve/stream.h"

#include <stdlib.h>

#include "serve/cluster_core.h"
#include "serve/events.h"

void stream_metrics_init(stream_metrics *m)
{
    m->requests = 0;
    sim_hist_init(&m->ttft_first);
    sim_hist_init(&m->ttft_last);
}

void stream_metrics_fini(stream_metrics *m)
{
    sim_hist_fini(&m->ttft_first);
    sim_hist_fini(&m->ttft_last);
}

void stream_finished(stream_metrics *m, const req *q)
{
    const serve_req *r = &q->pub;
    if (q->n_chunks < 2 || r->first_token_ns < 0)
        return;
    m->requests++;
    sim_hist_add(&m->ttft_first, r->first_token_ns - r->arrival_ns);
    sim_hist_add(&m->ttft_last, r->first_token_ns - r->last_chunk_ns);
}

static pctl stream_pctl(const sim_hist *h)
{
    return (pctl){.mean = sim_hist_mean(h) / 1e9, .p50 = sim_hist_quantile(h, 0.5) / 1e9,
                  .p90 = sim_hist_quantile(h, 0.9) / 1e9, .p99 = sim_hist_quantile(h, 0.99) / 1e9};
}

void stream_summarize(const stream_metrics *m, run_summary *s)
{
    s->stream_requests = m->requests;
    if (!m->requests)
        return;
    s->stream_ttft_first_s = stream_pctl(&m->ttft_first);
    s->stream_ttft_last_s = stream_pctl(&m->ttft_last);
}

void stream_begin(sim_engine *eng, req *q, const wl_request *w, sim_time_ns now)
{
    serve_req *r = &q->pub;
    q->n_chunks = q->next_chunk = 0;
    q->rewind_to = -1;
    q->arrived_tokens = r->input_tokens;
    r->unarrived_tokens = 0;
    r->last_chunk_ns = now;
    if (w->n_chunks < 2)
        return;
    if (w->n_chunks > q->chunk_cap) {
        size_t n = (size_t)w->n_chunks;
        q->chunk_tokens = sim_xrealloc(q->chunk_tokens, n * sizeof *q->chunk_tokens);
        q->chunk_keep = sim_xrealloc(q->chunk_keep, n * sizeof *q->chunk_keep);
        q->chunk_ns = sim_xrealloc(q->chunk_ns, n * sizeof *q->chunk_ns);
        q->chunk_cap = w->n_chunks;
    }
    /* The chunks as given, except that the context stays shorter than the
     * prompt until the last chunk, which leaves it exactly the prompt (the
     * workload may have clamped the prompt; [assume]: a context longer
     * before an update than the final prompt is cut to one token less). */
    int32_t len = 0, n = w->n_chunks;
    for (int32_t k = 0; k < n; k++) {
        int32_t keep = w->chunk_keep && k > 0 ? w->chunk_keep[k] : -1;
        if (keep > len)
            keep = len;   /* keeps at most what has arrived */
        int32_t base = keep >= 0 ? keep : len, t = w->chunk_tokens[k];
        int32_t most = k == n - 1 ? r->input_tokens : r->input_tokens - 1;
        if (base > most)
            base = keep = most;
        if (base + t > most || k == n - 1)
            t = most - base;
        q->chunk_tokens[k] = t;
        q->chunk_keep[k] = keep;
        q->chunk_ns[k] = w->chunk_offset_ns[k];
        len = base + t;
    }
    q->n_chunks = n;
    q->arrived_tokens = q->chunk_tokens[0];
    r->unarrived_tokens = r->input_tokens - q->arrived_tokens;
    q->next_chunk = 1;
    sim_schedule(eng, now + q->chunk_ns[1], PHASE_ARRIVAL, EV_CHUNK, q, 0);
}

void stream_req_fini(req *q)
{
    free(q->chunk_tokens);
    free(q->chunk_keep);
    free(q->chunk_ns);
}

void stream_on_chunk(sim_engine *eng, void *ctx, const sim_event *ev)
{
    cluster *c = ctx;
    req *q = ev->data;
    serve_req *r = &q->pub;
    sim_time_ns now = sim_now(eng);
    /* A request cannot finish before its whole prompt is in. */
    SIM_ASSERT_AT(now, r->state != REQ_FINISHED && q->next_chunk < q->n_chunks);
    int32_t keep = q->chunk_keep[q->next_chunk];
    if (keep >= 0) {   /* an update: the context past `keep` is replaced */
        q->arrived_tokens = keep;
        if (r->state == REQ_WAITING || r->state == REQ_RUNNING)
            instance_rewind(cluster_instance(c, r->instance), r, keep);
        else if (r->computed_tokens > keep)   /* moving: its KV is cut on landing */
            q->rewind_to = keep;
    }
    q->arrived_tokens += q->chunk_tokens[q->next_chunk];
    r->unarrived_tokens = r->input_tokens - q->arrived_tokens;
    r->last_chunk_ns = now;
    SIM_ASSERT_AT(now, r->unarrived_tokens >= 0);
    if (++q->next_chunk < q->n_chunks)
        sim_schedule(eng, r->arrival_ns + q->chunk_ns[q->next_chunk], PHASE_ARRIVAL, EV_CHUNK,
                     q, 0);
    if ((r->state == REQ_WAITING || r->state == REQ_RUNNING) && r->instance >= 0)
        instance_notify(cluster_instance(c, r->instance));
}
