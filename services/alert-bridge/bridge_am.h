#ifndef BRIDGE_AM_H
#define BRIDGE_AM_H

#include <stddef.h>
#include <stdint.h>

#include "ka_err.h"
#include "ka_metrics.h"

/* The Alertmanagers the bridge posts to (POST <url>/api/v2/alerts), each on
 * its own: like Prometheus, every member of a cluster gets every alert, and
 * their gossip of silences and notifications keeps one notification per
 * group. A target that fails (no connection, a time-out, a 5xx) backs off
 * exponentially up to a cap and is marked to receive the whole firing set
 * once it answers again, since an Alertmanager that restarted has lost its
 * alerts. Only bridge_am.c includes libcurl. Not thread-safe. */
typedef struct bridge_am bridge_am_t;

/* urls: comma-separated base URLs. Returns NULL and fills errstr when one is
 * not an http(s) URL. Metrics go to m. */
bridge_am_t *bridge_am_new(const char *urls, int timeout_ms, int retry_max_ms, ka_metrics_t *m,
                           char *errstr, size_t errlen);

/* No operation is performed if am is NULL. */
void bridge_am_free(bridge_am_t *am);

/* Starts posting a JSON array of n alerts to every target whose back-off is
 * over; body must stay valid until the post is over. `full` says the body is
 * the whole firing set: it clears the mark of the targets that accept it.
 * Returns how many targets it went to (0: none, and the post is over with
 * none accepting). One post at a time: start the next once bridge_am_step
 * said this one is over. */
int bridge_am_start(bridge_am_t *am, const char *body, size_t len, size_t n, int full,
                    int64_t now_ms);

/* Drives the post in flight, waiting up to wait_ms for it to progress (0:
 * not at all). Returns -1 while it runs; once it is over, how many targets
 * accepted the body (a 4xx answer counts as accepted and is logged: sending
 * it again would not help). Every post ends within the targets' time-out. */
int bridge_am_step(bridge_am_t *am, int wait_ms);

/* Non-zero when some target awaits the whole firing set and its back-off is
 * over. */
int bridge_am_wants_full(const bridge_am_t *am, int64_t now_ms);

/* The earliest time (ms) a target in back-off may be tried again; 0 when
 * none is backing off. */
int64_t bridge_am_next_retry(const bridge_am_t *am);

/* How many targets answered their last post (all count until tried). */
int bridge_am_reachable(const bridge_am_t *am);

size_t bridge_am_count(const bridge_am_t *am);

#endif
