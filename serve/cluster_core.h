/* What the cluster lends the modules that act on its requests from inside
 * serve/ (disagg.c: prefill-to-decode hand-offs; migrate.c: live
 * migration): its engine, links, instances and pools. Not for policies or
 * the tool, which see api/ views and cluster.h. */
#ifndef SERVE_CLUSTER_CORE_H
#define SERVE_CLUSTER_CORE_H

#include "serve/cluster.h"
#include "serve/req.h"

sim_engine *cluster_engine(cluster *c);
net *cluster_net(cluster *c);
instance *cluster_instance(cluster *c, int32_t i);
const inst_view *cluster_views(const cluster *c);
const pool_setup *cluster_pool_setup(const cluster *c, int32_t pool);
/* Pool k's ACTIVE instances (valid until the next lifecycle change). */
const int32_t *cluster_pool_active(const cluster *c, int32_t pool, int32_t *n);
void *cluster_route_state(const cluster *c, int32_t pool);
/* Every instance pool k has had, in creation order. */
const int32_t *cluster_pool_members(const cluster *c, int32_t pool, int32_t *n);
/* The links a transfer from instance a to instance b crosses (NVLink within
 * a node, the NICs across nodes); returns how many. */
int cluster_path(const cluster *c, int32_t a, int32_t b, net_link path[2]);
/* KV bytes of one token on a whole instance of the pool (all its GPUs). */
double cluster_kv_bytes_per_token(const cluster *c, int32_t pool);
/* The route view of pool k's router, its candidates given by the caller. */
route_view cluster_route_view(cluster *c, const int32_t *candidates, int32_t n);
/* Counts a hand-off from instance `from` that landed; the end of a move
 * (done: it landed; else aborted). */
void cluster_note_handoff(cluster *c, int32_t from);
void cluster_note_move_end(cluster *c, int32_t from, bool done);

#endif
