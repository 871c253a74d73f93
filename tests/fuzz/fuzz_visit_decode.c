/* Fuzz target: visit events (visit_decode). See tests/fuzz/README.md. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_contract.h"
#include "ka_visit_decode.h"

/* A fixed clock, so a corpus file has the same verdict on every run. */
#define FUZZ_NOW_MS 1795000000000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Ka__V1__VisitEvent *ev = NULL;
    ka_reject_t rej;
    char id[KA_MAX_ID_LEN + 16];

    fuzz_poison_reject(&rej);
    memset(id, 0x5a, sizeof id);
    ka_err_t rc = visit_decode(data, size, FUZZ_NOW_MS, &ev, id, sizeof id, &rej);
    FUZZ_REQUIRE(rc == KA_OK || rc == KA_ERR_INVALID);
    if (rc == KA_OK) {
        FUZZ_REQUIRE(ev != NULL && ev->header != NULL);
        fuzz_check_event_id(id, sizeof id, ev->header->event_id);
        /* what the worker does next with an accepted event */
        char man[4];
        visit_man_class(ev->man, man);
        FUZZ_REQUIRE(ev->man == NULL ? man[0] == '\0' : visit_man_action(man) != NULL);
        FUZZ_REQUIRE(visit_objective_name(ev->objective) != NULL);
        for (size_t i = 0; i < ev->n_contacts; i++)
            FUZZ_REQUIRE(ev->contacts[i]->role == 0 ||
                         visit_role_name(ev->contacts[i]->role) != NULL);
        if (ev->follow_up) {
            int64_t due = visit_due_ms(ev->follow_up, ev->visited_at_ms);
            FUZZ_REQUIRE(due == 0 || due > ev->visited_at_ms);
        }
    } else {
        fuzz_check_reject(&rej);
    }
    if (ev)
        ka__v1__visit_event__free_unpacked(ev, NULL);
    return 0;
}
