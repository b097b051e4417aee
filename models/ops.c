/* Operator decomposition of one iteration (see ops.h; the formulas are
 * written out in models/README.md).
 *
 * Design. ops_decompose runs once per simulated iteration, millions of times
 * a run, so it allocates nothing and never loops over layers: identical
 * layers are one entry whose `repeat` is their count. A model has at most
 * two kinds of layer (dense and MoE, in that order: DeepSeek-V3's 3 dense +
 * 58 MoE), and a layered prefill splits the stack once more, so the layers
 * are at most four stretches. The only loop is over the batch's prefill
 * chunks (attention FLOPs depend on each chunk's own length and context).
 * Ops with no work are left out (no prefill chunk -> no prefill attention
 * entry; no sampled sequence -> no LM head), and an empty batch yields an
 * empty list.
 *
 * Invariants of every entry: repeat >= 1; flops, bytes >= 0; weight_bytes
 * and kv_bytes are the parts of bytes that are weights and KV cache. All
 * quantities are per GPU of the TP group: heads, FFN width, experts' width
 * and vocabulary are divided by tp; KV heads are ceil(kv_heads / tp) (one
 * replica each when tp exceeds them); the MoE router, the norms and MLA's
 * down-projections are replicated.
 *
 * Byte counts: GEMM inputs are in the activation dtype, outputs and
 * elementwise tensors in 16 bits, linear weights in the weight dtype,
 * embeddings, LM head, routers and biases in 16 bits, the KV cache in the
 * KV dtype, sampling logits in fp32. A GEMM of m x k by k x n moves its
 * input, weight and output once.
 *
 * Architectures: LayerNorm reads a bias with its scale; a plain FFN has one
 * up-projection and an activation over one tensor; biases add their bytes
 * to the GEMM that owns them; learned positions add a row read and an add
 * to the embedding. MLA (DeepSeek-V2/V3 as vLLM runs it): the fused q/kv
 * down-projection (gemm_qkv, replicated), the latent norms, the q
 * up-projection (gemm_q_up), rotary on the small rope part, the kv
 * up-projection (gemm_kv_up) over every KV token of the prefill chunks
 * (keys and values are decompressed for prefill attention) and over the
 * decode tokens (the absorbed form: same weights, one row per token), then
 * attention: prefill as multi-head attention with head dim qk_nope +
 * qk_rope (values v_head_dim), decode in the latent space (one shared
 * kv_lora_rank + qk_rope_head_dim key per token, as MQA).
 *
 * MoE: T tokens each choosing top-k of E experts touch, on average, the
 * number of distinct experts given by llm_moe_distinct_experts (uniform
 * routing by default, Zipf-skewed when the run sets a skew); each distinct
 * expert's weights are read once per layer.
 *
 * Expert and data parallelism (par.ep = tp * dp > 1): attention and dense
 * FFNs run on each data-parallel replica for its share of the batch (the
 * busiest replica: 1 / dp of the work, counts rounded up); the routed
 * experts are whole on their GPUs, and each group of MoE layers (moe_iter)
 * costs its busiest GPU's (token, expert) pairs and distinct experts, plus
 * the all-to-all dispatch and combine of the busiest GPU; the TP all-reduce
 * follows attention only (the combine returns the experts' outputs). Without
 * a moe_iter the expected load of uniform routing over a balanced placement
 * is used. A rebalance's expert copies are one expert_move entry. */
#include "models/ops.h"

#include <math.h>
#include <string.h>

#define ACT_BYTES 2.0      /* 16-bit activations, GEMM outputs, elementwise tensors */
#define HALF_BYTES 2.0     /* embeddings, LM head, routers, norms, biases */
#define LOGIT_BYTES 4.0    /* fp32 logits for sampling */

