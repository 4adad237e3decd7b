#include "route_policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
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

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        return -EINVAL;                                                                            \
    } while (0)

/* Refuses keys of o outside keys[0..n). Returns the first stray key or NULL. */
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
static int check_object(json_object *v, const char *const *keys, size_t n, const char *label,
                        const char *key, char *err, size_t errlen)
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
static int get_int(json_object *o, const char *name, int64_t min, int64_t max, int64_t *out,
                   const char *label, const char *key, char *err, size_t errlen)
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

static int get_u32(json_object *o, const char *name, uint32_t min, uint32_t max, uint32_t *out,
                   const char *label, const char *key, char *err, size_t errlen)
{
    int64_t i = 0;
    int rc = get_int(o, name, min, max, &i, label, key, err, errlen);
    if (rc == 1)
        *out = (uint32_t)i;
    return rc;
}

/* Reads member name of o as a string (copied into *out) when present. 1, 0 or -EINVAL. */
static int get_str(json_object *o, const char *name, char **out, const char *label, const char *key,
                   char *err, size_t errlen)
{
    json_object *m;
    if (!json_object_object_get_ex(o, name, &m))
        return 0;
    if (!json_object_is_type(m, json_type_string))
        FAIL("%s.%s.%s: expected a string", label, key, name);
    free(*out);
    *out = xstrdup(json_object_get_string(m));
    return 1;
}

static int get_bool(json_object *o, const char *name, bool *out, const char *label, const char *key,
                    char *err, size_t errlen)
{
    json_object *m;
    if (!json_object_object_get_ex(o, name, &m))
        return 0;
    if (!json_object_is_type(m, json_type_boolean))
        FAIL("%s.%s.%s: expected a boolean", label, key, name);
    *out = json_object_get_boolean(m);
    return 1;
}

/* An array of strings into a new char *[] (NULL-terminated room for one more). */
static int get_strs(json_object *v, char ***out, size_t *n, const char *label, const char *key,
                    char *err, size_t errlen)
{
    if (!json_object_is_type(v, json_type_array))
        FAIL("%s.%s: expected an array of strings", label, key);
    size_t len = json_object_array_length(v);
    *out = xcalloc(len + 1, sizeof(char *));
    for (*n = 0; *n < len; ++*n) {
        json_object *e = json_object_array_get_idx(v, *n);
        if (!json_object_is_type(e, json_type_string))
            FAIL("%s.%s[%zu]: expected a string", label, key, *n);
        (*out)[*n] = xstrdup(json_object_get_string(e));
    }
    return 0;
}

static json_object *strs_json(char *const *v, size_t n)
{
    json_object *a = json_object_new_array_ext((int)n);
    for (size_t i = 0; i < n; i++)
        json_object_array_add(a, json_object_new_string(v[i]));
    return a;
}

static void put_str(json_object *o, const char *name, const char *s)
{
    if (s != NULL)
        json_object_object_add(o, name, json_object_new_string(s));
}

/* ---- uint, omitted when 0 ---- */

static json_object *uint_put(const void *field, const struct route_table *t)
{
    (void)t;
    uint32_t v = *(const uint32_t *)field;
    return v ? json_object_new_int64(v) : NULL;
}

static int uint_get(json_object *v, void *field, const struct route_table *t, const char *label,
                    const char *key, char *err, size_t errlen)
{
    (void)t;
    int64_t i = json_object_get_int64(v);
    if (!json_object_is_type(v, json_type_int) || i < 0 || i > UINT32_MAX)
        FAIL("%s.%s: wrong type or out of range", label, key);
    *(uint32_t *)field = (uint32_t)i;
    return 0;
}

static bool uint_eq(const void *a, const void *b)
{
    return *(const uint32_t *)a == *(const uint32_t *)b;
}

const struct route_json_ops route_json_uint_opt = { uint_put, uint_get, uint_eq };

/* ---- retry_policy ---- */

