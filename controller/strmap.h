/* A string-keyed hash map (chained, power-of-two buckets) for the controller's indexes: the
 * object cache by "namespace/name", Mapping names per namespace, YAML anchors. Keys are copied
 * and owned by the map; values are opaque pointers the caller owns. Iteration order is the
 * bucket order, i.e. arbitrary: callers that need an order sort what they collect. */
#ifndef LEGATE_CONTROLLER_STRMAP_H
#define LEGATE_CONTROLLER_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strmap_entry {
    struct strmap_entry *next;
    uint64_t hash;
    void *value;
    char key[]; /* NUL-terminated */
};

struct strmap {
    struct strmap_entry **buckets;
    size_t nbuckets; /* 0 or a power of two */
    size_t count;
};

typedef void (*strmap_free_cb)(void *value);

void strmap_init(struct strmap *m);
/* Frees every entry, calling free_value (if not NULL) on each value. m can be reused after
 * strmap_init. Safe on a zeroed map. */
void strmap_free(struct strmap *m, strmap_free_cb free_value);
/* Returns the value stored under key (borrowed), or NULL when absent. */
void *strmap_get(const struct strmap *m, const char *key);
/* Stores value under key. Returns the value it replaced (now the caller's), or NULL. */
void *strmap_put(struct strmap *m, const char *key, void *value);
/* Removes key. Returns its value (now the caller's), or NULL when absent. */
void *strmap_del(struct strmap *m, const char *key);

/* Iteration: for (e = strmap_first(m, &it); e; e = strmap_next(m, &it)). The map must not
 * change during the walk, except through strmap_del of the entry just returned. */
struct strmap_iter {
    size_t bucket;
    struct strmap_entry *next;
};
struct strmap_entry *strmap_first(const struct strmap *m, struct strmap_iter *it);
struct strmap_entry *strmap_next(const struct strmap *m, struct strmap_iter *it);

/* FNV-1a over n bytes, continuing from h (start with STRMAP_HASH_INIT). */
#define STRMAP_HASH_INIT 0xcbf29ce484222325ULL
uint64_t strmap_hash(uint64_t h, const void *p, size_t n);

#endif
