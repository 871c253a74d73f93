#ifndef KA_ACCOUNTS_H
#define KA_ACCOUNTS_H

#include <stddef.h>

#include "ka/v1/common.pb-c.h"
#include "ka_buf.h"
#include "ka_pg.h"

/* The accounts one batch names (DOMAIN.md section 2, 确定客户惟一性): an event
 * names its account by our id, or by credit code and/or name, whose canonical
 * key finds it. The first event naming an unknown key creates the account,
 * assigned to that event's rep (分配客户), with the id every worker derives
 * from the key (ka_account_id). An id that is not ours resolves to nothing.
 *
 *   ka_accounts_add() for every event, in order;
 *   ka_accounts_queue() into the batch's read pipeline, with the caller's
 *     own account query on ka_accounts_params() after it;
 *   run the pipeline; ka_accounts_id() per event. */
typedef struct ka_accounts {
    ka_buf_t cols[6]; /* new accounts: id, key, code, name, rep, event id */
    ka_buf_t ids, keys; /* every id given and every key named */
    int nnew, ngiven;
    char **res_keys, **res_ids; /* canonical key -> id, from the upsert */
    size_t nres;
    char **known; /* given ids that exist */
    size_t nknown;
} ka_accounts_t;

/* Prepares the two statements (once, from handler.prepare). */
ka_err_t ka_accounts_prepare(ka_pg_t *pg, char *errstr, size_t errlen);

void ka_accounts_begin(ka_accounts_t *a);

/* Notes the account an event names; rep and event_id credit a new one. A
 * reference without a usable key is ignored (ka_accounts_id gives NULL). */
void ka_accounts_add(ka_accounts_t *a, const Ka__V1__AccountRef *ref, const char *rep,
                     const char *event_id);

/* Queues the upsert of new accounts and the check of given ids on pg's open
 * pipeline. */
ka_err_t ka_accounts_queue(ka_accounts_t *a, ka_pg_t *pg, char *errstr, size_t errlen);

/* $1 (ids given) and $2 (canonical keys) for the caller's query of the
 * batch's accounts: "WHERE id = ANY($1::text[]) OR canonical_key =
 * ANY($2::text[])". Valid after ka_accounts_queue, until ka_accounts_free. */
void ka_accounts_params(const ka_accounts_t *a, ka_pg_param_t out[2]);

/* After the pipeline ran: the id of the account ref names, or NULL when it
 * names none we know. Lives until ka_accounts_free. */
const char *ka_accounts_id(const ka_accounts_t *a, const Ka__V1__AccountRef *ref);

/* Frees everything; the struct may be begun again. */
void ka_accounts_free(ka_accounts_t *a);

#endif
