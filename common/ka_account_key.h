#ifndef KA_ACCOUNT_KEY_H
#define KA_ACCOUNT_KEY_H

#include <stddef.h>

#include "ka_validate.h"

/* Account uniqueness (DOMAIN.md section 2, 确定客户惟一性): the canonical key
 * is "uscc:<code>" when a unified social credit code is given, else
 * "name:<normalized name>". Two spellings of one company give one key. */

#define KA_ACCOUNT_KEY_MAX 512

/* Non-zero when `code` is a well-formed unified social credit code: 18
 * characters from GB 32100's alphabet with a matching check character.
 * Lower-case letters are accepted (they are folded). */
int ka_uscc_valid(const char *code);

/* Normalizes a company name: trims, folds full-width forms (U+FF01..U+FF5E,
 * U+3000) to their ASCII counterparts, folds ASCII case, and collapses runs
 * of white space into one space. Returns the length written, or -1 when the
 * input is not valid UTF-8 or out is too small. */
int ka_account_normalize_name(const char *name, char *out, size_t outlen);

/* Writes the canonical key of an account named by an optional credit code
 * and/or a name. Returns KA_OK, or KA_ERR_INVALID with rej filled (no code
 * and no usable name, or a malformed code). */
ka_err_t ka_account_key(const char *credit_code, const char *name, char *out, size_t outlen,
                        ka_reject_t *rej);

/* The account id the product gives a new account: "acct-" and 32 hex digits
 * of a hash of the canonical key, so every worker derives the same id
 * without asking the database. Writes 38 bytes including the NUL. */
#define KA_ACCOUNT_ID_LEN 38
void ka_account_id(const char *canonical_key, char out[KA_ACCOUNT_ID_LEN]);

#endif
