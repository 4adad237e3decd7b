/* Tests for proxy/router.c: first-match semantics, predicates, rewrites, and scale. */
#include <check.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "route.h"
#include "router.h"
#include "rx.h"
#include "xalloc.h"

/* One route as a test writes it; NULL/false fields take the model's defaults. */
struct rspec {
    const char *prefix;
    const char *method;
    const char *host;
    bool exact;
    bool ci;                    /* case_sensitive: false */
    const char *hname, *hvalue; /* one header predicate; hvalue NULL = presence */
    const char *rewrite;
    bool prefix_re, host_re, method_re, header_re;
    const char *qname, *qvalue; /* one query-parameter predicate; qvalue NULL = presence */
    bool query_re;
};

static void set_route(struct route *r, const struct rspec *s, size_t i)
{
    char name[32];
    snprintf(name, sizeof(name), "m%zu", i);
    route_init(r);
    r->ns = xstrdup("default");
    r->svc = xstrdup("svc");
    r->mapping = xstrdup(name);
    r->prefix = xstrdup(s->prefix);
    r->method = xstrdup(s->method);
    r->host = xstrdup(s->host);
    r->prefix_exact = s->exact;
    r->case_sensitive = !s->ci;
    r->rewrite = xstrdup(s->rewrite);
    r->timeout_ms = ROUTE_DEFAULT_TIMEOUT_MS;
    if (s->hname) {
        r->headers = xcalloc(1, sizeof(*r->headers));
        r->headers[0].name = xstrdup(s->hname);
        r->headers[0].value = xstrdup(s->hvalue);
        r->headers[0].regex = s->header_re;
        r->nheaders = 1;
    }
    if (s->qname) {
        r->query = xcalloc(1, sizeof(*r->query));
        r->query[0].name = xstrdup(s->qname);
        r->query[0].value = xstrdup(s->qvalue);
        r->query[0].regex = s->query_re;
        r->nquery = 1;
    }
    r->prefix_regex = s->prefix_re;
    r->host_regex = s->host_re;
    r->method_regex = s->method_re;
}

static struct route_table *table_with(size_t n)
{
    struct route_table *t = xcalloc(1, sizeof(*t));
    t->version = 1;
    t->clusters = xcalloc(1, sizeof(*t->clusters));
    t->clusters[0].name = xstrdup("up:80");
    t->clusters[0].scheme = xstrdup("http");
    t->clusters[0].host = xstrdup("up");
    t->clusters[0].port = 80;
    t->nclusters = 1;
    t->routes = xcalloc(n ? n : 1, sizeof(*t->routes));
    return t;
}

static struct route_table *table_of(const struct rspec *specs, size_t n)
{
    struct route_table *t = table_with(n);
    for (size_t i = 0; i < n; i++)
        set_route(&t->routes[i], &specs[i], i);
    t->nroutes = n;
    return t;
}

static struct px_router *build_ok(const struct route_table *t)
{
    char err[256] = "";
    struct px_router *r = px_router_build(t, err, sizeof(err));
    ck_assert_msg(r != NULL, "build failed: %s", err);
    return r;
}

/* Returns the index of the route matched for the request, or -1. */
static long match_idx(const struct px_router *r, const struct route_table *t, const char *method,
                      const char *host, const char *path, const struct px_header *hs, size_t nh)
{
    struct px_request_view v = {
        .method = method,
        .method_len = strlen(method),
        .path = path,
        .path_len = strlen(path),
        .host = host,
        .host_len = host ? strlen(host) : 0,
        .headers = hs,
        .nheaders = nh,
    };
    const struct route *m = px_router_match(r, &v);
    return m ? (long)(m - t->routes) : -1;
}

#define MATCH(r, t, method, host, path) match_idx(r, t, method, host, path, NULL, 0)

/* Like match_idx for GET without headers, with a target that may carry a query. */
static long match_target(const struct px_router *r, const struct route_table *t, const char *host,
                         const char *target)
{
    const char *q = strchr(target, '?');
    struct px_request_view v = {
        .method = "GET",
        .method_len = 3,
        .path = target,
        .path_len = q ? (size_t)(q - target) : strlen(target),
        .query = q ? q + 1 : NULL,
        .query_len = q ? strlen(q + 1) : 0,
        .host = host,
        .host_len = host ? strlen(host) : 0,
    };
    const struct route *m = px_router_match(r, &v);
    return m ? (long)(m - t->routes) : -1;
}

START_TEST(router_table_order_wins_over_prefix_length)
{
    /* The router follows the table's order, even when a shorter prefix comes first. */
    const struct rspec specs[] = { { .prefix = "/" }, { .prefix = "/foo/" } };
    struct route_table *t = table_of(specs, 2);
    struct px_router *r = build_ok(t);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/foo/bar"), 0);
    px_router_free(r);

    /* Sorted into Ambassador's order, the longer prefix is tried first. */
    route_sort(t->routes, t->nroutes);
    r = build_ok(t);
    ck_assert_str_eq(t->routes[MATCH(r, t, "GET", NULL, "/foo/bar")].prefix, "/foo/");
    ck_assert_str_eq(t->routes[MATCH(r, t, "GET", NULL, "/fo")].prefix, "/");
    px_router_free(r);
    route_table_free(t);
}
END_TEST

