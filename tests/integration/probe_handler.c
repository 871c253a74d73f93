#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka/v1/alert.pb-c.h"
#include "ka/v1/visit.pb-c.h"
#include "ka_buf.h"
#include "probe_handler.h"

static ka_err_t probe_decode(void *ud, const ka_msg_t *msg, void **decoded, char *event_id,
                             size_t idlen, ka_reject_t *rej)
{
    (void)ud;
    Ka__V1__VisitEvent *ev = ka__v1__visit_event__unpack(NULL, msg->len, msg->payload);
    if (!ev)
        return ka_reject(rej, KA_REASON_DECODE, "not a ka.v1.VisitEvent (%zu bytes)", msg->len);
    *decoded = ev;
    if (!ev->header)
        return ka_reject(rej, KA_REASON_MISSING, "header is required");
    if (ka_check_id(rej, "header.event_id", ev->header->event_id, KA_MAX_ID_LEN) != KA_OK)
        return KA_ERR_INVALID;
    if (ka_check_time(rej, "header.occurred_at_ms", ev->header->occurred_at_ms, ka_now_ms(),
                      KA_MAX_FUTURE_MS) != KA_OK)
        return KA_ERR_INVALID;
    snprintf(event_id, idlen, "%s", ev->header->event_id);
    return KA_OK;
}

static void probe_free(void *ud, void *decoded)
{
    (void)ud;
    ka__v1__visit_event__free_unpacked(decoded, NULL);
}

static ka_err_t emit_echo(probe_t *p, ka_tx_t *tx, const ka_event_t *ev, char *errstr,
                          size_t errlen)
{
    char alert_id[128];
    char *causes[1] = {(char *)ev->event_id};
    /* Unique per consumer group: test runs share one database. */
    snprintf(alert_id, sizeof alert_id, "probe:%s:%s", p->group, ev->event_id);
    Ka__V1__AlertEvent alert = KA__V1__ALERT_EVENT__INIT;
    alert.alert_id = alert_id;
    alert.fingerprint = alert_id;
    alert.summary = "probe echo";
    alert.n_cause_event_ids = 1;
    alert.cause_event_ids = causes;
    size_t len = ka__v1__alert_event__get_packed_size(&alert);
    uint8_t *buf = ka_malloc(len + 1);
    ka__v1__alert_event__pack(&alert, buf);
    ka_outbox_row_t row = {
        .event_id = alert_id,
        .topic = p->echo_topic,
        .key = ev->event_id,
        .key_len = strlen(ev->event_id),
        .ce_type = "ka.v1.AlertEvent",
        .ce_time_ms = ka_now_ms(),
        .payload = buf,
        .len = len,
    };
    ka_err_t rc = ka_tx_emit(tx, &row, errstr, errlen);
    free(buf);
    return rc;
}

static ka_err_t probe_apply(void *ud, ka_tx_t *tx, ka_event_t *const *events, size_t n,
                            char *errstr, size_t errlen)
{
    probe_t *p = ud;
    ka_buf_t ids = KA_BUF_INIT, topics = KA_BUF_INIT, parts = KA_BUF_INIT, offs = KA_BUF_INIT;
    ka_err_t rc = KA_OK;

    ka_buf_array_begin(&ids);
    ka_buf_array_begin(&topics);
    ka_buf_array_begin(&parts);
    ka_buf_array_begin(&offs);
    for (size_t i = 0; i < n; i++) {
        ka_buf_array_add(&ids, events[i]->event_id);
        ka_buf_array_add(&topics, events[i]->msg->topic);
        ka_buf_array_add_int(&parts, events[i]->msg->partition);
        ka_buf_array_add_int(&offs, events[i]->msg->offset);
    }
    ka_buf_array_end(&ids);
    ka_buf_array_end(&topics);
    ka_buf_array_end(&parts);
    ka_buf_array_end(&offs);
    ka_pg_param_t params[5] = {{ka_tx_group(tx), 0, 0}, {ka_buf_str(&ids), 0, 0},
                               {ka_buf_str(&topics), 0, 0}, {ka_buf_str(&parts), 0, 0},
                               {ka_buf_str(&offs), 0, 0}};
    rc = ka_pg_pipe_push(ka_tx_pg(tx), "probe_insert", 5, params, NULL, NULL, errstr, errlen);
    for (size_t i = 0; rc == KA_OK && i < n; i++)
        rc = emit_echo(p, tx, events[i], errstr, errlen);
    ka_buf_free(&ids);
    ka_buf_free(&topics);
    ka_buf_free(&parts);
    ka_buf_free(&offs);
    return rc;
}

static void cache_one(ka_redis_t *rds, const char *group, const char *event_id,
                      const char *where)
{
    char key[256];
    snprintf(key, sizeof key, "ka:probe:%s:%s", group, event_id);
    const char *argv[] = {"SET", key, where};
    ka_redis_append_str(rds, 3, argv);
}

static ka_err_t probe_after_commit(void *ud, ka_redis_t *rds, ka_event_t *const *events,
                                   size_t n, char *errstr, size_t errlen)
{
    probe_t *p = ud;
    char where[256];
    for (size_t i = 0; i < n; i++) {
        snprintf(where, sizeof where, "%s/%d/%lld", events[i]->msg->topic,
                 events[i]->msg->partition, (long long)events[i]->msg->offset);
        cache_one(rds, p->group, events[i]->event_id, where);
    }
    return ka_redis_flush(rds, errstr, errlen);
}

typedef struct rebuild {
    probe_t *p;
    ka_redis_t *rds;
} rebuild_t;

static int rebuild_rows(void *ud, const ka_pgres_t *res)
{
    rebuild_t *r = ud;
    for (int i = 0; i < ka_pgres_rows(res); i++)
        cache_one(r->rds, r->p->group, ka_pgres_value(res, i, 0), ka_pgres_value(res, i, 1));
    return 0;
}

static ka_err_t probe_rebuild(void *ud, ka_pg_t *pg, ka_redis_t *rds, char *errstr,
                              size_t errlen)
{
    probe_t *p = ud;
    rebuild_t r = {p, rds};
    ka_pg_param_t param = {p->group, 0, 0};
    ka_err_t rc = ka_pg_query(pg,
                              "SELECT event_id, topic || '/' || partition || '/' || \"offset\" "
                              "FROM ingest_probe WHERE consumer_group = $1",
                              1, &param, rebuild_rows, &r, errstr, errlen);
    if (rc != KA_OK)
        return rc;
    return ka_redis_flush(rds, errstr, errlen);
}

static ka_err_t probe_prepare(void *ud, ka_pg_t *pg, char *errstr, size_t errlen)
{
    (void)ud;
    return ka_pg_prepare(pg, "probe_insert",
                         "INSERT INTO ingest_probe (consumer_group, event_id, topic, partition, "
                         "\"offset\", payload_kind) SELECT $1, e.id, e.topic, e.partition, e.off, "
                         "'ka.v1.VisitEvent' FROM unnest($2::text[], $3::text[], $4::int[], "
                         "$5::bigint[]) AS e(id, topic, partition, off)",
                         errstr, errlen);
}

void probe_handler_init(ka_handler_t *h, probe_t *p)
{
    memset(h, 0, sizeof *h);
    h->ud = p;
    h->prepare = probe_prepare;
    h->decode = probe_decode;
    h->free_decoded = probe_free;
    h->apply = probe_apply;
    h->after_commit = probe_after_commit;
    h->rebuild_cache = probe_rebuild;
}
