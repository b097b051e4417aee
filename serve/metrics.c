/* Run metrics (see metrics.h). Every finished request is turned into a
 * record, folded into histograms and SLO counters, and handed to the record
 * sink; nothing per request is kept, so memory is constant in the number of
 * requests. TBT is over every gap between consecutive output tokens of every
 * request (the distribution serving papers plot); TPOT is per request. */
#include "serve/metrics.h"
#include "serve/req.h"

#include <stdlib.h>
#include <string.h>
#include "serve/req.h"

void metrics_init(metrics *m, sim_time_ns slo_ttft_ns, sim_time_ns slo_tpot_ns,
                  metrics_record_fn on_record, void *record_ctx)
{
    memset(m, 0, sizeof *m);
    sim_hist_init(&m->ttft);
    sim_hist_init(&m->tbt);
    sim_hist_init(&m->tpot);
    sim_hist_init(&m->e2e);
    sim_hist_init(&m->queue);
    sim_hist_init(&m->ttft_load);
    sim_hist_init(&m->ttft_compute);
    sess_metrics_init(&m->sessions);
    m->slo_ttft_ns = slo_ttft_ns;
    m->slo_tpot_ns = slo_tpot_ns;
    m->on_record = on_record;
    m->record_ctx = record_ctx;
    m->first_arrival_ns = -1;
}

void metrics_fini(metrics *m)
{
    for (int g = 0; g < METRICS_GROUP_KINDS; g++) {
        for (int32_t i = 0; i < m->n_groups[g]; i++) {
            group_stats *x = &m->groups[g][i];
            if (x->used) {
                sim_hist_fini(&x->ttft);
                sim_hist_fini(&x->tpot);
                sim_hist_fini(&x->e2e);
            }
        }
        free(m->groups[g]);
    }
    sim_hist_fini(&m->ttft);
    sim_hist_fini(&m->tbt);
    sim_hist_fini(&m->tpot);
    sim_hist_fini(&m->e2e);
    sim_hist_fini(&m->queue);
    sim_hist_fini(&m->ttft_load);
    sim_hist_fini(&m->ttft_compute);
    sess_metrics_fini(&m->sessions);
    free(m->pending);
}

void metrics_set_window(metrics *m, sim_time_ns warmup_ns, sim_time_ns cooldown_ns)
{
    SIM_ASSERT(warmup_ns >= 0 && cooldown_ns >= 0);
    m->warmup_ns = warmup_ns;
    m->cooldown_ns = cooldown_ns;
}

static void fold(metrics *m, const req_record *rec);

/* The pending heap, ordered by (arrival, id). */
static bool pending_before(const req_record *a, const req_record *b)
{
    return a->arrival_ns < b->arrival_ns || (a->arrival_ns == b->arrival_ns && a->id < b->id);
}

static void pending_push(metrics *m, const req_record *rec)
{
    if (m->n_pending == m->cap_pending) {
        m->cap_pending = m->cap_pending ? 2 * m->cap_pending : 64;
        m->pending = sim_xrealloc(m->pending, m->cap_pending * sizeof *m->pending);
    }
    size_t i = m->n_pending++;
    while (i > 0 && pending_before(rec, &m->pending[(i - 1) / 2])) {
        m->pending[i] = m->pending[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    m->pending[i] = *rec;
}

static void pending_pop(metrics *m)
{
    req_record last = m->pending[--m->n_pending];
    size_t i = 0, n = m->n_pending;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && pending_before(&m->pending[c + 1], &m->pending[c]))
            c++;
        if (!pending_before(&m->pending[c], &last))
            break;
        m->pending[i] = m->pending[c];
        i = c;
    }
    if (n)
        m->pending[i] = last;
}

void metrics_arrival(metrics *m, const serve_req *r)
{
    if (m->first_arrival_ns < 0)
        m->first_arrival_ns = r->arrival_ns;
    if (r->arrival_ns > m->last_arrival_ns)
        m->last_arrival_ns = r->arrival_ns;
    /* Requests at least cooldown_ns before this arrival are in the window. */
    while (m->n_pending && m->pending[0].arrival_ns <= m->last_arrival_ns - m->cooldown_ns) {
        req_record rec = m->pending[0];
        pending_pop(m);
        fold(m, &rec);
    }
}

/* The stats of group `id` of a kind; ids are small non-negative integers
 * (the trace formats bound them), so groups are an array by id. */
