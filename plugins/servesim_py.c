/* The Python bridge: a servesim plugin (api/plugin.h) that embeds CPython
 * and runs a policy class from a Python module, for the ordering and routing
 * families. Built as build/plugins/libservesim_py.so when Debian's
 * python3-dev is there (mk/deps.sh); servesim itself never links libpython.
 *
 *   "policies": {"order":   {"name": "servesim_py:python",
 *                            "params": {"module": "policies", "class": "SJF",
 *                                       "path": "examples/python", "args": {}}},
 *                "routing": {"name": "servesim_py:python", "params": {...}}}
 *
 * params: module (imported after `path`, if given: folders separated by
 * ':', put first on sys.path), class, args (an object handed to the class as a dict), seed
 * (routing only: mixed with the pool's index; ordering policies get the
 * host's per-instance seed). The class mirrors the ops:
 *
 *   __init__(self, args: dict, seed: int, setup: dict)
 *       setup: {} for ordering; {"pool", "block_size_tokens"} for routing
 *   key(self, req) -> float                                  (ordering)
 *   route(self, now_ns, inst, candidates, req) -> int        (routing)
 *
 * req is a servesim.Request: read-only attributes named as serve_req's
 * fields (api/request.h), read from the core's request, valid only during
 * the call. inst is a read-only memoryview over the core's inst_view array
 * (api/cluster.h), no copy made, as 64-bit words, servesim.INST_WORDS per
 * instance: inst[i * INST_WORDS + OUTSTANDING_TOKENS] (or KV_FREE_BLOCKS,
 * KV_TOTAL_BLOCKS, KV_CACHED_BLOCKS) reads one field, and
 * struct.unpack_from(INST_FORMAT, inst, i * INST_SIZE) all of instance i
 * (fields INST_FIELDS). candidates is a memoryview of int32 instance
 * indices.
 *
 * Determinism: the interpreter starts isolated from the environment
 * (PYTHON* variables, the user's site folder), with hash randomisation off
 * (hash seed 0); module-level `random` is seeded with each policy's seed
 * as the policy is made (a policy should still prefer its own
 * random.Random(seed)). It starts at the first Python policy's init: in a
 * sweep, the parent builds every point's cluster to check it, so the
 * forked workers inherit a started interpreter (fork from a process with
 * one thread is safe in CPython). Policy state belongs in the instance:
 * module globals outlive a point and would make results depend on which
 * points a worker ran before.
 *
 * A Python exception in __init__ is a config error (its message is
 * returned); one in key or route, or a route that is not a candidate, is a
 * policy bug: the traceback is printed and the run aborts, as a built-in
 * policy's invalid plan does. */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE 1   /* dladdr */
#include <Python.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/plugin.h"

SERVESIM_PLUGIN_ABI;

static const servesim_host_api *host;

/* ---- servesim.Request: a view of one request ---------------------------------- */

typedef struct pyreq {
    PyObject_HEAD
    const serve_req *r;   /* NULL outside a call */
} pyreq;

enum { F_I32, F_I64, F_U64, F_F64 };
typedef struct req_field {
    const char *name;
    size_t off;
    int kind;
} req_field;

#define RF(f, k) {#f, offsetof(serve_req, f), k}
static const req_field req_fields[] = {
    RF(state, F_I32), RF(computed_tokens, F_I32), RF(generated_tokens, F_I32),
    RF(input_tokens, F_I32), RF(output_tokens, F_I32), RF(kv_blocks, F_I32),
    RF(kv_cap_tokens, F_I32), RF(layers_done, F_I32), RF(instance, F_I32),
    RF(swapped_blocks, F_I32), RF(last_token_ns, F_I64), RF(tbt_max_ns, F_I64),
    RF(energy_j, F_F64), RF(id, F_U64), RF(arrival_ns, F_I64), RF(priority, F_I32),
    RF(slo_class, F_I32), RF(tenant, F_I32), RF(preemptions, F_I32), RF(pool, F_I32),
    RF(ttft_deadline_ns, F_I64), RF(order_key, F_F64), RF(admit_seq, F_U64),
    RF(first_scheduled_ns, F_I64), RF(first_token_ns, F_I64), RF(cached_tokens, F_I32),
    RF(moves, F_I32), RF(prefix_group, F_U64),
};
#undef RF
#define N_REQ_FIELDS (sizeof req_fields / sizeof req_fields[0])

