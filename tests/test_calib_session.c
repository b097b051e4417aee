/* Tests for calib/session.c: the priority of plan entries, the session one
 * GPU command measures and what it leaves, and the plan of what a measured
 * table has not covered yet. Tables are synthetic (calib/synth.c), written
 * as servesim-calib writes them; the assertions are derived from the plans,
 * the model files and the budget constants, not copied from an output:
 * a session fits its deadline, every entry it measures ranks before every
 * entry it leaves, session and later plans together are the full plan, the
 * configurations of the bundled experiments are measured first, a covered
 * table shrinks the next plan (point by point), and sessions converge. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calib/merge.h"
#include "calib/session.h"
#include "calib/synth.h"
#include "tests/suites.h"
#include "tests/testutil.h"

#define FULL_PLAN "calib/plans/full.plan"
#define H200_PLAN "calib/plans/h200.plan"
#define H200_SCHEDULE "calib/plans/h200.schedule"
#define H200_TABLE "calib/tables/H200-141GB.json"   /* the measured table, once there is one */

static void load_full(calib_plan *plan, gpu_spec *g)
{
    sim_err err = {{0}};
    ck_assert_msg(calib_plan_load(FULL_PLAN, plan, &err) == 0, "%s", err.msg);
    if (g)
        ck_assert_msg(gpu_spec_load(models_dir(), "H200-141GB", g, &err) == 0, "%s", err.msg);
}

static calib_rank *rank_plan(const calib_plan *plan, const gpu_spec *g)
{
    sim_err err = {{0}};
    calib_rank *r = sim_xcalloc((size_t)plan->n_entries + 1, sizeof *r);
    ck_assert_msg(calib_plan_rank(plan, models_dir(), g, CALIB_COUNTER_PERIOD_ASSUMED_S, r,
                                  &err) == 0, "%s", err.msg);
    return r;
}

static void split(const calib_plan *plan, const gpu_spec *g, double deadline_s,
                  calib_session *s)
{
    sim_err err = {{0}};
    calib_rank *r = rank_plan(plan, g);
    ck_assert_msg(calib_session_build(plan, r, g, deadline_s, CALIB_COUNTER_PERIOD_ASSUMED_S,
                                      s, &err) == 0, "%s", err.msg);
    free(r);
}

static int points_of(const calib_entry *e)
{
    int n = 0;
    for (int i = 0; i < e->n_points; i++)
        n += !e->skip[i];
    return n;
}

static int same_entry(const calib_entry *a, const calib_entry *b)
{
    size_t n = (size_t)a->n_points;
    return a->family == b->family && a->n_points == b->n_points &&
           memcmp(a->p, b->p, sizeof a->p) == 0 && memcmp(a->axis, b->axis, sizeof a->axis) == 0 &&
           memcmp(a->flops, b->flops, n * sizeof *a->flops) == 0 &&
           memcmp(a->bytes, b->bytes, n * sizeof *a->bytes) == 0 &&
           memcmp(a->energy, b->energy, n) == 0 && memcmp(a->skip, b->skip, n) == 0 &&
           strcmp(a->used_by, b->used_by) == 0;
}

/* The entry of `plan` with e's family and params, or NULL. */
static const calib_entry *find(const calib_plan *plan, const calib_entry *e)
{
    int i = calib_plan_find(plan, e->family, e->p);
    return i < 0 ? NULL : &plan->entry[i];
}

static const calib_entry *find_p(const calib_plan *plan, ctab_family f, int64_t p0, int64_t p1)
{
    int64_t p[CTAB_MAX_PARAMS] = {p0, p1};
    int i = calib_plan_find(plan, f, p);
    ck_assert_msg(i >= 0, "no %s entry %lld %lld", ctab_family_get(f)->name, (long long)p0,
                  (long long)p1);
    return &plan->entry[i];
}

static char *table_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = sim_xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* A table of `plan` as a run measuring every point would write it. */
static void write_table(const calib_plan *plan, const gpu_spec *g, const char *path)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(calib_synth_table(plan, g, f), 0);
    ck_assert_int_eq(fclose(f), 0);
}

static void rm_dir(char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}

/* ---- the session -------------------------------------------------------------- */

/* The full plan does not fit one session; the session taken from it does,
 * within the deadline less the spare, at every deadline, and a longer
 * deadline measures a superset. */
