/* Tests for models/ops.c: which operators a batch produces and how much work
 * each does, checked against parameter counts and closed forms. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "models/ops.h"
#include "tests/suites.h"

#define ck_assert_rel(value, want, tol)                                         \
    ck_assert_msg(fabs((value) / (want) - 1.0) <= (tol),                        \
                  "%s = %.6g, expected %.6g within %g", #value, (double)(value), \
                  (double)(want), (double)(tol))

static llm_model load_llm(const char *name)
{
    llm_model m;
    sim_err err = {{0}};
    ck_assert_msg(llm_model_load(models_dir(), name, &m, &err) == 0, "%s", err.msg);
    return m;
}

static const op_desc *find_op(const op_list *l, op_kind k)
{
    for (int i = 0; i < l->n; i++)
        if (l->op[i].kind == k)
            return &l->op[i];
    return NULL;
}

/* Sum of flops * repeat over ops of one class. */
static double class_flops(const op_list *l, op_class c)
{
    double sum = 0;
    for (int i = 0; i < l->n; i++)
        if (op_kind_class(l->op[i].kind) == c)
            sum += l->op[i].flops * l->op[i].repeat;
    return sum;
}

static batch_shape decode_batch(int32_t n, int64_t ctx_each)
{
    return (batch_shape){.n_decode = n, .decode_ctx_sum = n * ctx_each,
                         .n_sampled = n};
}

START_TEST(test_ops_decode_only_has_no_prefill_attention)
{
    llm_model m = load_llm("Llama-3-8B");
    batch_shape b = decode_batch(16, 1000);
    op_list l;
    ops_decompose(&m, &PAR_TP(1), &b, &l);
    ck_assert_ptr_null(find_op(&l, OP_ATTN_PREFILL));
    const op_desc *a = find_op(&l, OP_ATTN_DECODE);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->repeat, m.layers);
    ck_assert_int_eq(a->m, 16);
    ck_assert_int_eq(a->k, 1001);
    /* Reading the KV of 16 * 1001 tokens dominates its bytes. */
    ck_assert_double_eq(a->kv_bytes, 16.0 * 1001 * 2 * 8 * 128 * 2);
    ck_assert_ptr_null(find_op(&l, OP_ALLREDUCE));   /* tp 1 */
}
END_TEST

START_TEST(test_ops_prefill_only_has_no_decode_attention)
{
    llm_model m = load_llm("Llama-3-8B");
    batch_seq seq = {.q_tokens = 100, .ctx_tokens = 50};
    batch_shape b = {.prefill = &seq, .n_prefill = 1, .n_sampled = 1};
    op_list l;
    ops_decompose(&m, &PAR_TP(1), &b, &l);
    ck_assert_ptr_null(find_op(&l, OP_ATTN_DECODE));
    const op_desc *a = find_op(&l, OP_ATTN_PREFILL);
    ck_assert_ptr_nonnull(a);
    /* Causal: query j of the chunk sees 50 + j + 1 keys. */
    double pairs = 0;
    for (int j = 0; j < 100; j++)
        pairs += 50 + j + 1;
    ck_assert_double_eq_tol(a->flops, 4.0 * 32 * 128 * pairs, 1e-6);
    ck_assert_int_eq(a->m, 100);
    ck_assert_int_eq(a->n, 1);
    ck_assert_int_eq(a->k, 150);
}
END_TEST

START_TEST(test_ops_empty_batch_has_no_ops)
{
    llm_model m = load_llm("Llama-3-8B");
    batch_shape b = {0};
    op_list l;
    l.n = 99;
    ops_decompose(&m, &PAR_TP(2), &b, &l);
    ck_assert_int_eq(l.n, 0);
}
END_TEST

