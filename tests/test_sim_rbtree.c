/* Red-black tree: order, balance and pointer invariants, first/last, and
 * iteration both ways, against a plain sorted array.
 *
 * check_tree() restates every invariant independently of rbtree.c (root
 * black, no red-red, equal black heights, parent pointers, BST order through
 * the comparator, first/last/n) and compares the in-order walk, forwards and
 * backwards, with the reference. The randomised test runs it after every one
 * of tens of thousands of operations on keys drawn from a small range, so
 * equal keys (told apart by the comparator's tie-break on id) are common. */
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_rng.h>

#include "sim/rbtree.h"
#include "tests/suites.h"

typedef struct item {
    uint32_t key;
    uint32_t id;        /* the tie-break: unique per item */
    bool in;
    sim_rb_node rb;
} item;

static item *it_of(const sim_rb_node *p)
{
    return SIM_RB_ENTRY(p, item, rb);
}

static int item_cmp(const sim_rb_node *a, const sim_rb_node *b)
{
    const item *x = it_of(a), *y = it_of(b);
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* No tie-break: two items with one key compare equal (a comparator bug). */
static int key_only_cmp(const sim_rb_node *a, const sim_rb_node *b)
{
    const item *x = it_of(a), *y = it_of(b);
    return x->key < y->key ? -1 : x->key > y->key;
}

/* --- the invariant checker ---------------------------------------------- */

/* Check's ck_assert marks a point (a write to a pipe) on every success,
 * which is too slow for a checker run after each of 40,000 operations;
 * this reports only failures. */
#define REQUIRE(e)                                                            \
    do {                                                                      \
        if (!(e))                                                             \
            ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #e);                \
    } while (0)

/* Black height of the subtree at x (NULL leaves count 0); checks colours,
 * parent pointers and order below x, counts nodes into *count. */
static int check_subtree(const sim_rb_tree *t, const sim_rb_node *x,
                         const sim_rb_node *parent, size_t *count)
{
    if (!x)
        return 0;
    REQUIRE(x->parent == parent);
    if (x->red) {
        REQUIRE(!x->left || !x->left->red);
        REQUIRE(!x->right || !x->right->red);
    }
    if (x->left)
        REQUIRE(t->cmp(x->left, x) < 0);
    if (x->right)
        REQUIRE(t->cmp(x->right, x) > 0);
    (*count)++;
    int hl = check_subtree(t, x->left, x, count);
    int hr = check_subtree(t, x->right, x, count);
    REQUIRE(hl == hr);
    return hl + !x->red;
}

/* Checks every invariant and that the tree holds exactly ref[0..n) in that
 * order, walking forwards with next and backwards with prev. */
static void check_tree(const sim_rb_tree *t, item *const *ref, size_t n)
{
    size_t count = 0;
    if (t->root) {
        REQUIRE(!t->root->red);
        check_subtree(t, t->root, NULL, &count);
    }
    REQUIRE(count == n);
    REQUIRE(sim_rb_size(t) == n);
    REQUIRE(sim_rb_empty(t) == (n == 0));
    if (n == 0) {
        REQUIRE(t->root == NULL);
        REQUIRE(sim_rb_first(t) == NULL);
        REQUIRE(sim_rb_last(t) == NULL);
        return;
    }
    REQUIRE(sim_rb_first(t) == &ref[0]->rb);
    REQUIRE(sim_rb_last(t) == &ref[n - 1]->rb);
    size_t i = 0;
    for (const sim_rb_node *p = sim_rb_first(t); p; p = sim_rb_next(p)) {
        REQUIRE(i < n);
        REQUIRE(p == &ref[i++]->rb);
    }
    REQUIRE(i == n);
    for (const sim_rb_node *p = sim_rb_last(t); p; p = sim_rb_prev(p))
        REQUIRE(p == &ref[--i]->rb);
    REQUIRE(i == 0);
}

/* Height: the number of nodes on the longest path from the root down. */
static int height(const sim_rb_node *x)
{
    if (!x)
        return 0;
    int l = height(x->left), r = height(x->right);
    return 1 + (l > r ? l : r);
}

/* Reference: ref[] sorted by (key, id), written out here, not item_cmp. */
static bool ref_before(const item *a, const item *b)
{
    return a->key < b->key || (a->key == b->key && a->id < b->id);
}

static void ref_insert(item **ref, size_t *n, item *x)
{
    size_t i = *n;
    while (i > 0 && ref_before(x, ref[i - 1])) {
        ref[i] = ref[i - 1];
        i--;
    }
    ref[i] = x;
    (*n)++;
}

static void ref_remove_at(item **ref, size_t *n, size_t i)
{
    memmove(&ref[i], &ref[i + 1], (*n - i - 1) * sizeof *ref);
    (*n)--;
}

/* --- tests -------------------------------------------------------------- */

START_TEST(test_rbtree_empty_tree_has_no_first_or_last)
{
    sim_rb_tree t;
    sim_rb_init(&t, item_cmp);
    check_tree(&t, NULL, 0);

    item a = {.key = 5, .id = 1};
    sim_rb_insert(&t, &a.rb);
    item *ref[] = {&a};
    check_tree(&t, ref, 1);
    ck_assert_ptr_null(sim_rb_next(&a.rb));
    ck_assert_ptr_null(sim_rb_prev(&a.rb));
    sim_rb_remove(&t, &a.rb);
    check_tree(&t, NULL, 0);
}
END_TEST

START_TEST(test_rbtree_random_ops_match_sorted_reference)
{
    enum { OPS = 40000, NITEMS = 1500, KEYS = 200 };
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 20240917);
    item *items = calloc(NITEMS, sizeof *items);
    item **ref = malloc(NITEMS * sizeof *ref);
    for (uint32_t i = 0; i < NITEMS; i++)
        items[i].id = i;
    sim_rb_tree t;
    sim_rb_init(&t, item_cmp);
    size_t n = 0;
    uint64_t inserts = 0, removes = 0;

    for (int op = 0; op < OPS; op++) {
        unsigned long u = gsl_rng_uniform_int(r, 100);
        /* Insert more than remove early on, so the tree grows, then drifts. */
        bool grow = u < (op < OPS / 4 ? 70 : 50);
        if ((grow && n < NITEMS) || n == 0) {
            item *x;
            do
                x = &items[gsl_rng_uniform_int(r, NITEMS)];
            while (x->in);
            x->key = (uint32_t)gsl_rng_uniform_int(r, KEYS);
            x->in = true;
            sim_rb_insert(&t, &x->rb);
            ck_assert(sim_rb_node_linked(&x->rb));
            ref_insert(ref, &n, x);
            inserts++;
        } else {
            /* Any node, the first or the last: the ends have extra code. */
            unsigned long w = gsl_rng_uniform_int(r, 10);
            size_t i = w == 0 ? 0 : w == 1 ? n - 1 : gsl_rng_uniform_int(r, n);
            item *x = ref[i];
            sim_rb_remove(&t, &x->rb);
            ck_assert(!sim_rb_node_linked(&x->rb));
            x->in = false;
            ref_remove_at(ref, &n, i);
            removes++;
        }
        check_tree(&t, ref, n);
    }
    ck_assert(inserts > 15000 && removes > 15000);
    /* Drain from the middle outwards. */
    while (n > 0) {
        size_t i = n / 2;
        sim_rb_remove(&t, &ref[i]->rb);
        ref_remove_at(ref, &n, i);
        check_tree(&t, ref, n);
    }
    free(ref);
    free(items);
    gsl_rng_free(r);
}
END_TEST

