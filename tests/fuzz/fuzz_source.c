/* libFuzzer target for the trace source (traces/trace_source.c): the input
 * is a trace file (written to a file in /dev/shm, since the source opens
 * paths); a hash of it picks the options (window, rate scaling, caps and
 * their policy, spreading, failures, skip_bad, context policy, format), so
 * the mutator explores option combinations along with the content. Checks
 * the wrapper's guarantees on every request. Built and run by `make fuzz`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/engine.h"
#include "traces/workload.h"

static char path[64];

static uint32_t fnv(const uint8_t *d, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ d[i]) * 16777619u;
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0])
        snprintf(path, sizeof path, "/dev/shm/servesim-fuzz-%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);

    uint32_t h = fnv(data, size);
    static const char *const formats[] = {"auto", "azure", "mooncake", "burstgpt", "native_csv",
                                          "native_jsonl", "lengths", "auto"};
    char json[1024];
    snprintf(json, sizeof json,
             "{\"source\": \"trace\", \"path\": \"%s\", \"format\": \"%s\", \"skip_bad\": %s,"
             " \"window\": {\"start_s\": %d, \"end_s\": %d}, \"rate_scale\": %s,"
             " \"max_input_tokens\": %d, \"cap_policy\": \"%s\", \"spread_ms\": %d,"
             " \"spread\": \"%s\", \"failures\": \"%s\", \"context_policy\": \"%s\"%s}",
             path, formats[h & 7], (h >> 3) & 1 ? "true" : "false", (h >> 4) & 1,
             (h >> 5) & 1 ? 0 : 100, (h >> 6) & 1 ? "2" : "1", (h >> 7) & 1 ? 0 : 500,
             (h >> 8) & 1 ? "drop" : "truncate", (h >> 9) & 1 ? 3000 : 0,
             (h >> 10) & 1 ? "random" : "even", (h >> 11) & 1 ? "keep" : "skip",
             (h >> 12) & 1 ? "drop" : "truncate",
             (h & 7) == 6 ? ", \"arrival\": {\"process\": \"poisson\", \"rate_per_s\": 3}" : "");
    cJSON *cfg = cJSON_Parse(json);
    sim_engine *eng = sim_engine_create(h);
    wl_setup setup = {sim_rng(eng, 1), sim_rng(eng, 2), 2048};
    sim_err err;
    wl_source *src = wl_source_create(&setup, cfg, "$.workload", &err);
    if (src) {
        wl_request r;
        sim_time_ns now = 0;
        int rc, n = 0;
        while ((rc = wl_source_next(src, now, &r, &err)) == WL_REQUEST && n++ < 100000) {
            if (r.arrival_ns < now || r.input_tokens < 1 || r.output_tokens < 1 ||
                r.input_tokens + r.output_tokens > 2048)
                __builtin_trap();
            now = r.arrival_ns;
            for (int32_t i = 0; i < r.n_prefix_blocks; i++)
                h += (uint32_t)r.prefix_blocks[i];
        }
        wl_counts c;
        wl_source_counts(src, &c);
        wl_source_destroy(src);
    }
    cJSON_Delete(cfg);
    sim_engine_destroy(eng);
    unlink(path);
    return 0;
}
