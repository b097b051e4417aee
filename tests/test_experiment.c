/* Experiment files (serve/experiment.c): expansion counts and order, stable
 * ids, strict validation of the sweep spec and of every point. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tool/experiment.h"
#include "sim/jsoncfg.h"
#include "tests/suites.h"
#include "tests/testutil.h"

/* A small valid base config as JSON text, for inline "base". */
#define BASE                                                                        \
    "{\"seed\": 5, \"model\": \"Llama-3-8B\", \"gpu\": \"H100-SXM-80GB\","           \
    " \"workload\": {\"requests\": 50, \"arrival\": {\"rate_per_s\": 8},"             \
    " \"input_tokens\": {\"dist\": \"fixed\", \"value\": 300},"                       \
    " \"output_tokens\": {\"dist\": \"fixed\", \"value\": 20}}}"

static int parse_exp(const char *text, experiment *e, sim_err *err)
{
    cJSON *root;
    if (jcfg_parse(text, "exp.json", &root, err))
        return -1;
    if (exp_parse(root, "exp.json", 0, e, err))
        return -1;
    if (exp_prepare_all(e, err)) {
        exp_fini(e);
        return -1;
    }
    return 0;
}

static void must_parse(const char *text, experiment *e)
{
    sim_err err = {{0}};
    if (parse_exp(text, e, &err))
        ck_abort_msg("%s", err.msg);
}

START_TEST(test_exp_counts_grid_times_zip_times_seeds)
{
    experiment e;
    must_parse("{\"base\": " BASE ", \"sweep\": {"
               "\"grid\": {\"workload.arrival.rate_per_s\": [2, 4, 6],"
               "           \"policies.routing.name\": [\"round_robin\", \"least_outstanding_tokens\"]},"
               "\"zip\": [{\"cluster.instances\": [1, 2], \"instance.max_seqs\": [64, 128]}],"
               "\"seeds\": 2}}", &e);
    ck_assert_int_eq(e.n_points, 3 * 2 * 2 * 2);
    ck_assert_int_eq(e.n_params, 4);
    ck_assert_int_eq(e.n_seeds, 2);
    ck_assert_int_eq(e.params[0].kind, EXP_INT);
    ck_assert_int_eq(e.params[1].kind, EXP_STR);
    /* Zipped paths move together. */
    for (int64_t i = 0; i < e.n_points; i++) {
        int inst = (int)e.points[i].values[2]->valuedouble;
        int seqs = (int)e.points[i].values[3]->valuedouble;
        ck_assert_int_eq(seqs, inst * 64);
        ck_assert_ptr_nonnull(strstr(e.points[i].config_json, "\"max_seqs\":"));
    }
    exp_fini(&e);
}
END_TEST

START_TEST(test_exp_order_is_first_path_slowest_seed_fastest)
{
    experiment e;
    must_parse("{\"base\": " BASE ", \"sweep\": {"
               "\"grid\": {\"workload.arrival.rate_per_s\": [2, 4], \"cluster.instances\": [1, 2, 3]},"
               "\"seeds\": [7, 9]}}", &e);
    ck_assert_int_eq(e.n_points, 12);
    const exp_point *p = &e.points[7];   /* rate index 1, instances index 0, seed index 1 */
    ck_assert_int_eq(p->index, 7);
    ck_assert(p->values[0]->valuedouble == 4);
    ck_assert(p->values[1]->valuedouble == 1);
    ck_assert_uint_eq(p->seed, 9);
    ck_assert_int_eq(p->seed_index, 1);
    ck_assert_ptr_nonnull(strstr(p->config_json, "\"seed\":\t9"));
    exp_fini(&e);
}
END_TEST

START_TEST(test_exp_seed_count_counts_up_from_base_seed)
{
    experiment e;
    must_parse("{\"base\": " BASE ", \"sweep\": {\"seeds\": 3}}", &e);
    ck_assert_int_eq(e.n_points, 3);
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(e.points[i].seed, 5 + (uint64_t)i);
    exp_fini(&e);
}
END_TEST

