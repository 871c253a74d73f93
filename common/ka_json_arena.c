#include <stdint.h>
#include <stdlib.h>

#include <cjson/cJSON.h>
#include <jansson.h>

#include "ka_json_arena.h"

/* Under ASan the released part of the arena is poisoned, so a value used
 * after its scope's end is reported as it would be after free(). */
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Enough for the input events of proto/ka/v1 many times over (an
 * opportunity with two lines takes about 6 KiB of jansson's memory). */
#define ARENA_BYTES (64 * 1024)

static _Thread_local struct {
    _Alignas(16) unsigned char buf[ARENA_BYTES];
    size_t used;
    unsigned depth;
} arena;

static void *arena_malloc(size_t n)
{
    if (arena.depth > 0) {
        size_t need = (n + 15) & ~(size_t)15;
        if (need >= n && need <= ARENA_BYTES - arena.used) {
            void *p = arena.buf + arena.used;
            arena.used += need;
            UNPOISON(p, n);
            return p;
        }
    }
    return malloc(n);
}

static void arena_free(void *p)
{
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)arena.buf;
    if (a >= lo && a < lo + ARENA_BYTES)
        return; /* released by the scope's end */
    free(p);
}

/* Before main, so before any thread (librdkafka's call jansson for their
 * statistics): from then on jansson and cJSON (the fast path,
 * ka_json_fast.c; cJSON_InitHooks is process-wide) allocate through the two
 * functions above, which are malloc and free outside a scope. */
__attribute__((constructor)) static void install(void)
{
    cJSON_Hooks hooks = {arena_malloc, arena_free};
    json_set_alloc_funcs(arena_malloc, arena_free);
    cJSON_InitHooks(&hooks);
}

void ka_json_arena_begin(void)
{
    arena.depth++;
}

void ka_json_arena_end(void)
{
    if (arena.depth > 0 && --arena.depth == 0) {
        POISON(arena.buf, arena.used);
        arena.used = 0;
    }
}
