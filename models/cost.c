/* Cost models: the registry, the wrapper object, and the first member, the
 * roofline (see cost.h; the formulas are in models/README.md).
 *
 * Design. A cost model is a cost_model_ops found by name in the
 * NULL-terminated cost_models[] table; cost_model wraps the ops, a copy of
 * the setup (whose model and GPU pointers stay borrowed) and the member's
 * private state. cost_iteration decomposes the batch into operators
 * (ops.c) and hands the list to the member, so members only price
 * operators and never see requests. Adding a member means one file defining
 * `const cost_model_ops cost_<name>` and one line in cost_models.def.
 *
 * The roofline prices each operator with the fitted fallback model
 * (fallback.c: smooth compute/memory maximum, tile and wave quantisation,
 * launch time; collectives: latency plus link time), and its power as idle
 * plus compute and memory power in proportion to how much of the
 * achievable FLOP/s and bandwidth the op uses. It has no parameters of its
 * own: the per-iteration CPU time is the serving engine's (cost_setup's
 * engine profile, models/engine.h) or a fixed overhead from the run config,
 * added by the wrapper (cost_iteration), the rest comes from the GPU file
 * and fallback_fit.h.
 *
 * Invariants: every term whose op kind appeared has source ROOFLINE, every
 * other term NONE with zero time; latency = sum of terms + the CPU's share;
 * idle * time * tp <= energy <= max * time * tp (plus the node's share with
 * energy_scope "node"). */
#include "models/cost.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/cost_table.h"
#include "models/fallback.h"
#include "sim/jsoncfg.h"

struct cost_model {
    const cost_model_ops *ops;
    cost_setup setup;
    void *state;
    bool node_energy;   /* energy_scope "node" */
    /* Pipeline stages: the micro-batches' prefill chunks, reused. */
    batch_seq *mb_seqs;
    size_t mb_cap;
};

const char *cost_source_name(cost_source s)
{
    static const char *const names[COST_SRC_COUNT] = {
        [COST_SRC_NONE] = "none",
        [COST_SRC_ROOFLINE] = "roofline",
        [COST_SRC_TABLE] = "table",
    };
    SIM_ASSERT(s >= 0 && s < COST_SRC_COUNT);
    return names[s];
}

/* ---- roofline helpers ------------------------------------------------------ */

static inline double clamp01(double x) { return x < 0 ? 0 : x > 1 ? 1 : x; }

double roofline_op_ns(const gpu_spec *g, const op_desc *op)
{
    fb_params p;
    fb_params_for_gpu(g, &p);
    return fb_op_ns(&p, g, op);
}

/* Utilisations are the op's achieved FLOP/s and HBM bytes/s over what the
 * fallback model says is achievable (its efficiencies); a collective's
 * bytes are link bytes, counted against HBM bandwidth: it mostly waits on
 * the link and draws little above idle. */
static double op_power_w(const fb_params *p, const gpu_spec *g, const op_desc *op,
                         double op_ns)
{
    if (op_ns <= 0)
        return g->idle_w;
    double s = op_ns * 1e-9;
    double peak = gpu_peak_flops(g, (llm_dtype)op->dtype);
    if (!(peak > 0))
        peak = g->bf16_flops;
    double uc = clamp01(op->flops / (peak * p->gemm_compute_eff * s));
    double um = clamp01(op->bytes / (g->hbm_bw_bytes_per_s * p->gemm_memory_eff * s));
    double w = g->idle_w + (g->compute_w - g->idle_w) * uc + (g->memory_w - g->idle_w) * um;
    return w < g->max_w ? w : g->max_w;
}

double roofline_op_power_w(const gpu_spec *g, const op_desc *op, double op_ns)
{
    fb_params p;
    fb_params_for_gpu(g, &p);
    return op_power_w(&p, g, op, op_ns);
}

/* ---- the roofline member --------------------------------------------------- */

static int roofline_init(const cost_setup *setup, const cJSON *params,
                         const char *path, void **state, sim_err *err)
{
    static const char *const keys[] = {COST_ENERGY_SCOPE_KEY, NULL};
    *state = NULL;
    if (params && jcfg_check_keys(params, path, keys, err) < 0)
        return -1;
    fb_params *p = sim_xmalloc(sizeof *p);
    fb_params_for_gpu(setup->gpu, p);
    *state = p;
    return 0;
}

