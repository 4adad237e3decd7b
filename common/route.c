#include "route.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opts.h"
#include "route_arena.h"
#include "route_json.h"
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

const struct route_policy route_policy_none = { 0 };

void route_init(struct route *r)
{
    memset(r, 0, sizeof(*r));
    r->policy = &route_policy_none;
}

struct route_policy *route_policy_mut(struct route *r)
{
    if (r->policy == &route_policy_none)
        r->policy = xcalloc(1, sizeof(*r->policy));
    /* Not the shared one: the route's own, which it may write. */
    return (struct route_policy *)r->policy;
}

/* Frees a route's own policy; the shared one (and NULL, a moved-from route's) stays. */
static void free_policy(const struct route_policy *p)
{
    if (p == NULL || p == &route_policy_none)
        return;
    struct route_policy *own = (struct route_policy *)p; /* owned by the route being freed */
    route_policy_free_fields(own);
    free(own);
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
    free_policy(r->policy);
    route_init(r);
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
    if (t->arena == NULL) {
        /* Built in memory: every field is its own allocation. */
        for (size_t i = 0; i < t->nroutes; i++)
            route_free_fields(&t->routes[i]);
        for (size_t i = 0; i < t->nclusters; i++)
            route_cluster_free_fields(&t->clusters[i]);
        for (size_t i = 0; i < t->nerrors; i++)
            route_error_free_fields(&t->errors[i]);
        route_settings_free_fields(&t->settings);
    }
    route_arena_free(t->arena);
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

/* ---- JSON form: the types (route_json.h) ---- */

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int wrong_type(struct route_jr *r, const struct route_field *f)
{
    return route_jr_fail(r, "%s.%s: wrong type or out of range", route_jr_label(r), f->name);
}

static void str_write(struct route_jw *w, const struct route_field *f, const void *base,
                      const struct route_table *t)
{
    (void)t;
    const char *s = *ROUTE_CFIELD(base, f, char *);
    if (s == NULL && !(f->flags & ROUTE_F_REQUIRED))
        return;
    route_jw_key(w, f->name);
    route_jw_str(w, s);
}

static int str_read(struct route_jr *r, const struct route_field *f, json_object *v, void *base)
{
    if (json_object_is_type(v, json_type_null))
        return 0;
    if (!json_object_is_type(v, json_type_string))
        return wrong_type(r, f);
    *ROUTE_FIELD(base, f, char *) = route_jr_str(r, v, !(f->flags & ROUTE_F_UNIQUE));
    return 0;
}

static bool str_field_eq(const struct route_field *f, const void *a, const void *b)
{
    return str_eq(*ROUTE_CFIELD(a, f, char *), *ROUTE_CFIELD(b, f, char *));
}

const struct route_json_ops route_json_str = { str_write, str_read, str_field_eq };

/* bool: always written, or only when true with ROUTE_F_OMIT. */
static void bool_write(struct route_jw *w, const struct route_field *f, const void *base,
                       const struct route_table *t)
{
    (void)t;
    bool v = *ROUTE_CFIELD(base, f, bool);
    if (!v && (f->flags & ROUTE_F_OMIT))
        return;
    route_jw_key(w, f->name);
    route_jw_bool(w, v);
}

static int bool_read(struct route_jr *r, const struct route_field *f, json_object *v, void *base)
{
    if (!json_object_is_type(v, json_type_boolean))
        return wrong_type(r, f);
    *ROUTE_FIELD(base, f, bool) = json_object_get_boolean(v);
    return 0;
}

static bool bool_eq(const struct route_field *f, const void *a, const void *b)
{
    return *ROUTE_CFIELD(a, f, bool) == *ROUTE_CFIELD(b, f, bool);
}

static const struct route_json_ops ops_bool = { bool_write, bool_read, bool_eq };

/* Integers of every width and range: one set of ops, the field's arg says which. */
struct int_kind {
    int64_t min, max;
    unsigned size;        /* of the member: 2 (uint16_t) or 4 */
    bool is_signed;       /* 4 bytes: int32_t (and int, the same size here) or uint32_t */
    bool omit_zero;       /* not written when 0 */
    const uint16_t *only; /* when set, the values allowed, 0-terminated */
};

_Static_assert(sizeof(int) == sizeof(int32_t), "route_error.line is read as an int32_t");

static int64_t int_get(const struct route_field *f, const void *base)
{
    const struct int_kind *k = f->arg;
    if (k->size == 2)
        return *ROUTE_CFIELD(base, f, uint16_t);
    if (k->is_signed)
        return *ROUTE_CFIELD(base, f, int32_t);
    return *ROUTE_CFIELD(base, f, uint32_t);
}

static void int_write(struct route_jw *w, const struct route_field *f, const void *base,
                      const struct route_table *t)
{
    (void)t;
    int64_t v = int_get(f, base);
    if (v == 0 && ((const struct int_kind *)f->arg)->omit_zero)
        return;
    route_jw_key(w, f->name);
    route_jw_int(w, v);
}

static int int_read(struct route_jr *r, const struct route_field *f, json_object *v, void *base)
{
    const struct int_kind *k = f->arg;
    int64_t i = json_object_get_int64(v);
    bool ok = json_object_is_type(v, json_type_int) && i >= k->min && i <= k->max;
    if (ok && k->only != NULL) {
        const uint16_t *o = k->only;
        while (*o != 0 && *o != i)
            o++;
        ok = *o != 0;
    }
    if (!ok)
        return wrong_type(r, f);
    if (k->size == 2)
        *ROUTE_FIELD(base, f, uint16_t) = (uint16_t)i;
    else if (k->is_signed)
        *ROUTE_FIELD(base, f, int32_t) = (int32_t)i;
    else
        *ROUTE_FIELD(base, f, uint32_t) = (uint32_t)i;
    return 0;
}

static bool int_eq(const struct route_field *f, const void *a, const void *b)
{
    return int_get(f, a) == int_get(f, b);
}

static const struct route_json_ops ops_int = { int_write, int_read, int_eq };

static const uint16_t redirect_codes[] = { 301, 302, 303, 307, 308, 0 };
static const struct int_kind int32 = { INT32_MIN, INT32_MAX, 4, true, false, NULL };
static const struct int_kind uint32 = { 0, UINT32_MAX, 4, false, false, NULL };
static const struct int_kind uint32_opt = { 0, UINT32_MAX, 4, false, true, NULL };
static const struct int_kind port = { 1, 65535, 2, false, false, NULL };
static const struct int_kind redirect = { 301, 308, 2, false, true, redirect_codes };

static bool u32_eq(const struct route_field *f, const void *a, const void *b)
{
    return *ROUTE_CFIELD(a, f, uint32_t) == *ROUTE_CFIELD(b, f, uint32_t);
}

/* uint32_t index into the table's clusters, written as the cluster's name; required. Tables
 * compare with the same clusters in the same order, so indexes compare. */
static void cluster_write(struct route_jw *w, const struct route_field *f, const void *base,
                          const struct route_table *t)
{
    route_jw_key(w, f->name);
    route_jw_str(w, t->clusters[*ROUTE_CFIELD(base, f, uint32_t)].name);
}

static int cluster_read(struct route_jr *r, const struct route_field *f, json_object *v, void *base)
{
    if (!json_object_is_type(v, json_type_string))
        return wrong_type(r, f);
    if (route_jr_cluster(r, json_object_get_string(v), ROUTE_FIELD(base, f, uint32_t)) != 0)
        return route_jr_fail(r, "%s: unknown cluster \"%s\"", route_jr_label(r),
                             json_object_get_string(v));
    return 0;
}

static const struct route_json_ops ops_cluster = { cluster_write, cluster_read, u32_eq };

/* Reads string member key of object o into *dst. Returns 1 when read, 0 when absent, -EINVAL
 * when present with another type. */
static int member_string(struct route_jr *r, json_object *o, const char *key, char **dst)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v))
        return 0;
    if (!json_object_is_type(v, json_type_string))
        return -EINVAL;
    *dst = route_jr_str(r, v, true);
    return 1;
}

