/* Private declarations of the proxy's data plane (worker.c, http.c, upstream.c, dns.c): the
 * structures a worker thread owns and the calls between those files. Never included from
 * outside proxy/ (libuv's src/unix/internal.h rule).
 *
 * Threads: everything here belongs to one worker thread and its uv loop, except
 * px_worker.stop_requested, which the main thread sets before waking the worker. */
#ifndef LEGATE_PROXY_INTERNAL_H
#define LEGATE_PROXY_INTERNAL_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "arena.h"
#include "http1.h"
#include "route-t.h"

struct px_worker;
struct px_conn;

/* ---- limits and timeouts ----------------------------------------------------------------- */

/* A read buffer holds a whole request or response head, so its size is the head cap. */
#define PX_RBUF_SIZE PX_H1_HEAD_MAX
/* Read buffers kept per worker for reuse; more are freed. */
#define PX_RBUF_FREE_MAX 256
/* A client connection waiting for (the rest of) a request head is closed after this. */
#define PX_CLIENT_IDLE_MS 60000
/* After the proxy decides to close a client connection it stops sending (FIN) and reads and
 * drops what the client still sends for at most this long, so an answer such as a 400 is not
 * destroyed by a reset caused by unread bytes. */
#define PX_LINGER_MS 2000
/* Pooled idle upstream connections are closed after this. */
#define PX_UPSTREAM_IDLE_MS 60000
/* Idle upstream connections kept per cluster per worker. */
#define PX_POOL_IDLE_MAX 128
/* How often a worker looks for expired idle connections and DNS entries. */
#define PX_SWEEP_MS 5000
/* Resolved names are reused this long. */
#define PX_DNS_TTL_MS 5000
/* On SIGTERM, requests in flight get this long to finish. */
#define PX_GRACE_MS 2000

/* ---- intrusive doubly-linked list (libuv's queue) ----------------------------------------- */

struct px_link {
    struct px_link *prev;
    struct px_link *next;
};

