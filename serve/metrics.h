/* Run metrics: per-request records (streamed out as requests finish, so
 * memory stays flat in the number of finished requests) and the run summary
 * (percentiles from constant-memory histograms, SLO attainment, energy). */
#ifndef SERVE_METRICS_H
#define SERVE_METRICS_H

#include "models/cost.h"
#include "api/request.h"
#include "serve/spec.h"
#include "sim/hist.h"
#include "serve/session_metrics.h"

/* One finished request. Times are simulated ns from the run's start. */
typedef struct req_record {
    uint64_t id;
    int32_t instance;
    int32_t input_tokens;
    int32_t output_tokens;
    int32_t preemptions;
    int32_t priority;
    int32_t slo_class;
    int32_t tenant;
    int32_t pool;            /* where it finished */
    int32_t moves;           /* times moved between instances */
    int32_t cached_tokens;   /* prompt tokens served from prefix caches */
    int64_t ttft_slo_ns;     /* its TTFT target (deadline - arrival) */
    int64_t arrival_ns;
    int64_t first_token_ns;
    int64_t finish_ns;
    int64_t ttft_ns;
    int64_t queue_ns;        /* arrival to first scheduled */
    int64_t e2e_ns;
    double tbt_mean_ns;      /* mean gap between consecutive output tokens */
    int64_t tbt_max_ns;
    double tpot_ns;          /* (e2e - ttft) / (output_tokens - 1) */
    double energy_j;
    uint64_t session_id;     /* 0: none (serve/session_metrics.h) */
    int32_t turn;            /* from 0 */
    int32_t session_last;    /* 1: the session's last turn */
    /* TTFT = queue_ns + ttft_load_ns + ttft_compute_ns exactly: the time
     * the iterations it was in waited for lower-tier KV loads before its
     * first token (and its KV's transfers, moved with it), and the rest (its prefill iterations, the waits between
     * them, the streaming delay). */
    int64_t ttft_load_ns;
    int64_t ttft_compute_ns;
    uint64_t session_root;   /* its session tree's root session (0: none) */
    int32_t adapter;         /* multi-LoRA: its adapter; -1: none */
    int32_t spec_steps;      /* speculative decoding: its verification steps */
} req_record;

typedef struct pctl {
    double mean, p50, p90, p99;
} pctl;

