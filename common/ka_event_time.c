#include <stdio.h>
#include <stdlib.h>

#include "ka_event_time.h"
#include "ka_wire.h"

/* Walks one message level (the header's when header_level) for occurred_at_ms.
 * Returns -1 on bad bytes. */
static int scan(const uint8_t *buf, size_t len, int64_t *at, int header_level)
{
    ka_wire_field_t f;
    size_t pos = 0;
    int got;
    while ((got = ka_wire_next(buf, len, &pos, &f)) > 0) {
        if (header_level && f.tag == 2 && f.wire == KA_WIRE_VARINT)
            *at = (int64_t)f.value;
        else if (!header_level && f.tag == 1 && f.body && scan(f.body, f.body_len, at, 1) < 0)
            return -1;
    }
    return got;
}

int64_t ka_wire_occurred_at_ms(const void *payload, size_t len)
{
    int64_t at = -1;
    if (!payload || scan(payload, len, &at, 0) < 0)
        return -1;
    return at;
}

int64_t ka_event_time_ms(const ka_msg_t *m, int64_t now_ms)
{
    int64_t at = ka_wire_occurred_at_ms(m->payload, m->len);
    /* Up to the year 10000 is a time PostgreSQL holds; a wilder one is the
     * validators' to refuse (time_out_of_range), not the partition key. */
    if (at >= 0 && at < KA_EVENT_TIME_LIMIT_MS)
        return at;
    if (m->timestamp_ms >= 0)
        return m->timestamp_ms;
    return now_ms;
}

static int read_age(void *ud, const ka_pgres_t *res)
{
    if (ka_pgres_rows(res) != 1)
        return -1;
    *(int64_t *)ud = strtoll(ka_pgres_value(res, 0, 0), NULL, 10);
    return 0;
}

ka_err_t ka_dedupe_window_load(ka_pg_t *pg, int64_t *max_age_ms, char *errstr, size_t errlen)
{
    *max_age_ms = -1;
    ka_err_t rc = ka_pg_query(pg, "SELECT ka_retention_max_event_age_ms()", 0, NULL, read_age,
                              max_age_ms, errstr, errlen);
    if (rc == KA_OK && *max_age_ms <= 0) {
        snprintf(errstr, errlen, "the retention policy leaves no dedupe window");
        return KA_ERR;
    }
    return rc;
}

ka_err_t ka_check_dedupe_window(ka_reject_t *rej, int64_t at_ms, int64_t now_ms,
                                int64_t max_age_ms)
{
    if (at_ms >= now_ms - max_age_ms)
        return KA_OK;
    return ka_reject(rej, KA_REASON_DEDUPE_WINDOW,
                     "event time %lld ms is %lld days old, past the %lld days a replay of it "
                     "would still be recognised (retention of processed_event minus the input "
                     "topics' retention, docs/retention.md)",
                     (long long)at_ms, (long long)((now_ms - at_ms) / 86400000LL),
                     (long long)(max_age_ms / 86400000LL));
}
