/* Oracles shared by the fuzz targets (fuzz.h): what must hold whatever the input, written
 * independently of the code under test so that the two can disagree. */
#include "fuzz.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "control.h"
#include "frame.h"
#include "log.h"
#include "route.h"
#include "rx.h"
#include "target.h"
#include "xalloc.h"

/* The sanitizer runtime's report channel: -close_fd_mask=2 discards stderr, and libFuzzer moves
 * the sanitizers' reports to a duplicate of it, so this is where a failed invariant must be
 * told too. Weak: builds without sanitizers (make unit) do not have it. */
void __sanitizer_report_error_summary(const char *summary) __attribute__((weak));

void fuzz_fail(const char *what, const char *file, int line)
{
    char msg[1024];
    snprintf(msg, sizeof(msg), "fuzz invariant failed: %s (%s:%d)", what, file, line);
    if (__sanitizer_report_error_summary != NULL)
        __sanitizer_report_error_summary(msg);
    else
        fprintf(stderr, "%s\n", msg);
    abort();
}

bool fuzz_ignore(const char *issue)
{
    const char *p = getenv("LEGATE_FUZZ_IGNORE");
    size_t n = strlen(issue);
    while (p != NULL && *p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, issue, n) == 0)
            return true;
        p = comma ? comma + 1 : NULL;
    }
    return false;
}

void fuzz_logs(bool json)
{
    /* Above every level: nothing is formatted. */
    const char *off = getenv("LEGATE_FUZZ_LOG");
    int level = off != NULL && strcmp(off, "off") == 0 ? LOG_LEVEL_ERROR + 1 : LOG_LEVEL_DEBUG;
    log_configure(level, json ? LOG_FORMAT_JSON : LOG_FORMAT_LOGFMT, "fuzz");
}

bool fuzz_is_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (p != NULL && *p) {
        unsigned c = *p;
        size_t n = c < 0x80             ? 0
                   : (c & 0xe0) == 0xc0 ? 1
                   : (c & 0xf0) == 0xe0 ? 2
                   : (c & 0xf8) == 0xf0 ? 3
                                        : 4;
        if (n == 4 || (n == 1 && c < 0xc2))
            return false;
        uint32_t cp = n == 0 ? c : c & (0x3fu >> n);
        for (size_t k = 1; k <= n; k++) {
            if ((p[k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[k] & 0x3fu);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        p += n + 1;
    }
    return true;
}

bool fuzz_errors_are_utf8(const struct route_table *t)
{
    for (size_t i = 0; i < t->nerrors; i++) {
        const struct route_error *e = &t->errors[i];
        if (!fuzz_is_utf8(e->ns) || !fuzz_is_utf8(e->svc) || !fuzz_is_utf8(e->mapping) ||
            !fuzz_is_utf8(e->field) || !fuzz_is_utf8(e->message))
            return false;
    }
    return true;
}

const char *fuzz_jstr(const json_object *o, const char *key)
{
    json_object *v = NULL;
    if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

const char *fuzz_jcstr(const json_object *o, const char *key, bool *cut)
{
    const char *s = fuzz_jstr(o, key);
    json_object *v = NULL;
    if (s == NULL || !json_object_object_get_ex(o, key, &v))
        return NULL;
    if (strlen(s) != (size_t)json_object_get_string_len(v)) {
        *cut = true;
        return NULL;
    }
    return s;
}

json_object *fuzz_jobj(const json_object *o, const char *key)
{
    json_object *v = NULL;
    if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_object))
        return NULL;
    return v;
}

/* ---- paths ---------------------------------------------------------------------------- */

/* target.h's promises about a normalised path (fuzz.h). */
void fuzz_check_normalized(size_t in_len, const char *p, size_t n, bool merge)
{
    FUZZ_CHECK(n >= 1 && n <= in_len && p[0] == '/');
    FUZZ_CHECK(memchr(p, '\\', n) == NULL);
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '%') {
            FUZZ_CHECK(i + 2 < n);
            char hex[3] = { p[i + 1], p[i + 2], '\0' };
            unsigned long v = strtoul(hex, NULL, 16);
            bool unreserved = (v >= 'a' && v <= 'z') || (v >= 'A' && v <= 'Z') ||
                              (v >= '0' && v <= '9') || v == '-' || v == '.' || v == '_' ||
                              v == '~';
            FUZZ_CHECK(!unreserved && v != '/' && v != '\\' && v != 0);
        }
        if (p[i] == '/' && i + 1 < n) {
            size_t e = i + 1;
            while (e < n && p[e] != '/')
                e++;
            size_t sl = e - i - 1;
            FUZZ_CHECK(!(sl == 1 && p[i + 1] == '.'));
            FUZZ_CHECK(!(sl == 2 && p[i + 1] == '.' && p[i + 2] == '.'));
            FUZZ_CHECK(!merge || sl > 0 || e == n);
        }
    }
    char *again = xmalloc(n + 1);
    const char *why = NULL;
    long m = px_path_normalize(p, n, merge, again, &why);
    FUZZ_CHECK(m == (long)n && memcmp(again, p, n) == 0);
    free(again);
}

