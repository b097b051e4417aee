/* Flow-level network: max-min fair sharing of links by transfers, with one
 * engine event per net (see net.h for the model and its contract).
 *
 * States. A transfer slot is FREE, LATENCY (waiting out its path latency, in
 * the red-black tree `latency` ordered by (latency end, start seq)), FLOWING
 * (in `flowing` and in the flow list of every link on its path) or DUE
 * (finished at the current instant, in `due`, waiting for the net's event to
 * report it). Every live transfer is in exactly one of these containers, and
 * slot->list_pos is its index in `flowing` or `due` (swap-remove), or the
 * next free slot when FREE.
 *
 * Rates. A FLOWING transfer keeps (rem_at, t_set, rate): rem_at bytes were
 * left at t_set and it has moved at `rate` since, so remaining(now) =
 * rem_at - rate (now - t_set) / 1e9. Its completion time done_ns =
 * t_set + ceil(rem_at 1e9 / rate) (>= t_set + 1) is fixed when the rate is
 * set. recompute() runs progressive filling over all flowing transfers and
 * only re-bases the ones whose rate changed (compared bit for bit), so a
 * transfer untouched by a change keeps its exact completion time.
 * Invariant after recompute: every FLOWING transfer has done_ns > now and
 * next_done_ns is the least of them.
 *
 * The one event. `ev` is the pending engine event (0 if none), always at
 * min(now if anything is DUE, first latency end, next_done_ns); arm()
 * restores that after every change and leaves the event alone when its time
 * is unchanged (so its place among equal-time events is stable). The event
 * handler admits every latency that ends now, reaps transfers whose
 * done_ns is now (a remainder under 1 ns of transfer at its rate counts as
 * done; a larger one, from rounding, is re-based to finish >= now + 1),
 * recomputes once, then reports every DUE transfer in start-seq order.
 * Slots are freed and the event re-armed before the callbacks run, so
 * callbacks see settled state and may start or cancel transfers.
 *
 * Link statistics are integrated lazily: each active link (one with flowing
 * transfers) keeps the sum of their rates and remaining bytes as of t_last,
 * which hold (rates) or fall linearly (remaining) until the next change;
 * advance_links() folds [t_last, now] into the totals before any change.
 * When a transfer finishes, its remainder (under 1 ns of transfer, of either
 * sign: completion times are whole ns) is added to each of its links, so a
 * link's bytes are exactly the bytes that crossed it, up to rounding.
 *
 * Memory. Slots come in chunks of NET_CHUNK that never move (the tree holds
 * pointers into them) and are recycled through a free list; a slot keeps
 * its path buffer. The flow lists, the active-link list and the scratch
 * arrays grow by doubling to their peak. After that, nothing allocates. */
#include "serve/net.h"

#include <math.h>
#include <stdlib.h>

#include "sim/rbtree.h"

#define NET_CHUNK_BITS 8
#define NET_CHUNK (1u << NET_CHUNK_BITS)
#define NET_NONE UINT32_MAX
#define NET_NS_PER_S 1e9

enum { XF_FREE, XF_LATENCY, XF_FLOWING, XF_DUE };

typedef struct net_hop {
    net_link link;
    uint32_t pos;          /* index in the link's flow list while FLOWING */
} net_hop;

typedef struct xfer {
    sim_rb_node rb;        /* in n->latency while LATENCY */
    net_hop *hops;         /* the path; the buffer is kept across reuse */
    int32_t nhops;
    size_t hop_cap;
    uint32_t idx, gen;     /* slot index; generation (bumped when freed) */
    uint32_t list_pos;     /* see the states above */
    uint8_t state;
    bool frozen;           /* progressive filling: rate fixed this round */
    bool rebase;           /* must be re-based at the next recompute */
    double bytes;
    double rem_at, rate;   /* remaining at t_set; bytes/s since t_set */
    double fill_rate;      /* progressive filling's result */
    sim_time_ns t_set, done_ns, lat_end_ns;
    uint64_t seq;          /* start order */
    net_done_fn done;
    void *ctx;
    int64_t tag;
} xfer;

typedef struct link_flow {
    uint32_t slot;
    uint32_t hop;          /* which hop of that transfer's path this is */
} link_flow;

