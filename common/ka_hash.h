#ifndef KA_HASH_H
#define KA_HASH_H

#include <stddef.h>

/* A 128-bit non-cryptographic hash as 32 lower-case hex digits plus NUL:
 * stable ids derived from content (account ids, alert fingerprints), so
 * every instance derives the same id without asking the database. */
#define KA_HASH_HEX_LEN 33
void ka_hash128_hex(const void *data, size_t len, char out[KA_HASH_HEX_LEN]);

#endif
