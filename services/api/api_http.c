#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "api_http.h"
#include "api_www.h"
#include "ka_hash.h"
#include "ka_log.h"
#include "ka_token.h"

#define CONNECTION_LIMIT 256
#define CONNECTION_TIMEOUT_S 30
#define THREAD_STACK (512 * 1024) /* per connection; the handlers' frames are small */
#define RATE_SLOTS 1024 /* tokens tracked for the rate limit at once */

typedef struct rate_slot {
    char id[16];
    long long second;
    long long count;
} rate_slot_t;

struct api_http {
    const ka_config_t *cfg;
    api_pool_t *pool;
    ka_metrics_t *metrics;
    api_www_t *www; /* the manager's page; NULL when its folder is missing */
    struct MHD_Daemon *d;
    int port;
    const char *cors_origin; /* NULL: CORS off */
    long long rate_per_s;
    atomic_int stopping;
    atomic_int in_flight;
    pthread_mutex_t rate_mu;
    rate_slot_t rate[RATE_SLOTS];
    ka_metric_t *requests, *seconds;
};

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void log_mhd(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void log_mhd(void *cls, const char *fmt, va_list ap)
{
    char msg[256];
    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    ka_log(KA_LOG_WARN, "http server", "{s:s}", "detail", msg);
}

/* Answers ---------------------------------------------------------------- */

static void common_headers(api_http_t *h, struct MHD_Connection *c, struct MHD_Response *resp)
{
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    if (atomic_load(&h->stopping))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (h->cors_origin) {
        const char *origin =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ORIGIN);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
        if (origin && strcmp(origin, h->cors_origin) == 0) {
            MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
            MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                                    "ETag, X-KA-Source, X-KA-Age-Ms, Retry-After");
        }
    }
}

