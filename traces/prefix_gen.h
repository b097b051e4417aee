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
 *  - "session": closed-loop sessions (agents, chat). Needs a closed_loop
 *    arrival process: each of its `clients` is a lane that runs one session
 *    after another. A session has `turns` turns (`turn_dist` "geometric",
 *    the default: geometric on 1, 2, ... with mean `turns`, default 4; or
 *    "fixed": round(turns)). Turn k's prompt is the session's whole context
 *    (turn k-1's prompt and answer) followed by input_tokens new tokens
 *    (the growth per turn), its answer output_tokens; its prefix ids chain
 *    the context's, so a prefix cache holding turn k-1 serves all of turn
 *    k's context. Turn k+1 arrives a gap after turn k's last token
 *    reached the client: the closed loop's think time (the tool or think
 *    time; `think_s`, exponential or fixed), and the lane's next session
 *    starts a think time after the last turn of the previous one. A turn
 *    whose prompt and answer would not fit max_context_tokens is the
 *    session's last (cut to fit by the context policy). The first context
 *    may start with a shared system prompt (`system_prompts`,
 *    `system_tokens`, as "multiturn"). Requests carry the session id, turn
 *    and whether they are the last (wl_request).
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

/* Kind "session". */
bool prefix_gen_sessions(const prefix_gen *g);
/* Sets the number of lanes (the closed loop's clients); once, before
 * prefix_gen_next_lane. */
void prefix_gen_set_lanes(prefix_gen *g, int32_t lanes);
/* The next turn of lane's session (a new session when the last ended),
 * arriving at `now`: as prefix_gen_next, and sets out's session fields. */
void prefix_gen_next_lane(prefix_gen *g, int32_t lane, sim_time_ns now, wl_request *out,
                          gsl_rng *rng);
/* The lane a session id belongs to; -1 for 0 or without sessions. */
int32_t prefix_gen_lane_of(const prefix_gen *g, uint64_t session_id);
/* Lane's turn completed at `now` (for the next turn's session_gap_ns). */
void prefix_gen_lane_done(prefix_gen *g, int32_t lane, sim_time_ns now);

#endif
