/* Tests for common/route.c: Ambassador's ordering, the snapshot JSON form and what it refuses. */
#include <check.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "xalloc.h"

static struct route mk(const char *prefix, int32_t precedence, const char *method, const char *host)
{
    struct route r = { 0 };
    r.prefix = xstrdup(prefix);
    r.precedence = precedence;
    r.method = xstrdup(method);
    r.host = xstrdup(host);
    r.case_sensitive = true;
    return r;
}

static void add_header(struct route *r, const char *name, const char *value, bool regex)
{
    r->headers = xrealloc(r->headers, (r->nheaders + 1) * sizeof(*r->headers));
    r->headers[r->nheaders++] = (struct route_header){ xstrdup(name), xstrdup(value), regex };
}

START_TEST(route_header_weight_counts_host_method_headers)
{
    struct route r = mk("/", 0, "GET", "a.com");
    /* ":authority" + "a.com" = 15, ":method" + "GET" = 10 */
    ck_assert_uint_eq(route_header_weight(&r), 25);
    add_header(&r, "x-a", "1", false);  /* 3 + 1 */
    add_header(&r, "x-b", NULL, false); /* 3 + len("*") */
    add_header(&r, "x-c", "ab", true);  /* 3 + 2 + 1 for the regex */
    ck_assert_uint_eq(route_header_weight(&r), 25 + 4 + 4 + 6);
    route_free_fields(&r);
    ck_assert_ptr_null(r.prefix);
}
END_TEST

START_TEST(route_sort_follows_ambassador_precedence)
{
    struct route rs[8];
    rs[0] = mk("/", 0, NULL, NULL);
    rs[1] = mk("/a/", 0, NULL, NULL);
    rs[2] = mk("/a/b/", 0, NULL, NULL);
    rs[3] = mk("/", 10, NULL, NULL);     /* precedence beats length */
    rs[4] = mk("/a/", 0, NULL, "h.com"); /* same length, more header weight */
    rs[5] = mk("/b/", 0, NULL, NULL);    /* same length and weight: prefix descending */
    rs[6] = mk("/a/", 0, "POST", NULL);  /* method weight 11 > 0 */
    rs[7] = mk("/b/", 0, "PUT", NULL);   /* ":method"+"PUT" = 10, beats plain /b/ */
    route_sort(rs, 8);
    const char *want[][2] = { { "/", "10" },     { "/a/b/", "0" }, { "/a/", "h.com" },
                              { "/a/", "POST" }, { "/b/", "PUT" }, { "/b/", "" },
                              { "/a/", "" },     { "/", "0" } };
    for (int i = 0; i < 8; i++) {
        ck_assert_msg(strcmp(rs[i].prefix, want[i][0]) == 0, "position %d: %s", i, rs[i].prefix);
    }
    ck_assert_int_eq(rs[0].precedence, 10);
    ck_assert_str_eq(rs[2].host, "h.com");
    ck_assert_str_eq(rs[3].method, "POST");
    ck_assert_str_eq(rs[4].method, "PUT");
    ck_assert_ptr_null(rs[5].method);
    ck_assert_ptr_null(rs[6].method);
    for (int i = 0; i < 8; i++)
        route_free_fields(&rs[i]);
}
END_TEST

START_TEST(route_sort_is_stable_on_ties)
{
    enum { N = 200 };
    struct route rs[N];
    for (int i = 0; i < N; i++) {
        /* Two interleaved groups that tie within themselves; mapping records source order. */
        rs[i] = mk(i % 2 ? "/x/" : "/y/", 0, NULL, NULL);
        char m[16];
        snprintf(m, sizeof(m), "%03d", i);
        rs[i].mapping = xstrdup(m);
    }
    route_sort(rs, N);
    for (int i = 0; i < N; i++) {
        ck_assert_str_eq(rs[i].prefix, i < N / 2 ? "/y/" : "/x/");
        if (i > 0 && strcmp(rs[i].prefix, rs[i - 1].prefix) == 0)
            ck_assert_int_lt(strcmp(rs[i - 1].mapping, rs[i].mapping), 0);
    }
    for (int i = 0; i < N; i++)
        route_free_fields(&rs[i]);
}
END_TEST

