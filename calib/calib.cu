/* servesim-calib: measures operator latency and energy on an NVIDIA GPU and
 * writes a cost table for the simulator's `table` cost model.
 *
 *   servesim-calib [--plan FILE] [--quick] [--only F1,F2] [--models A,B]
 *                  [--gpu NAME] [--out FILE] [--status FILE] [--start N]
 *                  [--time-limit S] [--idle-s S] [--idle-after-s S]
 *                  [--layer] [--check] [--dry-run]
 *
 * Design. The program executes a plan (calib/plan.h: the entries and grid
 * points the simulator asks for, written by calib-tool from the bundled
 * models with ops_decompose), so it needs no JSON library and no model
 * files. The run itself (which entries, the time limit, skipping a point
 * that fails, writing the table atomically every few seconds and after
 * every entry) is calib/runner.c; the power loops and replay statistics
 * are calib/measure.c; GEMM set-up with alignment preferences is
 * calib/gemm.c; buffer layouts and split counts are calib/layout.c: plain
 * C that the tests run against fakes. This file is the GPU side of those
 * interfaces: per point a `bench` is set up (buffers from one device
 * arena, random non-zero data, weights and KV rotated across copies that
 * together exceed three L2 caches), warmed up, and timed as CUDA graphs of
 * k back-to-back runs (one replay >= 0.25 ms), replayed 21 times between
 * events. At the plan's energy points the graph is replayed while NVML's
 * energy counter is polled. The GPU's settings are read, never changed.
 *
 * Errors. A CUDA or cuBLAS failure that leaves the context usable (no
 * algorithm, a rejected launch, out of memory) skips the point; one that
 * does not (a sticky error) ends the run after writing the table with
 * state "failed". SIGTERM and SIGINT stop the run before the next point,
 * table written. die() is for what precedes the first table (device set-up,
 * ceilings) and writes the status file. */
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

#include "calib/c_api.h"
#include "calib/kernels.h"

#ifndef SERVESIM_VERSION
#define SERVESIM_VERSION "unknown"
#endif

#define MAX_K 256
#define WORKSPACE_BYTES (32u << 20)
#define EVENT_RING 320          /* > the power loop's queue bound (measure.c) */
#define FLUSH_EVERY_S 2.0       /* a kill loses at most this much of a family */

/* ---- errors ------------------------------------------------------------------ */

/* Set by SIGTERM/SIGINT; the runner stops before the next point. */
static volatile sig_atomic_t g_stop;
/* Written by die() when set: the status file of this run. */
static const char *g_status_path;
/* Called once by die() before exiting (writes what was measured). */
static void (*g_die_hook)(void *);
static void *g_die_arg;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void die(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "servesim-calib: error: %s\n", msg);
    void (*hook)(void *) = g_die_hook;
    g_die_hook = NULL;   /* once, even if the hook dies */
    if (hook) {
        hook(g_die_arg);
    } else if (g_status_path) {
        char text[1200];
        for (char *p = msg; *p; p++)
            if (*p == '\n')
                *p = ' ';
        snprintf(text, sizeof text, "state=failed\nerror=%s\n", msg);
        sim_err err;
        calib_text_save(g_status_path, text, &err);
    }
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
    const char *plan, *out, *gpu, *only, *models, *status;
    int quick, layer, check, dry_run, start_entry;
    double time_limit_s, idle_s, idle_after_s;
} options;

typedef struct ctx {
    options opt;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    calib_gemm_lib lt_lib;
    void *workspace;
    cudaDeviceProp prop;
    char pci[32];
    calib_nvml *nvml;
    calib_power_method method;
    double counter_period_s;
    calib_gpu_io io;
    /* device arena: bump allocation, reset per point */
    char *arena;
    size_t arena_size, arena_used;
    cudaError_t fill_err;        /* first failed fill since the arena reset */
    uint64_t seed;
    /* host copy buffers, allocated when copies are measured */
    void *host_pinned, *host_pageable;
    size_t host_bytes;
    /* timing */
    int replays;
    double graph_min_ns, window_s;
    double rotate_bytes;
    double t_start;
    /* power: replays in flight, an event recorded after each */
    cudaEvent_t ring[EVENT_RING];
    long ring_head, ring_tail;
} ctx;

/* Why a CUDA call failed, and whether the context survived it: a sticky
 * error (illegal address, a trap) makes every later call fail, so the run
 * must stop; anything else skips the point. Ends a capture left open. */
static int fail_point(ctx *c, char *why, size_t why_n)
{
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(c->stream, &cs) == cudaSuccess &&
        cs != cudaStreamCaptureStatusNone) {
        cudaGraph_t g = NULL;
        cudaStreamEndCapture(c->stream, &g);
        if (g)
            cudaGraphDestroy(g);
    }
    (void)cudaGetLastError();   /* clears an error that is not sticky */
    cudaError_t s = cudaDeviceSynchronize();
    if (s != cudaSuccess) {
        size_t len = strlen(why);
        snprintf(why + len, why_n - len, "; then the device reported %s: the context is lost",
                 cudaGetErrorString(s));
        return CALIB_POINT_FATAL;
    }
    return CALIB_POINT_SKIPPED;
}

static int classify(ctx *c, cudaError_t e, const char *what, char *why, size_t why_n)
{
    snprintf(why, why_n, "%s: %s", what, cudaGetErrorString(e));
    return fail_point(c, why, why_n);
}

