/* Prefill/decode disaggregation (see disagg.h).
 *
 * A hand-off is a pd_xfer, hung off the request (req.pd) from the moment
 * it is decided until the KV lands. Its life:
 *   (layerwise only) RESERVED at the last prefill iteration's start: the
 *     decode blocks are held by dst_holder, part 1 flows;
 *   DETACHED at prefill end: the request leaves the prefill instance's
 *     running set; its prefill blocks move to src_holder (still counted on
 *     the prefill instance: the backlog);
 *   WAITING (when_full "wait", no decode room): in the FIFO;
 *   FLOWING: the last (or only) part is on the links;
 *   then the prefill blocks are released, the request takes the decode
 *   blocks and is queued at the decode instance with its KV.
 * Invariants: a request with pd set is MOVING, or RUNNING in its last
 * prefill iteration (layerwise); every block a hand-off holds is released
 * exactly once (at landing, or at forget for a layerwise reservation). */
#include "serve/disagg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/cluster_core.h"
#include "serve/migrate.h"
#include "sim/jsoncfg.h"

typedef enum pd_decider { PD_ALWAYS, PD_LENGTH, PD_UNCACHED } pd_decider;
typedef enum pd_mode { PD_AFTER_PREFILL, PD_LAYERWISE } pd_mode;

typedef struct disagg disagg;
typedef struct pd_xfer {
    struct pd_xfer *next;       /* free list, or the wait FIFO */
    disagg *d;
    req *r;
    int32_t from, to;           /* to: -1 until reserved */
    serve_req dst_holder;       /* the decode blocks until the KV lands */
    kv_req dst_hold;
    serve_req src_holder;       /* the prefill blocks while they travel */
    kv_req src_hold;
    double rest_bytes;          /* layerwise: the last layer's share */
    bool detached, part1_done, layerwise;
    net_xfer x;                 /* the part in flight, 0 when none */
    sim_time_ns ready_ns;       /* prefill end */
    sim_time_ns reserved_ns;    /* decode blocks held */
    sim_time_ns start_ns;       /* first byte sent */
} pd_xfer;

struct disagg {
    cluster *c;
    pd_decider decider;
    int64_t min_prompt_tokens;
    pd_mode mode;
    bool wait_when_full;
    int32_t decode_pool;        /* whose router picks (the first decode pool) */
    int32_t prefill_pool;       /* the first prefill pool */
    bool semi;                  /* semi-PD: paired workers share GPUs and KV */
    bool contention;
    double prefill_sm, decode_sm;
    int32_t *cands;             /* scratch: candidates with room */
    int32_t cands_cap;
    pd_xfer *free_list;
    pd_xfer **slabs;
    size_t n_slabs, slab_cap;
    pd_xfer *wait_head, *wait_tail;
    /* stats */
    disagg_stats st;
    sim_hist visible, wait, xfer;
    int64_t backlog_blocks;
    double backlog_area;        /* blocks x ns */
    sim_time_ns backlog_since, first_ns;
};

#define PD_SLAB 64

/* ---- records ------------------------------------------------------------------ */

static pd_xfer *xfer_alloc(disagg *d)
{
    if (!d->free_list) {
        sim_grow((void **)&d->slabs, &d->slab_cap, d->n_slabs + 1, sizeof *d->slabs);
        pd_xfer *slab = sim_xcalloc(PD_SLAB, sizeof *slab);
        d->slabs[d->n_slabs++] = slab;
        for (int i = PD_SLAB - 1; i >= 0; i--) {
            slab[i].next = d->free_list;
            d->free_list = &slab[i];
        }
    }
    pd_xfer *x = d->free_list;
    d->free_list = x->next;
    SIM_ASSERT(!x->dst_hold.table && !x->src_hold.table);
    *x = (pd_xfer){.d = d, .to = -1, .from = -1};
    return x;
}

