/* Replays a fuzz target's corpus under any compiler (the libFuzzer binaries
 * need clang; see README.md), then mutates the corpus deterministically:
 *
 *   replay [-n ITERATIONS] [-s SEED] [-v] CORPUS_DIR_OR_FILE...
 *
 * Every corpus file is passed to LLVMFuzzerTestOneInput as is; then, for
 * ITERATIONS rounds, one file is picked and mutated (bit flips, byte
 * overwrites with boundary values, truncation, insertion of repeated bytes,
 * splicing with another file, a copied chunk) with a fixed xorshift PRNG, so
 * a failure reproduces with the same arguments. The target aborts on a
 * broken contract; before each mutated input the driver records it in
 * $KA_FUZZ_CRASH_DIR/last-input (when set) so it can be added to the
 * corpus. Exit status 0 when every input passed. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT (1u << 20) /* Kafka's default message limit */

typedef struct input {
    uint8_t *data;
    size_t len;
    char *name;
} input_t;

static input_t *inputs;
static size_t n_inputs, cap_inputs;
static uint64_t rng_state;
static int verbose;
static const uint8_t *current;
static size_t current_len;
static long current_iteration = -1;

/* On a crash or a failed contract: the input's first 1 KiB, in hex, on
 * stderr (the whole input is in $KA_FUZZ_CRASH_DIR/last-input when set). */
static void on_crash(int sig)
{
    static const char hex[] = "0123456789abcdef";
    char line[80];
    int n = snprintf(line, sizeof line, "\nreplay: signal %d on mutation %ld, input of %zu bytes:\n",
                     sig, current_iteration, current_len);
    if (n > 0 && write(2, line, (size_t)n) < 0)
        _exit(128 + sig);
    for (size_t i = 0; current && i < current_len && i < 1024; i += 32) {
        size_t k = 0;
        for (size_t j = i; j < current_len && j < i + 32; j++) {
            line[k++] = hex[current[j] >> 4];
            line[k++] = hex[current[j] & 15];
        }
        line[k++] = '\n';
        if (write(2, line, k) < 0)
            break;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "replay: out of memory\n");
        abort();
    }
    return q;
}

static uint64_t rng(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static size_t below(size_t n)
{
    return n ? (size_t)(rng() % n) : 0;
}

static int load_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: could not open \"%s\"\n", path);
        return -1;
    }
    uint8_t *buf = xrealloc(NULL, REPLAY_MAX_INPUT);
    size_t len = fread(buf, 1, REPLAY_MAX_INPUT, f);
    fclose(f);
    if (n_inputs == cap_inputs) {
        cap_inputs = cap_inputs ? cap_inputs * 2 : 64;
        inputs = xrealloc(inputs, cap_inputs * sizeof *inputs);
    }
    inputs[n_inputs].data = xrealloc(buf, len);
    inputs[n_inputs].len = len;
    inputs[n_inputs].name = strdup(path);
    n_inputs++;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory's regular files in name order (so runs are reproducible). */
static int load_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: no such file or directory \"%s\"\n", path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return load_file(path);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        names = xrealloc(names, (n + 1) * sizeof *names);
        size_t len = strlen(path) + strlen(de->d_name) + 2;
        names[n] = xrealloc(NULL, len);
        snprintf(names[n], len, "%s/%s", path, de->d_name);
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_names);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode) && load_file(names[i]) != 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

