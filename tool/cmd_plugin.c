/* `servesim plugin build SRC.c`, `servesim plugin info LIB` and `servesim
 * plugin check LIB` (cmd_plugin.h).
 *
 * build runs $CC (cc) with the flags of the walkthrough (api/README.md) and
 * the include folder of this servesim's api/ headers: the installed
 * include/servesim beside the program's bin/, else the source tree it was
 * built from.
 *
 * check runs every policy of the library, in turn, in place of its family's
 * default in a small run config (2 instances, 400 Poisson requests at 30/s,
 * Llama-3-8B on H100, a 1-second controller period; or CONFIG given with
 * --config, edited by --set), twice, and checks what tests/test_policies.c's
 * invariant table checks of the built-ins at the level a results summary
 * shows: every arriving request completes, the output tokens equal those of
 * the same config under the built-in defaults (the workload's lengths are
 * conserved), and the two runs' summaries are equal bit for bit (wall time
 * and peak memory aside). The core's own assertions (KV capacity, batch
 * limits, plans that fit) abort a run that breaks them. Without --config,
 * eviction policies run with prefix caching on, autoscalers tick every
 * second, and retention policies get a closed-loop workload of 4-turn
 * sessions with prefix caching (the reference run too), so that each family
 * is called. */
#include "tool/cmd_plugin.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sim/jsoncfg.h"
#include "tool/plugin.h"
#include "tool/runner.h"

#ifndef SERVESIM_SOURCE_DIR   /* the Makefile's: the tree servesim was built from */
#define SERVESIM_SOURCE_DIR "."
#endif

static const char plugin_usage[] =
    "usage: servesim plugin build POLICY.c [-o LIB.so] [compiler flags ...]\n"
    "       servesim plugin info LIB\n"
    "       servesim plugin check LIB [--family F] [--params JSON] [--config CONFIG.json]\n"
    "                                 [--set path=value ...]\n"
    "\n"
    "  build compiles one C file into a plugin (lib<name>.so beside it), against this\n"
    "  servesim's api/ headers, with $CC (default cc)\n"
    "  LIB  a plugin: a path (contains '/' or ends in .so) or a name found as lib<name>.so\n"
    "       on $SERVESIM_PLUGIN_PATH, ./plugins, build/plugins (api/README.md)\n"
    "  check runs each of its policies twice in a small config: every request completes,\n"
    "  output tokens are conserved, the two runs are identical; --family checks one\n"
    "  family only (batch, order, routing, control, eviction, scale, retention);\n"
    "  --params gives each checked policy\n"
    "  its params (e.g. the Python bridge's module and class)\n";

static const char check_base[] =
    "{\"seed\": 5, \"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\","
    " \"cluster\": {\"instances\": 2, \"tp\": 1},"
    " \"workload\": {\"source\": \"synthetic\", \"requests\": 400,"
    "   \"arrival\": {\"process\": \"poisson\", \"rate_per_s\": 30},"
    "   \"input_tokens\": {\"dist\": \"lognormal\", \"mean\": 800, \"sigma\": 0.6},"
    "   \"output_tokens\": {\"dist\": \"lognormal\", \"mean\": 150, \"sigma\": 0.8}}}";

/* One family's policies: the config key that names one, their names, and
 * what the base config needs for the family to be called (none: NULL). */
typedef struct fam_list {
    const char *label;
    const char *key;          /* policies.<key>.name */
    const char *const *extra;
    bool ref_extra;           /* the reference run takes extra too */
    const char *names[64];
    int n;
} fam_list;

#define N_FAM 7

static const char *const extra_evict[] = {"instance.prefix_caching=true", NULL};
static const char *const extra_scale[] = {"policies.scale.period_ms=1000", NULL};
static const char *const extra_retain[] = {
    "instance.prefix_caching=true",
    "workload.arrival={\"process\": \"closed_loop\", \"clients\": 8, \"think_s\": 0.5}",
    "workload.prefix={\"kind\": \"session\", \"turns\": 4, \"turn_dist\": \"fixed\"}",
    NULL};

