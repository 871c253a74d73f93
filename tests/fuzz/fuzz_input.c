/* Fuzz target: the combined input decoder (common/ka_input.c) in every
 * content mode, with the Kafka headers taken from the input. See
 * tests/fuzz/README.md. The input is
 *
 *   byte 0      bits 0-1: the type (opportunity, visit, order; 3: all three)
 *               bits 2-5: the topic's accepted modes (0: all)
 *               bit 6:    unknown JSON members ignored
 *   headers     lines "name:value\n" (a line without ':' is a name with an
 *               empty value), ended by an empty line; without an empty line
 *               the input has no headers and the payload is all of it
 *   payload     the rest
 *
 * Besides the contract of fuzz_contract.h: an accepted event is the message
 * the binary path accepts too (its packed bytes decode through
 * ka_input_decode_protobuf with the same event id), in a mode the topic
 * accepts; an event detected as protobuf without ce_* headers gets the
 * binary path's very verdict. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_content_contract.h"
#include "ka_input.h"
#include "ka_opp_decode.h"
#include "ka_order_decode.h"
#include "ka_visit_decode.h"
#include "ka_wire.h"

/* A fixed clock, so a corpus file has the same verdict on every run. */
#define FUZZ_NOW_MS 1795000000000LL
#define MAX_HEADERS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct header {
    const char *name;
    size_t name_len;
    const uint8_t *value;
    size_t value_len;
} header_t;

typedef struct headers {
    header_t h[MAX_HEADERS];
    size_t n;
} headers_t;

/* As librdkafka's rd_kafka_header_get_last, which the workers use. */
static int get_header(void *ctx, const char *name, const void **value, size_t *len)
{
    const headers_t *hs = ctx;
    size_t nl = strlen(name);
    for (size_t i = hs->n; i-- > 0;)
        if (hs->h[i].name_len == nl && memcmp(hs->h[i].name, name, nl) == 0) {
            *value = hs->h[i].value;
            *len = hs->h[i].value_len;
            return 1;
        }
    return 0;
}

/* Splits the header lines off p[0..len); returns the payload's offset. */
static size_t parse_headers(const uint8_t *p, size_t len, headers_t *hs)
{
    size_t pos = 0;
    hs->n = 0;
    while (pos < len) {
        const uint8_t *nl = memchr(p + pos, '\n', len - pos);
        if (!nl)
            break;
        size_t line = (size_t)(nl - (p + pos));
        if (line == 0)
            return pos + 1; /* the empty line: the payload follows */
        if (hs->n < MAX_HEADERS) {
            const uint8_t *colon = memchr(p + pos, ':', line);
            header_t *h = &hs->h[hs->n++];
            h->name = (const char *)(p + pos);
            h->name_len = colon ? (size_t)(colon - (p + pos)) : line;
            h->value = colon ? colon + 1 : nl;
            h->value_len = colon ? line - h->name_len - 1 : 0;
        }
        pos += line + 1;
    }
    hs->n = 0; /* no empty line: no headers */
    return 0;
}

static int has_ce_header(const headers_t *hs)
{
    for (size_t i = 0; i < hs->n; i++)
        if (hs->h[i].name_len >= 3 && memcmp(hs->h[i].name, "ce_", 3) == 0)
            return 1;
    return 0;
}

static const ka_input_type_t *const types[] = {&ka_input_opportunity, &ka_input_visit,
                                               &ka_input_order};

static unsigned mode_bit(const char *name)
{
    static const ka_content_mode_t modes[] = {KA_CONTENT_PROTOBUF, KA_CONTENT_JSON,
                                              KA_CONTENT_CLOUDEVENTS, KA_CONTENT_CONFLUENT};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(name, ka_content_mode_name(modes[i])) == 0)
            return (unsigned)modes[i];
    return 0;
}

/* The event id in the message's header (every input type's field 1). */
static const char *header_id(const ProtobufCMessage *m)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(m->descriptor, 1);
    FUZZ_REQUIRE(f && f->type == PROTOBUF_C_TYPE_MESSAGE && strcmp(f->name, "header") == 0);
    const Ka__V1__EventHeader *h = *(const Ka__V1__EventHeader *const *)((const char *)m + f->offset);
    return h ? h->event_id : NULL;
}

/* The accepted message through the binary path: it packs without a NUL in
 * a string and is accepted again, with the same event id. */
