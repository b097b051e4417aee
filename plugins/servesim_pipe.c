/* The Python bridge as a subprocess: a servesim plugin (api/plugin.h) that
 * runs an ordering or routing policy class in a separate Python process,
 * for environments where the embedded bridge (servesim_py.c) cannot be
 * used: another Python than the one servesim's bridge was built against, a
 * virtual environment with packages built for it (torch), or a policy that
 * should not share servesim's process. Links no libpython.
 *
 *   "routing": {"name": "servesim_pipe:python",
 *               "params": {"module": "policies", "class": "LeastOutstandingTokens",
 *                          "path": "examples/python", "python": "/usr/bin/python3"}}
 *
 * params as servesim_py's (module, class, path, args, seed for routing),
 * plus python: the interpreter to run (default python3 on $PATH). The same
 * classes run unchanged: the child gives them a request object with the
 * same attributes, inst as an array of 64-bit words (inst[i * INST_WORDS +
 * OUTSTANDING_TOKENS]) and candidates as an array of ints; a module that
 * imports servesim gets a stand-in with the constants.
 *
 * Protocol (version 1), JSON lines over a socket pair, one message in
 * flight: the child starts with `python -c <RUNNER> module class path seed
 * setup args`, imports and makes the instance, and answers {"protocol": 1}
 * or {"error": text}. Then each call is one line, {"k": req} or {"r": now,
 * "i": words, "c": candidates, "q": req}, answered by {"v": value} or
 * {"error": traceback}. A request travels as the list of serve_req's
 * fields in RUNNER's order. Numbers are exact both ways (integers as
 * integers, keys as Python's shortest round-trip repr, read with strtod).
 * The child sees only simulated time; PYTHONHASHSEED is 0 and `random` is
 * seeded with the policy's seed. An error or a dead child aborts the run
 * with its message, as the embedded bridge does.
 *
 * One child per policy instance (one ordering policy per serving instance,
 * one routing policy per pool); each costs a Python start. */
#define _GNU_SOURCE 1
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/plugin.h"

SERVESIM_PLUGIN_ABI;

static const servesim_host_api *host;

/* The child: reads the policy, then one request per line. */
static const char runner[] =
    "import json, random, sys, traceback, types\n"
    "from array import array\n"
    "F = ('state computed_tokens generated_tokens input_tokens output_tokens kv_blocks '\n"
    "     'kv_cap_tokens layers_done instance swapped_blocks last_token_ns tbt_max_ns '\n"
    "     'energy_j id arrival_ns priority slo_class tenant preemptions pool ttft_deadline_ns '\n"
    "     'order_key admit_seq first_scheduled_ns first_token_ns cached_tokens moves '\n"
    "     'prefix_group').split()\n"
    "class Request(types.SimpleNamespace):\n"
    "    @property\n"
    "    def pending_tokens(self):\n"
    "        return self.input_tokens + self.generated_tokens - self.computed_tokens\n"
    "    @property\n"
    "    def is_decode(self):\n"
    "        return self.generated_tokens > 0 and self.pending_tokens == 1\n"
    "def req(v):\n"
    "    return Request(**dict(zip(F, v)))\n"
    "sv = types.ModuleType('servesim')\n"
    "sv.INST_WORDS, sv.OUTSTANDING_TOKENS, sv.KV_FREE_BLOCKS = 6, 2, 3\n"
    "sv.KV_TOTAL_BLOCKS, sv.KV_CACHED_BLOCKS, sv.INST_SIZE = 4, 5, 48\n"
    "sv.INST_FORMAT = '=iiiiqqqq'\n"
    "sv.INST_FIELDS = ('pool', 'state', 'n_waiting', 'n_running', 'outstanding_tokens',\n"
    "                  'kv_free_blocks', 'kv_total_blocks', 'kv_cached_blocks')\n"
    "sv.Request = Request\n"
    "sys.modules['servesim'] = sv\n"
    "out = sys.stdout\n"
    "def send(o):\n"
    "    out.write(json.dumps(o) + '\\n')\n"
    "    out.flush()\n"
    "try:\n"
    "    module, cls, path, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])\n"
    "    setup, args = json.loads(sys.argv[5]), json.loads(sys.argv[6])\n"
    "    for d in reversed([d for d in path.split(':') if d]):\n"
    "        if d not in sys.path:\n"
    "            sys.path.insert(0, d)\n"
    "    random.seed(seed)\n"
    "    pol = getattr(__import__(module), cls)(args, seed, setup)\n"
    "    key, route = getattr(pol, 'key', None), getattr(pol, 'route', None)\n"
    "except BaseException as e:\n"
    "    send({'error': '%s: %s' % (type(e).__name__, e)})\n"
    "    sys.exit(0)\n"
    "send({'protocol': 1})\n"
    "for line in sys.stdin:\n"
    "    m = json.loads(line)\n"
    "    try:\n"
    "        if 'k' in m:\n"
    "            v = float(key(req(m['k'])))\n"
    "        else:\n"
    "            v = int(route(m['r'], array('q', m['i']), array('i', m['c']), req(m['q'])))\n"
    "        send({'v': v})\n"
    "    except BaseException:\n"
    "        send({'error': traceback.format_exc()})\n";

