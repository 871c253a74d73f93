#include <assert.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka_err.h"
#include "ka_metrics.h"

typedef enum metric_type { TYPE_COUNTER, TYPE_GAUGE, TYPE_HISTOGRAM } metric_type_t;

static const char *type_names[] = {"counter", "gauge", "histogram"};

struct ka_series {
    ka_metric_t *family;
    char *values[KA_METRICS_MAX_LABELS];
    ka_series_t *next;
    _Atomic uint64_t value; /* counter, gauge: the bits of a double */
    _Atomic uint64_t sum;   /* histogram: the bits of a double */
    _Atomic uint64_t buckets[]; /* histogram: nbounds + 1 counts, not cumulative, +Inf last */
};

struct ka_metric {
    ka_metrics_t *reg;
    metric_type_t type;
    char *name, *help;
    char *labels[KA_METRICS_MAX_LABELS];
    size_t nlabels;
    double *bounds;
    size_t nbounds;
    ka_series_t *head, *tail;
    size_t nseries;
    ka_metric_t *next;
};

struct ka_metrics {
    pthread_mutex_t lock;
    ka_metric_t *head, *tail;
};

const double KA_METRICS_RTT_BUCKETS[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                         0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5, 5};
const size_t KA_METRICS_RTT_NBUCKETS = sizeof KA_METRICS_RTT_BUCKETS / sizeof(double);
const double KA_METRICS_LATENCY_BUCKETS[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                             0.25,  0.5,    1,     2.5,  5,     10,   30,
                                             60,    300,    900,   3600};
const size_t KA_METRICS_LATENCY_NBUCKETS = sizeof KA_METRICS_LATENCY_BUCKETS / sizeof(double);