static const char *const op_names[OP_KIND_COUNT] = {
    [OP_EMBED] = "embed",
    [OP_NORM] = "norm",
    [OP_GEMM_QKV] = "gemm_qkv",
    [OP_ROPE] = "rope",
    [OP_ATTN_PREFILL] = "attn_prefill",
    [OP_ATTN_DECODE] = "attn_decode",
    [OP_GEMM_ATTN_OUT] = "gemm_attn_out",
    [OP_ALLREDUCE] = "allreduce",
    [OP_GEMM_FFN_UP] = "gemm_ffn_up",
    [OP_ACT] = "act",
    [OP_GEMM_FFN_DOWN] = "gemm_ffn_down",
    [OP_MOE_ROUTER] = "moe_router",
    [OP_MOE_EXPERTS] = "moe_experts",
    [OP_GEMM_LM_HEAD] = "gemm_lm_head",
    [OP_SAMPLE] = "sample",
    [OP_GEMM_Q_UP] = "gemm_q_up",
    [OP_GEMM_KV_UP] = "gemm_kv_up",
    [OP_A2A_DISPATCH] = "a2a_dispatch",
    [OP_A2A_COMBINE] = "a2a_combine",
    [OP_PP_SEND] = "pp_send",
    [OP_EXPERT_MOVE] = "expert_move",
    [OP_EXPERT_LOAD] = "expert_load",
};

const char *op_kind_name(op_kind k)
{
    SIM_ASSERT(k >= 0 && k < OP_KIND_COUNT && op_names[k]);
    return op_names[k];
}

static const op_class op_classes[OP_KIND_COUNT] = {
    [OP_EMBED] = OP_CLASS_ELEMENTWISE,
    [OP_NORM] = OP_CLASS_ELEMENTWISE,
    [OP_GEMM_QKV] = OP_CLASS_GEMM,
    [OP_ROPE] = OP_CLASS_ELEMENTWISE,
    [OP_ATTN_PREFILL] = OP_CLASS_ATTENTION,
    [OP_ATTN_DECODE] = OP_CLASS_ATTENTION,
    [OP_GEMM_ATTN_OUT] = OP_CLASS_GEMM,
    [OP_ALLREDUCE] = OP_CLASS_COLLECTIVE,
    [OP_GEMM_FFN_UP] = OP_CLASS_GEMM,
    [OP_ACT] = OP_CLASS_ELEMENTWISE,
    [OP_GEMM_FFN_DOWN] = OP_CLASS_GEMM,
    [OP_MOE_ROUTER] = OP_CLASS_GEMM,
    [OP_MOE_EXPERTS] = OP_CLASS_GEMM,
    [OP_GEMM_LM_HEAD] = OP_CLASS_GEMM,
    [OP_SAMPLE] = OP_CLASS_ELEMENTWISE,
    [OP_GEMM_Q_UP] = OP_CLASS_GEMM,
    [OP_GEMM_KV_UP] = OP_CLASS_GEMM,
    [OP_A2A_DISPATCH] = OP_CLASS_COLLECTIVE,
    [OP_A2A_COMBINE] = OP_CLASS_COLLECTIVE,
    [OP_PP_SEND] = OP_CLASS_COLLECTIVE,
    [OP_EXPERT_MOVE] = OP_CLASS_COLLECTIVE,
    [OP_EXPERT_LOAD] = OP_CLASS_COLLECTIVE,
};

op_class op_kind_class(op_kind k)
{
    SIM_ASSERT(k >= 0 && k < OP_KIND_COUNT);
    return op_classes[k];
}

static op_desc *push(op_list *l, op_kind kind, int32_t repeat, int64_t m,
                     int64_t n, int64_t k)
{
    SIM_ASSERT(l->n < OPS_MAX && repeat >= 1);
    op_desc *op = &l->op[l->n++];
    *op = (op_desc){.kind = kind, .repeat = repeat, .m = m, .n = n, .k = k,
                    .dtype = LLM_BF16};
    return op;
}

/* What a GEMM's operands are stored in. */
typedef struct gemm_fmt {
    double weight_bytes;   /* per weight element */
    double in_bytes;       /* per input activation element */
    llm_dtype dtype;       /* what the tensor cores compute in */
    bool bias;             /* a bias vector of n (16-bit) */
} gemm_fmt;

