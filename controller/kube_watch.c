/* List, then watch, Services into the object cache — client-go's Reflector, as described in
 * reference/kubernetes-api.md:
 *
 *   LIST (paginated) ──ok──▶ replace the cache's "kube" entries ──▶ WATCH from the list's RV
 *     ▲                                                                 │
 *     │ 410 in the stream, other errors (after backoff)                 │ server closed it:
 *     └─────────────────────────────────────────────────────────────────┘ watch again from
 *                                                                         the last RV seen
 *
 * Every next attempt goes through one uv timer, even "at once", so a failure is never retried
 * from inside the callback that reported it; and kube_watch_decide makes every path that could
 * repeat quickly (a watch that ends at once, a second 401, a second 410 in a row) back off:
 * never a hot loop. */
#include "kube_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "annotation.h"
#include "log.h"
#include "xalloc.h"

#define JSON_DEPTH     64
#define SHORT_WATCH_MS 1000
#define WATCH_GRACE_S  60 /* curl's timeout is timeoutSeconds plus this: never shorter */
#define LIST_TIMEOUT_S 300

static void list_start(struct kube_watch *w, bool fresh);
static void watch_start(struct kube_watch *w);

/* ---- decisions ------------------------------------------------------------------------------ */

enum kube_next kube_watch_decide(const struct kube_watch_end *e)
{
    if (e->auth_failed)
        return KUBE_NEXT_WATCH_BACKOFF;
    /* A 401 is usually a rotated token: re-read it and retry at once, but only once. */
    if (e->status == 401)
        return e->retried_401 ? KUBE_NEXT_WATCH_BACKOFF : KUBE_NEXT_WATCH;
    /* History compacted past our RV: only a new list can tell what changed. A second expiry
     * with nothing received in between means the relist did not help: slow down. */
    if (e->expired)
        return e->expired_before && e->events == 0 ? KUBE_NEXT_RELIST_BACKOFF : KUBE_NEXT_RELIST;
    /* The server is busy, or not there: the RV is still good. */
    if (e->refused || e->status == 429)
        return KUBE_NEXT_WATCH_BACKOFF;
    if (e->status != 200 || e->stream_error)
        return KUBE_NEXT_RELIST_BACKOFF;
    /* A clean end (timeoutSeconds, a restarting server, a dropped connection) is normal, unless
     * the watch ended at once without a single event: then the server is not serving it. */
    if (e->events == 0 && e->duration_ms < SHORT_WATCH_MS)
        return KUBE_NEXT_WATCH_BACKOFF;
    return KUBE_NEXT_WATCH;
}

static const char *next_name(enum kube_next n)
{
    switch (n) {
    case KUBE_NEXT_WATCH:
        return "watch";
    case KUBE_NEXT_WATCH_BACKOFF:
        return "watch-after-backoff";
    case KUBE_NEXT_RELIST:
        return "relist";
    case KUBE_NEXT_RELIST_BACKOFF:
        return "relist-after-backoff";
    }
    return "?";
}

static void on_retry(uv_timer_t *t)
{
    struct kube_watch *w = container_of(t, struct kube_watch, timer);
    if (w->phase != KUBE_WAITING)
        return;
    if (w->relist_next)
        list_start(w, true);
    else
        watch_start(w);
}

/* Schedules the next attempt (through the timer even when it is immediate). Returns the delay. */
static uint64_t schedule(struct kube_watch *w, enum kube_next next)
{
    uint64_t delay = 0;
    if (next == KUBE_NEXT_WATCH_BACKOFF || next == KUBE_NEXT_RELIST_BACKOFF)
        delay = kube_backoff_next(&w->backoff, uv_now(w->loop), kube_rand());
    w->relist_next = next == KUBE_NEXT_RELIST || next == KUBE_NEXT_RELIST_BACKOFF;
    w->phase = KUBE_WAITING;
    w->req = NULL;
    uv_timer_start(&w->timer, on_retry, delay, 0);
    return delay;
}

/* ---- paths and objects ---------------------------------------------------------------------- */

/* Percent-encodes everything but RFC 3986's unreserved characters. */
static void append_escaped(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            buf_append(b, p, 1);
        } else {
            char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
            buf_append(b, e, 3);
        }
    }
}

static void services_path(const struct kube_watch *w, struct buf *b)
{
    if (w->ns != NULL) {
        buf_append_str(b, "/api/v1/namespaces/");
        append_escaped(b, w->ns);
        buf_append_str(b, "/services");
    } else {
        buf_append_str(b, "/api/v1/services");
    }
}

