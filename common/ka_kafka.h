#ifndef KA_KAFKA_H
#define KA_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include "ka_config.h"
#include "ka_err.h"

/* Kafka access. Only ka_kafka.c includes librdkafka. */

/* Start positions a rebalance hook may set besides a real offset. */
#define KA_OFFSET_BEGINNING (-2)
#define KA_OFFSET_END (-1)

/* One consumed message. Pointers live until ka_msg_free(). */
typedef struct ka_msg {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const void *key;
    size_t key_len;
    const void *payload;
    size_t len;
    int64_t timestamp_ms; /* -1 when the broker gave none */
    void *internal_;
} ka_msg_t;

/* A partition handed to the rebalance hooks; `topic` is valid during the
 * hook only. on_assign sets `offset` to the next offset to read (or one of
 * the KA_OFFSET_* positions). */
typedef struct ka_partition {
    const char *topic;
    int32_t partition;
    int64_t offset;
} ka_partition_t;

typedef struct ka_consumer_hooks {
    void *ud;
    /* Called before newly assigned partitions are read, so the worker can
     * seek to the offsets it stores itself. A non-OK return stops the
     * consumer: ka_consumer_poll then returns KA_ERR. */
    ka_err_t (*on_assign)(void *ud, ka_partition_t *parts, size_t n);
    /* Called before partitions are taken away; `lost` when they were lost
     * without a clean hand-over (another instance may own them already). */
    void (*on_revoke)(void *ud, const ka_partition_t *parts, size_t n, int lost);
    /* Transient client errors (broker down, ...), for the loop to log. */
    void (*on_error)(void *ud, const char *err);
} ka_consumer_hooks_t;

typedef struct ka_consumer ka_consumer_t;

/* Joins the configured consumer group and subscribes to `topics`. Offsets are
 * never committed to Kafka: the hooks decide where reading starts. `hooks` is
 * copied. Returns NULL and fills errstr on failure. */
ka_consumer_t *ka_consumer_new(const ka_config_t *cfg, const char *const *topics, size_t ntopics,
                               const ka_consumer_hooks_t *hooks, char *errstr, size_t errlen);

/* The same, for a consumer whose effect lies outside PostgreSQL (the alert
 * bridge posts to Alertmanager): its group's offsets are kept in Kafka.
 * Reading starts at the committed offset, or at KA_START_OFFSET where the
 * group committed none; on_assign may still move it. Nothing is committed
 * but what ka_consumer_commit() is given. */
ka_consumer_t *ka_consumer_new_kafka_offsets(const ka_config_t *cfg, const char *const *topics,
                                             size_t ntopics, const ka_consumer_hooks_t *hooks,
                                             char *errstr, size_t errlen);

/* Commits `offset` (the next offset to read) of each partition to the
 * group, synchronously. Returns KA_OK, or KA_ERR with errstr filled (e.g. a
 * partition this member no longer owns): the events are then read again. */
ka_err_t ka_consumer_commit(ka_consumer_t *kc, const ka_partition_t *parts, size_t n,
                            char *errstr, size_t errlen);

/* Waits up to timeout_ms for one message. Returns KA_OK with *out set (free it
 * with ka_msg_free) or NULL on time-out or a transient error (reported to
 * on_error); KA_ERR when the consumer cannot go on (errstr filled). */
ka_err_t ka_consumer_poll(ka_consumer_t *kc, int timeout_ms, ka_msg_t **out, char *errstr,
                          size_t errlen);

/* Moves the read position of assigned partitions (after a rolled-back batch). */
ka_err_t ka_consumer_seek(ka_consumer_t *kc, const ka_partition_t *parts, size_t n,
                          char *errstr, size_t errlen);

/* Number of partitions currently assigned. */
int ka_consumer_assigned(ka_consumer_t *kc);

/* Non-zero while the consumer is connected to Kafka: a broker connection and
 * the group coordinator are up, as the client's statistics reported them
 * (every second, served by ka_consumer_poll), and no "all brokers down" error
 * came since. 0 until the first statistics. */
int ka_consumer_connected(const ka_consumer_t *kc);

/* The lag of an assigned partition: its high watermark as the last fetch
 * response reported it (no broker round trip) minus `next_offset`, the next
 * offset the caller will commit, or minus the consumer's position when
 * next_offset is negative. Returns KA_OK with *lag set (never negative), or
 * KA_ERR while either end is unknown. Not for the rebalance hooks. */
ka_err_t ka_consumer_lag(ka_consumer_t *kc, const char *topic, int32_t partition,
                         int64_t next_offset, int64_t *lag);

/* Leaves the group (running on_revoke) and frees everything. Free every
 * message of this consumer first: librdkafka waits for them. No operation is
 * performed if kc is NULL. */
void ka_consumer_free(ka_consumer_t *kc);

/* No operation is performed if msg is NULL. */
void ka_msg_free(ka_msg_t *msg);

/* Finds the last header called `name`. Returns KA_OK with value/len pointing
 * into the message, or KA_ERR when absent. */
ka_err_t ka_msg_header(const ka_msg_t *msg, const char *name, const void **value, size_t *len);

/* Producer ---------------------------------------------------------------- */

typedef struct ka_header {
    const char *name;
    const void *value;
    size_t len;
} ka_header_t;

/* Delivery report of one message: status KA_OK when persisted; otherwise
 * `possibly_persisted` tells whether a retry may duplicate it. */
typedef void (*ka_delivery_fn)(void *ud, void *msg_opaque, ka_err_t status,
                               int possibly_persisted, const char *err);

typedef struct ka_producer ka_producer_t;

/* An idempotent producer (acks=all, ordered per partition, no duplicates from
 * internal retries). Returns NULL and fills errstr on failure. */
ka_producer_t *ka_producer_new(const ka_config_t *cfg, ka_delivery_fn on_delivery, void *ud,
                               char *errstr, size_t errlen);

/* Queues one message; key, payload and headers are copied. The delivery
 * callback runs later from ka_producer_poll/flush with msg_opaque. Returns
 * KA_ERR_RETRY when the local queue is full (poll, then send again). */
ka_err_t ka_producer_send(ka_producer_t *kp, const char *topic, const void *key, size_t key_len,
                          const void *payload, size_t len, const ka_header_t *headers,
                          size_t nheaders, void *msg_opaque, char *errstr, size_t errlen);

/* Serves delivery reports for up to timeout_ms. Returns how many were served. */
int ka_producer_poll(ka_producer_t *kp, int timeout_ms);

/* Waits until every queued message has its delivery report, or timeout_ms.
 * Returns KA_OK or KA_ERR_RETRY on time-out. */
ka_err_t ka_producer_flush(ka_producer_t *kp, int timeout_ms);

/* Non-zero when the producer hit a fatal error (the idempotence guarantee is
 * broken): the owner must free it and create a new one, then resend whatever
 * was not confirmed. Fills errstr. */
int ka_producer_fatal(ka_producer_t *kp, char *errstr, size_t errlen);

/* Messages queued and not yet reported. */
int ka_producer_outq(ka_producer_t *kp);

/* Frees the producer without waiting: flush first to keep messages. No
 * operation is performed if kp is NULL. */
void ka_producer_free(ka_producer_t *kp);

/* Admin ------------------------------------------------------------------- */

/* Creates a topic; an existing topic is not an error. Connects in plaintext,
 * without the configuration's SASL/TLS settings: it serves the tests; in a
 * deployment the bus owner creates the topics. */
ka_err_t ka_kafka_create_topic(const char *brokers, const char *topic, int partitions,
                               char *errstr, size_t errlen);

#endif