START_TEST(test_ops_dense_gemm_flops_match_params)
{
    /* Every sequence samples, so every weight but the embedding table is a
     * GEMM operand once per token: GEMM FLOPs = 2 * params * tokens. */
    const char *names[] = {"Llama-3-8B", "Llama-2-70B", "Llama-2-13B"};
    for (int i = 0; i < 3; i++) {
        llm_model m = load_llm(names[i]);
        batch_shape b = decode_batch(256, 500);
        op_list l;
        ops_decompose(&m, &PAR_TP(1), &b, &l);
        double embed = (double)m.vocab * m.hidden;
        double want = 2.0 * (llm_params_active(&m) - embed) * 256;
        ck_assert_rel(class_flops(&l, OP_CLASS_GEMM), want, 0.01);
    }
    /* A prefill chunk samples once: without the LM head the same holds. */
    llm_model m = load_llm("Llama-3-8B");
    batch_seq seq = {.q_tokens = 2048, .ctx_tokens = 0};
    batch_shape b = {.prefill = &seq, .n_prefill = 1, .n_sampled = 1};
    op_list l;
    ops_decompose(&m, &PAR_TP(1), &b, &l);
    double lm = find_op(&l, OP_GEMM_LM_HEAD)->flops;
    double want = 2.0 * (llm_params_active(&m) - 2.0 * m.vocab * m.hidden) * 2048;
    ck_assert_rel(class_flops(&l, OP_CLASS_GEMM) - lm, want, 0.01);
}
END_TEST

START_TEST(test_ops_moe_gemm_flops_match_active_params)
{
    llm_model m = load_llm("Mixtral-8x7B");
    batch_shape b = decode_batch(64, 500);
    op_list l;
    ops_decompose(&m, &PAR_TP(1), &b, &l);
    double want = 2.0 * (llm_params_active(&m) - (double)m.vocab * m.hidden) * 64;
    ck_assert_rel(class_flops(&l, OP_CLASS_GEMM), want, 0.01);
}
END_TEST

START_TEST(test_ops_tp2_halves_gemm_flops_and_adds_allreduce)
{
    llm_model m = load_llm("Llama-3-8B");
    batch_seq seq = {.q_tokens = 512, .ctx_tokens = 0};
    batch_shape b = {.prefill = &seq, .n_prefill = 1, .n_decode = 32,
                     .decode_ctx_sum = 32 * 700, .n_sampled = 33};
    op_list l1, l2;
    ops_decompose(&m, &PAR_TP(1), &b, &l1);
    ops_decompose(&m, &PAR_TP(2), &b, &l2);
    ck_assert_rel(class_flops(&l2, OP_CLASS_GEMM), class_flops(&l1, OP_CLASS_GEMM) / 2,
                  1e-9);
    ck_assert_rel(class_flops(&l2, OP_CLASS_ATTENTION),
                  class_flops(&l1, OP_CLASS_ATTENTION) / 2, 1e-9);
    ck_assert_ptr_null(find_op(&l1, OP_ALLREDUCE));
    /* Two per layer plus the embedding's; each a ring: every GPU sends
     * 2 (tp - 1) / tp of the bf16 activations. */
    int repeats = 0;
    for (int i = 0; i < l2.n; i++) {
        if (l2.op[i].kind != OP_ALLREDUCE)
            continue;
        repeats += l2.op[i].repeat;
        ck_assert_double_eq(l2.op[i].bytes, 2.0 * 1 / 2 * (512 + 32) * 4096 * 2);
    }
    ck_assert_int_eq(repeats, 2 * m.layers + 1);
}
END_TEST

START_TEST(test_ops_kv_heads_replicate_past_their_count)
{
    llm_model m = load_llm("Qwen3-30B-A3B");   /* 32 heads, 4 KV heads */
    batch_shape b = decode_batch(8, 100);
    op_list l;
    ops_decompose(&m, &PAR_TP(8), &b, &l);
    const op_desc *qkv = find_op(&l, OP_GEMM_QKV);
    ck_assert_int_eq(qkv->n, (4 + 2 * 1) * 128);
}
END_TEST

