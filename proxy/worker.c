/* Worker threads (worker.h).
 *
 * Each worker's loop, listener, timers and wake-up handle are set up on the main thread
 * before the thread starts (thread creation orders those writes before anything the thread
 * does), and touched by the worker thread only afterwards. The main thread talks to a running
 * worker through two things only: uv_async_send on `wake`, and the `stop_requested` flag read
 * when woken.
 *
 * libuv 1.44 has no flag for SO_REUSEPORT, so the listening sockets are made with socket(2),
 * given SO_REUSEADDR and SO_REUSEPORT and bound here.
 *
 * Accepting. libuv's uv_listen accepts whenever the socket is readable and offers no way to
 * stop for a while, so each worker polls its listening socket (uv_poll) and calls accept4
 * itself, at most PX_ACCEPT_BATCH times per wake-up; the connection is then handed to libuv
 * with uv_tcp_open. At --max-connections the poll stops: new connections queue in the kernel's
 * backlog, then the kernel drops SYNs and clients retry, and nothing grows in the worker. The
 * poll starts again when a connection is freed. Out of file descriptors (EMFILE), the worker
 * pauses PX_ACCEPT_RETRY_MS the same way. With SO_REUSEPORT the kernel picks a worker per
 * connection by hash; a connection queued at a paused worker waits for that worker. */
#include "worker.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns.h"
#include "http.h"
#include "internal.h"
#include "log.h"
#include "opts.h"
#include "snapshot.h"
#include "upstream.h"
#include "xalloc.h"

#define LISTEN_BACKLOG 511

struct px_workers {
    int n;
    struct px_worker *w;
};

/* ---- per-worker resources ---------------------------------------------------------------- */

/* Read buffers are mappings of their own, not heap blocks: after a burst of busy connections
 * the buffers beyond the free list go back to the kernel with munmap, where freed 64 KiB heap
 * blocks wedged between live connection structures would stay resident. Only buffers beyond
 * the worker's free list pay the system calls. */
static struct px_rbuf *rbuf_map(void)
{
    void *p = mmap(NULL, sizeof(struct px_rbuf), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        log_error("out of memory for a read buffer", "bytes=%zu", sizeof(struct px_rbuf));
        abort();
    }
    return p;
}

static void rbuf_unmap(struct px_rbuf *b)
{
    munmap(b, sizeof(*b));
}

struct px_rbuf *px_rbuf_get(struct px_worker *w)
{
    struct px_rbuf *b = w->free_rbufs;
    if (b != NULL) {
        w->free_rbufs = b->next;
        w->nfree_rbufs--;
    } else {
        b = rbuf_map();
    }
    b->next = NULL;
    b->len = b->off = 0;
    return b;
}

void px_rbuf_put(struct px_worker *w, struct px_rbuf *b)
{
    if (b == NULL)
        return;
    if (w->nfree_rbufs >= PX_RBUF_FREE_MAX) {
        rbuf_unmap(b);
        return;
    }
    b->next = w->free_rbufs;
    w->free_rbufs = b;
    w->nfree_rbufs++;
}

void px_rbuf_compact(struct px_rbuf *b, uint32_t keep, struct px_h1_parser *head)
{
    if (keep == 0 || (PX_RBUF_SIZE - b->len >= PX_RBUF_MIN_ROOM && keep < b->len))
        return;
    memmove(b->data, b->data + keep, b->len - keep);
    b->len -= keep;
    b->off -= keep;
    if (head != NULL)
        px_h1_shift(head, keep);
}

int px_stream_write(uv_stream_t *s, uv_write_t *req, uv_buf_t *bufs, unsigned n, uv_write_cb cb)
{
    int w = uv_try_write(s, bufs, n);
    if (w == UV_EAGAIN)
        w = 0;
    else if (w < 0)
        return w;
    size_t left = (size_t)w;
    unsigned i = 0;
    while (i < n && left >= bufs[i].len) {
        left -= bufs[i].len;
        i++;
    }
    if (i == n)
        return 0;
    bufs[i].base += left;
    bufs[i].len -= left;
    int r = uv_write(req, s, bufs + i, n - i, cb);
    return r < 0 ? r : 1;
}

