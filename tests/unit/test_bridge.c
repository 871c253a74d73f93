/* The alert bridge's pure parts: which AlertEvents it rejects and why, and
 * the postableAlert JSON it sends Alertmanager. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bridge.h"
#include "ka/v1/alert.pb-c.h"

#define NOW 1780000000000LL

static Ka__V1__EventHeader header = KA__V1__EVENT_HEADER__INIT;

static Ka__V1__AlertEvent valid(void)
{
    Ka__V1__AlertEvent ev = KA__V1__ALERT_EVENT__INIT;
    header.event_id = "fp@1:firing";
    ev.header = &header;
    ev.alert_id = "stalled_opportunity/ab@1";
    ev.fingerprint = "stalled_opportunity/ab";
    ev.type = KA__V1__ALERT_TYPE__ALERT_TYPE_STALLED_OPPORTUNITY;
    ev.severity = KA__V1__SEVERITY__SEVERITY_WARNING;
    ev.status = KA__V1__ALERT_STATUS__ALERT_STATUS_FIRING;
    ev.subject_kind = KA__V1__SUBJECT_KIND__SUBJECT_KIND_OPPORTUNITY;
    ev.subject_id = "opp-1";
    ev.summary = "stalled";
    ev.starts_at_ms = NOW - 3600000;
    return ev;
}

static ka_err_t decode(const Ka__V1__AlertEvent *ev, bridge_event_t *out, ka_reject_t *rej)
{
    uint8_t buf[1024];
    size_t len = ka__v1__alert_event__pack(ev, buf);
    return bridge_decode(buf, len, NOW, out, rej);
}

static void a_valid_event_decodes(void **state)
{
    (void)state;
    Ka__V1__AlertEvent ev = valid();
    bridge_event_t out;
    ka_reject_t rej;
    assert_int_equal(decode(&ev, &out, &rej), KA_OK);
    assert_string_equal(out.fingerprint, "stalled_opportunity/ab");
    assert_string_equal(out.alert_id, "stalled_opportunity/ab@1");
    assert_int_equal(out.firing, 1);
    bridge_event_free(&out);

    ev.status = KA__V1__ALERT_STATUS__ALERT_STATUS_RESOLVED;
    ev.ends_at_ms = NOW - 1000;
    assert_int_equal(decode(&ev, &out, &rej), KA_OK);
    assert_int_equal(out.firing, 0);
    bridge_event_free(&out);
}

static void malformed_events_are_rejected_with_a_reason(void **state)
{
    (void)state;
    bridge_event_t out;
    ka_reject_t rej;
    assert_int_equal(bridge_decode("\xff\xff\xff", 3, NOW, &out, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_DECODE);
    assert_int_equal(bridge_decode("", 0, NOW, &out, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_MISSING);

    static const struct {
        int field;
        const char *reason, *detail;
    } cases[] = {
        {0, KA_REASON_MISSING, "fingerprint"}, {1, KA_REASON_ENUM, "type"},
        {2, KA_REASON_MISSING, "severity"},    {3, KA_REASON_ENUM, "subject_kind"},
        {4, KA_REASON_MISSING, "ends_at_ms"},    {5, KA_REASON_TIME, "before"},
        {6, KA_REASON_TIME, "starts_at_ms"},   {7, KA_REASON_TIME, "firing"},
        {8, KA_REASON_MISSING, "subject_id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Ka__V1__AlertEvent ev = valid();
        switch (cases[i].field) {
        case 0: ev.fingerprint = ""; break;
        case 1: ev.type = 42; break;
        case 2: ev.severity = 0; break;
        case 3: ev.subject_kind = 9; break;
        case 4: ev.status = KA__V1__ALERT_STATUS__ALERT_STATUS_RESOLVED; break;
        case 5:
            ev.status = KA__V1__ALERT_STATUS__ALERT_STATUS_RESOLVED;
            ev.ends_at_ms = ev.starts_at_ms - 1;
            break;
        case 6: ev.starts_at_ms = 12; break;
        case 7: ev.ends_at_ms = NOW; break;
        case 8: ev.subject_id = ""; break;
        }
        memset(&rej, 0, sizeof rej);
        assert_int_equal(decode(&ev, &out, &rej), KA_ERR_INVALID);
        assert_string_equal(rej.reason, cases[i].reason);
        if (!strstr(rej.detail, cases[i].detail))
            fail_msg("case %zu: detail \"%s\" lacks \"%s\"", i, rej.detail, cases[i].detail);
    }
}

static json_t *render(const bridge_alert_t *a, const char *link)
{
    ka_buf_t b = KA_BUF_INIT;
    ka_buf_append(&b, "[", 1);
    bridge_alert_json(&b, a, link, 1);
    ka_buf_append(&b, "]", 1);
    json_t *arr = json_loads(ka_buf_str(&b), 0, NULL);
    ka_buf_free(&b);
    assert_non_null(arr);
    json_t *one = json_incref(json_array_get(arr, 0));
    json_decref(arr);
    return one;
}

static const char *label(json_t *a, const char *name)
{
    return json_string_value(json_object_get(json_object_get(a, "labels"), name));
}

static const char *annotation(json_t *a, const char *name)
{
    return json_string_value(json_object_get(json_object_get(a, "annotations"), name));
}

static void a_firing_alert_carries_its_org_path_and_no_end(void **state)
{
    (void)state;
    bridge_alert_t a = {
        .fingerprint = "stalled_opportunity/ab", .alert_id = "stalled_opportunity/ab@1",
        .type = "stalled_opportunity", .severity = "warning", .status = "firing",
        .subject_kind = "opportunity", .subject_id = "opp 1/x", .summary = "stalled 60 days",
        .details = "{\"stage\":\"03\",\"dwell_days\":\"60\"}", .starts_at_ms = 1780000000123LL,
        .division = "div-ind", .region = "ind-east", .team = "ind-east-t1",
        .rep = "rep-ind-east-t1-01", .account = "acc-1", .opportunity = "opp 1/x",
        .manager = "u-ind-east-t1",
    };
    json_t *j = render(&a, "https://ka.example/view/");
    assert_string_equal(label(j, "alertname"), "stalled_opportunity");
    assert_string_equal(label(j, "severity"), "warning");
    assert_string_equal(label(j, "fingerprint"), "stalled_opportunity/ab");
    assert_string_equal(label(j, "division"), "div-ind");
    assert_string_equal(label(j, "region"), "ind-east");
    assert_string_equal(label(j, "team"), "ind-east-t1");
    assert_string_equal(label(j, "rep"), "rep-ind-east-t1-01");
    assert_string_equal(label(j, "account"), "acc-1");
    assert_string_equal(label(j, "opportunity"), "opp 1/x");
    assert_string_equal(label(j, "manager"), "u-ind-east-t1");
    assert_null(label(j, "distributor"));
    assert_string_equal(annotation(j, "summary"), "stalled 60 days");
    assert_string_equal(annotation(j, "description"), "dwell_days: 60\nstage: 03");
    assert_string_equal(annotation(j, "link"), "https://ka.example/view/opportunity/opp%201%2Fx");
    assert_string_equal(json_string_value(json_object_get(j, "startsAt")),
                        "2026-05-28T20:26:40.123Z");
    assert_null(json_object_get(j, "endsAt"));
    json_decref(j);
}

static void a_resolved_alert_ends_and_empty_labels_are_left_out(void **state)
{
    (void)state;
    bridge_alert_t a = {
        .fingerprint = "channel_diversion/cd", .alert_id = "channel_diversion/cd@5",
        .type = "channel_diversion", .severity = "warning", .status = "resolved",
        .subject_kind = "distributor", .subject_id = "dst-1", .summary = "quiet",
        .details = "{}", .starts_at_ms = 1000, .ends_at_ms = 61000, .division = "",
    };
    json_t *j = render(&a, "");
    assert_string_equal(label(j, "distributor"), "dst-1");
    assert_null(label(j, "division"));
    assert_null(label(j, "team"));
    assert_null(label(j, "manager"));
    assert_null(annotation(j, "link"));
    assert_null(annotation(j, "description"));
    assert_string_equal(json_string_value(json_object_get(j, "startsAt")),
                        "1970-01-01T00:00:01.000Z");
    assert_string_equal(json_string_value(json_object_get(j, "endsAt")),
                        "1970-01-01T00:01:01.000Z");
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_valid_event_decodes),
        cmocka_unit_test(malformed_events_are_rejected_with_a_reason),
        cmocka_unit_test(a_firing_alert_carries_its_org_path_and_no_end),
        cmocka_unit_test(a_resolved_alert_ends_and_empty_labels_are_left_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