START_TEST(test_ops_moe_expert_bytes_grow_and_saturate)
{
    llm_model m = load_llm("Mixtral-8x7B");
    double per_expert = 3.0 * m.hidden * m.expert_ffn * m.bytes_per_param;
    double prev = 0;
    for (int32_t n = 1; n <= 64; n *= 2) {
        batch_shape b = decode_batch(n, 100);
        op_list l;
        ops_decompose(&m, &PAR_TP(1), &b, &l);
        const op_desc *e = find_op(&l, OP_MOE_EXPERTS);
        ck_assert_ptr_nonnull(e);
        ck_assert_ptr_null(find_op(&l, OP_GEMM_FFN_UP));
        ck_assert_ptr_nonnull(find_op(&l, OP_MOE_ROUTER));
        if (n == 1)
            ck_assert_double_eq_tol(e->weight_bytes, 2 * per_expert, 1e-3);
        ck_assert(e->weight_bytes > prev || e->weight_bytes >= 8 * per_expert * 0.999);
        ck_assert(e->weight_bytes <= 8 * per_expert * (1 + 1e-12));
        prev = e->weight_bytes;
    }
    ck_assert_rel(prev, 8 * per_expert, 1e-6);

    m = load_llm("Qwen3-30B-A3B");
    per_expert = 3.0 * m.hidden * m.expert_ffn * m.bytes_per_param;
    batch_shape b1 = decode_batch(1, 100), big = decode_batch(4096, 100);
    op_list l;
    ops_decompose(&m, &PAR_TP(1), &b1, &l);
    ck_assert_rel(find_op(&l, OP_MOE_EXPERTS)->weight_bytes, 8 * per_expert, 1e-9);
    ops_decompose(&m, &PAR_TP(1), &big, &l);
    ck_assert_rel(find_op(&l, OP_MOE_EXPERTS)->weight_bytes, 128 * per_expert, 1e-6);
}
END_TEST

START_TEST(test_ops_lm_head_m_is_n_sampled)
{
    llm_model m = load_llm("Llama-3-8B");
    batch_seq chunks[2] = {{.q_tokens = 256, .ctx_tokens = 0},
                           {.q_tokens = 300, .ctx_tokens = 512}};
    /* A mid-prompt chunk emits nothing: 1 of the 2 chunks and 10 decodes. */
    batch_shape b = {.prefill = chunks, .n_prefill = 2, .n_decode = 10,
                     .decode_ctx_sum = 5000, .n_sampled = 11};
    op_list l;
    ops_decompose(&m, &PAR_TP(2), &b, &l);
    const op_desc *lm = find_op(&l, OP_GEMM_LM_HEAD);
    ck_assert_ptr_nonnull(lm);
    ck_assert_int_eq(lm->m, 11);
    ck_assert_int_eq(lm->n, m.vocab / 2);
    ck_assert_int_eq(lm->k, m.hidden);
    ck_assert_int_eq(find_op(&l, OP_SAMPLE)->m, 11);
    ck_assert_int_eq(find_op(&l, OP_GEMM_QKV)->m, 256 + 300 + 10);

    b.n_decode = 0;
    b.decode_ctx_sum = 0;
    b.n_sampled = 0;
    ops_decompose(&m, &PAR_TP(2), &b, &l);
    ck_assert_ptr_null(find_op(&l, OP_GEMM_LM_HEAD));
    ck_assert_ptr_null(find_op(&l, OP_SAMPLE));
}
END_TEST

START_TEST(test_ops_entries_well_formed)
{
    const char *names[] = {"Llama-2-70B", "Mixtral-8x7B", "Qwen3-30B-A3B"};
    batch_seq seq = {.q_tokens = 333, .ctx_tokens = 77};
    batch_shape b = {.prefill = &seq, .n_prefill = 1, .n_decode = 5,
                     .decode_ctx_sum = 900, .n_sampled = 6};
    for (int i = 0; i < 3; i++) {
        llm_model m = load_llm(names[i]);
        op_list l;
        ops_decompose(&m, &PAR_TP(4), &b, &l);
        ck_assert_int_le(l.n, OPS_MAX);
        for (int j = 0; j < l.n; j++) {
            const op_desc *op = &l.op[j];
            ck_assert_int_ge(op->repeat, 1);
            ck_assert(op->flops >= 0 && op->bytes > 0);
            ck_assert(op->weight_bytes + op->kv_bytes <= op->bytes);
            /* One entry per kind, but for the norms and all-reduces that
             * also run outside the layers (final norm, embedding's). */
            for (int k = 0; k < j; k++)
                if (op->kind != OP_NORM && op->kind != OP_ALLREDUCE)
                    ck_assert_int_ne(l.op[k].kind, op->kind);
        }
    }
}
END_TEST