void px_timer_lazy(uv_timer_t *t, uint64_t *due, uint64_t deadline, uv_timer_cb cb)
{
    if (uv_is_active((uv_handle_t *)t) && *due <= deadline)
        return;
    uint64_t now = uv_now(t->loop);
    *due = deadline > now ? deadline : now;
    uv_timer_start(t, cb, deadline > now ? deadline - now : 0, 0);
}

void px_limits_init(struct px_limits *l)
{
    l->header_timeout_ms = PX_HEADER_TIMEOUT_MS;
    l->body_timeout_ms = PX_BODY_TIMEOUT_MS;
    l->idle_timeout_ms = PX_IDLE_TIMEOUT_MS;
    l->max_connections = PX_MAX_CONNECTIONS;
    l->busy_poll = PX_BUSY_POLL;
}

/* ---- accepting --------------------------------------------------------------------------- */

static void on_listener_readable(uv_poll_t *h, int status, int events);

static void accept_pause(struct px_worker *w)
{
    if (w->accept_paused)
        return;
    uv_poll_stop(&w->listener);
    w->accept_paused = true;
}

static void accept_resume(struct px_worker *w)
{
    if (!w->accept_paused || w->stopping || w->nconns >= w->limits.max_connections ||
        uv_is_active((uv_handle_t *)&w->accept_retry))
        return;
    if (uv_poll_start(&w->listener, UV_READABLE, on_listener_readable) == 0) {
        w->accept_paused = false;
        log_debug("accepting again", "worker=%d connections=%u", w->id, w->nconns);
    }
}

static void on_accept_retry(uv_timer_t *t)
{
    accept_resume(t->data);
}

void px_worker_conn_freed(struct px_worker *w)
{
    w->nconns--;
    if (w->accept_paused)
        accept_resume(w);
}

static void on_listener_readable(uv_poll_t *h, int status, int events)
{
    struct px_worker *w = h->data;
    (void)events;
    if (status < 0) {
        log_warn("accept failed", "worker=%d error=%s", w->id, uv_strerror(status));
        return;
    }
    for (int i = 0; i < PX_ACCEPT_BATCH && !w->stopping; i++) {
        if (w->nconns >= w->limits.max_connections) {
            /* At the cap, a worker pauses and resumes with every connection that ends: one
             * warning per PX_LIMIT_LOG_MS, the rest at debug. */
            uint64_t now = uv_now(&w->loop);
            int level = LOG_LEVEL_DEBUG;
            if (w->cap_logged_ms == 0 || now - w->cap_logged_ms >= PX_LIMIT_LOG_MS) {
                w->cap_logged_ms = now;
                level = LOG_LEVEL_WARN;
            }
            LOG_AT(level, "connection limit reached, not accepting", "worker=%d max_connections=%u",
                   w->id, (unsigned)w->limits.max_connections);
            accept_pause(w);
            return;
        }
        /* The peer's address comes with the accept (no getpeername), and TCP_NODELAY with
         * the listening socket (no setsockopt): two system calls fewer per connection. */
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        int fd = accept4(w->listen_fd, (struct sockaddr *)&peer, &peer_len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            px_http_accept(w, fd, peer_len > 0 ? (struct sockaddr *)&peer : NULL);
            continue;
        }
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK)
            return;
        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
            log_warn("accept failed, pausing", "worker=%d error=%s retry_ms=%d", w->id, strerror(e),
                     PX_ACCEPT_RETRY_MS);
            accept_pause(w);
            uv_timer_start(&w->accept_retry, on_accept_retry, PX_ACCEPT_RETRY_MS, 0);
            return;
        }
        /* The peer went away before the accept (ECONNABORTED), or a pending network error
         * of that one connection: the next one may be fine. */
        log_debug("accept failed", "worker=%d error=%s", w->id, strerror(e));
    }
}

/* ---- the worker's loop ------------------------------------------------------------------- */

static void on_sweep(uv_timer_t *t)
{
    struct px_worker *w = t->data;
    uint64_t now = uv_now(&w->loop);
    px_pools_sweep(w, now);
    px_dns_sweep(w, now);
}

static void on_grace(uv_timer_t *t)
{
    struct px_worker *w = t->data;
    struct px_link *l = w->conns.next;
    while (l != &w->conns) {
        struct px_link *next = l->next;
        px_http_close(container_of(l, struct px_conn, link));
        l = next;
    }
}

/* Stops accepting and lets what is in flight finish; the loop ends when the last connection
 * is closed (the grace timer does not keep it alive). */
