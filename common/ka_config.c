#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ka_buf.h"
#include "ka_config.h"

extern char **environ;

typedef enum { KEY_STR, KEY_INT, KEY_ENUM } key_kind_t;

typedef struct key_def {
    const char *name;
    key_kind_t kind;
    const char *def; /* NULL: derived from the service name */
    long long min, max;
    const char *choices; /* KEY_ENUM: '|'-separated */
    const char *doc;
    unsigned flags; /* KF_* */
} key_def_t;

#define KF_OPTIONAL 1u /* may be empty; the default is empty (unset) */
#define KF_SECRET 2u   /* never shown */
#define KF_DSN 4u      /* a libpq connection string: its password is never shown */
#define KF_FILE 8u     /* <KEY>_FILE: names a file whose content becomes <KEY> */

/* librdkafka properties passed through unchecked, from KA_KAFKA_PROPERTY_*. */
#define PROPERTY_PREFIX "KA_KAFKA_PROPERTY_"
#define FILE_SUFFIX "_FILE"

static const key_def_t keys[] = {
    {"KA_KAFKA_BROKERS", KEY_STR, "127.0.0.1:19092", 0, 0, NULL,
     "Kafka bootstrap servers (host:port, comma-separated)", 0},
    {"KA_KAFKA_SECURITY_PROTOCOL", KEY_ENUM, "plaintext", 0, 0,
     "plaintext|ssl|sasl_plaintext|sasl_ssl", "how clients talk to the brokers", 0},
    {"KA_KAFKA_SASL_MECHANISM", KEY_ENUM, "PLAIN", 0, 0, "PLAIN|SCRAM-SHA-256|SCRAM-SHA-512",
     "SASL mechanism (sasl_* protocols)", 0},
    {"KA_KAFKA_SASL_USERNAME", KEY_STR, "", 0, 0, NULL, "SASL user name (sasl_* protocols)",
     KF_OPTIONAL},
    {"KA_KAFKA_SASL_PASSWORD", KEY_STR, "", 0, 0, NULL, "SASL password", KF_OPTIONAL | KF_SECRET},
    {"KA_KAFKA_SASL_PASSWORD_FILE", KEY_STR, "", 0, 0, NULL,
     "a file holding KA_KAFKA_SASL_PASSWORD (a mounted secret)", KF_OPTIONAL | KF_FILE},
    {"KA_KAFKA_SSL_CA_LOCATION", KEY_STR, "", 0, 0, NULL,
     "PEM file of the CA that signed the brokers' certificates (ssl, sasl_ssl; default: the "
     "system's CAs)", KF_OPTIONAL},
    {"KA_KAFKA_SSL_CERTIFICATE_LOCATION", KEY_STR, "", 0, 0, NULL,
     "PEM client certificate, for brokers that require TLS client authentication", KF_OPTIONAL},
    {"KA_KAFKA_SSL_KEY_LOCATION", KEY_STR, "", 0, 0, NULL, "PEM private key of the client certificate",
     KF_OPTIONAL},
    {"KA_KAFKA_SSL_KEY_PASSWORD", KEY_STR, "", 0, 0, NULL, "password of the client key",
     KF_OPTIONAL | KF_SECRET},
    {"KA_KAFKA_SSL_KEY_PASSWORD_FILE", KEY_STR, "", 0, 0, NULL,
     "a file holding KA_KAFKA_SSL_KEY_PASSWORD", KF_OPTIONAL | KF_FILE},
    {"KA_KAFKA_SSL_ENDPOINT_IDENTIFICATION", KEY_ENUM, "https", 0, 0, "https|none",
     "check the broker's certificate names its host (https) or not (none)", 0},
    {"KA_PG_DSN", KEY_STR, "host=127.0.0.1 port=15432 dbname=ka user=ka", 0, 0, NULL,
     "libpq connection string of the store of record (each worker its own user, "
     "docs/security.md)", KF_DSN},
    {"KA_PG_PASSWORD", KEY_STR, "", 0, 0, NULL,
     "password of the KA_PG_DSN user, added to the DSN (libpq's passfile works too)",
     KF_OPTIONAL | KF_SECRET},
    {"KA_PG_PASSWORD_FILE", KEY_STR, "", 0, 0, NULL, "a file holding KA_PG_PASSWORD",
     KF_OPTIONAL | KF_FILE},
    {"KA_REDIS_HOST", KEY_STR, "127.0.0.1", 0, 0, NULL, "Redis host of the real-time cache", 0},
    {"KA_REDIS_PORT", KEY_INT, "16379", 1, 65535, NULL, "Redis port", 0},
    {"KA_REDIS_USERNAME", KEY_STR, "", 0, 0, NULL, "Redis ACL user (default: the default user)",
     KF_OPTIONAL},
    {"KA_REDIS_PASSWORD", KEY_STR, "", 0, 0, NULL, "Redis password (AUTH on every connect)",
     KF_OPTIONAL | KF_SECRET},
    {"KA_REDIS_PASSWORD_FILE", KEY_STR, "", 0, 0, NULL, "a file holding KA_REDIS_PASSWORD",
     KF_OPTIONAL | KF_FILE},
    {"KA_REDIS_TIMEOUT_MS", KEY_INT, "2000", 10, 600000, NULL,
     "Redis connect and command timeout", 0},
    {"KA_CONSUMER_GROUP", KEY_STR, NULL, 0, 0, NULL,
     "Kafka consumer group and offset-store key (default: ka-<service>)", 0},
    {"KA_START_OFFSET", KEY_ENUM, "earliest", 0, 0, "earliest|latest",
     "where a partition with no stored offset starts", 0},
    {"KA_BATCH_MAX_EVENTS", KEY_INT, "2000", 1, 100000, NULL,
     "most events applied in one PostgreSQL transaction", 0},
    {"KA_BATCH_MAX_MS", KEY_INT, "20", 1, 60000, NULL,
     "longest a batch waits to fill before it is applied", 0},
    {"KA_RETRY_MAX_MS", KEY_INT, "10000", 10, 600000, NULL,
     "cap of the exponential back-off when a server is down", 0},
    {"KA_OUTBOX_BATCH", KEY_INT, "500", 1, 100000, NULL,
     "most outbox rows the relay publishes per round", 0},
    {"KA_PG_IDLE_IN_TRANSACTION_MS", KEY_INT, "60000", 0, 3600000, NULL,
     "how long a worker's PostgreSQL session may stay idle inside a transaction (its process "
     "paused or frozen) before PostgreSQL ends it and releases its locks (0: never)", 0},
    {"KA_OUTBOX_LEADER_IDLE_MS", KEY_INT, "30000", 1000, 3600000, NULL,
     "how long the publishing relay may stay silent (its process paused or frozen) before "
     "PostgreSQL ends its session and another instance takes over publishing", 0},
    {"KA_KAFKA_MESSAGE_TIMEOUT_MS", KEY_INT, "30000", 1000, 900000, NULL,
     "how long the outbox relay tries to deliver a message before it counts as failed and is "
     "sent again later", 0},
    {"KA_HEALTH_WARNING_BP", KEY_INT, "7000", 1, 10000, NULL,
     "funnel health: ratio to baseline under which a stage is in warning (basis points)", 0},
    {"KA_HEALTH_HYSTERESIS_BP", KEY_INT, "500", 0, 5000, NULL,
     "funnel health: how far above the warning line a ratio must recover to resolve", 0},
    {"KA_SCAN_INTERVAL_MS", KEY_INT, "60000", 100, 86400000, NULL,
     "how often periodic scans run (stalled opportunities, overdue visits)", 0},
    {"KA_STALL_NO_VISIT_DAYS", KEY_INT, "45", 1, 3650, NULL,
     "an open opportunity whose account had no visit for this many days is stalled", 0},
    {"KA_DECISION_MAKER_GAP_DAYS", KEY_INT, "90", 1, 3650, NULL,
     "an opportunity at stage 05 or later needs a decision-maker visit within this many days", 0},
    {"KA_TIER_A_PCT", KEY_INT, "80", 1, 99, NULL,
     "tier A: the top accounts covering this share of trailing-12-month revenue (80/20 rule)", 0},
    {"KA_TIER_B_PCT", KEY_INT, "95", 2, 100, NULL,
     "tier B: the next accounts, up to this cumulative share; C: the rest with revenue", 0},
    {"KA_TIER_INTERVAL_MS", KEY_INT, "3600000", 100, 86400000, NULL,
     "how often account tiers are recomputed", 0},
    {"KA_TIER_ALERT_TTL_MS", KEY_INT, "604800000", 1000, 31536000000LL, NULL,
     "a tier change is a point event: its info alert resolves by itself this long after it "
     "fired (default 7 days)", 0},
    {"KA_CHURN_DROP_PCT", KEY_INT, "30", 1, 100, NULL,
     "churn risk: trailing-90-day revenue down more than this share against the 90 days before", 0},
    {"KA_CHANNEL_QUIET_DAYS", KEY_INT, "30", 1, 3650, NULL,
     "a diversion or dumping alert resolves after this many days without a new violation", 0},
    {"KA_FORECAST_DEBOUNCE_MS", KEY_INT, "1000", 0, 3600000, NULL,
     "forecast and planning events: at most one per node-period (or demand line) per window", 0},
    {"KA_FORECAST_FULL_INTERVAL_MS", KEY_INT, "3600000", 1000, 604800000, NULL,
     "how often the whole current forecast and planning feed is published again", 0},
    {"KA_BASELINE_PERIODS", KEY_INT, "4", 2, 24, NULL,
     "derived funnel baselines: mean of the same day of this many past months (at least 2 needed)", 0},
    {"KA_FORECAST_PACE", KEY_STR, "linear", 0, 0, NULL,
     "forecast-gap pace: linear, or 10 cumulative percentages for the period's tenths (e.g. "
     "5,10,20,30,40,50,60,75,90,100)", 0},
    {"KA_HTTP_ADDR", KEY_STR, "127.0.0.1", 0, 0, NULL,
     "address the /metrics, /healthz and /readyz endpoints listen on", 0},
    {"KA_HTTP_PORT", KEY_INT, "0", 0, 65535, NULL,
     "port of the /metrics, /healthz and /readyz endpoints (0: no endpoint)", 0},
    {"KA_API_PORT", KEY_INT, "18080", 0, 65535, NULL,
     "ka-api: port of the HTTP API (/v1, /healthz, /readyz, /metrics), on KA_HTTP_ADDR", 0},
    {"KA_API_THREADS", KEY_INT, "4", 1, 64, NULL,
     "ka-api: requests served at once (a thread per connection; this many hold a PostgreSQL "
     "and a Redis connection)", 0},
    {"KA_API_RATE_PER_S", KEY_INT, "100", 1, 1000000, NULL,
     "ka-api: requests a token may make per second before 429", 0},
    {"KA_API_CORS_ORIGIN", KEY_STR, "", 0, 0, NULL,
     "ka-api: the one origin allowed by CORS (empty: CORS off, no header sent)", KF_OPTIONAL},
    {"KA_API_WWW", KEY_STR, "", 0, 0, NULL,
     "ka-api: folder of the manager's page served at / (empty: services/api/www of the "
     "source tree it was built from; /opt/ka/services/api/www in the image)", KF_OPTIONAL},
    {"KA_API_DRAIN_MS", KEY_INT, "10000", 0, 600000, NULL,
     "ka-api: on SIGTERM, how long requests in flight may take to finish", 0},
    {"KA_CLOCK_OFFSET_MS", KEY_INT, "0", -315360000000LL, 315360000000LL, NULL,
     "shifts the worker's clock (drills and tests of time-driven rules); 0 in production", 0},
    {"KA_LOG_LEVEL", KEY_ENUM, "info", 0, 0, "debug|info|warn|error", "least severe level logged", 0},
    {"KA_CE_SOURCE", KEY_STR, NULL, 0, 0, NULL,
     "CloudEvents source of published events (default: urn:ka:<service>)", 0},
    {"KA_ALERTMANAGER_URLS", KEY_STR, "http://127.0.0.1:19096", 0, 0, NULL,
     "alert bridge: the Alertmanagers alerts are posted to, comma-separated base URLs (each "
     "member of a cluster, as Prometheus posts to every one)", 0},
    {"KA_ALERTMANAGER_TIMEOUT_MS", KEY_INT, "2000", 100, 60000, NULL,
     "alert bridge: how long one post to an Alertmanager may take", 0},
    {"KA_ALERT_RESEND_MS", KEY_INT, "60000", 100, 3600000, NULL,
     "alert bridge: how often the whole firing set is posted again (keep it well under "
     "Alertmanager's resolve_timeout, 5m by default)", 0},
    {"KA_ALERT_RESOLVED_RETENTION_MS", KEY_INT, "900000", 0, 86400000, NULL,
     "alert bridge: how long a resolved alert is still re-sent, so an Alertmanager that missed "
     "the resolve learns it", 0},
    {"KA_ALERT_LINK_URL", KEY_STR, "", 0, 0, NULL,
     "alert bridge: base URL of the web view; each alert links to <base>/<subject kind>/<id>",
     KF_OPTIONAL},
    {"KA_CONTENT_MODES_VISIT", KEY_STR, "all", 0, 0, NULL,
     "content modes accepted on KA_TOPIC_VISIT: all, or a comma-separated list of protobuf, "
     "json, cloudevents, confluent (others are dead-lettered as content_mode_not_accepted)", 0},
    {"KA_CONTENT_MODES_OPPORTUNITY", KEY_STR, "all", 0, 0, NULL,
     "content modes accepted on KA_TOPIC_OPPORTUNITY (as KA_CONTENT_MODES_VISIT)", 0},
    {"KA_CONTENT_MODES_ORDER", KEY_STR, "all", 0, 0, NULL,
     "content modes accepted on KA_TOPIC_ORDER (as KA_CONTENT_MODES_VISIT)", 0},
    {"KA_JSON_UNKNOWN_FIELDS", KEY_ENUM, "reject", 0, 0, "reject|ignore",
     "a JSON input member that names no field: dead-lettered as unknown_field with its path "
     "(reject) or skipped (ignore)", 0},
    {"KA_TOPIC_VISIT", KEY_STR, "ka.visit.v1", 0, 0, NULL, "visit events (input)", 0},
    {"KA_TOPIC_OPPORTUNITY", KEY_STR, "ka.opportunity.v1", 0, 0, NULL,
     "opportunity events (input)", 0},
    {"KA_TOPIC_ORDER", KEY_STR, "ka.order.v1", 0, 0, NULL, "order events (input)", 0},
    {"KA_TOPIC_FORECAST", KEY_STR, "ka.forecast.v1", 0, 0, NULL, "forecast events (output)", 0},
    {"KA_TOPIC_PLANNING", KEY_STR, "ka.planning.v1", 0, 0, NULL,
     "production-planning demand feed (output)", 0},
    {"KA_TOPIC_ALERT", KEY_STR, "ka.alert.v1", 0, 0, NULL, "alert events (output)", 0},
    {"KA_TOPIC_DEADLETTER", KEY_STR, "ka.deadletter.v1", 0, 0, NULL,
     "rejected input events with their reason (output)", 0},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

typedef struct property {
    char *name; /* librdkafka's, e.g. socket.keepalive.enable */
    char *value;
} property_t;

struct ka_config {
    char *service;
    char *values[NKEYS];
    long long ints[NKEYS];
    char *pg_dsn;        /* KA_PG_DSN with KA_PG_PASSWORD added, when one is set */
    property_t *props;
    size_t nprops;
};

/* Properties the exactly-once loop sets itself, or that a typed key covers:
 * a passthrough may not change them. */
static const char *const reserved_props[] = {
    "bootstrap.servers", "group.id", "enable.auto.commit", "enable.auto.offset.store",
    "auto.offset.reset", "isolation.level", "enable.idempotence", "acks",
    "partition.assignment.strategy", "statistics.interval.ms", "transactional.id",
    "security.protocol", "sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.password",
    "ssl.ca.location", "ssl.certificate.location", "ssl.key.location", "ssl.key.password",
    "ssl.endpoint.identification.algorithm", NULL};

static int key_index(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int enum_has(const char *choices, const char *value)
{
    size_t vlen = strlen(value);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == vlen && strncmp(p, value, len) == 0)
            return 1;
        p += len + (bar ? 1 : 0);
    }
    return 0;
}

