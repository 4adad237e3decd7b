/* Tests for common/route.c: Ambassador's ordering, the snapshot JSON form and what it refuses. */
#include <check.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "route.h"
#include "route_policy.h"
#include "xalloc.h"

static struct route mk(const char *prefix, int32_t precedence, const char *method, const char *host)
{
    struct route r;
    route_init(&r);
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

/* ---- every field type, through the writer, json-c and the reader ---- */

static char **strs(const char *a, const char *b)
{
    char **v = xcalloc(3, sizeof(*v));
    v[0] = xstrdup(a);
    v[1] = xstrdup(b);
    return v;
}

/* What every route needs, with the model's defaults for the rest. */
static void base_route(struct route *r, const char *mapping, const char *prefix)
{
    route_init(r);
    r->ns = xstrdup("ns");
    r->svc = xstrdup("svc");
    r->mapping = xstrdup(mapping);
    r->prefix = xstrdup(prefix);
    r->case_sensitive = true;
    r->timeout_ms = ROUTE_DEFAULT_TIMEOUT_MS;
}

/* A table built in memory (as the controller builds one) in which every key of every struct is
 * set, to a value other than its default, so that a key lost, misread or miscompared by one
 * of the three views shows. */
static struct route_table *full_table(void)
{
    struct route_table *t = xcalloc(1, sizeof(*t));
    route_settings_init(&t->settings);
    t->version = 9007199254740993ull; /* past a double's integers: kept exactly */
    t->nclusters = 3;
    t->clusters = xcalloc(3, sizeof(*t->clusters));
    const char *names[] = { "a:80", "https://b:443", "c:81~x" };
    for (size_t i = 0; i < 3; i++) {
        struct route_cluster *c = &t->clusters[i];
        c->name = xstrdup(names[i]);
        c->scheme = xstrdup(i == 1 ? "https" : "http");
        c->host = xstrdup(i == 1 ? "b" : "a");
        c->port = (uint16_t)(i == 1 ? 443 : 80 + i);
    }
    struct route_cluster *c = &t->clusters[1];
    c->sni = xstrdup("sni.b");
    c->policy.connect_timeout_ms = 250;
    c->policy.idle_timeout_ms = 1000;
    c->policy.max_lifetime_ms = 60000;
    c->policy.cb = (struct route_circuit_breakers){ true, 1, 2, 3, 0 };
    c->policy.lb = (struct route_lb){ ROUTE_LB_RING_HASH, ROUTE_LB_HASH_COOKIE, xstrdup("sticky"),
                                      xstrdup("/p"), 30 };
    t->clusters[2].policy.lb =
        (struct route_lb){ ROUTE_LB_MAGLEV, ROUTE_LB_HASH_HEADER, xstrdup("x-user"), NULL, 0 };

