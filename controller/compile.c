#include "compile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "annotation.h"
#include "buf.h"
#include "groups.h"
#include "route.h"
#include "route_policy.h"
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
    struct groups groups;   /* canary groups and shadows, by match key (groups.h) */
    struct module *module;  /* the ambassador Module in force (borrowed), or NULL */
    const struct cache_entry *module_owner;
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
 * keyed by scheme and, for https, by the server name sent in the handshake (host_rewrite, else
 * the host): pooled TLS connections were set up for one name and must not serve another. */
static uint32_t cluster_for(struct builder *b, const struct mapping *m)
{
    bool tls = strcmp(m->scheme, "https") == 0;
    const char *sni =
        tls && m->route.host_rewrite != NULL && strcmp(m->route.host_rewrite, m->upstream_host) != 0
            ? m->route.host_rewrite
            : NULL;
    /* Host names come from annotations and can be long: size the strings, never cut them
     * (a cut key would merge two upstreams). */
    size_t room = strlen(m->scheme) + strlen(m->upstream_host) + (sni ? strlen(sni) : 0) + 32;
    /* A cluster policy (timeouts, circuit breakers, load balancer) other than the default
     * makes a cluster of its own, named with a hash of it. */
    struct buf pk;
    char sfx[16];
    buf_init(&pk, 16 * 1024);
    annotation_policy_cluster_key(&m->policy.cluster, &pk);
    annotation_policy_cluster_suffix(&m->policy.cluster, sfx, sizeof(sfx));
    room += pk.len + sizeof(sfx);
    char *key = xmalloc(room);
    snprintf(key, room, "%s://%s:%u;sni=%s%s", m->scheme, m->upstream_host, m->upstream_port,
             sni ? sni : "", pk.len ? pk.data : "");
    buf_free(&pk);
    void *v = strmap_get(&b->clusters, key);
    if (v != NULL) {
        free(key);
        return (uint32_t)((uintptr_t)v - 1);
    }

    struct route_table *t = b->t;
    GROW(t->clusters, t->nclusters, b->cap_clusters);
    struct route_cluster *c = &t->clusters[t->nclusters];
    bool v6 = strchr(m->upstream_host, ':') != NULL;
    /* Plain http clusters keep the short "host:port" name operators know. */
    c->name = xmalloc(room);
    snprintf(c->name, room, v6 ? "%s[%s]:%u%s%s%s" : "%s%s:%u%s%s%s", tls ? "https://" : "",
             m->upstream_host, m->upstream_port, sni ? ";sni=" : "", sni ? sni : "", sfx);
    c->policy = m->policy.cluster;
    route_lb_copy(&c->policy.lb, &m->policy.cluster.lb);
    c->scheme = xstrdup(m->scheme);
    c->host = xstrdup(m->upstream_host);
    c->port = m->upstream_port;
    c->sni = xstrdup(sni);
    strmap_put(&b->clusters, key, (void *)(uintptr_t)(t->nclusters + 1));
    free(key);
    return (uint32_t)t->nclusters++;
}

/* ---- groups ---- */

static int cmp_kv(const void *pa, const void *pb)
{
    const struct route_header *a = *(const struct route_header *const *)pa;
    const struct route_header *b = *(const struct route_header *const *)pb;
    int c = strcmp(a->name, b->name);
    if (c == 0 && a->value != b->value)
        c = a->value == NULL ? -1 : b->value == NULL ? 1 : strcmp(a->value, b->value);
    return c != 0 ? c : (int)a->regex - (int)b->regex;
}

/* Length-prefixed, so no string can pass for two. */
static void key_str(struct buf *k, const char *s)
{
    if (s == NULL)
        buf_append_str(k, "-|");
    else
        buf_printf(k, "%zu:%s|", strlen(s), s);
}

static void key_kvs(struct buf *k, const struct route_header *v, size_t n)
{
    const struct route_header **sorted = xmalloc((n + 1) * sizeof(*sorted));
    for (size_t i = 0; i < n; i++)
        sorted[i] = &v[i];
    qsort(sorted, n, sizeof(*sorted), cmp_kv);
    buf_printf(k, "%zu[", n);
    for (size_t i = 0; i < n; i++) {
        key_str(k, sorted[i]->name);
        key_str(k, sorted[i]->value);
        buf_append_str(k, sorted[i]->regex ? "r" : "-");
    }
    buf_append_str(k, "]");
    free(sorted);
}