/* Returns the first key of o outside names[0..n), or NULL. */
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

/* struct route_regex_sub: {"pattern", "substitution"}, omitted when pattern is NULL. */
static void sub_write(struct route_jw *w, const struct route_field *f, const void *base,
                      const struct route_table *t)
{
    (void)t;
    const struct route_regex_sub *s = ROUTE_CFIELD(base, f, struct route_regex_sub);
    if (s->pattern == NULL)
        return;
    route_jw_key(w, f->name);
    route_jw_open(w, '{');
    route_jw_key(w, "pattern");
    route_jw_str(w, s->pattern);
    route_jw_key(w, "substitution");
    route_jw_str(w, s->substitution ? s->substitution : "");
    route_jw_close(w);
}

static int sub_read(struct route_jr *r, const struct route_field *f, json_object *v, void *base)
{
    static const char *const keys[] = { "pattern", "substitution" };
    struct route_regex_sub *s = ROUTE_FIELD(base, f, struct route_regex_sub);
    if (!json_object_is_type(v, json_type_object) || stray_key(v, keys, 2) != NULL ||
        member_string(r, v, "pattern", &s->pattern) != 1 ||
        member_string(r, v, "substitution", &s->substitution) != 1)
        return route_jr_fail(r, "%s.%s: expected {\"pattern\": string, \"substitution\": string}",
                             route_jr_label(r), f->name);
    return 0;
}

