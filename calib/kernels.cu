/* Operator kernels for calibration, and their self-check (see kernels.h).
 *
 * Design. These are the serving engine's non-GEMM kernels written plainly
 * enough to be read in one sitting, and fast enough that their time is
 * representative: 16-byte loads for the memory-bound elementwise kernels;
 * prefill attention on tensor cores (mma.sync m16n8k16, bf16 in, fp32
 * accumulate, FlashAttention-2 style online softmax with P kept in
 * registers), split along the keys when (query tile, head) blocks are too
 * few to fill the GPU (a short chunk after a long cached prefix: without
 * the split, 4 to 8 blocks ran on 132 SMs); decode attention on CUDA cores
 * over a paged cache, two keys per warp in flight per step, split along the
 * context (flash-decoding) when (sequence, KV head) pairs are too few.
 * Split counts come from calib/layout.c, so the tests check them on the
 * host, and the prefill kernel takes its key range from the same inline
 * function (calib_attn_prefill_split_tiles). Every kernel is checked
 * against a float64 host reference by k_self_check (`servesim-calib
 * --check`), which the GPU session runs first.
 *
 * Known limits (calib/README.md): no wgmma/TMA (the prefill kernel reaches
 * a fraction of FlashAttention-3's rate on Hopper), head_dim 128 only for
 * attention, a Gumbel-max sampler without top-p sorting. */
#include "calib/kernels.h"
#include "calib/layout.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ATT_D 128
#define ATT_BQ 64
#define ATT_BK 64
#define KS_STRIDE (ATT_D + 8)   /* bf16 per K row in shared memory (padding: no bank conflicts) */
#define VT_STRIDE (ATT_BK + 8)  /* bf16 per transposed V row */
#define DEC_STREAMS 8           /* key streams per decode block: 4 warps x 2 half-warps */

/* ---- random data ---------------------------------------------------------- */

__host__ __device__ static inline uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

__host__ __device__ static inline uint64_t hash2(uint64_t seed, uint64_t i)
{
    return mix64(seed ^ mix64(i));
}

__host__ __device__ static inline float rand_val(uint64_t seed, uint64_t i, float scale)
{
    uint64_t h = hash2(seed, i);
    float u = (float)(h >> 40) * (1.0f / 16777216.0f);
    float mag = (0.1f + 0.9f * u) * scale;
    return (h & 1) ? -mag : mag;
}

__host__ __device__ static inline float gumbel(uint64_t seed, int row, int i)
{
    uint64_t h = hash2(seed, ((uint64_t)(uint32_t)row << 32) | (uint32_t)i);
    float u = ((float)(h >> 40) + 0.5f) * (1.0f / 16777216.0f);   /* in (0, 1) */
    return -logf(-logf(u));
}

static unsigned grid_for(size_t n, unsigned threads)
{
    size_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 1 ? 1 : b > 8192 ? 8192 : b);
}

__global__ void fill_bf16_kernel(bf16 *p, size_t n, uint64_t seed, float scale)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += stride)
        p[i] = __float2bfloat16(rand_val(seed, i, scale));
}

__global__ void fill_f32_kernel(float *p, size_t n, uint64_t seed, float scale)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += stride)
        p[i] = rand_val(seed, i, scale);
}

__global__ void fill_int_kernel(int *p, size_t n, uint64_t seed, int modulo)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += stride)
        p[i] = (int)(hash2(seed, i) % (uint64_t)modulo);
}

__global__ void rope_cache_kernel(float *cache, int n_pos, int d)
{
    int half = d / 2;
    size_t n = (size_t)n_pos * half, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < n; idx += stride) {
        int pos = (int)(idx / half), i = (int)(idx % half);
        float inv_freq = powf(500000.0f, -2.0f * i / d);
        float s, c;
        sincosf(pos * inv_freq, &s, &c);
        cache[(size_t)pos * d + i] = c;
        cache[(size_t)pos * d + half + i] = s;
    }
}

cudaError_t k_fill_bf16(bf16 *p, size_t n, uint64_t seed, float scale, cudaStream_t s)
{
    fill_bf16_kernel<<<grid_for(n, 256), 256, 0, s>>>(p, n, seed, scale);
    return cudaGetLastError();
}

cudaError_t k_fill_f32(float *p, size_t n, uint64_t seed, float scale, cudaStream_t s)
{
    fill_f32_kernel<<<grid_for(n, 256), 256, 0, s>>>(p, n, seed, scale);
    return cudaGetLastError();
}

cudaError_t k_fill_int(int *p, size_t n, uint64_t seed, int modulo, cudaStream_t s)
{
    if (modulo < 1)
        return cudaErrorInvalidValue;
    fill_int_kernel<<<grid_for(n, 256), 256, 0, s>>>(p, n, seed, modulo);
    return cudaGetLastError();
}

cudaError_t k_rope_cache(float *cache, int n_pos, int head_dim, cudaStream_t s)
{
    rope_cache_kernel<<<grid_for((size_t)n_pos * head_dim / 2, 256), 256, 0, s>>>(
        cache, n_pos, head_dim);
    return cudaGetLastError();
}

/* ---- reductions ----------------------------------------------------------------- */

