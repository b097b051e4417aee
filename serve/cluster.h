/* A simulated serving cluster: the engine, pools of instances, the links
 * between them (serve/net.h), routing in two stages (a pool, then one of its
 * instances), an optional cluster controller, a workload source, and the
 * run's metrics. cluster_create validates everything (policies, cost models
 * and workload read their own config objects here), cluster_run simulates
 * until every request has finished, cluster_summarize reports.
 *
 * The cluster owns the requests and moves them: between pools when a
 * prefill-only pool hands a request to a decode pool, and between any two
 * instances when a controller asks. Pools grow and shrink through the
 * instance lifecycle (provisioning, loading weights over the links,
 * warming, active, draining, stopped). */
#ifndef SERVE_CLUSTER_H
#define SERVE_CLUSTER_H

#include "serve/instance.h"
#include "serve/metrics.h"
#include "serve/setup.h"

typedef struct cluster cluster;

/* Random stream ids: fixed per component so that adding one never changes
 * another's numbers. */
enum { STREAM_ARRIVALS = 1, STREAM_LENGTHS = 2, STREAM_IDENTITY = 3,
       STREAM_LIFECYCLE = 4,   /* provisioning jitter, drawn only when asked for */
       STREAM_ORDER_BASE = 1000 /* + instance index */ };

/* One instance in a time-series sample. */
typedef struct ts_instance {
    int32_t waiting;           /* requests queued */
    int32_t running;           /* requests in the running set */
    int32_t active;            /* 1 if it has requests (queued or running) */
    double kv_used_fraction;   /* KV blocks in use / blocks */
    double kv_cached_fraction; /* free blocks holding a cached prefix / blocks */
    double power_w;            /* all its GPUs: the current iteration's mean
                                * power, or idle power between iterations */
    int32_t pool;
    inst_state state;
} ts_instance;

/* The state of the cluster at one instant, every timeseries_interval_ns of
 * simulated time from 0 until the last request finishes. */
typedef struct ts_sample {
    sim_time_ns time_ns;
    sim_time_ns interval_ns;
    int32_t n_instances;
    int32_t active_instances;  /* instances with requests */
    const ts_instance *inst;   /* n_instances entries, valid during the call */
} ts_sample;
/* Returns 0, or -1 when it failed (the run then stops). */
typedef int (*ts_sample_fn)(void *ctx, const ts_sample *s);

typedef struct cluster_hooks {
    metrics_record_fn on_record;   /* finished requests; may be NULL */
    void *record_ctx;
    iter_observer_fn on_iteration; /* every iteration; may be NULL */
    void *iteration_ctx;
    ts_sample_fn on_sample;        /* time series; may be NULL */
    void *sample_ctx;
} cluster_hooks;

/* cs is borrowed and must outlive the cluster; hooks may be NULL. */
cluster *cluster_create(const cluster_setup *cs, const cluster_hooks *hooks, sim_err *err);
void cluster_destroy(cluster *c);   /* NULL is a no-op */
/* Runs to completion. Fails on a workload error mid-run, or when a hook
 * that receives records or samples fails (the message then says so; the
 * hook's owner knows why). */
int cluster_run(cluster *c, sim_err *err);
void cluster_summarize(const cluster *c, run_summary *out);

/* Per pool and per instance, after the run. */
typedef struct pool_summary {
    char name[32];
    int32_t role;              /* pool_role */
    int32_t gpus_per_instance;
    int32_t instances;         /* every instance it had */
    uint64_t completed;        /* requests that finished in it */
    uint64_t iterations;
    uint64_t tokens;           /* computed */
    uint64_t preemptions;
    uint64_t moved_in, moved_out;
    double busy_fraction;      /* iteration time over its instances' active time */
    double energy_j;
    double gpu_s[INST_STATE_COUNT];   /* GPU-seconds in each lifecycle state (0 for
                                       * STOPPED: a stopped instance is released) */
    double kv_peak_fraction;   /* max over its instances */
    double kv_hit_fraction;    /* prompt tokens served from prefix caches */
    /* Cost: GPU-seconds running iterations (within gpu_s ACTIVE + DRAINING;
     * the rest of those is idle), every held GPU-second (gpu_s summed),
     * and that at lifecycle.price_per_gpu_hour. */
    double busy_gpu_s;
    double held_gpu_s;
    double cost_usd;
} pool_summary;

typedef struct instance_summary {
    int32_t pool;
    int32_t gpus;
    uint64_t completed;
    uint64_t iterations;
    uint64_t tokens;
    uint64_t preemptions;
    uint64_t moved_in, moved_out;
    double busy_s;
    double energy_j;
    double state_s[INST_STATE_COUNT];
    double kv_peak_fraction;
    double kv_mean_fraction;
    uint64_t kv_hit_tokens, kv_lookup_tokens, kv_evictions;
} instance_summary;

/* Per SLO class and per tenant (metrics_group_kind): the groups that had
 * requests, in id order. */
int32_t cluster_n_groups(const cluster *c, metrics_group_kind kind);
void cluster_group_summary(const cluster *c, metrics_group_kind kind, int32_t k,
                           group_summary *out);

int32_t cluster_n_pools(const cluster *c);
int32_t cluster_n_instances(const cluster *c);
void cluster_pool_summary(const cluster *c, int32_t pool, pool_summary *out);
void cluster_instance_summary(const cluster *c, int32_t i, instance_summary *out);

/* "roofline" or "table+roofline": which cost sources produced the terms. */
void cluster_cost_sources(const run_summary *s, char *buf, size_t size);
/* What the workload skipped, dropped or cut besides clamping ("3 malformed
 * rows skipped, ..."); "" when nothing. */
void cluster_workload_note(const cluster *c, char *buf, size_t size);

/* ---- Acting on the cluster (controllers, tests) --------------------------- */

/* Moves r (waiting or running, not already moving) to instance `to` (see
 * move_mode in api/control.h). Returns false, doing nothing, when the move
 * cannot start: r is finished or moving, `to` is r's own instance or not
 * active. A move WITH_KV whose destination cannot reserve the blocks when
 * it starts is aborted and r stays where it was (counted). */
bool cluster_move(cluster *c, serve_req *r, int32_t to, move_mode mode);
/* Grows pool by delta instances (a draining instance goes back to work
 * first, then stopped ones start again in their slots, then new ones: cold
 * starts through the lifecycle) or shrinks it (its newest active instances drain: they take no arrivals,
 * their waiting requests go to the pool's other instances, and they stop
 * when their running requests finish). Stays within the pool's bounds;
 * returns the change made. */
int32_t cluster_scale(cluster *c, int32_t pool, int32_t delta);

/* Counters of the moves and scale actions, for tests and results. */
typedef struct cluster_counts {
    uint64_t moves_started, moves_done, moves_aborted, move_bytes;
    uint64_t handoffs;          /* prefill-pool to decode-pool moves */
    uint64_t control_ticks, actions_applied, actions_skipped;
    uint64_t scale_ups, scale_downs;
    uint64_t scale_ticks;       /* autoscaler ticks (api/scale.h) */
} cluster_counts;
void cluster_get_counts(const cluster *c, cluster_counts *out);

#endif
