#include "route_policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "route_json.h"
#include "xalloc.h"

/* ---- names ---- */

static const struct {
    const char *name;
    uint32_t bit;
} retry_names[] = {
    { "5xx", ROUTE_RETRY_5XX },
    { "gateway-error", ROUTE_RETRY_GATEWAY_ERROR },
    { "connect-failure", ROUTE_RETRY_CONNECT_FAILURE },
    { "retriable-4xx", ROUTE_RETRY_RETRIABLE_4XX },
    { "refused-stream", ROUTE_RETRY_REFUSED_STREAM },
    { "retriable-status-codes", ROUTE_RETRY_STATUS_CODES },
    { "reset", ROUTE_RETRY_RESET },
};

uint32_t route_retry_on_bit(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(retry_names); i++)
        if (strcmp(retry_names[i].name, name) == 0)
            return retry_names[i].bit;
    return 0;
}

const char *route_retry_on_name(uint32_t bit)
{
    for (size_t i = 0; i < ARRAY_SIZE(retry_names); i++)
        if (retry_names[i].bit == bit)
            return retry_names[i].name;
    return NULL;
}

bool route_retry_status(const struct route_retry *r, int status)
{
    if (r->on & ROUTE_RETRY_5XX && status >= 500 && status <= 599)
        return true;
    if (r->on & ROUTE_RETRY_GATEWAY_ERROR && status >= 502 && status <= 504)
        return true;
    if (r->on & ROUTE_RETRY_RETRIABLE_4XX && status == 409)
        return true;
    if (r->on & ROUTE_RETRY_STATUS_CODES)
        for (uint32_t i = 0; i < r->ncodes; i++)
            if (r->codes[i] == status)
                return true;
    return false;
}

static const char *const lb_names[] = { "round_robin", "least_request", "ring_hash", "maglev" };

const char *route_lb_policy_name(int policy)
{
    return policy >= 0 && (size_t)policy < ARRAY_SIZE(lb_names) ? lb_names[policy] : NULL;
}

int route_lb_policy_parse(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(lb_names); i++)
        if (strcmp(lb_names[i], name) == 0)
            return (int)i;
    return -1;
}

static const char *const rl_kinds[] = { "generic_key", "request_header", "remote_address",
                                        "source_cluster", "destination_cluster" };

const char *route_rl_kind_name(int kind)
{
    return kind >= 0 && (size_t)kind < ARRAY_SIZE(rl_kinds) ? rl_kinds[kind] : NULL;
}

static int rl_kind_parse(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(rl_kinds); i++)
        if (strcmp(rl_kinds[i], name) == 0)
            return (int)i;
    return -1;
}

int route_duration_parse(const char *text, uint32_t *ms)
{
    /* Integer and fraction are read by hand: strtod would accept "inf", "1e9" and the
     * locale's decimal point. */
    const char *p = text;
    uint64_t whole = 0, frac = 0, scale = 1;
    if (*p < '0' || *p > '9')
        return -EINVAL;
    while (*p >= '0' && *p <= '9') {
        whole = whole * 10 + (uint64_t)(*p++ - '0');
        if (whole > UINT32_MAX)
            return -EINVAL;
    }
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        while (*p >= '0' && *p <= '9') {
            if (scale < 1000000) {
                frac = frac * 10 + (uint64_t)(*p - '0');
                scale *= 10;
            }
            p++;
        }
    }
    uint64_t unit;
    if (strcmp(p, "ms") == 0)
        unit = 1;
    else if (strcmp(p, "s") == 0)
        unit = 1000;
    else if (strcmp(p, "m") == 0)
        unit = 60000;
    else if (strcmp(p, "h") == 0)
        unit = 3600000;
    else
        return -EINVAL;
    uint64_t v = whole * unit + frac * unit / scale;
    if (v > UINT32_MAX)
        return -EINVAL;
    *ms = (uint32_t)v;
    return 0;
}

/* ---- freeing and copying ---- */

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void route_cors_free_fields(struct route_cors *c)
{
    free_strs(c->origins, c->norigins);
    free(c->methods);
    free(c->headers);
    free(c->exposed_headers);
    free(c->max_age);
    memset(c, 0, sizeof(*c));
}

void route_cors_copy(struct route_cors *dst, const struct route_cors *src)
{
    *dst = *src;
    dst->origins = xcalloc(src->norigins + 1, sizeof(char *));
    for (size_t i = 0; i < src->norigins; i++)
        dst->origins[i] = xstrdup(src->origins[i]);
    dst->methods = xstrdup(src->methods);
    dst->headers = xstrdup(src->headers);
    dst->exposed_headers = xstrdup(src->exposed_headers);
    dst->max_age = xstrdup(src->max_age);
}

