/* The admin listener (admin.h).
 *
 * Parsing is llhttp's; what this file adds is the bookkeeping llhttp leaves to its user:
 * where one request head ends (to enforce ADM_HEAD_MAX) and where one message ends (to answer
 * pipelined requests one at a time). Both come from pausing the parser: on_headers_complete
 * and on_message_complete return HPE_PAUSED, llhttp_execute stops right after the event, and
 * llhttp_get_error_pos says how many bytes it consumed. Every other byte is either head
 * (before the first pause of a message) or body (between the two), and both are counted
 * against a cap; bodies are discarded, nothing here needs one.
 *
 * The /routes document can be large (tens of MiB at 100 000 routes), so it is serialised once
 * per snapshot into a reference-counted body shared by every response that carries it, and a
 * connection stops reading while its write queue is over ADM_WRITE_QUEUE_MAX. */
#include "admin.h"

#include <errno.h>
#include <json-c/json.h>
#include <llhttp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "opts.h"
#include "policy.h"
#include "route.h"
#include "snapshot.h"
#include "xalloc.h"

#define ADM_BACKLOG         64
#define ADM_MAX_CONNS       64
#define ADM_HEAD_MAX        (8 * 1024)
#define ADM_BODY_MAX        (64 * 1024)
#define ADM_IDLE_MS         30000
#define ADM_READ_SIZE       (16 * 1024)
#define ADM_WRITE_QUEUE_MAX (1024 * 1024)
#define ADM_RESP_HEAD_MAX   512

enum adm_pause { PAUSE_NONE = 0, PAUSE_HEAD, PAUSE_DONE };

/* A response body shared by every write that carries it (main thread only). */
struct adm_body {
    unsigned refs;
    size_t len;
    char data[];
};

struct adm_conn {
    uv_tcp_t tcp;
    uv_timer_t idle;
    llhttp_t parser;
    struct adm_conn *prev, *next;
    int open_handles; /* freed when both handles have closed */
    bool closing;
    bool reading;
    bool in_head;       /* no on_headers_complete yet for the current message */
    enum adm_pause why; /* set by the callback that paused the parser */
    bool keep_alive;
    size_t head_used, body_used;
    size_t url_len;
    bool url_too_long;
    char url[ADM_HEAD_MAX];
    char rbuf[ADM_READ_SIZE];
};

struct adm_write {
    uv_write_t req;
    struct adm_body *body; /* NULL when the response has none on the wire */
    bool close_after;
    size_t head_len;
    char head[ADM_RESP_HEAD_MAX];
};

static struct {
    uv_loop_t *loop;
    uv_tcp_t *listener; /* heap: it may still be closing when the server is restarted */
    struct adm_conn *conns;
    size_t nconns;
    llhttp_settings_t settings;
    /* The serialised /routes document of the snapshot (version, applied_at_ms); a version of
     * 0 with applied_at_ms 0 is the empty document served before the first snapshot. */
    struct adm_body *routes;
    uint64_t routes_version, routes_applied_ms;
} adm;

static void body_release(struct adm_body *b)
{
    if (b != NULL && --b->refs == 0)
        free(b);
}

/* ---- /routes ---- */

/* Above this many routes, building /routes ends by handing the freed tree back (xalloc.h). */
#define ADM_TRIM_ROUTES 10000

static void format_rfc3339(uint64_t ms, char *out, size_t outlen)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, outlen - n, ".%03uZ", (unsigned)(ms % 1000));
}

/* Returns a new json object describing s (NULL: before the first snapshot). */
static json_object *routes_json(const struct px_snapshot *s)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "version", json_object_new_int64(s ? (int64_t)s->table->version : 0));
    if (s == NULL) {
        json_object_object_add(o, "applied_at", NULL);
        json_object_object_add(o, "routes", json_object_new_array());
        json_object_object_add(o, "errors", json_object_new_array());
        return o;
    }
    char ts[40];
    format_rfc3339(s->applied_at_ms, ts, sizeof(ts));
    json_object_object_add(o, "applied_at", json_object_new_string(ts));

    /* route_table_to_json already speaks the protocol's field names; what operators also
     * want per route is where it goes, and a stable shape (absent optional fields as null). */
    const struct route_table *t = s->table;
    json_object *tj = route_table_to_json(t);
    json_object *routes = NULL, *errors = NULL;
    json_object_object_get_ex(tj, "routes", &routes);
    json_object_object_get_ex(tj, "errors", &errors);
    static const char *const optional[] = { "method", "host", "rewrite", "host_rewrite" };
    for (size_t i = 0; i < t->nroutes; i++) {
        json_object *ro = json_object_array_get_idx(routes, i);
        const struct route_cluster *c = &t->clusters[t->routes[i].cluster];
        char up[300];
        snprintf(up, sizeof(up), strchr(c->host, ':') ? "[%s]:%u" : "%s:%u", c->host,
                 (unsigned)c->port);
        json_object_object_add(ro, "upstream", json_object_new_string(up));
        for (size_t k = 0; k < ARRAY_SIZE(optional); k++)
            if (!json_object_object_get_ex(ro, optional[k], NULL))
                json_object_object_add(ro, optional[k], NULL);
    }
    json_object_object_add(o, "routes", json_object_get(routes));
    json_object_object_add(o, "errors", json_object_get(errors));
    json_object_put(tj);
    return o;
}