static bool sub_eq(const struct route_field *f, const void *a, const void *b)
{
    const struct route_regex_sub *x = ROUTE_CFIELD(a, f, struct route_regex_sub);
    const struct route_regex_sub *y = ROUTE_CFIELD(b, f, struct route_regex_sub);
    return str_eq(x->pattern, y->pattern) && str_eq(x->substitution, y->substitution);
}

static const struct route_json_ops ops_sub = { sub_write, sub_read, sub_eq };

/* ---- lists: an array and its count, one element kind each ---- */

struct list_kind {
    size_t size;
    void (*write)(struct route_jw *w, const void *e);
    /* Reads element i of field f into e (zeroed). */
    int (*read)(struct route_jr *r, const struct route_field *f, json_object *v, void *e, size_t i);
    bool (*eq)(const void *a, const void *b);
};

static void list_write(struct route_jw *w, const struct route_field *f, const void *base,
                       const struct route_table *t)
{
    (void)t;
    const struct list_kind *k = f->arg;
    size_t n = *(const size_t *)((const char *)base + f->noff);
    const char *v = *ROUTE_CFIELD(base, f, char *);
    if (n == 0)
        return;
    route_jw_key(w, f->name);
    route_jw_open(w, '[');
    for (size_t i = 0; i < n; i++)
        k->write(w, v + i * k->size);
    route_jw_close(w);
}

static int list_read(struct route_jr *r, const struct route_field *f, json_object *v, void *base)
{
    const struct list_kind *k = f->arg;
    if (!json_object_is_type(v, json_type_array))
        return route_jr_fail(r, "%s: expected an array", f->name);
    size_t n = json_object_array_length(v);
    char *arr = route_jr_alloc(r, (n ? n : 1) * k->size);
    size_t *count = (size_t *)((char *)base + f->noff);
    *ROUTE_FIELD(base, f, char *) = arr;
    for (*count = 0; *count < n; ++*count)
        if (k->read(r, f, json_object_array_get_idx(v, *count), arr + *count * k->size, *count) !=
            0)
            return -EINVAL;
    return 0;
}

static bool list_eq(const struct route_field *f, const void *a, const void *b)
{
    const struct list_kind *k = f->arg;
    size_t n = *(const size_t *)((const char *)a + f->noff);
    if (n != *(const size_t *)((const char *)b + f->noff))
        return false;
    const char *x = *ROUTE_CFIELD(a, f, char *), *y = *ROUTE_CFIELD(b, f, char *);
    for (size_t i = 0; i < n; i++)
        if (!k->eq(x + i * k->size, y + i * k->size))
            return false;
    return true;
}

