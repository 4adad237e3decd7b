/* Client connections (http.c): HTTP/1.1 from the client, routed with the worker's snapshot and
 * forwarded to an upstream connection, the response relayed back; keep-alive, pipelining (one
 * request at a time, answered in order), the proxy's own error responses, backpressure both
 * ways. */
#ifndef LEGATE_PROXY_HTTP_H
#define LEGATE_PROXY_HTTP_H

#include "internal.h"

/* Takes over the accepted socket fd (non-blocking, TCP_NODELAY inherited from the listener)
 * as a client connection of w; peer is the address accept4 returned (NULL: unknown). */
void px_http_accept(struct px_worker *w, int fd, const struct sockaddr *peer);
/* Shutdown: closes c if it is between requests, else lets its request finish first. */
void px_http_drain(struct px_conn *c);
/* Closes c now. */
void px_http_close(struct px_conn *c);
/* For the policy modules (http_policy.c, tunnel.c): the proxy's own answer (status, then the
 * text msg + detail), and the failure path of the upstream leg (which may retry). */
void px_http_respond(struct px_conn *c, int status, const char *msg, const char *detail);
void px_http_upstream_failed(struct px_conn *c, const char *what, const char *why);
/* Writes to the client: 0 written, 1 in flight (the upstream's reading pauses until it
 * completes), or a negative error after which c is closing. */
int px_http_write(struct px_conn *c, uv_buf_t *bufs, unsigned n);

/* Events from upstream.c about c->up. */
void px_http_on_upstream_connect(struct px_conn *c, int status, const char *stage);
void px_http_on_upstream_data(struct px_conn *c);
void px_http_on_upstream_eof(struct px_conn *c, int status);
void px_http_on_upstream_written(struct px_conn *c, int status);

#endif
