/* LLM and GPU descriptions, loaded from the JSON files in models/llm/ and
 * models/gpu/ (one file per model or GPU, named <name>.json; users add their
 * own the same way). Numbers are the published architecture and datasheet
 * figures; see models/README.md for the schema. */
#ifndef MODELS_MODEL_H
#define MODELS_MODEL_H

#include <stdbool.h>
#include "sim/base.h"

/* A TP group is assumed to sit within one NVLink domain (one 8-GPU node):
 * the all-reduce is costed on NVLink bandwidth. */
#define LLM_TP_MAX 8

/* How an instance spreads a model over its GPUs. Every quantity "per GPU"
 * (weights, KV, operator work) is computed from this one struct. Only tensor
 * parallelism is modelled so far: pp, ep and dp must be 1
 * (llm_check_layout says so). GPUs per instance: tp * pp * dp. */
typedef struct par_layout {
    int32_t tp;   /* tensor-parallel degree: GPUs that split every layer */
    int32_t pp;   /* pipeline stages */
    int32_t ep;   /* expert-parallel degree of the MoE layers */
    int32_t dp;   /* data-parallel attention replicas */
} par_layout;

/* A pure tensor-parallel layout of degree t. */
#define PAR_TP(t) ((par_layout){.tp = (t), .pp = 1, .ep = 1, .dp = 1})

static inline int32_t par_gpus(const par_layout *p) { return p->tp * p->pp * p->dp; }

/* The most routed experts a model may have (DeepSeek-V3 has 256). */
#define LLM_MAX_EXPERTS 256

typedef struct llm_model {
    char name[64];
    int32_t layers;
    int32_t hidden;
    int32_t heads;            /* attention (query) heads */
    int32_t kv_heads;
    int32_t head_dim;
    int32_t ffn;              /* dense FFN intermediate size (0 if all MoE) */
    int32_t vocab;
    int32_t max_context_tokens;
    int32_t bytes_per_param;  /* weights, e.g. 2 for bf16 */
    int32_t kv_bytes_per_elem;
    bool tied_embeddings;
    /* Mixture of experts; experts == 0 means dense. */
    int32_t experts;
    int32_t experts_per_token;
    int32_t expert_ffn;
    int32_t shared_experts;   /* each of size expert_ffn */
    /* Routing skew, set by llm_set_moe_skew (not read from the model file):
     * Zipf exponent of expert popularity, 0 = uniform; and, per expert, the
     * log of the probability that one token does not choose it. */
    double moe_skew;
    double moe_log_miss[LLM_MAX_EXPERTS];
} llm_model;

typedef struct gpu_spec {
    char name[64];
    double bf16_flops;           /* dense, per second */
    double hbm_bytes;
    double hbm_bw_bytes_per_s;
    double nvlink_bw_bytes_per_s;  /* per direction, per GPU */
    double pcie_bw_bytes_per_s;    /* per direction */
    double idle_w;
    double max_w;
    double gemm_efficiency;      /* achieved fraction of bf16_flops */
    double bw_efficiency;        /* achieved fraction of hbm bandwidth */
    double link_efficiency;      /* achieved fraction of link bandwidth */
    double kernel_floor_ns;      /* no kernel runs faster than this */
    double collective_latency_ns;  /* fixed cost of one all-reduce */
} gpu_spec;

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

/* Parameter counts and bytes derived from the architecture. */
double llm_params(const llm_model *m);           /* all weights */
double llm_params_active(const llm_model *m);    /* per token (MoE: top-k) */
/* Weight bytes held by one GPU at tensor-parallel degree tp. */
double llm_weight_bytes_per_gpu(const llm_model *m, const par_layout *par);
/* KV bytes one token occupies on one GPU at degree tp (K and V, all layers;
 * KV heads are replicated when tp exceeds their count). */
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
/* Checks a whole layout: its tp as llm_check_tp, and the degrees not yet
 * modelled (pp, ep, dp) at 1. */
int llm_check_layout(const llm_model *m, const par_layout *par, sim_err *err);

#endif
