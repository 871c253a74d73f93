#include <stdlib.h>
#include <string.h>

#include "ka_account_key.h"
#include "ka_accounts.h"

/* Keyed references travel as parallel arrays in event order; WITH ORDINALITY
 * gives each its place (r.i), so "the first event naming it" is decidable. */
#define REFS                                                                                      \
    "unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "            \
    "$7::text[]) WITH ORDINALITY AS r(id, key, code, nkey, name, rep, ev, i)"

static const char *statements[][2] = {
    /* Everyone who may give a code to an account takes its lock first, in
     * one order (no deadlock among them), and holds it to the commit: the
     * attach and create below then see every earlier holder's outcome, and
     * never trip over a code another transaction has not committed yet. The
     * two-key form keeps clear of the scans' one-key locks. */
    {"ka_accounts_lock",
     "SELECT count(pg_advisory_xact_lock(4242201, s.k)) FROM (SELECT DISTINCT hashtext(c) AS k "
     "FROM unnest($1::text[]) AS c WHERE c IS NOT NULL ORDER BY 1) s"},
    /* Accounts named by name alone, before the codes: a code later in the
     * batch attaches to such an account as it would in a later batch. */
    {"ka_accounts_insert_named",
     "INSERT INTO account (id, canonical_key, display_name, owner_rep_id, created_event_id) "
     "SELECT DISTINCT ON (r.key) r.id, r.key, r.name, r.rep, r.ev FROM " REFS " "
     "WHERE r.code IS NULL ORDER BY r.key, r.i ON CONFLICT DO NOTHING"},
    /* A code no account holds goes to the account keyed by the name its
     * first event gives, when that account has no code and existed by that
     * event (it was not created by a later event of this batch). One code
     * per account: the earliest. The row lock and the re-checked "no code
     * yet" settle two transactions giving one account different codes. */
    {"ka_accounts_attach",
     "UPDATE account t SET credit_code = c.code, updated_at = now() FROM ("
     "SELECT DISTINCT ON (f.nkey) f.code, f.nkey FROM ("
     "SELECT DISTINCT ON (r.code) r.code, r.nkey, r.i FROM " REFS " "
     "WHERE r.code IS NOT NULL ORDER BY r.code, r.i) f "
     "JOIN account n ON n.canonical_key = f.nkey AND n.credit_code IS NULL "
     "WHERE NOT EXISTS (SELECT 1 FROM account x WHERE x.credit_code = f.code) "
     "AND NOT EXISTS (SELECT 1 FROM unnest($7::text[]) WITH ORDINALITY AS e(ev, j) "
     "WHERE e.ev = n.created_event_id AND e.j > f.i) "
     "ORDER BY f.nkey, f.i) c "
     "WHERE t.canonical_key = c.nkey AND t.credit_code IS NULL"},
    /* The codes still unheld create their accounts; a code attached above
     * (or held already) is a conflict on account_credit_code: nothing. */
    {"ka_accounts_insert_coded",
     "INSERT INTO account (id, canonical_key, credit_code, display_name, owner_rep_id, "
     "created_event_id) SELECT DISTINCT ON (r.key) r.id, r.key, r.code, r.name, r.rep, r.ev "
     "FROM " REFS " WHERE r.code IS NOT NULL ORDER BY r.key, r.i ON CONFLICT DO NOTHING"},
    /* A new statement, so a new snapshot: it sees what the others did and
     * what concurrent writers committed while this one waited. */
    {"ka_accounts_resolve",
     "SELECT canonical_key, credit_code, id FROM account "
     "WHERE canonical_key = ANY($1::text[]) OR credit_code = ANY($2::text[])"},
    {"ka_accounts_known", "SELECT id FROM account WHERE id = ANY($1::text[])"},
};

ka_err_t ka_accounts_prepare(ka_pg_t *pg, char *errstr, size_t errlen)
{
    return ka_pg_prepare_all(pg, statements, sizeof statements / sizeof statements[0], errstr,
                             errlen);
}

void ka_accounts_begin(ka_accounts_t *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < 7; i++)
        ka_buf_array_begin(&a->cols[i]);
    ka_buf_array_begin(&a->ids);
}

static int given(const Ka__V1__AccountRef *ref)
{
    return ref->account_id && *ref->account_id;
}

void ka_accounts_add(ka_accounts_t *a, const Ka__V1__AccountRef *ref, const char *rep,
                     const char *event_id)
{
    char key[KA_ACCOUNT_KEY_MAX], nkey[KA_ACCOUNT_KEY_MAX], id[KA_ACCOUNT_ID_LEN];
    ka_reject_t rej;
    if (!ref)
        return;
    if (given(ref)) {
        ka_buf_array_add(&a->ids, ref->account_id);
        a->ngiven++;
        return;
    }
    if (ka_account_key(ref->unified_social_credit_code, ref->name, key, sizeof key, &rej) != KA_OK)
        return;
    int coded = strncmp(key, "uscc:", 5) == 0;
    /* The name's key, for a code to find an account created by that name. */
    int named = ref->name && *ref->name &&
                ka_account_key(NULL, ref->name, nkey, sizeof nkey, &rej) == KA_OK;
    ka_account_id(key, id);
    ka_buf_array_add(&a->cols[0], id);
    ka_buf_array_add(&a->cols[1], key);
    ka_buf_array_add(&a->cols[2], coded ? key + 5 : NULL);
    ka_buf_array_add(&a->cols[3], named ? nkey : NULL);
    ka_buf_array_add(&a->cols[4], ref->name && *ref->name ? ref->name : key);
    ka_buf_array_add(&a->cols[5], rep);
    ka_buf_array_add(&a->cols[6], event_id);
    a->nnew++;
    a->ncoded += coded;
}

