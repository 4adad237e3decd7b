/* Tests for the traffic-policy fields on the controller side: controller/annotation_policy.c
 * (the parsers), controller/groups.c (canary groups and shadows) and the policy part of the
 * route JSON form (common/route_policy.c). */
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "annotation.h"
#include "compile.h"
#include "harness.h"
#include "route.h"
#include "route_policy.h"
#include "xalloc.h"

static struct cache cache;
static struct compile_result *result;
static struct annotation_result res;

static void setup(void)
{
    cache_init(&cache, NULL, NULL);
    result = NULL;
    memset(&res, 0, sizeof(res));
}

static void teardown(void)
{
    compile_result_free(result);
    cache_free(&cache);
    annotation_result_free(&res);
}

static void put(const char *ns, const char *name, const char *annotation)
{
    struct cache_object o = {
        .ns = ns, .name = name, .uid = "u", .annotation = annotation, .origin = "test"
    };
    cache_upsert(&cache, &o);
}

static const struct route_table *run(void)
{
    struct compile_opts o = { .ambassador_id = "default", .version = 7 };
    compile_result_free(result);
    result = compile_run(&cache, &o);
    return result->table;
}

#define HDR "apiVersion: ambassador/v1\nkind: Mapping\n"

/* One Mapping document; extra is appended. Returns a static buffer (one of 16). */
static const char *doc(const char *name, const char *prefix, const char *service, const char *extra)
{
    static char bufs[16][2048];
    static int next;
    char *b = bufs[next++ % 16];
    snprintf(b, 2048, HDR "name: %s\nprefix: %s\nservice: %s\n%s", name, prefix, service,
             extra ? extra : "");
    return b;
}

static void parse(const char *text)
{
    struct annotation_opts o = { .ns = "ns", .svc = "svc", .ambassador_id = "default" };
    annotation_result_free(&res);
    annotation_parse(text, strlen(text), &o, &res);
}

static const struct route *route_named(const struct route_table *t, const char *name)
{
    for (size_t i = 0; i < t->nroutes; i++)
        if (strcmp(t->routes[i].mapping, name) == 0)
            return &t->routes[i];
    return NULL;
}

static void assert_has(const char *s, const char *part)
{
    ck_assert_msg(s != NULL && strstr(s, part) != NULL, "\"%s\" does not hold \"%s\"", s, part);
}

/* ---- canary groups ---- */

START_TEST(policy_weights_split_and_members_follow_their_leader)
{
    /* Group /c/ (c1 weighted 30, c2 and c3 unweighted) interleaved in source order with group
     * /d/ (d1, d2): same prefix length and weight, so route_sort alone would mix them. */
    put("ns", "s1", doc("c1", "/c/", "a", "weight: 30\n"));
    put("ns", "s2", doc("d1", "/d/", "b", NULL));
    put("ns", "s3", doc("c2", "/c/", "c", NULL));
    put("ns", "s4", doc("d2", "/d/", "d", "weight: 100\n"));
    put("ns", "s5", doc("c3", "/c/", "e", NULL));
    const struct route_table *t = run();
    ck_assert_uint_eq(t->nerrors, 0);
    ck_assert_uint_eq(t->nroutes, 5);
    /* route_sort puts /d/ before /c/ (prefix descending); each group is then contiguous. */
    const char *want[] = { "d1", "d2", "c1", "c2", "c3" };
    for (size_t i = 0; i < 5; i++)
        ck_assert_str_eq(t->routes[i].mapping, want[i]);
    ck_assert_uint_eq(t->routes[0].policy->group_size, 2);
    ck_assert_uint_eq(t->routes[0].policy->weight, 0); /* d2 takes 100 of 100 */
    ck_assert_uint_eq(t->routes[1].policy->weight, 100);
    ck_assert_uint_eq(t->routes[1].policy->group_size, 0);
    ck_assert_uint_eq(t->routes[2].policy->group_size, 3);
    ck_assert_uint_eq(t->routes[2].policy->weight, 30);
    ck_assert_uint_eq(t->routes[3].policy->weight, 35);
    ck_assert_uint_eq(t->routes[4].policy->weight, 35);
    /* Each member keeps its own cluster. */
    ck_assert_str_eq(t->clusters[t->routes[3].cluster].host, "c");
    ck_assert_str_eq(t->clusters[t->routes[4].cluster].host, "e");
}
END_TEST

