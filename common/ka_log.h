#ifndef KA_LOG_H
#define KA_LOG_H

/* Structured JSON-lines logging to stderr: one object per line with the
 * stable fields ts, level, service, msg, then the caller's fields. */
typedef enum ka_log_level {
    KA_LOG_DEBUG = 0,
    KA_LOG_INFO,
    KA_LOG_WARN,
    KA_LOG_ERROR,
} ka_log_level_t;

/* Sets the service name and least severe level printed ("debug", "info",
 * "warn", "error"; anything else keeps the current level). */
void ka_log_init(const char *service, const char *level);

/* Logs msg with extra fields described by a jansson pack format of an object,
 * e.g. ka_log(KA_LOG_INFO, "batch committed", "{s:s,s:i}", "topic", t,
 * "events", n). `fmt` may be NULL for no fields. A bad format logs the message
 * alone rather than nothing. */
void ka_log(ka_log_level_t level, const char *msg, const char *fmt, ...);

int ka_log_enabled(ka_log_level_t level);

#endif