START_TEST(test_ops_kind_names_and_classes)
{
    for (int k = 0; k < OP_KIND_COUNT; k++) {
        ck_assert_ptr_nonnull(op_kind_name(k));
        ck_assert_int_gt(strlen(op_kind_name(k)), 0);
        for (int j = 0; j < k; j++)
            ck_assert_str_ne(op_kind_name(j), op_kind_name(k));
    }
    ck_assert_str_eq(op_kind_name(OP_GEMM_QKV), "gemm_qkv");
    ck_assert_int_eq(op_kind_class(OP_GEMM_LM_HEAD), OP_CLASS_GEMM);
    ck_assert_int_eq(op_kind_class(OP_MOE_EXPERTS), OP_CLASS_GEMM);
    ck_assert_int_eq(op_kind_class(OP_ATTN_DECODE), OP_CLASS_ATTENTION);
    ck_assert_int_eq(op_kind_class(OP_ALLREDUCE), OP_CLASS_COLLECTIVE);
    ck_assert_int_eq(op_kind_class(OP_NORM), OP_CLASS_ELEMENTWISE);
}
END_TEST

/* Sum of one kind's FLOPs over its entries and repeats. */
static double kind_flops(const op_list *l, op_kind k)
{
    double f = 0;
    for (int i = 0; i < l->n; i++)
        if (l->op[i].kind == k)
            f += l->op[i].flops * l->op[i].repeat;
    return f;
}

START_TEST(test_ops_prefill_through_some_layers_costs_those_layers)
{
    /* Layered prefill: 512 prompt tokens through 8 of Llama-3-8B's 32
     * layers, 16 decodes through all of them. */
    llm_model m = load_llm("Llama-3-8B");
    batch_seq seq = {.q_tokens = 512, .ctx_tokens = 0};
    batch_shape one = decode_batch(1, 0);
    op_list l1;
    ops_decompose(&m, &PAR_TP(1), &one, &l1);
    double per_token_layer = kind_flops(&l1, OP_GEMM_QKV) / m.layers;
    batch_shape b = {.prefill = &seq, .n_prefill = 1, .n_decode = 16,
                     .decode_ctx_sum = 16 * 300, .prefill_layers = 8};
    op_list l;
    ops_decompose(&m, &PAR_TP(1), &b, &l);
    ck_assert_rel(kind_flops(&l, OP_GEMM_QKV), per_token_layer * (512 * 8 + 16 * 32), 1e-9);
    /* Prefill attention runs in those 8 layers only, decode attention in all. */
    const op_desc *pre = find_op(&l, OP_ATTN_PREFILL), *dec = find_op(&l, OP_ATTN_DECODE);
    ck_assert_int_eq(pre->repeat, 8);
    int dec_repeats = 0;
    for (int i = 0; i < l.n; i++)
        if (l.op[i].kind == OP_ATTN_DECODE)
            dec_repeats += l.op[i].repeat;
    ck_assert_int_eq(dec_repeats, 32);
    ck_assert_ptr_nonnull(dec);
    /* All layers (0 or 32) is the plain decomposition. */
    op_list all, zero;
    b.prefill_layers = 32;
    ops_decompose(&m, &PAR_TP(1), &b, &all);
    b.prefill_layers = 0;
    ops_decompose(&m, &PAR_TP(1), &b, &zero);
    ck_assert_int_eq(all.n, zero.n);
    ck_assert_rel(kind_flops(&all, OP_GEMM_QKV), per_token_layer * (512 + 16) * 32, 1e-9);
}
END_TEST

/* Repeats summed over the entries of one kind (a kind appears once per
 * stretch of identical layers). */
static int kind_repeats(const op_list *l, op_kind k)
{
    int n = 0;
    for (int i = 0; i < l->n; i++)
        n += l->op[i].kind == k ? l->op[i].repeat : 0;
    return n;
}

/* OPT: LayerNorm, a plain ReLU FFN with biases, learned positions and no
 * rotary embedding; every weight is a GEMM operand once per sampled token
 * (the LM head is the tied embedding). */
