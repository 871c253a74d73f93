#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka/v1/alert.pb-c.h"
#include "ka_alert.h"
#include "ka_alert_batch.h"
#include "ka_buf.h"
#include "ka_hash.h"
#include "ka_metrics.h"

static ka_metric_t *transitions;
static pthread_once_t transitions_once = PTHREAD_ONCE_INIT;

static void transitions_init(void)
{
    transitions = ka_metrics_counter(ka_metrics_global(), "ka_alert_transitions_total",
                                     "Alert transitions committed, by alert type and transition "
                                     "(firing, resolved)",
                                     "type,transition");
}

void ka_alert_fingerprint(char out[KA_FINGERPRINT_LEN], const char *type,
                          const char *const *labels, size_t nlabels)
{
    ka_buf_t b = KA_BUF_INIT;
    char hex[KA_HASH_HEX_LEN];
    for (size_t i = 0; i < nlabels; i++)
        ka_buf_append(&b, labels[i], strlen(labels[i]) + 1); /* keep the NUL: a|bc != ab|c */
    ka_hash128_hex(b.data ? b.data : "", b.len, hex);
    snprintf(out, KA_FINGERPRINT_LEN, "%.40s/%s", type, hex);
    ka_buf_free(&b);
}

ka_err_t ka_alert_prepare(ka_pg_t *pg, char *errstr, size_t errlen)
{
    return ka_alert_batch_prepare(pg, errstr, errlen);
}

static int subject_kind_proto(const char *kind)
{
    if (strcmp(kind, "node") == 0)
        return KA__V1__SUBJECT_KIND__SUBJECT_KIND_NODE;
    if (strcmp(kind, "account") == 0)
        return KA__V1__SUBJECT_KIND__SUBJECT_KIND_ACCOUNT;
    if (strcmp(kind, "opportunity") == 0)
        return KA__V1__SUBJECT_KIND__SUBJECT_KIND_OPPORTUNITY;
    return KA__V1__SUBJECT_KIND__SUBJECT_KIND_DISTRIBUTOR;
}

static int severity_proto(const char *severity)
{
    if (strcmp(severity, "critical") == 0)
        return KA__V1__SEVERITY__SEVERITY_CRITICAL;
    if (strcmp(severity, "warning") == 0)
        return KA__V1__SEVERITY__SEVERITY_WARNING;
    return KA__V1__SEVERITY__SEVERITY_INFO;
}

