#include "annotation.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "opts.h"
#include "route.h"
#include "strmap.h"
#include "xalloc.h"
#include "ytree.h"

/* An annotation holds at most 256 KiB, so this only stops pathological inputs from turning
 * each byte into a node. */
#define MAX_NODES_PER_DOC 100000

/* Where errors of the document being read go, and what they are attributed to. */
struct doc_ctx {
    const struct annotation_opts *o;
    struct annotation_result *res;
    char label[64]; /* the Mapping's name, or "<document N>" until it is known */
    const char *name;
    int doc;
    size_t first_error; /* res->nerrors when the document started */
};

static void push_diag(struct route_error **v, size_t *n, const struct doc_ctx *d, const char *field,
                      int line, const char *msg)
{
    /* Grows one at a time: annotations carry a handful of problems, not thousands. */
    *v = xrealloc(*v, (*n + 1) * sizeof(**v));
    struct route_error *e = &(*v)[(*n)++];
    e->ns = xstrdup(d->o->ns);
    e->svc = xstrdup(d->o->svc);
    e->mapping = xstrdup(d->name ? d->name : d->label);
    e->field = xstrdup(field);
    e->line = line;
    e->message = xstrdup(msg);
}

static void add_error(struct doc_ctx *d, const char *field, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add_error(struct doc_ctx *d, const char *field, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    push_diag(&d->res->errors, &d->res->nerrors, d, field, line, msg);
}

static bool doc_has_errors(const struct doc_ctx *d)
{
    return d->res->nerrors > d->first_error;
}

/* "precedence: expected an integer, got string \"high\"" */
static void type_error(struct doc_ctx *d, const char *field, const struct ytree_node *v,
                       const char *expected)
{
    char got[96];
    ytree_describe(v, got, sizeof(got));
    add_error(d, field, v->line, "%s: expected %s, got %s", field, expected, got);
}

/* ---- did you mean ---- */

size_t annotation_edit_distance(const char *a, const char *b)
{
    enum { MAXLEN = 64 };
    size_t n = strlen(a), m = strlen(b);
    if (n > MAXLEN || m > MAXLEN)
        return (size_t)-1;
    size_t dp[MAXLEN + 1][MAXLEN + 1];
    for (size_t i = 0; i <= n; i++)
        dp[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        dp[0][j] = j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = dp[i - 1][j] + 1;
            if (dp[i][j - 1] + 1 < best)
                best = dp[i][j - 1] + 1;
            if (dp[i - 1][j - 1] + cost < best)
                best = dp[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                dp[i - 2][j - 2] + 1 < best)
                best = dp[i - 2][j - 2] + 1;
            dp[i][j] = best;
        }
    }
    return dp[n][m];
}

/* Returns the one candidate within distance 2 of word that is closer than every other, or
 * NULL (none close, or a tie: a guess between two would mislead). Very short words are close
 * to too much to suggest anything. */
static const char *suggest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t bestd = 3;
    bool tie = false;
    for (size_t i = 0; i < n; i++) {
        size_t dist = annotation_edit_distance(word, cands[i]);
        if (dist < bestd) {
            bestd = dist;
            best = cands[i];
            tie = false;
        } else if (dist == bestd) {
            tie = true;
        }
    }
    if (best == NULL || tie || bestd >= strlen(word))
        return NULL;
    return best;
}

/* ---- field parsers ---- */

struct mapping_field;
/* Reads v into m. Returns 0, or -EINVAL after recording an error. */
typedef int (*field_parse_cb)(struct doc_ctx *d, const struct mapping_field *f,
                              const struct ytree_node *v, struct mapping *m);

/* flags */
#define F_COMMON   0x1 /* apiVersion, kind, name, ambassador_id: read before the kind is known */
#define F_REQUIRED 0x2

struct mapping_field {
    const char *name;
    field_parse_cb parse; /* NULL: recognised, not supported yet */
    size_t off;           /* destination in struct mapping */
    unsigned flags;
};

#define AT(m, f, type) ((type *)((char *)(m) + (f)->off))

/* Any scalar but null reads as a string: Ambassador's users write `host: 10.0.0.1` or
 * `rewrite: /v1` unquoted, and YAML 1.1 typing would turn some of those into numbers. */