START_TEST(test_session_schedule_fits_deadline)
{
    calib_plan full;
    gpu_spec g;
    load_full(&full, &g);
    calib_estimate est;
    calib_plan_estimate(&full, &g, 0, CALIB_COUNTER_PERIOD_ASSUMED_S, &est);
    calib_schedule whole;
    sim_err err = {{0}};
    ck_assert_int_ne(calib_schedule_build(&est, g.name, full.name, CALIB_SCHED_DEADLINE_S,
                                          &whole, &err), 0);
    const double deadlines[] = {200, 300, CALIB_SCHED_DEADLINE_S, 800, 5000};
    int last_n = -1;
    for (size_t d = 0; d < sizeof deadlines / sizeof *deadlines; d++) {
        calib_session s;
        split(&full, &g, deadlines[d], &s);
        const calib_schedule *sc = &s.schedule;
        ck_assert(sc->reserve_total_s <= calib_schedule_budget_s(deadlines[d]) + 1e-6);
        ck_assert(fabs(sc->deadline_s - deadlines[d]) < 1e-12);
        /* a step per family measured, with the session plan's estimate */
        for (int i = 0; i < sc->n_steps; i++) {
            int f = ctab_family_find(sc->step[i].name);
            if (f < 0) {
                ck_assert_str_eq(sc->step[i].name, "layer");
                ck_assert_int_eq(i, sc->n_steps - 1);
                ck_assert_int_eq(s.session.n_layers, full.n_layers);
                continue;
            }
            ck_assert(fabs(sc->step[i].est_s - s.est_session.latency_s[f] -
                           s.est_session.energy_s[f]) < 1e-9);
            ck_assert_int_eq(sc->step[i].entries, s.est_session.entries[f]);
        }
        /* what is left is said */
        ck_assert_int_eq(sc->later_entries, s.later.n_entries);
        int later_points = 0;
        for (int i = 0; i < s.later.n_entries; i++)
            later_points += points_of(&s.later.entry[i]);
        ck_assert_int_eq(sc->later_points, later_points);
        ck_assert(fabs(sc->later_est_s - s.est_later.total_s) < 1e-9);
        /* the session is a prefix of the ranking: a longer deadline, more of it */
        ck_assert(s.session.n_entries >= last_n);
        last_n = s.session.n_entries;
        if (deadlines[d] >= 5000)
            ck_assert_int_eq(s.later.n_entries, 0);
        calib_session_fini(&s);
    }
    calib_plan_fini(&full);
}
END_TEST

/* Every entry measured ranks before every entry left, the first entry
 * left would not have fitted, and within a family the session plan lists
 * its entries in rank order (a family cut short has its best). */
START_TEST(test_session_respects_priority)
{
    calib_plan full;
    gpu_spec g;
    load_full(&full, &g);
    calib_session s;
    split(&full, &g, CALIB_SCHED_DEADLINE_S, &s);
    ck_assert_int_gt(s.later.n_entries, 0);
    const calib_rank *worst_in = NULL, *best_out = NULL;
    for (int i = 0; i < s.session.n_entries; i++) {
        const calib_rank *r = &s.session_rank[i];
        ck_assert_int_eq(r->index, i);
        if (!worst_in || calib_rank_cmp(r, worst_in) > 0)
            worst_in = r;
        if (i > 0 && s.session.entry[i - 1].family == s.session.entry[i].family)
            ck_assert_int_lt(calib_rank_cmp(&s.session_rank[i - 1], r), 0);
        if (i > 0)
            ck_assert(s.session.entry[i - 1].family <= s.session.entry[i].family);
    }
    for (int i = 0; i < s.later.n_entries; i++)
        if (!best_out || calib_rank_cmp(&s.later_rank[i], best_out) < 0)
            best_out = &s.later_rank[i];
    /* ranks are the entries' own: recomputed on the session plan, the same */
    calib_rank *again = rank_plan(&s.session, &g);
    for (int i = 0; i < s.session.n_entries; i++) {
        ck_assert_int_eq(again[i].tier, s.session_rank[i].tier);
        ck_assert_int_eq(again[i].configs, s.session_rank[i].configs);
        ck_assert(again[i].est_s == s.session_rank[i].est_s);
    }
    free(again);
    /* compare by (tier, configs, est): the plan index is of another plan */
    calib_rank a = *worst_in, b = *best_out;
    a.index = b.index = 0;
    ck_assert_msg(calib_rank_cmp(&a, &b) <= 0, "a %s entry measured, a %s one left",
                  calib_tier_name(worst_in->tier), calib_tier_name(best_out->tier));
    /* it was left because it did not fit */
    const calib_entry *e = &s.later.entry[best_out->index];
    double cost = best_out->est_s +
                  (s.est_session.entries[e->family] ? 0 : calib_schedule_step_overhead_s());
    ck_assert(s.schedule.reserve_total_s + cost >
              calib_schedule_budget_s(CALIB_SCHED_DEADLINE_S));
    /* tiers in order: nothing unused measured while a used entry is left */
    ck_assert_int_ne(worst_in->tier, CALIB_TIER_UNUSED);
    calib_session_fini(&s);
    calib_plan_fini(&full);
}
END_TEST

