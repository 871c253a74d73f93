/* kactl alertmanager-config: an alertmanager.yml whose route tree follows the
 * org tree, so each alert reaches the manager responsible for its subject.
 *
 * The alert bridge (services/alert-bridge) labels every alert with its
 * subject's org path (division, region, team, rep); the routes here match
 * those labels:
 *   - a team's alerts go to the team manager's receiver;
 *   - critical ones of a team also to the region head's (continue);
 *   - forecast-gap alerts below a division also to the division head's;
 *   - alerts of a region or division node itself to its head's;
 *   - anything else (e.g. distributors' channel alerts) to the company head.
 * A manager without a contact is escalated to the next manager up who has
 * one (and named on stderr), so no alert is routed into a receiver that
 * delivers nowhere while someone above could be told.
 *
 * Contacts: CSV user_id,channel,address with channel email (an address),
 * wechat (a WeCom user id, `wechat_configs`) or webhook (an http(s) URL); a
 * user may have several rows. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csvfile.h"
#include "ka_buf.h"
#include "ka_pg.h"
#include "kactl.h"

#define CMD "kactl alertmanager-config"

typedef struct am_node {
    char *id, *parent, *kind, *manager;
    int up; /* index of the parent, -1 for the root */
} am_node_t;

typedef struct am_contact {
    char *user, *channel, *address;
} am_contact_t;

typedef struct am_opts {
    const char *contacts, *out;
    const char *group_wait, *group_interval, *repeat_interval, *resolve_timeout;
    const char *smtp_smarthost, *smtp_from;
    const char *wechat_corp_id, *wechat_secret_file, *wechat_agent_id;
} am_opts_t;

typedef struct am_tree {
    am_node_t *nodes;
    int n;
    am_contact_t *contacts;
    int ncontacts;
    char **users; /* app_user ids, sorted */
    int nusers;
} am_tree_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: " CMD " --contacts FILE [--out FILE]\n"
            "         [--group-wait D] [--group-interval D] [--repeat-interval D]\n"
            "         [--resolve-timeout D] [--smtp-smarthost HOST:PORT] [--smtp-from ADDRESS]\n"
            "         [--wechat-corp-id ID --wechat-api-secret-file FILE [--wechat-agent-id ID]]\n"
            "\n"
            "Writes an Alertmanager configuration (to stdout, or FILE) routing each alert\n"
            "to its subject's manager from the org tree in the database: a team's alerts to\n"
            "the team manager, critical ones also to the region head, forecast gaps also to\n"
            "the division head, grouped by team and alert type; a critical churn_risk on an\n"
            "account inhibits that account's visit_overdue.\n"
            "\n"
            "The contacts file is CSV with the header user_id,channel,address: channel\n"
            "email (an e-mail address), wechat (a WeCom user id) or webhook (an http or\n"
            "https URL). A manager without a contact is escalated to the next one up.\n"
            "Durations are Alertmanager's (0s, 30s, 5m, 4h); defaults: group wait 30s,\n"
            "group interval 5m, repeat interval 4h, resolve timeout 5m (the alert bridge\n"
            "re-sends firing alerts more often than that). E-mail goes through\n"
            "--smtp-smarthost (default localhost:25) from --smtp-from (default\n"
            "ka-alerts@localhost). WeCom needs the corp id and a file holding the API\n"
            "secret; the output is then readable by its owner only.\n");
}

/* Alertmanager's model.Duration: [0-9]+ with a unit, units may repeat
 * (1h30m); no sign, no fraction. */
