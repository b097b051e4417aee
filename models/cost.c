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
 * The roofline prices each operator as the slowest of its compute time, its
 * HBM time and the kernel floor (collectives: link time plus a fixed
 * latency), and its power by interpolating between idle and max power on
 * the op's utilisation of the resource it stresses most. It has no
 * parameters of its own: the per-iteration CPU overhead is part of the run
 * config (cost_setup), the rest comes from the GPU file.
 *
 * Invariants: every term whose op kind appeared has source ROOFLINE, every
 * other term NONE with zero time; latency = sum of terms + overhead;
 * idle * time * tp <= energy <= max * time * tp. */
#include "models/cost.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/cost_table.h"
#include "sim/jsoncfg.h"

struct cost_model {
    const cost_model_ops *ops;
    cost_setup setup;
    void *state;
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

/* Collectives ride NVLink, or PCIe on a GPU without it. */
static double link_bw(const gpu_spec *g)
{
    return g->nvlink_bw_bytes_per_s > 0 ? g->nvlink_bw_bytes_per_s
                                        : g->pcie_bw_bytes_per_s;
}

/* fmax/fmin are library calls at -O2 (they must honour NaN rules); these
 * are inlined, and NaN never reaches them. */
static inline double max2(double a, double b) { return a > b ? a : b; }

double roofline_op_ns(const gpu_spec *g, const op_desc *op)
{
    if (op_kind_class(op->kind) == OP_CLASS_COLLECTIVE)
        return op->bytes / (link_bw(g) * g->link_efficiency) * 1e9 +
               g->collective_latency_ns;
    double compute_ns = op->flops / (g->bf16_flops * g->gemm_efficiency) * 1e9;
    double memory_ns = op->bytes / (g->hbm_bw_bytes_per_s * g->bw_efficiency) * 1e9;
    return max2(max2(compute_ns, memory_ns), g->kernel_floor_ns);
}

/* Utilisation is the larger of the op's share of peak FLOP/s and of peak HBM
 * bandwidth over its duration. A collective's bytes are link bytes, counted
 * against HBM bandwidth too: it mostly waits on the link and draws little
 * above idle. */
double roofline_op_power_w(const gpu_spec *g, const op_desc *op, double op_ns)
{
    if (op_ns <= 0)
        return g->idle_w;
    double s = op_ns * 1e-9;
    double util = max2(op->flops / (g->bf16_flops * s),
                       op->bytes / (g->hbm_bw_bytes_per_s * s));
    util = util < 0 ? 0 : util > 1 ? 1 : util;
    return g->idle_w + (g->max_w - g->idle_w) * util;
}

/* ---- the roofline member --------------------------------------------------- */

static int roofline_init(const cost_setup *setup, const cJSON *params,
                         const char *path, void **state, sim_err *err)
{
    (void)setup;
    static const char *const no_keys[] = {NULL};
    *state = NULL;
    if (params && jcfg_check_keys(params, path, no_keys, err) < 0)
        return -1;
    return 0;
}

static void roofline_iteration(void *state, const cost_setup *setup,
                               const op_list *ops, cost_result *out)
{
    (void)state;
    const gpu_spec *g = setup->gpu;
    memset(out, 0, sizeof *out);
    double busy_ns = 0, busy_j = 0;
    for (int i = 0; i < ops->n; i++) {
        const op_desc *op = &ops->op[i];
        double one_ns = roofline_op_ns(g, op);
        double all_ns = one_ns * op->repeat;
        busy_ns += all_ns;
        busy_j += all_ns * 1e-9 * roofline_op_power_w(g, op, one_ns);
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

const cost_model_ops cost_roofline = {
    .name = "roofline",
    .init = roofline_init,
    .iteration = roofline_iteration,
    .destroy = NULL,
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

cost_model *cost_model_create(const char *name, const cost_setup *setup,
                              const cJSON *params, const char *path, sim_err *err)
{
    SIM_ASSERT(setup && setup->model && setup->gpu);
    const cost_model_ops *ops = cost_model_find(name, err);
    if (!ops)
        return NULL;
    if (llm_check_layout(setup->model, &setup->par, err) < 0)
        return NULL;
    if (setup->iteration_overhead_ns < 0) {
        sim_errf(err, "iteration overhead: expected >= 0 ns, got %lld",
                 (long long)setup->iteration_overhead_ns);
        return NULL;
    }
    void *state = NULL;
    if (ops->init(setup, params, path ? path : "$", &state, err) < 0)
        return NULL;
    cost_model *cm = sim_xmalloc(sizeof *cm);
    *cm = (cost_model){.ops = ops, .setup = *setup, .state = state};
    return cm;
}

void cost_model_destroy(cost_model *cm)
{
    if (!cm)
        return;
    if (cm->ops->destroy)
        cm->ops->destroy(cm->state);
    free(cm);
}

void cost_iteration(cost_model *cm, const batch_shape *b, cost_result *out)
{
    op_list ops;
    ops_decompose(cm->setup.model, &cm->setup.par, b, &ops);
    cm->ops->iteration(cm->state, &cm->setup, &ops, out);
}

double cost_idle_power_w(const cost_model *cm)
{
    if (cm->ops->idle_power_w)
        return cm->ops->idle_power_w(cm->state, &cm->setup);
    return cm->setup.gpu->idle_w * cm->setup.par.tp;
}

const cost_setup *cost_model_setup(const cost_model *cm)
{
    return &cm->setup;
}
