/* Expert offloading (see offload.h).
 *
 * Design. State is one cache per MoE layer: for each expert whether it is
 * resident, its last use, its uses and whether its copy is full precision
 * (O(layers x experts), sized at creation); an iteration is one pass over
 * it, allocating nothing. Routing reuses moe.h's groups (a layer draws from
 * its group's popularity, independently of the other layers). Gate weights
 * are not simulated: a token's k normalised gate weights are taken as
 * uniform on the simplex (Dirichlet(1, ..., 1), an assumption), so one of
 * them is below theta with probability 1 - (1 - theta)^(k - 1), and an
 * expert serving c tokens loads in low precision with that to the power c.
 * Replacement (evict the resident expert with the lowest score, not one
 * used this iteration): LRU (last use), LFU (uses), or HOBBIT's
 * multi-factor score, here 0.4 recency + 0.4 frequency + 0.2 full
 * precision (recency 1 / (1 + iterations since last use), frequency uses
 * over the most uses in the layer): the paper combines these factors with
 * layer distance; its weights are not given here (assumptions). The cache
 * starts with experts 0 .. C - 1 of every layer, in full precision.
 * Locality (routing.locality rho, an assumption): with probability rho an
 * expert serves as many tokens as it did in the last iteration, else a
 * fresh draw; the chain keeps each expert's load distribution (a decode
 * batch's tokens mostly follow their predecessors). */
#include "serve/offload.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_randist.h>

typedef struct slot_info {
    int64_t last_use;
    uint32_t uses;
    int32_t count;            /* tokens it served last iteration */
    bool resident, full, used_now;
} slot_info;

struct offload_state {
    const pool_setup *ps;
    gsl_rng *rng;
    moe_routing routing;
    int32_t layers, experts, capacity;
    int32_t *group_of;        /* [layers]: the routing group of each MoE layer */
    slot_info *info;          /* [layers][experts] */
    double expert_bytes, low_bytes;
    double p_low;             /* one pair's gate weight below the threshold */
    int64_t iteration;
    offload_iter now;
    offload_stats stats;
};

offload_state *offload_create(const pool_setup *ps, uint64_t seed, sim_err *err)
{
    const llm_model *m = &ps->model;
    const int32_t C = ps->par.gpu_experts, E = m->experts;
    const int32_t L = m->layers - llm_dense_layers(m);
    SIM_ASSERT(C > 0 && E >= 2 && L >= 1);
    if (L > OFFLOAD_LAYERS_MAX) {
        sim_errf(err, "expert offloading: at most %d MoE layers, %s has %d",
                 OFFLOAD_LAYERS_MAX, m->name, L);
        return NULL;
    }
    offload_state *o = sim_xcalloc(1, sizeof *o);
    o->ps = ps;
    o->rng = gsl_rng_alloc(gsl_rng_taus2);
    SIM_ASSERT(o->rng);
    gsl_rng_set(o->rng, (unsigned long)(seed ^ (seed >> 32)));
    if (moe_routing_init(&o->routing, m, &ps->moe.routing, o->rng, err)) {
        offload_destroy(o);
        return NULL;
    }
    o->layers = L;
    o->experts = E;
    o->capacity = C;
    o->group_of = sim_xcalloc((size_t)L, sizeof *o->group_of);
    for (int32_t l = 0, g = 0, end = o->routing.layers[0]; l < L; l++) {
        while (l >= end && g + 1 < o->routing.groups)
            end += o->routing.layers[++g];
        o->group_of[l] = g;
    }
    o->info = sim_xcalloc((size_t)L * E, sizeof *o->info);
    for (int32_t l = 0; l < L; l++)
        for (int32_t e = 0; e < C; e++)
            o->info[(size_t)l * E + e] = (slot_info){.last_use = -1, .resident = true,
                                                     .full = true};
    /* one expert's weights on one GPU of the TP group */
    o->expert_bytes = 3.0 * m->hidden * m->expert_ffn / ps->par.tp * m->bytes_per_param;
    o->low_bytes = o->expert_bytes * llm_dtype_bytes(LLM_INT4) / m->bytes_per_param;
    double theta = ps->moe.offload.low_precision_gate;
    o->p_low = m->experts_per_token > 1 ? 1 - pow(1 - theta, m->experts_per_token - 1)
                                        : (theta >= 1 ? 1 : 0);
    o->now.moe_layers = L;
    o->now.pcie_bytes_per_s = ps->gpu.pcie_bw_bytes_per_s;
    return o;
}

