/* The cluster (see cluster.h): wires the engine to the workload, the pools,
 * the links and the controller, owns the requests and moves them.
 *
 * Requests. Only one arrival is pending at a time: the arrival handler
 * routes the request and then reads the next one from the source, so memory
 * holds the requests in flight, not the trace. Requests come from slabs
 * through a free list and go back when they finish. An arrival is the
 * client sending the request: it reaches the router after the engine's
 * front end (API server and tokenisation, cs->frontend), an event of its
 * own when that takes time.
 *
 * Instances. The instance array and the views policies read are sized once,
 * for every instance the pools may ever have (their max_instances), so that
 * pointers into them never move. Instances fill nodes of gpus_per_node GPUs
 * in creation order; each has its own ports on the links (NVLink within its
 * node, the NIC across nodes, PCIe to host memory) and shares its node's
 * storage link.
 *
 * Moves. A move detaches the request from its instance (after the iteration
 * it is part of, if one is running) and then either drops its KV and queues
 * it at the destination (RECOMPUTE, or nothing computed yet), or reserves the
 * blocks at the destination, sends the KV over the links, and only then
 * releases the source's blocks and queues it at the destination (WITH_KV).
 * While the KV travels, the source's blocks are held by the move, not by the
 * request, which owns its destination blocks from the start.
 *
 * Housekeeping events (time-series samples, controller ticks) reschedule
 * themselves only while events of the run itself are pending, counted apart,
 * so they never keep the engine running once the run is over. */
#include "serve/cluster.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/ep.h"
#include "serve/offload.h"
#include "serve/cluster_core.h"
#include "serve/disagg.h"
#include "serve/migrate.h"
#include "serve/req.h"
#include "serve/stream.h"
#include "serve/route_oracle.h"
#include "traces/workload.h"

#define SLAB_REQS 1024
#define CONTROL_MAX_ACTIONS 4096
/* Idle stretches longer than this many intervals are not sampled. */
#define TS_MAX_IDLE_SAMPLES 10000

typedef struct pool {
    const pool_setup *ps;
    cost_setup cost_in;
    cost_model *cost;          /* one for all its instances: they price alike */
    cost_setup draft_in;       /* speculative decoding's drafter (serve/spec.h) */
    cost_model *draft_cost;    /* NULL unless the pool drafts with a model */
    void *route_state;
    int32_t *members;          /* every instance it has had, in creation order */
    int32_t n_members;
    int32_t *active;           /* its ACTIVE instances, by index */
    int32_t n_active;
    int32_t n_live;            /* not STOPPED (starting, active or draining) */
    pool_view view;
    uint64_t routed, finished; /* requests, for the autoscaler's windows */
} pool;

typedef struct slot {
    instance *inst;
    int32_t node;
    net_link nv_tx, nv_rx, nic_tx, nic_rx, pcie_d2h, pcie_h2d, storage;
    uint64_t moved_out;
    /* time series: the end and mean power of its latest iteration */
    sim_time_ns iter_end_ns;
    double iter_power_w;
} slot;

typedef struct move {
    struct move *next_free;
    cluster *c;
    req *r;
    int32_t from, to;
    serve_req holder;          /* the source's blocks while the KV travels */
    kv_req hold;
    sim_time_ns start_ns;      /* when the KV set off */
} move;

struct cluster {
    const cluster_setup *cs;
    sim_engine *eng;
    wl_source *wl;
    metrics metrics;
    net *net;
    pool *pools;
    int32_t n_pools;
    slot *slots;
    inst_view *views;
    int32_t n_inst, cap_inst;
    int32_t n_static;        /* instances made at creation */
    pool_view *pool_views;   /* one per pool, for controllers */
    int32_t nodes_used, node_gpus_used;
    net_link *node_storage;
    size_t node_cap;

    wl_request next;
    stream_metrics stream;   /* streamed prompts (serve/stream.h) */
    uint64_t arrived;
    uint64_t identity_salt;  /* makes content ids unique to the run */
    sim_err run_err;
    int failed, opened;
    int wl_waiting;          /* the source answered WL_WAIT (closed loop) */
    serve_req **parked;      /* arrivals with no active instance to go to */
    size_t parked_cap;
    int32_t n_parked;

    req **slabs;
    size_t n_slabs, slab_cap;
    req **free_reqs;
    size_t n_free, free_cap;
    move *free_moves;
    move **move_slabs;
    size_t n_move_slabs, move_slab_cap;

    /* The controller. */
    const control_policy_ops *control;
    void *control_state;
    control_action *actions;

    /* Time series (see "Time series" below); on_sample NULL when off. */
    ts_sample_fn on_sample;
    void *sample_ctx;
    iter_observer_fn observer;     /* the caller's */
    void *observer_ctx;
    uint64_t housekeeping_events;  /* run, for the summary's event count */
    int32_t housekeeping_pending;
    ts_instance *ts;

    cluster_counts counts;
    disagg *pd;              /* cluster.disagg given: hand-offs (serve/disagg.h) */
    migrate *mig;            /* live migration (serve/migrate.h) */

    gsl_rng *lifecycle_rng;   /* made at the first jittered provisioning */

    /* The autoscaler (see "The autoscaler" below); scale NULL when off. */
    const scale_policy_ops *scale;
    void *scale_state;
    scale_pool_view *scale_views;
    int32_t *desired;
    sim_time_ns *last_up_ns, *last_down_ns;   /* per pool, -1: never */
    uint64_t arrival_in_tokens, arrival_out_tokens;
    struct scale_mark {        /* the counters at the previous tick */
        sim_time_ns at;
        uint64_t arrived, in_tokens, out_tokens, completed, met_ttft, met_both;
        uint64_t *routed, *finished, *busy_ns;   /* per pool */
    } mark;
    route_oracle oracle;          /* metrics.router_oracle */
};

/* ---- requests --------------------------------------------------------------- */

static req *req_alloc(cluster *c)
{
    if (!c->n_free) {
        sim_grow((void **)&c->slabs, &c->slab_cap, c->n_slabs + 1, sizeof *c->slabs);
        req *slab = sim_xcalloc(SLAB_REQS, sizeof *slab);
        c->slabs[c->n_slabs++] = slab;
        sim_grow((void **)&c->free_reqs, &c->free_cap, SLAB_REQS, sizeof *c->free_reqs);
        for (int i = SLAB_REQS - 1; i >= 0; i--)
            c->free_reqs[c->n_free++] = &slab[i];
    }
    return c->free_reqs[--c->n_free];
}

static void schedule_next_arrival(cluster *c);

/* A hook that receives results failed: stop the run. */
static void sink_failed(cluster *c, const char *what)
{
    if (c->failed)
        return;
    c->failed = 1;
    sim_errf(&c->run_err, "the %s sink failed; the run stopped", what);
    sim_stop(c->eng);
}

static void on_finished(void *ctx, instance *inst, serve_req *r)
{
    cluster *c = ctx;
    if (c->metrics.sink_failed)
        sink_failed(c, "request record");
    stream_finished(&c->stream, req_of(r));
    sim_grow((void **)&c->free_reqs, &c->free_cap, c->n_free + 1, sizeof *c->free_reqs);
    c->free_reqs[c->n_free++] = req_of(r);
    if (req_of(r)->mig)
        migrate_on_finished(c->mig, r);
    if (c->pd)
        disagg_on_freed(c->pd);
    /* A closed-loop client sends its next request once it has received
     * the last token: after the engine's streaming delay. */
    c->pools[c->views[instance_index(inst)].pool].finished++;
    const pool_setup *ps = c->pools[c->views[instance_index(inst)].pool].ps;
    sim_time_ns received = sim_now(c->eng) + (sim_time_ns)llround(engine_stream_ns(&ps->engine));
    if (wl_source_complete_session(c->wl, received, r->session_id) && c->wl_waiting)
        schedule_next_arrival(c);
}

static move *move_alloc(cluster *c)
{
    if (!c->free_moves) {
        sim_grow((void **)&c->move_slabs, &c->move_slab_cap, c->n_move_slabs + 1,
                 sizeof *c->move_slabs);
        move *slab = sim_xcalloc(64, sizeof *slab);
        c->move_slabs[c->n_move_slabs++] = slab;
        for (int i = 63; i >= 0; i--) {
            slab[i].next_free = c->free_moves;
            c->free_moves = &slab[i];
        }
    }
    move *m = c->free_moves;
    c->free_moves = m->next_free;
    return m;
}

static void move_free(cluster *c, move *m)
{
    m->next_free = c->free_moves;
    c->free_moves = m;
}

/* ---- pools and their active lists --------------------------------------------- */

static bool takes_arrivals(const pool *p)
{
    return p->ps->role == POOL_MIXED || p->ps->role == POOL_PREFILL;
}

static void rebuild_active(cluster *c, pool *p)
{
    p->n_active = 0;
    for (int32_t k = 0; k < p->n_members; k++)
        if (c->views[p->members[k]].state == INST_ACTIVE)
            p->active[p->n_active++] = p->members[k];
    p->view.n_active = p->n_active;
    p->view.n_instances = p->n_members;
    c->pool_views[p - c->pools] = p->view;
}

