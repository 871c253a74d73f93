#ifndef FUZZ_CONTRACT_H
#define FUZZ_CONTRACT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka_validate.h"

/* The contract every decoder target checks; a broken one aborts, so both
 * libFuzzer and the replay driver (tests/fuzz/replay_main.c) report it. */

#define FUZZ_REQUIRE(cond)                                                                   \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: contract broken: %s\n", __FILE__, __LINE__, #cond);      \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

/* Non-zero when reason is one of ka_validate.h's KA_REASON_* codes. */
static inline int fuzz_reason_known(const char *reason)
{
    static const char *const known[] = {
        KA_REASON_DECODE,       KA_REASON_MISSING,
        KA_REASON_TOO_LONG,     KA_REASON_BAD_ID,
        KA_REASON_UTF8,         KA_REASON_NUL,
        KA_REASON_TIME,         KA_REASON_AMOUNT,
        KA_REASON_ENUM,         KA_REASON_LIST,
        KA_REASON_ACCOUNT,      KA_REASON_CREDIT_CODE,
        KA_REASON_UNKNOWN_STAGE, KA_REASON_UNKNOWN_OPPORTUNITY,
        KA_REASON_UNAUTHORIZED, KA_REASON_UNAUTHORIZED_ADJUSTMENT,
        KA_REASON_APPLY,
    };
    if (memchr(reason, '\0', sizeof ((ka_reject_t *)0)->reason) == NULL)
        return 0;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(reason, known[i]) == 0)
            return 1;
    return 0;
}

/* A rejection: a known reason code and a terminated detail text. */
static inline void fuzz_check_reject(const ka_reject_t *rej)
{
    FUZZ_REQUIRE(fuzz_reason_known(rej->reason));
    FUZZ_REQUIRE(memchr(rej->detail, '\0', sizeof rej->detail) != NULL);
    /* the dead letter's mode and JSON path (ka_input.h): set, terminated */
    FUZZ_REQUIRE(memchr(rej->mode, '\0', sizeof rej->mode) != NULL);
    FUZZ_REQUIRE(memchr(rej->path, '\0', sizeof rej->path) != NULL);
}

/* Fills rej with a pattern, so a verdict that leaves it untouched shows. */
static inline void fuzz_poison_reject(ka_reject_t *rej)
{
    memset(rej, 0x5a, sizeof *rej);
}

/* The accepted event's id: non-empty, at most KA_MAX_ID_LEN, the header's. */
static inline void fuzz_check_event_id(const char *event_id, size_t idlen, const char *header_id)
{
    FUZZ_REQUIRE(memchr(event_id, '\0', idlen) != NULL);
    FUZZ_REQUIRE(event_id[0] != '\0');
    FUZZ_REQUIRE(strlen(event_id) <= KA_MAX_ID_LEN);
    FUZZ_REQUIRE(header_id && strcmp(event_id, header_id) == 0);
}

#endif
