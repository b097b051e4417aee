/* The router's prefix hits against an oracle's (metrics.router_oracle).
 *
 * For each routed request, at the moment it is routed: the prompt tokens
 * the chosen instance holds in its prefix cache (HBM), and the most any
 * candidate instance of the pool holds (the oracle: perfect knowledge of
 * every cache, precise lookups). Both are read through the route view's
 * precise cached_tokens, so they count what the caches really hold, not
 * what a router's index believes. The router's hit at routing time, not at
 * admission: the cache may change while the request waits (the summary's
 * kv_hit_tokens counts admissions).
 *
 * Cost: one prefix lookup per candidate instance per request, O(candidates
 * x prompt blocks): off by default. */
#ifndef SERVE_ROUTE_ORACLE_H
#define SERVE_ROUTE_ORACLE_H

#include <stdint.h>
#include "api/route.h"
#include "serve/metrics.h"

typedef struct route_oracle {
    uint64_t requests;
    uint64_t prompt_tokens;   /* of the requests routed */
    uint64_t router_tokens;   /* cached on the instance chosen */
    uint64_t oracle_tokens;   /* cached on the best candidate */
} route_oracle;

/* Request req was routed to `pick` among v's candidates. */
void route_oracle_observe(route_oracle *o, const route_view *v, const serve_req *req,
                          int32_t pick);
/* Fills the summary's router_* fields. */
void route_oracle_summarize(const route_oracle *o, run_summary *s);

#endif
