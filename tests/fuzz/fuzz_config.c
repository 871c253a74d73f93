/* Fuzz target: configuration files (ka_config_load_env with an empty
 * environment). The input is written to a temporary file, which is reused
 * across calls and removed at exit. See tests/fuzz/README.md. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_contract.h"
#include "fuzz_tempfile.h"
#include "ka_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *const env[] = {NULL};
    char err[KA_ERRSTR_SIZE];

    const char *path = fuzz_write_temp("config", data, size);
    memset(err, 0x5a, sizeof err);
    ka_config_t *cfg = ka_config_load_env("fuzz-worker", path, env, err, sizeof err);
    if (cfg) {
        /* every value was validated at load */
        long long port = ka_config_int(cfg, "KA_REDIS_PORT");
        FUZZ_REQUIRE(port >= 1 && port <= 65535);
        long long batch = ka_config_int(cfg, "KA_BATCH_MAX_EVENTS");
        FUZZ_REQUIRE(batch >= 1 && batch <= 100000);
        FUZZ_REQUIRE(ka_config_str(cfg, "KA_KAFKA_BROKERS")[0] != '\0');
        const char *level = ka_config_str(cfg, "KA_LOG_LEVEL");
        FUZZ_REQUIRE(strcmp(level, "debug") == 0 || strcmp(level, "info") == 0 ||
                     strcmp(level, "warn") == 0 || strcmp(level, "error") == 0);
        FUZZ_REQUIRE(strcmp(ka_config_service(cfg), "fuzz-worker") == 0);
    } else {
        /* a failed load names its reason */
        FUZZ_REQUIRE(memchr(err, '\0', sizeof err) != NULL);
        FUZZ_REQUIRE(err[0] != '\0');
    }
    ka_config_free(cfg);
    return 0;
}