/* Session and later plans are the full plan: each entry in exactly one,
 * unchanged; the layers in the session. */
START_TEST(test_session_plus_later_is_full_plan)
{
    calib_plan full;
    gpu_spec g;
    load_full(&full, &g);
    calib_session s;
    split(&full, &g, CALIB_SCHED_DEADLINE_S, &s);
    ck_assert_int_eq(s.session.n_entries + s.later.n_entries, full.n_entries);
    int points = 0, split_points = 0;
    for (int i = 0; i < full.n_entries; i++) {
        const calib_entry *e = &full.entry[i];
        const calib_entry *in = find(&s.session, e), *out = find(&s.later, e);
        ck_assert_msg((in != NULL) != (out != NULL), "entry %d in both plans or neither", i);
        ck_assert(same_entry(in ? in : out, e));
        points += points_of(e);
    }
    for (int i = 0; i < s.session.n_entries; i++)
        split_points += points_of(&s.session.entry[i]);
    for (int i = 0; i < s.later.n_entries; i++)
        split_points += points_of(&s.later.entry[i]);
    ck_assert_int_eq(split_points, points);
    ck_assert_int_eq(s.session.n_layers, full.n_layers);
    ck_assert_int_eq(s.later.n_layers, 0);
    for (int i = 0; i < full.n_layers; i++)
        ck_assert(memcmp(&s.session.layer[i], &full.layer[i], sizeof full.layer[i]) == 0);
    calib_estimate all;
    calib_plan_estimate(&full, &g, 0, CALIB_COUNTER_PERIOD_ASSUMED_S, &all);
    ck_assert(fabs(s.est_session.total_s + s.est_later.total_s - all.total_s) < 1e-6);
    ck_assert_str_eq(s.session.name, "session");
    ck_assert_str_eq(s.later.name, "later");
    calib_session_fini(&s);
    calib_plan_fini(&full);
}
END_TEST

/* The configurations the bundled experiments and the layer validation run
 * are featured and measured in the first session, every op of theirs. */
