/* Client connections (http.h).
 *
 * One request at a time per connection. Its life:
 *
 *   IDLE ──head──▶ CONNECTING ──upstream ready──▶ FORWARD ──response done──▶ IDLE (keep-alive)
 *     │                 │                            │
 *     └──── no table, no route, upstream error, timeout ───▶ LOCAL (our answer; body dropped)
 *
 * The request parser pauses after the head (nothing is forwarded before routing and before
 * llhttp accepted the head) and after the message (pipelined requests wait in the read buffer
 * until the response to this one is complete, so answers go out in order).
 *
 * Buffers. The request head stays in the connection's read buffer and is forwarded as iovecs
 * pointing into it, so the buffer is not compacted while the head may still be (re)sent: until
 * a body byte left or the retry is no longer possible. Body bytes are written straight from
 * the read buffers of both legs; while such a write is in flight the reading side is stopped
 * (that is the backpressure: at most one buffer in flight per direction, the rest waits in
 * the kernel's socket buffers).
 *
 * Timeout (504). A route's timeout_ms runs from the moment its request head is routed until
 * the upstream's response head arrives, and starts over whenever request body bytes are
 * handed to the upstream: the upstream must keep taking the body, and must start its response
 * within timeout_ms of the request's last byte. A long upload to a slow reader is therefore
 * not cut; streaming the response body once it has started is not limited either. While the
 * proxy waits for the client's body it is not the upstream's fault: then the body timeout
 * (--body-timeout-ms, 408) applies instead. The client's other timeouts: the request head
 * (--header-timeout-ms, 408) and the idle keep-alive connection (--idle-timeout-ms).
 *
 * Policy. The route's traffic policy (canary member, CORS, rate limit, circuit breakers,
 * connect/per-try/idle timeouts, retries and the body kept for them) is http_policy.c's,
 * Upgrade tunnels tunnel.c's, shadow copies shadow.c's; this file calls them (px_pol_*,
 * px_tunnel_*, px_shadow_*) at the points of a request's life where they decide.
 *
 * Freeing. The connection is freed in the close callback of its last handle (tcp, timer). */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "edge.h"
#include "http_policy.h"
#include "log.h"
#include "request.h"
#include "router.h"
#include "snapshot.h"
#include "shadow.h"
#include "target.h"
#include "tunnel.h"
#include "upstream.h"
#include "xalloc.h"

static void pump_request(struct px_conn *c);
static void pump_response(struct px_conn *c);
static void update_reading(struct px_conn *c);
static void maybe_finish(struct px_conn *c);
static void close_graceful(struct px_conn *c);
static void upstream_error(struct px_conn *c, const char *what, const char *why);
static void respond_local(struct px_conn *c, int status, const char *msg, const char *detail,
                          size_t detail_len);
static void refuse_request(struct px_conn *c);
static void arm(struct px_conn *c, enum px_timer_mode mode, uint64_t ms);

/* ---- handles and timers ------------------------------------------------------------------ */

static void on_close(uv_handle_t *h)
{
    struct px_conn *c = h->data;
    if (++c->nclosed < 3)
        return;
    struct px_worker *w = c->w;
    px_rbuf_put(w, c->rb);
    px_rbuf_put(w, c->held_rb);
    px_arena_park(&c->arena);
    free(c);
    px_worker_conn_freed(w);
}

void px_http_close(struct px_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->up != NULL) {
        px_upstream_abort(c->up);
        c->up = NULL;
    }
    px_pol_conn_closed(c);
    px_snapshot_release(c->snap);
    c->snap = NULL;
    px_list_remove(&c->link);
    uv_close((uv_handle_t *)&c->tcp, on_close);
    uv_close((uv_handle_t *)&c->timer, on_close);
    uv_close((uv_handle_t *)&c->body_timer, on_close);
}

/* Whether the request is held up by the client not sending its body: the proxy reads, has
 * nothing of the body left to parse and nothing in flight to the upstream. A request with
 * Expect may be waiting for the upstream's 100 Continue before its body. */
static bool waiting_on_client(struct px_conn *c)
{
    if (c->req_done || c->closing || c->lingering || c->client_eof)
        return false;
    if (c->state != PX_REQ_FORWARD && c->state != PX_REQ_LOCAL)
        return false;
    if ((c->rb != NULL && c->rb->off < c->rb->len) || (c->up != NULL && c->up->writing))
        return false;
    /* In FORWARD before any body byte left, the head is still in place for px_h1_find. */
    if (c->state == PX_REQ_FORWARD && !c->body_sent_up && px_h1_find(&c->req, "expect", 0) >= 0)
        return false;
    return true;
}

/* --body-timeout-ms: fires at most body_timeout_ms after the last body bytes arrived, and
 * answers 408 only if the proxy has been waiting on the client all that time. */
