#ifndef KA_ENVELOPE_H
#define KA_ENVELOPE_H

#include <stdint.h>

#include "ka/v1/common.pb-c.h"
#include "ka_validate.h"

/* Checks of the parts every input event shares (DOMAIN.md section 8): the
 * header and the way an event names its account. */

/* Account names and credit codes, in bytes of UTF-8. */
#define KA_MAX_ACCOUNT_NAME_LEN 500
#define KA_MAX_CREDIT_CODE_LEN (18 * 4)

/* The header: required, an event id, a time between 2000 and now +
 * max_future_ms, bounded producer and correlation id. */
ka_err_t ka_check_header(ka_reject_t *rej, const Ka__V1__EventHeader *h, int64_t now_ms,
                         int64_t max_future_ms);

/* The account must be resolvable: by our id, or else by the canonical key of
 * its credit code or name. A credit code that is given must be well-formed
 * even next to an id, since the worker records it on the account. */
ka_err_t ka_check_account_ref(ka_reject_t *rej, const Ka__V1__AccountRef *a);

/* Non-zero for NULL or "". */
int ka_is_empty(const char *s);

#endif
