/* Measured-table keys: how an operator of ops_decompose maps to an entry of
 * a calibration table (calib/) and to a point of that entry's grid.
 *
 * A table is split into families (GEMMs, prefill attention, norms, ...).
 * Within a family an entry is identified by integer parameters that fix
 * the operator's shape apart from the batch (a GEMM's n and k, attention's
 * head counts); its grid spans the batch-dependent coordinates (tokens;
 * query tokens and cached prefix; batch and context). calib/ enumerates the
 * entries to measure with ctab_key_of_op over the bundled models, and the
 * table cost model (cost_table.c) looks operators up with the same
 * function, so the two cannot drift apart.
 *
 * This header and cost_key.c use neither cJSON nor any other library: the
 * CUDA calibration program compiles them too. */
#ifndef MODELS_COST_KEY_H
#define MODELS_COST_KEY_H

#include "models/ops.h"

typedef enum ctab_family {
    CTAB_GEMM,         /* params n, k; axis m (tokens) */
    CTAB_MOE_ROUTER,   /* params experts, hidden, top_k; axis m (router GEMM + top-k) */
    CTAB_MOE_EXPERTS,  /* params experts, top_k, shared, ffn (per GPU), hidden, skew_milli; axis m */
    CTAB_ATTN_PREFILL, /* params q_heads, kv_heads, head_dim, kv_bytes; axes q, prefix */
    CTAB_ATTN_DECODE,  /* params q_heads, kv_heads, head_dim, kv_bytes; axes batch, ctx */
    CTAB_EMBED,        /* params hidden, rows (vocabulary shard); axis m */
    CTAB_NORM,         /* params hidden; axis m */
    CTAB_ROPE,         /* params q_heads, kv_heads, head_dim; axis m */
    CTAB_ACT,          /* params width; axis m (rows: tokens, or token-expert pairs) */
    CTAB_SAMPLE,       /* params vocab; axis m (sampled sequences) */
    CTAB_COPY,         /* params direction (0 host-to-device, 1 device-to-host), pinned; axis bytes */
    CTAB_ALLREDUCE,    /* params ranks; axis bytes (the buffer reduced); see ctab_key_of_collective */
    CTAB_FAMILY_COUNT
} ctab_family;

#define CTAB_MAX_PARAMS 6
#define CTAB_MAX_AXES 2
#define CTAB_MAX_X 3      /* axes plus, for prefill attention, the number of chunks */

/* MoE experts are measured at two routing skews (param skew_milli, the
 * model's moe_skew times 1000; see models/README.md): uniform routing and
 * expert popularity ~ rank^-1.2. A run at another skew is priced from the
 * nearest of the two (by |difference|) through the roofline fraction. */
#define CTAB_SKEW_MEASURED 1.2
#define CTAB_SKEW_PARAM 5 /* index of skew_milli in CTAB_MOE_EXPERTS' params */

typedef enum ctab_scale { CTAB_SCALE_LOG, CTAB_SCALE_LIN } ctab_scale;

/* The fixed layout of one family. */
typedef struct ctab_family_info {
    const char *name;                      /* JSON key, e.g. "attn_prefill" */
    int n_params;
    const char *param[CTAB_MAX_PARAMS];
    int n_axes;
    const char *axis[CTAB_MAX_AXES];
    ctab_scale scale[CTAB_MAX_AXES];       /* how coordinates are interpolated */
} ctab_family_info;

const ctab_family_info *ctab_family_get(ctab_family f);
/* The family named `name`, or -1. */
int ctab_family_find(const char *name);

/* An operator's table address: the entry's params and the point's
 * coordinates. x[0..n_axes-1] are the grid coordinates; for prefill
 * attention x[2] is the number of chunks (the grid is measured with one). */
typedef struct ctab_key {
    ctab_family family;
    int64_t p[CTAB_MAX_PARAMS];
    double x[CTAB_MAX_X];
} ctab_key;

/* Fills *out for an operator of ops_decompose(m, &PAR_TP(tp), ...). Returns 0, or -1
 * for operators no calib/ kernel measures: collectives (a single GPU cannot;
 * see ctab_key_of_collective), MLA attention, and the activation of a plain
 * (non-gated) FFN. MoE experts carry the model's routing skew (p[5] =
 * round(1000 * moe_skew)). Prefill coordinates are per chunk: q = tokens /
 * chunks, prefix = mean KV tokens - q. */
int ctab_key_of_op(const llm_model *m, int tp, const op_desc *op, ctab_key *out);
/* Fills *out for a collective (the TP all-reduce): family allreduce, p[0]
 * the ranks, x[0] the bytes of the buffer reduced (tokens x hidden x 2).
 * Returns -1 for other operators. Kept apart from ctab_key_of_op so that
 * calib/'s plans, which a single GPU measures, never list collectives;
 * collective tables come from multi-GPU NCCL measurements (imported). */
int ctab_key_of_collective(int tp, const op_desc *op, ctab_key *out);

/* True when two keys name the same entry (same family and params). */
int ctab_key_same_entry(const ctab_key *a, const ctab_key *b);

#endif