static inline void px_list_init(struct px_link *h)
{
    h->prev = h->next = h;
}
static inline bool px_list_empty(const struct px_link *h)
{
    return h->next == h;
}
/* Inserts n right after h (at the head). */
static inline void px_list_push(struct px_link *h, struct px_link *n)
{
    n->next = h->next;
    n->prev = h;
    h->next->prev = n;
    h->next = n;
}
static inline void px_list_remove(struct px_link *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/* ---- read buffers ------------------------------------------------------------------------ */

/* data[off, len) is received and not yet parsed; data[0, off) is parsed but may still be
 * referenced (a head being forwarded, a write in flight). */
struct px_rbuf {
    struct px_rbuf *next; /* free list */
    uint32_t len;
    uint32_t off;
    char data[PX_RBUF_SIZE];
};

/* ---- DNS (dns.c) ------------------------------------------------------------------------- */

struct px_dns_entry;
struct px_dns_query;
/* status is 0 with q->addr set (port 0), or a negative libuv error. */
typedef void (*px_dns_cb)(struct px_dns_query *q, int status);

struct px_dns_query {
    struct px_link link; /* in the entry's waiters */
    struct px_dns_entry *entry;
    px_dns_cb cb;
    struct sockaddr_storage addr;
};

struct px_dns {
    struct px_dns_entry **buckets;
    size_t nbuckets;
    size_t n;
};

/* ---- upstream connections and pools (upstream.c) ----------------------------------------- */

struct px_pool;

struct px_upstream {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t wreq;
    struct px_worker *w;
    struct px_pool *pool;
    struct px_link link;   /* in pool->idle while idle */
    struct px_conn *owner; /* the client connection it serves; NULL when idle or dying */
    struct px_rbuf *rb;
    struct px_h1_parser resp;
    struct px_dns_query dq;
    uint64_t idle_since;
    int read_err; /* UV_EOF or the error that ended reading */
    unsigned resolving : 1;
    unsigned connecting : 1;
    unsigned connected : 1;
    unsigned reused : 1; /* taken from the pool: may have been closed by the peer meanwhile */
    unsigned writing : 1;
    unsigned reading : 1;
    unsigned eof : 1;
    unsigned closing : 1;
    unsigned idle : 1;   /* in pool->idle */
    unsigned broken : 1; /* a write failed: never reused */
};

struct px_pools {
    struct px_pool **buckets;
    size_t nbuckets;
    size_t n;
};

/* ---- client connections (http.c) --------------------------------------------------------- */

enum px_req_state {
    PX_REQ_IDLE = 0,   /* reading a request head */
    PX_REQ_CONNECTING, /* routed; waiting for an upstream connection */
    PX_REQ_FORWARD,    /* upstream attached: request and response flowing */
    PX_REQ_LOCAL,      /* answered by the proxy; the request body is read and dropped */
};

enum px_timer_mode { PX_TIMER_NONE = 0, PX_TIMER_IDLE, PX_TIMER_REQUEST, PX_TIMER_LINGER };

struct px_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    uv_shutdown_t shutdown_req;
    struct px_worker *w;
    struct px_link link; /* in w->conns */
    struct px_rbuf *rb;
    /* An upstream's read buffer that a write to the client still points into, taken over when
     * that upstream connection went away first. */
    struct px_rbuf *held_rb;
    struct px_h1_parser req;
    struct px_arena arena; /* per request: reset when a request ends */
    char client_ip[INET6_ADDRSTRLEN];
    /* Writes to the client in flight: wreq serves the first, the arena holds the request of
     * the rare second (an error answer queued behind an interim 100 Continue). */
    unsigned dwrites;

    /* The current request. */
    enum px_req_state state;
    enum px_timer_mode timer_mode;
    struct px_snapshot *snap; /* reference held while the request lives */
    const struct route *route;
    const struct route_cluster *cluster;
    struct px_upstream *up;
    uv_buf_t *head_iov; /* upstream request head */
    unsigned head_niov;
    int status;           /* sent to the client, for the access log */
    const char *log_path; /* NUL-terminated copy, only at debug level */
    uint64_t started_ms;
    char up_chunk[PX_H1_CHUNK_LINE];   /* chunk-size line of the write in flight upstream */
    char down_chunk[PX_H1_CHUNK_LINE]; /* same, towards the client */
    unsigned keep_alive : 1;           /* the connection stays open after this response */
    unsigned is_head : 1;
    unsigned client_http10 : 1;
    unsigned parser_resumed : 1; /* px_h1_resume called after the head */
    unsigned kick : 1;           /* run the parser once even without new bytes */
    unsigned req_done : 1;       /* the whole request was read */
    unsigned head_sent_up : 1;   /* on the current upstream connection */
    unsigned body_sent_up : 1;   /* some body byte left for the upstream: no retry */
    unsigned resp_begun : 1;     /* a response byte arrived: no retry */
    unsigned resp_head_sent : 1;
    unsigned resp_chunked : 1;
    unsigned resp_done : 1;
    unsigned retried : 1;
    unsigned timed_out : 1;

    /* The connection. */
    unsigned reading : 1;
    unsigned client_eof : 1;
    unsigned lingering : 1;
    unsigned closing : 1;
    unsigned pumping : 1;
    unsigned repump : 1;
    unsigned nclosed : 2;
};

/* ---- workers (worker.c) ------------------------------------------------------------------ */

struct px_snapshot;

struct px_worker {
    int id;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t wake;
    uv_timer_t sweep;
    uv_timer_t grace;
    uv_thread_t thread;
    atomic_bool stop_requested;
    bool stopping;
    bool started;
    struct px_snapshot *snap; /* current table on this worker; a reference */
    struct px_rbuf *free_rbufs;
    unsigned nfree_rbufs;
    struct px_link conns;
    struct px_pools pools;
    struct px_dns dns;
    char scratch[64]; /* read target for idle upstream connections */
};

/* Takes a read buffer from w's free list (or allocates one), empty. */
struct px_rbuf *px_rbuf_get(struct px_worker *w);
/* Gives b back to w's free list. Safe on NULL. */
void px_rbuf_put(struct px_worker *w, struct px_rbuf *b);

/* Writes bufs with uv_try_write and queues what is left with uv_write (bufs is modified).
 * Returns 0 when everything was written, 1 when the rest is queued (cb follows), or a
 * negative libuv error. */
int px_stream_write(uv_stream_t *s, uv_write_t *req, uv_buf_t *bufs, unsigned n, uv_write_cb cb);

#endif
