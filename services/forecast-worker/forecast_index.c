/* The recompute's string index (see forecast_index.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ka_err.h"
#include "forecast_index.h"

static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)h;
}

static size_t slot(const forecast_index_t *x, const char *key)
{
    size_t i = hash(key) & (x->cap - 1);
    while (x->keys[i] && strcmp(x->keys[i], key) != 0)
        i = (i + 1) & (x->cap - 1);
    return i;
}

int forecast_index_get(const forecast_index_t *x, const char *key)
{
    if (!x->cap)
        return -1;
    size_t i = slot(x, key);
    return x->keys[i] ? x->vals[i] : -1;
}

void forecast_index_put(forecast_index_t *x, const char *key, int val)
{
    if (2 * (x->n + 1) > x->cap) { /* at most half full */
        forecast_index_t bigger = {NULL, NULL, x->cap ? 2 * x->cap : 64, 0};
        bigger.keys = ka_calloc(bigger.cap, sizeof *bigger.keys);
        bigger.vals = ka_calloc(bigger.cap, sizeof *bigger.vals);
        for (size_t i = 0; i < x->cap; i++)
            if (x->keys[i]) {
                size_t j = slot(&bigger, x->keys[i]);
                bigger.keys[j] = x->keys[i];
                bigger.vals[j] = x->vals[i];
                bigger.n++;
            }
        free(x->keys);
        free(x->vals);
        *x = bigger;
    }
    size_t i = slot(x, key);
    if (!x->keys[i]) {
        x->keys[i] = ka_strdup(key);
        x->n++;
    }
    x->vals[i] = val;
}

void forecast_index_free(forecast_index_t *x)
{
    for (size_t i = 0; i < x->cap; i++)
        free(x->keys[i]);
    free(x->keys);
    free(x->vals);
    memset(x, 0, sizeof *x);
}
