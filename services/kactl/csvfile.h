#ifndef KACTL_CSVFILE_H
#define KACTL_CSVFILE_H

#include <stddef.h>

#include "ka_err.h"

/* One record: its fields and the physical line it starts on (so errors can
 * name it even when quoted fields span lines). */
typedef struct csv_record {
    char **fields;
    int n;
    int line;
} csv_record_t;

typedef struct csvfile {
    csv_record_t *records; /* the header is records[0] */
    int n;
} csvfile_t;

/* Reads the whole file (a leading UTF-8 BOM is skipped, blank lines are
 * ignored). Returns 0, or -1 with errstr naming the file and line. Free with
 * csvfile_free. */
int csvfile_read(const char *path, csvfile_t *out, char *errstr, size_t errlen);

/* No operation is performed on an empty csvfile_t. */
void csvfile_free(csvfile_t *f);

#endif
