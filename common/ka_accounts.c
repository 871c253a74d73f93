#include <stdlib.h>
#include <string.h>

#include "ka_account_key.h"
#include "ka_accounts.h"

ka_err_t ka_accounts_prepare(ka_pg_t *pg, char *errstr, size_t errlen)
{
    /* DO UPDATE (a no-op write) so RETURNING also gives accounts that exist;
     * the first event naming a key decides its name and rep. */
    ka_err_t rc = ka_pg_prepare(
        pg, "ka_accounts_upsert",
        "INSERT INTO account (id, canonical_key, credit_code, display_name, owner_rep_id, "
        "created_event_id) SELECT DISTINCT ON (a.key) a.id, a.key, a.code, a.name, a.rep, a.ev "
        "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) "
        "WITH ORDINALITY AS a(id, key, code, name, rep, ev, i) ORDER BY a.key, a.i "
        "ON CONFLICT (canonical_key) DO UPDATE SET canonical_key = EXCLUDED.canonical_key "
        "RETURNING canonical_key, id",
        errstr, errlen);
    if (rc != KA_OK)
        return rc;
    return ka_pg_prepare(pg, "ka_accounts_known",
                         "SELECT id FROM account WHERE id = ANY($1::text[])", errstr, errlen);
}

void ka_accounts_begin(ka_accounts_t *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < 6; i++)
        ka_buf_array_begin(&a->cols[i]);
    ka_buf_array_begin(&a->ids);
    ka_buf_array_begin(&a->keys);
}

static int given(const Ka__V1__AccountRef *ref)
{
    return ref->account_id && *ref->account_id;
}

void ka_accounts_add(ka_accounts_t *a, const Ka__V1__AccountRef *ref, const char *rep,
                     const char *event_id)
{
    char key[KA_ACCOUNT_KEY_MAX], id[KA_ACCOUNT_ID_LEN];
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
    ka_account_id(key, id);
    ka_buf_array_add(&a->cols[0], id);
    ka_buf_array_add(&a->cols[1], key);
    ka_buf_array_add(&a->cols[2], strncmp(key, "uscc:", 5) == 0 ? key + 5 : NULL);
    ka_buf_array_add(&a->cols[3], ref->name && *ref->name ? ref->name : key);
    ka_buf_array_add(&a->cols[4], rep);
    ka_buf_array_add(&a->cols[5], event_id);
    ka_buf_array_add(&a->keys, key);
    a->nnew++;
}

static char **strv(const ka_pgres_t *res, int col, size_t *n)
{
    *n = (size_t)ka_pgres_rows(res);
    char **v = ka_calloc(*n + 1, sizeof *v);
    for (size_t i = 0; i < *n; i++) {
        const char *s = ka_pgres_value(res, (int)i, col);
        v[i] = ka_strdup(s ? s : "");
    }
    return v;
}

static int read_upserted(void *ud, const ka_pgres_t *res)
{
    ka_accounts_t *a = ud;
    size_t n;
    a->res_keys = strv(res, 0, &n);
    a->res_ids = strv(res, 1, &a->nres);
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
    ka_pg_param_t p[6];
    ka_err_t rc = KA_OK;
    for (int i = 0; i < 6; i++) {
        ka_buf_array_end(&a->cols[i]);
        p[i] = (ka_pg_param_t){ka_buf_str(&a->cols[i]), 0, 0};
    }
    ka_buf_array_end(&a->ids);
    ka_buf_array_end(&a->keys);
    if (a->nnew)
        rc = ka_pg_pipe_push(pg, "ka_accounts_upsert", 6, p, read_upserted, a, errstr, errlen);
    if (rc == KA_OK && a->ngiven) {
        ka_pg_param_t ids = {ka_buf_str(&a->ids), 0, 0};
        rc = ka_pg_pipe_push(pg, "ka_accounts_known", 1, &ids, read_known, a, errstr, errlen);
    }
    return rc;
}

void ka_accounts_params(const ka_accounts_t *a, ka_pg_param_t out[2])
{
    out[0] = (ka_pg_param_t){ka_buf_str(&a->ids), 0, 0};
    out[1] = (ka_pg_param_t){ka_buf_str(&a->keys), 0, 0};
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
    for (size_t i = 0; i < a->nres; i++)
        if (strcmp(a->res_keys[i], key) == 0)
            return a->res_ids[i];
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
    for (int i = 0; i < 6; i++)
        ka_buf_free(&a->cols[i]);
    ka_buf_free(&a->ids);
    ka_buf_free(&a->keys);
    free_strv(a->res_keys, a->nres);
    free_strv(a->res_ids, a->nres);
    free_strv(a->known, a->nknown);
    memset(a, 0, sizeof *a);
}
