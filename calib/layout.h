/* How the CUDA program lays out a bench on the host side: pointer
 * alignment, how many rotated copies of the weights it needs, how MoE
 * tokens are routed and the routed experts' weights packed, and how
 * attention kernels split their work across the SMs. Plain C, so that the
 * tests check the decisions the GPU run will make. */
#ifndef CALIB_LAYOUT_H
#define CALIB_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CALIB_ALIGN_MAX 256      /* what cuBLASLt assumes when told nothing */
#define CALIB_MAX_ROT 64

/* The largest power of two, at most CALIB_ALIGN_MAX, dividing the address. */
unsigned calib_align_of(const void *p);

/* Copies of bytes_each to rotate through so that consecutive runs read
 * different copies and together at least rotate_bytes (three L2 caches):
 * at least 2, at most CALIB_MAX_ROT. */
int calib_rotations(double rotate_bytes, double bytes_each);

/* ---- MoE experts -------------------------------------------------------------- */

/* Expert i's probability of being among one token's top_k, as the
 * simulator has it (llm_set_moe_skew in models/model.c): proportional to
 * (i + 1)^-skew, scaled to sum to top_k, water-filled so none exceeds 1. */
void calib_moe_inclusion(int experts, int top_k, double skew, double *q);

/* Tokens per expert for m tokens (count[0..experts-1]): every token takes
 * top_k distinct experts, expert i with probability q_i (systematic
 * sampling over a random order of the experts); of up to 64 draws the one
 * whose number of distinct experts is nearest the simulator's expectation
 * sum_i 1 - (1 - q_i)^m is kept. Deterministic in seed. */
void calib_moe_loads(int64_t m, int experts, int top_k, double skew, uint64_t seed,
                     int64_t *count);

typedef struct calib_moe_group {
    int expert;        /* routed expert id, or experts + s for shared expert s */
    int64_t tokens;    /* rows of its GEMMs */
    int64_t row0;      /* its first row in the activation buffers */
} calib_moe_group;

/* One MoE experts bench: the active experts in order, each with its
 * tokens. Weights of one rotation copy hold only these experts, packed
 * (gate and up [2 ffn x hidden], then down [hidden x ffn], per expert):
 * the run reads just them, so copies are counted from their bytes, not
 * from every expert's (with all experts counted, two copies of the few
 * routed at small batches fit in L2 and the time came out too low). */
typedef struct calib_moe_layout {
    int n_groups;
    calib_moe_group *group;
    int64_t pairs;            /* sum of tokens: rows of the activation buffers */
    int64_t ffn, hidden;
    size_t expert_elems;      /* 3 * ffn * hidden */
    size_t weight_elems;      /* n_groups * expert_elems: one rotation copy */
} calib_moe_layout;

/* p: the CTAB_MOE_EXPERTS params (experts, top_k, shared, ffn, hidden,
 * skew_milli); m tokens. */
void calib_moe_layout_build(int64_t m, const int64_t *p, uint64_t seed, calib_moe_layout *out);
void calib_moe_layout_fini(calib_moe_layout *l);

/* The operands of one GEMM Y[m x n] = X[m x k] W^T. */
typedef struct calib_gemm_operands {
    const void *w, *x;
    void *y;
} calib_gemm_operands;

/* Group g's two GEMMs, from one rotation copy of the weights (bf16) and
 * the bench's activation buffers (bf16, `pairs` rows each): a [pairs x
 * hidden] tokens in, b [pairs x 2 ffn] gate and up out, c [pairs x ffn]
 * activated (down in), d [pairs x hidden] down out. */
void calib_moe_operands(const calib_moe_layout *l, int g, const void *weights, const void *a,
                        void *b, const void *c, void *d, calib_gemm_operands *up,
                        calib_gemm_operands *down);

/* ---- attention splits ----------------------------------------------------------- */

/* Decode: splits along the context when (sequence, KV head) pairs are
 * fewer than the SMs, so that about two blocks run per SM; each split
 * keeps at least 256 keys; at most 64. */
int calib_attn_decode_splits(int batch, int kv_heads, int ctx, int sm_count);

/* Prefill over a cached prefix: 64-query tiles per (sequence, query head)
 * give seqs * q_heads * ceil(q / 64) blocks; when that is under the SMs
 * (few new tokens after a long prefix) the keys are split too, so that
 * about two blocks run per SM, each split holding at least
 * CALIB_PREFILL_MIN_TILES tiles of 64 keys; at most CALIB_PREFILL_MAX_SPLITS. */
#define CALIB_PREFILL_MIN_TILES 4
#define CALIB_PREFILL_MAX_SPLITS 64
int calib_attn_prefill_splits(int seqs, int q_len, int prefix, int q_heads, int sm_count);
/* Key tiles of 64 that split s of `splits` covers for the query tile of
 * queries [q0, q0 + 64): [*t0, *t1), possibly empty. Causal: the tile needs
 * keys up to prefix + min(q_len, q0 + 64). Inline, for host and device:
 * the prefill kernel calls this very function. */
#ifdef __CUDACC__
#define CALIB_HOST_DEVICE __host__ __device__
#else
#define CALIB_HOST_DEVICE
#endif
static inline CALIB_HOST_DEVICE void calib_attn_prefill_split_tiles(int q_len, int prefix,
                                                                   int q0, int splits, int s,
                                                                   int *t0, int *t1)
{
    int kv_end = prefix + (q_len < q0 + 64 ? q_len : q0 + 64);
    int n_tiles = (kv_end + 63) / 64;
    int per = (n_tiles + splits - 1) / splits;
    int a = s * per, b = a + per;
    *t0 = a < n_tiles ? a : n_tiles;
    *t1 = b < n_tiles ? b : n_tiles;
}

#ifdef __cplusplus
}
#endif

#endif
