/* A serving instance (see instance.h).
 *
 * Invariants, checked where they can break:
 *  - a request is in exactly one of: the waiting queue (REQ_WAITING), the
 *    running set (REQ_RUNNING), or gone (REQ_FINISHED, handed to release);
 *  - KV blocks held by requests sum to kv.used_blocks <= kv.total_blocks;
 *  - at most one iteration is in flight; `busy` says whether one is;
 *  - load->outstanding_tokens is the sum over the instance's requests of
 *    pending tokens plus output tokens still to generate.
 *
 * The waiting queue is an array with a moving head, kept sorted by the
 * ordering policy's key (then arrival, then id), so that the batch policy
 * sees it as one contiguous slice in order. Arrivals under FCFS append and
 * admissions take from the front, both O(1), which is the common case; any
 * other insertion or removal moves the entries behind it. The plan arrays
 * are reused between iterations: nothing is allocated per iteration once
 * they have grown to the largest queue seen.
 *
 * Preemption: recompute drops the request's KV (it is prefilled again);
 * swap copies the KV of its computed tokens to host memory at PCIe speed
 * and back when it is admitted again, the copies either adding to the
 * iteration's time or overlapping its compute. */
#include "serve/instance.h"
#include "serve/req.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct instance {
    int32_t index;
    sim_engine *eng;
    uint32_t kind_iter_end, kind_wake;
    batch_setup setup;
    const batch_policy_ops *policy;
    void *policy_state;
    const order_policy_ops *order;
    void *order_state;
    swap_setup swap;
    int64_t host_blocks_used;
    double swap_out_now, swap_in_now;   /* bytes per GPU, this iteration */
    cost_model *cost;
    double idle_w;
    kv_cache *kv;
    metrics *metrics;
    inst_load *load;
    void (*release)(void *ctx, serve_req *r);
    void *release_ctx;
    iter_observer_fn observer;
    void *observer_ctx;

    serve_req **waiting;     /* live entries are [wait_head, wait_head + n_waiting) */
    size_t wait_head, wait_cap;
    int32_t n_waiting;
    serve_req **running;     /* admission order */
    size_t run_cap;
    int32_t n_running;

    batch_item *items;       /* the plan, then the iteration in flight */
    const serve_req **preempt;
    batch_seq *prefill;
    size_t plan_cap;
    batch_plan plan;
    cost_result cost_now;
    int64_t iter_tokens;

    int busy, wake_pending, open;
    sim_time_ns idle_since;
    uint64_t admit_seq;
    instance_stats stats;
};

instance *instance_create(sim_engine *eng, const instance_setup *s, sim_err *err)
{
    instance *inst = sim_xcalloc(1, sizeof *inst);
    inst->index = s->index;
    inst->eng = eng;
    inst->kind_iter_end = s->kind_iter_end;
    inst->kind_wake = s->kind_wake;
    inst->setup = s->batch;
    inst->policy = s->policy;
    inst->order = s->order;
    inst->swap = s->swap;
    inst->metrics = s->metrics;
    inst->load = s->load;
    inst->release = s->release;
    inst->release_ctx = s->release_ctx;
    inst->observer = s->observer;
    inst->observer_ctx = s->observer_ctx;
    inst->kv = kv_create(s->batch.kv_total_blocks, s->batch.block_size_tokens,
                         s->prefix_caching, sim_now(eng));
    *inst->load = (inst_load){.kv_free_blocks = s->batch.kv_total_blocks};
    inst->cost = cost_model_create(s->cost_name, s->cost, s->cost_params, s->cost_path, err);
    if (!inst->cost ||
        s->policy->init(&inst->setup, s->policy_params, s->policy_path,
                        &inst->policy_state, err) ||
        s->order->init(s->order_seed, s->order_params, s->order_path,
                       &inst->order_state, err)) {
        instance_destroy(inst);
        return NULL;
    }
    inst->idle_w = cost_idle_power_w(inst->cost);
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
    cost_model_destroy(inst->cost);
    kv_destroy(inst->kv);
    free(inst->waiting);
    free(inst->running);
    free(inst->items);
    free(inst->preempt);
    free(inst->prefill);
    free(inst);
}

/* ---- queues ---------------------------------------------------------- */

