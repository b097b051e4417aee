/* A serving instance (see instance.h).
 *
 * Invariants, checked where they can break:
 *  - a request of this instance is in exactly one of: the waiting queue
 *    (REQ_WAITING), the running set (REQ_RUNNING); a detached one
 *    (REQ_MOVING) is in neither, and a finished one is handed to the hooks;
 *  - KV blocks held by its requests (and by detached ones not yet released)
 *    are the cache's used blocks, never more than its total;
 *  - at most one iteration is in flight; `busy` says whether one is;
 *  - view->outstanding_tokens is the sum over its requests of pending tokens
 *    plus output tokens still to generate.
 *
 * The waiting queue is a red-black tree (sim/rbtree.h) ordered by the
 * ordering policy's key, then arrival, then id: O(log n) to insert or take
 * out any request, so overload (long queues, admissions from the middle,
 * preempted requests going back in) costs O(log n) per change. Policies
 * walk it in order through the view. The plan arrays are reused between
 * iterations: nothing is allocated per iteration once they have grown to
 * the largest batch seen.
 *
 * Preemption: recompute drops the request's KV (it is prefilled again);
 * swap copies the KV of its computed tokens to host memory over the PCIe
 * links and back when it is admitted again. A blocking copy delays the
 * iteration's compute until the copies are done; an overlapped one delays
 * only the iteration's end, if the copies outlast the compute. The GPUs idle
 * through the delay.
 *
 * Engines that overlap their CPU work with the GPU's (vLLM's asynchronous
 * scheduling, SGLang's and TensorRT-LLM's overlap schedulers) plan each
 * iteration while the one before runs: a request that arrives during
 * iteration n is not seen by the plan of n+1, made when n started, and
 * waits for n+2. Such arrivals are held in `incoming` and join the waiting
 * queue once the next plan is made; an idle instance sees them at once. */
#include "serve/instance.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/ep.h"
#include "serve/opcut.h"
#include "serve/offload.h"
#include "serve/retain.h"
#include "serve/req.h"
#include "serve/lora.h"
#include "serve/spec.h"

struct instance {
    int32_t index, pool;
    sim_engine *eng;
    const pool_setup *ps;
    batch_setup setup;
    const batch_policy_ops *policy;
    void *policy_state;
    const order_policy_ops *order;
    void *order_state;
    cost_model *cost;
    ep_state *ep;            /* expert parallelism (par.ep > 1), else NULL */
    offload_state *offload;  /* expert offloading (par.gpu_experts > 0), else NULL */
    retain_store *retain;    /* session KV pins (serve/retain.h), else NULL */
    spec *spec;              /* speculative decoding; NULL when off */
    lora *lora;              /* multi-LoRA; NULL when off */
    sim_time_ns lora_load_ns;   /* this iteration's adapter loads */
    double idle_w;
    kv_cache *kv;
    metrics *metrics;
    inst_view *view;
    net *net;
    net_link pcie_d2h, pcie_h2d;
    net_link tier_rd[KV_TIERS_MAX], tier_wr[KV_TIERS_MAX];   /* lower KV tiers */
    bool loads_now;          /* this iteration waits for tier loads */
    bool layer_loads_now;    /* of them, some layer by layer (load_mode layerwise) */
    sim_time_ns block_done_ns, layer_done_ns;   /* when the last of each kind of copy ended */
    bool lora_loads_now;     /* and for adapter loads over the links (serve/lora.h) */
    bool swaps_now;          /* it started swap copies */
    net_link lora_storage;   /* load_over_links: adapters from storage */
    instance_hooks hooks;
    inst_state state;

    sim_rb_tree waiting;
    serve_req **running;     /* admission order */
    size_t run_cap;
    int32_t n_running;

    batch_item *items;       /* the plan, then the iteration in flight */
    const serve_req **preempt;
    int8_t *preempt_how;     /* beside preempt (batch_plan.preempt_how), kept 0 */
    batch_seq *prefill;
    size_t plan_cap;
    batch_plan plan;
    cost_result cost_now;
    int64_t iter_tokens;

    /* Swap copies of the iteration in flight. */
    int64_t host_blocks_used;
    double swap_out_now, swap_in_now;   /* bytes per GPU, this iteration */
    int32_t copies_pending;
    bool compute_waits;      /* blocking: compute starts after the copies */
    bool compute_done;       /* overlapped: compute ended, copies still going */
    sim_time_ns iter_start_ns, compute_ns;
    /* Operator-level preemption (a batch policy with a cut hook): the
     * iteration end event, and whether this iteration was cut already. */
    sim_event_handle iter_end_ev;
    bool cut_done;
    /* Head-of-line blocking (stats.hol_*): arrivals during the iteration
     * in flight, and the sum of their arrival times. */
    uint64_t hol_n;
    sim_time_ns hol_sum_ns;
    int32_t rewinds_pending;   /* requests in flight whose context was updated */

    /* Overlapping engines: arrivals during the iteration in flight, not yet
     * visible to the plan (see the top). */
    serve_req **incoming;
    size_t incoming_cap;
    int32_t n_incoming;
    bool plan_ahead;         /* the engine overlaps: plan one iteration ahead */
    sim_time_ns stream_ns;   /* the engine's streaming delay to the client */

    serve_req **detach_later;   /* detaches asked during the iteration */
    size_t detach_cap;
    int32_t n_detach_later;

    int busy, wake_pending, open;
    /* semi-PD (instance_setup): the KV cache is the partner's when shared. */
    instance *partner;
    bool owns_kv;
    double gpu_time_scale, energy_scale;
    double sm_share;         /* semi-PD contention (instance_setup) */
    sim_time_ns idle_since, state_since;
    uint64_t admit_seq;
    instance_stats stats;
};

/* ---- the waiting queue ------------------------------------------------ */