START_TEST(test_session_measures_featured_configs_first)
{
    calib_plan full;
    gpu_spec g;
    load_full(&full, &g);
    calib_session s;
    split(&full, &g, CALIB_SCHED_DEADLINE_S, &s);
    sim_err err = {{0}};
    int n = 0;
    for (const calib_featured *fc = calib_featured_configs; fc->model; fc++, n++) {
        llm_model m;
        ck_assert_int_eq(llm_model_load(models_dir(), fc->model, &m, &err), 0);
        ck_assert_msg(calib_config_fits(&m, fc->tp, &g), "%s tp%d does not fit", fc->model,
                      fc->tp);
        for (int skewed = 0; skewed <= (m.experts ? 1 : 0); skewed++) {
            if (skewed)
                llm_set_moe_skew(&m, CTAB_SKEW_MEASURED);
            batch_seq chunk = {.q_tokens = 100, .ctx_tokens = 50};
            batch_shape b = {.prefill = &chunk, .n_prefill = 1, .n_decode = 3,
                             .decode_ctx_sum = 300, .n_sampled = 4};
            op_list ops;
            ops_decompose(&m, &PAR_TP(fc->tp), &b, &ops);
            for (int k = 0; k < ops.n; k++) {
                ctab_key key;
                if (ctab_key_of_op(&m, fc->tp, &ops.op[k], &key) < 0)
                    continue;
                int i = calib_plan_find(&s.session, key.family, key.p);
                ck_assert_msg(i >= 0, "%s tp%d: %s not in the session", fc->model, fc->tp,
                              op_kind_name(ops.op[k].kind));
                ck_assert_int_eq(s.session_rank[i].tier, CALIB_TIER_FEATURED);
            }
        }
    }
    ck_assert_int_ge(n, 2);
    /* the layers validate two of them */
    for (int i = 0; i < full.n_layers; i++) {
        int featured = 0;
        for (const calib_featured *fc = calib_featured_configs; fc->model; fc++)
            featured |= !strcmp(fc->model, full.layer[i].model) && fc->tp == full.layer[i].tp;
        ck_assert_msg(featured, "layer %s of %s tp%d: not featured", full.layer[i].name,
                      full.layer[i].model, full.layer[i].tp);
    }
    /* every family the full plan has gets some of the session: every kernel
     * meets the GPU in the first session */
    calib_estimate all;
    calib_plan_estimate(&full, &g, 0, CALIB_COUNTER_PERIOD_ASSUMED_S, &all);
    for (int f = 0; f < CTAB_FAMILY_COUNT; f++)
        if (all.entries[f])
            ck_assert_msg(s.est_session.entries[f] > 0, "no %s in the session",
                          ctab_family_get((ctab_family)f)->name);
    /* and so a table of the session prices them entirely */
    int n_fit, n_complete, n_fit_all, n_all;
    char names[4096];
    ck_assert_int_eq(calib_configs_complete(&full, &s.session, models_dir(), &g, &n_fit,
                                            &n_complete, names, sizeof names, &err), 0);
    for (const calib_featured *fc = calib_featured_configs; fc->model; fc++) {
        char want[96];
        snprintf(want, sizeof want, "%s/tp%d", fc->model, fc->tp);
        char *at = strstr(names, want);
        ck_assert_msg(at && (at == names || at[-1] == ',') &&
                      (at[strlen(want)] == ',' || at[strlen(want)] == 0),
                      "%s not complete: %s", want, names);
    }
    ck_assert_int_lt(n_complete, n_fit);
    ck_assert_int_eq(calib_configs_complete(&full, &full, models_dir(), &g, &n_fit_all, &n_all,
                                            NULL, 0, &err), 0);
    ck_assert_int_eq(n_fit_all, n_fit);
    ck_assert_int_eq(n_all, n_fit);
    calib_session_fini(&s);
    calib_plan_fini(&full);
}
END_TEST

/* Whether a configuration fits: the weights and the activation reserve
 * within 90% of memory, as a run with the default settings checks. */
START_TEST(test_session_config_fits_gpu_memory)
{
    sim_err err = {{0}};
    gpu_spec h200, h100;
    ck_assert_int_eq(gpu_spec_load(models_dir(), "H200-141GB", &h200, &err), 0);
    ck_assert_int_eq(gpu_spec_load(models_dir(), "H100-SXM-80GB", &h100, &err), 0);
    llm_model l70, l405, ds;
    ck_assert_int_eq(llm_model_load(models_dir(), "Llama-2-70B", &l70, &err), 0);
    ck_assert_int_eq(llm_model_load(models_dir(), "Llama-3.1-405B", &l405, &err), 0);
    ck_assert_int_eq(llm_model_load(models_dir(), "DeepSeek-V3", &ds, &err), 0);
    ck_assert(!calib_config_fits(&l70, 1, &h200));   /* 138 GB of weights */
    ck_assert(calib_config_fits(&l70, 2, &h200));
    ck_assert(calib_config_fits(&l405, 8, &h200));   /* 101 GB a GPU */
    ck_assert(!calib_config_fits(&l405, 8, &h100));
    ck_assert(!calib_config_fits(&l405, 4, &h200));
    ck_assert(calib_config_fits(&ds, 8, &h200));     /* in its FP8 */
    ck_assert(!calib_config_fits(&ds, 4, &h200));
    const double usable = 0.9 * h200.hbm_bytes - 2.0 * 1024 * 1024 * 1024;
    ck_assert(llm_weight_bytes_per_gpu(&l70, &PAR_TP(1)) > usable);
    ck_assert(llm_weight_bytes_per_gpu(&l70, &PAR_TP(2)) < usable);
}
END_TEST

/* The rule on known entries: configurations that do not fit, and linear
 * layers run in FP8, are priced by no H200 table (unused, last); an entry
 * only MoE configurations use comes after dense ones; copies serve every
 * configuration. */