START_TEST(router_longest_prefix_wins_after_sort)
{
    const struct rspec specs[] = {
        { .prefix = "/a/" }, { .prefix = "/a/b/c/" }, { .prefix = "/a/b/" }, { .prefix = "/ab" }
    };
    struct route_table *t = table_of(specs, ARRAY_SIZE(specs));
    route_sort(t->routes, t->nroutes);
    struct px_router *r = build_ok(t);
    ck_assert_str_eq(t->routes[MATCH(r, t, "GET", NULL, "/a/b/c/d")].prefix, "/a/b/c/");
    ck_assert_str_eq(t->routes[MATCH(r, t, "GET", NULL, "/a/b/x")].prefix, "/a/b/");
    ck_assert_str_eq(t->routes[MATCH(r, t, "GET", NULL, "/a/x")].prefix, "/a/");
    ck_assert_str_eq(t->routes[MATCH(r, t, "GET", NULL, "/abc")].prefix, "/ab");
    /* Prefixes are literal bytes: "/a/" does not match "/a". */
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/a"), -1);
    px_router_free(r);
    route_table_free(t);
}
END_TEST

START_TEST(router_method_mismatch_falls_through)
{
    const struct rspec specs[] = {
        { .prefix = "/api/", .method = "POST" },
        { .prefix = "/api/", .method = "GET" },
        { .prefix = "/" },
    };
    struct route_table *t = table_of(specs, 3);
    struct px_router *r = build_ok(t);
    ck_assert_int_eq(MATCH(r, t, "POST", NULL, "/api/x"), 0);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/api/x"), 1);
    ck_assert_int_eq(MATCH(r, t, "PUT", NULL, "/api/x"), 2);
    /* Methods are exact: a lower-case method is a different method. */
    ck_assert_int_eq(MATCH(r, t, "post", NULL, "/api/x"), 2);
    px_router_free(r);
    route_table_free(t);
}
END_TEST

START_TEST(router_host_exact_case_insensitive_port_ignored)
{
    const struct rspec specs[] = {
        { .prefix = "/", .host = "Example.COM" },
        { .prefix = "/", .host = "other.example:8080" },
        { .prefix = "/", .host = "[::1]" },
        { .prefix = "/any/" },
    };
    struct route_table *t = table_of(specs, ARRAY_SIZE(specs));
    struct px_router *r = build_ok(t);
    ck_assert_int_eq(MATCH(r, t, "GET", "example.com", "/x"), 0);
    ck_assert_int_eq(MATCH(r, t, "GET", "EXAMPLE.com:8080", "/x"), 0);
    ck_assert_int_eq(MATCH(r, t, "GET", "example.com:443", "/any/x"), 0);
    ck_assert_int_eq(MATCH(r, t, "GET", "example.org", "/x"), -1);
    ck_assert_int_eq(MATCH(r, t, "GET", "www.example.com", "/x"), -1);
    /* Routes without host are consulted for every request, with or without Host. */
    ck_assert_int_eq(MATCH(r, t, "GET", "example.org", "/any/x"), 3);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/any/x"), 3);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/x"), -1);
    /* A route host that names a port matches that port only. */
    ck_assert_int_eq(MATCH(r, t, "GET", "other.example:8080", "/x"), 1);
    ck_assert_int_eq(MATCH(r, t, "GET", "other.example:9090", "/x"), -1);
    ck_assert_int_eq(MATCH(r, t, "GET", "other.example", "/x"), -1);
    /* IPv6 literals keep their brackets; only the port goes. */
    ck_assert_int_eq(MATCH(r, t, "GET", "[::1]:8080", "/x"), 2);
    ck_assert_int_eq(MATCH(r, t, "GET", "[::1]", "/x"), 2);
    px_router_free(r);
    route_table_free(t);
}
END_TEST

START_TEST(router_header_presence_and_value)
{
    const struct rspec specs[] = {
        { .prefix = "/", .hname = "x-canary", .hvalue = "1" },
        { .prefix = "/", .hname = "x-debug" },
        { .prefix = "/" },
    };
    struct route_table *t = table_of(specs, 3);
    struct px_router *r = build_ok(t);
    struct px_header canary1[] = { { "X-Canary", 8, "1", 1 } };
    struct px_header canary2[] = { { "x-canary", 8, "2", 1 } };
    struct px_header canary11[] = { { "x-canary", 8, "11", 2 } };
    struct px_header debug[] = { { "Host", 4, "h", 1 }, { "X-DEBUG", 7, "", 0 } };
    struct px_header both[] = { { "x-canary", 8, "2", 1 }, { "x-canary", 8, "1", 1 } };
    ck_assert_int_eq(match_idx(r, t, "GET", NULL, "/", canary1, 1), 0);
    ck_assert_int_eq(match_idx(r, t, "GET", NULL, "/", canary2, 1), 2);
    ck_assert_int_eq(match_idx(r, t, "GET", NULL, "/", canary11, 1), 2);
    ck_assert_int_eq(match_idx(r, t, "GET", NULL, "/", debug, 2), 1);
    ck_assert_int_eq(match_idx(r, t, "GET", NULL, "/", both, 2), 0);
    ck_assert_int_eq(match_idx(r, t, "GET", NULL, "/", NULL, 0), 2);
    px_router_free(r);
    route_table_free(t);
}
END_TEST