static void free_rate_limits(struct route_rate_limits *rl)
{
    for (size_t i = 0; i < rl->n; i++) {
        struct route_rl_descriptor *d = &rl->v[i];
        for (size_t k = 0; k < d->nentries; k++) {
            free(d->entries[k].key);
            free(d->entries[k].value);
        }
        free(d->entries);
        free(d->domain);
        free(d->name);
    }
    free(rl->v);
    memset(rl, 0, sizeof(*rl));
}

void route_policy_free_fields(struct route_policy *p)
{
    route_cors_free_fields(&p->cors);
    free_rate_limits(&p->rate_limits);
    free_strs(p->upgrades.v, p->upgrades.n);
    free(p->shadow.mapping);
    memset(p, 0, sizeof(*p));
}

void route_lb_copy(struct route_lb *dst, const struct route_lb *src)
{
    *dst = *src;
    dst->key = xstrdup(src->key);
    dst->cookie_path = xstrdup(src->cookie_path);
}

void route_cluster_policy_free_fields(struct route_cluster_policy *p)
{
    free(p->lb.key);
    free(p->lb.cookie_path);
    memset(p, 0, sizeof(*p));
}

/* ---- comparing ---- */

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool strs_eq(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!str_eq(a[i], b[i]))
            return false;
    return true;
}

static bool cb_eq(const struct route_circuit_breakers *a, const struct route_circuit_breakers *b)
{
    return a->set == b->set && a->max_connections == b->max_connections &&
           a->max_pending_requests == b->max_pending_requests &&
           a->max_requests == b->max_requests && a->max_retries == b->max_retries;
}

static bool lb_eq(const struct route_lb *a, const struct route_lb *b)
{
    return a->policy == b->policy && a->hash_on == b->hash_on && str_eq(a->key, b->key) &&
           str_eq(a->cookie_path, b->cookie_path) && a->cookie_ttl_s == b->cookie_ttl_s;
}

bool route_cluster_policy_equal(const struct route_cluster_policy *a,
                                const struct route_cluster_policy *b)
{
    return a->connect_timeout_ms == b->connect_timeout_ms &&
           a->idle_timeout_ms == b->idle_timeout_ms && a->max_lifetime_ms == b->max_lifetime_ms &&
           cb_eq(&a->cb, &b->cb) && lb_eq(&a->lb, &b->lb);
}

/* ---- reading helpers ---- */

/* Each helper names where it failed as "label.key[.name]"; label is the element being read
 * ("routes[3]", or deeper for nested lists). */
#define FAIL(...) return route_jr_fail(r, __VA_ARGS__)

/* Returns the first key of o outside keys[0..n), or NULL. */
static const char *stray(json_object *o, const char *const *keys, size_t n)
{
    json_object_object_foreach(o, k, v)
    {
        (void)v;
        size_t i;
        for (i = 0; i < n; i++)
            if (strcmp(keys[i], k) == 0)
                break;
        if (i == n)
            return k;
    }
    return NULL;
}

/* An object with only the listed keys. 0, or -EINVAL with a reason. */
static int check_object(struct route_jr *r, json_object *v, const char *const *keys, size_t n,
                        const char *label, const char *key)
{
    if (!json_object_is_type(v, json_type_object))
        FAIL("%s.%s: expected an object", label, key);
    const char *s = stray(v, keys, n);
    if (s != NULL)
        FAIL("%s.%s: unknown key \"%s\"", label, key, s);
    return 0;
}

/* Reads member name of o as an integer in [min, max] into *out when present. Returns 1 when
 * read, 0 when absent, -EINVAL with a reason. */
static int get_int(struct route_jr *r, json_object *o, const char *name, int64_t min, int64_t max,
                   int64_t *out, const char *label, const char *key)
{
    json_object *m;
    if (!json_object_object_get_ex(o, name, &m))
        return 0;
    int64_t i = json_object_get_int64(m);
    if (!json_object_is_type(m, json_type_int) || i < min || i > max)
        FAIL("%s.%s.%s: expected an integer from %lld to %lld", label, key, name, (long long)min,
             (long long)max);
    *out = i;
    return 1;
}

static int get_u32(struct route_jr *r, json_object *o, const char *name, uint32_t min, uint32_t max,
                   uint32_t *out, const char *label, const char *key)
{
    int64_t i = 0;
    int rc = get_int(r, o, name, min, max, &i, label, key);
    if (rc == 1)
        *out = (uint32_t)i;
    return rc;
}