static void on_body_timer(uv_timer_t *t)
{
    struct px_conn *c = t->data;
    uint64_t limit = c->w->limits.body_timeout_ms;
    uint64_t now = uv_now(&c->w->loop);
    if (c->closing || c->lingering || c->req_done || c->state == PX_REQ_IDLE)
        return;
    if (!waiting_on_client(c)) {
        /* The upstream (or our own buffer) holds the body up: the client is not idle. */
        c->body_read_ms = now;
        uv_timer_start(t, on_body_timer, limit, 0);
        return;
    }
    if (now - c->body_read_ms < limit) {
        uv_timer_start(t, on_body_timer, limit - (now - c->body_read_ms), 0);
        return;
    }
    c->req.error_status = 408;
    c->req.error_reason = "request body not received in time";
    refuse_request(c); /* closes at once when the response has begun */
}

static void body_timer_start(struct px_conn *c)
{
    c->body_read_ms = uv_now(&c->w->loop);
    uv_timer_start(&c->body_timer, on_body_timer, c->w->limits.body_timeout_ms, 0);
}

/* --header-timeout-ms ran out: 408 when part of a head came, a silent close when nothing did
 * (the client never asked anything, an answer would be taken for its next request's). */
static void head_timeout(struct px_conn *c)
{
    if (!c->req.begun && (c->rb == NULL || c->rb->off == c->rb->len)) {
        px_http_close(c);
        return;
    }
    c->req.error_status = 408;
    c->req.error_reason = "request head not received in time";
    refuse_request(c);
}

static void request_timeout(struct px_conn *c)
{
    if (c->resp_head_sent || (c->state != PX_REQ_CONNECTING && c->state != PX_REQ_FORWARD))
        return;
    if (waiting_on_client(c)) {
        /* The upstream is not the one late: the body timer judges the client. */
        arm(c, PX_TIMER_REQUEST, c->route->timeout_ms);
        return;
    }
    c->timed_out = 1;
    log_warn("upstream timeout", "cluster=%s error=%s timeout_ms=%u", c->cluster->name,
             "no response head in time", (unsigned)c->route->timeout_ms);
    char detail[64];
    int n = snprintf(detail, sizeof(detail), "%u ms", (unsigned)c->route->timeout_ms);
    respond_local(c, 504, "upstream did not answer within ", detail, (size_t)n);
}

static void on_timer(uv_timer_t *t)
{
    struct px_conn *c = t->data;
    enum px_timer_mode mode = c->timer_mode;
    if (mode == PX_TIMER_NONE)
        return; /* disarmed since it was started (lazy: see arm) */
    uint64_t now = uv_now(&c->w->loop);
    if (now < c->timer_deadline) {
        /* Started for an earlier deadline, since moved later: wait for the rest. */
        px_timer_lazy(t, &c->timer_due, c->timer_deadline, on_timer);
        return;
    }
    c->timer_mode = PX_TIMER_NONE;
    switch (mode) {
    case PX_TIMER_IDLE:
        if (c->state == PX_REQ_IDLE || c->state == PX_REQ_LOCAL)
            px_http_close(c);
        break;
    case PX_TIMER_HEADER:
        if (c->state == PX_REQ_IDLE)
            head_timeout(c);
        break;
    case PX_TIMER_LINGER:
        px_http_close(c);
        break;
    case PX_TIMER_REQUEST:
        request_timeout(c);
        break;
    case PX_TIMER_NONE:
        break;
    }
}

/* The connection's timer is lazy (px_timer_lazy): arming records the mode's deadline,
 * disarming only the mode; a fire for a deadline since moved later, or for a disarmed mode,
 * starts it again for the rest or does nothing (on_timer). */
static void arm(struct px_conn *c, enum px_timer_mode mode, uint64_t ms)
{
    c->timer_mode = mode;
    c->timer_deadline = uv_now(&c->w->loop) + ms;
    px_timer_lazy(&c->timer, &c->timer_due, c->timer_deadline, on_timer);
}

static void disarm(struct px_conn *c)
{
    c->timer_mode = PX_TIMER_NONE;
}

/* ---- writing to the client --------------------------------------------------------------- */

static void on_dwrite(uv_write_t *req, int status)
{
    struct px_conn *c = req->data;
    if (--c->dwrites > 0)
        return; /* the last one continues */
    px_rbuf_put(c->w, c->held_rb);
    c->held_rb = NULL;
    if (c->closing)
        return;
    px_pol_activity(c);
    if (status < 0) {
        log_debug("client write failed", "client=%s error=%s", c->client_ip, uv_strerror(status));
        px_http_close(c);
        return;
    }
    if (c->up != NULL) {
        pump_response(c);
        if (!c->closing && c->dwrites == 0 && c->up != NULL)
            px_upstream_read(c->up, true);
    }
    maybe_finish(c);
}

/* Writes to the client. Returns 0 (written), 1 (in flight: reading the upstream pauses until
 * it completes) or a negative error, after which c is closing. */
