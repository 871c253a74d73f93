#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "ka_token.h"

static const char HEX[] = "0123456789abcdef";

static void to_hex(const unsigned char *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = HEX[b[i] >> 4];
        out[2 * i + 1] = HEX[b[i] & 15];
    }
    out[2 * n] = '\0';
}

ka_err_t ka_token_new(char out[KA_TOKEN_LEN + 1], char *errstr, size_t errlen)
{
    unsigned char b[32];
    if (RAND_bytes(b, sizeof b) != 1) {
        snprintf(errstr, errlen, "no random bytes from OpenSSL");
        return KA_ERR;
    }
    memcpy(out, KA_TOKEN_PREFIX, 3);
    to_hex(b, sizeof b, out + 3);
    return KA_OK;
}

int ka_token_well_formed(const char *s, size_t len)
{
    if (!s || len != KA_TOKEN_LEN || memcmp(s, KA_TOKEN_PREFIX, 3) != 0)
        return 0;
    for (size_t i = 3; i < len; i++)
        if (!strchr(HEX, s[i]) || s[i] == '\0')
            return 0;
    return 1;
}

void ka_token_hash(const char *s, size_t len, char hash[KA_TOKEN_HASH_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(s, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32) {
        /* Only a broken OpenSSL gets here: a hash no stored row can have. */
        memset(hash, 'x', 64);
        hash[64] = '\0';
        return;
    }
    to_hex(md, 32, hash);
}

void ka_token_id(const char hash[KA_TOKEN_HASH_LEN], char id[KA_TOKEN_ID_LEN])
{
    memcpy(id, hash, 12);
    id[12] = '\0';
}
