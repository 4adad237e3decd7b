/* The worker pool of legate-proxy (worker.c): N threads, each with its own uv loop, its own
 * SO_REUSEPORT listening socket on --listen, its own upstream pools, DNS cache and buffers. A
 * client connection lives on the worker that accepted it. This is what main.c sees. */
#ifndef LEGATE_PROXY_WORKER_H
#define LEGATE_PROXY_WORKER_H

#include <stddef.h>
#include <stdint.h>

struct px_workers;

/* What a client may cost a worker, and how a worker waits: the proxy's flags of the same
 * names. Defaults are the PX_*_TIMEOUT_MS, PX_MAX_CONNECTIONS and PX_BUSY_POLL constants of
 * internal.h (docs/security.md). */
struct px_limits {
    uint32_t header_timeout_ms; /* a whole request head, from its first byte: else 408 */
    uint32_t body_timeout_ms;   /* between two reads of a request body: else 408 */
    uint32_t idle_timeout_ms;   /* a keep-alive connection between requests */
    uint32_t max_connections;   /* client connections per worker; at the cap, accepting stops */
    uint32_t busy_poll;         /* --busy-poll: non-blocking polls after I/O before sleeping */
};

/* Sets the defaults. */
void px_limits_init(struct px_limits *l);

/* Creates n workers listening on hostport ("0.0.0.0:8080", "[::]:8080"), each enforcing a copy
 * of limits. Every listening socket is bound here, on the calling thread, so a taken port is an
 * error at startup and not in a thread. Returns 0 and *out, or a negative errno with a
 * one-line reason in err. */
int px_workers_create(int n, const char *hostport, const struct px_limits *limits,
                      struct px_workers **out, char *err, size_t errlen);
/* Starts the threads. Returns 0 or a negative libuv error. */
int px_workers_start(struct px_workers *ws);
/* Wakes every worker so that it picks up the current snapshot. Registered with
 * px_snapshot_on_publish; main thread. */
void px_workers_on_publish(void *arg);
/* Stops every worker (listeners closed at once, requests in flight get PX_GRACE_MS), joins the
 * threads and frees ws. Works on workers that were never started too. */
void px_workers_stop(struct px_workers *ws);

#endif
