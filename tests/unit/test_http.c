/* The operations endpoint over real HTTP on loopback: /metrics serves the
 * registry with the exposition format's content type, /healthz and /readyz
 * answer 200 or 503 with the probe's reason, anything else is 404 or 405, and
 * a port already taken is an error that names it. No external servers. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ka_http.h"

typedef struct reply {
    int status;
    char *head; /* status line and headers */
    char *body;
} reply_t;

/* A blocking HTTP/1.0 request to 127.0.0.1:port; the server closes after
 * its answer. */
static reply_t http_request(int port, const char *method, const char *path)
{
    reply_t r = {0, NULL, NULL};
    char req[256], buf[4096];
    size_t len = 0, cap = 0;
    char *all = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", method, path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    ssize_t got;
    while ((got = read(fd, buf, sizeof buf)) > 0) {
        if (len + (size_t)got + 1 > cap) {
            cap = (len + (size_t)got + 1) * 2;
            all = realloc(all, cap);
        }
        memcpy(all + len, buf, (size_t)got);
        len += (size_t)got;
        all[len] = '\0';
    }
    close(fd);
    assert_non_null(all);
    char *split = strstr(all, "\r\n\r\n");
    assert_non_null(split);
    *split = '\0';
    r.head = all;
    r.body = strdup(split + 4);
    assert_int_equal(sscanf(all, "HTTP/1.%*d %d", &r.status), 1);
    return r;
}

static void free_reply(reply_t *r)
{
    free(r->head);
    free(r->body);
}

typedef struct probe_state {
    int healthy, ready;
} probe_state_t;

static int healthz(void *ud, char *reason, size_t len)
{
    probe_state_t *p = ud;
    if (!p->healthy)
        snprintf(reason, len, "loop stalled");
    return p->healthy;
}

static int readyz(void *ud, char *reason, size_t len)
{
    probe_state_t *p = ud;
    if (!p->ready)
        snprintf(reason, len, "kafka not connected; no partition assigned");
    return p->ready;
}

static ka_http_t *start(probe_state_t *probe, ka_metrics_t *m)
{
    char err[256];
    ka_http_handlers_t h = {probe, m, healthz, readyz};
    ka_http_t *http = ka_http_start("127.0.0.1", 0, &h, err, sizeof err); /* 0: any free port */
    if (!http)
        fail_msg("%s", err);
    assert_true(ka_http_port(http) > 0);
    return http;
}

static void metrics_are_served_in_the_text_format(void **state)
{
    (void)state;
    probe_state_t probe = {1, 1};
    ka_metrics_t *m = ka_metrics_new();
    const char *reason[] = {"decode_failed"};
    ka_metrics_add(ka_metrics_series(ka_metrics_counter(m, "ka_events_dead_lettered_total",
                                                        "Dead letters", "reason"),
                                     reason),
                   3);
    ka_http_t *http = start(&probe, m);
    reply_t r = http_request(ka_http_port(http), "GET", "/metrics");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    assert_string_equal(r.body, "# HELP ka_events_dead_lettered_total Dead letters\n"
                                "# TYPE ka_events_dead_lettered_total counter\n"
                                "ka_events_dead_lettered_total{reason=\"decode_failed\"} 3\n");
    free_reply(&r);
    r = http_request(ka_http_port(http), "HEAD", "/metrics");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "");
    free_reply(&r);
    ka_http_stop(http);
    ka_metrics_free(m);
}

static void probes_answer_200_or_503_with_the_reason(void **state)
{
    (void)state;
    probe_state_t probe = {1, 0};
    ka_metrics_t *m = ka_metrics_new();
    ka_http_t *http = start(&probe, m);
    int port = ka_http_port(http);
    reply_t r = http_request(port, "GET", "/healthz");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");
    free_reply(&r);
    r = http_request(port, "GET", "/readyz");
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "kafka not connected; no partition assigned\n");
    free_reply(&r);
    probe.ready = 1;
    probe.healthy = 0;
    r = http_request(port, "GET", "/readyz");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ready\n");
    free_reply(&r);
    r = http_request(port, "GET", "/healthz");
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "loop stalled\n");
    free_reply(&r);
    ka_http_stop(http);
    ka_metrics_free(m);
}

static void other_paths_and_methods_are_refused(void **state)
{
    (void)state;
    probe_state_t probe = {1, 1};
    ka_metrics_t *m = ka_metrics_new();
    ka_http_t *http = start(&probe, m);
    int port = ka_http_port(http);
    reply_t r = http_request(port, "GET", "/");
    assert_int_equal(r.status, 404);
    free_reply(&r);
    r = http_request(port, "GET", "/metrics/extra");
    assert_int_equal(r.status, 404);
    free_reply(&r);
    r = http_request(port, "POST", "/metrics");
    assert_int_equal(r.status, 405);
    assert_non_null(strstr(r.head, "Allow: GET, HEAD"));
    free_reply(&r);
    r = http_request(port, "GET", "/readyz?verbose=1"); /* a query string is ignored */
    assert_int_equal(r.status, 200);
    free_reply(&r);
    ka_http_stop(http);
    ka_metrics_free(m);
}

static void a_port_in_use_is_an_error_naming_it(void **state)
{
    (void)state;
    char err[256], want[64];
    probe_state_t probe = {1, 1};
    ka_metrics_t *m = ka_metrics_new();
    ka_http_t *first = start(&probe, m);
    ka_http_handlers_t h = {&probe, m, healthz, readyz};
    ka_http_t *second = ka_http_start("127.0.0.1", ka_http_port(first), &h, err, sizeof err);
    assert_null(second);
    snprintf(want, sizeof want, "127.0.0.1:%d", ka_http_port(first));
    assert_non_null(strstr(err, want));
    assert_null(ka_http_start("not an address", 9, &h, err, sizeof err));
    assert_non_null(strstr(err, "KA_HTTP_ADDR"));
    ka_http_stop(first);
    ka_http_stop(NULL);
    ka_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_are_served_in_the_text_format),
        cmocka_unit_test(probes_answer_200_or_503_with_the_reason),
        cmocka_unit_test(other_paths_and_methods_are_refused),
        cmocka_unit_test(a_port_in_use_is_an_error_naming_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
