#ifndef KA_METRICS_H
#define KA_METRICS_H

#include <stddef.h>

#include "ka_buf.h"

/* A small metrics registry, rendered in the Prometheus text exposition format
 * 0.0.4 by the /metrics endpoint (ka_http). A family (ka_metric_t) is a
 * counter, a gauge or a histogram with fixed buckets, with up to
 * KA_METRICS_MAX_LABELS label names; each combination of label values is one
 * series (ka_series_t), created at zero on first use.
 *
 * Threads: registering families, looking series up, removing them and
 * rendering take the registry's mutex. Updating a series (inc, add, set,
 * observe) takes no lock: a few relaxed atomic operations on a handle the
 * caller keeps, so the worker loop never waits for a scrape. A handle lives
 * as long as its registry, unless ka_metrics_remove() drops its series; the
 * code that removes a series must be the only one holding its handle.
 *
 * Every update function is a no-op on a NULL series, and every lookup returns
 * NULL for a NULL family, so a metric that could not be created (a family
 * full of series) costs nothing and breaks nothing. */

#define KA_METRICS_MAX_LABELS 4

/* A family never holds more series than this: a label with unbounded values
 * is a bug, and must not eat the process's memory. Lookups past it return
 * NULL. */
#define KA_METRICS_MAX_SERIES 1000

typedef struct ka_metrics ka_metrics_t;
typedef struct ka_metric ka_metric_t;
typedef struct ka_series ka_series_t;

/* An empty registry. Free it with ka_metrics_free(). */
ka_metrics_t *ka_metrics_new(void);

/* Frees the registry, its families and series (every handle dies). No
 * operation is performed if m is NULL. */
void ka_metrics_free(ka_metrics_t *m);

/* The process's registry: the library's modules (worker loop, PostgreSQL,
 * Redis, outbox, alerts) record into it and the worker's /metrics renders it.
 * Created on first use, freed at exit; never NULL. */
ka_metrics_t *ka_metrics_global(void);

/* Registers a family, or returns the one already registered under `name`
 * (which must then have the same type and label names: a programming error
 * otherwise). `labels` names the labels, comma-separated ("topic,partition"),
 * or is NULL for none. Names follow Prometheus' rules (checked with assert);
 * every string is copied. Families render in registration order. */
ka_metric_t *ka_metrics_counter(ka_metrics_t *m, const char *name, const char *help,
                                const char *labels);
ka_metric_t *ka_metrics_gauge(ka_metrics_t *m, const char *name, const char *help,
                              const char *labels);
/* `bounds`: the nbounds upper bounds of the buckets, strictly increasing; the
 * +Inf bucket is implied. Copied. */
ka_metric_t *ka_metrics_histogram(ka_metrics_t *m, const char *name, const char *help,
                                  const char *labels, const double *bounds, size_t nbounds);

/* The series of `f` with these label values: as many as f has label names,
 * in their order (NULL when f has none). Created at zero on first use; the
 * values are copied. Returns NULL when f is NULL or already holds
 * KA_METRICS_MAX_SERIES series. Takes the registry's mutex: keep the handle
 * rather than looking it up on a hot path. */
ka_series_t *ka_metrics_series(ka_metric_t *f, const char *const *values);

/* For a metric of one label: out[i] = the series of label value values[i],
 * for each of the n values (e.g. one per step of a loop). */
void ka_metrics_series_each(ka_metric_t *f, const char *const *values, size_t n,
                            ka_series_t **out);

/* Drops a series (e.g. the lag of a partition no longer assigned); its handle
 * dies. Nothing happens when it does not exist. */
void ka_metrics_remove(ka_metric_t *f, const char *const *values);

/* Counters and gauges: += 1, += v. A counter only goes up (v >= 0). */
void ka_metrics_inc(ka_series_t *s);
void ka_metrics_add(ka_series_t *s, double v);
/* Gauges: = v. */
void ka_metrics_set(ka_series_t *s, double v);
/* Histograms: counts v in its bucket and adds it to the sum. */
void ka_metrics_observe(ka_series_t *s, double v);

/* The current value of a counter or gauge, or a histogram's count; 0 for
 * NULL. For tests and the code that owns the series. */
double ka_metrics_value(const ka_series_t *s);

/* Appends the whole registry to `out` in the text exposition format 0.0.4:
 * per family with at least one series, its # HELP and # TYPE lines, then its
 * series in creation order (histograms as cumulative _bucket lines with an
 * le label, then _sum and _count). */
void ka_metrics_render(ka_metrics_t *m, ka_buf_t *out);

/* Staged increments, for effects that count only when a transaction commits
 * (an alert transition queued in a batch that may roll back):
 * ka_metrics_stage_inc() remembers the increment on the calling thread,
 * ka_metrics_stage_commit() applies every remembered one, and
 * ka_metrics_stage_discard() forgets them. The series must not be removed in
 * between. */
void ka_metrics_stage_inc(ka_series_t *s);
void ka_metrics_stage_commit(void);
void ka_metrics_stage_discard(void);

/* Bucket bounds in seconds shared by the library's histograms. */
extern const double KA_METRICS_RTT_BUCKETS[];     /* 100 us .. 5 s: server round trips */
extern const size_t KA_METRICS_RTT_NBUCKETS;
extern const double KA_METRICS_LATENCY_BUCKETS[]; /* 1 ms .. 1 h: event latencies */
extern const size_t KA_METRICS_LATENCY_NBUCKETS;

#endif
