/* The order worker's periodic rules: tiers, churn risk and the end of
 * channel alerts (see order_scan.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ka/v1/alert.pb-c.h"
#include "ka_alert.h"
#include "ka_buf.h"
#include "ka_log.h"
#include "ka_scan.h"
#include "order_scan.h"

#define TIERS_LOCK 4242013
#define WATCH_LOCK 4242014
/* A first ranking ranks every account (silently, but a history row each):
 * spread it over rounds; so are expired alerts after a long pause. */
#define TIER_CHANGES_PER_ROUND "1000"

struct order_scan {
    int64_t tier_interval_ms, tier_ttl_ms, watch_interval_ms;
    int64_t next_tiers_mono, next_watch_mono;
    int tier_a_pct, tier_b_pct, churn_drop_pct, quiet_days;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

order_scan_t *order_scan_new(const ka_config_t *cfg)
{
    order_scan_t *s = ka_calloc(1, sizeof *s);
    s->tier_interval_ms = ka_config_int(cfg, "KA_TIER_INTERVAL_MS");
    s->tier_ttl_ms = ka_config_int(cfg, "KA_TIER_ALERT_TTL_MS");
    s->watch_interval_ms = ka_config_int(cfg, "KA_SCAN_INTERVAL_MS");
    s->tier_a_pct = (int)ka_config_int(cfg, "KA_TIER_A_PCT");
    s->tier_b_pct = (int)ka_config_int(cfg, "KA_TIER_B_PCT");
    s->churn_drop_pct = (int)ka_config_int(cfg, "KA_CHURN_DROP_PCT");
    s->quiet_days = (int)ka_config_int(cfg, "KA_CHANNEL_QUIET_DAYS");
    if (s->tier_b_pct < s->tier_a_pct)
        s->tier_b_pct = s->tier_a_pct;
    return s;
}

void order_scan_free(order_scan_t *s)
{
    free(s);
}

/* Alerts ---------------------------------------------------------------------- */

ka_err_t order_channel_alert(ka_tx_t *tx, const char *type, const char *dist, const char *order,
                             const char *region, int64_t starts_ms, int64_t at_ms, int firing,
                             const char *cause, char *errstr, size_t errlen)
{
    char fp[KA_FINGERPRINT_LEN], summary[300];
    int diversion = strcmp(type, "channel_diversion") == 0;
    const char *labels[] = {dist};
    ka_alert_fingerprint(fp, type, labels, 1);
    if (firing && diversion)
        snprintf(summary, sizeof summary, "distributor %s shipped outside its territory "
                 "(order %s to region %s)", dist, order, region);
    else if (firing)
        snprintf(summary, sizeof summary, "distributor %s sold under the floor price (order %s)",
                 dist, order);
    else
        snprintf(summary, sizeof summary, "distributor %s: no %s for a while", dist,
                 diversion ? "shipment outside its territory" : "sale under the floor price");
    const char *keys[] = {"distributor_id", "order_id", "ship_to_region"};
    const char *vals[] = {dist, order, region};
    ka_alert_t a = {
        .type = type,
        .proto_type = diversion ? KA__V1__ALERT_TYPE__ALERT_TYPE_CHANNEL_DIVERSION
                                : KA__V1__ALERT_TYPE__ALERT_TYPE_PRICE_DUMPING,
        .severity = "warning",
        .subject_kind = "distributor",
        .subject_id = dist,
        .fingerprint = fp,
        .summary = summary,
        .detail_keys = keys,
        .detail_values = vals,
        .ndetails = 3,
        .starts_at_ms = starts_ms,
        .at_ms = at_ms,
        .causes = cause ? &cause : NULL,
        .ncauses = cause ? 1 : 0,
    };
    return ka_alert_transition(tx, &a, firing, errstr, errlen);
}

/* A tier change is a point event: it fires with its end (ends_ms) and is
 * resolved at that end, or earlier by the account's next change. */
static ka_err_t tier_alert(ka_tx_t *tx, const char *account, const char *from, const char *to,
                           const char *revenue, int64_t starts_ms, int64_t at_ms, int64_t ends_ms,
                           int firing, char *errstr, size_t errlen)
{
    char fp[KA_FINGERPRINT_LEN], summary[256];
    const char *labels[] = {account};
    ka_alert_fingerprint(fp, "tier_changed", labels, 1);
    snprintf(summary, sizeof summary, "account %s moved from tier %s to tier %s "
             "(trailing-12-month revenue %s)", account, from, to, revenue);
    const char *keys[] = {"account_id", "previous_tier", "tier", "revenue_12m_minor"};
    const char *vals[] = {account, from, to, revenue};
    ka_alert_t a = {
        .type = "tier_changed",
        .proto_type = KA__V1__ALERT_TYPE__ALERT_TYPE_TIER_CHANGED,
        .severity = "info",
        .subject_kind = "account",
        .subject_id = account,
        .fingerprint = fp,
        .summary = summary,
        .detail_keys = keys,
        .detail_values = vals,
        .ndetails = 4,
        .starts_at_ms = starts_ms,
        .at_ms = at_ms,
        .ends_at_ms = firing ? ends_ms : 0,
    };
    return ka_alert_transition(tx, &a, firing, errstr, errlen);
}

static ka_err_t churn_alert(ka_tx_t *tx, const char *account, const char *tier,
                            const char *reasons, const char *r90, const char *p90,
                            int64_t starts_ms, int64_t at_ms, int firing, char *errstr,
                            size_t errlen)
{
    char fp[KA_FINGERPRINT_LEN], summary[300];
    const char *labels[] = {account};
    ka_alert_fingerprint(fp, "churn_risk", labels, 1);
    if (firing)
        snprintf(summary, sizeof summary, "tier %s account %s may be leaving: %s", tier, account,
                 reasons);
    else
        snprintf(summary, sizeof summary, "account %s: no churn signal any more", account);
    const char *keys[] = {"account_id", "tier", "reasons", "revenue_90d_minor",
                          "revenue_previous_90d_minor"};
    const char *vals[] = {account, tier, reasons, r90, p90};
    ka_alert_t a = {
        .type = "churn_risk",
        .proto_type = KA__V1__ALERT_TYPE__ALERT_TYPE_CHURN_RISK,
        .severity = strcmp(tier, "A") == 0 ? "critical" : "warning",
        .subject_kind = "account",
        .subject_id = account,
        .fingerprint = fp,
        .summary = summary,
        .detail_keys = keys,
        .detail_values = vals,
        .ndetails = 5,
        .starts_at_ms = starts_ms,
        .at_ms = at_ms,
    };
    return ka_alert_transition(tx, &a, firing, errstr, errlen);
}

/* Statements ----------------------------------------------------------------------- */

#define MS(col) "(extract(epoch FROM " col ") * 1000)::bigint"
#define NOW "to_timestamp($1::bigint / 1000.0)"

static const char *statements[][2] = {
    /* Tier alerts whose time to live has passed, with the end their firing
     * announced (the TTL in force for one fired before ends were sent). */
    {"order_tier_expired",
     "SELECT s.subject_id, s.details->>'previous_tier', s.details->>'tier', "
     "s.details->>'revenue_12m_minor', " MS("s.starts_at") ", " MS("e.ends_at") " "
     "FROM alert_state s LEFT JOIN alert_history h ON h.event_id = s.alert_id || ':firing' "
     "CROSS JOIN LATERAL (SELECT coalesce(h.ends_at, s.starts_at + $2::bigint * "
     "interval '1 millisecond') AS ends_at) e "
     "WHERE s.type = 'tier_changed' AND s.status = 'firing' AND e.ends_at <= " NOW " "
     "ORDER BY s.starts_at, s.subject_id LIMIT " TIER_CHANGES_PER_ROUND},
    /* A: the smallest set of top accounts covering KA_TIER_A_PCT of revenue
     * (an account is in it when the revenue ranked above it falls short);
     * B: up to KA_TIER_B_PCT; C: the rest with revenue; D: none. Ties rank
     * by id, so the split is deterministic. An account never ranked has no
     * tier (NULL). With each change, the previous change's alert if still
     * firing, and its details. */
    {"order_tiers",
     "WITH rev AS (SELECT a.id, a.tier, coalesce(sum(x.amount_minor), 0) AS revenue "
     "FROM account a LEFT JOIN actual x ON x.account_id = a.id AND x.period_month >= "
     "(date_trunc('month', " NOW " AT TIME ZONE 'UTC') - interval '11 months')::date "
     "AND x.period_month <= (" NOW " AT TIME ZONE 'UTC')::date GROUP BY a.id, a.tier), "
     "ranked AS (SELECT id, tier, revenue, sum(revenue) OVER (ORDER BY revenue DESC, id "
     "ROWS UNBOUNDED PRECEDING) - revenue AS above, sum(revenue) OVER () AS total "
     "FROM rev WHERE revenue > 0), "
     "tiered AS (SELECT id, tier, revenue, CASE WHEN above * 100 < total * $2::int THEN 'A' "
     "WHEN above * 100 < total * $3::int THEN 'B' ELSE 'C' END AS new_tier FROM ranked "
     "UNION ALL SELECT id, tier, revenue, 'D' FROM rev WHERE revenue <= 0) "
     "SELECT t.id, t.tier, t.new_tier, t.revenue, " MS("al.starts_at") ", "
     "al.details->>'previous_tier', al.details->>'tier', al.details->>'revenue_12m_minor' "
     "FROM tiered t "
     "LEFT JOIN alert_state al ON al.subject_kind = 'account' AND al.subject_id = t.id "
     "AND al.type = 'tier_changed' AND al.status = 'firing' "
     "WHERE t.tier IS DISTINCT FROM t.new_tier ORDER BY t.id LIMIT " TIER_CHANGES_PER_ROUND},
    {"order_tier_save",
     "WITH c AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) "
     "AS c(id, prev, tier, revenue)), "
     "u AS (UPDATE account a SET tier = c.tier, tier_changed_at = to_timestamp($5::bigint / "
     "1000.0), updated_at = now() FROM c WHERE a.id = c.id) "
     "INSERT INTO account_tier_history (account_id, previous_tier, tier, revenue_12m_minor, "
     "changed_at) SELECT c.id, c.prev, c.tier, c.revenue, to_timestamp($5::bigint / 1000.0) "
     "FROM c"},
    /* Tier A/B accounts, and any account with a churn alert still firing. */
    {"order_churn",
     "WITH subj AS (SELECT id, tier FROM account WHERE tier IN ('A', 'B') "
     "UNION SELECT a.id, a.tier FROM alert_state al JOIN account a ON a.id = al.subject_id "
     "WHERE al.type = 'churn_risk' AND al.status = 'firing'), "
     "rev AS (SELECT s.id, "
     "coalesce(sum(o.total_amount_minor) FILTER (WHERE o.booked_at > " NOW
     " - interval '90 days'), 0) AS r90, "
     "coalesce(sum(o.total_amount_minor) FILTER (WHERE o.booked_at <= " NOW
     " - interval '90 days'), 0) AS p90 "
     "FROM subj s LEFT JOIN sales_order o ON o.account_id = s.id AND o.status = 'booked' "
     "AND o.booked_at > " NOW " - interval '180 days' AND o.booked_at <= " NOW " GROUP BY s.id) "
     "SELECT s.id, s.tier, "
     "(r.p90 > 0 AND r.r90 * 100 < r.p90 * (100 - $2::int)), "
     "coalesce((SELECT v.satisfaction IN ('dissatisfied', 'very_dissatisfied') FROM visit v "
     "WHERE v.account_id = s.id AND v.satisfaction IS NOT NULL AND NOT v.superseded "
     "AND v.visited_at <= " NOW " ORDER BY v.visited_at DESC LIMIT 1), false), "
     "coalesce((SELECT f.next_due_at < " NOW " FROM follow_up f WHERE f.account_id = s.id), "
     "false), r.r90, r.p90, " MS("al.starts_at") " FROM subj s JOIN rev r ON r.id = s.id "
     "LEFT JOIN alert_state al ON al.subject_kind = 'account' AND al.subject_id = s.id "
     "AND al.type = 'churn_risk' AND al.status = 'firing' ORDER BY s.id"},
    {"order_channel_quiet",
     "SELECT al.subject_id, al.type, al.details->>'order_id', al.details->>'ship_to_region', "
     MS("al.starts_at") " FROM alert_state al "
     "WHERE al.type IN ('channel_diversion', 'price_dumping') AND al.status = 'firing' "
     "AND NOT EXISTS (SELECT 1 FROM distributor_violation v "
     "WHERE v.distributor_id = al.subject_id "
     "AND v.kind = CASE al.type WHEN 'channel_diversion' THEN 'diversion' ELSE 'dumping' END "
     "AND v.detected_at > " NOW " - $2::int * interval '1 day') "
     "ORDER BY al.starts_at LIMIT 500"},
};

ka_err_t order_scan_prepare(ka_pg_t *pg, char *errstr, size_t errlen)
{
    return ka_pg_prepare_all(pg, statements, sizeof statements / sizeof statements[0], errstr,
                             errlen);
}

/* Runs ------------------------------------------------------------------------- */

typedef struct run {
    order_scan_t *s;
    int64_t now_ms;
    int fired, resolved, fired2, resolved2, ranked;
} run_t;

/* Resolves the tier alerts whose end has passed, at that end. */
static ka_err_t expire_tier_alerts(run_t *r, ka_tx_t *tx, const char *now, char *errstr,
                                   size_t errlen)
{
    char ttl[24];
    ka_rows_t rows;
    ka_err_t rc;
    snprintf(ttl, sizeof ttl, "%lld", (long long)r->s->tier_ttl_ms);
    const char *params[] = {now, ttl};
    if ((rc = ka_rows_query(tx, "order_tier_expired", 2, params, &rows, errstr, errlen)))
        return rc;
    for (int i = 0; rc == KA_OK && i < rows.nrows; i++) {
        rc = tier_alert(tx, ka_rows_str(&rows, i, 0), ka_rows_str(&rows, i, 1),
                        ka_rows_str(&rows, i, 2), ka_rows_str(&rows, i, 3),
                        ka_rows_int(&rows, i, 4, 0), ka_rows_int(&rows, i, 5, 0), 0, 0, errstr,
                        errlen);
        r->resolved++;
    }
    ka_rows_free(&rows);
    return rc; /* the ranking's query runs after these: it sees them resolved */
}

static ka_err_t run_tiers(void *ud, ka_tx_t *tx, char *errstr, size_t errlen)
{
    run_t *r = ud;
    char now[24], a[8], b[8];
    ka_rows_t rows;
    ka_buf_t cols[4];
    int locked;
    ka_err_t rc;
    snprintf(now, sizeof now, "%lld", (long long)r->now_ms);
    snprintf(a, sizeof a, "%d", r->s->tier_a_pct);
    snprintf(b, sizeof b, "%d", r->s->tier_b_pct);
    const char *params[] = {now, a, b};
    if ((rc = ka_scan_lock(tx, TIERS_LOCK, &locked, errstr, errlen)) || !locked)
        return rc;
    if ((rc = expire_tier_alerts(r, tx, now, errstr, errlen)))
        return rc;
    if ((rc = ka_rows_query(tx, "order_tiers", 3, params, &rows, errstr, errlen)))
        return rc;
    for (int c = 0; c < 4; c++) {
        memset(&cols[c], 0, sizeof cols[c]);
        ka_buf_array_begin(&cols[c]);
    }
    for (int i = 0; rc == KA_OK && i < rows.nrows; i++) {
        const char *id = ka_rows_str(&rows, i, 0), *to = ka_rows_str(&rows, i, 2),
                   *rev = ka_rows_str(&rows, i, 3);
        /* NULL: never ranked; its first tier is no change */
        const char *from = ka_rows_null(&rows, i, 1) ? NULL : ka_rows_str(&rows, i, 1);
        ka_buf_array_add(&cols[0], id);
        ka_buf_array_add(&cols[1], from);
        ka_buf_array_add(&cols[2], to);
        ka_buf_array_add(&cols[3], rev);
        if (!from) {
            r->ranked++;
            continue;
        }
        /* The previous change's alert, still within its time to live, gives
         * way to this one (resolved now, with its own details). */
        if (!ka_rows_null(&rows, i, 4)) {
            rc = tier_alert(tx, id, ka_rows_str(&rows, i, 5), ka_rows_str(&rows, i, 6),
                            ka_rows_str(&rows, i, 7), ka_rows_int(&rows, i, 4, 0), r->now_ms, 0, 0,
                            errstr, errlen);
            r->resolved++;
        }
        if (rc == KA_OK)
            rc = tier_alert(tx, id, from, to, rev, r->now_ms, r->now_ms,
                            r->now_ms + r->s->tier_ttl_ms, 1, errstr, errlen);
        r->fired++;
    }
    ka_pg_param_t p[5];
    for (int c = 0; c < 4; c++) {
        ka_buf_array_end(&cols[c]);
        p[c] = (ka_pg_param_t){ka_buf_str(&cols[c]), 0, 0};
    }
    p[4] = (ka_pg_param_t){now, 0, 0};
    if (rc == KA_OK && rows.nrows)
        rc = ka_pg_pipe_push(ka_tx_pg(tx), "order_tier_save", 5, p, NULL, NULL, errstr, errlen);
    for (int c = 0; c < 4; c++)
        ka_buf_free(&cols[c]);
    ka_rows_free(&rows);
    if (rc == KA_OK)
        rc = ka_scan_record(tx, "tiers", r->now_ms, r->fired, r->resolved, errstr, errlen);
    return rc;
}

static ka_err_t run_watch(void *ud, ka_tx_t *tx, char *errstr, size_t errlen)
{
    run_t *r = ud;
    char now[24], drop[8], quiet[16];
    ka_rows_t rows;
    int locked;
    ka_err_t rc;
    snprintf(now, sizeof now, "%lld", (long long)r->now_ms);
    snprintf(drop, sizeof drop, "%d", r->s->churn_drop_pct);
    snprintf(quiet, sizeof quiet, "%d", r->s->quiet_days);
    if ((rc = ka_scan_lock(tx, WATCH_LOCK, &locked, errstr, errlen)) || !locked)
        return rc;

    const char *cp[] = {now, drop};
    if ((rc = ka_rows_query(tx, "order_churn", 2, cp, &rows, errstr, errlen)))
        return rc;
    for (int i = 0; rc == KA_OK && i < rows.nrows; i++) {
        const char *id = ka_rows_str(&rows, i, 0), *tier = ka_rows_str(&rows, i, 1);
        int eligible = strcmp(tier, "A") == 0 || strcmp(tier, "B") == 0;
        int firing = !ka_rows_null(&rows, i, 7);
        ka_buf_t reasons = KA_BUF_INIT;
        static const char *names[] = {"revenue_down", "dissatisfied", "follow_up_overdue"};
        for (int k = 0; k < 3; k++)
            if (eligible && ka_rows_str(&rows, i, 2 + k)[0] == 't')
                ka_buf_printf(&reasons, "%s%s", reasons.len ? "," : "", names[k]);
        if (reasons.len && !firing) {
            rc = churn_alert(tx, id, tier, ka_buf_str(&reasons), ka_rows_str(&rows, i, 5),
                             ka_rows_str(&rows, i, 6), r->now_ms, r->now_ms, 1, errstr, errlen);
            r->fired++;
        } else if (!reasons.len && firing) {
            rc = churn_alert(tx, id, tier, "", ka_rows_str(&rows, i, 5), ka_rows_str(&rows, i, 6),
                             ka_rows_int(&rows, i, 7, 0), r->now_ms, 0, errstr, errlen);
            r->resolved++;
        }
        ka_buf_free(&reasons);
    }
    ka_rows_free(&rows);
    if (rc == KA_OK)
        rc = ka_scan_record(tx, "churn_risk", r->now_ms, r->fired, r->resolved, errstr, errlen);
    if (rc != KA_OK)
        return rc;

    const char *qp[] = {now, quiet};
    if ((rc = ka_rows_query(tx, "order_channel_quiet", 2, qp, &rows, errstr, errlen)))
        return rc;
    for (int i = 0; rc == KA_OK && i < rows.nrows; i++) {
        rc = order_channel_alert(tx, ka_rows_str(&rows, i, 1), ka_rows_str(&rows, i, 0),
                                 ka_rows_str(&rows, i, 2), ka_rows_str(&rows, i, 3),
                                 ka_rows_int(&rows, i, 4, 0), r->now_ms, 0, NULL, errstr, errlen);
        r->resolved2++;
    }
    ka_rows_free(&rows);
    if (rc == KA_OK)
        rc = ka_scan_record(tx, "channel", r->now_ms, 0, r->resolved2, errstr, errlen);
    return rc;
}

void order_scan_tick(order_scan_t *s, ka_worker_t *w)
{
    char err[KA_ERRSTR_SIZE];
    int64_t mono = mono_ms();
    if (mono >= s->next_tiers_mono) {
        run_t r = {.s = s, .now_ms = ka_now_ms()};
        s->next_tiers_mono = mono + s->tier_interval_ms;
        if (ka_worker_transaction(w, run_tiers, &r, err, sizeof err) != KA_OK)
            ka_log(KA_LOG_WARN, "tier scan failed", "{s:s}", "error", err);
        else if (r.fired || r.resolved || r.ranked)
            ka_log(KA_LOG_INFO, "tiers recomputed", "{s:i,s:i,s:i}", "changed", r.fired,
                   "first_ranked", r.ranked, "alerts_resolved", r.resolved);
    }
    if (mono >= s->next_watch_mono) {
        run_t r = {.s = s, .now_ms = ka_now_ms()};
        s->next_watch_mono = mono + s->watch_interval_ms;
        if (ka_worker_transaction(w, run_watch, &r, err, sizeof err) != KA_OK)
            ka_log(KA_LOG_WARN, "churn and channel scan failed", "{s:s}", "error", err);
        else if (r.fired || r.resolved || r.resolved2)
            ka_log(KA_LOG_INFO, "churn and channel scan", "{s:i,s:i,s:i}", "churn_fired",
                   r.fired, "churn_resolved", r.resolved, "channel_resolved", r.resolved2);
    }
}
