/* SGLang's cache-aware load balancer (sgl-router, policies/cache_aware.rs):
 * the load of a worker is its requests (waiting and running). When the
 * candidates are imbalanced (max - min > balance_abs_threshold, 32, and
 * max > balance_rel_threshold x min, 1.0001) it sends the request to the
 * least loaded; otherwise to the worker whose tree of routed prompts
 * matches the longest prefix, if that match covers more than
 * cache_threshold (0.5) of the prompt, else to the worker with the smallest
 * tree. The chosen worker's tree then holds the prompt. SGLang's trees are
 * of prompt text, here of block hashes (the router's approximate index,
 * trimmed least recently routed first to index_blocks; SGLang trims to 2^24
 * nodes every 60 s). Trees of equal size (all full, here, where they are
 * trimmed to index_blocks at once) go to the least loaded, then the lowest
 * index: without that every new prompt would herd onto the first worker
 * once every tree is full. Other ties: the lowest index. Params: those, and index
 * ("approximate" by default; "precise" asks the instances), index_blocks,
 * staleness_ms. */
#include <stdlib.h>

#include "policies/route_prefix_common.h"
#include "sim/jsoncfg.h"

typedef struct sgl_state {
    rp_common c;
    double abs_thr, rel_thr, cache_thr;
} sgl_state;

static int sgl_init(const route_setup *setup, cJSON *params, const char *path, void **state,
                    sim_err *err)
{
    static const char *const own[] = {"balance_abs_threshold", "balance_rel_threshold",
                                      "cache_threshold", NULL};
    sgl_state *s = sim_xcalloc(1, sizeof *s);
    if (rp_check_keys(params, path, own, err) ||
        rp_common_init(&s->c, setup, params, path, "approximate", err) ||
        jcfg_num(params, path, "balance_abs_threshold", 32, 0, 1e9, &s->abs_thr, err) ||
        jcfg_num(params, path, "balance_rel_threshold", 1.0001, 1, 1e9, &s->rel_thr, err) ||
        jcfg_num(params, path, "cache_threshold", 0.5, 0, 1, &s->cache_thr, err)) {
        rp_common_fini(&s->c);
        free(s);
        return -1;
    }
    *state = s;
    return 0;
}

static int32_t sgl_route(void *state, const route_view *v, const serve_req *req)
{
    sgl_state *s = state;
    const inst_view *load = rp_begin(&s->c, v, req);
    int32_t least = v->candidates[0], most = least;
    for (int32_t k = 1; k < v->n_candidates; k++) {
        int32_t i = v->candidates[k];
        int32_t li = load[i].n_waiting + load[i].n_running;
        if (li < load[least].n_waiting + load[least].n_running)
            least = i;
        if (li > load[most].n_waiting + load[most].n_running)
            most = i;
    }
    double lo = load[least].n_waiting + load[least].n_running;
    double hi = load[most].n_waiting + load[most].n_running;
    int32_t pick;
    if (hi - lo > s->abs_thr && hi > s->rel_thr * lo) {
        pick = least;
    } else {
        int32_t best = v->candidates[0], best_m = -1, smallest = best;
        for (int32_t k = 0; k < v->n_candidates; k++) {
            int32_t i = v->candidates[k];
            int32_t m = rp_matched_blocks(&s->c, v, i, req);
            if (m > best_m) {
                best_m = m;
                best = i;
            }
            int64_t si = rp_index_size(&s->c, i), ss = rp_index_size(&s->c, smallest);
            if (si < ss || (si == ss && load[i].n_waiting + load[i].n_running <
                                            load[smallest].n_waiting + load[smallest].n_running))
                smallest = i;
        }
        pick = best_m > s->cache_thr * rp_request_blocks(&s->c, req) ? best : smallest;
    }
    rp_routed(&s->c, v, pick);
    return pick;
}

static void sgl_destroy(void *state)
{
    sgl_state *s = state;
    rp_common_fini(&s->c);
    free(s);
}

const route_policy_ops route_prefix_sglang = {
    .name = "prefix_sglang",
    .init = sgl_init,
    .route = sgl_route,
    .destroy = sgl_destroy,
};
