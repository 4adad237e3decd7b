/* The Mapping: its keyword table, the parsers of the values only a Mapping has (match maps,
 * regex substitutions, service, tls, redirects), and the checks that need the whole Mapping.
 * Semantics: reference/ambassador-mapping.md; differences: docs/mapping-compat.md. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "annotation_internal.h"
#include "opts.h"
#include "route.h"
#include "rx.h"
#include "xalloc.h"

/* headers, regex_headers, query_parameters, regex_query_parameters: {name: value}. A value is
 * a string (a regex for the regex_ forms), or `true` for "present" in the plain forms. Header
 * names are case-insensitive (kept lower case); query parameter names are not. The regex_
 * and plain forms add to the same list, so a Mapping can use both. */
static int p_matches(struct doc_ctx *d, const struct field *f, const struct ytree_node *v,
                     void *obj)
{
    bool query = f->flags & F_QUERY, regex = f->flags & F_REGEX;
    if (v->type != YTREE_MAP)
        return value_type_error(&d->report, f->name, v,
                                query ? "a map of parameter names to values"
                                      : "a map of header names to values");
    struct route_header *arr = FIELD_ARRAY(obj, f, struct route_header, v->nkids / 2);
    size_t *n = FIELD_COUNT(obj, f);
    int rc = 0;
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct ytree_node *k = v->kids[i], *val = v->kids[i + 1];
        if (!ytree_is_text(k)) {
            value_type_error(&d->report, f->name, k, query ? "a parameter name" : "a header name");
            rc = -EINVAL;
            continue;
        }
        char *name = query ? xstrdup(k->value) : value_lower(xstrdup(k->value));
        /* Pseudo-headers such as ":authority" are names Envoy (and Ambassador) accepted. */
        if (!query && !value_is_token(name[0] == ':' ? name + 1 : name)) {
            doc_error(d, f->name, k->line, "%s: \"%s\" is not a valid header name", f->name,
                      k->value);
            free(name);
            rc = -EINVAL;
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < *n; j++)
            dup = dup || (arr[j].regex == regex && strcmp(arr[j].name, name) == 0);
        bool present = false;
        char field[160];
        snprintf(field, sizeof(field), "%s.%s", f->name, name);
        if (dup) {
            doc_error(d, field, k->line,
                      query ? "%s: parameter listed twice"
                            : "%s: header listed twice (names are case-insensitive)",
                      field);
        } else if (!regex && ytree_get_bool(val, &present) == 0) {
            if (present) {
                arr[(*n)++] = (struct route_header){ name, NULL, false };
                continue;
            }
            doc_error(d, field, val->line,
                      "%s: expected a string, or true for \"present\"; got false", field);
        } else if (val->type == YTREE_SCALAR && !ytree_is_null(val) &&
                   strlen(val->value) == val->len &&
                   !(regex && ytree_scalar_kind(val) == YTREE_K_BOOL)) {
            if (!regex || field_check_regex(d, field, val->line, val->value, 0, NULL) == 0) {
                arr[(*n)++] = (struct route_header){ name, xstrdup(val->value), regex };
                continue;
            }
        } else {
            value_type_error(&d->report, field, val,
                             regex ? "a regex string" : "a string, or true for \"present\"");
        }
        free(name);
        rc = -EINVAL;
    }
    return rc;
}

/* regex_rewrite, regex_redirect: {pattern, substitution}. The pattern must compile and the
 * substitution may only name groups the pattern has. */
