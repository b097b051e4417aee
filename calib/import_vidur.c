/* Importing Vidur's measured profiles into servesim cost tables, and fitting
 * the fallback model on tables (see import_vidur.h; calib/README.md,
 * "Imported tables").
 *
 * Design. Vidur (Agrawal et al., MLSys 2024) profiled every non-attention
 * operator of one decoder layer per token count and TP degree (mlp.csv),
 * attention for Llama-2-70B shapes on an A100 (attention.csv) and NCCL
 * collectives (network/). The importer maps each measured operator to the
 * servesim operator it is, by building the servesim model from the CSV's
 * own columns and decomposing a batch of that many tokens with
 * ops_decompose, then keying the op with ctab_key_of_op (collectives:
 * ctab_key_of_collective): the table's entries, FLOPs and bytes are exactly
 * what the simulator looks up and counts. Samples of one entry (several
 * models share a GEMM shape; Vidur repeats some rows) are merged by their
 * median at each grid point; the grid keeps Vidur's points on a fixed
 * roughly log-spaced list (47 token counts from 1 to 32768), so that
 * leave-one-out has neighbours on both sides and the off-grid measurements
 * check interpolation. Mapping choices (also in the table's provenance):
 *   - a servesim norm is Vidur's RMSNorm plus its residual add (servesim
 *     fuses them); the mean of the two norms of a layer plus `add`;
 *   - attention is the kernel plus Vidur's input and output reshapes (the
 *     KV-cache write); decode context is Vidur's kv_cache_size + 1;
 *   - NCCL all-reduce: single-node rows (workers = devices per node) of the
 *     DGX setups, binned by half octaves of message size, median per bin;
 *   - phi-2 (parallel attention and MLP, LayerNorm, GELU) gives GEMM, RoPE
 *     and embedding entries only.
 * Vidur ran in fp16; servesim's tables are 16-bit, which bf16 runs match.
 *
 * The fit (fit_*) reads tables, turns every measured point of the GEMM,
 * elementwise and attention families into an operator with the shape the
 * fallback model needs (tokens, n, k from the entry's params), and runs
 * Nelder-Mead on the mean |log(predicted / measured)| per class of
 * constants. Only operator-level measurements go in: this file reads
 * nothing else. */
#include "calib/import_vidur.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "models/cost_key.h"
#include "models/cost_table.h"
#include "sim/jsoncfg.h"

#define VIDUR_COMMIT "7d47513363ec447a741ac5e47241580b47724fbf"
#define VIDUR_DATE "2024-11-19"

/* Vidur's GPU folders and the servesim GPU files they were measured on. */
static const struct {
    const char *dir, *gpu, *device, *network;
} gpu_map[] = {
    {"a100", "A100-SXM-80GB", "NVIDIA A100-SXM4-80GB (Vidur's profiling machine)", "a100_dgx"},
    {"h100", "H100-SXM-80GB", "NVIDIA H100 80GB HBM3 (Vidur's profiling machine)", "h100_dgx"},
    {"a40", "A40-48GB", "NVIDIA A40 (Vidur's profiling machine)", NULL},
};
#define N_GPUS (int)(sizeof gpu_map / sizeof *gpu_map)

/* The token grid kept from Vidur's (1, 2, 4, 8, 16, multiples of 8, ...). */
static const double grid_m[] = {
    1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    384, 448, 512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096,
    5120, 6144, 7168, 8192, 10240, 12288, 14336, 16384, 20480, 24576, 28672, 32768};
static const double grid_q[] = {64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048,
                                3072, 4096};
static const double grid_prefix[] = {0, 256, 512, 1024, 1536, 2048, 2560, 3072, 3584};
static const double grid_batch[] = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128};
static const double grid_ctx[] = {33, 65, 129, 257, 385, 513, 769, 1025, 1537, 2049,
                                  3073, 4033};
#define LEN(a) (int)(sizeof a / sizeof *a)

/* ---- CSV ---------------------------------------------------------------------- */

typedef struct csv {
    char *text;
    char **cell;      /* rows x cols */
    int rows, cols;   /* data rows (the header is row -1) */
    char **head;
} csv;

static void csv_free(csv *c)
{
    free(c->text);
    free(c->cell);
    free(c->head);
    memset(c, 0, sizeof *c);
}

/* Splits in place; Vidur's files have no quoted commas. */
static int csv_read(const char *path, csv *c, sim_err *err)
{
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "rb");
    if (!f)
        return sim_errf(err, "%s: cannot open", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    c->text = sim_xmalloc((size_t)len + 1);
    size_t got = fread(c->text, 1, (size_t)len, f);
    fclose(f);
    c->text[got] = 0;
    size_t cap = 0, n = 0;
    int line = 0, cols = 0;
    for (char *p = c->text; p && *p;) {
        char *eol = strchr(p, '\n');
        if (eol)
            *eol = 0;
        size_t len = strlen(p);
        if (len && p[len - 1] == '\r')
            p[--len] = 0;
        if (len) {   /* blank lines are skipped */
            int k = 0;
            for (char *q = p; q; k++) {
                sim_grow((void **)&c->cell, &cap, n + 1, sizeof *c->cell);
                c->cell[n++] = q;
                char *comma = strchr(q, ',');
                if (comma)
                    *comma++ = 0;
                q = comma;
            }
            if (line == 0)
                cols = k;
            else if (k != cols) {
                sim_errf(err, "%s: data row %d: expected %d columns, got %d", path, line,
                         cols, k);
                csv_free(c);
                return -1;
            }
            line++;
        }
        p = eol ? eol + 1 : NULL;
    }
    if (line < 2) {
        csv_free(c);
        return sim_errf(err, "%s: no data rows", path);
    }
    c->cols = cols;
    c->rows = line - 1;
    c->head = sim_xmalloc((size_t)cols * sizeof *c->head);
    memcpy(c->head, c->cell, (size_t)cols * sizeof *c->head);
    memmove(c->cell, c->cell + cols, (size_t)c->rows * cols * sizeof *c->cell);
    return 0;
}

static int csv_col(const csv *c, const char *name)
{
    for (int j = 0; j < c->cols; j++)
        if (!strcmp(c->head[j], name))
            return j;
    return -1;
}

static const char *csv_at(const csv *c, int row, int col)
{
    return col < 0 ? "" : c->cell[(size_t)row * c->cols + col];
}

/* A number, or NAN for an empty cell. */
static double csv_num(const csv *c, int row, int col)
{
    const char *s = csv_at(c, row, col);
    if (!*s)
        return NAN;
    char *end;
    double v = strtod(s, &end);
    return *end ? NAN : v;
}

/* ---- entries ------------------------------------------------------------------- */

typedef struct sample {
    double x0, x1, t_ns;
} sample;

typedef struct entry {
    ctab_key key;
    op_kind kind;
    llm_model model;     /* one model using it, at tp: rebuilds its ops */
    int tp;
    char used_by[600];
    sample *s;
    size_t n, cap;
} entry;

typedef struct store {
    entry *e;
    size_t n, cap;
} store;

static void store_free(store *st)
{
    for (size_t i = 0; i < st->n; i++)
        free(st->e[i].s);
    free(st->e);
    memset(st, 0, sizeof *st);
}

static entry *store_get(store *st, const ctab_key *key, op_kind kind, const llm_model *m,
                        int tp)
{
    for (size_t i = 0; i < st->n; i++)
        if (ctab_key_same_entry(&st->e[i].key, key))
            return &st->e[i];
    sim_grow((void **)&st->e, &st->cap, st->n + 1, sizeof *st->e);
    entry *e = &st->e[st->n++];
    memset(e, 0, sizeof *e);
    e->key = *key;
    e->kind = kind;
    e->model = *m;
    e->tp = tp;
    return e;
}

static void entry_add(entry *e, const char *user, double x0, double x1, double t_ns)
{
    if (!isfinite(t_ns) || t_ns <= 0)
        return;
    sim_grow((void **)&e->s, &e->cap, e->n + 1, sizeof *e->s);
    e->s[e->n++] = (sample){x0, x1, t_ns};
    if (!strstr(e->used_by, user) && strlen(e->used_by) + strlen(user) + 2 < sizeof e->used_by)
        snprintf(e->used_by + strlen(e->used_by), sizeof e->used_by - strlen(e->used_by),
                 "%s%s", e->used_by[0] ? "," : "", user);
}

/* ---- mlp.csv ------------------------------------------------------------------- */

/* The servesim model of Vidur's columns (layers and context are irrelevant
 * to one layer's operators). */
