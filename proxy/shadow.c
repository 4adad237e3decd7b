/* Request shadowing (shadow.h).
 *
 * A struct px_shadow starts as a buffer attached to the client connection (c->shadow) while
 * the request is read; once it is whole the shadow detaches and lives on its own handles (a
 * TCP connection and a timer) on the worker's loop, and frees itself in the close callback
 * of the last of them. It copies the cluster's host and port: the snapshot may go first. */
#include "shadow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "dns.h"
#include "log.h"
#include "policy.h"
#include "snapshot.h"
#include "xalloc.h"

struct px_shadow {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect_req;
    uv_write_t wreq;
    struct px_dns_query dq;
    struct px_worker *w;
    struct buf req; /* the copy: head, then the body as sent */
    size_t body_len;
    bool chunked;
    bool resolving;
    bool closing;
    int nclosed;
    char *host;
    uint16_t port;
    char scratch[4096]; /* the answer is read into this and dropped */
};

static _Thread_local unsigned inflight;

unsigned px_shadow_inflight(void)
{
    return inflight;
}

static void shadow_free(struct px_shadow *s)
{
    buf_free(&s->req);
    free(s->host);
    free(s);
}

void px_shadow_abandon(struct px_conn *c)
{
    if (c->shadow == NULL)
        return;
    shadow_free(c->shadow);
    c->shadow = NULL;
}

/* "host:port" -> "host-shadow:port"; "[v6]:port" -> "[v6]-shadow:port" is nonsense, so a
 * bracketed literal keeps its port after the suffix all the same (Envoy does the same). */
static size_t shadow_host(const char *host, size_t len, char *out, size_t room)
{
    size_t cut = len;
    for (size_t i = len; i > 0; i--) {
        if (host[i - 1] == ']')
            break;
        if (host[i - 1] == ':') {
            cut = i - 1;
            break;
        }
    }
    int n = snprintf(out, room, "%.*s-shadow%.*s", (int)cut, host, (int)(len - cut), host + cut);
    return n > 0 && (size_t)n < room ? (size_t)n : 0;
}

void px_shadow_start(struct px_conn *c, const struct px_h1_forward *f)
{
    const struct route_shadow *sh = &c->route->policy->shadow;
    if (!sh->set || c->shadow != NULL)
        return;
    if (sh->percent < 100 && px_policy_random() % 100 >= sh->percent)
        return;
    const struct route_cluster *cl = &c->snap->table->clusters[sh->cluster];
    if (strcmp(cl->scheme, "http") != 0)
        return;
    if (inflight >= PX_SHADOW_INFLIGHT) {
        log_debug("shadow skipped", "cluster=%s reason=%s", cl->name, "too many in flight");
        return;
    }
    size_t room = f->host_len + 16;
    char *host = px_arena_alloc(&c->arena, room);
    struct px_h1_forward g = *f;
    g.host = host;
    g.host_len = shadow_host(f->host, f->host_len, host, room);
    uv_buf_t *iov = NULL;
    unsigned n = px_h1_request_head(&c->req, &g, &c->arena, &iov);
    struct px_shadow *s = xcalloc(1, sizeof(*s));
    buf_init(&s->req, PX_H1_HEAD_MAX + 256 + 2 * PX_SHADOW_BODY_MAX);
    for (unsigned i = 0; i < n; i++)
        buf_append(&s->req, iov[i].base, iov[i].len);
    /* The head ends with an empty line: Connection: close goes before it, so the shadow's
     * answer ends with its connection and needs no parsing. */
    if (s->req.len < 2) {
        shadow_free(s);
        return;
    }
    s->req.len -= 2;
    buf_append_str(&s->req, "Connection: close\r\n\r\n");
    s->chunked = px_h1_is_chunked(&c->req);
    s->host = xstrdup(cl->host);
    s->port = cl->port;
    s->w = c->w;
    c->shadow = s;
}