static int32_t least_loaded(const cluster *c, const pool *p, int32_t except)
{
    int32_t best = -1;
    for (int32_t k = 0; k < p->n_active; k++) {
        int32_t i = p->active[k];
        if (i != except && (best < 0 || c->views[i].outstanding_tokens <
                                        c->views[best].outstanding_tokens))
            best = i;
    }
    return best;
}

/* The pool an arrival goes to: among the pools that take arrivals and have
 * an active instance, the first, or the one with the fewest outstanding
 * tokens per active instance (ties: the first). -1 when none. */
static int32_t pick_pool(const cluster *c)
{
    int32_t best = -1;
    double best_load = 0;
    for (int32_t k = 0; k < c->n_pools; k++) {
        const pool *p = &c->pools[k];
        if (!takes_arrivals(p) || p->n_active == 0)
            continue;
        if (c->cs->pool_choice == POOL_CHOICE_FIRST)
            return k;
        double load = 0;
        for (int32_t j = 0; j < p->n_active; j++)
            load += (double)c->views[p->active[j]].outstanding_tokens;
        load /= p->n_active;
        if (best < 0 || load < best_load)
            best = k, best_load = load;
    }
    return best;
}

static int32_t route_cached_tokens(const route_view *v, int32_t i, const serve_req *r);
static int32_t route_prompt_hashes(const route_view *v, const serve_req *r, int32_t block,
                                   const uint64_t **out);
static double route_lora_affinity(const route_view *v, int32_t i, const serve_req *r);

static void route_to_instance(cluster *c, serve_req *r, int32_t k)
{
    pool *p = &c->pools[k];
    route_view view = {.now = sim_now(c->eng), .inst = c->views, .n_instances = c->n_inst,
                       .candidates = p->active, .n_candidates = p->n_active,
                       .cached_tokens = route_cached_tokens,
                       .prompt_hashes = route_prompt_hashes, .core = c,
                       .lora_affinity = route_lora_affinity};
    int32_t pick = p->ps->route_policy.ops->route(p->route_state, &view, r);
    if (c->cs->router_oracle)
        route_oracle_observe(&c->oracle, &view, r, pick);
    bool ok = false;
    for (int32_t j = 0; j < p->n_active && !ok; j++)
        ok = p->active[j] == pick;
    SIM_ASSERT_AT(view.now, ok);   /* a routing policy must pick a candidate */
    r->instance = pick;
    p->routed++;
    instance_enqueue(c->slots[pick].inst, r);
}

/* Routes r, or parks it until an instance becomes active. */
static void dispatch(cluster *c, serve_req *r)
{
    int32_t k = pick_pool(c);
    if (k < 0) {
        sim_grow((void **)&c->parked, &c->parked_cap, (size_t)c->n_parked + 1,
                 sizeof *c->parked);
        c->parked[c->n_parked++] = r;
        return;
    }
    route_to_instance(c, r, k);
}

static void unpark(cluster *c)
{
    int32_t n = c->n_parked;
    c->n_parked = 0;
    for (int32_t i = 0; i < n; i++)
        dispatch(c, c->parked[i]);
}

/* ---- arrivals ------------------------------------------------------------------- */

/* Reads the next request and schedules its arrival; stops the run on a
 * workload error. A closed-loop source may answer WL_WAIT: nothing is due
 * until the time it names (polled then) or until a request finishes. */
static void schedule_next_arrival(cluster *c)
{
    int rc = wl_source_next(c->wl, sim_now(c->eng), &c->next, &c->run_err);
    c->wl_waiting = rc == WL_WAIT;
    if (rc < 0) {
        c->failed = 1;
        sim_stop(c->eng);
    } else if (rc == WL_REQUEST) {
        sim_schedule(c->eng, c->next.arrival_ns, PHASE_ARRIVAL, EV_ARRIVAL, c, 0);
    } else if (rc == WL_WAIT && c->next.arrival_ns != SIM_TIME_NEVER) {
        sim_schedule(c->eng, c->next.arrival_ns, PHASE_ARRIVAL, EV_WORKLOAD_POLL, c, 0);
    }
}

void cluster_on_poll(sim_engine *eng, void *ctx, const sim_event *ev);
void cluster_on_poll(sim_engine *eng, void *ctx, const sim_event *ev)
{
    (void)eng, (void)ctx;
    cluster *c = ev->data;
    if (c->wl_waiting)
        schedule_next_arrival(c);
}

/* The request's content identity for the prefix cache (serve/kv.h): its
 * chained prefix ids, copied (the source's are valid only until its next
 * request), and an id for the rest of its tokens, unique in the run. */
static void set_identity(cluster *c, req *q)
{
    const wl_request *w = &c->next;
    int32_t n = w->n_prefix_blocks, id_tokens = 0;
    if (n > 0) {
        if (n > q->ids_cap) {
            q->ids = sim_xrealloc(q->ids, (size_t)n * sizeof *q->ids);
            q->ids_cap = n;
        }
        memcpy(q->ids, w->prefix_blocks, (size_t)n * sizeof *q->ids);
        int64_t covered = (int64_t)n * w->prefix_block_tokens;
        id_tokens = covered < q->pub.input_tokens ? (int32_t)covered : q->pub.input_tokens;
        if (w->prefix_id_tokens > 0) {   /* may cover the output too */
            int64_t most = (int64_t)q->pub.input_tokens + q->pub.output_tokens;
            id_tokens = (int32_t)(covered < w->prefix_id_tokens ? covered : w->prefix_id_tokens);
            if (id_tokens > most)
                id_tokens = (int32_t)most;
        }
    }
    kv_req_init(&q->kv, n > 0 ? q->ids : NULL, id_tokens, w->prefix_block_tokens,
                sim_hash_mix(c->identity_salt, q->pub.id));
    q->pub.prefix_ids = n > 0 ? q->ids : NULL;
    q->pub.n_prefix_ids = n > 0 ? n : 0;
    q->pub.prefix_id_block_tokens = n > 0 ? w->prefix_block_tokens : 0;
    q->lora_adapter = -1;
    /* Speculative decoding's acceptance from the trace (serve/spec.c). */
    q->spec_alpha_set = w->spec_alpha_set;
    q->spec_alpha = w->spec_alpha;
    q->n_spec_acc = w->n_spec_accepted;
    q->spec_steps = 0;
    if (w->n_spec_accepted > q->spec_acc_cap) {
        q->spec_acc = sim_xrealloc(q->spec_acc, (size_t)w->n_spec_accepted);
        q->spec_acc_cap = w->n_spec_accepted;
    }
    if (w->n_spec_accepted)
        memcpy(q->spec_acc, w->spec_accepted, (size_t)w->n_spec_accepted);
}

/* The instances the run starts with begin at its first arrival; those a
 * pool grows by begin when they are made. */
static void open_static_instances(cluster *c, sim_time_ns now)
{
    c->opened = 1;
    for (int32_t i = 0; i < c->n_static; i++)
        instance_open(c->slots[i].inst, now);
}

/* Streamed prompts need batch policies that handle them (api/batch.h,
 * streams) in every pool that takes arrivals; otherwise the run stops. */
static bool streams_ok(cluster *c, sim_time_ns now)
{
    for (int32_t k = 0; k < c->n_pools; k++) {
        const pool_setup *ps = c->pools[k].ps;
        if (ps->role != POOL_DECODE && !ps->batch_policy.ops->streams) {
            if (!c->failed)
                sim_errf(&c->run_err, "workload: a streamed prompt (trace column chunks) "
                         "arrived at %.3f s, but pool %s's batch policy %s does not stream "
                         "prompts (use stream2llm)", now / 1e9, ps->name,
                         ps->batch_policy.ops->name);
            c->failed = 1;
            sim_stop(c->eng);
            return false;
        }
    }
    return true;
}

