/* One serving instance: a model replica on the GPUs of its pool's parallel
 * layout doing iteration-level continuous batching (vLLM-style) with a paged
 * KV cache.
 *
 * Life of an iteration: step asks the batch policy for a plan, applies it
 * (preemptions, admissions, KV growth), costs the batch with the cost model
 * and schedules the iteration's end; at the end the tokens are credited
 * (prefill progress, sampled tokens, finished requests) and the next
 * iteration starts at once. With nothing to do the instance goes idle and a
 * new request wakes it. Swap copies travel over the instance's PCIe links
 * (serve/net.h): they delay the iteration's compute (blocking) or its end
 * (overlapped).
 *
 * Requests come and go: instance_enqueue (an arrival), instance_detach and
 * instance_attach (a move to another instance, with or without its KV), and
 * the hooks tell the cluster when a request finished, when a prefill-only
 * instance has produced a first token, and when a draining instance has
 * emptied. */
#ifndef SERVE_INSTANCE_H
#define SERVE_INSTANCE_H

#include "serve/events.h"
#include "serve/kv.h"
#include "serve/metrics.h"
#include "serve/net.h"
#include "serve/setup.h"
#include "sim/engine.h"

typedef struct instance instance;

/* Called once per iteration, after it is costed and before it runs. */
typedef struct iter_info {
    int32_t instance;
    sim_time_ns start_ns;
    const batch_item *items;
    int32_t n_items;
    const cost_result *cost;   /* latency includes swap copies that show, as
                                * costed at the start (no later contention) */
    const kv_cache *kv;        /* after this iteration's allocations */
    const sim_rb_tree *waiting;   /* the queue left waiting, in order */
    int32_t n_waiting;
} iter_info;
typedef void (*iter_observer_fn)(void *ctx, const iter_info *it);

/* What the cluster hears from an instance. */
typedef struct instance_hooks {
    void *ctx;
    /* r emitted its last token; the cluster owns it from now on. */
    void (*finished)(void *ctx, instance *inst, serve_req *r);
    /* PREFILL pools: r emitted its first token and has more to generate;
     * it stays running until the cluster detaches it. */
    void (*prefill_done)(void *ctx, instance *inst, serve_req *r);
    /* A detach asked of a request in the iteration then running is done. */
    void (*detached)(void *ctx, instance *inst, serve_req *r);
    /* A DRAINING instance has no request left. */
    void (*emptied)(void *ctx, instance *inst);
    iter_observer_fn observer;   /* may be NULL */
    void *observer_ctx;
} instance_hooks;

typedef struct instance_setup {
    int32_t index;
    int32_t pool;
    const pool_setup *ps;
    cost_model *cost;             /* the pool's, shared by its instances (borrowed) */
    cost_model *draft_cost;       /* the pool's drafter's (serve/spec.h), or NULL */
    uint64_t order_seed;
    metrics *metrics;
    inst_view *view;              /* kept current for policies; must not move */
    net *net;
    net_link pcie_d2h, pcie_h2d;  /* its host links (swap copies) */
    instance_hooks hooks;
    inst_state state;             /* its state at creation */
    /* semi-PD (serve/disagg.h): a worker sharing its GPUs, weights and KV
     * cache with another instance. shared_kv: that instance's cache
     * (borrowed) instead of one of its own; gpu_time_scale: its operators'
     * time is multiplied by this (a share of the SMs); energy_scale: its
     * iterations' energy likewise; no_idle_power: the partner draws the
     * GPUs' idle power. Zero values: a plain instance. */
    kv_cache *shared_kv;
    double gpu_time_scale, energy_scale;
    bool no_idle_power;
    /* Contention with the partner: while both run and their shares sum
     * above 1, this worker's operators get sm_share / sum of the GPU (a
     * compute-bound prefill worker's SMs, a memory-bound decode worker's
     * HBM bandwidth), instead of gpu_time_scale. 0: none. */
    double sm_share;
} instance_setup;

instance *instance_create(sim_engine *eng, const instance_setup *setup, sim_err *err);
void instance_destroy(instance *inst);   /* NULL is a no-op */

int32_t instance_index(const instance *inst);
inst_state instance_state(const instance *inst);

/* Queues an arriving request (REQ_WAITING); wakes the instance if idle. */
void instance_enqueue(instance *inst, serve_req *r);

/* Takes r out of the instance (waiting or running) and marks it REQ_MOVING;
 * its KV stays allocated here (the caller releases or transfers it). If r
 * is part of the iteration now running, that happens when it ends; either
 * way hooks.detached reports it. */
void instance_detach(instance *inst, serve_req *r);
/* Gives back the KV blocks of a request detached from this instance:
 * holder describes them (its kv_blocks, its kv_req's table). */
void instance_release_kv(instance *inst, serve_req *holder, kv_req *k);
/* Reserves on this instance the blocks a moving request needs for its
 * computed tokens and one more; false (nothing reserved) without room. */
bool instance_reserve(instance *inst, serve_req *r);
/* Grows holder (a stand-in request with no computed tokens, and its kv_req
 * k) to `blocks` blocks on this instance: a reservation for a request on
 * its way here (hand-offs, live migration). false, nothing reserved, when
 * the blocks added do not fit. Give them back with instance_release_kv. */