static json_object *retry_put(const void *field, const struct route_table *t)
{
    (void)t;
    const struct route_retry *r = field;
    if (r->on == 0)
        return NULL;
    json_object *o = json_object_new_object();
    json_object *on = json_object_new_array();
    for (size_t i = 0; i < ARRAY_SIZE(retry_names); i++)
        if (r->on & retry_names[i].bit)
            json_object_array_add(on, json_object_new_string(retry_names[i].name));
    json_object_object_add(o, "retry_on", on);
    json_object_object_add(o, "num_retries", json_object_new_int64(r->num_retries));
    if (r->per_try_timeout_ms)
        json_object_object_add(o, "per_try_timeout_ms",
                               json_object_new_int64(r->per_try_timeout_ms));
    if (r->ncodes > 0) {
        json_object *c = json_object_new_array();
        for (uint32_t i = 0; i < r->ncodes; i++)
            json_object_array_add(c, json_object_new_int(r->codes[i]));
        json_object_object_add(o, "retriable_status_codes", c);
    }
    return o;
}

static int retry_get(json_object *v, void *field, const struct route_table *t, const char *label,
                     const char *key, char *err, size_t errlen)
{
    (void)t;
    static const char *const keys[] = { "retry_on", "num_retries", "per_try_timeout_ms",
                                        "retriable_status_codes" };
    struct route_retry *r = field;
    json_object *on = NULL, *codes = NULL;
    if (check_object(v, keys, ARRAY_SIZE(keys), label, key, err, errlen) != 0)
        return -EINVAL;
    if (!json_object_object_get_ex(v, "retry_on", &on) ||
        !json_object_is_type(on, json_type_array) || json_object_array_length(on) == 0)
        FAIL("%s.%s.retry_on: expected a non-empty array of conditions", label, key);
    for (size_t i = 0; i < json_object_array_length(on); i++) {
        json_object *e = json_object_array_get_idx(on, i);
        uint32_t bit = json_object_is_type(e, json_type_string)
                           ? route_retry_on_bit(json_object_get_string(e))
                           : 0;
        if (bit == 0)
            FAIL("%s.%s.retry_on[%zu]: unknown condition", label, key, i);
        r->on |= bit;
    }
    r->num_retries = ROUTE_RETRY_DEFAULT_NUM;
    if (get_u32(v, "num_retries", 0, ROUTE_RETRY_MAX_NUM, &r->num_retries, label, key, err,
                errlen) < 0 ||
        get_u32(v, "per_try_timeout_ms", 0, UINT32_MAX, &r->per_try_timeout_ms, label, key, err,
                errlen) < 0)
        return -EINVAL;
    if (json_object_object_get_ex(v, "retriable_status_codes", &codes)) {
        if (!json_object_is_type(codes, json_type_array) ||
            json_object_array_length(codes) > ROUTE_RETRY_MAX_CODES)
            FAIL("%s.%s.retriable_status_codes: expected an array of at most %d statuses", label,
                 key, ROUTE_RETRY_MAX_CODES);
        for (size_t i = 0; i < json_object_array_length(codes); i++) {
            json_object *e = json_object_array_get_idx(codes, i);
            int64_t c = json_object_get_int64(e);
            if (!json_object_is_type(e, json_type_int) || c < 100 || c > 599)
                FAIL("%s.%s.retriable_status_codes[%zu]: expected a status 100-599", label, key, i);
            r->codes[r->ncodes++] = (uint16_t)c;
        }
    }
    return 0;
}

static bool retry_eq(const void *pa, const void *pb)
{
    const struct route_retry *a = pa, *b = pb;
    return a->on == b->on && a->num_retries == b->num_retries &&
           a->per_try_timeout_ms == b->per_try_timeout_ms && a->ncodes == b->ncodes &&
           memcmp(a->codes, b->codes, a->ncodes * sizeof(a->codes[0])) == 0;
}

const struct route_json_ops route_json_retry = { retry_put, retry_get, retry_eq };

/* ---- cors ---- */

static json_object *cors_put(const void *field, const struct route_table *t)
{
    (void)t;
    const struct route_cors *c = field;
    if (!c->enabled)
        return NULL;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "origins", strs_json(c->origins, c->norigins));
    put_str(o, "methods", c->methods);
    put_str(o, "headers", c->headers);
    put_str(o, "exposed_headers", c->exposed_headers);
    json_object_object_add(o, "credentials", json_object_new_boolean(c->credentials));
    put_str(o, "max_age", c->max_age);
    return o;
}

