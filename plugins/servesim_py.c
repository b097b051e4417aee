/* The Python bridge: a servesim plugin (api/plugin.h) that embeds CPython
 * and runs a policy class from a Python module, for the ordering, routing
 * and batch formation families. Built as build/plugins/libservesim_py.so when Debian's
 * python3-dev is there (mk/deps.sh); servesim itself never links libpython.
 *
 *   "policies": {"order":   {"name": "servesim_py:python",
 *                            "params": {"module": "policies", "class": "SJF",
 *                                       "path": "examples/python", "args": {}}},
 *                "routing": {"name": "servesim_py:python", "params": {...}}}
 *
 * params: module (imported after `path`, if given: folders separated by
 * ':', put first on sys.path), class, args (an object handed to the class
 * as a dict), seed (routing and batch; routing mixes it with the pool's
 * index; ordering policies get the host's per-instance seed). The class
 * mirrors the ops:
 *
 *   __init__(self, args: dict, seed: int, setup: dict)
 *       setup: {} for ordering; {"pool", "block_size_tokens"} for routing;
 *       the batch_setup, rules included, for batch formation
 *   key(self, req) -> float                                  (ordering)
 *   route(self, now_ns, inst, candidates, req) -> int        (routing)
 *   form(self, view)                                         (batch)
 *       view: a servesim.BatchView (the waiting queue as an iterator, the
 *       running tuple, the KV ledger, add() and preempt() for the plan)
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

/* Derived: api/request.h's req_pending_tokens and req_is_decode. */
static PyObject *pyreq_derived(PyObject *self, void *closure)
{
    const pyreq *p = (const pyreq *)self;
    if (!p->r) {
        PyErr_SetString(PyExc_RuntimeError,
                        "servesim.Request used outside the call it was passed to");
        return NULL;
    }
    if (closure)
        return PyBool_FromLong(req_is_decode(p->r));
    return PyLong_FromLong(req_pending_tokens(p->r));
}

static PyGetSetDef pyreq_getset[N_REQ_FIELDS + 3];
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

/* ---- servesim.BatchView: one form call's view and plan ---------------------------
 * Requests handed out during a call are recorded and invalidated after it.
 * The plan is written through add() and preempt(); the KV ledger is asked
 * and charged as in C (api/batch.h). */

typedef struct pybview {
    PyObject_HEAD
    const batch_view *v;   /* NULL outside a call */
    batch_plan *plan;
    PyObject *running;     /* the running tuple, made on first use in a call */
    PyObject **made;       /* Request objects handed out in this call */
    size_t n_made, cap_made;
} pybview;

typedef struct pywait {
    PyObject_HEAD
    pybview *b;
    const serve_req *next;
} pywait;

static PyTypeObject *pybview_type, *pywait_type;

static int bview_live(const pybview *b)
{
    if (b->v)
        return 1;
    PyErr_SetString(PyExc_RuntimeError,
                    "servesim.BatchView used outside the form call it was passed to");
    return 0;
}

/* A Request for r, recorded for invalidation. */
static PyObject *bview_req(pybview *b, const serve_req *r)
{
    PyObject *o = pyreq_new();
    if (!o)
        return NULL;
    ((pyreq *)o)->r = r;
    if (b->n_made == b->cap_made) {
        size_t cap = b->cap_made ? 2 * b->cap_made : 64;
        PyObject **m = realloc(b->made, cap * sizeof *m);
        if (!m) {
            Py_DECREF(o);
            return PyErr_NoMemory();
        }
        b->made = m;
        b->cap_made = cap;
    }
    Py_INCREF(o);
    b->made[b->n_made++] = o;
    return o;
}

/* The serve_req behind a live Request argument, or NULL with TypeError. */
static const serve_req *arg_req(PyObject *o)
{
    if (!PyObject_TypeCheck(o, pyreq_type) || !((pyreq *)o)->r) {
        PyErr_SetString(PyExc_TypeError, "expected a servesim.Request of this call");
        return NULL;
    }
    return ((pyreq *)o)->r;
}