/* Finds member name of o, a string, when present. Returns 1 with *m, 0 when absent, -EINVAL. */
static int string_member(struct route_jr *r, json_object *o, const char *name, json_object **m,
                         const char *label, const char *key)
{
    if (!json_object_object_get_ex(o, name, m))
        return 0;
    if (!json_object_is_type(*m, json_type_string))
        FAIL("%s.%s.%s: expected a string", label, key, name);
    return 1;
}

/* Reads member name of o as a string, borrowed from o, when present. 1, 0 or -EINVAL. */
static int get_cstr(struct route_jr *r, json_object *o, const char *name, const char **out,
                    const char *label, const char *key)
{
    json_object *m;
    int rc = string_member(r, o, name, &m, label, key);
    if (rc == 1)
        *out = json_object_get_string(m);
    return rc;
}

/* Like get_cstr, with the string copied into the table's arena. */
static int get_str(struct route_jr *r, json_object *o, const char *name, char **out,
                   const char *label, const char *key)
{
    json_object *m;
    int rc = string_member(r, o, name, &m, label, key);
    if (rc == 1)
        *out = route_jr_str(r, m, true);
    return rc;
}

static int get_bool(struct route_jr *r, json_object *o, const char *name, bool *out,
                    const char *label, const char *key)
{
    json_object *m;
    if (!json_object_object_get_ex(o, name, &m))
        return 0;
    if (!json_object_is_type(m, json_type_boolean))
        FAIL("%s.%s.%s: expected a boolean", label, key, name);
    *out = json_object_get_boolean(m);
    return 1;
}

/* An array of strings into a new char *[] (room for one more, NULL). */
static int get_strs(struct route_jr *r, json_object *v, char ***out, size_t *n, const char *label,
                    const char *key)
{
    if (!json_object_is_type(v, json_type_array))
        FAIL("%s.%s: expected an array of strings", label, key);
    size_t len = json_object_array_length(v);
    *out = route_jr_alloc(r, (len + 1) * sizeof(char *));
    for (*n = 0; *n < len; ++*n) {
        json_object *e = json_object_array_get_idx(v, *n);
        if (!json_object_is_type(e, json_type_string))
            FAIL("%s.%s[%zu]: expected a string", label, key, *n);
        (*out)[*n] = route_jr_str(r, e, true);
    }
    return 0;
}

/* ---- writing helpers ---- */

static void put_strs(struct route_jw *w, char *const *v, size_t n)
{
    route_jw_open(w, '[');
    for (size_t i = 0; i < n; i++)
        route_jw_str(w, v[i]);
    route_jw_close(w);
}

/* "name": s, omitted when s is NULL. */
static void put_str(struct route_jw *w, const char *name, const char *s)
{
    if (s == NULL)
        return;
    route_jw_key(w, name);
    route_jw_str(w, s);
}

static void put_int(struct route_jw *w, const char *name, int64_t v)
{
    route_jw_key(w, name);
    route_jw_int(w, v);
}

#define LABEL route_jr_label(r)

/* ---- retry_policy ---- */

static void retry_write(struct route_jw *w, const struct route_field *f, const void *base,
                        const struct route_table *t)
{
    (void)t;
    const struct route_retry *r = ROUTE_CFIELD(base, f, struct route_retry);
    if (r->on == 0)
        return;
    route_jw_key(w, f->name);
    route_jw_open(w, '{');
    route_jw_key(w, "retry_on");
    route_jw_open(w, '[');
    for (size_t i = 0; i < ARRAY_SIZE(retry_names); i++)
        if (r->on & retry_names[i].bit)
            route_jw_str(w, retry_names[i].name);
    route_jw_close(w);
    put_int(w, "num_retries", r->num_retries);
    if (r->per_try_timeout_ms)
        put_int(w, "per_try_timeout_ms", r->per_try_timeout_ms);
    if (r->ncodes > 0) {
        route_jw_key(w, "retriable_status_codes");
        route_jw_open(w, '[');
        for (uint32_t i = 0; i < r->ncodes; i++)
            route_jw_int(w, r->codes[i]);
        route_jw_close(w);
    }
    route_jw_close(w);
}