static const char *get_string(struct doc_ctx *d, const char *field, const struct ytree_node *v)
{
    if (v->type != YTREE_SCALAR || ytree_is_null(v) || strlen(v->value) != v->len) {
        type_error(d, field, v, "a string");
        return NULL;
    }
    return v->value;
}

static int p_string(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                    struct mapping *m)
{
    const char *s = get_string(d, f->name, v);
    if (s == NULL)
        return -EINVAL;
    if (*s == '\0') {
        add_error(d, f->name, v->line, "%s: must not be empty", f->name);
        return -EINVAL;
    }
    char **dst = AT(m, f, char *);
    free(*dst);
    *dst = xstrdup(s);
    return 0;
}

/* rewrite: "" means "leave the path alone", which the route model spells NULL. */
static int p_rewrite(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                     struct mapping *m)
{
    const char *s = get_string(d, f->name, v);
    if (s == NULL)
        return -EINVAL;
    char **dst = AT(m, f, char *);
    free(*dst);
    *dst = *s ? xstrdup(s) : NULL;
    return 0;
}

static int p_bool(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                  struct mapping *m)
{
    if (ytree_get_bool(v, AT(m, f, bool)) != 0) {
        type_error(d, f->name, v, "a boolean");
        return -EINVAL;
    }
    return 0;
}

static int p_int32(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                   struct mapping *m)
{
    int64_t i;
    int rc = ytree_get_int(v, &i);
    if (rc == -EINVAL) {
        type_error(d, f->name, v, "an integer");
        return -EINVAL;
    }
    if (rc != 0 || i < INT32_MIN || i > INT32_MAX) {
        add_error(d, f->name, v->line, "%s: %s is out of range", f->name, v->value);
        return -EINVAL;
    }
    *AT(m, f, int32_t) = (int32_t)i;
    return 0;
}

static int p_millis(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                    struct mapping *m)
{
    int64_t i;
    int rc = ytree_get_int(v, &i);
    if (rc == -EINVAL) {
        type_error(d, f->name, v, "an integer");
        return -EINVAL;
    }
    if (rc != 0 || i < 0 || i > UINT32_MAX) {
        add_error(d, f->name, v->line, "%s: expected 0 to %u milliseconds, got %s", f->name,
                  UINT32_MAX, v->value);
        return -EINVAL;
    }
    *AT(m, f, uint32_t) = (uint32_t)i;
    return 0;
}

/* RFC 9110 token characters: what a method or a header name may hold. */
static bool is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!isalnum(c) && strchr("!#$%&'*+-.^_`|~", c) == NULL)
            return false;
    }
    return true;
}

static int p_method(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                    struct mapping *m)
{
    const char *s = get_string(d, f->name, v);
    if (s == NULL)
        return -EINVAL;
    if (!is_token(s)) {
        char got[96];
        ytree_describe(v, got, sizeof(got));
        add_error(d, f->name, v->line, "%s: %s is not an HTTP method", f->name, got);
        return -EINVAL;
    }
    char *up = xstrdup(s);
    for (char *p = up; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    free(m->route.method);
    m->route.method = up;
    return 0;
}

/* headers: {name: value} where value is a string to match exactly, or `true` for "present". */
static int p_headers(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                     struct mapping *m)
{
    if (v->type != YTREE_MAP) {
        type_error(d, f->name, v, "a map of header names to values");
        return -EINVAL;
    }
    size_t n = v->nkids / 2;
    struct route_header *h = xcalloc(n, sizeof(*h));
    size_t nh = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const struct ytree_node *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        if (!ytree_is_text(k)) {
            type_error(d, "headers", k, "a header name");
            rc = -EINVAL;
            continue;
        }
        char *name = xstrdup(k->value);
        for (char *p = name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        /* Pseudo-headers such as ":authority" are names Envoy (and Ambassador) accepted. */
        if (!is_token(name[0] == ':' ? name + 1 : name)) {
            add_error(d, "headers", k->line, "headers: \"%s\" is not a valid header name",
                      k->value);
            free(name);
            rc = -EINVAL;
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < nh; j++)
            dup = dup || strcmp(h[j].name, name) == 0;
        bool present = false;
        char field[160];
        snprintf(field, sizeof(field), "headers.%s", name);
        if (dup) {
            add_error(d, field, k->line, "%s: header listed twice (names are case-insensitive)",
                      field);
        } else if (ytree_get_bool(val, &present) == 0) {
            if (present) {
                h[nh].name = name;
                h[nh++].value = NULL;
                continue;
            }
            add_error(d, field, val->line,
                      "%s: expected a string, or true for \"present\"; got "
                      "false",
                      field);
        } else if (val->type == YTREE_SCALAR && !ytree_is_null(val) &&
                   strlen(val->value) == val->len) {
            h[nh].name = name;
            h[nh++].value = xstrdup(val->value);
            continue;
        } else {
            type_error(d, field, val, "a string, or true for \"present\"");
        }
        free(name);
        rc = -EINVAL;
    }
    m->route.headers = h;
    m->route.nheaders = nh;
    return rc;
}

/* Host names and IP literals: letters, digits, '.', '-', '_' (some clusters use it), and ':'
 * inside brackets. Anything else (spaces, '@', '%') is a typo or an attempt at smuggling. */
static bool is_host(const char *s, bool v6)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!isalnum(c) && c != '.' && c != '-' && c != '_' && !(v6 && c == ':'))
            return false;
    }
    return true;
}