static group_stats *group_of(metrics *m, metrics_group_kind g, int32_t id)
{
    SIM_ASSERT(id >= 0);
    if (id >= m->n_groups[g]) {
        int32_t n = m->n_groups[g] ? m->n_groups[g] : 4;
        while (n <= id)
            n *= 2;
        m->groups[g] = sim_xrealloc(m->groups[g], (size_t)n * sizeof *m->groups[g]);
        memset(m->groups[g] + m->n_groups[g], 0,
               (size_t)(n - m->n_groups[g]) * sizeof *m->groups[g]);
        m->n_groups[g] = n;
    }
    group_stats *x = &m->groups[g][id];
    if (!x->used) {
        x->used = true;
        sim_hist_init(&x->ttft);
        sim_hist_init(&x->tpot);
        sim_hist_init(&x->e2e);
    }
    return x;
}

void metrics_finish(metrics *m, const serve_req *r, sim_time_ns now,
                    sim_time_ns client_delay_ns)
{
    SIM_ASSERT_AT(now, r->generated_tokens == r->output_tokens && r->first_token_ns >= 0);
    SIM_ASSERT_AT(now, client_delay_ns >= 0);
    /* At the client. */
    sim_time_ns first_token_ns = r->first_token_ns + client_delay_ns;
    now += client_delay_ns;
    req_record rec = {
        .id = r->id,
        .instance = r->instance,
        .input_tokens = r->input_tokens,
        .output_tokens = r->output_tokens,
        .preemptions = r->preemptions,
        .priority = r->priority,
        .slo_class = r->slo_class,
        .tenant = r->tenant,
        .pool = r->pool,
        .moves = r->moves,
        .cached_tokens = r->cached_tokens,
        .ttft_slo_ns = r->ttft_deadline_ns - r->arrival_ns,
        .arrival_ns = r->arrival_ns,
        .first_token_ns = first_token_ns,
        .finish_ns = now,
        .ttft_ns = first_token_ns - r->arrival_ns,
        .queue_ns = r->first_scheduled_ns - r->arrival_ns,
        .ttft_load_ns = req_of(r)->load_stall_ns,
        .e2e_ns = now - r->arrival_ns,
        .tbt_max_ns = r->tbt_max_ns,
        .energy_j = r->energy_j,
        .session_id = r->session_id,
        .turn = r->turn,
        .session_last = r->session_last,
        .session_root = r->session_root,
        .adapter = req_of(r)->lora_adapter,
        .spec_steps = req_of(r)->spec_steps,
    };
    rec.ttft_compute_ns = rec.ttft_ns - rec.queue_ns - rec.ttft_load_ns;
    SIM_ASSERT_AT(now, rec.ttft_load_ns >= 0 && rec.ttft_compute_ns >= 0);
    sess_metrics_finish(&m->sessions, r, first_token_ns, now);
    /* Mean gap and TPOT coincide per request: (last token - first token) /
     * (tokens - 1). Both are kept since papers name them differently. */
    if (r->output_tokens > 1) {
        rec.tbt_mean_ns = (double)(now - first_token_ns) / (r->output_tokens - 1);
        rec.tpot_ns = rec.tbt_mean_ns;
    }
    m->completed++;
    m->output_tokens += (uint64_t)r->output_tokens;
    m->preemptions += (uint64_t)r->preemptions;
    /* In the window, still to be settled by later arrivals, or out. */
    if (rec.arrival_ns >= m->warmup_ns) {
        if (m->cooldown_ns > 0 && rec.arrival_ns > m->last_arrival_ns - m->cooldown_ns)
            pending_push(m, &rec);
        else
            fold(m, &rec);
    }
    if (now > m->last_finish_ns)
        m->last_finish_ns = now;
    if (m->on_record && !m->sink_failed && m->on_record(m->record_ctx, &rec))
        m->sink_failed = true;
}

/* A measured request into the statistics. A request of one output token
 * has no TPOT: it is held to its TTFT target alone, and left out of the
 * TPOT statistics and the TPOT attainment. */
