#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ka_kafka.h"
#include "ka_log.h"

struct ka_consumer {
    rd_kafka_t *rk;
    ka_consumer_hooks_t hooks;
    int failed; /* a hook refused an assignment: the consumer cannot go on */
    char failure[KA_ERRSTR_SIZE];
    int connected; /* from the statistics; see ka_consumer_connected */
    int synced;    /* the group has handed this member an assignment; see ka_consumer_free */
    int broker_up;  /* from the statistics: some broker connection is up */
};

#define STATS_INTERVAL "1000" /* ms: how fresh ka_consumer_connected is */

struct ka_producer {
    rd_kafka_t *rk;
    ka_delivery_fn on_delivery;
    void *ud;
};

/* librdkafka's own diagnostics go into our JSON lines, not its text format. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    ka_log_level_t lv = level <= 3 ? KA_LOG_ERROR : level == 4 ? KA_LOG_WARN
                      : level <= 6 ? KA_LOG_INFO : KA_LOG_DEBUG;
    ka_log(lv, "librdkafka", "{s:s,s:s}", "facility", fac, "detail", buf);
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                    size_t errlen)
{
    char err[512];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof err) != RD_KAFKA_CONF_OK) {
        /* The value may be a password: named, never shown. */
        if (ka_config_is_secret_property(name))
            snprintf(errstr, errlen, "kafka setting %s: %s", name, err);
        else
            snprintf(errstr, errlen, "kafka setting %s=%s: %s", name, value, err);
        return -1;
    }
    return 0;
}

static rd_kafka_conf_t *broker_conf(const char *brokers, char *errstr, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, log_cb);
    if (conf_set(conf, "bootstrap.servers", brokers, errstr, errlen) ||
        conf_set(conf, "client.id", "ka", errstr, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

/* A typed security key applied when set (empty: librdkafka's default). */
static int conf_opt(rd_kafka_conf_t *conf, const ka_config_t *cfg, const char *key,
                    const char *name, char *errstr, size_t errlen)
{
    const char *v = ka_config_str(cfg, key);
    return v[0] ? conf_set(conf, name, v, errstr, errlen) : 0;
}

/* Every client of the service: the brokers, the security settings (SASL,
 * TLS; docs/security.md), then the KA_KAFKA_PROPERTY_* passthrough. */
static rd_kafka_conf_t *base_conf(const ka_config_t *cfg, char *errstr, size_t errlen)
{
    rd_kafka_conf_t *conf = broker_conf(ka_config_str(cfg, "KA_KAFKA_BROKERS"), errstr, errlen);
    if (!conf)
        return NULL;
    const char *proto = ka_config_str(cfg, "KA_KAFKA_SECURITY_PROTOCOL");
    int sasl = strncmp(proto, "sasl_", 5) == 0;
    int ssl = strstr(proto, "ssl") != NULL;
    const char *name, *value;
    int bad = conf_set(conf, "security.protocol", proto, errstr, errlen);
    if (!bad && sasl)
        bad = conf_set(conf, "sasl.mechanism", ka_config_str(cfg, "KA_KAFKA_SASL_MECHANISM"),
                       errstr, errlen) ||
              conf_opt(conf, cfg, "KA_KAFKA_SASL_USERNAME", "sasl.username", errstr, errlen) ||
              conf_opt(conf, cfg, "KA_KAFKA_SASL_PASSWORD", "sasl.password", errstr, errlen);
    if (!bad && ssl)
        bad = conf_opt(conf, cfg, "KA_KAFKA_SSL_CA_LOCATION", "ssl.ca.location", errstr,
                       errlen) ||
              conf_opt(conf, cfg, "KA_KAFKA_SSL_CERTIFICATE_LOCATION", "ssl.certificate.location",
                       errstr, errlen) ||
              conf_opt(conf, cfg, "KA_KAFKA_SSL_KEY_LOCATION", "ssl.key.location", errstr,
                       errlen) ||
              conf_opt(conf, cfg, "KA_KAFKA_SSL_KEY_PASSWORD", "ssl.key.password", errstr,
                       errlen) ||
              conf_set(conf, "ssl.endpoint.identification.algorithm",
                       ka_config_str(cfg, "KA_KAFKA_SSL_ENDPOINT_IDENTIFICATION"), errstr, errlen);
    for (size_t i = 0; !bad && ka_config_kafka_property(cfg, i, &name, &value); i++)
        bad = conf_set(conf, name, value, errstr, errlen);
    if (bad) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

/* Client-level errors (broker down, authentication, TLS). Without this
 * callback librdkafka would only log them; here they are logged the same way
 * and a credential or certificate failure, which no retry heals, is kept for
 * the consumer to stop on. */
static int fatal_to_config(int err)
{
    return err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__SSL;
}

static void log_client_error(int err, const char *reason)
{
    if (fatal_to_config(err))
        ka_log(KA_LOG_ERROR, "Kafka authentication failed", "{s:s,s:s}", "error",
               rd_kafka_err2name(err), "detail", reason);
    else
        ka_log(KA_LOG_ERROR, "librdkafka", "{s:s,s:s}", "facility", "ERROR", "detail", reason);
}

static void producer_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)opaque;
    log_client_error(err, reason);
}

/* Consumer ----------------------------------------------------------------- */

/* Whether a KA_KAFKA_PROPERTY_* setting names this property. */
static int property_given(const ka_config_t *cfg, const char *property)
{
    const char *name, *value;
    for (size_t i = 0; ka_config_kafka_property(cfg, i, &name, &value); i++)
        if (strcmp(name, property) == 0)
            return 1;
    return 0;
}

/* The pre-fetch queue is a worker's largest buffer: with a backlog,
 * librdkafka's defaults (100,000 messages per partition, 64 MB) hold most
 * of a topic in memory (47 MB of RSS for 67,000 order events). 2,000 per
 * partition is still many batches in hand. KA_KAFKA_PROPERTY_* overrides. */
static int bound_prefetch(rd_kafka_conf_t *conf, const ka_config_t *cfg, char *errstr,
                          size_t errlen)
{
    return (!property_given(cfg, "queued.min.messages") &&
            conf_set(conf, "queued.min.messages", "2000", errstr, errlen)) ||
           (!property_given(cfg, "queued.max.messages.kbytes") &&
            conf_set(conf, "queued.max.messages.kbytes", "4096", errstr, errlen));
}

static void consumer_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    ka_consumer_t *kc = opaque;
    (void)rk;
    log_client_error(err, reason);
    if (fatal_to_config(err) && !kc->failed) {
        kc->failed = 1;
        snprintf(kc->failure, sizeof kc->failure,
                 "Kafka %s failed (check the KA_KAFKA_SASL_* / KA_KAFKA_SSL_* settings): %s",
                 err == RD_KAFKA_RESP_ERR__SSL ? "TLS" : "authentication", reason);
    }
}

