/* Router hits against an oracle's (route_oracle.h). */
#include "serve/route_oracle.h"

void route_oracle_observe(route_oracle *o, const route_view *v, const serve_req *req,
                          int32_t pick)
{
    int32_t best = 0, chosen = 0;
    for (int32_t j = 0; j < v->n_candidates; j++) {
        int32_t i = v->candidates[j];
        int32_t t = v->cached_tokens(v, i, req);
        if (t > best)
            best = t;
        if (i == pick)
            chosen = t;
    }
    SIM_ASSERT_AT(v->now, chosen <= best);
    o->requests++;
    o->prompt_tokens += (uint64_t)req_seq_tokens(req);
    o->router_tokens += (uint64_t)chosen;
    o->oracle_tokens += (uint64_t)best;
}

void route_oracle_summarize(const route_oracle *o, run_summary *s)
{
    s->router_oracle_requests = o->requests;
    s->router_hit_tokens = o->router_tokens;
    s->oracle_hit_tokens = o->oracle_tokens;
    if (o->prompt_tokens) {
        s->router_hit_ratio = (double)o->router_tokens / (double)o->prompt_tokens;
        s->oracle_hit_ratio = (double)o->oracle_tokens / (double)o->prompt_tokens;
    }
    if (o->oracle_tokens)
        s->router_oracle_ratio = (double)o->router_tokens / (double)o->oracle_tokens;
}
