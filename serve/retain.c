/* Pinned session KV (see retain.h). Pins live in an array, unordered;
 * next_expiry_ns is the earliest TTL, so expiry costs nothing until one is
 * due. */
#include "serve/retain.h"

#include <stdlib.h>

typedef struct pin {
    uint64_t session;
    serve_req holder;   /* holds the blocks: kv_blocks, kv_cap_tokens */
    kv_req hold;        /* and their table */
    sim_time_ns since_ns, expiry_ns;
} pin;

struct retain_store {
    const retain_policy_ops *ops;
    void *state;
    int32_t instance;
    sess_metrics *m;
    pin *pins;
    int32_t n, cap;
    int64_t pinned_blocks;
    sim_time_ns next_expiry_ns;
    double block_bytes;
};

void retain_set_block_bytes(retain_store *s, double bytes) { s->block_bytes = bytes; }

int retain_create(const retain_choice *c, int32_t instance, sess_metrics *m,
                  retain_store **out, sim_err *err)
{
    *out = NULL;
    if (!c->ops)
        return 0;
    retain_store *s = sim_xcalloc(1, sizeof *s);
    s->ops = c->ops;
    s->instance = instance;
    s->m = m;
    s->next_expiry_ns = SIM_TIME_NEVER;
    if (c->ops->init(c->params, c->path, &s->state, err)) {
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void retain_destroy(retain_store *s)
{
    if (!s)
        return;
    if (s->state && s->ops->destroy)
        s->ops->destroy(s->state);
    for (int32_t i = 0; i < s->cap; i++)
        kv_req_fini(&s->pins[i].hold);
    free(s->pins);
    free(s);
}

static retain_view view_of(const retain_store *s, const kv_cache *kv, sim_time_ns now)
{
    return (retain_view){.now = now, .instance = s->instance,
                         .kv_free_blocks = kv_free_blocks_of(kv),
                         .kv_total_blocks = kv_total_blocks(kv),
                         .pinned_blocks = s->pinned_blocks, .pins = s->n};
}

/* Releases pin i and removes it (the last pin takes its place; the
 * arrays of the removed one are kept for reuse). */
static void unpin(retain_store *s, kv_cache *kv, int32_t i, sim_time_ns now)
{
    pin *p = &s->pins[i];
    s->pinned_blocks -= p->holder.kv_blocks;
    s->m->pinned_block_ns += (double)p->holder.kv_blocks * (double)(now - p->since_ns);
    s->m->pinned_byte_ns += (double)p->holder.kv_blocks * s->block_bytes *
                            (double)(now - p->since_ns);
    kv_release(kv, &p->holder, &p->hold, now);
    pin tmp = *p;
    *p = s->pins[--s->n];
    s->pins[s->n] = tmp;
}

sim_time_ns retain_turn_end(retain_store *s, kv_cache *kv, serve_req *r, kv_req *k,
                            sim_time_ns now)
{
    if (!r->session_id || r->session_last || !kv_prefix_caching(kv))
        return 0;
    retain_view v = view_of(s, kv, now);
    sim_time_ns ttl = s->ops->on_turn_end(s->state, &v, r);
    if (ttl == RETAIN_OFFLOAD && s->ops->needs_tier) {
        s->m->offloads++;
        s->m->offload_blocks += (uint64_t)kv_release_offload(kv, r, k, now);
        return 0;   /* released: the caller's release finds nothing left */
    }
    if (ttl <= 0)
        return 0;
    for (int32_t i = 0; i < s->n; i++)   /* one pin a session: the older one goes */
        if (s->pins[i].session == r->session_id) {
            unpin(s, kv, i, now);
            break;
        }
    if (s->n == s->cap) {
        int32_t cap = s->cap ? 2 * s->cap : 16;
        s->pins = sim_xrealloc(s->pins, (size_t)cap * sizeof *s->pins);
        for (int32_t i = s->cap; i < cap; i++)
            s->pins[i] = (pin){0};
        s->cap = cap;
    }
    pin *p = &s->pins[s->n++];
    p->session = r->session_id;
    p->holder = (serve_req){.kv_blocks = r->kv_blocks, .kv_cap_tokens = r->kv_cap_tokens,
                            .instance = r->instance, .state = REQ_FINISHED};
    kv_req tmp = p->hold;   /* swap tables: r keeps the pin's old arrays */
    p->hold = *k;
    *k = tmp;
    k->n_registered = 0;
    r->kv_blocks = 0;
    r->kv_cap_tokens = 0;
    p->since_ns = now;
    p->expiry_ns = sim_time_add(now, (double)ttl);
    if (p->expiry_ns < s->next_expiry_ns)
        s->next_expiry_ns = p->expiry_ns;
    s->pinned_blocks += p->holder.kv_blocks;
    s->m->pins++;
    return p->expiry_ns;
}

void retain_turn_admitted(retain_store *s, kv_cache *kv, const serve_req *r, sim_time_ns now)
{
    if (r->turn > 0 && s->ops->on_turn_arrival) {
        retain_view v = view_of(s, kv, now);
        s->ops->on_turn_arrival(s->state, &v, r);
    }
    for (int32_t i = 0; i < s->n; i++)
        if (s->pins[i].session == r->session_id) {
            s->m->pin_reuses++;
            unpin(s, kv, i, now);
            return;
        }
}

void retain_expire(retain_store *s, kv_cache *kv, sim_time_ns now)
{
    if (now < s->next_expiry_ns)
        return;
    s->next_expiry_ns = SIM_TIME_NEVER;
    for (int32_t i = 0; i < s->n;) {
        if (s->pins[i].expiry_ns <= now) {
            s->m->pin_expiries++;
            unpin(s, kv, i, now);   /* pins[i] is now another pin */
            continue;
        }
        if (s->pins[i].expiry_ns < s->next_expiry_ns)
            s->next_expiry_ns = s->pins[i].expiry_ns;
        i++;
    }
}

void retain_release_all(retain_store *s, kv_cache *kv, sim_time_ns now)
{
    while (s->n > 0)
        unpin(s, kv, s->n - 1, now);
    s->next_expiry_ns = SIM_TIME_NEVER;
}

bool retain_release_one(retain_store *s, kv_cache *kv, sim_time_ns now)
{
    if (s->n == 0)
        return false;
    int32_t first = 0;
    for (int32_t i = 1; i < s->n; i++)
        if (s->pins[i].expiry_ns < s->pins[first].expiry_ns)
            first = i;
    s->m->pin_expiries++;
    unpin(s, kv, first, now);
    return true;
}
