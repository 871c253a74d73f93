#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
} key_def_t;

static const key_def_t keys[] = {
    {"KA_KAFKA_BROKERS", KEY_STR, "127.0.0.1:59092", 0, 0, NULL,
     "Kafka bootstrap servers (host:port, comma-separated)"},
    {"KA_PG_DSN", KEY_STR, "host=127.0.0.1 port=55432 dbname=ka user=ka", 0, 0, NULL,
     "libpq connection string of the store of record"},
    {"KA_REDIS_HOST", KEY_STR, "127.0.0.1", 0, 0, NULL, "Redis host of the real-time cache"},
    {"KA_REDIS_PORT", KEY_INT, "56379", 1, 65535, NULL, "Redis port"},
    {"KA_REDIS_TIMEOUT_MS", KEY_INT, "2000", 10, 600000, NULL,
     "Redis connect and command timeout"},
    {"KA_CONSUMER_GROUP", KEY_STR, NULL, 0, 0, NULL,
     "Kafka consumer group and offset-store key (default: ka-<service>)"},
    {"KA_START_OFFSET", KEY_ENUM, "earliest", 0, 0, "earliest|latest",
     "where a partition with no stored offset starts"},
    {"KA_BATCH_MAX_EVENTS", KEY_INT, "500", 1, 100000, NULL,
     "most events applied in one PostgreSQL transaction"},
    {"KA_BATCH_MAX_MS", KEY_INT, "20", 1, 60000, NULL,
     "longest a batch waits to fill before it is applied"},
    {"KA_RETRY_MAX_MS", KEY_INT, "10000", 10, 600000, NULL,
     "cap of the exponential back-off when a server is down"},
    {"KA_OUTBOX_BATCH", KEY_INT, "500", 1, 100000, NULL,
     "most outbox rows the relay publishes per round"},
    {"KA_HEALTH_WARNING_BP", KEY_INT, "7000", 1, 10000, NULL,
     "funnel health: ratio to baseline under which a stage is in warning (basis points)"},
    {"KA_HEALTH_HYSTERESIS_BP", KEY_INT, "500", 0, 5000, NULL,
     "funnel health: how far above the warning line a ratio must recover to resolve"},
    {"KA_SCAN_INTERVAL_MS", KEY_INT, "60000", 100, 86400000, NULL,
     "how often periodic scans run (stalled opportunities, overdue visits)"},
    {"KA_STALL_NO_VISIT_DAYS", KEY_INT, "45", 1, 3650, NULL,
     "an open opportunity whose account had no visit for this many days is stalled"},
    {"KA_DECISION_MAKER_GAP_DAYS", KEY_INT, "90", 1, 3650, NULL,
     "an opportunity at stage 05 or later needs a decision-maker visit within this many days"},
    {"KA_TIER_A_PCT", KEY_INT, "80", 1, 99, NULL,
     "tier A: the top accounts covering this share of trailing-12-month revenue (80/20 rule)"},
    {"KA_TIER_B_PCT", KEY_INT, "95", 2, 100, NULL,
     "tier B: the next accounts, up to this cumulative share; C: the rest with revenue"},
    {"KA_TIER_INTERVAL_MS", KEY_INT, "3600000", 100, 86400000, NULL,
     "how often account tiers are recomputed"},
    {"KA_CHURN_DROP_PCT", KEY_INT, "30", 1, 100, NULL,
     "churn risk: trailing-90-day revenue down more than this share against the 90 days before"},
    {"KA_CHANNEL_QUIET_DAYS", KEY_INT, "30", 1, 3650, NULL,
     "a diversion or dumping alert resolves after this many days without a new violation"},
    {"KA_FORECAST_DEBOUNCE_MS", KEY_INT, "1000", 0, 3600000, NULL,
     "forecast and planning events: at most one per node-period (or demand line) per window"},
    {"KA_FORECAST_FULL_INTERVAL_MS", KEY_INT, "3600000", 1000, 604800000, NULL,
     "how often the whole current forecast and planning feed is published again"},
    {"KA_BASELINE_PERIODS", KEY_INT, "4", 2, 24, NULL,
     "derived funnel baselines: mean of the same day of this many past months (at least 2 needed)"},
    {"KA_FORECAST_PACE", KEY_STR, "linear", 0, 0, NULL,
     "forecast-gap pace: linear, or 10 cumulative percentages for the period's tenths (e.g. "
     "5,10,20,30,40,50,60,75,90,100)"},
    {"KA_HTTP_ADDR", KEY_STR, "127.0.0.1", 0, 0, NULL,
     "address the /metrics, /healthz and /readyz endpoints listen on"},
    {"KA_HTTP_PORT", KEY_INT, "0", 0, 65535, NULL,
     "port of the /metrics, /healthz and /readyz endpoints (0: no endpoint)"},
    {"KA_CLOCK_OFFSET_MS", KEY_INT, "0", -315360000000LL, 315360000000LL, NULL,
     "shifts the worker's clock (drills and tests of time-driven rules); 0 in production"},
    {"KA_LOG_LEVEL", KEY_ENUM, "info", 0, 0, "debug|info|warn|error", "least severe level logged"},
    {"KA_CE_SOURCE", KEY_STR, NULL, 0, 0, NULL,
     "CloudEvents source of published events (default: urn:ka:<service>)"},
    {"KA_TOPIC_VISIT", KEY_STR, "ka.visit.v1", 0, 0, NULL, "visit events (input)"},
    {"KA_TOPIC_OPPORTUNITY", KEY_STR, "ka.opportunity.v1", 0, 0, NULL,
     "opportunity events (input)"},
    {"KA_TOPIC_ORDER", KEY_STR, "ka.order.v1", 0, 0, NULL, "order events (input)"},
    {"KA_TOPIC_FORECAST", KEY_STR, "ka.forecast.v1", 0, 0, NULL, "forecast events (output)"},
    {"KA_TOPIC_PLANNING", KEY_STR, "ka.planning.v1", 0, 0, NULL,
     "production-planning demand feed (output)"},
    {"KA_TOPIC_ALERT", KEY_STR, "ka.alert.v1", 0, 0, NULL, "alert events (output)"},
    {"KA_TOPIC_DEADLETTER", KEY_STR, "ka.deadletter.v1", 0, 0, NULL,
     "rejected input events with their reason (output)"},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

struct ka_config {
    char *service;
    char *values[NKEYS];
    long long ints[NKEYS];
};

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
    } else if (k->kind == KEY_STR && value[0] == '\0') {
        snprintf(errstr, errlen, "%s (%s): must not be empty (unset it to use the default)",
                 k->name, origin);
        return KA_ERR_CONFIG;
    }
    free(cfg->values[i]);
    cfg->values[i] = ka_strdup(value);
    cfg->ints[i] = n;
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
        int i = key_index(name);
        if (i < 0) {
            snprintf(errstr, errlen, "%s:%d: unknown key \"%s\" (see `kactl config` for the list)",
                     path, lineno, name);
            rc = KA_ERR_CONFIG;
            break;
        }
        snprintf(origin, sizeof origin, "%s:%d", path, lineno);
        if ((rc = store(cfg, (size_t)i, value, origin, errstr, errlen)) != KA_OK)
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
        int i = key_index(name);
        /* Unknown KA_ variables may belong to scripts (KA_STACK_DIR, ...). */
        if (i >= 0 && store(cfg, (size_t)i, eq + 1, "environment", errstr, errlen) != KA_OK)
            goto fail;
    }
    if (!file)
        file = env_file;
    if (file && *file && load_file(cfg, file, errstr, errlen) != KA_OK)
        goto fail;
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
    for (size_t i = 0; i < NKEYS; i++)
        free(cfg->values[i]);
    free(cfg->service);
    free(cfg);
}

const char *ka_config_str(const ka_config_t *cfg, const char *key)
{
    int i = key_index(key);
    assert(i >= 0 && "unknown configuration key");
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
    return store(cfg, (size_t)i, value, "override", errstr, errlen);
}

void ka_config_describe(FILE *out)
{
    fprintf(out, "| variable | default | meaning |\n|---|---|---|\n");
    for (size_t i = 0; i < NKEYS; i++) {
        const key_def_t *k = &keys[i];
        char def[128];
        if (k->def)
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
}