void cluster_on_arrival(sim_engine *eng, void *ctx, const sim_event *ev);
void cluster_on_arrival(sim_engine *eng, void *ctx, const sim_event *ev)
{
    (void)ctx;
    cluster *c = ev->data;
    sim_time_ns now = sim_now(eng);
    if (!c->opened)
        open_static_instances(c, now);
    req *q = req_alloc(c);
    serve_req *r = &q->pub;
    *r = (serve_req){
        .id = c->arrived++,
        .arrival_ns = now,
        .input_tokens = c->next.input_tokens,
        .output_tokens = c->next.output_tokens,
        .instance = -1,
        .priority = c->next.priority,
        .slo_class = c->next.slo_class,
        .tenant = c->next.tenant,
        .ttft_deadline_ns = now + (c->next.ttft_slo_ns ? c->next.ttft_slo_ns
                                                       : c->cs->slo_ttft_ns),
        .state = REQ_WAITING,
        .first_scheduled_ns = -1,
        .first_token_ns = -1,
        .prefix_group = c->next.n_prefix_blocks ? c->next.prefix_blocks[0] : 0,
        .session_id = c->next.session_id,
        .turn = c->next.turn,
        .session_last = c->next.session_last,
        .session_start_ns = c->next.session_start_ns,
        .session_gap_ns = c->next.session_gap_ns,
        .session_root = c->next.session_root,
        .call_group = c->next.call_group,
        .deadline_ns = c->next.deadline_ns ? now + c->next.deadline_ns : 0,
    };
    q->move_to = -1;
    q->op_credit_ns = 0;
    q->load_stall_ns = 0;
    set_identity(c, q);
    stream_begin(c->eng, q, &c->next, now);
    if (q->n_chunks > 1 && !streams_ok(c, now))
        return;
    metrics_arrival(&c->metrics, r);
    c->arrival_in_tokens += (uint64_t)r->input_tokens;
    c->arrival_out_tokens += (uint64_t)r->output_tokens;
    sim_time_ns front = (sim_time_ns)llround(engine_frontend_ns(&c->cs->frontend,
                                                                r->input_tokens));
    if (front > 0)
        sim_schedule(c->eng, now + front, PHASE_ARRIVAL, EV_FRONTEND, r, 0);
    else
        dispatch(c, r);
    schedule_next_arrival(c);
}

/* A request through the front end reaches the router. */
void cluster_on_frontend(sim_engine *eng, void *ctx, const sim_event *ev);
void cluster_on_frontend(sim_engine *eng, void *ctx, const sim_event *ev)
{
    (void)eng;
    dispatch(ctx, ev->data);
}

/* ---- moves ---------------------------------------------------------------------- */

/* The links a transfer from instance a to instance b crosses. */
static int move_path(const cluster *c, int32_t a, int32_t b, net_link path[2])
{
    const slot *x = &c->slots[a], *y = &c->slots[b];
    if (x->node == y->node) {
        path[0] = x->nv_tx, path[1] = y->nv_rx;
    } else {
        path[0] = x->nic_tx, path[1] = y->nic_rx;
    }
    return 2;
}

static void on_move_done(void *ctx, net_xfer x, int64_t tag, sim_time_ns now)
{
    (void)x, (void)tag;
    move *m = ctx;
    cluster *c = m->c;
    if (m->r->pub.generated_tokens == 0)   /* TTFT's loading part: its KV travelled */
        m->r->load_stall_ns += now - m->start_ns;
    instance_release_kv(c->slots[m->from].inst, &m->holder, &m->hold);
    kv_req_fini(&m->hold);   /* its block table: the slot is reused */
    c->counts.moves_done++;
    c->slots[m->from].moved_out++;
    instance_attach(c->slots[m->to].inst, &m->r->pub);
    move_free(c, m);
}

/* A detached request continues its move (the instance reports the detach,
 * at once or when the iteration it was part of ended). */
static void on_detached(void *ctx, instance *src_inst, serve_req *r)
{
    cluster *c = ctx;
    req *q = req_of(r);
    int32_t from = instance_index(src_inst), to = q->move_to;
    if (q->move_mode == MOVE_PD_HANDOFF) {
        disagg_on_detached(c->pd, from, r);
        return;
    }
    if (q->move_mode == MOVE_LIVE) {
        migrate_on_detached(c->mig, from, r);
        return;
    }
    if (q->pd)
        disagg_forget(c->pd, r);
    instance *dst = c->slots[to].inst;
    q->move_to = -1;
    if (instance_state(dst) != INST_ACTIVE) {   /* the destination went away */
        c->counts.moves_aborted++;
        instance_attach(src_inst, r);
        return;
    }
    if (q->move_mode == MOVE_RECOMPUTE || r->computed_tokens == 0) {
        instance_release_kv(src_inst, r, &q->kv);
        r->computed_tokens = 0;
        c->counts.moves_done++;
        c->slots[from].moved_out++;
        instance_attach(dst, r);
        return;
    }
    /* With its KV: the move holds the source's blocks, the request gets
     * the destination's. */
    move *m = move_alloc(c);
    *m = (move){.c = c, .r = q, .from = from, .to = to, .start_ns = sim_now(c->eng)};
    m->holder.kv_blocks = r->kv_blocks;
    kv_settle(instance_kv_mut(src_inst), &q->kv);
    m->hold.table = q->kv.table;
    m->hold.table_cap = q->kv.table_cap;
    q->kv.table = NULL;
    q->kv.table_cap = 0;
    r->kv_blocks = 0;
    r->kv_cap_tokens = 0;
    if (!instance_reserve(dst, r)) {
        /* No room at the destination: the request keeps its blocks and
         * goes back to its queue. */
        q->kv.table = m->hold.table;
        q->kv.table_cap = m->hold.table_cap;
        m->hold = (kv_req){0};   /* the table is the request's again */
        r->kv_blocks = m->holder.kv_blocks;
        r->kv_cap_tokens = r->kv_blocks * c->pools[c->views[from].pool].ps->batch.block_size_tokens;
        move_free(c, m);
        c->counts.moves_aborted++;
        instance_attach(src_inst, r);
        return;
    }
    const pool_setup *ps = c->pools[c->views[from].pool].ps;
    double bytes = (double)r->computed_tokens *
                   llm_kv_bytes_per_token_per_gpu(&ps->model, &ps->par) * par_gpus(&ps->par);
    c->counts.move_bytes += (uint64_t)bytes;
    net_link path[2];
    int n = move_path(c, from, to, path);
    net_start(c->net, path, n, bytes, on_move_done, m, 0);
}

bool cluster_move(cluster *c, serve_req *r, int32_t to, move_mode mode)
{
    if (r->state != REQ_WAITING && r->state != REQ_RUNNING)
        return false;
    if (to < 0 || to >= c->n_inst || to == r->instance || c->views[to].state != INST_ACTIVE)
        return false;
    req *q = req_of(r);
    if (q->move_to >= 0 || q->pd)
        return false;   /* a move or a hand-off is already under way */
    if (mode == MOVE_LIVE && !(r->state == REQ_RUNNING && req_is_decode(r)))
        mode = MOVE_WITH_KV;   /* only a decoding request migrates live */
    q->move_to = to;
    q->move_mode = (int8_t)mode;
    c->counts.moves_started++;
    if (mode == MOVE_LIVE)
        return migrate_start(c->mig, r, to);
    instance_detach(c->slots[r->instance].inst, r);
    return true;
}

/* A prefill-only instance produced r's first token: r goes on decoding in
 * the decode pool, on its least loaded active instance, with its KV. With no
 * decode instance active, it stays and decodes where it is. */
static void on_prefill_done(void *ctx, instance *inst, serve_req *r)
{
    cluster *c = ctx;
    if (c->pd) {
        disagg_on_prefill_done(c->pd, instance_index(inst), r);
        return;
    }
    int32_t best = -1;
    for (int32_t k = 0; k < c->n_pools; k++) {
        const pool *p = &c->pools[k];
        if (p->ps->role != POOL_DECODE)
            continue;
        int32_t i = least_loaded(c, p, -1);
        if (i >= 0 && (best < 0 || c->views[i].outstanding_tokens <
                                   c->views[best].outstanding_tokens))
            best = i;
    }
    if (best >= 0 && cluster_move(c, r, best, MOVE_WITH_KV))
        c->counts.handoffs++;
}

/* ---- lifecycle --------------------------------------------------------------------- */

static void place_on_node(cluster *c, slot *s, int32_t gpus)
{
    int32_t per_node = c->cs->topology.gpus_per_node;
    if (c->nodes_used == 0 || c->node_gpus_used + gpus > per_node) {
        c->nodes_used += gpus > per_node ? (gpus + per_node - 1) / per_node : 1;
        c->node_gpus_used = 0;
    }
    c->node_gpus_used += gpus;
    s->node = c->nodes_used - 1;
    if ((size_t)s->node >= c->node_cap) {
        size_t old = c->node_cap;
        sim_grow((void **)&c->node_storage, &c->node_cap, (size_t)s->node + 1,
                 sizeof *c->node_storage);
        for (size_t i = old; i < c->node_cap; i++)
            c->node_storage[i] = -1;
    }
    if (c->node_storage[s->node] < 0) {
        char name[48];
        snprintf(name, sizeof name, "node%d.storage", s->node);
        c->node_storage[s->node] = net_add_link(c->net, name,
                                                c->cs->topology.storage_bytes_per_s,
                                                c->cs->topology.storage_latency_ns);
    }
    s->storage = c->node_storage[s->node];
}

