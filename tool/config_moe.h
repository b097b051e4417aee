/* A pool's "moe" section: expert routing and the placement policy (used
 * with parallel.ep > 1; see models/moe.h and api/placement.h). */
#ifndef TOOL_CONFIG_MOE_H
#define TOOL_CONFIG_MOE_H

#include "serve/setup.h"

/* Reads pool object pj's "moe" (at path.moe) into p->moe; p's model and
 * layout must be set. Defaults: uniform routing in 4 layer groups, static
 * contiguous placement. */
int config_parse_moe(cJSON *pj, const char *path, pool_setup *p, sim_err *err);

#endif