static void on_close(uv_handle_t *h)
{
    struct px_shadow *s = h->data;
    if (++s->nclosed < 2)
        return;
    inflight--;
    shadow_free(s);
}

static void finish(struct px_shadow *s)
{
    if (s->closing)
        return;
    s->closing = true;
    if (s->resolving)
        px_dns_cancel(&s->dq);
    uv_close((uv_handle_t *)&s->tcp, on_close);
    uv_close((uv_handle_t *)&s->timer, on_close);
}

static void on_timeout(uv_timer_t *t)
{
    struct px_shadow *s = t->data;
    log_debug("shadow timed out", "host=%s port=%u", s->host, (unsigned)s->port);
    finish(s);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    struct px_shadow *s = h->data;
    *b = uv_buf_init(s->scratch, sizeof(s->scratch));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    if (n < 0)
        finish(st->data); /* the answer is over (Connection: close), or failed */
}

static void on_written(uv_write_t *req, int status)
{
    struct px_shadow *s = req->data;
    if (s->closing)
        return;
    if (status < 0 || uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) != 0)
        finish(s);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct px_shadow *s = req->data;
    if (s->closing)
        return;
    if (status < 0) {
        log_debug("shadow connect failed", "host=%s port=%u error=%s", s->host, (unsigned)s->port,
                  uv_strerror(status));
        finish(s);
        return;
    }
    uv_buf_t b = uv_buf_init(s->req.data, (unsigned)s->req.len);
    s->wreq.data = s;
    if (uv_write(&s->wreq, (uv_stream_t *)&s->tcp, &b, 1, on_written) != 0)
        finish(s);
}

static void connect_to(struct px_shadow *s)
{
    struct sockaddr_storage *ss = &s->dq.addr;
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(s->port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(s->port);
    s->connect_req.data = s;
    if (uv_tcp_connect(&s->connect_req, &s->tcp, (const struct sockaddr *)ss, on_connect) != 0)
        finish(s);
}

static void on_resolved(struct px_dns_query *q, int status)
{
    struct px_shadow *s = container_of(q, struct px_shadow, dq);
    s->resolving = false;
    if (s->closing)
        return;
    if (status < 0) {
        finish(s);
        return;
    }
    connect_to(s);
}

/* The copy is whole: it leaves the client connection and goes. */
static void launch(struct px_shadow *s)
{
    inflight++;
    uv_tcp_init(&s->w->loop, &s->tcp);
    uv_timer_init(&s->w->loop, &s->timer);
    s->tcp.data = s->timer.data = s;
    uv_timer_start(&s->timer, on_timeout, PX_SHADOW_TIMEOUT_MS, 0);
    int r = px_dns_resolve(s->w, s->host, &s->dq, on_resolved);
    if (r == 1)
        s->resolving = true;
    else if (r == 0)
        connect_to(s);
    else
        finish(s);
}

void px_shadow_feed(struct px_conn *c, const char *data, size_t len, bool final)
{
    struct px_shadow *s = c->shadow;
    if (s == NULL)
        return;
    int rc = 0;
    s->body_len += len;
    if (len > 0 && s->body_len <= PX_SHADOW_BODY_MAX) {
        if (s->chunked) {
            char line[PX_H1_CHUNK_LINE];
            rc = buf_append(&s->req, line, px_h1_chunk_line(line, len));
        }
        rc = rc || buf_append(&s->req, data, len);
        if (s->chunked)
            rc = rc || buf_append(&s->req, "\r\n", 2);
    }
    if (final && s->chunked)
        rc = rc || buf_append_str(&s->req, PX_H1_LAST_CHUNK);
    if (rc != 0 || s->body_len > PX_SHADOW_BODY_MAX) {
        log_debug("shadow skipped", "host=%s reason=%s", s->host, "request body over the cap");
        px_shadow_abandon(c);
        return;
    }
    if (!final)
        return;
    c->shadow = NULL;
    launch(s);
}
