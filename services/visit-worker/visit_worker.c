/* The visit worker's batch logic. One batch costs two round trips beyond the
 * runtime's BEGIN + event-id dedupe: one pipeline that creates the accounts
 * the batch names for the first time and reads (and locks) every account it
 * touches with its follow-up plan and firing alerts, and one that writes
 * everything and commits (queued here, run by the runtime). The visits are
 * applied in memory, in order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ka/v1/alert.pb-c.h"
#include "ka/v1/visit.pb-c.h"
#include "ka_account_key.h"
#include "ka_accounts.h"
#include "ka_alert.h"
#include "ka_buf.h"
#include "ka_cols.h"
#include "ka_hash.h"
#include "ka_log.h"
#include "ka_visit_decode.h"
#include "visit_scan.h"
#include "visit_worker.h"

#define DAY_MS 86400000LL

/* One account during a batch ------------------------------------------------ */

typedef struct plan {
    int active;
    char visit_id[KA_MAX_ID_LEN + 1];
    char rep[KA_MAX_ID_LEN + 1];
    char action[12];
    int interval_days; /* 0: an explicit date */
    int64_t due_ms, set_ms;
} plan_t;

typedef struct dm_alert {
    char *opp, *account, *owner, *stage;
    int64_t starts_ms;
    int resolved;
} dm_alert_t;

typedef struct acct {
    char id[KA_MAX_ID_LEN + 1];
    char *key;
    char man_class[4];
    int64_t man_class_ms, last_visit_ms, last_dm_ms, last_activity_ms;
    plan_t plan;
    int plan_changed;
    int64_t overdue_since; /* a firing visit-overdue alert's start; 0: none */
    char overdue_severity[12];
    int touched;
} acct_t;


struct visit_ctx {
    const ka_config_t *cfg;
    int64_t scan_interval_ms, next_scan_mono_ms;
    int gap_days;

    /* per batch */
    ka_accounts_t accounts;
    acct_t *accts;
    size_t naccts;
    dm_alert_t *dm;
    size_t ndm;

    /* after commit: the touched accounts' cache values */
    acct_t *cache;
    size_t ncache;
};

static void copy(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

static void free_dm(visit_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->ndm; i++) {
        free(ctx->dm[i].opp);
        free(ctx->dm[i].account);
        free(ctx->dm[i].owner);
        free(ctx->dm[i].stage);
    }
    free(ctx->dm);
    ctx->dm = NULL;
    ctx->ndm = 0;
}

static void free_accts(acct_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(a[i].key);
    free(a);
}

static void reset_batch(visit_ctx_t *ctx)
{
    free_accts(ctx->accts, ctx->naccts);
    ctx->accts = NULL;
    ctx->naccts = 0;
    ka_accounts_free(&ctx->accounts);
    free_dm(ctx);
}

static void reset_cache(visit_ctx_t *ctx)
{
    free_accts(ctx->cache, ctx->ncache);
    ctx->cache = NULL;
    ctx->ncache = 0;
}

static acct_t *find_acct(visit_ctx_t *ctx, const char *id)
{
    for (size_t i = 0; i < ctx->naccts; i++)
        if (strcmp(ctx->accts[i].id, id) == 0)
            return &ctx->accts[i];
    return NULL;
}

/* Reading rows -------------------------------------------------------------- */

static const char *val(const ka_pgres_t *res, int row, int col)
{
    const char *v = ka_pgres_value(res, row, col);
    return v ? v : "";
}

static int read_accounts(void *ud, const ka_pgres_t *res)
{
    visit_ctx_t *ctx = ud;
    size_t n = (size_t)ka_pgres_rows(res);
    ctx->accts = ka_calloc(n + 1, sizeof *ctx->accts);
    ctx->naccts = n;
    for (int i = 0; i < (int)n; i++) {
        acct_t *a = &ctx->accts[i];
        copy(a->id, sizeof a->id, val(res, i, 0));
        a->key = ka_strdup(val(res, i, 1));
        copy(a->man_class, sizeof a->man_class, val(res, i, 2));
        a->man_class_ms = ka_pgres_int(res, i, 3, 0);
        a->last_visit_ms = ka_pgres_int(res, i, 4, 0);
        a->last_dm_ms = ka_pgres_int(res, i, 5, 0);
        a->last_activity_ms = ka_pgres_int(res, i, 6, 0);
        if (ka_pgres_value(res, i, 7)) {
            plan_t *p = &a->plan;
            p->active = 1;
            copy(p->visit_id, sizeof p->visit_id, val(res, i, 7));
            copy(p->rep, sizeof p->rep, val(res, i, 8));
            copy(p->action, sizeof p->action, val(res, i, 9));
            p->interval_days = (int)ka_pgres_int(res, i, 10, 0);
            p->due_ms = ka_pgres_int(res, i, 11, 0);
            p->set_ms = ka_pgres_int(res, i, 12, 0);
        }
        a->overdue_since = ka_pgres_int(res, i, 13, 0);
        copy(a->overdue_severity, sizeof a->overdue_severity, val(res, i, 14));
    }
    return 0;
}