static void waiting_reserve(instance *inst, size_t extra_front, size_t extra_back)
{
    size_t n = (size_t)inst->n_waiting;
    if (inst->wait_head >= extra_front &&
        inst->wait_head + n + extra_back <= inst->wait_cap)
        return;
    size_t need = n + extra_front + extra_back;
    /* Keep at least half the array free, so that recentring (a move of
     * every entry) happens once per many pushes, not on every one. */
    if (2 * need > inst->wait_cap)
        sim_grow((void **)&inst->waiting, &inst->wait_cap, 2 * need,
                 sizeof *inst->waiting);
    /* Recentre: room at the front for preempted requests, at the back for
     * arrivals. */
    size_t head = extra_front + (inst->wait_cap - need) / 4;
    memmove(inst->waiting + head, inst->waiting + inst->wait_head, n * sizeof *inst->waiting);
    inst->wait_head = head;
}

/* Queue order: the ordering key, then arrival, then id. */
static int waiting_before(const serve_req *a, const serve_req *b)
{
    if (a->order_key != b->order_key)
        return a->order_key < b->order_key;
    if (a->arrival_ns != b->arrival_ns)
        return a->arrival_ns < b->arrival_ns;
    return a->id < b->id;
}

/* Inserts r at its place in the sorted queue. */
static void waiting_insert(instance *inst, serve_req *r)
{
    r->order_key = inst->order->key(inst->order_state, r);
    serve_req **w = inst->waiting + inst->wait_head;
    int32_t n = inst->n_waiting;
    if (n == 0 || !waiting_before(r, w[n - 1])) {   /* the common case: last */
        waiting_reserve(inst, 0, 1);
        inst->waiting[inst->wait_head + (size_t)inst->n_waiting++] = r;
        return;
    }
    int32_t lo = 0, hi = n - 1;   /* first entry that r goes before */
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (waiting_before(r, w[mid]))
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo == 0) {
        waiting_reserve(inst, 1, 0);
        inst->waiting[--inst->wait_head] = r;
    } else {
        waiting_reserve(inst, 0, 1);
        w = inst->waiting + inst->wait_head;
        memmove(w + lo + 1, w + lo, (size_t)(n - lo) * sizeof *w);
        w[lo] = r;
    }
    inst->n_waiting++;
}

/* Drops the entries that are no longer REQ_WAITING (admitted this step). */
static void waiting_compact(instance *inst, int32_t admitted)
{
    serve_req **w = inst->waiting + inst->wait_head;
    int32_t k = 0;
    while (k < admitted && w[k]->state != REQ_WAITING)
        k++;
    if (k == admitted) {   /* taken from the front: O(1) */
        inst->wait_head += (size_t)k;
        inst->n_waiting -= k;
        return;
    }
    int32_t kept = 0;
    for (int32_t i = 0; i < inst->n_waiting; i++)
        if (w[i]->state == REQ_WAITING)
            w[kept++] = w[i];
    SIM_ASSERT(kept == inst->n_waiting - admitted);
    inst->n_waiting = kept;
}

static void plan_reserve(instance *inst)
{
    size_t need = (size_t)inst->n_waiting + (size_t)inst->n_running + 1;
    if (need <= inst->plan_cap)
        return;
    size_t cap = inst->plan_cap;
    sim_grow((void **)&inst->items, &cap, need, sizeof *inst->items);
    cap = inst->plan_cap;
    sim_grow((void **)&inst->preempt, &cap, need, sizeof *inst->preempt);
    cap = inst->plan_cap;
    sim_grow((void **)&inst->prefill, &cap, need, sizeof *inst->prefill);
    inst->plan_cap = cap;
}

/* ---- one iteration --------------------------------------------------- */

static void go_idle(instance *inst, sim_time_ns now)
{
    inst->busy = 0;
    inst->idle_since = now;
}

static void accrue_idle(instance *inst, sim_time_ns now)
{
    if (inst->open)
        inst->stats.energy_j += inst->idle_w * (double)(now - inst->idle_since) / 1e9;
}

/* Drops r's KV (recompute) or moves it to host memory (swap), and puts r
 * back in the waiting queue. */
