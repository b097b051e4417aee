/* Flow-level network: transfer times against hand-computed formulas, max-min
 * fair rates, cancel, statistics, handles, order of ties and determinism.
 *
 * Numbers are picked so that the exact answers are integers of ns (bytes and
 * rates whose quotients are exact in binary floating point), so "to the ns"
 * is checked with ==. The randomised tests check properties instead: every
 * transfer completes once, each link's bytes equal the bytes of the
 * transfers that crossed it, nothing finishes before latency + bytes/bw,
 * and at every completion the rates satisfy the max-min condition (each
 * flowing transfer crosses a full link on which no one gets more), written
 * out here independently of the progressive filling in net.c. */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_rng.h>

#include "serve/net.h"
#include "tests/suites.h"

/* --- fixture: an engine, a net and timed actions ------------------------ */

typedef struct fixture {
    sim_engine *eng;
    net *n;
    uint32_t k_act;
} fixture;

typedef struct action {
    void (*fn)(fixture *fx, void *arg);
    fixture *fx;
    void *arg;
} action;

static void act_handler(sim_engine *eng, void *ctx, const sim_event *ev)
{
    (void)eng;
    (void)ctx;
    const action *a = ev->data;
    a->fn(a->fx, a->arg);
}

/* The net's events at phase 0, test actions at phase 1 (after the net at
 * equal times). */
static void fx_init(fixture *fx)
{
    fx->eng = sim_engine_create(1);
    uint32_t k_net = sim_engine_register(fx->eng, "net", net_on_event, NULL);
    fx->k_act = sim_engine_register(fx->eng, "action", act_handler, NULL);
    fx->n = net_create(fx->eng, k_net, 0);
}

static void fx_fini(fixture *fx)
{
    net_destroy(fx->n);
    sim_engine_destroy(fx->eng);
}

/* Runs a->fn at time t; a must outlive the run. */
static void at(fixture *fx, sim_time_ns t, action *a)
{
    a->fx = fx;
    sim_schedule(fx->eng, t, 1, fx->k_act, a, 0);
}

/* --- recording completions ---------------------------------------------- */

enum { REC_MAX = 64 };

typedef struct rec {
    int n;
    net_xfer x[REC_MAX];
    int64_t tag[REC_MAX];
    sim_time_ns t[REC_MAX];
} rec;

static void on_done(void *ctx, net_xfer x, int64_t tag, sim_time_ns now)
{
    rec *r = ctx;
    ck_assert_int_lt(r->n, REC_MAX);
    r->x[r->n] = x;
    r->tag[r->n] = tag;
    r->t[r->n++] = now;
}

/* The completion time recorded for tag, or -1. */
static sim_time_ns done_at(const rec *r, int64_t tag)
{
    for (int i = 0; i < r->n; i++)
        if (r->tag[i] == tag)
            return r->t[i];
    return -1;
}

#define GBPS 1e9   /* 1 GB/s = 1 byte/ns */

/* --- exact times -------------------------------------------------------- */