/* A linear layer of the model: weights, inputs and compute in the run's
 * precision. */
static gemm_fmt linear_fmt(const llm_model *m, bool bias)
{
    return (gemm_fmt){.weight_bytes = m->bytes_per_param, .in_bytes = m->act_bytes,
                      .dtype = llm_gemm_dtype(m), .bias = bias};
}

/* Kept in 16 bits whatever the precision (LM head, router). */
static gemm_fmt half_fmt(const llm_model *m)
{
    llm_dtype a = m->prec.activations;
    return (gemm_fmt){.weight_bytes = HALF_BYTES, .in_bytes = ACT_BYTES,
                      .dtype = a == LLM_FP16 ? LLM_FP16 : LLM_BF16};
}

/* Attention computes in 16 bits (an 8-bit KV cache is dequantised). */
static llm_dtype attention_dtype(const llm_model *m)
{
    return m->prec.activations == LLM_FP16 ? LLM_FP16 : LLM_BF16;
}

/* A GEMM of (m x k) activations by a (k x n) weight. */
static op_desc *push_gemm(op_list *l, op_kind kind, int32_t repeat, double m, double n,
                          double k, gemm_fmt f)
{
    op_desc *op = push(l, kind, repeat, (int64_t)m, (int64_t)n, (int64_t)k);
    op->flops = 2.0 * m * n * k + (f.bias ? m * n : 0);
    op->weight_bytes = k * n * f.weight_bytes + (f.bias ? n * HALF_BYTES : 0);
    op->bytes = m * k * f.in_bytes + m * n * ACT_BYTES + op->weight_bytes;
    op->dtype = (uint8_t)f.dtype;
    return op;
}

/* An elementwise op over `elems` elements: reads `reads` and writes
 * `writes` tensors of that size, `flops_per_elem` each. */
static op_desc *push_elementwise(op_list *l, op_kind kind, int32_t repeat, int64_t m,
                                 int64_t n, double reads, double writes,
                                 double flops_per_elem)
{
    op_desc *op = push(l, kind, repeat, m, n, 0);
    double elems = (double)m * (double)n;
    op->flops = flops_per_elem * elems;
    op->bytes = (reads + writes) * elems * ACT_BYTES;
    return op;
}

/* A norm of width n over m rows with the residual add fused: x and the
 * residual read and written; RMSNorm has a scale, LayerNorm also a bias. */
static void push_norm(op_list *l, const llm_model *m, int32_t repeat, int64_t rows,
                      int64_t n)
{
    bool ln = m->norm == LLM_NORM_LAYER;
    op_desc *op = push_elementwise(l, OP_NORM, repeat, rows, n, 2, 2, ln ? 8 : 4);
    op->weight_bytes = (ln ? 2.0 : 1.0) * (double)n * HALF_BYTES;
    op->bytes += op->weight_bytes;
}

/* What the per-layer operators of one stretch of layers see. */
typedef struct layer_work {
    int32_t layers;         /* repeat */
    double tokens;          /* all tokens through these layers */
    /* prefill chunks (zero when the stretch carries no prefill) */
    double q_sum, causal_pairs, prefill_kv_tokens;
    int32_t n_prefill;
    /* decode tokens */
    int32_t n_decode;
    double decode_kv_tokens;
} layer_work;

