/* kactl: the admin command line of the key-account funnel engine. */
#include <stdio.h>
#include <string.h>

#include "ka_config.h"
#include "ka_log.h"
#include "kactl.h"

static int cmd_config(const ka_config_t *cfg, int argc, char **argv);

static const struct command {
    const char *name;
    kactl_cmd_fn fn;
    const char *summary;
} commands[] = {
    {"migrate", kactl_migrate, "apply the numbered SQL migrations to the database"},
    {"load", kactl_load, "load reference data (org tree, users, quotas, ...) from CSV"},
    {"config", cmd_config, "print every configuration variable, its default and meaning"},
    {"funnel", kactl_funnel, "show a node's funnel as a bar chart with each stage's health"},
    {"alerts", kactl_alerts, "list the alerts firing now (--all: resolved ones too)"},
    {"followups", kactl_followups,
     "list follow-ups under a node, overdue first, with each rep's visit coverage"},
    {"accounts", kactl_accounts,
     "list accounts under a node, biggest first: tier, 12-month revenue, visits, deals, alerts"},
    {"channel", kactl_channel,
     "distributors' sales quality (窜货, 压价) and the channel alerts firing"},
    {"flow", kactl_flow, "how a node's open pipeline moved between two days"},
    {"forecast", kactl_forecast, "show a node's forecast, raw and adjusted, quota and gap"},
    {"accuracy", kactl_accuracy, "how close a node's forecast came to what it booked, by lead"},
    {"baselines", kactl_baselines, "a node's funnel baselines in force: explicit and derived"},
    {"assessments", kactl_assessments,
     "the value assessments (商机价值评估) of the deals under a node, best first"},
    {"planning", kactl_planning, "the production-planning feed: demand per SKU, month, division"},
    {"baseline-from-funnel", kactl_baseline_from_funnel,
     "make today's funnel the baseline of every node and stage"},
    {"deadletters", kactl_deadletters, "list dead letters, newest first (--reason, --pending)"},
    {"redrive", kactl_redrive, "produce dead letters again to their source topic after a fix"},
    {"rebuild-cache", kactl_rebuild_cache, "have every worker rebuild its Redis cache"},
    {"replay", kactl_replay, "move a consumer group's stored offsets back to read a range again"},
    {"timeline", kactl_timeline, "an account's visits, opportunity and order events, alerts"},
    {"alertmanager-config", kactl_alertmanager_config,
     "write alertmanager.yml: each alert routed to its manager from the org tree"},
    {"token", kactl_token, "HTTP API bearer tokens: create (printed once), list, revoke"},
    {"retention", kactl_retention,
     "the growing logs' partitions and retention (apply: create ahead, drop old)"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: kactl [--config FILE] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-21s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n`kactl COMMAND --help` describes a command. Configuration comes from KA_* "
                 "environment variables,\noverridden by a KEY=VALUE file given with --config or "
                 "KA_CONFIG_FILE (see `kactl config`).\n");
}

static int cmd_config(const ka_config_t *cfg, int argc, char **argv)
{
    (void)cfg;
    if (argc > 1) {
        if (strcmp(argv[1], "--help") == 0) {
            printf("usage: kactl config\n\nPrints the configuration variables as a markdown "
                   "table.\n");
            return 0;
        }
        fprintf(stderr, "kactl config: unexpected argument \"%s\" (it takes none)\n", argv[1]);
        return 2;
    }
    ka_config_describe(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    const char *config_file = NULL;
    char err[KA_ERRSTR_SIZE];
    int i = 1;

    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_file = argv[i + 1];
            i += 2;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "kactl: unknown option \"%s\"\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    for (size_t c = 0; c < NCOMMANDS; c++) {
        if (strcmp(commands[c].name, argv[i]) != 0)
            continue;
        ka_config_t *cfg = ka_config_load("kactl", config_file, err, sizeof err);
        if (!cfg) {
            fprintf(stderr, "kactl: %s\n", err);
            return 1;
        }
        ka_log_init("kactl", ka_config_str(cfg, "KA_LOG_LEVEL"));
        int rc = commands[c].fn(cfg, argc - i, argv + i);
        ka_config_free(cfg);
        return rc;
    }
    fprintf(stderr, "kactl: unknown command \"%s\"\n\n", argv[i]);
    usage(stderr);
    return 2;
}
