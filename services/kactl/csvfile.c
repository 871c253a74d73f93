/* Reading a CSV file into records with their physical line numbers, through
 * Debian's libcsv (RFC 4180 quoting, embedded commas and newlines). */
#include <csv.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csvfile.h"

typedef struct reader {
    csvfile_t *f;
    csv_record_t cur;
    int line;      /* physical line where the next record starts */
    int extra_nl;  /* newlines inside the current record's fields */
} reader_t;

static void on_field(void *data, size_t len, void *ud)
{
    reader_t *r = ud;
    csv_record_t *rec = &r->cur;
    rec->fields = ka_realloc(rec->fields, (size_t)(rec->n + 1) * sizeof *rec->fields);
    rec->fields[rec->n++] = ka_strndup(data ? data : "", data ? len : 0);
    for (size_t i = 0; data && i < len; i++)
        if (((const char *)data)[i] == '\n')
            r->extra_nl++;
}

static void on_record(int c, void *ud)
{
    reader_t *r = ud;
    csvfile_t *f = r->f;
    (void)c;
    r->cur.line = r->line;
    r->line += 1 + r->extra_nl;
    r->extra_nl = 0;
    /* A blank line gives one empty field: not a record. */
    if (r->cur.n == 1 && r->cur.fields[0][0] == '\0') {
        free(r->cur.fields[0]);
        free(r->cur.fields);
    } else {
        f->records = ka_realloc(f->records, (size_t)(f->n + 1) * sizeof *f->records);
        f->records[f->n++] = r->cur;
    }
    memset(&r->cur, 0, sizeof r->cur);
}

int csvfile_read(const char *path, csvfile_t *out, char *errstr, size_t errlen)
{
    struct csv_parser p;
    reader_t r;
    char buf[65536];
    size_t n;
    int first = 1, rc = 0;
    FILE *fp = fopen(path, "rb");

    memset(out, 0, sizeof *out);
    if (!fp) {
        snprintf(errstr, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    memset(&r, 0, sizeof r);
    r.f = out;
    r.line = 1;
    csv_init(&p, CSV_APPEND_NULL);
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0) {
        char *data = buf;
        if (first && n >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) { /* a UTF-8 BOM */
            data += 3;
            n -= 3;
        }
        first = 0;
        /* A value would end at the NUL without a word: not a text file. */
        if (memchr(data, '\0', n)) {
            snprintf(errstr, errlen, "%s:%d: a NUL byte: not a CSV text file", path, r.line);
            rc = -1;
            break;
        }
        if (csv_parse(&p, data, n, on_field, on_record, &r) != n) {
            snprintf(errstr, errlen, "%s:%d: %s", path, r.line, csv_strerror(csv_error(&p)));
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(fp)) {
        snprintf(errstr, errlen, "%s: could not read: %s", path, strerror(errno));
        rc = -1;
    }
    if (rc == 0)
        csv_fini(&p, on_field, on_record, &r);
    csv_free(&p);
    fclose(fp);
    for (int i = 0; i < r.cur.n; i++)
        free(r.cur.fields[i]);
    free(r.cur.fields);
    if (rc != 0)
        csvfile_free(out);
    return rc;
}

void csvfile_free(csvfile_t *f)
{
    for (int i = 0; i < f->n; i++) {
        for (int k = 0; k < f->records[i].n; k++)
            free(f->records[i].fields[k]);
        free(f->records[i].fields);
    }
    free(f->records);
    memset(f, 0, sizeof *f);
}
