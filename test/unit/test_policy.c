/* Tests for the proxy's traffic-policy decisions: proxy/policy.c (canary choice, gauges,
 * token buckets, retry decisions, state carried across snapshots, /metrics) and proxy/cors.c.
 * No sockets: the decisions are functions of their inputs. */
#include <check.h>
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cors.h"
#include "harness.h"
#include "lb.h"
#include "policy.h"
#include "route.h"
#include "route_policy.h"
#include "xalloc.h"

/* A table from the snapshot JSON text (the test's fixture format). */
static struct route_table *table(const char *text)
{
    json_object *o = json_tokener_parse(text);
    ck_assert_ptr_nonnull(o);
    struct route_table *t = NULL;
    char err[256] = "";
    int rc = route_table_from_json(o, &t, err, sizeof(err));
    json_object_put(o);
    ck_assert_msg(rc == 0, "%s", err);
    return t;
}

#define ROUTE(m, extra)                                                                            \
    "{\"namespace\":\"ns\",\"service\":\"s\",\"mapping\":\"" m "\",\"prefix\":\"/c/\","            \
    "\"cluster\":\"u:80\"" extra "}"
#define TABLE(routes)                                                                              \
    "{\"version\":1,\"routes\":[" routes "],\"clusters\":[{\"name\":\"u:80\",\"scheme\":\"http\"," \
    "\"host\":\"u\",\"port\":80}],\"errors\":[]}"

START_TEST(policy_pick_follows_the_weights)
{
    struct route_table *t = table(TABLE(ROUTE("a", ",\"group_size\":3,\"weight\":20") "," ROUTE(
        "b", ",\"weight\":0") "," ROUTE("c", ",\"weight\":80")));
    const struct route *r = &t->routes[0];
    /* Draws 0-19 go to a, none to b (weight 0), 20-99 to c. */
    for (uint32_t d = 0; d < 100; d++)
        ck_assert_ptr_eq(px_policy_pick(r, d), d < 20 ? &t->routes[0] : &t->routes[2]);
    /* A route outside a group is its own pick. */
    ck_assert_ptr_eq(px_policy_pick(&t->routes[2], 50), &t->routes[2]);
    /* The generator spreads over 100 buckets: 100 000 draws, each bucket near 1000. */
    unsigned counts[100] = { 0 };
    for (int i = 0; i < 100000; i++)
        counts[px_policy_random() % 100]++;
    for (int i = 0; i < 100; i++)
        ck_assert_msg(counts[i] > 800 && counts[i] < 1200, "bucket %d: %u", i, counts[i]);
    route_table_free(t);
}
END_TEST

static void *draw_first(void *arg)
{
    *(uint64_t *)arg = px_policy_random();
    return NULL;
}

START_TEST(policy_random_differs_per_thread)
{
    uint64_t a = 0, b = 0;
    pthread_t ta, tb;
    pthread_create(&ta, NULL, draw_first, &a);
    pthread_join(ta, NULL);
    pthread_create(&tb, NULL, draw_first, &b);
    pthread_join(tb, NULL);
    ck_assert(a != 0 && b != 0);
    ck_assert(a != b);
}
END_TEST

START_TEST(policy_gauge_stops_at_its_limit)
{
    atomic_uint g;
    atomic_init(&g, 0);
    ck_assert(px_gauge_take(&g, 2));
    ck_assert(px_gauge_take(&g, 2));
    ck_assert(!px_gauge_take(&g, 2));
    ck_assert_uint_eq(atomic_load(&g), 2);
    px_gauge_give(&g);
    ck_assert(px_gauge_take(&g, 2));
    ck_assert(!px_gauge_take(&g, 0)); /* a limit of 0 refuses everything */
}
END_TEST

START_TEST(policy_bucket_refills_at_its_rate)
{
    struct route_local_rl rl = { .rps = 2, .burst = 3 };
    _Atomic uint64_t b;
    atomic_init(&b, px_bucket_full(&rl, 1000));
    uint32_t after = 0;
    /* The burst, then nothing until a token has grown (500 ms at 2/s). */
    for (int i = 0; i < 3; i++)
        ck_assert(px_bucket_take(&b, &rl, 1000, &after));
    ck_assert(!px_bucket_take(&b, &rl, 1000, &after));
    ck_assert_uint_eq(after, 1);
    ck_assert(!px_bucket_take(&b, &rl, 1499, &after));
    ck_assert(px_bucket_take(&b, &rl, 1500, &after));
    ck_assert(!px_bucket_take(&b, &rl, 1500, &after));
    /* Idle for long: back to the burst, not more. */
    int ok = 0;
    while (px_bucket_take(&b, &rl, 100000, &after))
        ok++;
    ck_assert_int_eq(ok, 3);
    /* Slow rates say when: 1 per 10 s minus what has grown. */
    struct route_local_rl slow = { .rps = 1, .burst = 1 };
    atomic_init(&b, px_bucket_full(&slow, 0));
    ck_assert(px_bucket_take(&b, &slow, 0, &after));
    ck_assert(!px_bucket_take(&b, &slow, 200, &after));
    ck_assert_uint_eq(after, 1);
    /* The clock wrapping its 32 bits is only elapsed time. */
    atomic_init(&b, px_bucket_full(&rl, 0xffffff00u));
    for (int i = 0; i < 3; i++)
        ck_assert(px_bucket_take(&b, &rl, 0xffffff00u, &after));
    ck_assert(px_bucket_take(&b, &rl, 0x100000000ull + 0x200, &after));
}
END_TEST

