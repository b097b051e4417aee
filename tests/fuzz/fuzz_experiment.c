/* libFuzzer target for the experiment-file reader (tool/experiment.c): the
 * input is an experiment file's text; jcfg_parse reads it (its strict
 * checks included), exp_parse expands the sweep (at most 256 points, so a
 * mutated count cannot make one input take seconds) and the first few
 * points are prepared (assignments applied through jcfg_set, config parsed,
 * cluster built), which is what `servesim sweep` does before running them.
 * Inputs that name files (base_config, trace or rate paths) are only
 * parsed and expanded: the fuzzer must not read whatever file a mutation
 * names (a FIFO would block). Built and run by `make fuzz`. */
#include <stdlib.h>
#include <string.h>

#include "sim/jsoncfg.h"
#include "tool/experiment.h"

#define FUZZ_MAX_POINTS 256
#define FUZZ_PREPARED 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    bool names_file = strstr(text, "base_config") || strstr(text, "path") ||
                      strstr(text, "table") || memchr(text, 0, size);
    cJSON *root;
    sim_err err;
    if (!names_file && jcfg_parse(text, "fuzz.json", &root, &err) == 0) {
        experiment e;
        if (exp_parse(root, "fuzz.json", FUZZ_MAX_POINTS, &e, &err) == 0) {
            for (int64_t i = 0; i < e.n_points && i < FUZZ_PREPARED; i++) {
                if (exp_point_prepare(&e, i, &err))
                    break;
                exp_point_release(&e, i);
            }
            char *canon = exp_canonical_json(e.root);
            free(canon);
            exp_fini(&e);
        }
    }
    free(text);
    return 0;
}