static PyObject *bview_get(PyObject *self, void *closure)
{
    pybview *b = (pybview *)self;
    if (!bview_live(b))
        return NULL;
    switch ((int)(intptr_t)closure) {
    case 0: return PyLong_FromLongLong(b->v->now);
    case 1: return PyLong_FromLong(b->v->n_waiting);
    case 2: return PyLong_FromLong(b->v->n_running);
    case 3: return PyLong_FromLong(b->plan->n_items);
    case 4: return PyLong_FromLong(b->plan->n_preempt);
    case 5: {   /* running: a tuple, oldest admitted first */
        if (!b->running) {
            PyObject *t = PyTuple_New(b->v->n_running);
            for (int32_t i = 0; t && i < b->v->n_running; i++) {
                PyObject *o = bview_req(b, b->v->running[i]);
                if (!o) {
                    Py_CLEAR(t);
                    break;
                }
                PyTuple_SET_ITEM(t, i, o);
            }
            if (!t)
                return NULL;
            b->running = t;
        }
        Py_INCREF(b->running);
        return b->running;
    }
    default: {   /* waiting: an iterator, front first */
        pywait *w = PyObject_New(pywait, pywait_type);
        if (!w)
            return NULL;
        Py_INCREF(self);
        w->b = b;
        w->next = b->v->n_waiting ? batch_first_waiting(b->v) : NULL;
        return (PyObject *)w;
    }
    }
}

static PyObject *pywait_next(PyObject *self)
{
    pywait *w = (pywait *)self;
    if (!bview_live(w->b) || !w->next)
        return NULL;
    const serve_req *r = w->next;
    w->next = req_next_waiting(r);
    return bview_req(w->b, r);
}

static void pywait_dealloc(PyObject *self)
{
    PyTypeObject *t = Py_TYPE(self);
    Py_DECREF((PyObject *)((pywait *)self)->b);
    PyObject_Free(self);
    Py_DECREF(t);
}

static void pybview_dealloc(PyObject *self)
{
    PyTypeObject *t = Py_TYPE(self);
    pybview *b = (pybview *)self;
    Py_XDECREF(b->running);
    for (size_t i = 0; i < b->n_made; i++)
        Py_DECREF(b->made[i]);
    free(b->made);
    PyObject_Free(self);
    Py_DECREF(t);
}

/* Methods: (req), (req, tokens), and the plan's add and preempt. */
static PyObject *bv_req_int(PyObject *self, PyObject *const *args, Py_ssize_t n, int which)
{
    pybview *b = (pybview *)self;
    if (!bview_live(b))
        return NULL;
    int need_tokens = which <= 1 || which == 5;
    if (n != 1 + need_tokens) {
        PyErr_Format(PyExc_TypeError, "expected %d arguments", 1 + need_tokens);
        return NULL;
    }
    const serve_req *r = arg_req(args[0]);
    if (!r)
        return NULL;
    long tokens = 0;
    if (need_tokens) {
        tokens = PyLong_AsLong(args[1]);
        if (tokens == -1 && PyErr_Occurred())
            return NULL;
        if (tokens < 0 || tokens > INT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "tokens out of range");
            return NULL;
        }
    }
    const batch_view *v = b->v;
    switch (which) {
    case 0: return PyLong_FromLongLong(kv_need(v, r, (int32_t)tokens));
    case 1: kv_take(v, r, (int32_t)tokens); Py_RETURN_NONE;
    case 2: return PyLong_FromLong(kv_cached_tokens(v, r));
    case 3: return PyLong_FromLongLong(kv_room(v, r));
    case 4: return PyLong_FromLong(batch_todo_tokens(v, r));
    default: return PyLong_FromLong(batch_admit_tokens(v, r, (int32_t)tokens));
    }
}
#define BV_METHOD(name, which)                                                         \
    static PyObject *bv_##name(PyObject *self, PyObject *const *args, Py_ssize_t n)    \
    {                                                                                  \
        return bv_req_int(self, args, n, which);                                       \
    }