static void xfer_free(disagg *d, pd_xfer *x)
{
    kv_req_fini(&x->dst_hold);
    kv_req_fini(&x->src_hold);
    x->next = d->free_list;
    d->free_list = x;
}

static void backlog_add(disagg *d, int64_t blocks)
{
    sim_time_ns now = sim_now(cluster_engine(d->c));
    d->backlog_area += (double)d->backlog_blocks * (double)(now - d->backlog_since);
    d->backlog_since = now;
    d->backlog_blocks += blocks;
    if (d->backlog_blocks > d->st.backlog_peak_blocks)
        d->st.backlog_peak_blocks = d->backlog_blocks;
}

/* ---- choices --------------------------------------------------------------------- */

static bool decide(const disagg *d, const serve_req *r)
{
    if (r->output_tokens <= 1)
        return false;
    switch (d->decider) {
    case PD_LENGTH:
        return r->input_tokens >= d->min_prompt_tokens;
    case PD_UNCACHED:
        return r->input_tokens - r->cached_tokens >= d->min_prompt_tokens;
    default:
        return true;
    }
}

/* A decode instance with room for `blocks` more blocks, chosen by the
 * decode pool's router among those that have it; -1 when none has. */
static int32_t pick_decode(disagg *d, const serve_req *r, int64_t blocks)
{
    cluster *c = d->c;
    const inst_view *v = cluster_views(c);
    int32_t n = 0;
    for (int32_t k = 0; k < cluster_n_pools(c); k++) {
        if (cluster_pool_setup(c, k)->role != POOL_DECODE)
            continue;
        int32_t na;
        const int32_t *act = cluster_pool_active(c, k, &na);
        for (int32_t j = 0; j < na; j++) {
            if (v[act[j]].kv_free_blocks < blocks)
                continue;
            if (n >= d->cands_cap) {
                size_t cap = (size_t)d->cands_cap;
                sim_grow((void **)&d->cands, &cap, (size_t)n + 1, sizeof *d->cands);
                d->cands_cap = (int32_t)cap;
            }
            d->cands[n++] = act[j];
        }
    }
    if (n == 0)
        return -1;
    route_view rv = cluster_route_view(c, d->cands, n);
    const pool_setup *ps = cluster_pool_setup(c, d->decode_pool);
    int32_t pick = ps->route_policy.ops->route(cluster_route_state(c, d->decode_pool), &rv, r);
    bool ok = false;
    for (int32_t j = 0; j < n && !ok; j++)
        ok = d->cands[j] == pick;
    SIM_ASSERT_AT(rv.now, ok);   /* a routing policy must pick a candidate */
    return pick;
}

/* Blocks the request needs at the decode instance: its sequence once the
 * first token is out (the prompt's KV, and room for the first token's, which
 * its first decode step computes), as a move reserves (instance_reserve). */
static int64_t decode_blocks(const cluster *c, int32_t to, int64_t seq_tokens)
{
    int32_t b = cluster_pool_setup(c, cluster_views(c)[to].pool)->batch.block_size_tokens;
    return (seq_tokens + b - 1) / b;
}

static bool reserve(disagg *d, pd_xfer *x, int32_t to, int64_t seq_tokens)
{
    instance *dst = cluster_instance(d->c, to);
    if (!instance_reserve_blocks(dst, &x->dst_holder, &x->dst_hold,
                                 decode_blocks(d->c, to, seq_tokens)))
        return false;
    x->to = to;
    x->reserved_ns = sim_now(cluster_engine(d->c));
    return true;
}

/* ---- the transfer ---------------------------------------------------------------------- */