START_TEST(policy_weight_over_100_refuses_only_the_offender)
{
    put("ns", "s1", doc("a", "/w/", "a", "weight: 60\n"));
    put("ns", "s2", doc("b", "/w/", "b", "weight: 50\n"));
    put("ns", "s3", doc("c", "/w/", "c", "weight: 40\n"));
    const struct route_table *t = run();
    ck_assert_uint_eq(t->nerrors, 1);
    ck_assert_str_eq(t->errors[0].mapping, "b");
    ck_assert_str_eq(t->errors[0].svc, "s2");
    ck_assert_str_eq(t->errors[0].field, "weight");
    assert_has(t->errors[0].message, "to 110, over 100");
    ck_assert_uint_eq(t->nroutes, 2);
    ck_assert_str_eq(t->routes[0].mapping, "a");
    ck_assert_uint_eq(t->routes[0].policy->weight, 60);
    ck_assert_uint_eq(t->routes[1].policy->weight, 40);
    /* The error is in s2's range of the table's errors. */
    const struct compile_service *cs = compile_find_service(result, "ns", "s2");
    ck_assert_uint_eq(cs->nerrors, 1);
    ck_assert_uint_eq(compile_find_service(result, "ns", "s1")->nerrors, 0);
}
END_TEST

START_TEST(policy_weight_shares_edge_cases)
{
    /* A lone weighted Mapping is plain. */
    put("ns", "s1", doc("lone", "/l/", "a", "weight: 10\n"));
    /* All weighted, under 100: relative. */
    put("ns", "s2", doc("r1", "/r/", "a", "weight: 10\n"));
    put("ns", "s3", doc("r2", "/r/", "b", "weight: 30\n"));
    /* Weighted to 100 with an unweighted member: it gets 0. */
    put("ns", "s4", doc("z1", "/z/", "a", "weight: 100\n"));
    put("ns", "s5", doc("z2", "/z/", "b", NULL));
    const struct route_table *t = run();
    ck_assert_uint_eq(t->nerrors, 0);
    const struct route *lone = route_named(t, "lone");
    /* Nothing of the route's policy is set: it shares the empty one. */
    ck_assert_ptr_eq(lone->policy, &route_policy_none);
    ck_assert_ptr_ne(route_named(t, "r1")->policy, route_named(t, "r2")->policy);
    ck_assert_uint_eq(lone->policy->group_size, 0);
    ck_assert_uint_eq(lone->policy->weight, 0);
    ck_assert_uint_eq(route_named(t, "r1")->policy->weight, 25);
    ck_assert_uint_eq(route_named(t, "r2")->policy->weight, 75);
    ck_assert_uint_eq(route_named(t, "r1")->policy->group_size, 2);
    ck_assert_uint_eq(route_named(t, "z1")->policy->weight, 100);
    ck_assert_uint_eq(route_named(t, "z2")->policy->weight, 0);
}
END_TEST

