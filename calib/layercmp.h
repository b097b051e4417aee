/* Whole-layer check: a layer file measured by `servesim-calib --layer`
 * (one decoder layer's real operator sequence in one CUDA graph, at
 * several batch compositions) against what the table cost model predicts
 * for the same layer and batch. Host only. */
#ifndef CALIB_LAYERCMP_H
#define CALIB_LAYERCMP_H

#include "sim/base.h"

typedef struct calib_layer_cmp {
    char name[32];
    char model[64];
    int tp;
    double measured_ns, predicted_ns;
    double measured_j, predicted_j;   /* one layer, one GPU; NAN if not measured */
    int ops_table, ops_roofline;      /* predicted ops by source */
} calib_layer_cmp;

/* Reads the layer file and the table (whose GPU must be the layer file's),
 * and predicts each layer from the table: the sum, over the layer's
 * operators as ops_decompose emits them (norms twice), of the table's
 * latency and energy. models_dir: where the model files are. *out is
 * allocated (free it); *n its length. */
int calib_layer_compare(const char *table_path, const char *layer_path,
                        const char *models_dir, calib_layer_cmp **out, int *n,
                        sim_err *err);

#endif
