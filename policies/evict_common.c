/* The ordered free set of the scored eviction policies (evict_common.h). */
#include "policies/evict_common.h"

#include <stdlib.h>
#include "sim/jsoncfg.h"

static int evs_cmp(const sim_rb_node *a, const sim_rb_node *b)
{
    const evs_node *x = SIM_RB_ENTRY(a, evs_node, rb), *y = SIM_RB_ENTRY(b, evs_node, rb);
    if (x->cls != y->cls)
        return x->cls < y->cls ? -1 : 1;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void evs_init(evs_set *s, int32_t n_blocks, bool leaf_first)
{
    sim_rb_init(&s->tree, evs_cmp);
    s->node = sim_xcalloc((size_t)(n_blocks > 0 ? n_blocks : 1), sizeof *s->node);
    for (int32_t b = 0; b < n_blocks; b++)
        sim_rb_node_clear(&s->node[b].rb);
    s->seq = 0;
    s->leaf_first = leaf_first;
}

void evs_fini(evs_set *s) { free(s->node); }

static int32_t class_of(const evs_set *s, const evict_view *v, int32_t b)
{
    const evict_block *x = &v->blocks[b];
    if (!x->hash)
        return 0;
    return s->leaf_first && x->n_children > 0 ? 2 : 1;
}

void evs_insert(evs_set *s, const evict_view *v, int32_t b, double key)
{
    evs_node *n = &s->node[b];
    n->key = key;
    n->seq = ++s->seq;
    n->cls = class_of(s, v, b);
    sim_rb_insert(&s->tree, &n->rb);
}

void evs_remove(evs_set *s, int32_t b) { sim_rb_remove(&s->tree, &s->node[b].rb); }

void evs_update(evs_set *s, const evict_view *v, int32_t b)
{
    evs_node *n = &s->node[b];
    int32_t cls = class_of(s, v, b);
    if (cls == n->cls)
        return;
    sim_rb_remove(&s->tree, &n->rb);
    n->cls = cls;
    sim_rb_insert(&s->tree, &n->rb);
}

int32_t evs_pop(evs_set *s)
{
    sim_rb_node *f = sim_rb_first(&s->tree);
    SIM_ASSERT(f);
    sim_rb_remove(&s->tree, f);
    return (int32_t)(SIM_RB_ENTRY(f, evs_node, rb) - s->node);
}

double evs_first_key(const evs_set *s)
{
    return SIM_RB_ENTRY(sim_rb_first(&s->tree), evs_node, rb)->key;
}

int evs_params(cJSON *params, const char *path, const char *const *keys, bool *leaf_only,
               sim_err *err)
{
    const char *all[16] = {"leaf_only"};
    int n = 1;
    while (keys && keys[n - 1] && n < 15) {
        all[n] = keys[n - 1];
        n++;
    }
    all[n] = NULL;
    return jcfg_check_keys(params, path, all, err) ||
           jcfg_bool(params, path, "leaf_only", 1, leaf_only, err);
}