static int cors_get(json_object *v, void *field, const struct route_table *t, const char *label,
                    const char *key, char *err, size_t errlen)
{
    (void)t;
    static const char *const keys[] = { "origins",         "methods",     "headers",
                                        "exposed_headers", "credentials", "max_age" };
    struct route_cors *c = field;
    json_object *origins;
    if (check_object(v, keys, ARRAY_SIZE(keys), label, key, err, errlen) != 0)
        return -EINVAL;
    c->enabled = true;
    if (json_object_object_get_ex(v, "origins", &origins) &&
        get_strs(origins, &c->origins, &c->norigins, label, "cors.origins", err, errlen) != 0)
        return -EINVAL;
    if (get_str(v, "methods", &c->methods, label, key, err, errlen) < 0 ||
        get_str(v, "headers", &c->headers, label, key, err, errlen) < 0 ||
        get_str(v, "exposed_headers", &c->exposed_headers, label, key, err, errlen) < 0 ||
        get_bool(v, "credentials", &c->credentials, label, key, err, errlen) < 0 ||
        get_str(v, "max_age", &c->max_age, label, key, err, errlen) < 0)
        return -EINVAL;
    /* Header values go out as written: a CR or LF would split the response. */
    const char *vals[] = { c->methods, c->headers, c->exposed_headers, c->max_age };
    for (size_t i = 0; i < ARRAY_SIZE(vals); i++)
        if (vals[i] != NULL && strpbrk(vals[i], "\r\n") != NULL)
            FAIL("%s.%s: a value holds a line break", label, key);
    for (size_t i = 0; i < c->norigins; i++)
        if (strpbrk(c->origins[i], "\r\n") != NULL)
            FAIL("%s.%s: an origin holds a line break", label, key);
    return 0;
}

static bool cors_eq(const void *pa, const void *pb)
{
    const struct route_cors *a = pa, *b = pb;
    return a->enabled == b->enabled && strs_eq(a->origins, a->norigins, b->origins, b->norigins) &&
           str_eq(a->methods, b->methods) && str_eq(a->headers, b->headers) &&
           str_eq(a->exposed_headers, b->exposed_headers) && a->credentials == b->credentials &&
           str_eq(a->max_age, b->max_age);
}

const struct route_json_ops route_json_cors = { cors_put, cors_get, cors_eq };

/* ---- rate-limit descriptors ---- */

static json_object *rl_put(const void *field, const struct route_table *t)
{
    (void)t;
    const struct route_rate_limits *rl = field;
    if (rl->n == 0)
        return NULL;
    json_object *a = json_object_new_array_ext((int)rl->n);
    for (size_t i = 0; i < rl->n; i++) {
        const struct route_rl_descriptor *d = &rl->v[i];
        json_object *o = json_object_new_object();
        put_str(o, "domain", d->domain);
        put_str(o, "name", d->name);
        json_object *es = json_object_new_array_ext((int)d->nentries);
        for (size_t k = 0; k < d->nentries; k++) {
            const struct route_rl_entry *e = &d->entries[k];
            json_object *eo = json_object_new_object();
            json_object_object_add(eo, "kind", json_object_new_string(route_rl_kind_name(e->kind)));
            put_str(eo, "key", e->key);
            put_str(eo, "value", e->value);
            if (e->omit_if_absent)
                json_object_object_add(eo, "omit_if_absent", json_object_new_boolean(1));
            json_object_array_add(es, eo);
        }
        json_object_object_add(o, "entries", es);
        json_object_array_add(a, o);
    }
    return a;
}

static int rl_entry_get(json_object *v, struct route_rl_entry *e, const char *label, char *err,
                        size_t errlen)
{
    static const char *const keys[] = { "kind", "key", "value", "omit_if_absent" };
    char *kind = NULL;
    int rc = -EINVAL;
    if (check_object(v, keys, ARRAY_SIZE(keys), label, "entry", err, errlen) != 0 ||
        get_str(v, "kind", &kind, label, "entry", err, errlen) != 1 ||
        get_str(v, "key", &e->key, label, "entry", err, errlen) != 1 ||
        get_str(v, "value", &e->value, label, "entry", err, errlen) < 0 ||
        get_bool(v, "omit_if_absent", &e->omit_if_absent, label, "entry", err, errlen) < 0) {
        if (err[0] == '\0')
            snprintf(err, errlen, "%s.entry: \"kind\" and \"key\" are required", label);
        goto out;
    }
    e->kind = rl_kind_parse(kind);
    if (e->kind < 0) {
        snprintf(err, errlen, "%s.entry: unknown kind \"%s\"", label, kind);
        goto out;
    }
    if ((e->kind == ROUTE_RL_GENERIC_KEY || e->kind == ROUTE_RL_REQUEST_HEADER) &&
        e->value == NULL) {
        snprintf(err, errlen, "%s.entry: kind %s needs a value", label, kind);
        goto out;
    }
    rc = 0;
out:
    free(kind);
    return rc;
}

