/* The operator kernels calib measures besides cuBLASLt's GEMMs, and their
 * host references for `servesim-calib --check`. CUDA C++; every launcher
 * enqueues on `stream` and returns the launch error (cudaSuccess if none).
 *
 * Layouts (bf16 unless said otherwise, row-major):
 *   activations  [rows][width]
 *   prefill Q, O [seqs][q_len][q_heads][head_dim]
 *   prefill K, V [seqs][prefix + q_len][kv_heads][head_dim]   (contiguous cache)
 *   decode Q, O  [batch][q_heads][head_dim]
 *   decode K, V  [pages][page_tokens][kv_heads][head_dim]     (paged cache)
 *   block table  [batch][max_pages] int32 page ids
 *   rope cache   [positions][head_dim] fp32 (cos for the first half, sin for the second)
 *   logits       [rows][vocab] fp32 (sampling), bf16 (router) */
#ifndef CALIB_KERNELS_H
#define CALIB_KERNELS_H

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

typedef __nv_bfloat16 bf16;

/* Random values never 0: magnitude in [0.1, 1) * scale, random sign. */
cudaError_t k_fill_bf16(bf16 *p, size_t n, uint64_t seed, float scale, cudaStream_t s);
cudaError_t k_fill_f32(float *p, size_t n, uint64_t seed, float scale, cudaStream_t s);
/* Integers uniform in [0, modulo). */
cudaError_t k_fill_int(int *p, size_t n, uint64_t seed, int modulo, cudaStream_t s);
/* The RoPE cos/sin cache for positions [0, n_pos). */
cudaError_t k_rope_cache(float *cache, int n_pos, int head_dim, cudaStream_t s);

/* residual += x; out = residual / rms(residual) * w (per row). */
cudaError_t k_rmsnorm(const bf16 *x, bf16 *residual, bf16 *out, const bf16 *w, int rows,
                      int hidden, cudaStream_t s);
/* Neox-style rotary embedding of q and k heads in place. */
cudaError_t k_rope(bf16 *qk, const int *pos, const float *cache, int rows, int heads,
                   int head_dim, cudaStream_t s);
/* out[r][i] = silu(gate_up[r][i]) * gate_up[r][width + i]. */
cudaError_t k_silu_mul(const bf16 *gate_up, bf16 *out, int rows, int width, cudaStream_t s);
/* out[r] = table[ids[r]]. */
cudaError_t k_embed(const int *ids, const bf16 *table, bf16 *out, int rows, int hidden,
                    cudaStream_t s);
/* Gumbel-max sampling: ids[r] = argmax_i logits[r][i] + gumbel(seed, r, i). */
cudaError_t k_sample(const float *logits, int *ids, int rows, int vocab, uint64_t seed,
                     cudaStream_t s);
/* Router: softmax over experts, the top k, their renormalised weights. */
cudaError_t k_topk(const bf16 *logits, int *ids, float *weights, int rows, int experts,
                   int k, cudaStream_t s);

/* Causal prefill attention over a cached prefix (flash style: tiles of 64
 * queries x 64 keys on tensor cores, online softmax). head_dim 128. With
 * splits > 1 (calib_attn_prefill_splits) the keys of each query tile are
 * split and the partials combined: partial_o holds seqs * q_len * q_heads
 * * splits * head_dim floats, partial_ml twice seqs * q_len * q_heads *
 * splits (unused, may be NULL, when splits == 1). */
cudaError_t k_attn_prefill(const bf16 *q, const bf16 *k, const bf16 *v, bf16 *o,
                           float *partial_o, float *partial_ml, int seqs, int q_len, int prefix,
                           int q_heads, int kv_heads, int head_dim, int splits, cudaStream_t s);

/* Decode attention over a paged KV cache, split along the context when
 * there are too few (sequence, kv head) pairs to fill the GPU
 * (calib_attn_decode_splits). partial_o holds batch * q_heads * splits *
 * head_dim floats, partial_ml twice batch * q_heads * splits. head_dim
 * 128; q_heads / kv_heads in {1,2,4,8} (16 would need 64 KiB of static
 * shared memory and spill registers). */
cudaError_t k_attn_decode(const bf16 *q, const bf16 *k_cache, const bf16 *v_cache,
                          const int *block_table, int max_pages, bf16 *o, float *partial_o,
                          float *partial_ml, int batch, int ctx, int q_heads, int kv_heads,
                          int head_dim, int page_tokens, int splits, cudaStream_t s);

/* Runs every kernel on small random inputs against a float64 host
 * reference; prints one line per kernel. Returns the number of failures. */
int k_self_check(int sm_count);

#endif
