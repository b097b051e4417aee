/* Tests for sim/jsoncfg.c: parsing with positions, strict typed getters
 * with JSON paths in their messages, defaults written back, key checks and
 * command-line overrides. */
#include <check.h>
#include <float.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/jsoncfg.h"
#include "tests/suites.h"

static cJSON *parse_ok(const char *text)
{
    cJSON *root = NULL;
    sim_err err = {{0}};
    ck_assert_msg(jcfg_parse(text, "t.json", &root, &err) == 0, "%s", err.msg);
    return root;
}

#define ck_assert_has(haystack, needle)                                         \
    ck_assert_msg(strstr((haystack), (needle)) != NULL,                         \
                  "expected '%s' in '%s'", (needle), (haystack))

START_TEST(test_jcfg_syntax_error_names_line_and_column)
{
    cJSON *root = (cJSON *)1;
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_parse("{\n  \"a\": 1,\n  \"b\": ]\n}", "cfg.json", &root,
                                &err), -1);
    ck_assert_ptr_null(root);
    ck_assert_has(err.msg, "cfg.json:3:8: invalid JSON near '\"b\": ]'");
}
END_TEST

START_TEST(test_jcfg_syntax_error_at_end_of_input)
{
    cJSON *root;
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_parse("{\"a\": 1", "cfg.json", &root, &err), -1);
    ck_assert_str_eq(err.msg, "cfg.json:1:7: invalid JSON near '{\"a\": 1' (at end "
                     "of input)");
    ck_assert_int_eq(jcfg_parse("{\"a\": 1,}\n", "cfg.json", &root, &err), -1);
    ck_assert_str_eq(err.msg, "cfg.json:1:9: invalid JSON near '{\"a\": 1,}' (at "
                     "end of input)");
    ck_assert_int_eq(jcfg_parse(" \n ", "cfg.json", &root, &err), -1);
    ck_assert_str_eq(err.msg, "cfg.json:1:1: invalid JSON: no value");
}
END_TEST

START_TEST(test_jcfg_trailing_garbage_rejected)
{
    cJSON *root;
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_parse("{} x", "cfg.json", &root, &err), -1);
    ck_assert_str_eq(err.msg, "cfg.json:1:4: invalid JSON near '{} x'");
}
END_TEST

START_TEST(test_jcfg_duplicate_key_rejected_with_path)
{
    cJSON *root;
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_parse("{\"a\": {\"b\": 1, \"b\": 2}}", "cfg.json", &root,
                                &err), -1);
    ck_assert_has(err.msg, "cfg.json: $.a.b: duplicate key");
}
END_TEST

START_TEST(test_jcfg_load_file_missing_names_file)
{
    cJSON *root;
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_load_file("/nonexistent/x.json", &root, &err), -1);
    ck_assert_has(err.msg, "/nonexistent/x.json: cannot open");
}
END_TEST

START_TEST(test_jcfg_load_file_on_a_directory_says_so)
{
    cJSON *root;
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_load_file("/tmp", &root, &err), -1);
    ck_assert_has(err.msg, "/tmp: is a directory");
}
END_TEST

START_TEST(test_jcfg_load_file_reads_and_places_errors)
{
    char path[] = "/tmp/jcfg_test_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char text[] = "{\"x\": 2,\n \"y\": tru}\n";
    ck_assert_int_eq(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    cJSON *root;
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_load_file(path, &root, &err), -1);
    char want[64];
    snprintf(want, sizeof want, "%s:2:7:", path);
    ck_assert_has(err.msg, want);

    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"x\": 2}", f);
    fclose(f);
    ck_assert_int_eq(jcfg_load_file(path, &root, &err), 0);
    ck_assert_int_eq(cJSON_GetObjectItem(root, "x")->valueint, 2);
    cJSON_Delete(root);
    unlink(path);
}
END_TEST