void offload_destroy(offload_state *o)
{
    if (!o)
        return;
    if (o->rng)
        gsl_rng_free(o->rng);
    free(o->group_of);
    free(o->info);
    free(o);
}

/* The resident expert of layer row `in` to evict (not used this iteration). */
static int32_t victim(const offload_state *o, const slot_info *in)
{
    const offload_replace rule = o->ps->moe.offload.replace;
    uint32_t most = 1;
    for (int32_t e = 0; e < o->experts; e++)
        if (in[e].resident && in[e].uses > most)
            most = in[e].uses;
    int32_t best = -1;
    double best_score = INFINITY;
    for (int32_t e = 0; e < o->experts; e++) {
        const slot_info *x = &in[e];
        if (!x->resident || x->used_now)
            continue;
        double recency = 1.0 / (double)(1 + o->iteration - x->last_use);
        double freq = (double)x->uses / most;
        double score = rule == OFFLOAD_LRU   ? (double)x->last_use
                       : rule == OFFLOAD_LFU ? (double)x->uses
                                             : 0.4 * recency + 0.4 * freq + 0.2 * x->full;
        if (score < best_score)
            best_score = score, best = e;
    }
    return best;
}

const offload_iter *offload_step(offload_state *o, int64_t tokens)
{
    const double accuracy = o->ps->moe.offload.prefetch_accuracy;
    const double locality = o->ps->moe.routing.locality;
    o->now.demand_bytes = 0;
    for (int32_t l = 0; l < o->layers; l++) {
        o->now.prefetch_bytes[l] = 0;
        slot_info *in = o->info + (size_t)l * o->experts;
        const int32_t g = o->group_of[l];
        for (int32_t e = 0; e < o->experts; e++)
            in[e].used_now = false;
        for (int32_t e = 0; e < o->experts; e++) {
            double q = o->routing.q[g][e];
            slot_info *x = &in[e];
            int32_t c;
            /* locality: with probability rho the expert's load repeats the
             * last iteration's (the same tokens choosing the same experts),
             * which keeps each expert's activation probability */
            if (locality > 0 && gsl_rng_uniform(o->rng) < locality)
                c = x->count < tokens ? x->count : (int32_t)tokens;
            else
                c = q >= 1 ? (int32_t)tokens
                           : (int32_t)gsl_ran_binomial(o->rng, q, (unsigned)tokens);
            x->count = c;
            if (c == 0)
                continue;
            x->used_now = true;
            x->last_use = o->iteration;
            x->uses++;
            if (x->resident) {
                o->stats.hits++;
                continue;
            }
            o->stats.misses++;
            bool low = gsl_rng_uniform(o->rng) < pow(o->p_low, c);
            double bytes = low ? o->low_bytes : o->expert_bytes;
            if (low)
                o->stats.low_precision_loads++, o->stats.bytes_low += bytes;
            else
                o->stats.bytes_high += bytes;
            if (gsl_rng_uniform(o->rng) < accuracy)
                o->now.prefetch_bytes[l] += bytes, o->stats.prefetch_bytes += bytes;
            else
                o->now.demand_bytes += bytes, o->stats.demand_bytes += bytes;
            /* into the cache, if a resident expert not used now can leave */
            int32_t out = victim(o, in);
            if (out >= 0) {
                in[out].resident = false;
                x->resident = true;
                x->full = !low;
            }
        }
    }
    o->iteration++;
    return &o->now;
}

const offload_stats *offload_get_stats(const offload_state *o)
{
    return &o->stats;
}
