#ifndef API_HTTP_H
#define API_HTTP_H

#include "api_pool.h"
#include "ka_metrics.h"

/* The API's HTTP server (libmicrohttpd, a pool of threads): routing, bearer
 * authentication, ETag / If-None-Match, the error shape, the per-token rate
 * limit, CORS (off unless KA_API_CORS_ORIGIN names an origin), the probes
 * and /metrics. Only api_http.c and api_req.c include microhttpd.h. */
typedef struct api_http api_http_t;

api_http_t *api_http_start(const ka_config_t *cfg, api_pool_t *pool, ka_metrics_t *m,
                           char *errstr, size_t errlen);
int api_http_port(const api_http_t *h);

/* Graceful drain: stop accepting (readyz says "stopping"), let the
 * requests in flight finish for up to drain_ms, then stop. Frees h. */
void api_http_drain_and_stop(api_http_t *h, int drain_ms);

#endif
