/* Measured-table keys (see cost_key.h).
 *
 * Design. The family layouts are one static table indexed by ctab_family;
 * the JSON table format (calib/README.md) uses these names for its
 * families, params and axes, so a table and this file describe the same
 * thing. ctab_key_of_op is the single place that turns an operator into an
 * entry and a point: params come from the operator's shape and from the
 * model (head counts, experts), never from the batch, so for one run
 * (model, tp) every op kind always maps to the same entry.
 *
 * Axis scales: token-like axes are logarithmic (costs are close to power
 * laws in them); the cached prefix of prefill attention is linear, because
 * its cost is affine in the prefix and the grid starts at 0. */
#include "models/cost_key.h"

#include <math.h>
#include <string.h>

static const ctab_family_info families[CTAB_FAMILY_COUNT] = {
    [CTAB_GEMM] = {"gemm", 2, {"n", "k"}, 1, {"m"}, {CTAB_SCALE_LOG}},
    [CTAB_MOE_ROUTER] = {"moe_router", 3, {"experts", "hidden", "top_k"},
                         1, {"m"}, {CTAB_SCALE_LOG}},
    [CTAB_MOE_EXPERTS] = {"moe_experts", 6,
                          {"experts", "top_k", "shared", "ffn", "hidden", "skew_milli"},
                          1, {"m"}, {CTAB_SCALE_LOG}},
    [CTAB_ATTN_PREFILL] = {"attn_prefill", 4,
                           {"q_heads", "kv_heads", "head_dim", "kv_bytes"},
                           2, {"q", "prefix"}, {CTAB_SCALE_LOG, CTAB_SCALE_LIN}},
    [CTAB_ATTN_DECODE] = {"attn_decode", 4,
                          {"q_heads", "kv_heads", "head_dim", "kv_bytes"},
                          2, {"batch", "ctx"}, {CTAB_SCALE_LOG, CTAB_SCALE_LOG}},
    [CTAB_EMBED] = {"embed", 2, {"hidden", "rows"}, 1, {"m"}, {CTAB_SCALE_LOG}},
    [CTAB_NORM] = {"norm", 1, {"hidden"}, 1, {"m"}, {CTAB_SCALE_LOG}},
    [CTAB_ROPE] = {"rope", 3, {"q_heads", "kv_heads", "head_dim"},
                   1, {"m"}, {CTAB_SCALE_LOG}},
    [CTAB_ACT] = {"act", 1, {"width"}, 1, {"m"}, {CTAB_SCALE_LOG}},
    [CTAB_SAMPLE] = {"sample", 1, {"vocab"}, 1, {"m"}, {CTAB_SCALE_LOG}},
    [CTAB_COPY] = {"copy", 2, {"direction", "pinned"}, 1, {"bytes"}, {CTAB_SCALE_LOG}},
    [CTAB_ALLREDUCE] = {"allreduce", 1, {"ranks"}, 1, {"bytes"}, {CTAB_SCALE_LOG}},
};

const ctab_family_info *ctab_family_get(ctab_family f)
{
    SIM_ASSERT(f >= 0 && f < CTAB_FAMILY_COUNT);
    return &families[f];
}

int ctab_family_find(const char *name)
{
    for (int f = 0; f < CTAB_FAMILY_COUNT; f++)
        if (strcmp(families[f].name, name) == 0)
            return f;
    return -1;
}

int ctab_key_of_op(const llm_model *m, int tp, const op_desc *op, ctab_key *out)
{
    memset(out, 0, sizeof *out);
    const int64_t hq = m->heads / tp, hkv = (m->kv_heads + tp - 1) / tp;
    out->x[0] = (double)op->m;
    switch (op->kind) {
    case OP_GEMM_QKV:
    case OP_GEMM_ATTN_OUT:
    case OP_GEMM_FFN_UP:
    case OP_GEMM_FFN_DOWN:
    case OP_GEMM_LM_HEAD:
        out->family = CTAB_GEMM;
        out->p[0] = op->n;
        out->p[1] = op->k;
        return 0;
    case OP_MOE_ROUTER:
        out->family = CTAB_MOE_ROUTER;
        out->p[0] = op->n;
        out->p[1] = op->k;
        out->p[2] = m->experts_per_token;
        return 0;
    case OP_MOE_EXPERTS:
        if (op->ranks > 1)   /* whole experts on expert-parallel GPUs: not measured */
            return -1;
        out->family = CTAB_MOE_EXPERTS;
        out->p[0] = m->experts;
        out->p[1] = m->experts_per_token;
        out->p[2] = m->shared_experts;
        out->p[3] = op->n;
        out->p[4] = op->k;
        out->p[CTAB_SKEW_PARAM] = llround(m->moe_skew * 1000);
        return 0;
    case OP_ATTN_PREFILL:
    case OP_ATTN_DECODE:
        if (m->attention == LLM_ATTN_MLA)
            return -1;
        out->family = op->kind == OP_ATTN_PREFILL ? CTAB_ATTN_PREFILL : CTAB_ATTN_DECODE;
        out->p[0] = hq;
        out->p[1] = hkv;
        out->p[2] = m->head_dim;
        out->p[3] = llround(m->kv_bytes_per_elem);
        if (op->kind == OP_ATTN_PREFILL) {
            double chunks = op->n > 0 ? (double)op->n : 1.0;
            double q = (double)op->m / chunks, prefix = (double)op->k - q;
            out->x[0] = q;
            out->x[1] = prefix > 0 ? prefix : 0;
            out->x[2] = chunks;
        } else {
            out->x[0] = (double)op->m;   /* sequences */
            out->x[1] = (double)op->k;   /* KV tokens each, the new one included */
        }
        return 0;
    case OP_EMBED:
        out->family = CTAB_EMBED;
        out->p[0] = op->n;
        out->p[1] = (m->vocab + tp - 1) / tp;
        return 0;
    case OP_NORM:
        out->family = CTAB_NORM;
        out->p[0] = op->n;
        return 0;
    case OP_ROPE:
        out->family = CTAB_ROPE;
        out->p[0] = hq;
        out->p[1] = hkv;
        out->p[2] = m->head_dim;
        return 0;
    case OP_ACT:
        if (!m->gated_ffn)   /* one-tensor ReLU/GELU: not the SiLU-and-mul kernel */
            return -1;
        out->family = CTAB_ACT;
        out->p[0] = op->n;
        return 0;
    case OP_SAMPLE:
        out->family = CTAB_SAMPLE;
        out->p[0] = op->n;
        return 0;
    default:   /* collectives, and kinds added later until they are mapped */
        break;
    }
    return -1;
}

int ctab_key_of_collective(int tp, const op_desc *op, ctab_key *out)
{
    memset(out, 0, sizeof *out);
    if (op->kind != OP_ALLREDUCE)
        return -1;
    out->family = CTAB_ALLREDUCE;
    out->p[0] = op->ranks > 0 ? op->ranks : tp;
    out->x[0] = (double)op->m * (double)op->n * 2.0;
    return 0;
}

int ctab_key_same_entry(const ctab_key *a, const ctab_key *b)
{
    if (a->family != b->family)
        return 0;
    int n = families[a->family].n_params;
    for (int i = 0; i < n; i++)
        if (a->p[i] != b->p[i])
            return 0;
    return 1;
}
