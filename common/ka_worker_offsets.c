#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka_buf.h"
#include "ka_log.h"
#include "ka_worker_internal.h"

/* The stored offsets: PostgreSQL's consumer_offset is where reading starts
 * on assignment, and each batch advances it by compare-and-set in its own
 * transaction, so only the partition's owner can commit. */

void ka_worker_lag_labels(const part_state_t *p, char *part, size_t len, const char *labels[2])
{
    snprintf(part, len, "%d", (int)p->partition);
    labels[0] = p->topic;
    labels[1] = part;
}

/* Partition bookkeeping ------------------------------------------------------ */

part_state_t *ka_worker_find_part(ka_worker_t *w, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < w->nparts; i++)
        if (w->parts[i].partition == partition && strcmp(w->parts[i].topic, topic) == 0)
            return &w->parts[i];
    return NULL;
}

static part_state_t *add_part(ka_worker_t *w, const char *topic, int32_t partition)
{
    part_state_t *p = ka_worker_find_part(w, topic, partition);
    if (p)
        return p;
    if (w->nparts == w->capparts) {
        w->capparts = w->capparts ? w->capparts * 2 : 8;
        w->parts = ka_realloc(w->parts, w->capparts * sizeof *w->parts);
    }
    p = &w->parts[w->nparts++];
    p->topic = ka_strdup(topic);
    p->partition = partition;
    p->stored_next = -1;
    return p;
}

void ka_worker_remove_part(ka_worker_t *w, const char *topic, int32_t partition)
{
    part_state_t *p = ka_worker_find_part(w, topic, partition);
    char part[16];
    const char *labels[2];
    if (!p)
        return;
    ka_worker_lag_labels(p, part, sizeof part, labels);
    ka_metrics_remove(w->m.lag, labels); /* not ours any more: no stale lag */
    free(p->topic);
    *p = w->parts[--w->nparts];
}

typedef struct offsets_read {
    ka_worker_t *w;
    ka_partition_t *parts;
    size_t n;
} offsets_read_t;

static int read_offsets(void *ud, const ka_pgres_t *res)
{
    offsets_read_t *r = ud;
    for (int row = 0; row < ka_pgres_rows(res); row++) {
        size_t i = (size_t)ka_pgres_int(res, row, 0, -1);
        if (i >= r->n)
            return -1;
        int64_t next = ka_pgres_int(res, row, 1, -1);
        part_state_t *p = add_part(r->w, r->parts[i].topic, r->parts[i].partition);
        p->stored_next = next;
        if (next >= 0)
            r->parts[i].offset = next;
        else
            r->parts[i].offset = strcmp(ka_config_str(r->w->cfg, "KA_START_OFFSET"), "latest") == 0
                                     ? KA_OFFSET_END
                                     : KA_OFFSET_BEGINNING;
    }
    return 0;
}

/* Reads the stored next offsets of `parts` into parts[i].offset and the
 * partition table, reconnecting as long as it takes. */
ka_err_t ka_worker_load_offsets(ka_worker_t *w, ka_partition_t *parts, size_t n)
{
    char err[KA_ERRSTR_SIZE];
    ka_buf_t topics = KA_BUF_INIT, partitions = KA_BUF_INIT;
    ka_err_t rc;

    ka_buf_array_begin(&topics);
    ka_buf_array_begin(&partitions);
    for (size_t i = 0; i < n; i++) {
        ka_buf_array_add(&topics, parts[i].topic);
        ka_buf_array_add_int(&partitions, parts[i].partition);
    }
    ka_buf_array_end(&topics);
    ka_buf_array_end(&partitions);
    ka_pg_param_t p[3] = {{w->group, 0, 0}, {ka_buf_str(&topics), 0, 0},
                          {ka_buf_str(&partitions), 0, 0}};
    offsets_read_t r = {w, parts, n};
    for (;;) {
        rc = ka_pg_query(w->pg, "ka_load_offsets", 3, p, read_offsets, &r, err, sizeof err);
        if (rc != KA_ERR_RETRY)
            break;
        if (ka_pg_reconnect(w->pg, w->retry_max_ms, ka_worker_should_stop,
                            ka_worker_log_pg_retry) != KA_OK)
            break;
    }
    if (rc != KA_OK)
        ka_log(KA_LOG_ERROR, "could not load stored offsets", "{s:s}", "error", err);
    ka_buf_free(&topics);
    ka_buf_free(&partitions);
    return rc;
}

/* Moves every partition of the batch back to its stored offset, so what was
 * rolled back is read again. */