static int valid_duration(const char *s)
{
    const char *p = s;
    if (!*p)
        return 0;
    while (*p) {
        if (*p < '0' || *p > '9')
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
        if (strncmp(p, "ms", 2) == 0)
            p += 2;
        else if (*p && strchr("smhdwy", *p))
            p++;
        else
            return 0;
    }
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_node(const void *a, const void *b)
{
    return strcmp(((const am_node_t *)a)->id, ((const am_node_t *)b)->id);
}

static int find_node(const am_tree_t *t, const char *id)
{
    am_node_t key = {.id = (char *)id};
    am_node_t *n = id ? bsearch(&key, t->nodes, (size_t)t->n, sizeof *t->nodes, cmp_node) : NULL;
    return n ? (int)(n - t->nodes) : -1;
}

static int is_user(const am_tree_t *t, const char *id)
{
    return bsearch(&id, t->users, (size_t)t->nusers, sizeof *t->users, cmp_str) != NULL;
}

static int has_contact(const am_tree_t *t, const char *user)
{
    for (int i = 0; i < t->ncontacts; i++)
        if (strcmp(t->contacts[i].user, user) == 0)
            return 1;
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s ? ka_strdup(s) : NULL;
}

static int read_nodes(void *ud, const ka_pgres_t *res)
{
    am_tree_t *t = ud;
    t->n = ka_pgres_rows(res);
    t->nodes = ka_calloc((size_t)t->n + 1, sizeof *t->nodes);
    for (int i = 0; i < t->n; i++) {
        t->nodes[i].id = ka_strdup(ka_pgres_value(res, i, 0));
        t->nodes[i].parent = dup_or_null(ka_pgres_value(res, i, 1));
        t->nodes[i].kind = ka_strdup(ka_pgres_value(res, i, 2));
        t->nodes[i].manager = dup_or_null(ka_pgres_value(res, i, 3));
    }
    return 0;
}

static int read_users(void *ud, const ka_pgres_t *res)
{
    am_tree_t *t = ud;
    t->nusers = ka_pgres_rows(res);
    t->users = ka_calloc((size_t)t->nusers + 1, sizeof *t->users);
    for (int i = 0; i < t->nusers; i++)
        t->users[i] = ka_strdup(ka_pgres_value(res, i, 0));
    return 0;
}

static void tree_free(am_tree_t *t)
{
    for (int i = 0; i < t->n; i++) {
        free(t->nodes[i].id);
        free(t->nodes[i].parent);
        free(t->nodes[i].kind);
        free(t->nodes[i].manager);
    }
    free(t->nodes);
    for (int i = 0; i < t->ncontacts; i++) {
        free(t->contacts[i].user);
        free(t->contacts[i].channel);
        free(t->contacts[i].address);
    }
    free(t->contacts);
    for (int i = 0; i < t->nusers; i++)
        free(t->users[i]);
    free(t->users);
}

/* The org tree and the users, in id order (byte order: the same file from
 * the same data). */
static int load_tree(const ka_config_t *cfg, am_tree_t *t)
{
    char err[KA_ERRSTR_SIZE];
    ka_pg_t *pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg) {
        fprintf(stderr, CMD ": %s\n", err);
        return 1;
    }
    ka_err_t rc = ka_pg_query(pg,
                              "SELECT id, parent_id, kind, manager_user_id FROM org_node "
                              "ORDER BY id COLLATE \"C\"",
                              0, NULL, read_nodes, t, err, sizeof err);
    if (rc == KA_OK)
        rc = ka_pg_query(pg, "SELECT id FROM app_user ORDER BY id COLLATE \"C\"", 0, NULL,
                         read_users, t, err, sizeof err);
    ka_pg_free(pg);
    if (rc != KA_OK) {
        fprintf(stderr, CMD ": %s\n", err);
        return 1;
    }
    if (t->n == 0) {
        fprintf(stderr, CMD ": the org tree is empty: load it first (kactl load org FILE)\n");
        return 1;
    }
    for (int i = 0; i < t->n; i++)
        t->nodes[i].up = find_node(t, t->nodes[i].parent);
    return 0;
}