static void vidur_model(const char *name, const csv *c, int row, llm_model *m)
{
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    m->layers = 1;
    m->hidden = (int32_t)csv_num(c, row, csv_col(c, "n_embd"));
    m->heads = (int32_t)csv_num(c, row, csv_col(c, "n_head"));
    m->kv_heads = (int32_t)csv_num(c, row, csv_col(c, "n_kv_head"));
    m->head_dim = m->hidden / m->heads;
    m->ffn = (int32_t)csv_num(c, row, csv_col(c, "n_expanded_embd"));
    m->vocab = (int32_t)csv_num(c, row, csv_col(c, "vocab_size"));
    m->max_context_tokens = 4096;
    m->gated_ffn = !strcmp(csv_at(c, row, csv_col(c, "use_gated_mlp")), "True");
    m->bias = strstr(name, "Qwen") ? LLM_BIAS_QKV : strstr(name, "phi") ? LLM_BIAS_ALL
                                                                        : LLM_BIAS_NONE;
    if (!m->gated_ffn) {
        m->norm = LLM_NORM_LAYER;
        m->activation = LLM_ACT_GELU;
    }
    llm_precision p = {LLM_FP16, LLM_FP16, LLM_FP16};
    llm_set_precision(m, &p, NULL);
    llm_set_moe_skew(m, 0);
}

/* Median of Vidur's time column (ms) over the rows of one (tp, tokens). */
static double col_ms(const csv *c, const int *rows, int n, const char *op)
{
    char name[128];
    snprintf(name, sizeof name, "time_stats.%s.median", op);
    int col = csv_col(c, name);
    if (col < 0)
        return NAN;
    double v[8];
    int k = 0;
    for (int i = 0; i < n && k < 8; i++) {
        double x = csv_num(c, rows[i], col);
        if (isfinite(x))
            v[k++] = x;
    }
    if (!k)
        return NAN;
    for (int i = 1; i < k; i++)   /* insertion sort */
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return k % 2 ? v[k / 2] : 0.5 * (v[k / 2 - 1] + v[k / 2]);
}

/* The time (ns) Vidur measured for the servesim op of `kind`. */
static double vidur_op_ns(const csv *c, const int *rows, int n, op_kind kind, bool gated)
{
    switch (kind) {
    case OP_EMBED:
        return col_ms(c, rows, n, "emb") * 1e6;
    case OP_NORM: {
        double a = col_ms(c, rows, n, "input_layernorm");
        double b = col_ms(c, rows, n, "post_attention_layernorm");
        return (0.5 * (a + b) + col_ms(c, rows, n, "add")) * 1e6;   /* NAN without b */
    }
    case OP_GEMM_QKV:
        return col_ms(c, rows, n, "attn_pre_proj") * 1e6;
    case OP_ROPE:
        return col_ms(c, rows, n, "attn_rope") * 1e6;
    case OP_GEMM_ATTN_OUT:
        return col_ms(c, rows, n, "attn_post_proj") * 1e6;
    case OP_GEMM_FFN_UP:
        return col_ms(c, rows, n, "mlp_up_proj") * 1e6;
    case OP_ACT:
        return gated ? col_ms(c, rows, n, "mlp_act") * 1e6 : NAN;
    case OP_GEMM_FFN_DOWN:
        return col_ms(c, rows, n, "mlp_down_proj") * 1e6;
    default:
        return NAN;
    }
}

static int cmp_int2(const void *a, const void *b)
{
    const int *x = a, *y = b;
    return x[0] != y[0] ? (x[0] > y[0]) - (x[0] < y[0]) : (x[1] > y[1]) - (x[1] < y[1]);
}

static int import_mlp(const char *path, const char *model_name, store *st, sim_err *err)
{
    csv c;
    if (csv_read(path, &c, err) < 0)
        return -1;
    int ctok = csv_col(&c, "num_tokens"), ctp = csv_col(&c, "num_tensor_parallel_workers");
    if (ctok < 0 || ctp < 0 || csv_col(&c, "n_embd") < 0) {
        csv_free(&c);
        return sim_errf(err, "%s: expected Vidur's mlp.csv columns (num_tokens, "
                        "num_tensor_parallel_workers, n_embd, ...)", path);
    }
    /* rows sorted by (tp, tokens): each group is one measured batch */
    int *key = sim_xmalloc((size_t)c.rows * 3 * sizeof *key);
    for (int r = 0; r < c.rows; r++) {
        key[3 * r] = (int)csv_num(&c, r, ctp);
        key[3 * r + 1] = (int)csv_num(&c, r, ctok);
        key[3 * r + 2] = r;
    }
    qsort(key, (size_t)c.rows, 3 * sizeof *key, cmp_int2);
    int rows[8];
    for (int r = 0; r < c.rows;) {
        int tp = key[3 * r], tokens = key[3 * r + 1], n = 0;
        while (r < c.rows && key[3 * r] == tp && key[3 * r + 1] == tokens) {
            if (n < 8)
                rows[n++] = key[3 * r + 2];
            r++;
        }
        if (tp < 1 || tokens < 1)
            continue;
        llm_model m;
        vidur_model(model_name, &c, rows[0], &m);
        if (m.hidden < 1 || m.heads < 1 || m.kv_heads < 1 || m.heads % tp)
            continue;
        batch_shape b = {.n_decode = tokens};
        op_list ops;
        ops_decompose(&m, &PAR_TP(tp), &b, &ops);
        char user[96];
        snprintf(user, sizeof user, "%s@tp%d", model_name, tp);
        bool norm_done = false;
        for (int i = 0; i < ops.n; i++) {
            const op_desc *op = &ops.op[i];
            ctab_key k;
            if ((op->kind == OP_NORM && norm_done) || ctab_key_of_op(&m, tp, op, &k) < 0)
                continue;
            norm_done |= op->kind == OP_NORM;
            double ns = vidur_op_ns(&c, rows, n, op->kind, m.gated_ffn);
            if (isfinite(ns))
                entry_add(store_get(st, &k, op->kind, &m, tp), user, k.x[0], 0, ns);
        }
    }
    free(key);
    csv_free(&c);
    return 0;
}

/* ---- attention.csv ------------------------------------------------------------------ */

static int import_attention(const char *path, const char *model_name, store *st,
                            sim_err *err)
{
    csv c;
    if (csv_read(path, &c, err) < 0)
        return -1;
    int cq = csv_col(&c, "n_q_head"), ckv = csv_col(&c, "n_kv_head"),
        ce = csv_col(&c, "n_embd"), ctp = csv_col(&c, "num_tensor_parallel_workers"),
        cb = csv_col(&c, "batch_size"), cchunk = csv_col(&c, "prefill_chunk_size"),
        ccache = csv_col(&c, "kv_cache_size"), cpre = csv_col(&c, "is_prefill");
    if (cq < 0 || ckv < 0 || ce < 0 || ctp < 0 || cb < 0 || cchunk < 0 || ccache < 0 ||
        cpre < 0) {
        csv_free(&c);
        return sim_errf(err, "%s: expected Vidur's attention.csv columns (n_q_head, "
                        "n_kv_head, batch_size, prefill_chunk_size, kv_cache_size, "
                        "is_prefill, ...)", path);
    }
    for (int r = 0; r < c.rows; r++) {
        llm_model m;
        memset(&m, 0, sizeof m);
        snprintf(m.name, sizeof m.name, "%s", model_name);
        m.layers = 1;
        m.hidden = (int32_t)csv_num(&c, r, ce);
        m.heads = (int32_t)csv_num(&c, r, cq);
        m.kv_heads = (int32_t)csv_num(&c, r, ckv);
        m.head_dim = m.heads > 0 ? m.hidden / m.heads : 0;
        m.ffn = 1;
        m.vocab = 1;
        m.max_context_tokens = 1 << 20;
        m.gated_ffn = true;
        llm_precision p = {LLM_FP16, LLM_FP16, LLM_FP16};
        llm_set_precision(&m, &p, NULL);
        int tp = (int)csv_num(&c, r, ctp);
        if (tp < 1 || m.heads < 1 || m.kv_heads < 1 || m.heads % tp)
            continue;
        bool prefill = !strcmp(csv_at(&c, r, cpre), "True");
        double batch = csv_num(&c, r, cb), chunk = csv_num(&c, r, cchunk),
               cache = csv_num(&c, r, ccache);
        double ms = prefill ? csv_num(&c, r, csv_col(&c, "time_stats.attn_prefill.median"))
                            : csv_num(&c, r, csv_col(&c, "time_stats.attn_decode.median"));
        double in = csv_num(&c, r, csv_col(&c, "time_stats.attn_input_reshape.median"));
        double out = csv_num(&c, r, csv_col(&c, "time_stats.attn_output_reshape.median"));
        ms += (isfinite(in) ? in : 0) + (isfinite(out) ? out : 0);
        batch_seq chunk_seq = {.q_tokens = (int32_t)chunk, .ctx_tokens = (int32_t)cache};
        batch_shape b = prefill ? (batch_shape){.prefill = &chunk_seq, .n_prefill = 1}
                                : (batch_shape){.n_decode = (int32_t)batch,
                                                .decode_ctx_sum = (int64_t)(batch * cache)};
        if ((prefill && (batch != 1 || chunk < 1)) || (!prefill && (batch < 1 || cache < 1)))
            continue;
        op_list ops;
        ops_decompose(&m, &PAR_TP(tp), &b, &ops);
        op_kind want = prefill ? OP_ATTN_PREFILL : OP_ATTN_DECODE;
        for (int i = 0; i < ops.n; i++) {
            ctab_key k;
            if (ops.op[i].kind != want || ctab_key_of_op(&m, tp, &ops.op[i], &k) < 0)
                continue;
            char user[96];
            snprintf(user, sizeof user, "%s@tp%d", model_name, tp);
            entry_add(store_get(st, &k, want, &m, tp), user, k.x[0], k.x[1], ms * 1e6);
        }
    }
    csv_free(&c);
    return 0;
}