/* The statistics tell whether the client holds a broker connection and its
 * group coordinator ("cgrp" state "up"): the consumer's view of being
 * connected. Runs inside rd_kafka_consumer_poll, on the loop's thread. */
static int stats_cb(rd_kafka_t *rk, char *json, size_t json_len, void *opaque)
{
    ka_consumer_t *kc = opaque;
    const char *key;
    json_t *broker;
    int broker_up = 0;
    (void)rk;
    json_t *root = json_loadb(json, json_len, 0, NULL);
    const char *cgrp = json_string_value(json_object_get(json_object_get(root, "cgrp"), "state"));
    json_object_foreach(json_object_get(root, "brokers"), key, broker)
    {
        const char *state = json_string_value(json_object_get(broker, "state"));
        if (state && strcmp(state, "UP") == 0 &&
            json_integer_value(json_object_get(broker, "nodeid")) >= 0)
            broker_up = 1;
    }
    kc->connected = broker_up && cgrp && strcmp(cgrp, "up") == 0;
    kc->broker_up = broker_up;
    json_decref(root);
    return 0; /* librdkafka frees json */
}

static ka_partition_t *to_parts(const rd_kafka_topic_partition_list_t *list)
{
    ka_partition_t *parts = ka_calloc((size_t)list->cnt + 1, sizeof *parts);
    for (int i = 0; i < list->cnt; i++) {
        parts[i].topic = list->elems[i].topic;
        parts[i].partition = list->elems[i].partition;
        parts[i].offset = list->elems[i].offset;
    }
    return parts;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *list, void *opaque)
{
    ka_consumer_t *kc = opaque;
    int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    ka_partition_t *parts = to_parts(list);
    rd_kafka_error_t *error = NULL;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        ka_err_t rc = KA_OK;
        kc->synced = 1;
        if (kc->hooks.on_assign)
            rc = kc->hooks.on_assign(kc->hooks.ud, parts, (size_t)list->cnt);
        if (rc != KA_OK) {
            kc->failed = 1;
            snprintf(kc->failure, sizeof kc->failure,
                     "could not read the stored offsets of %d assigned partitions", list->cnt);
            free(parts);
            return;
        }
        for (int i = 0; i < list->cnt; i++)
            list->elems[i].offset = parts[i].offset;
        if (cooperative)
            error = rd_kafka_incremental_assign(rk, list);
        else
            rd_kafka_assign(rk, list);
    } else {
        if (kc->hooks.on_revoke)
            kc->hooks.on_revoke(kc->hooks.ud, parts, (size_t)list->cnt,
                                rd_kafka_assignment_lost(rk));
        if (cooperative)
            error = rd_kafka_incremental_unassign(rk, list);
        else
            rd_kafka_assign(rk, NULL);
    }
    if (error) {
        if (kc->hooks.on_error)
            kc->hooks.on_error(kc->hooks.ud, rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
    free(parts);
}

static ka_consumer_t *consumer_new(const ka_config_t *cfg, const char *const *topics,
                                   size_t ntopics, const ka_consumer_hooks_t *hooks,
                                   int kafka_offsets, char *errstr, size_t errlen)
{
    ka_consumer_t *kc = ka_calloc(1, sizeof *kc);
    rd_kafka_conf_t *conf = base_conf(cfg, errstr, errlen);
    rd_kafka_topic_partition_list_t *subs = NULL;
    char err[512];

    if (!conf)
        goto fail;
    if (hooks)
        kc->hooks = *hooks;
    /* Offsets live in PostgreSQL, written with the state they belong to
     * (or, for kafka_offsets, in Kafka, committed by the owner). */
    if (conf_set(conf, "group.id", ka_config_str(cfg, "KA_CONSUMER_GROUP"), errstr, errlen) ||
        conf_set(conf, "enable.auto.commit", "false", errstr, errlen) ||
        conf_set(conf, "enable.auto.offset.store", "false", errstr, errlen) ||
        conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", errstr, errlen) ||
        conf_set(conf, "auto.offset.reset",
                 kafka_offsets ? ka_config_str(cfg, "KA_START_OFFSET") : "error", errstr,
                 errlen) ||
        conf_set(conf, "isolation.level", "read_committed", errstr, errlen) ||
        conf_set(conf, "session.timeout.ms", "10000", errstr, errlen) ||
        conf_set(conf, "heartbeat.interval.ms", "1000", errstr, errlen) ||
        conf_set(conf, "fetch.wait.max.ms", "10", errstr, errlen) ||
        conf_set(conf, "statistics.interval.ms", STATS_INTERVAL, errstr, errlen) ||
        bound_prefetch(conf, cfg, errstr, errlen)) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_stats_cb(conf, stats_cb);
    rd_kafka_conf_set_error_cb(conf, consumer_error_cb);
    rd_kafka_conf_set_opaque(conf, kc);
    kc->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!kc->rk) {
        snprintf(errstr, errlen, "could not create Kafka consumer: %s", err);
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    rd_kafka_poll_set_consumer(kc->rk);
    subs = rd_kafka_topic_partition_list_new((int)ntopics);
    for (size_t i = 0; i < ntopics; i++)
        rd_kafka_topic_partition_list_add(subs, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t rerr = rd_kafka_subscribe(kc->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (rerr) {
        snprintf(errstr, errlen, "could not subscribe: %s", rd_kafka_err2str(rerr));
        goto fail;
    }
    return kc;
fail:
    if (kc->rk)
        rd_kafka_destroy(kc->rk);
    free(kc);
    return NULL;
}

ka_consumer_t *ka_consumer_new(const ka_config_t *cfg, const char *const *topics, size_t ntopics,
                               const ka_consumer_hooks_t *hooks, char *errstr, size_t errlen)
{
    return consumer_new(cfg, topics, ntopics, hooks, 0, errstr, errlen);
}

ka_consumer_t *ka_consumer_new_kafka_offsets(const ka_config_t *cfg, const char *const *topics,
                                             size_t ntopics, const ka_consumer_hooks_t *hooks,
                                             char *errstr, size_t errlen)
{
    return consumer_new(cfg, topics, ntopics, hooks, 1, errstr, errlen);
}

ka_err_t ka_consumer_commit(ka_consumer_t *kc, const ka_partition_t *parts, size_t n,
                            char *errstr, size_t errlen)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(list, parts[i].topic, parts[i].partition)->offset =
            parts[i].offset;
    rd_kafka_resp_err_t err = rd_kafka_commit(kc->rk, list, 0);
    for (int i = 0; !err && i < list->cnt; i++)
        err = list->elems[i].err;
    rd_kafka_topic_partition_list_destroy(list);
    if (err) {
        snprintf(errstr, errlen, "offset commit failed: %s", rd_kafka_err2str(err));
        return KA_ERR;
    }
    return KA_OK;
}

ka_err_t ka_consumer_poll(ka_consumer_t *kc, int timeout_ms, ka_msg_t **out, char *errstr,
                          size_t errlen)
{
    char fatal[512];
    *out = NULL;
    rd_kafka_message_t *rkm = rd_kafka_consumer_poll(kc->rk, timeout_ms);
    if (kc->failed) {
        if (rkm) /* NULL on a time-out */
            rd_kafka_message_destroy(rkm);
        snprintf(errstr, errlen, "%s", kc->failure);
        return KA_ERR;
    }
    if (!rkm)
        return KA_OK;
    if (rkm->err) {
        rd_kafka_resp_err_t err = rkm->err;
        ka_err_t rc = KA_OK;
        if (err == RD_KAFKA_RESP_ERR__FATAL) {
            rd_kafka_fatal_error(kc->rk, fatal, sizeof fatal);
            snprintf(errstr, errlen, "fatal Kafka consumer error: %s", fatal);
            rc = KA_ERR;
        } else if (fatal_to_config(err)) {
            /* Wrong credentials or certificates do not heal by retrying:
             * stop with the reason instead of waiting forever. */
            snprintf(errstr, errlen, "Kafka %s failed (check the KA_KAFKA_SASL_* / "
                     "KA_KAFKA_SSL_* settings): %s",
                     err == RD_KAFKA_RESP_ERR__SSL ? "TLS" : "authentication",
                     rd_kafka_message_errstr(rkm));
            rc = KA_ERR;
        } else if (err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) {
            /* A stored offset the log no longer has: skipping would lose
             * events silently, so an operator must decide. */
            snprintf(errstr, errlen, "stored offset out of range on %s [%d]: %s",
                     rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : "?", rkm->partition,
                     rd_kafka_message_errstr(rkm));
            rc = KA_ERR;
        } else if (err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
                kc->connected = 0; /* until the statistics see a broker again */
            if (kc->hooks.on_error)
                kc->hooks.on_error(kc->hooks.ud, rd_kafka_message_errstr(rkm));
        }
        rd_kafka_message_destroy(rkm);
        return rc;
    }
    ka_msg_t *m = ka_calloc(1, sizeof *m);
    m->topic = rd_kafka_topic_name(rkm->rkt);
    m->partition = rkm->partition;
    m->offset = rkm->offset;
    m->key = rkm->key;
    m->key_len = rkm->key_len;
    m->payload = rkm->payload;
    m->len = rkm->len;
    m->timestamp_ms = rd_kafka_message_timestamp(rkm, NULL);
    m->internal_ = rkm;
    *out = m;
    return KA_OK;
}

ka_err_t ka_consumer_seek(ka_consumer_t *kc, const ka_partition_t *parts, size_t n, char *errstr,
                          size_t errlen)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)n);
    ka_err_t rc = KA_OK;
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(list, parts[i].topic, parts[i].partition)->offset =
            parts[i].offset;
    rd_kafka_error_t *error = rd_kafka_seek_partitions(kc->rk, list, 5000);
    if (error) {
        snprintf(errstr, errlen, "seek failed: %s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        rc = KA_ERR;
    }
    for (int i = 0; rc == KA_OK && i < list->cnt; i++) {
        if (list->elems[i].err) {
            snprintf(errstr, errlen, "seek of %s [%d] failed: %s", list->elems[i].topic,
                     list->elems[i].partition, rd_kafka_err2str(list->elems[i].err));
            rc = KA_ERR;
        }
    }
    rd_kafka_topic_partition_list_destroy(list);
    return rc;
}

