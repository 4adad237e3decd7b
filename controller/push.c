#include "push.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "log.h"
#include "route.h"
#include "xalloc.h"

struct push_snap {
    unsigned refs; /* the client's latest/inflight pointers and pending writes */
    uint64_t version;
    size_t nroutes;
    size_t nclusters;
    size_t nerrors;
    struct buf frame; /* length header + JSON */
};

/* A write in progress holds its snapshot so the bytes outlive a newer submit. */
struct push_write {
    uv_write_t req;
    struct push_snap *snap;
};

static struct push_snap *snap_ref(struct push_snap *s)
{
    if (s != NULL)
        s->refs++;
    return s;
}

static void snap_release(struct push_snap *s)
{
    if (s == NULL || --s->refs > 0)
        return;
    buf_free(&s->frame);
    free(s);
}

static void connect_now(struct push *p);
static void drop(struct push *p, const char *why);

/* ---- timers ---- */

/* xorshift64*: jitter only needs to keep a fleet of controllers from reconnecting in step. */
static uint64_t next_random(struct push *p)
{
    p->rng ^= p->rng >> 12;
    p->rng ^= p->rng << 25;
    p->rng ^= p->rng >> 27;
    return p->rng * 0x2545f4914f6cdd1dULL;
}

static void on_retry(uv_timer_t *t)
{
    struct push *p = container_of(t, struct push, retry);
    connect_now(p);
}

/* Waits between 75 % and 100 % of the current backoff, then doubles it up to the cap. */
static void schedule_retry(struct push *p)
{
    unsigned d = p->backoff_ms;
    unsigned delay = d - (unsigned)(next_random(p) % (d / 4 + 1));
    p->backoff_ms = d * 2 > PUSH_BACKOFF_MAX_MS ? PUSH_BACKOFF_MAX_MS : d * 2;
    p->state = PUSH_WAITING;
    uv_timer_start(&p->retry, on_retry, delay, 0);
}

static void on_deadline(uv_timer_t *t)
{
    struct push *p = container_of(t, struct push, deadline);
    drop(p, p->state == PUSH_HELLO ? "no hello from the proxy in time"
                                   : "no ack from the proxy in time");
}

/* ---- connection ---- */

static void on_pipe_closed(uv_handle_t *h)
{
    struct push *p = h->data;
    snap_release(p->inflight);
    p->inflight = NULL;
    p->sent_version = 0;
    frame_decoder_free(&p->dec);
    if (p->state == PUSH_STOPPED) {
        if (--p->open_handles == 0) {
            snap_release(p->latest);
            free(p->path);
            free(p);
        }
        return;
    }
    p->open_handles--;
    schedule_retry(p);
}

static void close_pipe(struct push *p)
{
    p->state = PUSH_CLOSING;
    uv_timer_stop(&p->deadline);
    uv_close((uv_handle_t *)&p->pipe, on_pipe_closed);
}

/* Closes the connection (if any) and reconnects after the backoff. Safe to call twice. */
static void drop(struct push *p, const char *why)
{
    if (p->state == PUSH_CLOSING || p->state == PUSH_STOPPED || p->state == PUSH_WAITING)
        return;
    log_warn("control connection lost", "socket=%s reason=%s", p->path, why);
    close_pipe(p);
}

static void on_write(uv_write_t *req, int status)
{
    struct push_write *w = container_of(req, struct push_write, req);
    struct push *p = req->handle->data;
    snap_release(w->snap);
    free(w);
    if (status < 0 && status != UV_ECANCELED)
        drop(p, uv_strerror(status));
}

/* Sends the newest snapshot if the connection is ready for one and the proxy does not have it
 * from us yet. */
static void send_latest(struct push *p)
{
    if (p->state != PUSH_READY || p->inflight != NULL || p->latest == NULL ||
        p->latest->version == p->sent_version)
        return;
    struct push_write *w = xcalloc(1, sizeof(*w));
    w->snap = snap_ref(p->latest);
    uv_buf_t b = uv_buf_init(w->snap->frame.data, (unsigned)w->snap->frame.len);
    int rc = uv_write(&w->req, (uv_stream_t *)&p->pipe, &b, 1, on_write);
    if (rc != 0) {
        snap_release(w->snap);
        free(w);
        drop(p, uv_strerror(rc));
        return;
    }
    p->inflight = snap_ref(p->latest);
    p->sent_version = p->latest->version;
    p->sends++;
    log_debug("snapshot sent", "version=%llu routes=%zu bytes=%zu",
              (unsigned long long)p->latest->version, p->latest->nroutes, p->latest->frame.len);
    uv_timer_start(&p->deadline, on_deadline, PUSH_ACK_TIMEOUT_MS, 0);
}