START_TEST(test_session_priority_rule)
{
    calib_plan full;
    gpu_spec g;
    load_full(&full, &g);
    calib_rank *r = rank_plan(&full, &g);
#define RANK(e) (&r[(e) - full.entry])
    /* Llama-3.1-405B's FFN down projection at TP 8 fits; at TP 4 it does not */
    ck_assert_int_eq(RANK(find_p(&full, CTAB_GEMM, 16384, 6656))->tier, CALIB_TIER_DENSE);
    ck_assert_int_eq(RANK(find_p(&full, CTAB_GEMM, 16384, 13312))->tier, CALIB_TIER_UNUSED);
    ck_assert_int_eq(RANK(find_p(&full, CTAB_GEMM, 16384, 6656))->configs, 1);
    /* DeepSeek-V3 (FP8 linear layers, fits at TP 8): its LM head stays 16-bit
     * and is priced; its experts and projections are not */
    ck_assert_int_eq(RANK(find_p(&full, CTAB_GEMM, 16160, 7168))->tier, CALIB_TIER_MOE);
    ck_assert_int_eq(RANK(find_p(&full, CTAB_GEMM, 4608, 7168))->tier, CALIB_TIER_UNUSED);
    int64_t ds_experts[CTAB_MAX_PARAMS] = {256, 8, 1, 256, 7168, 0};
    int i = calib_plan_find(&full, CTAB_MOE_EXPERTS, ds_experts);
    ck_assert_int_ge(i, 0);
    ck_assert_int_eq(r[i].tier, CALIB_TIER_UNUSED);
    /* ... while its norms are priced, at TP 8 only */
    const calib_entry *ds_norm = find_p(&full, CTAB_NORM, 7168, 0);
    ck_assert_int_eq(RANK(ds_norm)->tier, CALIB_TIER_MOE);
    ck_assert_int_eq(RANK(ds_norm)->configs, 1);
    /* Qwen3-30B-A3B at TP 8 only: MoE; Mixtral's experts at TP 2 too */
    ck_assert_int_eq(RANK(find_p(&full, CTAB_GEMM, 2048, 512))->tier, CALIB_TIER_MOE);
    /* copies: every configuration that fits, counted independently */
    sim_err err = {{0}};
    int fitting = 0;
    char models[64][64];
    int n_models = 0;
    for (int k = 0; k < full.n_entries; k++) {
        char buf[512], *save = NULL;
        snprintf(buf, sizeof buf, "%s", full.entry[k].used_by);
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            char *slash = strstr(t, "/tp");
            if (!slash)
                continue;
            *slash = 0;
            int seen = 0;
            for (int j = 0; j < n_models; j++)
                seen |= !strcmp(models[j], t);
            if (!seen && n_models < 64)
                snprintf(models[n_models++], sizeof models[0], "%s", t);
        }
    }
    for (int j = 0; j < n_models; j++) {
        llm_model m;
        ck_assert_int_eq(llm_model_load(models_dir(), models[j], &m, &err), 0);
        for (int tp = 1; tp <= 8; tp *= 2)
            fitting += llm_check_tp(&m, tp, NULL) == 0 && calib_config_fits(&m, tp, &g);
    }
    int copies = 0;
    for (int k = 0; k < full.n_entries; k++) {
        if (full.entry[k].family != CTAB_COPY)
            continue;
        copies++;
        ck_assert_int_eq(r[k].tier, CALIB_TIER_DENSE);
        ck_assert_int_eq(r[k].configs, fitting);
    }
    ck_assert_int_gt(copies, 0);
    /* tiers are what calib_rank_cmp orders first */
    calib_rank a = {.tier = CALIB_TIER_FEATURED, .configs = 1, .est_s = 9, .index = 9};
    calib_rank b = {.tier = CALIB_TIER_DENSE, .configs = 50, .est_s = 1, .index = 0};
    ck_assert_int_lt(calib_rank_cmp(&a, &b), 0);
    b.tier = CALIB_TIER_FEATURED;
    ck_assert_int_gt(calib_rank_cmp(&a, &b), 0);   /* more configurations first */
    b.configs = 1;
    ck_assert_int_gt(calib_rank_cmp(&a, &b), 0);   /* then the cheaper */
    b.est_s = 9;
    ck_assert_int_gt(calib_rank_cmp(&a, &b), 0);   /* then plan order */
    ck_assert_int_eq(calib_rank_cmp(&a, &a), 0);
#undef RANK
    free(r);
    calib_plan_fini(&full);
}
END_TEST

