/* The admin listener (default 127.0.0.1:8877): a small, strict HTTP/1.1 server on the main
 * thread's loop for probes and operators.
 *
 *   GET /ready  (/ambassador/v0/check_ready)  200 "ready\n" once a table was applied, else 503
 *   GET /live   (/ambassador/v0/check_alive)  200
 *   GET /routes (/ambassador/v0/diag/?json=true)  200 JSON: version, applied_at, routes, errors
 *   GET /metrics  200 Prometheus text: per-route and per-cluster traffic-policy counters
 *
 * Other paths are 404, methods other than GET and HEAD 405. Keep-alive is supported and
 * `Connection: close` honoured; a request head over 8 KiB is answered 431 and closed. */
#ifndef LEGATE_PROXY_ADMIN_H
#define LEGATE_PROXY_ADMIN_H

#include <uv.h>

/* Listens on hostport ("127.0.0.1:8877" or "[::1]:8877") on loop. Returns 0 or a negative
 * libuv error (print it with uv_strerror); the reason is also logged. Call once, on the main
 * thread. */
int px_admin_start(uv_loop_t *loop, const char *hostport);
/* Closes the listener and every admin connection; they finish closing on the next loop
 * iteration. Safe when not started. */
void px_admin_stop(void);

#endif
