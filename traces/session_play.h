/* Replaying session programs: agentic sessions as trees of LLM calls, from
 * recorded traces (traces/wl_weka.c) or from generators
 * (traces/wl_agentic.c), through the serving core's closed-loop hooks
 * (workload.h: WL_WAIT, on_complete_session).
 *
 * A program is one session tree. Its threads are sequences of items: thread
 * 0 is the session itself, the others are subagents. An item is a call (one
 * request: its input and output tokens, its prompt's chained prefix ids,
 * its recorded start time and the gap before it) or a spawn: the thread
 * starts a group of child threads and waits until all of them finished.
 * Each thread is a session of its own to the serving core (its own
 * session_id, turns from 0, session_last on its last call).
 *
 * When a call is due (spec I; the rule the options choose):
 *  - timing "think" (the default; kv-cache-tester's and AIPerf's think-only
 *    replay): the call arrives its recorded gap after the thread's previous
 *    call finished at the client (or after its last child finished, after
 *    a spawn); a thread's first call arrives when the thread starts.
 *  - timing "recorded" (open loop on the recorded times): arrival =
 *    max(session start + recorded t, previous call's completion + recorded
 *    gap): a call never starts before its predecessor finished and its
 *    tool or think time passed, and never before its recorded time.
 * Gaps and recorded times are multiplied by time_scale; gaps above
 * max_gap_s (when > 0) are cut to it. Children start when their parent
 * reaches the spawn (its previous call finished).
 *
 * Sessions start on `clients` lanes (closed loop: each lane plays one
 * session tree after another, session_gap_s apart; all start at 0) or at
 * the times of an arrival process `session_arrival` (open loop: Poisson and
 * the like, whatever the load). max_sessions (0: all the source has) caps
 * the trees started.
 *
 * Prefix ids: each call stores the ids it shares with its thread's previous
 * call as a count (lcp) and only the ids after them, so a program costs
 * O(new ids), not O(calls x context). Ids of a program in the "local" scope
 * (kv-cache-tester's hash_id_scope) are mixed with the play's number, so two
 * sessions never share blocks by accident, nor two plays of one recorded
 * session; "global" ids are kept as they are.
 *
 * Cost: O(log live threads) per call (a binary heap of due times), O(1)
 * per completion (session ids index the live threads). Memory: the live
 * programs. */
#ifndef TRACES_SESSION_PLAY_H
#define TRACES_SESSION_PLAY_H

#include <stdbool.h>
#include "traces/gen.h"
#include "traces/workload.h"

/* ---- programs ----------------------------------------------------------- */

/* Ids with this bit are shared by every session as they are (never mixed
 * with a play's number), even in the local scope. */
#define SP_SHARED_ID (UINT64_C(1) << 63)

typedef struct sp_item {
    bool spawn;                   /* spawns threads [child, child + n_children) */
    bool last_call;               /* the thread's last call */
    int32_t child, n_children;
    int32_t input_tokens, output_tokens;
    sim_time_ns t_ns;             /* recorded start from the session's start */
    sim_time_ns gap_ns;           /* recorded gap after the previous call (or spawn) */
    int32_t lcp;                  /* ids shared with the thread's previous call */
    int32_t n_new;                /* ids after them, at ids[ids_at] */
    int64_t ids_at;
    int32_t id_tokens;            /* tokens the ids describe (0: the prompt's) */
} sp_item;

typedef struct sp_thread {
    int32_t first_item, n_items;
} sp_thread;

typedef struct sp_program {
    sp_item *items;
    size_t n_items, items_cap;
    sp_thread *threads;
    size_t n_threads, threads_cap;
    uint64_t *ids;
    size_t n_ids, ids_cap;
    int32_t block_tokens;         /* tokens per prefix id */
    bool global_ids;              /* ids shared across sessions as they are */
    /* building: the current thread's previous call's ids */
    uint64_t *prev;
    size_t n_prev, prev_cap;
} sp_program;

void sp_program_init(sp_program *p);
void sp_program_fini(sp_program *p);
void sp_program_clear(sp_program *p);   /* keeps the arrays */
/* Appends an empty thread (its items follow, before the next thread's);
 * returns its index. */
int32_t sp_add_thread(sp_program *p);
/* Appends a call to the last thread. ids[0, n_ids): its prompt's prefix ids. */
void sp_add_call(sp_program *p, int32_t input_tokens, int32_t output_tokens,
                 sim_time_ns t_ns, sim_time_ns gap_ns, const uint64_t *ids, int32_t n_ids,
                 int32_t id_tokens);
/* Appends a spawn of n children to the last thread; returns the item's
 * index, for sp_set_children once the children's threads exist. */
int32_t sp_add_spawn(sp_program *p, int32_t n, sim_time_ns t_ns);
void sp_set_children(sp_program *p, int32_t item, int32_t first_thread);
/* Marks each thread's last call; checks the spawns (asserts). */
void sp_program_finish(sp_program *p);

/* The calls in play order (a spawn's children, thread after thread, where
 * the spawn is): fn gets each call and its full ids. For statistics. */
typedef void sp_visit_fn(void *ctx, const sp_program *p, int32_t thread, const sp_item *it,
                         const uint64_t *ids, int32_t n_ids);
void sp_program_visit(const sp_program *p, sp_visit_fn *fn, void *ctx);

/* ---- the player ----------------------------------------------------------- */

typedef enum sp_timing { SP_THINK, SP_RECORDED } sp_timing;

typedef struct sp_opts {
    int64_t clients;              /* lanes (0: session_arrival) */
    bool has_arrival;
    arrival_proc arrival;         /* session starts, open loop */
    sp_timing timing;
    double time_scale;
    sim_time_ns max_gap_ns;       /* 0: none */
    sim_time_ns session_gap_ns;   /* a lane's pause between sessions */
    int64_t max_sessions;         /* 0: no cap */
} sp_opts;

/* The keys sp_opts_parse reads, for a source's key list. */
#define SP_OPT_KEYS "clients", "session_arrival", "timing", "time_scale", "max_gap_s", \
                    "session_gap_s", "max_sessions"

int sp_opts_parse(cJSON *params, const char *path, sp_opts *o, sim_err *err);
void sp_opts_fini(sp_opts *o);

/* Fills p (cleared) with the next session tree: 1; 0: none left; -1: error. */
typedef int sp_next_program_fn(void *ctx, sp_program *p, sim_err *err);

typedef struct sp_player sp_player;

/* Takes o (sp_player_destroy finishes it). */
sp_player *sp_player_create(const sp_opts *o, gsl_rng *arrival_rng, sp_next_program_fn *fn,
                            void *ctx);
void sp_player_destroy(sp_player *pl);   /* NULL is a no-op */
int sp_player_next(sp_player *pl, sim_time_ns now, wl_request *out, sim_err *err);
int sp_player_complete(sp_player *pl, sim_time_ns now, uint64_t session_id);
/* Session trees started, and threads (sessions) started. */
uint64_t sp_player_trees(const sp_player *pl);
uint64_t sp_player_threads(const sp_player *pl);

#endif
