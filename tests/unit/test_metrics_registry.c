/* The metrics registry renders the Prometheus text exposition format 0.0.4
 * exactly: HELP and TYPE lines, escaped label values, cumulative histogram
 * buckets with _sum and _count, Prometheus' float syntax; series come and go;
 * staged increments count only on commit; updates from several threads while
 * a scrape renders lose nothing. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ka_metrics.h"

static char *render(ka_metrics_t *m)
{
    ka_buf_t b = KA_BUF_INIT;
    ka_metrics_render(m, &b);
    char *s = strdup(ka_buf_str(&b));
    ka_buf_free(&b);
    return s;
}

static void counters_and_gauges_render_with_help_type_and_labels(void **state)
{
    (void)state;
    ka_metrics_t *m = ka_metrics_new();
    ka_metric_t *consumed = ka_metrics_counter(m, "ka_events_consumed_total", "Events polled", NULL);
    ka_metric_t *lag = ka_metrics_gauge(m, "ka_consumer_lag_messages", "Lag", "topic,partition");
    ka_series_t *c = ka_metrics_series(consumed, NULL);
    ka_metrics_inc(c);
    ka_metrics_inc(c);
    ka_metrics_add(c, 40);
    const char *p0[] = {"ka.visit.v1", "0"}, *p1[] = {"ka.visit.v1", "1"};
    ka_metrics_set(ka_metrics_series(lag, p0), 12);
    ka_metrics_set(ka_metrics_series(lag, p1), 0.5);
    char *text = render(m);
    assert_string_equal(text, "# HELP ka_events_consumed_total Events polled\n"
                              "# TYPE ka_events_consumed_total counter\n"
                              "ka_events_consumed_total 42\n"
                              "# HELP ka_consumer_lag_messages Lag\n"
                              "# TYPE ka_consumer_lag_messages gauge\n"
                              "ka_consumer_lag_messages{topic=\"ka.visit.v1\",partition=\"0\"} 12\n"
                              "ka_consumer_lag_messages{topic=\"ka.visit.v1\",partition=\"1\"} 0.5\n");
    assert_true(ka_metrics_value(c) == 42);
    free(text);
    ka_metrics_free(m);
}

static void label_values_and_help_are_escaped(void **state)
{
    (void)state;
    ka_metrics_t *m = ka_metrics_new();
    ka_metric_t *f = ka_metrics_counter(m, "x_total", "a \\ back\nslash \"quoted\"", "reason");
    const char *v[] = {"a\"b\\c\nd"};
    ka_metrics_inc(ka_metrics_series(f, v));
    char *text = render(m);
    /* HELP escapes \ and newline only; label values also the double quote. */
    assert_string_equal(text, "# HELP x_total a \\\\ back\\nslash \"quoted\"\n"
                              "# TYPE x_total counter\n"
                              "x_total{reason=\"a\\\"b\\\\c\\nd\"} 1\n");
    free(text);
    ka_metrics_free(m);
}

static void histogram_buckets_are_cumulative_with_sum_and_count(void **state)
{
    (void)state;
    ka_metrics_t *m = ka_metrics_new();
    const double bounds[] = {0.1, 1, 10};
    ka_metric_t *f = ka_metrics_histogram(m, "ka_rtt_seconds", "RTT", NULL, bounds, 3);
    ka_metric_t *g = ka_metrics_histogram(m, "ka_size", "Size", "kind", bounds, 3);
    ka_series_t *s = ka_metrics_series(f, NULL);
    ka_metrics_observe(s, 0.05);
    ka_metrics_observe(s, 0.1); /* le is inclusive */
    ka_metrics_observe(s, 0.5);
    ka_metrics_observe(s, 5);
    ka_metrics_observe(s, 50);
    const char *kind[] = {"a"};
    ka_metrics_observe(ka_metrics_series(g, kind), 2);
    char *text = render(m);
    assert_string_equal(text, "# HELP ka_rtt_seconds RTT\n"
                              "# TYPE ka_rtt_seconds histogram\n"
                              "ka_rtt_seconds_bucket{le=\"0.1\"} 2\n"
                              "ka_rtt_seconds_bucket{le=\"1\"} 3\n"
                              "ka_rtt_seconds_bucket{le=\"10\"} 4\n"
                              "ka_rtt_seconds_bucket{le=\"+Inf\"} 5\n"
                              "ka_rtt_seconds_sum 55.65\n"
                              "ka_rtt_seconds_count 5\n"
                              "# HELP ka_size Size\n"
                              "# TYPE ka_size histogram\n"
                              "ka_size_bucket{kind=\"a\",le=\"0.1\"} 0\n"
                              "ka_size_bucket{kind=\"a\",le=\"1\"} 0\n"
                              "ka_size_bucket{kind=\"a\",le=\"10\"} 1\n"
                              "ka_size_bucket{kind=\"a\",le=\"+Inf\"} 1\n"
                              "ka_size_sum{kind=\"a\"} 2\n"
                              "ka_size_count{kind=\"a\"} 1\n");
    assert_true(ka_metrics_value(s) == 5);
    free(text);
    ka_metrics_free(m);
}

