/* Synthetic tables: a plan "measured" by the roofline of a GPU file instead
 * of a GPU. Latency is roofline_op_ns of each point's FLOPs and bytes
 * (kernel floor included), power roofline_op_power_w at the plan's energy
 * points, ceilings the GPU file's achieved rates, idle power its idle_w.
 * The loader and the interpolation are tested on such tables: a table
 * built from the roofline must give the roofline back. Host only. */
#ifndef CALIB_SYNTH_H
#define CALIB_SYNTH_H

#include "calib/table_writer.h"

/* Per-entry result arrays (res[i] has plan->entry[i].n_points points);
 * free with calib_results_free. */
calib_point_result **calib_results_alloc(const calib_plan *plan);
void calib_results_free(calib_point_result **res, int n_entries);

/* Fills every non-skipped point from the roofline of g. */
void calib_synth_results(const calib_plan *plan, const gpu_spec *g,
                         calib_point_result **res);
/* Run info of a synthetic table for g (mode "synthetic", energy "roofline"). */
void calib_synth_info(const calib_plan *plan, const gpu_spec *g, calib_run_info *info);

/* Writes the synthetic table of plan for g; every family. */
int calib_synth_table(const calib_plan *plan, const gpu_spec *g, FILE *f);

/* Writes a layer file whose "measurements" are the roofline of each
 * plan layer's ops times `scale` (to test the comparison). */
int calib_synth_layers(const calib_plan *plan, const gpu_spec *g, double scale, FILE *f);

#endif