/* Returns a new reference to the /routes body for the current snapshot. */
static struct adm_body *routes_body(void)
{
    struct px_snapshot *s = px_snapshot_current();
    uint64_t version = s ? s->table->version : 0, applied = s ? s->applied_at_ms : 0;
    if (adm.routes == NULL || adm.routes_version != version || adm.routes_applied_ms != applied) {
        json_object *o = routes_json(s);
        size_t len = 0;
        const char *text = json_object_to_json_string_length(
            o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        struct adm_body *b = xmalloc(sizeof(*b) + len + 1);
        b->refs = 1;
        b->len = len + 1;
        memcpy(b->data, text, len);
        b->data[len] = '\n';
        json_object_put(o);
        if (s != NULL && s->table->nroutes > ADM_TRIM_ROUTES)
            xalloc_trim(); /* the tree was several times the text's size */
        body_release(adm.routes);
        adm.routes = b;
        adm.routes_version = version;
        adm.routes_applied_ms = applied;
    }
    px_snapshot_release(s);
    adm.routes->refs++;
    return adm.routes;
}

/* ---- /metrics ---- */

/* Prometheus text of the traffic-policy counters and gauges (policy.c), built per request:
 * they move all the time, unlike /routes. */
#define ADM_METRICS_MAX (64 * 1024 * 1024)

static struct adm_body *metrics_body(void)
{
    struct px_snapshot *s = px_snapshot_current();
    struct buf b;
    buf_init(&b, ADM_METRICS_MAX);
    if (s != NULL && px_policy_metrics(s->table, s->policy, &b) != 0)
        log_warn("metrics cut short", "max_bytes=%d", ADM_METRICS_MAX);
    px_snapshot_release(s);
    struct adm_body *body = xmalloc(sizeof(*body) + b.len + 1);
    body->refs = 1;
    body->len = b.len;
    if (b.len > 0)
        memcpy(body->data, b.data, b.len);
    buf_free(&b);
    return body;
}

/* ---- connections ---- */

static void on_conn_close(uv_handle_t *h)
{
    struct adm_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        adm.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    adm.nconns--;
    free(c);
}

static void conn_close(struct adm_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_conn_close);
    uv_close((uv_handle_t *)&c->idle, on_conn_close);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    struct adm_conn *c = h->data;
    *b = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void set_reading(struct adm_conn *c, bool on)
{
    if (c->closing || c->reading == on)
        return;
    c->reading = on;
    if (on)
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    else
        uv_read_stop((uv_stream_t *)&c->tcp);
}

static void on_write(uv_write_t *req, int status)
{
    struct adm_write *w = container_of(req, struct adm_write, req);
    struct adm_conn *c = req->handle->data;
    body_release(w->body);
    if (!c->closing) {
        if (status < 0 || w->close_after)
            conn_close(c);
        else if (c->tcp.write_queue_size <= ADM_WRITE_QUEUE_MAX)
            set_reading(c, true);
    }
    free(w);
}

/* Queues one response. body (a reference, taken over) is sent unless head_only; text is a
 * short static body used when body is NULL. */
static void respond(struct adm_conn *c, int status, const char *reason, const char *type,
                    const char *text, struct adm_body *body, bool head_only, bool keep_alive,
                    const char *extra)
{
    struct adm_write *w = xcalloc(1, sizeof(*w));
    size_t blen = body ? body->len : strlen(text);
    int minor = llhttp_get_http_minor(&c->parser);
    const char *conn = !keep_alive  ? "Connection: close\r\n"
                       : minor == 0 ? "Connection: keep-alive\r\n"
                                    : "";
    int n = snprintf(w->head, sizeof(w->head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n%s%s\r\n%s",
                     status, reason, type, blen, extra, conn, body || head_only ? "" : text);
    /* Our own constants fit; a miss is a bug, not input. */
    w->head_len = n > 0 && (size_t)n < sizeof(w->head) ? (size_t)n : 0;
    w->body = head_only ? NULL : body;
    if (head_only)
        body_release(body);
    w->close_after = !keep_alive;
    uv_buf_t bufs[2] = { uv_buf_init(w->head, (unsigned)w->head_len),
                         uv_buf_init(w->body ? w->body->data : NULL,
                                     w->body ? (unsigned)w->body->len : 0) };
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, w->body ? 2 : 1, on_write);
    if (rc != 0) {
        body_release(w->body);
        free(w);
        conn_close(c);
    }
}

/* Answers an unusable request and closes the connection. */
static void respond_error(struct adm_conn *c, int status, const char *reason)
{
    char text[64];
    snprintf(text, sizeof(text), "%s\n", reason);
    respond(c, status, reason, "text/plain", text, NULL, false, false, "");
}

static bool path_is(const char *path, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(path, want, len) == 0;
}

/* Answers the request whose head was just parsed. */
static void dispatch(struct adm_conn *c)
{
    uint8_t method = llhttp_get_method(&c->parser);
    bool head = method == HTTP_HEAD;
    /* An upgrade is never accepted; the connection cannot be reused after one. */
    bool keep = c->keep_alive && !llhttp_get_upgrade(&c->parser);
    const char *q = memchr(c->url, '?', c->url_len);
    size_t plen = q ? (size_t)(q - c->url) : c->url_len;

    if (method != HTTP_GET && !head) {
        respond(c, 405, "Method Not Allowed", "text/plain", "method not allowed\n", NULL, false,
                keep, "Allow: GET, HEAD\r\n");
    } else if (path_is(c->url, plen, "/ready") ||
               path_is(c->url, plen, "/ambassador/v0/check_ready")) {
        struct px_snapshot *s = px_snapshot_current();
        if (s != NULL)
            respond(c, 200, "OK", "text/plain", "ready\n", NULL, head, keep, "");
        else
            respond(c, 503, "Service Unavailable", "text/plain", "no route table yet\n", NULL, head,
                    keep, "");
        px_snapshot_release(s);
    } else if (path_is(c->url, plen, "/live") ||
               path_is(c->url, plen, "/ambassador/v0/check_alive")) {
        respond(c, 200, "OK", "text/plain", "alive\n", NULL, head, keep, "");
    } else if (path_is(c->url, plen, "/routes") || path_is(c->url, plen, "/ambassador/v0/diag/")) {
        respond(c, 200, "OK", "application/json", NULL, routes_body(), head, keep, "");
    } else if (path_is(c->url, plen, "/metrics")) {
        respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", NULL, metrics_body(),
                head, keep, "");
    } else {
        respond(c, 404, "Not Found", "text/plain", "not found\n", NULL, head, keep, "");
    }
    if (!keep)
        set_reading(c, false);
}