/* Finds the id of the point with the given rate, instances and seed. */
static const char *id_of(const experiment *e, double rate, double inst, uint64_t seed)
{
    for (int64_t i = 0; i < e->n_points; i++) {
        const exp_point *p = &e->points[i];
        double r = 0, n = 0;
        for (int32_t k = 0; k < e->n_params; k++) {
            if (!strcmp(e->params[k].path, "workload.arrival.rate_per_s"))
                r = p->values[k]->valuedouble;
            if (!strcmp(e->params[k].path, "cluster.instances"))
                n = p->values[k]->valuedouble;
        }
        if (r == rate && n == inst && p->seed == seed)
            return p->id_hex;
    }
    ck_abort_msg("no such point");
    return NULL;
}

START_TEST(test_exp_ids_are_independent_of_key_order_and_layout)
{
    experiment a, b, c;
    must_parse("{\"base\": " BASE ", \"sweep\": {\"grid\": {\"workload.arrival.rate_per_s\": [2, 4],"
               " \"cluster.instances\": [1, 2]}, \"seeds\": 2}}", &a);
    must_parse("{\"sweep\": {\"seeds\": 2, \"grid\": {\"cluster.instances\": [2, 1],"
               " \"workload.arrival.rate_per_s\": [4.0, 2]}}, \"base\": " BASE "}", &b);
    must_parse("{\"base\": " BASE ", \"sweep\": {\"zip\": [{\"workload.arrival.rate_per_s\": [2, 4, 2, 4],"
               " \"cluster.instances\": [1, 1, 2, 2]}], \"seeds\": [5, 6]}}", &c);
    for (double rate = 2; rate <= 4; rate += 2)
        for (double inst = 1; inst <= 2; inst++)
            for (uint64_t seed = 5; seed <= 6; seed++) {
                ck_assert_str_eq(id_of(&a, rate, inst, seed), id_of(&b, rate, inst, seed));
                ck_assert_str_eq(id_of(&a, rate, inst, seed), id_of(&c, rate, inst, seed));
            }
    /* The id is a pure function of the assignments: pinned, so that a
     * change to the hashing (which would orphan every stored point) shows. */
    ck_assert_str_eq(id_of(&a, 2, 1, 5), a.points[0].id_hex);
    ck_assert_int_eq(strlen(a.points[0].id_hex), 16);
    exp_fini(&a);
    exp_fini(&b);
    exp_fini(&c);
}
END_TEST

START_TEST(test_exp_id_is_pinned)
{
    experiment e;
    must_parse("{\"base\": " BASE ", \"sweep\": {\"grid\": {\"workload.arrival.rate_per_s\": [8]}}}", &e);
    /* FNV-1a + splitmix64 finaliser of "workload.arrival.rate_per_s=8\nseed=5\n". */
    ck_assert_str_eq(e.points[0].id_hex, "a49e5bc3a1329738");
    exp_fini(&e);
}
END_TEST

START_TEST(test_exp_canonical_json_sorts_keys)
{
    cJSON *a = cJSON_Parse("{\"b\": 1, \"a\": {\"z\": [1, 2.0], \"y\": \"s\"}}");
    char *t = exp_canonical_json(a);
    ck_assert_str_eq(t, "{\"a\":{\"y\":\"s\",\"z\":[1,2]},\"b\":1}");
    free(t);
    cJSON_Delete(a);
}
END_TEST

typedef struct bad_exp {
    const char *json;
    const char *expect[3];
} bad_exp;