static void roofline_iteration(void *state, const cost_setup *setup,
                               const op_list *ops, cost_result *out)
{
    const fb_params *p = state;
    const gpu_spec *g = setup->gpu;
    memset(out, 0, sizeof *out);
    double busy_ns = 0, busy_j = 0;
    for (int i = 0; i < ops->n; i++) {
        const op_desc *op = &ops->op[i];
        double one_ns = fb_op_ns(p, g, op);
        double all_ns = one_ns * op->repeat;
        busy_ns += all_ns;
        busy_j += all_ns * 1e-9 * op_power_w(p, g, op, one_ns);
        out->term_ns[op->kind] += all_ns;
        out->term_source[op->kind] = COST_SRC_ROOFLINE;
        out->weight_bytes += op->weight_bytes * op->repeat;
        out->kv_bytes += op->kv_bytes * op->repeat;
    }
    sim_time_ns overhead = setup->iteration_overhead_ns;
    out->latency_ns = (sim_time_ns)llround(busy_ns) + overhead;
    /* Every GPU of the group runs the same ops; the CPU overhead keeps them
     * idle. */
    out->energy_j = (busy_j + overhead * 1e-9 * g->idle_w) * setup->par.tp;
}

static void roofline_price_each(void *state, const cost_setup *setup, const op_list *ops,
                                cost_op_price *out)
{
    const fb_params *p = state;
    for (int i = 0; i < ops->n; i++) {
        out[i].ns = fb_op_ns(p, setup->gpu, &ops->op[i]);
        out[i].power_w = op_power_w(p, setup->gpu, &ops->op[i], out[i].ns);
        out[i].source = COST_SRC_ROOFLINE;
    }
}

static void roofline_describe(void *state, char *buf, size_t size)
{
    (void)state;
    snprintf(buf, size, "roofline: the fallback model, %s", fb_fitted_provenance);
}

const cost_model_ops cost_roofline = {
    .name = "roofline",
    .init = roofline_init,
    .iteration = roofline_iteration,
    .destroy = free,
    .price_each = roofline_price_each,
    .describe = roofline_describe,
};

/* ---- registry and wrapper -------------------------------------------------- */

/* models/cost_models.def lists every cost model, one line each. */
#define COST_MODEL(name) extern const cost_model_ops cost_##name;
#include "models/cost_models.def"
#undef COST_MODEL
#define COST_MODEL(name) &cost_##name,
const cost_model_ops *const cost_models[] = {
#include "models/cost_models.def"
    NULL,
};
#undef COST_MODEL

const cost_model_ops *cost_model_find(const char *name, sim_err *err)
{
    char list[512] = "";
    size_t used = 0;
    for (int i = 0; cost_models[i]; i++) {
        if (strcmp(cost_models[i]->name, name) == 0)
            return cost_models[i];
        int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                         cost_models[i]->name);
        if (w > 0 && (size_t)w < sizeof list - used)
            used += (size_t)w;
    }
    sim_errf(err, "unknown cost model '%s'; expected one of: %s", name, list);
    return NULL;
}

/* The optional "energy_scope" param: "gpu" (default) or "node". */
static int energy_scope(const cJSON *params, const char *path, bool *node, sim_err *err)
{
    *node = false;
    const cJSON *v = params ? cJSON_GetObjectItemCaseSensitive(params, COST_ENERGY_SCOPE_KEY)
                            : NULL;
    if (!v)
        return 0;
    if (cJSON_IsString(v) && !strcmp(v->valuestring, "gpu"))
        return 0;
    if (cJSON_IsString(v) && !strcmp(v->valuestring, "node")) {
        *node = true;
        return 0;
    }
    return sim_errf(err, "%s.%s: expected \"gpu\" (the GPUs' energy) or \"node\" (the "
                    "whole machine's share, with the GPU file's node_w_per_gpu)", path,
                    COST_ENERGY_SCOPE_KEY);
}

/* What every cost model checks of its setup and params. */
static int check_setup(const cost_setup *setup, const cJSON *params, const char *path,
                       bool *node, sim_err *err)
{
    SIM_ASSERT(setup && setup->model && setup->gpu);
    if (llm_check_layout(setup->model, &setup->par, err) < 0)
        return -1;
    if (setup->iteration_overhead_ns < 0)
        return sim_errf(err, "iteration overhead: expected >= 0 ns, got %lld",
                        (long long)setup->iteration_overhead_ns);
    if (llm_check_gpu(setup->model, setup->gpu, err) < 0)
        return -1;
    return energy_scope(params, path ? path : "$", node, err) < 0 ? -1 : 0;
}

