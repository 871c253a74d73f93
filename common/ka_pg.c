#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ka_fault.h"
#include "ka_metrics.h"
#include "ka_pg.h"

typedef struct prepared {
    char *name;
    char *sql;
} prepared_t;

typedef struct pending {
    ka_pg_rows_fn cb;
    void *ud;
} pending_t;

struct ka_pg {
    PGconn *conn;
    char *dsn;
    prepared_t *prepared;
    size_t nprepared;
    pending_t *pending; /* callbacks of the queued pipeline statements */
    size_t npending, cappending;
    int in_pipeline;
    int reading; /* inside ka_pg_pipe_run: results are being read */
    int commit_queued; /* the pipeline ends a transaction (a crash point) */
    char sqlstate[6];
};

#define MAX_PARAMS 64

/* Round trips, into the process's registry: a statement (or a pipeline, from
 * its sync to its last result) sent and answered. */
static ka_series_t *rtt;
static pthread_once_t rtt_once = PTHREAD_ONCE_INIT;

static void rtt_init(void)
{
    rtt = ka_metrics_series(
        ka_metrics_histogram(ka_metrics_global(), "ka_pg_round_trip_seconds",
                             "PostgreSQL round trips: a statement, or a pipeline from its sync "
                             "to its last result (includes the server's work)",
                             NULL, KA_METRICS_RTT_BUCKETS, KA_METRICS_RTT_NBUCKETS),
        NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void set_err(char *errstr, size_t errlen, const char *what, const char *detail)
{
    if (!errstr || !errlen)
        return;
    size_t dl = detail ? strlen(detail) : 0;
    /* libpq messages end with a newline; a log line should not. */
    while (dl && (detail[dl - 1] == '\n' || detail[dl - 1] == ' '))
        dl--;
    snprintf(errstr, errlen, "%s: %.*s", what, (int)dl, detail ? detail : "");
}

/* Decides retry / fenced / fail from a failed result, once, for every caller. */
static ka_err_t classify(ka_pg_t *pg, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *constraint = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;

    snprintf(pg->sqlstate, sizeof pg->sqlstate, "%s", state ? state : "");
    if (PQstatus(pg->conn) == CONNECTION_BAD)
        return KA_ERR_RETRY;
    if (!state)
        return KA_ERR;
    if (strcmp(state, "KA001") == 0)
        return KA_ERR_FENCED;
    if (strcmp(state, "23505") == 0 && constraint && strcmp(constraint, "consumer_offset_pkey") == 0)
        return KA_ERR_FENCED;
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
        strncmp(state, "53", 2) == 0 || strcmp(state, "40001") == 0 ||
        strcmp(state, "40P01") == 0)
        return KA_ERR_RETRY;
    return KA_ERR;
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* A live process never idles inside a transaction: it sends each one whole
 * (pipelined). One paused or frozen in the middle of a transaction would
 * keep its locks (the forecast's recompute lock, rows of the funnel) from
 * every other instance until it resumed; PostgreSQL ends such a session. */
static _Atomic int idle_in_tx_ms;

void ka_pg_set_idle_in_transaction_timeout(int ms)
{
    idle_in_tx_ms = ms;
}

static PGconn *open_conn(const char *dsn, char *errstr, size_t errlen)
{
    PGconn *conn = PQconnectdb(dsn);
    if (PQstatus(conn) != CONNECTION_OK) {
        set_err(errstr, errlen, "could not connect to PostgreSQL", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    /* Notices (e.g. "no transaction in progress") are not for our logs. */
    PQsetNoticeProcessor(conn, ignore_notice, NULL);
    int ms = idle_in_tx_ms;
    if (ms > 0) {
        char value[24];
        const char *p[] = {value};
        snprintf(value, sizeof value, "%d", ms);
        PGresult *res = PQexecParams(conn,
                                     "SELECT set_config('idle_in_transaction_session_timeout', "
                                     "$1, false)",
                                     1, NULL, p, NULL, NULL, 0);
        int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
        if (!ok)
            set_err(errstr, errlen, "could not set idle_in_transaction_session_timeout",
                    PQresultErrorMessage(res));
        PQclear(res);
        if (!ok) {
            PQfinish(conn);
            return NULL;
        }
    }
    return conn;
}

ka_pg_t *ka_pg_connect(const char *dsn, char *errstr, size_t errlen)
{
    pthread_once(&rtt_once, rtt_init);
    PGconn *conn = open_conn(dsn, errstr, errlen);
    if (!conn)
        return NULL;
    ka_pg_t *pg = ka_calloc(1, sizeof *pg);
    pg->conn = conn;
    pg->dsn = ka_strdup(dsn);
    return pg;
}

ka_pg_t *ka_pg_connect_retry(const char *dsn, int max_backoff_ms, int (*should_stop)(void),
                             void (*on_retry)(const char *err, int next_ms))
{
    char err[KA_ERRSTR_SIZE];
    int wait = 100;
    for (;;) {
        ka_pg_t *pg = ka_pg_connect(dsn, err, sizeof err);
        if (pg)
            return pg;
        if (should_stop && should_stop())
            return NULL;
        if (on_retry)
            on_retry(err, wait);
        sleep_ms(wait);
        wait = wait * 2 > max_backoff_ms ? max_backoff_ms : wait * 2;
    }
}

void ka_pg_free(ka_pg_t *pg)
{
    if (!pg)
        return;
    PQfinish(pg->conn);
    for (size_t i = 0; i < pg->nprepared; i++) {
        free(pg->prepared[i].name);
        free(pg->prepared[i].sql);
    }
    free(pg->prepared);
    free(pg->pending);
    free(pg->dsn);
    free(pg);
}

int ka_pg_ok(const ka_pg_t *pg)
{
    return pg && pg->conn && PQstatus(pg->conn) == CONNECTION_OK;
}

static ka_err_t prepare_on_server(ka_pg_t *pg, const prepared_t *p, char *errstr, size_t errlen)
{
    PGresult *res = PQprepare(pg->conn, p->name, p->sql, 0, NULL);
    ka_err_t rc = KA_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        char what[160];
        snprintf(what, sizeof what, "could not prepare statement \"%s\"", p->name);
        set_err(errstr, errlen, what, PQresultErrorMessage(res));
        rc = classify(pg, res);
    }
    PQclear(res);
    return rc;
}

ka_err_t ka_pg_reconnect(ka_pg_t *pg, int max_backoff_ms, int (*should_stop)(void),
                         void (*on_retry)(const char *err, int next_ms))
{
    char err[KA_ERRSTR_SIZE];
    int wait = 100;
    for (;;) {
        PQfinish(pg->conn);
        pg->conn = NULL;
        pg->in_pipeline = 0;
        pg->npending = 0;
        PGconn *conn = open_conn(pg->dsn, err, sizeof err);
        if (conn) {
            pg->conn = conn;
            ka_err_t rc = KA_OK;
            for (size_t i = 0; i < pg->nprepared && rc == KA_OK; i++)
                rc = prepare_on_server(pg, &pg->prepared[i], err, sizeof err);
            if (rc == KA_OK)
                return KA_OK;
        }
        if (should_stop && should_stop())
            return KA_ERR_RETRY;
        if (on_retry)
            on_retry(err, wait);
        sleep_ms(wait);
        wait = wait * 2 > max_backoff_ms ? max_backoff_ms : wait * 2;
    }
}

static const prepared_t *find_prepared(const ka_pg_t *pg, const char *name)
{
    for (size_t i = 0; i < pg->nprepared; i++)
        if (strcmp(pg->prepared[i].name, name) == 0)
            return &pg->prepared[i];
    return NULL;
}

ka_err_t ka_pg_prepare(ka_pg_t *pg, const char *name, const char *sql, char *errstr,
                       size_t errlen)
{
    prepared_t p = {ka_strdup(name), ka_strdup(sql)};
    ka_err_t rc = prepare_on_server(pg, &p, errstr, errlen);
    if (rc != KA_OK) {
        free(p.name);
        free(p.sql);
        return rc;
    }
    pg->prepared = ka_realloc(pg->prepared, (pg->nprepared + 1) * sizeof *pg->prepared);
    pg->prepared[pg->nprepared++] = p;
    return KA_OK;
}

ka_err_t ka_pg_exec(ka_pg_t *pg, const char *sql, char *errstr, size_t errlen)
{
    double t0 = now_s();
    PGresult *res = PQexec(pg->conn, sql);
    if (PQstatus(pg->conn) == CONNECTION_OK) /* a round trip, not a dead connection */
        ka_metrics_observe(rtt, now_s() - t0);
    ExecStatusType st = PQresultStatus(res);
    ka_err_t rc = KA_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        set_err(errstr, errlen, "could not execute SQL", PQresultErrorMessage(res));
        rc = classify(pg, res);
    }
    PQclear(res);
    return rc;
}

static void split_params(int nparams, const ka_pg_param_t *params, const char **values,
                         int *lengths, int *formats)
{
    for (int i = 0; i < nparams; i++) {
        values[i] = params[i].value;
        lengths[i] = params[i].len;
        formats[i] = params[i].binary ? 1 : 0;
    }
}

static int send_statement(ka_pg_t *pg, const char *stmt, int nparams, const ka_pg_param_t *params)
{
    const char *values[MAX_PARAMS];
    int lengths[MAX_PARAMS], formats[MAX_PARAMS];
    split_params(nparams, params, values, lengths, formats);
    if (find_prepared(pg, stmt))
        return PQsendQueryPrepared(pg->conn, stmt, nparams, values, lengths, formats, 0);
    return PQsendQueryParams(pg->conn, stmt, nparams, NULL, values, lengths, formats, 0);
}

ka_err_t ka_pg_query(ka_pg_t *pg, const char *stmt, int nparams, const ka_pg_param_t *params,
                     ka_pg_rows_fn cb, void *ud, char *errstr, size_t errlen)
{
    const char *values[MAX_PARAMS];
    int lengths[MAX_PARAMS], formats[MAX_PARAMS];
    PGresult *res;
    ka_err_t rc = KA_OK;

    if (nparams > MAX_PARAMS) {
        snprintf(errstr, errlen, "too many parameters (%d > %d)", nparams, MAX_PARAMS);
        return KA_ERR;
    }
    split_params(nparams, params, values, lengths, formats);
    double t0 = now_s();
    if (find_prepared(pg, stmt))
        res = PQexecPrepared(pg->conn, stmt, nparams, values, lengths, formats, 0);
    else
        res = PQexecParams(pg->conn, stmt, nparams, NULL, values, lengths, formats, 0);
    if (PQstatus(pg->conn) == CONNECTION_OK) /* a round trip, not a dead connection */
        ka_metrics_observe(rtt, now_s() - t0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        if (cb && cb(ud, (const ka_pgres_t *)res)) {
            snprintf(errstr, errlen, "result of \"%.60s\" rejected by its reader", stmt);
            rc = KA_ERR;
        }
    } else {
        set_err(errstr, errlen, "query failed", PQresultErrorMessage(res));
        rc = classify(pg, res);
    }
    PQclear(res);
    return rc;
}

ka_err_t ka_pg_pipe_begin(ka_pg_t *pg, char *errstr, size_t errlen)
{
    if (!PQenterPipelineMode(pg->conn)) {
        set_err(errstr, errlen, "could not enter pipeline mode", PQerrorMessage(pg->conn));
        return PQstatus(pg->conn) == CONNECTION_BAD ? KA_ERR_RETRY : KA_ERR;
    }
    pg->in_pipeline = 1;
    pg->npending = 0;
    pg->commit_queued = 0;
    return KA_OK;
}

ka_err_t ka_pg_pipe_push(ka_pg_t *pg, const char *stmt, int nparams, const ka_pg_param_t *params,
                         ka_pg_rows_fn cb, void *ud, char *errstr, size_t errlen)
{
    if (nparams > MAX_PARAMS) {
        snprintf(errstr, errlen, "too many parameters (%d > %d)", nparams, MAX_PARAMS);
        return KA_ERR;
    }
    if (pg->reading) {
        /* Its result would come after the sync being read: the read would wait forever. */
        snprintf(errstr, errlen, "cannot queue \"%.60s\" from inside a result callback", stmt);
        return KA_ERR;
    }
    if (!send_statement(pg, stmt, nparams, params)) {
        set_err(errstr, errlen, "could not queue statement", PQerrorMessage(pg->conn));
        return PQstatus(pg->conn) == CONNECTION_BAD ? KA_ERR_RETRY : KA_ERR;
    }
    if (pg->npending == pg->cappending) {
        pg->cappending = pg->cappending ? pg->cappending * 2 : 16;
        pg->pending = ka_realloc(pg->pending, pg->cappending * sizeof *pg->pending);
    }
    pg->pending[pg->npending++] = (pending_t){cb, ud};
    if (strcmp(stmt, "COMMIT") == 0)
        pg->commit_queued = 1;
    return KA_OK;
}

/* Reads the results of one queued statement up to its terminating NULL. */
static void read_statement(ka_pg_t *pg, const pending_t *p, ka_err_t *rc, char *errstr,
                           size_t errlen)
{
    PGresult *res;
    while ((res = PQgetResult(pg->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
            if (*rc == KA_OK && p->cb && p->cb(p->ud, (const ka_pgres_t *)res)) {
                snprintf(errstr, errlen, "a pipelined result was rejected by its reader");
                *rc = KA_ERR;
            }
        } else if (st != PGRES_PIPELINE_ABORTED && *rc == KA_OK) {
            set_err(errstr, errlen, "pipelined statement failed", PQresultErrorMessage(res));
            *rc = classify(pg, res);
        }
        PQclear(res);
        if (PQstatus(pg->conn) == CONNECTION_BAD)
            return;
    }
}

ka_err_t ka_pg_pipe_run(ka_pg_t *pg, char *errstr, size_t errlen)
{
    ka_err_t rc = KA_OK;
    double t0 = now_s();

    if (!PQpipelineSync(pg->conn)) {
        set_err(errstr, errlen, "could not send pipeline", PQerrorMessage(pg->conn));
        rc = PQstatus(pg->conn) == CONNECTION_BAD ? KA_ERR_RETRY : KA_ERR;
    } else if (pg->commit_queued) {
        ka_fault_point("commit_sent"); /* sent and flushed: the server may commit */
    }
    pg->commit_queued = 0;
    pg->reading = 1;
    for (size_t i = 0; rc != KA_ERR_RETRY && i < pg->npending; i++) {
        read_statement(pg, &pg->pending[i], &rc, errstr, errlen);
        if (PQstatus(pg->conn) == CONNECTION_BAD) {
            if (rc == KA_OK)
                set_err(errstr, errlen, "connection lost", PQerrorMessage(pg->conn));
            rc = KA_ERR_RETRY;
        }
    }
    pg->reading = 0;
    if (rc != KA_ERR_RETRY) {
        PGresult *res = PQgetResult(pg->conn); /* the sync marker */
        PQclear(res);
        PQexitPipelineMode(pg->conn);
        ka_metrics_observe(rtt, now_s() - t0);
    }
    pg->in_pipeline = 0;
    pg->npending = 0;
    if (rc != KA_OK)
        ka_pg_rollback(pg);
    return rc;
}

void ka_pg_rollback(ka_pg_t *pg)
{
    if (!pg || !pg->conn || PQstatus(pg->conn) != CONNECTION_OK)
        return;
    PGTransactionStatusType ts = PQtransactionStatus(pg->conn);
    if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
        PQclear(PQexec(pg->conn, "ROLLBACK"));
}

const char *ka_pg_sqlstate(const ka_pg_t *pg)
{
    return pg->sqlstate;
}

int ka_pgres_rows(const ka_pgres_t *res)
{
    return PQntuples((const PGresult *)res);
}

int ka_pgres_cols(const ka_pgres_t *res)
{
    return PQnfields((const PGresult *)res);
}

const char *ka_pgres_value(const ka_pgres_t *res, int row, int col)
{
    if (PQgetisnull((const PGresult *)res, row, col))
        return NULL;
    return PQgetvalue((const PGresult *)res, row, col);
}

int ka_pgres_length(const ka_pgres_t *res, int row, int col)
{
    return PQgetlength((const PGresult *)res, row, col);
}

long long ka_pgres_int(const ka_pgres_t *res, int row, int col, long long def)
{
    const char *v = ka_pgres_value(res, row, col);
    if (!v || !*v)
        return def;
    char *end;
    long long n = strtoll(v, &end, 10);
    return *end ? def : n;
}

ka_err_t ka_pg_prepare_all(ka_pg_t *pg, const char *statements[][2], size_t n, char *errstr,
                           size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        ka_err_t rc = ka_pg_prepare(pg, statements[i][0], statements[i][1], errstr, errlen);
        if (rc != KA_OK)
            return rc;
    }
    return KA_OK;
}
