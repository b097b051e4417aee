/* Operator decomposition of one iteration (see ops.h; the formulas are
 * written out in models/README.md).
 *
 * Design. ops_decompose runs once per simulated iteration, millions of times
 * a run, so it allocates nothing and never loops over layers: every layer is
 * identical, so each per-layer operator is one entry whose `repeat` is the
 * layer count. Its only loop is over the batch's prefill chunks (attention
 * FLOPs depend on each chunk's own length and context). Ops with no work are
 * left out (no prefill chunk -> no prefill attention entry; no sampled
 * sequence -> no LM head), and an empty batch yields an empty list.
 *
 * Invariants of every entry: repeat >= 1; flops, bytes >= 0; weight_bytes
 * and kv_bytes are the parts of bytes that are weights and KV cache. All
 * quantities are per GPU of the TP group: heads, FFN width, experts' width
 * and vocabulary are divided by tp; KV heads are ceil(kv_heads / tp) (one
 * replica each when tp exceeds them); the MoE router and the norms are
 * replicated.
 *
 * Byte counts: activations are bf16 (2 bytes), weights bytes_per_param, KV
 * kv_bytes_per_elem, sampling logits fp32. A GEMM of m x k by k x n moves
 * its input, weight and output once: (m*k + m*n) * 2 + k*n * bytes_per_param.
 *
 * MoE: T tokens each choosing top-k of E experts touch, on average, the
 * number of distinct experts given by llm_moe_distinct_experts (uniform
 * routing by default, Zipf-skewed when the run sets a skew); each distinct
 * expert's weights are read once per layer. */
#include "models/ops.h"

#include <math.h>
#include <string.h>

#define ACT_BYTES 2.0      /* bf16 activations */
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
};

op_class op_kind_class(op_kind k)
{
    SIM_ASSERT(k >= 0 && k < OP_KIND_COUNT);
    return op_classes[k];
}

static op_desc *push(op_list *l, op_kind kind, int32_t repeat, int64_t m,
                     int64_t n, int64_t k)
{
    SIM_ASSERT(l->n < OPS_MAX);
    op_desc *op = &l->op[l->n++];
    *op = (op_desc){.kind = kind, .repeat = repeat, .m = m, .n = n, .k = k};
    return op;
}

/* A GEMM of (m x k) activations by a (k x n) weight. */
static void push_gemm(op_list *l, op_kind kind, int32_t repeat, double m,
                      double n, double k, double bytes_per_param)
{
    op_desc *op = push(l, kind, repeat, (int64_t)m, (int64_t)n, (int64_t)k);
    op->flops = 2.0 * m * n * k;
    op->weight_bytes = k * n * bytes_per_param;
    op->bytes = (m * k + m * n) * ACT_BYTES + op->weight_bytes;
}

/* An elementwise op over `elems` elements: reads `reads` and writes
 * `writes` tensors of that size, `flops_per_elem` each. */