START_TEST(router_case_insensitive_routes)
{
    const struct rspec specs[] = {
        { .prefix = "/Foo/Bar", .ci = true },
        { .prefix = "/foo/", .rewrite = "/" },
        { .prefix = "/FOO/", .ci = true, .rewrite = "/x/" },
    };
    struct route_table *t = table_of(specs, 3);
    struct px_router *r = build_ok(t);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/fOO/bAR/baz"), 0);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/foo/x"), 1);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/Foo/x"), 2);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/FoX/x"), -1);
    /* The case-sensitive "/foo/" must not catch "/FOO/". */
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/FOO/"), 2);
    /* The rewrite replaces the matched prefix as the client spelled it. */
    char out[64];
    long n = px_rewrite_target(&t->routes[2], "/FoO/Rest", 9, NULL, 0, out, sizeof(out));
    ck_assert_int_eq(n, 7);
    ck_assert_int_eq(memcmp(out, "/x/Rest", 7), 0);
    px_router_free(r);
    route_table_free(t);
}
END_TEST

START_TEST(router_prefix_exact)
{
    const struct rspec specs[] = {
        { .prefix = "/status", .exact = true },
        { .prefix = "/status/", .exact = true, .ci = true },
        { .prefix = "/" },
    };
    struct route_table *t = table_of(specs, 3);
    struct px_router *r = build_ok(t);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/status"), 0);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/statusx"), 2);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/status/"), 1);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/STATUS/"), 1);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/STATUS"), 2);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/status/x"), 2);
    px_router_free(r);
    route_table_free(t);
}
END_TEST

START_TEST(router_no_route_is_null)
{
    struct route_table *t = table_with(0);
    struct px_router *r = build_ok(t);
    ck_assert_int_eq(MATCH(r, t, "GET", "example.com", "/"), -1);
    px_router_free(r);
    route_table_free(t);

    const struct rspec specs[] = { { .prefix = "/only/" } };
    t = table_of(specs, 1);
    r = build_ok(t);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/"), -1);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, ""), -1);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/onl"), -1);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/only/"), 0);
    px_router_free(r);
    route_table_free(t);
}
END_TEST

/* The controller checks every regex; a table that still holds a bad one (another controller,
 * a hand-written snapshot) is refused whole, naming the route and the regex. */
START_TEST(router_rejects_regexes_that_do_not_compile)
{
    char err[256] = "";
    const struct rspec specs[] = { { .prefix = "/ok/" }, { .prefix = "^/re/(.*$" } };
    struct route_table *t = table_of(specs, 2);
    t->routes[1].prefix_regex = true;
    ck_assert_ptr_null(px_router_build(t, err, sizeof(err)));
    ck_assert_msg(strstr(err, "prefix_regex: invalid regex") && strstr(err, "routes[1]") &&
                      strstr(err, "m1") && strstr(err, "missing )"),
                  "reason: %s", err);
    route_table_free(t);

    const struct rspec hs[] = { { .prefix = "/", .hname = "x-v", .hvalue = "(?<=a)b" } };
    t = table_of(hs, 1);
    t->routes[0].headers[0].regex = true;
    err[0] = '\0';
    ck_assert_ptr_null(px_router_build(t, err, sizeof(err)));
    ck_assert_msg(strstr(err, "headers: invalid regex \"(?<=a)b\""), "reason: %s", err);
    route_table_free(t);
}
END_TEST

