/* KV cache (serve/kv.c): capacity, block accounting in both modes, content
 * hashes shared between requests, reference counts, eviction order, and the
 * plan ledger that batch policies ask. */
#include <check.h>
#include <signal.h>
#include <string.h>

#include "serve/req.h"
#include "tests/suites.h"

#define GIB (1024.0 * 1024.0 * 1024.0)

static void load(const char *model, const char *gpu, llm_model *m, gpu_spec *g)
{
    sim_err err = {{0}};
    if (llm_model_load(models_dir(), model, m, &err) ||
        gpu_spec_load(models_dir(), gpu, g, &err))
        ck_abort_msg("%s", err.msg);
}

START_TEST(test_kv_capacity_is_memory_left_after_weights)
{
    llm_model m;
    gpu_spec g;
    load("Llama-3-8B", "H100-SXM-80GB", &m, &g);
    int64_t blocks;
    sim_err err = {{0}};
    ck_assert_int_eq(kv_capacity_blocks(&m, &g, &PAR_TP(1), 0.9, 2 * GIB, 16, &blocks, &err), 0);
    double expect = (g.hbm_bytes * 0.9 - llm_weight_bytes_per_gpu(&m, &PAR_TP(1)) - 2 * GIB) /
                    (llm_kv_bytes_per_token_per_gpu(&m, &PAR_TP(1)) * 16);
    ck_assert_int_eq(blocks, (int64_t)expect);
    /* Llama-3-8B keeps 128 KiB of KV per token: ~52 GiB left holds ~400k tokens. */
    ck_assert_int_gt(blocks * 16, 350000);
    ck_assert_int_lt(blocks * 16, 500000);

    int64_t blocks_tp2;
    ck_assert_int_eq(kv_capacity_blocks(&m, &g, &PAR_TP(2), 0.9, 2 * GIB, 16, &blocks_tp2,
                                        &err), 0);
    ck_assert_int_gt(blocks_tp2, 2 * blocks);   /* half the weights and half the KV per GPU */
}
END_TEST

