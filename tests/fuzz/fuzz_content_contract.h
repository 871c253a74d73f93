#ifndef FUZZ_CONTENT_CONTRACT_H
#define FUZZ_CONTENT_CONTRACT_H

#include "fuzz_contract.h"
#include "ka_cloudevents.h"
#include "ka_framing.h"
#include "ka_json_pb.h"

/* The contract of the JSON, CloudEvents and framing targets: the reasons of
 * fuzz_contract.h plus those of ka_json_pb.h, ka_cloudevents.h and
 * ka_framing.h. */

static inline int fuzz_content_reason_known(const char *reason)
{
    static const char *const known[] = {
        KA_REASON_WRONG_TYPE,    KA_REASON_OUT_OF_RANGE,  KA_REASON_UNKNOWN_FIELD,
        KA_REASON_DUPLICATE_FIELD, KA_REASON_TOO_LARGE,   KA_REASON_CE_INVALID,
        KA_REASON_CE_MISMATCH,   KA_REASON_CONTENT_TYPE,  KA_REASON_MODE_REFUSED,
        KA_REASON_FRAMING,       KA_REASON_MESSAGE_INDEX,
    };
    if (fuzz_reason_known(reason))
        return 1;
    if (memchr(reason, '\0', sizeof ((ka_reject_t *)0)->reason) == NULL)
        return 0;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(reason, known[i]) == 0)
            return 1;
    return 0;
}

static inline void fuzz_check_content_reject(const ka_reject_t *rej)
{
    FUZZ_REQUIRE(fuzz_content_reason_known(rej->reason));
    FUZZ_REQUIRE(memchr(rej->detail, '\0', sizeof rej->detail) != NULL);
}

/* A JSON rejection: as above, and a path that is "" or starts with '$' and
 * begins the detail. */
static inline void fuzz_check_json_reject(const ka_json_reject_t *err)
{
    fuzz_check_content_reject(&err->rej);
    FUZZ_REQUIRE(memchr(err->path, '\0', sizeof err->path) != NULL);
    if (err->path[0]) {
        FUZZ_REQUIRE(err->path[0] == '$');
        FUZZ_REQUIRE(strncmp(err->rej.detail, err->path, strlen(err->path)) == 0 ||
                     strlen(err->path) >= sizeof err->rej.detail - 1);
    }
}

#endif