int ka_consumer_assigned(ka_consumer_t *kc)
{
    rd_kafka_topic_partition_list_t *list = NULL;
    int n = 0;
    if (rd_kafka_assignment(kc->rk, &list) == RD_KAFKA_RESP_ERR_NO_ERROR && list)
        n = list->cnt;
    if (list)
        rd_kafka_topic_partition_list_destroy(list);
    return n;
}

int ka_consumer_connected(const ka_consumer_t *kc)
{
    return kc->connected;
}

ka_err_t ka_consumer_lag(ka_consumer_t *kc, const char *topic, int32_t partition,
                         int64_t next_offset, int64_t *lag)
{
    int64_t low = -1, high = -1;
    /* Cached from fetch responses: no request to the broker. */
    if (rd_kafka_get_watermark_offsets(kc->rk, topic, partition, &low, &high) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        high < 0)
        return KA_ERR;
    if (next_offset < 0) {
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(list, topic, partition);
        if (rd_kafka_position(kc->rk, list) == RD_KAFKA_RESP_ERR_NO_ERROR)
            next_offset = list->elems[0].offset;
        rd_kafka_topic_partition_list_destroy(list);
        if (next_offset < 0)
            return KA_ERR;
    }
    *lag = high > next_offset ? high - next_offset : 0;
    return KA_OK;
}