static int read_dm_alerts(void *ud, const ka_pgres_t *res)
{
    visit_ctx_t *ctx = ud;
    size_t n = (size_t)ka_pgres_rows(res);
    ctx->dm = ka_calloc(n + 1, sizeof *ctx->dm);
    ctx->ndm = n;
    for (int i = 0; i < (int)n; i++) {
        ctx->dm[i].opp = ka_strdup(val(res, i, 0));
        ctx->dm[i].account = ka_strdup(val(res, i, 1));
        ctx->dm[i].owner = ka_strdup(val(res, i, 2));
        ctx->dm[i].stage = ka_strdup(val(res, i, 3));
        ctx->dm[i].starts_ms = ka_pgres_int(res, i, 4, 0);
    }
    return 0;
}

/* Accounts of the batch ------------------------------------------------------ */

/* The account an event names, as loaded and locked; NULL when it names none
 * we know. */
static acct_t *account_of(visit_ctx_t *ctx, const Ka__V1__VisitEvent *e)
{
    const char *id = ka_accounts_id(&ctx->accounts, e->account);
    return id ? find_acct(ctx, id) : NULL;
}

static ka_err_t queue_reads(visit_ctx_t *ctx, ka_tx_t *tx, ka_event_t *const *events, size_t n,
                            char *errstr, size_t errlen)
{
    ka_pg_t *pg = ka_tx_pg(tx);
    ka_pg_param_t p[3];
    int any_dm = 0;
    ka_err_t rc;

    ka_accounts_begin(&ctx->accounts);
    for (size_t i = 0; i < n; i++) {
        const Ka__V1__VisitEvent *e = events[i]->decoded;
        for (size_t c = 0; c < e->n_contacts; c++)
            any_dm |= e->contacts[c]->role == KA__V1__BUYING_ROLE__BUYING_ROLE_DECISION_MAKER;
        ka_accounts_add(&ctx->accounts, e->account, e->rep_id, events[i]->event_id);
    }
    /* The first visit naming an account creates it, assigned to the rep;
     * then every account of the batch is read and locked. */
    if ((rc = ka_accounts_queue(&ctx->accounts, pg, errstr, errlen)) != KA_OK)
        return rc;
    ka_accounts_params(&ctx->accounts, p);
    if ((rc = ka_pg_pipe_push(pg, "visit_load", 3, p, read_accounts, ctx, errstr, errlen)))
        return rc;
    if (any_dm &&
        (rc = ka_pg_pipe_push(pg, "visit_dm_firing", 3, p, read_dm_alerts, ctx, errstr, errlen)))
        return rc;
    return ka_tx_flush(tx, errstr, errlen);
}

/* Applying visits in memory ------------------------------------------------------ */

typedef struct rows {
    ka_cols_t visit, contact, visit_contact, man, acct, plan, unplan;
} rows_t;

static void rows_begin(rows_t *r)
{
    ka_cols_begin(&r->visit, 19);
    ka_cols_begin(&r->contact, 7);
    ka_cols_begin(&r->visit_contact, 4);
    ka_cols_begin(&r->man, 5);
    ka_cols_begin(&r->acct, 6);
    ka_cols_begin(&r->plan, 7);
    ka_cols_begin(&r->unplan, 1);
}

static void rows_free(rows_t *r)
{
    ka_cols_t *all[] = {&r->visit, &r->contact, &r->visit_contact, &r->man, &r->acct, &r->plan,
                     &r->unplan};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        ka_cols_free(all[i]);
}

