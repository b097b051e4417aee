/* BatchLLM's prefix-grouping order (Zheng et al., "BatchLLM: Optimizing
 * Large Batched LLM Inference with Global Prefix Sharing"), as a queue key:
 * requests whose prompts share their first `group_tokens` tokens form a
 * group, and a group waits where its first member would have: each member's
 * key is the arrival time of the group's first member seen within
 * `window_s`, so later members join it at the head of the queue and the
 * group runs back to back while its prefix is cached. A request without
 * prefix ids, or with fewer than group_tokens tokens of them, is its own
 * group (FCFS). The group is the id of the prompt's block holding token
 * group_tokens - 1 (chained ids: equal id means equal prompts up to there).
 * BatchLLM also orders groups by their decode/prefill ratio and sizes
 * batches by memory: not modelled here (a queue key sees one request).
 * A group that keeps receiving members would run ahead of everyone else:
 * window_s bounds that (the group then starts anew).
 *
 * State: a hash table from group id to its first arrival, of `max_groups`
 * entries (default 65536); when full it is cleared (groups start anew), so
 * memory stays bounded. O(1) expected per key. Params: group_tokens 1024,
 * window_s 60, max_groups 65536. */
#include <stdlib.h>
#include <string.h>

#include "api/order.h"
#include "sim/jsoncfg.h"

typedef struct pg_state {
    int64_t group_tokens;
    sim_time_ns window_ns;
    uint64_t *keys;        /* group id + 1 (0: empty) */
    sim_time_ns *first;
    size_t mask, n, max;
} pg_state;

static int pg_init(uint64_t seed, cJSON *params, const char *path, void **state, sim_err *err)
{
    (void)seed;
    static const char *const keys[] = {"group_tokens", "window_s", "max_groups", NULL};
    int64_t group_tokens, max_groups;
    double window_s;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_int(params, path, "group_tokens", 1024, 1, INT32_MAX, &group_tokens, err) ||
        jcfg_num(params, path, "window_s", 60, 0, 1e9, &window_s, err) ||
        jcfg_int(params, path, "max_groups", 65536, 1, 1 << 26, &max_groups, err))
        return -1;
    pg_state *s = sim_xcalloc(1, sizeof *s);
    s->group_tokens = group_tokens;
    s->window_ns = (sim_time_ns)(window_s * 1e9);
    s->max = (size_t)max_groups;
    size_t slots = 16;
    while (slots < 2 * s->max)
        slots *= 2;
    s->keys = sim_xcalloc(slots, sizeof *s->keys);
    s->first = sim_xmalloc(slots * sizeof *s->first);
    s->mask = slots - 1;
    *state = s;
    return 0;
}

static double pg_key(void *state, const serve_req *r)
{
    pg_state *s = state;
    int64_t b = r->prefix_id_block_tokens;
    if (!r->n_prefix_ids || b <= 0 || (int64_t)r->n_prefix_ids * b < s->group_tokens)
        return (double)r->arrival_ns;
    uint64_t g = r->prefix_ids[(s->group_tokens - 1) / b] + 1;
    if (!g)
        g = 1;
    size_t i = (size_t)sim_hash_mix(g, 0x67726f7570ULL) & s->mask;
    while (s->keys[i] && s->keys[i] != g)
        i = (i + 1) & s->mask;
    if (!s->keys[i]) {
        if (s->n == s->max) {   /* full: every group starts anew */
            memset(s->keys, 0, (s->mask + 1) * sizeof *s->keys);
            s->n = 0;
            i = (size_t)sim_hash_mix(g, 0x67726f7570ULL) & s->mask;
        }
        s->keys[i] = g;
        s->first[i] = r->arrival_ns;
        s->n++;
    } else if (r->arrival_ns - s->first[i] > s->window_ns) {
        s->first[i] = r->arrival_ns;
    }
    return (double)s->first[i];
}

static void pg_destroy(void *state)
{
    pg_state *s = state;
    free(s->keys);
    free(s->first);
    free(s);
}

const order_policy_ops order_prefix_group = {
    .name = "prefix_group",
    .init = pg_init,
    .key = pg_key,
    .destroy = pg_destroy,
};
