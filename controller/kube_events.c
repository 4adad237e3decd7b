/* Kubernetes Events on Services whose Mappings are invalid, so `kubectl describe service`
 * tells the author what is wrong where they look first.
 *
 * Shaped after client-go's event recorder: an Event is only posted when a Service's set of
 * errors changes (not at every compile, which unrelated Services trigger); a repeat of an
 * Event already posted — same Service uid, type, reason and message — PATCHes its count and
 * lastTimestamp instead of posting a new one (an LRU remembers what was posted); a token
 * bucket caps the rate and drops the excess with a counter. Posting is fire-and-forget on the
 * loop: a failure (403 without RBAC, 404, network) is logged once per kind of failure and never
 * touches routing. */
#include "kube_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "log.h"
#include "xalloc.h"

#define EVENT_COMPONENT "legate"
#define REASON_INVALID  "InvalidMapping"
#define REASON_VALID    "MappingsValid"

/* Failure kinds, each logged once until a post succeeds again. */
enum {
    FAIL_FORBIDDEN = 1,
    FAIL_NOT_FOUND = 2,
    FAIL_NETWORK = 4,
    FAIL_REJECTED = 8,
    FAIL_OTHER = 16
};

/* What the last report said about one Service. */
struct svc_state {
    uint64_t hash; /* of its error list */
    bool has_errors;
    unsigned long gen; /* compile generation of the last report */
};

/* A post in flight. */
struct ev_post {
    struct kube_events *ev;
    struct kube_http_req *req;
    char *key;
    char *ns;
    char *fallback; /* for a PATCH: the full Event to POST if it is gone (404) */
    bool patch;
    struct ev_post *prev, *next;
};

struct kube_events {
    uv_loop_t *loop;
    struct kube_http *http;
    struct kube_bucket bucket;
    struct kube_lru lru;
    struct strmap svcs; /* uid -> struct svc_state * */
    unsigned long gen;
    struct ev_post *posts;
    struct kube_events_stats stats;
    unsigned logged; /* FAIL_* kinds logged since the last success */
    bool dropping;
    uint64_t last_nanos;
};

/* ---- token bucket --------------------------------------------------------------------------- */

void kube_bucket_init(struct kube_bucket *b, uint64_t burst, uint64_t refill_ms, uint64_t now_ms)
{
    b->burst = burst;
    b->refill_ms = refill_ms > 0 ? refill_ms : 1;
    b->tokens_milli = burst * 1000;
    b->last_ms = now_ms;
}

bool kube_bucket_take(struct kube_bucket *b, uint64_t now_ms)
{
    if (now_ms > b->last_ms) {
        uint64_t add = (now_ms - b->last_ms) * 1000 / b->refill_ms;
        uint64_t max = b->burst * 1000;
        b->tokens_milli = add >= max - b->tokens_milli ? max : b->tokens_milli + add;
        b->last_ms = now_ms;
    }
    if (b->tokens_milli < 1000)
        return false;
    b->tokens_milli -= 1000;
    return true;
}

/* ---- LRU ------------------------------------------------------------------------------------ */

void kube_lru_init(struct kube_lru *l, size_t max)
{
    strmap_init(&l->map);
    l->head = l->tail = NULL;
    l->max = max > 0 ? max : 1;
}

