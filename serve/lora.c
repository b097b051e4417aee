/* Multi-LoRA serving, a first slice (see lora.h).
 *
 * Sizes. An adapter of rank r on modules M has, per layer, r x (d_in +
 * d_out) weights for each module (A: d_in x r, B: r x d_out), in 16 bits;
 * on one GPU of a TP group a 1/tp share (vLLM shards A or B with the base
 * layer). Llama-3-8B, every linear module: 81,920 x r x 32 layers x 2
 * bytes = 5.24 MB per unit of rank (shared/specs/next-features.md H(2)).
 *
 * Costs. Per layer, a shrink GEMM (T tokens x sum d_in -> r per module)
 * and an expand GEMM (r -> sum d_out), both reading each distinct adapter
 * of the batch once (segmented kernels, SGMV/BGMV); priced by the
 * instance's cost model as GEMMs with repeat = layers [assume: the modules
 * fused into two ops per layer]. Loads: host cache -> GPU at the GPU
 * file's PCIe rate (each GPU its shard), storage -> host at
 * storage_gbps; the iteration waits for them.
 *
 * State: GPU slots and the host cache are arrays indexed by adapter with a
 * last-use clock; eviction scans for the least recently used adapter not
 * in the batch (O(adapters), only on a load). The batch's adapter set is a
 * mark array with an epoch (O(1) per request). */
#include "serve/lora.h"
#include "serve/req.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/metrics.h"
#include "serve/req.h"
#include "sim/engine.h"
#include "sim/jsoncfg.h"

#define LORA_BYTES 2.0

