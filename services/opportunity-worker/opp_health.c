#include <string.h>

#include "opp_health.h"

opp_health_t opp_health_eval(int64_t current, int64_t baseline, opp_health_t previous,
                             int warning_bp, int hysteresis_bp, int64_t *ratio_bp)
{
    if (baseline <= 0) {
        *ratio_bp = -1;
        return OPP_HEALTH_NO_BASELINE;
    }
    int64_t ratio = current * 10000 / baseline;
    *ratio_bp = ratio;
    if (previous == OPP_HEALTH_WARNING && ratio < (int64_t)warning_bp + hysteresis_bp)
        return OPP_HEALTH_WARNING;
    if (ratio < warning_bp)
        return OPP_HEALTH_WARNING;
    return ratio > 10000 ? OPP_HEALTH_EXCELLENT : OPP_HEALTH_GOOD;
}

static const char *names[] = {"no_baseline", "excellent", "good", "warning"};

const char *opp_health_name(opp_health_t h)
{
    return names[h];
}

opp_health_t opp_health_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, names[i]) == 0)
            return (opp_health_t)i;
    return OPP_HEALTH_NO_BASELINE;
}