START_TEST(test_rbtree_iterates_forward_and_backward)
{
    enum { N = 257 };
    item items[N];
    item *ref[N];
    sim_rb_tree t;
    sim_rb_init(&t, item_cmp);
    /* Keys inserted in a scrambled order (37 is coprime to 257). */
    for (uint32_t i = 0; i < N; i++) {
        uint32_t k = (i * 37) % N;
        items[k] = (item){.key = k, .id = k};
        sim_rb_insert(&t, &items[k].rb);
    }
    for (uint32_t i = 0; i < N; i++)
        ref[i] = &items[i];
    check_tree(&t, ref, N);

    uint32_t want = 0;
    for (sim_rb_node *p = sim_rb_first(&t); p; p = sim_rb_next(p))
        ck_assert_uint_eq(it_of(p)->key, want++);
    ck_assert_uint_eq(want, N);
    for (sim_rb_node *p = sim_rb_last(&t); p; p = sim_rb_prev(p))
        ck_assert_uint_eq(it_of(p)->key, --want);
    ck_assert_uint_eq(want, 0);
    /* Steps from the middle both ways. */
    ck_assert_ptr_eq(sim_rb_next(&items[100].rb), &items[101].rb);
    ck_assert_ptr_eq(sim_rb_prev(&items[100].rb), &items[99].rb);
}
END_TEST

