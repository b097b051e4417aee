/* Synthetic agentic sessions (source "agentic"): inference-perf's
 * conversation_replay data generator (docs/conversation_replay.md in
 * kubernetes-sigs/inference-perf), same keys, plus subagent trees, replayed
 * by the session player (session_play.h: lanes or session arrivals, think
 * timing).
 *
 * A conversation blueprint k (0 .. num_conversations - 1) is: a system
 * prompt of shared_system_prompt_len tokens (the same for every
 * conversation) and dynamic_system_prompt_len tokens of its own;
 * turns_per_conversation turns, each input_tokens_per_turn new tokens and
 * output_tokens_per_turn answer tokens; turn k's prompt is the whole context
 * so far (system prompt, every earlier prompt and answer) and its new
 * tokens; after each turn the conversation waits tool_call_latency_sec (the
 * gap before the next turn). A turn that would not fit max_model_len (the
 * run's context by default) ends the conversation (inference-perf resets
 * it). Plays take blueprints round robin (play p is blueprint p mod
 * num_conversations) and a blueprint replays the same tokens every time, as
 * inference-perf's recycled slots do, so a replay can hit what an earlier
 * play of it left in the cache; max_sessions (default num_conversations)
 * ends the workload.
 *
 * Distributions are inference-perf's Distribution objects: {"type":
 * "fixed", "mean"}, {"type": "uniform", "min", "max"}, {"type": "normal",
 * "mean", "std_dev", "min", "max"} (clamped to [min, max]), {"type":
 * "lognormal", "mean", "std_dev", "min", "max"} (mean and std_dev of the
 * values, not of their logarithm; clamped) [assume: inference-perf's
 * sampler was not read; the quick start's lognormal mean 1652, std_dev 3000
 * only makes sense so]. Values are rounded.
 *
 * Subagents (servesim's, spec I): "subagents": {"probability": P, "count":
 * D, "turns": D, "task_tokens": D, "input_tokens_per_turn": D,
 * "output_tokens_per_turn": D, "tool_call_latency_sec": D}. After each turn
 * but the last, with probability P (default 0) the conversation spawns
 * `count` (default fixed 2) subagents. A subagent's first prompt is the
 * parent's whole context at that point (the same blocks: it shares the
 * parent's prefix up to the spawn) then task_tokens (default: the parent's
 * input_tokens_per_turn) of its own; it runs `turns` (default fixed 3) turns
 * accumulating its own context (its per-turn distributions default to the
 * parent's). The parent's next turn waits until every subagent finished
 * (session_play.h) and its new tokens also hold each subagent's last answer
 * (the tool result). Subagents do not spawn subagents.
 *
 * Prefix ids are a function of (blueprint, thread, block position): every
 * prompt extends its thread's context, so equal positions hold equal tokens;
 * shared system blocks have ids of their own, common to every blueprint.
 * Draws come from a generator reseeded per blueprint from the run's length
 * stream, so a blueprint is the same whatever order plays start in. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_randist.h>

#include "sim/jsoncfg.h"
#include "traces/session_play.h"

typedef enum { IP_FIXED, IP_UNIFORM, IP_NORMAL, IP_LOGNORMAL } ip_kind;

typedef struct ip_dist {
    ip_kind kind;
    double mean, sd, min, max;
    double mu, sigma;   /* lognormal, of log(value) */
} ip_dist;

