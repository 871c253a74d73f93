/* A transaction's alert transitions, written per table (see ka_alert_batch.h). */
#include <stdlib.h>

#include "ka_alert_batch.h"

ka_alert_batch_t *ka_alert_batch_new(void)
{
    ka_alert_batch_t *b = ka_calloc(1, sizeof *b);
    ka_cols_begin(&b->state, 13);
    ka_cols_begin(&b->hist, 12);
    b->out = ka_outbox_batch_new();
    return b;
}

void ka_alert_batch_free(ka_alert_batch_t *b)
{
    if (!b)
        return;
    ka_cols_free(&b->state);
    ka_cols_free(&b->hist);
    ka_outbox_batch_free(b->out);
    free(b);
}

#define MS_TS(x) "to_timestamp(" x " / 1000.0)"

ka_err_t ka_alert_batch_prepare(ka_pg_t *pg, char *errstr, size_t errlen)
{
    /* One row per fingerprint, its last transition's: an upsert cannot
     * touch a row twice, and one after another the last one's values won. */
    ka_err_t rc = ka_pg_prepare(
        pg, "ka_alert_state_many",
        "INSERT INTO alert_state (fingerprint, alert_id, type, severity, status, subject_kind, "
        "subject_id, summary, details, starts_at, ends_at, cause_event_ids, last_transition_at, "
        "last_sent_at) SELECT DISTINCT ON (x.fp) x.fp, x.aid, x.type, x.sev, x.status, x.sk, "
        "x.sid, x.summary, x.details::jsonb, " MS_TS("x.starts") ", " MS_TS("x.ends") ", "
        "x.causes::text[], " MS_TS("x.at") ", now() FROM unnest($1::text[], $2::text[], "
        "$3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], "
        "$10::bigint[], $11::bigint[], $12::text[], $13::bigint[]) WITH ORDINALITY "
        "AS x(fp, aid, type, sev, status, sk, sid, summary, details, starts, ends, causes, at, "
        "ord) ORDER BY x.fp, x.ord DESC "
        "ON CONFLICT (fingerprint) DO UPDATE SET alert_id = EXCLUDED.alert_id, "
        "severity = EXCLUDED.severity, status = EXCLUDED.status, summary = EXCLUDED.summary, "
        "details = EXCLUDED.details, starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at, "
        "cause_event_ids = EXCLUDED.cause_event_ids, "
        "last_transition_at = EXCLUDED.last_transition_at, last_sent_at = now(), "
        "updated_at = now()",
        errstr, errlen);
    if (rc != KA_OK)
        return rc;
    /* Every transition, in order (its id); a replayed one is left alone. */
    return ka_pg_prepare(
        pg, "ka_alert_history_many",
        "INSERT INTO alert_history (fingerprint, alert_id, transition, type, severity, summary, "
        "details, starts_at, ends_at, cause_event_ids, event_id, occurred_at) SELECT x.fp, "
        "x.aid, x.tr, x.type, x.sev, x.summary, x.details::jsonb, " MS_TS("x.starts") ", "
        MS_TS("x.ends") ", x.causes::text[], x.ev, " MS_TS("x.at") " FROM unnest($1::text[], "
        "$2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], "
        "$9::bigint[], $10::text[], $11::text[], $12::bigint[]) WITH ORDINALITY "
        "AS x(fp, aid, tr, type, sev, summary, details, starts, ends, causes, ev, at, ord) "
        "ORDER BY x.ord ON CONFLICT (event_id, occurred_at) DO NOTHING",
        errstr, errlen);
}

ka_err_t ka_alert_batch_push(ka_pg_t *pg, ka_alert_batch_t *b, const char *ce_source,
                             char *errstr, size_t errlen)
{
    ka_pg_param_t sp[13], hp[12];
    ka_err_t rc = KA_OK;
    if (!b || !b->state.rows)
        return KA_OK;
    ka_cols_end(&b->state, sp);
    ka_cols_end(&b->hist, hp);
    if ((rc = ka_pg_pipe_push(pg, "ka_alert_state_many", 13, sp, NULL, NULL, errstr, errlen)) ==
            KA_OK &&
        (rc = ka_pg_pipe_push(pg, "ka_alert_history_many", 12, hp, NULL, NULL, errstr,
                              errlen)) == KA_OK)
        rc = ka_outbox_batch_push(pg, b->out, ce_source, errstr, errlen);
    ka_cols_free(&b->state);
    ka_cols_free(&b->hist);
    ka_cols_begin(&b->state, 13);
    ka_cols_begin(&b->hist, 12);
    return rc;
}