    t->nroutes = 2;
    t->routes = xcalloc(2, sizeof(*t->routes));
    struct route *r = &t->routes[0];
    base_route(r, "map\"1\\", "/a/(.*)");
    r->prefix_regex = true;
    r->prefix_exact = true;
    r->case_sensitive = false;
    r->method = xstrdup("GET|PUT");
    r->method_regex = true;
    r->host = xstrdup(".*\\.example\\.com");
    r->host_regex = true;
    r->headers = xcalloc(2, sizeof(*r->headers));
    r->headers[0] = (struct route_header){ xstrdup("x-a"), xstrdup("1"), false };
    r->headers[1] = (struct route_header){ xstrdup("x-b"), xstrdup("[0-9]+"), true };
    r->nheaders = 2;
    r->query = xcalloc(1, sizeof(*r->query));
    r->query[0] = (struct route_header){ xstrdup("q"), NULL, false };
    r->nquery = 1;
    r->precedence = -7;
    r->cluster = 1;
    r->rewrite = xstrdup("/b/");
    r->regex_rewrite = (struct route_regex_sub){ xstrdup("^/a/(.*)"), xstrdup("/\\1") };
    r->host_rewrite = xstrdup("b.example");
    r->timeout_ms = 0;
    r->host_redirect = xstrdup("c.example:8443");
    r->redirect_scheme = xstrdup("https");
    r->path_redirect = xstrdup("/moved?x=1");
    r->prefix_redirect = xstrdup("/p/");
    r->regex_redirect = (struct route_regex_sub){ xstrdup("/r"), xstrdup("") };
    r->redirect_code = 308;
    r->add_request_headers = xcalloc(2, sizeof(*r->add_request_headers));
    r->add_request_headers[0] = (struct route_header_add){ xstrdup("x-req"), xstrdup("v"), false };
    r->add_request_headers[1] = (struct route_header_add){ xstrdup("x-req2"), xstrdup(""), true };
    r->nadd_request_headers = 2;
    r->add_response_headers = xcalloc(1, sizeof(*r->add_response_headers));
    r->add_response_headers[0] =
        (struct route_header_add){ xstrdup("x-resp"), xstrdup("\t\x01\x7f\xc3\xa9"), true };
    r->nadd_response_headers = 1;
    r->remove_request_headers = strs("cookie", "x-drop");
    r->nremove_request_headers = 2;
    r->remove_response_headers = strs("server", "x-powered-by");
    r->nremove_response_headers = 2;
    struct route_policy *p = route_policy_mut(r);
    p->group_size = 2;
    p->weight = 60;
    p->idle_timeout_ms = 5000;
    p->retry =
        (struct route_retry){ ROUTE_RETRY_5XX | ROUTE_RETRY_STATUS_CODES, 3, 250, { 409, 418 }, 2 };
    p->cors.enabled = true;
    p->cors.origins = strs("https://a.example", "*");
    p->cors.norigins = 2;
    p->cors.methods = xstrdup("GET, PUT");
    p->cors.headers = xstrdup("x-a");
    p->cors.exposed_headers = xstrdup("x-b");
    p->cors.credentials = true;
    p->cors.max_age = xstrdup("600");
    p->rate_limits.v = xcalloc(1, sizeof(*p->rate_limits.v));
    p->rate_limits.n = 1;
    struct route_rl_descriptor *d = &p->rate_limits.v[0];
    d->domain = xstrdup("ambassador");
    d->name = xstrdup("group");
    d->entries = xcalloc(2, sizeof(*d->entries));
    d->entries[0] = (struct route_rl_entry){ ROUTE_RL_REQUEST_HEADER, xstrdup("user"),
                                             xstrdup("x-user"), true };
    d->entries[1] =
        (struct route_rl_entry){ ROUTE_RL_REMOTE_ADDRESS, xstrdup("remote_address"), NULL, false };
    d->nentries = 2;
    p->local_rl = (struct route_local_rl){ 10, 20 };
    p->upgrades.v = strs("websocket", "h2c");
    p->upgrades.n = 2;
    p->shadow = (struct route_shadow){
        .set = true, .cluster = 2, .percent = 5, .mapping = xstrdup("mirror")
    };
    /* The second route: only what is required, defaults everywhere else. */
    base_route(&t->routes[1], "m2", "/");