static int on_message_begin(llhttp_t *p)
{
    struct adm_conn *c = p->data;
    c->url_len = 0;
    c->url_too_long = false;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct adm_conn *c = p->data;
    if (len > sizeof(c->url) - c->url_len) {
        c->url_too_long = true;
        return 0;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct adm_conn *c = p->data;
    c->why = PAUSE_HEAD;
    return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *p)
{
    struct adm_conn *c = p->data;
    c->keep_alive = llhttp_should_keep_alive(p);
    c->why = PAUSE_DONE;
    return HPE_PAUSED;
}

/* Runs the parser over data; answers every request completed in it. Returns false once the
 * connection is finished (it is then closing or will close after its last write). */
static bool parse(struct adm_conn *c, const char *data, size_t n)
{
    const char *p = data;
    size_t rem = n;
    for (;;) {
        c->why = PAUSE_NONE;
        llhttp_errno_t err = llhttp_execute(&c->parser, p, rem);
        size_t used = rem;
        if (err == HPE_PAUSED)
            used = (size_t)(llhttp_get_error_pos(&c->parser) - p);
        else if (err != HPE_OK) {
            log_debug("bad admin request", "err=%s", llhttp_errno_name(err));
            respond_error(c, 400, "Bad Request");
            return false;
        }
        if (c->in_head)
            c->head_used += used;
        else
            c->body_used += used;
        if (c->head_used > ADM_HEAD_MAX || c->url_too_long) {
            respond_error(c, 431, "Request Header Fields Too Large");
            return false;
        }
        if (c->body_used > ADM_BODY_MAX) {
            respond_error(c, 413, "Content Too Large");
            return false;
        }
        if (err == HPE_OK)
            return true;
        p += used;
        rem -= used;
        if (c->why == PAUSE_HEAD) {
            c->in_head = false;
            c->body_used = 0;
        } else {
            dispatch(c);
            if (!c->keep_alive || llhttp_get_upgrade(&c->parser))
                return false;
            c->in_head = true;
            c->head_used = 0;
        }
        llhttp_resume(&c->parser);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct adm_conn *c = s->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    uv_timer_again(&c->idle);
    if (!parse(c, b->base, (size_t)nread)) {
        set_reading(c, false);
        return;
    }
    if (c->tcp.write_queue_size > ADM_WRITE_QUEUE_MAX)
        set_reading(c, false);
}

static void on_idle(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) {
        log_warn("admin accept failed", "err=%s", uv_strerror(status));
        return;
    }
    struct adm_conn *c = xcalloc(1, sizeof(*c));
    uv_tcp_init(adm.loop, &c->tcp);
    uv_timer_init(adm.loop, &c->idle);
    c->tcp.data = c->idle.data = c;
    c->open_handles = 2;
    c->next = adm.conns;
    if (adm.conns)
        adm.conns->prev = c;
    adm.conns = c;
    adm.nconns++;
    int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc != 0 || adm.nconns > ADM_MAX_CONNS) {
        log_warn("admin connection refused", "err=%s",
                 rc != 0 ? uv_strerror(rc) : "too many connections");
        conn_close(c);
        return;
    }
    llhttp_init(&c->parser, HTTP_REQUEST, &adm.settings);
    c->parser.data = c;
    c->in_head = true;
    uv_timer_start(&c->idle, on_idle, ADM_IDLE_MS, ADM_IDLE_MS);
    set_reading(c, true);
}

