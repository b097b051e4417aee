/* Operator decomposition of one forward pass (one serving iteration).
 *
 * Given a batch (prefill chunks with their already cached context, decode
 * tokens with their context lengths) and a tensor-parallel degree, lists the
 * operators one GPU runs: GEMMs (QKV, attention output, FFN or router plus
 * experts, LM head), prefill and decode attention, norms and activations,
 * the TP all-reduce, and sampling. Work is per GPU (already divided by tp).
 * Identical layers are one entry with `repeat` = number of layers, so the
 * cost of a decomposition does not grow with the layer count. */
#ifndef MODELS_OPS_H
#define MODELS_OPS_H

#include "models/model.h"

typedef enum op_kind {
    OP_EMBED,
    OP_NORM,          /* RMSNorm (pre-attention, pre-FFN, final) */
    OP_GEMM_QKV,
    OP_ROPE,
    OP_ATTN_PREFILL,
    OP_ATTN_DECODE,
    OP_GEMM_ATTN_OUT,
    OP_ALLREDUCE,
    OP_GEMM_FFN_UP,   /* gate and up projections, fused */
    OP_ACT,           /* SiLU and multiply */
    OP_GEMM_FFN_DOWN,
    OP_MOE_ROUTER,    /* router GEMM plus top-k */
    OP_MOE_EXPERTS,   /* grouped expert GEMMs (up+down) of the active experts */
    OP_GEMM_LM_HEAD,
    OP_SAMPLE,
    OP_GEMM_Q_UP,     /* MLA: q up-projection from the q latent */
    OP_GEMM_KV_UP,    /* MLA: k/v up-projection (prefill) or its absorbed form (decode) */
    OP_A2A_DISPATCH,  /* expert parallelism: tokens to their experts' GPUs */
    OP_A2A_COMBINE,   /* expert parallelism: expert outputs back */
    OP_PP_SEND,       /* pipeline: a micro-batch's activations to the next stage */
    OP_EXPERT_MOVE,   /* a placement's rebalance: expert weights copied between GPUs */
    OP_EXPERT_LOAD,   /* offloading: missed experts loaded from host memory over PCIe */
    OP_KIND_COUNT
} op_kind;

const char *op_kind_name(op_kind k);

typedef enum op_class { OP_CLASS_GEMM, OP_CLASS_ATTENTION, OP_CLASS_ELEMENTWISE,
                        OP_CLASS_COLLECTIVE } op_class;
op_class op_kind_class(op_kind k);

/* One operator as one GPU runs it, `repeat` times per iteration.
 * Shape keys, for measured tables: GEMMs m x n x k (m = tokens);
 * attention m = query tokens, n = sequences, k = mean KV context tokens;
 * elementwise and collectives m = tokens, n = width. */
typedef struct op_desc {
    op_kind kind;
    int32_t repeat;
    double flops;        /* per run */
    double bytes;        /* HBM bytes moved per run (collectives: link bytes) */
    int64_t m, n, k;
    /* The parts of `bytes` that are weights read and KV cache read or
     * written, per run (cost_result reports them; they cannot be recovered
     * from the shape keys for MoE experts and attention). */
    double weight_bytes;
    double kv_bytes;
    uint8_t dtype;       /* llm_dtype the tensor cores compute in (GEMMs, attention) */
    int32_t ranks;       /* collectives: GPUs taking part */
    double groups;       /* grouped GEMMs (MoE experts): active experts; else 0 */
    /* Collectives: the link's rate per GPU per direction; 0 means the GPU
     * file's NVLink (or PCIe without NVLink). */
    double link_bytes_per_s;
} op_desc;

/* One sequence's share of a batch. */
typedef struct batch_seq {
    int32_t q_tokens;    /* new tokens processed this iteration */
    int32_t ctx_tokens;  /* tokens already in the KV cache before them */
} batch_seq;

/* Expert-parallel load of one iteration (set by the serving core from its
 * routing sample and expert placement; see models/moe.h). The MoE layers
 * are cut into n_groups consecutive groups of layers, each with its own
 * routing; per group, the busiest GPU's (token, expert) pairs and distinct
 * experts (each the maximum over the EP GPUs: the layer waits for its
 * slowest GPU) and the all-to-all bytes of the busiest GPU. Quantities are
 * for `tokens` tokens; ops scale them to a stretch's tokens. */
#define MOE_GROUPS_MAX 4
typedef struct moe_group_load {
    int32_t layers;            /* MoE layers in this group */
    double tokens;             /* tokens routed (all data-parallel replicas) */
    double max_pairs;          /* routed (token, expert) pairs on the busiest GPU */
    double max_distinct;       /* expert slots with work on the busiest GPU */
    double dispatch_bytes;     /* busiest GPU: max(sent, received) */
    double combine_bytes;
} moe_group_load;

typedef struct moe_iter {
    int32_t n_groups;
    moe_group_load g[MOE_GROUPS_MAX];
    double move_bytes;         /* per GPU, expert weights a rebalance copies now */
} moe_iter;

/* Expert offloading (par.gpu_experts > 0): the bytes this iteration loads
 * from host memory per GPU (serve/offload.c): on demand (the layer waits),
 * and prefetched during the layer before, per MoE layer (the layer waits
 * only for what outlasts the previous layer's compute). */
#define OFFLOAD_LAYERS_MAX 256
typedef struct offload_iter {
    double demand_bytes;
    double prefetch_bytes[OFFLOAD_LAYERS_MAX];   /* by MoE layer */
    int32_t moe_layers;
    double pcie_bytes_per_s;                     /* per GPU */
} offload_iter;

/* An iteration's work. Decode tokens are summarised (one new token each). */
typedef struct batch_shape {
    const batch_seq *prefill;  /* prefill chunks */
    int32_t n_prefill;
    int32_t n_decode;
    int64_t decode_ctx_sum;    /* sum of the decodes' context tokens */
    int32_t n_sampled;         /* sequences emitting a token this iteration */
    /* Layers the prefill chunks pass through this iteration (layered
     * prefill runs a prompt through one group of layers per iteration);
     * 0 means all. Decode tokens always pass through every layer. */
    int32_t prefill_layers;
    /* Expert parallelism (par.ep > 1): the routed load; NULL prices the
     * expected load of uniform routing over a balanced placement. */
    const moe_iter *moe;
    /* Expert offloading: the loads; NULL: none. */
    const offload_iter *offload;
    /* Speculative decoding: logits the verification chunks need beyond one
     * per sequence (a chunk of 1 + d tokens samples at all of them). */
    int32_t spec_sampled;
} batch_shape;

/* Per-layer operators appear once per stretch of identical layers: up to
 * four stretches (the dense and the MoE layers of a dense-then-MoE stack,
 * each split where a layered prefill stops). */
#define OPS_MAX 128

typedef struct op_list {
    op_desc op[OPS_MAX];
    int n;
} op_list;

/* Fills `out` with the operators of one iteration on one GPU of a TP group. */
void ops_decompose(const llm_model *m, const par_layout *par, const batch_shape *b,
                   op_list *out);

#endif
