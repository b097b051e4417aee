/* LLM and GPU descriptions: loading and the quantities derived from them
 * (see model.h, and models/README.md for the file schemas).
 *
 * Design. A model or GPU is one JSON file whose keys are exactly the fields
 * of llm_model / gpu_spec plus a required "source" (where the numbers come
 * from) and an optional "name" (which must equal the file's stem). Files are
 * read strictly through jsoncfg: unknown keys, wrong types and out-of-range
 * values are errors that name the file and the JSON path. Cross-field rules
 * (kv_heads divides heads; dense, MoE, or dense-then-MoE layer stacks; MLA
 * ranks only with MLA; max_w above idle_w) are checked after the fields.
 *
 * Derived counts follow the published layouts: embedding (plus learned
 * position embeddings), an LM head unless tied, and per layer the attention
 * projections (q and o are heads * head_dim wide, which need not equal
 * hidden; MLA: the q and kv down-projections with their norms, then the
 * per-head up-projections), a gated (three matrices) or plain (two) FFN or
 * a router plus gated experts, two norms (LayerNorm has a bias), and the
 * biases the model has; one final norm. Small per-head q/k norms are left
 * out. Every bundled model is tested against its published total.
 *
 * Tensor parallelism: everything with a head, FFN or vocabulary dimension is
 * split tp ways (the embedding and LM head by vocabulary rows, as vLLM's
 * VocabParallelEmbedding does); KV heads are replicated when tp exceeds
 * their count; routers, norms, learned positions and MLA's down-projections
 * are replicated (as in vLLM). Experts are split by their intermediate
 * dimension (tensor-parallel experts, not expert parallelism).
 *
 * Precision: linear layers are stored in the weight dtype, everything else
 * (embeddings, LM head, norms, routers, biases) in 16 bits, as vLLM's
 * quantised checkpoints keep them. */
#include "models/model.h"

#include <dirent.h>
#include <math.h>
#include <errno.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/fallback.h"
#include "sim/jsoncfg.h"

#define HALF_BYTES 2.0   /* 16-bit storage of non-linear weights */

const char *models_dir(void)
{
    const char *env = getenv("SERVESIM_MODELS_DIR");
    if (env && *env)
        return env;
#ifdef SERVESIM_MODELS_DIR
    return SERVESIM_MODELS_DIR;
#else
    return "models";
#endif
}

/* ---- dtypes -------------------------------------------------------------------- */

static const char *const dtype_names[LLM_DTYPE_COUNT] = {
    [LLM_BF16] = "bf16", [LLM_FP16] = "fp16", [LLM_FP8] = "fp8",
    [LLM_INT8] = "int8", [LLM_INT4] = "int4",
};

const char *llm_dtype_name(llm_dtype d)
{
    SIM_ASSERT(d >= 0 && d < LLM_DTYPE_COUNT);
    return dtype_names[d];
}

int llm_dtype_find(const char *s)
{
    for (int d = 0; d < LLM_DTYPE_COUNT; d++)
        if (strcmp(s, dtype_names[d]) == 0)
            return d;
    return -1;
}

double llm_dtype_bytes(llm_dtype d)
{
    switch (d) {
    case LLM_BF16:
    case LLM_FP16:
        return 2;
    case LLM_FP8:
    case LLM_INT8:
        return 1;
    case LLM_INT4:
        return 0.5 + 2.0 / 128;   /* one fp16 scale per group of 128 */
    default:
        break;
    }
    SIM_ASSERT(!"unknown dtype");
    return 0;
}

static bool is_16bit(llm_dtype d) { return d == LLM_BF16 || d == LLM_FP16; }

int llm_check_precision(const llm_precision *p, sim_err *err)
{
    if (p->kv == LLM_INT4)
        return sim_errf(err, "kv_cache dtype int4: expected bf16, fp16, fp8 or int8 "
                        "(int4 is for weights only)");
    if (p->activations == LLM_INT4)
        return sim_errf(err, "activations dtype int4: expected bf16, fp16, fp8 or int8 "
                        "(int4 is for weights only)");
    if (!is_16bit(p->activations) && p->weights != p->activations)
        return sim_errf(err, "activations %s need weights %s too (W8A8), got weights %s; "
                        "weight-only quantisation keeps 16-bit activations",
                        llm_dtype_name(p->activations), llm_dtype_name(p->activations),
                        llm_dtype_name(p->weights));
    return 0;
}

int llm_set_precision(llm_model *m, const llm_precision *p, sim_err *err)
{
    if (llm_check_precision(p, err) < 0)
        return -1;
    m->prec = *p;
    m->bytes_per_param = llm_dtype_bytes(p->weights);
    m->kv_bytes_per_elem = llm_dtype_bytes(p->kv);
    m->act_bytes = llm_dtype_bytes(p->activations);
    return 0;
}

llm_dtype llm_gemm_dtype(const llm_model *m)
{
    return m->prec.activations;
}

double gpu_peak_flops(const gpu_spec *g, llm_dtype d)
{
    switch (d) {
    case LLM_FP16:
        return g->fp16_flops;
    case LLM_FP8:
        return g->fp8_flops;
    case LLM_INT8:
        return g->int8_ops;
    default:
        return g->bf16_flops;
    }
}