static int dwrite(struct px_conn *c, uv_buf_t *bufs, unsigned n)
{
    uv_write_t *req = c->dwrites == 0 ? &c->wreq : px_arena_alloc(&c->arena, sizeof(*req));
    req->data = c;
    int r = px_stream_write((uv_stream_t *)&c->tcp, req, bufs, n, on_dwrite);
    if (r < 0) {
        log_debug("client write failed", "client=%s error=%s", c->client_ip, uv_strerror(r));
        px_http_close(c);
        return r;
    }
    if (r == 1) {
        c->dwrites++;
        if (c->up != NULL)
            px_upstream_read(c->up, false);
    }
    return r;
}

/* ---- the upstream leg -------------------------------------------------------------------- */

/* Lets the request parser go on after the head. A request without a body ends right there,
 * but llhttp says so only when run again, so the next pass runs it even with no new byte. */
static void resume_parser(struct px_conn *c)
{
    if (c->parser_resumed)
        return;
    c->parser_resumed = 1;
    c->kick = 1;
    px_h1_resume(&c->req);
}

/* Lets go of c->up: into the pool when reusable, else closed. A client write in flight may
 * still point into its read buffer; the connection then keeps that buffer until the write
 * completes. */
static void detach_upstream(struct px_conn *c, bool reusable)
{
    struct px_upstream *u = c->up;
    if (u == NULL)
        return;
    c->up = NULL;
    if (c->dwrites > 0 && u->rb != NULL) {
        if (c->held_rb != NULL) {
            /* Never happens (one upstream buffer per request), but a buffer must not be
             * freed under a write: closing cancels the write. */
            px_upstream_abort(u);
            px_http_close(c);
            return;
        }
        c->held_rb = u->rb;
        u->rb = NULL;
        reusable = false;
    }
    if (reusable)
        px_upstream_release(u, true);
    else
        px_upstream_abort(u);
}

static void upstream_ready(struct px_conn *c)
{
    px_pol_ready(c);
    c->state = PX_REQ_FORWARD;
    c->head_sent_up = 0;
    c->resp_begun = 0;
    px_upstream_expect(c->up, c->is_head);
    px_upstream_read(c->up, true);
    resume_parser(c);
    pump_request(c);
}

static void connect_upstream(struct px_conn *c, bool fresh)
{
    struct px_upstream *u = NULL;
    int r = px_upstream_acquire(c->w, c->cluster, fresh, c, &u);
    if (r < 0) {
        upstream_error(c, "connect error", uv_strerror(r));
        return;
    }
    c->up = u;
    if (px_pol_attempt(c, r == 1) != 0)
        return; /* a circuit breaker answered */
    if (r == 0)
        upstream_ready(c);
}

void px_http_on_upstream_connect(struct px_conn *c, int status, const char *stage)
{
    if (c->closing || c->up == NULL)
        return;
    if (status < 0) {
        upstream_error(c,
                       strcmp(stage, "dns") == 0   ? "DNS lookup failed"
                       : strcmp(stage, "tls") == 0 ? "TLS handshake failed"
                                                   : "connect error",
                       uv_strerror(status));
        return;
    }
    upstream_ready(c);
}

/* The one failure path of the upstream leg. A pooled connection that fails before any
 * response byte, while no body byte has left, most likely was closed by the upstream while
 * idle: the request is sent again, once, on a new connection. */
static void upstream_error(struct px_conn *c, const char *what, const char *why)
{
    struct px_upstream *u = c->up;
    bool retry = u != NULL && u->reused && !c->resp_begun && !c->body_sent_up && !c->retried &&
                 !c->timed_out;
    /* Else the route's retry_policy may ask for another attempt (http_policy.c). */
    bool again = !retry && px_pol_retry_failure(c, what);
    log_warn("upstream request failed", "cluster=%s error=%s stage=%s retry=%s",
             c->cluster ? c->cluster->name : "", why, what, retry || again ? "yes" : "no");
    detach_upstream(c, false);
    if (c->closing)
        return;
    if (retry || again) {
        c->retried = c->retried || retry;
        c->head_sent_up = 0;
        c->resp_begun = 0;
        c->state = PX_REQ_CONNECTING;
        connect_upstream(c, retry);
        return;
    }
    if (c->resp_head_sent) {
        /* Part of the response is out: the client can only learn by the connection closing
         * before the announced end. */
        px_http_close(c);
        return;
    }
    char msg[96];
    snprintf(msg, sizeof(msg), "upstream %s: ", what);
    respond_local(c, px_pol_failure_status(c, 502), msg, why, strlen(why));
}

/* Sends the head (when not sent yet on this upstream connection) and the body bytes of the
 * last parse, chunk-framed when the request is chunked; final adds the last chunk. */
