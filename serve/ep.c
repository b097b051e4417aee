/* An instance's expert parallelism (see ep.h).
 *
 * Design. All arrays are sized at creation (groups x experts counts and
 * window, groups x slots placement, ep ranks): an iteration allocates
 * nothing and costs O(groups * (experts + slots)). The random stream is the
 * instance's own (seeded from its order seed), so routing draws do not
 * disturb any other component's numbers and a run is a function of its
 * seed. Invariants: every placement row names every expert at least once
 * (checked after each policy call); the window holds the load of the
 * iterations since the window opened. */
#include "serve/ep.h"

#include <stdlib.h>
#include <string.h>

struct ep_state {
    const pool_setup *ps;
    gsl_rng *rng;
    moe_routing routing;
    place_setup place;
    place_schedule sched;
    const place_policy_ops *policy;   /* NULL: static contiguous */
    void *policy_state;
    int32_t *phy2log, *next;          /* [groups][slots] */
    int32_t *rep, *copies;            /* the placement's index: [groups][slots], [groups][experts] */
    double *window;                   /* [groups][experts] */
    moe_rank_load *rank;              /* [ep] */
    int32_t *cnt;                     /* [experts] scratch */
    double expert_bytes;              /* one expert's weights */
    double pending_move_bytes;
    int64_t iteration;
    moe_iter now;
    ep_stats stats;
};

/* Recomputes the placement's index (copies per expert, copy per slot). */
static void index_placement(ep_state *ep)
{
    const place_setup *p = &ep->place;
    for (int32_t g = 0; g < p->layers; g++)
        moe_placement_index(ep->phy2log + (size_t)g * p->slots, p->slots, p->experts,
                            ep->rep + (size_t)g * p->slots,
                            ep->copies + (size_t)g * p->experts);
}

/* Adopts the policy's placement (in next). A GPU copies in the experts it
 * holds now and did not before (a copy it already had is reused, wherever
 * its slot); returns the busiest GPU's bytes over all MoE layers. */
static double apply_placement(ep_state *ep)
{
    const place_setup *p = &ep->place;
    const int32_t per = p->slots / p->ranks;
    double most = 0;
    for (int32_t r = 0; r < p->ranks; r++) {
        double bytes = 0;
        for (int32_t g = 0; g < p->layers; g++) {
            const int32_t *old = ep->phy2log + (size_t)g * p->slots + (size_t)r * per;
            const int32_t *now = ep->next + (size_t)g * p->slots + (size_t)r * per;
            int32_t changed = 0;
            for (int32_t s = 0; s < per; s++)
                ep->cnt[old[s]] = ep->cnt[now[s]] = 0;
            for (int32_t s = 0; s < per; s++)
                ep->cnt[old[s]]++;
            for (int32_t s = 0; s < per; s++) {
                if (ep->cnt[now[s]] > 0)
                    ep->cnt[now[s]]--;
                else
                    changed++;
            }
            bytes += (double)changed * ep->routing.layers[g] * ep->expert_bytes;
            ep->stats.experts_moved += (uint64_t)changed;
        }
        most = bytes > most ? bytes : most;
    }
    memcpy(ep->phy2log, ep->next, sizeof *ep->phy2log * (size_t)p->layers * p->slots);
    index_placement(ep);
    return most;
}

/* Asks the policy for a placement and checks it. */
static void call_policy(ep_state *ep)
{
    const place_setup *p = &ep->place;
    place_view v = {.setup = p, .iteration = ep->iteration, .load = ep->window,
                    .phy2log = ep->phy2log};
    memcpy(ep->next, ep->phy2log, sizeof *ep->next * (size_t)p->layers * p->slots);
    ep->policy->place(ep->policy_state, &v, ep->next);
    for (int32_t g = 0; g < p->layers; g++) {
        memset(ep->cnt, 0, sizeof *ep->cnt * (size_t)p->experts);
        for (int32_t s = 0; s < p->slots; s++) {
            int32_t e = ep->next[g * p->slots + s];
            SIM_ASSERT(e >= 0 && e < p->experts);
            ep->cnt[e]++;
        }
        for (int32_t e = 0; e < p->experts; e++)
            SIM_ASSERT(ep->cnt[e] >= 1);   /* a policy must place every expert */
    }
}