static void land(disagg *d, pd_xfer *x, sim_time_ns now)
{
    cluster *c = d->c;
    req *q = x->r;
    serve_req *r = &q->pub;
    backlog_add(d, -x->src_holder.kv_blocks);
    instance_release_kv(cluster_instance(c, x->from), &x->src_holder, &x->src_hold);
    /* The request takes the decode blocks. */
    r->kv_blocks = x->dst_holder.kv_blocks;
    r->kv_cap_tokens = x->dst_holder.kv_cap_tokens;
    SIM_ASSERT_AT(now, !q->kv.table);
    q->kv.table = x->dst_hold.table;
    q->kv.table_cap = x->dst_hold.table_cap;
    x->dst_hold.table = NULL;
    x->dst_hold.table_cap = 0;
    q->pd = NULL;
    q->move_to = -1;
    d->st.handoffs++;
    sim_hist_add(&d->visible, now - x->ready_ns);
    sim_hist_add(&d->wait, x->reserved_ns > x->ready_ns ? x->reserved_ns - x->ready_ns : 0);
    sim_hist_add(&d->xfer, now - x->start_ns);
    cluster_note_handoff(c, x->from);
    int32_t to = x->to;
    xfer_free(d, x);
    instance_attach(cluster_instance(c, to), r);
}

static void on_part_done(void *ctx, net_xfer nx, int64_t part, sim_time_ns now);

static void send(disagg *d, pd_xfer *x, double bytes, int64_t part)
{
    net_link path[2];
    int n = cluster_path(d->c, x->from, x->to, path);
    if (!x->start_ns)
        x->start_ns = sim_now(cluster_engine(d->c));
    d->st.bytes += bytes;
    x->x = net_start(cluster_net(d->c), path, n, bytes, on_part_done, x, part);
}

/* Part 1 (layerwise: what streams during the last prefill iteration) or
 * the last part. The context is the record: it cannot be freed while a part
 * is in flight (forget cancels the transfer first). */
static void on_part_done(void *ctx, net_xfer nx, int64_t part, sim_time_ns now)
{
    (void)nx;
    pd_xfer *x = ctx;
    disagg *pd = x->d;
    x->x = 0;
    SIM_ASSERT_AT(now, x->r->pd == x);
    if (part == 1) {
        x->part1_done = true;
        if (x->detached)
            send(pd, x, x->rest_bytes, 2);
        return;
    }
    land(pd, x, now);
}

/* r's prefill blocks become the record's (the backlog), r holds none. */
static void take_src_blocks(disagg *d, pd_xfer *x, serve_req *r)
{
    req *q = req_of(r);
    x->src_holder.kv_blocks = r->kv_blocks;
    kv_settle(instance_kv_mut(cluster_instance(d->c, x->from)), &q->kv);
    x->src_hold.table = q->kv.table;
    x->src_hold.table_cap = q->kv.table_cap;
    q->kv.table = NULL;
    q->kv.table_cap = 0;
    r->kv_blocks = 0;
    r->kv_cap_tokens = 0;
    backlog_add(d, x->src_holder.kv_blocks);
}

static double kv_bytes(const disagg *d, int32_t from, double tokens)
{
    return tokens * cluster_kv_bytes_per_token(d->c, cluster_views(d->c)[from].pool);
}

/* Starts what is left to send of a detached, reserved hand-off. */
static void go(disagg *d, pd_xfer *x)
{
    const serve_req *r = &x->r->pub;
    if (!x->layerwise)
        send(d, x, kv_bytes(d, x->from, r->computed_tokens), 2);
    else if (x->part1_done)
        send(d, x, x->rest_bytes, 2);
    /* else: part 1 is still flowing; its end sends the rest */
}

static void wait_push(disagg *d, pd_xfer *x)
{
    x->next = NULL;
    if (d->wait_tail)
        d->wait_tail->next = x;
    else
        d->wait_head = x;
    d->wait_tail = x;
}

void disagg_on_freed(disagg *d)
{
    while (d->wait_head) {
        pd_xfer *x = d->wait_head;
        const serve_req *r = &x->r->pub;
        int32_t to = pick_decode(d, r, decode_blocks(d->c, x->from, req_seq_tokens(r)));
        if (to < 0 || !reserve(d, x, to, req_seq_tokens(r)))
            return;
        d->wait_head = x->next;
        if (!d->wait_head)
            d->wait_tail = NULL;
        go(d, x);
    }
}

