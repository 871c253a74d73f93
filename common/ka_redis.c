#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ka_metrics.h"
#include "ka_redis.h"

struct ka_redis {
    redisContext *ctx;
    char *host;
    int port;
    int timeout_ms;
    char *user;     /* NULL: the default user */
    char *password; /* NULL: no AUTH */
    int queued;
};

/* Round trips, into the process's registry: a command, or a pipeline from
 * its first write to its last reply. */
static ka_series_t *rtt;
static pthread_once_t rtt_once = PTHREAD_ONCE_INIT;

static void rtt_init(void)
{
    rtt = ka_metrics_series(
        ka_metrics_histogram(ka_metrics_global(), "ka_redis_round_trip_seconds",
                             "Redis round trips: a command, or a pipeline from its first write "
                             "to its last reply",
                             NULL, KA_METRICS_RTT_BUCKETS, KA_METRICS_RTT_NBUCKETS),
        NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* AUTH right after connecting: a new connection (first or re-opened) is
 * unauthenticated. The password goes as an argument, never into a message. */
static int authenticate(redisContext *ctx, const char *user, const char *password, char *errstr,
                        size_t errlen)
{
    const char *argv[3] = {"AUTH", user ? user : password, password};
    int argc = user ? 3 : 2;
    redisReply *reply = redisCommandArgv(ctx, argc, argv, NULL);
    if (!reply) {
        snprintf(errstr, errlen, "Redis AUTH failed: %s", ctx->errstr);
        return -1;
    }
    int ok = reply->type != REDIS_REPLY_ERROR;
    if (!ok)
        snprintf(errstr, errlen, "Redis refused AUTH%s%s (check KA_REDIS_USERNAME / "
                 "KA_REDIS_PASSWORD): %s", user ? " of user " : "", user ? user : "", reply->str);
    freeReplyObject(reply);
    return ok ? 0 : -1;
}

static redisContext *open_ctx(const ka_redis_t *rds, char *errstr, size_t errlen)
{
    struct timeval tv = {rds->timeout_ms / 1000, (rds->timeout_ms % 1000) * 1000};
    redisContext *ctx = redisConnectWithTimeout(rds->host, rds->port, tv);
    if (!ctx || ctx->err) {
        snprintf(errstr, errlen, "could not connect to Redis at %s:%d: %s", rds->host, rds->port,
                 ctx ? ctx->errstr : "out of memory");
        if (ctx)
            redisFree(ctx);
        return NULL;
    }
    redisSetTimeout(ctx, tv);
    if (rds->password && authenticate(ctx, rds->user, rds->password, errstr, errlen) != 0) {
        redisFree(ctx);
        return NULL;
    }
    return ctx;
}

ka_redis_t *ka_redis_connect_auth(const char *host, int port, int timeout_ms, const char *user,
                                  const char *password, char *errstr, size_t errlen)
{
    pthread_once(&rtt_once, rtt_init);
    ka_redis_t *rds = ka_calloc(1, sizeof *rds);
    rds->host = ka_strdup(host);
    rds->port = port;
    rds->timeout_ms = timeout_ms;
    rds->user = user && *user ? ka_strdup(user) : NULL;
    rds->password = password && *password ? ka_strdup(password) : NULL;
    rds->ctx = open_ctx(rds, errstr, errlen);
    if (!rds->ctx) {
        ka_redis_free(rds);
        return NULL;
    }
    return rds;
}

ka_redis_t *ka_redis_connect(const char *host, int port, int timeout_ms, char *errstr,
                             size_t errlen)
{
    return ka_redis_connect_auth(host, port, timeout_ms, NULL, NULL, errstr, errlen);
}

ka_redis_t *ka_redis_connect_config(const ka_config_t *cfg, int timeout_ms, char *errstr,
                                    size_t errlen)
{
    return ka_redis_connect_auth(ka_config_str(cfg, "KA_REDIS_HOST"),
                                 (int)ka_config_int(cfg, "KA_REDIS_PORT"), timeout_ms,
                                 ka_config_str(cfg, "KA_REDIS_USERNAME"),
                                 ka_config_str(cfg, "KA_REDIS_PASSWORD"), errstr, errlen);
}

void ka_redis_free(ka_redis_t *rds)
{
    if (!rds)
        return;
    if (rds->ctx)
        redisFree(rds->ctx);
    free(rds->host);
    free(rds->user);
    if (rds->password)
        memset(rds->password, 0, strlen(rds->password));
    free(rds->password);
    free(rds);
}

/* Re-opens a broken connection; queued commands die with the old one. */
static int ensure(ka_redis_t *rds, char *errstr, size_t errlen)
{
    if (rds->ctx && !rds->ctx->err)
        return 0;
    if (rds->ctx)
        redisFree(rds->ctx);
    rds->queued = 0;
    rds->ctx = open_ctx(rds, errstr, errlen);
    return rds->ctx ? 0 : -1;
}

void ka_redis_append(ka_redis_t *rds, int argc, const char **argv, const size_t *argvlen)
{
    char err[256];
    if (ensure(rds, err, sizeof err) != 0)
        return; /* the flush reports the failure */
    if (redisAppendCommandArgv(rds->ctx, argc, argv, argvlen) == REDIS_OK)
        rds->queued++;
}

void ka_redis_append_str(ka_redis_t *rds, int argc, const char **argv)
{
    size_t lens[32];
    if (argc > 32)
        return;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    ka_redis_append(rds, argc, argv, lens);
}

ka_err_t ka_redis_flush(ka_redis_t *rds, char *errstr, size_t errlen)
{
    ka_err_t rc = KA_OK;
    if (ensure(rds, errstr, errlen) != 0)
        return KA_ERR_RETRY;
    double t0 = now_s();
    int any = rds->queued > 0;
    while (rds->queued > 0) {
        redisReply *reply = NULL;
        if (redisGetReply(rds->ctx, (void **)&reply) != REDIS_OK) {
            snprintf(errstr, errlen, "Redis connection failed: %s", rds->ctx->errstr);
            rds->queued = 0;
            return KA_ERR_RETRY;
        }
        rds->queued--;
        if (reply && reply->type == REDIS_REPLY_ERROR && rc == KA_OK) {
            snprintf(errstr, errlen, "Redis refused a command: %s", reply->str);
            rc = KA_ERR;
        }
        freeReplyObject(reply);
    }
    if (any)
        ka_metrics_observe(rtt, now_s() - t0);
    return rc;
}

static redisReply *command(ka_redis_t *rds, char *errstr, size_t errlen, int argc,
                           const char **argv)
{
    size_t lens[8];
    redisReply *reply;
    if (ensure(rds, errstr, errlen) != 0)
        return NULL;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    double t0 = now_s();
    reply = redisCommandArgv(rds->ctx, argc, argv, lens);
    if (reply)
        ka_metrics_observe(rtt, now_s() - t0);
    if (!reply) {
        snprintf(errstr, errlen, "Redis connection failed: %s", rds->ctx->errstr);
        return NULL;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errlen, "Redis refused %s: %s", argv[0], reply->str);
        freeReplyObject(reply);
        return NULL;
    }
    return reply;
}

ka_err_t ka_redis_get(ka_redis_t *rds, const char *key, char **out, size_t *len, char *errstr,
                      size_t errlen)
{
    const char *argv[] = {"GET", key};
    redisReply *reply = command(rds, errstr, errlen, 2, argv);
    *out = NULL;
    if (len)
        *len = 0;
    if (!reply)
        return rds->ctx && !rds->ctx->err ? KA_ERR : KA_ERR_RETRY;
    if (reply->type == REDIS_REPLY_STRING) {
        *out = ka_strndup(reply->str, reply->len);
        if (len)
            *len = reply->len;
    }
    freeReplyObject(reply);
    return KA_OK;
}

ka_err_t ka_redis_hgetall(ka_redis_t *rds, const char *key,
                          void (*cb)(void *ud, const char *field, const char *value), void *ud,
                          char *errstr, size_t errlen)
{
    const char *argv[] = {"HGETALL", key};
    redisReply *reply = command(rds, errstr, errlen, 2, argv);
    if (!reply)
        return rds->ctx && !rds->ctx->err ? KA_ERR : KA_ERR_RETRY;
    for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i + 1 < reply->elements; i += 2)
        cb(ud, reply->element[i]->str, reply->element[i + 1]->str);
    freeReplyObject(reply);
    return KA_OK;
}

ka_err_t ka_redis_zscore(ka_redis_t *rds, const char *key, const char *member, double *score,
                         int *found, char *errstr, size_t errlen)
{
    const char *argv[] = {"ZSCORE", key, member};
    redisReply *reply = command(rds, errstr, errlen, 3, argv);
    *found = 0;
    *score = 0;
    if (!reply)
        return rds->ctx && !rds->ctx->err ? KA_ERR : KA_ERR_RETRY;
    if (reply->type == REDIS_REPLY_STRING) {
        *score = strtod(reply->str, NULL);
        *found = 1;
    }
    freeReplyObject(reply);
    return KA_OK;
}