/* The reference's rewrite table (ambassador-mapping.md), one row each. */
START_TEST(router_rewrite_table)
{
    static const struct {
        const char *prefix, *rewrite, *method, *target; /* target: path[?query] */
        const char *want;                               /* NULL: no match */
    } rows[] = {
        { "/foo/", "/", "GET", "/foo/bar?x=1", "/bar?x=1" },
        { "/foo/", "/", "GET", "/foo", NULL },
        { "/foo", "/", "GET", "/foo/bar", "//bar" },
        { "/foo", "/", "GET", "/foobar", "/bar" },
        { "/foo/", NULL, "GET", "/foo/bar", "/foo/bar" }, /* rewrite: "" arrives as NULL */
        { "/models/test/", "/model/test/:predict", "POST", "/models/test/",
          "/model/test/:predict" },
        /* The query is kept as sent, even when empty. */
        { "/foo/", "/", "GET", "/foo/?", "/?" },
        { "/foo/", NULL, "GET", "/foo/a?b=c&d", "/foo/a?b=c&d" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        const struct rspec s[] = { { .prefix = rows[i].prefix, .rewrite = rows[i].rewrite } };
        struct route_table *t = table_of(s, 1);
        struct px_router *r = build_ok(t);
        const char *q = strchr(rows[i].target, '?');
        size_t plen = q ? (size_t)(q - rows[i].target) : strlen(rows[i].target);
        struct px_request_view v = { .method = rows[i].method,
                                     .method_len = strlen(rows[i].method),
                                     .path = rows[i].target,
                                     .path_len = plen };
        const struct route *m = px_router_match(r, &v);
        if (rows[i].want == NULL) {
            ck_assert_msg(m == NULL, "row %zu matched", i);
        } else {
            ck_assert_msg(m != NULL, "row %zu did not match", i);
            char out[128];
            long n = px_rewrite_target(m, rows[i].target, plen, q ? q + 1 : NULL,
                                       q ? strlen(q + 1) : 0, out, sizeof(out));
            ck_assert_int_eq(n, (long)strlen(rows[i].want));
            ck_assert_msg(memcmp(out, rows[i].want, (size_t)n) == 0, "row %zu: got %.*s", i, (int)n,
                          out);
        }
        px_router_free(r);
        route_table_free(t);
    }
}
END_TEST

START_TEST(router_rewrite_reports_enospc)
{
    const struct rspec s[] = { { .prefix = "/foo/", .rewrite = "/very/long/rewrite/" } };
    struct route_table *t = table_of(s, 1);
    char out[32];
    /* "/very/long/rewrite/" + "bar" + "?q=1" = 26 bytes. */
    ck_assert_int_eq(px_rewrite_target(&t->routes[0], "/foo/bar", 8, "q=1", 3, out, 26), 26);
    ck_assert_int_eq(px_rewrite_target(&t->routes[0], "/foo/bar", 8, "q=1", 3, out, 25), -ENOSPC);
    route_table_free(t);
}
END_TEST

/* ---- differential: the router against a linear first-match scan ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static bool host_ok(const struct route *rt, const char *host)
{
    if (rt->host == NULL)
        return true;
    if (host == NULL)
        return false;
    if (strcasecmp(rt->host, host) == 0)
        return true;
    size_t bare = strcspn(host, ":");
    return strlen(rt->host) == bare && strncasecmp(rt->host, host, bare) == 0;
}

static long linear(const struct route_table *t, const char *method, const char *host,
                   const char *path, const struct px_header *hs, size_t nh)
{
    size_t plen = strlen(path);
    for (size_t i = 0; i < t->nroutes; i++) {
        const struct route *rt = &t->routes[i];
        size_t l = strlen(rt->prefix);
        if (l > plen || (rt->prefix_exact && l != plen))
            continue;
        if (rt->case_sensitive ? strncmp(rt->prefix, path, l) : strncasecmp(rt->prefix, path, l))
            continue;
        if (rt->method && strcmp(rt->method, method) != 0)
            continue;
        if (!host_ok(rt, host))
            continue;
        bool hdr = true;
        for (size_t h = 0; h < rt->nheaders && hdr; h++) {
            hdr = false;
            for (size_t k = 0; k < nh; k++)
                if (strlen(rt->headers[h].name) == hs[k].name_len &&
                    strncasecmp(rt->headers[h].name, hs[k].name, hs[k].name_len) == 0 &&
                    (rt->headers[h].value == NULL ||
                     (strlen(rt->headers[h].value) == hs[k].value_len &&
                      memcmp(rt->headers[h].value, hs[k].value, hs[k].value_len) == 0)))
                    hdr = true;
        }
        if (hdr)
            return (long)i;
    }
    return -1;
}

static void random_path(char *out, size_t max)
{
    static const char alphabet[] = "/aAbB";
    size_t n = rnd((uint32_t)max);
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[rnd(sizeof(alphabet) - 1)];
    out[n] = '\0';
}

START_TEST(router_agrees_with_linear_scan)
{
    static const char *const methods[] = { NULL, NULL, "GET", "POST" };
    static const char *const hosts[] = { NULL, NULL, "a.example", "B.example", "a.example:81" };
    static const char *const hnames[] = { NULL, NULL, "x-a", "x-b" };
    static const char *const hvalues[] = { NULL, "1", "2" };
    static const char *const req_hosts[] = { NULL,          "a.example", "A.EXAMPLE:81",
                                             "b.example:1", "c.example", "a.example:80" };
    for (int round = 0; round < 200; round++) {
        size_t n = 1 + rnd(40);
        struct route_table *t = table_with(n);
        char prefixes[40][8];
        for (size_t i = 0; i < n; i++) {
            random_path(prefixes[i], 7);
            struct rspec s = {
                .prefix = prefixes[i],
                .method = methods[rnd(ARRAY_SIZE(methods))],
                .host = hosts[rnd(ARRAY_SIZE(hosts))],
                .exact = rnd(5) == 0,
                .ci = rnd(3) == 0,
                .hname = hnames[rnd(ARRAY_SIZE(hnames))],
                .hvalue = hvalues[rnd(ARRAY_SIZE(hvalues))],
            };
            set_route(&t->routes[i], &s, i);
        }
        t->nroutes = n;
        if (rnd(2))
            route_sort(t->routes, n);
        struct px_router *r = build_ok(t);
        for (int q = 0; q < 300; q++) {
            char path[12];
            random_path(path, 11);
            const char *method = rnd(2) ? "GET" : "POST";
            const char *host = req_hosts[rnd(ARRAY_SIZE(req_hosts))];
            struct px_header hs[2] = { { "X-A", 3, "1", 1 }, { "x-b", 3, "2", 1 } };
            size_t nh = rnd(3);
            if (rnd(2))
                hs[0].value = "2";
            long want = linear(t, method, host, path, hs, nh);
            long got = match_idx(r, t, method, host, path, hs, nh);
            ck_assert_msg(got == want, "round %d: %s %s host=%s: router %ld, linear %ld", round,
                          method, path, host ? host : "-", got, want);
        }
        px_router_free(r);
        route_table_free(t);
    }
}
END_TEST

/* ---- regexes and query parameters ---- */

START_TEST(router_prefix_regex_matches_the_whole_path)
{
    const struct rspec specs[] = {
        { .prefix = "/api/v[0-9]+/users", .prefix_re = true },
        { .prefix = "/API/.*", .prefix_re = true, .ci = true },
        { .prefix = "/" },
    };
    struct route_table *t = table_of(specs, ARRAY_SIZE(specs));
    struct px_router *r = build_ok(t);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/api/v12/users"), 0);
    /* The whole path must match, not a prefix of it (Envoy's safe_regex). */
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/api/v12/users/7"), 1);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/x/api/v1/users"), 2);
    /* case_sensitive: false folds the regex too. */
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/Api/anything"), 1);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/apix"), 2);
    /* The query is not part of what the regex sees. */
    ck_assert_int_eq(match_target(r, t, NULL, "/api/v1/users?x=1"), 0);
    px_router_free(r);
    route_table_free(t);
}
END_TEST

