/* kactl alertmanager-config on the sample company (tests/run loads it): the
 * file it writes passes `amtool check-config`, and `amtool config routes
 * test` (Alertmanager's own router) sends each alert where the org tree
 * says: a team's to its manager, critical ones also to the region head,
 * forecast gaps also to the division head, a region's own to its head,
 * anything without an org path to the company head; a manager without a
 * contact is escalated; a bad contacts file is refused line by line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "it_util.h"

static const char *kactl, *sample;
static char dir[64];

/* Runs a shell command; returns its exit code, its output (stdout and
 * stderr) in out. */
static int sh(const char *cmd, char *out, size_t len)
{
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    return it_sh(full, out, len);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Generates FILE from `contacts` (a path) with extra flags; returns kactl's
 * exit code. */
static int generate(const char *contacts, const char *flags, const char *outfile, char *out,
                    size_t len)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s alertmanager-config --contacts %s --out %s %s", kactl,
             contacts, outfile, flags ? flags : "");
    return sh(cmd, out, len);
}

/* The receivers Alertmanager's router picks for a label set, comma-joined. */
static void routes_test(const char *file, const char *labels, char *out, size_t len)
{
    char cmd[2048];
    /* amtool warns on stderr that the file overrides the URL: keep stdout. */
    snprintf(cmd, sizeof cmd, "amtool config routes test --config.file=%s %s 2>/dev/null",
             file, labels);
    assert_int_equal(it_sh(cmd, out, len), 0);
    out[strcspn(out, "\n")] = '\0';
}

static void assert_routes(const char *file, const char *labels, const char *want)
{
    char got[1024];
    routes_test(file, labels, got, sizeof got);
    if (strcmp(got, want) != 0)
        fail_msg("%s: routed to \"%s\", want \"%s\"", labels, got, want);
}

#define TEAM "team=ind-east-t1 region=ind-east division=div-ind"

static void sample_contacts_pass_amtool_check_config(void **state)
{
    /* kactl warns of every manager without a contact: in a database other
     * tests add org subtrees to, that is far more than a page */
    static char out[1 << 22];
    char file[128], contacts[512], cmd[512];
    (void)state;
    snprintf(file, sizeof file, "%s/sample.yml", dir);
    snprintf(contacts, sizeof contacts, "%s/contacts.csv", sample);
    assert_int_equal(generate(contacts, NULL, file, out, sizeof out), 0);
    assert_non_null(strstr(out, "receivers"));
    snprintf(cmd, sizeof cmd, "amtool check-config %s", file);
    if (sh(cmd, out, sizeof out) != 0)
        fail_msg("amtool check-config: %s", out);
    assert_non_null(strstr(out, "SUCCESS"));
    /* every sample manager has an e-mail address: nothing is escalated */
    assert_routes(file, TEAM " alertname=stalled_opportunity severity=warning",
                  "user-u-ind-east-t1");
}