static void forward_up(struct px_conn *c, bool final)
{
    struct px_h1_parser *p = &c->req;
    bool chunked = px_h1_is_chunked(p);
    uv_buf_t small[4];
    uv_buf_t *bufs = small;
    unsigned n = 0;
    bool body = p->body_len > 0 || (final && chunked);
    if (c->shadow != NULL) /* shadow.c's copy of the request */
        px_shadow_feed(c, p->body_len ? c->rb->data + p->body_off : NULL, p->body_len, final);
    if (!c->head_sent_up) {
        bufs =
            px_arena_alloc(&c->arena, (c->head_niov + 4 + px_pol_replay_room(c)) * sizeof(*bufs));
        memcpy(bufs, c->head_iov, c->head_niov * sizeof(*bufs));
        n = c->head_niov;
        c->head_sent_up = 1;
        n = px_pol_replay(c, bufs, n); /* a retry: the body an earlier attempt sent */
    }
    if (p->body_len > 0) {
        px_pol_record(c, p->body_off, p->body_len);
        if (chunked)
            bufs[n++] =
                uv_buf_init(c->up_chunk, (unsigned)px_h1_chunk_line(c->up_chunk, p->body_len));
        bufs[n++] = uv_buf_init(c->rb->data + p->body_off, p->body_len);
        if (chunked)
            bufs[n++] = uv_buf_init((char *)"\r\n", 2);
        p->body_len = 0;
        c->body_sent_up = 1;
    }
    if (final && chunked) {
        bufs[n++] = uv_buf_init((char *)PX_H1_LAST_CHUNK, sizeof(PX_H1_LAST_CHUNK) - 1);
        c->body_sent_up = 1;
    }
    if (n == 0)
        return;
    if (c->timer_mode == PX_TIMER_REQUEST && body)
        arm(c, PX_TIMER_REQUEST, c->route->timeout_ms); /* progress: the deadline starts over */
    int r = px_upstream_write(c->up, bufs, n);
    if (r < 0)
        upstream_error(c, "write error", uv_strerror(r));
}

void px_http_on_upstream_written(struct px_conn *c, int status)
{
    if (c->closing)
        return;
    if (status < 0 && !c->resp_done) {
        upstream_error(c, "write error", uv_strerror(status));
        return;
    }
    pump_request(c);
    maybe_finish(c);
}

/* Drops the attempt's connection and sends the request again: a retry the route's
 * retry_policy allowed (http_policy.c) on the response head just received. */
static void retry_attempt(struct px_conn *c)
{
    detach_upstream(c, false);
    if (c->closing)
        return;
    c->head_sent_up = 0;
    c->resp_begun = 0;
    c->state = PX_REQ_CONNECTING;
    connect_upstream(c, false);
}

/* ---- relaying the response --------------------------------------------------------------- */

/* Sends what the last parse of the response produced: the head once, body bytes (re-chunked
 * when the client gets chunked), and the end. */
static void relay(struct px_conn *c, bool done)
{
    struct px_h1_parser *p = &c->up->resp;
    uv_buf_t small[4];
    uv_buf_t *bufs = small;
    unsigned n = 0;
    if (p->head_done && !c->resp_head_sent) {
        int status = p->ll.status_code;
        if (status == 101 && c->upgrade_ok) {
            px_tunnel_start(c); /* tunnel.c: raw bytes both ways from here */
            return;
        }
        if (status < 200) {
            /* Interim (100 Continue, 103): relayed to HTTP/1.1 clients, then the real
             * response follows on the same connection. */
            uv_buf_t *iov = NULL;
            unsigned k = 0;
            if (!c->client_http10)
                k = px_h1_response_head(p, false, false, false, &c->arena, &iov);
            px_h1_next(p);
            p->skip_body = c->is_head;
            if (k > 0)
                dwrite(c, iov, k);
            return;
        }
        if (px_pol_retry_status(c, status)) {
            retry_attempt(c);
            return;
        }
        if (c->timer_mode == PX_TIMER_REQUEST)
            disarm(c);
        bool bodyless = c->is_head || status == 204 || status == 304;
        bool chunked = false;
        if (!bodyless && !(p->ll.flags & F_CONTENT_LENGTH)) {
            /* Chunked from the upstream, or running to its close: chunked to an HTTP/1.1
             * client (the connection survives), close-delimited to an HTTP/1.0 one. */
            if (c->client_http10)
                c->keep_alive = 0;
            else
                chunked = true;
        }
        /* An answer before the whole request arrived (e.g. a 413): where the next request
         * starts is unknowable without reading the rest, so this connection ends. */
        if (!c->req_done)
            c->keep_alive = 0;
        c->resp_chunked = chunked;
        c->status = status;
        c->resp_head_sent = 1;
        uv_buf_t *iov = NULL;
        unsigned k = px_h1_response_head_edited(p, true, c->keep_alive, chunked, c->resp_edits,
                                                &c->arena, &iov);
        bufs = px_arena_alloc(&c->arena, (k + 4) * sizeof(*bufs));
        memcpy(bufs, iov, k * sizeof(*bufs));
        n = k;
    }
    if (p->body_len > 0) {
        if (c->resp_chunked)
            bufs[n++] =
                uv_buf_init(c->down_chunk, (unsigned)px_h1_chunk_line(c->down_chunk, p->body_len));
        bufs[n++] = uv_buf_init(c->up->rb->data + p->body_off, p->body_len);
        if (c->resp_chunked)
            bufs[n++] = uv_buf_init((char *)"\r\n", 2);
        p->body_len = 0;
    }
    if (done) {
        if (c->resp_chunked)
            bufs[n++] = uv_buf_init((char *)PX_H1_LAST_CHUNK, sizeof(PX_H1_LAST_CHUNK) - 1);
        c->resp_done = 1;
    }
    if (n > 0 && dwrite(c, bufs, n) < 0)
        return;
    if (done)
        maybe_finish(c);
}