/* ---- network: all-reduce ---------------------------------------------------------- */

static int import_allreduce(const char *path, store *st, sim_err *err)
{
    csv c;
    if (csv_read(path, &c, err) < 0)
        return -1;
    int cw = csv_col(&c, "num_workers"), cd = csv_col(&c, "devices_per_node"),
        cs = csv_col(&c, "size"), ct = csv_col(&c, "time_stats.all_reduce.median");
    if (cw < 0 || cd < 0 || cs < 0 || ct < 0) {
        csv_free(&c);
        return sim_errf(err, "%s: expected Vidur's all_reduce.csv columns (num_workers, "
                        "devices_per_node, size, time_stats.all_reduce.median)", path);
    }
    llm_model none;
    memset(&none, 0, sizeof none);
    for (int r = 0; r < c.rows; r++) {
        int ranks = (int)csv_num(&c, r, cw);
        double size = csv_num(&c, r, cs), ms = csv_num(&c, r, ct);
        /* one node only: servesim's TP group sits in one NVLink domain */
        if (ranks < 2 || ranks > LLM_TP_MAX || ranks != (int)csv_num(&c, r, cd) ||
            !(size > 0))
            continue;
        ctab_key k = {.family = CTAB_ALLREDUCE};
        k.p[0] = ranks;
        double bin = pow(2.0, round(2 * log2(size)) / 2);   /* half octaves */
        char user[32];
        snprintf(user, sizeof user, "nccl@%d", ranks);
        entry_add(store_get(st, &k, OP_ALLREDUCE, &none, ranks), user, bin, 0, ms * 1e6);
    }
    csv_free(&c);
    return 0;
}

/* ---- tables ---------------------------------------------------------------------------- */

/* The grid of one axis: the values of `list` some sample has (allreduce:
 * every bin measured). */
static int axis_of(const entry *e, int axis, double *out)
{
    const double *list = grid_m;
    int n = LEN(grid_m);
    if (e->key.family == CTAB_ATTN_PREFILL) {
        list = axis ? grid_prefix : grid_q;
        n = axis ? LEN(grid_prefix) : LEN(grid_q);
    } else if (e->key.family == CTAB_ATTN_DECODE) {
        list = axis ? grid_ctx : grid_batch;
        n = axis ? LEN(grid_ctx) : LEN(grid_batch);
    }
    int k = 0;
    if (e->key.family == CTAB_ALLREDUCE) {
        for (size_t i = 0; i < e->n; i++) {
            int seen = 0;
            for (int j = 0; j < k; j++)
                seen |= out[j] == e->s[i].x0;
            if (!seen && k < 512)
                out[k++] = e->s[i].x0;
        }
        for (int i = 1; i < k; i++)
            for (int j = i; j > 0 && out[j] < out[j - 1]; j--) {
                double t = out[j];
                out[j] = out[j - 1];
                out[j - 1] = t;
            }
        return k;
    }
    for (int j = 0; j < n; j++)
        for (size_t i = 0; i < e->n; i++)
            if ((axis ? e->s[i].x1 : e->s[i].x0) == list[j]) {
                out[k++] = list[j];
                break;
            }
    return k;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of the samples at (x0, x1); NAN if none. */
static double median_at(const entry *e, double x0, double x1, double *buf)
{
    int k = 0;
    for (size_t i = 0; i < e->n; i++)
        if (e->s[i].x0 == x0 && e->s[i].x1 == x1)
            buf[k++] = e->s[i].t_ns;
    if (!k)
        return NAN;
    qsort(buf, (size_t)k, sizeof *buf, cmp_double);
    return k % 2 ? buf[k / 2] : 0.5 * (buf[k / 2 - 1] + buf[k / 2]);
}

/* The FLOPs and bytes servesim counts for the entry's op at a point. */
static void work_at(const entry *e, double x0, double x1, double *flops, double *bytes)
{
    *flops = *bytes = 0;
    if (e->key.family == CTAB_ALLREDUCE) {
        *bytes = 2.0 * (e->tp - 1) / e->tp * x0;   /* ring: link bytes per GPU */
        return;
    }
    batch_seq chunk = {.q_tokens = (int32_t)x0, .ctx_tokens = (int32_t)x1};
    batch_shape b = {.n_decode = (int32_t)x0};
    if (e->key.family == CTAB_ATTN_PREFILL)
        b = (batch_shape){.prefill = &chunk, .n_prefill = 1};
    else if (e->key.family == CTAB_ATTN_DECODE)
        b = (batch_shape){.n_decode = (int32_t)x0, .decode_ctx_sum = (int64_t)(x0 * (x1 - 1))};
    op_list ops;
    ops_decompose(&e->model, &PAR_TP(e->tp), &b, &ops);
    for (int i = 0; i < ops.n; i++) {
        ctab_key k;
        if (ops.op[i].kind == e->kind && ctab_key_of_op(&e->model, e->tp, &ops.op[i], &k) == 0 &&
            ctab_key_same_entry(&k, &e->key)) {
            *flops = ops.op[i].flops;
            *bytes = ops.op[i].bytes;
            return;
        }
    }
    SIM_ASSERT(!"an entry's op is missing from its own decomposition");
}

static cJSON *num_array(const double *v, int n, int allow_null)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(a, allow_null && !isfinite(v[i]) ? cJSON_CreateNull()
                                                               : cJSON_CreateNumber(v[i]));
    return a;
}

/* Rounds to 4 significant digits (the profiles have 1 us resolution). */
static double sig4(double x)
{
    if (!isfinite(x) || x == 0)
        return x;
    double e = pow(10, floor(log10(fabs(x))) - 3);
    return round(x / e) * e;
}

/* One entry as JSON; updates the achieved ceilings. NULL if it has no
 * measured point on its grid. */
static cJSON *entry_json(const entry *e, double *ceil_flops, double *ceil_bw)
{
    const ctab_family_info *fi = ctab_family_get(e->key.family);
    double ax[2][512];
    int n[2] = {1, 1};
    ax[1][0] = 0;
    for (int a = 0; a < fi->n_axes; a++)
        n[a] = axis_of(e, a, ax[a]);
    if (!n[0] || !n[1])
        return NULL;
    int np = n[0] * n[1], measured = 0;
    double *t = sim_xmalloc((size_t)np * sizeof *t), *fl = sim_xmalloc((size_t)np * sizeof *fl),
           *by = sim_xmalloc((size_t)np * sizeof *by),
           *buf = sim_xmalloc((e->n + 1) * sizeof *buf);
    for (int i = 0; i < n[0]; i++)
        for (int j = 0; j < n[1]; j++) {
            int k = i * n[1] + j;
            t[k] = sig4(median_at(e, ax[0][i], fi->n_axes > 1 ? ax[1][j] : 0, buf));
            work_at(e, ax[0][i], ax[1][j], &fl[k], &by[k]);
            if (!isfinite(t[k]))
                continue;
            measured++;
            if (e->key.family == CTAB_GEMM && fl[k] / t[k] * 1e9 > *ceil_flops)
                *ceil_flops = fl[k] / t[k] * 1e9;
            if (e->key.family != CTAB_ALLREDUCE && by[k] / t[k] * 1e9 > *ceil_bw)
                *ceil_bw = by[k] / t[k] * 1e9;
        }
    cJSON *je = NULL;
    if (measured) {
        je = cJSON_CreateObject();
        cJSON *params = cJSON_AddObjectToObject(je, "params");
        for (int j = 0; j < fi->n_params; j++)
            cJSON_AddNumberToObject(params, fi->param[j], (double)e->key.p[j]);
        cJSON_AddStringToObject(je, "used_by", e->used_by);
        cJSON *axes = cJSON_AddObjectToObject(je, "axes");
        for (int a = 0; a < fi->n_axes; a++)
            cJSON_AddItemToObject(axes, fi->axis[a], num_array(ax[a], n[a], 0));
        cJSON_AddItemToObject(je, "flops", num_array(fl, np, 0));
        cJSON_AddItemToObject(je, "bytes", num_array(by, np, 0));
        cJSON *lat = cJSON_AddObjectToObject(je, "latency_ns");
        cJSON_AddItemToObject(lat, "median", num_array(t, np, 1));
    }
    free(t);
    free(fl);
    free(by);
    free(buf);
    return je;
}

static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->key.family != y->key.family)
        return (x->key.family > y->key.family) - (x->key.family < y->key.family);
    for (int j = 0; j < CTAB_MAX_PARAMS; j++)
        if (x->key.p[j] != y->key.p[j])
            return (x->key.p[j] > y->key.p[j]) - (x->key.p[j] < y->key.p[j]);
    return 0;
}