/* In a function with ctx *c, char *why, size_t why_n, returning a status. */
#define TRY(call)                                                   \
    do {                                                            \
        cudaError_t e_ = (call);                                    \
        if (e_ != cudaSuccess)                                      \
            return classify(c, e_, #call, why, why_n);              \
    } while (0)

static void *arena_alloc(ctx *c, size_t bytes)
{
    size_t at = (c->arena_used + 255) & ~(size_t)255;
    if (at + bytes > c->arena_size)
        return NULL;
    c->arena_used = at + bytes;
    return c->arena + at;
}

/* Random bf16 (never zero); NULL and *ok = 0 when the arena is full or the
 * fill fails (c->fill_err). */
static bf16 *alloc_bf16(ctx *c, size_t n, float scale, int *ok)
{
    bf16 *p = (bf16 *)arena_alloc(c, n * sizeof(bf16) + 16);
    if (!p) {
        *ok = 0;
        return NULL;
    }
    cudaError_t e = k_fill_bf16(p, n, ++c->seed, scale, c->stream);
    if (e != cudaSuccess) {
        if (c->fill_err == cudaSuccess)
            c->fill_err = e;
        *ok = 0;
        return NULL;
    }
    return p;
}

/* ---- cuBLASLt behind calib_gemm_lib -------------------------------------------- */

typedef struct lt_algo {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} lt_algo;

static void lt_release(void *self, void *algo)
{
    (void)self;
    lt_algo *g = (lt_algo *)algo;
    if (!g)
        return;
    if (g->a)
        cublasLtMatrixLayoutDestroy(g->a);
    if (g->b)
        cublasLtMatrixLayoutDestroy(g->b);
    if (g->c)
        cublasLtMatrixLayoutDestroy(g->c);
    if (g->desc)
        cublasLtMatmulDescDestroy(g->desc);
    free(g);
}

/* Column-major view: Y^T (n x m) = W (n x k, stored k x n, transposed) * X^T,
 * with the operands' alignment as minimum-alignment preferences. */
static int lt_select(void *self, int64_t m, int64_t n, int64_t k, const unsigned align[4],
                     void **out, char *why, size_t why_n)
{
    ctx *c = (ctx *)self;
    lt_algo *g = (lt_algo *)calloc(1, sizeof *g);
    cublasLtMatmulPreference_t pref = NULL;
    cublasStatus_t st = CUBLAS_STATUS_ALLOC_FAILED;
    const char *what = "calloc";
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    size_t ws = WORKSPACE_BYTES;
    static const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
#define LT_STEP(call)                                  \
    do {                                               \
        what = #call;                                  \
        if ((st = (call)) != CUBLAS_STATUS_SUCCESS)    \
            goto fail;                                 \
    } while (0)
    if (!g)
        goto fail;
    LT_STEP(cublasLtMatmulDescCreate(&g->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT_STEP(cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_STEP(cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    LT_STEP(cublasLtMatrixLayoutCreate(&g->a, CUDA_R_16BF, (uint64_t)k, (uint64_t)n, k));
    LT_STEP(cublasLtMatrixLayoutCreate(&g->b, CUDA_R_16BF, (uint64_t)k, (uint64_t)m, k));
    LT_STEP(cublasLtMatrixLayoutCreate(&g->c, CUDA_R_16BF, (uint64_t)n, (uint64_t)m, n));
    LT_STEP(cublasLtMatmulPreferenceCreate(&pref));
    LT_STEP(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    for (int i = 0; i < 4; i++) {
        uint32_t a = align[i];
        LT_STEP(cublasLtMatmulPreferenceSetAttribute(pref, align_attr[i], &a, sizeof a));
    }
    LT_STEP(cublasLtMatmulAlgoGetHeuristic(c->lt, g->desc, g->a, g->b, g->c, g->c, pref, 1,
                                           &res, &found));
#undef LT_STEP
    cublasLtMatmulPreferenceDestroy(pref);
    if (found < 1) {
        snprintf(why, why_n, "cuBLASLt's heuristic returned no algorithm");
        lt_release(c, g);
        return -1;
    }
    g->algo = res.algo;
    *out = g;
    return 0;
fail:
    snprintf(why, why_n, "%s: cuBLAS status %d", what, (int)st);
    if (pref)
        cublasLtMatmulPreferenceDestroy(pref);
    lt_release(c, g);
    return -1;
}

static int lt_run(void *self, void *algo, const calib_gemm_operands *o)
{
    ctx *c = (ctx *)self;
    const lt_algo *g = (const lt_algo *)algo;
    float one = 1.0f, zero = 0.0f;
    return (int)cublasLtMatmul(c->lt, g->desc, &one, o->w, g->a, o->x, g->b, &zero, o->y, g->c,
                               o->y, g->c, &g->algo, c->workspace, WORKSPACE_BYTES, c->stream);
}

/* ---- the gpu_io of measure.c -------------------------------------------------------- */

/* A bench being measured for power: what one replay is. */
typedef struct replay_src {
    ctx *c;
    cudaGraphExec_t exec;
    struct bench *single;
    struct composite *comp;
    int k;
} replay_src;

static replay_src *g_replay;   /* the power loop's current replay (one at a time) */

static int run_once(ctx *c, struct bench *single, struct composite *comp, int rot, char *why,
                    size_t why_n);

static double io_now(void *self)
{
    (void)self;
    return now_s();
}

static void io_sleep(void *self, double s)
{
    (void)self;
    sleep_s(s);
}

static int io_energy(void *self, unsigned long long *mj)
{
    return calib_nvml_energy_mj(((ctx *)self)->nvml, mj);
}

static int io_power(void *self, calib_power_method m, double *w)
{
    return calib_nvml_power_w(((ctx *)self)->nvml, m, w);
}

static long long io_reasons(void *self)
{
    return calib_nvml_reasons(((ctx *)self)->nvml);
}

static int io_launch(void *self, char *why, size_t why_n)
{
    ctx *c = (ctx *)self;
    replay_src *r = g_replay;
    if (!r || c->ring_head - c->ring_tail >= EVENT_RING) {
        snprintf(why, why_n, "power loop: nothing to replay, or %d replays in flight",
                 EVENT_RING);
        return -1;
    }
    cudaError_t e = cudaSuccess;
    if (r->exec) {
        e = cudaGraphLaunch(r->exec, c->stream);
    } else {
        for (int j = 0; j < r->k && e == cudaSuccess; j++)
            if (run_once(c, r->single, r->comp, j, why, why_n))
                return -1;
    }
    if (e == cudaSuccess)
        e = cudaEventRecord(c->ring[c->ring_head % EVENT_RING], c->stream);
    if (e != cudaSuccess) {
        snprintf(why, why_n, "power loop: launch: %s", cudaGetErrorString(e));
        return -1;
    }
    c->ring_head++;
    return 0;
}

static int io_in_flight(void *self, char *why, size_t why_n)
{
    ctx *c = (ctx *)self;
    while (c->ring_tail < c->ring_head) {
        cudaError_t e = cudaEventQuery(c->ring[c->ring_tail % EVENT_RING]);
        if (e == cudaErrorNotReady)
            break;
        if (e != cudaSuccess) {
            snprintf(why, why_n, "power loop: the replays failed: %s", cudaGetErrorString(e));
            return -1;
        }
        c->ring_tail++;
    }
    return (int)(c->ring_head - c->ring_tail);
}

/* ---- benches: one operator at one point ---------------------------------------- */

typedef struct bench {
    ctab_family family;
    int64_t p[CTAB_MAX_PARAMS];
    double x[CTAB_MAX_X];
    int n_rot;
    int graphable;
    int64_t m, n, k;                 /* sizes in use */
    void *w[CALIB_MAX_ROT];          /* rotated weights / K caches */
    void *w2[CALIB_MAX_ROT];         /* rotated V caches */
    bf16 *a, *b, *c, *d;             /* activations */
    float *f0, *f1;
    int *i0, *i1;
    calib_gemm gemm;                 /* GEMM and router */
    calib_moe_layout moe;            /* MoE experts */
    calib_gemm *up, *down;
    int splits, max_pages, page_tokens;
    size_t copy_bytes;
} bench;

static void bench_fini(bench *b)
{
    calib_gemm_fini(&b->gemm);
    for (int i = 0; b->up && i < b->moe.n_groups; i++) {
        calib_gemm_fini(&b->up[i]);
        calib_gemm_fini(&b->down[i]);
    }
    free(b->up);
    free(b->down);
    calib_moe_layout_fini(&b->moe);
    memset(b, 0, sizeof *b);
}

static int setup_gemm_weights(ctx *c, bench *b, int64_t n, int64_t k)
{
    int ok = 1;
    b->n_rot = calib_rotations(c->rotate_bytes, (double)n * k * 2);
    for (int r = 0; r < b->n_rot && ok; r++)
        b->w[r] = alloc_bf16(c, (size_t)n * k, 0.05f, &ok);
    return ok ? 0 : -1;
}

/* A dense GEMM (or router) over every rotation of its weights. */
static int init_dense_gemm(ctx *c, bench *b, char *why, size_t why_n)
{
    calib_gemm_operands uses[CALIB_MAX_ROT];
    for (int r = 0; r < b->n_rot; r++)
        uses[r] = (calib_gemm_operands){b->w[r], b->a, b->c};
    return calib_gemm_init(&b->gemm, &c->lt_lib, b->m, b->n, b->k, uses, b->n_rot, why, why_n);
}

/* Expert group g's GEMMs over every rotation of the packed weights. */
static int init_expert_gemms(ctx *c, bench *b, char *why, size_t why_n)
{
    const calib_moe_layout *L = &b->moe;
    b->up = (calib_gemm *)calloc(L->n_groups, sizeof *b->up);
    b->down = (calib_gemm *)calloc(L->n_groups, sizeof *b->down);
    if (!b->up || !b->down) {
        snprintf(why, why_n, "out of host memory");
        return -1;
    }
    calib_gemm_operands ups[CALIB_MAX_ROT], downs[CALIB_MAX_ROT];
    for (int g = 0; g < L->n_groups; g++) {
        for (int r = 0; r < b->n_rot; r++)
            calib_moe_operands(L, g, b->w[r], b->a, b->b, b->c, b->d, &ups[r], &downs[r]);
        int64_t t = L->group[g].tokens;
        if (calib_gemm_init(&b->up[g], &c->lt_lib, t, 2 * L->ffn, L->hidden, ups, b->n_rot, why,
                            why_n) ||
            calib_gemm_init(&b->down[g], &c->lt_lib, t, L->hidden, L->ffn, downs, b->n_rot, why,
                            why_n))
            return -1;
    }
    return 0;
}

/* Sets up the bench for family/params at coordinates x; a point status
 * with why. */
static int bench_setup(ctx *c, bench *b, ctab_family fam, const int64_t *p, const double *x,
                       int page_tokens, char *why, size_t why_n)
{
    memset(b, 0, sizeof *b);
    b->family = fam;
    memcpy(b->p, p, sizeof b->p);
    memcpy(b->x, x, sizeof b->x);
    b->graphable = 1;
    b->n_rot = 1;
    c->fill_err = cudaSuccess;
    int ok = 1, gemm_fail = 0;
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
        b->m = m;
        b->n = n;
        b->k = k;
        if (ok)
            gemm_fail = init_dense_gemm(c, b, why, why_n);
        break;
    }
    case CTAB_MOE_EXPERTS: {
        calib_moe_layout_build(m, p, (uint64_t)m, &b->moe);
        const calib_moe_layout *L = &b->moe;
        b->n_rot = calib_rotations(c->rotate_bytes, (double)L->weight_elems * 2);
        for (int r = 0; r < b->n_rot && ok; r++)
            b->w[r] = alloc_bf16(c, L->weight_elems, 0.05f, &ok);
        b->a = alloc_bf16(c, (size_t)L->pairs * L->hidden, 1, &ok);       /* tokens, by expert */
        b->b = alloc_bf16(c, (size_t)L->pairs * 2 * L->ffn, 1, &ok);      /* gate and up out */
        b->c = alloc_bf16(c, (size_t)L->pairs * L->ffn, 1, &ok);          /* activated, down in */
        b->d = alloc_bf16(c, (size_t)L->pairs * L->hidden, 1, &ok);       /* down out */
        b->n = L->ffn;
        b->k = L->hidden;
        if (ok)
            gemm_fail = init_expert_gemms(c, b, why, why_n);
        break;
    }
    case CTAB_ATTN_PREFILL: {
        int64_t hq = p[0], hkv = p[1], D = p[2];
        int64_t q = m, prefix = (int64_t)llround(x[1]), seqs = std::max<int64_t>(1, llround(x[2]));
        if (p[3] != 2 || D != 128) {
            snprintf(why, why_n, "only bf16 KV and head_dim 128 are supported");
            return CALIB_POINT_SKIPPED;
        }
        size_t kv = (size_t)seqs * (prefix + q) * hkv * D;
        b->n_rot = calib_rotations(c->rotate_bytes, kv * 2.0 * 2);
        for (int r = 0; r < b->n_rot && ok; r++) {
            b->w[r] = alloc_bf16(c, kv, 1, &ok);
            b->w2[r] = alloc_bf16(c, kv, 1, &ok);
        }
        b->a = alloc_bf16(c, (size_t)seqs * q * hq * D, 1, &ok);
        b->c = alloc_bf16(c, (size_t)seqs * q * hq * D, 1, &ok);
        b->splits = calib_attn_prefill_splits((int)seqs, (int)q, (int)prefix, (int)hq,
                                              c->prop.multiProcessorCount);
        if (b->splits > 1) {
            size_t rows = (size_t)seqs * q * hq * b->splits;
            b->f0 = (float *)arena_alloc(c, rows * D * 4);
            b->f1 = (float *)arena_alloc(c, rows * 2 * 4);
            ok &= b->f0 && b->f1;
        }
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
            return CALIB_POINT_SKIPPED;
        }
        b->page_tokens = page_tokens;
        b->max_pages = (int)((ctx_len + page_tokens - 1) / page_tokens);
        int64_t pages = batch * b->max_pages;
        size_t kv = (size_t)pages * page_tokens * hkv * D;
        b->n_rot = calib_rotations(c->rotate_bytes, kv * 2.0 * 2);
        for (int r = 0; r < b->n_rot && ok; r++) {
            b->w[r] = alloc_bf16(c, kv, 1, &ok);
            b->w2[r] = alloc_bf16(c, kv, 1, &ok);
        }
        b->splits = calib_attn_decode_splits((int)batch, (int)hkv, (int)ctx_len,
                                             c->prop.multiProcessorCount);
        b->a = alloc_bf16(c, (size_t)batch * hq * D, 1, &ok);
        b->c = alloc_bf16(c, (size_t)batch * hq * D, 1, &ok);
        b->f0 = (float *)arena_alloc(c, (size_t)batch * hq * b->splits * D * 4);
        b->f1 = (float *)arena_alloc(c, (size_t)batch * hq * b->splits * 2 * 4);
        b->i0 = (int *)arena_alloc(c, (size_t)pages * 4);
        ok &= b->f0 && b->f1 && b->i0;
        b->m = batch;
        b->k = ctx_len;
        if (!ok)
            break;
        /* a random permutation of the pool: pages scattered as in a real cache */
        int *bt = (int *)malloc(pages * sizeof *bt);
        if (!bt) {
            snprintf(why, why_n, "out of host memory");
            return CALIB_POINT_SKIPPED;
        }
        uint64_t s = (uint64_t)pages * 2654435761u + 7;
        for (int64_t i = 0; i < pages; i++)
            bt[i] = (int)i;
        for (int64_t i = pages - 1; i > 0; i--) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            int64_t j = (int64_t)((s >> 33) % (uint64_t)(i + 1));
            std::swap(bt[i], bt[j]);
        }
        cudaError_t e = cudaMemcpyAsync(b->i0, bt, pages * sizeof *bt, cudaMemcpyHostToDevice,
                                        c->stream);
        if (e == cudaSuccess)
            e = cudaStreamSynchronize(c->stream);
        free(bt);
        if (e != cudaSuccess)
            return classify(c, e, "block table upload", why, why_n);
        break;
    }
    case CTAB_EMBED: {
        int64_t H = p[0], rows = p[1];
        b->w[0] = alloc_bf16(c, (size_t)rows * H, 1, &ok);
        b->i0 = (int *)arena_alloc(c, (size_t)m * 4);
        b->c = alloc_bf16(c, (size_t)m * H, 1, &ok);
        ok &= b->i0 != NULL;
        if (ok)
            TRY(k_fill_int(b->i0, m, ++c->seed, (int)rows, c->stream));
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
            TRY(k_rope_cache(b->f0, n_pos, (int)D, c->stream));
            TRY(k_fill_int(b->i0, m, ++c->seed, n_pos, c->stream));
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
            TRY(k_fill_f32(b->f0, (size_t)m * V, ++c->seed, 8, c->stream));
        b->m = m;
        b->n = V;
        break;
    }
    case CTAB_COPY: {
        size_t bytes = (size_t)llround(x[0]);
        if (bytes > c->host_bytes) {
            snprintf(why, why_n, "copy of %zu bytes exceeds the host buffers", bytes);
            return CALIB_POINT_SKIPPED;
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
        return CALIB_POINT_SKIPPED;
    }
    if (c->fill_err != cudaSuccess) {
        bench_fini(b);
        return classify(c, c->fill_err, "random fill", why, why_n);
    }
    if (gemm_fail) {   /* why is the GEMM set-up's */
        bench_fini(b);
        return fail_point(c, why, why_n);
    }
    if (!ok) {
        snprintf(why, why_n, "out of device memory (arena of %.1f GiB)",
                 c->arena_size / 1073741824.0);
        bench_fini(b);
        return CALIB_POINT_SKIPPED;
    }
    cudaError_t e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess) {
        bench_fini(b);
        return classify(c, e, "bench set-up", why, why_n);
    }
    return CALIB_POINT_OK;
}

/* Enqueues one run, reading rotation slot `rot`; 0, or -1 with why. */
static int bench_launch(ctx *c, bench *b, int rot, char *why, size_t why_n)
{
    cudaStream_t s = c->stream;
    int r = rot % b->n_rot;
    cudaError_t e = cudaSuccess;
    switch (b->family) {
    case CTAB_GEMM: {
        calib_gemm_operands o = {b->w[r], b->a, b->c};
        return calib_gemm_run(&b->gemm, &o, why, why_n);
    }
    case CTAB_MOE_ROUTER: {
        calib_gemm_operands o = {b->w[r], b->a, b->c};
        if (calib_gemm_run(&b->gemm, &o, why, why_n))
            return -1;
        e = k_topk(b->c, b->i0, b->f0, (int)b->m, (int)b->n, (int)b->p[2], s);
        break;
    }
    case CTAB_MOE_EXPERTS:
        for (int g = 0; g < b->moe.n_groups; g++) {
            calib_gemm_operands up, down;
            calib_moe_operands(&b->moe, g, b->w[r], b->a, b->b, b->c, b->d, &up, &down);
            if (calib_gemm_run(&b->up[g], &up, why, why_n) ||
                calib_gemm_run(&b->down[g], &down, why, why_n))
                return -1;
        }
        break;
    case CTAB_ATTN_PREFILL:
        e = k_attn_prefill(b->a, (const bf16 *)b->w[r], (const bf16 *)b->w2[r], b->c, b->f0,
                           b->f1, (int)b->n, (int)b->m, (int)b->k, (int)b->p[0], (int)b->p[1],
                           (int)b->p[2], b->splits, s);
        break;
    case CTAB_ATTN_DECODE:
        e = k_attn_decode(b->a, (const bf16 *)b->w[r], (const bf16 *)b->w2[r], b->i0,
                          b->max_pages, b->c, b->f0, b->f1, (int)b->m, (int)b->k, (int)b->p[0],
                          (int)b->p[1], (int)b->p[2], b->page_tokens, b->splits, s);
        break;
    case CTAB_EMBED:
        e = k_embed(b->i0, (const bf16 *)b->w[0], b->c, (int)b->m, (int)b->n, s);
        break;
    case CTAB_NORM:
        e = k_rmsnorm(b->a, b->b, b->c, (const bf16 *)b->w[0], (int)b->m, (int)b->n, s);
        break;
    case CTAB_ROPE:
        e = k_rope(b->a, b->i0, b->f0, (int)b->m, (int)b->n, (int)b->k, s);
        break;
    case CTAB_ACT:
        e = k_silu_mul(b->a, b->c, (int)b->m, (int)b->n, s);
        break;
    case CTAB_SAMPLE:
        e = k_sample(b->f0, b->i0, (int)b->m, (int)b->n, (uint64_t)rot + 1, s);
        break;
    case CTAB_COPY:
        if (b->n == 0)
            e = cudaMemcpyAsync(b->w[0], b->k ? c->host_pinned : c->host_pageable,
                                b->copy_bytes, cudaMemcpyHostToDevice, s);
        else
            e = cudaMemcpyAsync(b->k ? c->host_pinned : c->host_pageable, b->w[0],
                                b->copy_bytes, cudaMemcpyDeviceToHost, s);
        break;
    default:
        break;
    }
    if (e != cudaSuccess) {
        snprintf(why, why_n, "%s launch: %s", ctab_family_get(b->family)->name,
                 cudaGetErrorString(e));
        return -1;
    }
    return 0;
}

/* A whole layer: several benches run in order, each `count` times. */
typedef struct composite {
    int n;
    bench *b;
    int *count;
} composite;

static int run_once(ctx *c, bench *single, composite *comp, int rot, char *why, size_t why_n)
{
    if (!comp)
        return bench_launch(c, single, rot, why, why_n);
    for (int i = 0; i < comp->n; i++)
        for (int j = 0; j < comp->count[i]; j++)
            if (bench_launch(c, &comp->b[i], rot * 4 + j, why, why_n))
                return -1;
    return 0;
}

/* ---- timing and energy ------------------------------------------------------------ */

static calib_point_result no_result(void)
{
    calib_point_result r;
    r.median_ns = r.p10_ns = r.p90_ns = r.power_w = r.energy_j = NAN;
    r.throttled = 0;
    return r;
}

/* Power while the graph (or k runs) replays back to back: measure.c's loop
 * over this program's events and NVML. A failure that leaves the context
 * usable costs the point its power, not its latency. */
static int measure_power(ctx *c, replay_src *src, double replay_s, calib_point_result *r,
                         char *why, size_t why_n)
{
    calib_power_opts o;
    o.method = c->method;
    o.replay_s = replay_s;
    o.period_s = c->counter_period_s;
    o.window_s = c->window_s;
    o.ramp_s = CALIB_RAMP_S;
    o.ahead_s = CALIB_AHEAD_S;
    calib_power_result pr;
    c->ring_head = c->ring_tail = 0;
    g_replay = src;
    int rc = calib_power_measure(&c->io, &o, &pr, why, why_n);
    g_replay = NULL;
    if (rc) {
        if (fail_point(c, why, why_n) == CALIB_POINT_FATAL)
            return CALIB_POINT_FATAL;
        fprintf(stderr, "servesim-calib: warning: power: %s\n", why);
        return CALIB_POINT_OK;
    }
    r->power_w = pr.power_w;
    r->energy_j = pr.power_w * r->median_ns * 1e-9;
    r->throttled |= (uint8_t)pr.throttled;
    if (pr.note[0])
        fprintf(stderr, "servesim-calib: warning: power: %s\n", pr.note);
    return CALIB_POINT_OK;
}

/* Times one bench or a composite (a layer); fills r. A point status. */
static int measure(ctx *c, bench *single, composite *comp, int want_power,
                   calib_point_result *r, char *why, size_t why_n)
{
    cudaStream_t s = c->stream;
    *r = no_result();
    int R = c->replays, st = CALIB_POINT_OK, k = 1;
    cudaEvent_t ev[2] = {NULL, NULL}, marks[64];
    int n_marks = 0;
    cudaGraphExec_t exec = NULL;
    cudaGraph_t graph = NULL;
    double per[64];
    float ms = 0;
    long long reasons;
    SIM_ASSERT(R + 1 <= 64);
#define STEP(call)                                                      \
    do {                                                                \
        cudaError_t e_ = (call);                                        \
        if (e_ != cudaSuccess) {                                        \
            st = classify(c, e_, #call, why, why_n);                    \
            goto done;                                                  \
        }                                                               \
    } while (0)
#define RUN(rot)                                                        \
    do {                                                                \
        if (run_once(c, single, comp, (rot), why, why_n)) {             \
            st = fail_point(c, why, why_n);                             \
            goto done;                                                  \
        }                                                               \
    } while (0)
    /* two warm-up runs, then a first estimate over three */
    RUN(0);
    RUN(1);
    STEP(cudaStreamSynchronize(s));
    STEP(cudaGetLastError());
    STEP(cudaEventCreate(&ev[0]));
    STEP(cudaEventCreate(&ev[1]));
    STEP(cudaEventRecord(ev[0], s));
    for (int i = 0; i < 3; i++)
        RUN(i);
    STEP(cudaEventRecord(ev[1], s));
    STEP(cudaEventSynchronize(ev[1]));
    STEP(cudaEventElapsedTime(&ms, ev[0], ev[1]));
    {
        double est_ns = std::max(ms * 1e6 / 3, 100.0);
        k = (int)std::min<double>(MAX_K, std::max(1.0, ceil(c->graph_min_ns / est_ns)));
    }
    {
        int graphable = comp ? 1 : single->graphable;
        for (int i = 0; comp && i < comp->n; i++)
            graphable &= comp->b[i].graphable;
        if (graphable) {
            STEP(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
            for (int i = 0; i < k; i++)
                RUN(i);
            STEP(cudaStreamEndCapture(s, &graph));
            STEP(cudaGraphInstantiate(&exec, graph, 0));
            for (int i = 0; i < CALIB_WARMUP_REPLAYS; i++)
                STEP(cudaGraphLaunch(exec, s));
        }
    }
    for (; n_marks <= R; n_marks++)
        STEP(cudaEventCreate(&marks[n_marks]));
    STEP(cudaEventRecord(marks[0], s));
    for (int i = 0; i < R; i++) {
        if (exec)
            STEP(cudaGraphLaunch(exec, s));
        else
            for (int j = 0; j < k; j++)
                RUN(j);
        STEP(cudaEventRecord(marks[i + 1], s));
    }
    /* throttle reasons while the replays run (they describe the present) */
    reasons = calib_nvml_reasons(c->nvml);
    STEP(cudaEventSynchronize(marks[R]));
    STEP(cudaGetLastError());
    for (int i = 0; i < R; i++) {
        STEP(cudaEventElapsedTime(&ms, marks[i], marks[i + 1]));
        per[i] = ms * 1e6 / k;
    }
    calib_replay_stats(per, R, &r->median_ns, &r->p10_ns, &r->p90_ns);
    r->throttled = reasons > 0 && (reasons & CALIB_THROTTLE_MASK);
    if (want_power) {
        replay_src src = {c, exec, single, comp, k};
        st = measure_power(c, &src, r->median_ns * k * 1e-9, r, why, why_n);
    }
#undef STEP
#undef RUN
done:
    for (int i = 0; i < n_marks; i++)
        cudaEventDestroy(marks[i]);
    if (exec)
        cudaGraphExecDestroy(exec);
    if (graph)
        cudaGraphDestroy(graph);
    for (int i = 0; i < 2; i++)
        if (ev[i])
            cudaEventDestroy(ev[i]);
    if (st != CALIB_POINT_OK)
        *r = no_result();
    return st;
}

/* ---- device-wide measurements ---------------------------------------------------- */

static void measure_ceilings(ctx *c, calib_run_info *info)
{
    const int64_t n = 8192;
    bench b;
    memset(&b, 0, sizeof b);
    c->arena_used = 0;
    c->fill_err = cudaSuccess;
    int ok = 1;
    char why[512] = "";
    b.family = CTAB_GEMM;
    b.graphable = 1;
    b.n_rot = 2;
    b.m = b.n = b.k = n;
    for (int r = 0; r < 2; r++)
        b.w[r] = alloc_bf16(c, (size_t)n * n, 0.05f, &ok);
    b.a = alloc_bf16(c, (size_t)n * n, 1, &ok);
    b.c = alloc_bf16(c, (size_t)n * n, 1, &ok);
    if (!ok || init_dense_gemm(c, &b, why, sizeof why))
        die("cannot set up the %lld^3 GEMM for the FLOP/s ceiling: %s", (long long)n,
            why[0] ? why : "out of device memory");
    double save = c->graph_min_ns;
    c->graph_min_ns = 20e6;
    calib_point_result r;
    if (measure(c, &b, NULL, 0, &r, why, sizeof why))
        die("the FLOP/s ceiling: %s", why);
    c->graph_min_ns = save;
    info->ceil_gemm_flops_per_s = 2.0 * n * n * n / (r.median_ns * 1e-9);
    info->ceil_gemm_mnk[0] = info->ceil_gemm_mnk[1] = info->ceil_gemm_mnk[2] = n;
    calib_gemm_fini(&b.gemm);

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

/* The counter's period, and the method to measure with (calib_power_choice):
 * a counter too slow to time, or too slow for short windows, gives way to a
 * power field that answers, said on stderr and in the table's notes; a
 * period is never made up. */
static void energy_setup(ctx *c, calib_run_info *info)
{
    c->counter_period_s = NAN;
    if (c->method != CALIB_POWER_ENERGY_COUNTER)
        return;
    char why[256] = "", note[256];
    int updates;
    int timed = calib_counter_period(&c->io, 2.5, &c->counter_period_s, &updates, why,
                                     sizeof why) == 0;
    double w;
    c->method = calib_power_choice(timed, c->counter_period_s,
                                   calib_nvml_power_w(c->nvml, CALIB_POWER_INSTANT, &w) == 0,
                                   calib_nvml_power_w(c->nvml, CALIB_POWER_AVERAGE, &w) == 0,
                                   note, sizeof note);
    if (!note[0])
        return;
    fprintf(stderr, "servesim-calib: warning: %s%s%s\n", why, why[0] ? "; " : "", note);
    size_t len = strlen(info->notes);
    snprintf(info->notes + len, sizeof info->notes - len, "%s%s%s%s", len ? "; " : "", why,
             why[0] ? "; " : "", note);
    if (c->method != CALIB_POWER_ENERGY_COUNTER)
        c->counter_period_s = NAN;
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

static void usage(void)
{
    fputs("usage: servesim-calib [--plan FILE] [--quick] [--only FAMILY,...] [--models A,B]\n"
          "                      [--gpu NAME] [--out FILE] [--status FILE] [--start N]\n"
          "                      [--time-limit S] [--idle-s S] [--idle-after-s S]\n"
          "                      [--layer] [--check] [--dry-run]\n"
          "see calib/README.md\n", stderr);
    exit(2);
}

static double num_arg(const char *opt, const char *v, double lo)
{
    char *end;
    double x = strtod(v, &end);
    if (*end || !(x >= lo)) {
        fprintf(stderr, "servesim-calib: %s: expected a number >= %g, got \"%s\"\n", opt, lo, v);
        exit(2);
    }
    return x;
}

static void parse_options(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->time_limit_s = 570;
    o->idle_s = 1.5;
    o->idle_after_s = 1.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = !strcmp(a, "--plan") ? &o->plan
                          : !strcmp(a, "--out") ? &o->out
                          : !strcmp(a, "--gpu") ? &o->gpu
                          : !strcmp(a, "--only") ? &o->only
                          : !strcmp(a, "--status") ? &o->status
                          : !strcmp(a, "--models") ? &o->models : NULL;
        double *num = !strcmp(a, "--time-limit") ? &o->time_limit_s
                    : !strcmp(a, "--idle-s") ? &o->idle_s
                    : !strcmp(a, "--idle-after-s") ? &o->idle_after_s : NULL;
        if (slot && i + 1 < argc)
            *slot = argv[++i];
        else if (num && i + 1 < argc)
            *num = num_arg(a, argv[i + 1], 0), i++;
        else if (!strcmp(a, "--start") && i + 1 < argc)
            o->start_entry = (int)num_arg(a, argv[i + 1], 0), i++;
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

static void dry_run(const options *o, const calib_plan *plan, unsigned mask)
{
    int entries = 0, points = 0, energy = 0;
    for (int i = o->start_entry; i < plan->n_entries; i++) {
        const calib_entry *e = &plan->entry[i];
        if (!calib_entry_selected(e, mask, o->models))
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
    c->lt_lib.self = c;
    c->lt_lib.select = lt_select;
    c->lt_lib.run = lt_run;
    c->lt_lib.release = lt_release;
    CUDA_OK(cudaMalloc(&c->workspace, WORKSPACE_BYTES));
    for (int i = 0; i < EVENT_RING; i++)
        CUDA_OK(cudaEventCreateWithFlags(&c->ring[i], cudaEventDisableTiming));
    c->io.self = c;
    c->io.now_s = io_now;
    c->io.sleep_s = io_sleep;
    c->io.energy_mj = io_energy;
    c->io.power_w = io_power;
    c->io.reasons = io_reasons;
    c->io.launch = io_launch;
    c->io.in_flight = io_in_flight;
    char why[1024];
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
    if (c->nvml)
        snprintf(info->notes, sizeof info->notes, "NVML from %s", calib_nvml_library(c->nvml));
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

/* ---- whole layers ------------------------------------------------------------------- */

typedef struct layer_run {
    ctx *c;
    const calib_plan *plan;
    calib_point_result *res;
    calib_run_info *info;
    char path[4096];
    int measured, skipped;
    char state[16], error[512];
} layer_run;

static void layers_flush(layer_run *L)
{
    sim_err err;
    snprintf(L->info->state, sizeof L->info->state, "%s", L->state);
    calib_nvml_state(L->c->nvml, &L->info->after);
    if (calib_layers_save(L->path, L->plan, L->res, L->info, &err))
        fprintf(stderr, "servesim-calib: error: %s\n", err.msg);
    if (L->c->opt.status) {
        char text[1024];
        snprintf(text, sizeof text, "state=%s\nlayers=%d\nlayers_measured=%d\nlayers_skipped=%d\n"
                 "elapsed_s=%.1f\nerror=%s\n", L->state, L->plan->n_layers, L->measured,
                 L->skipped, now_s() - L->c->t_start, L->error);
        if (calib_text_save(L->c->opt.status, text, &err))
            fprintf(stderr, "servesim-calib: error: %s\n", err.msg);
    }
}

static void layers_die_hook(void *arg)
{
    layer_run *L = (layer_run *)arg;
    snprintf(L->state, sizeof L->state, "failed");
    layers_flush(L);
}

static int run_layers(ctx *c, const calib_plan *plan, calib_run_info *info)
{
    layer_run L;
    memset(&L, 0, sizeof L);
    L.c = c;
    L.plan = plan;
    L.info = info;
    L.res = (calib_point_result *)calloc(plan->n_layers + 1, sizeof *L.res);
    for (int i = 0; i < plan->n_layers; i++)
        L.res[i] = no_result();
    if (c->opt.out)
        snprintf(L.path, sizeof L.path, "%s", c->opt.out);
    else
        snprintf(L.path, sizeof L.path, "calib/tables/%s.layers.json", info->gpu_name);
    snprintf(L.state, sizeof L.state, "running");
    g_die_hook = layers_die_hook;
    g_die_arg = &L;
    layers_flush(&L);
    int rc = 0;
    for (int i = 0; i < plan->n_layers; i++) {
        const calib_layer *l = &plan->layer[i];
        if (c->opt.models && !strstr(c->opt.models, l->model))
            continue;
        if (g_stop || now_s() - c->t_start > c->opt.time_limit_s) {
            snprintf(L.state, sizeof L.state, "cut_short");
            snprintf(L.error, sizeof L.error, "%s", g_stop ? "stopped by a signal"
                                                           : "time limit reached");
            rc = 1;
            break;
        }
        composite comp = {l->n_ops, (bench *)calloc(l->n_ops, sizeof(bench)),
                          (int *)calloc(l->n_ops, sizeof(int))};
        c->arena_used = 0;
        char why[512] = "";
        int st = CALIB_POINT_OK, set_up = 0;
        for (int j = 0; j < l->n_ops && st == CALIB_POINT_OK; j++, set_up++) {
            double x[CTAB_MAX_X];
            memcpy(x, l->op[j].x, sizeof x);
            comp.count[j] = l->op[j].count;
            st = bench_setup(c, &comp.b[j], l->op[j].family, l->op[j].p, x, plan->page_tokens,
                             why, sizeof why);
        }
        if (st == CALIB_POINT_OK)
            st = measure(c, NULL, &comp, 1, &L.res[i], why, sizeof why);
        if (st == CALIB_POINT_OK) {
            L.measured++;
            printf("layer %-16s %-14s %9.1f us  %7.1f W\n", l->model, l->name,
                   L.res[i].median_ns / 1e3, L.res[i].power_w);
        } else {
            L.skipped++;
            printf("layer %-16s %-14s skipped: %s\n", l->model, l->name, why);
        }
        fflush(stdout);
        for (int j = 0; j < set_up; j++)
            bench_fini(&comp.b[j]);
        free(comp.b);
        free(comp.count);
        if (st == CALIB_POINT_FATAL) {
            snprintf(L.state, sizeof L.state, "failed");
            snprintf(L.error, sizeof L.error, "%s", why);
            rc = -1;
            break;
        }
        layers_flush(&L);
    }
    if (rc == 0) {
        info->idle_w_after = calib_idle_power(&c->io, c->method, c->opt.idle_after_s);
        snprintf(L.state, sizeof L.state, "complete");
    }
    layers_flush(&L);
    g_die_hook = NULL;
    printf("wrote %s (%s)\n", L.path, L.state);
    free(L.res);
    return rc;
}

/* ---- the self-check -------------------------------------------------------------------- */

/* Y = X W^T through calib_gemm (the benches' path) at the given byte
 * offsets of W, X and Y from 256-byte-aligned buffers, against float64. */
static int check_gemm(ctx *c, int m, int n, int k, int off_w, int off_x, int off_y,
                      const char *what)
{
    char *w, *x, *y;
    CUDA_OK(cudaMalloc(&w, (size_t)n * k * 2 + 256));
    CUDA_OK(cudaMalloc(&x, (size_t)m * k * 2 + 256));
    CUDA_OK(cudaMalloc(&y, (size_t)m * n * 2 + 256));
    calib_gemm_operands o = {w + off_w, x + off_x, y + off_y};
    CUDA_OK(k_fill_bf16((bf16 *)o.w, (size_t)n * k, 41, 1, c->stream));
    CUDA_OK(k_fill_bf16((bf16 *)o.x, (size_t)m * k, 42, 1, c->stream));
    calib_gemm g;
    char why[512];
    int bad = 0;
    if (calib_gemm_init(&g, &c->lt_lib, m, n, k, &o, 1, why, sizeof why) ||
        calib_gemm_run(&g, &o, why, sizeof why)) {
        printf("  %-44s %s  FAIL\n", what, why);
        bad = 1;
    } else {
        CUDA_OK(cudaStreamSynchronize(c->stream));
        bf16 *hw = (bf16 *)malloc((size_t)n * k * 2), *hx = (bf16 *)malloc((size_t)m * k * 2),
             *hy = (bf16 *)malloc((size_t)m * n * 2);
        CUDA_OK(cudaMemcpy(hw, o.w, (size_t)n * k * 2, cudaMemcpyDeviceToHost));
        CUDA_OK(cudaMemcpy(hx, o.x, (size_t)m * k * 2, cudaMemcpyDeviceToHost));
        CUDA_OK(cudaMemcpy(hy, o.y, (size_t)m * n * 2, cudaMemcpyDeviceToHost));
        double num = 0, den = 0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double want = 0;
                for (int l = 0; l < k; l++)
                    want += (double)__bfloat162float(hx[(size_t)i * k + l]) *
                            __bfloat162float(hw[(size_t)j * k + l]);
                double got = __bfloat162float(hy[(size_t)i * n + j]);
                num += (got - want) * (got - want);
                den += want * want;
            }
        double err = sqrt(num / den);
        bad = !(err < 2e-2);
        printf("  %-44s rel err %.2e  %s\n", what, err, bad ? "FAIL" : "ok");
        free(hw);
        free(hx);
        free(hy);
    }
    calib_gemm_fini(&g);
    cudaFree(w);
    cudaFree(x);
    cudaFree(y);
    return bad;
}

/* The MoE experts bench's own path (layout, routing, packed weights,
 * one GEMM pair per expert on its slices) at a TP8 Qwen3-30B-A3B-like
 * width (ffn 96: slices at 64- and 128-byte offsets), against float64. */
static int check_moe(ctx *c)
{
    const int64_t p[CTAB_MAX_PARAMS] = {8, 2, 0, 96, 256, 0};
    const int64_t m = 5;
    calib_moe_layout L;
    calib_moe_layout_build(m, p, 3, &L);
    const int64_t f = L.ffn, H = L.hidden, P = L.pairs;
    bf16 *w, *a, *b, *cc, *d;
    CUDA_OK(cudaMalloc(&w, L.weight_elems * 2));
    CUDA_OK(cudaMalloc(&a, (size_t)P * H * 2));
    CUDA_OK(cudaMalloc(&b, (size_t)P * 2 * f * 2));
    CUDA_OK(cudaMalloc(&cc, (size_t)P * f * 2));
    CUDA_OK(cudaMalloc(&d, (size_t)P * H * 2));
    CUDA_OK(k_fill_bf16(w, L.weight_elems, 51, 1, c->stream));
    CUDA_OK(k_fill_bf16(a, (size_t)P * H, 52, 1, c->stream));
    CUDA_OK(k_fill_bf16(cc, (size_t)P * f, 53, 1, c->stream));
    char why[512] = "";
    int bad = 0, min_align = CALIB_ALIGN_MAX;
    for (int g = 0; g < L.n_groups && !bad; g++) {
        calib_gemm_operands up, down;
        calib_moe_operands(&L, g, w, a, b, cc, d, &up, &down);
        calib_gemm gu, gd;
        memset(&gu, 0, sizeof gu);
        memset(&gd, 0, sizeof gd);
        int64_t t = L.group[g].tokens;
        bad = calib_gemm_init(&gu, &c->lt_lib, t, 2 * f, H, &up, 1, why, sizeof why) ||
              calib_gemm_init(&gd, &c->lt_lib, t, H, f, &down, 1, why, sizeof why) ||
              calib_gemm_run(&gu, &up, why, sizeof why) ||
              calib_gemm_run(&gd, &down, why, sizeof why);
        min_align = std::min(min_align, (int)std::min(gu.align[CALIB_OP_C], gd.align[CALIB_OP_B]));
        calib_gemm_fini(&gu);
        calib_gemm_fini(&gd);
    }
    char what[96];
    snprintf(what, sizeof what, "moe experts (%d groups, slices aligned to %d B)", L.n_groups,
             min_align);
    if (bad) {
        printf("  %-44s %s  FAIL\n", what, why);
    } else {
        CUDA_OK(cudaStreamSynchronize(c->stream));
        size_t nw = L.weight_elems;
        bf16 *hw = (bf16 *)malloc(nw * 2), *ha = (bf16 *)malloc((size_t)P * H * 2),
             *hb = (bf16 *)malloc((size_t)P * 2 * f * 2), *hc = (bf16 *)malloc((size_t)P * f * 2),
             *hd = (bf16 *)malloc((size_t)P * H * 2);
        CUDA_OK(cudaMemcpy(hw, w, nw * 2, cudaMemcpyDeviceToHost));
        CUDA_OK(cudaMemcpy(ha, a, (size_t)P * H * 2, cudaMemcpyDeviceToHost));
        CUDA_OK(cudaMemcpy(hb, b, (size_t)P * 2 * f * 2, cudaMemcpyDeviceToHost));
        CUDA_OK(cudaMemcpy(hc, cc, (size_t)P * f * 2, cudaMemcpyDeviceToHost));
        CUDA_OK(cudaMemcpy(hd, d, (size_t)P * H * 2, cudaMemcpyDeviceToHost));
        double num = 0, den = 0;
        for (int g = 0; g < L.n_groups; g++) {
            const bf16 *wu = hw + (size_t)g * L.expert_elems, *wd = wu + (size_t)2 * f * H;
            for (int64_t r = L.group[g].row0; r < L.group[g].row0 + L.group[g].tokens; r++) {
                for (int64_t j = 0; j < 2 * f; j++) {   /* gate and up */
                    double want = 0;
                    for (int64_t l = 0; l < H; l++)
                        want += (double)__bfloat162float(ha[r * H + l]) *
                                __bfloat162float(wu[j * H + l]);
                    double got = __bfloat162float(hb[r * 2 * f + j]);
                    num += (got - want) * (got - want);
                    den += want * want;
                }
                for (int64_t j = 0; j < H; j++) {       /* down */
                    double want = 0;
                    for (int64_t l = 0; l < f; l++)
                        want += (double)__bfloat162float(hc[r * f + l]) *
                                __bfloat162float(wd[j * f + l]);
                    double got = __bfloat162float(hd[r * H + j]);
                    num += (got - want) * (got - want);
                    den += want * want;
                }
            }
        }
        double err = sqrt(num / den);
        bad = !(err < 2e-2);
        printf("  %-44s rel err %.2e  %s\n", what, err, bad ? "FAIL" : "ok");
        free(hw);
        free(ha);
        free(hb);
        free(hc);
        free(hd);
    }
    calib_moe_layout_fini(&L);
    cudaFree(w);
    cudaFree(a);
    cudaFree(b);
    cudaFree(cc);
    cudaFree(d);
    return bad;
}

static int self_check(ctx *c)
{
    printf("self-check against float64 host references:\n");
    int bad = k_self_check(c->prop.multiProcessorCount);
    bad += check_gemm(c, 5, 64, 256, 0, 0, 0, "gemm (cuBLASLt, Y = X W^T)");
    /* slices as the MoE benches make them at TP4 and TP8 */
    bad += check_gemm(c, 7, 96, 192, 0, 64, 128, "gemm, X at +64 B, Y at +128 B");
    bad += check_gemm(c, 3, 192, 96, 128, 192, 64, "gemm, W at +128 B, X +192 B, Y +64 B");
    bad += check_moe(c);
    printf(bad ? "self-check: %d FAILED\n" : "self-check: all passed\n", bad);
    return bad;
}

/* ---- main ---------------------------------------------------------------------------- */

typedef struct run_state {
    ctx *c;
    calib_runner *runner;
    calib_backend *be;
} run_state;

static int be_measure(void *self, const calib_plan *plan, int entry, int point, const double *x,
                      int want_power, calib_point_result *r, char *why, size_t why_n)
{
    (void)point;
    ctx *c = (ctx *)self;
    const calib_entry *e = &plan->entry[entry];
    c->arena_used = 0;
    bench b;
    int st = bench_setup(c, &b, e->family, e->p, x, plan->page_tokens, why, why_n);
    if (st != CALIB_POINT_OK)
        return st;
    st = measure(c, &b, NULL, want_power, r, why, why_n);
    bench_fini(&b);
    return st;
}

static double be_now(void *self)
{
    (void)self;
    return now_s();
}

static void be_state(void *self, calib_gpu_state *out)
{
    calib_nvml_state(((ctx *)self)->nvml, out);
}

static void runner_die_hook(void *arg)
{
    run_state *rs = (run_state *)arg;
    sim_err err;
    if (calib_runner_flush(rs->runner, rs->be, "failed", &err))
        fprintf(stderr, "servesim-calib: error: %s\n", err.msg);
}

static void alloc_copy_buffers(ctx *c, const calib_plan *plan, unsigned mask)
{
    if (!(mask & (1u << CTAB_COPY)))
        return;
    c->host_bytes = 0;
    for (int i = 0; i < plan->n_entries; i++)
        if (plan->entry[i].family == CTAB_COPY)
            for (int j = 0; j < plan->entry[i].n_points; j++)
                c->host_bytes = std::max(c->host_bytes, (size_t)plan->entry[i].axis[0].v[j]);
    CUDA_OK(cudaMallocHost(&c->host_pinned, c->host_bytes ? c->host_bytes : 1));
    c->host_pageable = malloc(c->host_bytes ? c->host_bytes : 1);
    if (!c->host_pageable)
        die("out of host memory for the copy buffers");
    memset(c->host_pageable, 1, c->host_bytes);
    memset(c->host_pinned, 1, c->host_bytes);
}

int main(int argc, char **argv)
{
    ctx c;
    memset(&c, 0, sizeof c);
    parse_options(argc, argv, &c.opt);
    c.t_start = now_s();
    g_status_path = c.opt.status;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    calib_plan plan;
    sim_err err;
    unsigned mask;
    if (calib_family_mask(c.opt.only, &mask, &err))
        die("--only: %s", err.msg);
    if (!c.opt.check && calib_plan_load(c.opt.plan, &plan, &err))
        die("%s", err.msg);
    if (c.opt.dry_run) {
        dry_run(&c.opt, &plan, mask);
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
    if (c.opt.check)
        return self_check(&c) ? 1 : 0;
    c.replays = c.opt.quick ? CALIB_REPLAYS_QUICK : CALIB_REPLAYS_FULL;
    c.graph_min_ns = c.opt.quick ? CALIB_GRAPH_MIN_NS_QUICK : CALIB_GRAPH_MIN_NS_FULL;
    calib_nvml_state(c.nvml, &info.before);
    energy_setup(&c, &info);
    c.window_s = calib_window_s(isfinite(c.counter_period_s) ? c.counter_period_s : 0,
                                c.opt.quick);
    info.idle_w = calib_idle_power(&c.io, c.method, c.opt.idle_s);

    snprintf(info.mode, sizeof info.mode, "%s", c.opt.quick ? "quick" : "full");
    snprintf(info.plan_name, sizeof info.plan_name, "%s", plan.name);
    time_t tnow = time(NULL);
    strftime(info.date, sizeof info.date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&tnow));
    info.replays = c.replays;
    info.warmup_replays = CALIB_WARMUP_REPLAYS;
    info.graph_min_ns = c.graph_min_ns;
    info.rotate_bytes = c.rotate_bytes;
    snprintf(info.moe_gemm, sizeof info.moe_gemm, "one cuBLASLt GEMM per active expert");
    snprintf(info.energy_method, sizeof info.energy_method, "%s",
             calib_power_method_name(c.method));
    info.counter_period_ms = c.counter_period_s * 1e3;   /* NAN (null) unless measured */
    info.window_ms = c.window_s * 1e3;
    measure_ceilings(&c, &info);
    printf("ceilings: GEMM %.0f TFLOP/s, device-to-device %.2f TB/s; idle %.1f W; "
           "energy counter period %.1f ms; power window %.0f ms\n",
           info.ceil_gemm_flops_per_s / 1e12, info.ceil_d2d_bytes_per_s / 1e12, info.idle_w,
           c.counter_period_s * 1e3, c.window_s * 1e3);
    fflush(stdout);

    if (c.opt.layer) {
        int rc = run_layers(&c, &plan, &info);
        calib_plan_fini(&plan);
        calib_nvml_close(c.nvml);
        return rc < 0 ? 1 : rc > 0 ? 3 : 0;
    }

    alloc_copy_buffers(&c, &plan, mask);
    char out[4096];
    if (c.opt.out)
        snprintf(out, sizeof out, "%s", c.opt.out);
    else
        snprintf(out, sizeof out, "calib/tables/%s.json", info.gpu_name);
    calib_runner_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.families = mask;
    ro.models = c.opt.models;
    ro.start_entry = c.opt.start_entry;
    ro.t_start_s = c.t_start;
    ro.time_limit_s = c.opt.time_limit_s;
    ro.flush_every_s = FLUSH_EVERY_S;
    ro.out = out;
    ro.status = c.opt.status;
    ro.stop = &g_stop;
    ro.log = stdout;
    calib_backend be = {&c, be_now, be_measure, be_state};
    calib_runner runner;
    calib_runner_init(&runner, &plan, &ro, &info);
    run_state rs = {&c, &runner, &be};
    g_die_hook = runner_die_hook;
    g_die_arg = &rs;
    int rc = calib_runner_run(&runner, &be, &err);
    if (rc < 0)
        fprintf(stderr, "servesim-calib: error: %s\n", err.msg);
    if (rc >= 0 && c.opt.idle_after_s > 0 && !g_stop) {
        info.idle_w_after = calib_idle_power(&c.io, c.method, c.opt.idle_after_s);
        if (calib_runner_flush(&runner, &be, NULL, &err)) {
            fprintf(stderr, "servesim-calib: error: %s\n", err.msg);
            rc = -1;
        }
    }
    g_die_hook = NULL;
    printf("wrote %s (%s, %d points, %d skipped, %.0f s)\n", out, runner.state,
           runner.points_measured, runner.points_skipped, now_s() - c.t_start);
    calib_runner_fini(&runner);
    calib_plan_fini(&plan);
    calib_nvml_close(c.nvml);
    /* 0 complete, 3 cut short (resume with --start), 1 failed */
    return rc < 0 ? 1 : rc > 0 ? 3 : 0;
}
