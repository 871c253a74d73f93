#ifndef KA_BUF_H
#define KA_BUF_H

#include <stddef.h>

/* A growable byte buffer, always NUL-terminated so it can be used as a C
 * string. Zero-initialise it (KA_BUF_INIT); free with ka_buf_free(). */
typedef struct ka_buf {
    char *data;
    size_t len;
    size_t cap;
} ka_buf_t;

#define KA_BUF_INIT {NULL, 0, 0}

void ka_buf_append(ka_buf_t *b, const void *data, size_t len);
void ka_buf_puts(ka_buf_t *b, const char *s);
void ka_buf_printf(ka_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ka_buf_reset(ka_buf_t *b);
/* No operation is performed on an empty buffer. */
void ka_buf_free(ka_buf_t *b);
/* The contents as a string; "" for a buffer never written. Valid until the
 * next write. */
const char *ka_buf_str(const ka_buf_t *b);

/* PostgreSQL array literals, so a whole batch travels as one parameter:
 * ka_buf_array_begin, then ka_buf_array_add (NULL adds SQL NULL) per element,
 * then ka_buf_array_end. Elements are always quoted and escaped. */
void ka_buf_array_begin(ka_buf_t *b);
void ka_buf_array_add(ka_buf_t *b, const char *elem);
void ka_buf_array_add_int(ka_buf_t *b, long long v);
void ka_buf_array_end(ka_buf_t *b);

#endif
