#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka_err.h"

const char *ka_err_name(ka_err_t err)
{
    switch (err) {
    case KA_OK: return "ok";
    case KA_ERR: return "error";
    case KA_ERR_INVALID: return "invalid";
    case KA_ERR_RETRY: return "retry";
    case KA_ERR_FENCED: return "fenced";
    case KA_ERR_CONFIG: return "config";
    }
    return "unknown";
}

static void oom(size_t size)
{
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"out of memory\",\"bytes\":%zu}\n", size);
    abort();
}

void *ka_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        oom(size);
    return p;
}

void *ka_calloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        oom(nmemb * size);
    return p;
}

void *ka_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (!p)
        oom(size);
    return p;
}

char *ka_strdup(const char *s)
{
    return ka_strndup(s, strlen(s));
}

char *ka_strndup(const char *s, size_t n)
{
    char *p = ka_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}