START_TEST(test_ops_plain_ffn_biases_learned_positions)
{
    llm_model m = load_llm("OPT-13B");
    batch_shape b = decode_batch(32, 100);
    op_list l;
    ops_decompose(&m, &PAR_TP(2), &b, &l);
    ck_assert_ptr_null(find_op(&l, OP_ROPE));
    const op_desc *up = find_op(&l, OP_GEMM_FFN_UP), *act = find_op(&l, OP_ACT);
    ck_assert_int_eq(up->n, 20480 / 2);   /* one matrix, not gate and up */
    ck_assert_double_eq(act->bytes, 2.0 * 32 * 10240 * 2);   /* one tensor in, one out */
    /* the bias of the up-projection: n 16-bit values */
    ck_assert_double_eq(up->weight_bytes, 5120.0 * 10240 * 2 + 10240 * 2);
    /* learned positions: a replicated row per token on top of the vocab shard */
    const op_desc *emb = find_op(&l, OP_EMBED);
    ck_assert_double_eq(emb->weight_bytes, 32.0 * 5120 * 2 / 2 + 32.0 * 5120 * 2);
    op_list l1;
    ops_decompose(&m, &PAR_TP(1), &b, &l1);
    ck_assert_rel(class_flops(&l1, OP_CLASS_GEMM), 2.0 * llm_params(&m) * 32, 0.01);
    /* LayerNorm reads a bias with its scale */
    ck_assert_double_eq(find_op(&l1, OP_NORM)->weight_bytes, 2.0 * 5120 * 2);
}
END_TEST

/* MLA (DeepSeek-V3): the down-projections, q and kv up-projections and the
 * latent cache; GEMM FLOPs still match the active parameters. */
START_TEST(test_ops_mla_operators)
{
    llm_model m = load_llm("DeepSeek-V3");
    batch_shape b = decode_batch(16, 0);
    op_list l;
    ops_decompose(&m, &PAR_TP(1), &b, &l);
    double embed = (double)m.vocab * m.hidden;
    double norms = m.layers * (2.0 * m.hidden + m.q_lora_rank + m.kv_lora_rank) + m.hidden;
    ck_assert_rel(class_flops(&l, OP_CLASS_GEMM),
                  2.0 * (llm_params_active(&m) - embed - norms) * 16, 0.01);
    const op_desc *qkv = find_op(&l, OP_GEMM_QKV);
    ck_assert_int_eq(qkv->n, 1536 + 512 + 64);
    ck_assert_int_eq(find_op(&l, OP_GEMM_Q_UP)->n, 128 * (128 + 64));
    /* decode attention reads one 576-wide latent per token, shared by the heads */
    batch_shape d = decode_batch(8, 999);
    ops_decompose(&m, &PAR_TP(8), &d, &l);
    const op_desc *att = find_op(&l, OP_ATTN_DECODE);
    ck_assert_double_eq(att->kv_bytes, 8.0 * 1000 * 576 * 2);
    ck_assert_int_eq(find_op(&l, OP_GEMM_KV_UP)->m, 8);
    /* prefill decompresses keys and values for every KV token of the chunk */
    batch_seq seq = {.q_tokens = 100, .ctx_tokens = 400};
    batch_shape p = {.prefill = &seq, .n_prefill = 1, .n_decode = 8,
                     .decode_ctx_sum = 8 * 999, .n_sampled = 9};
    ops_decompose(&m, &PAR_TP(8), &p, &l);
    ck_assert_int_eq(find_op(&l, OP_GEMM_KV_UP)->m, 500 + 8);
    ck_assert_int_eq(find_op(&l, OP_GEMM_KV_UP)->n, 16 * (128 + 128));
}
END_TEST

/* A dense-then-MoE stack is two groups of layers, split again where a
 * layered prefill stops; every layer is counted once. */
