/* Tests for controller/source_dir.c on a real temporary directory and a real loop: what is read,
 * what is skipped, and that changes, additions, renames and deletions reach the cache by
 * themselves. Every loop run has a deadline, so a missed change fails instead of hanging. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "cache.h"
#include "harness.h"
#include "source_dir.h"

static uv_loop_t loop;
static struct cache cache;
static struct source_dir *src;
static char dir[64];

static void setup(void)
{
    harness_quiet_logs();
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    cache_init(&cache, NULL, NULL);
    snprintf(dir, sizeof(dir), "/tmp/legate-srcdir-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    src = NULL;
}

static void teardown(void)
{
    source_dir_stop(src);
    harness_close_loop(&loop); /* the close callbacks free it */
    cache_free(&cache);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void path_of(const char *name, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", dir, name);
}

/* Replaces a file the way editors and kubectl-like tools do: write aside, then rename. */
static void write_file(const char *name, const char *text)
{
    char tmp[128], path[128];
    path_of(".tmp-write", tmp, sizeof(tmp));
    path_of(name, path, sizeof(path));
    FILE *f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(rename(tmp, path), 0);
}

static void remove_file(const char *name)
{
    char path[128];
    path_of(name, path, sizeof(path));
    ck_assert_int_eq(unlink(path), 0);
}

/* ---- running the loop until something is true ---- */

/* Runs the loop until pred holds or timeout_ms passes; returns pred's final value. */
static bool run_until(harness_pred_cb pred, unsigned timeout_ms)
{
    return harness_run_until(&loop, pred, timeout_ms);
}

static unsigned long scans_before;
static bool scanned_again(void)
{
    return src->scans > scans_before;
}

/* ---- manifests ---- */

#define SVC(ns, name, prefix)                                                                      \
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: " name "\n  namespace: " ns "\n"            \
    "  annotations:\n    getambassador.io/config: |\n      apiVersion: ambassador/v1\n"            \
    "      kind: Mapping\n      name: " name "\n      prefix: " prefix "\n      service: up\n"

static const char *annotation_of(const char *ns, const char *name)
{
    const struct cache_entry *e = cache_get(&cache, ns, name);
    return e ? e->annotation : NULL;
}

static bool has(const char *ns, const char *name, const char *needle)
{
    const char *a = annotation_of(ns, name);
    return a != NULL && strstr(a, needle) != NULL;
}

static bool web_has_v2(void)
{
    return has("default", "web", "/v2/");
}

static bool api_gone(void)
{
    return cache_get(&cache, "prod", "api") == NULL;
}

static bool late_arrived(void)
{
    return cache_get(&cache, "default", "late") != NULL;
}

START_TEST(source_dir_reads_services_and_skips_the_rest)
{
    write_file("a.yaml", SVC("default", "web", "/web/") "---\napiVersion: v1\nkind: ConfigMap\n"
                                                        "metadata:\n  name: cm\n");
    write_file("b.json",
               "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"api\","
               "\"namespace\":\"prod\",\"uid\":\"u-api\",\"resourceVersion\":\"7\","
               "\"annotations\":{\"getambassador.io/config\":\"apiVersion: ambassador/v1\\n"
               "kind: Mapping\\nname: api\\nprefix: /api/\\nservice: api\\n\"}}}");
    write_file("c.yml", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n"
                        "  metadata:\n    name: plain\n");
    write_file(".hidden.yaml", SVC("default", "hidden", "/h/"));
    write_file("notes.txt", SVC("default", "txt", "/t/"));
    write_file("web.yaml~", SVC("default", "backup", "/b/"));

    ck_assert_int_eq(source_dir_start(&loop, dir, &cache, 0, &src), 0);
    /* The first scan is synchronous: the first compile sees everything. */
    ck_assert_uint_eq(cache_count(&cache), 3);
    const struct cache_entry *web = cache_get(&cache, "default", "web");
    ck_assert_ptr_nonnull(web);
    ck_assert(has("default", "web", "prefix: /web/"));
    ck_assert_int_eq(web->line, 8);         /* the annotation's first line in the file */
    ck_assert_int_eq(strlen(web->uid), 36); /* synthesised, UUID-shaped */
    ck_assert(strstr(web->origin, "/a.yaml") != NULL);
    const struct cache_entry *api = cache_get(&cache, "prod", "api");
    ck_assert_ptr_nonnull(api);
    ck_assert_str_eq(api->uid, "u-api");
    ck_assert_str_eq(api->version, "7");
    ck_assert_int_eq(api->line, 0); /* escaped newlines: lines do not map onto the file */
    const struct cache_entry *plain = cache_get(&cache, "default", "plain");
    ck_assert_ptr_nonnull(plain);
    ck_assert_ptr_null(plain->annotation);
}
END_TEST