static void fold(metrics *m, const req_record *rec)
{
    bool has_tpot = rec->output_tokens > 1;
    if (has_tpot)
        sim_hist_add(&m->tpot, (int64_t)rec->tpot_ns);
    sim_hist_add(&m->ttft, rec->ttft_ns);
    sim_hist_add(&m->e2e, rec->e2e_ns);
    sim_hist_add(&m->queue, rec->queue_ns);
    sim_hist_add(&m->ttft_load, rec->ttft_load_ns);
    sim_hist_add(&m->ttft_compute, rec->ttft_compute_ns);
    /* A request is held to its own TTFT target when it has one. */
    int ttft_ok = rec->ttft_ns <= rec->ttft_slo_ns;
    int tpot_ok = has_tpot && rec->tpot_ns <= (double)m->slo_tpot_ns;
    int both_ok = ttft_ok && (tpot_ok || !has_tpot);
    m->met_ttft += ttft_ok;
    m->met_tpot += tpot_ok;
    m->with_tpot += has_tpot;
    m->met_both += both_ok;
    m->measured++;
    m->measured_tokens += (uint64_t)rec->output_tokens;
    const int32_t ids[METRICS_GROUP_KINDS] = {rec->slo_class, rec->tenant, rec->adapter};
    for (int g = 0; g < METRICS_GROUP_KINDS; g++) {
        if (ids[g] < 0)   /* no adapter */
            continue;
        group_stats *x = group_of(m, (metrics_group_kind)g, ids[g]);
        x->completed++;
        x->output_tokens += (uint64_t)rec->output_tokens;
        x->met_ttft += ttft_ok;
        x->met_tpot += tpot_ok;
        x->with_tpot += has_tpot;
        x->met_both += both_ok;
        x->good_tokens += both_ok ? (uint64_t)rec->output_tokens : 0;
        sim_hist_add(&x->ttft, rec->ttft_ns);
        if (has_tpot)
            sim_hist_add(&x->tpot, (int64_t)rec->tpot_ns);
        sim_hist_add(&x->e2e, rec->e2e_ns);
    }
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
    s->measured = m->measured;
    s->duration_s = m->completed ? (m->last_finish_ns - m->first_arrival_ns) / 1e9 : 0;
    bool window = m->warmup_ns > 0 || m->cooldown_ns > 0;
    sim_time_ns end = m->last_arrival_ns - m->cooldown_ns;
    s->window_start_s = window ? m->warmup_ns / 1e9 : m->first_arrival_ns / 1e9;
    s->window_end_s = window ? end / 1e9 : m->last_arrival_ns / 1e9;
    if (!window && s->duration_s > 0) {
        s->throughput_req_s = m->completed / s->duration_s;
        s->throughput_tok_s = m->output_tokens / s->duration_s;
    } else if (window && end > m->warmup_ns) {
        /* The requests that arrived in the window, over its length. */
        s->throughput_req_s = m->measured / ((end - m->warmup_ns) / 1e9);
        s->throughput_tok_s = m->measured_tokens / ((end - m->warmup_ns) / 1e9);
    }
    s->ttft_s = pctl_of(&m->ttft);
    s->tbt_s = pctl_of(&m->tbt);
    s->tpot_s = pctl_of(&m->tpot);
    s->e2e_s = pctl_of(&m->e2e);
    s->queue_s = pctl_of(&m->queue);
    s->ttft_load_s = pctl_of(&m->ttft_load);
    s->ttft_compute_s = pctl_of(&m->ttft_compute);
    sess_metrics_summarize(&m->sessions, &s->sessions);
    s->slo_ttft_s = m->slo_ttft_ns / 1e9;
    s->slo_tpot_s = m->slo_tpot_ns / 1e9;
    if (m->measured) {
        s->slo_attain_ttft = (double)m->met_ttft / m->measured;
        s->slo_attain_tpot = m->with_tpot ? (double)m->met_tpot / m->with_tpot : 1;
        s->slo_attain = (double)m->met_both / m->measured;
    }
}

int32_t metrics_group_count(const metrics *m, metrics_group_kind kind)
{
    int32_t n = 0;
    for (int32_t i = 0; i < m->n_groups[kind]; i++)
        n += m->groups[kind][i].used;
    return n;
}

void metrics_group_summary(const metrics *m, metrics_group_kind kind, int32_t k,
                           group_summary *out)
{
    int32_t id = 0;
    for (int32_t seen = -1; id < m->n_groups[kind]; id++)
        if (m->groups[kind][id].used && ++seen == k)
            break;
    SIM_ASSERT(id < m->n_groups[kind]);
    const group_stats *x = &m->groups[kind][id];
    *out = (group_summary){
        .id = id,
        .completed = x->completed,
        .output_tokens = x->output_tokens,
        .good_tokens = x->good_tokens,
        .slo_attain_ttft = (double)x->met_ttft / (double)x->completed,
        .slo_attain_tpot = x->with_tpot ? (double)x->met_tpot / (double)x->with_tpot : 1,
        .slo_attain = (double)x->met_both / (double)x->completed,
        .ttft_s = pctl_of(&x->ttft),
        .tpot_s = pctl_of(&x->tpot),
        .e2e_s = pctl_of(&x->e2e),
    };
}
