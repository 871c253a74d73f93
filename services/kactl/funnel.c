/* kactl funnel NODE: a node's funnel as a bar chart with each stage's
 * health. The figures come from Redis (one HGETALL per funnel definition)
 * when the cache is warm, from PostgreSQL otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ka_buf.h"
#include "ka_pg.h"
#include "ka_redis.h"
#include "kactl.h"
#include "ui.h"

#define MAX_STAGES 32
#define BAR_WIDTH 30

typedef struct stage_row {
    char code[17];
    char name[128];
    int prob_bp;
    int closed;
    long long count, amount, weighted;
    char health[16];
    long long ratio_bp; /* -1: none */
} stage_row_t;

typedef struct funnel {
    stage_row_t st[MAX_STAGES];
    int n;
} funnel_t;

static int read_stages(void *ud, const ka_pgres_t *res)
{
    funnel_t *f = ud;
    for (int i = 0; i < ka_pgres_rows(res) && f->n < MAX_STAGES; i++) {
        stage_row_t *s = &f->st[f->n++];
        memset(s, 0, sizeof *s);
        snprintf(s->code, sizeof s->code, "%s", ka_pgres_value(res, i, 0));
        snprintf(s->name, sizeof s->name, "%s", ka_pgres_value(res, i, 1));
        s->prob_bp = (int)ka_pgres_int(res, i, 2, 0);
        s->closed = ka_pgres_value(res, i, 3)[0] == 't';
        s->ratio_bp = -1;
    }
    return 0;
}

static stage_row_t *find(funnel_t *f, const char *code)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->st[i].code, code) == 0)
            return &f->st[i];
    return NULL;
}

static int read_pg_figures(void *ud, const ka_pgres_t *res)
{
    funnel_t *f = ud;
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        stage_row_t *s = find(f, ka_pgres_value(res, i, 0));
        if (!s)
            continue;
        s->count = ka_pgres_int(res, i, 1, 0);
        s->amount = ka_pgres_int(res, i, 2, 0);
        s->weighted = ka_pgres_int(res, i, 3, 0);
    }
    return 0;
}

static int read_health(void *ud, const ka_pgres_t *res)
{
    funnel_t *f = ud;
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        stage_row_t *s = find(f, ka_pgres_value(res, i, 0));
        if (!s)
            continue;
        snprintf(s->health, sizeof s->health, "%s", ka_pgres_value(res, i, 1));
        s->ratio_bp = ka_pgres_int(res, i, 2, -1);
    }
    return 0;
}

static void from_redis(void *ud, const char *field, const char *value)
{
    funnel_t *f = ud;
    char code[32];
    const char *colon = strchr(field, ':');
    if (!colon || (size_t)(colon - field) >= sizeof code)
        return;
    memcpy(code, field, (size_t)(colon - field));
    code[colon - field] = '\0';
    stage_row_t *s = find(f, code);
    if (!s)
        return;
    long long v = atoll(value);
    if (strcmp(colon + 1, "count") == 0)
        s->count = v;
    else if (strcmp(colon + 1, "amount") == 0)
        s->amount = v;
    else if (strcmp(colon + 1, "weighted") == 0)
        s->weighted = v;
}

static const char *colour(const char *health, int tty)
{
    if (!tty)
        return "";
    if (strcmp(health, "warning") == 0)
        return "\033[31m";
    if (strcmp(health, "good") == 0)
        return "\033[33m";
    if (strcmp(health, "excellent") == 0)
        return "\033[32m";
    return "\033[2m";
}

