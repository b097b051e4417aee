/* Session-affinity routing: a session's turns go to the instance that served
 * its previous turn, where its context is likely still cached (llm-d's
 * session-token scorer, AISimulate's session binding; spec I). The binding
 * lapses `ttl_s` (default 3600) after the session's last routed turn, and
 * is broken when the bound instance is no longer a candidate or its
 * outstanding tokens exceed the least-loaded candidate's by more than
 * `max_extra_tokens` (default 32768; 0: kept only while it is as lightly
 * loaded as the least loaded). Requests without a session, new sessions and
 * broken bindings go to the least-outstanding-tokens candidate (ties: the
 * lowest index), and the session is bound there. A session tree (an agent
 * and its subagents, traces/session_play.h) is bound as one: the binding's
 * key is the request's session_root when it has one (`by` "tree", the
 * default; "session": each subagent bound on its own), so subagents go
 * where their parent's prefix is.
 *
 * State: an open-addressing table session id -> (instance, last routed),
 * linear probing. When it is half full it is rebuilt without the expired
 * bindings, and doubled if still over a quarter full, so memory follows the
 * sessions alive within the TTL; a route costs O(1) expected plus the
 * O(candidates) least-loaded scan. Breaks are counted by the core for any
 * policy (serve/session_metrics.h: a turn served elsewhere than its
 * predecessor). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "api/route.h"
#include "sim/jsoncfg.h"

typedef struct binding {
    uint64_t session;   /* 0: empty slot */
    int32_t instance;
    sim_time_ns last_ns;
} binding;

typedef struct affinity {
    bool by_session;
    sim_time_ns ttl_ns;
    int64_t max_extra_tokens;
    binding *slots;
    uint32_t cap, used;   /* cap: a power of two */
} affinity;

static uint32_t slot_of(uint64_t s, uint32_t cap)
{
    s ^= s >> 33;
    s *= 0xff51afd7ed558ccdULL;
    s ^= s >> 33;
    return (uint32_t)s & (cap - 1);
}

static binding *find(affinity *a, uint64_t session)
{
    uint32_t i = slot_of(session, a->cap);
    while (a->slots[i].session && a->slots[i].session != session)
        i = (i + 1) & (a->cap - 1);
    return &a->slots[i];
}

/* Rebuilds the table without bindings expired at `now`, doubling it if
 * still a quarter full. */
static void rebuild(affinity *a, sim_time_ns now)
{
    binding *old = a->slots;
    uint32_t old_cap = a->cap, live = 0;
    for (uint32_t i = 0; i < old_cap; i++)
        live += old[i].session && now - old[i].last_ns <= a->ttl_ns;
    while (live * 4 >= a->cap)
        a->cap *= 2;
    a->slots = sim_xcalloc(a->cap, sizeof *a->slots);
    a->used = 0;
    for (uint32_t i = 0; i < old_cap; i++)
        if (old[i].session && now - old[i].last_ns <= a->ttl_ns) {
            *find(a, old[i].session) = old[i];
            a->used++;
        }
    free(old);
}

static void affinity_destroy(void *state)
{
    affinity *a = state;
    if (a)
        free(a->slots);
    free(a);
}

static int affinity_init(const route_setup *setup, cJSON *params, const char *path,
                         void **state, sim_err *err)
{
    (void)setup;
    static const char *const keys[] = {"ttl_s", "max_extra_tokens", "by", NULL};
    double ttl_s;
    int64_t extra;
    const char *by;
    *state = NULL;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_num(params, path, "ttl_s", 3600, 0, 1e9, &ttl_s, err) ||
        jcfg_int(params, path, "max_extra_tokens", 32768, 0, INT64_MAX / 4, &extra, err) ||
        jcfg_str(params, path, "by", "tree", &by, err))
        return -1;
    if (strcmp(by, "tree") && strcmp(by, "session"))
        return sim_errf(err, "%s.by: expected \"tree\" or \"session\", got \"%s\"", path, by);
    affinity *a = sim_xcalloc(1, sizeof *a);
    a->by_session = !strcmp(by, "session");
    a->ttl_ns = sim_time_add(0, ttl_s * 1e9);
    a->max_extra_tokens = extra;
    a->cap = 64;
    a->slots = sim_xcalloc(a->cap, sizeof *a->slots);
    *state = a;
    return 0;
}

static int32_t affinity_route(void *state, const route_view *v, const serve_req *req)
{
    affinity *a = state;
    int32_t best = v->candidates[0];
    for (int32_t k = 1; k < v->n_candidates; k++) {
        int32_t i = v->candidates[k];
        if (v->inst[i].outstanding_tokens < v->inst[best].outstanding_tokens)
            best = i;
    }
    uint64_t key = !a->by_session && req->session_root ? req->session_root : req->session_id;
    if (key == 0)
        return best;
    binding *b = find(a, key);
    if (b->session && v->now - b->last_ns <= a->ttl_ns) {
        int32_t i = b->instance;
        bool candidate = false;
        for (int32_t k = 0; k < v->n_candidates && !candidate; k++)
            candidate = v->candidates[k] == i;
        if (candidate && v->inst[i].outstanding_tokens - v->inst[best].outstanding_tokens <=
                             a->max_extra_tokens)
            best = i;
    }
    if (!b->session) {
        if ((a->used + 1) * 2 > a->cap) {
            rebuild(a, v->now);
            b = find(a, key);
        }
        a->used++;
    }
    *b = (binding){.session = key, .instance = best, .last_ns = v->now};
    return best;
}

const route_policy_ops route_session_affinity = {
    .name = "session_affinity",
    .init = affinity_init,
    .route = affinity_route,
    .destroy = affinity_destroy,
};