static int p_regex_sub(struct doc_ctx *d, const struct field *f, const struct ytree_node *v,
                       void *obj)
{
    const struct ytree_node *pat = NULL, *sub = NULL;
    if (v->type == YTREE_MAP) {
        pat = ytree_map_get(v, "pattern");
        sub = ytree_map_get(v, "substitution");
    }
    if (v->type != YTREE_MAP || v->nkids != 4 || pat == NULL || sub == NULL)
        return value_type_error(&d->report, f->name, v, "{pattern: regex, substitution: string}");
    char pfield[64], sfield[64];
    snprintf(pfield, sizeof(pfield), "%s.pattern", f->name);
    snprintf(sfield, sizeof(sfield), "%s.substitution", f->name);
    const char *p = value_string(&d->report, pfield, pat);
    /* An empty substitution (delete what matched) is a null scalar in plain YAML. */
    const char *s = ytree_is_null(sub) && sub->style == YTREE_PLAIN
                        ? ""
                        : value_string(&d->report, sfield, sub);
    if (p == NULL || s == NULL)
        return -EINVAL;
    struct rx *re = NULL;
    if (field_check_regex(d, pfield, pat->line, p, 0, &re) != 0)
        return -EINVAL;
    char why[256];
    int rc = rx_check_substitution(re, s, why, sizeof(why));
    rx_free(re);
    if (rc != 0) {
        doc_error(d, f->name, sub->line, "%s: \"%s\": %s", sfield, s, why);
        return -EINVAL;
    }
    struct route_regex_sub *dst = FIELD_AT(obj, f, struct route_regex_sub);
    free(dst->pattern);
    free(dst->substitution);
    dst->pattern = xstrdup(p);
    dst->substitution = xstrdup(s);
    return 0;
}

/* tls: true originates TLS like an https:// service. A string names a TLSContext holding a
 * client certificate, which Legate does not read yet. */
static int p_tls(struct doc_ctx *d, const struct field *f, const struct ytree_node *v, void *obj)
{
    if (ytree_get_bool(v, FIELD_AT(obj, f, bool)) == 0)
        return 0;
    if (!ytree_is_text(v))
        return value_type_error(&d->report, f->name, v, "a boolean");
    doc_error(d, f->name, v->line,
              "tls: TLSContext \"%s\" (client certificates) is not supported yet; use "
              "tls: true or an https:// service",
              v->value);
    return -EINVAL;
}

