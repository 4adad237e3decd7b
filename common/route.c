#include "route.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

void route_free_fields(struct route *r)
{
    free(r->ns);
    free(r->svc);
    free(r->mapping);
    free(r->prefix);
    free(r->method);
    free(r->host);
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    free(r->rewrite);
    free(r->host_rewrite);
    memset(r, 0, sizeof(*r));
}

void route_error_free_fields(struct route_error *e)
{
    free(e->ns);
    free(e->svc);
    free(e->mapping);
    free(e->field);
    free(e->message);
    memset(e, 0, sizeof(*e));
}

void route_cluster_free_fields(struct route_cluster *c)
{
    free(c->name);
    free(c->scheme);
    free(c->host);
    memset(c, 0, sizeof(*c));
}

void route_table_free(struct route_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nroutes; i++)
        route_free_fields(&t->routes[i]);
    for (size_t i = 0; i < t->nclusters; i++)
        route_cluster_free_fields(&t->clusters[i]);
    for (size_t i = 0; i < t->nerrors; i++)
        route_error_free_fields(&t->errors[i]);
    free(t->routes);
    free(t->clusters);
    free(t->errors);
    free(t);
}

/* ---- ordering ---- */

static size_t kv_weight(const char *name, const char *value, bool regex)
{
    return strlen(name) + (value ? strlen(value) : 1) + (regex ? 1 : 0);
}

size_t route_header_weight(const struct route *r)
{
    size_t w = 0;
    if (r->host)
        w += kv_weight(":authority", r->host, false);
    if (r->method)
        w += kv_weight(":method", r->method, false);
    for (size_t i = 0; i < r->nheaders; i++)
        w += kv_weight(r->headers[i].name, r->headers[i].value, r->headers[i].regex);
    return w;
}

#define CMP_DESC(x, y)                                                                             \
    do {                                                                                           \
        if ((x) != (y))                                                                            \
            return (x) > (y) ? -1 : 1;                                                             \
    } while (0)

int route_cmp(const struct route *a, const struct route *b)
{
    CMP_DESC(a->precedence, b->precedence);
    CMP_DESC(strlen(a->prefix), strlen(b->prefix));
    CMP_DESC(route_header_weight(a), route_header_weight(b));
    int c = strcmp(a->prefix, b->prefix);
    if (c != 0)
        return c > 0 ? -1 : 1;
    c = strcmp(a->method ? a->method : "GET", b->method ? b->method : "GET");
    if (c != 0)
        return c > 0 ? -1 : 1;
    return 0;
}

void route_sort(struct route *routes, size_t n)
{
    /* Insertion sort into a scratch array is stable; merge sort keeps it O(n log n) for the
     * 100 000-route tables the benchmarks use. */
    if (n < 2)
        return;
    struct route *tmp = xmalloc(n * sizeof(*tmp));
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] = route_cmp(&routes[j], &routes[i]) < 0 ? routes[j++] : routes[i++];
            while (i < mid)
                tmp[k++] = routes[i++];
            while (j < hi)
                tmp[k++] = routes[j++];
        }
        memcpy(routes, tmp, n * sizeof(*tmp));
    }
    free(tmp);
}

/* ---- JSON form ---- */

enum jtype { J_STR, J_STR_REQ, J_BOOL, J_INT32, J_UINT32, J_PORT, J_INT, J_HEADERS, J_CLUSTER };

struct jfield {
    const char *name;
    enum jtype type;
    size_t off;
};

#define RF(n, t, f)                                                                                \
    {                                                                                              \
        n, t, offsetof(struct route, f)                                                            \
    }
static const struct jfield route_fields[] = {
    RF("namespace", J_STR_REQ, ns),
    RF("service", J_STR_REQ, svc),
    RF("mapping", J_STR_REQ, mapping),
    RF("prefix", J_STR_REQ, prefix),
    RF("prefix_regex", J_BOOL, prefix_regex),
    RF("prefix_exact", J_BOOL, prefix_exact),
    RF("case_sensitive", J_BOOL, case_sensitive),
    RF("method", J_STR, method),
    RF("host", J_STR, host),
    RF("headers", J_HEADERS, headers),
    RF("precedence", J_INT32, precedence),
    RF("cluster", J_CLUSTER, cluster),
    RF("rewrite", J_STR, rewrite),
    RF("host_rewrite", J_STR, host_rewrite),
    RF("timeout_ms", J_UINT32, timeout_ms),
};
#undef RF