/* Validates value for keys[i]; stores it on success. `origin` says where the
 * value came from, for the error text. */
static ka_err_t store(ka_config_t *cfg, size_t i, const char *value, const char *origin,
                      char *errstr, size_t errlen)
{
    const key_def_t *k = &keys[i];
    long long n = 0;

    if (k->kind == KEY_INT) {
        char *end = NULL;
        errno = 0;
        n = strtoll(value, &end, 10);
        if (errno || end == value || *end != '\0' || n < k->min || n > k->max) {
            snprintf(errstr, errlen, "%s (%s): expected an integer from %lld to %lld, got \"%s\"",
                     k->name, origin, k->min, k->max, value);
            return KA_ERR_CONFIG;
        }
    } else if (k->kind == KEY_ENUM && !enum_has(k->choices, value)) {
        snprintf(errstr, errlen, "%s (%s): expected one of %s, got \"%s\"", k->name, origin,
                 k->choices, value);
        return KA_ERR_CONFIG;
    } else if (k->kind == KEY_STR && value[0] == '\0' && !(k->flags & KF_OPTIONAL)) {
        snprintf(errstr, errlen, "%s (%s): must not be empty (unset it to use the default)",
                 k->name, origin);
        return KA_ERR_CONFIG;
    }
    free(cfg->values[i]);
    cfg->values[i] = ka_strdup(value);
    cfg->ints[i] = n;
    return KA_OK;
}