void ka_worker_rewind_batch(ka_worker_t *w)
{
    char err[KA_ERRSTR_SIZE];
    ka_partition_t *seek = ka_calloc(w->nbatch + 1, sizeof *seek);
    size_t n = 0;
    for (size_t i = 0; i < w->nbatch; i++) {
        const ka_msg_t *m = w->batch[i].msg;
        size_t k;
        for (k = 0; k < n; k++)
            if (seek[k].partition == m->partition && strcmp(seek[k].topic, m->topic) == 0)
                break;
        if (k < n)
            continue;
        part_state_t *p = ka_worker_find_part(w, m->topic, m->partition);
        seek[n].topic = m->topic;
        seek[n].partition = m->partition;
        /* The batch holds the partition's events in order: its first one is
         * where reading resumes when nothing was ever stored. */
        seek[n].offset = p && p->stored_next >= 0 ? p->stored_next : m->offset;
        n++;
    }
    if (n && ka_consumer_seek(w->kc, seek, n, err, sizeof err) != KA_OK)
        ka_log(KA_LOG_ERROR, "could not rewind after a rollback", "{s:s}", "error", err);
    free(seek);
}

/* Re-reads stored offsets after a fence and seeks there. */
void ka_worker_reload_after_fence(ka_worker_t *w)
{
    char err[KA_ERRSTR_SIZE];
    size_t n = w->nparts;
    ka_partition_t *parts = ka_calloc(n + 1, sizeof *parts);
    for (size_t i = 0; i < n; i++) {
        parts[i].topic = w->parts[i].topic;
        parts[i].partition = w->parts[i].partition;
    }
    if (n && ka_worker_load_offsets(w, parts, n) == KA_OK &&
        ka_consumer_seek(w->kc, parts, n, err, sizeof err) != KA_OK)
        ka_log(KA_LOG_ERROR, "could not seek after a fence", "{s:s}", "error", err);
    free(parts);
}

/* Queues the compare-and-set of every partition the events touch; fills
 * `next` of each touched partition so the caller can advance its copy. */
ka_err_t ka_worker_push_offsets(ka_worker_t *w, ka_event_t **evs, size_t n, int64_t *next_of,
                             char *errstr, size_t errlen)
{
    ka_buf_t topics = KA_BUF_INIT, parts = KA_BUF_INIT, expected = KA_BUF_INIT,
             next = KA_BUF_INIT;
    for (size_t i = 0; i < w->nparts; i++)
        next_of[i] = -1;
    for (size_t i = 0; i < n; i++) {
        part_state_t *p = ka_worker_find_part(w, evs[i]->msg->topic, evs[i]->msg->partition);
        if (!p) {
            snprintf(errstr, errlen, "event from unassigned partition %s [%d]",
                     evs[i]->msg->topic, evs[i]->msg->partition);
            return KA_ERR_FENCED;
        }
        size_t k = (size_t)(p - w->parts);
        if (evs[i]->msg->offset + 1 > next_of[k])
            next_of[k] = evs[i]->msg->offset + 1;
    }
    ka_buf_array_begin(&topics);
    ka_buf_array_begin(&parts);
    ka_buf_array_begin(&expected);
    ka_buf_array_begin(&next);
    for (size_t k = 0; k < w->nparts; k++) {
        if (next_of[k] < 0)
            continue;
        ka_buf_array_add(&topics, w->parts[k].topic);
        ka_buf_array_add_int(&parts, w->parts[k].partition);
        if (w->parts[k].stored_next >= 0)
            ka_buf_array_add_int(&expected, w->parts[k].stored_next);
        else
            ka_buf_array_add(&expected, NULL);
        ka_buf_array_add_int(&next, next_of[k]);
    }
    ka_buf_array_end(&topics);
    ka_buf_array_end(&parts);
    ka_buf_array_end(&expected);
    ka_buf_array_end(&next);
    ka_pg_param_t p[5] = {{w->group, 0, 0},
                          {ka_buf_str(&topics), 0, 0},
                          {ka_buf_str(&parts), 0, 0},
                          {ka_buf_str(&expected), 0, 0},
                          {ka_buf_str(&next), 0, 0}};
    ka_err_t rc = ka_pg_pipe_push(w->pg, "ka_advance_offsets", 5, p, NULL, NULL, errstr, errlen);
    ka_buf_free(&topics);
    ka_buf_free(&parts);
    ka_buf_free(&expected);
    ka_buf_free(&next);
    return rc;
}
