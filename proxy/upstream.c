/* Upstream connections and per-worker keep-alive pools (upstream.h).
 *
 * TLS (https clusters). The socket carries ciphertext; tls.c turns it into plaintext in the
 * same read buffer the response parser reads, so http.c never knows. Plaintext is decrypted
 * only as far as the buffer has room; the rest stays in the session and reading the socket
 * stops, so memory stays bounded; it is delivered when http.c asks to read again. Writes are
 * encrypted at once into a buffer of their own, so the caller's buffers are free as soon as
 * the call returns.
 *
 * A connection is attached to one client connection (owner) from acquire to release. Idle
 * pooled connections keep reading into the worker's scratch buffer: any byte or the close
 * from the peer makes them useless, and they are closed at once rather than handed to the
 * next request. The response parser lives here but is driven by http.c, which owns the
 * relaying; this file moves bytes and manages buffers. */
#include "upstream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dns.h"
#include "http.h"
#include "lb.h"
#include "log.h"
#include "policy.h"
#include "tls.h"
#include "xalloc.h"

struct px_pool {
    struct px_pool *hnext;
    char *host;
    uint16_t port;
    bool tls;
    char *sni; /* tls: the server name; NULL: host */
    uint32_t hash;
    struct px_link idle; /* most recently used first */
    unsigned nidle;
    unsigned nactive; /* attached or connecting, not yet closing */
    uint64_t last_used;
    /* Load balancing over the name's addresses (lb.c): the round-robin cursor, and the
     * requests in progress per address index (least_request). */
    unsigned rr;
    unsigned active_by_addr[PX_DNS_MAX_ADDRS];
};

