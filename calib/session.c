/* Sessions: ranking a plan, taking one session from it, and what a table
 * has covered (see session.h).
 *
 * Design. The priority rule is entry_rank and the table calib_featured_configs
 * below, nothing else: an entry's value is the configurations (model, TP)
 * whose operators it prices on the session's GPU, read from its used_by.
 * A configuration counts when the table would price it: its weights fit
 * the GPU at that TP (as a run checks, serve/kv.c), and, for linear layers
 * (GEMMs other than the LM head, MoE experts), when they run in 16 bits:
 * the tables are measured in bf16, so DeepSeek-V3's FP8 linear layers and
 * Llama-3.1-405B at TP 4 are never priced from an H200 table and come last.
 * Before them, in order:
 *  1. the configurations the bundled experiments and the whole-layer
 *     validation run: the first measured table must price them completely
 *     (`servesim run experiments/quickstart.json --set gpu=H200-141GB` with
 *     every term from the table), and they exercise every family, so every
 *     kernel meets the GPU in the first session;
 *  2. entries of dense configurations, then those only MoE configurations
 *     use: 12 of the 15 bundled models are dense, and the MoE kernels
 *     (expert slices at odd offsets) are the likeliest to fail;
 *  3. within a tier, entries that price more configurations first (norms,
 *     RoPE and attention shared by several models and every TP), then the
 *     cheaper, then plan order (so the order is total and deterministic).
 *
 * A session takes entries in that order and stops at the first that does
 * not fit (reserves in budget.c), so every entry it measures ranks before
 * every entry it leaves; that costs at most one entry's time of the
 * deadline. Within a family the session plan lists entries in rank order:
 * a family cut short by its cap has measured its most valuable entries,
 * and its completion (h200_run.sh, --start) goes on in the same order.
 *
 * Coverage is per point: a later plan keeps an entry with the points a
 * table has measured marked skip, so a session that stopped halfway
 * through an entry, or a point that failed, costs a later session only
 * the points still missing; merge joins the tables point by point. */
#include "calib/session.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/cost_table.h"
#include "sim/jsoncfg.h"

/* Defaults of a run's instance (experiments/README.md): the share of HBM
 * an instance may use and the activation reserve. */
#define FIT_MEMORY_UTILIZATION 0.9
#define FIT_ACTIVATION_RESERVE_BYTES (2.0 * 1024 * 1024 * 1024)

const calib_featured calib_featured_configs[] = {
    {"Llama-3-8B", 1, "experiments/quickstart.json (and most others); layer validation"},
    {"Mixtral-8x7B", 1, "layer validation (MoE)"},
    {"Qwen3-30B-A3B", 2, "experiments/batch_policies.json"},
    {"Llama-2-70B", 2, "experiments/bench_10k.json, bench_100k.json"},
    {NULL, 0, NULL},
};

const char *calib_tier_name(calib_tier t)
{
    static const char *const names[CALIB_TIER_COUNT] = {"featured", "dense", "moe",
                                                          "unused"};
    SIM_ASSERT(t >= 0 && t < CALIB_TIER_COUNT);
    return names[t];
}

int calib_config_fits(const llm_model *m, int tp, const gpu_spec *g)
{
    double weights = llm_weight_bytes_per_gpu(m, &PAR_TP(tp));
    return weights + FIT_ACTIVATION_RESERVE_BYTES < g->hbm_bytes * FIT_MEMORY_UTILIZATION;
}

/* ---- ranking ------------------------------------------------------------------- */

typedef struct config {
    llm_model m;
    int tp;
    int fits;
    int featured;
} config;

typedef struct configs {
    config *c;
    size_t n, cap;
} configs;

static int is_featured(const char *model, int tp)
{
    for (const calib_featured *f = calib_featured_configs; f->model; f++)
        if (f->tp == tp && strcmp(f->model, model) == 0)
            return 1;
    return 0;
}

static config *find_config(const configs *cs, const char *model, int tp)
{
    for (size_t i = 0; i < cs->n; i++)
        if (cs->c[i].tp == tp && strcmp(cs->c[i].m.name, model) == 0)
            return &cs->c[i];
    return NULL;
}

/* "Model/tpN" into its parts; 0 when tok is not of that form (copies say
 * what they serve instead: kv_swap_in, ...). */
static int parse_user(const char *tok, char *model, size_t n, int *tp)
{
    const char *slash = strstr(tok, "/tp");
    char *end = NULL;
    if (!slash || slash == tok || (size_t)(slash - tok) >= n)
        return 0;
    long v = strtol(slash + 3, &end, 10);
    if (*end || v < 1)
        return 0;
    memcpy(model, tok, (size_t)(slash - tok));
    model[slash - tok] = 0;
    *tp = (int)v;
    return 1;
}

