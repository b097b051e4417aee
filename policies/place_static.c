/* Static expert placement: fixed at the start, never rebalanced.
 *
 * params.order: "contiguous" (vLLM's "linear": GPU r holds experts
 * r * E / ep to (r + 1) * E / ep - 1) or "round_robin" (expert e on GPU
 * e mod ep). Redundant slots, if the layout has any, hold copies of
 * experts 0, 1, ... in the same order after every expert's first copy. */
#include <stdlib.h>
#include <string.h>

#include "api/placement.h"
#include "sim/jsoncfg.h"

typedef struct static_state {
    bool round_robin;
} static_state;

static int static_init(const place_setup *setup, cJSON *params, const char *path,
                       void **state, place_schedule *sched, sim_err *err)
{
    (void)setup;
    static const char *const keys[] = {"order", NULL};
    const char *order = "contiguous";
    if (params && (jcfg_check_keys(params, path, keys, err) ||
                   jcfg_str(params, path, "order", "contiguous", &order, err)))
        return -1;
    if (strcmp(order, "contiguous") && strcmp(order, "round_robin"))
        return sim_errf(err, "%s.order: expected one of: contiguous, round_robin; got \"%s\"",
                        path, order);
    static_state *s = sim_xcalloc(1, sizeof *s);
    s->round_robin = !strcmp(order, "round_robin");
    *state = s;
    *sched = (place_schedule){0, 0};
    return 0;
}

static void static_place(void *state, const place_view *v, int32_t *phy2log)
{
    const static_state *st = state;
    const place_setup *p = v->setup;
    const int32_t per = p->slots / p->ranks;
    for (int32_t g = 0; g < p->layers; g++) {
        int32_t *row = phy2log + (size_t)g * p->slots;
        for (int32_t i = 0; i < p->slots; i++) {
            /* the i-th copy: contiguous fills GPU after GPU, round-robin
             * deals them out one per GPU in turn */
            int32_t slot = st->round_robin ? (i % p->ranks) * per + i / p->ranks : i;
            row[slot] = i % p->experts;
        }
    }
}

static void static_destroy(void *state) { free(state); }

const place_policy_ops place_static = {
    .name = "static",
    .init = static_init,
    .place = static_place,
    .destroy = static_destroy,
};