static void add_links(cluster *c, slot *s, int32_t i, const pool_setup *ps)
{
    const topology_setup *t = &c->cs->topology;
    double g = par_gpus(&ps->par);
    double nv = ps->gpu.nvlink_bw_bytes_per_s > 0 ? ps->gpu.nvlink_bw_bytes_per_s
                                                   : ps->gpu.pcie_bw_bytes_per_s;
    char name[64];
#define LINK(field, what, bw, lat)                                              \
    snprintf(name, sizeof name, "inst%d.%s", i, what);                          \
    s->field = net_add_link(c->net, name, (bw) * g, (lat))
    LINK(nv_tx, "nvlink_tx", nv, t->nvlink_latency_ns);
    LINK(nv_rx, "nvlink_rx", nv, t->nvlink_latency_ns);
    LINK(nic_tx, "nic_tx", t->nic_bytes_per_s, t->nic_latency_ns);
    LINK(nic_rx, "nic_rx", t->nic_bytes_per_s, t->nic_latency_ns);
    LINK(pcie_d2h, "pcie_d2h", ps->gpu.pcie_bw_bytes_per_s, t->pcie_latency_ns);
    LINK(pcie_h2d, "pcie_h2d", ps->gpu.pcie_bw_bytes_per_s, t->pcie_latency_ns);
#undef LINK
}

static void on_iteration(void *ctx, const iter_info *it);
static void on_emptied(void *ctx, instance *inst);

/* Creates instance number c->n_inst in pool k, in state `state`. */
static int add_instance(cluster *c, int32_t k, inst_state state, sim_err *err)
{
    pool *p = &c->pools[k];
    int32_t i = c->n_inst;
    SIM_ASSERT(i < c->cap_inst);
    slot *s = &c->slots[i];
    place_on_node(c, s, par_gpus(&p->ps->par));
    add_links(c, s, i, p->ps);
    instance_setup setup = {
        .index = i,
        .pool = k,
        .ps = p->ps,
        .cost = p->cost,
        .draft_cost = p->draft_cost,
        .order_seed = sim_stream_seed(c->cs->seed, STREAM_ORDER_BASE + (uint64_t)i),
        .metrics = &c->metrics,
        .view = &c->views[i],
        .net = c->net,
        .pcie_d2h = s->pcie_d2h,
        .pcie_h2d = s->pcie_h2d,
        .hooks = {.ctx = c, .finished = on_finished, .prefill_done = on_prefill_done,
                  .detached = on_detached, .emptied = on_emptied,
                  .observer = c->observer || c->on_sample || c->pd ? on_iteration : NULL,
                  .observer_ctx = c},
        .state = state,
    };
    instance *partner = NULL;
    if (c->pd && disagg_semi_pd(c->pd)) {
        /* semi-PD: decode instance k shares prefill instance k's GPUs and KV. */
        disagg_semi_scales(c->pd, p->ps->role, &setup.gpu_time_scale, &setup.energy_scale,
                           &setup.sm_share);
        if (p->ps->role == POOL_DECODE) {
            const pool *pp = &c->pools[disagg_prefill_pool(c->pd)];
            SIM_ASSERT(p->n_members < pp->n_members);
            partner = c->slots[pp->members[p->n_members]].inst;
            setup.shared_kv = instance_kv_mut(partner);
            setup.no_idle_power = true;
            s->node = c->slots[pp->members[p->n_members]].node;
        }
    }
    s->inst = instance_create(c->eng, &setup, err);
    if (!s->inst)
        return -1;
    if (partner)
        instance_set_partner(partner, s->inst);
    c->n_inst++;
    p->members[p->n_members++] = i;
    p->n_live++;
    rebuild_active(c, p);
    return 0;
}

static void set_state(cluster *c, int32_t i, inst_state st)
{
    instance_set_state(c->slots[i].inst, st, sim_now(c->eng));
    pool *p = &c->pools[c->views[i].pool];
    if (st == INST_STOPPED)
        p->n_live--;
    rebuild_active(c, p);
    if (st == INST_ACTIVE && c->n_parked)
        unpark(c);
    if (st == INST_ACTIVE && c->pd)
        disagg_on_freed(c->pd);   /* a new decode instance may take waiting hand-offs */
}

static void on_weights_loaded(void *ctx, net_xfer x, int64_t i, sim_time_ns now)
{
    (void)x;
    cluster *c = ctx;
    set_state(c, (int32_t)i, INST_WARMING);
    const pool_setup *ps = c->pools[c->views[i].pool].ps;
    sim_schedule(c->eng, now + ps->lifecycle.init_ns, PHASE_LIFECYCLE, EV_LIFECYCLE,
                 c->slots[i].inst, INST_ACTIVE);
}

/* The links instance i's weights cross (lifecycle_setup.source): its node's
 * storage, its own host link, or from the pool's first active instance as a
 * move's KV would (from storage when there is none). */
static int load_path(const cluster *c, int32_t i, net_link path[2])
{
    const pool *p = &c->pools[c->views[i].pool];
    switch (p->ps->lifecycle.source) {
    case LOAD_HOST:
        path[0] = c->slots[i].pcie_h2d;
        return 1;
    case LOAD_PEER:
        if (p->n_active > 0)
            return move_path(c, p->active[0], i, path);
        break;
    case LOAD_STORAGE:
        break;
    }
    path[0] = c->slots[i].storage;
    return 1;
}

void cluster_on_lifecycle(sim_engine *eng, void *ctx, const sim_event *ev);
void cluster_on_lifecycle(sim_engine *eng, void *ctx, const sim_event *ev)
{
    (void)eng;
    cluster *c = ctx;
    int32_t i = instance_index(ev->data);
    inst_state st = (inst_state)ev->arg;
    if (instance_state(c->slots[i].inst) == INST_STOPPED)
        return;
    set_state(c, i, st);
    if (st == INST_LOADING) {
        const pool_setup *ps = c->pools[c->views[i].pool].ps;
        double bytes = ps->lifecycle.weight_bytes_per_gpu * par_gpus(&ps->par);
        net_link path[2];
        int n = load_path(c, i, path);
        net_start(c->net, path, n, bytes, on_weights_loaded, c, i);
    }
}

static void on_emptied(void *ctx, instance *inst)
{
    cluster *c = ctx;
    int32_t i = instance_index(inst);
    if (c->views[i].state == INST_DRAINING)
        set_state(c, i, INST_STOPPED);
}

/* How long a node takes to come up: the pool's provision time, uniform
 * within +- its jitter (its own random stream, so that other components'
 * numbers do not move). */
static sim_time_ns provision_ns(cluster *c, const pool_setup *ps)
{
    sim_time_ns j = ps->lifecycle.provision_jitter_ns;
    if (j <= 0)
        return ps->lifecycle.provision_ns;
    if (!c->lifecycle_rng)
        c->lifecycle_rng = sim_rng(c->eng, STREAM_LIFECYCLE);
    double u = 2 * gsl_rng_uniform(c->lifecycle_rng) - 1;
    return ps->lifecycle.provision_ns + (sim_time_ns)llround(u * (double)j);
}

/* Drain with migration: instance i's running requests move, with their KV,
 * to the pool's other active instances in turn (a destination's load shows
 * only once a request arrives, so least-loaded would send them all to one).
 * A move that cannot start, or whose destination has no room for the KV,
 * leaves the request to finish here. */
static void migrate_running(cluster *c, pool *p, int32_t i)
{
    int32_t n;
    const serve_req *const *run = instance_running(c->slots[i].inst, &n);
    if (n == 0 || p->n_active == 0)
        return;
    serve_req **copy = sim_xmalloc((size_t)n * sizeof *copy);
    memcpy(copy, run, (size_t)n * sizeof *copy);   /* moves change the set */
    for (int32_t k = 0, j = 0; k < n; k++, j++)
        cluster_move(c, copy[k], p->active[j % p->n_active], MOVE_WITH_KV);
    free(copy);
}

static int32_t newest_in_state(const cluster *c, const pool *p, inst_state st)
{
    for (int32_t m = p->n_members - 1; m >= 0; m--)
        if (c->views[p->members[m]].state == st)
            return p->members[m];
    return -1;
}

static int32_t oldest_in_state(const cluster *c, const pool *p, inst_state st)
{
    for (int32_t m = 0; m < p->n_members; m++)
        if (c->views[p->members[m]].state == st)
            return p->members[m];
    return -1;
}