int llm_check_gpu(const llm_model *m, const gpu_spec *g, sim_err *err)
{
    llm_dtype d = llm_gemm_dtype(m);
    if (gpu_peak_flops(g, d) > 0)
        return 0;
    return sim_errf(err, "%s has no %s tensor-core rate (its file gives %s 0), so it "
                    "cannot run %s with %s activations; use 16-bit activations "
                    "(weight-only %s) or another GPU", g->name, llm_dtype_name(d),
                    d == LLM_INT8 ? "int8_ops" : "fp8_flops", m->name,
                    llm_dtype_name(d), llm_dtype_name(m->prec.weights));
}
/* ---- file names ------------------------------------------------------------ */

/* The stem of path: "a/b/Llama-3-8B.json" -> "Llama-3-8B". */
static void file_stem(const char *path, char *out, size_t n)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strlen(base);
    if (len > 5 && strcmp(base + len - 5, ".json") == 0)
        len -= 5;
    if (len >= n)
        len = n - 1;
    memcpy(out, base, len);
    out[len] = '\0';
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Writes the sorted stems of the *.json files in folder into out. */
static void list_available(const char *folder, char *out, size_t n)
{
    out[0] = '\0';
    DIR *d = opendir(folder);
    if (!d) {
        snprintf(out, n, "none (cannot open the folder: %s)", strerror(errno));
        return;
    }
    char **names = NULL;
    size_t count = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len <= 5 || strcmp(e->d_name + len - 5, ".json"))
            continue;
        sim_grow((void **)&names, &cap, count + 1, sizeof *names);
        names[count] = sim_xstrdup(e->d_name);
        names[count++][len - 5] = '\0';
    }
    closedir(d);
    qsort(names, count, sizeof *names, cmp_str);
    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
        if (used < n) {
            int w = snprintf(out + used, n - used, "%s%s", i ? ", " : "", names[i]);
            used += w > 0 ? (size_t)w : 0;
        }
        free(names[i]);
    }
    free(names);
    if (!count)
        snprintf(out, n, "none (no .json files in the folder)");
}

/* Loads <dir>/<sub>/<name>.json through load_file, or explains which names
 * exist. */
static int load_named(const char *dir, const char *sub, const char *kind,
                      const char *name, void *out,
                      int (*load_file)(const char *, void *, sim_err *),
                      sim_err *err)
{
    char folder[4096], path[4200];
    snprintf(folder, sizeof folder, "%s/%s", dir, sub);
    if (!*name || strchr(name, '/') || name[0] == '.')
        return sim_errf(err, "invalid %s name '%s': a name is a file stem in %s",
                        kind, name, folder);
    snprintf(path, sizeof path, "%s/%s.json", folder, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        char avail[700];
        list_available(folder, avail, sizeof avail);
        return sim_errf(err, "unknown %s '%s' (no file %s); available: %s",
                        kind, name, path, avail);
    }
    fclose(f);
    return load_file(path, out, err);
}

/* Reads the common "name" and "source" keys. */
static int read_name_source(cJSON *root, const char *path, char *name_out,
                            size_t name_size, sim_err *err)
{
    char stem[256];
    file_stem(path, stem, sizeof stem);
    if (strlen(stem) >= name_size)
        return sim_errf(err, "file name '%s' is too long (at most %zu characters)",
                        stem, name_size - 1);
    const char *name, *source;
    if (jcfg_str(root, "$", "name", stem, &name, err) < 0 ||
        jcfg_str(root, "$", "source", JCFG_REQUIRED_STR, &source, err) < 0)
        return -1;
    if (strcmp(name, stem) != 0)
        return sim_errf(err, "$.name: expected \"%s\" (the file's name), got \"%s\"",
                        stem, name);
    if (!*source)
        return sim_errf(err, "$.source: expected a non-empty string saying where "
                        "the numbers come from");
    snprintf(name_out, name_size, "%s", name);
    return 0;
}

/* A value names a file when it looks like a path: a '/' or a .json end. */
static bool is_path(const char *s)
{
    size_t n = strlen(s);
    return strchr(s, '/') || (n > 5 && strcmp(s + n - 5, ".json") == 0);
}

/* ---- enumerations ------------------------------------------------------------ */

/* Reads key as one of names[] (NULL-terminated; def is names[0] when the
 * key is absent, or required when def < 0). */
