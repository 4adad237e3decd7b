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
#include "utf8.h"
#include "rx.h"
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
    /* Messages quote the annotation and are cut to fixed sizes, possibly inside a character;
     * they travel as JSON to the proxy (which reads strictly) and into Events. */
    utf8_scrub(e->message);
    if (e->field != NULL)
        utf8_scrub(e->field);
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
/* Reads v into obj (a struct mapping or struct module, as the table says). Returns 0, or
 * -EINVAL after recording an error. */
typedef int (*field_parse_cb)(struct doc_ctx *d, const struct mapping_field *f,
                              const struct ytree_node *v, void *obj);

/* flags */
#define F_COMMON   0x01 /* apiVersion, kind, name, ambassador_id: read before the kind is known */
#define F_REQUIRED 0x02
#define F_REGEX    0x04 /* match maps: values are regexes */
#define F_QUERY    0x08 /* match maps: query parameters (names keep their case) */

struct mapping_field {
    const char *name;
    field_parse_cb parse; /* NULL: recognised, not supported yet */
    size_t off;           /* destination in the object */
    size_t noff;          /* list fields: where the element count lives */
    unsigned flags;
};

#define AT(m, f, type) ((type *)((char *)(m) + (f)->off))
#define COUNT(m, f)    ((size_t *)((char *)(m) + (f)->noff))

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
                    void *obj)
{
    const char *s = get_string(d, f->name, v);
    if (s == NULL)
        return -EINVAL;
    if (*s == '\0') {
        add_error(d, f->name, v->line, "%s: must not be empty", f->name);
        return -EINVAL;
    }
    char **dst = AT(obj, f, char *);
    free(*dst);
    *dst = xstrdup(s);
    return 0;
}

/* A path for path_redirect / prefix_redirect: a string that starts with "/". */
static int p_path(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                  void *obj)
{
    if (p_string(d, f, v, obj) != 0)
        return -EINVAL;
    if (**AT(obj, f, char *) != '/' || strpbrk(*AT(obj, f, char *), "\r\n") != NULL) {
        add_error(d, f->name, v->line, "%s: \"%s\" must be a path starting with \"/\"", f->name,
                  v->value);
        return -EINVAL;
    }
    return 0;
}

/* A string sent in a header line (server_name): no control characters. */
static int p_header_text(struct doc_ctx *d, const struct mapping_field *f,
                         const struct ytree_node *v, void *obj)
{
    if (p_string(d, f, v, obj) != 0)
        return -EINVAL;
    for (const char *c = *AT(obj, f, char *); *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            add_error(d, f->name, v->line, "%s: control characters are not allowed", f->name);
            return -EINVAL;
        }
    }
    return 0;
}

/* rewrite: "" means "leave the path alone", which the route model spells NULL. */
static int p_rewrite(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                     void *obj)
{
    const char *s = get_string(d, f->name, v);
    if (s == NULL)
        return -EINVAL;
    char **dst = AT(obj, f, char *);
    free(*dst);
    *dst = *s ? xstrdup(s) : NULL;
    return 0;
}

static int p_bool(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                  void *obj)
{
    if (ytree_get_bool(v, AT(obj, f, bool)) != 0) {
        type_error(d, f->name, v, "a boolean");
        return -EINVAL;
    }
    return 0;
}

static int p_int32(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                   void *obj)
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
    *AT(obj, f, int32_t) = (int32_t)i;
    return 0;
}

/* A non-negative integer up to max; what it counts goes in the error ("milliseconds"). */
static int get_uint(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                    uint32_t max, const char *unit, uint32_t *out)
{
    int64_t i;
    int rc = ytree_get_int(v, &i);
    if (rc == -EINVAL) {
        type_error(d, f->name, v, "an integer");
        return -EINVAL;
    }
    if (rc != 0 || i < 0 || i > max) {
        add_error(d, f->name, v->line, "%s: expected 0 to %u%s, got %s", f->name, max, unit,
                  v->value);
        return -EINVAL;
    }
    *out = (uint32_t)i;
    return 0;
}

static int p_millis(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                    void *obj)
{
    return get_uint(d, f, v, UINT32_MAX, " milliseconds", AT(obj, f, uint32_t));
}

/* timeout_ms of a Mapping, cluster_request_timeout_ms of the Module: both remember that they
 * were set, so the Module's default fills only the Mappings that left it out. The flag sits
 * right after the value in both structs. */
static int p_timeout(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                     void *obj)
{
    if (p_millis(d, f, v, obj) != 0)
        return -EINVAL;
    *(bool *)((char *)obj + f->noff) = true;
    return 0;
}

static int p_hops(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                  void *obj)
{
    /* More trusted proxies than that in front of one ingress is a typo. */
    return get_uint(d, f, v, 64, "", AT(obj, f, uint32_t));
}

