/* Tests for controller/cache.c (and the strmap under it): what counts as a change, removals,
 * and the mark/sweep a relist or rescan relies on. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "harness.h"
#include "strmap.h"

static struct cache cache;
static int calls;

static void on_changed(void *arg)
{
    ck_assert_ptr_eq(arg, &cache);
    calls++;
}

static void setup(void)
{
    calls = 0;
    cache_init(&cache, on_changed, &cache);
}

static void teardown(void)
{
    cache_free(&cache);
}

static bool put(const char *ns, const char *name, const char *ann, const char *origin,
                const char *version)
{
    struct cache_object o = { .ns = ns,
                              .name = name,
                              .uid = "u1",
                              .version = version,
                              .annotation = ann,
                              .origin = origin,
                              .line = 3 };
    return cache_upsert(&cache, &o);
}

START_TEST(cache_upsert_reports_only_real_changes)
{
    ck_assert(put("ns", "a", "x", "f1", "1"));
    ck_assert_int_eq(calls, 1);
    ck_assert(!put("ns", "a", "x", "f1", "1")); /* identical */
    ck_assert_int_eq(calls, 1);
    /* A new resourceVersion alone (ports, status) is stored but does not recompile. */
    ck_assert(!put("ns", "a", "x", "f1", "2"));
    ck_assert_int_eq(calls, 1);
    ck_assert_str_eq(cache_get(&cache, "ns", "a")->version, "2");
    ck_assert(put("ns", "a", "y", "f1", "3"));  /* annotation changed */
    ck_assert(put("ns", "a", NULL, "f1", "3")); /* annotation removed */
    ck_assert_ptr_null(cache_get(&cache, "ns", "a")->annotation);
    ck_assert(put("ns", "a", NULL, "f2", "3")); /* moved to another file */
    ck_assert_int_eq(calls, 4);
    ck_assert_uint_eq(cache.changes, 4);
    ck_assert_uint_eq(cache_count(&cache), 1);
}
END_TEST

START_TEST(cache_remove_only_when_present)
{
    put("ns", "a", "x", "f1", NULL);
    ck_assert(!cache_remove(&cache, "ns", "b"));
    ck_assert(!cache_remove(&cache, "other", "a"));
    ck_assert_int_eq(calls, 1);
    ck_assert(cache_remove(&cache, "ns", "a"));
    ck_assert_int_eq(calls, 2);
    ck_assert_ptr_null(cache_get(&cache, "ns", "a"));
    ck_assert_uint_eq(cache_count(&cache), 0);
}
END_TEST

START_TEST(cache_sweep_removes_unseen_entries_of_its_origin_only)
{
    put("ns", "keep", "x", "kube", NULL);
    put("ns", "gone", "x", "kube", NULL);
    put("ns", "file", "x", "/dir/a.yaml", NULL);
    calls = 0;
    cache_mark(&cache, "kube");
    put("ns", "keep", "x", "kube", NULL); /* relisted, unchanged */
    ck_assert_int_eq(calls, 0);
    ck_assert_uint_eq(cache_sweep(&cache, "kube"), 1);
    ck_assert_int_eq(calls, 1);
    ck_assert_ptr_nonnull(cache_get(&cache, "ns", "keep"));
    ck_assert_ptr_null(cache_get(&cache, "ns", "gone"));
    ck_assert_ptr_nonnull(cache_get(&cache, "ns", "file")); /* other origin: untouched */
    /* A second sweep without a mark removes nothing. */
    ck_assert_uint_eq(cache_sweep(&cache, "kube"), 0);
}
END_TEST

START_TEST(cache_entry_moving_origin_survives_sweep_of_the_old_one)
{
    put("ns", "svc", "x", "/d/a.yaml", NULL);
    cache_mark(&cache, "/d/a.yaml");
    cache_mark(&cache, "/d/b.yaml");
    put("ns", "svc", "x", "/d/b.yaml", NULL);
    ck_assert_uint_eq(cache_sweep(&cache, "/d/a.yaml"), 0);
    ck_assert_uint_eq(cache_sweep(&cache, "/d/b.yaml"), 0);
    ck_assert_str_eq(cache_get(&cache, "ns", "svc")->origin, "/d/b.yaml");
}
END_TEST

START_TEST(cache_list_is_sorted_by_namespace_then_name)
{
    put("b", "a", NULL, "o", NULL);
    put("a", "z", NULL, "o", NULL);
    put("a", "b", NULL, "o", NULL);
    put("a-b", "a", NULL, "o", NULL); /* "a-b" sorts after "a" whatever the separator */
    size_t n = 0;
    const struct cache_entry **v = cache_list(&cache, &n);
    ck_assert_uint_eq(n, 4);
    ck_assert_str_eq(v[0]->ns, "a");
    ck_assert_str_eq(v[0]->name, "b");
    ck_assert_str_eq(v[1]->name, "z");
    ck_assert_str_eq(v[2]->ns, "a-b");
    ck_assert_str_eq(v[3]->ns, "b");
    free(v);
}
END_TEST

START_TEST(strmap_put_get_del_and_grow)
{
    struct strmap m;
    strmap_init(&m);
    char key[32];
    for (long i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%ld", i);
        ck_assert_ptr_null(strmap_put(&m, key, (void *)(i + 1)));
    }
    ck_assert_uint_eq(m.count, 1000);
    ck_assert_ptr_eq(strmap_get(&m, "k777"), (void *)778);
    ck_assert_ptr_eq(strmap_put(&m, "k777", (void *)1), (void *)778);
    ck_assert_ptr_eq(strmap_del(&m, "k777"), (void *)1);
    ck_assert_ptr_null(strmap_get(&m, "k777"));
    ck_assert_ptr_null(strmap_del(&m, "k777"));
    /* Deleting while iterating (the entry just returned) visits every other entry once. */
    size_t seen = 0;
    struct strmap_iter it;
    for (struct strmap_entry *e = strmap_first(&m, &it); e; e = strmap_next(&m, &it)) {
        seen++;
        strmap_del(&m, e->key);
    }
    ck_assert_uint_eq(seen, 999);
    ck_assert_uint_eq(m.count, 0);
    strmap_free(&m, NULL);
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {
        cache_upsert_reports_only_real_changes,
        cache_remove_only_when_present,
        cache_sweep_removes_unseen_entries_of_its_origin_only,
        cache_entry_moving_origin_survives_sweep_of_the_old_one,
        cache_list_is_sorted_by_namespace_then_name,
        strmap_put_get_del_and_grow,
        NULL,
    };
    return harness_main("cache", 0, setup, teardown, tests);
}
