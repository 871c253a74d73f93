#ifndef KA_IDS_H
#define KA_IDS_H

#include <stddef.h>

/* Ids that more than one worker derives, the same way, from the input. */

#define KA_DERIVED_ID_LEN 36 /* "xx-" + 32 hex digits + NUL */

/* The event id of the OpportunityEvent won that an order naming an
 * opportunity sends to the opportunity topic ("ow-" + a hash of the order
 * id): a re-sent order, or a replay, sends the same event, which the
 * opportunity worker applies once. */
void ka_order_won_event_id(const char *order_id, char out[KA_DERIVED_ID_LEN]);

#endif