static void push_elementwise(op_list *l, op_kind kind, int32_t repeat, int64_t m,
                             int64_t n, double reads, double writes,
                             double flops_per_elem)
{
    op_desc *op = push(l, kind, repeat, m, n, 0);
    double elems = (double)m * (double)n;
    op->flops = flops_per_elem * elems;
    op->bytes = (reads + writes) * elems * ACT_BYTES;
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

/* The operators of `w.layers` identical decoder layers. */
static void push_layers(op_list *out, const llm_model *m, int tp, const layer_work *w)
{
    const int32_t L = w->layers;
    const double T = w->tokens, H = m->hidden, D = m->head_dim;
    const double bpp = m->bytes_per_param, kvb = m->kv_bytes_per_elem;
    const double hq = m->heads / tp;
    const double hkv = (m->kv_heads + tp - 1) / tp;
    const int64_t Ti = (int64_t)T;

    /* Two RMSNorms per layer; the residual add is fused, so each reads x
     * and the residual and writes both. */
    push_elementwise(out, OP_NORM, 2 * L, Ti, (int64_t)H, 2, 2, 4);
    op_desc *op = &out->op[out->n - 1];
    op->weight_bytes = H * bpp;
    op->bytes += op->weight_bytes;

    push_gemm(out, OP_GEMM_QKV, L, T, (hq + 2 * hkv) * D, H, bpp);
    /* Rotates q and k in place. */
    push_elementwise(out, OP_ROPE, L, Ti, (int64_t)((hq + hkv) * D), 1, 1, 3);

    /* Attention: 4 * head_dim FLOPs per (query, key) pair per query head
     * (QK^T and PV); bytes are Q read, O written, and the K and V of every
     * attended token (cached and new) read or written once. */
    if (w->q_sum > 0) {
        op = push(out, OP_ATTN_PREFILL, L, (int64_t)w->q_sum, w->n_prefill,
                  (int64_t)(w->prefill_kv_tokens / w->n_prefill + 0.5));
        op->flops = 4.0 * hq * D * w->causal_pairs;
        op->kv_bytes = w->prefill_kv_tokens * 2 * hkv * D * kvb;
        op->bytes = 2 * w->q_sum * hq * D * ACT_BYTES + op->kv_bytes;
    }
    if (w->n_decode > 0) {
        op = push(out, OP_ATTN_DECODE, L, w->n_decode, w->n_decode,
                  (int64_t)(w->decode_kv_tokens / w->n_decode + 0.5));
        op->flops = 4.0 * hq * D * w->decode_kv_tokens;
        op->kv_bytes = w->decode_kv_tokens * 2 * hkv * D * kvb;
        op->bytes = 2.0 * w->n_decode * hq * D * ACT_BYTES + op->kv_bytes;
    }

    push_gemm(out, OP_GEMM_ATTN_OUT, L, T, H, hq * D, bpp);

    if (m->experts == 0) {
        const double f = (double)m->ffn / tp;
        push_gemm(out, OP_GEMM_FFN_UP, L, T, 2 * f, H, bpp);
        push_elementwise(out, OP_ACT, L, Ti, (int64_t)f, 2, 1, 5);
        push_gemm(out, OP_GEMM_FFN_DOWN, L, T, H, f, bpp);
    } else {
        const double k = m->experts_per_token;
        const double f = (double)m->expert_ffn / tp, S = m->shared_experts;
        push_gemm(out, OP_MOE_ROUTER, L, T, m->experts, H, bpp);
        /* Each distinct expert's weights are read once per layer, however
         * many tokens it serves: this is what makes a MoE iteration's cost
         * depend on how many tokens it batches. */
        double distinct = llm_moe_distinct_experts(m, T);
        double pairs = T * (k + S);   /* (token, expert) pairs, shared included */
        op = push(out, OP_MOE_EXPERTS, L, Ti, (int64_t)f, (int64_t)H);
        op->flops = 2.0 * pairs * 3 * H * f;
        op->weight_bytes = (distinct + S) * 3 * H * f * bpp;
        /* Per pair: x in, gate/up out, the activated f back in, H out. */
        op->bytes = pairs * (2 * H + 3 * f) * ACT_BYTES + op->weight_bytes;
        push_elementwise(out, OP_ACT, L, (int64_t)pairs, (int64_t)f, 2, 1, 5);
    }

    /* Ring all-reduce of the T x H bf16 activations after attention and
     * after the FFN: each GPU sends 2 (tp - 1) / tp of the buffer. */
    if (tp > 1) {
        double buf = T * H * ACT_BYTES;
        op = push(out, OP_ALLREDUCE, 2 * L, Ti, (int64_t)H, 0);
        op->bytes = 2.0 * (tp - 1) / tp * buf;
        op->flops = (double)(tp - 1) / tp * T * H;
    }
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
    const double T = all.tokens, H = m->hidden, bpp = m->bytes_per_param;

    /* Vocabulary-parallel lookup: each GPU reads the rows in its shard
     * (about T / tp of them) and writes a full T x H, then all-reduces. */
    op_desc *op = push(out, OP_EMBED, 1, (int64_t)T, (int64_t)H, 0);
    op->weight_bytes = T * H * bpp / tp;
    op->bytes = op->weight_bytes + T * H * ACT_BYTES;
    if (tp > 1) {
        op = push(out, OP_ALLREDUCE, 1, (int64_t)T, (int64_t)H, 0);
        op->bytes = 2.0 * (tp - 1) / tp * T * H * ACT_BYTES;
        op->flops = (double)(tp - 1) / tp * T * H;
    }

    int32_t pl = b->prefill_layers;
    if (all.q_sum == 0 || pl == 0 || pl == m->layers) {
        push_layers(out, m, tp, &all);
    } else {
        /* Prefill through pl layers together with the decodes, then the
         * decodes alone through the rest. */
        layer_work with_prefill = all;
        with_prefill.layers = pl;
        push_layers(out, m, tp, &with_prefill);
        if (b->n_decode > 0) {
            layer_work decode_only = {.layers = m->layers - pl, .tokens = b->n_decode,
                                      .n_decode = b->n_decode,
                                      .decode_kv_tokens = all.decode_kv_tokens};
            push_layers(out, m, tp, &decode_only);
        }
    }

    /* The final RMSNorm. */
    push_elementwise(out, OP_NORM, 1, (int64_t)T, (int64_t)H, 2, 2, 4);
    op = &out->op[out->n - 1];
    op->weight_bytes = H * bpp;
    op->bytes += op->weight_bytes;

    /* Only sequences that emit a token need logits; each GPU computes its
     * vocabulary shard (gathering the shards is small and left out). */
    if (b->n_sampled > 0) {
        double ns = b->n_sampled;
        push_gemm(out, OP_GEMM_LM_HEAD, 1, ns, (m->vocab + tp - 1) / tp, H, bpp);
        op = push(out, OP_SAMPLE, 1, b->n_sampled, m->vocab, 0);
        op->flops = 5.0 * ns * m->vocab;   /* softmax, top-p/k, draw */
        op->bytes = ns * m->vocab * LOGIT_BYTES;
    }
}