typedef struct run_summary {
    uint64_t seed;
    uint64_t arrived;
    uint64_t completed;
    uint64_t measured;         /* requests in the latency, SLO and throughput
                                * statistics: those arriving in the window */
    double window_start_s, window_end_s;   /* the window of arrival times the
                                * statistics cover (metrics_set_window) */
    uint64_t clamped;          /* lengths cut to the model's context */
    uint64_t preemptions;
    uint64_t recomputed_tokens;  /* KV tokens dropped by recompute preemption */
    double swap_out_bytes;     /* KV copied to host by swap preemption, all GPUs */
    double swap_in_bytes;      /* and back */
    double swap_time_s;        /* iteration time the copies added (per instance, summed) */
    uint64_t iterations;
    uint64_t events;
    uint64_t output_tokens;
    double duration_s;         /* first arrival to last completion */
    double throughput_req_s;
    double throughput_tok_s;   /* output tokens */
    pctl ttft_s, tbt_s, tpot_s, e2e_s, queue_s;   /* TBT over all token gaps */
    pctl ttft_load_s, ttft_compute_s;             /* TTFT's other parts (req_record) */
    double slo_ttft_s, slo_tpot_s;                 /* targets */
    double slo_attain_ttft, slo_attain_tpot, slo_attain;  /* fractions */
    double energy_j;           /* busy + idle, all GPUs */
    double energy_per_out_token_j;
    double energy_per_token_j;   /* per token processed (prompt and output) */
    double weight_bytes;       /* weights read from HBM, all GPUs */
    double kv_bytes;           /* KV read and written in HBM, all GPUs */
    double gpu_busy_fraction;
    /* GPU time held (every lifecycle state but stopped), of it running
     * iterations, and its price (lifecycle.price_per_gpu_hour per pool). */
    double gpu_held_s, gpu_busy_s, cost_usd;
    double kv_peak_fraction;   /* max over instances */
    double kv_mean_fraction;   /* time-weighted, mean over instances */
    /* Prefix caching (all instances): prompt tokens and blocks looked up at
     * admission and served from the cache (prefill tokens saved), cached
     * blocks evicted; instances that cache prefixes. */
    uint64_t prefix_caching;
    uint64_t kv_lookup_tokens, kv_hit_tokens, kv_lookup_blocks, kv_hit_blocks, kv_evictions;
    /* Lower KV tiers: prompt tokens loaded from them instead of computed,
     * bytes loaded and written through (all GPUs), iterations' waits. */
    uint64_t kv_tier_hit_tokens;
    double kv_tier_load_bytes, kv_tier_write_bytes, kv_load_stall_s;
    /* Router against an oracle (metrics.router_oracle, serve/route_oracle.h;
     * 0 when off): requests observed, prompt tokens cached on the instance
     * chosen and on the best candidate at routing time, each over the
     * prompt tokens, and router / oracle (0 when the oracle found none). */
    uint64_t router_oracle_requests, router_hit_tokens, oracle_hit_tokens;
    double router_hit_ratio, oracle_hit_ratio, router_oracle_ratio;
    double term_s[OP_KIND_COUNT];    /* simulated time per operator kind */
    /* Speculative decoding (serve/spec.h; zero when off), vLLM's names:
     * drafts are verification steps that drafted, acceptance rate is
     * accepted / draft tokens, mean acceptance length 1 + accepted / drafts,
     * position rates accepted-at-position-i / drafts; wasted tokens are
     * rejected drafts the target verified; time shares are of busy time. */
    uint64_t spec_drafts, spec_draft_tokens, spec_accepted_tokens, spec_wasted_tokens;
    double spec_acceptance_rate, spec_mean_acceptance_length;
    double spec_position_rate[SPEC_POS_METRICS];
    double spec_draft_time_s, spec_verify_time_s, spec_draft_share, spec_verify_share;
    uint64_t spec_lookahead_blocks;   /* lookahead blocks reserved, summed over steps */
    /* Multi-LoRA (serve/lora.h; zero when off): adapter loads into GPU
     * slots (of those, from storage), GPU slot evictions, waiting requests
     * left out of a plan by max_loras, batch adapters found in a GPU slot,
     * mean distinct adapters per batch, iteration time added by loads and
     * by the LoRA operators. */
    uint64_t lora_loads, lora_storage_loads, lora_evictions, lora_skipped;
    double lora_gpu_hit_ratio, lora_adapters_per_batch, lora_load_time_s, lora_op_time_s;
    /* Requests whose first iteration waited for their adapter's load
     * (cold), and the mean TTFT at the engine of cold and warm ones. */
    uint64_t lora_cold_requests;
    double lora_ttft_cold_s, lora_ttft_warm_s;
    /* Adapter loads served from the host cache / loads (the host tier's hit
     * ratio; lora_gpu_hit_ratio is the GPU tier's), and the most distinct
     * adapters one batch held. */
    double lora_host_hit_ratio;
    uint64_t lora_max_adapters_per_batch;
    /* Adapter selection (instance.lora.select, serve/polar.h): requests
     * whose adapter the bandit picked, its summed expected regret against
     * the best adapter for each request's context, and the share of picks
     * that were a best one. */
    uint64_t lora_polar_selections;
    double lora_polar_regret, lora_polar_optimal_ratio;
    uint64_t source_terms[COST_SRC_COUNT];  /* op terms by cost source */
    /* Expert parallelism (serve/ep.h; 0 without it): max over mean routed
     * tokens per EP GPU, mean over iterations and layer groups weighted by
     * their tokens, and the largest; the same for distinct experts with
     * work; all-to-all bytes of
     * the busiest GPU (dispatch and combine, every MoE layer); rebalances
     * and the expert bytes they copied (busiest GPU). */
    double ep_imbalance, ep_imbalance_max, ep_distinct_imbalance;
    double ep_a2a_bytes;
    uint64_t ep_rebalances;
    double ep_moved_bytes;
    /* Expert offloading (serve/offload.h; 0 without it): activated experts
     * found in / missing from the GPU cache, missed experts loaded in low
     * precision, and bytes loaded per GPU in full and low precision. */
    uint64_t offload_hits, offload_misses, offload_low_loads;
    double offload_bytes_high, offload_bytes_low;
    sess_summary sessions;     /* sessions (serve/session_metrics.h); 0 without */
    /* Operator-level preemption (api/batch.h, cut; 0 without it): iterations
     * cut at a layer or an operator boundary, and the seconds the cuts took
     * off those iterations' ends (blocking time removed for the requests
     * that arrived). */
    uint64_t cuts_layer, cuts_op;
    double cut_saved_s;
    /* Streamed prompts (serve/stream.h; 0 without): how many finished, and
     * their TTFT from the first chunk (arrival) and from the last. */
    /* Head-of-line blocking: requests that arrived at a busy instance, and
     * their mean wait for its next plan (an iteration end or a cut). */
    uint64_t hol_arrivals;
    double hol_block_s_mean;
    uint64_t stream_requests;
    pctl stream_ttft_first_s, stream_ttft_last_s;
    uint64_t stream_invalidated_tokens;   /* computed KV dropped by context updates */
    uint64_t preemptions_swap;   /* of `preemptions`, those that swapped KV to host memory */
    double wall_s;
    double peak_rss_mb;
} run_summary;

