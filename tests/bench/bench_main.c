#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "ka_config.h"
#include "ka_kafka.h"

static ka_config_t *cfg;

int64_t bench_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *bench_brokers(void)
{
    return ka_config_str(cfg, "KA_KAFKA_BROKERS");
}

const char *bench_dsn(void)
{
    return ka_config_str(cfg, "KA_PG_DSN");
}

int bench_topics(int argc, char **argv)
{
    char err[512], *end;
    long parts = argc > 0 ? strtol(argv[0], &end, 10) : 0;
    if (argc < 2 || *end || parts < 1 || parts > 1000) {
        fprintf(stderr, "ka-bench topics: expects PARTITIONS (1 to 1000) and topic names\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (ka_kafka_create_topic(bench_brokers(), argv[i], (int)parts, err, sizeof err) != KA_OK) {
            fprintf(stderr, "ka-bench topics: %s\n", err);
            return 1;
        }
    }
    printf("{\"topics\":%d,\"partitions\":%ld}\n", argc - 1, parts);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: ka-bench topics PARTITIONS TOPIC...\n"
                 "       ka-bench consume TOPIC...\n"
                 "       ka-bench pgload ROWS\n"
                 "       ka-bench latency INPUT_TOPIC ALERT_TOPIC SECONDS\n"
                 "       ka-bench alert ALERT_TOPIC HOOK_PORT EVENTS RATE\n"
                 "       ka-bench api PORT TOKEN SECONDS RATE CONNS PATH...\n\n"
                 "The benchmark's measuring tools (tests/bench/run drives them); each prints\n"
                 "one JSON object. Servers from KA_KAFKA_BROKERS and KA_PG_DSN.\n");
}

int main(int argc, char **argv)
{
    char err[512];
    int rc = 2;
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    cfg = ka_config_load("ka-bench", NULL, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "ka-bench: %s\n", err);
        return 1;
    }
    if (strcmp(argv[1], "topics") == 0)
        rc = bench_topics(argc - 2, argv + 2);
    else if (strcmp(argv[1], "consume") == 0)
        rc = bench_consume(argc - 2, argv + 2);
    else if (strcmp(argv[1], "pgload") == 0)
        rc = bench_pgload(argc - 2, argv + 2);
    else if (strcmp(argv[1], "latency") == 0)
        rc = bench_latency(argc - 2, argv + 2);
    else if (strcmp(argv[1], "alert") == 0)
        rc = bench_alert(argc - 2, argv + 2);
    else if (strcmp(argv[1], "api") == 0)
        rc = bench_api(argc - 2, argv + 2);
    else {
        fprintf(stderr, "ka-bench: unknown command \"%s\"\n\n", argv[1]);
        usage(stderr);
    }
    ka_config_free(cfg);
    return rc;
}
