#ifndef FUZZ_TEMPFILE_H
#define FUZZ_TEMPFILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_contract.h"

/* For targets whose code under test reads a file (configuration, reference
 * data): writes the input to one temporary file, reused across calls and
 * removed at exit, and returns its path. */

static char fuzz_temp_path[64];

static void fuzz_remove_temp(void)
{
    if (fuzz_temp_path[0])
        unlink(fuzz_temp_path);
}

static inline const char *fuzz_write_temp(const char *name, const uint8_t *data, size_t size)
{
    if (!fuzz_temp_path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(fuzz_temp_path, sizeof fuzz_temp_path, "%s/ka-fuzz-%s-XXXXXX",
                 dir && *dir ? dir : "/tmp", name);
        int fd = mkstemp(fuzz_temp_path);
        FUZZ_REQUIRE(fd >= 0);
        close(fd);
        atexit(fuzz_remove_temp);
    }
    FILE *f = fopen(fuzz_temp_path, "wb");
    FUZZ_REQUIRE(f != NULL);
    FUZZ_REQUIRE(size == 0 || fwrite(data, 1, size, f) == size);
    FUZZ_REQUIRE(fclose(f) == 0);
    return fuzz_temp_path;
}

#endif
