/* Tests for controller/compile.c: from cached Services to one ordered route table, with
 * clusters deduplicated, duplicate names resolved, and errors kept per Service. */
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile.h"
#include "log.h"
#include "route.h"

static struct cache cache;
static struct compile_result *result;

static void setup(void)
{
    cache_init(&cache, NULL, NULL);
    result = NULL;
}

static void teardown(void)
{
    compile_result_free(result);
    cache_free(&cache);
}

static void put(const char *ns, const char *name, const char *annotation)
{
    struct cache_object o = { .ns = ns,
                              .name = name,
                              .uid = "uid-x",
                              .annotation = annotation,
                              .origin = "test",
                              .line = 0 };
    cache_upsert(&cache, &o);
}

static const struct route_table *run(void)
{
    struct compile_opts o = { .ambassador_id = "default", .version = 42 };
    compile_result_free(result);
    result = compile_run(&cache, &o);
    return result->table;
}

/* A one-document annotation; extra is appended to the Mapping. */
static char *mapping(const char *name, const char *prefix, const char *service, const char *extra)
{
    static char bufs[16][512];
    static int next;
    char *b = bufs[next++ % 16];
    snprintf(b, 512,
             "apiVersion: ambassador/v1\nkind: Mapping\nname: %s\nprefix: %s\nservice: %s\n%s",
             name, prefix, service, extra ? extra : "");
    return b;
}

static int find_route(const struct route_table *t, const char *ns, const char *name)
{
    for (size_t i = 0; i < t->nroutes; i++)
        if (strcmp(t->routes[i].ns, ns) == 0 && strcmp(t->routes[i].mapping, name) == 0)
            return (int)i;
    return -1;
}

START_TEST(compile_one_mapping_one_route_one_cluster)
{
    put("default", "web", mapping("web", "/web/", "web.prod:8080", NULL));
    put("default", "plain", NULL); /* no annotation: no record, no routes */
    const struct route_table *t = run();
    ck_assert_uint_eq(t->version, 42);
    ck_assert_uint_eq(t->nroutes, 1);
    ck_assert_uint_eq(t->nclusters, 1);
    ck_assert_uint_eq(t->nerrors, 0);
    ck_assert_str_eq(t->clusters[0].name, "web.prod:8080");
    ck_assert_str_eq(t->clusters[0].scheme, "http");
    ck_assert_str_eq(t->clusters[0].host, "web.prod");
    ck_assert_uint_eq(t->clusters[0].port, 8080);
    ck_assert_uint_eq(t->routes[0].cluster, 0);
    ck_assert_str_eq(t->routes[0].svc, "web");
    ck_assert_uint_eq(result->nservices, 1);
    ck_assert_uint_eq(result->services[0].nroutes, 1);
}
END_TEST

START_TEST(compile_duplicate_name_first_service_wins)
{
    /* "b-svc" sorts after "a-svc": a-svc's Mapping is first and wins. */
    put("ns1", "b-svc", mapping("shared", "/b/", "b", NULL));
    put("ns1", "a-svc", mapping("shared", "/a/", "a", NULL));
    const struct route_table *t = run();
    ck_assert_uint_eq(t->nroutes, 1);
    ck_assert_str_eq(t->routes[0].svc, "a-svc");
    ck_assert_str_eq(t->routes[0].prefix, "/a/");
    ck_assert_uint_eq(t->nerrors, 1);
    ck_assert_str_eq(t->errors[0].svc, "b-svc");
    ck_assert_str_eq(t->errors[0].mapping, "shared");
    ck_assert_str_eq(t->errors[0].field, "name");
    ck_assert_int_eq(t->errors[0].line, 3);
    ck_assert_msg(strstr(t->errors[0].message, "Service \"a-svc\"") != NULL, "%s",
                  t->errors[0].message);
    /* The error is attributed to the loser's Service record, for its Events. */
    const struct compile_service *b = compile_find_service(result, "ns1", "b-svc");
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(b->nerrors, 1);
    ck_assert_ptr_eq(b->errors, &t->errors[0]);
    ck_assert_uint_eq(b->nroutes, 0);
    ck_assert_uint_eq(compile_find_service(result, "ns1", "a-svc")->nerrors, 0);
}
END_TEST

START_TEST(compile_duplicate_name_within_one_annotation)
{
    char text[1024];
    snprintf(text, sizeof(text), "%s---\n%s", mapping("m", "/one/", "a", NULL),
             mapping("m", "/two/", "a", NULL));
    put("ns1", "svc", text);
    const struct route_table *t = run();
    ck_assert_uint_eq(t->nroutes, 1);
    ck_assert_str_eq(t->routes[0].prefix, "/one/");
    ck_assert_uint_eq(t->nerrors, 1);
    ck_assert_int_eq(t->errors[0].line, 9); /* the second document's name */
}
END_TEST

