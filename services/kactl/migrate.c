/* kactl migrate: applies deploy/sql/NNNN_name.sql files in order, each in its
 * own transaction, recording them in schema_migration with a checksum so an
 * edited, already-applied migration is caught instead of silently skipped. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka_buf.h"
#include "ka_pg.h"
#include "kactl.h"

#define MIGRATE_LOCK "SELECT pg_advisory_lock(4242002)"

typedef struct migration {
    int version;
    char *name;
    char *path;
} migration_t;

typedef struct applied {
    int version;
    char checksum[17];
} applied_t;

typedef struct applied_set {
    applied_t *rows;
    int n;
} applied_set_t;

static int cmp_migration(const void *a, const void *b)
{
    return ((const migration_t *)a)->version - ((const migration_t *)b)->version;
}

/* FNV-1a: enough to notice an edited file, not a security measure. */
static void checksum(const char *text, char out[17])
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    ka_buf_t buf = KA_BUF_INIT;
    char chunk[8192];
    size_t n;
    if (!f)
        return NULL;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ka_buf_append(&buf, chunk, n);
    fclose(f);
    ka_buf_append(&buf, "", 0);
    return buf.data;
}

/* Lists NNNN_name.sql files; returns the count or -1 (message printed). */
static int list_migrations(const char *dir, migration_t **out)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    migration_t *list = NULL;
    int n = 0;
    if (!d) {
        fprintf(stderr, "kactl migrate: could not open \"%s\": %s (use --dir to point at "
                        "deploy/sql)\n", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        char *end;
        if (len < 10 || strcmp(e->d_name + len - 4, ".sql") != 0)
            continue;
        long v = strtol(e->d_name, &end, 10);
        if (end != e->d_name + 4 || *end != '_' || v <= 0) {
            fprintf(stderr, "kactl migrate: skipping \"%s\": names are NNNN_name.sql\n",
                    e->d_name);
            continue;
        }
        list = ka_realloc(list, (size_t)(n + 1) * sizeof *list);
        list[n].version = (int)v;
        list[n].name = ka_strndup(e->d_name, len - 4);
        ka_buf_t path = KA_BUF_INIT;
        ka_buf_printf(&path, "%s/%s", dir, e->d_name);
        list[n].path = path.data;
        n++;
    }
    closedir(d);
    qsort(list, (size_t)n, sizeof *list, cmp_migration);
    for (int i = 1; i < n; i++) {
        if (list[i].version == list[i - 1].version) {
            fprintf(stderr, "kactl migrate: %s and %s share version %d\n", list[i - 1].name,
                    list[i].name, list[i].version);
            for (int k = 0; k < n; k++) {
                free(list[k].name);
                free(list[k].path);
            }
            free(list);
            *out = NULL;
            return -1;
        }
    }
    *out = list;
    return n;
}

static int read_applied(void *ud, const ka_pgres_t *res)
{
    applied_set_t *s = ud;
    s->n = ka_pgres_rows(res);
    s->rows = ka_calloc((size_t)s->n + 1, sizeof *s->rows);
    for (int i = 0; i < s->n; i++) {
        s->rows[i].version = (int)ka_pgres_int(res, i, 0, -1);
        snprintf(s->rows[i].checksum, sizeof s->rows[i].checksum, "%s",
                 ka_pgres_value(res, i, 1) ? ka_pgres_value(res, i, 1) : "");
    }
    return 0;
}

static const applied_t *find_applied(const applied_set_t *s, int version)
{
    for (int i = 0; i < s->n; i++)
        if (s->rows[i].version == version)
            return &s->rows[i];
    return NULL;
}

