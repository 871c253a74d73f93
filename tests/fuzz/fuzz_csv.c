/* Fuzz target: the reference-data CSV reader kactl load uses (csvfile_read,
 * through Debian's libcsv). The input is written to a temporary file. See
 * tests/fuzz/README.md. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "csvfile.h"
#include "fuzz_contract.h"
#include "fuzz_tempfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[KA_ERRSTR_SIZE];
    csvfile_t f;

    const char *path = fuzz_write_temp("csv", data, size);
    memset(err, 0x5a, sizeof err);
    if (csvfile_read(path, &f, err, sizeof err) == 0) {
        /* A NUL byte would cut a value short without a word: refused. */
        FUZZ_REQUIRE(memchr(data, '\0', size) == NULL);
        int line = 1;
        for (int i = 0; i < f.n; i++) {
            const csv_record_t *r = &f.records[i];
            FUZZ_REQUIRE(r->n >= 1 && r->fields != NULL);
            /* records come in file order, each on a line that exists */
            FUZZ_REQUIRE(r->line >= line);
            line = r->line;
            for (int k = 0; k < r->n; k++)
                FUZZ_REQUIRE(r->fields[k] != NULL);
            /* a blank line is not a record */
            FUZZ_REQUIRE(r->n > 1 || r->fields[0][0] != '\0');
        }
        FUZZ_REQUIRE((size_t)line <= size + 1);
        csvfile_free(&f);
    } else {
        /* a failed read names the file and line, and holds nothing */
        FUZZ_REQUIRE(memchr(err, '\0', sizeof err) != NULL);
        FUZZ_REQUIRE(strncmp(err, path, strlen(path)) == 0);
        FUZZ_REQUIRE(f.n == 0 && f.records == NULL);
    }
    return 0;
}
