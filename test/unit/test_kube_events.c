/* Tests for controller/kube_events.c: the token bucket, the event cache, Event bodies, and
 * which reports turn into a POST, a PATCH, or nothing. Posting goes to a closed port: the
 * requests fail on the loop afterwards, which must not matter to the logic. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "harness.h"
#include "kube_internal.h"
#include "log.h"

/* ---- token bucket ---- */

START_TEST(bucket_allows_a_burst_then_one_per_refill)
{
    struct kube_bucket b;
    kube_bucket_init(&b, 25, 1000, 10000);
    for (int i = 0; i < 25; i++)
        ck_assert(kube_bucket_take(&b, 10000));
    ck_assert(!kube_bucket_take(&b, 10000));
    ck_assert(!kube_bucket_take(&b, 10999));
    ck_assert(kube_bucket_take(&b, 11000));
    ck_assert(!kube_bucket_take(&b, 11000));
    /* Half-second refills add up to one token. */
    ck_assert(!kube_bucket_take(&b, 11500));
    ck_assert(kube_bucket_take(&b, 12000));
    /* A long quiet spell refills to the burst, not beyond. */
    int n = 0;
    while (kube_bucket_take(&b, 1000000))
        n++;
    ck_assert_int_eq(n, 25);
}
END_TEST

/* ---- LRU ---- */

START_TEST(lru_evicts_the_least_recently_used)
{
    struct kube_lru l;
    kube_lru_init(&l, 3);
    kube_lru_put(&l, "a", "ev-a", "ns", 1);
    kube_lru_put(&l, "b", "ev-b", "ns", 2);
    kube_lru_put(&l, "c", "ev-c", "ns", 3);
    ck_assert_ptr_nonnull(kube_lru_get(&l, "a")); /* a is now the most recent */
    kube_lru_put(&l, "d", "ev-d", "ns", 4);       /* evicts b */
    ck_assert_ptr_null(kube_lru_get(&l, "b"));
    ck_assert_str_eq(kube_lru_get(&l, "a")->name, "ev-a");
    ck_assert_ptr_nonnull(kube_lru_get(&l, "c"));
    ck_assert_ptr_nonnull(kube_lru_get(&l, "d"));
    ck_assert_uint_eq(l.map.count, 3);
    kube_lru_del(&l, "c");
    ck_assert_ptr_null(kube_lru_get(&l, "c"));
    ck_assert_uint_eq(l.map.count, 2);
    kube_lru_free(&l);
}
END_TEST

/* ---- bodies ---- */

/* The value at a dotted path ("involvedObject.uid") as a string. */
static const char *field(json_object *o, const char *path)
{
    json_object *cur = o;
    for (const char *k = path; k != NULL;) {
        const char *dot = strchr(k, '.');
        char key[64];
        snprintf(key, sizeof(key), "%.*s", dot ? (int)(dot - k) : (int)strlen(k), k);
        ck_assert_msg(json_object_object_get_ex(cur, key, &cur), "no %s", path);
        k = dot ? dot + 1 : NULL;
    }
    return json_object_get_string(cur);
}

START_TEST(event_json_has_what_kubectl_describe_matches_on)
{
    struct kube_event e = {
        "web.17a8c3b2f0e1d2c3", "default",  "web",      "uid-1", "Warning", "InvalidMapping",
        "Mapping \"m\": bad",   1767261600, 1767261660, 3
    };
    char *s = kube_event_json(&e);
    json_object *o = json_tokener_parse(s);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(field(o, "apiVersion"), "v1");
    ck_assert_str_eq(field(o, "kind"), "Event");
    ck_assert_str_eq(field(o, "metadata.name"), "web.17a8c3b2f0e1d2c3");
    ck_assert_str_eq(field(o, "metadata.namespace"), "default");
    ck_assert_str_eq(field(o, "involvedObject.apiVersion"), "v1");
    ck_assert_str_eq(field(o, "involvedObject.kind"), "Service");
    ck_assert_str_eq(field(o, "involvedObject.name"), "web");
    ck_assert_str_eq(field(o, "involvedObject.namespace"), "default");
    ck_assert_str_eq(field(o, "involvedObject.uid"), "uid-1");
    ck_assert_str_eq(field(o, "reason"), "InvalidMapping");
    ck_assert_str_eq(field(o, "type"), "Warning");
    ck_assert_str_eq(field(o, "message"), "Mapping \"m\": bad");
    ck_assert_str_eq(field(o, "source.component"), "legate");
    ck_assert_str_eq(field(o, "firstTimestamp"), "2026-01-01T10:00:00Z");
    ck_assert_str_eq(field(o, "lastTimestamp"), "2026-01-01T10:01:00Z");
    ck_assert_str_eq(field(o, "count"), "3");
    json_object_put(o);
    free(s);

    s = kube_event_patch_json(4, 1767261720);
    ck_assert_str_eq(s, "{\"count\":4,\"lastTimestamp\":\"2026-01-01T10:02:00Z\"}");
    free(s);
}
END_TEST

START_TEST(event_name_is_service_dot_16_hex)
{
    char name[128];
    kube_event_name("web", 0x17a8c3b2f0e1d2c3ULL, name, sizeof(name));
    ck_assert_str_eq(name, "web.17a8c3b2f0e1d2c3");
    kube_event_name("web", 0x1fULL, name, sizeof(name));
    ck_assert_str_eq(name, "web.000000000000001f");
    /* Too little room: the Service part is cut, the unique suffix kept. */
    char small[20];
    kube_event_name("a-long-service-name", 1, small, sizeof(small));
    ck_assert_str_eq(small, "a.0000000000000001");
}
END_TEST

