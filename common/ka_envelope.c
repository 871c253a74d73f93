#include "ka_account_key.h"
#include "ka_envelope.h"

int ka_is_empty(const char *s)
{
    return !s || !*s;
}

ka_err_t ka_check_header(ka_reject_t *rej, const Ka__V1__EventHeader *h, int64_t now_ms,
                         int64_t max_future_ms)
{
    if (!h)
        return ka_reject(rej, KA_REASON_MISSING, "header is required");
    if (ka_check_id(rej, "header.event_id", h->event_id, KA_MAX_ID_LEN) ||
        ka_check_time(rej, "header.occurred_at_ms", h->occurred_at_ms, now_ms, max_future_ms) ||
        ka_check_text(rej, "header.producer", h->producer, 200) ||
        ka_check_text(rej, "header.correlation_id", h->correlation_id, 200))
        return KA_ERR_INVALID;
    return KA_OK;
}

ka_err_t ka_check_account_ref(ka_reject_t *rej, const Ka__V1__AccountRef *a)
{
    char key[KA_ACCOUNT_KEY_MAX];

    if (!a)
        return ka_reject(rej, KA_REASON_ACCOUNT, "account is required");
    if (ka_check_optional_id(rej, "account.account_id", a->account_id, KA_MAX_ID_LEN) ||
        ka_check_text(rej, "account.name", a->name, KA_MAX_ACCOUNT_NAME_LEN) ||
        ka_check_text(rej, "account.unified_social_credit_code", a->unified_social_credit_code,
                      KA_MAX_CREDIT_CODE_LEN))
        return KA_ERR_INVALID;
    if (ka_is_empty(a->account_id) && ka_is_empty(a->name) &&
        ka_is_empty(a->unified_social_credit_code))
        return ka_reject(rej, KA_REASON_ACCOUNT,
                         "account needs an account_id, a credit code or a name");
    if (!ka_is_empty(a->unified_social_credit_code) && !ka_uscc_valid(a->unified_social_credit_code))
        return ka_reject(rej, KA_REASON_CREDIT_CODE,
                         "account.unified_social_credit_code \"%.40s\" is not 18 characters of "
                         "GB 32100 with a valid check character",
                         a->unified_social_credit_code);
    if (ka_is_empty(a->account_id))
        return ka_account_key(a->unified_social_credit_code, a->name, key, sizeof key, rej);
    return KA_OK;
}
