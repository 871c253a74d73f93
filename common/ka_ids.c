#include <stdio.h>
#include <string.h>

#include "ka_hash.h"
#include "ka_ids.h"

void ka_order_won_event_id(const char *order_id, char out[KA_DERIVED_ID_LEN])
{
    char hex[KA_HASH_HEX_LEN];
    ka_hash128_hex(order_id, strlen(order_id), hex);
    snprintf(out, KA_DERIVED_ID_LEN, "ow-%s", hex);
}
