/* Intrusive red-black tree: an ordered set of nodes that live inside the
 * caller's structs (no allocation). O(log n) insert and removal of any node,
 * O(1) first/last, and in-order iteration through inline next/prev that need
 * nothing linked (policies and plugins iterate with this header alone).
 *
 * Order: the tree's comparator must be a total order on the nodes it holds:
 * it never returns 0 for two distinct nodes of one tree, so equal keys need a
 * tie-break (an id, an arrival sequence). Insert asserts this.
 *
 * Typical use:
 *     typedef struct req { int64_t key; uint64_t id; sim_rb_node rb; } req;
 *     static int req_cmp(const sim_rb_node *a, const sim_rb_node *b) {
 *         const req *x = SIM_RB_ENTRY(a, req, rb), *y = SIM_RB_ENTRY(b, req, rb);
 *         if (x->key != y->key) return x->key < y->key ? -1 : 1;
 *         return x->id < y->id ? -1 : x->id > y->id;
 *     }
 *     for (sim_rb_node *p = sim_rb_first(&t); p; p = sim_rb_next(p)) ...
 * To remove while iterating, take next before removing:
 *     for (sim_rb_node *p = sim_rb_first(&t), *nx; p; p = nx) {
 *         nx = sim_rb_next(p); if (done(p)) sim_rb_remove(&t, p); }
 * A node's key must not change while it is in the tree: remove, change,
 * insert again. */
#ifndef SIM_RBTREE_H
#define SIM_RBTREE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sim_rb_node {
    struct sim_rb_node *parent, *left, *right;
    int red;
} sim_rb_node;

/* Total order: < 0 when a comes first; never 0 for two distinct nodes in one
 * tree. */
typedef int (*sim_rb_cmp_fn)(const sim_rb_node *a, const sim_rb_node *b);

/* root/first/last/n are read-only for callers. */
typedef struct sim_rb_tree {
    sim_rb_node *root, *first, *last;
    size_t n;
    sim_rb_cmp_fn cmp;
} sim_rb_tree;

/* The struct holding `ptr`, a pointer to its `member` (container_of). */
#define SIM_RB_ENTRY(ptr, type, member)                                       \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* --- building and changing the tree -------------------------------------- */

void sim_rb_init(sim_rb_tree *t, sim_rb_cmp_fn cmp);   /* an empty tree */
/* O(log n). node must not be in any tree; its fields are overwritten. Keeps
 * first/last current. Asserts that cmp never returned 0 on the way down. */
void sim_rb_insert(sim_rb_tree *t, sim_rb_node *node);
/* O(log n). node must be in t. Afterwards the node is marked unlinked
 * (sim_rb_node_linked is false) and may be inserted again or freed. Removing
 * a node marked unlinked asserts. */
void sim_rb_remove(sim_rb_tree *t, sim_rb_node *node);

/* Marks a node as in no tree (parent points to itself), so that
 * sim_rb_node_linked can be asked of a node never inserted. */
static inline void sim_rb_node_clear(sim_rb_node *node)
{
    node->parent = node;
    node->left = node->right = NULL;
    node->red = 0;
}
/* True while the node is in a tree (after insert, before remove); only
 * meaningful for nodes that were cleared or removed before. */
static inline bool sim_rb_node_linked(const sim_rb_node *node)
{
    return node->parent != node;
}

/* --- reading: O(1) ends, amortised O(1) steps ---------------------------- */

static inline size_t sim_rb_size(const sim_rb_tree *t) { return t->n; }
static inline bool sim_rb_empty(const sim_rb_tree *t) { return t->n == 0; }
/* The first/last node in order; NULL when empty. */
static inline sim_rb_node *sim_rb_first(const sim_rb_tree *t) { return t->first; }
static inline sim_rb_node *sim_rb_last(const sim_rb_tree *t) { return t->last; }

/* In-order successor; NULL after the last. O(log n) worst case, O(1)
 * amortised over a full iteration (each edge is walked twice). */
static inline sim_rb_node *sim_rb_next(const sim_rb_node *node)
{
    if (node->right) {
        node = node->right;
        while (node->left)
            node = node->left;
        return (sim_rb_node *)node;
    }
    const sim_rb_node *p;
    while ((p = node->parent) && node == p->right)
        node = p;
    return (sim_rb_node *)p;
}

/* In-order predecessor; NULL before the first. Same cost as next. */
static inline sim_rb_node *sim_rb_prev(const sim_rb_node *node)
{
    if (node->left) {
        node = node->left;
        while (node->right)
            node = node->right;
        return (sim_rb_node *)node;
    }
    const sim_rb_node *p;
    while ((p = node->parent) && node == p->left)
        node = p;
    return (sim_rb_node *)p;
}

#endif