/* KA_KAFKA_PROPERTY_SOCKET_KEEPALIVE_ENABLE -> socket.keepalive.enable */
static ka_err_t store_property(ka_config_t *cfg, const char *name, const char *value,
                               const char *origin, char *errstr, size_t errlen)
{
    const char *tail = name + strlen(PROPERTY_PREFIX);
    char prop[128];
    size_t n = strlen(tail);
    if (n == 0 || n >= sizeof prop) {
        snprintf(errstr, errlen, "%s (%s): expected %s<LIBRDKAFKA_PROPERTY>", name, origin,
                 PROPERTY_PREFIX);
        return KA_ERR_CONFIG;
    }
    for (size_t i = 0; i <= n; i++)
        prop[i] = tail[i] == '_' ? '.' : (char)tolower((unsigned char)tail[i]);
    for (size_t i = 0; reserved_props[i]; i++)
        if (strcmp(prop, reserved_props[i]) == 0) {
            snprintf(errstr, errlen,
                     "%s (%s): \"%s\" is set by the service or by a KA_KAFKA_* key of its own "
                     "(see `kactl config`)", name, origin, prop);
            return KA_ERR_CONFIG;
        }
    for (size_t i = 0; i < cfg->nprops; i++)
        if (strcmp(cfg->props[i].name, prop) == 0) {
            free(cfg->props[i].value);
            cfg->props[i].value = ka_strdup(value);
            return KA_OK;
        }
    cfg->props = ka_realloc(cfg->props, (cfg->nprops + 1) * sizeof *cfg->props);
    cfg->props[cfg->nprops].name = ka_strdup(prop);
    cfg->props[cfg->nprops].value = ka_strdup(value);
    cfg->nprops++;
    return KA_OK;
}

