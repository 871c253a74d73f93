/* Redis AUTH: against a private redis-server this test starts with a
 * password and an ACL user, the client authenticates with either, a wrong or
 * missing password is refused with a message that does not echo it, and a
 * re-opened connection authenticates again. */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ka_config.h"
#include "ka_redis.h"

#define PASSWORD "default-pw-31"
#define ACL_USER "cache"
#define ACL_PASSWORD "cache-pw-47"

static pid_t server;
static int port;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int start_server(void **state)
{
    (void)state;
    char port_s[16];
    port = free_port();
    snprintf(port_s, sizeof port_s, "%d", port);
    server = fork();
    if (server == 0) {
        execlp("redis-server", "redis-server", "--bind", "127.0.0.1", "--port", port_s,
               "--save", "", "--appendonly", "no", "--requirepass", PASSWORD, "--user", ACL_USER,
               "on", ">" ACL_PASSWORD, "~*", "&*", "+@all", (char *)NULL);
        _exit(127);
    }
    /* Up when it answers a connection (AUTH aside). */
    for (int i = 0; i < 100; i++) {
        char err[256];
        ka_redis_t *r = ka_redis_connect("127.0.0.1", port, 500, err, sizeof err);
        if (r) {
            ka_redis_free(r);
            return 0;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "redis-server did not start on port %d\n", port);
    return -1;
}

static int stop_server(void **state)
{
    (void)state;
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, NULL, 0);
    }
    return 0;
}

static ka_config_t *config(const char *user, const char *password_file)
{
    char err[512], host[64], port_s[64], user_s[64], file_s[512];
    snprintf(host, sizeof host, "KA_REDIS_HOST=127.0.0.1");
    snprintf(port_s, sizeof port_s, "KA_REDIS_PORT=%d", port);
    snprintf(user_s, sizeof user_s, "KA_REDIS_USERNAME=%s", user ? user : "");
    snprintf(file_s, sizeof file_s, "KA_REDIS_PASSWORD_FILE=%s", password_file);
    char *env[] = {host, port_s, user_s, file_s, NULL};
    ka_config_t *cfg = ka_config_load_env("test-redis-auth", NULL, env, err, sizeof err);
    if (!cfg)
        fail_msg("%s", err);
    return cfg;
}

static char *secret_file(const char *pw)
{
    char *path = strdup("/tmp/ka-redis-pw-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_true(write(fd, pw, strlen(pw)) == (ssize_t)strlen(pw));
    assert_true(write(fd, "\n", 1) == 1);
    close(fd);
    return path;
}

/* SET then GET through the handle: KA_OK and the value back. */
static ka_err_t round_trip(ka_redis_t *r, const char *key)
{
    char err[256];
    const char *set[] = {"SET", key, "v1"};
    char *out = NULL;
    ka_redis_append_str(r, 3, set);
    ka_err_t rc = ka_redis_flush(r, err, sizeof err);
    if (rc != KA_OK)
        return rc;
    rc = ka_redis_get(r, key, &out, NULL, err, sizeof err);
    if (rc == KA_OK && (!out || strcmp(out, "v1") != 0))
        rc = KA_ERR;
    free(out);
    return rc;
}

static void password_and_acl_user_authenticate(void **state)
{
    (void)state;
    char err[512];
    char *pw = secret_file(PASSWORD);
    ka_config_t *cfg = config(NULL, pw);
    ka_redis_t *r = ka_redis_connect_config(cfg, 1000, err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    assert_int_equal(round_trip(r, "k-default"), KA_OK);
    ka_redis_free(r);
    ka_config_free(cfg);

    char *acl = secret_file(ACL_PASSWORD);
    cfg = config(ACL_USER, acl);
    r = ka_redis_connect_config(cfg, 1000, err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    assert_int_equal(round_trip(r, "k-acl"), KA_OK);
    ka_redis_free(r);
    ka_config_free(cfg);
    unlink(pw);
    unlink(acl);
    free(pw);
    free(acl);
}

static void wrong_or_missing_password_is_refused(void **state)
{
    (void)state;
    char err[512];
    ka_redis_t *r = ka_redis_connect_auth("127.0.0.1", port, 1000, NULL, "wrong-pw-53", err,
                                          sizeof err);
    assert_null(r);
    assert_non_null(strstr(err, "refused AUTH"));
    assert_null(strstr(err, "wrong-pw-53"));

    r = ka_redis_connect_auth("127.0.0.1", port, 1000, ACL_USER, PASSWORD, err, sizeof err);
    assert_null(r);
    assert_non_null(strstr(err, ACL_USER));
    assert_null(strstr(err, PASSWORD));

    /* Without AUTH the server answers every command with NOAUTH. */
    r = ka_redis_connect("127.0.0.1", port, 1000, err, sizeof err);
    assert_non_null(r);
    char *out = NULL;
    assert_int_equal(ka_redis_get(r, "k-default", &out, NULL, err, sizeof err), KA_ERR);
    assert_non_null(strstr(err, "NOAUTH"));
    ka_redis_free(r);
}

static void a_reopened_connection_authenticates_again(void **state)
{
    (void)state;
    char err[512];
    ka_redis_t *victim =
        ka_redis_connect_auth("127.0.0.1", port, 1000, NULL, PASSWORD, err, sizeof err);
    ka_redis_t *admin =
        ka_redis_connect_auth("127.0.0.1", port, 1000, NULL, PASSWORD, err, sizeof err);
    assert_non_null(victim);
    assert_non_null(admin);
    assert_int_equal(round_trip(victim, "k-before"), KA_OK);

    const char *kill_all[] = {"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"};
    ka_redis_append_str(admin, 6, kill_all);
    assert_int_equal(ka_redis_flush(admin, err, sizeof err), KA_OK);

    /* The first call finds the connection gone; a later one re-opens it and
     * must authenticate again, or the server would answer NOAUTH. */
    int broken = 0;
    ka_err_t rc = KA_ERR_RETRY;
    for (int i = 0; i < 3 && rc == KA_ERR_RETRY; i++) {
        rc = round_trip(victim, "k-after");
        broken += rc == KA_ERR_RETRY;
    }
    assert_int_equal(broken, 1);
    assert_int_equal(rc, KA_OK);
    ka_redis_free(victim);
    ka_redis_free(admin);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(password_and_acl_user_authenticate),
        cmocka_unit_test(wrong_or_missing_password_is_refused),
        cmocka_unit_test(a_reopened_connection_authenticates_again),
    };
    return cmocka_run_group_tests(tests, start_server, stop_server);
}