/* librdkafka before 2.3.0 (Debian 12 ships 2.0.2) aborts in rd_kafka_destroy
 * when a cooperative-sticky member that has joined its group is destroyed
 * before its first assignment (assertion `assignor_state', librdkafka #4312):
 * a worker stopped while a rebalance is still forming. So wait for that
 * assignment first: the rebalance callback's first ASSIGN (the statistics'
 * join state is up to a second old and proved no guide). Nor can they say
 * early whether a join is under way (the first ones may show no broker up
 * yet), so only a broker out of reach for CLOSE_UNREACHABLE_MS cuts the wait
 * short. A rebalance waits for a vanished member's session timeout (10 s),
 * and a storm of joins and leaves can chain two; a member that never got an
 * assignment has no batch to drain, so most of the 20 s drain is its to wait. */
#define CLOSE_SYNC_WAIT_MS 16000
#define CLOSE_UNREACHABLE_MS 3000

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Consumers left to the process's exit (see ka_consumer_free); kept
 * reachable on purpose. */
static ka_consumer_t *abandoned[16];
static size_t nabandoned;

void ka_consumer_free(ka_consumer_t *kc)
{
    if (!kc)
        return;
    int64_t start = mono_ms();
    while (!kc->synced && mono_ms() - start < CLOSE_SYNC_WAIT_MS) {
        if (!kc->broker_up && mono_ms() - start > CLOSE_UNREACHABLE_MS)
            break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kc->rk, 100);
        if (m) /* not processed: the stored offsets stay where they are */
            rd_kafka_message_destroy(m);
    }
    if (!kc->synced && kc->broker_up && nabandoned < sizeof abandoned / sizeof abandoned[0]) {
        /* Still joining after the wait: closing now would abort the process
         * (librdkafka #4312). Leave the handle to the exit instead; the group
         * drops the member after its session timeout, and the offsets live in
         * PostgreSQL, so nothing is lost or read twice. */
        ka_log(KA_LOG_WARN, "consumer still joining its group at close: left to the exit", NULL);
        abandoned[nabandoned++] = kc;
        return;
    }
    rd_kafka_consumer_close(kc->rk);
    rd_kafka_destroy(kc->rk);
    free(kc);
}

