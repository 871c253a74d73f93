#ifndef KA_JSON_ARENA_H
#define KA_JSON_ARENA_H

/* jansson's and cJSON's allocations for one input document from a
 * per-thread arena.
 *
 * Parsing an event with jansson is mostly malloc and free: a value, a
 * hashtable and its buckets per object, a string per key and value, a
 * growing lexer buffer; the profile of ka-bench-decode's JSON path puts
 * malloc/free at about a seventh of jansson's instructions. Between
 * ka_json_arena_begin and ka_json_arena_end, jansson's allocations on the
 * calling thread come from a fixed thread-local buffer (bump allocation,
 * free a no-op), all released at once by the end; past the buffer, and
 * outside a scope or on another thread, they are plain malloc and free.
 *
 * The rule: every jansson value (and cJSON tree, ka_json_fast.c)
 * allocated inside a scope is released before its end, on the same thread
 * (ka_json_pb_parse and ka_input's CloudEvents path load, convert and
 * release within one call). Scopes nest; the
 * outermost end releases. Nothing of jansson may be freed with libc free()
 * inside a scope (json_dumps's text: use jsonp's free, i.e. free() only
 * outside a scope). */

void ka_json_arena_begin(void);
void ka_json_arena_end(void);

#endif
