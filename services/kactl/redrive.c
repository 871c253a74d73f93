/* kactl redrive: produce dead letters again to their source topic after a
 * fix, and mark them re-driven once Kafka confirmed delivery. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka_buf.h"
#include "ka_kafka.h"
#include "ka_pg.h"
#include "kactl.h"

#define FLUSH_TIMEOUT_MS 30000

static void usage(FILE *out)
{
    fprintf(out,
        "usage: kactl redrive ID... [--again]\n"
        "       kactl redrive --reason R [--group G]\n\n"
        "Re-drives dead letters after the fix that makes them valid: each selected row of\n"
        "dead_letter (see `kactl deadletters`) is produced again, byte for byte, to its source\n"
        "topic, with a header ka_redriven_from=dead_letter:<id>. The key is the original\n"
        "message's key, taken from the dead letter's outbox row (event id\n"
        "dlq:<group>:<topic>:<partition>:<offset>); if that row is gone the message is sent\n"
        "with no key (the partitioner then picks the partition, so per-key ordering with\n"
        "later events of the same key is not kept) and the output says \"no key\".\n"
        "A row is marked redriven_at only after Kafka confirmed its delivery; a row Kafka\n"
        "did not confirm stays pending and the command exits 1.\n\n"
        "  ID...        dead letter ids; pending ones only unless --again\n"
        "  --reason R   every pending dead letter with reason R (e.g. unknown_stage)\n"
        "  --group G    with --reason: only consumer group G\n"
        "  --again      with ids: re-drive rows already re-driven\n\n"
        "Duplicates: the worker keys idempotency on the event id (processed_event). A\n"
        "dead-lettered event's id is NOT kept there: an event rejected while decoding or\n"
        "validating is never recorded, and one rejected while being applied (e.g.\n"
        "unknown_stage, apply_failed) has its id deleted in the same transaction that writes\n"
        "the dead letter. So the re-driven bytes, same event id, are applied if they are\n"
        "valid now. They are dropped as a duplicate only if an event with the same id was\n"
        "applied since (e.g. the producer re-sent a corrected event under the same id), which\n"
        "is what you want; a corrected event sent under a new id needs no re-drive.\n"
        "If the fix was reference data (kactl load), load it first; if the bytes are bad,\n"
        "re-driving only dead-letters them again (under a new offset).\n");
}

typedef struct row {
    long long id;
    char *topic;
    unsigned char *key, *payload;
    size_t key_len, len;
    int has_key;
    int status; /* 0 waiting, 1 delivered, -1 failed */
    char err[KA_ERRSTR_SIZE];
} row_t;

typedef struct rows {
    row_t *r;
    int n;
} rows_t;

static int hexval(int c)
{
    return c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0';
}

static unsigned char *unhex(const char *hex, size_t *len)
{
    size_t n = hex ? strlen(hex) / 2 : 0;
    unsigned char *out = malloc(n + 1);
    if (!out)
        abort();
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    *len = n;
    return out;
}

static int read_rows(void *ud, const ka_pgres_t *res)
{
    rows_t *rows = ud;
    rows->n = ka_pgres_rows(res);
    rows->r = calloc((size_t)rows->n + 1, sizeof *rows->r);
    if (!rows->r)
        abort();
    for (int i = 0; i < rows->n; i++) {
        row_t *r = &rows->r[i];
        r->id = ka_pgres_int(res, i, 0, 0);
        r->topic = strdup(ka_pgres_value(res, i, 1));
        if (!r->topic)
            abort();
        r->has_key = ka_pgres_value(res, i, 2) != NULL;
        r->key = unhex(ka_pgres_value(res, i, 2), &r->key_len);
        r->payload = unhex(ka_pgres_value(res, i, 3), &r->len);
    }
    return 0;
}

static void on_delivery(void *ud, void *msg_opaque, ka_err_t status, int possibly_persisted,
                        const char *err)
{
    row_t *r = msg_opaque;
    (void)ud;
    (void)possibly_persisted;
    r->status = status == KA_OK ? 1 : -1;
    if (status != KA_OK)
        snprintf(r->err, sizeof r->err, "%s", err ? err : "not delivered");
}

static void free_rows(rows_t *rows)
{
    for (int i = 0; i < rows->n; i++) {
        free(rows->r[i].topic);
        free(rows->r[i].key);
        free(rows->r[i].payload);
    }
    free(rows->r);
}

