/* Session metrics (agents, chat: requests with a session id, traces/
 * prefix_gen.h kind "session"): per-session completion time (first turn's
 * arrival to the last turn's last token at the client), resume delay (a
 * later turn's arrival, the end of its tool or think gap, to its first
 * token at the client), per-turn and per-session prefix-cache hit ratio
 * (cached prompt tokens / prompt tokens), and affinity breaks (a turn
 * served by another instance than the session's previous turn, whatever
 * the routing policy). Every finished turn counts, outside the metrics
 * window too.
 *
 * Memory: O(sessions with a turn finished and the last one not yet), in an
 * open-addressing table (linear probing, deletion by backward shift). */
#ifndef SERVE_SESSION_METRICS_H
#define SERVE_SESSION_METRICS_H

#include "api/request.h"
#include "sim/hist.h"

typedef struct sess_entry {
    uint64_t session;   /* 0: empty */
    int32_t instance;
    int64_t cached_tokens, input_tokens;
    int64_t last_seq_tokens;   /* the previous turn's prompt and answer */
} sess_entry;

typedef struct sess_metrics {
    sim_hist session_ns, resume_ns;
    sim_hist session_hit_ppm;   /* per completed session: hit ratio x 1e6 */
    uint64_t turns, later_turns, sessions, affinity_breaks;
    double later_hit_sum, first_hit_sum, session_hit_sum;
    /* KV retention (serve/retain.h): pins made, ended by the session's next
     * turn, ended by their TTL; block x ns pinned */
    uint64_t pins, pin_reuses, pin_expiries;
    double pinned_block_ns;
    uint64_t offloads, offload_blocks;   /* turns offloaded, HBM blocks they dropped */
    double pinned_byte_ns;               /* KV bytes (all GPUs) x ns pinned */
    uint64_t context_recomputed_tokens;  /* later turns: previous context not cached */
    sess_entry *slots;
    uint32_t cap, used;
} sess_metrics;

/* The summary's part. */
typedef struct sess_summary {
    uint64_t session_turns;        /* finished turns of sessions */
    uint64_t sessions_completed;   /* sessions whose last turn finished */
    double session_s_mean, session_s_p50, session_s_p90, session_s_p99;
    double resume_s_mean, resume_s_p50, resume_s_p90, resume_s_p99;   /* turns >= 1 */
    double turn_hit_ratio;         /* mean over turns >= 1 */
    double first_turn_hit_ratio;   /* mean over first turns */
    double session_hit_ratio;      /* mean over completed sessions */
    uint64_t affinity_breaks;
    uint64_t pins, pin_reuses, pin_expiries;   /* KV retention */
    double pinned_block_s;         /* KV blocks x seconds pinned */
    double session_hit_p50;        /* median over completed sessions (0.1% resolution) */
    uint64_t offloads, offload_blocks;   /* KV retention "offload" */
    double pinned_gib_s;           /* GiB (all GPUs) x seconds pinned */
    /* tokens of a later turn's prompt that held the session's previous
     * context (its previous prompt and answer) yet were computed again,
     * not served from a cache: min(prompt, previous context) - cached */
    uint64_t context_recomputed_tokens;
} sess_summary;

void sess_metrics_init(sess_metrics *m);
void sess_metrics_fini(sess_metrics *m);
/* r finished; times at the client. Does nothing without a session. */
void sess_metrics_finish(sess_metrics *m, const serve_req *r, sim_time_ns first_token_ns,
                         sim_time_ns now);
void sess_metrics_summarize(const sess_metrics *m, sess_summary *out);

#endif