/* Routes one KEY=VALUE from the environment or the file. Returns KA_OK,
 * KA_ERR_CONFIG (errstr filled), or KA_ERR when the key is unknown. */
static ka_err_t store_named(ka_config_t *cfg, const char *name, const char *value,
                            const char *origin, char *errstr, size_t errlen)
{
    int i = key_index(name);
    if (i >= 0)
        return store(cfg, (size_t)i, value, origin, errstr, errlen);
    if (strncmp(name, PROPERTY_PREFIX, strlen(PROPERTY_PREFIX)) == 0)
        return store_property(cfg, name, value, origin, errstr, errlen);
    return KA_ERR;
}

/* Reads the file named by the KF_FILE key f into its secret key: the whole
 * file less one trailing newline (as Kubernetes and Docker secrets are
 * mounted). Never echoes the content. */
static ka_err_t read_secret(ka_config_t *cfg, size_t f, char *errstr, size_t errlen)
{
    const char *path = cfg->values[f];
    char target[128];
    snprintf(target, sizeof target, "%.*s", (int)(strlen(keys[f].name) - strlen(FILE_SUFFIX)),
             keys[f].name);
    int i = key_index(target);
    assert(i >= 0 && "a _FILE key without its secret key");
    char buf[4096];
    struct stat st;
    /* Non-blocking and regular files only: a FIFO or a terminal named by
     * mistake must not hang the start. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(errstr, errlen, "%s: could not open \"%s\": %s", keys[f].name, path,
                 strerror(errno));
        return KA_ERR_CONFIG;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(errstr, errlen, "%s: \"%s\" is not a regular file", keys[f].name, path);
        return KA_ERR_CONFIG;
    }
    ssize_t got = read(fd, buf, sizeof buf);
    close(fd);
    if (got < 0) {
        snprintf(errstr, errlen, "%s: could not read \"%s\": %s", keys[f].name, path,
                 strerror(errno));
        return KA_ERR_CONFIG;
    }
    size_t n = (size_t)got;
    int too_long = n == sizeof buf;
    if (too_long) {
        snprintf(errstr, errlen, "%s: \"%s\" is longer than %zu bytes", keys[f].name, path,
                 sizeof buf - 1);
        return KA_ERR_CONFIG;
    }
    if (n && buf[n - 1] == '\n')
        n--;
    if (n && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    if (n == 0 || memchr(buf, '\0', n)) {
        snprintf(errstr, errlen, "%s: \"%s\" is empty or not text", keys[f].name, path);
        return KA_ERR_CONFIG;
    }
    free(cfg->values[i]);
    cfg->values[i] = ka_strdup(buf);
    memset(buf, 0, sizeof buf);
    return KA_OK;
}

static const char *value_of(const ka_config_t *cfg, const char *key)
{
    return cfg->values[key_index(key)];
}

/* KA_PG_DSN plus password='...' (libpq quoting: backslash before ' and \),
 * so every connection site picks the password up with the DSN. */
static void compose_pg_dsn(ka_config_t *cfg)
{
    const char *pw = value_of(cfg, "KA_PG_PASSWORD");
    free(cfg->pg_dsn);
    cfg->pg_dsn = NULL;
    if (!pw[0])
        return;
    const char *dsn = value_of(cfg, "KA_PG_DSN");
    size_t n = strlen(dsn) + 2 * strlen(pw) + 16;
    char *out = ka_malloc(n), *o = out;
    o += snprintf(out, n, "%s password='", dsn);
    for (const char *p = pw; *p; p++) {
        if (*p == '\'' || *p == '\\')
            *o++ = '\\';
        *o++ = *p;
    }
    *o++ = '\'';
    *o = '\0';
    cfg->pg_dsn = out;
}

/* Settings that only make sense together. */
static ka_err_t check_combinations(const ka_config_t *cfg, char *errstr, size_t errlen)
{
    const char *proto = value_of(cfg, "KA_KAFKA_SECURITY_PROTOCOL");
    int sasl = strncmp(proto, "sasl_", 5) == 0;
    int has_user = value_of(cfg, "KA_KAFKA_SASL_USERNAME")[0] != '\0';
    int has_pw = value_of(cfg, "KA_KAFKA_SASL_PASSWORD")[0] != '\0';
    if (sasl && (!has_user || !has_pw)) {
        snprintf(errstr, errlen, "KA_KAFKA_SECURITY_PROTOCOL=%s needs KA_KAFKA_SASL_USERNAME and "
                 "KA_KAFKA_SASL_PASSWORD (or KA_KAFKA_SASL_PASSWORD_FILE)", proto);
        return KA_ERR_CONFIG;
    }
    if (!sasl && (has_user || has_pw)) {
        snprintf(errstr, errlen, "KA_KAFKA_SASL_USERNAME/PASSWORD are set but "
                 "KA_KAFKA_SECURITY_PROTOCOL=%s does not use SASL (sasl_plaintext or sasl_ssl)",
                 proto);
        return KA_ERR_CONFIG;
    }
    int has_cert = value_of(cfg, "KA_KAFKA_SSL_CERTIFICATE_LOCATION")[0] != '\0';
    int has_key = value_of(cfg, "KA_KAFKA_SSL_KEY_LOCATION")[0] != '\0';
    if (has_cert != has_key) {
        snprintf(errstr, errlen, "KA_KAFKA_SSL_CERTIFICATE_LOCATION and KA_KAFKA_SSL_KEY_LOCATION "
                 "go together (a client certificate and its key)");
        return KA_ERR_CONFIG;
    }
    if (value_of(cfg, "KA_REDIS_USERNAME")[0] && !value_of(cfg, "KA_REDIS_PASSWORD")[0]) {
        snprintf(errstr, errlen, "KA_REDIS_USERNAME needs KA_REDIS_PASSWORD (or "
                 "KA_REDIS_PASSWORD_FILE)");
        return KA_ERR_CONFIG;
    }
    return KA_OK;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static ka_err_t load_file(ka_config_t *cfg, const char *path, char *errstr, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    char origin[512];
    int lineno = 0;
    ka_err_t rc = KA_OK;

    if (!f) {
        snprintf(errstr, errlen, "could not open config file \"%s\": %s", path, strerror(errno));
        return KA_ERR_CONFIG;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        /* A longer line would be read as two: refuse it rather than apply its tail. */
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(errstr, errlen, "%s:%d: line longer than %zu bytes", path, lineno,
                     sizeof line - 2);
            rc = KA_ERR_CONFIG;
            break;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(errstr, errlen, "%s:%d: expected KEY=VALUE, got \"%s\"", path, lineno, s);
            rc = KA_ERR_CONFIG;
            break;
        }
        *eq = '\0';
        char *name = trim(s);
        char *value = trim(eq + 1);
        size_t vlen = strlen(value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = '\0';
            value++;
        }
        snprintf(origin, sizeof origin, "%s:%d", path, lineno);
        rc = store_named(cfg, name, value, origin, errstr, errlen);
        if (rc == KA_ERR) {
            snprintf(errstr, errlen, "%s:%d: unknown key \"%s\" (see `kactl config` for the list)",
                     path, lineno, name);
            rc = KA_ERR_CONFIG;
        }
        if (rc != KA_OK)
            break;
    }
    fclose(f);
    return rc;
}

ka_config_t *ka_config_load_env(const char *service, const char *file, char *const *env,
                                char *errstr, size_t errlen)
{
    ka_config_t *cfg = ka_calloc(1, sizeof *cfg);
    char derived[256];
    const char *env_file = NULL;

    cfg->service = ka_strdup(service);
    for (size_t i = 0; i < NKEYS; i++) {
        const char *def = keys[i].def;
        if (!def) {
            if (strcmp(keys[i].name, "KA_CONSUMER_GROUP") == 0)
                snprintf(derived, sizeof derived, "ka-%s", service);
            else
                snprintf(derived, sizeof derived, "urn:ka:%s", service);
            def = derived;
        }
        if (store(cfg, i, def, "default", errstr, errlen) != KA_OK)
            goto fail;
    }
    for (char *const *e = env; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || strncmp(*e, "KA_", 3) != 0)
            continue;
        char name[128];
        size_t nlen = (size_t)(eq - *e);
        if (nlen >= sizeof name)
            continue;
        memcpy(name, *e, nlen);
        name[nlen] = '\0';
        if (strcmp(name, "KA_CONFIG_FILE") == 0) {
            env_file = eq + 1;
            continue;
        }
        /* Unknown KA_ variables may belong to scripts (KA_STACK_DIR, ...). */
        if (store_named(cfg, name, eq + 1, "environment", errstr, errlen) == KA_ERR_CONFIG)
            goto fail;
    }
    if (!file)
        file = env_file;
    if (file && *file && load_file(cfg, file, errstr, errlen) != KA_OK)
        goto fail;
    for (size_t i = 0; i < NKEYS; i++)
        if ((keys[i].flags & KF_FILE) && cfg->values[i][0] &&
            read_secret(cfg, i, errstr, errlen) != KA_OK)
            goto fail;
    if (check_combinations(cfg, errstr, errlen) != KA_OK)
        goto fail;
    compose_pg_dsn(cfg);
    return cfg;
fail:
    ka_config_free(cfg);
    return NULL;
}