/* ---- hooks ------------------------------------------------------------------------------ */

void disagg_on_iteration(disagg *d, const iter_info *it)
{
    cluster *c = d->c;
    if (d->mode != PD_LAYERWISE || cluster_pool_setup(c, cluster_views(c)[it->instance].pool)
                                       ->role != POOL_PREFILL)
        return;
    for (int32_t k = 0; k < it->n_items; k++) {
        serve_req *r = (serve_req *)it->items[k].req;
        int32_t q = it->items[k].tokens;
        req *rq = req_of(r);
        /* This iteration makes its first token (a layered prefill's layer
         * groups are left to after_prefill). */
        if (it->items[k].layers || r->generated_tokens || rq->pd ||
            r->computed_tokens + q != req_seq_tokens(r) || !decide(d, r))
            continue;
        int32_t to = pick_decode(d, r, decode_blocks(c, it->instance, req_seq_tokens(r) + 1));
        if (to < 0)
            continue;
        pd_xfer *x = xfer_alloc(d);
        x->r = rq;
        x->from = it->instance;
        if (!reserve(d, x, to, req_seq_tokens(r) + 1)) {
            xfer_free(d, x);
            continue;
        }
        rq->pd = x;
        x->layerwise = true;
        int32_t layers = cluster_pool_setup(c, cluster_views(c)[x->from].pool)->model.layers;
        double last = (double)q / layers;
        x->rest_bytes = kv_bytes(d, x->from, last);
        send(d, x, kv_bytes(d, x->from, r->computed_tokens + (double)q - last), 1);
        d->st.layerwise++;
    }
}

/* semi-PD: the decode worker sharing instance i's GPUs. */
static int32_t semi_partner(const disagg *d, int32_t i)
{
    int32_t np, nd;
    const int32_t *pm = cluster_pool_members(d->c, d->prefill_pool, &np);
    const int32_t *dm = cluster_pool_members(d->c, d->decode_pool, &nd);
    for (int32_t k = 0; k < np && k < nd; k++)
        if (pm[k] == i)
            return dm[k];
    return -1;
}

void disagg_on_prefill_done(disagg *d, int32_t i, serve_req *r)
{
    req *q = req_of(r);
    pd_xfer *x = q->pd;
    if (d->semi) {
        /* Same GPUs, same KV: the request changes worker with its blocks. */
        int32_t to = semi_partner(d, i);
        if (to < 0 || !decide(d, r)) {
            d->st.local++;
            return;
        }
        q->move_to = to;
        q->move_mode = MOVE_PD_HANDOFF;
        instance_detach(cluster_instance(d->c, i), r);
        return;
    }
    if (!x) {
        if (!decide(d, r)) {
            d->st.local++;
            return;
        }
        int32_t to = pick_decode(d, r, decode_blocks(d->c, i, req_seq_tokens(r)));
        if (to < 0 && !d->wait_when_full) {
            d->st.local++;
            return;
        }
        x = xfer_alloc(d);
        x->r = q;
        x->from = i;
        q->pd = x;
        if (to >= 0)
            SIM_ASSERT(reserve(d, x, to, req_seq_tokens(r)));
    }
    x->ready_ns = sim_now(cluster_engine(d->c));
    q->move_to = i;   /* under way: no other move may start */
    q->move_mode = MOVE_PD_HANDOFF;
    instance_detach(cluster_instance(d->c, i), r);
}