/* ---- the wire ---------------------------------------------------------------------------- */

struct route_table *fuzz_wire_roundtrip(const struct route_table *t, char *err, size_t errlen)
{
    struct route_table *out = NULL;
    struct buf frame;
    struct frame_decoder dec;
    json_object *msg = NULL;

    /* What push_submit sends: route_snapshot_write's text in one frame. */
    struct buf text;
    buf_init(&text, FRAME_MAX_DEFAULT);
    FUZZ_CHECK(route_snapshot_write(t, &text) == 0);
    const char *js = text.data;
    size_t len = text.len;
    buf_init(&frame, FRAME_MAX_DEFAULT + 4);
    frame_decoder_init(&dec, FRAME_MAX_DEFAULT);
    FUZZ_CHECK(frame_encode(&frame, js, len) == 0);

    /* What the proxy's control connection does with it. */
    FUZZ_CHECK(frame_decoder_feed(&dec, frame.data, frame.len) == 0);
    const char *payload = NULL;
    size_t plen = 0;
    FUZZ_CHECK(frame_decoder_next(&dec, &payload, &plen) == 1);
    FUZZ_CHECK(plen == len && memcmp(payload, js, len) == 0);
    FUZZ_CHECK(frame_decoder_next(&dec, &payload, &plen) == 0);
    const char *why = NULL;
    msg = px_control_parse(payload, plen, &why);
    if (msg == NULL) {
        snprintf(err, errlen, "the proxy cannot parse the snapshot: %s", why);
        goto out;
    }
    /* Accepted, and ending in '}' rather than blanks: the whole payload was the one object. */
    FUZZ_CHECK(plen > 0 && payload[plen - 1] == '}');
    if (route_table_from_json(msg, &out, err, errlen) != 0)
        out = NULL;
out:
    json_object_put(msg);
    frame_decoder_free(&dec);
    buf_free(&frame);
    buf_free(&text);
    return out;
}

/* ---- the router's contract ------------------------------------------------------------- */

/* A route's regexes, compiled here for the linear scan (the router compiles its own). */
struct ref_rx {
    struct rx *prefix, *host, *method, *rewrite, *redirect;
    struct rx **headers, **query;
};

struct fuzz_ref {
    const struct route_table *t;
    struct ref_rx *rx; /* per route */
};

static bool ref_compile(const char *pattern, unsigned flags, struct rx **out)
{
    char err[256];
    return pattern != NULL && rx_compile(pattern, flags, out, err, sizeof(err)) == 0;
}

static bool ref_compile_kvs(const struct route_header *v, size_t n, struct rx ***out)
{
    *out = xcalloc(n + 1, sizeof(**out));
    for (size_t i = 0; i < n; i++)
        if (v[i].regex && !ref_compile(v[i].value, 0, &(*out)[i]))
            return false;
    return true;
}

