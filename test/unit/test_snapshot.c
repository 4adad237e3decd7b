/* Tests for proxy/snapshot.c: reference counting and publication across threads. */
#include <check.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "router.h"
#include "snapshot.h"
#include "xalloc.h"

/* A table of n routes "/r<i>/" with the given version. */
static struct route_table *table_new(uint64_t version, size_t n)
{
    struct route_table *t = xcalloc(1, sizeof(*t));
    t->version = version;
    t->clusters = xcalloc(1, sizeof(*t->clusters));
    t->clusters[0] = (struct route_cluster){
        .name = xstrdup("up:80"), .scheme = xstrdup("http"), .host = xstrdup("up"), .port = 80
    };
    t->nclusters = 1;
    t->routes = xcalloc(n ? n : 1, sizeof(*t->routes));
    for (size_t i = 0; i < n; i++) {
        char p[32];
        snprintf(p, sizeof(p), "/r%zu/", i);
        struct route *r = &t->routes[i];
        route_init(r);
        r->ns = xstrdup("default");
        r->svc = xstrdup("svc");
        r->mapping = xstrdup(p);
        r->prefix = xstrdup(p);
        r->case_sensitive = true;
    }
    t->nroutes = n;
    return t;
}

static struct px_snapshot *snap(uint64_t version, size_t n)
{
    char err[256] = "";
    struct px_snapshot *s = px_snapshot_new(table_new(version, n), err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    return s;
}

static int publish_calls;
static void *publish_arg_seen;
static void on_publish(void *arg)
{
    publish_calls++;
    publish_arg_seen = arg;
}

START_TEST(snapshot_new_failure_reports_and_frees)
{
    char err[256] = "";
    struct route_table *t = table_new(7, 2);
    t->routes[1].prefix_regex = true;
    free(t->routes[1].prefix);
    t->routes[1].prefix = xstrdup("/r1/("); /* does not compile: the router refuses it */
    /* The table is freed on failure; under ASan a leak or double free would show. */
    ck_assert_ptr_null(px_snapshot_new(t, err, sizeof(err)));
    ck_assert_msg(strstr(err, "prefix_regex") != NULL, "reason: %s", err);
}
END_TEST

/* Tables from the control socket keep their text in one arena: the snapshot frees it with the
 * table, whether the router takes the table or refuses it (ASan shows a leak or double free). */
START_TEST(snapshot_of_a_table_read_from_json)
{
    static const char *const texts[] = {
        "{\"version\":3,\"routes\":[{\"namespace\":\"d\",\"service\":\"s\",\"mapping\":\"m\","
        "\"prefix\":\"/a/\",\"cluster\":\"up:80\",\"rewrite\":\"/\"}],\"clusters\":[{\"name\":"
        "\"up:80\",\"scheme\":\"http\",\"host\":\"up\",\"port\":80}],\"errors\":[]}",
        "{\"version\":4,\"routes\":[{\"namespace\":\"d\",\"service\":\"s\",\"mapping\":\"m\","
        "\"prefix\":\"/a/(\",\"prefix_regex\":true,\"cluster\":\"up:80\"}],\"clusters\":[{"
        "\"name\":\"up:80\",\"scheme\":\"http\",\"host\":\"up\",\"port\":80}],\"errors\":[]}",
    };
    for (size_t i = 0; i < 2; i++) {
        char err[256] = "";
        json_object *o = json_tokener_parse(texts[i]);
        struct route_table *t = NULL;
        ck_assert_msg(route_table_from_json(o, &t, err, sizeof(err)) == 0, "%s", err);
        json_object_put(o);
        ck_assert_ptr_nonnull(t->arena);
        struct px_snapshot *s = px_snapshot_new(t, err, sizeof(err));
        if (i == 1) {
            ck_assert_ptr_null(s);
            ck_assert_msg(strstr(err, "prefix_regex") != NULL, "reason: %s", err);
            continue;
        }
        ck_assert_ptr_nonnull(s);
        ck_assert_ptr_eq(s->table, t);
        ck_assert_str_eq(s->table->routes[0].rewrite, "/");
        px_snapshot_release(s);
    }
}
END_TEST

START_TEST(snapshot_publish_swaps_and_releases_old)
{
    int token;
    px_snapshot_on_publish(on_publish, &token);
    publish_calls = 0;
    ck_assert_ptr_null(px_snapshot_current());

    struct px_snapshot *a = snap(1, 3);
    ck_assert_uint_eq(atomic_load(&a->refs), 1);
    ck_assert_ptr_eq(px_snapshot_ref(NULL), NULL);
    px_snapshot_publish(a);
    ck_assert_int_eq(publish_calls, 1);
    ck_assert_ptr_eq(publish_arg_seen, &token);
    ck_assert_uint_gt(a->applied_at_ms, 0);

    struct px_snapshot *held = px_snapshot_current();
    ck_assert_ptr_eq(held, a);
    ck_assert_uint_eq(atomic_load(&a->refs), 2);

    struct px_snapshot *b = snap(2, 1);
    px_snapshot_publish(b);
    ck_assert_int_eq(publish_calls, 2);
    /* Only the request that still holds `a` keeps it alive, and it is still usable. */
    ck_assert_uint_eq(atomic_load(&a->refs), 1);
    ck_assert_uint_eq(held->table->version, 1);
    struct px_request_view v = { .method = "GET", .method_len = 3, .path = "/r2/x", .path_len = 5 };
    ck_assert_ptr_eq(px_router_match(held->router, &v), &held->table->routes[2]);
    px_snapshot_release(held);

    struct px_snapshot *cur = px_snapshot_current();
    ck_assert_ptr_eq(cur, b);
    ck_assert_uint_eq(cur->table->version, 2);
    ck_assert_ptr_null(px_router_match(cur->router, &v));
    px_snapshot_release(cur);
    ck_assert_uint_eq(atomic_load(&b->refs), 1);

    px_snapshot_clear();
    ck_assert_ptr_null(px_snapshot_current());
    px_snapshot_release(NULL);
    px_snapshot_on_publish(NULL, NULL);
}
END_TEST

/* ---- threads ---- */

#define READERS   8
#define PUBLISHES 2000

static atomic_bool stop;

static void *reader(void *arg)
{
    (void)arg;
    uint64_t last = 0;
    long seen = 0;
    while (!atomic_load(&stop)) {
        struct px_snapshot *s = px_snapshot_current();
        if (s == NULL)
            continue;
        /* A request's own extra references, as a worker would take and drop them. */
        struct px_snapshot *extra = px_snapshot_ref(s);
        uint64_t v = s->table->version;
        if (v < last || s->table->nroutes != (size_t)(v % 5) + 1)
            return (void *)-1L; /* went backwards, or a torn or freed snapshot */
        last = v;
        struct px_request_view rv = {
            .method = "GET", .method_len = 3, .path = "/r0/", .path_len = 4
        };
        if (px_router_match(s->router, &rv) != &s->table->routes[0])
            return (void *)-1L;
        px_snapshot_release(extra);
        px_snapshot_release(s);
        seen++;
    }
    return (void *)seen;
}

START_TEST(snapshot_concurrent_readers_while_publishing)
{
    pthread_t th[READERS];
    atomic_store(&stop, false);
    px_snapshot_publish(snap(1, 2));
    for (int i = 0; i < READERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, reader, NULL), 0);
    for (uint64_t v = 2; v <= PUBLISHES; v++)
        px_snapshot_publish(snap(v, (size_t)(v % 5) + 1));
    atomic_store(&stop, true);
    for (int i = 0; i < READERS; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        ck_assert_msg((long)rv > 0, "reader %d failed or saw nothing (%ld)", i, (long)rv);
    }
    struct px_snapshot *cur = px_snapshot_current();
    ck_assert_uint_eq(cur->table->version, PUBLISHES);
    /* Every reader dropped what it took: only the current pointer and ours remain. */
    ck_assert_uint_eq(atomic_load(&cur->refs), 2);
    px_snapshot_release(cur);
    px_snapshot_clear();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("snapshot");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, snapshot_new_failure_reports_and_frees);
    tcase_add_test(tc, snapshot_of_a_table_read_from_json);
    tcase_add_test(tc, snapshot_publish_swaps_and_releases_old);
    tcase_add_test(tc, snapshot_concurrent_readers_while_publishing);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
