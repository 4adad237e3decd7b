#include "route.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opts.h"
#include "route_policy.h"
#include "xalloc.h"

static void free_matches(struct route_header *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
}

void route_header_adds_free(struct route_header_add *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
}

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void free_sub(struct route_regex_sub *s)
{
    free(s->pattern);
    free(s->substitution);
}

static void free_ip_rules(struct route_ip_rule *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].cidr);
    free(v);
}

void route_free_fields(struct route *r)
{
    free(r->ns);
    free(r->svc);
    free(r->mapping);
    free(r->prefix);
    free(r->method);
    free(r->host);
    free_matches(r->headers, r->nheaders);
    free_matches(r->query, r->nquery);
    free(r->rewrite);
    free_sub(&r->regex_rewrite);
    free(r->host_rewrite);
    free(r->host_redirect);
    free(r->redirect_scheme);
    free(r->path_redirect);
    free(r->prefix_redirect);
    free_sub(&r->regex_redirect);
    route_header_adds_free(r->add_request_headers, r->nadd_request_headers);
    route_header_adds_free(r->add_response_headers, r->nadd_response_headers);
    free_strs(r->remove_request_headers, r->nremove_request_headers);
    free_strs(r->remove_response_headers, r->nremove_response_headers);
    route_policy_free_fields(&r->policy);
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
    free(c->sni);
    route_cluster_policy_free_fields(&c->policy);
    memset(c, 0, sizeof(*c));
}

void route_settings_init(struct route_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->use_remote_address = true; /* Ambassador's default */
}

