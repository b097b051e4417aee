/* Pinned session KV (the mechanism under the retention policies,
 * api/retain.h). When a session's turn finishes, its instance asks the
 * policy; a pin takes over the request's blocks as they are (still
 * referenced, so unevictable, and counted as used) until the session's next
 * turn is admitted on this instance (its cached prefix taken first, so the
 * shared blocks pass to it) or the TTL runs out; then the blocks are
 * released as a finished request's are and fall to the prefix cache. When
 * an instance can run nothing at all for want of blocks, pins give way, the
 * one nearest its expiry first (serve/instance.c), so pins never stall it.
 *
 * Cost: a turn's end and its session's next admission scan the instance's
 * pins (O(pins): at most the sessions pinned here); expiry is checked in
 * O(1) per iteration and scans the pins only when one is due. */
#ifndef SERVE_RETAIN_H
#define SERVE_RETAIN_H

#include "serve/kv.h"
#include "serve/session_metrics.h"
#include "serve/setup.h"

typedef struct retain_store retain_store;

/* NULL (and no error) without a policy. */
int retain_create(const retain_choice *c, int32_t instance, sess_metrics *m,
                  retain_store **out, sim_err *err);
void retain_destroy(retain_store *s);   /* NULL is a no-op */
/* One KV block's bytes on the instance (all its GPUs), for pinned GiB x s. */
void retain_set_block_bytes(retain_store *s, double bytes);
/* Finished turn r (its blocks in k): returns when its pin expires, having
 * taken its blocks (r then holds none), or 0: the caller releases them. */
sim_time_ns retain_turn_end(retain_store *s, kv_cache *kv, serve_req *r, kv_req *k,
                            sim_time_ns now);
/* r, a turn of a session, was admitted (after kv_admit): ends the
 * session's pin here, if any. */
void retain_turn_admitted(retain_store *s, kv_cache *kv, const serve_req *r, sim_time_ns now);
/* Ends the pins whose TTL ran out by now. */
void retain_expire(retain_store *s, kv_cache *kv, sim_time_ns now);
/* Ends the pin nearest its expiry, counted as expired (the instance could
 * run nothing for want of blocks: pins never stall it); false if none. */
bool retain_release_one(retain_store *s, kv_cache *kv, sim_time_ns now);
/* Ends every pin (the instance drains or stops: no turn comes back). */
void retain_release_all(retain_store *s, kv_cache *kv, sim_time_ns now);

#endif
