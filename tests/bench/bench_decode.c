/* ka-bench-decode: decode throughput per content mode, on one core, with no
 * server. For each event kind (an order of three lines, an opportunity
 * created with two lines, a visit with two contacts) and each mode, the
 * common/ decode step a worker runs before its validation:
 *
 *   protobuf     unpack + the wire NUL check (what the binary decoders do)
 *   confluent    framing split + index check + the same
 *   json         ka_json_pb_parse (cJSON fast path: parse + conversion)
 *   (parse)      ka_json_fast_load + cJSON_Delete: cJSON's share of it
 *   json-jansson ka_json_pb_parse with the fast path off: the jansson
 *                reference path (what a declined document costs, after
 *                the fast path's attempt)
 *   (jansson)    ka_json_load alone: jansson's share of json-jansson
 *   cloudevents  parse + envelope + conversion of data + attribute checks
 *                (ka_input's path: cJSON first, jansson when declined)
 *   json+decode  ka_json_pb_parse, pack, then order_decode on the bytes (the
 *                simplest wiring: the binary decoder's validation unchanged)
 *
 *   ka-bench-decode [SECONDS_PER_CASE]     default 0.5
 *
 * Prints events per second; the speed goal (200k JSON events/s per core) is
 * for the report, never asserted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "ka/v1/opportunity.pb-c.h"
#include "ka/v1/order.pb-c.h"
#include "ka/v1/visit.pb-c.h"
#include "ka_cloudevents.h"
#include "ka_framing.h"
#include "ka_json_arena.h"
#include "ka_json_fast.h"
#include "ka_json_pb.h"
#include "ka_wire.h"
#include "ka_order_decode.h"

/* The fuzz corpus's clock: the events below are an hour old. */
#define NOW_MS 1795000000000LL

static const char order_json[] =
    "{\"header\": {\"eventId\": \"o-1\", \"occurredAtMs\": \"1794996400000\", \"producer\": \"erp\"},"
    " \"orderId\": \"ord-1\", \"account\": {\"name\": \"Acme 有限公司\"},"
    " \"repId\": \"rep-1\", \"channel\": \"CHANNEL_DIRECT\", \"shipToRegion\": \"CN-31\","
    " \"lines\": [{\"sku\": \"SKU-1\", \"quantityMilli\": 2000, \"unitPriceMinor\": \"150000\"},"
    " {\"sku\": \"SKU-2\", \"quantityMilli\": \"500\", \"unitPriceMinor\": 99, \"requirement\": \"blue\"},"
    " {\"sku\": \"SKU-3\", \"quantityMilli\": 1000, \"unitPriceMinor\": 4200}],"
    " \"status\": \"ORDER_STATUS_BOOKED\", \"bookedAtMs\": \"1794996400000\"}";

static const char opp_json[] =
    "{\"header\": {\"eventId\": \"e-1\", \"occurredAtMs\": \"1794996400000\", \"producer\": \"crm\"},"
    " \"opportunityId\": \"opp-1\", \"actorId\": \"rep-1\", \"created\": {"
    " \"account\": {\"name\": \"Acme 有限公司\"}, \"ownerRepId\": \"rep-1\","
    " \"businessUnitId\": \"bu-1\", \"stageCode\": \"01\", \"amountMinor\": \"5000000\","
    " \"expectedCloseDate\": \"2027-03-31\", \"lines\": [{\"sku\": \"SKU-1\", \"quantityMilli\": 2000,"
    " \"unitPriceMinor\": \"150000\"}, {\"sku\": \"SKU-2\", \"quantityMilli\": 1, \"unitPriceMinor\": 99,"
    " \"requirement\": \"rack mount\"}], \"salesMode\": \"SALES_MODE_BID\", \"competitors\": [\"Rival Co\"],"
    " \"relationship\": \"RELATIONSHIP_DEGREE_OVER_60\", \"impact\": \"IMPACT_MEDIUM\","
    " \"name\": \"Data center 2027\"}}";

