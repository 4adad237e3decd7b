/* Tests for controller/kube_watch.c: what each watch event does to the cache, and what the
 * reflector does after a watch ends. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kube_internal.h"
#include "log.h"

static uv_loop_t loop;
static struct cache cache;
static struct kube_watch w;

static void setup(void)
{
    log_configure(LOG_LEVEL_ERROR, LOG_FORMAT_LOGFMT, "test");
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    cache_init(&cache, NULL, NULL);
    kube_watch_init(&w, &loop, NULL, &cache, NULL, NULL, NULL);
}

static void teardown(void)
{
    kube_watch_close(&w, NULL, NULL);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    cache_free(&cache);
}

static int line(const char *s)
{
    return kube_watch_line(&w, s, strlen(s));
}

#define SVC(type, name, rv, ann)                                                                   \
    "{\"type\":\"" type "\",\"object\":{\"kind\":\"Service\",\"apiVersion\":\"v1\","               \
    "\"metadata\":{\"name\":\"" name "\",\"namespace\":\"default\",\"uid\":\"uid-" name "\","      \
    "\"resourceVersion\":\"" rv "\"" ann "},\"spec\":{}}}"
#define ANN(text) ",\"annotations\":{\"getambassador.io/config\":\"" text "\",\"other\":\"x\"}"

START_TEST(watch_added_modified_deleted_reach_the_cache)
{
    ck_assert_int_eq(line(SVC("ADDED", "web", "10", ANN("a: 1\\n"))), 0);
    const struct cache_entry *e = cache_get(&cache, "default", "web");
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e->annotation, "a: 1\n");
    ck_assert_str_eq(e->uid, "uid-web");
    ck_assert_str_eq(e->version, "10");
    ck_assert_str_eq(e->origin, KUBE_ORIGIN);
    ck_assert_str_eq(w.rv, "10");

    ck_assert_int_eq(line(SVC("MODIFIED", "web", "11", ANN("b: 2\\n"))), 0);
    ck_assert_str_eq(cache_get(&cache, "default", "web")->annotation, "b: 2\n");
    /* The annotation removed (kubectl annotate svc web getambassador.io/config-). */
    ck_assert_int_eq(line(SVC("MODIFIED", "web", "12", "")), 0);
    ck_assert_ptr_null(cache_get(&cache, "default", "web")->annotation);

    ck_assert_int_eq(line(SVC("DELETED", "web", "13", "")), 0);
    ck_assert_ptr_null(cache_get(&cache, "default", "web"));
    ck_assert_str_eq(w.rv, "13");
    ck_assert_uint_eq(w.watch_events, 4);
}
END_TEST

START_TEST(watch_bookmark_moves_only_the_rv)
{
    ck_assert_int_eq(line(SVC("ADDED", "web", "10", ANN("a"))), 0);
    unsigned long changes = cache.changes;
    ck_assert_int_eq(line("{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Service\",\"apiVersion\":"
                          "\"v1\",\"metadata\":{\"resourceVersion\":\"12746\"},\"spec\":{}}}"),
                     0);
    ck_assert_str_eq(w.rv, "12746");
    ck_assert_uint_eq(cache.changes, changes);
    ck_assert_uint_eq(cache_count(&cache), 1);
}
END_TEST

START_TEST(watch_error_410_expired_or_gone_asks_for_a_relist)
{
    ck_assert_int_eq(line("{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":"
                          "\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"too old "
                          "resource version: 1000 (12000)\",\"reason\":\"Expired\",\"code\":410}}"),
                     1);
    ck_assert(w.watch_expired);
    ck_assert(!w.watch_stream_error);
    ck_assert_ptr_nonnull(strstr(w.watch_why, "too old resource version"));
    w.watch_expired = false;
    /* Before 1.17 the reason was Gone; the code alone is enough too. */
    ck_assert_int_eq(line("{\"type\":\"ERROR\",\"object\":{\"reason\":\"Gone\"}}"), 1);
    ck_assert(w.watch_expired);
    w.watch_expired = false;
    ck_assert_int_eq(line("{\"type\":\"ERROR\",\"object\":{\"reason\":\"InternalError\","
                          "\"code\":500}}"),
                     1);
    ck_assert(!w.watch_expired);
    ck_assert(w.watch_stream_error);
}
END_TEST