cost_model *cost_model_create_like(const cost_model *like, const cost_setup *setup,
                                   const cJSON *params, const char *path, bool same_prices,
                                   sim_err *err)
{
    if (!like->ops->share || setup->gpu != like->setup.gpu)
        return cost_model_create(like->ops->name, setup, params, path, err);
    bool node;
    if (check_setup(setup, params, path, &node, err) < 0)
        return NULL;
    cost_model *cm = sim_xmalloc(sizeof *cm);
    *cm = (cost_model){.ops = like->ops, .setup = *setup,
                       .state = like->ops->share(like->state,
                                                 same_prices && setup->par.tp == like->setup.par.tp),
                       .node_energy = node};
    return cm;
}

cost_model *cost_model_create(const char *name, const cost_setup *setup,
                              const cJSON *params, const char *path, sim_err *err)
{
    const cost_model_ops *ops = cost_model_find(name, err);
    if (!ops)
        return NULL;
    bool node;
    if (check_setup(setup, params, path, &node, err) < 0)
        return NULL;
    void *state = NULL;
    if (ops->init(setup, params, path ? path : "$", &state, err) < 0)
        return NULL;
    cost_model *cm = sim_xmalloc(sizeof *cm);
    *cm = (cost_model){.ops = ops, .setup = *setup, .state = state, .node_energy = node};
    return cm;
}

void cost_model_destroy(cost_model *cm)
{
    if (!cm)
        return;
    if (cm->ops->destroy)
        cm->ops->destroy(cm->state);
    free(cm->mb_seqs);
    free(cm);
}

/* The GPUs' idle power as the member prices it (all tp GPUs). */
static double member_idle_w(const cost_model *cm)
{
    return cm->ops->idle_power_w ? cm->ops->idle_power_w(cm->state, &cm->setup)
                                 : cm->setup.gpu->idle_w * cm->setup.par.tp;
}

/* The instance's GPUs over the member's tp group: stages times replicas. */
static double groups_of(const cost_model *cm)
{
    return (double)cm->setup.par.pp * cm->setup.par.dp;
}

/* The engine's share of the iteration. An engine whose CPU blocks the GPU
 * adds a time that does not depend on the GPU's: the member adds it as the
 * fixed overhead always was (so a profile equal to the old fixed overhead
 * reproduces old results exactly). An overlapping engine's share depends
 * on the GPU time: it is added afterwards, at idle power. */
static void engine_iteration(cost_model *cm, const op_list *ops, const batch_shape *b,
                             cost_result *out)
{
    const engine_profile *e = cm->setup.engine;
    cost_setup s = cm->setup;
    if (!e->cpu_overlap) {
        s.iteration_overhead_ns = (sim_time_ns)llround(
            engine_iteration_ns(e, b, cm->setup.model->layers, 0));
        cm->ops->iteration(cm->state, &s, ops, out);
        return;
    }
    s.iteration_overhead_ns = 0;
    cm->ops->iteration(cm->state, &s, ops, out);
    double gpu_ns = (double)out->latency_ns;
    sim_time_ns extra = (sim_time_ns)llround(
        engine_iteration_ns(e, b, cm->setup.model->layers, gpu_ns) - gpu_ns);
    out->latency_ns += extra;
    out->energy_j += (double)extra * 1e-9 * member_idle_w(cm);
}

/* ---- pipeline stages -------------------------------------------------------------- */

/* Micro-batch j of m: prefill chunks j, j + m, ...; the decodes split
 * evenly (the first n_decode % m one more) with their context in
 * proportion; the sampled prefills spread over the micro-batches that have
 * prefills. seqs receives the chunks. */
static batch_shape micro_batch(const batch_shape *b, int32_t m, int32_t j, batch_seq *seqs,
                               int32_t *sampled_prefills_left)
{
    batch_shape mb = {.prefill = seqs, .prefill_layers = b->prefill_layers, .moe = b->moe};
    for (int32_t i = j; i < b->n_prefill; i += m)
        seqs[mb.n_prefill++] = b->prefill[i];
    mb.n_decode = b->n_decode / m + (j < b->n_decode % m);
    if (b->n_decode > 0)
        mb.decode_ctx_sum = (int64_t)((double)b->decode_ctx_sum * mb.n_decode / b->n_decode);
    int32_t sp = *sampled_prefills_left < mb.n_prefill ? *sampled_prefills_left
                                                       : mb.n_prefill;
    *sampled_prefills_left -= sp;
    mb.n_sampled = mb.n_decode + sp;
    return mb;
}