__device__ static inline float warp_sum(float v)
{
    for (int off = 16; off; off >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

__device__ static inline float warp_max(float v)
{
    for (int off = 16; off; off >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

/* Sum over the block (blockDim.x a multiple of 32, <= 1024). */
__device__ static float block_sum(float v)
{
    __shared__ float part[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0)
        part[warp] = v;
    __syncthreads();
    int nw = blockDim.x >> 5;
    v = lane < nw ? part[lane] : 0.0f;
    return warp_sum(v);
}

/* ---- elementwise ------------------------------------------------------------------ */

__global__ void rmsnorm_kernel(const bf16 *x, bf16 *res, bf16 *out, const bf16 *w, int hidden)
{
    size_t row = blockIdx.x;
    const uint4 *xv = (const uint4 *)(x + row * hidden);
    uint4 *rv = (uint4 *)(res + row * hidden);
    uint4 *ov = (uint4 *)(out + row * hidden);
    const uint4 *wv = (const uint4 *)w;
    int nv = hidden / 8;
    float ss = 0;
    for (int i = threadIdx.x; i < nv; i += blockDim.x) {
        uint4 a = xv[i], b = rv[i], c;
        const bf16 *pa = (const bf16 *)&a, *pb = (const bf16 *)&b;
        bf16 *pc = (bf16 *)&c;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            pc[j] = __float2bfloat16(__bfloat162float(pa[j]) + __bfloat162float(pb[j]));
            float r = __bfloat162float(pc[j]);
            ss += r * r;
        }
        rv[i] = c;
    }
    float inv = rsqrtf(block_sum(ss) / hidden + 1e-6f);
    for (int i = threadIdx.x; i < nv; i += blockDim.x) {
        uint4 c = rv[i], wt = wv[i], o;
        const bf16 *pc = (const bf16 *)&c, *pw = (const bf16 *)&wt;
        bf16 *po = (bf16 *)&o;
#pragma unroll
        for (int j = 0; j < 8; j++)
            po[j] = __float2bfloat16(__bfloat162float(pc[j]) * inv * __bfloat162float(pw[j]));
        ov[i] = o;
    }
}

cudaError_t k_rmsnorm(const bf16 *x, bf16 *residual, bf16 *out, const bf16 *w, int rows,
                      int hidden, cudaStream_t s)
{
    if (rows < 1 || hidden % 8)
        return cudaErrorInvalidValue;
    rmsnorm_kernel<<<rows, 256, 0, s>>>(x, residual, out, w, hidden);
    return cudaGetLastError();
}

__global__ void rope_kernel(bf16 *qk, const int *pos, const float *cache, int heads, int d)
{
    size_t row = blockIdx.x;
    int half = d / 2;
    const float *cs = cache + (size_t)pos[row] * d;
    bf16 *base = qk + row * heads * d;
    for (int idx = threadIdx.x; idx < heads * half; idx += blockDim.x) {
        int h = idx / half, i = idx % half;
        bf16 *p = base + (size_t)h * d;
        float x1 = __bfloat162float(p[i]), x2 = __bfloat162float(p[i + half]);
        float c = cs[i], sn = cs[half + i];
        p[i] = __float2bfloat16(x1 * c - x2 * sn);
        p[i + half] = __float2bfloat16(x2 * c + x1 * sn);
    }
}

cudaError_t k_rope(bf16 *qk, const int *pos, const float *cache, int rows, int heads,
                   int head_dim, cudaStream_t s)
{
    if (rows < 1 || head_dim % 2)
        return cudaErrorInvalidValue;
    rope_kernel<<<rows, 256, 0, s>>>(qk, pos, cache, heads, head_dim);
    return cudaGetLastError();
}

__global__ void silu_mul_kernel(const bf16 *gu, bf16 *out, int rows, int width)
{
    size_t wv = (size_t)width / 8, n = (size_t)rows * wv;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t v = blockIdx.x * (size_t)blockDim.x + threadIdx.x; v < n; v += stride) {
        size_t r = v / wv, c = (v % wv) * 8;
        uint4 g = *(const uint4 *)(gu + r * 2 * width + c);
        uint4 u = *(const uint4 *)(gu + r * 2 * width + width + c), o;
        const bf16 *pg = (const bf16 *)&g, *pu = (const bf16 *)&u;
        bf16 *po = (bf16 *)&o;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            float x = __bfloat162float(pg[j]);
            po[j] = __float2bfloat16(x / (1.0f + __expf(-x)) * __bfloat162float(pu[j]));
        }
        *(uint4 *)(out + r * width + c) = o;
    }
}

cudaError_t k_silu_mul(const bf16 *gate_up, bf16 *out, int rows, int width, cudaStream_t s)
{
    if (rows < 1 || width % 8)
        return cudaErrorInvalidValue;
    silu_mul_kernel<<<grid_for((size_t)rows * width / 8, 256), 256, 0, s>>>(gate_up, out, rows,
                                                                            width);
    return cudaGetLastError();
}

__global__ void embed_kernel(const int *ids, const bf16 *table, bf16 *out, int rows, int hidden)
{
    size_t hv = (size_t)hidden / 8, n = (size_t)rows * hv;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t v = blockIdx.x * (size_t)blockDim.x + threadIdx.x; v < n; v += stride) {
        size_t r = v / hv, c = v % hv;
        ((uint4 *)out)[v] = ((const uint4 *)(table + (size_t)ids[r] * hidden))[c];
    }
}

cudaError_t k_embed(const int *ids, const bf16 *table, bf16 *out, int rows, int hidden,
                    cudaStream_t s)
{
    if (rows < 1 || hidden % 8)
        return cudaErrorInvalidValue;
    embed_kernel<<<grid_for((size_t)rows * hidden / 8, 256), 256, 0, s>>>(ids, table, out,
                                                                          rows, hidden);
    return cudaGetLastError();
}

/* One block per row; ties go to the smaller index. */
__global__ void sample_kernel(const float *logits, int *ids, int vocab, uint64_t seed)
{
    __shared__ float best_v[32];
    __shared__ int best_i[32];
    int row = blockIdx.x;
    const float *l = logits + (size_t)row * vocab;
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        float v = l[i] + gumbel(seed, row, i);
        if (v > bv) {
            bv = v;
            bi = i;
        }
    }
    for (int off = 16; off; off >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, off);
        int oi = __shfl_xor_sync(0xffffffffu, bi, off);
        if (ov > bv || (ov == bv && oi < bi)) {
            bv = ov;
            bi = oi;
        }
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {
        best_v[warp] = bv;
        best_i[warp] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); w++)
            if (best_v[w] > bv || (best_v[w] == bv && best_i[w] < bi)) {
                bv = best_v[w];
                bi = best_i[w];
            }
        ids[row] = bi;
    }
}

cudaError_t k_sample(const float *logits, int *ids, int rows, int vocab, uint64_t seed,
                     cudaStream_t s)
{
    if (rows < 1 || vocab < 1)
        return cudaErrorInvalidValue;
    sample_kernel<<<rows, 512, 0, s>>>(logits, ids, vocab, seed);
    return cudaGetLastError();
}

/* One warp per token: softmax over up to 32 * PER experts, k rounds of a
 * warp argmax. */
template <int PER>
__global__ void topk_kernel(const bf16 *logits, int *ids, float *weights, int rows,
                            int experts, int k)
{
    int token = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5);
    int lane = threadIdx.x & 31;
    if (token >= rows)
        return;
    const bf16 *l = logits + (size_t)token * experts;
    float v[PER];
    float mx = -INFINITY;
#pragma unroll
    for (int p = 0; p < PER; p++) {
        int e = lane + 32 * p;
        v[p] = e < experts ? __bfloat162float(l[e]) : -INFINITY;
        mx = fmaxf(mx, v[p]);
    }
    mx = warp_max(mx);
    float sum = 0;
#pragma unroll
    for (int p = 0; p < PER; p++) {
        int e = lane + 32 * p;
        float ex = e < experts ? __expf(v[p] - mx) : 0.0f;
        sum += ex;
        v[p] = e < experts ? ex : -1.0f;   /* probabilities >= 0; -1 marks none */
    }
    sum = warp_sum(sum);
    float kept = 0;
    for (int j = 0; j < k; j++) {
        float bv = -2.0f;
        int bi = 0x7fffffff;
#pragma unroll
        for (int p = 0; p < PER; p++)
            if (v[p] > bv) {
                bv = v[p];
                bi = lane + 32 * p;
            }
        for (int off = 16; off; off >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, bv, off);
            int oi = __shfl_xor_sync(0xffffffffu, bi, off);
            if (ov > bv || (ov == bv && oi < bi)) {
                bv = ov;
                bi = oi;
            }
        }