void route_settings_free_fields(struct route_settings *s)
{
    free_ip_rules(s->ip_allow, s->nip_allow);
    free_ip_rules(s->ip_deny, s->nip_deny);
    free(s->server_name);
    route_settings_init(s);
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
    route_settings_free_fields(&t->settings);
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

static size_t kvs_weight(const struct route_header *v, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        w += kv_weight(v[i].name, v[i].value, v[i].regex);
    return w;
}

size_t route_header_weight(const struct route *r)
{
    size_t w = 0;
    if (r->host)
        w += kv_weight(":authority", r->host, r->host_regex);
    if (r->method)
        w += kv_weight(":method", r->method, r->method_regex);
    return w + kvs_weight(r->headers, r->nheaders);
}

size_t route_query_weight(const struct route *r)
{
    return kvs_weight(r->query, r->nquery);
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
    CMP_DESC(route_query_weight(a), route_query_weight(b));
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

/* One table per struct drives writing, reading and comparing, so the three cannot drift. */
enum jtype {
    J_STR,      /* char *, omitted when NULL */
    J_STR_REQ,  /* char *, required */
    J_BOOL,     /* bool, always written */
    J_FLAG,     /* bool, written only when true */
    J_INT32,    /* int32_t */
    J_UINT32,   /* uint32_t */
    J_PORT,     /* uint16_t, 1-65535, required */
    J_INT,      /* int */
    J_CLUSTER,  /* uint32_t index, written as the cluster's name; required */
    J_MATCHES,  /* struct route_header[], count at noff; omitted when empty */
    J_ADDS,     /* struct route_header_add[], count at noff; omitted when empty */
    J_STRS,     /* char *[], count at noff; omitted when empty */
    J_SUB,      /* struct route_regex_sub, omitted when pattern is NULL */
    J_REDIRECT, /* uint16_t redirect status, omitted when 0 */
    J_IPRULES,  /* struct route_ip_rule[], count at noff; omitted when empty */
    J_OPS,      /* a policy field: read, written and compared by ops (route_policy.h) */
};

struct jfield {
    const char *name;
    enum jtype type;
    size_t off;
    size_t noff;                      /* list types: where the element count lives */
    const struct route_json_ops *ops; /* J_OPS */
};

#define RF(n, t, f)                                                                                \
    {                                                                                              \
        n, t, offsetof(struct route, f), 0, NULL                                                   \
    }
#define RL(n, t, f, c)                                                                             \
    {                                                                                              \
        n, t, offsetof(struct route, f), offsetof(struct route, c), NULL                           \
    }
#define RO(n, f, ops)                                                                              \
    {                                                                                              \
        n, J_OPS, offsetof(struct route, f), 0, ops                                                \
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
    RF("method_regex", J_FLAG, method_regex),
    RF("host", J_STR, host),
    RF("host_regex", J_FLAG, host_regex),
    RL("headers", J_MATCHES, headers, nheaders),
    RL("query_parameters", J_MATCHES, query, nquery),
    RF("precedence", J_INT32, precedence),
    RF("cluster", J_CLUSTER, cluster),
    RF("rewrite", J_STR, rewrite),
    RF("regex_rewrite", J_SUB, regex_rewrite),
    RF("host_rewrite", J_STR, host_rewrite),
    RF("timeout_ms", J_UINT32, timeout_ms),
    RF("host_redirect", J_STR, host_redirect),
    RF("redirect_scheme", J_STR, redirect_scheme),
    RF("path_redirect", J_STR, path_redirect),
    RF("prefix_redirect", J_STR, prefix_redirect),
    RF("regex_redirect", J_SUB, regex_redirect),
    RF("redirect_response_code", J_REDIRECT, redirect_code),
    RL("add_request_headers", J_ADDS, add_request_headers, nadd_request_headers),
    RL("add_response_headers", J_ADDS, add_response_headers, nadd_response_headers),
    RL("remove_request_headers", J_STRS, remove_request_headers, nremove_request_headers),
    RL("remove_response_headers", J_STRS, remove_response_headers, nremove_response_headers),
    RO("group_size", policy.group_size, &route_json_uint_opt),
    RO("weight", policy.weight, &route_json_uint_opt),
    RO("idle_timeout_ms", policy.idle_timeout_ms, &route_json_uint_opt),
    RO("retry_policy", policy.retry, &route_json_retry),
    RO("cors", policy.cors, &route_json_cors),
    RO("rate_limits", policy.rate_limits, &route_json_rate_limits),
    RO("legate_rate_limit", policy.local_rl, &route_json_local_rl),
    RO("allow_upgrade", policy.upgrades, &route_json_upgrades),
    RO("shadow", policy.shadow, &route_json_shadow),
};
#undef RF
#undef RL
#undef RO

#define CF(n, t, f)                                                                                \
    {                                                                                              \
        n, t, offsetof(struct route_cluster, f), 0, NULL                                           \
    }
#define CO(n, f, ops)                                                                              \
    {                                                                                              \
        n, J_OPS, offsetof(struct route_cluster, f), 0, ops                                        \
    }
static const struct jfield cluster_fields[] = {
    CF("name", J_STR_REQ, name),
    CF("scheme", J_STR_REQ, scheme),
    CF("host", J_STR_REQ, host),
    CF("port", J_PORT, port),
    CF("sni", J_STR, sni),
    CO("connect_timeout_ms", policy.connect_timeout_ms, &route_json_uint_opt),
    CO("idle_timeout_ms", policy.idle_timeout_ms, &route_json_uint_opt),
    CO("max_connection_lifetime_ms", policy.max_lifetime_ms, &route_json_uint_opt),
    CO("circuit_breakers", policy.cb, &route_json_circuit_breakers),
    CO("load_balancer", policy.lb, &route_json_lb),
};
#undef CF
#undef CO

#define EF(n, t, f)                                                                                \
    {                                                                                              \
        n, t, offsetof(struct route_error, f), 0, NULL                                             \
    }
static const struct jfield error_fields[] = {
    EF("namespace", J_STR, ns), EF("service", J_STR, svc), EF("mapping", J_STR, mapping),
    EF("field", J_STR, field),  EF("line", J_INT, line),   EF("message", J_STR_REQ, message),
};
#undef EF

#define SF(n, t, f)                                                                                \
    {                                                                                              \
        n, t, offsetof(struct route_settings, f), 0, NULL                                          \
    }
#define SL(n, t, f, c)                                                                             \
    {                                                                                              \
        n, t, offsetof(struct route_settings, f), offsetof(struct route_settings, c), NULL         \
    }
static const struct jfield settings_fields[] = {
    SF("use_remote_address", J_BOOL, use_remote_address),
    SF("xff_num_trusted_hops", J_UINT32, xff_num_trusted_hops),
    SF("x_forwarded_proto_redirect", J_BOOL, x_forwarded_proto_redirect),
    SF("merge_slashes", J_BOOL, merge_slashes),
    SL("ip_allow", J_IPRULES, ip_allow, nip_allow),
    SL("ip_deny", J_IPRULES, ip_deny, nip_deny),
    SF("server_name", J_STR, server_name),
};
#undef SF
#undef SL

#define AT(base, off, type)  ((type *)((char *)(base) + (off)))
#define CAT(base, off, type) ((const type *)((const char *)(base) + (off)))

static bool is_redirect_code(int64_t c)
{
    return c == 301 || c == 302 || c == 303 || c == 307 || c == 308;
}

/* ---- writing ---- */

static json_object *put_value(const void *base, const struct jfield *f, const struct route_table *t)
{
    size_t n = f->noff ? *CAT(base, f->noff, size_t) : 0;
    json_object *v = NULL;
    switch (f->type) {
    case J_STR:
    case J_STR_REQ: {
        const char *s = *CAT(base, f->off, char *);
        return s ? json_object_new_string(s) : NULL;
    }
    case J_BOOL:
        return json_object_new_boolean(*CAT(base, f->off, bool));
    case J_FLAG:
        return *CAT(base, f->off, bool) ? json_object_new_boolean(1) : NULL;
    case J_INT32:
        return json_object_new_int(*CAT(base, f->off, int32_t));
    case J_UINT32:
        return json_object_new_int64(*CAT(base, f->off, uint32_t));
    case J_PORT:
        return json_object_new_int(*CAT(base, f->off, uint16_t));
    case J_INT:
        return json_object_new_int(*CAT(base, f->off, int));
    case J_CLUSTER:
        return json_object_new_string(t->clusters[*CAT(base, f->off, uint32_t)].name);
    case J_REDIRECT: {
        uint16_t c = *CAT(base, f->off, uint16_t);
        return c ? json_object_new_int(c) : NULL;
    }
    case J_SUB: {
        const struct route_regex_sub *s = CAT(base, f->off, struct route_regex_sub);
        if (s->pattern == NULL)
            return NULL;
        v = json_object_new_object();
        json_object_object_add(v, "pattern", json_object_new_string(s->pattern));
        json_object_object_add(v, "substitution",
                               json_object_new_string(s->substitution ? s->substitution : ""));
        return v;
    }
    case J_MATCHES:
    case J_ADDS:
    case J_STRS:
    case J_IPRULES:
        break;
    case J_OPS:
        return f->ops->put(CAT(base, f->off, void), t);
    }
    if (n == 0)
        return NULL;
    v = json_object_new_array_ext((int)n);
    for (size_t i = 0; i < n; i++) {
        json_object *e = NULL;
        if (f->type == J_STRS) {
            e = json_object_new_string((*CAT(base, f->off, char **))[i]);
        } else if (f->type == J_MATCHES) {
            const struct route_header *h = &(*CAT(base, f->off, struct route_header *))[i];
            e = json_object_new_object();
            json_object_object_add(e, "name", json_object_new_string(h->name));
            if (h->value)
                json_object_object_add(e, "value", json_object_new_string(h->value));
            if (h->regex)
                json_object_object_add(e, "regex", json_object_new_boolean(1));
        } else if (f->type == J_ADDS) {
            const struct route_header_add *h = &(*CAT(base, f->off, struct route_header_add *))[i];
            e = json_object_new_object();
            json_object_object_add(e, "name", json_object_new_string(h->name));
            json_object_object_add(e, "value", json_object_new_string(h->value));
            json_object_object_add(e, "append", json_object_new_boolean(h->append));
        } else {
            const struct route_ip_rule *r = &(*CAT(base, f->off, struct route_ip_rule *))[i];
            e = json_object_new_object();
            json_object_object_add(e, r->remote ? "remote" : "peer",
                                   json_object_new_string(r->cidr));
        }
        json_object_array_add(v, e);
    }
    return v;
}

static json_object *put_fields(const void *base, const struct jfield *f, size_t n,
                               const struct route_table *t)
{
    json_object *o = json_object_new_object();
    for (size_t i = 0; i < n; i++) {
        json_object *v = put_value(base, &f[i], t);
        /* Absent optional values are omitted; required strings are written as null when
         * missing (a table built in memory may lack them; the reader refuses it). */
        if (v != NULL || f[i].type == J_STR_REQ)
            json_object_object_add(o, f[i].name, v);
    }
    return o;
}

json_object *route_table_to_json(const struct route_table *t)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "version", json_object_new_int64((int64_t)t->version));
    json_object *routes = json_object_new_array_ext((int)t->nroutes);
    for (size_t i = 0; i < t->nroutes; i++)
        json_object_array_add(routes,
                              put_fields(&t->routes[i], route_fields, ARRAY_SIZE(route_fields), t));
    json_object *clusters = json_object_new_array_ext((int)t->nclusters);
    for (size_t i = 0; i < t->nclusters; i++)
        json_object_array_add(
            clusters, put_fields(&t->clusters[i], cluster_fields, ARRAY_SIZE(cluster_fields), t));
    json_object *errors = json_object_new_array_ext((int)t->nerrors);
    for (size_t i = 0; i < t->nerrors; i++)
        json_object_array_add(errors,
                              put_fields(&t->errors[i], error_fields, ARRAY_SIZE(error_fields), t));
    json_object_object_add(o, "routes", routes);
    json_object_object_add(o, "clusters", clusters);
    json_object_object_add(o, "errors", errors);
    json_object_object_add(
        o, "settings", put_fields(&t->settings, settings_fields, ARRAY_SIZE(settings_fields), t));
    return o;
}

