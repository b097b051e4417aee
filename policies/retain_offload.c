/* KV retention "offload" (spec I: write to host at turn end, reload on the
 * next turn): a finished turn's blocks leave HBM at once (freed, no longer
 * in its prefix cache) and stay in the instance's lower KV tiers (needs
 * instance.kv_tiers, e.g. a host DRAM tier). The tier holds them already:
 * tiers are inclusive, every block written through over the host link as it
 * was cached (serve/kv_tier.h), so the turn end adds no transfer; the
 * session's next turn finds its context in the tier and loads it back
 * (n chunks x the tier's latency + bytes / its read rate, the iteration
 * waiting) instead of computing it again. What offloading buys over
 * "release" is HBM: the session's blocks stop crowding other requests'
 * cached prefixes; what it costs is the reload even when HBM had room.
 *
 * Params: `min_blocks` (default 0): turns holding fewer blocks are released
 * as by "release"; `pin_ttl_s` (default 0: never): pin like "pin_ttl" while
 * the mean tool/think gap learned on the instance is at most pin_ttl_s
 * (short gaps stay in HBM, long ones go to the host: preserve or swap, as
 * InferCept chooses). State: the running mean gap. */
#include <stdlib.h>

#include "api/retain.h"
#include "sim/jsoncfg.h"

typedef struct offload {
    int64_t min_blocks;
    sim_time_ns pin_ns;
    double gap_sum_ns;
    uint64_t gaps;
} offload;

static int offload_init(cJSON *params, const char *path, void **state, sim_err *err)
{
    static const char *const keys[] = {"min_blocks", "pin_ttl_s", NULL};
    int64_t min_blocks;
    double pin_s;
    *state = NULL;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_int(params, path, "min_blocks", 0, 0, INT32_MAX, &min_blocks, err) ||
        jcfg_num(params, path, "pin_ttl_s", 0, 0, 1e6, &pin_s, err))
        return -1;
    offload *o = sim_xcalloc(1, sizeof *o);
    o->min_blocks = min_blocks;
    o->pin_ns = sim_time_add(0, pin_s * 1e9);
    *state = o;
    return 0;
}

static sim_time_ns offload_turn_end(void *state, const retain_view *v, const serve_req *r)
{
    (void)v;
    offload *o = state;
    if (r->kv_blocks < o->min_blocks)
        return 0;
    if (o->pin_ns > 0 && (!o->gaps || o->gap_sum_ns / (double)o->gaps <= (double)o->pin_ns))
        return o->pin_ns;
    return RETAIN_OFFLOAD;
}

static void offload_turn_arrival(void *state, const retain_view *v, const serve_req *r)
{
    (void)v;
    offload *o = state;
    o->gap_sum_ns += (double)r->session_gap_ns;
    o->gaps++;
}

static void offload_destroy(void *state) { free(state); }

const retain_policy_ops retain_offload = {
    .name = "offload",
    .init = offload_init,
    .on_turn_end = offload_turn_end,
    .on_turn_arrival = offload_turn_arrival,
    .destroy = offload_destroy,
    .needs_tier = true,
};
