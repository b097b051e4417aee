/* Calibration plans from the bundled models (see planner.h).
 *
 * Design. For every model and valid TP degree, one probe batch (a prefill
 * chunk plus decodes) makes ops_decompose emit every op kind the model
 * has; ctab_key_of_op turns each op into a table entry, and equal entries
 * from different models are merged (their users are listed in used_by).
 * Each entry then gets its family's grid and, per point, the FLOPs and
 * bytes ops_decompose counts there, so that a table measured from this
 * plan prices exactly the simulator's operators:
 *  - attention and MoE experts: ops_decompose at exactly that point (one
 *    prefill chunk of q tokens after `prefix`; `batch` decodes with `ctx`
 *    KV tokens each; T = m tokens);
 *  - every other family is affine in m (weights plus m rows), so two probes
 *    fix it; this also covers MoE activations, whose m is a count of
 *    (token, expert) pairs that no integer token count need produce.
 *
 * Grids are powers of two in tokens (1 .. 16384; the LM head and the
 * sampler to 4096; MoE activations to 16384 * (top_k + shared) pairs).
 * Attention grids drop the points no user model can reach (the cells they
 * border all start beyond its longest context) and decode points whose KV
 * cache exceeds CALIB_KV_CAP_BYTES. Power is measured at a few points per
 * entry (first, middle, last along each axis): each costs a window of
 * hundreds of milliseconds. */
#include "calib/planner.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CALIB_KV_CAP_BYTES (6.0 * 1024 * 1024 * 1024)
#define M_CAP 16384
#define M_CAP_SAMPLED 4096

/* An entry being collected, before its grid is known. */
typedef struct spec {
    ctab_family family;
    int64_t p[CTAB_MAX_PARAMS];
    llm_model model;    /* a user, to compute FLOPs and bytes with */
    int tp;
    op_kind kind;
    double m_cap;       /* 1-D families: largest m any user asks for */
    int32_t max_ctx;    /* attention: longest context of any user */
    char used_by[512];
} spec;

typedef struct specs {
    spec *s;
    size_t n, cap;
} specs;

/* ---- grids ------------------------------------------------------------------ */

static void axis_pow2(calib_axis *a, double lo, double hi, int quick)
{
    a->n = 0;
    double step = quick ? 8 : 2;
    double v = lo;
    for (; v < hi && a->n < CALIB_AXIS_MAX - 1; v *= step)
        a->v[a->n++] = v;
    a->v[a->n++] = hi;   /* hi closes the grid, a power of the step or not */
}

static void axis_list(calib_axis *a, const double *v, int n)
{
    a->n = n;
    memcpy(a->v, v, (size_t)n * sizeof *v);
}

/* ---- collecting entries ------------------------------------------------------ */

static double m_cap_of(const llm_model *m, op_kind kind)
{
    if (kind == OP_GEMM_LM_HEAD || kind == OP_SAMPLE)
        return M_CAP_SAMPLED;
    if (kind == OP_ACT && m->experts)
        return (double)M_CAP * (m->experts_per_token + m->shared_experts);
    return M_CAP;
}

static void add_spec(specs *ss, const ctab_key *key, const llm_model *m, int tp,
                     op_kind kind)
{
    char user[96];
    snprintf(user, sizeof user, "%s/tp%d", m->name, tp);
    spec *s = NULL;
    for (size_t i = 0; i < ss->n && !s; i++) {
        ctab_key k2 = {.family = ss->s[i].family};
        memcpy(k2.p, ss->s[i].p, sizeof k2.p);
        if (ctab_key_same_entry(key, &k2))
            s = &ss->s[i];
    }
    if (!s) {
        sim_grow((void **)&ss->s, &ss->cap, ss->n + 1, sizeof *ss->s);
        s = &ss->s[ss->n++];
        memset(s, 0, sizeof *s);
        s->family = key->family;
        memcpy(s->p, key->p, sizeof s->p);
        s->model = *m;
        s->tp = tp;
        s->kind = kind;
    }
    double cap = m_cap_of(m, kind);
    if (cap > s->m_cap)
        s->m_cap = cap;
    if (m->max_context_tokens > s->max_ctx)
        s->max_ctx = m->max_context_tokens;
    if (strstr(s->used_by, user) == NULL) {
        size_t len = strlen(s->used_by);
        if (len + strlen(user) + 2 < sizeof s->used_by)
            snprintf(s->used_by + len, sizeof s->used_by - len, "%s%s", len ? "," : "",
                     user);
    }
}

