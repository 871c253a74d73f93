#ifndef VISIT_WORKER_H
#define VISIT_WORKER_H

#include "ka_worker.h"

/* The visit worker's handler (DOMAIN.md sections 2 and 3, and the
 * decision-maker gap of section 4): accounts by canonical key, visits and the
 * contacts met, MAN class and its history, the follow-up plan in force per
 * account (PostgreSQL, and due dates in the Redis sorted set
 * VISIT_DUE_KEY), and the visit-overdue and decision-maker-gap alerts. */

/* Redis: member = account id, score = follow-up due time in ms. */
#define VISIT_DUE_KEY "ka:followup:due"

typedef struct visit_ctx visit_ctx_t;

/* cfg must outlive the context. */
visit_ctx_t *visit_ctx_new(const ka_config_t *cfg);

/* No operation is performed if ctx is NULL. */
void visit_ctx_free(visit_ctx_t *ctx);

/* Fills h with the worker's callbacks; ctx must outlive the worker. */
void visit_handler_init(ka_handler_t *h, visit_ctx_t *ctx);

/* Redis hash of an account's visit state: man_class, last_visit_ms,
 * last_decision_maker_visit_ms, next_due_ms. */
void visit_account_key(char *out, size_t len, const char *account_id);

#endif