static const char example[] =
    "{\"type\":\"snapshot\",\"protocol\":1,\"version\":42,"
    "\"routes\":[{\"namespace\":\"default\",\"service\":\"httpbin\",\"mapping\":\"httpbin_"
    "mapping\","
    "\"prefix\":\"/httpbin/\",\"prefix_regex\":false,\"prefix_exact\":false,"
    "\"case_sensitive\":true,\"method\":\"GET\",\"host\":\"example.com\","
    "\"headers\":[{\"name\":\"x-canary\",\"value\":\"1\"},{\"name\":\"x-debug\"}],"
    "\"precedence\":0,\"cluster\":\"httpbin.org:80\",\"rewrite\":\"/\","
    "\"host_rewrite\":\"httpbin.org\",\"timeout_ms\":3000},"
    "{\"namespace\":\"ns2\",\"service\":\"s2\",\"mapping\":\"m2\",\"prefix\":\"/x\","
    "\"cluster\":\"b:8080\"}],"
    "\"clusters\":[{\"name\":\"httpbin.org:80\",\"scheme\":\"http\",\"host\":\"httpbin.org\","
    "\"port\":80},{\"name\":\"b:8080\",\"scheme\":\"http\",\"host\":\"b\",\"port\":8080}],"
    "\"errors\":[{\"namespace\":\"default\",\"service\":\"broken\",\"mapping\":\"m1\","
    "\"field\":\"prefix\",\"line\":4,\"message\":\"missing required field \\\"prefix\\\"\"}]}";

static struct route_table *load(const char *text, char *err, size_t errlen, int *rc)
{
    json_object *o = json_tokener_parse(text);
    ck_assert_ptr_nonnull(o);
    struct route_table *t = NULL;
    *rc = route_table_from_json(o, &t, err, errlen);
    json_object_put(o);
    return t;
}

START_TEST(route_json_loads_the_protocol_example)
{
    char err[256] = "";
    int rc;
    struct route_table *t = load(example, err, sizeof(err), &rc);
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_uint_eq(t->version, 42);
    ck_assert_uint_eq(t->nroutes, 2);
    ck_assert_uint_eq(t->nclusters, 2);
    ck_assert_uint_eq(t->nerrors, 1);
    const struct route *r = &t->routes[0];
    ck_assert_str_eq(r->ns, "default");
    ck_assert_str_eq(r->prefix, "/httpbin/");
    ck_assert_str_eq(r->method, "GET");
    ck_assert_str_eq(r->host, "example.com");
    ck_assert_uint_eq(r->nheaders, 2);
    ck_assert_str_eq(r->headers[0].value, "1");
    ck_assert_ptr_null(r->headers[1].value);
    ck_assert_uint_eq(r->cluster, 0);
    ck_assert_str_eq(r->rewrite, "/");
    ck_assert_str_eq(r->host_rewrite, "httpbin.org");
    /* Defaults for what the second route leaves out. */
    r = &t->routes[1];
    ck_assert_uint_eq(r->cluster, 1);
    ck_assert(r->case_sensitive);
    ck_assert(!r->prefix_exact && !r->prefix_regex);
    ck_assert_uint_eq(r->timeout_ms, ROUTE_DEFAULT_TIMEOUT_MS);
    ck_assert_ptr_null(r->method);
    ck_assert_ptr_null(r->rewrite);
    ck_assert_uint_eq(t->clusters[1].port, 8080);
    ck_assert_int_eq(t->errors[0].line, 4);
    ck_assert_str_eq(t->errors[0].message, "missing required field \"prefix\"");
    route_table_free(t);
}
END_TEST

START_TEST(route_json_round_trip)
{
    char err[256] = "";
    int rc;
    struct route_table *t = load(example, err, sizeof(err), &rc);
    ck_assert_msg(rc == 0, "%s", err);
    json_object *o1 = route_table_to_json(t);
    const char *s1 = json_object_to_json_string_ext(o1, JSON_C_TO_STRING_PLAIN);
    struct route_table *t2 = NULL;
    ck_assert_msg(route_table_from_json(o1, &t2, err, sizeof(err)) == 0, "%s", err);
    json_object *o2 = route_table_to_json(t2);
    ck_assert_str_eq(s1, json_object_to_json_string_ext(o2, JSON_C_TO_STRING_PLAIN));
    /* Field by field, nothing was lost on the way. */
    ck_assert_uint_eq(t2->version, 42);
    ck_assert_str_eq(t2->routes[0].headers[0].name, "x-canary");
    ck_assert_str_eq(t2->routes[1].prefix, "/x");
    ck_assert_uint_eq(t2->routes[1].cluster, 1);
    ck_assert_str_eq(t2->clusters[0].host, "httpbin.org");
    ck_assert_str_eq(t2->errors[0].field, "prefix");
    /* Absent optionals stay absent rather than turning into empty strings. */
    json_object *r1 = json_object_array_get_idx(json_object_object_get(o2, "routes"), 1);
    ck_assert(!json_object_object_get_ex(r1, "rewrite", NULL));
    ck_assert(!json_object_object_get_ex(r1, "headers", NULL));
    json_object_put(o1);
    json_object_put(o2);
    route_table_free(t);
    route_table_free(t2);
}
END_TEST

