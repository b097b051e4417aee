/* Serving-engine profiles: what differs between vLLM v0 and v1, SGLang and
 * TensorRT-LLM running the same model on the same GPUs. A profile is a JSON
 * file in models/engines/ (or a user's file by path), like the model and GPU
 * files, with four sections:
 *
 *   scheduler     what admitting a request reserves, the KV watermark, which
 *                 running request is preempted, whether an iteration that
 *                 preempted may admit, the default token budget, sequence
 *                 limit, batch policy and prefix caching;
 *   cuda_graphs   which batches run under CUDA graphs (outside them every
 *                 kernel launch costs CPU time the GPU waits for);
 *   cpu_overhead  the engine's CPU time per iteration as a function of the
 *                 batch, and whether it overlaps the GPU's work;
 *   request_path  the API server, tokenisation and streaming delays between
 *                 the client and the engine.
 *
 * Every constant carries its source (the section's "source"). Constants
 * come only from engine-overhead measurements (profiles, published
 * breakdowns) and from the engines' source defaults, never from fitting
 * end-to-end serving results, which are for validation only.
 *
 * The scheduler rules reach the batch policies through the serving core
 * (tool/config.c copies them into api/batch.h's batch_rules); this module
 * only loads them and prices the CPU side of an iteration. It includes
 * sim/ and cJSON, and models/ops.h for the batch's shape. */
#ifndef MODELS_ENGINE_H
#define MODELS_ENGINE_H

#include <stdbool.h>
#include <cjson/cJSON.h>
#include "models/ops.h"

/* What admitting a waiting request reserves (see api/batch.h). */
typedef enum engine_reserve {
    ENGINE_RESERVE_CHUNK,     /* the tokens it computes now */
    ENGINE_RESERVE_PROMPT,    /* its whole pending prompt */
    ENGINE_RESERVE_REQUEST,   /* its prompt and (a share of) its output */
} engine_reserve;

/* Which running request a KV shortage preempts. */
typedef enum engine_victim {
    ENGINE_VICTIM_NEWEST,          /* the most recently admitted (vLLM) */
    ENGINE_VICTIM_FEWEST_OUTPUTS,  /* the fewest output tokens, then the
                                    * longest prompt (SGLang's retraction) */
} engine_victim;

#define ENGINE_MAX_EXCEPT 4

typedef struct engine_profile {
    char name[64];
    /* scheduler */
    int32_t token_budget, max_seqs;        /* default limits */
    bool has_large_gpu;                    /* larger limits on large GPUs */
    double large_min_memory_gib;
    char large_except[ENGINE_MAX_EXCEPT][32];   /* GPU name substrings left out */
    int32_t n_large_except;
    int32_t large_token_budget, large_max_seqs;
    char batch_policy[48];                 /* default batch policy */
    engine_reserve reserve;
    bool reserve_check_only;               /* check the reservation, allocate the chunk */
    double output_reserve_fraction;        /* RESERVE_REQUEST: share of the output */
    double watermark_fraction;
    engine_victim victim;
    bool admit_after_preempt;
    bool prefix_caching;
    /* cuda_graphs */
    int32_t graph_decode_max_batch;        /* decode-only batches up to this run in graphs */
    int32_t graph_mixed_max_tokens;        /* batches with prefills up to this many tokens
                                            * run in (piecewise) graphs; 0: none */
    double eager_us_per_layer;             /* CPU launch time per layer outside graphs */
    /* cpu_overhead */
    double cpu_base_us, cpu_per_seq_us, cpu_per_prefill_us, cpu_per_token_us;
    bool cpu_overlap;                      /* overlaps the GPU (async / overlap scheduling) */
    double cpu_exposed_us;                 /* per iteration, never overlapped */
    /* request_path */
    double frontend_us;                    /* API server, per request, on the way in */
    double tokenize_us_per_token;          /* per prompt token, on the way in */
    double stream_us;                      /* from a token's iteration end to the client */
} engine_profile;

/* The folder of bundled profiles is <models_dir()>/engines. Loads a bundled
 * name ("vllm-v1") from <dir>/engines/, or the file at a path (any value
 * with a '/' or ending in .json), then lays `overrides` over it key by key
 * (an object shaped like the file, every key optional, "source" keys not
 * needed; NULL for none; its "name" key is ignored). Messages about the
 * file name the file and its JSON path; messages about an override name
 * `path` (the overrides' JSON path in the run config). On success, if
 * `effective` is not NULL, *effective is a new object (the caller owns it):
 * the profile's name and every value, without sources, which laid over the
 * same file reproduces the profile. */
int engine_profile_resolve(const char *dir, const char *name_or_path, const cJSON *overrides,
                           const char *path, engine_profile *out, cJSON **effective,
                           sim_err *err);
/* A profile from a file, no overrides. */
int engine_profile_load_file(const char *file, engine_profile *out, sim_err *err);

/* The default token budget and sequence limit on a GPU with `memory_bytes`
 * of memory named `gpu_name` (the large-GPU limits where they apply). */
void engine_limits(const engine_profile *e, const char *gpu_name, double memory_bytes,
                   int32_t *token_budget, int32_t *max_seqs);

/* Whether the batch runs under CUDA graphs. */
bool engine_batch_in_graph(const engine_profile *e, const batch_shape *b);

/* The engine's CPU time for one iteration, ns: the scheduler, input
 * preparation and output processing as a function of the batch, without
 * launches. */
double engine_cpu_ns(const engine_profile *e, const batch_shape *b);

/* The iteration's wall time on the instance given the GPU time of its
 * operators (`layers`: the model's decoder layers, for launches outside
 * CUDA graphs): gpu + cpu when the CPU blocks the GPU, max(gpu, cpu) when
 * it overlaps, plus the launches outside graphs and the exposed part. */
double engine_iteration_ns(const engine_profile *e, const batch_shape *b, int32_t layers,
                           double gpu_ns);

/* The request path in ns: the front-end delay of a prompt of `input_tokens`
 * tokens, and the streaming delay of every token. */
double engine_frontend_ns(const engine_profile *e, int32_t input_tokens);
double engine_stream_ns(const engine_profile *e);

/* Names for messages and results. */
const char *engine_reserve_name(engine_reserve r);
const char *engine_victim_name(engine_victim v);

#endif