/* Table order decides between trie and regex routes: a regex route before the best trie
 * candidate wins, one after it never runs. */
START_TEST(router_regex_and_trie_routes_keep_table_order)
{
    const struct rspec specs[] = {
        { .prefix = "/a/b/c" },
        { .prefix = "/a/.*", .prefix_re = true },
        { .prefix = "/a/" },
        { .prefix = "/.*", .prefix_re = true },
    };
    struct route_table *t = table_of(specs, ARRAY_SIZE(specs));
    struct px_router *r = build_ok(t);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/a/b/c"), 0);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/a/b/cd"), 0);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/a/x"), 1); /* regex [1] before trie [2] */
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/b"), 3);
    px_router_free(r);
    route_table_free(t);
}
END_TEST

START_TEST(router_host_regex_ignores_the_request_port)
{
    const struct rspec specs[] = {
        { .prefix = "/", .host = "[a-z]+\\.example\\.com", .host_re = true },
        { .prefix = "/", .host = "api\\.example\\.org:8443", .host_re = true },
        { .prefix = "/", .host = "exact.example" },
        { .prefix = "/any/" },
    };
    struct route_table *t = table_of(specs, ARRAY_SIZE(specs));
    struct px_router *r = build_ok(t);
    ck_assert_int_eq(MATCH(r, t, "GET", "shop.example.com", "/x"), 0);
    ck_assert_int_eq(MATCH(r, t, "GET", "shop.example.com:8080", "/x"), 0);
    ck_assert_int_eq(MATCH(r, t, "GET", "SHOP.Example.com", "/x"), 0); /* host names fold */
    ck_assert_int_eq(MATCH(r, t, "GET", "a.b.example.com", "/x"), -1); /* whole host */
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/x"), -1);
    /* A regex that names a port matches the Host as sent. */
    ck_assert_int_eq(MATCH(r, t, "GET", "api.example.org:8443", "/x"), 1);
    ck_assert_int_eq(MATCH(r, t, "GET", "api.example.org", "/x"), -1);
    ck_assert_int_eq(MATCH(r, t, "GET", "exact.example:1", "/x"), 2);
    ck_assert_int_eq(MATCH(r, t, "GET", "other", "/any/x"), 3);
    px_router_free(r);
    route_table_free(t);
}
END_TEST

START_TEST(router_method_regex)
{
    const struct rspec specs[] = {
        { .prefix = "/", .method = "GET|HEAD", .method_re = true },
        { .prefix = "/", .method = "P.*", .method_re = true },
    };
    struct route_table *t = table_of(specs, ARRAY_SIZE(specs));
    struct px_router *r = build_ok(t);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/x"), 0);
    ck_assert_int_eq(MATCH(r, t, "HEAD", NULL, "/x"), 0);
    ck_assert_int_eq(MATCH(r, t, "PATCH", NULL, "/x"), 1);
    ck_assert_int_eq(MATCH(r, t, "DELETE", NULL, "/x"), -1);
    ck_assert_int_eq(MATCH(r, t, "GETX", NULL, "/x"), -1); /* the whole method */
    px_router_free(r);
    route_table_free(t);
}
END_TEST

START_TEST(router_regex_headers)
{
    const struct rspec specs[] = {
        { .prefix = "/", .hname = "x-version", .hvalue = "v[2-9]", .header_re = true },
        { .prefix = "/" },
    };
    struct route_table *t = table_of(specs, ARRAY_SIZE(specs));
    struct px_router *r = build_ok(t);
    struct px_header v3[] = { { "X-Version", 9, "v3", 2 } };
    struct px_header v1[] = { { "x-version", 9, "v1", 2 } };
    struct px_header v33[] = { { "x-version", 9, "v33", 3 } };
    struct px_header two[] = { { "x-version", 9, "v1", 2 }, { "x-version", 9, "v9", 2 } };
    ck_assert_int_eq(match_idx(r, t, "GET", NULL, "/", v3, 1), 0);
    ck_assert_int_eq(match_idx(r, t, "GET", NULL, "/", v1, 1), 1);
    ck_assert_int_eq(match_idx(r, t, "GET", NULL, "/", v33, 1), 1); /* the whole value */
    ck_assert_int_eq(match_idx(r, t, "GET", NULL, "/", two, 2), 0); /* any line */
    ck_assert_int_eq(match_idx(r, t, "GET", NULL, "/", NULL, 0), 1);
    px_router_free(r);
    route_table_free(t);
}
END_TEST

