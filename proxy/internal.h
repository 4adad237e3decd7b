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
#include "worker.h"

struct px_worker;
struct px_conn;
struct px_cstate;
struct px_pol;
struct px_shadow;

/* ---- limits and timeouts ----------------------------------------------------------------- */

/* A read buffer holds a whole request or response head, so its size is the head cap. */
#define PX_RBUF_SIZE PX_H1_HEAD_MAX
/* Read buffers (64 KiB each, mapped; see worker.c) kept per worker for reuse; more are
 * unmapped. Connections give theirs back between requests, so this must cover the connections
 * busy at once: at 32 kept, 256 keep-alive clients turned every request into an mmap/munmap
 * pair and cost 3x the CPU per request. An idle buffer has only its touched pages resident. */
#define PX_RBUF_FREE_MAX 512
/* Free room below which a read buffer is compacted before the next read. */
#define PX_RBUF_MIN_ROOM (16 * 1024)
/* Arena first chunks (4 KiB) kept per worker for reuse. */
#define PX_ARENA_FREE_MAX 256
/* Client timeouts and the connection cap: the defaults of struct px_limits, each with a flag
 * of the proxy (docs/security.md lists them all).
 *
 * --header-timeout-ms: the whole request head must arrive within this, counted from the
 * accept for a new connection and from the first byte of the head on a kept-alive one; then
 * 408 and close (a close without an answer when no byte came). It is a deadline, not an idle
 * timer, so a client dribbling a byte at a time (slowloris) gains nothing. */
#define PX_HEADER_TIMEOUT_MS 10000
/* --body-timeout-ms: while the proxy waits for request body bytes (not while the upstream is
 * slow to take them), no byte for this long: 408 (or a close once the response has begun). */
#define PX_BODY_TIMEOUT_MS 30000
/* --idle-timeout-ms: a kept-alive client connection with no request in progress. */
#define PX_IDLE_TIMEOUT_MS 60000
#define PX_CLIENT_IDLE_MS  PX_IDLE_TIMEOUT_MS /* the older name */
/* --max-connections: client connections per worker. At the cap the worker stops polling its
 * listening socket, so new connections wait in the kernel's backlog (LISTEN_BACKLOG, then the
 * client's SYN retries) instead of costing the worker memory; it resumes below the cap. */
#define PX_MAX_CONNECTIONS 10000
/* Non-blocking polls after the last I/O before a worker sleeps (worker.c, busy polling). */
#define PX_BUSY_POLL 0
/* Connections accepted per readiness of the listening socket, so one busy worker loop still
 * serves the connections it has between accept bursts. */
#define PX_ACCEPT_BATCH 64
/* When accept fails for want of file descriptors, the worker stops accepting this long. */
#define PX_ACCEPT_RETRY_MS 100
/* At most one warning this often about the connection cap, per worker. */
#define PX_LIMIT_LOG_MS 10000
/* After the proxy decides to close a client connection it stops sending (FIN) and reads and
 * drops what the client still sends for at most this long, so an answer such as a 400 is not
 * destroyed by a reset caused by unread bytes. */
#define PX_LINGER_MS 2000
/* Pooled idle upstream connections are closed after this. */
#define PX_UPSTREAM_IDLE_MS 60000
/* Idle upstream connections kept per cluster per worker. */
#define PX_POOL_IDLE_MAX 1024
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

/* Chooses one of a name's n addresses (returns its index). */
typedef unsigned (*px_dns_pick_cb)(struct px_dns_query *q, const struct sockaddr_storage *addrs,
                                   unsigned n);
/* Addresses kept per name: what one Service or a small pool behind a name holds. */
#define PX_DNS_MAX_ADDRS 8