START_TEST(test_net_single_transfer_takes_latency_plus_bytes_over_bandwidth)
{
    fixture fx;
    fx_init(&fx);
    net_link a = net_add_link(fx.n, "nvlink", 10 * GBPS, 1000);
    net_link b = net_add_link(fx.n, "nic", 40 * GBPS, 500);
    net_link c = net_add_link(fx.n, "pcie", 3 * GBPS, 0);
    rec r = {0};
    /* Latency 1000 + 500 paid once, then 1e6 bytes at the slower link's
     * 10 GB/s: 1e5 ns. */
    net_link ab[] = {a, b};
    net_xfer x = net_start(fx.n, ab, 2, 1e6, on_done, &r, 7);
    ck_assert_uint_ne(x, 0);
    /* 1e6 bytes at 3 GB/s: 333,333.33 ns, rounded up. */
    net_xfer y = net_start(fx.n, &c, 1, 1e6, on_done, &r, 8);
    ck_assert_int_eq(r.n, 0);
    ck_assert_double_eq(net_rate(fx.n, x), 0);            /* in its latency */
    ck_assert_double_eq(net_remaining_bytes(fx.n, x), 1e6);

    sim_run(fx.eng, 1500 + 50000);
    ck_assert_double_eq(net_rate(fx.n, x), 10 * GBPS);
    ck_assert_double_eq(net_remaining_bytes(fx.n, x), 5e5);
    ck_assert_double_eq(net_rate(fx.n, y), 3 * GBPS);

    sim_run(fx.eng, SIM_TIME_NEVER);
    ck_assert_int_eq(r.n, 2);
    ck_assert_int_eq(done_at(&r, 7), 1500 + 100000);
    ck_assert_int_eq(done_at(&r, 8), 333334);
    ck_assert_uint_eq(r.x[r.tag[0] == 7 ? 0 : 1], x);
    ck_assert_int_eq(net_live_count(fx.n), 0);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_net_two_equal_transfers_share_a_link_equally)
{
    fixture fx;
    fx_init(&fx);
    net_link l = net_add_link(fx.n, "nic", 1 * GBPS, 200);
    rec r = {0};
    net_xfer x = net_start(fx.n, &l, 1, 1e6, on_done, &r, 1);
    net_xfer y = net_start(fx.n, &l, 1, 1e6, on_done, &r, 2);
    sim_run(fx.eng, 1000);
    ck_assert_double_eq(net_rate(fx.n, x), 0.5 * GBPS);
    ck_assert_double_eq(net_rate(fx.n, y), 0.5 * GBPS);
    sim_run(fx.eng, SIM_TIME_NEVER);
    /* Both at latency + 2 bytes / bw, in start order. */
    ck_assert_int_eq(r.n, 2);
    ck_assert_int_eq(r.t[0], 200 + 2000000);
    ck_assert_int_eq(r.t[1], 200 + 2000000);
    ck_assert_int_eq(r.tag[0], 1);
    ck_assert_int_eq(r.tag[1], 2);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_net_short_transfer_finishes_first_then_long_speeds_up)
{
    fixture fx;
    fx_init(&fx);
    const double bw = 10 * GBPS, s = 1e6, l = 4e6;
    const sim_time_ns lat = 300;
    net_link link = net_add_link(fx.n, "link", bw, lat);
    rec r = {0};
    net_start(fx.n, &link, 1, s, on_done, &r, 1);
    net_xfer lx = net_start(fx.n, &link, 1, l, on_done, &r, 2);
    /* Short: s at bw/2 = 2 s / bw. Long: s moved by then, the rest at bw:
     * lat + 2 s / bw + (l - s) / bw = lat + (s + l) / bw. */
    sim_time_ns t_short = lat + (sim_time_ns)(2 * s / bw * 1e9);
    sim_time_ns t_long = lat + (sim_time_ns)((s + l) / bw * 1e9);
    ck_assert_int_eq(t_short, 300 + 200000);
    ck_assert_int_eq(t_long, 300 + 500000);
    sim_run(fx.eng, t_short);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.t[0], t_short);
    ck_assert_double_eq(net_rate(fx.n, lx), bw);
    ck_assert_double_eq(net_remaining_bytes(fx.n, lx), l - s);
    sim_run(fx.eng, SIM_TIME_NEVER);
    ck_assert_int_eq(r.n, 2);
    ck_assert_int_eq(r.t[1], t_long);
    fx_fini(&fx);
}
END_TEST

/* Four flows, three links, three different bottlenecks:
 *   L1 10 GB/s: A, B, D     L2 4 GB/s: B, C     L3 1 GB/s: C
 * Progressive filling: L3's share is 1 (C = 1); then L2 has 3 left for B
 * alone, L1 10/3 for three: B = 3 (L2 is B's bottleneck); then L1 has 7 for
 * A and D: 3.5 each. Every link ends full. */
START_TEST(test_net_max_min_rates_match_progressive_filling)
{
    fixture fx;
    fx_init(&fx);
    net_link l1 = net_add_link(fx.n, "L1", 10 * GBPS, 0);
    net_link l2 = net_add_link(fx.n, "L2", 4 * GBPS, 0);
    net_link l3 = net_add_link(fx.n, "L3", 1 * GBPS, 0);
    net_link pa[] = {l1}, pb[] = {l1, l2}, pc[] = {l2, l3}, pd[] = {l1};
    rec r = {0};
    net_xfer a = net_start(fx.n, pa, 1, 1e9, on_done, &r, 0);
    net_xfer b = net_start(fx.n, pb, 2, 1e9, on_done, &r, 1);
    net_xfer c = net_start(fx.n, pc, 2, 1e6, on_done, &r, 2);
    net_xfer d = net_start(fx.n, pd, 1, 1e9, on_done, &r, 3);
    sim_run(fx.eng, 0);
    ck_assert_double_eq(net_rate(fx.n, a), 3.5 * GBPS);
    ck_assert_double_eq(net_rate(fx.n, b), 3 * GBPS);
    ck_assert_double_eq(net_rate(fx.n, c), 1 * GBPS);
    ck_assert_double_eq(net_rate(fx.n, d), 3.5 * GBPS);
    /* C ends at 1e6 ns; then L2 is B's alone (4) but L1 gives B only its
     * fair third: 10/3 < 4, so A = B = D = 10/3. */
    sim_run(fx.eng, 1000000);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.t[0], 1000000);
    ck_assert_double_eq_tol(net_rate(fx.n, a), 10 * GBPS / 3, 1e-6);
    ck_assert_double_eq_tol(net_rate(fx.n, b), 10 * GBPS / 3, 1e-6);
    ck_assert_double_eq_tol(net_rate(fx.n, d), 10 * GBPS / 3, 1e-6);
    fx_fini(&fx);
}
END_TEST

typedef struct start_arg {
    net_link path[4];
    int n_links;
    double bytes;
    rec *r;
    int64_t tag;
    net_xfer x;
} start_arg;

static void act_start(fixture *fx, void *arg)
{
    start_arg *s = arg;
    s->x = net_start(fx->n, s->path, s->n_links, s->bytes, on_done, s->r, s->tag);
}