static void probe_ops(const llm_model *m, int tp, int32_t tokens, op_list *ops)
{
    batch_shape b = {.n_decode = tokens, .decode_ctx_sum = 0, .n_sampled = tokens};
    ops_decompose(m, &PAR_TP(tp), &b, ops);
}

static void collect(specs *ss, const llm_model *m, int tp)
{
    batch_seq chunk = {.q_tokens = 64, .ctx_tokens = 0};
    batch_shape b = {.prefill = &chunk, .n_prefill = 1, .n_decode = 4,
                     .decode_ctx_sum = 400, .n_sampled = 5};
    op_list ops;
    ops_decompose(m, &PAR_TP(tp), &b, &ops);
    for (int i = 0; i < ops.n; i++) {
        ctab_key key;
        if (ctab_key_of_op(m, tp, &ops.op[i], &key) < 0)
            continue;
        add_spec(ss, &key, m, tp, ops.op[i].kind);
        if (key.family == CTAB_MOE_EXPERTS && m->moe_skew == 0) {
            /* the same experts under skewed routing, priced with a skewed copy */
            llm_model skewed = *m;
            llm_set_moe_skew(&skewed, CTAB_SKEW_MEASURED);
            ctab_key_of_op(&skewed, tp, &ops.op[i], &key);
            add_spec(ss, &key, &skewed, tp, ops.op[i].kind);
        }
    }
}

/* ---- per-point FLOPs and bytes ----------------------------------------------- */

/* The op of `kind` that maps to the entry of s in this op list. */
static const op_desc *find_op(const spec *s, const op_list *ops)
{
    for (int i = 0; i < ops->n; i++) {
        ctab_key key;
        if (ops->op[i].kind != s->kind ||
            ctab_key_of_op(&s->model, s->tp, &ops->op[i], &key) < 0)
            continue;
        ctab_key k2 = {.family = s->family};
        memcpy(k2.p, s->p, sizeof k2.p);
        if (ctab_key_same_entry(&key, &k2))
            return &ops->op[i];
    }
    SIM_ASSERT(!"probe batch lacks the entry's op");
    return NULL;
}

static void fill_affine(const spec *s, calib_entry *e)
{
    op_list a, b;
    probe_ops(&s->model, s->tp, 64, &a);
    probe_ops(&s->model, s->tp, 128, &b);
    const op_desc *oa = find_op(s, &a), *ob = find_op(s, &b);
    double dm = (double)(ob->m - oa->m);
    SIM_ASSERT(dm > 0);
    double df = (ob->flops - oa->flops) / dm, db = (ob->bytes - oa->bytes) / dm;
    for (int i = 0; i < e->n_points; i++) {
        double m = e->axis[0].v[i] - (double)oa->m;
        e->flops[i] = fmax(oa->flops + df * m, 0);
        e->bytes[i] = fmax(oa->bytes + db * m, 0);
    }
}

static void fill_experts(const spec *s, calib_entry *e)
{
    for (int i = 0; i < e->n_points; i++) {
        op_list ops;
        probe_ops(&s->model, s->tp, (int32_t)e->axis[0].v[i], &ops);
        const op_desc *op = find_op(s, &ops);
        e->flops[i] = op->flops;
        e->bytes[i] = op->bytes;
    }
}

static double kv_bytes_per_token(const spec *s)
{
    /* K and V of one layer on one GPU. */
    return 2.0 * (double)s->p[1] * (double)s->p[2] * (double)s->p[3];
}

