/* Producing: every stream sends through one idempotent producer, at
 * --rate events a second or as fast as Kafka takes them. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kagen.h"

int failures;
/* --rate: events per second, 0 for as fast as Kafka takes them */
long long rate;
static int64_t rate_start_ms, rate_sent;

void on_delivery(void *ud, void *opaque, ka_err_t status, int possibly, const char *err)
{
    (void)ud;
    (void)opaque;
    (void)possibly;
    if (status != KA_OK && failures++ < 5)
        fprintf(stderr, "kagen: delivery failed: %s\n", err ? err : "?");
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends one event, waiting while the producer's queue is full. Returns 0, or
 * -1 with the error printed. */
int produce(ka_producer_t *kp, const char *topic, const char *key, const uint8_t *buf,
                   size_t len)
{
    char err[KA_ERRSTR_SIZE];
    ka_err_t rc;
    if (rate > 0) { /* wait for this event's slot on the fixed-rate clock */
        if (rate_sent == 0)
            rate_start_ms = mono_ms();
        int64_t due = rate_start_ms + rate_sent * 1000 / rate, left;
        while ((left = due - mono_ms()) > 0)
            ka_producer_poll(kp, (int)left); /* serves delivery reports meanwhile */
        rate_sent++;
    }
    while ((rc = ka_producer_send(kp, topic, key, strlen(key), buf, len, NULL, 0, NULL, err,
                                  sizeof err)) == KA_ERR_RETRY)
        ka_producer_poll(kp, 50);
    if (rc != KA_OK) {
        fprintf(stderr, "kagen: %s\n", err);
        return -1;
    }
    return 0;
}