static int p_redirect_code(struct doc_ctx *d, const struct mapping_field *f,
                           const struct ytree_node *v, void *obj)
{
    int64_t i;
    if (ytree_get_int(v, &i) == -EINVAL) {
        type_error(d, f->name, v, "an integer");
        return -EINVAL;
    }
    if (i != 301 && i != 302 && i != 303 && i != 307 && i != 308) {
        add_error(d, f->name, v->line, "%s: %s is not one of 301, 302, 303, 307, 308", f->name,
                  v->value);
        return -EINVAL;
    }
    *AT(obj, f, uint16_t) = (uint16_t)i;
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

/* Compiles a regex only to check it (the proxy compiles its own copy): a bad pattern is the
 * author's error, reported on their Mapping, never a snapshot the proxy refuses. */
static int check_regex(struct doc_ctx *d, const char *field, int line, const char *pattern,
                       unsigned flags, struct rx **keep)
{
    struct rx *re = NULL;
    char why[256];
    if (rx_compile(pattern, flags, &re, why, sizeof(why)) != 0) {
        add_error(d, field, line, "%s: invalid regex \"%s\": %s", field, pattern, why);
        return -EINVAL;
    }
    if (keep != NULL)
        *keep = re;
    else
        rx_free(re);
    return 0;
}

static void lower_in_place(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* headers, regex_headers, query_parameters, regex_query_parameters: {name: value}. A value is
 * a string (a regex for the regex_ forms), or `true` for "present" in the plain forms. Header
 * names are case-insensitive (kept lower case); query parameter names are not. The regex_
 * and plain forms add to the same list, so a Mapping can use both. */
static int p_matches(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                     void *obj)
{
    bool query = f->flags & F_QUERY, regex = f->flags & F_REGEX;
    if (v->type != YTREE_MAP) {
        type_error(d, f->name, v,
                   query ? "a map of parameter names to values"
                         : "a map of header names to values");
        return -EINVAL;
    }
    struct route_header **arr = AT(obj, f, struct route_header *);
    size_t *n = COUNT(obj, f);
    *arr = xrealloc(*arr, (*n + v->nkids / 2 + 1) * sizeof(**arr));
    int rc = 0;
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct ytree_node *k = v->kids[i], *val = v->kids[i + 1];
        if (!ytree_is_text(k)) {
            type_error(d, f->name, k, query ? "a parameter name" : "a header name");
            rc = -EINVAL;
            continue;
        }
        char *name = xstrdup(k->value);
        if (!query)
            lower_in_place(name);
        /* Pseudo-headers such as ":authority" are names Envoy (and Ambassador) accepted. */
        if (!query && !is_token(name[0] == ':' ? name + 1 : name)) {
            add_error(d, f->name, k->line, "%s: \"%s\" is not a valid header name", f->name,
                      k->value);
            free(name);
            rc = -EINVAL;
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < *n; j++)
            dup = dup || ((*arr)[j].regex == regex && strcmp((*arr)[j].name, name) == 0);
        bool present = false;
        char field[160];
        snprintf(field, sizeof(field), "%s.%s", f->name, name);
        if (dup) {
            add_error(d, field, k->line,
                      query ? "%s: parameter listed twice"
                            : "%s: header listed twice (names are case-insensitive)",
                      field);
        } else if (!regex && ytree_get_bool(val, &present) == 0) {
            if (present) {
                (*arr)[(*n)++] = (struct route_header){ name, NULL, false };
                continue;
            }
            add_error(d, field, val->line,
                      "%s: expected a string, or true for \"present\"; got false", field);
        } else if (val->type == YTREE_SCALAR && !ytree_is_null(val) &&
                   strlen(val->value) == val->len &&
                   !(regex && ytree_scalar_kind(val) == YTREE_K_BOOL)) {
            if (!regex || check_regex(d, field, val->line, val->value, 0, NULL) == 0) {
                (*arr)[(*n)++] = (struct route_header){ name, xstrdup(val->value), regex };
                continue;
            }
        } else {
            type_error(d, field, val,
                       regex ? "a regex string" : "a string, or true for \"present\"");
        }
        free(name);
        rc = -EINVAL;
    }
    return rc;
}

/* Headers the proxy owns: framing, hop-by-hop, and Host (host_rewrite sets it). Editing them
 * through add_/remove_ would break the message or bypass the proxy's own handling. */
static bool is_reserved_header(const char *name)
{
    static const char *const reserved[] = { "host",       "content-length", "transfer-encoding",
                                            "connection", "keep-alive",     "te",
                                            "trailer",    "upgrade",        "proxy-connection" };
    for (size_t i = 0; i < ARRAY_SIZE(reserved); i++)
        if (strcasecmp(name, reserved[i]) == 0)
            return true;
    return false;
}

/* Envoy expands %VARIABLE% in added header values and wants "%%" for a literal "%". Legate
 * expands no variables: "%%" becomes "%", any other "%" is refused rather than sent as
 * written (it would differ from what Ambassador sent). Returns a new string or NULL after
 * recording an error. */
static char *header_value(struct doc_ctx *d, const char *field, const struct ytree_node *v)
{
    if (v->type != YTREE_SCALAR || ytree_is_null(v) || strlen(v->value) != v->len) {
        type_error(d, field, v, "a string, or {value, append}");
        return NULL;
    }
    if (strpbrk(v->value, "\r\n") != NULL) {
        add_error(d, field, v->line, "%s: a header value cannot hold a line break", field);
        return NULL;
    }
    char *out = xmalloc(v->len + 1), *o = out;
    for (const char *s = v->value; *s; s++) {
        if (*s == '%' && s[1] == '%') {
            s++;
        } else if (*s == '%') {
            add_error(d, field, v->line,
                      "%s: %%VARIABLE%% substitution is not supported yet (write %%%% for a "
                      "literal %%)",
                      field);
            free(out);
            return NULL;
        }
        *o++ = *s;
    }
    *o = '\0';
    return out;
}

/* add_request_headers, add_response_headers: {name: value}, where value is a string or (v2)
 * {value: string, append: bool}; append (the default) adds a line, false replaces. */
static int p_header_adds(struct doc_ctx *d, const struct mapping_field *f,
                         const struct ytree_node *v, void *obj)
{
    if (v->type != YTREE_MAP) {
        type_error(d, f->name, v, "a map of header names to values");
        return -EINVAL;
    }
    struct route_header_add **arr = AT(obj, f, struct route_header_add *);
    size_t *n = COUNT(obj, f);
    *arr = xrealloc(*arr, (*n + v->nkids / 2 + 1) * sizeof(**arr));
    int rc = 0;
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct ytree_node *k = v->kids[i], *val = v->kids[i + 1];
        char field[160];
        if (!ytree_is_text(k) || !is_token(k->value)) {
            char got[96];
            ytree_describe(k, got, sizeof(got));
            add_error(d, f->name, k->line, "%s: %s is not a valid header name", f->name, got);
            rc = -EINVAL;
            continue;
        }
        snprintf(field, sizeof(field), "%s.%s", f->name, k->value);
        bool dup = false;
        for (size_t j = 0; j < *n; j++)
            dup = dup || strcasecmp((*arr)[j].name, k->value) == 0;
        if (dup || is_reserved_header(k->value)) {
            add_error(d, field, k->line,
                      dup ? "%s: header listed twice (names are case-insensitive)"
                          : "%s: the proxy sets this header itself; it cannot be added",
                      field);
            rc = -EINVAL;
            continue;
        }
        const struct ytree_node *value = val;
        bool append = true;
        if (val->type == YTREE_MAP) {
            value = ytree_map_get(val, "value");
            const struct ytree_node *ap = ytree_map_get(val, "append");
            bool bad_key = false;
            for (size_t j = 0; j + 1 < val->nkids; j += 2)
                bad_key = bad_key || !ytree_is_text(val->kids[j]) ||
                          (strcmp(val->kids[j]->value, "value") != 0 &&
                           strcmp(val->kids[j]->value, "append") != 0);
            if (bad_key || value == NULL) {
                add_error(d, field, val->line, "%s: expected {value: string, append: boolean}",
                          field);
                rc = -EINVAL;
                continue;
            }
            if (ap != NULL && ytree_get_bool(ap, &append) != 0) {
                type_error(d, field, ap, "a boolean for append");
                rc = -EINVAL;
                continue;
            }
        }
        char *s = header_value(d, field, value);
        if (s == NULL) {
            rc = -EINVAL;
            continue;
        }
        (*arr)[(*n)++] = (struct route_header_add){ xstrdup(k->value), s, append };
    }
    return rc;
}