static void fill_attention(const spec *s, calib_entry *e)
{
    const calib_axis *a0 = &e->axis[0], *a1 = &e->axis[1];
    for (int i = 0; i < a0->n; i++) {
        for (int j = 0; j < a1->n; j++) {
            int pt = i * a1->n + j;
            double lo0 = a0->v[i > 0 ? i - 1 : 0], lo1 = a1->v[j > 0 ? j - 1 : 0];
            op_list ops;
            if (s->family == CTAB_ATTN_PREFILL) {
                batch_seq chunk = {.q_tokens = (int32_t)a0->v[i],
                                   .ctx_tokens = (int32_t)a1->v[j]};
                batch_shape b = {.prefill = &chunk, .n_prefill = 1, .n_sampled = 1};
                ops_decompose(&s->model, &PAR_TP(s->tp), &b, &ops);
                /* Every cell this point borders starts past the longest context. */
                e->skip[pt] = lo0 + lo1 > s->max_ctx;
            } else {
                int32_t batch = (int32_t)a0->v[i];
                double ctx = a1->v[j];
                batch_shape b = {.n_decode = batch,
                                 .decode_ctx_sum = (int64_t)batch * (int64_t)(ctx - 1),
                                 .n_sampled = batch};
                ops_decompose(&s->model, &PAR_TP(s->tp), &b, &ops);
                e->skip[pt] = lo1 > s->max_ctx ||
                              batch * ctx * kv_bytes_per_token(s) > CALIB_KV_CAP_BYTES;
            }
            const op_desc *op = find_op(s, &ops);
            e->flops[pt] = op->flops;
            e->bytes[pt] = op->bytes;
        }
    }
}

/* Power at the first and last point of each axis, and the middle of the
 * first axis for GEMMs and attention (where power changes most, from
 * memory-bound to compute-bound); in 2-D the last measured point of a row
 * stands in for a skipped one. */
static void mark_energy(calib_entry *e, int quick)
{
    const ctab_family_info *fi = ctab_family_get(e->family);
    if (e->family == CTAB_COPY)
        return;
    int pick[CTAB_MAX_AXES][3], npick[CTAB_MAX_AXES];
    for (int a = 0; a < fi->n_axes; a++) {
        int n = e->axis[a].n;
        npick[a] = 0;
        pick[a][npick[a]++] = 0;
        int mid = e->family == CTAB_GEMM || e->family == CTAB_MOE_ROUTER ||
                  e->family == CTAB_MOE_EXPERTS || e->family == CTAB_ATTN_PREFILL ||
                  e->family == CTAB_ATTN_DECODE;
        if (!quick && a == 0 && n >= 3 && mid)
            pick[a][npick[a]++] = n / 2;
        if (n > 1)
            pick[a][npick[a]++] = n - 1;
    }
    if (fi->n_axes == 1) {
        for (int i = 0; i < npick[0]; i++)
            e->energy[pick[0][i]] = 1;
        return;
    }
    /* 2-D: the last column may be skipped; take the last measured one. */
    int n1 = e->axis[1].n;
    for (int i = 0; i < npick[0]; i++) {
        int row = pick[0][i];
        for (int k = 0; k < npick[1]; k++) {
            int col = pick[1][k];
            while (col > 0 && e->skip[row * n1 + col])
                col--;
            if (!e->skip[row * n1 + col])
                e->energy[row * n1 + col] = 1;
        }
    }
}