#pragma unroll
        for (int p = 0; p < PER; p++)
            if (lane + 32 * p == bi)
                v[p] = -3.0f;   /* taken */
        kept += bv;
        if (lane == 0) {
            ids[(size_t)token * k + j] = bi;
            weights[(size_t)token * k + j] = bv;
        }
    }
    if (lane == 0)
        for (int j = 0; j < k; j++)
            weights[(size_t)token * k + j] /= kept;
}

cudaError_t k_topk(const bf16 *logits, int *ids, float *weights, int rows, int experts,
                   int k, cudaStream_t s)
{
    if (rows < 1 || k < 1 || k > experts || experts > 256)
        return cudaErrorInvalidValue;
    unsigned blocks = (unsigned)(((size_t)rows * 32 + 255) / 256);
    if (experts <= 32)
        topk_kernel<1><<<blocks, 256, 0, s>>>(logits, ids, weights, rows, experts, k);
    else if (experts <= 64)
        topk_kernel<2><<<blocks, 256, 0, s>>>(logits, ids, weights, rows, experts, k);
    else if (experts <= 128)
        topk_kernel<4><<<blocks, 256, 0, s>>>(logits, ids, weights, rows, experts, k);
    else
        topk_kernel<8><<<blocks, 256, 0, s>>>(logits, ids, weights, rows, experts, k);
    return cudaGetLastError();
}

/* ---- prefill attention ------------------------------------------------------------ */

__device__ static inline void mma16816(float *c, const uint32_t *a, uint32_t b0, uint32_t b1)
{
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ static inline uint32_t pack_bf16(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);   /* .x (low half) = lo */
    return *(uint32_t *)&v;
}

__device__ static inline uint32_t ld32(const bf16 *p)
{
    return *(const uint32_t *)p;
}

/* Block: 64 query rows of one (sequence, head), 4 warps of 16 rows each,
 * over the key tiles of one split (all of them when splits == 1).
 * Per key tile of 64: S = Q K^T on tensor cores, mask (causal, with the
 * prefix before the chunk), online softmax in registers, O += P V. With
 * splits > 1 the block writes its unnormalised O and its rows' running
 * max and sum (log2 units) for attn_prefill_combine. The m16n8k16
 * fragment layout: lane = 4g + t; A holds rows g and g+8, columns 2t, 2t+1
 * (+8); B holds k rows 2t, 2t+1 (+8) of column g; C holds rows g, g+8,
 * columns 2t, 2t+1. */
__global__ void __launch_bounds__(128)
attn_prefill_kernel(const bf16 *Q, const bf16 *K, const bf16 *V, bf16 *O, float *po,
                    float *pml, int q_len, int prefix, int hq, int hkv, int splits,
                    float scale_log2)
{
    __shared__ __align__(16) bf16 Ks[ATT_BK * KS_STRIDE];
    __shared__ __align__(16) bf16 Vt[ATT_D * VT_STRIDE];
    const int qb = blockIdx.x / splits, split = blockIdx.x % splits;
    const int head = blockIdx.y, seq = blockIdx.z;
    const int kvh = head / (hq / hkv);
    const int kv_len = prefix + q_len;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int r_lo = qb * ATT_BQ + warp * 16 + g, r_hi = r_lo + 8;
    const size_t qstride = (size_t)hq * ATT_D;
    const bf16 *qbase = Q + (size_t)seq * q_len * qstride + (size_t)head * ATT_D;

    uint32_t qa[ATT_D / 16][4];
#pragma unroll
    for (int kk = 0; kk < ATT_D / 16; kk++) {
        int c = kk * 16 + 2 * t;
        qa[kk][0] = r_lo < q_len ? ld32(qbase + r_lo * qstride + c) : 0u;
        qa[kk][1] = r_hi < q_len ? ld32(qbase + r_hi * qstride + c) : 0u;
        qa[kk][2] = r_lo < q_len ? ld32(qbase + r_lo * qstride + c + 8) : 0u;
        qa[kk][3] = r_hi < q_len ? ld32(qbase + r_hi * qstride + c + 8) : 0u;
    }
    float o[ATT_D / 8][4];
#pragma unroll
    for (int dn = 0; dn < ATT_D / 8; dn++)
        o[dn][0] = o[dn][1] = o[dn][2] = o[dn][3] = 0.0f;
    float m_lo = -INFINITY, m_hi = -INFINITY, l_lo = 0.0f, l_hi = 0.0f;
    const int qpos_lo = prefix + r_lo, qpos_hi = prefix + r_hi;

    int tile_begin, tile_end;
    calib_attn_prefill_split_tiles(q_len, prefix, qb * ATT_BQ, splits, split, &tile_begin,
                                   &tile_end);
    const size_t kvstride = (size_t)hkv * ATT_D;
    const bf16 *kbase = K + (size_t)seq * kv_len * kvstride + (size_t)kvh * ATT_D;
    const bf16 *vbase = V + (size_t)seq * kv_len * kvstride + (size_t)kvh * ATT_D;

    for (int tile = tile_begin; tile < tile_end; tile++) {
        const int k0 = tile * ATT_BK;
        __syncthreads();
        /* K rows as they are (consecutive threads: consecutive columns). */
        for (int i = tid; i < ATT_BK * (ATT_D / 8); i += 128) {
            int r = i / (ATT_D / 8), c = (i % (ATT_D / 8)) * 8;
            uint4 kv = make_uint4(0, 0, 0, 0);
            if (k0 + r < kv_len)
                kv = *(const uint4 *)(kbase + (size_t)(k0 + r) * kvstride + c);
            *(uint4 *)(Ks + r * KS_STRIDE + c) = kv;
        }
        /* V transposed (consecutive threads: consecutive keys, so the
         * scattered 2-byte stores fall in distinct banks). */
        for (int i = tid; i < ATT_BK * (ATT_D / 8); i += 128) {
            int r = i % ATT_BK, c = (i / ATT_BK) * 8;
            uint4 vv = make_uint4(0, 0, 0, 0);
            if (k0 + r < kv_len)
                vv = *(const uint4 *)(vbase + (size_t)(k0 + r) * kvstride + c);
            const bf16 *pv = (const bf16 *)&vv;
#pragma unroll
            for (int j = 0; j < 8; j++)
                Vt[(c + j) * VT_STRIDE + r] = pv[j];
        }
        __syncthreads();

        float s[ATT_BK / 8][4];
#pragma unroll
        for (int j = 0; j < ATT_BK / 8; j++) {
            s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < ATT_D / 16; kk++) {
                const bf16 *kr = Ks + (j * 8 + g) * KS_STRIDE + kk * 16 + 2 * t;
                mma16816(s[j], qa[kk], ld32(kr), ld32(kr + 8));
            }
        }
        float mx_lo = m_lo, mx_hi = m_hi;
#pragma unroll
        for (int j = 0; j < ATT_BK / 8; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int key = k0 + j * 8 + 2 * t + (e & 1);
                int qpos = e < 2 ? qpos_lo : qpos_hi;
                float v = s[j][e] * scale_log2;
                if (key > qpos || key >= kv_len)
                    v = -INFINITY;
                s[j][e] = v;
                if (e < 2)
                    mx_lo = fmaxf(mx_lo, v);
                else
                    mx_hi = fmaxf(mx_hi, v);
            }
        }
        mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, 1));
        mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, 2));
        mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, 1));
        mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, 2));
        float a_lo = m_lo == -INFINITY ? 0.0f : exp2f(m_lo - mx_lo);
        float a_hi = m_hi == -INFINITY ? 0.0f : exp2f(m_hi - mx_hi);
        m_lo = mx_lo;
        m_hi = mx_hi;
        l_lo *= a_lo;
        l_hi *= a_hi;