typedef struct pipepol {
    pid_t pid;
    int fd;              /* our end of the socket pair */
    char *buf;           /* outgoing line, and the reply */
    size_t cap;
    char what[256];      /* "module.Class" */
} pipepol;

static _Noreturn void pipe_fatal(const pipepol *p, const char *why, const char *detail)
{
    fprintf(stderr, "%s%sservesim: Python policy %s (subprocess): %s; aborting\n",
            detail ? detail : "", detail && *detail && detail[strlen(detail) - 1] != '\n'
                                      ? "\n" : "", p->what, why);
    fflush(stderr);
    abort();
}

/* Appends to the outgoing line. */
static void put(pipepol *p, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void put(pipepol *p, size_t *len, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(p->buf + *len, p->cap - *len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < p->cap - *len) {
            *len += (size_t)n;
            return;
        }
        size_t cap = 2 * p->cap + (size_t)(n > 0 ? n : 0);
        char *b = realloc(p->buf, cap);
        if (!b)
            pipe_fatal(p, "out of memory", NULL);
        p->buf = b;
        p->cap = cap;
    }
}

static void put_req(pipepol *p, size_t *len, const serve_req *r)
{
    put(p, len,
        "[%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%lld,%lld,%.17g,%llu,%lld,%d,%d,%d,%d,%d,%lld,%.17g,"
        "%llu,%lld,%lld,%d,%d,%llu]",
        (int)r->state, r->computed_tokens, r->generated_tokens, r->input_tokens,
        r->output_tokens, r->kv_blocks, r->kv_cap_tokens, r->layers_done, r->instance,
        r->swapped_blocks, (long long)r->last_token_ns, (long long)r->tbt_max_ns, r->energy_j,
        (unsigned long long)r->id, (long long)r->arrival_ns, r->priority, r->slo_class,
        r->tenant, r->preemptions, r->pool, (long long)r->ttft_deadline_ns, r->order_key,
        (unsigned long long)r->admit_seq, (long long)r->first_scheduled_ns,
        (long long)r->first_token_ns, r->cached_tokens, r->moves,
        (unsigned long long)r->prefix_group);
}

/* Sends buf[0..len) and a newline; reads one reply line into buf (NUL
 * terminated, no newline). Returns 0, or -1 when the child is gone. */