START_TEST(source_dir_notices_change_addition_and_deletion)
{
    write_file("a.yaml", SVC("default", "web", "/v1/"));
    write_file("b.yaml", SVC("prod", "api", "/api/"));
    ck_assert_int_eq(source_dir_start(&loop, dir, &cache, 0, &src), 0);
    ck_assert_uint_eq(cache_count(&cache), 2);
    unsigned long changes = cache.changes;

    write_file("a.yaml", SVC("default", "web", "/v2/")); /* replaced by rename */
    ck_assert_msg(run_until(web_has_v2, 3000), "change not noticed");
    ck_assert_uint_eq(cache.changes, changes + 1); /* b.yaml untouched: no change for api */

    write_file("c.yaml", SVC("default", "late", "/late/"));
    ck_assert_msg(run_until(late_arrived, 3000), "new file not noticed");

    remove_file("b.yaml");
    ck_assert_msg(run_until(api_gone, 3000), "deletion not noticed");
    ck_assert_uint_eq(cache_count(&cache), 2);
}
END_TEST

START_TEST(source_dir_broken_file_keeps_its_services)
{
    write_file("a.yaml", SVC("default", "web", "/v1/") "---\n" SVC("default", "two", "/2/"));
    ck_assert_int_eq(source_dir_start(&loop, dir, &cache, 0, &src), 0);
    ck_assert_uint_eq(cache_count(&cache), 2);
    unsigned long changes = cache.changes;

    /* Half-written: the second document is cut mid-flow. */
    write_file("a.yaml", SVC("default", "web", "/v9/") "---\nmetadata: {name: [two\n");
    scans_before = src->scans;
    ck_assert(run_until(scanned_again, 3000));
    ck_assert_uint_eq(cache.changes, changes);
    ck_assert(has("default", "web", "/v1/")); /* not the half-written /v9/ */
    ck_assert_ptr_nonnull(cache_get(&cache, "default", "two"));

    /* Fixed: applied. */
    write_file("a.yaml", SVC("default", "web", "/v2/"));
    ck_assert(run_until(web_has_v2, 3000));
    ck_assert_ptr_null(cache_get(&cache, "default", "two"));
}
END_TEST

START_TEST(source_dir_refuses_oversized_files)
{
    char path[128];
    write_file("a.yaml", SVC("default", "web", "/v1/"));
    path_of("big.yaml", path, sizeof(path));
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)SOURCE_DIR_FILE_MAX + 1), 0); /* sparse: cheap */
    close(fd);
    ck_assert_int_eq(source_dir_start(&loop, dir, &cache, 0, &src), 0);
    ck_assert_uint_eq(cache_count(&cache), 1);
    ck_assert_ptr_nonnull(cache_get(&cache, "default", "web"));
}
END_TEST

START_TEST(source_dir_first_file_wins_a_duplicate_service)
{
    write_file("a.yaml", SVC("default", "web", "/from-a/"));
    write_file("b.yaml", SVC("default", "web", "/from-b/"));
    ck_assert_int_eq(source_dir_start(&loop, dir, &cache, 0, &src), 0);
    ck_assert(has("default", "web", "/from-a/"));
    /* Deleting the winner hands the Service to the other file, not to nobody. */
    remove_file("a.yaml");
    scans_before = src->scans;
    ck_assert(run_until(scanned_again, 3000));
    ck_assert(has("default", "web", "/from-b/"));
    ck_assert(strstr(cache_get(&cache, "default", "web")->origin, "/b.yaml") != NULL);
}
END_TEST

START_TEST(source_dir_touch_without_change_is_not_a_change)
{
    write_file("a.yaml", SVC("default", "web", "/v1/"));
    ck_assert_int_eq(source_dir_start(&loop, dir, &cache, 0, &src), 0);
    unsigned long changes = cache.changes;
    write_file("a.yaml", SVC("default", "web", "/v1/")); /* same bytes, new inode */
    scans_before = src->scans;
    ck_assert(run_until(scanned_again, 3000));
    ck_assert_uint_eq(cache.changes, changes);
}
END_TEST

START_TEST(source_dir_periodic_rescan_without_events)
{
    write_file("a.yaml", SVC("default", "web", "/v1/"));
    ck_assert_int_eq(source_dir_start(&loop, dir, &cache, 30, &src), 0);
    /* Take the watch away: only the timer is left to notice. */
    uv_fs_event_stop(&src->watch);
    write_file("a.yaml", SVC("default", "web", "/v2/"));
    ck_assert_msg(run_until(web_has_v2, 3000), "timer rescan did not notice the change");
}
END_TEST

START_TEST(source_dir_start_fails_on_missing_directory)
{
    ck_assert_int_lt(source_dir_start(&loop, "/nonexistent/legate", &cache, 0, &src), 0);
    ck_assert_ptr_null(src);
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {
        source_dir_reads_services_and_skips_the_rest,
        source_dir_notices_change_addition_and_deletion,
        source_dir_broken_file_keeps_its_services,
        source_dir_refuses_oversized_files,
        source_dir_first_file_wins_a_duplicate_service,
        source_dir_touch_without_change_is_not_a_change,
        source_dir_periodic_rescan_without_events,
        source_dir_start_fails_on_missing_directory,
        NULL,
    };
    return harness_main("source_dir", 20, setup, teardown, tests);
}