/* Grouped-query attention (MHA and MQA included). */
static void push_gqa(op_list *out, const llm_model *m, int tp, const layer_work *w)
{
    const int32_t L = w->layers;
    const double T = w->tokens, H = m->hidden, D = m->head_dim;
    const double kvb = m->kv_bytes_per_elem;
    const double hq = m->heads / tp;
    const double hkv = (m->kv_heads + tp - 1) / tp;
    const int64_t Ti = (int64_t)T;

    push_gemm(out, OP_GEMM_QKV, L, T, (hq + 2 * hkv) * D, H,
              linear_fmt(m, m->bias != LLM_BIAS_NONE));
    /* Rotates q and k in place. */
    if (m->position == LLM_POS_ROPE)
        push_elementwise(out, OP_ROPE, L, Ti, (int64_t)((hq + hkv) * D), 1, 1, 3);

    /* Attention: 4 * head_dim FLOPs per (query, key) pair per query head
     * (QK^T and PV); bytes are Q read, O written, and the K and V of every
     * attended token (cached and new) read or written once. */
    op_desc *op;
    if (w->q_sum > 0) {
        op = push(out, OP_ATTN_PREFILL, L, (int64_t)w->q_sum, w->n_prefill,
                  (int64_t)(w->prefill_kv_tokens / w->n_prefill + 0.5));
        op->flops = 4.0 * hq * D * w->causal_pairs;
        op->kv_bytes = w->prefill_kv_tokens * 2 * hkv * D * kvb;
        op->bytes = 2 * w->q_sum * hq * D * ACT_BYTES + op->kv_bytes;
        op->dtype = (uint8_t)attention_dtype(m);
    }
    if (w->n_decode > 0) {
        op = push(out, OP_ATTN_DECODE, L, w->n_decode, w->n_decode,
                  (int64_t)(w->decode_kv_tokens / w->n_decode + 0.5));
        op->flops = 4.0 * hq * D * w->decode_kv_tokens;
        op->kv_bytes = w->decode_kv_tokens * 2 * hkv * D * kvb;
        op->bytes = 2.0 * w->n_decode * hq * D * ACT_BYTES + op->kv_bytes;
        op->dtype = (uint8_t)attention_dtype(m);
    }
    push_gemm(out, OP_GEMM_ATTN_OUT, L, T, H, hq * D,
              linear_fmt(m, m->bias == LLM_BIAS_ALL));
}

/* Multi-head latent attention (see the design note above). */
static void push_mla(op_list *out, const llm_model *m, int tp, const layer_work *w)
{
    const int32_t L = w->layers;
    const double T = w->tokens, H = m->hidden, D = m->head_dim;
    const double dr = m->qk_rope_head_dim, dv = m->v_head_dim;
    const double ql = m->q_lora_rank, kl = m->kv_lora_rank;
    const double kvb = m->kv_bytes_per_elem, hq = m->heads / tp;
    const int64_t Ti = (int64_t)T;

    /* Down-projections: the q latent (or q itself) and the kv latent with
     * the shared rope key, one fused replicated GEMM. */
    push_gemm(out, OP_GEMM_QKV, L, T, (ql ? ql : hq * (D + dr)) + kl + dr, H,
              linear_fmt(m, false));
    if (ql)
        push_norm(out, m, L, Ti, (int64_t)ql);
    push_norm(out, m, L, Ti, (int64_t)kl);
    if (ql)
        push_gemm(out, OP_GEMM_Q_UP, L, T, hq * (D + dr), ql, linear_fmt(m, false));
    push_elementwise(out, OP_ROPE, L, Ti, (int64_t)((hq + 1) * dr), 1, 1, 3);
    /* K and V decompressed for the prefill chunks' KV tokens; the decode
     * tokens' absorbed q and output projections use the same weights. */
    double up_rows = w->prefill_kv_tokens + w->n_decode;
    push_gemm(out, OP_GEMM_KV_UP, L, up_rows, hq * (D + dv), kl, linear_fmt(m, false));

    op_desc *op;
    if (w->q_sum > 0) {
        op = push(out, OP_ATTN_PREFILL, L, (int64_t)w->q_sum, w->n_prefill,
                  (int64_t)(w->prefill_kv_tokens / w->n_prefill + 0.5));
        op->flops = 2.0 * hq * (D + dr + dv) * w->causal_pairs;
        op->kv_bytes = w->prefill_kv_tokens * (kl + dr) * kvb;
        op->bytes = w->q_sum * hq * (D + dr + dv) * ACT_BYTES +
                    w->prefill_kv_tokens * hq * (D + dr + dv) * ACT_BYTES + op->kv_bytes;
        op->dtype = (uint8_t)attention_dtype(m);
    }
    if (w->n_decode > 0) {
        op = push(out, OP_ATTN_DECODE, L, w->n_decode, w->n_decode,
                  (int64_t)(w->decode_kv_tokens / w->n_decode + 0.5));
        op->flops = 2.0 * hq * (2 * kl + dr) * w->decode_kv_tokens;
        op->kv_bytes = w->decode_kv_tokens * (kl + dr) * kvb;
        op->bytes = w->n_decode * hq * (2 * kl + dr) * ACT_BYTES + op->kv_bytes;
        op->dtype = (uint8_t)attention_dtype(m);
    }
    push_gemm(out, OP_GEMM_ATTN_OUT, L, T, H, hq * dv, linear_fmt(m, false));
}

