/* Fuzz target: opportunity events (opp_decode). See tests/fuzz/README.md. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_contract.h"
#include "ka_opp_decode.h"

/* A fixed clock, so a corpus file has the same verdict on every run. */
#define FUZZ_NOW_MS 1795000000000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Ka__V1__OpportunityEvent *ev = NULL;
    ka_reject_t rej;
    char id[KA_MAX_ID_LEN + 16];

    fuzz_poison_reject(&rej);
    memset(id, 0x5a, sizeof id);
    ka_err_t rc = opp_decode(data, size, FUZZ_NOW_MS, &ev, id, sizeof id, &rej);
    FUZZ_REQUIRE(rc == KA_OK || rc == KA_ERR_INVALID);
    if (rc == KA_OK) {
        FUZZ_REQUIRE(ev != NULL && ev->header != NULL);
        fuzz_check_event_id(id, sizeof id, ev->header->event_id);
        /* what the worker does next with an accepted event */
        FUZZ_REQUIRE(opp_kind_name(ev) != NULL);
        if (ev->kind_case == KA__V1__OPPORTUNITY_EVENT__KIND_ASSESSED) {
            const Ka__V1__ValueAssessed *a = ev->assessed;
            FUZZ_REQUIRE(opp_yes_count(a->is_there_an_opportunity, a->n_is_there_an_opportunity) <= 5);
            FUZZ_REQUIRE(opp_yes_count(a->can_we_compete, a->n_can_we_compete) <= 5);
            FUZZ_REQUIRE(opp_yes_count(a->can_we_win, a->n_can_we_win) <= 5);
            FUZZ_REQUIRE(opp_yes_count(a->is_it_worth_winning, a->n_is_it_worth_winning) <= 5);
        }
    } else {
        fuzz_check_reject(&rej);
    }
    if (ev)
        ka__v1__opportunity_event__free_unpacked(ev, NULL);
    return 0;
}