static void add_bool(ka_buf_t *b, int v)
{
    ka_buf_array_add(b, v < 0 ? NULL : v ? "t" : "f");
}

/* A contact without the CRM's id is known by its account and normalized name,
 * so the same person met twice is one contact. */
static void contact_id(const char *account, const Ka__V1__ContactMet *c, char *out, size_t len)
{
    char norm[VISIT_MAX_NAME_LEN * 4 + 1], hex[KA_HASH_HEX_LEN];
    ka_buf_t b = KA_BUF_INIT;
    if (c->contact_id && *c->contact_id) {
        copy(out, len, c->contact_id);
        return;
    }
    if (ka_account_normalize_name(c->name, norm, sizeof norm) < 0)
        copy(norm, sizeof norm, c->name);
    ka_buf_append(&b, account, strlen(account) + 1);
    ka_buf_puts(&b, norm);
    ka_hash128_hex(b.data, b.len, hex);
    snprintf(out, len, "ct-%s", hex);
    ka_buf_free(&b);
}

static void record_contacts(rows_t *r, const acct_t *a, const ka_event_t *ev,
                            const Ka__V1__VisitEvent *e)
{
    for (size_t i = 0; i < e->n_contacts; i++) {
        const Ka__V1__ContactMet *c = e->contacts[i];
        char id[KA_MAX_ID_LEN + 1];
        contact_id(a->id, c, id, sizeof id);
        ka_buf_array_add(&r->contact.b[0], id);
        ka_buf_array_add(&r->contact.b[1], a->id);
        ka_buf_array_add(&r->contact.b[2], c->name && *c->name ? c->name : id);
        ka_buf_array_add(&r->contact.b[3], c->title && *c->title ? c->title : NULL);
        ka_buf_array_add(&r->contact.b[4], visit_role_name(c->role));
        ka_buf_array_add(&r->contact.b[5], visit_function_name(c->function));
        ka_buf_array_add_int(&r->contact.b[6], e->visited_at_ms);
        r->contact.rows++;
        ka_buf_array_add(&r->visit_contact.b[0], ev->event_id);
        ka_buf_array_add(&r->visit_contact.b[1], id);
        ka_buf_array_add(&r->visit_contact.b[2], visit_role_name(c->role));
        ka_buf_array_add(&r->visit_contact.b[3], visit_function_name(c->function));
        r->visit_contact.rows++;
    }
}

static void record_visit(rows_t *r, const acct_t *a, const ka_event_t *ev,
                         const Ka__V1__VisitEvent *e, int64_t next_due, int64_t plan_due,
                         int on_time, int superseded)
{
    ka_cols_t *v = &r->visit;
    const Ka__V1__FollowUpPlan *f = e->follow_up;
    int days = f && f->next_case == KA__V1__FOLLOW_UP_PLAN__NEXT_INTERVAL
                   ? visit_interval_days(f->interval)
                   : 0;
    ka_buf_array_add(&v->b[0], ev->event_id); /* the visit's id is its event's */
    ka_buf_array_add(&v->b[1], ev->event_id);
    ka_buf_array_add(&v->b[2], a->id);
    ka_buf_array_add(&v->b[3], e->rep_id);
    ka_buf_array_add_int(&v->b[4], e->visited_at_ms);
    ka_buf_array_add(&v->b[5], visit_objective_name(e->objective));
    ka_buf_array_add(&v->b[6], e->opportunity_id && *e->opportunity_id ? e->opportunity_id : NULL);
    ka_buf_array_add(&v->b[7], visit_satisfaction_name(e->satisfaction));
    add_bool(&v->b[8], e->man ? e->man->money : -1);
    add_bool(&v->b[9], e->man ? e->man->authority : -1);
    add_bool(&v->b[10], e->man ? e->man->need : -1);
    ka_buf_array_add(&v->b[11], f ? visit_action_name(f->action) : NULL);
    if (days)
        ka_buf_array_add_int(&v->b[12], days);
    else
        ka_buf_array_add(&v->b[12], NULL);
    ka_buf_array_add(&v->b[13], f && f->next_case == KA__V1__FOLLOW_UP_PLAN__NEXT_NEXT_VISIT_DATE
                                    ? f->next_visit_date
                                    : NULL);
    ka_buf_array_add_ms(&v->b[14], next_due);
    ka_buf_array_add(&v->b[15], e->notes && *e->notes ? e->notes : NULL);
    ka_buf_array_add_ms(&v->b[16], plan_due);
    add_bool(&v->b[17], on_time);
    add_bool(&v->b[18], superseded);
    v->rows++;
}