/* The string member key of o, or NULL. A JSON string may hold NUL bytes ("\u0000"), which a
 * C string would silently cut short: such a string is not returned, and *cut is set. */
static const char *jstr_whole(json_object *o, const char *key, bool *cut)
{
    json_object *v = NULL;
    if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    const char *s = json_object_get_string(v);
    if (strlen(s) != (size_t)json_object_get_string_len(v)) {
        *cut = true;
        return NULL;
    }
    return s;
}

static const char *jstr(json_object *o, const char *key)
{
    bool cut = false;
    return jstr_whole(o, key, &cut);
}

static json_object *jobj(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_object))
        return NULL;
    return v;
}

/* Reads what the cache needs from a Service object. Returns NULL, or why the object cannot be
 * used: no name or namespace, or a string that a NUL byte would cut (an annotation cut short
 * would lose Mappings without a word; the directory source refuses such a Service too). */
static const char *read_obj(json_object *svc, struct kube_obj *o)
{
    json_object *md = jobj(svc, "metadata");
    bool cut = false;
    memset(o, 0, sizeof(*o));
    o->ns = jstr_whole(md, "namespace", &cut);
    o->name = jstr_whole(md, "name", &cut);
    o->uid = jstr_whole(md, "uid", &cut);
    o->rv = jstr_whole(md, "resourceVersion", &cut);
    o->annotation = jstr_whole(jobj(md, "annotations"), ANNOTATION_KEY, &cut);
    if (cut)
        return "a metadata string holds a NUL byte";
    if (o->ns == NULL || *o->ns == '\0' || o->name == NULL || *o->name == '\0')
        return "no name or namespace";
    return NULL;
}

static void upsert(struct kube_watch *w, const struct kube_obj *o)
{
    struct cache_object co = { .ns = o->ns,
                               .name = o->name,
                               .uid = o->uid,
                               .version = o->rv,
                               .annotation = o->annotation,
                               .origin = KUBE_ORIGIN,
                               .line = 0 };
    cache_upsert(w->cache, &co);
}

static void set_rv(struct kube_watch *w, const char *rv)
{
    if (rv == NULL || *rv == '\0' || (w->rv != NULL && strcmp(w->rv, rv) == 0))
        return;
    free(w->rv);
    w->rv = xstrdup(rv);
}

/* ---- watch ---------------------------------------------------------------------------------- */

int kube_watch_line(struct kube_watch *w, const char *line, size_t len)
{
    int rc = -EINVAL;
    json_tokener_reset(w->tok);
    json_object *ev = json_tokener_parse_ex(w->tok, line, (int)len);
    if (ev == NULL || json_tokener_get_error(w->tok) != json_tokener_success ||
        json_tokener_get_parse_end(w->tok) != len || !json_object_is_type(ev, json_type_object)) {
        snprintf(w->watch_why, sizeof(w->watch_why), "watch event is not a JSON object");
        w->watch_stream_error = true;
        goto out;
    }
    const char *type = jstr(ev, "type");
    json_object *obj = jobj(ev, "object");
    if (type == NULL || obj == NULL) {
        snprintf(w->watch_why, sizeof(w->watch_why), "watch event without type or object");
        w->watch_stream_error = true;
        goto out;
    }
    if (strcmp(type, "ERROR") == 0) {
        json_object *code = NULL;
        int c = json_object_object_get_ex(obj, "code", &code) ? json_object_get_int(code) : 0;
        const char *reason = jstr(obj, "reason");
        const char *msg = jstr(obj, "message");
        /* Servers up to 1.17 said Gone, later ones Expired; both mean our RV is too old. */
        if (c == 410 ||
            (reason != NULL && (strcmp(reason, "Expired") == 0 || strcmp(reason, "Gone") == 0)))
            w->watch_expired = true;
        else
            w->watch_stream_error = true;
        snprintf(w->watch_why, sizeof(w->watch_why), "ERROR event %d %s: %s", c,
                 reason ? reason : "", msg ? msg : "");
        rc = 1;
        goto out;
    }
    struct kube_obj o;
    const char *unusable = read_obj(obj, &o);
    if (strcmp(type, "BOOKMARK") == 0) {
        set_rv(w, o.rv);
    } else if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0 ||
               strcmp(type, "DELETED") == 0) {
        if (unusable != NULL)
            log_warn("watch event skipped", "type=%s rv=%s reason=%s", type, o.rv ? o.rv : "",
                     unusable);
        else if (type[0] == 'D')
            cache_remove(w->cache, o.ns, o.name);
        else
            upsert(w, &o);
        set_rv(w, o.rv);
    } else {
        snprintf(w->watch_why, sizeof(w->watch_why), "unknown watch event type %.40s", type);
        w->watch_stream_error = true;
        goto out;
    }
    w->watch_events++;
    rc = 0;