static const bad_exp bad_exps[] = {
    {"{\"base\": " BASE "}", {"exp.json", "$.sweep", NULL}},
    {"{\"base\": " BASE ", \"sweep\": {\"grd\": {}}}", {"$.sweep.grd", "unknown key", NULL}},
    {"{\"base\": " BASE ", \"sweep\": {\"grid\": {\"workload.arrival.rate_per_s\": 4}}}",
     {"$.sweep.grid[\"workload.arrival.rate_per_s\"]", "non-empty array", NULL}},
    {"{\"base\": " BASE ", \"sweep\": {\"grid\": {\"workload.arrival.rate_per_s\": []}}}",
     {"$.sweep.grid[\"workload.arrival.rate_per_s\"]", "non-empty array", NULL}},
    {"{\"base\": " BASE ", \"sweep\": {\"zip\": [{\"cluster.instances\": [1, 2],"
     " \"workload.arrival.rate_per_s\": [1, 2, 3]}]}}",
     {"$.sweep.zip[0][\"workload.arrival.rate_per_s\"]", "expected 2 values", NULL}},
    {"{\"base\": " BASE ", \"sweep\": {\"grid\": {\"cluster.tp\": [1]},"
     " \"zip\": [{\"cluster.tp\": [1]}]}}", {"$.sweep.zip[0][\"cluster.tp\"]", "swept twice", NULL}},
    {"{\"base\": " BASE ", \"sweep\": {\"seeds\": 0}}", {"$.sweep.seeds", NULL, NULL}},
    {"{\"base\": " BASE ", \"sweep\": {\"seeds\": [1, 1]}}", {"$.sweep.seeds[1]", "twice", NULL}},
    {"{\"base\": " BASE ", \"sweep\": {\"grid\": {\"seed\": [1, 2]}}}", {"$.sweep.seeds", NULL, NULL}},
    {"{\"base\": " BASE ", \"base_config\": \"quickstart.json\", \"sweep\": {}}",
     {"exactly one", NULL, NULL}},
    {"{\"base_config\": \"nonexistent.json\", \"sweep\": {}}", {"$.base_config", "nonexistent.json", NULL}},
    {"{\"base\": " BASE ", \"sweep\": {\"grid\": {\"policies.routing.name\": [\"round_robin\", \"bogus\"]}}}",
     {"point 1 (policies.routing.name=\"bogus\", seed=5)", "$.policies.routing.name", "round_robin"}},
    {"{\"base\": " BASE ", \"sweep\": {\"grid\": {\"cluster.bogus\": [1]}}}",
     {"point 0", "$.cluster.bogus", "unknown key"}},
    {"{\"base\": " BASE ", \"sweep\": {\"grid\": {\"cluster.tp\": [1, 3]}}}",
     {"point 1 (cluster.tp=3, seed=5)", "$.cluster.tp", NULL}},
    {"{\"base\": " BASE ", \"sweep\": {\"grid\": {\"workload.arrival.rate_per_s\": [4, 4]}}}",
     {"points 0 and 1", "same id", NULL}},
    {"{\"base\": " BASE ", \"set\": {\"cluster.instances\": 0}, \"sweep\": {}}",
     {"point 0", "$.cluster.instances", NULL}},
    {"{\"base\": " BASE ", \"set\": {\"workload.requests.x\": 1}, \"sweep\": {}}",
     {"$.set[\"workload.requests.x\"]", NULL, NULL}},
    /* Issue 15 item 16: a "set" path that the sweep replaces. */
    {"{\"base\": " BASE ", \"set\": {\"cluster.instances\": 2},"
     " \"sweep\": {\"grid\": {\"cluster.instances\": [1, 3]}}}",
     {"$.set[\"cluster.instances\"]", "also swept", "$.sweep"}},
    {"{\"base\": " BASE ", \"set\": {\"policies.batch.params.chunk\": 8},"
     " \"sweep\": {\"zip\": [{\"policies.batch\": [{\"name\": \"chunked_prefill\"}]}]}}",
     {"$.set[\"policies.batch.params.chunk\"]", "also swept", "policies.batch"}},
    /* Issue 15 item 5: past the limit without --force. */
    {"{\"base\": " BASE ", \"sweep\": {\"grid\": {\"cluster.instances\": [1, 2, 3, 4, 5, 6,"
     " 7, 8, 9, 10]}, \"seeds\": 10001}}", {"$.sweep", "more than 100000 points", "--force"}},
};
#define N_BAD_EXPS (int)(sizeof bad_exps / sizeof bad_exps[0])

START_TEST(test_exp_bad_spec_is_named)
{
    const bad_exp *b = &bad_exps[_i];
    experiment e;
    sim_err err = {{0}};
    ck_assert_int_eq(parse_exp(b->json, &e, &err), -1);
    for (int k = 0; k < 3 && b->expect[k]; k++)
        ck_assert_msg(strstr(err.msg, b->expect[k]), "case %d: expected '%s' in: %s", _i,
                      b->expect[k], err.msg);
}
END_TEST

/* A "set" path next to a swept one is fine (the sweep edits inside it),
 * and --force raises the limit. */
