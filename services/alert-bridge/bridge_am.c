/* Posting to Alertmanager's API v2 with libcurl, one target per URL, all
 * targets at once (a curl multi handle), without blocking the caller: it
 * starts a post and drives it from its own loop, which goes on reading. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge_am.h"
#include "ka_log.h"

#define FIRST_BACKOFF_MS 200

typedef struct target {
    char *url;   /* <base>/api/v2/alerts */
    char *label; /* the base without user:password@, for metrics and logs */
    CURL *curl;
    int up;             /* the last post was answered */
    int wants_full;     /* missed posts (or never had any): send the whole set */
    int backoff_ms;     /* 0 while healthy */
    int64_t retry_at;   /* no post before this time (ms) */
    ka_series_t *ok, *failed, *rejected, *alerts, *up_gauge, *rtt;
} target_t;

struct bridge_am {
    target_t *t;
    size_t n;
    int timeout_ms, retry_max_ms;
    struct curl_slist *headers;
    CURLM *multi; /* the targets' posts run at once: a round waits for the slowest, not the sum */
    /* The post in flight (bridge_am_start): its targets still running, how
     * many accepted it so far, and what settle needs. */
    size_t inflight, post_n;
    int accepted, post_full;
    double post_start;
};

static size_t discard(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

/* The URL without credentials: scheme://[user[:pass]@]host... */
static char *strip_userinfo(const char *url)
{
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    const char *at = strchr(host, '@'), *slash = strchr(host, '/');
    if (!at || (slash && slash < at))
        return ka_strdup(url);
    size_t scheme = (size_t)(host - url);
    char *s = ka_malloc(strlen(url) + 1);
    memcpy(s, url, scheme);
    strcpy(s + scheme, at + 1);
    return s;
}

bridge_am_t *bridge_am_new(const char *urls, int timeout_ms, int retry_max_ms, ka_metrics_t *m,
                           char *errstr, size_t errlen)
{
    bridge_am_t *am = ka_calloc(1, sizeof *am);
    char *copy = ka_strdup(urls), *save = NULL;
    am->timeout_ms = timeout_ms;
    am->retry_max_ms = retry_max_ms;
    am->headers = curl_slist_append(NULL, "Content-Type: application/json");
    am->multi = curl_multi_init();
    if (!am->multi)
        abort(); /* out of memory */
    ka_metric_t *posts = ka_metrics_counter(
        m, "ka_alert_bridge_posts_total",
        "Posts to an Alertmanager, by result (ok, failed: retried; rejected: a 4xx answer)",
        "alertmanager,result");
    ka_metric_t *alerts = ka_metrics_counter(m, "ka_alert_bridge_alerts_posted_total",
                                             "Alerts an Alertmanager accepted", "alertmanager");
    ka_metric_t *up = ka_metrics_gauge(m, "ka_alert_bridge_alertmanager_up",
                                       "1 when the Alertmanager answered the last post",
                                       "alertmanager");
    ka_metric_t *rtt = ka_metrics_histogram(m, "ka_alert_bridge_post_seconds",
                                            "Time of one post to an Alertmanager", "alertmanager",
                                            KA_METRICS_RTT_BUCKETS, KA_METRICS_RTT_NBUCKETS);
    for (char *u = strtok_r(copy, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
        while (*u == ' ')
            u++;
        size_t len = strlen(u);
        while (len && (u[len - 1] == ' ' || u[len - 1] == '/'))
            u[--len] = '\0';
        if (!len)
            continue;
        if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) {
            snprintf(errstr, errlen, "KA_ALERTMANAGER_URLS: \"%s\" is not an http(s) URL", u);
            free(copy);
            bridge_am_free(am);
            return NULL;
        }
        am->t = ka_realloc(am->t, (am->n + 1) * sizeof *am->t);
        target_t *t = &am->t[am->n++];
        memset(t, 0, sizeof *t);
        t->url = ka_malloc(len + 16);
        snprintf(t->url, len + 16, "%s/api/v2/alerts", u);
        t->label = strip_userinfo(u);
        t->up = 1;
        t->wants_full = 1;
        t->curl = curl_easy_init();
        if (!t->curl)
            abort(); /* out of memory */
        curl_easy_setopt(t->curl, CURLOPT_URL, t->url);
        curl_easy_setopt(t->curl, CURLOPT_HTTPHEADER, am->headers);
        curl_easy_setopt(t->curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
        curl_easy_setopt(t->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
        curl_easy_setopt(t->curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(t->curl, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(t->curl, CURLOPT_PROTOCOLS_STR, "http,https");
        const char *ok[] = {t->label, "ok"}, *failed[] = {t->label, "failed"},
                   *rejected[] = {t->label, "rejected"}, *one[] = {t->label};
        t->ok = ka_metrics_series(posts, ok);
        t->failed = ka_metrics_series(posts, failed);
        t->rejected = ka_metrics_series(posts, rejected);
        t->alerts = ka_metrics_series(alerts, one);
        t->up_gauge = ka_metrics_series(up, one);
        t->rtt = ka_metrics_series(rtt, one);
        ka_metrics_set(t->up_gauge, 1);
    }
    free(copy);
    if (am->n == 0) {
        snprintf(errstr, errlen, "KA_ALERTMANAGER_URLS names no Alertmanager");
        bridge_am_free(am);
        return NULL;
    }
    return am;
}

void bridge_am_free(bridge_am_t *am)
{
    if (!am)
        return;
    for (size_t i = 0; i < am->n; i++) {
        curl_easy_cleanup(am->t[i].curl);
        free(am->t[i].url);
        free(am->t[i].label);
    }
    free(am->t);
    curl_multi_cleanup(am->multi);
    curl_slist_free_all(am->headers);
    free(am);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t mono_ms(void)
{
    return (int64_t)(mono_s() * 1000.0);
}

static void failed(bridge_am_t *am, target_t *t, int64_t now_ms, const char *why)
{
    t->backoff_ms = t->backoff_ms ? t->backoff_ms * 2 : FIRST_BACKOFF_MS;
    if (t->backoff_ms > am->retry_max_ms)
        t->backoff_ms = am->retry_max_ms;
    t->retry_at = now_ms + t->backoff_ms;
    t->wants_full = 1;
    if (t->up)
        ka_log(KA_LOG_WARN, "Alertmanager unreachable: retrying with back-off", "{s:s,s:s}",
               "alertmanager", t->label, "error", why);
    t->up = 0;
    ka_metrics_inc(t->failed);
    ka_metrics_set(t->up_gauge, 0);
}

/* The result of one target's post, once it is over. */
static int settle(bridge_am_t *am, target_t *t, CURLcode cc, size_t n, int full, int64_t now_ms,
                  double seconds)
{
    ka_metrics_observe(t->rtt, seconds);
    long status = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
    char why[160];
    if (cc != CURLE_OK) {
        snprintf(why, sizeof why, "%s", curl_easy_strerror(cc));
        failed(am, t, now_ms, why);
        return 0;
    }
    if (status >= 500 || status < 200) {
        snprintf(why, sizeof why, "HTTP %ld", status);
        failed(am, t, now_ms, why);
        return 0;
    }
    if (status >= 300) {
        ka_log(KA_LOG_ERROR, "Alertmanager rejected alerts", "{s:s,s:i,s:I}", "alertmanager",
               t->label, "status", (int)status, "alerts", (json_int_t)n);
        ka_metrics_inc(t->rejected);
    } else {
        ka_metrics_inc(t->ok);
        ka_metrics_add(t->alerts, (double)n);
    }
    if (!t->up)
        ka_log(KA_LOG_INFO, "Alertmanager reachable again", "{s:s}", "alertmanager", t->label);
    t->up = 1;
    t->backoff_ms = 0;
    if (full)
        t->wants_full = 0;
    ka_metrics_set(t->up_gauge, 1);
    return 1;
}

int bridge_am_start(bridge_am_t *am, const char *body, size_t len, size_t n, int full,
                    int64_t now_ms)
{
    am->inflight = 0;
    am->accepted = 0;
    am->post_n = n;
    am->post_full = full;
    am->post_start = mono_s();
    for (size_t i = 0; i < am->n; i++) {
        target_t *t = &am->t[i];
        if (t->backoff_ms && now_ms < t->retry_at)
            continue;
        /* A target that missed posts takes nothing but the whole set: a
         * part of it would say nothing about what it lost. */
        if (t->wants_full && !full)
            continue;
        curl_easy_setopt(t->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(t->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(t->curl, CURLOPT_PRIVATE, (char *)t);
        if (curl_multi_add_handle(am->multi, t->curl) != CURLM_OK) {
            failed(am, t, now_ms, "could not start the post");
            continue;
        }
        am->inflight++;
    }
    return (int)am->inflight;
}

int bridge_am_step(bridge_am_t *am, int wait_ms)
{
    if (!am->inflight)
        return am->accepted;
    int running = 0;
    if (curl_multi_perform(am->multi, &running) != CURLM_OK)
        running = 0;
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(am->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        target_t *t = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        CURLcode cc = msg->data.result;
        curl_multi_remove_handle(am->multi, msg->easy_handle);
        am->inflight--;
        am->accepted += settle(am, t, cc, am->post_n, am->post_full, mono_ms(),
                               mono_s() - am->post_start);
    }
    if (am->inflight && !running) {
        /* Not expected (each handle reports DONE once no transfer runs):
         * take them out rather than spin; they count as not accepted. */
        for (size_t i = 0; i < am->n; i++)
            (void)curl_multi_remove_handle(am->multi, am->t[i].curl);
        am->inflight = 0;
    }
    if (!am->inflight)
        return am->accepted;
    if (wait_ms > 0)
        curl_multi_poll(am->multi, NULL, 0, wait_ms, NULL);
    return -1;
}

int bridge_am_wants_full(const bridge_am_t *am, int64_t now_ms)
{
    for (size_t i = 0; i < am->n; i++)
        if (am->t[i].wants_full && (!am->t[i].backoff_ms || now_ms >= am->t[i].retry_at))
            return 1;
    return 0;
}

int64_t bridge_am_next_retry(const bridge_am_t *am)
{
    int64_t next = 0;
    for (size_t i = 0; i < am->n; i++)
        if (am->t[i].backoff_ms && (next == 0 || am->t[i].retry_at < next))
            next = am->t[i].retry_at;
    return next;
}

int bridge_am_reachable(const bridge_am_t *am)
{
    int n = 0;
    for (size_t i = 0; i < am->n; i++)
        n += am->t[i].up;
    return n;
}

size_t bridge_am_count(const bridge_am_t *am)
{
    return am->n;
}
