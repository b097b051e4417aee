/* LLM and GPU descriptions: loading and the quantities derived from them
 * (see model.h, and models/README.md for the file schemas).
 *
 * Design. A model or GPU is one JSON file whose keys are exactly the fields
 * of llm_model / gpu_spec plus a required "source" (where the numbers come
 * from) and an optional "name" (which must equal the file's stem). Files are
 * read strictly through jsoncfg: unknown keys, wrong types and out-of-range
 * values are errors that name the file and the JSON path. Cross-field rules
 * (kv_heads divides heads; a model is either dense or all-MoE; max_w above
 * idle_w) are checked after the fields.
 *
 * Derived counts follow the Llama/Mixtral/Qwen3 layout: embedding, an LM head
 * unless tied, and per layer the q/k/v/o projections (q and o are
 * heads * head_dim wide, which need not equal hidden), a gated FFN (three
 * hidden x ffn matrices) or a router plus gated experts, and two RMSNorms;
 * one final RMSNorm. Biases and small per-head norms are left out.
 *
 * Tensor parallelism: everything with a head, FFN or vocabulary dimension is
 * split tp ways (the embedding and LM head by vocabulary rows, as vLLM's
 * VocabParallelEmbedding does); KV heads are replicated when tp exceeds
 * their count; the router and norms are replicated. Experts are split by
 * their intermediate dimension (tensor-parallel experts, not expert
 * parallelism). */
#include "models/model.h"

#include <dirent.h>
#include <math.h>
#include <errno.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/jsoncfg.h"


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

/* ---- LLM files ------------------------------------------------------------- */

