/* The fallback operator model (see fallback.h; formulas in models/README.md).
 *
 * Design. fb_op_ns is called for every operator of every simulated
 * iteration that no table prices, so it allocates nothing, loops over
 * nothing, and uses no pow(): the smooth maximum has a fixed sharpness of
 * 4 (two square roots). Constants come from fb_fitted (generated, with its
 * provenance, into fallback_fit.h by the importer's fit) or from the GPU
 * file's overrides. Only operator-level measurements feed the fit. Launch
 * and tail times are counted in SM clock cycles (synchronisation, prologue,
 * epilogue and the last wave's drain take cycles, not nanoseconds), so a
 * faster clock shortens them: this is what lets constants fitted on one GPU
 * carry to another.
 *
 * Invariants: every result is > 0 for an op with work and grows with its
 * FLOPs and bytes; it is never below the plain roofline at the achieved
 * efficiencies, max(flops / (peak * eff), bytes / (bw * eff)). */
#include "models/fallback.h"

#include <math.h>

#include "models/fallback_fit.h"

void fb_params_for_gpu(const gpu_spec *g, fb_params *out)
{
    *out = fb_fitted;
    if (g->overrides & GPU_OVR_GEMM_EFF)
        out->gemm_compute_eff = out->attn_compute_eff[0] = out->attn_compute_eff[1] =
            g->gemm_efficiency;
    if (g->overrides & GPU_OVR_BW_EFF) {
        out->gemm_memory_eff = out->ew_memory_eff = g->bw_efficiency;
        out->attn_memory_eff[0] = out->attn_memory_eff[1] = g->bw_efficiency;
    }
    if (g->overrides & GPU_OVR_FLOOR) {
        double cycles = g->kernel_floor_ns * 1e-9 * g->sm_clock_hz;
        out->gemm_t0_cycles = cycles;
        for (int i = 0; i < FB_EW_COUNT; i++)
            out->ew_t0_cycles[i] = cycles;
        out->attn_t0_cycles[0] = out->attn_t0_cycles[1] = cycles;
    }
}

static double peak_for(const gpu_spec *g, const op_desc *op)
{
    double peak = gpu_peak_flops(g, (llm_dtype)op->dtype);
    return peak > 0 ? peak : g->bf16_flops;
}

/* FLOPs as the tensor cores execute them: whole tiles, whole waves. */
static double gemm_exec_flops(const gpu_spec *g, const op_desc *op, double *kernels)
{
    double tiles, ideal_pad;
    *kernels = 1;
    if (op->m <= 0 || op->n <= 0 || op->flops <= 0)   /* no shape: no quantisation */
        return op->flops;
    if (op->kind == OP_MOE_EXPERTS && op->groups > 0 && op->k > 0) {
        /* Grouped: every active expert's rows padded to a row block; the
         * gate/up and down GEMMs as one of width 3f. */
        double pairs = op->flops / (6.0 * (double)op->k * (double)op->n);
        double rows = pairs / op->groups;
        double blocks = ceil(rows / FB_MOE_TILE_M);
        ideal_pad = blocks * FB_MOE_TILE_M / rows;
        tiles = op->groups * blocks * ceil(3.0 * (double)op->n / FB_TILE_N);
        *kernels = 2;
    } else {
        double mb = ceil((double)op->m / FB_TILE_M), nb = ceil((double)op->n / FB_TILE_N);
        ideal_pad = mb * nb * FB_TILE_M * FB_TILE_N / ((double)op->m * (double)op->n);
        tiles = mb * nb;
    }
    double waves = ceil(tiles / g->sm_count);
    double pad = ideal_pad * waves * g->sm_count / tiles;
    /* A grouped GEMM executes every expert's padded rows; a plain one that
     * pads this much is memory-bound anyway. */
    double cap = *kernels > 1 ? INFINITY : FB_MAX_PAD;
    return op->flops * (pad < cap ? (pad > 1 ? pad : 1) : cap);
}

static fb_ew ew_kind(op_kind k)
{
    switch (k) {
    case OP_EMBED:
        return FB_EW_EMBED;
    case OP_NORM:
        return FB_EW_NORM;
    case OP_ROPE:
        return FB_EW_ROPE;
    default:   /* act, sample */
        return FB_EW_ACT;
    }
}

static double link_bw(const gpu_spec *g)
{
    return g->nvlink_bw_bytes_per_s > 0 ? g->nvlink_bw_bytes_per_s : g->pcie_bw_bytes_per_s;
}

double fb_op_ns(const fb_params *p, const gpu_spec *g, const op_desc *op)
{
    const double bw = g->hbm_bw_bytes_per_s;
    const double ns_per_cycle = 1e9 / g->sm_clock_hz;
    switch (op_kind_class(op->kind)) {
    case OP_CLASS_COLLECTIVE: {
        double extra = op->ranks > 2 ? op->ranks - 2 : 0;
        double link = op->link_bytes_per_s > 0 ? op->link_bytes_per_s : link_bw(g);
        return g->collective_latency_ns + extra * g->collective_rank_ns +
               op->bytes / (link * g->link_efficiency) * 1e9;
    }
    case OP_CLASS_GEMM: {
        double kernels;
        double tc = gemm_exec_flops(g, op, &kernels) /
                    (peak_for(g, op) * p->gemm_compute_eff) * 1e9;
        double tm = op->bytes / (bw * p->gemm_memory_eff) * 1e9;
        return kernels * p->gemm_t0_cycles * ns_per_cycle + fb_smax(tc, tm);
    }
    case OP_CLASS_ATTENTION: {
        int i = op->kind == OP_ATTN_DECODE;
        double tc = op->flops / (peak_for(g, op) * p->attn_compute_eff[i]) * 1e9;
        /* FlashAttention reads the keys and values once per block of query
         * rows of a chunk */
        double kv_reads = 1;
        if (!i && op->m > 0 && op->n > 0)
            kv_reads = ceil((double)op->m / (double)op->n / FB_ATTN_TILE_Q);
        double tm = (op->bytes + (kv_reads - 1) * op->kv_bytes) / (bw * p->attn_memory_eff[i]) *
                    1e9;
        return p->attn_t0_cycles[i] * ns_per_cycle + fb_smax(tc, tm);
    }
    case OP_CLASS_ELEMENTWISE:
    default: {
        fb_ew k = ew_kind(op->kind);
        double elems = (double)op->m * (double)op->n;
        double tc = elems * p->ew_cycles[k] / (g->sm_count * g->sm_clock_hz) * 1e9;
        double tm = op->bytes / (bw * p->ew_memory_eff) * 1e9;
        return p->ew_t0_cycles[k] * ns_per_cycle + fb_smax(tc, tm);
    }
    }
}
