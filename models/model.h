/* LLM and GPU descriptions, loaded from the JSON files in models/llm/ and
 * models/gpu/ (one file per model or GPU, named <name>.json; users add their
 * own the same way, or name a file by its path). Numbers are the published
 * architecture and datasheet figures; see models/README.md for the schema. */
#ifndef MODELS_MODEL_H
#define MODELS_MODEL_H

#include <stdbool.h>
#include "sim/base.h"

/* A TP group is assumed to sit within one NVLink domain (one 8-GPU node):
 * the all-reduce is costed on NVLink bandwidth. */
#define LLM_TP_MAX 8

/* How an instance spreads a model over its GPUs. Every quantity "per GPU"
 * (weights, KV, operator work) is computed from this one struct.
 * GPUs per instance: tp * pp * dp (llm_check_layout checks the rest):
 *  - tp splits every layer (heads, FFN, vocabulary) within one NVLink node;
 *  - pp cuts the layers into stages; an iteration's batch is split into
 *    micro_batches that flow through the stages (GPipe: the pipeline fills
 *    and drains once per iteration, so one micro-batch shows the bubble);
 *  - dp replicates attention (data-parallel attention, DeepSeek/SGLang): each
 *    replica of tp GPUs holds its share of the sequences and their KV;
 *  - ep spreads the routed experts of the MoE layers over the tp * dp GPUs
 *    of a stage (ep is 1 or tp * dp), each GPU holding
 *    (experts + redundant_experts) / ep whole experts; tokens travel to
 *    them and back by all-to-all (dispatch, combine).
 * The link rates are where the collectives travel: 0 means the GPU file's
 * NVLink; the config sets a NIC's rate when the group spans nodes. */
typedef struct par_layout {
    int32_t tp;   /* tensor-parallel degree: GPUs that split every layer */
    int32_t pp;   /* pipeline stages */
    int32_t ep;   /* expert-parallel degree of the MoE layers */
    int32_t dp;   /* data-parallel attention replicas */
    int32_t micro_batches;       /* per iteration with pp > 1; 0 means pp */
    int32_t redundant_experts;   /* extra expert slots per MoE layer (EPLB) */
    double ep_link_bytes_per_s;  /* all-to-all, per GPU per direction; 0: NVLink */
    double pp_link_bytes_per_s;  /* stage-to-stage sends; 0: NVLink */
    /* Expert offloading: routed experts per MoE layer the GPUs cache, the
     * rest in host memory (0: all on the GPUs). Only without ep and pp. */
    int32_t gpu_experts;
} par_layout;

/* A pure tensor-parallel layout of degree t. */
#define PAR_TP(t) ((par_layout){.tp = (t), .pp = 1, .ep = 1, .dp = 1})

static inline int32_t par_gpus(const par_layout *p) { return p->tp * p->pp * p->dp; }
/* Micro-batches an iteration is cut into (1 without pipeline stages). */
static inline int32_t par_micro_batches(const par_layout *p)
{
    return p->pp <= 1 ? 1 : p->micro_batches > 0 ? p->micro_batches : p->pp;
}
/* Physical expert slots per MoE layer, and per GPU of the EP group. */
static inline int32_t par_expert_slots(const par_layout *p, int32_t experts)
{
    return experts + p->redundant_experts;
}

/* The most routed experts a model may have (DeepSeek-V3 has 256). */
#define LLM_MAX_EXPERTS 256

/* ---- precision ------------------------------------------------------------- */

/* Number formats of weights, activations and the KV cache. int4 is for
 * weights only (weight-only quantisation, GPTQ/AWQ style). */
typedef enum llm_dtype { LLM_BF16, LLM_FP16, LLM_FP8, LLM_INT8, LLM_INT4,
                         LLM_DTYPE_COUNT } llm_dtype;

const char *llm_dtype_name(llm_dtype d);
/* The dtype named s ("bf16", "fp16", "fp8", "int8", "int4"), or -1. */
int llm_dtype_find(const char *s);
/* Bytes one stored element takes: 2, 2, 1, 1, and for int4 0.5 plus its
 * share of one fp16 scale per group of 128 (0.515625). */
double llm_dtype_bytes(llm_dtype d);

/* The three dtypes of a deployment. Rules (llm_check_precision): KV is a
 * 16- or 8-bit float or int8 (not int4); activations are bf16, fp16, fp8
 * or int8; 8-bit activations need weights of the same 8-bit format (W8A8),
 * 16-bit activations take any weights (narrower ones are weight-only
 * quantisation, dequantised in the GEMM). */
typedef struct llm_precision {
    llm_dtype weights, activations, kv;
} llm_precision;

/* ---- architecture ---------------------------------------------------------- */