/* Doubles live in 64-bit atomics as their bit patterns. */
static uint64_t to_bits(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

static double from_bits(uint64_t u)
{
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static void atomic_add_double(_Atomic uint64_t *a, double v)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, to_bits(from_bits(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* Registry ------------------------------------------------------------------ */

ka_metrics_t *ka_metrics_new(void)
{
    ka_metrics_t *m = ka_calloc(1, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

static void free_series(ka_series_t *s)
{
    for (size_t i = 0; i < KA_METRICS_MAX_LABELS; i++)
        free(s->values[i]);
    free(s);
}

static void free_labels(ka_metric_t *f)
{
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    f->nlabels = 0;
}

static void free_family(ka_metric_t *f)
{
    ka_series_t *s = f->head;
    while (s) {
        ka_series_t *next = s->next;
        free_series(s);
        s = next;
    }
    free_labels(f);
    free(f->bounds);
    free(f->name);
    free(f->help);
    free(f);
}

void ka_metrics_free(ka_metrics_t *m)
{
    if (!m)
        return;
    ka_metric_t *f = m->head;
    while (f) {
        ka_metric_t *next = f->next;
        free_family(f);
        f = next;
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static ka_metrics_t *global;
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void free_global(void)
{
    ka_metrics_t *m = global;
    global = NULL;
    ka_metrics_free(m);
}

static void make_global(void)
{
    global = ka_metrics_new();
    atexit(free_global);
}

ka_metrics_t *ka_metrics_global(void)
{
    pthread_once(&global_once, make_global);
    return global;
}

/* Families ------------------------------------------------------------------ */

static int valid_name(const char *s, int colon)
{
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || (colon && c == ':')))
            return 0;
    }
    return 1;
}

/* Splits "a,b" into f->labels. Returns 0 for a bad list (too many labels, a
 * bad name, a reserved one); f->labels then holds what was parsed. */
static int parse_labels(ka_metric_t *f, const char *labels)
{
    const char *p = labels;
    while (p && *p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (f->nlabels == KA_METRICS_MAX_LABELS)
            return 0;
        char *name = f->labels[f->nlabels++] = ka_strndup(p, len);
        if (!valid_name(name, 0) || strncmp(name, "__", 2) == 0 ||
            (f->type == TYPE_HISTOGRAM && strcmp(name, "le") == 0))
            return 0;
        p += len + (comma ? 1 : 0);
    }
    return 1;
}

static int same_labels(const ka_metric_t *f, const char *labels)
{
    ka_metric_t probe = {.type = f->type};
    int same = parse_labels(&probe, labels) && probe.nlabels == f->nlabels;
    for (size_t i = 0; same && i < probe.nlabels; i++)
        same = strcmp(probe.labels[i], f->labels[i]) == 0;
    free_labels(&probe);
    return same;
}

static ka_metric_t *add_family(ka_metrics_t *m, metric_type_t type, const char *name,
                               const char *help, const char *labels, const double *bounds,
                               size_t nbounds)
{
    if (!m || !valid_name(name, 1)) {
        assert(!"bad metric name");
        return NULL;
    }
    pthread_mutex_lock(&m->lock);
    for (ka_metric_t *f = m->head; f; f = f->next) {
        if (strcmp(f->name, name) == 0) {
            int same = f->type == type && same_labels(f, labels);
            assert(same && "a metric registered twice differently");
            pthread_mutex_unlock(&m->lock);
            return same ? f : NULL;
        }
    }
    ka_metric_t *f = ka_calloc(1, sizeof *f);
    f->reg = m;
    f->type = type;
    int ok = parse_labels(f, labels);
    for (size_t i = 0; ok && type == TYPE_HISTOGRAM && i < nbounds; i++)
        ok = i == 0 || bounds[i] > bounds[i - 1];
    if (!ok) {
        pthread_mutex_unlock(&m->lock);
        assert(!"bad label names or bucket bounds");
        free_labels(f);
        free(f);
        return NULL;
    }
    f->name = ka_strdup(name);
    f->help = ka_strdup(help ? help : "");
    if (type == TYPE_HISTOGRAM) {
        f->bounds = ka_calloc(nbounds + 1, sizeof *f->bounds);
        memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
        f->nbounds = nbounds;
    }
    if (m->tail)
        m->tail->next = f;
    else
        m->head = f;
    m->tail = f;
    pthread_mutex_unlock(&m->lock);
    return f;
}

ka_metric_t *ka_metrics_counter(ka_metrics_t *m, const char *name, const char *help,
                                const char *labels)
{
    return add_family(m, TYPE_COUNTER, name, help, labels, NULL, 0);
}

ka_metric_t *ka_metrics_gauge(ka_metrics_t *m, const char *name, const char *help,
                              const char *labels)
{
    return add_family(m, TYPE_GAUGE, name, help, labels, NULL, 0);
}

ka_metric_t *ka_metrics_histogram(ka_metrics_t *m, const char *name, const char *help,
                                  const char *labels, const double *bounds, size_t nbounds)
{
    return add_family(m, TYPE_HISTOGRAM, name, help, labels, bounds, nbounds);
}

/* Series -------------------------------------------------------------------- */

static int series_matches(const ka_metric_t *f, const ka_series_t *s, const char *const *values)
{
    for (size_t i = 0; i < f->nlabels; i++)
        if (strcmp(s->values[i], values[i] ? values[i] : "") != 0)
            return 0;
    return 1;
}

ka_series_t *ka_metrics_series(ka_metric_t *f, const char *const *values)
{
    if (!f)
        return NULL;
    assert(f->nlabels == 0 || values);
    pthread_mutex_lock(&f->reg->lock);
    ka_series_t *s;
    for (s = f->head; s; s = s->next)
        if (series_matches(f, s, values))
            break;
    if (!s && f->nseries < KA_METRICS_MAX_SERIES) {
        size_t nb = f->type == TYPE_HISTOGRAM ? f->nbounds + 1 : 0;
        s = ka_calloc(1, sizeof *s + nb * sizeof s->buckets[0]);
        s->family = f;
        for (size_t i = 0; i < f->nlabels; i++)
            s->values[i] = ka_strdup(values[i] ? values[i] : "");
        atomic_init(&s->value, to_bits(0.0));
        atomic_init(&s->sum, to_bits(0.0));
        for (size_t i = 0; i < nb; i++)
            atomic_init(&s->buckets[i], 0);
        if (f->tail)
            f->tail->next = s;
        else
            f->head = s;
        f->tail = s;
        f->nseries++;
    }
    pthread_mutex_unlock(&f->reg->lock);
    return s;
}

void ka_metrics_series_each(ka_metric_t *f, const char *const *values, size_t n,
                            ka_series_t **out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = ka_metrics_series(f, &values[i]);
}

void ka_metrics_remove(ka_metric_t *f, const char *const *values)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->reg->lock);
    ka_series_t *prev = NULL;
    for (ka_series_t *s = f->head; s; prev = s, s = s->next) {
        if (!series_matches(f, s, values))
            continue;
        if (prev)
            prev->next = s->next;
        else
            f->head = s->next;
        if (f->tail == s)
            f->tail = prev;
        f->nseries--;
        free_series(s);
        break;
    }
    pthread_mutex_unlock(&f->reg->lock);
}

void ka_metrics_inc(ka_series_t *s)
{
    ka_metrics_add(s, 1.0);
}

void ka_metrics_add(ka_series_t *s, double v)
{
    if (!s || s->family->type == TYPE_HISTOGRAM || v != v)
        return;
    if (s->family->type == TYPE_COUNTER && v < 0)
        return; /* a counter only goes up */
    atomic_add_double(&s->value, v);
}

void ka_metrics_set(ka_series_t *s, double v)
{
    if (!s || s->family->type != TYPE_GAUGE)
        return;
    atomic_store_explicit(&s->value, to_bits(v), memory_order_relaxed);
}

void ka_metrics_observe(ka_series_t *s, double v)
{
    if (!s || s->family->type != TYPE_HISTOGRAM || v != v)
        return;
    const ka_metric_t *f = s->family;
    size_t i = 0;
    while (i < f->nbounds && v > f->bounds[i])
        i++;
    atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    atomic_add_double(&s->sum, v);
}

static uint64_t histogram_count(const ka_series_t *s)
{
    uint64_t n = 0;
    for (size_t i = 0; i <= s->family->nbounds; i++)
        n += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
    return n;
}

double ka_metrics_value(const ka_series_t *s)
{
    if (!s)
        return 0;
    if (s->family->type == TYPE_HISTOGRAM)
        return (double)histogram_count(s);
    return from_bits(atomic_load_explicit(&s->value, memory_order_relaxed));
}

/* Rendering ----------------------------------------------------------------- */

/* Prometheus' float syntax: +Inf, -Inf, NaN, else the shortest text that
 * reads back as the same double. */
static void put_double(ka_buf_t *b, double v)
{
    char tmp[40];
    if (v != v) {
        ka_buf_puts(b, "NaN");
    } else if (v > DBL_MAX || v < -DBL_MAX) {
        ka_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    } else if (v > -1e15 && v < 1e15 && v == (double)(long long)v) {
        ka_buf_printf(b, "%lld", (long long)v);
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(tmp, sizeof tmp, "%.*g", prec, v);
            if (strtod(tmp, NULL) == v)
                break;
        }
        ka_buf_puts(b, tmp);
    }
}

/* Label values escape \, " and newline; help texts \ and newline. */
static void put_escaped(ka_buf_t *b, const char *s, int label_value)
{
    for (; *s; s++) {
        if (*s == '\\')
            ka_buf_puts(b, "\\\\");
        else if (*s == '\n')
            ka_buf_puts(b, "\\n");
        else if (*s == '"' && label_value)
            ka_buf_puts(b, "\\\"");
        else
            ka_buf_append(b, s, 1);
    }
}

/* {a="x",b="y"} plus an optional le="..." for histogram buckets; nothing
 * when there is no label at all. */
static void put_labels(ka_buf_t *b, const ka_metric_t *f, const ka_series_t *s, int with_le,
                       double le)
{
    if (f->nlabels == 0 && !with_le)
        return;
    ka_buf_puts(b, "{");
    for (size_t i = 0; i < f->nlabels; i++) {
        ka_buf_printf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
        put_escaped(b, s->values[i], 1);
        ka_buf_puts(b, "\"");
    }
    if (with_le) {
        ka_buf_printf(b, "%sle=\"", f->nlabels ? "," : "");
        put_double(b, le);
        ka_buf_puts(b, "\"");
    }
    ka_buf_puts(b, "}");
}

static void render_series(ka_buf_t *b, const ka_metric_t *f, const ka_series_t *s)
{
    if (f->type != TYPE_HISTOGRAM) {
        ka_buf_puts(b, f->name);
        put_labels(b, f, s, 0, 0);
        ka_buf_puts(b, " ");
        put_double(b, from_bits(atomic_load_explicit(&s->value, memory_order_relaxed)));
        ka_buf_puts(b, "\n");
        return;
    }
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= f->nbounds; i++) {
        cumulative += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        ka_buf_printf(b, "%s_bucket", f->name);
        put_labels(b, f, s, 1, i < f->nbounds ? f->bounds[i] : (double)INFINITY);
        ka_buf_printf(b, " %llu\n", (unsigned long long)cumulative);
    }
    ka_buf_printf(b, "%s_sum", f->name);
    put_labels(b, f, s, 0, 0);
    ka_buf_puts(b, " ");
    put_double(b, from_bits(atomic_load_explicit(&s->sum, memory_order_relaxed)));
    ka_buf_printf(b, "\n%s_count", f->name);
    put_labels(b, f, s, 0, 0);
    /* The count is the +Inf bucket, so the two always agree. */
    ka_buf_printf(b, " %llu\n", (unsigned long long)cumulative);
}

void ka_metrics_render(ka_metrics_t *m, ka_buf_t *out)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    for (const ka_metric_t *f = m->head; f; f = f->next) {
        if (!f->head)
            continue;
        ka_buf_printf(out, "# HELP %s ", f->name);
        put_escaped(out, f->help, 0);
        ka_buf_printf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
        for (const ka_series_t *s = f->head; s; s = s->next)
            render_series(out, f, s);
    }
    pthread_mutex_unlock(&m->lock);
}

/* Staged increments ------------------------------------------------------------ */

static _Thread_local ka_series_t **staged;
static _Thread_local size_t nstaged, capstaged;

void ka_metrics_stage_inc(ka_series_t *s)
{
    if (!s)
        return;
    if (nstaged == capstaged) {
        capstaged = capstaged ? capstaged * 2 : 8;
        staged = ka_realloc(staged, capstaged * sizeof *staged);
    }
    staged[nstaged++] = s;
}

void ka_metrics_stage_commit(void)
{
    for (size_t i = 0; i < nstaged; i++)
        ka_metrics_inc(staged[i]);
    ka_metrics_stage_discard();
}

void ka_metrics_stage_discard(void)
{
    free(staged);
    staged = NULL;
    nstaged = capstaged = 0;
}
