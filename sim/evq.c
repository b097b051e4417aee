/* Event queue: a 4-ary min-heap of compact keys over a pool of event slots.
 *
 * Layout. Events live in `slots`, a pool that grows by doubling and never
 * shrinks; freed slots are threaded onto a free list through their heap_pos
 * field, so once the pool has reached the peak number of pending events no
 * push, pop or cancel allocates. The heap itself is an array of 24-byte
 * nodes (time, packed phase/seq key, slot index): sift compares read only
 * these nodes, never the slots, and a 4-ary heap is half as deep as a binary
 * one, so a pop touches few cache lines.
 *
 * Order. The key packs phase into the top 16 bits and seq into the low 48, so
 * comparing (time, key) as two integers is comparing (time, phase, seq).
 * sim_event_before packs its arguments the same way and calls the same
 * node_before the heap uses: there is one ordering, not two that must agree.
 * seq is the number of pushes before this one, so it is unique per queue and
 * no two nodes ever compare equal; the pop order is therefore a total order
 * that does not depend on heap shape (deterministic across implementations).
 *
 * Invariants (checked by the tests, not at run time):
 *   - heap[0..n) is a 4-ary min-heap under node_before;
 *   - for every i < n, slots[heap[i].slot].heap_pos == i;
 *   - a slot is live (its event pending) iff a handle carrying its current
 *     generation has been issued; the generation is bumped when the slot is
 *     freed (pop or cancel), which makes every handle to it stale at once.
 * A handle is (generation << 32) | (slot index + 1): 0 is never valid. The
 * generation is 32 bits, so a stale handle could only be mistaken for a live
 * one after its slot has been reused 2^32 times; we accept that.
 *
 * Pointers from sim_evq_peek are into the pool and are valid until the next
 * push (which may grow the pool), pop or cancel. */
#include "sim/evq.h"

#include <stdlib.h>

#define EVQ_SEQ_BITS 48
#define EVQ_SEQ_MAX ((UINT64_C(1) << EVQ_SEQ_BITS) - 1)
#define EVQ_PHASE_LIMIT (UINT32_C(1) << 16)
#define EVQ_NO_SLOT UINT32_MAX

typedef struct evq_node {
    sim_time_ns time;
    uint64_t key;        /* phase << 48 | seq */
    uint32_t slot;
} evq_node;

typedef struct evq_slot {
    sim_event ev;
    uint32_t heap_pos;   /* when live: index in heap; when free: next free */
    uint32_t gen;
} evq_slot;

struct sim_evq {
    evq_node *heap;
    size_t n;            /* pending events */
    size_t heap_cap;
    evq_slot *slots;
    size_t nslots;       /* slots ever handed out (free ones included) */
    size_t slot_cap;
    uint32_t free_head;  /* EVQ_NO_SLOT when the free list is empty */
    uint64_t next_seq;
};

static inline uint64_t pack_key(uint32_t phase, uint64_t seq)
{
    return (uint64_t)phase << EVQ_SEQ_BITS | seq;
}

static inline bool node_before(const evq_node *a, const evq_node *b)
{
    return a->time < b->time || (a->time == b->time && a->key < b->key);
}

bool sim_event_before(const sim_event *a, const sim_event *b)
{
    /* Outside these ranges the packing would not preserve the order. */
    SIM_ASSERT(a->phase < EVQ_PHASE_LIMIT && b->phase < EVQ_PHASE_LIMIT);
    SIM_ASSERT(a->seq <= EVQ_SEQ_MAX && b->seq <= EVQ_SEQ_MAX);
    evq_node na = {a->time, pack_key(a->phase, a->seq), 0};
    evq_node nb = {b->time, pack_key(b->phase, b->seq), 0};
    return node_before(&na, &nb);
}

sim_evq *sim_evq_create(void)
{
    sim_evq *q = sim_xcalloc(1, sizeof *q);
    q->free_head = EVQ_NO_SLOT;
    return q;
}

void sim_evq_destroy(sim_evq *q)
{
    if (!q)
        return;
    free(q->heap);
    free(q->slots);
    free(q);
}

static inline void place(sim_evq *q, size_t pos, evq_node x)
{
    q->heap[pos] = x;
    q->slots[x.slot].heap_pos = (uint32_t)pos;
}

/* Moves the hole at pos up until x fits, then puts x there. */
static void sift_up(sim_evq *q, size_t pos, evq_node x)
{
    evq_node *h = q->heap;
    while (pos > 0) {
        size_t parent = (pos - 1) >> 2;
        if (!node_before(&x, &h[parent]))
            break;
        place(q, pos, h[parent]);
        pos = parent;
    }
    place(q, pos, x);
}