/* Reads and checks the contacts file whole; names every bad line. */
static int load_contacts(const char *path, am_tree_t *t)
{
    char err[KA_ERRSTR_SIZE];
    csvfile_t f = {0};
    int bad = 0;
    if (csvfile_read(path, &f, err, sizeof err) != 0) {
        fprintf(stderr, CMD ": %s\n", err);
        return 1;
    }
    const char *want[] = {"user_id", "channel", "address"};
    if (f.n == 0 || f.records[0].n != 3 || strcmp(f.records[0].fields[0], want[0]) ||
        strcmp(f.records[0].fields[1], want[1]) || strcmp(f.records[0].fields[2], want[2])) {
        fprintf(stderr, "%s:1: expected the header user_id,channel,address\n", path);
        csvfile_free(&f);
        return 1;
    }
    t->contacts = ka_calloc((size_t)f.n, sizeof *t->contacts);
    for (int r = 1; r < f.n; r++) {
        const csv_record_t *rec = &f.records[r];
        if (rec->n != 3) {
            fprintf(stderr, "%s:%d: expected 3 fields, found %d\n", path, rec->line, rec->n);
            bad = 1;
            continue;
        }
        const char *user = rec->fields[0], *ch = rec->fields[1], *addr = rec->fields[2];
        const char *why = NULL;
        if (!is_user(t, user))
            why = "field user_id: no such user (load users first)";
        else if (strcmp(ch, "email") && strcmp(ch, "wechat") && strcmp(ch, "webhook"))
            why = "field channel: expected email, wechat or webhook";
        else if (!addr[0] || strpbrk(addr, " \t\r\n"))
            why = "field address: empty or with white space";
        else if (strcmp(ch, "email") == 0 && (!strchr(addr, '@') || addr[0] == '@'))
            why = "field address: not an e-mail address";
        else if (strcmp(ch, "webhook") == 0 && strncmp(addr, "http://", 7) &&
                 strncmp(addr, "https://", 8))
            why = "field address: a webhook needs an http:// or https:// URL";
        for (int i = 0; !why && i < t->ncontacts; i++)
            if (!strcmp(t->contacts[i].user, user) && !strcmp(t->contacts[i].channel, ch) &&
                !strcmp(t->contacts[i].address, addr))
                why = "the same contact is given twice";
        if (why) {
            fprintf(stderr, "%s:%d: %s\n", path, rec->line, why);
            bad = 1;
            continue;
        }
        am_contact_t *c = &t->contacts[t->ncontacts++];
        c->user = ka_strdup(user);
        c->channel = ka_strdup(ch);
        c->address = ka_strdup(addr);
    }
    csvfile_free(&f);
    return bad;
}

/* The manager told about node i: its own, or escalated up to the first
 * ancestor whose manager has a contact. NULL when nobody up the tree has one. */
static const char *responsible(const am_tree_t *t, int i)
{
    for (int j = i; j >= 0; j = t->nodes[j].up)
        if (t->nodes[j].manager && has_contact(t, t->nodes[j].manager))
            return t->nodes[j].manager;
    return NULL;
}

static int ancestor_of_kind(const am_tree_t *t, int i, const char *kind)
{
    for (int j = i; j >= 0; j = t->nodes[j].up)
        if (strcmp(t->nodes[j].kind, kind) == 0)
            return j;
    return -1;
}

static int same(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* YAML output ------------------------------------------------------------- */

/* s as a YAML double-quoted scalar. */
static void yq(ka_buf_t *b, const char *s)
{
    ka_buf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            ka_buf_append(b, esc, 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", *p);
            ka_buf_append(b, esc, 4);
        } else {
            ka_buf_append(b, (const char *)p, 1);
        }
    }
    ka_buf_append(b, "\"", 1);
}

static void put(ka_buf_t *b, const char *s)
{
    ka_buf_append(b, s, strlen(s));
}

/* One matcher `label="value"` (Alertmanager's syntax, value escaped), as a
 * YAML list item. value "" matches a label that is absent. */
static void matcher(ka_buf_t *b, const char *label, const char *op, const char *value)
{
    ka_buf_t m = KA_BUF_INIT;
    put(&m, label);
    put(&m, op);
    ka_buf_append(&m, "\"", 1);
    for (const char *p = value; *p; p++) {
        if (*p == '"' || *p == '\\')
            ka_buf_append(&m, "\\", 1);
        if (*p == '\n')
            put(&m, "\\n");
        else
            ka_buf_append(&m, p, 1);
    }
    ka_buf_append(&m, "\"", 1);
    put(b, "        - ");
    yq(b, ka_buf_str(&m));
    put(b, "\n");
    ka_buf_free(&m);
}