static int dist_parse(cJSON *params, const char *path, const char *key, double def,
                      double lo, double hi, ip_dist *d, sim_err *err)
{
    *d = (ip_dist){.kind = IP_FIXED, .mean = def, .min = def, .max = def};
    if (!cJSON_GetObjectItemCaseSensitive(params, key)) {
        if (isnan(def))
            return sim_errf(err, "%s.%s: missing; expected a distribution, e.g. {\"type\": "
                            "\"lognormal\", \"mean\": 1652, \"std_dev\": 3000, \"min\": 64, "
                            "\"max\": 24000}", path, key);
        return 0;
    }
    static const char *const keys[] = {"type", "mean", "std_dev", "min", "max", NULL};
    char sub[256];
    cJSON *o;
    const char *type;
    if (jcfg_obj(params, path, key, &o, sub, err) || jcfg_check_keys(o, sub, keys, err) ||
        jcfg_str(o, sub, "type", JCFG_REQUIRED_STR, &type, err))
        return -1;
    if (!strcmp(type, "fixed"))
        d->kind = IP_FIXED;
    else if (!strcmp(type, "uniform"))
        d->kind = IP_UNIFORM;
    else if (!strcmp(type, "normal"))
        d->kind = IP_NORMAL;
    else if (!strcmp(type, "lognormal"))
        d->kind = IP_LOGNORMAL;
    else
        return sim_errf(err, "%s.type: expected one of: fixed, uniform, normal, lognormal; "
                        "got \"%s\"", sub, type);
    bool ranged = d->kind != IP_FIXED;
    if (jcfg_num(o, sub, "mean", d->kind == IP_UNIFORM ? lo : JCFG_REQUIRED_NUM, lo, hi,
                 &d->mean, err) ||
        jcfg_num(o, sub, "std_dev", ranged && d->kind != IP_UNIFORM ? JCFG_REQUIRED_NUM : 0, 0,
                 hi, &d->sd, err) ||
        jcfg_num(o, sub, "min", ranged ? (d->kind == IP_UNIFORM ? JCFG_REQUIRED_NUM : lo) : lo,
                 lo, hi, &d->min, err) ||
        jcfg_num(o, sub, "max", ranged ? (d->kind == IP_UNIFORM ? JCFG_REQUIRED_NUM : hi) : hi,
                 lo, hi, &d->max, err))
        return -1;
    if (d->min > d->max)
        return sim_errf(err, "%s.max: expected at least min (%g), got %g", sub, d->min, d->max);
    if (d->kind == IP_LOGNORMAL) {
        if (d->mean <= 0)
            return sim_errf(err, "%s.mean: expected > 0 for a lognormal, got %g", sub, d->mean);
        d->sigma = sqrt(log1p(d->sd * d->sd / (d->mean * d->mean)));
        d->mu = log(d->mean) - d->sigma * d->sigma / 2;
    }
    return 0;
}

static double dist_draw(const ip_dist *d, gsl_rng *r)
{
    double x;
    switch (d->kind) {
    case IP_UNIFORM:
        x = d->min + gsl_rng_uniform(r) * (d->max - d->min);
        break;
    case IP_NORMAL:
        x = d->mean + gsl_ran_gaussian(r, d->sd);
        break;
    case IP_LOGNORMAL:
        x = gsl_ran_lognormal(r, d->mu, d->sigma);
        break;
    default:
        return d->mean;
    }
    return x < d->min ? d->min : x > d->max ? d->max : x;
}

static int32_t draw_tokens(const ip_dist *d, gsl_rng *r)
{
    return (int32_t)llround(dist_draw(d, r));
}

typedef struct turn_dists {
    ip_dist input, output, latency;
} turn_dists;

typedef struct child_spec {
    int32_t spawn_item;
    int32_t ctx0;          /* parent context at the spawn */
    int32_t task, turns;
    int32_t first_turn;    /* its turns in the turn arrays */
} child_spec;

typedef struct agentic {
    sp_player *pl;
    int64_t conversations, plays;
    int32_t shared_tokens, max_len, block;
    ip_dist dynamic, turns;
    turn_dists main;
    bool has_sub;
    double sub_p;
    ip_dist sub_count, sub_turns, sub_task;
    turn_dists sub;
    uint64_t base;
    gsl_rng *rng;
    /* building */
    child_spec *kids;
    size_t n_kids, kids_cap;
    int32_t *kid_in, *kid_out;
    sim_time_ns *kid_gap;
    size_t n_kt, kt_cap;
    uint64_t *ids;
    size_t ids_cap;
} agentic;

/* The id of block j of a thread: shared system blocks, then the parent's
 * blocks up to parent_whole (subagents), then the thread's own. */
static uint64_t id_at(const agentic *a, uint64_t main_salt, uint64_t own_salt,
                      int32_t parent_whole, int32_t j)
{
    if (j < a->shared_tokens / a->block)
        return sim_hash_mix(a->base ^ UINT64_C(0x5ca7ed), (uint64_t)j);
    if (j < parent_whole)
        return sim_hash_mix(main_salt, (uint64_t)j);
    return sim_hash_mix(own_salt, (uint64_t)j);
}

/* Adds a call of `prompt` + `answer` tokens whose ids cover both. */
static void add_call(agentic *a, sp_program *p, int32_t prompt, int32_t answer, sim_time_ns gap,
                     uint64_t main_salt, uint64_t own_salt, int32_t parent_whole)
{
    int64_t cover = (int64_t)prompt + answer;
    int32_t n = (int32_t)((cover + a->block - 1) / a->block);
    sim_grow((void **)&a->ids, &a->ids_cap, (size_t)n, sizeof *a->ids);
    for (int32_t j = 0; j < n; j++)
        a->ids[j] = id_at(a, main_salt, own_salt, parent_whole, j);
    sp_add_call(p, prompt, answer, 0, gap, a->ids, n, (int32_t)cover);
}

static sim_time_ns draw_gap(const ip_dist *d, gsl_rng *r)
{
    return sim_time_add(0, dist_draw(d, r) * 1e9);
}

