/* Debounced publishing of forecast and planning rows (see forecast_publish.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka/v1/forecast.pb-c.h"
#include "ka/v1/planning.pb-c.h"
#include "ka_buf.h"
#include "ka_cols.h"
#include "ka_scan.h"
#include "forecast_publish.h"

#define PUBLISH_LIMIT "500"

void forecast_period_label(const char *kind, const char *start, char *out, size_t len)
{
    int y = 0, m = 1;
    sscanf(start, "%4d-%2d", &y, &m);
    if (strcmp(kind, "quarter") == 0)
        snprintf(out, len, "%04d-Q%d", y, (m - 1) / 3 + 1);
    else
        snprintf(out, len, "%04d-%02d", y, m);
}

#define FORECAST_COLS                                                                          \
    "node_id, period_kind, period_start::text, revision, raw_closed_minor, raw_commit_minor, " \
    "raw_best_case_minor, raw_pipeline_minor, raw_weighted_pipeline_minor, raw_coverage_bp, "  \
    "raw_gap_minor, adj_closed_minor, adj_commit_minor, adj_best_case_minor, "                 \
    "adj_pipeline_minor, adj_weighted_pipeline_minor, adj_coverage_bp, adj_gap_minor, "        \
    "quota_minor"
#define PLANNING_COLS                                                                          \
    "sku, period_month::text, division_node_id, revision, (weighted_quantity * 1000)::bigint, " \
    "(committed_quantity * 1000)::bigint"
#define CURRENT(start, len) start " + interval '" len "' > (now() AT TIME ZONE 'UTC')::date"

static const char *statements[][2] = {
    {"forecast_due",
     "SELECT " FORECAST_COLS " FROM forecast WHERE revision > emitted_revision "
     "AND changed_at <= now() - $1::bigint * interval '1 millisecond' "
     "ORDER BY changed_at LIMIT " PUBLISH_LIMIT " FOR UPDATE SKIP LOCKED"},
    {"forecast_all",
     "SELECT " FORECAST_COLS " FROM forecast WHERE (period_kind = 'month' AND "
     CURRENT("period_start", "1 month") ") OR (period_kind = 'quarter' AND "
     CURRENT("period_start", "3 months") ") ORDER BY node_id, period_kind, period_start"},
    {"forecast_emitted",
     "UPDATE forecast f SET emitted_revision = greatest(f.emitted_revision, u.rev), "
     "emitted_at = now() FROM unnest($1::text[], $2::text[], $3::date[], $4::bigint[]) "
     "AS u(node, kind, start, rev) WHERE f.node_id = u.node AND f.period_kind = u.kind "
     "AND f.period_start = u.start"},
    {"planning_due",
     "SELECT " PLANNING_COLS " FROM planning_feed WHERE revision > emitted_revision "
     "AND changed_at <= now() - $1::bigint * interval '1 millisecond' "
     "ORDER BY changed_at LIMIT " PUBLISH_LIMIT " FOR UPDATE SKIP LOCKED"},
    {"planning_all",
     "SELECT " PLANNING_COLS " FROM planning_feed WHERE " CURRENT("period_month", "1 month") " "
     "ORDER BY sku, period_month, division_node_id"},
    {"planning_emitted",
     "UPDATE planning_feed p SET emitted_revision = greatest(p.emitted_revision, u.rev), "
     "emitted_at = now() FROM unnest($1::text[], $2::date[], $3::text[], $4::bigint[]) "
     "AS u(sku, month, division, rev) WHERE p.sku = u.sku AND p.period_month = u.month "
     "AND p.division_node_id = u.division"},
};

ka_err_t forecast_publish_prepare(ka_pg_t *pg, char *errstr, size_t errlen)
{
    return ka_pg_prepare_all(pg, statements, sizeof statements / sizeof statements[0], errstr,
                             errlen);
}

static void period_of(const char *kind, const char *start, Ka__V1__Period *p)
{
    int y = 0, m = 1;
    sscanf(start, "%4d-%2d", &y, &m);
    p->year = y;
    if (strcmp(kind, "quarter") == 0) {
        p->kind = KA__V1__PERIOD_KIND__PERIOD_KIND_QUARTER;
        p->number = (m - 1) / 3 + 1;
    } else {
        p->kind = KA__V1__PERIOD_KIND__PERIOD_KIND_MONTH;
        p->number = m;
    }
}

/* Columns from `first`: closed, commit, best case, pipeline, weighted,
 * coverage (NULL: absent), gap; quota at column 18. */