ep_state *ep_create(const pool_setup *ps, uint64_t seed, sim_err *err)
{
    const llm_model *m = &ps->model;
    const par_layout *par = &ps->par;
    SIM_ASSERT(par->ep > 1 && m->experts >= 2);
    ep_state *ep = sim_xcalloc(1, sizeof *ep);
    ep->ps = ps;
    ep->rng = gsl_rng_alloc(gsl_rng_taus2);   /* fast; routing draws dominate */
    SIM_ASSERT(ep->rng);
    gsl_rng_set(ep->rng, (unsigned long)(seed ^ (seed >> 32)));
    if (moe_routing_init(&ep->routing, m, &ps->moe.routing, ep->rng, err)) {
        ep_destroy(ep);
        return NULL;
    }
    const int32_t G = ep->routing.groups, E = m->experts;
    const int32_t slots = par_expert_slots(par, E);
    ep->place = (place_setup){.layers = G, .experts = E, .ranks = par->ep,
                              .nodes = ps->moe.nodes > 0 ? ps->moe.nodes : 1, .slots = slots};
    ep->phy2log = sim_xcalloc((size_t)G * slots, sizeof *ep->phy2log);
    ep->next = sim_xcalloc((size_t)G * slots, sizeof *ep->next);
    ep->rep = sim_xcalloc((size_t)G * slots, sizeof *ep->rep);
    ep->copies = sim_xcalloc((size_t)G * E, sizeof *ep->copies);
    ep->window = sim_xcalloc((size_t)G * E, sizeof *ep->window);
    ep->rank = sim_xcalloc((size_t)par->ep, sizeof *ep->rank);
    ep->cnt = sim_xcalloc((size_t)E, sizeof *ep->cnt);
    ep->expert_bytes = 3.0 * m->hidden * m->expert_ffn * m->bytes_per_param;
    ep->stats.groups = G;
    for (int32_t g = 0; g < G; g++)
        moe_place_contiguous(E, slots, ep->phy2log + (size_t)g * slots);
    ep->policy = ps->moe.placement.ops;
    if (ep->policy) {
        if (ep->policy->init(&ep->place, ps->moe.placement.params, ps->moe.placement.path,
                             &ep->policy_state, &ep->sched, err)) {
            ep->policy = NULL;
            ep_destroy(ep);
            return NULL;
        }
        call_policy(ep);
        memcpy(ep->phy2log, ep->next, sizeof *ep->next * (size_t)G * slots);
    }
    index_placement(ep);
    return ep;
}

void ep_destroy(ep_state *ep)
{
    if (!ep)
        return;
    if (ep->policy && ep->policy->destroy)
        ep->policy->destroy(ep->policy_state);
    if (ep->rng)
        gsl_rng_free(ep->rng);
    free(ep->phy2log);
    free(ep->next);
    free(ep->rep);
    free(ep->copies);
    free(ep->window);
    free(ep->rank);
    free(ep->cnt);
    free(ep);
}

const moe_iter *ep_step(ep_state *ep, int64_t tokens)
{
    const llm_model *m = &ep->ps->model;
    const par_layout *par = &ep->ps->par;
    const int32_t G = ep->routing.groups, E = m->experts, slots = ep->place.slots;
    ep->now = (moe_iter){.n_groups = G, .move_bytes = ep->pending_move_bytes};
    ep->pending_move_bytes = 0;
    ep->stats.moved_bytes += ep->now.move_bytes;
    const int64_t P = ep->sched.period_iterations, W = ep->sched.window_iterations;
    const bool in_window = ep->policy && P > 0 && ep->iteration % P >= P - W;
    ep->stats.iterations++;
    for (int32_t g = 0; g < G; g++) {
        moe_group_load *gl = &ep->now.g[g];
        moe_sample_group_load(&ep->routing, g, ep->rng, tokens, m, par,
                              ep->phy2log + (size_t)g * slots, ep->rep + (size_t)g * slots,
                              ep->copies + (size_t)g * E, slots, ep->ps->moe.janus, ep->cnt,
                              ep->rank, gl);
        gl->layers = ep->routing.layers[g];
        double pairs = 0, distinct = 0;
        for (int32_t r = 0; r < par->ep; r++)
            pairs += ep->rank[r].pairs, distinct += ep->rank[r].distinct;
        /* weighted by the group's tokens: an iteration counts as it costs */
        if (pairs > 0) {
            double imb = gl->max_pairs * par->ep / pairs, w = (double)tokens * gl->layers;
            ep->stats.imbalance_sum += imb * w;
            ep->stats.distinct_imbalance_sum += gl->max_distinct * par->ep / distinct * w;
            ep->stats.weight += w;
            ep->stats.imbalance_max = imb > ep->stats.imbalance_max ? imb
                                                                    : ep->stats.imbalance_max;
        }
        ep->stats.a2a_bytes += (gl->dispatch_bytes + gl->combine_bytes) * gl->layers;
        /* the window holds the expected tokens per expert */
        if (in_window)
            for (int32_t e = 0; e < E; e++)
                ep->window[(size_t)g * E + e] += ep->routing.q[g][e] * (double)tokens;
    }
    ep->iteration++;
    if (ep->policy && P > 0 && ep->iteration % P == 0) {
        call_policy(ep);
        ep->pending_move_bytes = apply_placement(ep);
        ep->stats.rebalances++;
        memset(ep->window, 0, sizeof *ep->window * (size_t)G * E);
    }
    return &ep->now;
}

const ep_stats *ep_get_stats(const ep_state *ep)
{
    return &ep->stats;
}

const int32_t *ep_placement(const ep_state *ep, int32_t *groups, int32_t *slots)
{
    *groups = ep->place.layers;
    *slots = ep->place.slots;
    return ep->phy2log;
}