/* One stage-to-stage send of a micro-batch of `tokens` tokens: one data-
 * parallel replica's 16-bit activations over the stage link. */
static double send_ns(const cost_model *cm, double tokens)
{
    const par_layout *par = &cm->setup.par;
    op_desc op = {.kind = OP_PP_SEND, .repeat = 1, .m = (int64_t)tokens,
                  .n = cm->setup.model->hidden, .ranks = 2,
                  .link_bytes_per_s = par->pp_link_bytes_per_s};
    op.bytes = tokens / par->dp * cm->setup.model->hidden * 2.0;
    return roofline_op_ns(cm->setup.gpu, &op);
}

/* An iteration on S pipeline stages: the batch is cut into m micro-batches
 * that flow through the stages while continuous batching keeps the pipeline
 * full (vLLM's virtual engines: a micro-batch's next step enters the first
 * stage as soon as its last one leaves the last stage, so there is no flush
 * per iteration). Micro-batch j spends s_j on every stage, its whole-model
 * time times the busiest stage's share of the layers (ceil(L / S) / L),
 * plus its send to the next stage. In steady state every micro-batch
 * advances one step per round of max(sum_j s_j, S max_j s_j): each stage
 * serves all m micro-batches, and each micro-batch needs S stage times. With
 * m = 1 a round is S stage times, each stage busy one of them (the bubble,
 * (S - 1) / S of the GPU time); with m >= S equal micro-batches there is no
 * bubble and the pipeline gives S stages' throughput (less what the smaller
 * micro-batches lose: a memory-bound decode re-reads each stage's weights
 * per micro-batch). Filling and draining the pipeline is not modelled.
 * Terms are scaled to sum to the round; the GPUs idle through the bubble
 * and the engine's CPU time (added once per iteration). */
static void pp_iteration(cost_model *cm, const batch_shape *b, cost_result *out)
{
    const par_layout *par = &cm->setup.par;
    const int32_t S = par->pp, L = cm->setup.model->layers;
    int32_t m = par_micro_batches(par);
    const int32_t seqs = b->n_prefill + b->n_decode;
    if (m > seqs)
        m = seqs > 0 ? seqs : 1;
    sim_grow((void **)&cm->mb_seqs, &cm->mb_cap, (size_t)b->n_prefill + 1,
             sizeof *cm->mb_seqs);
    const double frac = (double)((L + S - 1) / S) / L;
    cost_setup s = cm->setup;
    s.iteration_overhead_ns = 0;
    memset(out, 0, sizeof *out);
    int32_t sampled_prefills = b->n_sampled - b->n_decode;
    if (sampled_prefills < 0)
        sampled_prefills = 0;
    double sum = 0, max = 0, busy_ns = 0, busy_j = 0, sends = 0;
    for (int32_t j = 0; j < m; j++) {
        batch_shape mb = micro_batch(b, m, j, cm->mb_seqs, &sampled_prefills);
        if (mb.n_prefill + mb.n_decode == 0)
            continue;
        op_list ops;
        cost_result r;
        ops_decompose(cm->setup.model, par, &mb, &ops);
        cm->ops->iteration(cm->state, &s, &ops, &r);
        double tokens = mb.n_decode;
        for (int32_t i = 0; i < mb.n_prefill; i++)
            tokens += mb.prefill[i].q_tokens;
        double send = send_ns(cm, tokens);
        double sj = (double)r.latency_ns * frac + send;
        sum += sj;
        max = sj > max ? sj : max;
        sends += send;
        busy_ns += (double)r.latency_ns;
        busy_j += r.energy_j;
        for (int k = 0; k < OP_KIND_COUNT; k++) {
            out->term_ns[k] += r.term_ns[k] * frac;
            if (r.term_source[k] > out->term_source[k])
                out->term_source[k] = r.term_source[k];
        }
        out->weight_bytes += r.weight_bytes * frac;
        out->kv_bytes += r.kv_bytes * frac;
    }
    out->term_ns[OP_PP_SEND] += sends;
    out->term_source[OP_PP_SEND] = COST_SRC_ROOFLINE;
    double gpu_ns = sum > S * max ? sum : S * max;
    double scale = sum > 0 ? gpu_ns / sum : 0;
    for (int k = 0; k < OP_KIND_COUNT; k++)
        out->term_ns[k] *= scale;
    /* The engine's CPU time, once per iteration. */
    const engine_profile *e = cm->setup.engine;
    double total_ns = !e ? gpu_ns + (double)cm->setup.iteration_overhead_ns
                     : e->cpu_overlap ? engine_iteration_ns(e, b, L, gpu_ns)
                                      : gpu_ns + engine_iteration_ns(e, b, L, 0);
    out->latency_ns = (sim_time_ns)llround(total_ns);
    /* Every op ran once on one stage's tp GPUs (the member's energy is its
     * tp group's) on each replica; the rest of the GPU time is idle. */
    double idle_gpu_ns = (double)out->latency_ns * S - busy_ns;
    out->energy_j = busy_j * par->dp +
                    (idle_gpu_ns > 0 ? idle_gpu_ns : 0) * 1e-9 * member_idle_w(cm) * par->dp;
}