START_TEST(policy_retry_decisions)
{
    struct route_retry r = { 0 };
    r.on = ROUTE_RETRY_CONNECT_FAILURE;
    ck_assert(px_retry_failure(&r, PX_FAIL_CONNECT));
    ck_assert(!px_retry_failure(&r, PX_FAIL_RESET));
    ck_assert(!route_retry_status(&r, 503));
    r.on = ROUTE_RETRY_GATEWAY_ERROR;
    ck_assert(px_retry_failure(&r, PX_FAIL_TIMEOUT));
    ck_assert(px_retry_failure(&r, PX_FAIL_PROTOCOL));
    ck_assert(!px_retry_failure(&r, PX_FAIL_RESET));
    ck_assert(route_retry_status(&r, 502) && route_retry_status(&r, 504));
    ck_assert(!route_retry_status(&r, 500));
    r.on = ROUTE_RETRY_5XX;
    ck_assert(px_retry_failure(&r, PX_FAIL_RESET));
    ck_assert(route_retry_status(&r, 500) && !route_retry_status(&r, 409));
    r.on = ROUTE_RETRY_RETRIABLE_4XX;
    ck_assert(route_retry_status(&r, 409) && !route_retry_status(&r, 404));
    r.on = ROUTE_RETRY_STATUS_CODES;
    r.codes[r.ncodes++] = 418;
    ck_assert(route_retry_status(&r, 418) && !route_retry_status(&r, 503));
    r.on = ROUTE_RETRY_REFUSED_STREAM; /* HTTP/2 only: never on HTTP/1 */
    ck_assert(!px_retry_failure(&r, PX_FAIL_RESET) && !px_retry_failure(&r, PX_FAIL_CONNECT));
}
END_TEST

START_TEST(policy_state_carries_over_by_key)
{
    struct route_table *t1 =
        table(TABLE(ROUTE("a", ",\"legate_rate_limit\":{\"requests_per_second\":1}")));
    char err[256] = "";
    struct px_policy *p1 = px_policy_build(t1, NULL, err, sizeof(err));
    ck_assert_ptr_nonnull(p1);
    atomic_fetch_add(&p1->clusters[0]->active, 5);
    uint32_t after;
    ck_assert(px_bucket_take(&p1->routes[0]->bucket, &t1->routes[0].policy->local_rl, 0, &after));
    /* The next table: the same cluster and Mapping share the state; a new Mapping gets its
     * own. */
    struct route_table *t2 = table(TABLE(ROUTE("b", "") "," ROUTE("a", "")));
    struct px_policy *p2 = px_policy_build(t2, p1, err, sizeof(err));
    ck_assert_ptr_eq(p2->clusters[0], p1->clusters[0]);
    ck_assert_ptr_eq(p2->routes[1], p1->routes[0]);
    ck_assert_ptr_ne(p2->routes[0], p1->routes[0]);
    ck_assert_uint_eq(atomic_load(&p2->clusters[0]->active), 5);
    /* The old table goes; the shared state stays for the new one. */
    struct px_cstate *held = px_cstate_ref(p2->clusters[0]);
    px_policy_free(p1);
    route_table_free(t1);
    ck_assert_uint_eq(atomic_load(&p2->routes[1]->refs), 1);
    px_policy_free(p2);
    route_table_free(t2);
    /* An upstream connection's reference outlives every table. */
    ck_assert_uint_eq(atomic_load(&held->refs), 1);
    atomic_fetch_add(&held->connections, 1);
    px_cstate_conn_closed(held); /* frees it: leak checkers would say otherwise */
}
END_TEST