static void floats_use_prometheus_syntax(void **state)
{
    (void)state;
    ka_metrics_t *m = ka_metrics_new();
    ka_metric_t *f = ka_metrics_gauge(m, "g", "G", "v");
    const double values[] = {INFINITY, -INFINITY, NAN, 1e20, 1.0 / 3, -2, 1e-7};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char name[8];
        snprintf(name, sizeof name, "%zu", i);
        const char *v[] = {name};
        ka_metrics_set(ka_metrics_series(f, v), values[i]);
    }
    char *text = render(m);
    assert_string_equal(text, "# HELP g G\n"
                              "# TYPE g gauge\n"
                              "g{v=\"0\"} +Inf\n"
                              "g{v=\"1\"} -Inf\n"
                              "g{v=\"2\"} NaN\n"
                              "g{v=\"3\"} 1e+20\n"
                              "g{v=\"4\"} 0.3333333333333333\n"
                              "g{v=\"5\"} -2\n"
                              "g{v=\"6\"} 1e-07\n");
    free(text);
    ka_metrics_free(m);
}

static void families_without_series_are_left_out(void **state)
{
    (void)state;
    ka_metrics_t *m = ka_metrics_new();
    ka_metrics_counter(m, "a_total", "A", "reason");
    ka_metrics_series(ka_metrics_gauge(m, "b", "B", NULL), NULL);
    char *text = render(m);
    assert_string_equal(text, "# HELP b B\n# TYPE b gauge\nb 0\n");
    free(text);
    ka_metrics_free(m);
}

static void registering_again_returns_the_same_family_and_series(void **state)
{
    (void)state;
    ka_metrics_t *m = ka_metrics_new();
    ka_metric_t *a = ka_metrics_counter(m, "c_total", "C", "x,y");
    ka_metric_t *b = ka_metrics_counter(m, "c_total", "C again", "x,y");
    assert_ptr_equal(a, b);
    const char *v[] = {"1", "2"};
    assert_ptr_equal(ka_metrics_series(a, v), ka_metrics_series(b, v));
    ka_metrics_free(m);
}

static void removed_series_disappear_and_come_back_at_zero(void **state)
{
    (void)state;
    ka_metrics_t *m = ka_metrics_new();
    ka_metric_t *f = ka_metrics_gauge(m, "lag", "Lag", "partition");
    const char *p0[] = {"0"}, *p1[] = {"1"}, *p2[] = {"2"};
    ka_metrics_set(ka_metrics_series(f, p0), 5);
    ka_metrics_set(ka_metrics_series(f, p1), 6);
    ka_metrics_set(ka_metrics_series(f, p2), 7);
    ka_metrics_remove(f, p1);
    ka_metrics_remove(f, p2); /* the tail */
    ka_metrics_remove(f, p2); /* absent: nothing happens */
    char *text = render(m);
    assert_string_equal(text, "# HELP lag Lag\n# TYPE lag gauge\nlag{partition=\"0\"} 5\n");
    free(text);
    ka_metrics_set(ka_metrics_series(f, p2), 1);
    ka_metrics_remove(f, p0); /* the head */
    text = render(m);
    assert_string_equal(text, "# HELP lag Lag\n# TYPE lag gauge\nlag{partition=\"2\"} 1\n");
    free(text);
    assert_true(ka_metrics_value(ka_metrics_series(f, p1)) == 0);
    ka_metrics_free(m);
}

static void staged_increments_count_only_when_committed(void **state)
{
    (void)state;
    ka_metrics_t *m = ka_metrics_new();
    ka_series_t *s = ka_metrics_series(ka_metrics_counter(m, "t_total", "T", NULL), NULL);
    ka_metrics_stage_inc(s);
    ka_metrics_stage_inc(s);
    ka_metrics_stage_discard(); /* rolled back */
    assert_true(ka_metrics_value(s) == 0);
    for (int i = 0; i < 20; i++) /* past the first allocation */
        ka_metrics_stage_inc(s);
    ka_metrics_stage_commit();
    ka_metrics_stage_commit(); /* nothing left to apply */
    assert_true(ka_metrics_value(s) == 20);
    ka_metrics_free(m);
}