/* Offloading's prefetches: MoE layer l's experts load while layer l - 1
 * computes; the layer waits for what outlasts it. The layers' compute is
 * the iteration's GPU time less the loads, spread evenly over the layers.
 * The wait is added at idle power under the expert_load term. */
static void add_prefetch_stall(const cost_model *cm, const offload_iter *o, cost_result *out)
{
    const gpu_spec *g = cm->setup.gpu;
    double busy = 0;
    for (int k = 0; k < OP_KIND_COUNT; k++)
        busy += k == OP_EXPERT_LOAD ? 0 : out->term_ns[k];
    double layer_ns = busy / cm->setup.model->layers, stall = 0;
    for (int32_t l = 0; l < o->moe_layers && l < OFFLOAD_LAYERS_MAX; l++) {
        if (o->prefetch_bytes[l] <= 0)
            continue;
        op_desc op = {.kind = OP_EXPERT_LOAD, .repeat = 1, .ranks = 2,
                      .bytes = o->prefetch_bytes[l], .link_bytes_per_s = o->pcie_bytes_per_s};
        double t = roofline_op_ns(g, &op) - layer_ns;
        stall += t > 0 ? t : 0;
    }
    sim_time_ns add = (sim_time_ns)llround(stall);
    out->latency_ns += add;
    out->term_ns[OP_EXPERT_LOAD] += (double)add;
    out->term_source[OP_EXPERT_LOAD] = COST_SRC_ROOFLINE;
    out->energy_j += (double)add * 1e-9 * member_idle_w(cm);
}

void cost_iteration(cost_model *cm, const batch_shape *b, cost_result *out)
{
    if (cm->setup.par.pp > 1) {
        pp_iteration(cm, b, out);
    } else {
        op_list ops;
        ops_decompose(cm->setup.model, &cm->setup.par, b, &ops);
        if (cm->setup.engine)
            engine_iteration(cm, &ops, b, out);
        else
            cm->ops->iteration(cm->state, &cm->setup, &ops, out);
        /* Data-parallel replicas run alike (the busiest's ops). */
        if (cm->setup.par.dp > 1)
            out->energy_j *= cm->setup.par.dp;
        if (b->offload)
            add_prefetch_stall(cm, b->offload, out);
    }
    if (cm->node_energy)
        out->energy_j += cm->setup.gpu->node_w_per_gpu * par_gpus(&cm->setup.par) *
                         (double)out->latency_ns * 1e-9;
}

double cost_idle_power_w(const cost_model *cm)
{
    double w = member_idle_w(cm);
    if (groups_of(cm) > 1)
        w *= groups_of(cm);
    if (cm->node_energy)
        w += cm->setup.gpu->node_w_per_gpu * par_gpus(&cm->setup.par);
    return w;
}

void cost_price_each(cost_model *cm, const op_list *ops, cost_op_price *out)
{
    if (cm->ops->price_each) {
        cm->ops->price_each(cm->state, &cm->setup, ops, out);
        return;
    }
    for (int i = 0; i < ops->n; i++) {
        out[i].ns = roofline_op_ns(cm->setup.gpu, &ops->op[i]);
        out[i].power_w = roofline_op_power_w(cm->setup.gpu, &ops->op[i], out[i].ns);
        out[i].source = COST_SRC_ROOFLINE;
    }
}

void cost_describe(const cost_model *cm, char *buf, size_t size)
{
    if (cm->ops->describe)
        cm->ops->describe(cm->state, buf, size);
    else
        snprintf(buf, size, "%s", cm->ops->name);
}

bool cost_node_energy(const cost_model *cm)
{
    return cm->node_energy;
}

const cost_setup *cost_model_setup(const cost_model *cm)
{
    return &cm->setup;
}