/* The whole table of one GPU as JSON text (caller frees), from its store. */
static char *table_text(store *st, int gi, const char *files)
{
    qsort(st->e, st->n, sizeof *st->e, cmp_entry);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "schema", "servesim-cost-table");
    cJSON_AddNumberToObject(root, "schema_version", 1);
    cJSON *gpu = cJSON_AddObjectToObject(root, "gpu");
    cJSON_AddStringToObject(gpu, "name", gpu_map[gi].gpu);
    cJSON_AddStringToObject(gpu, "device_name", gpu_map[gi].device);
    cJSON *run = cJSON_AddObjectToObject(root, "run");
    cJSON_AddStringToObject(run, "mode", "imported");
    cJSON_AddStringToObject(run, "date", VIDUR_DATE);
    cJSON *prov = cJSON_AddObjectToObject(root, "provenance");
    cJSON_AddStringToObject(prov, "source",
        "Vidur's measured profiles (Agrawal et al., \"Vidur: A Large-Scale Simulation "
        "Framework for LLM Inference\", MLSys 2024), github:microsoft/vidur at commit "
        VIDUR_COMMIT " (" VIDUR_DATE "), data/profiling/; MIT licence");
    cJSON_AddStringToObject(prov, "license", "MIT (../shared/profiles/vidur/LICENSE)");
    cJSON_AddStringToObject(prov, "files", files);
    cJSON_AddStringToObject(prov, "importer", "calib-tool import-vidur (calib/import_vidur.c)");
    cJSON_AddStringToObject(prov, "conversion",
        "medians of Vidur's per-operator medians (ms) at each grid point, in ns, 4 "
        "significant digits; fp16 measurements. norm = mean(input_layernorm, "
        "post_attention_layernorm) + add (servesim fuses the residual add into its "
        "norm); attention = kernel + input and output reshapes, decode ctx = "
        "kv_cache_size + 1; allreduce = single-node NCCL rows of the DGX setup, "
        "binned by half octaves of size (bytes of the buffer), median per bin. "
        "Ceilings are the highest rates achieved in the table (GEMM FLOP/s; bytes/s of "
        "any operator), not separate measurements. No power was measured.");
    double ceil_flops = 0, ceil_bw = 0;
    cJSON *fams = cJSON_CreateObject();
    for (int f = 0; f < CTAB_FAMILY_COUNT; f++) {
        cJSON *entries = cJSON_CreateArray();
        for (size_t i = 0; i < st->n; i++)
            if (st->e[i].key.family == (ctab_family)f) {
                cJSON *je = entry_json(&st->e[i], &ceil_flops, &ceil_bw);
                if (je)
                    cJSON_AddItemToArray(entries, je);
            }
        if (!cJSON_GetArraySize(entries)) {
            cJSON_Delete(entries);
            continue;
        }
        const ctab_family_info *fi = ctab_family_get((ctab_family)f);
        cJSON *jf = cJSON_AddObjectToObject(fams, fi->name);
        cJSON *params = cJSON_AddArrayToObject(jf, "params");
        for (int j = 0; j < fi->n_params; j++)
            cJSON_AddItemToArray(params, cJSON_CreateString(fi->param[j]));
        cJSON *axes = cJSON_AddArrayToObject(jf, "axes");
        for (int a = 0; a < fi->n_axes; a++) {
            cJSON *ax = cJSON_CreateObject();
            cJSON_AddStringToObject(ax, "name", fi->axis[a]);
            cJSON_AddStringToObject(ax, "scale",
                                    fi->scale[a] == CTAB_SCALE_LOG ? "log" : "linear");
            cJSON_AddItemToArray(axes, ax);
        }
        cJSON_AddItemToObject(jf, "entries", entries);
    }
    cJSON *ceil = cJSON_AddObjectToObject(root, "ceilings");
    cJSON_AddNumberToObject(ceil, "gemm_flops_per_s", sig4(ceil_flops));
    cJSON_AddNumberToObject(ceil, "d2d_bytes_per_s", sig4(ceil_bw));
    cJSON *energy = cJSON_AddObjectToObject(root, "energy");
    cJSON_AddStringToObject(energy, "method", "none");
    cJSON_AddNullToObject(energy, "idle_w");
    cJSON_AddItemToObject(root, "families", fams);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names of the subfolders of dir (caller frees each and the array). */
static int list_dirs(const char *dir, char ***out)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t cap = 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[2400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(path, &sb) || !S_ISDIR(sb.st_mode))
            continue;
        sim_grow((void **)out, &cap, (size_t)n + 1, sizeof **out);
        (*out)[n++] = sim_xstrdup(e->d_name);
    }
    closedir(d);
    qsort(*out, (size_t)n, sizeof **out, cmp_str);
    return n;
}

