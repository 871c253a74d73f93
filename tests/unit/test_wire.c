/* NUL bytes inside protobuf string fields (common/ka_wire.c): found on the
 * wire, named by field path, and refused by every decoder, including the
 * committed fuzz seeds that the decoders used to accept as a shorter string. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ka_wire.h"
#include "ka_opp_decode.h"
#include "ka_order_decode.h"
#include "ka_visit_decode.h"

/* The fuzz targets' fixed clock (tests/fuzz/fuzz_*.c), so the seeds get the
 * verdict they get there. */
#define FUZZ_NOW_MS 1795000000000LL

typedef struct visit_fixture {
    Ka__V1__EventHeader h;
    Ka__V1__AccountRef a;
    Ka__V1__ContactMet c[3];
    Ka__V1__ContactMet *cp[3];
    Ka__V1__VisitEvent e;
} visit_fixture_t;

/* A valid visit with three contacts, marker characters ('#') where a test
 * puts its NUL. */
static void valid_visit(visit_fixture_t *f)
{
    static const Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    static const Ka__V1__AccountRef a = KA__V1__ACCOUNT_REF__INIT;
    static const Ka__V1__ContactMet c = KA__V1__CONTACT_MET__INIT;
    static const Ka__V1__VisitEvent e = KA__V1__VISIT_EVENT__INIT;

    f->h = h;
    f->h.event_id = "v-1";
    f->h.occurred_at_ms = FUZZ_NOW_MS - 1000;
    f->h.producer = "crm";
    f->a = a;
    f->a.name = "Acme";
    for (int i = 0; i < 3; i++) {
        f->c[i] = c;
        f->cp[i] = &f->c[i];
    }
    f->c[0].name = "Zhang";
    f->c[1].name = "Li";
    f->c[2].name = "Wang";
    f->e = e;
    f->e.header = &f->h;
    f->e.account = &f->a;
    f->e.rep_id = "rep-1";
    f->e.visited_at_ms = FUZZ_NOW_MS - 3600000;
    f->e.objective = KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_SELL;
    f->e.n_contacts = 3;
    f->e.contacts = f->cp;
}

/* Packs the visit and turns the only '#' of the encoding into a NUL (none
 * when the event has no '#'). The caller frees. */
static uint8_t *pack_with_nul(const Ka__V1__VisitEvent *e, size_t *len)
{
    *len = ka__v1__visit_event__get_packed_size(e);
    uint8_t *buf = malloc(*len);
    assert_non_null(buf);
    ka__v1__visit_event__pack(e, buf);
    uint8_t *mark = memchr(buf, '#', *len);
    if (mark) {
        assert_null(memchr(mark + 1, '#', *len - (size_t)(mark + 1 - buf)));
        *mark = '\0';
    }
    return buf;
}

static int find(const uint8_t *buf, size_t len, char *field, size_t fieldlen)
{
    return ka_wire_find_nul(&ka__v1__visit_event__descriptor, buf, len, field, fieldlen);
}

/* ----------------------------------------------------------------------------
 * ka_wire_find_nul
 * ------------------------------------------------------------------------- */

static void a_clean_message_has_no_nul(void **state)
{
    (void)state;
    visit_fixture_t f;
    valid_visit(&f);
    size_t len;
    uint8_t *buf = pack_with_nul(&f.e, &len);
    char field[64];
    assert_int_equal(find(buf, len, field, sizeof field), 0);
    assert_string_equal(field, "");
    free(buf);
}

