/* Per-request arena (h2o's mempool, nginx's pool): bump allocation from a chain of chunks,
 * everything released in one call. A downstream connection owns one and resets it when a
 * request ends, so the hot path allocates nothing once the first chunk exists. */
#ifndef LEGATE_PROXY_ARENA_H
#define LEGATE_PROXY_ARENA_H

#include <stddef.h>

/* The first chunk's size: enough for the head pieces of a typical request. */
#define PX_ARENA_CHUNK 4096

struct px_arena_chunk;

struct px_arena {
    struct px_arena_chunk *first; /* kept across resets */
    struct px_arena_chunk *cur;   /* where allocation happens */
};

void px_arena_init(struct px_arena *a);
/* Returns n bytes aligned for any type, valid until the next reset or free. Never fails
 * (aborts on out of memory, like xmalloc). */
void *px_arena_alloc(struct px_arena *a, size_t n);
/* Returns a copy of the n bytes at p (not NUL-terminated unless p holds one). */
void *px_arena_memdup(struct px_arena *a, const void *p, size_t n);
/* Releases every allocation; keeps the first chunk for the next request. */
void px_arena_reset(struct px_arena *a);
/* Releases everything, the first chunk included; a can be reused after px_arena_init. */
void px_arena_free(struct px_arena *a);

#endif