START_TEST(policy_build_refuses_bad_groups)
{
    char err[256] = "";
    struct route_table *t = table(TABLE(ROUTE("a", ",\"group_size\":3") "," ROUTE("b", "")));
    ck_assert_ptr_null(px_policy_build(t, NULL, err, sizeof(err)));
    ck_assert_msg(strstr(err, "routes[0]: group_size 3") != NULL, "%s", err);
    route_table_free(t);
    t = table(TABLE(
        ROUTE("a", ",\"group_size\":2") "," ROUTE("b", ",\"group_size\":2") "," ROUTE("c", "")));
    ck_assert_ptr_null(px_policy_build(t, NULL, err, sizeof(err)));
    ck_assert_msg(strstr(err, "leads a group of its own") != NULL, "%s", err);
    route_table_free(t);
    t = table(TABLE(ROUTE("a", ",\"group_size\":1")));
    ck_assert_ptr_null(px_policy_build(t, NULL, err, sizeof(err)));
    route_table_free(t);
}
END_TEST

START_TEST(policy_metrics_text)
{
    struct route_table *t =
        table("{\"version\":1,\"routes\":[{\"namespace\":\"n\\\"s\",\"service\":\"s\",\"mapping\":"
              "\"m\\\\1\",\"prefix\":\"/\",\"cluster\":\"u:80\"}],\"clusters\":[{\"name\":\"u:80\","
              "\"scheme\":\"http\",\"host\":\"u\",\"port\":80}],\"errors\":[]}");
    char err[256];
    struct px_policy *p = px_policy_build(t, NULL, err, sizeof(err));
    atomic_fetch_add(&p->routes[0]->retries_total, 7);
    atomic_fetch_add(&p->clusters[0]->connections, 2);
    struct buf b;
    buf_init(&b, 1 << 20);
    ck_assert_int_eq(px_policy_metrics(t, p, &b), 0);
    /* Label values escape quotes and backslashes. */
    ck_assert_msg(strstr(b.data, "legate_route_retries_total{namespace=\"n\\\"s\",service=\"s\","
                                 "mapping=\"m\\\\1\"} 7\n") != NULL,
                  "%s", b.data);
    ck_assert(strstr(b.data, "# TYPE legate_cluster_connections gauge\n"
                             "legate_cluster_connections{cluster=\"u:80\"} 2\n") != NULL);
    ck_assert(strstr(b.data, "# TYPE legate_route_requests_total counter\n") != NULL);
    /* Past the cap: an error, not a cut line passed off as whole. */
    struct buf small;
    buf_init(&small, 100);
    ck_assert_int_eq(px_policy_metrics(t, p, &small), -E2BIG);
    buf_free(&small);
    buf_free(&b);
    px_policy_free(p);
    route_table_free(t);
}
END_TEST

/* ---- CORS ---- */

START_TEST(cors_origin_matching)
{
    char *origins[] = { "http://a.example", "https://b.example:8443" };
    struct route_cors c = { .enabled = true, .origins = origins, .norigins = 2 };
    ck_assert(px_cors_allowed(&c, "http://a.example", 16));
    ck_assert(px_cors_allowed(&c, "HTTP://A.EXAMPLE", 16));
    ck_assert(!px_cors_allowed(&c, "http://a.example.evil", 21));
    ck_assert(!px_cors_allowed(&c, "http://a.exampl", 15));
    ck_assert(!px_cors_allowed(&c, "https://b.example", 17)); /* the port is part of it */
    ck_assert(!px_cors_allowed(&c, NULL, 0));
    char *star[] = { "*" };
    struct route_cors any = { .enabled = true, .origins = star, .norigins = 1 };
    ck_assert(px_cors_allowed(&any, "http://x", 8));
    any.enabled = false;
    ck_assert(!px_cors_allowed(&any, "http://x", 8));
}
END_TEST

START_TEST(cors_header_lines)
{
    char *origins[] = { "*" };
    struct route_cors c = { .enabled = true,
                            .origins = origins,
                            .norigins = 1,
                            .methods = "GET, PUT",
                            .headers = "X-Token",
                            .exposed_headers = "X-Echo",
                            .credentials = true,
                            .max_age = "60" };
    const char *o = "http://app.example";
    size_t room = px_cors_room(&c, strlen(o));
    char *out = malloc(room);
    size_t n = px_cors_preflight_headers(&c, o, strlen(o), out, room);
    ck_assert_str_eq(out, "Access-Control-Allow-Origin: http://app.example\r\n"
                          "Access-Control-Allow-Credentials: true\r\n"
                          "Access-Control-Allow-Methods: GET, PUT\r\n"
                          "Access-Control-Allow-Headers: X-Token\r\n"
                          "Access-Control-Max-Age: 60\r\n");
    ck_assert_uint_eq(n, strlen(out));
    n = px_cors_response_headers(&c, o, strlen(o), out, room);
    ck_assert_str_eq(out, "Access-Control-Allow-Origin: http://app.example\r\n"
                          "Access-Control-Allow-Credentials: true\r\n"
                          "Access-Control-Expose-Headers: X-Echo\r\n");
    /* Nothing configured beyond origins: the origin line alone. */
    struct route_cors bare = { .enabled = true, .origins = origins, .norigins = 1 };
    px_cors_preflight_headers(&bare, o, strlen(o), out, room);
    ck_assert_str_eq(out, "Access-Control-Allow-Origin: http://app.example\r\n");
    free(out);
}
END_TEST

