#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "api_pool.h"
#include "ka_log.h"

#define REDIS_RETRY_MS 2000

struct api_pool {
    const ka_config_t *cfg;
    api_conn_t *c;
    long long *redis_retry_at;
    int n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int pg_up;
};

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

api_pool_t *api_pool_new(const ka_config_t *cfg, int n)
{
    api_pool_t *p = ka_calloc(1, sizeof *p);
    p->cfg = cfg;
    p->n = n;
    p->c = ka_calloc((size_t)n, sizeof *p->c);
    p->redis_retry_at = ka_calloc((size_t)n, sizeof *p->redis_retry_at);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    atomic_store(&p->pg_up, 1);
    return p;
}

void api_pool_free(api_pool_t *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++) {
        ka_pg_free(p->c[i].pg);
        ka_redis_free(p->c[i].rds);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->c);
    free(p->redis_retry_at);
    free(p);
}

api_conn_t *api_pool_take(api_pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    for (;;) {
        for (int i = 0; i < p->n; i++)
            if (!p->c[i].busy) {
                p->c[i].busy = 1;
                pthread_mutex_unlock(&p->mu);
                return &p->c[i];
            }
        pthread_cond_wait(&p->cv, &p->mu);
    }
}

void api_pool_give(api_pool_t *p, api_conn_t *c)
{
    pthread_mutex_lock(&p->mu);
    c->busy = 0;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int api_pool_pg(api_pool_t *p, api_conn_t *c, char *errstr, size_t errlen)
{
    if (c->pg && ka_pg_ok(c->pg))
        return 1;
    ka_pg_free(c->pg);
    c->nprepared = 0;
    c->pg = ka_pg_connect(ka_config_str(p->cfg, "KA_PG_DSN"), errstr, errlen);
    /* Timestamps in JSON come out in UTC whatever the server's zone. */
    if (c->pg && ka_pg_exec(c->pg, "SET TIME ZONE 'UTC'", errstr, errlen) != KA_OK) {
        ka_pg_free(c->pg);
        c->pg = NULL;
    }
    api_pool_note_pg(p, c->pg != NULL);
    return c->pg != NULL;
}

ka_redis_t *api_pool_redis(api_pool_t *p, api_conn_t *c)
{
    char err[KA_ERRSTR_SIZE];
    if (c->rds)
        return c->rds;
    long long *retry = &p->redis_retry_at[c - p->c];
    if (*retry && mono_ms() < *retry)
        return NULL;
    c->rds = ka_redis_connect_config(p->cfg, (int)ka_config_int(p->cfg, "KA_REDIS_TIMEOUT_MS"), err,
                                     sizeof err);
    if (!c->rds) {
        *retry = mono_ms() + REDIS_RETRY_MS;
        ka_log(KA_LOG_WARN, "Redis unreachable: figures from PostgreSQL", "{s:s}", "error", err);
    }
    return c->rds;
}

int api_pool_pg_up(api_pool_t *p)
{
    return atomic_load(&p->pg_up);
}

void api_pool_note_pg(api_pool_t *p, int up)
{
    int was = atomic_exchange(&p->pg_up, up);
    if (was && !up)
        ka_log(KA_LOG_WARN, "PostgreSQL unreachable: answering 503", NULL);
    else if (!was && up)
        ka_log(KA_LOG_INFO, "PostgreSQL reachable again", NULL);
}