START_TEST(test_ops_dense_then_moe_stack)
{
    llm_model m = load_llm("DeepSeek-V3");   /* 3 dense + 58 MoE */
    batch_shape b = decode_batch(4, 100);
    op_list l;
    ops_decompose(&m, &PAR_TP(8), &b, &l);
    ck_assert_int_eq(kind_repeats(&l, OP_GEMM_FFN_UP), 3);
    ck_assert_int_eq(kind_repeats(&l, OP_MOE_EXPERTS), 58);
    ck_assert_int_eq(kind_repeats(&l, OP_MOE_ROUTER), 58);
    ck_assert_int_eq(kind_repeats(&l, OP_GEMM_QKV), 61);
    ck_assert_int_eq(kind_repeats(&l, OP_ALLREDUCE), 2 * 61 + 1);
    const int32_t cuts[] = {2, 3, 10, 60};
    for (int i = 0; i < 4; i++) {
        batch_seq seq = {.q_tokens = 64};
        batch_shape p = {.prefill = &seq, .n_prefill = 1, .n_decode = 4,
                         .decode_ctx_sum = 400, .n_sampled = 5, .prefill_layers = cuts[i]};
        ops_decompose(&m, &PAR_TP(8), &p, &l);
        ck_assert_int_eq(kind_repeats(&l, OP_GEMM_FFN_UP), 3);
        ck_assert_int_eq(kind_repeats(&l, OP_MOE_EXPERTS), 58);
        ck_assert_int_eq(kind_repeats(&l, OP_ATTN_DECODE), 61);
        ck_assert_int_eq(kind_repeats(&l, OP_ATTN_PREFILL), cuts[i]);
        ck_assert_int_le(l.n, OPS_MAX);
    }
}
END_TEST

/* Precision: FP8 weights halve linear weight bytes and GEMMs compute in
 * the activations' dtype; the LM head and router stay 16-bit. */
START_TEST(test_ops_precision_bytes_and_dtype)
{
    llm_model m = load_llm("Llama-3-8B"), q = m;
    sim_err err = {{0}};
    llm_precision p = {LLM_FP8, LLM_FP8, LLM_FP8};
    ck_assert_int_eq(llm_set_precision(&q, &p, &err), 0);
    batch_shape b = decode_batch(8, 1000);
    op_list a, c;
    ops_decompose(&m, &PAR_TP(1), &b, &a);
    ops_decompose(&q, &PAR_TP(1), &b, &c);
    ck_assert_double_eq(find_op(&c, OP_GEMM_QKV)->weight_bytes,
                        find_op(&a, OP_GEMM_QKV)->weight_bytes / 2);
    ck_assert_int_eq(find_op(&c, OP_GEMM_QKV)->dtype, LLM_FP8);
    ck_assert_int_eq(find_op(&a, OP_GEMM_QKV)->dtype, LLM_BF16);
    ck_assert_double_eq(find_op(&c, OP_GEMM_LM_HEAD)->weight_bytes,
                        find_op(&a, OP_GEMM_LM_HEAD)->weight_bytes);
    ck_assert_int_eq(find_op(&c, OP_GEMM_LM_HEAD)->dtype, LLM_BF16);
    ck_assert_double_eq(find_op(&c, OP_ATTN_DECODE)->kv_bytes,
                        find_op(&a, OP_ATTN_DECODE)->kv_bytes / 2);
    ck_assert_int_eq(find_op(&c, OP_ATTN_DECODE)->dtype, LLM_BF16);
}
END_TEST

Suite *ops_suite(void)
{
    Suite *s = suite_create("ops");
    TCase *tc;
#define ADD(fn)                         \
    tc = tcase_create(#fn);             \
    tcase_add_test(tc, fn);             \
    suite_add_tcase(s, tc)
    ADD(test_ops_decode_only_has_no_prefill_attention);
    ADD(test_ops_prefill_only_has_no_decode_attention);
    ADD(test_ops_empty_batch_has_no_ops);
    ADD(test_ops_dense_gemm_flops_match_params);
    ADD(test_ops_moe_gemm_flops_match_active_params);
    ADD(test_ops_tp2_halves_gemm_flops_and_adds_allreduce);
    ADD(test_ops_kv_heads_replicate_past_their_count);
    ADD(test_ops_moe_expert_bytes_grow_and_saturate);
    ADD(test_ops_lm_head_m_is_n_sampled);
    ADD(test_ops_entries_well_formed);
    ADD(test_ops_kind_names_and_classes);
    ADD(test_ops_prefill_through_some_layers_costs_those_layers);
    ADD(test_ops_plain_ffn_biases_learned_positions);
    ADD(test_ops_mla_operators);
    ADD(test_ops_dense_then_moe_stack);
    ADD(test_ops_precision_bytes_and_dtype);
#undef ADD
    return s;
}
