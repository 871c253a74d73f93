#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ka_log.h"

static char log_service[64] = "ka";
static ka_log_level_t log_min = KA_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void ka_log_init(const char *service, const char *level)
{
    if (service)
        snprintf(log_service, sizeof log_service, "%s", service);
    for (int i = 0; level && i < 4; i++)
        if (strcmp(level, level_names[i]) == 0)
            log_min = (ka_log_level_t)i;
}

int ka_log_enabled(ka_log_level_t level)
{
    return level >= log_min;
}

void ka_log(ka_log_level_t level, const char *msg, const char *fmt, ...)
{
    struct timespec ts;
    struct tm tm;
    char stamp[40];
    json_t *obj = NULL;

    if (level < log_min)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, sizeof stamp - n, ".%03ldZ", ts.tv_nsec / 1000000);

    if (fmt) {
        va_list ap;
        json_error_t jerr;
        va_start(ap, fmt);
        obj = json_vpack_ex(&jerr, 0, fmt, ap);
        va_end(ap);
    }
    json_t *line = json_pack("{s:s,s:s,s:s,s:s}", "ts", stamp, "level", level_names[level],
                             "service", log_service, "msg", msg ? msg : "");
    if (!line)
        return;
    if (obj && json_is_object(obj))
        json_object_update_missing(line, obj);
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text) {
        pthread_mutex_lock(&log_lock);
        fputs(text, stderr);
        fputc('\n', stderr);
        fflush(stderr);
        pthread_mutex_unlock(&log_lock);
        free(text);
    }
    json_decref(obj);
    json_decref(line);
}