BV_METHOD(kv_need, 0)
BV_METHOD(kv_take, 1)
BV_METHOD(kv_cached_tokens, 2)
BV_METHOD(kv_room, 3)
BV_METHOD(todo_tokens, 4)
BV_METHOD(admit_tokens, 5)
#undef BV_METHOD

static PyObject *bv_kv_free(PyObject *self, PyObject *unused)
{
    (void)unused;
    pybview *b = (pybview *)self;
    return bview_live(b) ? PyLong_FromLongLong(kv_free(b->v)) : NULL;
}

/* add(req, tokens, layers=0, reserve=0): one item of the plan. */
static PyObject *bv_add(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
    pybview *b = (pybview *)self;
    if (!bview_live(b))
        return NULL;
    if (n < 2 || n > 4) {
        PyErr_SetString(PyExc_TypeError, "add(req, tokens, layers=0, reserve=0)");
        return NULL;
    }
    const serve_req *r = arg_req(args[0]);
    if (!r)
        return NULL;
    long vals[3] = {0, 0, 0};
    for (Py_ssize_t k = 1; k < n; k++) {
        vals[k - 1] = PyLong_AsLong(args[k]);
        if (vals[k - 1] == -1 && PyErr_Occurred())
            return NULL;
        if (vals[k - 1] < 0 || vals[k - 1] > INT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "add: a negative or too large number");
            return NULL;
        }
    }
    if (b->plan->n_items >= b->v->n_waiting + b->v->n_running) {
        PyErr_SetString(PyExc_ValueError, "add: more items than waiting and running requests");
        return NULL;
    }
    b->plan->items[b->plan->n_items++] =
        (batch_item){r, (int32_t)vals[0], (int32_t)vals[1], (int32_t)vals[2]};
    Py_RETURN_NONE;
}

/* preempt(req): a running request into the plan's preemptions and the
 * ledger (C's batch_add_preempt); returns the blocks that frees. */
static PyObject *bv_preempt(PyObject *self, PyObject *arg)
{
    pybview *b = (pybview *)self;
    if (!bview_live(b))
        return NULL;
    const serve_req *r = arg_req(arg);
    if (!r)
        return NULL;
    if (r->state != REQ_RUNNING || b->plan->n_preempt >= b->v->n_running) {
        PyErr_SetString(PyExc_ValueError, "preempt: not a running request, or too many");
        return NULL;
    }
    b->plan->preempt[b->plan->n_preempt++] = r;
    return PyLong_FromLongLong(kv_preempt(b->v, r));
}

/* admit_fits(running_kept, blocks, watermark_blocks): api/batch.h's
 * batch_admit_fits against the plan so far. */
static PyObject *bv_admit_fits(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
    pybview *b = (pybview *)self;
    if (!bview_live(b))
        return NULL;
    if (n != 3) {
        PyErr_SetString(PyExc_TypeError, "admit_fits(running_kept, blocks, watermark_blocks)");
        return NULL;
    }
    long long vals[3];
    for (int k = 0; k < 3; k++) {
        vals[k] = PyLong_AsLongLong(args[k]);
        if (vals[k] == -1 && PyErr_Occurred())
            return NULL;
    }
    return PyBool_FromLong(batch_admit_fits(b->v, b->plan, (int32_t)vals[0], vals[1], vals[2]));
}

