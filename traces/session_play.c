/* Replaying session programs (see session_play.h).
 *
 * Live threads sit in a slot array; a thread's session id is its slot + 1 in
 * the low 32 bits and the slot's generation above, so a completion finds its
 * thread in O(1) and a stale id finds nothing. Due calls and lane restarts
 * share one binary heap ordered by (time, sequence number): equal times keep
 * the order they were scheduled in. A call is yielded only when it is due
 * (its time <= now), so arrivals never go back in time, whatever completions
 * come in between. */
#include "traces/session_play.h"

#include <stdlib.h>
#include <string.h>

#include "sim/jsoncfg.h"

/* ---- programs --------------------------------------------------------------- */

void sp_program_init(sp_program *p) { memset(p, 0, sizeof *p); }

void sp_program_fini(sp_program *p)
{
    free(p->items);
    free(p->threads);
    free(p->ids);
    free(p->prev);
    memset(p, 0, sizeof *p);
}

void sp_program_clear(sp_program *p)
{
    p->n_items = p->n_threads = p->n_ids = p->n_prev = 0;
    p->block_tokens = 0;
    p->global_ids = false;
}

int32_t sp_add_thread(sp_program *p)
{
    sim_grow((void **)&p->threads, &p->threads_cap, p->n_threads + 1, sizeof *p->threads);
    p->threads[p->n_threads] = (sp_thread){.first_item = (int32_t)p->n_items};
    p->n_prev = 0;
    return (int32_t)p->n_threads++;
}

static sp_item *new_item(sp_program *p)
{
    SIM_ASSERT(p->n_threads > 0);
    sim_grow((void **)&p->items, &p->items_cap, p->n_items + 1, sizeof *p->items);
    sp_item *it = &p->items[p->n_items++];
    *it = (sp_item){.child = -1};
    p->threads[p->n_threads - 1].n_items++;
    return it;
}

void sp_add_call(sp_program *p, int32_t input_tokens, int32_t output_tokens,
                 sim_time_ns t_ns, sim_time_ns gap_ns, const uint64_t *ids, int32_t n_ids,
                 int32_t id_tokens)
{
    int32_t lcp = 0;
    while (lcp < n_ids && (size_t)lcp < p->n_prev && p->prev[lcp] == ids[lcp])
        lcp++;
    size_t n_new = (size_t)(n_ids - lcp);
    sim_grow((void **)&p->ids, &p->ids_cap, p->n_ids + n_new, sizeof *p->ids);
    sp_item *it = new_item(p);
    it->input_tokens = input_tokens;
    it->output_tokens = output_tokens;
    it->t_ns = t_ns;
    it->gap_ns = gap_ns;
    it->lcp = lcp;
    it->n_new = (int32_t)n_new;
    it->ids_at = (int64_t)p->n_ids;
    it->id_tokens = id_tokens;
    if (n_new)
        memcpy(p->ids + p->n_ids, ids + lcp, n_new * sizeof *ids);
    p->n_ids += n_new;
    sim_grow((void **)&p->prev, &p->prev_cap, (size_t)n_ids, sizeof *p->prev);
    if (n_ids > 0)
        memcpy(p->prev, ids, (size_t)n_ids * sizeof *ids);
    p->n_prev = (size_t)n_ids;
}

int32_t sp_add_spawn(sp_program *p, int32_t n, sim_time_ns t_ns)
{
    sp_item *it = new_item(p);
    it->spawn = true;
    it->n_children = n;
    it->t_ns = t_ns;
    return (int32_t)(it - p->items);
}

void sp_set_children(sp_program *p, int32_t item, int32_t first_thread)
{
    SIM_ASSERT(item >= 0 && (size_t)item < p->n_items && p->items[item].spawn);
    p->items[item].child = first_thread;
}

void sp_program_finish(sp_program *p)
{
    for (size_t t = 0; t < p->n_threads; t++) {
        const sp_thread *th = &p->threads[t];
        int32_t last = -1;
        for (int32_t k = 0; k < th->n_items; k++) {
            sp_item *it = &p->items[th->first_item + k];
            if (it->spawn)
                SIM_ASSERT(it->n_children == 0 ||
                           (it->child > (int32_t)t &&
                            (size_t)(it->child + it->n_children) <= p->n_threads));
            else
                last = th->first_item + k;
        }
        if (last >= 0)
            p->items[last].last_call = true;
    }
}

