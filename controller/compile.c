#include "compile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "annotation.h"
#include "route.h"
#include "strmap.h"
#include "xalloc.h"

/* Growable arrays of the table under construction. */
struct builder {
    struct route_table *t;
    size_t cap_routes;
    size_t cap_clusters;
    size_t cap_errors;
    struct strmap clusters; /* "scheme://host:port" -> index + 1 */
    struct strmap names;    /* Mapping name -> owning Service, for the current namespace */
    const char *names_ns;   /* namespace that names belongs to */
};

#define GROW(arr, n, cap)                                                                          \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            (cap) = (cap) ? (cap)*2 : 16;                                                          \
            (arr) = xrealloc((arr), (cap) * sizeof(*(arr)));                                       \
        }                                                                                          \
    } while (0)

static void add_error(struct builder *b, struct route_error *e)
{
    GROW(b->t->errors, b->t->nerrors, b->cap_errors);
    b->t->errors[b->t->nerrors++] = *e;
    memset(e, 0, sizeof(*e)); /* moved */
}

/* Returns the index of the cluster for m's upstream, adding it on first use. Clusters are
 * keyed by scheme too, though only http exists in protocol 1: when TLS origination arrives,
 * http and https to one host:port must stay apart (and get distinct names). */
static uint32_t cluster_for(struct builder *b, const struct mapping *m)
{
    /* Host names come from annotations and can be long: size the strings, never cut them
     * (a cut key would merge two upstreams). */
    size_t room = strlen(m->scheme) + strlen(m->upstream_host) + 16;
    char *key = xmalloc(room);
    snprintf(key, room, "%s://%s:%u", m->scheme, m->upstream_host, m->upstream_port);
    void *v = strmap_get(&b->clusters, key);
    if (v != NULL) {
        free(key);
        return (uint32_t)((uintptr_t)v - 1);
    }

    struct route_table *t = b->t;
    GROW(t->clusters, t->nclusters, b->cap_clusters);
    struct route_cluster *c = &t->clusters[t->nclusters];
    bool v6 = strchr(m->upstream_host, ':') != NULL;
    c->name = xmalloc(room);
    snprintf(c->name, room, v6 ? "[%s]:%u" : "%s:%u", m->upstream_host, m->upstream_port);
    c->scheme = xstrdup(m->scheme);
    c->host = xstrdup(m->upstream_host);
    c->port = m->upstream_port;
    strmap_put(&b->clusters, key, (void *)(uintptr_t)(t->nclusters + 1));
    free(key);
    return (uint32_t)t->nclusters++;
}

/* Turns one Service's Mappings into routes; moves its errors into the table. */
static void add_service(struct builder *b, const struct cache_entry *e, struct annotation_result *a,
                        struct compile_service *cs)
{
    struct route_table *t = b->t;

    if (b->names_ns == NULL || strcmp(b->names_ns, e->ns) != 0) {
        /* Entries come sorted by namespace: one name index per namespace at a time. */
        strmap_free(&b->names, NULL);
        b->names_ns = e->ns;
    }
    for (size_t i = 0; i < a->nerrors; i++)
        add_error(b, &a->errors[i]);
    for (size_t i = 0; i < a->nmappings; i++) {
        struct mapping *m = &a->mappings[i];
        const char *owner = strmap_get(&b->names, m->route.mapping);
        if (owner != NULL) {
            char msg[512];
            snprintf(msg, sizeof(msg),
                     "duplicate Mapping name \"%s\" in namespace \"%s\": Service \"%s\" defines "
                     "it first and wins",
                     m->route.mapping, e->ns, owner);
            struct route_error err = {
                .ns = xstrdup(e->ns),
                .svc = xstrdup(e->name),
                .mapping = xstrdup(m->route.mapping),
                .field = xstrdup("name"),
                .line = m->name_line,
                .message = xstrdup(msg),
            };
            add_error(b, &err);
            continue;
        }
        strmap_put(&b->names, m->route.mapping, e->name);
        m->route.cluster = cluster_for(b, m);
        GROW(t->routes, t->nroutes, b->cap_routes);
        t->routes[t->nroutes++] = m->route;
        memset(&m->route, 0, sizeof(m->route)); /* moved */
        cs->nroutes++;
    }
    cs->ns = xstrdup(e->ns);
    cs->svc = xstrdup(e->name);
    cs->uid = xstrdup(e->uid);
    cs->origin = xstrdup(e->origin);
    cs->line = e->line;
    cs->warnings = a->warnings;
    cs->nwarnings = a->nwarnings;
    cs->nignored = a->nignored;
    a->warnings = NULL;
    a->nwarnings = 0;
}