/* Receives every finished request's record; returns 0, or -1 when it
 * failed (a results file that cannot be written): the run then stops. */
typedef int (*metrics_record_fn)(void *ctx, const req_record *rec);

/* Requests grouped by an attribute: per SLO class, per tenant and (multi-LoRA)
 * per adapter. */
typedef enum metrics_group_kind {
    METRICS_BY_CLASS,
    METRICS_BY_TENANT,
    METRICS_BY_ADAPTER,   /* only the requests that had an adapter */
    METRICS_GROUP_KINDS
} metrics_group_kind;

typedef struct group_stats {
    uint64_t completed, output_tokens;
    uint64_t met_ttft, met_tpot, met_both;
    uint64_t with_tpot;          /* requests of more than one output token */
    uint64_t good_tokens;        /* output tokens of requests meeting both targets */
    sim_hist ttft, tpot, e2e;    /* allocated when the group first shows up */
    bool used;
} group_stats;

/* One group's summary, for the results file. */
typedef struct group_summary {
    int32_t id;                  /* the class or tenant */
    uint64_t completed;
    uint64_t output_tokens;
    uint64_t good_tokens;        /* service goodput: tokens of requests meeting both */
    double slo_attain_ttft, slo_attain_tpot, slo_attain;
    pctl ttft_s, tpot_s, e2e_s;
} group_summary;

typedef struct metrics {
    sim_hist ttft, tbt, tpot, e2e, queue;
    sim_hist ttft_load, ttft_compute;
    sim_time_ns slo_ttft_ns, slo_tpot_ns;
    uint64_t met_ttft, met_tpot, met_both;
    uint64_t with_tpot;            /* measured requests that have a TPOT */
    uint64_t completed, output_tokens, preemptions;
    uint64_t measured, measured_tokens;   /* in the window */
    /* The window (metrics_set_window): requests arriving before warmup_ns
     * or in the last cooldown_ns of arrivals are left out of the
     * statistics. Finished requests whose arrival is still within
     * cooldown_ns of the latest arrival wait in `pending` (a min-heap by
     * arrival) until a later arrival settles it. */
    sim_time_ns warmup_ns, cooldown_ns, last_arrival_ns;
    req_record *pending;
    size_t n_pending, cap_pending;
    sim_time_ns first_arrival_ns, last_finish_ns;
    metrics_record_fn on_record;   /* may be NULL */
    void *record_ctx;
    bool sink_failed;              /* on_record failed: the run must stop */
    group_stats *groups[METRICS_GROUP_KINDS];   /* indexed by the attribute */
    int32_t n_groups[METRICS_GROUP_KINDS];      /* ids 0 .. n-1 may be in use */
    sess_metrics sessions;
} metrics;

void metrics_init(metrics *m, sim_time_ns slo_ttft_ns, sim_time_ns slo_tpot_ns,
                  metrics_record_fn on_record, void *record_ctx);
void metrics_fini(metrics *m);
/* The summary's window: the latency, SLO-attainment and throughput
 * statistics (and the per-class and per-tenant ones) count only requests
 * arriving at or after warmup_ns and at or before the last arrival minus
 * cooldown_ns; every request is still recorded. 0 and 0 (the default)
 * count every request, as before. TBT (every token gap) is not windowed:
 * gaps are counted as they happen, before a request's window is known.
 * Memory: the finished requests of the last cooldown_ns of arrivals. */
void metrics_set_window(metrics *m, sim_time_ns warmup_ns, sim_time_ns cooldown_ns);
void metrics_arrival(metrics *m, const serve_req *r);
/* Called for output tokens after the first, with their gap: `count` tokens
 * that share one gap at once (every token of one iteration from a request
 * that also emitted in the previous one has the same gap). */
static inline void metrics_token_gaps(metrics *m, sim_time_ns gap_ns, uint64_t count)
{
    sim_hist_add_n(&m->tbt, gap_ns, count);
}
/* Builds the record, folds it into the summary and passes it on. Tokens
 * reach the client `client_delay_ns` after the iteration that made them
 * (the engine's streaming delay): TTFT, the first token's and the finish
 * time and end-to-end latency are the client's, as benchmark clients
 * measure them; the gaps between tokens are unchanged. */
void metrics_finish(metrics *m, const serve_req *r, sim_time_ns now,
                    sim_time_ns client_delay_ns);
/* Fills the latency and SLO parts of the summary. */
void metrics_summarize(const metrics *m, run_summary *s);
/* The groups of one kind that had requests, in id order: how many, and the
 * k-th one's summary. */
int32_t metrics_group_count(const metrics *m, metrics_group_kind kind);
void metrics_group_summary(const metrics *m, metrics_group_kind kind, int32_t k,
                           group_summary *out);

#endif