START_TEST(test_net_transfer_starting_while_others_flow)
{
    fixture fx;
    fx_init(&fx);
    net_link l = net_add_link(fx.n, "nic", 1 * GBPS, 500);
    rec r = {0};
    net_xfer a = net_start(fx.n, &l, 1, 2e6, on_done, &r, 1);
    /* At 1e6 B starts; it flows from 1e6 + 500, when A has 1e6 left. From
     * then on both move at 0.5 GB/s and need 2e6 ns: both end at 3e6 + 500
     * (a tie: start order). */
    start_arg sb = {.path = {l}, .n_links = 1, .bytes = 1e6, .r = &r, .tag = 2};
    action start_b = {.fn = act_start, .arg = &sb};
    at(&fx, 1000000, &start_b);
    sim_run(fx.eng, 1000000 + 499);
    ck_assert_double_eq(net_rate(fx.n, a), 1 * GBPS);
    ck_assert_double_eq(net_rate(fx.n, sb.x), 0);
    sim_run(fx.eng, 1000000 + 500);
    ck_assert_double_eq(net_rate(fx.n, a), 0.5 * GBPS);
    ck_assert_double_eq(net_rate(fx.n, sb.x), 0.5 * GBPS);
    ck_assert_double_eq(net_remaining_bytes(fx.n, a), 1e6);
    sim_run(fx.eng, SIM_TIME_NEVER);
    ck_assert_int_eq(r.n, 2);
    ck_assert_int_eq(r.t[0], 3000000 + 500);
    ck_assert_int_eq(r.t[1], 3000000 + 500);
    ck_assert_int_eq(r.tag[0], 1);
    ck_assert_int_eq(r.tag[1], 2);
    fx_fini(&fx);
}
END_TEST

typedef struct cancel_arg {
    net_xfer x;
    bool result;
    double remaining_before;
} cancel_arg;

static void act_cancel(fixture *fx, void *arg)
{
    cancel_arg *c = arg;
    c->remaining_before = net_remaining_bytes(fx->n, c->x);
    c->result = net_cancel(fx->n, c->x);
}

START_TEST(test_net_cancel_frees_bandwidth_for_the_others)
{
    fixture fx;
    fx_init(&fx);
    net_link l = net_add_link(fx.n, "nic", 1 * GBPS, 0);
    net_link slow = net_add_link(fx.n, "ssd", 1 * GBPS, 10000);
    rec r = {0};
    net_xfer a = net_start(fx.n, &l, 1, 2e6, on_done, &r, 1);
    net_xfer b = net_start(fx.n, &l, 1, 2e6, on_done, &r, 2);
    /* A transfer cancelled in its latency never touches its link. */
    net_xfer c = net_start(fx.n, &slow, 1, 1e6, on_done, &r, 3);
    cancel_arg ca = {.x = a}, cc = {.x = c};
    action cancel_a = {.fn = act_cancel, .arg = &ca};
    action cancel_c = {.fn = act_cancel, .arg = &cc};
    at(&fx, 1000000, &cancel_a);
    at(&fx, 5000, &cancel_c);
    sim_run(fx.eng, 1000000);
    /* At 1e6 each had moved 5e5 at 0.5 GB/s; B now has the link. */
    ck_assert(ca.result);
    ck_assert_double_eq(ca.remaining_before, 1.5e6);
    ck_assert(cc.result);
    ck_assert_double_eq(cc.remaining_before, 1e6);
    ck_assert_double_eq(net_rate(fx.n, b), 1 * GBPS);
    ck_assert(!net_cancel(fx.n, a));             /* already cancelled */
    sim_run(fx.eng, SIM_TIME_NEVER);
    /* B: 1.5e6 left at 1 GB/s from 1e6. A and C never report. */
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.tag[0], 2);
    ck_assert_int_eq(r.t[0], 2500000);
    net_link_stats st;
    net_link_stats_get(fx.n, l, sim_now(fx.eng), &st);
    ck_assert_double_eq(st.bytes, 0.5e6 + 2e6);
    net_link_stats_get(fx.n, slow, sim_now(fx.eng), &st);
    ck_assert_double_eq(st.bytes, 0);
    ck_assert_int_eq(st.flows_peak, 0);
    ck_assert(!net_cancel(fx.n, b));             /* finished */
    fx_fini(&fx);
}
END_TEST