static uint32_t pool_hash(const char *host, uint16_t port, bool tls, const char *sni)
{
    uint32_t h = 2166136261u;
    for (const char *s = host; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    for (const char *s = sni; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return (h ^ port ^ (tls ? 0x10000u : 0)) * 16777619u;
}

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

void px_pools_init(struct px_pools *p)
{
    p->nbuckets = 16;
    p->buckets = xcalloc(p->nbuckets, sizeof(*p->buckets));
    p->n = 0;
}

void px_pools_free(struct px_pools *p)
{
    for (size_t i = 0; i < p->nbuckets; i++) {
        struct px_pool *pool = p->buckets[i];
        while (pool != NULL) {
            struct px_pool *next = pool->hnext;
            free(pool->host);
            free(pool->sni);
            free(pool);
            pool = next;
        }
    }
    free(p->buckets);
    p->buckets = NULL;
    p->nbuckets = p->n = 0;
}

static void pools_grow(struct px_pools *p)
{
    size_t nb = p->nbuckets * 2;
    struct px_pool **b = xcalloc(nb, sizeof(*b));
    for (size_t i = 0; i < p->nbuckets; i++) {
        struct px_pool *pool = p->buckets[i];
        while (pool != NULL) {
            struct px_pool *next = pool->hnext;
            pool->hnext = b[pool->hash & (nb - 1)];
            b[pool->hash & (nb - 1)] = pool;
            pool = next;
        }
    }
    free(p->buckets);
    p->buckets = b;
    p->nbuckets = nb;
}

/* Connections are pooled per (host, port) and, for TLS, per server name: a session set up
 * for one name must not carry requests meant for another. */
static struct px_pool *pool_get(struct px_pools *p, const struct route_cluster *cl)
{
    const char *host = cl->host;
    uint16_t port = cl->port;
    bool tls = strcmp(cl->scheme, "https") == 0;
    const char *sni = tls ? cl->sni : NULL;
    uint32_t h = pool_hash(host, port, tls, sni);
    for (struct px_pool *pool = p->buckets[h & (p->nbuckets - 1)]; pool; pool = pool->hnext) {
        if (pool->hash == h && pool->port == port && pool->tls == tls &&
            strcmp(pool->host, host) == 0 && str_eq(pool->sni, sni))
            return pool;
    }
    if (p->n >= p->nbuckets)
        pools_grow(p);
    struct px_pool *pool = xcalloc(1, sizeof(*pool));
    pool->host = xstrdup(host);
    pool->port = port;
    pool->tls = tls;
    pool->sni = xstrdup(sni);
    pool->hash = h;
    px_list_init(&pool->idle);
    pool->hnext = p->buckets[h & (p->nbuckets - 1)];
    p->buckets[h & (p->nbuckets - 1)] = pool;
    p->n++;
    return pool;
}

/* ---- lifecycle --------------------------------------------------------------------------- */

static void on_close(uv_handle_t *h)
{
    struct px_upstream *u = h->data;
    px_rbuf_put(u->w, u->rb);
    px_tls_free(u->tls);
    px_cstate_conn_closed(u->cs); /* max_connections counts it until now */
    free(u);
}

/* Closes u; it is freed in the close callback. Not for an attached connection: detach (set
 * owner to NULL) first. */
/* A request uses u, which goes to address slot of its name (-1: not counted). */
static void lb_attach(struct px_upstream *u, int slot)
{
    u->lb_slot = slot;
    if (slot >= 0 && slot < PX_DNS_MAX_ADDRS)
        u->pool->active_by_addr[slot]++;
}

static void lb_detach(struct px_upstream *u)
{
    if (u->lb_slot >= 0 && u->lb_slot < PX_DNS_MAX_ADDRS)
        u->pool->active_by_addr[u->lb_slot]--;
    u->lb_slot = -1;
}

static void close_upstream(struct px_upstream *u)
{
    if (u->closing)
        return;
    u->closing = 1;
    lb_detach(u);
    if (u->resolving) {
        px_dns_cancel(&u->dq);
        u->resolving = 0;
    }
    if (u->idle) {
        px_list_remove(&u->link);
        u->idle = 0;
        u->pool->nidle--;
    } else {
        u->pool->nactive--;
    }
    uv_close((uv_handle_t *)&u->tcp, on_close);
}

void px_upstream_abort(struct px_upstream *u)
{
    u->owner = NULL;
    close_upstream(u);
}

/* cluster_idle_timeout_ms and cluster_max_connection_lifetime_ms of the cluster the
 * connection is about to serve: true when it must not be reused. */
static bool expired(const struct px_upstream *u, const struct route_cluster_policy *p, uint64_t now)
{
    return (p->idle_timeout_ms && u->idle && now - u->idle_since >= p->idle_timeout_ms) ||
           (p->max_lifetime_ms && now - u->created_ms >= p->max_lifetime_ms);
}

void px_upstream_release(struct px_upstream *u, bool reusable)
{
    struct px_worker *w = u->w;
    struct px_pool *pool = u->pool;
    if (u->owner != NULL && u->owner->cluster != NULL &&
        expired(u, &u->owner->cluster->policy, uv_now(&w->loop)))
        reusable = false;
    u->owner = NULL;
    lb_detach(u);
    /* Bytes after the response, a write still going out, or a peer that said close: none of
     * these can carry the next request. */
    if (!reusable || u->closing || !u->connected || u->writing || u->eof || u->broken ||
        w->stopping || (u->rb != NULL && u->rb->off != u->rb->len) ||
        (u->tls != NULL && (u->tls_closed || px_tls_has_pending(u->tls))) ||
        pool->nidle >= PX_POOL_IDLE_MAX) {
        close_upstream(u);
        return;
    }
    px_rbuf_put(w, u->rb);
    u->rb = NULL;
    px_h1_next(&u->resp);
    u->reused = 1;
    u->idle = 1;
    u->idle_since = uv_now(&w->loop);
    pool->nactive--;
    pool->nidle++;
    pool->last_used = u->idle_since;
    px_list_push(&pool->idle, &u->link);
    px_upstream_read(u, true);
}

void px_pools_close_idle(struct px_worker *w)
{
    struct px_pools *p = &w->pools;
    for (size_t i = 0; i < p->nbuckets; i++) {
        for (struct px_pool *pool = p->buckets[i]; pool; pool = pool->hnext) {
            while (!px_list_empty(&pool->idle))
                close_upstream(container_of(pool->idle.next, struct px_upstream, link));
        }
    }
}

void px_pools_sweep(struct px_worker *w, uint64_t now)
{
    struct px_pools *p = &w->pools;
    for (size_t i = 0; i < p->nbuckets; i++) {
        struct px_pool **pp = &p->buckets[i];
        while (*pp != NULL) {
            struct px_pool *pool = *pp;
            /* The list is most recent first: the oldest are at the tail. */
            while (!px_list_empty(&pool->idle)) {
                struct px_upstream *u = container_of(pool->idle.prev, struct px_upstream, link);
                if (now - u->idle_since < PX_UPSTREAM_IDLE_MS)
                    break;
                close_upstream(u);
            }
            if (pool->nidle == 0 && pool->nactive == 0 &&
                now - pool->last_used >= PX_UPSTREAM_IDLE_MS) {
                *pp = pool->hnext;
                free(pool->host);
                free(pool->sni);
                free(pool);
                p->n--;
            } else {
                pp = &pool->hnext;
            }
        }
    }
}

/* ---- connecting -------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static int tls_flush(struct px_upstream *u, bool notify);

static void tls_fail(struct px_upstream *u, const char *why)
{
    log_debug("upstream TLS handshake failed", "host=%s port=%u error=%s", u->pool->host,
              (unsigned)u->pool->port, why);
    u->broken = 1;
    uv_read_stop((uv_stream_t *)&u->tcp);
    u->reading = 0;
    px_http_on_upstream_connect(u->owner, UV_EPROTO, "tls");
}

/* Advances the handshake with what has arrived; once it is complete the connection is
 * ready for http.c. */
static void tls_step(struct px_upstream *u)
{
    const char *why = NULL;
    int r = px_tls_handshake(u->tls, &why);
    int f = tls_flush(u, false);
    if (r < 0 || f < 0) {
        tls_fail(u, r < 0 ? why : uv_strerror(f));
        return;
    }
    if (r == 0)
        return;
    u->tls_ready = 1;
    u->connected = 1;
    px_http_on_upstream_connect(u->owner, 0, "connect");
}

static void on_connect(uv_connect_t *req, int status)
{
    struct px_upstream *u = container_of(req, struct px_upstream, connect_req);
    u->connecting = 0;
    if (u->closing || u->owner == NULL)
        return;
    if (status == 0 && u->tls != NULL) {
        /* Reading stays on through the handshake; http.c takes over reading control once
         * the connection is ready. */
        if ((status = uv_read_start((uv_stream_t *)&u->tcp, on_alloc, on_read)) == 0) {
            u->reading = 1;
            tls_step(u);
            return;
        }
    }
    if (status == 0)
        u->connected = 1;
    px_http_on_upstream_connect(u->owner, status, "connect");
}

static int start_connect(struct px_upstream *u)
{
    struct sockaddr_storage *ss = &u->dq.addr;
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(u->pool->port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(u->pool->port);
    int r = uv_tcp_connect(&u->connect_req, &u->tcp, (const struct sockaddr *)ss, on_connect);
    if (r == 0)
        u->connecting = 1;
    return r;
}

/* The address of a new connection among its name's: the one chosen at acquire, else the
 * load balancer's choice now that the addresses are known. */
static unsigned on_pick(struct px_dns_query *q, const struct sockaddr_storage *addrs, unsigned n)
{
    struct px_upstream *u = container_of(q, struct px_upstream, dq);
    unsigned i = 0;
    if (u->lb_want >= 0 && (unsigned)u->lb_want < n)
        i = (unsigned)u->lb_want;
    else if (u->owner != NULL && u->owner->cluster != NULL)
        i = px_lb_pick(u->owner, &u->owner->cluster->policy.lb, &u->pool->rr,
                       u->pool->active_by_addr, addrs, n);
    if (u->owner != NULL)
        lb_attach(u, (int)i);
    return i;
}

static void on_resolved(struct px_dns_query *q, int status)
{
    struct px_upstream *u = container_of(q, struct px_upstream, dq);
    u->resolving = 0;
    if (u->closing || u->owner == NULL)
        return;
    if (status < 0) {
        px_http_on_upstream_connect(u->owner, status, "dns");
        return;
    }
    int r = start_connect(u);
    if (r < 0)
        px_http_on_upstream_connect(u->owner, r, "connect");
}

int px_upstream_acquire(struct px_worker *w, const struct route_cluster *cl, bool fresh,
                        struct px_conn *c, struct px_upstream **out)
{
    const char *host = cl->host;
    struct px_pool *pool = pool_get(&w->pools, cl);
    pool->last_used = uv_now(&w->loop);
    struct px_upstream *u;
    /* A name with several addresses: the load balancer chooses one for this request, and
     * only a pooled connection to it will do (lb.h). */
    const struct sockaddr_storage *addrs = NULL;
    unsigned naddrs = 0;
    int want = -1;
    if (px_dns_peek(w, host, &addrs, &naddrs) == 0 && naddrs > 1)
        want = (int)px_lb_pick(c, &cl->policy.lb, &pool->rr, pool->active_by_addr, addrs, naddrs);
    struct px_link *l = pool->idle.next;
    while (!fresh && l != &pool->idle) {
        u = container_of(l, struct px_upstream, link);
        l = l->next;
        if (want >= 0 && !px_lb_same_host(&u->dq.addr, &addrs[want]))
            continue;
        /* No peek for unread bytes here: the pool reads its idle connections, and a system
         * call per request to narrow the window further costs more than it buys
         * (docs/security.md, "bytes after the response"). */
        if (expired(u, &cl->policy, uv_now(&w->loop))) {
            close_upstream(u);
            continue;
        }
        px_list_remove(&u->link);
        u->idle = 0;
        pool->nidle--;
        pool->nactive++;
        u->owner = c;
        lb_attach(u, want);
        *out = u;
        return 0;
    }
    u = xcalloc(1, sizeof(*u));
    u->w = w;
    u->pool = pool;
    u->created_ms = uv_now(&w->loop);
    u->lb_slot = -1;
    u->lb_want = want;
    u->dq.pick = on_pick;
    if (pool->tls)
        u->tls = px_tls_new(pool->sni ? pool->sni : pool->host);
    pool->nactive++;
    px_list_init(&u->link);
    px_h1_init(&u->resp, HTTP_RESPONSE, false);
    uv_tcp_init(&w->loop, &u->tcp);
    u->tcp.data = u;
    uv_tcp_nodelay(&u->tcp, 1);
    u->owner = c;
    *out = u;
    int r = px_dns_resolve(w, host, &u->dq, on_resolved);
    if (r == 1) {
        u->resolving = 1;
        return 1;
    }
    if (r == 0)
        r = start_connect(u);
    if (r < 0) {
        px_upstream_abort(u);
        *out = NULL;
        return r;
    }
    return 1;
}

void px_upstream_expect(struct px_upstream *u, bool head_request)
{
    u->resp.skip_body = head_request;
}

/* ---- reading and writing ----------------------------------------------------------------- */

/* Makes room at the end of u's buffer: bytes already parsed go, except a response head still
 * being received (its fields are offsets from its start). Nothing of the buffer is referenced
 * by a client write here: reading stops while one is in flight. */
static void make_room(struct px_upstream *u)
{
    struct px_rbuf *rb = u->rb;
    bool in_head = u->resp.begun && !u->resp.head_done;
    uint32_t keep = in_head ? u->resp.start : rb->off;
    px_rbuf_compact(rb, keep, in_head ? &u->resp : NULL);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct px_upstream *u = h->data;
    if (u->tls != NULL) {
        *buf = uv_buf_init(px_tls_read_buf(u->tls), PX_TLS_READ_SIZE);
        return;
    }
    if (u->owner == NULL) {
        *buf = uv_buf_init(u->w->scratch, sizeof(u->w->scratch));
        return;
    }
    if (u->rb == NULL)
        u->rb = px_rbuf_get(u->w);
    make_room(u);
    *buf = uv_buf_init(u->rb->data + u->rb->len, PX_RBUF_SIZE - u->rb->len);
}

/* Decrypts what fits into the read buffer and hands it to http.c for as long as it keeps
 * reading; then, once nothing is held any more, passes on the end of the stream. */
static void tls_deliver(struct px_upstream *u)
{
    bool drained = false; /* nothing more can be decrypted from what arrived */
    while (!u->closing && u->owner != NULL && u->reading) {
        if (u->rb == NULL)
            u->rb = px_rbuf_get(u->w);
        make_room(u);
        size_t room = PX_RBUF_SIZE - u->rb->len;
        long n = px_tls_read(u->tls, u->rb->data + u->rb->len, room);
        if (n == PX_TLS_CLOSED || n == PX_TLS_ERROR) {
            u->tls_closed = 1;
            u->read_err = n == PX_TLS_CLOSED ? UV_EOF : UV_EPROTO;
            break;
        }
        if (n == 0) {
            /* Nothing decrypted yet, or a head that fills the buffer (an error later). */
            drained = room > 0;
            break;
        }
        u->rb->len += (uint32_t)n;
        px_http_on_upstream_data(u->owner);
    }
    /* At the end of the stream, a record cut short can never complete: it is the end. */
    if (u->closing || u->owner == NULL || !u->reading || !u->tls_closed ||
        (!drained && px_tls_has_pending(u->tls)))
        return;
    px_upstream_read(u, false);
    u->eof = 1;
    px_http_on_upstream_eof(u->owner, u->read_err);
}

static void tls_on_read(struct px_upstream *u, ssize_t nread)
{
    if (nread > 0)
        px_tls_feed(u->tls, px_tls_read_buf(u->tls), (size_t)nread);
    if (u->owner == NULL) {
        /* Idle in the pool: a session ticket is fine; data or the end makes it useless. */
        char b;
        if (nread < 0 || px_tls_read(u->tls, &b, 1) != 0) {
            log_debug("idle upstream connection closed", "host=%s port=%u", u->pool->host,
                      (unsigned)u->pool->port);
            close_upstream(u);
        }
        return;
    }
    if (!u->tls_ready) {
        if (nread < 0)
            tls_fail(u, "the connection ended during the handshake");
        else
            tls_step(u);
        return;
    }
    if (nread < 0) {
        u->tls_closed = 1;
        u->read_err = (int)nread;
    }
    tls_deliver(u);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct px_upstream *u = s->data;
    u->w->io_seen++;
    if (nread == 0 || u->closing)
        return;
    if (u->tls != NULL) {
        tls_on_read(u, nread);
        return;
    }
    if (u->owner == NULL) {
        /* Idle in the pool: the peer closed it, or sent bytes nobody asked for. */
        log_debug("idle upstream connection closed", "host=%s port=%u error=%s", u->pool->host,
                  (unsigned)u->pool->port, nread < 0 ? uv_err_name((int)nread) : "unexpected data");
        close_upstream(u);
        return;
    }
    if (nread < 0) {
        px_upstream_read(u, false);
        u->eof = 1;
        u->read_err = (int)nread;
        px_http_on_upstream_eof(u->owner, (int)nread);
        return;
    }
    u->rb->len += (uint32_t)nread;
    px_http_on_upstream_data(u->owner);
}

void px_upstream_read(struct px_upstream *u, bool on)
{
    if (!u->connected || u->closing || u->eof || (bool)u->reading == on)
        return;
    if (on) {
        if (!u->tls_closed && uv_read_start((uv_stream_t *)&u->tcp, on_alloc, on_read) != 0)
            return;
        u->reading = 1;
        /* Plaintext held back while http.c was not reading has no socket event to wake it. */
        if (u->tls != NULL && (u->tls_closed || px_tls_has_pending(u->tls)))
            tls_deliver(u);
    } else {
        uv_read_stop((uv_stream_t *)&u->tcp);
        u->reading = 0;
    }
}

static void on_write(uv_write_t *req, int status)
{
    struct px_upstream *u = container_of(req, struct px_upstream, wreq);
    u->writing = 0;
    if (status < 0)
        u->broken = 1;
    if (u->closing || u->owner == NULL)
        return;
    px_http_on_upstream_written(u->owner, status);
}

struct tls_write {
    uv_write_t req;
    struct px_upstream *u;
    bool notify; /* completes a px_upstream_write */
    char *data;
};

static void on_tls_write(uv_write_t *req, int status)
{
    struct tls_write *tw = container_of(req, struct tls_write, req);
    struct px_upstream *u = tw->u;
    bool notify = tw->notify;
    free(tw->data);
    free(tw);
    if (status < 0)
        u->broken = 1;
    if (!notify)
        return; /* handshake bytes: a failure shows on the read side */
    u->writing = 0;
    if (u->closing || u->owner == NULL)
        return;
    px_http_on_upstream_written(u->owner, status);
}

/* Sends the ciphertext the session has for the peer. Returns 1 when queued (on_tls_write
 * follows), 0 when there was none, or a negative libuv error. */
static int tls_flush(struct px_upstream *u, bool notify)
{
    size_t len = 0;
    char *data = px_tls_take_output(u->tls, &len);
    if (data == NULL)
        return 0;
    struct tls_write *tw = xmalloc(sizeof(*tw));
    *tw = (struct tls_write){ .u = u, .notify = notify, .data = data };
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    int r = uv_write(&tw->req, (uv_stream_t *)&u->tcp, &b, 1, on_tls_write);
    if (r < 0) {
        free(data);
        free(tw);
        return r;
    }
    return 1;
}

int px_upstream_write(struct px_upstream *u, uv_buf_t *bufs, unsigned n)
{
    if (u->tls != NULL) {
        for (unsigned i = 0; i < n; i++)
            if (px_tls_write(u->tls, bufs[i].base, bufs[i].len) != 0)
                return UV_EPROTO;
        int r = tls_flush(u, true);
        if (r == 1)
            u->writing = 1;
        return r;
    }
    int r = px_stream_write((uv_stream_t *)&u->tcp, &u->wreq, bufs, n, on_write);
    if (r == 1)
        u->writing = 1;
    return r;
}