/* The FFN of a dense layer. */
static void push_dense_ffn(op_list *out, const llm_model *m, int tp, const layer_work *w)
{
    const int32_t L = w->layers;
    const double T = w->tokens, H = m->hidden, f = (double)m->ffn / tp;
    const bool bias = m->bias == LLM_BIAS_ALL, gated = m->gated_ffn;
    push_gemm(out, OP_GEMM_FFN_UP, L, T, (gated ? 2 : 1) * f, H, linear_fmt(m, bias));
    /* SiLU(gate) * up reads two tensors; ReLU or GELU one */
    push_elementwise(out, OP_ACT, L, (int64_t)T, (int64_t)f, gated ? 2 : 1, 1,
                     gated ? 5 : 2);
    push_gemm(out, OP_GEMM_FFN_DOWN, L, T, H, f, linear_fmt(m, bias));
}

/* The router and experts of an MoE layer. */
static void push_moe(op_list *out, const llm_model *m, int tp, const layer_work *w)
{
    const int32_t L = w->layers;
    const double T = w->tokens, H = m->hidden;
    const double k = m->experts_per_token;
    const double f = (double)m->expert_ffn / tp, S = m->shared_experts;
    push_gemm(out, OP_MOE_ROUTER, L, T, m->experts, H, half_fmt(m));
    /* Each distinct expert's weights are read once per layer, however many
     * tokens it serves: this is what makes a MoE iteration's cost depend on
     * how many tokens it batches. */
    double distinct = llm_moe_distinct_experts(m, T);
    double pairs = T * (k + S);   /* (token, expert) pairs, shared included */
    op_desc *op = push(out, OP_MOE_EXPERTS, L, (int64_t)T, (int64_t)f, (int64_t)H);
    op->flops = 2.0 * pairs * 3 * H * f;
    op->weight_bytes = (distinct + S) * 3 * H * f * m->bytes_per_param;
    /* Per pair: x in, gate/up out, the activated f back in, H out. */
    op->bytes = pairs * (H * m->act_bytes + 2 * f * ACT_BYTES + f * m->act_bytes +
                         H * ACT_BYTES) + op->weight_bytes;
    op->dtype = (uint8_t)llm_gemm_dtype(m);
    op->groups = distinct + S;
    push_elementwise(out, OP_ACT, L, (int64_t)pairs, (int64_t)f, 2, 1, 5);
}

/* Bytes per element of the dispatched activations: FP8 with one 4-byte
 * scale per 128 elements when the GEMMs compute in 8 bits, else 16 bits. */
static double dispatch_elem_bytes(const llm_model *m)
{
    return m->act_bytes < ACT_BYTES ? m->act_bytes + 4.0 / 128 : ACT_BYTES;
}

/* The expected load when no routing sample is given: T tokens routed
 * uniformly, experts placed evenly (one group of all MoE layers). */
static void expected_moe(const llm_model *m, const par_layout *par, double T, moe_iter *out)
{
    const double ep = par->ep, k = m->experts_per_token, H = m->hidden;
    const double remote = (ep - 1) / ep;
    double pairs = T * k / ep;
    *out = (moe_iter){.n_groups = 1};
    out->g[0] = (moe_group_load){
        .layers = m->layers - llm_dense_layers(m), .tokens = T, .max_pairs = pairs,
        .max_distinct = llm_moe_distinct_experts(m, T) / ep,
        .dispatch_bytes = pairs * remote * H * dispatch_elem_bytes(m),
        .combine_bytes = pairs * remote * H * ACT_BYTES};
}