static int exchange(pipepol *p, size_t len)
{
    put(p, &len, "\n");
    for (size_t off = 0; off < len;) {
        ssize_t n = send(p->fd, p->buf + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    size_t got = 0;
    for (;;) {
        if (got + 1 >= p->cap) {
            char *b = realloc(p->buf, 2 * p->cap);
            if (!b)
                pipe_fatal(p, "out of memory", NULL);
            p->buf = b;
            p->cap *= 2;
        }
        ssize_t n = recv(p->fd, p->buf + got, p->cap - 1 - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
        if (p->buf[got - 1] == '\n') {   /* one message in flight: the reply ends here */
            p->buf[got - 1] = '\0';
            return 0;
        }
    }
}

/* The reply's value ("v") as a number; aborts on an error reply. */
static double reply_value(pipepol *p)
{
    if (strncmp(p->buf, "{\"v\": ", 6) != 0) {
        cJSON *j = cJSON_Parse(p->buf);
        const cJSON *e = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
        char detail[8192];
        snprintf(detail, sizeof detail, "%s", cJSON_IsString(e) ? e->valuestring : p->buf);
        cJSON_Delete(j);
        pipe_fatal(p, "raised an exception", detail);
    }
    return strtod(p->buf + 6, NULL);
}

static void pipepol_free(pipepol *p)
{
    if (!p)
        return;
    if (p->fd >= 0)
        close(p->fd);   /* the child reads end of file and exits */
    if (p->pid > 0)
        waitpid(p->pid, NULL, 0);
    free(p->buf);
    free(p);
}

static int pipepol_init(cJSON *params, const char *path, uint64_t seed, const char *setup,
                        int seed_param, void **state, sim_err *err)
{
    static const char *const keys[] = {"module", "class", "path", "args", "python", "seed",
                                       NULL};
    static const char *const keys_noseed[] = {"module", "class", "path", "args", "python",
                                              NULL};
    const char *module, *cls, *dir, *python;
    cJSON *args;
    char args_path[256];
    int64_t seed_in = 0;
    *state = NULL;
    if (host->check_keys(params, path, seed_param ? keys : keys_noseed, err) ||
        host->str(params, path, "module", NULL, &module, err) ||
        host->str(params, path, "class", NULL, &cls, err) ||
        host->str(params, path, "path", "", &dir, err) ||
        host->str(params, path, "python", "python3", &python, err) ||
        host->obj(params, path, "args", &args, args_path, err) ||
        (seed_param && host->integer(params, path, "seed", 0, 0, INT64_MAX, &seed_in, err)))
        return -1;
    if (seed_param)
        seed = host->stream_seed((uint64_t)seed_in, seed);
    pipepol *p = calloc(1, sizeof *p);
    if (!p)
        return host->errf(err, "%s: out of memory", path);
    p->fd = -1;
    snprintf(p->what, sizeof p->what, "%s.%s", module, cls);
    p->cap = 4096;
    if (!(p->buf = malloc(p->cap))) {
        free(p);
        return host->errf(err, "%s: out of memory", path);
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        pipepol_free(p);
        return host->errf(err, "%s: socketpair: %s", path, strerror(errno));
    }
    char seed_text[32];
    snprintf(seed_text, sizeof seed_text, "%llu", (unsigned long long)seed);
    char *args_json = host->json_text(args);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* The child: the socket as stdin and stdout, nothing else open. */
        dup2(sv[1], 0);
        dup2(sv[1], 1);
        setenv("PYTHONHASHSEED", "0", 1);
        setenv("PYTHONDONTWRITEBYTECODE", "1", 1);
        signal(SIGINT, SIG_IGN);   /* servesim handles Ctrl-C; the child ends with it */
        execlp(python, python, "-c", runner, module, cls, dir, seed_text, setup, args_json,
               (char *)NULL);
        fprintf(stderr, "servesim: cannot run %s: %s\n", python, strerror(errno));
        _exit(127);
    }
    host->free_text(args_json);
    close(sv[1]);
    p->fd = sv[0];
    p->pid = pid;
    if (pid < 0) {
        pipepol_free(p);
        return host->errf(err, "%s: fork: %s", path, strerror(errno));
    }
    /* The hello: the child imported the module and made the instance. */
    size_t got = 0;
    int ok = 0;
    for (;;) {
        ssize_t n = recv(p->fd, p->buf + got, p->cap - 1 - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
        if (p->buf[got - 1] == '\n' || got + 1 >= p->cap) {
            p->buf[got - 1] = '\0';
            ok = 1;
            break;
        }
    }
    if (!ok) {
        pipepol_free(p);
        return host->errf(err, "%s: the Python subprocess (%s) exited before it answered",
                          path, python);
    }
    if (strcmp(p->buf, "{\"protocol\": 1}") != 0) {
        cJSON *j = cJSON_Parse(p->buf);
        const cJSON *e = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
        host->errf(err, "%s: the policy could not be made: %s", path,
                   cJSON_IsString(e) ? e->valuestring : p->buf);
        cJSON_Delete(j);
        pipepol_free(p);
        return -1;
    }
    *state = p;
    return 0;
}

static void pipepol_destroy(void *state) { pipepol_free(state); }

/* ---- ordering ---------------------------------------------------------------------- */

static int pipe_order_init(uint64_t seed, cJSON *params, const char *path, void **state,
                           sim_err *err)
{
    return pipepol_init(params, path, seed, "{}", 0, state, err);
}

static double pipe_key(void *state, const serve_req *r)
{
    pipepol *p = state;
    size_t len = 0;
    put(p, &len, "{\"k\": ");
    put_req(p, &len, r);
    put(p, &len, "}");
    if (exchange(p, len))
        pipe_fatal(p, "the subprocess died", NULL);
    return reply_value(p);
}

/* ---- routing ------------------------------------------------------------------------ */

static int pipe_route_init(const route_setup *setup, cJSON *params, const char *path,
                           void **state, sim_err *err)
{
    char s[128];
    snprintf(s, sizeof s, "{\"pool\": %d, \"block_size_tokens\": %d}", setup->pool,
             setup->block_size_tokens);
    return pipepol_init(params, path, (uint64_t)setup->pool, s, 1, state, err);
}

static int32_t pipe_route(void *state, const route_view *v, const serve_req *r)
{
    pipepol *p = state;
    size_t len = 0;
    put(p, &len, "{\"r\": %lld, \"i\": [", (long long)v->now);
    const int64_t *w = (const int64_t *)(const void *)v->inst;   /* 6 words each */
    for (int32_t k = 0; k < v->n_instances * 6; k++)
        put(p, &len, "%s%lld", k ? "," : "", (long long)w[k]);
    put(p, &len, "], \"c\": [");
    for (int32_t k = 0; k < v->n_candidates; k++)
        put(p, &len, "%s%d", k ? "," : "", v->candidates[k]);
    put(p, &len, "], \"q\": ");
    put_req(p, &len, r);
    put(p, &len, "}");
    if (exchange(p, len))
        pipe_fatal(p, "the subprocess died", NULL);
    double x = reply_value(p);
    for (int32_t k = 0; k < v->n_candidates; k++)
        if ((double)v->candidates[k] == x)
            return v->candidates[k];
    char why[96];
    snprintf(why, sizeof why, "returned %.17g, which is not one of the candidates", x);
    pipe_fatal(p, why, NULL);
}

/* ---- the entry point --------------------------------------------------------------- */

_Static_assert(sizeof(inst_view) == 6 * sizeof(int64_t), "inst_view is 6 words");

static const order_policy_ops pipe_order = {
    .name = "python",
    .init = pipe_order_init,
    .key = pipe_key,
    .destroy = pipepol_destroy,
};

static const route_policy_ops pipe_routing = {
    .name = "python",
    .init = pipe_route_init,
    .route = pipe_route,
    .destroy = pipepol_destroy,
};

static const order_policy_ops *const orders[] = {&pipe_order, NULL};
static const route_policy_ops *const routes[] = {&pipe_routing, NULL};

SERVESIM_EXPORT const servesim_plugin *servesim_plugin_entry(const servesim_host_api *h)
{
    static const servesim_plugin plugin = {
        SERVESIM_PLUGIN_HEADER,
        .name = "servesim_pipe",
        .version = "1.0 (protocol 1)",
        .order = orders,
        .route = routes,
    };
    host = h;
    return &plugin;
}