/* ---- reading ---- */

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

/* Reads a string member of object o into *dst (a new copy). Returns 1 when read, 0 when
 * absent, -EINVAL when present with another type. */
static int member_string(json_object *o, const char *key, char **dst)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v))
        return 0;
    if (!json_object_is_type(v, json_type_string))
        return -EINVAL;
    *dst = xstrdup(json_object_get_string(v));
    return 1;
}

/* Checks that every key of o is in names (n of them). Returns the first other key or NULL. */
static const char *stray_key(json_object *o, const char *const *names, size_t n)
{
    json_object_object_foreach(o, key, val)
    {
        (void)val;
        size_t i;
        for (i = 0; i < n && strcmp(names[i], key) != 0; i++)
            ;
        if (i == n)
            return key;
    }
    return NULL;
}

/* Reads one element of a list-typed field into slot i of the (zeroed) array. */
static int get_element(json_object *e, const struct jfield *f, void *arr, size_t i,
                       const char *label, char *err, size_t errlen)
{
    static const char *const match_keys[] = { "name", "value", "regex" };
    static const char *const add_keys[] = { "name", "value", "append" };
    const char *what = f->name;

    if (f->type == J_STRS) {
        if (!json_object_is_type(e, json_type_string)) {
            snprintf(err, errlen, "%s.%s[%zu]: expected a string", label, what, i);
            return -EINVAL;
        }
        ((char **)arr)[i] = xstrdup(json_object_get_string(e));
        return 0;
    }
    if (!json_object_is_type(e, json_type_object)) {
        snprintf(err, errlen, "%s.%s[%zu]: expected an object", label, what, i);
        return -EINVAL;
    }
    if (f->type == J_IPRULES) {
        struct route_ip_rule *r = &((struct route_ip_rule *)arr)[i];
        json_object *v = NULL;
        bool remote = json_object_object_get_ex(e, "remote", &v);
        if ((remote || json_object_object_get_ex(e, "peer", &v)) &&
            json_object_object_length(e) == 1 && json_object_is_type(v, json_type_string) &&
            route_ip_rule_parse(json_object_get_string(v), remote, r) == 0)
            return 0;
        snprintf(err, errlen, "%s.%s[%zu]: expected {\"peer\"|\"remote\": CIDR}", label, what, i);
        return -EINVAL;
    }
    const char *stray = stray_key(e, f->type == J_MATCHES ? match_keys : add_keys, 3);
    if (stray != NULL) {
        snprintf(err, errlen, "%s.%s[%zu].%s: unknown key or wrong type", label, what, i, stray);
        return -EINVAL;
    }
    char **name, **value;
    bool *flag;
    if (f->type == J_MATCHES) {
        struct route_header *h = &((struct route_header *)arr)[i];
        name = &h->name, value = &h->value, flag = &h->regex;
    } else {
        struct route_header_add *h = &((struct route_header_add *)arr)[i];
        name = &h->name, value = &h->value, flag = &h->append;
        *flag = true;
    }
    const char *flag_key = f->type == J_MATCHES ? "regex" : "append";
    json_object *b = NULL;
    int rn = member_string(e, "name", name), rv = member_string(e, "value", value);
    bool bad_flag =
        json_object_object_get_ex(e, flag_key, &b) && !json_object_is_type(b, json_type_boolean);
    if (rn < 0 || rv < 0 || bad_flag) {
        const char *bad = rn < 0 ? "name" : rv < 0 ? "value" : flag_key;
        snprintf(err, errlen, "%s.%s[%zu].%s: unknown key or wrong type", label, what, i, bad);
        return -EINVAL;
    }
    if (b != NULL)
        *flag = json_object_get_boolean(b);
    if (*name == NULL) {
        snprintf(err, errlen, "%s[%zu]: missing name", what, i);
        return -EINVAL;
    }
    if (f->type == J_ADDS && *value == NULL) {
        snprintf(err, errlen, "%s[%zu]: missing value", what, i);
        return -EINVAL;
    }
    return 0;
}