/* The upstream closed (or failed) and every byte it sent before is parsed. */
static void upstream_gone(struct px_conn *c)
{
    struct px_upstream *u = c->up;
    int err = u->read_err;
    if (err == UV_EOF) {
        enum px_h1_event ev = px_h1_finish(&u->resp);
        if (ev == PX_H1_DONE) {
            /* A body delimited by the close. */
            u->resp.body_len = 0;
            relay(c, true);
            return;
        }
        upstream_error(c, "closed the connection",
                       u->resp.begun ? "in the middle of the response" : "before responding");
        return;
    }
    upstream_error(c, "reset", uv_strerror(err));
}

static void pump_response(struct px_conn *c)
{
    while (!c->closing && c->up != NULL && c->dwrites == 0 && !c->resp_done) {
        if (c->tunnel) {
            px_tunnel_down(c);
            return;
        }
        struct px_upstream *u = c->up;
        struct px_rbuf *rb = u->rb;
        if (rb == NULL || rb->off == rb->len) {
            if (u->eof)
                upstream_gone(c);
            return;
        }
        uint32_t used = 0;
        enum px_h1_event ev = px_h1_execute(&u->resp, rb->data, rb->off, rb->len, &c->arena, &used);
        rb->off += used;
        if (ev == PX_H1_ERROR) {
            upstream_error(c, "sent an invalid response", u->resp.error_reason);
            return;
        }
        relay(c, ev == PX_H1_DONE);
    }
}

void px_http_on_upstream_data(struct px_conn *c)
{
    if (c->closing)
        return;
    px_pol_activity(c);
    c->resp_begun = 1;
    pump_response(c);
}

void px_http_on_upstream_eof(struct px_conn *c, int status)
{
    (void)status;
    if (c->closing || c->up == NULL)
        return;
    pump_response(c);
}

/* ---- the proxy's own answers ------------------------------------------------------------- */

static void respond_local(struct px_conn *c, int status, const char *msg, const char *detail,
                          size_t detail_len)
{
    detach_upstream(c, false);
    if (c->closing)
        return;
    if (c->timer_mode == PX_TIMER_REQUEST)
        disarm(c);
    resume_parser(c);
    c->state = PX_REQ_LOCAL;
    c->status = status;
    c->resp_head_sent = 1;
    c->resp_done = 1;
    px_pol_local_headers(c, status); /* CORS lines on our own answers too */
    char *s = NULL;
    size_t n = px_h1_local_response_ext(&c->arena, status, c->local_headers, msg, detail,
                                        detail_len, c->keep_alive, c->is_head, &s);
    uv_buf_t b = uv_buf_init(s, (unsigned)n);
    if (dwrite(c, &b, 1) < 0)
        return;
    /* The rest of the request body is read and dropped, so the connection stays usable; a
     * client that never finishes it is closed like an idle one. */
    if (!c->req_done)
        arm(c, PX_TIMER_IDLE, c->w->limits.idle_timeout_ms);
    pump_request(c);
    maybe_finish(c);
}

/* A request llhttp or our checks refused: answered, then the connection is closed (where the
 * next request would start is unknown). */
static void refuse_request(struct px_conn *c)
{
    struct px_h1_parser *p = &c->req;
    int status = p->error_status ? p->error_status : 400;
    const char *why = p->error_reason ? p->error_reason : "malformed request";
    log_debug("request refused", "client=%s status=%d error=%s", c->client_ip, status, why);
    c->keep_alive = 0;
    c->req_done = 1;
    if (c->resp_head_sent) {
        px_http_close(c);
        return;
    }
    detach_upstream(c, false);
    if (c->closing)
        return;
    disarm(c);
    c->state = PX_REQ_LOCAL;
    c->status = status;
    c->resp_head_sent = 1;
    c->resp_done = 1;
    char msg[64];
    snprintf(msg, sizeof(msg), "%s: ", px_h1_reason(status));
    char *s = NULL;
    size_t n = px_h1_local_response_ext(&c->arena, status, c->local_headers, msg, why, strlen(why),
                                        false, false, &s);
    uv_buf_t b = uv_buf_init(s, (unsigned)n);
    if (dwrite(c, &b, 1) < 0)
        return;
    maybe_finish(c);
}

/* A redirect of the proxy's own: Location (and the Server line) on a short text answer. */
static void respond_redirect(struct px_conn *c, int status, const char *loc, size_t len)
{
    const char *server = c->local_headers ? c->local_headers : "";
    size_t room = strlen(server) + len + 16;
    char *extra = px_arena_alloc(&c->arena, room);
    snprintf(extra, room, "%sLocation: %.*s\r\n", server, (int)len, loc);
    c->local_headers = extra;
    respond_local(c, status, "redirecting to ", loc, len);
}

