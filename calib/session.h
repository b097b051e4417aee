/* Sessions: a plan larger than one GPU session, measured over several.
 *
 * The full plan (every entry the bundled models need at TP 1 to 8) takes
 * longer than the one command a GPU session allows. So a plan is ranked
 * (calib_plan_rank: the priority rule, one function), one session takes
 * entries in that order while its schedule's reserves fit the deadline
 * (calib_session_build: the session plan, its schedule, and the plan of
 * what it leaves), and a later session plans what the tables measured so
 * far have not covered (calib_plan_skip_covered) and is split the same
 * way, until nothing is left. `calib-tool plan --schedule ... --session
 * ... [--later ...] [--skip-covered TABLE]` is the command line of it.
 *
 * Host only: ranking loads the model files named in the entries' used_by,
 * and coverage reads a table with cJSON. */
#ifndef CALIB_SESSION_H
#define CALIB_SESSION_H

#include "calib/budget.h"
#include "calib/plan.h"

/* Priority tiers, measured in this order. */
typedef enum calib_tier {
    CALIB_TIER_FEATURED,   /* prices a configuration the bundled experiments or the
                            * whole-layer validation run (calib_featured) */
    CALIB_TIER_DENSE,      /* prices a dense configuration that fits the GPU */
    CALIB_TIER_MOE,        /* prices only MoE configurations that fit */
    CALIB_TIER_UNUSED,     /* prices no configuration on this GPU: its users do not fit
                            * its memory at that TP, or run their linear layers in 8
                            * bits (the tables are measured in bf16) */
    CALIB_TIER_COUNT
} calib_tier;

const char *calib_tier_name(calib_tier t);

/* Where an entry ranks: tier first, then more configurations, then
 * cheaper, then plan order. */
typedef struct calib_rank {
    calib_tier tier;
    int configs;        /* (model, TP) configurations it prices on this GPU */
    double est_s;       /* estimated GPU time (calib_entry_estimate) */
    int index;          /* its plan index */
} calib_rank;

/* A configuration the bundled experiments (experiments/) or the
 * whole-layer validation (planner.c) run; NULL-terminated. */
typedef struct calib_featured {
    const char *model;
    int tp;
    const char *why;
} calib_featured;
extern const calib_featured calib_featured_configs[];

/* Whether model `m` at `tp` fits on GPU g: its weights and the default
 * activation reserve within the default share of memory, the rule a run
 * applies with the default instance settings (serve/kv.c). */
int calib_config_fits(const llm_model *m, int tp, const gpu_spec *g);

/* Ranks every entry of `plan` (out[i] for entry i) for a session on GPU g:
 * loads the models its entries' used_by name from models_dir. Errors name
 * the entry and the model that would not load. */
int calib_plan_rank(const calib_plan *plan, const char *models_dir, const gpu_spec *g,
                    double counter_period_s, calib_rank *out, sim_err *err);

/* <0 when a is measured before b. A total order (the plan index breaks
 * ties). */
int calib_rank_cmp(const calib_rank *a, const calib_rank *b);

/* One session taken from a plan. */
typedef struct calib_session {
    calib_plan session;       /* what it measures: entries by family, in rank order within
                               * a family (a family cut short has its first ranks), and
                               * every layer of the plan */
    calib_plan later;         /* the rest of the plan's entries, the same order */
    calib_rank *session_rank; /* per entry of session, of later */
    calib_rank *later_rank;
    calib_schedule schedule;  /* of session; its later_* describe later */
    calib_estimate est_session, est_later;
} calib_session;

/* Splits `plan` (ranked by rank[i]): entries in rank order while the
 * schedule's reserves stay within calib_schedule_budget_s(deadline_s); the
 * first entry that does not fit ends the session, so every entry measured
 * ranks before every entry left. Names the plans `session` and `later`.
 * Fails when not even the first entry fits. *out is initialised either
 * way; calib_session_fini frees it. */
int calib_session_build(const calib_plan *plan, const calib_rank *rank, const gpu_spec *g,
                        double deadline_s, double counter_period_s, calib_session *out,
                        sim_err *err);
void calib_session_fini(calib_session *s);

/* The schedule (calib_schedule_write), then one line per entry left for
 * later, in rank order: "later FAMILY P0 P1 ... TIER CONFIGS EST_S". */
int calib_session_write(const calib_session *s, FILE *f);

/* The configurations (model, TP) of `plan`'s entries that fit g, and of
 * them those a table measured from `part` prices entirely: every entry of
 * plan that prices the configuration is in part too. Their names go to
 * `complete` ("Llama-3-8B/tp1,...", NULL: not wanted). */
int calib_configs_complete(const calib_plan *plan, const calib_plan *part,
                           const char *models_dir, const gpu_spec *g, int *n_fit,
                           int *n_complete, char *complete, size_t size, sim_err *err);

/* How many sessions of deadline_s the plan takes, the first included: each
 * takes the next session of what the previous ones left (ranked again) and
 * the plan's layers, as planning each from the full plan less a table of
 * the sessions so far does. */
int calib_sessions_needed(const calib_plan *plan, const char *models_dir, const gpu_spec *g,
                          double deadline_s, double counter_period_s, int *sessions,
                          sim_err *err);

/* ---- coverage ------------------------------------------------------------------ */

typedef struct calib_cover_stats {
    int entries_covered;   /* every point measured: left out */
    int entries_partial;   /* some points measured: those skipped */
    int entries_missing;   /* not in the table */
    int points_covered;    /* points the table measured */
    int points_left;       /* points still to measure */
} calib_cover_stats;

/* Drops from `plan` what the table at `table_path` (of GPU gpu_name, which
 * it must be) has measured: a point with a measured median latency is
 * marked skip, and an entry with no point left is removed. An entry the
 * table has with other axes, FLOPs or bytes was measured from another plan
 * (calib-tool merge would refuse it): an error naming the table's entry. */
int calib_plan_skip_covered(calib_plan *plan, const char *table_path, const char *gpu_name,
                            calib_cover_stats *st, sim_err *err);

#endif