static const struct route_json_ops ops_list = { list_write, list_read, list_eq };

static int expect_object(struct route_jr *r, const struct route_field *f, json_object *v, size_t i)
{
    if (json_object_is_type(v, json_type_object))
        return 0;
    return route_jr_fail(r, "%s.%s[%zu]: expected an object", route_jr_label(r), f->name, i);
}

/* char *: a string each. */
static void strs_write_one(struct route_jw *w, const void *e)
{
    route_jw_str(w, *(char *const *)e);
}

static int strs_read_one(struct route_jr *r, const struct route_field *f, json_object *v, void *e,
                         size_t i)
{
    if (!json_object_is_type(v, json_type_string))
        return route_jr_fail(r, "%s.%s[%zu]: expected a string", route_jr_label(r), f->name, i);
    *(char **)e = route_jr_str(r, v, true);
    return 0;
}

static bool strs_eq_one(const void *a, const void *b)
{
    return str_eq(*(char *const *)a, *(char *const *)b);
}

static const struct list_kind kind_strs = { sizeof(char *), strs_write_one, strs_read_one,
                                            strs_eq_one };

/* struct route_header and struct route_header_add: {"name", "value", flag}. */
static int kv_read(struct route_jr *r, const struct route_field *f, json_object *v, size_t i,
                   char **name, char **value, bool *flag, const char *flag_key)
{
    const char *const keys[] = { "name", "value", flag_key };
    if (expect_object(r, f, v, i) != 0)
        return -EINVAL;
    const char *stray = stray_key(v, keys, 3);
    if (stray != NULL)
        return route_jr_fail(r, "%s.%s[%zu].%s: unknown key or wrong type", route_jr_label(r),
                             f->name, i, stray);
    json_object *b = NULL;
    int rn = member_string(r, v, "name", name), rv = member_string(r, v, "value", value);
    bool bad_flag =
        json_object_object_get_ex(v, flag_key, &b) && !json_object_is_type(b, json_type_boolean);
    if (rn < 0 || rv < 0 || bad_flag)
        return route_jr_fail(r, "%s.%s[%zu].%s: unknown key or wrong type", route_jr_label(r),
                             f->name, i,
                             rn < 0   ? "name"
                             : rv < 0 ? "value"
                                      : flag_key);
    if (b != NULL)
        *flag = json_object_get_boolean(b);
    if (*name == NULL)
        return route_jr_fail(r, "%s[%zu]: missing name", f->name, i);
    return 0;
}

static void match_write_one(struct route_jw *w, const void *e)
{
    const struct route_header *h = e;
    route_jw_open(w, '{');
    route_jw_key(w, "name");
    route_jw_str(w, h->name);
    if (h->value) {
        route_jw_key(w, "value");
        route_jw_str(w, h->value);
    }
    if (h->regex) {
        route_jw_key(w, "regex");
        route_jw_bool(w, true);
    }
    route_jw_close(w);
}

static int match_read_one(struct route_jr *r, const struct route_field *f, json_object *v, void *e,
                          size_t i)
{
    struct route_header *h = e;
    return kv_read(r, f, v, i, &h->name, &h->value, &h->regex, "regex");
}

static bool match_eq_one(const void *a, const void *b)
{
    const struct route_header *x = a, *y = b;
    return str_eq(x->name, y->name) && str_eq(x->value, y->value) && x->regex == y->regex;
}

static const struct list_kind kind_matches = { sizeof(struct route_header), match_write_one,
                                               match_read_one, match_eq_one };

static void add_write_one(struct route_jw *w, const void *e)
{
    const struct route_header_add *h = e;
    route_jw_open(w, '{');
    route_jw_key(w, "name");
    route_jw_str(w, h->name);
    route_jw_key(w, "value");
    route_jw_str(w, h->value);
    route_jw_key(w, "append");
    route_jw_bool(w, h->append);
    route_jw_close(w);
}

