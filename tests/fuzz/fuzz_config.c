/* libFuzzer target for the run-config reader: jcfg_parse (JSON with
 * file:line:column errors and duplicate-key checks), jcfg_set (the --set
 * path=value syntax: the input's first line when it holds '=' and does not
 * start with '{'), run_config_parse (every section's checks, model and GPU
 * lookup), and, for synthetic workloads, the workload source with up to
 * 2,000 requests. Built and run by `make fuzz`. */
#include <stdlib.h>
#include <string.h>

#include "tool/config.h"
#include "sim/engine.h"
#include "sim/jsoncfg.h"
#include "traces/workload.h"

static void try_workload(const run_config *cfg)
{
    cJSON *src = cJSON_GetObjectItemCaseSensitive(cfg->sys.workload, "source");
    if (src && (!cJSON_IsString(src) || strcmp(src->valuestring, "synthetic")))
        return;   /* trace sources open files the input names */
    char *text = cJSON_PrintUnformatted(cfg->sys.workload);
    bool names_file = text && strstr(text, "\"path\"");
    free(text);
    if (names_file)
        return;   /* nor must empirical lengths or rate files (/dev/zero...) */
    cJSON *copy = cJSON_Duplicate(cfg->sys.workload, 1);
    sim_engine *eng = sim_engine_create(1);
    wl_setup setup = {sim_rng(eng, 1), sim_rng(eng, 2), cluster_setup_max_context(&cfg->sys)};
    sim_err err;
    wl_source *s = wl_source_create(&setup, copy, "$.workload", &err);
    wl_request r;
    sim_time_ns now = 0;
    for (int i = 0; s && i < 2000; i++) {
        int rc = wl_source_next(s, now, &r, &err);
        if (rc == WL_REQUEST)
            now = r.arrival_ns;
        else if (rc == WL_WAIT && r.arrival_ns != SIM_TIME_NEVER)
            now = r.arrival_ns;
        else if (rc == WL_WAIT)
            wl_source_complete(s, now);
        else
            break;
    }
    wl_source_destroy(s);
    cJSON_Delete(copy);
    sim_engine_destroy(eng);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    char *json = text, *set = NULL;
    char *nl = strchr(text, '\n');
    if (nl && text[0] != '{' && memchr(text, '=', (size_t)(nl - text))) {
        *nl = 0;
        set = text;
        json = nl + 1;
    }
    cJSON *root;
    sim_err err;
    if (jcfg_parse(json, "fuzz.json", &root, &err) == 0) {
        if (set && jcfg_set(root, set, &err)) {
            cJSON_Delete(root);
        } else {
            run_config cfg;
            if (run_config_parse(root, &cfg, &err) == 0) {
                try_workload(&cfg);
                run_config_fini(&cfg);
            }
        }
    }
    free(text);
    return 0;
}