START_TEST(test_jcfg_unknown_key_lists_allowed)
{
    cJSON *root = parse_ok("{\"cluster\": {\"tpp\": 2}}");
    static const char *const allowed[] = {"instances", "tp", NULL};
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_check_keys(cJSON_GetObjectItem(root, "cluster"),
                                     "$.cluster", allowed, &err), -1);
    ck_assert_str_eq(err.msg,
                     "$.cluster.tpp: unknown key; expected one of: instances, tp");
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_jcfg_known_keys_accepted)
{
    cJSON *root = parse_ok("{\"tp\": 2, \"instances\": 1}");
    static const char *const allowed[] = {"instances", "tp", NULL};
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_check_keys(root, "$", allowed, &err), 0);
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_jcfg_check_keys_rejects_non_object)
{
    cJSON *root = parse_ok("{\"a\": [1]}");
    static const char *const allowed[] = {NULL};
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_check_keys(cJSON_GetObjectItem(root, "a"), "$.a", allowed,
                                     &err), -1);
    ck_assert_str_eq(err.msg, "$.a: expected an object, got an array");
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_jcfg_num_positive_message)
{
    cJSON *root = parse_ok("{\"rate_per_s\": -3}");
    double v;
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_num(root, "$.workload.arrival", "rate_per_s",
                              JCFG_REQUIRED_NUM, DBL_MIN, INFINITY, &v, &err), -1);
    ck_assert_str_eq(err.msg,
                     "$.workload.arrival.rate_per_s: expected a number > 0, got -3");
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_jcfg_num_range_message_and_type)
{
    cJSON *root = parse_ok("{\"a\": 1.5, \"b\": \"x\"}");
    double v;
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_num(root, "$", "a", NAN, 0, 1, &v, &err), -1);
    ck_assert_str_eq(err.msg, "$.a: expected a number in [0, 1], got 1.5");
    ck_assert_int_eq(jcfg_num(root, "$", "b", NAN, 0, INFINITY, &v, &err), -1);
    ck_assert_str_eq(err.msg, "$.b: expected a number >= 0, got \"x\"");
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_jcfg_num_reads_value)
{
    cJSON *root = parse_ok("{\"a\": 0.25}");
    double v = 0;
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_num(root, "$", "a", NAN, 0, 1, &v, &err), 0);
    ck_assert_double_eq(v, 0.25);
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_jcfg_missing_required_is_error)
{
    cJSON *root = parse_ok("{}");
    double d;
    int64_t i;
    const char *s;
    bool b;
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_num(root, "$.x", "a", JCFG_REQUIRED_NUM, 0, 1, &d, &err), -1);
    ck_assert_str_eq(err.msg, "$.x.a: missing required key; expected a number in [0, 1]");
    ck_assert_int_eq(jcfg_int(root, "$", "n", JCFG_REQUIRED_INT, 1, 64, &i, &err), -1);
    ck_assert_has(err.msg, "$.n: missing required key");
    ck_assert_int_eq(jcfg_str(root, "$", "s", JCFG_REQUIRED_STR, &s, &err), -1);
    ck_assert_has(err.msg, "$.s: missing required key");
    ck_assert_int_eq(jcfg_bool(root, "$", "b", -1, &b, &err), -1);
    ck_assert_has(err.msg, "$.b: missing required key");
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_jcfg_defaults_added_to_tree)
{
    cJSON *root = parse_ok("{}");
    double d;
    int64_t i;
    const char *s;
    bool b;
    cJSON *child;
    char child_path[256];
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_num(root, "$", "d", 0.5, 0, 1, &d, &err), 0);
    ck_assert_int_eq(jcfg_int(root, "$", "i", 7, 1, 64, &i, &err), 0);
    ck_assert_int_eq(jcfg_str(root, "$", "s", "fcfs", &s, &err), 0);
    ck_assert_int_eq(jcfg_bool(root, "$", "b", 1, &b, &err), 0);
    ck_assert_int_eq(jcfg_obj(root, "$", "o", &child, child_path, &err), 0);
    ck_assert_double_eq(d, 0.5);
    ck_assert_int_eq(i, 7);
    ck_assert_str_eq(s, "fcfs");
    ck_assert(b);
    ck_assert_str_eq(child_path, "$.o");
    char *text = cJSON_PrintUnformatted(root);
    ck_assert_str_eq(text, "{\"d\":0.5,\"i\":7,\"s\":\"fcfs\",\"b\":true,\"o\":{}}");
    free(text);
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_jcfg_int_rejects_fraction_string_bool)
{
    cJSON *root = parse_ok("{\"a\": 1.5, \"b\": \"2\", \"c\": true, \"d\": 1e30}");
    int64_t v;
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_int(root, "$", "a", 1, 1, 64, &v, &err), -1);
    ck_assert_str_eq(err.msg, "$.a: expected an integer in [1, 64], got 1.5");
    ck_assert_int_eq(jcfg_int(root, "$", "b", 1, 1, 64, &v, &err), -1);
    ck_assert_str_eq(err.msg, "$.b: expected an integer in [1, 64], got \"2\"");
    ck_assert_int_eq(jcfg_int(root, "$", "c", 1, 1, 64, &v, &err), -1);
    ck_assert_str_eq(err.msg, "$.c: expected an integer in [1, 64], got true");
    ck_assert_int_eq(jcfg_int(root, "$", "d", 0, 0, INT64_MAX, &v, &err), -1);
    ck_assert_has(err.msg, "$.d: expected an integer >= 0");
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_jcfg_int_range_message)
{
    cJSON *root = parse_ok("{\"tp\": 65, \"n\": 1e3}");
    int64_t v;
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_int(root, "$.cluster", "tp", 1, 1, 64, &v, &err), -1);
    ck_assert_str_eq(err.msg, "$.cluster.tp: expected an integer in [1, 64], got 65");
    ck_assert_int_eq(jcfg_int(root, "$", "n", 1, 1, INT64_MAX, &v, &err), 0);
    ck_assert_int_eq(v, 1000);
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_jcfg_bool_and_str_types)
{
    cJSON *root = parse_ok("{\"b\": 1, \"s\": 3, \"o\": 4}");
    bool b;
    const char *s;
    cJSON *o;
    char p[256];
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_bool(root, "$", "b", 0, &b, &err), -1);
    ck_assert_str_eq(err.msg, "$.b: expected true or false, got 1");
    ck_assert_int_eq(jcfg_str(root, "$", "s", "x", &s, &err), -1);
    ck_assert_str_eq(err.msg, "$.s: expected a string, got 3");
    ck_assert_int_eq(jcfg_obj(root, "$", "o", &o, p, &err), -1);
    ck_assert_str_eq(err.msg, "$.o: expected an object, got 4");
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_jcfg_getter_on_non_object_fails)
{
    cJSON *root = parse_ok("[1, 2]");
    double v;
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_num(root, "$", "a", 1, 0, 2, &v, &err), -1);
    ck_assert_str_eq(err.msg, "$: expected an object, got an array");
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_jcfg_odd_key_path_bracketed)
{
    cJSON *root = parse_ok("{\"a b\": \"x\"}");
    double v;
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_num(root, "$", "a b", 1, 0, 2, &v, &err), -1);
    ck_assert_str_eq(err.msg, "$[\"a b\"]: expected a number in [0, 2], got \"x\"");
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_jcfg_set_parses_json_values)
{
    cJSON *root = parse_ok("{\"cluster\": {\"tp\": 1}}");
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_set(root, "cluster.tp=4", &err), 0);
    ck_assert_int_eq(jcfg_set(root, "flag=true", &err), 0);
    ck_assert_int_eq(jcfg_set(root, "obj={\"k\": [1]}", &err), 0);
    char *text = cJSON_PrintUnformatted(root);
    ck_assert_str_eq(text, "{\"cluster\":{\"tp\":4},\"flag\":true,\"obj\":{\"k\":[1]}}");
    free(text);
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_jcfg_set_plain_text_is_string)
{
    cJSON *root = parse_ok("{}");
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_set(root, "policy.name=fcfs", &err), 0);
    ck_assert_int_eq(jcfg_set(root, "empty=", &err), 0);
    ck_assert_int_eq(jcfg_set(root, "eq=a=b", &err), 0);
    char *text = cJSON_PrintUnformatted(root);
    ck_assert_str_eq(text, "{\"policy\":{\"name\":\"fcfs\"},\"empty\":\"\",\"eq\":\"a=b\"}");
    free(text);
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_jcfg_set_creates_intermediate_objects)
{
    cJSON *root = parse_ok("{\"a\": {}}");
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_set(root, "a.b.c.d=1", &err), 0);
    char *text = cJSON_PrintUnformatted(root);
    ck_assert_str_eq(text, "{\"a\":{\"b\":{\"c\":{\"d\":1}}}}");
    free(text);
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_jcfg_set_indexes_arrays)
{
    cJSON *root = parse_ok("{\"g\": [{\"tp\": 1}, {\"tp\": 1}]}");
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_set(root, "g.1.tp=8", &err), 0);
    char *text = cJSON_PrintUnformatted(root);
    ck_assert_str_eq(text, "{\"g\":[{\"tp\":1},{\"tp\":8}]}");
    free(text);
    ck_assert_int_eq(jcfg_set(root, "g.2.tp=8", &err), -1);
    ck_assert_has(err.msg, "$.g is an array of 2");
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_jcfg_set_malformed_rejected)
{
    cJSON *root = parse_ok("{\"a\": 3}");
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_set(root, "novalue", &err), -1);
    ck_assert_has(err.msg, "expected key.path=value");
    ck_assert_int_eq(jcfg_set(root, "=1", &err), -1);
    ck_assert_int_eq(jcfg_set(root, "x..y=1", &err), -1);
    ck_assert_has(err.msg, "empty key");
    ck_assert_int_eq(jcfg_set(root, "x.=1", &err), -1);
    ck_assert_int_eq(jcfg_set(root, "new.a.b=1", &err), 0);
    cJSON_DeleteItemFromObject(root, "new");
    ck_assert_int_eq(jcfg_set(root, "a.b=1", &err), -1);
    ck_assert_has(err.msg, "$.a is 3, not an object");
    /* The tree is unchanged by failed overrides. */
    char *text = cJSON_PrintUnformatted(root);
    ck_assert_str_eq(text, "{\"a\":3}");
    free(text);
    cJSON_Delete(root);
}
END_TEST

