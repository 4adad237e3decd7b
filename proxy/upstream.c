/* Upstream connections and per-worker keep-alive pools (upstream.h).
 *
 * A connection is attached to one client connection (owner) from acquire to release. Idle
 * pooled connections keep reading into the worker's scratch buffer: any byte or the close
 * from the peer makes them useless, and they are closed at once rather than handed to the
 * next request. The response parser lives here but is driven by http.c, which owns the
 * relaying; this file moves bytes and manages buffers. */
#include "upstream.h"

#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "http.h"
#include "log.h"
#include "xalloc.h"

struct px_pool {
    struct px_pool *hnext;
    char *host;
    uint16_t port;
    uint32_t hash;
    struct px_link idle; /* most recently used first */
    unsigned nidle;
    unsigned nactive; /* attached or connecting, not yet closing */
    uint64_t last_used;
};

/* Room worth reading into before the buffer is compacted. */
#define READ_MIN_ROOM (16 * 1024)

static uint32_t pool_hash(const char *host, uint16_t port)
{
    uint32_t h = 2166136261u;
    for (const char *s = host; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return (h ^ port) * 16777619u;
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

static struct px_pool *pool_get(struct px_pools *p, const char *host, uint16_t port)
{
    uint32_t h = pool_hash(host, port);
    for (struct px_pool *pool = p->buckets[h & (p->nbuckets - 1)]; pool; pool = pool->hnext) {
        if (pool->hash == h && pool->port == port && strcmp(pool->host, host) == 0)
            return pool;
    }
    if (p->n >= p->nbuckets)
        pools_grow(p);
    struct px_pool *pool = xcalloc(1, sizeof(*pool));
    pool->host = xstrdup(host);
    pool->port = port;
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
    free(u);
}

/* Closes u; it is freed in the close callback. Not for an attached connection: detach (set
 * owner to NULL) first. */
static void close_upstream(struct px_upstream *u)
{
    if (u->closing)
        return;
    u->closing = 1;
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

void px_upstream_release(struct px_upstream *u, bool reusable)
{
    struct px_worker *w = u->w;
    struct px_pool *pool = u->pool;
    u->owner = NULL;
    /* Bytes after the response, a write still going out, or a peer that said close: none of
     * these can carry the next request. */
    if (!reusable || u->closing || !u->connected || u->writing || u->eof || u->broken ||
        w->stopping || (u->rb != NULL && u->rb->off != u->rb->len) ||
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
                free(pool);
                p->n--;
            } else {
                pp = &pool->hnext;
            }
        }
    }
}

/* ---- connecting -------------------------------------------------------------------------- */

static void on_connect(uv_connect_t *req, int status)
{
    struct px_upstream *u = container_of(req, struct px_upstream, connect_req);
    u->connecting = 0;
    if (u->closing || u->owner == NULL)
        return;
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

int px_upstream_acquire(struct px_worker *w, const char *host, uint16_t port, bool fresh,
                        struct px_conn *c, struct px_upstream **out)
{
    struct px_pool *pool = pool_get(&w->pools, host, port);
    pool->last_used = uv_now(&w->loop);
    struct px_upstream *u;
    if (!fresh && !px_list_empty(&pool->idle)) {
        u = container_of(pool->idle.next, struct px_upstream, link);
        px_list_remove(&u->link);
        u->idle = 0;
        pool->nidle--;
        pool->nactive++;
        u->owner = c;
        *out = u;
        return 0;
    }
    u = xcalloc(1, sizeof(*u));
    u->w = w;
    u->pool = pool;
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
    if (keep == 0 || (PX_RBUF_SIZE - rb->len >= READ_MIN_ROOM && keep < rb->len))
        return;
    memmove(rb->data, rb->data + keep, rb->len - keep);
    rb->len -= keep;
    rb->off -= keep;
    if (in_head)
        px_h1_shift(&u->resp, keep);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct px_upstream *u = h->data;
    if (u->owner == NULL) {
        *buf = uv_buf_init(u->w->scratch, sizeof(u->w->scratch));
        return;
    }
    if (u->rb == NULL)
        u->rb = px_rbuf_get(u->w);
    make_room(u);
    *buf = uv_buf_init(u->rb->data + u->rb->len, PX_RBUF_SIZE - u->rb->len);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct px_upstream *u = s->data;
    if (nread == 0 || u->closing)
        return;
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
        if (uv_read_start((uv_stream_t *)&u->tcp, on_alloc, on_read) == 0)
            u->reading = 1;
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

int px_upstream_write(struct px_upstream *u, uv_buf_t *bufs, unsigned n)
{
    int r = px_stream_write((uv_stream_t *)&u->tcp, &u->wreq, bufs, n, on_write);
    if (r == 1)
        u->writing = 1;
    return r;
}