static void build_entry(calib_plan *plan, const spec *s, int quick)
{
    calib_axis ax[CTAB_MAX_AXES];
    memset(ax, 0, sizeof ax);
    static const double prefill_q_quick[] = {16, 512, 4096};
    static const double prefix_full[] = {0, 512, 2048, 8192, 32768};
    static const double prefix_quick[] = {0, 4096};
    static const double batch_quick[] = {1, 16, 256};
    static const double ctx_quick[] = {128, 1024, 8192};
    switch (s->family) {
    case CTAB_ATTN_PREFILL:
        if (quick) {
            axis_list(&ax[0], prefill_q_quick, 3);
            axis_list(&ax[1], prefix_quick, 2);
        } else {
            axis_pow2(&ax[0], 1, 16384, 0);
            axis_list(&ax[1], prefix_full, 5);
        }
        break;
    case CTAB_ATTN_DECODE:
        if (quick) {
            axis_list(&ax[0], batch_quick, 3);
            axis_list(&ax[1], ctx_quick, 3);
        } else {
            axis_pow2(&ax[0], 1, 512, 0);
            axis_pow2(&ax[1], 32, s->max_ctx, 0);
        }
        break;
    default:
        axis_pow2(&ax[0], 1, s->m_cap, quick);
        break;
    }
    calib_entry *e = calib_plan_add_entry(plan, s->family, s->p, ax);
    snprintf(e->used_by, sizeof e->used_by, "%s", s->used_by);
    if (s->family == CTAB_ATTN_PREFILL || s->family == CTAB_ATTN_DECODE)
        fill_attention(s, e);
    else if (s->family == CTAB_MOE_EXPERTS)
        fill_experts(s, e);
    else
        fill_affine(s, e);
    mark_energy(e, quick);
}

static void add_copies(calib_plan *plan, int quick)
{
    for (int dir = 0; dir < 2; dir++) {
        for (int pinned = 1; pinned >= 0; pinned--) {
            calib_axis ax[CTAB_MAX_AXES];
            memset(ax, 0, sizeof ax);
            ax[0].n = 0;
            for (double b = 4096; b <= (quick ? 64.0 : 1024.0) * 1024 * 1024;
                 b *= quick ? 16 : 4)
                ax[0].v[ax[0].n++] = b;
            int64_t p[CTAB_MAX_PARAMS] = {dir, pinned};
            calib_entry *e = calib_plan_add_entry(plan, CTAB_COPY, p, ax);
            snprintf(e->used_by, sizeof e->used_by, "%s",
                     dir ? "kv_swap_out" : "kv_swap_in,expert_weight_load");
            for (int i = 0; i < e->n_points; i++)
                e->bytes[i] = e->axis[0].v[i];
        }
    }
}

/* ---- layers ------------------------------------------------------------------- */

typedef struct composition {
    const char *name;
    int32_t n_prefill, q, prefix, n_decode, decode_ctx;
} composition;

static const composition compositions[] = {
    {"prefill", 1, 2048, 0, 0, 0},
    {"prefill_cached", 1, 512, 3584, 0, 0},
    {"decode_small", 0, 0, 0, 8, 1024},
    {"decode_large", 0, 0, 0, 256, 2048},
    {"mixed", 1, 512, 0, 64, 1024},
    {"mixed_large", 2, 1024, 512, 128, 512},
};

static void add_layer(calib_plan *plan, const llm_model *m, const composition *c)
{
    calib_layer *l = calib_plan_add_layer(plan);
    snprintf(l->name, sizeof l->name, "%s", c->name);
    snprintf(l->model, sizeof l->model, "%s", m->name);
    l->tp = 1;
    l->n_prefill = c->n_prefill;
    l->q = c->q;
    l->prefix = c->prefix;
    l->n_decode = c->n_decode;
    l->decode_ctx = c->decode_ctx;
    batch_seq chunks[8];
    SIM_ASSERT(c->n_prefill <= 8);
    for (int i = 0; i < c->n_prefill; i++)
        chunks[i] = (batch_seq){.q_tokens = c->q, .ctx_tokens = c->prefix};
    batch_shape b = {.prefill = chunks, .n_prefill = c->n_prefill,
                     .n_decode = c->n_decode,
                     .decode_ctx_sum = (int64_t)c->n_decode * c->decode_ctx,
                     .n_sampled = c->n_prefill + c->n_decode};
    op_list ops;
    ops_decompose(m, &PAR_TP(1), &b, &ops);
    for (int i = 0; i < ops.n; i++) {
        const op_desc *op = &ops.op[i];
        ctab_key key;
        /* Per-layer ops only: the embedding, LM head and sampler run once
         * per iteration, not per layer. */
        if (op->repeat < m->layers || ctab_key_of_op(m, 1, op, &key) < 0)
            continue;
        calib_layer_op *o = &l->op[l->n_ops++];
        o->family = key.family;
        snprintf(o->kind, sizeof o->kind, "%s", op_kind_name(op->kind));
        o->count = op->repeat / m->layers;
        o->flops = op->flops;
        o->bytes = op->bytes;
        memcpy(o->p, key.p, sizeof o->p);
        memcpy(o->x, key.x, sizeof o->x);
    }
}

