/* Speculative decoding and multi-token prediction as an engine feature of
 * a serving instance (off unless `instance.speculative` is given).
 *
 * Every decoding sequence of an iteration may propose K_r draft tokens
 * (K_r = min(K the policy picks, its output left - 1), then clamped by the
 * token budget and by the KV the plan's ledger can still reserve). The
 * target model verifies the pending token and the drafts in one pass, a
 * chunk of K_r + 1 query tokens over the sequence's context (weights read
 * once, FLOPs x (K_r + 1), its KV read once, logits at every position);
 * the drafter then proposes the next step's drafts (its cost depends on the
 * method, see spec.c). After the iteration a_r accepted drafts are drawn
 * from the request's own random stream and the sequence emits a_r + 1
 * tokens; the rejected slots stay allocated (vLLM rolls back only its
 * computed count).
 *
 * KV: every drafting sequence holds room for its K_r + 1 verified tokens
 * plus, for the methods vLLM reserves lookahead slots for (draft model,
 * EAGLE, MTP), K lookahead slots, all through the ledger, so never beyond
 * capacity. The drafter's weights and its KV per token (a draft LLM's own,
 * EAGLE/MTP layers' share) are taken from the KV budget at configuration.
 *
 * Determinism: the draws of request r at the step where it has generated g
 * tokens come from a stream keyed by (run seed, r's id, g), and a Beta
 * model's per-request rate from a GSL generator seeded from (run seed, r's
 * id): the batch it runs in, the instance, preemptions and moves never
 * change them. A step's draw is made when spec_plan picks its drafts (its
 * key is known then) and kept for spec_accept_item. The acceptance models
 * "request" and "trace" read the request's trace columns instead (its
 * rate; its recorded accepted drafts per step, in order: serve/req.h). */
#ifndef SERVE_SPEC_H
#define SERVE_SPEC_H

#include <stdbool.h>
#include <cjson/cJSON.h>
#include "api/batch.h"
#include "api/spec.h"
#include "models/cost.h"

typedef enum spec_method {
    SPEC_OFF,
    SPEC_DRAFT_MODEL,   /* a smaller LLM of its own model file */
    SPEC_EAGLE,         /* EAGLE-style head: draft_layers decoder layers + LM head */
    SPEC_MTP,           /* multi-token prediction layers (DeepSeek-V3), shared LM head */
    SPEC_MEDUSA,        /* K heads in one pass (a residual block + LM head each) */
    SPEC_NGRAM,         /* prompt lookup on the CPU */
    SPEC_METHOD_COUNT
} spec_method;

typedef enum spec_accept {
    SPEC_ACCEPT_BERNOULLI,     /* each position accepted with rate alpha */
    SPEC_ACCEPT_PER_POSITION,  /* P(a >= i) given per position (vLLM's metric) */
    SPEC_ACCEPT_BETA,          /* per-request alpha ~ Beta(a, b) */
    SPEC_ACCEPT_REQUEST,       /* Bernoulli at the request's trace rate (spec_alpha) */
    SPEC_ACCEPT_TRACE,         /* the request's recorded per-step accepted drafts */
} spec_accept;

/* The seed stream of the draws (a constant apart from the cluster's). */
#define SPEC_STREAM 0x5bec0001u
/* Positions the per-position metrics report. */
#define SPEC_POS_METRICS 8

typedef struct spec_setup {
    spec_method method;        /* SPEC_OFF: speculation off */
    int32_t k;                 /* draft tokens per step, 1..SPEC_MAX_K */
    spec_accept accept;
    double alpha;              /* bernoulli */
    double per_position[SPEC_MAX_K];   /* P(a >= i), i = 1..k, non-increasing */
    double beta_a, beta_b;
    double match_rate;         /* ngram: chance a step finds a proposal */
    bool lookahead;            /* reserves k lookahead KV slots per sequence */
    /* Tree drafting (SGLang's EAGLE: speculative_num_steps = k, eagle_topk,
     * num_draft_tokens): each draft step proposes topk tokens per sequence
     * and the target verifies verify_tokens tree nodes in one pass; 0: a
     * chain of k + 1. */
    int32_t verify_tokens, topk;
    double draft_step_ns;      /* CPU/launch time per draft pass */
    /* The drafter as a model (draft LLM, or the target cut to its draft
     * layers for EAGLE/MTP); unused for medusa and ngram. */
    llm_model draft;
    int32_t draft_layers;
    double draft_weight_bytes_per_gpu;
    double draft_kv_bytes_per_token_per_gpu;
    const spec_policy_ops *policy;   /* resolved by whoever reads the config */
    cJSON *policy_params;
    char policy_path[128];
} spec_setup;