typedef struct id_buf {
    uint64_t *v;
    size_t n, cap;
} id_buf;

/* b := its first it->lcp ids, then it's new ones. */
static void ids_step(id_buf *b, const sp_program *p, const sp_item *it)
{
    size_t n = (size_t)it->lcp + (size_t)it->n_new;
    SIM_ASSERT((size_t)it->lcp <= b->n);
    sim_grow((void **)&b->v, &b->cap, n, sizeof *b->v);
    if (it->n_new)
        memcpy(b->v + it->lcp, p->ids + it->ids_at, (size_t)it->n_new * sizeof *b->v);
    b->n = n;
}

static void visit_thread(const sp_program *p, int32_t t, sp_visit_fn *fn, void *ctx, int depth)
{
    SIM_ASSERT(depth < 64);
    id_buf b = {0};
    const sp_thread *th = &p->threads[t];
    for (int32_t k = 0; k < th->n_items; k++) {
        const sp_item *it = &p->items[th->first_item + k];
        if (it->spawn) {
            for (int32_t c = 0; c < it->n_children; c++)
                visit_thread(p, it->child + c, fn, ctx, depth + 1);
            continue;
        }
        ids_step(&b, p, it);
        fn(ctx, p, t, it, b.v, (int32_t)b.n);
    }
    free(b.v);
}

void sp_program_visit(const sp_program *p, sp_visit_fn *fn, void *ctx)
{
    if (p->n_threads)
        visit_thread(p, 0, fn, ctx, 0);
}

/* ---- options ------------------------------------------------------------------ */

int sp_opts_parse(cJSON *params, const char *path, sp_opts *o, sim_err *err)
{
    const char *timing;
    double scale, max_gap_s, session_gap_s;
    memset(o, 0, sizeof *o);
    if (jcfg_int(params, path, "clients", 0, 0, 1 << 24, &o->clients, err) ||
        jcfg_str(params, path, "timing", "think", &timing, err) ||
        jcfg_num(params, path, "time_scale", 1, 1e-6, 1e6, &scale, err) ||
        jcfg_num(params, path, "max_gap_s", 0, 0, 1e9, &max_gap_s, err) ||
        jcfg_num(params, path, "session_gap_s", 0, 0, 1e9, &session_gap_s, err) ||
        jcfg_int(params, path, "max_sessions", 0, 0, INT64_MAX / 2, &o->max_sessions, err))
        return -1;
    if (!strcmp(timing, "think"))
        o->timing = SP_THINK;
    else if (!strcmp(timing, "recorded"))
        o->timing = SP_RECORDED;
    else
        return sim_errf(err, "%s.timing: expected \"think\" or \"recorded\", got \"%s\"", path,
                        timing);
    o->time_scale = scale;
    o->max_gap_ns = sim_time_add(0, max_gap_s * 1e9);
    o->session_gap_ns = sim_time_add(0, session_gap_s * 1e9);
    if (cJSON_GetObjectItemCaseSensitive(params, "session_arrival")) {
        char sub[256];
        cJSON *a;
        if (jcfg_obj(params, path, "session_arrival", &a, sub, err) ||
            arrival_parse(a, sub, &o->arrival, err))
            return -1;
        o->has_arrival = true;
        if (o->arrival.kind == ARRIVAL_CLOSED_LOOP) {
            arrival_fini(&o->arrival);
            o->has_arrival = false;
            return sim_errf(err, "%s.session_arrival: a closed loop of sessions is "
                            "\"clients\"; give an open arrival process here (poisson, ...)",
                            path);
        }
    }
    if ((o->clients > 0) == o->has_arrival) {
        sp_opts_fini(o);
        return sim_errf(err, "%s: expected one of \"clients\" (lanes, each playing one "
                        "session after another) or \"session_arrival\" (an arrival process "
                        "of session starts)", path);
    }
    return 0;
}

void sp_opts_fini(sp_opts *o)
{
    if (o->has_arrival)
        arrival_fini(&o->arrival);
    o->has_arrival = false;
}

/* ---- the player ------------------------------------------------------------------ */

typedef struct play {
    sp_program prog;
    uint64_t salt;          /* mixed into local ids; 0: global ids */
    sim_time_ns start_ns;
    int32_t lane;           /* -1: an open-loop start */
} play;

