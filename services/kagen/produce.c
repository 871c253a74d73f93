/* Producing: every stream sends through one idempotent producer, at
 * --rate events a second or as fast as Kafka takes them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ka/v1/common.pb-c.h"
#include "ka_cloudevents.h"
#include "ka_framing.h"
#include "ka_pb_json.h"
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

/* --format; the stream's message type */
static ka_content_mode_t format = KA_CONTENT_PROTOBUF;
static const ProtobufCMessageDescriptor *format_desc;
/* Confluent: the id a registry would have given our schema; never looked up */
#define KAGEN_SCHEMA_ID 1

int produce_set_format(const char *name, const ProtobufCMessageDescriptor *desc)
{
    unsigned mask;
    char err[128];
    if (ka_content_modes_parse(name, &mask, err, sizeof err) != 0 || (mask & (mask - 1)))
        return -1; /* one mode, not a list */
    format = (ka_content_mode_t)mask;
    format_desc = desc;
    return 0;
}

/* The event re-encoded in the --format mode: a new buffer and its
 * content-type (NULL for none), or NULL when it cannot be. */
static uint8_t *reformat(const uint8_t *buf, size_t len, size_t *outlen, const char **ct)
{
    uint8_t hdr[6 + 5 * KA_CONFLUENT_MAX_INDEXES];
    *ct = NULL;
    if (format == KA_CONTENT_CONFLUENT) {
        size_t n = ka_confluent_header(format_desc, KAGEN_SCHEMA_ID, hdr);
        uint8_t *out = n ? malloc(n + len) : NULL;
        if (!out)
            return NULL;
        memcpy(out, hdr, n);
        memcpy(out + n, buf, len);
        *outlen = n + len;
        return out;
    }
    ProtobufCMessage *m = protobuf_c_message_unpack(format_desc, NULL, len, buf);
    if (!m)
        return NULL;
    json_t *doc = ka_pb_to_json(m);
    if (doc && format == KA_CONTENT_CLOUDEVENTS) {
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(format_desc, "header");
        const Ka__V1__EventHeader *h =
            f ? *(Ka__V1__EventHeader *const *)((const char *)m + f->offset) : NULL;
        static Ka__V1__EventHeader none = KA__V1__EVENT_HEADER__INIT;
        doc = ka_ce_structured_new(h ? h : &none, format_desc->name, doc);
        *ct = "application/cloudevents+json";
    } else {
        *ct = "application/json";
    }
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    protobuf_c_message_free_unpacked(m, NULL);
    if (text)
        *outlen = strlen(text);
    return (uint8_t *)text;
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
    uint8_t *re = NULL;
    const char *ct = NULL;
    if (format != KA_CONTENT_PROTOBUF) {
        if (!(re = reformat(buf, len, &len, &ct))) {
            fprintf(stderr, "kagen: cannot write the event as %s\n",
                    ka_content_mode_name(format));
            return -1;
        }
        buf = re;
    }
    ka_header_t h[] = {{"content-type", ct, ct ? strlen(ct) : 0}};
    while ((rc = ka_producer_send(kp, topic, key, strlen(key), buf, len, h, ct ? 1 : 0, NULL,
                                  err, sizeof err)) == KA_ERR_RETRY)
        ka_producer_poll(kp, 50);
    free(re);
    if (rc != KA_OK) {
        fprintf(stderr, "kagen: %s\n", err);
        return -1;
    }
    return 0;
}