static int add_read_one(struct route_jr *r, const struct route_field *f, json_object *v, void *e,
                        size_t i)
{
    struct route_header_add *h = e;
    h->append = true;
    if (kv_read(r, f, v, i, &h->name, &h->value, &h->append, "append") != 0)
        return -EINVAL;
    if (h->value == NULL)
        return route_jr_fail(r, "%s[%zu]: missing value", f->name, i);
    return 0;
}

static bool add_eq_one(const void *a, const void *b)
{
    const struct route_header_add *x = a, *y = b;
    return str_eq(x->name, y->name) && str_eq(x->value, y->value) && x->append == y->append;
}

static const struct list_kind kind_adds = { sizeof(struct route_header_add), add_write_one,
                                            add_read_one, add_eq_one };

/* struct route_ip_rule: {"peer"|"remote": CIDR}. */
static void iprule_write_one(struct route_jw *w, const void *e)
{
    const struct route_ip_rule *r = e;
    route_jw_open(w, '{');
    route_jw_key(w, r->remote ? "remote" : "peer");
    route_jw_str(w, r->cidr);
    route_jw_close(w);
}

static int iprule_read_one(struct route_jr *r, const struct route_field *f, json_object *v, void *e,
                           size_t i)
{
    struct route_ip_rule *rule = e;
    json_object *c = NULL;
    if (expect_object(r, f, v, i) != 0)
        return -EINVAL;
    bool remote = json_object_object_get_ex(v, "remote", &c);
    if ((remote || json_object_object_get_ex(v, "peer", &c)) && json_object_object_length(v) == 1 &&
        json_object_is_type(c, json_type_string) &&
        route_ip_rule_parse(json_object_get_string(c), remote, rule) == 0) {
        char *cidr = rule->cidr; /* into the arena with the rest of the table */
        rule->cidr = route_arena_strndup(r->arena, cidr, strlen(cidr));
        free(cidr);
        return 0;
    }
    return route_jr_fail(r, "%s.%s[%zu]: expected {\"peer\"|\"remote\": CIDR}", route_jr_label(r),
                         f->name, i);
}

static bool iprule_eq_one(const void *a, const void *b)
{
    const struct route_ip_rule *x = a, *y = b;
    return str_eq(x->cidr, y->cidr) && x->remote == y->remote;
}

static const struct list_kind kind_iprules = { sizeof(struct route_ip_rule), iprule_write_one,
                                               iprule_read_one, iprule_eq_one };

/* ---- JSON form: one field table per struct ---- */

#define RF(n, ops, f, fl)                                                                          \
    {                                                                                              \
        n, ops, offsetof(struct route, f), 0, fl, NULL                                             \
    }
#define RI(n, kind, f, fl)                                                                         \
    {                                                                                              \
        n, &ops_int, offsetof(struct route, f), 0, fl, &kind                                       \
    }
#define RL(n, kind, f, c)                                                                          \
    {                                                                                              \
        n, &ops_list, offsetof(struct route, f), offsetof(struct route, c), 0, &kind               \
    }
#define RP(n, ops, f)                                                                              \
    {                                                                                              \
        n, ops, offsetof(struct route_policy, f), 0, ROUTE_F_POLICY, NULL                          \
    }
#define RPI(n, f)                                                                                  \
    {                                                                                              \
        n, &ops_int, offsetof(struct route_policy, f), 0, ROUTE_F_POLICY, &uint32_opt              \
    }