START_TEST(policy_shadow_attaches_to_the_group_leader)
{
    put("ns", "s1", doc("main", "/s/", "a:8080", NULL));
    put("ns", "s2", doc("mirror", "/s/", "m:9000", "shadow: true\nweight: 20\n"));
    put("ns", "s3", doc("orphan", "/o/", "o:9000", "shadow: true\n"));
    put("ns", "s4", doc("mirror2", "/s/", "m2", "shadow: true\n"));
    const struct route_table *t = run();
    ck_assert_uint_eq(t->nroutes, 1);
    const struct route *r = &t->routes[0];
    ck_assert_str_eq(r->mapping, "main");
    ck_assert(r->policy->shadow.set);
    ck_assert_uint_eq(r->policy->shadow.percent, 20);
    ck_assert_str_eq(r->policy->shadow.mapping, "mirror");
    ck_assert_str_eq(t->clusters[r->policy->shadow.cluster].name, "m:9000");
    ck_assert_uint_eq(r->policy->group_size, 0); /* a shadow is not a member */
    /* A second shadow of the group is an error; a shadow with nothing to mirror a warning. */
    ck_assert_uint_eq(t->nerrors, 1);
    ck_assert_str_eq(t->errors[0].mapping, "mirror2");
    assert_has(t->errors[0].message, "at most one shadow");
    const struct compile_service *cs = compile_find_service(result, "ns", "s3");
    ck_assert_uint_eq(cs->nwarnings, 1);
    assert_has(cs->warnings[0].message, "no Mapping matches the same requests");
    ck_assert_uint_eq(result->nwarnings, 1);
    /* The orphan's upstream is not a cluster. */
    for (size_t i = 0; i < t->nclusters; i++)
        ck_assert_str_ne(t->clusters[i].host, "o");
}
END_TEST

/* ---- clusters and the Module ---- */

START_TEST(policy_cluster_policy_splits_clusters)
{
    put("ns", "s1", doc("a", "/a/", "up:80", NULL));
    put("ns", "s2",
        doc("b", "/b/", "up:80",
            "circuit_breakers:\n- max_connections: 2\n  max_requests: 5\n"
            "connect_timeout_ms: 500\ncluster_idle_timeout_ms: 1000\n"
            "cluster_max_connection_lifetime_ms: 9000\n"
            "load_balancer:\n  policy: ring_hash\n  header: X-User\n"));
    put("ns", "s3", doc("c", "/c/", "up:80", "connect_timeout_ms: 3000\n")); /* the default */
    const struct route_table *t = run();
    ck_assert_uint_eq(t->nerrors, 0);
    ck_assert_uint_eq(t->nclusters, 2);
    const struct route_cluster *ca = &t->clusters[route_named(t, "a")->cluster];
    const struct route_cluster *cb = &t->clusters[route_named(t, "b")->cluster];
    ck_assert_ptr_eq(ca, &t->clusters[route_named(t, "c")->cluster]);
    ck_assert_str_eq(ca->name, "up:80");
    ck_assert_msg(strncmp(cb->name, "up:80~", 6) == 0 && strlen(cb->name) == 14, "%s", cb->name);
    ck_assert(cb->policy.cb.set);
    ck_assert_uint_eq(cb->policy.cb.max_connections, 2);
    ck_assert_uint_eq(cb->policy.cb.max_requests, 5);
    ck_assert_uint_eq(cb->policy.cb.max_pending_requests, ROUTE_CB_DEFAULT_MAX);
    ck_assert_uint_eq(cb->policy.cb.max_retries, ROUTE_CB_DEFAULT_MAX_RETRIES);
    ck_assert_uint_eq(cb->policy.connect_timeout_ms, 500);
    ck_assert_uint_eq(cb->policy.idle_timeout_ms, 1000);
    ck_assert_uint_eq(cb->policy.max_lifetime_ms, 9000);
    ck_assert_uint_eq(cb->policy.lb.policy, ROUTE_LB_RING_HASH);
    ck_assert_uint_eq(cb->policy.lb.hash_on, ROUTE_LB_HASH_HEADER);
    ck_assert_str_eq(cb->policy.lb.key, "x-user");
    /* Cluster policy only: the routes have none of their own. */
    ck_assert_ptr_eq(route_named(t, "b")->policy, &route_policy_none);
}
END_TEST