    t->nerrors = 1;
    t->errors = xcalloc(1, sizeof(*t->errors));
    t->errors[0] = (struct route_error){
        xstrdup("ns"), xstrdup("bad"), xstrdup("m3"), xstrdup("prefix"), 12, xstrdup("line\nbreak")
    };
    struct route_settings *st = &t->settings;
    st->use_remote_address = false;
    st->xff_num_trusted_hops = 2;
    st->x_forwarded_proto_redirect = true;
    st->merge_slashes = true;
    st->ip_allow = xcalloc(2, sizeof(*st->ip_allow));
    ck_assert_int_eq(route_ip_rule_parse("10.0.0.0/8", false, &st->ip_allow[0]), 0);
    ck_assert_int_eq(route_ip_rule_parse("2001:db8::/32", true, &st->ip_allow[1]), 0);
    st->nip_allow = 2;
    st->ip_deny = xcalloc(1, sizeof(*st->ip_deny));
    ck_assert_int_eq(route_ip_rule_parse("10.1.2.3", false, &st->ip_deny[0]), 0);
    st->nip_deny = 1;
    st->server_name = xstrdup("legate");
    return t;
}

/* The snapshot text as push.c sends it, then read back as proxy/control.c reads it. */
static struct route_table *wire(const struct route_table *t, struct buf *text)
{
    buf_init(text, (size_t)1 << 26);
    ck_assert_int_eq(route_snapshot_write(t, text), 0);
    json_tokener *tok = json_tokener_new();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, text->data, (int)text->len);
    ck_assert_msg(o != NULL && json_tokener_get_parse_end(tok) == text->len, "%s", text->data);
    json_tokener_free(tok);
    char err[256] = "";
    struct route_table *back = NULL;
    ck_assert_msg(route_table_from_json(o, &back, err, sizeof(err)) == 0, "%s", err);
    json_object_put(o);
    return back;
}

START_TEST(route_json_every_field_round_trips)
{
    struct route_table *t = full_table();
    struct buf text, again;
    struct route_table *back = wire(t, &text);
    ck_assert_ptr_nonnull(back->arena);
    ck_assert_uint_eq(back->version, t->version);
    ck_assert(route_table_equal(t, back));
    /* The proxy writes back exactly what it read (its /routes page uses the same form). */
    struct route_table *twice = wire(back, &again);
    ck_assert_uint_eq(again.len, text.len);
    ck_assert(memcmp(again.data, text.data, text.len) == 0);
    ck_assert(route_table_equal(back, twice));

    /* Byte for byte what json-c prints for the tree, with push.c's two keys. */
    json_object *o = route_table_to_json(t);
    json_object_object_add(o, "type", json_object_new_string("snapshot"));
    json_object_object_add(o, "protocol", json_object_new_int(ROUTE_PROTOCOL_VERSION));
    size_t len = 0;
    const char *js = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    ck_assert_uint_eq(len, text.len);
    ck_assert_str_eq(js, text.data);
    json_object_put(o);

    /* A few keys spelled out, so the form itself is pinned and not only its symmetry. */
    static const char *const pinned[] = {
        "{\"version\":9007199254740993,\"routes\":[{\"namespace\":\"ns\"",
        "\"mapping\":\"map\\\"1\\\\\"",
        "\"prefix_regex\":true,\"prefix_exact\":true,\"case_sensitive\":false,"
        "\"method\":\"GET|PUT\",\"method_regex\":true",
        "\"headers\":[{\"name\":\"x-a\",\"value\":\"1\"},{\"name\":\"x-b\",\"value\":\"[0-9]+\","
        "\"regex\":true}],\"query_parameters\":[{\"name\":\"q\"}],\"precedence\":-7,"
        "\"cluster\":\"https://b:443\"",
        "\"regex_rewrite\":{\"pattern\":\"^/a/(.*)\",\"substitution\":\"/\\\\1\"}",
        "\"timeout_ms\":0,",
        "\"regex_redirect\":{\"pattern\":\"/r\",\"substitution\":\"\"},"
        "\"redirect_response_code\":308",
        "\"add_response_headers\":[{\"name\":\"x-resp\",\"value\":\"\\t\\u0001\x7f\xc3\xa9\","
        "\"append\":true}]",
        "\"remove_request_headers\":[\"cookie\",\"x-drop\"]",
        "\"retry_policy\":{\"retry_on\":[\"5xx\",\"retriable-status-codes\"],\"num_retries\":3,"
        "\"per_try_timeout_ms\":250,\"retriable_status_codes\":[409,418]}",
        "\"shadow\":{\"cluster\":\"c:81~x\",\"percent\":5,\"mapping\":\"mirror\"}}",
        "{\"namespace\":\"ns\",\"service\":\"svc\",\"mapping\":\"m2\",\"prefix\":\"/\","
        "\"prefix_regex\":false,\"prefix_exact\":false,\"case_sensitive\":true,\"precedence\":0,"
        "\"cluster\":\"a:80\",\"timeout_ms\":3000}]",
        "\"load_balancer\":{\"policy\":\"ring_hash\",\"cookie\":{\"name\":\"sticky\",\"path\":\"/"
        "p\","
        "\"ttl_s\":30}}",
        "\"load_balancer\":{\"policy\":\"maglev\",\"header\":\"x-user\"}",
        "\"line\":12,\"message\":\"line\\nbreak\"",
        "\"ip_allow\":[{\"peer\":\"10.0.0.0/8\"},{\"remote\":\"2001:db8::/32\"}],"
        "\"ip_deny\":[{\"peer\":\"10.1.2.3/32\"}],\"server_name\":\"legate\"},"
        "\"type\":\"snapshot\",\"protocol\":1}",
    };
    for (size_t i = 0; i < ARRAY_SIZE(pinned); i++)
        ck_assert_msg(strstr(text.data, pinned[i]) != NULL, "missing %s in %s", pinned[i],
                      text.data);

    /* Comparing sees a difference in any one field, of either table kind. */
    route_policy_mut(&back->routes[0])->retry.codes[1] = 419;
    ck_assert(!route_table_equal(t, back));
    route_policy_mut(&back->routes[0])->retry.codes[1] = 418;
    back->settings.ip_deny[0].remote = true;
    ck_assert(!route_table_equal(t, back));
    back->settings.ip_deny[0].remote = false;
    back->routes[0].headers[1].regex = false;
    ck_assert(!route_table_equal(t, back));
    back->routes[0].headers[1].regex = true;
    ck_assert(route_table_equal(t, back));

    buf_free(&text);
    buf_free(&again);
    route_table_free(twice);
    route_table_free(back);
    route_table_free(t);
}
END_TEST