START_TEST(test_rbtree_remove_during_iteration)
{
    enum { N = 1000 };
    item *items = calloc(N, sizeof *items);
    item **ref = malloc(N * sizeof *ref);
    sim_rb_tree t;
    sim_rb_init(&t, item_cmp);
    for (uint32_t i = 0; i < N; i++) {
        items[i] = (item){.key = (i * 7919) % 97, .id = i};
        sim_rb_insert(&t, &items[i].rb);
    }
    /* Remove every item whose id is a multiple of 3, saving next first. */
    size_t seen = 0;
    for (sim_rb_node *p = sim_rb_first(&t), *nx; p; p = nx) {
        nx = sim_rb_next(p);
        seen++;
        if (it_of(p)->id % 3 == 0)
            sim_rb_remove(&t, p);
    }
    ck_assert_uint_eq(seen, N);
    size_t n = 0;
    for (uint32_t i = 0; i < N; i++)
        if (i % 3 != 0)
            ref_insert(ref, &n, &items[i]);
    check_tree(&t, ref, n);

    /* Backwards, removing everything: the tree ends empty. */
    seen = 0;
    for (sim_rb_node *p = sim_rb_last(&t), *pv; p; p = pv) {
        pv = sim_rb_prev(p);
        sim_rb_remove(&t, p);
        seen++;
    }
    ck_assert_uint_eq(seen, n);
    check_tree(&t, ref, 0);
    free(ref);
    free(items);
}
END_TEST

START_TEST(test_rbtree_equal_keys_ordered_by_tie_break)
{
    enum { N = 500 };
    item items[N];
    item *ref[N];
    sim_rb_tree t;
    sim_rb_init(&t, item_cmp);
    /* All one key; ids inserted out of order. */
    for (uint32_t i = 0; i < N; i++) {
        uint32_t id = (i * 211) % N;
        items[id] = (item){.key = 42, .id = id};
        sim_rb_insert(&t, &items[id].rb);
    }
    for (uint32_t i = 0; i < N; i++)
        ref[i] = &items[i];
    check_tree(&t, ref, N);
    /* Removing any of them leaves the others in id order. */
    size_t n = N;
    for (uint32_t id = 0; id < N; id += 5) {
        sim_rb_remove(&t, &items[id].rb);
        for (size_t i = 0; i < n; i++)
            if (ref[i] == &items[id]) {
                ref_remove_at(ref, &n, i);
                break;
            }
    }
    check_tree(&t, ref, n);
}
END_TEST

