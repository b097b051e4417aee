/* servesim-calib: measures operator latency and energy on an NVIDIA GPU and
 * writes a cost table for the simulator's `table` cost model.
 *
 *   servesim-calib [--plan FILE] [--quick] [--only F1,F2] [--models A,B]
 *                  [--gpu NAME] [--out FILE] [--time-limit S] [--layer]
 *                  [--check] [--dry-run]
 *
 * Design. The program executes a plan (calib/plan.h: the entries and grid
 * points the simulator asks for, written by calib-tool from the bundled
 * models with ops_decompose), so it needs no JSON library and no model
 * files. Per point a `bench` is set up (buffers from one device arena,
 * random non-zero data, weights and KV rotated across copies that together
 * exceed three L2 caches), warmed up, and timed as CUDA graphs of k
 * back-to-back runs (k such that one replay lasts >= 0.5 ms), replayed
 * several times between events; the median and the 10th/90th percentile
 * per run are kept. At the plan's energy points the graph is replayed
 * back to back for hundreds of milliseconds while NVML's total-energy
 * counter is read, and power is taken between two counter updates inside
 * the busy window (instant or average power where the counter is missing).
 * Throttle reasons are read after every point. The GPU's settings are read,
 * never changed. The table is rewritten after every family, so a run cut
 * short (--time-limit) leaves a valid table of what it measured. */
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

#include "calib/c_api.h"
#include "calib/kernels.h"

#ifndef SERVESIM_VERSION
#define SERVESIM_VERSION "unknown"
#endif

#define MAX_ROT 64
#define MAX_K 256
#define WORKSPACE_BYTES (32u << 20)