static PyObject *pyreq_get(PyObject *self, void *closure)
{
    const pyreq *p = (const pyreq *)self;
    const req_field *f = closure;
    if (!p->r) {
        PyErr_SetString(PyExc_RuntimeError,
                        "servesim.Request used outside the call it was passed to");
        return NULL;
    }
    const char *base = (const char *)p->r + f->off;
    switch (f->kind) {
    case F_I32: return PyLong_FromLong(*(const int32_t *)base);
    case F_I64: return PyLong_FromLongLong(*(const int64_t *)base);
    case F_U64: return PyLong_FromUnsignedLongLong(*(const uint64_t *)base);
    default: return PyFloat_FromDouble(*(const double *)base);
    }
}

static PyGetSetDef pyreq_getset[N_REQ_FIELDS + 1];
static PyTypeObject *pyreq_type;

static PyObject *pyreq_new(void)
{
    pyreq *p = PyObject_New(pyreq, pyreq_type);
    if (p)
        p->r = NULL;
    return (PyObject *)p;
}

/* inst_view as 64-bit words: the Python side indexes them. */
#define INST_WORDS 6
_Static_assert(sizeof(inst_view) == INST_WORDS * 8, "servesim.INST_FORMAT describes inst_view");
_Static_assert(offsetof(inst_view, outstanding_tokens) == 2 * 8 &&
               offsetof(inst_view, kv_free_blocks) == 3 * 8 &&
               offsetof(inst_view, kv_total_blocks) == 4 * 8 &&
               offsetof(inst_view, kv_cached_blocks) == 5 * 8, "word indices of inst_view");

/* ---- the servesim module -------------------------------------------------------- */

static struct PyModuleDef servesim_module = {
    PyModuleDef_HEAD_INIT, .m_name = "servesim",
    .m_doc = "What servesim's Python bridge passes to policies (plugins/servesim_py.c).",
    .m_size = -1,
};

