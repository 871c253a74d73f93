/* ka-bench api: ka-api's answer time under a fixed request rate. CONNS
 * threads, each with one keep-alive HTTP/1.1 connection, send GETs of PATHS
 * in turn on a fixed schedule (RATE per second over all of them) for
 * SECONDS; a request's time runs from when it was due, not when it went
 * out, so a server that falls behind shows in the figures (no coordinated
 * omission). Prints per path the count, non-200 answers and p50/p99/max. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define MAX_PATHS 4
#define MAX_CONNS 64

typedef struct job {
    int port, conns, npaths, idx;
    double rate, seconds;
    const char *token;
    const char *paths[MAX_PATHS];
    int64_t start_us;
    /* results of this thread, per path */
    double *lat_ms[MAX_PATHS];
    size_t n[MAX_PATHS], cap[MAX_PATHS], bad[MAX_PATHS];
    int failed;
} job_t;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads one answer (headers, then Content-Length bytes); its status, or -1. */
static int read_answer(int fd, char *buf, size_t cap)
{
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        if (have + 1 >= cap)
            return -1;
        ssize_t r = read(fd, buf + have, cap - 1 - have);
        if (r <= 0)
            return -1;
        have += (size_t)r;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    long clen = 0;
    for (char *h = strstr(buf, "\r\n"); h && h < end; h = strstr(h + 2, "\r\n"))
        if (strncasecmp(h + 2, "Content-Length:", 15) == 0)
            clen = strtol(h + 17, NULL, 10);
    size_t body_have = have - (size_t)(end + 4 - buf);
    while ((long)body_have < clen) {
        ssize_t r = read(fd, buf, cap);
        if (r <= 0)
            return -1;
        body_have += (size_t)r;
    }
    return status;
}

static void *worker(void *arg)
{
    job_t *j = arg;
    char req[1024], *buf = malloc(1 << 20);
    int fd = dial(j->port);
    if (fd < 0 || !buf) {
        j->failed = 1;
        free(buf);
        return NULL;
    }
    double interval_us = 1e6 * j->conns / j->rate;
    int64_t end = j->start_us + (int64_t)(j->seconds * 1e6);
    /* threads spread over the interval, so the load is even */
    for (long k = 0;; k++) {
        int64_t due = j->start_us + (int64_t)((k + (double)j->idx / j->conns) * interval_us);
        if (due >= end)
            break;
        int64_t t = now_us();
        if (due > t) {
            struct timespec ts = {(time_t)((due - t) / 1000000), (long)((due - t) % 1000000) * 1000};
            nanosleep(&ts, NULL);
        }
        int p = (int)((k + j->idx) % j->npaths);
        int len = snprintf(req, sizeof req,
                           "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n",
                           j->paths[p], j->token);
        int status = -1;
        for (int attempt = 0; attempt < 2 && status < 0; attempt++) {
            if (write(fd, req, (size_t)len) == len)
                status = read_answer(fd, buf, 1 << 20);
            if (status < 0) { /* the server closed: a new connection, once */
                close(fd);
                fd = dial(j->port);
                if (fd < 0)
                    break;
            }
        }
        double ms = (double)(now_us() - due) / 1000.0;
        if (j->n[p] == j->cap[p]) {
            j->cap[p] = j->cap[p] ? 2 * j->cap[p] : 1024;
            j->lat_ms[p] = realloc(j->lat_ms[p], j->cap[p] * sizeof(double));
        }
        j->lat_ms[p][j->n[p]++] = ms;
        if (status != 200)
            j->bad[p]++;
        if (fd < 0) {
            j->failed = 1;
            break;
        }
    }
    if (fd >= 0)
        close(fd);
    free(buf);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

int bench_api(int argc, char **argv)
{
    if (argc < 6 || argc > 5 + MAX_PATHS) {
        fprintf(stderr, "ka-bench api: expects PORT TOKEN SECONDS RATE CONNS PATH...\n");
        return 2;
    }
    int port = atoi(argv[0]), conns = atoi(argv[4]);
    double seconds = atof(argv[2]), rate = atof(argv[3]);
    if (port < 1 || seconds <= 0 || rate <= 0 || conns < 1 || conns > MAX_CONNS) {
        fprintf(stderr, "ka-bench api: bad PORT, SECONDS, RATE or CONNS (1 to %d)\n", MAX_CONNS);
        return 2;
    }
    job_t *jobs = calloc((size_t)conns, sizeof *jobs);
    pthread_t th[MAX_CONNS];
    int64_t start = now_us() + 100000;
    for (int i = 0; i < conns; i++) {
        jobs[i] = (job_t){.port = port, .conns = conns, .npaths = argc - 5, .idx = i,
                          .rate = rate, .seconds = seconds, .token = argv[1], .start_us = start};
        for (int p = 0; p < argc - 5; p++)
            jobs[i].paths[p] = argv[5 + p];
        pthread_create(&th[i], NULL, worker, &jobs[i]);
    }
    int failed = 0;
    for (int i = 0; i < conns; i++) {
        pthread_join(th[i], NULL);
        failed |= jobs[i].failed;
    }
    printf("{\"rate\":%.0f,\"connections\":%d,\"seconds\":%.1f,\"paths\":[", rate, conns, seconds);
    for (int p = 0; p < argc - 5; p++) {
        size_t n = 0, bad = 0;
        for (int i = 0; i < conns; i++)
            n += jobs[i].n[p], bad += jobs[i].bad[p];
        double *all = malloc((n ? n : 1) * sizeof(double));
        size_t k = 0;
        for (int i = 0; i < conns; i++) {
            memcpy(all + k, jobs[i].lat_ms[p], jobs[i].n[p] * sizeof(double));
            k += jobs[i].n[p];
            free(jobs[i].lat_ms[p]);
        }
        qsort(all, n, sizeof(double), cmp_double);
        printf("%s{\"path\":\"%s\",\"requests\":%zu,\"not_ok\":%zu,\"p50_ms\":%.2f,"
               "\"p99_ms\":%.2f,\"max_ms\":%.2f}",
               p ? "," : "", argv[5 + p], n, bad, pct(all, n, 0.50), pct(all, n, 0.99),
               n ? all[n - 1] : 0.0);
        free(all);
    }
    printf("]}\n");
    free(jobs);
    if (failed)
        fprintf(stderr, "ka-bench api: a connection could not be (re)opened\n");
    return failed ? 1 : 0;
}