static void receiver_name(ka_buf_t *b, const char *user)
{
    ka_buf_t n = KA_BUF_INIT;
    put(&n, user ? "user-" : "ka-nowhere");
    if (user)
        put(&n, user);
    yq(b, ka_buf_str(&n));
    ka_buf_free(&n);
}

/* A child route: receiver, matchers (label, op, value triples), continue. */
static void route(ka_buf_t *b, const char *user, int cont, int nm, const char *const *m)
{
    put(b, "    - receiver: ");
    receiver_name(b, user);
    put(b, "\n      matchers:\n");
    for (int i = 0; i < nm; i++)
        matcher(b, m[3 * i], m[3 * i + 1], m[3 * i + 2]);
    if (cont)
        put(b, "      continue: true\n");
}

static int write_routes(const am_tree_t *t, ka_buf_t *b)
{
    int nroutes = 0;
    /* 1. Extra copies first, each with continue, so the owner's route below
     * still matches: a team's critical alerts to the region head, and forecast
     * gaps below a division to its head. Only where that is another person. */
    for (int i = 0; i < t->n; i++) {
        const am_node_t *nd = &t->nodes[i];
        int team = strcmp(nd->kind, "team") == 0, region = strcmp(nd->kind, "region") == 0;
        if (!team && !region)
            continue;
        const char *own = responsible(t, i);
        int r = ancestor_of_kind(t, nd->up, "region"), d = ancestor_of_kind(t, nd->up, "division");
        const char *rhead = r >= 0 ? responsible(t, r) : NULL;
        const char *dhead = d >= 0 ? responsible(t, d) : NULL;
        if (team && rhead && !same(rhead, own)) {
            const char *m[] = {"team", "=", nd->id, "severity", "=", "critical"};
            route(b, rhead, 1, 2, m);
            nroutes++;
        }
        if (dhead && !same(dhead, own) && team) {
            const char *m[] = {"team", "=", nd->id, "alertname", "=", "forecast_gap"};
            route(b, dhead, 1, 2, m);
            nroutes++;
        } else if (dhead && !same(dhead, own)) {
            /* A region's own alerts carry no team label. */
            const char *m[] = {"region", "=", nd->id, "team", "=", "",
                               "alertname", "=", "forecast_gap"};
            route(b, dhead, 1, 3, m);
            nroutes++;
        }
    }
    /* 2. The owner: the most specific level first (a team's alert also
     * carries its region and division labels). */
    const char *levels[] = {"team", "region", "division"};
    for (int l = 0; l < 3; l++) {
        for (int i = 0; i < t->n; i++) {
            if (strcmp(t->nodes[i].kind, levels[l]) != 0)
                continue;
            const char *m[] = {levels[l], "=", t->nodes[i].id};
            route(b, responsible(t, i), 0, 1, m);
            nroutes++;
        }
    }
    return nroutes;
}

static int write_receivers(const am_tree_t *t, const am_opts_t *o, ka_buf_t *b)
{
    int n = 1;
    put(b, "receivers:\n  - name: \"ka-nowhere\"\n");
    for (int u = 0; u < t->nusers; u++) {
        const char *user = t->users[u];
        if (!has_contact(t, user))
            continue;
        n++;
        put(b, "  - name: ");
        receiver_name(b, user);
        put(b, "\n");
        const char *channels[] = {"email", "wechat", "webhook"};
        for (int c = 0; c < 3; c++) {
            int first = 1;
            for (int i = 0; i < t->ncontacts; i++) {
                const am_contact_t *ct = &t->contacts[i];
                if (strcmp(ct->user, user) || strcmp(ct->channel, channels[c]))
                    continue;
                if (first) {
                    put(b, c == 0 ? "    email_configs:\n"
                           : c == 1 ? "    wechat_configs:\n"
                                    : "    webhook_configs:\n");
                    first = 0;
                }
                put(b, c == 0 ? "      - to: " : c == 1 ? "      - to_user: " : "      - url: ");
                yq(b, ct->address);
                put(b, "\n        send_resolved: true\n");
                if (c == 1 && o->wechat_agent_id) {
                    put(b, "        agent_id: ");
                    yq(b, o->wechat_agent_id);
                    put(b, "\n");
                }
            }
        }
    }
    return n;
}

