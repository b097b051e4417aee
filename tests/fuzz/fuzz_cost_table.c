/* libFuzzer target for the cost-table loader (models/cost_table.c): the
 * input is a table file (written to /dev/shm, since ctab_load opens paths,
 * and read through jcfg_load_file with its bounds), loaded and validated;
 * a table that loads prices the operators of a decode batch and of a
 * prefill chunk of Llama-3-8B on the H100 at TP 1 and 2 (interpolation, the
 * roofline fallback, hints) and runs the leave-one-out check of every
 * family. Built and run by `make fuzz`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/cost_table.h"
#include "models/model.h"
#include "models/ops.h"

static char path[64];
static llm_model model;
static gpu_spec gpu;

static void price_all(const ctab *t, int tp, const batch_shape *b)
{
    op_list ops;
    ops_decompose(&model, &PAR_TP(tp), b, &ops);
    ctab_hint hint = {0};
    for (int i = 0; i < ops.n; i++) {
        ctab_price p;
        ctab_price_op(t, &model, tp, &gpu, &ops.op[i], &hint, &p);
        if (!(p.ns >= 0) || isnan(p.power_w))
            abort();   /* a loaded table must price every op */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sim_err err;
    if (!path[0]) {
        snprintf(path, sizeof path, "/dev/shm/servesim-fuzz-ctab-%d.json", (int)getpid());
        if (llm_model_load(models_dir(), "Llama-3-8B", &model, &err) ||
            gpu_spec_load(models_dir(), "H100-SXM-80GB", &gpu, &err))
            abort();
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    fwrite(data, 1, size, f);
    fclose(f);
    ctab *t = ctab_load(path, NULL, &err);
    if (t) {
        batch_seq chunk = {.q_tokens = 700, .ctx_tokens = 300};
        batch_shape prefill = {.prefill = &chunk, .n_prefill = 1, .n_decode = 3,
                               .decode_ctx_sum = 900, .n_sampled = 4};
        batch_shape decode = {.n_decode = 24, .decode_ctx_sum = 24 * 700, .n_sampled = 24};
        for (int tp = 1; tp <= 2; tp++) {
            price_all(t, tp, &prefill);
            price_all(t, tp, &decode);
        }
        for (int fam = 0; fam < CTAB_FAMILY_COUNT; fam++) {
            ctab_loo_stats lat, pow;
            ctab_loo(t, (ctab_family)fam, &lat, &pow);
        }
        ctab_destroy(t);
    }
    unlink(path);
    return 0;
}