/* Everything a request is matched on, as one string: Mappings with equal keys are one
 * Ambassador group (header and parameter order does not matter). Returns a new string. */
static char *match_key(const struct route *r)
{
    struct buf k;
    /* A key restates part of one annotation with a few bytes per string. */
    buf_init(&k, 4 * ANNOTATION_MAX);
    buf_printf(&k, "%d|%d%d%d%d%d|", (int)r->precedence, r->prefix_regex, r->prefix_exact,
               r->case_sensitive, r->method_regex, r->host_regex);
    key_str(&k, r->prefix);
    key_str(&k, r->method ? r->method : "GET"); /* Ambassador's group id: GET when absent */
    key_str(&k, r->host);
    key_kvs(&k, r->headers, r->nheaders);
    key_kvs(&k, r->query, r->nquery);
    return buf_steal(&k);
}

/* Returns true when m routes: a member of its group (groups.h). A shadow is kept by the
 * group and a Mapping the group refuses is an error; neither routes. */
static bool claim_group(struct builder *b, const struct cache_entry *e, struct mapping *m)
{
    char *key = match_key(&m->route);
    char msg[1024];
    if (m->policy.shadow) /* moved out below: its name is taken all the same */
        strmap_put(&b->names, m->route.mapping, e->name);
    int rc = groups_admit(&b->groups, key, e->ns, e->name, m, msg, sizeof(msg));
    free(key);
    if (rc == GROUPS_MEMBER)
        return true;
    if (rc < 0) {
        struct route_error err = {
            .ns = xstrdup(e->ns),
            .svc = xstrdup(e->name),
            .mapping = xstrdup(m->route.mapping),
            .field = xstrdup(m->policy.shadow ? "shadow" : "weight"),
            .line = m->line,
            .message = xstrdup(msg),
        };
        add_error(b, &err);
    }
    return false;
}

/* groups_finish's callbacks: a shadow's cluster, and a warning for a shadow with nothing to
 * mirror (on its own Service, whose errors are already laid out). */
struct finish_ctx {
    struct builder *b;
    struct compile_result *r;
};

static uint32_t shadow_cluster(void *arg, const struct mapping *m)
{
    return cluster_for(((struct finish_ctx *)arg)->b, m);
}

static void orphan_shadow(void *arg, const char *ns, const char *svc, const struct mapping *m)
{
    struct compile_service *cs =
        (struct compile_service *)compile_find_service(((struct finish_ctx *)arg)->r, ns, svc);
    if (cs == NULL)
        return;
    char msg[512];
    snprintf(msg, sizeof(msg),
             "shadow Mapping \"%s\" is ignored: no Mapping matches the same requests, so there "
             "is no traffic to mirror",
             m->route.mapping);
    cs->warnings = xrealloc(cs->warnings, (cs->nwarnings + 1) * sizeof(*cs->warnings));
    cs->warnings[cs->nwarnings++] = (struct route_error){
        .ns = xstrdup(ns),
        .svc = xstrdup(svc),
        .mapping = xstrdup(m->route.mapping),
        .field = xstrdup("shadow"),
        .line = m->line,
        .message = xstrdup(msg),
    };
    ((struct finish_ctx *)arg)->r->nwarnings++;
}

/* ---- the ambassador Module ---- */

/* Puts the Module's added headers before the Mapping's own, leaving out names the Mapping
 * sets itself: a Mapping's entry for a name replaces the Module's default. */
static void merge_adds(struct route_header_add **v, size_t *n, const struct route_header_add *defs,
                       size_t ndefs)
{
    if (ndefs == 0)
        return;
    struct route_header_add *out = xcalloc(ndefs + *n + 1, sizeof(*out));
    size_t k = 0;
    for (size_t i = 0; i < ndefs; i++) {
        bool own = false;
        for (size_t j = 0; j < *n; j++)
            own = own || strcasecmp((*v)[j].name, defs[i].name) == 0;
        if (!own)
            out[k++] = (struct route_header_add){ xstrdup(defs[i].name), xstrdup(defs[i].value),
                                                  defs[i].append };
    }
    if (*n > 0)
        memcpy(out + k, *v, *n * sizeof(*out));
    free(*v);
    *v = out;
    *n += k;
}