out:
    if (ev != NULL)
        json_object_put(ev);
    return rc;
}

static int on_watch_line(void *arg, const char *line, size_t len)
{
    return kube_watch_line(arg, line, len) != 0 ? 1 : 0;
}

static int on_watch_data(void *arg, const char *p, size_t n)
{
    struct kube_watch *w = arg;
    int rc = kube_split_feed(&w->split, p, n, on_watch_line, w);
    if (rc == -E2BIG) {
        snprintf(w->watch_why, sizeof(w->watch_why), "watch event larger than %zu bytes",
                 KUBE_EVENT_MAX);
        w->watch_stream_error = true;
    }
    return rc != 0; /* an ERROR event, a bad line or an oversize one: the watch is over */
}

static void on_watch_done(void *arg, const struct kube_http_result *res)
{
    struct kube_watch *w = arg;
    struct kube_watch_end e = { .status = res->status,
                                .refused = res->refused,
                                .expired = w->watch_expired || res->status == 410,
                                .stream_error = w->watch_stream_error || res->too_big,
                                .auth_failed = res->auth_failed,
                                .retried_401 = w->retried_401,
                                .expired_before = w->expired_before,
                                .events = w->watch_events,
                                .duration_ms = uv_now(w->loop) - w->watch_started_ms };
    w->req = NULL;
    enum kube_next next = kube_watch_decide(&e);
    w->retried_401 = res->status == 401;
    w->expired_before = e.expired;
    if (e.expired) {
        /* Our RV is gone: the relist must read the current state, not "not older than" it. */
        w->rv_unavailable = true;
        w->relists_expired++;
    }

    char why[256];
    if (w->watch_why[0] != '\0')
        snprintf(why, sizeof(why), "%s", w->watch_why);
    else if (res->status != 200 && res->status != 0)
        kube_http_status_message(res, why, sizeof(why));
    else
        snprintf(why, sizeof(why), "%s", res->error != NULL ? res->error : "closed by the server");
    bool error = next == KUBE_NEXT_WATCH_BACKOFF || next == KUBE_NEXT_RELIST_BACKOFF ||
                 (res->status != 200 && !e.expired);
    uint64_t delay = schedule(w, next);
    if (error)
        log_warn("watch failed",
                 "status=%ld reason=%s rv=%s events=%lu next=%s backoff_ms=%" PRIu64, res->status,
                 why, w->rv ? w->rv : "", w->watch_events, next_name(next), delay);
    else
        log_info("watch ended", "reason=%s rv=%s events=%lu duration_ms=%" PRIu64 " next=%s", why,
                 w->rv ? w->rv : "", w->watch_events, e.duration_ms, next_name(next));
}

static void watch_start(struct kube_watch *w)
{
    uint64_t timeout = kube_rand_range(KUBE_WATCH_TIMEOUT_MIN_S, KUBE_WATCH_TIMEOUT_MAX_S);
    struct buf path;
    buf_init(&path, (size_t)1 << 20);
    services_path(w, &path);
    buf_append_str(&path, "?watch=true&resourceVersion=");
    append_escaped(&path, w->rv != NULL ? w->rv : "0");
    buf_printf(&path, "&allowWatchBookmarks=true&timeoutSeconds=%" PRIu64, timeout);

    kube_split_reset(&w->split);
    w->watch_events = 0;
    w->watch_expired = false;
    w->watch_stream_error = false;
    w->watch_why[0] = '\0';
    w->watch_started_ms = uv_now(w->loop);
    w->watches++;
    w->phase = KUBE_WATCHING;
    struct kube_http_opts o = { .method = "GET",
                                .path = path.data,
                                .timeout_s = (long)timeout + WATCH_GRACE_S,
                                .on_data = on_watch_data,
                                .on_done = on_watch_done,
                                .arg = w };
    log_info("watch started", "rv=%s timeout_s=%" PRIu64 " namespace=%s", w->rv ? w->rv : "0",
             timeout, w->ns ? w->ns : "*");
    w->req = kube_http_start(w->http, &o);
    buf_free(&path);
}

/* ---- list ----------------------------------------------------------------------------------- */