START_TEST(test_net_zero_byte_and_zero_link_transfers)
{
    fixture fx;
    fx_init(&fx);
    net_link l = net_add_link(fx.n, "nic", 1 * GBPS, 700);
    rec r = {0};
    /* A local copy completes at now, but through the net's event. */
    net_xfer local = net_start(fx.n, NULL, 0, 1e9, on_done, &r, 1);
    ck_assert_int_eq(r.n, 0);
    ck_assert_double_eq(net_remaining_bytes(fx.n, local), 0);
    /* Zero bytes pays the latency and nothing more. */
    net_start(fx.n, &l, 1, 0, on_done, &r, 2);
    /* A local copy started at 300 completes at 300. */
    start_arg s = {.n_links = 0, .bytes = 5e6, .r = &r, .tag = 3};
    action later = {.fn = act_start, .arg = &s};
    at(&fx, 300, &later);
    sim_run(fx.eng, SIM_TIME_NEVER);
    ck_assert_int_eq(r.n, 3);
    ck_assert_int_eq(done_at(&r, 1), 0);
    ck_assert_int_eq(done_at(&r, 3), 300);
    ck_assert_int_eq(done_at(&r, 2), 700);
    net_link_stats st;
    net_link_stats_get(fx.n, l, sim_now(fx.eng), &st);
    ck_assert_double_eq(st.bytes, 0);
    ck_assert_int_eq(st.busy_ns, 0);
    ck_assert_int_eq(st.flows_peak, 0);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_net_stale_handles_are_detected)
{
    fixture fx;
    fx_init(&fx);
    net_link l = net_add_link(fx.n, "nic", 1 * GBPS, 0);
    rec r = {0};
    ck_assert(!net_cancel(fx.n, 0));
    ck_assert(!net_cancel(fx.n, UINT64_MAX));
    ck_assert_double_eq(net_remaining_bytes(fx.n, 0), -1);
    ck_assert_double_eq(net_rate(fx.n, 0), 0);

    net_xfer a = net_start(fx.n, &l, 1, 1000, on_done, &r, 1);
    ck_assert(!net_cancel(fx.n, a + 1));          /* a slot never issued */
    sim_run(fx.eng, SIM_TIME_NEVER);
    ck_assert_int_eq(r.n, 1);
    ck_assert_uint_eq(r.x[0], a);
    ck_assert(!net_cancel(fx.n, a));              /* finished */
    ck_assert_double_eq(net_remaining_bytes(fx.n, a), -1);

    /* The freed slot is reused: the old handle stays stale, the new one
     * works. */
    net_xfer b = net_start(fx.n, &l, 1, 1000, on_done, &r, 2);
    ck_assert_uint_ne(b, a);
    ck_assert_uint_eq((uint32_t)b, (uint32_t)a);  /* same slot */
    ck_assert(!net_cancel(fx.n, a));
    ck_assert_double_eq(net_remaining_bytes(fx.n, b), 1000);
    ck_assert(net_cancel(fx.n, b));
    ck_assert(!net_cancel(fx.n, b));              /* cancelled */
    sim_run(fx.eng, SIM_TIME_NEVER);
    ck_assert_int_eq(r.n, 1);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_net_link_stats_count_bytes_busy_time_and_backlog)
{
    fixture fx;
    fx_init(&fx);
    net_link l = net_add_link(fx.n, "pcie", 1 * GBPS, 1000);
    ck_assert_str_eq(net_link_name(fx.n, l), "pcie");
    ck_assert_int_eq(net_link_count(fx.n), 1);
    rec r = {0};
    net_link_stats st;
    /* A flows on [1000, 1e6 + 1000] at 1 byte/ns. */
    net_start(fx.n, &l, 1, 1e6, on_done, &r, 1);
    sim_run(fx.eng, 1000 + 500000);
    net_link_stats_get(fx.n, l, sim_now(fx.eng), &st);
    ck_assert_double_eq(st.bytes, 5e5);
    ck_assert_int_eq(st.busy_ns, 500000);
    /* Backlog falls from 1e6 to 5e5: integral 0.75e6 * 5e5. */
    ck_assert_double_eq(st.busy_bytes_ns, 3.75e11);
    ck_assert_int_eq(st.flows_now, 1);
    sim_run(fx.eng, 2000000);
    net_link_stats_get(fx.n, l, sim_now(fx.eng), &st);
    ck_assert_double_eq(st.bytes, 1e6);
    ck_assert_int_eq(st.busy_ns, 1000000);
    ck_assert_double_eq(st.busy_bytes_ns, 5e11);
    ck_assert_int_eq(st.flows_now, 0);
    ck_assert_int_eq(st.flows_peak, 1);

    /* B flows from 2e6 + 1000; C joins at 2.5e6 + 1000 when B has 5e5 left;
     * at 0.5 GB/s each B ends 1e6 later, then C has 5e5 left at 1 GB/s.
     * Busy [2e6 + 1000, 4e6 + 1000]: 2e6 more; the link is never idle in
     * between, so busy counts the overlap once. */
    start_arg sb = {.path = {l}, .n_links = 1, .bytes = 1e6, .r = &r, .tag = 2};
    start_arg sc = {.path = {l}, .n_links = 1, .bytes = 1e6, .r = &r, .tag = 3};
    action ab = {.fn = act_start, .arg = &sb}, ac = {.fn = act_start, .arg = &sc};
    at(&fx, 2000000, &ab);
    at(&fx, 2500000, &ac);
    sim_run(fx.eng, SIM_TIME_NEVER);
    ck_assert_int_eq(done_at(&r, 2), 3500000 + 1000);
    ck_assert_int_eq(done_at(&r, 3), 4000000 + 1000);
    sim_time_ns end = 5000000;
    sim_run(fx.eng, end);
    net_link_stats_get(fx.n, l, end, &st);
    ck_assert_double_eq(st.bytes, 3e6);
    ck_assert_int_eq(st.busy_ns, 3000000);
    ck_assert_int_eq(st.flows_peak, 2);
    /* Utilisation over [0, end]: 3e6 bytes / (1 GB/s * 5 ms) = 0.6. */
    ck_assert_double_eq_tol(st.bytes / (net_link_bytes_per_s(fx.n, l) * end / 1e9),
                            0.6, 1e-12);
    fx_fini(&fx);
}
END_TEST

