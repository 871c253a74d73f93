#ifndef BRIDGE_H
#define BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#include "ka_buf.h"
#include "ka_err.h"
#include "ka_validate.h"

/* The alert bridge: ka.alert.v1 into Prometheus Alertmanager's API v2.
 *
 * An AlertEvent says that an alert changed; what the bridge posts is the
 * alert as PostgreSQL holds it now (the alert_delivery view: the state row
 * and its subject's org path). The state row commits before its event is
 * published, so the row is never older than an event the bridge has read:
 * posting the row, not the event, means a stale event read late (a backlog
 * after a restart) cannot bring back an alert that resolved since. */

/* What the bridge needs of a decoded AlertEvent. Strings are owned. */
typedef struct bridge_event {
    char *fingerprint;
    char *alert_id;
    int firing;
} bridge_event_t;

/* Decodes and validates one ka.alert.v1 payload. Returns KA_OK with *out
 * filled (free with bridge_event_free), or KA_ERR_INVALID with rej filled:
 * undecodable bytes, a missing fingerprint, alert id or subject, an unknown
 * type, severity, status or subject kind, times out of range, a resolve
 * that ends before it started. now_ms bounds times in the future. */
ka_err_t bridge_decode(const void *payload, size_t len, int64_t now_ms, bridge_event_t *out,
                       ka_reject_t *rej);

/* No operation is performed on a zeroed event. */
void bridge_event_free(bridge_event_t *ev);

/* One alert as posted: a row of alert_delivery. Borrowed strings; NULL or ""
 * for what does not apply (labels with an empty value are left out, as
 * Alertmanager drops them). */
typedef struct bridge_alert {
    const char *fingerprint, *alert_id, *type, *severity, *status;
    const char *subject_kind, *subject_id, *summary;
    const char *details; /* a JSON object of strings */
    int64_t starts_at_ms, ends_at_ms; /* ends_at_ms 0 while firing */
    const char *division, *region, *team, *rep, *account, *opportunity, *manager;
} bridge_alert_t;

/* Appends one postableAlert object to a JSON array being written in `out`
 * (a comma first when `first` is 0): labels alertname (the type),
 * severity, fingerprint, the org path, account / opportunity / distributor,
 * manager; annotations summary, description (the details, one "key: value"
 * a line), link (link_base/<kind>/<id>, when link_base is set), alert_id;
 * startsAt; endsAt when resolved. A firing alert carries no endsAt:
 * Alertmanager then resolves it after its resolve_timeout unless it is sent
 * again, which the bridge does. */
void bridge_alert_json(ka_buf_t *out, const bridge_alert_t *a, const char *link_base, int first);

/* RFC 3339 in UTC with milliseconds: "2026-03-01T08:00:00.000Z". */
void bridge_time(char out[32], int64_t ms);

#endif