#pragma unroll
        for (int dn = 0; dn < ATT_D / 8; dn++) {
            o[dn][0] *= a_lo;
            o[dn][1] *= a_lo;
            o[dn][2] *= a_hi;
            o[dn][3] *= a_hi;
        }
        uint32_t pa[ATT_BK / 16][4];
#pragma unroll
        for (int j = 0; j < ATT_BK / 8; j++) {
            float p0 = s[j][0] == -INFINITY ? 0.0f : exp2f(s[j][0] - m_lo);
            float p1 = s[j][1] == -INFINITY ? 0.0f : exp2f(s[j][1] - m_lo);
            float p2 = s[j][2] == -INFINITY ? 0.0f : exp2f(s[j][2] - m_hi);
            float p3 = s[j][3] == -INFINITY ? 0.0f : exp2f(s[j][3] - m_hi);
            l_lo += p0 + p1;
            l_hi += p2 + p3;
            if ((j & 1) == 0) {
                pa[j >> 1][0] = pack_bf16(p0, p1);
                pa[j >> 1][1] = pack_bf16(p2, p3);
            } else {
                pa[j >> 1][2] = pack_bf16(p0, p1);
                pa[j >> 1][3] = pack_bf16(p2, p3);
            }
        }
#pragma unroll
        for (int dn = 0; dn < ATT_D / 8; dn++) {
#pragma unroll
            for (int kk = 0; kk < ATT_BK / 16; kk++) {
                const bf16 *vr = Vt + (dn * 8 + g) * VT_STRIDE + kk * 16 + 2 * t;
                mma16816(o[dn], pa[kk], ld32(vr), ld32(vr + 8));
            }
        }
    }
    l_lo += __shfl_xor_sync(0xffffffffu, l_lo, 1);
    l_lo += __shfl_xor_sync(0xffffffffu, l_lo, 2);
    l_hi += __shfl_xor_sync(0xffffffffu, l_hi, 1);
    l_hi += __shfl_xor_sync(0xffffffffu, l_hi, 2);
    if (splits > 1) {
        /* partial index of (seq, row, head, split) */
        const size_t pi_lo = (((size_t)seq * q_len + r_lo) * hq + head) * splits + split;
        const size_t pi_hi = (((size_t)seq * q_len + r_hi) * hq + head) * splits + split;
#pragma unroll
        for (int dn = 0; dn < ATT_D / 8; dn++) {
            int c = dn * 8 + 2 * t;
            if (r_lo < q_len)
                *(float2 *)(po + pi_lo * ATT_D + c) = make_float2(o[dn][0], o[dn][1]);
            if (r_hi < q_len)
                *(float2 *)(po + pi_hi * ATT_D + c) = make_float2(o[dn][2], o[dn][3]);
        }
        if (t == 0) {
            if (r_lo < q_len)
                *(float2 *)(pml + pi_lo * 2) = make_float2(m_lo, l_lo);
            if (r_hi < q_len)
                *(float2 *)(pml + pi_hi * 2) = make_float2(m_hi, l_hi);
        }
        return;
    }
    float inv_lo = l_lo > 0 ? 1.0f / l_lo : 0.0f, inv_hi = l_hi > 0 ? 1.0f / l_hi : 0.0f;
    bf16 *obase = O + (size_t)seq * q_len * qstride + (size_t)head * ATT_D;
#pragma unroll
    for (int dn = 0; dn < ATT_D / 8; dn++) {
        int c = dn * 8 + 2 * t;
        if (r_lo < q_len)
            *(uint32_t *)(obase + r_lo * qstride + c) =
                pack_bf16(o[dn][0] * inv_lo, o[dn][1] * inv_lo);
        if (r_hi < q_len)
            *(uint32_t *)(obase + r_hi * qstride + c) =
                pack_bf16(o[dn][2] * inv_hi, o[dn][3] * inv_hi);
    }
}

/* One block per (sequence, query row, head): O = sum_s A_s 2^(m_s - M) /
 * sum_s L_s 2^(m_s - M). A split whose key range was empty has m = -inf
 * and weighs nothing. */
__global__ void attn_prefill_combine(const float *po, const float *pml, bf16 *O, int splits)
{
    size_t rh = blockIdx.x;   /* (seq * q_len + row) * hq + head */
    int d = threadIdx.x;
    float M = -INFINITY;
    for (int s = 0; s < splits; s++)
        M = fmaxf(M, pml[(rh * splits + s) * 2]);
    float L = 0.0f, A = 0.0f;
    for (int s = 0; s < splits; s++) {
        float ms = pml[(rh * splits + s) * 2];
        float w = ms == -INFINITY ? 0.0f : exp2f(ms - M);
        L += pml[(rh * splits + s) * 2 + 1] * w;
        A += po[(rh * splits + s) * ATT_D + d] * w;
    }
    O[rh * ATT_D + d] = __float2bfloat16(L > 0 ? A / L : 0.0f);
}

cudaError_t k_attn_prefill(const bf16 *q, const bf16 *k, const bf16 *v, bf16 *o,
                           float *partial_o, float *partial_ml, int seqs, int q_len, int prefix,
                           int q_heads, int kv_heads, int head_dim, int splits, cudaStream_t s)
{
    if (head_dim != ATT_D || seqs < 1 || q_len < 1 || prefix < 0 || kv_heads < 1 ||
        q_heads % kv_heads || splits < 1 || splits > CALIB_PREFILL_MAX_SPLITS ||
        (splits > 1 && (!partial_o || !partial_ml)))
        return cudaErrorInvalidValue;
    unsigned q_tiles = (unsigned)((q_len + ATT_BQ - 1) / ATT_BQ);
    dim3 grid(q_tiles * (unsigned)splits, (unsigned)q_heads, (unsigned)seqs);
    float scale_log2 = 1.4426950408889634f / sqrtf((float)head_dim);
    attn_prefill_kernel<<<grid, 128, 0, s>>>(q, k, v, o, partial_o, partial_ml, q_len, prefix,
                                             q_heads, kv_heads, splits, scale_log2);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess || splits == 1)
        return e;
    attn_prefill_combine<<<(unsigned)((size_t)seqs * q_len * q_heads), ATT_D, 0, s>>>(
        partial_o, partial_ml, o, splits);
    return cudaGetLastError();
}

/* ---- decode attention ----------------------------------------------------------- */