START_TEST(watch_bad_lines_drop_the_stream)
{
    ck_assert_int_eq(line("{\"type\":\"ADDED\""), -EINVAL);
    ck_assert(w.watch_stream_error);
    w.watch_stream_error = false;
    ck_assert_int_eq(line("{\"type\":\"ADDED\",\"object\":{}} trailing"), -EINVAL);
    ck_assert_int_eq(line("[1,2]"), -EINVAL);
    ck_assert_int_eq(line("{\"type\":\"SURPRISE\",\"object\":{}}"), -EINVAL);
    ck_assert_ptr_nonnull(strstr(w.watch_why, "SURPRISE"));
    ck_assert_uint_eq(cache_count(&cache), 0);
    /* A nameless object is skipped, but its RV still counts. */
    ck_assert_int_eq(line("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"resourceVersion\":"
                          "\"7\"}}}"),
                     0);
    ck_assert_uint_eq(cache_count(&cache), 0);
    ck_assert_str_eq(w.rv, "7");
}
END_TEST

/* ---- decisions ---- */

static enum kube_next decide(struct kube_watch_end e)
{
    return kube_watch_decide(&e);
}

START_TEST(decide_clean_end_rewatches_at_once_but_a_short_empty_one_backs_off)
{
    ck_assert_int_eq(
        decide((struct kube_watch_end){ .status = 200, .events = 0, .duration_ms = 300000 }),
        KUBE_NEXT_WATCH);
    ck_assert_int_eq(
        decide((struct kube_watch_end){ .status = 200, .events = 3, .duration_ms = 10 }),
        KUBE_NEXT_WATCH);
    ck_assert_int_eq(
        decide((struct kube_watch_end){ .status = 200, .events = 0, .duration_ms = 999 }),
        KUBE_NEXT_WATCH_BACKOFF);
}
END_TEST

START_TEST(decide_expired_relists_and_a_second_expiry_backs_off)
{
    ck_assert_int_eq(decide((struct kube_watch_end){ .status = 200, .expired = true }),
                     KUBE_NEXT_RELIST);
    ck_assert_int_eq(decide((struct kube_watch_end){ .status = 410, .expired = true }),
                     KUBE_NEXT_RELIST);
    ck_assert_int_eq(
        decide((struct kube_watch_end){ .status = 200, .expired = true, .expired_before = true }),
        KUBE_NEXT_RELIST_BACKOFF);
    ck_assert_int_eq(decide((struct kube_watch_end){
                         .status = 200, .expired = true, .expired_before = true, .events = 5 }),
                     KUBE_NEXT_RELIST);
}
END_TEST

START_TEST(decide_errors)
{
    /* 429 and connection refused keep the RV. */
    ck_assert_int_eq(decide((struct kube_watch_end){ .status = 429 }), KUBE_NEXT_WATCH_BACKOFF);
    ck_assert_int_eq(decide((struct kube_watch_end){ .refused = true }), KUBE_NEXT_WATCH_BACKOFF);
    /* 401: once at once (token re-read), then with backoff. */
    ck_assert_int_eq(decide((struct kube_watch_end){ .status = 401 }), KUBE_NEXT_WATCH);
    ck_assert_int_eq(decide((struct kube_watch_end){ .status = 401, .retried_401 = true }),
                     KUBE_NEXT_WATCH_BACKOFF);
    /* Anything else relists after a backoff. */
    ck_assert_int_eq(decide((struct kube_watch_end){ .status = 500 }), KUBE_NEXT_RELIST_BACKOFF);
    ck_assert_int_eq(decide((struct kube_watch_end){ .status = 403 }), KUBE_NEXT_RELIST_BACKOFF);
    ck_assert_int_eq(decide((struct kube_watch_end){ .status = 0 }), KUBE_NEXT_RELIST_BACKOFF);
    ck_assert_int_eq(decide((struct kube_watch_end){
                         .status = 200, .stream_error = true, .events = 9, .duration_ms = 5000 }),
                     KUBE_NEXT_RELIST_BACKOFF);
    ck_assert_int_eq(decide((struct kube_watch_end){ .auth_failed = true }),
                     KUBE_NEXT_WATCH_BACKOFF);
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {
        watch_added_modified_deleted_reach_the_cache,
        watch_bookmark_moves_only_the_rv,
        watch_error_410_expired_or_gone_asks_for_a_relist,
        watch_bad_lines_drop_the_stream,
        decide_clean_end_rewatches_at_once_but_a_short_empty_one_backs_off,
        decide_expired_relists_and_a_second_expiry_backs_off,
        decide_errors,
        NULL,
    };
    return harness_main("kube_watch", 0, setup, teardown, tests);
}
