/* libFuzzer target: a Kubernetes watch stream, from HTTP chunks to the object cache.
 *
 * Input: byte 0 picks the line cap, byte 1 the number n (0-7) of chunk sizes, the next n bytes
 * are the sizes (cycled; a 0 feeds an empty chunk in the first round, one byte after), the
 * rest is the stream. The stream goes
 * through kube_split_feed in those chunks, and each line through kube_watch_line, the function
 * the watch itself calls (on_watch_line), stopping where it stops. Then:
 *   - the lines must not depend on where the chunks were cut: feeding the whole stream at once
 *     gives the same lines (those of the chunked feed are a prefix when the watch stopped it),
 *     the same end (too long or not), the same unfinished tail;
 *   - no line is empty, holds a '\n', or is longer than the cap;
 *   - an event the watch accepted is in the cache as its JSON says (parsed again here with
 *     json-c: ADDED/MODIFIED upsert namespace/name with its uid and annotation, DELETED
 *     removes), and one it refused says why. */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "annotation.h"
#include "cache.h"
#include "fuzz.h"
#include "kube_internal.h"
#include "strmap.h"
#include "xalloc.h"

struct ws_lines {
    uint64_t *hash; /* per line: length and bytes */
    size_t n, cap;
};

struct ws_ctx {
    struct ws_lines lines;
    struct kube_watch *w; /* NULL: only record */
    size_t max_line;
};

static void ws_record(struct ws_lines *l, const char *line, size_t len)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->hash = xrealloc(l->hash, l->cap * sizeof(*l->hash));
    }
    l->hash[l->n++] = strmap_hash(strmap_hash(STRMAP_HASH_INIT, &len, sizeof(len)), line, len);
}

