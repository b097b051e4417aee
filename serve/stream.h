/* Streamed prompts (Stream2LLM): a request's context arrives in chunks over
 * time. The request enters with its first chunk; each later chunk is an
 * event (EV_CHUNK, PHASE_ARRIVAL) that lowers its unarrived_tokens and
 * wakes its instance. Its prefill computes only what has arrived
 * (batch_todo_tokens, api/batch.h), so it never runs ahead of its context,
 * and its first token comes once the whole prompt is in (the sequence
 * counts every prompt token from the start, api/request.h). A chunk
 * appends tokens (append mode) or replaces the context past its first
 * `keep` tokens (update mode): the request keeps the KV of at most `keep`
 * computed tokens (instance_rewind; work in flight on the replaced tokens
 * is dropped when its iteration ends) and recomputes the rest
 * (stream_invalidated_tokens counts them). The prompt's length
 * (input_tokens) is its final context's.
 *
 * Metrics: for streamed requests, TTFT from the first chunk (the request's
 * arrival) and from the last chunk. */
#ifndef SERVE_STREAM_H
#define SERVE_STREAM_H

#include "serve/metrics.h"
#include "serve/req.h"
#include "sim/engine.h"
#include "sim/hist.h"
#include "traces/workload.h"

typedef struct stream_metrics {
    uint64_t requests;        /* streamed requests finished */
    sim_hist ttft_first, ttft_last;
} stream_metrics;

void stream_metrics_init(stream_metrics *m);
void stream_metrics_fini(stream_metrics *m);
/* A finished request: its TTFTs, if it was streamed. */
void stream_finished(stream_metrics *m, const req *q);
void stream_summarize(const stream_metrics *m, run_summary *s);

/* At q's arrival (now): copies w's chunks (cut or extended at the last so
 * that they sum to q's input_tokens, which the workload may have clamped),
 * sets unarrived_tokens and last_chunk_ns, and schedules the next chunk.
 * A whole prompt (fewer than 2 chunks) gets none. */
void stream_begin(sim_engine *eng, req *q, const wl_request *w, sim_time_ns now);
/* Frees q's chunk arrays (at the end of the run; requests are recycled). */
void stream_req_fini(req *q);

/* The EV_CHUNK handler: ctx is the cluster, the event's data the request. */
void stream_on_chunk(sim_engine *eng, void *ctx, const sim_event *ev);

#endif
