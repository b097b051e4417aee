/* Live migration (see migrate.h).
 *
 * A migration is a mig record hung off the request (req.mig) from its start
 * to its end. The destination's blocks are held by the record's holder
 * (grown stage by stage) until the request lands and takes them; the
 * source's stay the request's until then. Every stage's copy is one
 * transfer on the links between the two instances. Invariants: a request
 * with mig set has move_to set; a record holds a transfer in flight or is
 * waiting for the request's detach, never neither; its reservation is
 * given back exactly once (landing moves it to the request, an abort
 * releases it). */
#include "serve/migrate.h"

#include <stdlib.h>
#include <string.h>

#include "serve/cluster_core.h"
#include "sim/jsoncfg.h"

typedef struct migrate migrate;
typedef struct mig {
    struct mig *next_free;
    migrate *m;
    req *r;
    uint64_t id;                /* the request's, to tell a reused slot */
    int32_t from, to;
    int32_t stage;
    int32_t preemptions;        /* the request's at the start */
    int64_t sent_blocks;
    double last_bytes;          /* the last stage's */
    serve_req holder;           /* the destination's blocks */
    kv_req hold;
    net_xfer x;
    sim_time_ns start_ns, down_ns;
} mig;

struct migrate {
    cluster *c;
    int32_t last_stage_max_blocks, max_stages;
    mig *free_list;
    mig **slabs;
    size_t n_slabs, slab_cap;
    migrate_stats st;
    sim_hist downtime, duration;
};

#define MIG_SLAB 32

static mig *mig_alloc(migrate *m)
{
    if (!m->free_list) {
        sim_grow((void **)&m->slabs, &m->slab_cap, m->n_slabs + 1, sizeof *m->slabs);
        mig *slab = sim_xcalloc(MIG_SLAB, sizeof *slab);
        m->slabs[m->n_slabs++] = slab;
        for (int i = MIG_SLAB - 1; i >= 0; i--) {
            slab[i].next_free = m->free_list;
            m->free_list = &slab[i];
        }
    }
    mig *x = m->free_list;
    m->free_list = x->next_free;
    kv_req keep = x->hold;      /* its table array is reused */
    *x = (mig){.m = m};
    x->hold.table = keep.table;
    x->hold.table_cap = keep.table_cap;
    return x;
}

static void mig_free(migrate *m, mig *x)
{
    x->next_free = m->free_list;
    m->free_list = x;
}

static int32_t block_tokens(const migrate *m, int32_t i)
{
    const cluster *c = m->c;
    return cluster_pool_setup(c, cluster_views(c)[i].pool)->batch.block_size_tokens;
}

static int64_t blocks_for(const migrate *m, int32_t i, int64_t tokens)
{
    int32_t b = block_tokens(m, i);
    return (tokens + b - 1) / b;
}

/* Ends x without moving the request: the destination's blocks go back. */
static void abort_mig(migrate *m, mig *x, uint64_t *counter)
{
    if (x->x)
        net_cancel(cluster_net(m->c), x->x);
    if (x->holder.kv_blocks)
        instance_release_kv(cluster_instance(m->c, x->to), &x->holder, &x->hold);
    if (x->r->pub.id == x->id && x->r->mig == x) {
        x->r->mig = NULL;
        x->r->move_to = -1;
    }
    (*counter)++;
    cluster_note_move_end(m->c, x->from, false);
    mig_free(m, x);
}

static void on_copied(void *ctx, net_xfer nx, int64_t last, sim_time_ns now);

static void send_blocks(migrate *m, mig *x, int64_t blocks, int64_t last)
{
    net_link path[2];
    int n = cluster_path(m->c, x->from, x->to, path);
    double bytes = (double)blocks * block_tokens(m, x->from) *
                   cluster_kv_bytes_per_token(m->c, cluster_views(m->c)[x->from].pool);
    m->st.bytes += bytes;
    x->sent_blocks += blocks;
    if (last)
        x->last_bytes = bytes;
    x->x = net_start(cluster_net(m->c), path, n, bytes, on_copied, x, last);
}

/* The next stage: a pre-copy of what was filled since the last one, or the
 * last stage (the request stops: its detach continues it). */
static void next_stage(migrate *m, mig *x)
{
    serve_req *r = &x->r->pub;
    if (r->state != REQ_RUNNING || r->instance != x->from || r->preemptions != x->preemptions) {
        abort_mig(m, x, &m->st.aborted_src);
        return;
    }
    if (++x->stage > m->max_stages) {
        abort_mig(m, x, &m->st.aborted_stages);
        return;
    }
    int64_t incr = blocks_for(m, x->from, r->computed_tokens) - x->sent_blocks;
    if (incr >= m->last_stage_max_blocks) {
        /* All but the block being written, while the request decodes. */
        int64_t n = incr - 1;
        if (!instance_reserve_blocks(cluster_instance(m->c, x->to), &x->holder, &x->hold,
                                     x->sent_blocks + n)) {
            abort_mig(m, x, &m->st.aborted_dst);
            return;
        }
        send_blocks(m, x, n, 0);
        return;
    }
    instance_detach(cluster_instance(m->c, x->from), r);
}

