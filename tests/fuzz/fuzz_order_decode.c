/* Fuzz target: order events (order_decode). See tests/fuzz/README.md. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_contract.h"
#include "ka_order_decode.h"

/* A fixed clock, so a corpus file has the same verdict on every run. */
#define FUZZ_NOW_MS 1795000000000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Ka__V1__OrderEvent *ev = NULL;
    ka_reject_t rej;
    char id[KA_MAX_ID_LEN + 16];

    fuzz_poison_reject(&rej);
    memset(id, 0x5a, sizeof id);
    ka_err_t rc = order_decode(data, size, FUZZ_NOW_MS, &ev, id, sizeof id, &rej);
    FUZZ_REQUIRE(rc == KA_OK || rc == KA_ERR_INVALID);
    if (rc == KA_OK) {
        FUZZ_REQUIRE(ev != NULL && ev->header != NULL);
        fuzz_check_event_id(id, sizeof id, ev->header->event_id);
        /* what the worker does next with an accepted event: the header
         * promises no overflow and a total within the amount bound */
        int64_t total = order_total(ev);
        FUZZ_REQUIRE(total >= 0 && total <= KA_MAX_AMOUNT_MINOR);
        for (size_t i = 0; i < ev->n_lines; i++) {
            int64_t a = order_line_amount(ev->lines[i]->quantity_milli,
                                          ev->lines[i]->unit_price_minor);
            FUZZ_REQUIRE(a >= 0 && a <= total);
        }
        FUZZ_REQUIRE(order_status_name(ev->status) != NULL);
        FUZZ_REQUIRE(order_channel_name(ev->channel) != NULL);
        char month[11];
        order_month(order_effective_ms(ev), month);
        FUZZ_REQUIRE(strlen(month) == 10);
    } else {
        fuzz_check_reject(&rej);
    }
    if (ev)
        ka__v1__order_event__free_unpacked(ev, NULL);
    return 0;
}