int lora_setup_parse(cJSON *o, const char *path, const llm_model *m, const par_layout *par,
                     lora_setup *s, sim_err *err)
{
    static const char *const keys[] = {"adapters", "popularity_zipf", "rank", "ranks",
                                       "padded", "modules",
                                       "max_loras", "max_cpu_loras", "storage_gbps",
                                       "storage_latency_ms", "load_over_links", "select",
                                       NULL};
    int64_t n, rank = 0, slots, cpu;
    double gbps, lat_ms;
    const char *modules;
    memset(s, 0, sizeof *s);
    if (!cJSON_IsObject(o))
        return sim_errf(err, "%s: expected an object {\"adapters\": N, ...}", path);
    if (jcfg_check_keys(o, path, keys, err) ||
        jcfg_int(o, path, "adapters", INT64_MIN, 1, 1 << 20, &n, err) ||
        jcfg_num(o, path, "popularity_zipf", 1.0, 0, 10, &s->zipf_s, err) ||
        (!cJSON_GetObjectItemCaseSensitive(o, "ranks") &&
         jcfg_int(o, path, "rank", 16, 1, 1024, &rank, err)) ||
        jcfg_str(o, path, "modules", "all", &modules, err) ||
        jcfg_int(o, path, "max_loras", 1, 1, 1 << 20, &slots, err) ||
        jcfg_int(o, path, "max_cpu_loras", slots, slots, 1 << 20, &cpu, err) ||
        jcfg_num(o, path, "storage_gbps", 28, 1e-3, 1e6, &gbps, err) ||
        jcfg_num(o, path, "storage_latency_ms", 0.1, 0, 1e6, &lat_ms, err) ||
        jcfg_bool(o, path, "padded", 1, &s->padded, err) ||
        jcfg_bool(o, path, "load_over_links", 0, &s->over_links, err))
        return -1;
    cJSON *ranks = cJSON_GetObjectItemCaseSensitive(o, "ranks");
    if (!ranks) {
        s->ranks[0] = (int32_t)rank;
        s->n_ranks = 1;
    } else {
        int nr = cJSON_GetArraySize(ranks);
        if (cJSON_GetObjectItemCaseSensitive(o, "rank"))
            return sim_errf(err, "%s: give \"rank\" or \"ranks\", not both", path);
        if (!cJSON_IsArray(ranks) || nr < 1 || nr > LORA_MAX_RANKS)
            return sim_errf(err, "%s.ranks: expected 1 to %d ranks (adapter i has rank "
                            "ranks[i %% n])", path, LORA_MAX_RANKS);
        s->n_ranks = nr;
        rank = 0;
        for (int i = 0; i < nr; i++) {
            cJSON *e = cJSON_GetArrayItem(ranks, i);
            if (!cJSON_IsNumber(e) || e->valuedouble != (int32_t)e->valuedouble ||
                e->valuedouble < 1 || e->valuedouble > 1024)
                return sim_errf(err, "%s.ranks[%d]: expected an integer in [1, 1024]", path, i);
            s->ranks[i] = (int32_t)e->valuedouble;
            if (s->ranks[i] > rank)
                rank = s->ranks[i];
        }
    }
    if (strcmp(modules, "all") && strcmp(modules, "attention"))
        return sim_errf(err, "%s.modules: expected one of: all, attention; got \"%s\"", path,
                        modules);
    if (m->attention != LLM_ATTN_GQA || m->experts)
        return sim_errf(err, "%s: LoRA is modelled for dense GQA models only (%s is %s)", path,
                        m->name, m->experts ? "MoE" : "MLA");
    cJSON *sel = cJSON_GetObjectItemCaseSensitive(o, "select");
    char spath[256];
    snprintf(spath, sizeof spath, "%s.select", path);
    if (sel && polar_setup_parse(sel, spath, (int32_t)n, &s->polar, err))
        return -1;
    s->on = true;
    s->adapters = (int32_t)n;
    s->rank = (int32_t)rank;
    s->attention_only = !strcmp(modules, "attention");
    s->max_loras = (int32_t)slots;
    s->max_cpu_loras = (int32_t)cpu;
    s->storage_bytes_per_s = gbps * 1e9 / 8;
    s->storage_latency_ns = lat_ms * 1e6;
    double h = m->hidden, q = (double)m->heads * m->head_dim, kv = (double)m->kv_heads * m->head_dim;
    s->sum_in = 4 * h;              /* q, k, v, o */
    s->sum_out = q + 2 * kv + h;
    s->sum_in += q - h;             /* o's input is the attention output */
    if (!s->attention_only) {
        double f = (m->gated_ffn ? 2 : 1) * (double)m->ffn;
        s->sum_in += (m->gated_ffn ? 2 : 1) * h + m->ffn;
        s->sum_out += f + h;
    }
    s->bytes_per_rank_gpu = (s->sum_in + s->sum_out) * m->layers * LORA_BYTES / par->tp;
    s->bytes_per_gpu = rank * s->bytes_per_rank_gpu;
    return 0;
}

void lora_stats_add(lora_stats *sum, const lora_stats *s)
{
    sum->batches += s->batches;
    sum->batch_adapters += s->batch_adapters;
    sum->lookups += s->lookups;
    sum->gpu_hits += s->gpu_hits;
    sum->loads += s->loads;
    sum->storage_loads += s->storage_loads;
    sum->evictions += s->evictions;
    sum->skipped += s->skipped;
    sum->load_ns += s->load_ns;
    if (s->max_batch > sum->max_batch)
        sum->max_batch = s->max_batch;
    sum->polar.selections += s->polar.selections;
    sum->polar.optimal += s->polar.optimal;
    sum->polar.regret += s->polar.regret;
    sum->polar.epochs += s->polar.epochs;
    sum->cold += s->cold;
    sum->warm += s->warm;
    sum->cold_ttft_ns += s->cold_ttft_ns;
    sum->warm_ttft_ns += s->warm_ttft_ns;
    sum->op_ns += s->op_ns;
}

