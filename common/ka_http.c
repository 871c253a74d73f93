#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ka_http.h"
#include "ka_log.h"

#define CONNECTION_LIMIT 16 /* scrapers and probes, not the public */
#define CONNECTION_TIMEOUT_S 10
#define REASON_SIZE 256

struct ka_http {
    struct MHD_Daemon *d;
    ka_http_handlers_t h;
    int port;
    char start_err[256]; /* what libmicrohttpd said while starting */
    atomic_int starting;
};

/* libmicrohttpd's diagnostics go into our JSON lines. While the daemon
 * starts, the message is kept for the caller's error text instead. */
static void log_mhd(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void log_mhd(void *cls, const char *fmt, va_list ap)
{
    ka_http_t *http = cls;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    if (http->starting)
        snprintf(http->start_err, sizeof http->start_err, "%s", msg);
    else
        ka_log(KA_LOG_WARN, "http server", "{s:s}", "detail", msg);
}

/* Queues `body` (malloc'd; libmicrohttpd frees it) with `status`. */
static enum MHD_Result respond(struct MHD_Connection *conn, unsigned int status, const char *type,
                               char *body, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned int status,
                                    const char *text)
{
    char *body = ka_strdup(text);
    return respond(conn, status, "text/plain; charset=utf-8", body, strlen(body));
}

static enum MHD_Result respond_probe(struct MHD_Connection *conn, ka_http_probe_fn probe,
                                     void *ud, const char *ok)
{
    char reason[REASON_SIZE] = "";
    char text[REASON_SIZE + 2];
    if (!probe || probe(ud, reason, sizeof reason))
        return respond_text(conn, MHD_HTTP_OK, ok);
    snprintf(text, sizeof text, "%s\n", reason[0] ? reason : "unavailable");
    return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, text);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    ka_http_t *http = cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    /* Every answer is queued on the first call: no endpoint reads a body. */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (strcmp(url, "/metrics") == 0) {
        ka_buf_t b = KA_BUF_INIT;
        ka_metrics_render(http->h.metrics, &b);
        size_t len = b.len;
        char *body = b.data ? b.data : ka_strdup(""); /* the buffer's memory moves */
        return respond(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len);
    }
    if (strcmp(url, "/healthz") == 0)
        return respond_probe(conn, http->h.healthz, http->h.ud, "ok\n");
    if (strcmp(url, "/readyz") == 0)
        return respond_probe(conn, http->h.readyz, http->h.ud, "ready\n");
    return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz, /readyz\n");
}

ka_http_t *ka_http_start(const char *addr, int port, const ka_http_handlers_t *h, char *errstr,
                         size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char portstr[16];
    ka_http_t *http = ka_calloc(1, sizeof *http);

    http->h = *h;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST; /* no DNS at start */
    snprintf(portstr, sizeof portstr, "%d", port);
    int gai = getaddrinfo(addr, portstr, &hints, &res);
    if (gai != 0 || !res) {
        snprintf(errstr, errlen, "KA_HTTP_ADDR \"%s\": not a numeric IPv4 or IPv6 address (%s)",
                 addr, gai ? gai_strerror(gai) : "no address");
        goto fail;
    }
    unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (res->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    http->starting = 1;
    http->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, http,
                               MHD_OPTION_EXTERNAL_LOGGER, log_mhd, http,
                               MHD_OPTION_SOCK_ADDR, res->ai_addr,
                               MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTION_LIMIT,
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT_S,
                               MHD_OPTION_END);
    http->starting = 0;
    freeaddrinfo(res);
    if (!http->d) {
        snprintf(errstr, errlen, "could not listen on %s:%d: %s", addr, port,
                 http->start_err[0] ? http->start_err : "libmicrohttpd refused to start");
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(http->d, MHD_DAEMON_INFO_BIND_PORT);
    http->port = info && info->port ? info->port : port;
    return http;
fail:
    free(http);
    return NULL;
}

int ka_http_port(const ka_http_t *http)
{
    return http->port;
}

void ka_http_stop(ka_http_t *http)
{
    if (!http)
        return;
    MHD_stop_daemon(http->d);
    free(http);
}
