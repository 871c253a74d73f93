/* Crash points for the fault suite (see ka_fault.h). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ka_fault.h"
#include "ka_log.h"

#define POINT_LEN 32

static const char *const points[] = {"commit_before", "commit_sent",   "commit_after",
                                     "relay_before",  "relay_flushed", "relay_marked"};

static char armed_point[POINT_LEN];
static unsigned long armed_nth;
static atomic_ulong reached;
static pthread_once_t once = PTHREAD_ONCE_INIT;

int ka_fault_parse(const char *spec, char *point, unsigned long *nth, char *why, size_t whylen)
{
    const char *colon = strchr(spec, ':');
    char *end = NULL;
    size_t len = colon ? (size_t)(colon - spec) : 0;
    if (!colon || len == 0 || len >= POINT_LEN) {
        snprintf(why, whylen, "expected <point>:<n>, e.g. commit_sent:3");
        return 0;
    }
    memcpy(point, spec, len);
    point[len] = '\0';
    int known = 0;
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++)
        known |= strcmp(points[i], point) == 0;
    if (!known) {
        snprintf(why, whylen, "unknown point \"%s\" (commit_before, commit_sent, commit_after, "
                 "relay_before, relay_flushed, relay_marked)", point);
        return 0;
    }
    *nth = strtoul(colon + 1, &end, 10);
    if (*nth == 0 || end == colon + 1 || *end) {
        snprintf(why, whylen, "n must be a positive count, not \"%s\"", colon + 1);
        return 0;
    }
    return 1;
}

static void arm(void)
{
    const char *spec = getenv("KA_FAULT_CRASH_AT");
    char why[160];
    if (!spec || !*spec)
        return;
    if (!ka_fault_parse(spec, armed_point, &armed_nth, why, sizeof why)) {
        /* A test that asks for a crash it cannot have must not pass quietly. */
        ka_log(KA_LOG_ERROR, "KA_FAULT_CRASH_AT is malformed", "{s:s,s:s}", "value", spec,
               "error", why);
        abort();
    }
    ka_log(KA_LOG_WARN, "fault injection armed: this process will kill itself", "{s:s,s:i}",
           "point", armed_point, "nth", (int)armed_nth);
}

void ka_fault_point(const char *point)
{
    pthread_once(&once, arm);
    if (!armed_nth || strcmp(point, armed_point) != 0)
        return;
    if (atomic_fetch_add(&reached, 1) + 1 != armed_nth)
        return;
    ka_log(KA_LOG_WARN, "fault injection: crash point reached", "{s:s,s:i}", "point", point,
           "nth", (int)armed_nth);
    kill(getpid(), SIGKILL);
    pause(); /* SIGKILL cannot be caught: nothing after this runs */
}
