#ifndef FORECAST_PUBLISH_H
#define FORECAST_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "ka_worker.h"

/* Publishing the forecast and the planning feed through the outbox. A row
 * whose figures changed since its last event is published once its first
 * unpublished change is KA_FORECAST_DEBOUNCE_MS old, so a burst of changes
 * to one node gives one event per window. Event ids derive from the row and
 * its revision ("forecast:<node>/<period>@<revision>"), so a replay after a
 * crash writes the same outbox row. Every KA_FORECAST_FULL_INTERVAL_MS the
 * current periods' rows are all published again (ids carry the round). */

ka_err_t forecast_publish_prepare(ka_pg_t *pg, char *errstr, size_t errlen);

/* Publishes the rows that are due; *published receives how many. With full
 * != 0, every row of a period not ended yet, tagged with round `full`. */
ka_err_t forecast_publish_run(ka_worker_t *w, int64_t debounce_ms, long long full,
                              int *published, char *errstr, size_t errlen);

/* The Kafka key and period label of a node-period: "<node>/2026-03" for a
 * month, "<node>/2026-Q1" for a quarter. */
void forecast_period_label(const char *kind, const char *start, char *out, size_t len);

#endif