struct px_dns_query {
    struct px_link link; /* in the entry's waiters */
    struct px_dns_entry *entry;
    px_dns_cb cb;
    px_dns_pick_cb pick; /* NULL: the first address */
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
    struct px_tls *tls; /* https clusters (tls.h): the session over this socket; else NULL */
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
    unsigned idle : 1;       /* in pool->idle */
    unsigned broken : 1;     /* a write failed: never reused */
    struct px_cstate *cs;    /* its cluster's circuit-breaker gauges (policy.h); a reference */
    uint64_t created_ms;     /* cluster_max_connection_lifetime_ms counts from here */
    int lb_slot;             /* address index counted in its pool while attached, or -1 (lb.c) */
    int lb_want;             /* the address index chosen at acquire, or -1 */
    unsigned tls_ready : 1;  /* handshake complete */
    unsigned tls_closed : 1; /* the socket ended (read_err); plaintext may still be held */
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

/* What the connection's main timer is for: between requests (IDLE), a request head being
 * received (HEADER), the route's timeout (REQUEST), closing (LINGER). */
enum px_timer_mode {
    PX_TIMER_NONE = 0,
    PX_TIMER_IDLE,
    PX_TIMER_HEADER,
    PX_TIMER_REQUEST,
    PX_TIMER_LINGER
};

struct px_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_timer_t body_timer; /* --body-timeout-ms, beside the request timer (both run at once) */
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
    uint64_t timer_deadline;  /* loop time the current mode's time runs out (http.c arm) */
    uint64_t timer_due;       /* loop time the timer fires at, while it is active */
    struct px_snapshot *snap; /* reference held while the request lives */
    const struct route *route;
    const struct route_cluster *cluster;
    /* Header lines of the proxy's own answers to this request ("Server: ...\r\n" from the
     * ambassador Module's server_name), NUL-terminated; NULL: none. In the arena. */
    const char *local_headers;
    const struct px_h1_edits *resp_edits; /* the route's response header edits, or NULL */
    struct px_upstream *up;
    uv_buf_t *head_iov; /* upstream request head */
    unsigned head_niov;
    int status;           /* sent to the client, for the access log */
    const char *log_path; /* NUL-terminated copy, only at debug level */
    uint64_t started_ms;
    uint64_t body_read_ms;             /* when request body bytes last arrived */
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
    unsigned upgrade_ok : 1;   /* the route tunnels this request's Upgrade (tunnel.c) */
    unsigned client_close : 1; /* the request asked to close (Connection: close, HTTP/1.0) */
    unsigned tunnel : 1;       /* after a 101: raw bytes both ways */
    struct px_pol *pol;        /* traffic policy of this connection's requests (http_policy.h) */
    struct px_shadow *shadow;  /* the copy of this request being collected (shadow.h), or NULL */

    /* The connection. */
    unsigned reading : 1;
    unsigned client_eof : 1;
    unsigned lingering : 1;
    unsigned closing : 1;
    unsigned pumping : 1;
    unsigned repump : 1;
    unsigned nclosed : 2; /* handles closed of tcp, timer, body_timer */
};

/* ---- workers (worker.c) ------------------------------------------------------------------ */

struct px_snapshot;

struct px_worker {
    int id;
    uv_loop_t loop;
    /* The listening socket is polled rather than given to uv_listen: libuv offers no way to
     * stop accepting for a while, and that is the backpressure --max-connections needs. */
    uv_poll_t listener;
    int listen_fd;
    uv_timer_t accept_retry;
    bool accept_paused;     /* at the connection cap, or out of file descriptors */
    unsigned nconns;        /* client connections not yet freed */
    uint64_t cap_logged_ms; /* last warning about max_connections (loop time) */
    struct px_limits limits;
    uv_async_t wake;
    uv_timer_t sweep;
    uv_timer_t grace;
    /* Busy polling (worker.c): after I/O, poll without blocking for a while before sleeping. */
    uv_prepare_t spin_check;
    uv_idle_t spin;
    uint64_t io_seen;      /* read callbacks so far (http.c, upstream.c) */
    uint64_t io_seen_prev; /* ... at the previous poll */
    unsigned spin_left;    /* non-blocking polls left before sleeping */
    unsigned spin_polls;   /* --busy-poll: polls per spell; 0 off */
    uv_thread_t thread;
    atomic_bool stop_requested;
    bool stopping;
    bool started;
    struct px_snapshot *snap; /* current table on this worker; a reference */
    struct px_rbuf *free_rbufs;
    unsigned nfree_rbufs;
    struct px_arena_cache arena_cache; /* first chunks of idle connections' arenas */
    struct px_link conns;
    struct px_pools pools;
    struct px_dns dns;
    char scratch[64]; /* read target for idle upstream connections */
};

/* Takes a read buffer from w's free list (or allocates one), empty. */
struct px_rbuf *px_rbuf_get(struct px_worker *w);
/* Gives b back to w's free list. Safe on NULL. */
void px_rbuf_put(struct px_worker *w, struct px_rbuf *b);
/* Makes room at the end of b for the next read by dropping its first keep bytes (already
 * parsed), when that is worth a memmove: less than PX_RBUF_MIN_ROOM is free, or everything
 * was parsed. head, when not NULL, is the parser of a message head still being received in b
 * (its fields are offsets from its start) and is shifted with the bytes. */
void px_rbuf_compact(struct px_rbuf *b, uint32_t keep, struct px_h1_parser *head);
/* A client connection of w was freed (http.c): accepting resumes below the cap. */
void px_worker_conn_freed(struct px_worker *w);

/* Writes bufs with uv_try_write and queues what is left with uv_write (bufs is modified).
 * Returns 0 when everything was written, 1 when the rest is queued (cb follows), or a
 * negative libuv error. */
int px_stream_write(uv_stream_t *s, uv_write_t *req, uv_buf_t *bufs, unsigned n, uv_write_cb cb);
/* A lazy timer (the connection's and the policy's): starts t to fire at loop time deadline,
 * unless it is active and due no later already (*due records when it fires). A request moves
 * its deadlines several times, each uv_timer_start a heap update; this moves the timer only
 * when it would fire too late. cb must expect early fires and call this again for the rest. */
void px_timer_lazy(uv_timer_t *t, uint64_t *due, uint64_t deadline, uv_timer_cb cb);

#endif