static char **strv(const ka_pgres_t *res, int col, size_t *n)
{
    *n = (size_t)ka_pgres_rows(res);
    char **v = ka_calloc(*n + 1, sizeof *v);
    for (size_t i = 0; i < *n; i++) {
        const char *s = ka_pgres_value(res, (int)i, col);
        v[i] = s ? ka_strdup(s) : NULL;
    }
    return v;
}

static int read_resolved(void *ud, const ka_pgres_t *res)
{
    ka_accounts_t *a = ud;
    size_t n;
    a->res_keys = strv(res, 0, &n);
    a->res_codes = strv(res, 1, &n);
    a->res_ids = strv(res, 2, &a->nres);
    return 0;
}

static int read_known(void *ud, const ka_pgres_t *res)
{
    ka_accounts_t *a = ud;
    a->known = strv(res, 0, &a->nknown);
    return 0;
}

ka_err_t ka_accounts_queue(ka_accounts_t *a, ka_pg_t *pg, char *errstr, size_t errlen)
{
    ka_pg_param_t p[7];
    ka_err_t rc = KA_OK;
    for (int i = 0; i < 7; i++) {
        ka_buf_array_end(&a->cols[i]);
        p[i] = (ka_pg_param_t){ka_buf_str(&a->cols[i]), 0, 0};
    }
    ka_buf_array_end(&a->ids);
    if (a->nnew) {
        ka_pg_param_t look[2] = {p[1], p[2]};
        if (a->ncoded)
            rc = ka_pg_pipe_push(pg, "ka_accounts_lock", 1, &p[2], NULL, NULL, errstr, errlen);
        if (rc == KA_OK && a->ncoded < a->nnew)
            rc = ka_pg_pipe_push(pg, "ka_accounts_insert_named", 7, p, NULL, NULL, errstr,
                                 errlen);
        if (rc == KA_OK && a->ncoded)
            rc = ka_pg_pipe_push(pg, "ka_accounts_attach", 7, p, NULL, NULL, errstr, errlen);
        if (rc == KA_OK && a->ncoded)
            rc = ka_pg_pipe_push(pg, "ka_accounts_insert_coded", 7, p, NULL, NULL, errstr,
                                 errlen);
        if (rc == KA_OK)
            rc = ka_pg_pipe_push(pg, "ka_accounts_resolve", 2, look, read_resolved, a, errstr,
                                 errlen);
    }
    if (rc == KA_OK && a->ngiven) {
        ka_pg_param_t ids = {ka_buf_str(&a->ids), 0, 0};
        rc = ka_pg_pipe_push(pg, "ka_accounts_known", 1, &ids, read_known, a, errstr, errlen);
    }
    return rc;
}

void ka_accounts_params(const ka_accounts_t *a, ka_pg_param_t out[3])
{
    out[0] = (ka_pg_param_t){ka_buf_str(&a->ids), 0, 0};
    out[1] = (ka_pg_param_t){ka_buf_str(&a->cols[1]), 0, 0};
    out[2] = (ka_pg_param_t){ka_buf_str(&a->cols[2]), 0, 0};
}

const char *ka_accounts_id(const ka_accounts_t *a, const Ka__V1__AccountRef *ref)
{
    char key[KA_ACCOUNT_KEY_MAX];
    ka_reject_t rej;
    if (!ref)
        return NULL;
    if (given(ref)) {
        for (size_t i = 0; i < a->nknown; i++)
            if (strcmp(a->known[i], ref->account_id) == 0)
                return a->known[i];
        return NULL;
    }
    if (ka_account_key(ref->unified_social_credit_code, ref->name, key, sizeof key, &rej) != KA_OK)
        return NULL;
    /* A code is found where it is held, which may be an account keyed by
     * name; a name alone by its key. */
    int coded = strncmp(key, "uscc:", 5) == 0;
    for (size_t i = 0; i < a->nres; i++) {
        const char *have = coded ? a->res_codes[i] : a->res_keys[i];
        if (have && strcmp(have, coded ? key + 5 : key) == 0)
            return a->res_ids[i];
    }
    return NULL;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void ka_accounts_free(ka_accounts_t *a)
{
    for (int i = 0; i < 7; i++)
        ka_buf_free(&a->cols[i]);
    ka_buf_free(&a->ids);
    free_strv(a->res_keys, a->nres);
    free_strv(a->res_codes, a->nres);
    free_strv(a->res_ids, a->nres);
    free_strv(a->known, a->nknown);
    memset(a, 0, sizeof *a);
}
