/* Cost models: an iteration's latency and energy on one serving instance,
 * with the source that produced each term.
 *
 * A cost model is a family of ops (struct cost_model_ops) like the policies:
 * the roofline (the fitted fallback of models/fallback.h) and measured
 * tables (calib/, or public profiles imported into the same format) are
 * its members. Terms are kept per operator kind, so a run can report where
 * time went and whether the roofline or a table produced it.
 *
 * Energy is the GPUs' by default; with the cost param "energy_scope":
 * "node" it also counts the rest of the machine (the GPU file's
 * node_w_per_gpu for every GPU of the instance, busy or idle). */
#ifndef MODELS_COST_H
#define MODELS_COST_H

#include <cjson/cJSON.h>
#include "models/engine.h"
#include "models/ops.h"

typedef enum cost_source { COST_SRC_NONE, COST_SRC_ROOFLINE, COST_SRC_TABLE,
                           COST_SRC_COUNT } cost_source;
const char *cost_source_name(cost_source s);

/* One iteration's cost on one instance (all tp GPUs together for energy). */
typedef struct cost_result {
    sim_time_ns latency_ns;   /* total, with the engine's CPU time */
    double energy_j;          /* all GPUs of the instance (and the node's share
                                 with energy_scope "node") */
    double term_ns[OP_KIND_COUNT];        /* summed over repeats */
    uint8_t term_source[OP_KIND_COUNT];   /* cost_source of each term */
    double weight_bytes;      /* HBM bytes of weights read (per GPU) */
    double kv_bytes;          /* HBM bytes of KV read/written (per GPU) */
} cost_result;

/* What every cost model is built from. */
typedef struct cost_setup {
    const llm_model *model;
    const gpu_spec *gpu;
    par_layout par;           /* GPUs per instance: par_gpus(&par) */
    /* The engine whose CPU time per iteration (models/engine.h) is added to
     * the operators' (NULL: a fixed iteration_overhead_ns instead; the run
     * config's cost.iteration_overhead_us). While the CPU works the GPUs
     * idle. Members see the engine's blocking time for the iteration in
     * iteration_overhead_ns and add it as before; the wrapper adds the
     * overlapped engines' share afterwards. */
    const engine_profile *engine;
    sim_time_ns iteration_overhead_ns;  /* CPU scheduling and launch, per iteration */
} cost_setup;

typedef struct cost_model cost_model;

/* One op's price: one run's time and power (one GPU), and its source. */
typedef struct cost_op_price {
    double ns;
    double power_w;
    cost_source source;
} cost_op_price;

typedef struct cost_model_ops {
    const char *name;
    /* params: the model's own JSON object (may be NULL); path: its JSON path
     * for messages. Stores private state in *state. Every member accepts
     * the key "energy_scope" (read by cost_model_create). */
    int (*init)(const cost_setup *setup, const cJSON *params, const char *path,
                void **state, sim_err *err);
    void (*iteration)(void *state, const cost_setup *setup, const op_list *ops,
                      cost_result *out);
    /* Optional: power of the instance with no work (all tp GPUs), watts;
     * NULL means the GPU file's idle_w * tp (a table brings its measured
     * idle power). */
    double (*idle_power_w)(void *state, const cost_setup *setup);
    void (*destroy)(void *state);
    /* Optional: each op's price as `iteration` prices it (for reports:
     * `servesim cost`); NULL means the roofline's. */
    void (*price_each)(void *state, const cost_setup *setup, const op_list *ops,
                       cost_op_price *out);
    /* Optional: one line on what prices the ops (a table's file and where
     * its numbers come from). */
    void (*describe)(void *state, char *buf, size_t size);
    /* Optional: a new state for another model on the same GPU and layout
     * that shares this state's read-only data (a loaded table), for
     * cost_model_create_like; same_prices: the other model prices every op
     * as this one does, so remembered prices may be shared too. NULL: the
     * member is initialised afresh. */
    void *(*share)(void *state, bool same_prices);
} cost_model_ops;

/* Registry: NULL-terminated table of all cost models. */
extern const cost_model_ops *const cost_models[];
const cost_model_ops *cost_model_find(const char *name, sim_err *err);

/* A ready-to-use cost model; the setup's pointers are borrowed. */
cost_model *cost_model_create(const char *name, const cost_setup *setup,
                              const cJSON *params, const char *path, sim_err *err);
/* A cost model of `like`'s member and params for another setup on the
 * same GPU (a speculative drafter): shares what the member can (a cost
 * table is loaded once; with same_prices, its memo of prices: the setup's
 * model must then price every op exactly as like's does, as a copy that
 * differs only in its layer count does), prices as cost_model_create(like's
 * name, setup, params) would. Either may be destroyed first. */
cost_model *cost_model_create_like(const cost_model *like, const cost_setup *setup,
                                   const cJSON *params, const char *path, bool same_prices,
                                   sim_err *err);
void cost_model_destroy(cost_model *cm);
/* Decomposes the batch and costs it. */
void cost_iteration(cost_model *cm, const batch_shape *b, cost_result *out);
/* Power of an instance with no work (all tp GPUs), watts. */
double cost_idle_power_w(const cost_model *cm);
/* The price of every op of a list (out: ops->n entries), as cost_iteration
 * prices them, and what prices them (the model's name, a table's file). */
void cost_price_each(cost_model *cm, const op_list *ops, cost_op_price *out);
void cost_describe(const cost_model *cm, char *buf, size_t size);
/* The energy scope of the model: "node" counts node_w_per_gpu too. */
bool cost_node_energy(const cost_model *cm);
const cost_setup *cost_model_setup(const cost_model *cm);

/* Roofline helpers shared by cost models (a table model falls back to them
 * outside its grid): one op's latency in ns (the fitted fallback model,
 * models/fallback.h) and its power in watts: idle, plus the compute and
 * memory power in proportion to the op's share of the achievable FLOP/s
 * and HBM bandwidth, at most the board limit. */
double roofline_op_ns(const gpu_spec *g, const op_desc *op);
double roofline_op_power_w(const gpu_spec *g, const op_desc *op, double op_ns);
/* The key every member accepts for the energy scope. */
#define COST_ENERGY_SCOPE_KEY "energy_scope"

#endif
