/* kactl replay: move a consumer group's stored offsets back so its workers
 * read a topic range again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka_buf.h"
#include "ka_pg.h"
#include "kactl.h"

static void usage(FILE *out)
{
    fprintf(out,
        "usage: kactl replay --topic T --from-offset N [--to-offset M] [--partition P]\n"
        "                    --group G [--force]\n\n"
        "Replays a topic range for a consumer group by moving its stored offsets\n"
        "(consumer_offset, the only offsets the workers use) back to N, on partition P or\n"
        "on every partition of T the group has stored. Workers read those offsets when\n"
        "partitions are assigned and seek there, so a worker started afterwards reads T\n"
        "again from N.\n\n"
        "Stop the group's workers first. The move is a compare-and-set through\n"
        "ka_advance_offsets, the function the workers use: if a worker advances an offset\n"
        "between kactl's read and its write, kactl's set fails and nothing is moved (run it\n"
        "again). A worker still running keeps its old position in memory; its next batch on\n"
        "a moved partition fails the same compare-and-set (\"fenced\"), rolls back, and the\n"
        "worker reloads the stored offsets and seeks back to N. A running worker therefore\n"
        "replays only when the next event arrives on that partition, and the batch in hand\n"
        "is rolled back: stopping it first is the predictable way.\n\n"
        "What a replay does: the worker drops every event whose id it has processed already\n"
        "(processed_event), so a replay re-applies NOTHING already applied and cannot\n"
        "double-count. It is useful to re-deliver events whose effects were lost or are\n"
        "wanted again: after wiping derived state together with the group's processed_event\n"
        "rows, for a new consumer group (a new output) started from a given offset (with\n"
        "--force, which creates its rows), or to re-read events skipped by a wrong offset.\n"
        "The worker reads from N to the end of the log: --to-offset M only states (and\n"
        "checks) the last offset meant to be re-delivered; events after M come again too and\n"
        "are dropped as duplicates if they were applied.\n\n"
        "  --topic T        the topic, e.g. ka.visit.v1\n"
        "  --group G        the consumer group, e.g. ka-visit-worker\n"
        "  --from-offset N  the first offset read again (0 or more)\n"
        "  --to-offset M    the last offset meant to be re-delivered (N..stored-1)\n"
        "  --partition P    only partition P (default: every stored partition of T)\n"
        "  --force          allow N at or past the stored offset (skipping events), M past\n"
        "                   it, and a partition with no stored offset (the row is created;\n"
        "                   needs --partition)\n\n"
        "kactl does not ask Kafka for the log's start: an N the log no longer holds stops\n"
        "the worker (auto.offset.reset=error) instead of skipping events.\n");
}

typedef struct stored {
    int n;
    int part[4096];
    long long next[4096];
} stored_t;

static int read_stored(void *ud, const ka_pgres_t *res)
{
    stored_t *s = ud;
    for (int i = 0; i < ka_pgres_rows(res) && s->n < 4096; i++) {
        s->part[s->n] = (int)ka_pgres_int(res, i, 0, -1);
        s->next[s->n] = ka_pgres_int(res, i, 1, -1);
        s->n++;
    }
    return 0;
}

static int parse_ll(const char *s, long long *v)
{
    char extra;
    return s && sscanf(s, "%lld%c", v, &extra) == 1 && *v >= 0;
}

int kactl_replay(const ka_config_t *cfg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE];
    const char *topic = NULL, *group = NULL;
    long long from = -1, to = -1, part = -1;
    int force = 0, rc = 1;
    ka_pg_t *pg = NULL;
    stored_t *st = calloc(1, sizeof *st);
    ka_buf_t topics = KA_BUF_INIT, parts = KA_BUF_INIT, expected = KA_BUF_INIT,
             next = KA_BUF_INIT;
    if (!st)
        abort();

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            rc = 0;
            goto out;
        } else if (strcmp(a, "--force") == 0) {
            force = 1;
            continue;
        }
        if (!v || !v[0]) {
            fprintf(stderr, "kactl replay: %s needs a value (see kactl replay --help)\n", a);
            rc = 2;
            goto out;
        }
        i++;
        if (strcmp(a, "--topic") == 0) {
            topic = v;
        } else if (strcmp(a, "--group") == 0) {
            group = v;
        } else if (strcmp(a, "--from-offset") == 0 && parse_ll(v, &from)) {
        } else if (strcmp(a, "--to-offset") == 0 && parse_ll(v, &to)) {
        } else if (strcmp(a, "--partition") == 0 && parse_ll(v, &part) && part <= 100000) {
        } else if (strcmp(a, "--from-offset") == 0 || strcmp(a, "--to-offset") == 0 ||
                   strcmp(a, "--partition") == 0) {
            fprintf(stderr, "kactl replay: %s expects a number of 0 or more, not \"%s\"\n", a, v);
            rc = 2;
            goto out;
        } else {
            fprintf(stderr, "kactl replay: unexpected argument \"%s\" (see kactl replay --help)\n",
                    a);
            rc = 2;
            goto out;
        }
    }
    if (!topic || !group || from < 0) {
        fprintf(stderr, "kactl replay: --topic, --group and --from-offset are required, e.g. "
                        "kactl replay --topic ka.visit.v1 --group ka-visit-worker "
                        "--from-offset 1200 --partition 3\n");
        rc = 2;
        goto out;
    }
    if (to >= 0 && to < from) {
        fprintf(stderr, "kactl replay: --to-offset %lld is before --from-offset %lld\n", to,
                from);
        rc = 2;
        goto out;
    }

    pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg) {
        fprintf(stderr, "kactl replay: %s\n", err);
        goto out;
    }
    char pbuf[24];
    snprintf(pbuf, sizeof pbuf, "%lld", part);
    ka_pg_param_t p[3] = {{group, 0, 0}, {topic, 0, 0}, {part >= 0 ? pbuf : NULL, 0, 0}};
    if (ka_pg_query(pg, "SELECT partition, next_offset FROM consumer_offset "
                        "WHERE consumer_group = $1 AND topic = $2 "
                        "AND ($3::int IS NULL OR partition = $3) ORDER BY partition",
                    3, p, read_stored, st, err, sizeof err) != KA_OK) {
        fprintf(stderr, "kactl replay: %s\n", err);
        goto out;
    }
    if (st->n == 0 && !(force && part >= 0)) {
        if (part >= 0)
            fprintf(stderr, "kactl replay: group %s has no stored offset for %s [%lld]; "
                            "--force creates it (the group then starts there)\n",
                    group, topic, part);
        else
            fprintf(stderr, "kactl replay: group %s has no stored offsets for %s (check the "
                            "names: kactl reads consumer_offset)\n", group, topic);
        goto out;
    }
    int bad = 0;
    for (int i = 0; i < st->n; i++) {
        if (from >= st->next[i]) {
            fprintf(stderr, "kactl replay: %s [%d]: --from-offset %lld is not before the stored "
                            "next offset %lld: that skips events, not replays them%s\n",
                    topic, st->part[i], from, st->next[i], force ? " (forced)" : "");
            bad = 1;
        }
        if (to >= st->next[i]) {
            fprintf(stderr, "kactl replay: %s [%d]: --to-offset %lld was never read (stored "
                            "next offset %lld)%s\n",
                    topic, st->part[i], to, st->next[i], force ? " (forced)" : "");
            bad = 1;
        }
    }
    if (bad && !force) {
        fprintf(stderr, "kactl replay: nothing moved; choose offsets below the stored ones (or "
                        "--force)\n");
        goto out;
    }

    ka_buf_array_begin(&topics);
    ka_buf_array_begin(&parts);
    ka_buf_array_begin(&expected);
    ka_buf_array_begin(&next);
    if (st->n == 0) { /* forced, one partition, no row yet */
        st->part[0] = (int)part;
        st->next[0] = -1;
        st->n = 1;
    }
    for (int i = 0; i < st->n; i++) {
        ka_buf_array_add(&topics, topic);
        ka_buf_array_add_int(&parts, st->part[i]);
        if (st->next[i] >= 0)
            ka_buf_array_add_int(&expected, st->next[i]);
        else
            ka_buf_array_add(&expected, NULL);
        ka_buf_array_add_int(&next, from);
    }
    ka_buf_array_end(&topics);
    ka_buf_array_end(&parts);
    ka_buf_array_end(&expected);
    ka_buf_array_end(&next);
    ka_pg_param_t q[5] = {{group, 0, 0},
                          {ka_buf_str(&topics), 0, 0},
                          {ka_buf_str(&parts), 0, 0},
                          {ka_buf_str(&expected), 0, 0},
                          {ka_buf_str(&next), 0, 0}};
    ka_err_t qrc = ka_pg_query(pg, "SELECT ka_advance_offsets($1, $2::text[], $3::int[], "
                                   "$4::bigint[], $5::bigint[])",
                               5, q, NULL, NULL, err, sizeof err);
    if (qrc == KA_ERR_FENCED) {
        fprintf(stderr, "kactl replay: a worker of group %s moved the offsets meanwhile; nothing "
                        "moved (stop the group's workers and run it again): %s\n", group, err);
        goto out;
    } else if (qrc != KA_OK) {
        fprintf(stderr, "kactl replay: %s\n", err);
        goto out;
    }
    for (int i = 0; i < st->n; i++) {
        if (st->next[i] >= from)
            printf("%s %s [%d]: next offset %lld -> %lld (%lld events to read again)\n", group,
                   topic, st->part[i], st->next[i], from, st->next[i] - from);
        else if (st->next[i] >= 0)
            printf("%s %s [%d]: next offset %lld -> %lld (forced: %lld events skipped)\n", group,
                   topic, st->part[i], st->next[i], from, from - st->next[i]);
        else
            printf("%s %s [%d]: next offset (none) -> %lld\n", group, topic, st->part[i], from);
    }
    printf("moved %d stored offset%s; the group's workers read from there when the partitions "
           "are next assigned (already-applied event ids are dropped as duplicates)\n",
           st->n, st->n == 1 ? "" : "s");
    rc = 0;
out:
    ka_pg_free(pg);
    free(st);
    ka_buf_free(&topics);
    ka_buf_free(&parts);
    ka_buf_free(&expected);
    ka_buf_free(&next);
    return rc;
}
