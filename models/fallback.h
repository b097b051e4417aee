/* The fallback operator model: what an operator costs where no measured
 * table covers it (no table for the GPU, a family the table lacks, a
 * precision it was not measured in).
 *
 * It is a roofline made honest: the larger of compute and memory time
 * becomes a smooth maximum (the transition regime is slower than either
 * bound), GEMM compute is counted on whole output tiles and whole waves
 * of tiles over the SMs (tile and wave quantisation, which is what makes
 * small and mid-sized GEMMs slow), grouped MoE GEMMs pad every expert's
 * rows to a tile, prefill attention re-reads the KV cache once per block
 * of query rows, elementwise kernels are limited by HBM or by per-SM
 * issue rate, and every kernel pays a fixed launch-and-tail time (a number
 * of SM clock cycles).
 *
 * Its constants (fb_params) are fitted by `calib-tool import-vidur` on
 * operator-level measurements only (the imported tables in
 * calib/tables/vidur/), never on end-to-end serving results; the fitted
 * values are generated into models/fallback_fit.h with their provenance.
 * The GPU file gives the hardware numbers (peak rates per dtype, HBM
 * bandwidth, SM count and clock) and may override a few constants
 * (gemm_efficiency, bw_efficiency, kernel_floor_ns). */
#ifndef MODELS_FALLBACK_H
#define MODELS_FALLBACK_H

#include "models/ops.h"

/* Elementwise kernels with constants of their own (sample uses act's). */
typedef enum fb_ew { FB_EW_EMBED, FB_EW_NORM, FB_EW_ROPE, FB_EW_ACT, FB_EW_COUNT } fb_ew;

/* Tile sizes (not fitted): cuBLAS-class GEMMs on A100/H100 use 128 x 128
 * output tiles for large problems; fused MoE kernels (vLLM's fused_moe)
 * use row blocks of 64 at batch sizes that matter. */
#define FB_TILE_M 128
#define FB_TILE_N 128
#define FB_MOE_TILE_M 64
/* Query rows per block of FlashAttention-2's prefill kernel (it reads the
 * keys and values once per block). */
#define FB_ATTN_TILE_Q 128
/* Plain GEMM compute is never counted above this multiple of its ideal
 * FLOPs (tiny GEMMs are memory-bound anyway); grouped ones have no cap. */
#define FB_MAX_PAD 4.0

typedef struct fb_params {
    /* GEMMs: launch and tail (SM clock cycles), achieved fractions of peak
     * FLOP/s and of HBM bandwidth. */
    double gemm_t0_cycles, gemm_compute_eff, gemm_memory_eff;
    /* Elementwise: per kind launch and tail (cycles) and SM cycles per element
     * (summed over the SMs: elements * cycles / (sm_count * clock)), and one
     * achieved fraction of HBM bandwidth. */
    double ew_t0_cycles[FB_EW_COUNT], ew_cycles[FB_EW_COUNT], ew_memory_eff;
    /* Attention, [0] prefill and [1] decode: launch, compute and memory
     * fractions. */
    double attn_t0_cycles[2], attn_compute_eff[2], attn_memory_eff[2];
} fb_params;

/* The fitted constants (models/fallback_fit.h). */
extern const fb_params fb_fitted;
/* One line each on where the fitted constants come from. */
extern const char *const fb_fitted_provenance;

/* fb_fitted with the GPU file's overrides applied. */
void fb_params_for_gpu(const gpu_spec *g, fb_params *out);

/* One run of op on GPU g, in ns (collectives included: latency plus
 * link bytes over the achieved link bandwidth). */
double fb_op_ns(const fb_params *p, const gpu_spec *g, const op_desc *op);

/* The smooth maximum used for compute and memory time: (a^4 + b^4)^(1/4),
 * between max(a, b) and 1.19 max(a, b). */
static inline double fb_smax(double a, double b)
{
    double a2 = a * a, b2 = b * b;
    return __builtin_sqrt(__builtin_sqrt(a2 * a2 + b2 * b2));
}

#endif
