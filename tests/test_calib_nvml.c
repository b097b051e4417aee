/* Tests for the NVML loader's search (calib/nvml.c) with two fake
 * libnvidia-ml.so.1 built from tests/calib_fake_nvml.c: one that works for
 * the GPU at bus id 0000:AB:00.0, one whose init fails as the CUDA
 * toolkit's stub library does. The loader must pass over missing and
 * broken libraries to a working one, say which it used, and name every
 * library it tried when none works. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calib/nvml.h"
#include "tests/suites.h"

#define FAKE_OK "build/calib/fake_nvml/ok/libnvidia-ml.so.1"
#define FAKE_BROKEN "build/calib/fake_nvml/broken/libnvidia-ml.so.1"
#define FAKE_BUS "0000:AB:00.0"

/* dlopen needs a slash to take a path rather than a name to search for */
static void fake_path(const char *rel, char *out, size_t n)
{
    char cwd[512];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    snprintf(out, n, "%s/%s", cwd, rel);
    ck_assert_msg(access(out, R_OK) == 0, "%s: missing (make build/test_all builds it)", out);
}

START_TEST(test_nvml_candidates_in_order)
{
    char paths[16][CALIB_NVML_PATH_MAX];
    int n = calib_nvml_candidates("/opt/nv/libnvidia-ml.so.1", paths, 16);
    ck_assert_int_ge(n, 6);
    ck_assert_str_eq(paths[0], "/opt/nv/libnvidia-ml.so.1");
    ck_assert_str_eq(paths[1], "libnvidia-ml.so.1");   /* the loader's search path */
    int multiarch = 0, lib64 = 0;
    for (int i = 2; i < n; i++) {
        ck_assert_msg(paths[i][0] == '/', "%s: not a path", paths[i]);
        ck_assert_msg(strstr(paths[i], "stubs") == NULL, "%s: the toolkit's stub", paths[i]);
        multiarch += strcmp(paths[i], "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1") == 0;
        lib64 += strcmp(paths[i], "/usr/lib64/libnvidia-ml.so.1") == 0;
    }
    ck_assert_int_eq(multiarch, 1);
    ck_assert_int_eq(lib64, 1);
    /* no variable: the name first; a short list is filled, not overrun */
    ck_assert_int_eq(calib_nvml_candidates(NULL, paths, 16), n - 1);
    ck_assert_str_eq(paths[0], "libnvidia-ml.so.1");
    ck_assert_int_eq(calib_nvml_candidates("", paths, 2), 2);
    ck_assert_str_eq(paths[1], "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1");
}
END_TEST

START_TEST(test_nvml_falls_back_past_missing_and_broken)
{
    char ok[600], broken[600];
    fake_path(FAKE_OK, ok, sizeof ok);
    fake_path(FAKE_BROKEN, broken, sizeof broken);
    const char *libs[] = {"/nonexistent/servesim/libnvidia-ml.so.1", broken, ok};
    char why[1024] = "x";
    calib_nvml *n = calib_nvml_open_from(FAKE_BUS, libs, 3, why, sizeof why);
    ck_assert_msg(n != NULL, "%s", why);
    ck_assert_str_eq(why, "");
    ck_assert_str_eq(calib_nvml_library(n), ok);
    ck_assert_int_eq(calib_nvml_method(n), CALIB_POWER_ENERGY_COUNTER);
    unsigned long long a, b;
    ck_assert_int_eq(calib_nvml_energy_mj(n, &a), 0);
    ck_assert_int_eq(calib_nvml_energy_mj(n, &b), 0);
    ck_assert(b > a);
    calib_gpu_state s;
    calib_nvml_state(n, &s);
    ck_assert(s.sm_clock_mhz == 1755 && s.sm_clock_max_mhz == 1980);
    ck_assert(s.power_limit_w == 700 && s.enforced_power_limit_w == 650);
    ck_assert_int_eq(s.clocks_event_reasons, 0x4);
    ck_assert(calib_nvml_reasons(n) & CALIB_THROTTLE_MASK);
    char drv[64], uuid[64];
    calib_nvml_driver_version(n, drv, sizeof drv);
    calib_nvml_uuid(n, uuid, sizeof uuid);
    ck_assert_str_eq(drv, "999.99-fake");
    ck_assert_str_eq(uuid, "GPU-fake-0000");
    calib_nvml_close(n);
}
END_TEST

START_TEST(test_nvml_names_every_library_tried)
{
    char broken[600];
    fake_path(FAKE_BROKEN, broken, sizeof broken);
    const char *libs[] = {"/nonexistent/servesim/libnvidia-ml.so.1", broken};
    char why[1024];
    ck_assert_ptr_null(calib_nvml_open_from(FAKE_BUS, libs, 2, why, sizeof why));
    ck_assert_msg(strstr(why, "no usable NVML library (tried 2)") != NULL, "%s", why);
    ck_assert_msg(strstr(why, "/nonexistent/servesim/libnvidia-ml.so.1: not found") != NULL,
                  "%s", why);
    char want[700];
    snprintf(want, sizeof want, "%s: nvmlInit_v2 returned 9", broken);
    ck_assert_msg(strstr(why, want) != NULL, "%s", why);
}
END_TEST

/* A working library without the CUDA device's bus id: no NVML (never
 * another GPU's readings), and the message says which library and bus. */
START_TEST(test_nvml_wrong_bus_id)
{
    char ok[600];
    fake_path(FAKE_OK, ok, sizeof ok);
    const char *libs[] = {ok};
    char why[1024];
    ck_assert_ptr_null(calib_nvml_open_from("0000:01:00.0", libs, 1, why, sizeof why));
    char want[700];
    snprintf(want, sizeof want, "%s: no NVML device for PCI bus id 0000:01:00.0", ok);
    ck_assert_msg(strstr(why, want) != NULL, "%s", why);
}
END_TEST

Suite *calib_nvml_suite(void)
{
    Suite *s = suite_create("calib_nvml");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_nvml_candidates_in_order);
    tcase_add_test(tc, test_nvml_falls_back_past_missing_and_broken);
    tcase_add_test(tc, test_nvml_names_every_library_tried);
    tcase_add_test(tc, test_nvml_wrong_bus_id);
    suite_add_tcase(s, tc);
    return s;
}
