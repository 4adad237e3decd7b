#include "arena.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

struct px_arena_chunk {
    struct px_arena_chunk *next;
    size_t size; /* bytes in data */
    size_t used;
    alignas(max_align_t) unsigned char data[];
};

#define ALIGN alignof(max_align_t)

static struct px_arena_chunk *chunk_new(size_t size)
{
    struct px_arena_chunk *c = xmalloc(sizeof(*c) + size);
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

void px_arena_init(struct px_arena *a)
{
    a->first = NULL;
    a->cur = NULL;
    a->cache = NULL;
}

void px_arena_init_cached(struct px_arena *a, struct px_arena_cache *cache)
{
    px_arena_init(a);
    a->cache = cache;
}

void px_arena_park(struct px_arena *a)
{
    struct px_arena_cache *cache = a->cache;
    px_arena_reset(a);
    if (a->first != NULL && cache != NULL && cache->n < cache->max &&
        a->first->size == PX_ARENA_CHUNK) {
        a->first->next = cache->head;
        cache->head = a->first;
        cache->n++;
    } else {
        free(a->first);
    }
    a->first = a->cur = NULL;
}

void px_arena_cache_free(struct px_arena_cache *cache)
{
    while (cache->head != NULL) {
        struct px_arena_chunk *next = cache->head->next;
        free(cache->head);
        cache->head = next;
    }
    cache->n = 0;
}

/* A first chunk: from the cache when the request fits one, else new. */
static struct px_arena_chunk *first_chunk(struct px_arena *a, size_t need)
{
    struct px_arena_cache *cache = a->cache;
    if (need <= PX_ARENA_CHUNK && cache != NULL && cache->head != NULL) {
        struct px_arena_chunk *c = cache->head;
        cache->head = c->next;
        cache->n--;
        c->next = NULL;
        c->used = 0;
        return c;
    }
    return chunk_new(need > PX_ARENA_CHUNK ? need : PX_ARENA_CHUNK);
}

void *px_arena_alloc(struct px_arena *a, size_t n)
{
    size_t need = (n + ALIGN - 1) & ~(ALIGN - 1);
    if (need == 0)
        need = ALIGN;
    if (a->first == NULL)
        a->first = a->cur = first_chunk(a, need);
    struct px_arena_chunk *c = a->cur;
    if (c->size - c->used < need) {
        /* Chunks double so a large request costs a few allocations, not one per piece. */
        size_t size = c->size * 2;
        if (size < need)
            size = need;
        struct px_arena_chunk *nc = chunk_new(size);
        c->next = nc;
        a->cur = c = nc;
    }
    void *p = c->data + c->used;
    c->used += need;
    return p;
}

void *px_arena_memdup(struct px_arena *a, const void *p, size_t n)
{
    void *d = px_arena_alloc(a, n);
    if (n)
        memcpy(d, p, n);
    return d;
}

void px_arena_reset(struct px_arena *a)
{
    if (a->first == NULL)
        return;
    struct px_arena_chunk *c = a->first->next;
    while (c != NULL) {
        struct px_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->first->next = NULL;
    a->first->used = 0;
    a->cur = a->first;
}

void px_arena_free(struct px_arena *a)
{
    px_arena_reset(a);
    free(a->first);
    a->first = a->cur = NULL;
}