static int apply_one(ka_pg_t *pg, const migration_t *m, const char *sql, const char *sum)
{
    char err[KA_ERRSTR_SIZE], version[16];
    snprintf(version, sizeof version, "%d", m->version);
    ka_pg_param_t p[3] = {{version, 0, 0}, {m->name, 0, 0}, {sum, 0, 0}};
    if (ka_pg_exec(pg, "BEGIN", err, sizeof err) != KA_OK ||
        ka_pg_exec(pg, sql, err, sizeof err) != KA_OK ||
        ka_pg_query(pg,
                    "INSERT INTO schema_migration (version, name, checksum) VALUES ($1, $2, $3)",
                    3, p, NULL, NULL, err, sizeof err) != KA_OK ||
        ka_pg_exec(pg, "COMMIT", err, sizeof err) != KA_OK) {
        ka_pg_rollback(pg);
        fprintf(stderr, "kactl migrate: %s failed, nothing of it was applied: %s\n", m->name,
                err);
        return 1;
    }
    printf("applied %s\n", m->name);
    return 0;
}

int kactl_migrate(const ka_config_t *cfg, int argc, char **argv)
{
    const char *dir = KA_SQL_DIR;
    int dry_run = 0, rc = 0, n, pending = 0;
    migration_t *list = NULL;
    applied_set_t applied = {NULL, 0};
    ka_pg_t *pg = NULL;
    char err[KA_ERRSTR_SIZE];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--dry-run") == 0) {
            dry_run = 1;
        } else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: kactl migrate [--dir DIR] [--dry-run]\n\n"
                   "Applies the NNNN_name.sql files of DIR (default %s) that the database\n"
                   "named by KA_PG_DSN has not applied yet, in order, each in one transaction.\n"
                   "--dry-run lists them without applying.\n",
                   KA_SQL_DIR);
            return 0;
        } else {
            fprintf(stderr, "kactl migrate: unknown argument \"%s\" (see kactl migrate --help)\n",
                    argv[i]);
            return 2;
        }
    }
    if ((n = list_migrations(dir, &list)) < 0) {
        rc = 1;
        goto out;
    }
    pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg) {
        fprintf(stderr, "kactl migrate: %s (is the stack up? `deploy/local/stack up`)\n", err);
        rc = 1;
        goto out;
    }
    /* One migrator at a time, so two deploys cannot both apply a version. */
    if (ka_pg_exec(pg, MIGRATE_LOCK, err, sizeof err) != KA_OK ||
        ka_pg_exec(pg,
                   "CREATE TABLE IF NOT EXISTS schema_migration (version integer PRIMARY KEY, "
                   "name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL "
                   "DEFAULT now())",
                   err, sizeof err) != KA_OK ||
        ka_pg_query(pg, "SELECT version, checksum FROM schema_migration ORDER BY version", 0,
                    NULL, read_applied, &applied, err, sizeof err) != KA_OK) {
        fprintf(stderr, "kactl migrate: %s\n", err);
        rc = 1;
        goto out;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        char *sql = read_file(list[i].path);
        char sum[17];
        if (!sql) {
            fprintf(stderr, "kactl migrate: could not read \"%s\": %s\n", list[i].path,
                    strerror(errno));
            rc = 1;
            break;
        }
        checksum(sql, sum);
        const applied_t *done = find_applied(&applied, list[i].version);
        if (done && strcmp(done->checksum, sum) != 0) {
            fprintf(stderr, "kactl migrate: %s was changed after it was applied (checksum %s, "
                            "applied %s); add a new migration instead of editing it\n",
                    list[i].name, sum, done->checksum);
            rc = 1;
        } else if (!done) {
            pending++;
            if (dry_run)
                printf("pending %s\n", list[i].name);
            else
                rc = apply_one(pg, &list[i], sql, sum);
        }
        free(sql);
    }
    if (rc == 0 && pending == 0)
        printf("schema is up to date (%d migrations)\n", n);
out:
    for (int i = 0; list && i < n; i++) {
        free(list[i].name);
        free(list[i].path);
    }
    free(list);
    free(applied.rows);
    ka_pg_free(pg);
    return rc;
}
