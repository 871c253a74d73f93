#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka_buf.h"
#include "ka_err.h"

static void reserve(ka_buf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = ka_realloc(b->data, cap);
    b->cap = cap;
}

void ka_buf_append(ka_buf_t *b, const void *data, size_t len)
{
    reserve(b, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void ka_buf_puts(ka_buf_t *b, const char *s)
{
    ka_buf_append(b, s, strlen(s));
}

void ka_buf_printf(ka_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void ka_buf_reset(ka_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void ka_buf_free(ka_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

const char *ka_buf_str(const ka_buf_t *b)
{
    return b->data ? b->data : "";
}

void ka_buf_array_begin(ka_buf_t *b)
{
    ka_buf_reset(b);
    ka_buf_append(b, "{", 1);
}

void ka_buf_array_add(ka_buf_t *b, const char *elem)
{
    if (b->len > 1)
        ka_buf_append(b, ",", 1);
    if (!elem) {
        ka_buf_puts(b, "NULL");
        return;
    }
    ka_buf_append(b, "\"", 1);
    for (const char *p = elem; *p; p++) {
        if (*p == '"' || *p == '\\')
            ka_buf_append(b, "\\", 1);
        ka_buf_append(b, p, 1);
    }
    ka_buf_append(b, "\"", 1);
}

void ka_buf_array_add_int(ka_buf_t *b, long long v)
{
    char num[32];
    snprintf(num, sizeof num, "%lld", v);
    ka_buf_array_add(b, num);
}

void ka_buf_array_end(ka_buf_t *b)
{
    ka_buf_append(b, "}", 1);
}