/* Block: one (split, kv head, sequence); G query heads share the KV head.
 * 8 key streams (two per warp, 16 lanes of 8 dims each), each with its own
 * online softmax; the block merges them, then either writes the output or
 * (split > 1) a partial for attn_decode_combine. Scores are in log2 units
 * (q is pre-scaled by log2(e) / sqrt(d)). */
template <int G>
__global__ void __launch_bounds__(128)
attn_decode_kernel(const bf16 *Q, const bf16 *Kc, const bf16 *Vc, const int *bt, int max_pages,
                   bf16 *O, float *po, float *pml, int ctx, int hq, int hkv, int page,
                   int splits, float scale_log2)
{
    __shared__ float sm_m[DEC_STREAMS][G], sm_l[DEC_STREAMS][G];
    __shared__ float sm_acc[DEC_STREAMS][G][ATT_D];
    const int split = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int stream = warp * 2 + (lane >> 4), part = lane & 15;
    /* The two half-warps are independent streams whose key counts differ
     * when the split's length is odd (and the last pass may hold one key in
     * one half, two in the other), so they can diverge: every shuffle
     * names only its own half-warp. */
    const unsigned hm = 0xffffu << (lane & 16);
    const int per_split = (ctx + splits - 1) / splits;
    const int kbeg = split * per_split, kend = min(ctx, kbeg + per_split);

    float q[G][8];
#pragma unroll
    for (int h = 0; h < G; h++) {
        uint4 qv = *(const uint4 *)(Q + ((size_t)b * hq + kvh * G + h) * ATT_D + part * 8);
        const bf16 *pq = (const bf16 *)&qv;
#pragma unroll
        for (int i = 0; i < 8; i++)
            q[h][i] = __bfloat162float(pq[i]) * scale_log2;
    }
    float m[G], l[G], acc[G][8];
#pragma unroll
    for (int h = 0; h < G; h++) {
        m[h] = -INFINITY;
        l[h] = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; i++)
            acc[h][i] = 0.0f;
    }
    const int *btab = bt + (size_t)b * max_pages;
    for (int j0 = kbeg + stream; j0 < kend; j0 += 2 * DEC_STREAMS) {
        /* two keys in flight: j0 and j0 + DEC_STREAMS */
        uint4 kv[2], vv[2];
        int nk = j0 + DEC_STREAMS < kend ? 2 : 1;
#pragma unroll
        for (int u = 0; u < 2; u++) {
            if (u < nk) {
                int j = j0 + u * DEC_STREAMS;
                size_t base = (((size_t)btab[j / page] * page + j % page) * hkv + kvh) * ATT_D +
                              part * 8;
                kv[u] = *(const uint4 *)(Kc + base);
                vv[u] = *(const uint4 *)(Vc + base);
            }
        }
#pragma unroll
        for (int u = 0; u < 2; u++) {
            if (u >= nk)
                break;
            const bf16 *pk = (const bf16 *)&kv[u], *pv = (const bf16 *)&vv[u];
            float k8[8], v8[8];
#pragma unroll
            for (int i = 0; i < 8; i++) {
                k8[i] = __bfloat162float(pk[i]);
                v8[i] = __bfloat162float(pv[i]);
            }
#pragma unroll
            for (int h = 0; h < G; h++) {
                float sdot = 0.0f;
#pragma unroll
                for (int i = 0; i < 8; i++)
                    sdot += q[h][i] * k8[i];
                /* lanes 0-15 and 16-31 are separate streams: xor < 16 */
                sdot += __shfl_xor_sync(hm, sdot, 8);
                sdot += __shfl_xor_sync(hm, sdot, 4);
                sdot += __shfl_xor_sync(hm, sdot, 2);
                sdot += __shfl_xor_sync(hm, sdot, 1);
                float mn = fmaxf(m[h], sdot);
                float a = exp2f(m[h] - mn), p = exp2f(sdot - mn);
                l[h] = l[h] * a + p;
#pragma unroll
                for (int i = 0; i < 8; i++)
                    acc[h][i] = acc[h][i] * a + p * v8[i];
                m[h] = mn;
            }
        }
    }
#pragma unroll
    for (int h = 0; h < G; h++) {
        if (part == 0) {
            sm_m[stream][h] = m[h];
            sm_l[stream][h] = l[h];
        }
#pragma unroll
        for (int i = 0; i < 8; i++)
            sm_acc[stream][h][part * 8 + i] = acc[h][i];
    }
    __syncthreads();
    for (int idx = tid; idx < G * ATT_D; idx += 128) {
        int h = idx / ATT_D, d = idx % ATT_D;
        float M = -INFINITY;
        for (int st = 0; st < DEC_STREAMS; st++)
            M = fmaxf(M, sm_m[st][h]);
        float L = 0.0f, A = 0.0f;
        for (int st = 0; st < DEC_STREAMS; st++) {
            float w = sm_m[st][h] == -INFINITY ? 0.0f : exp2f(sm_m[st][h] - M);
            L += sm_l[st][h] * w;
            A += sm_acc[st][h][d] * w;
        }
        size_t bh = (size_t)b * hq + kvh * G + h;
        if (splits == 1) {
            O[bh * ATT_D + d] = __float2bfloat16(L > 0 ? A / L : 0.0f);
        } else {
            size_t pi = bh * splits + split;
            po[pi * ATT_D + d] = A;
            if (d == 0) {
                pml[pi * 2] = M;
                pml[pi * 2 + 1] = L;
            }
        }
    }
}

__global__ void attn_decode_combine(const float *po, const float *pml, bf16 *O, int splits)
{
    size_t bh = blockIdx.x;
    int d = threadIdx.x;
    float M = -INFINITY;
    for (int s = 0; s < splits; s++)
        M = fmaxf(M, pml[(bh * splits + s) * 2]);
    float L = 0.0f, A = 0.0f;
    for (int s = 0; s < splits; s++) {
        float ms = pml[(bh * splits + s) * 2];
        float w = ms == -INFINITY ? 0.0f : exp2f(ms - M);
        L += pml[(bh * splits + s) * 2 + 1] * w;
        A += po[(bh * splits + s) * ATT_D + d] * w;
    }
    O[bh * ATT_D + d] = __float2bfloat16(L > 0 ? A / L : 0.0f);
}