static const struct route_field route_fields[] = {
    RF("namespace", &route_json_str, ns, ROUTE_F_REQUIRED),
    RF("service", &route_json_str, svc, ROUTE_F_REQUIRED),
    RF("mapping", &route_json_str, mapping, ROUTE_F_REQUIRED | ROUTE_F_UNIQUE),
    RF("prefix", &route_json_str, prefix, ROUTE_F_REQUIRED | ROUTE_F_UNIQUE),
    RF("prefix_regex", &ops_bool, prefix_regex, 0),
    RF("prefix_exact", &ops_bool, prefix_exact, 0),
    RF("case_sensitive", &ops_bool, case_sensitive, 0),
    RF("method", &route_json_str, method, 0),
    RF("method_regex", &ops_bool, method_regex, ROUTE_F_OMIT),
    RF("host", &route_json_str, host, 0),
    RF("host_regex", &ops_bool, host_regex, ROUTE_F_OMIT),
    RL("headers", kind_matches, headers, nheaders),
    RL("query_parameters", kind_matches, query, nquery),
    RI("precedence", int32, precedence, 0),
    RF("cluster", &ops_cluster, cluster, ROUTE_F_REQUIRED),
    RF("rewrite", &route_json_str, rewrite, 0),
    RF("regex_rewrite", &ops_sub, regex_rewrite, 0),
    RF("host_rewrite", &route_json_str, host_rewrite, 0),
    RI("timeout_ms", uint32, timeout_ms, 0),
    RF("host_redirect", &route_json_str, host_redirect, 0),
    RF("redirect_scheme", &route_json_str, redirect_scheme, 0),
    RF("path_redirect", &route_json_str, path_redirect, 0),
    RF("prefix_redirect", &route_json_str, prefix_redirect, 0),
    RF("regex_redirect", &ops_sub, regex_redirect, 0),
    RI("redirect_response_code", redirect, redirect_code, 0),
    RL("add_request_headers", kind_adds, add_request_headers, nadd_request_headers),
    RL("add_response_headers", kind_adds, add_response_headers, nadd_response_headers),
    RL("remove_request_headers", kind_strs, remove_request_headers, nremove_request_headers),
    RL("remove_response_headers", kind_strs, remove_response_headers, nremove_response_headers),
    RPI("group_size", group_size),
    RPI("weight", weight),
    RPI("idle_timeout_ms", idle_timeout_ms),
    RP("retry_policy", &route_json_retry, retry),
    RP("cors", &route_json_cors, cors),
    RP("rate_limits", &route_json_rate_limits, rate_limits),
    RP("legate_rate_limit", &route_json_local_rl, local_rl),
    RP("allow_upgrade", &route_json_upgrades, upgrades),
    RP("shadow", &route_json_shadow, shadow),
};
#undef RF
#undef RI
#undef RL
#undef RP
#undef RPI

#define CF(n, ops, f, fl, arg)                                                                     \
    {                                                                                              \
        n, ops, offsetof(struct route_cluster, f), 0, fl, arg                                      \
    }
static const struct route_field cluster_fields[] = {
    CF("name", &route_json_str, name, ROUTE_F_REQUIRED | ROUTE_F_UNIQUE, NULL),
    CF("scheme", &route_json_str, scheme, ROUTE_F_REQUIRED, NULL),
    CF("host", &route_json_str, host, ROUTE_F_REQUIRED, NULL),
    CF("port", &ops_int, port, ROUTE_F_REQUIRED, &port),
    CF("sni", &route_json_str, sni, 0, NULL),
    CF("connect_timeout_ms", &ops_int, policy.connect_timeout_ms, 0, &uint32_opt),
    CF("idle_timeout_ms", &ops_int, policy.idle_timeout_ms, 0, &uint32_opt),
    CF("max_connection_lifetime_ms", &ops_int, policy.max_lifetime_ms, 0, &uint32_opt),
    CF("circuit_breakers", &route_json_circuit_breakers, policy.cb, 0, NULL),
    CF("load_balancer", &route_json_lb, policy.lb, 0, NULL),
};
#undef CF

#define EF(n, ops, f, fl, arg)                                                                     \
    {                                                                                              \
        n, ops, offsetof(struct route_error, f), 0, fl, arg                                        \
    }
static const struct route_field error_fields[] = {
    EF("namespace", &route_json_str, ns, 0, NULL),
    EF("service", &route_json_str, svc, 0, NULL),
    EF("mapping", &route_json_str, mapping, 0, NULL),
    EF("field", &route_json_str, field, 0, NULL),
    EF("line", &ops_int, line, 0, &int32),
    EF("message", &route_json_str, message, ROUTE_F_REQUIRED | ROUTE_F_UNIQUE, NULL),
};
#undef EF