/* Moves the hole at pos down until x fits, then puts x there. */
static void sift_down(sim_evq *q, size_t pos, evq_node x)
{
    evq_node *h = q->heap;
    size_t n = q->n;
    for (;;) {
        size_t c = 4 * pos + 1;
        if (c >= n)
            break;
        size_t best = c;
        if (c + 4 <= n) {
            /* All four children present: a fixed compare tree. */
            size_t l = node_before(&h[c + 1], &h[c]) ? c + 1 : c;
            size_t r = node_before(&h[c + 3], &h[c + 2]) ? c + 3 : c + 2;
            best = node_before(&h[r], &h[l]) ? r : l;
        } else {
            for (size_t k = c + 1; k < n; k++)
                if (node_before(&h[k], &h[best]))
                    best = k;
        }
        if (!node_before(&h[best], &x))
            break;
        place(q, pos, h[best]);
        pos = best;
    }
    place(q, pos, x);
}

static uint32_t slot_alloc(sim_evq *q)
{
    if (q->free_head != EVQ_NO_SLOT) {
        uint32_t s = q->free_head;
        q->free_head = q->slots[s].heap_pos;
        return s;
    }
    /* Handles hold index + 1 in 32 bits and EVQ_NO_SLOT is reserved. */
    SIM_ASSERT(q->nslots < EVQ_NO_SLOT - 1);
    if (q->nslots == q->slot_cap) {
        sim_grow((void **)&q->slots, &q->slot_cap, q->nslots + 1,
                 sizeof *q->slots);
        /* Fresh slots start at generation 0; realloc leaves them garbage. */
        for (size_t i = q->nslots; i < q->slot_cap; i++)
            q->slots[i].gen = 0;
        /* The heap never holds more nodes than there are slots. */
        sim_grow((void **)&q->heap, &q->heap_cap, q->slot_cap, sizeof *q->heap);
    }
    return (uint32_t)q->nslots++;
}

static void slot_free(sim_evq *q, uint32_t s)
{
    q->slots[s].gen++;
    q->slots[s].heap_pos = q->free_head;
    q->free_head = s;
}

sim_event_handle sim_evq_push(sim_evq *q, const sim_event *ev)
{
    SIM_ASSERT_AT(ev->time, ev->phase < EVQ_PHASE_LIMIT);
    SIM_ASSERT_AT(ev->time, q->next_seq <= EVQ_SEQ_MAX);
    /* Copy first: ev may point into the pool (a peeked event), which
     * slot_alloc may move. */
    sim_event copy = *ev;
    copy.seq = q->next_seq++;
    uint32_t s = slot_alloc(q);
    evq_slot *sl = &q->slots[s];
    sl->ev = copy;
    evq_node x = {copy.time, pack_key(copy.phase, copy.seq), s};
    q->n++;
    sift_up(q, q->n - 1, x);
    return (uint64_t)sl->gen << 32 | ((uint64_t)s + 1);
}

bool sim_evq_pop(sim_evq *q, sim_event *out)
{
    if (q->n == 0)
        return false;
    uint32_t s = q->heap[0].slot;
    *out = q->slots[s].ev;
    slot_free(q, s);
    q->n--;
    if (q->n > 0)
        sift_down(q, 0, q->heap[q->n]);
    return true;
}

const sim_event *sim_evq_peek(const sim_evq *q)
{
    return q->n ? &q->slots[q->heap[0].slot].ev : NULL;
}

bool sim_evq_cancel(sim_evq *q, sim_event_handle h)
{
    uint64_t idx1 = h & 0xffffffffu;
    if (idx1 == 0 || idx1 > q->nslots)
        return false;
    uint32_t s = (uint32_t)(idx1 - 1);
    if (q->slots[s].gen != (uint32_t)(h >> 32))
        return false;
    size_t pos = q->slots[s].heap_pos;
    slot_free(q, s);
    q->n--;
    if (pos == q->n)
        return true;   /* it was the last node: nothing to refill */
    evq_node x = q->heap[q->n];
    if (pos > 0 && node_before(&x, &q->heap[(pos - 1) >> 2]))
        sift_up(q, pos, x);
    else
        sift_down(q, pos, x);
    return true;
}

size_t sim_evq_size(const sim_evq *q)
{
    return q->n;
}
