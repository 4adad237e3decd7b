/* The ambassador Module's edge behaviour for one request, before routing
 * (docs/mapping-compat.md, "Module ambassador"): who the client is (use_remote_address,
 * xff_num_trusted_hops), whether it may come in (ip_allow / ip_deny), which scheme it used
 * (X-Forwarded-Proto, for x_forwarded_proto_redirect and redirects), and the Server header of
 * the proxy's own answers (server_name). Pure functions of the request head and the settings:
 * no sockets, no allocation. */
#ifndef LEGATE_PROXY_EDGE_H
#define LEGATE_PROXY_EDGE_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stddef.h>

#include "route-t.h"
#include "router.h"

/* Room for "Server: " + a name + CRLF; longer server names are not sent. */
#define PX_EDGE_SERVER_LINE_MAX 256

struct px_edge {
    /* The trusted client address: the peer, or the address xff_num_trusted_hops from the
     * right of X-Forwarded-For (peer appended when use_remote_address). NUL-terminated. */
    char client[INET6_ADDRSTRLEN];
    /* The scheme the client used: X-Forwarded-Proto when the hop that set it is trusted
     * (xff_num_trusted_hops > 0 or use_remote_address false), else the connection's, "http".
     * Points to a static string. */
    const char *proto;
    bool denied;         /* ip_allow / ip_deny: answer 403 */
    bool redirect_https; /* x_forwarded_proto_redirect and the scheme is not https: 301 */
    char server_line[PX_EDGE_SERVER_LINE_MAX]; /* "Server: name\r\n", or "" */
};

/* Fills *out for a request from peer (the connection's address, NUL-terminated) with headers
 * hs. s may be NULL (no Module: Ambassador's defaults). */
void px_edge_check(const struct route_settings *s, const char *peer, const struct px_header *hs,
                   size_t nh, struct px_edge *out);

/* The connection's peer address as text ("unknown" when peer is NULL or neither IPv4 nor
 * IPv6); out holds at least INET6_ADDRSTRLEN bytes. */
void px_edge_format_peer(const struct sockaddr *peer, char *out, size_t size);

#endif