static int met_decision_maker(const Ka__V1__VisitEvent *e)
{
    for (size_t i = 0; i < e->n_contacts; i++)
        if (e->contacts[i]->role == KA__V1__BUYING_ROLE__BUYING_ROLE_DECISION_MAKER)
            return 1;
    return 0;
}

/* The plan a current visit leaves in force: its own, or, when it brings none,
 * the rhythm of the plan it fulfils (the same interval from this visit). An
 * account classed 'man' (not a prospect) gets none: no follow-up alerts. */
static plan_t next_plan(const acct_t *a, const ka_event_t *ev, const Ka__V1__VisitEvent *e)
{
    plan_t p;
    memset(&p, 0, sizeof p);
    if (strcmp(a->man_class, "man") == 0)
        return p;
    if (e->follow_up) {
        p.due_ms = visit_due_ms(e->follow_up, e->visited_at_ms);
        copy(p.action, sizeof p.action, visit_action_name(e->follow_up->action));
        if (e->follow_up->next_case == KA__V1__FOLLOW_UP_PLAN__NEXT_INTERVAL)
            p.interval_days = visit_interval_days(e->follow_up->interval);
    } else if (a->plan.active && a->plan.interval_days) {
        p.due_ms = e->visited_at_ms + a->plan.interval_days * DAY_MS;
        copy(p.action, sizeof p.action, a->plan.action);
        p.interval_days = a->plan.interval_days;
    }
    if (!p.due_ms)
        return p;
    p.active = 1;
    copy(p.visit_id, sizeof p.visit_id, ev->event_id);
    copy(p.rep, sizeof p.rep, e->rep_id);
    p.set_ms = e->visited_at_ms;
    return p;
}

static ka_err_t apply_one(visit_ctx_t *ctx, ka_tx_t *tx, ka_event_t *ev, rows_t *r,
                          int64_t now_ms, char *errstr, size_t errlen)
{
    const Ka__V1__VisitEvent *e = ev->decoded;
    acct_t *a = account_of(ctx, e);
    ka_err_t rc = KA_OK;
    if (!a) {
        ka_tx_reject(tx, ev, KA_REASON_ACCOUNT, "account_id \"%s\" is not a known account",
                     e->account->account_id ? e->account->account_id : "");
        return KA_OK;
    }
    int64_t t = e->visited_at_ms, next_due = 0, plan_due = 0;
    int on_time = -1;
    /* A visit older than the account's latest arrived late: history only. */
    int superseded = t < a->last_visit_ms;
    if (a->plan.active && t > a->plan.set_ms) {
        plan_due = a->plan.due_ms;
        on_time = t <= plan_due;
    }
    if (!superseded) {
        if (e->man) {
            char cls[4];
            visit_man_class(e->man, cls);
            if (strcmp(cls, a->man_class) != 0) {
                ka_buf_array_add(&r->man.b[0], a->id);
                ka_buf_array_add(&r->man.b[1], a->man_class[0] ? a->man_class : NULL);
                ka_buf_array_add(&r->man.b[2], cls);
                ka_buf_array_add(&r->man.b[3], ev->event_id);
                ka_buf_array_add_int(&r->man.b[4], t);
                r->man.rows++;
                copy(a->man_class, sizeof a->man_class, cls);
            }
            a->man_class_ms = t;
        }
        a->plan = next_plan(a, ev, e);
        a->plan_changed = 1;
        next_due = a->plan.active ? a->plan.due_ms : 0;
        a->last_visit_ms = t;
        if (a->overdue_since &&
            (rc = visit_overdue_alert(tx, a->id, a->overdue_severity[0] ? a->overdue_severity
                                                                       : "warning",
                                      e->rep_id, a->overdue_since, t, 0, ev->event_id, errstr,
                                      errlen)) != KA_OK)
            return rc;
        a->overdue_since = 0;
    }
    if (met_decision_maker(e)) {
        if (t > a->last_dm_ms)
            a->last_dm_ms = t;
        for (size_t i = 0; t >= now_ms - ctx->gap_days * DAY_MS && i < ctx->ndm; i++) {
            dm_alert_t *d = &ctx->dm[i];
            if (d->resolved || strcmp(d->account, a->id) != 0)
                continue;
            if ((rc = visit_dm_gap_alert(tx, d->opp, d->account, d->owner, d->stage, d->starts_ms,
                                         t, 0, ev->event_id, errstr, errlen)) != KA_OK)
                return rc;
            d->resolved = 1;
        }
    }
    if (t > a->last_activity_ms)
        a->last_activity_ms = t;
    a->touched = 1;
    record_visit(r, a, ev, e, next_due, plan_due, on_time, superseded);
    record_contacts(r, a, ev, e);
    return KA_OK;
}

