#ifndef KA_ALERT_H
#define KA_ALERT_H

#include <stddef.h>
#include <stdint.h>

#include "ka_worker.h"

/* Alerts in the Alertmanager model (DOMAIN.md section 7): one state row per
 * fingerprint (type + subject), events only on transitions. The caller
 * decides a transition from the state it read in the same transaction; this
 * module writes the state row, the history row and the AlertEvent into the
 * outbox, all in that transaction, with deterministic ids:
 *   alert_id = <fingerprint>@<episode start ms>
 *   ce_id    = <alert_id>:firing | <alert_id>:resolved
 * so a replay after a crash produces the same rows and is dropped. */

typedef struct ka_alert {
    const char *type;         /* as in alert_state.type, e.g. "funnel_health" */
    int proto_type;           /* Ka__V1__AlertType */
    const char *severity;     /* "info", "warning", "critical" */
    const char *subject_kind; /* "node", "account", "opportunity", "distributor" */
    const char *subject_id;
    const char *fingerprint;  /* from ka_alert_fingerprint() */
    const char *summary;
    const char *const *detail_keys;
    const char *const *detail_values;
    size_t ndetails;
    int64_t starts_at_ms; /* the episode's start: equal for its firing and resolved */
    int64_t at_ms;        /* when this transition happened */
    /* A point event's end, sent with its firing (Alertmanager's endsAt): it
     * resolves by itself then. 0: open-ended, it fires until resolved. The
     * state row keeps no end while firing; the history row and the event do. */
    int64_t ends_at_ms;
    const char *const *causes; /* ids of the events that caused it */
    size_t ncauses;
} ka_alert_t;

#define KA_FINGERPRINT_LEN 96

/* "<type>/<hash of the subject labels>": fits alert_state's 128 characters
 * whatever the ids' lengths. labels are joined with NUL separators. */
void ka_alert_fingerprint(char out[KA_FINGERPRINT_LEN], const char *type,
                          const char *const *labels, size_t nlabels);

/* Prepares the statements on a worker connection (once, from handler.prepare). */
ka_err_t ka_alert_prepare(ka_pg_t *pg, char *errstr, size_t errlen);

/* Queues a firing (firing != 0) or resolved transition in the open
 * transaction. */
ka_err_t ka_alert_transition(ka_tx_t *tx, const ka_alert_t *a, int firing, char *errstr,
                             size_t errlen);

#endif