static void apply_module(const struct module *mod, struct mapping *m)
{
    if (mod->timeout_set && !m->timeout_set)
        m->route.timeout_ms = mod->timeout_ms;
    merge_adds(&m->route.add_request_headers, &m->route.nadd_request_headers,
               mod->add_request_headers, mod->nadd_request_headers);
    merge_adds(&m->route.add_response_headers, &m->route.nadd_response_headers,
               mod->add_response_headers, mod->nadd_response_headers);
    annotation_policy_apply_module(&m->route, &m->policy, &mod->policy);
}

/* One ambassador Module per ambassador_id: the first in (namespace, Service, document) order
 * is used; any other is an error on its Service. */
static void check_module(struct builder *b, const struct cache_entry *e,
                         const struct annotation_result *a)
{
    if (a->module == NULL || e == b->module_owner)
        return;
    char msg[512];
    snprintf(msg, sizeof(msg),
             "duplicate ambassador Module: Service \"%s/%s\" defines it first and wins",
             b->module_owner->ns, b->module_owner->name);
    struct route_error err = {
        .ns = xstrdup(e->ns),
        .svc = xstrdup(e->name),
        .mapping = xstrdup("ambassador"),
        .field = xstrdup("name"),
        .line = a->module->name_line,
        .message = xstrdup(msg),
    };
    add_error(b, &err);
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
    check_module(b, e, a);
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
        if (!claim_group(b, e, m))
            continue;
        strmap_put(&b->names, m->route.mapping, e->name);
        if (b->module != NULL)
            apply_module(b->module, m);
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
    route_settings_init(&b.t->settings);
    strmap_init(&b.clusters);
    strmap_init(&b.names);
    groups_init(&b.groups);
    r->services = xcalloc(n + 1, sizeof(*r->services));
    size_t *first_error = xcalloc(n + 1, sizeof(*first_error));
    struct annotation_result *parsed = xcalloc(n + 1, sizeof(*parsed));

    /* Parse everything first: the Module may sit in any Service, and its defaults apply to
     * the Mappings of Services before it too. */
    for (size_t i = 0; i < n; i++) {
        const struct cache_entry *e = entries[i];
        if (e->annotation == NULL)
            continue;
        struct annotation_opts ao = { .ns = e->ns,
                                      .svc = e->name,
                                      .ambassador_id = o->ambassador_id };
        annotation_parse(e->annotation, strlen(e->annotation), &ao, &parsed[i]);
        if (b.module == NULL && parsed[i].module != NULL) {
            b.module = parsed[i].module;
            b.module_owner = e;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const struct cache_entry *e = entries[i];
        if (e->annotation == NULL)
            continue;
        first_error[r->nservices] = b.t->nerrors;
        add_service(&b, e, &parsed[i], &r->services[r->nservices]);
        r->services[r->nservices].nerrors = b.t->nerrors - first_error[r->nservices];
        r->nwarnings += r->services[r->nservices].nwarnings;
        r->nservices++;
    }
    if (b.module != NULL) {
        /* Moved: the parse results are freed below. */
        b.t->settings = b.module->settings;
        route_settings_init(&b.module->settings);
    }
    for (size_t i = 0; i < n; i++)
        annotation_result_free(&parsed[i]);
    free(parsed);
    /* The errors array has stopped moving: point each Service at its range. */
    for (size_t i = 0; i < r->nservices; i++)
        if (r->services[i].nerrors > 0)
            r->services[i].errors = &b.t->errors[first_error[i]];
    route_sort(b.t->routes, b.t->nroutes);
    struct finish_ctx fc = { &b, r };
    groups_finish(&b.groups, b.t, shadow_cluster, orphan_shadow, &fc);

    strmap_free(&b.clusters, NULL);
    strmap_free(&b.names, NULL);
    groups_free(&b.groups);
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

bool compile_tables_equal(const struct route_table *a, const struct route_table *b)
{
    return route_table_equal(a, b);
}