static int get_enum(cJSON *root, const char *key, const char *const *names, int *out,
                    sim_err *err)
{
    const char *s;
    if (jcfg_str(root, "$", key, names[0], &s, err) < 0)
        return -1;
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    char list[200] = "";
    for (int i = 0; names[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 names[i]);
    return sim_errf(err, "$.%s: expected one of: %s; got \"%s\"", key, list, s);
}

static int get_dtype(cJSON *root, const char *key, llm_dtype *out, sim_err *err)
{
    static const char *const names[] = {"bf16", "fp16", "fp8", "int8", "int4", NULL};
    int v;
    if (get_enum(root, key, names, &v, err) < 0)
        return -1;
    SIM_ASSERT(v >= 0 && v < LLM_DTYPE_COUNT && !strcmp(names[v], llm_dtype_name(v)));
    *out = (llm_dtype)v;
    return 0;
}

int llm_precision_parse(cJSON *obj, const char *path, llm_model *m, const gpu_spec *g,
                        sim_err *err)
{
    static const char *const keys[] = {"weights", "activations", "kv_cache", NULL};
    llm_dtype *slot[3];
    llm_precision p = m->prec;
    slot[0] = &p.weights;
    slot[1] = &p.activations;
    slot[2] = &p.kv;
    if (jcfg_check_keys(obj, path, keys, err) < 0)
        return -1;
    for (int i = 0; i < 3; i++) {
        const char *s;
        if (jcfg_str(obj, path, keys[i], llm_dtype_name(*slot[i]), &s, err) < 0)
            return -1;
        int d = llm_dtype_find(s);
        if (d < 0)
            return sim_errf(err, "%s.%s: expected one of: bf16, fp16, fp8, int8, int4; "
                            "got \"%s\"", path, keys[i], s);
        *slot[i] = (llm_dtype)d;
    }
    if (llm_set_precision(m, &p, err) < 0 || llm_check_gpu(m, g, err) < 0)
        return sim_err_prefix(err, "%s", path);
    return 0;
}

/* ---- LLM files ------------------------------------------------------------- */

static const char *const llm_keys[] = {
    "name", "source", "layers", "hidden", "heads", "kv_heads", "head_dim", "ffn",
    "vocab", "max_context_tokens", "tied_embeddings", "norm", "gated_ffn", "activation",
    "bias", "position_embedding", "attention", "q_lora_rank", "kv_lora_rank",
    "qk_rope_head_dim", "v_head_dim", "experts", "experts_per_token", "expert_ffn",
    "shared_experts", "dense_layers", "weight_dtype", "activation_dtype", "kv_dtype",
    NULL,
};

static int get_i32(cJSON *root, const char *key, int64_t def, int64_t min,
                   int64_t max, int32_t *out, sim_err *err)
{
    int64_t v;
    if (jcfg_int(root, "$", key, def, min, max, &v, err) < 0)
        return -1;
    *out = (int32_t)v;
    return 0;
}

/* Keys of earlier versions, with what replaced them. */
static int check_legacy_keys(const cJSON *root, sim_err *err)
{
    static const char *const old[][2] = {
        {"bytes_per_param", "weight_dtype (bf16, fp16, fp8, int8 or int4)"},
        {"kv_bytes_per_elem", "kv_dtype (bf16, fp16, fp8 or int8)"},
    };
    for (size_t i = 0; i < sizeof old / sizeof *old; i++)
        if (cJSON_GetObjectItemCaseSensitive(root, old[i][0]))
            return sim_errf(err, "$.%s: replaced by %s", old[i][0], old[i][1]);
    return 0;
}

static int llm_arch_from_json(cJSON *root, llm_model *m, sim_err *err)
{
    static const char *const norms[] = {"rmsnorm", "layernorm", NULL};
    static const char *const acts[] = {"silu", "gelu", "relu", NULL};
    static const char *const biases[] = {"none", "qkv", "all", NULL};
    static const char *const positions[] = {"rope", "learned", "none", NULL};
    static const char *const attns[] = {"gqa", "mha", "mqa", "mla", NULL};
    int norm, act, bias, pos, attn;
    if (get_enum(root, "norm", norms, &norm, err) < 0 ||
        jcfg_bool(root, "$", "gated_ffn", 1, &m->gated_ffn, err) < 0 ||
        get_enum(root, "activation", acts, &act, err) < 0 ||
        get_enum(root, "bias", biases, &bias, err) < 0 ||
        get_enum(root, "position_embedding", positions, &pos, err) < 0 ||
        get_enum(root, "attention", attns, &attn, err) < 0)
        return -1;
    m->norm = (llm_norm)norm;
    m->activation = (llm_act)act;
    m->bias = (llm_bias)bias;
    m->position = (llm_pos)pos;
    m->attention = attn == 3 ? LLM_ATTN_MLA : LLM_ATTN_GQA;
    if (attn == 1 && m->kv_heads != m->heads)
        return sim_errf(err, "$.attention: \"mha\" needs kv_heads = heads (%d), got %d",
                        m->heads, m->kv_heads);
    if (attn == 2 && m->kv_heads != 1)
        return sim_errf(err, "$.attention: \"mqa\" needs kv_heads = 1, got %d", m->kv_heads);
    bool mla = m->attention == LLM_ATTN_MLA;
    int64_t need = mla ? JCFG_REQUIRED_INT : 0;
    if (get_i32(root, "q_lora_rank", 0, 0, 1 << 20, &m->q_lora_rank, err) < 0 ||
        get_i32(root, "kv_lora_rank", need, mla, 1 << 20, &m->kv_lora_rank, err) < 0 ||
        get_i32(root, "qk_rope_head_dim", need, mla, 4096, &m->qk_rope_head_dim, err) < 0 ||
        get_i32(root, "v_head_dim", need, mla, 4096, &m->v_head_dim, err) < 0)
        return -1;
    if (!mla && (m->q_lora_rank || m->kv_lora_rank || m->qk_rope_head_dim ||
                 m->v_head_dim))
        return sim_errf(err, "$.attention: q_lora_rank, kv_lora_rank, qk_rope_head_dim "
                        "and v_head_dim are for \"mla\" only");
    if (mla && m->kv_heads != m->heads)
        return sim_errf(err, "$.kv_heads: MLA decompresses keys and values per head, "
                        "so kv_heads must equal heads (%d), got %d", m->heads, m->kv_heads);
    if (mla && m->position != LLM_POS_ROPE)
        return sim_errf(err, "$.position_embedding: MLA carries its rotary part in "
                        "qk_rope_head_dim; expected \"rope\"");
    return 0;
}

static int llm_moe_rules(llm_model *m, sim_err *err)
{
    if (m->experts == 0) {
        if (m->ffn == 0)
            return sim_errf(err, "$.ffn: a dense model (experts 0) needs ffn >= 1");
        if (m->experts_per_token || m->expert_ffn || m->shared_experts || m->dense_layers)
            return sim_errf(err, "$.experts: experts_per_token, expert_ffn, "
                            "shared_experts and dense_layers need experts >= 2");
        return 0;
    }
    if (m->experts < 2)
        return sim_errf(err, "$.experts: expected 0 (dense) or an integer >= 2, got %d",
                        m->experts);
    if (m->experts_per_token < 1 || m->experts_per_token > m->experts)
        return sim_errf(err, "$.experts_per_token: expected an integer in [1, %d] "
                        "(experts), got %d", m->experts, m->experts_per_token);
    if (m->expert_ffn < 1)
        return sim_errf(err, "$.expert_ffn: an MoE model needs expert_ffn >= 1");
    if (!m->gated_ffn)
        return sim_errf(err, "$.gated_ffn: experts are gated (SwiGLU) FFNs; expected "
                        "true for an MoE model");
    if (m->dense_layers >= m->layers)
        return sim_errf(err, "$.dense_layers: expected fewer than layers (%d), got %d",
                        m->layers, m->dense_layers);
    /* A dense FFN width belongs to the leading dense layers only; a shared
     * expert goes in shared_experts, not in ffn. */
    if (m->dense_layers == 0 && m->ffn != 0)
        return sim_errf(err, "$.ffn: expected 0 for an MoE model without dense_layers "
                        "(put a shared expert in shared_experts), got %d", m->ffn);
    if (m->dense_layers > 0 && m->ffn == 0)
        return sim_errf(err, "$.ffn: dense_layers %d need the dense FFN size in ffn",
                        m->dense_layers);
    return 0;
}

static int llm_from_json(cJSON *root, const char *path, llm_model *m, sim_err *err)
{
    memset(m, 0, sizeof *m);
    const int64_t big = INT32_MAX;
    llm_precision prec;
    if (check_legacy_keys(root, err) < 0 ||
        jcfg_check_keys(root, "$", llm_keys, err) < 0 ||
        read_name_source(root, path, m->name, sizeof m->name, err) < 0 ||
        get_i32(root, "layers", JCFG_REQUIRED_INT, 1, 10000, &m->layers, err) < 0 ||
        get_i32(root, "hidden", JCFG_REQUIRED_INT, 1, 1 << 20, &m->hidden, err) < 0 ||
        get_i32(root, "heads", JCFG_REQUIRED_INT, 1, 4096, &m->heads, err) < 0 ||
        get_i32(root, "kv_heads", JCFG_REQUIRED_INT, 1, 4096, &m->kv_heads, err) < 0 ||
        get_i32(root, "head_dim", JCFG_REQUIRED_INT, 1, 4096, &m->head_dim, err) < 0 ||
        get_i32(root, "ffn", JCFG_REQUIRED_INT, 0, 1 << 22, &m->ffn, err) < 0 ||
        get_i32(root, "vocab", JCFG_REQUIRED_INT, 1, 1 << 24, &m->vocab, err) < 0 ||
        get_i32(root, "max_context_tokens", JCFG_REQUIRED_INT, 2, big,
                &m->max_context_tokens, err) < 0 ||
        jcfg_bool(root, "$", "tied_embeddings", 0, &m->tied_embeddings, err) < 0 ||
        get_i32(root, "experts", 0, 0, LLM_MAX_EXPERTS, &m->experts, err) < 0 ||
        get_i32(root, "experts_per_token", 0, 0, 4096, &m->experts_per_token, err) < 0 ||
        get_i32(root, "expert_ffn", 0, 0, 1 << 22, &m->expert_ffn, err) < 0 ||
        get_i32(root, "shared_experts", 0, 0, 64, &m->shared_experts, err) < 0 ||
        get_i32(root, "dense_layers", 0, 0, 10000, &m->dense_layers, err) < 0 ||
        get_dtype(root, "weight_dtype", &prec.weights, err) < 0 ||
        get_dtype(root, "activation_dtype", &prec.activations, err) < 0 ||
        get_dtype(root, "kv_dtype", &prec.kv, err) < 0)
        return -1;
    if (m->heads % m->kv_heads)
        return sim_errf(err, "$.kv_heads: expected a divisor of heads (%d), got %d",
                        m->heads, m->kv_heads);
    if (llm_arch_from_json(root, m, err) < 0 || llm_moe_rules(m, err) < 0)
        return -1;
    if (llm_set_precision(m, &prec, err) < 0)
        return sim_err_prefix(err, "$.weight_dtype, $.activation_dtype, $.kv_dtype");
    llm_set_moe_skew(m, 0);
    return 0;
}

int llm_model_load_file(const char *path, llm_model *out, sim_err *err)
{
    cJSON *root;
    if (jcfg_load_file(path, &root, err) < 0)
        return -1;
    int rc = llm_from_json(root, path, out, err);
    cJSON_Delete(root);
    return rc < 0 ? sim_err_prefix(err, "%s", path) : 0;
}

static int llm_load_file_void(const char *path, void *out, sim_err *err)
{
    return llm_model_load_file(path, out, err);
}

int llm_model_load(const char *dir, const char *name, llm_model *out, sim_err *err)
{
    return load_named(dir, "llm", "model", name, out, llm_load_file_void, err);
}

int llm_model_resolve(const char *dir, const char *name_or_path, llm_model *out,
                      sim_err *err)
{
    return is_path(name_or_path) ? llm_model_load_file(name_or_path, out, err)
                                 : llm_model_load(dir, name_or_path, out, err);
}

/* ---- GPU files ------------------------------------------------------------- */

static const char *const gpu_keys[] = {
    "name", "source", "bf16_flops", "fp16_flops", "fp8_flops", "int8_ops", "hbm_bytes",
    "hbm_bw_bytes_per_s", "nvlink_bw_bytes_per_s", "pcie_bw_bytes_per_s", "sm_count",
    "sm_clock_hz", "idle_w", "max_w", "compute_w", "memory_w", "node_w_per_gpu",
    "collective_latency_ns", "collective_rank_ns", "link_efficiency", "gemm_efficiency",
    "bw_efficiency", "kernel_floor_ns", NULL,
};

/* An optional number in (lo, hi]; NAN when absent (not written back). */
static int opt_num(cJSON *root, const char *key, double lo, double hi, double *out,
                   sim_err *err)
{
    *out = NAN;
    if (!cJSON_GetObjectItemCaseSensitive(root, key))
        return 0;
    if (jcfg_num(root, "$", key, JCFG_REQUIRED_NUM, lo, hi, out, err) < 0)
        return -1;
    if (!(*out > lo))
        return sim_errf(err, "$.%s: expected a number > %g, got %.15g", key, lo, *out);
    return 0;
}

static int gpu_from_json(cJSON *root, const char *path, gpu_spec *g, sim_err *err)
{
    memset(g, 0, sizeof *g);
    const double req = JCFG_REQUIRED_NUM, inf = INFINITY, pos = DBL_MIN;
    int64_t sms;
    if (jcfg_check_keys(root, "$", gpu_keys, err) < 0 ||
        read_name_source(root, path, g->name, sizeof g->name, err) < 0 ||
        jcfg_num(root, "$", "bf16_flops", req, pos, inf, &g->bf16_flops, err) < 0 ||
        jcfg_num(root, "$", "fp8_flops", 0, 0, inf, &g->fp8_flops, err) < 0 ||
        jcfg_num(root, "$", "int8_ops", 0, 0, inf, &g->int8_ops, err) < 0 ||
        jcfg_num(root, "$", "hbm_bytes", req, pos, inf, &g->hbm_bytes, err) < 0 ||
        jcfg_num(root, "$", "hbm_bw_bytes_per_s", req, pos, inf,
                 &g->hbm_bw_bytes_per_s, err) < 0 ||
        /* 0 = no NVLink: collectives then go over PCIe. */
        jcfg_num(root, "$", "nvlink_bw_bytes_per_s", req, 0, inf,
                 &g->nvlink_bw_bytes_per_s, err) < 0 ||
        jcfg_num(root, "$", "pcie_bw_bytes_per_s", req, pos, inf,
                 &g->pcie_bw_bytes_per_s, err) < 0 ||
        jcfg_int(root, "$", "sm_count", JCFG_REQUIRED_INT, 1, 100000, &sms, err) < 0 ||
        jcfg_num(root, "$", "sm_clock_hz", req, 1e6, 1e11, &g->sm_clock_hz, err) < 0 ||
        jcfg_num(root, "$", "idle_w", req, 0, inf, &g->idle_w, err) < 0 ||
        jcfg_num(root, "$", "max_w", req, pos, inf, &g->max_w, err) < 0 ||
        jcfg_num(root, "$", "compute_w", req, pos, inf, &g->compute_w, err) < 0 ||
        jcfg_num(root, "$", "memory_w", req, pos, inf, &g->memory_w, err) < 0 ||
        jcfg_num(root, "$", "node_w_per_gpu", 0, 0, inf, &g->node_w_per_gpu, err) < 0 ||
        jcfg_num(root, "$", "collective_latency_ns", req, 0, 1e9,
                 &g->collective_latency_ns, err) < 0 ||
        jcfg_num(root, "$", "collective_rank_ns", 0, 0, 1e9, &g->collective_rank_ns,
                 err) < 0 ||
        jcfg_num(root, "$", "link_efficiency", req, pos, 1, &g->link_efficiency, err) < 0 ||
        opt_num(root, "gemm_efficiency", 0, 1, &g->gemm_efficiency, err) < 0 ||
        opt_num(root, "bw_efficiency", 0, 1, &g->bw_efficiency, err) < 0 ||
        opt_num(root, "kernel_floor_ns", -1e-300, 1e9, &g->kernel_floor_ns, err) < 0)
        return -1;
    g->sm_count = (int32_t)sms;
    /* the fallback's own unless the file overrides them */
    g->overrides = (isfinite(g->gemm_efficiency) ? GPU_OVR_GEMM_EFF : 0) |
                   (isfinite(g->bw_efficiency) ? GPU_OVR_BW_EFF : 0) |
                   (isfinite(g->kernel_floor_ns) ? GPU_OVR_FLOOR : 0);
    if (!(g->overrides & GPU_OVR_GEMM_EFF))
        g->gemm_efficiency = fb_fitted.gemm_compute_eff;
    if (!(g->overrides & GPU_OVR_BW_EFF))
        g->bw_efficiency = fb_fitted.gemm_memory_eff;
    if (!(g->overrides & GPU_OVR_FLOOR))
        g->kernel_floor_ns = fb_fitted.gemm_t0_cycles / g->sm_clock_hz * 1e9;
    if (jcfg_num(root, "$", "fp16_flops", g->bf16_flops, 0, inf, &g->fp16_flops, err) < 0)
        return -1;
    if (g->max_w < g->idle_w)
        return sim_errf(err, "$.max_w: expected a number >= idle_w (%.15g), got %.15g",
                        g->idle_w, g->max_w);
    const char *key[] = {"compute_w", "memory_w"};
    const double w[] = {g->compute_w, g->memory_w};
    for (int i = 0; i < 2; i++)
        if (w[i] < g->idle_w || w[i] > g->max_w)
            return sim_errf(err, "$.%s: expected a number in [idle_w, max_w] = [%.15g, "
                            "%.15g], got %.15g", key[i], g->idle_w, g->max_w, w[i]);
    return 0;
}

int gpu_spec_load_file(const char *path, gpu_spec *out, sim_err *err)
{
    cJSON *root;
    if (jcfg_load_file(path, &root, err) < 0)
        return -1;
    int rc = gpu_from_json(root, path, out, err);
    cJSON_Delete(root);
    return rc < 0 ? sim_err_prefix(err, "%s", path) : 0;
}

static int gpu_load_file_void(const char *path, void *out, sim_err *err)
{
    return gpu_spec_load_file(path, out, err);
}

int gpu_spec_load(const char *dir, const char *name, gpu_spec *out, sim_err *err)
{
    return load_named(dir, "gpu", "GPU", name, out, gpu_load_file_void, err);
}

int gpu_spec_resolve(const char *dir, const char *name_or_path, gpu_spec *out,
                     sim_err *err)
{
    return is_path(name_or_path) ? gpu_spec_load_file(name_or_path, out, err)
                                 : gpu_spec_load(dir, name_or_path, out, err);
}

/* ---- derived quantities ---------------------------------------------------- */

/* KV heads one GPU holds: its share, or one replica when tp exceeds them. */
static double kv_heads_per_gpu(const llm_model *m, int tp)
{
    return (double)((m->kv_heads + tp - 1) / tp);
}

/* Parameters on one GPU: of linear layers (stored in the weight dtype) and
 * of everything else (16 bits). */
typedef struct par_count {
    double linear, other;
} par_count;

static double norm_params(const llm_model *m, double width)
{
    return m->norm == LLM_NORM_LAYER ? 2 * width : width;
}

static void attention_params(const llm_model *m, int tp, par_count *c)
{
    const double h = m->hidden, d = m->head_dim, hq = m->heads / (double)tp;
    if (m->attention == LLM_ATTN_MLA) {
        const double dr = m->qk_rope_head_dim, dv = m->v_head_dim;
        const double ql = m->q_lora_rank, kl = m->kv_lora_rank;
        /* down-projections and their norms are replicated on every GPU */
        c->linear += ql ? h * ql + ql * hq * (d + dr) : h * hq * (d + dr);
        c->other += ql ? ql + kl : kl;
        c->linear += h * (kl + dr) + kl * hq * (d + dv) + hq * dv * h;
        return;
    }
    const double hkv = kv_heads_per_gpu(m, tp);
    c->linear += 2.0 * h * hq * d + 2.0 * h * hkv * d;
    if (m->bias != LLM_BIAS_NONE)
        c->other += (hq + 2 * hkv) * d;
    if (m->bias == LLM_BIAS_ALL)
        c->other += h;
}

/* A dense FFN of width f (whole model), one GPU's share. */
static void ffn_params(const llm_model *m, int tp, double f, par_count *c)
{
    const double h = m->hidden, ft = f / tp;
    c->linear += (m->gated_ffn ? 3 : 2) * h * ft;
    if (m->bias == LLM_BIAS_ALL)
        c->other += (m->gated_ffn ? 2 : 1) * ft + h;
}

/* One layer; MoE layers count `experts_used` routed experts (all of them
 * for storage, top-k for the active count). */
static void layer_params(const llm_model *m, int tp, bool moe, double experts_used,
                         par_count *c)
{
    attention_params(m, tp, c);
    if (moe) {
        c->other += (double)m->hidden * m->experts;   /* router, replicated */
        c->linear += (experts_used + m->shared_experts) * 3.0 * m->hidden *
                     m->expert_ffn / tp;
    } else {
        ffn_params(m, tp, m->ffn, c);
    }
    c->other += 2 * norm_params(m, m->hidden);
}

/* Embedding, LM head, learned positions and the final norm, on one GPU. */
static void outer_params(const llm_model *m, int tp, par_count *c)
{
    double rows = (double)((m->vocab + tp - 1) / tp);
    c->other += rows * m->hidden * (m->tied_embeddings ? 1 : 2) + norm_params(m, m->hidden);
    if (m->position == LLM_POS_LEARNED)   /* OPT's table has 2 extra rows */
        c->other += (m->max_context_tokens + 2.0) * m->hidden;
}

static par_count model_params(const llm_model *m, int tp, double experts_used)
{
    par_count all = {0}, dense = {0}, moe = {0};
    outer_params(m, tp, &all);
    int32_t nd = llm_dense_layers(m);
    layer_params(m, tp, false, 0, &dense);
    if (m->experts)
        layer_params(m, tp, true, experts_used, &moe);
    all.linear += nd * dense.linear + (m->layers - nd) * moe.linear;
    all.other += nd * dense.other + (m->layers - nd) * moe.other;
    return all;
}

double llm_params(const llm_model *m)
{
    par_count c = model_params(m, 1, m->experts);
    return c.linear + c.other;
}

double llm_params_active(const llm_model *m)
{
    par_count c = model_params(m, 1, m->experts_per_token);
    return c.linear + c.other;
}

/* Layers on the busiest pipeline stage: ceil(layers / pp). */
static int32_t stage_layers(const llm_model *m, const par_layout *par)
{
    return par->pp > 1 ? (m->layers + par->pp - 1) / par->pp : m->layers;
}

/* One GPU's parameters under a layout with pipeline stages or expert
 * parallelism: its stage's share of the layers (the busiest stage, with the
 * embedding and the LM head both counted: an upper bound), attention and
 * dense FFNs split by tp (replicated over dp), and under ep its slots of
 * whole routed experts, the shared experts split by tp. */
static par_count layout_params(const llm_model *m, const par_layout *par)
{
    const int tp = par->tp;
    par_count all = {0}, dense = {0}, moe = {0};
    outer_params(m, tp, &all);
    const int32_t nd = llm_dense_layers(m);
    layer_params(m, tp, false, 0, &dense);
    if (m->experts) {
        layer_params(m, tp, true, 0, &moe);   /* shared experts and the router */
        if (par->ep > 1)
            moe.linear += (double)par_expert_slots(par, m->experts) / par->ep * 3.0 *
                          m->hidden * m->expert_ffn;
        else
            moe.linear += (double)m->experts * 3.0 * m->hidden * m->expert_ffn / tp;
    }
    /* The stage's layers, dense ones first (the busiest stage is the first). */
    const int32_t sl = stage_layers(m, par);
    const int32_t sd = sl < nd ? sl : nd;
    all.linear += sd * dense.linear + (sl - sd) * moe.linear;
    all.other += sd * dense.other + (sl - sd) * moe.other;
    return all;
}

double llm_weight_bytes_per_gpu(const llm_model *m, const par_layout *par)
{
    SIM_ASSERT(par->tp >= 1);
    par_count c = par->pp > 1 || par->ep > 1
                      ? layout_params(m, par)
                      : model_params(m, par->tp,
                                     par->gpu_experts > 0 ? par->gpu_experts : m->experts);
    return c.linear * m->bytes_per_param + c.other * HALF_BYTES;
}

double llm_kv_bytes_per_token_per_gpu(const llm_model *m, const par_layout *par)
{
    int tp = par->tp;
    SIM_ASSERT(tp >= 1);
    /* A stage holds its layers' KV; a token's KV lives on one data-parallel
     * replica, so per GPU of the instance it counts 1 / dp on average. */
    const double layers = stage_layers(m, par), share = par->dp > 1 ? par->dp : 1;
    if (m->attention == LLM_ATTN_MLA)   /* one latent per layer, on every GPU */
        return layers * (m->kv_lora_rank + m->qk_rope_head_dim) * m->kv_bytes_per_elem /
               share;
    return 2.0 * layers * kv_heads_per_gpu(m, tp) * m->head_dim * m->kv_bytes_per_elem /
           share;
}

/* tp's checks; expert_ffn is not split by tp when experts_split is false
 * (expert parallelism: whole experts per GPU). */
static int check_tp(const llm_model *m, int tp, bool experts_split, sim_err *err)
{
    if (tp < 1 || tp > LLM_TP_MAX)
        return sim_errf(err, "tensor-parallel degree %d: expected an integer in "
                        "[1, %d] (one NVLink node)", tp, LLM_TP_MAX);
    if (m->heads % tp)
        return sim_errf(err, "tensor-parallel degree %d does not divide %s's %d "
                        "attention heads", tp, m->name, m->heads);
    if (m->kv_heads % tp && tp % m->kv_heads)
        return sim_errf(err, "tensor-parallel degree %d neither divides nor is a "
                        "multiple of %s's %d KV heads", tp, m->name, m->kv_heads);
    if (m->ffn % tp)
        return sim_errf(err, "tensor-parallel degree %d does not divide %s's FFN "
                        "size %d", tp, m->name, m->ffn);
    if (experts_split && m->expert_ffn % tp)
        return sim_errf(err, "tensor-parallel degree %d does not divide %s's expert "
                        "FFN size %d", tp, m->name, m->expert_ffn);
    return 0;
}

int llm_check_tp(const llm_model *m, int tp, sim_err *err)
{
    return check_tp(m, tp, true, err);
}
/* ---- MoE routing ----------------------------------------------------------- */

void llm_set_moe_skew(llm_model *m, double skew)
{
    m->moe_skew = skew;
    int E = m->experts;
    if (E == 0)
        return;
    SIM_ASSERT(E <= LLM_MAX_EXPERTS && m->experts_per_token >= 1);
    double q[LLM_MAX_EXPERTS], k = m->experts_per_token, z = 0;
    for (int i = 0; i < E; i++)
        z += pow(i + 1, -skew);
    for (int i = 0; i < E; i++)
        q[i] = k * pow(i + 1, -skew) / z;
    /* Water-filling: no expert is chosen with probability above 1; what a
     * capped expert cannot take goes to the uncapped ones, in proportion. */
    for (int round = 0; round < E; round++) {
        double excess = 0, free_mass = 0;
        for (int i = 0; i < E; i++) {
            if (q[i] > 1) {
                excess += q[i] - 1;
                q[i] = 1;
            } else if (q[i] < 1) {
                free_mass += q[i];
            }
        }
        if (excess <= 1e-12 || free_mass <= 0)
            break;
        for (int i = 0; i < E; i++)
            if (q[i] < 1)
                q[i] += excess * q[i] / free_mass;
    }
    for (int i = 0; i < E; i++)
        m->moe_log_miss[i] = q[i] >= 1 ? -INFINITY : log1p(-q[i]);
}

double llm_moe_distinct_experts(const llm_model *m, double tokens)
{
    if (m->experts == 0 || tokens <= 0)
        return 0;
    if (m->moe_skew == 0)   /* every expert alike: one term */
        return -m->experts * expm1(tokens * m->moe_log_miss[0]);
    double distinct = 0;
    for (int i = 0; i < m->experts; i++)
        distinct += -expm1(tokens * m->moe_log_miss[i]);
    return distinct;
}

int llm_check_layout(const llm_model *m, const par_layout *par, sim_err *err)
{
    const int32_t tp = par->tp, pp = par->pp, ep = par->ep, dp = par->dp;
    if (pp < 1 || pp > m->layers)
        return sim_errf(err, "pp=%d: expected pipeline stages in [1, %d] (%s's layers)", pp,
                        m->layers, m->name);
    if (par->micro_batches < 0 || par->micro_batches > 1024 ||
        (pp == 1 && par->micro_batches > 1))
        return sim_errf(err, "micro_batches=%d: expected 0 (= pp) or 1 to 1024, and 1 "
                        "without pipeline stages (pp=1)", par->micro_batches);
    if (dp < 1 || ep < 1)
        return sim_errf(err, "ep=%d dp=%d: expected integers >= 1", ep, dp);
    if (ep > 1 && !m->experts)
        return sim_errf(err, "ep=%d: %s has no experts; expert parallelism needs an MoE "
                        "model (ep must be 1)", ep, m->name);
    if (ep > 1 && ep != tp * dp)
        return sim_errf(err, "ep=%d: expected tp * dp = %d * %d = %d (the experts of a "
                        "stage spread over all its GPUs) or 1", ep, tp, dp, tp * dp);
    if (dp > 1 && ep == 1)
        return sim_errf(err, "dp=%d: data-parallel attention is modelled with expert "
                        "parallelism over its GPUs (ep = tp * dp = %d); for replicas of "
                        "a whole model use more instances", dp, tp * dp);
    if (par->redundant_experts < 0 || (par->redundant_experts > 0 && ep == 1))
        return sim_errf(err, "redundant_experts=%d: expected 0, or >= 0 with expert "
                        "parallelism (ep > 1)", par->redundant_experts);
    if (ep > 1 && par_expert_slots(par, m->experts) % ep)
        return sim_errf(err, "ep=%d does not divide %s's %d experts plus %d redundant "
                        "(%d expert slots per layer)", ep, m->name, m->experts,
                        par->redundant_experts, par_expert_slots(par, m->experts));
    if (ep > 1 && m->experts > LLM_MAX_EXPERTS)
        return sim_errf(err, "%s: at most %d experts under expert parallelism", m->name,
                        LLM_MAX_EXPERTS);
    if (par->gpu_experts < 0 || par->gpu_experts > m->experts ||
        (par->gpu_experts > 0 && (ep > 1 || pp > 1 || m->experts == 0)))
        return sim_errf(err, "gpu_experts=%d: expected 0 (every expert on the GPUs), or "
                        "1 to %d (%s's experts) with ep=1 and pp=1", par->gpu_experts,
                        m->experts, m->name);
    if (!(par->ep_link_bytes_per_s >= 0) || !(par->pp_link_bytes_per_s >= 0))
        return sim_errf(err, "link rates: expected >= 0 bytes/s");
    return check_tp(m, tp, ep == 1, err);
}
