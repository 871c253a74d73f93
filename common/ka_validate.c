#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ka_validate.h"

ka_err_t ka_reject(ka_reject_t *rej, const char *reason, const char *fmt, ...)
{
    va_list ap;
    snprintf(rej->reason, sizeof rej->reason, "%s", reason);
    va_start(ap, fmt);
    vsnprintf(rej->detail, sizeof rej->detail, fmt, ap);
    va_end(ap);
    return KA_ERR_INVALID;
}

int ka_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned cp;
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + n >= len)
            return 0; /* truncated sequence */
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000))
            return 0; /* overlong */
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

ka_err_t ka_check_id(ka_reject_t *rej, const char *field, const char *value, size_t max)
{
    if (!value || !*value)
        return ka_reject(rej, KA_REASON_MISSING, "%s is required", field);
    size_t len = strlen(value);
    if (len > max)
        return ka_reject(rej, KA_REASON_TOO_LONG, "%s is %zu bytes, at most %zu allowed", field,
                         len, max);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c <= 0x20 || c >= 0x7F)
            return ka_reject(rej, KA_REASON_BAD_ID,
                             "%s must be printable ASCII without spaces (byte %zu is 0x%02x)",
                             field, i, c);
    }
    return KA_OK;
}

ka_err_t ka_check_optional_id(ka_reject_t *rej, const char *field, const char *value, size_t max)
{
    if (!value || !*value)
        return KA_OK;
    return ka_check_id(rej, field, value, max);
}

ka_err_t ka_check_text(ka_reject_t *rej, const char *field, const char *value, size_t max)
{
    if (!value)
        return KA_OK;
    size_t len = strlen(value);
    if (len > max)
        return ka_reject(rej, KA_REASON_TOO_LONG, "%s is %zu bytes, at most %zu allowed", field,
                         len, max);
    if (!ka_utf8_valid(value, len))
        return ka_reject(rej, KA_REASON_UTF8, "%s is not valid UTF-8", field);
    return KA_OK;
}

ka_err_t ka_check_time(ka_reject_t *rej, const char *field, int64_t ms, int64_t now_ms,
                       int64_t max_future_ms)
{
    if (ms == 0)
        return ka_reject(rej, KA_REASON_MISSING, "%s is required", field);
    if (ms < KA_MIN_TIME_MS || ms > now_ms + max_future_ms)
        return ka_reject(rej, KA_REASON_TIME,
                         "%s=%lld ms is outside 2000-01-01 .. now+%lld days (milliseconds since "
                         "the epoch expected)",
                         field, (long long)ms, (long long)(max_future_ms / 86400000LL));
    return KA_OK;
}

ka_err_t ka_check_amount(ka_reject_t *rej, const char *field, int64_t value, int64_t max)
{
    if (value < 0 || value > max)
        return ka_reject(rej, KA_REASON_AMOUNT, "%s=%lld is outside 0..%lld", field,
                         (long long)value, (long long)max);
    return KA_OK;
}

ka_err_t ka_check_count(ka_reject_t *rej, const char *field, size_t n, size_t max)
{
    if (n > max)
        return ka_reject(rej, KA_REASON_LIST, "%s has %zu entries, at most %zu allowed", field, n,
                         max);
    return KA_OK;
}

static int64_t clock_offset_ms;

void ka_clock_set_offset_ms(int64_t offset_ms)
{
    clock_offset_ms = offset_ms;
}

int64_t ka_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + clock_offset_ms;
}

int ka_parse_date(const char *s, int *y, int *m, int *d)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int yy, mm, dd, n = 0;
    if (!s || strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%n", &yy, &mm, &dd, &n) != 3 || n != 10)
        return -1;
    if (s[4] != '-' || s[7] != '-' || yy < 2000 || yy > 2200 || mm < 1 || mm > 12 || dd < 1)
        return -1;
    int leap = (yy % 4 == 0 && yy % 100 != 0) || yy % 400 == 0;
    if (dd > mdays[mm - 1] + (mm == 2 && leap))
        return -1;
    *y = yy;
    *m = mm;
    *d = dd;
    return 0;
}

/* Howard Hinnant's days_from_civil: exact for the proleptic Gregorian
 * calendar, no time zone involved. */
int64_t ka_date_to_ms(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (era * 146097 + doe - 719468) * 86400000LL;
}