/* --- order of ties ------------------------------------------------------ */

/* Four transfers that all finish at 1000, started in the order perm[]:
 *   0: 900 bytes on link a (latency 100, 1 GB/s);
 *   1: 0 bytes on link c (latency 1000);
 *   2: 750 bytes on link b (no latency), sharing b with transfer 3 (250
 *      bytes) until 500, so its completion is rescheduled at 500;
 *   3: 250 bytes on b: ends at 500.
 * Whatever the mechanism behind each, the three at 1000 report in start
 * order. */
static void run_ties(const int perm[4], rec *r)
{
    fixture fx;
    fx_init(&fx);
    net_link a = net_add_link(fx.n, "a", 1 * GBPS, 100);
    net_link b = net_add_link(fx.n, "b", 1 * GBPS, 0);
    net_link c = net_add_link(fx.n, "c", 1 * GBPS, 1000);
    for (int i = 0; i < 4; i++) {
        switch (perm[i]) {
        case 0: net_start(fx.n, &a, 1, 900, on_done, r, 0); break;
        case 1: net_start(fx.n, &c, 1, 0, on_done, r, 1); break;
        case 2: net_start(fx.n, &b, 1, 750, on_done, r, 2); break;
        case 3: net_start(fx.n, &b, 1, 250, on_done, r, 3); break;
        }
    }
    sim_run(fx.eng, SIM_TIME_NEVER);
    fx_fini(&fx);
}

START_TEST(test_net_ties_complete_in_start_order)
{
    static const int perms[][4] = {{0, 1, 2, 3}, {2, 1, 0, 3}, {3, 1, 2, 0},
                                   {1, 3, 0, 2}, {2, 0, 3, 1}};
    for (size_t p = 0; p < sizeof perms / sizeof perms[0]; p++) {
        rec r = {0};
        run_ties(perms[p], &r);
        ck_assert_int_eq(r.n, 4);
        ck_assert_int_eq(r.tag[0], 3);
        ck_assert_int_eq(r.t[0], 500);
        int k = 1;
        for (int i = 0; i < 4; i++) {
            if (perms[p][i] == 3)
                continue;
            ck_assert_int_eq(r.t[k], 1000);
            ck_assert_int_eq(r.tag[k], perms[p][i]);
            k++;
        }
    }
}
END_TEST

/* --- randomised runs on a small cluster topology ------------------------ */

enum { NODES = 4, MAXHOPS = 4 };

typedef struct topo {
    net_link nvl[NODES], nic[NODES], pcie[NODES], ssd[NODES], core, remote;
} topo;

static void topo_build(net *n, topo *t)
{
    char name[32];
    for (int i = 0; i < NODES; i++) {
        snprintf(name, sizeof name, "nvlink%d", i);
        t->nvl[i] = net_add_link(n, name, 450 * GBPS, 500);
        snprintf(name, sizeof name, "nic%d", i);
        t->nic[i] = net_add_link(n, name, 50 * GBPS, 2000);
        snprintf(name, sizeof name, "pcie%d", i);
        t->pcie[i] = net_add_link(n, name, 32 * GBPS, 1000);
        snprintf(name, sizeof name, "ssd%d", i);
        t->ssd[i] = net_add_link(n, name, 7 * GBPS, 20000);
    }
    t->core = net_add_link(n, "core", 100 * GBPS, 1000);
    t->remote = net_add_link(n, "remote", 10 * GBPS, 100000);
}

typedef struct xrec {
    net_link path[MAXHOPS];
    int n_links;
    double bytes;
    sim_time_ns start, lat, done;   /* done -1 until reported */
    net_xfer x;
    bool cancelled;
    double moved;                   /* bytes that crossed its links */
    int reports;
} xrec;

typedef struct many {
    fixture fx;
    topo t;
    gsl_rng *rng;
    xrec *xs;
    int nx, next;
    bool check_fairness;
    int fairness_checks;
    sim_time_ns last_done_t;
    int64_t last_done_tag;
    action start_act;
    bool order_ok;
} many;

/* The max-min condition, written out: every link's flowing total is within
 * its bandwidth, and every flowing transfer crosses a link that is full and
 * on which no transfer gets more than it. */
