/* Per-request arena (h2o's mempool, nginx's pool): bump allocation from a chain of chunks,
 * everything released in one call. A downstream connection owns one and resets it when a
 * request ends, so the hot path allocates nothing once the first chunk exists. */
#ifndef LEGATE_PROXY_ARENA_H
#define LEGATE_PROXY_ARENA_H

#include <stddef.h>

/* The first chunk's size: enough for the head pieces of a typical request. */
#define PX_ARENA_CHUNK 4096

struct px_arena_chunk;

/* First chunks parked by idle arenas, for reuse by the next arena that needs one: a worker
 * keeps one, so idle keep-alive connections hold no chunk and busy ones still allocate
 * nothing per request. */
struct px_arena_cache {
    struct px_arena_chunk *head;
    unsigned n;
    unsigned max;
};

struct px_arena {
    struct px_arena_chunk *first; /* kept across resets */
    struct px_arena_chunk *cur;   /* where allocation happens */
    struct px_arena_cache *cache; /* where px_arena_park puts the first chunk; may be NULL */
};

void px_arena_init(struct px_arena *a);
/* Like px_arena_init, with first chunks taken from and parked in cache. */
void px_arena_init_cached(struct px_arena *a, struct px_arena_cache *cache);
/* Releases everything and parks the first chunk in the arena's cache (frees it when there is
 * no cache or the cache is full). a stays usable: the next allocation takes a chunk back. */
void px_arena_park(struct px_arena *a);
/* Frees the chunks a cache holds. */
void px_arena_cache_free(struct px_arena_cache *cache);
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