static void begin_stop(struct px_worker *w)
{
    if (w->stopping)
        return;
    w->stopping = true;
    if (w->listen_fd >= 0) {
        /* uv_close stops the poll at once; the socket is ours to close. */
        uv_close((uv_handle_t *)&w->listener, NULL);
        close(w->listen_fd);
        w->listen_fd = -1;
    }
    uv_close((uv_handle_t *)&w->accept_retry, NULL);
    uv_close((uv_handle_t *)&w->wake, NULL);
    uv_close((uv_handle_t *)&w->sweep, NULL);
    uv_close((uv_handle_t *)&w->spin, NULL);
    uv_close((uv_handle_t *)&w->spin_check, NULL);
    px_pools_close_idle(w);
    struct px_link *l = w->conns.next;
    while (l != &w->conns) {
        struct px_link *next = l->next;
        px_http_drain(container_of(l, struct px_conn, link));
        l = next;
    }
    uv_timer_start(&w->grace, on_grace, PX_GRACE_MS, 0);
    uv_unref((uv_handle_t *)&w->grace);
}

static void on_wake(uv_async_t *a)
{
    struct px_worker *w = a->data;
    if (atomic_load(&w->stop_requested)) {
        begin_stop(w);
        return;
    }
    /* A new table: requests in flight keep theirs (they hold a reference). */
    struct px_snapshot *s = px_snapshot_current();
    px_snapshot_release(w->snap);
    w->snap = s;
}

/* Runs the loop to its end and frees what the worker owns. */
static void run_to_end(struct px_worker *w)
{
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&w->grace, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    px_snapshot_release(w->snap);
    w->snap = NULL;
    px_pools_free(&w->pools);
    px_dns_free(&w->dns);
    while (w->free_rbufs != NULL) {
        struct px_rbuf *b = w->free_rbufs;
        w->free_rbufs = b->next;
        rbuf_unmap(b);
    }
    px_arena_cache_free(&w->arena_cache);
    int r = uv_loop_close(&w->loop);
    if (r != 0)
        log_warn("worker loop not closed cleanly", "worker=%d error=%s", w->id, uv_strerror(r));
}

static void worker_main(void *arg)
{
    struct px_worker *w = arg;
    struct px_snapshot *s = px_snapshot_current();
    px_snapshot_release(w->snap);
    w->snap = s;
    run_to_end(w);
}

/* ---- busy polling ------------------------------------------------------------------------ */

/* --busy-poll N: a worker that has just served I/O polls without blocking (an active idle
 * handle makes libuv's epoll_wait timeout 0) for N more loop turns before it sleeps. A
 * sleeping worker costs a wakeup per burst of requests: its peers (client, upstream) a
 * cross-CPU wakeup when they write to it, itself a context switch. With the proxy pinned to
 * a CPU of its own, 50 turns gave 19 % more requests per second on the benchmark machine
 * (bench/results/busy-poll-*.md); sharing CPUs with its peers, the turns it spins are taken
 * from them, and it lost 9 %. Hence off by default, like HAProxy's busy-polling. */
static void on_spin(uv_idle_t *h)
{
    (void)h;
}

static void on_spin_check(uv_prepare_t *h)
{
    struct px_worker *w = h->data;
    if (w->io_seen != w->io_seen_prev) {
        w->io_seen_prev = w->io_seen;
        w->spin_left = w->spin_polls;
        if (!uv_is_active((uv_handle_t *)&w->spin))
            uv_idle_start(&w->spin, on_spin);
        return;
    }
    if (w->spin_left > 0)
        w->spin_left--;
    else if (uv_is_active((uv_handle_t *)&w->spin))
        uv_idle_stop(&w->spin);
}

/* ---- creation ---------------------------------------------------------------------------- */

/* Makes a listening socket for ai (not yet listening). Returns the fd or -errno. */
static int make_socket(const struct addrinfo *ai, bool reuseport)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    /* Accepted sockets inherit TCP_NODELAY from the listening socket (Linux copies the
     * listener's TCP state into each new connection). */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/* Sets up worker w, whose loop is initialised, around the bound socket fd (which it takes). */
