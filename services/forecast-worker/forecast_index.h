#ifndef FORECAST_INDEX_H
#define FORECAST_INDEX_H

#include <stddef.h>

/* A string -> int index (open addressing), so that a recompute round of
 * thousands of marks finds its deals, keys and nodes in constant time: the
 * linear searches of 500-mark rounds were quadratic at larger rounds. */
typedef struct forecast_index {
    char **keys;
    int *vals;
    size_t cap, n;
} forecast_index_t;

/* -1 when absent. */
int forecast_index_get(const forecast_index_t *x, const char *key);
/* Sets (or replaces) key's value. */
void forecast_index_put(forecast_index_t *x, const char *key, int val);
void forecast_index_free(forecast_index_t *x);

#endif
