/* The config reference (tool/config_doc.h): generated from the parser, every
 * key described, docs/config.md up to date, and the parser's own words for
 * types, ranges and names. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool/config_doc.h"
#include "tests/suites.h"

static const cfgdoc_key *find_key(const cfgdoc *d, const char *path, const char *when)
{
    for (int i = 0; i < d->n; i++)
        if (!strcmp(d->keys[i].path, path) && (!when || strstr(d->keys[i].when, when)))
            return &d->keys[i];
    return NULL;
}

START_TEST(test_config_doc_every_key_is_described)
{
    cfgdoc d;
    sim_err err = {{0}};
    ck_assert_msg(cfgdoc_collect(&d, &err) == 0, "%s", err.msg);
    char msg[4096];
    ck_assert_msg(cfgdoc_check(&d, msg, sizeof msg) == 0, "%s", msg);
    ck_assert_int_gt(d.n, 100);
    cfgdoc_fini(&d);
}
END_TEST

/* Types, ranges, defaults and names come from the parser and registries. */
START_TEST(test_config_doc_uses_the_parsers_words)
{
    cfgdoc d;
    sim_err err = {{0}};
    ck_assert_int_eq(cfgdoc_collect(&d, &err), 0);
    const cfgdoc_key *k = find_key(&d, "instance.gpu_memory_utilization", NULL);
    ck_assert_ptr_nonnull(k);
    ck_assert_str_eq(k->def, "0.9");
    ck_assert_str_eq(k->expected, "a number in [0.05, 1]");
    k = find_key(&d, "instance.preemption", NULL);
    ck_assert_ptr_nonnull(k);
    ck_assert_str_eq(k->expected, "one of: recompute, swap");
    k = find_key(&d, "model", NULL);
    ck_assert_ptr_nonnull(k);
    ck_assert_str_eq(k->def, "(required)");
    /* Every batch policy of the registry is named, and its own params found. */
    k = find_key(&d, "policies.batch.name", NULL);
    ck_assert_ptr_nonnull(k);
    ck_assert_msg(strstr(k->expected, "chunked_prefill") && strstr(k->expected, "layered_prefill"),
                  "%s", k->expected);
    ck_assert_ptr_nonnull(find_key(&d, "policies.batch.params.groups", "layered_prefill"));
    ck_assert_ptr_nonnull(find_key(&d, "workload.arrival.cv", "gamma"));
    ck_assert_ptr_nonnull(find_key(&d, "cluster.pools[].role", NULL));
    ck_assert_ptr_nonnull(find_key(&d, "policies.control.period_ms", NULL));
    ck_assert_ptr_nonnull(find_key(&d, "cost.iteration_overhead_us", NULL));
    ck_assert_ptr_nonnull(find_key(&d, "workload.rate_scale", "trace"));
    /* Keys the parser does not take are not listed. */
    ck_assert_ptr_null(find_key(&d, "zz_probe_key", NULL));
    for (int i = 0; i < d.n; i++)
        ck_assert_msg(!strstr(d.keys[i].path, "zz_probe_key"), "%s", d.keys[i].path);
    cfgdoc_fini(&d);
}
END_TEST

/* docs/config.md is `servesim help config --markdown`: regenerate it with
 * `make docs/config.md` when this fails. */
START_TEST(test_config_doc_file_is_up_to_date)
{
    cfgdoc d;
    sim_err err = {{0}};
    ck_assert_int_eq(cfgdoc_collect(&d, &err), 0);
    char *now = NULL;
    size_t now_len = 0;
    FILE *m = open_memstream(&now, &now_len);
    cfgdoc_write(m, &d, true);
    fclose(m);
    FILE *f = fopen("docs/config.md", "rb");
    ck_assert_msg(f != NULL, "docs/config.md is missing: run make docs/config.md");
    char *old = calloc(1, now_len + 2);
    size_t n = fread(old, 1, now_len + 1, f);
    fclose(f);
    ck_assert_msg(n == now_len && !memcmp(old, now, now_len),
                  "docs/config.md is out of date: run make docs/config.md");
    free(old);
    free(now);
    cfgdoc_fini(&d);
}
END_TEST

Suite *config_doc_suite(void)
{
    Suite *s = suite_create("config_doc");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_config_doc_every_key_is_described);
    tcase_add_test(tc, test_config_doc_uses_the_parsers_words);
    tcase_add_test(tc, test_config_doc_file_is_up_to_date);
    suite_add_tcase(s, tc);
    return s;
}