/* ---- bounds and strictness (issue 15) ------------------------------------ */

/* Item 4: the reader is bounded. /dev/zero is refused at its first bytes
 * (binary), a regular file over the limit before anything is read, and a
 * pipe that never ends at the limit. */
START_TEST(test_jcfg_load_file_dev_zero_is_refused_at_once)
{
    cJSON *root = (cJSON *)1;
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_load_file("/dev/zero", &root, &err), -1);
    ck_assert_ptr_null(root);
    ck_assert_has(err.msg, "/dev/zero: a NUL byte at offset 0; not a JSON text file");
}
END_TEST

START_TEST(test_jcfg_load_file_over_the_size_limit_is_refused)
{
    char path[] = "/tmp/jcfg_big_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    /* Sparse: the size is checked before anything is read. */
    ck_assert_int_eq(ftruncate(fd, (off_t)JCFG_MAX_FILE_BYTES + 1), 0);
    close(fd);
    cJSON *root;
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_load_file(path, &root, &err), -1);
    ck_assert_has(err.msg, path);
    ck_assert_has(err.msg, "may have at most 64 MiB");
    unlink(path);
}
END_TEST

START_TEST(test_jcfg_load_file_endless_pipe_stops_at_the_limit)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {   /* writes spaces until the reader closes the pipe */
        close(p[0]);
        signal(SIGPIPE, SIG_DFL);
        static char spaces[65536];
        memset(spaces, ' ', sizeof spaces);
        for (;;)
            if (write(p[1], spaces, sizeof spaces) < 0)
                _exit(0);
    }
    close(p[1]);
    char path[64];
    snprintf(path, sizeof path, "/dev/fd/%d", p[0]);
    cJSON *root;
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_load_file(path, &root, &err), -1);
    ck_assert_has(err.msg, "more than 64 MiB");
    close(p[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}
END_TEST

/* Item 9: \u0000 would cut the string; it is refused with its place. An
 * escaped backslash before "u0000" is ordinary text. */
START_TEST(test_jcfg_nul_escape_in_a_string_is_refused)
{
    cJSON *root;
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_parse("{\n \"model\": \"Llama-3-8B\\u0000garbage\"}", "c.json",
                                &root, &err), -1);
    ck_assert_has(err.msg, "c.json:2:22: \\u0000 (a NUL character) in a string");
    ck_assert_int_eq(jcfg_parse("{\"k\\u0000\": 1}", "c.json", &root, &err), -1);
    ck_assert_has(err.msg, "c.json:1:4:");
    root = parse_ok("{\"a\": \"x\\\\u0000\"}");
    ck_assert_str_eq(cJSON_GetObjectItem(root, "a")->valuestring, "x\\u0000");
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_jcfg_too_deep_and_out_of_range_are_refused)
{
    /* Nesting past the limit, with its place. */
    size_t n = JCFG_MAX_DEPTH + 1;
    char *deep = calloc(2 * n + 1, 1);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    cJSON *root;
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_parse(deep, "d.json", &root, &err), -1);
    char want[96];
    snprintf(want, sizeof want, "d.json:1:%d: arrays and objects nested deeper than %d",
             JCFG_MAX_DEPTH + 1, JCFG_MAX_DEPTH);
    ck_assert_has(err.msg, want);
    deep[0] = ' ';   /* exactly at the limit: fine */
    deep[2 * n - 1] = ' ';
    root = parse_ok(deep);
    cJSON_Delete(root);
    free(deep);
    /* A number beyond a double's range, with its path. */
    ck_assert_int_eq(jcfg_parse("{\"a\": [1, -1e999]}", "r.json", &root, &err), -1);
    ck_assert_has(err.msg, "r.json: $.a[1]: number out of range");
    ck_assert_int_eq(jcfg_parse("1e999", "r.json", &root, &err), -1);
    ck_assert_has(err.msg, "r.json: $: number out of range");
}
END_TEST

