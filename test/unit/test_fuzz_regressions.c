/* Replays stored fuzz inputs through the fuzz targets' own code (fuzz/fuzz_*.c, included here
 * without their libFuzzer entry point), so that `make unit` runs them without clang:
 *   - fuzz/regressions/<target>/: inputs that once crashed a target or broke one of its
 *     invariants, minimised (docs/fuzzing.md lists them); each must now pass;
 *   - fuzz/corpus/<target>/: the seeds, which must pass too (a seed that fails is a bug or a
 *     stale seed).
 * A failure aborts the forked test with the fuzz target's message on stderr. Under
 * `make SANITIZE=address,undefined unit` the sanitizers check the same runs.
 *
 * Paths are relative to the repository root, where `make unit` runs the tests. */
#define LEGATE_FUZZ_NO_MAIN
#include "../../fuzz/oracle.c"
#include "../../fuzz/fuzz_annotation.c"
#include "../../fuzz/fuzz_exec_cred.c"
#include "../../fuzz/fuzz_kubeconfig.c"
#include "../../fuzz/fuzz_request_head.c"
#include "../../fuzz/fuzz_snapshot.c"
#include "../../fuzz/fuzz_watch_split.c"

#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include "harness.h"
#include "kube_internal.h"

typedef int (*fuzz_entry_cb)(const uint8_t *data, size_t size);

/* The file being replayed, named on stderr if it kills the (forked) test. */
static char replaying[512];

static void on_fatal_signal(int sig)
{
    static const char msg[] = "fuzz regression replay died on: ";
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0 ||
        write(STDERR_FILENO, replaying, strlen(replaying)) < 0 || write(STDERR_FILENO, "\n", 1) < 0)
        _exit(1);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Runs every regular file of dir through entry, in name order so a failure names the same
 * file each time. Returns how many ran; a missing folder runs none. */
static size_t replay_dir(const char *dir, fuzz_entry_cb entry)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    size_t ran = 0;
    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        char *data = NULL;
        size_t len = 0;
        if (names[i]->d_name[0] != '.' && kube_read_file(path, (size_t)1 << 20, &data, &len) == 0) {
            snprintf(replaying, sizeof(replaying), "%s", path);
            ck_assert_int_eq(entry((const uint8_t *)data, len), 0);
            ran++;
        }
        free(data);
        free(names[i]);
    }
    free(names);
    return ran;
}

static void replay(const char *target, fuzz_entry_cb entry)
{
    char dir[256];
    signal(SIGABRT, on_fatal_signal);
    signal(SIGSEGV, on_fatal_signal);
    snprintf(dir, sizeof(dir), "fuzz/corpus/%s", target);
    /* Every target has seeds: none found means the test runs from the wrong folder. */
    ck_assert_uint_gt(replay_dir(dir, entry), 0);
    snprintf(dir, sizeof(dir), "fuzz/regressions/%s", target);
    replay_dir(dir, entry);
}

START_TEST(replay_annotation)
{
    replay("annotation", fuzz_annotation);
}
END_TEST

START_TEST(replay_snapshot)
{
    replay("snapshot", fuzz_snapshot);
}
END_TEST

START_TEST(replay_watch_split)
{
    replay("watch_split", fuzz_watch_split);
}
END_TEST

START_TEST(replay_kubeconfig)
{
    replay("kubeconfig", fuzz_kubeconfig);
}
END_TEST

START_TEST(replay_exec_cred)
{
    replay("exec_cred", fuzz_exec_cred);
}
END_TEST

START_TEST(replay_request_head)
{
    replay("request_head", fuzz_request_head);
}
END_TEST

/* Found by fuzz_annotation ("one bad document never hides another"): libyaml counts a lone CR
 * and U+0085/U+2028/U+2029 as line breaks, annotation.c's resume_point counted '\n' only, so
 * after a syntax error the restart point was looked for too far down and the next document
 * was skipped. Fixed in d5c8eff. Inputs: fuzz/regressions/annotation/. */
