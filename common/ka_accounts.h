#ifndef KA_ACCOUNTS_H
#define KA_ACCOUNTS_H

#include <stddef.h>

#include "ka/v1/common.pb-c.h"
#include "ka_buf.h"
#include "ka_pg.h"

/* The accounts one batch names (DOMAIN.md section 2, 确定客户惟一性: one
 * customer, one account): an event names its account by our id, or by
 * credit code and/or name. A name alone finds the account keyed by that
 * name. A code finds the account holding it; when none does, it attaches to
 * the account keyed by the event's name if that one has no code yet (its id
 * stays the name-derived one); else it creates an account keyed by the code
 * (a name whose account has another code is a conflict, kept apart and
 * listed by kactl accounts --conflicts). The first event naming an unknown
 * key creates the account, assigned to that event's rep (分配客户), with the
 * id every worker derives from the key (ka_account_id). An id that is not
 * ours resolves to nothing. Events of one batch resolve as if applied one
 * after the other, and workers racing on one code take turns (a transaction
 * lock per code).
 *
 *   ka_accounts_add() for every event, in order;
 *   ka_accounts_queue() into the batch's read pipeline, with the caller's
 *     own account query on ka_accounts_params() after it;
 *   run the pipeline; ka_accounts_id() per event. */
typedef struct ka_accounts {
    ka_buf_t cols[7]; /* keyed refs in order: id, key, code, name key, name, rep, event id */
    ka_buf_t ids;     /* every id given */
    int nnew, ncoded, ngiven;
    char **res_keys, **res_codes, **res_ids; /* the batch's keyed accounts */
    size_t nres;
    char **known; /* given ids that exist */
    size_t nknown;
} ka_accounts_t;

/* Prepares the statements (once, from handler.prepare). */
ka_err_t ka_accounts_prepare(ka_pg_t *pg, char *errstr, size_t errlen);

void ka_accounts_begin(ka_accounts_t *a);

/* Notes the account an event names; rep and event_id credit a new one. A
 * reference without a usable key is ignored (ka_accounts_id gives NULL). */
void ka_accounts_add(ka_accounts_t *a, const Ka__V1__AccountRef *ref, const char *rep,
                     const char *event_id);

/* Queues the creation, code attachment and lookup of the batch's accounts
 * and the check of given ids on pg's open pipeline. */
ka_err_t ka_accounts_queue(ka_accounts_t *a, ka_pg_t *pg, char *errstr, size_t errlen);

/* $1 (ids given), $2 (canonical keys) and $3 (credit codes) for the caller's
 * query of the batch's accounts, whose condition is KA_ACCOUNTS_MATCH(alias).
 * Valid after ka_accounts_queue, until ka_accounts_free. */
void ka_accounts_params(const ka_accounts_t *a, ka_pg_param_t out[3]);
#define KA_ACCOUNTS_MATCH(t)                                                                      \
    "(" t ".id = ANY($1::text[]) OR " t ".canonical_key = ANY($2::text[]) OR " t                  \
    ".credit_code = ANY($3::text[]))"

/* After the pipeline ran: the id of the account ref names, or NULL when it
 * names none we know. Lives until ka_accounts_free. */
const char *ka_accounts_id(const ka_accounts_t *a, const Ka__V1__AccountRef *ref);

/* Frees everything; the struct may be begun again. */
void ka_accounts_free(ka_accounts_t *a);

#endif