static void figures(const ka_rows_t *r, int i, int first, Ka__V1__ForecastFigures *f)
{
    f->closed_minor = ka_rows_int(r, i, first, 0);
    f->commit_minor = ka_rows_int(r, i, first + 1, 0);
    f->best_case_minor = ka_rows_int(r, i, first + 2, 0);
    f->pipeline_minor = ka_rows_int(r, i, first + 3, 0);
    f->weighted_pipeline_minor = ka_rows_int(r, i, first + 4, 0);
    if (!ka_rows_null(r, i, first + 5)) {
        f->coverage_bp_present_case = KA__V1__FORECAST_FIGURES__COVERAGE_BP_PRESENT_COVERAGE_BP;
        f->coverage_bp = ka_rows_int(r, i, first + 5, 0);
    }
    f->gap_minor = ka_rows_int(r, i, first + 6, 0);
    f->quota_minor = ka_rows_int(r, i, 18, 0);
}

static ka_err_t emit(ka_tx_t *tx, const char *topic, const char *event_id, const char *key,
                     const char *ce_type, int64_t at_ms, uint8_t *payload, size_t len,
                     char *errstr, size_t errlen)
{
    ka_outbox_row_t row = {
        .event_id = event_id,
        .topic = topic,
        .key = key,
        .key_len = strlen(key),
        .ce_type = ce_type,
        .ce_time_ms = at_ms,
        .payload = payload,
        .len = len,
    };
    return ka_tx_emit(tx, &row, errstr, errlen);
}

static ka_err_t publish_forecasts(ka_tx_t *tx, const ka_rows_t *r, long long full, int *count,
                                  char *errstr, size_t errlen)
{
    const char *topic = ka_config_str(ka_tx_config(tx), "KA_TOPIC_FORECAST");
    int64_t now = ka_now_ms();
    ka_cols_t u;
    ka_pg_param_t p[4];
    ka_err_t rc = KA_OK;
    ka_cols_begin(&u, 4);
    for (int i = 0; rc == KA_OK && i < r->nrows; i++) {
        const char *node = ka_rows_str(r, i, 0), *kind = ka_rows_str(r, i, 1),
                   *start = ka_rows_str(r, i, 2), *rev = ka_rows_str(r, i, 3);
        char label[16], key[128], id[192];
        Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
        Ka__V1__ForecastEvent ev = KA__V1__FORECAST_EVENT__INIT;
        Ka__V1__Period period = KA__V1__PERIOD__INIT;
        Ka__V1__ForecastFigures raw = KA__V1__FORECAST_FIGURES__INIT,
                                adj = KA__V1__FORECAST_FIGURES__INIT;
        forecast_period_label(kind, start, label, sizeof label);
        snprintf(key, sizeof key, "%s/%s", node, label);
        if (full)
            snprintf(id, sizeof id, "forecast:%s@%s/full-%lld", key, rev, full);
        else
            snprintf(id, sizeof id, "forecast:%s@%s", key, rev);
        period_of(kind, start, &period);
        figures(r, i, 4, &raw);
        figures(r, i, 11, &adj);
        h.event_id = id;
        h.occurred_at_ms = now;
        h.producer = "ka";
        ev.header = &h;
        ev.node_id = (char *)node;
        ev.period = &period;
        ev.raw = &raw;
        ev.adjusted = &adj;
        ev.revision = ka_rows_int(r, i, 3, 0);
        ev.computed_at_ms = now;
        size_t len = ka__v1__forecast_event__get_packed_size(&ev);
        uint8_t *buf = ka_malloc(len + 1);
        ka__v1__forecast_event__pack(&ev, buf);
        rc = emit(tx, topic, id, key, "ka.v1.ForecastEvent", now, buf, len, errstr, errlen);
        free(buf);
        ka_buf_array_add(&u.b[0], node);
        ka_buf_array_add(&u.b[1], kind);
        ka_buf_array_add(&u.b[2], start);
        ka_buf_array_add(&u.b[3], rev);
        (*count)++;
    }
    ka_cols_end(&u, p);
    if (rc == KA_OK && r->nrows)
        rc = ka_pg_pipe_push(ka_tx_pg(tx), "forecast_emitted", 4, p, NULL, NULL, errstr, errlen);
    ka_cols_free(&u);
    return rc;
}