static void misuse_is_harmless(void **state)
{
    (void)state;
    ka_metrics_t *m = ka_metrics_new();
    ka_series_t *c = ka_metrics_series(ka_metrics_counter(m, "c_total", "C", NULL), NULL);
    ka_metrics_add(c, -5);      /* counters only go up */
    ka_metrics_set(c, 9);       /* not a gauge */
    ka_metrics_observe(c, 1);   /* not a histogram */
    assert_true(ka_metrics_value(c) == 0);
    ka_metrics_inc(NULL);
    ka_metrics_set(NULL, 1);
    ka_metrics_observe(NULL, 1);
    assert_null(ka_metrics_series(NULL, NULL));
    ka_metrics_remove(NULL, NULL);
    ka_metrics_stage_inc(NULL);
    ka_metrics_stage_commit();
    ka_metrics_render(NULL, NULL);
    ka_metrics_free(NULL);

    /* A label with unbounded values stops growing the family. */
    ka_metric_t *f = ka_metrics_counter(m, "many_total", "M", "id");
    char id[16];
    const char *v[] = {id};
    for (int i = 0; i < KA_METRICS_MAX_SERIES; i++) {
        snprintf(id, sizeof id, "%d", i);
        assert_non_null(ka_metrics_series(f, v));
    }
    snprintf(id, sizeof id, "one-more");
    assert_null(ka_metrics_series(f, v));
    snprintf(id, sizeof id, "7");
    assert_non_null(ka_metrics_series(f, v)); /* existing ones still answer */
    ka_metrics_free(m);
}

typedef struct hammer {
    ka_series_t *counter, *hist;
    ka_metrics_t *m;
} hammer_t;

static void *hammer_main(void *arg)
{
    hammer_t *h = arg;
    for (int i = 0; i < 20000; i++) {
        ka_metrics_inc(h->counter);
        ka_metrics_observe(h->hist, (i % 10) * 0.1);
    }
    return NULL;
}

static void updates_from_threads_while_rendering_lose_nothing(void **state)
{
    (void)state;
    const double bounds[] = {0.25, 0.5};
    ka_metrics_t *m = ka_metrics_new();
    hammer_t h = {ka_metrics_series(ka_metrics_counter(m, "n_total", "N", NULL), NULL),
                  ka_metrics_series(ka_metrics_histogram(m, "h", "H", NULL, bounds, 2), NULL), m};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h), 0);
    for (int i = 0; i < 50; i++) { /* scrapes meanwhile */
        char *text = render(m);
        free(text);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_true(ka_metrics_value(h.counter) == 80000);
    assert_true(ka_metrics_value(h.hist) == 80000);
    char *text = render(m);
    /* 0.0, 0.1, 0.2 of every ten values are <= 0.25: 3 x 8000. */
    assert_non_null(strstr(text, "h_bucket{le=\"0.25\"} 24000\n"));
    assert_non_null(strstr(text, "h_count 80000\n"));
    free(text);
    ka_metrics_free(m);
}

static void the_global_registry_is_one(void **state)
{
    (void)state;
    ka_metrics_t *g = ka_metrics_global();
    assert_non_null(g);
    assert_ptr_equal(g, ka_metrics_global());
    ka_metrics_inc(ka_metrics_series(ka_metrics_counter(g, "g_total", "G", NULL), NULL));
    char *text = render(g);
    assert_non_null(strstr(text, "\ng_total 1\n"));
    free(text); /* the registry itself is freed at exit */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counters_and_gauges_render_with_help_type_and_labels),
        cmocka_unit_test(label_values_and_help_are_escaped),
        cmocka_unit_test(histogram_buckets_are_cumulative_with_sum_and_count),
        cmocka_unit_test(floats_use_prometheus_syntax),
        cmocka_unit_test(families_without_series_are_left_out),
        cmocka_unit_test(registering_again_returns_the_same_family_and_series),
        cmocka_unit_test(removed_series_disappear_and_come_back_at_zero),
        cmocka_unit_test(staged_increments_count_only_when_committed),
        cmocka_unit_test(misuse_is_harmless),
        cmocka_unit_test(updates_from_threads_while_rendering_lose_nothing),
        cmocka_unit_test(the_global_registry_is_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