static int retry_read(struct route_jr *r, const struct route_field *f, json_object *v, void *base)
{
    static const char *const keys[] = { "retry_on", "num_retries", "per_try_timeout_ms",
                                        "retriable_status_codes" };
    struct route_retry *rp = ROUTE_FIELD(base, f, struct route_retry);
    const char *key = f->name;
    json_object *on = NULL, *codes = NULL;
    if (check_object(r, v, keys, ARRAY_SIZE(keys), LABEL, key) != 0)
        return -EINVAL;
    if (!json_object_object_get_ex(v, "retry_on", &on) ||
        !json_object_is_type(on, json_type_array) || json_object_array_length(on) == 0)
        FAIL("%s.%s.retry_on: expected a non-empty array of conditions", LABEL, key);
    for (size_t i = 0; i < json_object_array_length(on); i++) {
        json_object *e = json_object_array_get_idx(on, i);
        uint32_t bit = json_object_is_type(e, json_type_string)
                           ? route_retry_on_bit(json_object_get_string(e))
                           : 0;
        if (bit == 0)
            FAIL("%s.%s.retry_on[%zu]: unknown condition", LABEL, key, i);
        rp->on |= bit;
    }
    rp->num_retries = ROUTE_RETRY_DEFAULT_NUM;
    if (get_u32(r, v, "num_retries", 0, ROUTE_RETRY_MAX_NUM, &rp->num_retries, LABEL, key) < 0 ||
        get_u32(r, v, "per_try_timeout_ms", 0, UINT32_MAX, &rp->per_try_timeout_ms, LABEL, key) < 0)
        return -EINVAL;
    if (json_object_object_get_ex(v, "retriable_status_codes", &codes)) {
        if (!json_object_is_type(codes, json_type_array) ||
            json_object_array_length(codes) > ROUTE_RETRY_MAX_CODES)
            FAIL("%s.%s.retriable_status_codes: expected an array of at most %d statuses", LABEL,
                 key, ROUTE_RETRY_MAX_CODES);
        for (size_t i = 0; i < json_object_array_length(codes); i++) {
            json_object *e = json_object_array_get_idx(codes, i);
            int64_t c = json_object_get_int64(e);
            if (!json_object_is_type(e, json_type_int) || c < 100 || c > 599)
                FAIL("%s.%s.retriable_status_codes[%zu]: expected a status 100-599", LABEL, key, i);
            rp->codes[rp->ncodes++] = (uint16_t)c;
        }
    }
    return 0;
}

static bool retry_eq(const struct route_field *f, const void *pa, const void *pb)
{
    const struct route_retry *a = ROUTE_CFIELD(pa, f, struct route_retry);
    const struct route_retry *b = ROUTE_CFIELD(pb, f, struct route_retry);
    return a->on == b->on && a->num_retries == b->num_retries &&
           a->per_try_timeout_ms == b->per_try_timeout_ms && a->ncodes == b->ncodes &&
           memcmp(a->codes, b->codes, a->ncodes * sizeof(a->codes[0])) == 0;
}

const struct route_json_ops route_json_retry = { retry_write, retry_read, retry_eq };

/* ---- cors ---- */

static void cors_write(struct route_jw *w, const struct route_field *f, const void *base,
                       const struct route_table *t)
{
    (void)t;
    const struct route_cors *c = ROUTE_CFIELD(base, f, struct route_cors);
    if (!c->enabled)
        return;
    route_jw_key(w, f->name);
    route_jw_open(w, '{');
    route_jw_key(w, "origins");
    put_strs(w, c->origins, c->norigins);
    put_str(w, "methods", c->methods);
    put_str(w, "headers", c->headers);
    put_str(w, "exposed_headers", c->exposed_headers);
    route_jw_key(w, "credentials");
    route_jw_bool(w, c->credentials);
    put_str(w, "max_age", c->max_age);
    route_jw_close(w);
}

static int cors_read(struct route_jr *r, const struct route_field *f, json_object *v, void *base)
{
    static const char *const keys[] = { "origins",         "methods",     "headers",
                                        "exposed_headers", "credentials", "max_age" };
    struct route_cors *c = ROUTE_FIELD(base, f, struct route_cors);
    const char *key = f->name;
    json_object *origins;
    if (check_object(r, v, keys, ARRAY_SIZE(keys), LABEL, key) != 0)
        return -EINVAL;
    c->enabled = true;
    if (json_object_object_get_ex(v, "origins", &origins) &&
        get_strs(r, origins, &c->origins, &c->norigins, LABEL, "cors.origins") != 0)
        return -EINVAL;
    if (get_str(r, v, "methods", &c->methods, LABEL, key) < 0 ||
        get_str(r, v, "headers", &c->headers, LABEL, key) < 0 ||
        get_str(r, v, "exposed_headers", &c->exposed_headers, LABEL, key) < 0 ||
        get_bool(r, v, "credentials", &c->credentials, LABEL, key) < 0 ||
        get_str(r, v, "max_age", &c->max_age, LABEL, key) < 0)
        return -EINVAL;
    /* Header values go out as written: a CR or LF would split the response. */
    const char *vals[] = { c->methods, c->headers, c->exposed_headers, c->max_age };
    for (size_t i = 0; i < ARRAY_SIZE(vals); i++)
        if (vals[i] != NULL && strpbrk(vals[i], "\r\n") != NULL)
            FAIL("%s.%s: a value holds a line break", LABEL, key);
    for (size_t i = 0; i < c->norigins; i++)
        if (strpbrk(c->origins[i], "\r\n") != NULL)
            FAIL("%s.%s: an origin holds a line break", LABEL, key);
    return 0;
}

