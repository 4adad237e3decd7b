/* CORS for routes with a `cors` block (cors.c), Envoy's filter as Ambassador configured it:
 *
 * - A preflight (OPTIONS with Origin and Access-Control-Request-Method) from an allowed
 *   origin is answered by the proxy itself: 200 with Access-Control-Allow-Origin (the origin,
 *   echoed), -Allow-Methods, -Allow-Headers, -Max-Age and -Allow-Credentials as configured.
 *   From another origin it goes to the upstream like any request (Envoy's behaviour).
 * - Every other response to a request from an allowed origin, the proxy's own 502/503/504
 *   and 429 included, carries Access-Control-Allow-Origin, -Allow-Credentials and
 *   -Expose-Headers; the upstream's own lines of those names are replaced.
 *
 * Pure functions on strings: no socket, no allocation. */
#ifndef LEGATE_PROXY_CORS_H
#define LEGATE_PROXY_CORS_H

#include <stdbool.h>
#include <stddef.h>

#include "route-t.h"

/* Whether origin (len bytes, as the request's Origin header) is allowed: listed exactly (ASCII
 * case-insensitive), or "*" listed. */
bool px_cors_allowed(const struct route_cors *cors, const char *origin, size_t len);

/* Room px_cors_preflight_headers / px_cors_response_headers need at most for this origin. */
size_t px_cors_room(const struct route_cors *cors, size_t origin_len);

/* Writes the header lines ("Name: value\r\n"...) answering a preflight from an allowed origin
 * into out (room bytes, from px_cors_room) and NUL-terminates them. Returns their length. */
size_t px_cors_preflight_headers(const struct route_cors *cors, const char *origin, size_t len,
                                 char *out, size_t room);
/* The same for an actual response. */
size_t px_cors_response_headers(const struct route_cors *cors, const char *origin, size_t len,
                                char *out, size_t room);

/* The lower-case names of the headers a response's CORS lines replace. */
extern char *const px_cors_response_names[3];

#endif