/* ---- the plan ------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The sorted model names: opts->models, or every file in llm/. */
static int model_names(const char *dir, const calib_plan_opts *o, char ***names,
                       int *n, sim_err *err)
{
    *names = NULL;
    *n = 0;
    size_t cap = 0;
    const char *list = o->models ? o->models : o->quick ? "Llama-3-8B" : NULL;
    if (list) {
        char *copy = sim_xstrdup(list), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            sim_grow((void **)names, &cap, (size_t)*n + 1, sizeof **names);
            (*names)[(*n)++] = sim_xstrdup(t);
        }
        free(copy);
        return 0;
    }
    char folder[4096];
    snprintf(folder, sizeof folder, "%s/llm", dir);
    DIR *d = opendir(folder);
    if (!d)
        return sim_errf(err, "%s: cannot open the models folder", folder);
    for (struct dirent *de; (de = readdir(d));) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".json"))
            continue;
        sim_grow((void **)names, &cap, (size_t)*n + 1, sizeof **names);
        (*names)[*n] = sim_xstrdup(de->d_name);
        (*names)[(*n)++][len - 5] = 0;
    }
    closedir(d);
    qsort(*names, (size_t)*n, sizeof **names, cmp_str);
    return 0;
}

/* Entries sorted by family, then params, so plans are stable. */
static int cmp_spec(const void *a, const void *b)
{
    const spec *x = a, *y = b;
    if (x->family != y->family)
        return x->family < y->family ? -1 : 1;
    for (int i = 0; i < CTAB_MAX_PARAMS; i++)
        if (x->p[i] != y->p[i])
            return x->p[i] < y->p[i] ? -1 : 1;
    return 0;
}

int calib_plan_build(const char *models_dir, const calib_plan_opts *opts,
                     calib_plan *out, sim_err *err)
{
    calib_plan_init(out);
    snprintf(out->name, sizeof out->name, "%s", opts->quick ? "quick" : "full");
    char **names;
    int n_names, rc = -1;
    if (model_names(models_dir, opts, &names, &n_names, err))
        return -1;
    specs ss = {0};
    llm_model *models = sim_xcalloc((size_t)n_names + 1, sizeof *models);
    for (int i = 0; i < n_names; i++) {
        if (llm_model_load(models_dir, names[i], &models[i], err))
            goto done;
        for (int tp = 1; tp <= (opts->quick ? 1 : 8); tp *= 2)
            if (llm_check_tp(&models[i], tp, NULL) == 0)
                collect(&ss, &models[i], tp);
    }
    qsort(ss.s, ss.n, sizeof *ss.s, cmp_spec);
    for (size_t i = 0; i < ss.n; i++)
        build_entry(out, &ss.s[i], opts->quick);
    add_copies(out, opts->quick);
    if (opts->layers) {
        static const char *const layer_models[] = {"Llama-3-8B", "Mixtral-8x7B"};
        int n_comp = opts->quick ? 2 : (int)(sizeof compositions / sizeof *compositions);
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < n_names; i++)
                if (strcmp(names[i], layer_models[k]) == 0)
                    for (int c = 0; c < n_comp; c++)
                        add_layer(out, &models[i], &compositions[opts->quick ? c * 4 : c]);
    }
    rc = 0;
done:
    for (int i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    free(models);
    free(ss.s);
    if (rc)
        calib_plan_fini(out);
    return rc;
}
