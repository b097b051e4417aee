/* Prompt identity for synthetic workloads (see prefix_gen.h).
 *
 * Every prompt is a shared part (a system prompt, a template, a session's
 * context, a pool entry) followed by tokens of its own. Ids describe blocks
 * of block_tokens tokens and are chained (equal id at position j: equal
 * tokens up to the end of block j), so only the shared part's whole blocks
 * keep the shared ids; the block that straddles the end of the shared part
 * and every later block get fresh ids from a counter (unique in the run).
 * Choices among prompts and templates use a precomputed Zipf CDF (binary
 * search: O(log n) per request); a multi-turn session's ids grow with its
 * context and are copied once per turn (O(context / block_tokens)). */
#include "traces/prefix_gen.h"

#include <math.h>
#include <gsl/gsl_randist.h>
#include <stdlib.h>
#include <string.h>
#include "sim/jsoncfg.h"

typedef enum { PG_SYSTEM, PG_FEWSHOT, PG_MULTITURN, PG_POOL, PG_SESSION } pg_kind;

typedef struct id_list {
    uint64_t *v;
    int32_t n, cap;
    int32_t tokens;   /* the shared tokens these ids describe */
} id_list;

struct prefix_gen {
    pg_kind kind;
    int32_t block;
    int32_t max_context;
    uint64_t next_id;
    /* shared prompts: system prompts, or the pool's prompts */
    id_list *prompts;
    int32_t n_prompts;
    double *cdf;
    /* few-shot templates (after their system prompt) */
    id_list *templates;
    int32_t n_templates;
    double *tcdf;
    /* multi-turn */
    id_list *open;
    int32_t sessions;
    double p_new;
    int32_t system_prompts;
    id_list out;
    /* sessions: one per closed-loop client (lane); open[] holds contexts */
    struct lane {
        uint64_t session_id;
        int32_t turn, turns_left;
        sim_time_ns start_ns, done_ns;   /* done: its last turn's completion */
    } *lanes;
    int32_t n_lanes;
    uint64_t sessions_started;
    double turns_mean;
    bool turns_fixed;
};

static void ids_reserve(id_list *l, int32_t n)
{
    if (n <= l->cap)
        return;
    int32_t cap = l->cap ? l->cap : 64;
    while (cap < n)
        cap *= 2;
    l->v = sim_xrealloc(l->v, (size_t)cap * sizeof *l->v);
    l->cap = cap;
}

/* Appends fresh ids until l describes `tokens` tokens (ceil). */
static void ids_fill(prefix_gen *g, id_list *l, int64_t tokens)
{
    int32_t n = (int32_t)((tokens + g->block - 1) / g->block);
    ids_reserve(l, n);
    while (l->n < n)
        l->v[l->n++] = ++g->next_id;
}

/* l := the whole blocks of shared list s (s->tokens of them). */
static void ids_share(prefix_gen *g, id_list *l, const id_list *s)
{
    int32_t whole = s->tokens / g->block;
    if (whole > s->n)
        whole = s->n;
    ids_reserve(l, whole);
    if (whole > 0)
        memcpy(l->v, s->v, (size_t)whole * sizeof *l->v);
    l->n = whole;
}

static double *zipf_cdf(int32_t n, double s)
{
    double *c = sim_xmalloc((size_t)n * sizeof *c), sum = 0;
    for (int32_t k = 0; k < n; k++)
        c[k] = sum += pow(k + 1.0, -s);
    for (int32_t k = 0; k < n; k++)
        c[k] /= sum;
    c[n - 1] = 1;
    return c;
}

