#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "ka_event_time.h"
#include "ka_log.h"
#include "ka_worker_internal.h"

/* Dead letters: a rejected event goes whole, with its reason, to the
 * dead-letter topic (through the outbox) and to the dead_letter table, in the
 * batch's transaction. */

static ka_err_t push_dead_letter(ka_worker_t *w, const ka_event_t *ev, char *errstr,
                                 size_t errlen)
{
    const ka_msg_t *m = ev->msg;
    char id[256], part[16], off[24], at[24];
    /* The record's own time, so a replay that judges it again meets its rows. */
    int64_t at_ms = m->timestamp_ms >= 0 ? m->timestamp_ms : ka_now_ms();
    snprintf(id, sizeof id, "dlq:%s:%s:%d:%lld", w->group, m->topic, m->partition,
             (long long)m->offset);
    snprintf(at, sizeof at, "%lld", (long long)at_ms);
    snprintf(part, sizeof part, "%d", m->partition);
    snprintf(off, sizeof off, "%lld", (long long)m->offset);
    const char *service = ka_config_service(w->cfg);
    ka_header_t h[] = {
        {"ka_dlq_reason", ev->reject.reason, strlen(ev->reject.reason)},
        {"ka_dlq_detail", ev->reject.detail, strlen(ev->reject.detail)},
        {"ka_src_topic", m->topic, strlen(m->topic)},
        {"ka_src_partition", part, strlen(part)},
        {"ka_src_offset", off, strlen(off)},
        {"ka_service", service, strlen(service)},
        {"ka_dlq_mode", ev->reject.mode, strlen(ev->reject.mode)},
        {"ka_dlq_path", ev->reject.path, strlen(ev->reject.path)},
    };
    ka_outbox_row_t row = {
        .event_id = id,
        .topic = ka_config_str(w->cfg, "KA_TOPIC_DEADLETTER"),
        .key = m->key,
        .key_len = m->key_len,
        .ce_type = NULL,
        .ce_time_ms = at_ms,
        .payload = m->payload,
        .len = m->len,
        .headers = h,
        .nheaders = sizeof h / sizeof h[0],
    };
    ka_err_t rc = ka_outbox_push(w->pg, w->source, &row, errstr, errlen);
    if (rc != KA_OK)
        return rc;
    ka_pg_param_t p[10] = {
        {w->group, 0, 0},   {m->topic, 0, 0},          {part, 0, 0},
        {off, 0, 0},        {ev->reject.reason, 0, 0}, {ev->reject.detail, 0, 0},
        {m->payload ? m->payload : "", (int)m->len, 1}, {at, 0, 0},
        {ev->reject.mode, 0, 0}, {ev->reject.path, 0, 0},
    };
    return ka_pg_pipe_push(w->pg, "ka_dead_letter_insert", 10, p, NULL, NULL, errstr, errlen);
}

/* Queues a dead letter for every rejected event of `evs`. */
ka_err_t ka_worker_push_dead_letters(ka_worker_t *w, ka_event_t **evs, size_t n, char *errstr,
                                     size_t errlen)
{
    ka_err_t rc = KA_OK;
    for (size_t i = 0; rc == KA_OK && i < n; i++)
        if (evs[i]->status == KA_EVENT_REJECTED)
            rc = push_dead_letter(w, evs[i], errstr, errlen);
    return rc;
}

void ka_worker_log_rejects(ka_worker_t *w, ka_event_t **evs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (evs[i]->status != KA_EVENT_REJECTED)
            continue;
        w->stats.dead_lettered++;
        const char *reason[] = {evs[i]->reject.reason};
        ka_metrics_inc(ka_metrics_series(w->m.dead_lettered, reason));
        ka_log(KA_LOG_WARN, "event dead-lettered", "{s:s,s:i,s:I,s:s,s:s,s:s,s:s,s:s}",
               "topic", evs[i]->msg->topic, "partition", evs[i]->msg->partition, "offset",
               (json_int_t)evs[i]->msg->offset, "event_id", evs[i]->event_id, "reason",
               evs[i]->reject.reason, "detail", evs[i]->reject.detail, "mode",
               evs[i]->reject.mode, "json_path", evs[i]->reject.path);
    }
}