cudaError_t k_attn_decode(const bf16 *q, const bf16 *k_cache, const bf16 *v_cache,
                          const int *block_table, int max_pages, bf16 *o, float *partial_o,
                          float *partial_ml, int batch, int ctx, int q_heads, int kv_heads,
                          int head_dim, int page_tokens, int splits, cudaStream_t s)
{
    if (head_dim != ATT_D || batch < 1 || ctx < 1 || kv_heads < 1 || q_heads % kv_heads ||
        splits < 1 || page_tokens < 1)
        return cudaErrorInvalidValue;
    dim3 grid((unsigned)splits, (unsigned)kv_heads, (unsigned)batch);
    float sl2 = 1.4426950408889634f / sqrtf((float)head_dim);
    switch (q_heads / kv_heads) {
#define DEC(G_)                                                                              \
    case G_:                                                                                 \
        attn_decode_kernel<G_><<<grid, 128, 0, s>>>(q, k_cache, v_cache, block_table,       \
                                                    max_pages, o, partial_o, partial_ml, ctx, \
                                                    q_heads, kv_heads, page_tokens, splits,  \
                                                    sl2);                                    \
        break;
        DEC(1)
        DEC(2)
        DEC(4)
        DEC(8)
#undef DEC
    default:
        return cudaErrorInvalidValue;
    }
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess || splits == 1)
        return e;
    attn_decode_combine<<<(unsigned)(batch * q_heads), ATT_D, 0, s>>>(partial_o, partial_ml, o,
                                                                      splits);
    return cudaGetLastError();
}

/* ---- self-check --------------------------------------------------------------------- */

#define CK(call)                                                                   \
    do {                                                                           \
        cudaError_t e_ = (call);                                                   \
        if (e_ != cudaSuccess) {                                                   \
            fprintf(stderr, "check: %s: %s\n", #call, cudaGetErrorString(e_));    \
            return 1;                                                              \
        }                                                                          \
    } while (0)

static float h_bf(bf16 v)
{
    return __bfloat162float(v);
}

/* Copies n bf16 from the device into a float array (caller frees). */
static float *to_host_bf(const bf16 *d, size_t n)
{
    bf16 *tmp = (bf16 *)malloc(n * sizeof *tmp);
    float *out = (float *)malloc(n * sizeof *out);
    if (cudaMemcpy(tmp, d, n * sizeof *tmp, cudaMemcpyDeviceToHost) != cudaSuccess)
        memset(tmp, 0, n * sizeof *tmp);
    for (size_t i = 0; i < n; i++)
        out[i] = h_bf(tmp[i]);
    free(tmp);
    return out;
}

static double rel_err(const float *got, const double *want, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]))
            return INFINITY;
        num += (got[i] - want[i]) * (got[i] - want[i]);
        den += want[i] * want[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static int report(const char *what, double err, double tol)
{
    int bad = !(err <= tol);
    printf("  %-34s rel err %.2e  %s\n", what, err, bad ? "FAIL" : "ok");
    return bad;
}

static int check_elementwise(void)
{
    const int rows = 3, hidden = 4096, heads = 6, d = 128, width = 1024, n_pos = 64;
    size_t n = (size_t)rows * hidden;
    bf16 *x, *res, *out, *w, *qk, *gu, *act;
    float *cache;
    int *pos;
    CK(cudaMalloc(&x, n * 2));
    CK(cudaMalloc(&res, n * 2));
    CK(cudaMalloc(&out, n * 2));
    CK(cudaMalloc(&w, hidden * 2));
    CK(cudaMalloc(&qk, (size_t)rows * heads * d * 2));
    CK(cudaMalloc(&gu, (size_t)rows * 2 * width * 2));
    CK(cudaMalloc(&act, (size_t)rows * width * 2));
    CK(cudaMalloc(&cache, (size_t)n_pos * d * 4));
    CK(cudaMalloc(&pos, rows * 4));
    CK(k_fill_bf16(x, n, 1, 1, 0));
    CK(k_fill_bf16(res, n, 2, 1, 0));
    CK(k_fill_bf16(w, hidden, 3, 1, 0));
    CK(k_fill_bf16(qk, (size_t)rows * heads * d, 4, 1, 0));
    CK(k_fill_bf16(gu, (size_t)rows * 2 * width, 5, 2, 0));
    CK(k_fill_int(pos, rows, 6, n_pos, 0));
    CK(k_rope_cache(cache, n_pos, d, 0));
    float *hx = to_host_bf(x, n), *hr = to_host_bf(res, n), *hw = to_host_bf(w, hidden);
    float *hqk = to_host_bf(qk, (size_t)rows * heads * d);
    float *hgu = to_host_bf(gu, (size_t)rows * 2 * width);
    int hpos[3];
    CK(cudaMemcpy(hpos, pos, sizeof hpos, cudaMemcpyDeviceToHost));
    CK(k_rmsnorm(x, res, out, w, rows, hidden, 0));
    CK(k_rope(qk, pos, cache, rows, heads, d, 0));
    CK(k_silu_mul(gu, act, rows, width, 0));
    CK(cudaDeviceSynchronize());
    int bad = 0;
    double *want = (double *)malloc(n * sizeof *want);
    for (int r = 0; r < rows; r++) {
        double ss = 0;
        for (int i = 0; i < hidden; i++) {
            double v = (double)hx[r * hidden + i] + hr[r * hidden + i];
            ss += v * v;
        }
        double inv = 1 / sqrt(ss / hidden + 1e-6);
        for (int i = 0; i < hidden; i++)
            want[r * hidden + i] = ((double)hx[r * hidden + i] + hr[r * hidden + i]) * inv * hw[i];
    }
    float *got = to_host_bf(out, n);
    bad += report("rmsnorm (fused residual)", rel_err(got, want, n), 2e-2);
    free(got);
    for (int r = 0; r < rows; r++)
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < d / 2; i++) {
                double f = pow(500000.0, -2.0 * i / d), ang = hpos[r] * f;
                size_t b = ((size_t)r * heads + h) * d;
                double x1 = hqk[b + i], x2 = hqk[b + i + d / 2];
                want[b + i] = x1 * cos(ang) - x2 * sin(ang);
                want[b + i + d / 2] = x2 * cos(ang) + x1 * sin(ang);
            }
    got = to_host_bf(qk, (size_t)rows * heads * d);
    bad += report("rope", rel_err(got, want, (size_t)rows * heads * d), 2e-2);
    free(got);
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < width; i++) {
            double g = hgu[(size_t)r * 2 * width + i], u = hgu[(size_t)r * 2 * width + width + i];
            want[(size_t)r * width + i] = g / (1 + exp(-g)) * u;
        }
    got = to_host_bf(act, (size_t)rows * width);
    bad += report("silu_mul", rel_err(got, want, (size_t)rows * width), 2e-2);
    free(got);
    free(want);
    free(hx);
    free(hr);
    free(hw);
    free(hqk);
    free(hgu);
    cudaFree(x);
    cudaFree(res);
    cudaFree(out);
    cudaFree(w);
    cudaFree(qk);
    cudaFree(gu);
    cudaFree(act);
    cudaFree(cache);
    cudaFree(pos);
    return bad;
}