static ka_err_t queue_writes(visit_ctx_t *ctx, ka_tx_t *tx, rows_t *r, char *errstr,
                             size_t errlen)
{
    ka_pg_t *pg = ka_tx_pg(tx);
    ka_pg_param_t p[KA_COLS_MAX];
    ka_err_t rc = KA_OK;

    for (size_t i = 0; i < ctx->naccts; i++) {
        acct_t *a = &ctx->accts[i];
        if (!a->touched)
            continue;
        ka_buf_array_add(&r->acct.b[0], a->id);
        ka_buf_array_add(&r->acct.b[1], a->man_class[0] ? a->man_class : NULL);
        ka_buf_array_add_ms(&r->acct.b[2], a->man_class_ms);
        ka_buf_array_add_ms(&r->acct.b[3], a->last_visit_ms);
        ka_buf_array_add_ms(&r->acct.b[4], a->last_dm_ms);
        ka_buf_array_add_ms(&r->acct.b[5], a->last_activity_ms);
        r->acct.rows++;
        if (!a->plan_changed)
            continue;
        if (!a->plan.active) {
            ka_buf_array_add(&r->unplan.b[0], a->id);
            r->unplan.rows++;
            continue;
        }
        ka_buf_array_add(&r->plan.b[0], a->id);
        ka_buf_array_add(&r->plan.b[1], a->plan.visit_id);
        ka_buf_array_add(&r->plan.b[2], a->plan.rep);
        ka_buf_array_add(&r->plan.b[3], a->plan.action);
        if (a->plan.interval_days)
            ka_buf_array_add_int(&r->plan.b[4], a->plan.interval_days);
        else
            ka_buf_array_add(&r->plan.b[4], NULL);
        ka_buf_array_add_int(&r->plan.b[5], a->plan.due_ms);
        ka_buf_array_add_int(&r->plan.b[6], a->plan.set_ms);
        r->plan.rows++;
    }
    /* In dependency order: visits before the contacts and plans naming them. */
    struct {
        const char *stmt;
        ka_cols_t *c;
    } steps[] = {
        {"visit_insert", &r->visit},       {"visit_contacts", &r->contact},
        {"visit_contact_links", &r->visit_contact}, {"visit_man_history", &r->man},
        {"visit_account_update", &r->acct}, {"visit_plan_upsert", &r->plan},
        {"visit_plan_delete", &r->unplan},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0] && rc == KA_OK; i++) {
        ka_cols_end(steps[i].c, p);
        if (steps[i].c->rows)
            rc = ka_pg_pipe_push(pg, steps[i].stmt, steps[i].c->n, p, NULL, NULL, errstr, errlen);
    }
    return rc;
}

static ka_err_t visit_apply(void *ud, ka_tx_t *tx, ka_event_t *const *events, size_t n,
                            char *errstr, size_t errlen)
{
    visit_ctx_t *ctx = ud;
    rows_t r;
    int64_t now_ms = ka_now_ms();
    ka_err_t rc;

    reset_batch(ctx);
    reset_cache(ctx);
    rows_begin(&r);
    if ((rc = queue_reads(ctx, tx, events, n, errstr, errlen)) != KA_OK)
        goto out;
    for (size_t i = 0; i < n && rc == KA_OK; i++)
        rc = apply_one(ctx, tx, events[i], &r, now_ms, errstr, errlen);
    if (rc == KA_OK)
        rc = queue_writes(ctx, tx, &r, errstr, errlen);
    if (rc == KA_OK) { /* what the cache gets once this commits */
        ctx->cache = ctx->accts;
        ctx->ncache = ctx->naccts;
        ctx->accts = NULL;
        ctx->naccts = 0;
    }
out:
    rows_free(&r);
    return rc;
}