static void items_clear(struct kube_watch *w)
{
    for (size_t i = 0; i < w->nitems; i++) {
        struct kube_item *it = &w->items[i];
        free(it->ns);
        free(it->name);
        free(it->uid);
        free(it->rv);
        free(it->annotation);
    }
    free(w->items);
    w->items = NULL;
    w->nitems = w->capitems = 0;
}

/* Replaces the cache's view in one go, so the compiler never sees half a list: everything
 * listed is upserted, and what was not listed (deleted while we were not watching) is swept. */
static void list_apply(struct kube_watch *w, const char *rv)
{
    cache_mark(w->cache, KUBE_ORIGIN);
    for (size_t i = 0; i < w->nitems; i++) {
        struct kube_item *it = &w->items[i];
        struct kube_obj o = { it->ns, it->name, it->uid, it->rv, it->annotation };
        upsert(w, &o);
    }
    size_t removed = cache_sweep(w->cache, KUBE_ORIGIN);
    set_rv(w, rv);
    w->lists++;
    log_info("list done", "count=%zu rv=%s removed=%zu pages=%u namespace=%s", w->nitems,
             w->rv ? w->rv : "", removed, w->pages, w->ns ? w->ns : "*");
    items_clear(w);
    w->rv_unavailable = false;
    w->synced = true;
    if (w->on_synced != NULL)
        w->on_synced(w->arg);
}

int kube_list_parse(struct kube_watch *w, const char *body, size_t len, json_object **root,
                    const char **rv, const char **cont, char *why, size_t whylen)
{
    json_tokener *tok = json_tokener_new_ex(JSON_DEPTH);
    json_object *list = json_tokener_parse_ex(tok, body, (int)len);
    bool ok = list != NULL && json_tokener_get_error(tok) == json_tokener_success;
    json_tokener_free(tok);
    *root = list;
    json_object *items = NULL;
    if (!ok || !json_object_is_type(list, json_type_object) ||
        !json_object_object_get_ex(list, "items", &items)) {
        snprintf(why, whylen, "the list response is not a list");
        return -EINVAL;
    }
    /* items null is an empty list; anything else that is not an array would be taken for
     * one, and applying it would sweep every Service from the cache. */
    if (items != NULL && !json_object_is_type(items, json_type_array)) {
        snprintf(why, whylen, "the list response's items is not an array");
        return -EINVAL;
    }
    json_object *md = jobj(list, "metadata");
    bool cut = false;
    *rv = jstr_whole(md, "resourceVersion", &cut);
    *cont = jstr_whole(md, "continue", &cut);
    if (cut) {
        /* A continue token cut short would end the list early: refuse the page. */
        snprintf(why, whylen, "the list response's metadata holds a NUL byte");
        return -EINVAL;
    }
    if (*rv == NULL || **rv == '\0') {
        snprintf(why, whylen, "the list response has no metadata.resourceVersion");
        return -EINVAL;
    }
    size_t n = items != NULL ? json_object_array_length(items) : 0;
    for (size_t i = 0; i < n; i++) {
        struct kube_obj o;
        const char *unusable = read_obj(json_object_array_get_idx(items, i), &o);
        if (unusable != NULL) {
            log_warn("listed Service skipped", "index=%zu reason=%s", i, unusable);
            continue;
        }
        if (w->nitems == w->capitems) {
            w->capitems = w->capitems ? w->capitems * 2 : 64;
            w->items = xrealloc(w->items, w->capitems * sizeof(*w->items));
        }
        struct kube_item *it = &w->items[w->nitems++];
        it->ns = xstrdup(o.ns);
        it->name = xstrdup(o.name);
        it->uid = xstrdup(o.uid);
        it->rv = xstrdup(o.rv);
        it->annotation = xstrdup(o.annotation);
    }
    return 0;
}