static int check_embed_sample(void)
{
    const int rows = 5, hidden = 256, vocab = 1000;
    bf16 *table, *out;
    float *logits;
    int *ids, *sids;
    CK(cudaMalloc(&table, (size_t)vocab * hidden * 2));
    CK(cudaMalloc(&out, (size_t)rows * hidden * 2));
    CK(cudaMalloc(&ids, rows * 4));
    CK(cudaMalloc(&logits, (size_t)rows * vocab * 4));
    CK(cudaMalloc(&sids, rows * 4));
    CK(k_fill_bf16(table, (size_t)vocab * hidden, 11, 1, 0));
    CK(k_fill_int(ids, rows, 12, vocab, 0));
    CK(k_fill_f32(logits, (size_t)rows * vocab, 13, 4, 0));
    CK(k_embed(ids, table, out, rows, hidden, 0));
    CK(k_sample(logits, sids, rows, vocab, 99, 0));
    CK(cudaDeviceSynchronize());
    int bad = 0, hids[5], hs[5];
    float *hl = (float *)malloc((size_t)rows * vocab * sizeof *hl);
    CK(cudaMemcpy(hids, ids, sizeof hids, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hs, sids, sizeof hs, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hl, logits, (size_t)rows * vocab * 4, cudaMemcpyDeviceToHost));
    float *ht_tab = to_host_bf(table, (size_t)vocab * hidden);
    float *hout = to_host_bf(out, (size_t)rows * hidden);
    double err = 0;
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < hidden; i++)
            err = fmax(err, fabs(hout[r * hidden + i] - ht_tab[(size_t)hids[r] * hidden + i]));
    bad += report("embed (max abs diff)", err, 0);
    int mismatch = 0;
    for (int r = 0; r < rows; r++) {
        int best = 0;
        float bv = -INFINITY;
        for (int i = 0; i < vocab; i++) {
            float v = hl[r * vocab + i] + gumbel(99, r, i);
            if (v > bv) {
                bv = v;
                best = i;
            }
        }
        mismatch += best != hs[r];
    }
    bad += report("sample (rows differing from host)", mismatch, 1);
    free(hl);
    free(ht_tab);
    free(hout);
    cudaFree(table);
    cudaFree(out);
    cudaFree(ids);
    cudaFree(logits);
    cudaFree(sids);
    return bad;
}

/* The router's top-k at `experts` experts (8, 64 and 128 in the plan use
 * one, two and four values per lane). */
static int check_topk(int experts, int k)
{
    const int rows = 5;
    bf16 *rl;
    float *wts;
    int *tids;
    CK(cudaMalloc(&rl, (size_t)rows * experts * 2));
    CK(cudaMalloc(&tids, (size_t)rows * k * 4));
    CK(cudaMalloc(&wts, (size_t)rows * k * 4));
    CK(k_fill_bf16(rl, (size_t)rows * experts, 14 + experts, 3, 0));
    CK(k_topk(rl, tids, wts, rows, experts, k, 0));
    CK(cudaDeviceSynchronize());
    int *ht = (int *)malloc((size_t)rows * k * sizeof *ht);
    float *hwt = (float *)malloc((size_t)rows * k * sizeof *hwt);
    CK(cudaMemcpy(ht, tids, (size_t)rows * k * 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hwt, wts, (size_t)rows * k * 4, cudaMemcpyDeviceToHost));
    float *hrl = to_host_bf(rl, (size_t)rows * experts);
    double *p = (double *)malloc(experts * sizeof *p);
    int *taken = (int *)malloc(experts * sizeof *taken), *want_ids = (int *)malloc(k * sizeof(int));
    double werr = 0;
    int id_bad = 0;
    for (int r = 0; r < rows; r++) {
        double mx = -INFINITY;
        for (int e = 0; e < experts; e++)
            mx = fmax(mx, hrl[r * experts + e]);
        for (int e = 0; e < experts; e++) {
            p[e] = exp(hrl[r * experts + e] - mx);
            taken[e] = 0;
        }
        double kept = 0;
        for (int j = 0; j < k; j++) {
            int b = -1;
            for (int e = 0; e < experts; e++)
                if (!taken[e] && (b < 0 || p[e] > p[b]))
                    b = e;
            taken[b] = 1;
            want_ids[j] = b;
            kept += p[b];
        }
        for (int j = 0; j < k; j++) {
            id_bad += want_ids[j] != ht[r * k + j];
            werr = fmax(werr, fabs(hwt[r * k + j] - p[want_ids[j]] / kept));
        }
    }
    char what[64];
    snprintf(what, sizeof what, "topk ids (%d experts, k %d; mismatches)", experts, k);
    int bad = report(what, id_bad, 0);
    snprintf(what, sizeof what, "topk weights (%d experts; max abs diff)", experts);
    bad += report(what, werr, 1e-3);
    free(ht);
    free(hwt);
    free(hrl);
    free(p);
    free(taken);
    free(want_ids);
    cudaFree(rl);
    cudaFree(tids);
    cudaFree(wts);
    return bad;
}

/* Prefill at one shape, with each split count of split_choices (0: the
 * count calib_attn_prefill_splits picks for sm_count SMs). */
static int check_prefill(int sm_count, int seqs, int q_len, int prefix, int hq, int hkv,
                         const int *split_choices, int n_choices)
{
    const int d = ATT_D, kv_len = prefix + q_len;
    size_t nq = (size_t)seqs * q_len * hq * d, nk = (size_t)seqs * kv_len * hkv * d;
    bf16 *q, *k, *v, *o;
    float *po, *pml;
    CK(cudaMalloc(&q, nq * 2));
    CK(cudaMalloc(&k, nk * 2));
    CK(cudaMalloc(&v, nk * 2));
    CK(cudaMalloc(&o, nq * 2));
    CK(cudaMalloc(&po, nq * CALIB_PREFILL_MAX_SPLITS * 4));
    CK(cudaMalloc(&pml, (nq / d) * CALIB_PREFILL_MAX_SPLITS * 2 * 4));
    CK(k_fill_bf16(q, nq, 21, 1, 0));
    CK(k_fill_bf16(k, nk, 22, 1, 0));
    CK(k_fill_bf16(v, nk, 23, 1, 0));
    CK(cudaDeviceSynchronize());
    float *hq_ = to_host_bf(q, nq), *hk = to_host_bf(k, nk), *hv = to_host_bf(v, nk);
    double *want = (double *)calloc(nq, sizeof *want), *p = (double *)malloc(kv_len * sizeof *p);
    for (int s = 0; s < seqs; s++)
        for (int h = 0; h < hq; h++)
            for (int i = 0; i < q_len; i++) {
                int kh = h / (hq / hkv), last = prefix + i;
                const float *qi = hq_ + (((size_t)s * q_len + i) * hq + h) * d;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= last; j++) {
                    const float *kj = hk + (((size_t)s * kv_len + j) * hkv + kh) * d;
                    double dot = 0;
                    for (int c = 0; c < d; c++)
                        dot += (double)qi[c] * kj[c];
                    p[j] = dot / sqrt((double)d);
                    mx = fmax(mx, p[j]);
                }
                for (int j = 0; j <= last; j++)
                    sum += p[j] = exp(p[j] - mx);
                double *oi = want + (((size_t)s * q_len + i) * hq + h) * d;
                for (int j = 0; j <= last; j++) {
                    const float *vj = hv + (((size_t)s * kv_len + j) * hkv + kh) * d;
                    for (int c = 0; c < d; c++)
                        oi[c] += p[j] / sum * vj[c];
                }
            }
    int bad = 0;
    for (int i = 0; i < n_choices; i++) {
        int sp = split_choices[i] ? split_choices[i]
                                  : calib_attn_prefill_splits(seqs, q_len, prefix, hq, sm_count);
        CK(cudaMemset(o, 0xff, nq * 2));   /* poison: NaN unless written */
        CK(k_attn_prefill(q, k, v, o, po, pml, seqs, q_len, prefix, hq, hkv, d, sp, 0));
        CK(cudaDeviceSynchronize());
        float *got = to_host_bf(o, nq);
        char what[80];
        snprintf(what, sizeof what, "attn_prefill (prefix %d, %d new, GQA %d, %d splits)",
                 prefix, q_len, hq / hkv, sp);
        bad += report(what, rel_err(got, want, nq), 2e-2);
        free(got);
    }
    free(hq_);
    free(hk);
    free(hv);
    free(want);
    free(p);
    cudaFree(q);
    cudaFree(k);
    cudaFree(v);
    cudaFree(o);
    cudaFree(po);
    cudaFree(pml);
    return bad;
}