static enum MHD_Result send_text(api_http_t *h, struct MHD_Connection *c, unsigned status,
                                 const char *type, const char *text)
{
    char *body = ka_strdup(text);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    common_headers(h, c, resp);
    enum MHD_Result rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* An If-None-Match list (or "*") naming this ETag. */
static int etag_matches(const char *inm, const char *etag)
{
    if (!inm)
        return 0;
    size_t n = strlen(etag);
    for (const char *p = inm; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (*p == '*')
            return 1;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (strncmp(p, etag, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
            return 1;
        while (*p && *p != ',')
            p++;
    }
    return 0;
}

static enum MHD_Result send_json(api_http_t *h, struct MHD_Connection *c, api_req_t *r)
{
    char *body = json_dumps(r->body, JSON_COMPACT);
    size_t len = strlen(body);
    char hash[KA_HASH_HEX_LEN], etag[KA_HASH_HEX_LEN + 2], age[32];
    ka_hash128_hex(body, len, hash);
    snprintf(etag, sizeof etag, "\"%s\"", hash);
    unsigned status = (unsigned)r->status;
    if (status == 200 &&
        etag_matches(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_IF_NONE_MATCH), etag)) {
        status = MHD_HTTP_NOT_MODIFIED;
        free(body);
        body = ka_strdup("");
        len = 0;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    if (status != MHD_HTTP_NOT_MODIFIED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "application/json; charset=utf-8");
    if (r->status == 200)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    if (r->source && r->status == 200) {
        MHD_add_response_header(resp, "X-KA-Source", r->source);
        snprintf(age, sizeof age, "%lld", r->age_ms < 0 ? 0 : r->age_ms);
        if (r->age_ms >= 0)
            MHD_add_response_header(resp, "X-KA-Age-Ms", age);
    }
    if (r->status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"ka-api\"");
    if (r->status == 429 || r->status == 503)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    common_headers(h, c, resp);
    enum MHD_Result rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* A file of the manager's page. The page loads nothing from elsewhere and
 * runs no inline code, so the policy allows only this origin. */
static enum MHD_Result send_file(api_http_t *h, struct MHD_Connection *c, const api_www_file_t *f)
{
    int same = etag_matches(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                        MHD_HTTP_HEADER_IF_NONE_MATCH), f->etag);
    struct MHD_Response *resp = MHD_create_response_from_buffer(same ? 0 : f->len, f->data,
                                                                MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    if (!same)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, f->type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, f->etag);
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'none'; script-src 'self'; style-src 'self'; "
                            "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                            "form-action 'none'; frame-ancestors 'none'");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    common_headers(h, c, resp);
    enum MHD_Result rc = MHD_queue_response(c, same ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* Authentication and the rate limit --------------------------------------- */

/* Looks the token up and, when the path names a node (scope_node, at most
 * 64 characters), whether that node exists and is in the token's subtree:
 * one round trip for what every node resource asks first. */
static int authenticate(api_req_t *r, struct MHD_Connection *c, const char *scope_node)
{
    const char *auth =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth || !auth[0])
        return api_error(r, 401, "unauthorized",
                         "missing token: send Authorization: Bearer <token>", NULL);
    if (strncasecmp(auth, "Bearer ", 7) != 0)
        return api_error(r, 401, "unauthorized",
                         "malformed token: the Authorization scheme must be Bearer", NULL);
    const char *tok = auth + 7;
    while (*tok == ' ')
        tok++;
    if (!ka_token_well_formed(tok, strlen(tok)))
        return api_error(r, 401, "unauthorized",
                         "malformed token: expected ka_ and 64 hex digits", NULL);
    char hash[KA_TOKEN_HASH_LEN];
    ka_token_hash(tok, strlen(tok), hash);
    if (scope_node && strlen(scope_node) >= sizeof r->scope_node)
        scope_node = NULL; /* api_scope_node answers 400 for it */
    ka_pg_param_t p[2] = {{hash, 0, 0}, {scope_node, 0, 0}};
    json_t *v = api_pg_json(r,
                            "SELECT json_build_object('id', id, 'node', node_id, 'ops', ops, "
                            "'revoked', revoked_at IS NOT NULL, 'expired', expires_at IS NOT NULL "
                            "AND expires_at <= now(), 'retired', NOT coalesce((SELECT n.active "
                            "FROM org_node n WHERE n.id = node_id), false), "
                            "'scope_exists', $2::text IS NOT NULL AND EXISTS (SELECT 1 FROM "
                            "org_node WHERE id = $2), 'scope_under', $2::text IS NOT NULL AND "
                            "EXISTS (SELECT 1 FROM org_closure WHERE ancestor_id = node_id AND "
                            "descendant_id = $2)) FROM api_token WHERE hash = $1",
                            2, p);
    if (!v)
        return 0;
    int ok = 0;
    if (json_is_null(v))
        api_error(r, 401, "unauthorized", "unknown token", NULL);
    else if (json_is_true(json_object_get(v, "revoked")))
        api_error(r, 401, "unauthorized", "token revoked", NULL);
    else if (json_is_true(json_object_get(v, "expired")))
        api_error(r, 401, "unauthorized", "token expired", NULL);
    /* A reorg that retired the node retires its tokens: the subtree they
     * named is no longer anyone's to read. */
    else if (json_is_true(json_object_get(v, "retired")))
        api_error(r, 401, "unauthorized", "token's node deactivated: create a token for the "
                  "node that took over", NULL);
    else {
        snprintf(r->tok_id, sizeof r->tok_id, "%s", json_string_value(json_object_get(v, "id")));
        snprintf(r->tok_node, sizeof r->tok_node, "%s",
                 json_string_value(json_object_get(v, "node")));
        r->tok_ops = json_is_true(json_object_get(v, "ops"));
        if (scope_node) {
            snprintf(r->scope_node, sizeof r->scope_node, "%s", scope_node);
            r->scope_exists = json_is_true(json_object_get(v, "scope_exists"));
            r->scope_under = json_is_true(json_object_get(v, "scope_under"));
        }
        ok = 1;
    }
    json_decref(v);
    return ok;
}

/* A fixed one-second window per token (by id, in a small open table: a
 * token whose slot another took starts a fresh window, which errs on the
 * side of serving). */
static int rate_ok(api_http_t *h, const char *id)
{
    long long now = mono_ms() / 1000;
    size_t slot = 0;
    for (const char *p = id; *p; p++)
        slot = slot * 31 + (unsigned char)*p;
    slot %= RATE_SLOTS;
    pthread_mutex_lock(&h->rate_mu);
    rate_slot_t *s = &h->rate[slot];
    if (strcmp(s->id, id) != 0 || s->second != now) {
        snprintf(s->id, sizeof s->id, "%s", id);
        s->second = now;
        s->count = 0;
    }
    int ok = ++s->count <= h->rate_per_s;
    pthread_mutex_unlock(&h->rate_mu);
    return ok;
}

/* Routing ----------------------------------------------------------------- */

#define MAX_SEGS 6

static int split(const char *url, char segs[MAX_SEGS][128])
{
    int n = 0;
    const char *p = url;
    while (*p == '/')
        p++;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (n == MAX_SEGS || len >= 128)
            return -1;
        memcpy(segs[n], p, len);
        segs[n][len] = '\0';
        n++;
        p += len;
        while (*p == '/')
            p++;
    }
    return n;
}

/* Dispatches /v1/...; returns the route's name (a metrics label). */
static const char *route(api_req_t *r, char segs[MAX_SEGS][128], int n)
{
    if (n == 2 && strcmp(segs[1], "me") == 0)
        return api_me(r), "me";
    if (n >= 3 && strcmp(segs[1], "nodes") == 0) {
        const char *node = segs[2];
        if (!api_scope_node(r, node, "node"))
            return "nodes";
        if (n == 3)
            return api_node(r, node), "node";
        if (n == 4) {
            static const struct {
                const char *name;
                int (*fn)(api_req_t *, const char *);
            } sub[] = {
                {"children", api_node_children}, {"tree", api_node_tree},
                {"funnel", api_node_funnel},     {"forecast", api_node_forecast},
                {"alerts", api_node_alerts},     {"followups", api_node_followups},
                {"coverage", api_node_coverage},
            };
            for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++)
                if (strcmp(segs[3], sub[i].name) == 0)
                    return sub[i].fn(r, node), sub[i].name;
        }
    }
    if (n == 3 && strcmp(segs[1], "accounts") == 0)
        return api_account(r, segs[2]), "account";
    if (n == 3 && strcmp(segs[1], "opportunities") == 0)
        return api_opportunity(r, segs[2]), "opportunity";
    if (n == 4 && strcmp(segs[1], "divisions") == 0 && strcmp(segs[3], "planning") == 0)
        return api_planning(r, segs[2]), "planning";
    if (n == 2 && strcmp(segs[1], "deadletters") == 0)
        return api_deadletters(r), "deadletters";
    api_error(r, 404, "not_found", "no such resource; see docs/api/openapi.yaml", NULL);
    return "unknown";
}

static void count(api_http_t *h, const char *route_name, unsigned status, long long t0_us)
{
    char st[8];
    struct timespec ts;
    snprintf(st, sizeof st, "%u", status);
    const char *labels[] = {route_name, st};
    ka_metrics_inc(ka_metrics_series(h->requests, labels));
    const char *l1[] = {route_name};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long now_us = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    ka_metrics_observe(ka_metrics_series(h->seconds, l1), (double)(now_us - t0_us) / 1e6);
}

static enum MHD_Result serve_v1(api_http_t *h, struct MHD_Connection *c, const char *url)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long t0 = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    api_req_t r = {.cfg = h->cfg, .mhd = c, .pool = h->pool, .status = 200, .age_ms = -1};
    char segs[MAX_SEGS][128];
    int n = split(url, segs);
    const char *name = "unknown";
    if (n < 0)
        api_error(&r, 404, "not_found", "no such resource", NULL);
    else if (authenticate(&r, c, n >= 3 && strcmp(segs[1], "nodes") == 0 ? segs[2] : NULL)) {
        if (!rate_ok(h, r.tok_id))
            api_error(&r, 429, "rate_limited",
                      "too many requests for this token; retry after a second", NULL);
        else
            name = route(&r, segs, n);
    } else {
        name = "auth";
    }
    if (r.conn)
        api_pool_give(h->pool, r.conn);
    if (!r.body)
        api_error(&r, 500, "internal", "no answer", NULL);
    enum MHD_Result rc = send_json(h, c, &r);
    count(h, name, (unsigned)r.status, t0);
    json_decref(r.body);
    return rc;
}

static enum MHD_Result probe_ready(api_http_t *h, struct MHD_Connection *c)
{
    if (atomic_load(&h->stopping))
        return send_text(h, c, 503, "text/plain; charset=utf-8", "stopping\n");
    /* A real round trip, so readiness follows PostgreSQL both ways. */
    api_req_t r = {.cfg = h->cfg, .mhd = c, .pool = h->pool, .status = 200, .age_ms = -1};
    json_t *v = api_pg_json(&r, "SELECT 1", 0, NULL);
    if (r.conn)
        api_pool_give(h->pool, r.conn);
    json_decref(r.body);
    if (!v)
        return send_text(h, c, 503, "text/plain; charset=utf-8", "PostgreSQL unreachable\n");
    json_decref(v);
    return send_text(h, c, 200, "text/plain; charset=utf-8", "ready\n");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    api_http_t *h = cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    if (!*req_cls) {
        /* First call: only the headers are in. Nothing reads a body. */
        *req_cls = h;
        atomic_fetch_add(&h->in_flight, 1);
        return MHD_YES;
    }
    int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (!get && strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0 && h->cors_origin) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        common_headers(h, c, resp);
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, HEAD");
        MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                "Authorization, If-None-Match");
        MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
        enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_NO_CONTENT, resp);
        MHD_destroy_response(resp);
        return rc;
    }
    if (!get) {
        api_req_t r = {.status = 405};
        api_error(&r, 405, "method_not_allowed", "the API is read-only: GET or HEAD", NULL);
        enum MHD_Result rc = send_json(h, c, &r);
        json_decref(r.body);
        return rc;
    }
    if (strcmp(url, "/healthz") == 0)
        return send_text(h, c, 200, "text/plain; charset=utf-8", "ok\n");
    if (strcmp(url, "/readyz") == 0)
        return probe_ready(h, c);
    if (strcmp(url, "/metrics") == 0) {
        ka_buf_t b = KA_BUF_INIT;
        ka_metrics_render(h->metrics, &b);
        enum MHD_Result rc = send_text(h, c, 200, "text/plain; version=0.0.4; charset=utf-8",
                                       ka_buf_str(&b));
        ka_buf_free(&b);
        return rc;
    }
    if (strcmp(url, "/v1") == 0 || strncmp(url, "/v1/", 4) == 0)
        return serve_v1(h, c, url);
    const api_www_file_t *f = api_www_find(h->www, url);
    if (f)
        return send_file(h, c, f);
    api_req_t r = {.status = 404};
    api_error(&r, 404, "not_found", "no such resource: the API is under /v1, the page at /", NULL);
    enum MHD_Result rc = send_json(h, c, &r);
    json_decref(r.body);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    api_http_t *h = cls;
    (void)c;
    (void)toe;
    if (*req_cls) {
        atomic_fetch_sub(&h->in_flight, 1);
        *req_cls = NULL;
    }
}

