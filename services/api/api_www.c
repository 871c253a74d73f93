#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api_www.h"
#include "ka_hash.h"
#include "ka_err.h"

#ifndef KA_API_WWW_DIR
#define KA_API_WWW_DIR "www"
#endif

#define MAX_FILES 64
#define MAX_FILE_BYTES (2 * 1024 * 1024)

struct api_www {
    char dir[512];
    api_www_file_t files[MAX_FILES];
    int n;
};

const char *api_www_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".json", "application/json; charset=utf-8"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    if (!dot)
        return NULL;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return NULL;
}

static int plain_name(const char *s)
{
    if (!s[0] || s[0] == '.' || strlen(s) >= sizeof(((api_www_file_t *)0)->name))
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return 0;
    return strstr(s, "..") == NULL;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = ka_malloc(MAX_FILE_BYTES + 1);
    *len = fread(buf, 1, MAX_FILE_BYTES + 1, f);
    int bad = ferror(f) || *len > MAX_FILE_BYTES;
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    return buf;
}

api_www_t *api_www_load(const char *dir, char *errstr, size_t errlen)
{
    if (!dir || !dir[0])
        dir = KA_API_WWW_DIR;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(errstr, errlen, "the page's folder %s cannot be read", dir);
        return NULL;
    }
    api_www_t *w = ka_calloc(1, sizeof *w);
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    int has_index = 0;
    struct dirent *e;
    while ((e = readdir(d)) && w->n < MAX_FILES) {
        const char *type = api_www_type(e->d_name);
        if (!plain_name(e->d_name) || !type)
            continue;
        char path[1024];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        api_www_file_t *f = &w->files[w->n];
        f->data = slurp(path, &f->len);
        if (!f->data)
            continue;
        memcpy(f->name, e->d_name, strlen(e->d_name) + 1); /* plain_name: it fits */
        f->type = type;
        char hash[KA_HASH_HEX_LEN];
        ka_hash128_hex(f->data, f->len, hash);
        snprintf(f->etag, sizeof f->etag, "\"%s\"", hash);
        has_index |= strcmp(f->name, "index.html") == 0;
        w->n++;
    }
    closedir(d);
    if (!has_index) {
        snprintf(errstr, errlen, "the page's folder %s has no index.html", dir);
        api_www_free(w);
        return NULL;
    }
    return w;
}

const char *api_www_dir(const api_www_t *w)
{
    return w->dir;
}

const api_www_file_t *api_www_find(const api_www_t *w, const char *url)
{
    if (!w || !url || url[0] != '/')
        return NULL;
    const char *name = url[1] ? url + 1 : "index.html";
    if (!plain_name(name))
        return NULL;
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->files[i].name, name) == 0)
            return &w->files[i];
    return NULL;
}

void api_www_free(api_www_t *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++)
        free(w->files[i].data);
    free(w);
}