/* Answers a request as its verdict says (request.h), when it is not forwarded. */
static void act_on(struct px_conn *c, const struct px_verdict *v)
{
    if (v->kind == PX_VERDICT_REDIRECT) {
        respond_redirect(c, v->status, v->location, v->location_len);
        return;
    }
    if (v->close) {
        log_debug("request refused", "client=%s status=%d error=%.*s", c->client_ip, v->status,
                  (int)v->detail_len, v->detail);
        c->keep_alive = 0;
    }
    respond_local(c, v->status, v->msg, v->detail, v->detail_len);
}

/* ---- requests ---------------------------------------------------------------------------- */

/* Routes the request whose head was just parsed and starts forwarding it, or answers it. */
static void on_request_head(struct px_conn *c)
{
    struct px_worker *w = c->w;
    struct px_h1_parser *p = &c->req;
    disarm(c);
    if (px_h1_has_body(p))
        body_timer_start(c);
    c->started_ms = uv_now(&w->loop);
    c->is_head = p->ll.method == HTTP_HEAD;
    c->client_http10 = p->ll.http_minor == 0;
    c->client_close = !llhttp_should_keep_alive(&p->ll);
    c->keep_alive = !c->client_close && !c->client_eof && !w->stopping;

    struct px_verdict v;
    px_request_route(p, w->snap, c->client_ip, &c->arena, &v);
    /* The query is left out of the log: tokens travel there. */
    c->log_path = v.path;
    if (v.edge != NULL) {
        c->snap = px_snapshot_ref(w->snap);
        if (v.edge->server_line[0] != '\0')
            c->local_headers = v.edge->server_line;
    }
    if (v.kind != PX_VERDICT_ROUTE) {
        act_on(c, &v);
        return;
    }
    const struct route *r = px_pol_pick(c, v.route); /* a canary group's member */
    c->route = r;
    c->cluster = &c->snap->table->clusters[r->cluster];
    struct px_h1_forward f;
    if (px_request_forward(&v, r, c->snap->table, c->snap->router, c->client_ip, &c->arena, &f) !=
        0) {
        act_on(c, &v);
        return;
    }
    c->resp_edits =
        px_request_edits(&c->arena, r->remove_response_headers, r->nremove_response_headers,
                         r->add_response_headers, r->nadd_response_headers);
    if (px_pol_admit(c) != 0)
        return; /* CORS preflight, rate limit or circuit breaker answered (http_policy.c) */
    c->head_niov = px_h1_request_head(p, &f, &c->arena, &c->head_iov);
    px_tunnel_prepare(c); /* use_websocket / allow_upgrade */
    px_shadow_start(c, &f);
    if (r->timeout_ms > 0)
        arm(c, PX_TIMER_REQUEST, r->timeout_ms);
    c->state = PX_REQ_CONNECTING;
    connect_upstream(c, false);
}

/* Parses what the read buffer holds, as far as the request's state allows. */
static void pump_request_once(struct px_conn *c)
{
    while (!c->closing && !c->lingering) {
        if (c->tunnel) {
            px_tunnel_up(c);
            return;
        }
        if (c->state == PX_REQ_CONNECTING)
            return;
        if (c->state == PX_REQ_FORWARD) {
            if (c->up == NULL || c->up->writing)
                return;
            struct px_rbuf *rb = c->rb;
            if (!c->head_sent_up && (c->req_done || rb == NULL || rb->off == rb->len)) {
                forward_up(c, false);
                continue;
            }
        }
        if (c->req_done)
            return;
        struct px_rbuf *rb = c->rb;
        if (rb == NULL || (rb->off == rb->len && !c->kick))
            return;
        c->kick = 0;
        uint32_t used = 0;
        enum px_h1_event ev = px_h1_execute(&c->req, rb->data, rb->off, rb->len, &c->arena, &used);
        rb->off += used;
        if (ev == PX_H1_ERROR) {
            refuse_request(c);
            return;
        }
        if (ev == PX_H1_HEAD) {
            on_request_head(c);
            continue;
        }
        if (c->state == PX_REQ_FORWARD)
            forward_up(c, ev == PX_H1_DONE);
        else
            c->req.body_len = 0; /* LOCAL: dropped */
        if (ev == PX_H1_DONE) {
            c->req_done = 1;
            maybe_finish(c);
        }
    }
}

static void pump_request(struct px_conn *c)
{
    /* Callbacks reached from here (a local answer, a pooled upstream ready at once, the end
     * of a request) may ask for another pass; the outer call does it. */
    if (c->pumping) {
        c->repump = 1;
        return;
    }
    c->pumping = 1;
    do {
        c->repump = 0;
        pump_request_once(c);
    } while (c->repump && !c->closing);
    c->pumping = 0;
    update_reading(c);
}