START_TEST(event_message_names_mapping_field_line_and_problem)
{
    struct route_error e = { "default", "web", "web_mapping",
                             "prefix",  4,     "missing required field \"prefix\"" };
    char msg[KUBE_EVENT_MESSAGE_MAX];
    kube_event_message(&e, msg, sizeof(msg));
    ck_assert_str_eq(msg, "Mapping \"web_mapping\" (line 4, field prefix): missing required field "
                          "\"prefix\"");
    e.field = NULL;
    kube_event_message(&e, msg, sizeof(msg));
    ck_assert_str_eq(msg, "Mapping \"web_mapping\" (line 4): missing required field \"prefix\"");
    /* Capped, never overflowing. */
    char tiny[16];
    kube_event_message(&e, tiny, sizeof(tiny));
    ck_assert_uint_eq(strlen(tiny), sizeof(tiny) - 1);
}
END_TEST

/* ---- reports ---- */

static uv_loop_t loop;
static struct kube_config cfg;
static struct kube_http *http;
static struct kube_events *ev;

static void setup(void)
{
    log_configure(LOG_LEVEL_ERROR, LOG_FORMAT_LOGFMT, "test");
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    memset(&cfg, 0, sizeof(cfg));
    cfg.server = "http://127.0.0.1:1"; /* nothing listens: posts fail later, on the loop */
    http = kube_http_new(&loop, &cfg);
    ev = kube_events_new(&loop, http);
}

static void teardown(void)
{
    /* Let the posts fail (connection refused) to exercise that path, then close. */
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    struct kube_events_stats st;
    kube_events_stats(ev, &st);
    ck_assert_uint_eq(st.failed, st.posted + st.patched);
    kube_events_free(ev);
    kube_http_close(http, NULL, NULL);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}

static struct kube_events_stats stats(void)
{
    struct kube_events_stats st;
    kube_events_stats(ev, &st);
    return st;
}

static const struct route_error e1 = { "default", "web", "m1", "prefix", 4, "missing prefix" };
static const struct route_error e2 = { "default", "web", "m2", "service", 9, "bad service" };

START_TEST(report_posts_only_when_a_services_errors_change)
{
    kube_events_report(ev, "default", "web", "uid-1", &e1, 1);
    ck_assert_uint_eq(stats().posted, 1);
    /* The next compile (caused by some other Service) finds the same error: nothing new. */
    kube_events_compiled(ev);
    kube_events_report(ev, "default", "web", "uid-1", &e1, 1);
    kube_events_compiled(ev);
    ck_assert_uint_eq(stats().posted, 1);
    /* A second error appears: both are reported, the old one as a repeat (PATCH). */
    struct route_error both[] = { e1, e2 };
    kube_events_report(ev, "default", "web", "uid-1", both, 2);
    ck_assert_uint_eq(stats().posted, 2);
    ck_assert_uint_eq(stats().patched, 1);
    /* Fixed: one Normal Event; fixed again: nothing. */
    kube_events_report(ev, "default", "web", "uid-1", NULL, 0);
    ck_assert_uint_eq(stats().posted, 3);
    kube_events_report(ev, "default", "web", "uid-1", NULL, 0);
    ck_assert_uint_eq(stats().posted, 3);
    /* Valid Services never get Events; nor do objects without a uid (directory source). */
    kube_events_report(ev, "default", "ok", "uid-2", NULL, 0);
    kube_events_report(ev, "default", "web", "", &e1, 1);
    ck_assert_uint_eq(stats().posted, 3);
    ck_assert_uint_eq(stats().patched, 1);
}
END_TEST

START_TEST(report_forgets_services_not_seen_in_a_compile)
{
    kube_events_report(ev, "default", "web", "uid-1", &e1, 1);
    kube_events_compiled(ev);
    ck_assert_uint_eq(stats().posted, 1);
    /* A compile without web (annotation removed): forgotten. When it comes back broken the
     * same way, that is reported again (as a repeat of the Event already posted). */
    kube_events_compiled(ev);
    kube_events_report(ev, "default", "web", "uid-1", &e1, 1);
    ck_assert_uint_eq(stats().posted + stats().patched, 2);
}
END_TEST

START_TEST(report_rate_limit_drops_past_the_burst)
{
    char uid[32];
    for (int i = 0; i < KUBE_EVENTS_BURST + 5; i++) {
        snprintf(uid, sizeof(uid), "uid-%d", i);
        kube_events_report(ev, "default", "web", uid, &e1, 1);
    }
    ck_assert_uint_eq(stats().posted, KUBE_EVENTS_BURST);
    ck_assert_uint_eq(stats().dropped, 5);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kube_events");
    TCase *pure = tcase_create("pure");
    tcase_add_test(pure, bucket_allows_a_burst_then_one_per_refill);
    tcase_add_test(pure, lru_evicts_the_least_recently_used);
    tcase_add_test(pure, event_json_has_what_kubectl_describe_matches_on);
    tcase_add_test(pure, event_name_is_service_dot_16_hex);
    tcase_add_test(pure, event_message_names_mapping_field_line_and_problem);
    suite_add_tcase(s, pure);
    TCase *rep = tcase_create("report");
    tcase_add_checked_fixture(rep, setup, teardown);
    tcase_add_test(rep, report_posts_only_when_a_services_errors_change);
    tcase_add_test(rep, report_forgets_services_not_seen_in_a_compile);
    tcase_add_test(rep, report_rate_limit_drops_past_the_burst);
    suite_add_tcase(s, rep);
    return harness_run_suite(s);
}