static void check_max_min(many *m)
{
    enum { L = 64 };
    int nl = net_link_count(m->fx.n);
    ck_assert_int_le(nl, L);
    double sum[L] = {0}, top[L] = {0};
    for (int i = 0; i < m->next; i++) {
        const xrec *x = &m->xs[i];
        double rate = net_rate(m->fx.n, x->x);
        for (int h = 0; h < x->n_links && rate > 0; h++) {
            sum[x->path[h]] += rate;
            if (rate > top[x->path[h]])
                top[x->path[h]] = rate;
        }
    }
    for (int l = 0; l < nl; l++)
        ck_assert(sum[l] <= net_link_bytes_per_s(m->fx.n, l) * (1 + 1e-9));
    for (int i = 0; i < m->next; i++) {
        const xrec *x = &m->xs[i];
        double rate = net_rate(m->fx.n, x->x);
        if (rate <= 0)
            continue;
        bool bottleneck = false;
        for (int h = 0; h < x->n_links; h++) {
            net_link l = x->path[h];
            if (sum[l] >= net_link_bytes_per_s(m->fx.n, l) * (1 - 1e-9) &&
                rate >= top[l] * (1 - 1e-9))
                bottleneck = true;
        }
        ck_assert_msg(bottleneck, "transfer %d has no bottleneck link", i);
    }
    m->fairness_checks++;
}

static void many_done(void *ctx, net_xfer x, int64_t tag, sim_time_ns now)
{
    many *m = ctx;
    xrec *r = &m->xs[tag];
    ck_assert_uint_eq(r->x, x);
    ck_assert(!r->cancelled);
    r->reports++;
    r->done = now;
    r->moved = r->n_links > 0 ? r->bytes : 0;
    /* Equal times report in start order (tags are in start order). */
    if (now == m->last_done_t && tag < m->last_done_tag)
        m->order_ok = false;
    m->last_done_t = now;
    m->last_done_tag = tag;
    if (m->check_fairness)
        check_max_min(m);
}

/* A random transfer: a KV move within a node or across nodes, a swap to
 * host memory, a load from SSD or from remote storage; a few empty or
 * local ones. */
static void random_transfer(many *m, xrec *x)
{
    gsl_rng *g = m->rng;
    const topo *t = &m->t;
    int i = (int)gsl_rng_uniform_int(g, NODES), j = (int)gsl_rng_uniform_int(g, NODES - 1);
    if (j >= i)
        j++;
    x->bytes = pow(10, 3 + 5 * gsl_rng_uniform(g));   /* 1 KB .. 100 MB */
    unsigned long kind = gsl_rng_uniform_int(g, 100);
    net_link *p = x->path;
    if (kind < 30) {
        p[0] = t->nvl[i];
        x->n_links = 1;
    } else if (kind < 60) {
        p[0] = t->nic[i], p[1] = t->core, p[2] = t->nic[j];
        x->n_links = 3;
    } else if (kind < 80) {
        p[0] = t->pcie[i];
        x->n_links = 1;
    } else if (kind < 90) {
        p[0] = t->ssd[i], p[1] = t->pcie[i];
        x->n_links = 2;
    } else if (kind < 95) {
        p[0] = t->remote, p[1] = t->nic[i], p[2] = t->pcie[i];
        x->n_links = 3;
        x->bytes /= 10;
    } else if (kind < 98) {
        p[0] = t->pcie[i];
        x->n_links = 1;
        x->bytes = 0;
    } else {
        x->n_links = 0;
    }
    x->lat = 0;
    for (int h = 0; h < x->n_links; h++)
        x->lat += net_link_latency_ns(m->fx.n, p[h]);
}

static void many_start(fixture *fx, void *arg)
{
    many *m = arg;
    xrec *x = &m->xs[m->next];
    x->start = sim_now(fx->eng);
    x->done = -1;
    x->x = net_start(fx->n, x->path, x->n_links, x->bytes, many_done, m, m->next);
    m->next++;
    if (m->next < m->nx) {
        /* Mean gap 2 us: a few hundred transfers in flight at once. */
        sim_time_ns gap = 1 + (sim_time_ns)(gsl_rng_uniform(m->rng) * 4000);
        at(fx, sim_now(fx->eng) + gap, &m->start_act);
    }
}

typedef struct cancel_job {
    many *m;
    int idx;
} cancel_job;

static void many_cancel_job(fixture *fx, void *arg)
{
    cancel_job *c = arg;
    if (c->idx >= c->m->next)
        return;                  /* not started yet */
    xrec *x = &c->m->xs[c->idx];
    if (x->cancelled) {          /* drawn twice */
        ck_assert(!net_cancel(fx->n, x->x));
        return;
    }
    double rem = net_remaining_bytes(fx->n, x->x);
    bool ok = net_cancel(fx->n, x->x);
    if (x->done >= 0) {
        ck_assert(!ok);          /* finished before the cancel */
        ck_assert_double_eq(rem, -1);
        return;
    }
    ck_assert(ok);
    ck_assert(rem >= 0);
    x->cancelled = true;
    x->moved = x->n_links > 0 ? x->bytes - rem : 0;
}

/* Runs nx random transfers, a tenth of them cancelled at a random time;
 * fills m->xs. */