/* redirect_response_code: the codes Envoy (and so Ambassador) accepts. */
static int p_redirect_code(struct doc_ctx *d, const struct field *f, const struct ytree_node *v,
                           void *obj)
{
    int64_t i = 0;
    int rc = value_int(&d->report, f->name, v, &i);
    if (rc == -EINVAL)
        return rc;
    if (rc != 0 || (i != 301 && i != 302 && i != 303 && i != 307 && i != 308)) {
        doc_error(d, f->name, v->line, "%s: %s is not one of 301, 302, 303, 307, 308", f->name,
                  v->value);
        return -EINVAL;
    }
    *FIELD_AT(obj, f, uint16_t) = (uint16_t)i;
    return 0;
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

/* service: [http://|https://]name[.namespace][:port]. A bare name stays as written: in a
 * cluster Ambassador resolved it in the Mapping's namespace through cluster DNS search paths,
 * and the directory source has no cluster to resolve against (docs/mapping-compat.md). The
 * default port (80, or 443 with TLS) is settled in validate_action, once `tls` is known. */
static int p_service(struct doc_ctx *d, const struct field *f, const struct ytree_node *v,
                     void *obj)
{
    struct mapping *m = obj;
    const char *s = value_string(&d->report, f->name, v);
    if (s == NULL)
        return -EINVAL;
    const char *rest = s, *scheme = "http";
    const char *sep = strstr(s, "://");
    if (sep != NULL) {
        size_t sl = (size_t)(sep - s);
        if (sl == 5 && strncasecmp(s, "https", 5) == 0) {
            scheme = "https";
        } else if (sl != 4 || strncasecmp(s, "http", 4) != 0) {
            doc_error(d, f->name, v->line, "service: unsupported scheme \"%.*s\" in \"%s\"",
                      (int)sl, s, s);
            return -EINVAL;
        }
        rest = sep + 3;
    }
    if (strpbrk(rest, "/?#") != NULL) {
        doc_error(d, f->name, v->line,
                  "service: \"%s\" has a path; a service is [http[s]://]name[.namespace][:port] "
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
            doc_error(d, f->name, v->line, "service: bad IPv6 address in \"%s\"", s);
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
    uint64_t p = 0;
    if (port != NULL && parse_uint(port, 1, 65535, &p) != 0) {
        doc_error(d, f->name, v->line, "service: bad port \"%s\" in \"%s\" (expected 1-65535)",
                  port, s);
        return -EINVAL;
    }
    char *h = xstrndup(host, hl);
    if (!is_host(h, v6)) {
        doc_error(d, f->name, v->line, "service: bad host name \"%s\" in \"%s\"", h, s);
        free(h);
        return -EINVAL;
    }
    free(m->upstream_host);
    free(m->scheme);
    m->upstream_host = value_lower(h); /* DNS names are case-insensitive: one spelling */
    m->upstream_port = (uint16_t)p;
    m->port_explicit = port != NULL;
    m->scheme = xstrdup(scheme);
    return 0;
}

/* The traffic-policy fields (annotation_policy.h). */
static int p_policy(struct doc_ctx *d, const struct field *f, const struct ytree_node *v, void *obj)
{
    struct mapping *m = obj;
    return annotation_policy_mapping(f->name, v, &m->route, &m->policy, &d->report);
}

#define M(f) offsetof(struct mapping, f)
#define R(f) offsetof(struct mapping, route.f)
/* Every Mapping key Legate knows. Supported ones have a parser; the others are Ambassador
 * fields Legate does not implement yet and rejects, because ignoring a routing field would
 * route differently from what the author asked. Supporting one = giving it a parser. */
static const struct field mapping_fields[] = {
    FIELD("apiVersion", NULL, 0, 0, F_COMMON | F_REQUIRED),
    FIELD("kind", NULL, 0, 0, F_COMMON | F_REQUIRED),
    FIELD("name", NULL, 0, 0, F_COMMON | F_REQUIRED),
    FIELD("ambassador_id", NULL, 0, 0, F_COMMON),
    FIELD("prefix", field_string, R(prefix), 0, F_REQUIRED),
    FIELD("service", p_service, 0, 0, F_REQUIRED),
    FIELD("rewrite", field_string, R(rewrite), 0, F_EMPTY_NULL),
    FIELD("regex_rewrite", p_regex_sub, R(regex_rewrite), 0, 0),
    FIELD("host_rewrite", field_string, R(host_rewrite), 0, 0),
    FIELD("auto_host_rewrite", field_bool, M(auto_host_rewrite), 0, 0),
    FIELD("method", field_string, R(method), 0, 0),
    FIELD("method_regex", field_bool, R(method_regex), 0, 0),
    FIELD("precedence", field_int32, R(precedence), 0, 0),
    FIELD_MILLIS("timeout_ms", R(timeout_ms), M(timeout_set), F_SET),
    FIELD("host", field_string, R(host), 0, 0),
    FIELD("host_regex", field_bool, R(host_regex), 0, 0),
    FIELD("headers", p_matches, R(headers), R(nheaders), 0),
    FIELD("regex_headers", p_matches, R(headers), R(nheaders), F_REGEX),
    FIELD("query_parameters", p_matches, R(query), R(nquery), F_QUERY),
    FIELD("regex_query_parameters", p_matches, R(query), R(nquery), F_QUERY | F_REGEX),
    FIELD("prefix_exact", field_bool, R(prefix_exact), 0, 0),
    FIELD("prefix_regex", field_bool, R(prefix_regex), 0, 0),
    FIELD("case_sensitive", field_bool, R(case_sensitive), 0, 0),
    FIELD("host_redirect", field_bool, M(host_redirect), 0, 0),
    FIELD("path_redirect", field_string, R(path_redirect), 0, F_PATH),
    FIELD("prefix_redirect", field_string, R(prefix_redirect), 0, F_PATH),
    FIELD("regex_redirect", p_regex_sub, R(regex_redirect), 0, 0),
    FIELD("redirect_response_code", p_redirect_code, R(redirect_code), 0, 0),
    FIELD("add_request_headers", field_header_adds, R(add_request_headers), R(nadd_request_headers),
          0),
    FIELD("add_response_headers", field_header_adds, R(add_response_headers),
          R(nadd_response_headers), 0),
    FIELD("remove_request_headers", field_header_removes, R(remove_request_headers),
          R(nremove_request_headers), 0),
    FIELD("remove_response_headers", field_header_removes, R(remove_response_headers),
          R(nremove_response_headers), 0),
    FIELD("tls", p_tls, M(tls), 0, 0),
    FIELD("envoy_override", field_ignored, 0, 0, 0),
};
static const char *const mapping_not_yet[] = {
    "grpc",
    "cluster_tag",
    "outlier_detection",
    "keepalive",
    "bypass_auth",
    "auth_context_extensions",
    "bypass_error_response_overrides",
    "error_response_overrides",
    "add_linkerd_headers",
    "resolver",
    "enable_ipv4",
    "enable_ipv6",
    "dns_type",
    "stats_name",
    "docs",
    "metadata_labels",
};
static const struct field_table mapping_table =
    FIELD_TABLE("field", mapping_fields, false, p_policy, mapping_not_yet);
#undef M
#undef R

/* ---- the whole Mapping ---- */

static void mapping_init(struct mapping *m, const struct doc_ctx *d, int line)
{
    memset(m, 0, sizeof(*m));
    route_init(&m->route);
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
    mapping_policy_free_fields(&m->policy);
    memset(m, 0, sizeof(*m));
}

static int line_of(const struct ytree_node *root, const char *key)
{
    const struct ytree_node *v = ytree_map_get(root, key);
    return v ? v->line : root->line;
}

/* Checks method (a token, upper-cased, or a regex with method_regex) and compiles the
 * regexes whose flags may come after them in the document. */
static void validate_match(struct doc_ctx *d, struct mapping *m, const struct ytree_node *root)
{
    struct route *r = &m->route;
    if (r->prefix != NULL && r->prefix_regex) {
        field_check_regex(d, "prefix", line_of(root, "prefix"), r->prefix,
                          r->case_sensitive ? 0 : RX_ICASE, NULL);
    } else if (r->prefix != NULL && r->prefix[0] != '/') {
        doc_error(d, "prefix", line_of(root, "prefix"),
                  "prefix: \"%s\" must start with \"/\" (it is compared with the request path)",
                  r->prefix);
    }
    if (r->method != NULL && r->method_regex) {
        field_check_regex(d, "method", line_of(root, "method"), r->method, 0, NULL);
    } else if (r->method != NULL && !value_is_token(r->method)) {
        char got[96];
        ytree_describe(ytree_map_get(root, "method"), got, sizeof(got));
        doc_error(d, "method", line_of(root, "method"), "method: %s is not an HTTP method", got);
    } else if (r->method != NULL) {
        for (char *p = r->method; *p; p++)
            *p = (char)toupper((unsigned char)*p);
    }
    /* Host names are case-insensitive, so host regexes are too. */
    if (r->host != NULL && r->host_regex)
        field_check_regex(d, "host", line_of(root, "host"), r->host, RX_ICASE, NULL);
    else if (r->host != NULL && strlen(r->host) > 255)
        /* No Host header can match it (RFC 1035), and the proxy refuses such a route, which
         * would nack the whole table (found by fuzz_annotation). */
        doc_error(d, "host", line_of(root, "host"),
                  "host: %zu bytes long; a host name has at most 255", strlen(r->host));
    /* A regex flag without its field changes nothing; the proxy refuses a route that has one,
     * which would nack the whole table (found by fuzz_annotation). */
    r->host_regex = r->host_regex && r->host != NULL;
    r->method_regex = r->method_regex && r->method != NULL;
}

/* Settles the upstream (TLS and its default port) and the redirect. */
static void validate_action(struct doc_ctx *d, struct mapping *m, const struct ytree_node *root)
{
    struct route *r = &m->route;
    if (m->upstream_host == NULL)
        return; /* service missing or broken: already reported */
    if (m->tls && strcmp(m->scheme, "https") != 0) {
        free(m->scheme);
        m->scheme = xstrdup("https");
    }
    bool https = strcmp(m->scheme, "https") == 0;
    if (!m->port_explicit)
        m->upstream_port = https ? 443 : 80;
    bool v6 = strchr(m->upstream_host, ':') != NULL;
    /* host_rewrite, when given, wins over auto_host_rewrite (Envoy takes one of them). */
    if (m->auto_host_rewrite && r->host_rewrite == NULL) {
        size_t room = strlen(m->upstream_host) + 3;
        r->host_rewrite = xmalloc(room);
        snprintf(r->host_rewrite, room, v6 ? "[%s]" : "%s", m->upstream_host);
    }

    static const char *const redirect_fields[] = { "path_redirect", "prefix_redirect",
                                                   "regex_redirect", "redirect_response_code" };
    const char *first = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(redirect_fields); i++) {
        const char *f = redirect_fields[i];
        if (ytree_map_get(root, f) == NULL)
            continue;
        if (!m->host_redirect)
            doc_error(d, f, line_of(root, f),
                      "%s: has no effect without host_redirect: true (Ambassador ignored it; "
                      "Legate refuses the Mapping rather than proxy what was meant to redirect)",
                      f);
        else if (first != NULL && i < 3)
            doc_error(d, f, line_of(root, f), "%s: only one of %s and %s may be set", f, first, f);
        if (i < 3 && first == NULL)
            first = f;
    }
    if (m->host_redirect) {
        /* The Location's authority is the service's, as written (a port only when given). */
        size_t room = strlen(m->upstream_host) + 16;
        r->host_redirect = xmalloc(room);
        const char *fmt =
            v6 ? (m->port_explicit ? "[%s]:%u" : "[%s]") : (m->port_explicit ? "%s:%u" : "%s");
        snprintf(r->host_redirect, room, fmt, m->upstream_host, (unsigned)m->upstream_port);
        if (https)
            r->redirect_scheme = xstrdup("https");
    }
}

void mapping_parse(struct doc_ctx *d, const struct ytree_node *root, const struct strmap *seen,
                   const struct ytree_node *name)
{
    struct mapping m;
    mapping_init(&m, d, root->line);
    m.name_line = name ? name->line : root->line;
    for (size_t i = 0; i + 1 < root->nkids; i += 2) {
        const struct ytree_node *k = root->kids[i];
        if (ytree_is_text(k) && strmap_get(seen, k->value) == k) /* else already reported */
            doc_read_field(d, &mapping_table, k, root->kids[i + 1], &m);
    }
    /* apiVersion, kind and name were checked with the header. */
    for (size_t i = 0; i < ARRAY_SIZE(mapping_fields); i++) {
        const struct field *f = &mapping_fields[i];
        if ((f->flags & F_REQUIRED) && !(f->flags & F_COMMON) && !strmap_get(seen, f->name))
            doc_error(d, f->name, root->line, "missing required field \"%s\"", f->name);
    }
    validate_match(d, &m, root);
    validate_action(d, &m, root);
    if (doc_has_errors(d)) {
        mapping_free_fields(&m);
        return;
    }
    struct annotation_result *r = d->res;
    m.route.ns = xstrdup(d->o->ns);
    m.route.svc = xstrdup(d->o->svc);
    m.route.mapping = xstrdup(d->name);
    r->mappings = xrealloc(r->mappings, (r->nmappings + 1) * sizeof(*r->mappings));
    r->mappings[r->nmappings++] = m;
}