void disagg_on_detached(disagg *d, int32_t from, serve_req *r)
{
    req *q = req_of(r);
    if (d->semi) {
        int32_t to = q->move_to;
        q->move_to = -1;
        d->st.handoffs++;
        sim_hist_add(&d->visible, 0);
        sim_hist_add(&d->wait, 0);
        sim_hist_add(&d->xfer, 0);
        cluster_note_handoff(d->c, from);
        instance_attach(cluster_instance(d->c, to), r);
        return;
    }
    pd_xfer *x = q->pd;
    SIM_ASSERT(x && x->from == from);
    x->detached = true;
    take_src_blocks(d, x, r);
    if (x->to >= 0) {
        go(d, x);
        return;
    }
    d->st.waited++;
    wait_push(d, x);
    disagg_on_freed(d);
}

void disagg_forget(disagg *d, serve_req *r)
{
    req *q = req_of(r);
    pd_xfer *x = q->pd;
    if (!x)
        return;
    SIM_ASSERT(!x->detached && x->layerwise);
    if (x->x)
        net_cancel(cluster_net(d->c), x->x);
    instance_release_kv(cluster_instance(d->c, x->to), &x->dst_holder, &x->dst_hold);
    d->st.layerwise--;
    q->pd = NULL;
    xfer_free(d, x);
}

/* ---- creation and results ---------------------------------------------------------------- */

/* cluster.disagg.semi_pd: the SM shares, and pools that can pair up. */
static int parse_semi(disagg *d, cJSON *cfg, const char *path, sim_err *err)
{
    static const char *const keys[] = {"prefill_sm", "decode_sm", "contention", NULL};
    char spath[320];
    cJSON *o;
    if (jcfg_obj(cfg, path, "semi_pd", &o, spath, err) ||
        jcfg_check_keys(o, spath, keys, err) ||
        jcfg_num(o, spath, "prefill_sm", 0.8, 0.01, 1, &d->prefill_sm, err) ||
        jcfg_num(o, spath, "decode_sm", 1.0, 0.01, 1, &d->decode_sm, err) ||
        jcfg_bool(o, spath, "contention", 0, &d->contention, err))
        return -1;
    const pool_setup *p = cluster_pool_setup(d->c, d->prefill_pool);
    const pool_setup *q = cluster_pool_setup(d->c, d->decode_pool);
    if (d->prefill_pool > d->decode_pool || p->instances != q->instances ||
        p->max_instances != p->instances || q->max_instances != q->instances ||
        strcmp(p->model.name, q->model.name) || strcmp(p->gpu.name, q->gpu.name) ||
        p->par.tp != q->par.tp)
        return sim_errf(err, "%s: semi-PD pairs prefill instance k with decode instance k on "
                        "one GPU set: expected the prefill pool before the decode pool, with "
                        "the same instances (and no scaling), model, gpu and tp", spath);
    d->semi = true;
    return 0;
}

bool disagg_semi_pd(const disagg *d) { return d->semi; }

bool disagg_set_split(disagg *d, double p, double q)
{
    if (!d->semi || !(p >= 0.05 && p <= 1 && q >= 0.05 && q <= 1) ||
        (p == d->prefill_sm && q == d->decode_sm))
        return false;
    d->prefill_sm = p;
    d->decode_sm = q;
    const int32_t pools[2] = {d->prefill_pool, d->decode_pool};
    const pool_role roles[2] = {POOL_PREFILL, POOL_DECODE};
    for (int k = 0; k < 2; k++) {
        double t, e, f;
        disagg_semi_scales(d, roles[k], &t, &e, &f);
        int32_t n;
        const int32_t *m = cluster_pool_members(d->c, pools[k], &n);
        for (int32_t j = 0; j < n; j++)
            instance_set_sm(cluster_instance(d->c, m[j]), t, e, f);
    }
    d->st.splits++;
    return true;
}
int32_t disagg_prefill_pool(const disagg *d) { return d->prefill_pool; }

void disagg_semi_scales(const disagg *d, pool_role role, double *gpu_time_scale,
                        double *energy_scale, double *sm_share)
{
    double f = role == POOL_PREFILL ? d->prefill_sm : d->decode_sm;
    double slow = role == POOL_PREFILL ? 1 / f : 1 / fmin(1, f / 0.5);
    *gpu_time_scale = slow;
    *energy_scale = f * slow;
    *sm_share = d->contention ? f : 0;
}

