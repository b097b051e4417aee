/* Building calibration plans from the bundled models (host only: it reads
 * the model files in models/llm/, so it needs cJSON; the CUDA program reads the
 * plan it writes). See plan.h for what a plan is. */
#ifndef CALIB_PLANNER_H
#define CALIB_PLANNER_H

#include "calib/plan.h"

typedef struct calib_plan_opts {
    int quick;            /* small grids: a smoke test of a minute or so */
    const char *models;   /* comma-separated model names; NULL: every file in llm/
                           * (quick: Llama-3-8B) */
    int layers;           /* add the whole-layer compositions (--layer) */
} calib_plan_opts;

/* Enumerates every table entry the given models need at TP 1, 2, 4, 8 (the
 * valid ones), the ops ops_decompose emits for them, with grids, FLOPs and
 * bytes per point, energy points and skips; and, with opts->layers, one
 * Llama-3-8B and one Mixtral-8x7B decoder layer at six batch compositions
 * (those of them among the models). */
int calib_plan_build(const char *models_dir, const calib_plan_opts *opts,
                     calib_plan *out, sim_err *err);

/* Estimated GPU time of measuring a plan on a GPU like `g`: per family,
 * latency and energy parts, and the whole. Rough (the roofline at modest
 * efficiency plus fixed per-point costs), for splitting runs. */
typedef struct calib_estimate {
    int points[CTAB_FAMILY_COUNT];
    int energy_points[CTAB_FAMILY_COUNT];
    double latency_s[CTAB_FAMILY_COUNT];
    double energy_s[CTAB_FAMILY_COUNT];
    double layer_s;
    double total_s;
} calib_estimate;

/* Timing constants shared by the estimate and the CUDA program. */
#define CALIB_REPLAYS_FULL 9
#define CALIB_REPLAYS_QUICK 5
#define CALIB_GRAPH_MIN_NS_FULL 500000.0   /* one timed graph replay lasts >= this */
#define CALIB_GRAPH_MIN_NS_QUICK 200000.0
#define CALIB_WINDOW_S_FULL 0.20            /* energy window, at least */
#define CALIB_WINDOW_S_QUICK 0.06
#define CALIB_RAMP_S 0.05                   /* busy time before an energy window opens */

void calib_plan_estimate(const calib_plan *plan, const gpu_spec *g, int quick,
                         calib_estimate *out);

#endif