/* What router.h lets px_router_build refuse, decided independently. */
static bool ref_route_ok(const struct route *rt, struct ref_rx *x)
{
    if (rt->prefix == NULL || (rt->host_regex && rt->host == NULL) ||
        (rt->method_regex && rt->method == NULL))
        return false;
    if (rt->host != NULL && !rt->host_regex && strlen(rt->host) > 255)
        return false; /* longer than any Host */
    for (size_t h = 0; h < rt->nheaders; h++)
        if (rt->headers[h].name == NULL)
            return false;
    if (rt->prefix_regex && !ref_compile(rt->prefix, rt->case_sensitive ? 0 : RX_ICASE, &x->prefix))
        return false;
    if (rt->host_regex && !ref_compile(rt->host, RX_ICASE, &x->host))
        return false;
    if (rt->method_regex && !ref_compile(rt->method, 0, &x->method))
        return false;
    if (rt->regex_rewrite.pattern != NULL &&
        !ref_compile(rt->regex_rewrite.pattern, 0, &x->rewrite))
        return false;
    if (rt->regex_redirect.pattern != NULL &&
        !ref_compile(rt->regex_redirect.pattern, 0, &x->redirect))
        return false;
    return ref_compile_kvs(rt->headers, rt->nheaders, &x->headers) &&
           ref_compile_kvs(rt->query, rt->nquery, &x->query);
}

struct fuzz_ref *fuzz_ref_new(const struct route_table *t)
{
    struct fuzz_ref *ref = xcalloc(1, sizeof(*ref));
    ref->t = t;
    ref->rx = xcalloc(t->nroutes + 1, sizeof(*ref->rx));
    for (size_t i = 0; i < t->nroutes; i++) {
        if (!ref_route_ok(&t->routes[i], &ref->rx[i])) {
            fuzz_ref_free(ref);
            return NULL;
        }
    }
    return ref;
}

static void ref_free_list(struct rx **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        rx_free(v[i]);
    free(v);
}

void fuzz_ref_free(struct fuzz_ref *ref)
{
    if (ref == NULL)
        return;
    for (size_t i = 0; i < ref->t->nroutes; i++) {
        struct ref_rx *x = &ref->rx[i];
        rx_free(x->prefix);
        rx_free(x->host);
        rx_free(x->method);
        rx_free(x->rewrite);
        rx_free(x->redirect);
        ref_free_list(x->headers, ref->t->routes[i].nheaders);
        ref_free_list(x->query, ref->t->routes[i].nquery);
    }
    free(ref->rx);
    free(ref);
}

static unsigned char ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static bool same_nocase(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++)
        if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
            return false;
    return true;
}

/* router.h: a route's host is compared with the request's Host without its ":port", and also
 * with the Host as sent; "[v6]:port" loses the port, not the brackets. */
static bool host_ok(const struct route *rt, const struct ref_rx *x,
                    const struct px_request_view *req)
{
    if (rt->host == NULL)
        return true;
    if (req->host == NULL)
        return false;
    size_t bare = req->host_len;
    if (req->host_len > 0 && req->host[0] == '[') {
        const char *close = memchr(req->host, ']', req->host_len);
        if (close != NULL)
            bare = (size_t)(close - req->host) + 1;
    } else {
        const char *colon = memchr(req->host, ':', req->host_len);
        if (colon != NULL)
            bare = (size_t)(colon - req->host);
    }
    if (rt->host_regex)
        return rx_full_match(x->host, req->host, bare) ||
               rx_full_match(x->host, req->host, req->host_len);
    size_t hl = strlen(rt->host);
    return same_nocase(rt->host, hl, req->host, bare) ||
           same_nocase(rt->host, hl, req->host, req->host_len);
}

static bool prefix_ok(const struct route *rt, const struct ref_rx *x,
                      const struct px_request_view *req)
{
    if (rt->prefix_regex)
        return rx_full_match(x->prefix, req->path, req->path_len);
    size_t pl = strlen(rt->prefix);
    if (pl > req->path_len || (rt->prefix_exact && pl != req->path_len))
        return false;
    if (rt->case_sensitive)
        return memcmp(rt->prefix, req->path, pl) == 0;
    return same_nocase(rt->prefix, pl, req->path, pl);
}

