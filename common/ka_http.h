#ifndef KA_HTTP_H
#define KA_HTTP_H

#include <stddef.h>

#include "ka_err.h"
#include "ka_metrics.h"

/* The operations endpoint of a worker: GET (or HEAD)
 *   /metrics  the registry in the Prometheus text format 0.0.4
 *   /healthz  200 "ok" while alive, 503 with a reason otherwise
 *   /readyz   200 "ready" when ready, 503 with a reason otherwise
 * served by libmicrohttpd on its own thread. Only ka_http.c includes
 * microhttpd.h. */

typedef struct ka_http ka_http_t;

/* Decides a probe on the HTTP thread: returns non-zero for 200, or 0 after
 * writing a short plain-text reason (no secrets) into `reason` for 503. Must
 * be thread-safe and must not block. */
typedef int (*ka_http_probe_fn)(void *ud, char *reason, size_t len);

typedef struct ka_http_handlers {
    void *ud;
    ka_metrics_t *metrics;    /* rendered by /metrics */
    ka_http_probe_fn healthz; /* NULL: always 200 */
    ka_http_probe_fn readyz;  /* NULL: always 200 */
} ka_http_handlers_t;

/* Listens on addr:port (a numeric IPv4 or IPv6 address: no DNS) and
 * serves until ka_http_stop(). `h` is copied; its ud and metrics must outlive
 * the server. Returns NULL and fills errstr when it cannot listen. */
ka_http_t *ka_http_start(const char *addr, int port, const ka_http_handlers_t *h, char *errstr,
                         size_t errlen);

/* The port actually bound. */
int ka_http_port(const ka_http_t *http);

/* Stops serving (waits for the HTTP thread) and frees the server. No
 * operation is performed if http is NULL. */
void ka_http_stop(ka_http_t *http);

#endif