/* remove_request_headers, remove_response_headers: a header name or a list of them. */
static int p_header_removes(struct doc_ctx *d, const struct mapping_field *f,
                            const struct ytree_node *v, void *obj)
{
    const struct ytree_node *const *items = &v;
    size_t nitems = 1;
    if (v->type == YTREE_SEQ) {
        items = (const struct ytree_node *const *)v->kids;
        nitems = v->nkids;
    } else if (v->type != YTREE_SCALAR) {
        type_error(d, f->name, v, "a header name or a list of them");
        return -EINVAL;
    }
    char ***arr = AT(obj, f, char **);
    size_t *n = COUNT(obj, f);
    *arr = xrealloc(*arr, (*n + nitems + 1) * sizeof(**arr));
    int rc = 0;
    for (size_t i = 0; i < nitems; i++) {
        const struct ytree_node *it = items[i];
        if (!ytree_is_text(it) || !is_token(it->value)) {
            char got[96];
            ytree_describe(it, got, sizeof(got));
            add_error(d, f->name, it->line, "%s: %s is not a valid header name", f->name, got);
            rc = -EINVAL;
        } else if (is_reserved_header(it->value)) {
            add_error(d, f->name, it->line,
                      "%s: \"%s\" is handled by the proxy itself; it cannot be removed", f->name,
                      it->value);
            rc = -EINVAL;
        } else {
            char *name = xstrdup(it->value);
            lower_in_place(name);
            (*arr)[(*n)++] = name;
        }
    }
    return rc;
}

/* regex_rewrite, regex_redirect: {pattern, substitution}. The pattern must compile and the
 * substitution may only name groups the pattern has. */
static int p_regex_sub(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                       void *obj)
{
    const struct ytree_node *pat = NULL, *sub = NULL;
    if (v->type == YTREE_MAP) {
        pat = ytree_map_get(v, "pattern");
        sub = ytree_map_get(v, "substitution");
    }
    if (v->type != YTREE_MAP || v->nkids != 4 || pat == NULL || sub == NULL) {
        type_error(d, f->name, v, "{pattern: regex, substitution: string}");
        return -EINVAL;
    }
    char field[64];
    snprintf(field, sizeof(field), "%s.pattern", f->name);
    const char *p = get_string(d, field, pat);
    snprintf(field, sizeof(field), "%s.substitution", f->name);
    /* An empty substitution (delete what matched) is a null scalar in plain YAML. */
    const char *s =
        ytree_is_null(sub) && sub->style == YTREE_PLAIN ? "" : get_string(d, field, sub);
    if (p == NULL || s == NULL)
        return -EINVAL;
    struct rx *re = NULL;
    snprintf(field, sizeof(field), "%s.pattern", f->name);
    if (check_regex(d, field, pat->line, p, 0, &re) != 0)
        return -EINVAL;
    char why[256];
    int rc = rx_check_substitution(re, s, why, sizeof(why));
    rx_free(re);
    if (rc != 0) {
        add_error(d, f->name, sub->line, "%s.substitution: \"%s\": %s", f->name, s, why);
        return -EINVAL;
    }
    struct route_regex_sub *dst = AT(obj, f, struct route_regex_sub);
    free(dst->pattern);
    free(dst->substitution);
    dst->pattern = xstrdup(p);
    dst->substitution = xstrdup(s);
    return 0;
}

