#ifndef OPP_HEALTH_H
#define OPP_HEALTH_H

#include <stdint.h>

/* Funnel health (漏斗健康), DOMAIN.md section 4: ratio = current / baseline;
 * over 100% excellent, 70%-100% good (watch), under 70% warning. A stage in
 * warning stays there until the ratio clears the threshold plus a hysteresis
 * margin, so a ratio hovering at the line does not flap. */
typedef enum opp_health {
    OPP_HEALTH_NO_BASELINE = 0,
    OPP_HEALTH_EXCELLENT,
    OPP_HEALTH_GOOD,
    OPP_HEALTH_WARNING,
} opp_health_t;

/* The new status; *ratio_bp receives current/baseline in basis points (-1
 * without a usable baseline). */
opp_health_t opp_health_eval(int64_t current, int64_t baseline, opp_health_t previous,
                             int warning_bp, int hysteresis_bp, int64_t *ratio_bp);

/* "excellent", "good", "warning", "no_baseline" (funnel_health.status). */
const char *opp_health_name(opp_health_t h);
opp_health_t opp_health_parse(const char *name);

#endif
