#ifndef KA_SIGNAL_H
#define KA_SIGNAL_H

/* SIGTERM/SIGINT handling: the first signal only sets a flag that loops poll
 * (they then drain: finish the batch, commit, flush, exit 0); a second one
 * exits at once. */
void ka_signal_install(void);

/* Non-zero once a stop was requested (by a signal or ka_signal_request_stop). */
int ka_signal_stop_requested(void);

/* Requests a stop from inside the process (tests, fatal conditions). */
void ka_signal_request_stop(void);

/* Clears the flag (tests that run several loops in one process). */
void ka_signal_reset(void);

#endif