int32_t cluster_scale(cluster *c, int32_t k, int32_t delta)
{
    SIM_ASSERT(k >= 0 && k < c->n_pools);
    pool *p = &c->pools[k];
    const pool_setup *ps = p->ps;
    sim_time_ns now = sim_now(c->eng);
    int32_t done = 0;
    while (delta > 0) {
        /* Cheapest first: a draining instance goes back to work; then a
         * stopped one starts again in its slot (cold, through the whole
         * lifecycle); then a new one. */
        int32_t i = newest_in_state(c, p, INST_DRAINING);
        if (i >= 0) {
            set_state(c, i, INST_ACTIVE);
        } else if (p->n_live >= ps->max_instances) {
            break;
        } else if ((i = oldest_in_state(c, p, INST_STOPPED)) >= 0) {
            p->n_live++;
            set_state(c, i, INST_PROVISIONING);
        } else if (c->n_inst < c->cap_inst && p->n_members < ps->max_instances) {
            sim_err err = {{0}};
            /* The pool's settings were checked when its first instances
             * were made; making another one cannot fail. */
            SIM_ASSERT(add_instance(c, k, INST_PROVISIONING, &err) == 0);
            i = c->n_inst - 1;
            instance_open(c->slots[i].inst, now);
        } else {
            break;
        }
        if (c->views[i].state == INST_PROVISIONING)
            sim_schedule(c->eng, now + provision_ns(c, ps), PHASE_LIFECYCLE, EV_LIFECYCLE,
                         c->slots[i].inst, INST_LOADING);
        delta--, done++;
        c->counts.scale_ups++;
    }
    while (delta < 0 && p->n_live > ps->min_instances && p->n_active > 0) {
        /* The newest active instance drains; its queue goes elsewhere. */
        int32_t i = p->active[p->n_active - 1];
        set_state(c, i, INST_DRAINING);
        const sim_rb_tree *w = instance_waiting(c->slots[i].inst);
        while (!sim_rb_empty(w)) {
            serve_req *r = SIM_RB_ENTRY(sim_rb_first(w), serve_req, wait_node);
            int32_t to = least_loaded(c, p, i);
            if (to < 0 || !cluster_move(c, r, to, MOVE_RECOMPUTE))
                break;
        }
        if (ps->lifecycle.drain_migrate)
            migrate_running(c, p, i);
        if (c->views[i].n_waiting == 0 && c->views[i].n_running == 0 &&
            c->views[i].state == INST_DRAINING)
            set_state(c, i, INST_STOPPED);
        delta++, done--;
        c->counts.scale_downs++;
    }
    return done;
}

/* ---- the controller ------------------------------------------------------------------ */

static const serve_req *ctl_waiting_first(const control_view *v, int32_t i)
{
    const cluster *c = v->core;
    const sim_rb_node *n = sim_rb_first(instance_waiting(c->slots[i].inst));
    return n ? SIM_RB_ENTRY(n, const serve_req, wait_node) : NULL;
}

static const serve_req *const *ctl_running(const control_view *v, int32_t i, int32_t *n)
{
    const cluster *c = v->core;
    return instance_running(c->slots[i].inst, n);
}

/* Whether events of the run itself (not samples or ticks) are pending. */
static bool run_pending(const cluster *c)
{
    return sim_events_pending(c->eng) > (size_t)c->housekeeping_pending;
}

static void schedule_housekeeping(cluster *c, sim_time_ns at, uint32_t phase, uint32_t kind)
{
    c->housekeeping_pending++;
    sim_schedule(c->eng, at, phase, kind, c, 0);
}

void cluster_on_control(sim_engine *eng, void *ctx, const sim_event *ev);
void cluster_on_control(sim_engine *eng, void *ctx, const sim_event *ev)
{
    (void)ctx;
    cluster *c = ev->data;
    c->housekeeping_pending--;
    c->housekeeping_events++;
    c->counts.control_ticks++;
    sim_time_ns now = sim_now(eng);
    control_view v = {.now = now, .inst = c->views, .n_instances = c->n_inst,
                      .pools = c->pool_views,
                      .n_pools = c->n_pools, .waiting_first = ctl_waiting_first,
                      .running = ctl_running, .core = c};
    control_plan plan = {.actions = c->actions, .cap = CONTROL_MAX_ACTIONS};
    c->control->tick(c->control_state, &v, &plan);
    for (int32_t a = 0; a < plan.n; a++) {
        const control_action *x = &plan.actions[a];
        bool ok = false;
        if (x->kind == CTRL_MOVE && x->req)
            ok = cluster_move(c, (serve_req *)x->req, x->to, x->mode);
        else if (x->kind == CTRL_SCALE && x->pool >= 0 && x->pool < c->n_pools)
            ok = cluster_scale(c, x->pool, x->delta) != 0;
        else if (x->kind == CTRL_SPLIT && c->pd)
            ok = disagg_set_split(c->pd, x->prefill_share, x->decode_share);
        if (ok)
            c->counts.actions_applied++;
        else
            c->counts.actions_skipped++;
    }
    if (run_pending(c) || c->n_parked)
        schedule_housekeeping(c, now + c->cs->control.period_ns, PHASE_CONTROL, EV_CONTROL);
}

/* ---- The autoscaler ----------------------------------------------------------
 * A tick every scale.period_ns from time 0, in the CONTROL phase, scheduled
 * after the controller's: the view (api/scale.h) is built from the instance
 * views and from counters kept since the previous tick (the mark), the
 * policy writes desired counts, and the core applies them within the pool's
 * bounds and the cooldowns: a scale-up waits up_cooldown after the previous
 * scale-up, a scale-down down_cooldown after the previous scale action of
 * either kind (so a pool that just grew does not shrink at once). O(pools +
 * instances) a tick. */

static void scale_build_view(cluster *c, scale_view *v)
{
    sim_time_ns now = sim_now(c->eng);
    struct scale_mark *mk = &c->mark;
    for (int32_t k = 0; k < c->n_pools; k++) {
        const pool *p = &c->pools[k];
        scale_pool_view *sv = &c->scale_views[k];
        *sv = (scale_pool_view){.name = p->ps->name, .role = p->ps->role,
                                .min_instances = p->ps->min_instances,
                                .max_instances = p->ps->max_instances,
                                .gpus_per_instance = par_gpus(&p->ps->par),
                                .block_size_tokens = p->ps->batch.block_size_tokens};
        uint64_t busy = 0;
        for (int32_t m = 0; m < p->n_members; m++) {
            int32_t i = p->members[m];
            const inst_view *iv = &c->views[i];
            instance_stats st;
            instance_get_stats(c->slots[i].inst, &st);
            busy += (uint64_t)st.busy_ns;
            sv->n_state[iv->state]++;
            if (iv->state == INST_STOPPED)
                continue;
            sv->waiting += iv->n_waiting;
            sv->running += iv->n_running;
            sv->outstanding_tokens += iv->outstanding_tokens;
            if (iv->state == INST_ACTIVE) {
                sv->kv_used_blocks += iv->kv_total_blocks - iv->kv_free_blocks;
                sv->kv_total_blocks += iv->kv_total_blocks;
            }
        }
        sv->current = sv->n_state[INST_PROVISIONING] + sv->n_state[INST_LOADING] +
                      sv->n_state[INST_WARMING] + sv->n_state[INST_ACTIVE];
        sv->arrivals = p->routed - mk->routed[k];
        sv->completed = p->finished - mk->finished[k];
        sv->busy_ns = busy - mk->busy_ns[k];
        mk->routed[k] = p->routed;
        mk->finished[k] = p->finished;
        mk->busy_ns[k] = busy;
        c->desired[k] = sv->current;
    }
    const metrics *m = &c->metrics;
    *v = (scale_view){
        .now = now, .window_ns = now - mk->at, .pools = c->scale_views, .n_pools = c->n_pools,
        .inst = c->views, .n_instances = c->n_inst, .parked = c->n_parked,
        .arrivals = c->arrived - mk->arrived,
        .arrival_input_tokens = c->arrival_in_tokens - mk->in_tokens,
        .arrival_output_tokens = c->arrival_out_tokens - mk->out_tokens,
        .completed = m->completed - mk->completed,
        .met_ttft = m->met_ttft - mk->met_ttft,
        .met_slo = m->met_both - mk->met_both,
        .slo_ttft_ns = c->cs->slo_ttft_ns, .slo_tpot_ns = c->cs->slo_tpot_ns,
    };
    if (v->window_ns > 0)
        v->arrival_rate_per_s = (double)v->arrivals * 1e9 / (double)v->window_ns;
    mk->at = now;
    mk->arrived = c->arrived;
    mk->in_tokens = c->arrival_in_tokens;
    mk->out_tokens = c->arrival_out_tokens;
    mk->completed = m->completed;
    mk->met_ttft = m->met_ttft;
    mk->met_both = m->met_both;
}

static void scale_apply(cluster *c, int32_t k, int32_t want)
{
    const pool *p = &c->pools[k];
    const scale_choice *sc = &c->cs->scale;
    sim_time_ns now = sim_now(c->eng);
    int32_t cur = c->scale_views[k].current;
    if (want < p->ps->min_instances)
        want = p->ps->min_instances;
    if (want > p->ps->max_instances)
        want = p->ps->max_instances;
    /* Scale from zero: requests wait and nothing of this pool is coming. */
    if (takes_arrivals(p) && c->n_parked > 0 && cur == 0 && want < 1 &&
        p->ps->max_instances > 0)
        want = 1;
    sim_time_ns last = c->last_up_ns[k] > c->last_down_ns[k] ? c->last_up_ns[k]
                                                            : c->last_down_ns[k];
    if (want > cur && (c->last_up_ns[k] < 0 || now - c->last_up_ns[k] >= sc->up_cooldown_ns)) {
        if (cluster_scale(c, k, want - cur) > 0)
            c->last_up_ns[k] = now;
    } else if (want < cur && (last < 0 || now - last >= sc->down_cooldown_ns)) {
        if (cluster_scale(c, k, want - cur) < 0)
            c->last_down_ns[k] = now;
    }
}