static bool value_ok(const struct route_header *h, const struct rx *re, const char *v, size_t n)
{
    if (h->value == NULL)
        return true;
    if (h->regex)
        return rx_full_match(re, v, n);
    return n == strlen(h->value) && memcmp(v, h->value, n) == 0;
}

static bool header_ok(const struct route_header *h, const struct rx *re,
                      const struct px_request_view *req)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct px_header *rh = &req->headers[i];
        if (same_nocase(h->name, strlen(h->name), rh->name, rh->name_len) &&
            value_ok(h, re, rh->value, rh->value_len))
            return true;
    }
    return false;
}

int fuzz_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)ascii_lower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Form decoding ("%41", '+' for a space; a malformed escape stays as written) into b. */
static void ref_decode(struct buf *b, const char *s, size_t n)
{
    buf_reset(b);
    for (size_t i = 0; i < n; i++) {
        char c = s[i] == '+' ? ' ' : s[i];
        if (s[i] == '%' && i + 2 < n && fuzz_hex(s[i + 1]) >= 0 && fuzz_hex(s[i + 2]) >= 0) {
            c = (char)(fuzz_hex(s[i + 1]) << 4 | fuzz_hex(s[i + 2]));
            i += 2;
        }
        buf_append(b, &c, 1);
    }
}

/* The router decodes a name or value into 8 KiB (the target cap): longer never match. */
#define REF_DECODE_MAX 8192

/* A query parameter constraint: any "name[=value]" pair, '&'-separated, whose decoded name
 * equals the constraint's and whose decoded value matches it. */
static bool query_ok(const struct route_header *h, const struct rx *re,
                     const struct px_request_view *req)
{
    if (req->query == NULL)
        return false;
    struct buf name, val;
    buf_init(&name, (size_t)-1 / 2);
    buf_init(&val, (size_t)-1 / 2);
    bool found = false;
    const char *q = req->query, *end = req->query + req->query_len;
    while (!found && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pend = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pend - q));
        ref_decode(&name, q, (size_t)((eq ? eq : pend) - q));
        if (name.len <= REF_DECODE_MAX && name.len == strlen(h->name) &&
            memcmp(name.data ? name.data : "", h->name, name.len) == 0) {
            const char *v = eq ? eq + 1 : pend;
            ref_decode(&val, v, (size_t)(pend - v));
            found = val.len <= REF_DECODE_MAX && value_ok(h, re, val.data ? val.data : "", val.len);
        }
        q = amp ? amp + 1 : end;
    }
    buf_free(&name);
    buf_free(&val);
    return found;
}

long fuzz_ref_match(const struct fuzz_ref *ref, const struct px_request_view *req)
{
    const struct route_table *t = ref->t;
    if (req->path == NULL)
        return -1;
    for (size_t i = 0; i < t->nroutes; i++) {
        const struct route *rt = &t->routes[i];
        const struct ref_rx *x = &ref->rx[i];
        if (!host_ok(rt, x, req) || !prefix_ok(rt, x, req))
            continue;
        if (rt->method != NULL) {
            if (req->method == NULL)
                continue;
            if (rt->method_regex ? !rx_full_match(x->method, req->method, req->method_len)
                                 : req->method_len != strlen(rt->method) ||
                                       memcmp(req->method, rt->method, req->method_len) != 0)
                continue;
        }
        bool ok = true;
        for (size_t h = 0; ok && h < rt->nheaders; h++)
            ok = header_ok(&rt->headers[h], x->headers[h], req);
        for (size_t q = 0; ok && q < rt->nquery; q++)
            ok = query_ok(&rt->query[q], x->query[q], req);
        if (ok)
            return (long)i;
    }
    return -1;
}

/* How much of the path a route matched: its prefix, or the whole path for a regex. */
static size_t ref_matched(const struct route *rt, size_t path_len)
{
    size_t pl = rt->prefix_regex ? path_len : strlen(rt->prefix);
    return pl < path_len ? pl : path_len;
}

/* px_rewrite_target: rewrite + the path after the matched part (or the path), then "?" +
 * query; px_router_rewrite the same unless regex_rewrite is set. And a redirect's Location. */