static int rl_get(json_object *v, void *field, const struct route_table *t, const char *label,
                  const char *key, char *err, size_t errlen)
{
    (void)t;
    static const char *const keys[] = { "domain", "name", "entries" };
    struct route_rate_limits *rl = field;
    char where[96];
    err[0] = '\0';
    if (!json_object_is_type(v, json_type_array))
        FAIL("%s.%s: expected an array", label, key);
    size_t n = json_object_array_length(v);
    rl->v = xcalloc(n + 1, sizeof(*rl->v));
    for (rl->n = 0; rl->n < n; rl->n++) {
        json_object *o = json_object_array_get_idx(v, rl->n), *es = NULL;
        struct route_rl_descriptor *d = &rl->v[rl->n];
        snprintf(where, sizeof(where), "%s.%s[%zu]", label, key, rl->n);
        if (check_object(o, keys, ARRAY_SIZE(keys), where, "descriptor", err, errlen) != 0 ||
            get_str(o, "domain", &d->domain, where, "descriptor", err, errlen) != 1 ||
            get_str(o, "name", &d->name, where, "descriptor", err, errlen) < 0 ||
            !json_object_object_get_ex(o, "entries", &es) ||
            !json_object_is_type(es, json_type_array)) {
            rl->n++;
            if (err[0] == '\0')
                FAIL("%s: needs \"domain\" and an \"entries\" array", where);
            return -EINVAL;
        }
        size_t ne = json_object_array_length(es);
        d->entries = xcalloc(ne + 1, sizeof(*d->entries));
        for (d->nentries = 0; d->nentries < ne; d->nentries++) {
            if (rl_entry_get(json_object_array_get_idx(es, d->nentries), &d->entries[d->nentries],
                             where, err, errlen) != 0) {
                d->nentries++;
                rl->n++;
                return -EINVAL;
            }
        }
    }
    return 0;
}

static bool rl_eq(const void *pa, const void *pb)
{
    const struct route_rate_limits *a = pa, *b = pb;
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const struct route_rl_descriptor *x = &a->v[i], *y = &b->v[i];
        if (!str_eq(x->domain, y->domain) || !str_eq(x->name, y->name) ||
            x->nentries != y->nentries)
            return false;
        for (size_t k = 0; k < x->nentries; k++) {
            const struct route_rl_entry *e = &x->entries[k], *f = &y->entries[k];
            if (e->kind != f->kind || !str_eq(e->key, f->key) || !str_eq(e->value, f->value) ||
                e->omit_if_absent != f->omit_if_absent)
                return false;
        }
    }
    return true;
}

const struct route_json_ops route_json_rate_limits = { rl_put, rl_get, rl_eq };

/* ---- legate_rate_limit ---- */

static json_object *local_rl_put(const void *field, const struct route_table *t)
{
    (void)t;
    const struct route_local_rl *l = field;
    if (l->rps == 0)
        return NULL;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "requests_per_second", json_object_new_int64(l->rps));
    json_object_object_add(o, "burst", json_object_new_int64(l->burst));
    return o;
}

static int local_rl_get(json_object *v, void *field, const struct route_table *t, const char *label,
                        const char *key, char *err, size_t errlen)
{
    (void)t;
    static const char *const keys[] = { "requests_per_second", "burst" };
    struct route_local_rl *l = field;
    if (check_object(v, keys, ARRAY_SIZE(keys), label, key, err, errlen) != 0)
        return -EINVAL;
    int rc = get_u32(v, "requests_per_second", 1, 1000000, &l->rps, label, key, err, errlen);
    if (rc == 0)
        FAIL("%s.%s: missing \"requests_per_second\"", label, key);
    if (rc < 0 || get_u32(v, "burst", 1, 1000000, &l->burst, label, key, err, errlen) < 0)
        return -EINVAL;
    if (l->burst == 0)
        l->burst = l->rps;
    return 0;
}

static bool local_rl_eq(const void *pa, const void *pb)
{
    const struct route_local_rl *a = pa, *b = pb;
    return a->rps == b->rps && a->burst == b->burst;
}

const struct route_json_ops route_json_local_rl = { local_rl_put, local_rl_get, local_rl_eq };

/* ---- allow_upgrade ---- */