/* Expert-parallel MoE layers [a, b) (counted from the first MoE layer) of a
 * stretch: per group of layers it overlaps, the busiest GPU's experts and
 * the all-to-alls, scaled from the group's tokens to the stretch's (w's
 * tokens are one data-parallel replica's, hence times dp). */
static void push_moe_ep(op_list *out, const llm_model *m, const par_layout *par,
                        const layer_work *w, const moe_iter *mi, int32_t a, int32_t b)
{
    const double H = m->hidden, f = m->expert_ffn, tp = par->tp;
    const double S = m->shared_experts, sf = f / tp;
    push_gemm(out, OP_MOE_ROUTER, b - a, w->tokens, m->experts, H, half_fmt(m));
    int32_t lo = 0;
    for (int i = 0; i < mi->n_groups; i++) {
        const moe_group_load *g = &mi->g[i];
        int32_t hi = lo + g->layers;
        int32_t n = (b < hi ? b : hi) - (a > lo ? a : lo);
        lo = hi;
        if (n <= 0 || g->tokens <= 0)
            continue;
        double frac = w->tokens * par->dp / g->tokens;
        if (frac > 1)
            frac = 1;
        double pairs = g->max_pairs * frac, shared = w->tokens * S;
        double distinct = g->max_distinct;
        if (pairs <= 0 && shared <= 0)
            continue;
        op_desc *op = push(out, OP_MOE_EXPERTS, n, (int64_t)ceil(pairs), (int64_t)f,
                           (int64_t)H);
        op->flops = 2.0 * 3 * H * (pairs * f + shared * sf);
        op->weight_bytes = (distinct * f + S * sf) * 3 * H * m->bytes_per_param;
        op->bytes = pairs * (H * m->act_bytes + 2 * f * ACT_BYTES + f * m->act_bytes +
                             H * ACT_BYTES) +
                    shared * (H * m->act_bytes + 2 * sf * ACT_BYTES + sf * m->act_bytes +
                              H * ACT_BYTES) + op->weight_bytes;
        op->dtype = (uint8_t)llm_gemm_dtype(m);
        op->groups = distinct + S;
        op->ranks = par->ep;   /* whole experts per GPU: not a table's MoE entry */
        push_elementwise(out, OP_ACT, n, (int64_t)ceil(pairs + shared / tp), (int64_t)f, 2,
                         1, 5);
        const op_kind a2a[2] = {OP_A2A_DISPATCH, OP_A2A_COMBINE};
        const double bytes[2] = {g->dispatch_bytes * frac, g->combine_bytes * frac};
        for (int j = 0; j < 2; j++) {
            op = push(out, a2a[j], n, (int64_t)ceil(g->tokens * frac), (int64_t)H, 0);
            op->bytes = bytes[j];
            op->ranks = par->ep;
            op->link_bytes_per_s = par->ep_link_bytes_per_s;
        }
    }
}

/* The operators of `w.layers` identical decoder layers, dense or MoE. */
static void push_layers(op_list *out, const llm_model *m, int tp, const layer_work *w,
                        bool moe)
{
    /* Two norms per layer, each with the residual add fused. */
    push_norm(out, m, 2 * w->layers, (int64_t)w->tokens, m->hidden);
    if (m->attention == LLM_ATTN_MLA)
        push_mla(out, m, tp, w);
    else
        push_gqa(out, m, tp, w);
    if (moe)
        push_moe(out, m, tp, w);
    else
        push_dense_ffn(out, m, tp, w);

    /* Ring all-reduce of the T x H 16-bit activations after attention and
     * after the FFN: each GPU sends 2 (tp - 1) / tp of the buffer. */
    if (tp > 1) {
        double buf = w->tokens * m->hidden * ACT_BYTES;
        op_desc *op = push(out, OP_ALLREDUCE, 2 * w->layers, (int64_t)w->tokens,
                           (int64_t)m->hidden, 0);
        op->bytes = 2.0 * (tp - 1) / tp * buf;
        op->flops = (double)(tp - 1) / tp * w->tokens * m->hidden;
        op->ranks = tp;
    }
}

