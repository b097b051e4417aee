/* Prompt identity for synthetic workloads: which prompts share which
 * prefixes, as chained block ids (traces/workload.h, wl_request's
 * prefix_blocks), so that a prefix cache has something to hit.
 *
 * Config: the synthetic source's "prefix" object, {"kind": K, ...}:
 *  - "system": `prompts` shared system prompts (default 8) of `tokens`
 *    tokens each (a length distribution, default fixed 1024, drawn once per
 *    prompt); each request draws one with P(k) ~ (k+1)^-zipf (default 1;
 *    0: uniform) and its prompt is that system prompt followed by its own
 *    input_tokens (the input length drawn is the user part).
 *  - "fewshot": as "system", then one of `templates` (default 32) few-shot
 *    templates of `template_tokens` tokens (default fixed 2048) that belong
 *    to the system prompt drawn (template t to prompt t mod prompts),
 *    drawn with the same Zipf law; then the request's own input.
 *  - "multiturn": conversations of a fixed number of users (`sessions`,
 *    default 1024). Each arrival is a turn of a user drawn uniformly: with
 *    probability 1/`turns` (default 4), or when the user has no
 *    conversation yet or its next prompt would not fit `max_context_tokens`
 *    (the run's), it starts a new conversation; otherwise its prompt is the
 *    conversation's whole previous context (previous prompt and answer)
 *    followed by the new input_tokens. Conversations last `turns` turns on
 *    average (geometric); a user speaks again after `sessions` arrivals on
 *    average, which sets how far apart reuse is. Arrivals stay open-loop: a
 *    turn may arrive before the previous one finished, and then finds less
 *    of its context cached. A conversation may start with a shared system
 *    prompt (`system_prompts`, default 0: none, of `system_tokens`, default
 *    512).
 *  - "pool": a fixed pool of `prompts` (default 1000) distinct prompts, their
 *    lengths drawn once from input_tokens; each request redraws one (Zipf
 *    `zipf`, default 0: uniform) and repeats it whole, with a fresh output
 *    length (what benchmark load generators that sample a prompt file do).
 * Every kind takes `block_tokens` (default 16): the tokens one id
 * describes; only whole blocks are shared.
 *
 * Memory: O(prompts + templates + sessions x their context / block
 * tokens), independent of the request count. Draws come from the caller's
 * generator after the request's lengths. */
#ifndef TRACES_PREFIX_GEN_H
#define TRACES_PREFIX_GEN_H

#include "traces/gen.h"
#include "traces/workload.h"

typedef struct prefix_gen prefix_gen;

/* obj at path; input is the source's input length distribution (borrowed,
 * for "pool"); rng draws what is fixed per prompt. */
int prefix_gen_create(cJSON *obj, const char *path, const len_dist *input,
                      int32_t max_context_tokens, gsl_rng *rng, prefix_gen **out,
                      sim_err *err);
void prefix_gen_destroy(prefix_gen *g);   /* NULL is a no-op */

/* Turns out's drawn lengths into a prompt with identity: sets its
 * input_tokens (the whole prompt), prefix_blocks (valid until the next
 * call), n_prefix_blocks, prefix_block_tokens and prefix_id_tokens. */
void prefix_gen_next(prefix_gen *g, wl_request *out, gsl_rng *rng);

#endif