static void reset_request(struct px_conn *c)
{
    px_pol_request_end(c);
    c->state = PX_REQ_IDLE;
    c->route = NULL;
    c->cluster = NULL;
    c->local_headers = NULL;
    c->resp_edits = NULL;
    c->head_iov = NULL;
    c->head_niov = 0;
    c->status = 0;
    c->log_path = NULL;
    c->is_head = 0;
    c->client_http10 = 0;
    c->parser_resumed = 0;
    c->kick = 0;
    c->req_done = 0;
    c->head_sent_up = 0;
    c->body_sent_up = 0;
    c->resp_begun = 0;
    c->resp_head_sent = 0;
    c->resp_chunked = 0;
    c->resp_done = 0;
    c->retried = 0;
    c->timed_out = 0;
    c->upgrade_ok = 0;
}

static void release_idle_rbuf(struct px_conn *c);

static void finish_request(struct px_conn *c)
{
    struct px_upstream *u = c->up;
    if (u != NULL) {
        bool reusable = c->req_done && u->resp.done && llhttp_should_keep_alive(&u->resp.ll);
        detach_upstream(c, reusable);
    }
    px_pol_request_end(c); /* its circuit-breaker slots, now, even if the close lingers */
    log_debug("request", "client=%s method=%s path=%s status=%d cluster=%s duration_ms=%llu",
              c->client_ip, llhttp_method_name((llhttp_method_t)c->req.ll.method),
              c->log_path ? c->log_path : "", c->status, c->cluster ? c->cluster->name : "",
              (unsigned long long)(uv_now(&c->w->loop) - c->started_ms));
    px_snapshot_release(c->snap);
    c->snap = NULL;
    disarm(c);
    uv_timer_stop(&c->body_timer);
    if (!c->keep_alive || !c->req_done) {
        close_graceful(c);
        return;
    }
    reset_request(c);
    px_arena_reset(&c->arena);
    px_h1_next(&c->req);
    /* Bytes of a pipelined request already here: its head is on the clock. */
    if (c->rb != NULL && c->rb->off < c->rb->len)
        arm(c, PX_TIMER_HEADER, c->w->limits.header_timeout_ms);
    else
        arm(c, PX_TIMER_IDLE, c->w->limits.idle_timeout_ms);
    pump_request(c);
    /* The usual keep-alive case: the client reads its response and waits; no read callback
     * comes to give the buffer back, so do it here. */
    release_idle_rbuf(c);
}

/* Ends the request once both directions are through: the response written out and, unless
 * the connection closes anyway, the request read to its end and sent. */
static void maybe_finish(struct px_conn *c)
{
    if (c->closing || c->lingering || c->state == PX_REQ_IDLE || !c->resp_done || c->dwrites > 0)
        return;
    if (!c->req_done && c->keep_alive)
        return;
    if (c->req_done && c->up != NULL && c->up->writing)
        return;
    finish_request(c);
}

/* ---- reading from the client ------------------------------------------------------------- */

/* Makes room at the end of the read buffer by dropping what is parsed and no longer needed. */
static void make_room(struct px_conn *c)
{
    struct px_rbuf *rb = c->rb;
    bool in_head = c->state == PX_REQ_IDLE && c->req.begun;
    uint32_t keep;
    if (c->lingering) {
        rb->len = rb->off = 0;
        return;
    }
    if (c->state == PX_REQ_IDLE) {
        keep = in_head ? c->req.start : rb->off;
    } else {
        if (c->up != NULL && c->up->writing)
            return; /* a write in flight points into the buffer */
        if ((c->state == PX_REQ_CONNECTING || c->state == PX_REQ_FORWARD) && !c->body_sent_up)
            return; /* the head (iovecs into the buffer) may still be sent, or sent again */
        if (px_pol_keep_buffer(c))
            return; /* head and body stay for a retry (http_policy.c) */
        keep = rb->off;
    }
    px_rbuf_compact(rb, keep, in_head ? &c->req : NULL);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct px_conn *c = h->data;
    if (c->rb == NULL)
        c->rb = px_rbuf_get(c->w);
    make_room(c);
    *buf = uv_buf_init(c->rb->data + c->rb->len, PX_RBUF_SIZE - c->rb->len);
}

/* An idle connection gives its read buffer and its arena back: thousands of idle keep-alive
 * clients cost a connection structure each, not a buffer and an arena chunk. The arena comes
 * back on the next request's first allocation. */
static void release_idle_rbuf(struct px_conn *c)
{
    if (c->rb != NULL && c->state == PX_REQ_IDLE && !c->req.begun && c->rb->off == c->rb->len &&
        !c->closing) {
        px_rbuf_put(c->w, c->rb);
        c->rb = NULL;
        px_arena_park(&c->arena);
    }
}

