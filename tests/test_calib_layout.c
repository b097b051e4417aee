/* Tests for calib/layout.c and calib/gemm.c: pointer alignment, rotation
 * counts, MoE routing and the packed layout of the routed experts, the
 * attention split counts and key ranges, and GEMM set-up through a fake
 * cuBLASLt that behaves as the real one does with alignment: its heuristic
 * picks an algorithm that needs the alignment it was promised (256 bytes
 * when told nothing), and the algorithm fails on a pointer less aligned.
 * The layouts are the full plan's own MoE entries at fake addresses laid
 * out as the CUDA program's arena lays them out (256-byte steps). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib/gemm.h"
#include "calib/layout.h"
#include "calib/plan.h"
#include "tests/suites.h"

#define L2_H200 (60.0 * 1024 * 1024)

START_TEST(test_layout_align_of)
{
    ck_assert_uint_eq(calib_align_of((void *)0x7f0000001000), 256);
    ck_assert_uint_eq(calib_align_of((void *)0x7f0000001040), 64);
    ck_assert_uint_eq(calib_align_of((void *)0x7f0000001080), 128);
    ck_assert_uint_eq(calib_align_of((void *)0x7f00000010c0), 64);
    ck_assert_uint_eq(calib_align_of((void *)0x7f0000001002), 2);
    ck_assert_uint_eq(calib_align_of((void *)0x7f0000001001), 1);
}
END_TEST

START_TEST(test_layout_rotations)
{
    double rot = 3 * L2_H200;
    ck_assert_int_eq(calib_rotations(rot, 10 * rot), 2);     /* big: two copies */
    ck_assert_int_eq(calib_rotations(rot, 1024), CALIB_MAX_ROT);
    ck_assert_int_eq(calib_rotations(rot, rot / 10), 10);
    ck_assert_int_eq(calib_rotations(rot, rot / 9.5), 10);   /* rounded up */
    ck_assert_int_eq(calib_rotations(rot, 0), 2);
}
END_TEST

static void load_full_plan(calib_plan *plan)
{
    sim_err err = {{0}};
    ck_assert_msg(calib_plan_load("calib/plans/full.plan", plan, &err) == 0, "%s", err.msg);
}

START_TEST(test_layout_moe_routes_top_k_distinct_experts)
{
    const struct { int E, k; double skew; } cases[] = {{8, 2, 0}, {128, 8, 0}, {128, 8, 1.2},
                                                       {64, 6, 1.2}};
    const int64_t ms[] = {1, 3, 16, 100, 4096};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (size_t i = 0; i < sizeof ms / sizeof *ms; i++) {
            int E = cases[c].E, k = cases[c].k;
            int64_t m = ms[i], *count = calloc((size_t)E, sizeof *count), sum = 0;
            double *q = calloc((size_t)E, sizeof *q), want = 0;
            calib_moe_loads(m, E, k, cases[c].skew, 7, count);
            calib_moe_inclusion(E, k, cases[c].skew, q);
            int distinct = 0;
            for (int e = 0; e < E; e++) {
                ck_assert(count[e] >= 0 && count[e] <= m);   /* distinct experts per token */
                sum += count[e];
                distinct += count[e] > 0;
                want += q[e] >= 1 ? 1 : -expm1((double)m * log1p(-q[e]));
            }
            ck_assert_int_eq(sum, m * k);
            ck_assert_msg(fabs(distinct - want) <= 1, "E %d k %d m %lld: %d experts, expect %.2f",
                          E, k, (long long)m, distinct, want);
            free(count);
            free(q);
        }
}
END_TEST

/* Rotation counts follow the routed experts' bytes: at a small batch,
 * where few experts are read, enough copies rotate to exceed three L2
 * caches (or all 64 do); sized from every expert, two copies would do and
 * the routed ones would stay in L2. */
