#include <stdio.h>
#include <string.h>

#include "ui.h"

const char *kactl_val(const ka_pgres_t *res, int row, int col)
{
    const char *v = ka_pgres_value(res, row, col);
    return v ? v : "";
}

void kactl_money(long long minor, int cents, char *out, size_t len)
{
    char digits[32], grouped[48];
    long long a = minor < 0 ? -minor : minor;
    long long whole = cents ? a / 100 : (a + 50) / 100;
    int n = snprintf(digits, sizeof digits, "%lld", whole), g = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            grouped[g++] = ',';
        grouped[g++] = digits[i];
    }
    grouped[g] = '\0';
    const char *sign = minor < 0 && (cents || whole) ? "-" : "";
    if (cents)
        snprintf(out, len, "%s%s.%02lld", sign, grouped, a % 100);
    else
        snprintf(out, len, "%s%s", sign, grouped);
}

/* East Asian wide characters take two columns. */
static int cp_width(unsigned cp)
{
    return (cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF) ||
                   (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
                   (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
                   (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x20000 && cp <= 0x3FFFD)
               ? 2
               : 1;
}

void kactl_put_cell(const char *s, int cols)
{
    const unsigned char *p = (const unsigned char *)s;
    int used = 0;
    while (*p) {
        unsigned cp = *p;
        int n = 1;
        if (cp >= 0xF0 && p[1] && p[2] && p[3]) {
            cp = ((cp & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) |
                 (p[3] & 0x3Fu);
            n = 4;
        } else if (cp >= 0xE0 && p[1] && p[2]) {
            cp = ((cp & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
            n = 3;
        } else if (cp >= 0xC0 && p[1]) {
            cp = ((cp & 0x1Fu) << 6) | (p[1] & 0x3Fu);
            n = 2;
        }
        int w = cp_width(cp);
        if (used + w > cols - (p[n] ? 1 : 0)) /* keep a column for the "~" */
            break;
        fwrite(p, 1, (size_t)n, stdout);
        used += w;
        p += n;
    }
    if (*p) {
        putchar('~');
        used++;
    }
    for (; used < cols; used++)
        putchar(' ');
}

static int read_node(void *ud, const ka_pgres_t *res)
{
    kactl_node_t *n = ud;
    if (ka_pgres_rows(res) == 1) {
        n->found = 1;
        snprintf(n->kind, sizeof n->kind, "%s", kactl_val(res, 0, 0));
        snprintf(n->name, sizeof n->name, "%s", kactl_val(res, 0, 1));
    }
    return 0;
}

static int read_text(void *ud, const ka_pgres_t *res)
{
    if (ka_pgres_rows(res) == 1)
        snprintf(ud, 512, "%s", kactl_val(res, 0, 0));
    return 0;
}

int kactl_find_node(ka_pg_t *pg, const char *cmd, const char *id, int optional,
                    kactl_node_t *out)
{
    char err[KA_ERRSTR_SIZE], examples[512] = "";
    ka_pg_param_t p = {id, 0, 0};
    memset(out, 0, sizeof *out);
    if (ka_pg_query(pg, "SELECT kind, name FROM org_node WHERE id = $1", 1, &p, read_node, out,
                    err, sizeof err) != KA_OK ||
        (!out->found &&
         ka_pg_query(pg, "SELECT string_agg(id, ', ' ORDER BY k, id) FROM (SELECT id, "
                         "ka_org_kind_level(kind) AS k FROM org_node WHERE kind IN "
                         "('company', 'division') ORDER BY 2, 1 LIMIT 6) e",
                     0, NULL, read_text, examples, err, sizeof err) != KA_OK)) {
        fprintf(stderr, "kactl %s: %s\n", cmd, err);
        return 1;
    }
    if (out->found)
        return 0;
    fprintf(stderr, "kactl %s: no org node \"%s\"; give a company, division, region, team or "
                    "rep id (%s%s)%s\n",
            cmd, id, examples[0] ? "e.g. " : "no org tree loaded: kactl load sample", examples,
            optional ? ", or none for the whole company" : "");
    return 2;
}