START_TEST(test_rbtree_sorted_inserts_stay_balanced)
{
    enum { N = 100000 };
    item *items = calloc(N, sizeof *items);
    sim_rb_tree t;
    sim_rb_init(&t, item_cmp);
    for (uint32_t i = 0; i < N; i++) {
        items[i] = (item){.key = i, .id = i};
        sim_rb_insert(&t, &items[i].rb);
    }
    /* A red-black tree of n nodes is at most 2 log2(n + 1) high: 33 here, 31 at n/2. */
    ck_assert_int_le(height(t.root), 33);
    ck_assert_ptr_eq(sim_rb_first(&t), &items[0].rb);
    ck_assert_ptr_eq(sim_rb_last(&t), &items[N - 1].rb);
    for (uint32_t i = 0; i < N; i += 2)
        sim_rb_remove(&t, &items[i].rb);
    ck_assert_int_le(height(t.root), 31);
    ck_assert_ptr_eq(sim_rb_first(&t), &items[1].rb);
    size_t count = 0;
    check_subtree(&t, t.root, NULL, &count);
    ck_assert_uint_eq(count, N / 2);
    free(items);
}
END_TEST

START_TEST(test_rbtree_node_linked_tracks_membership)
{
    sim_rb_tree t;
    sim_rb_init(&t, item_cmp);
    item a = {.key = 1, .id = 1}, b = {.key = 1, .id = 2};
    sim_rb_node_clear(&a.rb);
    sim_rb_node_clear(&b.rb);
    ck_assert(!sim_rb_node_linked(&a.rb));
    sim_rb_insert(&t, &a.rb);
    sim_rb_insert(&t, &b.rb);
    ck_assert(sim_rb_node_linked(&a.rb));   /* the root */
    ck_assert(sim_rb_node_linked(&b.rb));
    sim_rb_remove(&t, &a.rb);
    ck_assert(!sim_rb_node_linked(&a.rb));
    /* Reinsert after a key change. */
    a.key = 0;
    sim_rb_insert(&t, &a.rb);
    ck_assert_ptr_eq(sim_rb_first(&t), &a.rb);
    ck_assert_ptr_eq(sim_rb_last(&t), &b.rb);
}
END_TEST

START_TEST(test_rbtree_comparator_without_tie_break_aborts)
{
    sim_rb_tree t;
    sim_rb_init(&t, key_only_cmp);
    item a = {.key = 3, .id = 1}, b = {.key = 3, .id = 2};
    sim_rb_insert(&t, &a.rb);
    sim_rb_insert(&t, &b.rb);
}
END_TEST

START_TEST(test_rbtree_removing_unlinked_node_aborts)
{
    sim_rb_tree t;
    sim_rb_init(&t, item_cmp);
    item a = {.key = 3, .id = 1}, b = {.key = 4, .id = 2};
    sim_rb_insert(&t, &a.rb);
    sim_rb_insert(&t, &b.rb);
    sim_rb_remove(&t, &a.rb);
    sim_rb_remove(&t, &a.rb);
}
END_TEST

/* One TCase per behaviour, named for it, so a failure names the behaviour. */
#define ADD_TEST(s, fn) ADD_TEST_SIGNAL(s, fn, 0)
#define ADD_TEST_SIGNAL(s, fn, sig)                                           \
    do {                                                                      \
        TCase *tc_ = tcase_create(#fn);                                       \
        tcase_set_timeout(tc_, 60);                                           \
        tcase_add_test_raise_signal(tc_, fn, sig);                            \
        suite_add_tcase(s, tc_);                                              \
    } while (0)

Suite *sim_rbtree_suite(void)
{
    Suite *s = suite_create("sim_rbtree");
    ADD_TEST(s, test_rbtree_empty_tree_has_no_first_or_last);
    ADD_TEST(s, test_rbtree_random_ops_match_sorted_reference);
    ADD_TEST(s, test_rbtree_iterates_forward_and_backward);
    ADD_TEST(s, test_rbtree_remove_during_iteration);
    ADD_TEST(s, test_rbtree_equal_keys_ordered_by_tie_break);
    ADD_TEST(s, test_rbtree_sorted_inserts_stay_balanced);
    ADD_TEST(s, test_rbtree_node_linked_tracks_membership);
    ADD_TEST_SIGNAL(s, test_rbtree_comparator_without_tie_break_aborts, SIGABRT);
    ADD_TEST_SIGNAL(s, test_rbtree_removing_unlinked_node_aborts, SIGABRT);
    return s;
}