static void on_copied(void *ctx, net_xfer nx, int64_t last, sim_time_ns now)
{
    (void)nx;
    mig *x = ctx;
    migrate *m = x->m;
    x->x = 0;
    if (!last) {
        next_stage(m, x);
        return;
    }
    /* Landed: the source frees its blocks, the request takes the
     * destination's and queues there. */
    req *q = x->r;
    serve_req *r = &q->pub;
    instance_release_kv(cluster_instance(m->c, x->from), r, &q->kv);
    int32_t *old = q->kv.table;
    int32_t old_cap = q->kv.table_cap;
    q->kv.table = x->hold.table;
    q->kv.table_cap = x->hold.table_cap;
    x->hold.table = old;
    x->hold.table_cap = old_cap;
    r->kv_blocks = x->holder.kv_blocks;
    r->kv_cap_tokens = x->holder.kv_cap_tokens;
    x->holder.kv_blocks = 0;
    x->holder.kv_cap_tokens = 0;
    q->mig = NULL;
    q->move_to = -1;
    m->st.completed++;
    m->st.stages += (uint64_t)x->stage;
    m->st.last_stage_bytes += x->last_bytes;
    sim_hist_add(&m->downtime, now - x->down_ns);
    sim_hist_add(&m->duration, now - x->start_ns);
    cluster_note_move_end(m->c, x->from, true);
    int32_t to = x->to;
    mig_free(m, x);
    /* It resumes decoding in the destination's running set (Llumnix's
     * commit), or queues there when that set is full. */
    if (!instance_attach_running(cluster_instance(m->c, to), r))
        instance_attach(cluster_instance(m->c, to), r);
}

bool migrate_start(migrate *m, serve_req *r, int32_t to)
{
    req *q = req_of(r);
    SIM_ASSERT(!q->mig && r->state == REQ_RUNNING);
    mig *x = mig_alloc(m);
    x->r = q;
    x->id = r->id;
    x->from = r->instance;
    x->to = to;
    x->preemptions = r->preemptions;
    x->start_ns = sim_now(cluster_engine(m->c));
    q->mig = x;
    m->st.started++;
    next_stage(m, x);
    return q->mig == x;
}

void migrate_on_detached(migrate *m, int32_t from, serve_req *r)
{
    req *q = req_of(r);
    mig *x = q->mig;
    SIM_ASSERT(x && x->from == from);
    x->down_ns = sim_now(cluster_engine(m->c));
    instance *dst = cluster_instance(m->c, x->to);
    /* What the request needs there: its sequence and one more token. */
    int64_t need = blocks_for(m, x->to, (int64_t)r->computed_tokens + 1);
    if (need < x->holder.kv_blocks)
        need = x->holder.kv_blocks;
    if (instance_state(dst) != INST_ACTIVE ||
        !instance_reserve_blocks(dst, &x->holder, &x->hold, need)) {
        /* It resumes on the source, its blocks untouched. */
        abort_mig(m, x, &m->st.aborted_dst);
        instance_attach(cluster_instance(m->c, from), r);
        return;
    }
    int64_t rest = blocks_for(m, from, r->computed_tokens) - x->sent_blocks;
    send_blocks(m, x, rest > 0 ? rest : 0, 1);
}

void migrate_on_finished(migrate *m, serve_req *r)
{
    mig *x = req_of(r)->mig;
    if (x)
        abort_mig(m, x, &m->st.aborted_src);
}

migrate *migrate_create(cluster *c, cJSON *cfg, const char *path, sim_err *err)
{
    int64_t last = 16, stages = 3;
    if (cfg) {
        static const char *const keys[] = {"last_stage_max_blocks", "max_stages", NULL};
        if (jcfg_check_keys(cfg, path, keys, err) ||
            jcfg_int(cfg, path, "last_stage_max_blocks", 16, 1, 1 << 20, &last, err) ||
            jcfg_int(cfg, path, "max_stages", 3, 1, 1000, &stages, err))
            return NULL;
    }
    migrate *m = sim_xcalloc(1, sizeof *m);
    m->c = c;
    m->last_stage_max_blocks = (int32_t)last;
    m->max_stages = (int32_t)stages;
    sim_hist_init(&m->downtime);
    sim_hist_init(&m->duration);
    return m;
}

void migrate_destroy(migrate *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_slabs; i++) {
        for (int j = 0; j < MIG_SLAB; j++)
            kv_req_fini(&m->slabs[i][j].hold);
        free(m->slabs[i]);
    }
    free(m->slabs);
    sim_hist_fini(&m->downtime);
    sim_hist_fini(&m->duration);
    free(m);
}

static pctl pctl_of(const sim_hist *h)
{
    return (pctl){sim_hist_mean(h) / 1e9, sim_hist_quantile(h, 0.5) / 1e9,
                  sim_hist_quantile(h, 0.9) / 1e9, sim_hist_quantile(h, 0.99) / 1e9};
}

void migrate_get_stats(const migrate *m, migrate_stats *out)
{
    *out = m->st;
    out->downtime_s = pctl_of(&m->downtime);
    out->duration_s = pctl_of(&m->duration);
}