static void lru_unlink(struct kube_lru *l, struct kube_lru_entry *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(struct kube_lru *l, struct kube_lru_entry *e)
{
    e->prev = NULL;
    e->next = l->head;
    if (l->head != NULL)
        l->head->prev = e;
    l->head = e;
    if (l->tail == NULL)
        l->tail = e;
}

static void lru_entry_free(struct kube_lru_entry *e)
{
    free(e->key);
    free(e->name);
    free(e->ns);
    free(e);
}

void kube_lru_free(struct kube_lru *l)
{
    for (struct kube_lru_entry *e = l->head, *next; e != NULL; e = next) {
        next = e->next;
        lru_entry_free(e);
    }
    strmap_free(&l->map, NULL);
    l->head = l->tail = NULL;
}

struct kube_lru_entry *kube_lru_get(struct kube_lru *l, const char *key)
{
    struct kube_lru_entry *e = strmap_get(&l->map, key);
    if (e != NULL && e != l->head) {
        lru_unlink(l, e);
        lru_push_front(l, e);
    }
    return e;
}

void kube_lru_del(struct kube_lru *l, const char *key)
{
    struct kube_lru_entry *e = strmap_del(&l->map, key);
    if (e != NULL) {
        lru_unlink(l, e);
        lru_entry_free(e);
    }
}

struct kube_lru_entry *kube_lru_put(struct kube_lru *l, const char *key, const char *name,
                                    const char *ns, int64_t first)
{
    while (l->map.count >= l->max && l->tail != NULL)
        kube_lru_del(l, l->tail->key);
    struct kube_lru_entry *e = xcalloc(1, sizeof(*e));
    e->key = xstrdup(key);
    e->name = xstrdup(name);
    e->ns = xstrdup(ns);
    e->count = 1;
    e->first = first;
    strmap_put(&l->map, key, e);
    lru_push_front(l, e);
    return e;
}

/* ---- Event bodies --------------------------------------------------------------------------- */

static void add_str(json_object *o, const char *key, const char *val)
{
    json_object_object_add(o, key, json_object_new_string(val != NULL ? val : ""));
}

static char *to_text(json_object *o)
{
    char *s = xstrdup(
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return s;
}

char *kube_event_json(const struct kube_event *e)
{
    char first[32], last[32];
    kube_time_format(e->first, first, sizeof(first));
    kube_time_format(e->last, last, sizeof(last));
    json_object *o = json_object_new_object();
    add_str(o, "apiVersion", "v1");
    add_str(o, "kind", "Event");
    json_object *md = json_object_new_object();
    add_str(md, "name", e->name);
    add_str(md, "namespace", e->ns);
    json_object_object_add(o, "metadata", md);
    /* kubectl describe finds Events by all four of kind, name, namespace and uid. */
    json_object *io = json_object_new_object();
    add_str(io, "apiVersion", "v1");
    add_str(io, "kind", "Service");
    add_str(io, "name", e->svc);
    add_str(io, "namespace", e->ns);
    add_str(io, "uid", e->uid);
    json_object_object_add(o, "involvedObject", io);
    add_str(o, "reason", e->reason);
    add_str(o, "message", e->message);
    add_str(o, "type", e->type);
    json_object *src = json_object_new_object();
    add_str(src, "component", EVENT_COMPONENT);
    json_object_object_add(o, "source", src);
    add_str(o, "firstTimestamp", first);
    add_str(o, "lastTimestamp", last);
    json_object_object_add(o, "count", json_object_new_int((int32_t)e->count));
    return to_text(o);
}

char *kube_event_patch_json(unsigned count, int64_t last)
{
    char ts[32];
    kube_time_format(last, ts, sizeof(ts));
    json_object *o = json_object_new_object();
    json_object_object_add(o, "count", json_object_new_int((int32_t)count));
    add_str(o, "lastTimestamp", ts);
    return to_text(o);
}

void kube_event_name(const char *svc, uint64_t nanos, char *out, size_t outlen)
{
    /* client-go names Events "<object>.<unix nanos in hex>". */
    char suffix[24];
    snprintf(suffix, sizeof(suffix), ".%016" PRIx64, nanos);
    size_t sl = strlen(suffix);
    if (outlen <= sl) {
        if (outlen > 0)
            out[0] = '\0';
        return;
    }
    size_t room = outlen - sl - 1;
    size_t n = strlen(svc);
    if (n > room) {
        /* A cut name must still end like a DNS label. */
        n = room;
        while (n > 0 && (svc[n - 1] == '-' || svc[n - 1] == '.'))
            n--;
    }
    memcpy(out, svc, n);
    memcpy(out + n, suffix, sl + 1);
}

void kube_event_message(const struct route_error *e, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    struct buf b;
    buf_init(&b, (size_t)1 << 20);
    buf_printf(&b, "Mapping \"%s\"", e->mapping ? e->mapping : "?");
    if (e->line > 0 && e->field != NULL && *e->field != '\0')
        buf_printf(&b, " (line %d, field %s)", e->line, e->field);
    else if (e->line > 0)
        buf_printf(&b, " (line %d)", e->line);
    else if (e->field != NULL && *e->field != '\0')
        buf_printf(&b, " (field %s)", e->field);
    buf_printf(&b, ": %s", e->message ? e->message : "invalid");
    size_t n = b.len < outlen - 1 ? b.len : outlen - 1;
    /* A message past the cap is cut, at a character boundary so it stays valid UTF-8. */
    if (n < b.len)
        while (n > 0 && ((unsigned char)b.data[n] & 0xc0) == 0x80)
            n--;
    memcpy(out, b.data, n);
    out[n] = '\0';
    buf_free(&b);
}

/* ---- posting -------------------------------------------------------------------------------- */

static void post_free(struct ev_post *p)
{
    struct kube_events *ev = p->ev;
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        ev->posts = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    free(p->key);
    free(p->ns);
    free(p->fallback);
    free(p);
}

static void failed(struct kube_events *ev, const struct ev_post *p,
                   const struct kube_http_result *res)
{
    unsigned kind;
    const char *hint;
    if (res->status == 403) {
        kind = FAIL_FORBIDDEN;
        hint = "the controller's role needs create and patch on events";
    } else if (res->status == 404) {
        kind = FAIL_NOT_FOUND;
        hint = "the namespace or the events API is missing";
    } else if (res->status == 0) {
        kind = FAIL_NETWORK;
        hint = "the API server could not be reached";
    } else if (res->status == 400 || res->status == 422) {
        kind = FAIL_REJECTED;
        hint = "the API server rejected the Event";
    } else {
        kind = FAIL_OTHER;
        hint = "";
    }
    ev->stats.failed++;
    if (ev->logged & kind)
        return;
    ev->logged |= kind;
    char why[256];
    kube_http_status_message(res, why, sizeof(why));
    log_warn("cannot post Kubernetes Events (logged once per kind of failure)",
             "status=%ld error=%s ns=%s hint=%s", res->status, why, p->ns, hint);
}

static void post_send(struct kube_events *ev, struct ev_post *p, const char *method,
                      const char *path, const char *body, const char *ctype);

static void on_post_done(void *arg, const struct kube_http_result *res)
{
    struct ev_post *p = arg;
    struct kube_events *ev = p->ev;
    p->req = NULL;
    if (res->status >= 200 && res->status < 300) {
        if (ev->logged != 0)
            log_info("Kubernetes Events are posted again", "ns=%s", p->ns);
        ev->logged = 0;
    } else if (p->patch && res->status == 404 && p->fallback != NULL) {
        /* The Event expired on the server (they live about an hour): post it anew. */
        struct kube_lru_entry *e = kube_lru_get(&ev->lru, p->key);
        if (e != NULL) {
            struct buf path;
            buf_init(&path, 4096);
            buf_printf(&path, "/api/v1/namespaces/%s/events", p->ns);
            struct ev_post *q = xcalloc(1, sizeof(*q));
            q->key = xstrdup(p->key);
            q->ns = xstrdup(p->ns);
            post_send(ev, q, "POST", path.data, p->fallback, "application/json");
            buf_free(&path);
        }
    } else if (res->status == 409 && !p->patch) {
        /* AlreadyExists: the same name was posted already; nothing to add. */
    } else {
        /* Forget a failed post, so the next repeat posts again rather than patching. */
        if (!p->patch)
            kube_lru_del(&ev->lru, p->key);
        failed(ev, p, res);
    }
    post_free(p);
}

/* Takes ownership of p. */
static void post_send(struct kube_events *ev, struct ev_post *p, const char *method,
                      const char *path, const char *body, const char *ctype)
{
    p->ev = ev;
    p->next = ev->posts;
    if (ev->posts != NULL)
        ev->posts->prev = p;
    ev->posts = p;
    p->patch = strcmp(method, "PATCH") == 0;
    if (p->patch)
        ev->stats.patched++;
    else
        ev->stats.posted++;
    struct kube_http_opts o = { .method = method,
                                .path = path,
                                .body = body,
                                .content_type = ctype,
                                .timeout_s = 30,
                                .on_done = on_post_done,
                                .arg = p };
    p->req = kube_http_start(ev->http, &o);
}

static uint64_t unique_nanos(struct kube_events *ev)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t n = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    if (n <= ev->last_nanos)
        n = ev->last_nanos + 1;
    ev->last_nanos = n;
    return n;
}

static void emit(struct kube_events *ev, const char *ns, const char *svc, const char *uid,
                 const char *type, const char *reason, const char *message)
{
    if (!kube_bucket_take(&ev->bucket, uv_now(ev->loop))) {
        ev->stats.dropped++;
        if (!ev->dropping)
            log_warn("too many Kubernetes Events, dropping some", "ns=%s svc=%s dropped=%lu", ns,
                     svc, ev->stats.dropped);
        ev->dropping = true;
        return;
    }
    if (ev->dropping)
        log_info("Kubernetes Events below the rate limit again", "dropped=%lu", ev->stats.dropped);
    ev->dropping = false;

    int64_t now = (int64_t)time(NULL);
    struct buf key, path;
    buf_init(&key, (size_t)1 << 20);
    buf_init(&path, 4096);
    buf_printf(&key, "%s\x1f%s\x1f%s\x1f%s", uid, type, reason, message);
    struct kube_lru_entry *e = kube_lru_get(&ev->lru, key.data);
    struct ev_post *p = xcalloc(1, sizeof(*p));
    p->key = xstrdup(key.data);
    p->ns = xstrdup(ns);
    if (e != NULL) {
        e->count++;
        struct kube_event full = { e->name, e->ns,   svc,      uid, type,
                                   reason,  message, e->first, now, e->count };
        p->fallback = kube_event_json(&full);
        char *patch = kube_event_patch_json(e->count, now);
        buf_printf(&path, "/api/v1/namespaces/%s/events/%s", e->ns, e->name);
        post_send(ev, p, "PATCH", path.data, patch, "application/merge-patch+json");
        free(patch);
    } else {
        char name[128];
        kube_event_name(svc, unique_nanos(ev), name, sizeof(name));
        kube_lru_put(&ev->lru, key.data, name, ns, now);
        struct kube_event full = { name, ns, svc, uid, type, reason, message, now, now, 1 };
        char *body = kube_event_json(&full);
        buf_printf(&path, "/api/v1/namespaces/%s/events", ns);
        post_send(ev, p, "POST", path.data, body, "application/json");
        free(body);
    }
    log_debug("posting Kubernetes Event", "ns=%s svc=%s type=%s reason=%s repeat=%s", ns, svc, type,
              reason, e != NULL ? "yes" : "no");
    buf_free(&key);
    buf_free(&path);
}

/* ---- reports -------------------------------------------------------------------------------- */

static uint64_t errors_hash(const struct route_error *errs, size_t n)
{
    uint64_t h = STRMAP_HASH_INIT;
    for (size_t i = 0; i < n; i++) {
        const char *parts[] = { errs[i].mapping, errs[i].field, errs[i].message };
        for (size_t k = 0; k < ARRAY_SIZE(parts); k++) {
            const char *s = parts[k] != NULL ? parts[k] : "";
            h = strmap_hash(h, s, strlen(s) + 1);
        }
        h = strmap_hash(h, &errs[i].line, sizeof(errs[i].line));
    }
    return h;
}

void kube_events_report(struct kube_events *ev, const char *ns, const char *svc, const char *uid,
                        const struct route_error *errs, size_t n)
{
    /* Without a uid kubectl describe would not show the Event: nothing to post. */
    if (ev == NULL || ns == NULL || svc == NULL || uid == NULL || *uid == '\0')
        return;
    struct svc_state *st = strmap_get(&ev->svcs, uid);
    if (n == 0) {
        if (st != NULL && st->has_errors)
            emit(ev, ns, svc, uid, "Normal", REASON_VALID, "all Mappings are valid");
        free(strmap_del(&ev->svcs, uid));
        return;
    }
    uint64_t h = errors_hash(errs, n);
    if (st != NULL && st->hash == h) {
        st->gen = ev->gen;
        return;
    }
    if (st == NULL) {
        if (ev->svcs.count >= KUBE_EVENTS_SERVICE_MAX)
            return; /* bounded; kube_events_compiled frees room */
        st = xcalloc(1, sizeof(*st));
        strmap_put(&ev->svcs, uid, st);
    }
    st->hash = h;
    st->has_errors = true;
    st->gen = ev->gen;
    for (size_t i = 0; i < n; i++) {
        char msg[KUBE_EVENT_MESSAGE_MAX];
        kube_event_message(&errs[i], msg, sizeof(msg));
        emit(ev, ns, svc, uid, "Warning", REASON_INVALID, msg);
    }
}

void kube_events_compiled(struct kube_events *ev)
{
    if (ev == NULL)
        return;
    struct strmap_iter it;
    for (struct strmap_entry *me = strmap_first(&ev->svcs, &it); me != NULL;
         me = strmap_next(&ev->svcs, &it)) {
        struct svc_state *st = me->value;
        if (st->gen != ev->gen)
            free(strmap_del(&ev->svcs, me->key));
    }
    ev->gen++;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

struct kube_events *kube_events_new(uv_loop_t *loop, struct kube_http *http)
{
    struct kube_events *ev = xcalloc(1, sizeof(*ev));
    ev->loop = loop;
    ev->http = http;
    kube_bucket_init(&ev->bucket, KUBE_EVENTS_BURST, KUBE_EVENTS_REFILL_MS, uv_now(loop));
    kube_lru_init(&ev->lru, KUBE_EVENTS_CACHE_MAX);
    strmap_init(&ev->svcs);
    return ev;
}

void kube_events_stats(const struct kube_events *ev, struct kube_events_stats *out)
{
    *out = ev->stats;
}

void kube_events_free(struct kube_events *ev)
{
    if (ev == NULL)
        return;
    while (ev->posts != NULL) {
        kube_http_cancel(ev->posts->req);
        post_free(ev->posts);
    }
    kube_lru_free(&ev->lru);
    strmap_free(&ev->svcs, free);
    free(ev);
}
