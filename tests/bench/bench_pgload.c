/* The storage limit: how fast PostgreSQL takes rows in batches of 1,000 per
 * statement and transaction, for the two kinds of rows a worker writes: wide
 * upserts shaped like the opportunity table (same columns, checks and indexes,
 * in a scratch table of the same database), half new and half updates, and
 * narrow inserts shaped like processed_event (one per event, as most of the
 * rows are); the same narrow rows by binary COPY, to show whether COPY
 * would beat INSERT ... SELECT unnest for the append-only logs (the workers
 * cannot use it inside the pipeline that carries their transaction); and
 * the wide upsert one row per transaction, what an event-at-a-time worker
 * pays. */
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define BATCH 1000

static const char create_sql[] =
    "SET client_min_messages = warning; DROP TABLE IF EXISTS bench_opportunity; "
    "CREATE TABLE bench_opportunity (LIKE opportunity INCLUDING DEFAULTS INCLUDING GENERATED "
    "INCLUDING CONSTRAINTS INCLUDING INDEXES)";

static const char narrow_sql[] =
    "DROP TABLE IF EXISTS bench_processed; "
    "CREATE TABLE bench_processed (LIKE processed_event INCLUDING DEFAULTS INCLUDING "
    "CONSTRAINTS INCLUDING INDEXES); DROP TABLE IF EXISTS bench_processed_copy; "
    "CREATE TABLE bench_processed_copy (LIKE processed_event INCLUDING DEFAULTS INCLUDING "
    "CONSTRAINTS INCLUDING INDEXES)";

static const char copy_sql[] =
    "COPY bench_processed_copy (consumer_group, event_id, topic, partition, \"offset\", "
    "occurred_at) FROM STDIN (FORMAT binary)";

static const char insert_sql[] =
    "INSERT INTO bench_processed (consumer_group, event_id, topic, partition, \"offset\", "
    "occurred_at) SELECT 'bench', ev, 'bench.topic', (at % 6)::int, at, "
    "timestamptz 'epoch' + at * interval '1 millisecond' FROM unnest($7::bigint[], $8::text[]) "
    "AS r(at, ev)";

static const char upsert_sql[] =
    "INSERT INTO bench_opportunity (id, account_id, owner_rep_id, business_unit_id, "
    "definition_id, stage_code, amount_minor, win_probability_bp, expected_close_date, "
    "sales_mode, stage_entered_at, version, last_event_at, last_event_id) "
    "SELECT id, acct, owner, 'bu-industrial', 'default-8', stage, amount, prob, "
    "DATE '2026-12-31', 'direct', to_timestamp(at / 1000.0), 1, to_timestamp(at / 1000.0), ev "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::int[], "
    "$7::bigint[], $8::text[]) AS r(id, acct, owner, stage, amount, prob, at, ev) "
    "ON CONFLICT (id) DO UPDATE SET stage_code = excluded.stage_code, "
    "amount_minor = excluded.amount_minor, win_probability_bp = excluded.win_probability_bp, "
    "stage_entered_at = excluded.stage_entered_at, version = bench_opportunity.version + 1, "
    "last_event_at = excluded.last_event_at, last_event_id = excluded.last_event_id, "
    "updated_at = now()";

typedef struct arrays {
    char *v[8];
    size_t len[8], cap[8];
} arrays_t;

/* Appends to an array literal "{a,b,...": the element, or the closing
 * brace when s is NULL. Elements here need no quoting. */
static void arr_add(arrays_t *a, int col, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (a->len[col] + n + 3 > a->cap[col]) {
        a->cap[col] = (a->len[col] + n + 3) * 2;
        a->v[col] = realloc(a->v[col], a->cap[col]);
        if (!a->v[col])
            abort();
    }
    char sep = a->len[col] == 0 ? '{' : ',';
    if (!s) {
        if (sep == '{')
            a->v[col][a->len[col]++] = '{';
        sep = '}';
    }
    a->v[col][a->len[col]++] = sep;
    memcpy(a->v[col] + a->len[col], s ? s : "", n);
    a->len[col] += n;
    a->v[col][a->len[col]] = '\0';
}