START_TEST(test_layout_moe_rotation_counts_routed_experts)
{
    calib_plan plan;
    load_full_plan(&plan);
    double rot = 3 * L2_H200;
    int fixed = 0;
    for (int i = 0; i < plan.n_entries; i++) {
        const calib_entry *e = &plan.entry[i];
        if (e->family != CTAB_MOE_EXPERTS)
            continue;
        calib_moe_layout l;
        calib_moe_layout_build(1, e->p, 1, &l);
        ck_assert_int_eq(l.n_groups, (int)(e->p[1] + e->p[2]));   /* top_k + shared */
        ck_assert_int_eq(l.pairs, e->p[1] + e->p[2]);
        ck_assert_uint_eq(l.weight_elems, (size_t)l.n_groups * 3 * e->p[3] * e->p[4]);
        double bytes = 2.0 * l.weight_elems;
        int n = calib_rotations(rot, bytes);
        ck_assert(n * bytes >= rot || n == CALIB_MAX_ROT);
        double all = 2.0 * 3 * e->p[3] * e->p[4] * (e->p[0] + e->p[2]);
        int old = calib_rotations(rot, all);
        fixed += old * bytes < rot;   /* the old sizing let these stay in L2 */
        calib_moe_layout_fini(&l);
    }
    ck_assert_int_gt(fixed, 0);
    calib_plan_fini(&plan);
}
END_TEST

/* ---- a fake cuBLASLt -------------------------------------------------------------- */

typedef struct fake_lt {
    int selects, runs, fail_select;
    unsigned last_algo_align;
} fake_lt;

typedef struct fake_algo {
    unsigned need[4];   /* bytes each operand must be aligned to */
} fake_algo;

static int fl_select(void *self, int64_t m, int64_t n, int64_t k, const unsigned align[4],
                     void **algo, char *why, size_t why_n)
{
    (void)m;
    (void)n;
    (void)k;
    fake_lt *f = self;
    f->selects++;
    if (f->fail_select) {
        snprintf(why, why_n, "fake heuristic: nothing");
        return 15;
    }
    fake_algo *a = malloc(sizeof *a);
    for (int i = 0; i < 4; i++)   /* the fastest algorithm the promise allows */
        a->need[i] = align[i];
    f->last_algo_align = align[CALIB_OP_B];
    *algo = a;
    return 0;
}

static int fl_run(void *self, void *algo, const calib_gemm_operands *o)
{
    fake_lt *f = self;
    const fake_algo *a = algo;
    f->runs++;
    const void *p[4] = {o->w, o->x, o->y, o->y};
    for (int i = 0; i < 4; i++)
        if ((uintptr_t)p[i] % a->need[i])
            return 7;   /* CUBLAS_STATUS_INVALID_VALUE: misaligned */
    return 0;
}

static void fl_release(void *self, void *algo)
{
    (void)self;
    free(algo);
}

/* Fake device addresses as the arena hands them out: 256-byte steps. */
typedef struct fake_arena {
    uintptr_t next;
} fake_arena;

static void *fa_alloc(fake_arena *a, size_t bytes)
{
    uintptr_t p = (a->next + 255) & ~(uintptr_t)255;
    a->next = p + bytes + 16;
    return (void *)p;
}

/* Every MoE entry of the full plan at a few batch sizes: set up each
 * group's GEMMs over all rotations as the bench does, then run them all. */