#define SF(n, ops, f, arg)                                                                         \
    {                                                                                              \
        n, ops, offsetof(struct route_settings, f), 0, 0, arg                                      \
    }
#define SL(n, kind, f, c)                                                                          \
    {                                                                                              \
        n, &ops_list, offsetof(struct route_settings, f), offsetof(struct route_settings, c), 0,   \
            &kind                                                                                  \
    }
static const struct route_field settings_fields[] = {
    SF("use_remote_address", &ops_bool, use_remote_address, NULL),
    SF("xff_num_trusted_hops", &ops_int, xff_num_trusted_hops, &uint32),
    SF("x_forwarded_proto_redirect", &ops_bool, x_forwarded_proto_redirect, NULL),
    SF("merge_slashes", &ops_bool, merge_slashes, NULL),
    SL("ip_allow", kind_iprules, ip_allow, nip_allow),
    SL("ip_deny", kind_iprules, ip_deny, nip_deny),
    SF("server_name", &route_json_str, server_name, NULL),
};
#undef SF
#undef SL

/* The reader keeps which keys it saw in a 64-bit mask. */
_Static_assert(ARRAY_SIZE(route_fields) <= 64, "route_fields: at most 64 keys");

/* ---- JSON form: tables ---- */

static void write_list(struct route_jw *w, const char *key, const void *v, size_t size, size_t n,
                       const struct route_field *f, size_t nf, const struct route_table *t)
{
    route_jw_key(w, key);
    route_jw_open(w, '[');
    for (size_t i = 0; i < n; i++)
        route_json_write_fields(w, f, nf, (const char *)v + i * size, t);
    route_jw_close(w);
}

/* The table's members in wire order, then the snapshot message's own when message is set. */
static void write_table(struct route_jw *w, const struct route_table *t, bool message)
{
    route_jw_open(w, '{');
    route_jw_key(w, "version");
    route_jw_int(w, (int64_t)t->version);
    write_list(w, "routes", t->routes, sizeof(*t->routes), t->nroutes, route_fields,
               ARRAY_SIZE(route_fields), t);
    write_list(w, "clusters", t->clusters, sizeof(*t->clusters), t->nclusters, cluster_fields,
               ARRAY_SIZE(cluster_fields), t);
    write_list(w, "errors", t->errors, sizeof(*t->errors), t->nerrors, error_fields,
               ARRAY_SIZE(error_fields), t);
    route_jw_key(w, "settings");
    route_json_write_fields(w, settings_fields, ARRAY_SIZE(settings_fields), &t->settings, t);
    if (message) {
        route_jw_key(w, "type");
        route_jw_str(w, "snapshot");
        route_jw_key(w, "protocol");
        route_jw_int(w, ROUTE_PROTOCOL_VERSION);
    }
    route_jw_close(w);
}

int route_snapshot_write(const struct route_table *t, struct buf *out)
{
    size_t before = out->len;
    struct route_jw w;
    /* A simple route takes about 230 bytes: reserve for that, so a large table is not copied
     * over and over as the buffer doubles (untouched room costs address space, not memory). */
    buf_reserve(out, 512 + t->nroutes * 256 + t->nclusters * 128 + t->nerrors * 256);
    route_jw_init(&w, out);
    write_table(&w, t, true);
    int rc = route_jw_finish(&w);
    if (rc != 0 && out->data != NULL) {
        out->len = before;
        out->data[before] = '\0';
    }
    return rc;
}

