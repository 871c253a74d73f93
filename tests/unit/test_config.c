#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ka_config.h"

static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/ka-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void defaults_apply_without_environment(void **state)
{
    (void)state;
    char err[512];
    char *env[] = {NULL};
    ka_config_t *cfg = ka_config_load_env("visit-worker", NULL, env, err, sizeof err);
    assert_non_null(cfg);
    assert_string_equal(ka_config_str(cfg, "KA_KAFKA_BROKERS"), "127.0.0.1:19092");
    assert_string_equal(ka_config_str(cfg, "KA_CONSUMER_GROUP"), "ka-visit-worker");
    assert_string_equal(ka_config_str(cfg, "KA_CE_SOURCE"), "urn:ka:visit-worker");
    assert_int_equal(ka_config_int(cfg, "KA_BATCH_MAX_EVENTS"), 2000);
    ka_config_free(cfg);
}

static void environment_overrides_defaults(void **state)
{
    (void)state;
    char err[512];
    char *env[] = {"KA_BATCH_MAX_EVENTS=42", "KA_LOG_LEVEL=debug", "PATH=/bin",
                   "KA_STACK_DIR=/tmp/x", NULL};
    ka_config_t *cfg = ka_config_load_env("w", NULL, env, err, sizeof err);
    assert_non_null(cfg);
    assert_int_equal(ka_config_int(cfg, "KA_BATCH_MAX_EVENTS"), 42);
    assert_string_equal(ka_config_str(cfg, "KA_LOG_LEVEL"), "debug");
    ka_config_free(cfg);
}

static void file_overrides_environment(void **state)
{
    (void)state;
    char err[512];
    char *path = write_temp("# deployment pins\n\nKA_BATCH_MAX_EVENTS = 7\n"
                            "KA_PG_DSN=\"host=db port=5432\"\n");
    char var[600];
    snprintf(var, sizeof var, "KA_CONFIG_FILE=%s", path);
    char *env[] = {"KA_BATCH_MAX_EVENTS=42", var, NULL};
    ka_config_t *cfg = ka_config_load_env("w", NULL, env, err, sizeof err);
    assert_non_null(cfg);
    assert_int_equal(ka_config_int(cfg, "KA_BATCH_MAX_EVENTS"), 7);
    assert_string_equal(ka_config_str(cfg, "KA_PG_DSN"), "host=db port=5432");
    ka_config_free(cfg);
    unlink(path);
    free(path);
}

static void bad_values_are_named_in_the_error(void **state)
{
    (void)state;
    char err[512];
    char *env1[] = {"KA_BATCH_MAX_EVENTS=lots", NULL};
    assert_null(ka_config_load_env("w", NULL, env1, err, sizeof err));
    assert_non_null(strstr(err, "KA_BATCH_MAX_EVENTS"));
    assert_non_null(strstr(err, "lots"));

    char *env2[] = {"KA_REDIS_PORT=70000", NULL};
    assert_null(ka_config_load_env("w", NULL, env2, err, sizeof err));
    assert_non_null(strstr(err, "1 to 65535"));

    char *env3[] = {"KA_START_OFFSET=middle", NULL};
    assert_null(ka_config_load_env("w", NULL, env3, err, sizeof err));
    assert_non_null(strstr(err, "earliest|latest"));
}

static void unknown_key_in_file_names_file_and_line(void **state)
{
    (void)state;
    char err[512];
    char *path = write_temp("KA_LOG_LEVEL=info\nKA_BATCH_MAX_EVNTS=10\n");
    char *env[] = {NULL};
    assert_null(ka_config_load_env("w", path, env, err, sizeof err));
    assert_non_null(strstr(err, ":2:"));
    assert_non_null(strstr(err, "KA_BATCH_MAX_EVNTS"));
    unlink(path);
    free(path);
    assert_null(ka_config_load_env("w", "/nonexistent/ka.conf", env, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/ka.conf"));
}

/* A line longer than the reader's buffer is refused, not split into two
 * lines whose tail would set another key. */
static void overlong_line_is_refused(void **state)
{
    (void)state;
    char err[512];
    size_t n = 10 + 4085 + 19;
    char *text = malloc(n + 2);
    memcpy(text, "KA_PG_DSN=", 10);
    memset(text + 10, 'x', 4085);
    memcpy(text + 10 + 4085, "KA_LOG_LEVEL=debug\n", 20);
    char *path = write_temp(text);
    char *env[] = {NULL};
    assert_null(ka_config_load_env("w", path, env, err, sizeof err));
    assert_non_null(strstr(err, ":1: line longer than"));
    unlink(path);
    free(path);
    free(text);
}

static void set_validates_like_load(void **state)
{
    (void)state;
    char err[512];
    char *env[] = {NULL};
    ka_config_t *cfg = ka_config_load_env("w", NULL, env, err, sizeof err);
    assert_int_equal(ka_config_set(cfg, "KA_BATCH_MAX_MS", "5", err, sizeof err), KA_OK);
    assert_int_equal(ka_config_int(cfg, "KA_BATCH_MAX_MS"), 5);
    assert_int_equal(ka_config_set(cfg, "KA_BATCH_MAX_MS", "0", err, sizeof err), KA_ERR_CONFIG);
    assert_int_equal(ka_config_set(cfg, "KA_NOPE", "1", err, sizeof err), KA_ERR_CONFIG);
    assert_int_equal(ka_config_int(cfg, "KA_BATCH_MAX_MS"), 5);
    ka_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_apply_without_environment),
        cmocka_unit_test(environment_overrides_defaults),
        cmocka_unit_test(file_overrides_environment),
        cmocka_unit_test(bad_values_are_named_in_the_error),
        cmocka_unit_test(unknown_key_in_file_names_file_and_line),
        cmocka_unit_test(overlong_line_is_refused),
        cmocka_unit_test(set_validates_like_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
