/* Helpers shared by the serving-level test suites. */
#ifndef TESTS_TESTUTIL_H
#define TESTS_TESTUTIL_H

#include <check.h>
#include "tool/config.h"

/* A small valid run config (Llama-3-8B, one H100, 200 Poisson requests) as
 * a JSON tree the test may edit before parsing. */
cJSON *tu_base_config(void);
/* Applies "path=value" assignments (NULL-terminated) to a tree. */
void tu_set(cJSON *root, const char *const *sets);
/* Parses the tree (taking it); fails the test with the message on error. */
void tu_parse(cJSON *root, run_config *cfg);

/* Everything a test wants to know about one finished run. */
typedef struct tu_run {
    run_summary summary;
    uint64_t n_records;
    uint64_t record_hash;       /* FNV-1a over every record's bytes, in order */
    uint64_t output_tokens;     /* summed over records */
    uint8_t *seen;              /* seen[id] counts records per request id */
    int32_t *out_tokens;        /* out_tokens[id]: the record's output tokens */
    uint64_t seen_cap;
    uint64_t iterations;
    sim_time_ns last_iter_start_ns[64];   /* per instance */
    int time_went_back;
    /* Requests whose record's output length differs from what the workload,
     * replayed on its own from the same seed, asked for; and how many
     * requests that replay yields. */
    uint64_t output_mismatches;
    uint64_t workload_requests;
    int kv_over_capacity;
    int32_t max_batch_tokens, max_batch_seqs;
} tu_run;

/* Runs cfg to completion with record and iteration hooks; fails the test on
 * error. Free with tu_run_fini. */
void tu_run_config(const run_config *cfg, tu_run *out);
void tu_run_fini(tu_run *r);
/* The base config with `sets` applied (may be NULL), run as tu_run_config. */
void tu_run_sets(const char *const *sets, tu_run *out);

/* A command line for cli_main: argv, NULL-terminated. */
typedef struct tu_cli_call {
    const char *argv[16];
} tu_cli_call;
/* Runs cli_main on a tu_cli_call (pass to tu_capture_stderr). */
int tu_call_cli(void *tu_cli_call_ptr);

/* Runs cli_main on c in a forked child, after setup(ctx) there (setup may be
 * NULL: a resource limit, dropping privileges), with the child's stderr in
 * errbuf; returns the child's wait status (WIFSIGNALED: it died of a
 * signal). */
int tu_cli_child(tu_cli_call *c, void (*setup)(void *), void *ctx, char *errbuf, size_t size);

/* Runs f(arg) with file descriptor fd (STDOUT_FILENO, STDERR_FILENO)
 * redirected to a buffer; returns f's result. */
int tu_capture(int fd, int (*f)(void *), void *arg, char *buf, size_t size);
/* Runs f(arg) with stderr redirected to a buffer; returns f's result. */
int tu_capture_stderr(int (*f)(void *), void *arg, char *buf, size_t size);

/* A fresh empty folder under /tmp; caller owns the string. */
char *tu_tempdir(void);

#endif
