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
    r->unarrived_tokens = 0;
    r->last_chunk_ns = now;
    if (w->n_chunks < 2)
        return;
    if (w->n_chunks > q->chunk_cap) {
        q->chunk_tokens = sim_xrealloc(q->chunk_tokens, (size_t)w->n_chunks * sizeof *q->chunk_tokens);
        q->chunk_ns = sim_xrealloc(q->chunk_ns, (size_t)w->n_chunks * sizeof *q->chunk_ns);
        q->chunk_cap = w->n_chunks;
    }
    /* The chunks, cut or extended at the end to sum to the prompt. */
    int32_t sum = 0, n = 0;
    for (int32_t k = 0; k < w->n_chunks && sum < r->input_tokens; k++) {
        int32_t t = w->chunk_tokens[k];
        if (sum + t > r->input_tokens)
            t = r->input_tokens - sum;
        q->chunk_tokens[n] = t;
        q->chunk_ns[n++] = w->chunk_offset_ns[k];
        sum += t;
    }
    q->chunk_tokens[n - 1] += r->input_tokens - sum;
    q->n_chunks = n;
    if (n < 2)
        return;
    r->unarrived_tokens = r->input_tokens - q->chunk_tokens[0];
    q->next_chunk = 1;
    sim_schedule(eng, now + q->chunk_ns[1], PHASE_ARRIVAL, EV_CHUNK, q, 0);
}

void stream_req_fini(req *q)
{
    free(q->chunk_tokens);
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
    r->unarrived_tokens -= q->chunk_tokens[q->next_chunk];
    r->last_chunk_ns = now;
    SIM_ASSERT_AT(now, r->unarrived_tokens >= 0);
    if (++q->next_chunk < q->n_chunks)
        sim_schedule(eng, r->arrival_ns + q->chunk_ns[q->next_chunk], PHASE_ARRIVAL, EV_CHUNK,
                     q, 0);
    if ((r->state == REQ_WAITING || r->state == REQ_RUNNING) && r->instance >= 0)
        instance_notify(cluster_instance(c, r->instance));
}