static void free_list(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Reads every profile of GPU folder gi into st: compute/<gpu>/<org>/<model>/
 * {mlp,attention}.csv and the matching network setup's all_reduce.csv.
 * files gets the list read. */
static int read_gpu(const vidur_opts *o, int gi, store *st, char *files, size_t fsize,
                    sim_err *err)
{
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/compute/%s", o->src, gpu_map[gi].dir);
    char **orgs;
    int n_orgs = list_dirs(dir, &orgs), rc = 0;
    files[0] = 0;
    for (int i = 0; rc == 0 && i < n_orgs; i++) {
        char odir[2400];
        snprintf(odir, sizeof odir, "%s/%s", dir, orgs[i]);
        char **models;
        int n_models = list_dirs(odir, &models);
        for (int j = 0; rc == 0 && j < n_models; j++) {
            const char *kinds[] = {"mlp.csv", "attention.csv"};
            for (int k = 0; rc == 0 && k < 2; k++) {
                char path[3000];
                snprintf(path, sizeof path, "%s/%s/%s", odir, models[j], kinds[k]);
                FILE *f = fopen(path, "rb");
                if (!f)
                    continue;
                fclose(f);
                rc = k ? import_attention(path, models[j], st, err)
                       : import_mlp(path, models[j], st, err);
                snprintf(files + strlen(files), fsize - strlen(files),
                         "%scompute/%s/%s/%s/%s", files[0] ? ", " : "", gpu_map[gi].dir,
                         orgs[i], models[j], kinds[k]);
            }
        }
        free_list(models, n_models);
    }
    free_list(orgs, n_orgs);
    if (rc == 0 && gpu_map[gi].network) {
        char path[2000];
        snprintf(path, sizeof path, "%s/network/%s/all_reduce.csv", o->src,
                 gpu_map[gi].network);
        FILE *f = fopen(path, "rb");
        if (f) {
            fclose(f);
            rc = import_allreduce(path, st, err);
            snprintf(files + strlen(files), fsize - strlen(files),
                     "%snetwork/%s/all_reduce.csv", files[0] ? ", " : "",
                     gpu_map[gi].network);
        }
    }
    return rc;
}

char *vidur_table_text(const vidur_opts *o, const char *gpu_dir, sim_err *err)
{
    int gi = -1;
    for (int i = 0; i < N_GPUS; i++)
        if (!strcmp(gpu_map[i].dir, gpu_dir))
            gi = i;
    if (gi < 0) {
        sim_errf(err, "unknown Vidur GPU folder '%s'", gpu_dir);
        return NULL;
    }
    store st = {0};
    char files[4096];
    char *text = NULL;
    err->msg[0] = 0;
    if (read_gpu(o, gi, &st, files, sizeof files, err) == 0 && st.n)
        text = table_text(&st, gi, files);
    store_free(&st);
    return text;
}

/* ---- checking a table against the raw measurements ------------------------------ */

typedef struct errs {
    double *v;
    size_t n, cap;
} errs;

static void errs_add(errs *e, double x)
{
    sim_grow((void **)&e->v, &e->cap, e->n + 1, sizeof *e->v);
    e->v[e->n++] = x;
}

/* Median |x| (sorts v). */
static double median_abs(errs *e)
{
    if (!e->n)
        return NAN;
    for (size_t i = 0; i < e->n; i++)
        e->v[i] = fabs(e->v[i]);
    qsort(e->v, e->n, sizeof *e->v, cmp_double);
    return e->n % 2 ? e->v[e->n / 2] : 0.5 * (e->v[e->n / 2 - 1] + e->v[e->n / 2]);
}

/* The op of entry e at a sample, as the simulator would build it. */
static int op_at(const entry *e, double x0, double x1, op_desc *out)
{
    if (e->key.family == CTAB_ALLREDUCE) {
        *out = (op_desc){.kind = OP_ALLREDUCE, .repeat = 1, .m = (int64_t)(x0 / 2), .n = 1,
                         .ranks = e->tp, .bytes = 2.0 * (e->tp - 1) / e->tp * x0};
        return 0;
    }
    batch_seq chunk = {.q_tokens = (int32_t)x0, .ctx_tokens = (int32_t)x1};
    batch_shape b = {.n_decode = (int32_t)x0};
    if (e->key.family == CTAB_ATTN_PREFILL)
        b = (batch_shape){.prefill = &chunk, .n_prefill = 1};
    else if (e->key.family == CTAB_ATTN_DECODE)
        b = (batch_shape){.n_decode = (int32_t)x0, .decode_ctx_sum = (int64_t)(x0 * (x1 - 1))};
    op_list ops;
    ops_decompose(&e->model, &PAR_TP(e->tp), &b, &ops);
    for (int i = 0; i < ops.n; i++) {
        ctab_key k;
        if (ops.op[i].kind == e->kind &&
            ctab_key_of_op(&e->model, e->tp, &ops.op[i], &k) == 0 &&
            ctab_key_same_entry(&k, &e->key)) {
            *out = ops.op[i];
            return 0;
        }
    }
    return -1;
}

/* Prices every raw sample through the table as the simulator would, and
 * prints the median |error| per family, on and between grid points. */
static void raw_check(store *st, const ctab *t, const gpu_spec *g, FILE *log)
{
    errs on[CTAB_FAMILY_COUNT] = {{0}}, off[CTAB_FAMILY_COUNT] = {{0}};
    for (size_t i = 0; i < st->n; i++) {
        const entry *e = &st->e[i];
        ctab_hint hint = {0};
        for (size_t j = 0; j < e->n; j++) {
            op_desc op;
            ctab_price pr;
            if (op_at(e, e->s[j].x0, e->s[j].x1, &op) < 0)
                continue;
            ctab_price_op(t, &e->model, e->tp, g, &op, &hint, &pr);
            if (pr.source != COST_SRC_TABLE)
                continue;
            double ax[512];
            int n = axis_of(e, 0, ax), on_grid = 0;
            for (int k = 0; k < n; k++)
                on_grid |= ax[k] == e->s[j].x0;
            if (ctab_family_get(e->key.family)->n_axes > 1) {
                int on1 = 0;
                n = axis_of(e, 1, ax);
                for (int k = 0; k < n; k++)
                    on1 |= ax[k] == e->s[j].x1;
                on_grid &= on1;
            }
            errs_add(on_grid ? &on[e->key.family] : &off[e->key.family],
                     pr.ns / e->s[j].t_ns - 1);
        }
    }
    fprintf(log, "  every raw measurement priced through the table (median |error|):\n");
    fprintf(log, "    %-14s %8s %8s | %8s %8s\n", "family", "on grid", "n", "between", "n");
    for (int f = 0; f < CTAB_FAMILY_COUNT; f++) {
        if (!on[f].n && !off[f].n)
            continue;
        size_t n_on = on[f].n, n_off = off[f].n;
        double m_on = median_abs(&on[f]), m_off = median_abs(&off[f]);
        fprintf(log, "    %-14s %7.2f%% %8zu | %7.2f%% %8zu\n",
                ctab_family_get((ctab_family)f)->name, 100 * m_on, n_on, 100 * m_off, n_off);
        free(on[f].v);
        free(off[f].v);
    }
}

static void print_loo(const ctab *t, FILE *log)
{
    fprintf(log, "  leave-one-out (each grid point from its two neighbours along an axis):\n");
    fprintf(log, "    %-14s %7s %8s %8s %8s %8s\n", "family", "points", "median", "p90", "max",
            "bias");
    for (int f = 0; f < CTAB_FAMILY_COUNT; f++) {
        if (!ctab_n_entries(t, (ctab_family)f))
            continue;
        ctab_loo_stats lat, pw;
        ctab_loo(t, (ctab_family)f, &lat, &pw);
        fprintf(log, "    %-14s %7d %7.2f%% %7.2f%% %7.2f%% %+7.2f%%\n",
                ctab_family_get((ctab_family)f)->name, lat.n, 100 * lat.median_abs,
                100 * lat.p90_abs, 100 * lat.max_abs, 100 * lat.mean);
    }
}

int vidur_import(const vidur_opts *o, FILE *log, char tables[][1024], int *n_tables,
                 sim_err *err)
{
    *n_tables = 0;
    for (int gi = 0; gi < N_GPUS; gi++) {
        store st = {0};
        char files[4096];
        if (read_gpu(o, gi, &st, files, sizeof files, err) < 0) {
            store_free(&st);
            return -1;
        }
        if (!st.n) {
            store_free(&st);
            continue;
        }
        char *text = table_text(&st, gi, files);
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.json", o->out_dir, gpu_map[gi].gpu);
        FILE *f = fopen(path, "w");
        int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
        ok &= f && fclose(f) == 0;
        cJSON_free(text);
        gpu_spec g;
        ctab *t = NULL;
        if (!ok)
            sim_errf(err, "%s: cannot write", path);
        else if (gpu_spec_load(o->models_dir, gpu_map[gi].gpu, &g, err) == 0)
            t = ctab_load(path, gpu_map[gi].gpu, err);
        if (!t) {
            store_free(&st);
            return -1;
        }
        size_t samples = 0;
        for (size_t i = 0; i < st.n; i++)
            samples += st.e[i].n;
        fprintf(log, "wrote %s: %zu entries from %zu measurements\n", path, st.n, samples);
        print_loo(t, log);
        raw_check(&st, t, &g, log);
        snprintf(tables[(*n_tables)++], 1024, "%s", path);
        ctab_destroy(t);
        store_free(&st);
    }
    if (!*n_tables)
        return sim_errf(err, "%s: no Vidur profile found (expected compute/<gpu>/<org>/"
                        "<model>/mlp.csv)", o->src);
    return 0;
}

/* ---- fitting the fallback model ---------------------------------------------------- */

enum { CLS_GEMM, CLS_EW, CLS_ATTN, CLS_COLL, CLS_COUNT };

typedef struct fit_pt {
    int gpu;
    int cls;
    int users;      /* index into users[] */
    op_desc op;
    double t_ns;
} fit_pt;

struct fit_set {
    gpu_spec gpu[VIDUR_MAX_TABLES];
    int n_gpus;
    fit_pt *pt;
    size_t n, cap;
    char **users;
    size_t n_users, cap_users;
};

void fit_set_destroy(fit_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_users; i++)
        free(s->users[i]);
    free(s->users);
    free(s->pt);
    free(s);
}

static double jnum(const cJSON *a, int i)
{
    const cJSON *v = cJSON_GetArrayItem(a, i);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* The op a table point stands for: the shape the fallback model needs. */
static int point_op(ctab_family f, const double *p, double x0, double x1, op_desc *op,
                    int *cls)
{
    *op = (op_desc){.repeat = 1, .dtype = LLM_BF16, .m = (int64_t)x0};
    *cls = CLS_EW;
    switch (f) {
    case CTAB_GEMM:
        op->kind = OP_GEMM_QKV;
        op->n = (int64_t)p[0];
        op->k = (int64_t)p[1];
        *cls = CLS_GEMM;
        return 0;
    case CTAB_NORM:
        op->kind = OP_NORM;
        op->n = (int64_t)p[0];
        return 0;
    case CTAB_ROPE:
        op->kind = OP_ROPE;
        op->n = (int64_t)((p[0] + p[1]) * p[2]);
        return 0;
    case CTAB_ACT:
        op->kind = OP_ACT;
        op->n = (int64_t)p[0];
        return 0;
    case CTAB_EMBED:
        op->kind = OP_EMBED;
        op->n = (int64_t)p[0];
        return 0;
    case CTAB_ATTN_PREFILL:   /* params q_heads, kv_heads, head_dim, kv_bytes */
        op->kind = OP_ATTN_PREFILL;
        op->n = 1;
        op->k = (int64_t)(x0 + x1);
        op->kv_bytes = (x0 + x1) * 2 * p[1] * p[2] * p[3];
        *cls = CLS_ATTN;
        return 0;
    case CTAB_ATTN_DECODE:
        op->kind = OP_ATTN_DECODE;
        op->n = (int64_t)x0;
        op->k = (int64_t)x1;
        op->kv_bytes = x0 * x1 * 2 * p[1] * p[2] * p[3];
        *cls = CLS_ATTN;
        return 0;
    case CTAB_ALLREDUCE:
        op->kind = OP_ALLREDUCE;
        op->m = (int64_t)(x0 / 2);
        op->n = 1;
        op->ranks = (int32_t)p[0];
        *cls = CLS_COLL;
        return 0;
    default:
        return -1;
    }
}

static int fit_load_one(fit_set *s, const char *path, const char *models_dir, sim_err *err)
{
    cJSON *root;
    if (jcfg_load_file(path, &root, err) < 0)
        return -1;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "gpu"), "name");
    int rc = -1, gi = s->n_gpus;
    if (!cJSON_IsString(name)) {
        sim_errf(err, "%s: $.gpu.name: expected a string", path);
    } else if (gi >= VIDUR_MAX_TABLES) {
        sim_errf(err, "%s: more than %d tables", path, VIDUR_MAX_TABLES);
    } else if (gpu_spec_load(models_dir, name->valuestring, &s->gpu[gi], err) == 0) {
        s->n_gpus++;
        rc = 0;
    }
    const cJSON *fams = cJSON_GetObjectItemCaseSensitive(root, "families");
    for (const cJSON *jf = fams ? fams->child : NULL; rc == 0 && jf; jf = jf->next) {
        int f = ctab_family_find(jf->string);
        if (f < 0)
            continue;
        const ctab_family_info *fi = ctab_family_get((ctab_family)f);
        const cJSON *entries = cJSON_GetObjectItemCaseSensitive(jf, "entries");
        for (const cJSON *je = entries ? entries->child : NULL; je; je = je->next) {
            double p[CTAB_MAX_PARAMS] = {0};
            const cJSON *params = cJSON_GetObjectItemCaseSensitive(je, "params");
            for (int j = 0; j < fi->n_params; j++)
                p[j] = cJSON_GetObjectItemCaseSensitive(params, fi->param[j])->valuedouble;
            const cJSON *axes = cJSON_GetObjectItemCaseSensitive(je, "axes");
            const cJSON *a0 = cJSON_GetObjectItemCaseSensitive(axes, fi->axis[0]);
            const cJSON *a1 = fi->n_axes > 1
                                  ? cJSON_GetObjectItemCaseSensitive(axes, fi->axis[1])
                                  : NULL;
            int n0 = cJSON_GetArraySize(a0), n1 = a1 ? cJSON_GetArraySize(a1) : 1;
            const cJSON *fl = cJSON_GetObjectItemCaseSensitive(je, "flops");
            const cJSON *by = cJSON_GetObjectItemCaseSensitive(je, "bytes");
            const cJSON *med = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(je, "latency_ns"), "median");
            const cJSON *ub = cJSON_GetObjectItemCaseSensitive(je, "used_by");
            sim_grow((void **)&s->users, &s->cap_users, s->n_users + 1, sizeof *s->users);
            s->users[s->n_users++] = sim_xstrdup(cJSON_IsString(ub) ? ub->valuestring : "");
            for (int i = 0; i < n0; i++)
                for (int j = 0; j < n1; j++) {
                    int k = i * n1 + j;
                    double t = jnum(med, k);
                    op_desc op;
                    int cls;
                    if (!isfinite(t) ||
                        point_op((ctab_family)f, p, jnum(a0, i), a1 ? jnum(a1, j) : 0, &op,
                                 &cls) < 0)
                        continue;
                    op.flops = jnum(fl, k);
                    op.bytes = jnum(by, k);
                    sim_grow((void **)&s->pt, &s->cap, s->n + 1, sizeof *s->pt);
                    s->pt[s->n++] = (fit_pt){.gpu = gi, .cls = cls,
                                             .users = (int)s->n_users - 1, .op = op,
                                             .t_ns = t};
                }
        }
    }
    cJSON_Delete(root);
    return rc < 0 ? sim_err_prefix(err, "%s", path) : 0;
}

