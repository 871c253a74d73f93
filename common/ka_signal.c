#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "ka_signal.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    if (stop_requested)
        _exit(1); /* second signal: the operator wants out now */
    stop_requested = 1;
}

void ka_signal_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int ka_signal_stop_requested(void)
{
    return stop_requested != 0;
}

void ka_signal_request_stop(void)
{
    stop_requested = 1;
}

void ka_signal_reset(void)
{
    stop_requested = 0;
}