void cluster_on_scale(sim_engine *eng, void *ctx, const sim_event *ev);
void cluster_on_scale(sim_engine *eng, void *ctx, const sim_event *ev)
{
    (void)ctx;
    cluster *c = ev->data;
    c->housekeeping_pending--;
    c->housekeeping_events++;
    c->counts.scale_ticks++;
    scale_view v;
    scale_build_view(c, &v);
    c->scale->decide(c->scale_state, &v, c->desired);
    for (int32_t k = 0; k < c->n_pools; k++)
        scale_apply(c, k, c->desired[k]);
    if (run_pending(c) || c->n_parked)
        schedule_housekeeping(c, sim_now(eng) + c->cs->scale.period_ns, PHASE_CONTROL,
                              EV_SCALE);
}

static int scale_create(cluster *c, sim_err *err)
{
    const scale_choice *sc = &c->cs->scale;
    scale_setup setup = {.n_pools = c->n_pools, .period_ns = sc->period_ns};
    if (sc->ops->init(&setup, sc->params, sc->path, &c->scale_state, err))
        return -1;
    c->scale = sc->ops;
    size_t n = (size_t)c->n_pools;
    c->scale_views = sim_xcalloc(n, sizeof *c->scale_views);
    c->desired = sim_xcalloc(n, sizeof *c->desired);
    c->last_up_ns = sim_xcalloc(n, sizeof *c->last_up_ns);
    c->last_down_ns = sim_xcalloc(n, sizeof *c->last_down_ns);
    c->mark.routed = sim_xcalloc(n, sizeof *c->mark.routed);
    c->mark.finished = sim_xcalloc(n, sizeof *c->mark.finished);
    c->mark.busy_ns = sim_xcalloc(n, sizeof *c->mark.busy_ns);
    for (size_t k = 0; k < n; k++)
        c->last_up_ns[k] = c->last_down_ns[k] = -1;
    return 0;
}

static void scale_destroy(cluster *c)
{
    if (c->scale_state && c->scale->destroy)
        c->scale->destroy(c->scale_state);
    free(c->scale_views);
    free(c->desired);
    free(c->last_up_ns);
    free(c->last_down_ns);
    free(c->mark.routed);
    free(c->mark.finished);
    free(c->mark.busy_ns);
}

/* ---- Time series ---------------------------------------------------------
 * A sample event every timeseries_interval_ns from time 0, in the last phase
 * of its instant, reads each instance's queue lengths and KV use and the
 * power of its current iteration (an iteration observer keeps the end and
 * mean power of each instance's latest one). Sampling only reads state, and
 * its events keep their own phase, so the other events run in the same
 * order as without it; its events are left out of the summary's count, so a
 * sampled run reports exactly what an unsampled one does. */

static void on_iteration(void *ctx, const iter_info *it)
{
    cluster *c = ctx;
    slot *s = &c->slots[it->instance];
    s->iter_end_ns = it->start_ns + it->cost->latency_ns;
    s->iter_power_w = it->cost->energy_j * 1e9 / (double)it->cost->latency_ns;
    if (c->pd)
        disagg_on_iteration(c->pd, it);
    if (c->observer)
        c->observer(c->observer_ctx, it);
}

void cluster_on_sample(sim_engine *eng, void *ctx, const sim_event *ev);
void cluster_on_sample(sim_engine *eng, void *ctx, const sim_event *ev)
{
    (void)ctx;
    cluster *c = ev->data;
    c->housekeeping_pending--;
    c->housekeeping_events++;
    sim_time_ns now = sim_now(eng);
    int32_t active = 0;
    for (int32_t i = 0; i < c->n_inst; i++) {
        const inst_view *v = &c->views[i];
        ts_instance *t = &c->ts[i];
        t->waiting = v->n_waiting;
        t->running = v->n_running;
        t->active = t->waiting + t->running > 0;
        t->kv_used_fraction = v->kv_total_blocks ? (double)(v->kv_total_blocks -
                                                            v->kv_free_blocks) /
                                                       v->kv_total_blocks : 0;
        t->kv_cached_fraction = v->kv_total_blocks ? (double)v->kv_cached_blocks /
                                                         v->kv_total_blocks : 0;
        t->power_w = v->state == INST_STOPPED ? 0
                     : now < c->slots[i].iter_end_ns
                         ? c->slots[i].iter_power_w
                         : instance_idle_power_w(c->slots[i].inst);
        t->pool = v->pool;
        t->state = v->state;
        active += t->active;
    }
    ts_sample s = {now, c->cs->timeseries_interval_ns, c->n_inst, active, c->ts};
    if (c->on_sample(c->sample_ctx, &s)) {
        sink_failed(c, "time-series");
        return;
    }
    if (!run_pending(c))
        return;
    /* A long idle stretch (sparse load, or a trace with a gap of days) would
     * only repeat this sample: skip to the last interval before the next
     * event, so the number of samples stays bounded by the busy time. */
    sim_time_ns interval = c->cs->timeseries_interval_ns, next = now + interval;
    sim_time_ns next_event = sim_next_event_time(eng);
    if (active == 0 && next_event - now > TS_MAX_IDLE_SAMPLES * interval)
        next = next_event - (next_event - now) % interval;
    schedule_housekeeping(c, next, PHASE_SAMPLE, EV_SAMPLE);
}

/* ---- creation ------------------------------------------------------------------------ */

static int32_t route_cached_tokens(const route_view *v, int32_t i, const serve_req *r)
{
    const cluster *c = v->core;
    return kv_peek_cached_tokens(instance_kv(c->slots[i].inst), r, &req_of(r)->kv);
}

static int32_t route_prompt_hashes(const route_view *v, const serve_req *r, int32_t block,
                                   const uint64_t **out)
{
    (void)v;
    return kv_req_prompt_hashes(&req_of(r)->kv, block, req_seq_tokens(r), out);
}

static double route_lora_affinity(const route_view *v, int32_t i, const serve_req *r)
{
    const cluster *c = v->core;
    const lora *l = instance_lora(c->slots[i].inst);
    return l ? lora_affinity(l, r->id) : 0;
}

int32_t cluster_setup_max_context(const cluster_setup *cs)
{
    int32_t ctx = INT32_MAX;
    for (int32_t k = 0; k < cs->n_pools; k++)
        if (cs->pools[k].role != POOL_DECODE && cs->pools[k].batch.max_context_tokens < ctx)
            ctx = cs->pools[k].batch.max_context_tokens;
    return ctx == INT32_MAX ? cs->pools[0].batch.max_context_tokens : ctx;
}

static void register_events(cluster *c)
{
#define SERVE_EVENT_REGISTER(kind, name, handler)                             \
    SIM_ASSERT(sim_engine_register(c->eng, name, handler, c) == kind);
    SERVE_EVENT_KINDS(SERVE_EVENT_REGISTER)
#undef SERVE_EVENT_REGISTER
}

