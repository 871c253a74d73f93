#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "ka_log.h"
#include "ka_signal.h"
#include "ka_worker_internal.h"

/* The outbox relay, in a thread of its own. The loop used to run a relay
 * round after every commit and wait for it (select, produce, Kafka's
 * acknowledgement, mark) before polling the next batch: at a fixed rate that
 * wait was part of every batch's cycle. Now the loop only wakes this thread
 * after a commit and goes on; the thread runs the same rounds
 * (ka_relay_round, on the relay's own PostgreSQL connection and producer):
 * one relay publishing at a time under the advisory lock, the unpublished
 * rows in id order, a row marked published only after its delivery report,
 * the producer recreated after a fatal error. A round in progress when
 * another commit wakes the thread is followed by another round at once, so
 * what that commit wrote goes out next. */

/* Without a wake-up a round runs this often anyway: it publishes what other
 * instances (while this one holds the lock) and crashed ones left, and lets a
 * relay that is not the leader try the lock. The loop used to do the same
 * from its idle poll (100 ms). */
#define RELAY_IDLE_MS 100
/* After a failed round (PostgreSQL or Kafka unavailable) the next one waits
 * this long, wake-ups or not. */
#define RELAY_BACKOFF_MS 100
/* Rounds in a row while rows are pending before the thread looks at its
 * flags again (the loop's relay used to stop after as many). */
#define RELAY_MAX_ROUNDS 100

struct ka_relay_thread {
    ka_worker_t *w;
    pthread_t th;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int woken, quit;       /* under lock */
    double woken_s;        /* under lock: the first wake-up not yet served */
    _Atomic unsigned long long published;
    ka_series_t *wait;     /* wake-up -> the round that serves it */
};

static void deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static int stop_wanted(ka_relay_thread_t *rt)
{
    return ka_signal_stop_requested() || atomic_load(&rt->w->stop);
}

/* Rounds while rows are pending; a deadline (>= 0) bounds the rounds after
 * the first, else they end early when `stop` says so. Returns the result of
 * the last round. */
static ka_err_t rounds(ka_relay_t *relay, _Atomic unsigned long long *count, int64_t deadline_ms,
                       int (*stop)(void *), void *ud)
{
    char err[KA_ERRSTR_SIZE];
    int published = 0, pending = 1;
    ka_err_t rc = KA_OK;
    for (int n = 0; pending && n < RELAY_MAX_ROUNDS; n++) {
        if (n > 0 && (deadline_ms >= 0 ? mono_ms() >= deadline_ms : stop(ud)))
            break;
        rc = ka_relay_round(relay, &published, &pending, err, sizeof err);
        atomic_fetch_add(count, (unsigned long long)published);
        if (rc != KA_OK) {
            ka_log(KA_LOG_WARN, "outbox relay round failed", "{s:s}", "error", err);
            break;
        }
    }
    return rc;
}

static int thread_stop(void *ud)
{
    ka_relay_thread_t *rt = ud;
    pthread_mutex_lock(&rt->lock);
    int quit = rt->quit;
    pthread_mutex_unlock(&rt->lock);
    return quit || stop_wanted(rt);
}

static void *relay_main(void *arg)
{
    ka_relay_thread_t *rt = arg;
    int backoff = 0;
    pthread_mutex_lock(&rt->lock);
    for (;;) {
        struct timespec until;
        deadline_after(&until, backoff ? RELAY_BACKOFF_MS : RELAY_IDLE_MS);
        /* After a failure the back-off runs out whatever wakes us. */
        while (!rt->quit && (backoff || !rt->woken))
            if (pthread_cond_timedwait(&rt->cond, &rt->lock, &until) == ETIMEDOUT)
                break;
        if (rt->quit)
            break;
        if (rt->woken)
            ka_metrics_observe(rt->wait, mono_s() - rt->woken_s);
        rt->woken = 0;
        pthread_mutex_unlock(&rt->lock);
        backoff = rounds(rt->w->relay, &rt->published, -1, thread_stop, rt) != KA_OK;
        pthread_mutex_lock(&rt->lock);
    }
    pthread_mutex_unlock(&rt->lock);
    return NULL;
}

static int loop_stop(void *ud)
{
    (void)ud;
    return ka_worker_should_stop();
}

void ka_worker_relay_round(ka_worker_t *w, int64_t deadline_ms)
{
    double t = mono_s();
    _Atomic unsigned long long count = 0;
    rounds(w->relay, &count, deadline_ms, loop_stop, NULL);
    w->stats.published += atomic_load(&count);
    ka_worker_step_done(w, STEP_RELAY, t);
}

ka_err_t ka_worker_relay_start(ka_worker_t *w, char *errstr, size_t errlen)
{
    ka_relay_thread_t *rt = ka_calloc(1, sizeof *rt);
    pthread_condattr_t ca;
    rt->w = w;
    atomic_init(&rt->published, w->stats.published);
    pthread_mutex_init(&rt->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rt->cond, &ca);
    pthread_condattr_destroy(&ca);
    rt->wait = ka_metrics_series(
        ka_metrics_histogram(ka_metrics_global(), "ka_outbox_relay_wait_seconds",
                             "From a commit waking the outbox relay to the round that publishes "
                             "what it wrote",
                             NULL, KA_METRICS_RTT_BUCKETS, KA_METRICS_RTT_NBUCKETS),
        NULL);
    if (pthread_create(&rt->th, NULL, relay_main, rt) != 0) {
        snprintf(errstr, errlen, "cannot start the outbox relay thread");
        pthread_cond_destroy(&rt->cond);
        pthread_mutex_destroy(&rt->lock);
        free(rt);
        return KA_ERR;
    }
    w->relay_thread = rt;
    return KA_OK;
}

void ka_worker_relay_wake(ka_worker_t *w)
{
    ka_relay_thread_t *rt = w->relay_thread;
    double t = mono_s();
    if (!rt) { /* no thread (it could not start): publish here, as before */
        ka_worker_relay_round(w, -1);
        return;
    }
    pthread_mutex_lock(&rt->lock);
    if (!rt->woken) {
        rt->woken = 1;
        rt->woken_s = t;
    }
    pthread_cond_signal(&rt->cond);
    pthread_mutex_unlock(&rt->lock);
    w->stats.published = atomic_load(&rt->published);
    ka_worker_step_done(w, STEP_RELAY, t);
}

/* The SIGTERM drain: the round in progress finishes (its flush waits up to
 * 10 s), then the loop's thread publishes what is left within the deadline,
 * on the same relay. */
void ka_worker_relay_stop(ka_worker_t *w)
{
    ka_relay_thread_t *rt = w->relay_thread;
    if (!rt)
        return;
    pthread_mutex_lock(&rt->lock);
    rt->quit = 1;
    pthread_cond_signal(&rt->cond);
    pthread_mutex_unlock(&rt->lock);
    pthread_join(rt->th, NULL);
    w->stats.published = atomic_load(&rt->published);
    pthread_cond_destroy(&rt->cond);
    pthread_mutex_destroy(&rt->lock);
    free(rt);
    w->relay_thread = NULL;
}