static bool cors_eq(const struct route_field *f, const void *pa, const void *pb)
{
    const struct route_cors *a = ROUTE_CFIELD(pa, f, struct route_cors);
    const struct route_cors *b = ROUTE_CFIELD(pb, f, struct route_cors);
    return a->enabled == b->enabled && strs_eq(a->origins, a->norigins, b->origins, b->norigins) &&
           str_eq(a->methods, b->methods) && str_eq(a->headers, b->headers) &&
           str_eq(a->exposed_headers, b->exposed_headers) && a->credentials == b->credentials &&
           str_eq(a->max_age, b->max_age);
}

const struct route_json_ops route_json_cors = { cors_write, cors_read, cors_eq };

/* ---- rate-limit descriptors ---- */

static void rl_write(struct route_jw *w, const struct route_field *f, const void *base,
                     const struct route_table *t)
{
    (void)t;
    const struct route_rate_limits *rl = ROUTE_CFIELD(base, f, struct route_rate_limits);
    if (rl->n == 0)
        return;
    route_jw_key(w, f->name);
    route_jw_open(w, '[');
    for (size_t i = 0; i < rl->n; i++) {
        const struct route_rl_descriptor *d = &rl->v[i];
        route_jw_open(w, '{');
        put_str(w, "domain", d->domain);
        put_str(w, "name", d->name);
        route_jw_key(w, "entries");
        route_jw_open(w, '[');
        for (size_t k = 0; k < d->nentries; k++) {
            const struct route_rl_entry *e = &d->entries[k];
            route_jw_open(w, '{');
            put_str(w, "kind", route_rl_kind_name(e->kind));
            put_str(w, "key", e->key);
            put_str(w, "value", e->value);
            if (e->omit_if_absent) {
                route_jw_key(w, "omit_if_absent");
                route_jw_bool(w, true);
            }
            route_jw_close(w);
        }
        route_jw_close(w);
        route_jw_close(w);
    }
    route_jw_close(w);
}

static int rl_entry_read(struct route_jr *r, json_object *v, struct route_rl_entry *e,
                         const char *label)
{
    static const char *const keys[] = { "kind", "key", "value", "omit_if_absent" };
    const char *kind = NULL;
    if (check_object(r, v, keys, ARRAY_SIZE(keys), label, "entry") != 0 ||
        get_cstr(r, v, "kind", &kind, label, "entry") != 1 ||
        get_str(r, v, "key", &e->key, label, "entry") != 1 ||
        get_str(r, v, "value", &e->value, label, "entry") < 0 ||
        get_bool(r, v, "omit_if_absent", &e->omit_if_absent, label, "entry") < 0) {
        if (r->err[0] == '\0')
            FAIL("%s.entry: \"kind\" and \"key\" are required", label);
        return -EINVAL;
    }
    e->kind = rl_kind_parse(kind);
    if (e->kind < 0)
        FAIL("%s.entry: unknown kind \"%s\"", label, kind);
    if ((e->kind == ROUTE_RL_GENERIC_KEY || e->kind == ROUTE_RL_REQUEST_HEADER) && e->value == NULL)
        FAIL("%s.entry: kind %s needs a value", label, kind);
    return 0;
}