#define CF(n, t, f)                                                                                \
    {                                                                                              \
        n, t, offsetof(struct route_cluster, f)                                                    \
    }
static const struct jfield cluster_fields[] = {
    CF("name", J_STR_REQ, name),
    CF("scheme", J_STR_REQ, scheme),
    CF("host", J_STR_REQ, host),
    CF("port", J_PORT, port),
};
#undef CF

#define EF(n, t, f)                                                                                \
    {                                                                                              \
        n, t, offsetof(struct route_error, f)                                                      \
    }
static const struct jfield error_fields[] = {
    EF("namespace", J_STR, ns), EF("service", J_STR, svc), EF("mapping", J_STR, mapping),
    EF("field", J_STR, field),  EF("line", J_INT, line),   EF("message", J_STR_REQ, message),
};
#undef EF

static json_object *str_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

static void put_fields(json_object *o, const void *base, const struct jfield *f, size_t n,
                       const struct route_table *t)
{
    for (size_t i = 0; i < n; i++) {
        const char *p = (const char *)base + f[i].off;
        json_object *v = NULL;
        switch (f[i].type) {
        case J_STR:
        case J_STR_REQ:
            v = str_or_null(*(char *const *)p);
            if (v == NULL && f[i].type == J_STR)
                continue; /* absent optional strings are omitted */
            break;
        case J_BOOL:
            v = json_object_new_boolean(*(const bool *)p);
            break;
        case J_INT32:
            v = json_object_new_int(*(const int32_t *)p);
            break;
        case J_UINT32:
            v = json_object_new_int64(*(const uint32_t *)p);
            break;
        case J_PORT:
            v = json_object_new_int(*(const uint16_t *)p);
            break;
        case J_INT:
            v = json_object_new_int(*(const int *)p);
            break;
        case J_CLUSTER:
            v = json_object_new_string(t->clusters[*(const uint32_t *)p].name);
            break;
        case J_HEADERS: {
            const struct route *r = base;
            if (r->nheaders == 0)
                continue;
            v = json_object_new_array();
            for (size_t h = 0; h < r->nheaders; h++) {
                json_object *ho = json_object_new_object();
                json_object_object_add(ho, "name", json_object_new_string(r->headers[h].name));
                if (r->headers[h].value)
                    json_object_object_add(ho, "value",
                                           json_object_new_string(r->headers[h].value));
                if (r->headers[h].regex)
                    json_object_object_add(ho, "regex", json_object_new_boolean(1));
                json_object_array_add(v, ho);
            }
            break;
        }
        }
        json_object_object_add(o, f[i].name, v);
    }
}

json_object *route_table_to_json(const struct route_table *t)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "version", json_object_new_int64((int64_t)t->version));
    json_object *routes = json_object_new_array_ext((int)t->nroutes);
    for (size_t i = 0; i < t->nroutes; i++) {
        json_object *ro = json_object_new_object();
        put_fields(ro, &t->routes[i], route_fields, ARRAY_SIZE(route_fields), t);
        json_object_array_add(routes, ro);
    }
    json_object *clusters = json_object_new_array_ext((int)t->nclusters);
    for (size_t i = 0; i < t->nclusters; i++) {
        json_object *co = json_object_new_object();
        put_fields(co, &t->clusters[i], cluster_fields, ARRAY_SIZE(cluster_fields), t);
        json_object_array_add(clusters, co);
    }
    json_object *errors = json_object_new_array_ext((int)t->nerrors);
    for (size_t i = 0; i < t->nerrors; i++) {
        json_object *eo = json_object_new_object();
        put_fields(eo, &t->errors[i], error_fields, ARRAY_SIZE(error_fields), t);
        json_object_array_add(errors, eo);
    }
    json_object_object_add(o, "routes", routes);
    json_object_object_add(o, "clusters", clusters);
    json_object_object_add(o, "errors", errors);
    return o;
}

/* Finds a cluster by name: linear in clusters, done once per route at load time off the
 * request path; tables keep a name index when that matters (see proxy). */
