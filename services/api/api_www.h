#ifndef API_WWW_H
#define API_WWW_H

#include <stddef.h>

/* The manager's page (services/api/www): the files of one folder, read once
 * at start and served from memory, so no request ever reaches the file
 * system and no path is ever built from a URL. */
typedef struct api_www api_www_t;

typedef struct api_www_file {
    char name[64];
    const char *type; /* Content-Type */
    char *data;
    size_t len;
    char etag[36]; /* quoted */
} api_www_file_t;

/* Reads the folder's regular files whose names are plain (letters, digits,
 * '.', '_', '-', not starting with '.') and whose extension has a known
 * type; others are skipped. dir NULL or "": the folder compiled in
 * (KA_API_WWW_DIR, the source tree's services/api/www). NULL with errstr
 * set when the folder cannot be read or holds no index.html. */
api_www_t *api_www_load(const char *dir, char *errstr, size_t errlen);

/* The folder actually read. */
const char *api_www_dir(const api_www_t *w);

/* The file for a request path: "/" is index.html, "/NAME" a file of the
 * folder; anything else (sub-paths, "..", unknown names) NULL. w may be NULL. */
const api_www_file_t *api_www_find(const api_www_t *w, const char *url);

/* The content type of a file name by its extension, NULL when not served. */
const char *api_www_type(const char *name);

void api_www_free(api_www_t *w);

#endif