START_TEST(policy_module_defaults_fill_what_mappings_leave_out)
{
    put("ns", "mod",
        "apiVersion: getambassador.io/v2\nkind: Module\nname: ambassador\nconfig:\n"
        "  retry_policy:\n    retry_on: 5xx\n    num_retries: 3\n"
        "  cors:\n    origins: http://a.example\n"
        "  circuit_breakers:\n  - max_requests: 7\n"
        "  cluster_idle_timeout_ms: 1234\n");
    put("ns", "s1", doc("own", "/own/", "up", "retry_policy:\n  retry_on: connect-failure\n"));
    put("ns", "s2", doc("def", "/def/", "up", NULL));
    const struct route_table *t = run();
    ck_assert_uint_eq(t->nerrors, 0);
    const struct route *own = route_named(t, "own"), *def = route_named(t, "def");
    ck_assert_uint_eq(own->policy->retry.on, ROUTE_RETRY_CONNECT_FAILURE);
    ck_assert_uint_eq(own->policy->retry.num_retries, 1);
    ck_assert_uint_eq(def->policy->retry.on, ROUTE_RETRY_5XX);
    ck_assert_uint_eq(def->policy->retry.num_retries, 3);
    ck_assert(own->policy->cors.enabled && def->policy->cors.enabled);
    ck_assert_str_eq(def->policy->cors.origins[0], "http://a.example");
    const struct route_cluster *c = &t->clusters[def->cluster];
    ck_assert_uint_eq(c->policy.cb.max_requests, 7);
    ck_assert_uint_eq(c->policy.idle_timeout_ms, 1234);
}
END_TEST

/* ---- parsers ---- */

START_TEST(policy_fields_parse)
{
    parse(doc("m", "/p/", "up",
              "retry_policy:\n  retry_on: \"gateway-error, retriable-status-codes\"\n"
              "  num_retries: 4\n  per_try_timeout: 1.5s\n  retriable_status_codes: [409, 418]\n"
              "idle_timeout_ms: 250\n"
              "cors:\n  origins: \"http://a.example, https://b.example:8443\"\n"
              "  methods: [GET, POST]\n  headers: X-A,X-B\n  exposed_headers: X-C\n"
              "  credentials: true\n  max_age: 600\n"
              "labels:\n  ambassador:\n  - by_user:\n    - remote_address\n    - x-user\n"
              "    - generic_key: {value: gold}\n"
              "    - request_headers: {header_name: X-Team, key: team, omit_if_not_present: true}\n"
              "legate_rate_limit: {requests_per_second: 5}\n"
              "use_websocket: true\nallow_upgrade: [WebSocket, h2c]\n"));
    ck_assert_msg(res.nerrors == 0, "%s", res.nerrors ? res.errors[0].message : "");
    ck_assert_uint_eq(res.nmappings, 1);
    const struct route_policy *p = res.mappings[0].route.policy;
    ck_assert_uint_eq(p->retry.on, ROUTE_RETRY_GATEWAY_ERROR | ROUTE_RETRY_STATUS_CODES);
    ck_assert_uint_eq(p->retry.num_retries, 4);
    ck_assert_uint_eq(p->retry.per_try_timeout_ms, 1500);
    ck_assert_uint_eq(p->retry.ncodes, 2);
    ck_assert_uint_eq(p->retry.codes[1], 418);
    ck_assert_uint_eq(p->idle_timeout_ms, 250);
    ck_assert_uint_eq(p->cors.norigins, 2);
    ck_assert_str_eq(p->cors.origins[1], "https://b.example:8443");
    ck_assert_str_eq(p->cors.methods, "GET, POST");
    ck_assert_str_eq(p->cors.headers, "X-A, X-B");
    ck_assert_str_eq(p->cors.max_age, "600");
    ck_assert(p->cors.credentials);
    ck_assert_uint_eq(p->rate_limits.n, 1);
    const struct route_rl_descriptor *d = &p->rate_limits.v[0];
    ck_assert_str_eq(d->domain, "ambassador");
    ck_assert_str_eq(d->name, "by_user");
    ck_assert_uint_eq(d->nentries, 4);
    ck_assert_int_eq(d->entries[0].kind, ROUTE_RL_REMOTE_ADDRESS);
    ck_assert_int_eq(d->entries[1].kind, ROUTE_RL_REQUEST_HEADER);
    ck_assert_str_eq(d->entries[1].value, "x-user");
    ck_assert_int_eq(d->entries[2].kind, ROUTE_RL_GENERIC_KEY);
    ck_assert_str_eq(d->entries[2].value, "gold");
    ck_assert_str_eq(d->entries[3].key, "team");
    ck_assert_str_eq(d->entries[3].value, "x-team");
    ck_assert(d->entries[3].omit_if_absent);
    ck_assert_uint_eq(p->local_rl.rps, 5);
    ck_assert_uint_eq(p->local_rl.burst, 5);
    ck_assert_uint_eq(p->upgrades.n, 2);
    ck_assert_str_eq(p->upgrades.v[0], "websocket");
    ck_assert_str_eq(p->upgrades.v[1], "h2c");

    /* v0 rate_limits. */
    parse(doc("m", "/p/", "up", "rate_limits:\n- descriptor: A test\n  headers: [X-One, x-two]\n"));
    ck_assert_uint_eq(res.nerrors, 0);
    d = &res.mappings[0].route.policy->rate_limits.v[0];
    ck_assert_uint_eq(d->nentries, 3);
    ck_assert_str_eq(d->entries[0].value, "A test");
    ck_assert_str_eq(d->entries[1].key, "X-One");
    ck_assert_str_eq(d->entries[1].value, "x-one");
}
END_TEST