START_TEST(test_session_rejects_deadline_too_short)
{
    calib_plan full;
    gpu_spec g;
    load_full(&full, &g);
    calib_rank *r = rank_plan(&full, &g);
    calib_session s;
    sim_err err = {{0}};
    ck_assert_int_ne(calib_session_build(&full, r, &g, 80, CALIB_COUNTER_PERIOD_ASSUMED_S, &s,
                                         &err), 0);
    ck_assert_msg(strstr(err.msg, "does not fit a session") != NULL, "%s", err.msg);
    calib_session_fini(&s);
    free(r);
    calib_plan_fini(&full);
}
END_TEST

/* ---- coverage ------------------------------------------------------------------ */

/* A table of the session's plan leaves exactly the later plan; applying it
 * again changes nothing. */
START_TEST(test_session_covered_table_shrinks_plan)
{
    calib_plan full;
    gpu_spec g;
    load_full(&full, &g);
    calib_session s;
    split(&full, &g, CALIB_SCHED_DEADLINE_S, &s);
    char *dir = tu_tempdir(), *t = table_path(dir, "session.json");
    write_table(&s.session, &g, t);
    calib_plan next;
    load_full(&next, NULL);
    calib_cover_stats st;
    sim_err err = {{0}};
    ck_assert_msg(calib_plan_skip_covered(&next, t, "H200-141GB", &st, &err) == 0, "%s",
                  err.msg);
    ck_assert_int_eq(st.entries_covered, s.session.n_entries);
    ck_assert_int_eq(st.entries_partial, 0);
    ck_assert_int_eq(st.entries_missing, s.later.n_entries);
    ck_assert_int_eq(next.n_entries, s.later.n_entries);
    ck_assert_int_eq(st.points_left, s.schedule.later_points);
    for (int i = 0; i < next.n_entries; i++) {
        const calib_entry *want = find(&s.later, &next.entry[i]);
        ck_assert_ptr_nonnull(want);
        ck_assert(same_entry(want, &next.entry[i]));
    }
    ck_assert_int_eq(next.n_layers, full.n_layers);   /* layers are measured again */
    calib_estimate e_next, e_full;
    calib_plan_estimate(&next, &g, 0, CALIB_COUNTER_PERIOD_ASSUMED_S, &e_next);
    calib_plan_estimate(&full, &g, 0, CALIB_COUNTER_PERIOD_ASSUMED_S, &e_full);
    ck_assert(e_next.total_s < e_full.total_s);
    ck_assert(fabs(e_next.total_s - e_next.layer_s - s.est_later.total_s) < 1e-6);
    /* idempotent */
    ck_assert_int_eq(calib_plan_skip_covered(&next, t, "H200-141GB", &st, &err), 0);
    ck_assert_int_eq(st.entries_covered, 0);
    ck_assert_int_eq(next.n_entries, s.later.n_entries);
    calib_plan_fini(&next);
    free(t);
    rm_dir(dir);
    calib_session_fini(&s);
    calib_plan_fini(&full);
}
END_TEST

/* Coverage is per point: an entry cut short (or with failed points) stays
 * in the next plan with only the points still missing. */