ka_config_t *ka_config_load(const char *service, const char *file, char *errstr, size_t errlen)
{
    return ka_config_load_env(service, file, environ, errstr, errlen);
}

void ka_config_free(ka_config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < NKEYS; i++) {
        if (cfg->values[i] && (keys[i].flags & KF_SECRET))
            memset(cfg->values[i], 0, strlen(cfg->values[i]));
        free(cfg->values[i]);
    }
    if (cfg->pg_dsn)
        memset(cfg->pg_dsn, 0, strlen(cfg->pg_dsn));
    free(cfg->pg_dsn);
    for (size_t i = 0; i < cfg->nprops; i++) {
        free(cfg->props[i].name);
        free(cfg->props[i].value);
    }
    free(cfg->props);
    free(cfg->service);
    free(cfg);
}

const char *ka_config_str(const ka_config_t *cfg, const char *key)
{
    int i = key_index(key);
    assert(i >= 0 && "unknown configuration key");
    if ((keys[i].flags & KF_DSN) && cfg->pg_dsn)
        return cfg->pg_dsn;
    return cfg->values[i];
}

long long ka_config_int(const ka_config_t *cfg, const char *key)
{
    int i = key_index(key);
    assert(i >= 0 && keys[i].kind == KEY_INT && "not an integer configuration key");
    return cfg->ints[i];
}

