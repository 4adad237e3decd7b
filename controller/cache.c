#include "cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

void cache_init(struct cache *c, cache_changed_cb on_changed, void *arg)
{
    strmap_init(&c->by_key);
    c->on_changed = on_changed;
    c->arg = arg;
    c->changes = 0;
}

static void entry_free(void *p)
{
    struct cache_entry *e = p;
    if (e == NULL)
        return;
    free(e->ns);
    free(e->name);
    free(e->uid);
    free(e->version);
    free(e->annotation);
    free(e->origin);
    free(e);
}

void cache_free(struct cache *c)
{
    strmap_free(&c->by_key, entry_free);
}

/* Kubernetes names are DNS labels or subdomains, so "/" cannot occur in either part. */
static char *make_key(const char *ns, const char *name)
{
    size_t nl = strlen(ns), ml = strlen(name);
    char *k = xmalloc(nl + ml + 2);
    memcpy(k, ns, nl);
    k[nl] = '/';
    memcpy(k + nl + 1, name, ml + 1);
    return k;
}

static bool str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static void changed(struct cache *c)
{
    c->changes++;
    if (c->on_changed != NULL)
        c->on_changed(c->arg);
}

bool cache_upsert(struct cache *c, const struct cache_object *o)
{
    char *key = make_key(o->ns, o->name);
    struct cache_entry *e = strmap_get(&c->by_key, key);
    bool is_new = e == NULL;

    if (is_new) {
        e = xcalloc(1, sizeof(*e));
        e->ns = xstrdup(o->ns);
        e->name = xstrdup(o->name);
        strmap_put(&c->by_key, key, e);
    }
    free(key);
    e->seen = true;
    bool differs = is_new || !str_eq(e->uid, o->uid) || !str_eq(e->annotation, o->annotation) ||
                   !str_eq(e->origin, o->origin) || e->line != o->line;
    if (!str_eq(e->version, o->version)) {
        free(e->version);
        e->version = xstrdup(o->version);
    }
    if (!differs)
        return false;
    free(e->uid);
    free(e->annotation);
    free(e->origin);
    e->uid = xstrdup(o->uid);
    e->annotation = xstrdup(o->annotation);
    e->origin = xstrdup(o->origin);
    e->line = o->line;
    changed(c);
    return true;
}

bool cache_remove(struct cache *c, const char *ns, const char *name)
{
    char *key = make_key(ns, name);
    struct cache_entry *e = strmap_del(&c->by_key, key);
    free(key);
    if (e == NULL)
        return false;
    entry_free(e);
    changed(c);
    return true;
}

void cache_mark(struct cache *c, const char *origin)
{
    struct strmap_iter it;
    for (struct strmap_entry *me = strmap_first(&c->by_key, &it); me;
         me = strmap_next(&c->by_key, &it)) {
        struct cache_entry *e = me->value;
        if (str_eq(e->origin, origin))
            e->seen = false;
    }
}

size_t cache_sweep(struct cache *c, const char *origin)
{
    size_t removed = 0;
    struct strmap_iter it;
    for (struct strmap_entry *me = strmap_first(&c->by_key, &it); me;
         me = strmap_next(&c->by_key, &it)) {
        struct cache_entry *e = me->value;
        if (e->seen || !str_eq(e->origin, origin))
            continue;
        strmap_del(&c->by_key, me->key);
        entry_free(e);
        removed++;
        changed(c);
    }
    return removed;
}

const struct cache_entry *cache_get(const struct cache *c, const char *ns, const char *name)
{
    char *key = make_key(ns, name);
    const struct cache_entry *e = strmap_get(&c->by_key, key);
    free(key);
    return e;
}

size_t cache_count(const struct cache *c)
{
    return c->by_key.count;
}

static int cmp_entry(const void *a, const void *b)
{
    const struct cache_entry *x = *(const struct cache_entry *const *)a;
    const struct cache_entry *y = *(const struct cache_entry *const *)b;
    int r = strcmp(x->ns, y->ns);
    return r != 0 ? r : strcmp(x->name, y->name);
}

const struct cache_entry **cache_list(const struct cache *c, size_t *n)
{
    const struct cache_entry **v = xmalloc((c->by_key.count + 1) * sizeof(*v));
    size_t k = 0;
    struct strmap_iter it;
    for (struct strmap_entry *me = strmap_first(&c->by_key, &it); me;
         me = strmap_next(&c->by_key, &it))
        v[k++] = me->value;
    qsort(v, k, sizeof(*v), cmp_entry);
    *n = k;
    return v;
}