static void list_families(const plugin_lib *l, fam_list fam[N_FAM])
{
    fam[0] = (fam_list){.label = "batch", .key = "batch"};
    fam[1] = (fam_list){.label = "ordering", .key = "order"};
    fam[2] = (fam_list){.label = "routing", .key = "routing"};
    fam[3] = (fam_list){.label = "controller", .key = "control"};
    fam[4] = (fam_list){.label = "eviction", .key = "eviction", .extra = extra_evict,
                        .ref_extra = true};
    fam[5] = (fam_list){.label = "autoscaler", .key = "scale", .extra = extra_scale};
    fam[6] = (fam_list){.label = "retention", .key = "retention", .extra = extra_retain,
                        .ref_extra = true};
#define NAMES(f, arr, cnt)                                 \
    for (int i = 0; i < (cnt) && i < 64; i++)              \
        fam[f].names[fam[f].n++] = (arr)[i].name
    NAMES(0, l->batch, l->n_batch);
    NAMES(1, l->order, l->n_order);
    NAMES(2, l->route, l->n_route);
    NAMES(3, l->control, l->n_control);
    NAMES(4, l->evict, l->n_evict);
    NAMES(5, l->scale, l->n_scale);
    NAMES(6, l->retain, l->n_retain);
#undef NAMES
}

static void print_info(const plugin_lib *l, const fam_list fam[N_FAM])
{
    printf("%s\n  name %s, version %s, ABI %u.%u (this servesim: %d.%d)\n  sha256 %s\n",
           l->path, l->desc.name, l->desc.version, l->desc.abi_major, l->desc.abi_minor,
           SERVESIM_ABI_MAJOR, SERVESIM_ABI_MINOR, l->sha256);
    for (int f = 0; f < N_FAM; f++) {
        if (!fam[f].n)
            continue;
        printf("  %-10s", fam[f].label);
        for (int i = 0; i < fam[f].n; i++)
            printf("%s%s", i ? ", " : " ", fam[f].names[i]);
        putchar('\n');
    }
}

/* The base config (a file or check_base) with the assignments applied and,
 * when key is not NULL, policies.<key>.name set to name. Caller owns it. */
/* What the command line gave check. */
typedef struct check_args {
    const char *file;     /* --config, or NULL for check_base */
    char **sets;          /* --set assignments */
    int n_sets;
    const char *params;   /* --params, for the policy checked; may be NULL */
    const char *family;   /* --family: the config key of the one family to check */
} check_args;

static int make_config(const check_args *a, const char *const *extra, const char *key,
                       const char *name, run_config *cfg, sim_err *err)
{
    cJSON *root;
    if (a->file ? jcfg_load_file(a->file, &root, err)
                : jcfg_parse(check_base, "check config", &root, err))
        return -1;
    for (int i = 0; !a->file && extra && extra[i]; i++)
        if (jcfg_set(root, extra[i], err)) {
            cJSON_Delete(root);
            return -1;
        }
    for (int i = 0; i < a->n_sets; i++)
        if (jcfg_set(root, a->sets[i], err)) {
            cJSON_Delete(root);
            return sim_err_prefix(err, "--set %s", a->sets[i]);
        }
    if (key) {
        char set[1200];
        snprintf(set, sizeof set, "policies.%s.name=\"%s\"", key, name);
        if (jcfg_set(root, set, err)) {
            cJSON_Delete(root);
            return -1;
        }
        if (a->params) {
            char *ps = sim_xmalloc(strlen(a->params) + 64);
            sprintf(ps, "policies.%s.params=%s", key, a->params);
            int bad = jcfg_set(root, ps, err);
            free(ps);
            if (bad) {
                cJSON_Delete(root);
                return sim_err_prefix(err, "--params");
            }
        }
    }
    return run_config_parse(root, cfg, err);
}

