/* Bench layout decisions (see layout.h).
 *
 * Design. Everything here is a pure function of shapes and addresses, so
 * the CUDA program and the tests compute the same thing. The MoE routing
 * moved here from calib.cu unchanged in method (systematic sampling with
 * the simulator's inclusion probabilities); what changed is the weight
 * layout: a rotation copy now packs only the experts a point routes to,
 * in group order, so the number of copies follows the bytes a run reads.
 * The prefill split mirrors the decode one: the split count depends on
 * the longest query tile's key tiles, and every split of a query tile
 * covers a contiguous, possibly empty, range of key tiles (the kernel
 * writes an empty partial for an empty range, which the combine step
 * weighs by zero). */
#include "calib/layout.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/base.h"

#define TILE 64

unsigned calib_align_of(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    unsigned align = 1;
    while (align < CALIB_ALIGN_MAX && !(a & align))
        align <<= 1;
    return align;
}

int calib_rotations(double rotate_bytes, double bytes_each)
{
    if (!(bytes_each > 0))
        return 2;
    double n = ceil(rotate_bytes / bytes_each);
    return n < 2 ? 2 : n > CALIB_MAX_ROT ? CALIB_MAX_ROT : (int)n;
}

/* ---- MoE -------------------------------------------------------------------------- */

void calib_moe_inclusion(int experts, int top_k, double skew, double *q)
{
    double z = 0;
    for (int e = 0; e < experts; e++)
        z += pow(e + 1.0, -skew);
    for (int e = 0; e < experts; e++)
        q[e] = top_k * pow(e + 1.0, -skew) / z;
    for (int round = 0; round < experts; round++) {
        double excess = 0, free_mass = 0;
        for (int e = 0; e < experts; e++) {
            if (q[e] > 1) {
                excess += q[e] - 1;
                q[e] = 1;
            } else if (q[e] < 1) {
                free_mass += q[e];
            }
        }
        if (excess <= 1e-12 || free_mass <= 0)
            break;
        for (int e = 0; e < experts; e++)
            if (q[e] < 1)
                q[e] += excess * q[e] / free_mass;
    }
}

static uint64_t lcg_next(uint64_t *s)
{
    return *s = *s * 6364136223846793005ull + 1442695040888963407ull;
}

/* One routing of m tokens (see calib_moe_loads); the number of distinct
 * experts. A stretch of the cumulative q is at most 1 long, so the points
 * u, u + 1, ... land in distinct experts. */
