/* The event time the dedupe record is partitioned by, read from the encoded
 * header, and the dedupe window's check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ka/v1/order.pb-c.h"
#include "ka/v1/visit.pb-c.h"
#include "ka_event_time.h"

#define DAY_MS 86400000LL

static size_t visit(int64_t at, int with_header, uint8_t **out)
{
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__VisitEvent ev = KA__V1__VISIT_EVENT__INIT;
    h.event_id = "e-1";
    h.occurred_at_ms = at;
    h.producer = "unit";
    ev.header = with_header ? &h : NULL;
    ev.rep_id = "rep-1";
    size_t len = ka__v1__visit_event__get_packed_size(&ev);
    *out = malloc(len + 1);
    ka__v1__visit_event__pack(&ev, *out);
    return len;
}

static void reads_the_header_time_of_any_input(void **state)
{
    (void)state;
    uint8_t *b;
    size_t n = visit(1765000000123LL, 1, &b);
    assert_int_equal(ka_wire_occurred_at_ms(b, n), 1765000000123LL);
    free(b);

    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__OrderEvent o = KA__V1__ORDER_EVENT__INIT;
    h.event_id = "o-1";
    h.occurred_at_ms = 1700000000000LL;
    o.header = &h;
    n = ka__v1__order_event__get_packed_size(&o);
    b = malloc(n + 1);
    ka__v1__order_event__pack(&o, b);
    assert_int_equal(ka_wire_occurred_at_ms(b, n), 1700000000000LL);
    free(b);
}

static void no_header_or_bad_bytes_fall_back_to_the_record_time(void **state)
{
    (void)state;
    uint8_t *b;
    size_t n = visit(5, 0, &b);
    assert_int_equal(ka_wire_occurred_at_ms(b, n), -1);
    ka_msg_t m = {.payload = b, .len = n, .timestamp_ms = 1234};
    assert_int_equal(ka_event_time_ms(&m, 99), 1234);
    m.timestamp_ms = -1;
    assert_int_equal(ka_event_time_ms(&m, 99), 99);
    free(b);
    static const char garbage[] = "\xff\xff\xff not a protobuf";
    assert_int_equal(ka_wire_occurred_at_ms(garbage, sizeof garbage - 1), -1);
    n = visit(1765000000123LL, 1, &b);
    assert_int_equal(ka_wire_occurred_at_ms(b, n - 1), -1); /* truncated */
    free(b);
}

/* A time PostgreSQL cannot hold (fault_bad_input's "time int64 max") made the
 * dedupe row's insert fail the batch, not the validators dead-letter it. */
static void a_time_past_the_year_10000_falls_back_to_the_record_time(void **state)
{
    (void)state;
    uint8_t *b;
    size_t n = visit(INT64_MAX, 1, &b);
    assert_int_equal(ka_wire_occurred_at_ms(b, n), INT64_MAX);
    ka_msg_t m = {.payload = b, .len = n, .timestamp_ms = 1234};
    assert_int_equal(ka_event_time_ms(&m, 99), 1234);
    free(b);
    n = visit(KA_EVENT_TIME_LIMIT_MS - 1, 1, &b);
    m.payload = b, m.len = n;
    assert_int_equal(ka_event_time_ms(&m, 99), KA_EVENT_TIME_LIMIT_MS - 1);
    free(b);
}

static void the_window_takes_up_to_its_age_and_no_older(void **state)
{
    (void)state;
    ka_reject_t rej;
    int64_t now = 1765000000000LL, age = 393 * DAY_MS;
    assert_int_equal(ka_check_dedupe_window(&rej, now - age, now, age), KA_OK);
    assert_int_equal(ka_check_dedupe_window(&rej, now + DAY_MS, now, age), KA_OK);
    assert_int_equal(ka_check_dedupe_window(&rej, now - age - 1, now, age), KA_ERR_INVALID);
    assert_string_equal(rej.reason, "outside_dedupe_window");
    assert_non_null(strstr(rej.detail, "393 days"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_the_header_time_of_any_input),
        cmocka_unit_test(no_header_or_bad_bytes_fall_back_to_the_record_time),
        cmocka_unit_test(a_time_past_the_year_10000_falls_back_to_the_record_time),
        cmocka_unit_test(the_window_takes_up_to_its_age_and_no_older),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