/* Fills the arrays with rows [first, first + n) of the key space. */
static void fill(arrays_t *a, int64_t first, int n, int64_t keys, int64_t seq)
{
    char buf[64];
    for (int c = 0; c < 8; c++)
        a->len[c] = 0;
    for (int i = 0; i < n; i++) {
        int64_t k = (first + i) % keys;
        snprintf(buf, sizeof buf, "bench-opp-%08lld", (long long)k);
        arr_add(a, 0, buf);
        snprintf(buf, sizeof buf, "acct-%06lld", (long long)(k % 100000));
        arr_add(a, 1, buf);
        snprintf(buf, sizeof buf, "rep-%04lld", (long long)(k % 2333));
        arr_add(a, 2, buf);
        snprintf(buf, sizeof buf, "%02d", 1 + (int)((k + seq) % 7));
        arr_add(a, 3, buf);
        snprintf(buf, sizeof buf, "%lld", (long long)(100000 + (k * 7919 + seq) % 50000000));
        arr_add(a, 4, buf);
        snprintf(buf, sizeof buf, "%d", (int)((k + seq) % 7) * 1500);
        arr_add(a, 5, buf);
        snprintf(buf, sizeof buf, "%lld", (long long)(1767225600000LL + (seq * BATCH + i) * 1000));
        arr_add(a, 6, buf);
        snprintf(buf, sizeof buf, "bench-ev-%lld-%d", (long long)seq, i);
        arr_add(a, 7, buf);
    }
    for (int c = 0; c < 8; c++)
        arr_add(a, c, NULL);
}

static int exec_ok(PGconn *pg, PGresult *res, const char *what)
{
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "ka-bench pgload: %s: %s", what, PQerrorMessage(pg));
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

/* Runs statement `stmt` over `rows` rows, `per` per statement (autocommit:
 * one transaction each), keys cycling over `keys`. Returns the seconds taken,
 * -1 on error. */
static double run(PGconn *pg, const char *stmt, arrays_t *a, int64_t rows, int per, int64_t keys,
                  int64_t seq0)
{
    int64_t t0 = bench_mono_ms();
    for (int64_t done = 0, seq = seq0; done < rows; done += per, seq++) {
        int n = rows - done < per ? (int)(rows - done) : per;
        fill(a, done, n, keys, seq);
        const char *const vals[8] = {a->v[0], a->v[1], a->v[2], a->v[3],
                                     a->v[4], a->v[5], a->v[6], a->v[7]};
        if (exec_ok(pg, PQexecPrepared(pg, stmt, 8, vals, NULL, NULL, 0), stmt))
            return -1;
    }
    double s = (double)(bench_mono_ms() - t0) / 1000.0;
    return s > 0 ? s : 0.001;
}

/* Binary COPY's wire format (PostgreSQL docs, "COPY", Binary Format). */
typedef struct copybuf {
    char *p;
    size_t len, cap;
} copybuf_t;

static void cb_put(copybuf_t *b, const void *v, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->len, v, n);
    b->len += n;
}

static void cb_i16(copybuf_t *b, int16_t v)
{
    uint16_t n = htons((uint16_t)v);
    cb_put(b, &n, 2);
}

static void cb_i32(copybuf_t *b, int32_t v)
{
    uint32_t n = htonl((uint32_t)v);
    cb_put(b, &n, 4);
}

static void cb_i64(copybuf_t *b, int64_t v)
{
    cb_i32(b, (int32_t)((uint64_t)v >> 32));
    cb_i32(b, (int32_t)(uint32_t)v);
}

static void cb_text(copybuf_t *b, const char *s)
{
    cb_i32(b, (int32_t)strlen(s));
    cb_put(b, s, strlen(s));
}

/* The narrow rows [0, rows) by binary COPY, `BATCH` per transaction, the
 * same values as the narrow insert. Returns the seconds taken, -1 on error. */
