/* Live migration of running requests (Llumnix, OSDI'24), a move of mode
 * MOVE_LIVE (api/control.h): the request keeps decoding on its source while
 * its KV is copied to the destination in stages, and stops only for the
 * last, short one.
 *
 * Stages (Llumnix's llumlet/migration_coordinator.py, read from its code):
 * stage k takes the blocks the request filled since stage k-1. While there
 * are at least `last_stage_max_blocks` of them, the destination reserves
 * them (failure: aborted, "dst") and all but the block being written are
 * sent, the request decoding meanwhile. Otherwise the stage is the last: the
 * request leaves the source's running set (after the iteration it is in,
 * if one runs), the destination reserves what the request needs there
 * (its sequence and one more token), the rest is sent, and the request
 * resumes decoding in the destination's running set with its KV (queued
 * if that set is full); the source frees its blocks. More
 * than `max_stages` stages: aborted ("stages"). A request that finishes or
 * is preempted during the copy: aborted ("src"); the destination gives its
 * reservation back. Downtime: from leaving the running set to arriving at
 * the destination (the last stage's copy, with its link latency and any
 * contention); the request's token gap adds the rest of the destination's
 * iteration in flight and the one it then joins. Copies share the links with every other
 * transfer.
 *
 * Settings: `cluster.migration` {"last_stage_max_blocks": 16,
 * "max_stages": 3} (Llumnix's defaults). */
#ifndef SERVE_MIGRATE_H
#define SERVE_MIGRATE_H

#include "serve/cluster.h"

typedef struct migrate migrate;

/* cfg may be NULL (defaults, nothing written). */
migrate *migrate_create(cluster *c, cJSON *cfg, const char *path, sim_err *err);
void migrate_destroy(migrate *m);   /* NULL is a no-op */

/* Hooks the cluster calls. r is RUNNING and decoding, its move_to set to
 * `to`; false (r left as it was, the move counted aborted) when it cannot
 * start. */
bool migrate_start(migrate *m, serve_req *r, int32_t to);
/* r left the source's running set for its last stage. */
void migrate_on_detached(migrate *m, int32_t from, serve_req *r);
/* r finished while its KV was being copied. */
void migrate_on_finished(migrate *m, serve_req *r);

typedef struct migrate_stats {
    uint64_t started, completed;
    uint64_t aborted_dst;       /* the destination could not reserve */
    uint64_t aborted_src;       /* the request finished or was preempted */
    uint64_t aborted_stages;    /* more than max_stages stages */
    uint64_t stages;            /* of completed migrations */
    double bytes;               /* every stage's, aborted ones included */
    double last_stage_bytes;    /* the stop-and-copy stages of completed ones */
    pctl downtime_s;            /* completed migrations */
    pctl duration_s;            /* first stage to arrival */
} migrate_stats;
void migrate_get_stats(const migrate *m, migrate_stats *out);

/* The cluster's, NULL never (defined in cluster.c). */
const migrate *cluster_migrate(const cluster *c);

#endif
