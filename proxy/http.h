/* Client connections (http.c): HTTP/1.1 from the client, routed with the worker's snapshot and
 * forwarded to an upstream connection, the response relayed back; keep-alive, pipelining (one
 * request at a time, answered in order), the proxy's own error responses, backpressure both
 * ways. */
#ifndef LEGATE_PROXY_HTTP_H
#define LEGATE_PROXY_HTTP_H

#include "internal.h"

/* Accepts one connection from w's listener. */
void px_http_accept(struct px_worker *w);
/* Shutdown: closes c if it is between requests, else lets its request finish first. */
void px_http_drain(struct px_conn *c);
/* Closes c now. */
void px_http_close(struct px_conn *c);

/* Events from upstream.c about c->up. */
void px_http_on_upstream_connect(struct px_conn *c, int status, const char *stage);
void px_http_on_upstream_data(struct px_conn *c);
void px_http_on_upstream_eof(struct px_conn *c, int status);
void px_http_on_upstream_written(struct px_conn *c, int status);

#endif
