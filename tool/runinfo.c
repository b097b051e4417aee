/* Run headers' workload line and the replaced-timestamps warning (see
 * runinfo.h). Reads the config tree only: no file is opened. */
#include "tool/runinfo.h"

#include <stdio.h>
#include <string.h>

static const cJSON *get(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

static const char *str_or(const cJSON *o, const char *key, const char *def)
{
    const cJSON *v = get(o, key);
    return cJSON_IsString(v) ? v->valuestring : def;
}

/* "poisson arrivals at 12 req/s", "closed loop of 8 clients", ... */
static void describe_arrival(const cJSON *a, char *buf, size_t size)
{
    const char *process = str_or(a, "process", "poisson");
    const cJSON *rate = get(a, "rate_per_s"), *clients = get(a, "clients");
    if (!strcmp(process, "closed_loop") && cJSON_IsNumber(clients))
        snprintf(buf, size, "a closed loop of %.0f clients", clients->valuedouble);
    else if (cJSON_IsNumber(rate))
        snprintf(buf, size, "%s arrivals at %.6g req/s", process, rate->valuedouble);
    else
        snprintf(buf, size, "%s arrivals", process);
}

static bool is_trace(const cJSON *w)
{
    const char *source = str_or(w, "source", "synthetic");
    return strcmp(source, "synthetic") && strcmp(source, "lengths");
}

void runinfo_workload(const cJSON *config, char *buf, size_t size)
{
    const cJSON *w = get(config, "workload");
    const char *source = str_or(w, "source", "synthetic");
    const cJSON *a = get(w, "arrival"), *n = get(w, "requests"), *scale = get(w, "rate_scale");
    const cJSON *max = get(w, "max_requests");
    char arrival[160];
    describe_arrival(a, arrival, sizeof arrival);
    size_t used = 0;
    const cJSON *lanes = get(w, "clients");
    if (!strcmp(source, "weka") || !strcmp(source, "agentic")) {   /* session players */
        char starts[160];
        if (cJSON_IsNumber(lanes) && lanes->valuedouble > 0)
            snprintf(starts, sizeof starts, "%.0f lanes", lanes->valuedouble);
        else
            describe_arrival(get(w, "session_arrival"), starts, sizeof starts);
        used = (size_t)snprintf(buf, size, "%s sessions%s%s, %s, %s timing", source,
                                !strcmp(source, "weka") ? " from " : "",
                                !strcmp(source, "weka") ? str_or(w, "path", "?") : "", starts,
                                str_or(w, "timing", "think"));
    } else if (!strcmp(source, "synthetic")) {
        used = (size_t)snprintf(buf, size, "synthetic: %.0f requests, %s",
                                cJSON_IsNumber(n) ? n->valuedouble : 0, arrival);
    } else if (!is_trace(w)) {
        used = (size_t)snprintf(buf, size, "%s lengths from %s, %s", source,
                                str_or(w, "path", "?"), arrival);
    } else if (a) {
        used = (size_t)snprintf(buf, size, "%s trace %s, its timestamps REPLACED by %s",
                                source, str_or(w, "path", "?"), arrival);
    } else {
        used = (size_t)snprintf(buf, size, "%s trace %s on its own timestamps", source,
                                str_or(w, "path", "?"));
        if (cJSON_IsNumber(scale) && scale->valuedouble != 1 && used < size)
            used += (size_t)snprintf(buf + used, size - used, " x rate_scale %.6g",
                                     scale->valuedouble);
    }
    if (strcmp(source, "synthetic") && cJSON_IsNumber(max) && max->valuedouble > 0 && used < size)
        snprintf(buf + used, size - used, ", at most %.0f requests", max->valuedouble);
}

static bool under_arrival(const char *path)
{
    return !strncmp(path, "workload.arrival", 16) && (!path[16] || path[16] == '.' ||
                                                      path[16] == '=');
}

bool runinfo_trace_arrival_warning(const cJSON *config, char *const *sets, int n_sets,
                                   const char *varied, char *buf, size_t size)
{
    const cJSON *w = get(config, "workload");
    if (!is_trace(w))
        return false;
    const char *what = NULL;
    char by[300];
    for (int i = n_sets - 1; i >= 0 && !what; i--)
        if (under_arrival(sets[i])) {
            snprintf(by, sizeof by, "command line --set %.200s", sets[i]);
            what = by;
        }
    if (!what && varied && under_arrival(varied)) {
        snprintf(by, sizeof by, "varying %.200s", varied);
        what = by;
    }
    if (!what)
        return false;
    char arrival[160];
    describe_arrival(get(w, "arrival"), arrival, sizeof arrival);
    snprintf(buf, size,
             "servesim: WARNING: %s replaces the timestamps of the %s trace %s with %s: its "
             "bursts and daily pattern are lost.\n"
             "servesim: WARNING: to change the load and keep the trace's arrival pattern, set "
             "workload.rate_scale instead (capacity: --over workload.rate_scale, its default "
             "for a trace).\n",
             what, str_or(w, "source", "?"), str_or(w, "path", "?"),
             varied && under_arrival(varied) ? "generated arrivals" : arrival);
    return true;
}