START_TEST(test_exp_set_beside_sweep_and_forced_size)
{
    experiment e;
    must_parse("{\"base\": " BASE ", \"set\": {\"workload\": {\"requests\": 20,"
               " \"arrival\": {\"rate_per_s\": 4}, \"input_tokens\": {\"dist\": \"fixed\","
               " \"value\": 30}, \"output_tokens\": {\"dist\": \"fixed\", \"value\": 3}}},"
               " \"sweep\": {\"grid\": {\"workload.arrival.rate_per_s\": [2, 8]}}}", &e);
    ck_assert_int_eq(e.n_points, 2);
    exp_fini(&e);
    cJSON *root = cJSON_Parse("{\"base\": " BASE ", \"sweep\": {\"grid\": "
                              "{\"cluster.instances\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]},"
                              " \"seeds\": 10001}}");
    sim_err err = {{0}};
    ck_assert_msg(exp_parse(root, "exp.json", EXP_MAX_POINTS_FORCED, &e, &err) == 0, "%s",
                  err.msg);
    ck_assert_int_eq(e.n_points, 100010);
    ck_assert_ptr_null(e.points[100009].config_json);   /* built on demand */
    ck_assert_int_eq(exp_point_prepare(&e, 100009, &err), 0);
    ck_assert_ptr_nonnull(e.points[100009].config_json);
    exp_fini(&e);
}
END_TEST

START_TEST(test_exp_base_config_is_relative_to_the_experiment)
{
    char *dir = tu_tempdir();
    char base[512], exp[512];
    snprintf(base, sizeof base, "%s/base.json", dir);
    snprintf(exp, sizeof exp, "%s/exp.json", dir);
    FILE *f = fopen(base, "w");
    fputs(BASE, f);
    fclose(f);
    f = fopen(exp, "w");
    fputs("{\"base_config\": \"base.json\", \"set\": {\"workload.requests\": 10},"
          " \"sweep\": {\"grid\": {\"cluster.instances\": [1, 2]}}}", f);
    fclose(f);
    experiment e;
    sim_err err = {{0}};
    if (exp_load(exp, 0, &e, &err) || exp_prepare_all(&e, &err))
        ck_abort_msg("%s", err.msg);
    ck_assert_int_eq(e.n_points, 2);
    ck_assert_ptr_nonnull(strstr(e.points[0].config_json, "\"requests\":\t10"));
    exp_fini(&e);
    unlink(base);
    unlink(exp);
    rmdir(dir);
    free(dir);
}
END_TEST

START_TEST(test_exp_bundled_experiments_are_valid)
{
    static const struct { const char *file; int64_t points; } bundled[] = {
        {"experiments/sweep_rate_policy.json", 24},
        {"experiments/sweep_200.json", 200},
        {"experiments/plots_demo.json", 12},
    };
    for (size_t i = 0; i < sizeof bundled / sizeof bundled[0]; i++) {
        experiment e;
        sim_err err = {{0}};
        if (exp_load(bundled[i].file, 0, &e, &err) || exp_prepare_all(&e, &err))
            ck_abort_msg("%s", err.msg);
        ck_assert_int_eq(e.n_points, bundled[i].points);
        exp_fini(&e);
    }
}
END_TEST

Suite *experiment_suite(void)
{
    Suite *s = suite_create("experiment");
    TCase *tc = tcase_create("experiment");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_exp_counts_grid_times_zip_times_seeds);
    tcase_add_test(tc, test_exp_order_is_first_path_slowest_seed_fastest);
    tcase_add_test(tc, test_exp_seed_count_counts_up_from_base_seed);
    tcase_add_test(tc, test_exp_ids_are_independent_of_key_order_and_layout);
    tcase_add_test(tc, test_exp_id_is_pinned);
    tcase_add_test(tc, test_exp_canonical_json_sorts_keys);
    tcase_add_loop_test(tc, test_exp_bad_spec_is_named, 0, N_BAD_EXPS);
    tcase_add_test(tc, test_exp_set_beside_sweep_and_forced_size);
    tcase_add_test(tc, test_exp_base_config_is_relative_to_the_experiment);
    tcase_add_test(tc, test_exp_bundled_experiments_are_valid);
    suite_add_tcase(s, tc);
    return s;
}
