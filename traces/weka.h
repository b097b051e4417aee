/* Agentic session traces in the kv-cache-tester / Weka format (Claude Code
 * sessions with hash ids: callanjfox/kv-cache-tester traces/, Apache-2.0;
 * the semianalysisai/cc-traces-weka-* datasets' traces.jsonl; replayed by
 * inference-perf's weka_trace_replay). One session per line:
 *
 *   {"id": "trace_0002", "block_size": 64, "hash_id_scope": "local",
 *    "tool_tokens": 12448, "system_tokens": 2882, "models": [...],
 *    "requests": [
 *      {"t": 0.0, "type": "n", "in": 15818, "out": 154, "hash_ids": [1, 2, ...],
 *       "api_time": 5.23, "think_time": 0.0, ...},
 *      {"t": 61.2, "type": "subagent", "agent_id": "...", "requests": [...]},
 *      ...]}
 *
 * Calls ("n" non-streaming, "s" streaming) become requests: `in` and `out`
 * tokens, `hash_ids` the chained ids of the prompt's whole blocks of
 * block_size tokens (at most ceil(in / block_size)), `t` the call's start in
 * seconds from the session's start, the gap before it `think_time` (the
 * client's time after the previous response; without it, t less the
 * previous call's t and api_time, at least 0). A run of consecutive
 * "subagent" entries is a spawn: each entry's requests are a child session
 * (a subagent) started when the parent reaches it; the parent's next call
 * waits until every child finished (as kv-cache-tester replays them). A
 * subagent request's t below its entry's t counts from the entry's t (as
 * inference-perf reads it). Hash ids are scoped per session ("local", the
 * default, subagents sharing their parent's) or shared by all ("global").
 * Other keys are ignored. Keys and types are checked: a bad one stops the
 * read with FILE:LINE: requests[3].in: expected ..., unless skip_bad, which
 * skips the session and counts it.
 *
 * `path` is a file of such lines (.jsonl; kv-cache-tester's .json files are
 * one line each) or a folder, whose *.json and *.jsonl files are read in
 * name order. */
#ifndef TRACES_WEKA_H
#define TRACES_WEKA_H

#include "traces/session_play.h"

typedef struct weka_reader weka_reader;

/* output_ids: a call's ids also cover its answer, as far as the next call's
 * prompt (which holds it) shows them, so a prefix cache that keeps decoded
 * blocks finds them; off, the ids are the trace's (prompts only). */
weka_reader *weka_open(const char *path, bool skip_bad, bool output_ids, sim_err *err);
void weka_close(weka_reader *r);   /* NULL is a no-op */
/* kv-cache-tester's warm prefix: the first fraction x (tool_tokens +
 * system_tokens) tokens of every session (whole blocks, as its first call
 * has them) are one prefix common to all sessions (SP_SHARED_ID ids), as
 * Claude Code's tool definitions and system prompt are. Default 0. */
void weka_set_warm_prefix(weka_reader *r, double fraction);
/* The next session into p (cleared first): 1, 0 at the end, -1 on error. */
int weka_next(weka_reader *r, sp_program *p, sim_err *err);
/* Back to the first session. */
int weka_rewind(weka_reader *r, sim_err *err);
uint64_t weka_bad_skipped(const weka_reader *r, const char **first_bad);
uint64_t weka_zero_raised(const weka_reader *r);

/* Whether path holds this format: a file whose first line is a JSON object
 * with "requests" and "hash_ids" (or "block_size"), or a folder whose first
 * *.json or *.jsonl file (in name order) is one. */
bool weka_sniff(const char *path);

/* Statistics of a whole trace (servesim trace stats). Cache hits are the
 * trace's own: each call's leading blocks already seen earlier in its
 * session (an unbounded prefix cache per session, subagents sharing it,
 * calls in play order), capped at the prompt. */
typedef struct weka_stats {
    uint64_t sessions, subagents, calls, bad_skipped;
    char first_bad[1024];            /* the first skipped session's message */
    double *calls_per_session;     /* one per session (main thread's calls) */
    double *session_hit;           /* hit tokens / input tokens, per session */
    double *session_minutes;       /* last call's t - first's, per session */
    double *turn_hit;              /* per call (calls) */
    double hit_tokens, input_tokens, output_tokens;
    int32_t block_tokens;
    double first_in_sum, last_in_sum;
} weka_stats;

int weka_stats_read(const char *path, bool skip_bad, weka_stats *st, sim_err *err);
void weka_stats_fini(weka_stats *st);
/* The p-quantile of v[0, n) (sorted in place), numpy's linear method. */
double weka_quantile(double *v, uint64_t n, double p);

#endif