START_TEST(compile_same_name_in_two_namespaces_both_live)
{
    put("ns1", "svc", mapping("m", "/one/", "a", NULL));
    put("ns2", "svc", mapping("m", "/two/", "b", NULL));
    const struct route_table *t = run();
    ck_assert_uint_eq(t->nerrors, 0);
    ck_assert_uint_eq(t->nroutes, 2);
    ck_assert_int_ge(find_route(t, "ns1", "m"), 0);
    ck_assert_int_ge(find_route(t, "ns2", "m"), 0);
}
END_TEST

START_TEST(compile_orders_by_ambassador_precedence)
{
    put("ns", "s1", mapping("short-high", "/a/", "a", "precedence: 5\n"));
    put("ns", "s2", mapping("long", "/a/b/c/", "a", NULL));
    put("ns", "s3", mapping("mid", "/a/b/", "a", NULL));
    put("ns", "s4", mapping("mid-headers", "/a/b/", "a", "headers:\n  x-canary: \"1\"\n"));
    const struct route_table *t = run();
    ck_assert_uint_eq(t->nroutes, 4);
    /* precedence beats prefix length; longer prefix next; more header weight before fewer. */
    ck_assert_str_eq(t->routes[0].mapping, "short-high");
    ck_assert_str_eq(t->routes[1].mapping, "long");
    ck_assert_str_eq(t->routes[2].mapping, "mid-headers");
    ck_assert_str_eq(t->routes[3].mapping, "mid");
}
END_TEST

START_TEST(compile_ties_keep_source_order)
{
    /* Identical match tuples: (namespace, Service, document) order decides, stably. */
    put("ns", "s2", mapping("from-s2", "/x/", "a", NULL));
    put("ns", "s1", mapping("from-s1", "/x/", "b", NULL));
    put("ns", "s3", mapping("from-s3", "/x/", "c", NULL));
    const struct route_table *t = run();
    ck_assert_uint_eq(t->nroutes, 3);
    ck_assert_str_eq(t->routes[0].mapping, "from-s1");
    ck_assert_str_eq(t->routes[1].mapping, "from-s2");
    ck_assert_str_eq(t->routes[2].mapping, "from-s3");
}
END_TEST

START_TEST(compile_clusters_are_deduplicated)
{
    put("ns", "s1", mapping("a", "/a/", "http://Up.ns:80", NULL));
    put("ns", "s2", mapping("b", "/b/", "up.ns", NULL)); /* same upstream, other spelling */
    put("ns", "s3", mapping("c", "/c/", "up.ns:8080", NULL));
    const struct route_table *t = run();
    ck_assert_uint_eq(t->nroutes, 3);
    ck_assert_uint_eq(t->nclusters, 2);
    ck_assert_str_eq(t->clusters[0].name, "up.ns:80");
    ck_assert_str_eq(t->clusters[1].name, "up.ns:8080");
    int a = find_route(t, "ns", "a"), b = find_route(t, "ns", "b"), c = find_route(t, "ns", "c");
    ck_assert_uint_eq(t->routes[a].cluster, t->routes[b].cluster);
    ck_assert_uint_ne(t->routes[a].cluster, t->routes[c].cluster);
    ck_assert_str_eq(t->clusters[t->routes[c].cluster].name, "up.ns:8080");
}
END_TEST

START_TEST(compile_rewrite_and_timeout_defaults)
{
    put("ns", "s1", mapping("dflt", "/a/", "up", NULL));
    put("ns", "s2", mapping("none", "/b/", "up", "rewrite: \"\"\ntimeout_ms: 50\n"));
    const struct route_table *t = run();
    const struct route *d = &t->routes[find_route(t, "ns", "dflt")];
    const struct route *n = &t->routes[find_route(t, "ns", "none")];
    ck_assert_str_eq(d->rewrite, "/");
    ck_assert_uint_eq(d->timeout_ms, 3000);
    ck_assert_ptr_null(n->rewrite);
    ck_assert_uint_eq(n->timeout_ms, 50);
}
END_TEST

START_TEST(compile_errors_are_kept_per_service_in_order)
{
    put("ns", "bad1", mapping("x", "/x/", "up", "weight: 1\n"));
    put("ns", "good", mapping("g", "/g/", "up", NULL));
    put("ns", "bad2", "apiVersion: ambassador/v1\nkind: Mapping\nname: y\n");
    const struct route_table *t = run();
    ck_assert_uint_eq(t->nroutes, 1);
    ck_assert_uint_eq(t->nerrors, 3); /* weight; missing prefix and service */
    ck_assert_str_eq(t->errors[0].svc, "bad1");
    ck_assert_str_eq(t->errors[1].svc, "bad2");
    ck_assert_str_eq(t->errors[2].svc, "bad2");
    const struct compile_service *b2 = compile_find_service(result, "ns", "bad2");
    ck_assert_uint_eq(b2->nerrors, 2);
    ck_assert_ptr_eq(b2->errors, &t->errors[1]);
    ck_assert_str_eq(b2->uid, "uid-x");
    ck_assert_ptr_null(compile_find_service(result, "ns", "missing"));
}
END_TEST