cluster *cluster_create(const cluster_setup *cs, const cluster_hooks *hooks, sim_err *err)
{
    static const cluster_hooks no_hooks;
    if (!hooks)
        hooks = &no_hooks;
    SIM_ASSERT(cs->n_pools >= 1);
    cluster *c = sim_xcalloc(1, sizeof *c);
    c->cs = cs;
    c->eng = sim_engine_create(cs->seed);
    c->identity_salt = sim_stream_seed(cs->seed, STREAM_IDENTITY);
    register_events(c);
    c->net = net_create(c->eng, EV_TRANSFER, PHASE_TRANSFER);
    metrics_init(&c->metrics, cs->slo_ttft_ns, cs->slo_tpot_ns, hooks->on_record,
                 hooks->record_ctx);
    metrics_set_window(&c->metrics, cs->warmup_ns, cs->cooldown_ns);
    stream_metrics_init(&c->stream);
    c->observer = hooks->on_iteration;
    c->observer_ctx = hooks->iteration_ctx;
    if (cs->timeseries_interval_ns > 0 && hooks->on_sample) {
        c->on_sample = hooks->on_sample;
        c->sample_ctx = hooks->sample_ctx;
    }

    wl_setup wl = {
        .arrival_rng = sim_rng(c->eng, STREAM_ARRIVALS),
        .length_rng = sim_rng(c->eng, STREAM_LENGTHS),
        .max_context_tokens = cluster_setup_max_context(cs),
    };
    c->wl = wl_source_create(&wl, cs->workload, cs->workload_path, err);
    if (!c->wl)
        goto fail;

    c->n_pools = cs->n_pools;
    c->pools = sim_xcalloc((size_t)c->n_pools, sizeof *c->pools);
    c->pool_views = sim_xcalloc((size_t)c->n_pools, sizeof *c->pool_views);
    for (int32_t k = 0; k < c->n_pools; k++) {
        const pool_setup *ps = &cs->pools[k];
        SIM_ASSERT(ps->max_instances >= ps->instances && ps->min_instances <= ps->instances);
        c->cap_inst += ps->max_instances;
    }
    if (cs->disagg && !(c->pd = disagg_create(c, cs->disagg, cs->disagg_path, err)))
        goto fail;
    if (!(c->mig = migrate_create(c, cs->migration, cs->migration_path, err)))
        goto fail;
    c->slots = sim_xcalloc((size_t)c->cap_inst, sizeof *c->slots);
    c->views = sim_xcalloc((size_t)c->cap_inst, sizeof *c->views);
    c->ts = sim_xcalloc((size_t)c->cap_inst, sizeof *c->ts);
    for (int32_t k = 0; k < c->n_pools; k++) {
        const pool_setup *ps = &cs->pools[k];
        pool *p = &c->pools[k];
        p->ps = ps;
        p->cost_in = (cost_setup){.model = &ps->model, .gpu = &ps->gpu, .par = ps->par,
                                  .engine = ps->fixed_overhead ? NULL : &ps->engine,
                                  .iteration_overhead_ns = ps->iteration_overhead_ns};
        p->cost = cost_model_create(ps->cost_name, &p->cost_in, ps->cost_params, ps->cost_path,
                                    err);
        if (!p->cost || spec_draft_cost_create(&ps->spec, p->cost, ps->cost_params,
                                               ps->cost_path, &p->cost_in, &p->draft_in,
                                               &p->draft_cost, err))
            goto fail;
        p->members = sim_xcalloc((size_t)ps->max_instances, sizeof *p->members);
        p->active = sim_xcalloc((size_t)ps->max_instances, sizeof *p->active);
        p->view = (pool_view){.name = ps->name, .role = ps->role, .instances = p->members,
                              .gpus_per_instance = par_gpus(&ps->par),
                              .block_size_tokens = ps->batch.block_size_tokens};
        route_setup rs = {.pool = k, .block_size_tokens = ps->batch.block_size_tokens};
        if (ps->route_policy.ops->init(&rs, ps->route_policy.params, ps->route_policy.path,
                                       &p->route_state, err))
            goto fail;
        for (int32_t j = 0; j < ps->instances; j++)
            if (add_instance(c, k, INST_ACTIVE, err))
                goto fail;
    }
    c->n_static = c->n_inst;
    if (cs->control.ops) {
        control_setup ctl = {.n_pools = c->n_pools, .period_ns = cs->control.period_ns};
        if (cs->control.ops->init(&ctl, cs->control.params, cs->control.path,
                                  &c->control_state, err))
            goto fail;
        c->control = cs->control.ops;
        c->actions = sim_xcalloc(CONTROL_MAX_ACTIONS, sizeof *c->actions);
    }
    if (cs->scale.ops && scale_create(c, err))
        goto fail;
    return c;
fail:
    cluster_destroy(c);
    return NULL;
}

void cluster_destroy(cluster *c)
{
    if (!c)
        return;
    for (int32_t i = 0; i < c->n_inst; i++)
        instance_destroy(c->slots[i].inst);
    for (int32_t k = 0; c->pools && k < c->n_pools; k++) {
        pool *p = &c->pools[k];
        if (p->route_state && p->ps->route_policy.ops->destroy)
            p->ps->route_policy.ops->destroy(p->route_state);
        free(p->members);
        free(p->active);
        cost_model_destroy(p->cost);
        cost_model_destroy(p->draft_cost);
    }
    free(c->pools);
    free(c->pool_views);
    disagg_destroy(c->pd);
    migrate_destroy(c->mig);
    if (c->control_state && c->control->destroy)
        c->control->destroy(c->control_state);
    free(c->actions);
    scale_destroy(c);
    free(c->slots);
    free(c->views);
    free(c->ts);
    free(c->node_storage);
    free(c->parked);
    wl_source_destroy(c->wl);
    metrics_fini(&c->metrics);
    stream_metrics_fini(&c->stream);
    net_destroy(c->net);
    sim_engine_destroy(c->eng);
    for (size_t i = 0; i < c->n_slabs; i++) {
        for (int j = 0; j < SLAB_REQS; j++) {
            kv_req_fini(&c->slabs[i][j].kv);
            free(c->slabs[i][j].ids);
            stream_req_fini(&c->slabs[i][j]);
            free(c->slabs[i][j].spec_acc);
        }
        free(c->slabs[i]);
    }
    free(c->slabs);
    free(c->free_reqs);
    for (size_t i = 0; i < c->n_move_slabs; i++) {
        for (int j = 0; j < 64; j++)
            kv_req_fini(&c->move_slabs[i][j].hold);
        free(c->move_slabs[i]);
    }
    free(c->move_slabs);
    free(c);
}

int cluster_run(cluster *c, sim_err *err)
{
    schedule_next_arrival(c);
    if (c->on_sample)
        schedule_housekeeping(c, 0, PHASE_SAMPLE, EV_SAMPLE);
    if (c->control)
        schedule_housekeeping(c, 0, PHASE_CONTROL, EV_CONTROL);
    if (c->scale)
        schedule_housekeeping(c, 0, PHASE_CONTROL, EV_SCALE);
    if (!c->failed)
        sim_run(c->eng, SIM_TIME_NEVER);
    if (c->failed) {
        if (err)
            *err = c->run_err;
        return -1;
    }
    if (c->n_parked)
        return sim_errf(err, "%d requests never found an active instance: no pool that "
                        "takes arrivals had one, and none was started", c->n_parked);
    /* Everything that arrived has finished and given its KV back. */
    SIM_ASSERT(c->metrics.completed == c->arrived);
    sim_time_ns end = c->metrics.last_finish_ns;
    for (int32_t i = 0; i < c->n_inst; i++) {
        SIM_ASSERT(kv_used_blocks(instance_kv(c->slots[i].inst)) == 0);
        instance_close(c->slots[i].inst, end);
    }
    return 0;
}

/* ---- results ------------------------------------------------------------------------- */

int32_t cluster_n_pools(const cluster *c) { return c->n_pools; }

int32_t cluster_n_groups(const cluster *c, metrics_group_kind kind)
{
    return metrics_group_count(&c->metrics, kind);
}

void cluster_group_summary(const cluster *c, metrics_group_kind kind, int32_t k,
                           group_summary *out)
{
    metrics_group_summary(&c->metrics, kind, k, out);
}
int32_t cluster_n_instances(const cluster *c) { return c->n_inst; }

void cluster_get_counts(const cluster *c, cluster_counts *out) { *out = c->counts; }

void cluster_instance_summary(const cluster *c, int32_t i, instance_summary *out)
{
    SIM_ASSERT(i >= 0 && i < c->n_inst);
    instance_stats st;
    instance_get_stats(c->slots[i].inst, &st);
    kv_stats ks;
    const kv_cache *kv = instance_kv(c->slots[i].inst);
    kv_get_stats(kv, &ks);
    const pool_setup *ps = c->pools[c->views[i].pool].ps;
    *out = (instance_summary){
        .pool = c->views[i].pool, .gpus = par_gpus(&ps->par), .completed = st.completed,
        .iterations = st.iterations, .tokens = st.tokens, .preemptions = st.preemptions,
        .moved_in = st.moved_in, .moved_out = c->slots[i].moved_out,
        .busy_s = st.busy_ns / 1e9, .energy_j = st.energy_j,
        .kv_peak_fraction = ks.total_blocks ? (double)ks.peak_blocks / ks.total_blocks : 0,
        .kv_mean_fraction = kv_mean_fraction(kv, c->metrics.first_arrival_ns,
                                             c->metrics.last_finish_ns),
        .kv_hit_tokens = ks.hit_tokens, .kv_lookup_tokens = ks.lookup_tokens,
        .kv_evictions = ks.evictions,
    };
    for (int s = 0; s < INST_STATE_COUNT; s++)
        out->state_s[s] = st.state_ns[s] / 1e9;
}

void cluster_pool_summary(const cluster *c, int32_t k, pool_summary *out)
{
    SIM_ASSERT(k >= 0 && k < c->n_pools);
    const pool *p = &c->pools[k];
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", p->ps->name);
    out->role = p->ps->role;
    out->gpus_per_instance = par_gpus(&p->ps->par);
    out->instances = p->n_members;
    double busy = 0, up = 0, hit = 0, looked = 0;
    for (int32_t m = 0; m < p->n_members; m++) {
        instance_summary is;
        cluster_instance_summary(c, p->members[m], &is);
        out->completed += is.completed;
        out->iterations += is.iterations;
        out->tokens += is.tokens;
        out->preemptions += is.preemptions;
        out->moved_in += is.moved_in;
        out->moved_out += is.moved_out;
        out->energy_j += is.energy_j;
        busy += is.busy_s;
        up += is.state_s[INST_ACTIVE] + is.state_s[INST_DRAINING];
        for (int s = 0; s < INST_STOPPED; s++)   /* a stopped instance is released */
            out->gpu_s[s] += is.state_s[s] * is.gpus;
        if (is.kv_peak_fraction > out->kv_peak_fraction)
            out->kv_peak_fraction = is.kv_peak_fraction;
        hit += (double)is.kv_hit_tokens;
        looked += (double)is.kv_lookup_tokens;
    }
    for (int st = 0; st < INST_STOPPED; st++)
        out->held_gpu_s += out->gpu_s[st];
    out->busy_gpu_s = busy * out->gpus_per_instance;
    out->cost_usd = out->held_gpu_s / 3600 * p->ps->lifecycle.price_per_gpu_hour;
    out->busy_fraction = up > 0 ? busy / up : 0;
    out->kv_hit_fraction = looked > 0 ? hit / looked : 0;
}