const char *ka_config_service(const ka_config_t *cfg)
{
    return cfg->service;
}

ka_err_t ka_config_set(ka_config_t *cfg, const char *key, const char *value, char *errstr,
                       size_t errlen)
{
    int i = key_index(key);
    if (i < 0) {
        snprintf(errstr, errlen, "unknown configuration key \"%s\"", key);
        return KA_ERR_CONFIG;
    }
    ka_err_t rc = store(cfg, (size_t)i, value, "override", errstr, errlen);
    if (rc == KA_OK)
        compose_pg_dsn(cfg);
    return rc;
}

int ka_config_kafka_property(const ka_config_t *cfg, size_t i, const char **name,
                             const char **value)
{
    if (i >= cfg->nprops)
        return 0;
    *name = cfg->props[i].name;
    *value = cfg->props[i].value;
    return 1;
}

int ka_config_is_secret_property(const char *name)
{
    static const char *const words[] = {"password", "secret", "key", "token", "jaas", NULL};
    for (size_t i = 0; words[i]; i++)
        if (strstr(name, words[i]))
            return 1;
    return 0;
}

/* Copies a libpq connection string with the value of password= replaced. */
static void redact_dsn(const char *dsn, ka_buf_t *out)
{
    const char *p = dsn;
    while (*p) {
        const char *kw = p;
        while (*p && *p != '=' && !isspace((unsigned char)*p))
            p++;
        size_t kwlen = (size_t)(p - kw);
        ka_buf_append(out, kw, kwlen);
        const char *q = p;
        while (*q && isspace((unsigned char)*q))
            q++;
        if (*q != '=') { /* not keyword=value: copy the blanks and go on */
            ka_buf_append(out, p, (size_t)(q - p));
            p = q;
            continue;
        }
        ka_buf_append(out, p, (size_t)(q - p) + 1);
        p = q + 1;
        while (*p && isspace((unsigned char)*p))
            ka_buf_append(out, p++, 1);
        const char *v = p;
        if (*p == '\'') {
            for (p++; *p && *p != '\''; p++)
                if (*p == '\\' && p[1])
                    p++;
            if (*p)
                p++;
        } else {
            while (*p && !isspace((unsigned char)*p))
                p++;
        }
        if (kwlen == 8 && strncmp(kw, "password", 8) == 0)
            ka_buf_puts(out, "***");
        else
            ka_buf_append(out, v, (size_t)(p - v));
        while (*p && isspace((unsigned char)*p))
            ka_buf_append(out, p++, 1);
    }
}

