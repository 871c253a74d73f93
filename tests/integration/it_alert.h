#ifndef IT_ALERT_H
#define IT_ALERT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ka_kafka.h"
#include "ka_pg.h"

/* What the alert bridge's integration tests share: a webhook receiver in the
 * test process (loopback only) that records every notification an
 * Alertmanager sends it, real Alertmanagers started on loopback ports, and
 * alerts written as the workers write them. */

/* Starts the receiver; returns its port. Each notification is kept with its
 * URL path (one per manager: /<user id>) and its JSON body. */
int it_hook_start(void);
void it_hook_stop(void);

/* Notifications that reached `path` (NULL: any) from the Alertmanager whose
 * external URL is `am_url` (NULL: any) carrying an alert of fingerprint `fp`
 * (NULL: any) in `status` ("firing", "resolved"; NULL: any). *most (when
 * not NULL) gets the largest number of alerts whose fingerprint holds
 * `suffix` one such notification carried. */
int it_hook_count(const char *path, const char *am_url, const char *fp, const char *status,
                  size_t *most, const char *suffix);

/* it_hook_count until it is above 0 or timeout_ms passes; returns the last. */
int it_hook_wait(const char *path, const char *am_url, const char *fp, const char *status,
                 int timeout_ms);

/* A copy of the first alert of fingerprint fp that reached the receiver
 * (json_decref it), NULL when none did. */
json_t *it_hook_alert(const char *fp);

/* Writes a contacts file routing each of the users to the receiver
 * (/<user id>) and generates the Alertmanager configuration dir/am.yml from
 * the org tree with kactl (group_wait 0s, group_interval 1s). */
void it_am_config(const char *kactl, const char *dir, int hook_port, const char *const *users,
                  size_t nusers);

/* Starts Alertmanager with dir/am.yml on 127.0.0.1:port, its data in
 * dir/<name>-data (wiped first when `wipe`), its external URL
 * http://127.0.0.1:<port> (notifications carry it), no cluster gossip;
 * returns when it is ready. */
pid_t it_am_start(const char *dir, const char *name, int port, int wipe);

/* SIGKILLs and reaps *pid (no operation when 0), zeroes it. */
void it_am_kill(pid_t *pid);

/* The fingerprints of the alerts the Alertmanager on `port` holds active
 * (silenced and inhibited ones count, resolved ones do not) that start with
 * `prefix`: sorted, one a line (malloc'd). */
char *it_am_active(int port, const char *prefix);

/* Writes the alert_state row as a worker would, then its ka.alert.v1 event
 * (key: the fingerprint). ends_at is now when not firing. */
void it_alert(ka_pg_t *pg, ka_producer_t *kp, const char *topic, const char *fp,
              const char *type, int proto_type, const char *severity, int firing,
              const char *kind, int proto_kind, const char *subject, int64_t starts_ms);

#define IT_STALLED "stalled_opportunity", KA__V1__ALERT_TYPE__ALERT_TYPE_STALLED_OPPORTUNITY
#define IT_FUNNEL "funnel_health", KA__V1__ALERT_TYPE__ALERT_TYPE_FUNNEL_HEALTH
#define IT_CHURN "churn_risk", KA__V1__ALERT_TYPE__ALERT_TYPE_CHURN_RISK
#define IT_OVERDUE "visit_overdue", KA__V1__ALERT_TYPE__ALERT_TYPE_VISIT_OVERDUE
#define IT_NODE "node", KA__V1__SUBJECT_KIND__SUBJECT_KIND_NODE
#define IT_ACCOUNT "account", KA__V1__SUBJECT_KIND__SUBJECT_KIND_ACCOUNT

/* The value of the Prometheus sample `name` whose label set holds `labels`
 * (e.g. "alertmanager=\"http://...\"", NULL or "": the first sample of that
 * name) in a /metrics body; -1 when absent. */
double it_metric(const char *body, const char *name, const char *labels);

#endif