void lora_summarize(const lora_stats *st, run_summary *out)
{
    out->lora_loads = st->loads;
    out->lora_storage_loads = st->storage_loads;
    out->lora_evictions = st->evictions;
    out->lora_skipped = st->skipped;
    out->lora_gpu_hit_ratio = st->lookups ? (double)st->gpu_hits / (double)st->lookups : 0;
    out->lora_adapters_per_batch =
        st->batches ? (double)st->batch_adapters / (double)st->batches : 0;
    out->lora_load_time_s = st->load_ns / 1e9;
    out->lora_op_time_s = st->op_ns / 1e9;
    out->lora_cold_requests = st->cold;
    out->lora_ttft_cold_s = st->cold ? st->cold_ttft_ns / (double)st->cold / 1e9 : 0;
    out->lora_ttft_warm_s = st->warm ? st->warm_ttft_ns / (double)st->warm / 1e9 : 0;
    out->lora_host_hit_ratio =
        st->loads ? (double)(st->loads - st->storage_loads) / (double)st->loads : 0;
    out->lora_max_adapters_per_batch = (uint64_t)st->max_batch;
    out->lora_polar_selections = st->polar.selections;
    out->lora_polar_regret = st->polar.regret;
    out->lora_polar_optimal_ratio =
        st->polar.selections ? (double)st->polar.optimal / (double)st->polar.selections : 0;
}

/* ---- the runtime ------------------------------------------------------------------ */

struct lora {
    const lora_setup *s;
    cost_model *cost;
    const llm_model *model;
    int32_t tp;
    double pcie_bytes_per_s;
    uint64_t seed;
    double *cdf;                /* Zipf CDF over adapters */
    uint64_t clock;
    uint64_t *gpu_used;         /* per adapter: last use in a GPU slot; 0: not resident */
    uint64_t *host_used;        /* per adapter: last use in the host cache; 0: not cached */
    int32_t n_gpu, n_host;
    uint32_t *mark, epoch;      /* the batch's adapters */
    uint32_t *loaded;           /* == epoch: loaded for this iteration */
    int32_t *batch;             /* and their list */
    int32_t n_batch, max_batch;
    double token_rank;          /* rank each token runs at this iteration */
    double weight_ranks;        /* sum of the batch adapters' ranks as stored */
    polar *pol;                 /* adapter selection; NULL: Zipf by request id */
    lora_load *loads;           /* over_links: this iteration's, one per batch adapter at most */
    int32_t n_loads;
    lora_stats st;
};

lora *lora_create(const lora_setup *s, const gpu_spec *g, cost_model *cost, uint64_t seed)
{
    SIM_ASSERT(s->on && s->adapters >= 1);
    lora *l = sim_xcalloc(1, sizeof *l);
    l->s = s;
    l->cost = cost;
    l->model = cost_model_setup(cost)->model;
    l->tp = cost_model_setup(cost)->par.tp;
    l->pcie_bytes_per_s = g->pcie_bw_bytes_per_s;
    l->seed = sim_stream_seed(seed, LORA_STREAM);
    size_t n = (size_t)s->adapters;
    l->cdf = sim_xmalloc(n * sizeof *l->cdf);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        l->cdf[i] = sum += pow((double)(i + 1), -s->zipf_s);
    for (size_t i = 0; i < n; i++)
        l->cdf[i] /= sum;
    l->gpu_used = sim_xcalloc(n, sizeof *l->gpu_used);
    l->host_used = sim_xcalloc(n, sizeof *l->host_used);
    l->mark = sim_xcalloc(n, sizeof *l->mark);
    l->loaded = sim_xcalloc(n, sizeof *l->loaded);
    l->batch = sim_xcalloc(n, sizeof *l->batch);
    if (s->over_links)
        l->loads = sim_xcalloc((size_t)s->max_loras, sizeof *l->loads);
    if (s->polar.on)
        l->pol = polar_create(&s->polar, s->adapters, s->max_loras,
                              sim_stream_seed(seed, LORA_STREAM + 1));
    return l;
}

