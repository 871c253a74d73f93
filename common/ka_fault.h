#ifndef KA_FAULT_H
#define KA_FAULT_H

/* Crash points for the fault suite (tests/fault/test_crash_points.py): with
 * KA_FAULT_CRASH_AT=<point>:<n> in the environment the process SIGKILLs
 * itself the n-th time it reaches <point>, so a test can stop a worker at an
 * exact instant of a transaction or of the outbox relay rather than wherever
 * a signal happens to land. Not a configuration key: deployments never set
 * it, and unset it costs one comparison per point.
 *
 * Points (their names are what the variable takes):
 *   commit_before  a transaction fully queued, its pipeline not synced: COMMIT
 *                  is not sent yet, unless the queue outgrew libpq's output
 *                  buffer (the server runs each statement as it arrives)
 *   commit_sent    COMMIT sent to PostgreSQL, its answer not read
 *   commit_after   committed, nothing done after it (cache, relay)
 *   relay_before   outbox rows read, none handed to Kafka
 *   relay_flushed  rows produced and flushed, not yet marked published
 *   relay_marked   rows marked published */
void ka_fault_point(const char *point);

/* Whether `spec` (the variable's value) is well formed: 1, else 0 with why. */
int ka_fault_parse(const char *spec, char *point, unsigned long *nth, char *why, size_t whylen);

#endif