static int rl_read(struct route_jr *r, const struct route_field *f, json_object *v, void *base)
{
    static const char *const keys[] = { "domain", "name", "entries" };
    struct route_rate_limits *rl = ROUTE_FIELD(base, f, struct route_rate_limits);
    const char *key = f->name;
    char where[96];
    r->err[0] = '\0';
    if (!json_object_is_type(v, json_type_array))
        FAIL("%s.%s: expected an array", LABEL, key);
    size_t n = json_object_array_length(v);
    rl->v = route_jr_alloc(r, (n + 1) * sizeof(*rl->v));
    for (rl->n = 0; rl->n < n; rl->n++) {
        json_object *o = json_object_array_get_idx(v, rl->n), *es = NULL;
        struct route_rl_descriptor *d = &rl->v[rl->n];
        snprintf(where, sizeof(where), "%s.%s[%zu]", LABEL, key, rl->n);
        if (check_object(r, o, keys, ARRAY_SIZE(keys), where, "descriptor") != 0 ||
            get_str(r, o, "domain", &d->domain, where, "descriptor") != 1 ||
            get_str(r, o, "name", &d->name, where, "descriptor") < 0 ||
            !json_object_object_get_ex(o, "entries", &es) ||
            !json_object_is_type(es, json_type_array)) {
            if (r->err[0] == '\0')
                FAIL("%s: needs \"domain\" and an \"entries\" array", where);
            return -EINVAL;
        }
        size_t ne = json_object_array_length(es);
        d->entries = route_jr_alloc(r, (ne + 1) * sizeof(*d->entries));
        for (d->nentries = 0; d->nentries < ne; d->nentries++)
            if (rl_entry_read(r, json_object_array_get_idx(es, d->nentries),
                              &d->entries[d->nentries], where) != 0)
                return -EINVAL;
    }
    return 0;
}

static bool rl_eq(const struct route_field *f, const void *pa, const void *pb)
{
    const struct route_rate_limits *a = ROUTE_CFIELD(pa, f, struct route_rate_limits);
    const struct route_rate_limits *b = ROUTE_CFIELD(pb, f, struct route_rate_limits);
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const struct route_rl_descriptor *x = &a->v[i], *y = &b->v[i];
        if (!str_eq(x->domain, y->domain) || !str_eq(x->name, y->name) ||
            x->nentries != y->nentries)
            return false;
        for (size_t k = 0; k < x->nentries; k++) {
            const struct route_rl_entry *e = &x->entries[k], *g = &y->entries[k];
            if (e->kind != g->kind || !str_eq(e->key, g->key) || !str_eq(e->value, g->value) ||
                e->omit_if_absent != g->omit_if_absent)
                return false;
        }
    }
    return true;
}

const struct route_json_ops route_json_rate_limits = { rl_write, rl_read, rl_eq };

/* ---- legate_rate_limit ---- */

static void local_rl_write(struct route_jw *w, const struct route_field *f, const void *base,
                           const struct route_table *t)
{
    (void)t;
    const struct route_local_rl *l = ROUTE_CFIELD(base, f, struct route_local_rl);
    if (l->rps == 0)
        return;
    route_jw_key(w, f->name);
    route_jw_open(w, '{');
    put_int(w, "requests_per_second", l->rps);
    put_int(w, "burst", l->burst);
    route_jw_close(w);
}

static int local_rl_read(struct route_jr *r, const struct route_field *f, json_object *v,
                         void *base)
{
    static const char *const keys[] = { "requests_per_second", "burst" };
    struct route_local_rl *l = ROUTE_FIELD(base, f, struct route_local_rl);
    const char *key = f->name;
    if (check_object(r, v, keys, ARRAY_SIZE(keys), LABEL, key) != 0)
        return -EINVAL;
    int rc = get_u32(r, v, "requests_per_second", 1, 1000000, &l->rps, LABEL, key);
    if (rc == 0)
        FAIL("%s.%s: missing \"requests_per_second\"", LABEL, key);
    if (rc < 0 || get_u32(r, v, "burst", 1, 1000000, &l->burst, LABEL, key) < 0)
        return -EINVAL;
    if (l->burst == 0)
        l->burst = l->rps;
    return 0;
}

static bool local_rl_eq(const struct route_field *f, const void *pa, const void *pb)
{
    const struct route_local_rl *a = ROUTE_CFIELD(pa, f, struct route_local_rl);
    const struct route_local_rl *b = ROUTE_CFIELD(pb, f, struct route_local_rl);
    return a->rps == b->rps && a->burst == b->burst;
}

const struct route_json_ops route_json_local_rl = { local_rl_write, local_rl_read, local_rl_eq };

/* ---- allow_upgrade ---- */

static void upgrades_write(struct route_jw *w, const struct route_field *f, const void *base,
                           const struct route_table *t)
{
    (void)t;
    const struct route_upgrades *u = ROUTE_CFIELD(base, f, struct route_upgrades);
    if (u->n == 0)
        return;
    route_jw_key(w, f->name);
    put_strs(w, u->v, u->n);
}

static int upgrades_read(struct route_jr *r, const struct route_field *f, json_object *v,
                         void *base)
{
    struct route_upgrades *u = ROUTE_FIELD(base, f, struct route_upgrades);
    if (get_strs(r, v, &u->v, &u->n, LABEL, f->name) != 0)
        return -EINVAL;
    for (size_t i = 0; i < u->n; i++)
        if (u->v[i][0] == '\0' || strpbrk(u->v[i], "\r\n ,") != NULL)
            FAIL("%s.%s[%zu]: not a protocol name", LABEL, f->name, i);
    return 0;
}