static int cmp_config(const void *a, const void *b)
{
    const config *x = a, *y = b;
    int c = strcmp(x->m.name, y->m.name);
    return c ? c : (x->tp > y->tp) - (x->tp < y->tp);
}

/* Every configuration the entries' used_by name, its model loaded once;
 * sorted by model and TP. */
static int load_configs(const calib_plan *plan, const char *models_dir, const gpu_spec *g,
                        configs *cs, sim_err *err)
{
    for (int i = 0; i < plan->n_entries; i++) {
        char buf[CALIB_USED_BY_BYTES], *save = NULL;
        snprintf(buf, sizeof buf, "%s", plan->entry[i].used_by);
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            char name[64];
            int tp;
            if (!parse_user(t, name, sizeof name, &tp) || find_config(cs, name, tp))
                continue;
            config c = {.tp = tp};
            config *same_model = NULL;
            for (size_t k = 0; k < cs->n && !same_model; k++)
                if (strcmp(cs->c[k].m.name, name) == 0)
                    same_model = &cs->c[k];
            if (same_model)
                c.m = same_model->m;
            else if (llm_model_load(models_dir, name, &c.m, err))
                return sim_err_prefix(err, "plan entry %d (%s): used_by %s", i,
                                      ctab_family_get(plan->entry[i].family)->name, t);
            c.fits = calib_config_fits(&c.m, tp, g);
            c.featured = is_featured(name, tp);
            sim_grow((void **)&cs->c, &cs->cap, cs->n + 1, sizeof *cs->c);
            cs->c[cs->n++] = c;
        }
    }
    if (cs->n)
        qsort(cs->c, cs->n, sizeof *cs->c, cmp_config);
    return 0;
}

static int sixteen_bit(llm_dtype d)
{
    return d == LLM_BF16 || d == LLM_FP16;
}

/* Whether entry e prices an op of configuration c in a run on the GPU: the
 * rule models/cost_table.c applies (linear layers only in 16 bits; the LM
 * head stays 16-bit in every precision), for a configuration that fits. */
static int prices(const calib_entry *e, const config *c)
{
    if (!c->fits)
        return 0;
    if (sixteen_bit(c->m.prec.weights) && sixteen_bit(c->m.prec.activations))
        return 1;
    if (e->family == CTAB_MOE_EXPERTS)
        return 0;
    if (e->family == CTAB_GEMM)   /* the LM head: n = the vocabulary shard, k = hidden */
        return e->p[0] == (c->m.vocab + c->tp - 1) / c->tp && e->p[1] == c->m.hidden;
    return 1;
}

/* The priority rule (see the file comment). */
static calib_rank entry_rank(const calib_entry *e, int index, const configs *cs,
                             const gpu_spec *g, double counter_period_s)
{
    calib_rank r = {.tier = CALIB_TIER_UNUSED, .index = index};
    double lat, en;
    calib_entry_estimate(e, g, 0, counter_period_s, &lat, &en);
    r.est_s = lat + en;
    int any_user = 0, featured = 0, dense = 0;
    char buf[CALIB_USED_BY_BYTES], *save = NULL;
    snprintf(buf, sizeof buf, "%s", e->used_by);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char name[64];
        int tp;
        if (!parse_user(t, name, sizeof name, &tp))
            continue;
        any_user = 1;
        const config *c = find_config(cs, name, tp);
        SIM_ASSERT(c != NULL);
        if (!prices(e, c))
            continue;
        r.configs++;
        featured |= c->featured;
        dense |= c->m.experts == 0;
    }
    if (!any_user) {
        /* copies (KV swap, expert loading) serve every configuration that fits */
        for (size_t i = 0; i < cs->n; i++) {
            r.configs += cs->c[i].fits;
            dense |= cs->c[i].fits && cs->c[i].m.experts == 0;
        }
    }
    r.tier = featured ? CALIB_TIER_FEATURED
           : dense ? CALIB_TIER_DENSE
           : r.configs ? CALIB_TIER_MOE : CALIB_TIER_UNUSED;
    return r;
}

int calib_plan_rank(const calib_plan *plan, const char *models_dir, const gpu_spec *g,
                    double counter_period_s, calib_rank *out, sim_err *err)
{
    configs cs = {0};
    int rc = load_configs(plan, models_dir, g, &cs, err);
    for (int i = 0; rc == 0 && i < plan->n_entries; i++)
        out[i] = entry_rank(&plan->entry[i], i, &cs, g, counter_period_s);
    free(cs.c);
    return rc;
}

