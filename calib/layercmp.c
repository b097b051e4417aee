/* Whole-layer prediction against measurement (see layercmp.h).
 *
 * Design. The layer file records each composition (model, tp, prefill
 * chunks and their prefix, decodes and their context), not its operators:
 * the prediction rebuilds the batch, runs ops_decompose on it and keeps the
 * per-layer operators (repeat >= layers; count = repeat / layers, so the
 * two norms of a layer count twice and the final norm not at all) exactly
 * as the planner did when it told the GPU what to run. Each is priced by
 * ctab_price_op with uniform MoE routing (skew 0), as the measurement used. */
#include "calib/layercmp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "calib/table_writer.h"
#include "models/cost_table.h"
#include "sim/jsoncfg.h"

static int get_int(cJSON *o, const char *path, const char *key, int64_t lo, int64_t hi,
                   int64_t *out, sim_err *err)
{
    return jcfg_int(o, path, key, JCFG_REQUIRED_INT, lo, hi, out, err);
}

static int predict(const ctab *t, const gpu_spec *g, const llm_model *m, int tp,
                   const batch_shape *b, calib_layer_cmp *c)
{
    op_list ops;
    ops_decompose(m, &PAR_TP(tp), b, &ops);
    c->predicted_ns = c->predicted_j = 0;
    for (int i = 0; i < ops.n; i++) {
        const op_desc *op = &ops.op[i];
        if (op->repeat < m->layers || op->kind == OP_ALLREDUCE)
            continue;
        int count = op->repeat / m->layers;
        ctab_price pr;
        ctab_price_op(t, m, tp, g, op, NULL, &pr);
        c->predicted_ns += count * pr.ns;
        c->predicted_j += count * pr.ns * 1e-9 * pr.power_w;
        if (pr.source == COST_SRC_TABLE)
            c->ops_table += count;
        else
            c->ops_roofline += count;
    }
    return 0;
}

static int compare_one(const ctab *t, const gpu_spec *g, const char *models_dir,
                       cJSON *jl, const char *path, calib_layer_cmp *c, sim_err *err)
{
    const char *name, *model;
    int64_t tp, n_prefill, q, prefix, n_decode, decode_ctx;
    if (jcfg_str(jl, path, "name", JCFG_REQUIRED_STR, &name, err) ||
        jcfg_str(jl, path, "model", JCFG_REQUIRED_STR, &model, err) ||
        get_int(jl, path, "tp", 1, 64, &tp, err) ||
        get_int(jl, path, "n_prefill", 0, 64, &n_prefill, err) ||
        get_int(jl, path, "q", 0, 1 << 24, &q, err) ||
        get_int(jl, path, "prefix", 0, 1 << 24, &prefix, err) ||
        get_int(jl, path, "n_decode", 0, 1 << 20, &n_decode, err) ||
        get_int(jl, path, "decode_ctx", 0, 1 << 24, &decode_ctx, err))
        return -1;
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->model, sizeof c->model, "%s", model);
    c->tp = (int)tp;
    cJSON *lat = cJSON_GetObjectItemCaseSensitive(jl, "latency_ns");
    cJSON *med = lat ? cJSON_GetObjectItemCaseSensitive(lat, "median") : NULL;
    cJSON *ej = cJSON_GetObjectItemCaseSensitive(jl, "energy_j");
    c->measured_ns = cJSON_IsNumber(med) ? med->valuedouble : NAN;
    c->measured_j = cJSON_IsNumber(ej) ? ej->valuedouble : NAN;
    llm_model m;
    if (llm_model_load(models_dir, model, &m, err))
        return sim_err_prefix(err, "%s.model", path);
    if (llm_check_tp(&m, (int)tp, err))
        return sim_err_prefix(err, "%s.tp", path);
    batch_seq chunks[64];
    for (int i = 0; i < n_prefill; i++)
        chunks[i] = (batch_seq){.q_tokens = (int32_t)q, .ctx_tokens = (int32_t)prefix};
    batch_shape b = {.prefill = chunks, .n_prefill = (int32_t)n_prefill,
                     .n_decode = (int32_t)n_decode,
                     .decode_ctx_sum = n_decode * decode_ctx,
                     .n_sampled = (int32_t)(n_prefill + n_decode)};
    return predict(t, g, &m, (int)tp, &b, c);
}

int calib_layer_compare(const char *table_path, const char *layer_path,
                        const char *models_dir, calib_layer_cmp **out, int *n,
                        sim_err *err)
{
    *out = NULL;
    *n = 0;
    cJSON *root;
    if (jcfg_load_file(layer_path, &root, err))
        return -1;
    int rc = -1;
    ctab *t = NULL;
    cJSON *schema = cJSON_GetObjectItemCaseSensitive(root, "schema");
    cJSON *gpu = cJSON_GetObjectItemCaseSensitive(root, "gpu");
    cJSON *gname = gpu ? cJSON_GetObjectItemCaseSensitive(gpu, "name") : NULL;
    cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    if (!cJSON_IsString(schema) || strcmp(schema->valuestring, CALIB_LAYER_SCHEMA)) {
        sim_errf(err, "%s: $.schema: expected \"%s\"", layer_path, CALIB_LAYER_SCHEMA);
        goto done;
    }
    if (!cJSON_IsString(gname) || !cJSON_IsArray(layers)) {
        sim_errf(err, "%s: expected $.gpu.name and $.layers", layer_path);
        goto done;
    }
    gpu_spec g;
    if (gpu_spec_load(models_dir, gname->valuestring, &g, err)) {
        sim_err_prefix(err, "%s: $.gpu.name", layer_path);
        goto done;
    }
    if (!(t = ctab_load(table_path, gname->valuestring, err)))
        goto done;
    int count = cJSON_GetArraySize(layers), i = 0;
    *out = sim_xcalloc((size_t)count + 1, sizeof **out);
    for (cJSON *jl = layers->child; jl; jl = jl->next, i++) {
        char path[64];
        snprintf(path, sizeof path, "$.layers[%d]", i);
        if (compare_one(t, &g, models_dir, jl, path, &(*out)[i], err)) {
            sim_err_prefix(err, "%s", layer_path);
            goto done;
        }
    }
    *n = count;
    rc = 0;
done:
    if (rc) {
        free(*out);
        *out = NULL;
    }
    ctab_destroy(t);
    cJSON_Delete(root);
    return rc;
}