static PyMethodDef pybview_methods[] = {
    {"kv_need", (PyCFunction)(void (*)(void))bv_kv_need, METH_FASTCALL,
     "kv_need(req, tokens): blocks req must take to compute tokens more"},
    {"kv_take", (PyCFunction)(void (*)(void))bv_kv_take, METH_FASTCALL,
     "kv_take(req, tokens): adds that to the plan's ledger"},
    {"kv_cached_tokens", (PyCFunction)(void (*)(void))bv_kv_cached_tokens, METH_FASTCALL,
     "kv_cached_tokens(req): tokens of a waiting req's sequence in the prefix cache"},
    {"kv_room", (PyCFunction)(void (*)(void))bv_kv_room, METH_FASTCALL,
     "kv_room(req): the most tokens req could compute with the blocks left"},
    {"todo_tokens", (PyCFunction)(void (*)(void))bv_todo_tokens, METH_FASTCALL,
     "todo_tokens(req): pending tokens less the cached ones"},
    {"admit_tokens", (PyCFunction)(void (*)(void))bv_admit_tokens, METH_FASTCALL,
     "admit_tokens(req, tokens): KV tokens the engine's rule reserves at admission"},
    {"kv_free", bv_kv_free, METH_NOARGS, "kv_free(): free blocks left under the plan"},
    {"add", (PyCFunction)(void (*)(void))bv_add, METH_FASTCALL,
     "add(req, tokens, layers=0, reserve=0): an item of the plan"},
    {"preempt", bv_preempt, METH_O, "preempt(req): a running request's preemption"},
    {"admit_fits", (PyCFunction)(void (*)(void))bv_admit_fits, METH_FASTCALL,
     "admit_fits(running_kept, blocks, watermark_blocks): the watermark rule"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef pybview_getset[] = {
    {"now_ns", bview_get, NULL, NULL, (void *)0},
    {"n_waiting", bview_get, NULL, NULL, (void *)1},
    {"n_running", bview_get, NULL, NULL, (void *)2},
    {"n_items", bview_get, NULL, NULL, (void *)3},
    {"n_preempt", bview_get, NULL, NULL, (void *)4},
    {"running", bview_get, NULL, NULL, (void *)5},
    {"waiting", bview_get, NULL, NULL, (void *)6},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *pybview_new(void)
{
    pybview *b = PyObject_New(pybview, pybview_type);
    if (b) {
        b->v = NULL;
        b->plan = NULL;
        b->running = NULL;
        b->made = NULL;
        b->n_made = b->cap_made = 0;
    }
    return (PyObject *)b;
}

static int make_batch_types(PyObject *m)
{
    PyType_Slot bslots[] = {{Py_tp_getset, pybview_getset},
                            {Py_tp_methods, pybview_methods},
                            {Py_tp_dealloc, (void *)pybview_dealloc},
                            {Py_tp_doc, (void *)"One form call's view, ledger and plan."},
                            {0, NULL}};
    PyType_Spec bspec = {"servesim.BatchView", sizeof(pybview), 0, Py_TPFLAGS_DEFAULT, bslots};
    PyType_Slot wslots[] = {{Py_tp_iter, (void *)PyObject_SelfIter},
                            {Py_tp_iternext, (void *)pywait_next},
                            {Py_tp_dealloc, (void *)pywait_dealloc},
                            {0, NULL}};
    PyType_Spec wspec = {"servesim.WaitingIterator", sizeof(pywait), 0, Py_TPFLAGS_DEFAULT,
                         wslots};
    pybview_type = (PyTypeObject *)PyType_FromSpec(&bspec);
    pywait_type = (PyTypeObject *)PyType_FromSpec(&wspec);
    if (!pybview_type || !pywait_type ||
        PyModule_AddObjectRef(m, "BatchView", (PyObject *)pybview_type) < 0)
        return -1;
    return 0;
}

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
    pyreq_getset[N_REQ_FIELDS] = (PyGetSetDef){"pending_tokens", pyreq_derived, NULL, NULL,
                                               NULL};
    pyreq_getset[N_REQ_FIELDS + 1] = (PyGetSetDef){"is_decode", pyreq_derived, NULL, NULL,
                                                   (void *)1};
    PyType_Slot slots[] = {{Py_tp_getset, pyreq_getset},
                           {Py_tp_doc, (void *)"A request as policies see it (read-only)."},
                           {0, NULL}};
    PyType_Spec spec = {"servesim.Request", sizeof(pyreq), 0, Py_TPFLAGS_DEFAULT, slots};
    PyObject *m = PyModule_Create(&servesim_module);
    if (!m)
        return NULL;
    pyreq_type = (PyTypeObject *)PyType_FromSpec(&spec);
    if (!pyreq_type || PyModule_AddObjectRef(m, "Request", (PyObject *)pyreq_type) < 0 ||
        make_batch_types(m) < 0 ||
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
    PyObject *meth;    /* its bound key, route or form */
    pyreq *req;        /* repointed every call */
    pybview *bview;    /* batch policies: repointed every call */
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
    Py_XDECREF((PyObject *)p->bview);
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

/* ---- batch formation --------------------------------------------------------------- */

static const char *const reserve_names[] = {"chunk", "prompt", "request"};
static const char *const victim_names[] = {"newest", "fewest_outputs"};

static int py_batch_init(const batch_setup *setup, cJSON *params, const char *path,
                         void **state, sim_err *err)
{
    if (py_start(path, err))
        return -1;
    const batch_rules *ru = &setup->rules;
    PyObject *s = Py_BuildValue(
        "{s:i,s:i,s:i,s:L,s:i,s:i,s:{s:s,s:O,s:d,s:d,s:s,s:O,s:i}}",
        "max_batched_tokens", setup->max_batched_tokens, "max_seqs", setup->max_seqs,
        "block_size_tokens", setup->block_size_tokens, "kv_total_blocks",
        (long long)setup->kv_total_blocks, "max_context_tokens", setup->max_context_tokens,
        "model_layers", setup->model_layers, "rules", "reserve", reserve_names[ru->reserve],
        "reserve_check_only", ru->reserve_check_only ? Py_True : Py_False,
        "output_reserve_fraction", ru->output_reserve_fraction, "watermark_fraction",
        ru->watermark_fraction, "victim", victim_names[ru->victim], "admit_after_preempt",
        ru->admit_after_preempt ? Py_True : Py_False, "token_budget", ru->token_budget);
    if (!s)
        return py_err(err, path, "cannot make the setup");
    if (pypol_init(params, path, 0, s, "form", 1, state, err))
        return -1;
    pypol *p = *state;
    if (!(p->bview = (pybview *)pybview_new())) {
        pypol_free(p);
        *state = NULL;
        return py_err(err, path, "cannot make a batch view");
    }
    return 0;
}

static void py_form(void *state, const batch_view *v, batch_plan *plan)
{
    pypol *p = state;
    pybview *b = p->bview;
    b->v = v;
    b->plan = plan;
    PyObject *res = PyObject_CallOneArg(p->meth, (PyObject *)b);
    /* Nothing handed out reads after the call; a view the policy kept is
     * left to it and the next call gets a fresh one. */
    PyObject *etype, *evalue, *etb;
    PyErr_Fetch(&etype, &evalue, &etb);
    b->v = NULL;
    b->plan = NULL;
    for (size_t i = 0; i < b->n_made; i++) {
        ((pyreq *)b->made[i])->r = NULL;
        Py_DECREF(b->made[i]);
    }
    b->n_made = 0;
    Py_CLEAR(b->running);
    if (Py_REFCNT((PyObject *)b) > 1) {
        Py_DECREF((PyObject *)b);
        if (!(p->bview = (pybview *)pybview_new()))
            py_fatal(p, "cannot make a batch view");
    }
    PyErr_Restore(etype, evalue, etb);
    if (!res)
        py_fatal(p, "raised an exception");
    Py_DECREF(res);
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

static const batch_policy_ops py_batch = {
    .name = "python",
    .init = py_batch_init,
    .form = py_form,
    .destroy = pypol_destroy,
};

static const order_policy_ops *const orders[] = {&py_order, NULL};
static const route_policy_ops *const routes[] = {&py_routing, NULL};
static const batch_policy_ops *const batches[] = {&py_batch, NULL};

SERVESIM_EXPORT const servesim_plugin *servesim_plugin_entry(const servesim_host_api *h)
{
    static const servesim_plugin plugin = {
        SERVESIM_PLUGIN_HEADER,
        .name = "servesim_py",
        .version = "1.0 (Python " PY_VERSION ")",
        .batch = batches,
        .order = orders,
        .route = routes,
    };
    host = h;
    return &plugin;
}