START_TEST(route_json_writer_escapes_like_json_c)
{
    /* Every ASCII byte but NUL, and UTF-8 of two to four bytes (the proxy reads only valid
     * UTF-8), in a string the writer and json-c both print. */
    char all[160];
    for (int i = 1; i < 128; i++)
        all[i - 1] = (char)i;
    snprintf(all + 127, sizeof(all) - 127, "%s", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    struct route_table *t = full_table();
    free(t->routes[1].mapping);
    t->routes[1].mapping = xstrdup(all);
    struct buf text;
    struct route_table *back = wire(t, &text);
    ck_assert_str_eq(back->routes[1].mapping, all);
    json_object *o = route_table_to_json(t);
    json_object_object_add(o, "type", json_object_new_string("snapshot"));
    json_object_object_add(o, "protocol", json_object_new_int(ROUTE_PROTOCOL_VERSION));
    ck_assert_str_eq(
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
        text.data);
    json_object_put(o);
    buf_free(&text);
    route_table_free(back);
    route_table_free(t);
}
END_TEST

START_TEST(route_json_read_interns_repeated_strings)
{
    char err[256] = "";
    int rc;
    char *text = edit("\"namespace\":\"ns2\",\"service\":\"s2\"",
                      "\"namespace\":\"default\",\"service\":\"httpbin\",\"rewrite\":\"/\"");
    struct route_table *t = load(text, err, sizeof(err), &rc);
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_ptr_nonnull(t->arena);
    /* One copy of each repeated text, whatever field it is in. */
    ck_assert_str_eq(t->routes[1].ns, "default");
    ck_assert_ptr_eq(t->routes[0].ns, t->routes[1].ns);
    ck_assert_ptr_eq(t->routes[0].svc, t->routes[1].svc);
    ck_assert_ptr_eq(t->routes[0].rewrite, t->routes[1].rewrite);
    ck_assert_ptr_eq(t->routes[0].ns, t->errors[0].ns);
    ck_assert_ptr_ne(t->routes[0].mapping, t->routes[1].mapping);
    route_table_free(t);
    free(text);
}
END_TEST

START_TEST(route_policy_is_shared_until_written)
{
    static const struct route_policy zero;
    struct route r;
    route_init(&r);
    ck_assert_ptr_eq(r.policy, &route_policy_none);
    /* Writing gives the route its own copy; the shared one stays empty. */
    struct route_policy *p = route_policy_mut(&r);
    ck_assert_ptr_ne(p, &route_policy_none);
    ck_assert_ptr_eq(r.policy, p);
    ck_assert(memcmp(p, &zero, sizeof(zero)) == 0);
    p->weight = 7;
    p->upgrades.v = strs("websocket", "h2c");
    p->upgrades.n = 2;
    ck_assert_ptr_eq(route_policy_mut(&r), p);
    ck_assert_uint_eq(r.policy->weight, 7);
    ck_assert(memcmp(&route_policy_none, &zero, sizeof(zero)) == 0);
    route_free_fields(&r); /* frees the copy and its strings (ASan checks) */
    ck_assert_ptr_eq(r.policy, &route_policy_none);
    route_free_fields(&r); /* never the shared one */

    /* Read from JSON: routes without a policy key share it, the others own one in the arena. */
    struct buf text;
    struct route_table *t = full_table();
    struct route_table *back = wire(t, &text);
    ck_assert_ptr_eq(t->routes[1].policy, &route_policy_none);
    ck_assert_ptr_eq(back->routes[1].policy, &route_policy_none);
    ck_assert_ptr_ne(back->routes[0].policy, &route_policy_none);
    ck_assert_ptr_ne(back->routes[0].policy, t->routes[0].policy);
    buf_free(&text);
    route_table_free(back);
    route_table_free(t);

    /* Compared by value: a policy of its own that sets nothing equals the shared one. */
    char err[256] = "";
    int rc;
    struct route_table *plain = load(example, err, sizeof(err), &rc);
    ck_assert_msg(rc == 0, "%s", err);
    char *text0 = edit("\"cluster\":\"b:8080\"", "\"cluster\":\"b:8080\",\"weight\":0");
    char *text5 = edit("\"cluster\":\"b:8080\"", "\"cluster\":\"b:8080\",\"weight\":5");
    struct route_table *own0 = load(text0, err, sizeof(err), &rc);
    ck_assert_msg(rc == 0, "%s", err);
    struct route_table *own5 = load(text5, err, sizeof(err), &rc);
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_ptr_eq(plain->routes[1].policy, &route_policy_none);
    ck_assert_ptr_ne(own0->routes[1].policy, &route_policy_none);
    ck_assert_uint_eq(own5->routes[1].policy->weight, 5);
    ck_assert(route_table_equal(plain, own0));
    ck_assert(route_table_equal(own0, plain));
    ck_assert(!route_table_equal(plain, own5));
    ck_assert(!route_table_equal(own5, own0));
    route_table_free(plain);
    route_table_free(own0);
    route_table_free(own5);
    free(text0);
    free(text5);
}
END_TEST

START_TEST(route_snapshot_write_stops_at_the_cap)
{
    struct route_table *t = full_table();
    struct buf b;
    buf_init(&b, 100);
    ck_assert_int_eq(buf_append_str(&b, "head"), 0);
    ck_assert_int_eq(route_snapshot_write(t, &b), -E2BIG);
    /* Nothing of the partial text stays behind. */
    ck_assert_uint_eq(b.len, 4);
    ck_assert_str_eq(b.data, "head");
    buf_free(&b);
    route_table_free(t);
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
    tcase_add_test(tc, route_json_every_field_round_trips);
    tcase_add_test(tc, route_json_writer_escapes_like_json_c);
    tcase_add_test(tc, route_json_read_interns_repeated_strings);
    tcase_add_test(tc, route_policy_is_shared_until_written);
    tcase_add_test(tc, route_snapshot_write_stops_at_the_cap);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