static void preempt(instance *inst, serve_req *r, sim_time_ns now)
{
    SIM_ASSERT_AT(now, r->state == REQ_RUNNING && r->instance == inst->index);
    /* A layered prefill in flight has computed nothing yet: it restarts. */
    r->layers_done = 0;
    int64_t keep = kv_blocks_for(inst->kv, r->computed_tokens);
    if (inst->swap.mode == PREEMPT_SWAP && r->computed_tokens > 0 &&
        inst->host_blocks_used + keep <= inst->swap.host_blocks) {
        r->swapped_blocks = (int32_t)keep;
        inst->host_blocks_used += keep;
        inst->swap_out_now += (double)keep * inst->swap.block_bytes_per_gpu;
    } else {
        inst->load->outstanding_tokens += r->computed_tokens;
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
    for (int32_t i = 0; i < inst->plan.n_preempt; i++)
        preempt(inst, (serve_req *)inst->plan.preempt[i], now);
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
    inst->swap_in_now += r->swapped_blocks * inst->swap.block_bytes_per_gpu;
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
    int32_t admitted = 0;
    int64_t tokens = 0;
    *shape = (batch_shape){.prefill = inst->prefill};
    SIM_ASSERT_AT(now, inst->plan.n_items <= s->max_seqs);
    for (int32_t i = 0; i < inst->plan.n_items; i++) {
        serve_req *r = (serve_req *)inst->plan.items[i].req;
        SIM_ASSERT_AT(now, r->instance == inst->index && r->state != REQ_FINISHED);
        if (r->state != REQ_WAITING)
            continue;
        swap_in(inst, r);
        inst->load->outstanding_tokens -= kv_admit(inst->kv, r, &req_of(r)->kv, now);
        r->state = REQ_RUNNING;
        r->admit_seq = ++inst->admit_seq;
        if (r->first_scheduled_ns < 0)
            r->first_scheduled_ns = now;
        sim_grow((void **)&inst->running, &inst->run_cap, (size_t)inst->n_running + 1,
                 sizeof *inst->running);
        inst->running[inst->n_running++] = r;
        admitted++;
    }
    for (int32_t i = 0; i < inst->plan.n_items; i++) {
        serve_req *r = (serve_req *)inst->plan.items[i].req;
        int32_t q = inst->plan.items[i].tokens;
        SIM_ASSERT_AT(now, q >= 1 && q <= req_pending_tokens(r));
        kv_grow(inst->kv, r, &req_of(r)->kv, q, now);   /* asserts the plan fits */
        int32_t layers = inst->plan.items[i].layers;
        if (layers) {   /* layered prefill: whole pending prompt, one layer group */
            SIM_ASSERT_AT(now, q == req_pending_tokens(r) &&
                          r->layers_done + layers <= s->model_layers);
            SIM_ASSERT_AT(now, !shape->prefill_layers || shape->prefill_layers == layers);
            if (layers < s->model_layers)
                shape->prefill_layers = layers;
        }
        int completes = !layers || r->layers_done + layers == s->model_layers;
        if (req_is_decode(r) && !layers)
            shape->decode_ctx_sum += r->computed_tokens, shape->n_decode++;
        else
            inst->prefill[shape->n_prefill++] = (batch_seq){q, r->computed_tokens};
        shape->n_sampled += completes && r->computed_tokens + q == req_seq_tokens(r);
        tokens += q;
    }
    SIM_ASSERT_AT(now, tokens <= s->max_batched_tokens);
    SIM_ASSERT_AT(now, inst->n_running <= s->max_seqs);
    if (admitted)
        waiting_compact(inst, admitted);
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
        st->source_terms[c->term_source[k]]++;
    }
}

/* The iteration's KV copies over PCIe (each GPU its own shard on its own
 * link): they add to the iteration, or hide under its compute when copies
 * overlap; the GPUs idle through the part that shows. */
static void add_swap_time(instance *inst, cost_result *c)
{
    double copy_ns = (inst->swap_out_now + inst->swap_in_now) /
                     inst->swap.pcie_bytes_per_s * 1e9;
    double shown_ns = inst->swap.overlap ? copy_ns - (double)c->latency_ns : copy_ns;
    if (shown_ns > 0) {
        c->latency_ns += (sim_time_ns)ceil(shown_ns);
        c->energy_j += inst->idle_w * shown_ns / 1e9;
        inst->stats.swap_ns += (sim_time_ns)ceil(shown_ns);
    }
    inst->stats.swap_out_bytes += inst->swap_out_now;
    inst->stats.swap_in_bytes += inst->swap_in_now;
    inst->swap_out_now = inst->swap_in_now = 0;
}

static void update_load(instance *inst)
{
    inst->load->n_waiting = inst->n_waiting;
    inst->load->n_running = inst->n_running;
    inst->load->kv_free_blocks = kv_free_blocks_of(inst->kv);
}

