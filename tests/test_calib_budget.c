/* Tests for calib/budget.c: the arithmetic of a GPU session's time. The
 * numbers asserted are derived from the plan and the constants, not copied
 * from an output: a power window covers the counter periods it needs, the
 * plan's estimate charges every power point for them, and the schedule's
 * caps and reserves add up inside the deadline in the promised order.
 * Which entries a session takes, and that the committed schedule is up to
 * date, is tests/test_calib_session.c. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib/budget.h"
#include "tests/suites.h"

static void load_named_plan_gpu(const char *path, calib_plan *plan, gpu_spec *g)
{
    sim_err err = {{0}};
    ck_assert_msg(calib_plan_load(path, plan, &err) == 0, "%s", err.msg);
    ck_assert_msg(gpu_spec_load(models_dir(), "H200-141GB", g, &err) == 0, "%s", err.msg);
}

static void load_plan_gpu(calib_plan *plan, gpu_spec *g)
{
    load_named_plan_gpu("calib/plans/full.plan", plan, g);
}

START_TEST(test_budget_window_covers_counter_periods)
{
    const double periods[] = {0, 0.01, 0.02, 0.05, 0.1, 0.3, 1.0};
    double last_point = 0;
    for (size_t i = 0; i < sizeof periods / sizeof *periods; i++) {
        double p = periods[i];
        for (int quick = 0; quick <= 1; quick++) {
            double w = calib_window_s(p, quick);
            ck_assert(w >= CALIB_WINDOW_PERIODS * p - 1e-12);
            ck_assert(w >= (quick ? CALIB_WINDOW_S_QUICK : CALIB_WINDOW_S_FULL) - 1e-12);
            /* a window costs the ramp, its span, and a period of waiting for
             * the updates that open and close it */
            ck_assert(calib_energy_point_s(p, quick) >= CALIB_RAMP_S + w + p - 1e-12);
        }
        double e = calib_energy_point_s(p, 0);
        ck_assert_msg(e > last_point, "a slower counter must cost more (%g s at %g s)", e, p);
        last_point = e;
    }
}
END_TEST

START_TEST(test_budget_point_estimate_counts_every_run)
{
    /* a long run: 2 warm-ups, 3 for the estimate, the warm-up and timed replays */
    double run = 0.01;
    int runs = 5 + CALIB_WARMUP_REPLAYS + CALIB_REPLAYS_FULL;
    ck_assert(calib_est_point_s(run, 0) >= runs * run);
    ck_assert(calib_est_point_s(run, 0) < runs * run + 0.01);
    /* a short run is replayed in graphs of at least the minimum length */
    double tiny = 1e-6;
    ck_assert(calib_est_point_s(tiny, 0) >=
              (CALIB_REPLAYS_FULL + CALIB_WARMUP_REPLAYS) * CALIB_GRAPH_MIN_NS_FULL * 1e-9);
}
END_TEST

/* The estimate charges each power point its window at the counter period
 * it is told, so a slower counter costs exactly the difference per point. */
START_TEST(test_budget_plan_estimate_charges_counter_period)
{
    calib_plan plan;
    gpu_spec g;
    load_plan_gpu(&plan, &g);
    int power_points = 0, points = 0;
    for (int i = 0; i < plan.n_entries; i++)
        for (int j = 0; j < plan.entry[i].n_points; j++) {
            points += !plan.entry[i].skip[j];
            power_points += !plan.entry[i].skip[j] && plan.entry[i].energy[j];
        }
    calib_estimate fast, slow;
    calib_plan_estimate(&plan, &g, 0, 0.02, &fast);
    calib_plan_estimate(&plan, &g, 0, 0.1, &slow);
    int n_energy = 0, n_points = 0;
    double e_fast = 0, e_slow = 0, lat = 0, total = slow.layer_s;
    for (int f = 0; f < CTAB_FAMILY_COUNT; f++) {
        n_energy += slow.energy_points[f];
        n_points += slow.points[f];
        e_fast += fast.energy_s[f];
        e_slow += slow.energy_s[f];
        lat += slow.latency_s[f];
        ck_assert(fabs(fast.latency_s[f] - slow.latency_s[f]) < 1e-9);
        total += slow.latency_s[f] + slow.energy_s[f];
    }
    ck_assert_int_eq(n_energy, power_points);
    ck_assert_int_eq(n_points, points);
    ck_assert(fabs(e_slow - power_points * calib_energy_point_s(0.1, 0)) < 1e-6);
    ck_assert(fabs(e_slow - e_fast - power_points * (calib_energy_point_s(0.1, 0) -
                                                     calib_energy_point_s(0.02, 0))) < 1e-6);
    ck_assert(fabs(slow.total_s - total) < 1e-6);
    /* at a 100 ms counter the windows are the bulk of the session, and each
     * one costs more than the 0.25 s the first estimate assumed */
    ck_assert(e_slow > lat);
    ck_assert(e_slow > power_points * 0.25);
    ck_assert(fabs(slow.counter_period_s - 0.1) < 1e-12);
    /* the plan's estimate is the sum of its entries' */
    double sum = 0;
    int entries = 0, n_entries = 0;
    for (int i = 0; i < plan.n_entries; i++) {
        double l, e;
        calib_entry_estimate(&plan.entry[i], &g, 0, 0.1, &l, &e);
        sum += l + e;
    }
    for (int f = 0; f < CTAB_FAMILY_COUNT; f++)
        entries += slow.entries[f];
    for (int i = 0; i < plan.n_entries; i++) {
        int left = 0;
        for (int j = 0; j < plan.entry[i].n_points; j++)
            left += !plan.entry[i].skip[j];
        n_entries += left > 0;
    }
    ck_assert(fabs(sum + slow.layer_s - slow.total_s) < 1e-6);
    ck_assert_int_eq(entries, n_entries);
    ck_assert_int_eq(slow.layers, plan.n_layers);
    calib_plan_fini(&plan);
}
END_TEST