START_TEST(test_gemm_expert_slices_run_with_alignment_preferences)
{
    calib_plan plan;
    load_full_plan(&plan);
    fake_lt f = {0};
    calib_gemm_lib lib = {&f, fl_select, fl_run, fl_release};
    unsigned least = CALIB_ALIGN_MAX;
    const int64_t ms[] = {1, 3, 17, 256};
    int naive_fail = 0;
    for (int i = 0; i < plan.n_entries; i++) {
        const calib_entry *e = &plan.entry[i];
        if (e->family != CTAB_MOE_EXPERTS)
            continue;
        for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++) {
            calib_moe_layout l;
            calib_moe_layout_build(ms[mi], e->p, (uint64_t)ms[mi], &l);
            fake_arena ar = {0x7f0000000000};
            void *w[3];
            for (int r = 0; r < 3; r++)
                w[r] = fa_alloc(&ar, l.weight_elems * 2);
            void *a = fa_alloc(&ar, (size_t)l.pairs * l.hidden * 2);
            void *b = fa_alloc(&ar, (size_t)l.pairs * 2 * l.ffn * 2);
            void *c = fa_alloc(&ar, (size_t)l.pairs * l.ffn * 2);
            void *d = fa_alloc(&ar, (size_t)l.pairs * l.hidden * 2);
            for (int g = 0; g < l.n_groups; g++) {
                calib_gemm_operands up[3], down[3];
                for (int r = 0; r < 3; r++)
                    calib_moe_operands(&l, g, w[r], a, b, c, d, &up[r], &down[r]);
                /* the slices sit where the layout says */
                ck_assert_ptr_eq(up[0].x, (char *)a + l.group[g].row0 * l.hidden * 2);
                ck_assert_ptr_eq(down[0].w, (char *)up[0].w + 2 * l.ffn * l.hidden * 2);
                calib_gemm gu, gd;
                char why[512] = "";
                ck_assert_msg(calib_gemm_init(&gu, &lib, l.group[g].tokens, 2 * l.ffn, l.hidden,
                                              up, 3, why, sizeof why) == 0, "%s", why);
                ck_assert_msg(calib_gemm_init(&gd, &lib, l.group[g].tokens, l.hidden, l.ffn,
                                              down, 3, why, sizeof why) == 0, "%s", why);
                for (int r = 0; r < 3; r++) {
                    ck_assert_msg(calib_gemm_run(&gu, &up[r], why, sizeof why) == 0, "%s", why);
                    ck_assert_msg(calib_gemm_run(&gd, &down[r], why, sizeof why) == 0, "%s",
                                  why);
                }
                for (int op = 0; op < 4; op++) {
                    least = gu.align[op] < least ? gu.align[op] : least;
                    least = gd.align[op] < least ? gd.align[op] : least;
                }
                /* told nothing, cuBLASLt assumes 256 bytes */
                fake_algo na = {{256, 256, 256, 256}};
                naive_fail += fl_run(&f, &na, &up[0]) != 0 || fl_run(&f, &na, &down[0]) != 0;
                calib_gemm_fini(&gu);
                calib_gemm_fini(&gd);
            }
            calib_moe_layout_fini(&l);
        }
    }
    /* the plan has slices at 64-byte offsets (ffn 96 at TP8), which the
     * default preference would have run with an algorithm that needs 256 */
    ck_assert_uint_eq(least, 64);
    ck_assert_int_gt(naive_fail, 0);
    calib_plan_fini(&plan);
}
END_TEST

START_TEST(test_gemm_failures_are_reported_not_fatal)
{
    fake_lt f = {0};
    calib_gemm_lib lib = {&f, fl_select, fl_run, fl_release};
    calib_gemm_operands o = {(void *)0x7f0000001000, (void *)0x7f0000002040,
                             (void *)0x7f0000003080};
    calib_gemm g;
    char why[512];
    ck_assert_int_eq(calib_gemm_init(&g, &lib, 7, 96, 192, &o, 1, why, sizeof why), 0);
    ck_assert_uint_eq(g.align[CALIB_OP_A], 256);
    ck_assert_uint_eq(g.align[CALIB_OP_B], 64);
    ck_assert_uint_eq(g.align[CALIB_OP_C], 128);
    ck_assert_uint_eq(g.align[CALIB_OP_D], 128);
    /* a pointer less aligned than the set-up was told: refused before the
     * library sees it */
    calib_gemm_operands worse = o;
    worse.x = (void *)0x7f0000002020;
    int runs = f.runs;
    ck_assert_int_eq(calib_gemm_run(&g, &worse, why, sizeof why), -1);
    ck_assert_int_eq(f.runs, runs);
    ck_assert_msg(strstr(why, "operand X is aligned to 32 bytes, the set-up assumed 64") != NULL,
                  "%s", why);
    calib_gemm_fini(&g);
    calib_gemm_fini(&g);   /* finished twice: fine */
    /* no algorithm: the message names the shape, the alignments and why */
    f.fail_select = 1;
    ck_assert_int_eq(calib_gemm_init(&g, &lib, 7, 96, 192, &o, 1, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "7 x 96 x 192 with operands aligned to 256/64/128 bytes "
                              "(W/X/Y): fake heuristic: nothing") != NULL, "%s", why);
    calib_gemm_fini(&g);
}
END_TEST

