/* Prefill/decode disaggregation (DistServe, Splitwise, Mooncake): requests
 * arrive at a PREFILL pool, are prefilled there (any batch policy, chunked
 * included) and emit their first token there; then their KV travels over
 * the links (serve/net.h) to an instance of a DECODE pool, which reserves
 * the blocks before the transfer starts, and decoding goes on there.
 *
 * On when the run config has `cluster.disagg` (keys in experiments/README.md);
 * without it, a prefill pool hands requests off the substrate's way
 * (serve/cluster.c, on_prefill_done).
 *
 *  - decider: which requests go to a decode instance: "always", or those
 *    whose prompt is at least `min_prompt_tokens` long ("length"), or whose
 *    uncached part is ("uncached", BLIS/llm-d's prefix threshold). The
 *    others decode where they were prefilled.
 *  - the decode instance: the decode pool's routing policy
 *    (pools[k].policies.routing) picks among its active instances that have
 *    room for the request's blocks (prompt + the first token + one).
 *  - transfer "after_prefill": the whole KV leaves when prefill ends.
 *    "layerwise": the KV streams out layer by layer while the last prefill
 *    iteration runs: the blocks of earlier chunks and (L-1)/L of the last
 *    chunk's start at that iteration's start (when the decode instance can
 *    reserve then), the last layer's share when both the prefill and those
 *    bytes are done. So the visible transfer is max(T/L, T - T_iter (L-1)/L)
 *    roughly, with contention on the links counted. Without room at the
 *    iteration's start it falls back to after_prefill.
 *  - when_full "wait" (default; DistServe's pull model): with no decode
 *    instance able to reserve, the request stops running and its KV stays
 *    on the prefill instance, in a FIFO that is retried whenever a request
 *    finishes; prefill memory thus acts as the queue, and a full one backs
 *    up prefill. "local": the request decodes where it was prefilled.
 *
 * Cost: O(decode instances) per hand-off to pick one; the FIFO is retried
 * from its head only (strict order), O(1) when its head does not fit. */
#ifndef SERVE_DISAGG_H
#define SERVE_DISAGG_H

#include "serve/cluster.h"
#include "serve/instance.h"

typedef struct disagg disagg;

/* Reads the settings (cfg at JSON path `path`; defaults are written into
 * it); NULL with a message on bad input. The cluster must have a PREFILL
 * and a DECODE pool. */
disagg *disagg_create(cluster *c, cJSON *cfg, const char *path, sim_err *err);
void disagg_destroy(disagg *d);   /* NULL is a no-op */

/* Hooks the cluster calls. */
void disagg_on_iteration(disagg *d, const iter_info *it);
/* r, prefilled on instance i, emitted its first token and is still running. */
void disagg_on_prefill_done(disagg *d, int32_t i, serve_req *r);
/* r, detached for a hand-off (MOVE_PD_HANDOFF), left instance `from`. */
void disagg_on_detached(disagg *d, int32_t from, serve_req *r);
/* r leaves its instance otherwise (a controller's move): a layerwise
 * transfer started for it is cancelled and its reservation given back. */
void disagg_forget(disagg *d, serve_req *r);
/* Blocks were freed somewhere: retries the requests waiting for room. */
void disagg_on_freed(disagg *d);

/* semi-PD (`semi_pd` in the settings): instance k of the prefill pool and
 * instance k of the decode pool are one GPU set running two workers that
 * share the weights and the KV cache, so a hand-off moves no byte and
 * reserves nothing: the request changes worker with its blocks. Each worker
 * gets a share of the SMs (SGLang semi-PD's MPS caps; defaults prefill 0.8,
 * decode 1.0, which may sum above 1), and its operators' time is scaled
 * [assume]: a prefill worker's (compute-bound) by 1/f, a decode worker's
 * (memory-bound) by 1/min(1, f/0.5); the engine's CPU time is unchanged.
 * By default the workers do not interfere: an optimistic bound (two
 * workers at 0.8 and 1.0 then do the work of 1.8 GPUs). "contention": true
 * [assume] is the pessimistic one: an iteration that starts while the
 * other worker runs, with shares summing above 1, gets f / (f_p + f_d) of
 * the GPU (SMs for prefill, HBM bandwidth for decode, shared in proportion
 * to the caps), taken at its start. The truth needs measured co-run
 * kernels and lies between. Not modelled: changing the split at run time
 * (the SLO-aware controller). Energy: a worker's
 * iterations count f of the GPUs' power; the prefill worker draws the idle
 * power. GPU-seconds count both workers' (each pool reports its GPUs).
 * Returns whether semi-PD is on; for a pool role, the scales to apply. */
bool disagg_semi_pd(const disagg *d);
void disagg_semi_scales(const disagg *d, pool_role role, double *gpu_time_scale,
                        double *energy_scale, double *sm_share);
/* Sets every semi-PD GPU's SM shares (each within [0.05, 1]); applies from
 * each worker's next iteration (repartitioning needs no reload: semi-PD's
 * MPS caps; its cost is not modelled). false when semi-PD is off, a share
 * is out of range, or nothing changed. */
bool disagg_set_split(disagg *d, double prefill_share, double decode_share);
/* The prefill pool whose instance k a semi-PD decode instance k pairs with. */
int32_t disagg_prefill_pool(const disagg *d);

typedef struct disagg_stats {
    uint64_t handoffs;          /* requests whose KV went to a decode instance */
    uint64_t local;             /* decoded where they were prefilled */
    uint64_t waited;            /* hand-offs that waited for decode room */
    uint64_t layerwise;         /* hand-offs whose KV streamed during prefill */
    double bytes;               /* KV bytes sent */
    /* Per hand-off: prefill end to the KV at the decode instance (what the
     * request sees of the transfer, decode wait included), prefill end to
     * the decode reservation (decode admission wait), and the network time
     * of the transfer itself (start of its last part to its end). */
    pctl visible_s, wait_s, xfer_s;
    int64_t backlog_peak_blocks;   /* prefill-side blocks held by hand-offs */
    uint64_t splits;               /* semi-PD split changes */
    double prefill_sm, decode_sm;  /* semi-PD shares at the end */
    double backlog_mean_blocks;    /* time-weighted over the run */
} disagg_stats;
void disagg_get_stats(const disagg *d, disagg_stats *out);

/* Lines for a run's text summary on hand-offs (when disaggregation is on)
 * and live migrations (when any started); "" when neither. */
void disagg_moves_note(const cluster *c, char *buf, size_t size);

/* The cluster's, NULL when disaggregation is off (defined in cluster.c). */
const disagg *cluster_disagg(const cluster *c);

#endif