static void check_next_document_survives(const char *broken)
{
    static const char next[] = "\n---\napiVersion: ambassador/v1\nkind: Mapping\nname: next\n"
                               "prefix: /next/\nservice: next\n";
    char text[512];
    snprintf(text, sizeof(text), "%s%s", broken, next);
    struct annotation_opts o = { .ns = "default", .svc = "svc" };
    struct annotation_result r;
    annotation_parse(text, strlen(text), &o, &r);
    ck_assert_uint_eq(r.nerrors, 1);
    ck_assert_uint_eq(r.nmappings, 1);
    ck_assert_str_eq(r.mappings[0].route.mapping, "next");
    annotation_result_free(&r);
}

START_TEST(annotation_lone_cr_does_not_hide_next_document)
{
    check_next_document_survives("apiVersion: ambassador/v1\nkind: Mapping\nname: broken\n"
                                 "prefix: /b/\nservice: b\rx");
}
END_TEST

START_TEST(annotation_line_separator_does_not_hide_next_document)
{
    check_next_document_survives("apiVersion: ambassador/v1\nkind: Mapping\nname: broken\n"
                                 "prefix: [/b/\xe2\x80\xa8");
}
END_TEST

/* Compiles one Service, default/svc, whose annotation is text, from the cache c (initialised
 * here; the caller frees it after the result). */
static struct compile_result *compile_annotation(struct cache *c, const char *text)
{
    cache_init(c, NULL, NULL);
    struct cache_object o = {
        .ns = "default", .name = "svc", .uid = "u", .annotation = text, .origin = "test"
    };
    cache_upsert(c, &o);
    struct compile_opts co = { .version = 1 };
    return compile_run(c, &co);
}

/* Compiles a good Mapping beside one with `extra` and checks the proxy could route the
 * table: a route the router refuses makes the proxy nack the whole table, so one Mapping
 * would block every other. */
static void check_routable_beside(const char *extra)
{
    static const char good[] = "apiVersion: ambassador/v1\nkind: Mapping\nname: good\n"
                               "prefix: /good/\nservice: good\n";
    char text[1024];
    snprintf(text, sizeof(text),
             "%s---\napiVersion: ambassador/v1\nkind: Mapping\nname: other\nprefix: /o/\n"
             "service: o\n%s",
             good, extra);
    struct cache c;
    struct compile_result *r = compile_annotation(&c, text);
    ck_assert_uint_ge(r->table->nroutes, 1);
    char err[256] = "";
    struct px_router *router = px_router_build(r->table, err, sizeof(err));
    ck_assert_msg(router != NULL, "router refused the table: %s", err);
    px_router_free(router);
    compile_result_free(r);
    cache_free(&c);
}

/* Found by fuzz_annotation: `host_regex: true` (or method_regex) without host (method) was
 * accepted and compiled into a route the router refuses (fixed in annotation.c). */
START_TEST(annotation_regex_flag_alone_keeps_the_table_routable)
{
    check_routable_beside("host_regex: true\n");
    check_routable_beside("method_regex: true\n");
}
END_TEST

/* Found by fuzz_annotation: a host over 255 bytes was accepted and compiled; the router refuses
 * it ("host too long") and with it the whole table. Fixed in fbef4b5. */
START_TEST(annotation_long_host_keeps_the_table_routable)
{
    char extra[300];
    memset(extra, 'a', sizeof(extra));
    memcpy(extra, "host: ", 6);
    memcpy(extra + sizeof(extra) - 2, "\n", 2); /* "\n" and the NUL */
    check_routable_beside(extra);
}
END_TEST

/* Found by fuzz_annotation: an error message cut in the middle of a UTF-8 sequence (a long
 * value cut by ytree_describe, a long key by add_error's 512-byte buffer) was invalid UTF-8,
 * which the proxy's JSON reader refuses, with the whole snapshot. Fixed in d5c8eff. */
START_TEST(annotation_cut_error_messages_stay_utf8)
{
    static const char *const inputs[] = {
        "fuzz/regressions/annotation/long_utf8_document_cut_mid_character",
        "fuzz/regressions/annotation/long_utf8_key_cut_mid_character",
    };
    for (size_t i = 0; i < 2; i++) {
        char *text = NULL;
        size_t len = 0;
        ck_assert_int_eq(kube_read_file(inputs[i], 1 << 20, &text, &len), 0);
        struct cache c;
        struct compile_result *r = compile_annotation(&c, text);
        ck_assert_uint_ge(r->table->nerrors, 1);
        ck_assert_msg(fuzz_errors_are_utf8(r->table), "%s: an error is not UTF-8", inputs[i]);
        char err[256] = "";
        struct route_table *again = fuzz_wire_roundtrip(r->table, err, sizeof(err));
        ck_assert_msg(again != NULL, "%s: the proxy refuses the table: %s", inputs[i], err);
        route_table_free(again);
        compile_result_free(r);
        cache_free(&c);
        free(text);
    }
}
END_TEST