bool instance_reserve_blocks(instance *inst, serve_req *holder, kv_req *k, int64_t blocks);
/* semi-PD: b shares a's KV cache (and GPUs); each wakes the other when it
 * may have freed blocks the other waits for. */
void instance_set_partner(instance *a, instance *b);
kv_cache *instance_kv_mut(instance *inst);
/* semi-PD: a new SM share (instance_setup's three fields), from the next
 * iteration on. */
void instance_set_sm(instance *inst, double gpu_time_scale, double energy_scale,
                     double sm_share);
/* Puts a moved request that is decoding, with the KV for its next token
 * reserved, straight into the running set (a live migration's commit:
 * Llumnix resumes it there); false, doing nothing, when the running set is
 * full (max_seqs) or it does not qualify. */
bool instance_attach_running(instance *inst, serve_req *r);
/* Puts a moved request in the waiting queue, with the KV reserved for it
 * (and, in identity mode, offers its full blocks to the cache). */
void instance_attach(instance *inst, serve_req *r);

/* Event handlers (ctx unused; the event's data is the instance). */
void instance_on_iter_end(sim_engine *eng, void *ctx, const sim_event *ev);
void instance_on_wake(sim_engine *eng, void *ctx, const sim_event *ev);
/* A session KV pin may have run out (serve/retain.h). */
void instance_on_pin_expiry(sim_engine *eng, void *ctx, const sim_event *ev);
/* Something changed for one of its requests (a streamed prompt's chunk
 * arrived): an idle instance with work plans again. */
void instance_notify(instance *inst);
/* A streamed prompt's context was replaced past its first `keep` tokens
 * (serve/stream.h): r keeps the KV of at most `keep` computed tokens; if r
 * is in the iteration in flight, its tokens there are dropped when it ends.
 * Wakes the instance. */
void instance_rewind(instance *inst, serve_req *r, int32_t keep);

/* Starts the instance's clocks (energy, time per state) at `now`. Static
 * instances open at the run's first arrival; started ones at creation. */
void instance_open(instance *inst, sim_time_ns now);
/* Moves the instance to a lifecycle state (see api/cluster.h). */
void instance_set_state(instance *inst, inst_state s, sim_time_ns now);
/* Accrues energy and state time up to `end`; call once, at the end. */
void instance_close(instance *inst, sim_time_ns end);

typedef struct instance_stats {
    uint64_t iterations;
    uint64_t tokens;                 /* computed: prompt, recomputed and decode */
    sim_time_ns busy_ns;
    double energy_j;
    double term_ns[OP_KIND_COUNT];
    uint64_t source_terms[COST_SRC_COUNT];
    double weight_bytes, kv_bytes;   /* moved to or from HBM, per GPU */
    uint64_t preemptions;
    uint64_t recomputed_tokens;      /* KV dropped by recompute preemption */
    double swap_out_bytes, swap_in_bytes;   /* per GPU */
    sim_time_ns swap_ns;             /* iteration time added by swapping */
    double kv_load_bytes, kv_write_bytes;   /* lower KV tiers, all GPUs */
    sim_time_ns kv_load_ns;          /* iterations' waits for tier loads */
    sim_time_ns state_ns[INST_STATE_COUNT];   /* time in each state */
    uint64_t completed;              /* requests that finished here */
    uint64_t moved_in;               /* requests moved here from elsewhere */
    spec_stats spec;                 /* speculative decoding (zero when off) */
    lora_stats lora;                 /* multi-LoRA (zero when off) */
    /* Operator-level preemption (batch policies with a cut hook): iterations
     * cut at a layer or an operator boundary, and the time the cuts took
     * off the iterations' ends (the blocking time they removed). */
    uint64_t cuts_layer, cuts_op;
    sim_time_ns cut_saved_ns;
    /* Head-of-line blocking: requests that joined the queue while an
     * iteration ran, and their waits from then to the next plan (the
     * earliest any scheduler could start them without cutting). */
    uint64_t hol_arrivals;
    sim_time_ns hol_block_ns;
    uint64_t stream_invalidated_tokens;   /* computed KV dropped by context updates */
    uint64_t preemptions_swap;       /* of preemptions, those that swapped (the rest recompute) */
    int32_t n_waiting, n_running;
} instance_stats;

void instance_get_stats(const instance *inst, instance_stats *out);
const kv_cache *instance_kv(const instance *inst);
/* Its multi-LoRA runtime, or NULL when off. */
const struct lora *instance_lora(const instance *inst);
/* Power of the instance's GPUs with no work, from its cost model. */
double instance_idle_power_w(const instance *inst);
/* Its waiting queue (front first) and running set (admission order). */
const sim_rb_tree *instance_waiting(const instance *inst);
const serve_req *const *instance_running(const instance *inst, int32_t *n);

/* Expert parallelism's statistics (serve/ep.h), or NULL without it. */
struct ep_stats;
const struct ep_stats *instance_ep_stats(const instance *inst);
/* Expert offloading's statistics (serve/offload.h), or NULL without it. */
struct offload_stats;
const struct offload_stats *instance_offload_stats(const instance *inst);

#endif