/* Item 8: --set values get a file's checks. */
START_TEST(test_jcfg_set_is_as_strict_as_a_file)
{
    cJSON *root = parse_ok("{\"cluster\": {\"tp\": 1}}");
    sim_err err = {{0}};
    ck_assert_int_eq(jcfg_set(root, "cluster={\"tp\":1,\"tp\":2}", &err), -1);
    ck_assert_has(err.msg, "$.cluster.tp: duplicate key");
    ck_assert_int_eq(jcfg_set(root, "cluster.tp=1e999", &err), -1);
    ck_assert_has(err.msg, "$.cluster.tp: number out of range");
    ck_assert_int_eq(jcfg_set(root, "model=\"Llama\\u0000x\"", &err), -1);
    ck_assert_has(err.msg, "NUL");
    /* A value that starts like JSON must be JSON: a typo or a nesting past
     * the limit is an error, not a string. */
    ck_assert_int_eq(jcfg_set(root, "cluster={\"tp\": 2,}", &err), -1);
    ck_assert_has(err.msg, "invalid JSON");
    size_t n = 10000;
    char *deep = calloc(2 * n + 8, 1);
    strcpy(deep, "x=");
    memset(deep + 2, '[', n);
    memset(deep + 2 + n, ']', n);
    ck_assert_int_eq(jcfg_set(root, deep, &err), -1);
    ck_assert_has(err.msg, "nested deeper than");
    free(deep);
    ck_assert_int_eq(jcfg_set(root, "name=\"unterminated", &err), -1);
    /* The tree is unchanged by all of that. */
    char *text = cJSON_PrintUnformatted(root);
    ck_assert_str_eq(text, "{\"cluster\":{\"tp\":1}}");
    free(text);
    cJSON_Delete(root);
}
END_TEST