static void a_nul_is_named_by_its_field_path(void **state)
{
    (void)state;
    static const struct {
        int where; /* 0 event id, 1 rep id, 2..4 contact names */
        const char *path;
    } cases[] = {
        {0, "header.event_id"},  {1, "rep_id"}, {2, "contacts[0].name"},
        {3, "contacts[1].name"}, {4, "contacts[2].name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        visit_fixture_t f;
        valid_visit(&f);
        switch (cases[i].where) {
        case 0: f.h.event_id = "v-1#x"; break;
        case 1: f.e.rep_id = "rep#1"; break;
        default: f.c[cases[i].where - 2].name = "Ma#Yun"; break;
        }
        size_t len;
        uint8_t *buf = pack_with_nul(&f.e, &len);
        char field[64];
        assert_int_equal(find(buf, len, field, sizeof field), 1);
        assert_string_equal(field, cases[i].path);
        free(buf);
    }
}

/* The path is cut to the caller's buffer, still terminated. */
static void a_short_path_buffer_is_cut_not_overrun(void **state)
{
    (void)state;
    visit_fixture_t f;
    valid_visit(&f);
    f.c[2].name = "Ma#Yun";
    size_t len;
    uint8_t *buf = pack_with_nul(&f.e, &len);
    char field[8 + 1];
    memset(field, 'z', sizeof field);
    assert_int_equal(find(buf, len, field, sizeof field - 1), 1);
    assert_string_equal(field, "contact");
    assert_int_equal(field[8], 'z');
    free(buf);
}

/* Field 999 is in no schema: protobuf-c keeps it aside unread. */
static void an_unknown_field_with_a_nul_is_ignored(void **state)
{
    (void)state;
    visit_fixture_t f;
    valid_visit(&f);
    size_t len;
    uint8_t *clean = pack_with_nul(&f.e, &len);
    /* key of field 999, wire type 2: (999 << 3) | 2 = 7994 = 0xba 0x3e */
    static const uint8_t extra[] = {0xba, 0x3e, 3, 'a', 0, 'b'};
    uint8_t *buf = malloc(len + sizeof extra);
    assert_non_null(buf);
    memcpy(buf, clean, len);
    memcpy(buf + len, extra, sizeof extra);
    char field[64];
    assert_int_equal(find(buf, len + sizeof extra, field, sizeof field), 0);
    free(buf);
    free(clean);
}

static void malformed_bytes_are_not_a_message(void **state)
{
    (void)state;
    char field[64];
    static const uint8_t truncated_len[] = {0x0a, 0x05, 'a', 'b'};      /* header, 5 bytes, 2 given */
    static const uint8_t group[] = {0x0b, 0x0c};                         /* field 1 as a group */
    static const uint8_t long_varint[] = {0x20, 0xff, 0xff, 0xff, 0xff, 0xff,
                                          0xff, 0xff, 0xff, 0xff, 0xff, 0x01}; /* 11 bytes */
    static const uint8_t cut_fixed64[] = {0x09, 1, 2, 3};
    static const uint8_t cut_key[] = {0x80};
    assert_int_equal(find(truncated_len, sizeof truncated_len, field, sizeof field), -1);
    assert_int_equal(find(group, sizeof group, field, sizeof field), -1);
    assert_int_equal(find(long_varint, sizeof long_varint, field, sizeof field), -1);
    assert_int_equal(find(cut_fixed64, sizeof cut_fixed64, field, sizeof field), -1);
    assert_int_equal(find(cut_key, sizeof cut_key, field, sizeof field), -1);
    assert_int_equal(find(NULL, 0, field, sizeof field), 0); /* empty: all defaults */
}

static void the_check_gives_a_reason_and_the_field(void **state)
{
    (void)state;
    visit_fixture_t f;
    valid_visit(&f);
    f.c[1].name = "L#i";
    size_t len;
    uint8_t *buf = pack_with_nul(&f.e, &len);
    ka_reject_t rej;
    assert_int_equal(ka_check_wire_strings(&rej, &ka__v1__visit_event__descriptor, buf, len),
                     KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_NUL);
    assert_non_null(strstr(rej.detail, "contacts[1].name"));
    free(buf);
}

/* Field number 0 does not exist; protobuf-c refuses it only when the key's
 * first byte shows it (0x00-0x07), so an overlong key (0x80 0x80 0x80 0x00)
 * was unpacked as an unknown field, which protobuf-c then packs as 0x00 and
 * cannot read back: an event the official runtimes refuse, accepted. Found
 * by the input fuzz target (tests/fuzz/corpus/input/crash_overlong_field_zero). */
static void field_number_zero_is_not_a_message(void **state)
{
    (void)state;
    visit_fixture_t f;
    valid_visit(&f);
    size_t len = ka__v1__visit_event__get_packed_size(&f.e);
    static const uint8_t zero[] = {0x80, 0x80, 0x80, 0x00, 0x01}; /* field 0, varint 1 */
    uint8_t *buf = malloc(len + sizeof zero);
    assert_non_null(buf);
    ka__v1__visit_event__pack(&f.e, buf);
    memcpy(buf + len, zero, sizeof zero);
    char field[64];
    assert_int_equal(find(buf, len + sizeof zero, field, sizeof field), -1);
    Ka__V1__VisitEvent *ev = NULL;
    ka_reject_t rej;
    char id[80];
    assert_int_equal(visit_decode(buf, len + sizeof zero, FUZZ_NOW_MS, &ev, id, sizeof id, &rej),
                     KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_DECODE);
    if (ev)
        ka__v1__visit_event__free_unpacked(ev, NULL);
    free(buf);
}

/* ----------------------------------------------------------------------------
 * The decoders, on packed events and on the committed fuzz seeds
 * ------------------------------------------------------------------------- */

/* A NUL in the event id: refused before the id is copied, so the shorter id
 * never reaches the dedupe table. */
static void the_visit_decoder_refuses_a_nul_in_the_event_id(void **state)
{
    (void)state;
    visit_fixture_t f;
    valid_visit(&f);
    size_t len;
    uint8_t *buf = pack_with_nul(&f.e, &len);
    Ka__V1__VisitEvent *ev = NULL;
    ka_reject_t rej;
    char id[80];
    /* the same event without the NUL is valid, so the NUL alone decides */
    assert_int_equal(visit_decode(buf, len, FUZZ_NOW_MS, &ev, id, sizeof id, &rej), KA_OK);
    assert_string_equal(id, "v-1");
    ka__v1__visit_event__free_unpacked(ev, NULL);
    free(buf);

    f.h.event_id = "v-1#x";
    buf = pack_with_nul(&f.e, &len);
    assert_int_equal(visit_decode(buf, len, FUZZ_NOW_MS, &ev, id, sizeof id, &rej),
                     KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_NUL);
    assert_non_null(strstr(rej.detail, "header.event_id"));
    assert_string_equal(id, "");
    if (ev)
        ka__v1__visit_event__free_unpacked(ev, NULL);
    free(buf);
}

static uint8_t *read_seed(const char *target, const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", KA_FUZZ_CORPUS_DIR, target, name);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("cannot open seed %s", path);
    uint8_t *buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 16, fp);
    fclose(fp);
    assert_true(*len > 0);
    return buf;
}