/* What the controller compiles, the proxy's strict reader accepts unchanged. */
START_TEST(compile_table_survives_the_snapshot_round_trip)
{
    put("ns", "s1",
        mapping("a", "/a/", "up:81",
                "headers:\n  x-a: \"1\"\n  x-b: true\n"
                "method: put\nhost: h.example\n"));
    put("ns", "s2", mapping("b", "/b/", "up", "rewrite: \"\"\n"));
    put("ns", "s3", mapping("c", "/c/", "up", "bogus: 1\n"));
    const struct route_table *t = run();
    json_object *o = route_table_to_json(t);
    struct route_table *back = NULL;
    char err[256] = "";
    ck_assert_msg(route_table_from_json(o, &back, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(back->nroutes, 2);
    ck_assert_uint_eq(back->nclusters, 2);
    ck_assert_uint_eq(back->nerrors, 1);
    ck_assert_ptr_null(back->routes[find_route(back, "ns", "b")].rewrite);
    ck_assert_uint_eq(back->routes[find_route(back, "ns", "a")].nheaders, 2);
    route_table_free(back);
    json_object_put(o);
}
END_TEST

START_TEST(compile_ignores_other_ambassador_ids)
{
    put("ns", "s1", mapping("a", "/a/", "up", "ambassador_id: blue\n"));
    const struct route_table *t = run();
    ck_assert_uint_eq(t->nroutes, 0);
    ck_assert_uint_eq(t->nerrors, 0);
    ck_assert_uint_eq(result->services[0].nignored, 1);
}
END_TEST

START_TEST(compile_tables_equal_ignores_only_the_version)
{
    put("ns", "s1", mapping("a", "/a/", "up", "headers:\n  x-a: \"1\"\n"));
    put("ns", "s2", mapping("b", "/b/", "up", "weight: 1\n"));
    struct compile_opts o1 = { .version = 1 }, o2 = { .version = 2 };
    struct compile_result *a = compile_run(&cache, &o1);
    struct compile_result *b = compile_run(&cache, &o2);
    ck_assert(compile_tables_equal(a->table, b->table));
    /* A comment does not change the table. */
    put("ns", "s1", mapping("a", "/a/", "up", "headers:\n  x-a: \"1\"\n# note\n"));
    result = compile_run(&cache, &o1);
    ck_assert(compile_tables_equal(a->table, result->table));
    compile_result_free(result);
    /* A header value does; so does an error's text. */
    put("ns", "s1", mapping("a", "/a/", "up", "headers:\n  x-a: \"2\"\n"));
    result = compile_run(&cache, &o1);
    ck_assert(!compile_tables_equal(a->table, result->table));
    compile_result_free(result);
    put("ns", "s1", mapping("a", "/a/", "up", "headers:\n  x-a: \"1\"\n"));
    put("ns", "s2", mapping("b", "/b/", "up", "weight: 2\n"));
    result = compile_run(&cache, &o1);
    /* weight 1 -> 2: the error (field, line, message) reads the same. */
    ck_assert(compile_tables_equal(a->table, result->table));
    compile_result_free(result);
    put("ns", "s2", mapping("b", "/b/", "up", "shadow: true\n"));
    result = compile_run(&cache, &o1);
    ck_assert(!compile_tables_equal(a->table, result->table));
    compile_result_free(a);
    compile_result_free(b);
}
END_TEST

int main(void)
{
    log_configure(LOG_LEVEL_ERROR, LOG_FORMAT_LOGFMT, "test");
    Suite *s = suite_create("compile");
    TCase *tc = tcase_create("compile");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, compile_one_mapping_one_route_one_cluster);
    tcase_add_test(tc, compile_duplicate_name_first_service_wins);
    tcase_add_test(tc, compile_duplicate_name_within_one_annotation);
    tcase_add_test(tc, compile_same_name_in_two_namespaces_both_live);
    tcase_add_test(tc, compile_orders_by_ambassador_precedence);
    tcase_add_test(tc, compile_ties_keep_source_order);
    tcase_add_test(tc, compile_clusters_are_deduplicated);
    tcase_add_test(tc, compile_rewrite_and_timeout_defaults);
    tcase_add_test(tc, compile_errors_are_kept_per_service_in_order);
    tcase_add_test(tc, compile_table_survives_the_snapshot_round_trip);
    tcase_add_test(tc, compile_ignores_other_ambassador_ids);
    tcase_add_test(tc, compile_tables_equal_ignores_only_the_version);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