START_TEST(test_session_partly_covered_entry_keeps_missing_points)
{
    calib_plan full;
    gpu_spec g;
    load_full(&full, &g);
    calib_session s;
    split(&full, &g, CALIB_SCHED_DEADLINE_S, &s);
    /* the session's first GEMM entry measured but for its last two points */
    int gi = -1;
    for (int i = 0; i < s.session.n_entries && gi < 0; i++)
        if (s.session.entry[i].family == CTAB_GEMM)
            gi = i;
    ck_assert_int_ge(gi, 0);
    const calib_entry *ge = &s.session.entry[gi];
    calib_point_result **res = calib_results_alloc(&s.session);
    calib_synth_results(&s.session, &g, res);
    int n = ge->n_points;
    for (int j = n - 2; j < n; j++)
        res[gi][j] = (calib_point_result){NAN, NAN, NAN, NAN, NAN, 0};
    calib_run_info info;
    calib_synth_info(&s.session, &g, &info);
    char *dir = tu_tempdir(), *t = table_path(dir, "cut.json");
    sim_err err = {{0}};
    ck_assert_msg(calib_table_save(t, &s.session, res, ~0u, &info, &err) == 0, "%s", err.msg);
    calib_results_free(res, s.session.n_entries);
    calib_plan next;
    load_full(&next, NULL);
    calib_cover_stats st;
    ck_assert_msg(calib_plan_skip_covered(&next, t, "H200-141GB", &st, &err) == 0, "%s",
                  err.msg);
    ck_assert_int_eq(st.entries_partial, 1);
    ck_assert_int_eq(st.entries_covered, s.session.n_entries - 1);
    ck_assert_int_eq(next.n_entries, s.later.n_entries + 1);
    const calib_entry *left = find(&next, ge);
    ck_assert_ptr_nonnull(left);
    for (int j = 0; j < n; j++)
        ck_assert_int_eq(left->skip[j], ge->skip[j] || j < n - 2);
    ck_assert_int_eq(points_of(left), 2);
    ck_assert_int_eq(st.points_left, s.schedule.later_points + 2);
    /* its estimate is the two points' */
    double l_left, e_left, l_all, e_all;
    calib_entry_estimate(left, &g, 0, CALIB_COUNTER_PERIOD_ASSUMED_S, &l_left, &e_left);
    calib_entry_estimate(ge, &g, 0, CALIB_COUNTER_PERIOD_ASSUMED_S, &l_all, &e_all);
    ck_assert(l_left + e_left < l_all + e_all);
    calib_plan_fini(&next);
    free(t);
    rm_dir(dir);
    calib_session_fini(&s);
    calib_plan_fini(&full);
}
END_TEST

/* Successive sessions, each measuring its plan and merged into one table as
 * the workflow does (calib-tool merge, then plan --skip-covered), cover the
 * full plan in as many sessions as the first one predicted, each within
 * its deadline and none measuring an entry twice. */
START_TEST(test_session_successive_sessions_converge)
{
    calib_plan full;
    gpu_spec g;
    load_full(&full, &g);
    sim_err err = {{0}};
    int predicted = 0;
    ck_assert_int_eq(calib_sessions_needed(&full, models_dir(), &g, CALIB_SCHED_DEADLINE_S,
                                           CALIB_COUNTER_PERIOD_ASSUMED_S, &predicted, &err),
                     0);
    ck_assert_int_ge(predicted, 2);
    char *dir = tu_tempdir();
    char *paths[16];
    int n_tables = 0, measured = 0;
    calib_plan plan;
    load_full(&plan, NULL);
    while (plan.n_entries > 0) {
        ck_assert_int_lt(n_tables, 8);
        calib_session s;
        split(&plan, &g, CALIB_SCHED_DEADLINE_S, &s);
        ck_assert(s.schedule.reserve_total_s <= calib_schedule_budget_s(CALIB_SCHED_DEADLINE_S));
        if (n_tables == 0)
            ck_assert_int_eq(s.schedule.later_entries + s.session.n_entries, full.n_entries);
        measured += s.session.n_entries;
        char name[32];
        snprintf(name, sizeof name, "session%d.json", n_tables);
        paths[n_tables] = table_path(dir, name);
        write_table(&s.session, &g, paths[n_tables++]);
        calib_session_fini(&s);
        char *merged = table_path(dir, "merged.json");
        calib_merge_stats ms;
        ck_assert_msg(calib_merge_files((const char *const *)paths, n_tables, merged, &ms,
                                        &err) == 0, "%s", err.msg);
        ck_assert_int_eq(ms.entries, measured);   /* no entry measured twice */
        calib_plan_fini(&plan);
        load_full(&plan, NULL);
        calib_cover_stats st;
        ck_assert_msg(calib_plan_skip_covered(&plan, merged, "H200-141GB", &st, &err) == 0,
                      "%s", err.msg);
        ck_assert_int_eq(st.entries_covered, measured);
        free(merged);
    }
    ck_assert_int_eq(n_tables, predicted);
    ck_assert_int_eq(measured, full.n_entries);
    for (int i = 0; i < n_tables; i++)
        free(paths[i]);
    calib_plan_fini(&plan);
    rm_dir(dir);
    calib_plan_fini(&full);
}
END_TEST

