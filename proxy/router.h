/* The request router: built once per snapshot, read concurrently by every worker.
 *
 * Semantics: the answer is exactly "the first route of table->routes (already in Ambassador's
 * order) whose every predicate matches". Lookup is not a linear scan: routes are indexed by
 * Host (hash; routes without host, or with a host_regex, in a wildcard bucket), then by a
 * byte trie over the literal prefix; candidates met along the request path are checked for
 * their other predicates (method, host_regex, headers, query parameters) and the one with the
 * lowest table index wins. prefix_regex routes cannot live in a trie: each host bucket keeps
 * them in table order, and only those with a lower index than the best trie candidate are
 * tried. Cost depends on the path length, the routes sharing its prefixes and the regex
 * routes of the request's host, not on the table size. Regexes are RE2 (common/rx.h). */
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
    const char *query; /* the query without '?', raw (still URL-encoded); NULL: none */
    size_t query_len;
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
 * path after the matched prefix (for prefix_regex routes the match is the whole path); else
 * path unchanged; query (without '?', may be empty, NULL when the target had none) appended
 * after '?'. Writes at most outlen bytes to out (no NUL) and returns the length, or -ENOSPC
 * when it would not fit. Does not apply regex_rewrite (see px_router_rewrite). */
long px_rewrite_target(const struct route *r, const char *path, size_t path_len, const char *query,
                       size_t query_len, char *out, size_t outlen);
/* Like px_rewrite_target, and applies r's regex_rewrite (every match of the pattern in the
 * path replaced by the substitution; it wins over rewrite), whose compiled regex the router
 * holds. r must come from rt's table. */
long px_router_rewrite(const struct px_router *rt, const struct route *r, const char *path,
                       size_t path_len, const char *query, size_t query_len, char *out,
                       size_t outlen);
/* Upper bound of px_router_rewrite's output for a path and query of these lengths, except
 * for regex_rewrite, whose output may grow with every match: callers size for the common case
 * and retry with a larger buffer on -ENOSPC. */
size_t px_router_rewrite_room(const struct route *r, size_t path_len, size_t query_len);

/* Builds the Location of a redirect route (r->host_redirect set), Envoy's way:
 * scheme://host_redirect then the path, where path_redirect replaces the whole path (its own
 * query, if it has one, replaces the request's), prefix_redirect the matched prefix, and
 * regex_redirect what its pattern matches; the request's query is kept otherwise. scheme is
 * the request's ("http" or "https"), used unless the route names one. Returns the length
 * written to out (no NUL), or -ENOSPC. */
long px_router_location(const struct px_router *rt, const struct route *r, const char *scheme,
                        const char *path, size_t path_len, const char *query, size_t query_len,
                        char *out, size_t outlen);

/* Returns the length of host without a ":port" suffix ("[v6]:port" keeps its brackets). */
size_t px_host_without_port(const char *h, size_t n);

#endif