/* service: [http://]name[.namespace][:port]. A bare name stays as written: in a cluster
 * Ambassador resolved it in the Mapping's namespace through cluster DNS search paths, and
 * the directory source has no cluster to resolve against. The Kubernetes source will decide
 * whether to qualify it (docs/mapping-compat.md). */
static int p_service(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                     struct mapping *m)
{
    const char *s = get_string(d, f->name, v);
    if (s == NULL)
        return -EINVAL;
    const char *rest = s;
    const char *sep = strstr(s, "://");
    if (sep != NULL) {
        size_t sl = (size_t)(sep - s);
        if (sl == 5 && strncasecmp(s, "https", 5) == 0) {
            add_error(d, f->name, v->line, "service: TLS origination is not supported yet (\"%s\")",
                      s);
            return -EINVAL;
        }
        if (sl != 4 || strncasecmp(s, "http", 4) != 0) {
            add_error(d, f->name, v->line, "service: unsupported scheme \"%.*s\" in \"%s\"",
                      (int)sl, s, s);
            return -EINVAL;
        }
        rest = sep + 3;
    }
    if (strpbrk(rest, "/?#") != NULL) {
        add_error(d, f->name, v->line,
                  "service: \"%s\" has a path; a service is [http://]name[.namespace][:port] "
                  "(use rewrite to change the path)",
                  s);
        return -EINVAL;
    }
    const char *host = rest, *port = NULL;
    size_t hl;
    bool v6 = false;
    if (*rest == '[') {
        const char *close = strchr(rest, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':')) {
            add_error(d, f->name, v->line, "service: bad IPv6 address in \"%s\"", s);
            return -EINVAL;
        }
        host = rest + 1;
        hl = (size_t)(close - host);
        port = close[1] == ':' ? close + 2 : NULL;
        v6 = true;
    } else {
        const char *colon = strchr(rest, ':');
        hl = colon ? (size_t)(colon - rest) : strlen(rest);
        port = colon ? colon + 1 : NULL;
    }
    uint64_t p = 80;
    if (port != NULL && parse_uint(port, 1, 65535, &p) != 0) {
        add_error(d, f->name, v->line, "service: bad port \"%s\" in \"%s\" (expected 1-65535)",
                  port, s);
        return -EINVAL;
    }
    char *h = xstrndup(host, hl);
    if (!is_host(h, v6)) {
        add_error(d, f->name, v->line, "service: bad host name \"%s\" in \"%s\"", h, s);
        free(h);
        return -EINVAL;
    }
    /* DNS names are case-insensitive: one spelling, so clusters deduplicate. */
    for (char *c = h; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    free(m->upstream_host);
    free(m->scheme);
    m->upstream_host = h;
    m->upstream_port = (uint16_t)p;
    m->scheme = xstrdup("http");
    return 0;
}

#define M(f) offsetof(struct mapping, f)
#define NOT_YET(n)                                                                                 \
    {                                                                                              \
        n, NULL, 0, 0                                                                              \
    }
/* Every Mapping key Legate knows. Supported ones have a parser; the others are Ambassador
 * fields Legate does not implement yet and rejects, because ignoring a routing field would
 * route differently from what the author asked. Supporting one = giving it a parser. */