static int show(const ka_config_t *cfg, ka_pg_t *pg, ka_redis_t *rds, const char *node,
                const char *def, int tty)
{
    char err[KA_ERRSTR_SIZE], key[256];
    funnel_t f = {.n = 0};
    ka_pg_param_t p1 = {def, 0, 0};
    ka_pg_param_t p2[2] = {{node, 0, 0}, {def, 0, 0}};
    const char *source = "PostgreSQL";
    (void)cfg;

    if (ka_pg_query(pg, "SELECT code, name, win_probability_bp, is_closed FROM funnel_stage "
                        "WHERE definition_id = $1 AND NOT is_closed ORDER BY ordinal",
                    1, &p1, read_stages, &f, err, sizeof err) != KA_OK) {
        fprintf(stderr, "kactl funnel: %s\n", err);
        return 1;
    }
    snprintf(key, sizeof key, "ka:funnel:%s:%s", node, def);
    int warm = 0;
    if (rds) {
        char *marker = NULL;
        /* Any worker's ready marker means the cache was built from PostgreSQL. */
        if (ka_redis_get(rds, "ka:cache:ready:ka-opportunity-worker", &marker, NULL, err,
                         sizeof err) == KA_OK && marker) {
            warm = ka_redis_hgetall(rds, key, from_redis, &f, err, sizeof err) == KA_OK;
            free(marker);
        }
    }
    if (warm)
        source = "Redis";
    else if (ka_pg_query(pg, "SELECT stage_code, open_count, amount_minor, weighted_amount_minor "
                             "FROM funnel_state WHERE node_id = $1 AND definition_id = $2",
                         2, p2, read_pg_figures, &f, err, sizeof err) != KA_OK) {
        fprintf(stderr, "kactl funnel: %s\n", err);
        return 1;
    }
    /* the band as stored, the ratio live (funnel_health_now, migration 0023) */
    if (ka_pg_query(pg, "SELECT stage_code, status, ratio_bp FROM funnel_health_now "
                        "WHERE node_id = $1 AND definition_id = $2 AND metric = 'count'",
                    2, p2, read_health, &f, err, sizeof err) != KA_OK) {
        fprintf(stderr, "kactl funnel: %s\n", err);
        return 1;
    }
    long long max = 1, total = 0, total_amount = 0, total_weighted = 0;
    for (int i = 0; i < f.n; i++)
        if (f.st[i].count > max)
            max = f.st[i].count;
    printf("\nFunnel of %s, definition %s (figures from %s)\n", node, def, source);
    printf("%-4s %-28s %-*s %6s %18s %18s  %s\n", "", "stage", BAR_WIDTH, "open", "count",
           "amount", "weighted", "health (count vs baseline)");
    for (int i = 0; i < f.n; i++) {
        stage_row_t *s = &f.st[i];
        char bar[BAR_WIDTH * 3 + 1] = "", amt[64], w[64], ratio[32] = "";
        int len = (int)(s->count * BAR_WIDTH / max);
        if (s->count > 0 && len == 0)
            len = 1;
        for (int k = 0; k < len; k++)
            strcat(bar, "\u2588");
        kactl_money(s->amount, 1, amt, sizeof amt);
        kactl_money(s->weighted, 1, w, sizeof w);
        if (s->ratio_bp >= 0)
            snprintf(ratio, sizeof ratio, " %lld%%", s->ratio_bp / 100);
        const char *health = s->health[0] ? s->health : "no_baseline";
        printf("%-4s %-28.28s %s%s%*s%s %6lld %18s %18s  %s%s%s%s\n", s->code, s->name,
               colour(health, tty), bar, BAR_WIDTH - len, "", tty ? "\033[0m" : "", s->count, amt,
               w, colour(health, tty), health, ratio, tty ? "\033[0m" : "");
        total += s->count;
        total_amount += s->amount;
        total_weighted += s->weighted;
    }
    char amt[64], w[64];
    kactl_money(total_amount, 1, amt, sizeof amt);
    kactl_money(total_weighted, 1, w, sizeof w);
    printf("%-4s %-28s %-*s %6lld %18s %18s\n", "", "open pipeline", BAR_WIDTH, "", total, amt, w);
    return 0;
}

typedef struct defs {
    char ids[8][65];
    int n;
} defs_t;

static int read_defs(void *ud, const ka_pgres_t *res)
{
    defs_t *d = ud;
    for (int i = 0; i < ka_pgres_rows(res) && d->n < 8; i++)
        snprintf(d->ids[d->n++], sizeof d->ids[0], "%s", ka_pgres_value(res, i, 0));
    return 0;
}

int kactl_funnel(const ka_config_t *cfg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE];
    const char *node = NULL, *def = NULL;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: kactl funnel NODE [--definition ID]\n\n"
                   "Shows the open funnel of an org node (rolled up over its subtree): per\n"
                   "stage the open count as a bar, the amount, the weighted amount and the\n"
                   "health against the baseline (red: warning, yellow: good, green:\n"
                   "excellent). Without --definition every funnel definition in use there.\n");
            return 0;
        } else if (strcmp(argv[i], "--definition") == 0 && i + 1 < argc) {
            def = argv[++i];
        } else if (argv[i][0] != '-' && !node) {
            node = argv[i];
        } else {
            fprintf(stderr, "kactl funnel: unexpected argument \"%s\" (see kactl funnel --help)\n",
                    argv[i]);
            return 2;
        }
    }
    if (!node) {
        fprintf(stderr, "kactl funnel: which node? e.g. kactl funnel div-east "
                        "(ids: SELECT id FROM org_node)\n");
        return 2;
    }
    ka_pg_t *pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg) {
        fprintf(stderr, "kactl funnel: %s\n", err);
        return 1;
    }
    ka_redis_t *rds = ka_redis_connect_config(cfg, 1000, err, sizeof err);
    defs_t defs = {.n = 0};
    if (def) {
        snprintf(defs.ids[0], sizeof defs.ids[0], "%s", def);
        defs.n = 1;
    } else {
        ka_pg_param_t p = {node, 0, 0};
        if (ka_pg_query(pg, "SELECT DISTINCT definition_id FROM funnel_state WHERE node_id = $1 "
                            "ORDER BY 1", 1, &p, read_defs, &defs, err, sizeof err) != KA_OK) {
            fprintf(stderr, "kactl funnel: %s\n", err);
            rc = 1;
        } else if (defs.n == 0) {
            fprintf(stderr, "kactl funnel: node \"%s\" has no funnel yet (unknown node, or no "
                            "opportunity below it)\n", node);
            rc = 1;
        }
    }
    int tty = isatty(STDOUT_FILENO);
    for (int i = 0; rc == 0 && i < defs.n; i++)
        rc = show(cfg, pg, rds, node, defs.ids[i], tty);
    ka_redis_free(rds);
    ka_pg_free(pg);
    return rc;
}
