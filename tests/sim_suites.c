/* The event core's suites: this binary links sim/ alone, which shows that
 * the core builds and runs without any LLM code. */
#include "tests/suites.h"

const suite_fn test_suites[] = {
    sim_evq_suite,
    sim_engine_suite,
    sim_hist_suite,
    sim_rbtree_suite,
    NULL,
};