static bool upgrades_eq(const struct route_field *f, const void *pa, const void *pb)
{
    const struct route_upgrades *a = ROUTE_CFIELD(pa, f, struct route_upgrades);
    const struct route_upgrades *b = ROUTE_CFIELD(pb, f, struct route_upgrades);
    return strs_eq(a->v, a->n, b->v, b->n);
}

const struct route_json_ops route_json_upgrades = { upgrades_write, upgrades_read, upgrades_eq };

/* ---- shadow ---- */

static void shadow_write(struct route_jw *w, const struct route_field *f, const void *base,
                         const struct route_table *t)
{
    const struct route_shadow *s = ROUTE_CFIELD(base, f, struct route_shadow);
    if (!s->set)
        return;
    route_jw_key(w, f->name);
    route_jw_open(w, '{');
    put_str(w, "cluster", t->clusters[s->cluster].name);
    put_int(w, "percent", s->percent);
    put_str(w, "mapping", s->mapping);
    route_jw_close(w);
}

static int shadow_read(struct route_jr *r, const struct route_field *f, json_object *v, void *base)
{
    static const char *const keys[] = { "cluster", "percent", "mapping" };
    struct route_shadow *s = ROUTE_FIELD(base, f, struct route_shadow);
    const char *key = f->name;
    json_object *c;
    if (check_object(r, v, keys, ARRAY_SIZE(keys), LABEL, key) != 0)
        return -EINVAL;
    if (!json_object_object_get_ex(v, "cluster", &c) || !json_object_is_type(c, json_type_string))
        FAIL("%s.%s: missing \"cluster\"", LABEL, key);
    if (route_jr_cluster(r, json_object_get_string(c), &s->cluster) != 0)
        FAIL("%s.%s: unknown cluster \"%s\"", LABEL, key, json_object_get_string(c));
    s->set = true;
    s->percent = 100;
    if (get_u32(r, v, "percent", 1, 100, &s->percent, LABEL, key) < 0 ||
        get_str(r, v, "mapping", &s->mapping, LABEL, key) < 0)
        return -EINVAL;
    return 0;
}

static bool shadow_eq(const struct route_field *f, const void *pa, const void *pb)
{
    const struct route_shadow *a = ROUTE_CFIELD(pa, f, struct route_shadow);
    const struct route_shadow *b = ROUTE_CFIELD(pb, f, struct route_shadow);
    return a->set == b->set && a->cluster == b->cluster && a->percent == b->percent &&
           str_eq(a->mapping, b->mapping);
}

const struct route_json_ops route_json_shadow = { shadow_write, shadow_read, shadow_eq };

/* ---- circuit_breakers ---- */

static void cb_write(struct route_jw *w, const struct route_field *f, const void *base,
                     const struct route_table *t)
{
    (void)t;
    const struct route_circuit_breakers *cb = ROUTE_CFIELD(base, f, struct route_circuit_breakers);
    if (!cb->set)
        return;
    route_jw_key(w, f->name);
    route_jw_open(w, '{');
    put_int(w, "max_connections", cb->max_connections);
    put_int(w, "max_pending_requests", cb->max_pending_requests);
    put_int(w, "max_requests", cb->max_requests);
    put_int(w, "max_retries", cb->max_retries);
    route_jw_close(w);
}

static int cb_read(struct route_jr *r, const struct route_field *f, json_object *v, void *base)
{
    static const char *const keys[] = { "max_connections", "max_pending_requests", "max_requests",
                                        "max_retries" };
    struct route_circuit_breakers *cb = ROUTE_FIELD(base, f, struct route_circuit_breakers);
    const char *key = f->name;
    if (check_object(r, v, keys, ARRAY_SIZE(keys), LABEL, key) != 0)
        return -EINVAL;
    cb->set = true;
    cb->max_connections = cb->max_pending_requests = cb->max_requests = ROUTE_CB_DEFAULT_MAX;
    cb->max_retries = ROUTE_CB_DEFAULT_MAX_RETRIES;
    if (get_u32(r, v, "max_connections", 0, UINT32_MAX, &cb->max_connections, LABEL, key) < 0 ||
        get_u32(r, v, "max_pending_requests", 0, UINT32_MAX, &cb->max_pending_requests, LABEL,
                key) < 0 ||
        get_u32(r, v, "max_requests", 0, UINT32_MAX, &cb->max_requests, LABEL, key) < 0 ||
        get_u32(r, v, "max_retries", 0, UINT32_MAX, &cb->max_retries, LABEL, key) < 0)
        return -EINVAL;
    return 0;
}