static char *read_secret(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    ka_buf_t b = KA_BUF_INIT;
    char chunk[512];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        ka_buf_append(&b, chunk, got);
    fclose(f);
    char *s = ka_strdup(ka_buf_str(&b));
    ka_buf_free(&b);
    s[strcspn(s, "\r\n")] = '\0'; /* a file written by echo ends in a newline */
    return s;
}

static int build(const am_tree_t *t, const am_opts_t *o, const char *secret, ka_buf_t *b,
                 int *nroutes, int *nreceivers)
{
    int emails = 0;
    for (int i = 0; i < t->ncontacts; i++)
        emails += strcmp(t->contacts[i].channel, "email") == 0;
    put(b, "# Generated by `kactl alertmanager-config` from the org tree: edit the org tree\n"
           "# or the contacts file and generate it again rather than editing this file.\n"
           "global:\n  resolve_timeout: ");
    put(b, o->resolve_timeout);
    put(b, "\n");
    if (emails) {
        put(b, "  smtp_smarthost: ");
        yq(b, o->smtp_smarthost);
        put(b, "\n  smtp_from: ");
        yq(b, o->smtp_from);
        put(b, "\n");
    }
    if (secret) {
        put(b, "  wechat_api_corp_id: ");
        yq(b, o->wechat_corp_id);
        put(b, "\n  wechat_api_secret: ");
        yq(b, secret);
        put(b, "\n");
    }
    int root = -1;
    for (int i = 0; i < t->n && root < 0; i++)
        if (t->nodes[i].up < 0 && strcmp(t->nodes[i].kind, "company") == 0)
            root = i;
    put(b, "route:\n  receiver: ");
    receiver_name(b, root >= 0 ? responsible(t, root) : NULL);
    put(b, "\n  group_by: [team, alertname]\n  group_wait: ");
    put(b, o->group_wait);
    put(b, "\n  group_interval: ");
    put(b, o->group_interval);
    put(b, "\n  repeat_interval: ");
    put(b, o->repeat_interval);
    put(b, "\n  routes:\n");
    *nroutes = write_routes(t, b);
    put(b, "inhibit_rules:\n"
           "  # A critical churn risk on an account is the news; its overdue visit is a\n"
           "  # symptom the manager already has in hand.\n"
           "  - source_matchers: ['alertname=\"churn_risk\"', 'severity=\"critical\"']\n"
           "    target_matchers: ['alertname=\"visit_overdue\"']\n"
           "    equal: [account]\n");
    *nreceivers = write_receivers(t, o, b);
    return 0;
}