ka_err_t ka_alert_transition(ka_tx_t *tx, const ka_alert_t *a, int firing, char *errstr,
                             size_t errlen)
{
    char alert_id[160], ce_id[192], starts[24], ends[24], planned[24], at[24];
    ka_buf_t causes = KA_BUF_INIT;
    json_t *details = json_object();
    Ka__V1__EventHeader header = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__AlertEvent ev = KA__V1__ALERT_EVENT__INIT;
    Ka__V1__AlertEvent__DetailsEntry *entries = ka_calloc(a->ndetails + 1, sizeof *entries);
    Ka__V1__AlertEvent__DetailsEntry **entry_ptrs = ka_calloc(a->ndetails + 1, sizeof *entry_ptrs);
    uint8_t *payload = NULL;
    char *djson = NULL;
    ka_err_t rc;

    /* Event times of a batch need not be monotonic (partitions interleave):
     * an episode never ends before it started. */
    int64_t at_ms = a->at_ms < a->starts_at_ms ? a->starts_at_ms : a->at_ms;
    snprintf(alert_id, sizeof alert_id, "%s@%lld", a->fingerprint, (long long)a->starts_at_ms);
    snprintf(ce_id, sizeof ce_id, "%s:%s", alert_id, firing ? "firing" : "resolved");
    snprintf(starts, sizeof starts, "%lld", (long long)a->starts_at_ms);
    snprintf(ends, sizeof ends, "%lld", (long long)at_ms);
    snprintf(at, sizeof at, "%lld", (long long)at_ms);
    snprintf(planned, sizeof planned, "%lld", (long long)a->ends_at_ms);
    const char *hist_ends = firing ? (a->ends_at_ms ? planned : NULL) : ends;
    for (size_t i = 0; i < a->ndetails; i++) {
        json_object_set_new(details, a->detail_keys[i], json_string(a->detail_values[i]));
        Ka__V1__AlertEvent__DetailsEntry init = KA__V1__ALERT_EVENT__DETAILS_ENTRY__INIT;
        entries[i] = init;
        entries[i].key = (char *)a->detail_keys[i];
        entries[i].value = (char *)a->detail_values[i];
        entry_ptrs[i] = &entries[i];
    }
    djson = json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS);
    ka_buf_array_begin(&causes);
    for (size_t i = 0; i < a->ncauses; i++)
        ka_buf_array_add(&causes, a->causes[i]);
    ka_buf_array_end(&causes);

    /* Into the transaction's batch (ka_alert_batch.h): written with one
     * statement per table when the transaction next flushes or ends. */
    ka_alert_batch_t *b = ka_tx_alerts(tx);
    const char *state[13] = {a->fingerprint, alert_id, a->type, a->severity,
                             firing ? "firing" : "resolved", a->subject_kind, a->subject_id,
                             a->summary, djson ? djson : "{}", starts, firing ? NULL : ends,
                             ka_buf_str(&causes), at};
    const char *hist[12] = {a->fingerprint, alert_id, firing ? "firing" : "resolved", a->type,
                            a->severity, a->summary, djson ? djson : "{}", starts, hist_ends,
                            ka_buf_str(&causes), ce_id, at};
    for (int i = 0; i < 13; i++)
        ka_buf_array_add(&b->state.b[i], state[i]);
    for (int i = 0; i < 12; i++)
        ka_buf_array_add(&b->hist.b[i], hist[i]);
    b->state.rows++;
    b->hist.rows++;
    header.event_id = ce_id;
    header.occurred_at_ms = at_ms;
    header.producer = "ka";
    ev.header = &header;
    ev.alert_id = alert_id;
    ev.fingerprint = (char *)a->fingerprint;
    ev.type = a->proto_type;
    ev.severity = severity_proto(a->severity);
    ev.status = firing ? KA__V1__ALERT_STATUS__ALERT_STATUS_FIRING
                       : KA__V1__ALERT_STATUS__ALERT_STATUS_RESOLVED;
    ev.subject_kind = subject_kind_proto(a->subject_kind);
    ev.subject_id = (char *)a->subject_id;
    ev.summary = (char *)a->summary;
    ev.n_details = a->ndetails;
    ev.details = entry_ptrs;
    ev.starts_at_ms = a->starts_at_ms;
    ev.ends_at_ms = firing ? a->ends_at_ms : at_ms;
    ev.n_cause_event_ids = a->ncauses;
    ev.cause_event_ids = (char **)a->causes;
    size_t len = ka__v1__alert_event__get_packed_size(&ev);
    payload = ka_malloc(len + 1);
    ka__v1__alert_event__pack(&ev, payload);
    ka_outbox_row_t row = {
        .event_id = ce_id,
        .topic = ka_config_str(ka_tx_config(tx), "KA_TOPIC_ALERT"),
        .key = a->fingerprint,
        .key_len = strlen(a->fingerprint),
        .ce_type = "ka.v1.AlertEvent",
        .ce_time_ms = at_ms,
        .payload = payload,
        .len = len,
    };
    rc = ka_outbox_batch_add(b->out, &row, errstr, errlen);
    if (rc == KA_OK) {
        /* Counted when the transaction commits: a rolled-back batch is
         * retried and would count its transitions twice. */
        pthread_once(&transitions_once, transitions_init);
        const char *labels[] = {a->type, firing ? "firing" : "resolved"};
        ka_metrics_stage_inc(ka_metrics_series(transitions, labels));
    }
    free(payload);
    free(djson);
    json_decref(details);
    free(entries);
    free(entry_ptrs);
    ka_buf_free(&causes);
    return rc;
}
