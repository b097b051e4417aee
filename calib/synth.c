/* Synthetic tables from the roofline (see synth.h).
 *
 * Design. Each point becomes an op_desc with the point's FLOPs and bytes
 * and an op kind of its family (only the class matters to the roofline:
 * none of the families is a collective), priced by roofline_op_ns and
 * roofline_op_power_w of cost.c. Nothing is random: the same plan and GPU
 * file give the same bytes, so the synthetic table under tests/data/ can be
 * checked to be up to date. */
#include "calib/synth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/cost.h"

calib_point_result **calib_results_alloc(const calib_plan *plan)
{
    calib_point_result **res = sim_xcalloc((size_t)plan->n_entries + 1, sizeof *res);
    for (int i = 0; i < plan->n_entries; i++) {
        int n = plan->entry[i].n_points;
        res[i] = sim_xcalloc((size_t)n, sizeof **res);
        for (int j = 0; j < n; j++)
            res[i][j] = (calib_point_result){NAN, NAN, NAN, NAN, NAN, 0};
    }
    return res;
}

void calib_results_free(calib_point_result **res, int n_entries)
{
    if (!res)
        return;
    for (int i = 0; i < n_entries; i++)
        free(res[i]);
    free(res);
}

static op_kind kind_of(ctab_family f)
{
    switch (f) {
    case CTAB_GEMM: return OP_GEMM_QKV;
    case CTAB_MOE_ROUTER: return OP_MOE_ROUTER;
    case CTAB_MOE_EXPERTS: return OP_MOE_EXPERTS;
    case CTAB_ATTN_PREFILL: return OP_ATTN_PREFILL;
    case CTAB_ATTN_DECODE: return OP_ATTN_DECODE;
    case CTAB_EMBED: return OP_EMBED;
    case CTAB_NORM: return OP_NORM;
    case CTAB_ROPE: return OP_ROPE;
    case CTAB_ACT: return OP_ACT;
    case CTAB_SAMPLE: return OP_SAMPLE;
    default: return OP_NORM;   /* copies: memory-bound like an elementwise op */
    }
}

static void price(const gpu_spec *g, ctab_family f, double flops, double bytes,
                  int with_power, calib_point_result *r)
{
    op_desc op = {.kind = kind_of(f), .repeat = 1, .flops = flops, .bytes = bytes};
    double ns = roofline_op_ns(g, &op);
    r->median_ns = r->p10_ns = r->p90_ns = ns;
    r->throttled = 0;
    r->power_w = r->energy_j = NAN;
    if (with_power) {
        r->power_w = roofline_op_power_w(g, &op, ns);
        r->energy_j = r->power_w * ns * 1e-9;
    }
}

void calib_synth_results(const calib_plan *plan, const gpu_spec *g,
                         calib_point_result **res)
{
    for (int i = 0; i < plan->n_entries; i++) {
        const calib_entry *e = &plan->entry[i];
        for (int j = 0; j < e->n_points; j++)
            if (!e->skip[j])
                price(g, e->family, e->flops[j], e->bytes[j], e->energy[j], &res[i][j]);
    }
}

void calib_synth_info(const calib_plan *plan, const gpu_spec *g, calib_run_info *info)
{
    calib_run_info_init(info);
    snprintf(info->gpu_name, sizeof info->gpu_name, "%s", g->name);
    snprintf(info->device_name, sizeof info->device_name, "synthetic (roofline of "
             "models/gpu/%s.json)", g->name);
    snprintf(info->mode, sizeof info->mode, "synthetic");
    snprintf(info->plan_name, sizeof info->plan_name, "%s", plan->name);
    snprintf(info->notes, sizeof info->notes, "not a measurement: every latency is the "
             "roofline of the point's FLOPs and bytes on the GPU file, for tests");
    snprintf(info->energy_method, sizeof info->energy_method, "roofline");
    snprintf(info->families, sizeof info->families, "all");
    snprintf(info->state, sizeof info->state, "complete");
    info->ceil_gemm_flops_per_s = g->bf16_flops * g->gemm_efficiency;
    info->ceil_d2d_bytes_per_s = g->hbm_bw_bytes_per_s * g->bw_efficiency;
    info->idle_w = g->idle_w;
    info->memory_bytes = g->hbm_bytes;
}

int calib_synth_table(const calib_plan *plan, const gpu_spec *g, FILE *f)
{
    calib_point_result **res = calib_results_alloc(plan);
    calib_synth_results(plan, g, res);
    calib_run_info info;
    calib_synth_info(plan, g, &info);
    int rc = calib_table_write(f, plan, res, ~0u, &info);
    calib_results_free(res, plan->n_entries);
    return rc;
}

int calib_synth_layers(const calib_plan *plan, const gpu_spec *g, double scale, FILE *f)
{
    calib_point_result *res = sim_xcalloc((size_t)plan->n_layers + 1, sizeof *res);
    for (int i = 0; i < plan->n_layers; i++) {
        const calib_layer *l = &plan->layer[i];
        double ns = 0, j = 0;
        for (int k = 0; k < l->n_ops; k++) {
            calib_point_result r;
            price(g, l->op[k].family, l->op[k].flops, l->op[k].bytes, 1, &r);
            ns += l->op[k].count * r.median_ns;
            j += l->op[k].count * r.energy_j;
        }
        res[i] = (calib_point_result){ns * scale, ns * scale, ns * scale, j / (ns * 1e-9),
                                      j * scale, 0};
    }
    calib_run_info info;
    calib_synth_info(plan, g, &info);
    int rc = calib_layers_write(f, plan, res, &info);
    free(res);
    return rc;
}