void ka_msg_free(ka_msg_t *msg)
{
    if (!msg)
        return;
    rd_kafka_message_destroy(msg->internal_);
    free(msg);
}

ka_err_t ka_msg_header(const ka_msg_t *msg, const char *name, const void **value, size_t *len)
{
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(msg->internal_, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return KA_ERR;
    if (rd_kafka_header_get_last(hdrs, name, value, len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return KA_ERR;
    return KA_OK;
}

/* Producer ----------------------------------------------------------------- */

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    ka_producer_t *kp = opaque;
    (void)rk;
    if (!kp->on_delivery)
        return;
    if (rkm->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        kp->on_delivery(kp->ud, rkm->_private, KA_OK, 1, NULL);
        return;
    }
    int possibly = rd_kafka_message_status(rkm) != RD_KAFKA_MSG_STATUS_NOT_PERSISTED;
    kp->on_delivery(kp->ud, rkm->_private, KA_ERR_RETRY, possibly, rd_kafka_err2str(rkm->err));
}

ka_producer_t *ka_producer_new(const ka_config_t *cfg, ka_delivery_fn on_delivery, void *ud,
                               char *errstr, size_t errlen)
{
    char err[512];
    char timeout[24];
    rd_kafka_conf_t *conf = base_conf(cfg, errstr, errlen);
    if (!conf)
        return NULL;
    snprintf(timeout, sizeof timeout, "%lld", ka_config_int(cfg, "KA_KAFKA_MESSAGE_TIMEOUT_MS"));
    if (conf_set(conf, "enable.idempotence", "true", errstr, errlen) ||
        conf_set(conf, "acks", "all", errstr, errlen) ||
        conf_set(conf, "linger.ms", "2", errstr, errlen) ||
        /* Kafka 4 brokers refuse this client's gzip/snappy/lz4 batches. */
        conf_set(conf, "compression.codec", "none", errstr, errlen) ||
        conf_set(conf, "message.timeout.ms", timeout, errstr, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    ka_producer_t *kp = ka_calloc(1, sizeof *kp);
    kp->on_delivery = on_delivery;
    kp->ud = ud;
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    rd_kafka_conf_set_error_cb(conf, producer_error_cb);
    rd_kafka_conf_set_opaque(conf, kp);
    kp->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!kp->rk) {
        snprintf(errstr, errlen, "could not create Kafka producer: %s", err);
        rd_kafka_conf_destroy(conf);
        free(kp);
        return NULL;
    }
    return kp;
}

ka_err_t ka_producer_send(ka_producer_t *kp, const char *topic, const void *key, size_t key_len,
                          const void *payload, size_t len, const ka_header_t *headers,
                          size_t nheaders, void *msg_opaque, char *errstr, size_t errlen)
{
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(nheaders ? nheaders : 1);
    for (size_t i = 0; i < nheaders; i++)
        rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value, (ssize_t)headers[i].len);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        kp->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY((void *)key, key_len),
        RD_KAFKA_V_VALUE((void *)payload, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
    if (err) {
        rd_kafka_headers_destroy(hdrs);
        snprintf(errstr, errlen, "could not produce to %s: %s", topic, rd_kafka_err2str(err));
        return err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? KA_ERR_RETRY : KA_ERR;
    }
    return KA_OK;
}

int ka_producer_poll(ka_producer_t *kp, int timeout_ms)
{
    return rd_kafka_poll(kp->rk, timeout_ms);
}

ka_err_t ka_producer_flush(ka_producer_t *kp, int timeout_ms)
{
    return rd_kafka_flush(kp->rk, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR ? KA_OK : KA_ERR_RETRY;
}

int ka_producer_fatal(ka_producer_t *kp, char *errstr, size_t errlen)
{
    return rd_kafka_fatal_error(kp->rk, errstr, errlen) != RD_KAFKA_RESP_ERR_NO_ERROR;
}

int ka_producer_outq(ka_producer_t *kp)
{
    return rd_kafka_outq_len(kp->rk);
}

void ka_producer_free(ka_producer_t *kp)
{
    if (!kp)
        return;
    rd_kafka_destroy(kp->rk);
    free(kp);
}

/* Admin -------------------------------------------------------------------- */

ka_err_t ka_kafka_create_topic(const char *brokers, const char *topic, int partitions,
                               char *errstr, size_t errlen)
{
    char err[512];
    ka_err_t rc = KA_ERR;
    rd_kafka_t *rk = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_AdminOptions_t *opts = NULL;
    rd_kafka_NewTopic_t *nt = NULL;
    rd_kafka_event_t *ev = NULL;
    rd_kafka_conf_t *conf = broker_conf(brokers, errstr, errlen);

    if (!conf)
        return KA_ERR;
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        snprintf(errstr, errlen, "could not create Kafka admin client: %s", err);
        rd_kafka_conf_destroy(conf);
        return KA_ERR;
    }
    nt = rd_kafka_NewTopic_new(topic, partitions, 1, err, sizeof err);
    if (!nt) {
        snprintf(errstr, errlen, "bad topic %s: %s", topic, err);
        goto out;
    }
    q = rd_kafka_queue_new(rk);
    opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, 10000, err, sizeof err);
    rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
    ev = rd_kafka_queue_poll(q, 15000);
    if (!ev) {
        snprintf(errstr, errlen, "creating topic %s timed out", topic);
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        snprintf(errstr, errlen, "could not create topic %s: %s", topic,
                 rd_kafka_event_error_string(ev));
        goto out;
    }
    size_t cnt = 0;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
    rd_kafka_resp_err_t terr = cnt ? rd_kafka_topic_result_error(res[0]) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (terr && terr != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        snprintf(errstr, errlen, "could not create topic %s: %s", topic,
                 rd_kafka_topic_result_error_string(res[0]));
        goto out;
    }
    rc = KA_OK;
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (opts)
        rd_kafka_AdminOptions_destroy(opts);
    if (nt)
        rd_kafka_NewTopic_destroy(nt);
    if (q)
        rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}
