#include <stdio.h>
#include <string.h>

#include "ka_account_key.h"
#include "ka_hash.h"

static const char uscc_alphabet[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
static const int uscc_weights[17] = {1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28};

static int uscc_value(char c)
{
    if (c >= 'a' && c <= 'z')
        c = (char)(c - 'a' + 'A');
    const char *p = c ? strchr(uscc_alphabet, c) : NULL;
    return p ? (int)(p - uscc_alphabet) : -1;
}

int ka_uscc_valid(const char *code)
{
    if (!code || strlen(code) != 18)
        return 0;
    int sum = 0;
    for (int i = 0; i < 17; i++) {
        int v = uscc_value(code[i]);
        if (v < 0)
            return 0;
        sum += v * uscc_weights[i];
    }
    int check = (31 - sum % 31) % 31;
    return uscc_value(code[17]) == check;
}

/* Decodes one UTF-8 sequence at s; returns its length or 0 when malformed. */
static size_t utf8_decode(const unsigned char *s, size_t avail, unsigned *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t n = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (!n || n > avail || !ka_utf8_valid((const char *)s, n))
        return 0;
    unsigned v = s[0] & (0x7F >> n);
    for (size_t k = 1; k < n; k++)
        v = (v << 6) | (s[k] & 0x3F);
    *cp = v;
    return n;
}

static int is_space(unsigned cp)
{
    return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f' || cp == '\v' ||
           cp == 0xA0 || cp == 0x3000;
}

int ka_account_normalize_name(const char *name, char *out, size_t outlen)
{
    const unsigned char *s = (const unsigned char *)name;
    size_t len = strlen(name), i = 0, o = 0;
    int pending_space = 0;

    if (!outlen)
        return -1;
    while (i < len) {
        unsigned cp;
        size_t n = utf8_decode(s + i, len - i, &cp);
        if (!n)
            return -1;
        if (cp >= 0xFF01 && cp <= 0xFF5E) {
            cp -= 0xFEE0; /* full-width ASCII forms; n bytes consumed still */
        }
        if (is_space(cp)) {
            pending_space = o > 0;
            i += n;
            continue;
        }
        if (cp >= 'A' && cp <= 'Z')
            cp = cp - 'A' + 'a';
        size_t need = (pending_space ? 1 : 0) + (cp < 0x80 ? 1 : n);
        if (o + need >= outlen)
            return -1;
        if (pending_space)
            out[o++] = ' ';
        pending_space = 0;
        if (cp < 0x80)
            out[o++] = (char)cp;
        else {
            memcpy(out + o, s + i, n);
            o += n;
        }
        i += n;
    }
    out[o] = '\0';
    return (int)o;
}

ka_err_t ka_account_key(const char *credit_code, const char *name, char *out, size_t outlen,
                        ka_reject_t *rej)
{
    char norm[KA_ACCOUNT_KEY_MAX];

    if (credit_code && *credit_code) {
        if (!ka_uscc_valid(credit_code))
            return ka_reject(rej, KA_REASON_CREDIT_CODE,
                             "unified social credit code \"%.40s\" is not 18 characters of GB "
                             "32100 with a valid check character",
                             credit_code);
        size_t o = (size_t)snprintf(out, outlen, "uscc:");
        for (int i = 0; i < 18 && o + 1 < outlen; i++) {
            char c = credit_code[i];
            out[o++] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
        }
        out[o] = '\0';
        return KA_OK;
    }
    if (!name || !*name)
        return ka_reject(rej, KA_REASON_ACCOUNT, "account needs a credit code or a name");
    int n = ka_account_normalize_name(name, norm, sizeof norm);
    if (n < 0)
        return ka_reject(rej, KA_REASON_ACCOUNT, "account name is not valid UTF-8 or too long");
    if (n == 0)
        return ka_reject(rej, KA_REASON_ACCOUNT, "account name is blank");
    if ((size_t)snprintf(out, outlen, "name:%s", norm) >= outlen)
        return ka_reject(rej, KA_REASON_ACCOUNT, "account name is too long");
    return KA_OK;
}

void ka_account_id(const char *canonical_key, char out[KA_ACCOUNT_ID_LEN])
{
    char hex[KA_HASH_HEX_LEN];
    ka_hash128_hex(canonical_key, strlen(canonical_key), hex);
    snprintf(out, KA_ACCOUNT_ID_LEN, "acct-%s", hex);
}