START_TEST(router_query_parameters)
{
    const struct rspec specs[] = {
        { .prefix = "/", .qname = "debug" },                           /* present */
        { .prefix = "/", .qname = "user name", .qvalue = "Zoë & co" }, /* decoded both */
        { .prefix = "/", .qname = "id", .qvalue = "[0-9]+", .query_re = true },
        { .prefix = "/", .qname = "tag", .qvalue = "a" },
        { .prefix = "/" },
    };
    struct route_table *t = table_of(specs, ARRAY_SIZE(specs));
    struct px_router *r = build_ok(t);
    ck_assert_int_eq(match_target(r, t, NULL, "/x?debug"), 0);
    ck_assert_int_eq(match_target(r, t, NULL, "/x?a=1&debug="), 0);
    ck_assert_int_eq(match_target(r, t, NULL, "/x?debug=yes&a"), 0);
    ck_assert_int_eq(match_target(r, t, NULL, "/x?debugx=1"), 4);
    ck_assert_int_eq(match_target(r, t, NULL, "/x?DEBUG"), 4); /* names keep their case */
    ck_assert_int_eq(match_target(r, t, NULL, "/x?user+name=Zo%C3%AB%20%26+co"), 1);
    ck_assert_int_eq(match_target(r, t, NULL, "/x?user%20name=Zo%c3%ab+%26%20co"), 1);
    ck_assert_int_eq(match_target(r, t, NULL, "/x?user+name=Zo%C3%AB"), 4);
    ck_assert_int_eq(match_target(r, t, NULL, "/x?id=123"), 2);
    ck_assert_int_eq(match_target(r, t, NULL, "/x?id=%31%32"), 2);
    ck_assert_int_eq(match_target(r, t, NULL, "/x?id=12a"), 4);
    /* Any occurrence of a repeated parameter may match. */
    ck_assert_int_eq(match_target(r, t, NULL, "/x?tag=b&tag=a"), 3);
    /* A malformed escape stays as written. */
    ck_assert_int_eq(match_target(r, t, NULL, "/x?tag=%zz"), 4);
    ck_assert_int_eq(match_target(r, t, NULL, "/x"), 4);
    px_router_free(r);
    route_table_free(t);
}
END_TEST

START_TEST(router_rewrites_regex_routes_and_regex_rewrite)
{
    const struct rspec specs[] = {
        { .prefix = "/api/.*", .prefix_re = true, .rewrite = "/" },
        { .prefix = "/svc/", .rewrite = "/x/" },
    };
    struct route_table *t = table_of(specs, ARRAY_SIZE(specs));
    t->routes[1].regex_rewrite.pattern = xstrdup("^/svc/([^/]+)/(.*)$");
    t->routes[1].regex_rewrite.substitution = xstrdup("/\\2/instance/\\1");
    struct px_router *r = build_ok(t);
    char out[128];
    /* rewrite replaces what a regex route matched: the whole path. */
    long n = px_router_rewrite(r, &t->routes[0], "/api/v1", 7, "q=1", 3, out, sizeof(out));
    ck_assert_int_eq(n, 5);
    ck_assert(memcmp(out, "/?q=1", 5) == 0);
    /* regex_rewrite wins over rewrite, with capture groups; the query is kept. */
    n = px_router_rewrite(r, &t->routes[1], "/svc/a/b/c", 10, "z", 1, out, sizeof(out));
    ck_assert_int_eq(n, (long)strlen("/b/c/instance/a?z"));
    ck_assert(memcmp(out, "/b/c/instance/a?z", (size_t)n) == 0);
    ck_assert_int_eq(px_router_rewrite(r, &t->routes[1], "/svc/a/b", 8, NULL, 0, out, 5), -ENOSPC);
    /* Without a regex_rewrite, px_router_rewrite is px_rewrite_target. */
    n = px_router_rewrite(r, &t->routes[0], "/api/x", 6, NULL, 0, out, sizeof(out));
    ck_assert_int_eq(n, 1);
    px_router_free(r);
    route_table_free(t);
}
END_TEST

START_TEST(router_redirect_locations)
{
    const struct rspec specs[] = {
        { .prefix = "/a/" }, { .prefix = "/b/" }, { .prefix = "/c/" },
        { .prefix = "/d/" }, { .prefix = "/e/" }, { .prefix = "/f/.*", .prefix_re = true },
    };
    struct route_table *t = table_of(specs, ARRAY_SIZE(specs));
    for (size_t i = 0; i < t->nroutes; i++)
        t->routes[i].host_redirect = xstrdup("new.example:8080");
    t->routes[1].path_redirect = xstrdup("/moved");
    t->routes[2].path_redirect = xstrdup("/moved?x=2");
    t->routes[3].prefix_redirect = xstrdup("/new/");
    t->routes[4].regex_redirect.pattern = xstrdup("/e/([0-9]+)");
    t->routes[4].regex_redirect.substitution = xstrdup("/item/\\1");
    t->routes[4].redirect_scheme = xstrdup("https");
    t->routes[5].prefix_redirect = xstrdup("/whole");
    struct px_router *r = build_ok(t);
    static const struct {
        size_t route;
        const char *path, *query, *want;
    } rows[] = {
        { 0, "/a/x", "q=1", "http://new.example:8080/a/x?q=1" },   /* host only */
        { 1, "/b/x", "q=1", "http://new.example:8080/moved?q=1" }, /* whole path */
        { 2, "/c/x", "q=1", "http://new.example:8080/moved?x=2" }, /* its query wins */
        { 3, "/d/x/y", NULL, "http://new.example:8080/new/x/y" },  /* matched prefix */
        { 4, "/e/42/z", "k", "https://new.example:8080/item/42/z?k" },
        { 5, "/f/any", NULL, "http://new.example:8080/whole" }, /* a regex matched it all */
    };
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        char out[256];
        const char *q = rows[i].query;
        long n = px_router_location(r, &t->routes[rows[i].route], "http", rows[i].path,
                                    strlen(rows[i].path), q, q ? strlen(q) : 0, out, sizeof(out));
        ck_assert_msg(n == (long)strlen(rows[i].want) && memcmp(out, rows[i].want, (size_t)n) == 0,
                      "row %zu: %.*s", i, (int)(n > 0 ? n : 0), out);
        ck_assert_int_eq(px_router_location(r, &t->routes[rows[i].route], "http", rows[i].path,
                                            strlen(rows[i].path), q, q ? strlen(q) : 0, out,
                                            (size_t)n - 1),
                         -ENOSPC);
    }
    px_router_free(r);
    route_table_free(t);
}
END_TEST