static int route_tokens(int64_t m, int experts, int top_k, const double *q, uint64_t *s,
                        int *order, int64_t *count)
{
    memset(count, 0, (size_t)experts * sizeof *count);
    for (int e = 0; e < experts; e++)
        order[e] = e;
    for (int64_t t = 0; t < m; t++) {
        for (int i = experts - 1; i > 0; i--) {
            int j = (int)((lcg_next(s) >> 33) % (uint64_t)(i + 1));
            int tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
        double u = (double)(lcg_next(s) >> 11) * (1.0 / 9007199254740992.0);
        double end = q[order[0]];   /* where expert order[e]'s stretch ends */
        int e = 0;
        for (int j = 0; j < top_k; j++) {
            /* leave enough experts for the remaining picks (only rounding
             * could otherwise run past them) */
            while (e < experts - (top_k - j) && end <= u + j)
                end += q[order[++e]];
            count[order[e]]++;
            if (++e < experts)
                end += q[order[e]];
        }
    }
    int distinct = 0;
    for (int e = 0; e < experts; e++)
        distinct += count[e] > 0;
    return distinct;
}

void calib_moe_loads(int64_t m, int experts, int top_k, double skew, uint64_t seed,
                     int64_t *count)
{
    double *q = sim_xcalloc((size_t)experts, sizeof *q);
    int *order = sim_xcalloc((size_t)experts, sizeof *order);
    int64_t *draw = sim_xcalloc((size_t)experts, sizeof *draw);
    calib_moe_inclusion(experts, top_k, skew, q);
    double want = 0;
    for (int e = 0; e < experts; e++)
        want += q[e] >= 1 ? 1 : -expm1((double)m * log1p(-q[e]));
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    double best = INFINITY;
    for (int attempt = 0; attempt < 64 && best >= 0.5; attempt++) {
        double off = fabs(route_tokens(m, experts, top_k, q, &s, order, draw) - want);
        if (off < best) {
            best = off;
            memcpy(count, draw, (size_t)experts * sizeof *count);
        }
    }
    free(q);
    free(order);
    free(draw);
}

void calib_moe_layout_build(int64_t m, const int64_t *p, uint64_t seed, calib_moe_layout *out)
{
    int E = (int)p[0], top_k = (int)p[1], S = (int)p[2];
    memset(out, 0, sizeof *out);
    out->ffn = p[3];
    out->hidden = p[4];
    int64_t *count = sim_xcalloc((size_t)E + (size_t)S + 1, sizeof *count);
    calib_moe_loads(m, E, top_k, (double)p[5] / 1000.0, seed, count);
    for (int s = 0; s < S; s++)
        count[E + s] = m;
    out->group = sim_xcalloc((size_t)E + (size_t)S + 1, sizeof *out->group);
    for (int e = 0; e < E + S; e++)
        if (count[e] > 0) {
            calib_moe_group *g = &out->group[out->n_groups++];
            g->expert = e;
            g->tokens = count[e];
            g->row0 = out->pairs;
            out->pairs += count[e];
        }
    free(count);
    out->expert_elems = (size_t)3 * (size_t)out->ffn * (size_t)out->hidden;
    out->weight_elems = (size_t)out->n_groups * out->expert_elems;
}

void calib_moe_layout_fini(calib_moe_layout *l)
{
    free(l->group);
    memset(l, 0, sizeof *l);
}

void calib_moe_operands(const calib_moe_layout *l, int g, const void *weights, const void *a,
                        void *b, const void *c, void *d, calib_gemm_operands *up,
                        calib_gemm_operands *down)
{
    const size_t bf = 2;   /* bytes per bf16 */
    int64_t f = l->ffn, H = l->hidden, r0 = l->group[g].row0;
    const char *w = (const char *)weights + (size_t)g * l->expert_elems * bf;
    up->w = w;
    up->x = (const char *)a + (size_t)r0 * (size_t)H * bf;
    up->y = (char *)b + (size_t)r0 * (size_t)(2 * f) * bf;
    down->w = w + (size_t)(2 * f) * (size_t)H * bf;
    down->x = (const char *)c + (size_t)r0 * (size_t)f * bf;
    down->y = (char *)d + (size_t)r0 * (size_t)H * bf;
}

/* ---- attention splits ----------------------------------------------------------- */

int calib_attn_decode_splits(int batch, int kv_heads, int ctx, int sm_count)
{
    long pairs = (long)batch * kv_heads;
    if (pairs >= sm_count)
        return 1;
    long want = (2L * sm_count + pairs - 1) / pairs, most = ctx / 256;
    long s = want < most ? want : most;
    return (int)(s < 1 ? 1 : s > 64 ? 64 : s);
}

int calib_attn_prefill_splits(int seqs, int q_len, int prefix, int q_heads, int sm_count)
{
    long q_tiles = (q_len + TILE - 1) / TILE;
    long blocks = (long)seqs * q_heads * q_tiles;
    if (blocks >= sm_count)
        return 1;
    /* the last query tile reads the most keys: all of prefix + q_len */
    long key_tiles = ((long)prefix + q_len + TILE - 1) / TILE;
    long want = (2L * sm_count + blocks - 1) / blocks;
    long most = key_tiles / CALIB_PREFILL_MIN_TILES;
    long s = want < most ? want : most;
    return (int)(s < 1 ? 1 : s > CALIB_PREFILL_MAX_SPLITS ? CALIB_PREFILL_MAX_SPLITS : s);
}