/* Expert-parallel MoE layers [a, b): as push_layers, with the experts on
 * their GPUs and the all-reduce after attention only. */
static void push_ep_layers(op_list *out, const llm_model *m, const par_layout *par,
                           const layer_work *w, const moe_iter *mi, int32_t a, int32_t b)
{
    const int tp = par->tp;
    push_norm(out, m, 2 * w->layers, (int64_t)w->tokens, m->hidden);
    if (m->attention == LLM_ATTN_MLA)
        push_mla(out, m, tp, w);
    else
        push_gqa(out, m, tp, w);
    push_moe_ep(out, m, par, w, mi, a, b);
    if (tp > 1) {
        double buf = w->tokens * m->hidden * ACT_BYTES;
        op_desc *op = push(out, OP_ALLREDUCE, w->layers, (int64_t)w->tokens,
                           (int64_t)m->hidden, 0);
        op->bytes = 2.0 * (tp - 1) / tp * buf;
        op->flops = (double)(tp - 1) / tp * w->tokens * m->hidden;
        op->ranks = tp;
    }
}

/* Layers [first, first + w.layers): their dense part, then their MoE part
 * (expert-parallel when mi is given). */
static void push_stretch(op_list *out, const llm_model *m, const par_layout *par,
                         const layer_work *w, int32_t first, const moe_iter *mi)
{
    const int tp = par->tp;
    const int32_t nd = llm_dense_layers(m), end = first + w->layers;
    layer_work part = *w;
    if ((part.layers = (end < nd ? end : nd) - first) > 0)
        push_layers(out, m, tp, &part, false);
    int32_t from = first > nd ? first : nd;
    if ((part.layers = end - from) <= 0)
        return;
    if (mi)
        push_ep_layers(out, m, par, &part, mi, from - nd, end - nd);
    else
        push_layers(out, m, tp, &part, true);
}

/* One data-parallel replica's share of the batch's work: 1 / dp, counts
 * rounded up (the busiest replica). */
static void dp_share(layer_work *w, int dp)
{
    if (dp <= 1)
        return;
    w->q_sum /= dp;
    w->causal_pairs /= dp;
    w->prefill_kv_tokens /= dp;
    w->n_prefill = (w->n_prefill + dp - 1) / dp;
    w->n_decode = (w->n_decode + dp - 1) / dp;
    w->decode_kv_tokens /= dp;
    w->tokens = w->q_sum + w->n_decode;
}