void lora_destroy(lora *l)
{
    if (!l)
        return;
    free(l->cdf);
    free(l->gpu_used);
    free(l->host_used);
    free(l->mark);
    free(l->loaded);
    free(l->batch);
    free(l->loads);
    polar_destroy(l->pol);
    free(l);
}

int32_t lora_adapter(const lora *l, uint64_t id)
{
    uint64_t h = sim_stream_seed(l->seed, id);
    double u = (double)(h >> 11) * 0x1.0p-53;
    int32_t lo = 0, hi = l->s->adapters - 1;
    while (lo < hi) {   /* the first adapter whose CDF exceeds u */
        int32_t mid = lo + (hi - lo) / 2;
        if (l->cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

int32_t lora_max_batch_adapters(const lora *l) { return l->max_batch; }

double lora_affinity(const lora *l, uint64_t id)
{
    if (l->pol)   /* the adapter is picked at the instance: free slots alone */
        return l->n_gpu < l->s->max_loras ? 0.8 : 0;
    if (l->gpu_used[lora_adapter(l, id)])
        return 1;
    return l->n_gpu < l->s->max_loras ? 0.8 : 0;
}

static bool in_batch(const lora *l, int32_t a) { return l->mark[a] == l->epoch; }

static int32_t rank_of(const lora_setup *s, int32_t a);

/* polar's penalty input: the seconds a's load would take now (0: resident),
 * as `load` prices it without the links. */
static double load_s(void *ctx, int32_t a)
{
    const lora *l = ctx;
    const lora_setup *s = l->s;
    if (l->gpu_used[a])
        return 0;
    double bytes = rank_of(s, a) * s->bytes_per_rank_gpu;
    double t = bytes / l->pcie_bytes_per_s;
    if (!l->host_used[a])
        t += s->storage_latency_ns * 1e-9 + bytes * l->tp / s->storage_bytes_per_s;
    return t;
}

/* Request r's adapter: by Zipf from its id, or picked by polar the first
 * time a plan sees it (and kept with the request). */
static int32_t adapter_of(lora *l, const serve_req *r)
{
    if (!l->pol)
        return lora_adapter(l, r->id);
    req *q = req_of(r);
    if (q->lora_adapter < 0)
        q->lora_adapter = polar_select(l->pol, r->id, load_s, l);
    return q->lora_adapter;
}

static int32_t rank_of(const lora_setup *s, int32_t a) { return s->ranks[a % s->n_ranks]; }

static void add_to_batch(lora *l, int32_t a)
{
    l->mark[a] = l->epoch;
    l->batch[l->n_batch++] = a;
}

static bool preempted(const batch_plan *plan, const serve_req *r)
{
    for (int32_t i = 0; i < plan->n_preempt; i++)
        if (plan->preempt[i] == r)
            return true;
    return false;
}

/* The least recently used adapter of `used` (non-zero entries) not in the
 * batch. */
static int32_t lru_victim(const lora *l, const uint64_t *used)
{
    int32_t victim = -1;
    for (int32_t a = 0; a < l->s->adapters; a++)
        if (used[a] && !in_batch(l, a) && (victim < 0 || used[a] < used[victim]) &&
            !(l->pol && polar_keep(l->pol, a)))
            victim = a;
    if (victim < 0 && l->pol)   /* only kept adapters left: the LRU of those */
        for (int32_t a = 0; a < l->s->adapters; a++)
            if (used[a] && !in_batch(l, a) && (victim < 0 || used[a] < used[victim]))
                victim = a;
    return victim;
}

/* Brings adapter a into a GPU slot; returns the load's time in ns. */
static double load(lora *l, int32_t a)
{
    const lora_setup *s = l->s;
    double ns = 0, storage_bytes = 0;
    if (!l->host_used[a]) {   /* from storage into the host cache first */
        if (l->n_host == s->max_cpu_loras) {
            int32_t v = lru_victim(l, l->host_used);
            SIM_ASSERT(v >= 0);
            l->host_used[v] = 0;
            l->n_host--;
        }
        l->n_host++;
        storage_bytes = rank_of(s, a) * s->bytes_per_rank_gpu * l->tp;
        ns += s->storage_latency_ns + storage_bytes / s->storage_bytes_per_s * 1e9;
        l->st.storage_loads++;
    }
    l->host_used[a] = l->clock;
    if (l->n_gpu == s->max_loras) {
        int32_t v = lru_victim(l, l->gpu_used);
        SIM_ASSERT(v >= 0 && !in_batch(l, v));   /* an adapter in use is never evicted */
        l->gpu_used[v] = 0;
        l->n_gpu--;
        l->st.evictions++;
    }
    l->n_gpu++;
    l->st.loads++;
    if (s->over_links) {   /* timed by the links (the instance starts them) */
        SIM_ASSERT(l->n_loads < s->max_loras);
        l->loads[l->n_loads++] = (lora_load){storage_bytes, rank_of(s, a) * s->bytes_per_rank_gpu};
        return 0;
    }
    return ns + rank_of(s, a) * s->bytes_per_rank_gpu / l->pcie_bytes_per_s * 1e9;
}

sim_time_ns lora_plan(lora *l, const batch_view *v, batch_plan *plan)
{
    const lora_setup *s = l->s;
    if (++l->epoch == 0) {
        memset(l->mark, 0, (size_t)s->adapters * sizeof *l->mark);
        memset(l->loaded, 0, (size_t)s->adapters * sizeof *l->loaded);
        l->epoch = 1;
    }
    l->n_batch = l->n_loads = 0;
    l->clock++;
    /* Running requests keep their adapters (admissions kept them within
     * the limit). */
    for (int32_t i = 0; i < v->n_running; i++) {
        const serve_req *r = v->running[i];
        int32_t a = adapter_of(l, r);
        if (!in_batch(l, a) && !preempted(plan, r))
            add_to_batch(l, a);
    }
    SIM_ASSERT_AT(v->now, l->n_batch <= s->max_loras);
    int32_t kept = 0;
    for (int32_t i = 0; i < plan->n_items; i++) {
        const serve_req *r = plan->items[i].req;
        if (r->state == REQ_WAITING) {
            int32_t a = adapter_of(l, r);
            if (!in_batch(l, a)) {
                if (l->n_batch == s->max_loras) {
                    l->st.skipped++;
                    continue;   /* keeps its place in the queue */
                }
                add_to_batch(l, a);
            }
        }
        plan->items[kept++] = plan->items[i];
    }
    if (kept == 0) {
        /* Every planned item was over the limit (a policy that planned only
         * prompts, as prefill-first does): the running requests decode. */
        int64_t budget = v->setup->max_batched_tokens;
        for (int32_t i = 0; i < v->n_running && budget > 0; i++) {
            const serve_req *r = v->running[i];
            if (preempted(plan, r) || r->layers_done || req_pending_tokens(r) != 1 ||
                kv_need(v, r, 1) > kv_free(v))
                continue;
            kv_take(v, r, 1);
            plan->items[kept++] = (batch_item){.req = r, .tokens = 1};
            budget--;
        }
    }
    SIM_ASSERT_AT(v->now, kept > 0);
    plan->n_items = kept;
    /* The rank the kernels run each token at: the largest (padded), or the
     * token-weighted mean of the items' adapters' ranks. */
    double tok = 0, rank_tok = 0;
    for (int32_t i = 0; i < kept; i++) {
        tok += plan->items[i].tokens;
        rank_tok += (double)plan->items[i].tokens *
                    rank_of(s, adapter_of(l, plan->items[i].req));
    }
    l->token_rank = s->padded || tok == 0 ? s->rank : rank_tok / tok;
    double ns = 0;
    l->weight_ranks = 0;
    for (int32_t j = 0; j < l->n_batch; j++) {
        int32_t a = l->batch[j];
        l->weight_ranks += s->padded ? s->rank : rank_of(s, a);
        l->st.lookups++;
        if (l->gpu_used[a]) {
            l->st.gpu_hits++;
        } else {
            ns += load(l, a);
            l->loaded[a] = l->epoch;
        }
        l->gpu_used[a] = l->clock;
    }
    /* Requests scheduled for the first time: cold if they wait for a load. */
    for (int32_t i = 0; i < kept; i++) {
        const serve_req *r = plan->items[i].req;
        if (r->first_scheduled_ns < 0)
            req_of(r)->lora_cold = l->loaded[adapter_of(l, r)] == l->epoch;
    }
    if (l->n_batch > l->max_batch)
        l->max_batch = l->st.max_batch = l->n_batch;
    l->st.batches++;
    l->st.batch_adapters += (uint64_t)l->n_batch;
    sim_time_ns load_ns = (sim_time_ns)llround(ns);
    l->st.load_ns += (double)load_ns;
    return load_ns;
}

int32_t lora_take_loads(const lora *l, const lora_load **out)
{
    *out = l->loads;
    return l->n_loads;
}

void lora_add_stall(lora *l, sim_time_ns ns) { l->st.load_ns += (double)ns; }

/* A GEMM of m x k by k x n whose weights are `weights` bytes. */
static void push_gemm(op_list *ops, op_kind kind, int32_t repeat, double m, double n, double k,
                      double weights)
{
    op_desc *op = &ops->op[ops->n++];
    *op = (op_desc){.kind = kind, .repeat = repeat, .m = (int64_t)m, .n = (int64_t)n,
                    .k = (int64_t)k, .dtype = LLM_BF16};
    op->flops = 2 * m * n * k;
    op->weight_bytes = weights;
    op->bytes = (m * k + m * n) * LORA_BYTES + weights;
}

void lora_add_cost(lora *l, int64_t tokens, cost_result *c)
{
    const lora_setup *s = l->s;
    if (!l->n_batch || tokens <= 0)
        return;
    const int32_t L = l->model->layers;
    double t = (double)tokens, r = l->token_rank, tp = l->tp, wr = l->weight_ranks;
    op_list ops = {.n = 0};
    /* Shrink: T x (sum d_in / tp) -> r; expand: r -> sum d_out / tp; each
     * distinct adapter's weights read once. */
    push_gemm(&ops, OP_GEMM_QKV, L, t, r, s->sum_in / tp, wr * s->sum_in / tp * LORA_BYTES);
    push_gemm(&ops, OP_GEMM_QKV, L, t, s->sum_out / tp, r, wr * s->sum_out / tp * LORA_BYTES);
    cost_op_price price[2];
    cost_price_each(l->cost, &ops, price);
    double ns = 0, j = 0;
    for (int i = 0; i < ops.n; i++) {
        double all = price[i].ns * ops.op[i].repeat;
        ns += all;
        j += price[i].power_w * all * 1e-9;
        c->weight_bytes += ops.op[i].weight_bytes * ops.op[i].repeat;
    }
    sim_time_ns add = (sim_time_ns)llround(ns);
    c->latency_ns += add;
    c->energy_j += j * tp;
    l->st.op_ns += (double)add;
}

void lora_get_stats(const lora *l, lora_stats *out)
{
    *out = l->st;
    if (l->pol)
        polar_get_stats(l->pol, &out->polar);
}

void lora_finish(lora *l, const serve_req *r)
{
    double ttft = (double)(r->first_token_ns - r->arrival_ns);
    if (l->pol && req_of(r)->lora_adapter >= 0)
        polar_reward(l->pol, r->id, req_of(r)->lora_adapter);
    req_of(r)->lora_adapter = adapter_of(l, r);   /* its row of /adapters */
    if (req_of(r)->lora_cold)
        l->st.cold++, l->st.cold_ttft_ns += ttft;
    else
        l->st.warm++, l->st.warm_ttft_ns += ttft;
}
