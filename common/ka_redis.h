#ifndef KA_REDIS_H
#define KA_REDIS_H

#include <stddef.h>

#include "ka_config.h"
#include "ka_err.h"

/* Redis access (the real-time cache). Only ka_redis.c includes hiredis. A
 * ka_redis_t is one connection; it is not thread-safe. Writes are pipelined:
 * append any number of commands, then one flush reads every reply. A broken
 * connection is re-opened by the next call. */
typedef struct ka_redis ka_redis_t;

/* Connects without authenticating; returns NULL and fills errstr on failure. */
ka_redis_t *ka_redis_connect(const char *host, int port, int timeout_ms, char *errstr,
                             size_t errlen);

/* Connects and, when `password` is non-empty, sends AUTH (with `user` when
 * non-empty: an ACL user) on this and every re-opened connection. A refused
 * AUTH fails the connect with a message that never contains the password. */
ka_redis_t *ka_redis_connect_auth(const char *host, int port, int timeout_ms, const char *user,
                                  const char *password, char *errstr, size_t errlen);

/* ka_redis_connect_auth with KA_REDIS_HOST, _PORT, _USERNAME, _PASSWORD. */
ka_redis_t *ka_redis_connect_config(const ka_config_t *cfg, int timeout_ms, char *errstr,
                                    size_t errlen);

/* No operation is performed if rds is NULL. */
void ka_redis_free(ka_redis_t *rds);

/* Queues one command (binary-safe arguments). */
void ka_redis_append(ka_redis_t *rds, int argc, const char **argv, const size_t *argvlen);

/* Queues one command of NUL-terminated string arguments. */
void ka_redis_append_str(ka_redis_t *rds, int argc, const char **argv);

/* Sends the queued commands and reads all their replies. Returns KA_OK,
 * KA_ERR_RETRY when the connection failed (the queue is dropped; the caller
 * rewrites absolute values later), or KA_ERR when a command was refused. */
ka_err_t ka_redis_flush(ka_redis_t *rds, char *errstr, size_t errlen);

/* GET: *out receives a malloc'd copy (NUL-terminated; free() it) or NULL when
 * the key does not exist. */
ka_err_t ka_redis_get(ka_redis_t *rds, const char *key, char **out, size_t *len, char *errstr,
                      size_t errlen);

/* HGETALL: calls cb for each field; the strings live during the call only. */
ka_err_t ka_redis_hgetall(ka_redis_t *rds, const char *key,
                          void (*cb)(void *ud, const char *field, const char *value), void *ud,
                          char *errstr, size_t errlen);

/* ZSCORE: *found is 0 when the member (or the key) does not exist. */
ka_err_t ka_redis_zscore(ka_redis_t *rds, const char *key, const char *member, double *score,
                         int *found, char *errstr, size_t errlen);

#endif