/* Decode at context ctx with hq query heads on hkv KV heads, with each
 * split count of split_choices (0: the count calib_attn_decode_splits
 * picks). */
static int check_decode(int sm_count, int hq, int hkv, int ctx, const int *split_choices,
                        int n_choices)
{
    const int batch = 3, d = ATT_D, page = 16;
    const int max_pages = (ctx + page - 1) / page, pages = batch * max_pages;
    size_t nq = (size_t)batch * hq * d, nkv = (size_t)pages * page * hkv * d;
    bf16 *q, *kc, *vc, *o;
    int *bt;
    float *po, *pml;
    const int max_splits = 8;
    CK(cudaMalloc(&q, nq * 2));
    CK(cudaMalloc(&kc, nkv * 2));
    CK(cudaMalloc(&vc, nkv * 2));
    CK(cudaMalloc(&o, nq * 2));
    CK(cudaMalloc(&bt, (size_t)pages * 4));
    CK(cudaMalloc(&po, nq * max_splits * 4));
    CK(cudaMalloc(&pml, (size_t)batch * hq * max_splits * 2 * 4));
    CK(k_fill_bf16(q, nq, 31, 1, 0));
    CK(k_fill_bf16(kc, nkv, 32, 1, 0));
    CK(k_fill_bf16(vc, nkv, 33, 1, 0));
    int *hbt = (int *)malloc((size_t)pages * sizeof *hbt);
    for (int i = 0; i < pages; i++)   /* a permutation: pages scattered */
        hbt[i] = (int)(((uint64_t)i * 7919u + 13u) % (uint64_t)pages);
    CK(cudaMemcpy(bt, hbt, (size_t)pages * 4, cudaMemcpyHostToDevice));
    float *hq_ = to_host_bf(q, nq), *hk = to_host_bf(kc, nkv), *hv = to_host_bf(vc, nkv);
    double *want = (double *)calloc(nq, sizeof *want), *p = (double *)malloc(ctx * sizeof *p);
    for (int b = 0; b < batch; b++)
        for (int h = 0; h < hq; h++) {
            int kh = h / (hq / hkv);
            const float *qi = hq_ + ((size_t)b * hq + h) * d;
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < ctx; j++) {
                size_t base = (((size_t)hbt[b * max_pages + j / page] * page + j % page) * hkv + kh) * d;
                double dot = 0;
                for (int c = 0; c < d; c++)
                    dot += (double)qi[c] * hk[base + c];
                p[j] = dot / sqrt((double)d);
                mx = fmax(mx, p[j]);
            }
            for (int j = 0; j < ctx; j++)
                sum += p[j] = exp(p[j] - mx);
            for (int j = 0; j < ctx; j++) {
                size_t base = (((size_t)hbt[b * max_pages + j / page] * page + j % page) * hkv + kh) * d;
                for (int c = 0; c < d; c++)
                    want[((size_t)b * hq + h) * d + c] += p[j] / sum * hv[base + c];
            }
        }
    int bad = 0;
    for (int i = 0; i < n_choices; i++) {
        int sp = split_choices[i] ? split_choices[i]
                                  : calib_attn_decode_splits(batch, hkv, ctx, sm_count);
        sp = sp > max_splits ? max_splits : sp;
        CK(cudaMemset(o, 0xff, nq * 2));
        CK(k_attn_decode(q, kc, vc, bt, max_pages, o, po, pml, batch, ctx, hq, hkv, d, page, sp,
                         0));
        CK(cudaDeviceSynchronize());
        float *got = to_host_bf(o, nq);
        char what[80];
        snprintf(what, sizeof what, "attn_decode (paged, GQA %d, ctx %d, %d splits)", hq / hkv,
                 ctx, sp);
        bad += report(what, rel_err(got, want, nq), 2e-2);
        free(got);
    }
    free(hbt);
    free(hq_);
    free(hk);
    free(hv);
    free(want);
    free(p);
    cudaFree(q);
    cudaFree(kc);
    cudaFree(vc);
    cudaFree(o);
    cudaFree(bt);
    cudaFree(po);
    cudaFree(pml);
    return bad;
}

int k_self_check(int sm_count)
{
    int bad = check_elementwise();
    bad += check_embed_sample();
    /* the plan's routers: 8 (Mixtral), 64 and 128 (Qwen3-MoE) experts */
    bad += check_topk(8, 2);
    bad += check_topk(64, 4);
    bad += check_topk(128, 8);
    /* One pass over 70 new tokens after 37 cached (two query tiles, the
     * second partly empty), and the same split in 2 and 3 (the first query
     * tile has fewer key tiles than splits: empty splits must weigh
     * nothing). Then the case the split exists for: 5 new tokens after
     * 1000 cached, in one pass, 3 splits and the count picked for this GPU. */
    const int one_two_three[] = {1, 2, 3}, few_new[] = {1, 3, 0};
    bad += check_prefill(sm_count, 2, 70, 37, 4, 2, one_two_three, 3);
    bad += check_prefill(sm_count, 1, 5, 1000, 8, 1, few_new, 3);
    /* Even and odd split lengths: with an odd one the two half-warp streams
     * of a warp see different key counts. At 1001 (= 16 * 62 + 9), 333 and
     * 143 keys they differ in the last pass (two keys against one); at 501
     * (= 16 * 31 + 5, two splits) in the number of passes. Query heads per
     * KV head 4 at both, and 1 and 8 (the plan's other two) at 1001. */
    const int even[] = {1, 3, 0}, odd[] = {1, 2, 7, 0};
    bad += check_decode(sm_count, 8, 2, 1000, even, 3);
    bad += check_decode(sm_count, 8, 2, 1001, odd, 4);
    bad += check_decode(sm_count, 8, 8, 1001, odd, 4);
    bad += check_decode(sm_count, 8, 1, 1001, odd, 4);
    return bad;
}
