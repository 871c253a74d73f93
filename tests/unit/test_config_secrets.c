/* Security settings of the configuration: passwords from files, the
 * combinations that must go together, the librdkafka passthrough, and that no
 * summary, log line or error message shows a password. */
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
#include "ka_kafka.h"
#include "ka_log.h"

static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/ka-secret-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void password_files_are_read_without_their_newline(void **state)
{
    (void)state;
    char err[512], redis_file[300], kafka_file[300];
    char *rp = write_temp("redis-pw-1\n");
    char *kp = write_temp("kafka pw with spaces\r\n");
    snprintf(redis_file, sizeof redis_file, "KA_REDIS_PASSWORD_FILE=%s", rp);
    snprintf(kafka_file, sizeof kafka_file, "KA_KAFKA_SASL_PASSWORD_FILE=%s", kp);
    char *env[] = {redis_file, kafka_file, "KA_KAFKA_SECURITY_PROTOCOL=sasl_plaintext",
                   "KA_KAFKA_SASL_USERNAME=app", NULL};
    ka_config_t *cfg = ka_config_load_env("visit-worker", NULL, env, err, sizeof err);
    if (!cfg)
        fail_msg("%s", err);
    assert_string_equal(ka_config_str(cfg, "KA_REDIS_PASSWORD"), "redis-pw-1");
    assert_string_equal(ka_config_str(cfg, "KA_KAFKA_SASL_PASSWORD"), "kafka pw with spaces");
    ka_config_free(cfg);
    unlink(rp);
    unlink(kp);
    free(rp);
    free(kp);
}

static void a_missing_or_empty_password_file_is_an_error(void **state)
{
    (void)state;
    char err[512];
    char *env[] = {"KA_REDIS_PASSWORD_FILE=/nonexistent/ka-redis-password", NULL};
    assert_null(ka_config_load_env("visit-worker", NULL, env, err, sizeof err));
    assert_non_null(strstr(err, "KA_REDIS_PASSWORD_FILE"));
    assert_non_null(strstr(err, "/nonexistent/ka-redis-password"));

    /* A device or FIFO named by mistake is refused instead of read (or waited on). */
    char *dev[] = {"KA_KAFKA_SASL_PASSWORD_FILE=/dev/null", NULL};
    assert_null(ka_config_load_env("visit-worker", NULL, dev, err, sizeof err));
    assert_non_null(strstr(err, "not a regular file"));

    char *empty = write_temp("\n");
    char setting[300];
    snprintf(setting, sizeof setting, "KA_PG_PASSWORD_FILE=%s", empty);
    char *env2[] = {setting, NULL};
    assert_null(ka_config_load_env("visit-worker", NULL, env2, err, sizeof err));
    assert_non_null(strstr(err, "empty"));
    unlink(empty);
    free(empty);
}

static void settings_that_go_together_are_checked(void **state)
{
    (void)state;
    char err[512];
    char *sasl_no_pw[] = {"KA_KAFKA_SECURITY_PROTOCOL=sasl_ssl", "KA_KAFKA_SASL_USERNAME=app",
                          NULL};
    assert_null(ka_config_load_env("w", NULL, sasl_no_pw, err, sizeof err));
    assert_non_null(strstr(err, "KA_KAFKA_SASL_PASSWORD"));

    char *pw_no_sasl[] = {"KA_KAFKA_SASL_USERNAME=app", "KA_KAFKA_SASL_PASSWORD=topsecret-1",
                          NULL};
    assert_null(ka_config_load_env("w", NULL, pw_no_sasl, err, sizeof err));
    assert_non_null(strstr(err, "KA_KAFKA_SECURITY_PROTOCOL=plaintext"));
    assert_null(strstr(err, "topsecret-1"));

    char *cert_no_key[] = {"KA_KAFKA_SECURITY_PROTOCOL=ssl",
                           "KA_KAFKA_SSL_CERTIFICATE_LOCATION=/etc/ka/client.pem", NULL};
    assert_null(ka_config_load_env("w", NULL, cert_no_key, err, sizeof err));
    assert_non_null(strstr(err, "KA_KAFKA_SSL_KEY_LOCATION"));

    char *redis_user_only[] = {"KA_REDIS_USERNAME=cache", NULL};
    assert_null(ka_config_load_env("w", NULL, redis_user_only, err, sizeof err));
    assert_non_null(strstr(err, "KA_REDIS_PASSWORD"));

    char *bad_mech[] = {"KA_KAFKA_SASL_MECHANISM=GSSAPI", NULL};
    assert_null(ka_config_load_env("w", NULL, bad_mech, err, sizeof err));
    assert_non_null(strstr(err, "SCRAM-SHA-256"));
}