static int write_out(const char *path, const ka_buf_t *b, int secret)
{
    if (!path) {
        fwrite(b->data, 1, b->len, stdout);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    /* Written beside and renamed: Alertmanager reloading meanwhile never
     * reads half a file. */
    size_t len = strlen(path) + 8;
    char *tmp = ka_malloc(len);
    snprintf(tmp, len, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int rc = 1;
    if (!f) {
        fprintf(stderr, CMD ": could not write \"%s\": %s\n", tmp, strerror(errno));
        goto out;
    }
    if (chmod(tmp, secret ? 0600 : 0644) != 0 || fwrite(b->data, 1, b->len, f) != b->len) {
        fprintf(stderr, CMD ": could not write \"%s\": %s\n", tmp, strerror(errno));
        fclose(f);
        unlink(tmp);
        goto out;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, CMD ": could not write \"%s\": %s\n", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = 0;
out:
    free(tmp);
    return rc;
}

static int parse_args(int argc, char **argv, am_opts_t *o)
{
    static const struct {
        const char *flag;
        size_t off;
        int duration;
    } flags[] = {
        {"--contacts", offsetof(am_opts_t, contacts), 0},
        {"--out", offsetof(am_opts_t, out), 0},
        {"--group-wait", offsetof(am_opts_t, group_wait), 1},
        {"--group-interval", offsetof(am_opts_t, group_interval), 1},
        {"--repeat-interval", offsetof(am_opts_t, repeat_interval), 1},
        {"--resolve-timeout", offsetof(am_opts_t, resolve_timeout), 1},
        {"--smtp-smarthost", offsetof(am_opts_t, smtp_smarthost), 0},
        {"--smtp-from", offsetof(am_opts_t, smtp_from), 0},
        {"--wechat-corp-id", offsetof(am_opts_t, wechat_corp_id), 0},
        {"--wechat-api-secret-file", offsetof(am_opts_t, wechat_secret_file), 0},
        {"--wechat-agent-id", offsetof(am_opts_t, wechat_agent_id), 0},
    };
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return -1;
        }
        size_t f = 0;
        while (f < sizeof flags / sizeof flags[0] && strcmp(flags[f].flag, argv[i]) != 0)
            f++;
        if (f == sizeof flags / sizeof flags[0] || i + 1 >= argc) {
            fprintf(stderr, CMD ": unexpected argument \"%s\" (see " CMD " --help)\n", argv[i]);
            return 2;
        }
        const char *v = argv[++i];
        if (flags[f].duration && !valid_duration(v)) {
            fprintf(stderr, CMD ": %s expects a duration such as 0s, 30s, 5m or 4h\n",
                    flags[f].flag);
            return 2;
        }
        *(const char **)((char *)o + flags[f].off) = v;
    }
    if (!o->contacts) {
        fprintf(stderr, CMD ": --contacts FILE is required (see " CMD " --help)\n");
        return 2;
    }
    if (!o->wechat_corp_id != !o->wechat_secret_file) {
        fprintf(stderr, CMD ": --wechat-corp-id and --wechat-api-secret-file go together\n");
        return 2;
    }
    return 0;
}

int kactl_alertmanager_config(const ka_config_t *cfg, int argc, char **argv)
{
    am_opts_t o = {
        .group_wait = "30s",
        .group_interval = "5m",
        .repeat_interval = "4h",
        .resolve_timeout = "5m",
        .smtp_smarthost = "localhost:25",
        .smtp_from = "ka-alerts@localhost",
    };
    am_tree_t t = {0};
    ka_buf_t b = KA_BUF_INIT;
    char *secret = NULL;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if ((rc = load_tree(cfg, &t)) != 0 || (rc = load_contacts(o.contacts, &t)) != 0)
        goto out;
    int wechat = 0;
    for (int i = 0; i < t.ncontacts; i++)
        wechat += strcmp(t.contacts[i].channel, "wechat") == 0;
    if (wechat && !o.wechat_corp_id) {
        fprintf(stderr, CMD ": the contacts name WeCom users: give --wechat-corp-id and "
                        "--wechat-api-secret-file\n");
        rc = 2;
        goto out;
    }
    if (wechat) {
        secret = read_secret(o.wechat_secret_file);
        if (!secret || !secret[0]) {
            fprintf(stderr, CMD ": could not read a secret from \"%s\"\n", o.wechat_secret_file);
            rc = 1;
            goto out;
        }
    }
    /* Managers nobody can reach: their alerts go up the tree instead. */
    int unreachable = 0;
    for (int i = 0; i < t.n; i++) {
        const char *m = t.nodes[i].manager;
        if (!m || has_contact(&t, m))
            continue;
        const char *to = responsible(&t, i);
        fprintf(stderr, CMD ": %s (manager of %s) has no contact: %s alerts go to %s\n", m,
                t.nodes[i].id, t.nodes[i].id, to ? to : "nobody");
        unreachable++;
    }
    int nroutes = 0, nreceivers = 0;
    build(&t, &o, secret, &b, &nroutes, &nreceivers);
    if ((rc = write_out(o.out, &b, secret != NULL)) == 0)
        fprintf(stderr, CMD ": %d routes, %d receivers, %d contacts%s%s\n", nroutes, nreceivers,
                t.ncontacts, o.out ? " -> " : "", o.out ? o.out : "");
out:
    free(secret);
    ka_buf_free(&b);
    tree_free(&t);
    return rc;
}
