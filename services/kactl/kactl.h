#ifndef KACTL_H
#define KACTL_H

#include "ka_config.h"

/* One admin command: argv[0] is the command's name. Returns the process exit
 * code: 0 done, 1 failed (message printed), 2 bad usage (usage printed). */
typedef int (*kactl_cmd_fn)(const ka_config_t *cfg, int argc, char **argv);

int kactl_migrate(const ka_config_t *cfg, int argc, char **argv);
int kactl_load(const ka_config_t *cfg, int argc, char **argv);
int kactl_funnel(const ka_config_t *cfg, int argc, char **argv);
int kactl_alerts(const ka_config_t *cfg, int argc, char **argv);
int kactl_followups(const ka_config_t *cfg, int argc, char **argv);
int kactl_accounts(const ka_config_t *cfg, int argc, char **argv);
int kactl_channel(const ka_config_t *cfg, int argc, char **argv);
int kactl_flow(const ka_config_t *cfg, int argc, char **argv);
int kactl_forecast(const ka_config_t *cfg, int argc, char **argv);
int kactl_planning(const ka_config_t *cfg, int argc, char **argv);
int kactl_baseline_from_funnel(const ka_config_t *cfg, int argc, char **argv);

int kactl_deadletters(const ka_config_t *cfg, int argc, char **argv);
int kactl_redrive(const ka_config_t *cfg, int argc, char **argv);
int kactl_rebuild_cache(const ka_config_t *cfg, int argc, char **argv);
int kactl_replay(const ka_config_t *cfg, int argc, char **argv);
int kactl_timeline(const ka_config_t *cfg, int argc, char **argv);
int kactl_token(const ka_config_t *cfg, int argc, char **argv);
int kactl_assessments(const ka_config_t *cfg, int argc, char **argv);
int kactl_accuracy(const ka_config_t *cfg, int argc, char **argv);
int kactl_baselines(const ka_config_t *cfg, int argc, char **argv);

int kactl_alertmanager_config(const ka_config_t *cfg, int argc, char **argv);
int kactl_retention(const ka_config_t *cfg, int argc, char **argv);
#endif
