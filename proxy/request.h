/* What the proxy does with a request, decided from its parsed head, the route snapshot and
 * the client's address alone: the steps of the request path that need no connection. The
 * connection (http.c) acts on the verdict; the request-head fuzzer (fuzz/fuzz_request_head.c)
 * checks it, so both run the same code.
 *
 * Order, as Envoy's listener and router apply them: the request target (400), OPTIONS *
 * (200), path normalisation (400, docs/security.md), a route table at all (503), the ambassador
 * Module at the edge (ip_allow/ip_deny 403, x_forwarded_proto_redirect 301), the router (404).
 * Then, for the route the traffic policy picks (a canary group's member), its redirect or the
 * head to forward (px_request_forward). */
#ifndef LEGATE_PROXY_REQUEST_H
#define LEGATE_PROXY_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "edge.h"
#include "http1.h"
#include "route-t.h"
#include "router.h"

struct px_snapshot;

enum px_verdict_kind {
    PX_VERDICT_ANSWER,   /* the proxy answers itself: status, msg + detail */
    PX_VERDICT_REDIRECT, /* status (301, or the route's code) with Location: location */
    PX_VERDICT_ROUTE,    /* route matched: forward it */
};

struct px_verdict {
    enum px_verdict_kind kind;
    int status;
    const char *msg;    /* ANSWER: static text */
    const char *detail; /* ANSWER: appended to msg (not NUL-terminated), or NULL */
    size_t detail_len;
    bool close; /* ANSWER: the request itself was malformed; the connection closes after */
    const char *location; /* REDIRECT, in the arena */
    size_t location_len;
    /* The request as routed, in the arena (each NULL until that step was reached). */
    const char *host; /* Host, or the absolute-form authority; may be NULL */
    size_t host_len;
    const char *path; /* normalised, NUL-terminated; the log shows it (never the query) */
    size_t path_len;
    const char *query; /* after '?', or NULL */
    size_t query_len;
    struct px_header *headers; /* the head's headers as the router and edge take them */
    size_t nheaders;
    struct px_edge *edge;      /* set once a route table is there */
    const struct route *route; /* ROUTE: the router's match */
};

/* Routes the request parsed by p (whose head is complete) with snap (NULL: no table yet) for
 * the client at client_ip. Fills *v; allocations come from a. */
void px_request_route(const struct px_h1_parser *p, const struct px_snapshot *snap,
                      const char *client_ip, struct px_arena *a, struct px_verdict *v);

/* For route r, the verdict's or the canary member chosen for it, with its table and router:
 * when r redirects, turns *v into a REDIRECT (or an ANSWER 500 when no Location can be made)
 * and returns 1; else fills *f with the head to forward (rewritten target, Host, forwarding
 * headers, header edits) and returns 0; an ANSWER 500 and -1 when the target cannot be
 * rewritten. */
int px_request_forward(struct px_verdict *v, const struct route *r, const struct route_table *t,
                       const struct px_router *router, const char *client_ip, struct px_arena *a,
                       struct px_h1_forward *f);

/* A route's header edits as the HTTP/1 layer takes them (NULL when it has none). */
const struct px_h1_edits *px_request_edits(struct px_arena *a, char *const *remove, size_t nremove,
                                           const struct route_header_add *add, size_t nadd);

#endif