static ka_err_t publish_planning(ka_tx_t *tx, const ka_rows_t *r, long long full, int *count,
                                 char *errstr, size_t errlen)
{
    const char *topic = ka_config_str(ka_tx_config(tx), "KA_TOPIC_PLANNING");
    int64_t now = ka_now_ms();
    ka_cols_t u;
    ka_pg_param_t p[4];
    ka_err_t rc = KA_OK;
    ka_cols_begin(&u, 4);
    for (int i = 0; rc == KA_OK && i < r->nrows; i++) {
        const char *sku = ka_rows_str(r, i, 0), *month = ka_rows_str(r, i, 1),
                   *division = ka_rows_str(r, i, 2), *rev = ka_rows_str(r, i, 3);
        char label[16], key[160], id[224];
        Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
        Ka__V1__PlanningEvent ev = KA__V1__PLANNING_EVENT__INIT;
        Ka__V1__Period period = KA__V1__PERIOD__INIT;
        forecast_period_label("month", month, label, sizeof label);
        snprintf(key, sizeof key, "%s/%s/%s", sku, label, division);
        if (full)
            snprintf(id, sizeof id, "planning:%s@%s/full-%lld", key, rev, full);
        else
            snprintf(id, sizeof id, "planning:%s@%s", key, rev);
        period_of("month", month, &period);
        h.event_id = id;
        h.occurred_at_ms = now;
        h.producer = "ka";
        ev.header = &h;
        ev.sku = (char *)sku;
        ev.month = &period;
        ev.division_id = (char *)division;
        ev.weighted_quantity_milli = ka_rows_int(r, i, 4, 0);
        ev.committed_quantity_milli = ka_rows_int(r, i, 5, 0);
        ev.revision = ka_rows_int(r, i, 3, 0);
        ev.computed_at_ms = now;
        size_t len = ka__v1__planning_event__get_packed_size(&ev);
        uint8_t *buf = ka_malloc(len + 1);
        ka__v1__planning_event__pack(&ev, buf);
        rc = emit(tx, topic, id, key, "ka.v1.PlanningEvent", now, buf, len, errstr, errlen);
        free(buf);
        ka_buf_array_add(&u.b[0], sku);
        ka_buf_array_add(&u.b[1], month);
        ka_buf_array_add(&u.b[2], division);
        ka_buf_array_add(&u.b[3], rev);
        (*count)++;
    }
    ka_cols_end(&u, p);
    if (rc == KA_OK && r->nrows)
        rc = ka_pg_pipe_push(ka_tx_pg(tx), "planning_emitted", 4, p, NULL, NULL, errstr, errlen);
    ka_cols_free(&u);
    return rc;
}

typedef struct run {
    int64_t debounce_ms;
    long long full;
    int published;
} run_t;

static ka_err_t run(void *ud, ka_tx_t *tx, char *errstr, size_t errlen)
{
    run_t *rn = ud;
    char debounce[24];
    ka_rows_t r;
    ka_err_t rc;
    snprintf(debounce, sizeof debounce, "%lld", (long long)rn->debounce_ms);
    const char *p[] = {debounce};
    rc = rn->full ? ka_rows_query(tx, "forecast_all", 0, NULL, &r, errstr, errlen)
                  : ka_rows_query(tx, "forecast_due", 1, p, &r, errstr, errlen);
    if (rc != KA_OK)
        return rc;
    rc = publish_forecasts(tx, &r, rn->full, &rn->published, errstr, errlen);
    ka_rows_free(&r);
    if (rc != KA_OK)
        return rc;
    rc = rn->full ? ka_rows_query(tx, "planning_all", 0, NULL, &r, errstr, errlen)
                  : ka_rows_query(tx, "planning_due", 1, p, &r, errstr, errlen);
    if (rc != KA_OK)
        return rc;
    rc = publish_planning(tx, &r, rn->full, &rn->published, errstr, errlen);
    ka_rows_free(&r);
    return rc;
}

ka_err_t forecast_publish_run(ka_worker_t *w, int64_t debounce_ms, long long full,
                              int *published, char *errstr, size_t errlen)
{
    run_t rn = {debounce_ms, full, 0};
    ka_err_t rc = ka_worker_transaction(w, run, &rn, errstr, errlen);
    *published = rc == KA_OK ? rn.published : 0;
    return rc;
}
