/* Tests for controller/compile.c: from cached Services to one ordered route table, with
 * clusters deduplicated, duplicate names resolved, and errors kept per Service. */
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile.h"
#include "harness.h"
#include "log.h"
#include "route.h"
#include "xalloc.h"

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
    /* Identical match tuples (same prefix, headers of the same weight) but different matches:
     * (namespace, Service, document) order decides, stably. */
    put("ns", "s2", mapping("from-s2", "/x/", "a", "headers:\n  x-b: \"1\"\n"));
    put("ns", "s1", mapping("from-s1", "/x/", "b", "headers:\n  x-a: \"1\"\n"));
    put("ns", "s3", mapping("from-s3", "/x/", "c", "headers:\n  x-c: \"1\"\n"));
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
    put("ns", "bad1", mapping("x", "/x/", "up", "bypass_auth: true\n"));
    put("ns", "good", mapping("g", "/g/", "up", NULL));
    put("ns", "bad2", "apiVersion: ambassador/v1\nkind: Mapping\nname: y\n");
    const struct route_table *t = run();
    ck_assert_uint_eq(t->nroutes, 1);
    ck_assert_uint_eq(t->nerrors, 3); /* bypass_auth; missing prefix and service */
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

/* ---- groups, the Module, TLS clusters ---- */

/* Mappings with identical match criteria are one Ambassador group (groups.c splits its
 * traffic); each row says whether the second Mapping (extra2) joins the first's group. The
 * match key that decides it is built here (match_key), from every match field. */
START_TEST(compile_groups_by_identical_match)
{
    static const struct {
        const char *extra1, *extra2;
        bool same;
    } rows[] = {
        { "", "", true },
        { "headers:\n  x-a: \"1\"\n  x-b: true\n", "headers:\n  x-b: true\n  X-A: \"1\"\n", true },
        { "method: GET\n", "method: get\n", true },
        { "", "method: GET\n", true }, /* Ambassador's group id: GET when absent */
        { "", "method: PUT\n", false },
        { "host: a.example\n", "host: b.example\n", false },
        { "host: a.example\n", "host: a.example\nhost_regex: true\n", false },
        { "precedence: 1\n", "", false },
        { "headers:\n  x-a: \"1\"\n", "regex_headers:\n  x-a: \"1\"\n", false },
        { "query_parameters:\n  a: \"1\"\n", "query_parameters:\n  a: \"2\"\n", false },
        { "query_parameters:\n  a: \"1\"\n  b: true\n",
          "query_parameters:\n  b: true\n  a: \"1\"\n", true },
        { "regex_query_parameters:\n  a: \"1\"\n", "query_parameters:\n  a: \"1\"\n", false },
        { "prefix_exact: true\n", "", false },
        { "prefix_regex: true\n", "", false },
        { "rewrite: /x/\n", "rewrite: /y/\ntimeout_ms: 5\n", true }, /* actions do not count */
    };
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        teardown();
        setup();
        put("ns", "s1", mapping("first", "/g/", "a", rows[i].extra1));
        put("ns", "s2", mapping("second", "/g/", "b", rows[i].extra2));
        const struct route_table *t = run();
        ck_assert_msg(t->nroutes == 2 && t->nerrors == 0, "row %zu: %zu routes, %zu errors (%s)", i,
                      t->nroutes, t->nerrors, t->nerrors ? t->errors[0].message : "");
        uint32_t size = t->routes[find_route(t, "ns", "first")].policy->group_size;
        ck_assert_msg(rows[i].same ? size == 2 : size <= 1, "row %zu: group_size %u", i, size);
    }
}
END_TEST

/* Ambassador's order, table-driven: each row lists Mappings in source order and the order
 * the table must hold them in. */