/* Every family once in the session's order (a family left out of the
 * order used to be scheduled as a second GEMM step). */
START_TEST(test_budget_schedule_order_lists_each_family_once)
{
    int seen[CTAB_FAMILY_COUNT] = {0};
    for (int i = 0; i < CTAB_FAMILY_COUNT; i++) {
        ctab_family f = calib_schedule_order[i];
        ck_assert(f >= 0 && f < CTAB_FAMILY_COUNT);
        ck_assert_msg(seen[f]++ == 0, "%s twice", ctab_family_get(f)->name);
    }
    /* and so no two steps of one schedule have one name, even for a plan
     * measuring every family */
    calib_estimate est;
    memset(&est, 0, sizeof est);
    for (int f = 0; f < CTAB_FAMILY_COUNT; f++) {
        est.entries[f] = est.points[f] = 1;
        est.latency_s[f] = 1;
    }
    calib_schedule s;
    sim_err err = {{0}};
    ck_assert_int_eq(calib_schedule_build(&est, "H200-141GB", "t", CALIB_SCHED_DEADLINE_S, &s, &err), 0);
    ck_assert_int_eq(s.n_steps, CTAB_FAMILY_COUNT);
    for (int i = 0; i < s.n_steps; i++)
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(s.step[i].name, s.step[j].name);
}
END_TEST

/* The committed session's schedule: its steps in order, with caps and
 * reserves that add up inside the deadline, less the spare. */
START_TEST(test_budget_schedule_order_caps_and_reserves)
{
    calib_plan plan;
    gpu_spec g;
    load_named_plan_gpu("calib/plans/h200.plan", &plan, &g);
    calib_estimate est;
    calib_plan_estimate(&plan, &g, 0, 0.1, &est);
    calib_schedule s;
    sim_err err = {{0}};
    ck_assert_msg(calib_schedule_build(&est, g.name, plan.name, CALIB_SCHED_DEADLINE_S, &s, &err) == 0, "%s",
                  err.msg);
    /* every family the plan measures, in calib_schedule_order, then the layers */
    int k = 0;
    for (int i = 0; i < CTAB_FAMILY_COUNT; i++) {
        ctab_family f = calib_schedule_order[i];
        if (!est.points[f])
            continue;
        ck_assert_str_eq(s.step[k].name, ctab_family_get(f)->name);
        ck_assert(fabs(s.step[k].est_s - est.latency_s[f] - est.energy_s[f]) < 1e-9);
        ck_assert_int_eq(s.step[k].entries, est.entries[f]);
        ck_assert_int_eq(s.step[k].points, est.points[f]);
        k++;
    }
    ck_assert_int_eq(s.n_steps, k + 1);
    ck_assert_str_eq(s.step[k].name, "layer");
    /* the split-KV prefill path, never run on a GPU, is the last family */
    ck_assert_str_eq(s.step[k - 1].name, "attn_prefill");
    double sum = CALIB_SCHED_BUILD_EST_S + CALIB_SCHED_CHECK_EST_S + s.kill_s;
    for (int i = 0; i < s.n_steps; i++) {
        const calib_sched_step *st = &s.step[i];
        ck_assert(fabs(st->reserve_s - (st->est_s + s.startup_s + s.margin_s)) < 1e-9);
        ck_assert(st->cap_s >= st->reserve_s);
        ck_assert(fabs(st->cap_s - (st->est_s * CALIB_SCHED_SLACK + s.startup_s + s.margin_s)) <
                  1e-9);
        ck_assert(fabs(st->reserve_s - st->est_s - calib_schedule_step_overhead_s()) < 1e-9);
        sum += st->reserve_s;
    }
    ck_assert(fabs(s.reserve_total_s - sum) < 1e-6);
    ck_assert(fabs(calib_schedule_fixed_s() -
                   (CALIB_SCHED_BUILD_EST_S + CALIB_SCHED_CHECK_EST_S + s.kill_s)) < 1e-9);
    ck_assert(s.reserve_total_s <= calib_schedule_budget_s(s.deadline_s) + 1e-9);
    ck_assert(calib_schedule_budget_s(s.deadline_s) < s.deadline_s);
    calib_plan_fini(&plan);
}
END_TEST

START_TEST(test_budget_schedule_rejects_impossible_deadline)
{
    calib_plan plan;
    gpu_spec g;
    load_plan_gpu(&plan, &g);
    calib_estimate est;
    calib_plan_estimate(&plan, &g, 0, 0.1, &est);
    calib_schedule s;
    sim_err err = {{0}};
    ck_assert_int_ne(calib_schedule_build(&est, g.name, plan.name, 100, &s, &err), 0);
    ck_assert_msg(strstr(err.msg, "exceed the deadline of 100 s") != NULL, "%s", err.msg);
    calib_plan_fini(&plan);
}
END_TEST

Suite *calib_budget_suite(void)
{
    Suite *s = suite_create("calib_budget");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_budget_window_covers_counter_periods);
    tcase_add_test(tc, test_budget_point_estimate_counts_every_run);
    tcase_add_test(tc, test_budget_plan_estimate_charges_counter_period);
    tcase_add_test(tc, test_budget_schedule_order_lists_each_family_once);
    tcase_add_test(tc, test_budget_schedule_order_caps_and_reserves);
    tcase_add_test(tc, test_budget_schedule_rejects_impossible_deadline);
    suite_add_tcase(s, tc);
    return s;
}