static int get_list(json_object *v, const struct jfield *f, void *base, const char *label,
                    char *err, size_t errlen)
{
    if (!json_object_is_type(v, json_type_array)) {
        snprintf(err, errlen, "%s: expected an array", f->name);
        return -EINVAL;
    }
    size_t n = json_object_array_length(v);
    size_t esize = f->type == J_MATCHES ? sizeof(struct route_header)
                   : f->type == J_ADDS  ? sizeof(struct route_header_add)
                   : f->type == J_STRS  ? sizeof(char *)
                                        : sizeof(struct route_ip_rule);
    void *arr = xcalloc(n ? n : 1, esize);
    size_t *count = AT(base, f->noff, size_t);
    *AT(base, f->off, void *) = arr;
    for (*count = 0; *count < n; ++*count)
        if (get_element(json_object_array_get_idx(v, *count), f, arr, *count, label, err, errlen) !=
            0) {
            ++*count; /* the partly filled element is freed with the rest */
            return -EINVAL;
        }
    return 0;
}

static int get_sub(json_object *v, struct route_regex_sub *s, const char *label, const char *key,
                   char *err, size_t errlen)
{
    static const char *const keys[] = { "pattern", "substitution" };
    if (!json_object_is_type(v, json_type_object) || stray_key(v, keys, 2) != NULL ||
        member_string(v, "pattern", &s->pattern) != 1 ||
        member_string(v, "substitution", &s->substitution) != 1) {
        snprintf(err, errlen, "%s.%s: expected {\"pattern\": string, \"substitution\": string}",
                 label, key);
        return -EINVAL;
    }
    return 0;
}