typedef struct link_rec {
    char *name;
    double bw;
    sim_time_ns lat;
    link_flow *fl;         /* flowing transfers on this link */
    uint32_t nfl;
    size_t fl_cap;
    uint32_t active_pos;   /* index in n->active, NET_NONE when idle */
    int32_t peak;
    /* totals up to t_last, and the sums that hold from t_last on */
    sim_time_ns t_last, busy_ns;
    double bytes, backlog_bns;
    double sum_rate, sum_rem;
    /* progressive filling scratch */
    double cap;
    int32_t nun;           /* transfers on the link not yet frozen */
} link_rec;

typedef struct done_call {
    uint64_t seq;
    net_xfer x;
    net_done_fn done;
    void *ctx;
    int64_t tag;
} done_call;

struct net {
    sim_engine *eng;
    uint32_t kind, phase;
    link_rec *links;
    size_t nlinks, link_cap;
    xfer **chunks;
    size_t nchunks, chunk_cap;
    uint32_t nslots, free_head;
    uint32_t *flowing, *due, *active, *work;
    size_t nflowing, flowing_cap, ndue, due_cap, nactive, active_cap, work_cap;
    done_call *calls;
    size_t calls_cap;
    sim_rb_tree latency;
    sim_time_ns next_done_ns;  /* least done_ns over FLOWING; NEVER if none */
    sim_event_handle ev;       /* 0: none pending */
    sim_time_ns ev_time;
    uint64_t next_seq;
    int32_t live;
    bool in_callbacks;
};

/* --- slots and handles --------------------------------------------------- */

static inline xfer *slot_at(const net *n, uint32_t i)
{
    return &n->chunks[i >> NET_CHUNK_BITS][i & (NET_CHUNK - 1)];
}

static inline net_xfer handle_of(const xfer *f)
{
    return (uint64_t)f->gen << 32 | ((uint64_t)f->idx + 1);
}

/* The live transfer x names, or NULL for 0, a finished, cancelled or
 * never-issued handle. */
static xfer *lookup(const net *n, net_xfer x)
{
    uint32_t lo = (uint32_t)x;
    if (lo == 0 || lo - 1 >= n->nslots)
        return NULL;
    xfer *f = slot_at(n, lo - 1);
    if (f->state == XF_FREE || f->gen != (uint32_t)(x >> 32))
        return NULL;
    return f;
}

static xfer *slot_alloc(net *n)
{
    if (n->free_head != NET_NONE) {
        xfer *f = slot_at(n, n->free_head);
        n->free_head = f->list_pos;
        return f;
    }
    SIM_ASSERT(n->nslots < NET_NONE - 1);
    if ((n->nslots & (NET_CHUNK - 1)) == 0) {
        sim_grow((void **)&n->chunks, &n->chunk_cap, n->nchunks + 1,
                 sizeof *n->chunks);
        n->chunks[n->nchunks++] = sim_xcalloc(NET_CHUNK, sizeof(xfer));
    }
    xfer *f = slot_at(n, n->nslots);
    f->idx = n->nslots++;
    return f;
}

static void slot_free(net *n, xfer *f)
{
    f->state = XF_FREE;
    f->gen++;
    f->list_pos = n->free_head;
    n->free_head = f->idx;
    n->live--;
}