static int run_once(const check_args *a, const char *const *extra, const char *key,
                    const char *name, run_summary *s, sim_err *err)
{
    run_config cfg;
    run_result r;
    memset(&cfg, 0, sizeof cfg);
    if (make_config(a, extra, key, name, &cfg, err))
        return -1;
    int status = run_to_file(&cfg, NULL, NULL, &r, err);
    run_config_fini(&cfg);
    if (status != RUN_OK)
        return -1;
    *s = r.summary;
    s->wall_s = s->peak_rss_mb = 0;
    return 0;
}

static int check(const plugin_lib *l, const fam_list fam[N_FAM], const check_args *args)
{
    sim_err err = {{0}};
    run_summary base, ref;
    if (run_once(args, NULL, NULL, NULL, &base, &err)) {
        fprintf(stderr, "servesim: plugin check: the base config: %s\n", err.msg);
        return 2;
    }
    int failed = 0, checked = 0;
    for (int f = 0; f < N_FAM; f++) {
        if ((args->family && strcmp(args->family, fam[f].key)) || !fam[f].n)
            continue;
        ref = base;
        if (fam[f].ref_extra && !args->file &&
            run_once(args, fam[f].extra, NULL, NULL, &ref, &err)) {
            fprintf(stderr, "servesim: plugin check: the base config for %s: %s\n",
                    fam[f].label, err.msg);
            return 2;
        }
        for (int i = 0; i < fam[f].n; i++) {
            char name[1100];
            snprintf(name, sizeof name, "%s:%s", l->path, fam[f].names[i]);
            run_summary a, b;
            const char *why = NULL;
            if (run_once(args, fam[f].extra, fam[f].key, name, &a, &err) ||
                run_once(args, fam[f].extra, fam[f].key, name, &b, &err))
                why = err.msg;
            else if (a.completed != a.arrived)
                why = "not every request completed";
            else if (a.output_tokens != ref.output_tokens)
                why = "output tokens differ from the built-in defaults' (not conserved)";
            else if (memcmp(&a, &b, sizeof a) != 0)
                why = "two runs differ (not deterministic)";
            checked++;
            if (why) {
                failed++;
                printf("  FAIL %-10s %s: %s\n", fam[f].label, fam[f].names[i], why);
            } else {
                printf("  ok   %-10s %s: %llu requests, %llu output tokens, deterministic\n",
                       fam[f].label, fam[f].names[i], (unsigned long long)a.completed,
                       (unsigned long long)a.output_tokens);
            }
        }
    }
    printf("%d of %d policies passed\n", checked - failed, checked);
    return failed ? 1 : 0;
}

/* The folder holding api/plugin.h: the installed include/servesim beside the
 * program's bin/, or the source tree it was built from. */
static int include_dir(char *out, size_t size)
{
    char exe[PATH_MAX], cand[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        snprintf(cand, sizeof cand, "%s/../include/servesim/api/plugin.h", exe);
        if (access(cand, R_OK) == 0) {
            snprintf(out, size, "%s/../include/servesim", exe);
            return 0;
        }
    }
    snprintf(cand, sizeof cand, "%s/api/plugin.h", SERVESIM_SOURCE_DIR);
    if (access(cand, R_OK) == 0) {
        snprintf(out, size, "%s", SERVESIM_SOURCE_DIR);
        return 0;
    }
    return -1;
}

/* `plugin build SRC.c [-o OUT] [flags]`: runs the compiler, as the
 * walkthrough's cc line does. */
