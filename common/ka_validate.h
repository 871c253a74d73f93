#ifndef KA_VALIDATE_H
#define KA_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "ka_err.h"

/* Input validation (DOMAIN.md section 8). Every check returns KA_OK or
 * KA_ERR_INVALID with `rej` filled: a stable reason code for metrics and the
 * dead-letter header, and a detail text for people. */
#define KA_REJECT_PATH_MAX 160

typedef struct ka_reject {
    char reason[48];
    char detail[256];
    /* How the event came (ka_content_mode_name: "protobuf", "json", ...)
     * and, for a value of a JSON document, its JSON path ("$.lines[2].sku");
     * set by ka_input_decode, "" otherwise. The dead letter records both. */
    char mode[16];
    char path[KA_REJECT_PATH_MAX];
} ka_reject_t;

/* Reason codes. */
#define KA_REASON_DECODE "decode_failed"
#define KA_REASON_MISSING "missing_field"
#define KA_REASON_TOO_LONG "field_too_long"
#define KA_REASON_BAD_ID "invalid_id"
#define KA_REASON_UTF8 "invalid_utf8"
#define KA_REASON_NUL "nul_in_string" /* a NUL byte inside a protobuf string field */
#define KA_REASON_TIME "time_out_of_range"
#define KA_REASON_AMOUNT "amount_out_of_range"
#define KA_REASON_ENUM "unknown_enum_value"
#define KA_REASON_LIST "list_too_long"
#define KA_REASON_ACCOUNT "unresolvable_account"
#define KA_REASON_CREDIT_CODE "invalid_credit_code"
#define KA_REASON_UNKNOWN_STAGE "unknown_stage"
#define KA_REASON_UNKNOWN_OPPORTUNITY "unknown_opportunity"
#define KA_REASON_UNAUTHORIZED "unauthorized_owner_change"
#define KA_REASON_UNAUTHORIZED_ADJUSTMENT "unauthorized_adjustment"
/* 商机确认: a forecast confirmation by anyone but the current owner, or by no one. */
#define KA_REASON_NOT_OWNER "not_owner"
#define KA_REASON_MISSING_ACTOR "missing_actor"
#define KA_REASON_APPLY "apply_failed"

/* Bounds shared by every worker. */
#define KA_MAX_ID_LEN 64
#define KA_MAX_TEXT_LEN 2000
#define KA_MAX_LIST_LEN 200
#define KA_MAX_AMOUNT_MINOR 100000000000000LL /* 10^12 major units at 2 decimals */
#define KA_MIN_TIME_MS 946684800000LL         /* 2000-01-01: older is a unit bug */
#define KA_MAX_FUTURE_MS (366LL * 86400000LL) /* plans may look a year ahead */

/* Fills rej; always returns KA_ERR_INVALID so checks can `return` it. */
ka_err_t ka_reject(ka_reject_t *rej, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Non-zero when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF) and holds no NUL. */
int ka_utf8_valid(const char *s, size_t len);

/* A required id: present, at most `max` bytes, printable ASCII without
 * spaces (ids travel in Kafka keys, Redis keys and logs). */
ka_err_t ka_check_id(ka_reject_t *rej, const char *field, const char *value, size_t max);

/* An optional id: NULL or "" passes; otherwise as ka_check_id. */
ka_err_t ka_check_optional_id(ka_reject_t *rej, const char *field, const char *value, size_t max);

/* Free text: NULL passes; valid UTF-8 of at most `max` bytes. */
ka_err_t ka_check_text(ka_reject_t *rej, const char *field, const char *value, size_t max);

/* A time in ms since the epoch between 2000-01-01 and now + max_future_ms. */
ka_err_t ka_check_time(ka_reject_t *rej, const char *field, int64_t ms, int64_t now_ms,
                       int64_t max_future_ms);

/* An amount in minor units within 0..max. */
ka_err_t ka_check_amount(ka_reject_t *rej, const char *field, int64_t value, int64_t max);

/* A list length within 0..max. */
ka_err_t ka_check_count(ka_reject_t *rej, const char *field, size_t n, size_t max);

/* Milliseconds since the epoch: the real-time clock plus the process's clock
 * offset (KA_CLOCK_OFFSET_MS, 0 in production), which lets drills and tests
 * run time-driven rules (overdue follow-ups, stalls) without waiting days. */
int64_t ka_now_ms(void);
void ka_clock_set_offset_ms(int64_t offset_ms);

/* Parses "YYYY-MM-DD" strictly (a real calendar date, years 2000..2200).
 * Returns 0 or -1. */
int ka_parse_date(const char *s, int *y, int *m, int *d);

/* Midnight UTC of a calendar date, in milliseconds since the epoch. */
int64_t ka_date_to_ms(int y, int m, int d);

#endif