static const struct mapping_field mapping_fields[] = {
    { "apiVersion", NULL, 0, F_COMMON | F_REQUIRED },
    { "kind", NULL, 0, F_COMMON | F_REQUIRED },
    { "name", NULL, 0, F_COMMON | F_REQUIRED },
    { "ambassador_id", NULL, 0, F_COMMON },
    { "prefix", p_string, M(route.prefix), F_REQUIRED },
    { "service", p_service, 0, F_REQUIRED },
    { "rewrite", p_rewrite, M(route.rewrite), 0 },
    { "host_rewrite", p_string, M(route.host_rewrite), 0 },
    { "method", p_method, M(route.method), 0 },
    { "precedence", p_int32, M(route.precedence), 0 },
    { "timeout_ms", p_millis, M(route.timeout_ms), 0 },
    { "host", p_string, M(route.host), 0 },
    { "headers", p_headers, 0, 0 },
    { "prefix_exact", p_bool, M(route.prefix_exact), 0 },
    { "case_sensitive", p_bool, M(route.case_sensitive), 0 },
    NOT_YET("prefix_regex"),
    NOT_YET("regex_headers"),
    NOT_YET("host_regex"),
    NOT_YET("method_regex"),
    NOT_YET("query_parameters"),
    NOT_YET("regex_query_parameters"),
    NOT_YET("regex_rewrite"),
    NOT_YET("auto_host_rewrite"),
    NOT_YET("host_redirect"),
    NOT_YET("path_redirect"),
    NOT_YET("prefix_redirect"),
    NOT_YET("regex_redirect"),
    NOT_YET("redirect_response_code"),
    NOT_YET("add_request_headers"),
    NOT_YET("add_response_headers"),
    NOT_YET("remove_request_headers"),
    NOT_YET("remove_response_headers"),
    NOT_YET("tls"),
    NOT_YET("grpc"),
    NOT_YET("use_websocket"),
    NOT_YET("allow_upgrade"),
    NOT_YET("weight"),
    NOT_YET("shadow"),
    NOT_YET("idle_timeout_ms"),
    NOT_YET("connect_timeout_ms"),
    NOT_YET("cluster_idle_timeout_ms"),
    NOT_YET("cluster_max_connection_lifetime_ms"),
    NOT_YET("cluster_tag"),
    NOT_YET("retry_policy"),
    NOT_YET("circuit_breakers"),
    NOT_YET("outlier_detection"),
    NOT_YET("load_balancer"),
    NOT_YET("keepalive"),
    NOT_YET("cors"),
    NOT_YET("rate_limits"),
    NOT_YET("labels"),
    NOT_YET("bypass_auth"),
    NOT_YET("auth_context_extensions"),
    NOT_YET("bypass_error_response_overrides"),
    NOT_YET("error_response_overrides"),
    NOT_YET("envoy_override"),
    NOT_YET("add_linkerd_headers"),
    NOT_YET("resolver"),
    NOT_YET("enable_ipv4"),
    NOT_YET("enable_ipv6"),
    NOT_YET("dns_type"),
    NOT_YET("stats_name"),
    NOT_YET("docs"),
    NOT_YET("metadata_labels"),
};
#undef M
#undef NOT_YET

static const char *const api_versions[] = { "ambassador/v0", "ambassador/v1",
                                            "getambassador.io/v2" };
/* Ambassador kinds Legate reads but does not act on yet: a warning, not an error. */
static const char *const other_kinds[] = {
    "Module",         "TLSContext", "AuthService", "RateLimitService",
    "TracingService", "TCPMapping", "LogService",  "KubernetesServiceResolver",
    "ConsulResolver", "Host",       "DevPortal",   "KubernetesEndpointResolver",
};

static const struct mapping_field *find_field(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(mapping_fields); i++)
        if (strcmp(mapping_fields[i].name, name) == 0)
            return &mapping_fields[i];
    return NULL;
}

static void unknown_field(struct doc_ctx *d, const struct ytree_node *k)
{
    const char *names[ARRAY_SIZE(mapping_fields)];
    for (size_t i = 0; i < ARRAY_SIZE(mapping_fields); i++)
        names[i] = mapping_fields[i].name;
    const char *hint = suggest(k->value, names, ARRAY_SIZE(names));
    if (hint != NULL)
        add_error(d, k->value, k->line, "unknown field \"%s\" (did you mean \"%s\"?)", k->value,
                  hint);
    else
        add_error(d, k->value, k->line, "unknown field \"%s\"", k->value);
}

