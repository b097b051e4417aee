/* Intrusive red-black tree (CLRS, chapter 13, with NULL leaves and parent
 * pointers instead of a shared sentinel, so that nodes need no tree to point
 * at and a tree needs no storage of its own).
 *
 * Invariants (tests/test_sim_rbtree.c checks all of them after every
 * operation of a randomised run):
 *   - binary search tree under cmp, which is strict (never 0 for two nodes);
 *   - the root is black; a red node has no red child;
 *   - every path from a node down to a NULL leaf crosses the same number of
 *     black nodes (so the height is at most 2 log2(n + 1));
 *   - child->parent == node for every child, root->parent == NULL;
 *   - first/last are the leftmost/rightmost nodes (NULL when empty), n the
 *     count.
 * A removed node gets parent == itself: "in no tree". Insert overwrites all
 * of a node's fields, so it never needs a cleared node.
 *
 * Costs: insert walks down once (O(log n) comparisons), then recolours up
 * and rotates at most twice. Remove does no comparison at all: it unlinks by
 * pointers, then recolours up and rotates at most three times. Keeping
 * first/last costs one successor/predecessor step when the first/last node
 * is removed (O(1): the minimum has at most one, red, right child) and
 * nothing on insert (the walk down tells whether the new node went all the
 * way left or right). */
#include "sim/rbtree.h"

#include "sim/base.h"

void sim_rb_init(sim_rb_tree *t, sim_rb_cmp_fn cmp)
{
    SIM_ASSERT(cmp != NULL);
    t->root = t->first = t->last = NULL;
    t->n = 0;
    t->cmp = cmp;
}

static inline bool is_red(const sim_rb_node *x)
{
    return x && x->red;
}

/* Points old's parent (or the root) at new instead; new's own parent pointer
 * is the caller's business. */
static inline void replace_child(sim_rb_tree *t, sim_rb_node *parent,
                                 sim_rb_node *old, sim_rb_node *new_)
{
    if (!parent)
        t->root = new_;
    else if (parent->left == old)
        parent->left = new_;
    else
        parent->right = new_;
}

/*     x              y
 *    / \            / \
 *   a   y    ->    x   c
 *      / \        / \
 *     b   c      a   b      */
static void rotate_left(sim_rb_tree *t, sim_rb_node *x)
{
    sim_rb_node *y = x->right;
    x->right = y->left;
    if (y->left)
        y->left->parent = x;
    y->parent = x->parent;
    replace_child(t, x->parent, x, y);
    y->left = x;
    x->parent = y;
}

static void rotate_right(sim_rb_tree *t, sim_rb_node *x)
{
    sim_rb_node *y = x->left;
    x->left = y->right;
    if (y->right)
        y->right->parent = x;
    y->parent = x->parent;
    replace_child(t, x->parent, x, y);
    y->right = x;
    x->parent = y;
}

/* Restores "no red-red" after x was linked in red. */
static void insert_fixup(sim_rb_tree *t, sim_rb_node *x)
{
    sim_rb_node *p;
    while ((p = x->parent) && p->red) {
        sim_rb_node *g = p->parent;   /* exists: a red node is not the root */
        if (p == g->left) {
            sim_rb_node *u = g->right;
            if (is_red(u)) {          /* recolour and move the problem up */
                p->red = u->red = 0;
                g->red = 1;
                x = g;
                continue;
            }
            if (x == p->right) {      /* bend to the outside first */
                rotate_left(t, p);
                x = p;
                p = x->parent;
            }
            p->red = 0;
            g->red = 1;
            rotate_right(t, g);
        } else {
            sim_rb_node *u = g->left;
            if (is_red(u)) {
                p->red = u->red = 0;
                g->red = 1;
                x = g;
                continue;
            }
            if (x == p->left) {
                rotate_right(t, p);
                x = p;
                p = x->parent;
            }
            p->red = 0;
            g->red = 1;
            rotate_left(t, g);
        }
    }
    t->root->red = 0;
}