static const char visit_json[] =
    "{\"header\": {\"eventId\": \"v-1\", \"occurredAtMs\": \"1794996400000\", \"producer\": \"crm\"},"
    " \"account\": {\"accountId\": \"acc-42\"}, \"repId\": \"rep-1\", \"visitedAtMs\": \"1794910000000\","
    " \"objective\": \"VISIT_OBJECTIVE_SELL\", \"contacts\": [{\"contactId\": \"c-1\","
    " \"name\": \"Wang Wei 王伟\", \"title\": \"CIO\", \"role\": \"BUYING_ROLE_DECISION_MAKER\","
    " \"function\": \"BUYING_FUNCTION_TECHNICAL\"}, {\"name\": \"Li Na\", \"role\": 3, \"function\": 4}],"
    " \"opportunityId\": \"opp-1\", \"satisfaction\": \"SATISFACTION_SATISFIED\","
    " \"man\": {\"money\": true, \"authority\": true, \"need\": false},"
    " \"followUp\": {\"action\": \"FOLLOW_UP_ACTION_CONTINUE\", \"nextVisitDate\": \"2026-12-15\"},"
    " \"notes\": \"met the CIO\"}";

typedef struct bench_case {
    const char *kind;
    const ProtobufCMessageDescriptor *desc;
    const char *json;
    const char *source; /* CloudEvents source and id, as the JSON header says */
    const char *id;
    uint8_t *pb, *confluent, *ce;
    size_t pb_len, confluent_len, ce_len;
} bench_case_t;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const ka_reject_t *rej)
{
    fprintf(stderr, "ka-bench-decode: %s: %s: %s\n", what, rej->reason, rej->detail);
    exit(1);
}

static ProtobufCMessage *from_json(const bench_case_t *c)
{
    ProtobufCMessage *m;
    ka_json_reject_t err;
    if (ka_json_pb_parse(c->desc, c->json, strlen(c->json), NULL, &m, &err) != KA_OK)
        die(c->kind, &err.rej);
    return m;
}

static void prepare(bench_case_t *c)
{
    ProtobufCMessage *m = from_json(c);
    c->pb_len = protobuf_c_message_get_packed_size(m);
    c->pb = malloc(c->pb_len);
    protobuf_c_message_pack(m, c->pb);
    protobuf_c_message_free_unpacked(m, NULL);
    c->confluent_len = c->pb_len + 6;
    c->confluent = malloc(c->confluent_len);
    memcpy(c->confluent, "\x00\x00\x01\x86\xa1\x00", 6);
    memcpy(c->confluent + 6, c->pb, c->pb_len);
    size_t cap = strlen(c->json) + 256;
    c->ce = malloc(cap);
    c->ce_len = (size_t)snprintf((char *)c->ce, cap,
                                 "{\"specversion\": \"1.0\", \"id\": \"%s\", \"source\": \"%s\","
                                 " \"type\": \"%s\", \"time\": \"2026-11-18T10:06:40Z\","
                                 " \"datacontenttype\": \"application/json\", \"data\": %s}",
                                 c->id, c->source, c->desc->name, c->json);
}

static void decode_protobuf(const bench_case_t *c)
{
    ka_reject_t rej;
    ProtobufCMessage *m = protobuf_c_message_unpack(c->desc, NULL, c->pb_len, c->pb);
    if (!m || ka_check_wire_strings(&rej, c->desc, c->pb, c->pb_len) != KA_OK)
        die("protobuf", &rej);
    protobuf_c_message_free_unpacked(m, NULL);
}

static void decode_confluent(const bench_case_t *c)
{
    ka_confluent_t f;
    ka_reject_t rej;
    if (ka_confluent_parse(c->confluent, c->confluent_len, &f, &rej) != KA_OK ||
        ka_confluent_check_index(&f, c->desc, &rej) != KA_OK)
        die("confluent", &rej);
    ProtobufCMessage *m = protobuf_c_message_unpack(c->desc, NULL, f.payload_len, f.payload);
    if (!m || ka_check_wire_strings(&rej, c->desc, f.payload, f.payload_len) != KA_OK)
        die("confluent", &rej);
    protobuf_c_message_free_unpacked(m, NULL);
}

static void decode_json(const bench_case_t *c)
{
    protobuf_c_message_free_unpacked(from_json(c), NULL);
}

static void decode_json_jansson(const bench_case_t *c)
{
    ka_json_fast_set_enabled(0);
    protobuf_c_message_free_unpacked(from_json(c), NULL);
    ka_json_fast_set_enabled(1);
}

static void parse_fast(const bench_case_t *c)
{
    ka_json_arena_begin(); /* as ka_json_pb_parse loads */
    cJSON *root = ka_json_fast_load(c->json, strlen(c->json), NULL);
    if (!root) {
        ka_reject_t rej = {.reason = "declined"};
        die("(parse)", &rej);
    }
    cJSON_Delete(root);
    ka_json_arena_end();
}