disagg *disagg_create(cluster *c, cJSON *cfg, const char *path, sim_err *err)
{
    static const char *const keys[] = {"decider", "min_prompt_tokens", "transfer",
                                       "when_full", "semi_pd", NULL};
    const char *decider, *mode, *full;
    int64_t min_prompt;
    if (jcfg_check_keys(cfg, path, keys, err) ||
        jcfg_str(cfg, path, "decider", "always", &decider, err) ||
        jcfg_int(cfg, path, "min_prompt_tokens", 16, 0, INT32_MAX, &min_prompt, err) ||
        jcfg_str(cfg, path, "transfer", "after_prefill", &mode, err) ||
        jcfg_str(cfg, path, "when_full", "wait", &full, err))
        return NULL;
    disagg *d = sim_xcalloc(1, sizeof *d);
    d->c = c;
    d->min_prompt_tokens = min_prompt;
    d->decode_pool = -1;
    if (!strcmp(decider, "always"))
        d->decider = PD_ALWAYS;
    else if (!strcmp(decider, "length"))
        d->decider = PD_LENGTH;
    else if (!strcmp(decider, "uncached"))
        d->decider = PD_UNCACHED;
    else {
        sim_errf(err, "%s.decider: expected one of: always, length, uncached; got \"%s\"",
                 path, decider);
        goto fail;
    }
    if (!strcmp(mode, "after_prefill"))
        d->mode = PD_AFTER_PREFILL;
    else if (!strcmp(mode, "layerwise"))
        d->mode = PD_LAYERWISE;
    else {
        sim_errf(err, "%s.transfer: expected \"after_prefill\" or \"layerwise\", got \"%s\"",
                 path, mode);
        goto fail;
    }
    if (!strcmp(full, "wait") || !strcmp(full, "local"))
        d->wait_when_full = !strcmp(full, "wait");
    else {
        sim_errf(err, "%s.when_full: expected \"wait\" or \"local\", got \"%s\"", path, full);
        goto fail;
    }
    d->prefill_pool = -1;
    for (int32_t k = 0; k < cluster_n_pools(c); k++) {
        pool_role role = cluster_pool_setup(c, k)->role;
        if (role == POOL_PREFILL && d->prefill_pool < 0)
            d->prefill_pool = k;
        if (role == POOL_DECODE && d->decode_pool < 0)
            d->decode_pool = k;
    }
    if (d->prefill_pool < 0 || d->decode_pool < 0) {
        sim_errf(err, "%s: disaggregation needs a pool of role \"prefill\" and one of role "
                 "\"decode\" in cluster.pools", path);
        goto fail;
    }
    cJSON *semi = cJSON_GetObjectItemCaseSensitive(cfg, "semi_pd");
    if (semi && parse_semi(d, cfg, path, err))
        goto fail;
    sim_hist_init(&d->visible);
    sim_hist_init(&d->wait);
    sim_hist_init(&d->xfer);
    return d;
fail:
    free(d);
    return NULL;
}

void disagg_destroy(disagg *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_slabs; i++) {
        for (int j = 0; j < PD_SLAB; j++) {
            kv_req_fini(&d->slabs[i][j].dst_hold);
            kv_req_fini(&d->slabs[i][j].src_hold);
        }
        free(d->slabs[i]);
    }
    free(d->slabs);
    free(d->cands);
    sim_hist_fini(&d->visible);
    sim_hist_fini(&d->wait);
    sim_hist_fini(&d->xfer);
    free(d);
}

static pctl pctl_of(const sim_hist *h)
{
    return (pctl){sim_hist_mean(h) / 1e9, sim_hist_quantile(h, 0.5) / 1e9,
                  sim_hist_quantile(h, 0.9) / 1e9, sim_hist_quantile(h, 0.99) / 1e9};
}