START_TEST(compile_order_table)
{
    static const struct {
        const char *what;
        const char *extra[3];
        const char *prefix[3];
        const char *want; /* mapping names m0.. in table order */
    } rows[] = {
        { "precedence beats prefix length",
          { "precedence: 1\n", "", "" },
          { "/a/", "/a/b/c/", "/a/b/" },
          "m0 m1 m2" },
        { "longer prefix first", { "", "", "" }, { "/a/", "/a/b/c/", "/a/b/" }, "m1 m2 m0" },
        { "more header weight first",
          { "headers:\n  x-a: \"1\"\n", "headers:\n  x-a: \"1\"\n  x-bb: \"2\"\n", "" },
          { "/h/", "/h/", "/h/" },
          "m1 m0 m2" },
        { "a regex header weighs one more",
          { "headers:\n  x-a: \"1\"\n", "regex_headers:\n  x-a: \"1\"\n", "" },
          { "/h/", "/h/", "/h/" },
          "m1 m0 m2" },
        { "host counts as :authority, host_regex one more",
          { "host: ab\n", "host: ab\nhost_regex: true\n", "headers:\n  x-aaaaaaaaa: \"1\"\n" },
          { "/h/", "/h/", "/h/" },
          "m1 m0 m2" },
        { "regex prefixes rank by their text length",
          { "prefix_regex: true\n", "prefix_regex: true\n", "" },
          { "/a/.*", "/a/[0-9]+/.*", "/a/b" },
          "m1 m0 m2" },
        { "a regex and a literal of one length: the text decides ('b' > '.')",
          { "prefix_regex: true\n", "", "" },
          { "/a/.*", "/a/b/", "/" },
          "m1 m0 m2" },
        { "query weight breaks a header tie",
          { "query_parameters:\n  p: \"1\"\n", "query_parameters:\n  p: \"1\"\n  qq: true\n", "" },
          { "/q/", "/q/", "/q/" },
          "m1 m0 m2" },
        { "header weight beats query weight",
          { "query_parameters:\n  pppppppp: \"1\"\n", "headers:\n  x: \"1\"\n", "" },
          { "/q/", "/q/", "/q/" },
          "m1 m0 m2" },
        { "then the prefix text, descending", { "", "", "" }, { "/b/", "/c/", "/a/" }, "m1 m0 m2" },
        { "a longer method weighs more",
          { "method: POST\n", "method: DELETE\n", "method: PUT\n" },
          { "/m/", "/m/", "/m/" },
          "m1 m0 m2" },
        { "then the method text, descending",
          { "method: HEAD\n", "method: COPY\n", "method: POST\n" },
          { "/m/", "/m/", "/m/" },
          "m2 m0 m1" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        teardown();
        setup();
        for (int k = 0; k < 3; k++) {
            char svc[8], name[8];
            snprintf(svc, sizeof(svc), "s%d", k);
            snprintf(name, sizeof(name), "m%d", k);
            put("ns", svc, mapping(name, rows[i].prefix[k], "a", rows[i].extra[k]));
        }
        const struct route_table *t = run();
        char got[64] = "";
        size_t gl = 0;
        for (size_t k = 0; k < t->nroutes && gl < sizeof(got); k++)
            gl += (size_t)snprintf(got + gl, sizeof(got) - gl, "%s%s", k ? " " : "",
                                   t->routes[k].mapping);
        ck_assert_msg(t->nerrors == 0, "%s: %s", rows[i].what,
                      t->nerrors ? t->errors[0].message : "");
        ck_assert_msg(strcmp(got, rows[i].want) == 0, "%s: got \"%s\", want \"%s\"", rows[i].what,
                      got, rows[i].want);
    }
}
END_TEST

static const char module_text[] =
    "apiVersion: getambassador.io/v2\nkind: Module\nname: ambassador\n"
    "config:\n  merge_slashes: true\n  server_name: edge\n"
    "  cluster_request_timeout_ms: 700\n"
    "  add_request_headers:\n    x-edge: module\n    x-own: module\n";

START_TEST(compile_module_applies_to_every_service)
{
    /* The Module lives in the last Service; its defaults reach the Mappings before it. */
    put("ns", "a", mapping("a", "/a/", "up", NULL));
    put("ns", "b",
        mapping("b", "/b/", "up", "timeout_ms: 50\nadd_request_headers:\n  X-Own: mapping\n"));
    put("ns", "z", module_text);
    const struct route_table *t = run();
    ck_assert_uint_eq(t->nerrors, 0);
    ck_assert(t->settings.merge_slashes);
    ck_assert_str_eq(t->settings.server_name, "edge");
    ck_assert(t->settings.use_remote_address); /* not set: Ambassador's default */
    const struct route *a = &t->routes[find_route(t, "ns", "a")];
    const struct route *b = &t->routes[find_route(t, "ns", "b")];
    ck_assert_uint_eq(a->timeout_ms, 700);
    ck_assert_uint_eq(b->timeout_ms, 50); /* its own timeout_ms wins */
    ck_assert_uint_eq(a->nadd_request_headers, 2);
    ck_assert_str_eq(a->add_request_headers[0].name, "x-edge");
    /* b's own X-Own replaces the Module's; the Module's others come first. */
    ck_assert_uint_eq(b->nadd_request_headers, 2);
    ck_assert_str_eq(b->add_request_headers[0].name, "x-edge");
    ck_assert_str_eq(b->add_request_headers[1].value, "mapping");
    /* No Module: defaults. */
    teardown();
    setup();
    put("ns", "a", mapping("a", "/a/", "up", NULL));
    t = run();
    ck_assert(t->settings.use_remote_address && !t->settings.merge_slashes);
    ck_assert_ptr_null(t->settings.server_name);
}
END_TEST

START_TEST(compile_second_module_is_an_error)
{
    put("ns1", "first", module_text);
    put("ns2", "second",
        "apiVersion: ambassador/v1\nkind: Module\nname: ambassador\n"
        "config:\n  merge_slashes: false\n  server_name: other\n");
    const struct route_table *t = run();
    ck_assert_uint_eq(t->nerrors, 1);
    ck_assert_str_eq(t->errors[0].svc, "second");
    ck_assert_str_eq(t->errors[0].mapping, "ambassador");
    ck_assert_int_eq(t->errors[0].line, 3);
    ck_assert_str_eq(
        t->errors[0].message,
        "duplicate ambassador Module: Service \"ns1/first\" defines it first and wins");
    ck_assert_str_eq(t->settings.server_name, "edge");
    ck_assert_uint_eq(compile_find_service(result, "ns2", "second")->nerrors, 1);
}
END_TEST

START_TEST(compile_tls_clusters_carry_the_server_name)
{
    put("ns", "s1", mapping("plain", "/p/", "api.example:443", NULL));
    put("ns", "s2", mapping("tls", "/t/", "https://api.example", NULL));
    put("ns", "s3",
        mapping("tls-sni", "/s/", "https://api.example", "host_rewrite: www.example\n"));
    put("ns", "s4", mapping("tls-too", "/u/", "api.example", "tls: true\n"));
    const struct route_table *t = run();
    ck_assert_uint_eq(t->nerrors, 0);
    ck_assert_uint_eq(t->nclusters, 3);
    const struct route_cluster *p = &t->clusters[t->routes[find_route(t, "ns", "plain")].cluster];
    const struct route_cluster *c = &t->clusters[t->routes[find_route(t, "ns", "tls")].cluster];
    const struct route_cluster *n = &t->clusters[t->routes[find_route(t, "ns", "tls-sni")].cluster];
    ck_assert_str_eq(p->name, "api.example:443");
    ck_assert_str_eq(p->scheme, "http");
    ck_assert_str_eq(c->name, "https://api.example:443");
    ck_assert_str_eq(c->scheme, "https");
    ck_assert_ptr_null(c->sni); /* the host itself */
    ck_assert_str_eq(n->name, "https://api.example:443;sni=www.example");
    ck_assert_str_eq(n->sni, "www.example");
    ck_assert_uint_eq(t->routes[find_route(t, "ns", "tls-too")].cluster,
                      t->routes[find_route(t, "ns", "tls")].cluster);
}
END_TEST

/* Every new field and the settings survive the proxy's strict reader, and a change to any of
 * them is a change of the table. */
START_TEST(compile_compat_fields_round_trip_and_compare)
{
    put("ns", "s1",
        mapping("a", "/a/.*", "https://up",
                "prefix_regex: true\nmethod: \"GET|PUT\"\nmethod_regex: true\n"
                "host: \"x.*\"\nhost_regex: true\nregex_headers:\n  x-v: \"[0-9]\"\n"
                "query_parameters:\n  q: true\nregex_rewrite: {pattern: a, substitution: b}\n"
                "add_response_headers:\n  x-r: {value: v, append: false}\n"
                "remove_request_headers: [x-a]\nhost_redirect: true\n"
                "regex_redirect: {pattern: a, substitution: b}\nredirect_response_code: 307\n"));
    put("ns", "s2", module_text);
    put("ns", "s3",
        "apiVersion: ambassador/v1\nkind: Module\nname: ambassador\nconfig:\n"
        "  ip_deny:\n  - remote: 192.0.2.0/24\n");
    const struct route_table *t = run();
    json_object *o = route_table_to_json(t);
    struct route_table *back = NULL;
    char err[256] = "";
    ck_assert_msg(route_table_from_json(o, &back, err, sizeof(err)) == 0, "%s", err);
    ck_assert(compile_tables_equal(t, back));
    const struct route *r = &back->routes[0];
    ck_assert(r->prefix_regex && r->method_regex && r->host_regex);
    ck_assert_uint_eq(r->nquery, 1);
    ck_assert_str_eq(r->regex_rewrite.substitution, "b");
    ck_assert_uint_eq(r->redirect_code, 307);
    ck_assert_str_eq(r->redirect_scheme, "https");
    ck_assert(!r->add_response_headers[0].append);
    ck_assert_str_eq(back->settings.server_name, "edge");
    /* Change one thing at a time in the copy: each makes the tables differ. */
    back->settings.merge_slashes = false;
    ck_assert(!compile_tables_equal(t, back));
    back->settings.merge_slashes = true;
    back->routes[0].query[0].regex = true;
    ck_assert(!compile_tables_equal(t, back));
    back->routes[0].query[0].regex = false;
    back->routes[0].add_response_headers[0].append = true;
    ck_assert(!compile_tables_equal(t, back));
    back->routes[0].add_response_headers[0].append = false;
    back->clusters[0].port = 1;
    ck_assert(!compile_tables_equal(t, back));
    back->clusters[0].port = t->clusters[0].port;
    ck_assert(compile_tables_equal(t, back));
    route_table_free(back);
    json_object_put(o);
}
END_TEST

int main(void)
{
    log_configure(LOG_LEVEL_ERROR, LOG_FORMAT_LOGFMT, "test");
    const TTest *const tests[] = {
        compile_one_mapping_one_route_one_cluster,
        compile_duplicate_name_first_service_wins,
        compile_duplicate_name_within_one_annotation,
        compile_same_name_in_two_namespaces_both_live,
        compile_orders_by_ambassador_precedence,
        compile_ties_keep_source_order,
        compile_clusters_are_deduplicated,
        compile_rewrite_and_timeout_defaults,
        compile_errors_are_kept_per_service_in_order,
        compile_table_survives_the_snapshot_round_trip,
        compile_ignores_other_ambassador_ids,
        compile_tables_equal_ignores_only_the_version,
        compile_groups_by_identical_match,
        compile_order_table,
        compile_module_applies_to_every_service,
        compile_second_module_is_an_error,
        compile_tls_clusters_carry_the_server_name,
        compile_compat_fields_round_trip_and_compare,
        NULL,
    };
    return harness_main("compile", 0, setup, teardown, tests);
}
