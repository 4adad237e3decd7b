/* Upgrade tunnels (tunnel.c): use_websocket / allow_upgrade.
 *
 * Upgrade and Connection are hop-by-hop, so the proxy drops them, and a route that allows
 * none never forwards an Upgrade. When the route allows the protocol a request asks for (a
 * bodiless request whose Connection lists upgrade), the upstream request carries
 * `Connection: upgrade` and the client's Upgrade; a 101 from the upstream is relayed with
 * the upstream's Upgrade, and from then on the two connections are one byte stream: what
 * either side sends is written to the other as it comes, with the usual backpressure (one
 * write in flight per direction), until either side closes, which closes both. */
#ifndef LEGATE_PROXY_TUNNEL_H
#define LEGATE_PROXY_TUNNEL_H

#include "internal.h"

/* After the upstream request head is built (c->head_iov): when the route tunnels the
 * request's Upgrade, adds the two headers to the head and sets c->upgrade_ok. */
void px_tunnel_prepare(struct px_conn *c);
/* The upstream answered 101 to an upgrade the route allows: relays the head, enters the
 * tunnel. */
void px_tunnel_start(struct px_conn *c);
/* In the tunnel: client bytes to the upstream, upstream bytes to the client. */
void px_tunnel_up(struct px_conn *c);
void px_tunnel_down(struct px_conn *c);

#endif