static void many_run(many *m, int nx, uint64_t seed, bool fairness)
{
    memset(m, 0, sizeof *m);
    fx_init(&m->fx);
    topo_build(m->fx.n, &m->t);
    m->rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(m->rng, seed);
    m->nx = nx;
    m->xs = calloc((size_t)nx, sizeof *m->xs);
    m->check_fairness = fairness;
    m->last_done_t = -1;
    m->order_ok = true;
    for (int i = 0; i < nx; i++)
        random_transfer(m, &m->xs[i]);
    m->start_act = (action){.fn = many_start, .arg = m};
    at(&m->fx, 0, &m->start_act);
    /* Cancels at random times around the transfer's expected start (about
     * idx * 2 us): some land before it starts (skipped), some during its
     * latency, most while it flows, some after it ended (net_cancel must
     * then say false). */
    int ncancel = nx / 10;
    cancel_job *jobs = calloc((size_t)ncancel, sizeof *jobs);
    action *acts = calloc((size_t)ncancel, sizeof *acts);
    for (int k = 0; k < ncancel; k++) {
        jobs[k] = (cancel_job){m, (int)gsl_rng_uniform_int(m->rng, (unsigned long)nx)};
        acts[k] = (action){.fn = many_cancel_job, .arg = &jobs[k]};
        sim_time_ns t = (sim_time_ns)jobs[k].idx * 2000 +
                        (sim_time_ns)gsl_rng_uniform_int(m->rng, 200000);
        at(&m->fx, t, &acts[k]);
    }
    sim_run(m->fx.eng, SIM_TIME_NEVER);
    free(acts);
    free(jobs);
}

static void many_free(many *m)
{
    fx_fini(&m->fx);
    gsl_rng_free(m->rng);
    free(m->xs);
}

START_TEST(test_net_many_flows_complete_conserve_bytes_and_respect_bounds)
{
    enum { NX = 3000 };
    many m;
    many_run(&m, NX, 42, false);
    ck_assert_int_eq(m.next, NX);
    int nl = net_link_count(m.fx.n);
    double *want = calloc((size_t)nl, sizeof *want);
    int done = 0, cancelled = 0;
    for (int i = 0; i < NX; i++) {
        const xrec *x = &m.xs[i];
        if (x->cancelled) {
            ck_assert_int_eq(x->reports, 0);
            cancelled++;
        } else {
            /* Every transfer not cancelled reports exactly once, and no
             * sooner than its latency plus its bytes at its slowest link. */
            ck_assert_int_eq(x->reports, 1);
            double bw = INFINITY;
            for (int h = 0; h < x->n_links; h++)
                bw = fmin(bw, net_link_bytes_per_s(m.fx.n, x->path[h]));
            double alone_ns = x->n_links > 0 ? ceil(x->bytes * 1e9 / bw) : 0;
            ck_assert_int_ge(x->done, x->start + x->lat + (sim_time_ns)alone_ns - 1);
            done++;
        }
        for (int h = 0; h < x->n_links; h++)
            want[x->path[h]] += x->moved;
    }
    ck_assert_int_gt(cancelled, 100);
    ck_assert_int_eq(done + cancelled, NX);
    ck_assert_int_eq(net_live_count(m.fx.n), 0);
    ck_assert(m.order_ok);
    /* Bytes conserved on every link. */
    sim_time_ns end = sim_now(m.fx.eng);
    for (net_link l = 0; l < nl; l++) {
        net_link_stats st;
        net_link_stats_get(m.fx.n, l, end, &st);
        ck_assert_msg(fabs(st.bytes - want[l]) <= 1e-9 * want[l] + 1e-3,
                      "%s: %.17g bytes, transfers moved %.17g",
                      net_link_name(m.fx.n, l), st.bytes, want[l]);
        ck_assert_int_eq(st.flows_now, 0);
        ck_assert_int_le(st.busy_ns, end);
        /* Busy at least as long as the bytes take at full speed. */
        ck_assert(st.busy_ns >= st.bytes * 1e9 / net_link_bytes_per_s(m.fx.n, l) - 1);
    }
    /* Enough overlap to mean something. */
    net_link_stats st;
    net_link_stats_get(m.fx.n, m.t.core, end, &st);
    ck_assert_int_gt(st.flows_peak, 20);
    free(want);
    many_free(&m);
}
END_TEST

START_TEST(test_net_random_rates_are_max_min_fair)
{
    many m;
    many_run(&m, 600, 7, true);
    ck_assert_int_gt(m.fairness_checks, 400);
    many_free(&m);
}
END_TEST

START_TEST(test_net_identical_runs_complete_identically)
{
    enum { NX = 1500 };
    many a, b;
    many_run(&a, NX, 1234, false);
    many_run(&b, NX, 1234, false);
    for (int i = 0; i < NX; i++) {
        ck_assert_int_eq(a.xs[i].done, b.xs[i].done);
        ck_assert(a.xs[i].cancelled == b.xs[i].cancelled);
        ck_assert(memcmp(&a.xs[i].moved, &b.xs[i].moved, sizeof(double)) == 0);
    }
    for (net_link l = 0; l < net_link_count(a.fx.n); l++) {
        net_link_stats sa, sb;
        net_link_stats_get(a.fx.n, l, sim_now(a.fx.eng), &sa);
        net_link_stats_get(b.fx.n, l, sim_now(b.fx.eng), &sb);
        ck_assert(memcmp(&sa, &sb, sizeof sa) == 0);
    }
    many_free(&a);
    many_free(&b);
}
END_TEST