/* Item 8: a message about a value names where it came from. */
START_TEST(test_jcfg_err_source_names_the_command_line)
{
    char *sets[] = {"cluster.tp=0", "workload={\"requests\": 0}", "g.1.tp=9"};
    struct { const char *msg, *want; } cases[] = {
        {"$.cluster.tp: expected an integer", "command line --set cluster.tp=0: $.cluster.tp"},
        {"$.cluster.instances: expected", "cfg.json: $.cluster.instances"},
        {"$.cluster.tpx: unknown key", "cfg.json: $.cluster.tpx"},
        {"$.workload.requests: expected", "command line --set workload={"},
        {"$.g[1].tp: expected", "command line --set g.1.tp=9"},
        {"$.g[0].tp: expected", "cfg.json: $.g[0]"},
        {"trace.csv:3: bad row", "cfg.json: trace.csv:3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sim_err err;
        snprintf(err.msg, sizeof err.msg, "%s", cases[i].msg);
        ck_assert_int_eq(jcfg_err_source(&err, "cfg.json", sets, 3), -1);
        ck_assert_msg(!strncmp(err.msg, cases[i].want, strlen(cases[i].want)),
                      "case %zu: '%s' does not start with '%s'", i, err.msg, cases[i].want);
    }
}
END_TEST

Suite *jsoncfg_suite(void)
{
    Suite *s = suite_create("jsoncfg");
    TCase *tc;
#define ADD(fn)                         \
    tc = tcase_create(#fn);             \
    tcase_add_test(tc, fn);             \
    suite_add_tcase(s, tc)
    ADD(test_jcfg_syntax_error_names_line_and_column);
    ADD(test_jcfg_syntax_error_at_end_of_input);
    ADD(test_jcfg_trailing_garbage_rejected);
    ADD(test_jcfg_duplicate_key_rejected_with_path);
    ADD(test_jcfg_load_file_missing_names_file);
    ADD(test_jcfg_load_file_on_a_directory_says_so);
    ADD(test_jcfg_load_file_reads_and_places_errors);
    ADD(test_jcfg_unknown_key_lists_allowed);
    ADD(test_jcfg_known_keys_accepted);
    ADD(test_jcfg_check_keys_rejects_non_object);
    ADD(test_jcfg_num_positive_message);
    ADD(test_jcfg_num_range_message_and_type);
    ADD(test_jcfg_num_reads_value);
    ADD(test_jcfg_missing_required_is_error);
    ADD(test_jcfg_defaults_added_to_tree);
    ADD(test_jcfg_int_rejects_fraction_string_bool);
    ADD(test_jcfg_int_range_message);
    ADD(test_jcfg_bool_and_str_types);
    ADD(test_jcfg_getter_on_non_object_fails);
    ADD(test_jcfg_odd_key_path_bracketed);
    ADD(test_jcfg_set_parses_json_values);
    ADD(test_jcfg_set_plain_text_is_string);
    ADD(test_jcfg_set_creates_intermediate_objects);
    ADD(test_jcfg_set_indexes_arrays);
    ADD(test_jcfg_set_malformed_rejected);
    ADD(test_jcfg_load_file_dev_zero_is_refused_at_once);
    ADD(test_jcfg_load_file_over_the_size_limit_is_refused);
    ADD(test_jcfg_load_file_endless_pipe_stops_at_the_limit);
    tcase_set_timeout(tc, 60);   /* 64 MiB through a pipe: slow under ASan on a busy host */
    ADD(test_jcfg_nul_escape_in_a_string_is_refused);
    ADD(test_jcfg_too_deep_and_out_of_range_are_refused);
    ADD(test_jcfg_set_is_as_strict_as_a_file);
    ADD(test_jcfg_err_source_names_the_command_line);
#undef ADD
    return s;
}