/* Whether used_by lists configuration c. */
static int lists(const char *used_by, const config *c)
{
    char buf[CALIB_USED_BY_BYTES], *save = NULL;
    snprintf(buf, sizeof buf, "%s", used_by);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char name[64];
        int tp;
        if (parse_user(t, name, sizeof name, &tp) && tp == c->tp && !strcmp(name, c->m.name))
            return 1;
    }
    return 0;
}

int calib_configs_complete(const calib_plan *plan, const calib_plan *part,
                           const char *models_dir, const gpu_spec *g, int *n_fit,
                           int *n_complete, char *complete, size_t size, sim_err *err)
{
    configs cs = {0};
    *n_fit = *n_complete = 0;
    if (complete && size)
        complete[0] = 0;
    int rc = load_configs(plan, models_dir, g, &cs, err);
    for (size_t k = 0; rc == 0 && k < cs.n; k++) {
        const config *c = &cs.c[k];
        if (!c->fits)
            continue;
        (*n_fit)++;
        int all = 1;
        for (int i = 0; i < plan->n_entries && all; i++) {
            const calib_entry *e = &plan->entry[i];
            if (lists(e->used_by, c) && prices(e, c))
                all = calib_plan_find(part, e->family, e->p) >= 0;
        }
        if (!all)
            continue;
        (*n_complete)++;
        if (complete && size) {
            size_t len = strlen(complete);
            snprintf(complete + len, size - len, "%s%s/tp%d", len ? "," : "", c->m.name, c->tp);
        }
    }
    free(cs.c);
    return rc;
}

