/* The transport limit: how fast a bare librdkafka consumer, configured as the
 * workers' (read_committed, fetch.wait.max.ms 10), reads the topics from
 * their beginning to the end they had when it started, doing nothing with
 * the messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static int set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char err[512];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "ka-bench: %s\n", err);
        return -1;
    }
    return 0;
}

rd_kafka_t *bench_kafka_consumer(const char *why)
{
    char err[512], group[64];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(group, sizeof group, "ka-bench-%s-%d", why, (int)getpid());
    if (set(conf, "bootstrap.servers", bench_brokers()) || set(conf, "group.id", group) ||
        set(conf, "enable.auto.commit", "false") || set(conf, "isolation.level", "read_committed") ||
        set(conf, "fetch.wait.max.ms", "10") || set(conf, "log_level", "3")) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "ka-bench: could not create a consumer: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

int bench_kafka_add_topic(rd_kafka_t *rk, const char *topic, int at_end,
                          rd_kafka_topic_partition_list_t *list, int64_t *total)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    int rc = -1;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "ka-bench: no metadata for topic %s: %s\n", topic,
                rd_kafka_err2str(e ? e : md->topics[0].err));
        goto out;
    }
    for (int p = 0; p < md->topics[0].partition_cnt; p++) {
        int64_t lo, hi;
        int32_t id = md->topics[0].partitions[p].id;
        e = rd_kafka_query_watermark_offsets(rk, topic, id, &lo, &hi, 10000);
        if (e) {
            fprintf(stderr, "ka-bench: no offsets for %s [%d]: %s\n", topic, (int)id,
                    rd_kafka_err2str(e));
            goto out;
        }
        rd_kafka_topic_partition_list_add(list, topic, id)->offset = at_end ? hi : lo;
        *total += hi - lo;
    }
    rc = 0;
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return rc;
}

int bench_consume(int argc, char **argv)
{
    int64_t total = 0, count = 0, bytes = 0, t0, idle_since;
    int rc = 1;
    if (argc < 1) {
        fprintf(stderr, "ka-bench consume: expects topic names\n");
        return 2;
    }
    rd_kafka_t *rk = bench_kafka_consumer("consume");
    if (!rk)
        return 1;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(16);
    for (int i = 0; i < argc; i++)
        if (bench_kafka_add_topic(rk, argv[i], 0, list, &total))
            goto out;
    t0 = idle_since = bench_mono_ms();
    rd_kafka_assign(rk, list);
    while (count < total) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (!m) {
            if (bench_mono_ms() - idle_since > 30000) {
                fprintf(stderr, "ka-bench consume: nothing for 30 s after %lld of %lld\n",
                        (long long)count, (long long)total);
                goto out;
            }
            continue;
        }
        idle_since = bench_mono_ms();
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            fprintf(stderr, "ka-bench consume: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            goto out;
        }
        if (!m->err) {
            count++;
            bytes += (int64_t)m->len;
        }
        rd_kafka_message_destroy(m);
    }
    double s = (double)(bench_mono_ms() - t0) / 1000.0;
    if (s <= 0)
        s = 0.001;
    printf("{\"events\":%lld,\"bytes\":%lld,\"seconds\":%.3f,\"events_per_s\":%.1f}\n",
           (long long)count, (long long)bytes, s, (double)count / s);
    rc = 0;
out:
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}
