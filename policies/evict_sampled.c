/* Sampled, learned eviction in the spirit of Cold-RL (a learned scorer over
 * a handful of LRU candidates): free blocks with nothing cached go first;
 * otherwise the K least recently freed cached blocks are candidates, each
 * is scored by a linear function of its features read from a model file,
 * and the lowest score (the least worth keeping) goes, the least recently
 * freed first among equals. Without a model file it is LRU over cached
 * blocks. O(K) per eviction, O(1) per other call.
 *
 * Params: "candidates" (K, default 16), "model" (path of a JSON file
 * {"features": [names], "weights": [numbers], "bias": number}; the score is
 * bias + sum of weight x feature). Features: "age_s" (seconds since its
 * last access), "hits", "depth" (blocks before it), "recompute_ms" (the
 * cost model's time to compute it again), "leaf" (1 if no cached child),
 * "rank" (its place among the candidates / K, 0 = least recent).
 * policies/evict_sampled_fit.py fits a model offline from a trace. */
#include "api/evict.h"

#include <stdlib.h>
#include <string.h>
#include "sim/jsoncfg.h"

enum { F_AGE, F_HITS, F_DEPTH, F_RECOMPUTE, F_LEAF, F_RANK, F_COUNT };
static const char *const feature_names[F_COUNT] = {"age_s", "hits", "depth", "recompute_ms",
                                                   "leaf", "rank"};

typedef struct list { int32_t head, tail; } list;

typedef struct sampled_state {
    int32_t *prev, *next;
    list free_list, cached;
    int32_t k;
    bool have_model;
    double w[F_COUNT], bias;
} sampled_state;

static void push(sampled_state *s, list *l, int32_t b)
{
    s->prev[b] = l->tail;
    s->next[b] = EVICT_NONE;
    if (l->tail != EVICT_NONE)
        s->next[l->tail] = b;
    else
        l->head = b;
    l->tail = b;
}

static void unlink_from(sampled_state *s, list *l, int32_t b)
{
    if (s->prev[b] != EVICT_NONE)
        s->next[s->prev[b]] = s->next[b];
    else
        l->head = s->next[b];
    if (s->next[b] != EVICT_NONE)
        s->prev[s->next[b]] = s->prev[b];
    else
        l->tail = s->prev[b];
}

static int load_model(sampled_state *s, const char *file, const char *path, sim_err *err)
{
    cJSON *root;
    if (jcfg_load_file(file, &root, err))
        return sim_err_prefix(err, "%s.model", path);
    int rc = -1;
    cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "features");
    cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "weights");
    cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "bias");
    if (!cJSON_IsArray(f) || !cJSON_IsArray(w) || cJSON_GetArraySize(f) != cJSON_GetArraySize(w) ||
        !cJSON_IsNumber(b)) {
        sim_errf(err, "%s: expected {\"features\": [names], \"weights\": [numbers, one per "
                 "feature], \"bias\": number}", file);
        goto out;
    }
    s->bias = b->valuedouble;
    for (int i = 0; i < cJSON_GetArraySize(f); i++) {
        cJSON *fi = cJSON_GetArrayItem(f, i), *wi = cJSON_GetArrayItem(w, i);
        int j = 0;
        while (j < F_COUNT && !(cJSON_IsString(fi) && !strcmp(fi->valuestring, feature_names[j])))
            j++;
        if (j == F_COUNT) {
            sim_errf(err, "%s: features[%d]: expected one of: age_s, hits, depth, "
                     "recompute_ms, leaf, rank", file, i);
            goto out;
        }
        if (!cJSON_IsNumber(wi)) {
            sim_errf(err, "%s: weights[%d]: expected a number", file, i);
            goto out;
        }
        s->w[j] = wi->valuedouble;
    }
    s->have_model = true;
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

static int sampled_init(const evict_setup *setup, cJSON *params, const char *path,
                        void **state, sim_err *err)
{
    static const char *const keys[] = {"candidates", "model", NULL};
    int64_t k;
    const char *model;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_int(params, path, "candidates", 16, 1, 4096, &k, err) ||
        jcfg_str(params, path, "model", "", &model, err))
        return -1;
    sampled_state *s = sim_xcalloc(1, sizeof *s);
    size_t n = (size_t)(setup->n_blocks > 0 ? setup->n_blocks : 1);
    s->prev = sim_xmalloc(n * sizeof *s->prev);
    s->next = sim_xmalloc(n * sizeof *s->next);
    s->free_list = s->cached = (list){EVICT_NONE, EVICT_NONE};
    s->k = (int32_t)k;
    if (*model && load_model(s, model, path, err)) {
        free(s->prev);
        free(s->next);
        free(s);
        return -1;
    }
    *state = s;
    return 0;
}

static void sampled_insert(void *state, const evict_view *v, int32_t b)
{
    sampled_state *s = state;
    push(s, v->blocks[b].hash ? &s->cached : &s->free_list, b);
}

static void sampled_remove(void *state, const evict_view *v, int32_t b)
{
    sampled_state *s = state;
    unlink_from(s, v->blocks[b].hash ? &s->cached : &s->free_list, b);
}

static double score(const sampled_state *s, const evict_view *v, int32_t b, int32_t rank)
{
    const evict_block *x = &v->blocks[b];
    double f[F_COUNT] = {
        [F_AGE] = (double)(v->now - x->last_access_ns) / 1e9,
        [F_HITS] = x->hits,
        [F_DEPTH] = x->depth,
        [F_RECOMPUTE] = s->w[F_RECOMPUTE] ? v->recompute_ns(v, x->depth) / 1e6 : 0,
        [F_LEAF] = x->n_children == 0,
        [F_RANK] = (double)rank / s->k,
    };
    double y = s->bias;
    for (int i = 0; i < F_COUNT; i++)
        y += s->w[i] * f[i];
    return y;
}

static int32_t sampled_victim(void *state, const evict_view *v)
{
    sampled_state *s = state;
    list *l = s->free_list.head != EVICT_NONE ? &s->free_list : &s->cached;
    int32_t best = l->head;
    SIM_ASSERT(best != EVICT_NONE);
    if (l == &s->cached && s->have_model) {
        double best_y = score(s, v, best, 0);
        int32_t b = s->next[best];
        for (int32_t r = 1; r < s->k && b != EVICT_NONE; r++, b = s->next[b]) {
            double y = score(s, v, b, r);
            if (y < best_y) {
                best_y = y;
                best = b;
            }
        }
    }
    unlink_from(s, l, best);
    return best;
}

static void sampled_destroy(void *state)
{
    sampled_state *s = state;
    free(s->prev);
    free(s->next);
    free(s);
}

const evict_policy_ops evict_sampled = {
    .name = "sampled",
    .init = sampled_init,
    .insert = sampled_insert,
    .remove = sampled_remove,
    .victim = sampled_victim,
    .destroy = sampled_destroy,
};