/* Mutates buf[0..*len) in place (capacity REPLAY_MAX_INPUT). */
static void mutate(uint8_t *buf, size_t *len)
{
    static const uint8_t interesting[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0xc0, 0xed, 0xf4, 0x08,
                                          0x0a, 0x12, 0x1a, 0x22, 0x3d /* = */, 0x23 /* # */};
    int rounds = 1 + (int)below(4);
    for (int r = 0; r < rounds; r++) {
        size_t n = *len;
        switch (below(8)) {
        case 0: /* bit flip */
            if (n)
                buf[below(n)] ^= (uint8_t)(1u << below(8));
            break;
        case 1: /* boundary byte */
            if (n)
                buf[below(n)] = interesting[below(sizeof interesting)];
            break;
        case 2: /* random byte */
            if (n)
                buf[below(n)] = (uint8_t)rng();
            break;
        case 3: /* truncation */
            *len = below(n + 1);
            break;
        case 4: { /* insert a run of one byte (huge fields, long varints) */
            size_t run = 1 + below(below(2) ? 16 : 4096);
            if (n + run > REPLAY_MAX_INPUT)
                break;
            size_t at = below(n + 1);
            memmove(buf + at + run, buf + at, n - at);
            memset(buf + at, below(2) ? interesting[below(sizeof interesting)] : (int)(rng() & 0xff),
                   run);
            *len = n + run;
            break;
        }
        case 5: { /* splice: the head of this input, the tail of another */
            const input_t *o = &inputs[below(n_inputs)];
            size_t keep = below(n + 1), from = below(o->len + 1);
            size_t take = o->len - from;
            if (keep + take > REPLAY_MAX_INPUT)
                take = REPLAY_MAX_INPUT - keep;
            memcpy(buf + keep, o->data + from, take);
            *len = keep + take;
            break;
        }
        case 6: { /* duplicate a chunk many times (repeated fields) */
            uint8_t chunk[256];
            if (!n)
                break;
            size_t from = below(n), clen = 1 + below(n - from < sizeof chunk ? n - from : sizeof chunk);
            int times = 1 + (int)below(below(4) ? 4 : 300);
            memcpy(chunk, buf + from, clen);
            for (int t = 0; t < times && *len + clen <= REPLAY_MAX_INPUT; t++) {
                size_t at = below(*len + 1);
                memmove(buf + at + clen, buf + at, *len - at);
                memcpy(buf + at, chunk, clen);
                *len += clen;
            }
            break;
        }
        default: /* erase a range */
            if (n) {
                size_t at = below(n), elen = 1 + below(n - at);
                memmove(buf + at, buf + at + elen, n - at - elen);
                *len = n - elen;
            }
            break;
        }
    }
}

static void save_last(const char *dir, const uint8_t *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/last-input", dir);
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    if (len)
        fwrite(data, 1, len, f);
    fclose(f);
}

int main(int argc, char **argv)
{
    long iterations = 0;
    uint64_t seed = 1;
    int i = 1;

    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            iterations = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-v") == 0)
            verbose = 1;
        else {
            fprintf(stderr, "usage: %s [-n ITERATIONS] [-s SEED] [-v] CORPUS...\n", argv[0]);
            return 2;
        }
    }
    if (i == argc) {
        fprintf(stderr, "usage: %s [-n ITERATIONS] [-s SEED] [-v] CORPUS...\n", argv[0]);
        return 2;
    }
    for (; i < argc; i++)
        if (load_path(argv[i]) != 0)
            return 2;
    if (n_inputs == 0) {
        fprintf(stderr, "replay: the corpus is empty\n");
        return 2;
    }
    const char *crash_dir = getenv("KA_FUZZ_CRASH_DIR");
    signal(SIGABRT, on_crash);
    signal(SIGSEGV, on_crash);

    for (size_t k = 0; k < n_inputs; k++) {
        if (verbose)
            fprintf(stderr, "replay: %s (%zu bytes)\n", inputs[k].name, inputs[k].len);
        /* a private copy, so reads past the end show under ASan and valgrind */
        uint8_t *copy = xrealloc(NULL, inputs[k].len);
        if (inputs[k].len)
            memcpy(copy, inputs[k].data, inputs[k].len);
        current = copy;
        current_len = inputs[k].len;
        LLVMFuzzerTestOneInput(copy, inputs[k].len);
        free(copy);
    }

    rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;
    uint8_t *buf = xrealloc(NULL, REPLAY_MAX_INPUT);
    for (long it = 0; it < iterations; it++) {
        const input_t *in = &inputs[below(n_inputs)];
        size_t len = in->len;
        memcpy(buf, in->data, len);
        mutate(buf, &len);
        uint8_t *copy = xrealloc(NULL, len);
        if (len)
            memcpy(copy, buf, len);
        if (crash_dir)
            save_last(crash_dir, copy, len);
        current = copy;
        current_len = len;
        current_iteration = it;
        LLVMFuzzerTestOneInput(copy, len);
        free(copy);
    }
    free(buf);
    current = NULL;
    printf("replay: %zu corpus files and %ld mutations passed (seed %llu)\n", n_inputs,
           iterations, (unsigned long long)seed);
    for (size_t k = 0; k < n_inputs; k++) {
        free(inputs[k].data);
        free(inputs[k].name);
    }
    free(inputs);
    return 0;
}
