/* What a run's header says about its workload, and the warning when
 * arrival times replace a trace's own (run, sweep and capacity). */
#ifndef TOOL_RUNINFO_H
#define TOOL_RUNINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

/* "synthetic: 3000 requests, poisson arrivals at 12 req/s" or "azure trace
 * t.csv on its own timestamps x rate_scale 2", from a config tree. */
void runinfo_workload(const cJSON *config, char *buf, size_t size);

/* True, with the warning (lines ending in a newline) in buf, when the
 * config replays a trace (a source other than synthetic or lengths) and an
 * assignment of the command line (sets) or the path a command varies
 * (`varied`: a sweep's or capacity's path; may be NULL) is under
 * workload.arrival: those arrival times replace the trace's. */
bool runinfo_trace_arrival_warning(const cJSON *config, char *const *sets, int n_sets,
                                   const char *varied, char *buf, size_t size);

#endif
