#ifndef OPP_INTERNAL_H
#define OPP_INTERNAL_H

/* What the opportunity worker's files share (opp_worker.h is the API). The
 * batch, opp_apply in opp_worker.c, reads (opp_reads.c), applies each event
 * in memory (opp_apply.c), queues the writes (opp_writes.c), then decides
 * funnel health (opp_health_alerts.c); opp_state.c frees the batch's state
 * and opp_sql.c holds the statements. */

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "ka/v1/opportunity.pb-c.h"
#include "ka_accounts.h"
#include "ka_buf.h"
#include "opp_health.h"
#include "opp_worker.h"

/* Reference data ------------------------------------------------------------ */

typedef struct stage {
    char def[KA_MAX_ID_LEN + 1];
    char code[17];
    int prob_bp;
    int is_won, is_lost;
} stage_t;

typedef struct bu {
    char id[KA_MAX_ID_LEN + 1];
    char def[KA_MAX_ID_LEN + 1];
} bu_t;

/* In-memory state of one opportunity during a batch ----------------------- */

typedef struct line {
    char *sku, *requirement;
    int64_t qty_milli, price;
} line_t;

typedef struct opp {
    char id[KA_MAX_ID_LEN + 1];
    int exists;  /* in the database or created earlier in this batch */
    int stored;  /* its row was in the database before this batch */
    int touched; /* must be written back */
    char account_id[KA_MAX_ID_LEN + 1];
    char owner[KA_MAX_ID_LEN + 1];
    char bu[KA_MAX_ID_LEN + 1];
    char def[KA_MAX_ID_LEN + 1];
    char stage[17];
    int64_t amount;
    int prob_bp;
    char status[8];
    char *lost_reason;
    int64_t closed_ms; /* 0: open */
    int64_t stage_entered_ms;
    char close_date[11];
    char sales_mode[16], relationship[16], impact[16];
    char *competitors; /* a PostgreSQL array literal */
    int assess[4];     /* -1: not assessed */
    int64_t assessed_ms;
    int64_t version, last_event_ms;
    char last_event_id[KA_MAX_ID_LEN + 1];
    int64_t unauthorized_since; /* a firing unauthorized-owner-change alert; 0: none */
    int lines_replaced;
    line_t *lines;
    size_t nlines;
} opp_t;

typedef struct delta {
    char rep[KA_MAX_ID_LEN + 1], def[KA_MAX_ID_LEN + 1], stage[17];
    int64_t count, amount, weighted;
} delta_t;

typedef struct funnel_row {
    char *node, *def, *stage, *count, *amount, *weighted;
} funnel_row_t;

typedef struct health_in {
    char *node, *def, *stage, *metric;
    int64_t baseline; /* -1: none */
    opp_health_t previous;
    int64_t since_ms;
    int stored;               /* a funnel_health row exists */
    int64_t stored_baseline;  /* its baseline_value; -1: none */
} health_in_t;

typedef struct manager_pair {
    char *rep, *manager;
} manager_pair_t;

struct opp_ctx {
    const ka_config_t *cfg;
    stage_t *stages;
    size_t nstages;
    bu_t *bus;
    size_t nbus;
    char default_def[KA_MAX_ID_LEN + 1];
    int64_t reference_loaded_ms; /* monotonic; 0 forces a reload */

    /* per batch */
    opp_t *opps;
    size_t nopps;
    delta_t *deltas;
    size_t ndeltas, capdeltas;
    manager_pair_t *managers;
    size_t nmanagers;
    ka_accounts_t accounts; /* the accounts new opportunities name */
    /* booked orders naming opportunities this batch creates: order came first */
    char **booked_opps, **booked_orders;
    int64_t *booked_ms;
    size_t nbooked;

    health_in_t *health;
    size_t nhealth;
    int warning_bp, hysteresis_bp;
    int64_t scan_interval_ms, next_scan_ms, next_reorg_ms;
    int no_visit_days;
    int64_t batch_at_ms;       /* latest applied event time: alert times derive from it */
    const char *causes[10];    /* a sample of the batch's applied event ids */
    size_t ncauses;

    /* after commit: absolute funnel values to cache */
    funnel_row_t *funnel;
    size_t nfunnel;
};

/* Appends one row to the opportunity_event arrays. */
typedef struct event_rows {
    ka_buf_t opp, id, kind, at, applied, reason, topic, part, off;
} event_rows_t;

typedef struct stage_rows {
    ka_buf_t opp, def, from, to, id, at, dwell;
} stage_rows_t;

typedef struct confirm_rows {
    ka_buf_t opp, kind, start, owner, category, id, at;
} confirm_rows_t;

static inline int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void copy(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

/* opp_state.c */
opp_t *opp_find(opp_ctx_t *ctx, const char *id);
void opp_free_lines(opp_t *o);
void opp_reset_batch(opp_ctx_t *ctx);
void opp_reset_funnel(opp_ctx_t *ctx);

/* opp_reads.c: the pipeline that reads what the batch's events need. */
ka_err_t opp_queue_reads(opp_ctx_t *ctx, ka_tx_t *tx, ka_event_t *const *events, size_t n,
                         char *errstr, size_t errlen);
int opp_read_funnel(void *ud, const ka_pgres_t *res);
int opp_read_health_inputs(void *ud, const ka_pgres_t *res);

/* opp_apply.c */
const char *opp_apply_one(opp_ctx_t *ctx, ka_tx_t *tx, ka_event_t *ev, stage_rows_t *stages,
                          confirm_rows_t *confirms, ka_err_t *rc, char *errstr, size_t errlen);
void opp_record_event(event_rows_t *r, const ka_event_t *ev, const Ka__V1__OpportunityEvent *e,
                      const char *not_applied);

/* opp_writes.c: the batch's writes, queued in its transaction. */
ka_err_t opp_queue_writes(opp_ctx_t *ctx, ka_tx_t *tx, event_rows_t *er, stage_rows_t *sr,
                          confirm_rows_t *cr, int nconfirm, char *errstr, size_t errlen);

/* opp_health_alerts.c */
ka_err_t opp_evaluate_health(opp_ctx_t *ctx, ka_tx_t *tx, char *errstr, size_t errlen);

/* opp_sql.c */
ka_err_t opp_statements_prepare(ka_pg_t *pg, char *errstr, size_t errlen);

#endif
