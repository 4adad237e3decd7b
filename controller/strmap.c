#include "strmap.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

uint64_t strmap_hash(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void strmap_init(struct strmap *m)
{
    m->buckets = NULL;
    m->nbuckets = 0;
    m->count = 0;
}

void strmap_free(struct strmap *m, strmap_free_cb free_value)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct strmap_entry *e = m->buckets[i];
        while (e != NULL) {
            struct strmap_entry *next = e->next;
            if (free_value != NULL)
                free_value(e->value);
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    strmap_init(m);
}

static struct strmap_entry **find(const struct strmap *m, const char *key, uint64_t h)
{
    struct strmap_entry **pp = &m->buckets[h & (m->nbuckets - 1)];
    while (*pp != NULL && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
        pp = &(*pp)->next;
    return pp;
}

/* Doubles the bucket array once entries outnumber buckets, so chains stay short. */
static void grow(struct strmap *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
    struct strmap_entry **b = xcalloc(n, sizeof(*b));
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct strmap_entry *e = m->buckets[i];
        while (e != NULL) {
            struct strmap_entry *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

void *strmap_get(const struct strmap *m, const char *key)
{
    if (m->count == 0)
        return NULL;
    struct strmap_entry *e = *find(m, key, strmap_hash(STRMAP_HASH_INIT, key, strlen(key)));
    return e ? e->value : NULL;
}

void *strmap_put(struct strmap *m, const char *key, void *value)
{
    size_t klen = strlen(key);
    uint64_t h = strmap_hash(STRMAP_HASH_INIT, key, klen);
    if (m->count >= m->nbuckets)
        grow(m);
    struct strmap_entry **pp = find(m, key, h);
    if (*pp != NULL) {
        void *old = (*pp)->value;
        (*pp)->value = value;
        return old;
    }
    struct strmap_entry *e = xmalloc(sizeof(*e) + klen + 1);
    e->next = NULL;
    e->hash = h;
    e->value = value;
    memcpy(e->key, key, klen + 1);
    *pp = e;
    m->count++;
    return NULL;
}

void *strmap_del(struct strmap *m, const char *key)
{
    if (m->count == 0)
        return NULL;
    struct strmap_entry **pp = find(m, key, strmap_hash(STRMAP_HASH_INIT, key, strlen(key)));
    struct strmap_entry *e = *pp;
    if (e == NULL)
        return NULL;
    void *v = e->value;
    *pp = e->next;
    free(e);
    m->count--;
    return v;
}

static struct strmap_entry *advance(const struct strmap *m, struct strmap_iter *it)
{
    while (it->next == NULL && it->bucket < m->nbuckets)
        it->next = m->buckets[it->bucket++];
    struct strmap_entry *e = it->next;
    if (e != NULL)
        it->next = e->next; /* read before the caller may delete e */
    return e;
}

struct strmap_entry *strmap_first(const struct strmap *m, struct strmap_iter *it)
{
    it->bucket = 0;
    it->next = NULL;
    return advance(m, it);
}

struct strmap_entry *strmap_next(const struct strmap *m, struct strmap_iter *it)
{
    return advance(m, it);
}
