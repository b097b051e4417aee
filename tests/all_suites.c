#include "tests/suites.h"

const suite_fn test_suites[] = {
    sim_evq_suite,
    sim_engine_suite,
    sim_hist_suite,
    jsoncfg_suite,
    models_suite,
    ops_suite,
    cost_suite,
    cost_table_suite,
    output_suite,
    workload_suite,
    traces_suite,
    kv_suite,
    policies_suite,
    cluster_suite,
    cli_suite,
    timeseries_suite,
    experiment_suite,
    sweep_suite,
    capacity_suite,
    NULL,
};