static void build(agentic *a, sp_program *p, int64_t k)
{
    gsl_rng *r = a->rng;
    gsl_rng_set(r, (unsigned long)sim_hash_mix(a->base, (uint64_t)k));
    uint64_t salt = sim_hash_mix(a->base, (uint64_t)k + 1);
    p->block_tokens = a->block;
    p->global_ids = true;   /* a blueprint's replays share its blocks */
    a->n_kids = a->n_kt = 0;
    int32_t ctx = a->shared_tokens + draw_tokens(&a->dynamic, r);
    int32_t turns = draw_tokens(&a->turns, r);
    if (turns < 1)
        turns = 1;
    sp_add_thread(p);
    int32_t extra = 0;   /* the subagents' answers, into the next prompt */
    sim_time_ns gap = 0;
    for (int32_t t = 0; t < turns; t++) {
        int32_t user = draw_tokens(&a->main.input, r) + extra;
        int32_t answer = draw_tokens(&a->main.output, r);
        if (user < 1)
            user = 1;
        if (answer < 1)
            answer = 1;
        if (t > 0 && (int64_t)ctx + user + answer > a->max_len)
            break;   /* inference-perf resets a conversation that outgrows the context */
        add_call(a, p, ctx + user, answer, gap, salt, salt, 0);
        ctx += user + answer;
        gap = draw_gap(&a->main.latency, r);
        extra = 0;
        if (!a->has_sub || t == turns - 1 || gsl_rng_uniform(r) >= a->sub_p)
            continue;
        int32_t n = draw_tokens(&a->sub_count, r);
        if (n < 1)
            continue;
        int32_t item = sp_add_spawn(p, n, 0);
        for (int32_t c = 0; c < n; c++) {
            sim_grow((void **)&a->kids, &a->kids_cap, a->n_kids + 1, sizeof *a->kids);
            child_spec *s = &a->kids[a->n_kids++];
            *s = (child_spec){.spawn_item = item, .ctx0 = ctx,
                              .task = draw_tokens(&a->sub_task, r),
                              .turns = draw_tokens(&a->sub_turns, r),
                              .first_turn = (int32_t)a->n_kt};
            if (s->turns < 1)
                s->turns = 1;
            for (int32_t u = 0; u < s->turns; u++) {
                size_t i = a->n_kt++;
                if (i >= a->kt_cap) {
                    a->kt_cap = a->kt_cap ? 2 * a->kt_cap : 64;
                    a->kid_in = sim_xrealloc(a->kid_in, a->kt_cap * sizeof *a->kid_in);
                    a->kid_out = sim_xrealloc(a->kid_out, a->kt_cap * sizeof *a->kid_out);
                    a->kid_gap = sim_xrealloc(a->kid_gap, a->kt_cap * sizeof *a->kid_gap);
                }
                a->kid_in[i] = draw_tokens(&a->sub.input, r);
                a->kid_out[i] = draw_tokens(&a->sub.output, r);
                a->kid_gap[i] = draw_gap(&a->sub.latency, r);
                if (a->kid_out[i] < 1)
                    a->kid_out[i] = 1;
            }
            extra += a->kid_out[s->first_turn + s->turns - 1];
        }
    }
    /* the subagents' threads, spawn by spawn */
    for (size_t i = 0; i < a->n_kids; i++) {
        const child_spec *s = &a->kids[i];
        int32_t th = sp_add_thread(p);
        if (i == 0 || a->kids[i - 1].spawn_item != s->spawn_item)
            sp_set_children(p, s->spawn_item, th);
        uint64_t own = sim_hash_mix(salt, i + 1);
        int32_t c = s->ctx0, whole = s->ctx0 / a->block;
        for (int32_t u = 0; u < s->turns; u++) {
            size_t q = (size_t)(s->first_turn + u);
            int32_t user = u ? a->kid_in[q] : s->task;
            if (user < 1)
                user = 1;
            if (u > 0 && (int64_t)c + user + a->kid_out[q] > a->max_len)
                break;
            add_call(a, p, c + user, a->kid_out[q], u ? a->kid_gap[q - 1] : 0, salt, own, whole);
            c += user + a->kid_out[q];
        }
    }
    sp_program_finish(p);
}

static int agentic_program(void *ctx, sp_program *p, sim_err *err)
{
    (void)err;
    agentic *a = ctx;
    build(a, p, a->plays++ % a->conversations);
    return 1;
}

static void agentic_destroy(void *state)
{
    agentic *a = state;
    if (!a)
        return;
    sp_player_destroy(a->pl);
    if (a->rng)
        gsl_rng_free(a->rng);
    free(a->kids);
    free(a->kid_in);
    free(a->kid_out);
    free(a->kid_gap);
    free(a->ids);
    free(a);
}

