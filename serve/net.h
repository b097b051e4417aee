/* Flow-level network model: links with a bandwidth and a latency, transfers
 * that cross a path of links, and bandwidth shared between the transfers on
 * each link by max-min fairness. KV transfers, swaps, weight loads and expert
 * moves all use it; NVLink within a node, a NIC across nodes, PCIe to host
 * memory, a local SSD or remote storage are each a link.
 *
 * What a transfer does. net_start at time t0 over links l1..lk: it first
 * waits latency(l1) + ... + latency(lk) (paid once, before any byte moves;
 * no store-and-forward, no packets), then flows at its max-min fair share of
 * every link on its path until its bytes are through; `done` is called at
 * that time, rounded up to the next integer ns. A transfer in its latency
 * uses no bandwidth and is not counted on any link.
 *
 * Sharing. Rates are the max-min fair allocation (progressive filling): a
 * transfer's rate is limited by its bottleneck link, where it gets at least
 * as much as any other transfer there, and the link is full. Rates are
 * recomputed whenever a transfer starts flowing, finishes or is cancelled,
 * and hold in between.
 *
 * Events and order. The net keeps at most one event of its own in the
 * engine, at the next instant something happens (a latency ends, a transfer
 * finishes). Everything due at one instant is handled by that one event, in
 * this order: latencies that end start flowing, finished transfers leave,
 * rates are recomputed once, then `done` is called for each transfer that
 * finished at that instant in start order (the order of the net_start
 * calls). So ties complete in start order, and equal-time order with the
 * rest of the model is set by the phase given at create: give the net a
 * phase of its own (lower than the handlers that must see its completions
 * first), since among events of one phase the net's event sits wherever it
 * was last (re)scheduled. A transfer whose
 * latency is 0 (or a local copy, n_links == 0) starts flowing (completes)
 * in that event at the same instant, not inside net_start: net_rate is 0
 * until then, and `done` is never called from inside net_start or
 * net_cancel.
 *
 * Callbacks. `done` may call net_start and net_cancel (it runs after the
 * net's state for the instant is settled), but not net_destroy. A
 * transfer's handle is stale by the time its `done` runs.
 *
 * Cost. A change (transfers that start flowing or finish at one instant,
 * handled together, or one cancel of a flowing transfer) recomputes every
 * rate: O(A^2 + F*P) for F flowing transfers with paths of P links over the
 * A links that carry them, then O(log E) to move the net's one event among
 * E pending ones. Transfers whose rate did not change keep their completion
 * time untouched. net_start and cancelling a transfer still in its latency
 * are O(P^2 + log L) (the path is checked for repeated links; L transfers
 * in their latency are kept in a red-black tree). Fine for hundreds of concurrent transfers over tens of busy links:
 * the test with 3,000 transfers, up to 366 at once on one link, runs in
 * under 0.1 s. No allocation per transfer once the pools have grown to the
 * peak number of live transfers (a free list of slots, like sim/evq.c).
 *
 * Determinism. Same calls give bit-identical completion times: every sum
 * and every tie-break (bottleneck link: lowest share, then lowest index;
 * completions: start order) is in a fixed order. Remaining bytes are kept
 * per transfer from its last rate change; at its completion time a
 * remainder under 1 ns of transfer at its rate counts as done. No event is
 * ever scheduled in the past. */
#ifndef SERVE_NET_H
#define SERVE_NET_H

#include <stdbool.h>
#include "sim/engine.h"

typedef struct net net;
typedef int32_t net_link;      /* index from net_add_link, from 0 */
typedef uint64_t net_xfer;     /* handle; 0 is never valid; stale ones are detected */

/* Called once, at the transfer's completion time (now). */
typedef void (*net_done_fn)(void *ctx, net_xfer x, int64_t tag, sim_time_ns now);

/* --- the network -------------------------------------------------------- */

/* The caller registers the event kind with the engine (handler
 * net_on_event, ctx NULL) and passes its id and the phase (equal-time
 * order, < 2^16) the net's events use; events carry the net as data. The
 * engine must outlive the net. */
net *net_create(sim_engine *eng, uint32_t event_kind, uint32_t phase);
/* NULL is a no-op. Cancels the net's pending event; transfers still live
 * are dropped without their callbacks. Not from inside a `done`. */
void net_destroy(net *n);
void net_on_event(sim_engine *eng, void *ctx, const sim_event *ev);

/* A link of bytes_per_s > 0 and latency_ns >= 0 (asserted); name is copied.
 * Links can be added at any time; they are never removed. */
net_link net_add_link(net *n, const char *name, double bytes_per_s,
                      sim_time_ns latency_ns);

/* --- transfers ---------------------------------------------------------- */

/* Starts a transfer of `bytes` (>= 0, finite) over path[0..n_links) at now.
 * It first waits the sum of the links' latencies, then flows at its max-min
 * fair share; `done` (may be NULL) is called at its completion time (rounded
 * up to the next integer ns). n_links 0 = local copy: completes at now
 * (through the net's event). Zero bytes: completes when its latency ends.
 * A path may not name a link twice (asserted). path is copied. */
net_xfer net_start(net *n, const net_link *path, int n_links, double bytes,
                   net_done_fn done, void *ctx, int64_t tag);
/* Stops a live transfer without calling `done`; its bandwidth goes to the
 * others at once. false for a finished/cancelled/stale handle. */
bool net_cancel(net *n, net_xfer x);
/* Bytes not yet through, at now: all of them during the latency, 0 once
 * finished at this instant but not yet reported; -1 for a stale handle. */
double net_remaining_bytes(const net *n, net_xfer x);
/* Current bytes/s; 0 during the latency and for a stale handle. */
double net_rate(const net *n, net_xfer x);
/* Transfers started and not yet finished or cancelled. */
int32_t net_live_count(const net *n);

/* --- links -------------------------------------------------------------- */

/* Totals since the link was added, up to `now` (>= the net's last change;
 * pass sim_now). bytes: carried; busy_ns: time with >= 1 flowing transfer;
 * busy_bytes_ns: the integral over time of the bytes still to cross the
 * link (of the transfers flowing on it), so busy_bytes_ns / window is the
 * mean backlog; flows_now / flows_peak: flowing transfers now / at most.
 * Utilisation over a window = bytes / (bandwidth * window); busy fraction =
 * busy_ns / window. Transfers in their latency are not counted. */
typedef struct net_link_stats {
    double bytes;
    sim_time_ns busy_ns;
    double busy_bytes_ns;
    int32_t flows_now, flows_peak;
} net_link_stats;
void net_link_stats_get(const net *n, net_link l, sim_time_ns now,
                        net_link_stats *out);
const char *net_link_name(const net *n, net_link l);
double net_link_bytes_per_s(const net *n, net_link l);
sim_time_ns net_link_latency_ns(const net *n, net_link l);
int32_t net_link_count(const net *n);

#endif
