/* Fuzz target: content-mode detection and the Confluent wire format
 * (common/ka_framing.c). See tests/fuzz/README.md. The input is a payload
 * read under a fixed set of content-type headers and, when it has a newline
 * within its first 100 bytes, also as "<content-type>\n<payload>"; it is
 * split as Confluent framing and its index checked for each input event. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_content_contract.h"
#include "ka/v1/opportunity.pb-c.h"
#include "ka/v1/order.pb-c.h"
#include "ka/v1/visit.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *const types[] = {
    &ka__v1__opportunity_event__descriptor,
    &ka__v1__visit_event__descriptor,
    &ka__v1__order_event__descriptor,
};

static int one_bit(unsigned m)
{
    return m && !(m & (m - 1));
}

static void check_detect(const char *ct, size_t ct_len, const uint8_t *p, size_t len)
{
    static const unsigned masks[] = {KA_CONTENT_ALL, KA_CONTENT_PROTOBUF,
                                     KA_CONTENT_JSON | KA_CONTENT_CLOUDEVENTS};
    for (size_t i = 0; i < sizeof masks / sizeof masks[0]; i++) {
        ka_content_mode_t mode = 0;
        ka_reject_t rej;
        fuzz_poison_reject(&rej);
        ka_err_t rc = ka_content_detect(ct, ct_len, p, len, masks[i], &mode, &rej);
        FUZZ_REQUIRE(rc == KA_OK || rc == KA_ERR_INVALID);
        if (rc == KA_OK) {
            FUZZ_REQUIRE(one_bit((unsigned)mode) && (masks[i] & (unsigned)mode));
            FUZZ_REQUIRE(strcmp(ka_content_mode_name(mode), "?") != 0);
            /* Confluent framing is told by its magic byte, nothing else */
            if (mode == KA_CONTENT_CONFLUENT)
                FUZZ_REQUIRE(len > 0 && p[0] == 0);
        } else {
            fuzz_check_content_reject(&rej);
            FUZZ_REQUIRE(strcmp(rej.reason, KA_REASON_CONTENT_TYPE) == 0 ||
                         strcmp(rej.reason, KA_REASON_MODE_REFUSED) == 0);
        }
    }
}

static void check_confluent(const uint8_t *p, size_t len)
{
    ka_confluent_t c;
    ka_reject_t rej;

    fuzz_poison_reject(&rej);
    ka_err_t rc = ka_confluent_parse(p, len, &c, &rej);
    FUZZ_REQUIRE(rc == KA_OK || rc == KA_ERR_INVALID);
    if (rc != KA_OK) {
        fuzz_check_content_reject(&rej);
        FUZZ_REQUIRE(strcmp(rej.reason, KA_REASON_FRAMING) == 0);
        return;
    }
    FUZZ_REQUIRE(len >= 6 && p[0] == 0);
    FUZZ_REQUIRE(c.schema_id ==
                 ((uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4]));
    FUZZ_REQUIRE(c.n_indexes >= 1 && c.n_indexes <= KA_CONFLUENT_MAX_INDEXES);
    FUZZ_REQUIRE(c.payload >= p + 6 && c.payload + c.payload_len == p + len);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        fuzz_poison_reject(&rej);
        rc = ka_confluent_check_index(&c, types[i], &rej);
        /* every input event is the first message of its file */
        FUZZ_REQUIRE((rc == KA_OK) == (c.n_indexes == 1 && c.indexes[0] == 0));
        if (rc != KA_OK) {
            fuzz_check_content_reject(&rej);
            FUZZ_REQUIRE(strcmp(rej.reason, KA_REASON_MESSAGE_INDEX) == 0);
        } else {
            ProtobufCMessage *m = protobuf_c_message_unpack(types[i], NULL, c.payload_len,
                                                            c.payload);
            if (m)
                protobuf_c_message_free_unpacked(m, NULL);
        }
    }
}

static void check_modes_text(const uint8_t *data, size_t size)
{
    char text[257], err[160];
    unsigned mask = 0;
    size_t n = size < 256 ? size : 256;
    memcpy(text, data, n);
    text[n] = '\0';
    memset(err, 0x5a, sizeof err);
    if (ka_content_modes_parse(text, &mask, err, sizeof err) == 0)
        FUZZ_REQUIRE(mask != 0 && (mask & ~KA_CONTENT_ALL) == 0);
    else
        FUZZ_REQUIRE(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const headers[] = {
        NULL,
        "application/json",
        "application/cloudevents+json; charset=UTF-8",
        "application/x-protobuf",
        "application/cloudevents-batch+json",
        "text/xml",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++)
        check_detect(headers[i], headers[i] ? strlen(headers[i]) : 0, data, size);
    const uint8_t *nl = memchr(data, '\n', size < 100 ? size : 100);
    if (nl) {
        size_t ct_len = (size_t)(nl - data);
        check_detect((const char *)data, ct_len, nl + 1, size - ct_len - 1);
        check_confluent(nl + 1, size - ct_len - 1);
    }
    check_confluent(data, size);
    check_modes_text(data, size);
    return 0;
}