static void check_rewrite(const struct px_router *r, const struct route *rt,
                          const struct px_request_view *req)
{
    struct buf want;
    buf_init(&want, (size_t)-1 / 2);
    size_t pl = ref_matched(rt, req->path_len);
    if (rt->rewrite != NULL) {
        buf_append_str(&want, rt->rewrite);
        buf_append(&want, req->path + pl, req->path_len - pl);
    } else {
        buf_append(&want, req->path, req->path_len);
    }
    if (req->query != NULL) {
        buf_append(&want, "?", 1);
        buf_append(&want, req->query, req->query_len);
    }
    size_t room = px_router_rewrite_room(rt, req->path_len, req->query_len);
    char *out = xmalloc(want.len + room + 1);
    long n =
        px_rewrite_target(rt, req->path, req->path_len, req->query, req->query_len, out, want.len);
    FUZZ_CHECK(n >= 0 && (size_t)n == want.len);
    FUZZ_CHECK(want.len == 0 || memcmp(out, want.data, want.len) == 0);
    if (want.len > 0)
        FUZZ_CHECK(px_rewrite_target(rt, req->path, req->path_len, req->query, req->query_len, out,
                                     want.len - 1) == -ENOSPC);
    if (rt->regex_rewrite.pattern == NULL) {
        FUZZ_CHECK(room >= want.len);
        n = px_router_rewrite(r, rt, req->path, req->path_len, req->query, req->query_len, out,
                              room);
        FUZZ_CHECK(n >= 0 && (size_t)n == want.len && memcmp(out, want.data, want.len) == 0);
    } else {
        n = px_router_rewrite(r, rt, req->path, req->path_len, req->query, req->query_len, out,
                              room);
        FUZZ_CHECK(n >= 0 || n == -ENOSPC);
    }
    if (rt->host_redirect != NULL) {
        const char *scheme = rt->redirect_scheme ? rt->redirect_scheme : "http";
        buf_reset(&want);
        buf_printf(&want, "%s://%s", scheme, rt->host_redirect);
        size_t lroom = want.len + room + (rt->path_redirect ? strlen(rt->path_redirect) : 0) +
                       (rt->prefix_redirect ? strlen(rt->prefix_redirect) : 0) + 16;
        char *loc = xmalloc(lroom);
        n = px_router_location(r, rt, "http", req->path, req->path_len, req->query, req->query_len,
                               loc, lroom);
        FUZZ_CHECK((n >= 0 && (size_t)n >= want.len && memcmp(loc, want.data, want.len) == 0) ||
                   (n == -ENOSPC && rt->regex_redirect.pattern != NULL));
        free(loc);
    }
    free(out);
    buf_free(&want);
}

long fuzz_check_match(const struct px_router *r, const struct fuzz_ref *ref,
                      const struct px_request_view *req)
{
    const struct route *got = px_router_match(r, req);
    long want = fuzz_ref_match(ref, req);
    if (want < 0) {
        FUZZ_CHECK(got == NULL);
        return -1;
    }
    FUZZ_CHECK(got == &ref->t->routes[want]);
    check_rewrite(r, got, req);
    return want;
}

static bool route_is_plain(const struct route *rt)
{
    if (rt->prefix_regex || rt->host_regex || rt->method_regex || rt->nheaders > FUZZ_REQ_HEADERS)
        return false;
    for (size_t h = 0; h < rt->nheaders; h++)
        if (rt->headers[h].regex)
            return false;
    for (size_t q = 0; q < rt->nquery; q++)
        if (rt->query[q].regex)
            return false;
    return true;
}

/* Percent-encodes all but letters and digits, so the router decodes back s. */
static void ref_encode(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')) {
            buf_append(b, p, 1);
        } else {
            char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
            buf_append(b, e, 3);
        }
    }
}