typedef enum llm_norm { LLM_NORM_RMS, LLM_NORM_LAYER } llm_norm;
typedef enum llm_act { LLM_ACT_SILU, LLM_ACT_GELU, LLM_ACT_RELU } llm_act;
/* Which linear layers carry a bias: none (Llama), q/k/v only (Qwen2),
 * every linear layer (OPT, GPT-2). */
typedef enum llm_bias { LLM_BIAS_NONE, LLM_BIAS_QKV, LLM_BIAS_ALL } llm_bias;
typedef enum llm_pos { LLM_POS_ROPE, LLM_POS_LEARNED, LLM_POS_NONE } llm_pos;
/* Attention: grouped-query (MHA when kv_heads = heads, MQA when 1), or
 * DeepSeek's multi-head latent attention (a compressed KV latent). */
typedef enum llm_attn { LLM_ATTN_GQA, LLM_ATTN_MLA } llm_attn;

typedef struct llm_model {
    char name[64];
    int32_t layers;
    int32_t hidden;
    int32_t heads;            /* attention (query) heads */
    int32_t kv_heads;
    int32_t head_dim;         /* MLA: the non-rotary q/k head dim (qk_nope_head_dim) */
    int32_t ffn;              /* dense FFN intermediate size (0 if all MoE) */
    int32_t vocab;
    int32_t max_context_tokens;
    bool tied_embeddings;
    /* Architecture variants (defaults: Llama's). */
    llm_norm norm;
    bool gated_ffn;           /* gate and up projections (SwiGLU) or one (ReLU/GELU MLP) */
    llm_act activation;
    llm_bias bias;
    llm_pos position;         /* learned: max_context_tokens + 2 rows (OPT's offset) */
    llm_attn attention;
    /* MLA only: latent ranks and head dims. q_lora_rank 0 = no q compression. */
    int32_t q_lora_rank;
    int32_t kv_lora_rank;
    int32_t qk_rope_head_dim;
    int32_t v_head_dim;
    /* Mixture of experts; experts == 0 means dense. */
    int32_t experts;
    int32_t experts_per_token;
    int32_t expert_ffn;
    int32_t shared_experts;   /* each of size expert_ffn */
    int32_t dense_layers;     /* MoE models: leading dense layers (FFN size ffn) */
    /* Precision; the file's defaults, replaced by a run's "precision". */
    llm_precision prec;
    /* Derived from prec (llm_set_precision): bytes per element of linear
     * weights, of the KV cache, and of GEMM inputs (activations). */
    double bytes_per_param;
    double kv_bytes_per_elem;
    double act_bytes;
    /* Routing skew, set by llm_set_moe_skew (not read from the model file):
     * Zipf exponent of expert popularity, 0 = uniform; and, per expert, the
     * log of the probability that one token does not choose it. */
    double moe_skew;
    double moe_log_miss[LLM_MAX_EXPERTS];
} llm_model;

/* Layers with a dense FFN: all of a dense model, dense_layers of an MoE one. */
static inline int32_t llm_dense_layers(const llm_model *m)
{
    return m->experts ? m->dense_layers : m->layers;
}

typedef struct gpu_spec {
    char name[64];
    /* Dense tensor-core peaks per number format, per second; 0 = the GPU
     * has no such tensor-core rate (A100: no fp8). */
    double bf16_flops;
    double fp16_flops;
    double fp8_flops;
    double int8_ops;
    double hbm_bytes;
    double hbm_bw_bytes_per_s;
    double nvlink_bw_bytes_per_s;  /* per direction, per GPU */
    double pcie_bw_bytes_per_s;    /* per direction */
    int32_t sm_count;
    double sm_clock_hz;            /* boost clock */
    /* Power (W), each from a published measurement cited in `source`:
     * idle; the board limit (TDP); drawn by a compute-bound tensor-core
     * GEMM near its achieved peak; drawn by a kernel streaming HBM near
     * its achieved bandwidth; and the node's power outside the GPUs
     * (CPUs, memory, NICs, fans, conversion) per GPU it hosts. */
    double idle_w;
    double max_w;
    double compute_w;
    double memory_w;
    double node_w_per_gpu;
    /* Collectives over NVLink (or PCIe): fixed latency per all-reduce and
     * per extra rank, and the achieved fraction of link bandwidth. */
    double collective_latency_ns;
    double collective_rank_ns;
    double link_efficiency;
    /* The fallback model's GEMM efficiencies and launch time: the fitted
     * values (models/fallback_fit.h), or the file's own, which then
     * override the fitted constants of every operator class (`overrides`
     * says which the file set: GPU_OVR_* bits). */
    double gemm_efficiency;      /* achieved fraction of peak FLOP/s */
    double bw_efficiency;        /* achieved fraction of HBM bandwidth */
    double kernel_floor_ns;      /* launch and tail of one kernel */
    unsigned overrides;
} gpu_spec;