fit_set *fit_set_load(const char *const *tables, int n, const char *models_dir, sim_err *err)
{
    fit_set *s = sim_xcalloc(1, sizeof *s);
    for (int i = 0; i < n; i++)
        if (fit_load_one(s, tables[i], models_dir, err) < 0) {
            fit_set_destroy(s);
            return NULL;
        }
    return s;
}

/* name is one of the comma-separated items of list. */
static int in_list(const char *list, const char *name, size_t len)
{
    for (const char *p = list; p && *p;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n == len && !strncmp(p, name, len))
            return 1;
        p = c ? c + 1 : NULL;
    }
    return 0;
}

static int selected(const fit_set *s, const fit_sel *sel, const fit_pt *pt)
{
    if (!sel)
        return 1;
    const char *g = s->gpu[pt->gpu].name;
    if (sel->gpus && !in_list(sel->gpus, g, strlen(g)))
        return 0;
    if (!sel->models)
        return 1;
    /* used_by: "model@tpN,model@tpN,..." */
    int any = 0;
    for (const char *p = s->users[pt->users]; *p;) {
        const char *at = strchr(p, '@');
        if (!at)
            break;
        any |= in_list(sel->models, p, (size_t)(at - p));
        const char *c = strchr(at, ',');
        p = c ? c + 1 : at + strlen(at);
    }
    return sel->exclude_models ? !any : any;
}

/* The constants fit_run varies, per class, as logs (all positive). */
typedef struct fit_ctx {
    const fit_set *s;
    const fit_sel *sel;
    int cls, attn;      /* attention: 0 prefill, 1 decode */
    fb_params base;
} fit_ctx;

/* Prefill attention's memory efficiency is not fitted: one profiled shape
 * cannot tell re-read bytes from compute (both grow as query x key tokens),
 * and a free fit trades them off in a way that extrapolates badly to long
 * prefills; it takes the GEMMs' achieved bandwidth. */
static int n_vars(int cls, int attn)
{
    return cls == CLS_GEMM ? 3 : cls == CLS_EW ? 1 + 2 * FB_EW_COUNT : attn ? 3 : 2;
}

static void vars_to_params(const fit_ctx *c, const double *x, fb_params *p)
{
    *p = c->base;
    if (c->cls == CLS_GEMM) {
        p->gemm_t0_cycles = exp(x[0]);
        p->gemm_compute_eff = exp(x[1]);
        p->gemm_memory_eff = exp(x[2]);
    } else if (c->cls == CLS_EW) {
        p->ew_memory_eff = exp(x[0]);
        for (int k = 0; k < FB_EW_COUNT; k++) {
            p->ew_t0_cycles[k] = exp(x[1 + k]);
            p->ew_cycles[k] = exp(x[1 + FB_EW_COUNT + k]);
        }
    } else {
        p->attn_t0_cycles[c->attn] = exp(x[0]);
        p->attn_compute_eff[c->attn] = exp(x[1]);
        p->attn_memory_eff[c->attn] = c->attn ? exp(x[2]) : p->gemm_memory_eff;
    }
}

static void params_to_vars(const fit_ctx *c, const fb_params *p, double *x)
{
    if (c->cls == CLS_GEMM) {
        x[0] = log(p->gemm_t0_cycles);
        x[1] = log(p->gemm_compute_eff);
        x[2] = log(p->gemm_memory_eff);
    } else if (c->cls == CLS_EW) {
        x[0] = log(p->ew_memory_eff);
        for (int k = 0; k < FB_EW_COUNT; k++) {
            x[1 + k] = log(p->ew_t0_cycles[k]);
            x[1 + FB_EW_COUNT + k] = log(p->ew_cycles[k]);
        }
    } else {
        x[0] = log(p->attn_t0_cycles[c->attn]);
        x[1] = log(p->attn_compute_eff[c->attn]);
        if (c->attn)
            x[2] = log(p->attn_memory_eff[c->attn]);
    }
}

static int pt_in_ctx(const fit_ctx *c, const fit_pt *pt)
{
    if (pt->cls != c->cls)
        return 0;
    if (c->cls == CLS_ATTN && (pt->op.kind == OP_ATTN_DECODE) != c->attn)
        return 0;
    return selected(c->s, c->sel, pt);
}

static double objective(const fit_ctx *c, const double *x)
{
    fb_params p;
    vars_to_params(c, x, &p);
    double sum = 0;
    size_t n = 0;
    for (size_t i = 0; i < c->s->n; i++) {
        const fit_pt *pt = &c->s->pt[i];
        if (!pt_in_ctx(c, pt))
            continue;
        sum += fabs(log(fb_op_ns(&p, &c->s->gpu[pt->gpu], &pt->op) / pt->t_ns));
        n++;
    }
    return n ? sum / n : 0;
}

/* Nelder-Mead (standard coefficients) from x, step 0.3 in log space. */
#define NM_MAX 16
static void nelder_mead(const fit_ctx *c, double *x, int n, int iters)
{
    double s[NM_MAX + 1][NM_MAX], f[NM_MAX + 1], xr[NM_MAX], xe[NM_MAX], xc[NM_MAX];
    SIM_ASSERT(n <= NM_MAX);
    for (int i = 0; i <= n; i++) {
        memcpy(s[i], x, (size_t)n * sizeof *x);
        if (i)
            s[i][i - 1] += 0.3;
        f[i] = objective(c, s[i]);
    }
    for (int it = 0; it < iters; it++) {
        /* order: best first */
        for (int i = 1; i <= n; i++)
            for (int j = i; j > 0 && f[j] < f[j - 1]; j--) {
                double t = f[j];
                f[j] = f[j - 1];
                f[j - 1] = t;
                double tmp[NM_MAX];
                memcpy(tmp, s[j], sizeof tmp);
                memcpy(s[j], s[j - 1], sizeof tmp);
                memcpy(s[j - 1], tmp, sizeof tmp);
            }
        if (f[n] - f[0] < 1e-10)
            break;
        double cen[NM_MAX] = {0};
        for (int i = 0; i < n; i++)
            for (int d = 0; d < n; d++)
                cen[d] += s[i][d] / n;
        for (int d = 0; d < n; d++)
            xr[d] = cen[d] + (cen[d] - s[n][d]);
        double fr = objective(c, xr);
        if (fr < f[0]) {
            for (int d = 0; d < n; d++)
                xe[d] = cen[d] + 2 * (cen[d] - s[n][d]);
            double fe = objective(c, xe);
            memcpy(s[n], fe < fr ? xe : xr, (size_t)n * sizeof *x);
            f[n] = fe < fr ? fe : fr;
        } else if (fr < f[n - 1]) {
            memcpy(s[n], xr, (size_t)n * sizeof *x);
            f[n] = fr;
        } else {
            int outside = fr < f[n];
            for (int d = 0; d < n; d++)
                xc[d] = outside ? cen[d] + 0.5 * (xr[d] - cen[d])
                                : cen[d] + 0.5 * (s[n][d] - cen[d]);
            double fc = objective(c, xc);
            if (fc < (outside ? fr : f[n])) {
                memcpy(s[n], xc, (size_t)n * sizeof *x);
                f[n] = fc;
            } else {
                for (int i = 1; i <= n; i++) {
                    for (int d = 0; d < n; d++)
                        s[i][d] = s[0][d] + 0.5 * (s[i][d] - s[0][d]);
                    f[i] = objective(c, s[i]);
                }
            }
        }
    }
    int best = 0;
    for (int i = 1; i <= n; i++)
        if (f[i] < f[best])
            best = i;
    memcpy(x, s[best], (size_t)n * sizeof *x);
}

