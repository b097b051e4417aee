/* One run into one results file (see runner.h): open the file as .partial,
 * build the cluster with the file as its record and sample sink, simulate,
 * summarize, commit. Any failure abandons the partial file. */
#include "tool/runner.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <time.h>

#include "serve/cluster.h"
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

int run_to_file(const run_config *cfg, const char *config_name, const char *out_path,
                run_result *out, sim_err *err)
{
    double t0 = wall_now_s();
    memset(out, 0, sizeof *out);
    out_file *of = NULL;
    if (out_path && !(of = out_open(out_path, err)))
        return RUN_BAD_INPUT;
    cluster_hooks hooks = {
        .on_record = of ? out_record : NULL, .record_ctx = of,
        .on_sample = of ? out_sample : NULL, .sample_ctx = of,
    };
    cluster *c = cluster_create(&cfg->sys, &hooks, err);
    if (!c) {
        if (config_name)
            sim_err_prefix(err, "%s", config_name);
        out_abandon(of);
        return RUN_BAD_INPUT;
    }
    int status = RUN_FAILED;
    if (cluster_run(c, err))
        goto done;
    run_summary *s = &out->summary;
    cluster_summarize(c, s);
    s->wall_s = wall_now_s() - t0;
    s->peak_rss_mb = peak_rss_mb();
    cluster_cost_sources(s, out->cost_sources, sizeof out->cost_sources);
    cluster_workload_note(c, out->workload_note, sizeof out->workload_note);
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

void run_make_parent_dirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0777) && errno != EEXIST)
            return;
        *p = '/';
    }
}

void run_default_out(const char *config_path, char *buf, size_t size)
{
    const char *base = strrchr(config_path, '/');
    base = base ? base + 1 : config_path;
    size_t len = strcspn(base, ".");
    snprintf(buf, size, "results/%.*s.h5", (int)len, base);
}