/* ---- errors ------------------------------------------------------------------ */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("servesim-calib: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

#define CUDA_OK(call)                                                                \
    do {                                                                             \
        cudaError_t e_ = (call);                                                     \
        if (e_ != cudaSuccess)                                                       \
            die("%s:%d: %s: %s", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
    } while (0)

#define LT_OK(call)                                                                  \
    do {                                                                             \
        cublasStatus_t s_ = (call);                                                  \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                             \
            die("%s:%d: %s: cuBLAS status %d", __FILE__, __LINE__, #call, (int)s_);  \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* ---- options and context ------------------------------------------------------ */

typedef struct options {
    const char *plan, *out, *gpu, *only, *models;
    int quick, layer, check, dry_run;
    double time_limit_s;
} options;

typedef struct ctx {
    options opt;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *workspace;
    cudaDeviceProp prop;
    char pci[32];
    calib_nvml *nvml;
    calib_power_method method;
    double counter_period_s;
    /* device arena: bump allocation, reset per point */
    char *arena;
    size_t arena_size, arena_used;
    uint64_t seed;
    /* host copy buffers, allocated on first use */
    void *host_pinned, *host_pageable;
    size_t host_bytes;
    /* timing */
    int replays;
    double graph_min_ns, window_s;
    double rotate_bytes;
    double t_start;
} ctx;

static void *arena_alloc(ctx *c, size_t bytes)
{
    size_t at = (c->arena_used + 255) & ~(size_t)255;
    if (at + bytes > c->arena_size)
        return NULL;
    c->arena_used = at + bytes;
    return c->arena + at;
}

/* Random bf16 (never zero). */
static bf16 *alloc_bf16(ctx *c, size_t n, float scale, int *ok)
{
    bf16 *p = (bf16 *)arena_alloc(c, n * sizeof(bf16) + 16);
    if (!p) {
        *ok = 0;
        return NULL;
    }
    CUDA_OK(k_fill_bf16(p, n, ++c->seed, scale, c->stream));
    return p;
}

static int rotations(const ctx *c, double bytes_each)
{
    if (bytes_each <= 0)
        return 1;
    int n = (int)ceil(c->rotate_bytes / bytes_each);
    return std::max(2, std::min(n, MAX_ROT));
}

/* ---- cuBLASLt GEMM: Y[m x n] = X[m x k] * W^T, W stored [n x k] ---------------- */

typedef struct lt_gemm {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
    int64_t m, n, k;
    int ready;
} lt_gemm;

/* Column-major view: Y^T (n x m) = W (n x k, stored k x n, transposed) * X^T. */
static int lt_gemm_init(ctx *c, lt_gemm *g, int64_t m, int64_t n, int64_t k)
{
    memset(g, 0, sizeof *g);
    g->m = m;
    g->n = n;
    g->k = k;
    LT_OK(cublasLtMatmulDescCreate(&g->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LT_OK(cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_OK(cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    LT_OK(cublasLtMatrixLayoutCreate(&g->a, CUDA_R_16BF, (uint64_t)k, (uint64_t)n, k));
    LT_OK(cublasLtMatrixLayoutCreate(&g->b, CUDA_R_16BF, (uint64_t)k, (uint64_t)m, k));
    LT_OK(cublasLtMatrixLayoutCreate(&g->c, CUDA_R_16BF, (uint64_t)n, (uint64_t)m, n));
    cublasLtMatmulPreference_t pref;
    LT_OK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = WORKSPACE_BYTES;
    LT_OK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                               &ws, sizeof ws));
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(c->lt, g->desc, g->a, g->b, g->c, g->c,
                                                       pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found < 1)
        return -1;
    g->algo = res.algo;
    g->ready = 1;
    return 0;
}

static void lt_gemm_run(ctx *c, const lt_gemm *g, const bf16 *w, const bf16 *x, bf16 *y)
{
    float one = 1.0f, zero = 0.0f;
    LT_OK(cublasLtMatmul(c->lt, g->desc, &one, w, g->a, x, g->b, &zero, y, g->c, y, g->c,
                         &g->algo, c->workspace, WORKSPACE_BYTES, c->stream));
}

static void lt_gemm_fini(lt_gemm *g)
{
    if (!g->desc)
        return;
    cublasLtMatrixLayoutDestroy(g->a);
    cublasLtMatrixLayoutDestroy(g->b);
    cublasLtMatrixLayoutDestroy(g->c);
    cublasLtMatmulDescDestroy(g->desc);
    memset(g, 0, sizeof *g);
}

/* ---- benches: one operator at one point ---------------------------------------- */

typedef struct bench {
    ctab_family family;
    int64_t p[CTAB_MAX_PARAMS];
    double x[CTAB_MAX_X];
    int n_rot;
    int graphable;
    int64_t m, n, k;                 /* sizes in use */
    void *w[MAX_ROT];                /* rotated weights / K caches */
    void *w2[MAX_ROT];               /* rotated V caches */
    bf16 *a, *b, *c, *d;             /* activations */
    float *f0, *f1;
    int *i0, *i1;
    lt_gemm gemm;                    /* GEMM and router */
    /* MoE experts */
    int n_groups;
    int *group_expert, *group_tokens;
    lt_gemm *up, *down;
    int64_t pairs;
    int splits, max_pages, page_tokens;
    size_t copy_bytes;
} bench;

static void bench_fini(bench *b)
{
    lt_gemm_fini(&b->gemm);
    for (int i = 0; b->up && i < b->n_groups; i++) {
        lt_gemm_fini(&b->up[i]);
        lt_gemm_fini(&b->down[i]);
    }
    free(b->up);
    free(b->down);
    free(b->group_expert);
    free(b->group_tokens);
    memset(b, 0, sizeof *b);
}

/* Expert i's probability of being among one token's top_k, as the
 * simulator has it (llm_set_moe_skew in models/model.c, which this program
 * cannot link): proportional to (i + 1)^-skew, scaled to sum to top_k, and
 * water-filled so that none exceeds 1. */
static void moe_inclusion(int experts, int top_k, double skew, double *q)
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

/* One routing of m tokens: each token takes exactly top_k distinct experts,
 * expert e with probability q[e] (systematic sampling over a random order of
 * the experts: one uniform u, and the experts whose stretch of the
 * cumulative q holds u, u + 1, ..., u + top_k - 1; a stretch is at most 1
 * long, so it holds at most one). Returns the number of distinct experts. */
static int route_tokens(int64_t m, int experts, int top_k, const double *q, uint64_t *s,
                        int *order, int64_t *count)
{
    memset(count, 0, experts * sizeof *count);
    for (int e = 0; e < experts; e++)
        order[e] = e;
    for (int64_t t = 0; t < m; t++) {
        for (int i = experts - 1; i > 0; i--) {
            int j = (int)((lcg_next(s) >> 33) % (uint64_t)(i + 1));
            std::swap(order[i], order[j]);
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

/* Tokens per expert for m tokens under routing skew `skew`, consistent with
 * the bytes ops_decompose counts: every token takes top_k distinct experts,
 * each expert with the simulator's per-token probability q_i, and of up to
 * 64 draws the one is kept whose number of distinct experts is nearest the
 * simulator's expectation sum_i 1 - (1 - q_i)^m (llm_moe_distinct_experts),
 * i.e. that expectation rounded, in practice. */
static void expert_loads(int64_t m, int experts, int top_k, double skew, uint64_t seed,
                         int64_t *count)
{
    double *q = (double *)malloc(experts * sizeof *q);
    int *order = (int *)malloc(experts * sizeof *order);
    int64_t *draw = (int64_t *)malloc(experts * sizeof *draw);
    if (!q || !order || !draw)
        die("out of memory");
    moe_inclusion(experts, top_k, skew, q);
    double want = 0;
    for (int e = 0; e < experts; e++)
        want += q[e] >= 1 ? 1 : -expm1((double)m * log1p(-q[e]));
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    double best = INFINITY;
    for (int attempt = 0; attempt < 64 && best >= 0.5; attempt++) {
        double off = fabs(route_tokens(m, experts, top_k, q, &s, order, draw) - want);
        if (off < best) {
            best = off;
            memcpy(count, draw, experts * sizeof *count);
        }
    }
    free(q);
    free(order);
    free(draw);
}

static int setup_gemm_weights(ctx *c, bench *b, int64_t n, int64_t k)
{
    int ok = 1;
    b->n_rot = rotations(c, (double)n * k * 2);
    for (int r = 0; r < b->n_rot && ok; r++)
        b->w[r] = alloc_bf16(c, (size_t)n * k, 0.05f, &ok);
    return ok ? 0 : -1;
}

/* Sets up the bench for family/params at coordinates x; 0, or -1 with why. */
static int bench_setup(ctx *c, bench *b, ctab_family fam, const int64_t *p, const double *x,
                       int page_tokens, char *why, size_t why_n)
{
    memset(b, 0, sizeof *b);
    b->family = fam;
    memcpy(b->p, p, sizeof b->p);
    memcpy(b->x, x, sizeof b->x);
    b->graphable = 1;
    b->n_rot = 1;
    int ok = 1;
    int64_t m = (int64_t)llround(x[0]);
    switch (fam) {
    case CTAB_GEMM:
    case CTAB_MOE_ROUTER: {
        int64_t n = p[0], k = p[1];
        if (setup_gemm_weights(c, b, n, k)) {
            ok = 0;
            break;
        }
        b->a = alloc_bf16(c, (size_t)m * k, 1, &ok);
        b->c = alloc_bf16(c, (size_t)m * n, 1, &ok);
        if (fam == CTAB_MOE_ROUTER) {
            b->i0 = (int *)arena_alloc(c, (size_t)m * p[2] * 4);
            b->f0 = (float *)arena_alloc(c, (size_t)m * p[2] * 4);
            ok &= b->i0 && b->f0;
        }
        if (ok && lt_gemm_init(c, &b->gemm, m, n, k)) {
            snprintf(why, why_n, "cuBLASLt has no algorithm for %lld x %lld x %lld",
                     (long long)m, (long long)n, (long long)k);
            bench_fini(b);
            return -1;
        }
        b->m = m;
        b->n = n;
        b->k = k;
        break;
    }
    case CTAB_MOE_EXPERTS: {
        int E = (int)p[0], top_k = (int)p[1], S = (int)p[2];
        int64_t f = p[3], H = p[4];
        int64_t *count = (int64_t *)calloc(E + S + 1, sizeof *count);
        expert_loads(m, E, top_k, p[CTAB_SKEW_PARAM] / 1000.0, (uint64_t)m, count);
        for (int s = 0; s < S; s++)
            count[E + s] = m;
        b->group_expert = (int *)calloc(E + S + 1, sizeof(int));
        b->group_tokens = (int *)calloc(E + S + 1, sizeof(int));
        b->pairs = 0;
        for (int e = 0; e < E + S; e++)
            if (count[e] > 0) {
                b->group_expert[b->n_groups] = e;
                b->group_tokens[b->n_groups++] = (int)count[e];
                b->pairs += count[e];
            }
        free(count);
        double expert_bytes = 3.0 * f * H * 2;
        b->n_rot = rotations(c, expert_bytes * (E + S));
        for (int r = 0; r < b->n_rot && ok; r++)
            b->w[r] = alloc_bf16(c, (size_t)(3 * f * H) * (E + S), 0.05f, &ok);
        b->a = alloc_bf16(c, (size_t)b->pairs * H, 1, &ok);       /* tokens, by expert */
        b->b = alloc_bf16(c, (size_t)b->pairs * 2 * f, 1, &ok);   /* gate and up out */
        b->c = alloc_bf16(c, (size_t)b->pairs * f, 1, &ok);       /* activated, down in */
        b->d = alloc_bf16(c, (size_t)b->pairs * H, 1, &ok);       /* down out */
        if (!ok)
            break;
        b->up = (lt_gemm *)calloc(b->n_groups, sizeof *b->up);
        b->down = (lt_gemm *)calloc(b->n_groups, sizeof *b->down);
        for (int i = 0; i < b->n_groups; i++)
            if (lt_gemm_init(c, &b->up[i], b->group_tokens[i], 2 * f, H) ||
                lt_gemm_init(c, &b->down[i], b->group_tokens[i], H, f)) {
                snprintf(why, why_n, "cuBLASLt has no algorithm for an expert GEMM");
                bench_fini(b);
                return -1;
            }
        b->n = f;
        b->k = H;
        break;
    }
    case CTAB_ATTN_PREFILL: {
        int64_t hq = p[0], hkv = p[1], D = p[2];
        int64_t q = m, prefix = (int64_t)llround(x[1]), seqs = std::max<int64_t>(1, llround(x[2]));
        if (p[3] != 2 || D != 128) {
            snprintf(why, why_n, "only bf16 KV and head_dim 128 are supported");
            return -1;
        }
        size_t kv = (size_t)seqs * (prefix + q) * hkv * D;
        b->n_rot = rotations(c, kv * 2.0 * 2);
        for (int r = 0; r < b->n_rot && ok; r++) {
            b->w[r] = alloc_bf16(c, kv, 1, &ok);
            b->w2[r] = alloc_bf16(c, kv, 1, &ok);
        }
        b->a = alloc_bf16(c, (size_t)seqs * q * hq * D, 1, &ok);
        b->c = alloc_bf16(c, (size_t)seqs * q * hq * D, 1, &ok);
        b->m = q;
        b->n = seqs;
        b->k = prefix;
        break;
    }
    case CTAB_ATTN_DECODE: {
        int64_t hq = p[0], hkv = p[1], D = p[2], batch = m;
        int64_t ctx_len = (int64_t)llround(x[1]);
        if (p[3] != 2 || D != 128 || hq % hkv || (hq / hkv) > 8 || ((hq / hkv) & (hq / hkv - 1))) {
            snprintf(why, why_n, "only bf16 KV, head_dim 128 and 1, 2, 4 or 8 query heads "
                     "per KV head are supported");
            return -1;
        }
        b->page_tokens = page_tokens;
        b->max_pages = (int)((ctx_len + page_tokens - 1) / page_tokens);
        int64_t pages = batch * b->max_pages;
        size_t kv = (size_t)pages * page_tokens * hkv * D;
        b->n_rot = rotations(c, kv * 2.0 * 2);
        for (int r = 0; r < b->n_rot && ok; r++) {
            b->w[r] = alloc_bf16(c, kv, 1, &ok);
            b->w2[r] = alloc_bf16(c, kv, 1, &ok);
        }
        b->splits = k_attn_decode_splits((int)batch, (int)hkv, (int)ctx_len,
                                         c->prop.multiProcessorCount);
        b->a = alloc_bf16(c, (size_t)batch * hq * D, 1, &ok);
        b->c = alloc_bf16(c, (size_t)batch * hq * D, 1, &ok);
        b->f0 = (float *)arena_alloc(c, (size_t)batch * hq * b->splits * D * 4);
        b->f1 = (float *)arena_alloc(c, (size_t)batch * hq * b->splits * 2 * 4);
        b->i0 = (int *)arena_alloc(c, (size_t)pages * 4);
        ok &= b->f0 && b->f1 && b->i0;
        if (!ok)
            break;
        /* a random permutation of the pool: pages scattered as in a real cache */
        int *bt = (int *)malloc(pages * sizeof *bt);
        uint64_t s = (uint64_t)pages * 2654435761u + 7;
        for (int64_t i = 0; i < pages; i++)
            bt[i] = (int)i;
        for (int64_t i = pages - 1; i > 0; i--) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            int64_t j = (int64_t)((s >> 33) % (uint64_t)(i + 1));
            std::swap(bt[i], bt[j]);
        }
        CUDA_OK(cudaMemcpyAsync(b->i0, bt, pages * sizeof *bt, cudaMemcpyHostToDevice,
                                c->stream));
        CUDA_OK(cudaStreamSynchronize(c->stream));
        free(bt);
        b->m = batch;
        b->k = ctx_len;
        break;
    }
    case CTAB_EMBED: {
        int64_t H = p[0], rows = p[1];
        b->w[0] = alloc_bf16(c, (size_t)rows * H, 1, &ok);
        b->i0 = (int *)arena_alloc(c, (size_t)m * 4);
        b->c = alloc_bf16(c, (size_t)m * H, 1, &ok);
        ok &= b->i0 != NULL;
        if (ok)
            CUDA_OK(k_fill_int(b->i0, m, ++c->seed, (int)rows, c->stream));
        b->m = m;
        b->n = H;
        break;
    }
    case CTAB_NORM: {
        int64_t H = p[0];
        b->a = alloc_bf16(c, (size_t)m * H, 1, &ok);
        b->b = alloc_bf16(c, (size_t)m * H, 1, &ok);
        b->c = alloc_bf16(c, (size_t)m * H, 1, &ok);
        b->w[0] = alloc_bf16(c, (size_t)H, 1, &ok);
        b->m = m;
        b->n = H;
        break;
    }
    case CTAB_ROPE: {
        int64_t heads = p[0] + p[1], D = p[2];
        const int n_pos = 32768;
        b->a = alloc_bf16(c, (size_t)m * heads * D, 1, &ok);
        b->f0 = (float *)arena_alloc(c, (size_t)n_pos * D * 4);
        b->i0 = (int *)arena_alloc(c, (size_t)m * 4);
        ok &= b->f0 && b->i0;
        if (ok) {
            CUDA_OK(k_rope_cache(b->f0, n_pos, (int)D, c->stream));
            CUDA_OK(k_fill_int(b->i0, m, ++c->seed, n_pos, c->stream));
        }
        b->m = m;
        b->n = heads;
        b->k = D;
        break;
    }
    case CTAB_ACT: {
        int64_t f = p[0];
        b->a = alloc_bf16(c, (size_t)m * 2 * f, 2, &ok);
        b->c = alloc_bf16(c, (size_t)m * f, 1, &ok);
        b->m = m;
        b->n = f;
        break;
    }
    case CTAB_SAMPLE: {
        int64_t V = p[0];
        b->f0 = (float *)arena_alloc(c, (size_t)m * V * 4);
        b->i0 = (int *)arena_alloc(c, (size_t)m * 4);
        ok &= b->f0 && b->i0;
        if (ok)
            CUDA_OK(k_fill_f32(b->f0, (size_t)m * V, ++c->seed, 8, c->stream));
        b->m = m;
        b->n = V;
        break;
    }
    case CTAB_COPY: {
        size_t bytes = (size_t)llround(x[0]);
        if (bytes > c->host_bytes) {
            snprintf(why, why_n, "copy of %zu bytes exceeds the host buffers", bytes);
            return -1;
        }
        b->copy_bytes = bytes;
        b->w[0] = arena_alloc(c, bytes);
        ok &= b->w[0] != NULL;
        b->graphable = 0;   /* pageable copies cannot be captured */
        b->n = p[0];        /* 0: host to device */
        b->k = p[1];        /* pinned */
        break;
    }
    default:
        snprintf(why, why_n, "family not measurable");
        return -1;
    }
    if (!ok) {
        snprintf(why, why_n, "out of device memory (arena of %.1f GiB)",
                 c->arena_size / 1073741824.0);
        bench_fini(b);
        return -1;
    }
    CUDA_OK(cudaStreamSynchronize(c->stream));
    return 0;
}

/* Enqueues one run, reading rotation slot `rot`. */
static void bench_launch(ctx *c, bench *b, int rot)
{
    cudaStream_t s = c->stream;
    int r = rot % b->n_rot;
    switch (b->family) {
    case CTAB_GEMM:
        lt_gemm_run(c, &b->gemm, (const bf16 *)b->w[r], b->a, b->c);
        break;
    case CTAB_MOE_ROUTER:
        lt_gemm_run(c, &b->gemm, (const bf16 *)b->w[r], b->a, b->c);
        CUDA_OK(k_topk(b->c, b->i0, b->f0, (int)b->m, (int)b->n, (int)b->p[2], s));
        break;
    case CTAB_MOE_EXPERTS: {
        const bf16 *wbase = (const bf16 *)b->w[r];
        int64_t f = b->n, H = b->k, off = 0;
        for (int i = 0; i < b->n_groups; i++) {
            const bf16 *wu = wbase + (size_t)b->group_expert[i] * 3 * f * H;
            const bf16 *wd = wu + (size_t)2 * f * H;
            lt_gemm_run(c, &b->up[i], wu, b->a + off * H, b->b + off * 2 * f);
            lt_gemm_run(c, &b->down[i], wd, b->c + off * f, b->d + off * H);
            off += b->group_tokens[i];
        }
        break;
    }
    case CTAB_ATTN_PREFILL:
        CUDA_OK(k_attn_prefill(b->a, (const bf16 *)b->w[r], (const bf16 *)b->w2[r], b->c,
                               (int)b->n, (int)b->m, (int)b->k, (int)b->p[0], (int)b->p[1],
                               (int)b->p[2], s));
        break;
    case CTAB_ATTN_DECODE:
        CUDA_OK(k_attn_decode(b->a, (const bf16 *)b->w[r], (const bf16 *)b->w2[r], b->i0,
                              b->max_pages, b->c, b->f0, b->f1, (int)b->m, (int)b->k,
                              (int)b->p[0], (int)b->p[1], (int)b->p[2], b->page_tokens,
                              b->splits, s));
        break;
    case CTAB_EMBED:
        CUDA_OK(k_embed(b->i0, (const bf16 *)b->w[0], b->c, (int)b->m, (int)b->n, s));
        break;
    case CTAB_NORM:
        CUDA_OK(k_rmsnorm(b->a, b->b, b->c, (const bf16 *)b->w[0], (int)b->m, (int)b->n, s));
        break;
    case CTAB_ROPE:
        CUDA_OK(k_rope(b->a, b->i0, b->f0, (int)b->m, (int)b->n, (int)b->k, s));
        break;
    case CTAB_ACT:
        CUDA_OK(k_silu_mul(b->a, b->c, (int)b->m, (int)b->n, s));
        break;
    case CTAB_SAMPLE:
        CUDA_OK(k_sample(b->f0, b->i0, (int)b->m, (int)b->n, (uint64_t)rot + 1, s));
        break;
    case CTAB_COPY:
        if (b->n == 0)
            CUDA_OK(cudaMemcpyAsync(b->w[0], b->k ? c->host_pinned : c->host_pageable,
                                    b->copy_bytes, cudaMemcpyHostToDevice, s));
        else
            CUDA_OK(cudaMemcpyAsync(b->k ? c->host_pinned : c->host_pageable, b->w[0],
                                    b->copy_bytes, cudaMemcpyDeviceToHost, s));
        break;
    default:
        break;
    }
}

/* A whole layer: several benches run in order, each `count` times. */
typedef struct composite {
    int n;
    bench *b;
    int *count;
} composite;

static void run_once(ctx *c, bench *single, composite *comp, int rot)
{
    if (!comp) {
        bench_launch(c, single, rot);
        return;
    }
    for (int i = 0; i < comp->n; i++)
        for (int j = 0; j < comp->count[i]; j++)
            bench_launch(c, &comp->b[i], rot * 4 + j);
}

/* ---- timing and energy ------------------------------------------------------------ */

/* Power while `enqueue_one` keeps the GPU busy for ramp + window; NAN if
 * unmeasurable. */
static double measure_power(ctx *c, cudaGraphExec_t exec, bench *single, composite *comp,
                            int k, double replay_s, int *throttled)
{
    if (c->method == CALIB_POWER_NONE)
        return NAN;
    /* the window spans >= 4 counter periods: >= 3 updates fall inside it */
    double busy_s = CALIB_RAMP_S + c->window_s;
    int n = (int)std::min(200000.0, ceil(busy_s / std::max(replay_s, 1e-6)));
    cudaEvent_t end;
    CUDA_OK(cudaEventCreate(&end));
    CUDA_OK(cudaStreamSynchronize(c->stream));
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        if (exec)
            CUDA_OK(cudaGraphLaunch(exec, c->stream));
        else
            for (int j = 0; j < k; j++)
                run_once(c, single, comp, j);
    }
    CUDA_OK(cudaEventRecord(end, c->stream));
    double t_open = t0 + CALIB_RAMP_S, sum_w = 0;
    long long reasons = 0;
    int asked = 0;
    int samples = 0;
    unsigned long long e_prev = 0, ea = 0, eb = 0;
    double ta = -1, tb = -1;
    if (c->method == CALIB_POWER_ENERGY_COUNTER)
        calib_nvml_energy_mj(c->nvml, &e_prev);
    for (;;) {
        int done = cudaEventQuery(end) == cudaSuccess;
        double t = now_s();
        if (c->method == CALIB_POWER_ENERGY_COUNTER) {
            unsigned long long e;
            if (calib_nvml_energy_mj(c->nvml, &e) == 0 && e != e_prev) {
                e_prev = e;
                if (!done && t >= t_open) {
                    if (ta < 0) {
                        ta = t;
                        ea = e;
                    } else {
                        tb = t;
                        eb = e;
                    }
                }
            }
        } else if (!done && t >= t_open) {
            double w;
            if (calib_nvml_power_w(c->nvml, c->method, &w) == 0) {
                sum_w += w;
                samples++;
            }
        }
        if (done)
            break;
        if (t >= t_open && !asked) {   /* once, inside the window */
            reasons = calib_nvml_reasons(c->nvml);
            asked = 1;
        }
        sleep_s(c->method == CALIB_POWER_ENERGY_COUNTER ? 0.0005 : 0.002);
    }
    CUDA_OK(cudaEventDestroy(end));
    if (reasons > 0 && (reasons & CALIB_THROTTLE_MASK))
        *throttled = 1;
    if (c->method == CALIB_POWER_ENERGY_COUNTER)
        return tb > ta && ta >= 0 ? (double)(eb - ea) * 1e-3 / (tb - ta) : NAN;
    return samples ? sum_w / samples : NAN;
}

static calib_point_result no_result(void)
{
    calib_point_result r;
    r.median_ns = r.p10_ns = r.p90_ns = r.power_w = r.energy_j = NAN;
    r.throttled = 0;
    return r;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Times one bench or a composite (a layer); fills r. */
static void measure(ctx *c, bench *single, composite *comp, int want_power,
                    calib_point_result *r)
{
    cudaStream_t s = c->stream;
    cudaEvent_t ev[2];
    CUDA_OK(cudaEventCreate(&ev[0]));
    CUDA_OK(cudaEventCreate(&ev[1]));
    /* warm-up, then a first estimate over three runs */
    run_once(c, single, comp, 0);
    run_once(c, single, comp, 1);
    CUDA_OK(cudaStreamSynchronize(s));
    CUDA_OK(cudaGetLastError());
    CUDA_OK(cudaEventRecord(ev[0], s));
    for (int i = 0; i < 3; i++)
        run_once(c, single, comp, i);
    CUDA_OK(cudaEventRecord(ev[1], s));
    CUDA_OK(cudaEventSynchronize(ev[1]));
    float ms;
    CUDA_OK(cudaEventElapsedTime(&ms, ev[0], ev[1]));
    double est_ns = std::max(ms * 1e6 / 3, 100.0);
    int k = (int)std::min<double>(MAX_K, std::max(1.0, ceil(c->graph_min_ns / est_ns)));
    int graphable = comp ? 1 : single->graphable;
    for (int i = 0; comp && i < comp->n; i++)
        graphable &= comp->b[i].graphable;
    cudaGraphExec_t exec = NULL;
    cudaGraph_t graph = NULL;
    if (graphable) {
        CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
        for (int i = 0; i < k; i++)
            run_once(c, single, comp, i);
        CUDA_OK(cudaStreamEndCapture(s, &graph));
        CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
        for (int i = 0; i < 2; i++)
            CUDA_OK(cudaGraphLaunch(exec, s));
    }
    int R = c->replays;
    cudaEvent_t *marks = (cudaEvent_t *)malloc((R + 1) * sizeof *marks);
    for (int i = 0; i <= R; i++)
        CUDA_OK(cudaEventCreate(&marks[i]));
    CUDA_OK(cudaEventRecord(marks[0], s));
    for (int i = 0; i < R; i++) {
        if (exec)
            CUDA_OK(cudaGraphLaunch(exec, s));
        else
            for (int j = 0; j < k; j++)
                run_once(c, single, comp, j);
        CUDA_OK(cudaEventRecord(marks[i + 1], s));
    }
    /* throttle reasons while the replays run (they describe the present) */
    long long reasons = calib_nvml_reasons(c->nvml);
    CUDA_OK(cudaEventSynchronize(marks[R]));
    CUDA_OK(cudaGetLastError());
    double *per = (double *)malloc(R * sizeof *per);
    for (int i = 0; i < R; i++) {
        CUDA_OK(cudaEventElapsedTime(&ms, marks[i], marks[i + 1]));
        per[i] = ms * 1e6 / k;
    }
    qsort(per, R, sizeof *per, cmp_dbl);
    r->median_ns = R % 2 ? per[R / 2] : 0.5 * (per[R / 2 - 1] + per[R / 2]);
    r->p10_ns = per[(int)floor(0.1 * (R - 1))];
    r->p90_ns = per[(int)ceil(0.9 * (R - 1))];
    r->throttled = reasons > 0 && (reasons & CALIB_THROTTLE_MASK);
    r->power_w = r->energy_j = NAN;
    if (want_power) {
        int thr = 0;
        r->power_w = measure_power(c, exec, single, comp, k, r->median_ns * k * 1e-9, &thr);
        r->energy_j = r->power_w * r->median_ns * 1e-9;
        r->throttled |= thr;
    }
    for (int i = 0; i <= R; i++)
        cudaEventDestroy(marks[i]);
    free(marks);
    free(per);
    if (exec) {
        CUDA_OK(cudaGraphExecDestroy(exec));
        CUDA_OK(cudaGraphDestroy(graph));
    }
    cudaEventDestroy(ev[0]);
    cudaEventDestroy(ev[1]);
}

/* ---- device-wide measurements ---------------------------------------------------- */

/* Energy counter update period, from the intervals between changes at idle. */
static double counter_period(ctx *c)
{
    if (c->method != CALIB_POWER_ENERGY_COUNTER)
        return 0.1;
    double t_end = now_s() + 0.6, last = -1, iv[256];
    int n = 0;
    unsigned long long prev = 0, e;
    calib_nvml_energy_mj(c->nvml, &prev);
    while (now_s() < t_end && n < 256) {
        if (calib_nvml_energy_mj(c->nvml, &e) == 0 && e != prev) {
            double t = now_s();
            if (last >= 0)
                iv[n++] = t - last;
            last = t;
            prev = e;
        }
        sleep_s(0.0002);
    }
    if (n < 2)
        return 0.1;
    qsort(iv, n, sizeof *iv, cmp_dbl);
    return iv[n / 2];
}

static double idle_power(ctx *c, double seconds)
{
    CUDA_OK(cudaDeviceSynchronize());
    sleep_s(0.3);   /* let the last kernels' clocks settle a little */
    double t_end = now_s() + seconds, sum = 0, ta = -1, tb = -1;
    unsigned long long prev = 0, ea = 0, eb = 0, e;
    int samples = 0;
    calib_nvml_energy_mj(c->nvml, &prev);
    while (now_s() < t_end) {
        double t = now_s(), w;
        if (c->method == CALIB_POWER_ENERGY_COUNTER) {
            if (calib_nvml_energy_mj(c->nvml, &e) == 0 && e != prev) {
                prev = e;
                if (ta < 0) {
                    ta = t;
                    ea = e;
                } else {
                    tb = t;
                    eb = e;
                }
            }
        } else if (c->method != CALIB_POWER_NONE &&
                   calib_nvml_power_w(c->nvml, c->method, &w) == 0) {
            sum += w;
            samples++;
        }
        sleep_s(0.001);
    }
    if (c->method == CALIB_POWER_ENERGY_COUNTER)
        return tb > ta && ta >= 0 ? (double)(eb - ea) * 1e-3 / (tb - ta) : NAN;
    return samples ? sum / samples : NAN;
}

static void measure_ceilings(ctx *c, calib_run_info *info)
{
    const int64_t n = 8192;
    bench b;
    memset(&b, 0, sizeof b);
    c->arena_used = 0;
    int ok = 1;
    b.family = CTAB_GEMM;
    b.graphable = 1;
    b.n_rot = 2;
    for (int r = 0; r < 2; r++)
        b.w[r] = alloc_bf16(c, (size_t)n * n, 0.05f, &ok);
    b.a = alloc_bf16(c, (size_t)n * n, 1, &ok);
    b.c = alloc_bf16(c, (size_t)n * n, 1, &ok);
    if (!ok || lt_gemm_init(c, &b.gemm, n, n, n))
        die("cannot set up the %lld^3 GEMM for the FLOP/s ceiling", (long long)n);
    double save = c->graph_min_ns;
    c->graph_min_ns = 20e6;
    calib_point_result r;
    measure(c, &b, NULL, 0, &r);
    c->graph_min_ns = save;
    info->ceil_gemm_flops_per_s = 2.0 * n * n * n / (r.median_ns * 1e-9);
    info->ceil_gemm_mnk[0] = info->ceil_gemm_mnk[1] = info->ceil_gemm_mnk[2] = n;
    lt_gemm_fini(&b.gemm);

    c->arena_used = 0;
    size_t bytes = (size_t)2 << 30;
    void *src = arena_alloc(c, bytes), *dst = arena_alloc(c, bytes);
    if (!src || !dst)
        die("cannot allocate 4 GiB for the bandwidth ceiling");
    CUDA_OK(k_fill_bf16((bf16 *)src, bytes / 2, 77, 1, c->stream));
    cudaEvent_t e0, e1;
    CUDA_OK(cudaEventCreate(&e0));
    CUDA_OK(cudaEventCreate(&e1));
    double best = INFINITY;
    for (int i = 0; i < 6; i++) {
        CUDA_OK(cudaEventRecord(e0, c->stream));
        CUDA_OK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream));
        CUDA_OK(cudaEventRecord(e1, c->stream));
        CUDA_OK(cudaEventSynchronize(e1));
        float ms;
        CUDA_OK(cudaEventElapsedTime(&ms, e0, e1));
        if (i > 0)   /* the first one is a warm-up */
            best = std::min(best, (double)ms);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    /* counting bytes read plus bytes written */
    info->ceil_d2d_bytes = 2.0 * bytes;
    info->ceil_d2d_bytes_per_s = 2.0 * bytes / (best * 1e-3);
    c->arena_used = 0;
}

/* ---- the run ---------------------------------------------------------------------- */

/* servesim's name (a file in models/gpu/) for the SXM parts those files
 * describe: "NVIDIA H100 80GB HBM3", "NVIDIA H200", "NVIDIA A100-SXM4-80GB".
 * Any other GPU (PCIe, NVL, 40 GB, GH200, ...) keeps its own name, sanitised
 * ("NVIDIA A100 80GB PCIe" -> "A100-80GB-PCIe"), so that the loader never
 * takes a table measured on it for a run on an SXM part. Returns 1 when the
 * name is a known one. */
static int servesim_gpu_name(const char *device, char *out, size_t size)
{
    const char *known = NULL;
    int sxm = !strstr(device, "PCIe") && !strstr(device, "NVL") && !strstr(device, "GH200");
    if (sxm && strstr(device, "H200"))
        known = "H200-141GB";
    else if (sxm && strstr(device, "H100") && (strstr(device, "HBM3") || strstr(device, "SXM")))
        known = "H100-SXM-80GB";
    else if (sxm && strstr(device, "A100-SXM") && strstr(device, "80GB"))
        known = "A100-SXM-80GB";
    if (known) {
        snprintf(out, size, "%s", known);
        return 1;
    }
    if (!strncmp(device, "NVIDIA ", 7))
        device += 7;
    size_t n = 0;
    for (; *device && n + 1 < size; device++) {
        char ch = *device;
        out[n++] = isalnum((unsigned char)ch) || ch == '.' || ch == '_' || ch == '-' ? ch : '-';
    }
    out[n] = 0;
    if (n == 0)
        snprintf(out, size, "unknown-gpu");
    return 0;
}

static unsigned family_mask(const char *only)
{
    if (!only)
        return ~0u;
    unsigned mask = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", only);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int f = ctab_family_find(t);
        if (f < 0) {
            char list[512] = "";
            for (int i = 0; i < CTAB_FAMILY_COUNT; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                         ctab_family_get((ctab_family)i)->name);
            die("--only: unknown family '%s'; expected some of: %s", t, list);
        }
        mask |= 1u << f;
    }
    return mask;
}

static int model_selected(const char *models, const char *used_by)
{
    if (!models)
        return 1;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", models);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char needle[96];
        snprintf(needle, sizeof needle, "%s/tp", t);
        if (strstr(used_by, needle))
            return 1;
    }
    return 0;
}

/* mkdir -p of the folder holding path. */
static void make_parent_dir(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return;
    *slash = 0;
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(dir, 0755);
            *p = '/';
        }
    mkdir(dir, 0755);
}

static void write_table(const char *path, const calib_plan *plan, calib_point_result **res,
                        unsigned mask, const calib_run_info *info)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.partial", path);
    make_parent_dir(path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        die("%s: cannot write: %s", tmp, strerror(errno));
    int rc = calib_table_write(f, plan, res, mask, info);
    if (fclose(f) || rc || rename(tmp, path))
        die("%s: write failed", path);
}

static void usage(void)
{
    fputs("usage: servesim-calib [--plan FILE] [--quick] [--only FAMILY,...] [--models A,B]\n"
          "                      [--gpu NAME] [--out FILE] [--time-limit S] [--layer]\n"
          "                      [--check] [--dry-run]\n"
          "see calib/README.md\n", stderr);
    exit(2);
}

static void parse_options(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->time_limit_s = 570;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = !strcmp(a, "--plan") ? &o->plan
                          : !strcmp(a, "--out") ? &o->out
                          : !strcmp(a, "--gpu") ? &o->gpu
                          : !strcmp(a, "--only") ? &o->only
                          : !strcmp(a, "--models") ? &o->models : NULL;
        if (slot && i + 1 < argc)
            *slot = argv[++i];
        else if (!strcmp(a, "--time-limit") && i + 1 < argc)
            o->time_limit_s = atof(argv[++i]);
        else if (!strcmp(a, "--quick"))
            o->quick = 1;
        else if (!strcmp(a, "--layer"))
            o->layer = 1;
        else if (!strcmp(a, "--check"))
            o->check = 1;
        else if (!strcmp(a, "--dry-run"))
            o->dry_run = 1;
        else
            usage();
    }
    if (!o->plan)
        o->plan = o->quick ? "calib/plans/quick.plan" : "calib/plans/full.plan";
}

static void dry_run(const options *o, const calib_plan *plan)
{
    unsigned mask = family_mask(o->only);
    int entries = 0, points = 0, energy = 0;
    for (int i = 0; i < plan->n_entries; i++) {
        const calib_entry *e = &plan->entry[i];
        if (!(mask & (1u << e->family)) || !model_selected(o->models, e->used_by))
            continue;
        entries++;
        for (int j = 0; j < e->n_points; j++) {
            points += !e->skip[j];
            energy += !e->skip[j] && e->energy[j];
        }
    }
    printf("plan %s (%s): %d of %d entries, %d points, %d with power; %d layers\n",
           o->plan, plan->name, entries, plan->n_entries, points, energy, plan->n_layers);
    printf("dry run: no GPU used\n");
}

static void init_device(ctx *c, calib_run_info *info)
{
    CUDA_OK(cudaSetDevice(0));
    CUDA_OK(cudaGetDeviceProperties(&c->prop, 0));
    CUDA_OK(cudaDeviceGetPCIBusId(c->pci, sizeof c->pci, 0));
    CUDA_OK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    LT_OK(cublasLtCreate(&c->lt));
    CUDA_OK(cudaMalloc(&c->workspace, WORKSPACE_BYTES));
    char why[256];
    c->nvml = calib_nvml_open(c->pci, why, sizeof why);
    if (!c->nvml)
        fprintf(stderr, "servesim-calib: warning: no NVML (%s): no energy, clocks or "
                "throttle flags\n", why);
    c->method = calib_nvml_method(c->nvml);

    snprintf(info->device_name, sizeof info->device_name, "%.127s", c->prop.name);
    if (c->opt.gpu)
        snprintf(info->gpu_name, sizeof info->gpu_name, "%s", c->opt.gpu);
    else if (!servesim_gpu_name(c->prop.name, info->gpu_name, sizeof info->gpu_name))
        fprintf(stderr, "servesim-calib: warning: '%s' is none of the GPUs in models/gpu/; "
                "the table is named '%s' (--gpu NAME names it)\n", c->prop.name,
                info->gpu_name);
    snprintf(info->pci_bus_id, sizeof info->pci_bus_id, "%s", c->pci);
    calib_nvml_uuid(c->nvml, info->uuid, sizeof info->uuid);
    calib_nvml_driver_version(c->nvml, info->driver_version, sizeof info->driver_version);
    info->cc_major = c->prop.major;
    info->cc_minor = c->prop.minor;
    info->sm_count = c->prop.multiProcessorCount;
    info->l2_bytes = c->prop.l2CacheSize;
    info->memory_bytes = (double)c->prop.totalGlobalMem;
    CUDA_OK(cudaDriverGetVersion(&info->cuda_driver_version));
    CUDA_OK(cudaRuntimeGetVersion(&info->cuda_runtime_version));
    info->cublaslt_version = (int)cublasLtGetVersion();
    snprintf(info->nvcc_version, sizeof info->nvcc_version, "%d.%d", __CUDACC_VER_MAJOR__,
             __CUDACC_VER_MINOR__);
    snprintf(info->servesim_version, sizeof info->servesim_version, "%s", SERVESIM_VERSION);

    size_t free_b, total_b;
    CUDA_OK(cudaMemGetInfo(&free_b, &total_b));
    c->arena_size = (size_t)(free_b * 0.85) & ~(size_t)((1 << 20) - 1);
    CUDA_OK(cudaMalloc((void **)&c->arena, c->arena_size));
    c->rotate_bytes = 3.0 * c->prop.l2CacheSize;
}

static void print_entry(int i, int n, const calib_entry *e, double secs, int points, int errs)
{
    const ctab_family_info *fi = ctab_family_get(e->family);
    printf("[%3d/%d] %-12s", i + 1, n, fi->name);
    for (int j = 0; j < fi->n_params; j++)
        printf(" %s=%lld", fi->param[j], (long long)e->p[j]);
    printf(": %d points%s in %.1f s\n", points, errs ? " (some skipped)" : "", secs);
    fflush(stdout);
}

static int run_layers(ctx *c, const calib_plan *plan, calib_run_info *info)
{
    calib_point_result *res = (calib_point_result *)calloc(plan->n_layers + 1, sizeof *res);
    for (int i = 0; i < plan->n_layers; i++) {
        const calib_layer *l = &plan->layer[i];
        res[i] = no_result();
        if (c->opt.models && !strstr(c->opt.models, l->model))
            continue;
        composite comp = {l->n_ops, (bench *)calloc(l->n_ops, sizeof(bench)),
                          (int *)calloc(l->n_ops, sizeof(int))};
        c->arena_used = 0;
        char why[256] = "";
        int ok = 1;
        for (int j = 0; j < l->n_ops && ok; j++) {
            double x[CTAB_MAX_X];
            memcpy(x, l->op[j].x, sizeof x);
            comp.count[j] = l->op[j].count;
            ok = bench_setup(c, &comp.b[j], l->op[j].family, l->op[j].p, x, plan->page_tokens,
                             why, sizeof why) == 0;
        }
        if (ok) {
            measure(c, NULL, &comp, 1, &res[i]);
            printf("layer %-16s %-14s %9.1f us  %7.1f W\n", l->model, l->name,
                   res[i].median_ns / 1e3, res[i].power_w);
        } else {
            printf("layer %-16s %-14s skipped: %s\n", l->model, l->name, why);
        }
        fflush(stdout);
        for (int j = 0; j < l->n_ops; j++)
            bench_fini(&comp.b[j]);
        free(comp.b);
        free(comp.count);
    }
    calib_nvml_state(c->nvml, &info->after);
    char path[4096];
    if (c->opt.out)
        snprintf(path, sizeof path, "%s", c->opt.out);
    else
        snprintf(path, sizeof path, "calib/tables/%s.layers.json", info->gpu_name);
    make_parent_dir(path);
    FILE *f = fopen(path, "w");
    if (!f)
        die("%s: cannot write: %s", path, strerror(errno));
    int rc = calib_layers_write(f, plan, res, info);
    if (fclose(f) || rc)
        die("%s: write failed", path);
    printf("wrote %s\n", path);
    free(res);
    return 0;
}

static int check_gemm(ctx *c)
{
    const int m = 5, n = 64, k = 256;
    bf16 *w, *x, *y;
    CUDA_OK(cudaMalloc(&w, (size_t)n * k * 2));
    CUDA_OK(cudaMalloc(&x, (size_t)m * k * 2));
    CUDA_OK(cudaMalloc(&y, (size_t)m * n * 2));
    CUDA_OK(k_fill_bf16(w, (size_t)n * k, 41, 1, c->stream));
    CUDA_OK(k_fill_bf16(x, (size_t)m * k, 42, 1, c->stream));
    lt_gemm g;
    if (lt_gemm_init(c, &g, m, n, k))
        die("cuBLASLt: no algorithm for the check GEMM");
    lt_gemm_run(c, &g, w, x, y);
    CUDA_OK(cudaStreamSynchronize(c->stream));
    bf16 hw[64 * 256], hx[5 * 256], hy[5 * 64];
    CUDA_OK(cudaMemcpy(hw, w, sizeof hw, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(hx, x, sizeof hx, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(hy, y, sizeof hy, cudaMemcpyDeviceToHost));
    double num = 0, den = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double want = 0;
            for (int l = 0; l < k; l++)
                want += (double)__bfloat162float(hx[i * k + l]) * __bfloat162float(hw[j * k + l]);
            double got = __bfloat162float(hy[i * n + j]);
            num += (got - want) * (got - want);
            den += want * want;
        }
    double err = sqrt(num / den);
    printf("  %-34s rel err %.2e  %s\n", "gemm (cuBLASLt, Y = X W^T)", err,
           err < 2e-2 ? "ok" : "FAIL");
    lt_gemm_fini(&g);
    cudaFree(w);
    cudaFree(x);
    cudaFree(y);
    return err < 2e-2 ? 0 : 1;
}

int main(int argc, char **argv)
{
    ctx c;
    memset(&c, 0, sizeof c);
    parse_options(argc, argv, &c.opt);
    c.t_start = now_s();
    calib_plan plan;
    sim_err err;
    if (!c.opt.check && calib_plan_load(c.opt.plan, &plan, &err))
        die("%s", err.msg);
    if (c.opt.dry_run) {
        dry_run(&c.opt, &plan);
        calib_plan_fini(&plan);
        return 0;
    }
    calib_run_info info;
    calib_run_info_init(&info);
    init_device(&c, &info);
    printf("servesim-calib %s on %s (%s, cc %d.%d, %d SMs, %.0f MB L2), power by %s\n",
           SERVESIM_VERSION, c.prop.name, info.gpu_name, c.prop.major, c.prop.minor,
           c.prop.multiProcessorCount, c.prop.l2CacheSize / 1e6,
           calib_power_method_name(c.method));
    if (c.opt.check) {
        printf("self-check against float64 host references:\n");
        int bad = k_self_check(c.prop.multiProcessorCount) + check_gemm(&c);
        printf(bad ? "self-check: %d FAILED\n" : "self-check: all passed\n", bad);
        return bad ? 1 : 0;
    }
    c.replays = c.opt.quick ? CALIB_REPLAYS_QUICK : CALIB_REPLAYS_FULL;
    c.graph_min_ns = c.opt.quick ? CALIB_GRAPH_MIN_NS_QUICK : CALIB_GRAPH_MIN_NS_FULL;
    c.window_s = c.opt.quick ? CALIB_WINDOW_S_QUICK : CALIB_WINDOW_S_FULL;
    calib_nvml_state(c.nvml, &info.before);
    c.counter_period_s = counter_period(&c);
    info.idle_w = idle_power(&c, c.opt.quick ? 0.5 : 1.5);
    c.window_s = std::max(c.window_s, 4 * c.counter_period_s);

    snprintf(info.mode, sizeof info.mode, "%s", c.opt.quick ? "quick" : "full");
    snprintf(info.plan_name, sizeof info.plan_name, "%s", plan.name);
    time_t tnow = time(NULL);
    strftime(info.date, sizeof info.date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&tnow));
    info.replays = c.replays;
    info.warmup_replays = 2;
    info.graph_min_ns = c.graph_min_ns;
    info.rotate_bytes = c.rotate_bytes;
    snprintf(info.moe_gemm, sizeof info.moe_gemm, "one cuBLASLt GEMM per active expert");
    snprintf(info.energy_method, sizeof info.energy_method, "%s",
             calib_power_method_name(c.method));
    info.counter_period_ms = c.method == CALIB_POWER_ENERGY_COUNTER ? c.counter_period_s * 1e3
                                                                     : NAN;
    info.window_ms = c.window_s * 1e3;
    measure_ceilings(&c, &info);
    printf("ceilings: GEMM %.0f TFLOP/s, device-to-device %.2f TB/s; idle %.1f W; "
           "energy counter period %.1f ms\n", info.ceil_gemm_flops_per_s / 1e12,
           info.ceil_d2d_bytes_per_s / 1e12, info.idle_w, c.counter_period_s * 1e3);
    fflush(stdout);

    if (c.opt.layer) {
        run_layers(&c, &plan, &info);
        calib_plan_fini(&plan);
        return 0;
    }

    unsigned mask = family_mask(c.opt.only);
    if (mask & (1u << CTAB_COPY)) {
        c.host_bytes = 0;
        for (int i = 0; i < plan.n_entries; i++)
            if (plan.entry[i].family == CTAB_COPY)
                for (int j = 0; j < plan.entry[i].n_points; j++)
                    c.host_bytes = std::max(c.host_bytes,
                                            (size_t)plan.entry[i].axis[0].v[j]);
        CUDA_OK(cudaMallocHost(&c.host_pinned, c.host_bytes ? c.host_bytes : 1));
        c.host_pageable = malloc(c.host_bytes ? c.host_bytes : 1);
        if (!c.host_pageable)
            die("out of host memory for the copy buffers");
        memset(c.host_pageable, 1, c.host_bytes);
        memset(c.host_pinned, 1, c.host_bytes);
    }
    calib_point_result **res = (calib_point_result **)calloc(plan.n_entries + 1, sizeof *res);
    for (int i = 0; i < plan.n_entries; i++) {
        res[i] = (calib_point_result *)calloc(plan.entry[i].n_points, sizeof **res);
        for (int j = 0; j < plan.entry[i].n_points; j++)
            res[i][j] = no_result();
    }
    char out[4096];
    if (c.opt.out)
        snprintf(out, sizeof out, "%s", c.opt.out);
    else
        snprintf(out, sizeof out, "calib/tables/%s.json", info.gpu_name);
    unsigned done_mask = 0;
    int stopped = 0;
    char fams[256] = "";
    for (int i = 0; i < plan.n_entries && !stopped; i++) {
        calib_entry *e = &plan.entry[i];
        if (!(mask & (1u << e->family)) || !model_selected(c.opt.models, e->used_by))
            continue;
        if (!(done_mask & (1u << e->family)))
            snprintf(fams + strlen(fams), sizeof fams - strlen(fams), "%s%s", fams[0] ? "," : "",
                     ctab_family_get(e->family)->name);
        done_mask |= 1u << e->family;
        double t0 = now_s();
        int points = 0, errs = 0;
        for (int j = 0; j < e->n_points; j++) {
            if (e->skip[j])
                continue;
            if (now_s() - c.t_start > c.opt.time_limit_s) {
                printf("time limit of %.0f s reached: stopping; the table holds what was "
                       "measured\n", c.opt.time_limit_s);
                stopped = 1;
                break;
            }
            double x[CTAB_MAX_X] = {0, 0, 1};
            calib_entry_point_x(e, j, x);
            c.arena_used = 0;
            bench b;
            char why[256] = "";
            if (bench_setup(&c, &b, e->family, e->p, x, plan.page_tokens, why, sizeof why)) {
                if (!errs)
                    printf("  skipped a point: %s\n", why);
                errs++;
                continue;
            }
            measure(&c, &b, NULL, e->energy[j], &res[i][j]);
            bench_fini(&b);
            points++;
        }
        print_entry(i, plan.n_entries, e, now_s() - t0, points, errs);
        int last_of_family = i + 1 == plan.n_entries || plan.entry[i + 1].family != e->family;
        if (last_of_family || stopped) {
            snprintf(info.families, sizeof info.families, "%s%s", fams,
                     stopped ? " (cut short)" : "");
            calib_nvml_state(c.nvml, &info.after);
            write_table(out, &plan, res, done_mask, &info);
        }
    }
    info.idle_w_after = idle_power(&c, c.opt.quick ? 0.5 : 1.0);
    calib_nvml_state(c.nvml, &info.after);
    snprintf(info.families, sizeof info.families, "%s%s", fams, stopped ? " (cut short)" : "");
    write_table(out, &plan, res, done_mask, &info);
    printf("wrote %s (%.0f s)\n", out, now_s() - c.t_start);
    for (int i = 0; i < plan.n_entries; i++)
        free(res[i]);
    free(res);
    calib_plan_fini(&plan);
    calib_nvml_close(c.nvml);
    return 0;
}