START_TEST(test_session_skip_covered_errors)
{
    calib_plan plan;
    gpu_spec g;
    load_full(&plan, &g);
    calib_cover_stats st;
    sim_err err = {{0}};
    /* a table of another GPU */
    ck_assert_int_ne(calib_plan_skip_covered(&plan, "tests/data/cost_table_synthetic.json",
                                             "H200-141GB", &st, &err), 0);
    ck_assert_msg(strstr(err.msg, "cost_table_synthetic.json") && strstr(err.msg, "H100"),
                  "%s", err.msg);
    /* no table */
    memset(&err, 0, sizeof err);
    ck_assert_int_ne(calib_plan_skip_covered(&plan, "/nonexistent/t.json", "H200-141GB", &st,
                                             &err), 0);
    ck_assert_msg(strstr(err.msg, "/nonexistent/t.json") != NULL, "%s", err.msg);
    /* a table measured from another plan: its entry's bytes differ */
    int n_entries = plan.n_entries;
    char *dir = tu_tempdir(), *t = table_path(dir, "other.json");
    write_table(&plan, &g, t);
    int k = calib_plan_find(&plan, CTAB_NORM, (int64_t[CTAB_MAX_PARAMS]){4096});
    ck_assert_int_ge(k, 0);
    plan.entry[k].bytes[1] *= 2;
    memset(&err, 0, sizeof err);
    ck_assert_int_ne(calib_plan_skip_covered(&plan, t, "H200-141GB", &st, &err), 0);
    ck_assert_msg(strstr(err.msg, "$.families.norm.entries[") && strstr(err.msg, "].bytes") &&
                  strstr(err.msg, "another plan"), "%s", err.msg);
    ck_assert_int_eq(plan.n_entries, n_entries);   /* left as it was */
    free(t);
    rm_dir(dir);
    calib_plan_fini(&plan);
}
END_TEST

/* ---- the committed files ---------------------------------------------------------- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s: cannot open", path);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return buf;
}

/* The committed session plan and schedule are what `make calib-data` makes
 * of the committed full plan (less what the measured H200 table covers,
 * once there is one). */
START_TEST(test_session_committed_plan_and_schedule_up_to_date)
{
    calib_plan full;
    gpu_spec g;
    load_full(&full, &g);
    sim_err err = {{0}};
    if (access(H200_TABLE, R_OK) == 0) {
        calib_cover_stats st;
        ck_assert_msg(calib_plan_skip_covered(&full, H200_TABLE, g.name, &st, &err) == 0, "%s",
                      err.msg);
        snprintf(full.name, sizeof full.name, "remaining");
    }
    calib_session s;
    split(&full, &g, CALIB_SCHED_DEADLINE_S, &s);
    snprintf(s.schedule.plan_file, sizeof s.schedule.plan_file, "%s", H200_PLAN);
    ck_assert_int_eq(calib_sessions_needed(&s.later, models_dir(), &g, CALIB_SCHED_DEADLINE_S,
                                           CALIB_COUNTER_PERIOD_ASSUMED_S,
                                           &s.schedule.later_sessions, &err), 0);
    char *want = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&want, &len);
    ck_assert_int_eq(calib_session_write(&s, f), 0);
    fclose(f);
    char *have = slurp(H200_SCHEDULE);
    ck_assert_msg(strcmp(want, have) == 0, H200_SCHEDULE " is out of date: run make calib-data");
    free(want);
    free(have);
    f = open_memstream(&want, &len);
    ck_assert_int_eq(calib_plan_write(&s.session, f), 0);
    fclose(f);
    have = slurp(H200_PLAN);
    ck_assert_msg(strcmp(want, have) == 0, H200_PLAN " is out of date: run make calib-data");
    free(want);
    free(have);
    calib_session_fini(&s);
    calib_plan_fini(&full);
}
END_TEST

Suite *calib_session_suite(void)
{
    Suite *s = suite_create("calib_session");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_session_schedule_fits_deadline);
    tcase_add_test(tc, test_session_respects_priority);
    tcase_add_test(tc, test_session_plus_later_is_full_plan);
    tcase_add_test(tc, test_session_measures_featured_configs_first);
    tcase_add_test(tc, test_session_config_fits_gpu_memory);
    tcase_add_test(tc, test_session_priority_rule);
    tcase_add_test(tc, test_session_rejects_deadline_too_short);
    tcase_add_test(tc, test_session_covered_table_shrinks_plan);
    tcase_add_test(tc, test_session_partly_covered_entry_keeps_missing_points);
    tcase_add_test(tc, test_session_successive_sessions_converge);
    tcase_add_test(tc, test_session_skip_covered_errors);
    tcase_add_test(tc, test_session_committed_plan_and_schedule_up_to_date);
    suite_add_tcase(s, tc);
    return s;
}