/* The linear oracle with regex prefixes: first route in order whose every predicate holds. */
static long linear_rx(const struct route_table *t, struct rx *const *res, const char *path)
{
    size_t plen = strlen(path);
    for (size_t i = 0; i < t->nroutes; i++) {
        const struct route *rt = &t->routes[i];
        size_t l = strlen(rt->prefix);
        bool ok = rt->prefix_regex ? rx_full_match(res[i], path, plen)
                                   : l <= plen && strncmp(rt->prefix, path, l) == 0;
        if (ok)
            return (long)i;
    }
    return -1;
}

START_TEST(router_regex_routes_agree_with_linear_scan)
{
    static const char *const regexes[] = { "/a.*", "/[ab]+", "/b/.*", ".*a", "/(a|b)/a?" };
    static const char *const literals[] = { "/", "/a", "/a/", "/b/a", "/ab" };
    for (int round = 0; round < 100; round++) {
        size_t n = 1 + rnd(12);
        struct route_table *t = table_with(n);
        struct rx *res[12] = { 0 };
        for (size_t i = 0; i < n; i++) {
            bool re = rnd(2);
            struct rspec s = { .prefix = re ? regexes[rnd(ARRAY_SIZE(regexes))]
                                            : literals[rnd(ARRAY_SIZE(literals))],
                               .prefix_re = re };
            set_route(&t->routes[i], &s, i);
            char why[128];
            if (re)
                ck_assert_int_eq(rx_compile(s.prefix, 0, &res[i], why, sizeof(why)), 0);
        }
        t->nroutes = n;
        struct px_router *r = build_ok(t);
        for (int q = 0; q < 200; q++) {
            char path[12];
            random_path(path, 11);
            long want = linear_rx(t, res, path), got = MATCH(r, t, "GET", NULL, path);
            ck_assert_msg(got == want, "round %d: %s: router %ld, linear %ld", round, path, got,
                          want);
        }
        for (size_t i = 0; i < n; i++)
            rx_free(res[i]);
        px_router_free(r);
        route_table_free(t);
    }
}
END_TEST

/* ---- scale ---- */

static struct route_table *big_table(size_t n)
{
    struct route_table *t = table_with(n);
    for (size_t i = 0; i < n; i++) {
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "/svc-%zu/api/", i);
        struct rspec s = { .prefix = prefix, .rewrite = "/" };
        set_route(&t->routes[i], &s, i);
    }
    t->nroutes = n;
    route_sort(t->routes, n);
    return t;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Lookup time in ns over paths spread across the table: the best of several runs, so a busy
 * machine does not fail the test. */
static double lookup_ns(const struct px_router *r, const struct route_table *t, size_t n)
{
    enum { RUNS = 5, LOOKUPS = 100000 };
    char paths[64][64];
    for (size_t i = 0; i < 64; i++)
        snprintf(paths[i], sizeof(paths[i]), "/svc-%zu/api/v1/items", (i * 7919) % n);
    double best = 1e9;
    for (int run = 0; run < RUNS; run++) {
        volatile long sink = 0;
        double t0 = now_s();
        for (int i = 0; i < LOOKUPS; i++)
            sink += MATCH(r, t, "GET", "example.com", paths[i % 64]);
        (void)sink;
        double ns = (now_s() - t0) * 1e9 / LOOKUPS;
        if (ns < best)
            best = ns;
    }
    return best;
}

START_TEST(router_100k_routes)
{
    const size_t n = 100000;
    struct route_table *t = big_table(n);
    double t0 = now_s();
    struct px_router *r = build_ok(t);
    double build_ms = (now_s() - t0) * 1e3;

    /* Deep in the table, first, last, and near misses. */
    long deep = MATCH(r, t, "GET", NULL, "/svc-99999/api/x");
    ck_assert_int_ge(deep, 0);
    ck_assert_str_eq(t->routes[deep].prefix, "/svc-99999/api/");
    long small = MATCH(r, t, "GET", NULL, "/svc-1/api/");
    ck_assert_int_ge(small, 0);
    ck_assert_str_eq(t->routes[small].prefix, "/svc-1/api/");
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/svc-100000/api/"), -1);
    ck_assert_int_eq(MATCH(r, t, "GET", NULL, "/svc-5/ap"), -1);
    for (size_t i = 0; i < n; i += 997) {
        char p[64], want[64];
        snprintf(p, sizeof(p), "/svc-%zu/api/q", i);
        snprintf(want, sizeof(want), "/svc-%zu/api/", i);
        long got = MATCH(r, t, "GET", NULL, p);
        ck_assert_int_ge(got, 0);
        ck_assert_str_eq(t->routes[got].prefix, want);
    }

    size_t mem = px_router_memory(r);
    double per_route = (double)mem / (double)n;
    double big_ns = lookup_ns(r, t, n);

    struct route_table *t10 = big_table(10);
    struct px_router *r10 = build_ok(t10);
    double small_ns = lookup_ns(r10, t10, 10);

    fprintf(stderr,
            "router: %zu routes: build %.1f ms, %zu bytes (%.1f B/route), lookup %.0f ns "
            "(10 routes: %.0f ns)\n",
            n, build_ms, mem, per_route, big_ns, small_ns);
    ck_assert_msg(per_route < 512, "%.1f bytes per route", per_route);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    /* Timing means nothing under sanitizers. */
    ck_assert_msg(big_ns < 1000, "lookup %.0f ns", big_ns);
    ck_assert_msg(big_ns < 4 * small_ns + 200, "not flat: %.0f ns vs %.0f ns", big_ns, small_ns);
#endif
    px_router_free(r10);
    route_table_free(t10);
    px_router_free(r);
    route_table_free(t);
}
END_TEST