char *ka_config_redact_dsn(const char *dsn)
{
    ka_buf_t b = KA_BUF_INIT;
    if (strncmp(dsn, "postgres", 8) == 0) { /* URI: user:password@ */
        const char *at = strchr(dsn, '@');
        const char *colon = strchr(dsn + 13, ':');
        if (at && colon && colon < at) {
            ka_buf_append(&b, dsn, (size_t)(colon - dsn) + 1);
            ka_buf_puts(&b, "***");
            ka_buf_puts(&b, at);
        } else {
            ka_buf_puts(&b, dsn);
        }
    } else {
        redact_dsn(dsn, &b);
    }
    ka_buf_append(&b, "", 0);
    return b.data;
}

char *ka_config_summary(const ka_config_t *cfg)
{
    ka_buf_t b = KA_BUF_INIT;
    for (size_t i = 0; i < NKEYS; i++) {
        const key_def_t *k = &keys[i];
        const char *v = cfg->values[i];
        if (k->def && strcmp(v, k->def) == 0)
            continue; /* defaults are documented; the line shows what differs */
        if (b.len)
            ka_buf_puts(&b, " ");
        ka_buf_printf(&b, "%s=", k->name);
        if (k->flags & KF_SECRET) {
            ka_buf_puts(&b, "***");
        } else if (k->flags & KF_DSN) {
            char *r = ka_config_redact_dsn(v);
            ka_buf_printf(&b, "\"%s\"", r);
            free(r);
        } else {
            ka_buf_printf(&b, "\"%s\"", v);
        }
    }
    for (size_t i = 0; i < cfg->nprops; i++)
        ka_buf_printf(&b, "%s%s%s=%s", b.len ? " " : "", PROPERTY_PREFIX, cfg->props[i].name,
                      ka_config_is_secret_property(cfg->props[i].name) ? "***"
                                                                       : cfg->props[i].value);
    ka_buf_append(&b, "", 0);
    return b.data;
}

