/* The run-config reference (`servesim help config`, docs/config.md),
 * generated from the parser itself so that it cannot drift from it.
 *
 * Nothing here restates a key table. Starting from an empty config, every
 * missing required key the parser reports is filled in; the config that
 * then parses (and builds a cluster, so that policies, cost models and
 * workload sources read their own objects) is the effective config, with
 * every default written in. Each object of it is probed with an unknown
 * key, and the parser's "unknown key; expected one of: ..." message is its
 * key table; each key is probed with a value of the wrong type, and the
 * parser's "expected ..." message is its type and range. Selector keys
 * (policy names, cost model, workload source, arrival process, length
 * distribution) are probed with an unknown name, and the registry's list of
 * names is walked, one variant per name. Only the one-line descriptions are
 * written by hand (config_doc.c); cfgdoc_check fails when a key has none or
 * a description names no key. Cost: a few hundred config parses, well under
 * a second. */
#ifndef TOOL_CONFIG_DOC_H
#define TOOL_CONFIG_DOC_H

#include <stdbool.h>
#include <stdio.h>
#include "sim/base.h"

typedef struct cfgdoc_key {
    char path[160];       /* "instance.max_seqs", "cluster.pools[].name" */
    char when[400];       /* "policies.batch.name=vllm, chunked_prefill" or "" */
    char def[160];        /* the default as JSON, "(required)" or "(none)" */
    char expected[400];   /* what the parser expects, in its own words */
    bool object;          /* an object whose keys follow */
} cfgdoc_key;

typedef struct cfgdoc {
    cfgdoc_key *keys;     /* in the parser's order */
    int n, cap;
} cfgdoc;

/* Collects every key. */
int cfgdoc_collect(cfgdoc *d, sim_err *err);
void cfgdoc_fini(cfgdoc *d);
/* The reference as plain text (markdown false) or as docs/config.md. */
void cfgdoc_write(FILE *f, const cfgdoc *d, bool markdown);
/* 0 when every key has a description and every description a key; else
 * -1 with the first few offenders in msg. */
int cfgdoc_check(const cfgdoc *d, char *msg, size_t size);

#endif