static void pg_password_joins_the_dsn_quoted(void **state)
{
    (void)state;
    char err[512];
    char *env[] = {"KA_PG_DSN=host=db dbname=ka user=ka_visit_worker",
                   "KA_PG_PASSWORD=it's a \\ secret", NULL};
    ka_config_t *cfg = ka_config_load_env("visit-worker", NULL, env, err, sizeof err);
    if (!cfg)
        fail_msg("%s", err);
    assert_string_equal(ka_config_str(cfg, "KA_PG_DSN"),
                        "host=db dbname=ka user=ka_visit_worker password='it\\'s a \\\\ secret'");
    /* A DSN set later keeps the password. */
    assert_int_equal(ka_config_set(cfg, "KA_PG_DSN", "host=db2 user=u", err, sizeof err), KA_OK);
    assert_string_equal(ka_config_str(cfg, "KA_PG_DSN"),
                        "host=db2 user=u password='it\\'s a \\\\ secret'");
    ka_config_free(cfg);
}

static void dsn_redaction(void **state)
{
    (void)state;
    struct {
        const char *in, *want;
    } cases[] = {
        {"host=db password=plain1 user=u", "host=db password=*** user=u"},
        {"host=db password = 'q \\' x' user=u", "host=db password = *** user=u"},
        {"password=last", "password=***"},
        {"host=db user=u", "host=db user=u"},
        {"postgresql://u:uri-pw@db:5432/ka", "postgresql://u:***@db:5432/ka"},
        {"postgresql://db/ka", "postgresql://db/ka"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *r = ka_config_redact_dsn(cases[i].in);
        assert_string_equal(r, cases[i].want);
        free(r);
    }
}

/* The start-up log line (ka_service.c logs the summary) and the summary
 * itself hold none of the passwords, however each was given. */
static void summary_and_log_line_show_no_password(void **state)
{
    (void)state;
    char err[512], file_setting[300];
    char *rp = write_temp("pw-from-file-4\n");
    snprintf(file_setting, sizeof file_setting, "KA_REDIS_PASSWORD_FILE=%s", rp);
    char *env[] = {"KA_KAFKA_SECURITY_PROTOCOL=sasl_ssl",
                   "KA_KAFKA_SASL_USERNAME=app",
                   "KA_KAFKA_SASL_PASSWORD=pw-kafka-1",
                   "KA_KAFKA_SSL_KEY_PASSWORD=pw-key-2",
                   "KA_PG_DSN=host=db user=ka_order_worker password=pw-dsn-3",
                   "KA_PG_PASSWORD=pw-pg-5",
                   "KA_KAFKA_PROPERTY_SASL_OAUTHBEARER_CLIENT_SECRET=pw-prop-6",
                   "KA_KAFKA_PROPERTY_SOCKET_KEEPALIVE_ENABLE=true",
                   file_setting,
                   NULL};
    ka_config_t *cfg = ka_config_load_env("order-worker", NULL, env, err, sizeof err);
    if (!cfg)
        fail_msg("%s", err);
    char *summary = ka_config_summary(cfg);
    assert_null(strstr(summary, "pw-"));
    assert_non_null(strstr(summary, "KA_KAFKA_SASL_USERNAME=\"app\""));
    assert_non_null(strstr(summary, "KA_KAFKA_SASL_PASSWORD=***"));
    assert_non_null(strstr(summary, "user=ka_order_worker password=***"));
    assert_non_null(strstr(summary, "KA_KAFKA_PROPERTY_socket.keepalive.enable=true"));

    /* The log line as written to stderr. */
    char *logpath = write_temp("");
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_non_null(freopen(logpath, "w", stderr));
    ka_log_init("order-worker", "info");
    ka_log(KA_LOG_INFO, "configuration", "{s:s}", "settings", summary);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    FILE *f = fopen(logpath, "r");
    char line[8192] = "";
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_non_null(strstr(line, "KA_KAFKA_SASL_USERNAME"));
    assert_null(strstr(line, "pw-"));

    free(summary);
    ka_config_free(cfg);
    unlink(rp);
    unlink(logpath);
    free(rp);
    free(logpath);
}

static void passthrough_properties(void **state)
{
    (void)state;
    char err[512];
    const char *name, *value;
    char *env[] = {"KA_KAFKA_PROPERTY_SOCKET_KEEPALIVE_ENABLE=true",
                   "KA_KAFKA_PROPERTY_TOPIC_METADATA_REFRESH_INTERVAL_MS=60000", NULL};
    ka_config_t *cfg = ka_config_load_env("w", NULL, env, err, sizeof err);
    if (!cfg)
        fail_msg("%s", err);
    int n = 0, keepalive = 0;
    for (size_t i = 0; ka_config_kafka_property(cfg, i, &name, &value); i++, n++)
        if (strcmp(name, "socket.keepalive.enable") == 0 && strcmp(value, "true") == 0)
            keepalive = 1;
    assert_int_equal(n, 2);
    assert_true(keepalive);
    ka_config_free(cfg);

    /* What the exactly-once loop sets, or a typed key covers, is refused. */
    char *reserved[] = {"KA_KAFKA_PROPERTY_ENABLE_AUTO_COMMIT=true", NULL};
    assert_null(ka_config_load_env("w", NULL, reserved, err, sizeof err));
    assert_non_null(strstr(err, "enable.auto.commit"));
    char *typed[] = {"KA_KAFKA_PROPERTY_SASL_PASSWORD=pw-typed", NULL};
    assert_null(ka_config_load_env("w", NULL, typed, err, sizeof err));
    assert_null(strstr(err, "pw-typed"));
}

/* The settings reach librdkafka: a client refuses a CA file that does not
 * exist and a property it does not know, and the error names the setting but
 * not a secret value. No broker is contacted. */
static void kafka_clients_receive_the_settings(void **state)
{
    (void)state;
    char err[512];
    char *tls[] = {"KA_KAFKA_BROKERS=127.0.0.1:1", "KA_KAFKA_SECURITY_PROTOCOL=ssl",
                   "KA_KAFKA_SSL_CA_LOCATION=/nonexistent/ka-ca.pem", NULL};
    ka_config_t *cfg = ka_config_load_env("w", NULL, tls, err, sizeof err);
    if (!cfg)
        fail_msg("%s", err);
    assert_null(ka_producer_new(cfg, NULL, NULL, err, sizeof err));
    if (!strstr(err, "ssl.ca.location"))
        fail_msg("expected an ssl.ca.location error, got: %s", err);
    ka_config_free(cfg);

    char *unknown[] = {"KA_KAFKA_BROKERS=127.0.0.1:1",
                       "KA_KAFKA_PROPERTY_NO_SUCH_SECRET_TOKEN=pw-unknown-7", NULL};
    cfg = ka_config_load_env("w", NULL, unknown, err, sizeof err);
    if (!cfg)
        fail_msg("%s", err);
    assert_null(ka_producer_new(cfg, NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, "no.such.secret.token"));
    assert_null(strstr(err, "pw-unknown-7"));
    ka_config_free(cfg);

    char *sasl[] = {"KA_KAFKA_BROKERS=127.0.0.1:1", "KA_KAFKA_SECURITY_PROTOCOL=sasl_plaintext",
                    "KA_KAFKA_SASL_MECHANISM=SCRAM-SHA-512", "KA_KAFKA_SASL_USERNAME=app",
                    "KA_KAFKA_SASL_PASSWORD=pw-8", NULL};
    cfg = ka_config_load_env("w", NULL, sasl, err, sizeof err);
    if (!cfg)
        fail_msg("%s", err);
    ka_producer_t *kp = ka_producer_new(cfg, NULL, NULL, err, sizeof err);
    if (!kp)
        fail_msg("a SASL/SCRAM producer should be accepted: %s", err);
    ka_producer_free(kp);
    ka_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(password_files_are_read_without_their_newline),
        cmocka_unit_test(a_missing_or_empty_password_file_is_an_error),
        cmocka_unit_test(settings_that_go_together_are_checked),
        cmocka_unit_test(pg_password_joins_the_dsn_quoted),
        cmocka_unit_test(dsn_redaction),
        cmocka_unit_test(summary_and_log_line_show_no_password),
        cmocka_unit_test(passthrough_properties),
        cmocka_unit_test(kafka_clients_receive_the_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