/* Each decoder behind one signature: decodes, frees what it unpacked. */
static ka_err_t decode_visit(const uint8_t *buf, size_t len, char *id, size_t idlen,
                             ka_reject_t *rej)
{
    Ka__V1__VisitEvent *ev = NULL;
    ka_err_t rc = visit_decode(buf, len, FUZZ_NOW_MS, &ev, id, idlen, rej);
    if (ev)
        ka__v1__visit_event__free_unpacked(ev, NULL);
    return rc;
}

static ka_err_t decode_opp(const uint8_t *buf, size_t len, char *id, size_t idlen,
                           ka_reject_t *rej)
{
    Ka__V1__OpportunityEvent *ev = NULL;
    ka_err_t rc = opp_decode(buf, len, FUZZ_NOW_MS, &ev, id, idlen, rej);
    if (ev)
        ka__v1__opportunity_event__free_unpacked(ev, NULL);
    return rc;
}

static ka_err_t decode_order(const uint8_t *buf, size_t len, char *id, size_t idlen,
                             ka_reject_t *rej)
{
    Ka__V1__OrderEvent *ev = NULL;
    ka_err_t rc = order_decode(buf, len, FUZZ_NOW_MS, &ev, id, idlen, rej);
    if (ev)
        ka__v1__order_event__free_unpacked(ev, NULL);
    return rc;
}

/* The committed hostile seeds (tests/fuzz/corpus) stay refused, naming the field. */
static void the_nul_seeds_are_refused(void **state)
{
    static const struct {
        const char *target, *seed, *field;
        ka_err_t (*decode)(const uint8_t *, size_t, char *, size_t, ka_reject_t *);
    } seeds[] = {
        {"visit_decode", "hostile_nul_in_event_id", "header.event_id", decode_visit},
        {"opp_decode", "hostile_nul_in_id", "opportunity_id", decode_opp},
        {"order_decode", "hostile_nul_in_sku", "lines[0].", decode_order},
    };
    (void)state;
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        size_t len;
        uint8_t *buf = read_seed(seeds[i].target, seeds[i].seed, &len);
        ka_reject_t rej;
        char id[80] = "stale";
        assert_int_equal(seeds[i].decode(buf, len, id, sizeof id, &rej), KA_ERR_INVALID);
        assert_string_equal(rej.reason, KA_REASON_NUL);
        assert_non_null(strstr(rej.detail, seeds[i].field));
        assert_string_equal(id, ""); /* never the cut-short id */
        free(buf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_clean_message_has_no_nul),
        cmocka_unit_test(a_nul_is_named_by_its_field_path),
        cmocka_unit_test(a_short_path_buffer_is_cut_not_overrun),
        cmocka_unit_test(an_unknown_field_with_a_nul_is_ignored),
        cmocka_unit_test(malformed_bytes_are_not_a_message),
        cmocka_unit_test(field_number_zero_is_not_a_message),
        cmocka_unit_test(the_check_gives_a_reason_and_the_field),
        cmocka_unit_test(the_visit_decoder_refuses_a_nul_in_the_event_id),
        cmocka_unit_test(the_nul_seeds_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