static int get_fields(json_object *o, void *base, const struct jfield *f, size_t n,
                      const struct route_table *t, const char *label, char *err, size_t errlen)
{
    if (!json_object_is_type(o, json_type_object)) {
        snprintf(err, errlen, "%s: expected an object", label);
        return -EINVAL;
    }
    json_object_object_foreach(o, key, val)
    {
        size_t i;
        for (i = 0; i < n; i++)
            if (strcmp(f[i].name, key) == 0)
                break;
        if (i == n) {
            snprintf(err, errlen, "%s: unknown key \"%s\"", label, key);
            return -EINVAL;
        }
        bool ok = true;
        int64_t iv = 0;
        switch (f[i].type) {
        case J_STR:
        case J_STR_REQ:
            if (json_object_is_type(val, json_type_null))
                break;
            ok = json_object_is_type(val, json_type_string);
            if (ok)
                *AT(base, f[i].off, char *) = xstrdup(json_object_get_string(val));
            break;
        case J_BOOL:
        case J_FLAG:
            ok = json_object_is_type(val, json_type_boolean);
            if (ok)
                *AT(base, f[i].off, bool) = json_object_get_boolean(val);
            break;
        case J_INT32:
        case J_UINT32:
        case J_PORT:
        case J_INT:
        case J_REDIRECT:
            ok = json_object_is_type(val, json_type_int);
            iv = json_object_get_int64(val);
            if (f[i].type == J_INT32 || f[i].type == J_INT)
                ok = ok && iv >= INT32_MIN && iv <= INT32_MAX;
            else if (f[i].type == J_UINT32)
                ok = ok && iv >= 0 && iv <= UINT32_MAX;
            else if (f[i].type == J_REDIRECT)
                ok = ok && is_redirect_code(iv);
            else
                ok = ok && iv > 0 && iv <= 65535;
            if (!ok)
                break;
            if (f[i].type == J_INT32)
                *AT(base, f[i].off, int32_t) = (int32_t)iv;
            else if (f[i].type == J_INT)
                *AT(base, f[i].off, int) = (int)iv;
            else if (f[i].type == J_UINT32)
                *AT(base, f[i].off, uint32_t) = (uint32_t)iv;
            else
                *AT(base, f[i].off, uint16_t) = (uint16_t)iv;
            break;
        case J_CLUSTER:
            ok = json_object_is_type(val, json_type_string);
            if (ok &&
                cluster_index(t, json_object_get_string(val), AT(base, f[i].off, uint32_t)) != 0) {
                snprintf(err, errlen, "%s: unknown cluster \"%s\"", label,
                         json_object_get_string(val));
                return -EINVAL;
            }
            break;
        case J_MATCHES:
        case J_ADDS:
        case J_STRS:
        case J_IPRULES:
            if (get_list(val, &f[i], base, label, err, errlen) != 0)
                return -EINVAL;
            break;
        case J_OPS:
            if (f[i].ops->get(val, AT(base, f[i].off, void), t, label, key, err, errlen) != 0)
                return -EINVAL;
            break;
        case J_SUB:
            if (get_sub(val, AT(base, f[i].off, struct route_regex_sub), label, key, err, errlen) !=
                0)
                return -EINVAL;
            break;
        }
        if (!ok) {
            snprintf(err, errlen, "%s.%s: wrong type or out of range", label, key);
            return -EINVAL;
        }
    }
    for (size_t i = 0; i < n; i++) {
        bool missing = (f[i].type == J_STR_REQ && *AT(base, f[i].off, char *) == NULL) ||
                       (f[i].type == J_PORT && *AT(base, f[i].off, uint16_t) == 0) ||
                       (f[i].type == J_CLUSTER && !json_object_object_get_ex(o, f[i].name, NULL));
        if (missing) {
            snprintf(err, errlen, "%s: missing \"%s\"", label, f[i].name);
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
    static const char *const top_keys[] = { "type",   "version",  "routes",  "clusters",
                                            "errors", "protocol", "settings" };
    struct route_table *t = xcalloc(1, sizeof(*t));
    json_object *v, *routes, *clusters, *errors;
    char label[48];
    const char *stray;

    *out = NULL;
    route_settings_init(&t->settings);
    if (!json_object_is_type(obj, json_type_object)) {
        snprintf(err, errlen, "snapshot: expected an object");
        goto fail;
    }
    if ((stray = stray_key(obj, top_keys, ARRAY_SIZE(top_keys))) != NULL) {
        snprintf(err, errlen, "snapshot: unknown key \"%s\"", stray);
        goto fail;
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
        struct route_cluster *c = &t->clusters[i];
        t->nclusters++;
        snprintf(label, sizeof(label), "clusters[%zu]", i);
        if (get_fields(json_object_array_get_idx(clusters, i), c, cluster_fields,
                       ARRAY_SIZE(cluster_fields), t, label, err, errlen) != 0)
            goto fail;
        bool tls = strcmp(c->scheme, "https") == 0;
        if (!tls && strcmp(c->scheme, "http") != 0) {
            snprintf(err, errlen, "%s: unsupported scheme \"%s\"", label, c->scheme);
            goto fail;
        }
        if (!tls && c->sni != NULL) {
            snprintf(err, errlen, "%s: \"sni\" needs scheme https", label);
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
        snprintf(label, sizeof(label), "routes[%zu]", i);
        if (get_fields(json_object_array_get_idx(routes, i), r, route_fields,
                       ARRAY_SIZE(route_fields), t, label, err, errlen) != 0)
            goto fail;
    }
    size_t ne = json_object_array_length(errors);
    t->errors = xcalloc(ne, sizeof(*t->errors));
    for (size_t i = 0; i < ne; i++) {
        t->nerrors++;
        snprintf(label, sizeof(label), "errors[%zu]", i);
        if (get_fields(json_object_array_get_idx(errors, i), &t->errors[i], error_fields,
                       ARRAY_SIZE(error_fields), t, label, err, errlen) != 0)
            goto fail;
    }
    if (json_object_object_get_ex(obj, "settings", &v) &&
        get_fields(v, &t->settings, settings_fields, ARRAY_SIZE(settings_fields), t, "settings",
                   err, errlen) != 0)
        goto fail;
    *out = t;
    return 0;
fail:
    route_table_free(t);
    return -EINVAL;
}

/* ---- comparing ---- */

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool element_eq(const struct jfield *f, const void *a, const void *b, size_t i)
{
    switch (f->type) {
    case J_STRS:
        return str_eq(((char *const *)a)[i], ((char *const *)b)[i]);
    case J_MATCHES: {
        const struct route_header *x = &((const struct route_header *)a)[i];
        const struct route_header *y = &((const struct route_header *)b)[i];
        return str_eq(x->name, y->name) && str_eq(x->value, y->value) && x->regex == y->regex;
    }
    case J_ADDS: {
        const struct route_header_add *x = &((const struct route_header_add *)a)[i];
        const struct route_header_add *y = &((const struct route_header_add *)b)[i];
        return str_eq(x->name, y->name) && str_eq(x->value, y->value) && x->append == y->append;
    }
    default: {
        const struct route_ip_rule *x = &((const struct route_ip_rule *)a)[i];
        const struct route_ip_rule *y = &((const struct route_ip_rule *)b)[i];
        return str_eq(x->cidr, y->cidr) && x->remote == y->remote;
    }
    }
}

static bool fields_equal(const void *a, const void *b, const struct jfield *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t off = f[i].off;
        switch (f[i].type) {
        case J_STR:
        case J_STR_REQ:
            if (!str_eq(*CAT(a, off, char *), *CAT(b, off, char *)))
                return false;
            break;
        case J_BOOL:
        case J_FLAG:
            if (*CAT(a, off, bool) != *CAT(b, off, bool))
                return false;
            break;
        case J_INT32:
        case J_UINT32:
        case J_CLUSTER: /* same clusters in the same order: indexes compare */
            if (*CAT(a, off, uint32_t) != *CAT(b, off, uint32_t))
                return false;
            break;
        case J_INT:
            if (*CAT(a, off, int) != *CAT(b, off, int))
                return false;
            break;
        case J_PORT:
        case J_REDIRECT:
            if (*CAT(a, off, uint16_t) != *CAT(b, off, uint16_t))
                return false;
            break;
        case J_SUB: {
            const struct route_regex_sub *x = CAT(a, off, struct route_regex_sub);
            const struct route_regex_sub *y = CAT(b, off, struct route_regex_sub);
            if (!str_eq(x->pattern, y->pattern) || !str_eq(x->substitution, y->substitution))
                return false;
            break;
        }
        case J_OPS:
            if (!f[i].ops->eq(CAT(a, off, void), CAT(b, off, void)))
                return false;
            break;
        case J_MATCHES:
        case J_ADDS:
        case J_STRS:
        case J_IPRULES: {
            size_t na = *CAT(a, f[i].noff, size_t);
            if (na != *CAT(b, f[i].noff, size_t))
                return false;
            for (size_t k = 0; k < na; k++)
                if (!element_eq(&f[i], *CAT(a, off, void *), *CAT(b, off, void *), k))
                    return false;
            break;
        }
        }
    }
    return true;
}

bool route_table_equal(const struct route_table *a, const struct route_table *b)
{
    if (a->nroutes != b->nroutes || a->nclusters != b->nclusters || a->nerrors != b->nerrors ||
        !fields_equal(&a->settings, &b->settings, settings_fields, ARRAY_SIZE(settings_fields)))
        return false;
    for (size_t i = 0; i < a->nclusters; i++)
        if (!fields_equal(&a->clusters[i], &b->clusters[i], cluster_fields,
                          ARRAY_SIZE(cluster_fields)))
            return false;
    for (size_t i = 0; i < a->nroutes; i++)
        if (!fields_equal(&a->routes[i], &b->routes[i], route_fields, ARRAY_SIZE(route_fields)))
            return false;
    for (size_t i = 0; i < a->nerrors; i++)
        if (!fields_equal(&a->errors[i], &b->errors[i], error_fields, ARRAY_SIZE(error_fields)))
            return false;
    return true;
}

/* ---- ip_allow / ip_deny blocks ---- */

int route_ip_rule_parse(const char *text, bool remote, struct route_ip_rule *out)
{
    char addr[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(text, '/');
    size_t alen = slash ? (size_t)(slash - text) : strlen(text);
    if (alen == 0 || alen >= sizeof(addr))
        return -EINVAL;
    memcpy(addr, text, alen);
    addr[alen] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, addr, out->addr) == 1)
        out->family = 4;
    else if (inet_pton(AF_INET6, addr, out->addr) == 1)
        out->family = 6;
    else
        return -EINVAL;
    uint64_t max = out->family == 4 ? 32 : 128, bits = max;
    if (slash != NULL && parse_uint(slash + 1, 0, max, &bits) != 0)
        return -EINVAL;
    out->bits = (uint8_t)bits;
    /* Host bits set ("10.0.0.1/8") are a typo more often than not: refuse rather than guess. */
    for (size_t i = bits; i < max; i++)
        if (out->addr[i / 8] & (0x80 >> (i % 8)))
            return -EINVAL;
    char norm[INET6_ADDRSTRLEN];
    inet_ntop(out->family == 4 ? AF_INET : AF_INET6, out->addr, norm, sizeof(norm));
    size_t room = strlen(norm) + 8;
    out->cidr = xmalloc(room);
    snprintf(out->cidr, room, "%s/%u", norm, (unsigned)bits);
    out->remote = remote;
    return 0;
}

bool route_ip_rule_contains(const struct route_ip_rule *rule, int family, const uint8_t *addr)
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    if (family == 6 && rule->family == 4 && memcmp(addr, mapped, 12) == 0) {
        family = 4;
        addr += 12;
    }
    if (family != rule->family)
        return false;
    size_t full = rule->bits / 8, rest = rule->bits % 8;
    if (memcmp(addr, rule->addr, full) != 0)
        return false;
    return rest == 0 || ((addr[full] ^ rule->addr[full]) & (0xff << (8 - rest))) == 0;
}
