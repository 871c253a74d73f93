#include <stdlib.h>
#include <string.h>

#include "ka_buf.h"
#include "ka_worker_internal.h"

/* Dedupe: each batch records its event ids in processed_event inside its
 * transaction; the ids the database had not seen are the new events. */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_fresh_ids(void *ud, const ka_pgres_t *res)
{
    fresh_ids_t *f = ud;
    f->n = ka_pgres_rows(res);
    f->ids = ka_calloc((size_t)f->n + 1, sizeof *f->ids);
    for (int i = 0; i < f->n; i++)
        f->ids[i] = ka_strdup(ka_pgres_value(res, i, 0));
    qsort(f->ids, (size_t)f->n, sizeof *f->ids, cmp_str);
    return 0;
}

/* Marks, in batch order, the first event of each id the database had not
 * seen as new and every other one as a duplicate. */
void ka_worker_mark_duplicates(ka_event_t **evs, size_t n, fresh_ids_t *f)
{
    char *used = ka_calloc((size_t)f->n + 1, 1);
    for (size_t i = 0; i < n; i++) {
        if (evs[i]->status != KA_EVENT_NEW)
            continue;
        const char *key = evs[i]->event_id;
        char **hit = bsearch(&key, f->ids, (size_t)f->n, sizeof *f->ids, cmp_str);
        size_t k = hit ? (size_t)(hit - f->ids) : 0;
        if (hit && !used[k])
            used[k] = 1;
        else
            evs[i]->status = KA_EVENT_DUPLICATE;
    }
    free(used);
}

void ka_worker_free_fresh(fresh_ids_t *f)
{
    for (int i = 0; i < f->n; i++)
        free(f->ids[i]);
    free(f->ids);
}

/* Queues the insert of the batch's undecided events' ids (ka_record_events);
 * its result, the ids not seen before, lands in `fresh` at the next flush. */
ka_err_t ka_worker_record_events(ka_worker_t *w, ka_event_t **evs, size_t n, fresh_ids_t *fresh,
                                 char *errstr, size_t errlen)
{
    ka_buf_t ids = KA_BUF_INIT, topics = KA_BUF_INIT, parts = KA_BUF_INIT, offs = KA_BUF_INIT,
             ats = KA_BUF_INIT;
    size_t nvalid = 0;
    ka_err_t rc = KA_OK;

    ka_buf_array_begin(&ids);
    ka_buf_array_begin(&topics);
    ka_buf_array_begin(&parts);
    ka_buf_array_begin(&offs);
    ka_buf_array_begin(&ats);
    for (size_t i = 0; i < n; i++) {
        if (evs[i]->status != KA_EVENT_NEW)
            continue;
        nvalid++;
        ka_buf_array_add(&ids, evs[i]->event_id);
        ka_buf_array_add(&topics, evs[i]->msg->topic);
        ka_buf_array_add_int(&parts, evs[i]->msg->partition);
        ka_buf_array_add_int(&offs, evs[i]->msg->offset);
        ka_buf_array_add_int(&ats, evs[i]->occurred_at_ms);
    }
    ka_buf_array_end(&ats);
    ka_buf_array_end(&ids);
    ka_buf_array_end(&topics);
    ka_buf_array_end(&parts);
    ka_buf_array_end(&offs);
    if (nvalid) {
        ka_pg_param_t p[6] = {{w->group, 0, 0},          {ka_buf_str(&ids), 0, 0},
                              {ka_buf_str(&topics), 0, 0}, {ka_buf_str(&parts), 0, 0},
                              {ka_buf_str(&offs), 0, 0},   {ka_buf_str(&ats), 0, 0}};
        rc = ka_pg_pipe_push(w->pg, "ka_record_events", 6, p, read_fresh_ids, fresh, errstr,
                             errlen);
    }
    ka_buf_free(&ids);
    ka_buf_free(&topics);
    ka_buf_free(&parts);
    ka_buf_free(&offs);
    ka_buf_free(&ats);
    return rc;
}

/* An event rejected by apply may be re-driven after a fix: forget its id. */
ka_err_t ka_worker_forget_rejected(ka_worker_t *w, ka_event_t **fresh_evs, size_t nfresh,
                                   char *errstr, size_t errlen)
{
    ka_buf_t ids = KA_BUF_INIT;
    ka_err_t rc = KA_OK;
    ka_buf_array_begin(&ids);
    int any_rejected_fresh = 0;
    for (size_t i = 0; i < nfresh; i++) {
        if (fresh_evs[i]->status == KA_EVENT_REJECTED) {
            ka_buf_array_add(&ids, fresh_evs[i]->event_id);
            any_rejected_fresh = 1;
        }
    }
    ka_buf_array_end(&ids);
    if (any_rejected_fresh) {
        ka_pg_param_t p[2] = {{w->group, 0, 0}, {ka_buf_str(&ids), 0, 0}};
        rc = ka_pg_pipe_push(w->pg, "ka_forget_events", 2, p, NULL, NULL, errstr, errlen);
    }
    ka_buf_free(&ids);
    return rc;
}