static int parse_turn_dists(cJSON *o, const char *path, const turn_dists *def, turn_dists *t,
                            sim_err *err)
{
    if (def && !cJSON_GetObjectItemCaseSensitive(o, "input_tokens_per_turn"))
        t->input = def->input;
    else if (dist_parse(o, path, "input_tokens_per_turn", NAN, 0, 1e7, &t->input, err))
        return -1;
    if (def && !cJSON_GetObjectItemCaseSensitive(o, "output_tokens_per_turn"))
        t->output = def->output;
    else if (dist_parse(o, path, "output_tokens_per_turn", 256, 1, 1e7, &t->output, err))
        return -1;
    if (def && !cJSON_GetObjectItemCaseSensitive(o, "tool_call_latency_sec"))
        t->latency = def->latency;
    else if (dist_parse(o, path, "tool_call_latency_sec", 0, 0, 1e6, &t->latency, err))
        return -1;
    return 0;
}

static int agentic_init(const wl_setup *setup, cJSON *params, const char *path, void **state,
                        sim_err *err)
{
    static const char *const keys[] = {
        WL_COMMON_KEYS, SP_OPT_KEYS, "num_conversations", "shared_system_prompt_len",
        "dynamic_system_prompt_len", "turns_per_conversation", "input_tokens_per_turn",
        "output_tokens_per_turn", "tool_call_latency_sec", "max_model_len", "block_tokens",
        "subagents", NULL};
    agentic *a = sim_xcalloc(1, sizeof *a);
    int64_t shared, max_len, block;
    sp_opts o = {0};
    bool have_opts = false;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_int(params, path, "num_conversations", 200, 1, 1 << 24, &a->conversations, err) ||
        jcfg_int(params, path, "shared_system_prompt_len", 0, 0, 10000000, &shared, err) ||
        jcfg_int(params, path, "max_model_len", setup->max_context_tokens, 2,
                 setup->max_context_tokens, &max_len, err) ||
        jcfg_int(params, path, "block_tokens", 16, 1, 1 << 20, &block, err) ||
        dist_parse(params, path, "dynamic_system_prompt_len", 0, 0, 1e7, &a->dynamic, err) ||
        dist_parse(params, path, "turns_per_conversation", NAN, 1, 1e6, &a->turns, err) ||
        parse_turn_dists(params, path, NULL, &a->main, err))
        goto fail;
    a->shared_tokens = (int32_t)shared;
    a->max_len = (int32_t)max_len;
    a->block = (int32_t)block;
    if (cJSON_GetObjectItemCaseSensitive(params, "subagents")) {
        static const char *const skeys[] = {"probability", "count", "turns", "task_tokens",
                                            "input_tokens_per_turn", "output_tokens_per_turn",
                                            "tool_call_latency_sec", NULL};
        char sub[256];
        cJSON *s;
        if (jcfg_obj(params, path, "subagents", &s, sub, err) ||
            jcfg_check_keys(s, sub, skeys, err) ||
            jcfg_num(s, sub, "probability", 0, 0, 1, &a->sub_p, err) ||
            dist_parse(s, sub, "count", 2, 0, 1024, &a->sub_count, err) ||
            dist_parse(s, sub, "turns", 3, 1, 1e6, &a->sub_turns, err) ||
            parse_turn_dists(s, sub, &a->main, &a->sub, err))
            goto fail;
        if (!cJSON_GetObjectItemCaseSensitive(s, "task_tokens"))
            a->sub_task = a->main.input;
        else if (dist_parse(s, sub, "task_tokens", NAN, 1, 1e7, &a->sub_task, err))
            goto fail;
        a->has_sub = a->sub_p > 0;
    }
    if (sp_opts_parse(params, path, &o, err))
        goto fail;
    have_opts = true;
    if (!o.max_sessions)
        o.max_sessions = a->conversations;
    a->rng = gsl_rng_alloc(gsl_rng_mt19937);
    a->base = gsl_rng_get(setup->length_rng) ^ ((uint64_t)gsl_rng_get(setup->length_rng) << 32);
    a->pl = sp_player_create(&o, setup->arrival_rng, agentic_program, a);
    *state = a;
    return 0;
fail:
    if (have_opts)
        sp_opts_fini(&o);
    agentic_destroy(a);
    return -1;
}

static int agentic_next(void *state, sim_time_ns now, wl_request *out, sim_err *err)
{
    return sp_player_next(((agentic *)state)->pl, now, out, err);
}

static int agentic_complete(void *state, sim_time_ns now, uint64_t session_id)
{
    return sp_player_complete(((agentic *)state)->pl, now, session_id);
}

static int agentic_complete_any(void *state, sim_time_ns now)
{
    (void)state, (void)now;
    return 0;
}

const wl_source_ops wl_agentic = {
    .name = "agentic",
    .init = agentic_init,
    .next = agentic_next,
    .destroy = agentic_destroy,
    .on_complete = agentic_complete_any,
    .on_complete_session = agentic_complete,
};