START_TEST(oracle_utf8_check_is_strict)
{
    ck_assert(fuzz_is_utf8("ascii \xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80"));
    ck_assert(!fuzz_is_utf8("\xe6\x97"));         /* cut */
    ck_assert(!fuzz_is_utf8("\xc0\xaf"));         /* overlong */
    ck_assert(!fuzz_is_utf8("\xed\xa0\x80"));     /* surrogate */
    ck_assert(!fuzz_is_utf8("\xf4\x90\x80\x80")); /* past U+10FFFF */
    ck_assert(!fuzz_is_utf8("\xff"));
}
END_TEST

/* The oracles themselves: a checker that accepts everything would make every replay pass. */
START_TEST(oracle_ref_match_is_first_match)
{
    static const char js[] =
        "{\"version\":1,\"errors\":[],\"clusters\":[{\"name\":\"u:80\",\"scheme\":\"http\","
        "\"host\":\"u\",\"port\":80}],\"routes\":["
        "{\"namespace\":\"n\",\"service\":\"s\",\"mapping\":\"h\",\"prefix\":\"/a/\","
        "\"host\":\"Ex.com\",\"cluster\":\"u:80\"},"
        "{\"namespace\":\"n\",\"service\":\"s\",\"mapping\":\"a\",\"prefix\":\"/a/\","
        "\"cluster\":\"u:80\"},"
        "{\"namespace\":\"n\",\"service\":\"s\",\"mapping\":\"q\",\"prefix\":\"/\","
        "\"query_parameters\":[{\"name\":\"x y\",\"value\":\"1\"}],\"cluster\":\"u:80\"}]}";
    json_object *o = json_tokener_parse(js);
    struct route_table *t = NULL;
    char err[256] = "";
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(route_table_from_json(o, &t, err, sizeof(err)), 0);
    struct fuzz_ref *ref = fuzz_ref_new(t);
    ck_assert_ptr_nonnull(ref);
    struct px_request_view v = { .method = "GET", .method_len = 3, .path = "/a/b", .path_len = 4 };
    ck_assert_int_eq(fuzz_ref_match(ref, &v), 1);
    v.host = "ex.COM:8080";
    v.host_len = strlen(v.host);
    ck_assert_int_eq(fuzz_ref_match(ref, &v), 0);
    v.path = "/b";
    v.path_len = 2;
    ck_assert_int_eq(fuzz_ref_match(ref, &v), -1);
    v.query = "a&x+y=%31";
    v.query_len = strlen(v.query);
    ck_assert_int_eq(fuzz_ref_match(ref, &v), 2);
    fuzz_ref_free(ref);
    route_table_free(t);
    json_object_put(o);
}
END_TEST

/* ---- the parsers fuzzed since: request targets, LIST bodies, manifests, proxy replies ---- */

#include "../../fuzz/fuzz_kube_list.c"
#include "../../fuzz/fuzz_push_reply.c"
#include "../../fuzz/fuzz_request_target.c"
#include "../../fuzz/fuzz_source_dir.c"

#include "source_dir_internal.h"

START_TEST(replay_request_target)
{
    replay("request_target", fuzz_request_target);
}
END_TEST

START_TEST(replay_kube_list)
{
    replay("kube_list", fuzz_kube_list);
}
END_TEST

START_TEST(replay_source_dir)
{
    replay("source_dir", fuzz_source_dir);
}
END_TEST

START_TEST(replay_push_reply)
{
    replay("push_reply", fuzz_push_reply);
}
END_TEST

/* A kube_watch on its own loop, for kube_list_parse and kube_watch_line. */
struct kl_fixture {
    uv_loop_t loop;
    struct cache cache;
    struct kube_watch w;
};

static void kl_open(struct kl_fixture *f)
{
    fuzz_logs(false); /* off: main() sets LEGATE_FUZZ_LOG */
    uv_loop_init(&f->loop);
    cache_init(&f->cache, NULL, NULL);
    kube_watch_init(&f->w, &f->loop, NULL, &f->cache, NULL, NULL, NULL);
}