START_TEST(test_kv_model_that_does_not_fit_is_an_error)
{
    llm_model m;
    gpu_spec g;
    load("Llama-2-70B", "A100-SXM-80GB", &m, &g);
    int64_t blocks;
    sim_err err = {{0}};
    ck_assert_int_eq(kv_capacity_blocks(&m, &g, &PAR_TP(1), 0.9, 2 * GIB, 16, &blocks, &err),
                     -1);
    ck_assert_msg(strstr(err.msg, "does not fit"), "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "tp=1"), "%s", err.msg);
}
END_TEST

/* ---- a small harness: requests outside any instance ---------------------------- */

typedef struct harness {
    kv_cache *kv;
    req r[8];
    uint64_t ids[8][8];
} harness;

static void h_init(harness *h, int64_t blocks, bool caching)
{
    memset(h, 0, sizeof *h);
    h->kv = kv_create(blocks, 4, caching, 0);
}

static void h_fini(harness *h)
{
    for (int i = 0; i < 8; i++)
        kv_req_fini(&h->r[i].kv);
    kv_destroy(h->kv);
}

/* Request i with `input` tokens whose first n_ids x 8 tokens carry chained
 * ids (ids[j] = base + j), block size 4 in the cache. */
static serve_req *h_req(harness *h, int i, int32_t input, int32_t n_ids, uint64_t base)
{
    req *q = &h->r[i];
    for (int j = 0; j < n_ids; j++)
        h->ids[i][j] = base + (uint64_t)j;
    q->pub = (serve_req){.id = (uint64_t)i, .input_tokens = input, .output_tokens = 8,
                         .state = REQ_WAITING};
    int32_t covered = n_ids * 8 < input ? n_ids * 8 : input;
    kv_req_init(&q->kv, n_ids ? h->ids[i] : NULL, covered, 8, 1000 + (uint64_t)i);
    return &q->pub;
}

/* Admits r and computes its whole prompt (what an instance does over one or
 * more iterations), registering its full blocks. */
static void h_prefill(harness *h, serve_req *r, sim_time_ns now)
{
    kv_req *k = &req_of(r)->kv;
    kv_admit(h->kv, r, k, now);
    r->state = REQ_RUNNING;
    int32_t todo = req_pending_tokens(r);
    kv_grow(h->kv, r, k, todo, now);
    r->computed_tokens += todo;
    kv_commit(h->kv, r, k);
}

START_TEST(test_kv_counting_mode_tracks_use_peak_and_time_weighted_mean)
{
    harness h;
    h_init(&h, 100, false);
    serve_req *a = h_req(&h, 0, 160, 0, 0), *b = h_req(&h, 1, 80, 0, 0);
    kv_grow(h.kv, a, &req_of(a)->kv, 160, 0);      /* 40 blocks of 4 */
    kv_grow(h.kv, b, &req_of(b)->kv, 80, 10);      /* 20 more */
    ck_assert_int_eq(a->kv_blocks, 40);
    ck_assert_int_eq(a->kv_cap_tokens, 160);
    ck_assert_int_eq(kv_free_blocks_of(h.kv), 40);
    kv_release(h.kv, a, &req_of(a)->kv, 20);
    kv_release(h.kv, b, &req_of(b)->kv, 20);
    kv_stats s;
    kv_get_stats(h.kv, &s);
    ck_assert_int_eq(s.used_blocks, 0);
    ck_assert_int_eq(s.peak_blocks, 60);
    /* 40 blocks for 10 ns, 60 for 10 ns, 0 for 20 ns, of 100, over 40 ns. */
    ck_assert_double_eq_tol(kv_mean_fraction(h.kv, 0, 40), (400.0 + 600.0) / (100 * 40), 1e-12);
    h_fini(&h);
}
END_TEST

START_TEST(test_kv_grow_beyond_capacity_aborts)
{
    harness h;
    h_init(&h, 10, false);
    serve_req *a = h_req(&h, 0, 100, 0, 0);
    kv_grow(h.kv, a, &req_of(a)->kv, 44, 0);   /* 11 blocks */
}
END_TEST

START_TEST(test_kv_cached_prefix_is_shared_and_computes_only_the_rest)
{
    harness h;
    h_init(&h, 64, true);
    /* Both prompts start with the same 3 chained ids (24 tokens); b then
     * goes on with its own. */
    serve_req *a = h_req(&h, 0, 24, 3, 500);
    h_prefill(&h, a, 0);
    ck_assert_int_eq(a->kv_blocks, 6);
    serve_req *b = h_req(&h, 1, 40, 3, 500);
    batch_view v = {.kv = kv_ledger_begin(h.kv)};
    ck_assert_int_eq(kv_cached_tokens(&v, b), 24);      /* all six of a's blocks */
    ck_assert_int_eq(batch_todo_tokens(&v, b), 16);
    /* The shared blocks are in use by a: b needs only its 4 new ones. */
    ck_assert_int_eq(kv_need(&v, b, 16), 4);
    ck_assert_int_eq(kv_admit(h.kv, b, &req_of(b)->kv, 0), 24);
    ck_assert_int_eq(b->computed_tokens, 24);
    ck_assert_int_eq(b->cached_tokens, 24);
    ck_assert_int_eq(kv_used_blocks(h.kv), 6);          /* nothing new yet */
    kv_grow(h.kv, b, &req_of(b)->kv, 16, 0);
    ck_assert_int_eq(kv_used_blocks(h.kv), 10);         /* 6 shared + 4 */
    /* a finishing keeps the shared blocks in use (b holds them). */
    kv_release(h.kv, a, &req_of(a)->kv, 1);
    ck_assert_int_eq(kv_used_blocks(h.kv), 10);
    kv_release(h.kv, b, &req_of(b)->kv, 2);
    ck_assert_int_eq(kv_used_blocks(h.kv), 0);
    kv_stats s;
    kv_get_stats(h.kv, &s);
    ck_assert_int_eq(s.hit_tokens, 24);
    ck_assert_int_eq(s.cached_blocks, 6);   /* a's; b's own were never committed */
    h_fini(&h);
}
END_TEST

START_TEST(test_kv_hit_stops_one_token_short_of_the_sequence)
{
    harness h;
    h_init(&h, 64, true);
    serve_req *a = h_req(&h, 0, 16, 2, 7);
    h_prefill(&h, a, 0);
    kv_release(h.kv, a, &req_of(a)->kv, 1);
    /* The same 16-token prompt again: at most 15 tokens may be cached, so 3
     * whole blocks of 4; its last block is computed. */
    serve_req *b = h_req(&h, 1, 16, 2, 7);
    batch_view v = {.kv = kv_ledger_begin(h.kv)};
    ck_assert_int_eq(kv_cached_tokens(&v, b), 12);
    ck_assert_int_eq(batch_todo_tokens(&v, b), 4);
    h_fini(&h);
}
END_TEST

START_TEST(test_kv_block_size_need_not_divide_the_id_blocks)
{
    /* Ids of 8 tokens, cache blocks of 4 but a prompt whose covered length
     * (20) is not a multiple of 8: tokens 16..19 belong to the third id's
     * partial block; a prompt whose ids differ from the third on shares
     * exactly the first 16 tokens. */
    harness h;
    h_init(&h, 64, true);
    serve_req *a = h_req(&h, 0, 20, 3, 100);
    h_prefill(&h, a, 0);
    serve_req *b = h_req(&h, 1, 40, 2, 100);   /* ids 100, 101, then unique */
    batch_view v = {.kv = kv_ledger_begin(h.kv)};
    ck_assert_int_eq(kv_cached_tokens(&v, b), 16);
    h_fini(&h);
}
END_TEST

START_TEST(test_kv_shared_block_in_use_is_never_evicted)
{
    harness h;
    h_init(&h, 8, true);
    serve_req *a = h_req(&h, 0, 16, 2, 1);   /* 4 blocks, all with ids */
    h_prefill(&h, a, 0);
    serve_req *b = h_req(&h, 1, 16, 2, 1);
    h_prefill(&h, b, 0);                     /* shares 3, computes its last */
    ck_assert_int_eq(kv_used_blocks(h.kv), 5);
    kv_release(h.kv, a, &req_of(a)->kv, 1);  /* a's 4th block is free, cached */
    ck_assert_int_eq(kv_used_blocks(h.kv), 4);
    /* A request that takes every free block: 4 free blocks (3 never used,
     * a's 4th); the 3 shared blocks b holds must survive. */
    serve_req *c = h_req(&h, 2, 16, 0, 0);
    kv_grow(h.kv, c, &req_of(c)->kv, 16, 2);
    ck_assert_int_eq(kv_used_blocks(h.kv), 8);
    kv_release(h.kv, c, &req_of(c)->kv, 3);
    serve_req *d = h_req(&h, 3, 16, 2, 1);
    batch_view v = {.kv = kv_ledger_begin(h.kv)};
    ck_assert_int_eq(kv_cached_tokens(&v, d), 12);   /* b's 3 shared blocks, still hashed */
    h_fini(&h);
}
END_TEST

START_TEST(test_kv_evicts_least_recently_freed_tail_first)
{
    harness h;
    h_init(&h, 8, true);
    serve_req *a = h_req(&h, 0, 12, 2, 10), *b = h_req(&h, 1, 12, 2, 20);
    h_prefill(&h, a, 0);                     /* blocks 0, 1, 2 */
    h_prefill(&h, b, 0);                     /* blocks 3, 4, 5 */
    kv_release(h.kv, a, &req_of(a)->kv, 1);  /* freed first */
    kv_release(h.kv, b, &req_of(b)->kv, 2);
    /* Taking 2 never-used blocks, then a's blocks from its tail: its first
     * block (a prefix of length 4) is the last of a's to go. */
    serve_req *c = h_req(&h, 2, 20, 0, 0);
    kv_grow(h.kv, c, &req_of(c)->kv, 16, 3);   /* 4 blocks: 2 unused + a's 3rd and 2nd */
    serve_req *a2 = h_req(&h, 3, 12, 2, 10), *b2 = h_req(&h, 4, 12, 2, 20);
    batch_view v = {.kv = kv_ledger_begin(h.kv)};
    ck_assert_int_eq(kv_cached_tokens(&v, a2), 4);
    ck_assert_int_eq(kv_cached_tokens(&v, b2), 8);   /* 11 tokens at most: 2 blocks */
    kv_stats s;
    kv_get_stats(h.kv, &s);
    ck_assert_int_eq(s.evictions, 2);
    h_fini(&h);
}
END_TEST

START_TEST(test_kv_ledger_counts_shared_blocks_once)
{
    harness h;
    h_init(&h, 16, true);
    serve_req *a = h_req(&h, 0, 16, 2, 1);
    h_prefill(&h, a, 0);
    serve_req *b = h_req(&h, 1, 16, 2, 1);
    h_prefill(&h, b, 0);
    ck_assert_int_eq(kv_used_blocks(h.kv), 5);
    /* Preempting a frees only its own last block; preempting b as well
     * frees the three they share. */
    batch_view v = {.kv = kv_ledger_begin(h.kv)};
    ck_assert_int_eq(kv_free(&v), 11);
    ck_assert_int_eq(kv_preempt(&v, a), 1);
    ck_assert_int_eq(kv_preempt(&v, b), 4);
    ck_assert_int_eq(kv_free(&v), 16);
    /* Releasing as the plan says leaves exactly that. */
    kv_release(h.kv, a, &req_of(a)->kv, 1);
    kv_release(h.kv, b, &req_of(b)->kv, 1);
    ck_assert_int_eq(kv_free_blocks_of(h.kv), 16);
    h_fini(&h);
}
END_TEST

START_TEST(test_kv_ledger_charges_touching_a_free_cached_block)
{
    harness h;
    h_init(&h, 16, true);
    serve_req *a = h_req(&h, 0, 16, 2, 1);
    h_prefill(&h, a, 0);
    kv_release(h.kv, a, &req_of(a)->kv, 1);   /* 4 cached, free blocks */
    serve_req *b = h_req(&h, 1, 16, 2, 1), *c = h_req(&h, 2, 16, 2, 1);
    batch_view v = {.kv = kv_ledger_begin(h.kv)};
    /* b reuses 3 cached blocks (free, so they count) and needs 1 new. */
    ck_assert_int_eq(kv_need(&v, b, 4), 4);
    kv_take(&v, b, 4);
    ck_assert_int_eq(kv_free(&v), 12);
    /* c shares the same 3 blocks, now taken by the plan: only 1 new. */
    ck_assert_int_eq(kv_need(&v, c, 4), 1);
    kv_take(&v, c, 4);
    ck_assert_int_eq(kv_free(&v), 11);
    /* Applying it: admissions first, then growth, uses exactly that. */
    kv_admit(h.kv, b, &req_of(b)->kv, 2);
    kv_admit(h.kv, c, &req_of(c)->kv, 2);
    kv_grow(h.kv, b, &req_of(b)->kv, 4, 2);
    kv_grow(h.kv, c, &req_of(c)->kv, 4, 2);
    ck_assert_int_eq(kv_free_blocks_of(h.kv), 11);
    h_fini(&h);
}
END_TEST

START_TEST(test_kv_preempted_request_finds_its_own_blocks)
{
    harness h;
    h_init(&h, 32, true);
    serve_req *a = h_req(&h, 0, 20, 0, 0);   /* no ids: unique contents */
    h_prefill(&h, a, 0);
    a->generated_tokens = 3;                 /* as if it had decoded */
    kv_grow(h.kv, a, &req_of(a)->kv, 3, 1);
    a->computed_tokens += 3;
    kv_commit(h.kv, a, &req_of(a)->kv);
    kv_release(h.kv, a, &req_of(a)->kv, 2);  /* recompute preemption */
    a->computed_tokens = 0;
    a->state = REQ_WAITING;
    batch_view v = {.kv = kv_ledger_begin(h.kv)};
    /* 23 tokens of sequence (20 + 3): 5 whole blocks, at most 22 tokens. */
    ck_assert_int_eq(kv_cached_tokens(&v, a), 20);
    /* Another request with no ids shares nothing with it. */
    serve_req *b = h_req(&h, 1, 20, 0, 0);
    ck_assert_int_eq(kv_cached_tokens(&v, b), 0);
    h_fini(&h);
}
END_TEST

Suite *kv_suite(void)
{
    Suite *s = suite_create("kv");
    TCase *tc = tcase_create("kv");
    tcase_add_test(tc, test_kv_capacity_is_memory_left_after_weights);
    tcase_add_test(tc, test_kv_model_that_does_not_fit_is_an_error);
    tcase_add_test(tc, test_kv_counting_mode_tracks_use_peak_and_time_weighted_mean);
    tcase_add_test_raise_signal(tc, test_kv_grow_beyond_capacity_aborts, SIGABRT);
    tcase_add_test(tc, test_kv_cached_prefix_is_shared_and_computes_only_the_rest);
    tcase_add_test(tc, test_kv_hit_stops_one_token_short_of_the_sequence);
    tcase_add_test(tc, test_kv_block_size_need_not_divide_the_id_blocks);
    tcase_add_test(tc, test_kv_shared_block_in_use_is_never_evicted);
    tcase_add_test(tc, test_kv_evicts_least_recently_freed_tail_first);
    tcase_add_test(tc, test_kv_ledger_counts_shared_blocks_once);
    tcase_add_test(tc, test_kv_ledger_charges_touching_a_free_cached_block);
    tcase_add_test(tc, test_kv_preempted_request_finds_its_own_blocks);
    suite_add_tcase(s, tc);
    return s;
}