static int64_t get_int(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return -1;
    return json_object_get_int64(v);
}

static void on_hello(struct push *p, json_object *msg)
{
    int64_t proto = get_int(msg, "protocol");
    if (proto != ROUTE_PROTOCOL_VERSION) {
        log_error("proxy speaks another control protocol", "socket=%s protocol=%lld want=%d",
                  p->path, (long long)proto, ROUTE_PROTOCOL_VERSION);
        drop(p, "protocol mismatch");
        return;
    }
    uv_timer_stop(&p->deadline);
    p->state = PUSH_READY;
    p->backoff_ms = PUSH_BACKOFF_MIN_MS;
    p->warned = false;
    p->connects++;
    log_info("connected to proxy", "socket=%s proxy_version=%lld pid=%lld", p->path,
             (long long)get_int(msg, "version"), (long long)get_int(msg, "pid"));
    send_latest(p);
}

static void on_reply(struct push *p, json_object *msg, bool ack)
{
    int64_t version = get_int(msg, "version");
    if (p->inflight == NULL) {
        log_warn("unexpected reply from proxy", "type=%s version=%lld", ack ? "ack" : "nack",
                 (long long)version);
        return;
    }
    if (version < 0 || (uint64_t)version != p->inflight->version)
        log_warn("proxy replied for another version", "version=%lld sent=%llu", (long long)version,
                 (unsigned long long)p->inflight->version);
    if (ack) {
        p->acks++;
        p->acked_version = p->inflight->version;
        log_info("snapshot acked", "version=%lld routes=%lld clusters=%lld apply_us=%lld",
                 (long long)version, (long long)get_int(msg, "routes"),
                 (long long)get_int(msg, "clusters"), (long long)get_int(msg, "apply_us"));
    } else {
        /* Not resent: the same input would be refused again. The next change makes a new
         * snapshot. */
        json_object *r = NULL;
        json_object_object_get_ex(msg, "reason", &r);
        p->nacks++;
        log_error("snapshot refused by proxy", "version=%lld reason=%s", (long long)version,
                  r ? json_object_get_string(r) : "");
    }
    uv_timer_stop(&p->deadline);
    snap_release(p->inflight);
    p->inflight = NULL;
    send_latest(p);
}