static PyObject *servesim_module_init(void)
{
    for (size_t i = 0; i < N_REQ_FIELDS; i++)
        pyreq_getset[i] = (PyGetSetDef){(char *)req_fields[i].name, pyreq_get, NULL, NULL,
                                        (void *)&req_fields[i]};
    PyType_Slot slots[] = {{Py_tp_getset, pyreq_getset},
                           {Py_tp_doc, (void *)"A request as policies see it (read-only)."},
                           {0, NULL}};
    PyType_Spec spec = {"servesim.Request", sizeof(pyreq), 0, Py_TPFLAGS_DEFAULT, slots};
    PyObject *m = PyModule_Create(&servesim_module);
    if (!m)
        return NULL;
    pyreq_type = (PyTypeObject *)PyType_FromSpec(&spec);
    if (!pyreq_type || PyModule_AddObjectRef(m, "Request", (PyObject *)pyreq_type) < 0 ||
        PyModule_AddStringConstant(m, "INST_FORMAT", "=iiiiqqqq") < 0 ||
        PyModule_AddIntConstant(m, "INST_SIZE", (long)sizeof(inst_view)) < 0 ||
        PyModule_AddObject(m, "INST_FIELDS",
                           Py_BuildValue("(ssssssss)", "pool", "state", "n_waiting",
                                         "n_running", "outstanding_tokens", "kv_free_blocks",
                                         "kv_total_blocks", "kv_cached_blocks")) < 0 ||
        PyModule_AddIntConstant(m, "INST_WORDS", INST_WORDS) < 0 ||
        PyModule_AddIntConstant(m, "OUTSTANDING_TOKENS", 2) < 0 ||
        PyModule_AddIntConstant(m, "KV_FREE_BLOCKS", 3) < 0 ||
        PyModule_AddIntConstant(m, "KV_TOTAL_BLOCKS", 4) < 0 ||
        PyModule_AddIntConstant(m, "KV_CACHED_BLOCKS", 5) < 0 ||
        PyModule_AddIntConstant(m, "ABI_MAJOR", SERVESIM_ABI_MAJOR) < 0 ||
        PyModule_AddIntConstant(m, "ABI_MINOR", SERVESIM_ABI_MINOR) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/* ---- the interpreter ------------------------------------------------------------ */

/* The last exception as "Type: message" into err (and clears it). */
static int py_err(sim_err *err, const char *path, const char *what)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *s = value ? PyObject_Str(value) : NULL;
    const char *msg = s ? PyUnicode_AsUTF8(s) : NULL;
    host->errf(err, "%s: %s: %s: %s", path, what,
               type ? ((PyTypeObject *)type)->tp_name : "error", msg ? msg : "?");
    Py_XDECREF(s);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    PyErr_Clear();
    return -1;
}

static int py_start(const char *path, sim_err *err)
{
    if (Py_IsInitialized())
        return pyreq_type ? 0 : host->errf(err, "%s: Python started without the servesim "
                                           "module", path);
    /* Extension modules in lib-dynload resolve Py* symbols globally: make
     * the libpython this plugin loaded (RTLD_LOCAL) global. */
    Dl_info info;
    if (dladdr((void *)Py_InitializeFromConfig, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    if (PyImport_AppendInittab("servesim", servesim_module_init) < 0)
        return host->errf(err, "%s: cannot register the servesim module", path);
    PyConfig cfg;
    PyConfig_InitIsolatedConfig(&cfg);
    cfg.use_hash_seed = 1;
    cfg.hash_seed = 0;
    cfg.install_signal_handlers = 0;   /* servesim's own handlers stay */
    cfg.site_import = 1;               /* the system's packages (numpy), not the user's */
    PyStatus st = Py_InitializeFromConfig(&cfg);
    PyConfig_Clear(&cfg);
    if (PyStatus_Exception(st))
        return host->errf(err, "%s: cannot start Python: %s", path,
                          st.err_msg ? st.err_msg : "?");
    /* The servesim module makes the Request type, which every policy needs
     * whether its module imports servesim or not. */
    PyObject *m = PyImport_ImportModule("servesim");
    if (!m)
        return py_err(err, path, "cannot import the servesim module");
    Py_DECREF(m);
    return 0;
}

/* ---- one Python policy ------------------------------------------------------------ */

typedef struct pypol {
    PyObject *obj;     /* the policy instance */
    PyObject *meth;    /* its bound key or route */
    pyreq *req;        /* repointed every call */
    const char *what;  /* "module.Class.key" for messages */
    char what_buf[256];
} pypol;

static _Noreturn void py_fatal(const pypol *p, const char *why)
{
    if (PyErr_Occurred())
        PyErr_Print();
    fprintf(stderr, "servesim: Python policy %s: %s; aborting\n", p->what, why);
    fflush(stderr);
    abort();
}

static void pypol_free(pypol *p)
{
    if (!p)
        return;
    Py_XDECREF(p->meth);
    Py_XDECREF(p->obj);
    Py_XDECREF((PyObject *)p->req);
    free(p);
}

/* After a call: the request view no longer reads; one the policy kept is
 * left to it (its reads raise) and the next call gets a fresh one. */
static void req_done(pypol *p)
{
    p->req->r = NULL;
    if (Py_REFCNT((PyObject *)p->req) > 1) {
        PyObject *etype, *evalue, *etb;
        PyErr_Fetch(&etype, &evalue, &etb);
        Py_DECREF((PyObject *)p->req);
        if (!(p->req = (pyreq *)pyreq_new()))
            py_fatal(p, "cannot make a request view");
        PyErr_Restore(etype, evalue, etb);
    }
}

/* Reads params, imports the module and makes the instance; `method` is
 * "key" or "route". */
static int pypol_init(cJSON *params, const char *path, uint64_t seed, PyObject *setup,
                      const char *method, int seed_param, void **state, sim_err *err)
{
    static const char *const keys[] = {"module", "class", "path", "args", "seed", NULL};
    static const char *const keys_noseed[] = {"module", "class", "path", "args", NULL};
    const char *module, *cls, *dir;
    cJSON *args;
    char args_path[256];
    int64_t seed_in = 0;
    *state = NULL;
    if (host->check_keys(params, path, seed_param ? keys : keys_noseed, err) ||
        host->str(params, path, "module", NULL, &module, err) ||
        host->str(params, path, "class", NULL, &cls, err) ||
        host->str(params, path, "path", "", &dir, err) ||
        host->obj(params, path, "args", &args, args_path, err) ||
        (seed_param && host->integer(params, path, "seed", 0, 0, INT64_MAX, &seed_in, err)) ||
        py_start(path, err)) {
        Py_XDECREF(setup);
        return -1;
    }
    if (seed_param)
        seed = host->stream_seed((uint64_t)seed_in, seed);
    pypol *p = calloc(1, sizeof *p);
    if (!p) {
        Py_XDECREF(setup);
        return host->errf(err, "%s: out of memory", path);
    }
    snprintf(p->what_buf, sizeof p->what_buf, "%s.%s.%s", module, cls, method);
    p->what = p->what_buf;
    char *args_json = host->json_text(args);
    PyObject *sys_path = NULL, *mod = NULL, *klass = NULL, *json = NULL, *argd = NULL;
    int rc = -1;
    /* path: folders separated by ':', first on sys.path in their order (a
     * virtual environment's site-packages may be one), each added once: a
     * sweep worker or a capacity search makes many policies. */
    sys_path = PySys_GetObject("path");   /* borrowed */
    if (*dir) {
        size_t n = strlen(dir);
        int pos = 0, bad = !sys_path;
        for (size_t a = 0; a <= n && !bad;) {
            size_t b = a;
            while (b < n && dir[b] != ':')
                b++;
            if (b > a) {
                PyObject *d = PyUnicode_FromStringAndSize(dir + a, (Py_ssize_t)(b - a));
                int has = d ? PySequence_Contains(sys_path, d) : -1;
                bad = has < 0 || (!has && PyList_Insert(sys_path, pos++, d) < 0);
                Py_XDECREF(d);
            }
            a = b + 1;
        }
        if (bad) {
            py_err(err, path, "cannot extend sys.path");
            goto out;
        }
    }
    /* Module-level `random` restarts from this policy's seed, so that a
     * point's results do not depend on which points a sweep worker ran
     * before it. */
    PyObject *rnd = PyImport_ImportModule("random");
    PyObject *rs = rnd ? PyObject_CallMethod(rnd, "seed", "K", (unsigned long long)seed) : NULL;
    Py_XDECREF(rnd);
    if (!rs) {
        py_err(err, path, "cannot seed Python's random module");
        goto out;
    }
    Py_DECREF(rs);
    if (!(json = PyImport_ImportModule("json")) ||
        !(argd = PyObject_CallMethod(json, "loads", "s", args_json))) {
        py_err(err, args_path, "cannot read the args");
        goto out;
    }
    if (!(mod = PyImport_ImportModule(module))) {
        py_err(err, path, "cannot import the module");
        goto out;
    }
    if (!(klass = PyObject_GetAttrString(mod, cls))) {
        py_err(err, path, "no such class in the module");
        goto out;
    }
    if (!(p->obj = PyObject_CallFunction(klass, "OKO", argd, (unsigned long long)seed,
                                         setup))) {
        py_err(err, path, "the policy's __init__ failed");
        goto out;
    }
    if (!(p->meth = PyObject_GetAttrString(p->obj, method)) || !PyCallable_Check(p->meth)) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "%s.%s is not callable", cls, method);
        py_err(err, path, "the policy lacks its method");
        goto out;
    }
    if (!(p->req = (pyreq *)pyreq_new())) {
        py_err(err, path, "cannot make a request view");
        goto out;
    }
    rc = 0;
out:
    host->free_text(args_json);
    Py_XDECREF(setup);
    Py_XDECREF(json);
    Py_XDECREF(argd);
    Py_XDECREF(mod);
    Py_XDECREF(klass);
    if (rc) {
        pypol_free(p);
        return -1;
    }
    *state = p;
    return 0;
}

static void pypol_destroy(void *state) { pypol_free(state); }

/* ---- ordering ---------------------------------------------------------------------- */

static int py_order_init(uint64_t seed, cJSON *params, const char *path, void **state,
                         sim_err *err)
{
    if (!Py_IsInitialized() && py_start(path, err))
        return -1;
    return pypol_init(params, path, seed, PyDict_New(), "key", 0, state, err);
}

static double py_key(void *state, const serve_req *r)
{
    pypol *p = state;
    p->req->r = r;
    PyObject *k = PyObject_CallOneArg(p->meth, (PyObject *)p->req);
    req_done(p);
    if (!k)
        py_fatal(p, "raised an exception");
    double key = PyFloat_AsDouble(k);
    Py_DECREF(k);
    if (key == -1.0 && PyErr_Occurred())
        py_fatal(p, "returned something other than a number");
    return key;
}

/* ---- routing ---------------------------------------------------------------------- */

static int py_route_init(const route_setup *setup, cJSON *params, const char *path,
                         void **state, sim_err *err)
{
    if (!Py_IsInitialized() && py_start(path, err))
        return -1;
    PyObject *s = Py_BuildValue("{s:i,s:i}", "pool", setup->pool, "block_size_tokens",
                                setup->block_size_tokens);
    if (!s)
        return py_err(err, path, "cannot make the setup");
    return pypol_init(params, path, (uint64_t)setup->pool, s, "route", 1, state, err);
}

static int32_t py_route(void *state, const route_view *v, const serve_req *r)
{
    pypol *p = state;
    Py_buffer cb = {
        .buf = (void *)v->candidates, .len = (Py_ssize_t)v->n_candidates * 4, .itemsize = 4,
        .readonly = 1, .ndim = 1, .format = (char *)"i",
    };
    Py_ssize_t shape = v->n_candidates;
    cb.shape = &shape;
    Py_ssize_t words = (Py_ssize_t)v->n_instances * INST_WORDS;
    Py_buffer ib = {
        .buf = (void *)v->inst, .len = words * 8, .itemsize = 8, .readonly = 1, .ndim = 1,
        .format = (char *)"q", .shape = &words,
    };
    PyObject *inst = PyMemoryView_FromBuffer(&ib);
    PyObject *cand = PyMemoryView_FromBuffer(&cb);
    PyObject *now = PyLong_FromLongLong(v->now);
    if (!inst || !cand || !now)
        py_fatal(p, "cannot make its views");
    p->req->r = r;
    PyObject *args[] = {now, inst, cand, (PyObject *)p->req};
    PyObject *res = PyObject_Vectorcall(p->meth, args, 4, NULL);
    req_done(p);
    /* The views must not outlive the call: one the policy kept is released
     * (later reads raise ValueError). The policy's exception, if any, waits. */
    PyObject *etype, *evalue, *etb;
    PyErr_Fetch(&etype, &evalue, &etb);
    PyObject *views[2] = {inst, cand};
    for (int k = 0; k < 2; k++) {
        if (Py_REFCNT(views[k]) > 1) {
            PyObject *rel = PyObject_CallMethod(views[k], "release", NULL);
            if (!rel)
                PyErr_Clear();   /* exported further (a cast): stays readable */
            Py_XDECREF(rel);
        }
    }
    PyErr_Restore(etype, evalue, etb);
    Py_DECREF(inst);
    Py_DECREF(cand);
    Py_DECREF(now);
    if (!res)
        py_fatal(p, "raised an exception");
    long i = PyLong_AsLong(res);
    Py_DECREF(res);
    if (i == -1 && PyErr_Occurred())
        py_fatal(p, "returned something other than an integer");
    for (int32_t k = 0; k < v->n_candidates; k++)
        if (v->candidates[k] == i)
            return (int32_t)i;
    char why[96];
    snprintf(why, sizeof why, "returned %ld, which is not one of the candidates", i);
    py_fatal(p, why);
}

/* ---- the entry point --------------------------------------------------------------- */

static const order_policy_ops py_order = {
    .name = "python",
    .init = py_order_init,
    .key = py_key,
    .destroy = pypol_destroy,
};

static const route_policy_ops py_routing = {
    .name = "python",
    .init = py_route_init,
    .route = py_route,
    .destroy = pypol_destroy,
};

static const order_policy_ops *const orders[] = {&py_order, NULL};
static const route_policy_ops *const routes[] = {&py_routing, NULL};

SERVESIM_EXPORT const servesim_plugin *servesim_plugin_entry(const servesim_host_api *h)
{
    static const servesim_plugin plugin = {
        SERVESIM_PLUGIN_HEADER,
        .name = "servesim_py",
        .version = "1.0 (Python " PY_VERSION ")",
        .order = orders,
        .route = routes,
    };
    host = h;
    return &plugin;
}