void fit_run(const fit_set *s, const fit_sel *sel, fb_params *p)
{
    const struct {
        int cls, attn;
    } parts[] = {{CLS_GEMM, 0}, {CLS_EW, 0}, {CLS_ATTN, 0}, {CLS_ATTN, 1}};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        fit_ctx c = {.s = s, .sel = sel, .cls = parts[i].cls, .attn = parts[i].attn,
                     .base = *p};
        size_t n = 0;
        for (size_t j = 0; j < s->n; j++)
            n += pt_in_ctx(&c, &s->pt[j]);
        if (!n)
            continue;
        double x[NM_MAX];
        int nv = n_vars(c.cls, c.attn);
        params_to_vars(&c, p, x);
        for (int round = 0; round < 3; round++)   /* restarts from the best */
            nelder_mead(&c, x, nv, 1500);
        vars_to_params(&c, x, p);
    }
}

static double median_of(double *v, int n, int absolute)
{
    if (!n)
        return NAN;
    for (int i = 0; absolute && i < n; i++)
        v[i] = fabs(v[i]);
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void fit_eval(const fit_set *s, const fit_sel *sel, const fb_params *p, fit_err *out)
{
    memset(out, 0, sizeof *out);
    double *e[4], *a[4];
    for (int c = 0; c < 4; c++) {
        e[c] = sim_xmalloc((s->n + 1) * sizeof **e);
        a[c] = sim_xmalloc((s->n + 1) * sizeof **a);
    }
    for (size_t i = 0; i < s->n; i++) {
        const fit_pt *pt = &s->pt[i];
        if (pt->cls == CLS_COLL || !selected(s, sel, pt))
            continue;
        double err = fb_op_ns(p, &s->gpu[pt->gpu], &pt->op) / pt->t_ns - 1;
        e[pt->cls][out->n[pt->cls]++] = err;
        e[3][out->n[3]++] = err;
    }
    for (int c = 0; c < 4; c++) {
        memcpy(a[c], e[c], (size_t)out->n[c] * sizeof **e);
        out->median_abs[c] = median_of(a[c], out->n[c], 1);
        out->median[c] = median_of(e[c], out->n[c], 0);
        free(e[c]);
        free(a[c]);
    }
}

/* The plain roofline servesim used before the fallback model, for
 * comparison: max(compute at 75% of peak, bytes at 80% of bandwidth, 2 us). */
static void eval_plain_roofline(const fit_set *s, const fit_sel *sel, fit_err *out)
{
    memset(out, 0, sizeof *out);
    double *e[4], *a[4];
    for (int c = 0; c < 4; c++) {
        e[c] = sim_xmalloc((s->n + 1) * sizeof **e);
        a[c] = sim_xmalloc((s->n + 1) * sizeof **a);
    }
    for (size_t i = 0; i < s->n; i++) {
        const fit_pt *pt = &s->pt[i];
        if (pt->cls == CLS_COLL || !selected(s, sel, pt))
            continue;
        const gpu_spec *g = &s->gpu[pt->gpu];
        double ns = fmax(fmax(pt->op.flops / (g->bf16_flops * 0.75),
                              pt->op.bytes / (g->hbm_bw_bytes_per_s * 0.8)) * 1e9, 2000);
        double err = ns / pt->t_ns - 1;
        e[pt->cls][out->n[pt->cls]++] = err;
        e[3][out->n[3]++] = err;
    }
    for (int c = 0; c < 4; c++) {
        memcpy(a[c], e[c], (size_t)out->n[c] * sizeof **e);
        out->median_abs[c] = median_of(a[c], out->n[c], 1);
        out->median[c] = median_of(e[c], out->n[c], 0);
        free(e[c]);
        free(a[c]);
    }
}

/* ---- collectives ---------------------------------------------------------------- */

typedef struct coll_ctx {
    const fit_set *s;
    int gpu;
} coll_ctx;

static double coll_pred(const gpu_spec *g, const op_desc *op, const double *x)
{
    gpu_spec h = *g;
    h.collective_latency_ns = exp(x[0]);
    h.collective_rank_ns = fabs(x[1]);
    h.link_efficiency = exp(x[2]);
    fb_params p;
    fb_params_for_gpu(&h, &p);
    return fb_op_ns(&p, &h, op);
}

int fit_collectives(const fit_set *s, const char *gpu, double *latency_ns, double *rank_ns,
                    double *link_eff, double *med_abs)
{
    int gi = -1;
    for (int i = 0; i < s->n_gpus; i++)
        if (!strcmp(s->gpu[i].name, gpu))
            gi = i;
    int n = 0;
    for (size_t i = 0; gi >= 0 && i < s->n; i++)
        n += s->pt[i].gpu == gi && s->pt[i].cls == CLS_COLL;
    if (!n)
        return 0;
    /* a pattern search over the 3 constants (log latency, rank ns, log efficiency) */
    double x[3] = {log(20000), 1000, log(0.7)}, best = INFINITY;
    double step[3] = {0.5, 2000, 0.5};
    for (int round = 0; round < 200; round++) {
        int improved = 0;
        for (int d = 0; d < 3; d++)
            for (int sgn = -1; sgn <= 1; sgn += 2) {
                double y[3] = {x[0], x[1], x[2]};
                y[d] += sgn * step[d];
                double sum = 0;
                for (size_t i = 0; i < s->n; i++) {
                    const fit_pt *pt = &s->pt[i];
                    if (pt->gpu == gi && pt->cls == CLS_COLL)
                        sum += fabs(log(coll_pred(&s->gpu[gi], &pt->op, y) / pt->t_ns));
                }
                if (sum < best) {
                    best = sum;
                    memcpy(x, y, sizeof x);
                    improved = 1;
                }
            }
        if (!improved)
            for (int d = 0; d < 3; d++)
                step[d] /= 2;
    }
    *latency_ns = exp(x[0]);
    *rank_ns = fabs(x[1]);
    *link_eff = exp(x[2]);
    double *e = sim_xmalloc((size_t)n * sizeof *e);
    int k = 0;
    for (size_t i = 0; i < s->n; i++) {
        const fit_pt *pt = &s->pt[i];
        if (pt->gpu == gi && pt->cls == CLS_COLL)
            e[k++] = coll_pred(&s->gpu[gi], &pt->op, x) / pt->t_ns - 1;
    }
    *med_abs = median_of(e, k, 1);
    free(e);
    return n;
}

/* ---- the generated header ------------------------------------------------------- */

int fit_write_header(const char *path, const fb_params *p, const char *provenance,
                     sim_err *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return sim_errf(err, "%s: cannot write", path);
    fprintf(f, "/* Generated by `calib-tool import-vidur` (calib/import_vidur.c): the\n"
               " * fallback model's constants (models/fallback.h), fitted on operator-level\n"
               " * measurements only. Do not edit by hand; rerun the importer. */\n"
               "#ifndef MODELS_FALLBACK_FIT_H\n#define MODELS_FALLBACK_FIT_H\n\n"
               "const fb_params fb_fitted = {\n");
    fprintf(f, "    .gemm_t0_cycles = %.4g, .gemm_compute_eff = %.4g, .gemm_memory_eff = %.4g,\n",
            p->gemm_t0_cycles, p->gemm_compute_eff, p->gemm_memory_eff);
    fprintf(f, "    /* embed, norm, rope, act */\n    .ew_t0_cycles = {");
    for (int k = 0; k < FB_EW_COUNT; k++)
        fprintf(f, "%s%.4g", k ? ", " : "", p->ew_t0_cycles[k]);
    fprintf(f, "},\n    .ew_cycles = {");
    for (int k = 0; k < FB_EW_COUNT; k++)
        fprintf(f, "%s%.4g", k ? ", " : "", p->ew_cycles[k]);
    fprintf(f, "},\n    .ew_memory_eff = %.4g,\n", p->ew_memory_eff);
    fprintf(f, "    /* prefill, decode */\n");
    fprintf(f, "    .attn_t0_cycles = {%.4g, %.4g}, .attn_compute_eff = {%.4g, %.4g},\n",
            p->attn_t0_cycles[0], p->attn_t0_cycles[1], p->attn_compute_eff[0],
            p->attn_compute_eff[1]);
    fprintf(f, "    .attn_memory_eff = {%.4g, %.4g},\n};\n", p->attn_memory_eff[0],
            p->attn_memory_eff[1]);
    fprintf(f, "const char *const fb_fitted_provenance =\n    \"");
    for (const char *c = provenance; *c; c++) {
        if (*c == '"' || *c == '\\')
            fputc('\\', f);
        if (*c == '\n')
            fputs("\\n\"\n    \"", f);
        else
            fputc(*c, f);
    }
    fprintf(f, "\";\n\n#endif\n");
    return fclose(f) == 0 ? 0 : sim_errf(err, "%s: cannot write", path);
}

/* ---- the command ------------------------------------------------------------------ */

/* Where every fit starts (so that a refit does not depend on the last one). */
const fb_params vidur_fit_start = {
    .gemm_t0_cycles = 4000, .gemm_compute_eff = 0.75, .gemm_memory_eff = 0.8,
    .ew_t0_cycles = {3000, 3000, 3000, 3000}, .ew_cycles = {1, 1, 1, 1}, .ew_memory_eff = 0.8,
    .attn_t0_cycles = {8000, 8000}, .attn_compute_eff = {0.5, 0.5}, .attn_memory_eff = {0.5, 0.5},
};

static void print_err(FILE *log, const char *what, const fit_err *e)
{
    fprintf(log, "    %-44s GEMM %5.1f%% (%+5.1f%%, %5d)  elementwise %5.1f%% (%+5.1f%%, %5d)"
            "  all %5.1f%% (%d)\n", what, 100 * e->median_abs[0], 100 * e->median[0],
            e->n[0], 100 * e->median_abs[1], 100 * e->median[1], e->n[1],
            100 * e->median_abs[3], e->n[3]);
}

/* Held out: each GPU from the others, and some models from the rest. */
static void held_out(const fit_set *s, FILE *log)
{
    fprintf(log, "fallback held out (median |error|, median signed error, points):\n");
    fprintf(log, "  by GPU (fit on the GPUs named, predict the other):\n");
    for (int train = 0; train < s->n_gpus; train++)
        for (int test = 0; test < s->n_gpus; test++) {
            if (test == train)
                continue;
            fb_params p = vidur_fit_start;
            fit_sel tr = {.gpus = s->gpu[train].name};
            fit_run(s, &tr, &p);
            fit_sel te = {.gpus = s->gpu[test].name};
            fit_err e;
            fit_eval(s, &te, &p, &e);
            char what[200];
            snprintf(what, sizeof what, "fit %s -> %s", s->gpu[train].name, s->gpu[test].name);
            print_err(log, what, &e);
        }
    for (int test = 0; test < s->n_gpus && s->n_gpus > 2; test++) {
        char others[300] = "";
        for (int i = 0; i < s->n_gpus; i++)
            if (i != test)
                snprintf(others + strlen(others), sizeof others - strlen(others), "%s%s",
                         others[0] ? "," : "", s->gpu[i].name);
        fb_params p = vidur_fit_start;
        fit_sel tr = {.gpus = others};
        fit_run(s, &tr, &p);
        fit_sel te = {.gpus = s->gpu[test].name};
        fit_err e;
        fit_eval(s, &te, &p, &e);
        char what[400];
        snprintf(what, sizeof what, "fit the others -> %s", s->gpu[test].name);
        print_err(log, what, &e);
    }
    static const char *train_models = "Llama-2-7b-hf,Llama-2-70b-hf,CodeLlama-34b-Instruct-hf";
    fprintf(log, "  by model (fit on %s, all GPUs; predict the shapes no fitted model has):\n",
            train_models);
    fb_params p = vidur_fit_start;
    fit_sel tr = {.models = train_models};
    fit_run(s, &tr, &p);
    for (int g = -1; g < s->n_gpus; g++) {
        fit_sel te = {.gpus = g < 0 ? NULL : s->gpu[g].name, .models = train_models,
                      .exclude_models = 1};
        fit_err e;
        fit_eval(s, &te, &p, &e);
        char what[200];
        snprintf(what, sizeof what, "held-out models on %s", g < 0 ? "every GPU" : s->gpu[g].name);
        print_err(log, what, &e);
    }
}

int vidur_main(int argc, char **argv)
{
    vidur_opts o = {.src = "../shared/profiles/vidur", .out_dir = "calib/tables/vidur",
                    .models_dir = models_dir()};
    const char *fit_out = "models/fallback_fit.h";
    int no_held_out = 0;
    for (int i = 0; i < argc; i++) {
        const char **slot = !strcmp(argv[i], "--src") ? &o.src
                          : !strcmp(argv[i], "--out") ? &o.out_dir
                          : !strcmp(argv[i], "--fit") ? &fit_out : NULL;
        if (slot && i + 1 < argc) {
            *slot = argv[++i];
        } else if (!strcmp(argv[i], "--no-held-out")) {
            no_held_out = 1;
        } else {
            fprintf(stderr, "usage: calib-tool import-vidur [--src DIR] [--out DIR] "
                            "[--fit FILE|-] [--no-held-out]\n");
            return 2;
        }
    }
    sim_err err = {{0}};
    char tables[VIDUR_MAX_TABLES][1024];
    int n = 0;
    if (vidur_import(&o, stdout, tables, &n, &err) < 0) {
        fprintf(stderr, "calib-tool: error: %s\n", err.msg);
        return 1;
    }
    const char *paths[VIDUR_MAX_TABLES];
    for (int i = 0; i < n; i++)
        paths[i] = tables[i];
    fit_set *s = fit_set_load(paths, n, o.models_dir, &err);
    if (!s) {
        fprintf(stderr, "calib-tool: error: %s\n", err.msg);
        return 1;
    }
    printf("collectives (fitted per GPU on its allreduce entries; copy into models/gpu/):\n");
    for (int g = 0; g < s->n_gpus; g++) {
        double lat, rank, eff, med;
        int pts = fit_collectives(s, s->gpu[g].name, &lat, &rank, &eff, &med);
        if (pts)
            printf("  %-16s collective_latency_ns %.0f, collective_rank_ns %.0f, "
                   "link_efficiency %.3f: median |error| %.1f%% over %d points\n",
                   s->gpu[g].name, lat, rank, eff, 100 * med, pts);
    }
    printf("the plain roofline (max of compute at 75%% of peak, bytes at 80%% of bandwidth, "
           "2 us), on the same points:\n");
    for (int g = -1; g < s->n_gpus; g++) {
        fit_sel sel = {.gpus = g < 0 ? NULL : s->gpu[g].name};
        fit_err e;
        eval_plain_roofline(s, &sel, &e);
        print_err(stdout, g < 0 ? "every GPU" : s->gpu[g].name, &e);
        if (e.n[2])
            printf("    %-44s attention %5.1f%% (%+5.1f%%, %d)\n", "", 100 * e.median_abs[2],
                   100 * e.median[2], e.n[2]);
    }
    if (!no_held_out)
        held_out(s, stdout);
    fb_params p = vidur_fit_start;
    fit_run(s, NULL, &p);
    printf("fallback fitted on every imported table (in sample):\n");
    for (int g = -1; g < s->n_gpus; g++) {
        fit_sel sel = {.gpus = g < 0 ? NULL : s->gpu[g].name};
        fit_err e;
        fit_eval(s, &sel, &p, &e);
        print_err(stdout, g < 0 ? "every GPU" : s->gpu[g].name, &e);
        if (e.n[2])
            printf("    %-44s attention %5.1f%% (%+5.1f%%, %d)\n", "", 100 * e.median_abs[2],
                   100 * e.median[2], e.n[2]);
    }
    int rc = 0;
    if (strcmp(fit_out, "-")) {
        char prov[2400];
        snprintf(prov, sizeof prov, "Fitted by calib-tool import-vidur on the imported "
                 "tables (operator-level measurements only):");
        for (int i = 0; i < n; i++)
            snprintf(prov + strlen(prov), sizeof prov - strlen(prov), " %.200s", tables[i]);
        snprintf(prov + strlen(prov), sizeof prov - strlen(prov),
                 "; from Vidur's profiles (MLSys 2024, github:microsoft/vidur@" VIDUR_COMMIT
                 ", MIT).");
        rc = fit_write_header(fit_out, &p, prov, &err);
        if (rc == 0)
            printf("wrote %s\n", fit_out);
        else
            fprintf(stderr, "calib-tool: error: %s\n", err.msg);
    }
    fit_set_destroy(s);
    return rc ? 1 : 0;
}