static bool cb_eq_op(const struct route_field *f, const void *a, const void *b)
{
    return cb_eq(ROUTE_CFIELD(a, f, struct route_circuit_breakers),
                 ROUTE_CFIELD(b, f, struct route_circuit_breakers));
}

const struct route_json_ops route_json_circuit_breakers = { cb_write, cb_read, cb_eq_op };

/* ---- load_balancer ---- */

static void lb_write(struct route_jw *w, const struct route_field *f, const void *base,
                     const struct route_table *t)
{
    (void)t;
    const struct route_lb *lb = ROUTE_CFIELD(base, f, struct route_lb);
    if (lb->policy == ROUTE_LB_ROUND_ROBIN && lb->hash_on == ROUTE_LB_HASH_NONE)
        return;
    route_jw_key(w, f->name);
    route_jw_open(w, '{');
    put_str(w, "policy", route_lb_policy_name(lb->policy));
    if (lb->hash_on == ROUTE_LB_HASH_HEADER) {
        put_str(w, "header", lb->key);
    } else if (lb->hash_on == ROUTE_LB_HASH_COOKIE) {
        route_jw_key(w, "cookie");
        route_jw_open(w, '{');
        put_str(w, "name", lb->key);
        put_str(w, "path", lb->cookie_path);
        if (lb->cookie_ttl_s)
            put_int(w, "ttl_s", lb->cookie_ttl_s);
        route_jw_close(w);
    } else if (lb->hash_on == ROUTE_LB_HASH_SOURCE_IP) {
        route_jw_key(w, "source_ip");
        route_jw_bool(w, true);
    }
    route_jw_close(w);
}

static int lb_read(struct route_jr *r, const struct route_field *f, json_object *v, void *base)
{
    static const char *const keys[] = { "policy", "header", "cookie", "source_ip" };
    static const char *const ckeys[] = { "name", "path", "ttl_s" };
    struct route_lb *lb = ROUTE_FIELD(base, f, struct route_lb);
    const char *key = f->name, *policy = NULL;
    json_object *c;
    bool src = false;
    if (check_object(r, v, keys, ARRAY_SIZE(keys), LABEL, key) != 0 ||
        get_cstr(r, v, "policy", &policy, LABEL, key) < 0)
        return -EINVAL;
    int p = policy ? route_lb_policy_parse(policy) : -1;
    if (p < 0)
        FAIL("%s.%s.policy: expected round_robin, least_request, ring_hash or maglev", LABEL, key);
    lb->policy = (uint8_t)p;
    int nh = 0;
    int rc = get_str(r, v, "header", &lb->key, LABEL, key);
    if (rc < 0)
        return -EINVAL;
    if (rc == 1) {
        lb->hash_on = ROUTE_LB_HASH_HEADER;
        nh++;
    }
    if (json_object_object_get_ex(v, "cookie", &c)) {
        if (check_object(r, c, ckeys, ARRAY_SIZE(ckeys), LABEL, "load_balancer.cookie") != 0)
            return -EINVAL;
        lb->key = NULL;
        if (get_str(r, c, "name", &lb->key, LABEL, key) != 1)
            FAIL("%s.%s.cookie: missing \"name\"", LABEL, key);
        if (get_str(r, c, "path", &lb->cookie_path, LABEL, key) < 0 ||
            get_u32(r, c, "ttl_s", 0, UINT32_MAX, &lb->cookie_ttl_s, LABEL, key) < 0)
            return -EINVAL;
        lb->hash_on = ROUTE_LB_HASH_COOKIE;
        nh++;
    }
    if (get_bool(r, v, "source_ip", &src, LABEL, key) < 0)
        return -EINVAL;
    if (src) {
        lb->hash_on = ROUTE_LB_HASH_SOURCE_IP;
        nh++;
    }
    if (nh > 1)
        FAIL("%s.%s: at most one of header, cookie and source_ip", LABEL, key);
    if (nh == 1 && lb->policy != ROUTE_LB_RING_HASH && lb->policy != ROUTE_LB_MAGLEV)
        FAIL("%s.%s: a hash key needs policy ring_hash or maglev", LABEL, key);
    return 0;
}

static bool lb_eq_op(const struct route_field *f, const void *a, const void *b)
{
    return lb_eq(ROUTE_CFIELD(a, f, struct route_lb), ROUTE_CFIELD(b, f, struct route_lb));
}

const struct route_json_ops route_json_lb = { lb_write, lb_read, lb_eq_op };