static void check_as_protobuf(const ka_input_type_t *t, const ProtobufCMessage *m,
                              const char *event_id)
{
    char field[160], id[KA_MAX_ID_LEN + 16];
    ProtobufCMessage *again = NULL;
    ka_reject_t rej;

    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    FUZZ_REQUIRE(buf != NULL);
    FUZZ_REQUIRE(protobuf_c_message_pack(m, buf) == len);
    FUZZ_REQUIRE(ka_wire_find_nul(m->descriptor, buf, len, field, sizeof field) == 0);
    fuzz_poison_reject(&rej);
    ka_err_t rc = ka_input_decode_protobuf(t, buf, len, FUZZ_NOW_MS, &again, id, sizeof id, &rej);
    FUZZ_REQUIRE(rc == KA_OK);
    FUZZ_REQUIRE(again != NULL && strcmp(id, event_id) == 0);
    protobuf_c_message_free_unpacked(again, NULL);
    free(buf);
}

static void check_one(const ka_input_type_t *t, const ka_input_src_t *src,
                      const ka_input_opts_t *opts, const headers_t *hs)
{
    ProtobufCMessage *m = (ProtobufCMessage *)(uintptr_t)1;
    char id[KA_MAX_ID_LEN + 16];
    ka_reject_t rej;

    fuzz_poison_reject(&rej);
    memset(id, 0x5a, sizeof id);
    ka_err_t rc = ka_input_decode(t, src, opts, FUZZ_NOW_MS, &m, id, sizeof id, &rej);
    FUZZ_REQUIRE(rc == KA_OK || rc == KA_ERR_INVALID);
    FUZZ_REQUIRE(memchr(rej.mode, '\0', sizeof rej.mode) != NULL);
    FUZZ_REQUIRE(memchr(rej.path, '\0', sizeof rej.path) != NULL);
    unsigned accepted = opts->modes ? opts->modes : KA_CONTENT_ALL;
    unsigned bit = mode_bit(rej.mode);
    if (rc == KA_OK) {
        FUZZ_REQUIRE(m != NULL && m->descriptor == t->desc);
        FUZZ_REQUIRE(bit && (accepted & bit));
        FUZZ_REQUIRE(rej.path[0] == '\0');
        fuzz_check_event_id(id, sizeof id, header_id(m));
        check_as_protobuf(t, m, id);
    } else {
        fuzz_check_content_reject(&rej);
        /* the mode is named once detected; a JSON path only for JSON */
        FUZZ_REQUIRE(rej.mode[0] == '\0' || bit != 0);
        if (rej.path[0]) {
            FUZZ_REQUIRE(rej.path[0] == '$');
            FUZZ_REQUIRE(bit == KA_CONTENT_JSON || bit == KA_CONTENT_CLOUDEVENTS);
        }
    }
    /* a bare protobuf event is judged as the binary decoders judge it */
    if (bit == KA_CONTENT_PROTOBUF && (accepted & bit) && !has_ce_header(hs)) {
        ProtobufCMessage *b = NULL;
        ka_reject_t brej;
        char bid[KA_MAX_ID_LEN + 16];
        ka_err_t brc = ka_input_decode_protobuf(t, src->payload, src->len, FUZZ_NOW_MS, &b, bid,
                                                sizeof bid, &brej);
        FUZZ_REQUIRE(brc == rc);
        if (rc == KA_OK)
            FUZZ_REQUIRE(strcmp(bid, id) == 0);
        else
            FUZZ_REQUIRE(strcmp(brej.reason, rej.reason) == 0);
        if (b)
            protobuf_c_message_free_unpacked(b, NULL);
    }
    if (m && m != (ProtobufCMessage *)(uintptr_t)1)
        protobuf_c_message_free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    headers_t hs;

    if (size == 0)
        return 0;
    unsigned ctl = data[0];
    size_t off = 1 + parse_headers(data + 1, size - 1, &hs);
    ka_input_opts_t opts = {.modes = (ctl >> 2) & 0xfu,
                            .json = {.ignore_unknown_fields = (ctl >> 6) & 1u}};
    ka_input_src_t src = {data + off, size - off, hs.n ? get_header : NULL, &hs};
    unsigned which = ctl & 3u;
    for (unsigned i = 0; i < 3; i++)
        if (which == 3 || which == i)
            check_one(types[i], &src, &opts, &hs);
    return 0;
}
