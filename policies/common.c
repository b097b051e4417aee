/* What several built-in policies share (see common.h). */
#include "policies/common.h"
#include "sim/jsoncfg.h"

int32_t batch_plan_decodes(const batch_view *v, batch_plan *plan, int64_t *free_blocks,
                           int64_t *budget)
{
    int32_t last = v->n_running;   /* running[last..] are preempted */
    for (int32_t i = 0; i < last && *budget > 0; i++) {
        const serve_req *r = v->running[i];
        if (!req_is_decode(r))
            continue;
        int64_t need = batch_blocks_needed(v->setup, r, 1);
        while (need > *free_blocks && last > i) {
            const serve_req *victim = v->running[--last];
            plan->preempt[plan->n_preempt++] = victim;
            *free_blocks += victim->kv_blocks;
        }
        if (last == i)   /* r itself was preempted */
            break;
        plan->items[plan->n_items++] = (batch_item){r, 1, 0};
        *free_blocks -= need;
        --*budget;
    }
    return last;
}

int order_no_params(uint64_t seed, cJSON *params, const char *path, void **state,
                    sim_err *err)
{
    (void)seed;
    static const char *const keys[] = {NULL};
    *state = NULL;
    return jcfg_check_keys(params, path, keys, err);
}