static int latency_cmp(const sim_rb_node *a, const sim_rb_node *b)
{
    const xfer *x = SIM_RB_ENTRY(a, xfer, rb), *y = SIM_RB_ENTRY(b, xfer, rb);
    if (x->lat_end_ns != y->lat_end_ns)
        return x->lat_end_ns < y->lat_end_ns ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* --- create, destroy, links ---------------------------------------------- */

net *net_create(sim_engine *eng, uint32_t event_kind, uint32_t phase)
{
    SIM_ASSERT(eng != NULL && phase < (1u << 16));
    net *n = sim_xcalloc(1, sizeof *n);
    n->eng = eng;
    n->kind = event_kind;
    n->phase = phase;
    n->free_head = NET_NONE;
    n->next_done_ns = SIM_TIME_NEVER;
    sim_rb_init(&n->latency, latency_cmp);
    return n;
}

void net_destroy(net *n)
{
    if (!n)
        return;
    SIM_ASSERT(!n->in_callbacks);   /* a done callback may not destroy */
    if (n->ev)
        sim_cancel(n->eng, n->ev);
    for (size_t i = 0; i < n->nlinks; i++) {
        free(n->links[i].name);
        free(n->links[i].fl);
    }
    for (uint32_t i = 0; i < n->nslots; i++)
        free(slot_at(n, i)->hops);
    for (size_t c = 0; c < n->nchunks; c++)
        free(n->chunks[c]);
    free(n->chunks);
    free(n->links);
    free(n->flowing);
    free(n->due);
    free(n->active);
    free(n->work);
    free(n->calls);
    free(n);
}

net_link net_add_link(net *n, const char *name, double bytes_per_s,
                      sim_time_ns latency_ns)
{
    SIM_ASSERT(name != NULL);
    SIM_ASSERT(bytes_per_s > 0 && isfinite(bytes_per_s));
    SIM_ASSERT(latency_ns >= 0 && latency_ns < SIM_TIME_HORIZON);
    SIM_ASSERT(n->nlinks < INT32_MAX);
    sim_grow((void **)&n->links, &n->link_cap, n->nlinks + 1, sizeof *n->links);
    sim_grow((void **)&n->work, &n->work_cap, n->nlinks + 1, sizeof *n->work);
    link_rec *l = &n->links[n->nlinks];
    *l = (link_rec){.name = sim_xstrdup(name), .bw = bytes_per_s,
                    .lat = latency_ns, .active_pos = NET_NONE,
                    .t_last = sim_now(n->eng)};
    return (net_link)n->nlinks++;
}

static const link_rec *link_get(const net *n, net_link l)
{
    SIM_ASSERT(l >= 0 && (size_t)l < n->nlinks);
    return &n->links[l];
}

const char *net_link_name(const net *n, net_link l) { return link_get(n, l)->name; }
double net_link_bytes_per_s(const net *n, net_link l) { return link_get(n, l)->bw; }
sim_time_ns net_link_latency_ns(const net *n, net_link l) { return link_get(n, l)->lat; }
int32_t net_link_count(const net *n) { return (int32_t)n->nlinks; }
int32_t net_live_count(const net *n) { return n->live; }

/* --- link statistics ----------------------------------------------------- */

/* Folds [t_last, now] of a link with flows into its totals: rates hold,
 * remaining bytes fall linearly, so the backlog integral is a trapezoid. */
static void link_advance(link_rec *l, sim_time_ns now)
{
    SIM_ASSERT_AT(now, now >= l->t_last);
    sim_time_ns d = now - l->t_last;
    if (d > 0 && l->nfl > 0) {
        double moved = l->sum_rate * (double)d / NET_NS_PER_S;
        l->bytes += moved;
        l->backlog_bns += (double)d * (l->sum_rem - 0.5 * moved);
        l->busy_ns += d;
        l->sum_rem -= moved;
    }
    l->t_last = now;
}

static void advance_links(net *n, sim_time_ns now)
{
    for (size_t i = 0; i < n->nactive; i++)
        link_advance(&n->links[n->active[i]], now);
}

void net_link_stats_get(const net *n, net_link l, sim_time_ns now,
                        net_link_stats *out)
{
    link_rec copy = *link_get(n, l);
    link_advance(&copy, now);
    *out = (net_link_stats){.bytes = copy.bytes, .busy_ns = copy.busy_ns,
                            .busy_bytes_ns = copy.backlog_bns,
                            .flows_now = (int32_t)copy.nfl,
                            .flows_peak = copy.peak};
}

/* --- flowing transfers ---------------------------------------------------- */

static inline double remaining(const xfer *f, sim_time_ns now)
{
    return f->rem_at - f->rate * (double)(now - f->t_set) / NET_NS_PER_S;
}

/* now + the time to move rem bytes at rate, rounded up to whole ns (at least
 * 1). The slack (1e-12 of the time, at most 1e-3 ns) keeps the rounding
 * error of the division from pushing an exact integer up by one. */
static sim_time_ns finish_time(sim_time_ns now, double rem, double rate)
{
    double ns = rem * NET_NS_PER_S / rate;
    double slack = fmin(ns * 1e-12, 1e-3);
    double c = ceil(ns - slack);
    if (!(c >= 1))
        c = 1;
    if (c >= (double)(SIM_TIME_HORIZON - now))
        return SIM_TIME_HORIZON;
    return now + (sim_time_ns)c;
}

static void flow_add(net *n, xfer *f, sim_time_ns now)
{
    f->state = XF_FLOWING;
    sim_grow((void **)&n->flowing, &n->flowing_cap, n->nflowing + 1,
             sizeof *n->flowing);
    f->list_pos = (uint32_t)n->nflowing;
    n->flowing[n->nflowing++] = f->idx;
    for (int32_t h = 0; h < f->nhops; h++) {
        link_rec *l = &n->links[f->hops[h].link];
        if (l->nfl == 0) {
            sim_grow((void **)&n->active, &n->active_cap, n->nactive + 1,
                     sizeof *n->active);
            l->active_pos = (uint32_t)n->nactive;
            n->active[n->nactive++] = (uint32_t)f->hops[h].link;
            l->t_last = now;   /* idle until now: nothing to fold in */
        }
        sim_grow((void **)&l->fl, &l->fl_cap, l->nfl + 1, sizeof *l->fl);
        f->hops[h].pos = l->nfl;
        l->fl[l->nfl++] = (link_flow){f->idx, (uint32_t)h};
        if ((int32_t)l->nfl > l->peak)
            l->peak = (int32_t)l->nfl;
    }
    f->rem_at = f->bytes;
    f->t_set = now;
    f->rate = 0;
    f->rebase = true;
    f->done_ns = SIM_TIME_NEVER;
}

/* Takes a FLOWING transfer off its links and out of `flowing`. The caller
 * has advanced the link totals to now; `residual` (the remainder of a
 * finished transfer, 0 for a cancelled one) is added to each link's bytes. */
static void flow_remove(net *n, xfer *f, double residual)
{
    for (int32_t h = 0; h < f->nhops; h++) {
        link_rec *l = &n->links[f->hops[h].link];
        uint32_t pos = f->hops[h].pos;
        link_flow last = l->fl[--l->nfl];
        if (pos != l->nfl) {
            l->fl[pos] = last;
            slot_at(n, last.slot)->hops[last.hop].pos = pos;
        }
        l->bytes += residual;
        if (l->nfl == 0) {
            uint32_t moved = n->active[--n->nactive];
            if (l->active_pos != n->nactive) {
                n->active[l->active_pos] = moved;
                n->links[moved].active_pos = l->active_pos;
            }
            l->active_pos = NET_NONE;
            l->sum_rate = l->sum_rem = 0;
        }
    }
    uint32_t last = n->flowing[--n->nflowing];
    if (f->list_pos != n->nflowing) {
        n->flowing[f->list_pos] = last;
        slot_at(n, last)->list_pos = f->list_pos;
    }
}

static void due_push(net *n, xfer *f)
{
    f->state = XF_DUE;
    sim_grow((void **)&n->due, &n->due_cap, n->ndue + 1, sizeof *n->due);
    f->list_pos = (uint32_t)n->ndue;
    n->due[n->ndue++] = f->idx;
}

static void due_remove(net *n, xfer *f)
{
    uint32_t last = n->due[--n->ndue];
    if (f->list_pos != n->ndue) {
        n->due[f->list_pos] = last;
        slot_at(n, last)->list_pos = f->list_pos;
    }
}

/* Moves FLOWING transfers whose completion time has come (done_ns <= now)
 * to DUE, or marks them for re-basing if rounding left more than 1 ns of
 * transfer. */
static void reap(net *n, sim_time_ns now)
{
    for (size_t i = 0; i < n->nflowing;) {
        xfer *f = slot_at(n, n->flowing[i]);
        if (f->done_ns <= now) {
            double rem = remaining(f, now);
            if (rem <= f->rate / NET_NS_PER_S) {
                flow_remove(n, f, rem);   /* moves another one to i */
                due_push(n, f);
                continue;
            }
            f->rebase = true;
        }
        i++;
    }
}

/* Progressive filling: repeatedly take the link with the least fair share
 * (remaining capacity / transfers not yet frozen on it; ties to the lower
 * index), give that share to its unfrozen transfers and freeze them, taking
 * their rate off every link they cross. Each round retires at least one
 * link: O(A^2 + F*P). Results go to fill_rate. */
static void fill(net *n)
{
    size_t nwork = 0;
    for (size_t i = 0; i < n->nactive; i++) {
        link_rec *l = &n->links[n->active[i]];
        l->cap = l->bw;
        l->nun = (int32_t)l->nfl;
        n->work[nwork++] = n->active[i];
    }
    for (size_t i = 0; i < n->nflowing; i++)
        slot_at(n, n->flowing[i])->frozen = false;
    while (nwork > 0) {
        uint32_t best = NET_NONE;
        double share = 0;
        for (size_t k = 0; k < nwork; k++) {
            const link_rec *l = &n->links[n->work[k]];
            double s = l->cap / l->nun;
            if (best == NET_NONE || s < share || (s == share && n->work[k] < best)) {
                best = n->work[k];
                share = s;
            }
        }
        /* > 0: each round takes at most cap/nun from any link. */
        SIM_ASSERT(share > 0);
        const link_rec *b = &n->links[best];
        for (uint32_t j = 0; j < b->nfl; j++) {
            xfer *f = slot_at(n, b->fl[j].slot);
            if (f->frozen)
                continue;
            f->frozen = true;
            f->fill_rate = share;
            for (int32_t h = 0; h < f->nhops; h++) {
                link_rec *l = &n->links[f->hops[h].link];
                l->cap -= share;
                l->nun--;
            }
        }
        for (size_t k = 0; k < nwork;) {
            if (n->links[n->work[k]].nun == 0)
                n->work[k] = n->work[--nwork];
            else
                k++;
        }
    }
}

/* After any change at now: reap, refill, re-base the transfers whose rate
 * changed, and refresh next_done_ns and the links' sums. */
static void recompute(net *n, sim_time_ns now)
{
    reap(n, now);
    fill(n);
    sim_time_ns next = SIM_TIME_NEVER;
    for (size_t i = 0; i < n->nflowing; i++) {
        xfer *f = slot_at(n, n->flowing[i]);
        if (f->rebase || f->fill_rate != f->rate) {
            double rem = remaining(f, now);
            f->rem_at = rem;
            f->t_set = now;
            f->rate = f->fill_rate;
            f->rebase = false;
            f->done_ns = finish_time(now, rem, f->rate);
        }
        if (f->done_ns < next)
            next = f->done_ns;
    }
    n->next_done_ns = next;
    for (size_t i = 0; i < n->nactive; i++) {
        link_rec *l = &n->links[n->active[i]];
        double x = 0, r = 0;
        for (uint32_t j = 0; j < l->nfl; j++) {
            const xfer *f = slot_at(n, l->fl[j].slot);
            x += f->rate;
            r += remaining(f, now);
        }
        l->sum_rate = x;
        l->sum_rem = r;
    }
}

/* Keeps the one event at the next instant anything happens. */
static void arm(net *n)
{
    sim_time_ns t = n->next_done_ns;
    if (n->ndue > 0)
        t = sim_now(n->eng);
    const sim_rb_node *first = sim_rb_first(&n->latency);
    if (first) {
        sim_time_ns lt = SIM_RB_ENTRY(first, xfer, rb)->lat_end_ns;
        if (lt < t)
            t = lt;
    }
    if (n->ev && n->ev_time == t)
        return;
    if (n->ev) {
        sim_cancel(n->eng, n->ev);
        n->ev = 0;
    }
    if (t != SIM_TIME_NEVER) {
        n->ev = sim_schedule(n->eng, t, n->phase, n->kind, n, 0);
        n->ev_time = t;
    }
}

static int call_cmp(const void *a, const void *b)
{
    uint64_t x = ((const done_call *)a)->seq, y = ((const done_call *)b)->seq;
    return x < y ? -1 : x > y;
}

void net_on_event(sim_engine *eng, void *ctx, const sim_event *ev)
{
    (void)ctx;
    net *n = ev->data;
    SIM_ASSERT(n != NULL && n->eng == eng && ev->kind == n->kind);
    sim_time_ns now = sim_now(eng);
    n->ev = 0;
    advance_links(n, now);

    bool changed = n->next_done_ns <= now;
    sim_rb_node *p;
    while ((p = sim_rb_first(&n->latency)) &&
           SIM_RB_ENTRY(p, xfer, rb)->lat_end_ns <= now) {
        xfer *f = SIM_RB_ENTRY(p, xfer, rb);
        SIM_ASSERT_AT(now, f->lat_end_ns == now);
        sim_rb_remove(&n->latency, p);
        if (f->bytes == 0) {
            due_push(n, f);
        } else {
            flow_add(n, f, now);
            changed = true;
        }
    }
    if (changed)
        recompute(n, now);

    /* Report what finished, in start order, from settled state. */
    size_t ncalls = n->ndue;
    sim_grow((void **)&n->calls, &n->calls_cap, ncalls, sizeof *n->calls);
    for (size_t i = 0; i < ncalls; i++) {
        xfer *f = slot_at(n, n->due[i]);
        n->calls[i] = (done_call){f->seq, handle_of(f), f->done, f->ctx, f->tag};
        slot_free(n, f);
    }
    n->ndue = 0;
    if (ncalls > 1)
        qsort(n->calls, ncalls, sizeof *n->calls, call_cmp);
    arm(n);
    n->in_callbacks = true;
    for (size_t i = 0; i < ncalls; i++) {
        const done_call *c = &n->calls[i];
        if (c->done)
            c->done(c->ctx, c->x, c->tag, now);
    }
    n->in_callbacks = false;
}

/* --- transfers ----------------------------------------------------------- */

net_xfer net_start(net *n, const net_link *path, int n_links, double bytes,
                   net_done_fn done, void *ctx, int64_t tag)
{
    SIM_ASSERT(n_links >= 0 && (n_links == 0 || path != NULL));
    SIM_ASSERT(bytes >= 0 && isfinite(bytes));
    sim_time_ns now = sim_now(n->eng), lat = 0;
    for (int i = 0; i < n_links; i++) {
        SIM_ASSERT_AT(now, path[i] >= 0 && (size_t)path[i] < n->nlinks);
        for (int j = 0; j < i; j++)
            SIM_ASSERT_AT(now, path[j] != path[i]);   /* a link twice */
        lat += n->links[path[i]].lat;
        if (lat > SIM_TIME_HORIZON)
            lat = SIM_TIME_HORIZON;
    }
    xfer *f = slot_alloc(n);
    sim_grow((void **)&f->hops, &f->hop_cap, (size_t)n_links, sizeof *f->hops);
    for (int i = 0; i < n_links; i++)
        f->hops[i] = (net_hop){path[i], NET_NONE};
    f->nhops = n_links;
    f->bytes = bytes;
    f->rate = 0;
    f->done = done;
    f->ctx = ctx;
    f->tag = tag;
    f->seq = n->next_seq++;
    n->live++;
    if (n_links == 0) {
        due_push(n, f);
    } else {
        f->state = XF_LATENCY;
        f->lat_end_ns = lat >= SIM_TIME_HORIZON - now ? SIM_TIME_HORIZON : now + lat;
        sim_rb_insert(&n->latency, &f->rb);
    }
    arm(n);
    return handle_of(f);
}

bool net_cancel(net *n, net_xfer x)
{
    xfer *f = lookup(n, x);
    if (!f)
        return false;
    sim_time_ns now = sim_now(n->eng);
    switch (f->state) {
    case XF_LATENCY:
        sim_rb_remove(&n->latency, &f->rb);
        break;
    case XF_DUE:
        due_remove(n, f);
        break;
    case XF_FLOWING:
        advance_links(n, now);
        flow_remove(n, f, 0);
        recompute(n, now);
        break;
    default:
        SIM_ASSERT_AT(now, 0);
    }
    slot_free(n, f);
    arm(n);
    return true;
}

double net_remaining_bytes(const net *n, net_xfer x)
{
    const xfer *f = lookup(n, x);
    if (!f)
        return -1;
    switch (f->state) {
    case XF_LATENCY:
        return f->bytes;
    case XF_FLOWING:
        return fmax(0, remaining(f, sim_now(n->eng)));
    default:
        return 0;
    }
}

double net_rate(const net *n, net_xfer x)
{
    const xfer *f = lookup(n, x);
    return f && f->state == XF_FLOWING ? f->rate : 0;
}