api_http_t *api_http_start(const ka_config_t *cfg, api_pool_t *pool, ka_metrics_t *m,
                           char *errstr, size_t errlen)
{
    const char *addr = ka_config_str(cfg, "KA_HTTP_ADDR");
    int port = (int)ka_config_int(cfg, "KA_API_PORT");
    struct addrinfo hints, *res = NULL;
    char portstr[16];
    api_http_t *h = ka_calloc(1, sizeof *h);
    h->cfg = cfg;
    h->pool = pool;
    h->metrics = m;
    h->rate_per_s = ka_config_int(cfg, "KA_API_RATE_PER_S");
    const char *cors = ka_config_str(cfg, "KA_API_CORS_ORIGIN");
    h->cors_origin = cors && cors[0] ? cors : NULL;
    pthread_mutex_init(&h->rate_mu, NULL);
    char werr[KA_ERRSTR_SIZE];
    h->www = api_www_load(ka_config_str(cfg, "KA_API_WWW"), werr, sizeof werr);
    if (!h->www) /* the API serves on without its page */
        ka_log(KA_LOG_WARN, "no manager's page at /", "{s:s}", "error", werr);
    h->requests = ka_metrics_counter(m, "ka_api_requests_total", "API requests answered",
                                     "route,status");
    h->seconds = ka_metrics_histogram(m, "ka_api_request_seconds", "API request latency",
                                      "route", KA_METRICS_RTT_BUCKETS, KA_METRICS_RTT_NBUCKETS);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST;
    snprintf(portstr, sizeof portstr, "%d", port);
    if (getaddrinfo(addr, portstr, &hints, &res) != 0 || !res) {
        snprintf(errstr, errlen, "KA_HTTP_ADDR \"%s\": not a numeric IPv4 or IPv6 address", addr);
        goto fail;
    }
    /* A thread per connection: a request waits for its own connection only.
     * With an internal pool of epoll threads a connection belongs to one
     * thread, which answers its connections one after another while it waits
     * on PostgreSQL, and the listener hands most new connections to the same
     * thread: 16 keep-alive clients queued behind each other (docs/
     * performance.md, HTTP API). KA_API_THREADS bounds the requests at work
     * at once (the PostgreSQL and Redis connections of api_pool). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (res->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, log_mhd, h,
        MHD_OPTION_SOCK_ADDR, res->ai_addr, MHD_OPTION_THREAD_STACK_SIZE,
        (size_t)THREAD_STACK, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
    freeaddrinfo(res);
    if (!h->d) {
        snprintf(errstr, errlen, "could not listen on %s:%d", addr, port);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info && info->port ? info->port : port;
    return h;
fail:
    pthread_mutex_destroy(&h->rate_mu);
    api_www_free(h->www);
    free(h);
    return NULL;
}

int api_http_port(const api_http_t *h)
{
    return h->port;
}

void api_http_drain_and_stop(api_http_t *h, int drain_ms)
{
    if (!h)
        return;
    atomic_store(&h->stopping, 1);
    /* No new connections; the ones open finish what they asked and are
     * told to close. */
    MHD_socket fd = MHD_quiesce_daemon(h->d);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    long long until = mono_ms() + drain_ms;
    while (mono_ms() < until) {
        /* Idle keep-alive connections hold no request: they may go. */
        if (atomic_load(&h->in_flight) == 0)
            break;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    int left = atomic_load(&h->in_flight);
    if (left)
        ka_log(KA_LOG_WARN, "drain timed out: requests cut off", "{s:i}", "in_flight", left);
    MHD_stop_daemon(h->d);
    pthread_mutex_destroy(&h->rate_mu);
    api_www_free(h->www);
    free(h);
}