static void routes_follow_the_org_tree(void **state)
{
    char out[8192], file[128], contacts[128], secret[128], cmd[512], flags[512];
    (void)state;
    snprintf(file, sizeof file, "%s/tree.yml", dir);
    snprintf(contacts, sizeof contacts, "%s/tree.csv", dir);
    snprintf(secret, sizeof secret, "%s/wechat-secret", dir);
    write_file(contacts, "user_id,channel,address\n"
                         "u-ind-east-t1,webhook,http://127.0.0.1:9/team\n"
                         "u-ind-east-t1,email,ind-east-t1@example.com\n"
                         "u-ind-east,webhook,http://127.0.0.1:9/region\n"
                         "u-div-ind,wechat,div-ind-wecom\n"
                         "u-hs,email,hs@example.com\n");
    write_file(secret, "not-a-real-secret\n");
    snprintf(flags, sizeof flags, "--group-wait 0s --wechat-corp-id test-corp "
                                  "--wechat-api-secret-file %s", secret);
    assert_int_equal(generate(contacts, flags, file, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd, "amtool check-config %s", file);
    if (sh(cmd, out, sizeof out) != 0)
        fail_msg("amtool check-config: %s", out);
    /* the WeCom secret is in the file: its owner's only */
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    assert_routes(file, TEAM " rep=rep-ind-east-t1-01 alertname=stalled_opportunity "
                        "severity=warning", "user-u-ind-east-t1");
    assert_routes(file, TEAM " alertname=churn_risk severity=critical",
                  "user-u-ind-east,user-u-ind-east-t1");
    assert_routes(file, TEAM " alertname=forecast_gap severity=warning",
                  "user-u-div-ind,user-u-ind-east-t1");
    assert_routes(file, "region=ind-east division=div-ind alertname=forecast_gap "
                        "severity=warning", "user-u-div-ind,user-u-ind-east");
    assert_routes(file, "region=ind-east division=div-ind alertname=funnel_health "
                        "severity=warning", "user-u-ind-east");
    assert_routes(file, "division=div-ind alertname=forecast_gap severity=critical",
                  "user-u-div-ind");
    /* channel alerts have no org path */
    assert_routes(file, "alertname=channel_diversion distributor=dst-sh-hengtong "
                        "severity=warning", "user-u-hs");
    /* the other teams' managers have no contact: up to the nearest who has */
    assert_routes(file, "team=ind-east-t2 region=ind-east division=div-ind "
                        "alertname=visit_overdue severity=warning", "user-u-ind-east");
    assert_routes(file, "team=enr-east-t1 region=enr-east division=div-enr "
                        "alertname=visit_overdue severity=warning", "user-u-hs");

    /* group_wait as asked, grouping by team and type, the inhibition */
    /* the whole file: a test database shared with other tests' org nodes
     * makes it longer than any fixed buffer */
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    assert_true(size > 0);
    rewind(f);
    char *yml = malloc((size_t)size + 1);
    assert_non_null(yml);
    size_t n = fread(yml, 1, (size_t)size, f);
    yml[n] = '\0';
    fclose(f);
    assert_non_null(strstr(yml, "group_wait: 0s"));
    assert_non_null(strstr(yml, "group_by: [team, alertname]"));
    assert_non_null(strstr(yml, "source_matchers: ['alertname=\"churn_risk\"', "
                                "'severity=\"critical\"']"));
    assert_non_null(strstr(yml, "equal: [account]"));
    free(yml);
}

static void escalation_is_named(void **state)
{
    static char out[1 << 22]; /* as above */
    char file[128], contacts[128];
    (void)state;
    snprintf(file, sizeof file, "%s/escalate.yml", dir);
    snprintf(contacts, sizeof contacts, "%s/escalate.csv", dir);
    write_file(contacts, "user_id,channel,address\nu-ind-east,email,ind-east@example.com\n");
    assert_int_equal(generate(contacts, NULL, file, out, sizeof out), 0);
    assert_non_null(strstr(out, "u-ind-east-t1 (manager of ind-east-t1) has no contact: "
                                "ind-east-t1 alerts go to u-ind-east"));
    assert_non_null(strstr(out, "u-hs (manager of hs) has no contact: hs alerts go to nobody"));
    assert_routes(file, TEAM " alertname=visit_overdue severity=warning", "user-u-ind-east");
    /* nobody above a division without contacts: a receiver that delivers nowhere */
    assert_routes(file, "division=div-enr alertname=forecast_gap severity=warning",
                  "ka-nowhere");
}

static void bad_contacts_are_refused_by_line(void **state)
{
    static char out[1 << 22]; /* as above */
    char file[128], contacts[128];
    (void)state;
    snprintf(file, sizeof file, "%s/bad.yml", dir);
    snprintf(contacts, sizeof contacts, "%s/bad.csv", dir);
    write_file(contacts, "user_id,channel,address\n"
                         "u-nobody,email,x@example.com\n"
                         "u-hs,pager,123\n"
                         "u-hs,webhook,ftp://example.com/x\n"
                         "u-hs,email,not-an-address\n"
                         "u-hs,email,hs@example.com\n"
                         "u-hs,email,hs@example.com\n");
    assert_int_equal(generate(contacts, NULL, file, out, sizeof out), 1);
    assert_non_null(strstr(out, "bad.csv:2: field user_id: no such user"));
    assert_non_null(strstr(out, "bad.csv:3: field channel"));
    assert_non_null(strstr(out, "bad.csv:4: field address: a webhook needs"));
    assert_non_null(strstr(out, "bad.csv:5: field address: not an e-mail address"));
    assert_non_null(strstr(out, "bad.csv:7: the same contact is given twice"));
    assert_int_equal(access(file, F_OK), -1); /* nothing written */

    write_file(contacts, "user_id,channel,address\nu-hs,wechat,hs\n");
    assert_int_equal(generate(contacts, NULL, file, out, sizeof out), 2);
    assert_non_null(strstr(out, "--wechat-corp-id"));
    write_file(contacts, "user,channel,address\n");
    assert_int_equal(generate(contacts, NULL, file, out, sizeof out), 1);
    assert_non_null(strstr(out, "bad.csv:1: expected the header user_id,channel,address"));
    assert_int_equal(generate(contacts, "--group-wait 30", file, out, sizeof out), 2);
    assert_non_null(strstr(out, "--group-wait expects a duration"));
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s KACTL SAMPLE_DIR\n", argv[0]);
        return 2;
    }
    kactl = argv[1];
    sample = argv[2];
    snprintf(dir, sizeof dir, "/tmp/ka-amconfig-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sample_contacts_pass_amtool_check_config),
        cmocka_unit_test(routes_follow_the_org_tree),
        cmocka_unit_test(escalation_is_named),
        cmocka_unit_test(bad_contacts_are_refused_by_line),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}
