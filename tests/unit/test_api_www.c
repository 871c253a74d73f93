/* ka-api's static files (api_www.c): only plain names of the folder, with
 * their content types; "/" is index.html; no path outside the folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_www.h"

static char dir[64];

static void put(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/ka-www-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void serves_plain_names_with_types(void **state)
{
    char err[256], sub[128];
    (void)state;
    put("index.html", "<!doctype html><title>x</title>");
    put("app.js", "'use strict';");
    put("app.css", "body{}");
    put(".secret.js", "no");
    put("notes.md", "no: no type");
    snprintf(sub, sizeof sub, "%s/sub", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    put("sub/deep.js", "no");
    api_www_t *w = api_www_load(dir, err, sizeof err);
    assert_non_null(w);
    const api_www_file_t *f = api_www_find(w, "/");
    assert_non_null(f);
    assert_string_equal(f->name, "index.html");
    assert_string_equal(f->type, "text/html; charset=utf-8");
    assert_int_equal(f->len, strlen("<!doctype html><title>x</title>"));
    assert_int_equal(f->etag[0], '"');
    assert_string_equal(api_www_find(w, "/app.js")->type, "text/javascript; charset=utf-8");
    assert_string_equal(api_www_find(w, "/app.css")->type, "text/css; charset=utf-8");
    assert_ptr_equal(api_www_find(w, "/index.html"), f);
    assert_null(api_www_find(w, "/.secret.js"));
    assert_null(api_www_find(w, "/notes.md"));
    assert_null(api_www_find(w, "/sub/deep.js"));
    assert_null(api_www_find(w, "/sub"));
    assert_null(api_www_find(w, "/../index.html"));
    assert_null(api_www_find(w, "/..%2findex.html"));
    assert_null(api_www_find(w, "/missing.js"));
    assert_null(api_www_find(w, "app.js"));
    assert_null(api_www_find(NULL, "/"));
    api_www_free(w);
}

static void a_folder_without_index_is_refused(void **state)
{
    char err[256], other[80];
    (void)state;
    snprintf(other, sizeof other, "%s/none", dir);
    assert_null(api_www_load(other, err, sizeof err));
    assert_non_null(strstr(err, "cannot be read"));
    assert_int_equal(mkdir(other, 0700), 0);
    assert_null(api_www_load(other, err, sizeof err));
    assert_non_null(strstr(err, "no index.html"));
}

static void the_default_folder_is_the_repository_page(void **state)
{
    char err[256];
    (void)state;
    api_www_t *w = api_www_load(NULL, err, sizeof err);
    assert_non_null(w);
    assert_non_null(api_www_find(w, "/app.js"));
    assert_non_null(api_www_find(w, "/app.css"));
    assert_string_equal(api_www_find(w, "/favicon.svg")->type, "image/svg+xml");
    api_www_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(serves_plain_names_with_types),
        cmocka_unit_test(a_folder_without_index_is_refused),
        cmocka_unit_test(the_default_folder_is_the_repository_page),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