/* ---- one document ---- */

static void mapping_init(struct mapping *m, const struct doc_ctx *d, int line)
{
    memset(m, 0, sizeof(*m));
    m->route.case_sensitive = true;
    m->route.timeout_ms = ROUTE_DEFAULT_TIMEOUT_MS;
    m->route.rewrite = xstrdup("/"); /* Ambassador's default, confusing as it is */
    m->doc = d->doc;
    m->line = line;
}

void mapping_free_fields(struct mapping *m)
{
    route_free_fields(&m->route);
    free(m->scheme);
    free(m->upstream_host);
    memset(m, 0, sizeof(*m));
}

/* ambassador_id: a string or a list of strings. Returns 1 when the document is for us, 0 when
 * it is for another Ambassador, -EINVAL after recording an error. */
static int check_ambassador_id(struct doc_ctx *d, const struct ytree_node *v)
{
    const char *want = d->o->ambassador_id ? d->o->ambassador_id : ANNOTATION_DEFAULT_ID;
    if (v == NULL)
        return strcmp(want, ANNOTATION_DEFAULT_ID) == 0;
    if (v->type == YTREE_SCALAR) {
        const char *s = get_string(d, "ambassador_id", v);
        return s == NULL ? -EINVAL : strcmp(s, want) == 0;
    }
    if (v->type != YTREE_SEQ) {
        type_error(d, "ambassador_id", v, "a string or a list of strings");
        return -EINVAL;
    }
    int match = 0;
    for (size_t i = 0; i < v->nkids; i++) {
        const struct ytree_node *id = v->kids[i];
        if (id->type != YTREE_SCALAR || ytree_is_null(id)) {
            type_error(d, "ambassador_id", id, "a string");
            return -EINVAL;
        }
        match = match || strcmp(id->value, want) == 0;
    }
    return match;
}

/* Reads apiVersion, kind and name. Returns true when the document is a Mapping whose fields
 * should be read (errors may still have been recorded). */
static bool read_header(struct doc_ctx *d, const struct ytree_node *root,
                        const struct ytree_node *const common[4])
{
    const struct ytree_node *api = common[0], *kind = common[1], *name = common[2];
    const char *s;

    if (api == NULL) {
        add_error(d, "apiVersion", root->line, "missing required field \"apiVersion\"");
    } else if ((s = get_string(d, "apiVersion", api)) != NULL) {
        size_t i;
        for (i = 0; i < ARRAY_SIZE(api_versions); i++)
            if (strcmp(s, api_versions[i]) == 0)
                break;
        if (i == ARRAY_SIZE(api_versions))
            add_error(d, "apiVersion", api->line,
                      "apiVersion: unsupported \"%s\" (expected ambassador/v0, ambassador/v1 "
                      "or getambassador.io/v2)",
                      s);
    }

    if (kind == NULL) {
        add_error(d, "kind", root->line, "missing required field \"kind\"");
        return false;
    }
    if ((s = get_string(d, "kind", kind)) == NULL)
        return false;
    if (strcmp(s, "Mapping") != 0) {
        for (size_t i = 0; i < ARRAY_SIZE(other_kinds); i++) {
            if (strcmp(s, other_kinds[i]) == 0) {
                if (!doc_has_errors(d)) {
                    char msg[128];
                    snprintf(msg, sizeof(msg), "kind %s is not supported yet", s);
                    push_diag(&d->res->warnings, &d->res->nwarnings, d, "kind", kind->line, msg);
                }
                return false;
            }
        }
        const char *kinds[ARRAY_SIZE(other_kinds) + 1];
        kinds[0] = "Mapping";
        memcpy(kinds + 1, other_kinds, sizeof(other_kinds));
        const char *hint = suggest(s, kinds, ARRAY_SIZE(kinds));
        if (hint != NULL)
            add_error(d, "kind", kind->line, "kind: unknown kind \"%s\" (did you mean \"%s\"?)", s,
                      hint);
        else
            add_error(d, "kind", kind->line, "kind: unknown kind \"%s\"", s);
        return false;
    }

    if (name == NULL)
        add_error(d, "name", root->line, "missing required field \"name\"");
    else if ((s = get_string(d, "name", name)) != NULL && *s == '\0')
        add_error(d, "name", name->line, "name: must not be empty");
    return true;
}

