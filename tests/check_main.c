/* Runs every Check suite listed in the suites table linked with it
 * (sim_suites.c for the event core alone, all_suites.c for everything).
 * Tests read models/ and experiments/ relative to the repository root, so
 * run the binaries from there (make test does). */
#include <check.h>
#include <stdlib.h>

#include "tests/suites.h"

int main(void)
{
    SRunner *sr = srunner_create(NULL);
    for (int i = 0; test_suites[i]; i++)
        srunner_add_suite(sr, test_suites[i]());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