static int cluster_index(const struct route_table *t, const char *name, uint32_t *out)
{
    for (size_t i = 0; i < t->nclusters; i++) {
        if (strcmp(t->clusters[i].name, name) == 0) {
            *out = (uint32_t)i;
            return 0;
        }
    }
    return -ENOENT;
}

static int get_headers(json_object *v, struct route *r, char *err, size_t errlen)
{
    if (!json_object_is_type(v, json_type_array)) {
        snprintf(err, errlen, "headers: expected an array");
        return -EINVAL;
    }
    size_t n = json_object_array_length(v);
    r->headers = xcalloc(n, sizeof(*r->headers));
    for (size_t i = 0; i < n; i++) {
        json_object *h = json_object_array_get_idx(v, i);
        if (!json_object_is_type(h, json_type_object)) {
            snprintf(err, errlen, "headers[%zu]: expected an object", i);
            return -EINVAL;
        }
        struct route_header *rh = &r->headers[r->nheaders++];
        json_object_object_foreach(h, key, val)
        {
            if (strcmp(key, "name") == 0 && json_object_is_type(val, json_type_string))
                rh->name = xstrdup(json_object_get_string(val));
            else if (strcmp(key, "value") == 0 && json_object_is_type(val, json_type_string))
                rh->value = xstrdup(json_object_get_string(val));
            else if (strcmp(key, "regex") == 0 && json_object_is_type(val, json_type_boolean))
                rh->regex = json_object_get_boolean(val);
            else {
                snprintf(err, errlen, "headers[%zu].%s: unknown key or wrong type", i, key);
                return -EINVAL;
            }
        }
        if (rh->name == NULL) {
            snprintf(err, errlen, "headers[%zu]: missing name", i);
            return -EINVAL;
        }
    }
    return 0;
}

static int get_fields(json_object *o, void *base, const struct jfield *f, size_t n,
                      const struct route_table *t, const char *what, size_t idx, char *err,
                      size_t errlen)
{
    if (!json_object_is_type(o, json_type_object)) {
        snprintf(err, errlen, "%s[%zu]: expected an object", what, idx);
        return -EINVAL;
    }
    json_object_object_foreach(o, key, val)
    {
        size_t i;
        for (i = 0; i < n; i++)
            if (strcmp(f[i].name, key) == 0)
                break;
        if (i == n) {
            snprintf(err, errlen, "%s[%zu]: unknown key \"%s\"", what, idx, key);
            return -EINVAL;
        }
        char *p = (char *)base + f[i].off;
        bool ok = true;
        int64_t iv = 0;
        switch (f[i].type) {
        case J_STR:
        case J_STR_REQ:
            if (json_object_is_type(val, json_type_null))
                break;
            ok = json_object_is_type(val, json_type_string);
            if (ok)
                *(char **)p = xstrdup(json_object_get_string(val));
            break;
        case J_BOOL:
            ok = json_object_is_type(val, json_type_boolean);
            if (ok)
                *(bool *)p = json_object_get_boolean(val);
            break;
        case J_INT32:
        case J_UINT32:
        case J_PORT:
        case J_INT:
            ok = json_object_is_type(val, json_type_int);
            iv = json_object_get_int64(val);
            if (f[i].type == J_INT32 || f[i].type == J_INT)
                ok = ok && iv >= INT32_MIN && iv <= INT32_MAX;
            else if (f[i].type == J_UINT32)
                ok = ok && iv >= 0 && iv <= UINT32_MAX;
            else
                ok = ok && iv > 0 && iv <= 65535;
            if (!ok)
                break;
            if (f[i].type == J_INT32)
                *(int32_t *)p = (int32_t)iv;
            else if (f[i].type == J_INT)
                *(int *)p = (int)iv;
            else if (f[i].type == J_UINT32)
                *(uint32_t *)p = (uint32_t)iv;
            else
                *(uint16_t *)p = (uint16_t)iv;
            break;
        case J_CLUSTER:
            ok = json_object_is_type(val, json_type_string);
            if (ok && cluster_index(t, json_object_get_string(val), (uint32_t *)p) != 0) {
                snprintf(err, errlen, "%s[%zu]: unknown cluster \"%s\"", what, idx,
                         json_object_get_string(val));
                return -EINVAL;
            }
            break;
        case J_HEADERS:
            if (get_headers(val, base, err, errlen) != 0)
                return -EINVAL;
            break;
        }
        if (!ok) {
            snprintf(err, errlen, "%s[%zu].%s: wrong type or out of range", what, idx, key);
            return -EINVAL;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *p = (const char *)base + f[i].off;
        bool missing = (f[i].type == J_STR_REQ && *(char *const *)p == NULL) ||
                       (f[i].type == J_PORT && *(const uint16_t *)p == 0) ||
                       (f[i].type == J_CLUSTER && !json_object_object_get_ex(o, f[i].name, NULL));
        if (missing) {
            snprintf(err, errlen, "%s[%zu]: missing \"%s\"", what, idx, f[i].name);
            return -EINVAL;
        }
    }
    return 0;
}

static json_object *get_array(json_object *o, const char *key, char *err, size_t errlen)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_array)) {
        snprintf(err, errlen, "snapshot: \"%s\" must be an array", key);
        return NULL;
    }
    return v;
}