struct compile_result *compile_run(const struct cache *c, const struct compile_opts *o)
{
    struct compile_result *r = xcalloc(1, sizeof(*r));
    struct builder b = { 0 };
    size_t n = 0;
    const struct cache_entry **entries = cache_list(c, &n);

    r->table = b.t = xcalloc(1, sizeof(*b.t));
    b.t->version = o->version;
    strmap_init(&b.clusters);
    strmap_init(&b.names);
    r->services = xcalloc(n + 1, sizeof(*r->services));
    size_t *first_error = xcalloc(n + 1, sizeof(*first_error));

    for (size_t i = 0; i < n; i++) {
        const struct cache_entry *e = entries[i];
        if (e->annotation == NULL)
            continue;
        struct annotation_opts ao = { .ns = e->ns,
                                      .svc = e->name,
                                      .ambassador_id = o->ambassador_id };
        struct annotation_result a;
        annotation_parse(e->annotation, strlen(e->annotation), &ao, &a);
        first_error[r->nservices] = b.t->nerrors;
        add_service(&b, e, &a, &r->services[r->nservices]);
        r->services[r->nservices].nerrors = b.t->nerrors - first_error[r->nservices];
        r->nwarnings += r->services[r->nservices].nwarnings;
        r->nservices++;
        annotation_result_free(&a);
    }
    /* The errors array has stopped moving: point each Service at its range. */
    for (size_t i = 0; i < r->nservices; i++)
        if (r->services[i].nerrors > 0)
            r->services[i].errors = &b.t->errors[first_error[i]];
    route_sort(b.t->routes, b.t->nroutes);

    strmap_free(&b.clusters, NULL);
    strmap_free(&b.names, NULL);
    free(first_error);
    free(entries);
    return r;
}

void compile_result_free(struct compile_result *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nservices; i++) {
        struct compile_service *s = &r->services[i];
        free(s->ns);
        free(s->svc);
        free(s->uid);
        free(s->origin);
        for (size_t k = 0; k < s->nwarnings; k++)
            route_error_free_fields(&s->warnings[k]);
        free(s->warnings);
    }
    free(r->services);
    route_table_free(r->table);
    free(r);
}

const struct compile_service *compile_find_service(const struct compile_result *r, const char *ns,
                                                   const char *svc)
{
    size_t lo = 0, hi = r->nservices;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(r->services[mid].ns, ns);
        if (c == 0)
            c = strcmp(r->services[mid].svc, svc);
        if (c == 0)
            return &r->services[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- comparing tables ---- */

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool route_eq(const struct route *a, const struct route *b)
{
    if (!str_eq(a->ns, b->ns) || !str_eq(a->svc, b->svc) || !str_eq(a->mapping, b->mapping) ||
        !str_eq(a->prefix, b->prefix) || a->prefix_regex != b->prefix_regex ||
        a->prefix_exact != b->prefix_exact || a->case_sensitive != b->case_sensitive ||
        !str_eq(a->method, b->method) || !str_eq(a->host, b->host) ||
        a->precedence != b->precedence || a->cluster != b->cluster ||
        !str_eq(a->rewrite, b->rewrite) || !str_eq(a->host_rewrite, b->host_rewrite) ||
        a->timeout_ms != b->timeout_ms || a->nheaders != b->nheaders)
        return false;
    for (size_t i = 0; i < a->nheaders; i++)
        if (!str_eq(a->headers[i].name, b->headers[i].name) ||
            !str_eq(a->headers[i].value, b->headers[i].value) ||
            a->headers[i].regex != b->headers[i].regex)
            return false;
    return true;
}

bool compile_tables_equal(const struct route_table *a, const struct route_table *b)
{
    if (a->nroutes != b->nroutes || a->nclusters != b->nclusters || a->nerrors != b->nerrors)
        return false;
    for (size_t i = 0; i < a->nclusters; i++) {
        const struct route_cluster *x = &a->clusters[i], *y = &b->clusters[i];
        if (!str_eq(x->name, y->name) || !str_eq(x->scheme, y->scheme) ||
            !str_eq(x->host, y->host) || x->port != y->port)
            return false;
    }
    for (size_t i = 0; i < a->nroutes; i++)
        if (!route_eq(&a->routes[i], &b->routes[i]))
            return false;
    for (size_t i = 0; i < a->nerrors; i++) {
        const struct route_error *x = &a->errors[i], *y = &b->errors[i];
        if (!str_eq(x->ns, y->ns) || !str_eq(x->svc, y->svc) || !str_eq(x->mapping, y->mapping) ||
            !str_eq(x->field, y->field) || x->line != y->line || !str_eq(x->message, y->message))
            return false;
    }
    return true;
}