static void kl_close(struct kl_fixture *f)
{
    kube_watch_close(&f->w, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&f->loop), 0);
    cache_free(&f->cache);
}

/* kube_list_parse on body; returns its result, with why in why. */
static int kl_parse(struct kl_fixture *f, const char *body, char *why, size_t whylen)
{
    json_object *root = NULL;
    const char *rv = NULL, *cont = NULL;
    why[0] = '\0';
    int rc = kube_list_parse(&f->w, body, strlen(body), &root, &rv, &cont, why, whylen);
    json_object_put(root);
    return rc;
}

/* Found by fuzz_kube_list (fuzz/regressions/kube_list/items_not_an_array): `items` of another
 * type than an array was read as an empty list, and applying that list sweeps every Service
 * from the cache, so every route would go. Now the page is refused; null stays an empty list. */
START_TEST(kube_list_items_not_an_array_is_refused)
{
    struct kl_fixture f;
    char why[256];
    kl_open(&f);
    ck_assert_int_eq(kl_parse(&f,
                              "{\"items\":[{\"metadata\":{\"namespace\":\"n\",\"name\":\"a\"}}],"
                              "\"metadata\":{\"resourceVersion\":\"1\"}}",
                              why, sizeof(why)),
                     0);
    ck_assert_uint_eq(f.w.nitems, 1);
    static const char *const bad[] = { "{\"a\":1}", "\"x\"", "7", "true" };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        char body[128];
        snprintf(body, sizeof(body), "{\"items\":%s,\"metadata\":{\"resourceVersion\":\"2\"}}",
                 bad[i]);
        ck_assert_int_eq(kl_parse(&f, body, why, sizeof(why)), -EINVAL);
        ck_assert_ptr_nonnull(strstr(why, "items"));
        ck_assert_uint_eq(f.w.nitems, 1);
    }
    ck_assert_int_eq(
        kl_parse(&f, "{\"items\":null,\"metadata\":{\"resourceVersion\":\"3\"}}", why, sizeof(why)),
        0);
    ck_assert_uint_eq(f.w.nitems, 1);
    kl_close(&f);
}
END_TEST

/* Found by fuzz_kube_list (fuzz/regressions/kube_list/nul_in_annotation): a JSON string holding
 * "\u0000" was copied as a C string, cut at the NUL: an annotation lost every Mapping after it
 * without a word, a name or namespace changed. Such an object is now skipped, in the list and
 * in the watch alike (the directory source refuses such a Service too), and a continue token
 * or resourceVersion cut short refuses the page (a cut token would end the list early). */
START_TEST(kube_strings_with_a_nul_are_not_cut)
{
    struct kl_fixture f;
    char why[256];
    kl_open(&f);
    ck_assert_int_eq(
        kl_parse(&f,
                 "{\"items\":["
                 "{\"metadata\":{\"namespace\":\"n\",\"name\":\"a\\u0000b\"}},"
                 "{\"metadata\":{\"namespace\":\"n\",\"name\":\"c\",\"annotations\":"
                 "{\"getambassador.io/config\":\"prefix: /x/\\u0000---\\nname: hidden\"}}},"
                 "{\"metadata\":{\"namespace\":\"n\",\"name\":\"ok\",\"uid\":\"u\\u0000\"}},"
                 "{\"metadata\":{\"namespace\":\"n\",\"name\":\"kept\"}}],"
                 "\"metadata\":{\"resourceVersion\":\"1\"}}",
                 why, sizeof(why)),
        0);
    ck_assert_uint_eq(f.w.nitems, 1);
    ck_assert_str_eq(f.w.items[0].name, "kept");
    ck_assert_int_eq(kl_parse(&f,
                              "{\"items\":[],\"metadata\":{\"resourceVersion\":\"1\","
                              "\"continue\":\"tok\\u0000en\"}}",
                              why, sizeof(why)),
                     -EINVAL);
    ck_assert_int_eq(kl_parse(&f, "{\"items\":[],\"metadata\":{\"resourceVersion\":\"1\\u00002\"}}",
                              why, sizeof(why)),
                     -EINVAL);
    ck_assert_uint_eq(f.w.nitems, 1);

    static const char ev[] = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"namespace\":\"n\","
                             "\"name\":\"c\",\"resourceVersion\":\"9\",\"annotations\":"
                             "{\"getambassador.io/config\":\"a\\u0000b\"}}}}";
    ck_assert_int_eq(kube_watch_line(&f.w, ev, strlen(ev)), 0);
    ck_assert_ptr_null(cache_get(&f.cache, "n", "c"));
    ck_assert_str_eq(f.w.rv, "9");
    kl_close(&f);
}
END_TEST