/* Redis ---------------------------------------------------------------------------- */

void visit_account_key(char *out, size_t len, const char *account_id)
{
    snprintf(out, len, "ka:account:%s", account_id);
}

static void cache_account(ka_redis_t *rds, const char *id, const char *man_class,
                          int64_t last_visit, int64_t last_dm, int64_t due)
{
    char key[128], lv[24], dm[24], du[24];
    visit_account_key(key, sizeof key, id);
    snprintf(lv, sizeof lv, "%lld", (long long)last_visit);
    snprintf(dm, sizeof dm, "%lld", (long long)last_dm);
    snprintf(du, sizeof du, "%lld", (long long)due);
    const char *hset[10] = {"HSET", key, "last_visit_ms", lv, "last_decision_maker_visit_ms", dm};
    int n = 6;
    if (man_class && *man_class) {
        hset[n++] = "man_class";
        hset[n++] = man_class;
    }
    if (due) {
        hset[n++] = "next_due_ms";
        hset[n++] = du;
        const char *zadd[] = {"ZADD", VISIT_DUE_KEY, du, id};
        ka_redis_append_str(rds, 4, zadd);
    } else {
        const char *hdel[] = {"HDEL", key, "next_due_ms"};
        const char *zrem[] = {"ZREM", VISIT_DUE_KEY, id};
        ka_redis_append_str(rds, 3, hdel);
        ka_redis_append_str(rds, 3, zrem);
    }
    ka_redis_append_str(rds, n, hset);
}

static ka_err_t visit_after_commit(void *ud, ka_redis_t *rds, ka_event_t *const *events, size_t n,
                                   char *errstr, size_t errlen)
{
    visit_ctx_t *ctx = ud;
    (void)events;
    (void)n;
    for (size_t i = 0; i < ctx->ncache; i++) {
        const acct_t *a = &ctx->cache[i];
        if (a->touched)
            cache_account(rds, a->id, a->man_class, a->last_visit_ms, a->last_dm_ms,
                          a->plan.active ? a->plan.due_ms : 0);
    }
    reset_cache(ctx);
    return ka_redis_flush(rds, errstr, errlen);
}

typedef struct rebuild {
    ka_redis_t *rds;
    ka_err_t rc;
    char *errstr;
    size_t errlen;
} rebuild_t;

static int rebuild_rows(void *ud, const ka_pgres_t *res)
{
    rebuild_t *rb = ud;
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        cache_account(rb->rds, val(res, i, 0), ka_pgres_value(res, i, 1),
                      ka_pgres_int(res, i, 2, 0), ka_pgres_int(res, i, 3, 0),
                      ka_pgres_int(res, i, 4, 0));
        /* Bounded pipelines: a large company has many accounts. */
        if (i % 2000 == 1999 && rb->rc == KA_OK)
            rb->rc = ka_redis_flush(rb->rds, rb->errstr, rb->errlen);
    }
    return 0;
}

static ka_err_t visit_rebuild(void *ud, ka_pg_t *pg, ka_redis_t *rds, char *errstr, size_t errlen)
{
    rebuild_t rb = {rds, KA_OK, errstr, errlen};
    (void)ud;
    const char *del[] = {"DEL", VISIT_DUE_KEY};
    ka_redis_append_str(rds, 2, del);
    ka_err_t rc = ka_pg_query(pg, "visit_cache_all", 0, NULL, rebuild_rows, &rb, errstr, errlen);
    if (rc == KA_OK && rb.rc != KA_OK)
        rc = rb.rc;
    if (rc == KA_OK)
        rc = ka_redis_flush(rds, errstr, errlen);
    return rc;
}

/* Setup ------------------------------------------------------------------------------ */

static ka_err_t visit_handler_decode(void *ud, const ka_msg_t *msg, void **decoded,
                                     char *event_id, size_t idlen, ka_reject_t *rej)
{
    (void)ud;
    Ka__V1__VisitEvent *ev = NULL;
    ka_err_t rc = visit_decode_msg(msg, ka_now_ms(), &ev, event_id, idlen, rej);
    *decoded = ev;
    return rc;
}

static void visit_free_decoded(void *ud, void *decoded)
{
    (void)ud;
    ka__v1__visit_event__free_unpacked(decoded, NULL);
}

