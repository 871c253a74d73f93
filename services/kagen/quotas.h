/* The reps' quotas, from the order plan (--stream quotas). */
#ifndef KAGEN_QUOTAS_H
#define KAGEN_QUOTAS_H

#include "orders.h"

/* The run rate is the revenue of this many days before phase 2. */
#define QUOTA_WINDOW_DAYS 90

/* run_rate[rep] = the rep's revenue a month (30 days) in the window: booked in
 * the QUOTA_WINDOW_DAYS before split and not cancelled or returned by then. */
void quota_run_rates(const ogen_t *og, int64_t split, int64_t *run_rate);

/* Writes the quota CSV of every node with reps to out. Returns 0, or -1 with
 * the reason in err. */
int write_quotas(const ogen_t *og, ka_pg_t *pg, uint64_t seed, int64_t split, FILE *out,
                 char *err, size_t errlen);

#endif
