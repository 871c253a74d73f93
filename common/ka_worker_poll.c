#include <jansson.h>
#include <string.h>

#include "ka_event_time.h"
#include "ka_log.h"
#include "ka_worker_internal.h"

#define IDLE_POLL_MS 100

/* Kafka: the rebalance hooks, and polling a batch with each event decoded. */

ka_err_t ka_worker_on_assign(void *ud, ka_partition_t *parts, size_t n)
{
    ka_worker_t *w = ud;
    ka_err_t rc = ka_worker_load_offsets(w, parts, n);
    /* The previous owner may have died between its commit and its Redis
     * write: rebuild from PostgreSQL before the first batch. */
    w->cache_stale = 1;
    w->next_cache_check_ms = 0;
    for (size_t i = 0; rc == KA_OK && i < n; i++)
        ka_log(KA_LOG_INFO, "partition assigned", "{s:s,s:i,s:I}", "topic", parts[i].topic,
               "partition", parts[i].partition, "offset", (json_int_t)parts[i].offset);
    return rc;
}

static void drop_batch_events(ka_worker_t *w, const char *topic, int32_t partition)
{
    size_t keep = 0;
    for (size_t i = 0; i < w->nbatch; i++) {
        ka_event_t *ev = &w->batch[i];
        if (ev->msg->partition == partition && strcmp(ev->msg->topic, topic) == 0) {
            if (ev->decoded && w->h->free_decoded)
                w->h->free_decoded(w->h->ud, ev->decoded);
            ka_msg_free(ev->msg);
            continue;
        }
        w->batch[keep++] = *ev;
    }
    w->nbatch = keep;
}

void ka_worker_on_revoke(void *ud, const ka_partition_t *parts, size_t n, int lost)
{
    ka_worker_t *w = ud;
    for (size_t i = 0; i < n; i++) {
        /* Messages polled but not committed belong to the next owner now. */
        drop_batch_events(w, parts[i].topic, parts[i].partition);
        ka_worker_remove_part(w, parts[i].topic, parts[i].partition);
        ka_log(KA_LOG_INFO, lost ? "partition lost" : "partition revoked", "{s:s,s:i}", "topic",
               parts[i].topic, "partition", parts[i].partition);
    }
}

void ka_worker_on_kafka_error(void *ud, const char *err)
{
    (void)ud;
    ka_log(KA_LOG_WARN, "kafka client error", "{s:s}", "error", err);
}

void ka_worker_free_batch(ka_worker_t *w)
{
    for (size_t i = 0; i < w->nbatch; i++) {
        if (w->batch[i].decoded && w->h->free_decoded)
            w->h->free_decoded(w->h->ud, w->batch[i].decoded);
        ka_msg_free(w->batch[i].msg);
    }
    w->nbatch = 0;
}

/* Polls until the batch is full, its time is up, or nothing comes. */
ka_err_t ka_worker_fill_batch(ka_worker_t *w)
{
    char err[KA_ERRSTR_SIZE];
    int64_t deadline = -1;
    while (w->nbatch < (size_t)w->max_events && !ka_worker_should_stop()) {
        int timeout = IDLE_POLL_MS;
        if (deadline >= 0) {
            int64_t left = deadline - mono_ms();
            if (left <= 0)
                break;
            timeout = (int)left;
        }
        ka_msg_t *m = NULL;
        if (ka_consumer_poll(w->kc, timeout, &m, err, sizeof err) != KA_OK) {
            ka_log(KA_LOG_ERROR, "consumer cannot go on", "{s:s}", "error", err);
            return KA_ERR;
        }
        if (!m) {
            if (deadline < 0)
                break; /* idle */
            continue;
        }
        if (deadline < 0) {
            deadline = mono_ms() + w->max_ms;
            w->batch_started_s = mono_s();
        }
        if (m->timestamp_ms >= 0) {
            int64_t ms = wall_ms() - m->timestamp_ms;
            ka_metrics_observe(w->m.poll_delay, ms > 0 ? (double)ms / 1000.0 : 0.0);
        }
        ka_event_t *ev = &w->batch[w->nbatch++];
        memset(ev, 0, sizeof *ev);
        ev->msg = m;
        w->stats.consumed++;
        ka_metrics_inc(w->m.consumed);
        if (w->h->decode(w->h->ud, m, &ev->decoded, ev->event_id, sizeof ev->event_id,
                         &ev->reject) != KA_OK ||
            ka_check_dedupe_window(&ev->reject,
                                   ev->occurred_at_ms = ka_event_time_ms(m, ka_now_ms()),
                                   ka_now_ms(), w->max_event_age_ms) != KA_OK) {
            ev->status = KA_EVENT_REJECTED;
            if (ev->decoded && w->h->free_decoded)
                w->h->free_decoded(w->h->ud, ev->decoded);
            ev->decoded = NULL;
        }
    }
    return KA_OK;
}
