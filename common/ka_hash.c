#include <stdint.h>
#include <stdio.h>

#include "ka_hash.h"

/* Two FNV-1a lanes with different offsets, the second with an extra mix, so
 * distinct inputs do not meet by accident even in the millions. */
void ka_hash128_hex(const void *data, size_t len, char out[KA_HASH_HEX_LEN])
{
    const unsigned char *p = data;
    uint64_t h1 = 1469598103934665603ULL, h2 = 0x6c62272e07bb0142ULL;
    for (size_t i = 0; i < len; i++) {
        h1 = (h1 ^ p[i]) * 1099511628211ULL;
        h2 = (h2 ^ p[i]) * 1099511628211ULL;
        h2 ^= h2 >> 29;
    }
    snprintf(out, KA_HASH_HEX_LEN, "%016llx%016llx", (unsigned long long)h1,
             (unsigned long long)h2);
}
