/* Test helpers (see testutil.h). */
#include "tests/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tool/cli.h"
#include "sim/jsoncfg.h"
#include "traces/workload.h"

static const char base_config[] =
    "{\"seed\": 7, \"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\","
    " \"cluster\": {\"instances\": 1, \"tp\": 1},"
    " \"workload\": {\"source\": \"synthetic\", \"requests\": 200,"
    "   \"arrival\": {\"process\": \"poisson\", \"rate_per_s\": 10},"
    "   \"input_tokens\": {\"dist\": \"lognormal\", \"mean\": 600, \"sigma\": 0.6},"
    "   \"output_tokens\": {\"dist\": \"lognormal\", \"mean\": 120, \"sigma\": 0.8}}}";

cJSON *tu_base_config(void)
{
    cJSON *root = cJSON_Parse(base_config);
    ck_assert_ptr_nonnull(root);
    return root;
}

void tu_set(cJSON *root, const char *const *sets)
{
    for (int i = 0; sets && sets[i]; i++) {
        sim_err err = {{0}};
        if (jcfg_set(root, sets[i], &err))
            ck_abort_msg("--set %s: %s", sets[i], err.msg);
    }
}

void tu_parse(cJSON *root, run_config *cfg)
{
    sim_err err = {{0}};
    if (run_config_parse(root, cfg, &err))
        ck_abort_msg("config: %s", err.msg);
}

static int on_record(void *ctx, const req_record *rec)
{
    tu_run *r = ctx;
    const unsigned char *p = (const unsigned char *)rec;
    for (size_t i = 0; i < sizeof *rec; i++)
        r->record_hash = (r->record_hash ^ p[i]) * 1099511628211ULL;
    r->n_records++;
    r->output_tokens += (uint64_t)rec->output_tokens;
    if (rec->id >= r->seen_cap) {
        uint64_t cap = (rec->id + 1) * 2;
        r->seen = sim_xrealloc(r->seen, cap);
        memset(r->seen + r->seen_cap, 0, cap - r->seen_cap);
        r->out_tokens = sim_xrealloc(r->out_tokens, cap * sizeof *r->out_tokens);
        memset(r->out_tokens + r->seen_cap, 0, (cap - r->seen_cap) * sizeof *r->out_tokens);
        r->seen_cap = cap;
    }
    r->seen[rec->id]++;
    r->out_tokens[rec->id] = rec->output_tokens;
    return 0;
}

static void on_iteration(void *ctx, const iter_info *it)
{
    tu_run *r = ctx;
    r->iterations++;
    ck_assert_int_lt(it->instance, 64);
    if (it->start_ns < r->last_iter_start_ns[it->instance])
        r->time_went_back = 1;
    r->last_iter_start_ns[it->instance] = it->start_ns;
    if (kv_used_blocks(it->kv) > kv_total_blocks(it->kv))
        r->kv_over_capacity = 1;
    int32_t tokens = 0;
    for (int32_t i = 0; i < it->n_items; i++)
        tokens += it->items[i].tokens;
    if (tokens > r->max_batch_tokens)
        r->max_batch_tokens = tokens;
    if (it->n_items > r->max_batch_seqs)
        r->max_batch_seqs = it->n_items;
}

/* Replays the run's workload on its own (same seed, same streams) and
 * compares each request's output length with its record's. */
static void check_outputs(const run_config *cfg, tu_run *r)
{
    sim_engine *eng = sim_engine_create(cfg->sys.seed);
    wl_setup setup = {
        .arrival_rng = sim_rng(eng, STREAM_ARRIVALS),
        .length_rng = sim_rng(eng, STREAM_LENGTHS),
        .max_context_tokens = cluster_setup_max_context(&cfg->sys),
    };
    cJSON *workload = cJSON_Duplicate(cfg->sys.workload, 1);
    sim_err err = {{0}};
    wl_source *src = wl_source_create(&setup, workload, "$.workload", &err);
    ck_assert_msg(src, "%s", err.msg);
    wl_request req;
    uint64_t id = 0;
    while (wl_source_next(src, 0, &req, &err) == WL_REQUEST) {
        if (id >= r->seen_cap || r->out_tokens[id] != req.output_tokens)
            r->output_mismatches++;
        id++;
    }
    r->workload_requests = id;
    wl_source_destroy(src);
    cJSON_Delete(workload);
    sim_engine_destroy(eng);
}

void tu_run_config(const run_config *cfg, tu_run *out)
{
    memset(out, 0, sizeof *out);
    out->record_hash = 1469598103934665603ULL;
    sim_err err = {{0}};
    cluster_hooks hooks = {.on_record = on_record, .record_ctx = out,
                           .on_iteration = on_iteration, .iteration_ctx = out};
    cluster *c = cluster_create(&cfg->sys, &hooks, &err);
    if (!c)
        ck_abort_msg("cluster_create: %s", err.msg);
    if (cluster_run(c, &err))
        ck_abort_msg("cluster_run: %s", err.msg);
    cluster_summarize(c, &out->summary);
    cluster_destroy(c);
    check_outputs(cfg, out);
}

void tu_run_sets(const char *const *sets, tu_run *out)
{
    cJSON *root = tu_base_config();
    tu_set(root, sets);
    run_config cfg;
    tu_parse(root, &cfg);
    tu_run_config(&cfg, out);
    run_config_fini(&cfg);
}

void tu_run_fini(tu_run *r)
{
    free(r->seen);
    free(r->out_tokens);
    r->seen = NULL;
    r->out_tokens = NULL;
}

int tu_call_cli(void *tu_cli_call_ptr)
{
    tu_cli_call *c = tu_cli_call_ptr;
    int argc = 0;
    while (c->argv[argc])
        argc++;
    return cli_main(argc, (char **)c->argv);
}

int tu_cli_child(tu_cli_call *c, void (*setup)(void *), void *ctx, char *errbuf, size_t size)
{
    char path[] = "/tmp/servesim-child-XXXXXX";
    int tmp = mkstemp(path);
    ck_assert_int_ge(tmp, 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(tmp, STDERR_FILENO);
        if (setup)
            setup(ctx);
        int rc = tu_call_cli(c);
        fflush(NULL);   /* _exit does not */
        _exit(rc);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    lseek(tmp, 0, SEEK_SET);
    ssize_t n = read(tmp, errbuf, size - 1);
    errbuf[n > 0 ? n : 0] = 0;
    close(tmp);
    unlink(path);
    return status;
}

int tu_capture(int fd, int (*f)(void *), void *arg, char *buf, size_t size)
{
    char path[] = "/tmp/servesim-capture-XXXXXX";
    int tmp = mkstemp(path);
    ck_assert_int_ge(tmp, 0);
    fflush(stdout);
    fflush(stderr);
    int saved = dup(fd);
    dup2(tmp, fd);
    int rc = f(arg);
    fflush(stdout);
    fflush(stderr);
    dup2(saved, fd);
    close(saved);
    lseek(tmp, 0, SEEK_SET);
    ssize_t n = read(tmp, buf, size - 1);
    buf[n > 0 ? n : 0] = 0;
    close(tmp);
    unlink(path);
    return rc;
}

int tu_capture_stderr(int (*f)(void *), void *arg, char *buf, size_t size)
{
    return tu_capture(STDERR_FILENO, f, arg, buf, size);
}

char *tu_tempdir(void)
{
    char *dir = sim_xstrdup("/tmp/servesim-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    return dir;
}