static json_object *upgrades_put(const void *field, const struct route_table *t)
{
    (void)t;
    const struct route_upgrades *u = field;
    return u->n ? strs_json(u->v, u->n) : NULL;
}

static int upgrades_get(json_object *v, void *field, const struct route_table *t, const char *label,
                        const char *key, char *err, size_t errlen)
{
    (void)t;
    struct route_upgrades *u = field;
    if (get_strs(v, &u->v, &u->n, label, key, err, errlen) != 0)
        return -EINVAL;
    for (size_t i = 0; i < u->n; i++)
        if (u->v[i][0] == '\0' || strpbrk(u->v[i], "\r\n ,") != NULL)
            FAIL("%s.%s[%zu]: not a protocol name", label, key, i);
    return 0;
}

static bool upgrades_eq(const void *pa, const void *pb)
{
    const struct route_upgrades *a = pa, *b = pb;
    return strs_eq(a->v, a->n, b->v, b->n);
}

const struct route_json_ops route_json_upgrades = { upgrades_put, upgrades_get, upgrades_eq };

/* ---- shadow ---- */

static json_object *shadow_put(const void *field, const struct route_table *t)
{
    const struct route_shadow *s = field;
    if (!s->set)
        return NULL;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "cluster", json_object_new_string(t->clusters[s->cluster].name));
    json_object_object_add(o, "percent", json_object_new_int64(s->percent));
    put_str(o, "mapping", s->mapping);
    return o;
}

static int shadow_get(json_object *v, void *field, const struct route_table *t, const char *label,
                      const char *key, char *err, size_t errlen)
{
    static const char *const keys[] = { "cluster", "percent", "mapping" };
    struct route_shadow *s = field;
    json_object *c;
    if (check_object(v, keys, ARRAY_SIZE(keys), label, key, err, errlen) != 0)
        return -EINVAL;
    if (!json_object_object_get_ex(v, "cluster", &c) || !json_object_is_type(c, json_type_string))
        FAIL("%s.%s: missing \"cluster\"", label, key);
    size_t i;
    for (i = 0; i < t->nclusters; i++)
        if (strcmp(t->clusters[i].name, json_object_get_string(c)) == 0)
            break;
    if (i == t->nclusters)
        FAIL("%s.%s: unknown cluster \"%s\"", label, key, json_object_get_string(c));
    s->set = true;
    s->cluster = (uint32_t)i;
    s->percent = 100;
    if (get_u32(v, "percent", 1, 100, &s->percent, label, key, err, errlen) < 0 ||
        get_str(v, "mapping", &s->mapping, label, key, err, errlen) < 0)
        return -EINVAL;
    return 0;
}

static bool shadow_eq(const void *pa, const void *pb)
{
    const struct route_shadow *a = pa, *b = pb;
    return a->set == b->set && a->cluster == b->cluster && a->percent == b->percent &&
           str_eq(a->mapping, b->mapping);
}

const struct route_json_ops route_json_shadow = { shadow_put, shadow_get, shadow_eq };

/* ---- circuit_breakers ---- */

static json_object *cb_put(const void *field, const struct route_table *t)
{
    (void)t;
    const struct route_circuit_breakers *cb = field;
    if (!cb->set)
        return NULL;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "max_connections", json_object_new_int64(cb->max_connections));
    json_object_object_add(o, "max_pending_requests",
                           json_object_new_int64(cb->max_pending_requests));
    json_object_object_add(o, "max_requests", json_object_new_int64(cb->max_requests));
    json_object_object_add(o, "max_retries", json_object_new_int64(cb->max_retries));
    return o;
}

static int cb_get(json_object *v, void *field, const struct route_table *t, const char *label,
                  const char *key, char *err, size_t errlen)
{
    (void)t;
    static const char *const keys[] = { "max_connections", "max_pending_requests", "max_requests",
                                        "max_retries" };
    struct route_circuit_breakers *cb = field;
    if (check_object(v, keys, ARRAY_SIZE(keys), label, key, err, errlen) != 0)
        return -EINVAL;
    cb->set = true;
    cb->max_connections = cb->max_pending_requests = cb->max_requests = ROUTE_CB_DEFAULT_MAX;
    cb->max_retries = ROUTE_CB_DEFAULT_MAX_RETRIES;
    if (get_u32(v, "max_connections", 0, UINT32_MAX, &cb->max_connections, label, key, err,
                errlen) < 0 ||
        get_u32(v, "max_pending_requests", 0, UINT32_MAX, &cb->max_pending_requests, label, key,
                err, errlen) < 0 ||
        get_u32(v, "max_requests", 0, UINT32_MAX, &cb->max_requests, label, key, err, errlen) < 0 ||
        get_u32(v, "max_retries", 0, UINT32_MAX, &cb->max_retries, label, key, err, errlen) < 0)
        return -EINVAL;
    return 0;
}