/* ---- attention splits ---------------------------------------------------------------- */

START_TEST(test_layout_prefill_splits_fill_the_gpu)
{
    const int sms = 132;
    /* a short chunk after a long prefix (Llama-3-70B at TP8: 8 query heads) */
    int s = calib_attn_prefill_splits(1, 16, 32768, 8, sms);
    ck_assert_int_ge(8 * s, sms);
    ck_assert_int_le(s, CALIB_PREFILL_MAX_SPLITS);
    int tiles = (32768 + 16 + 63) / 64;
    ck_assert_int_ge(tiles / s, CALIB_PREFILL_MIN_TILES);
    /* enough blocks already, or too few keys to split */
    ck_assert_int_eq(calib_attn_prefill_splits(1, 4096, 0, 32, sms), 1);
    ck_assert_int_eq(calib_attn_prefill_splits(1, 16, 0, 8, sms), 1);
    ck_assert_int_eq(calib_attn_prefill_splits(1, 16, 200, 8, sms), 1);
    ck_assert_int_eq(calib_attn_prefill_splits(1, 16, 512, 8, sms), 2);   /* 8 tiles */
    /* decode: the same idea per (sequence, KV head) */
    ck_assert_int_eq(calib_attn_decode_splits(256, 8, 4096, sms), 1);
    int d = calib_attn_decode_splits(1, 8, 32768, sms);
    ck_assert_int_ge(8 * d, sms);
    ck_assert_int_le(d, 32768 / 256);
    ck_assert_int_eq(calib_attn_decode_splits(1, 8, 300, sms), 1);
}
END_TEST

/* For every query tile the splits' key-tile ranges are in order, disjoint
 * and cover exactly the tiles the tile needs (causal). */
START_TEST(test_layout_prefill_split_ranges_partition_the_keys)
{
    const int qs[] = {1, 5, 64, 70, 200};
    const int prefixes[] = {0, 37, 1000};
    for (size_t a = 0; a < 5; a++)
        for (size_t b = 0; b < 3; b++)
            for (int splits = 1; splits <= 7; splits++) {
                int q = qs[a], prefix = prefixes[b];
                for (int q0 = 0; q0 < q; q0 += 64) {
                    int kv_end = prefix + (q < q0 + 64 ? q : q0 + 64);
                    int n_tiles = (kv_end + 63) / 64, next = 0;
                    for (int sp = 0; sp < splits; sp++) {
                        int t0, t1;
                        calib_attn_prefill_split_tiles(q, prefix, q0, splits, sp, &t0, &t1);
                        ck_assert_int_le(t0, t1);
                        if (t0 < t1) {
                            ck_assert_int_eq(t0, next);
                            next = t1;
                        }
                    }
                    ck_assert_msg(next == n_tiles, "q %d prefix %d tile %d: %d of %d tiles", q,
                                  prefix, q0, next, n_tiles);
                }
            }
}
END_TEST

Suite *calib_layout_suite(void)
{
    Suite *s = suite_create("calib_layout");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_layout_align_of);
    tcase_add_test(tc, test_layout_rotations);
    tcase_add_test(tc, test_layout_moe_routes_top_k_distinct_experts);
    tcase_add_test(tc, test_layout_moe_rotation_counts_routed_experts);
    tcase_add_test(tc, test_gemm_expert_slices_run_with_alignment_preferences);
    tcase_add_test(tc, test_gemm_failures_are_reported_not_fatal);
    tcase_add_test(tc, test_layout_prefill_splits_fill_the_gpu);
    tcase_add_test(tc, test_layout_prefill_split_ranges_partition_the_keys);
    suite_add_tcase(s, tc);
    return s;
}