void ka_config_describe(FILE *out)
{
    fprintf(out, "| variable | default | meaning |\n|---|---|---|\n");
    for (size_t i = 0; i < NKEYS; i++) {
        const key_def_t *k = &keys[i];
        char def[128];
        if (k->def && !k->def[0])
            snprintf(def, sizeof def, "unset");
        else if (k->def)
            snprintf(def, sizeof def, "`%s`", k->def);
        else
            snprintf(def, sizeof def, "(derived)");
        fprintf(out, "| `%s` | %s | %s", k->name, def, k->doc);
        if (k->kind == KEY_INT)
            fprintf(out, " (%lld..%lld)", k->min, k->max);
        else if (k->kind == KEY_ENUM) {
            fputs(" (", out);
            for (const char *c = k->choices; *c; c++) { /* '|' would split the table */
                if (*c == '|')
                    fputs(", ", out);
                else
                    fputc(*c, out);
            }
            fputs(")", out);
        }
        fprintf(out, " |\n");
    }
    fprintf(out, "| `KA_CONFIG_FILE` | unset | a KEY=VALUE file whose values override the "
                 "environment |\n");
    fprintf(out, "| `" PROPERTY_PREFIX "<NAME>` | unset | any other librdkafka property, NAME "
                 "upper-cased with `.` as `_` (e.g. `" PROPERTY_PREFIX "SOCKET_KEEPALIVE_ENABLE`), "
                 "for every Kafka client |\n");
}