/* Queue order: the ordering key, then arrival, then id. */
static int waiting_cmp(const sim_rb_node *an, const sim_rb_node *bn)
{
    const serve_req *a = SIM_RB_ENTRY(an, const serve_req, wait_node);
    const serve_req *b = SIM_RB_ENTRY(bn, const serve_req, wait_node);
    if (a->order_key != b->order_key)
        return a->order_key < b->order_key ? -1 : 1;
    if (a->arrival_ns != b->arrival_ns)
        return a->arrival_ns < b->arrival_ns ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static void waiting_insert(instance *inst, serve_req *r)
{
    r->order_key = inst->order->key(inst->order_state, r);
    sim_rb_insert(&inst->waiting, &r->wait_node);
}

static void waiting_remove(instance *inst, serve_req *r)
{
    sim_rb_remove(&inst->waiting, &r->wait_node);
}

static int32_t n_waiting(const instance *inst) { return (int32_t)sim_rb_size(&inst->waiting); }

/* Waiting requests in all: the queue and the arrivals not yet visible to
 * the plan (which the views leave out: nothing may move them). */
static int32_t n_queued(const instance *inst) { return n_waiting(inst) + inst->n_incoming; }

/* Arrivals held back from the plan join the waiting queue. */
static void flush_incoming(instance *inst)
{
    for (int32_t i = 0; i < inst->n_incoming; i++)
        waiting_insert(inst, inst->incoming[i]);
    inst->n_incoming = 0;
}

static void running_remove(instance *inst, serve_req *r)
{
    int32_t kept = 0;
    for (int32_t i = 0; i < inst->n_running; i++)
        if (inst->running[i] != r)
            inst->running[kept++] = inst->running[i];
    SIM_ASSERT(kept == inst->n_running - 1);
    inst->n_running = kept;
}

/* ---- creation ---------------------------------------------------------- */

/* For cost-aware eviction: one iteration prefilling q tokens after c cached
 * ones, less an empty iteration's fixed time. */
static double recompute_ns(void *ctx, int32_t q_tokens, int32_t ctx_tokens)
{
    instance *inst = ctx;
    batch_seq seq = {.q_tokens = q_tokens, .ctx_tokens = ctx_tokens};
    batch_shape one = {.prefill = &seq, .n_prefill = 1, .n_sampled = 0};
    cost_result r;
    cost_iteration(inst->cost, &one, &r);
    return (double)r.latency_ns;
}

instance *instance_create(sim_engine *eng, const instance_setup *s, sim_err *err)
{
    const pool_setup *ps = s->ps;
    instance *inst = sim_xcalloc(1, sizeof *inst);
    inst->index = s->index;
    inst->pool = s->pool;
    inst->eng = eng;
    inst->ps = ps;
    inst->setup = ps->batch;
    inst->setup.seed = sim_engine_seed(eng);
    inst->policy = ps->batch_policy.ops;
    inst->order = ps->order_policy.ops;
    inst->metrics = s->metrics;
    inst->view = s->view;
    inst->net = s->net;
    inst->pcie_d2h = s->pcie_d2h;
    inst->pcie_h2d = s->pcie_h2d;
    inst->hooks = s->hooks;
    inst->state = s->state;
    inst->plan_ahead = ps->engine.cpu_overlap;
    inst->stream_ns = (sim_time_ns)llround(engine_stream_ns(&ps->engine));
    sim_rb_init(&inst->waiting, waiting_cmp);
    inst->owns_kv = !s->shared_kv;
    inst->kv = s->shared_kv ? s->shared_kv
                            : kv_create(ps->batch.kv_total_blocks, ps->batch.block_size_tokens,
                                        ps->prefix_caching, sim_now(eng));
    inst->gpu_time_scale = s->gpu_time_scale > 0 ? s->gpu_time_scale : 1;
    inst->energy_scale = s->energy_scale > 0 ? s->energy_scale : 1;
    inst->sm_share = s->sm_share;
    *inst->view = (inst_view){.pool = s->pool, .state = s->state,
                              .kv_free_blocks = ps->batch.kv_total_blocks,
                              .kv_total_blocks = ps->batch.kv_total_blocks};
    inst->cost = s->cost;
    /* A KV cache shared with a partner (semi-PD) is set up once, by the
     * instance that created it. */
    if (inst->owns_kv) {
        kv_set_recompute(inst->kv, recompute_ns, inst);
        kv_set_tiers(inst->kv, &ps->kv_tiers, ps->swap.block_bytes_per_gpu);
        if (ps->kv_keep_tokens > 0)
            kv_set_budget(inst->kv, ps->kv_keep_tokens, ps->kv_keep_fraction);
    }
    for (int32_t t = 0; t < ps->kv_tiers.n && ps->prefix_caching && inst->owns_kv; t++) {
        const kv_tier_setup *ts = &ps->kv_tiers.tier[t];
        char name[64];
        double g = par_gpus(&ps->par);
        snprintf(name, sizeof name, "inst%d.%s_read", s->index, ts->name);
        inst->tier_rd[t] = net_add_link(inst->net, name, ts->read_bytes_per_s * g, ts->latency_ns);
        snprintf(name, sizeof name, "inst%d.%s_write", s->index, ts->name);
        inst->tier_wr[t] = net_add_link(inst->net, name, ts->write_bytes_per_s * g,
                                        ts->latency_ns);
    }
    if ((inst->owns_kv &&
         kv_set_eviction(inst->kv, ps->evict_policy.ops, ps->evict_policy.params,
                         ps->evict_policy.path, s->order_seed ^ UINT64_C(0x65766963), err)) ||
        inst->policy->init(&inst->setup, ps->batch_policy.params, ps->batch_policy.path,
                           &inst->policy_state, err) ||
        inst->order->init(s->order_seed, ps->order_policy.params, ps->order_policy.path,
                          &inst->order_state, err) ||
        (ps->prefix_caching && inst->owns_kv && inst->metrics &&
         retain_create(&ps->retain_policy, s->index, &inst->metrics->sessions, &inst->retain,
                       err))) {
        instance_destroy(inst);
        return NULL;
    }
    if (inst->retain)
        retain_set_block_bytes(inst->retain, ps->swap.block_bytes_per_gpu * par_gpus(&ps->par));
    if (ps->par.ep > 1 && ps->moe.sample &&
        !(inst->ep = ep_create(ps, sim_stream_seed(s->order_seed, 0xE9E9), err))) {
        instance_destroy(inst);
        return NULL;
    }
    if (ps->par.gpu_experts > 0 &&
        !(inst->offload = offload_create(ps, sim_stream_seed(s->order_seed, 0x0FF1), err))) {
        instance_destroy(inst);
        return NULL;
    }
    inst->idle_w = s->no_idle_power ? 0 : cost_idle_power_w(inst->cost);
    if (ps->spec.method != SPEC_OFF &&
        !(inst->spec = spec_create(&ps->spec, cost_model_setup(inst->cost), inst->cost,
                                   s->draft_cost, sim_engine_seed(eng), err))) {
        instance_destroy(inst);
        return NULL;
    }
    if (ps->lora.on)
        inst->lora = lora_create(&ps->lora, &ps->gpu, inst->cost, sim_engine_seed(eng));
    if (ps->lora.on && ps->lora.over_links) {
        char name[64];
        snprintf(name, sizeof name, "inst%d.lora_storage", s->index);
        inst->lora_storage = net_add_link(inst->net, name, ps->lora.storage_bytes_per_s,
                                          (sim_time_ns)llround(ps->lora.storage_latency_ns));
    }
    return inst;
}

void instance_destroy(instance *inst)
{
    if (!inst)
        return;
    if (inst->policy_state && inst->policy->destroy)
        inst->policy->destroy(inst->policy_state);
    if (inst->order_state && inst->order->destroy)
        inst->order->destroy(inst->order_state);
    if (inst->owns_kv)
        kv_destroy(inst->kv);
    ep_destroy(inst->ep);
    offload_destroy(inst->offload);
    retain_destroy(inst->retain);
    spec_destroy(inst->spec);
    lora_destroy(inst->lora);
    free(inst->running);
    free(inst->items);
    free(inst->preempt);
    free(inst->preempt_how);
    free(inst->prefill);
    free(inst->incoming);
    free(inst->detach_later);
    free(inst);
}

int32_t instance_index(const instance *inst) { return inst->index; }
inst_state instance_state(const instance *inst) { return inst->state; }

static void plan_reserve(instance *inst)
{
    size_t need = (size_t)n_waiting(inst) + (size_t)inst->n_running + 1;
    if (need <= inst->plan_cap)
        return;
    size_t cap = inst->plan_cap;
    sim_grow((void **)&inst->items, &cap, need, sizeof *inst->items);
    cap = inst->plan_cap;
    sim_grow((void **)&inst->preempt, &cap, need, sizeof *inst->preempt);
    cap = inst->plan_cap;
    sim_grow((void **)&inst->prefill, &cap, need, sizeof *inst->prefill);
    size_t how_cap = inst->plan_cap;
    sim_grow((void **)&inst->preempt_how, &how_cap, need, sizeof *inst->preempt_how);
    memset(inst->preempt_how + inst->plan_cap, 0, how_cap - inst->plan_cap);
    inst->plan_cap = cap;
}

static void update_view(instance *inst)
{
    inst_view *v = inst->view;
    v->state = inst->state;
    v->n_waiting = n_waiting(inst);   /* what a controller can walk */
    v->n_running = inst->n_running;
    kv_stats ks;
    kv_get_stats(inst->kv, &ks);
    v->kv_free_blocks = ks.total_blocks - ks.used_blocks;
    v->kv_cached_blocks = ks.cached_blocks;
}

/* Tokens r still adds to the instance's load (view->outstanding_tokens):
 * its pending tokens plus the output tokens it has yet to generate. It falls
 * as tokens are computed, and by one more when the last token is emitted
 * (the last token is never fed back). */
static int64_t outstanding_of(const serve_req *r)
{
    return (int64_t)req_pending_tokens(r) + (r->output_tokens - r->generated_tokens);
}

/* ---- lifecycle and energy ------------------------------------------------ */

static void accrue_state(instance *inst, sim_time_ns now)
{
    if (!inst->open)
        return;
    inst->stats.state_ns[inst->state] += now - inst->state_since;
    inst->state_since = now;
}

static void accrue_idle(instance *inst, sim_time_ns now)
{
    if (inst->open && now > inst->idle_since)
        inst->stats.energy_j += inst->idle_w * (double)(now - inst->idle_since) / 1e9;
    inst->idle_since = now;
}

void instance_open(instance *inst, sim_time_ns now)
{
    inst->open = 1;
    inst->idle_since = now;
    inst->state_since = now;
}

static bool has_work(const instance *inst)
{
    return n_queued(inst) > 0 || inst->n_running > 0;
}

void instance_set_state(instance *inst, inst_state s, sim_time_ns now)
{
    if (s == inst->state)
        return;
    accrue_state(inst, now);
    if (inst->state == INST_STOPPED)
        inst->idle_since = now;   /* restarted: it drew nothing while stopped */
    /* A stopped instance draws nothing: close its idle stretch first. */
    if (s == INST_STOPPED && !inst->busy)
        accrue_idle(inst, now);
    inst->state = s;
    inst->view->state = s;
    if (inst->retain && (s == INST_DRAINING || s == INST_STOPPED)) {
        retain_release_all(inst->retain, inst->kv, now);   /* no turn comes back */
        update_view(inst);
    }
    if (s == INST_DRAINING && !has_work(inst) && !inst->busy && inst->hooks.emptied)
        inst->hooks.emptied(inst->hooks.ctx, inst);
}

void instance_close(instance *inst, sim_time_ns end)
{
    SIM_ASSERT_AT(end, !inst->busy);
    /* An instance that changed state after the last request finished (a
     * late scale action) is closed there. */
    if (end < inst->state_since)
        end = inst->state_since;
    if (inst->state != INST_STOPPED)
        accrue_idle(inst, end);
    accrue_state(inst, end);
}

/* ---- one iteration ------------------------------------------------------ */

static void go_idle(instance *inst, sim_time_ns now)
{
    inst->busy = 0;
    inst->idle_since = now;
    if (inst->state == INST_DRAINING && inst->hooks.emptied)
        inst->hooks.emptied(inst->hooks.ctx, inst);
}

/* Drops r's KV (recompute) or moves it to host memory (swap), and puts r
 * back in the waiting queue. */
static void preempt(instance *inst, serve_req *r, sim_time_ns now, int how)
{
    SIM_ASSERT_AT(now, r->state == REQ_RUNNING && r->instance == inst->index);
    /* A layered prefill in flight has computed nothing yet: it restarts. */
    r->layers_done = 0;
    req_of(r)->op_credit_ns = 0;
    int64_t keep = kv_blocks_for(inst->kv, r->computed_tokens);
    const swap_setup *sw = &inst->ps->swap;
    bool swap = how == BATCH_PREEMPT_DEFAULT ? sw->mode == PREEMPT_SWAP
                                             : how == BATCH_PREEMPT_SWAP;
    if (swap && r->computed_tokens > 0 && inst->host_blocks_used + keep <= sw->host_blocks) {
        r->swapped_blocks = (int32_t)keep;
        inst->host_blocks_used += keep;
        inst->stats.preemptions_swap++;
        inst->swap_out_now += (double)keep * sw->block_bytes_per_gpu;
    } else {
        inst->view->outstanding_tokens += r->computed_tokens;
        inst->stats.recomputed_tokens += (uint64_t)r->computed_tokens;
        r->computed_tokens = 0;
    }
    kv_release(inst->kv, r, &req_of(r)->kv, now);
    r->preemptions++;
    inst->stats.preemptions++;
    r->state = REQ_WAITING;
    waiting_insert(inst, r);
}

static void apply_preemptions(instance *inst, sim_time_ns now)
{
    for (int32_t i = 0; i < inst->plan.n_preempt; i++) {
        preempt(inst, (serve_req *)inst->plan.preempt[i], now, inst->plan.preempt_how[i]);
        inst->plan.preempt_how[i] = BATCH_PREEMPT_DEFAULT;
    }
    if (inst->plan.n_preempt) {
        int32_t kept = 0;
        for (int32_t i = 0; i < inst->n_running; i++)
            if (inst->running[i]->state == REQ_RUNNING)
                inst->running[kept++] = inst->running[i];
        inst->n_running = kept;
    }
}

/* Brings a swapped-out request's KV back: the blocks it had are restored
 * exactly (the admission allocates them with the new tokens' blocks). */
static void swap_in(instance *inst, serve_req *r)
{
    if (!r->swapped_blocks)
        return;
    SIM_ASSERT(r->swapped_blocks == kv_blocks_for(inst->kv, r->computed_tokens));
    inst->swap_in_now += r->swapped_blocks * inst->ps->swap.block_bytes_per_gpu;
    inst->host_blocks_used -= r->swapped_blocks;
    r->swapped_blocks = 0;
}

/* Admits the plan's waiting requests (taking their cached prefixes), then
 * allocates KV for every item and describes the batch for the cost model.
 * Cached prefixes are all taken before any block is allocated, so that an
 * allocation never evicts a prefix another item of the plan counted on. */
static void apply_items(instance *inst, sim_time_ns now, batch_shape *shape)
{
    const batch_setup *s = &inst->setup;
    int64_t tokens = 0;
    *shape = (batch_shape){.prefill = inst->prefill};
    const int32_t *extras = inst->spec ? spec_plan_extras(inst->spec, inst->plan.n_items) : NULL;
    SIM_ASSERT_AT(now, inst->plan.n_items <= s->max_seqs);
    for (int32_t i = 0; i < inst->plan.n_items; i++) {
        serve_req *r = (serve_req *)inst->plan.items[i].req;
        SIM_ASSERT_AT(now, r->instance == inst->index &&
                      (r->state == REQ_WAITING || r->state == REQ_RUNNING));
        if (r->state != REQ_WAITING)
            continue;
        waiting_remove(inst, r);
        swap_in(inst, r);
        inst->view->outstanding_tokens -= kv_admit(inst->kv, r, &req_of(r)->kv, now);
        if (inst->retain && r->session_id)
            retain_turn_admitted(inst->retain, inst->kv, r, now);
        r->state = REQ_RUNNING;
        r->admit_seq = ++inst->admit_seq;
        if (r->first_scheduled_ns < 0)
            r->first_scheduled_ns = now;
        sim_grow((void **)&inst->running, &inst->run_cap, (size_t)inst->n_running + 1,
                 sizeof *inst->running);
        inst->running[inst->n_running++] = r;
    }
    for (int32_t i = 0; i < inst->plan.n_items; i++) {
        serve_req *r = (serve_req *)inst->plan.items[i].req;
        int32_t q = inst->plan.items[i].tokens, hold = inst->plan.items[i].reserve;
        SIM_ASSERT_AT(now, q >= 1 && q <= req_pending_tokens(r));
        /* A streamed prompt's prefill never runs ahead of what has arrived. */
        SIM_ASSERT_AT(now, !r->unarrived_tokens ||
                      r->computed_tokens + q <= r->input_tokens - r->unarrived_tokens);
        /* The engine's reservation: room for later chunks or the output. */
        SIM_ASSERT_AT(now, hold <= req_pending_tokens(r) + r->output_tokens -
                           r->generated_tokens);
        kv_grow(inst->kv, r, &req_of(r)->kv, hold > q ? hold : q, now);   /* asserts the plan fits */
        int32_t layers = inst->plan.items[i].layers;
        if (layers) {   /* layered prefill: whole pending prompt, one layer group */
            SIM_ASSERT_AT(now, q == req_pending_tokens(r) &&
                          r->layers_done + layers <= s->model_layers);
            SIM_ASSERT_AT(now, !shape->prefill_layers || shape->prefill_layers == layers);
            if (layers < s->model_layers)
                shape->prefill_layers = layers;
        }
        int completes = !layers || r->layers_done + layers == s->model_layers;
        int32_t d = extras ? extras[i] : 0;
        if (d > 0) {   /* speculative verification: 1 + d query tokens */
            inst->prefill[shape->n_prefill++] =
                (batch_seq){q + d, (int32_t)kv_attended_tokens(inst->kv, r->computed_tokens)};
            shape->spec_sampled += d;
            tokens += d;
        } else if (req_is_decode(r) && !layers)
            shape->decode_ctx_sum += kv_attended_tokens(inst->kv, r->computed_tokens),
                shape->n_decode++;
        else
            inst->prefill[shape->n_prefill++] = (batch_seq){q, r->computed_tokens};
        shape->n_sampled += completes && r->computed_tokens + q == req_seq_tokens(r);
        tokens += q;
    }
    SIM_ASSERT_AT(now, tokens <= s->max_batched_tokens);
    SIM_ASSERT_AT(now, inst->n_running <= s->max_seqs);
    inst->iter_tokens = tokens;
}

static void accumulate_cost(instance *inst, const cost_result *c)
{
    instance_stats *st = &inst->stats;
    st->iterations++;
    st->busy_ns += c->latency_ns;
    st->energy_j += c->energy_j;
    st->weight_bytes += c->weight_bytes;
    st->kv_bytes += c->kv_bytes;
    for (int k = 0; k < OP_KIND_COUNT; k++) {
        st->term_ns[k] += c->term_ns[k];
        /* the kinds of parallel layouts and offloading count only when
         * present, so that runs without them count as they always did */
        if (k < OP_A2A_DISPATCH || c->term_source[k] != COST_SRC_NONE)
            st->source_terms[c->term_source[k]]++;
    }
}

static void on_copy_done(void *ctx, net_xfer x, int64_t tag, sim_time_ns now);

/* Starts this iteration's swap copies, each GPU its own shard on its own
 * link (an instance's link carries all its GPUs). Returns the time they
 * add to the iteration if nothing else shares the links, for the
 * observer: the copies themselves decide when the iteration ends. */
static double start_copies(instance *inst, const cost_result *c)
{
    double gpus = par_gpus(&inst->ps->par);
    double copy_s = 0;
    const double bytes[2] = {inst->swap_out_now, inst->swap_in_now};
    const net_link links[2] = {inst->pcie_d2h, inst->pcie_h2d};
    for (int k = 0; k < 2; k++) {
        if (bytes[k] <= 0)
            continue;
        net_start(inst->net, &links[k], 1, bytes[k] * gpus, on_copy_done, inst, k);
        inst->copies_pending++;
        double s = (double)net_link_latency_ns(inst->net, links[k]) / 1e9 +
                   bytes[k] * gpus / net_link_bytes_per_s(inst->net, links[k]);
        if (s > copy_s)
            copy_s = s;
    }
    inst->stats.swap_out_bytes += inst->swap_out_now;
    inst->stats.swap_in_bytes += inst->swap_in_now;
    inst->swap_out_now = inst->swap_in_now = 0;
    double copy_ns = copy_s * 1e9;
    double shown = inst->ps->swap.overlap ? copy_ns - (double)c->latency_ns : copy_ns;
    return shown > 0 ? ceil(shown) : 0;
}

/* Lower KV tiers: starts this iteration's loads (tier -> PCIe -> HBM, which
 * the iteration waits for: blocking) and the writes through of blocks
 * cached since the last iteration (HBM -> PCIe -> tier, nobody waits).
 * A transfer pays its links' latency once; the latency of its further
 * chunks is added as bytes at the tier's rate, so that alone on its links a
 * load of n chunks and B bytes takes n x latency + B / rate. Returns
 * whether it started loads. */
static bool start_tier_io(instance *inst)
{
    double load[KV_TIERS_MAX], write[KV_TIERS_MAX];
    int32_t n = kv_take_tier_io(inst->kv, load, write);
    double g = par_gpus(&inst->ps->par), block = inst->ps->swap.block_bytes_per_gpu * g;
    bool loads = false;
    for (int32_t t = 0; t < n; t++) {
        const kv_tier_setup *ts = &inst->ps->kv_tiers.tier[t];
        if (load[t] > 0) {
            double chunks = ceil(load[t] * inst->setup.block_size_tokens / ts->chunk_tokens);
            double bytes = load[t] * block;
            double extra = (chunks - 1) * (double)ts->latency_ns / 1e9 * ts->read_bytes_per_s * g;
            const net_link path[2] = {inst->tier_rd[t], inst->pcie_h2d};
            net_start(inst->net, path, 2, bytes + extra, on_copy_done, inst,
                      ts->layerwise ? 4 : 2);
            inst->layer_loads_now |= ts->layerwise;
            inst->copies_pending++;
            inst->stats.kv_load_bytes += bytes;
            loads = true;
        }
        if (write[t] > 0) {
            const net_link path[2] = {inst->pcie_d2h, inst->tier_wr[t]};
            net_start(inst->net, path, 2, write[t] * block, NULL, NULL, 3);
            inst->stats.kv_write_bytes += write[t] * block;
        }
    }
    return loads;
}

/* A LoRA load's storage leg is through: its PCIe leg starts (the copy
 * stays pending). */
static void on_lora_storage_done(void *ctx, net_xfer x, int64_t tag, sim_time_ns now)
{
    (void)x, (void)now;
    instance *inst = ctx;
    const lora_load *loads;
    int32_t n = lora_take_loads(inst->lora, &loads);
    SIM_ASSERT_AT(now, tag >= 0 && tag < n);
    net_start(inst->net, &inst->pcie_h2d, 1,
              loads[tag].pcie_bytes_per_gpu * par_gpus(&inst->ps->par), on_copy_done, inst, 5);
}

/* load_over_links: starts the iteration's adapter loads, which it waits
 * for: host -> GPU over the instance's PCIe link, from storage first over
 * its LoRA storage link (store and forward: the PCIe leg starts when the
 * adapter is in host memory). Returns whether it started any. */
static bool start_lora_loads(instance *inst)
{
    const lora_load *loads;
    int32_t n = lora_take_loads(inst->lora, &loads);
    for (int32_t i = 0; i < n; i++) {
        if (loads[i].storage_bytes > 0)
            net_start(inst->net, &inst->lora_storage, 1, loads[i].storage_bytes,
                      on_lora_storage_done, inst, i);
        else
            net_start(inst->net, &inst->pcie_h2d, 1,
                      loads[i].pcie_bytes_per_gpu * par_gpus(&inst->ps->par), on_copy_done,
                      inst, 5);
        inst->copies_pending++;
    }
    return n > 0;
}

/* semi-PD: the operators run on a share of the SMs (gpu_time_scale), the
 * engine's CPU time is unchanged; energy scales with the share. */
static void scale_cost(instance *inst, cost_result *c)
{
    double scale = inst->gpu_time_scale, energy = inst->energy_scale;
    const instance *p = inst->partner;
    if (inst->sm_share > 0 && p && p->busy && inst->sm_share + p->sm_share > 1) {
        /* Both workers run and their caps overlap: each gets its share of
         * the whole GPU (SMs, HBM bandwidth), as the iteration starts. */
        double sum = inst->sm_share + p->sm_share;
        double contended = sum / inst->sm_share;
        if (contended > scale) {
            energy *= contended / scale / sum;
            scale = contended;
        }
    }
    double ops = 0;
    for (int k = 0; k < OP_KIND_COUNT; k++) {
        ops += c->term_ns[k];
        c->term_ns[k] *= scale;
    }
    c->latency_ns += (sim_time_ns)llround(ops * (scale - 1));
    c->energy_j *= energy;
}

/* Wakes the partner (semi-PD) if it is idle with work: it may wait for
 * blocks this instance freed. */
static void poke_partner(instance *inst);

/* The last waiting request holding KV blocks gives them up (see step):
 * true if there was one. O(queue length); only when an instance is stuck. */
static bool drop_waiting_kv(instance *inst, sim_time_ns now)
{
    for (sim_rb_node *n = sim_rb_last(&inst->waiting); n; n = sim_rb_prev(n)) {
        serve_req *r = SIM_RB_ENTRY(n, serve_req, wait_node);
        if (r->kv_blocks == 0)
            continue;
        waiting_remove(inst, r);   /* its key may depend on what it computed */
        inst->view->outstanding_tokens += r->computed_tokens;
        inst->stats.recomputed_tokens += (uint64_t)r->computed_tokens;
        r->computed_tokens = 0;
        kv_release(inst->kv, r, &req_of(r)->kv, now);
        waiting_insert(inst, r);
        r->preemptions++;
        inst->stats.preemptions++;
        return true;
    }
    return false;
}

/* Operator-level preemption: the operators that stopped items finished
 * inside their unfinished layer when their iteration was cut are not run
 * again: their time (the largest among the plan's items, at most one layer
 * of this iteration) comes off this iteration's. */
static void take_op_credit(instance *inst)
{
    sim_time_ns credit = 0;
    int32_t layers = 0;
    for (int32_t i = 0; i < inst->plan.n_items; i++) {
        req *q = req_of(inst->plan.items[i].req);
        if (q->op_credit_ns > credit)
            credit = q->op_credit_ns, layers = inst->plan.items[i].layers;
        q->op_credit_ns = 0;
    }
    if (credit <= 0 || layers <= 0)
        return;
    double layer_ns = opcut_layer_ns(&inst->cost_now, layers);
    if ((double)credit > layer_ns)
        credit = (sim_time_ns)layer_ns;
    if (credit >= inst->cost_now.latency_ns)
        credit = inst->cost_now.latency_ns - 1;
    opcut_scale(&inst->cost_now, inst->cost_now.latency_ns - credit);
}

/* Copying one token's KV to host memory and back over the PCIe links, if
 * the host has room for swapped KV (for policies that choose per victim). */
static double swap_ns_per_token(const instance *inst)
{
    const swap_setup *sw = &inst->ps->swap;
    if (sw->host_blocks <= 0)
        return 0;
    double bytes = sw->block_bytes_per_gpu * par_gpus(&inst->ps->par) /
                   inst->setup.block_size_tokens;
    return 1e9 * (bytes / net_link_bytes_per_s(inst->net, inst->pcie_d2h) +
                  bytes / net_link_bytes_per_s(inst->net, inst->pcie_h2d));
}

static void step(instance *inst)
{
    sim_time_ns now = sim_now(inst->eng);
    if (inst->hol_n) {
        inst->stats.hol_arrivals += inst->hol_n;
        inst->stats.hol_block_ns += (sim_time_ns)inst->hol_n * now - inst->hol_sum_ns;
        inst->hol_n = 0;
        inst->hol_sum_ns = 0;
    }
    if (inst->retain)
        retain_expire(inst->retain, inst->kv, now);
    if (!has_work(inst)) {
        go_idle(inst, now);
        update_view(inst);
        return;
    }
    /* With nothing visible to plan, an overlapping engine had planned no
     * iteration ahead: the held arrivals are planned now. */
    if (n_waiting(inst) == 0 && inst->n_running == 0)
        flush_incoming(inst);
    plan_reserve(inst);
    batch_view view = {
        .now = now,
        .setup = &inst->setup,
        .waiting = &inst->waiting,
        .n_waiting = n_waiting(inst),
        .running = (const serve_req *const *)inst->running,
        .n_running = inst->n_running,
        .kv = kv_ledger_begin(inst->kv),
        .prefill_ns = recompute_ns,
        .prefill_ctx = inst,
        .swap_ns_per_token = swap_ns_per_token(inst),
    };
    if (inst->plan.n_preempt)   /* a plan left unapplied may have set some */
        memset(inst->preempt_how, 0, (size_t)inst->plan.n_preempt);
    inst->plan = (batch_plan){.items = inst->items, .preempt = inst->preempt,
                              .preempt_how = inst->preempt_how};
    inst->policy->form(inst->policy_state, &view, &inst->plan);
    if (inst->plan.n_items == 0 && inst->policy->streams && inst->plan.n_preempt == 0) {
        /* Every request waits for its next chunk (api/batch.h, streams). */
        go_idle(inst, now);
        update_view(inst);
        return;
    }
    if (inst->plan.n_items == 0 && kv_used_blocks(inst->kv) > 0) {
        /* Nothing can run for want of blocks (the queue's head does not fit,
         * or the only running request cannot grow). Waiting requests
         * that brought their KV (moved or handed off here) hold blocks, as a
         * waiting request never does in vLLM: the last of them gives its KV
         * up (it will recompute) and the plan is made again. With none, the
         * blocks are held for requests on their way out (hand-offs waiting
         * for decode room, serve/disagg.h): wait for them to be released
         * (instance_release_kv wakes the instance). */
        if ((inst->retain && retain_release_one(inst->retain, inst->kv, now)) ||
            drop_waiting_kv(inst, now)) {   /* pins give way first */
            step(inst);
            return;
        }
        if (inst->n_running == 0) {
            go_idle(inst, now);
            update_view(inst);
            return;
        }
        if (inst->plan.n_preempt > 0 && inst->partner) {
            /* semi-PD: the only running request cannot grow for blocks the
             * partner holds; it gives its own back and waits. */
            apply_preemptions(inst, now);
            go_idle(inst, now);
            update_view(inst);
            poke_partner(inst);
            return;
        }
    }
    /* A policy must make progress when there is work: an empty plan here
     * would leave the requests waiting forever. */
    SIM_ASSERT_AT(now, inst->plan.n_items > 0);
    if (inst->lora)
        inst->lora_load_ns = lora_plan(inst->lora, &view, &inst->plan);
    if (inst->spec)
        spec_plan(inst->spec, &view, &inst->plan);

    apply_preemptions(inst, now);
    batch_shape shape;
    apply_items(inst, now, &shape);
    /* Arrivals held back from this plan are seen by the next one. */
    flush_incoming(inst);
    update_view(inst);

    if (inst->ep)
        shape.moe = ep_step(inst->ep, inst->iter_tokens);
    if (inst->offload)
        shape.offload = offload_step(inst->offload, inst->iter_tokens);
    cost_iteration(inst->cost, &shape, &inst->cost_now);
    if (inst->gpu_time_scale != 1 || inst->energy_scale != 1 || inst->sm_share > 0)
        scale_cost(inst, &inst->cost_now);
    if (inst->spec)
        spec_add_cost(inst->spec, &shape, &inst->cost_now);
    if (inst->lora) {   /* the LoRA operators, and the loads the iteration waits for */
        lora_add_cost(inst->lora, inst->iter_tokens, &inst->cost_now);
        inst->cost_now.latency_ns += inst->lora_load_ns;
        inst->cost_now.energy_j += inst->idle_w * (double)inst->lora_load_ns / 1e9;
    }
    if (inst->policy->cut)
        take_op_credit(inst);
    SIM_ASSERT_AT(now, inst->cost_now.latency_ns > 0);
    accumulate_cost(inst, &inst->cost_now);
    inst->busy = 1;
    inst->iter_start_ns = now;
    inst->compute_ns = inst->cost_now.latency_ns;
    inst->compute_waits = inst->compute_done = false;
    inst->cut_done = false;
    inst->block_done_ns = inst->layer_done_ns = now;
    inst->layer_loads_now = false;
    cost_result seen = inst->cost_now;
    inst->swaps_now = inst->swap_out_now > 0 || inst->swap_in_now > 0;
    if (inst->swaps_now)
        seen.latency_ns += (sim_time_ns)start_copies(inst, &inst->cost_now);
    inst->loads_now = inst->ps->kv_tiers.n && start_tier_io(inst);
    inst->lora_loads_now = inst->lora && inst->ps->lora.over_links && start_lora_loads(inst);
    if (inst->hooks.observer) {
        iter_info it = {inst->index, now, inst->plan.items, inst->plan.n_items,
                        &seen, inst->kv, &inst->waiting, n_waiting(inst)};
        inst->hooks.observer(inst->hooks.observer_ctx, &it);
    }
    if (inst->copies_pending &&
        (!inst->ps->swap.overlap || inst->loads_now || inst->lora_loads_now)) {
        inst->compute_waits = true;   /* the end is scheduled when they finish */
        return;
    }
    inst->iter_end_ev =
        sim_schedule(inst->eng, now + inst->compute_ns, PHASE_ITER_END, EV_ITER_END, inst, 0);
}

/* The delay the copies added to the iteration: the GPUs idle through it. */
static void add_copy_delay(instance *inst, sim_time_ns delay)
{
    if (delay <= 0)
        return;
    if (!inst->lora_loads_now || inst->swaps_now || inst->loads_now)
        inst->stats.swap_ns += delay;   /* (as before: a wait for adapters alone is not a swap) */
    inst->stats.busy_ns += delay;
    inst->cost_now.latency_ns += delay;
    double j = inst->idle_w * (double)delay / 1e9;
    inst->cost_now.energy_j += j;
    inst->stats.energy_j += j;
}

static void finish_iteration(instance *inst, sim_time_ns now);

/* The iteration waited `delay` for tier loads: each of its requests still
 * before its first token waited with it (TTFT's loading part). */
static void charge_load_stall(instance *inst, sim_time_ns delay)
{
    inst->stats.kv_load_ns += delay;
    for (int32_t i = 0; i < inst->plan.n_items; i++) {
        const serve_req *r = inst->plan.items[i].req;
        if (r->generated_tokens == 0)
            req_of(r)->load_stall_ns += delay;
    }
}

/* Layer-by-layer loads (a tier's load_mode layerwise, as LMCache and
 * Mooncake overlap them): layer l computes once its KV is in and layer l-1
 * is done. With the loads spread evenly over the model's L layers, the
 * blocking copies (swaps, blocking tiers) done Tb after the start, the
 * layerwise loads Tl and compute c, the last layer ends at
 * max(max(Tb, Tl / L) + c, Tl + c / L): the stall is that less c, about
 * one layer's load when loading is faster than computing, Tl - c (L-1) / L
 * when slower. Layered prefill (a layer group per iteration) is not
 * modelled: every iteration is taken to run all L layers. */
static sim_time_ns layerwise_stall(const instance *inst)
{
    int64_t layers = inst->setup.model_layers > 0 ? inst->setup.model_layers : 1;
    sim_time_ns tb = inst->block_done_ns - inst->iter_start_ns;
    sim_time_ns tl = inst->layer_done_ns - inst->iter_start_ns;
    sim_time_ns c = inst->compute_ns;
    sim_time_ns first = (tl + layers - 1) / layers;
    sim_time_ns a = tb > first ? tb : first;
    sim_time_ns b = tl + (c + layers - 1) / layers - c;
    return a > b ? a : b;
}

static void on_copy_done(void *ctx, net_xfer x, int64_t tag, sim_time_ns now)
{
    (void)x;
    instance *inst = ctx;
    SIM_ASSERT_AT(now, inst->copies_pending > 0);
    if (tag == 4)
        inst->layer_done_ns = now;
    else
        inst->block_done_ns = now;
    if (--inst->copies_pending)
        return;
    if (inst->compute_waits) {
        sim_time_ns delay = inst->layer_loads_now ? layerwise_stall(inst)
                                                  : now - inst->iter_start_ns;
        if (inst->loads_now)
            charge_load_stall(inst, delay);
        if (inst->lora_loads_now)
            lora_add_stall(inst->lora, delay);
        add_copy_delay(inst, delay);
        sim_schedule(inst->eng, inst->iter_start_ns + delay + inst->compute_ns, PHASE_ITER_END,
                     EV_ITER_END, inst, 0);
    } else if (inst->compute_done) {
        add_copy_delay(inst, now - (inst->iter_start_ns + inst->compute_ns));
        finish_iteration(inst, now);
    }
}

/* Token gaps of one iteration, gathered into runs of equal gaps: most
 * requests of a batch also emitted in the one before, so they share a gap. */
typedef struct gap_run {
    sim_time_ns gap;
    uint64_t n;
} gap_run;

static void gap_add(instance *inst, gap_run *run, sim_time_ns gap)
{
    if (gap == run->gap) {
        run->n++;
        return;
    }
    metrics_token_gaps(inst->metrics, run->gap, run->n);
    *run = (gap_run){gap, 1};
}

static void emit_token(instance *inst, serve_req *r, sim_time_ns now, gap_run *run)
{
    r->generated_tokens++;
    if (r->generated_tokens == 1) {
        r->first_token_ns = now;
    } else {
        sim_time_ns gap = now - r->last_token_ns;
        if (gap > r->tbt_max_ns)
            r->tbt_max_ns = gap;
        gap_add(inst, run, gap);
    }
    r->last_token_ns = now;
    if (r->generated_tokens == r->output_tokens) {
        r->state = REQ_FINISHED;
        sim_time_ns pin_until = inst->retain ? retain_turn_end(inst->retain, inst->kv, r,
                                                               &req_of(r)->kv, now) : 0;
        if (pin_until > 0)   /* pinned: end the pin then */
            sim_schedule(inst->eng, pin_until, PHASE_TRANSFER, EV_PIN_EXPIRY, inst, 0);
        else
            kv_release(inst->kv, r, &req_of(r)->kv, now);
        inst->view->outstanding_tokens -= 1;   /* the last token is never fed back */
        inst->stats.completed++;
        if (inst->lora)
            lora_finish(inst->lora, r);
        metrics_finish(inst->metrics, r, now, inst->stream_ns);
    }
}

static void do_detach(instance *inst, serve_req *r);
static void rewind_to(instance *inst, serve_req *r, int32_t keep);

static void finish_iteration(instance *inst, sim_time_ns now)
{
    double energy_per_token =
        inst->iter_tokens ? inst->cost_now.energy_j / (double)inst->iter_tokens : 0;
    const int32_t *extras = inst->spec ? spec_plan_extras(inst->spec, inst->plan.n_items) : NULL;
    int32_t finished = 0, first_tokens = 0;
    gap_run run = {0, 0};
    for (int32_t i = 0; i < inst->plan.n_items; i++) {
        /* The batch's requests are scattered in memory and cold by now
         * (other instances ran since): fetch a few ahead. */
        if (i + 4 < inst->plan.n_items)
            __builtin_prefetch(inst->plan.items[i + 4].req, 1);
        serve_req *r = (serve_req *)inst->plan.items[i].req;
        int32_t q = inst->plan.items[i].tokens, layers = inst->plan.items[i].layers;
        r->energy_j += energy_per_token * q;
        if (inst->rewinds_pending && req_of(r)->rewind_to >= 0) {
            /* Its context was updated meanwhile: this work is on replaced
             * tokens (serve/stream.h). */
            inst->rewinds_pending--;
            inst->stats.stream_invalidated_tokens += (uint64_t)q;
            rewind_to(inst, r, req_of(r)->rewind_to);
            continue;
        }
        if (layers) {   /* layered prefill: credited after the last group */
            r->layers_done += layers;
            if (r->layers_done < inst->setup.model_layers)
                continue;
            r->layers_done = 0;
        }
        if (extras && extras[i]) {
            /* Verified: the pending token and the accepted drafts are
             * computed, and the accepted drafts emitted with the bonus
             * token (emit_token below adds that one). */
            int32_t a = spec_accept_item(inst->spec, i, r);
            r->energy_j += energy_per_token * extras[i];
            r->generated_tokens += a;
            q += a;
        }
        r->computed_tokens += q;
        /* Only a block that filled up is new to the cache: most decodes
         * fill none, and skipping them spares a cold read of their KV state
         * (blocks loaded from a lower tier are offered at the next fill). */
        if (inst->ps->prefix_caching && (r->computed_tokens - q) / inst->setup.block_size_tokens !=
                                            r->computed_tokens / inst->setup.block_size_tokens)
            kv_commit(inst->kv, r, &req_of(r)->kv);
        inst->stats.tokens += (uint64_t)q;
        inst->view->outstanding_tokens -= q;
        if (r->computed_tokens == req_seq_tokens(r)) {
            emit_token(inst, r, now, &run);
            finished += r->state == REQ_FINISHED;
            first_tokens += r->generated_tokens == 1 && r->state == REQ_RUNNING;
        }
    }
    metrics_token_gaps(inst->metrics, run.gap, run.n);
    if (finished) {
        int32_t kept = 0;
        for (int32_t i = 0; i < inst->n_running; i++) {
            serve_req *r = inst->running[i];
            if (r->state == REQ_FINISHED)
                inst->hooks.finished(inst->hooks.ctx, inst, r);
            else
                inst->running[kept++] = r;
        }
        inst->n_running = kept;
    }
    inst->busy = 0;
    /* Detaches asked while the iteration ran, then prefill-only hand-offs,
     * before the next iteration is planned. */
    for (int32_t i = 0; i < inst->n_detach_later; i++) {
        serve_req *r = inst->detach_later[i];
        if (r->state != REQ_FINISHED) {
            do_detach(inst, r);
            inst->hooks.detached(inst->hooks.ctx, inst, r);
        }
    }
    inst->n_detach_later = 0;
    if (first_tokens && inst->ps->role == POOL_PREFILL && inst->hooks.prefill_done) {
        for (int32_t i = 0; i < inst->plan.n_items; i++) {
            serve_req *r = (serve_req *)inst->plan.items[i].req;
            if (r->state == REQ_RUNNING && r->generated_tokens == 1 &&
                r->computed_tokens == req_seq_tokens(r) - 1 && r->instance == inst->index)
                inst->hooks.prefill_done(inst->hooks.ctx, inst, r);
        }
    }
    inst->plan.n_items = 0;
    step(inst);   /* refreshes the view, also when going idle */
    if (inst->partner)
        poke_partner(inst);
}

void instance_on_iter_end(sim_engine *eng, void *ctx, const sim_event *ev)
{
    (void)ctx;
    instance *inst = ev->data;
    if (inst->copies_pending) {   /* overlapped copies outlast the compute */
        inst->compute_done = true;
        return;
    }
    finish_iteration(inst, sim_now(eng));
}

void instance_on_wake(sim_engine *eng, void *ctx, const sim_event *ev)
{
    (void)ctx;
    instance *inst = ev->data;
    inst->wake_pending = 0;
    if (inst->busy)
        return;
    accrue_idle(inst, sim_now(eng));
    step(inst);
}

static void wake(instance *inst);

void instance_on_pin_expiry(sim_engine *eng, void *ctx, const sim_event *ev)
{
    (void)ctx;
    instance *inst = ev->data;
    retain_expire(inst->retain, inst->kv, sim_now(eng));
    update_view(inst);
    if (has_work(inst))
        wake(inst);   /* it may have waited for these blocks */
}

static bool in_flight(const instance *inst, const serve_req *r);

/* Cuts r's computed tokens back to `keep` (their KV blocks stay held for
 * the tokens to come; swapped-out blocks past them are given back). */
static void rewind_to(instance *inst, serve_req *r, int32_t keep)
{
    req_of(r)->rewind_to = -1;
    if (r->computed_tokens <= keep)
        return;
    int32_t drop = r->computed_tokens - keep;
    r->computed_tokens = keep;
    r->layers_done = 0;
    inst->view->outstanding_tokens += drop;
    inst->stats.stream_invalidated_tokens += (uint64_t)drop;
    if (r->swapped_blocks) {
        int32_t blocks = (int32_t)kv_blocks_for(inst->kv, keep);
        inst->host_blocks_used -= r->swapped_blocks - blocks;
        r->swapped_blocks = blocks;
    }
}

void instance_rewind(instance *inst, serve_req *r, int32_t keep)
{
    if (in_flight(inst, r)) {   /* dropped at the iteration's end */
        if (req_of(r)->rewind_to < 0)
            inst->rewinds_pending++;
        req_of(r)->rewind_to = keep;
        return;
    }
    rewind_to(inst, r, keep);
    update_view(inst);
    instance_notify(inst);
}

void instance_notify(instance *inst)
{
    if (has_work(inst))
        wake(inst);
}

static void wake(instance *inst)
{
    if (!inst->busy && !inst->wake_pending) {
        inst->wake_pending = 1;
        sim_schedule(inst->eng, sim_now(inst->eng), PHASE_WAKE, EV_WAKE, inst, 0);
    }
}

/* Operator-level preemption (api/batch.h): asks the policy whether the
 * iteration in flight should end early for r, which just joined the queue,
 * and if so ends it at the boundary the policy chose. */
static void try_cut(instance *inst, serve_req *r)
{
    sim_time_ns now = sim_now(inst->eng);
    if (inst->cut_done || inst->spec || inst->copies_pending || inst->compute_waits ||
        inst->compute_done || inst->loads_now || inst->plan.n_items == 0)
        return;
    int32_t layers = inst->plan.items[0].layers;
    for (int32_t i = 0; i < inst->plan.n_items; i++)
        if (inst->plan.items[i].layers != layers || layers <= 0)
            return;
    batch_flight f = {.start_ns = inst->iter_start_ns,
                      .end_ns = inst->iter_start_ns + inst->compute_ns,
                      .items = inst->plan.items, .n_items = inst->plan.n_items,
                      .layers_run = layers, .tokens = inst->iter_tokens};
    opcut_points(&inst->cost_now, inst->iter_start_ns, layers, now, &f.layer, &f.op);
    batch_view view = {
        .now = now,
        .setup = &inst->setup,
        .waiting = &inst->waiting,
        .n_waiting = n_waiting(inst),
        .running = (const serve_req *const *)inst->running,
        .n_running = inst->n_running,
        .kv = NULL,
    };
    batch_cut how = inst->policy->cut(inst->policy_state, &view, &f, r);
    const batch_cut_point *p = how == BATCH_CUT_OP ? &f.op : how == BATCH_CUT_LAYER ? &f.layer
                                                                                  : NULL;
    if (!p || !p->possible || p->at_ns >= f.end_ns)
        return;
    SIM_ASSERT_AT(now, p->at_ns >= now && p->layers_kept < layers);
    sim_cancel(inst->eng, inst->iter_end_ev);
    inst->cut_done = true;
    /* The iteration ends at the point: its time, energy and terms shrink
     * alike (the stats took the whole iteration when it started). */
    cost_result before = inst->cost_now;
    opcut_scale(&inst->cost_now, p->at_ns - inst->iter_start_ns);
    instance_stats *st = &inst->stats;
    st->busy_ns -= before.latency_ns - inst->cost_now.latency_ns;
    st->energy_j -= before.energy_j - inst->cost_now.energy_j;
    st->weight_bytes -= before.weight_bytes - inst->cost_now.weight_bytes;
    st->kv_bytes -= before.kv_bytes - inst->cost_now.kv_bytes;
    for (int k = 0; k < OP_KIND_COUNT; k++)
        st->term_ns[k] -= before.term_ns[k] - inst->cost_now.term_ns[k];
    inst->compute_ns = inst->cost_now.latency_ns;
    if (how == BATCH_CUT_OP)
        st->cuts_op++;
    else
        st->cuts_layer++;
    st->cut_saved_ns += f.end_ns - p->at_ns;
    /* Items keep the layers they finished; one that finished none leaves
     * the iteration (it stays running, holding its KV). */
    int32_t kept = 0;
    int64_t tokens = 0;
    for (int32_t i = 0; i < inst->plan.n_items; i++) {
        batch_item it = inst->plan.items[i];
        req_of(it.req)->op_credit_ns = p->credit_ns;
        if (p->layers_kept == 0)
            continue;
        it.layers = p->layers_kept;
        tokens += it.tokens;
        inst->plan.items[kept++] = it;
    }
    inst->plan.n_items = kept;
    inst->iter_tokens = tokens;
    inst->iter_end_ev =
        sim_schedule(inst->eng, p->at_ns, PHASE_ITER_END, EV_ITER_END, inst, 0);
}

void instance_enqueue(instance *inst, serve_req *r)
{
    SIM_ASSERT(r->state == REQ_WAITING && r->instance == inst->index);
    r->pool = inst->pool;
    inst->view->outstanding_tokens += outstanding_of(r);
    if (inst->busy) {
        inst->hol_n++;
        inst->hol_sum_ns += sim_now(inst->eng);
    }
    /* A policy that cuts iterations schedules on arrivals (FlowPrefill's
     * event-driven scheduler): it sees them at once, even on an engine that
     * plans ahead. */
    if (inst->plan_ahead && inst->busy && !inst->policy->cut) {   /* the next plan is made */
        sim_grow((void **)&inst->incoming, &inst->incoming_cap, (size_t)inst->n_incoming + 1,
                 sizeof *inst->incoming);
        inst->incoming[inst->n_incoming++] = r;
    } else {
        waiting_insert(inst, r);
        if (inst->busy && inst->policy->cut)
            try_cut(inst, r);
    }
    update_view(inst);
    wake(inst);
}

/* ---- moves ---------------------------------------------------------------- */

static void do_detach(instance *inst, serve_req *r)
{
    SIM_ASSERT(r->instance == inst->index);
    if (r->state == REQ_WAITING)
        waiting_remove(inst, r);
    else {
        SIM_ASSERT(r->state == REQ_RUNNING);
        running_remove(inst, r);
    }
    /* A swapped-out request leaves its host copy: it recomputes. */
    if (r->swapped_blocks) {
        inst->host_blocks_used -= r->swapped_blocks;
        r->swapped_blocks = 0;
        inst->stats.recomputed_tokens += (uint64_t)r->computed_tokens;
        inst->view->outstanding_tokens += r->computed_tokens;
        r->computed_tokens = 0;
    }
    r->layers_done = 0;
    req_of(r)->op_credit_ns = 0;
    inst->view->outstanding_tokens -= outstanding_of(r);
    r->state = REQ_MOVING;
    update_view(inst);
    if (inst->state == INST_DRAINING && !has_work(inst) && !inst->busy && inst->hooks.emptied)
        inst->hooks.emptied(inst->hooks.ctx, inst);
}

/* Whether r is part of the iteration now running (a scan: detaches are
 * rare, iterations are not). */
static bool in_flight(const instance *inst, const serve_req *r)
{
    if (!inst->busy || r->state != REQ_RUNNING)
        return false;
    for (int32_t i = 0; i < inst->plan.n_items; i++)
        if (inst->plan.items[i].req == r)
            return true;
    return false;
}

void instance_detach(instance *inst, serve_req *r)
{
    SIM_ASSERT(r->instance == inst->index &&
               (r->state == REQ_WAITING || r->state == REQ_RUNNING));
    if (in_flight(inst, r)) {
        sim_grow((void **)&inst->detach_later, &inst->detach_cap,
                 (size_t)inst->n_detach_later + 1, sizeof *inst->detach_later);
        inst->detach_later[inst->n_detach_later++] = r;
        return;
    }
    do_detach(inst, r);
    inst->hooks.detached(inst->hooks.ctx, inst, r);
}

static void wake(instance *inst);

void instance_release_kv(instance *inst, serve_req *holder, kv_req *k)
{
    kv_release(inst->kv, holder, k, sim_now(inst->eng));
    update_view(inst);
    if (has_work(inst))
        wake(inst);   /* it may have idled for want of these blocks */
    if (inst->partner)
        poke_partner(inst);
}

bool instance_reserve(instance *inst, serve_req *r)
{
    SIM_ASSERT(r->kv_blocks == 0);
    int64_t need = kv_blocks_for(inst->kv, (int64_t)r->computed_tokens + 1);
    if (need > kv_free_blocks_of(inst->kv))
        return false;
    kv_grow(inst->kv, r, &req_of(r)->kv, 1, sim_now(inst->eng));
    update_view(inst);
    return true;
}

bool instance_reserve_blocks(instance *inst, serve_req *holder, kv_req *k, int64_t blocks)
{
    SIM_ASSERT(holder->computed_tokens == 0 && blocks >= holder->kv_blocks);
    if (blocks - holder->kv_blocks > kv_free_blocks_of(inst->kv))
        return false;
    kv_grow(inst->kv, holder, k, (int32_t)(blocks * inst->setup.block_size_tokens),
            sim_now(inst->eng));
    update_view(inst);
    return true;
}

void instance_attach(instance *inst, serve_req *r)
{
    SIM_ASSERT(r->state == REQ_MOVING);
    if (r->instance != inst->index) {   /* not a move that went back */
        r->moves++;
        inst->stats.moved_in++;
    }
    r->instance = inst->index;
    r->pool = inst->pool;
    r->state = REQ_WAITING;
    req_of(r)->kv.n_registered = 0;
    kv_commit(inst->kv, r, &req_of(r)->kv);
    inst->view->outstanding_tokens += outstanding_of(r);
    if (req_of(r)->rewind_to >= 0)   /* its context was updated on the way */
        rewind_to(inst, r, req_of(r)->rewind_to);
    waiting_insert(inst, r);
    update_view(inst);
    wake(inst);
}

bool instance_attach_running(instance *inst, serve_req *r)
{
    SIM_ASSERT(r->state == REQ_MOVING);
    if (inst->n_running >= inst->setup.max_seqs || !req_is_decode(r) ||
        r->computed_tokens + 1 > r->kv_cap_tokens)
        return false;
    if (r->instance != inst->index) {
        r->moves++;
        inst->stats.moved_in++;
    }
    r->instance = inst->index;
    r->pool = inst->pool;
    r->state = REQ_RUNNING;
    r->admit_seq = ++inst->admit_seq;
    req_of(r)->kv.n_registered = 0;
    kv_commit(inst->kv, r, &req_of(r)->kv);
    inst->view->outstanding_tokens += outstanding_of(r);
    sim_grow((void **)&inst->running, &inst->run_cap, (size_t)inst->n_running + 1,
             sizeof *inst->running);
    inst->running[inst->n_running++] = r;
    update_view(inst);
    wake(inst);
    return true;
}

static void poke_partner(instance *inst)
{
    instance *p = inst->partner;
    update_view(p);   /* the shared cache changed under its view */
    if (!p->busy && has_work(p))
        wake(p);
}

void instance_set_partner(instance *a, instance *b)
{
    SIM_ASSERT(a->kv == b->kv);
    a->partner = b;
    b->partner = a;
}

kv_cache *instance_kv_mut(instance *inst) { return inst->kv; }

void instance_set_sm(instance *inst, double gpu_time_scale, double energy_scale,
                     double sm_share)
{
    inst->gpu_time_scale = gpu_time_scale;
    inst->energy_scale = energy_scale;
    inst->sm_share = sm_share;
}

/* ---- reading ---------------------------------------------------------------- */

void instance_get_stats(const instance *inst, instance_stats *out)
{
    *out = inst->stats;
    out->n_waiting = n_queued(inst);
    out->n_running = inst->n_running;
    if (inst->spec)
        spec_get_stats(inst->spec, &out->spec);
    if (inst->lora)
        lora_get_stats(inst->lora, &out->lora);
}

const lora *instance_lora(const instance *inst) { return inst->lora; }

const kv_cache *instance_kv(const instance *inst) { return inst->kv; }
double instance_idle_power_w(const instance *inst) { return inst->idle_w; }
const sim_rb_tree *instance_waiting(const instance *inst) { return &inst->waiting; }

const serve_req *const *instance_running(const instance *inst, int32_t *n)
{
    *n = inst->n_running;
    return (const serve_req *const *)inst->running;
}

const ep_stats *instance_ep_stats(const instance *inst)
{
    return inst->ep ? ep_get_stats(inst->ep) : NULL;
}

const offload_stats *instance_offload_stats(const instance *inst)
{
    return inst->offload ? offload_get_stats(inst->offload) : NULL;
}