typedef struct rthread {
    uint64_t session_id;    /* 0: a free slot */
    uint64_t root;          /* the tree's root thread's session id */
    uint32_t gen;
    int32_t play, thread, item, parent, pending, turn;
    bool in_flight, started;   /* started: an item is behind it (gaps apply) */
    sim_time_ns start_ns, done_ns;
    id_buf cur;
} rthread;

typedef struct due {
    sim_time_ns t;
    uint64_t seq;
    int32_t slot;           /* a thread; < 0: lane -1 - slot starts a session */
} due;

struct sp_player {
    sp_opts o;
    sp_next_program_fn *fn;
    void *ctx;
    arrival_gen gen;
    sim_time_ns next_start_ns;   /* open loop; SIM_TIME_NEVER: no more */
    bool exhausted;              /* the source has no more programs */

    play *plays;
    size_t n_plays, plays_cap;
    int32_t *free_plays;
    size_t n_free_plays, free_plays_cap;

    rthread *th;
    size_t n_th, th_cap;
    int32_t *free_th;
    size_t n_free_th, free_th_cap;
    int64_t live;                /* threads alive */

    due *heap;
    size_t n_heap, heap_cap;
    uint64_t seq;

    uint64_t trees, threads;
    uint64_t *out_ids;
    size_t out_cap;
};

static bool due_before(const due *a, const due *b)
{
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void heap_push(sp_player *pl, sim_time_ns t, int32_t slot)
{
    sim_grow((void **)&pl->heap, &pl->heap_cap, pl->n_heap + 1, sizeof *pl->heap);
    size_t i = pl->n_heap++;
    due d = {.t = t, .seq = pl->seq++, .slot = slot};
    while (i > 0 && due_before(&d, &pl->heap[(i - 1) / 2])) {
        pl->heap[i] = pl->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    pl->heap[i] = d;
}

static due heap_pop(sp_player *pl)
{
    due top = pl->heap[0], last = pl->heap[--pl->n_heap];
    size_t i = 0, n = pl->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && due_before(&pl->heap[c + 1], &pl->heap[c]))
            c++;
        if (!due_before(&pl->heap[c], &last))
            break;
        pl->heap[i] = pl->heap[c];
        i = c;
    }
    if (n)
        pl->heap[i] = last;
    return top;
}

sp_player *sp_player_create(const sp_opts *o, gsl_rng *arrival_rng, sp_next_program_fn *fn,
                            void *ctx)
{
    sp_player *pl = sim_xcalloc(1, sizeof *pl);
    pl->o = *o;
    pl->fn = fn;
    pl->ctx = ctx;
    pl->next_start_ns = SIM_TIME_NEVER;
    if (o->has_arrival) {
        arrival_gen_init(&pl->gen, &pl->o.arrival, arrival_rng);
        sim_time_ns t;
        if (arrival_gen_next(&pl->gen, 0, &t) == ARRIVAL_AT)
            pl->next_start_ns = t;
    } else {
        for (int64_t l = 0; l < o->clients; l++)
            heap_push(pl, 0, (int32_t)(-1 - l));
    }
    return pl;
}

void sp_player_destroy(sp_player *pl)
{
    if (!pl)
        return;
    if (pl->o.has_arrival)
        arrival_gen_fini(&pl->gen);
    sp_opts_fini(&pl->o);
    for (size_t i = 0; i < pl->n_plays; i++)
        sp_program_fini(&pl->plays[i].prog);
    for (size_t i = 0; i < pl->n_th; i++)
        free(pl->th[i].cur.v);
    free(pl->plays);
    free(pl->free_plays);
    free(pl->th);
    free(pl->free_th);
    free(pl->heap);
    free(pl->out_ids);
    free(pl);
}

uint64_t sp_player_trees(const sp_player *pl) { return pl->trees; }
uint64_t sp_player_threads(const sp_player *pl) { return pl->threads; }

static sim_time_ns scaled(const sp_player *pl, sim_time_ns ns)
{
    return pl->o.time_scale == 1 ? ns : llround((double)ns * pl->o.time_scale);
}

