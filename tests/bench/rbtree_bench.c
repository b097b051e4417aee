/* Micro-benchmark of sim/rbtree: nanoseconds per (remove + insert) pair at a
 * steady tree size of 10, 1,000 and 100,000 nodes, for two access patterns:
 *   random: remove a uniformly chosen node, insert it again with a new random
 *           key (a waiting queue under an arbitrary priority, with
 *           preemptions and cancellations anywhere in it);
 *   queue:  remove the first node, insert it again with a key larger than
 *           all (FCFS: admit from the front, arrivals at the back).
 * Nodes are 48-byte structs in one array (key, id tie-break, node). Run by
 * tests/bench.sh (make bench); prints one line per size. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sim/rbtree.h"

typedef struct elem {
    uint64_t key;
    uint64_t id;
    sim_rb_node rb;
} elem;

static int elem_cmp(const sim_rb_node *a, const sim_rb_node *b)
{
    const elem *x = SIM_RB_ENTRY(a, elem, rb), *y = SIM_RB_ENTRY(b, elem, rb);
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* xorshift64*: cheap enough not to dominate what is measured. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

/* Uniform in [0, n) for n < 2^32, by multiply-shift (no division). */
static uint64_t below(uint64_t *s, uint64_t n)
{
    return ((rnd(s) >> 32) * n) >> 32;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best of 5 runs of `rounds` pairs, in ns per pair. */
static double bench(size_t n, int queue, long rounds)
{
    elem *e = malloc(n * sizeof *e);
    uint64_t seed = 0x9e3779b97f4a7c15u, next_key = 0;
    sim_rb_tree t;
    sim_rb_init(&t, elem_cmp);
    for (size_t i = 0; i < n; i++) {
        e[i].key = queue ? next_key++ : below(&seed, 4 * n);
        e[i].id = i;
        sim_rb_insert(&t, &e[i].rb);
    }
    double best = 1e30;
    uint64_t sink = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_s();
        for (long r = 0; r < rounds; r++) {
            elem *x;
            if (queue) {
                x = SIM_RB_ENTRY(sim_rb_first(&t), elem, rb);
                sim_rb_remove(&t, &x->rb);
                x->key = next_key++;
            } else {
                x = &e[below(&seed, n)];
                sim_rb_remove(&t, &x->rb);
                x->key = below(&seed, 4 * n);
            }
            sim_rb_insert(&t, &x->rb);
        }
        double dt = now_s() - t0;
        sink += SIM_RB_ENTRY(sim_rb_first(&t), elem, rb)->id;
        if (dt < best)
            best = dt;
    }
    free(e);
    if (sink == UINT64_MAX)
        puts("");   /* keeps the loop from being optimised away */
    return best * 1e9 / (double)rounds;
}

int main(void)
{
    static const size_t sizes[] = {10, 1000, 100000};
    printf("%-10s %14s %14s\n", "rbtree_n", "random_ns/pair", "queue_ns/pair");
    for (int i = 0; i < 3; i++) {
        long rounds = sizes[i] >= 100000 ? 1000000 : 3000000;
        printf("%-10zu %14.1f %14.1f\n", sizes[i], bench(sizes[i], 0, rounds),
               bench(sizes[i], 1, rounds));
    }
    printf("(one (remove + insert) pair, steady size; best of 5)\n");
    return 0;
}
