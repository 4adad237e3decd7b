/* Upstream connections and the per-worker keep-alive pools (upstream.c). A pool is keyed by
 * the cluster's host and port; idle connections are reused most recent first (LIFO), watched
 * for the peer closing them, and closed after PX_UPSTREAM_IDLE_MS. */
#ifndef LEGATE_PROXY_UPSTREAM_H
#define LEGATE_PROXY_UPSTREAM_H

#include "internal.h"

void px_pools_init(struct px_pools *p);
/* Closes every idle connection (shutdown). */
void px_pools_close_idle(struct px_worker *w);
/* Frees the pools; every upstream connection must be closed. */
void px_pools_free(struct px_pools *p);
/* Closes idle connections older than PX_UPSTREAM_IDLE_MS and frees unused pools. */
void px_pools_sweep(struct px_worker *w, uint64_t now);

/* Gets a connection to cluster cl (host:port, TLS when its scheme is https) for c (fresh:
 * never a pooled one). Returns 0 with *out ready (a pooled connection), 1 with *out
 * connecting (px_http_on_upstream_connect follows, with stage "tls" when the handshake
 * failed), or a negative libuv error. *out is attached to c either way. */
int px_upstream_acquire(struct px_worker *w, const struct route_cluster *cl, bool fresh,
                        struct px_conn *c, struct px_upstream **out);
/* Prepares u's response parser for the response to the request about to be sent. */
void px_upstream_expect(struct px_upstream *u, bool head_request);
/* Writes bufs (their data must stay valid until the write completes). Returns 0 when written,
 * 1 when queued (u->writing; px_http_on_upstream_written follows), or a negative libuv
 * error. */
int px_upstream_write(struct px_upstream *u, uv_buf_t *bufs, unsigned n);
/* Starts or stops reading the response (backpressure from the client side). */
void px_upstream_read(struct px_upstream *u, bool on);
/* Detaches u from its client connection: back into the pool when reusable, else closed. */
void px_upstream_release(struct px_upstream *u, bool reusable);
/* Detaches and closes u, whatever it is doing. */
void px_upstream_abort(struct px_upstream *u);

#endif