static int worker_init(struct px_worker *w, int id, int fd, const struct px_limits *limits)
{
    w->id = id;
    w->listen_fd = -1;
    w->limits = *limits;
    px_list_init(&w->conns);
    px_pools_init(&w->pools);
    px_dns_init(&w->dns);
    atomic_init(&w->stop_requested, false);
    uv_timer_init(&w->loop, &w->accept_retry);
    w->accept_retry.data = w;
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->wake.data = w;
    uv_timer_init(&w->loop, &w->sweep);
    w->sweep.data = w;
    uv_timer_init(&w->loop, &w->grace);
    w->grace.data = w;
    uv_idle_init(&w->loop, &w->spin);
    uv_prepare_init(&w->loop, &w->spin_check);
    w->spin_check.data = w;
    w->spin_polls = limits->busy_poll;
    if (w->spin_polls > 0) {
        uv_prepare_start(&w->spin_check, on_spin_check);
        uv_unref((uv_handle_t *)&w->spin_check);
    }
    if (listen(fd, LISTEN_BACKLOG) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    int r = uv_poll_init_socket(&w->loop, &w->listener, fd);
    if (r < 0) {
        close(fd);
        return r;
    }
    w->listen_fd = fd;
    w->listener.data = w;
    r = uv_poll_start(&w->listener, UV_READABLE, on_listener_readable);
    if (r < 0)
        return r;
    uv_timer_start(&w->sweep, on_sweep, PX_SWEEP_MS, PX_SWEEP_MS);
    return 0;
}

static void stop_unstarted(struct px_worker *w)
{
    begin_stop(w);
    run_to_end(w);
}

int px_workers_create(int n, const char *hostport, const struct px_limits *limits,
                      struct px_workers **out, char *err, size_t errlen)
{
    char host[256], portstr[8];
    uint16_t port;
    struct addrinfo hints, *res = NULL;
    if (parse_hostport(hostport, host, sizeof(host), &port) != 0) {
        snprintf(err, errlen, "expected HOST:PORT, got \"%s\"", hostport);
        return -EINVAL;
    }
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve listen address %s: %s", host, gai_strerror(gai));
        return -EINVAL;
    }

    /* SO_REUSEPORT would let us share the port with another process that set it too (another
     * legate-proxy of the same user): a plain bind first proves the port is free. */
    int fd = make_socket(res, false);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", hostport, strerror(-fd));
        freeaddrinfo(res);
        return fd;
    }
    close(fd);

    struct px_workers *ws = xcalloc(1, sizeof(*ws));
    ws->w = xcalloc((size_t)n, sizeof(*ws->w));
    for (int i = 0; i < n; i++)
        ws->w[i].arena_cache.max = PX_ARENA_FREE_MAX;
    int r = 0;
    for (int i = 0; i < n; i++) {
        fd = make_socket(res, true);
        if (fd < 0) {
            r = fd;
            snprintf(err, errlen, "cannot listen on %s: %s", hostport, strerror(-fd));
            break;
        }
        r = uv_loop_init(&ws->w[i].loop);
        if (r < 0) {
            close(fd);
            snprintf(err, errlen, "cannot create an event loop: %s", uv_strerror(r));
            break;
        }
        ws->n = i + 1;
        r = worker_init(&ws->w[i], i, fd, limits);
        if (r < 0) {
            snprintf(err, errlen, "cannot listen on %s: %s", hostport, uv_strerror(r));
            break;
        }
    }
    freeaddrinfo(res);
    if (r < 0) {
        px_workers_stop(ws);
        return r;
    }
    *out = ws;
    return 0;
}

int px_workers_start(struct px_workers *ws)
{
    for (int i = 0; i < ws->n; i++) {
        struct px_worker *w = &ws->w[i];
        int r = uv_thread_create(&w->thread, worker_main, w);
        if (r < 0)
            return r;
        w->started = true;
    }
    return 0;
}

void px_workers_on_publish(void *arg)
{
    struct px_workers *ws = arg;
    for (int i = 0; i < ws->n; i++)
        uv_async_send(&ws->w[i].wake);
}

void px_workers_stop(struct px_workers *ws)
{
    if (ws == NULL)
        return;
    for (int i = 0; i < ws->n; i++) {
        struct px_worker *w = &ws->w[i];
        if (w->started) {
            atomic_store(&w->stop_requested, true);
            uv_async_send(&w->wake);
        }
    }
    for (int i = 0; i < ws->n; i++) {
        struct px_worker *w = &ws->w[i];
        if (w->started)
            uv_thread_join(&w->thread);
        else
            stop_unstarted(w);
    }
    free(ws->w);
    free(ws);
}
