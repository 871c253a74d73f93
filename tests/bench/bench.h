#ifndef KA_BENCH_H
#define KA_BENCH_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

/* ka-bench: the benchmark's measuring tools (tests/bench/run drives them).
 * Each subcommand prints one JSON object on stdout and returns 0, or prints
 * an error on stderr and returns 1 (2 for bad usage). The limits use
 * librdkafka and libpq directly, on purpose: they measure what the servers
 * and client libraries allow, without the product's code in the way. */

/* Creates topics with the given number of partitions. */
int bench_topics(int argc, char **argv);

/* The transport limit: a bare consumer reads the topics to their end. */
int bench_consume(int argc, char **argv);

/* The storage limit: upserts of opportunity-shaped rows, 1,000 per
 * statement and transaction, and the same rows one per transaction. */
int bench_pgload(int argc, char **argv);

/* Event to alert: reads the input and alert topics from their ends and
 * matches each alert to the events that caused it. */
int bench_latency(int argc, char **argv);

/* Alert event to notification through ka-alert-bridge and Alertmanager:
 * writes and sends alerts at a rate, receives Alertmanager's webhook. */
int bench_alert(int argc, char **argv);

/* ka-api's answer time at a fixed request rate over keep-alive
 * connections (bench_api.c). */
int bench_api(int argc, char **argv);

/* A consumer for explicit assignments; NULL with the error printed. */
rd_kafka_t *bench_kafka_consumer(const char *why);

/* Adds every partition of `topic` to `list` at its high watermark (at_end)
 * or its low one, and adds the messages in between to *total. Returns 0, or
 * -1 with the error printed. */
int bench_kafka_add_topic(rd_kafka_t *rk, const char *topic, int at_end,
                          rd_kafka_topic_partition_list_t *list, int64_t *total);

/* Milliseconds of the monotonic clock. */
int64_t bench_mono_ms(void);

/* The brokers and the DSN, as the workers read them (KA_KAFKA_BROKERS,
 * KA_PG_DSN, or their defaults); the strings live until exit. */
const char *bench_brokers(void);
const char *bench_dsn(void);

#endif