static int32_t new_thread(sp_player *pl, int32_t p, int32_t thread, int32_t parent,
                          sim_time_ns now)
{
    int32_t s;
    if (pl->n_free_th) {
        s = pl->free_th[--pl->n_free_th];
    } else {
        sim_grow((void **)&pl->th, &pl->th_cap, pl->n_th + 1, sizeof *pl->th);
        s = (int32_t)pl->n_th++;
        pl->th[s] = (rthread){0};
    }
    rthread *t = &pl->th[s];
    t->gen++;
    t->session_id = ((uint64_t)t->gen << 32) | (uint64_t)(s + 1);
    t->play = p;
    t->thread = thread;
    t->item = t->pending = t->turn = 0;
    t->parent = parent;
    t->in_flight = t->started = false;
    t->start_ns = t->done_ns = now;
    t->cur.n = 0;
    t->root = parent >= 0 ? pl->th[parent].root : t->session_id;
    pl->live++;
    pl->threads++;
    return s;
}

static void advance(sp_player *pl, int32_t s, sim_time_ns now);

/* Thread s has run its last item at `now`. */
static void finish_thread(sp_player *pl, int32_t s, sim_time_ns now)
{
    rthread *t = &pl->th[s];
    int32_t parent = t->parent, p = t->play;
    t->session_id = 0;
    sim_grow((void **)&pl->free_th, &pl->free_th_cap, pl->n_free_th + 1, sizeof *pl->free_th);
    pl->free_th[pl->n_free_th++] = s;
    pl->live--;
    if (parent >= 0) {
        rthread *u = &pl->th[parent];
        if (now > u->done_ns)
            u->done_ns = now;
        if (--u->pending == 0)
            advance(pl, parent, u->done_ns);
        return;
    }
    int32_t lane = pl->plays[p].lane;
    sim_grow((void **)&pl->free_plays, &pl->free_plays_cap, pl->n_free_plays + 1,
             sizeof *pl->free_plays);
    pl->free_plays[pl->n_free_plays++] = p;
    if (lane >= 0)
        heap_push(pl, sim_time_add(now, (double)pl->o.session_gap_ns), -1 - lane);
}

/* Thread s goes on from its next item at `now` (it has finished what came
 * before): schedules its next call, starts its children, or ends. */
static void advance(sp_player *pl, int32_t s, sim_time_ns now)
{
    rthread *t = &pl->th[s];
    const sp_program *prog = &pl->plays[t->play].prog;
    const sp_thread *th = &prog->threads[t->thread];
    while (t->item < th->n_items) {
        const sp_item *it = &prog->items[th->first_item + t->item];
        if (it->spawn) {
            t->item++;
            t->started = true;
            if (it->n_children == 0)
                continue;
            int32_t p = t->play, first = it->child, n = it->n_children;
            t->pending = n;
            for (int32_t c = 0; c < n; c++) {
                int32_t k = new_thread(pl, p, first + c, s, now);
                advance(pl, k, now);   /* may finish it, and then s */
            }
            return;
        }
        sim_time_ns ready = now;
        if (t->started) {
            sim_time_ns gap = scaled(pl, it->gap_ns);
            if (pl->o.max_gap_ns && gap > pl->o.max_gap_ns)
                gap = pl->o.max_gap_ns;
            ready = sim_time_add(now, (double)gap);
        }
        if (pl->o.timing == SP_RECORDED) {
            sim_time_ns rec = sim_time_add(pl->plays[t->play].start_ns,
                                           (double)scaled(pl, it->t_ns));
            if (rec > ready)
                ready = rec;
        }
        heap_push(pl, ready, s);
        return;
    }
    finish_thread(pl, s, now);
}

/* Starts a session tree at `now` on `lane` (-1: open loop): 1, 0 when the
 * source has none left, -1 on error. */
