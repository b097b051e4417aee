/* schedule: scales on the clock, not the load (as a cron-driven scaler, or
 * a capacity plan for a known daily pattern): `schedule` lists [start_s,
 * instances] steps, the first at 0; every pool that takes arrivals is
 * sized to the count of the last step started, and the schedule repeats
 * every `repeat_s` (0: the last count holds). Decode pools are left alone.
 *
 * Params: {"schedule": [[0, 1], [3600, 4]], "repeat_s": 0}. */
#include <stdlib.h>

#include "api/scale.h"
#include "sim/jsoncfg.h"

typedef struct sched_state {
    sim_time_ns *start_ns;
    int32_t *count;
    int32_t n;
    sim_time_ns repeat_ns;
} sched_state;

static void sched_destroy(void *state)
{
    sched_state *s = state;
    if (!s)
        return;
    free(s->start_ns);
    free(s->count);
    free(s);
}

static int sched_init(const scale_setup *setup, cJSON *params, const char *path, void **state,
                      sim_err *err)
{
    (void)setup;
    static const char *const keys[] = {"schedule", "repeat_s", NULL};
    double repeat_s;
    if (jcfg_check_keys(params, path, keys, err) ||
        jcfg_num(params, path, "repeat_s", 0, 0, 1e9, &repeat_s, err))
        return -1;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(params, "schedule");
    int n = cJSON_GetArraySize(list);
    if (!cJSON_IsArray(list) || n < 1 || n > 100000)
        return sim_errf(err, "%s.schedule: expected an array of [start_s, instances] steps, "
                        "the first at 0", path);
    sched_state *s = sim_xcalloc(1, sizeof *s);
    s->start_ns = sim_xcalloc((size_t)n, sizeof *s->start_ns);
    s->count = sim_xcalloc((size_t)n, sizeof *s->count);
    s->repeat_ns = (sim_time_ns)(repeat_s * 1e9);
    for (int k = 0; k < n; k++) {
        const cJSON *e = cJSON_GetArrayItem(list, k);
        const cJSON *t = cJSON_GetArrayItem(e, 0), *c = cJSON_GetArrayItem(e, 1);
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsNumber(t) ||
            !cJSON_IsNumber(c) || t->valuedouble < 0 || t->valuedouble > 1e9 ||
            c->valuedouble < 0 || c->valuedouble > 4096 ||
            c->valuedouble != (int32_t)c->valuedouble) {
            sched_destroy(s);
            return sim_errf(err, "%s.schedule[%d]: expected [start_s >= 0, instances (an "
                            "integer in [0, 4096])]", path, k);
        }
        s->start_ns[k] = (sim_time_ns)(t->valuedouble * 1e9);
        s->count[k] = (int32_t)c->valuedouble;
        if ((k == 0 && s->start_ns[0] != 0) || (k > 0 && s->start_ns[k] <= s->start_ns[k - 1])) {
            sched_destroy(s);
            return sim_errf(err, "%s.schedule[%d]: starts must begin at 0 and increase", path,
                            k);
        }
    }
    s->n = n;
    if (s->repeat_ns && s->repeat_ns <= s->start_ns[n - 1]) {
        sched_destroy(s);
        return sim_errf(err, "%s.repeat_s: expected more than the last step's start", path);
    }
    *state = s;
    return 0;
}

static void sched_decide(void *state, const scale_view *v, int32_t *desired)
{
    const sched_state *s = state;
    sim_time_ns t = s->repeat_ns ? v->now % s->repeat_ns : v->now;
    int32_t k = 0;
    while (k + 1 < s->n && s->start_ns[k + 1] <= t)
        k++;
    for (int32_t p = 0; p < v->n_pools; p++)
        if (v->pools[p].role != POOL_DECODE)
            desired[p] = s->count[k];
}

const scale_policy_ops scale_schedule = {
    .name = "schedule",
    .init = sched_init,
    .decide = sched_decide,
    .destroy = sched_destroy,
};