void ops_decompose(const llm_model *m, const par_layout *par, const batch_shape *b,
                   op_list *out)
{
    const int tp = par->tp;
    SIM_ASSERT(tp >= 1 && m->heads % tp == 0);
    SIM_ASSERT(b->n_prefill >= 0 && b->n_decode >= 0 && b->decode_ctx_sum >= 0);
    SIM_ASSERT(b->n_sampled >= 0 && b->n_sampled <= b->n_prefill + b->n_decode);
    SIM_ASSERT(b->prefill_layers >= 0 && b->prefill_layers <= m->layers);
    out->n = 0;

    /* The prefill chunks' totals: query tokens, attended (query, key) pairs
     * under the causal mask, and KV tokens touched. */
    layer_work all = {.layers = m->layers, .n_prefill = b->n_prefill,
                      .n_decode = b->n_decode,
                      .decode_kv_tokens = (double)b->decode_ctx_sum + b->n_decode};
    for (int32_t i = 0; i < b->n_prefill; i++) {
        double q = b->prefill[i].q_tokens, c = b->prefill[i].ctx_tokens;
        SIM_ASSERT(q >= 0 && c >= 0);
        all.q_sum += q;
        all.causal_pairs += q * (c + (q + 1) / 2);
        all.prefill_kv_tokens += c + q;
    }
    all.tokens = all.q_sum + b->n_decode;
    if (all.tokens == 0)
        return;
    /* Expert parallelism: the routed load of all replicas' tokens. */
    moe_iter expected;
    const moe_iter *mi = NULL;
    if (par->ep > 1) {
        if (!(mi = b->moe)) {
            expected_moe(m, par, all.tokens, &expected);
            mi = &expected;
        }
        dp_share(&all, par->dp);
    }
    const double T = all.tokens, H = m->hidden;

    /* Vocabulary-parallel lookup: each GPU reads the rows in its shard
     * (about T / tp of them) and writes a full T x H, then all-reduces.
     * Learned positions: a replicated row per token, added in. */
    op_desc *op = push(out, OP_EMBED, 1, (int64_t)T, (int64_t)H, 0);
    op->weight_bytes = T * H * HALF_BYTES / tp;
    op->bytes = op->weight_bytes + T * H * ACT_BYTES;
    if (m->position == LLM_POS_LEARNED) {
        op->weight_bytes += T * H * HALF_BYTES;
        op->bytes += T * H * HALF_BYTES + 2 * T * H * ACT_BYTES;
        op->flops += T * H;
    }
    if (tp > 1) {
        op = push(out, OP_ALLREDUCE, 1, (int64_t)T, (int64_t)H, 0);
        op->bytes = 2.0 * (tp - 1) / tp * T * H * ACT_BYTES;
        op->flops = (double)(tp - 1) / tp * T * H;
        op->ranks = tp;
    }

    int32_t pl = b->prefill_layers;
    if (all.q_sum == 0 || pl == 0 || pl == m->layers) {
        push_stretch(out, m, par, &all, 0, mi);
    } else {
        /* Prefill through pl layers together with the decodes, then the
         * decodes alone through the rest. */
        layer_work with_prefill = all;
        with_prefill.layers = pl;
        push_stretch(out, m, par, &with_prefill, 0, mi);
        if (all.n_decode > 0) {
            layer_work decode_only = {.layers = m->layers - pl, .tokens = all.n_decode,
                                      .n_decode = all.n_decode,
                                      .decode_kv_tokens = all.decode_kv_tokens};
            push_stretch(out, m, par, &decode_only, pl, mi);
        }
    }
    if (mi && mi->move_bytes > 0) {
        op = push(out, OP_EXPERT_MOVE, 1, 0, 0, 0);
        op->bytes = mi->move_bytes;
        op->ranks = 2;
        op->link_bytes_per_s = par->ep_link_bytes_per_s;
    }

    /* Offloading: the on-demand loads, one blocking copy over PCIe (the
     * prefetched ones are priced by the cost model against the layers'
     * compute, cost.c). */
    if (b->offload && b->offload->demand_bytes > 0) {
        op = push(out, OP_EXPERT_LOAD, 1, 0, 0, 0);
        op->bytes = b->offload->demand_bytes;
        op->ranks = 2;
        op->link_bytes_per_s = b->offload->pcie_bytes_per_s;
    }

    /* The final norm. */
    push_norm(out, m, 1, (int64_t)T, (int64_t)H);

    /* Only sequences that emit a token need logits; each GPU computes its
     * vocabulary shard (gathering the shards is small and left out). */
    if (b->n_sampled > 0) {
        int64_t sampled = (int64_t)b->n_sampled + b->spec_sampled;   /* + verify logits */
        double ns = par->ep > 1 ? (double)((sampled + par->dp - 1) / par->dp) : (double)sampled;
        push_gemm(out, OP_GEMM_LM_HEAD, 1, ns, (m->vocab + tp - 1) / tp, H, half_fmt(m));
        op = push(out, OP_SAMPLE, 1, (int64_t)ns, m->vocab, 0);
        op->flops = 5.0 * ns * m->vocab;   /* softmax, top-p/k, draw */
        op->bytes = ns * m->vocab * LOGIT_BYTES;
    }
}