#define MS(col) "(extract(epoch FROM " col ") * 1000)::bigint"
#define TS(col) "to_timestamp(" col " / 1000.0)"

static const char *statements[][2] = {
    /* Locked: two instances never interleave one account's plan. */
    {"visit_load",
     "SELECT a.id, a.canonical_key, a.man_class, " MS("a.man_class_at") ", "
     MS("a.last_visit_at") ", " MS("a.last_decision_maker_visit_at") ", "
     MS("a.last_activity_at") ", f.visit_id, f.rep_id, f.action, f.interval_days, "
     MS("f.next_due_at") ", " MS("f.set_at") ", " MS("al.starts_at") ", al.severity "
     "FROM account a LEFT JOIN follow_up f ON f.account_id = a.id "
     "LEFT JOIN alert_state al ON al.subject_kind = 'account' AND al.subject_id = a.id "
     "AND al.type = 'visit_overdue' AND al.status = 'firing' "
     "WHERE " KA_ACCOUNTS_MATCH("a") " ORDER BY a.id FOR UPDATE OF a"},
    {"visit_dm_firing",
     "SELECT al.subject_id, al.details->>'account_id', al.details->>'owner_rep_id', "
     "al.details->>'stage_code', " MS("al.starts_at") " FROM alert_state al "
     "WHERE al.type = 'decision_maker_gap' AND al.status = 'firing' "
     "AND al.details->>'account_id' IN (SELECT a.id FROM account a "
     "WHERE " KA_ACCOUNTS_MATCH("a") ")"},
    {"visit_insert",
     "INSERT INTO visit (id, event_id, account_id, rep_id, visited_at, objective, opportunity_id, "
     "satisfaction, man_money, man_authority, man_need, follow_up_action, "
     "follow_up_interval_days, follow_up_date, next_due_at, notes, plan_due_at, on_time, "
     "superseded) SELECT v.id, v.ev, v.account, v.rep, " TS("v.at") ", v.objective, v.opp, "
     "v.sat, v.m, v.a, v.n, v.action, v.days, v.date::date, " TS("v.due") ", v.notes, "
     TS("v.plan_due") ", v.on_time, v.superseded "
     "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], "
     "$7::text[], $8::text[], $9::boolean[], $10::boolean[], $11::boolean[], $12::text[], "
     "$13::int[], $14::text[], $15::bigint[], $16::text[], $17::bigint[], $18::boolean[], "
     "$19::boolean[]) AS v(id, ev, account, rep, at, objective, opp, sat, m, a, n, action, days, "
     "date, due, notes, plan_due, on_time, superseded) ON CONFLICT (id) DO NOTHING"},
    /* The latest sighting of a contact names its role; older ones keep theirs. */
    {"visit_contacts",
     "INSERT INTO contact AS c (id, account_id, name, title, buying_role, buying_function, "
     "last_visit_at) SELECT DISTINCT ON (x.id) x.id, x.account, x.name, x.title, x.role, x.fn, "
     TS("x.at") " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
     "$6::text[], $7::bigint[]) WITH ORDINALITY AS x(id, account, name, title, role, fn, at, i) "
     "ORDER BY x.id, x.at DESC, x.i DESC "
     "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, "
     "title = coalesce(EXCLUDED.title, c.title), "
     "buying_role = coalesce(EXCLUDED.buying_role, c.buying_role), "
     "buying_function = coalesce(EXCLUDED.buying_function, c.buying_function), "
     "last_visit_at = EXCLUDED.last_visit_at, updated_at = now() "
     "WHERE c.last_visit_at IS NULL OR EXCLUDED.last_visit_at >= c.last_visit_at"},
    {"visit_contact_links",
     "INSERT INTO visit_contact (visit_id, contact_id, buying_role, buying_function) "
     "SELECT DISTINCT ON (x.visit, x.contact) x.visit, x.contact, x.role, x.fn "
     "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) "
     "AS x(visit, contact, role, fn) ON CONFLICT DO NOTHING"},
    {"visit_man_history",
     "INSERT INTO account_man_history (account_id, previous_man_class, man_class, visit_id, "
     "changed_at) SELECT h.account, h.prev, h.cls, h.visit, " TS("h.at") " FROM "
     "unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) "
     "AS h(account, prev, cls, visit, at) ON CONFLICT (account_id, visit_id) DO NOTHING"},
    {"visit_account_update",
     "UPDATE account a SET man_class = u.cls, man_class_at = " TS("u.cls_at") ", "
     "last_visit_at = " TS("u.lv") ", last_decision_maker_visit_at = " TS("u.dm") ", "
     "last_activity_at = greatest(a.last_activity_at, " TS("u.act") "), updated_at = now() "
     "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], "
     "$6::bigint[]) AS u(id, cls, cls_at, lv, dm, act) WHERE a.id = u.id"},
    {"visit_plan_upsert",
     "INSERT INTO follow_up (account_id, visit_id, rep_id, action, interval_days, next_due_at, "
     "set_at) SELECT p.account, p.visit, p.rep, p.action, p.days, " TS("p.due") ", "
     TS("p.at") " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], "
     "$6::bigint[], $7::bigint[]) AS p(account, visit, rep, action, days, due, at) "
     "ON CONFLICT (account_id) DO UPDATE SET visit_id = EXCLUDED.visit_id, "
     "rep_id = EXCLUDED.rep_id, action = EXCLUDED.action, "
     "interval_days = EXCLUDED.interval_days, next_due_at = EXCLUDED.next_due_at, "
     "set_at = EXCLUDED.set_at, updated_at = now()"},
    {"visit_plan_delete", "DELETE FROM follow_up WHERE account_id = ANY($1::text[])"},
    {"visit_cache_all",
     "SELECT a.id, a.man_class, " MS("a.last_visit_at") ", "
     MS("a.last_decision_maker_visit_at") ", " MS("f.next_due_at") " "
     "FROM account a LEFT JOIN follow_up f ON f.account_id = a.id "
     "WHERE a.last_visit_at IS NOT NULL OR f.account_id IS NOT NULL"},
};