/* The checks that need the whole Mapping. */
static void validate_mapping(struct doc_ctx *d, const struct mapping *m,
                             const struct ytree_node *root, const struct strmap *seen)
{
    /* apiVersion, kind and name were checked with the header. */
    for (size_t i = 0; i < ARRAY_SIZE(mapping_fields); i++) {
        const struct mapping_field *f = &mapping_fields[i];
        if ((f->flags & F_REQUIRED) && !(f->flags & F_COMMON) && !strmap_get(seen, f->name))
            add_error(d, f->name, root->line, "missing required field \"%s\"", f->name);
    }
    if (m->route.prefix != NULL && m->route.prefix[0] != '/')
        add_error(d, "prefix", ytree_map_get(root, "prefix")->line,
                  "prefix: \"%s\" must start with \"/\" (it is compared with the request path)",
                  m->route.prefix);
}

static void parse_document(struct doc_ctx *d, const struct ytree_doc *doc)
{
    const struct ytree_node *root = doc->root;
    static const char *const common_names[4] = { "apiVersion", "kind", "name", "ambassador_id" };
    const struct ytree_node *common[4] = { NULL, NULL, NULL, NULL };
    struct strmap seen;
    struct mapping m;
    bool have_mapping = false;

    strmap_init(&seen);
    d->doc = doc->index;
    d->name = NULL;
    d->first_error = d->res->nerrors;
    snprintf(d->label, sizeof(d->label), "<document %d>", doc->index);

    if (root == NULL || ytree_is_null(root)) {
        /* Ambassador 0.40 stopped at an empty document; it hides nothing here. */
        log_debug("empty document skipped", "ns=%s svc=%s document=%d", d->o->ns, d->o->svc,
                  doc->index);
        goto out;
    }
    if (root->type != YTREE_MAP) {
        char got[96];
        ytree_describe(root, got, sizeof(got));
        add_error(d, NULL, root->line,
                  "document %d: expected a map (apiVersion, kind, name, ...), got %s", doc->index,
                  got);
        goto out;
    }

    /* Errors name the Mapping as soon as it has a usable name. */
    const struct ytree_node *name = ytree_map_get(root, "name");
    if (name != NULL && ytree_is_text(name))
        d->name = name->value;

    /* Keys: strings, each once. The common ones are looked at first. */
    for (size_t i = 0; i + 1 < root->nkids; i += 2) {
        const struct ytree_node *k = root->kids[i];
        if (!ytree_is_text(k)) {
            char got[96];
            ytree_describe(k, got, sizeof(got));
            add_error(d, NULL, k->line, "keys must be strings, got %s", got);
            continue;
        }
        const struct ytree_node *first = strmap_get(&seen, k->value);
        if (first != NULL) {
            add_error(d, k->value, k->line, "duplicate key \"%s\" (first on line %d)", k->value,
                      first->line);
            continue;
        }
        strmap_put(&seen, k->value, root->kids[i]);
        for (size_t c = 0; c < 4; c++)
            if (strcmp(k->value, common_names[c]) == 0)
                common[c] = root->kids[i + 1];
    }

    int ours = check_ambassador_id(d, common[3]);
    if (ours == 0) {
        log_debug("object for another ambassador_id ignored", "ns=%s svc=%s mapping=%s", d->o->ns,
                  d->o->svc, d->name ? d->name : d->label);
        d->res->nignored++;
        goto out;
    }
    if (!read_header(d, root, common))
        goto out;

    mapping_init(&m, d, root->line);
    have_mapping = true;
    m.name_line = common[2] ? common[2]->line : root->line;
    for (size_t i = 0; i + 1 < root->nkids; i += 2) {
        const struct ytree_node *k = root->kids[i], *v = root->kids[i + 1];
        if (!ytree_is_text(k) || strmap_get(&seen, k->value) != k)
            continue; /* already reported */
        const struct mapping_field *f = find_field(k->value);
        if (f == NULL) {
            unknown_field(d, k);
        } else if (f->flags & F_COMMON) {
            continue;
        } else if (f->parse == NULL) {
            add_error(d, f->name, k->line, "field %s is not supported yet", f->name);
        } else {
            f->parse(d, f, v, &m);
        }
    }
    validate_mapping(d, &m, root, &seen);

    if (!doc_has_errors(d)) {
        struct annotation_result *r = d->res;
        m.route.ns = xstrdup(d->o->ns);
        m.route.svc = xstrdup(d->o->svc);
        m.route.mapping = xstrdup(d->name);
        r->mappings = xrealloc(r->mappings, (r->nmappings + 1) * sizeof(*r->mappings));
        r->mappings[r->nmappings++] = m;
        have_mapping = false; /* moved */
    }

out:
    if (have_mapping)
        mapping_free_fields(&m);
    strmap_free(&seen, NULL);
}