static void on_message(struct push *p, const char *payload, size_t len)
{
    json_tokener *tok = json_tokener_new();
    json_object *msg = json_tokener_parse_ex(tok, payload, (int)len);
    bool whole = msg != NULL && json_tokener_get_error(tok) == json_tokener_success &&
                 json_tokener_get_parse_end(tok) == len;
    json_object *type = NULL;
    const char *t = NULL;

    json_tokener_free(tok);
    if (whole && json_object_is_type(msg, json_type_object) &&
        json_object_object_get_ex(msg, "type", &type) &&
        json_object_is_type(type, json_type_string))
        t = json_object_get_string(type);
    if (t == NULL) {
        log_error("bad message from proxy", "socket=%s error=%s", p->path,
                  "not a JSON object with a string \"type\"");
        drop(p, "bad message");
    } else if (strcmp(t, "hello") == 0 && p->state == PUSH_HELLO) {
        on_hello(p, msg);
    } else if ((strcmp(t, "ack") == 0 || strcmp(t, "nack") == 0) && p->state == PUSH_READY) {
        on_reply(p, msg, t[0] == 'a');
    } else {
        log_error("unexpected message from proxy", "socket=%s type=%s", p->path, t);
        drop(p, "unexpected message");
    }
    json_object_put(msg);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct push *p = h->data;
    (void)suggested;
    *b = uv_buf_init(p->rbuf, sizeof(p->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct push *p = s->data;
    if (nread < 0) {
        drop(p, nread == UV_EOF ? "proxy closed the connection" : uv_strerror((int)nread));
        return;
    }
    if (frame_decoder_feed(&p->dec, b->base, (size_t)nread) != 0) {
        drop(p, "message over the size cap");
        return;
    }
    for (;;) {
        const char *payload;
        size_t len;
        int rc = frame_decoder_next(&p->dec, &payload, &len);
        if (rc == 0)
            break;
        if (rc < 0) {
            drop(p, "message over the size cap");
            break;
        }
        on_message(p, payload, len);
        if (p->state != PUSH_HELLO && p->state != PUSH_READY)
            break; /* the message closed the connection */
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct push *p = req->handle->data;
    if (p->state != PUSH_CONNECTING)
        return; /* stopped meanwhile */
    if (status < 0) {
        /* The proxy starting later than us is normal: say it once per outage. */
        if (!p->warned)
            log_warn("proxy not reachable; retrying", "socket=%s error=%s", p->path,
                     uv_strerror(status));
        else
            log_debug("proxy not reachable; retrying", "socket=%s error=%s", p->path,
                      uv_strerror(status));
        p->warned = true;
        close_pipe(p);
        return;
    }
    p->state = PUSH_HELLO;
    int rc = uv_read_start((uv_stream_t *)&p->pipe, on_alloc, on_read);
    if (rc != 0) {
        drop(p, uv_strerror(rc));
        return;
    }
    uv_timer_start(&p->deadline, on_deadline, PUSH_HELLO_TIMEOUT_MS, 0);
}

static void connect_now(struct push *p)
{
    uv_pipe_init(p->loop, &p->pipe, 0);
    p->pipe.data = p;
    p->open_handles++;
    frame_decoder_init(&p->dec, PUSH_READ_MAX);
    p->state = PUSH_CONNECTING;
    uv_pipe_connect(&p->connect_req, &p->pipe, p->path, on_connect);
}

/* ---- API ---- */

struct push *push_start(uv_loop_t *loop, const char *socket_path)
{
    struct push *p = xcalloc(1, sizeof(*p));
    p->loop = loop;
    p->path = xstrdup(socket_path);
    p->backoff_ms = PUSH_BACKOFF_MIN_MS;
    p->rng = uv_hrtime() | 1;
    uv_timer_init(loop, &p->retry);
    uv_timer_init(loop, &p->deadline);
    p->retry.data = p->deadline.data = p;
    p->open_handles = 2;
    connect_now(p);
    return p;
}

int push_submit(struct push *p, const struct route_table *t)
{
    struct push_snap *s = xcalloc(1, sizeof(*s));
    s->refs = 1;
    s->version = t->version;
    s->nroutes = t->nroutes;
    s->nclusters = t->nclusters;
    s->nerrors = t->nerrors;
    /* The JSON text goes straight into the frame, after room for its length (frame.h: 4 bytes,
     * big-endian), which is filled in once the text is written. */
    buf_init(&s->frame, FRAME_MAX_DEFAULT + 4);
    int rc = buf_append(&s->frame, "\0\0\0\0", 4);
    if (rc == 0)
        rc = route_snapshot_write(t, &s->frame);
    if (rc != 0) {
        log_error("snapshot too large to send", "version=%llu routes=%zu max=%zu",
                  (unsigned long long)t->version, t->nroutes, (size_t)FRAME_MAX_DEFAULT);
        snap_release(s);
        return -E2BIG;
    }
    size_t len = s->frame.len - 4;
    for (int i = 0; i < 4; i++)
        s->frame.data[i] = (char)(len >> (24 - 8 * i));
    snap_release(p->latest);
    p->latest = s;
    send_latest(p);
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct push *p = h->data;
    if (--p->open_handles > 0)
        return;
    snap_release(p->latest);
    free(p->path);
    free(p);
}

void push_stop(struct push *p)
{
    if (p == NULL)
        return;
    enum push_state was = p->state;
    p->state = PUSH_STOPPED;
    uv_close((uv_handle_t *)&p->retry, on_timer_closed);
    uv_close((uv_handle_t *)&p->deadline, on_timer_closed);
    /* WAITING: the pipe is already closed. CLOSING: its close callback is pending and, seeing
     * STOPPED, does the final accounting. */
    if (was != PUSH_WAITING && was != PUSH_CLOSING)
        uv_close((uv_handle_t *)&p->pipe, on_pipe_closed);
}