/* --- resources and misuse ----------------------------------------------- */

typedef struct chain {
    net *n;
    net_link l;
    int left;
    uint32_t max_slot;
} chain;

static void chain_done(void *ctx, net_xfer x, int64_t tag, sim_time_ns now)
{
    (void)tag;
    (void)now;
    chain *c = ctx;
    ck_assert_uint_le((uint32_t)x, c->max_slot);
    if (c->left-- > 0)
        net_start(c->n, &c->l, 1, 1000 + c->left % 7, chain_done, c, 0);
}

START_TEST(test_net_steady_state_reuses_slots)
{
    fixture fx;
    fx_init(&fx);
    chain c = {.n = fx.n, .l = net_add_link(fx.n, "l", 1 * GBPS, 10),
               .left = 20000, .max_slot = 8};
    /* Eight in flight at all times: each completion starts the next, so
     * slots (the handle's low 32 bits) 1..8 are all that is ever used. */
    for (int i = 0; i < 8; i++)
        net_start(fx.n, &c.l, 1, 1000 * (i + 1), chain_done, &c, 0);
    sim_run(fx.eng, SIM_TIME_NEVER);
    ck_assert_int_lt(c.left, 0);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_net_destroy_drops_live_transfers_and_its_event)
{
    fixture fx;
    fx_init(&fx);
    net_link l = net_add_link(fx.n, "l", 1 * GBPS, 10);
    rec r = {0};
    net_start(fx.n, &l, 1, 1e6, on_done, &r, 1);
    net_start(fx.n, &l, 1, 1e6, on_done, &r, 2);
    sim_run(fx.eng, 1000);
    ck_assert_uint_eq(sim_events_pending(fx.eng), 1);
    net_destroy(fx.n);
    fx.n = NULL;
    ck_assert_uint_eq(sim_events_pending(fx.eng), 0);
    sim_run(fx.eng, SIM_TIME_NEVER);
    ck_assert_int_eq(r.n, 0);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_net_path_naming_a_link_twice_aborts)
{
    fixture fx;
    fx_init(&fx);
    net_link a = net_add_link(fx.n, "a", 1 * GBPS, 0);
    net_link b = net_add_link(fx.n, "b", 1 * GBPS, 0);
    net_link path[] = {a, b, a};
    net_start(fx.n, path, 3, 100, NULL, NULL, 0);
}
END_TEST

START_TEST(test_net_unknown_link_aborts)
{
    fixture fx;
    fx_init(&fx);
    net_link a = net_add_link(fx.n, "a", 1 * GBPS, 0);
    net_link path[] = {a + 1};
    net_start(fx.n, path, 1, 100, NULL, NULL, 0);
}
END_TEST

/* One TCase per behaviour, named for it, so a failure names the behaviour. */
#define ADD_TEST(s, fn) ADD_TEST_SIGNAL(s, fn, 0)
#define ADD_TEST_SIGNAL(s, fn, sig)                                           \
    do {                                                                      \
        TCase *tc_ = tcase_create(#fn);                                       \
        tcase_set_timeout(tc_, 120);                                          \
        tcase_add_test_raise_signal(tc_, fn, sig);                            \
        suite_add_tcase(s, tc_);                                              \
    } while (0)

Suite *net_suite(void)
{
    Suite *s = suite_create("net");
    ADD_TEST(s, test_net_single_transfer_takes_latency_plus_bytes_over_bandwidth);
    ADD_TEST(s, test_net_two_equal_transfers_share_a_link_equally);
    ADD_TEST(s, test_net_short_transfer_finishes_first_then_long_speeds_up);
    ADD_TEST(s, test_net_max_min_rates_match_progressive_filling);
    ADD_TEST(s, test_net_transfer_starting_while_others_flow);
    ADD_TEST(s, test_net_cancel_frees_bandwidth_for_the_others);
    ADD_TEST(s, test_net_zero_byte_and_zero_link_transfers);
    ADD_TEST(s, test_net_stale_handles_are_detected);
    ADD_TEST(s, test_net_link_stats_count_bytes_busy_time_and_backlog);
    ADD_TEST(s, test_net_ties_complete_in_start_order);
    ADD_TEST(s, test_net_many_flows_complete_conserve_bytes_and_respect_bounds);
    ADD_TEST(s, test_net_random_rates_are_max_min_fair);
    ADD_TEST(s, test_net_identical_runs_complete_identically);
    ADD_TEST(s, test_net_steady_state_reuses_slots);
    ADD_TEST(s, test_net_destroy_drops_live_transfers_and_its_event);
    ADD_TEST_SIGNAL(s, test_net_path_naming_a_link_twice_aborts, SIGABRT);
    ADD_TEST_SIGNAL(s, test_net_unknown_link_aborts, SIGABRT);
    return s;
}
