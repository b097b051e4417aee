/* Suite constructors, one per module (tests/test_<module>.c). */
#ifndef TESTS_SUITES_H
#define TESTS_SUITES_H

#include <check.h>

typedef Suite *(*suite_fn)(void);
extern const suite_fn test_suites[];   /* NULL-terminated */

/* Event core (link no LLM code). */
Suite *sim_evq_suite(void);
Suite *sim_engine_suite(void);
Suite *sim_hist_suite(void);
Suite *sim_rbtree_suite(void);
/* Everything else. */
Suite *jsoncfg_suite(void);
Suite *models_suite(void);
Suite *engine_suite(void);
Suite *engine_versions_suite(void);
Suite *ops_suite(void);
Suite *cost_suite(void);
Suite *cost_table_suite(void);
Suite *import_suite(void);
Suite *calib_budget_suite(void);
Suite *calib_measure_suite(void);
Suite *calib_runner_suite(void);
Suite *calib_layout_suite(void);
Suite *calib_nvml_suite(void);
Suite *calib_merge_suite(void);
Suite *calib_session_suite(void);
Suite *output_suite(void);
Suite *workload_suite(void);
Suite *traces_suite(void);
Suite *kv_suite(void);
Suite *prefix_cache_suite(void);
Suite *kv_tiers2_suite(void);
Suite *sessions_suite(void);
Suite *sessions2_suite(void);
Suite *policies_suite(void);
Suite *cluster_suite(void);
Suite *autoscale_suite(void);
Suite *cli_suite(void);
Suite *config_doc_suite(void);
Suite *cli_help_suite(void);
Suite *ux_suite(void);
Suite *cmd_cost_suite(void);
Suite *timeseries_suite(void);
Suite *experiment_suite(void);
Suite *sweep_suite(void);
Suite *capacity_suite(void);
Suite *net_suite(void);
Suite *moe_suite(void);
Suite *disagg_suite(void);
Suite *plugin_suite(void);
Suite *slo_sched_suite(void);
Suite *slo_ops_suite(void);

Suite *spec_suite(void);
Suite *lora_suite(void);
Suite *spec2_suite(void);

#endif