int route_table_from_json(json_object *obj, struct route_table **out, char *err, size_t errlen)
{
    struct route_table *t = xcalloc(1, sizeof(*t));
    json_object *v, *routes, *clusters, *errors;

    *out = NULL;
    if (!json_object_is_type(obj, json_type_object)) {
        snprintf(err, errlen, "snapshot: expected an object");
        goto fail;
    }
    json_object_object_foreach(obj, key, val)
    {
        (void)val;
        if (strcmp(key, "type") && strcmp(key, "version") && strcmp(key, "routes") &&
            strcmp(key, "clusters") && strcmp(key, "errors") && strcmp(key, "protocol")) {
            snprintf(err, errlen, "snapshot: unknown key \"%s\"", key);
            goto fail;
        }
    }
    if (!json_object_object_get_ex(obj, "version", &v) || !json_object_is_type(v, json_type_int) ||
        json_object_get_int64(v) < 0) {
        snprintf(err, errlen, "snapshot: \"version\" must be a non-negative integer");
        goto fail;
    }
    t->version = (uint64_t)json_object_get_int64(v);
    if ((routes = get_array(obj, "routes", err, errlen)) == NULL ||
        (clusters = get_array(obj, "clusters", err, errlen)) == NULL ||
        (errors = get_array(obj, "errors", err, errlen)) == NULL)
        goto fail;

    size_t nc = json_object_array_length(clusters);
    t->clusters = xcalloc(nc, sizeof(*t->clusters));
    for (size_t i = 0; i < nc; i++) {
        t->nclusters++;
        if (get_fields(json_object_array_get_idx(clusters, i), &t->clusters[i], cluster_fields,
                       ARRAY_SIZE(cluster_fields), t, "clusters", i, err, errlen) != 0)
            goto fail;
        if (strcmp(t->clusters[i].scheme, "http") != 0) {
            snprintf(err, errlen, "clusters[%zu]: unsupported scheme \"%s\"", i,
                     t->clusters[i].scheme);
            goto fail;
        }
    }
    size_t nr = json_object_array_length(routes);
    t->routes = xcalloc(nr, sizeof(*t->routes));
    for (size_t i = 0; i < nr; i++) {
        struct route *r = &t->routes[i];
        t->nroutes++;
        r->case_sensitive = true;
        r->timeout_ms = ROUTE_DEFAULT_TIMEOUT_MS;
        if (get_fields(json_object_array_get_idx(routes, i), r, route_fields,
                       ARRAY_SIZE(route_fields), t, "routes", i, err, errlen) != 0)
            goto fail;
    }
    size_t ne = json_object_array_length(errors);
    t->errors = xcalloc(ne, sizeof(*t->errors));
    for (size_t i = 0; i < ne; i++) {
        t->nerrors++;
        if (get_fields(json_object_array_get_idx(errors, i), &t->errors[i], error_fields,
                       ARRAY_SIZE(error_fields), t, "errors", i, err, errlen) != 0)
            goto fail;
    }
    *out = t;
    return 0;
fail:
    route_table_free(t);
    return -EINVAL;
}