const char *spec_method_name(spec_method m);

/* Reads `instance.speculative` (object o at `path`) for a pool serving
 * `target` at layout `par`; `models_dir` holds draft model files. Leaves
 * the policy to the caller: *policy_name (default "fixed") and its params
 * object. Unknown keys and bad values are errors naming path.key. */
int spec_setup_parse(cJSON *o, const char *path, const char *models_dir,
                     const llm_model *target, const par_layout *par, spec_setup *out,
                     const char **policy_name, sim_err *err);

/* KV blocks per GPU with speculation on: the drafter's weights leave the
 * budget and each token's KV grows by the drafter's. */
int spec_kv_blocks(const spec_setup *s, const llm_model *target, const gpu_spec *g,
                   const par_layout *par, double utilization, double reserve_bytes,
                   int32_t block_size_tokens, int64_t *out, sim_err *err);

/* What speculation did on one instance (summed over instances for a run). */
typedef struct spec_stats {
    uint64_t drafts;           /* verification steps with at least one draft */
    uint64_t draft_tokens;
    uint64_t verified_tokens;  /* draft tokens the target verified (tree nodes) */
    uint64_t accepted_tokens;
    uint64_t emitted_tokens;   /* tokens emitted by those steps (accepted + bonus) */
    uint64_t positions_reached;
    uint64_t pos_accepted[SPEC_POS_METRICS];   /* steps that accepted position i+1 */
    uint64_t lookahead_blocks; /* blocks reserved for lookahead, summed over steps */
    double draft_ns;           /* drafting time */
    double verify_ns;          /* target time of iterations that verified */
} spec_stats;

void spec_stats_add(spec_stats *sum, const spec_stats *s);
/* Fills the run summary's spec_* fields from a run's stats (busy_ns: the
 * instances' busy time, for the time shares). */
struct run_summary;
void spec_summarize(const spec_stats *st, double busy_ns, struct run_summary *out);

/* ---- the runtime of one instance ------------------------------------------ */

typedef struct spec spec;

/* The drafter's cost model, one per pool (its instances share it, as they
 * share the target's): priced like the target (its member and params,
 * sharing its loaded table: cost_model_create_like), on the drafter as a
 * model (medusa: the target's). *out is NULL for ngram and speculation
 * off. draft_setup must outlive *out (it is borrowed). */
int spec_draft_cost_create(const spec_setup *s, const cost_model *target,
                           const cJSON *cost_params,
                           const char *cost_path, const cost_setup *target_cost,
                           cost_setup *draft_setup, cost_model **out, sim_err *err);
/* The runtime of one instance: target and drafter cost models borrowed
 * (draft: from spec_draft_cost_create); seed is the run's. NULL with err
 * on failure (the policy's params). */
spec *spec_create(const spec_setup *s, const cost_setup *target_cost, cost_model *target,
                  cost_model *draft, uint64_t seed, sim_err *err);
void spec_destroy(spec *sp);   /* NULL is a no-op */

/* After the batch policy formed `plan`: picks each decoding item's drafts
 * (through the policy), clamps them to the token budget and the KV the
 * ledger can still reserve, and raises those items' reservation. */
void spec_plan(spec *sp, const batch_view *v, batch_plan *plan);
/* Drafts of plan item i (0: a plain item), and the draft tokens its
 * verification adds to the pass (the drafts, or its share of a tree's
 * nodes). Valid until the next spec_plan. */
int32_t spec_item_drafts(const spec *sp, int32_t i);
int32_t spec_item_verify_extra(const spec *sp, int32_t i);
/* The same for every item at once (n_items: the plan's, checked): extras[i] =
 * spec_item_verify_extra(sp, i), positive exactly for the drafting items. */
const int32_t *spec_plan_extras(const spec *sp, int32_t n_items);
/* Adds the drafting cost of the iteration whose target cost is `c` to c. */
void spec_add_cost(spec *sp, const batch_shape *shape, cost_result *c);
/* After the iteration: the accepted drafts of drafting item r (d drafts). */
int32_t spec_accept_drafts(spec *sp, const serve_req *r, int32_t d);
/* The same for drafting plan item i (request r): its draw was made when
 * spec_plan chose its drafts (the same draw, keyed by r's generated count
 * then; drawn again if that has changed). */
int32_t spec_accept_item(spec *sp, int32_t i, const serve_req *r);
void spec_get_stats(const spec *sp, spec_stats *out);

/* The draws alone (tests): accepted drafts of request `id` at the step
 * where it has generated `generated` tokens, with d drafts. */
int32_t spec_draw(spec *sp, uint64_t id, int32_t generated, int32_t d);

#endif