static int start_play(sp_player *pl, sim_time_ns now, int32_t lane, sim_err *err)
{
    if (pl->exhausted || (pl->o.max_sessions && (int64_t)pl->trees >= pl->o.max_sessions))
        return 0;
    int32_t p;
    if (pl->n_free_plays) {
        p = pl->free_plays[--pl->n_free_plays];
    } else {
        sim_grow((void **)&pl->plays, &pl->plays_cap, pl->n_plays + 1, sizeof *pl->plays);
        p = (int32_t)pl->n_plays++;
        sp_program_init(&pl->plays[p].prog);
    }
    play *y = &pl->plays[p];
    sp_program_clear(&y->prog);
    int rc = pl->fn(pl->ctx, &y->prog, err);
    if (rc <= 0 || y->prog.n_threads == 0) {
        sim_grow((void **)&pl->free_plays, &pl->free_plays_cap, pl->n_free_plays + 1,
                 sizeof *pl->free_plays);
        pl->free_plays[pl->n_free_plays++] = p;
        if (rc < 0)
            return -1;
        if (rc == 0) {
            pl->exhausted = true;
            return 0;
        }
        if (lane >= 0)   /* an empty program: the lane goes on to the next */
            heap_push(pl, now, -1 - lane);
        return 1;
    }
    pl->trees++;
    y->salt = y->prog.global_ids ? 0 : sim_hash_mix(UINT64_C(0x5e5510ce), pl->trees);
    y->start_ns = now;
    y->lane = lane;
    int32_t s = new_thread(pl, p, 0, -1, now);
    advance(pl, s, now);
    return 1;
}

static void emit(sp_player *pl, int32_t s, sim_time_ns now, wl_request *out)
{
    rthread *t = &pl->th[s];
    const play *y = &pl->plays[t->play];
    const sp_program *prog = &y->prog;
    const sp_item *it = &prog->items[prog->threads[t->thread].first_item + t->item];
    ids_step(&t->cur, prog, it);
    size_t n = t->cur.n;
    const uint64_t *ids = t->cur.v;
    if (y->salt && n) {
        sim_grow((void **)&pl->out_ids, &pl->out_cap, n, sizeof *pl->out_ids);
        for (size_t i = 0; i < n; i++) {
            uint64_t v = t->cur.v[i];
            pl->out_ids[i] = v & SP_SHARED_ID ? v : sim_hash_mix(y->salt, v);
        }
        ids = pl->out_ids;
    }
    out->arrival_ns = now;
    out->input_tokens = it->input_tokens;
    out->output_tokens = it->output_tokens;
    out->prefix_blocks = n ? ids : NULL;
    out->n_prefix_blocks = (int32_t)n;
    out->prefix_block_tokens = n ? prog->block_tokens : 0;
    out->prefix_id_tokens = n ? it->id_tokens : 0;
    out->session_id = t->session_id;
    out->session_root = t->root;
    out->turn = t->turn++;
    out->session_last = it->last_call;
    out->session_start_ns = t->start_ns;
    out->session_gap_ns = t->started && now > t->done_ns ? now - t->done_ns : 0;
    t->item++;
    t->started = true;
    t->in_flight = true;
}

int sp_player_next(sp_player *pl, sim_time_ns now, wl_request *out, sim_err *err)
{
    for (;;) {
        while (pl->next_start_ns <= now && !pl->exhausted) {
            sim_time_ns at = pl->next_start_ns;
            int rc = start_play(pl, at, -1, err);
            if (rc < 0)
                return WL_ERROR;
            if (rc == 0) {
                pl->next_start_ns = SIM_TIME_NEVER;
                break;
            }
            sim_time_ns t;
            pl->next_start_ns = arrival_gen_next(&pl->gen, at, &t) == ARRIVAL_AT && t >= at
                                    ? t : SIM_TIME_NEVER;
        }
        if (pl->n_heap && pl->heap[0].t <= now) {
            due d = heap_pop(pl);
            if (d.slot < 0) {
                if (start_play(pl, d.t, -1 - d.slot, err) < 0)
                    return WL_ERROR;
                continue;
            }
            emit(pl, d.slot, now, out);
            return WL_REQUEST;
        }
        break;
    }
    sim_time_ns t = pl->n_heap ? pl->heap[0].t : SIM_TIME_NEVER;
    if (!pl->exhausted && pl->next_start_ns < t)
        t = pl->next_start_ns;
    if (t != SIM_TIME_NEVER || pl->live > 0) {
        out->arrival_ns = t;
        return WL_WAIT;
    }
    return WL_END;
}

int sp_player_complete(sp_player *pl, sim_time_ns now, uint64_t session_id)
{
    uint64_t slot = (session_id & UINT64_C(0xffffffff));
    if (slot == 0 || slot > pl->n_th)
        return 0;
    int32_t s = (int32_t)(slot - 1);
    rthread *t = &pl->th[s];
    if (t->session_id != session_id || !t->in_flight)
        return 0;
    t->in_flight = false;
    t->done_ns = now;
    advance(pl, s, now);
    return 1;
}