static int build(int argc, char **argv)
{
    const char *src = argv[1], *out = NULL;
    size_t len = strlen(src);
    if (len < 3 || strcmp(src + len - 2, ".c") != 0) {
        fprintf(stderr, "servesim: plugin build: expected a C file (.c), got '%s'\n", src);
        return 2;
    }
    char inc[PATH_MAX + 32], def_out[PATH_MAX + 16];
    if (include_dir(inc, sizeof inc)) {
        fprintf(stderr, "servesim: plugin build: cannot find api/plugin.h (neither an installed "
                        "include/servesim nor %s)\n", SERVESIM_SOURCE_DIR);
        return 2;
    }
    /* lib<stem>.so beside the source. */
    const char *base = strrchr(src, '/');
    int dir_len = base ? (int)(base - src + 1) : 0;
    base = base ? base + 1 : src;
    snprintf(def_out, sizeof def_out, "%.*slib%.*s.so", dir_len, src,
             (int)(strlen(base) - 2), base);
    const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
    char inc_flag[PATH_MAX + 40];
    snprintf(inc_flag, sizeof inc_flag, "-I%s", inc);
    const char **av = sim_xcalloc((size_t)argc + 16, sizeof *av);
    int k = 0;
    av[k++] = cc;
    av[k++] = "-std=c11";
    av[k++] = "-O2";
    av[k++] = "-fPIC";
    av[k++] = "-shared";
    av[k++] = "-fvisibility=hidden";
    av[k++] = inc_flag;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc)
            out = argv[++i];
        else
            av[k++] = argv[i];
    }
    av[k++] = "-o";
    av[k++] = out ? out : def_out;
    av[k++] = src;
    av[k] = NULL;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execvp(cc, (char *const *)av);
        fprintf(stderr, "servesim: plugin build: cannot run %s: %s\n", cc, strerror(errno));
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0) {
        fprintf(stderr, "servesim: plugin build: cannot run %s: %s\n", cc, strerror(errno));
        free(av);
        return 1;
    }
    free(av);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "servesim: plugin build: %s failed on %s\n", cc, src);
        return 1;
    }
    printf("%s\n", out ? out : def_out);
    return 0;
}

int cmd_plugin(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[0], "build"))
        return build(argc, argv);
    if (argc < 2 || (strcmp(argv[0], "info") && strcmp(argv[0], "check"))) {
        fputs(plugin_usage, argc >= 1 && !strcmp(argv[0], "--help") ? stdout : stderr);
        return argc >= 1 && !strcmp(argv[0], "--help") ? 0 : 2;
    }
    int is_check = !strcmp(argv[0], "check");
    check_args a = {.sets = sim_xcalloc((size_t)argc, sizeof(char *))};
    for (int i = 2; i < argc; i++) {
        if (is_check && i + 1 < argc && !strcmp(argv[i], "--config")) {
            a.file = argv[++i];
        } else if (is_check && i + 1 < argc && !strcmp(argv[i], "--family")) {
            a.family = argv[++i];
            if (strcmp(a.family, "batch") && strcmp(a.family, "order") &&
                strcmp(a.family, "routing") && strcmp(a.family, "control") &&
                strcmp(a.family, "eviction") && strcmp(a.family, "scale") &&
                strcmp(a.family, "retention")) {
                fprintf(stderr, "servesim: plugin check: --family: expected batch, order, "
                                "routing, control, eviction, scale or retention, got '%s'\n",
                        a.family);
                free(a.sets);
                return 2;
            }
        } else if (is_check && i + 1 < argc && !strcmp(argv[i], "--params")) {
            a.params = argv[++i];
        } else if (is_check && i + 1 < argc && !strcmp(argv[i], "--set")) {
            a.sets[a.n_sets++] = argv[++i];
        } else {
            fprintf(stderr, "servesim: plugin %s: unexpected argument '%s'\n%s", argv[0],
                    argv[i], plugin_usage);
            free(a.sets);
            return 2;
        }
    }
    const plugin_lib *l;
    sim_err err = {{0}};
    if (plugin_load(argv[1], &l, &err)) {
        fprintf(stderr, "servesim: %s\n", err.msg);
        free(a.sets);
        return 2;
    }
    fam_list fam[N_FAM];
    list_families(l, fam);
    print_info(l, fam);
    int status = is_check ? check(l, fam, &a) : 0;
    free(a.sets);
    return status;
}