static double run_copy(PGconn *pg, int64_t rows)
{
    /* microseconds from the Unix epoch to PostgreSQL's, 2000-01-01 */
    const int64_t pg_epoch_us = 946684800LL * 1000000;
    copybuf_t b = {NULL, 0, 0};
    char ev[64];
    int64_t t0 = bench_mono_ms();
    for (int64_t done = 0, seq = 0; done < rows; done += BATCH, seq++) {
        b.len = 0;
        cb_put(&b, "PGCOPY\n\377\r\n", 11);
        cb_i32(&b, 0); /* flags */
        cb_i32(&b, 0); /* header extension */
        for (int i = 0; i < BATCH && done + i < rows; i++) {
            int64_t at = 1767225600000LL + (seq * BATCH + i) * 1000;
            snprintf(ev, sizeof ev, "bench-ev-%lld-%d", (long long)seq, i);
            cb_i16(&b, 6);
            cb_text(&b, "bench");
            cb_text(&b, ev);
            cb_text(&b, "bench.topic");
            cb_i32(&b, 4);
            cb_i32(&b, (int32_t)(at % 6));
            cb_i32(&b, 8);
            cb_i64(&b, at);
            cb_i32(&b, 8);
            cb_i64(&b, at * 1000 - pg_epoch_us);
        }
        cb_i16(&b, -1);
        if (exec_ok(pg, PQexec(pg, "BEGIN"), "begin"))
            goto fail;
        PGresult *res = PQexec(pg, copy_sql);
        if (PQresultStatus(res) != PGRES_COPY_IN) {
            exec_ok(pg, res, "copy");
            goto fail;
        }
        PQclear(res);
        if (PQputCopyData(pg, b.p, (int)b.len) != 1 || PQputCopyEnd(pg, NULL) != 1) {
            fprintf(stderr, "ka-bench pgload: copy: %s", PQerrorMessage(pg));
            goto fail;
        }
        res = PQgetResult(pg);
        PQclear(PQgetResult(pg)); /* the NULL that ends the COPY's results */
        if (exec_ok(pg, res, "copy") || exec_ok(pg, PQexec(pg, "COMMIT"), "commit"))
            goto fail;
    }
    free(b.p);
    double s = (double)(bench_mono_ms() - t0) / 1000.0;
    return s > 0 ? s : 0.001;
fail:
    free(b.p);
    return -1;
}

int bench_pgload(int argc, char **argv)
{
    arrays_t a;
    char *end;
    long long rows = argc == 1 ? strtoll(argv[0], &end, 10) : 0;
    int rc = 1;
    if (argc != 1 || *end || rows < 2 * BATCH || rows % (2 * BATCH)) {
        fprintf(stderr, "ka-bench pgload: expects ROWS, a multiple of %d\n", 2 * BATCH);
        return 2;
    }
    memset(&a, 0, sizeof a);
    PGconn *pg = PQconnectdb(bench_dsn());
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "ka-bench pgload: could not connect: %s", PQerrorMessage(pg));
        goto out;
    }
    /* text[] x4, bigint[], int[], bigint[], text[]: the narrow insert uses only
     * the last two, so the types are given rather than inferred */
    const Oid types[8] = {1009, 1009, 1009, 1009, 1016, 1007, 1016, 1009};
    if (exec_ok(pg, PQexec(pg, create_sql), "create the scratch table") ||
        exec_ok(pg, PQexec(pg, narrow_sql), "create the scratch table") ||
        exec_ok(pg, PQprepare(pg, "upsert", upsert_sql, 8, types), "prepare") ||
        exec_ok(pg, PQprepare(pg, "insert", insert_sql, 8, types), "prepare"))
        goto out;
    /* half the rows are new, the second half update them */
    double batched = run(pg, "upsert", &a, rows, BATCH, rows / 2, 0);
    if (batched < 0)
        goto out;
    double narrow = run(pg, "insert", &a, rows, BATCH, rows, 0);
    if (narrow < 0)
        goto out;
    double copy = run_copy(pg, rows);
    if (copy < 0)
        goto out;
    /* one row per transaction: a twentieth as many, at most 2,000 (at a few
     * hundred a second that is enough), on fresh keys then the same */
    long long single_rows = rows / 20 < 2000 ? rows / 20 : 2000;
    if (exec_ok(pg, PQexec(pg, "TRUNCATE bench_opportunity"), "truncate"))
        goto out;
    double single = run(pg, "upsert", &a, single_rows, 1, single_rows / 2, 1000000);
    if (single < 0)
        goto out;
    printf("{\"rows\":%lld,\"batch\":%d,\"seconds\":%.3f,\"rows_per_s\":%.1f,"
           "\"narrow_seconds\":%.3f,\"narrow_rows_per_s\":%.1f,"
           "\"copy_seconds\":%.3f,\"copy_rows_per_s\":%.1f,"
           "\"single_rows\":%lld,\"single_seconds\":%.3f,\"single_rows_per_s\":%.1f}\n",
           rows, BATCH, batched, (double)rows / batched, narrow, (double)rows / narrow, copy,
           (double)rows / copy,
           single_rows, single, (double)single_rows / single);
    rc = 0;
out:
    if (PQstatus(pg) == CONNECTION_OK)
        PQclear(PQexec(pg, "DROP TABLE IF EXISTS bench_opportunity, bench_processed, bench_processed_copy"));
    PQfinish(pg);
    for (int c = 0; c < 8; c++)
        free(a.v[c]);
    return rc;
}