/* Resolves host:port (an IP literal, or a name resolved once at startup). 0 or a libuv
 * error. */
static int resolve(const char *hostport, struct sockaddr_storage *ss)
{
    char host[256];
    uint16_t port;
    if (parse_hostport(hostport, host, sizeof(host), &port) != 0)
        return UV_EINVAL;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0 ||
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    uv_getaddrinfo_t req;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    int rc = uv_getaddrinfo(adm.loop, &req, NULL, host, NULL, &hints); /* synchronous */
    if (rc != 0)
        return rc;
    memcpy(ss, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    uv_freeaddrinfo(req.addrinfo);
    return 0;
}

static void on_listener_close(uv_handle_t *h)
{
    free(h);
}

int px_admin_start(uv_loop_t *loop, const char *hostport)
{
    struct sockaddr_storage ss;
    int rc;

    if (adm.listener != NULL)
        return UV_EBUSY;
    adm.loop = loop;
    if ((rc = resolve(hostport, &ss)) != 0) {
        log_error("bad admin address", "addr=%s err=%s", hostport, uv_strerror(rc));
        return rc;
    }
    llhttp_settings_init(&adm.settings);
    adm.settings.on_message_begin = on_message_begin;
    adm.settings.on_url = on_url;
    adm.settings.on_headers_complete = on_headers_complete;
    adm.settings.on_message_complete = on_message_complete;

    adm.listener = xcalloc(1, sizeof(*adm.listener));
    uv_tcp_init(loop, adm.listener);
    /* libuv reports some bind errors only at listen; both name the address. */
    if ((rc = uv_tcp_bind(adm.listener, (struct sockaddr *)&ss, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)adm.listener, ADM_BACKLOG, on_connection)) != 0) {
        log_error("cannot listen on admin address", "addr=%s err=%s", hostport, uv_strerror(rc));
        uv_close((uv_handle_t *)adm.listener, on_listener_close);
        adm.listener = NULL;
        return rc;
    }
    log_info("admin listening", "addr=%s", hostport);
    return 0;
}

void px_admin_stop(void)
{
    for (struct adm_conn *c = adm.conns; c; c = c->next)
        conn_close(c);
    if (adm.listener != NULL) {
        uv_close((uv_handle_t *)adm.listener, on_listener_close);
        adm.listener = NULL;
    }
    body_release(adm.routes);
    adm.routes = NULL;
}
