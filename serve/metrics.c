/* Run metrics (see metrics.h). Every finished request is turned into a
 * record, folded into histograms and SLO counters, and handed to the record
 * sink; nothing per request is kept, so memory is constant in the number of
 * requests. TBT is over every gap between consecutive output tokens of every
 * request (the distribution serving papers plot); TPOT is per request. */
#include "serve/metrics.h"

#include <string.h>

void metrics_init(metrics *m, sim_time_ns slo_ttft_ns, sim_time_ns slo_tpot_ns,
                  metrics_record_fn on_record, void *record_ctx)
{
    memset(m, 0, sizeof *m);
    sim_hist_init(&m->ttft);
    sim_hist_init(&m->tbt);
    sim_hist_init(&m->tpot);
    sim_hist_init(&m->e2e);
    sim_hist_init(&m->queue);
    m->slo_ttft_ns = slo_ttft_ns;
    m->slo_tpot_ns = slo_tpot_ns;
    m->on_record = on_record;
    m->record_ctx = record_ctx;
    m->first_arrival_ns = -1;
}

void metrics_fini(metrics *m)
{
    sim_hist_fini(&m->ttft);
    sim_hist_fini(&m->tbt);
    sim_hist_fini(&m->tpot);
    sim_hist_fini(&m->e2e);
    sim_hist_fini(&m->queue);
}

void metrics_arrival(metrics *m, const serve_req *r)
{
    if (m->first_arrival_ns < 0)
        m->first_arrival_ns = r->arrival_ns;
}

void metrics_finish(metrics *m, const serve_req *r, sim_time_ns now)
{
    SIM_ASSERT_AT(now, r->generated_tokens == r->output_tokens && r->first_token_ns >= 0);
    req_record rec = {
        .id = r->id,
        .instance = r->instance,
        .input_tokens = r->input_tokens,
        .output_tokens = r->output_tokens,
        .preemptions = r->preemptions,
        .priority = r->priority,
        .slo_class = r->slo_class,
        .ttft_slo_ns = r->ttft_deadline_ns - r->arrival_ns,
        .arrival_ns = r->arrival_ns,
        .first_token_ns = r->first_token_ns,
        .finish_ns = now,
        .ttft_ns = r->first_token_ns - r->arrival_ns,
        .queue_ns = r->first_scheduled_ns - r->arrival_ns,
        .e2e_ns = now - r->arrival_ns,
        .tbt_max_ns = r->tbt_max_ns,
        .energy_j = r->energy_j,
    };
    /* Mean gap and TPOT coincide per request: (last token - first token) /
     * (tokens - 1). Both are kept since papers name them differently. */
    if (r->output_tokens > 1) {
        rec.tbt_mean_ns = (double)(now - r->first_token_ns) / (r->output_tokens - 1);
        rec.tpot_ns = rec.tbt_mean_ns;
        sim_hist_add(&m->tpot, (int64_t)rec.tpot_ns);
    }
    sim_hist_add(&m->ttft, rec.ttft_ns);
    sim_hist_add(&m->e2e, rec.e2e_ns);
    sim_hist_add(&m->queue, rec.queue_ns);
    /* A request is held to its own TTFT target when it has one. */
    int ttft_ok = rec.ttft_ns <= rec.ttft_slo_ns;
    int tpot_ok = rec.tpot_ns <= (double)m->slo_tpot_ns;
    m->met_ttft += ttft_ok;
    m->met_tpot += tpot_ok;
    m->met_both += ttft_ok && tpot_ok;
    m->completed++;
    m->output_tokens += (uint64_t)r->output_tokens;
    m->preemptions += (uint64_t)r->preemptions;
    if (now > m->last_finish_ns)
        m->last_finish_ns = now;
    if (m->on_record)
        m->on_record(m->record_ctx, &rec);
}

static pctl pctl_of(const sim_hist *h)
{
    return (pctl){
        .mean = sim_hist_mean(h) / 1e9,
        .p50 = sim_hist_quantile(h, 0.50) / 1e9,
        .p90 = sim_hist_quantile(h, 0.90) / 1e9,
        .p99 = sim_hist_quantile(h, 0.99) / 1e9,
    };
}

void metrics_summarize(const metrics *m, run_summary *s)
{
    s->completed = m->completed;
    s->output_tokens = m->output_tokens;
    s->preemptions = m->preemptions;
    s->duration_s = m->completed ? (m->last_finish_ns - m->first_arrival_ns) / 1e9 : 0;
    if (s->duration_s > 0) {
        s->throughput_req_s = m->completed / s->duration_s;
        s->throughput_tok_s = m->output_tokens / s->duration_s;
    }
    s->ttft_s = pctl_of(&m->ttft);
    s->tbt_s = pctl_of(&m->tbt);
    s->tpot_s = pctl_of(&m->tpot);
    s->e2e_s = pctl_of(&m->e2e);
    s->queue_s = pctl_of(&m->queue);
    s->slo_ttft_s = m->slo_ttft_ns / 1e9;
    s->slo_tpot_s = m->slo_tpot_ns / 1e9;
    if (m->completed) {
        s->slo_attain_ttft = (double)m->met_ttft / m->completed;
        s->slo_attain_tpot = (double)m->met_tpot / m->completed;
        s->slo_attain = (double)m->met_both / m->completed;
    }
}
