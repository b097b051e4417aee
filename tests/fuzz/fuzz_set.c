/* libFuzzer target for the --set parser (sim/jsoncfg.c jcfg_set and
 * jcfg_err_source): each input line is one assignment "key.path=value",
 * applied in order to a copy of a small valid run config, as `servesim run
 * --set ...` does; then the config is parsed (run_config_parse: every
 * section's checks, model and GPU lookup) and a failure is attributed to
 * its source (the command line or the file). A failed assignment must
 * leave the tree as it was: checked by printing it before and after. Built
 * and run by `make fuzz`. */
#include <stdlib.h>
#include <string.h>

#include "sim/jsoncfg.h"
#include "tool/config.h"

#define FUZZ_MAX_SETS 16

static const char base_text[] =
    "{\"seed\": 3, \"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\","
    " \"cluster\": {\"instances\": 2},"
    " \"policies\": {\"routing\": {\"name\": \"round_robin\"}},"
    " \"workload\": {\"requests\": 50, \"arrival\": {\"rate_per_s\": 8},"
    " \"input_tokens\": {\"dist\": \"fixed\", \"value\": 300},"
    " \"output_tokens\": {\"dist\": \"fixed\", \"value\": 20}},"
    " \"list\": [{\"a\": 1}, [2, 3]]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    cJSON *root;
    sim_err err;
    if (jcfg_parse(base_text, "base.json", &root, &err))
        abort();
    char *sets[FUZZ_MAX_SETS];
    int n_sets = 0;
    for (char *line = text, *next; line && n_sets < FUZZ_MAX_SETS; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        if (!*line)
            continue;
        sets[n_sets++] = line;
        char *before = cJSON_PrintUnformatted(root);
        if (jcfg_set(root, line, &err)) {
            char *after = cJSON_PrintUnformatted(root);
            if (strcmp(before, after))
                abort();   /* a failed override changed the tree */
            cJSON_free(after);
        }
        cJSON_free(before);
    }
    /* "list" is there for index paths (list.0.a=...); a run config has no
     * such key, so it goes before the config's own checks. */
    cJSON_DeleteItemFromObjectCaseSensitive(root, "list");
    run_config cfg;
    if (run_config_parse(root, &cfg, &err) == 0)
        run_config_fini(&cfg);
    else
        jcfg_err_source(&err, "base.json", sets, n_sets);
    free(text);
    return 0;
}