void fuzz_req_for_route(struct fuzz_req *q, const struct route *rt, unsigned variant)
{
    memset(&q->v, 0, sizeof(q->v));
    q->v.method = rt->method != NULL && !rt->method_regex ? rt->method : "GET";
    if (variant & FUZZ_VARIANT_METHOD)
        q->v.method = strcmp(q->v.method, "POST") == 0 ? "PUT" : "POST";
    q->v.method_len = strlen(q->v.method);

    size_t pl = strlen(rt->prefix);
    if (pl + 2 >= sizeof(q->path)) {
        q->v.path = rt->prefix;
        q->v.path_len = pl;
    } else {
        memcpy(q->path, rt->prefix, pl);
        if (variant & FUZZ_VARIANT_LONGER) {
            memcpy(q->path + pl, "/x", 2);
            pl += 2;
        }
        if ((variant & FUZZ_VARIANT_SHORTER) && pl > 0)
            pl--;
        for (size_t i = 0; (variant & FUZZ_VARIANT_CASE) && i < pl; i++) {
            unsigned char c = (unsigned char)q->path[i];
            if (c >= 'a' && c <= 'z')
                q->path[i] = (char)(c - 'a' + 'A');
            else if (c >= 'A' && c <= 'Z')
                q->path[i] = (char)(c - 'A' + 'a');
        }
        q->v.path = q->path;
        q->v.path_len = pl;
    }

    const char *host = rt->host != NULL && !rt->host_regex ? rt->host : "fuzz.example";
    size_t hl = strlen(host);
    if (!(variant & FUZZ_VARIANT_NOHOST) && hl + 6 < sizeof(q->host)) {
        memcpy(q->host, host, hl);
        for (size_t i = 0; (variant & FUZZ_VARIANT_HOSTCASE) && i < hl; i++)
            if (q->host[i] >= 'a' && q->host[i] <= 'z')
                q->host[i] = (char)(q->host[i] - 'a' + 'A');
        if (variant & FUZZ_VARIANT_PORT) {
            memcpy(q->host + hl, ":8080", 5);
            hl += 5;
        }
        q->v.host = q->host;
        q->v.host_len = hl;
    }

    size_t nh = rt->nheaders < FUZZ_REQ_HEADERS ? rt->nheaders : FUZZ_REQ_HEADERS;
    if ((variant & FUZZ_VARIANT_NOHDR) && nh > 0)
        nh--;
    for (size_t i = 0; i < nh; i++) {
        const struct route_header *h = &rt->headers[i];
        q->headers[i].name = h->name;
        q->headers[i].name_len = strlen(h->name);
        q->headers[i].value = h->value != NULL && !h->regex ? h->value : "x";
        q->headers[i].value_len = strlen(q->headers[i].value);
    }
    q->v.headers = q->headers;
    q->v.nheaders = nh;

    buf_reset(&q->query);
    for (size_t i = 0; i < rt->nquery; i++) {
        if (i > 0)
            buf_append(&q->query, "&", 1);
        ref_encode(&q->query, rt->query[i].name);
        buf_append(&q->query, "=", 1);
        ref_encode(&q->query,
                   rt->query[i].value != NULL && !rt->query[i].regex ? rt->query[i].value : "x");
    }
    q->v.query = q->query.len > 0 || rt->nquery > 0 ? (q->query.data ? q->query.data : "") : NULL;
    q->v.query_len = q->query.len;
}

void fuzz_check_router(const struct px_router *r, const struct fuzz_ref *ref, uint64_t seed,
                       size_t budget)
{
    const struct route_table *t = ref->t;
    struct fuzz_req *q = xcalloc(1, sizeof(*q));
    buf_init(&q->query, (size_t)-1 / 2);
    for (size_t i = 0; i < t->nroutes && budget > 0; i++) {
        const struct route *rt = &t->routes[i];
        budget--;
        fuzz_req_for_route(q, rt, 0);
        long got = fuzz_check_match(r, ref, &q->v);
        /* The request made for route i matches it, so the first match is i or earlier. */
        if (route_is_plain(rt))
            FUZZ_CHECK(got >= 0 && (size_t)got <= i);
        for (int k = 0; k < 3 && budget > 0; k++, budget--) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            fuzz_req_for_route(q, rt, (unsigned)(seed >> 56));
            fuzz_check_match(r, ref, &q->v);
        }
    }
    buf_free(&q->query);
    free(q);
}
