/* Load balancing over the addresses an upstream name resolves to (lb.c): the cluster's
 * `load_balancer`.
 *
 * - round_robin (the default): the next address, per worker;
 * - least_request: of two addresses drawn at random, the one with fewer requests in progress
 *   through this worker (Envoy's power of two choices);
 * - ring_hash and maglev: consistent hashing of the request's key (a header's value, a
 *   cookie's value, or the client's address) by rendezvous hashing: each address scores
 *   hash(key, address) and the highest wins, so adding or removing an address moves only the
 *   keys that went to it. Maglev is mapped onto the same consistent hash (its own table is an
 *   Envoy implementation detail; what users rely on, stickiness, is the same). A request
 *   without the key gets a random address; the proxy does not set a missing cookie.
 *
 * The choice is made per request: a pooled connection is reused only when it goes to the
 * chosen address. */
#ifndef LEGATE_PROXY_LB_H
#define LEGATE_PROXY_LB_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "internal.h"

/* Picks one of n addresses for c's request by lb. rr is the caller's round-robin cursor,
 * active[i] the requests in progress to address i (n entries). */
unsigned px_lb_pick(const struct px_conn *c, const struct route_lb *lb, unsigned *rr,
                    const unsigned *active, const struct sockaddr_storage *addrs, unsigned n);
/* The hashing key of c's request for lb; false when the request has none. */
bool px_lb_key(const struct px_conn *c, const struct route_lb *lb, uint64_t *key);
/* Rendezvous hashing: the index among n addresses that key goes to. */
unsigned px_lb_rendezvous(uint64_t key, const struct sockaddr_storage *addrs, unsigned n);
/* Whether two socket addresses name the same host (ports are not compared). */
bool px_lb_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

#endif
