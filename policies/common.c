/* What several built-in policies share (see common.h). */
#include "policies/common.h"
#include "sim/jsoncfg.h"

int32_t batch_plan_decodes(const batch_view *v, batch_plan *plan, int64_t *budget)
{
    int32_t last = v->n_running;   /* running[last..] are preempted */
    for (int32_t i = 0; i < last && *budget > 0; i++) {
        if (i + 4 < last)   /* running requests are scattered in memory */
            __builtin_prefetch(v->running[i + 4]);
        const serve_req *r = v->running[i];
        if (!req_is_decode(r))
            continue;
        while (kv_need(v, r, 1) > kv_free(v) && last > i) {
            const serve_req *victim = v->running[--last];
            plan->preempt[plan->n_preempt++] = victim;
            kv_preempt(v, victim);
        }
        if (last == i)   /* r itself was preempted */
            break;
        plan->items[plan->n_items++] = (batch_item){r, 1, 0};
        kv_take(v, r, 1);
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