static void on_client_eof(struct px_conn *c, int err)
{
    c->client_eof = 1;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    if (err != UV_EOF || c->lingering || c->state == PX_REQ_IDLE || !c->req_done || c->tunnel) {
        /* Nothing in progress, or a request cut short: nothing to answer. A tunnel ends when
         * either side closes. */
        if (err != UV_EOF && err != UV_ECONNRESET)
            log_debug("client read failed", "client=%s error=%s", c->client_ip, uv_strerror(err));
        px_http_close(c);
        return;
    }
    /* Half-closed after a whole request: answer it, then close. */
    c->keep_alive = 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct px_conn *c = s->data;
    c->w->io_seen++;
    if (c->closing)
        return;
    if (nread == UV_ENOBUFS) {
        update_reading(c); /* full: resumes when parsing makes room */
        return;
    }
    if (nread < 0) {
        on_client_eof(c, (int)nread);
        return;
    }
    if (c->lingering) {
        c->rb->len = c->rb->off = 0;
        return;
    }
    c->rb->len += (uint32_t)nread;
    px_pol_activity(c);
    if (nread > 0) {
        if (c->state != PX_REQ_IDLE)
            c->body_read_ms = uv_now(&c->w->loop);
        else if (c->timer_mode == PX_TIMER_IDLE)
            arm(c, PX_TIMER_HEADER, c->w->limits.header_timeout_ms); /* a head begins */
        pump_request(c);
    }
    release_idle_rbuf(c);
}

/* Reads whenever the buffer has room, whatever the request's state: bytes that may not be
 * parsed yet (a pipelined request, body behind a write in flight) wait in the buffer, whose
 * size bounds what the client can push ahead. Not toggling reads per request also spares two
 * epoll_ctl calls per request. */
static void update_reading(struct px_conn *c)
{
    if (c->closing)
        return;
    bool want = !c->client_eof;
    if (want && c->rb != NULL && c->rb->len == PX_RBUF_SIZE) {
        make_room(c);
        want = c->rb->len < PX_RBUF_SIZE;
    }
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = 1;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

/* ---- closing ----------------------------------------------------------------------------- */

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status; /* the linger timer or the client's close ends it either way */
}

/* Closes after what was written: FIN first, then read and drop what the client still sends
 * until it closes or PX_LINGER_MS pass. Closing with unread bytes would make the kernel send
 * a reset, which can destroy the answer (a 400, a 431) before the client reads it. */
static void close_graceful(struct px_conn *c)
{
    if (c->closing || c->lingering)
        return;
    detach_upstream(c, false);
    if (c->closing)
        return;
    /* The client asked to close and everything it sent is read: it sends nothing more, so
     * nothing can arrive unread and turn the close into a reset. Close at once, as nginx
     * does, without the shutdown / wait-for-EOF round (four system calls fewer). */
    if (c->client_close && c->req_done && (c->rb == NULL || c->rb->off == c->rb->len)) {
        px_http_close(c);
        return;
    }
    c->lingering = 1;
    disarm(c);
    if (c->client_eof || uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        px_http_close(c);
        return;
    }
    arm(c, PX_TIMER_LINGER, PX_LINGER_MS);
    update_reading(c);
}

void px_http_drain(struct px_conn *c)
{
    c->keep_alive = 0;
    if (c->state == PX_REQ_IDLE || c->lingering)
        px_http_close(c);
}

/* ---- accepting --------------------------------------------------------------------------- */

void px_http_accept(struct px_worker *w, int fd, const struct sockaddr *peer)
{
    struct px_conn *c = xcalloc(1, sizeof(*c));
    c->w = w;
    w->nconns++;
    px_list_init(&c->link);
    uv_tcp_init(&w->loop, &c->tcp);
    c->tcp.data = c;
    uv_timer_init(&w->loop, &c->timer);
    c->timer.data = c;
    uv_timer_init(&w->loop, &c->body_timer);
    c->body_timer.data = c;
    int r = uv_tcp_open(&c->tcp, fd);
    if (r != 0) {
        log_warn("accept failed", "worker=%d error=%s", w->id, uv_strerror(r));
        close(fd);
        c->closing = 1;
        uv_close((uv_handle_t *)&c->tcp, on_close);
        uv_close((uv_handle_t *)&c->timer, on_close);
        uv_close((uv_handle_t *)&c->body_timer, on_close);
        return;
    }
    px_list_push(&w->conns, &c->link);
    px_edge_format_peer(peer, c->client_ip, sizeof(c->client_ip));
    px_h1_init(&c->req, HTTP_REQUEST, true);
    px_arena_init_cached(&c->arena, &c->w->arena_cache);
    /* A new connection is there to send a request: its head is on the clock from now. */
    arm(c, PX_TIMER_HEADER, w->limits.header_timeout_ms);
    update_reading(c);
}

/* ---- for the policy modules -------------------------------------------------------------- */

void px_http_respond(struct px_conn *c, int status, const char *msg, const char *detail)
{
    respond_local(c, status, msg, detail, detail ? strlen(detail) : 0);
}

void px_http_upstream_failed(struct px_conn *c, const char *what, const char *why)
{
    upstream_error(c, what, why);
}

int px_http_write(struct px_conn *c, uv_buf_t *bufs, unsigned n)
{
    return dwrite(c, bufs, n);
}
