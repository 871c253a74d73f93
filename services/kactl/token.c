/* kactl token create|list|revoke: bearer tokens of the HTTP API (ka-api).
 * The token is printed once; only its SHA-256 is stored (api_token). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka_pg.h"
#include "ka_token.h"
#include "kactl.h"
#include "ui.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kactl token create --node NODE --name TEXT [--expires DAYS] [--ops]\n"
            "       kactl token list [--all]\n"
            "       kactl token revoke ID\n\n"
            "Bearer tokens of the HTTP API (ka-api). A token sees the subtree of its org\n"
            "node and nothing else; --ops also lets it read the dead letters (operators).\n"
            "create prints the token once: only its SHA-256 is kept. --expires DAYS\n"
            "(1..3650) ends it after that many days; without, it lasts until revoked.\n"
            "list shows the tokens in force (--all: expired and revoked ones too) by id;\n"
            "revoke ID ends one at once.\n");
}

static int print_row(void *ud, const ka_pgres_t *res)
{
    int *n = ud;
    for (int i = 0; i < ka_pgres_rows(res); i++, (*n)++)
        printf("%-12s  %-20s %-3s %-16s %-16s %-10s %s\n", kactl_val(res, i, 0),
               kactl_val(res, i, 1), kactl_val(res, i, 2), kactl_val(res, i, 3),
               kactl_val(res, i, 4), kactl_val(res, i, 5), kactl_val(res, i, 6));
    return 0;
}

static int count_rows(void *ud, const ka_pgres_t *res)
{
    *(int *)ud += ka_pgres_rows(res);
    return 0;
}

static int create(ka_pg_t *pg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE], tok[KA_TOKEN_LEN + 1], hash[KA_TOKEN_HASH_LEN], id[KA_TOKEN_ID_LEN];
    const char *node = NULL, *name = NULL, *expires = NULL;
    int ops = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--node") == 0 && i + 1 < argc)
            node = argv[++i];
        else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            name = argv[++i];
        else if (strcmp(argv[i], "--expires") == 0 && i + 1 < argc)
            expires = argv[++i];
        else if (strcmp(argv[i], "--ops") == 0)
            ops = 1;
        else {
            fprintf(stderr, "kactl token create: unexpected argument \"%s\" (see kactl token "
                            "--help)\n", argv[i]);
            return 2;
        }
    }
    if (!node || !name || !name[0]) {
        fprintf(stderr, "kactl token create: --node NODE and --name TEXT are needed\n");
        return 2;
    }
    if (expires) {
        char *end;
        long d = strtol(expires, &end, 10);
        if (*end || d < 1 || d > 3650) {
            fprintf(stderr, "kactl token create: --expires takes days, 1..3650, not \"%s\"\n",
                    expires);
            return 2;
        }
    }
    if (ka_token_new(tok, err, sizeof err) != KA_OK) {
        fprintf(stderr, "kactl token create: %s\n", err);
        return 1;
    }
    ka_token_hash(tok, strlen(tok), hash);
    ka_token_id(hash, id);
    ka_pg_param_t p[6] = {{id, 0, 0},   {hash, 0, 0},           {node, 0, 0},
                          {name, 0, 0}, {ops ? "t" : "f", 0, 0}, {expires, 0, 0}};
    int n = 0;
    if (ka_pg_query(pg,
                    "INSERT INTO api_token (id, hash, node_id, name, ops, expires_at) "
                    "SELECT $1, $2, n.id, $4, $5::boolean, now() + $6::int * interval '1 day' "
                    "FROM org_node n WHERE n.id = $3 RETURNING id",
                    6, p, count_rows, &n, err, sizeof err) != KA_OK) {
        fprintf(stderr, "kactl token create: %s\n", err);
        return 1;
    }
    if (n == 0) {
        fprintf(stderr, "kactl token create: no org node \"%s\" (ids: SELECT id FROM org_node)\n",
                node);
        return 1;
    }
    /* The token on stdout alone, so scripts can take it; what it is on stderr. */
    printf("%s\n", tok);
    fprintf(stderr, "token %s for node %s%s%s%s%s: keep it, it is not shown again\n", id, node,
            ops ? " (ops)" : "", expires ? ", expires in " : "", expires ? expires : "",
            expires ? " days" : "");
    return 0;
}

int kactl_token(const ka_config_t *cfg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE];
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *verb = argv[1];
    if (strcmp(verb, "create") != 0 && strcmp(verb, "list") != 0 && strcmp(verb, "revoke") != 0) {
        fprintf(stderr, "kactl token: unknown verb \"%s\" (create, list, revoke)\n", verb);
        return 2;
    }
    ka_pg_t *pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg) {
        fprintf(stderr, "kactl token: %s\n", err);
        return 1;
    }
    int rc = 0;
    if (strcmp(verb, "create") == 0) {
        rc = create(pg, argc, argv);
    } else if (strcmp(verb, "list") == 0) {
        int all = argc > 2 && strcmp(argv[2], "--all") == 0;
        if (argc > 2 && !all) {
            fprintf(stderr, "kactl token list: unexpected argument \"%s\"\n", argv[2]);
            rc = 2;
            goto out;
        }
        ka_pg_param_t p = {all ? "t" : "f", 0, 0};
        int n = 0;
        printf("%-12s  %-20s %-3s %-16s %-16s %-10s %s\n", "id", "node", "ops", "created (UTC)",
               "expires (UTC)", "state", "name");
        if (ka_pg_query(pg,
                        "SELECT id, node_id, CASE WHEN ops THEN 'yes' ELSE '' END, "
                        "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), "
                        "coalesce(to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), "
                        "'never'), CASE WHEN revoked_at IS NOT NULL THEN 'revoked' "
                        "WHEN expires_at <= now() THEN 'expired' ELSE 'in force' END, name "
                        "FROM api_token WHERE $1::boolean OR (revoked_at IS NULL AND "
                        "(expires_at IS NULL OR expires_at > now())) ORDER BY created_at, id",
                        1, &p, print_row, &n, err, sizeof err) != KA_OK) {
            fprintf(stderr, "kactl token list: %s\n", err);
            rc = 1;
        } else if (n == 0) {
            printf("no tokens%s\n", all ? "" : " in force (--all: every one)");
        }
    } else {
        if (argc != 3) {
            fprintf(stderr, "kactl token revoke: which token? kactl token revoke ID "
                            "(ids: kactl token list)\n");
            rc = 2;
            goto out;
        }
        ka_pg_param_t p = {argv[2], 0, 0};
        int rows = 0;
        if (ka_pg_query(pg,
                        "UPDATE api_token SET revoked_at = coalesce(revoked_at, now()) "
                        "WHERE id = $1 RETURNING id, '', '', '', '', 'revoked', name",
                        1, &p, print_row, &rows, err, sizeof err) != KA_OK) {
            fprintf(stderr, "kactl token revoke: %s\n", err);
            rc = 1;
        } else if (rows == 0) {
            fprintf(stderr, "kactl token revoke: no token \"%s\" (kactl token list --all)\n",
                    argv[2]);
            rc = 1;
        }
    }
out:
    ka_pg_free(pg);
    return rc;
}
