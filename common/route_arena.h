/* One route table's memory (h2o's mempool, applied to a table that lives as long as its
 * snapshot): every string and small array a table read from JSON points at is bump-allocated
 * from a short chain of large chunks, and strings that repeat across routes (namespace,
 * service, rewrite, host, header names...) are stored once. Freeing the table frees a few
 * chunks, not one block per string; a route costs the bytes of its own text and no malloc
 * header or rounding per field.
 *
 * The intern index exists only while the table is being read (route_arena_seal drops it), so
 * a loaded table holds nothing but its text. Single-threaded while building; read-only and
 * safe to share afterwards. The controller's YAML documents (controller/ytree.c) live in one
 * too, without interning. */
#ifndef LEGATE_ROUTE_ARENA_H
#define LEGATE_ROUTE_ARENA_H

#include <stddef.h>

struct route_arena;

/* Returns a new, empty arena (never NULL: aborts on out of memory, like xmalloc). */
struct route_arena *route_arena_new(void);
/* Frees every chunk and the arena. Safe on NULL. */
void route_arena_free(struct route_arena *a);
/* Returns n zeroed bytes aligned for any type, valid until route_arena_free. */
void *route_arena_alloc(struct route_arena *a, size_t n);
/* Returns a NUL-terminated copy of the n bytes at s (which hold no NUL). */
char *route_arena_strndup(struct route_arena *a, const char *s, size_t n);
/* Like route_arena_strndup, but returns the copy made earlier when the same bytes were
 * interned before (until route_arena_seal). The result is shared: never write to it. */
char *route_arena_intern(struct route_arena *a, const char *s, size_t n);
/* Ends building: frees the intern index. Allocation still works; interning then copies. */
void route_arena_seal(struct route_arena *a);

#endif
