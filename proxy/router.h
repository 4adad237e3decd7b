/* The request router: built once per snapshot, read concurrently by every worker.
 *
 * Semantics: the answer is exactly "the first route of table->routes (already in Ambassador's
 * order) whose every predicate matches". Lookup is not a linear scan: routes are indexed by
 * Host (hash; routes without host in a wildcard bucket), then by a byte trie over the
 * literal prefix; candidates met along the request path are checked for method and header
 * predicates and the one with the lowest table index wins. Cost depends on the path length
 * and the routes sharing its prefixes, not on the table size. */
#ifndef LEGATE_PROXY_ROUTER_H
#define LEGATE_PROXY_ROUTER_H

#include <stddef.h>

#include "route-t.h"

/* A request header as a borrowed byte slice (from the connection's read buffer). */
struct px_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* What the router looks at; every pointer is borrowed for the duration of the call. */
struct px_request_view {
    const char *method; /* upper case, as on the wire */
    size_t method_len;
    const char *path; /* the request target's path, without the query */
    size_t path_len;
    const char *host; /* Host header value (may include :port, ignored), or NULL */
    size_t host_len;
    const struct px_header *headers;
    size_t nheaders;
};

struct px_router;

/* Builds the router for t (which must outlive it). Returns NULL with a reason in err when the
 * table holds something this proxy cannot route (e.g. an unsupported match kind). */
struct px_router *px_router_build(const struct route_table *t, char *err, size_t errlen);
void px_router_free(struct px_router *r);
/* Returns the bytes the router itself holds (not counting the table), for tests and sizing. */
size_t px_router_memory(const struct px_router *r);

/* Returns the matching route (borrowed from the table) or NULL. Thread-safe, no allocation. */
const struct route *px_router_match(const struct px_router *r, const struct px_request_view *req);

/* Computes the upstream request target for route r: with r->rewrite set, rewrite + the part of
 * path after the matched prefix; else path unchanged; query (without '?', may be empty, NULL
 * when the target had none) appended after '?'. Writes at most outlen bytes to out (no NUL)
 * and returns the length, or -ENOSPC when it would not fit. */
long px_rewrite_target(const struct route *r, const char *path, size_t path_len, const char *query,
                       size_t query_len, char *out, size_t outlen);

#endif
