#include "route_arena.h"

#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

/* Chunks grow geometrically from CHUNK_MIN to CHUNK_MAX, so a small table stays small and a
 * 100 000-route one needs a few dozen chunks; the unused tail of the last chunk is at most
 * CHUNK_MAX. A request larger than a quarter of a chunk gets a chunk of its own. */
#define CHUNK_MIN ((size_t)1024)
#define CHUNK_MAX ((size_t)256 * 1024)
#define ALIGN     alignof(max_align_t)

struct chunk {
    struct chunk *next;
    size_t cap, used;
    alignas(max_align_t) char data[];
};

struct slot {
    const char *s; /* NULL: empty */
    uint32_t len;
    uint32_t hash;
};

struct route_arena {
    struct chunk *cur; /* newest first */
    size_t next_cap;
    struct slot *slots; /* intern index: open addressing, power-of-two size */
    size_t nslots, nused;
    bool sealed;
};

struct route_arena *route_arena_new(void)
{
    struct route_arena *a = xcalloc(1, sizeof(*a));
    a->next_cap = CHUNK_MIN;
    return a;
}

void route_arena_free(struct route_arena *a)
{
    if (a == NULL)
        return;
    for (struct chunk *c = a->cur, *next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    free(a->slots);
    free(a);
}

/* Returns room for n bytes at the given alignment (1 or ALIGN), from a new chunk if needed. */
static char *take(struct route_arena *a, size_t n, size_t align)
{
    struct chunk *c = a->cur;
    if (c != NULL) {
        size_t at = (c->used + align - 1) & ~(align - 1);
        if (at <= c->cap && n <= c->cap - at) {
            c->used = at + n;
            return c->data + at;
        }
    }
    size_t cap = a->next_cap;
    if (n > cap / 4) {
        /* A big block of its own, behind the current chunk so its free room stays in use. */
        struct chunk *big = xmalloc(sizeof(*big) + n);
        big->cap = big->used = n;
        if (c != NULL) {
            big->next = c->next;
            c->next = big;
        } else {
            big->next = NULL;
            a->cur = big;
        }
        return big->data;
    }
    if (a->next_cap < CHUNK_MAX)
        a->next_cap *= 2;
    c = xmalloc(sizeof(*c) + cap);
    c->cap = cap;
    c->used = n;
    c->next = a->cur;
    a->cur = c;
    return c->data;
}

void *route_arena_alloc(struct route_arena *a, size_t n)
{
    char *p = take(a, n ? n : 1, ALIGN);
    memset(p, 0, n);
    return p;
}

char *route_arena_strndup(struct route_arena *a, const char *s, size_t n)
{
    char *p = take(a, n + 1, 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* FNV-1a: the strings are short and hashed once each. */
static uint32_t hash_of(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static void index_grow(struct route_arena *a)
{
    size_t nslots = a->nslots ? a->nslots * 2 : 256;
    struct slot *slots = xcalloc(nslots, sizeof(*slots));
    for (size_t i = 0; i < a->nslots; i++) {
        if (a->slots[i].s == NULL)
            continue;
        size_t k = a->slots[i].hash & (nslots - 1);
        while (slots[k].s != NULL)
            k = (k + 1) & (nslots - 1);
        slots[k] = a->slots[i];
    }
    free(a->slots);
    a->slots = slots;
    a->nslots = nslots;
}

char *route_arena_intern(struct route_arena *a, const char *s, size_t n)
{
    if (n > UINT32_MAX || a->sealed)
        return route_arena_strndup(a, s, n);
    if ((a->nused + 1) * 2 > a->nslots)
        index_grow(a);
    uint32_t h = hash_of(s, n);
    size_t k = h & (a->nslots - 1);
    for (; a->slots[k].s != NULL; k = (k + 1) & (a->nslots - 1)) {
        const struct slot *e = &a->slots[k];
        if (e->hash == h && e->len == n && memcmp(e->s, s, n) == 0)
            return (char *)e->s;
    }
    char *p = route_arena_strndup(a, s, n);
    a->slots[k] = (struct slot){ p, (uint32_t)n, h };
    a->nused++;
    return p;
}

void route_arena_seal(struct route_arena *a)
{
    free(a->slots);
    a->slots = NULL;
    a->nslots = a->nused = 0;
    a->sealed = true;
}