static bool ws_str_eq(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* What an accepted event must have done to the cache. */
static void ws_check_applied(struct kube_watch *w, const char *line, size_t len)
{
    json_tokener *tok = json_tokener_new_ex(64);
    json_object *ev = json_tokener_parse_ex(tok, line, (int)len);
    FUZZ_CHECK(ev != NULL && json_object_is_type(ev, json_type_object));
    const char *type = fuzz_jstr(ev, "type");
    json_object *md = fuzz_jobj(fuzz_jobj(ev, "object"), "metadata");
    /* A string a NUL byte would cut makes the object unusable, as a missing name does. */
    bool cut = false;
    const char *ns = fuzz_jcstr(md, "namespace", &cut), *name = fuzz_jcstr(md, "name", &cut);
    const char *uid = fuzz_jcstr(md, "uid", &cut), *rv = fuzz_jcstr(md, "resourceVersion", &cut);
    const char *ann = fuzz_jcstr(fuzz_jobj(md, "annotations"), ANNOTATION_KEY, &cut);
    FUZZ_CHECK(type != NULL);
    bool named = !cut && ns != NULL && *ns != '\0' && name != NULL && *name != '\0';
    if (named && strcmp(type, "DELETED") == 0) {
        FUZZ_CHECK(cache_get(w->cache, ns, name) == NULL);
    } else if (named && (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0)) {
        const struct cache_entry *e = cache_get(w->cache, ns, name);
        FUZZ_CHECK(e != NULL);
        /* The cache keys on "ns/name" because Kubernetes names never hold '/'; the watch
         * trusts the API server on that, so only such names are checked for identity. */
        if (strchr(ns, '/') == NULL && strchr(name, '/') == NULL)
            FUZZ_CHECK(strcmp(e->ns, ns) == 0 && strcmp(e->name, name) == 0);
        FUZZ_CHECK(ws_str_eq(e->uid, uid));
        FUZZ_CHECK(ws_str_eq(e->annotation, ann));
        FUZZ_CHECK(ws_str_eq(e->origin, KUBE_ORIGIN));
    } else {
        FUZZ_CHECK(strcmp(type, "BOOKMARK") == 0 || !named);
    }
    /* The resourceVersion to resume from is the last one seen. */
    if (rv != NULL && *rv != '\0')
        FUZZ_CHECK(w->rv != NULL && strcmp(w->rv, rv) == 0);
    json_object_put(ev);
    json_tokener_free(tok);
}

static int ws_on_line(void *arg, const char *line, size_t len)
{
    struct ws_ctx *c = arg;
    FUZZ_CHECK(len > 0 && len <= c->max_line);
    FUZZ_CHECK(memchr(line, '\n', len) == NULL);
    ws_record(&c->lines, line, len);
    if (c->w == NULL)
        return 0;
    unsigned long events = c->w->watch_events;
    int rc = kube_watch_line(c->w, line, len);
    if (rc == 0) {
        FUZZ_CHECK(c->w->watch_events == events + 1);
        ws_check_applied(c->w, line, len);
    } else {
        FUZZ_CHECK(c->w->watch_why[0] != '\0');
        FUZZ_CHECK(c->w->watch_expired || c->w->watch_stream_error);
    }
    return rc != 0 ? 1 : 0; /* as on_watch_line */
}

static uv_loop_t ws_loop;
static bool ws_loop_ready;

int fuzz_watch_split(const uint8_t *data, size_t size)
{
    static const size_t caps[4] = { KUBE_EVENT_MAX, 64, 512, 4096 };
    if (size < 2)
        return 0;
    fuzz_logs(size & 1);
    if (!ws_loop_ready) {
        FUZZ_CHECK(uv_loop_init(&ws_loop) == 0);
        ws_loop_ready = true;
    }
    size_t max_line = caps[data[0] & 3];
    size_t nsizes = data[1] & 7;
    if (size < 2 + nsizes)
        return 0;
    const uint8_t *sizes = data + 2;
    const char *stream = (const char *)data + 2 + nsizes;
    size_t len = size - 2 - nsizes;

    struct cache cache;
    struct kube_watch w;
    cache_init(&cache, NULL, NULL);
    kube_watch_init(&w, &ws_loop, NULL, &cache, NULL, NULL, NULL);
    /* kube_watch_init sizes the splitter for real watches; the cap under test is ours. */
    kube_split_free(&w.split);
    kube_split_init(&w.split, max_line);

    struct ws_ctx chunked = { .w = &w, .max_line = max_line };
    int rc = 0;
    for (size_t off = 0, k = 0; off < len && rc == 0; k++) {
        size_t n = nsizes ? sizes[k % nsizes] : len;
        if (n == 0 && k >= nsizes)
            n = 1; /* empty chunks in the first round only, so the loop ends */
        if (n > len - off)
            n = len - off;
        rc = kube_split_feed(&w.split, stream + off, n, ws_on_line, &chunked);
        off += n;
    }
    size_t pending = kube_split_pending(&w.split);
    FUZZ_CHECK(rc == 0 || rc == 1 || rc == -E2BIG);
    FUZZ_CHECK(pending <= max_line);

    struct kube_split whole;
    struct ws_ctx once = { .w = NULL, .max_line = max_line };
    kube_split_init(&whole, max_line);
    int rc1 = kube_split_feed(&whole, stream, len, ws_on_line, &once);
    FUZZ_CHECK(rc1 == 0 || rc1 == -E2BIG);
    if (rc == 1) {
        FUZZ_CHECK(chunked.lines.n <= once.lines.n);
    } else {
        FUZZ_CHECK(rc == rc1);
        FUZZ_CHECK(chunked.lines.n == once.lines.n);
        if (rc == 0)
            FUZZ_CHECK(pending == kube_split_pending(&whole));
    }
    for (size_t i = 0; i < chunked.lines.n; i++)
        FUZZ_CHECK(chunked.lines.hash[i] == once.lines.hash[i]);

    kube_split_free(&whole);
    free(chunked.lines.hash);
    free(once.lines.hash);
    kube_watch_close(&w, NULL, NULL);
    uv_run(&ws_loop, UV_RUN_DEFAULT); /* closes the watch's timer */
    cache_free(&cache);
    return 0;
}

FUZZ_ENTRY(fuzz_watch_split)
