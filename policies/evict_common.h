/* Helpers the built-in eviction policies share (evict_common.c): a free
 * set ordered by (class, key, insertion), lowest first, in an intrusive
 * red-black tree with one node per block (O(log n) per call). Class 0 holds
 * free blocks with nothing cached (taking them costs nothing), class 1
 * cached leaves, class 2 cached blocks with cached children (evicting one
 * orphans its subtree; only with leaf_first, else they are class 1). Equal
 * keys go least recently inserted first (LRU). Not part of the API. */
#ifndef POLICIES_EVICT_COMMON_H
#define POLICIES_EVICT_COMMON_H

#include "api/evict.h"
#include "sim/rbtree.h"

typedef struct evs_node {
    sim_rb_node rb;
    double key;
    uint64_t seq;
    int32_t cls;
} evs_node;

typedef struct evs_set {
    sim_rb_tree tree;
    evs_node *node;          /* by block id */
    uint64_t seq;
    bool leaf_first;
} evs_set;

void evs_init(evs_set *s, int32_t n_blocks, bool leaf_first);
void evs_fini(evs_set *s);
/* Adds free block b with this key (its class read from the view). */
void evs_insert(evs_set *s, const evict_view *v, int32_t b, double key);
void evs_remove(evs_set *s, int32_t b);
/* Block b's class may have changed: same key and insertion order. */
void evs_update(evs_set *s, const evict_view *v, int32_t b);
/* Removes and returns the first block. */
int32_t evs_pop(evs_set *s);
/* The first block's key (the set is not empty). */
double evs_first_key(const evs_set *s);

/* Reads an optional "leaf_only" bool (default true) and checks that params
 * hold only the keys given (NULL-terminated, "leaf_only" implied). */
int evs_params(cJSON *params, const char *path, const char *const *keys, bool *leaf_only,
               sim_err *err);

#endif