START_TEST(policy_field_errors)
{
    static const struct {
        const char *extra, *field, *part;
    } cases[] = {
        { "weight: 101\n", "weight", "weight: expected 0 to 100 percent, got 101" },
        { "weight: heavy\n", "weight", "expected an integer" },
        { "retry_policy:\n  retry_on: 6xx\n", "retry_policy.retry_on",
          "unknown condition \"6xx\"" },
        { "retry_policy:\n  num_retries: 1\n", "retry_policy.retry_on", "missing required" },
        { "retry_policy:\n  retry_on: 5xx\n  per_try_timeout: 250\n",
          "retry_policy.per_try_timeout", "expected a duration" },
        { "retry_policy:\n  retry_on: 5xx\n  num_retries: 11\n", "retry_policy.num_retries",
          "expected 0 to 10" },
        { "retry_policy:\n  retry_on: retriable-status-codes\n",
          "retry_policy.retriable_status_codes", "needs retriable_status_codes" },
        { "retry_policy:\n  retry_on: 5xx\n  retries: 2\n", "retry_policy", "unknown key" },
        { "circuit_breakers:\n- priority: urgent\n", "circuit_breakers.priority",
          "expected default or high" },
        { "circuit_breakers: {max_connections: 1}\n", "circuit_breakers", "expected a list" },
        { "load_balancer:\n  policy: round_robin\n  header: x\n", "load_balancer",
          "need policy ring_hash or maglev" },
        { "load_balancer:\n  policy: ring_hash\n", "load_balancer", "needs one of" },
        { "load_balancer:\n  policy: random\n", "load_balancer.policy", "expected round_robin" },
        { "cors:\n  origins: example.com\n", "cors.origins", "\"example.com\" is not valid" },
        { "cors:\n  methods: \"GET, P OST\"\n", "cors.methods", "is not valid" },
        { "cors:\n  max_age: soon\n", "cors.max_age", "expected a number of seconds" },
        { "labels:\n  ambassador:\n  - g:\n    - {frobnicate: {a: b}}\n", "labels",
          "unknown label kind \"frobnicate\"" },
        { "rate_limits: {descriptor: x}\n", "rate_limits", "a list of" },
        { "legate_rate_limit: {burst: 3}\n", "legate_rate_limit.requests_per_second",
          "missing required" },
        { "legate_rate_limit: {requests_per_second: 0}\n", "legate_rate_limit.requests_per_second",
          "expected 1 to 1000000" },
        { "allow_upgrade: [\"web socket\"]\n", "allow_upgrade", "not a protocol name" },
        { "use_websocket: maybe\n", "use_websocket", "expected a boolean" },
        { "idle_timeout_ms: -1\n", "idle_timeout_ms", "expected 0 to" },
        { "shadow: yes please\n", "shadow", "expected a boolean" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        parse(doc("m", "/p/", "up", cases[i].extra));
        ck_assert_msg(res.nmappings == 0 && res.nerrors >= 1, "case %zu accepted", i);
        ck_assert_msg(strcmp(res.errors[0].field, cases[i].field) == 0, "case %zu: field %s", i,
                      res.errors[0].field);
        ck_assert_msg(strstr(res.errors[0].message, cases[i].part) != NULL, "case %zu: %s", i,
                      res.errors[0].message);
        ck_assert_str_eq(res.errors[0].mapping, "m");
        ck_assert_int_gt(res.errors[0].line, 4);
    }
}
END_TEST

START_TEST(policy_high_priority_breaker_is_a_warning)
{
    parse(doc("m", "/p/", "up",
              "circuit_breakers:\n- priority: high\n  max_connections: 9\n- max_connections: 3\n"));
    ck_assert_uint_eq(res.nerrors, 0);
    ck_assert_uint_eq(res.nwarnings, 1);
    assert_has(res.warnings[0].message, "priority high entry is ignored");
    ck_assert_uint_eq(res.mappings[0].policy.cluster.cb.max_connections, 3);
}
END_TEST

/* ---- the JSON form ---- */

START_TEST(policy_json_round_trip)
{
    put("ns", "s1",
        doc("a", "/j/", "up",
            "weight: 30\nidle_timeout_ms: 99\n"
            "retry_policy: {retry_on: \"5xx,reset\", num_retries: 2, per_try_timeout: 2s}\n"
            "cors: {origins: \"*\", methods: GET, credentials: false, max_age: \"60\"}\n"
            "labels:\n  ambassador:\n  - g:\n    - remote_address\n    - destination_cluster\n"
            "legate_rate_limit: {requests_per_second: 3, burst: 9}\n"
            "allow_upgrade: [websocket]\n"
            "circuit_breakers: [{max_requests: 4}]\n"
            "load_balancer: {policy: maglev, cookie: {name: sess, path: /, ttl: 60s}}\n"));
    put("ns", "s2", doc("b", "/j/", "other", NULL));
    put("ns", "s3", doc("c", "/j/", "shadowed", "shadow: true\n"));
    put("ns", "s4", doc("d", "/k/", "up", "load_balancer: {policy: ring_hash, source_ip: true}\n"));
    const struct route_table *t = run();
    ck_assert_uint_eq(t->nerrors, 0);
    json_object *o = route_table_to_json(t);
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    assert_has(text, "\"group_size\":2");
    assert_has(text, "\"weight\":70");
    assert_has(text, "\"retry_on\":[\"5xx\",\"reset\"]");
    assert_has(text, "\"shadow\":{\"cluster\":\"shadowed:80\",\"percent\":100");
    assert_has(text, "\"legate_rate_limit\":{\"requests_per_second\":3,\"burst\":9}");
    assert_has(text, "\"cookie\":{\"name\":\"sess\",\"path\":\"\\/\",\"ttl_s\":60}");
    json_object *parsed = json_tokener_parse(text);
    json_object_put(o);
    struct route_table *back = NULL;
    char err[256] = "";
    ck_assert_msg(route_table_from_json(parsed, &back, err, sizeof(err)) == 0, "%s", err);
    ck_assert(route_table_equal(t, back));
    /* A change in one nested policy field is seen (in a's policy: its own, in the arena). */
    struct route *ra = &back->routes[route_named(back, "a") - back->routes];
    ck_assert_ptr_ne(ra->policy, &route_policy_none);
    route_policy_mut(ra)->retry.num_retries++;
    ck_assert(!route_table_equal(t, back));
    route_table_free(back);
    json_object_put(parsed);
}
END_TEST

START_TEST(policy_json_rejections)
{
    static const struct {
        const char *route_extra, *cluster_extra, *part;
    } cases[] = {
        { ",\"retry_policy\":{\"retry_on\":[\"6xx\"]}", "", "retry_on[0]: unknown condition" },
        { ",\"retry_policy\":{\"retry_on\":[\"5xx\"],\"x\":1}", "", "unknown key \"x\"" },
        { ",\"cors\":{\"methods\":\"GET\\r\\nX: y\"}", "", "line break" },
        { ",\"shadow\":{\"cluster\":\"nope:80\"}", "", "unknown cluster \"nope:80\"" },
        { ",\"legate_rate_limit\":{\"burst\":2}", "", "missing \"requests_per_second\"" },
        { ",\"rate_limits\":[{\"domain\":\"d\",\"entries\":[{\"kind\":\"odd\",\"key\":\"k\"}]}]",
          "", "unknown kind \"odd\"" },
        { ",\"weight\":-1", "", "routes[0].weight: wrong type" },
        { "", ",\"load_balancer\":{\"policy\":\"round_robin\",\"header\":\"x\"}",
          "needs policy ring_hash or maglev" },
        { "", ",\"circuit_breakers\":{\"max_requests\":\"many\"}",
          "max_requests: expected an integer" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char text[1024];
        snprintf(
            text, sizeof(text),
            "{\"version\":1,\"routes\":[{\"namespace\":\"n\",\"service\":\"s\","
            "\"mapping\":\"m\",\"prefix\":\"/\",\"cluster\":\"u:80\"%s}],"
            "\"clusters\":[{\"name\":\"u:80\",\"scheme\":\"http\",\"host\":\"u\",\"port\":80%s}],"
            "\"errors\":[]}",
            cases[i].route_extra, cases[i].cluster_extra);
        json_object *o = json_tokener_parse(text);
        ck_assert_msg(o != NULL, "case %zu is not JSON", i);
        struct route_table *t = (struct route_table *)1;
        char err[256] = "";
        ck_assert_msg(route_table_from_json(o, &t, err, sizeof(err)) != 0, "case %zu accepted", i);
        ck_assert_ptr_null(t);
        ck_assert_msg(strstr(err, cases[i].part) != NULL, "case %zu: %s", i, err);
        json_object_put(o);
    }
}
END_TEST

START_TEST(policy_duration_parse)
{
    static const struct {
        const char *text;
        int rc;
        uint32_t ms;
    } cases[] = {
        { "250ms", 0, 250 }, { "1s", 0, 1000 },    { "1.5s", 0, 1500 }, { "0.25s", 0, 250 },
        { "2m", 0, 120000 }, { "1h", 0, 3600000 }, { "1", -1, 0 },      { "s", -1, 0 },
        { "1.s", -1, 0 },    { "-1s", -1, 0 },     { "1e3ms", -1, 0 },  { "5000000h", -1, 0 },
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        uint32_t ms = 0;
        int rc = route_duration_parse(cases[i].text, &ms);
        ck_assert_msg((rc == 0) == (cases[i].rc == 0), "%s: rc %d", cases[i].text, rc);
        if (rc == 0)
            ck_assert_msg(ms == cases[i].ms, "%s: %u", cases[i].text, ms);
    }
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {
        policy_weights_split_and_members_follow_their_leader,
        policy_weight_over_100_refuses_only_the_offender,
        policy_weight_shares_edge_cases,
        policy_shadow_attaches_to_the_group_leader,
        policy_cluster_policy_splits_clusters,
        policy_module_defaults_fill_what_mappings_leave_out,
        policy_fields_parse,
        policy_field_errors,
        policy_high_priority_breaker_is_a_warning,
        policy_json_round_trip,
        policy_json_rejections,
        policy_duration_parse,
        NULL,
    };
    return harness_main("policy_compile", 0, setup, teardown, tests);
}