/* The proxy routes on tables read from snapshots, whose strings sit in one arena and are shared
 * where they repeat: it must route them exactly as the table they were written from. */
START_TEST(router_table_read_from_json_routes_the_same)
{
    const struct rspec specs[] = {
        { .prefix = "/api/", .method = "GET", .rewrite = "/" },
        { .prefix = "/api/", .host = "a.example", .rewrite = "/" },
        { .prefix = "/API/", .ci = true, .rewrite = "/v2/" },
        { .prefix = "/x", .exact = true },
        { .prefix = "/r/[0-9]+", .prefix_re = true },
        { .prefix = "/h/", .hname = "x-h", .hvalue = "1" },
        { .prefix = "/q/", .qname = "a", .qvalue = "b+", .query_re = true },
        { .prefix = "/", .host = "a.example" },
    };
    struct route_table *t = table_of(specs, ARRAY_SIZE(specs));
    struct buf text;
    buf_init(&text, 1 << 20);
    ck_assert_int_eq(route_snapshot_write(t, &text), 0);
    json_object *o = json_tokener_parse(text.data);
    char err[256] = "";
    struct route_table *back = NULL;
    ck_assert_msg(route_table_from_json(o, &back, err, sizeof(err)) == 0, "%s", err);
    json_object_put(o);
    buf_free(&text);
    ck_assert_ptr_nonnull(back->arena);
    ck_assert_ptr_eq(back->routes[0].rewrite, back->routes[1].rewrite); /* shared text */
    struct px_router *r1 = build_ok(t), *r2 = build_ok(back);
    static const struct {
        const char *method, *host, *target;
    } reqs[] = {
        { "GET", NULL, "/api/x" },       { "POST", "a.example", "/api/x" },
        { "POST", NULL, "/Api/y" },      { "GET", NULL, "/x" },
        { "GET", NULL, "/xy" },          { "GET", NULL, "/r/12" },
        { "GET", NULL, "/h/" },          { "GET", NULL, "/q/?a=bb" },
        { "GET", "a.example:80", "/z" }, { "GET", NULL, "/nothing" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(reqs); i++) {
        const char *q = strchr(reqs[i].target, '?');
        struct px_request_view v = {
            .method = reqs[i].method,
            .method_len = strlen(reqs[i].method),
            .path = reqs[i].target,
            .path_len = q ? (size_t)(q - reqs[i].target) : strlen(reqs[i].target),
            .query = q ? q + 1 : NULL,
            .query_len = q ? strlen(q + 1) : 0,
            .host = reqs[i].host,
            .host_len = reqs[i].host ? strlen(reqs[i].host) : 0,
        };
        const struct route *m1 = px_router_match(r1, &v), *m2 = px_router_match(r2, &v);
        long i1 = m1 ? (long)(m1 - t->routes) : -1, i2 = m2 ? (long)(m2 - back->routes) : -1;
        ck_assert_msg(i1 == i2, "request %zu: %ld vs %ld", i, i1, i2);
        char o1[256], o2[256];
        if (m1 != NULL)
            ck_assert_int_eq(
                px_router_rewrite(r1, m1, v.path, v.path_len, v.query, v.query_len, o1, sizeof(o1)),
                px_router_rewrite(r2, m2, v.path, v.path_len, v.query, v.query_len, o2,
                                  sizeof(o2)));
    }
    /* Every request above has an answer of its own kind: the comparison is not all misses. */
    ck_assert_ptr_nonnull(px_router_match(
        r2, &(struct px_request_view){
                .method = "GET", .method_len = 3, .path = "/r/12", .path_len = 5 }));
    px_router_free(r1);
    px_router_free(r2);
    route_table_free(back);
    route_table_free(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, router_table_order_wins_over_prefix_length);
    tcase_add_test(tc, router_longest_prefix_wins_after_sort);
    tcase_add_test(tc, router_method_mismatch_falls_through);
    tcase_add_test(tc, router_host_exact_case_insensitive_port_ignored);
    tcase_add_test(tc, router_header_presence_and_value);
    tcase_add_test(tc, router_case_insensitive_routes);
    tcase_add_test(tc, router_prefix_exact);
    tcase_add_test(tc, router_no_route_is_null);
    tcase_add_test(tc, router_rejects_regexes_that_do_not_compile);
    tcase_add_test(tc, router_rewrite_table);
    tcase_add_test(tc, router_rewrite_reports_enospc);
    tcase_add_test(tc, router_agrees_with_linear_scan);
    tcase_add_test(tc, router_prefix_regex_matches_the_whole_path);
    tcase_add_test(tc, router_regex_and_trie_routes_keep_table_order);
    tcase_add_test(tc, router_host_regex_ignores_the_request_port);
    tcase_add_test(tc, router_method_regex);
    tcase_add_test(tc, router_regex_headers);
    tcase_add_test(tc, router_query_parameters);
    tcase_add_test(tc, router_rewrites_regex_routes_and_regex_rewrite);
    tcase_add_test(tc, router_redirect_locations);
    tcase_add_test(tc, router_regex_routes_agree_with_linear_scan);
    tcase_add_test(tc, router_100k_routes);
    tcase_add_test(tc, router_table_read_from_json_routes_the_same);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