/* Expert parallelism's statistics over the instances that have it. */
static void ep_summarize(const cluster *c, run_summary *s)
{
    double samples = 0;
    for (int32_t i = 0; i < c->n_inst; i++) {
        const ep_stats *e = instance_ep_stats(c->slots[i].inst);
        if (!e || !e->iterations)
            continue;
        samples += e->weight;
        s->ep_imbalance += e->imbalance_sum;
        s->ep_distinct_imbalance += e->distinct_imbalance_sum;
        if (e->imbalance_max > s->ep_imbalance_max)
            s->ep_imbalance_max = e->imbalance_max;
        s->ep_a2a_bytes += e->a2a_bytes;
        s->ep_rebalances += e->rebalances;
        s->ep_moved_bytes += e->moved_bytes;
    }
    if (samples > 0) {
        s->ep_imbalance /= samples;
        s->ep_distinct_imbalance /= samples;
    }
    for (int32_t i = 0; i < c->n_inst; i++) {
        const offload_stats *o = instance_offload_stats(c->slots[i].inst);
        if (!o)
            continue;
        s->offload_hits += o->hits;
        s->offload_misses += o->misses;
        s->offload_low_loads += o->low_precision_loads;
        s->offload_bytes_high += o->bytes_high;
        s->offload_bytes_low += o->bytes_low;
    }
}

void cluster_summarize(const cluster *c, run_summary *s)
{
    memset(s, 0, sizeof *s);
    metrics_summarize(&c->metrics, s);
    stream_summarize(&c->stream, s);
    s->seed = c->cs->seed;
    s->arrived = c->arrived;
    s->clamped = wl_source_clamped(c->wl);
    s->events = sim_events_run(c->eng) - c->housekeeping_events;   /* the run's own */
    double busy_ns = 0, up_ns = 0, kv_mean = 0, processed_tokens = 0;
    spec_stats spec = {0};
    lora_stats lora = {0};
    for (int32_t i = 0; i < c->n_inst; i++) {
        instance_stats st;
        instance_get_stats(c->slots[i].inst, &st);
        spec_stats_add(&spec, &st.spec);
        lora_stats_add(&lora, &st.lora);
        const kv_cache *kv = instance_kv(c->slots[i].inst);
        int32_t gpus = par_gpus(&c->pools[c->views[i].pool].ps->par);
        s->iterations += st.iterations;
        s->energy_j += st.energy_j;
        s->recomputed_tokens += st.recomputed_tokens;
        s->swap_out_bytes += st.swap_out_bytes * gpus;
        s->swap_in_bytes += st.swap_in_bytes * gpus;
        s->swap_time_s += st.swap_ns / 1e9;
        s->cuts_layer += st.cuts_layer;
        s->cuts_op += st.cuts_op;
        s->cut_saved_s += st.cut_saved_ns / 1e9;
        s->hol_arrivals += st.hol_arrivals;
        s->stream_invalidated_tokens += st.stream_invalidated_tokens;
        s->preemptions_swap += st.preemptions_swap;
        s->hol_block_s_mean += st.hol_block_ns / 1e9;   /* a sum until the end */
        s->weight_bytes += st.weight_bytes * gpus;
        s->kv_bytes += st.kv_bytes * gpus;
        processed_tokens += st.tokens;
        busy_ns += (double)st.busy_ns;
        up_ns += (double)(st.state_ns[INST_ACTIVE] + st.state_ns[INST_DRAINING]);
        double held_s = 0;
        for (int k = 0; k < INST_STOPPED; k++)
            held_s += st.state_ns[k] / 1e9 * gpus;
        s->gpu_held_s += held_s;
        s->gpu_busy_s += st.busy_ns / 1e9 * gpus;
        s->cost_usd += held_s / 3600 *
                       c->pools[c->views[i].pool].ps->lifecycle.price_per_gpu_hour;
        for (int k = 0; k < OP_KIND_COUNT; k++)
            s->term_s[k] += st.term_ns[k] / 1e9;
        for (int k = 0; k < COST_SRC_COUNT; k++)
            s->source_terms[k] += st.source_terms[k];
        kv_stats ks;
        kv_get_stats(kv, &ks);
        double peak = ks.total_blocks ? (double)ks.peak_blocks / ks.total_blocks : 0;
        if (peak > s->kv_peak_fraction)
            s->kv_peak_fraction = peak;
        kv_mean += kv_mean_fraction(kv, c->metrics.first_arrival_ns,
                                    c->metrics.last_finish_ns);
        s->prefix_caching += kv_prefix_caching(kv);
        s->kv_lookup_tokens += ks.lookup_tokens;
        s->kv_hit_tokens += ks.hit_tokens;
        s->kv_lookup_blocks += ks.lookup_blocks;
        s->kv_hit_blocks += ks.hit_blocks;
        s->kv_evictions += ks.evictions;
        s->kv_tier_hit_tokens += ks.tier_hit_tokens;
        s->kv_tier_load_bytes += st.kv_load_bytes;
        s->kv_tier_write_bytes += st.kv_write_bytes;
        s->kv_load_stall_s += st.kv_load_ns / 1e9;
    }
    s->kv_mean_fraction = kv_mean / c->n_inst;
    if (s->hol_arrivals)
        s->hol_block_s_mean /= (double)s->hol_arrivals;
    ep_summarize(c, s);
    route_oracle_summarize(&c->oracle, s);
    if (up_ns > 0)
        s->gpu_busy_fraction = busy_ns / up_ns;
    if (s->output_tokens)
        s->energy_per_out_token_j = s->energy_j / (double)s->output_tokens;
    if (processed_tokens > 0)
        s->energy_per_token_j = s->energy_j / processed_tokens;
    spec_summarize(&spec, busy_ns, s);
    lora_summarize(&lora, s);
}

void cluster_workload_note(const cluster *c, char *buf, size_t size)
{
    wl_counts wc;
    wl_source_counts(c->wl, &wc);
    wl_counts_describe(&wc, buf, size);
}

void cluster_cost_sources(const run_summary *s, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = 0;
    for (int k = COST_SRC_NONE + 1; k < COST_SRC_COUNT; k++)
        if (s->source_terms[k] && used < size)
            used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? "+" : "",
                                     cost_source_name(k));
    if (!buf[0])
        snprintf(buf, size, "none");
}

/* ---- for serve/disagg.c and serve/migrate.c (serve/cluster_core.h) ------------------- */

sim_engine *cluster_engine(cluster *c) { return c->eng; }
net *cluster_net(cluster *c) { return c->net; }
instance *cluster_instance(cluster *c, int32_t i) { return c->slots[i].inst; }
const inst_view *cluster_views(const cluster *c) { return c->views; }
const pool_setup *cluster_pool_setup(const cluster *c, int32_t k) { return &c->cs->pools[k]; }
void *cluster_route_state(const cluster *c, int32_t k) { return c->pools[k].route_state; }

const int32_t *cluster_pool_members(const cluster *c, int32_t k, int32_t *n)
{
    *n = c->pools[k].n_members;
    return c->pools[k].members;
}

const int32_t *cluster_pool_active(const cluster *c, int32_t k, int32_t *n)
{
    *n = c->pools[k].n_active;
    return c->pools[k].active;
}

int cluster_path(const cluster *c, int32_t a, int32_t b, net_link path[2])
{
    return move_path(c, a, b, path);
}

double cluster_kv_bytes_per_token(const cluster *c, int32_t k)
{
    const pool_setup *ps = &c->cs->pools[k];
    return llm_kv_bytes_per_token_per_gpu(&ps->model, &ps->par) * par_gpus(&ps->par);
}

route_view cluster_route_view(cluster *c, const int32_t *candidates, int32_t n)
{
    return (route_view){.now = sim_now(c->eng), .inst = c->views, .n_instances = c->n_inst,
                        .candidates = candidates, .n_candidates = n,
                        .cached_tokens = route_cached_tokens, .core = c};
}

void cluster_note_handoff(cluster *c, int32_t from)
{
    c->counts.handoffs++;
    c->slots[from].moved_out++;
}

void cluster_note_move_end(cluster *c, int32_t from, bool done)
{
    if (done) {
        c->counts.moves_done++;
        c->slots[from].moved_out++;
    } else {
        c->counts.moves_aborted++;
    }
}

const disagg *cluster_disagg(const cluster *c) { return c->pd; }
const migrate *cluster_migrate(const cluster *c) { return c->mig; }