static ka_err_t visit_prepare(void *ud, ka_pg_t *pg, char *errstr, size_t errlen)
{
    (void)ud;
    if (ka_alert_prepare(pg, errstr, errlen) != KA_OK ||
        ka_accounts_prepare(pg, errstr, errlen) != KA_OK ||
        visit_scan_prepare(pg, errstr, errlen) != KA_OK)
        return KA_ERR;
    return ka_pg_prepare_all(pg, statements, sizeof statements / sizeof statements[0], errstr,
                             errlen);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void visit_tick(void *ud, ka_worker_t *w)
{
    visit_ctx_t *ctx = ud;
    char err[KA_ERRSTR_SIZE];
    visit_scan_counts_t c;
    int64_t mono = mono_ms();
    if (mono < ctx->next_scan_mono_ms)
        return;
    ctx->next_scan_mono_ms = mono + ctx->scan_interval_ms;
    if (visit_scan_run(w, ka_now_ms(), ctx->gap_days, &c, err, sizeof err) != KA_OK)
        ka_log(KA_LOG_WARN, "visit scan failed", "{s:s}", "error", err);
    else if (c.overdue_fired || c.overdue_resolved || c.dm_fired || c.dm_resolved)
        ka_log(KA_LOG_INFO, "visit scan", "{s:i,s:i,s:i,s:i}", "overdue_fired", c.overdue_fired,
               "overdue_resolved", c.overdue_resolved, "decision_maker_gap_fired", c.dm_fired,
               "decision_maker_gap_resolved", c.dm_resolved);
}

visit_ctx_t *visit_ctx_new(const ka_config_t *cfg)
{
    visit_ctx_t *ctx = ka_calloc(1, sizeof *ctx);
    ctx->cfg = cfg;
    ctx->scan_interval_ms = ka_config_int(cfg, "KA_SCAN_INTERVAL_MS");
    ctx->gap_days = (int)ka_config_int(cfg, "KA_DECISION_MAKER_GAP_DAYS");
    return ctx;
}

void visit_ctx_free(visit_ctx_t *ctx)
{
    if (!ctx)
        return;
    reset_batch(ctx);
    reset_cache(ctx);
    free(ctx);
}

void visit_handler_init(ka_handler_t *h, visit_ctx_t *ctx)
{
    memset(h, 0, sizeof *h);
    h->ud = ctx;
    h->prepare = visit_prepare;
    h->decode = visit_handler_decode;
    h->free_decoded = visit_free_decoded;
    h->apply = visit_apply;
    h->after_commit = visit_after_commit;
    h->rebuild_cache = visit_rebuild;
    h->tick = visit_tick;
}