/* tls: true originates TLS like an https:// service. A string names a TLSContext holding a
 * client certificate, which Legate does not read yet. */
static int p_tls(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                 void *obj)
{
    if (ytree_get_bool(v, AT(obj, f, bool)) == 0)
        return 0;
    if (ytree_is_text(v)) {
        add_error(d, f->name, v->line,
                  "tls: TLSContext \"%s\" (client certificates) is not supported yet; use "
                  "tls: true or an https:// service",
                  v->value);
        return -EINVAL;
    }
    type_error(d, f->name, v, "a boolean");
    return -EINVAL;
}

/* Traffic-policy fields (annotation_policy.c) report through these. */
static void on_policy_error(void *arg, const char *field, int line, const char *msg)
{
    add_error(arg, field, line, "%s", msg);
}

static void on_policy_warning(void *arg, const char *field, int line, const char *msg)
{
    struct doc_ctx *d = arg;
    push_diag(&d->res->warnings, &d->res->nwarnings, d, field, line, msg);
}

static int p_policy(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                    void *obj)
{
    struct policy_ctx ctx = { on_policy_error, on_policy_warning, d };
    struct mapping *m = obj;
    return annotation_policy_mapping(f->name, v, &m->route.policy, &m->policy, &ctx);
}

static int p_module_policy(struct doc_ctx *d, const struct mapping_field *f,
                           const struct ytree_node *v, void *obj)
{
    struct policy_ctx ctx = { on_policy_error, on_policy_warning, d };
    struct module *mo = obj;
    return annotation_policy_module(f->name, v, &mo->policy, &ctx);
}