int calib_rank_cmp(const calib_rank *a, const calib_rank *b)
{
    if (a->tier != b->tier)
        return a->tier < b->tier ? -1 : 1;
    if (a->configs != b->configs)
        return a->configs > b->configs ? -1 : 1;
    if (a->est_s != b->est_s)
        return a->est_s < b->est_s ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

static int cmp_rank_qsort(const void *a, const void *b)
{
    return calib_rank_cmp(a, b);
}

/* ---- one session ------------------------------------------------------------------ */

/* "gemm 4096 14336" */
static void entry_text(const calib_entry *e, char *out, size_t n)
{
    const ctab_family_info *fi = ctab_family_get(e->family);
    size_t len = (size_t)snprintf(out, n, "%s", fi->name);
    for (int j = 0; j < fi->n_params && len < n; j++)
        len += (size_t)snprintf(out + len, n - len, " %lld", (long long)e->p[j]);
}

static int entry_points(const calib_entry *e)
{
    int n = 0;
    for (int i = 0; i < e->n_points; i++)
        n += !e->skip[i];
    return n;
}

/* Copies the entries of `plan` marked in `take` (sorted[k] in rank order)
 * into dst by family, in rank order within a family, with their ranks. */
static void copy_taken(const calib_plan *plan, const calib_rank *sorted, const uint8_t *take,
                       int want, calib_plan *dst, calib_rank **ranks)
{
    *ranks = sim_xcalloc((size_t)plan->n_entries + 1, sizeof **ranks);
    for (int f = 0; f < CTAB_FAMILY_COUNT; f++)
        for (int k = 0; k < plan->n_entries; k++) {
            const calib_entry *e = &plan->entry[sorted[k].index];
            if (take[k] != want || e->family != (ctab_family)f)
                continue;
            (*ranks)[dst->n_entries] = sorted[k];
            (*ranks)[dst->n_entries].index = dst->n_entries;
            calib_plan_copy_entry(dst, e);
        }
}

int calib_session_build(const calib_plan *plan, const calib_rank *rank, const gpu_spec *g,
                        double deadline_s, double counter_period_s, calib_session *out,
                        sim_err *err)
{
    memset(out, 0, sizeof *out);
    calib_plan_init(&out->session);
    calib_plan_init(&out->later);
    snprintf(out->session.name, sizeof out->session.name, "session");
    snprintf(out->later.name, sizeof out->later.name, "later");
    out->session.page_tokens = out->later.page_tokens = plan->page_tokens;
    int n = plan->n_entries;
    for (int i = 0; i < n; i++)
        SIM_ASSERT(rank[i].index == i);   /* calib_plan_rank's, of this plan */
    calib_rank *sorted = sim_xcalloc((size_t)n + 1, sizeof *sorted);
    uint8_t *take = sim_xcalloc((size_t)n + 1, 1);
    memcpy(sorted, rank, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_rank_qsort);

    calib_estimate all;
    calib_plan_estimate(plan, g, 0, counter_period_s, &all);
    double budget = calib_schedule_budget_s(deadline_s), step = calib_schedule_step_overhead_s();
    double reserve = calib_schedule_fixed_s() + (plan->n_layers ? all.layer_s + step : 0);
    int has_step[CTAB_FAMILY_COUNT] = {0}, taken = 0;
    for (int k = 0; k < n; k++) {
        const calib_entry *e = &plan->entry[sorted[k].index];
        int points = entry_points(e);
        double cost = sorted[k].est_s + (points && !has_step[e->family] ? step : 0);
        if (reserve + cost > budget)
            break;
        reserve += cost;
        has_step[e->family] |= points > 0;
        take[k] = 1;
        taken++;
    }
    int rc = 0;
    if (n > 0 && taken == 0) {
        char what[96];
        entry_text(&plan->entry[sorted[0].index], what, sizeof what);
        rc = sim_errf(err, "the first entry (%s, %.1f s) does not fit a session: the build, "
                      "check and layers already reserve %.0f s, and a %.0f s deadline allows "
                      "%.0f s", what, sorted[0].est_s, reserve, deadline_s, budget);
        goto done;
    }
    copy_taken(plan, sorted, take, 1, &out->session, &out->session_rank);
    copy_taken(plan, sorted, take, 0, &out->later, &out->later_rank);
    for (int i = 0; i < plan->n_layers; i++)
        *calib_plan_add_layer(&out->session) = plan->layer[i];
    calib_plan_estimate(&out->session, g, 0, counter_period_s, &out->est_session);
    calib_plan_estimate(&out->later, g, 0, counter_period_s, &out->est_later);
    rc = calib_schedule_build(&out->est_session, g->name, out->session.name, deadline_s,
                              &out->schedule, err);
    if (rc == 0) {
        /* the greedy's tally and the schedule's are the same arithmetic */
        SIM_ASSERT(fabs(out->schedule.reserve_total_s - reserve) < 1e-6);
        out->schedule.later_entries = out->later.n_entries;
        for (int i = 0; i < out->later.n_entries; i++)
            out->schedule.later_points += entry_points(&out->later.entry[i]);
        out->schedule.later_est_s = out->est_later.total_s;
    }
done:
    free(sorted);
    free(take);
    return rc;
}

void calib_session_fini(calib_session *s)
{
    if (!s)
        return;
    calib_plan_fini(&s->session);
    calib_plan_fini(&s->later);
    free(s->session_rank);
    free(s->later_rank);
    memset(s, 0, sizeof *s);
}

int calib_session_write(const calib_session *s, FILE *f)
{
    if (calib_schedule_write(&s->schedule, f))
        return -1;
    if (s->later.n_entries)
        fprintf(f, "#     family         params                     tier      configs  est_s\n");
    calib_rank *sorted = sim_xcalloc((size_t)s->later.n_entries + 1, sizeof *sorted);
    memcpy(sorted, s->later_rank, (size_t)s->later.n_entries * sizeof *sorted);
    qsort(sorted, (size_t)s->later.n_entries, sizeof *sorted, cmp_rank_qsort);
    for (int k = 0; k < s->later.n_entries; k++) {
        const calib_entry *e = &s->later.entry[sorted[k].index];
        const char *family = ctab_family_get(e->family)->name;
        char what[96];
        entry_text(e, what, sizeof what);
        fprintf(f, "later %-14s %-26s %-9s %7d %6.1f\n", family, what + strlen(family) + 1,
                calib_tier_name(sorted[k].tier), sorted[k].configs, sorted[k].est_s);
    }
    free(sorted);
    return ferror(f) ? -1 : 0;
}

int calib_sessions_needed(const calib_plan *plan, const char *models_dir, const gpu_spec *g,
                          double deadline_s, double counter_period_s, int *sessions,
                          sim_err *err)
{
    *sessions = 0;
    calib_plan cur = {0};
    const calib_plan *p = plan;
    int rc = 0;
    while (rc == 0 && (p->n_entries > 0 || (*sessions == 0 && p->n_layers > 0))) {
        SIM_ASSERT(*sessions < 1000);   /* each session takes at least one entry */
        calib_rank *rank = sim_xcalloc((size_t)p->n_entries + 1, sizeof *rank);
        calib_session s;
        rc = calib_plan_rank(p, models_dir, g, counter_period_s, rank, err);
        if (rc == 0)
            rc = calib_session_build(p, rank, g, deadline_s, counter_period_s, &s, err);
        free(rank);
        if (rc)
            break;
        (*sessions)++;
        calib_plan_fini(&cur);
        cur = s.later;   /* moved out of s */
        memset(&s.later, 0, sizeof s.later);
        calib_session_fini(&s);
        /* a later session measures the layers again (planned from the full
         * plan, which has them) */
        for (int i = 0; i < plan->n_layers; i++)
            *calib_plan_add_layer(&cur) = plan->layer[i];
        p = &cur;
    }
    calib_plan_fini(&cur);
    return rc;
}

/* ---- coverage ------------------------------------------------------------------ */

static cJSON *item(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* The table entry with e's params, and its index, or NULL. */
static cJSON *table_entry(const cJSON *entries, const calib_entry *e, int *idx)
{
    const ctab_family_info *fi = ctab_family_get(e->family);
    int k = 0;
    for (cJSON *x = entries ? entries->child : NULL; x; x = x->next, k++) {
        const cJSON *p = item(x, "params");
        int same = 1;
        for (int j = 0; j < fi->n_params && same; j++) {
            const cJSON *v = item(p, fi->param[j]);
            same = cJSON_IsNumber(v) && v->valuedouble == (double)e->p[j];
        }
        if (same) {
            *idx = k;
            return x;
        }
    }
    return NULL;
}

/* Equal to the last bits a JSON round trip may change: tables are written
 * with 17 digits, but cJSON prints a merged table with 15 when they read
 * back within its own epsilon (merge compares entries the same way). */
static int same_num(double a, double b)
{
    return fabs(a - b) <= 1e-12 * fmax(fabs(a), fabs(b));
}

static int same_array(const cJSON *a, const double *v, int n)
{
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return 0;
    int i = 0;
    for (const cJSON *x = a->child; x; x = x->next, i++)
        if (!cJSON_IsNumber(x) || !same_num(x->valuedouble, v[i]))
            return 0;
    return 1;
}

/* Which of axes, flops and bytes differ between the table's entry and the
 * plan's, or NULL. */
static const char *differs(const cJSON *x, const calib_entry *e)
{
    const ctab_family_info *fi = ctab_family_get(e->family);
    for (int a = 0; a < fi->n_axes; a++)
        if (!same_array(item(item(x, "axes"), fi->axis[a]), e->axis[a].v, e->axis[a].n))
            return "axes";
    if (!same_array(item(x, "flops"), e->flops, e->n_points))
        return "flops";
    if (!same_array(item(x, "bytes"), e->bytes, e->n_points))
        return "bytes";
    return NULL;
}

int calib_plan_skip_covered(calib_plan *plan, const char *table_path, const char *gpu_name,
                            calib_cover_stats *st, sim_err *err)
{
    memset(st, 0, sizeof *st);
    ctab *t = ctab_load(table_path, gpu_name, err);
    if (!t)
        return -1;
    ctab_destroy(t);
    cJSON *root;
    if (jcfg_load_file(table_path, &root, err))
        return -1;
    calib_plan out;
    calib_plan_init(&out);
    memcpy(out.name, plan->name, sizeof out.name);
    out.page_tokens = plan->page_tokens;
    int rc = 0;
    for (int i = 0; i < plan->n_entries && rc == 0; i++) {
        const calib_entry *e = &plan->entry[i];
        const char *fam = ctab_family_get(e->family)->name;
        int idx = 0;
        cJSON *x = table_entry(item(item(item(root, "families"), fam), "entries"), e, &idx);
        const char *what = x ? differs(x, e) : NULL;
        if (what) {
            rc = sim_errf(err, "%s: $.families.%s.entries[%d].%s: differs from the plan's "
                          "entry with the same params (the table was measured from another "
                          "plan)", table_path, fam, idx, what);
            break;
        }
        const cJSON *med = x ? item(item(x, "latency_ns"), "median") : NULL;
        int covered = 0, left = 0;
        for (int pt = 0; pt < e->n_points; pt++)
            if (!e->skip[pt]) {
                int m = med && cJSON_IsNumber(cJSON_GetArrayItem(med, pt));
                covered += m;
                left += !m;
            }
        st->points_covered += covered;
        st->points_left += left;
        if (!left) {
            st->entries_covered++;
            continue;
        }
        st->entries_partial += covered > 0;
        st->entries_missing += covered == 0;
        calib_entry *c = calib_plan_copy_entry(&out, e);
        for (int pt = 0; pt < c->n_points && covered; pt++)
            c->skip[pt] |= med && cJSON_IsNumber(cJSON_GetArrayItem(med, pt));
    }
    cJSON_Delete(root);
    if (rc) {
        calib_plan_fini(&out);
        return -1;
    }
    for (int i = 0; i < plan->n_layers; i++)
        *calib_plan_add_layer(&out) = plan->layer[i];
    calib_plan_fini(plan);
    *plan = out;
    return 0;
}