#define GPU_OVR_GEMM_EFF 1u
#define GPU_OVR_BW_EFF 2u
#define GPU_OVR_FLOOR 4u

/* The dense tensor-core peak for GEMMs computed in dtype d (bf16 for
 * weight-only formats); 0 when the GPU has none. */
double gpu_peak_flops(const gpu_spec *g, llm_dtype d);

/* The folder holding llm/ and gpu/: $SERVESIM_MODELS_DIR if set, else the
 * models/ folder of the source tree this binary was built from. */
const char *models_dir(void);

/* Loads <dir>/llm/<name>.json. On failure the message names the file and
 * the JSON path; an unknown name lists the available ones. */
int llm_model_load(const char *dir, const char *name, llm_model *out, sim_err *err);
int gpu_spec_load(const char *dir, const char *name, gpu_spec *out, sim_err *err);
/* Parses from a file path (the loaders above call these). */
int llm_model_load_file(const char *path, llm_model *out, sim_err *err);
int gpu_spec_load_file(const char *path, gpu_spec *out, sim_err *err);
/* A bundled name ("Llama-3-8B"), or the path of a user's own file (any
 * value with a '/' or ending in .json). */
int llm_model_resolve(const char *dir, const char *name_or_path, llm_model *out,
                      sim_err *err);
int gpu_spec_resolve(const char *dir, const char *name_or_path, gpu_spec *out,
                     sim_err *err);

/* ---- precision of a run ------------------------------------------------------ */

/* Checks prec (the rules at llm_precision); messages name the dtype. */
int llm_check_precision(const llm_precision *prec, sim_err *err);
/* Sets m's precision (checked) and the byte sizes derived from it. */
int llm_set_precision(llm_model *m, const llm_precision *prec, sim_err *err);
/* Checks that GPU g computes m's GEMMs: 8-bit activations need g's fp8 or
 * int8 tensor-core rate. */
int llm_check_gpu(const llm_model *m, const gpu_spec *g, sim_err *err);
/* The dtype GEMMs compute in: the activations' (weight-only formats
 * dequantise to them). */
llm_dtype llm_gemm_dtype(const llm_model *m);
/* A run config's "precision" object: {"weights", "activations",
 * "kv_cache"}, each a dtype name, defaults the model file's (written back
 * into obj, so the effective config records them). Sets m's precision and
 * checks it against GPU g. path is obj's JSON path for messages. */
struct cJSON;
int llm_precision_parse(struct cJSON *obj, const char *path, llm_model *m,
                        const gpu_spec *g, sim_err *err);

/* ---- derived quantities ------------------------------------------------------ */

/* Parameter counts derived from the architecture. */
double llm_params(const llm_model *m);           /* all weights */
double llm_params_active(const llm_model *m);    /* per token (MoE: top-k) */
/* Weight bytes held by one GPU under the layout: linear layers in the
 * weight dtype; embeddings, norms and routers in 16 bits. */
double llm_weight_bytes_per_gpu(const llm_model *m, const par_layout *par);
/* KV bytes one token occupies on one GPU (K and V, all layers; KV heads are
 * replicated when tp exceeds their count; MLA keeps one latent of
 * kv_lora_rank + qk_rope_head_dim per layer on every GPU). */
double llm_kv_bytes_per_token_per_gpu(const llm_model *m, const par_layout *par);
/* Sets the routing skew: expert i (from 1) is chosen by a token with
 * probability proportional to i^-skew, scaled so that each token chooses
 * experts_per_token of them (probabilities capped at 1, the excess spread
 * over the rest). 0 is uniform. No-op for dense models. */
void llm_set_moe_skew(llm_model *m, double skew);
/* Expected number of distinct routed experts that `tokens` tokens activate:
 * sum over experts of 1 - P(no token chooses it). Grows with tokens and
 * saturates at all experts; skew makes it smaller. */
double llm_moe_distinct_experts(const llm_model *m, double tokens);

/* Checks that tp divides the heads (and is a power of two <= 8 or so). */
int llm_check_tp(const llm_model *m, int tp, sim_err *err);
/* Checks a whole layout: its tp as llm_check_tp (experts are not split by
 * tp under expert parallelism), 1 <= pp <= layers, micro_batches 1 without
 * stages, ep 1 or tp * dp on an MoE model whose expert slots it divides,
 * dp > 1 only with expert parallelism, redundant experts only with it.
 * Messages say what was expected. */
int llm_check_layout(const llm_model *m, const par_layout *par, sim_err *err);

#endif