/* The one Service of manifest text, asserting there is exactly one. */
static void sd_one(const char *text, struct dir_objects *o)
{
    struct ytree_error err = { 0 };
    int rc = source_dir_parse("test.json", text, strlen(text), o, &err);
    ck_assert_msg(rc == 0, "refused: line %d: %s", err.line, err.msg);
    ck_assert_uint_eq(o->n, 1);
}

/* Found by fuzz_source_dir (fuzz/regressions/source_dir/json_surrogate_pair): JSON that kubectl
 * reads was refused as a whole file, because libyaml reads JSON text as YAML, which differs:
 *   - "\ud83d\ude00", how Python's json.dump writes every character past U+FFFF: libyaml
 *     refuses escaped surrogates;
 *   - a key whose ':' is on a later line (json_key_colon_on_next_line), or a key over 1024
 *     characters: YAML's limits on implicit keys;
 *   - raw DEL or C1 characters (refused), U+0085 (read as a line break, folded to a space);
 *   - a tab before the top-level value.
 * JSON is now rewritten for libyaml first (source_dir.c, json_for_yaml), lines unchanged. */
START_TEST(source_dir_reads_json_as_json)
{
    struct dir_objects o;
    sd_one(
        "{\"kind\": \"Service\", \"apiVersion\": \"v1\", \"metadata\": {\"name\": \"e\","
        " \"annotations\": {\"getambassador.io/config\": \"caf\\u00e9 \\ud83d\\ude00 \\udc00\"}}}",
        &o);
    ck_assert_str_eq(o.v[0].annotation, "caf\xc3\xa9 \xf0\x9f\x98\x80 \xef\xbf\xbd");
    source_dir_objects_free(&o);

    sd_one("\t{\"kind\"\n:\n\"Service\", \"apiVersion\": \"v1\",\n\"metadata\": {\"name\": \"k\","
           "\n\"annotations\": {\"getambassador.io/config\"\n\n: \"a\x7f\xc2\x85\xc2\x80z\"}}}",
           &o);
    ck_assert_str_eq(o.v[0].name, "k");
    ck_assert_str_eq(o.v[0].annotation, "a\x7f\xc2\x85\xc2\x80z");
    ck_assert_int_eq(o.v[0].line, 7); /* the annotation's value: lines are where they were */
    source_dir_objects_free(&o);

    char text[2300];
    char key[1500];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    snprintf(text, sizeof(text),
             "{\"kind\": \"Service\", \"apiVersion\": \"v1\", \"metadata\": {\"name\": \"l\","
             " \"labels\": {\"%s\": \"v\"}}}",
             key);
    sd_one(text, &o);
    ck_assert_str_eq(o.v[0].name, "l");
    source_dir_objects_free(&o);
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {
        replay_annotation,
        replay_snapshot,
        replay_watch_split,
        replay_kubeconfig,
        replay_exec_cred,
        replay_request_head,
        annotation_lone_cr_does_not_hide_next_document,
        annotation_line_separator_does_not_hide_next_document,
        annotation_regex_flag_alone_keeps_the_table_routable,
        annotation_long_host_keeps_the_table_routable,
        annotation_cut_error_messages_stay_utf8,
        oracle_utf8_check_is_strict,
        oracle_ref_match_is_first_match,
        replay_request_target,
        replay_kube_list,
        replay_source_dir,
        replay_push_reply,
        kube_list_items_not_an_array_is_refused,
        kube_strings_with_a_nul_are_not_cut,
        source_dir_reads_json_as_json,
        NULL,
    };
    setenv("LEGATE_FUZZ_LOG", "off", 1); /* the targets log at debug level otherwise */
    return harness_main("fuzz_regressions", 120, NULL, NULL, tests);
}