static void parse_only(const bench_case_t *c)
{
    ka_json_reject_t err;
    ka_json_arena_begin(); /* as ka_json_pb_parse loads */
    json_t *root = ka_json_load(c->json, strlen(c->json), NULL, &err);
    if (!root)
        die("parse", &err.rej);
    json_decref(root);
    ka_json_arena_end();
}

static void decode_cloudevents(const bench_case_t *c)
{
    ka_json_reject_t err;
    ka_cloudevent_t ce;
    ProtobufCMessage *m;
    json_t *root = NULL;
    const cJSON *data;
    ka_json_arena_begin(); /* as ka_input's CloudEvents path */
    cJSON *froot = ka_json_fast_load(c->ce, c->ce_len, NULL);
    if (!froot || !ka_ce_fast_structured(froot, &ce, &data) ||
        !ka_json_fast_from_value(c->desc, data, NULL, &m)) {
        cJSON_Delete(froot);
        froot = NULL;
        root = ka_json_load(c->ce, c->ce_len, NULL, &err);
        if (!root || ka_ce_parse_structured(root, &ce, &err) != KA_OK ||
            ka_json_pb_from_value(c->desc, ce.data, "$.data", NULL, &m, &err) != KA_OK)
            die("cloudevents", &err.rej);
    }
    /* every input event's header is field 1 */
    const ProtobufCFieldDescriptor *hf = protobuf_c_message_descriptor_get_field(c->desc, 1);
    const Ka__V1__EventHeader *h = *(Ka__V1__EventHeader *const *)((char *)m + hf->offset);
    if (ka_ce_check_header(&ce, h, c->desc->name, &err) != KA_OK)
        die("cloudevents", &err.rej);
    protobuf_c_message_free_unpacked(m, NULL);
    cJSON_Delete(froot);
    json_decref(root);
    ka_json_arena_end();
}

static void decode_json_order(const bench_case_t *c)
{
    uint8_t buf[4096];
    Ka__V1__OrderEvent *ev;
    ka_reject_t rej;
    char id[KA_MAX_ID_LEN + 1];
    ProtobufCMessage *m = from_json(c);
    size_t n = protobuf_c_message_pack(m, buf);
    protobuf_c_message_free_unpacked(m, NULL);
    if (order_decode(buf, n, NOW_MS, &ev, id, sizeof id, &rej) != KA_OK)
        die("json+decode", &rej);
    ka__v1__order_event__free_unpacked(ev, NULL);
}

static void run(const char *mode, const bench_case_t *c, void (*fn)(const bench_case_t *),
                double seconds, size_t bytes)
{
    long n = 0;
    double start = mono_s(), el;
    do {
        for (int i = 0; i < 1000; i++)
            fn(c);
        n += 1000;
        el = mono_s() - start;
    } while (el < seconds);
    printf("%-12s %-12s %6zu B  %9.0f events/s  %6.2f us/event\n", mode, c->kind, bytes,
           (double)n / el, el * 1e6 / (double)n);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 0.5;
    bench_case_t cases[] = {
        {.kind = "order", .desc = &ka__v1__order_event__descriptor, .json = order_json,
         .source = "/erp", .id = "o-1"},
        {.kind = "opportunity", .desc = &ka__v1__opportunity_event__descriptor, .json = opp_json,
         .source = "/crm", .id = "e-1"},
        {.kind = "visit", .desc = &ka__v1__visit_event__descriptor, .json = visit_json,
         .source = "/crm", .id = "v-1"},
    };
    if (seconds <= 0 || seconds > 60) {
        fprintf(stderr, "ka-bench-decode: SECONDS_PER_CASE is in (0, 60]\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        prepare(&cases[i]);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bench_case_t *c = &cases[i];
        run("protobuf", c, decode_protobuf, seconds, c->pb_len);
        run("confluent", c, decode_confluent, seconds, c->confluent_len);
        run("json", c, decode_json, seconds, strlen(c->json));
        run("(parse)", c, parse_fast, seconds, strlen(c->json));
        run("json-jansson", c, decode_json_jansson, seconds, strlen(c->json));
        run("(jansson)", c, parse_only, seconds, strlen(c->json));
        run("cloudevents", c, decode_cloudevents, seconds, c->ce_len);
        if (c->desc == &ka__v1__order_event__descriptor)
            run("json+decode", c, decode_json_order, seconds, strlen(c->json));
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        free(cases[i].pb);
        free(cases[i].confluent);
        free(cases[i].ce);
    }
    return 0;
}
