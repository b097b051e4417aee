/* Building calibration plans from the bundled models (host only: it reads
 * the model files in models/llm/, so it needs cJSON; the CUDA program reads the
 * plan it writes). See plan.h for what a plan is. */
#ifndef CALIB_PLANNER_H
#define CALIB_PLANNER_H

#include "calib/budget.h"
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

/* The estimate of a plan's GPU time is calib_plan_estimate (budget.h). */

#endif
