/* The command line's help: every subcommand's -h and --help print its usage
 * on stdout and exit 0 (anywhere after the command name); `servesim -h`,
 * `servesim help`, `servesim help COMMAND`, `servesim help config` and
 * `servesim --version` (semantic version and commit). */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/suites.h"
#include "tests/testutil.h"
#include "version.h"

static const char *const commands[] = {"run", "sweep", "capacity", "trace", "cost", NULL};

static int run_out(tu_cli_call *c, char *buf, size_t size)
{
    return tu_capture(STDOUT_FILENO, tu_call_cli, c, buf, size);
}

START_TEST(test_every_subcommand_help_exits_0)
{
    static char out[16384];
    const char *cmd = commands[_i];
    char want[64];
    snprintf(want, sizeof want, "usage: servesim %s", cmd);
    const char *flags[] = {"--help", "-h"};
    for (int f = 0; f < 2; f++) {
        tu_cli_call c = {{"servesim", cmd, flags[f], NULL}};
        ck_assert_int_eq(run_out(&c, out, sizeof out), 0);
        ck_assert_msg(strstr(out, want), "%s %s: %s", cmd, flags[f], out);
        /* After other arguments too. */
        tu_cli_call late = {{"servesim", cmd, "some.json", flags[f], NULL}};
        ck_assert_int_eq(run_out(&late, out, sizeof out), 0);
        ck_assert_msg(strstr(out, want), "%s x %s: %s", cmd, flags[f], out);
    }
    tu_cli_call h = {{"servesim", "help", cmd, NULL}};
    ck_assert_int_eq(run_out(&h, out, sizeof out), 0);
    ck_assert_msg(strstr(out, want), "help %s: %s", cmd, out);
}
END_TEST

START_TEST(test_top_level_help_and_version)
{
    static char out[16384];
    const char *forms[] = {"-h", "--help", "help"};
    for (int i = 0; i < 3; i++) {
        tu_cli_call c = {{"servesim", forms[i], NULL}};
        ck_assert_int_eq(run_out(&c, out, sizeof out), 0);
        for (int k = 0; commands[k]; k++)
            ck_assert_msg(strstr(out, commands[k]), "%s: %s", forms[i], out);
        ck_assert_msg(strstr(out, "help config"), "%s", out);
    }
    tu_cli_call v = {{"servesim", "--version", NULL}};
    ck_assert_int_eq(run_out(&v, out, sizeof out), 0);
    char want[160];
    snprintf(want, sizeof want, "servesim %s (commit %s)\n", SERVESIM_SEMVER, SERVESIM_VERSION);
    ck_assert_str_eq(out, want);
    /* Semantic: MAJOR.MINOR.PATCH. */
    int a, b, c2;
    char end;
    ck_assert_int_eq(sscanf(SERVESIM_SEMVER, "%d.%d.%d%c", &a, &b, &c2, &end), 3);
}
END_TEST

START_TEST(test_help_config_lists_keys)
{
    static char out[1 << 18];
    tu_cli_call c = {{"servesim", "help", "config", NULL}};
    ck_assert_int_eq(run_out(&c, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "instance.max_seqs = "), "%.2000s", out);
    ck_assert_msg(strstr(out, "workload.arrival.rate_per_s"), "%.2000s", out);
    tu_cli_call bad = {{"servesim", "help", "config", "--bogus", NULL}};
    char err[4096];
    ck_assert_int_eq(tu_capture_stderr(tu_call_cli, &bad, err, sizeof err), 2);
}
END_TEST

Suite *cli_help_suite(void)
{
    Suite *s = suite_create("cli_help");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_every_subcommand_help_exits_0, 0, 5);
    tcase_add_test(tc, test_top_level_help_and_version);
    tcase_add_test(tc, test_help_config_lists_keys);
    suite_add_tcase(s, tc);
    return s;
}
