#ifndef KA_CONFIG_H
#define KA_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "ka_err.h"

/* Configuration: every key has a documented default (ka_config.c holds the
 * table). Values come from, in increasing precedence: the defaults, the
 * process environment, and a KEY=VALUE file named by KA_CONFIG_FILE (or
 * passed explicitly), so an operator can pin a deployment's values in one
 * reviewed file. Every value is validated at load time. Passwords may also
 * come from a file named by <KEY>_FILE (a mounted secret) and are never
 * shown by the summary or in error messages. */
typedef struct ka_config ka_config_t;

/* Loads the configuration of `service` (used for the defaults of the
 * consumer group and the CloudEvents source). `file` may be NULL: then
 * KA_CONFIG_FILE is used when set. Returns NULL and fills errstr on a bad
 * value, an unknown key in the file or an unreadable file. Free with
 * ka_config_free(). */
ka_config_t *ka_config_load(const char *service, const char *file, char *errstr, size_t errlen);

/* Same, but from an explicit environment array (tests) instead of environ. */
ka_config_t *ka_config_load_env(const char *service, const char *file, char *const *env,
                                char *errstr, size_t errlen);

/* No operation is performed if cfg is NULL. */
void ka_config_free(ka_config_t *cfg);

/* The value of a known key; never NULL. The string lives as long as cfg.
 * Asking for a key that is not in the table is a programming error. */
const char *ka_config_str(const ka_config_t *cfg, const char *key);

/* The value of a known integer key, already range-checked at load. */
long long ka_config_int(const ka_config_t *cfg, const char *key);

/* The service name given at load. */
const char *ka_config_service(const ka_config_t *cfg);

/* Sets a value after load (tests, command-line flags); validated like a
 * loaded one. Returns KA_ERR_CONFIG and fills errstr when invalid. */
ka_err_t ka_config_set(ka_config_t *cfg, const char *key, const char *value, char *errstr,
                       size_t errlen);

/* The librdkafka properties given as KA_KAFKA_PROPERTY_<NAME> (passed to
 * every Kafka client as they are), one per i from 0: returns 0 past the last. */
int ka_config_kafka_property(const ka_config_t *cfg, size_t i, const char **name,
                             const char **value);

/* Non-zero when a librdkafka property's value must not be shown (its name
 * says password, secret, key, token or jaas). */
int ka_config_is_secret_property(const char *name);

/* The settings that differ from their defaults, as one line of KEY="VALUE"
 * for the start-up log: passwords show as ***, and so does the password of a
 * connection string. Free the result. */
char *ka_config_summary(const ka_config_t *cfg);

/* A copy of a libpq connection string (keyword=value or URI) with its
 * password replaced by ***. Free the result. */
char *ka_config_redact_dsn(const char *dsn);

/* Writes the table of keys, defaults and descriptions as markdown. */
void ka_config_describe(FILE *out);

#endif