void sim_rb_insert(sim_rb_tree *t, sim_rb_node *node)
{
    sim_rb_node *parent = NULL, **link = &t->root;
    bool leftmost = true, rightmost = true;
    int c = 0;
    while (*link) {
        parent = *link;
        c = t->cmp(node, parent);
        /* 0: a comparator without tie-break, or node already in the tree. */
        SIM_ASSERT(c != 0);
        if (c < 0) {
            link = &parent->left;
            rightmost = false;
        } else {
            link = &parent->right;
            leftmost = false;
        }
    }
    node->parent = parent;
    node->left = node->right = NULL;
    node->red = 1;
    *link = node;
    if (leftmost)
        t->first = node;
    if (rightmost)
        t->last = node;
    t->n++;
    insert_fixup(t, node);
}

/* Puts v (possibly NULL) where u was under u's parent. */
static inline void transplant(sim_rb_tree *t, sim_rb_node *u, sim_rb_node *v)
{
    replace_child(t, u->parent, u, v);
    if (v)
        v->parent = u->parent;
}

/* Restores equal black heights after a black node left the path through x
 * (x may be NULL, hence its parent xp is passed separately). */
static void remove_fixup(sim_rb_tree *t, sim_rb_node *x, sim_rb_node *xp)
{
    while (x != t->root && !is_red(x)) {
        if (x == xp->left) {
            /* The sibling exists: its side has black height >= 1 more. */
            sim_rb_node *w = xp->right;
            if (w->red) {
                w->red = 0;
                xp->red = 1;
                rotate_left(t, xp);
                w = xp->right;
            }
            if (!is_red(w->left) && !is_red(w->right)) {
                w->red = 1;
                x = xp;
                xp = x->parent;
            } else {
                if (!is_red(w->right)) {
                    w->left->red = 0;
                    w->red = 1;
                    rotate_right(t, w);
                    w = xp->right;
                }
                w->red = xp->red;
                xp->red = 0;
                w->right->red = 0;
                rotate_left(t, xp);
                x = t->root;
            }
        } else {
            sim_rb_node *w = xp->left;
            if (w->red) {
                w->red = 0;
                xp->red = 1;
                rotate_right(t, xp);
                w = xp->left;
            }
            if (!is_red(w->left) && !is_red(w->right)) {
                w->red = 1;
                x = xp;
                xp = x->parent;
            } else {
                if (!is_red(w->left)) {
                    w->right->red = 0;
                    w->red = 1;
                    rotate_left(t, w);
                    w = xp->left;
                }
                w->red = xp->red;
                xp->red = 0;
                w->left->red = 0;
                rotate_right(t, xp);
                x = t->root;
            }
        }
    }
    if (x)
        x->red = 0;
}

void sim_rb_remove(sim_rb_tree *t, sim_rb_node *node)
{
    SIM_ASSERT(sim_rb_node_linked(node) && t->n > 0);
    if (t->first == node)
        t->first = sim_rb_next(node);
    if (t->last == node)
        t->last = sim_rb_prev(node);

    sim_rb_node *x, *xp;
    int removed_red;
    if (!node->left || !node->right) {
        /* At most one child: it takes the node's place. */
        x = node->left ? node->left : node->right;
        xp = node->parent;
        removed_red = node->red;
        transplant(t, node, x);
    } else {
        /* Two children: the successor y (leftmost of the right subtree, no
         * left child) takes the node's place and colour; the colour lost is
         * y's, at y's old position. */
        sim_rb_node *y = node->right;
        while (y->left)
            y = y->left;
        removed_red = y->red;
        x = y->right;
        if (y->parent == node) {
            xp = y;
        } else {
            xp = y->parent;
            transplant(t, y, x);
            y->right = node->right;
            y->right->parent = y;
        }
        transplant(t, node, y);
        y->left = node->left;
        y->left->parent = y;
        y->red = node->red;
    }
    t->n--;
    if (!removed_red)
        remove_fixup(t, x, xp);
    sim_rb_node_clear(node);
}