/* ---- load balancing ---- */

static void addr4(struct sockaddr_storage *ss, const char *ip)
{
    memset(ss, 0, sizeof(*ss));
    uv_ip4_addr(ip, 80, (struct sockaddr_in *)ss);
}

START_TEST(lb_rendezvous_is_consistent)
{
    struct sockaddr_storage a[4];
    addr4(&a[0], "10.0.0.1");
    addr4(&a[1], "10.0.0.2");
    addr4(&a[2], "10.0.0.3");
    addr4(&a[3], "10.0.0.4");
    unsigned counts[4] = { 0 }, moved = 0;
    for (uint64_t k = 0; k < 4000; k++) {
        uint64_t key = k * 0x9e3779b97f4a7c15ull;
        unsigned with4 = px_lb_rendezvous(key, a, 4);
        counts[with4]++;
        /* The same key, the same address, whatever the call. */
        ck_assert_uint_eq(px_lb_rendezvous(key, a, 4), with4);
        /* Without the last address, only its keys move. */
        unsigned with3 = px_lb_rendezvous(key, a, 3);
        if (with4 != 3)
            ck_assert_uint_eq(with3, with4);
        else
            moved++;
    }
    ck_assert_uint_eq(moved, counts[3]);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(counts[i] > 800 && counts[i] < 1200, "address %d: %u keys", i, counts[i]);
    /* Ports do not count: the same host on another port is the same address. */
    struct sockaddr_storage b;
    addr4(&b, "10.0.0.2");
    ((struct sockaddr_in *)&b)->sin_port = htons(8080);
    ck_assert(px_lb_same_host(&a[1], &b));
    ck_assert(!px_lb_same_host(&a[0], &b));
}
END_TEST

START_TEST(lb_pick_policies)
{
    struct sockaddr_storage a[3];
    addr4(&a[0], "10.0.0.1");
    addr4(&a[1], "10.0.0.2");
    addr4(&a[2], "10.0.0.3");
    struct px_conn *c = xcalloc(1, sizeof(*c));
    snprintf(c->client_ip, sizeof(c->client_ip), "192.0.2.7");
    unsigned rr = 0, active[3] = { 5, 0, 5 };
    struct route_lb lb = { 0 };
    /* round_robin: in turn. */
    for (unsigned i = 0; i < 7; i++)
        ck_assert_uint_eq(px_lb_pick(c, &lb, &rr, active, a, 3), i % 3);
    /* least_request: two distinct draws, the less busy wins, so 1 whenever drawn; 1 is in
     * two of the three pairs. */
    lb.policy = ROUTE_LB_LEAST_REQUEST;
    unsigned got1 = 0;
    for (int i = 0; i < 3000; i++)
        got1 += px_lb_pick(c, &lb, &rr, active, a, 3) == 1;
    ck_assert_msg(got1 > 1800 && got1 < 2200, "%u", got1);
    /* ring_hash on the source address: always the same, and the rendezvous choice. */
    lb.policy = ROUTE_LB_RING_HASH;
    lb.hash_on = ROUTE_LB_HASH_SOURCE_IP;
    uint64_t key;
    ck_assert(px_lb_key(c, &lb, &key));
    unsigned first = px_lb_pick(c, &lb, &rr, active, a, 3);
    ck_assert_uint_eq(first, px_lb_rendezvous(key, a, 3));
    for (int i = 0; i < 20; i++)
        ck_assert_uint_eq(px_lb_pick(c, &lb, &rr, active, a, 3), first);
    /* A header key the request lacks: no key. */
    lb.hash_on = ROUTE_LB_HASH_HEADER;
    lb.key = "x-user";
    ck_assert(!px_lb_key(c, &lb, &key));
    /* One address: nothing to choose. */
    ck_assert_uint_eq(px_lb_pick(c, &lb, &rr, active, a, 1), 0);
    free(c);
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {
        policy_pick_follows_the_weights,
        policy_random_differs_per_thread,
        policy_gauge_stops_at_its_limit,
        policy_bucket_refills_at_its_rate,
        policy_retry_decisions,
        policy_state_carries_over_by_key,
        policy_build_refuses_bad_groups,
        policy_metrics_text,
        cors_origin_matching,
        cors_header_lines,
        lb_rendezvous_is_consistent,
        lb_pick_policies,
        NULL,
    };
    return harness_main("policy", 0, NULL, NULL, tests);
}
