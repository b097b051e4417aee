/* One run into one results file (see runner.h): open the file as .partial
 * (after checking that it is none of the run's inputs: the config file and
 * every file the config names), build the cluster with the file as its
 * record and sample sink, simulate, summarize, commit. Any failure abandons
 * the partial file. */
#include "tool/runner.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "serve/cluster.h"
#include "serve/disagg.h"
#include "sim/jsoncfg.h"
#include "tool/output.h"

static double wall_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;   /* Linux reports KiB */
}

int run_to_file(const run_config *cfg, const run_source *src, const char *out_path,
                run_result *out, sim_err *err)
{
    double t0 = wall_now_s();
    memset(out, 0, sizeof *out);
    out_file *of = NULL;
    if (out_path) {
        outpath_inputs in = {0};
        if (src && src->file)
            outpath_inputs_add(&in, src->file);
        outpath_inputs_add_json(&in, cfg->root);
        of = out_open(out_path, &in, err);
        outpath_inputs_fini(&in);
        if (!of)
            return RUN_BAD_INPUT;
    }
    cluster_hooks hooks = {
        .on_record = of ? out_record : NULL, .record_ctx = of,
        .on_sample = of ? out_sample : NULL, .sample_ctx = of,
    };
    cluster *c = cluster_create(&cfg->sys, &hooks, err);
    if (!c) {
        if (src)
            jcfg_err_source(err, src->file, src->sets, src->n_sets);
        out_abandon(of);
        return RUN_BAD_INPUT;
    }
    int status = RUN_FAILED;
    if (cluster_run(c, err)) {
        out_failed(of, err);   /* the results file's own reason, if it was that */
        goto done;
    }
    run_summary *s = &out->summary;
    cluster_summarize(c, s);
    s->wall_s = wall_now_s() - t0;
    s->peak_rss_mb = peak_rss_mb();
    cluster_cost_sources(s, out->cost_sources, sizeof out->cost_sources);
    cluster_workload_note(c, out->workload_note, sizeof out->workload_note);
    disagg_moves_note(c, out->moves_note, sizeof out->moves_note);
    if (of && out_cluster_tables(of, c, err))
        goto done;
    if (of) {
        char *json = cJSON_Print(cfg->root);
        int rc = out_commit(of, s, json, out->cost_sources, err);
        of = NULL;
        cJSON_free(json);
        if (rc)
            goto done;
    }
    status = RUN_OK;
done:
    out_abandon(of);
    cluster_destroy(c);
    return status;
}

void run_default_out(const char *config_path, char *buf, size_t size)
{
    const char *base = strrchr(config_path, '/');
    base = base ? base + 1 : config_path;
    size_t len = strcspn(base, ".");
    snprintf(buf, size, "results/%.*s.h5", (int)len, base);
}