void disagg_get_stats(const disagg *d, disagg_stats *out)
{
    *out = d->st;
    out->prefill_sm = d->prefill_sm;
    out->decode_sm = d->decode_sm;
    out->visible_s = pctl_of(&d->visible);
    out->wait_s = pctl_of(&d->wait);
    out->xfer_s = pctl_of(&d->xfer);
    sim_time_ns now = sim_now(cluster_engine(d->c));
    double area = d->backlog_area + (double)d->backlog_blocks * (double)(now - d->backlog_since);
    out->backlog_mean_blocks = now > 0 ? area / (double)now : 0;
}

void disagg_moves_note(const cluster *c, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = 0;
    const disagg *d = cluster_disagg(c);
    if (d) {
        disagg_stats st;
        disagg_get_stats(d, &st);
        used += (size_t)snprintf(
            buf + used, size - used,
            "  disaggregation         %llu hand-offs (%llu layerwise, %llu waited for decode "
            "room), %llu decoded locally, %.2f GB KV sent\n"
            "  KV hand-off            visible mean %.2f p99 %.2f ms; decode wait mean %.2f "
            "p99 %.2f ms; prefill-side backlog peak %lld blocks, mean %.1f\n",
            (unsigned long long)st.handoffs, (unsigned long long)st.layerwise,
            (unsigned long long)st.waited, (unsigned long long)st.local, st.bytes / 1e9,
            st.visible_s.mean * 1e3, st.visible_s.p99 * 1e3, st.wait_s.mean * 1e3,
            st.wait_s.p99 * 1e3, (long long)st.backlog_peak_blocks, st.backlog_mean_blocks);
    }
    migrate_stats ms;
    migrate_get_stats(cluster_migrate(c), &ms);
    if ((d || ms.started) && used < size) {
        /* The busiest instance-to-instance link over the run. */
        net *n = cluster_net((cluster *)c);
        sim_time_ns now = sim_now(cluster_engine((cluster *)c));
        double best = -1;
        net_link at = -1;
        for (net_link l = 0; l < net_link_count(n); l++) {
            const char *name = net_link_name(n, l);
            if (!strstr(name, "nic") && !strstr(name, "nvlink"))
                continue;
            net_link_stats ls;
            net_link_stats_get(n, l, now, &ls);
            double u = now > 0 ? ls.bytes / (net_link_bytes_per_s(n, l) * (double)now / 1e9) : 0;
            if (u > best)
                best = u, at = l;
        }
        if (at >= 0)
            used += (size_t)snprintf(buf + used, size - used,
                                     "  busiest link           %s, %.2f%% utilised over the run\n",
                                     net_link_name(n, at), 100 * best);
    }
    if (d && d->semi && used < size) {
        disagg_stats st;
        disagg_get_stats(d, &st);
        used += (size_t)snprintf(buf + used, size - used,
                                 "  semi-PD                SM shares prefill %.2f, decode %.2f at the "
                                 "end; %llu split changes\n", st.prefill_sm, st.decode_sm,
                                 (unsigned long long)st.splits);
    }
    if (ms.started && used < size)
        snprintf(buf + used, size - used,
                 "  live migration         %llu started, %llu completed, aborted %llu dst / "
                 "%llu src / %llu stages; %.2f stages each, %.2f GB; downtime p50 %.2f p99 "
                 "%.2f ms\n",
                 (unsigned long long)ms.started, (unsigned long long)ms.completed,
                 (unsigned long long)ms.aborted_dst, (unsigned long long)ms.aborted_src,
                 (unsigned long long)ms.aborted_stages,
                 ms.completed ? (double)ms.stages / (double)ms.completed : 0, ms.bytes / 1e9,
                 ms.downtime_s.p50 * 1e3, ms.downtime_s.p99 * 1e3);
}
