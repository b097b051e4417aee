/* A simulated serving cluster: the engine, N instances of one model at one
 * TP degree, a routing policy in front of them, a workload source, and the
 * run's metrics. cluster_create validates everything (policies, cost model
 * and workload read their own config objects here), cluster_run simulates
 * until every request has finished, cluster_summarize reports. */
#ifndef SERVE_CLUSTER_H
#define SERVE_CLUSTER_H

#include "serve/config.h"
#include "serve/instance.h"
#include "serve/metrics.h"

typedef struct cluster cluster;

/* Random stream ids: fixed per component so that adding one never changes
 * another's numbers. */
enum { STREAM_ARRIVALS = 1, STREAM_LENGTHS = 2,
       STREAM_ORDER_BASE = 1000 /* + instance index */ };

typedef struct cluster_hooks {
    metrics_record_fn on_record;   /* finished requests; may be NULL */
    void *record_ctx;
    iter_observer_fn on_iteration; /* every iteration; may be NULL */
    void *iteration_ctx;
} cluster_hooks;

/* cfg is borrowed and must outlive the cluster; hooks may be NULL. */
cluster *cluster_create(const run_config *cfg, const cluster_hooks *hooks, sim_err *err);
void cluster_destroy(cluster *c);   /* NULL is a no-op */
/* Runs to completion. Fails only on a workload error mid-run. */
int cluster_run(cluster *c, sim_err *err);
void cluster_summarize(const cluster *c, run_summary *out);
/* "roofline" or "table+roofline": which cost sources produced the terms. */
void cluster_cost_sources(const run_summary *s, char *buf, size_t size);

#endif
