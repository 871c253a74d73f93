#ifndef KA_TOKEN_H
#define KA_TOKEN_H

#include <stddef.h>

#include "ka_err.h"

/* API bearer tokens (services/api, kactl token): "ka_" and 64 lower-case
 * hex digits (32 random bytes). Only their SHA-256 is stored; the first 12
 * hex digits of it name the token (api_token.id). Only ka_token.c includes
 * OpenSSL. */
#define KA_TOKEN_PREFIX "ka_"
#define KA_TOKEN_LEN (3 + 64)
#define KA_TOKEN_HASH_LEN 65 /* 64 hex digits and NUL */
#define KA_TOKEN_ID_LEN 13   /* 12 hex digits and NUL */

/* A new token from the system's CSPRNG. Returns KA_ERR (errstr filled) when
 * no random bytes could be had. */
ka_err_t ka_token_new(char out[KA_TOKEN_LEN + 1], char *errstr, size_t errlen);

/* Non-zero when `s` (len bytes) has the token's form. */
int ka_token_well_formed(const char *s, size_t len);

/* The SHA-256 of `s` (len bytes) in hex, and the id derived from it. */
void ka_token_hash(const char *s, size_t len, char hash[KA_TOKEN_HASH_LEN]);
void ka_token_id(const char hash[KA_TOKEN_HASH_LEN], char id[KA_TOKEN_ID_LEN]);

#endif