json_object *route_table_to_json(const struct route_table *t)
{
    struct route_jw w;
    route_jw_init_tree(&w);
    write_table(&w, t, false);
    return route_jw_tree(&w);
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
    struct route_jr r = { .err = err, .errlen = errlen, .index = SIZE_MAX };
    json_object *v, *routes, *clusters, *errors;
    const char *stray;

    *out = NULL;
    t->arena = route_arena_new();
    r.t = t;
    r.arena = t->arena;
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

    /* Everything a table points at lives in its arena, so the arrays are zeroed up front and
     * a failure anywhere frees the lot in route_table_free. */
    t->nclusters = json_object_array_length(clusters);
    t->clusters = xcalloc(t->nclusters ? t->nclusters : 1, sizeof(*t->clusters));
    r.what = "clusters";
    for (r.index = 0; r.index < t->nclusters; r.index++) {
        struct route_cluster *c = &t->clusters[r.index];
        if (route_json_read_fields(&r, cluster_fields, ARRAY_SIZE(cluster_fields),
                                   json_object_array_get_idx(clusters, r.index), c) != 0)
            goto fail;
        bool tls = strcmp(c->scheme, "https") == 0;
        if (!tls && strcmp(c->scheme, "http") != 0) {
            route_jr_fail(&r, "%s: unsupported scheme \"%s\"", route_jr_label(&r), c->scheme);
            goto fail;
        }
        if (!tls && c->sni != NULL) {
            route_jr_fail(&r, "%s: \"sni\" needs scheme https", route_jr_label(&r));
            goto fail;
        }
    }
    t->nroutes = json_object_array_length(routes);
    t->routes = xcalloc(t->nroutes ? t->nroutes : 1, sizeof(*t->routes));
    r.what = "routes";
    for (r.index = 0; r.index < t->nroutes; r.index++) {
        struct route *rt = &t->routes[r.index];
        route_init(rt); /* its policy: route_policy_none until a policy key gives it one */
        rt->case_sensitive = true;
        rt->timeout_ms = ROUTE_DEFAULT_TIMEOUT_MS;
        if (route_json_read_fields(&r, route_fields, ARRAY_SIZE(route_fields),
                                   json_object_array_get_idx(routes, r.index), rt) != 0)
            goto fail;
    }
    t->nerrors = json_object_array_length(errors);
    t->errors = xcalloc(t->nerrors ? t->nerrors : 1, sizeof(*t->errors));
    r.what = "errors";
    for (r.index = 0; r.index < t->nerrors; r.index++)
        if (route_json_read_fields(&r, error_fields, ARRAY_SIZE(error_fields),
                                   json_object_array_get_idx(errors, r.index),
                                   &t->errors[r.index]) != 0)
            goto fail;
    r.what = "settings";
    r.index = SIZE_MAX;
    if (json_object_object_get_ex(obj, "settings", &v) &&
        route_json_read_fields(&r, settings_fields, ARRAY_SIZE(settings_fields), v, &t->settings) !=
            0)
        goto fail;
    route_arena_seal(t->arena);
    free(r.cluster_slots);
    *out = t;
    return 0;
fail:
    free(r.cluster_slots);
    route_table_free(t);
    return -EINVAL;
}

static bool list_equal(const void *a, const void *b, size_t size, size_t n,
                       const struct route_field *f, size_t nf)
{
    for (size_t i = 0; i < n; i++)
        if (!route_json_fields_eq(f, nf, (const char *)a + i * size, (const char *)b + i * size))
            return false;
    return true;
}

bool route_table_equal(const struct route_table *a, const struct route_table *b)
{
    return a->nroutes == b->nroutes && a->nclusters == b->nclusters && a->nerrors == b->nerrors &&
           route_json_fields_eq(settings_fields, ARRAY_SIZE(settings_fields), &a->settings,
                                &b->settings) &&
           list_equal(a->clusters, b->clusters, sizeof(*a->clusters), a->nclusters, cluster_fields,
                      ARRAY_SIZE(cluster_fields)) &&
           list_equal(a->routes, b->routes, sizeof(*a->routes), a->nroutes, route_fields,
                      ARRAY_SIZE(route_fields)) &&
           list_equal(a->errors, b->errors, sizeof(*a->errors), a->nerrors, error_fields,
                      ARRAY_SIZE(error_fields));
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
