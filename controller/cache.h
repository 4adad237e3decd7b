/* The object cache: every Service a source has seen, keyed by (namespace, name). Sources write
 * it; the compiler reads it. It knows nothing about YAML or Mappings.
 *
 * A source calls cache_upsert for each object it sees and cache_remove for each deletion. For
 * a full relist or rescan it brackets the upserts with cache_mark(origin) and
 * cache_sweep(origin): entries of that origin not upserted since the mark are removed, which
 * is how deletions missed while not watching are noticed. The directory source uses the file
 * path as origin; the Kubernetes source will use "kube".
 *
 * Every change calls the changed callback once, synchronously; the controller coalesces
 * those into one compile. Not thread-safe: the loop thread only. */
#ifndef LEGATE_CONTROLLER_CACHE_H
#define LEGATE_CONTROLLER_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "strmap.h"

/* What a source knows about one Service. Borrowed strings; the cache copies them. */
struct cache_object {
    const char *ns;
    const char *name;
    const char *uid;
    const char *version;    /* resourceVersion or similar; opaque; may be NULL */
    const char *annotation; /* getambassador.io/config text; NULL when absent */
    const char *origin;     /* file path, "kube", ... */
    int line;               /* 1-based line of the annotation's first line in origin; 0 unknown */
};

struct cache_entry {
    char *ns;
    char *name;
    char *uid;
    char *version;
    char *annotation;
    char *origin;
    int line;
    bool seen; /* upserted since the last cache_mark of its origin */
};

typedef void (*cache_changed_cb)(void *arg);

struct cache {
    struct strmap by_key; /* "ns/name" -> struct cache_entry * ('/' is not valid in names) */
    cache_changed_cb on_changed;
    void *arg;
    unsigned long changes; /* total count of changes, for tests and logs */
};

/* on_changed may be NULL. */
void cache_init(struct cache *c, cache_changed_cb on_changed, void *arg);
/* Frees every entry; does not call the callback. */
void cache_free(struct cache *c);

/* Inserts or replaces the entry for (o->ns, o->name) and marks it seen. Returns true when the
 * compiler's inputs changed (uid, annotation, origin or line; a new or different version
 * alone is stored but does not count: a Service whose ports changed keeps its routes), and
 * then calls the callback. */
bool cache_upsert(struct cache *c, const struct cache_object *o);
/* Removes (ns, name). Returns true (and calls the callback) when it was present. */
bool cache_remove(struct cache *c, const char *ns, const char *name);
/* Starts a relist of origin: clears the seen flag of its entries. */
void cache_mark(struct cache *c, const char *origin);
/* Ends a relist: removes the entries of origin not upserted since cache_mark, calling the
 * callback for each. Returns how many were removed. */
size_t cache_sweep(struct cache *c, const char *origin);

/* Returns the entry (borrowed, valid until the next change), or NULL. */
const struct cache_entry *cache_get(const struct cache *c, const char *ns, const char *name);
size_t cache_count(const struct cache *c);
/* Returns a new array (caller frees the array, not the entries) of every entry sorted by
 * (namespace, name), and its length in *n. Entries are borrowed until the next change. */
const struct cache_entry **cache_list(const struct cache *c, size_t *n);

#endif