int kactl_redrive(const ka_config_t *cfg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE];
    const char *group = NULL, *reason = NULL;
    int again = 0, nids = 0, rc = 1;
    ka_buf_t ids = KA_BUF_INIT, done = KA_BUF_INIT;
    ka_pg_t *pg = NULL;
    ka_producer_t *kp = NULL;
    rows_t rows = {NULL, 0};

    ka_buf_array_begin(&ids);
    for (int i = 1; i < argc; i++) {
        long long id = 0;
        char extra;
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            rc = 0;
            goto out;
        } else if (strcmp(argv[i], "--again") == 0) {
            again = 1;
        } else if (strcmp(argv[i], "--group") == 0 && i + 1 < argc && argv[i + 1][0]) {
            group = argv[++i];
        } else if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc && argv[i + 1][0]) {
            reason = argv[++i];
        } else if (argv[i][0] != '-' && sscanf(argv[i], "%lld%c", &id, &extra) == 1 && id > 0) {
            ka_buf_array_add_int(&ids, id);
            nids++;
        } else {
            fprintf(stderr,
                    "kactl redrive: unexpected argument \"%s\": give dead letter ids (positive "
                    "numbers, see kactl deadletters) or --reason R [--group G]\n",
                    argv[i]);
            rc = 2;
            goto out;
        }
    }
    ka_buf_array_end(&ids);
    if ((nids > 0) == (reason != NULL)) {
        fprintf(stderr, "kactl redrive: give either dead letter ids or --reason R, %s (see "
                        "kactl redrive --help)\n", nids ? "not both" : "one of them");
        rc = 2;
        goto out;
    }
    if (group && !reason) {
        fprintf(stderr, "kactl redrive: --group goes with --reason (ids already name the rows)\n");
        rc = 2;
        goto out;
    }
    if (again && !nids) {
        fprintf(stderr, "kactl redrive: --again goes with ids only (--reason selects pending "
                        "rows)\n");
        rc = 2;
        goto out;
    }

    pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg) {
        fprintf(stderr, "kactl redrive: %s\n", err);
        goto out;
    }
    ka_pg_param_t p[4] = {{nids ? ka_buf_str(&ids) : NULL, 0, 0},
                          {reason, 0, 0},
                          {group, 0, 0},
                          {again ? "t" : "f", 0, 0}};
    if (ka_pg_query(pg,
                    "SELECT d.id, d.source_topic, encode(o.kafka_key, 'hex'), "
                    "encode(coalesce(d.payload, ''::bytea), 'hex') FROM dead_letter d "
                    "LEFT JOIN outbox o ON o.event_id = 'dlq:' || d.consumer_group || ':' || "
                    "d.source_topic || ':' || d.source_partition || ':' || d.source_offset "
                    "WHERE CASE WHEN $1::bigint[] IS NOT NULL THEN d.id = ANY($1::bigint[]) "
                    "AND ($4::boolean OR d.redriven_at IS NULL) "
                    "ELSE d.reason = $2 AND ($3::text IS NULL OR d.consumer_group = $3) "
                    "AND d.redriven_at IS NULL END ORDER BY d.id",
                    4, p, read_rows, &rows, err, sizeof err) != KA_OK) {
        fprintf(stderr, "kactl redrive: %s\n", err);
        goto out;
    }
    if (nids && rows.n < nids)
        fprintf(stderr, "kactl redrive: %d of the %d ids are unknown or already re-driven "
                        "(see kactl deadletters; --again re-drives those again)\n",
                nids - rows.n, nids);
    if (rows.n == 0) {
        printf("nothing to re-drive\n");
        rc = nids ? 1 : 0;
        goto out;
    }

    kp = ka_producer_new(cfg, on_delivery, NULL, err, sizeof err);
    if (!kp) {
        fprintf(stderr, "kactl redrive: %s\n", err);
        goto out;
    }
    for (int i = 0; i < rows.n; i++) {
        row_t *r = &rows.r[i];
        char from[64];
        snprintf(from, sizeof from, "dead_letter:%lld", r->id);
        ka_header_t h[] = {{"ka_redriven_from", from, strlen(from)}};
        ka_err_t sent;
        while ((sent = ka_producer_send(kp, r->topic, r->has_key ? r->key : NULL, r->key_len,
                                        r->payload, r->len, h, 1, r, err, sizeof err)) ==
               KA_ERR_RETRY)
            ka_producer_poll(kp, 100);
        if (sent != KA_OK) {
            r->status = -1;
            snprintf(r->err, sizeof r->err, "%s", err);
        }
    }
    if (ka_producer_flush(kp, FLUSH_TIMEOUT_MS) != KA_OK)
        fprintf(stderr, "kactl redrive: Kafka did not confirm every message within %d s\n",
                FLUSH_TIMEOUT_MS / 1000);

    int ndone = 0;
    ka_buf_array_begin(&done);
    for (int i = 0; i < rows.n; i++) {
        row_t *r = &rows.r[i];
        if (r->status == 1) {
            ka_buf_array_add_int(&done, r->id);
            ndone++;
            printf("dead letter %lld: produced to %s (%zu bytes, %s)\n", r->id, r->topic, r->len,
                   r->has_key ? "original key" : "no key: none stored");
        } else {
            printf("dead letter %lld: NOT delivered to %s: %s; left pending\n", r->id, r->topic,
                   r->status < 0 ? r->err : "no delivery report");
        }
    }
    ka_buf_array_end(&done);
    if (ndone) {
        ka_pg_param_t u[1] = {{ka_buf_str(&done), 0, 0}};
        if (ka_pg_query(pg, "UPDATE dead_letter SET redriven_at = now() "
                            "WHERE id = ANY($1::bigint[])",
                        1, u, NULL, NULL, err, sizeof err) != KA_OK) {
            fprintf(stderr, "kactl redrive: delivered but not marked re-driven: %s\n", err);
            goto out;
        }
    }
    printf("%d of %d dead letter%s re-driven\n", ndone, rows.n, rows.n == 1 ? "" : "s");
    rc = ndone == rows.n ? 0 : 1;
out:
    ka_producer_free(kp);
    ka_pg_free(pg);
    free_rows(&rows);
    ka_buf_free(&ids);
    ka_buf_free(&done);
    return rc;
}