static void step(instance *inst)
{
    sim_time_ns now = sim_now(inst->eng);
    if (inst->n_waiting == 0 && inst->n_running == 0) {
        go_idle(inst, now);
        update_load(inst);
        return;
    }
    plan_reserve(inst);
    batch_view view = {
        .now = now,
        .setup = &inst->setup,
        .waiting = (const serve_req *const *)(inst->waiting + inst->wait_head),
        .n_waiting = inst->n_waiting,
        .running = (const serve_req *const *)inst->running,
        .n_running = inst->n_running,
        .kv = kv_ledger_begin(inst->kv),
    };
    inst->plan = (batch_plan){.items = inst->items, .preempt = inst->preempt};
    inst->policy->form(inst->policy_state, &view, &inst->plan);
    /* A policy must make progress when there is work: an empty plan here
     * would leave the requests waiting forever. */
    SIM_ASSERT_AT(now, inst->plan.n_items > 0);

    apply_preemptions(inst, now);
    batch_shape shape;
    apply_items(inst, now, &shape);
    update_load(inst);

    cost_iteration(inst->cost, &shape, &inst->cost_now);
    SIM_ASSERT_AT(now, inst->cost_now.latency_ns > 0);
    if (inst->swap_out_now > 0 || inst->swap_in_now > 0)
        add_swap_time(inst, &inst->cost_now);
    accumulate_cost(inst, &inst->cost_now);
    if (inst->observer) {
        iter_info it = {inst->index, now, inst->plan.items, inst->plan.n_items,
                        &inst->cost_now, inst->kv,
                        (const serve_req *const *)(inst->waiting + inst->wait_head),
                        inst->n_waiting};
        inst->observer(inst->observer_ctx, &it);
    }
    inst->busy = 1;
    sim_schedule(inst->eng, now + inst->cost_now.latency_ns, PHASE_ITER_END,
                 inst->kind_iter_end, inst, 0);
}

static void emit_token(instance *inst, serve_req *r, sim_time_ns now)
{
    r->generated_tokens++;
    if (r->generated_tokens == 1) {
        r->first_token_ns = now;
    } else {
        sim_time_ns gap = now - r->last_token_ns;
        if (gap > r->tbt_max_ns)
            r->tbt_max_ns = gap;
        metrics_token_gap(inst->metrics, gap);
    }
    r->last_token_ns = now;
    if (r->generated_tokens == r->output_tokens) {
        r->state = REQ_FINISHED;
        kv_release(inst->kv, r, &req_of(r)->kv, now);
        inst->load->outstanding_tokens -= 1;   /* the last token is never fed back */
        metrics_finish(inst->metrics, r, now);
    }
}

void instance_on_iter_end(sim_engine *eng, void *ctx, const sim_event *ev)
{
    (void)ctx;
    instance *inst = ev->data;
    sim_time_ns now = sim_now(eng);
    double energy_per_token = inst->cost_now.energy_j / (double)inst->iter_tokens;
    int32_t finished = 0;
    for (int32_t i = 0; i < inst->plan.n_items; i++) {
        serve_req *r = (serve_req *)inst->plan.items[i].req;
        int32_t q = inst->plan.items[i].tokens, layers = inst->plan.items[i].layers;
        r->energy_j += energy_per_token * q;
        if (layers) {   /* layered prefill: credited after the last group */
            r->layers_done += layers;
            if (r->layers_done < inst->setup.model_layers)
                continue;
            r->layers_done = 0;
        }
        r->computed_tokens += q;
        kv_commit(inst->kv, r, &req_of(r)->kv);
        inst->stats.tokens += (uint64_t)q;
        inst->load->outstanding_tokens -= q;
        if (r->computed_tokens == req_seq_tokens(r)) {
            emit_token(inst, r, now);
            finished += r->state == REQ_FINISHED;
        }
    }
    if (finished) {
        int32_t kept = 0;
        for (int32_t i = 0; i < inst->n_running; i++) {
            serve_req *r = inst->running[i];
            if (r->state == REQ_FINISHED)
                inst->release(inst->release_ctx, r);
            else
                inst->running[kept++] = r;
        }
        inst->n_running = kept;
    }
    inst->plan.n_items = 0;
    step(inst);   /* refreshes the routing view, also when going idle */
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

void instance_enqueue(instance *inst, serve_req *r)
{
    SIM_ASSERT(r->state == REQ_WAITING && r->instance == inst->index);
    waiting_insert(inst, r);
    update_load(inst);
    if (!inst->busy && !inst->wake_pending) {
        inst->wake_pending = 1;
        sim_schedule(inst->eng, sim_now(inst->eng), PHASE_WAKE, inst->kind_wake, inst, 0);
    }
}

void instance_open(instance *inst, sim_time_ns now)
{
    inst->open = 1;
    inst->idle_since = now;
}

void instance_close(instance *inst, sim_time_ns end)
{
    SIM_ASSERT_AT(end, !inst->busy);
    if (end > inst->idle_since)
        accrue_idle(inst, end);
    inst->idle_since = end;
}

void instance_get_stats(const instance *inst, instance_stats *out)
{
    *out = inst->stats;
    out->n_waiting = inst->n_waiting;
    out->n_running = inst->n_running;
}

const kv_cache *instance_kv(const instance *inst) { return inst->kv; }

double instance_idle_power_w(const instance *inst) { return inst->idle_w; }