/* Replaces the first occurrence of from in example with to. */
static char *edit(const char *from, const char *to)
{
    const char *at = strstr(example, from);
    ck_assert_ptr_nonnull(at);
    size_t n = strlen(example) - strlen(from) + strlen(to) + 1;
    char *out = xmalloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - example), example, to, at + strlen(from));
    return out;
}

START_TEST(route_json_rejections)
{
    static const struct {
        const char *from, *to, *reason;
    } cases[] = {
        { "\"protocol\":1,", "\"protocol\":1,\"extra\":1,", "unknown key \"extra\"" },
        { "\"version\":42", "\"version\":-1", "\"version\"" },
        { "\"version\":42", "\"version\":\"42\"", "\"version\"" },
        { "\"prefix_exact\":false", "\"prefix_exact\":\"no\"", "routes[0].prefix_exact" },
        { "\"timeout_ms\":3000", "\"timeout_ms\":-5", "routes[0].timeout_ms" },
        { "\"timeout_ms\":3000", "\"timeout_ms\":3000,\"weights\":5", "routes[0]: unknown key" },
        { "\"cluster\":\"b:8080\"", "\"cluster\":\"c:80\"", "routes[1]: unknown cluster" },
        { ",\"cluster\":\"b:8080\"", "", "routes[1]: missing \"cluster\"" },
        { "\"prefix\":\"/x\",", "", "routes[1]: missing \"prefix\"" },
        { "\"namespace\":\"ns2\",", "", "routes[1]: missing \"namespace\"" },
        { "\"headers\":[", "\"headers\":{\"a\":1},\"x\":[", "headers" },
        { "{\"name\":\"x-debug\"}", "{\"value\":\"x\"}", "headers[1]: missing name" },
        { "{\"name\":\"x-debug\"}", "{\"name\":\"x-debug\",\"regex\":\"y\"}", "headers[1].regex" },
        { "\"port\":8080", "\"port\":0", "clusters[1]" },
        { "\"port\":8080", "\"port\":65536", "clusters[1]" },
        { "\"scheme\":\"http\",\"host\":\"b\"", "\"scheme\":\"ftp\",\"host\":\"b\"",
          "unsupported scheme" },
        { "\"port\":8080}", "\"port\":8080,\"sni\":\"b\"}", "\"sni\" needs scheme https" },
        { ",\"message\":\"missing required field \\\"prefix\\\"\"", "",
          "errors[0]: missing \"message\"" },
        { "\"routes\":[", "\"routes\":7,\"errors\":[", "\"routes\" must be an array" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char *text = edit(cases[i].from, cases[i].to);
        char err[256] = "";
        int rc;
        json_object *o = json_tokener_parse(text);
        ck_assert_msg(o != NULL, "case %zu is not JSON: %s", i, text);
        json_object_put(o);
        struct route_table *t = load(text, err, sizeof(err), &rc);
        ck_assert_msg(rc == -EINVAL && t == NULL, "case %zu accepted", i);
        ck_assert_msg(strstr(err, cases[i].reason) != NULL, "case %zu: reason \"%s\"", i, err);
        free(text);
    }
    /* Not an object at all. */
    char err[256] = "";
    struct route_table *t = (struct route_table *)1;
    json_object *arr = json_object_new_array();
    ck_assert_int_eq(route_table_from_json(arr, &t, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_null(t);
    json_object_put(arr);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("route");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, route_header_weight_counts_host_method_headers);
    tcase_add_test(tc, route_sort_follows_ambassador_precedence);
    tcase_add_test(tc, route_sort_is_stable_on_ties);
    tcase_add_test(tc, route_json_loads_the_protocol_example);
    tcase_add_test(tc, route_json_round_trip);
    tcase_add_test(tc, route_json_rejections);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
