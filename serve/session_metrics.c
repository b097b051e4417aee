/* Session metrics (see session_metrics.h). */
#include "serve/session_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint32_t home(uint64_t s, uint32_t cap)
{
    s ^= s >> 33;
    s *= 0xff51afd7ed558ccdULL;
    s ^= s >> 33;
    return (uint32_t)s & (cap - 1);
}

static sess_entry *lookup(sess_metrics *m, uint64_t session)
{
    uint32_t i = home(session, m->cap);
    while (m->slots[i].session && m->slots[i].session != session)
        i = (i + 1) & (m->cap - 1);
    return &m->slots[i];
}

static void grow(sess_metrics *m)
{
    sess_entry *old = m->slots;
    uint32_t old_cap = m->cap;
    m->cap *= 2;
    m->slots = sim_xcalloc(m->cap, sizeof *m->slots);
    for (uint32_t i = 0; i < old_cap; i++)
        if (old[i].session)
            *lookup(m, old[i].session) = old[i];
    free(old);
}

/* Removes slot e, shifting later entries of its probe run back. */
static void erase(sess_metrics *m, sess_entry *e)
{
    uint32_t i = (uint32_t)(e - m->slots), mask = m->cap - 1;
    m->slots[i].session = 0;
    m->used--;
    for (uint32_t j = (i + 1) & mask; m->slots[j].session; j = (j + 1) & mask) {
        uint32_t h = home(m->slots[j].session, m->cap);
        /* j's entry may move to the hole at i if i lies on its probe path
         * from h to j (cyclically). */
        if (((j - h) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            m->slots[j].session = 0;
            i = j;
        }
    }
}

void sess_metrics_init(sess_metrics *m)
{
    memset(m, 0, sizeof *m);
    sim_hist_init(&m->session_ns);
    sim_hist_init(&m->resume_ns);
    sim_hist_init(&m->session_hit_ppm);
    m->cap = 64;
    m->slots = sim_xcalloc(m->cap, sizeof *m->slots);
}

void sess_metrics_fini(sess_metrics *m)
{
    sim_hist_fini(&m->session_ns);
    sim_hist_fini(&m->resume_ns);
    sim_hist_fini(&m->session_hit_ppm);
    free(m->slots);
    m->slots = NULL;
}

void sess_metrics_finish(sess_metrics *m, const serve_req *r, sim_time_ns first_token_ns,
                         sim_time_ns now)
{
    if (!r->session_id)
        return;
    m->turns++;
    double hit = r->input_tokens ? (double)r->cached_tokens / r->input_tokens : 0;
    if (r->turn > 0) {
        m->later_turns++;
        m->later_hit_sum += hit;
        sim_hist_add(&m->resume_ns, first_token_ns > r->arrival_ns
                                        ? first_token_ns - r->arrival_ns : 0);
    } else {
        m->first_hit_sum += hit;
    }
    sess_entry *e = lookup(m, r->session_id);
    if (!e->session) {
        if ((m->used + 1) * 2 > m->cap) {
            grow(m);
            e = lookup(m, r->session_id);
        }
        *e = (sess_entry){.session = r->session_id, .instance = r->instance};
        m->used++;
    } else if (e->instance != r->instance) {
        m->affinity_breaks++;
        e->instance = r->instance;
    }
    if (r->turn > 0 && e->last_seq_tokens > 0) {
        int64_t ctx = r->input_tokens < e->last_seq_tokens ? r->input_tokens : e->last_seq_tokens;
        if (ctx > r->cached_tokens)
            m->context_recomputed_tokens += (uint64_t)(ctx - r->cached_tokens);
    }
    e->last_seq_tokens = (int64_t)r->input_tokens + r->output_tokens;
    e->cached_tokens += r->cached_tokens;
    e->input_tokens += r->input_tokens;
    if (r->session_last) {
        m->sessions++;
        double sh = e->input_tokens ? (double)e->cached_tokens / e->input_tokens : 0;
        m->session_hit_sum += sh;
        sim_hist_add(&m->session_hit_ppm, llround(sh * 1e6));
        sim_hist_add(&m->session_ns, now > r->session_start_ns ? now - r->session_start_ns : 0);
        erase(m, e);
    }
}

void sess_metrics_summarize(const sess_metrics *m, sess_summary *out)
{
    const double s = 1e-9;
    *out = (sess_summary){
        .session_turns = m->turns,
        .sessions_completed = m->sessions,
        .affinity_breaks = m->affinity_breaks,
        .turn_hit_ratio = m->later_turns ? m->later_hit_sum / m->later_turns : 0,
        .first_turn_hit_ratio = m->turns > m->later_turns
                                    ? m->first_hit_sum / (m->turns - m->later_turns) : 0,
        .session_hit_ratio = m->sessions ? m->session_hit_sum / m->sessions : 0,
        .pins = m->pins,
        .pin_reuses = m->pin_reuses,
        .pin_expiries = m->pin_expiries,
        .pinned_block_s = m->pinned_block_ns * s,
        .offloads = m->offloads,
        .offload_blocks = m->offload_blocks,
        .pinned_gib_s = m->pinned_byte_ns * 1e-9 / (1024.0 * 1024.0 * 1024.0),
        .context_recomputed_tokens = m->context_recomputed_tokens,
    };
    if (m->sessions) {
        out->session_s_mean = sim_hist_mean(&m->session_ns) * s;
        out->session_s_p50 = sim_hist_quantile(&m->session_ns, 0.5) * s;
        out->session_s_p90 = sim_hist_quantile(&m->session_ns, 0.9) * s;
        out->session_s_p99 = sim_hist_quantile(&m->session_ns, 0.99) * s;
        out->session_hit_p50 = sim_hist_quantile(&m->session_hit_ppm, 0.5) * 1e-6;
    }
    if (m->later_turns) {
        out->resume_s_mean = sim_hist_mean(&m->resume_ns) * s;
        out->resume_s_p50 = sim_hist_quantile(&m->resume_ns, 0.5) * s;
        out->resume_s_p90 = sim_hist_quantile(&m->resume_ns, 0.9) * s;
        out->resume_s_p99 = sim_hist_quantile(&m->resume_ns, 0.99) * s;
    }
}