/* Accepted so that Mappings written for Ambassador load, and said to be ignored. */
static int p_ignored(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                     void *obj)
{
    (void)obj;
    char msg[160];
    snprintf(msg, sizeof(msg), "%s is ignored: Legate has no Envoy to pass it to", f->name);
    push_diag(&d->res->warnings, &d->res->nwarnings, d, f->name, v->line, msg);
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
 * default port (80, or 443 with TLS) is settled in validate_mapping, once `tls` is known. */
static int p_service(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                     void *obj)
{
    struct mapping *m = obj;
    const char *s = get_string(d, f->name, v);
    if (s == NULL)
        return -EINVAL;
    const char *rest = s, *scheme = "http";
    const char *sep = strstr(s, "://");
    if (sep != NULL) {
        size_t sl = (size_t)(sep - s);
        if (sl == 5 && strncasecmp(s, "https", 5) == 0) {
            scheme = "https";
        } else if (sl != 4 || strncasecmp(s, "http", 4) != 0) {
            add_error(d, f->name, v->line, "service: unsupported scheme \"%.*s\" in \"%s\"",
                      (int)sl, s, s);
            return -EINVAL;
        }
        rest = sep + 3;
    }
    if (strpbrk(rest, "/?#") != NULL) {
        add_error(d, f->name, v->line,
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
    uint64_t p = 0;
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
    lower_in_place(h);
    free(m->upstream_host);
    free(m->scheme);
    m->upstream_host = h;
    m->upstream_port = (uint16_t)p;
    m->port_explicit = port != NULL;
    m->scheme = xstrdup(scheme);
    return 0;
}

#define M(f) offsetof(struct mapping, f)
#define R(f) offsetof(struct mapping, route.f)
#define NOT_YET(n)                                                                                 \
    {                                                                                              \
        n, NULL, 0, 0, 0                                                                           \
    }
/* Every Mapping key Legate knows. Supported ones have a parser; the others are Ambassador
 * fields Legate does not implement yet and rejects, because ignoring a routing field would
 * route differently from what the author asked. Supporting one = giving it a parser. */
static const struct mapping_field mapping_fields[] = {
    { "apiVersion", NULL, 0, 0, F_COMMON | F_REQUIRED },
    { "kind", NULL, 0, 0, F_COMMON | F_REQUIRED },
    { "name", NULL, 0, 0, F_COMMON | F_REQUIRED },
    { "ambassador_id", NULL, 0, 0, F_COMMON },
    { "prefix", p_string, R(prefix), 0, F_REQUIRED },
    { "service", p_service, 0, 0, F_REQUIRED },
    { "rewrite", p_rewrite, R(rewrite), 0, 0 },
    { "regex_rewrite", p_regex_sub, R(regex_rewrite), 0, 0 },
    { "host_rewrite", p_string, R(host_rewrite), 0, 0 },
    { "auto_host_rewrite", p_bool, M(auto_host_rewrite), 0, 0 },
    { "method", p_string, R(method), 0, 0 },
    { "method_regex", p_bool, R(method_regex), 0, 0 },
    { "precedence", p_int32, R(precedence), 0, 0 },
    { "timeout_ms", p_timeout, R(timeout_ms), M(timeout_set), 0 },
    { "host", p_string, R(host), 0, 0 },
    { "host_regex", p_bool, R(host_regex), 0, 0 },
    { "headers", p_matches, R(headers), R(nheaders), 0 },
    { "regex_headers", p_matches, R(headers), R(nheaders), F_REGEX },
    { "query_parameters", p_matches, R(query), R(nquery), F_QUERY },
    { "regex_query_parameters", p_matches, R(query), R(nquery), F_QUERY | F_REGEX },
    { "prefix_exact", p_bool, R(prefix_exact), 0, 0 },
    { "prefix_regex", p_bool, R(prefix_regex), 0, 0 },
    { "case_sensitive", p_bool, R(case_sensitive), 0, 0 },
    { "host_redirect", p_bool, M(host_redirect), 0, 0 },
    { "path_redirect", p_path, R(path_redirect), 0, 0 },
    { "prefix_redirect", p_path, R(prefix_redirect), 0, 0 },
    { "regex_redirect", p_regex_sub, R(regex_redirect), 0, 0 },
    { "redirect_response_code", p_redirect_code, R(redirect_code), 0, 0 },
    { "add_request_headers", p_header_adds, R(add_request_headers), R(nadd_request_headers), 0 },
    { "add_response_headers", p_header_adds, R(add_response_headers), R(nadd_response_headers), 0 },
    { "remove_request_headers", p_header_removes, R(remove_request_headers),
      R(nremove_request_headers), 0 },
    { "remove_response_headers", p_header_removes, R(remove_response_headers),
      R(nremove_response_headers), 0 },
    { "tls", p_tls, M(tls), 0, 0 },
    { "envoy_override", p_ignored, 0, 0, 0 },
    NOT_YET("grpc"),
    { "use_websocket", p_policy, 0, 0, 0 },
    { "allow_upgrade", p_policy, 0, 0, 0 },
    { "weight", p_policy, 0, 0, 0 },
    { "shadow", p_policy, 0, 0, 0 },
    { "idle_timeout_ms", p_policy, 0, 0, 0 },
    { "connect_timeout_ms", p_policy, 0, 0, 0 },
    { "cluster_idle_timeout_ms", p_policy, 0, 0, 0 },
    { "cluster_max_connection_lifetime_ms", p_policy, 0, 0, 0 },
    NOT_YET("cluster_tag"),
    { "retry_policy", p_policy, 0, 0, 0 },
    { "circuit_breakers", p_policy, 0, 0, 0 },
    NOT_YET("outlier_detection"),
    { "load_balancer", p_policy, 0, 0, 0 },
    NOT_YET("keepalive"),
    { "cors", p_policy, 0, 0, 0 },
    { "rate_limits", p_policy, 0, 0, 0 },
    { "labels", p_policy, 0, 0, 0 },
    { "legate_rate_limit", p_policy, 0, 0, 0 },
    NOT_YET("bypass_auth"),
    NOT_YET("auth_context_extensions"),
    NOT_YET("bypass_error_response_overrides"),
    NOT_YET("error_response_overrides"),
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
#undef R

/* ip_allow, ip_deny: a list of {peer: CIDR} or {remote: CIDR}. */
static int p_ip_rules(struct doc_ctx *d, const struct mapping_field *f, const struct ytree_node *v,
                      void *obj)
{
    if (v->type != YTREE_SEQ) {
        type_error(d, f->name, v, "a list of {peer: CIDR} or {remote: CIDR}");
        return -EINVAL;
    }
    struct route_ip_rule **arr = AT(obj, f, struct route_ip_rule *);
    size_t *n = COUNT(obj, f);
    *arr = xrealloc(*arr, (*n + v->nkids + 1) * sizeof(**arr));
    int rc = 0;
    for (size_t i = 0; i < v->nkids; i++) {
        const struct ytree_node *it = v->kids[i];
        const struct ytree_node *k = it->type == YTREE_MAP && it->nkids == 2 ? it->kids[0] : NULL;
        bool remote = k && ytree_is_text(k) && strcmp(k->value, "remote") == 0;
        if (k == NULL || !ytree_is_text(k) || (!remote && strcmp(k->value, "peer") != 0)) {
            type_error(d, f->name, it, "{peer: CIDR} or {remote: CIDR}");
            rc = -EINVAL;
            continue;
        }
        const struct ytree_node *val = it->kids[1];
        if (!ytree_is_text(val) || route_ip_rule_parse(val->value, remote, &(*arr)[*n]) != 0) {
            char got[96];
            ytree_describe(val, got, sizeof(got));
            add_error(d, f->name, val->line,
                      "%s: %s is not an address block (\"10.0.0.0/8\", \"2001:db8::/32\", or an "
                      "address; host bits must be zero)",
                      f->name, got);
            rc = -EINVAL;
            continue;
        }
        (*n)++;
    }
    return rc;
}

/* regex_type: safe is RE2, which is all Legate has; unsafe (std::regex in Envoy) is read as
 * safe with a warning, since RE2 accepts most of what authors wrote for it. */
static int p_regex_type(struct doc_ctx *d, const struct mapping_field *f,
                        const struct ytree_node *v, void *obj)
{
    (void)obj;
    const char *s = get_string(d, f->name, v);
    if (s == NULL)
        return -EINVAL;
    if (strcmp(s, "safe") == 0)
        return 0;
    if (strcmp(s, "unsafe") == 0) {
        push_diag(&d->res->warnings, &d->res->nwarnings, d, f->name, v->line,
                  "regex_type: unsafe is treated as safe (RE2 syntax; no backreferences or "
                  "look-around)");
        return 0;
    }
    add_error(d, f->name, v->line, "regex_type: expected safe or unsafe, got \"%s\"", s);
    return -EINVAL;
}

#define MO(f) offsetof(struct module, f)
#define S(f)  offsetof(struct module, settings.f)
/* The `config:` keys of the `ambassador` Module. Those that shape routing and are built have
 * a parser; the rest are refused like Mapping fields that are not supported yet. */
static const struct mapping_field module_fields[] = {
    { "use_remote_address", p_bool, S(use_remote_address), 0, 0 },
    { "xff_num_trusted_hops", p_hops, S(xff_num_trusted_hops), 0, 0 },
    { "x_forwarded_proto_redirect", p_bool, S(x_forwarded_proto_redirect), 0, 0 },
    { "merge_slashes", p_bool, S(merge_slashes), 0, 0 },
    { "ip_allow", p_ip_rules, S(ip_allow), S(nip_allow), 0 },
    { "ip_deny", p_ip_rules, S(ip_deny), S(nip_deny), 0 },
    { "server_name", p_header_text, S(server_name), 0, 0 },
    { "regex_type", p_regex_type, 0, 0, 0 },
    { "add_request_headers", p_header_adds, MO(add_request_headers), MO(nadd_request_headers), 0 },
    { "add_response_headers", p_header_adds, MO(add_response_headers), MO(nadd_response_headers),
      0 },
    { "cluster_request_timeout_ms", p_timeout, MO(timeout_ms), MO(timeout_set), 0 },
    { "cors", p_module_policy, 0, 0, 0 },
    { "retry_policy", p_module_policy, 0, 0, 0 },
    { "load_balancer", p_module_policy, 0, 0, 0 },
    { "circuit_breakers", p_module_policy, 0, 0, 0 },
    NOT_YET("keepalive"),
    NOT_YET("listener_idle_timeout_ms"),
    { "cluster_idle_timeout_ms", p_module_policy, 0, 0, 0 },
    { "cluster_max_connection_lifetime_ms", p_module_policy, 0, 0, 0 },
    NOT_YET("diagnostics"),
    NOT_YET("defaults"),
    NOT_YET("enable_grpc_http11_bridge"),
    NOT_YET("enable_grpc_web"),
    NOT_YET("enable_http10"),
    NOT_YET("enable_ipv4"),
    NOT_YET("enable_ipv6"),
    NOT_YET("envoy_log_type"),
    NOT_YET("envoy_log_path"),
    NOT_YET("envoy_log_format"),
    NOT_YET("error_response_overrides"),
    NOT_YET("header_case_overrides"),
    NOT_YET("lua_scripts"),
    NOT_YET("max_request_headers_kb"),
    NOT_YET("preserve_external_request_id"),
    NOT_YET("proper_case"),
    NOT_YET("readiness_probe"),
    NOT_YET("liveness_probe"),
    NOT_YET("resolver"),
    NOT_YET("service_port"),
    NOT_YET("statsd"),
    NOT_YET("strip_matching_host_port"),
    NOT_YET("suppress_envoy_headers"),
    NOT_YET("use_proxy_proto"),
    NOT_YET("use_ambassador_namespace_for_service_resolution"),
};
#undef MO
#undef S
#undef NOT_YET

static const char *const api_versions[] = { "ambassador/v0", "ambassador/v1",
                                            "getambassador.io/v2" };
/* Ambassador kinds Legate reads but does not act on yet: a warning, not an error. */
static const char *const other_kinds[] = {
    "TLSContext", "AuthService", "RateLimitService",           "TracingService",
    "TCPMapping", "LogService",  "KubernetesServiceResolver",  "ConsulResolver",
    "Host",       "DevPortal",   "KubernetesEndpointResolver",
};

enum doc_kind { DOC_SKIP, DOC_MAPPING, DOC_MODULE };

static const struct mapping_field *find_field(const struct mapping_field *t, size_t n,
                                              const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0)
            return &t[i];
    return NULL;
}

static void unknown_field(struct doc_ctx *d, const char *const *names, size_t n, const char *what,
                          const struct ytree_node *k)
{
    const char *hint = suggest(k->value, names, n);
    if (hint != NULL)
        add_error(d, k->value, k->line, "unknown %s \"%s\" (did you mean \"%s\"?)", what, k->value,
                  hint);
    else
        add_error(d, k->value, k->line, "unknown %s \"%s\"", what, k->value);
}

/* Dispatches one key of an object to its parser in table t. */
static void read_field(struct doc_ctx *d, const struct mapping_field *t, size_t n, const char *what,
                       const struct ytree_node *k, const struct ytree_node *v, void *obj)
{
    const struct mapping_field *f = find_field(t, n, k->value);
    if (f == NULL) {
        const char *names[128];
        size_t nn = 0;
        for (size_t i = 0; i < n && nn < ARRAY_SIZE(names); i++)
            names[nn++] = t[i].name;
        unknown_field(d, names, nn, what, k);
    } else if (f->flags & F_COMMON) {
        return;
    } else if (f->parse == NULL) {
        add_error(d, f->name, k->line, "%s %s is not supported yet", what, f->name);
    } else {
        f->parse(d, f, v, obj);
    }
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
    mapping_policy_free_fields(&m->policy);
    memset(m, 0, sizeof(*m));
}

void module_free(struct module *m)
{
    if (m == NULL)
        return;
    route_settings_free_fields(&m->settings);
    route_header_adds_free(m->add_request_headers, m->nadd_request_headers);
    route_header_adds_free(m->add_response_headers, m->nadd_response_headers);
    module_policy_free_fields(&m->policy);
    free(m);
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

static void warn_kind(struct doc_ctx *d, int line, const char *what)
{
    if (doc_has_errors(d))
        return;
    char msg[160];
    snprintf(msg, sizeof(msg), "%s is not supported yet", what);
    push_diag(&d->res->warnings, &d->res->nwarnings, d, "kind", line, msg);
}

/* Reads apiVersion, kind and name. Returns what the document is: a Mapping or the ambassador
 * Module, whose fields should be read (errors may still have been recorded), or something to
 * skip (after a warning or an error). */
static enum doc_kind read_header(struct doc_ctx *d, const struct ytree_node *root,
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
        return DOC_SKIP;
    }
    if ((s = get_string(d, "kind", kind)) == NULL)
        return DOC_SKIP;
    enum doc_kind k = DOC_MAPPING;
    if (strcmp(s, "Module") == 0) {
        k = DOC_MODULE;
    } else if (strcmp(s, "Mapping") != 0) {
        for (size_t i = 0; i < ARRAY_SIZE(other_kinds); i++) {
            if (strcmp(s, other_kinds[i]) == 0) {
                char what[96];
                snprintf(what, sizeof(what), "kind %s", s);
                warn_kind(d, kind->line, what);
                return DOC_SKIP;
            }
        }
        const char *kinds[ARRAY_SIZE(other_kinds) + 2];
        kinds[0] = "Mapping";
        kinds[1] = "Module";
        memcpy(kinds + 2, other_kinds, sizeof(other_kinds));
        const char *hint = suggest(s, kinds, ARRAY_SIZE(kinds));
        if (hint != NULL)
            add_error(d, "kind", kind->line, "kind: unknown kind \"%s\" (did you mean \"%s\"?)", s,
                      hint);
        else
            add_error(d, "kind", kind->line, "kind: unknown kind \"%s\"", s);
        return DOC_SKIP;
    }

    if (name == NULL)
        add_error(d, "name", root->line, "missing required field \"name\"");
    else if ((s = get_string(d, "name", name)) != NULL && *s == '\0')
        add_error(d, "name", name->line, "name: must not be empty");
    return k;
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
        check_regex(d, "prefix", line_of(root, "prefix"), r->prefix,
                    r->case_sensitive ? 0 : RX_ICASE, NULL);
    } else if (r->prefix != NULL && r->prefix[0] != '/') {
        add_error(d, "prefix", line_of(root, "prefix"),
                  "prefix: \"%s\" must start with \"/\" (it is compared with the request path)",
                  r->prefix);
    }
    if (r->method != NULL && r->method_regex) {
        check_regex(d, "method", line_of(root, "method"), r->method, 0, NULL);
    } else if (r->method != NULL && !is_token(r->method)) {
        char got[96];
        ytree_describe(ytree_map_get(root, "method"), got, sizeof(got));
        add_error(d, "method", line_of(root, "method"), "method: %s is not an HTTP method", got);
    } else if (r->method != NULL) {
        for (char *p = r->method; *p; p++)
            *p = (char)toupper((unsigned char)*p);
    }
    /* Host names are case-insensitive, so host regexes are too. */
    if (r->host != NULL && r->host_regex)
        check_regex(d, "host", line_of(root, "host"), r->host, RX_ICASE, NULL);
    else if (r->host != NULL && strlen(r->host) > 255)
        /* No Host header can match it (RFC 1035), and the proxy refuses such a route, which
         * would nack the whole table (found by fuzz_annotation). */
        add_error(d, "host", line_of(root, "host"),
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
            add_error(d, f, line_of(root, f),
                      "%s: has no effect without host_redirect: true (Ambassador ignored it; "
                      "Legate refuses the Mapping rather than proxy what was meant to redirect)",
                      f);
        else if (first != NULL && i < 3)
            add_error(d, f, line_of(root, f), "%s: only one of %s and %s may be set", f, first, f);
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

/* The checks that need the whole Mapping. */
static void validate_mapping(struct doc_ctx *d, struct mapping *m, const struct ytree_node *root,
                             const struct strmap *seen)
{
    /* apiVersion, kind and name were checked with the header. */
    for (size_t i = 0; i < ARRAY_SIZE(mapping_fields); i++) {
        const struct mapping_field *f = &mapping_fields[i];
        if ((f->flags & F_REQUIRED) && !(f->flags & F_COMMON) && !strmap_get(seen, f->name))
            add_error(d, f->name, root->line, "missing required field \"%s\"", f->name);
    }
    validate_match(d, m, root);
    validate_action(d, m, root);
}

static void parse_mapping(struct doc_ctx *d, const struct ytree_node *root,
                          const struct strmap *seen, const struct ytree_node *name)
{
    struct mapping m;
    mapping_init(&m, d, root->line);
    m.name_line = name ? name->line : root->line;
    for (size_t i = 0; i + 1 < root->nkids; i += 2) {
        const struct ytree_node *k = root->kids[i];
        if (ytree_is_text(k) && strmap_get(seen, k->value) == k) /* else already reported */
            read_field(d, mapping_fields, ARRAY_SIZE(mapping_fields), "field", k, root->kids[i + 1],
                       &m);
    }
    validate_mapping(d, &m, root, seen);
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

/* A Module: `ambassador` is read (its `config:` keys through module_fields); `tls` is known
 * and not supported yet; other names are not Modules Ambassador had. */
static void parse_module(struct doc_ctx *d, const struct ytree_node *root,
                         const struct strmap *seen, const struct ytree_node *name)
{
    static const char *const keys[] = { "apiVersion", "kind", "name", "ambassador_id", "config" };
    for (size_t i = 0; i + 1 < root->nkids; i += 2) {
        const struct ytree_node *k = root->kids[i];
        size_t j;
        for (j = 0; j < ARRAY_SIZE(keys) && ytree_is_text(k); j++)
            if (strcmp(k->value, keys[j]) == 0)
                break;
        if (ytree_is_text(k) && strmap_get(seen, k->value) == k && j == ARRAY_SIZE(keys))
            unknown_field(d, keys, ARRAY_SIZE(keys), "Module key", k);
    }
    if (name == NULL || !ytree_is_text(name) || doc_has_errors(d))
        return;
    if (strcmp(name->value, "ambassador") != 0) {
        char what[96];
        snprintf(what, sizeof(what), "Module %s", name->value);
        warn_kind(d, name->line, what);
        return;
    }

    struct module *mod = xcalloc(1, sizeof(*mod));
    route_settings_init(&mod->settings);
    mod->line = root->line;
    mod->name_line = name->line;
    const struct ytree_node *config = ytree_map_get(root, "config");
    if (config != NULL && config->type != YTREE_MAP && !ytree_is_null(config)) {
        type_error(d, "config", config, "a map");
    } else if (config != NULL && config->type == YTREE_MAP) {
        struct strmap cseen;
        strmap_init(&cseen);
        for (size_t i = 0; i + 1 < config->nkids; i += 2) {
            const struct ytree_node *k = config->kids[i];
            const struct ytree_node *first = ytree_is_text(k) ? strmap_get(&cseen, k->value) : NULL;
            if (!ytree_is_text(k)) {
                type_error(d, "config", k, "a key string");
            } else if (first != NULL) {
                add_error(d, k->value, k->line, "duplicate key \"%s\" (first on line %d)", k->value,
                          first->line);
            } else {
                strmap_put(&cseen, k->value, config->kids[i]);
                read_field(d, module_fields, ARRAY_SIZE(module_fields), "Module key", k,
                           config->kids[i + 1], mod);
            }
        }
        strmap_free(&cseen, NULL);
        if (mod->settings.nip_allow > 0 && mod->settings.nip_deny > 0)
            add_error(d, "ip_deny", line_of(config, "ip_deny"),
                      "ip_allow and ip_deny cannot both be set (Ambassador allows only one)");
    }
    struct annotation_result *r = d->res;
    if (!doc_has_errors(d) && r->module != NULL)
        add_error(d, "name", name->line,
                  "a second ambassador Module in this annotation; the first (line %d) is used",
                  r->module->name_line);
    if (doc_has_errors(d)) {
        module_free(mod);
        return;
    }
    r->module = mod;
}

static void parse_document(struct doc_ctx *d, const struct ytree_doc *doc)
{
    const struct ytree_node *root = doc->root;
    static const char *const common_names[4] = { "apiVersion", "kind", "name", "ambassador_id" };
    const struct ytree_node *common[4] = { NULL, NULL, NULL, NULL };
    struct strmap seen;

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
    switch (read_header(d, root, common)) {
    case DOC_MAPPING:
        parse_mapping(d, root, &seen, common[2]);
        break;
    case DOC_MODULE:
        parse_module(d, root, &seen, common[2]);
        break;
    case DOC_SKIP:
        break;
    }
out:
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
/* Returns the start of the line after the one at p, counting line breaks as libyaml does
 * (its marks give the error's line): CRLF, a lone CR, LF, and U+0085, U+2028, U+2029. Counting
 * LF only put the restart point too far down, and a document after the broken one was lost. */
static const char *after_line_break(const char *p, const char *end)
{
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '\n')
            return p + 1;
        if (c == '\r')
            return p + 1 < end && p[1] == '\n' ? p + 2 : p + 1;
        if (c == 0xc2 && p + 1 < end && (unsigned char)p[1] == 0x85)
            return p + 2;
        if (c == 0xe2 && p + 2 < end && (unsigned char)p[1] == 0x80 &&
            ((unsigned char)p[2] == 0xa8 || (unsigned char)p[2] == 0xa9))
            return p + 3;
        p++;
    }
    return end;
}

static size_t resume_point(const char *text, size_t len, int err_line, int doc_line, int *line)
{
    const char *end = text + len;
    int l = 0;
    for (const char *p = text; p < end; l++) {
        if (l >= 1 && l >= err_line && l > doc_line && is_doc_marker(p, end)) {
            *line = l;
            return (size_t)(p - text);
        }
        p = after_line_break(p, end);
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
    module_free(r->module);
    memset(r, 0, sizeof(*r));
}