static const char *const llm_keys[] = {
    "name", "source", "layers", "hidden", "heads", "kv_heads", "head_dim", "ffn",
    "vocab", "max_context_tokens", "bytes_per_param", "kv_bytes_per_elem",
    "tied_embeddings", "experts", "experts_per_token", "expert_ffn",
    "shared_experts", NULL,
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

static int llm_from_json(cJSON *root, const char *path, llm_model *m, sim_err *err)
{
    memset(m, 0, sizeof *m);
    const int64_t big = INT32_MAX;
    if (jcfg_check_keys(root, "$", llm_keys, err) < 0 ||
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
        get_i32(root, "bytes_per_param", 2, 1, 8, &m->bytes_per_param, err) < 0 ||
        get_i32(root, "kv_bytes_per_elem", 2, 1, 8, &m->kv_bytes_per_elem, err) < 0 ||
        jcfg_bool(root, "$", "tied_embeddings", 0, &m->tied_embeddings, err) < 0 ||
        get_i32(root, "experts", 0, 0, LLM_MAX_EXPERTS, &m->experts, err) < 0 ||
        get_i32(root, "experts_per_token", 0, 0, 4096, &m->experts_per_token, err) < 0 ||
        get_i32(root, "expert_ffn", 0, 0, 1 << 22, &m->expert_ffn, err) < 0 ||
        get_i32(root, "shared_experts", 0, 0, 64, &m->shared_experts, err) < 0)
        return -1;

    if (m->heads % m->kv_heads)
        return sim_errf(err, "$.kv_heads: expected a divisor of heads (%d), got %d",
                        m->heads, m->kv_heads);
    if (m->experts == 0) {
        if (m->ffn == 0)
            return sim_errf(err, "$.ffn: a dense model (experts 0) needs ffn >= 1");
        if (m->experts_per_token || m->expert_ffn || m->shared_experts)
            return sim_errf(err, "$.experts: experts_per_token, expert_ffn and "
                            "shared_experts need experts >= 2");
    } else {
        if (m->experts < 2)
            return sim_errf(err, "$.experts: expected 0 (dense) or an integer >= 2, "
                            "got %d", m->experts);
        if (m->experts_per_token < 1 || m->experts_per_token > m->experts)
            return sim_errf(err, "$.experts_per_token: expected an integer in "
                            "[1, %d] (experts), got %d", m->experts,
                            m->experts_per_token);
        if (m->expert_ffn < 1)
            return sim_errf(err, "$.expert_ffn: an MoE model needs expert_ffn >= 1");
        /* Every layer is either dense or MoE; a shared expert goes in
         * shared_experts, not in ffn. */
        if (m->ffn != 0)
            return sim_errf(err, "$.ffn: expected 0 for an MoE model (every layer "
                            "is MoE; put a shared expert in shared_experts), got %d",
                            m->ffn);
    }
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

/* ---- GPU files ------------------------------------------------------------- */

static const char *const gpu_keys[] = {
    "name", "source", "bf16_flops", "hbm_bytes", "hbm_bw_bytes_per_s",
    "nvlink_bw_bytes_per_s", "pcie_bw_bytes_per_s", "idle_w", "max_w",
    "gemm_efficiency", "bw_efficiency", "link_efficiency", "kernel_floor_ns",
    "collective_latency_ns", NULL,
};

static int gpu_from_json(cJSON *root, const char *path, gpu_spec *g, sim_err *err)
{
    memset(g, 0, sizeof *g);
    const double req = JCFG_REQUIRED_NUM, inf = INFINITY, pos = DBL_MIN;
    if (jcfg_check_keys(root, "$", gpu_keys, err) < 0 ||
        read_name_source(root, path, g->name, sizeof g->name, err) < 0 ||
        jcfg_num(root, "$", "bf16_flops", req, pos, inf, &g->bf16_flops, err) < 0 ||
        jcfg_num(root, "$", "hbm_bytes", req, pos, inf, &g->hbm_bytes, err) < 0 ||
        jcfg_num(root, "$", "hbm_bw_bytes_per_s", req, pos, inf,
                 &g->hbm_bw_bytes_per_s, err) < 0 ||
        /* 0 = no NVLink: collectives then go over PCIe. */
        jcfg_num(root, "$", "nvlink_bw_bytes_per_s", req, 0, inf,
                 &g->nvlink_bw_bytes_per_s, err) < 0 ||
        jcfg_num(root, "$", "pcie_bw_bytes_per_s", req, pos, inf,
                 &g->pcie_bw_bytes_per_s, err) < 0 ||
        jcfg_num(root, "$", "idle_w", req, 0, inf, &g->idle_w, err) < 0 ||
        jcfg_num(root, "$", "max_w", req, pos, inf, &g->max_w, err) < 0 ||
        jcfg_num(root, "$", "gemm_efficiency", req, pos, 1, &g->gemm_efficiency,
                 err) < 0 ||
        jcfg_num(root, "$", "bw_efficiency", req, pos, 1, &g->bw_efficiency, err) < 0 ||
        jcfg_num(root, "$", "link_efficiency", req, pos, 1, &g->link_efficiency,
                 err) < 0 ||
        jcfg_num(root, "$", "kernel_floor_ns", req, 0, 1e9, &g->kernel_floor_ns,
                 err) < 0 ||
        jcfg_num(root, "$", "collective_latency_ns", req, 0, 1e9,
                 &g->collective_latency_ns, err) < 0)
        return -1;
    if (g->max_w < g->idle_w)
        return sim_errf(err, "$.max_w: expected a number >= idle_w (%.15g), got %.15g",
                        g->idle_w, g->max_w);
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

/* ---- derived quantities ---------------------------------------------------- */

/* KV heads one GPU holds: its share, or one replica when tp exceeds them. */
static double kv_heads_per_gpu(const llm_model *m, int tp)
{
    return (double)((m->kv_heads + tp - 1) / tp);
}

/* Parameters of one layer on one GPU at tp, counting `experts_used` routed
 * experts (all of them for storage, top-k for the active count). */
static double layer_params(const llm_model *m, int tp, double experts_used)
{
    double h = m->hidden, d = m->head_dim;
    double q_o = 2.0 * h * (m->heads / (double)tp) * d;
    double k_v = 2.0 * h * kv_heads_per_gpu(m, tp) * d;
    double ffn = 3.0 * h * m->ffn / tp;
    double moe = 0;
    if (m->experts) {
        double expert = 3.0 * h * m->expert_ffn / tp;
        moe = h * m->experts + (experts_used + m->shared_experts) * expert;
    }
    return q_o + k_v + ffn + moe + 2.0 * h;
}

/* Embedding plus LM head plus final norm, on one GPU at tp. */
static double outer_params(const llm_model *m, int tp)
{
    double rows = (double)((m->vocab + tp - 1) / tp);
    double table = rows * m->hidden;
    return table * (m->tied_embeddings ? 1 : 2) + m->hidden;
}

double llm_params(const llm_model *m)
{
    return outer_params(m, 1) + m->layers * layer_params(m, 1, m->experts);
}

double llm_params_active(const llm_model *m)
{
    return outer_params(m, 1) + m->layers * layer_params(m, 1, m->experts_per_token);
}

double llm_weight_bytes_per_gpu(const llm_model *m, const par_layout *par)
{
    int tp = par->tp;
    SIM_ASSERT(tp >= 1);
    double params = outer_params(m, tp) + m->layers * layer_params(m, tp, m->experts);
    return params * m->bytes_per_param;
}

double llm_kv_bytes_per_token_per_gpu(const llm_model *m, const par_layout *par)
{
    int tp = par->tp;
    SIM_ASSERT(tp >= 1);
    return 2.0 * m->layers * kv_heads_per_gpu(m, tp) * m->head_dim *
           m->kv_bytes_per_elem;
}

int llm_check_tp(const llm_model *m, int tp, sim_err *err)
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
    if (m->expert_ffn % tp)
        return sim_errf(err, "tensor-parallel degree %d does not divide %s's expert "
                        "FFN size %d", tp, m->name, m->expert_ffn);
    return 0;
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
    if (par->pp != 1 || par->ep != 1 || par->dp != 1)
        return sim_errf(err, "parallel layout pp=%d ep=%d dp=%d: only tensor parallelism "
                        "is modelled so far (pp, ep and dp must be 1)", par->pp, par->ep,
                        par->dp);
    return llm_check_tp(m, par->tp, err);
}