static void on_list_done(void *arg, const struct kube_http_result *res)
{
    struct kube_watch *w = arg;
    char why[256] = "";
    json_object *root = NULL;
    w->req = NULL;
    if (res->status == 200 && res->curl_code == 0 && !res->too_big) {
        const char *rv = NULL, *cont = NULL;
        if (kube_list_parse(w, res->body, res->len, &root, &rv, &cont, why, sizeof(why)) == 0) {
            w->retried_401 = false;
            w->pages++;
            if (cont != NULL && *cont != '\0' && !w->unpaginated) {
                free(w->cont);
                w->cont = xstrdup(cont);
                list_start(w, false);
            } else {
                list_apply(w, rv);
                watch_start(w);
            }
            goto out;
        }
    }
    enum kube_next next = KUBE_NEXT_RELIST_BACKOFF;
    if (why[0] == '\0')
        kube_http_status_message(res, why, sizeof(why));
    if (res->status == 410 && w->cont != NULL && !w->unpaginated) {
        /* The continue token expired between pages: one list without limit instead. */
        log_info("list continue token expired, listing without pagination", "reason=%s", why);
        items_clear(w);
        w->pages = 0;
        w->unpaginated = true;
        free(w->cont);
        w->cont = NULL;
        list_start(w, false);
        goto out;
    }
    if (res->status == 410 && !w->rv_unavailable) {
        /* The RV we listed at is gone from the server's history: list the current state. */
        w->rv_unavailable = true;
        next = KUBE_NEXT_RELIST;
    } else if (res->status == 401 && !w->retried_401) {
        next = KUBE_NEXT_RELIST; /* with the token re-read */
    }
    w->retried_401 = res->status == 401;
    uint64_t delay = schedule(w, next);
    log_warn("list failed", "status=%ld reason=%s next=%s backoff_ms=%" PRIu64, res->status, why,
             next_name(next), delay);
out:
    if (root != NULL)
        json_object_put(root);
}

/* fresh: a new list from the first page; otherwise the next page of the current one. */
static void list_start(struct kube_watch *w, bool fresh)
{
    struct buf path;
    buf_init(&path, (size_t)1 << 20);
    if (fresh) {
        items_clear(w);
        free(w->cont);
        w->cont = NULL;
        w->unpaginated = false;
        w->pages = 0;
    }
    services_path(w, &path);
    if (w->cont != NULL) {
        /* Later pages carry no resourceVersion: the server answers 400 to both. */
        buf_printf(&path, "?limit=%d&continue=", KUBE_LIST_LIMIT);
        append_escaped(&path, w->cont);
    } else {
        /* The first list may come from the watch cache (RV 0); after an expiry it must be
         * current (no RV); after other failures, not older than what we saw. */
        const char *rv = w->rv_unavailable ? NULL : (w->rv != NULL ? w->rv : "0");
        if (!w->unpaginated)
            buf_printf(&path, "?limit=%d", KUBE_LIST_LIMIT);
        if (rv != NULL) {
            buf_append_str(&path, w->unpaginated ? "?resourceVersion=" : "&resourceVersion=");
            append_escaped(&path, rv);
        }
    }
    w->phase = KUBE_LISTING;
    struct kube_http_opts o = { .method = "GET",
                                .path = path.data,
                                .timeout_s = LIST_TIMEOUT_S,
                                .max_body = KUBE_LIST_MAX,
                                .on_done = on_list_done,
                                .arg = w };
    w->req = kube_http_start(w->http, &o);
    buf_free(&path);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

void kube_watch_init(struct kube_watch *w, uv_loop_t *loop, struct kube_http *http,
                     struct cache *cache, const char *ns, kube_synced_cb on_synced, void *arg)
{
    memset(w, 0, sizeof(*w));
    w->loop = loop;
    w->http = http;
    w->cache = cache;
    w->ns = xstrdup(ns);
    w->on_synced = on_synced;
    w->arg = arg;
    w->phase = KUBE_IDLE;
    uv_timer_init(loop, &w->timer);
    kube_backoff_init(&w->backoff, KUBE_BACKOFF_BASE_MS, KUBE_BACKOFF_CAP_MS,
                      KUBE_BACKOFF_RESET_MS);
    kube_split_init(&w->split, KUBE_EVENT_MAX);
    w->tok = json_tokener_new_ex(JSON_DEPTH);
}

void kube_watch_start(struct kube_watch *w)
{
    list_start(w, true);
}

static void on_watch_timer_closed(uv_handle_t *h)
{
    struct kube_watch *w = h->data;
    if (w->on_closed != NULL)
        w->on_closed(w->closed_arg);
}

void kube_watch_close(struct kube_watch *w, kube_closed_cb cb, void *arg)
{
    if (w->req != NULL)
        kube_http_cancel(w->req);
    w->req = NULL;
    w->phase = KUBE_CLOSED;
    items_clear(w);
    free(w->cont);
    free(w->rv);
    free(w->ns);
    w->cont = w->rv = w->ns = NULL;
    kube_split_free(&w->split);
    if (w->tok != NULL)
        json_tokener_free(w->tok);
    w->tok = NULL;
    w->on_closed = cb;
    w->closed_arg = arg;
    w->timer.data = w;
    uv_close((uv_handle_t *)&w->timer, on_watch_timer_closed);
}