static int32_t draw(const double *cdf, int32_t n, gsl_rng *r)
{
    double u = gsl_rng_uniform(r);
    int32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* A length distribution at obj.key, or fixed `def` when absent. */
static int len_or_fixed(cJSON *obj, const char *path, const char *key, int32_t def,
                        len_dist *out, sim_err *err)
{
    if (!cJSON_GetObjectItemCaseSensitive(obj, key)) {
        *out = (len_dist){.kind = LEN_FIXED, .value = def, .min = def, .max = def};
        return 0;
    }
    char sub[256];
    cJSON *o;
    return jcfg_obj(obj, path, key, &o, sub, err) || len_dist_parse(o, sub, out, err);
}

static void make_prompts(prefix_gen *g, int32_t n, const len_dist *len, gsl_rng *rng)
{
    g->prompts = sim_xcalloc((size_t)n, sizeof *g->prompts);
    g->n_prompts = n;
    for (int32_t k = 0; k < n; k++) {
        id_list *p = &g->prompts[k];
        p->tokens = len_dist_sample(len, rng);
        ids_fill(g, p, p->tokens);
    }
}

int prefix_gen_create(cJSON *obj, const char *path, const len_dist *input,
                      int32_t max_context_tokens, gsl_rng *rng, prefix_gen **out,
                      sim_err *err)
{
    static const char *const keys[] = {"kind", "block_tokens", "prompts", "tokens", "zipf",
                                       "templates", "template_tokens", "turns",
                                       "sessions", "system_prompts", "system_tokens",
                                       "turn_dist", NULL};
    const char *kind;
    int64_t block, prompts, templates, sessions, system_prompts;
    double zipf, turns;
    len_dist tokens = {0}, tmpl_tokens = {0};
    *out = NULL;
    if (jcfg_check_keys(obj, path, keys, err) ||
        jcfg_str(obj, path, "kind", JCFG_REQUIRED_STR, &kind, err) ||
        jcfg_int(obj, path, "block_tokens", 16, 1, 1 << 20, &block, err))
        return -1;
    pg_kind k;
    if (!strcmp(kind, "system"))
        k = PG_SYSTEM;
    else if (!strcmp(kind, "fewshot"))
        k = PG_FEWSHOT;
    else if (!strcmp(kind, "multiturn"))
        k = PG_MULTITURN;
    else if (!strcmp(kind, "pool"))
        k = PG_POOL;
    else if (!strcmp(kind, "session"))
        k = PG_SESSION;
    else
        return sim_errf(err, "%s.kind: expected one of: system, fewshot, multiturn, pool, "
                        "session; got \"%s\"", path, kind);
    const char *turn_dist;
    if (jcfg_str(obj, path, "turn_dist", "geometric", &turn_dist, err))
        return -1;
    if (strcmp(turn_dist, "geometric") && strcmp(turn_dist, "fixed"))
        return sim_errf(err, "%s.turn_dist: expected \"geometric\" or \"fixed\", got \"%s\"",
                        path, turn_dist);
    if (jcfg_int(obj, path, "prompts", k == PG_POOL ? 1000 : 8, 1, 1 << 24, &prompts, err) ||
        jcfg_num(obj, path, "zipf", k == PG_POOL ? 0 : 1, 0, 10, &zipf, err) ||
        jcfg_int(obj, path, "templates", 32, 1, 1 << 24, &templates, err) ||
        jcfg_num(obj, path, "turns", 4, 1, 1e6, &turns, err) ||
        jcfg_int(obj, path, "sessions", 1024, 1, 1 << 24, &sessions, err) ||
        jcfg_int(obj, path, "system_prompts", 0, 0, 1 << 24, &system_prompts, err))
        return -1;
    bool conv = k == PG_MULTITURN || k == PG_SESSION;
    int32_t sys_def = conv ? 512 : 1024;
    if (len_or_fixed(obj, path, conv ? "system_tokens" : "tokens", sys_def,
                     &tokens, err) ||
        len_or_fixed(obj, path, "template_tokens", 2048, &tmpl_tokens, err)) {
        len_dist_fini(&tokens);
        return -1;
    }
    prefix_gen *g = sim_xcalloc(1, sizeof *g);
    g->kind = k;
    g->block = (int32_t)block;
    g->max_context = max_context_tokens;
    switch (k) {
    case PG_SYSTEM:
    case PG_FEWSHOT:
        make_prompts(g, (int32_t)prompts, &tokens, rng);
        g->cdf = zipf_cdf(g->n_prompts, zipf);
        if (k == PG_FEWSHOT) {
            g->n_templates = (int32_t)templates;
            g->templates = sim_xcalloc((size_t)templates, sizeof *g->templates);
            for (int32_t t = 0; t < g->n_templates; t++) {
                const id_list *sys = &g->prompts[t % g->n_prompts];
                id_list *l = &g->templates[t];
                ids_share(g, l, sys);
                l->tokens = sys->tokens + len_dist_sample(&tmpl_tokens, rng);
                ids_fill(g, l, l->tokens);
            }
            g->tcdf = zipf_cdf(g->n_templates, zipf);
        }
        break;
    case PG_POOL:
        make_prompts(g, (int32_t)prompts, input, rng);
        g->cdf = zipf_cdf(g->n_prompts, zipf);
        break;
    case PG_SESSION:
        g->turns_mean = turns;
        g->turns_fixed = !strcmp(turn_dist, "fixed");
        g->system_prompts = (int32_t)system_prompts;
        if (system_prompts > 0) {
            make_prompts(g, (int32_t)system_prompts, &tokens, rng);
            g->cdf = zipf_cdf(g->n_prompts, zipf);
        }
        break;
    case PG_MULTITURN:
        g->p_new = 1.0 / turns;
        g->sessions = (int32_t)sessions;
        g->open = sim_xcalloc((size_t)sessions, sizeof *g->open);
        g->system_prompts = (int32_t)system_prompts;
        if (system_prompts > 0) {
            make_prompts(g, (int32_t)system_prompts, &tokens, rng);
            g->cdf = zipf_cdf(g->n_prompts, zipf);
        }
        break;
    }
    len_dist_fini(&tokens);
    len_dist_fini(&tmpl_tokens);
    *out = g;
    return 0;
}

void prefix_gen_destroy(prefix_gen *g)
{
    if (!g)
        return;
    for (int32_t i = 0; i < g->n_prompts; i++)
        free(g->prompts[i].v);
    for (int32_t i = 0; i < g->n_templates; i++)
        free(g->templates[i].v);
    for (int32_t i = 0; i < g->sessions && g->open; i++)
        free(g->open[i].v);
    for (int32_t i = 0; i < g->n_lanes && g->open; i++)
        free(g->open[i].v);
    free(g->lanes);
    free(g->prompts);
    free(g->templates);
    free(g->open);
    free(g->cdf);
    free(g->tcdf);
    free(g->out.v);
    free(g);
}

static void emit(prefix_gen *g, wl_request *out, int32_t id_tokens)
{
    out->prefix_blocks = g->out.v;
    out->n_prefix_blocks = g->out.n;
    out->prefix_block_tokens = g->block;
    out->prefix_id_tokens = id_tokens;
}

/* out's prompt: the context so far in ses (its whole blocks shared), then
 * `user` new tokens; the ids also cover the answer, which the next turn
 * will hold. ses becomes this whole exchange. */
static void extend(prefix_gen *g, id_list *ses, wl_request *out, int64_t user, int64_t answer)
{
    g->out.n = 0;
    ids_share(g, &g->out, ses);
    int64_t prompt = ses->tokens + user;
    if (prompt > INT32_MAX / 2)
        prompt = INT32_MAX / 2;
    ids_fill(g, &g->out, prompt + answer);
    out->input_tokens = (int32_t)prompt;
    emit(g, out, (int32_t)(prompt + answer));
    ids_reserve(ses, g->out.n);
    if (g->out.n > 0)
        memcpy(ses->v, g->out.v, (size_t)g->out.n * sizeof *ses->v);
    ses->n = g->out.n;
    ses->tokens = (int32_t)(prompt + answer);
}

/* Starts ses's context: empty, or a shared system prompt. */
static void start_context(prefix_gen *g, id_list *ses, gsl_rng *rng)
{
    ses->n = 0;
    ses->tokens = 0;
    if (g->n_prompts) {
        const id_list *sys = &g->prompts[draw(g->cdf, g->n_prompts, rng)];
        ids_share(g, ses, sys);
        ses->tokens = sys->tokens;
    }
}

/* A multi-turn request: one of the users (sessions) speaks, continuing its
 * conversation or, with probability 1/turns (or when it has none, or the
 * next prompt would not fit), starting a new one. */
static void next_turn(prefix_gen *g, wl_request *out, gsl_rng *rng)
{
    int64_t user = out->input_tokens, answer = out->output_tokens;
    id_list *ses = &g->open[gsl_rng_uniform_int(rng, (unsigned long)g->sessions)];
    bool restart = gsl_rng_uniform(rng) < g->p_new;
    if (restart || ses->tokens == 0 || ses->tokens + user + answer > g->max_context) {
        ses->n = 0;
        ses->tokens = 0;
        if (g->n_prompts) {
            const id_list *sys = &g->prompts[draw(g->cdf, g->n_prompts, rng)];
            ids_share(g, ses, sys);
            ses->tokens = sys->tokens;
        }
    }
    /* The prompt: the context so far (its whole blocks shared), then the
     * new user tokens; the ids also cover the answer, which the next turn
     * will hold. */
    g->out.n = 0;
    ids_share(g, &g->out, ses);
    int64_t prompt = ses->tokens + user;
    if (prompt > INT32_MAX / 2)
        prompt = INT32_MAX / 2;
    ids_fill(g, &g->out, prompt + answer);
    out->input_tokens = (int32_t)prompt;
    emit(g, out, (int32_t)(prompt + answer));
    /* The conversation's context is now this whole exchange. */
    ids_reserve(ses, g->out.n);
    if (g->out.n > 0)
        memcpy(ses->v, g->out.v, (size_t)g->out.n * sizeof *ses->v);
    ses->n = g->out.n;
    ses->tokens = (int32_t)(prompt + answer);
}

bool prefix_gen_sessions(const prefix_gen *g) { return g->kind == PG_SESSION; }

void prefix_gen_set_lanes(prefix_gen *g, int32_t lanes)
{
    SIM_ASSERT(g->kind == PG_SESSION && !g->lanes && lanes > 0);
    g->n_lanes = lanes;
    g->lanes = sim_xcalloc((size_t)lanes, sizeof *g->lanes);
    g->open = sim_xcalloc((size_t)lanes, sizeof *g->open);
}

int32_t prefix_gen_lane_of(const prefix_gen *g, uint64_t session_id)
{
    if (g->kind != PG_SESSION || session_id == 0)
        return -1;
    return (int32_t)((session_id - 1) % (uint64_t)g->n_lanes);
}

void prefix_gen_lane_done(prefix_gen *g, int32_t lane, sim_time_ns now)
{
    SIM_ASSERT(lane >= 0 && lane < g->n_lanes);
    g->lanes[lane].done_ns = now;
}

void prefix_gen_next_lane(prefix_gen *g, int32_t lane, sim_time_ns now, wl_request *out,
                          gsl_rng *rng)
{
    SIM_ASSERT(lane >= 0 && lane < g->n_lanes);
    struct lane *l = &g->lanes[lane];
    id_list *ses = &g->open[lane];
    if (l->turns_left == 0) {   /* the lane's next session */
        l->session_id = g->sessions_started++ * (uint64_t)g->n_lanes + (uint64_t)lane + 1;
        l->turn = 0;
        l->start_ns = now;
        l->turns_left = g->turns_fixed
                            ? (int32_t)llround(g->turns_mean)
                            : (int32_t)gsl_ran_geometric(rng, 1.0 / g->turns_mean);
        if (l->turns_left < 1)
            l->turns_left = 1;
        start_context(g, ses, rng);
    }
    int64_t user = out->input_tokens, answer = out->output_tokens;
    if (ses->tokens + user + answer > g->max_context)
        l->turns_left = 1;   /* the context is full: this turn (cut to fit) ends it */
    extend(g, ses, out, user, answer);
    out->session_id = l->session_id;
    out->turn = l->turn++;
    out->session_start_ns = l->start_ns;
    out->session_gap_ns = out->turn > 0 && now > l->done_ns ? now - l->done_ns : 0;
    out->session_last = --l->turns_left == 0;
}

void prefix_gen_next(prefix_gen *g, wl_request *out, gsl_rng *rng)
{
    const id_list *shared;
    switch (g->kind) {
    case PG_SESSION:
        SIM_ASSERT(!"sessions come from prefix_gen_next_lane");
        return;
    case PG_MULTITURN:
        next_turn(g, out, rng);
        return;
    case PG_POOL:
        shared = &g->prompts[draw(g->cdf, g->n_prompts, rng)];
        g->out.n = 0;
        ids_reserve(&g->out, shared->n);
        if (shared->n > 0)
            memcpy(g->out.v, shared->v, (size_t)shared->n * sizeof *shared->v);
        g->out.n = shared->n;
        out->input_tokens = shared->tokens;
        emit(g, out, shared->tokens);
        return;
    case PG_FEWSHOT:
        shared = &g->templates[draw(g->tcdf, g->n_templates, rng)];
        break;
    case PG_SYSTEM:
    default:
        shared = &g->prompts[draw(g->cdf, g->n_prompts, rng)];
        break;
    }
    g->out.n = 0;
    ids_share(g, &g->out, shared);
    int64_t prompt = (int64_t)shared->tokens + out->input_tokens;
    if (prompt > INT32_MAX / 2)
        prompt = INT32_MAX / 2;
    ids_fill(g, &g->out, prompt);
    out->input_tokens = (int32_t)prompt;
    emit(g, out, (int32_t)prompt);
}