/* ---- the annotation ---- */

/* A "---" at the start of a line always starts a document: YAML forbids it inside every kind
 * of scalar. */
static bool is_doc_marker(const char *p, const char *end)
{
    return end - p >= 3 && p[0] == '-' && p[1] == '-' && p[2] == '-' &&
           (end - p == 3 || p[3] == ' ' || p[3] == '\t' || p[3] == '\r' || p[3] == '\n');
}

/* Where to start again after a syntax error: the first "---" line of text that is at or after
 * the error's line (an unclosed bracket is reported on the next marker, which starts a good
 * document) and after the broken document's own start (or the parse would fail again in the
 * same place). Lines are 0-based within text. Returns the byte offset and sets *line, or
 * returns len when no document follows. */
static size_t resume_point(const char *text, size_t len, int err_line, int doc_line, int *line)
{
    const char *end = text + len;
    int l = 0;
    for (const char *p = text; p < end; l++) {
        if (l >= 1 && l >= err_line && l > doc_line && is_doc_marker(p, end)) {
            *line = l;
            return (size_t)(p - text);
        }
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    return len;
}

void annotation_parse(const char *text, size_t len, const struct annotation_opts *o,
                      struct annotation_result *out)
{
    struct doc_ctx d = { .o = o, .res = out };
    size_t pos = 0;
    int line0 = 0; /* lines of text before pos */
    int ndocs = 0;

    memset(out, 0, sizeof(*out));
    if (len > ANNOTATION_MAX) {
        snprintf(d.label, sizeof(d.label), "<annotation>");
        add_error(&d, NULL, 0, "annotation is %zu bytes, over the %d-byte limit", len,
                  ANNOTATION_MAX);
        return;
    }
    /* One libyaml parser reads documents until the end or a syntax error. libyaml cannot go on
     * after an error, so a new parser starts at the next document: each document stands
     * alone, and the common case still costs a single parser (their 64 KiB of buffers per
     * parser are not free). */
    while (pos < len) {
        struct ytree_parser p;
        struct ytree_doc doc;
        struct ytree_error err;
        int rc;
        ytree_parser_init(&p, text + pos, len - pos, line0, MAX_NODES_PER_DOC);
        while ((rc = ytree_parser_next(&p, &doc, &err)) == 1) {
            doc.index = ++ndocs;
            parse_document(&d, &doc);
            ytree_doc_free(&doc);
        }
        int doc_line = p.doc_line;
        ytree_parser_free(&p);
        if (rc == 0)
            break;

        int next_line = 0;
        size_t next = err.line > 0 ? resume_point(text + pos, len - pos, err.line - 1 - line0,
                                                  doc_line, &next_line)
                                   : len - pos;
        d.doc = ++ndocs;
        d.name = NULL;
        snprintf(d.label, sizeof(d.label), "<document %d>", ndocs);
        add_error(&d, NULL, err.line, "%s; this document is ignored%s", err.msg,
                  next < len - pos ? ", the documents after it are still read" : "");
        pos += next;
        line0 += next_line;
    }
}

void annotation_result_free(struct annotation_result *r)
{
    for (size_t i = 0; i < r->nmappings; i++)
        mapping_free_fields(&r->mappings[i]);
    for (size_t i = 0; i < r->nerrors; i++)
        route_error_free_fields(&r->errors[i]);
    for (size_t i = 0; i < r->nwarnings; i++)
        route_error_free_fields(&r->warnings[i]);
    free(r->mappings);
    free(r->errors);
    free(r->warnings);
    memset(r, 0, sizeof(*r));
}