static bool cb_eq_op(const void *a, const void *b)
{
    return cb_eq(a, b);
}

const struct route_json_ops route_json_circuit_breakers = { cb_put, cb_get, cb_eq_op };

/* ---- load_balancer ---- */

static json_object *lb_put(const void *field, const struct route_table *t)
{
    (void)t;
    const struct route_lb *lb = field;
    if (lb->policy == ROUTE_LB_ROUND_ROBIN && lb->hash_on == ROUTE_LB_HASH_NONE)
        return NULL;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "policy", json_object_new_string(route_lb_policy_name(lb->policy)));
    if (lb->hash_on == ROUTE_LB_HASH_HEADER) {
        put_str(o, "header", lb->key);
    } else if (lb->hash_on == ROUTE_LB_HASH_COOKIE) {
        json_object *c = json_object_new_object();
        put_str(c, "name", lb->key);
        put_str(c, "path", lb->cookie_path);
        if (lb->cookie_ttl_s)
            json_object_object_add(c, "ttl_s", json_object_new_int64(lb->cookie_ttl_s));
        json_object_object_add(o, "cookie", c);
    } else if (lb->hash_on == ROUTE_LB_HASH_SOURCE_IP) {
        json_object_object_add(o, "source_ip", json_object_new_boolean(1));
    }
    return o;
}

static int lb_get(json_object *v, void *field, const struct route_table *t, const char *label,
                  const char *key, char *err, size_t errlen)
{
    (void)t;
    static const char *const keys[] = { "policy", "header", "cookie", "source_ip" };
    static const char *const ckeys[] = { "name", "path", "ttl_s" };
    struct route_lb *lb = field;
    char *policy = NULL;
    json_object *c;
    bool src = false;
    if (check_object(v, keys, ARRAY_SIZE(keys), label, key, err, errlen) != 0 ||
        get_str(v, "policy", &policy, label, key, err, errlen) < 0)
        return -EINVAL;
    int p = policy ? route_lb_policy_parse(policy) : -1;
    free(policy);
    if (p < 0)
        FAIL("%s.%s.policy: expected round_robin, least_request, ring_hash or maglev", label, key);
    lb->policy = (uint8_t)p;
    int nh = 0;
    int rc = get_str(v, "header", &lb->key, label, key, err, errlen);
    if (rc < 0)
        return -EINVAL;
    if (rc == 1) {
        lb->hash_on = ROUTE_LB_HASH_HEADER;
        nh++;
    }
    if (json_object_object_get_ex(v, "cookie", &c)) {
        if (check_object(c, ckeys, ARRAY_SIZE(ckeys), label, "load_balancer.cookie", err, errlen) !=
            0)
            return -EINVAL;
        free(lb->key);
        lb->key = NULL;
        if (get_str(c, "name", &lb->key, label, key, err, errlen) != 1)
            FAIL("%s.%s.cookie: missing \"name\"", label, key);
        if (get_str(c, "path", &lb->cookie_path, label, key, err, errlen) < 0 ||
            get_u32(c, "ttl_s", 0, UINT32_MAX, &lb->cookie_ttl_s, label, key, err, errlen) < 0)
            return -EINVAL;
        lb->hash_on = ROUTE_LB_HASH_COOKIE;
        nh++;
    }
    if (get_bool(v, "source_ip", &src, label, key, err, errlen) < 0)
        return -EINVAL;
    if (src) {
        lb->hash_on = ROUTE_LB_HASH_SOURCE_IP;
        nh++;
    }
    if (nh > 1)
        FAIL("%s.%s: at most one of header, cookie and source_ip", label, key);
    if (nh == 1 && lb->policy != ROUTE_LB_RING_HASH && lb->policy != ROUTE_LB_MAGLEV)
        FAIL("%s.%s: a hash key needs policy ring_hash or maglev", label, key);
    return 0;
}

static bool lb_eq_op(const void *a, const void *b)
{
    return lb_eq(a, b);
}

const struct route_json_ops route_json_lb = { lb_put, lb_get, lb_eq_op };
