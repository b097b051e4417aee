/* POLAR-style adapter selection for multi-LoRA serving
 * (shared/specs/next-features.md H(1), after the POLAR abstract): a request
 * brings a task context x in R^d instead of an adapter; a cache-aware
 * LinUCB picks its adapter
 *
 *     a = argmax_a  x.theta_a + beta sqrt(x' A_a^-1 x) - lambda T_load(a) [a not resident]
 *
 * (theta_a = A_a^-1 b_a, ridge regression per adapter), and learns from the
 * reward of each finished request, x.theta*_a plus noise, where theta*_a
 * are synthetic true parameters. An epoch controller (POLAR+) runs epochs
 * of E, 2E, 4E, ... selections: each epoch starts with a round of forced
 * exploration (every adapter once, in turn), and at its end names the
 * adapters the cache should keep (the max_loras best by estimated reward at
 * the epoch's mean context; serve/lora.c evicts others first).
 *
 * [assume] The abstract gives neither the penalty's form nor the
 * controller's rule: the penalty is lambda x the load time in seconds, the
 * exploration round and the kept set are ours. Contexts, true parameters
 * and noise are synthetic: x ~ N(0, I/d) plus a constant feature 1,
 * theta*_a ~ N(0, I), noise ~ N(0, noise^2), all drawn from (run seed,
 * request id or adapter) by hashing, so runs are deterministic and
 * independent of batching.
 *
 * Regret: per selection, max_a x.theta*_a - x.theta*_chosen (expected,
 * noise-free), summed (polar_regret). Cost: a selection is O(adapters d^2),
 * an update O(d^2) (Sherman-Morrison); memory O(adapters d^2). */
#ifndef SERVE_POLAR_H
#define SERVE_POLAR_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "sim/base.h"

#define POLAR_MAX_DIM 32
#define POLAR_MAX_ADAPTERS 4096

typedef struct polar_setup {
    bool on;
    int32_t dim;         /* d: context features, the constant one included */
    double beta;         /* exploration bonus weight */
    double lambda;       /* penalty per second of load time, in reward units */
    double noise;        /* reward noise standard deviation */
    int32_t epoch;       /* E: the first epoch's selections */
    bool doubling;       /* POLAR+: each epoch twice as long as the last */
} polar_setup;

/* Reads `instance.lora.select` (object o at path; {"policy": "polar", ...}). */
int polar_setup_parse(cJSON *o, const char *path, int32_t adapters, polar_setup *out,
                      sim_err *err);

typedef struct polar polar;

/* Penalty input: the seconds a load of adapter a would take now, 0 when it
 * is resident. */
typedef double (*polar_load_s_fn)(void *ctx, int32_t a);

polar *polar_create(const polar_setup *s, int32_t adapters, int32_t keep, uint64_t seed);
void polar_destroy(polar *p);   /* NULL is a no-op */

/* Request id's context (p's dim entries). */
void polar_context(const polar *p, uint64_t id, double *x);
/* The adapter for request id (counts its regret). */
int32_t polar_select(polar *p, uint64_t id, polar_load_s_fn load_s, void *ctx);
/* Request id, served by adapter a, finished: learns from its reward. */
void polar_reward(polar *p, uint64_t id, int32_t a);
/* Whether the controller wants adapter a kept in the cache. */
bool polar_keep(const polar *p, int32_t a);

typedef struct polar_stats {
    uint64_t selections, optimal;   /* and those that picked a best adapter */
    double regret;                  /* summed expected regret */
    uint64_t epochs;                /* epochs ended */
} polar_stats;
void polar_get_stats(const polar *p, polar_stats *out);

#endif
